//! The step graph of plans that order replacements, detaches and deletes:
//! planned from stacks in text against hand-written prior state, then
//! checked for the order of their steps (and for having no cycle).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use super::events::Op;
use super::{Step, step_graph};
use crate::config::{LoadOptions, Stack, load_str};
use crate::graph::{ResourceGraph, WorkGraph};
use crate::plan::{Action, Plan, PlanError, Prior, PriorResource, ReplaceOrder, plan};
use crate::provider::RegionFacts;
use crate::state::{ResourceState, State};
use crate::{Attrs, Value};

const HEAD: &str = "[stack]\nname = \"order\"\nregion = \"us-west-2\"\n";
const ROLE_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const DOC: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;

fn stack(body: &str) -> Stack {
    load_str(
        Path::new("order.toml"),
        format!("{HEAD}{body}"),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("invalid test stack:\n{}", e.messages()))
}

fn attrs(v: Value) -> Attrs {
    v.as_object().expect("an object").clone()
}

fn tags(address: &str) -> Value {
    json!({"meshform:stack": "order", "meshform:address": address})
}

fn prior(items: Vec<(&str, &str, &str, Value, &[&str])>) -> Prior {
    Prior {
        resources: items
            .into_iter()
            .map(|(address, kind, id, live, deps)| {
                (
                    address.to_string(),
                    PriorResource {
                        kind: kind.to_string(),
                        id: id.to_string(),
                        live: Some(attrs(live)),
                        dependencies: deps.iter().map(|d| d.to_string()).collect(),
                        not_refreshed: None,
                    },
                )
            })
            .collect(),
        outputs: Default::default(),
    }
}

fn state_of(prior: &Prior) -> State {
    let mut state = State::new("order");
    for (a, p) in &prior.resources {
        state.resources.insert(
            a.clone(),
            ResourceState {
                kind: p.kind.clone(),
                id: p.id.clone(),
                attributes: p.live.clone().unwrap_or_default(),
                dependencies: p.dependencies.clone(),
            },
        );
    }
    state
}

fn planned(stack: &Stack, prior: &Prior) -> Result<Plan, PlanError> {
    let graph = ResourceGraph::build(stack).expect("no cycle");
    let facts = RegionFacts {
        region: "us-west-2".into(),
        azs: vec!["us-west-2a".into(), "us-west-2b".into()],
    };
    plan(stack, &graph, prior, &facts)
}

fn step(address: &str, op: Op) -> Step {
    Step {
        address: address.to_string(),
        op,
    }
}

/// Whether `first` finishes before `then` starts (through any chain of edges).
fn before(g: &WorkGraph<Step>, first: &Step, then: &Step) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = vec![then];
    while let Some(s) = queue.pop() {
        for d in g.dependencies(s) {
            if d == first {
                return true;
            }
            if seen.insert(d.clone()) {
                queue.push(d);
            }
        }
    }
    false
}

/// Asserts that the steps run in the order given, one after the other.
fn assert_sequence(g: &WorkGraph<Step>, steps: &[Step]) {
    for pair in steps.windows(2) {
        assert!(
            before(g, &pair[0], &pair[1]),
            "{} should come before {}; graph: {g:?}",
            pair[0],
            pair[1]
        );
    }
}

fn policy_live(name: &str, path: &str, arn: &str, address: &str) -> Value {
    json!({
        "name": name, "path": path, "policy": serde_json::from_str::<Value>(DOC).unwrap(),
        "arn": arn, "policy_id": "ANPA1", "default_version_id": "v1", "tags": tags(address),
    })
}

fn role_live(policies: &[&str]) -> Value {
    json!({
        "name": "nodes", "path": "/", "assume_role_policy": serde_json::from_str::<Value>(ROLE_TRUST).unwrap(),
        "max_session_duration": 3600, "managed_policy_arns": policies,
        "arn": "arn:aws:iam::123456789012:role/nodes", "unique_id": "AROA1", "tags": tags("role"),
    })
}

fn policy_and_role(policy_name: &str, policy_path: &str, policy_address: &str, extra: &str) -> Stack {
    stack(&format!(
        r#"
[resource.{policy_address}]
type = "aws.iam.policy"
name = "{policy_name}"
path = "{policy_path}"
policy = '{DOC}'
{extra}

[resource.role]
type = "aws.iam.role"
name = "nodes"
assume_role_policy = '{ROLE_TRUST}'
managed_policy_arns = ["${{{policy_address}.arn}}"]
"#
    ))
}

const OLD_ARN: &str = "arn:aws:iam::123456789012:policy/sd";

fn applied_policy_and_role(policy_address: &str) -> Prior {
    prior(vec![
        (
            policy_address,
            "aws.iam.policy",
            OLD_ARN,
            policy_live("sd", "/", OLD_ARN, policy_address),
            &[],
        ),
        (
            "role",
            "aws.iam.role",
            "nodes",
            role_live(&[OLD_ARN]),
            &[policy_address],
        ),
    ])
}

#[test]
fn renamed_policy_is_created_first_and_the_role_moves_before_the_old_one_goes() {
    let prior = applied_policy_and_role("policy");
    let plan = planned(&policy_and_role("sd-renamed", "/", "policy", ""), &prior).expect("plan");
    let policy = plan.change("policy").expect("policy");
    assert_eq!(policy.action, Action::Replace);
    assert_eq!(policy.replace_order, Some(ReplaceOrder::CreateBeforeDestroy));
    assert_eq!(plan.change("role").map(|r| r.action), Some(Action::Update));
    let g = step_graph(&plan, &state_of(&prior)).expect("acyclic");
    assert_sequence(
        &g,
        &[
            step("policy", Op::Create),
            step("role", Op::Update),
            step("policy", Op::Delete),
        ],
    );
}

#[test]
fn replaced_policy_keeping_its_name_goes_first_and_the_role_detaches_before() {
    // A new path forces a replacement, and the name stays: the two
    // policies cannot exist at once, so the old one goes first and the
    // role lets go of it before.
    let prior = applied_policy_and_role("policy");
    let plan = planned(&policy_and_role("sd", "/meshform/", "policy", ""), &prior).expect("plan");
    let policy = plan.change("policy").expect("policy");
    assert_eq!(policy.replace_order, Some(ReplaceOrder::DestroyBeforeCreate));
    assert!(policy.early_delete);
    let role = plan.change("role").expect("role");
    assert_eq!(role.action, Action::Update);
    assert_eq!(role.detach_from.len(), 1);
    assert_eq!(role.detach_from[0].from, "policy");
    assert_eq!(role.detach_from[0].attribute, "managed_policy_arns");
    assert_eq!(role.detach_from[0].values, vec![OLD_ARN.to_string()]);
    let g = step_graph(&plan, &state_of(&prior)).expect("acyclic");
    assert_sequence(
        &g,
        &[
            step("role", Op::Detach),
            step("policy", Op::Delete),
            step("policy", Op::Create),
            step("role", Op::Update),
        ],
    );
}

#[test]
fn explicit_create_before_destroy_with_the_same_name_is_refused_naming_the_attribute() {
    let prior = applied_policy_and_role("policy");
    let err = planned(
        &policy_and_role("sd", "/meshform/", "policy", "create_before_destroy = true"),
        &prior,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("policy: create_before_destroy = true"), "{text}");
    assert!(text.contains("`name`"), "{text}");
}

#[test]
fn policy_moved_to_a_new_address_with_the_same_name_is_deleted_before_its_successor() {
    // `policy` leaves the stack and `policy2` takes its name: the role
    // detaches from the old one, the old one goes, the new one is made,
    // and the role attaches it.
    let prior = applied_policy_and_role("policy");
    let plan = planned(&policy_and_role("sd", "/", "policy2", ""), &prior).expect("plan");
    assert_eq!(plan.change("policy").map(|c| c.action), Some(Action::Delete));
    let new = plan.change("policy2").expect("policy2");
    assert_eq!(new.action, Action::Create);
    assert_eq!(new.after_delete_of, vec!["policy".to_string()]);
    let role = plan.change("role").expect("role");
    assert_eq!(role.detach_from.first().map(|d| d.from.as_str()), Some("policy"));
    let g = step_graph(&plan, &state_of(&prior)).expect("acyclic");
    assert_sequence(
        &g,
        &[
            step("role", Op::Detach),
            step("policy", Op::Delete),
            step("policy2", Op::Create),
            step("role", Op::Update),
        ],
    );
}

const NETWORK: &str = r#"
[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "CIDR"

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "SUBNET"
availability_zone = "us-west-2a"
EXTRA
"#;

fn network(vpc: &str, subnet: &str, extra: &str) -> Stack {
    stack(
        &NETWORK
            .replace("CIDR", vpc)
            .replace("SUBNET", subnet)
            .replace("EXTRA", extra),
    )
}

fn applied_network() -> Prior {
    prior(vec![
        (
            "vpc",
            "aws.ec2.vpc",
            "vpc-1",
            json!({"cidr_block": "10.0.0.0/16", "enable_dns_hostnames": false, "enable_dns_support": true,
                   "instance_tenancy": "default", "tags": tags("vpc")}),
            &[],
        ),
        (
            "subnet",
            "aws.ec2.subnet",
            "subnet-1",
            json!({"vpc_id": "vpc-1", "cidr_block": "10.0.1.0/24", "availability_zone": "us-west-2a",
                   "map_public_ip_on_launch": false, "tags": tags("subnet")}),
            &["vpc"],
        ),
    ])
}

#[test]
fn replaced_vpc_with_replaced_subnet_deletes_both_before_creating_both() {
    let prior = applied_network();
    let plan = planned(&network("10.1.0.0/16", "10.1.1.0/24", ""), &prior).expect("plan");
    for address in ["vpc", "subnet"] {
        let c = plan.change(address).expect("planned");
        assert_eq!(c.action, Action::Replace, "{address}");
        assert_eq!(
            c.replace_order,
            Some(ReplaceOrder::DestroyBeforeCreate),
            "{address}"
        );
    }
    let g = step_graph(&plan, &state_of(&prior)).expect("acyclic");
    assert_sequence(
        &g,
        &[
            step("subnet", Op::Delete),
            step("vpc", Op::Delete),
            step("vpc", Op::Create),
            step("subnet", Op::Create),
        ],
    );
}

#[test]
fn create_before_destroy_on_a_dependent_carries_over_to_what_it_depends_on() {
    let prior = applied_network();
    let plan = planned(
        &network("10.1.0.0/16", "10.1.1.0/24", "create_before_destroy = true"),
        &prior,
    )
    .expect("plan");
    for address in ["vpc", "subnet"] {
        let c = plan.change(address).expect("planned");
        assert_eq!(
            c.replace_order,
            Some(ReplaceOrder::CreateBeforeDestroy),
            "{address}"
        );
    }
    let g = step_graph(&plan, &state_of(&prior)).expect("acyclic");
    assert_sequence(
        &g,
        &[
            step("vpc", Op::Create),
            step("subnet", Op::Create),
            step("subnet", Op::Delete),
            step("vpc", Op::Delete),
        ],
    );
}

#[test]
fn subnet_whose_new_cidr_overlaps_the_old_one_is_destroyed_first() {
    let prior = applied_network();
    // 10.0.1.0/25 lies inside 10.0.1.0/24: the VPC refuses both at once.
    let plan = planned(&network("10.0.0.0/16", "10.0.1.0/25", ""), &prior).expect("plan");
    let subnet = plan.change("subnet").expect("subnet");
    assert_eq!(subnet.replace_order, Some(ReplaceOrder::DestroyBeforeCreate));
    let err = planned(
        &network("10.0.0.0/16", "10.0.1.0/25", "create_before_destroy = true"),
        &prior,
    )
    .unwrap_err();
    assert!(err.to_string().contains("`vpc_id` and `cidr_block`"), "{err}");
}

#[test]
fn node_group_of_a_cluster_replaced_under_the_same_name_is_replaced_too() {
    // The node group names its cluster by name (its id), in a force-new
    // attribute it cannot let go of: it goes before the old cluster and
    // comes back after the new one, although its own attributes match.
    let body = r#"
[resource.cluster]
type = "aws.eks.cluster"
name = "demo"
version = "1.33"
role_arn = "arn:aws:iam::123456789012:role/ROLE"
subnet_ids = ["subnet-1", "subnet-2"]

[resource.nodes]
type = "aws.eks.node_group"
cluster_name = "${cluster.name}"
name = "ng"
node_role_arn = "arn:aws:iam::123456789012:role/nodes"
subnet_ids = ["subnet-1"]
instance_types = ["t3.large"]
desired_size = 3
min_size = 1
max_size = 6
"#;
    let stack = stack(&body.replace("ROLE", "new-cluster-role"));
    let old_cluster = json!({
        "name": "demo", "version": "1.33", "role_arn": "arn:aws:iam::123456789012:role/old-cluster-role",
        "subnet_ids": ["subnet-1", "subnet-2"], "endpoint_public_access": true, "endpoint_private_access": false,
        "tags": tags("cluster"),
    });
    let nodes = json!({
        "cluster_name": "demo", "name": "ng", "node_role_arn": "arn:aws:iam::123456789012:role/nodes",
        "subnet_ids": ["subnet-1"], "instance_types": ["t3.large"], "desired_size": 3, "min_size": 1,
        "max_size": 6, "capacity_type": "ON_DEMAND", "ami_type": "AL2023_x86_64_STANDARD", "disk_size": 20,
        "labels": {}, "taints": [], "tags": tags("nodes"),
    });
    let prior = prior(vec![
        ("cluster", "aws.eks.cluster", "demo", old_cluster, &[]),
        ("nodes", "aws.eks.node_group", "demo:ng", nodes, &["cluster"]),
    ]);
    let plan = planned(&stack, &prior).expect("plan");
    let cluster = plan.change("cluster").expect("cluster");
    assert_eq!(cluster.action, Action::Replace, "{plan:#?}");
    assert_eq!(cluster.replace_order, Some(ReplaceOrder::DestroyBeforeCreate));
    let nodes = plan.change("nodes").expect("nodes");
    assert_eq!(nodes.action, Action::Replace, "{plan:#?}");
    assert!(
        nodes.reason.as_deref().is_some_and(|r| r.contains("cluster")),
        "{nodes:?}"
    );
    let g = step_graph(&plan, &state_of(&prior)).expect("acyclic");
    assert_sequence(
        &g,
        &[
            step("nodes", Op::Delete),
            step("cluster", Op::Delete),
            step("cluster", Op::Create),
            step("nodes", Op::Create),
        ],
    );
}

#[test]
fn a_cycle_in_the_step_graph_is_an_internal_error_naming_its_steps() {
    // State edited by hand so that two recorded resources depend on each
    // other, both being deleted.
    let mut prior = applied_policy_and_role("policy");
    if let Some(p) = prior.resources.get_mut("policy") {
        p.dependencies = vec!["role".into()];
    }
    let state = state_of(&prior);
    let plan = crate::plan::plan_destroy("order", "us-west-2", &prior);
    let err = step_graph(&plan, &state).unwrap_err().to_string();
    assert!(err.contains("cycle"), "{err}");
    assert!(
        err.contains("delete policy") && err.contains("delete role"),
        "{err}"
    );
}

#[test]
fn a_sabotaged_engine_leaves_out_the_edges_that_let_dependents_go_first() {
    // The switch the randomized harness uses to show it catches a broken
    // engine: deleting a policy no longer waits for its role's deletion.
    let prior = applied_policy_and_role("policy");
    let state = state_of(&prior);
    let plan = crate::plan::plan_destroy("order", "us-west-2", &prior);
    let engine = super::Engine::new("order", Default::default(), super::no_events());
    assert!(!engine.omit.reverse_edges);
    let sabotaged = engine.sabotaged();
    let g = super::steps::step_graph_omitting(&plan, &state, sabotaged.omit).expect("acyclic");
    assert!(!before(
        &g,
        &step("role", Op::Delete),
        &step("policy", Op::Delete)
    ));
    let g = step_graph(&plan, &state).expect("acyclic");
    assert!(before(&g, &step("role", Op::Delete), &step("policy", Op::Delete)));
}

// The engine run in process against the fake cloud of `crate::testing`,
// with a kind wrapper that misbehaves in one scripted way.

mod in_process {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;

    use crate::engine::{Engine, EngineError, no_events};
    use crate::provider::{
        InPlace, KindDef, Kinds, Live, OpContext, ProviderError, ReadRequest, ResourceKind, Schema,
    };
    use crate::state::MemoryState;
    use crate::testing::{FakeCloud, fake_kinds};
    use crate::{Attrs, config};

    /// Misbehaviours of [`Wrapped`].
    #[derive(Default)]
    struct Script {
        /// Batched reads drop their last answer.
        short_reads: bool,
        /// The next create takes effect, then its answer is lost.
        lose_next_create: AtomicBool,
        /// The `changed` list of every update the engine asked for.
        updates: std::sync::Mutex<Vec<Vec<String>>>,
    }

    struct Wrapped {
        inner: Arc<dyn ResourceKind>,
        script: Arc<Script>,
    }

    impl Schema for Wrapped {
        fn def(&self) -> &'static KindDef {
            self.inner.def()
        }
    }

    #[async_trait]
    impl ResourceKind for Wrapped {
        async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
            let live = self.inner.create(cx, desired).await?;
            if self.script.lose_next_create.swap(false, Ordering::SeqCst) {
                return Err(ProviderError::Api {
                    operation: "CreateObject".into(),
                    code: None,
                    message: "connection reset (the object was made)".into(),
                });
            }
            Ok(live)
        }
        async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
            let mut answers = self.inner.read(requests).await?;
            if self.script.short_reads {
                answers.pop();
            }
            Ok(answers)
        }
        async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
            if let Ok(mut updates) = self.script.updates.lock() {
                updates.push(change.changed.to_vec());
            }
            self.inner.update(cx, change).await
        }
        async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
            self.inner.delete(cx, prior).await
        }
        async fn find_existing(
            &self,
            cx: &OpContext,
            desired: &Attrs,
        ) -> Result<Option<Live>, ProviderError> {
            self.inner.find_existing(cx, desired).await
        }
    }

    fn wrapped(cloud: &FakeCloud, script: &Arc<Script>) -> Kinds {
        let inner = fake_kinds(cloud);
        let mut kinds = Kinds::default();
        for def in crate::testing::KIND_DEFS {
            if let Some(k) = inner.get(def.type_name) {
                kinds.insert(Arc::new(Wrapped {
                    inner: k.clone(),
                    script: script.clone(),
                }));
            }
        }
        kinds
    }

    const STACK: &str = r#"
[stack]
name = "inproc"
region = "test-1"

[resource.a]
type = "test.named"
name = "a"

[resource.b]
type = "test.anon"
refs = ["${a.id}"]

[resource.c]
type = "test.anon"
refs = ["${a.arn}"]
"#;

    fn stack() -> config::Stack {
        config::load_str("inproc.toml".as_ref(), STACK.into(), &Default::default()).expect("valid stack")
    }

    /// Refreshes, plans and applies `stack` once, as the CLI does.
    async fn apply(engine: &Engine, mem: &MemoryState) -> Result<crate::engine::ApplyReport, EngineError> {
        let stack = stack();
        let mut store = mem.open(&stack.name)?;
        let prior = engine.refresh_into(&mut store).await?;
        let plan = engine.plan(&stack, &prior, &Default::default())?;
        let store = Arc::new(tokio::sync::Mutex::new(store));
        engine.apply(Some(&stack), &plan, store, &[]).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_kind_answering_short_is_an_error_naming_it_not_a_duplicate() {
        let cloud = FakeCloud::new();
        let mem = MemoryState::new();
        let good = Engine::new("inproc", fake_kinds(&cloud), no_events());
        assert!(apply(&good, &mem).await.expect("apply").is_success());
        let script = Arc::new(Script {
            short_reads: true,
            ..Default::default()
        });
        let bad = Engine::new("inproc", wrapped(&cloud, &script), no_events());
        let err = apply(&bad, &mem).await.expect_err("a short answer stops the run");
        assert!(
            matches!(&err, EngineError::ShortRead { kind, requested: 2, returned: 1 } if kind == "test.anon"),
            "{err}"
        );
        // Nothing was created again.
        assert_eq!(cloud.owned_by("inproc").len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_whose_answer_is_lost_is_found_not_made_twice() {
        let cloud = FakeCloud::new();
        let mem = MemoryState::new();
        let script = Arc::new(Script::default());
        script.lose_next_create.store(true, Ordering::SeqCst);
        let engine = Engine::new("inproc", wrapped(&cloud, &script), no_events());
        let report = apply(&engine, &mem).await.expect("apply");
        assert!(report.is_success(), "{report:?}");
        assert_eq!(cloud.owned_by("inproc").len(), 3);
        let state = mem.open("inproc").expect("open");
        assert_eq!(state.state().resources.len(), 3);
        assert!(state.state().pending.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_state_write_stops_the_run_and_the_next_converges() {
        let cloud = FakeCloud::new();
        let mem = MemoryState::new();
        let engine = Engine::new("inproc", fake_kinds(&cloud), no_events()).with_parallelism(1);
        // Write 1 records the pending create of `a`, write 2 its result.
        mem.fail_write(2);
        let report = apply(&engine, &mem).await.expect("apply");
        let failure = report.state_failure.as_ref().expect("a state failure");
        assert_eq!(failure.step.address, "a");
        assert_eq!(failure.location, "memory");
        // Nothing started after it: `a` exists, nothing else.
        assert_eq!(cloud.owned_by("inproc").len(), 1);
        assert_eq!(report.counts(), (0, 1, 2, 0), "{report:?}");
        let report = apply(&engine, &mem).await.expect("apply");
        assert!(report.is_success(), "{report:?}");
        assert_eq!(cloud.owned_by("inproc").len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_is_never_asked_to_change_a_force_new_attribute() {
        const ONE: &str = "[stack]\nname = \"inproc\"\nregion = \"test-1\"\n\n[resource.a]\ntype = \"test.named\"\nname = \"NAME\"\n";
        let load = |name: &str| {
            config::load_str(
                "one.toml".as_ref(),
                ONE.replace("NAME", name),
                &Default::default(),
            )
            .expect("valid stack")
        };
        let cloud = FakeCloud::new();
        let mem = MemoryState::new();
        let script = Arc::new(Script::default());
        let engine = Engine::new("inproc", wrapped(&cloud, &script), no_events());
        let plan_and_apply = |stack: config::Stack, tamper: bool| {
            let (engine, mem) = (&engine, &mem);
            async move {
                let mut store = mem.open(&stack.name)?;
                let prior = engine.refresh_into(&mut store).await?;
                let mut plan = engine.plan(&stack, &prior, &Default::default())?;
                if tamper {
                    // The planner replaces `a` (its name is force-new); a plan
                    // saying "update in place" instead must not reach the kind.
                    let a = plan
                        .resources
                        .iter_mut()
                        .find(|c| c.address == "a")
                        .expect("a planned");
                    assert_eq!(a.action, crate::plan::Action::Replace);
                    a.action = crate::plan::Action::Update;
                    a.replaced_because.clear();
                    a.replace_order = None;
                    plan.summarize();
                }
                let store = Arc::new(tokio::sync::Mutex::new(store));
                engine.apply(Some(&stack), &plan, store, &[]).await
            }
        };
        assert!(
            plan_and_apply(load("a"), false)
                .await
                .expect("apply")
                .is_success()
        );
        let report = plan_and_apply(load("renamed"), true).await.expect("apply");
        let failures = report.failures();
        assert_eq!(failures.len(), 1, "{report:?}");
        assert!(
            matches!(failures[0].1, EngineError::Internal(m) if m.contains("would change name")),
            "{:?}",
            failures[0].1
        );
        assert!(
            script.updates.lock().unwrap().is_empty(),
            "the kind was asked to update"
        );
        let objects = cloud.owned_by("inproc");
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].attrs.get("name"), Some(&serde_json::json!("a")));
        // The plan as made replaces it.
        let report = plan_and_apply(load("renamed"), false).await.expect("apply");
        assert!(report.is_success(), "{report:?}");
        assert_eq!(
            cloud.owned_by("inproc")[0].attrs.get("name"),
            Some(&serde_json::json!("renamed"))
        );
    }
}

/// `--target` on planned replacements: the restricted plan keeps exactly
/// the steps the targets need, in the same order as the whole plan, and
/// its step graph is acyclic.
#[test]
fn targeted_replacements_keep_what_they_need_and_their_order() {
    let steps_of = |g: &WorkGraph<Step>| -> BTreeSet<Step> { g.nodes().iter().cloned().collect() };
    let restricted = |plan: &Plan, targets: &[&str]| {
        let mut p = plan.clone();
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        crate::plan::restrict(&mut p, &targets, &Default::default(), &Default::default())
            .expect("known targets");
        p
    };

    // The policy is replaced destroy-before-create and the role detaches
    // first: targeting either brings in the other (the role depends on the
    // policy; the policy's delete needs the role to let go first).
    let prior = applied_policy_and_role("policy");
    let whole = planned(&policy_and_role("sd", "/meshform/", "policy", ""), &prior).expect("plan");
    let state = state_of(&prior);
    let all = steps_of(&step_graph(&whole, &state).expect("acyclic"));
    for target in ["policy", "role"] {
        let p = restricted(&whole, &[target]);
        let g = step_graph(&p, &state).expect("acyclic");
        assert_eq!(steps_of(&g), all, "target {target}");
        assert_sequence(
            &g,
            &[
                step("role", Op::Detach),
                step("policy", Op::Delete),
                step("policy", Op::Create),
                step("role", Op::Update),
            ],
        );
    }

    // A replaced VPC and subnet beside an unrelated policy being created:
    // the subnet brings in the VPC; the VPC (replaced) brings in the
    // subnet, which must go before it; neither brings in the policy.
    let prior = applied_network();
    let extra =
        format!("\n[resource.other]\ntype = \"aws.iam.policy\"\nname = \"other\"\npolicy = '{DOC}'\n");
    let body = NETWORK
        .replace("CIDR", "10.1.0.0/16")
        .replace("SUBNET", "10.1.1.0/24")
        .replace("EXTRA", "")
        + &extra;
    let stack = stack(&body);
    let whole = planned(&stack, &prior).expect("plan");
    assert_eq!(whole.change("other").map(|c| c.action), Some(Action::Create));
    let state = state_of(&prior);
    for target in ["vpc", "subnet"] {
        let p = restricted(&whole, &[target]);
        assert!(p.change("other").is_none(), "target {target}");
        assert_eq!(p.left_out, ["other"], "target {target}");
        let g = step_graph(&p, &state).expect("acyclic");
        assert_eq!(
            steps_of(&g),
            BTreeSet::from([
                step("subnet", Op::Delete),
                step("vpc", Op::Delete),
                step("vpc", Op::Create),
                step("subnet", Op::Create),
            ]),
            "target {target}"
        );
        assert_sequence(
            &g,
            &[
                step("subnet", Op::Delete),
                step("vpc", Op::Delete),
                step("vpc", Op::Create),
                step("subnet", Op::Create),
            ],
        );
    }
    let p = restricted(&whole, &["other"]);
    let g = step_graph(&p, &state).expect("acyclic");
    assert_eq!(steps_of(&g), BTreeSet::from([step("other", Op::Create)]));
}

//! Make-before-break inside one apply, run in process against the fake
//! cloud, which refuses a member reference to a member that does not exist
//! and an update dropping a member still named (as a mesh would route to a
//! subset that is gone). A `test.pool` plays the DestinationRule, a
//! `test.anon` the route naming its members.

use std::sync::Arc;

use crate::config;
use crate::engine::{Engine, EngineError, Op, Step, no_events, step_graph};
use crate::plan::{Action, Plan};
use crate::state::MemoryState;
use crate::testing::{FakeCloud, fake_kinds};

/// The pool with `members` and a route naming `routes` of them.
fn stack(members: &[&str], routes: &[&str]) -> config::Stack {
    let list = |items: &[&str], f: &dyn Fn(&str) -> String| {
        items.iter().map(|i| f(i)).collect::<Vec<_>>().join(", ")
    };
    let text = format!(
        "[stack]\nname = \"mbb\"\nregion = \"test-1\"\n\n\
         [resource.pool]\ntype = \"test.pool\"\nmembers = [{}]\n\n\
         [resource.route]\ntype = \"test.anon\"\nrefs = [{}]\n",
        list(members, &|m| format!("\"{m}\"")),
        list(routes, &|m| format!("\"${{pool.id}}#{m}\"")),
    );
    config::load_str("mbb.toml".as_ref(), text, &Default::default()).expect("valid stack")
}

/// Refreshes and plans `stack`.
async fn plan(engine: &Engine, mem: &MemoryState, stack: &config::Stack) -> Result<Plan, EngineError> {
    let mut store = mem.open(&stack.name)?;
    let prior = engine.refresh_into(&mut store).await?;
    engine.plan(stack, &prior, &Default::default())
}

/// Applies `plan` of `stack`; the cloud's refusals, if any.
async fn apply(
    engine: &Engine,
    mem: &MemoryState,
    stack: &config::Stack,
    plan: &Plan,
    cloud: &FakeCloud,
) -> Vec<String> {
    let store = Arc::new(tokio::sync::Mutex::new(mem.open(&stack.name).expect("open")));
    let report = engine
        .apply(Some(stack), plan, store, &[])
        .await
        .expect("apply runs");
    let refusals: Vec<String> = cloud.take_refusals().into_iter().map(|r| r.message).collect();
    assert_eq!(
        report.is_success(),
        refusals.is_empty(),
        "{report:?} {refusals:?}"
    );
    refusals
}

fn pool_change(plan: &Plan) -> &crate::plan::ResourceChange {
    plan.resources
        .iter()
        .find(|c| c.address == "pool")
        .expect("pool planned")
}

/// The pool's and the route's member names as the cloud has them.
fn live(cloud: &FakeCloud) -> (Vec<String>, Vec<String>) {
    let mut pool = Vec::new();
    let mut route = Vec::new();
    for o in cloud.owned_by("mbb") {
        let strings = |name: &str| -> Vec<String> {
            o.attrs
                .get(name)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).map(str::to_string).collect())
                .unwrap_or_default()
        };
        match o.type_name.as_str() {
            "test.pool" => pool = strings("members"),
            _ => {
                route = strings("refs")
                    .iter()
                    .filter_map(|r| r.split_once('#'))
                    .map(|(_, m)| m.to_string())
                    .collect()
            }
        }
    }
    (pool, route)
}

fn step(address: &str, op: Op) -> Step {
    Step {
        address: address.to_string(),
        op,
    }
}

/// Applies the first stack, then plans and applies the second; returns
/// the second plan.
async fn from_to(
    cloud: &FakeCloud,
    first: (&[&str], &[&str]),
    then: (&[&str], &[&str]),
    tamper: bool,
) -> (Plan, Vec<String>) {
    let mem = MemoryState::new();
    let engine = Engine::new("mbb", fake_kinds(cloud), no_events());
    let one = stack(first.0, first.1);
    let p = plan(&engine, &mem, &one).await.expect("plan");
    assert!(apply(&engine, &mem, &one, &p, cloud).await.is_empty());
    let two = stack(then.0, then.1);
    let mut p = plan(&engine, &mem, &two).await.expect("plan");
    let planned = p.clone();
    if tamper {
        // What the engine did before make-before-break: plain dependency
        // order, the pool's update first.
        for c in &mut p.resources {
            c.contract_after.clear();
            c.expand_first = false;
        }
    }
    let refusals = apply(&engine, &mem, &two, &p, cloud).await;
    (planned, refusals)
}

#[tokio::test(start_paused = true)]
async fn moving_from_one_member_to_another_expands_then_moves_then_contracts() {
    let cloud = FakeCloud::new();
    let (plan, refusals) = from_to(
        &cloud,
        (&["v1", "v2"], &["v1", "v2"]),
        (&["v1", "v3"], &["v1", "v3"]),
        false,
    )
    .await;
    let pool = pool_change(&plan);
    assert_eq!(pool.action, Action::Update);
    assert_eq!(pool.contract_after, ["route"]);
    assert!(pool.expand_first);
    assert!(refusals.is_empty(), "{refusals:?}");
    assert_eq!(
        live(&cloud),
        (vec!["v1".into(), "v3".into()], vec!["v1".into(), "v3".into()])
    );
    let text = crate::plan::render(&plan);
    assert!(
        text.contains("make-before-break: first gains what it adds and keeps what it removes; removes only after route changed"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_member_updates_the_route_first_with_no_interim() {
    let cloud = FakeCloud::new();
    let (plan, refusals) = from_to(&cloud, (&["v1", "v3"], &["v1", "v3"]), (&["v1"], &["v1"]), false).await;
    let pool = pool_change(&plan);
    assert_eq!(pool.contract_after, ["route"]);
    assert!(!pool.expand_first, "the prior pool already serves both");
    assert!(refusals.is_empty(), "{refusals:?}");
    assert_eq!(live(&cloud), (vec!["v1".into()], vec!["v1".into()]));
}

#[tokio::test(start_paused = true)]
async fn adding_a_member_keeps_plain_dependency_order() {
    let cloud = FakeCloud::new();
    let (plan, refusals) = from_to(&cloud, (&["v1"], &["v1"]), (&["v1", "v3"], &["v1", "v3"]), false).await;
    let pool = pool_change(&plan);
    assert!(pool.contract_after.is_empty());
    assert!(!pool.expand_first);
    assert!(refusals.is_empty(), "{refusals:?}");
}

#[tokio::test(start_paused = true)]
async fn without_the_ordering_the_cloud_refuses_both_ways() {
    // The same two moves in plain dependency order: the fake cloud is
    // strict enough to notice, so the tests above can fail.
    let cloud = FakeCloud::new();
    let (_, refusals) = from_to(
        &cloud,
        (&["v1", "v2"], &["v1", "v2"]),
        (&["v1", "v3"], &["v1", "v3"]),
        true,
    )
    .await;
    assert!(
        refusals
            .iter()
            .any(|r| r.contains("members still named") && r.contains("#v2")),
        "{refusals:?}"
    );
    let cloud = FakeCloud::new();
    let (_, refusals) = from_to(&cloud, (&["v1", "v3"], &["v1", "v3"]), (&["v1"], &["v1"]), true).await;
    assert!(refusals.iter().any(|r| r.contains("#v3")), "{refusals:?}");
}

#[test]
fn the_step_graph_puts_the_interim_first_and_the_contraction_last() {
    let mut plan: Plan = serde_json::from_value(serde_json::json!({
        "format_version": 3, "stack": "mbb", "region": "test-1", "destroy": false,
        "resources": [
            {"address": "pool", "type": "test.pool", "action": "update", "id": "fk-1", "reason": null,
             "replaced_because": [], "changes": [], "dependencies": [],
             "contract_after": ["route"], "expand_first": true},
            {"address": "route", "type": "test.anon", "action": "update", "id": "fk-2", "reason": null,
             "replaced_because": [], "changes": [], "dependencies": ["pool"]},
            {"address": "after", "type": "test.anon", "action": "update", "id": "fk-3", "reason": null,
             "replaced_because": [], "changes": [], "dependencies": ["pool"]}
        ],
        "outputs": [], "summary": crate::plan::Summary::default()
    }))
    .expect("a plan");
    plan.summarize();
    let g = step_graph(&plan, &crate::state::State::new("mbb")).expect("acyclic");
    let deps = |s: &Step| {
        let mut d: Vec<Step> = g.dependencies(s).into_iter().cloned().collect();
        d.sort();
        d
    };
    assert_eq!(
        deps(&step("pool", Op::Update)),
        [step("pool", Op::Expand), step("route", Op::Update)]
    );
    assert!(deps(&step("pool", Op::Expand)).is_empty());
    assert_eq!(deps(&step("route", Op::Update)), [step("pool", Op::Expand)]);
    // A dependent the update does not wait for still follows it.
    assert_eq!(deps(&step("after", Op::Update)), [step("pool", Op::Update)]);
}

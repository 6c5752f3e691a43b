//! Faults between meshform and the cloud, injected by the test proxy in
//! front of moto (`support/fault_proxy.rs`):
//!
//! - the fault matrix: for each fault (HTTP 500, 503, throttling, a reset
//!   connection, an answer dropped after the call succeeded), the first
//!   occurrence of every call type gets it, during an apply and then a
//!   destroy of the baseline stack and of the EKS stack's AWS resources.
//!   Each run must succeed, and moto, read back directly (not through the
//!   proxy, not from state), must hold exactly the stack once, nothing else;
//!   the request counts show that no create was sent twice by the SDK;
//! - client tokens: what each create whose API takes one really sends;
//! - Ctrl-C with many calls in flight.
//!
//! What moto cannot show: it ignores client tokens (a create repeated with
//! the same token makes a second object, so these tests can only check the
//! token is sent, not that AWS would deduplicate by it); NAT gateways and
//! EKS clusters and node groups are ready at once, so no fault lands in the
//! middle of a real multi-minute wait; it never answers with its own
//! throttling or 5xx errors, so only the proxy's are seen, and only one per
//! call type per run (a fault that lasts longer than the SDK's retries and
//! the engine's attempts fails the run, as it should); it has no eventual
//! consistency, so a lookup right after a lost answer always finds what
//! the call made (on AWS a describe can briefly miss a new object, which
//! the engine would take for "nothing was made").

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::{Workdir, baseline_stack, expect_code, meshform, stderr};
use crate::support::fault_proxy::{Fault, FaultPlan, FaultProxy};
use crate::support::inventory::{FULL_STACK, Inventory, Names, STACK, foreign_ec2_objects};
use crate::support::moto::{Moto, project_root};

/// Longest a single meshform command of these tests may take.
const TIMEOUT_SECS: u64 = 240;

const CLUSTER: &str = "appmesh-getting-started-eks";
const NODE_GROUP: &str = "appmesh-cloudmap-ng";

/// The primary create call of each baseline kind and how many resources of
/// the baseline make one.
const BASELINE_CREATES: &[(&str, usize)] = &[
    ("CreateVpc", 1),
    ("CreateSubnet", 4),
    ("CreateInternetGateway", 1),
    ("AttachInternetGateway", 1),
    ("AllocateAddress", 2),
    ("CreateNatGateway", 2),
    ("CreateRouteTable", 3),
    ("CreateRoute", 3),
    ("AssociateRouteTable", 4),
    ("CreatePolicy", 1),
    ("CreateRepository", 1),
];

/// The same for the EKS stack's AWS resources (the baseline included).
const EKS_CREATES: &[(&str, usize)] = &[
    ("CreateVpc", 1),
    ("CreateSubnet", 4),
    ("CreateInternetGateway", 1),
    ("AttachInternetGateway", 1),
    ("AllocateAddress", 2),
    ("CreateNatGateway", 2),
    ("CreateRouteTable", 3),
    ("CreateRoute", 3),
    ("AssociateRouteTable", 4),
    // NodesSDPolicy and the external-dns policy.
    ("CreatePolicy", 2),
    ("CreateRepository", 1),
    ("CreateRole", 2),
    ("POST /clusters", 1),
    ("POST /clusters/*/node-groups", 1),
];

/// `cmd` under `timeout`, so that a hang fails the test instead of
/// stalling the suite.
fn timed(inner: Command) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("--signal=KILL")
        .arg(TIMEOUT_SECS.to_string())
        .arg(inner.get_program())
        .args(inner.get_args());
    if let Some(dir) = inner.get_current_dir() {
        cmd.current_dir(dir);
    }
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `meshform <args>` in `dir` reaching moto through `proxy`.
fn via(proxy: &FaultProxy, dir: &Path, moto: &Moto, args: &[&str]) -> Command {
    let mut cmd = meshform(dir, Some(moto), args);
    cmd.envs(proxy.env());
    timed(cmd)
}

/// `meshform <args>` in `dir` reaching moto directly.
fn direct(dir: &Path, moto: &Moto, args: &[&str]) -> Command {
    timed(meshform(dir, Some(moto), args))
}

fn read_state(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks that every primary create was faulted once and how many times it
/// was sent: once per resource, plus one for the faulted call when its
/// fault left nothing made (the engine looked, found nothing and tried
/// again). A dropped answer adds nothing: the object the lost call made is
/// found and adopted. Any more would be an SDK retry of a create.
fn assert_create_counts(proxy: &FaultProxy, fault: Fault, creates: &[(&str, usize)], log: &str) {
    let faulted = proxy.faulted_calls();
    let mut wrong = Vec::new();
    for (call, resources) in creates {
        assert!(
            faulted.iter().any(|f| f == call),
            "{call} was never faulted ({fault:?}); faulted: {faulted:?}"
        );
        let expected = if fault == Fault::DropResponse {
            *resources
        } else {
            resources + 1
        };
        let sent = proxy.calls(call).len();
        if sent != expected {
            wrong.push(format!("{call}: sent {sent}, expected {expected}"));
        }
    }
    assert!(wrong.is_empty(), "{fault:?}: {wrong:?}\n--- stderr\n{log}");
    // What the engine did about each faulted create.
    let doubts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("after a create that failed") || l.contains("nothing was made"))
        .collect();
    eprintln!(
        "{fault:?}: {} call types faulted; the engine resolved {} creates:\n  {}",
        faulted.len(),
        doubts.len(),
        doubts.join("\n  ")
    );
}

/// Asserts the baseline exists exactly once in moto and nothing else does.
async fn assert_exactly_the_baseline(moto: &Moto) {
    Inventory::read(moto).await.assert_baseline(moto).await;
    let foreign = foreign_ec2_objects(moto, STACK).await;
    assert!(
        foreign.is_empty(),
        "objects the stack did not declare: {foreign:#?}"
    );
    assert_eq!(Names::read(moto).await, Names::baseline());
}

/// Asserts nothing is left in moto (beyond its defaults).
async fn assert_nothing_left(moto: &Moto, stack: &str) {
    Inventory::read_stack(moto, stack).await.assert_empty();
    let foreign = foreign_ec2_objects(moto, stack).await;
    assert!(foreign.is_empty(), "objects left: {foreign:#?}");
    assert_eq!(Names::read(moto).await, Names::default());
}

/// Apply, then destroy, of the baseline with the first occurrence of every
/// call type failing with `fault`.
async fn baseline_under(fault: Fault) {
    let started = Instant::now();
    let moto = Moto::start();
    let dir = Workdir::new(&format!("faults-{fault:?}"));
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();

    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::first_of_each_call(fault));
    let out = expect_code(
        via(&proxy, &dir.path, &moto, &["apply", stack, "--auto-approve"]),
        0,
    );
    let log = stderr(&out);
    assert_create_counts(&proxy, fault, BASELINE_CREATES, &log);
    // Reads were faulted too and retried by the SDK.
    assert_faulted(
        &proxy,
        &[
            "DescribeAvailabilityZones",
            "DescribeVpcs",
            "DescribeNatGateways",
            "ListPolicies",
        ],
    );
    drop(proxy);
    assert_exactly_the_baseline(&moto).await;
    expect_code(
        direct(&dir.path, &moto, &["plan", stack, "--detailed-exitcode"]),
        0,
    );

    // Deletes under the same faults: a delete whose answer was lost and
    // that the SDK sent again finds nothing to delete, which is success.
    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::first_of_each_call(fault));
    expect_code(
        via(&proxy, &dir.path, &moto, &["destroy", stack, "--auto-approve"]),
        0,
    );
    assert_faulted(
        &proxy,
        &[
            "DeleteVpc",
            "DeleteSubnet",
            "DeleteNatGateway",
            "ReleaseAddress",
            "DeleteRoute",
            "DisassociateRouteTable",
            "DeleteRouteTable",
            "DetachInternetGateway",
            "DeleteInternetGateway",
            "DeletePolicy",
            "DeleteRepository",
        ],
    );
    drop(proxy);
    assert_nothing_left(&moto, STACK).await;
    eprintln!(
        "baseline under {fault:?}: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_survives_server_errors() {
    baseline_under(Fault::ServerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_survives_unavailable() {
    baseline_under(Fault::Unavailable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_survives_throttling() {
    baseline_under(Fault::Throttling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_survives_connection_resets() {
    baseline_under(Fault::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_survives_dropped_answers() {
    baseline_under(Fault::DropResponse).await;
}

/// The AWS part of the EKS stack: stacks/eks.toml (what the walkthrough
/// stack includes besides its in-cluster layer, which talks to Kubernetes,
/// not AWS, and is tested in in_cluster.rs) under the walkthrough stack's
/// name, with baseline.toml next to it. Returns its path.
fn eks_aws_stack(dir: &Workdir) -> PathBuf {
    let eks = std::fs::read_to_string(project_root().join("stacks/eks.toml")).unwrap();
    let text = eks.replacen("name = \"eks\"", &format!("name = \"{FULL_STACK}\""), 1);
    assert_ne!(text, eks, "stacks/eks.toml names its stack `eks`");
    assert!(!text.contains("kube.") && !text.contains("helm."), "{text}");
    std::fs::create_dir_all(dir.path.join("stacks")).unwrap();
    std::fs::copy(
        project_root().join("stacks/baseline.toml"),
        dir.path.join("stacks/baseline.toml"),
    )
    .unwrap();
    let path = dir.path.join("stacks/eks.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What the EKS stack's AWS resources make outside EC2.
fn eks_names() -> Names {
    Names {
        local_policies: ["NodesSDPolicy".to_string(), format!("{CLUSTER}-external-dns")].into(),
        roles: [format!("{CLUSTER}-cluster"), format!("{CLUSTER}-nodes")].into(),
        repositories: ["yelb-appserver-v2".to_string()].into(),
        clusters: [CLUSTER.to_string()].into(),
        node_groups: [format!("{CLUSTER}/{NODE_GROUP}")].into(),
        listed: 7,
    }
}

/// The managed policies attached to `role`.
async fn attached(moto: &Moto, role: &str) -> BTreeSet<String> {
    let out = moto
        .iam()
        .await
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    out.attached_policies()
        .iter()
        .map(|p| p.policy_arn().unwrap().to_string())
        .collect()
}

/// Asserts the EKS stack's AWS resources exist exactly once and nothing
/// else does.
async fn assert_exactly_the_eks_stack(moto: &Moto) {
    let inventory = Inventory::read_stack(moto, FULL_STACK).await;
    inventory.assert_baseline(moto).await;
    let foreign = foreign_ec2_objects(moto, FULL_STACK).await;
    assert!(
        foreign.is_empty(),
        "objects the stack did not declare: {foreign:#?}"
    );
    assert_eq!(Names::read(moto).await, eks_names());
    let aws = |n: &str| format!("arn:aws:iam::aws:policy/{n}");
    assert_eq!(
        attached(moto, &format!("{CLUSTER}-cluster")).await,
        [aws("AmazonEKSClusterPolicy")].into()
    );
    let nodes = attached(moto, &format!("{CLUSTER}-nodes")).await;
    assert_eq!(nodes.len(), 9, "{nodes:?}");
    let eks = moto.eks().await;
    let cluster = eks.describe_cluster().name(CLUSTER).send().await.unwrap();
    let cluster = cluster.cluster().unwrap();
    assert_eq!(cluster.resources_vpc_config().unwrap().subnet_ids().len(), 4);
    let ng = eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name(NODE_GROUP)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ng.nodegroup().unwrap().scaling_config().unwrap().desired_size(),
        Some(3)
    );
}

/// Apply, then destroy, of the EKS stack's AWS resources with the first
/// occurrence of every call type (IAM roles and their attachments, EKS
/// cluster and node group calls included) failing with `fault`.
async fn eks_under(fault: Fault) {
    let started = Instant::now();
    let moto = Moto::start();
    let dir = Workdir::new(&format!("faults-eks-{fault:?}"));
    let stack = eks_aws_stack(&dir);
    let stack = stack.to_str().unwrap();

    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::first_of_each_call(fault));
    let out = expect_code(
        via(&proxy, &dir.path, &moto, &["apply", stack, "--auto-approve"]),
        0,
    );
    let log = stderr(&out);
    assert_create_counts(&proxy, fault, EKS_CREATES, &log);
    assert_faulted(
        &proxy,
        &[
            "AttachRolePolicy",
            "GetRole",
            "GET /clusters/*",
            "GET /clusters/*/node-groups/*",
        ],
    );
    drop(proxy);
    assert_exactly_the_eks_stack(&moto).await;
    expect_code(
        direct(&dir.path, &moto, &["plan", stack, "--detailed-exitcode"]),
        0,
    );

    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::first_of_each_call(fault));
    expect_code(
        via(&proxy, &dir.path, &moto, &["destroy", stack, "--auto-approve"]),
        0,
    );
    assert_faulted(
        &proxy,
        &[
            "DELETE /clusters/*",
            "DELETE /clusters/*/node-groups/*",
            "DetachRolePolicy",
            "DeleteRole",
        ],
    );
    drop(proxy);
    assert_nothing_left(&moto, FULL_STACK).await;
    eprintln!(
        "EKS stack under {fault:?}: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_stack_survives_server_errors() {
    eks_under(Fault::ServerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_stack_survives_unavailable() {
    eks_under(Fault::Unavailable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_stack_survives_throttling() {
    eks_under(Fault::Throttling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_stack_survives_connection_resets() {
    eks_under(Fault::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_stack_survives_dropped_answers() {
    eks_under(Fault::DropResponse).await;
}

/// The pending creates of a state file: address to (type, token).
fn pending_tokens(state: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    state["pending"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(a, v)| {
                    (
                        a.clone(),
                        (
                            v["type"].as_str().unwrap().to_string(),
                            v["token"].as_str().unwrap().to_string(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The client tokens the requests of call type `call` carried: `ClientToken`
/// of the EC2 query protocol, or `clientRequestToken` of EKS's JSON bodies.
fn sent(proxy: &FaultProxy, call: &str) -> BTreeSet<String> {
    proxy
        .calls(call)
        .iter()
        .map(|r| {
            r.query_param("ClientToken")
                .or_else(|| r.json_field("clientRequestToken"))
                .unwrap_or_else(|| panic!("{call} without a client token: {}", r.body))
        })
        .collect()
}

/// Each create whose API takes a client token sends the idempotency token
/// state recorded for it before the call: CreateNatGateway and
/// CreateRouteTable (`ClientToken`), EKS CreateCluster and CreateNodegroup
/// (`clientRequestToken`). (The other creates of these stacks take none:
/// CreateVpc, CreateSubnet, CreateInternetGateway, AttachInternetGateway,
/// AllocateAddress, CreateRoute, AssociateRouteTable, CreatePolicy,
/// CreateRole, CreateRepository.)
///
/// A `fail-after-create` failpoint fails the step right after the cloud
/// call returned and before state records the result, so the pending entry
/// written before the call (with its token) stays in the state file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_send_the_recorded_token_as_client_token() {
    let moto = Moto::start();
    let dir = Workdir::new("client-tokens");
    let stack = eks_aws_stack(&dir);
    let stack = stack.to_str().unwrap();
    let state_file = dir.state_file(FULL_STACK);

    let first = [
        "nat_gateway_1",
        "nat_gateway_2",
        "public_route_table",
        "private_route_table_1",
        "private_route_table_2",
        "cluster",
    ];
    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::new());
    let mut cmd = meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]);
    cmd.envs(proxy.env()).env(
        "MESHFORM_FAILPOINT",
        first
            .iter()
            .map(|a| format!("fail-after-create:{a}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    expect_code(timed(cmd), 1);
    let pending = pending_tokens(&read_state(&state_file));
    let addresses: BTreeSet<&str> = pending.keys().map(String::as_str).collect();
    assert_eq!(addresses, first.into_iter().collect(), "{pending:?}");

    let recorded = |kind: &str| {
        pending
            .values()
            .filter(|(t, _)| t == kind)
            .map(|(_, token)| token.clone())
            .collect::<BTreeSet<String>>()
    };
    assert_eq!(sent(&proxy, "CreateNatGateway"), recorded("aws.ec2.nat_gateway"));
    assert_eq!(sent(&proxy, "CreateRouteTable"), recorded("aws.ec2.route_table"));
    assert_eq!(sent(&proxy, "POST /clusters"), recorded("aws.eks.cluster"));
    assert_eq!(recorded("aws.eks.cluster").len(), 1);
    drop(proxy);

    // The next run resolves those (found by tags or name) and gets to the
    // node group.
    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::new());
    let mut cmd = meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]);
    cmd.envs(proxy.env())
        .env("MESHFORM_FAILPOINT", "fail-after-create:node_group");
    let out = expect_code(timed(cmd), 1);
    let pending = pending_tokens(&read_state(&state_file));
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        ["node_group"],
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sent(&proxy, "POST /clusters/*/node-groups"),
        [pending["node_group"].1.clone()].into()
    );
    // Nothing was created twice: the resolved creates were not sent again.
    assert!(proxy.calls("CreateNatGateway").is_empty());
    assert!(proxy.calls("CreateRouteTable").is_empty());
    assert!(proxy.calls("POST /clusters").is_empty());
    drop(proxy);

    expect_code(direct(&dir.path, &moto, &["apply", stack, "--auto-approve"]), 0);
    assert_exactly_the_eks_stack(&moto).await;
    expect_code(
        direct(&dir.path, &moto, &["plan", stack, "--detailed-exitcode"]),
        0,
    );
}

/// Asserts that every object of the baseline that moto holds is accounted
/// for by `state`: recorded with its id, or (untagged kinds) with its
/// natural key, or named by a pending create that the next run resolves.
async fn assert_state_accounts_for_moto(moto: &Moto, state: &serde_json::Value) {
    let resources = state["resources"].as_object().cloned().unwrap_or_default();
    let pending = state["pending"].as_object().cloned().unwrap_or_default();
    let tagged = |tags: &[aws_sdk_ec2::types::Tag]| {
        tags.iter()
            .find(|t| t.key() == Some("meshform:address"))
            .and_then(|t| t.value().map(str::to_string))
            .expect("the object carries its address tag")
    };
    let accounted = |address: &str, id: &str| {
        resources.get(address).is_some_and(|r| r["id"] == id) || pending.contains_key(address)
    };
    // An untagged object: a recorded resource or a pending create of `kind`
    // whose attributes include `key`.
    let by_key = |kind: &str, key: &[(&str, &str)]| {
        let matches = |attrs: &serde_json::Value| key.iter().all(|(k, v)| attrs[*k] == *v);
        resources
            .values()
            .any(|r| r["type"] == kind && matches(&r["attributes"]))
            || pending
                .values()
                .any(|p| p["type"] == kind && matches(&p["desired"]))
    };
    let inv = Inventory::read(moto).await;
    let mut missing = Vec::new();
    for v in &inv.vpcs {
        let id = v.vpc_id().unwrap();
        if !accounted(&tagged(v.tags()), id) {
            missing.push(id.to_string());
        }
    }
    for s in &inv.subnets {
        let id = s.subnet_id().unwrap();
        if !accounted(&tagged(s.tags()), id) {
            missing.push(id.to_string());
        }
    }
    for g in &inv.internet_gateways {
        let id = g.internet_gateway_id().unwrap();
        if !accounted(&tagged(g.tags()), id) {
            missing.push(id.to_string());
        }
        for a in g.attachments() {
            let key = [("internet_gateway_id", id), ("vpc_id", a.vpc_id().unwrap())];
            if !by_key("aws.ec2.internet_gateway_attachment", &key) {
                missing.push(format!("attachment of {id}"));
            }
        }
    }
    for a in &inv.addresses {
        let id = a.allocation_id().unwrap();
        if !accounted(&tagged(a.tags()), id) {
            missing.push(id.to_string());
        }
    }
    for n in &inv.nat_gateways {
        let id = n.nat_gateway_id().unwrap();
        if !accounted(&tagged(n.tags()), id) {
            missing.push(id.to_string());
        }
    }
    for t in &inv.route_tables {
        let id = t.route_table_id().unwrap();
        if !accounted(&tagged(t.tags()), id) {
            missing.push(id.to_string());
        }
        for r in t.routes() {
            let Some(dest) = r.destination_cidr_block().filter(|d| *d == "0.0.0.0/0") else {
                continue;
            };
            if !by_key(
                "aws.ec2.route",
                &[("route_table_id", id), ("destination_cidr_block", dest)],
            ) {
                missing.push(format!("route {dest} in {id}"));
            }
        }
        for a in t.associations() {
            let Some(subnet) = a.subnet_id() else { continue };
            if !by_key(
                "aws.ec2.route_table_association",
                &[("route_table_id", id), ("subnet_id", subnet)],
            ) {
                missing.push(format!("association of {subnet} with {id}"));
            }
        }
    }
    for p in &inv.policies {
        if !accounted("nodes_sd_policy", p.arn().unwrap()) {
            missing.push(p.arn().unwrap().to_string());
        }
    }
    for r in &inv.repositories {
        if !accounted("ecr_repository", r.repository_name().unwrap()) {
            missing.push(r.repository_name().unwrap().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "in moto but not in state: {missing:?}\nstate: {state:#}"
    );
}

/// Ctrl-C while several creates are in flight (every answer delayed by the
/// proxy): meshform starts nothing new, lets the calls in flight finish and
/// records them, and exits 130 in bounded time; everything moto then holds
/// is in state (or pending, for the next run to resolve); the next run
/// completes the stack exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_with_calls_in_flight_records_them_and_the_next_run_converges() {
    let moto = Moto::start();
    let dir = Workdir::new("faults-interrupt");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    let proxy = FaultProxy::with_plan(
        moto.port,
        FaultPlan::new().delay_responses(Duration::from_millis(1500)),
    );
    let mut cmd = meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]);
    cmd.envs(proxy.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut child_stdout = child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = child_stdout.read_to_string(&mut s);
        s
    });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let (mut creating, mut created) = (0, 0);
    let mut sent_at = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.ends_with(": creating...") {
            creating += 1;
        }
        if line.contains(": created ") {
            created += 1;
        }
        // Past the first wave (the VPC done, its subnets and route tables
        // going), with several creates in flight.
        if creating >= 8 && creating - created >= 4 {
            // Ctrl-C.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
            sent_at = Some(Instant::now());
            break;
        }
    }
    let sent_at = sent_at.unwrap_or_else(|| panic!("never several creates in flight:\n{seen}"));
    let in_flight = creating - created;
    let in_flight_at_interrupt = proxy.requests().len();
    // Drain stderr on a thread; wait for the exit with a bound.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        for line in lines {
            let Ok(line) = line else { break };
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent_at.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("meshform did not exit within 90s of Ctrl-C:\n{seen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let exited_after = sent_at.elapsed();
    seen.push_str(&drain.join().unwrap());
    let out = stdout_reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}\n{out}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert!(out.contains("Apply interrupted"), "{out}");
    // The in-flight creates went on after the signal.
    assert!(proxy.requests().len() > in_flight_at_interrupt, "{seen}");
    let started: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_suffix(": creating..."))
        .collect();
    let finished = seen.lines().filter(|l| l.contains(": created ")).count();
    assert!(started.len() >= 4 && finished >= 4, "{seen}");
    // Every step that started ended: created (its call was in flight), or,
    // when it had not called the cloud yet, not started (none of these
    // creates fails).
    for address in &started {
        assert!(
            seen.contains(&format!("{address}: created "))
                || seen.contains(&format!("{address}: create not started")),
            "{address}:\n{seen}"
        );
    }
    assert!(seen.contains("not started (the run stopped)"), "{seen}");
    eprintln!(
        "interrupt: {} creates started, at least {in_flight} in flight at Ctrl-C, exited {:.1}s after it",
        started.len(),
        exited_after.as_secs_f64()
    );
    drop(proxy);

    let state = read_state(&dir.state_file(STACK));
    assert_state_accounts_for_moto(&moto, &state).await;

    expect_code(direct(&dir.path, &moto, &["apply", stack, "--auto-approve"]), 0);
    assert_exactly_the_baseline(&moto).await;
    expect_code(
        direct(&dir.path, &moto, &["plan", stack, "--detailed-exitcode"]),
        0,
    );
}

/// A stack whose creates, updates and deletes make calls after the primary
/// one that are not idempotent by nature: security group rules (authorize
/// and revoke), managed policy versions, role policy attachments.
const SECONDARY: &str = r#"
[stack]
name = "secondary"
region = "us-west-2"

[vars]
port = 443
action = "s3:GetObject"
description = "first"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.60.0.0/16"

[resource.web]
type = "aws.ec2.security_group"
name = "web"
vpc_id = "${vpc.id}"
ingress = [
  { protocol = "tcp", from_port = "${var.port}", to_port = "${var.port}", cidr_blocks = ["10.0.0.0/8", "192.168.0.0/16"] },
  { protocol = "icmp", from_port = 8, to_port = 0, cidr_blocks = ["10.0.0.0/8"] },
]
egress = [
  { protocol = "tcp", from_port = "${var.port}", to_port = "${var.port}", cidr_blocks = ["0.0.0.0/0"] },
]

[resource.policy]
type = "aws.iam.policy"
name = "secondary-policy"
policy = { Version = "2012-10-17", Statement = [ { Effect = "Allow", Action = ["${var.action}"], Resource = "*" } ] }

[resource.role]
type = "aws.iam.role"
name = "secondary-role"
description = "${var.description}"
managed_policy_arns = ["${policy.arn}", "AmazonEKSClusterPolicy"]
assume_role_policy = { Version = "2012-10-17", Statement = [ { Effect = "Allow", Principal = { Service = "eks.amazonaws.com" }, Action = "sts:AssumeRole" } ] }
"#;

/// The rules of security group `web`: (direction, protocol, from, to, CIDR).
async fn web_rules(moto: &Moto) -> BTreeSet<(String, String, i32, i32, String)> {
    let groups = moto
        .ec2()
        .await
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups().len(), 1, "{groups:?}");
    let g = &groups.security_groups()[0];
    let mut out = BTreeSet::new();
    for (dir, perms) in [("in", g.ip_permissions()), ("out", g.ip_permissions_egress())] {
        for p in perms {
            for r in p.ip_ranges() {
                out.insert((
                    dir.to_string(),
                    p.ip_protocol().unwrap_or_default().to_string(),
                    p.from_port().unwrap_or(0),
                    p.to_port().unwrap_or(0),
                    r.cidr_ip().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    out
}

/// Creates, updates and deletes whose calls after the primary one lose
/// their answers (the first occurrence of every call type): the SDK sends
/// those again (they are not creates of a whole object), so each must
/// take "already there" / "already gone" as success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_calls_survive_dropped_answers() {
    let moto = Moto::start();
    let dir = Workdir::new("faults-secondary");
    let file = dir.write("secondary.toml", SECONDARY);
    let file = file.to_str().unwrap();
    let drop_first = || FaultProxy::with_plan(moto.port, FaultPlan::first_of_each_call(Fault::DropResponse));
    let rule = |d: &str, p: &str, from: i32, to: i32, cidr: &str| {
        (d.to_string(), p.to_string(), from, to, cidr.to_string())
    };

    let proxy = drop_first();
    expect_code(
        via(&proxy, &dir.path, &moto, &["apply", file, "--auto-approve"]),
        0,
    );
    assert_faulted(
        &proxy,
        &[
            "AuthorizeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "AuthorizeSecurityGroupEgress",
            "AttachRolePolicy",
        ],
    );
    drop(proxy);
    assert_eq!(
        web_rules(&moto).await,
        [
            rule("in", "tcp", 443, 443, "10.0.0.0/8"),
            rule("in", "tcp", 443, 443, "192.168.0.0/16"),
            rule("in", "icmp", 8, 0, "10.0.0.0/8"),
            rule("out", "tcp", 443, 443, "0.0.0.0/0"),
        ]
        .into()
    );
    expect_code(
        direct(&dir.path, &moto, &["plan", file, "--detailed-exitcode"]),
        0,
    );

    // In-place updates: other rules (revoke, then authorize), a new policy
    // version, the role's description.
    let vars = [
        "--var",
        "port=8443",
        "--var",
        "action=s3:PutObject",
        "--var",
        "description=second",
    ];
    let proxy = drop_first();
    let mut args = vec!["apply", file, "--auto-approve"];
    args.extend(vars);
    let out = expect_code(via(&proxy, &dir.path, &moto, &args), 0);
    for call in [
        "RevokeSecurityGroupIngress",
        "AuthorizeSecurityGroupIngress",
        "CreatePolicyVersion",
        "UpdateRole",
    ] {
        assert!(
            proxy.faulted_calls().iter().any(|c| c == call),
            "{call} not faulted\n{}",
            stderr(&out)
        );
    }
    drop(proxy);
    assert_eq!(
        web_rules(&moto).await,
        [
            rule("in", "tcp", 8443, 8443, "10.0.0.0/8"),
            rule("in", "tcp", 8443, 8443, "192.168.0.0/16"),
            rule("in", "icmp", 8, 0, "10.0.0.0/8"),
            rule("out", "tcp", 8443, 8443, "0.0.0.0/0"),
        ]
        .into()
    );
    let iam = moto.iam().await;
    let policy = Names::read(&moto).await;
    assert_eq!(policy.local_policies, ["secondary-policy".to_string()].into());
    let arn = "arn:aws:iam::123456789012:policy/secondary-policy";
    let versions = iam.list_policy_versions().policy_arn(arn).send().await.unwrap();
    // v1 and the update's version: a version made by a call whose answer
    // was lost is not made again.
    assert_eq!(versions.versions().len(), 2, "{versions:?}");
    let mut plan = vec!["plan", file, "--detailed-exitcode"];
    plan.extend(vars);
    expect_code(direct(&dir.path, &moto, &plan), 0);

    let proxy = drop_first();
    let mut args = vec!["destroy", file, "--auto-approve"];
    args.extend(vars);
    expect_code(via(&proxy, &dir.path, &moto, &args), 0);
    drop(proxy);
    assert_eq!(Names::read(&moto).await, Names::default());
    assert!(foreign_ec2_objects(&moto, "secondary").await.is_empty());
    let left = moto.ec2().await.describe_vpcs().send().await.unwrap();
    assert!(
        left.vpcs().iter().all(|v| v.is_default() == Some(true)),
        "{left:?}"
    );
}

/// A policy at IAM's limit of five versions is updated while the answers
/// of its first DeletePolicyVersion and CreatePolicyVersion are lost: the
/// SDK sends the delete again (it finds the version gone: success); the
/// create is not sent again because the lookup finds the version it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_version_calls_survive_dropped_answers_at_the_version_limit() {
    use meshform::provider::aws::iam_policy::IamPolicy;
    use meshform::provider::{InPlace, OpContext, ResourceKind, ownership_tags};

    let moto = Moto::start();
    let cx = OpContext {
        stack: "versions".into(),
        address: "policy".into(),
        token: "tok".into(),
        ..Default::default()
    };
    let desired = |action: &str| -> meshform::Attrs {
        let mut a = meshform::Attrs::new();
        a.insert("name".into(), "versioned".into());
        a.insert("path".into(), "/".into());
        a.insert(
            "policy".into(),
            serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": [action], "Resource": "*"}]}),
        );
        a.insert(
            "tags".into(),
            meshform::provider::tags_value(ownership_tags(&cx.stack, &cx.address)),
        );
        a
    };
    let direct = IamPolicy(moto.clients().await);
    let mut live = direct.create(&cx, &desired("s3:Action0")).await.unwrap();
    for i in 1..5 {
        live = direct
            .update(
                &cx,
                InPlace {
                    prior: &live,
                    desired: &desired(&format!("s3:Action{i}")),
                    changed: &["policy".to_string()],
                },
            )
            .await
            .unwrap();
    }
    let iam = moto.iam().await;
    let count = || async {
        iam.list_policy_versions()
            .policy_arn(&live.id)
            .send()
            .await
            .unwrap()
            .versions()
            .len()
    };
    assert_eq!(count().await, 5);

    let proxy = FaultProxy::with_plan(
        moto.port,
        FaultPlan::new()
            .on_call("DeletePolicyVersion", Fault::DropResponse, 1)
            .on_call("CreatePolicyVersion", Fault::DropResponse, 1),
    );
    let faulty = IamPolicy(proxy.clients().await);
    let updated = faulty
        .update(
            &cx,
            InPlace {
                prior: &live,
                desired: &desired("s3:Action5"),
                changed: &["policy".to_string()],
            },
        )
        .await
        .expect("update despite the lost answers");
    assert_eq!(
        proxy.calls("DeletePolicyVersion").len(),
        2,
        "the SDK sent it again"
    );
    assert_eq!(
        proxy.calls("CreatePolicyVersion").len(),
        1,
        "found, not sent again"
    );
    assert_eq!(count().await, 5);
    let default = updated.attrs["default_version_id"].as_str().unwrap().to_string();
    let version = iam
        .get_policy_version()
        .policy_arn(&live.id)
        .version_id(&default)
        .send()
        .await
        .unwrap();
    let version = version.policy_version().unwrap();
    assert!(version.is_default_version());
    assert!(version.document().unwrap().contains("s3:Action5"));
}

/// When a create's answer is lost and the lookup that follows fails too
/// (here DescribeVpcs fails more often than the SDK retries it), the engine
/// cannot tell whether the create took effect: it gives up rather than
/// create again, keeps the pending record, and the next run finds the VPC
/// by its tags. (The engine used to take the failed lookup for "nothing was
/// made" and make a second VPC.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lookup_after_a_lost_answer_does_not_create_twice() {
    let moto = Moto::start();
    let dir = Workdir::new("faults-lookup");
    let file = dir.write(
        "one.toml",
        "[stack]\nname = \"one\"\nregion = \"us-west-2\"\n\n[resource.vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.70.0.0/16\"\n",
    );
    let file = file.to_str().unwrap();
    let proxy = FaultProxy::with_plan(
        moto.port,
        FaultPlan::new()
            .on_call("CreateVpc", Fault::DropResponse, 1)
            .on_call("DescribeVpcs", Fault::ServerError, 3),
    );
    let _ = crate::support::cli::run(via(&proxy, &dir.path, &moto, &["apply", file, "--auto-approve"]));
    let vpcs = moto.ec2().await.describe_vpcs().send().await.unwrap();
    let ours = vpcs
        .vpcs()
        .iter()
        .filter(|v| v.is_default() != Some(true))
        .count();
    assert_eq!(ours, 1, "CreateVpc sent {} times", proxy.calls("CreateVpc").len());
    drop(proxy);
    let out = crate::support::cli::expect_code(
        meshform(&dir.path, Some(&moto), &["apply", file, "--auto-approve"]),
        0,
    );
    assert!(
        crate::support::cli::stderr(&out).contains("created by an interrupted run"),
        "{}",
        crate::support::cli::stderr(&out)
    );
    let vpcs = moto.ec2().await.describe_vpcs().send().await.unwrap();
    assert_eq!(
        vpcs.vpcs()
            .iter()
            .filter(|v| v.is_default() != Some(true))
            .count(),
        1
    );
}

/// Each of `calls` was hit by a fault of the proxy's plan.
fn assert_faulted(proxy: &FaultProxy, calls: &[&str]) {
    let faulted = proxy.faulted_calls();
    for call in calls {
        assert!(
            faulted.iter().any(|c| c == call),
            "{call} not faulted: {faulted:?}"
        );
    }
}

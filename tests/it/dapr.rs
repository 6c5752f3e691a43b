//! `stacks/dapr-elasticache.toml`: Dapr's hello-kubernetes quickstart with
//! an ElastiCache state store. AWS is moto behind a recording proxy
//! (support/fault_proxy.rs); the cluster is the fake API server of
//! testsupport/fake-kube (nothing runs: no sidecars are injected, the
//! webhook is stored and never called); helm is the real Helm 4 installing
//! the chart fixture tests/data/charts/dapr from a local chart repository.
//!
//! What moto cannot do, and what the tests do instead (each said where it
//! happens):
//! - EKS: moto's DescribeCluster has no cluster security group
//!   (`cluster_security_group_id` is empty; asserted). The copied stack
//!   names a security group of its own in its place (`stand_in_cluster_groups`),
//!   so the rules on it are real rules read back from moto.
//! - ElastiCache: a replication group keeps no subnet group or security
//!   groups in moto (it makes no member cache clusters), so they are shown
//!   by the CreateReplicationGroup request the proxy recorded, beside the
//!   subnet group and the security group read back on their own. moto
//!   leaves a deleted replication group `deleting` forever and does not
//!   implement DeleteCacheSubnetGroup (HTTP 500): the proxy answers the
//!   group's describes after its delete as AWS does once it is gone
//!   (`ReplicationGroupNotFoundFault`) and answers DeleteCacheSubnetGroup as
//!   done; the test checks both calls were sent.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::support::cli::{expect_code, stderr};
use crate::support::fault_proxy::{Fault, FaultPlan, FaultProxy};
use crate::support::inventory::Inventory;
use crate::support::walkthrough::Walkthrough;

pub const DAPR_REPO: &str = "https://dapr.github.io/helm-charts/";
const STACK: &str = "dapr-elasticache";
const CLUSTER: &str = "dapr-elasticache-eks";
const CACHE: &str = "dapr-elasticache-eks-state";
const SUBNET_GROUP: &str = "dapr-elasticache-eks-cache";
const TOKEN: &str = "Dapr-state-token-4e1c9b";
const DAPR_CRDS: [&str; 5] = [
    "components.dapr.io",
    "configurations.dapr.io",
    "httpendpoints.dapr.io",
    "resiliencies.dapr.io",
    "subscriptions.dapr.io",
];

/// The Dapr stack's run, with its fakes.
pub fn start(name: &str) -> Walkthrough {
    let w = Walkthrough::start_stack(name, "dapr-elasticache.toml", &["dapr"], DAPR_REPO);
    w.kube.set_crd_establish_delay(Duration::from_millis(200));
    w.kube.set_auto_complete_load_balancers(true);
    // The apps and the Component live in `default`, which every cluster has.
    w.kube.create_initial_namespaces();
    stand_in_cluster_groups(&w, &["cluster"]);
    w
}

/// moto's EKS gives a cluster no cluster security group: in the copied
/// stack, every `${<cluster>.cluster_security_group_id}` of the clusters
/// named becomes a security group of the stack's own on the VPC
/// (`<cluster>_group_stand_in`), so that the rules on it are made and read
/// back for real. The stack must name each at least once.
pub fn stand_in_cluster_groups(w: &Walkthrough, clusters: &[&str]) {
    let path = w.stack();
    let mut text = std::fs::read_to_string(&path).unwrap();
    for cluster in clusters {
        let reference = format!("${{{cluster}.cluster_security_group_id}}");
        assert!(text.contains(&reference), "the stack names {reference}");
        let stand_in = format!("{cluster}_group_stand_in");
        text = text.replace(&reference, &format!("${{{stand_in}.id}}"));
        text.push_str(&format!(
            r#"
# Test only: moto's EKS makes no cluster security group; this stands in.
[resource.{stand_in}]
type = "aws.ec2.security_group"
name = "{stand_in}"
description = "stands in for the cluster security group of {cluster}"
vpc_id = "${{vpc.id}}"
"#
        ));
    }
    std::fs::write(&path, text).unwrap();
}

/// The proxy in front of moto: records every call, and stands in for
/// AWS where moto never finishes or does not implement a cache delete.
pub fn cache_proxy(w: &Walkthrough) -> FaultProxy {
    FaultProxy::with_plan(
        w.moto.port,
        FaultPlan::new()
            .on_call_after(
                "DescribeReplicationGroups",
                "DeleteReplicationGroup",
                Fault::NotFound("ReplicationGroupNotFoundFault"),
            )
            .on_call("DeleteCacheSubnetGroup", Fault::Done, usize::MAX),
    )
}

/// `meshform <args> --var redis_auth_token=<token>` through `proxy`.
pub fn run(w: &Walkthrough, proxy: &FaultProxy, args: &[&str], token: &str) -> std::process::Command {
    let var = format!("redis_auth_token={token}");
    let mut all = args.to_vec();
    all.extend(["--var", var.as_str()]);
    let mut cmd = w.meshform(&all);
    cmd.envs(proxy.env());
    cmd
}

/// Where `needle` first starts a line of `events`.
fn line_of(events: &str, needle: &str) -> usize {
    events
        .lines()
        .position(|l| l.starts_with(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{events}"))
}

fn secret_value(secret: &Value, key: &str) -> Option<String> {
    if let Some(v) = secret["stringData"][key].as_str() {
        return Some(v.to_string());
    }
    let data = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    String::from_utf8(bytes).ok()
}

async fn group_id(ec2: &aws_sdk_ec2::Client, name: &str) -> Option<String> {
    let out = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values(name)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.security_groups()
        .first()
        .and_then(|g| g.group_id())
        .map(str::to_string)
}

/// (protocol, from, to, source group or "self") of the ingress rules of `group`.
async fn ingress_rules(ec2: &aws_sdk_ec2::Client, group: &str) -> Vec<(String, i32, i32, String)> {
    let out = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(group)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut rules: Vec<_> = out
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() == Some(false))
        .map(|r| {
            let source = r
                .referenced_group_info()
                .and_then(|g| g.group_id())
                .map(|g| {
                    if g == group {
                        "self".to_string()
                    } else {
                        g.to_string()
                    }
                })
                .unwrap_or_default();
            (
                r.ip_protocol().unwrap_or_default().to_string(),
                r.from_port().unwrap_or(-1),
                r.to_port().unwrap_or(-1),
                source,
            )
        })
        .collect();
    rules.sort();
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dapr_stack_applies_with_its_cache_and_tears_down_in_order() {
    let w = start("dapr");
    let proxy = cache_proxy(&w);
    let stack = w.stack();
    let stack = stack.to_str().unwrap();

    expect_code(run(&w, &proxy, &["apply", stack, "--auto-approve"], TOKEN), 0);

    // moto's EKS has no cluster security group: why the stand-in exists.
    let eks = w.moto.eks().await;
    let cluster = eks.describe_cluster().name(CLUSTER).send().await.unwrap();
    let vpc_config = cluster.cluster().and_then(|c| c.resources_vpc_config());
    assert_eq!(
        vpc_config.and_then(|v| v.cluster_security_group_id()),
        None,
        "moto now gives a cluster security group: use it instead of the stand-in"
    );

    // The rules: 4000 on the (stand-in) cluster group from itself; 6379
    // into the cache's group from the nodes' (cluster) group.
    let ec2 = w.moto.ec2().await;
    let cluster_sg = group_id(&ec2, "cluster_group_stand_in")
        .await
        .expect("stand-in group");
    let cache_sg = group_id(&ec2, "dapr-elasticache-eks-cache")
        .await
        .expect("cache group");
    assert_eq!(
        ingress_rules(&ec2, &cluster_sg).await,
        vec![("tcp".to_string(), 4000, 4000, "self".to_string())]
    );
    assert_eq!(
        ingress_rules(&ec2, &cache_sg).await,
        vec![("tcp".to_string(), 6379, 6379, cluster_sg.clone())]
    );

    // The cache, read back: encryption in transit, AUTH on, one node.
    let ec = w.moto.elasticache().await;
    let groups = ec
        .describe_replication_groups()
        .replication_group_id(CACHE)
        .send()
        .await
        .unwrap();
    let group = &groups.replication_groups()[0];
    assert_eq!(group.transit_encryption_enabled(), Some(true));
    assert_eq!(group.auth_token_enabled(), Some(true));
    assert_eq!(group.cache_node_type(), Some("cache.t3.micro"));
    assert_eq!(group.status(), Some("available"));
    let endpoint = group.node_groups()[0]
        .primary_endpoint()
        .expect("primary endpoint");
    let redis_host = format!("{}:{}", endpoint.address().unwrap(), endpoint.port().unwrap());
    assert!(redis_host.ends_with(":6379"), "{redis_host}");
    // Its subnet group, on the two private subnets.
    let subnet_groups = ec
        .describe_cache_subnet_groups()
        .cache_subnet_group_name(SUBNET_GROUP)
        .send()
        .await
        .unwrap();
    let mut subnets: Vec<String> = subnet_groups.cache_subnet_groups()[0]
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier().map(str::to_string))
        .collect();
    subnets.sort();
    let by_cidr = Inventory::read_stack(&w.moto, STACK).await.subnet_ids();
    let mut private: Vec<String> = ["10.192.20.0/24", "10.192.21.0/24"]
        .iter()
        .map(|c| {
            by_cidr
                .get(*c)
                .unwrap_or_else(|| panic!("subnet {c}: {by_cidr:?}"))
                .clone()
        })
        .collect();
    private.sort();
    assert_eq!(subnets, private);
    // moto keeps neither on the group: the create request named them.
    let create = proxy.calls("CreateReplicationGroup");
    assert_eq!(create.len(), 1);
    assert_eq!(
        create[0].query_param("CacheSubnetGroupName").as_deref(),
        Some(SUBNET_GROUP)
    );
    assert_eq!(
        create[0]
            .query_param("SecurityGroupIds.SecurityGroupId.1")
            .as_deref(),
        Some(cache_sg.as_str()),
        "{}",
        create[0].body
    );
    assert_eq!(
        create[0].query_param("TransitEncryptionEnabled").as_deref(),
        Some("true")
    );

    // Dapr: the release, its CRDs, its control plane, the injector's webhook.
    let meta = w
        .helm
        .json(&w.kubeconfig(), &["get", "metadata", "dapr", "-n", "dapr-system"]);
    assert_eq!(meta["status"], "deployed");
    assert_eq!(meta["version"], "1.16.2");
    for crd in DAPR_CRDS {
        assert!(
            w.kube
                .object("apiextensions.k8s.io/v1", "customresourcedefinitions", None, crd)
                .is_some(),
            "CRD {crd}"
        );
    }
    for name in [
        "dapr-operator",
        "dapr-placement-server",
        "dapr-sentry",
        "dapr-sidecar-injector",
    ] {
        let d = w
            .kube
            .object("apps/v1", "deployments", Some("dapr-system"), name)
            .unwrap_or_else(|| panic!("Deployment {name}"));
        // `dapr_ha` (false) reached the chart as a boolean: one replica.
        assert_eq!(d["spec"]["replicas"], 1, "{name}");
    }
    let webhook = w
        .kube
        .object(
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            None,
            "dapr-sidecar-injector",
        )
        .expect("the injector's webhook");
    assert_eq!(
        webhook["webhooks"][0]["clientConfig"]["service"]["namespace"],
        "dapr-system"
    );

    // The state store on the cache, the password from the Secret.
    let component = w
        .kube
        .object("dapr.io/v1alpha1", "components", Some("default"), "statestore")
        .expect("the statestore Component");
    assert_eq!(component["spec"]["type"], "state.redis");
    let metadata: Vec<(String, Value)> = component["spec"]["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m.clone()))
        .collect();
    let item = |name: &str| {
        metadata
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {metadata:?}"))
    };
    assert_eq!(item("redisHost")["value"], redis_host.as_str());
    assert_eq!(item("enableTLS")["value"], "true");
    assert_eq!(item("redisPassword")["secretKeyRef"]["name"], "statestore-redis");
    let secret = w
        .kube
        .object("v1", "secrets", Some("default"), "statestore-redis")
        .expect("the Secret");
    assert_eq!(secret_value(&secret, "redis-password").as_deref(), Some(TOKEN));

    // The apps, with Dapr's annotations.
    for (name, app_id, port) in [
        ("nodeapp", "nodeapp", Some("3000")),
        ("pythonapp", "pythonapp", None),
    ] {
        let d = w
            .kube
            .object("apps/v1", "deployments", Some("default"), name)
            .unwrap_or_else(|| panic!("Deployment {name}"));
        let annotations = &d["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["dapr.io/enabled"], "true", "{name}");
        assert_eq!(annotations["dapr.io/app-id"], app_id, "{name}");
        assert_eq!(annotations["dapr.io/app-port"].as_str(), port, "{name}");
    }
    let svc = w
        .kube
        .object("v1", "services", Some("default"), "nodeapp")
        .expect("nodeapp's Service");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 3000);

    // Applied is applied: nothing to change.
    expect_code(run(&w, &proxy, &["plan", stack, "--detailed-exitcode"], TOKEN), 0);

    // Destroy, in the order the issue names.
    let out = expect_code(run(&w, &proxy, &["destroy", stack, "--auto-approve"], TOKEN), 0);
    let events = stderr(&out);
    for (first, then) in [
        ("nodeapp_service", "pythonapp"),
        ("pythonapp", "nodeapp"),
        ("nodeapp", "statestore"),
        ("statestore", "dapr"),
        ("statestore_secret", "dapr"),
        ("dapr", "cache"),
        ("cache", "cache_from_nodes"),
        ("cache", "dapr_sidecar_rule"),
        ("dapr_sidecar_rule", "cluster"),
        ("cache_from_nodes", "cluster"),
    ] {
        assert!(
            line_of(&events, &format!("{first}: deleted"))
                < line_of(&events, &format!("{then}: deleting...")),
            "{first} before {then}:\n{events}"
        );
    }
    assert!(
        events.contains("deleting CustomResourceDefinition components.dapr.io"),
        "{events}"
    );

    // Nothing left in the cluster...
    for crd in DAPR_CRDS {
        assert!(
            w.kube
                .object("apiextensions.k8s.io/v1", "customresourcedefinitions", None, crd)
                .is_none(),
            "CRD {crd} left"
        );
    }
    for plural in ["deployments", "components", "mutatingwebhookconfigurations"] {
        assert!(w.kube.objects(plural).is_empty(), "{plural} left");
    }
    assert!(
        w.kube
            .object("v1", "secrets", Some("default"), "statestore-redis")
            .is_none()
    );
    let services: Vec<Value> = w
        .kube
        .objects("services")
        .into_iter()
        .filter(|s| s["metadata"]["name"] != "kubernetes")
        .collect();
    assert!(services.is_empty(), "Services left: {services:?}");
    assert!(w.kube.object("v1", "namespaces", None, "dapr-system").is_none());

    // ...nor in moto, but for what moto cannot delete: the cache stays
    // `deleting` there (its delete was sent once) and its subnet group is
    // still listed (DeleteCacheSubnetGroup, which moto lacks, was sent).
    Inventory::read_stack(&w.moto, STACK).await.assert_empty();
    assert!(eks.list_clusters().send().await.unwrap().clusters().is_empty());
    for name in ["cluster_group_stand_in", "dapr-elasticache-eks-cache"] {
        assert_eq!(group_id(&ec2, name).await, None, "security group {name} left");
    }
    assert_eq!(proxy.calls("DeleteReplicationGroup").len(), 1);
    let left = ec
        .describe_replication_groups()
        .replication_group_id(CACHE)
        .send()
        .await
        .unwrap();
    assert_eq!(left.replication_groups()[0].status(), Some("deleting"));
    let subnet_deletes = proxy.calls("DeleteCacheSubnetGroup");
    assert_eq!(subnet_deletes.len(), 1);
    assert_eq!(
        subnet_deletes[0].query_param("CacheSubnetGroupName").as_deref(),
        Some(SUBNET_GROUP)
    );
}

/// Long and unlike anything else in the output.
const SENTINEL: &str = "Sentinel-dapr-5c8e1f!tok";
const CHANGED: &str = "Sentinel-dapr-9a0b7d!tok";

/// The whole Dapr stack with a sentinel AUTH token: apply, a no-op plan, a
/// plan of a new token (a replacement of the cache, planned only: moto
/// cannot make a group under the id of one it keeps `deleting`), a change
/// applied (the cache's node type, in place) and destroy, with trace logs;
/// the token shows in no output and no file of the working directory, while
/// the cache's create request and the Secret carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dapr_stack_never_shows_or_stores_the_auth_token() {
    use crate::sensitive::{assert_hidden, files};
    use crate::support::cli::stdout;
    let w = start("dapr-sentinel");
    let proxy = cache_proxy(&w);
    let stack = w.stack();
    let stack = stack.to_str().unwrap();
    let go = |args: &[&str], token: &str, code: i32| -> String {
        let mut cmd = run(&w, &proxy, args, token);
        cmd.env("MESHFORM_LOG", "trace");
        let out = cmd.output().expect("meshform runs");
        let text = format!("{}\n{}", stdout(&out), stderr(&out));
        // Searched before the exit code is checked, so a leak fails first.
        let what = format!("meshform {args:?}");
        assert_hidden(&what, &text, SENTINEL);
        assert_hidden(&what, &text, CHANGED);
        assert_eq!(out.status.code(), Some(code), "{what}:\n{text}");
        text
    };
    let mut seen = Vec::new();

    let text = go(&["plan", stack], SENTINEL, 0);
    assert!(text.contains("(sensitive)"), "{text}");
    seen.push(("plan", text));
    seen.push(("plan --json", go(&["plan", stack, "--json"], SENTINEL, 0)));
    let text = go(&["apply", stack, "--auto-approve"], SENTINEL, 0);
    assert!(
        text.contains("TRACE") || text.contains("trace"),
        "no trace logs:\n{text}"
    );
    seen.push(("apply", text));

    // The cloud and the cluster got it.
    let create = proxy.calls("CreateReplicationGroup");
    assert_eq!(create[0].query_param("AuthToken").as_deref(), Some(SENTINEL));
    let secret = w
        .kube
        .object("v1", "secrets", Some("default"), "statestore-redis")
        .expect("the Secret");
    assert_eq!(secret_value(&secret, "redis-password").as_deref(), Some(SENTINEL));

    seen.push((
        "no-op plan",
        go(&["plan", stack, "--detailed-exitcode"], SENTINEL, 0),
    ));
    // A new token replaces the cache (ElastiCache's AUTH token rotation is
    // not modelled), and the Secret changes: shown hidden.
    let text = go(&["plan", stack, "--detailed-exitcode"], CHANGED, 2);
    assert!(text.contains("(sensitive)"), "{text}");
    assert!(text.contains("cache"), "{text}");
    seen.push(("plan of a new token", text));
    // A change applied with the token in the stack.
    let text = go(
        &[
            "apply",
            stack,
            "--auto-approve",
            "--var",
            "cache_node_type=cache.t3.small",
        ],
        SENTINEL,
        0,
    );
    assert!(text.contains("cache: updated"), "{text}");
    seen.push(("apply of a change", text));
    seen.push(("output", go(&["output", stack], SENTINEL, 0)));
    seen.push(("state show", go(&["state", "show", stack, "cache"], SENTINEL, 0)));
    seen.push((
        "destroy",
        go(
            &[
                "destroy",
                stack,
                "--auto-approve",
                "--var",
                "cache_node_type=cache.t3.small",
            ],
            SENTINEL,
            0,
        ),
    ));

    for (what, text) in &seen {
        assert_hidden(what, text, SENTINEL);
        assert_hidden(what, text, CHANGED);
    }
    let files = files(&w.dir.path);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("dapr-elasticache.json")),
        "no state file among {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, content) in files {
        assert_hidden(&path, &content, SENTINEL);
        assert_hidden(&path, &content, CHANGED);
    }
}

//! The whole walkthrough environment from one apply: network, cluster,
//! node group, the App Mesh controller release, the yelb namespace, the
//! Mesh and its members, the Yelb app; the canary as variables; and a
//! teardown that strands nothing. AWS is moto; the cluster is the fake API
//! server of testsupport/fake-kube (a fake, not Kubernetes); helm is the
//! real Helm 4 (support/real_helm.rs), installing the chart fixture
//! tests/data/charts/appmesh-controller from a local chart repository.

use std::time::Duration;

use serde_json::Value;

use crate::support::cli::{expect_code, stderr, stdout};
use crate::support::inventory::{FULL_STACK, Inventory, WalkthroughExtras};
use crate::support::walkthrough::Walkthrough;
use crate::support::walkthrough::assert_cluster_emptied;

const MESH: &str = "appmesh.k8s.aws/v1beta2";

/// The resources a plan changes, with their action, sorted.
pub(crate) fn changes(plan: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "no_op")
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The leaf paths that differ in one resource's changes, as the human plan
/// prints them (`yaml[4].spec...`).
pub(crate) fn plan_lines_for(text: &str, address: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("  ") && !line.starts_with("      ") {
            inside = line.contains(&format!(" {address} ("));
            continue;
        }
        if inside && line.starts_with("      ") && !line.trim_start().starts_with('#') {
            lines.push(line.trim().to_string());
        }
    }
    lines
}

fn weights(w: &Walkthrough) -> Vec<(String, i64)> {
    let router = w
        .kube
        .object(MESH, "virtualrouters", Some("yelb"), "yelb-appserver")
        .expect("router");
    router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["virtualNodeRef"]["name"].as_str().unwrap().to_string(),
                t["weight"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apply_builds_the_walkthrough_then_canary_and_ordered_teardown() {
    let w = Walkthrough::start("in-cluster");
    w.kube.set_crd_establish_delay(Duration::from_millis(400));
    let stack = w.stack();
    let stack = stack.to_str().unwrap();

    // Planning from empty state needs no cluster: point the in-cluster
    // layer at a port where nothing listens.
    let mut plan = w.meshform(&["plan", stack, "--detailed-exitcode"]);
    plan.env("MESHFORM_KUBE_SERVER", "http://127.0.0.1:9");
    let out = expect_code(plan, 2);
    assert!(
        stdout(&out).contains("+ yelb_mesh (kube.manifest)"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("(known after apply)"), "{}", stdout(&out));

    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);

    // AWS side as before.
    Inventory::read_stack(&w.moto, FULL_STACK)
        .await
        .assert_baseline(&w.moto)
        .await;

    // Helm installed the controller chart with its version, namespace and
    // region: as meshform asked it...
    let installs = w.helm.calls_of("upgrade");
    assert_eq!(installs.len(), 1, "{installs:?}");
    let install = &installs[0];
    assert!(
        install.has("--install") && install.has("--wait=watcher"),
        "{:?}",
        install.argv
    );
    assert_eq!(install.flag("--namespace"), Some("appmesh-system"));
    assert_eq!(install.flag("--version"), Some("1.13.1"));
    assert_eq!(install.flag("--repo"), Some(w.repo.url.as_str()));
    assert_eq!(install.argv[3], "appmesh-controller");
    // ...and as the real helm reads the release back.
    let kubeconfig = w.kubeconfig();
    let get = |what: &str| {
        w.helm.json(
            &kubeconfig,
            &["get", what, "appmesh-controller", "-n", "appmesh-system"],
        )
    };
    let meta = get("metadata");
    assert_eq!(meta["chart"], "appmesh-controller");
    assert_eq!(meta["version"], "1.13.1");
    assert_eq!(meta["revision"], 1);
    assert_eq!(meta["status"], "deployed");
    assert_eq!(get("values"), serde_json::json!({"region": "us-west-2"}));
    let controller = w
        .kube
        .object(
            "apps/v1",
            "deployments",
            Some("appmesh-system"),
            "appmesh-controller",
        )
        .expect("the controller Deployment");
    assert_eq!(
        controller["metadata"]["annotations"]["meta.helm.sh/release-name"],
        "appmesh-controller"
    );
    assert!(
        w.kube
            .object(
                "v1",
                "secrets",
                Some("appmesh-system"),
                "sh.helm.release.v1.appmesh-controller.v1"
            )
            .is_some(),
        "helm's release record"
    );

    // Namespaces and labels.
    let yelb = w
        .kube
        .object("v1", "namespaces", None, "yelb")
        .expect("yelb namespace");
    assert_eq!(yelb["metadata"]["labels"]["mesh"], "yelb");
    assert_eq!(
        yelb["metadata"]["labels"]["appmesh.k8s.aws/sidecarInjectorWebhook"],
        "enabled"
    );
    assert!(
        w.kube
            .object("v1", "namespaces", None, "appmesh-system")
            .is_some()
    );

    // The Mesh and its selector.
    let mesh = w.kube.object(MESH, "meshes", None, "yelb").expect("mesh");
    assert_eq!(mesh["spec"]["namespaceSelector"]["matchLabels"]["mesh"], "yelb");

    // Per tier: virtual node, virtual service, Deployment and Service, with
    // images, ports and labels; the router for the app server.
    let tiers = [
        ("redis-server", "redis:4.0.2", 6379, "tcp", "cache"),
        ("yelb-db", "mreferre/yelb-db:0.5", 5432, "tcp", "backenddb"),
        (
            "yelb-appserver",
            "mreferre/yelb-appserver:0.5",
            4567,
            "http",
            "middletier",
        ),
        ("yelb-ui", "mreferre/yelb-ui:0.7", 80, "http", "frontend"),
    ];
    for (name, image, port, protocol, tier) in tiers {
        let vn = w
            .kube
            .object(MESH, "virtualnodes", Some("yelb"), name)
            .unwrap_or_else(|| panic!("vn {name}"));
        assert_eq!(vn["spec"]["listeners"][0]["portMapping"]["port"], port, "{name}");
        assert_eq!(
            vn["spec"]["listeners"][0]["portMapping"]["protocol"], protocol,
            "{name}"
        );
        assert_eq!(
            vn["spec"]["serviceDiscovery"]["dns"]["hostname"],
            format!("{name}.yelb.svc.cluster.local")
        );
        assert!(
            w.kube
                .object(MESH, "virtualservices", Some("yelb"), name)
                .is_some(),
            "vs {name}"
        );
        let d = w
            .kube
            .object("apps/v1", "deployments", Some("yelb"), name)
            .unwrap_or_else(|| panic!("dep {name}"));
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], image, "{name}");
        assert_eq!(c["ports"][0]["containerPort"], port, "{name}");
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["tier"], tier,
            "{name}"
        );
        let svc = w
            .kube
            .object("v1", "services", Some("yelb"), name)
            .unwrap_or_else(|| panic!("svc {name}"));
        assert_eq!(svc["spec"]["ports"][0]["port"], port, "{name}");
        let ty = if name == "yelb-ui" {
            "LoadBalancer"
        } else {
            "ClusterIP"
        };
        assert_eq!(svc["spec"]["type"], ty, "{name}");
    }
    let appserver = w
        .kube
        .object(MESH, "virtualnodes", Some("yelb"), "yelb-appserver")
        .unwrap();
    let backends: Vec<&str> = appserver["spec"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["virtualService"]["virtualServiceRef"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(backends, ["yelb-db", "redis-server"]);
    let router = w
        .kube
        .object(MESH, "virtualrouters", Some("yelb"), "yelb-appserver")
        .expect("router");
    let retry = &router["spec"]["routes"][0]["httpRoute"]["retryPolicy"];
    assert_eq!(retry["maxRetries"], 2);
    assert_eq!(retry["perRetryTimeout"]["value"], 2000);
    assert_eq!(
        retry["httpRetryEvents"],
        serde_json::json!(["server-error", "client-error", "gateway-error"])
    );
    assert_eq!(weights(&w), [("yelb-appserver".to_string(), 100)]);

    // Custom resources only after their CRD is Established: the first
    // request for meshes comes at least the establish delay after the CRD.
    let requests = w.kube.requests();
    // (Helm 4 writes the chart's CRDs with server-side apply, PATCH to
    // the CRD's path; a POST names it in its body.)
    let crd_at = requests
        .iter()
        .find(|r| {
            r.path.contains("customresourcedefinitions")
                && (r.method == "PATCH" || r.method == "POST")
                && r.status < 300
                && (r.path.contains("meshes.appmesh.k8s.aws")
                    || r.body
                        .as_ref()
                        .is_some_and(|b| b["metadata"]["name"] == "meshes.appmesh.k8s.aws"))
        })
        .map(|r| r.at)
        .expect("the chart's Mesh CRD was applied");
    let is_mesh = |path: &str| path.starts_with("/apis/appmesh.k8s.aws/") && path.contains("/meshes");
    let first_mesh = requests
        .iter()
        .find(|r| is_mesh(&r.path))
        .map(|r| r.at)
        .expect("mesh requests");
    assert!(
        first_mesh.duration_since(crd_at) >= Duration::from_millis(400),
        "Mesh touched before its CRD was Established"
    );
    assert!(
        requests
            .iter()
            .filter(|r| is_mesh(&r.path))
            .all(|r| r.status != 404),
        "no request for a Mesh was answered 404"
    );

    // Right after apply there is nothing to do.
    expect_code(w.meshform(&["plan", stack, "--detailed-exitcode"]), 0);

    // An image tag changed in a manifest plans exactly that field.
    let app = w.manifest("yelb-app.yaml");
    let text = std::fs::read_to_string(&app)
        .unwrap()
        .replace("redis:4.0.2", "redis:4.0.3");
    std::fs::write(&app, text).unwrap();
    let dry_runs_before = w.kube.requests().iter().filter(|r| r.dry_run).count();
    let plan = expect_code(w.meshform(&["plan", stack, "--json", "--detailed-exitcode"]), 2);
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(changes(&plan), [("yelb_app".to_string(), "update".to_string())]);
    // The change is computed with a server-side dry run of the manifest.
    let dry_runs: Vec<_> = w
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.dry_run)
        .skip(dry_runs_before)
        .collect();
    assert!(
        dry_runs
            .iter()
            .any(|r| r.method == "PATCH" && r.path.ends_with("/deployments/redis-server")),
        "plan made no dry run of the changed Deployment: {:?}",
        dry_runs
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    // ...and nothing was changed by it.
    let redis = w
        .kube
        .object("apps/v1", "deployments", Some("yelb"), "redis-server")
        .unwrap();
    assert_eq!(
        redis["spec"]["template"]["spec"]["containers"][0]["image"],
        "redis:4.0.2"
    );
    let human = stdout(&expect_code(w.meshform(&["plan", stack]), 0));
    let lines = plan_lines_for(&human, "yelb_app");
    assert_eq!(lines.len(), 1, "{human}");
    assert!(
        lines[0].contains(".spec.template.spec.containers[0].image")
            && lines[0].contains("\"redis:4.0.2\" -> \"redis:4.0.3\""),
        "{human}"
    );
    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);
    let redis = w
        .kube
        .object("apps/v1", "deployments", Some("yelb"), "redis-server")
        .unwrap();
    assert_eq!(
        redis["spec"]["template"]["spec"]["containers"][0]["image"],
        "redis:4.0.3"
    );

    // The canary: the v2 objects and the router's weights, nothing else.
    let canary = ["--var", "appserver_v2=true", "--var", "v2_weight=50"];
    let plan = expect_code(
        w.meshform(&[&["plan", stack, "--json", "--detailed-exitcode"][..], &canary].concat()),
        2,
    );
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(
        changes(&plan),
        [
            ("yelb_appserver_v2".to_string(), "create".to_string()),
            ("yelb_mesh".to_string(), "update".to_string())
        ]
    );
    let human = stdout(&expect_code(
        w.meshform(&[&["plan", stack][..], &canary].concat()),
        0,
    ));
    let lines = plan_lines_for(&human, "yelb_mesh");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.contains("weightedTargets")),
        "only the router weights change:\n{human}"
    );
    expect_code(
        w.meshform(&[&["apply", stack, "--auto-approve"][..], &canary].concat()),
        0,
    );
    assert_eq!(
        weights(&w),
        [
            ("yelb-appserver".to_string(), 50),
            ("yelb-appserver-v2".to_string(), 50)
        ]
    );
    let v2 = w
        .kube
        .object("apps/v1", "deployments", Some("yelb"), "yelb-appserver-v2")
        .expect("v2 deployment");
    let image = v2["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(
        image.ends_with(".dkr.ecr.us-west-2.amazonaws.com/yelb-appserver-v2:latest"),
        "{image}"
    );
    assert!(
        w.kube
            .object(MESH, "virtualnodes", Some("yelb"), "yelb-appserver-v2")
            .is_some()
    );
    assert!(
        w.kube
            .object("v1", "services", Some("yelb"), "yelb-appserver-v2")
            .is_some()
    );

    // (A short drain timeout is recorded now: destroy uses what state holds.)
    let all_v2 = [
        "--var",
        "appserver_v2=true",
        "--var",
        "v2_weight=100",
        "--var",
        "network_drain_timeout=4",
    ];
    expect_code(
        w.meshform(&[&["apply", stack, "--auto-approve"][..], &all_v2].concat()),
        0,
    );
    assert_eq!(
        weights(&w),
        [
            ("yelb-appserver".to_string(), 0),
            ("yelb-appserver-v2".to_string(), 100)
        ]
    );

    // Teardown with a load balancer's network interface left in the VPC
    // (untagged, as AWS makes them, so the drain waits for it rather than
    // deleting it): destroy deletes the in-cluster layer, waits, fails
    // naming it, and deletes nothing network-side.
    let ec2 = w.moto.ec2().await;
    let inventory = Inventory::read_stack(&w.moto, FULL_STACK).await;
    let subnet = inventory.subnet_ids()["10.192.10.0/24"].clone();
    let eni = ec2
        .create_network_interface()
        .subnet_id(&subnet)
        .description("ELB a1b2c3 (left by the yelb-ui Service)")
        .send()
        .await
        .unwrap();
    let eni_id = eni
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string();
    // The classic load balancer the yelb-ui Service leaves when its
    // controller never ran: tagged for the cluster, so the drain deletes it.
    let elb = w.moto.elb().await;
    elb.create_load_balancer()
        .load_balancer_name("a1b2c3")
        .listeners(
            aws_sdk_elasticloadbalancing::types::Listener::builder()
                .protocol("TCP")
                .load_balancer_port(80)
                .instance_port(30080)
                .build()
                .unwrap(),
        )
        .subnets(&subnet)
        .tags(
            aws_sdk_elasticloadbalancing::types::Tag::builder()
                .key("kubernetes.io/cluster/appmesh-getting-started-eks")
                .value("owned")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let vars = [
        "--var",
        "appserver_v2=true",
        "--var",
        "v2_weight=100",
        "--var",
        "network_drain_timeout=4",
    ];
    let out =
        crate::support::cli::run(w.meshform(&[&["destroy", stack, "--auto-approve"][..], &vars].concat()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let events = stderr(&out);
    assert!(
        stdout(&out).contains(&eni_id) || events.contains(&eni_id),
        "names the interface:\n{events}\n{}",
        stdout(&out)
    );
    let classic = elb.describe_load_balancers().send().await.unwrap();
    assert!(
        classic.load_balancer_descriptions().is_empty(),
        "the cluster's load balancer is swept: {classic:?}"
    );
    assert!(
        events.contains("deleted classic load balancer a1b2c3"),
        "{events}"
    );
    let left = Inventory::read_stack(&w.moto, FULL_STACK).await;
    assert_eq!(left.vpcs.len(), 1, "VPC kept");
    assert_eq!(left.subnets.len(), 4, "subnets kept");
    assert_eq!(left.internet_gateways.len(), 1, "gateway kept");
    assert_eq!(left.nat_gateways.len(), 2, "NAT gateways kept");
    assert!(
        w.kube.objects("deployments").is_empty(),
        "the app is gone: {:?}",
        w.kube.objects("deployments")
    );

    // Order: mesh members and the mesh before the controller's uninstall;
    // the LoadBalancer Service before the drain (and so before any subnet).
    let at = |needle: &str| {
        events
            .lines()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{events}"))
    };
    assert!(at("yelb_mesh: deleted") < at("mesh: deleting..."), "{events}");
    assert!(
        at("mesh: deleted") < at("appmesh_controller: deleting..."),
        "{events}"
    );
    assert!(
        at("yelb_app: deleted") < at("network_drain: deleting..."),
        "{events}"
    );
    assert!(!events.contains("public_subnet_1: deleting"), "{events}");
    assert_eq!(w.helm.calls_of("uninstall").len(), 1);
    assert!(
        w.kube
            .objects("secrets")
            .iter()
            .all(|s| s["metadata"]["labels"]["owner"] != "helm"),
        "helm's release records are gone with the release"
    );
    // Within the members: services, then the router, then the nodes.
    let deletes: Vec<String> = w
        .kube
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("appmesh.k8s.aws"))
        .map(|r| r.path.clone())
        .collect();
    let pos = |plural: &str| {
        deletes
            .iter()
            .position(|p| p.contains(plural))
            .unwrap_or_else(|| panic!("{plural}: {deletes:?}"))
    };
    assert!(pos("virtualservices") < pos("virtualrouters"), "{deletes:?}");
    assert!(pos("virtualrouters") < pos("virtualnodes"), "{deletes:?}");
    assert!(pos("virtualnodes") < pos("meshes"), "{deletes:?}");

    // Once the interface is gone, destroy completes.
    ec2.delete_network_interface()
        .network_interface_id(&eni_id)
        .send()
        .await
        .unwrap();
    expect_code(
        w.meshform(&[&["destroy", stack, "--auto-approve"][..], &vars].concat()),
        0,
    );
    Inventory::read_stack(&w.moto, FULL_STACK).await.assert_empty();
    WalkthroughExtras::read(&w.moto).await.assert_empty();
    assert_cluster_emptied(&w);
}

/// An object stuck on a finalizer fails destroy after its timeout, naming
/// the object and the finalizer; nothing after it in the order is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_that_never_clears_fails_destroy_naming_the_object() {
    let w = Walkthrough::start("finalizer");
    let stack = w.dir.write(
        "stuck.toml",
        r#"
[stack]
name = "stuck"
region = "us-west-2"

[resource.namespace]
type = "kube.namespace"
cluster = { kubeconfig_context = "unused: MESHFORM_KUBE_SERVER points at the fake" }
name = "demo"

[resource.config]
type = "kube.manifest"
cluster = { kubeconfig_context = "unused: MESHFORM_KUBE_SERVER points at the fake" }
wait_timeout_seconds = 2
depends_on = ["namespace"]
yaml = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  mode: canary
"""
"#,
    );
    let stack = stack.to_str().unwrap();
    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);
    assert!(
        w.kube
            .object("v1", "configmaps", Some("demo"), "settings")
            .is_some()
    );
    w.kube
        .add_finalizer("v1", "configmaps", Some("demo"), "settings", "example.com/never");

    let out = expect_code(w.meshform(&["destroy", stack, "--auto-approve"]), 1);
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(text.contains("ConfigMap demo/settings"), "{text}");
    assert!(text.contains("example.com/never"), "{text}");
    assert!(
        text.contains("skipped: namespace (delete) because config failed"),
        "{text}"
    );
    assert!(
        w.kube.object("v1", "namespaces", None, "demo").is_some(),
        "the namespace after it stays"
    );

    w.kube
        .remove_finalizers("v1", "configmaps", Some("demo"), "settings");
    expect_code(w.meshform(&["destroy", stack, "--auto-approve"]), 0);
    assert!(w.kube.object("v1", "namespaces", None, "demo").is_none());
}

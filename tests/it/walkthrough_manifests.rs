//! The walkthrough stack's in-cluster layer matches the original
//! aws-app-mesh-examples walkthrough (the virtual services' awsNames are
//! the names the apps call; the v2 image is the `latest` the build script
//! pushes), its variables are checked against their declarations before
//! anything runs, and a plan from empty state shows the canary's v2
//! objects with only the image (from a repository created in the same
//! apply) marked unknown. AWS is moto; the cluster is the fake API server.

use serde_json::Value;

use crate::support::cli::{expect_code, stderr, stdout};
use crate::support::inventory::{FULL_STACK, Inventory, WalkthroughExtras};
use crate::support::walkthrough::Walkthrough;

const MESH: &str = "appmesh.k8s.aws/v1beta2";
/// The stack, relative to the walkthrough's scratch directory (short and
/// stable, so error locations are easy to match).
const STACK: &str = "stacks/appmesh-getting-started.toml";
const CANARY: [&str; 4] = ["--var", "appserver_v2=true", "--var", "v2_weight=50"];
/// Where the v2 Deployment's image is in the v2 manifest's objects.
const V2_IMAGE: &str = "/0/spec/template/spec/containers/0/image";

/// The walkthrough's virtual services: each one's awsName is its name, as
/// in walkthroughs/eks-getting-started/infrastructure/appmesh_templates.
const SERVICES: [&str; 4] = ["redis-server", "yelb-db", "yelb-appserver", "yelb-ui"];

fn with(args: &[&str], extra: &[&str]) -> Vec<String> {
    args.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// `meshform plan --json` of the stack with `extra` arguments, against
/// moto and the fake cluster.
fn plan_json(w: &Walkthrough, extra: &[&str]) -> Value {
    let args = with(&["plan", STACK, "--json"], extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = expect_code(w.meshform(&args), 0);
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn resource<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("no {address} in the plan"))
}

fn attr<'a>(change: &'a Value, name: &str) -> &'a Value {
    change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no change of {name} in {change}"))
}

/// The objects of a manifest's planned `yaml` (known, or the partial value).
fn objects(change: &Value) -> Vec<Value> {
    let yaml = attr(change, "yaml");
    let value = if yaml["after_unknown"] == true {
        &yaml["after_partial"]
    } else {
        &yaml["after"]
    };
    value
        .as_array()
        .unwrap_or_else(|| panic!("no objects in {yaml}"))
        .clone()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {objects:?}"))
}

/// Diagnostics with miette's line wrapping undone.
fn flat(s: &str) -> String {
    s.split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_carry_the_walkthroughs_names_and_the_latest_v2_tag() {
    let w = Walkthrough::start("manifests-names");
    let mut empty = w.meshform(&["plan", STACK, "--json"]);
    empty.env("MESHFORM_KUBE_SERVER", "http://127.0.0.1:9");
    let plan: Value = serde_json::from_str(&stdout(&expect_code(empty, 0))).unwrap();

    // The virtual services are named as the apps call them: yelb-ui's
    // nginx proxies to http://yelb-appserver:4567.
    let mesh = objects(resource(&plan, "yelb_mesh"));
    for name in SERVICES {
        let vs = find(&mesh, "VirtualService", name);
        assert_eq!(vs["spec"]["awsName"], name, "{vs}");
    }
    for name in SERVICES {
        let vn = find(&mesh, "VirtualNode", name);
        assert_eq!(vn["spec"]["awsName"], format!("{name}-virtual-node"), "{vn}");
    }
    // Without the canary, the v1 app server takes all the traffic.
    let router = find(&mesh, "VirtualRouter", "yelb-appserver");
    assert_eq!(
        router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"],
        serde_json::json!([{"virtualNodeRef": {"name": "yelb-appserver"}, "weight": 100}])
    );
    let app = objects(resource(&plan, "yelb_app"));
    let ui = find(&app, "Service", "yelb-ui");
    assert_eq!(
        ui["spec"]["ports"],
        serde_json::json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
    );

    // Applied, the fake cluster holds those names.
    expect_code(w.meshform(&["apply", STACK, "--auto-approve"]), 0);
    for name in SERVICES {
        let vs = w
            .kube
            .object(MESH, "virtualservices", Some("yelb"), name)
            .unwrap_or_else(|| panic!("virtual service {name}"));
        assert_eq!(vs["spec"]["awsName"], name);
    }

    // With the repository there, the canary's image is known: the
    // repository's URI with the tag build-appserver-v2.sh pushes.
    let repos = w.moto.ecr().await.describe_repositories().send().await.unwrap();
    let uri = repos.repositories()[0].repository_uri().unwrap().to_string();
    let plan = plan_json(&w, &CANARY);
    let v2 = objects(resource(&plan, "yelb_appserver_v2"));
    let deployment = find(&v2, "Deployment", "yelb-appserver-v2");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{uri}:latest")
    );
    assert_eq!(
        find(&v2, "VirtualNode", "yelb-appserver-v2")["spec"]["awsName"],
        "yelb-appserver-virtual-node-v2"
    );
    expect_code(
        w.meshform(
            &with(&["apply", STACK, "--auto-approve"], &CANARY)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
        0,
    );
    let applied = w
        .kube
        .object("apps/v1", "deployments", Some("yelb"), "yelb-appserver-v2")
        .expect("v2 deployment");
    assert_eq!(
        applied["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{uri}:latest")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_v2_weight_fails_validation_and_touches_nothing() {
    let w = Walkthrough::start("manifests-weight");
    let text = std::fs::read_to_string(w.stack()).unwrap();
    // Where v2_weight is declared: the name in its [vars.v2_weight] table.
    let header = "[vars.v2_weight]";
    assert_eq!(text.matches(header).count(), 1, "{text}");
    let offset = text.find(header).unwrap() + "[vars.".len();
    let line = text[..offset].matches('\n').count() + 1;
    let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
    let want = format!(
        "{STACK}:{line}:{col}: --var v2_weight=150: 150 is out of range: `v2_weight` must be an integer from 0 to 100"
    );
    for command in [&["plan", STACK][..], &["apply", STACK, "--auto-approve"][..]] {
        let args = with(command, &["--var", "appserver_v2=true", "--var", "v2_weight=150"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = expect_code(w.meshform(&args), 1);
        let err = flat(&stderr(&out));
        assert!(err.contains(&flat(&want)), "expected `{want}` in:\n{err}");
        assert!(err.contains("1 error in"), "one error only:\n{err}");
    }
    // Nothing was written, asked or made.
    assert!(!w.dir.state_file(FULL_STACK).exists(), "a state file was written");
    assert!(
        !w.dir.path.join(".meshform").exists(),
        "the state directory was created"
    );
    Inventory::read_stack(&w.moto, FULL_STACK).await.assert_empty();
    WalkthroughExtras::read(&w.moto).await.assert_empty();
    assert!(
        w.kube.requests().is_empty(),
        "the cluster was called: {:?}",
        w.kube.requests()
    );
    // Only the preflight's `helm version` (which reaches no cluster) may run.
    let calls = w.helm.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.argv.first().map(String::as_str) == Some("version")),
        "helm was run against the cluster: {calls:?}"
    );
}

#[test]
fn the_canary_planned_from_empty_state_marks_only_the_v2_image_unknown() {
    let w = Walkthrough::start("manifests-canary");
    let mut cmd = w.meshform(
        &with(&["plan", STACK, "--json"], &CANARY)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    cmd.env("MESHFORM_KUBE_SERVER", "http://127.0.0.1:9");
    let plan: Value = serde_json::from_str(&stdout(&expect_code(cmd, 0))).unwrap();
    let change = resource(&plan, "yelb_appserver_v2");
    assert_eq!(change["action"], "create");
    let yaml = attr(change, "yaml");
    // Unknown as a whole until apply (the repository is created by it)...
    assert_eq!(yaml["after_unknown"], true);
    assert_eq!(yaml["after"], Value::Null);
    // ...but only the image is: the Deployment, Service and VirtualNode
    // are there in full.
    assert_eq!(yaml["after_unknown_paths"], serde_json::json!([V2_IMAGE]));
    let partial = &yaml["after_partial"];
    assert_eq!(partial.pointer(V2_IMAGE), Some(&Value::Null));
    let kinds: Vec<&str> = partial
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Deployment", "Service", "VirtualNode"]);
    let objects = partial.as_array().unwrap();
    let container =
        &find(objects, "Deployment", "yelb-appserver-v2")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "yelb-appserver-v2");
    assert_eq!(container["ports"][0]["containerPort"], 4567);
    let vn = find(objects, "VirtualNode", "yelb-appserver-v2");
    assert_eq!(vn["spec"]["awsName"], "yelb-appserver-virtual-node-v2");
    assert_eq!(
        vn["spec"]["serviceDiscovery"]["dns"]["hostname"],
        "yelb-appserver-v2.yelb.svc.cluster.local"
    );
    // The route splits 50/50 and is known in full.
    let mesh = attr(resource(&plan, "yelb_mesh"), "yaml");
    assert_eq!(mesh["after_unknown"], false);
    let router = mesh["after"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "VirtualRouter")
        .unwrap();
    let weights: Vec<(&str, i64)> = router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["virtualNodeRef"]["name"].as_str().unwrap(),
                t["weight"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(weights, [("yelb-appserver", 50), ("yelb-appserver-v2", 50)]);

    // The human plan: of the manifest's lines, only the image's says it is
    // known after apply.
    let mut cmd = w.meshform(
        &with(&["plan", STACK], &CANARY)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    cmd.env("MESHFORM_KUBE_SERVER", "http://127.0.0.1:9");
    let human = stdout(&expect_code(cmd, 0));
    let lines: Vec<&str> = human
        .lines()
        .skip_while(|l| !l.contains("+ yelb_appserver_v2 (kube.manifest)"))
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .map(str::trim)
        .filter(|l| l.starts_with("yaml"))
        .collect();
    let unknown: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("(known after apply)"))
        .collect();
    assert_eq!(unknown.len(), 1, "{human}");
    assert!(
        unknown[0].starts_with("yaml[0].spec.template.spec.containers[0].image "),
        "{human}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("yaml ") && l.contains("yelb-appserver-v2")),
        "the known objects are shown:\n{human}"
    );
}

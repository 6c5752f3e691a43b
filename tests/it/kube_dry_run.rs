//! Planning in-cluster objects from the API server's dry run, through the
//! CLI against the fake API server (testsupport/fake-kube, which fills in
//! the real server's defaults and makes its validation refusals, dry run
//! or not) and moto (the CLI asks AWS for region facts):
//! - a field the server defaults is not drift on the plan after an apply;
//! - a field a manifest stops setting is planned as the server would leave
//!   it (its default), in the JSON and the human plan;
//! - an object the server refuses fails the plan (and an apply at its
//!   planning step) with the server's message, naming the resource and the
//!   document, and nothing is changed.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::support::cli::{Workdir, expect_code, meshform, stderr, stdout};
use crate::support::moto::Moto;
use fake_kube::FakeKube;

/// A fake cluster, moto, and a directory for the stack and its state.
struct Setup {
    kube: FakeKube,
    moto: Moto,
    dir: Workdir,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let kube = FakeKube::start();
        kube.set_auto_complete_deployments(true);
        Setup {
            kube,
            moto: Moto::start(),
            dir: Workdir::new(name),
        }
    }

    /// Writes the stack (one resource, `body` its TOML) and returns its path.
    fn stack(&self, body: &str) -> String {
        let text = format!("[stack]\nname = \"dryrun\"\nregion = \"us-west-2\"\n\n{body}");
        self.dir.write("stack.toml", &text).to_str().unwrap().to_string()
    }

    /// `meshform <args>` reaching this fake cluster (MESHFORM_KUBE_SERVER
    /// overrides the context named in the stack) and moto.
    fn run(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = meshform(&self.dir.path, Some(&self.moto), args);
        cmd.env("MESHFORM_KUBE_SERVER", self.kube.url());
        cmd
    }

    /// Writes requests that were not dry runs, from request `from` on.
    fn real_writes(&self, from: usize) -> Vec<String> {
        self.kube.requests()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !r.dry_run)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Dry-run requests from request `from` on.
    fn dry_runs(&self, from: usize) -> Vec<String> {
        self.kube.requests()[from..]
            .iter()
            .filter(|r| r.dry_run)
            .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
            .collect()
    }

    /// The state file's tracked resources.
    fn state_resources(&self) -> Value {
        match std::fs::read_to_string(self.dir.state_file("dryrun")) {
            Ok(text) => serde_json::from_str::<Value>(&text).unwrap()["resources"].clone(),
            Err(_) => json!({}),
        }
    }

    /// Creates namespace `name` as someone other than meshform.
    async fn namespace(&self, name: &str) {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"));
        let api: Api<DynamicObject> = Api::all_with(self.kube.client(), &ar);
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        api.patch(name, &PatchParams::apply("test"), &Patch::Apply(ns))
            .await
            .expect("create the namespace");
    }
}

/// A `kube.manifest` resource `app` holding `yaml`.
fn manifest(yaml: &str) -> String {
    format!(
        "[resource.app]\ntype = \"kube.manifest\"\ncluster = {{ kubeconfig_context = \"not-used\" }}\nyaml = '''\n{yaml}'''\n"
    )
}

/// A Deployment and a Service that leave to the server what it defaults:
/// strategy, revisionHistoryLimit, imagePullPolicy, port protocols,
/// targetPort, the Service type; `clusterIP: ""` asks for an address,
/// which the server allocates. `extra_container` is added to the
/// container (indented YAML lines).
fn web(extra_container: &str, replicas: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
{replicas}  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
{extra_container}          ports:
            - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: ""
  selector: {{app: web}}
  ports:
    - port: 80
"#
    )
}

/// The documents of a manifest as objects (what a raw comparison would use).
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).unwrap()
}

#[test]
fn server_defaults_are_not_drift_on_the_plan_after_apply() {
    let s = Setup::new("dryrun-defaults");
    let yaml = web("", "");
    let stack = s.stack(&manifest(&yaml));
    expect_code(s.run(&["apply", &stack, "--auto-approve"]), 0);

    // The server filled in what the manifest left out: a plan comparing the
    // documents as written with the live objects would see all of it.
    let deploy = s
        .kube
        .object("apps/v1", "deployments", Some("shop"), "web")
        .expect("deployment");
    let svc = s
        .kube
        .object("v1", "services", Some("shop"), "web")
        .expect("service");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(deploy["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(deploy["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{svc}"
    );
    let docs = documents(&yaml);
    assert!(docs[1]["spec"].get("strategy").is_none());
    assert_ne!(
        docs[1]["spec"], deploy["spec"],
        "the raw documents differ from the live objects"
    );
    assert_ne!(docs[2]["spec"], svc["spec"]);

    // Yet the next plan has nothing to do, and asks for no write. (The
    // allocated clusterIP differs from the "" written even after
    // projection: the server's dry run shows that applying "" changes
    // nothing.)
    let before = s.kube.requests().len();
    let out = expect_code(s.run(&["plan", &stack, "--detailed-exitcode"]), 0);
    assert!(stdout(&out).contains("No changes."), "{}", stdout(&out));
    assert_eq!(s.real_writes(before), Vec::<String>::new());
}

#[test]
fn a_field_no_longer_set_is_planned_as_the_server_default() {
    let s = Setup::new("dryrun-removed");
    let pinned = web("          imagePullPolicy: Never\n", "  replicas: 3\n");
    let stack = s.stack(&manifest(&pinned));
    expect_code(s.run(&["apply", &stack, "--auto-approve"]), 0);
    let deploy = |s: &Setup| {
        s.kube
            .object("apps/v1", "deployments", Some("shop"), "web")
            .expect("deployment")
    };
    assert_eq!(deploy(&s)["spec"]["replicas"], 3);

    // The manifest stops setting replicas and imagePullPolicy, and changes
    // the image: the server would put back its defaults (1, IfNotPresent),
    // and that is what the plan shows, from a dry run that changes nothing.
    let yaml = web("", "").replace("nginx:1.27", "nginx:1.28");
    s.stack(&manifest(&yaml));
    let (rv, before) = (s.kube.resource_version(), s.kube.requests().len());
    let out = expect_code(s.run(&["plan", &stack, "--json", "--detailed-exitcode"]), 2);
    assert_eq!(s.real_writes(before), Vec::<String>::new());
    assert_eq!(s.kube.resource_version(), rv, "a dry run stores nothing");
    assert!(
        s.dry_runs(before)
            .contains(&"PATCH /apis/apps/v1/namespaces/shop/deployments/web -> 200".to_string()),
        "{:?}",
        s.dry_runs(before)
    );
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let change = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "app")
        .expect("app in the plan");
    assert_eq!(change["action"], "update");
    let yaml_change = change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "yaml")
        .expect("yaml changes");
    let (was, will) = (
        &yaml_change["before"][1]["spec"],
        &yaml_change["after"][1]["spec"],
    );
    assert_eq!(
        (was["replicas"].clone(), will["replicas"].clone()),
        (json!(3), json!(1))
    );
    let (was_c, will_c) = (
        &was["template"]["spec"]["containers"][0],
        &will["template"]["spec"]["containers"][0],
    );
    assert_eq!(was_c["imagePullPolicy"], "Never");
    assert_eq!(will_c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(will_c["image"], "nginx:1.28");
    // Fields the manifest never set stay out of the plan.
    assert!(will.get("strategy").is_none(), "{will}");

    // The human plan shows the same values.
    let out = expect_code(s.run(&["plan", &stack, "--detailed-exitcode"]), 2);
    let text = stdout(&out);
    let line = |path: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(path))
            .map(|l| l[path.len()..].trim().to_string())
    };
    assert_eq!(line("yaml[1].spec.replicas").as_deref(), Some("3 -> 1"), "{text}");
    assert_eq!(
        line("yaml[1].spec.template.spec.containers[0].imagePullPolicy").as_deref(),
        Some("\"Never\" -> \"IfNotPresent\""),
        "{text}"
    );

    // Applied, the cluster holds what the plan showed, and the next plan is empty.
    expect_code(s.run(&["apply", &stack, "--auto-approve"]), 0);
    let live = deploy(&s);
    assert_eq!(live["spec"]["replicas"], 1);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    expect_code(s.run(&["plan", &stack, "--detailed-exitcode"]), 0);
}

/// A Deployment without a selector, after a ConfigMap.
const NO_SELECTOR: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_create_fails_the_plan_naming_the_resource_and_document() {
    let s = Setup::new("dryrun-refused");
    s.namespace("shop").await;
    let stack = s.stack(&manifest(NO_SELECTOR));
    let before = s.kube.requests().len();

    let out = expect_code(s.run(&["plan", &stack]), 1);
    let err = stderr(&out);
    assert!(
        err.contains("app: preview failed: dry run of document 2 (Deployment shop/web)"),
        "{err}"
    );
    assert!(
        err.contains(
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, \
             spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`]"
        ),
        "{err}"
    );
    // An apply stops at the same point: not even the valid ConfigMap is made.
    let out = expect_code(s.run(&["apply", &stack, "--auto-approve"]), 1);
    assert!(stderr(&out).contains("dry run of document 2"), "{}", stderr(&out));
    assert_eq!(s.real_writes(before), Vec::<String>::new());
    assert!(s.kube.objects("configmaps").is_empty());
    assert!(s.kube.objects("deployments").is_empty());
    assert_eq!(s.state_resources(), json!({}));
}

#[test]
fn a_refused_update_fails_the_plan_and_changes_nothing() {
    let s = Setup::new("dryrun-immutable");
    let stack = s.stack(&manifest(&web("", "")));
    expect_code(s.run(&["apply", &stack, "--auto-approve"]), 0);
    let state = s.state_resources();
    let live = s.kube.object("apps/v1", "deployments", Some("shop"), "web");

    // A new selector (immutable) and a Service port out of range.
    let changed = web("", "")
        .replacen(
            "matchLabels: {app: web}",
            "matchLabels: {app: web, tier: front}",
            1,
        )
        .replacen("labels: {app: web}", "labels: {app: web, tier: front}", 1)
        .replace("- port: 80", "- port: 80000");
    s.stack(&manifest(&changed));
    let before = s.kube.requests().len();
    let out = expect_code(s.run(&["plan", &stack]), 1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "app: preview failed: dry run of document 2 (Deployment shop/web): Deployment.apps \"web\" is invalid: \
             spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"tier\":\"front\"}}: field is immutable"
        ),
        "{err}"
    );
    // The first refusal stops the preview; the Service's comes once the
    // Deployment is fixed (its targetPort defaults to the port, so both are
    // out of range, as on a real server).
    let fixed = changed.replacen(
        "matchLabels: {app: web, tier: front}",
        "matchLabels: {app: web}",
        1,
    );
    s.stack(&manifest(&fixed));
    let out = expect_code(s.run(&["apply", &stack, "--auto-approve"]), 1);
    assert!(
        stderr(&out).contains(
            "dry run of document 3 (Service shop/web): Service \"web\" is invalid: [\
             spec.ports[0].port: Invalid value: 80000: must be between 1 and 65535, inclusive, \
             spec.ports[0].targetPort: Invalid value: 80000: must be between 1 and 65535, inclusive]"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.real_writes(before), Vec::<String>::new());
    assert_eq!(s.kube.object("apps/v1", "deployments", Some("shop"), "web"), live);
    // State still records the objects as applied (an apply's refresh may
    // record what it read, but nothing new was applied).
    let now = s.state_resources();
    assert_eq!(now["app"]["id"], state["app"]["id"]);
    assert_eq!(
        now["app"]["attributes"]["objects"],
        state["app"]["attributes"]["objects"]
    );
    assert_eq!(
        now["app"]["attributes"]["yaml"][1]["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
}

#[test]
fn a_refused_namespace_label_fails_the_plan() {
    let s = Setup::new("dryrun-namespace");
    let stack = s.stack(
        "[resource.ns]\ntype = \"kube.namespace\"\ncluster = { kubeconfig_context = \"not-used\" }\n\
         name = \"shop\"\nlabels = { team = \"no spaces!\" }\n",
    );
    let out = expect_code(s.run(&["plan", &stack]), 1);
    let err = stderr(&out);
    assert!(
        err.contains("ns: preview failed: dry run of Namespace shop: Namespace \"shop\" is invalid: metadata.labels: Invalid value: \"no spaces!\": a valid label must be an empty string"),
        "{err}"
    );
    assert_eq!(s.real_writes(0), Vec::<String>::new());
    assert!(s.kube.object("v1", "namespaces", None, "shop").is_none());
}

#[test]
fn a_create_for_an_unreachable_cluster_is_planned_as_written() {
    let s = Setup::new("dryrun-unreachable");
    let stack = s.stack(&manifest(&web("", "")));
    // Nothing listens there: the dry run cannot be asked, and the plan
    // shows the create as the stack writes it (the apply would fail).
    let mut plan = s.run(&["plan", &stack, "--detailed-exitcode"]);
    plan.env("MESHFORM_KUBE_SERVER", "http://127.0.0.1:9");
    let out = expect_code(plan, 2);
    assert!(stdout(&out).contains("+ app (kube.manifest)"), "{}", stdout(&out));
    assert!(s.kube.requests().is_empty());
}

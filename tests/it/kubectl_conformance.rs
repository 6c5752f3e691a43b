//! The REAL kubectl (v1.33.9) against the fake API server: one test per
//! operation (or small group), each checked by reading the fake back
//! (`kube.object`, `kube.requests()`), not only by kubectl's exit code.
//! What kubectl needs from the server here (aggregated discovery, OpenAPI
//! v3 with strategic-merge extensions, strategic merge and JSON patches,
//! watches) is what Helm's client-go needs too.

use std::path::PathBuf;
use std::process::Output;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fake_kube::FakeKube;
use serde_json::Value;

use crate::support::cli::Workdir;
use crate::support::kube_tools::{self, Tool};

/// A fake API server, a kubeconfig for it, and a scratch directory.
struct Cluster {
    kube: FakeKube,
    dir: Workdir,
    kubeconfig: PathBuf,
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

impl Cluster {
    /// A fake with the `default` namespace a real cluster has (created with
    /// kubectl itself).
    fn start(name: &str) -> Cluster {
        let kube = FakeKube::start();
        let dir = Workdir::new(&format!("kubectl-{name}"));
        let kubeconfig = dir.write("kubeconfig", &kube.kubeconfig());
        let cluster = Cluster {
            kube,
            dir,
            kubeconfig,
        };
        cluster.apply_yaml(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n",
            &[],
        );
        cluster
    }

    fn run(&self, args: &[&str]) -> Output {
        kube_tools::run(Tool::Kubectl, &self.kubeconfig, &self.dir.path, args)
    }

    /// Runs kubectl, asserting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("warning"), "kubectl {args:?} warned: {stderr}");
        text(&out.stdout)
    }

    /// Runs kubectl in the background (for commands that wait).
    fn spawn(&self, args: &[&str]) -> JoinHandle<Output> {
        let kubeconfig = self.kubeconfig.clone();
        let scratch = self.dir.path.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            kube_tools::run(Tool::Kubectl, &kubeconfig, &scratch, &args)
        })
    }

    /// Writes `yaml` to a file and `kubectl apply -f`s it (plus `extra`).
    fn apply_yaml(&self, file: &str, yaml: &str, extra: &[&str]) -> String {
        let path = self.dir.write(file, yaml);
        let mut args = vec!["apply", "-f", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    fn file(&self, name: &str, yaml: &str) -> String {
        self.dir.write(name, yaml).to_str().unwrap().to_string()
    }

    /// Waits (up to a minute, polling) until `cond` holds of the fake.
    fn until(&self, what: &str, cond: impl Fn(&FakeKube) -> bool) {
        let start = Instant::now();
        while !cond(&self.kube) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "gave up waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn configmap(name: &str, labels: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {labels}\ndata:\n  k: v\n")
}

const DEPLOYMENT_V1: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: app:1
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
      - name: side
        image: side:1
"#;

fn containers(dep: &Value) -> &Value {
    &dep["spec"]["template"]["spec"]["containers"]
}

/// The containers without the fields the server defaults (pull policy,
/// termination message path and policy), for comparing with what was sent.
fn sent_containers(dep: &Value) -> Value {
    let mut list = containers(dep).clone();
    for c in list.as_array_mut().into_iter().flatten() {
        if let Some(c) = c.as_object_mut() {
            for defaulted in [
                "imagePullPolicy",
                "terminationMessagePath",
                "terminationMessagePolicy",
            ] {
                c.remove(defaulted);
            }
        }
    }
    list
}

#[test]
fn api_resources_and_api_versions_show_every_served_kind() {
    let c = Cluster::start("discovery");
    let resources = c.ok(&["api-resources"]);
    for (plural, short, gv, namespaced, kind) in [
        ("namespaces", "ns", "v1", "false", "Namespace"),
        ("pods", "po", "v1", "true", "Pod"),
        ("deployments", "deploy", "apps/v1", "true", "Deployment"),
        ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
        ("cronjobs", "cj", "batch/v1", "true", "CronJob"),
        (
            "poddisruptionbudgets",
            "pdb",
            "policy/v1",
            "true",
            "PodDisruptionBudget",
        ),
        (
            "horizontalpodautoscalers",
            "hpa",
            "autoscaling/v2",
            "true",
            "HorizontalPodAutoscaler",
        ),
        ("ingresses", "ing", "networking.k8s.io/v1", "true", "Ingress"),
        (
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition",
        ),
    ] {
        let line = resources
            .lines()
            .find(|l| l.split_whitespace().next() == Some(plural))
            .unwrap_or_else(|| panic!("{plural} missing from:\n{resources}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols, [plural, short, gv, namespaced, kind], "{line}");
    }
    let leases = resources.lines().find(|l| l.starts_with("leases ")).unwrap();
    assert_eq!(
        leases.split_whitespace().collect::<Vec<_>>(),
        ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    );
    let versions = c.ok(&["api-versions"]);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "policy/v1",
        "autoscaling/v2",
        "networking.k8s.io/v1",
        "coordination.k8s.io/v1",
        "admissionregistration.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
    ] {
        assert!(
            versions.lines().any(|l| l == gv),
            "{gv} missing from:\n{versions}"
        );
    }
    // kubectl used the aggregated form: one GET of /api and of /apis, no
    // per-group-version requests.
    let requests = c.kube.requests();
    assert!(requests.iter().any(|r| r.path == "/apis" && r.status == 200));
    assert!(
        !requests.iter().any(|r| r.path == "/apis/apps/v1"),
        "fell back to legacy discovery"
    );
}

#[test]
fn get_filters_by_label_and_field_selectors_and_prints_json_and_names() {
    let c = Cluster::start("get");
    let docs = [
        configmap("a", "{tier: db}"),
        configmap("b", "{tier: db}"),
        configmap("c", "{tier: web}"),
    ]
    .join("---\n");
    c.apply_yaml("cms.yaml", &docs, &[]);
    assert_eq!(c.kube.objects("configmaps").len(), 3, "all three stored");

    let names = c.ok(&["get", "configmaps", "-l", "tier=db", "-o", "name"]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["configmap/a", "configmap/b"]);

    let json: Value = serde_json::from_str(&c.ok(&[
        "get",
        "configmaps",
        "--field-selector",
        "metadata.name=c",
        "-o",
        "json",
    ]))
    .unwrap();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "c");
    assert_eq!(items[0]["metadata"]["labels"]["tier"], "web");
    let stored = c.kube.object("v1", "configmaps", Some("default"), "c").unwrap();
    assert_eq!(items[0]["metadata"]["uid"], stored["metadata"]["uid"]);

    let queries: Vec<String> = c
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/default/configmaps" && r.method == "GET")
        .map(|r| r.query)
        .collect();
    assert!(
        queries.iter().any(|q| q.contains("labelSelector=tier%3Ddb")),
        "{queries:?}"
    );
    assert!(
        queries
            .iter()
            .any(|q| q.contains("fieldSelector=metadata.name%3Dc")),
        "{queries:?}"
    );

    // The human-readable listing: the server's table columns.
    let table = c.ok(&["get", "configmaps"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"], "{table}");
    for name in ["a", "b", "c"] {
        assert!(
            table.lines().any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing:\n{table}"
        );
    }
}

#[test]
fn create_f_makes_every_kind_in_a_multi_document_file() {
    let c = Cluster::start("create");
    let yaml = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: migrate:1}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#;
    let path = c.file("many.yaml", yaml);
    let out = c.ok(&["create", "-f", &path]);
    assert_eq!(out.lines().count(), 7, "{out}");

    assert!(c.kube.object("v1", "namespaces", None, "shop").is_some());
    assert!(
        c.kube
            .object("v1", "serviceaccounts", Some("shop"), "web")
            .is_some()
    );
    let secret = c.kube.object("v1", "secrets", Some("shop"), "creds").unwrap();
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    let svc = c.kube.object("v1", "services", Some("shop"), "web").unwrap();
    assert!(svc["spec"]["clusterIP"].is_string(), "{svc}");
    let job = c
        .kube
        .object("batch/v1", "jobs", Some("shop"), "migrate")
        .unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "migrate:1"
    );
    let ing = c
        .kube
        .object("networking.k8s.io/v1", "ingresses", Some("shop"), "web")
        .unwrap();
    assert_eq!(ing["spec"]["rules"][0]["host"], "shop.example.com");
    let pdb = c
        .kube
        .object("policy/v1", "poddisruptionbudgets", Some("shop"), "web")
        .unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], 1);

    // A second create is refused by the server, object by object.
    let again = c.run(&["create", "-f", &path]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn client_side_apply_twice_merges_containers_strategically() {
    let c = Cluster::start("csa");
    c.apply_yaml("web.yaml", DEPLOYMENT_V1, &[]);
    // Someone else sets a field the manifest does not have; a three-way
    // strategic merge keeps it.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","args":["--verbose"]}]}}}}"#,
    ]);
    let v2 = DEPLOYMENT_V1
        .replace("image: app:1", "image: app:2")
        .replace("        - {name: B, value: \"2\"}\n", "");
    let out = c.apply_yaml("web.yaml", &v2, &[]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");

    let dep = c
        .kube
        .object("apps/v1", "deployments", Some("default"), "web")
        .unwrap();
    assert_eq!(
        sent_containers(&dep),
        serde_json::json!([
            {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "side:1", "args": ["--verbose"]},
        ])
    );
    assert_eq!(dep["metadata"]["generation"], 3);
    let patch = c
        .kube
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH" && r.path.ends_with("/deployments/web"))
        .unwrap();
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert!(patch.query.contains("fieldValidation=Strict"), "{}", patch.query);
    let body = patch.body.unwrap().to_string();
    assert!(body.contains("$setElementOrder/containers"), "{body}");

    // Applying the same file again changes nothing.
    let rv = c.kube.resource_version();
    let out = c.apply_yaml("web.yaml", &v2, &[]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(c.kube.resource_version(), rv);
}

#[test]
fn server_side_apply_records_the_field_manager() {
    let c = Cluster::start("ssa");
    c.apply_yaml(
        "cm.yaml",
        &configmap("settings", "{app: web}"),
        &["--server-side", "--field-manager=meshform-test"],
    );
    let cm = c
        .kube
        .object("v1", "configmaps", Some("default"), "settings")
        .unwrap();
    assert_eq!(cm["data"]["k"], "v");
    let managers: Vec<(String, String)> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap().into(),
                m["operation"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(managers, [("meshform-test".to_string(), "Apply".to_string())]);
    let req = c
        .kube
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.path.ends_with("/configmaps/settings"))
        .unwrap();
    assert_eq!(req.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(req.field_manager.as_deref(), Some("meshform-test"));
    assert_eq!(req.status, 201);

    // A change by the same manager is applied; the manager is unchanged.
    let changed = configmap("settings", "{app: web}").replace("k: v", "k: w");
    c.apply_yaml(
        "cm.yaml",
        &changed,
        &["--server-side", "--field-manager=meshform-test"],
    );
    let cm = c
        .kube
        .object("v1", "configmaps", Some("default"), "settings")
        .unwrap();
    assert_eq!(cm["data"]["k"], "w");
}

#[test]
fn diff_exits_1_with_a_diff_when_different_and_0_when_same() {
    let c = Cluster::start("diff");
    c.apply_yaml("cm.yaml", &configmap("settings", "{app: web}"), &[]);
    let same = c.file("same.yaml", &configmap("settings", "{app: web}"));
    let out = c.run(&["diff", "-f", &same]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");

    let rv = c.kube.resource_version();
    let changed = c.file(
        "changed.yaml",
        &configmap("settings", "{app: web}").replace("k: v", "k: w"),
    );
    let out = c.run(&["diff", "-f", &changed]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let diff = text(&out.stdout);
    assert!(diff.contains("-  k: v") && diff.contains("+  k: w"), "{diff}");
    // diff is a dry run: nothing stored.
    assert_eq!(c.kube.resource_version(), rv);
    let cm = c
        .kube
        .object("v1", "configmaps", Some("default"), "settings")
        .unwrap();
    assert_eq!(cm["data"]["k"], "v");
    assert!(c.kube.requests().iter().any(|r| r.method == "PATCH" && r.dry_run));
}

#[test]
fn label_and_annotate_change_the_stored_metadata() {
    let c = Cluster::start("label");
    c.apply_yaml("cm.yaml", &configmap("settings", "{app: web}"), &[]);
    c.ok(&["label", "configmap", "settings", "tier=db"]);
    c.ok(&["annotate", "configmap", "settings", "owner=team-a"]);
    let cm = c
        .kube
        .object("v1", "configmaps", Some("default"), "settings")
        .unwrap();
    assert_eq!(cm["metadata"]["labels"]["tier"], "db");
    assert_eq!(cm["metadata"]["labels"]["app"], "web");
    assert_eq!(cm["metadata"]["annotations"]["owner"], "team-a");

    c.ok(&["label", "configmap", "settings", "tier-"]);
    let cm = c
        .kube
        .object("v1", "configmaps", Some("default"), "settings")
        .unwrap();
    assert!(cm["metadata"]["labels"].get("tier").is_none(), "{cm}");
    let refused = c.run(&["label", "configmap", "settings", "app=other"]);
    assert!(!refused.status.success(), "relabelling needs --overwrite");
}

#[test]
fn patch_merge_and_strategic() {
    let c = Cluster::start("patch");
    c.apply_yaml("web.yaml", DEPLOYMENT_V1, &[]);
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:9"}]}}}}"#,
    ]);
    let dep = c
        .kube
        .object("apps/v1", "deployments", Some("default"), "web")
        .unwrap();
    assert_eq!(dep["spec"]["replicas"], 3);
    let cs = containers(&dep).as_array().unwrap();
    assert_eq!(cs.len(), 2, "strategic merge kept the other container: {dep}");
    assert_eq!(cs[0]["image"], "app:9");
    assert_eq!(cs[0]["env"][1]["name"], "B", "and the patched container's env");
    // A merge patch of the same list replaces it.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"only:1"}]}}}}"#,
    ]);
    let dep = c
        .kube
        .object("apps/v1", "deployments", Some("default"), "web")
        .unwrap();
    assert_eq!(
        sent_containers(&dep),
        serde_json::json!([{"name": "only", "image": "only:1"}])
    );
    let types: Vec<String> = c
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .filter_map(|r| r.content_type)
        .collect();
    assert!(types.contains(&"application/merge-patch+json".to_string()));
    assert!(types.contains(&"application/strategic-merge-patch+json".to_string()));
}

#[test]
fn delete_waits_for_a_finalizer_to_be_released() {
    let c = Cluster::start("delete");
    c.apply_yaml("cm.yaml", &configmap("held", "{app: web}"), &[]);
    c.kube
        .add_finalizer("v1", "configmaps", Some("default"), "held", "example.com/hold");
    let deleting = c.spawn(&["delete", "configmap", "held", "--wait=true", "--timeout=60s"]);
    c.until("the deletion to begin", |k| {
        k.object("v1", "configmaps", Some("default"), "held")
            .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string())
    });
    // kubectl is now waiting for the object to go (it watches it).
    c.until("kubectl to watch the object", |k| {
        k.requests()
            .iter()
            .any(|r| r.path.ends_with("/configmaps") && r.query.contains("watch=true"))
    });
    assert!(
        !deleting.is_finished(),
        "kubectl delete returned while the finalizer held"
    );
    c.kube
        .remove_finalizers("v1", "configmaps", Some("default"), "held");
    let out = deleting.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("configmap \"held\" deleted"));
    assert!(
        c.kube
            .object("v1", "configmaps", Some("default"), "held")
            .is_none()
    );
}

#[test]
fn wait_for_a_crd_to_be_established() {
    let c = Cluster::start("crd");
    c.kube.set_crd_establish_delay(Duration::from_millis(500));
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
"#;
    c.apply_yaml("crd.yaml", crd, &[]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=60s",
    ]);
    let stored = c
        .kube
        .object(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            None,
            "widgets.example.com",
        )
        .unwrap();
    let established = stored["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{stored}");

    // The new kind is usable at once: a custom resource is applied with a
    // JSON merge patch the second time (no strategic merge for CRs).
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n";
    c.apply_yaml("w.yaml", widget, &[]);
    c.apply_yaml("w.yaml", &widget.replace("size: 1", "size: 2"), &[]);
    let w = c
        .kube
        .object("example.com/v1", "widgets", Some("default"), "w")
        .unwrap();
    assert_eq!(w["spec"]["size"], 2);
    let patch = c
        .kube
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH" && r.path.ends_with("/widgets/w"))
        .unwrap();
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
}

#[test]
fn rollout_status_completes_when_the_rollout_does() {
    let c = Cluster::start("rollout");
    c.apply_yaml("web.yaml", DEPLOYMENT_V1, &[]);
    let status = c.spawn(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    c.until("kubectl to watch the deployment", |k| {
        k.requests()
            .iter()
            .any(|r| r.path.ends_with("/deployments") && r.query.contains("watch=true"))
    });
    assert!(
        !status.is_finished(),
        "rollout status returned before the rollout completed"
    );
    c.kube.complete_deployments();
    let out = status.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("deployment \"web\" successfully rolled out"),
        "{}",
        text(&out.stdout)
    );
    let dep = c
        .kube
        .object("apps/v1", "deployments", Some("default"), "web")
        .unwrap();
    assert_eq!(dep["status"]["availableReplicas"], 1);
}

#[test]
fn explain_reads_the_served_openapi_schema() {
    let c = Cluster::start("explain");
    let out = c.ok(&["explain", "deployment.spec.strategy"]);
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("rollingUpdate"), "{out}");
    assert!(
        c.kube
            .requests()
            .iter()
            .any(|r| r.path == "/openapi/v3/apis/apps/v1" && r.status == 200),
        "explain read the apps/v1 OpenAPI v3 document"
    );
}

#[test]
fn get_prints_the_columns_a_cluster_prints() {
    let c = Cluster::start("table");
    c.apply_yaml("web.yaml", DEPLOYMENT_V1, &[]);
    let row = |out: &str, name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let out = c.ok(&["get", "deployments", "-o", "wide"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let web = row(&out, "web");
    assert_eq!(web[1], "0/1", "not ready before the rollout completes: {out}");
    assert_eq!(&web[5..], ["app,side", "app:1,side:1", "app=web"]);
    c.kube.complete_deployments();
    let web = row(&c.ok(&["get", "deployments"]), "web");
    assert_eq!(&web[1..4], ["1/1", "1", "1"]);

    // A custom resource shows its CRD's printer columns.
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;
    c.apply_yaml("crd.yaml", crd, &[]);
    c.ok(&["wait", "--for=condition=Established", "crd/widgets.example.com"]);
    c.apply_yaml(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 7}\n",
        &[],
    );
    let out = c.ok(&["get", "widgets"]);
    assert_eq!(
        out.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SIZE"]
    );
    assert_eq!(row(&out, "w"), ["w", "7"]);
    let w = c
        .kube
        .object("example.com/v1", "widgets", Some("default"), "w")
        .unwrap();
    assert_eq!(w["spec"]["size"], 7);
}

#[test]
fn server_side_apply_takes_over_a_client_side_applied_object() {
    let c = Cluster::start("csa-to-ssa");
    let cm = configmap("settings", "{app: web}");
    c.apply_yaml("cm.yaml", &cm, &[]);
    // The first server-side apply moves ownership from the client-side
    // manager to kubectl's server-side one (a JSON patch of managedFields);
    // after that a change is not a conflict with the old manager.
    c.apply_yaml("cm.yaml", &cm, &["--server-side"]);
    let migrated = c
        .kube
        .requests()
        .into_iter()
        .find(|r| r.content_type.as_deref() == Some("application/json-patch+json"))
        .expect("kubectl sent the ownership migration");
    assert_eq!(migrated.status, 200);
    let stored = c
        .kube
        .object("v1", "configmaps", Some("default"), "settings")
        .unwrap();
    let managers: Vec<&str> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(!managers.contains(&"kubectl-client-side-apply"), "{managers:?}");
    assert!(managers.contains(&"kubectl"), "{managers:?}");

    c.apply_yaml("cm.yaml", &cm.replace("k: v", "k: w"), &["--server-side"]);
    let stored = c
        .kube
        .object("v1", "configmaps", Some("default"), "settings")
        .unwrap();
    assert_eq!(stored["data"]["k"], "w");
}

#[test]
fn describe_and_get_events_select_events_by_their_object() {
    let c = Cluster::start("events");
    c.apply_yaml("web.yaml", DEPLOYMENT_V1, &[]);
    let dep = c
        .kube
        .object("apps/v1", "deployments", Some("default"), "web")
        .unwrap();
    let uid = dep["metadata"]["uid"].as_str().unwrap();
    let event = |name: &str, object: &str, uid: &str| {
        format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: {name}}}\ninvolvedObject: {{apiVersion: apps/v1, kind: Deployment, name: {object}, namespace: default, uid: {uid}}}\nreason: ScalingReplicaSet\nmessage: Scaled up {object}\ntype: Normal\nsource: {{component: deployment-controller}}\n"
        )
    };
    c.apply_yaml(
        "events.yaml",
        &[event("e1", "web", uid), event("e2", "other", "0000")].join("---\n"),
        &[],
    );
    assert_eq!(c.kube.objects("events").len(), 2);

    let out = c.ok(&["get", "events", "--field-selector", "involvedObject.name=web"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    assert_eq!(out.lines().count(), 2, "only web's event:\n{out}");
    assert!(
        out.contains("deployment/web") && out.contains("Scaled up web"),
        "{out}"
    );

    let described = c.ok(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    assert!(!described.contains("Scaled up other"), "{described}");
    let events_query = c
        .kube
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/api/v1/namespaces/default/events")
        .unwrap();
    assert!(
        events_query.query.contains("involvedObject.uid"),
        "{}",
        events_query.query
    );
    assert_eq!(events_query.status, 200);

    // A field a kind does not have is refused, as on a cluster.
    let refused = c.run(&["get", "configmaps", "--field-selector", "status.phase=x"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("field label not supported"));
}

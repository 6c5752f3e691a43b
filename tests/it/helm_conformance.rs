//! Helm conformance of the fake API server (testsupport/fake-kube): the
//! REAL helm, Helm 3.17 and Helm 4.1 (each test once per version), driven
//! directly as a user would (no meshform), on the chart fixture
//! tests/data/charts/conformance (a CRD in crds/ and a custom resource of
//! it, Deployment, Service, ServiceAccount, ConfigMap, Role/RoleBinding,
//! ClusterRole/ClusterRoleBinding, ValidatingWebhookConfiguration).
//!
//! Every operation (install, upgrade with changed values, status, get
//! values, get metadata, list, history, rollback, uninstall), each with
//! `--wait` (Helm 3's switch, Helm 4's `--wait=watcher`), is checked by
//! reading the fake back: the objects, the labels and annotations helm
//! sets on them, and helm's release record, one Secret
//! `sh.helm.release.v1.NAME.vN` per revision labelled with its status, as
//! well as by what helm itself answers.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::chart_repo::charts_dir;
use crate::support::cli::Workdir;
use crate::support::kube_tools::{self, Tool};
use crate::support::real_helm::RealHelm;
use fake_kube::FakeKube;

const RELEASE: &str = "conf";
const NS: &str = "conformance";
const CRD: &str = "widgets.conformance.example.com";
const WIDGETS: &str = "conformance.example.com/v1";

/// Runs the test body `$name(tool)` once per supported helm, as
/// `$name::helm3` and `$name::helm4`.
macro_rules! with_each_helm {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::support::kube_tools::Tool;

            #[test]
            fn helm3() {
                super::$name(Tool::Helm3)
            }

            #[test]
            fn helm4() {
                super::$name(Tool::Helm4)
            }
        }
    )*};
}

with_each_helm!(
    install_creates_every_object_and_the_release_record,
    upgrade_changes_the_objects_and_records_a_revision,
    rollback_restores_an_earlier_revision,
    uninstall_removes_the_release_but_not_its_crds,
    wait_holds_until_the_deployment_is_available,
);

/// A fake API server, a real helm and a kubeconfig for the server.
struct Bed {
    kube: FakeKube,
    helm: RealHelm,
    kubeconfig: PathBuf,
    _dir: Workdir,
}

/// The objects the chart renders with its default values (the extra
/// Service aside): `(apiVersion, plural, namespaced, name)`.
fn templated() -> Vec<(&'static str, &'static str, bool, String)> {
    let cluster_name = format!("{NS}-{RELEASE}");
    vec![
        ("v1", "serviceaccounts", true, RELEASE.into()),
        ("v1", "configmaps", true, format!("{RELEASE}-config")),
        ("v1", "services", true, RELEASE.into()),
        ("apps/v1", "deployments", true, RELEASE.into()),
        ("rbac.authorization.k8s.io/v1", "roles", true, RELEASE.into()),
        (
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            true,
            RELEASE.into(),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "clusterroles",
            false,
            cluster_name.clone(),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "clusterrolebindings",
            false,
            cluster_name.clone(),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            false,
            cluster_name,
        ),
        (WIDGETS, "widgets", true, RELEASE.into()),
    ]
}

impl Bed {
    fn new(tool: Tool) -> Bed {
        let kube = FakeKube::start();
        kube.set_auto_complete_deployments(true);
        let dir = Workdir::new("helm-conformance");
        let kubeconfig = dir.write("kubeconfig", &kube.kubeconfig());
        Bed {
            kube,
            helm: RealHelm::install(tool),
            kubeconfig,
            _dir: dir,
        }
    }

    /// The wait flag of this helm (see src/provider/kube/helm_version.rs).
    fn wait(&self) -> &'static str {
        match self.helm.tool {
            Tool::Helm4 => "--wait=watcher",
            _ => "--wait",
        }
    }

    fn chart() -> String {
        charts_dir().join("conformance").to_str().unwrap().to_string()
    }

    /// `helm args... -n NS`, which must succeed; its stdout.
    fn helm(&self, args: &[&str]) -> String {
        let args: Vec<&str> = args.iter().copied().chain(["-n", NS]).collect();
        self.helm.ok(&self.kubeconfig, &args)
    }

    /// [`Bed::helm`] with `-o json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["-n", NS]).collect();
        self.helm.json(&self.kubeconfig, &args)
    }

    /// `helm install` of the chart with `--wait` and `sets` (`--set`).
    fn install(&self, sets: &[&str]) {
        let chart = Bed::chart();
        let mut args = vec![
            "install",
            RELEASE,
            &chart,
            "--create-namespace",
            self.wait(),
            "--timeout",
            "60s",
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        self.helm(&args);
    }

    /// `helm upgrade` of the chart with `--wait` and `sets`.
    fn upgrade(&self, sets: &[&str]) {
        let chart = Bed::chart();
        let mut args = vec!["upgrade", RELEASE, &chart, self.wait(), "--timeout", "60s"];
        for s in sets {
            args.extend(["--set", s]);
        }
        self.helm(&args);
    }

    fn object(&self, api_version: &str, plural: &str, namespaced: bool, name: &str) -> Option<Value> {
        self.kube
            .object(api_version, plural, namespaced.then_some(NS), name)
    }

    fn deployment(&self) -> Value {
        self.object("apps/v1", "deployments", true, RELEASE)
            .expect("the Deployment")
    }

    fn config(&self) -> Value {
        self.object("v1", "configmaps", true, &format!("{RELEASE}-config"))
            .expect("the ConfigMap")
    }

    fn image(&self) -> String {
        self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The release Secrets helm keeps: `(revision, status label)`, sorted.
    fn records(&self) -> Vec<(u32, String)> {
        let mut out: Vec<(u32, String)> = self
            .kube
            .objects("secrets")
            .into_iter()
            .filter(|s| s["metadata"]["labels"]["owner"] == "helm")
            .map(|s| {
                let labels = &s["metadata"]["labels"];
                assert_eq!(labels["name"], RELEASE, "{s}");
                assert_eq!(s["metadata"]["namespace"], NS);
                assert_eq!(s["type"], "helm.sh/release.v1");
                let revision: u32 = labels["version"].as_str().unwrap().parse().unwrap();
                assert_eq!(
                    s["metadata"]["name"],
                    format!("sh.helm.release.v1.{RELEASE}.v{revision}")
                );
                assert!(
                    s["data"]["release"].as_str().is_some_and(|r| !r.is_empty()),
                    "the record holds the release"
                );
                (revision, labels["status"].as_str().unwrap().to_string())
            })
            .collect();
        out.sort();
        out
    }
}

fn records(pairs: &[(u32, &str)]) -> Vec<(u32, String)> {
    pairs.iter().map(|(r, s)| (*r, s.to_string())).collect()
}

/// The labels and annotations helm (and the chart) put on a release's
/// object.
fn assert_owned_by_the_release(obj: &Value, what: &str) {
    let meta = &obj["metadata"];
    assert_eq!(
        meta["labels"]["app.kubernetes.io/managed-by"], "Helm",
        "{what}: {obj}"
    );
    assert_eq!(meta["labels"]["app.kubernetes.io/instance"], RELEASE, "{what}");
    assert_eq!(
        meta["annotations"]["meta.helm.sh/release-name"], RELEASE,
        "{what}"
    );
    assert_eq!(
        meta["annotations"]["meta.helm.sh/release-namespace"], NS,
        "{what}"
    );
}

fn established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

fn install_creates_every_object_and_the_release_record(tool: Tool) {
    let bed = Bed::new(tool);
    bed.install(&["greeting=hi"]);

    // crds/ first: the CRD is there, Established, and not part of the
    // release (helm neither labels nor annotates it, nor deletes it).
    let crd = bed
        .kube
        .object("apiextensions.k8s.io/v1", "customresourcedefinitions", None, CRD)
        .expect("the CRD");
    assert!(established(&crd), "{crd}");
    assert!(crd["metadata"]["annotations"]["meta.helm.sh/release-name"].is_null());
    // Every templated object, as the release's.
    for (api_version, plural, namespaced, name) in templated() {
        let obj = bed
            .object(api_version, plural, namespaced, &name)
            .unwrap_or_else(|| panic!("{plural} {name}"));
        assert_owned_by_the_release(&obj, &format!("{plural} {name}"));
    }
    let extra = bed
        .object("v1", "services", true, &format!("{RELEASE}-extra"))
        .expect("the extra Service");
    assert_owned_by_the_release(&extra, "extra Service");
    assert_eq!(bed.config()["data"], json!({"greeting": "hi", "revision": "1"}));
    assert_eq!(bed.image(), "registry.example/conformance/web:1.0");
    let widget = bed.object(WIDGETS, "widgets", true, RELEASE).unwrap();
    assert_eq!(widget["spec"]["size"], 1);
    // --wait returned once the Deployment was available.
    let deployment = bed.deployment();
    assert_eq!(deployment["status"]["availableReplicas"], 1, "{deployment}");
    // Helm 4 applies server-side (its default for a new release), Helm 3
    // updates client-side; both as field manager `helm`.
    let managers: Vec<(String, String)> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let operation = if tool == Tool::Helm4 { "Apply" } else { "Update" };
    assert!(
        managers.contains(&("helm".to_string(), operation.to_string())),
        "{managers:?}"
    );

    // The release record.
    assert_eq!(bed.records(), records(&[(1, "deployed")]));

    // What helm answers about it.
    let status = bed.json(&["status", RELEASE]);
    assert_eq!(status["name"], RELEASE);
    assert_eq!(status["namespace"], NS);
    assert_eq!(status["version"], 1);
    assert_eq!(status["info"]["status"], "deployed");
    assert_eq!(status["config"], json!({"greeting": "hi"}));
    assert!(
        status["manifest"]
            .as_str()
            .unwrap()
            .contains("kind: ValidatingWebhookConfiguration")
    );
    assert_eq!(bed.json(&["get", "values", RELEASE]), json!({"greeting": "hi"}));
    let all = bed.json(&["get", "values", RELEASE, "--all"]);
    assert_eq!(
        (&all["greeting"], &all["replicaCount"]),
        (&json!("hi"), &json!(1))
    );
    let meta = bed.json(&["get", "metadata", RELEASE]);
    assert_eq!(meta["name"], RELEASE);
    assert_eq!(meta["chart"], "conformance");
    assert_eq!(meta["version"], "0.1.0");
    assert_eq!(meta["appVersion"], "1.0.0");
    assert_eq!(meta["namespace"], NS);
    assert_eq!(meta["revision"], 1);
    assert_eq!(meta["status"], "deployed");
    if tool == Tool::Helm4 {
        assert_eq!(meta["applyMethod"], "ssa");
        assert_eq!(status["apply_method"], "ssa");
    }
    let list = bed.json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], RELEASE);
    assert_eq!(list[0]["revision"], "1");
    assert_eq!(list[0]["status"], "deployed");
    assert_eq!(list[0]["chart"], "conformance-0.1.0");
    let everywhere = bed.helm.json(&bed.kubeconfig, &["list", "--all-namespaces"]);
    assert_eq!(everywhere.as_array().unwrap().len(), 1, "{everywhere}");
    // A second install of the same name is refused, and changes nothing.
    let chart = Bed::chart();
    let again = bed
        .helm
        .run(&bed.kubeconfig, &["install", RELEASE, &chart, "-n", NS]);
    assert!(!again.status.success());
    assert!(
        // Helm 3 says "cannot re-use a name", Helm 4 "cannot reuse a name".
        String::from_utf8_lossy(&again.stderr).contains("a name that is still in use"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(bed.records(), records(&[(1, "deployed")]));
}

fn upgrade_changes_the_objects_and_records_a_revision(tool: Tool) {
    let bed = Bed::new(tool);
    bed.install(&["greeting=hi"]);
    let before = bed.deployment();
    bed.upgrade(&[
        "greeting=bye",
        "image.tag=2.0",
        "replicaCount=3",
        "extraService.enabled=false",
        "widget.size=5",
    ]);

    let after = bed.deployment();
    assert_eq!(bed.image(), "registry.example/conformance/web:2.0");
    assert_eq!(after["spec"]["replicas"], 3);
    assert_eq!(after["status"]["availableReplicas"], 3, "--wait saw it available");
    let checksum = |d: &Value| d["spec"]["template"]["metadata"]["annotations"]["checksum/config"].clone();
    assert_ne!(
        checksum(&before),
        checksum(&after),
        "the new config rolls the pods"
    );
    assert_eq!(
        after["metadata"]["uid"], before["metadata"]["uid"],
        "updated in place, not replaced"
    );
    assert_eq!(bed.config()["data"], json!({"greeting": "bye", "revision": "2"}));
    assert_eq!(
        bed.object(WIDGETS, "widgets", true, RELEASE).unwrap()["spec"]["size"],
        5
    );
    // What the new revision no longer renders is deleted.
    assert!(
        bed.object("v1", "services", true, &format!("{RELEASE}-extra"))
            .is_none()
    );
    for (api_version, plural, namespaced, name) in templated() {
        let obj = bed
            .object(api_version, plural, namespaced, &name)
            .unwrap_or_else(|| panic!("{plural} {name}"));
        assert_owned_by_the_release(&obj, &format!("{plural} {name}"));
    }

    assert_eq!(bed.records(), records(&[(1, "superseded"), (2, "deployed")]));
    let history = bed.json(&["history", RELEASE]);
    let rows: Vec<(i64, &str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["revision"].as_i64().unwrap(),
                h["status"].as_str().unwrap(),
                h["description"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "superseded", "Install complete"),
            (2, "deployed", "Upgrade complete")
        ]
    );
    assert_eq!(history[1]["chart"], "conformance-0.1.0");
    // Without --reuse-values, the values are exactly this upgrade's.
    let values = bed.json(&["get", "values", RELEASE]);
    assert_eq!(
        values,
        json!({
            "greeting": "bye",
            "image": {"tag": "2.0"},
            "replicaCount": 3,
            "extraService": {"enabled": false},
            "widget": {"size": 5},
        })
    );
    assert_eq!(
        bed.json(&["get", "values", RELEASE, "--revision", "1"]),
        json!({"greeting": "hi"})
    );
    let meta = bed.json(&["get", "metadata", RELEASE]);
    assert_eq!(
        (&meta["revision"], &meta["status"]),
        (&json!(2), &json!("deployed"))
    );
    let status = bed.json(&["status", RELEASE]);
    assert_eq!(
        (&status["version"], &status["info"]["status"]),
        (&json!(2), &json!("deployed"))
    );
    let list = bed.json(&["list"]);
    assert_eq!(list[0]["revision"], "2");
}

fn rollback_restores_an_earlier_revision(tool: Tool) {
    let bed = Bed::new(tool);
    bed.install(&["greeting=hi"]);
    bed.upgrade(&["greeting=bye", "image.tag=2.0", "extraService.enabled=false"]);
    assert!(
        bed.object("v1", "services", true, &format!("{RELEASE}-extra"))
            .is_none()
    );

    bed.helm(&["rollback", RELEASE, "1", bed.wait(), "--timeout", "60s"]);

    // Revision 1's objects, as a new revision 3.
    assert_eq!(bed.image(), "registry.example/conformance/web:1.0");
    assert_eq!(bed.config()["data"], json!({"greeting": "hi", "revision": "1"}));
    let extra = bed
        .object("v1", "services", true, &format!("{RELEASE}-extra"))
        .expect("the extra Service is back");
    assert_owned_by_the_release(&extra, "extra Service");
    assert_eq!(
        bed.records(),
        records(&[(1, "superseded"), (2, "superseded"), (3, "deployed")])
    );
    let history = bed.json(&["history", RELEASE]);
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(history[2]["description"], "Rollback to 1");
    assert_eq!(history[2]["status"], "deployed");
    assert_eq!(bed.json(&["get", "values", RELEASE]), json!({"greeting": "hi"}));
    let meta = bed.json(&["get", "metadata", RELEASE]);
    assert_eq!(
        (&meta["revision"], &meta["status"]),
        (&json!(3), &json!("deployed"))
    );
}

fn uninstall_removes_the_release_but_not_its_crds(tool: Tool) {
    let bed = Bed::new(tool);
    bed.install(&[]);
    let out = bed.helm(&["uninstall", RELEASE, bed.wait(), "--timeout", "60s"]);
    assert!(
        out.contains(&format!("release \"{RELEASE}\" uninstalled")),
        "{out}"
    );

    for (api_version, plural, namespaced, name) in templated() {
        assert!(
            bed.object(api_version, plural, namespaced, &name).is_none(),
            "{plural} {name} left"
        );
    }
    assert!(
        bed.object("v1", "services", true, &format!("{RELEASE}-extra"))
            .is_none()
    );
    assert!(bed.records().is_empty(), "{:?}", bed.records());
    // The CRD stays (helm never deletes crds/), and so does the namespace.
    assert!(
        bed.kube
            .object("apiextensions.k8s.io/v1", "customresourcedefinitions", None, CRD)
            .is_some()
    );
    assert!(bed.kube.object("v1", "namespaces", None, NS).is_some());
    // helm knows it no more.
    let status = bed.helm.run(&bed.kubeconfig, &["status", RELEASE, "-n", NS]);
    assert!(!status.status.success());
    assert!(String::from_utf8_lossy(&status.stderr).contains("release: not found"));
    assert_eq!(bed.json(&["list"]), json!([]));
    let again = bed.helm.run(&bed.kubeconfig, &["uninstall", RELEASE, "-n", NS]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("release: not found"));

    // --keep-history: the objects go, the record stays, `uninstalled`.
    bed.install(&[]);
    bed.helm(&[
        "uninstall",
        RELEASE,
        "--keep-history",
        bed.wait(),
        "--timeout",
        "60s",
    ]);
    assert!(bed.object("apps/v1", "deployments", true, RELEASE).is_none());
    assert_eq!(bed.records(), records(&[(1, "uninstalled")]));
    let listed = bed.json(&["list", "--uninstalled"]);
    assert_eq!(listed[0]["name"], RELEASE);
    assert_eq!(listed[0]["status"], "uninstalled");
}

/// Starts `helm args... -n NS` in the background (stdout and stderr
/// discarded: the caller checks the fake and the exit status).
fn spawn_helm(bed: &Bed, args: &[&str], scratch: &Workdir) -> std::process::Child {
    let home = scratch.path.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(kube_tools::path(bed.helm.tool))
        .args(args)
        .args(["-n", NS])
        .env("KUBECONFIG", &bed.kubeconfig)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls until `done` holds (a bound against hangs, not a timed assertion).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_holds_until_the_deployment_is_available(tool: Tool) {
    let bed = Bed::new(tool);
    bed.kube.set_auto_complete_deployments(false);
    let scratch = Workdir::new("helm-wait");
    let chart = Bed::chart();
    let mut install = spawn_helm(
        &bed,
        &[
            "install",
            RELEASE,
            &chart,
            "--create-namespace",
            bed.wait(),
            "--timeout",
            "120s",
        ],
        &scratch,
    );

    // The objects are written and the release is pending while the
    // Deployment is not available: helm is still waiting.
    eventually("the Deployment", || {
        bed.object("apps/v1", "deployments", true, RELEASE).is_some()
    });
    assert_eq!(bed.records(), records(&[(1, "pending-install")]));
    assert!(install.try_wait().unwrap().is_none(), "helm waits");
    bed.kube.complete_deployments();
    let status = install.wait().unwrap();
    assert!(status.success(), "install --wait succeeds once available");
    assert_eq!(bed.records(), records(&[(1, "deployed")]));

    // A rollout that never completes: the upgrade's wait gives up, and the
    // new revision is recorded as failed.
    let upgrade = bed.helm.run(
        &bed.kubeconfig,
        &[
            "upgrade",
            RELEASE,
            &chart,
            "-n",
            NS,
            "--set",
            "image.tag=3.0",
            bed.wait(),
            "--timeout",
            "2s",
        ],
    );
    assert!(!upgrade.status.success(), "{}", bed.deployment());
    let stderr = String::from_utf8_lossy(&upgrade.stderr);
    assert!(stderr.contains("context deadline exceeded"), "{stderr}");
    // The previous revision stays the deployed one.
    assert_eq!(bed.records(), records(&[(1, "deployed"), (2, "failed")]));
    assert_eq!(bed.json(&["get", "metadata", RELEASE])["status"], "failed");
    assert_eq!(bed.image(), "registry.example/conformance/web:3.0");
}

//! `helm.release` with the REAL helm (support/real_helm.rs: Helm 3.17 and
//! Helm 4.1, each test once per version) against the fake Kubernetes API
//! server (testsupport/fake-kube), installing the chart fixture
//! tests/data/charts/appmesh-controller from a chart repository served on
//! 127.0.0.1 (support/chart_repo.rs). Each test starts its own API server,
//! repository and helm directories.
//!
//! Library-level tests use `HelmRelease::with_program` and a kubeconfig
//! context connection, because `MESHFORM_HELM`, `PATH` and
//! `MESHFORM_KUBE_SERVER` are process-global and tests run in parallel
//! threads. The CLI tests run meshform as a child process with helm on
//! PATH (or named by `MESHFORM_HELM`) and `MESHFORM_KUBE_SERVER` set.
//! What helm did is checked by reading the fake back (objects, the labels
//! and annotations helm sets, its release Secrets) and with the real
//! `helm get`, not only from meshform's answers.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use meshform::Attrs;
use meshform::provider::kube::connection::Clients;
use meshform::provider::kube::helm_release::{
    DEF, HelmRelease, HelmReleaseWithProgram, NOT_ON_PATH, PROGRAM_ENV, locate_helm,
};
use meshform::provider::{InPlace, Live, OpContext, ReadRequest, ResourceKind, Schema};
use serde_json::{Value, json};

use crate::support::chart_repo::ChartRepo;
use crate::support::cli::{Workdir, expect_code, meshform, stderr};
use crate::support::kube_tools::Tool;
use crate::support::moto::Moto;
use crate::support::real_helm::RealHelm;
use fake_kube::FakeKube;

const NAME: &str = "appmesh-controller";
const NAMESPACE: &str = "appmesh-system";
const CHART_VERSION: &str = "1.13.1";

const MESH_CRDS: [&str; 4] = [
    "meshes.appmesh.k8s.aws",
    "virtualnodes.appmesh.k8s.aws",
    "virtualservices.appmesh.k8s.aws",
    "virtualrouters.appmesh.k8s.aws",
];

/// Runs the test body `$name(tool)` once per supported helm, as
/// `$name::helm3` and `$name::helm4`.
macro_rules! with_each_helm {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::support::kube_tools::Tool;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn helm3() {
                super::$name(Tool::Helm3).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn helm4() {
                super::$name(Tool::Helm4).await
            }
        }
    )*};
}

with_each_helm!(
    install_applies_the_chart_and_reads_back,
    a_values_change_is_an_in_place_upgrade,
    read_after_an_out_of_band_uninstall_is_none,
    delete_uninstalls_and_tolerates_a_missing_release,
    helm_failures_carry_its_message,
    the_cli_finds_helm_on_path_and_applies_a_release,
);

/// A fake API server (Deployments become available at once unless
/// `rollouts` is false), a real helm, a chart repository and a kubeconfig
/// file for the server.
struct Setup {
    kube: FakeKube,
    helm: RealHelm,
    repo: ChartRepo,
    kubeconfig: PathBuf,
    _dir: Workdir,
}

impl Setup {
    fn new(tool: Tool, rollouts: bool) -> Setup {
        let kube = FakeKube::start();
        kube.set_auto_complete_deployments(rollouts);
        let dir = Workdir::new("helm");
        let kubeconfig = dir.write("kubeconfig", &kube.kubeconfig());
        Setup {
            kube,
            helm: RealHelm::install(tool),
            repo: ChartRepo::serve(&["appmesh-controller"]),
            kubeconfig,
            _dir: dir,
        }
    }

    fn kind(&self) -> HelmReleaseWithProgram {
        HelmRelease::with_program(Arc::new(Clients::default()), self.helm.program.clone())
    }

    /// Desired attributes as the planner hands them over (defaults filled
    /// in), with the connection and `extra` merged in.
    fn desired(&self, extra: Value) -> Attrs {
        let mut attrs = json!({
            "cluster": {"kubeconfig_context": "fake-kube", "kubeconfig": self.kubeconfig},
            "name": NAME,
            "namespace": NAMESPACE,
            "chart": "appmesh-controller",
            "repository": self.repo.url,
            "version": CHART_VERSION,
            "create_namespace": true,
            "values": {"region": "us-west-2"},
            "wait_timeout_seconds": 120,
        })
        .as_object()
        .cloned()
        .unwrap();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                attrs.remove(&k);
            } else {
                attrs.insert(k, v);
            }
        }
        attrs
    }

    fn deployment(&self) -> Option<Value> {
        self.kube.object("apps/v1", "deployments", Some(NAMESPACE), NAME)
    }

    /// The release Secret of `revision`, as helm's storage driver keeps it.
    fn release_secret(&self, revision: u32) -> Option<Value> {
        let name = format!("sh.helm.release.v1.{NAME}.v{revision}");
        self.kube.object("v1", "secrets", Some(NAMESPACE), &name)
    }

    /// The revisions helm keeps Secrets for, sorted.
    fn release_revisions(&self) -> Vec<u32> {
        let mut revisions: Vec<u32> = self
            .kube
            .objects("secrets")
            .iter()
            .filter(|s| s["metadata"]["labels"]["owner"] == "helm" && s["metadata"]["labels"]["name"] == NAME)
            .filter_map(|s| s["metadata"]["labels"]["version"].as_str()?.parse().ok())
            .collect();
        revisions.sort();
        revisions
    }

    /// `helm get metadata` with the real helm, directly.
    fn metadata(&self) -> Value {
        self.helm
            .json(&self.kubeconfig, &["get", "metadata", NAME, "-n", NAMESPACE])
    }

    /// Uninstalls the release with the real helm directly, as a user would.
    fn uninstall_out_of_band(&self) {
        self.helm
            .ok(&self.kubeconfig, &["uninstall", NAME, "-n", NAMESPACE]);
    }
}

fn cx() -> OpContext {
    OpContext {
        stack: "teststack".into(),
        address: "appmesh_controller".into(),
        ..Default::default()
    }
}

fn request(live: &Live) -> ReadRequest {
    ReadRequest {
        address: "appmesh_controller".into(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

fn controller_args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

/// The wait flag meshform must pass to this helm.
fn wait_flag(tool: Tool) -> &'static str {
    match tool {
        Tool::Helm4 => "--wait=watcher",
        _ => "--wait",
    }
}

#[test]
fn preflight_says_when_helm_is_not_on_path() {
    let helm = RealHelm::install(Tool::Helm4);
    let empty = Workdir::new("empty-path");
    // Nothing on PATH: the message says what to install.
    let err = locate_helm(None, Some(empty.path.as_os_str())).unwrap_err();
    assert_eq!(err, NOT_ON_PATH);
    assert!(err.contains("`helm` program is not on PATH") && err.contains("https://helm.sh"));
    assert_eq!(locate_helm(None, None).unwrap_err(), NOT_ON_PATH);
    // Found through PATH, after directories without it.
    let path = std::env::join_paths([empty.path.clone(), helm.bin_dir()]).unwrap();
    assert_eq!(locate_helm(None, Some(&path)).unwrap(), helm.program);
    // MESHFORM_HELM wins over PATH, and is checked.
    assert_eq!(
        locate_helm(Some(helm.program.as_os_str()), Some(empty.path.as_os_str())).unwrap(),
        helm.program
    );
    let err = locate_helm(Some(OsStr::new("/no/such/helm")), Some(&path)).unwrap_err();
    assert!(err.contains(PROGRAM_ENV), "{err}");
    // The kind's preflight hook is the one validation runs.
    assert!(DEF.preflight.is_some());
}

/// A stack with one helm.release; MESHFORM_KUBE_SERVER says where the
/// cluster is, so the context named here is never looked up. The chart
/// comes through the repository helm knows as `eks`.
const STACK: &str = r#"[stack]
name = "helmtest"
region = "us-west-2"

[resource.appmesh_controller]
type = "helm.release"
cluster = { kubeconfig_context = "not-used" }
name = "appmesh-controller"
namespace = "appmesh-system"
chart = "eks/appmesh-controller"
version = "1.13.1"
create_namespace = true
values = { region = "us-west-2", replicaCount = 1 }
"#;

/// Helm 3.8.1 (older than 3.13): `validate` refuses it naming its version
/// and the supported range, and the library refuses it before any call
/// reaches the cluster.
#[tokio::test]
async fn helm_older_than_3_13_is_refused_naming_its_version() {
    let old = RealHelm::install(Tool::HelmOld);
    let dir = Workdir::new("helm-old");
    let stack = dir.write("stack.toml", STACK);
    let mut cmd = meshform(&dir.path, None, &["validate", stack.to_str().unwrap()]);
    cmd.env(PROGRAM_ENV, &old.program);
    let out = expect_code(cmd, 1);
    let err = stderr(&out);
    assert!(
        err.contains("appmesh_controller (helm.release)")
            && err.contains("v3.8.1")
            && err.contains("too old")
            && err.contains("Helm 3.13 or later 3.x, or Helm 4.x"),
        "{err}"
    );
    // Only `helm version` ran.
    let calls: Vec<_> = old.calls().into_iter().map(|c| c.argv).collect();
    assert!(
        !calls.is_empty() && calls.iter().all(|argv| argv[0] == "version"),
        "{calls:?}"
    );

    let kube = FakeKube::start();
    let kubeconfig = dir.write("kubeconfig", &kube.kubeconfig());
    let kind = HelmRelease::with_program(Arc::new(Clients::default()), old.program.clone());
    let desired = json!({
        "cluster": {"kubeconfig_context": "fake-kube", "kubeconfig": kubeconfig},
        "name": NAME, "namespace": NAMESPACE, "chart": "appmesh-controller",
        "create_namespace": true, "wait_timeout_seconds": 30,
    });
    let err = kind
        .create(&cx(), desired.as_object().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("v3.8.1") && err.contains("too old"), "{err}");
    assert!(kube.requests().is_empty(), "nothing reached the cluster");
    assert!(old.calls().iter().all(|c| c.command() == "version"));

    // The supported ones pass validation.
    for tool in Tool::SUPPORTED_HELMS {
        let helm = RealHelm::install(tool);
        let mut cmd = meshform(&dir.path, None, &["validate", stack.to_str().unwrap()]);
        cmd.env(PROGRAM_ENV, &helm.program);
        expect_code(cmd, 0);
    }
}

async fn install_applies_the_chart_and_reads_back(tool: Tool) {
    let s = Setup::new(tool, true);
    let kind = s.kind();
    let desired = s.desired(json!({}));
    assert_eq!(kind.find_existing(&cx(), &desired).await.unwrap(), None);

    let live = kind.create(&cx(), &desired).await.expect("install");

    // helm was asked for exactly this.
    let upgrades = s.helm.calls_of("upgrade");
    assert_eq!(upgrades.len(), 1);
    let call = &upgrades[0];
    assert_eq!(
        &call.argv[..4],
        ["upgrade", "--install", NAME, "appmesh-controller"]
    );
    assert_eq!(call.flag("--namespace"), Some(NAMESPACE));
    assert_eq!(call.flag("--repo"), Some(s.repo.url.as_str()));
    assert_eq!(call.flag("--version"), Some(CHART_VERSION));
    assert_eq!(call.flag("--timeout"), Some("120s"));
    assert_eq!(call.flag("--output"), Some("json"));
    assert_eq!(call.flag("--kube-context"), Some("fake-kube"));
    assert_eq!(call.flag("--kubeconfig"), s.kubeconfig.to_str());
    for flag in ["--create-namespace", wait_flag(tool), "--reset-values"] {
        assert!(call.has(flag), "{flag} in {:?}", call.argv);
    }
    assert!(!call.has("--server-side"), "Helm's default apply method");
    assert_eq!(call.values_mode, Some(0o600), "the values file is private");
    let values_file = Path::new(call.flag("--values").unwrap());
    assert!(!values_file.exists(), "the values file is removed after the call");
    assert!(!values_file.parent().unwrap().exists(), "so is its directory");

    // The cluster holds what the install made: the namespace, the CRDs
    // (Established, so their kinds are served) and the chart's objects,
    // labelled and annotated as helm's own.
    assert!(s.kube.object("v1", "namespaces", None, NAMESPACE).is_some());
    for crd in MESH_CRDS {
        let obj = s
            .kube
            .object("apiextensions.k8s.io/v1", "customresourcedefinitions", None, crd)
            .unwrap_or_else(|| panic!("CRD {crd} installed"));
        assert!(established(&obj), "{crd} is Established: {obj}");
    }
    let deployment = s.deployment().expect("controller Deployment");
    assert!(controller_args(&deployment).contains(&"--aws-region=us-west-2".to_string()));
    let meta = &deployment["metadata"];
    assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(meta["labels"]["helm.sh/chart"], "appmesh-controller-1.13.1");
    assert_eq!(meta["annotations"]["meta.helm.sh/release-name"], NAME);
    assert_eq!(meta["annotations"]["meta.helm.sh/release-namespace"], NAMESPACE);
    for (gv, plural, ns, name) in [
        ("v1", "serviceaccounts", Some(NAMESPACE), NAME.to_string()),
        (
            "v1",
            "services",
            Some(NAMESPACE),
            format!("{NAME}-webhook-service"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "clusterroles",
            None,
            format!("{NAME}-role"),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            None,
            format!("{NAME}-validating-webhook-configuration"),
        ),
    ] {
        let obj = s
            .kube
            .object(gv, plural, ns, &name)
            .unwrap_or_else(|| panic!("{plural} {name}"));
        assert_eq!(obj["metadata"]["annotations"]["meta.helm.sh/release-name"], NAME);
    }
    // Helm 4 writes with server-side apply (its default for a new
    // release), Helm 3 creates with POST; both as field manager `helm`.
    let writes: Vec<_> = s
        .kube
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .starts_with(&format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments"))
        })
        .filter(|r| r.method == "PATCH" || r.method == "POST")
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    match tool {
        Tool::Helm4 => {
            assert_eq!(writes[0].method, "PATCH");
            assert_eq!(
                writes[0].content_type.as_deref(),
                Some("application/apply-patch+yaml")
            );
        }
        _ => assert_eq!(writes[0].method, "POST"),
    }
    assert_eq!(writes[0].field_manager.as_deref(), Some("helm"));
    // The release is stored as helm stores it: one Secret per revision.
    let secret = s.release_secret(1).expect("release Secret v1");
    assert_eq!(secret["type"], "helm.sh/release.v1");
    assert_eq!(secret["metadata"]["labels"]["status"], "deployed");
    assert_eq!(s.release_revisions(), [1]);

    // What follows the release works: a Mesh can be created.
    let mesh = ApiResource::from_gvk(&GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", "Mesh"));
    let meshes: Api<DynamicObject> = Api::all_with(s.kube.client(), &mesh);
    meshes
        .patch(
            "demo",
            &PatchParams::apply("meshform"),
            &Patch::Apply(json!({
                "apiVersion": "appmesh.k8s.aws/v1beta2",
                "kind": "Mesh",
                "metadata": {"name": "demo"},
                "spec": {"namespaceSelector": {"matchLabels": {"mesh": "demo"}}},
            })),
        )
        .await
        .expect("the Mesh kind is served");

    // The release as read back.
    assert_eq!(live.id, format!("{NAMESPACE}/{NAME}"));
    let a = &live.attrs;
    assert_eq!(a["revision"], json!(1));
    assert_eq!(a["status"], json!("deployed"));
    assert_eq!(a["chart_version"], json!(CHART_VERSION));
    assert_eq!(a["app_version"], json!("1.13.1"));
    assert_eq!(a["values"], json!({"region": "us-west-2"}));
    for key in [
        "cluster",
        "name",
        "namespace",
        "chart",
        "repository",
        "version",
        "create_namespace",
    ] {
        assert_eq!(a[key], desired[key], "{key}");
    }
    assert_eq!(a["wait_timeout_seconds"], json!(120));
    // ...as the real helm reports it, too.
    let meta = s.metadata();
    assert_eq!(
        (&meta["revision"], &meta["status"], &meta["version"]),
        (&json!(1), &json!("deployed"), &json!(CHART_VERSION))
    );
    if tool == Tool::Helm4 {
        assert_eq!(meta["applyMethod"], "ssa");
    }

    // Reading returns the same; find_existing finds the deployed release.
    let read = kind.read(&[request(&live)]).await.unwrap();
    assert_eq!(read, vec![Some(live.clone())]);
    assert_eq!(
        kind.find_existing(&cx(), &desired).await.unwrap(),
        Some(live.clone())
    );
    let gets: Vec<_> = s.helm.calls_of("get").iter().map(|c| c.argv[1].clone()).collect();
    assert!(gets.contains(&"metadata".to_string()) && gets.contains(&"values".to_string()));
    // helm's version was asked once, before anything else.
    let calls = s.helm.calls();
    assert_eq!(calls[0].command(), "version");
    assert_eq!(s.helm.calls_of("version").len(), 1);
}

async fn a_values_change_is_an_in_place_upgrade(tool: Tool) {
    let s = Setup::new(tool, true);
    let kind = s.kind();
    let live = kind.create(&cx(), &s.desired(json!({}))).await.expect("install");

    let desired = s.desired(json!({"values": {"region": "eu-west-1", "replicaCount": 2.0}}));
    let updated = kind
        .update(
            &cx(),
            InPlace {
                prior: &live,
                desired: &desired,
                changed: &["values".to_string()],
            },
        )
        .await
        .expect("upgrade");
    assert_eq!(updated.attrs["revision"], json!(2));
    // helm answers 2 for 2.0: the read value is normalized alike.
    assert_eq!(
        updated.attrs["values"],
        json!({"region": "eu-west-1", "replicaCount": 2})
    );
    assert_eq!(s.helm.calls_of("upgrade").len(), 2);
    let deployment = s.deployment().unwrap();
    assert!(controller_args(&deployment).contains(&"--aws-region=eu-west-1".to_string()));
    assert_eq!(deployment["spec"]["replicas"], json!(2));
    // helm keeps both revisions, the first superseded.
    assert_eq!(s.release_revisions(), [1, 2]);
    assert_eq!(
        s.release_secret(1).unwrap()["metadata"]["labels"]["status"],
        "superseded"
    );
    assert_eq!(
        s.release_secret(2).unwrap()["metadata"]["labels"]["status"],
        "deployed"
    );
    let values = s
        .helm
        .json(&s.kubeconfig, &["get", "values", NAME, "-n", NAMESPACE]);
    assert_eq!(values, json!({"region": "eu-west-1", "replicaCount": 2}));

    // Removing every value leaves the release with none: the chart's
    // defaults apply again.
    let desired = s.desired(json!({"values": null}));
    let emptied = kind
        .update(
            &cx(),
            InPlace {
                prior: &updated,
                desired: &desired,
                changed: &["values".to_string()],
            },
        )
        .await
        .expect("upgrade");
    assert_eq!(emptied.attrs["revision"], json!(3));
    assert_eq!(emptied.attrs["values"], json!({}));
    let deployment = s.deployment().unwrap();
    assert!(controller_args(&deployment).contains(&"--aws-region=".to_string()));
    assert_eq!(deployment["spec"]["replicas"], json!(1));

    // A change of how long to wait changes nothing in the cluster.
    let desired = s.desired(json!({"values": null, "wait_timeout_seconds": 300}));
    let same = kind
        .update(
            &cx(),
            InPlace {
                prior: &emptied,
                desired: &desired,
                changed: &["wait_timeout_seconds".to_string()],
            },
        )
        .await
        .expect("update");
    assert_eq!(same.attrs["revision"], json!(3));
    assert_eq!(same.attrs["wait_timeout_seconds"], json!(300));
    assert_eq!(s.helm.calls_of("upgrade").len(), 3);
    assert_eq!(s.release_revisions(), [1, 2, 3]);

    // Cluster, name and namespace cannot change in place: the schema says
    // so, and the engine replaces the release rather than asking `update`
    // (the engine's own test checks that it refuses such an update).
    for attr in ["cluster", "name", "namespace"] {
        assert!(kind.def().attr(attr).is_some_and(|a| a.force_new), "{attr}");
    }
}

async fn read_after_an_out_of_band_uninstall_is_none(tool: Tool) {
    let s = Setup::new(tool, true);
    let kind = s.kind();
    let live = kind.create(&cx(), &s.desired(json!({}))).await.expect("install");
    s.uninstall_out_of_band();
    assert!(s.deployment().is_none());
    assert!(s.release_revisions().is_empty());
    assert_eq!(kind.read(&[request(&live)]).await.unwrap(), vec![None]);
    assert_eq!(
        kind.find_existing(&cx(), &s.desired(json!({}))).await.unwrap(),
        None
    );
}

async fn delete_uninstalls_and_tolerates_a_missing_release(tool: Tool) {
    let s = Setup::new(tool, true);
    let kind = s.kind();
    let live = kind.create(&cx(), &s.desired(json!({}))).await.expect("install");
    kind.delete(&cx(), &live).await.expect("uninstall");

    let uninstalls = s.helm.calls_of("uninstall");
    assert_eq!(uninstalls.len(), 1);
    let call = &uninstalls[0];
    assert_eq!(&call.argv[..2], ["uninstall", NAME]);
    assert_eq!(call.flag("--namespace"), Some(NAMESPACE));
    assert_eq!(call.flag("--timeout"), Some("120s"));
    assert!(call.has(wait_flag(tool)), "{:?}", call.argv);
    assert_eq!(call.flag("--kube-context"), Some("fake-kube"));
    assert!(s.deployment().is_none(), "the controller is gone");
    for (gv, plural, ns, name) in [
        ("v1", "serviceaccounts", Some(NAMESPACE), NAME.to_string()),
        (
            "rbac.authorization.k8s.io/v1",
            "clusterroles",
            None,
            format!("{NAME}-role"),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            None,
            format!("{NAME}-validating-webhook-configuration"),
        ),
    ] {
        assert!(
            s.kube.object(gv, plural, ns, &name).is_none(),
            "{plural} {name} left"
        );
    }
    assert!(s.release_revisions().is_empty(), "no release Secret left");
    // CRDs stay, as with helm.
    assert!(
        s.kube
            .object(
                "apiextensions.k8s.io/v1",
                "customresourcedefinitions",
                None,
                MESH_CRDS[0]
            )
            .is_some()
    );
    // Deleting again: helm says "release: not found", which is success.
    kind.delete(&cx(), &live).await.expect("already gone");
    assert_eq!(kind.read(&[request(&live)]).await.unwrap(), vec![None]);
}

async fn helm_failures_carry_its_message(tool: Tool) {
    let s = Setup::new(tool, false);
    let kind = s.kind();
    // No namespace, and not asked to create it.
    let err = kind
        .create(&cx(), &s.desired(json!({"create_namespace": false})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("helm upgrade --install")
            && err.contains(&format!("namespaces \"{NAMESPACE}\" not found")),
        "{err}"
    );
    // A rollout that never completes: helm's wait gives up; the release
    // is `failed`, which is not taken for an existing one.
    let desired = s.desired(json!({"wait_timeout_seconds": 2}));
    let err = kind.create(&cx(), &desired).await.unwrap_err().to_string();
    assert!(
        err.contains("context deadline exceeded") || err.contains("timed out"),
        "{err}"
    );
    assert_eq!(s.metadata()["status"], "failed");
    assert_eq!(
        s.release_secret(1).unwrap()["metadata"]["labels"]["status"],
        "failed"
    );
    assert_eq!(kind.find_existing(&cx(), &desired).await.unwrap(), None);
    // A chart version the repository does not have.
    let err = kind
        .create(&cx(), &s.desired(json!({"version": "9.9.9"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("9.9.9"), "{err}");
    // A program that is not there.
    let missing = HelmRelease::with_program(Arc::new(Clients::default()), "/no/such/helm".into());
    let err = missing.create(&cx(), &desired).await.unwrap_err().to_string();
    assert!(err.contains("/no/such/helm"), "{err}");
}

async fn the_cli_finds_helm_on_path_and_applies_a_release(tool: Tool) {
    let kube = FakeKube::start();
    kube.set_auto_complete_deployments(true);
    let helm = RealHelm::install(tool);
    let repo = ChartRepo::serve(&["appmesh-controller"]);
    let dir = Workdir::new("helm-cli");
    let kubeconfig = dir.write("kubeconfig", &kube.kubeconfig());
    // The repository the stack's `eks/appmesh-controller` names, added to
    // the wrapper's private helm settings as a user would.
    helm.ok(&kubeconfig, &["repo", "add", "eks", &repo.url]);
    let stack = dir.write("stack.toml", STACK);
    let stack = stack.to_str().unwrap();
    let system_path = std::env::var_os("PATH").unwrap_or_default();
    let with_helm =
        std::env::join_paths(std::iter::once(helm.bin_dir()).chain(std::env::split_paths(&system_path)))
            .unwrap();
    let empty = Workdir::new("helm-cli-empty");

    // Without helm, validation says so before anything is done.
    let mut cmd = meshform(&dir.path, None, &["validate", stack]);
    cmd.env("PATH", &empty.path).env_remove(PROGRAM_ENV);
    let out = expect_code(cmd, 1);
    assert!(stderr(&out).contains(NOT_ON_PATH), "{}", stderr(&out));

    let moto = Moto::start();
    let run = |args: &[&str]| {
        let mut cmd = meshform(&dir.path, Some(&moto), args);
        cmd.env("PATH", &with_helm)
            .env_remove(PROGRAM_ENV)
            .env("MESHFORM_KUBE_SERVER", kube.url());
        cmd
    };
    expect_code(run(&["validate", stack]), 0);
    expect_code(run(&["apply", stack, "--auto-approve"]), 0);
    let call = helm.calls_of("upgrade").pop().expect("helm upgrade ran");
    assert_eq!(call.argv[3], "eks/appmesh-controller");
    assert_eq!(call.flag("--kube-context"), Some("meshform"));
    assert_eq!(
        call.kubeconfig_mode,
        Some(0o600),
        "a private temporary kubeconfig"
    );
    assert!(
        !Path::new(call.flag("--kubeconfig").unwrap()).exists(),
        "removed afterwards"
    );
    assert!(
        kube.object("apps/v1", "deployments", Some(NAMESPACE), NAME)
            .is_some()
    );
    let values = helm.json(&kubeconfig, &["get", "values", NAME, "-n", NAMESPACE]);
    assert_eq!(values, json!({"region": "us-west-2", "replicaCount": 1}));

    // Applied values compare equal to the live ones: nothing to do.
    expect_code(run(&["plan", stack, "--detailed-exitcode"]), 0);

    expect_code(run(&["destroy", stack, "--auto-approve"]), 0);
    let out = helm.run(&kubeconfig, &["status", NAME, "-n", NAMESPACE]);
    assert!(!out.status.success(), "the release is gone");
    assert!(String::from_utf8_lossy(&out.stderr).contains("release: not found"));
    assert!(
        kube.object("apps/v1", "deployments", Some(NAMESPACE), NAME)
            .is_none()
    );
}

//! `kube.namespace` and `kube.manifest` against the fake Kubernetes API
//! server: each test starts its own fake and reaches it through a
//! kubeconfig file (the real `kubeconfig_context` connection path, no
//! process-wide environment), drives the kind, and reads the effects back
//! from the fake's store and request log.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use meshform::Attrs;
use meshform::plan::eval::normalize_attr;
use meshform::provider::kube::connection::Clients;
use meshform::provider::kube::manifest::{self, Manifest};
use meshform::provider::kube::namespace::{self, Namespace};
use meshform::provider::kube::wait::with_delete_timeout;
use meshform::provider::{InPlace, Live, OpContext, Progress, ReadRequest, ResourceKind};
use serde_json::{Value, json};

use fake_kube::FakeKube;

/// A fake API server and a kubeconfig file naming it (context `fake-kube`).
struct Cluster {
    fake: FakeKube,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        static N: AtomicUsize = AtomicUsize::new(0);
        let fake = FakeKube::start();
        let kubeconfig = std::env::temp_dir().join(format!(
            "meshform-it-kubeconfig-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
        Cluster { fake, kubeconfig }
    }

    /// The `cluster` attribute reaching this fake.
    fn attr(&self) -> Value {
        json!({"kubeconfig_context": "fake-kube", "kubeconfig": self.kubeconfig.to_str().unwrap()})
    }

    fn api(&self, group: &str, version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        match ns {
            Some(ns) => Api::namespaced_with(self.fake.client(), ns, &ar),
            None => Api::all_with(self.fake.client(), &ar),
        }
    }

    /// A merge patch by someone other than meshform.
    async fn merge(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        patch: Value,
    ) {
        self.api(group, version, kind, ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect("out-of-band merge patch");
    }

    /// A server-side apply by someone other than meshform.
    async fn apply_as_test(&self, group: &str, version: &str, kind: &str, ns: Option<&str>, obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        self.api(group, version, kind, ns)
            .patch(&name, &PatchParams::apply("test").force(), &Patch::Apply(obj))
            .await
            .expect("test apply");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// An operation context whose progress messages are collected.
fn cx() -> (OpContext, Arc<Mutex<Vec<String>>>) {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = messages.clone();
    let cx = OpContext {
        stack: "teststack".into(),
        address: "k8s".into(),
        progress: Progress::new(move |m| sink.lock().unwrap().push(m.to_string())),
        ..Default::default()
    };
    (cx, messages)
}

fn attrs(v: Value) -> Attrs {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A manifest's desired attributes as the planner hands them over: `yaml`
/// normalized, the default timeout filled in.
fn manifest_desired(cluster: &Cluster, yaml: &str, timeout: Option<i64>) -> Attrs {
    attrs(json!({
        "cluster": cluster.attr(),
        "yaml": normalize_attr(&manifest::DEF, "yaml", json!(yaml)),
        "wait_timeout_seconds": timeout.unwrap_or(600),
    }))
}

fn request(live: &Live) -> ReadRequest {
    ReadRequest {
        address: "k8s".into(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

async fn read_one(kind: &dyn ResourceKind, live: &Live) -> Option<Live> {
    let mut out = kind.read(&[request(live)]).await.expect("read");
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

fn labels(obj: &Value) -> Value {
    obj["metadata"]["labels"].clone()
}

// ---------------------------------------------------------------------------
// kube.namespace

#[tokio::test]
async fn namespace_labels_apply_read_update_and_delete() {
    let cluster = Cluster::start();
    let kind = Namespace(Arc::new(Clients::default()));
    let (cx, _) = cx();
    let desired = attrs(json!({
        "cluster": cluster.attr(),
        "name": "team",
        "labels": {"team": "a", "tier": "web", "keep": "1"},
        "annotations": {"owner": "platform"},
    }));
    let created = kind.create(&cx, &desired).await.expect("create");
    assert_eq!(created.id, "team");
    assert_eq!(created.attrs["labels"], desired["labels"]);
    assert_eq!(created.attrs["annotations"], desired["annotations"]);
    let stored = cluster.fake.object("v1", "namespaces", None, "team").unwrap();
    assert_eq!(created.attrs["uid"], stored["metadata"]["uid"]);
    assert_eq!(
        labels(&stored),
        json!({"team": "a", "tier": "web", "keep": "1", "kubernetes.io/metadata.name": "team"})
    );
    assert_eq!(stored["metadata"]["annotations"], json!({"owner": "platform"}));

    // Read right after: exactly what was applied (the server's label is not drift).
    let read = read_one(&kind, &created).await.expect("exists");
    assert_eq!(read, created);

    // In place: one label changed, one no longer wanted (removed by SSA).
    let mut desired2 = desired.clone();
    desired2.insert("labels".into(), json!({"team": "b", "keep": "1"}));
    let updated = kind
        .update(
            &cx,
            InPlace {
                prior: &created,
                desired: &desired2,
                changed: &["labels".to_string()],
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.attrs["labels"], json!({"team": "b", "keep": "1"}));
    let stored = cluster.fake.object("v1", "namespaces", None, "team").unwrap();
    assert_eq!(
        labels(&stored),
        json!({"team": "b", "keep": "1", "kubernetes.io/metadata.name": "team"})
    );

    // Out of band: someone adds a label (not drift) and changes a managed one (drift).
    cluster
        .merge(
            "",
            "v1",
            "Namespace",
            None,
            "team",
            json!({"metadata": {"labels": {"theirs": "x", "keep": "2"}}}),
        )
        .await;
    let read = read_one(&kind, &updated).await.expect("exists");
    assert_eq!(read.attrs["labels"], json!({"team": "b", "keep": "2"}));
    let planned = normalize_attr(&namespace::DEF, "labels", read.attrs["labels"].clone());
    assert_ne!(
        planned, desired2["labels"],
        "the changed managed label shows as drift"
    );
    // Re-applying fixes it and leaves their label alone.
    kind.update(
        &cx,
        InPlace {
            prior: &read,
            desired: &desired2,
            changed: &["labels".to_string()],
        },
    )
    .await
    .expect("update");
    let stored = cluster.fake.object("v1", "namespaces", None, "team").unwrap();
    assert_eq!(labels(&stored)["keep"], "1");
    assert_eq!(labels(&stored)["theirs"], "x");

    // Found again after a lost create.
    let found = kind.find_existing(&cx, &desired2).await.unwrap().expect("ours");
    assert_eq!(found.id, "team");

    // Delete waits for what is in the namespace to go.
    cluster
        .apply_as_test(
            "",
            "v1",
            "ConfigMap",
            Some("team"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "held", "namespace": "team", "finalizers": ["example.com/hold"]}}),
        )
        .await;
    let started = Instant::now();
    let (deleted, ()) = tokio::join!(kind.delete(&cx, &updated), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster
            .fake
            .remove_finalizers("v1", "configmaps", Some("team"), "held");
    });
    deleted.expect("delete");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(cluster.fake.object("v1", "namespaces", None, "team").is_none());
    assert!(read_one(&kind, &updated).await.is_none());
    // Deleting again: already gone.
    kind.delete(&cx, &updated).await.expect("delete again");
}

#[tokio::test]
async fn namespace_held_by_a_finalizer_fails_the_delete_naming_it() {
    let cluster = Cluster::start();
    let kind = Namespace(Arc::new(Clients::default()));
    let (cx, messages) = cx();
    let desired = attrs(json!({"cluster": cluster.attr(), "name": "stuck"}));
    let created = kind.create(&cx, &desired).await.expect("create");
    assert_eq!(created.attrs["labels"], json!({}));
    cluster
        .fake
        .add_finalizer("v1", "namespaces", None, "stuck", "example.com/hold");
    let started = Instant::now();
    let err = with_delete_timeout(Duration::from_secs(2), kind.delete(&cx, &created))
        .await
        .expect_err("held")
        .to_string();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(err.contains("Namespace stuck"), "{err}");
    assert!(err.contains("example.com/hold"), "{err}");
    assert!(err.contains("timed out after 2s"), "{err}");
    let stored = cluster.fake.object("v1", "namespaces", None, "stuck").unwrap();
    assert_eq!(stored["status"]["phase"], "Terminating");
    assert!(
        messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("waiting for Namespace stuck to be deleted")),
        "{:?}",
        messages.lock().unwrap()
    );
}

// ---------------------------------------------------------------------------
// kube.manifest

const MESH_YAML: &str = r#"
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata:
  name: demo
spec:
  namespaceSelector:
    matchLabels:
      mesh: demo
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: meshes.appmesh.k8s.aws
spec:
  group: appmesh.k8s.aws
  names: {kind: Mesh, listKind: MeshList, plural: meshes, singular: mesh}
  scope: Cluster
  versions:
    - name: v1beta2
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/meshes.appmesh.k8s.aws";
const MESH_PATH: &str = "/apis/appmesh.k8s.aws/v1beta2/meshes/demo";

#[tokio::test]
async fn manifest_applies_a_crd_and_its_custom_resource_once_established() {
    let cluster = Cluster::start();
    cluster.fake.set_crd_establish_delay(Duration::from_millis(500));
    let kind = Manifest(Arc::new(Clients::default()));
    let (cx, _) = cx();
    let desired = manifest_desired(&cluster, MESH_YAML, None);
    let created = kind.create(&cx, &desired).await.expect("create");

    let log = cluster.fake.requests();
    let crd_patch = log
        .iter()
        .find(|r| r.method == "PATCH" && r.path == CRD_PATH)
        .expect("CRD applied");
    let mesh_patch = log
        .iter()
        .find(|r| r.method == "PATCH" && r.path == MESH_PATH)
        .expect("Mesh applied");
    assert_eq!(crd_patch.field_manager.as_deref(), Some("meshform"));
    assert_eq!(mesh_patch.status, 201);
    assert!(
        mesh_patch.at.duration_since(crd_patch.at) >= Duration::from_millis(500),
        "the Mesh is applied only once its CRD is Established"
    );
    assert!(
        !log.iter()
            .any(|r| r.path.starts_with("/apis/appmesh.k8s.aws") && r.status == 404),
        "nothing was tried before the kind was served"
    );
    let mesh = cluster
        .fake
        .object("appmesh.k8s.aws/v1beta2", "meshes", None, "demo")
        .expect("Mesh stored");
    assert_eq!(mesh["spec"]["namespaceSelector"]["matchLabels"]["mesh"], "demo");
    // `objects` lists the objects in file order, cluster-scoped without a namespace.
    assert_eq!(
        created.attrs["objects"],
        json!([
            {"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "Mesh", "namespace": null, "name": "demo"},
            {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "namespace": null,
             "name": "meshes.appmesh.k8s.aws"},
        ])
    );
    assert_eq!(created.id, "context:fake-kube/appmesh.k8s.aws/v1beta2/Mesh/demo");
    // No drift right after (the CRD's status and defaults are not compared).
    let read = read_one(&kind, &created).await.expect("exists");
    assert_eq!(read.attrs["yaml"], desired["yaml"]);

    // Delete: the Mesh first, the CRD last.
    let before = cluster.fake.requests().len();
    kind.delete(&cx, &created).await.expect("delete");
    let deletes: Vec<String> = cluster.fake.requests()[before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(deletes, [MESH_PATH, CRD_PATH]);
    assert!(cluster.fake.objects("customresourcedefinitions").is_empty());
    assert!(read_one(&kind, &created).await.is_none());
    kind.delete(&cx, &created).await.expect("delete again");
}

fn web_yaml(image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          ports:
            - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {{app: web}}
  ports:
    - port: 80
      targetPort: 80
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
"#
    )
}

fn image_of(cluster: &Cluster) -> Value {
    cluster
        .fake
        .object("apps/v1", "deployments", Some("shop"), "web")
        .expect("deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone()
}

#[tokio::test]
async fn manifest_waits_for_deployments_and_updates_in_place() {
    let cluster = Cluster::start();
    let kind = Manifest(Arc::new(Clients::default()));
    let (cx, messages) = cx();
    let desired = manifest_desired(&cluster, &web_yaml("nginx:1.27"), None);

    // normalize: the documents as an array of objects.
    let docs = desired["yaml"].as_array().expect("normalized to an array");
    assert_eq!(docs.len(), 3);
    assert_eq!(
        docs[2],
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    );

    let started = Instant::now();
    let (created, ()) = tokio::join!(kind.create(&cx, &desired), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.fake.complete_deployments();
    });
    let created = created.expect("create");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "create returned before the rollout completed"
    );
    assert!(
        messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.starts_with("waiting for Deployment shop/web to roll out")),
        "{:?}",
        messages.lock().unwrap()
    );
    // The Namespace (last in the file) was applied first.
    let patches: Vec<String> = cluster
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        patches,
        [
            "/api/v1/namespaces/shop",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            "/api/v1/namespaces/shop/services/web",
        ]
    );
    assert_eq!(created.attrs["yaml"], desired["yaml"]);
    assert_eq!(created.attrs["wait_timeout_seconds"], 600);
    assert!(
        cluster
            .fake
            .object("v1", "services", Some("shop"), "web")
            .is_some()
    );

    // A plan right after the apply is empty: read equals the normalized desired value.
    let read = read_one(&kind, &created).await.expect("exists");
    assert_eq!(read.attrs["yaml"], desired["yaml"]);
    assert_eq!(
        normalize_attr(&manifest::DEF, "yaml", read.attrs["yaml"].clone()),
        desired["yaml"]
    );
    assert_eq!(read.attrs["objects"], created.attrs["objects"]);
    assert_eq!(read.id, created.id);

    // An image change is an in-place update, waited on as well.
    let desired2 = manifest_desired(&cluster, &web_yaml("nginx:1.28"), None);
    let changed = ["yaml".to_string()];
    let started = Instant::now();
    let (updated, ()) = tokio::join!(
        kind.update(
            &cx,
            InPlace {
                prior: &read,
                desired: &desired2,
                changed: &changed
            }
        ),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cluster.fake.complete_deployments();
        }
    );
    let updated = updated.expect("update");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(image_of(&cluster), "nginx:1.28");
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.attrs["yaml"], desired2["yaml"]);

    // Out-of-band image change: drift in the projected read, at that field only.
    cluster
        .merge(
            "apps",
            "v1",
            "Deployment",
            Some("shop"),
            "web",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:evil"}]}}}}),
        )
        .await;
    let read = read_one(&kind, &updated).await.expect("exists");
    let live_yaml = normalize_attr(&manifest::DEF, "yaml", read.attrs["yaml"].clone());
    assert_ne!(live_yaml, desired2["yaml"]);
    assert_eq!(
        live_yaml[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:evil"
    );
    let mut expected = desired2["yaml"].clone();
    expected[0]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:evil");
    // The merge patch replaced the container list, dropping `ports`.
    expected[0]["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    assert_eq!(live_yaml, expected);

    // Deleted in reverse: Service, Deployment, then the Namespace.
    cluster.fake.set_auto_complete_deployments(true);
    let before = cluster.fake.requests().len();
    kind.delete(&cx, &updated).await.expect("delete");
    let deletes: Vec<String> = cluster.fake.requests()[before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        deletes,
        [
            "/api/v1/namespaces/shop/services/web",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            "/api/v1/namespaces/shop",
        ]
    );
    assert!(cluster.fake.object("v1", "namespaces", None, "shop").is_none());
}

#[tokio::test]
async fn manifest_rollout_timeout_names_the_deployment() {
    let cluster = Cluster::start();
    let kind = Manifest(Arc::new(Clients::default()));
    let (cx, _) = cx();
    let desired = manifest_desired(&cluster, &web_yaml("nginx:1.27"), Some(1));
    let started = Instant::now();
    let err = kind
        .create(&cx, &desired)
        .await
        .expect_err("never rolled out")
        .to_string();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(err.contains("Deployment shop/web to roll out"), "{err}");
    assert!(err.contains("0/2 ready"), "{err}");
}

const CONFIGMAPS_YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: cfg}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: cfg}
data: {k: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: cfg}
data: {k: "2"}
"#;

#[tokio::test]
async fn manifest_update_deletes_objects_no_longer_listed() {
    let cluster = Cluster::start();
    let kind = Manifest(Arc::new(Clients::default()));
    let (cx, _) = cx();
    let desired = manifest_desired(&cluster, CONFIGMAPS_YAML, None);
    let created = kind.create(&cx, &desired).await.expect("create");
    assert!(
        cluster
            .fake
            .object("v1", "configmaps", Some("cfg"), "b")
            .is_some()
    );

    // find_existing: everything there and applied by meshform.
    let found = kind.find_existing(&cx, &desired).await.unwrap().expect("found");
    assert_eq!(found.attrs["objects"], created.attrs["objects"]);
    assert_eq!(found.attrs["yaml"], desired["yaml"]);
    let other = manifest_desired(
        &cluster,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: zzz, namespace: cfg}\n",
        None,
    );
    assert!(kind.find_existing(&cx, &other).await.unwrap().is_none());

    // A missing object reads as null in its position.
    cluster
        .api("", "v1", "ConfigMap", Some("cfg"))
        .delete("a", &Default::default())
        .await
        .unwrap();
    let read = read_one(&kind, &created).await.expect("others still exist");
    assert_eq!(read.attrs["yaml"][1], Value::Null);
    assert_eq!(read.attrs["yaml"][2], desired["yaml"][2]);

    let without_b = CONFIGMAPS_YAML.rsplit_once("---").unwrap().0;
    let desired2 = manifest_desired(&cluster, without_b, None);
    let updated = kind
        .update(
            &cx,
            InPlace {
                prior: &read,
                desired: &desired2,
                changed: &["yaml".to_string()],
            },
        )
        .await
        .expect("update");
    assert!(
        cluster
            .fake
            .object("v1", "configmaps", Some("cfg"), "b")
            .is_none()
    );
    assert!(
        cluster
            .fake
            .object("v1", "configmaps", Some("cfg"), "a")
            .is_some()
    );
    assert_eq!(updated.attrs["objects"].as_array().unwrap().len(), 2);
    assert!(cluster.fake.object("v1", "namespaces", None, "cfg").is_some());
}

#[tokio::test]
async fn manifest_delete_held_by_a_finalizer_names_the_object() {
    let cluster = Cluster::start();
    let kind = Manifest(Arc::new(Clients::default()));
    let (cx, _) = cx();
    let desired = manifest_desired(&cluster, CONFIGMAPS_YAML, Some(1));
    let created = kind.create(&cx, &desired).await.expect("create");
    cluster
        .fake
        .add_finalizer("v1", "configmaps", Some("cfg"), "a", "example.com/hold");
    let err = kind.delete(&cx, &created).await.expect_err("held").to_string();
    assert!(err.contains("ConfigMap cfg/a to be deleted"), "{err}");
    assert!(err.contains("example.com/hold"), "{err}");
    // b went first (reverse order); the namespace was not touched.
    assert!(
        cluster
            .fake
            .object("v1", "configmaps", Some("cfg"), "b")
            .is_none()
    );
    assert!(cluster.fake.object("v1", "namespaces", None, "cfg").is_some());
}

#[tokio::test]
async fn manifest_errors_name_the_document() {
    let cluster = Cluster::start();
    let kind = Manifest(Arc::new(Clients::default()));
    let (cx, _) = cx();
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\nkind: [unclosed\n";
    // normalize leaves unparseable text alone; create reports it.
    let desired = manifest_desired(&cluster, bad, None);
    assert_eq!(desired["yaml"], json!(bad));
    let err = kind
        .create(&cx, &desired)
        .await
        .expect_err("bad yaml")
        .to_string();
    assert!(err.contains("document 2"), "{err}");

    let nameless = manifest_desired(&cluster, "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", None);
    let err = kind
        .create(&cx, &nameless)
        .await
        .expect_err("no name")
        .to_string();
    assert!(err.contains("document 1 has no metadata.name"), "{err}");

    let unknown = manifest_desired(
        &cluster,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        None,
    );
    let err = kind
        .create(&cx, &unknown)
        .await
        .expect_err("unknown kind")
        .to_string();
    assert!(err.contains("does not serve kind Widget"), "{err}");

    let no_ns = manifest_desired(
        &cluster,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        None,
    );
    let err = kind
        .create(&cx, &no_ns)
        .await
        .expect_err("no namespace")
        .to_string();
    assert!(err.contains("ConfigMap is namespaced"), "{err}");
}

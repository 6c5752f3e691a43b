//! Tests of the fake Kubernetes API server itself (testsupport/fake-kube),
//! driven by kube-rs: the point of the fake is that the real client and
//! its runtime helpers (Discovery, server-side apply, await_condition)
//! work against it as against a cluster.

use fake_kube::FakeKube;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiResource, Discovery, Scope};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn ar(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn namespaces(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ar("", "v1", "Namespace"))
}

fn deployments(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ar("apps", "v1", "Deployment"))
}

fn apply_params() -> PatchParams {
    PatchParams::apply("meshform")
}

/// The `kube::Error::Api` status code of a result, or panics.
fn api_code<T: std::fmt::Debug>(r: kube::Result<T>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn apply_namespace(client: &Client, name: &str) -> DynamicObject {
    namespaces(client)
        .patch(
            name,
            &apply_params(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
        )
        .await
        .expect("apply namespace")
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    })
}

fn rv(obj: &DynamicObject) -> u64 {
    obj.resource_version().unwrap().parse().unwrap()
}

/// One plain HTTP/1.1 request, for what kube-rs will not send.
fn raw(fake: &FakeKube, method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let addr = fake.url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap())
}

fn mesh_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "meshes.appmesh.k8s.aws"},
        "spec": {
            "group": "appmesh.k8s.aws",
            "names": {"kind": "Mesh", "listKind": "MeshList", "plural": "meshes", "singular": "mesh"},
            "scope": "Cluster",
            "versions": [{
                "name": "v1beta2",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            }],
        },
    })
}

#[tokio::test]
async fn discovery_finds_the_builtin_kinds() {
    let fake = FakeKube::start();
    let client = fake.client();
    let discovery = Discovery::new(client.clone()).run().await.expect("discovery");
    let (deploy, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("Deployment discovered");
    assert_eq!(deploy.plural, "deployments");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation("patch") && caps.supports_operation("watch"));
    let (_, ns_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
        .expect("Namespace discovered");
    assert_eq!(ns_caps.scope, Scope::Cluster);
    for (g, v, k) in [
        ("", "v1", "ConfigMap"),
        ("", "v1", "Service"),
        ("", "v1", "Secret"),
        ("", "v1", "ServiceAccount"),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ] {
        assert!(
            discovery.resolve_gvk(&GroupVersionKind::gvk(g, v, k)).is_some(),
            "{k}"
        );
    }
    assert!(!discovery.has_group("appmesh.k8s.aws"));
    assert_eq!(discovery.get("apps").unwrap().preferred_version(), Some("v1"));

    let (crd, crd_caps) = discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    )
    .await
    .expect("pinned_kind");
    assert_eq!(crd.plural, "customresourcedefinitions");
    assert_eq!(crd_caps.scope, Scope::Cluster);

    let aggregated = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(
        aggregated
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
            .is_some()
    );
    assert!(
        aggregated
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
            .is_some()
    );

    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");
}

#[tokio::test]
async fn server_side_apply_creates_then_updates_a_deployment() {
    let fake = FakeKube::start();
    let client = fake.client();
    let ns = apply_namespace(&client, "shop").await;
    assert_eq!(
        ns.labels().get("kubernetes.io/metadata.name").map(String::as_str),
        Some("shop")
    );
    assert_eq!(ns.data["status"]["phase"], "Active");

    let api = deployments(&client, "shop");
    let created = api
        .patch(
            "web",
            &apply_params(),
            &Patch::Apply(deployment("web", "nginx:1.27")),
        )
        .await
        .expect("apply creates");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.uid().is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap()))
        .collect();
    assert_eq!(managers, vec![("meshform".to_string(), "Apply".to_string())]);

    // The same configuration again changes nothing.
    let again = api
        .patch(
            "web",
            &apply_params(),
            &Patch::Apply(deployment("web", "nginx:1.27")),
        )
        .await
        .unwrap();
    assert_eq!(again.metadata.generation, Some(1));
    let before = api.get("web").await.unwrap();
    assert_eq!(rv(&again), rv(&before), "a no-op apply is not a write");

    let changed = api
        .patch(
            "web",
            &apply_params(),
            &Patch::Apply(deployment("web", "nginx:1.28")),
        )
        .await
        .expect("apply changes the image");
    assert_eq!(changed.metadata.generation, Some(2));
    assert!(rv(&changed) > rv(&before));
    assert_eq!(
        changed.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );

    // Fields the manager stops applying are removed.
    let mut without_label = deployment("web", "nginx:1.28");
    without_label["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    let pruned = api
        .patch("web", &apply_params(), &Patch::Apply(without_label))
        .await
        .unwrap();
    assert!(pruned.labels().is_empty(), "{:?}", pruned.labels());

    let stored = fake
        .object("apps/v1", "deployments", Some("shop"), "web")
        .unwrap();
    assert_eq!(stored["metadata"]["generation"], 2);
}

#[tokio::test]
async fn apply_conflicts_with_another_manager_unless_forced() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    let api = deployments(&client, "shop");
    api.patch(
        "web",
        &apply_params(),
        &Patch::Apply(deployment("web", "nginx:1.27")),
    )
    .await
    .unwrap();
    let mut other = deployment("web", "nginx:1.27");
    other["spec"]["replicas"] = json!(5);
    let (code, reason) = api_code(
        api.patch(
            "web",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(other.clone()),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let forced = api
        .patch(
            "web",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(other),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data["spec"]["replicas"], 5);
}

#[tokio::test]
async fn dry_run_apply_does_not_store() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    let rv_before = fake.resource_version();
    let api = deployments(&client, "shop");
    let preview = api
        .patch(
            "web",
            &apply_params().dry_run(),
            &Patch::Apply(deployment("web", "nginx:1.27")),
        )
        .await
        .expect("dry-run apply");
    assert_eq!(preview.name_any(), "web");
    assert!(
        fake.object("apps/v1", "deployments", Some("shop"), "web")
            .is_none()
    );
    assert_eq!(fake.resource_version(), rv_before);
    assert_eq!(api_code(api.get("web").await).0, 404);
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.method, "GET");
    let apply = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.dry_run);
    assert!(apply.is_some(), "the dry-run apply is logged as such");
}

#[tokio::test]
async fn errors_are_real_status_objects() {
    let fake = FakeKube::start();
    let client = fake.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"k": "v"},
    }))
    .unwrap();
    // The namespace does not exist yet.
    let (code, reason) = api_code(cms.create(&PostParams::default(), &cm).await);
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    apply_namespace(&client, "shop").await;
    let created = cms.create(&PostParams::default(), &cm).await.expect("create");
    assert_eq!(created.data.unwrap()["k"], "v");
    let (code, reason) = api_code(cms.create(&PostParams::default(), &cm).await);
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    match cms.get("missing").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.reason, "NotFound");
            assert_eq!(s.message, "configmaps \"missing\" not found");
        }
        other => panic!("{other:?}"),
    }

    // Replace with a stale resourceVersion.
    let mut stale = cms.get("settings").await.unwrap();
    let mut fresh = stale.clone();
    fresh.data.as_mut().unwrap().insert("k".into(), "w".into());
    cms.replace("settings", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    stale.data.as_mut().unwrap().insert("k".into(), "x".into());
    let (code, reason) = api_code(cms.replace("settings", &PostParams::default(), &stale).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    // No name.
    let nameless: ConfigMap = serde_json::from_value(json!({"metadata": {}})).unwrap();
    let (code, reason) = api_code(cms.create(&PostParams::default(), &nameless).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    // Apply without a field manager: kube-rs refuses to send it, so ask
    // directly. The real server answers 422 (PatchOptions is invalid).
    let (code, status) = raw(
        &fake,
        "PATCH",
        "/api/v1/namespaces/shop/configmaps/settings",
        "application/apply-patch+yaml",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"}}"#,
    );
    assert_eq!(code, 422);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "Invalid");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager: Required value")
    );

    // An unknown kind's path.
    let (code, status) = raw(
        &fake,
        "GET",
        "/apis/appmesh.k8s.aws/v1beta2/meshes",
        "application/json",
        "",
    );
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn a_crd_kind_is_served_only_once_established() {
    let fake = FakeKube::start();
    fake.set_crd_establish_delay(Duration::from_millis(300));
    let client = fake.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let started = Instant::now();
    let crd = crds
        .patch(
            "meshes.appmesh.k8s.aws",
            &apply_params(),
            &Patch::Apply(mesh_crd()),
        )
        .await
        .expect("apply CRD");
    assert_eq!(crd.metadata.generation, Some(1));

    let mesh_gvk = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", "Mesh");
    let meshes: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&mesh_gvk));
    let mesh = json!({
        "apiVersion": "appmesh.k8s.aws/v1beta2",
        "kind": "Mesh",
        "metadata": {"name": "demo"},
        "spec": {"namespaceSelector": {"matchLabels": {"mesh": "demo"}}},
    });
    let (code, _) = api_code(
        meshes
            .patch("demo", &apply_params(), &Patch::Apply(mesh.clone()))
            .await,
    );
    assert_eq!(code, 404, "not served before Established");
    assert!(discovery::pinned_kind(&client, &mesh_gvk).await.is_err());
    let not_yet = Discovery::new(client.clone()).run().await.unwrap();
    assert!(not_yet.resolve_gvk(&mesh_gvk).is_none());
    let accepted = crds.get("meshes.appmesh.k8s.aws").await.unwrap();
    let conds = accepted.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "False")
    );

    tokio::time::timeout(
        WAIT,
        await_condition(
            crds.clone(),
            "meshes.appmesh.k8s.aws",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .expect("await_condition");
    assert!(started.elapsed() >= Duration::from_millis(300));

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (found, caps) = discovery.resolve_gvk(&mesh_gvk).expect("Mesh discovered");
    assert_eq!(found.plural, "meshes");
    assert_eq!(caps.scope, Scope::Cluster);
    let (pinned, _) = discovery::pinned_kind(&client, &mesh_gvk).await.unwrap();
    let meshes: Api<DynamicObject> = Api::all_with(client.clone(), &pinned);
    let applied = meshes
        .patch("demo", &apply_params(), &Patch::Apply(mesh))
        .await
        .expect("apply Mesh");
    assert_eq!(applied.metadata.generation, Some(1));
    assert_eq!(
        applied.data["spec"]["namespaceSelector"]["matchLabels"]["mesh"],
        "demo"
    );
    let listed = meshes.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
}

#[tokio::test]
async fn deployment_becomes_available_when_the_test_says_so() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    deployments(&client, "shop")
        .patch(
            "web",
            &apply_params(),
            &Patch::Apply(deployment("web", "nginx:1.27")),
        )
        .await
        .unwrap();
    let typed: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let unready = typed.get("web").await.unwrap();
    let status = unready.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.replicas, Some(2));
    assert_eq!(status.ready_replicas, None);

    let waiter = tokio::spawn(await_condition(
        typed.clone(),
        "web",
        conditions::is_deployment_completed(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "not available before complete_deployments()"
    );
    fake.complete_deployments();
    let done = tokio::time::timeout(WAIT, waiter)
        .await
        .expect("available in time")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.status.unwrap().ready_replicas, Some(2));

    // A new template rolls out again; auto-complete finishes it at once.
    deployments(&client, "shop")
        .patch(
            "web",
            &apply_params(),
            &Patch::Apply(deployment("web", "nginx:1.28")),
        )
        .await
        .unwrap();
    let rolling = typed.get("web").await.unwrap();
    assert_eq!(rolling.status.as_ref().unwrap().observed_generation, Some(2));
    assert!(!conditions::is_deployment_completed().matches_object(Some(&rolling)));
    fake.set_auto_complete_deployments(true);
    let rolled = typed.get("web").await.unwrap();
    assert!(conditions::is_deployment_completed().matches_object(Some(&rolled)));
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_removed() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    let cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar("", "v1", "ConfigMap"));
    let created = cms
        .patch(
            "held",
            &apply_params(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
                "data": {"a": "b"},
            })),
        )
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    let mut events = cms
        .watch(
            &WatchParams::default().fields("metadata.name=held"),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    let deleted = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let marked = deleted
        .left()
        .expect("the object comes back while finalizers hold it");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let still = cms.get("held").await.expect("still there");
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(still.finalizers(), ["example.com/hold"]);

    let api = cms.clone();
    let waiter =
        tokio::spawn(async move { await_condition(api, "held", conditions::is_deleted(&uid)).await });
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizers");
    assert_eq!(api_code(cms.get("held").await).0, 404);
    tokio::time::timeout(WAIT, waiter)
        .await
        .expect("deletion seen")
        .unwrap()
        .unwrap();

    let mut seen = vec![];
    while let Ok(Ok(Some(ev))) = tokio::time::timeout(Duration::from_secs(2), events.try_next()).await {
        let kind = match ev {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        };
        seen.push(kind);
        if kind == "DELETED" {
            break;
        }
    }
    assert_eq!(seen, ["MODIFIED", "DELETED"]);

    // The test-side controls do the same.
    cms.patch(
        "again",
        &apply_params(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "again"}})),
    )
    .await
    .unwrap();
    fake.add_finalizer("v1", "configmaps", Some("shop"), "again", "example.com/hold");
    cms.delete("again", &DeleteParams::default()).await.unwrap();
    assert!(fake.object("v1", "configmaps", Some("shop"), "again").is_some());
    fake.remove_finalizers("v1", "configmaps", Some("shop"), "again");
    assert!(fake.object("v1", "configmaps", Some("shop"), "again").is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_is_in_it() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    apply_namespace(&client, "other").await;
    deployments(&client, "shop")
        .patch(
            "web",
            &apply_params(),
            &Patch::Apply(deployment("web", "nginx:1.27")),
        )
        .await
        .unwrap();
    let cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar("", "v1", "ConfigMap"));
    for name in ["a", "b"] {
        cms.patch(
            name,
            &apply_params(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})),
        )
        .await
        .unwrap();
    }
    fake.add_finalizer("v1", "configmaps", Some("shop"), "b", "example.com/hold");
    let other_cms: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "other", &ar("", "v1", "ConfigMap"));
    other_cms
        .patch(
            "keep",
            &apply_params(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}})),
        )
        .await
        .unwrap();

    let ns = namespaces(&client)
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    let ns = ns.left().expect("namespace returned");
    assert_eq!(ns.data["status"]["phase"], "Terminating");
    // What has no finalizers is gone; the held ConfigMap keeps the
    // namespace Terminating, and nothing new may be created in it.
    assert_eq!(api_code(deployments(&client, "shop").get("web").await).0, 404);
    assert_eq!(api_code(cms.get("a").await).0, 404);
    assert!(cms.get("b").await.unwrap().metadata.deletion_timestamp.is_some());
    let (code, reason) = api_code(
        cms.patch(
            "c",
            &apply_params(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    let terminating = namespaces(&client).get("shop").await.unwrap();
    assert_eq!(terminating.data["status"]["phase"], "Terminating");

    let ns_uid = terminating.uid().unwrap();
    let api = namespaces(&client);
    let waiter =
        tokio::spawn(async move { await_condition(api, "shop", conditions::is_deleted(&ns_uid)).await });
    fake.remove_finalizers("v1", "configmaps", Some("shop"), "b");
    tokio::time::timeout(WAIT, waiter)
        .await
        .expect("namespace gone")
        .unwrap()
        .unwrap();
    assert_eq!(api_code(namespaces(&client).get("shop").await).0, 404);
    assert!(
        other_cms.get("keep").await.is_ok(),
        "other namespaces are untouched"
    );
}

#[tokio::test]
async fn lists_select_by_label_and_watches_start_from_the_current_state() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    let cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar("", "v1", "ConfigMap"));
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        cms.patch(
            name,
            &apply_params(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"tier": tier, "app": "shop"}},
            })),
        )
        .await
        .unwrap();
    }
    let web = cms
        .list(&ListParams::default().labels("tier=web,app=shop"))
        .await
        .unwrap();
    let names: Vec<_> = web.items.iter().map(|o| o.name_any()).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(
        web.metadata.resource_version.as_deref(),
        Some(fake.resource_version().to_string().as_str())
    );
    let paged = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(paged.items.len(), 2);
    let rest = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(paged.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(), ["c"]);

    let mut stream = cms
        .watch(&WatchParams::default().labels("tier=web").timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = vec![];
    for _ in 0..2 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => added.push(o.name_any()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, ["a", "c"]);
    // Relabelling an object out of the selection is a DELETED for this watch.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
    )
    .await
    .unwrap();
    match tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Deleted(o) => assert_eq!(o.name_any(), "a"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn load_balancers_get_a_hostname_when_the_test_says_so() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "shop");
    let svc = svcs
        .patch(
            "gateway",
            &apply_params(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "gateway"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "gw"}, "ports": [{"port": 80}]},
            })),
        )
        .await
        .unwrap();
    assert!(svc.spec.unwrap().cluster_ip.is_some());
    assert!(
        !conditions::is_service_loadbalancer_provisioned()
            .matches_object(Some(&svcs.get("gateway").await.unwrap()))
    );
    let waiter = tokio::spawn(await_condition(
        svcs.clone(),
        "gateway",
        conditions::is_service_loadbalancer_provisioned(),
    ));
    fake.complete_load_balancers();
    let done = tokio::time::timeout(WAIT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap();
    let ingress = done.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert!(ingress[0].hostname.is_some());
}

#[tokio::test]
async fn the_request_log_records_order_and_apply_details() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    let api = deployments(&client, "shop");
    api.patch(
        "web",
        &apply_params(),
        &Patch::Apply(deployment("web", "nginx:1.27")),
    )
    .await
    .unwrap();
    api.get("web").await.unwrap();
    // An immediate delete answers, as the real server does for most kinds,
    // with a Status of Success naming what went.
    let status = api
        .delete("web", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("a Status");
    assert_eq!(status.details.as_ref().unwrap().name, "web");
    assert_eq!(status.details.as_ref().unwrap().kind, "deployments");
    let log = fake.requests();
    let summary: Vec<(String, String)> = log.iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    assert_eq!(
        summary,
        [
            ("PATCH", "/api/v1/namespaces/shop"),
            ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web"),
            ("GET", "/apis/apps/v1/namespaces/shop/deployments/web"),
            ("DELETE", "/apis/apps/v1/namespaces/shop/deployments/web"),
        ]
        .map(|(m, p)| (m.to_string(), p.to_string()))
    );
    assert_eq!(
        log[1].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(log[1].field_manager.as_deref(), Some("meshform"));
    assert!(!log[1].dry_run);
    assert_eq!(log[1].status, 201);
    assert_eq!(log[3].status, 200);
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(fake.objects("deployments").is_empty());
}

#[tokio::test]
async fn the_runtime_watcher_works_with_both_initial_list_strategies() {
    use kube::runtime::watcher::{self, Event};
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;
    let cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar("", "v1", "ConfigMap"));
    cms.patch(
        "first",
        &apply_params(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}})),
    )
    .await
    .unwrap();
    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut stream = watcher::watcher(cms.clone(), config).boxed();
        let mut initial = vec![];
        loop {
            match tokio::time::timeout(WAIT, stream.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                Event::Init => {}
                Event::InitApply(o) => initial.push(o.name_any()),
                Event::InitDone => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(initial, ["first"]);
    }
    let streaming = fake
        .requests()
        .into_iter()
        .any(|r| r.query.contains("sendInitialEvents=true"));
    assert!(streaming, "the streaming-list watch was made");
}

#[tokio::test]
async fn secrets_status_subresources_and_collections_behave_as_on_a_cluster() {
    let fake = FakeKube::start();
    let client = fake.client();
    apply_namespace(&client, "shop").await;

    // stringData is written into data (base64) and never read back.
    let secrets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar("", "v1", "Secret"));
    let secret = secrets
        .patch(
            "creds",
            &apply_params(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "creds"},
                "stringData": {"password": "hunter2"},
            })),
        )
        .await
        .unwrap();
    assert_eq!(secret.data["data"]["password"], "aHVudGVyMg==");
    assert!(secret.data.get("stringData").is_none());
    assert_eq!(secret.data["type"], "Opaque");

    // Status sent to the main resource is ignored; /status takes it.
    let api = deployments(&client, "shop");
    let mut with_status = deployment("web", "nginx:1.27");
    with_status["status"] = json!({"readyReplicas": 7});
    let created = api
        .patch("web", &apply_params(), &Patch::Apply(with_status))
        .await
        .unwrap();
    assert!(created.data["status"].get("readyReplicas").is_none());
    let patched = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["readyReplicas"], 1);
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // JSON patch (RFC 6902); a failed `test` fails the whole patch (422).
    let (code, patched) = raw(
        &fake,
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/web",
        "application/json-patch+json",
        r#"[{"op": "replace", "path": "/spec/replicas", "value": 2}]"#,
    );
    assert_eq!((code, &patched["spec"]["replicas"]), (200, &json!(2)));
    let (code, status) = raw(
        &fake,
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/web",
        "application/json-patch+json",
        r#"[{"op": "test", "path": "/spec/replicas", "value": 5}]"#,
    );
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));

    // deletecollection with a selector.
    let cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &ar("", "v1", "ConfigMap"));
    for (name, tier) in [("a", "web"), ("b", "db")] {
        cms.patch(
            name,
            &apply_params(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"tier": tier}},
            })),
        )
        .await
        .unwrap();
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=web"),
    )
    .await
    .unwrap();
    let left: Vec<_> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    assert_eq!(left, ["b"]);
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_custom_resources() {
    let fake = FakeKube::start();
    let client = fake.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "meshes.appmesh.k8s.aws",
        &apply_params(),
        &Patch::Apply(mesh_crd()),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            crds.clone(),
            "meshes.appmesh.k8s.aws",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let mesh_gvk = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", "Mesh");
    let meshes: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&mesh_gvk));
    meshes
        .patch(
            "demo",
            &apply_params(),
            &Patch::Apply(json!({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "Mesh", "metadata": {"name": "demo"}})),
        )
        .await
        .unwrap();
    // A CRD carries the apiserver's cleanup finalizer.
    let crd = crds.get("meshes.appmesh.k8s.aws").await.unwrap();
    assert_eq!(crd.finalizers(), ["customresourcecleanup.apiextensions.k8s.io"]);
    crds.delete("meshes.appmesh.k8s.aws", &DeleteParams::default())
        .await
        .unwrap();
    assert!(fake.objects("meshes").is_empty());
    assert_eq!(api_code(crds.get("meshes.appmesh.k8s.aws").await).0, 404);
    assert_eq!(api_code(meshes.get("demo").await).0, 404);
    assert!(discovery::pinned_kind(&client, &mesh_gvk).await.is_err());
}

#[tokio::test]
async fn a_kubeconfig_reaches_the_fake() {
    let fake = FakeKube::start();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&fake.kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let client = Client::try_from(config).unwrap();
    apply_namespace(&client, "default").await;
    let names: Vec<_> = namespaces(&client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(names, ["default"]);
}

#[test]
fn starts_and_stops_outside_a_runtime() {
    let fake = FakeKube::start();
    let (code, versions) = raw(&fake, "GET", "/api", "application/json", "");
    assert_eq!((code, versions["kind"].as_str()), (200, Some("APIVersions")));
    let url = fake.url();
    drop(fake);
    let addr = url.trim_start_matches("http://");
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped on drop");
}

//! The defaults and validation hooked into every write path: create,
//! replace, merge patch and server-side apply, each with and without
//! `dryRun=All`, driven through `api::handle` as the HTTP server does.

use super::api::{ApiRequest, ApiResponse, handle};
use super::store::State;
use serde_json::{Value, json};

fn request(method: &str, path: &str, query: &str, content_type: &str, body: &Value) -> ApiRequest {
    ApiRequest {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        content_type: Some(content_type.into()),
        accept: None,
        user_agent: Some("test/1".into()),
        body: serde_json::to_vec(body).unwrap(),
    }
}

fn send(state: &mut State, req: ApiRequest) -> (u16, Value) {
    match handle(state, &req, "127.0.0.1:1") {
        ApiResponse::Json(code, v) | ApiResponse::Typed(code, _, v) => (code, v),
        ApiResponse::Watch(_) => panic!("not a watch"),
    }
}

const DEPLOYS: &str = "/apis/apps/v1/namespaces/shop/deployments";

fn deployment(selector: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": selector, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
}

fn with_namespace() -> State {
    let mut state = State::new();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    let (code, _) = send(
        &mut state,
        request("POST", "/api/v1/namespaces", "", "application/json", &ns),
    );
    assert_eq!(code, 201);
    state
}

fn stored(state: &State) -> Option<Value> {
    state
        .list("apps", "deployments", Some("shop"))
        .into_iter()
        .map(|(_, v)| v)
        .next()
}

#[test]
fn every_write_path_defaults_and_validates_dry_run_or_not() {
    let mut state = with_namespace();
    let good = deployment(json!({"matchLabels": {"app": "web"}}));
    let bad = deployment(Value::Null);
    let apply = "application/apply-patch+yaml";
    let web = format!("{DEPLOYS}/web");

    // Refused on every path, dry run or not, with the real 422.
    for query in ["", "dryRun=All"] {
        let (code, status) = send(
            &mut state,
            request("POST", DEPLOYS, query, "application/json", &bad),
        );
        assert_eq!(code, 422, "{status}");
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["message"],
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: \
             Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`]"
        );
        assert_eq!(status["details"]["causes"][0]["field"], "spec.selector");
        assert_eq!(status["details"]["causes"][0]["reason"], "FieldValueRequired");
        let q = format!("fieldManager=m&{query}");
        let (code, _) = send(&mut state, request("PATCH", &web, &q, apply, &bad));
        assert_eq!(code, 422);
    }
    assert!(stored(&state).is_none());

    // A dry-run apply answers with the defaults and stores nothing.
    let (code, obj) = send(
        &mut state,
        request("PATCH", &web, "fieldManager=m&dryRun=All", apply, &good),
    );
    assert_eq!(code, 201);
    assert_eq!(obj["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    assert!(stored(&state).is_none());

    // Created for real: the same defaults are stored.
    let (code, _) = send(
        &mut state,
        request("POST", DEPLOYS, "", "application/json", &good),
    );
    assert_eq!(code, 201);
    let live = stored(&state).expect("stored");
    assert_eq!(live["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(live["spec"]["template"]["spec"]["restartPolicy"], "Always");

    // Updates: a changed selector is refused by replace, merge patch and
    // apply, dry run or not; a valid merge patch is defaulted.
    let moved = deployment(json!({"matchLabels": {"app": "web", "x": "y"}}));
    for query in ["", "dryRun=All"] {
        let (code, status) = send(
            &mut state,
            request("PUT", &web, query, "application/json", &moved),
        );
        assert_eq!(code, 422, "{status}");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("spec.selector: Invalid value"),
            "{status}"
        );
        let patch = json!({"spec": {"selector": {"matchLabels": {"x": "y"}}}});
        let (code, _) = send(
            &mut state,
            request("PATCH", &web, query, "application/merge-patch+json", &patch),
        );
        assert_eq!(code, 422);
        let q = format!("fieldManager=m&force=true&{query}");
        let (code, _) = send(&mut state, request("PATCH", &web, &q, apply, &moved));
        assert_eq!(code, 422);
    }
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    let (code, obj) = send(
        &mut state,
        request("PATCH", &web, "", "application/merge-patch+json", &patch),
    );
    assert_eq!(code, 200, "{obj}");
    let c = &stored(&state).unwrap()["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["image"].clone(), c["imagePullPolicy"].clone()),
        (json!("nginx:2"), json!("IfNotPresent"))
    );
    assert_eq!(c["terminationMessagePolicy"], "File");
}

#[test]
fn an_empty_cluster_ip_is_allocated_and_a_changed_one_refused() {
    let mut state = with_namespace();
    let svcs = "/api/v1/namespaces/shop/services";
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "", "ports": [{"port": 80}]}});
    let (code, obj) = send(&mut state, request("POST", svcs, "", "application/json", &svc));
    assert_eq!(code, 201, "{obj}");
    let ip = obj["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.100."), "{obj}");
    assert_eq!(obj["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(obj["spec"]["ipFamilyPolicy"], "SingleStack");
    let patch = json!({"spec": {"clusterIP": "10.100.9.9"}});
    let (code, status) = send(
        &mut state,
        request(
            "PATCH",
            &format!("{svcs}/web"),
            "dryRun=All",
            "application/merge-patch+json",
            &patch,
        ),
    );
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: [\"10.100.9.9\"]: may not change once set"
    );
}

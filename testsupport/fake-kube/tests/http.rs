//! The fake's answers at the HTTP level, where client-go reads more than
//! the body: discovery's `Content-Type`, 406 for encodings the fake does not
//! produce, the OpenAPI index, and watch bookmarks.

use fake_kube::FakeKube;
use serde_json::Value;
use std::io::{Read, Write};

/// One HTTP/1.1 exchange (`Connection: close`): status, headers
/// (lowercased names), body.
fn http(
    kube: &FakeKube,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let addr = kube.url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    (status, headers, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const CLIENT_GO_DISCOVERY: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

#[test]
fn aggregated_discovery_says_so_in_its_content_type() {
    let kube = FakeKube::start();
    let (code, headers, body) = http(&kube, "GET", "/apis", &[("Accept", CLIENT_GO_DISCOVERY)], "");
    assert_eq!(code, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    let apps = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deployments = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deployments["categories"], serde_json::json!(["all"]));
    assert_eq!(deployments["subresources"][0]["subresource"], "status");

    // Without the aggregated media type: the legacy APIGroupList.
    let (code, headers, body) = http(&kube, "GET", "/apis", &[("Accept", "application/json")], "");
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["kind"],
        "APIGroupList"
    );
}

#[test]
fn protobuf_only_requests_are_not_acceptable() {
    let kube = FakeKube::start();
    for path in ["/api", "/api/v1/namespaces", "/openapi/v2"] {
        let accept = if path == "/openapi/v2" {
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        } else {
            "application/vnd.kubernetes.protobuf"
        };
        let (code, _, body) = http(&kube, "GET", path, &[("Accept", accept)], "");
        assert_eq!(code, 406, "{path}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["reason"],
            "NotAcceptable"
        );
    }
    let (code, _, _) = http(&kube, "GET", "/openapi/v2", &[("Accept", "application/json")], "");
    assert_eq!(code, 200);
}

#[test]
fn the_openapi_index_points_at_hashed_group_version_documents() {
    let kube = FakeKube::start();
    let (code, _, body) = http(&kube, "GET", "/openapi/v3", &[], "");
    assert_eq!(code, 200);
    let index: Value = serde_json::from_str(&body).unwrap();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    let (code, _, body) = http(&kube, "GET", url, &[("Accept", "application/json")], "");
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"fieldValidation"), "{params:?}");
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    let containers = &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
}

#[test]
fn watches_send_bookmarks_and_mark_the_end_of_initial_events() {
    let kube = FakeKube::start();
    let (code, _, _) = http(
        &kube,
        "POST",
        "/api/v1/namespaces",
        &[("Content-Type", "application/json")],
        r#"{"metadata":{"name":"shop"}}"#,
    );
    assert_eq!(code, 201);
    let rv = kube.resource_version().to_string();
    let (code, _, body) = http(
        &kube,
        "GET",
        "/api/v1/namespaces?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
        &[],
        "",
    );
    assert_eq!(code, 200);
    let events: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "BOOKMARK", "BOOKMARK"], "{body}");
    assert_eq!(events[0]["object"]["metadata"]["name"], "shop");
    let end = &events[1]["object"];
    assert_eq!(
        end["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(end["metadata"]["resourceVersion"], rv.as_str());
    // The bookmark before the timeout carries only kind, apiVersion and
    // the resourceVersion.
    assert_eq!(
        events[2]["object"],
        serde_json::json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"resourceVersion": rv}})
    );

    // sendInitialEvents needs resourceVersionMatch=NotOlderThan.
    let (code, _, body) = http(
        &kube,
        "GET",
        "/api/v1/namespaces?watch=true&sendInitialEvents=true",
        &[],
        "",
    );
    assert_eq!(code, 422, "{body}");
}

#[test]
fn kubectl_get_gets_tables() {
    let kube = FakeKube::start();
    http(
        &kube,
        "POST",
        "/api/v1/namespaces",
        &[("Content-Type", "application/json")],
        r#"{"metadata":{"name":"shop"}}"#,
    );
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (code, _, body) = http(&kube, "GET", "/api/v1/namespaces", &[("Accept", accept)], "");
    assert_eq!(code, 200);
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["kind"], "Table");
    let columns: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Status", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "shop");
    assert_eq!(t["rows"][0]["cells"][1], "Active");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "shop");
}

#[test]
fn a_patch_that_leaves_no_object_is_refused_not_a_crash() {
    let kube = FakeKube::start();
    http(
        &kube,
        "POST",
        "/api/v1/namespaces",
        &[("Content-Type", "application/json")],
        r#"{"metadata":{"name":"shop"}}"#,
    );
    let ns = "/api/v1/namespaces/shop";
    for (content_type, body) in [
        (
            "application/json-patch+json",
            r#"[{"op": "replace", "path": "", "value": 5}]"#,
        ),
        (
            "application/strategic-merge-patch+json",
            r#"{"$patch": "delete"}"#,
        ),
        ("application/merge-patch+json", r#"{"metadata": "x"}"#),
    ] {
        let (code, _, body) = http(&kube, "PATCH", ns, &[("Content-Type", content_type)], body);
        assert_eq!(code, 422, "{content_type}: {body}");
    }
    let (code, _, _) = http(&kube, "GET", ns, &[], "");
    assert_eq!(
        code, 200,
        "the server still answers and the namespace is unchanged"
    );
}

//! The fake API server reads the Protobuf bodies real client-go typed
//! clients send: kubectl v1.33.9's `create` subcommands and Helm's release
//! storage (typed Secrets client) POST, PUT and DELETE built-in objects as
//! `application/vnd.kubernetes.protobuf` and never fall back to JSON. Each
//! test drives the real binary and reads the result back from the fake;
//! where kubectl can print the object it sends (`--dry-run=client -o
//! json`), the fake's decoded body must be exactly that JSON.

use crate::support::cli::Workdir;
use crate::support::kube_tools::{self, Tool};
use fake_kube::{FakeKube, LoggedRequest};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::PathBuf;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A fake with a kubeconfig file and a scratch directory for the tools.
struct Cluster {
    kube: FakeKube,
    dir: Workdir,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let kube = FakeKube::start();
        let dir = Workdir::new(name);
        let kubeconfig = dir.write("kubeconfig", &kube.kubeconfig());
        Cluster {
            kube,
            dir,
            kubeconfig,
        }
    }

    /// Runs a tool, asserting it succeeds; its stdout.
    fn run(&self, tool: Tool, args: &[&str]) -> String {
        let out = kube_tools::run(tool, &self.kubeconfig, &self.dir.path, args);
        assert!(
            out.status.success(),
            "{tool:?} {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.run(Tool::Kubectl, args)
    }

    /// `kubectl <args>`, asserting that it POSTed one Protobuf body to
    /// `path`, that the fake answered 201, and that the body decoded to
    /// exactly the JSON kubectl prints for the object it sends.
    fn create(&self, args: &[&str], path: &str) {
        let mut dry = args.to_vec();
        dry.extend(["--dry-run=client", "-o", "json"]);
        let sent: Value = serde_json::from_str(&self.kubectl(&dry)).unwrap();
        let before = self.kube.requests().len();
        self.kubectl(args);
        let posts: Vec<LoggedRequest> = self.kube.requests()[before..]
            .iter()
            .filter(|r| r.method == "POST")
            .cloned()
            .collect();
        assert_eq!(posts.len(), 1, "{args:?}: {posts:?}");
        let post = &posts[0];
        assert_eq!(post.path, path);
        assert_eq!(post.content_type.as_deref(), Some(PROTOBUF), "{args:?}");
        assert_eq!(post.status, 201, "{args:?}");
        assert_eq!(post.body.as_ref(), Some(&sent), "{args:?}: decoded body");
    }

    fn object(&self, gv: &str, plural: &str, ns: Option<&str>, name: &str) -> Value {
        self.kube
            .object(gv, plural, ns, name)
            .unwrap_or_else(|| panic!("{gv} {plural} {ns:?} {name} missing"))
    }
}

#[test]
fn kubectl_create_namespace_configmap_secret_and_serviceaccount() {
    let c = Cluster::start("proto-core");
    c.create(&["create", "namespace", "yelb"], "/api/v1/namespaces");
    let ns = c.object("v1", "namespaces", None, "yelb");
    assert_eq!(ns["status"]["phase"], "Active");

    c.create(
        &[
            "-n",
            "yelb",
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=b",
            "--from-literal=n=0",
        ],
        "/api/v1/namespaces/yelb/configmaps",
    );
    let cm = c.object("v1", "configmaps", Some("yelb"), "cfg");
    assert_eq!(cm["data"], json!({"a": "b", "n": "0"}));
    // The fieldManager query parameter names the writer, as with JSON.
    assert_eq!(cm["metadata"]["managedFields"][0]["manager"], "kubectl-create");

    c.create(
        &[
            "-n",
            "yelb",
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=s3cr!t",
        ],
        "/api/v1/namespaces/yelb/secrets",
    );
    let secret = c.object("v1", "secrets", Some("yelb"), "db");
    // base64("s3cr!t"), as the JSON API carries Secret data.
    assert_eq!(secret["data"], json!({"password": "czNjciF0"}));
    assert_eq!(secret["type"], "Opaque");

    c.create(
        &["-n", "yelb", "create", "serviceaccount", "bot"],
        "/api/v1/namespaces/yelb/serviceaccounts",
    );
    let sa = c.object("v1", "serviceaccounts", Some("yelb"), "bot");
    assert_eq!(sa["metadata"]["namespace"], "yelb");
}

#[test]
fn kubectl_create_deployment_and_service() {
    let c = Cluster::start("proto-apps");
    c.kubectl(&["create", "namespace", "shop"]);
    c.create(
        &[
            "-n",
            "shop",
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ],
        "/apis/apps/v1/namespaces/shop/deployments",
    );
    let d = c.object("apps/v1", "deployments", Some("shop"), "web");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    assert_eq!(d["spec"]["template"]["metadata"]["labels"], json!({"app": "web"}));
    // What kubectl sent, plus what the server defaults (protocol, pull policy...).
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1), "{containers}");
    assert_eq!(containers[0]["name"], "nginx");
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(containers[0]["ports"][0]["containerPort"], 80);
    assert_eq!(containers[0]["resources"], json!({}));
    assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));

    // A zero replica count is a present pointer: kept, not dropped.
    c.create(
        &[
            "-n",
            "shop",
            "create",
            "deployment",
            "idle",
            "--image=nginx:1.27",
            "--replicas=0",
        ],
        "/apis/apps/v1/namespaces/shop/deployments",
    );
    assert_eq!(
        c.object("apps/v1", "deployments", Some("shop"), "idle")["spec"]["replicas"],
        0
    );

    c.create(
        &[
            "-n",
            "shop",
            "create",
            "service",
            "clusterip",
            "web",
            "--tcp=80:8080",
        ],
        "/api/v1/namespaces/shop/services",
    );
    let s = c.object("v1", "services", Some("shop"), "web");
    // targetPort is an IntOrString holding a number.
    assert_eq!(
        s["spec"]["ports"],
        json!([{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["selector"], json!({"app": "web"}));
}

#[test]
fn kubectl_create_rbac_objects() {
    let c = Cluster::start("proto-rbac");
    c.kubectl(&["create", "namespace", "yelb"]);
    c.create(
        &[
            "-n",
            "yelb",
            "create",
            "rolebinding",
            "read",
            "--role=reader",
            "--serviceaccount=yelb:bot",
            "--user=alice",
        ],
        "/apis/rbac.authorization.k8s.io/v1/namespaces/yelb/rolebindings",
    );
    let rb = c.object(
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        Some("yelb"),
        "read",
    );
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    );
    assert_eq!(
        rb["subjects"],
        json!([
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
            {"kind": "ServiceAccount", "name": "bot", "namespace": "yelb"},
        ])
    );
    // Non-resource URLs need no discovery (unlike `--resource`).
    c.create(
        &[
            "create",
            "clusterrole",
            "health",
            "--verb=get,head",
            "--non-resource-url=/healthz",
        ],
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    );
    assert_eq!(
        c.object("rbac.authorization.k8s.io/v1", "clusterroles", None, "health")["rules"],
        json!([{"verbs": ["get", "head"], "nonResourceURLs": ["/healthz"]}])
    );
}

/// Helm's release storage writes its Secrets through a typed client:
/// create, update, list and delete (with a DeleteOptions body) all in
/// Protobuf. A chart without templates needs no discovery.
#[test]
fn helm_release_storage_round_trips_through_protobuf() {
    let c = Cluster::start("proto-helm");
    c.kubectl(&["create", "namespace", "apps"]);
    let chart = c.dir.path.join("empty");
    std::fs::create_dir_all(&chart).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: empty\nversion: 0.1.0\n",
    )
    .unwrap();
    let chart = chart.to_str().unwrap();
    for helm in Tool::SUPPORTED_HELMS {
        let before = c.kube.requests().len();
        c.run(helm, &["install", "rel", chart, "-n", "apps"]);
        c.run(helm, &["upgrade", "rel", chart, "-n", "apps"]);
        let v1 = c.object("v1", "secrets", Some("apps"), "sh.helm.release.v1.rel.v1");
        let v2 = c.object("v1", "secrets", Some("apps"), "sh.helm.release.v1.rel.v2");
        assert_eq!(v1["type"], "helm.sh/release.v1", "{helm:?}");
        assert_eq!(v1["metadata"]["labels"]["status"], "superseded", "{helm:?}");
        assert_eq!(v2["metadata"]["labels"]["status"], "deployed", "{helm:?}");
        assert!(v2["data"]["release"].as_str().is_some_and(|r| !r.is_empty()));
        let listed = c.run(helm, &["list", "-n", "apps", "-o", "json"]);
        let listed: Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed[0]["name"], "rel", "{helm:?}");
        assert_eq!(listed[0]["revision"], "2", "{helm:?}");

        c.run(helm, &["uninstall", "rel", "-n", "apps"]);
        assert!(
            c.kube.objects("secrets").is_empty(),
            "{helm:?}: release secrets left"
        );

        let requests = &c.kube.requests()[before..];
        let protobuf = |method: &str| {
            requests
                .iter()
                .filter(|r| r.method == method && r.path.starts_with("/api/v1/namespaces/apps/secrets"))
                .filter(|r| r.content_type.as_deref() == Some(PROTOBUF))
                .map(|r| r.status)
                .collect::<Vec<_>>()
        };
        assert_eq!(protobuf("POST"), vec![201, 201], "{helm:?}");
        assert!(!protobuf("PUT").is_empty(), "{helm:?}: no Protobuf update");
        assert!(protobuf("PUT").iter().all(|s| *s == 200), "{helm:?}");
        assert_eq!(protobuf("DELETE"), vec![200, 200], "{helm:?}");
        // Each DELETE carried a DeleteOptions body, decoded.
        for r in requests.iter().filter(|r| r.method == "DELETE") {
            let body = r
                .body
                .as_ref()
                .unwrap_or_else(|| panic!("{helm:?}: DELETE without a body"));
            assert_eq!(body["kind"], "DeleteOptions", "{helm:?}: {body}");
        }
    }
}

/// One request with raw headers; the status code, the response's
/// Content-Type and the first bytes of its body.
fn raw_get(kube: &FakeKube, path: &str, accept: &str) -> (u16, String, String) {
    let addr = kube.url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // To the end, or for a watch (which does not end) to its first event.
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        let first_event = text
            .split_once("\r\n\r\n")
            .is_some_and(|(_, b)| b.contains("}\n"));
        if n == 0 || first_event {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (code, content_type, body.to_string())
}

#[test]
fn protobuf_first_accept_gets_json_and_protobuf_only_gets_406() {
    let c = Cluster::start("proto-accept");
    c.kubectl(&["create", "namespace", "yelb"]);
    let client_go = "application/vnd.kubernetes.protobuf,application/json";
    for path in [
        "/api/v1/namespaces/yelb",
        "/api/v1/namespaces",
        "/api/v1/namespaces?watch=true",
    ] {
        let (code, content_type, body) = raw_get(&c.kube, path, client_go);
        assert_eq!((code, content_type.as_str()), (200, "application/json"), "{path}");
        assert!(body.contains("yelb"), "{path}: {body}");
    }
    let (code, _, body) = raw_get(&c.kube, "/api/v1/namespaces/yelb", PROTOBUF);
    assert_eq!(code, 406);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "NotAcceptable", "{body}");
    assert_eq!(
        status["message"],
        "only the following media types are accepted: application/json"
    );
}

//! `scripts/fake-kube.sh`: the standalone fake API server a person starts
//! by hand, reached by the real kubectl through the kubeconfig it prints.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::cli::Workdir;
use crate::support::kube_tools::{self, Tool};
use crate::support::moto::project_root;

fn script(dir: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(project_root().join("scripts/fake-kube.sh"))
        .args(args)
        .env("FAKE_KUBE_DIR", dir)
        .output()
        .expect("run scripts/fake-kube.sh")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the server even when an assertion fails.
struct Stop<'a>(&'a Path);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let _ = script(self.0, &["stop"]);
    }
}

#[test]
fn the_script_starts_a_server_kubectl_reaches_and_stops_it() {
    let work = Workdir::new("fake-kube-script");
    let state = work.path.join("state");
    let port = free_port().to_string();
    let _stop = Stop(&state);
    ok(&script(&state, &["start", &port]), "fake-kube.sh start");

    let env = ok(&script(&state, &["env"]), "fake-kube.sh env");
    let kubeconfig = state.join("kubeconfig");
    assert!(
        env.contains(&format!("KUBECONFIG={}", kubeconfig.display())),
        "{env}"
    );
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        config.contains(&format!("server: http://127.0.0.1:{port}")),
        "{config}"
    );

    let manifest = work.write(
        "ns.json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"by-hand","labels":{"team":"workshop"}}}"#,
    );
    let scratch = work.path.join("kubectl");
    ok(
        &kube_tools::run(
            Tool::Kubectl,
            &kubeconfig,
            &scratch,
            &["create", "-f", manifest.to_str().unwrap()],
        ),
        "kubectl create -f",
    );
    let got = ok(
        &kube_tools::run(
            Tool::Kubectl,
            &kubeconfig,
            &scratch,
            &["get", "namespace", "by-hand", "-o", "json"],
        ),
        "kubectl get namespace",
    );
    let ns: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(ns["metadata"]["labels"]["team"], "workshop", "{got}");
    assert!(
        ns["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "{got}"
    );

    // The namespaces a cluster starts with exist: a typed (Protobuf) create
    // into `default` works without creating it first.
    ok(
        &kube_tools::run(
            Tool::Kubectl,
            &kubeconfig,
            &scratch,
            &["create", "configmap", "greeting", "--from-literal=hello=world"],
        ),
        "kubectl create configmap",
    );
    let got = ok(
        &kube_tools::run(
            Tool::Kubectl,
            &kubeconfig,
            &scratch,
            &["get", "configmap", "greeting", "-n", "default", "-o", "json"],
        ),
        "kubectl get configmap",
    );
    let cm: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(cm["data"]["hello"], "world", "{got}");

    let pid: i32 = std::fs::read_to_string(state.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ok(&script(&state, &["stop"]), "fake-kube.sh stop");
    // `kill -0` sends nothing: it only says whether the process exists.
    let alive = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(!alive, "the server (pid {pid}) still runs after stop");
    assert!(!state.join("pid").exists());
}

//! `meshform shift`: the Prometheus gate against a real Prometheus server
//! (Debian's package) scraping an endpoint the test serves and turns bad;
//! and the shift of the walkthrough's canary weight end to end (moto, the
//! fake API server, the real helm), through a failed gate and back.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshform::shift::{Comparison, Gate, GateOutcome, PrometheusGate};

use crate::support::cli::{expect_code, meshform};
use crate::support::prometheus::{GAUGE, Metrics, Prometheus};
use crate::support::walkthrough::Walkthrough;

const MESH: &str = "appmesh.k8s.aws/v1beta2";

/// Checks `gate` until `done` holds for its outcome (Prometheus needs a
/// scrape or two to see a change), at most 20s; the last outcome.
async fn check_until(gate: &dyn Gate, done: impl Fn(&GateOutcome) -> bool) -> GateOutcome {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = gate.check().await;
        if done(&outcome) || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gate_passes_on_good_fails_on_bad_and_on_no_data() {
    let metrics = Metrics::serve(1.0);
    let prometheus = Prometheus::start(&metrics);
    let gate = PrometheusGate {
        url: prometheus.url.clone(),
        query: GAUGE.to_string(),
        op: Comparison::Ge,
        threshold: 0.99,
    };
    let good = check_until(&gate, |o| o.passed).await;
    assert!(good.passed, "{good:?}\n{}", prometheus.log());
    assert_eq!(good.observed.as_deref(), Some("1"));

    metrics.set(0.5);
    let bad = check_until(&gate, |o| !o.passed).await;
    assert!(!bad.passed, "{bad:?}");
    assert_eq!(bad.observed.as_deref(), Some("0.5"), "{bad:?}");
    assert!(bad.detail.contains("= 0.5 (wanted >= 0.99)"), "{}", bad.detail);

    // A selector that matches nothing: an empty vector, never a pass.
    let empty = PrometheusGate {
        query: format!("{GAUGE}{{job=\"nobody\"}}"),
        ..gate.clone()
    }
    .check()
    .await;
    assert!(!empty.passed && empty.observed.is_none(), "{empty:?}");
    assert!(empty.detail.contains("no data"), "{}", empty.detail);

    // A query Prometheus rejects fails with its error.
    let broken = PrometheusGate {
        query: "sum(".to_string(),
        ..gate.clone()
    }
    .check()
    .await;
    assert!(!broken.passed && broken.detail.contains("bad_data"), "{broken:?}");

    // A server that is gone fails too.
    drop(prometheus);
    let gone = gate.check().await;
    assert!(!gone.passed && gone.detail.contains("cannot query"), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_gate_waits_for_a_complete_rollout() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    use meshform::provider::kube::connection::Connection;
    use meshform::shift::DeploymentGate;

    let fake = fake_kube::FakeKube::start();
    let dir = crate::support::cli::Workdir::new("deployment-gate");
    let kubeconfig = dir.write("kubeconfig", &fake.kubeconfig());
    let gate = DeploymentGate {
        connection: Connection::Context {
            context: "fake-kube".to_string(),
            kubeconfig: Some(kubeconfig),
        },
        namespace: "app".to_string(),
        name: "web".to_string(),
    };
    let missing = gate.check().await;
    assert!(
        !missing.passed && missing.detail.contains("does not exist"),
        "{missing:?}"
    );

    let client = fake.client();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "app"}})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    let dep: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "app"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client, "app")
        .create(&PostParams::default(), &dep)
        .await
        .expect("deployment created");
    // The fake's controller has started the rollout but not completed it.
    let rolling = gate.check().await;
    assert!(!rolling.passed, "{rolling:?}");
    fake.complete_deployments();
    let done = gate.check().await;
    assert!(done.passed, "{done:?}");
    assert_eq!(done.observed.as_deref(), Some("2 updated, 2 available of 2"));
}

fn weights(w: &Walkthrough) -> Vec<(String, i64)> {
    let router = w
        .kube
        .object(MESH, "virtualrouters", Some("yelb"), "yelb-appserver")
        .expect("router");
    router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .expect("weighted targets")
        .iter()
        .map(|t| {
            (
                t["virtualNodeRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                t["weight"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn split(v1: i64, v2: i64) -> Vec<(String, i64)> {
    vec![
        ("yelb-appserver".to_string(), v1),
        ("yelb-appserver-v2".to_string(), v2),
    ]
}

/// `meshform shift` reaching moto, the fake API server and the real helm,
/// under a timeout of its own (three applies and pauses take longer than
/// the walkthrough's one-command limit).
fn shift_cmd(w: &Walkthrough, args: &[&str]) -> Command {
    let mut inner = meshform(&w.dir.path, Some(&w.moto), args);
    w.point_at_fakes(&mut inner);
    let mut cmd = Command::new("timeout");
    cmd.arg("--signal=KILL")
        .arg("300")
        .arg(inner.get_program())
        .args(inner.get_args());
    cmd.current_dir(&w.dir.path);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, calling `on_line` with each stderr line as it comes; the
/// exit code, stdout and stderr.
fn run_watching(mut cmd: Command, on_line: impl Fn(&str)) -> (Option<i32>, String, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn meshform");
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let mut err = String::new();
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let Ok(line) = line else { break };
        on_line(&line);
        err.push_str(&line);
        err.push('\n');
    }
    let status = child.wait().expect("wait");
    (status.code(), reader.join().unwrap_or_default(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shift_steps_through_then_returns_to_the_last_good_step_when_a_gate_fails() {
    let metrics = Metrics::serve(1.0);
    let prometheus = Prometheus::start(&metrics);
    let w = Walkthrough::start("shift");
    let stack = w.stack();
    let stack = stack.to_str().expect("utf-8 path");

    // The environment with v2 running and no traffic on it.
    expect_code(
        w.meshform(&["apply", stack, "--auto-approve", "--var", "appserver_v2=true"]),
        0,
    );
    assert_eq!(weights(&w), split(100, 0));

    let prom_gate = format!("prometheus:{};{GAUGE};>=;0.99", prometheus.url);
    let shift_args = |start: Option<&'static str>| {
        let mut a = vec![
            "shift".to_string(),
            stack.to_string(),
            "--var".into(),
            "v2_weight".into(),
            "--var".into(),
            "appserver_v2=true".into(),
            "--steps".into(),
            "10,50,100".into(),
            "--pause".into(),
            "2s".into(),
            "--gate".into(),
            "deployment:yelb/yelb-appserver-v2@cluster".into(),
            "--gate".into(),
            prom_gate.clone(),
        ];
        if let Some(s) = start {
            a.extend(["--var".to_string(), s.to_string()]);
        }
        a
    };

    // 1. Every gate passes: 10 -> 50 -> 100.
    let args = shift_args(None);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run_watching(shift_cmd(&w, &argv), |_| {});
    assert_eq!(code, Some(0), "--- stdout\n{out}\n--- stderr\n{err}");
    for line in [
        "shift v2_weight: step 1/3: applying v2_weight=10",
        "shift v2_weight: step 2/3: applying v2_weight=50",
        "shift v2_weight: step 3/3: applying v2_weight=100",
        "gate deployment yelb/yelb-appserver-v2: passed",
        &format!("gate prometheus `{GAUGE}` >= 0.99: passed (observed 1)"),
    ] {
        assert!(err.contains(line), "missing `{line}` in\n{err}");
    }
    assert!(
        out.contains("Shift of `v2_weight` complete: 10 -> 50 -> 100"),
        "{out}"
    );
    assert_eq!(weights(&w), split(0, 100));

    // 2. From 100 (the value in effect, given as the start), the metric
    //    turns bad as step 50 is applied: back to 10, exit 1 naming the gate
    //    and the value.
    let args = shift_args(Some("v2_weight=100"));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run_watching(shift_cmd(&w, &argv), |line| {
        if line.contains("step 2/3: applying v2_weight=50") {
            metrics.set(0.5);
        }
    });
    assert_eq!(code, Some(1), "--- stdout\n{out}\n--- stderr\n{err}");
    assert!(
        err.contains(&format!("gate prometheus `{GAUGE}` >= 0.99 failed, observed 0.5")),
        "{err}"
    );
    assert!(err.contains("returned to the last good v2_weight=10"), "{err}");
    assert!(
        err.contains("shift v2_weight: returning to the last good value: applying v2_weight=10"),
        "{err}"
    );
    assert!(!err.contains("step 3/3"), "no step after the failed one:\n{err}");
    assert_eq!(weights(&w), split(90, 10));

    // State and the cluster agree on 10.
    expect_code(
        w.meshform(&[
            "plan",
            stack,
            "--detailed-exitcode",
            "--var",
            "appserver_v2=true",
            "--var",
            "v2_weight=10",
        ]),
        0,
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.dir.state_file("appmesh-getting-started")).expect("state file"),
    )
    .expect("state JSON");
    let router = state["resources"]["yelb_mesh"]["attributes"]["yaml"]
        .as_array()
        .expect("recorded documents")
        .iter()
        .find(|d| d["kind"] == "VirtualRouter")
        .expect("recorded router");
    let recorded: Vec<i64> = router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .expect("recorded targets")
        .iter()
        .map(|t| t["weight"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(recorded, [90, 10], "state records the weights of step 10");

    // 3. Steps and gates declared in the stack ([shift.v2_weight]), the
    //    variable found from it; --pause overrides the stack's (an hour:
    //    the command's timeout would kill the run if it were used).
    metrics.set(1.0);
    let declared = format!(
        r#"
[shift.v2_weight]
steps = [50]
pause = "1h"

[[shift.v2_weight.gate]]
type = "deployment"
namespace = "yelb"
name = "yelb-appserver-v2"
cluster = "cluster"

[[shift.v2_weight.gate]]
type = "prometheus"
url = "{}"
query = "{GAUGE}"
op = ">="
threshold = 0.99
"#,
        prometheus.url
    );
    let text = std::fs::read_to_string(w.stack()).expect("stack");
    std::fs::write(w.stack(), text + &declared).expect("stack written");
    let argv = [
        "shift",
        stack,
        "--var",
        "appserver_v2=true",
        "--var",
        "v2_weight=10",
        "--pause",
        "1s",
    ];
    let (code, out, err) = run_watching(shift_cmd(&w, &argv), |_| {});
    assert_eq!(code, Some(0), "--- stdout\n{out}\n--- stderr\n{err}");
    assert!(
        err.contains("shift v2_weight: 10 -> 50 (pause 1s, 2 gates)"),
        "{err}"
    );
    assert!(
        err.contains("gate deployment yelb/yelb-appserver-v2: passed"),
        "{err}"
    );
    assert_eq!(weights(&w), split(50, 50));
}

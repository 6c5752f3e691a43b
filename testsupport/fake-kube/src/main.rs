//! `fake-kube`: runs the FAKE Kubernetes API server of this crate as a
//! process, so a person can point kubectl, helm or meshform at it by hand
//! (`scripts/fake-kube.sh start` wraps it). It is not Kubernetes: read the
//! crate's docs for what it simplifies.
//!
//! ```text
//! fake-kube [--port N] [--kubeconfig FILE] [--manual-rollouts]
//! ```
//!
//! Writes a kubeconfig for the server to FILE (default: stdout) and serves
//! until SIGINT or SIGTERM. Unlike the tests' default, rollouts and load
//! balancers complete by themselves unless `--manual-rollouts` is given, so
//! `kubectl rollout status` and `helm --wait` finish when used by hand, and
//! the namespaces a cluster starts with (`default`, `kube-system`, ...) exist.

use fake_kube::FakeKube;
use std::process::ExitCode;

struct Args {
    port: u16,
    kubeconfig: Option<String>,
    manual_rollouts: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        kubeconfig: None,
        manual_rollouts: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => {
                let v = it.next().ok_or("--port needs a value")?;
                args.port = v.parse().map_err(|_| format!("--port: not a port number: {v}"))?;
            }
            "--kubeconfig" => args.kubeconfig = Some(it.next().ok_or("--kubeconfig needs a file")?),
            "--manual-rollouts" => args.manual_rollouts = true,
            "-h" | "--help" => {
                return Err("usage: fake-kube [--port N] [--kubeconfig FILE] [--manual-rollouts]".into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-kube: {e}");
            return ExitCode::from(2);
        }
    };
    let kube = match FakeKube::start_on(args.port) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("fake-kube: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    kube.create_initial_namespaces();
    if !args.manual_rollouts {
        kube.set_auto_complete_deployments(true);
        kube.set_auto_complete_load_balancers(true);
    }
    let config = kube.kubeconfig();
    match &args.kubeconfig {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &config) {
                eprintln!("fake-kube: cannot write {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
        None => print!("{config}"),
    }
    eprintln!(
        "fake-kube: FAKE Kubernetes API server at {} (not Kubernetes)",
        kube.url()
    );
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fake-kube: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    drop(kube);
    ExitCode::SUCCESS
}

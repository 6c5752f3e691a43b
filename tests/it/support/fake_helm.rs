//! A FAKE `helm` program for tests: `fake_helm.py` (read its header for
//! what it does and where it simplifies), written out as an executable
//! named `helm` in a private directory, with its log, state file and chart
//! directory (tests/data/charts) baked in.
//!
//! Library tests hand [`FakeHelm::program`] to
//! `HelmRelease::with_program`; a meshform child process gets
//! [`FakeHelm::bin_dir`] first on its PATH (or `MESHFORM_HELM`). Every
//! call is logged ([`FakeHelm::calls`]); releases are kept in a JSON state
//! file ([`FakeHelm::release`]); the Kubernetes side effects go to the API
//! server named in the `--kubeconfig` file helm is given (a
//! [`fake_kube::FakeKube`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::moto::project_root;

const SCRIPT: &str = include_str!("fake_helm.py");

/// One call of the fake helm.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its arguments (without the program).
    pub argv: Vec<String>,
    /// The content of its `--values` file, read during the call.
    pub values: Option<Value>,
    /// The permission bits of its `--values` file.
    pub values_mode: Option<u32>,
    /// The permission bits of its `--kubeconfig` file.
    pub kubeconfig_mode: Option<u32>,
}

impl Call {
    /// `upgrade`, `get`, `uninstall`, ...
    pub fn command(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    /// Whether the flag is among the arguments.
    pub fn has(&self, flag: &str) -> bool {
        self.argv.iter().any(|a| a == flag)
    }

    /// The argument after `flag`.
    pub fn flag(&self, flag: &str) -> Option<&str> {
        let i = self.argv.iter().position(|a| a == flag)?;
        self.argv.get(i + 1).map(String::as_str)
    }
}

/// An installed fake helm; its directory is removed on drop.
pub struct FakeHelm {
    dir: PathBuf,
    /// The executable (`<dir>/bin/helm`).
    pub program: PathBuf,
    log: PathBuf,
    state: PathBuf,
}

/// The python3 interpreter's absolute path, so that the script runs
/// whatever PATH its caller has.
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by the fake helm");
        assert!(out.status.success(), "python3 failed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

impl FakeHelm {
    /// Writes the fake helm into a new temporary directory.
    pub fn install() -> FakeHelm {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "meshform-fake-helm-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let log = dir.join("calls.jsonl");
        let state = dir.join("releases.json");
        let literal = |p: &Path| serde_json::to_string(p.to_str().expect("utf-8 path")).unwrap();
        let script = format!("#!{}\n{SCRIPT}", python())
            .replace("__LOG__", &literal(&log))
            .replace("__STATE__", &literal(&state))
            .replace("__CHARTS__", &literal(&charts_dir()));
        let program = dir.join("bin").join("helm");
        std::fs::write(&program, script).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeHelm {
            dir,
            program,
            log,
            state,
        }
    }

    /// The directory holding `helm`, to put first on a child's PATH.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                let mode = |k: &str| v[k].as_u64().map(|m| m as u32);
                Call {
                    argv: v["argv"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                    values: Some(v["values"].clone()).filter(|v| !v.is_null()),
                    values_mode: mode("values_mode"),
                    kubeconfig_mode: mode("kubeconfig_mode"),
                }
            })
            .collect()
    }

    /// The calls whose subcommand is `command`.
    pub fn calls_of(&self, command: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.command() == command)
            .collect()
    }

    /// The stored release `namespace/name`, if any.
    pub fn release(&self, namespace: &str, name: &str) -> Option<Value> {
        let text = std::fs::read_to_string(&self.state).ok()?;
        let state: Value = serde_json::from_str(&text).unwrap();
        state.get(format!("{namespace}/{name}")).cloned()
    }

    /// Runs the fake helm directly (as a user would, out of band).
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.program).args(args).output().unwrap()
    }
}

impl Drop for FakeHelm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The chart fixtures (tests/data/charts).
pub fn charts_dir() -> PathBuf {
    project_root().join("tests/data/charts")
}

//! The real kubectl and helm binaries the tests drive against the fake API
//! server, installed by `scripts/kube-tools.sh` into `.tools/kube/` (once
//! per test process, if missing), and a way to run them with a kubeconfig.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::moto::project_root;

/// A real client binary, by the name `scripts/kube-tools.sh path` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// kubectl v1.33.9.
    Kubectl,
    /// Helm v4.1.4.
    Helm4,
    /// Helm v3.17.2.
    Helm3,
    /// Helm v3.8.1: older than meshform supports.
    HelmOld,
}

impl Tool {
    fn script_name(self) -> &'static str {
        match self {
            Tool::Kubectl => "kubectl",
            Tool::Helm4 => "helm-4",
            Tool::Helm3 => "helm-3",
            Tool::HelmOld => "helm-old",
        }
    }

    /// The helm versions meshform supports, newest first.
    pub const SUPPORTED_HELMS: [Tool; 2] = [Tool::Helm4, Tool::Helm3];
}

fn install_once() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let status = Command::new("bash")
            .arg(project_root().join("scripts/kube-tools.sh"))
            .arg("install")
            .status()
            .expect("run scripts/kube-tools.sh install");
        assert!(status.success(), "scripts/kube-tools.sh install failed");
    });
}

/// The path of a tool, installing the tools first if needed.
pub fn path(tool: Tool) -> PathBuf {
    install_once();
    let out = Command::new("bash")
        .arg(project_root().join("scripts/kube-tools.sh"))
        .args(["path", tool.script_name()])
        .output()
        .expect("run scripts/kube-tools.sh path");
    assert!(out.status.success(), "scripts/kube-tools.sh path {tool:?} failed");
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(p.exists(), "{} is missing after install", p.display());
    p
}

/// Runs `tool args...` with `KUBECONFIG` set to `kubeconfig` and a private
/// HOME-like cache directory under `scratch` (helm and kubectl write caches
/// and helm its repository config there), returning the output.
pub fn run(tool: Tool, kubeconfig: &Path, scratch: &Path, args: &[&str]) -> Output {
    let home = scratch.join("home");
    std::fs::create_dir_all(&home).expect("scratch home");
    Command::new(path(tool))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("HELM_CACHE_HOME", home.join(".cache/helm"))
        .env("HELM_CONFIG_HOME", home.join(".config/helm"))
        .env("HELM_DATA_HOME", home.join(".local/share/helm"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("run a kube tool")
}

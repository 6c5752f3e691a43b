//! Running the full walkthrough stack: moto for AWS, the fake Kubernetes
//! API server for the cluster, the fake helm, and a private copy of
//! stacks/ and manifests/ that a test may edit.

use std::path::PathBuf;
use std::process::Command;

use super::cli::{Workdir, meshform};
use super::fake_helm::FakeHelm;
use super::moto::{Moto, project_root};
use fake_kube::FakeKube;

/// Longest a single meshform command of these tests may take.
const TIMEOUT_SECS: u64 = 60;

/// Everything a run of the full stack needs.
pub struct Walkthrough {
    pub moto: Moto,
    pub kube: FakeKube,
    pub helm: FakeHelm,
    pub dir: Workdir,
}

impl Walkthrough {
    pub fn start(name: &str) -> Walkthrough {
        let moto = Moto::start();
        let kube = FakeKube::start();
        kube.set_auto_complete_deployments(true);
        let helm = FakeHelm::install();
        let dir = Workdir::new(name);
        for sub in ["stacks", "manifests"] {
            std::fs::create_dir_all(dir.path.join(sub)).unwrap();
            for entry in std::fs::read_dir(project_root().join(sub)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.path.join(sub).join(entry.file_name())).unwrap();
            }
        }
        Walkthrough {
            moto,
            kube,
            helm,
            dir,
        }
    }

    /// The copied full stack.
    pub fn stack(&self) -> PathBuf {
        self.dir.path.join("stacks/appmesh-getting-started.toml")
    }

    /// A copied manifest, for editing.
    pub fn manifest(&self, name: &str) -> PathBuf {
        self.dir.path.join("manifests").join(name)
    }

    /// `meshform <args>` reaching moto, the fake API server and the fake
    /// helm. It runs under `timeout`, so a hang fails the test instead of
    /// stalling the suite.
    pub fn meshform(&self, args: &[&str]) -> Command {
        let mut inner = meshform(&self.dir.path, Some(&self.moto), args);
        self.point_at_fakes(&mut inner);
        let mut cmd = Command::new("timeout");
        cmd.arg("--signal=KILL")
            .arg(TIMEOUT_SECS.to_string())
            .arg(inner.get_program())
            .args(inner.get_args());
        if let Some(dir) = inner.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    pub fn point_at_fakes(&self, cmd: &mut Command) {
        let path = format!(
            "{}:{}",
            self.helm.bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("MESHFORM_KUBE_SERVER", self.kube.url())
            .env("MESHFORM_HELM", &self.helm.program)
            .env("PATH", path);
    }
}

/// The objects the walkthrough stack put in the (fake) cluster are gone:
/// its Deployments, Services and App Mesh resources, and its namespaces.
pub fn assert_cluster_emptied(w: &Walkthrough) {
    for plural in [
        "deployments",
        "services",
        "meshes",
        "virtualnodes",
        "virtualrouters",
        "virtualservices",
    ] {
        let left: Vec<String> = w
            .kube
            .objects(plural)
            .iter()
            .filter(|o| o["metadata"]["namespace"] != "default" || plural != "services")
            .map(|o| format!("{}/{}", o["metadata"]["namespace"], o["metadata"]["name"]))
            .collect();
        assert!(left.is_empty(), "{plural} left in the cluster: {left:?}");
    }
    let namespaces: Vec<String> = w
        .kube
        .objects("namespaces")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n == "yelb" || n == "appmesh-system")
        .collect();
    assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
}

//! Running the full walkthrough stack: moto for AWS, the fake Kubernetes
//! API server for the cluster, the real helm (Helm 4, with private
//! directories: support/real_helm.rs) installing the App Mesh controller
//! chart fixture from a chart repository on 127.0.0.1
//! (support/chart_repo.rs), and a private copy of stacks/ and manifests/
//! that a test may edit. The copied stack's chart repository variable
//! defaults to that local repository instead of aws.github.io, so that no
//! test needs the network.

use std::path::PathBuf;
use std::process::Command;

use super::chart_repo::ChartRepo;
use super::cli::{Workdir, meshform};
use super::kube_tools::Tool;
use super::moto::{Moto, project_root};
use super::real_helm::RealHelm;
use fake_kube::FakeKube;

/// Longest a single meshform command of these tests may take.
const TIMEOUT_SECS: u64 = 60;

/// Everything a run of the full stack needs.
pub struct Walkthrough {
    pub moto: Moto,
    pub kube: FakeKube,
    pub helm: RealHelm,
    pub repo: ChartRepo,
    pub dir: Workdir,
    /// The stack file this run is about, under the copied stacks/.
    stack_file: String,
}

/// The chart repository the walkthrough stack names.
const UPSTREAM_REPO: &str = "https://aws.github.io/eks-charts";

impl Walkthrough {
    pub fn start(name: &str) -> Walkthrough {
        Walkthrough::start_stack(
            name,
            "appmesh-getting-started.toml",
            &["appmesh-controller"],
            UPSTREAM_REPO,
        )
    }

    /// A run of `stacks/<stack_file>`, serving the chart fixtures `charts`
    /// in place of the repository `upstream`, which the stack must name
    /// exactly once (as its repository variable's default).
    pub fn start_stack(name: &str, stack_file: &str, charts: &[&str], upstream: &str) -> Walkthrough {
        let moto = Moto::start();
        let kube = FakeKube::start();
        kube.set_auto_complete_deployments(true);
        let helm = RealHelm::install(Tool::Helm4);
        let repo = ChartRepo::serve(charts);
        let dir = Workdir::new(name);
        for sub in ["stacks", "manifests"] {
            std::fs::create_dir_all(dir.path.join(sub)).unwrap();
            for entry in std::fs::read_dir(project_root().join(sub)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.path.join(sub).join(entry.file_name())).unwrap();
            }
        }
        let stack = dir.path.join("stacks").join(stack_file);
        let text = std::fs::read_to_string(&stack).unwrap();
        // The repository variable's default is the one place the stack
        // names it.
        let quoted = format!("\"{upstream}\"");
        assert_eq!(
            text.matches(&quoted).count(),
            1,
            "the stack names {upstream} once"
        );
        let upstream = quoted;
        let local = format!("\"{}\"", repo.url);
        std::fs::write(&stack, text.replace(&upstream, &local)).unwrap();
        Walkthrough {
            moto,
            kube,
            helm,
            repo,
            dir,
            stack_file: stack_file.to_string(),
        }
    }

    /// A kubeconfig file for the fake API server (for running helm
    /// directly).
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path.join("fake-kube.kubeconfig");
        if !path.exists() {
            std::fs::write(&path, self.kube.kubeconfig()).unwrap();
        }
        path
    }

    /// The copied stack this run is about.
    pub fn stack(&self) -> PathBuf {
        self.dir.path.join("stacks").join(&self.stack_file)
    }

    /// A copied manifest, for editing.
    pub fn manifest(&self, name: &str) -> PathBuf {
        self.dir.path.join("manifests").join(name)
    }

    /// `meshform <args>` reaching moto, the fake API server and the real
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

//! `meshform kubeconfig`: writes or merges the stack's EKS cluster into a
//! kubeconfig from state alone (a hand-written state file; no AWS), read
//! back here with a YAML parser.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::cli::{Workdir, expect_code, meshform, stderr, stdout};

const STACK: &str = r#"[stack]
name = "access"
region = "us-west-2"
"#;

const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURBTkJna3Foa2lHOXcwQkFRc0ZBREFWTVJNd0VRWURWUVFERXdwcmRXSmwKY201bGRHVnpNQjRYRFRJd01Ea3hNakE1TURRek1Gb1hEVE13TURreE1EQTVNRFF6TUZvd0ZURVRNQkVHQTFVRQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==";

fn arn(name: &str) -> String {
    format!("arn:aws:eks:us-west-2:123456789012:cluster/{name}")
}

fn endpoint(name: &str) -> String {
    format!("https://{}.gr7.us-west-2.eks.amazonaws.com", name.to_uppercase())
}

/// A state file of stack `access` holding an `aws.eks.cluster` per name
/// (addresses `eks_<name>`) and a VPC.
fn state_json(clusters: &[&str]) -> String {
    let mut resources = serde_json::Map::new();
    resources.insert(
        "vpc".to_string(),
        json!({"type": "aws.ec2.vpc", "id": "vpc-1", "attributes": {"cidr_block": "10.0.0.0/16"}}),
    );
    for name in clusters {
        resources.insert(
            format!("eks_{name}"),
            json!({
                "type": "aws.eks.cluster",
                "id": name,
                "attributes": {
                    "name": name,
                    "endpoint": endpoint(name),
                    "certificate_authority_data": CA,
                    "arn": arn(name),
                    "version": "1.30",
                },
                "dependencies": ["vpc"],
            }),
        );
    }
    serde_json::to_string_pretty(&json!({
        "format_version": 1,
        "lineage": "5b0f2bd4-8a0a-4f5e-9d51-0c3c8b1f5e10",
        "serial": 7,
        "stack": "access",
        "resources": resources,
    }))
    .expect("serializes")
}

/// A scratch directory with the stack file and a state of `clusters`.
struct Fixture {
    dir: Workdir,
    stack: PathBuf,
    state: PathBuf,
}

impl Fixture {
    fn new(name: &str, clusters: &[&str]) -> Fixture {
        let dir = Workdir::new(name);
        let stack = dir.write("access.toml", STACK);
        let state = dir.write("state.json", &state_json(clusters));
        Fixture { dir, stack, state }
    }

    /// `meshform kubeconfig` with `extra` arguments, HOME in the scratch
    /// directory and no KUBECONFIG, so nothing outside it is touched.
    fn cmd(&self, extra: &[&str]) -> Command {
        let stack = self.stack.to_string_lossy().into_owned();
        let state = self.state.to_string_lossy().into_owned();
        let mut args = vec!["kubeconfig", stack.as_str(), "--state", state.as_str()];
        args.extend_from_slice(extra);
        let mut cmd = meshform(&self.dir.path, None, &args);
        cmd.env("HOME", &self.dir.path).env_remove("KUBECONFIG");
        cmd
    }

    fn write_to(&self, file: &Path, extra: &[&str]) {
        let file = file.to_string_lossy().into_owned();
        let mut args = vec!["--file", file.as_str()];
        args.extend_from_slice(extra);
        expect_code(self.cmd(&args), 0);
    }
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The entry named `name` of the list `key`; exactly one.
fn entry<'a>(doc: &'a Value, key: &str, name: &str) -> &'a Value {
    let items: Vec<&Value> = doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list: {doc}"))
        .iter()
        .filter(|e| e["name"] == name)
        .collect();
    assert_eq!(items.len(), 1, "{key} `{name}` in {doc}");
    items[0]
}

fn meshform_exe() -> String {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_meshform"))
        .expect("binary exists")
        .to_string_lossy()
        .into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

/// The entries meshform writes for cluster `demo`.
fn assert_demo_entries(doc: &Value) {
    let name = arn("demo");
    let cluster = &entry(doc, "clusters", &name)["cluster"];
    assert_eq!(cluster["server"], endpoint("demo"));
    assert_eq!(cluster["certificate-authority-data"], CA);
    let exec = &entry(doc, "users", &name)["user"]["exec"];
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(exec["command"], meshform_exe());
    assert_eq!(
        exec["args"],
        json!(["eks-token", "--cluster", "demo", "--region", "us-west-2"])
    );
    assert_eq!(exec["interactiveMode"], "Never");
    let context = &entry(doc, "contexts", &name)["context"];
    assert_eq!(context["cluster"], json!(name));
    assert_eq!(context["user"], json!(name));
    assert_eq!(doc["current-context"], json!(name));
    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Config");
}

#[test]
fn writes_cluster_user_context_into_an_empty_file() {
    let fx = Fixture::new("kubeconfig-empty", &["demo"]);
    let file = fx.dir.write("kubeconfig", "");
    let out = expect_code(fx.cmd(&["--file", &file.to_string_lossy()]), 0);
    assert!(stdout(&out).contains(&arn("demo")), "{}", stdout(&out));
    let doc = read_yaml(&file);
    assert_demo_entries(&doc);
    for key in ["clusters", "users", "contexts"] {
        assert_eq!(doc[key].as_array().expect("list").len(), 1, "{key}");
    }
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn merges_into_an_existing_kubeconfig_and_is_idempotent() {
    let fx = Fixture::new("kubeconfig-merge", &["demo"]);
    let existing = r#"apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: kind-local
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
users:
- name: kind-local
  user:
    token: "12345"
contexts:
- name: kind-local
  context:
    cluster: kind-local
    user: kind-local
    namespace: "yes"
current-context: kind-local
"#;
    let file = fx.dir.write("config", existing);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    fx.write_to(&file, &[]);
    let first = std::fs::read_to_string(&file).expect("written");
    let doc = read_yaml(&file);
    assert_demo_entries(&doc);
    assert_eq!(doc["preferences"], json!({}));
    let other = entry(&doc, "clusters", "kind-local");
    assert_eq!(other["cluster"]["server"], "https://127.0.0.1:6443");
    assert_eq!(other["cluster"]["insecure-skip-tls-verify"], true);
    // Strings that look like other types stay strings.
    assert_eq!(entry(&doc, "users", "kind-local")["user"]["token"], "12345");
    assert_eq!(
        entry(&doc, "contexts", "kind-local")["context"]["namespace"],
        "yes"
    );
    for key in ["clusters", "users", "contexts"] {
        assert_eq!(doc[key].as_array().expect("list").len(), 2, "{key}");
    }
    assert_eq!(mode(&file), 0o600);

    // Again: the same file, nothing duplicated.
    fx.write_to(&file, &[]);
    assert_eq!(std::fs::read_to_string(&file).expect("written"), first);
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&fx.dir.path)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn replaces_a_stale_entry_of_the_same_name() {
    let fx = Fixture::new("kubeconfig-stale", &["demo"]);
    let name = arn("demo");
    let stale = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: https://old.example\nusers: []\ncontexts: []\ncurrent-context: ''\n"
    );
    let file = fx.dir.write("config", &stale);
    fx.write_to(&file, &[]);
    let doc = read_yaml(&file);
    assert_demo_entries(&doc);
    assert_eq!(doc["clusters"].as_array().expect("list").len(), 1);
}

#[test]
fn default_file_is_first_kubeconfig_path_then_home() {
    let fx = Fixture::new("kubeconfig-default", &["demo"]);
    let first = fx.dir.path.join("new-dir").join("first");
    let second = fx.dir.path.join("second");
    let list = std::env::join_paths([&first, &second]).expect("joins");
    let mut cmd = fx.cmd(&[]);
    cmd.env("KUBECONFIG", &list);
    expect_code(cmd, 0);
    assert_demo_entries(&read_yaml(&first));
    assert!(!second.exists());
    assert_eq!(mode(first.parent().expect("dir")), 0o700);

    expect_code(fx.cmd(&[]), 0);
    let home_config = fx.dir.path.join(".kube").join("config");
    assert_demo_entries(&read_yaml(&home_config));
    assert_eq!(mode(&home_config), 0o600);
}

#[test]
fn several_clusters_need_cluster_and_it_picks_by_name() {
    let fx = Fixture::new("kubeconfig-several", &["alpha", "beta"]);
    let file = fx.dir.path.join("config");
    let out = expect_code(fx.cmd(&["--file", &file.to_string_lossy()]), 1);
    let err = stderr(&out);
    assert!(err.contains("alpha, beta") && err.contains("--cluster"), "{err}");
    assert!(!file.exists());

    let out = expect_code(
        fx.cmd(&["--file", &file.to_string_lossy(), "--cluster", "gamma"]),
        1,
    );
    assert!(stderr(&out).contains("gamma"), "{}", stderr(&out));

    fx.write_to(&file, &["--cluster", "beta"]);
    let doc = read_yaml(&file);
    assert_eq!(doc["current-context"], json!(arn("beta")));
    assert_eq!(
        entry(&doc, "clusters", &arn("beta"))["cluster"]["server"],
        endpoint("beta")
    );
    fx.write_to(&file, &["--cluster", "alpha"]);
    let doc = read_yaml(&file);
    assert_eq!(doc["current-context"], json!(arn("alpha")));
    assert_eq!(doc["clusters"].as_array().expect("list").len(), 2);
}

#[test]
fn no_cluster_or_no_state_says_to_apply_first() {
    let fx = Fixture::new("kubeconfig-none", &[]);
    let file = fx.dir.path.join("config");
    let out = expect_code(fx.cmd(&["--file", &file.to_string_lossy()]), 1);
    let err = stderr(&out);
    assert!(err.contains("aws.eks.cluster") && err.contains("apply"), "{err}");

    std::fs::remove_file(&fx.state).expect("rm state");
    let out = expect_code(fx.cmd(&["--file", &file.to_string_lossy()]), 1);
    let err = stderr(&out);
    assert!(err.contains("no state") && err.contains("apply"), "{err}");
    assert!(!file.exists());
}

#[test]
fn a_file_that_is_not_a_kubeconfig_is_left_alone() {
    let fx = Fixture::new("kubeconfig-invalid", &["demo"]);
    for text in [
        "- just\n- a list\n",
        "clusters: {not: a list}\n",
        "key: [unclosed\n",
    ] {
        let file = fx.dir.write("config", text);
        let out = expect_code(fx.cmd(&["--file", &file.to_string_lossy()]), 1);
        assert!(
            stderr(&out).contains("not a kubeconfig"),
            "{text}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_to_string(&file).expect("kept"), text);
    }
}

/// The user entry's exec command, run as kubectl would, prints a token.
#[test]
fn the_exec_entry_runs_eks_token() {
    let fx = Fixture::new("kubeconfig-exec", &["demo"]);
    let file = fx.dir.path.join("config");
    fx.write_to(&file, &[]);
    let doc = read_yaml(&file);
    let exec = &entry(&doc, "users", &arn("demo"))["user"]["exec"];
    let args: Vec<&str> = exec["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string"))
        .collect();
    let mut cmd = meshform(&fx.dir.path, None, &args);
    cmd.env("AWS_ACCESS_KEY_ID", "AKIDEXEC")
        .env("AWS_SECRET_ACCESS_KEY", "secret");
    let out = expect_code(cmd, 0);
    let cred: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(cred["kind"], "ExecCredential");
    assert_eq!(cred["apiVersion"], exec["apiVersion"]);
    assert!(
        cred["status"]["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("k8s-aws-v1.")),
        "{cred}"
    );
}

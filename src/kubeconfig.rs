//! Writing kubeconfig entries for the EKS clusters a stack created.
//!
//! `meshform kubeconfig STACK` reads the stack's state (no cloud calls),
//! picks its `aws.eks.cluster` resource ([`select_cluster`]) and merges
//! three entries into a kubeconfig file ([`write()`]):
//!
//! - a **cluster** with `server` = the cluster's endpoint and
//!   `certificate-authority-data` = its CA data (base64 PEM, as EKS returns
//!   it);
//! - a **user** whose `exec` runs meshform itself
//!   (`meshform eks-token --cluster NAME --region REGION`, see
//!   [`crate::eks_auth`]) with `apiVersion`
//!   `client.authentication.k8s.io/v1beta1` and `interactiveMode: Never`;
//! - a **context** joining the two, which becomes `current-context`.
//!
//! # Entry names
//!
//! All three entries are named with the cluster's **ARN**
//! (`arn:aws:eks:REGION:ACCOUNT:cluster/NAME`), as `aws eks
//! update-kubeconfig` names them: the ARN is unique across accounts and
//! regions, and running either tool after the other replaces the entries
//! rather than adding a second set. A cluster whose state records no ARN is
//! named by its cluster name.
//!
//! # Merging
//!
//! The existing file is parsed as YAML; every other cluster, user and
//! context and every other top-level key (such as `preferences`) is kept,
//! and an entry of the same name is replaced in place, so running the
//! command again changes nothing. Comments and the order of keys in the
//! existing file are not preserved. A file that is not a kubeconfig mapping
//! is refused rather than overwritten. The new file is written to a
//! temporary file (mode `0600`) in the same directory, fsynced and renamed
//! over the old one; a missing parent directory is created (mode `0700`).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::eks_auth::EXEC_API_VERSION;
use crate::state::{ResourceState, State};

/// The resource type whose state entries are EKS clusters.
pub const EKS_CLUSTER_TYPE: &str = "aws.eks.cluster";

/// Errors finding a cluster in state or writing the kubeconfig.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KubeconfigError {
    /// The state records no EKS cluster.
    #[error("stack `{stack}` has no {EKS_CLUSTER_TYPE} in its state")]
    #[diagnostic(help("run `meshform apply` on the stack first"))]
    NoCluster {
        /// The stack.
        stack: String,
    },
    /// The state records several EKS clusters and none was chosen.
    #[error(
        "stack `{stack}` has several EKS clusters: {}; choose one with --cluster",
        names.join(", ")
    )]
    Ambiguous {
        /// The stack.
        stack: String,
        /// The cluster names.
        names: Vec<String>,
    },
    /// No EKS cluster in state has the name asked for.
    #[error(
        "stack `{stack}` has no EKS cluster named `{wanted}` (its clusters: {})",
        names.join(", ")
    )]
    UnknownCluster {
        /// The stack.
        stack: String,
        /// The name asked for.
        wanted: String,
        /// The cluster names in state.
        names: Vec<String>,
    },
    /// The cluster's state lacks an attribute the kubeconfig needs.
    #[error("{address} in state has no `{attribute}`")]
    #[diagnostic(help("the cluster may still be creating: run `meshform apply` again once it is active"))]
    MissingAttribute {
        /// The resource address.
        address: String,
        /// The attribute.
        attribute: &'static str,
    },
    /// Neither `--file`, `$KUBECONFIG` nor `$HOME` says where the file is.
    #[error("cannot tell where the kubeconfig is: neither KUBECONFIG nor HOME is set")]
    #[diagnostic(help("pass --file"))]
    NoDefaultPath,
    /// The existing file is not YAML, or not a kubeconfig mapping.
    #[error("{} is not a kubeconfig file meshform can merge into: {message}", path.display())]
    #[diagnostic(help("fix or move the file, or write elsewhere with --file"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing the file (or its directory) failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What a kubeconfig needs to know about one EKS cluster, from state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EksCluster {
    /// The resource's address in the stack.
    pub address: String,
    /// The EKS cluster name.
    pub name: String,
    /// The cluster's ARN, if state records it.
    pub arn: Option<String>,
    /// The API server URL.
    pub endpoint: String,
    /// The cluster CA bundle: base64 of the PEM, as EKS returns it.
    pub certificate_authority_data: String,
    /// The cluster's region (from the ARN, else the stack's).
    pub region: String,
}

impl EksCluster {
    /// The name of the cluster, user and context entries: the ARN, or the
    /// cluster name when state records no ARN.
    pub fn entry_name(&self) -> &str {
        self.arn.as_deref().unwrap_or(&self.name)
    }
}

/// The command a kubeconfig `exec` entry runs to get a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// The program (an absolute path).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
}

impl ExecCommand {
    /// `PROGRAM eks-token --cluster NAME --region REGION`.
    pub fn eks_token(program: &Path, cluster: &EksCluster) -> ExecCommand {
        ExecCommand {
            command: program.to_string_lossy().into_owned(),
            args: vec![
                "eks-token".to_string(),
                "--cluster".to_string(),
                cluster.name.clone(),
                "--region".to_string(),
                cluster.region.clone(),
            ],
        }
    }
}

/// The EKS cluster names in `state`, sorted (the `name` attribute, else the
/// address).
pub fn cluster_names(state: &State) -> Vec<String> {
    let mut names: Vec<String> = eks_resources(state)
        .map(|(address, r)| str_attr(r, "name").unwrap_or(address).to_string())
        .collect();
    names.sort();
    names
}

/// Picks the EKS cluster of `state`: the one named `wanted` (its `name`
/// attribute), or the only one when `wanted` is `None`. `stack_region` is
/// used when the cluster's ARN does not give its region.
pub fn select_cluster(
    state: &State,
    wanted: Option<&str>,
    stack_region: &str,
) -> Result<EksCluster, KubeconfigError> {
    let clusters: Vec<(&String, &ResourceState)> = eks_resources(state).collect();
    let names = || cluster_names(state);
    let (address, resource) = match (wanted, clusters.as_slice()) {
        (_, []) => {
            return Err(KubeconfigError::NoCluster {
                stack: state.stack.clone(),
            });
        }
        (None, [only]) => *only,
        (None, _) => {
            return Err(KubeconfigError::Ambiguous {
                stack: state.stack.clone(),
                names: names(),
            });
        }
        (Some(wanted), _) => clusters
            .iter()
            .find(|(_, r)| str_attr(r, "name") == Some(wanted))
            .copied()
            .ok_or_else(|| KubeconfigError::UnknownCluster {
                stack: state.stack.clone(),
                wanted: wanted.to_string(),
                names: names(),
            })?,
    };
    let required = |attribute: &'static str| {
        str_attr(resource, attribute)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| KubeconfigError::MissingAttribute {
                address: address.clone(),
                attribute,
            })
    };
    let name = required("name")?;
    let endpoint = required("endpoint")?;
    let certificate_authority_data = required("certificate_authority_data")?;
    let arn = str_attr(resource, "arn")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let region = arn
        .as_deref()
        .and_then(arn_region)
        .unwrap_or(stack_region)
        .to_string();
    Ok(EksCluster {
        address: address.clone(),
        name,
        arn,
        endpoint,
        certificate_authority_data,
        region,
    })
}

/// The kubeconfig file to write when none is given: the first path in
/// `$KUBECONFIG` (as kubectl writes to), else `~/.kube/config`.
pub fn default_path() -> Result<PathBuf, KubeconfigError> {
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".kube").join("config")),
        _ => Err(KubeconfigError::NoDefaultPath),
    }
}

/// Merges the entries for `cluster` into `existing` (a parsed kubeconfig,
/// or `None` for a new file) and returns the new document. Fails if
/// `existing` is not a mapping or its entry lists are not lists.
pub fn merge(existing: Option<Value>, cluster: &EksCluster, exec: &ExecCommand) -> Result<Value, String> {
    let mut doc = match existing {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("the document is {}, not a mapping", kind(&other))),
    };
    let name = cluster.entry_name();
    doc.entry("apiVersion").or_insert_with(|| json!("v1"));
    doc.entry("kind").or_insert_with(|| json!("Config"));
    upsert(
        &mut doc,
        "clusters",
        name,
        json!({
            "name": name,
            "cluster": {
                "server": cluster.endpoint,
                "certificate-authority-data": cluster.certificate_authority_data,
            },
        }),
    )?;
    upsert(
        &mut doc,
        "users",
        name,
        json!({
            "name": name,
            "user": {
                "exec": {
                    "apiVersion": EXEC_API_VERSION,
                    "command": exec.command,
                    "args": exec.args,
                    "interactiveMode": "Never",
                },
            },
        }),
    )?;
    upsert(
        &mut doc,
        "contexts",
        name,
        json!({
            "name": name,
            "context": {"cluster": name, "user": name},
        }),
    )?;
    doc.insert("current-context".to_string(), json!(name));
    Ok(Value::Object(doc))
}

/// Writes or merges the entries for `cluster` into the kubeconfig at
/// `path` (see the module documentation), with `exec` as the token command.
pub fn write(path: &Path, cluster: &EksCluster, exec: &ExecCommand) -> Result<(), KubeconfigError> {
    // Write through a symlink to its target, as kubectl does, rather than
    // replacing the link with a file.
    let path = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(_) => path.to_path_buf(),
    };
    let existing = read(&path)?;
    let doc = merge(existing, cluster, exec).map_err(|message| KubeconfigError::Invalid {
        path: path.clone(),
        message,
    })?;
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long base64 values stay plain one-line scalars, as kubectl writes them.
    options.prefer_block_scalars = false;
    let text = serde_saphyr::to_string_with_options(&doc, options).map_err(|e| KubeconfigError::Invalid {
        path: path.clone(),
        message: format!("cannot serialize: {e}"),
    })?;
    write_atomic(&path, text.as_bytes())
}

/// Reads and parses the kubeconfig at `path`; `None` when the file is
/// missing or empty.
pub fn read(path: &Path) -> Result<Option<Value>, KubeconfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KubeconfigError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_saphyr::from_str::<Value>(&text)
        .map(Some)
        .map_err(|e| KubeconfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn eks_resources(state: &State) -> impl Iterator<Item = (&String, &ResourceState)> {
    state.resources.iter().filter(|(_, r)| r.kind == EKS_CLUSTER_TYPE)
}

fn str_attr<'a>(r: &'a ResourceState, name: &str) -> Option<&'a str> {
    r.attributes.get(name).and_then(Value::as_str)
}

/// The region field of an ARN (`arn:PARTITION:SERVICE:REGION:…`).
fn arn_region(arn: &str) -> Option<&str> {
    let mut fields = arn.split(':');
    (fields.next() == Some("arn"))
        .then(|| fields.nth(2))
        .flatten()
        .filter(|r| !r.is_empty())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Replaces the entry named `name` in the list `doc[key]` with `entry`, or
/// appends it. Later duplicates of the name are dropped.
fn upsert(doc: &mut Map<String, Value>, key: &str, name: &str, entry: Value) -> Result<(), String> {
    let list = doc.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if list.is_null() {
        *list = Value::Array(Vec::new());
    }
    let Value::Array(items) = list else {
        return Err(format!("`{key}` is {}, not a list", kind(list)));
    };
    let same = |item: &Value| item.get("name").and_then(Value::as_str) == Some(name);
    match items.iter().position(same) {
        Some(i) => {
            items[i] = entry;
            let mut seen = 0;
            items.retain(|item| {
                if same(item) {
                    seen += 1;
                    seen == 1
                } else {
                    true
                }
            });
        }
        None => items.push(entry),
    }
    Ok(())
}

/// Writes `bytes` to a temporary file (mode `0600`) next to `path`, fsyncs
/// it, renames it over `path` and fsyncs the directory. Creates a missing
/// parent directory with mode `0700`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KubeconfigError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| KubeconfigError::Io { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    let tmp = dir.join(format!(
        ".{file_name}.meshform-{}-{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable once the directory is synced; a failure here
    // leaves the new file in place, so it is not an error worth failing on.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(resources: &[(&str, &str, Value)]) -> State {
        let mut s = State::new("dev");
        for (address, kind, attrs) in resources {
            s.resources.insert(
                address.to_string(),
                ResourceState {
                    kind: kind.to_string(),
                    id: "id".to_string(),
                    attributes: attrs.as_object().cloned().unwrap_or_default(),
                    dependencies: Vec::new(),
                },
            );
        }
        s
    }

    fn cluster_attrs(name: &str) -> Value {
        json!({
            "name": name,
            "endpoint": format!("https://{name}.example"),
            "certificate_authority_data": "Q0E=",
            "arn": format!("arn:aws:eks:eu-west-1:123456789012:cluster/{name}"),
        })
    }

    fn sample() -> EksCluster {
        select_cluster(
            &state(&[("eks", EKS_CLUSTER_TYPE, cluster_attrs("demo"))]),
            None,
            "us-west-2",
        )
        .expect("one cluster")
    }

    #[test]
    fn selects_the_only_cluster_with_region_from_arn() {
        let c = sample();
        assert_eq!(c.name, "demo");
        assert_eq!(c.endpoint, "https://demo.example");
        assert_eq!(c.certificate_authority_data, "Q0E=");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.entry_name(), "arn:aws:eks:eu-west-1:123456789012:cluster/demo");
    }

    #[test]
    fn without_arn_the_name_and_stack_region_serve() {
        let mut attrs = cluster_attrs("demo");
        attrs.as_object_mut().map(|m| m.remove("arn"));
        let c =
            select_cluster(&state(&[("eks", EKS_CLUSTER_TYPE, attrs)]), None, "us-west-2").expect("selects");
        assert_eq!(c.entry_name(), "demo");
        assert_eq!(c.region, "us-west-2");
    }

    #[test]
    fn selection_errors() {
        let none = state(&[("vpc", "aws.ec2.vpc", json!({}))]);
        assert!(matches!(
            select_cluster(&none, None, "r"),
            Err(KubeconfigError::NoCluster { .. })
        ));
        let two = state(&[
            ("a", EKS_CLUSTER_TYPE, cluster_attrs("one")),
            ("b", EKS_CLUSTER_TYPE, cluster_attrs("two")),
        ]);
        match select_cluster(&two, None, "r") {
            Err(e @ KubeconfigError::Ambiguous { .. }) => {
                assert!(e.to_string().contains("one, two"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            select_cluster(&two, Some("two"), "r").expect("named").address,
            "b"
        );
        assert!(matches!(
            select_cluster(&two, Some("three"), "r"),
            Err(KubeconfigError::UnknownCluster { .. })
        ));
        let creating = state(&[(
            "eks",
            EKS_CLUSTER_TYPE,
            json!({"name": "demo", "endpoint": "", "certificate_authority_data": "Q0E="}),
        )]);
        assert!(matches!(
            select_cluster(&creating, None, "r"),
            Err(KubeconfigError::MissingAttribute {
                attribute: "endpoint",
                ..
            })
        ));
    }

    #[test]
    fn arn_region_parses_only_arns() {
        assert_eq!(arn_region("arn:aws:eks:us-east-2:1:cluster/x"), Some("us-east-2"));
        assert_eq!(arn_region("arn:aws:iam::1:role/x"), None);
        assert_eq!(arn_region("not-an-arn"), None);
    }

    #[test]
    fn merge_replaces_same_name_and_keeps_the_rest() {
        let c = sample();
        let exec = ExecCommand::eks_token(Path::new("/bin/meshform"), &c);
        let name = c.entry_name().to_string();
        let existing = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {"colors": true},
            "clusters": [
                {"name": "other", "cluster": {"server": "https://other"}},
                {"name": name, "cluster": {"server": "https://stale"}},
            ],
            "users": null,
            "current-context": "other",
        });
        let merged = merge(Some(existing), &c, &exec).expect("merges");
        let clusters = merged["clusters"].as_array().expect("list");
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0]["name"], "other");
        assert_eq!(clusters[1]["cluster"]["server"], "https://demo.example");
        assert_eq!(merged["users"].as_array().expect("list").len(), 1);
        assert_eq!(merged["contexts"][0]["context"]["user"], json!(name));
        assert_eq!(merged["current-context"], json!(name));
        assert_eq!(merged["preferences"], json!({"colors": true}));
        let again = merge(Some(merged.clone()), &c, &exec).expect("merges");
        assert_eq!(again, merged);
    }

    #[test]
    fn merge_refuses_what_is_not_a_kubeconfig() {
        let c = sample();
        let exec = ExecCommand::eks_token(Path::new("/m"), &c);
        assert!(merge(Some(json!([1])), &c, &exec).is_err());
        assert!(merge(Some(json!({"clusters": "x"})), &c, &exec).is_err());
    }
}

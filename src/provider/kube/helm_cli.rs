//! Running the `helm` program for `helm.release`.
//!
//! No maintained Rust crate installs Helm charts, so meshform drives the
//! `helm` command line. This module holds what that takes, apart from the
//! kind itself:
//!
//! - finding the program ([`locate`]): `MESHFORM_HELM` when set (a path,
//!   or a name looked up on PATH), else `helm` on PATH, looked up here
//!   rather than left to the OS so that the error can say what to install;
//! - a private scratch directory per call ([`Scratch`]: mode `0700`, files
//!   `0600`, removed when dropped) for the kubeconfig and values file handed
//!   to helm, so that tokens and values never reach the user's files;
//! - the kubeconfig document for one cluster ([`kubeconfig_yaml`]);
//! - running helm with a time limit and progress reports ([`Helm::run`]),
//!   turning a failure into a [`ProviderError`] carrying helm's stderr and
//!   recognizing "release: not found" ([`RELEASE_NOT_FOUND`]);
//! - asking helm its version once per program and process
//!   ([`Helm::version`], [`version_blocking`]; what is supported and what
//!   differs between versions is in `helm_version.rs`);
//! - parsing `helm get metadata -o json` and `helm get values -o json`.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::helm_version::{HelmVersion, VERSION_ARGS, supported_version};
use crate::eks_auth::EXEC_API_VERSION;
use crate::kubeconfig::ExecCommand;
use crate::provider::{Progress, ProviderError};

/// Environment variable naming the helm program to run instead of `helm`
/// on PATH: a path, or a name looked up on PATH.
pub const PROGRAM_ENV: &str = "MESHFORM_HELM";

/// What preflight says when there is no helm program.
pub const NOT_ON_PATH: &str = "the `helm` program is not on PATH; install Helm 3.13 or later, or Helm 4 \
     (https://helm.sh), to use helm.release";

/// The [`ProviderError::code`] of a helm failure saying the release does
/// not exist.
pub const RELEASE_NOT_FOUND: &str = "ReleaseNotFound";

/// The [`ProviderError::code`] of any other helm failure: helm said why in
/// its message; it is not a lost answer to be retried blindly.
pub const HELM_FAILED: &str = "HelmFailed";

/// Whether helm's stderr says it could not reach the cluster at all: Helm 3
/// prints `Kubernetes cluster unreachable: ...` when its client cannot
/// connect, Helm 4 `kubernetes cluster unreachable: ...`.
fn says_cluster_unreachable(stderr: &str) -> bool {
    stderr
        .to_ascii_lowercase()
        .contains("kubernetes cluster unreachable")
}

/// The name of the cluster, user and context in the kubeconfig meshform
/// writes for one helm call.
pub const CONTEXT_NAME: &str = "meshform";

/// Environment variables through which helm would take connection settings
/// other than those meshform passes; removed from helm's environment so
/// that the `cluster` attribute alone says where a release goes.
const HELM_CONNECTION_ENV: &[&str] = &[
    "HELM_KUBEAPISERVER",
    "HELM_KUBEASGROUPS",
    "HELM_KUBEASUSER",
    "HELM_KUBECAFILE",
    "HELM_KUBECONTEXT",
    "HELM_KUBEINSECURE_SKIP_TLS_VERIFY",
    "HELM_KUBETLS_SERVER_NAME",
    "HELM_KUBETOKEN",
    "HELM_NAMESPACE",
];

/// How often a long helm call reports that it is still running.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Time limit of `helm version`, which reaches no cluster.
const VERSION_CALL_LIMIT: Duration = Duration::from_secs(60);

/// The supported versions found so far, by program path: a program's
/// version is asked once per process (preflight, then every operation).
static VERSIONS: Mutex<Vec<(PathBuf, HelmVersion)>> = Mutex::new(Vec::new());

fn cached_version(program: &Path) -> Option<HelmVersion> {
    let cache = VERSIONS.lock().unwrap_or_else(|e| e.into_inner());
    cache.iter().find(|(p, _)| p == program).map(|(_, v)| *v)
}

fn remember_version(program: &Path, version: HelmVersion) {
    let mut cache = VERSIONS.lock().unwrap_or_else(|e| e.into_inner());
    if !cache.iter().any(|(p, _)| p == program) {
        cache.push((program.to_path_buf(), version));
    }
}

/// The version of `program` from the outcome of `helm version`: `Ok`
/// only for a supported version (remembered), else the user's message.
fn version_from_output(
    program: &Path,
    success: bool,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<HelmVersion, String> {
    let shown = program.display().to_string();
    if !success {
        return Err(format!(
            "`{shown} version` failed: {}",
            String::from_utf8_lossy(stderr).trim()
        ));
    }
    let version = supported_version(&shown, &String::from_utf8_lossy(stdout))?;
    remember_version(program, version);
    Ok(version)
}

/// The version of the helm `program`, asked by running `helm version`
/// without an async runtime (for preflight); `Err` holds the message for
/// the user, including when the version is not supported.
pub fn version_blocking(program: &Path) -> Result<HelmVersion, String> {
    if let Some(v) = cached_version(program) {
        return Ok(v);
    }
    let mut command = std::process::Command::new(program);
    command
        .args(VERSION_ARGS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in HELM_CONNECTION_ENV {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < VERSION_CALL_LIMIT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{} version` did not finish within {}s",
                    program.display(),
                    VERSION_CALL_LIMIT.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot run {}: {e}", program.display())),
        }
    }
    // The output is a few bytes: it fits the pipes, so waiting first
    // cannot block on a full pipe.
    let output = child
        .wait_with_output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    version_from_output(program, output.status.success(), &output.stdout, &output.stderr)
}

/// The first executable regular file called `name` in the directories of
/// `path` (a PATH-style list). Empty entries are skipped rather than taken
/// as the current directory.
pub fn find_on_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file (after symlinks) with an execute bit.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The helm program to run, from the value of `MESHFORM_HELM`
/// (`program_override`) and of `PATH`: the override when set (a value with
/// a `/` is a path, anything else a name looked up on `path`), else `helm`
/// on `path`. Pure: the caller reads the environment. `Err` holds the
/// message for the user.
pub fn locate(program_override: Option<&OsStr>, path: Option<&OsStr>) -> Result<PathBuf, String> {
    let path = path.unwrap_or_default();
    match program_override.filter(|p| !p.is_empty()) {
        Some(program) => {
            let given = Path::new(program);
            let found = if program.to_string_lossy().contains('/') {
                Some(given.to_path_buf()).filter(|p| is_executable(p))
            } else {
                find_on_path(&program.to_string_lossy(), path)
            };
            found.ok_or_else(|| {
                format!(
                    "{PROGRAM_ENV}={} does not name an executable program; unset it to use `helm` on PATH",
                    given.display()
                )
            })
        }
        None => find_on_path("helm", path).ok_or_else(|| NOT_ON_PATH.to_string()),
    }
}

/// [`locate`] with this process's `MESHFORM_HELM` and `PATH`.
pub fn locate_from_env() -> Result<PathBuf, String> {
    locate(
        std::env::var_os(PROGRAM_ENV).as_deref(),
        std::env::var_os("PATH").as_deref(),
    )
}

/// A private temporary directory (mode `0700`) for the files of one helm
/// call; it and its files are removed when the value drops.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates a new directory under the system's temporary directory.
    pub fn new() -> Result<Scratch, ProviderError> {
        let path = std::env::temp_dir().join(format!(
            "meshform-helm-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        DirBuilder::new().mode(0o700).create(&path).map_err(|e| {
            ProviderError::Config(format!(
                "cannot create a temporary directory {}: {e}",
                path.display()
            ))
        })?;
        Ok(Scratch { path })
    }

    /// The directory.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a new file `name` (mode `0600`) holding `bytes`; returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ProviderError> {
        let file = self.path.join(name);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| f.write_all(bytes));
        written.map_err(|e| ProviderError::Config(format!("cannot write {}: {e}", file.display())))?;
        Ok(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// How the kubeconfig's user authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAuth {
    /// No credentials (the `MESHFORM_KUBE_SERVER` override).
    Anonymous,
    /// A bearer token (a fresh EKS token).
    Token(String),
    /// A command printing an `ExecCredential` (`meshform eks-token`), for
    /// calls that may outlast one token.
    Exec(ExecCommand),
}

/// A kubeconfig (YAML) with one cluster at `server`, verified against
/// `certificate_authority_data` (base64 PEM) when given, one user
/// authenticating with `auth`, and one context, all named
/// [`CONTEXT_NAME`]; the context is current.
pub fn kubeconfig_yaml(
    server: &str,
    certificate_authority_data: Option<&str>,
    auth: &UserAuth,
) -> Result<String, ProviderError> {
    let mut cluster = json!({ "server": server });
    if let Some(ca) = certificate_authority_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    let user = match auth {
        UserAuth::Anonymous => json!({}),
        UserAuth::Token(token) => json!({ "token": token }),
        UserAuth::Exec(exec) => json!({
            "exec": {
                "apiVersion": EXEC_API_VERSION,
                "command": exec.command,
                "args": exec.args,
                "interactiveMode": "Never",
            },
        }),
    };
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": CONTEXT_NAME, "cluster": cluster }],
        "users": [{ "name": CONTEXT_NAME, "user": user }],
        "contexts": [{ "name": CONTEXT_NAME, "context": { "cluster": CONTEXT_NAME, "user": CONTEXT_NAME } }],
        "current-context": CONTEXT_NAME,
    });
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long base64 values stay plain one-line scalars, as kubectl writes them.
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(&doc, options)
        .map_err(|e| ProviderError::Config(format!("cannot write a kubeconfig for helm: {e}")))
}

/// Whether helm's stderr says the release does not exist (`release: not
/// found`, also inside `uninstall: Release not loaded: NAME: release: not
/// found`).
pub fn says_release_not_found(stderr: &str) -> bool {
    stderr.to_ascii_lowercase().contains("release: not found")
}

/// Whether `err` is a helm failure saying the release does not exist.
pub fn is_release_not_found(err: &ProviderError) -> bool {
    err.code() == Some(RELEASE_NOT_FOUND)
}

/// A helm program to run.
#[derive(Debug, Clone)]
pub struct Helm {
    /// The program's path.
    pub program: PathBuf,
}

impl Helm {
    /// The program's version, asked once per process (`helm version`);
    /// an unsupported version is a [`ProviderError::Config`] naming it.
    pub async fn version(&self) -> Result<HelmVersion, ProviderError> {
        if let Some(v) = cached_version(&self.program) {
            return Ok(v);
        }
        let out = self
            .run(
                "helm version",
                &os_args(VERSION_ARGS),
                VERSION_CALL_LIMIT,
                &Progress::default(),
            )
            .await;
        match out {
            Ok(stdout) => version_from_output(&self.program, true, stdout.as_bytes(), b""),
            Err(ProviderError::Api { message, .. }) => {
                version_from_output(&self.program, false, b"", message.as_bytes())
            }
            Err(e) => return Err(e),
        }
        .map_err(ProviderError::Config)
    }

    /// Runs helm with `args` and returns its stdout. `operation` names the
    /// call in errors (`helm upgrade --install`). A call still running
    /// after `limit` is killed and reported as a timeout; one running longer
    /// than 30 seconds is reported on `progress` every 30 seconds. A
    /// non-zero exit is a [`ProviderError::Unreachable`] when helm says the
    /// cluster is unreachable, else a [`ProviderError::Api`] whose message
    /// is helm's stderr, trimmed, and whose code is [`RELEASE_NOT_FOUND`]
    /// when it says so and [`HELM_FAILED`] otherwise.
    pub async fn run(
        &self,
        operation: &str,
        args: &[OsString],
        limit: Duration,
        progress: &Progress,
    ) -> Result<String, ProviderError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for var in HELM_CONNECTION_ENV {
            command.env_remove(var);
        }
        tracing::debug!(program = %self.program.display(), ?args, "running helm");
        let child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ProviderError::Config(format!("{} ({})", NOT_ON_PATH, self.program.display()))
            } else {
                ProviderError::Config(format!("cannot run {}: {e}", self.program.display()))
            }
        })?;
        let started = Instant::now();
        let output = child.wait_with_output();
        tokio::pin!(output);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
        let output = loop {
            tokio::select! {
                out = &mut output => break out,
                _ = &mut deadline => {
                    // Dropping `output` kills helm (kill_on_drop).
                    return Err(ProviderError::Timeout {
                        what: format!("{operation} to finish"),
                        seconds: limit.as_secs(),
                    });
                }
                _ = ticks.tick() => {
                    progress.report(&format!(
                        "{operation} still running ({}s)",
                        started.elapsed().as_secs()
                    ));
                }
            }
        }
        .map_err(|e| ProviderError::Config(format!("cannot run {}: {e}", self.program.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let message = if stderr.is_empty() {
            format!("helm exited with {}", output.status)
        } else {
            stderr
        };
        if says_cluster_unreachable(&message) {
            return Err(ProviderError::Unreachable {
                target: "the Kubernetes API server".to_string(),
                message: format!("{operation}: {message}"),
            });
        }
        let code = if says_release_not_found(&message) {
            RELEASE_NOT_FOUND
        } else {
            HELM_FAILED
        };
        Err(ProviderError::Api {
            operation: operation.to_string(),
            code: Some(code.to_string()),
            message,
        })
    }
}

/// A release as `helm get metadata -o json` describes it (Helm 3.13 and
/// later).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ReleaseMetadata {
    /// The release name.
    pub name: String,
    /// The chart's name (from its Chart.yaml).
    pub chart: String,
    /// The chart's version.
    pub version: String,
    /// The chart's appVersion; empty when it has none.
    #[serde(rename = "appVersion", default)]
    pub app_version: String,
    /// The release's namespace.
    pub namespace: String,
    /// The release's revision, 1 for the first install.
    pub revision: i64,
    /// `deployed`, `failed`, `pending-install`, `pending-upgrade`, ...
    pub status: String,
}

/// Parses the output of `helm get metadata -o json`.
pub fn parse_metadata(stdout: &str) -> Result<ReleaseMetadata, ProviderError> {
    serde_json::from_str(stdout).map_err(|e| {
        ProviderError::unexpected(
            "helm get metadata",
            format!("output is not the expected JSON: {e}"),
        )
    })
}

/// Parses the output of `helm get values -o json`: the user-supplied
/// values, `null` (no values) meaning an empty table.
pub fn parse_values(stdout: &str) -> Result<Value, ProviderError> {
    let bad = |m: String| ProviderError::unexpected("helm get values", m);
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(Value::Null) => Ok(Value::Object(Default::default())),
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(bad(format!("values are not a table: {other}"))),
        Err(e) => Err(bad(format!("output is not JSON: {e}"))),
    }
}

/// `args` as owned OS strings, for building argument lists.
pub fn os_args<I, S>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter().map(|a| a.as_ref().to_os_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn helm_lookup_follows_path_and_the_override() {
        let scratch = Scratch::new().unwrap();
        let a = scratch.path().join("a");
        let b = scratch.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        // Not executable in `a`: skipped; executable in `b`: found.
        executable(&a, "helm", 0o644);
        let helm = executable(&b, "helm", 0o755);
        let path = std::env::join_paths(["", a.to_str().unwrap(), b.to_str().unwrap()]).unwrap();
        assert_eq!(locate(None, Some(&path)), Ok(helm.clone()));
        assert_eq!(
            locate(None, Some(OsStr::new(a.to_str().unwrap()))),
            Err(NOT_ON_PATH.to_string())
        );
        assert_eq!(locate(None, None), Err(NOT_ON_PATH.to_string()));
        // The override: a path, or a name on PATH.
        let other = executable(&a, "helm-3", 0o700);
        assert_eq!(locate(Some(other.as_os_str()), None), Ok(other.clone()));
        assert_eq!(locate(Some(OsStr::new("helm-3")), Some(&path)), Ok(other));
        let err = locate(Some(OsStr::new("/nowhere/helm")), Some(&path)).unwrap_err();
        assert!(
            err.contains(PROGRAM_ENV) && err.contains("/nowhere/helm"),
            "{err}"
        );
        // An empty override is no override.
        assert_eq!(locate(Some(OsStr::new("")), Some(&path)), Ok(helm));
    }

    #[test]
    fn scratch_files_are_private_and_removed() {
        let scratch = Scratch::new().unwrap();
        let dir = scratch.path().to_path_buf();
        let file = scratch.write("values.json", b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert!(scratch.write("values.json", b"{}").is_err(), "never overwrites");
        drop(scratch);
        assert!(!dir.exists());
    }

    #[test]
    fn kubeconfig_documents() {
        let parse = |text: &str| serde_saphyr::from_str::<Value>(text).unwrap();
        let anon = parse(&kubeconfig_yaml("http://127.0.0.1:1", None, &UserAuth::Anonymous).unwrap());
        assert_eq!(
            anon["clusters"][0]["cluster"],
            json!({"server": "http://127.0.0.1:1"})
        );
        assert_eq!(anon["users"][0]["user"], json!({}));
        assert_eq!(anon["current-context"], json!(CONTEXT_NAME));

        let ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==".repeat(20);
        let token = parse(
            &kubeconfig_yaml(
                "https://eks.example",
                Some(&ca),
                &UserAuth::Token("k8s-aws-v1.abc".into()),
            )
            .unwrap(),
        );
        assert_eq!(
            token["clusters"][0]["cluster"]["certificate-authority-data"],
            json!(ca)
        );
        assert_eq!(token["users"][0]["user"]["token"], json!("k8s-aws-v1.abc"));

        let exec = ExecCommand {
            command: "/usr/bin/meshform".into(),
            args: vec!["eks-token".into(), "--cluster".into(), "c".into()],
        };
        let doc =
            parse(&kubeconfig_yaml("https://eks.example", Some("Q0E="), &UserAuth::Exec(exec)).unwrap());
        let user = &doc["users"][0]["user"]["exec"];
        assert_eq!(user["command"], json!("/usr/bin/meshform"));
        assert_eq!(user["args"][0], json!("eks-token"));
        assert_eq!(user["apiVersion"], json!(EXEC_API_VERSION));
        assert_eq!(doc["contexts"][0]["context"]["user"], json!(CONTEXT_NAME));
    }

    #[test]
    fn recognizes_an_unreachable_cluster_in_both_spellings() {
        let tail = ": Get \"http://127.0.0.1:9/version\": dial tcp 127.0.0.1:9: connect: connection refused";
        assert!(says_cluster_unreachable(&format!(
            "Error: Kubernetes cluster unreachable{tail}"
        )));
        assert!(says_cluster_unreachable(&format!(
            "Error: kubernetes cluster unreachable{tail}"
        )));
        assert!(!says_cluster_unreachable("Error: release: not found"));
    }

    #[test]
    fn recognizes_release_not_found() {
        assert!(says_release_not_found("Error: release: not found"));
        assert!(says_release_not_found(
            "Error: uninstall: Release not loaded: web: release: not found"
        ));
        assert!(!says_release_not_found(
            "Error: chart \"x\" not found in repository"
        ));
    }

    #[test]
    fn parses_helm_json() {
        let meta = parse_metadata(
            r#"{"name":"appmesh-controller","chart":"appmesh-controller","version":"1.13.1","appVersion":"1.13.1","namespace":"appmesh-system","revision":2,"status":"deployed","deployedAt":"2025-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(meta.revision, 2);
        assert_eq!(meta.app_version, "1.13.1");
        assert!(parse_metadata("not json").is_err());
        assert_eq!(parse_values("null\n").unwrap(), json!({}));
        assert_eq!(
            parse_values(r#"{"region":"us-west-2"}"#).unwrap(),
            json!({"region": "us-west-2"})
        );
        assert!(parse_values("[1]").is_err());
    }
}

//! Sensitive values end to end through the binary: a password given as a
//! `sensitive = true` variable goes into a Kubernetes Secret, into a
//! ConfigMap inside a longer string, into an output and (on purpose) into
//! an invalid label whose error the API server echoes. Every command's
//! stdout and stderr (with logs at trace level) and every file meshform
//! leaves in the working directory are searched for it; the cluster holds
//! it, state does not, and plans still see a change of it, and no change
//! when there is none.

use std::path::Path;

use base64::Engine as _;

use crate::support::cli::{stderr, stdout};
use crate::support::walkthrough::Walkthrough;

const CLUSTER: &str =
    r#"cluster = { kubeconfig_context = "unused: MESHFORM_KUBE_SERVER points at the fake" }"#;

/// Long and unlike anything else in the output.
const SENTINEL: &str = "Sentinel-7f3a9c!pw";
const CHANGED: &str = "Sentinel-0b2d4e!pw";

fn stack_text() -> String {
    format!(
        r#"
[stack]
name = "secrets"
region = "us-west-2"

[vars.db_password]
type = "string"
sensitive = true
description = "The cache password"

[vars.bad_label]
type = "bool"
default = false

[resource.namespace]
type = "kube.namespace"
{CLUSTER}
name = "demo"

[resource.secret]
type = "kube.manifest"
{CLUSTER}
depends_on = ["namespace"]
yaml = """
apiVersion: v1
kind: Secret
metadata:
  name: cache-auth
  namespace: demo
type: Opaque
stringData:
  password: "${{var.db_password}}"
"""

[resource.config]
type = "kube.manifest"
{CLUSTER}
depends_on = ["namespace"]
yaml = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: cache
  namespace: demo
${{if var.bad_label}}  labels:
    pw: "${{var.db_password}}"
${{end}}data:
  url: "rediss://:${{var.db_password}}@cache.demo:6379"
"""

[output.cache_url]
value = "rediss://:${{var.db_password}}@cache.demo:6379"
"#
    )
}

/// Every form of `secret` that would reveal it.
fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret),
    ]
}

/// Fails naming where `secret` (or its base64) shows in `text`.
pub(crate) fn assert_hidden(what: &str, text: &str, secret: &str) {
    for form in forms(secret) {
        assert!(!text.contains(&form), "{what} shows {form}:\n{text}");
    }
}

/// Every file below `dir`, with its text (lossy).
pub(crate) fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

/// The password the Secret in the cluster holds (the API server keeps
/// `stringData` as base64 `data`).
fn stored_password(w: &Walkthrough) -> Option<String> {
    let secret = w.kube.object("v1", "secrets", Some("demo"), "cache-auth")?;
    if let Some(plain) = secret.pointer("/stringData/password").and_then(|v| v.as_str()) {
        return Some(plain.to_string());
    }
    let data = secret.pointer("/data/password")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    String::from_utf8(bytes).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_value_shows_nowhere_and_stays_out_of_state() {
    let w = Walkthrough::start("sensitive");
    let stack = w.dir.write("secrets.toml", &stack_text());
    let stack = stack.to_str().unwrap();
    let run = |args: &[&str], password: &str, code: i32| -> String {
        let var = format!("db_password={password}");
        let mut all = args.to_vec();
        all.extend(["--var", var.as_str()]);
        let mut cmd = w.meshform(&all);
        cmd.env("MESHFORM_LOG", "trace");
        let out = cmd.output().expect("meshform runs");
        let text = format!("{}\n{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(code), "meshform {all:?}:\n{text}");
        text
    };

    let text = run(&["plan", stack], SENTINEL, 0);
    assert!(text.contains("(sensitive)"), "{text}");
    assert_hidden("plan", &text, SENTINEL);
    assert_hidden(
        "plan --json",
        &run(&["plan", stack, "--json"], SENTINEL, 0),
        SENTINEL,
    );
    let text = run(&["apply", stack, "--auto-approve"], SENTINEL, 0);
    assert_hidden("apply", &text, SENTINEL);

    // The cluster got the real value.
    assert_eq!(stored_password(&w).as_deref(), Some(SENTINEL));

    // No change is no change, although state holds only hashes (and the
    // plan leaves every file as it was)...
    let before = files(&w.dir.path);
    run(&["plan", stack, "--detailed-exitcode"], SENTINEL, 0);
    assert_eq!(files(&w.dir.path), before, "a no-change plan rewrote state");
    // ...and a new password is a change, shown hidden.
    let text = run(&["plan", stack, "--detailed-exitcode"], CHANGED, 2);
    assert!(text.contains("(sensitive)"), "{text}");
    assert_hidden("plan of a change", &text, CHANGED);
    assert_hidden("plan of a change", &text, SENTINEL);
    let text = run(&["apply", stack, "--auto-approve"], CHANGED, 0);
    assert_hidden("apply of a change", &text, CHANGED);
    assert_eq!(stored_password(&w).as_deref(), Some(CHANGED));
    run(&["plan", stack, "--detailed-exitcode"], CHANGED, 0);

    let text = run(&["output", stack], CHANGED, 0);
    assert_hidden("output", &text, CHANGED);
    let text = run(&["state", "show", stack, "secret"], CHANGED, 0);
    assert_hidden("state show", &text, CHANGED);

    // An error whose message carries the value: an invalid label value,
    // echoed back by the API server's validation.
    let text = run(
        &["apply", stack, "--auto-approve", "--var", "bad_label=true"],
        CHANGED,
        1,
    );
    assert!(text.contains("Invalid value"), "{text}");
    assert_hidden("an error", &text, CHANGED);

    let text = run(&["destroy", stack, "--auto-approve"], CHANGED, 0);
    assert_hidden("destroy", &text, CHANGED);
    assert!(
        w.kube
            .object("v1", "secrets", Some("demo"), "cache-auth")
            .is_none()
    );

    for (path, content) in files(&w.dir.path) {
        assert_hidden(&path, &content, SENTINEL);
        assert_hidden(&path, &content, CHANGED);
    }
}

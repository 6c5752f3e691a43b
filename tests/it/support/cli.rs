//! Running the `meshform` binary in a scratch directory against a moto server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::moto::{Moto, project_root};

/// A scratch working directory, removed when dropped.
pub struct Workdir {
    pub path: PathBuf,
}

impl Workdir {
    pub fn new(name: &str) -> Workdir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "meshform-it-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Workdir { path }
    }

    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The default state file of stack `name`.
    pub fn state_file(&self, stack: &str) -> PathBuf {
        self.path.join(".meshform").join(format!("{stack}.json"))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The baseline stack of the walkthrough.
pub fn baseline_stack() -> PathBuf {
    project_root().join("stacks/baseline.toml")
}

/// A `meshform` command in `dir`, reaching `moto` if given (and no real
/// AWS in any case).
pub fn meshform(dir: &Path, moto: Option<&Moto>, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshform"));
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    for (k, v) in ["AWS_ENDPOINT_URL", "AWS_PROFILE", "MESHFORM_FAILPOINT"]
        .iter()
        .map(|k| (*k, ""))
    {
        let _ = v;
        cmd.env_remove(k);
    }
    match moto {
        Some(m) => {
            cmd.envs(m.env());
        }
        None => {
            // Unroutable on purpose: a command that should not touch the
            // cloud fails loudly if it tries.
            cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
            cmd.env("AWS_ACCESS_KEY_ID", "none")
                .env("AWS_SECRET_ACCESS_KEY", "none")
                .env("AWS_REGION", "us-west-2");
        }
    }
    cmd
}

/// Runs a command to completion.
pub fn run(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `meshform` and asserts it exits with `code`, showing its output if not.
pub fn expect_code(cmd: Command, code: i32) -> Output {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Starts a command and SIGKILLs it as soon as a line of its stderr
/// satisfies `at`. Returns the stderr seen. Panics if the process ends
/// before that.
pub fn kill_when(mut cmd: Command, at: impl Fn(&str, usize) -> bool) -> String {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child: Child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut n = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        n += 1;
        if at(&line, n) {
            // SIGKILL: no cleanup of any kind runs in the child.
            child.kill().unwrap();
            child.wait().unwrap();
            return seen;
        }
    }
    let status = child.wait().unwrap();
    panic!("meshform ended ({status}) before the kill point; stderr:\n{seen}");
}

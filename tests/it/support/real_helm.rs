//! The REAL helm ([`kube_tools`]) as meshform runs it in tests: a small
//! wrapper script, `<dir>/bin/helm`, that records each call's arguments and
//! then `exec`s the real binary with a private HOME, config, cache and data
//! directory (so that no test reads or writes the user's helm settings,
//! and the repositories a test adds stay its own).
//!
//! Library tests hand [`RealHelm::program`] to `HelmRelease::with_program`;
//! a meshform child process gets it as `MESHFORM_HELM` or
//! [`RealHelm::bin_dir`] first on its PATH. [`RealHelm::run`] runs the real
//! binary directly (not logged), as a user would, to read releases back.
//!
//! The log keeps, per call, the arguments and the permission bits of the
//! `--values` and `--kubeconfig` files while they exist (meshform writes
//! them privately and removes them afterwards). Arguments are logged one
//! per line: the calls tested here never hold a newline.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::cli::Workdir;
use super::kube_tools::{self, Tool};

/// One call of helm through the wrapper.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its arguments (without the program).
    pub argv: Vec<String>,
    /// The permission bits of its `--values` file.
    pub values_mode: Option<u32>,
    /// The permission bits of its `--kubeconfig` file.
    pub kubeconfig_mode: Option<u32>,
}

impl Call {
    /// `upgrade`, `get`, `uninstall`, `version`, ...
    pub fn command(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    /// Whether the argument is there.
    pub fn has(&self, arg: &str) -> bool {
        self.argv.iter().any(|a| a == arg)
    }

    /// The argument after `flag`.
    pub fn flag(&self, flag: &str) -> Option<&str> {
        let i = self.argv.iter().position(|a| a == flag)?;
        self.argv.get(i + 1).map(String::as_str)
    }
}

/// A real helm with its private directories; removed on drop.
pub struct RealHelm {
    /// Which helm.
    pub tool: Tool,
    /// The wrapper to run as helm.
    pub program: PathBuf,
    dir: Workdir,
    log: PathBuf,
}

impl RealHelm {
    /// Writes the wrapper for `tool` into a new scratch directory.
    pub fn install(tool: Tool) -> RealHelm {
        let real = kube_tools::path(tool);
        let dir = Workdir::new("real-helm");
        let bin = dir.path.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let log = dir.path.join("calls.log");
        // The same layout kube_tools::run gives a tool, so that direct runs
        // (RealHelm::run) see the repositories the wrapper's calls added.
        let home = dir.path.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
        let script = format!(
            r#"#!/bin/sh
# The real {tool:?} with private directories; logs its arguments for the test.
{{
  prev=
  for a in "$@"; do
    printf 'arg %s\n' "$a"
    case "$prev" in
      --values|--kubeconfig) printf 'mode %s %s\n' "$prev" "$(stat -c %a "$a" 2>/dev/null)" ;;
    esac
    prev=$a
  done
  printf 'end\n'
}} >> {log}
export HOME={home}
export XDG_CACHE_HOME={home}/.cache XDG_CONFIG_HOME={home}/.config XDG_DATA_HOME={home}/.local/share
export HELM_CACHE_HOME={home}/.cache/helm HELM_CONFIG_HOME={home}/.config/helm HELM_DATA_HOME={home}/.local/share/helm
export NO_PROXY=127.0.0.1,localhost
exec {real} "$@"
"#,
            log = q(&log),
            home = q(&home),
            real = q(&real),
        );
        let program = bin.join("helm");
        std::fs::write(&program, script).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        RealHelm {
            tool,
            program,
            dir,
            log,
        }
    }

    /// The directory holding the wrapper `helm`, to put first on a PATH.
    pub fn bin_dir(&self) -> PathBuf {
        self.program.parent().unwrap().to_path_buf()
    }

    /// Every call through the wrapper so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut calls = Vec::new();
        let mut call = Call {
            argv: Vec::new(),
            values_mode: None,
            kubeconfig_mode: None,
        };
        for line in text.lines() {
            if let Some(arg) = line.strip_prefix("arg ") {
                call.argv.push(arg.to_string());
            } else if let Some(rest) = line.strip_prefix("mode ") {
                let (flag, mode) = rest.split_once(' ').unwrap_or((rest, ""));
                let mode = u32::from_str_radix(mode.trim(), 8).ok();
                match flag {
                    "--values" => call.values_mode = mode,
                    _ => call.kubeconfig_mode = mode,
                }
            } else if line == "end" {
                calls.push(std::mem::replace(
                    &mut call,
                    Call {
                        argv: Vec::new(),
                        values_mode: None,
                        kubeconfig_mode: None,
                    },
                ));
            }
        }
        calls
    }

    /// The calls whose subcommand is `command`.
    pub fn calls_of(&self, command: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.command() == command)
            .collect()
    }

    /// Runs the real helm directly (not logged) with `kubeconfig` and the
    /// wrapper's private directories.
    pub fn run(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        kube_tools::run(self.tool, kubeconfig, &self.dir.path, args)
    }

    /// [`RealHelm::run`], which must succeed; its stdout.
    pub fn ok(&self, kubeconfig: &Path, args: &[&str]) -> String {
        let out = self.run(kubeconfig, args);
        assert!(
            out.status.success(),
            "{:?} helm {args:?} failed: {}",
            self.tool,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`RealHelm::ok`] with `--output json` appended, parsed.
    pub fn json(&self, kubeconfig: &Path, args: &[&str]) -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["--output", "json"]).collect();
        let out = self.ok(kubeconfig, &args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("helm {args:?}: not JSON ({e}): {out}"))
    }
}

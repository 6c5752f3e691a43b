//! Saved plans (`meshform plan --out FILE`, then `meshform apply FILE`):
//! a plan with what it was made against, so that applying it later applies
//! exactly that plan, or refuses when anything it was made from changed.
//!
//! The file is versioned JSON ([`SAVED_PLAN_FORMAT`]) holding:
//! - the plan itself (as `plan --json` prints it: sensitive values shown
//!   as `(sensitive)`; apply evaluates attributes from the stack, never
//!   from the plan's shown values);
//! - the stack file's path, the `--var` values given (sensitive variables
//!   by name only: they must be given again to apply) and the `--state`
//!   location;
//! - the state it was made against: lineage and serial (`None` for a state
//!   not written yet), and the records the plan's refresh read (sealed as
//!   state seals them), which apply writes into state before its steps, as
//!   an apply's own refresh would have;
//! - a SHA-256 digest of the stack: every file it was read from (the root
//!   file, included files and files read by `${file()}`: the loader keeps
//!   them all in `Stack::sources`), by their bytes in the order loaded,
//!   and every variable's resolved value;
//! - the region's availability zones the plan used (`${az[N]}`), and the
//!   `--target` addresses.
//!
//! Applying it re-loads the stack with the same variables, locks state,
//! and refuses, changing nothing, unless the digest, lineage and serial
//! are the same ([`SavedPlan::check`]). It does not refresh first (as
//! Terraform does not for a saved plan): a refresh would write state, and
//! the plan is what was reviewed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::{PLAN_FORMAT_VERSION, Plan};
use crate::config::Stack;
use crate::state::{ResourceState, State, StateStore};

/// The saved-plan file format this meshform writes and reads.
pub const SAVED_PLAN_FORMAT: u32 = 1;

/// What the `format` field of a saved plan says, to tell it from a stack.
pub const SAVED_PLAN_KIND: &str = "meshform-saved-plan";

/// A saved plan and what it was made against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Always [`SAVED_PLAN_KIND`].
    pub format: String,
    /// [`SAVED_PLAN_FORMAT`] when written.
    pub format_version: u32,
    /// The stack file, as given to `plan`.
    pub stack_file: PathBuf,
    /// The `--var` values given to `plan`, in order, except those of
    /// sensitive variables.
    pub vars: Vec<(String, String)>,
    /// Sensitive variables given with `--var` to `plan`: their values are
    /// not saved and must be given again to `apply`.
    #[serde(default)]
    pub sensitive_vars: Vec<String>,
    /// The `--state` location given to `plan`, if any.
    pub state_location: Option<String>,
    /// The state the plan was made against.
    pub state: Option<StateVersion>,
    /// Digest of the stack's files and variables ([`stack_digest`]).
    pub stack_digest: String,
    /// The region's availability zones, as the plan used them.
    pub azs: Vec<String>,
    /// The `--target` addresses (also in the plan).
    pub targets: Vec<String>,
    /// What the plan's refresh read of each recorded resource, sealed.
    pub refreshed: BTreeMap<String, ResourceState>,
    /// The plan.
    pub plan: Plan,
}

/// Which version of a state a plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateVersion {
    /// The state's lineage.
    pub lineage: String,
    /// The state's serial.
    pub serial: u64,
}

impl StateVersion {
    /// The version of `state`; `None` for a state never written (serial 0:
    /// every write increments it), whose lineage is made up anew on each
    /// load.
    pub fn of(state: &State) -> Option<StateVersion> {
        (state.serial > 0).then(|| StateVersion {
            lineage: state.lineage.clone(),
            serial: state.serial,
        })
    }
}

impl std::fmt::Display for StateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lineage {} serial {}", self.lineage, self.serial)
    }
}

/// Why a saved plan cannot be read or applied. Nothing has changed when
/// one is returned.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SavedPlanError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The saved plan's file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file looks like a saved plan but is not a usable one.
    #[error("{}: not a saved plan this meshform can apply: {message}", path.display())]
    Invalid {
        /// The saved plan's file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The stack's files or variables differ from those the plan was made
    /// from.
    #[error(
        "the saved plan is stale: stack {} or its variables changed since the plan was made (digest {saved}, now {now}); nothing was changed"
    , stack.display())]
    #[diagnostic(help("make a new plan with `meshform plan --out`"))]
    StackChanged {
        /// The stack file.
        stack: PathBuf,
        /// The digest recorded in the saved plan.
        saved: String,
        /// The digest of the stack as loaded now.
        now: String,
    },
    /// State was written since the plan was made (another apply, `state
    /// rm`, ...), or is another state.
    #[error(
        "the saved plan is stale: it was made against state {saved}, but state is now {now}; nothing was changed"
    )]
    #[diagnostic(help("make a new plan with `meshform plan --out`"))]
    StateChanged {
        /// The state version recorded in the saved plan.
        saved: String,
        /// The state version now.
        now: String,
    },
    /// State holds interrupted creates, which only a refreshing run resolves.
    #[error(
        "state holds interrupted creates ({0}), which only a refreshing run resolves: run `meshform apply STACK` first, then plan again"
    )]
    Pending(String),
    /// Recording what the plan's refresh read failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A sensitive variable the plan was made with was not given again.
    #[error(
        "the saved plan was made with the sensitive variable `{0}`, whose value is not saved: give it again with --var {0}=..."
    )]
    MissingSensitiveVar(String),
}

fn describe(version: Option<&StateVersion>) -> String {
    version.map_or_else(|| "(none yet)".to_string(), StateVersion::to_string)
}

/// The SHA-256 digest (hex) of what a plan of `stack` depends on besides
/// state and the cloud: the stack's name and region, every source file's
/// bytes in the order loaded (the root file, includes, `${file()}`s), and
/// every variable's resolved value.
pub fn stack_digest(stack: &Stack) -> String {
    let mut h = Sha256::new();
    // Lengths before contents, so that no two inputs hash alike by moving
    // bytes between fields.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(b"meshform stack digest v1");
    field(stack.name.as_bytes());
    field(stack.region.as_bytes());
    // Contents only, not paths: the same stack applied from another
    // directory (paths as given are relative to it) is the same stack.
    for source in &stack.sources {
        field(source.text.as_bytes());
    }
    for (name, value) in &stack.vars {
        field(name.as_bytes());
        field(value.to_string().as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SavedPlan {
    /// A saved plan of `plan`, made from `stack` (loaded from `stack_file`
    /// with `vars`) against `state`, whose refresh read `refreshed`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: &Plan,
        stack: &Stack,
        stack_file: &Path,
        vars: &[(String, String)],
        state_location: Option<&str>,
        state: &State,
        refreshed: BTreeMap<String, ResourceState>,
        azs: &[String],
    ) -> Result<SavedPlan, SavedPlanError> {
        if !state.pending.is_empty() {
            return Err(SavedPlanError::Pending(
                state.pending.keys().cloned().collect::<Vec<_>>().join(", "),
            ));
        }
        let (sensitive, plain): (Vec<_>, Vec<_>) = vars
            .iter()
            .cloned()
            .partition(|(name, _)| stack.sensitive_vars.contains(name));
        let mut sensitive_vars: Vec<String> = sensitive.into_iter().map(|(n, _)| n).collect();
        sensitive_vars.sort();
        sensitive_vars.dedup();
        let refreshed = refreshed
            .into_iter()
            .map(|(a, mut r)| {
                crate::sensitive::seal(&r.kind, &mut r.attributes);
                (a, r)
            })
            .collect();
        let shown = crate::sensitive::redact_value(&serde_json::to_value(plan).map_err(|e| {
            SavedPlanError::Invalid {
                path: stack_file.to_path_buf(),
                message: e.to_string(),
            }
        })?);
        let plan: Plan = serde_json::from_value(shown).map_err(|e| SavedPlanError::Invalid {
            path: stack_file.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(SavedPlan {
            format: SAVED_PLAN_KIND.to_string(),
            format_version: SAVED_PLAN_FORMAT,
            stack_file: stack_file.to_path_buf(),
            vars: plain,
            sensitive_vars,
            state_location: state_location.map(str::to_string),
            state: StateVersion::of(state),
            stack_digest: stack_digest(stack),
            azs: azs.to_vec(),
            targets: plan.targets.clone(),
            refreshed,
            plan,
        })
    }

    /// Writes the saved plan to `path` (mode 0600: it names state and may
    /// name resources' attributes).
    pub fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| SavedPlanError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Reads `path` if it is a saved plan; `None` when it is something else
    /// (a stack file). A file whose JSON says it is a saved plan but cannot
    /// be used (a newer format, a damaged file) is an error.
    pub fn sniff(path: &Path) -> Result<Option<SavedPlan>, SavedPlanError> {
        let invalid = |message: String| SavedPlanError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            // The stack loader reports a missing stack file its own way.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SavedPlanError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        // A stack is TOML, which never starts with `{`.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Ok(None);
        }
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        if value.get("format").and_then(|f| f.as_str()) != Some(SAVED_PLAN_KIND) {
            return Ok(None);
        }
        let version = value.get("format_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(SAVED_PLAN_FORMAT)) {
            return Err(invalid(format!(
                "saved-plan format {}, this meshform reads {SAVED_PLAN_FORMAT}",
                version.map_or_else(|| "(none)".to_string(), |v| v.to_string())
            )));
        }
        let saved: SavedPlan = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if saved.plan.format_version != PLAN_FORMAT_VERSION {
            return Err(invalid(format!(
                "plan format {}, this meshform makes {PLAN_FORMAT_VERSION}",
                saved.plan.format_version
            )));
        }
        Ok(Some(saved))
    }

    /// The `--var` values to load the stack with: the saved ones, then
    /// `given` (which must give every sensitive variable the plan was made
    /// with, and may give nothing else that changes the digest).
    pub fn vars_with(&self, given: &[(String, String)]) -> Result<Vec<(String, String)>, SavedPlanError> {
        if let Some(missing) = self
            .sensitive_vars
            .iter()
            .find(|name| !given.iter().any(|(n, _)| n == *name))
        {
            return Err(SavedPlanError::MissingSensitiveVar(missing.clone()));
        }
        Ok(self.vars.iter().chain(given).cloned().collect())
    }

    /// Prepares `store` (locked) for applying the plan: [`check`]s that
    /// `stack` and state are what it was made against (refusing with
    /// nothing written), then records what the plan's refresh read, as an
    /// apply's own refresh would have, in one write (none when state holds
    /// it already). Returns the plan to apply and the AZs it used.
    ///
    /// [`check`]: SavedPlan::check
    pub fn prepare(
        &self,
        stack: &Stack,
        store: &mut StateStore,
    ) -> Result<(Plan, Vec<String>), SavedPlanError> {
        self.check(stack, store.state())?;
        let changed: Vec<(String, ResourceState)> = self
            .refreshed
            .iter()
            .filter(|(a, r)| store.state().resources.get(*a) != Some(*r))
            .map(|(a, r)| (a.clone(), r.clone()))
            .collect();
        if !changed.is_empty() {
            store.update_labeled("saved-plan-refresh", |s| s.resources.extend(changed))?;
        }
        Ok((self.plan.clone(), self.azs.clone()))
    }

    /// Checks that `stack` (re-loaded as the plan's was) and `state` (loaded
    /// under the lock) are what the plan was made against.
    pub fn check(&self, stack: &Stack, state: &State) -> Result<(), SavedPlanError> {
        let now = stack_digest(stack);
        if now != self.stack_digest {
            return Err(SavedPlanError::StackChanged {
                stack: self.stack_file.clone(),
                saved: self.stack_digest.clone(),
                now,
            });
        }
        let version = StateVersion::of(state);
        if version != self.state {
            return Err(SavedPlanError::StateChanged {
                saved: describe(self.state.as_ref()),
                now: describe(version.as_ref()),
            });
        }
        if !state.pending.is_empty() {
            return Err(SavedPlanError::Pending(
                state.pending.keys().cloned().collect::<Vec<_>>().join(", "),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = r#"
[stack]
name = "saved"
region = "us-west-2"

[vars]
cidr = "10.0.0.0/16"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "${var.cidr}"
"#;

    fn load(text: &str, vars: &[(&str, &str)]) -> Stack {
        let options = crate::config::LoadOptions {
            vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        crate::config::load_str(Path::new("saved.toml"), text.to_string(), &options).unwrap()
    }

    #[test]
    fn the_digest_changes_with_the_files_and_the_variables_only() {
        let base = stack_digest(&load(STACK, &[]));
        assert_eq!(base, stack_digest(&load(STACK, &[])), "deterministic");
        assert_eq!(base.len(), 64);
        type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
        let cases: &[Case] = &[
            ("a comment", format!("{STACK}# note\n"), vec![]),
            ("a variable", STACK.to_string(), vec![("cidr", "10.1.0.0/16")]),
        ];
        for (what, text, vars) in cases {
            assert_ne!(base, stack_digest(&load(text, vars)), "{what} changes the digest");
        }
        assert_eq!(
            base,
            stack_digest(&load(STACK, &[("cidr", "10.0.0.0/16")])),
            "the default given again is the same value"
        );
    }

    #[test]
    fn check_refuses_another_state_or_stack() {
        let stack = load(STACK, &[]);
        let mut state = State::new("saved");
        let empty = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: "saved".into(),
            region: "us-west-2".into(),
            destroy: false,
            resources: vec![],
            outputs: vec![],
            summary: Default::default(),
            targets: vec![],
            partial: false,
            left_out: vec![],
        };
        let path = Path::new("saved.toml");
        // A state never written: any other never-written state matches.
        let saved = SavedPlan::new(&empty, &stack, path, &[], None, &state, BTreeMap::new(), &[]).unwrap();
        assert_eq!(saved.state, None);
        saved.check(&stack, &State::new("saved")).unwrap();
        state.serial = 3;
        let saved = SavedPlan::new(&empty, &stack, path, &[], None, &state, BTreeMap::new(), &[]).unwrap();
        saved.check(&stack, &state).unwrap();
        let mut later = state.clone();
        later.serial = 4;
        let err = saved.check(&stack, &later).unwrap_err();
        assert!(matches!(err, SavedPlanError::StateChanged { .. }), "{err}");
        assert!(err.to_string().contains("serial 3"), "{err}");
        let mut other = state.clone();
        other.lineage = "another".into();
        assert!(matches!(
            saved.check(&stack, &other),
            Err(SavedPlanError::StateChanged { .. })
        ));
        let edited = load(&format!("{STACK}\n"), &[]);
        assert!(matches!(
            saved.check(&edited, &state),
            Err(SavedPlanError::StackChanged { .. })
        ));
        // Interrupted creates: no saved plan is made, none applies.
        let mut pending = state.clone();
        pending.pending.insert(
            "vpc".into(),
            crate::state::PendingCreate::new("aws.ec2.vpc", crate::Attrs::new(), vec![]),
        );
        let err = saved.check(&stack, &pending).unwrap_err();
        assert!(matches!(err, SavedPlanError::Pending(_)), "{err}");
        let err =
            SavedPlan::new(&empty, &stack, path, &[], None, &pending, BTreeMap::new(), &[]).unwrap_err();
        assert!(err.to_string().contains("interrupted creates (vpc)"), "{err}");
    }

    #[test]
    fn sensitive_values_are_not_saved_and_must_be_given_again() {
        const SECRET: &str = "s3nt1nel-saved-plan";
        let text = format!(
            "{STACK}\n[vars.token]\ntype = \"string\"\nsensitive = true\n\n[resource.vpc2]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.9.0.0/16\"\ntags = {{ Token = \"${{var.token}}\" }}\n"
        );
        let given = [("token", SECRET), ("cidr", "10.0.0.0/16")];
        let stack = load(&text, &given);
        let vars: Vec<(String, String)> = given
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: "saved".into(),
            region: "us-west-2".into(),
            destroy: false,
            resources: vec![],
            outputs: vec![crate::plan::OutputChange {
                name: "token".into(),
                before: None,
                after: Some(serde_json::json!(SECRET)),
                after_unknown: false,
            }],
            summary: Default::default(),
            targets: vec![],
            partial: false,
            left_out: vec![],
        };
        plan.summarize();
        let mut state = State::new("saved");
        state.serial = 1;
        let refreshed = BTreeMap::from([(
            "vpc2".to_string(),
            ResourceState {
                kind: "aws.ec2.vpc".into(),
                id: "vpc-2".into(),
                attributes: crate::Attrs::from_iter([(
                    "tags".to_string(),
                    serde_json::json!({"Token": SECRET}),
                )]),
                dependencies: vec![],
            },
        )]);
        let saved = SavedPlan::new(
            &plan,
            &stack,
            Path::new("saved.toml"),
            &vars,
            None,
            &state,
            refreshed,
            &[],
        )
        .unwrap();
        let written = serde_json::to_string(&saved).unwrap();
        assert!(!written.contains(SECRET), "{written}");
        assert_eq!(saved.sensitive_vars, ["token"]);
        assert_eq!(saved.vars, [("cidr".to_string(), "10.0.0.0/16".to_string())]);
        let err = saved.vars_with(&[]).unwrap_err();
        assert!(
            err.to_string().contains("give it again with --var token=..."),
            "{err}"
        );
        let again = saved
            .vars_with(&[("token".to_string(), SECRET.to_string())])
            .unwrap();
        saved
            .check(
                &load(&text, &[("cidr", "10.0.0.0/16"), ("token", SECRET)]),
                &state,
            )
            .unwrap();
        assert_eq!(again.len(), 2);
        // Another secret is another stack.
        let other = load(&text, &[("token", "an0ther-s3cret-value")]);
        assert!(matches!(
            saved.check(&other, &state),
            Err(SavedPlanError::StackChanged { .. })
        ));
    }

    #[test]
    fn prepare_checks_then_records_the_plans_refresh_and_a_plan_applies_once() {
        let dir = crate::state::test_support::TestDir::new("prepare");
        let path = dir.path().join("saved.json");
        let holder = || crate::state::LockHolder::current("test");
        let (mut store, _) = StateStore::open(&path, "saved", holder()).unwrap();
        let recorded = ResourceState {
            kind: "aws.ec2.vpc".into(),
            id: "vpc-1".into(),
            attributes: crate::Attrs::from_iter([(
                "cidr_block".to_string(),
                serde_json::json!("10.0.0.0/16"),
            )]),
            dependencies: vec![],
        };
        store
            .update(|s| {
                s.resources.insert("vpc".into(), recorded.clone());
            })
            .unwrap();
        let stack = load(STACK, &[]);
        let mut read = recorded.clone();
        read.attributes
            .insert("tags".into(), serde_json::json!({"Drift": "yes"}));
        let plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: "saved".into(),
            region: "us-west-2".into(),
            destroy: false,
            resources: vec![],
            outputs: vec![],
            summary: Default::default(),
            targets: vec![],
            partial: false,
            left_out: vec![],
        };
        let refreshed = BTreeMap::from([("vpc".to_string(), read.clone())]);
        let saved = SavedPlan::new(
            &plan,
            &stack,
            Path::new("saved.toml"),
            &[],
            None,
            store.state(),
            refreshed,
            &["us-west-2a".into()],
        )
        .unwrap();
        // A stale stack: refused before anything is written.
        let serial = store.state().serial;
        let edited = load(&format!("{STACK}# edited\n"), &[]);
        assert!(matches!(
            saved.prepare(&edited, &mut store),
            Err(SavedPlanError::StackChanged { .. })
        ));
        assert_eq!(store.state().serial, serial);
        let (_, azs) = saved.prepare(&stack, &mut store).unwrap();
        assert_eq!(azs, ["us-west-2a"]);
        assert_eq!(
            store.state().resources["vpc"],
            read,
            "what the plan's refresh read"
        );
        assert_eq!(store.state().serial, serial + 1);
        // That write makes the plan stale.
        assert!(matches!(
            saved.prepare(&stack, &mut store),
            Err(SavedPlanError::StateChanged { .. })
        ));
    }

    #[test]
    fn sniff_tells_a_saved_plan_from_a_stack() {
        let dir = crate::state::test_support::TestDir::new("sniff");
        let stack_path = dir.path().join("s.toml");
        std::fs::write(&stack_path, STACK).unwrap();
        assert!(SavedPlan::sniff(&stack_path).unwrap().is_none());
        let stack = load(STACK, &[]);
        let state = State::new("saved");
        let plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: "saved".into(),
            region: "us-west-2".into(),
            destroy: false,
            resources: vec![],
            outputs: vec![],
            summary: Default::default(),
            targets: vec![],
            partial: false,
            left_out: vec![],
        };
        let saved = SavedPlan::new(
            &plan,
            &stack,
            &stack_path,
            &[],
            None,
            &state,
            BTreeMap::new(),
            &["a".into()],
        )
        .unwrap();
        let out = dir.path().join("p.plan");
        saved.write(&out).unwrap();
        assert_eq!(SavedPlan::sniff(&out).unwrap(), Some(saved));
        let text = std::fs::read_to_string(&out).unwrap().replace(
            &format!("\"format_version\": {SAVED_PLAN_FORMAT},\n  \"stack_file\""),
            "\"format_version\": 99,\n  \"stack_file\"",
        );
        std::fs::write(&out, text).unwrap();
        let err = SavedPlan::sniff(&out).unwrap_err();
        assert!(err.to_string().contains("saved-plan format 99"), "{err}");
    }
}

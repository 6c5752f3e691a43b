//! The plan as data: what will change, attribute by attribute. Serialised
//! as the versioned JSON that `meshform plan --json` prints (documented in
//! `docs/plan-format.md`).

use serde::{Deserialize, Serialize};

use crate::Value;

/// Version of the plan's JSON format. Bumped on any incompatible change.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// A computed plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub stack: String,
    pub region: String,
    /// True for a plan that deletes everything (`meshform destroy`).
    pub destroy: bool,
    /// One entry per resource in the stack or in state, in dependency order
    /// (deletions last, in reverse dependency order).
    pub resources: Vec<ResourceChange>,
    pub outputs: Vec<OutputChange>,
    pub summary: Summary,
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    /// Delete then create, because an attribute cannot change in place.
    Replace,
    Delete,
}

impl Action {
    /// The symbol shown before the resource in human output.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One resource's planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub action: Action,
    /// The cloud id, for resources that exist.
    pub id: Option<String>,
    /// Why, when it is not obvious (for example "deleted outside meshform").
    pub reason: Option<String>,
    /// For a replacement: the attributes whose change forces it.
    pub replaced_because: Vec<String>,
    /// Changed attributes (for a create: every configured attribute).
    pub changes: Vec<AttrChange>,
    /// Resources this one depends on (from the stack, or from state for a delete).
    pub dependencies: Vec<String>,
}

/// One attribute's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    pub name: String,
    /// The live value, `null` when the resource does not exist or the
    /// attribute is not set.
    pub before: Option<Value>,
    /// The desired value; `null` with `after_unknown` when known only after apply.
    pub after: Option<Value>,
    pub after_unknown: bool,
    pub forces_replacement: bool,
}

/// One output's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputChange {
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub after_unknown: bool,
}

impl OutputChange {
    pub fn is_change(&self) -> bool {
        self.after_unknown || self.before != self.after
    }
}

/// Counts by action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
    pub outputs_changed: usize,
}

impl Plan {
    /// True when applying would change anything (resources or outputs).
    pub fn has_changes(&self) -> bool {
        let s = &self.summary;
        s.create + s.update + s.replace + s.delete + s.outputs_changed > 0
    }

    /// The change for `address`.
    pub fn change(&self, address: &str) -> Option<&ResourceChange> {
        self.resources.iter().find(|r| r.address == address)
    }

    /// Recounts the summary from the changes.
    pub fn summarize(&mut self) {
        let mut s = Summary::default();
        for r in &self.resources {
            match r.action {
                Action::NoOp => s.unchanged += 1,
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
            }
        }
        s.outputs_changed = self.outputs.iter().filter(|o| o.is_change()).count();
        self.summary = s;
    }
}

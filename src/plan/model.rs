//! The plan as data: what will change, attribute by attribute. Serialised
//! as the versioned JSON that `meshform plan --json` prints (documented in
//! `docs/plan-format.md`).

use serde::{Deserialize, Serialize};

use crate::Value;

/// Version of the plan's JSON format. Bumped on any incompatible change.
/// Version 2: a replacement may create before it destroys
/// (`replace_order`), updates may detach first (`detach_from`), creates may
/// wait for deletions (`after_delete_of`, `early_delete`), and resources
/// that could not be refreshed say so (`not_refreshed`).
/// Version 3: an update that takes something away waits for the dependents
/// that change with it (`contract_after`), after an interim update that
/// keeps it (`expand_first`): make-before-break.
/// Version 4: a plan restricted by `--target` says so (`partial`,
/// `targets`, `left_out`); see [`crate::plan::restrict`].
pub const PLAN_FORMAT_VERSION: u32 = 4;

/// A computed plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT_VERSION`] when the plan was made; readers should refuse
    /// versions they do not know.
    pub format_version: u32,
    /// The stack's `[stack] name`.
    pub stack: String,
    /// The stack's AWS region.
    pub region: String,
    /// True for a plan that deletes everything (`meshform destroy`).
    pub destroy: bool,
    /// One entry per resource in the stack or in state, in dependency order
    /// (deletions last, in reverse dependency order).
    pub resources: Vec<ResourceChange>,
    /// One entry per output in the stack (by name), then outputs only state
    /// still has (being removed).
    pub outputs: Vec<OutputChange>,
    /// Counts by action; kept in step with `resources` and `outputs` by
    /// [`Plan::summarize`].
    pub summary: Summary,
    /// The `--target` addresses the plan was restricted to (sorted); empty
    /// for a whole plan.
    #[serde(default)]
    pub targets: Vec<String>,
    /// True when the plan was restricted by `--target`: it holds only the
    /// targets and what they need (see [`crate::plan::restrict`]); other
    /// changes are left out, not planned as unchanged.
    #[serde(default)]
    pub partial: bool,
    /// For a partial plan: the resources that had a change the plan leaves
    /// out (not in `resources`).
    #[serde(default)]
    pub left_out: Vec<String>,
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The live resource matches the stack.
    NoOp,
    /// The resource does not exist yet, or was deleted outside meshform.
    Create,
    /// Some attributes differ and every one can change in place.
    Update,
    /// Delete and create, because an attribute cannot change in place; in
    /// the order [`ResourceChange::replace_order`] gives.
    Replace,
    /// The resource is in state but not in the stack, or the plan destroys
    /// everything.
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
    /// The resource's name in the stack (`[resource.<address>]`) or in state.
    pub address: String,
    /// The resource type, such as `aws.ec2.subnet`; `type` in JSON.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happens to the resource.
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
    /// For a replacement: whether the new object is created before the old
    /// one is deleted, or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_order: Option<ReplaceOrder>,
    /// For an update: references to old objects that are deleted early
    /// (see `early_delete`). The resource first stops referring to them (an
    /// update that only removes these values from its lists), then gets its
    /// full update once their successors exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detach_from: Vec<Detach>,
    /// For a create or replacement: resources whose old objects must be
    /// deleted first because the new object could not exist beside them
    /// (the same unique name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_delete_of: Vec<String>,
    /// For a delete or replacement: the old object is deleted before any
    /// new object is created, because a new object needs its name, or it
    /// depends on such an object. What refers to it detaches or goes first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub early_delete: bool,
    /// For an update that takes away something a dependent may name (a
    /// DestinationRule losing a subset): the dependents changed in the same
    /// apply that are updated before it, so that none still names what it
    /// removes when it goes. Make-before-break.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contract_after: Vec<String>,
    /// With `contract_after`: an interim update goes first that adds what
    /// the update adds while keeping what it removes (the kind's
    /// `expand`), so that the dependents find what they will name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expand_first: bool,
    /// Why the live object could not be read (for example its cluster is
    /// unreachable); the plan then compares the stack with the attributes
    /// state recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_refreshed: Option<String>,
}

/// References an update removes first, before the object they point to is
/// deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detach {
    /// The resource whose old object is deleted early.
    pub from: String,
    /// The list attribute the references are removed from.
    pub attribute: String,
    /// The values removed: the old object's id, ARN or other attributes
    /// the list holds.
    pub values: Vec<String>,
}

/// The order of a replacement's two steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceOrder {
    /// The new object is created first and the resources that refer to the
    /// old one are moved to it; then the old one is deleted.
    CreateBeforeDestroy,
    /// The old object is deleted first (what refers to it goes or detaches
    /// before), then the new one is created.
    DestroyBeforeCreate,
}

impl ReplaceOrder {
    /// How the order reads in plan output.
    pub fn describe(self) -> &'static str {
        match self {
            ReplaceOrder::CreateBeforeDestroy => "create before destroy",
            ReplaceOrder::DestroyBeforeCreate => "destroy before create",
        }
    }
}

/// One attribute's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    /// The attribute's name.
    pub name: String,
    /// The live value, `null` when the resource does not exist or the
    /// attribute is not set.
    pub before: Option<Value>,
    /// The desired value; `null` with `after_unknown` when known only after apply.
    pub after: Option<Value>,
    /// The value depends on something that does not exist yet (such as the id
    /// of a resource being created); `after` is then `None`.
    pub after_unknown: bool,
    /// Changing this attribute replaces the resource. Always false in a create.
    pub forces_replacement: bool,
    /// When `after_unknown` holds but only parts of the value are unknown
    /// (a manifest whose image names a repository being created): the
    /// value with each unknown part `null`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_partial: Option<Value>,
    /// The unknown parts of `after_partial`, as JSON Pointers (RFC 6901)
    /// into it, in the order they appear in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_unknown_paths: Vec<String>,
}

/// One output's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputChange {
    /// The output's name, as in `[output.<name>]`.
    pub name: String,
    /// The value recorded by the last apply; `None` if there is none.
    pub before: Option<Value>,
    /// The new value; `None` when it is known only after apply or the output is
    /// being removed from the stack.
    pub after: Option<Value>,
    /// The value is known only after apply.
    pub after_unknown: bool,
}

impl OutputChange {
    /// Whether the output changes: its value is unknown until apply or differs
    /// from the recorded one.
    pub fn is_change(&self) -> bool {
        // A recorded value state keeps sealed (see `crate::sensitive`)
        // matches the value it was made from.
        self.after_unknown || !crate::sensitive::same(self.before.as_ref(), self.after.as_ref())
    }
}

/// Counts by action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources to update in place.
    pub update: usize,
    /// Resources to delete and create again.
    pub replace: usize,
    /// Resources to delete.
    pub delete: usize,
    /// Resources whose action is [`Action::NoOp`].
    pub unchanged: usize,
    /// Outputs for which [`OutputChange::is_change`] holds.
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

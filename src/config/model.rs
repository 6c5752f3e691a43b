//! The validated stack: what a stack file says, with variables substituted
//! and every reference checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::diagnostics::{SourceFile, Span};
use super::expr::Expr;
use crate::Value;
use crate::provider::KindDef;

/// A loaded, validated stack.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The stack's name from the root file's `[stack] name`: letters, digits,
    /// `-` and `_` only.
    pub name: String,
    /// The AWS region every resource lives in, from the root file's
    /// `[stack] region` (such as "us-west-2"); never empty.
    pub region: String,
    /// Where the stack's state is kept, from the root file's `[stack]
    /// state` (a relative file path there is relative to the stack file);
    /// `None` for the default. A `--state` argument overrides it.
    pub state: Option<crate::state::StateLocation>,
    /// Variables after `--var` overrides.
    pub vars: BTreeMap<String, Value>,
    /// The variables declared `sensitive = true`: their values are
    /// registered with [`crate::sensitive`] when the stack is loaded.
    pub sensitive_vars: std::collections::BTreeSet<String>,
    /// Every resource of the stack and the files it includes, by name.
    pub resources: BTreeMap<String, Resource>,
    /// Every output of the stack and the files it includes, by name.
    pub outputs: BTreeMap<String, Output>,
    /// Resources left out of this run with `enabled = false`.
    pub disabled: std::collections::BTreeSet<String>,
    /// `[shift.<var>]` declarations for `meshform shift`, by variable.
    pub shifts: BTreeMap<String, crate::shift::ShiftDecl>,
    /// The files the stack was read from: the root first, then the files it
    /// includes.
    pub sources: Vec<Arc<SourceFile>>,
}

/// One `[resource.<name>]` table.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The resource's address: its name in the stack.
    pub name: String,
    /// The resource kind its `type` names; the attributes were checked against
    /// its schema.
    pub kind: &'static KindDef,
    /// Configured attributes (not `type`, `depends_on`, `enabled` or
    /// `create_before_destroy`).
    pub attrs: BTreeMap<String, Attr>,
    /// Explicit dependencies, besides those that references imply.
    pub depends_on: Vec<(String, Span)>,
    /// `create_before_destroy = true`: when the resource must be replaced,
    /// the new object is made before the old one is deleted.
    pub create_before_destroy: bool,
    /// Where the resource's name is written.
    pub span: Span,
}

impl Resource {
    /// Names of the resources this one depends on: referenced ones and
    /// `depends_on`, sorted and without duplicates.
    pub fn dependencies(&self) -> Vec<String> {
        let mut deps: Vec<String> = self
            .attrs
            .values()
            .flat_map(|a| a.expr.references())
            .filter_map(|r| match &r.reference {
                super::Reference::Resource { name, .. } => Some(name.clone()),
                super::Reference::Az(_) => None,
            })
            .chain(self.depends_on.iter().map(|(n, _)| n.clone()))
            .collect();
        deps.sort();
        deps.dedup();
        deps
    }
}

/// A configured attribute.
#[derive(Debug, Clone)]
pub struct Attr {
    /// The value as written, with variables and stack facts substituted.
    pub expr: Expr,
    /// Where the value is written.
    pub span: Span,
}

/// One `[output.<name>]` table.
#[derive(Debug, Clone)]
pub struct Output {
    /// The output's name, as in `[output.<name>]`.
    pub name: String,
    /// The output's `value`, with variables and stack facts substituted.
    pub expr: Expr,
    /// The output's `description`; `None` when it is absent or not a string.
    pub description: Option<String>,
    /// Where the output's name is written.
    pub span: Span,
}

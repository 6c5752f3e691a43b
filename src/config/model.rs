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
    pub name: String,
    pub region: String,
    /// Variables after `--var` overrides.
    pub vars: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, Resource>,
    pub outputs: BTreeMap<String, Output>,
    /// The files the stack was read from: the root first, then the files it
    /// includes.
    pub sources: Vec<Arc<SourceFile>>,
}

/// One `[resource.<name>]` table.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The resource's address: its name in the stack.
    pub name: String,
    pub kind: &'static KindDef,
    /// Configured attributes (not `type` or `depends_on`).
    pub attrs: BTreeMap<String, Attr>,
    /// Explicit dependencies, besides those that references imply.
    pub depends_on: Vec<(String, Span)>,
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
    pub expr: Expr,
    /// Where the value is written.
    pub span: Span,
}

/// One `[output.<name>]` table.
#[derive(Debug, Clone)]
pub struct Output {
    pub name: String,
    pub expr: Expr,
    pub description: Option<String>,
    pub span: Span,
}

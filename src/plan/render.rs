//! Human-readable plan output: one block per changed resource with
//! `+`, `~`, `-/+` or `-`, field-level `before -> after`, and a summary.

use std::fmt::Write;

use super::model::{Action, AttrChange, Plan};
use crate::Value;

const UNKNOWN: &str = "(known after apply)";

/// Renders the plan for a terminal.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "No changes. The live resources match stack `{}`.",
            plan.stack
        );
        return out;
    }
    let _ = writeln!(
        out,
        "meshform will perform these actions on stack `{}` ({}):\n",
        plan.stack, plan.region
    );
    for r in plan.resources.iter().filter(|r| r.action != Action::NoOp) {
        let id = r.id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
        let _ = write!(out, "  {} {} ({}){id}", r.action.symbol(), r.address, r.kind);
        match r.action {
            Action::Replace => {
                let _ = writeln!(
                    out,
                    "  must be replaced: {} cannot change in place",
                    r.replaced_because.join(", ")
                );
            }
            _ => {
                let _ = writeln!(out);
            }
        }
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "      # {reason}");
        }
        let width = r.changes.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &r.changes {
            let _ = writeln!(out, "      {:width$}  {}", c.name, describe(r.action, c));
        }
    }
    let changed_outputs: Vec<_> = plan.outputs.iter().filter(|o| o.is_change()).collect();
    if !changed_outputs.is_empty() {
        let _ = writeln!(out, "\n  Changes to outputs:");
        for o in changed_outputs {
            let after = if o.after_unknown {
                UNKNOWN.to_string()
            } else {
                opt(&o.after)
            };
            let _ = writeln!(out, "    {} = {} -> {after}", o.name, opt(&o.before));
        }
    }
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} to replace, {} to delete.",
        s.create, s.update, s.replace, s.delete
    );
    out
}

fn describe(action: Action, c: &AttrChange) -> String {
    let after = if c.after_unknown {
        UNKNOWN.to_string()
    } else {
        opt(&c.after)
    };
    let forces = if c.forces_replacement {
        "   # forces replacement"
    } else {
        ""
    };
    match action {
        Action::Create => after,
        _ => format!("{} -> {after}{forces}", opt(&c.before)),
    }
}

fn opt(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "(none)".to_string(),
        Some(v) => v.to_string(),
    }
}

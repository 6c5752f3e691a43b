//! Human-readable plan output: one block per changed resource with
//! `+`, `~`, `-/+` or `-`, field-level `before -> after`, and a summary.

use std::fmt::Write;

use super::model::{Action, AttrChange, Plan};
use super::partial::display_path;
use crate::Value;

const UNKNOWN: &str = "(known after apply)";

/// Renders the plan for a terminal.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    write_partial(&mut out, plan);
    if !plan.has_changes() {
        write_not_refreshed(&mut out, plan);
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
    write_not_refreshed(&mut out, plan);
    for r in plan.resources.iter().filter(|r| r.action != Action::NoOp) {
        let id = r.id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
        let _ = write!(out, "  {} {} ({}){id}", r.action.symbol(), r.address, r.kind);
        match r.action {
            Action::Replace => {
                let order = r
                    .replace_order
                    .map(|o| format!(" ({})", o.describe()))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  must be replaced{order}: {} cannot change in place",
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
        for d in &r.detach_from {
            let _ = writeln!(
                out,
                "      # first removes {} from {} (the old {} is deleted before its successor is created)",
                d.values.join(", "),
                d.attribute,
                d.from
            );
        }
        if !r.after_delete_of.is_empty() {
            let _ = writeln!(
                out,
                "      # created after {} is deleted: they cannot exist at once",
                r.after_delete_of.join(", ")
            );
        }
        if !r.contract_after.is_empty() {
            let first = if r.expand_first {
                "first gains what it adds and keeps what it removes; "
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "      # make-before-break: {first}removes only after {} changed",
                r.contract_after.join(", ")
            );
        }
        if r.early_delete && r.action == Action::Delete {
            let _ = writeln!(out, "      # deleted before anything is created");
        }
        let lines: Vec<(String, String)> = r.changes.iter().flat_map(|c| lines_for(r.action, c)).collect();
        let width = lines.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, text) in lines {
            let _ = writeln!(out, "      {name:width$}  {text}");
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

/// Says that a plan restricted by `--target` is partial, and what it
/// leaves out.
fn write_partial(out: &mut String, plan: &Plan) {
    if !plan.partial {
        return;
    }
    let targets = plan.targets.join(", ");
    let what = if plan.destroy {
        "what depends on it"
    } else {
        "what it depends on"
    };
    let _ = writeln!(
        out,
        "Partial plan: only {targets} and {what}; other changes are left out."
    );
    if !plan.left_out.is_empty() {
        let _ = writeln!(
            out,
            "  left out: {} (a plan without --target shows them)",
            plan.left_out.join(", ")
        );
    }
    let _ = writeln!(out);
}

/// Warns about resources planned from recorded attributes because their
/// cloud could not be reached.
fn write_not_refreshed(out: &mut String, plan: &Plan) {
    let stale: Vec<_> = plan
        .resources
        .iter()
        .filter_map(|r| r.not_refreshed.as_ref().map(|why| (&r.address, why)))
        .collect();
    for (address, why) in &stale {
        let _ = writeln!(out, "Warning: {address} could not be refreshed: {why}");
    }
    if !stale.is_empty() {
        let _ = writeln!(out, "(planned from the attributes state recorded)\n");
    }
}

/// Longest value shown on one line of a created resource; longer ones are
/// cut (the JSON plan has them whole).
const MAX_SHOWN: usize = 160;

/// The lines for one attribute change. When a table or list changes in
/// place, each differing leaf gets its own line with its path (for example
/// `yaml[2].spec.replicas: 1 -> 2`), so a one-field change in a large
/// document reads as one line.
fn lines_for(action: Action, c: &AttrChange) -> Vec<(String, String)> {
    if c.after_unknown
        && let Some(partial) = &c.after_partial
    {
        return partial_lines(action, c, partial);
    }
    if let (Action::Update | Action::Replace, Some(before), Some(after), false) =
        (action, &c.before, &c.after, c.after_unknown)
        && (before.is_object() || before.is_array())
        && (after.is_object() || after.is_array())
    {
        let mut leaves = Vec::new();
        leaf_diff(&c.name, before, after, &mut leaves);
        let forces = if c.forces_replacement {
            "   # forces replacement"
        } else {
            ""
        };
        if !leaves.is_empty() && leaves.len() <= 20 {
            return leaves
                .into_iter()
                .map(|(path, b, a)| (path, format!("{} -> {}{forces}", show(b), show(a))))
                .collect();
        }
    }
    vec![(c.name.clone(), describe(action, c))]
}

/// The lines for a value partly known until apply: what changes of the
/// known parts, with each unknown leaf on a line of its own as
/// `(known after apply)`. For a create, or when too much changes, the
/// value on one line (unknown leaves `null`), then the unknown leaves.
fn partial_lines(action: Action, c: &AttrChange, partial: &Value) -> Vec<(String, String)> {
    let forces = if c.forces_replacement {
        "   # forces replacement"
    } else {
        ""
    };
    let unknown: Vec<(String, &String)> = c
        .after_unknown_paths
        .iter()
        .map(|p| (display_path(&c.name, partial, p), p))
        .collect();
    if let (Action::Update | Action::Replace, Some(before)) = (action, &c.before)
        && (before.is_object() || before.is_array())
        && (partial.is_object() || partial.is_array())
    {
        let mut leaves = Vec::new();
        leaf_diff(&c.name, before, partial, &mut leaves);
        let mut lines: Vec<(String, String)> = leaves
            .into_iter()
            .map(|(path, b, a)| {
                let after = if unknown.iter().any(|(u, _)| *u == path) {
                    UNKNOWN.to_string()
                } else {
                    show(a)
                };
                (path, format!("{} -> {after}{forces}", show(b)))
            })
            .collect();
        for (path, pointer) in &unknown {
            if !lines.iter().any(|(p, _)| p == path) {
                let text = format!("{} -> {UNKNOWN}{forces}", show(before.pointer(pointer)));
                lines.push((path.clone(), text));
            }
        }
        if !lines.is_empty() && lines.len() <= 20 {
            return lines;
        }
    }
    let whole = match action {
        Action::Create => show(Some(partial)),
        _ => format!("{} -> {}{forces}", show(c.before.as_ref()), show(Some(partial))),
    };
    std::iter::once((c.name.clone(), whole))
        .chain(unknown.into_iter().map(|(path, _)| (path, UNKNOWN.to_string())))
        .collect()
}

/// Differing leaves of two JSON values, with their paths.
fn leaf_diff<'a>(
    path: &str,
    before: &'a Value,
    after: &'a Value,
    out: &mut Vec<(String, Option<&'a Value>, Option<&'a Value>)>,
) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                match (b.get(k), a.get(k)) {
                    (Some(x), Some(y)) => leaf_diff(&sub, x, y, out),
                    (x, y) => out.push((sub, x, y)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                leaf_diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (b, a) if b != a => out.push((path.to_string(), Some(b), Some(a))),
        _ => {}
    }
}

fn show(v: Option<&Value>) -> String {
    let text = opt(&v.cloned());
    if text.chars().count() > MAX_SHOWN {
        let cut: String = text.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    } else {
        text
    }
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
        Action::Create if after.chars().count() > MAX_SHOWN => show(c.after.as_ref()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AttrChange, PLAN_FORMAT_VERSION, Plan, ResourceChange, Summary};

    #[test]
    fn nested_changes_are_shown_leaf_by_leaf() {
        let before =
            serde_json::json!([{"kind": "Deployment", "spec": {"image": "redis:4.0.2", "replicas": 1}}]);
        let after =
            serde_json::json!([{"kind": "Deployment", "spec": {"image": "redis:4.0.3", "replicas": 1}}]);
        let mut plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: "s".into(),
            region: "r".into(),
            destroy: false,
            resources: vec![ResourceChange {
                address: "app".into(),
                kind: "kube.manifest".into(),
                action: Action::Update,
                id: Some("x".into()),
                reason: None,
                replaced_because: vec![],
                changes: vec![AttrChange {
                    name: "yaml".into(),
                    before: Some(before),
                    after: Some(after),
                    after_unknown: false,
                    forces_replacement: false,
                    after_partial: None,
                    after_unknown_paths: vec![],
                }],
                dependencies: vec![],
                replace_order: None,
                detach_from: vec![],
                after_delete_of: vec![],
                early_delete: false,
                contract_after: vec![],
                expand_first: false,
                not_refreshed: None,
            }],
            outputs: vec![],
            summary: Summary::default(),
            targets: vec![],
            partial: false,
            left_out: vec![],
        };
        plan.summarize();
        let text = render(&plan);
        assert!(
            text.contains("yaml[0].spec.image  \"redis:4.0.2\" -> \"redis:4.0.3\""),
            "{text}"
        );
        assert!(!text.contains("replicas"), "{text}");
    }
}

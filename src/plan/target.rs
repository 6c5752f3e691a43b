//! Targeted plans (`--target ADDRESS`, repeatable): a computed plan
//! restricted to some resources and what they need. Pure.
//!
//! - **plan and apply**: each target brings in what it depends on,
//!   transitively: the stack's dependencies for a resource of the stack,
//!   the dependencies state recorded for one only in state (a delete). A
//!   change that can only run with another change brings that one in too:
//!   a create waiting for a delete (`after_delete_of`), a detach for the
//!   delete it is for, a make-before-break update for the dependents it
//!   waits for (`contract_after`), and a resource brought in that is
//!   deleted or replaced brings in the changes of what depends on it (they
//!   must let go of it first; by the stack's dependencies, and by those
//!   state recorded, since a resource may still refer to what the stack no
//!   longer names).
//! - **destroy**: each target brings in what depends on it, transitively,
//!   by the dependencies state recorded (dependents are deleted first).
//!
//! Everything else is **left out**: removed from `plan.resources` (so the
//! step graph has no step for it, and apply never touches it), its
//! address listed in `plan.left_out` when it had a change. Outputs that
//! depend on a left-out change keep the value recorded by the last apply
//! (`after` = `before`); so does, in a partial destroy, every output that
//! depends on nothing destroyed. The plan says it is partial (`partial`,
//! `targets`), and so does its rendering.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Action, Plan};
use crate::config::{Reference, Stack};

/// Why a plan cannot be restricted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum TargetError {
    /// A target names no resource of the stack or of state.
    #[error("--target {address}: no resource `{address}` in the stack or in state{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    Unknown {
        /// The address given.
        address: String,
        /// The closest known address, if one is close.
        suggestion: Option<String>,
    },
}

/// The resources each output of `stack` refers to, by output name (for
/// [`restrict`]).
pub fn output_dependencies(stack: &Stack) -> BTreeMap<String, BTreeSet<String>> {
    stack
        .outputs
        .iter()
        .map(|(name, o)| {
            let refs = o
                .expr
                .references()
                .into_iter()
                .filter_map(|r| match &r.reference {
                    Reference::Resource { name, .. } => Some(name.clone()),
                    Reference::Az(_) => None,
                })
                .collect();
            (name.clone(), refs)
        })
        .collect()
}

/// Checks that every target is one of `known` (the stack's and state's
/// addresses), before anything is read or written: an unknown one is an
/// error naming it, with the closest known address.
pub fn check_targets<'a>(
    targets: &[String],
    known: impl IntoIterator<Item = &'a str>,
) -> Result<(), TargetError> {
    let known: BTreeSet<&str> = known.into_iter().collect();
    match targets.iter().find(|t| !known.contains(t.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(TargetError::Unknown {
            address: unknown.clone(),
            suggestion: crate::config::suggest(unknown, known.iter().copied()).map(str::to_string),
        }),
    }
}

/// Restricts `plan` to `targets` and what they need (see the module docs).
/// `outputs` gives the resources each output refers to (see
/// [`output_dependencies`]); `recorded`, the dependencies state records
/// for each resource (the refreshed prior's). No targets leaves the plan
/// as it is. An unknown target is an error and leaves `plan` unchanged.
pub fn restrict(
    plan: &mut Plan,
    targets: &[String],
    outputs: &BTreeMap<String, BTreeSet<String>>,
    recorded: &BTreeMap<String, Vec<String>>,
) -> Result<(), TargetError> {
    if targets.is_empty() {
        return Ok(());
    }
    check_targets(targets, plan.resources.iter().map(|r| r.address.as_str()))?;
    let included = if plan.destroy {
        dependents_closure(plan, targets)
    } else {
        needs_closure(plan, targets, recorded)
    };
    let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.resources)
        .into_iter()
        .partition(|r| included.contains(&r.address));
    let left_out_changes: BTreeSet<String> = dropped
        .iter()
        .filter(|r| r.action != Action::NoOp)
        .map(|r| r.address.clone())
        .collect();
    plan.resources = kept;
    for o in &mut plan.outputs {
        let refs = outputs.get(&o.name);
        let keep_recorded = if plan.destroy {
            // Only outputs naming something destroyed go.
            !refs.is_some_and(|r| r.iter().any(|a| included.contains(a)))
        } else {
            refs.is_some_and(|r| r.iter().any(|a| left_out_changes.contains(a)))
        };
        if keep_recorded {
            o.after.clone_from(&o.before);
            o.after_unknown = false;
        }
    }
    let mut targets = targets.to_vec();
    targets.sort();
    targets.dedup();
    plan.targets = targets;
    plan.partial = true;
    plan.left_out = left_out_changes.into_iter().collect();
    plan.summarize();
    Ok(())
}

/// Plan and apply: the targets, what they depend on, and the changes those
/// cannot run without, to a fixed point.
fn needs_closure(
    plan: &Plan,
    targets: &[String],
    recorded: &BTreeMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let by_address: BTreeMap<&str, &super::ResourceChange> =
        plan.resources.iter().map(|r| (r.address.as_str(), r)).collect();
    // Changed resources by what they depend on, for "what must let go".
    let mut changed_dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in plan.resources.iter().filter(|r| r.action != Action::NoOp) {
        for d in &r.dependencies {
            changed_dependents
                .entry(d.as_str())
                .or_default()
                .push(r.address.as_str());
        }
        for d in &r.detach_from {
            changed_dependents
                .entry(d.from.as_str())
                .or_default()
                .push(r.address.as_str());
        }
        for d in recorded.get(&r.address).into_iter().flatten() {
            changed_dependents
                .entry(d.as_str())
                .or_default()
                .push(r.address.as_str());
        }
    }
    let mut included: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<&str> = targets.iter().map(String::as_str).collect();
    while let Some(a) = queue.pop() {
        let Some(r) = by_address.get(a) else { continue };
        if !included.insert(a.to_string()) {
            continue;
        }
        queue.extend(r.dependencies.iter().map(String::as_str));
        queue.extend(r.after_delete_of.iter().map(String::as_str));
        queue.extend(r.detach_from.iter().map(|d| d.from.as_str()));
        queue.extend(r.contract_after.iter().map(String::as_str));
        if matches!(r.action, Action::Delete | Action::Replace) {
            queue.extend(changed_dependents.get(a).into_iter().flatten().copied());
        }
    }
    included
}

/// Destroy: the targets and everything that depends on them, by the
/// dependencies state recorded (a destroy plan's `dependencies`).
fn dependents_closure(plan: &Plan, targets: &[String]) -> BTreeSet<String> {
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &plan.resources {
        for d in &r.dependencies {
            dependents.entry(d.as_str()).or_default().push(r.address.as_str());
        }
    }
    let mut included = BTreeSet::new();
    let mut queue: Vec<&str> = targets.iter().map(String::as_str).collect();
    while let Some(a) = queue.pop() {
        if included.insert(a.to_string()) {
            queue.extend(dependents.get(a).into_iter().flatten().copied());
        }
    }
    included
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{OutputChange, PLAN_FORMAT_VERSION, ResourceChange, Summary};
    use serde_json::json;

    /// A change of `address` with `action`, depending on `deps`.
    fn change(address: &str, action: Action, deps: &[&str]) -> ResourceChange {
        ResourceChange {
            address: address.to_string(),
            kind: "test.named".to_string(),
            action,
            id: None,
            reason: None,
            replaced_because: Vec::new(),
            changes: Vec::new(),
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            replace_order: None,
            detach_from: Vec::new(),
            after_delete_of: Vec::new(),
            early_delete: false,
            contract_after: Vec::new(),
            expand_first: false,
            not_refreshed: None,
        }
    }

    fn plan_of(destroy: bool, resources: Vec<ResourceChange>) -> Plan {
        let mut plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: "s".to_string(),
            region: "us-west-2".to_string(),
            destroy,
            resources,
            outputs: Vec::new(),
            summary: Summary::default(),
            targets: Vec::new(),
            partial: false,
            left_out: Vec::new(),
        };
        plan.summarize();
        plan
    }

    fn addresses(plan: &Plan) -> Vec<&str> {
        let mut out: Vec<&str> = plan.resources.iter().map(|r| r.address.as_str()).collect();
        out.sort();
        out
    }

    /// vpc <- subnet <- nat <- route; eip <- nat; policy alone; a delete
    /// `old` (state only) depending on vpc.
    fn network(destroy: bool) -> Plan {
        use Action::*;
        let a = if destroy { Delete } else { Create };
        plan_of(
            destroy,
            vec![
                change("vpc", a, &[]),
                change("subnet", a, &["vpc"]),
                change("eip", a, &[]),
                change("nat", a, &["eip", "subnet"]),
                change("route", a, &["nat"]),
                change("policy", a, &[]),
                change("old", Delete, &["vpc"]),
            ],
        )
    }

    #[test]
    fn targets_bring_in_dependencies_or_dependents() {
        let cases: &[(&str, bool, &[&str], &[&str])] = &[
            (
                "route: what it depends on",
                false,
                &["route"],
                &["eip", "nat", "route", "subnet", "vpc"],
            ),
            ("vpc alone depends on nothing", false, &["vpc"], &["vpc"]),
            (
                "two targets: the union",
                false,
                &["subnet", "policy"],
                &["policy", "subnet", "vpc"],
            ),
            (
                "a state-only delete: its recorded deps",
                false,
                &["old"],
                &["old", "vpc"],
            ),
            (
                "destroy vpc: everything on it",
                true,
                &["vpc"],
                &["nat", "old", "route", "subnet", "vpc"],
            ),
            ("destroy a leaf: only it", true, &["route"], &["route"]),
            (
                "destroy eip: nat and route go first",
                true,
                &["eip"],
                &["eip", "nat", "route"],
            ),
        ];
        for (name, destroy, targets, want) in cases {
            let mut plan = network(*destroy);
            let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
            restrict(&mut plan, &targets, &BTreeMap::new(), &BTreeMap::new()).unwrap();
            assert_eq!(addresses(&plan), *want, "{name}");
            assert!(plan.partial, "{name}");
            let mut sorted = targets.clone();
            sorted.sort();
            assert_eq!(plan.targets, sorted, "{name}");
            let total = plan.summary.create + plan.summary.delete;
            assert_eq!(total, want.len(), "{name}: the summary counts only what is kept");
            let left: BTreeSet<&str> = plan.left_out.iter().map(String::as_str).collect();
            for a in ["vpc", "subnet", "eip", "nat", "route", "policy", "old"] {
                assert_eq!(left.contains(a), !want.contains(&a), "{name}: {a} left out?");
            }
        }
    }

    #[test]
    fn no_targets_is_the_whole_plan() {
        let mut plan = network(false);
        let before = plan.clone();
        restrict(&mut plan, &[], &BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert_eq!(plan, before);
        assert!(!plan.partial);
    }

    #[test]
    fn an_unknown_target_is_refused_with_a_suggestion_and_changes_nothing() {
        let mut plan = network(false);
        let before = plan.clone();
        let err = restrict(
            &mut plan,
            &["subnt".to_string()],
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TargetError::Unknown {
                address: "subnt".to_string(),
                suggestion: Some("subnet".to_string())
            }
        );
        assert!(err.to_string().contains("did you mean `subnet`?"), "{err}");
        assert_eq!(plan, before);
    }

    #[test]
    fn changes_that_cannot_run_alone_bring_in_what_they_need() {
        use Action::*;
        // `repo` is replaced destroy-before-create: `user` (changed, refers
        // to it) must let go of it first, so targeting repo brings it in;
        // `fresh` waits for the delete of `gone` (the same name).
        let mut user = change("user", Update, &["repo"]);
        user.changes = Vec::new();
        let mut fresh = change("fresh", Create, &[]);
        fresh.after_delete_of = vec!["gone".to_string()];
        let mut contracting = change("rule", Update, &[]);
        contracting.contract_after = vec!["route".to_string()];
        let plan = plan_of(
            false,
            vec![
                change("repo", Replace, &[]),
                user,
                change("bystander", Update, &[]),
                change("gone", Delete, &[]),
                fresh,
                contracting,
                change("route", Update, &["rule"]),
            ],
        );
        let cases: &[(&str, &[&str])] = &[
            ("repo", &["repo", "user"]),
            // (and what must let go of `gone` first: see below)
            ("fresh", &["bystander", "fresh", "gone"]),
            ("rule", &["route", "rule"]),
            ("route", &["route", "rule"]),
            // `gone` left the stack, but state records `bystander` as still
            // referring to it: its update (letting go) comes along.
            ("gone", &["bystander", "gone"]),
        ];
        let recorded = BTreeMap::from([("bystander".to_string(), vec!["gone".to_string()])]);
        for (target, want) in cases {
            let mut p = plan.clone();
            restrict(&mut p, &[target.to_string()], &BTreeMap::new(), &recorded).unwrap();
            assert_eq!(addresses(&p), *want, "target {target}");
        }
    }

    #[test]
    fn outputs_of_left_out_changes_keep_their_recorded_values() {
        let mut plan = network(false);
        let out = |name: &str, before: Option<serde_json::Value>| OutputChange {
            name: name.to_string(),
            before,
            after: None,
            after_unknown: true,
        };
        plan.outputs = vec![
            out("vpc_id", None),
            out("route_id", Some(json!("rtb-1"))),
            out("policy_arn", Some(json!("arn:old"))),
        ];
        plan.summarize();
        let deps: BTreeMap<String, BTreeSet<String>> =
            [("vpc_id", "vpc"), ("route_id", "route"), ("policy_arn", "policy")]
                .into_iter()
                .map(|(o, r)| (o.to_string(), BTreeSet::from([r.to_string()])))
                .collect();
        restrict(&mut plan, &["subnet".to_string()], &deps, &BTreeMap::new()).unwrap();
        let by: BTreeMap<&str, &OutputChange> = plan.outputs.iter().map(|o| (o.name.as_str(), o)).collect();
        assert!(by["vpc_id"].after_unknown, "vpc is in: its output is planned");
        assert_eq!(by["route_id"].after, Some(json!("rtb-1")));
        assert!(!by["route_id"].is_change());
        assert!(!by["policy_arn"].is_change());
        assert_eq!(plan.summary.outputs_changed, 1);

        // A partial destroy removes only the outputs of what it destroys.
        let mut destroy = network(true);
        destroy.outputs = vec![
            OutputChange {
                name: "vpc_id".to_string(),
                before: Some(json!("vpc-1")),
                after: None,
                after_unknown: false,
            },
            OutputChange {
                name: "policy_arn".to_string(),
                before: Some(json!("arn:p")),
                after: None,
                after_unknown: false,
            },
        ];
        restrict(&mut destroy, &["vpc".to_string()], &deps, &BTreeMap::new()).unwrap();
        let by: BTreeMap<&str, &OutputChange> =
            destroy.outputs.iter().map(|o| (o.name.as_str(), o)).collect();
        assert!(by["vpc_id"].is_change(), "removed with the vpc");
        assert_eq!(by["policy_arn"].after, Some(json!("arn:p")), "kept");
    }

    #[test]
    fn a_restricted_plan_has_an_acyclic_step_graph_without_left_out_steps() {
        let mut plan = network(true);
        restrict(
            &mut plan,
            &["subnet".to_string()],
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap();
        let mut state = crate::state::State::new("s");
        for r in &network(true).resources {
            state.resources.insert(
                r.address.clone(),
                crate::state::ResourceState {
                    kind: r.kind.clone(),
                    id: format!("id-{}", r.address),
                    attributes: crate::Attrs::new(),
                    dependencies: r.dependencies.clone(),
                },
            );
        }
        let graph = crate::engine::step_graph(&plan, &state).unwrap();
        let mut steps: Vec<String> = graph.nodes().iter().map(|s| s.address.clone()).collect();
        steps.sort();
        assert_eq!(steps, ["nat", "route", "subnet"]);
    }
}

//! The step graph of a plan: which cloud operations run, and which must
//! finish before which. Pure: built from the plan and the dependencies state
//! recorded, and checked for cycles before anything is called.

use std::collections::BTreeMap;

use super::EngineError;
use super::events::Op;
use crate::graph::WorkGraph;
use crate::plan::{Action, Plan, ReplaceOrder};
use crate::state::State;

/// One unit of work: an operation on one resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Step {
    /// The address of the resource operated on.
    pub address: String,
    /// The operation. A replacement is two steps, a delete and a create, in
    /// the order the plan gives; an update that detaches first is two steps
    /// too, a detach and an update.
    pub op: Op,
}

impl Step {
    fn new(address: &str, op: Op) -> Step {
        Step {
            address: address.to_string(),
            op,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op, self.address)
    }
}

/// Edges a test can leave out, to show that the engine's checks notice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Omit {
    /// Leave out "a dependent is updated or deleted before what it depends
    /// on is deleted".
    pub reverse_edges: bool,
}

/// Builds the step graph of `plan` over `state` (the state the plan was made
/// from) and checks that it has no cycle: a cycle is an internal error
/// naming its steps, raised before any cloud call.
pub fn step_graph(plan: &Plan, state: &State) -> Result<WorkGraph<Step>, EngineError> {
    checked(build(plan, state, Omit::default()))
}

/// [`step_graph`] leaving out the edges `omit` names (tests only).
pub(crate) fn step_graph_omitting(
    plan: &Plan,
    state: &State,
    omit: Omit,
) -> Result<WorkGraph<Step>, EngineError> {
    checked(build(plan, state, omit))
}

fn checked(graph: WorkGraph<Step>) -> Result<WorkGraph<Step>, EngineError> {
    match graph.find_cycle() {
        None => Ok(graph),
        Some(cycle) => {
            let mut names: Vec<String> = cycle.iter().map(Step::to_string).collect();
            names.push(cycle[0].to_string());
            Err(EngineError::Internal(format!(
                "the plan's steps wait for each other in a cycle: {}",
                names.join(" -> ")
            )))
        }
    }
}

/// The edges, as the planner's ordering decided them (see `plan::order`):
/// - creates and updates follow the stack's dependencies;
/// - a replacement's delete and create go in the plan's `replace_order`;
/// - a create waits for the deletes in its `after_delete_of`;
/// - a detach goes before the delete it is for, and before its own update;
/// - make-before-break: an update with `contract_after` goes after those
///   dependents' changes, which wait only for its interim (`expand_first`);
/// - a resource that state records as depending on a deleted one is
///   deleted before it, or detaches first, or (unless that one is deleted
///   early, see `early_delete`) is updated before it.
fn build(plan: &Plan, state: &State, omit: Omit) -> WorkGraph<Step> {
    let mut g = WorkGraph::new();
    let mut forward: BTreeMap<&str, Step> = BTreeMap::new();
    let mut deletes: BTreeMap<&str, Step> = BTreeMap::new();
    let mut detaches: BTreeMap<&str, Step> = BTreeMap::new();
    let mut expands: BTreeMap<&str, Step> = BTreeMap::new();
    for r in &plan.resources {
        let a = r.address.as_str();
        match r.action {
            Action::NoOp => {}
            Action::Create => {
                forward.insert(a, Step::new(a, Op::Create));
            }
            Action::Update => {
                forward.insert(a, Step::new(a, Op::Update));
                if !r.detach_from.is_empty() {
                    detaches.insert(a, Step::new(a, Op::Detach));
                }
                if r.expand_first && !r.contract_after.is_empty() {
                    expands.insert(a, Step::new(a, Op::Expand));
                }
            }
            Action::Delete => {
                deletes.insert(a, Step::new(a, Op::Delete));
            }
            Action::Replace => {
                deletes.insert(a, Step::new(a, Op::Delete));
                forward.insert(a, Step::new(a, Op::Create));
            }
        }
    }
    for s in detaches
        .values()
        .chain(deletes.values())
        .chain(forward.values())
        .chain(expands.values())
    {
        g.add(s.clone());
    }
    // Make-before-break: (dependency, dependent) pairs where the dependency's
    // update waits for the dependent's change instead of going before it.
    let contracts: std::collections::HashSet<(&str, &str)> = plan
        .resources
        .iter()
        .filter(|r| forward.contains_key(r.address.as_str()))
        .flat_map(|r| {
            r.contract_after
                .iter()
                .map(move |d| (r.address.as_str(), d.as_str()))
        })
        .collect();
    // Looked up once per edge: an index, not a scan of the plan each time.
    let early_deletes: std::collections::HashSet<&str> = plan
        .resources
        .iter()
        .filter(|c| c.early_delete)
        .map(|c| c.address.as_str())
        .collect();
    let early = |a: &str| early_deletes.contains(a);
    for r in &plan.resources {
        let a = r.address.as_str();
        if let Some(s) = forward.get(a) {
            let own_expand = expands.get(a);
            if let Some(e) = own_expand {
                g.order(e, s);
            }
            for dep in &r.dependencies {
                let Some(d) = forward.get(dep.as_str()) else {
                    continue;
                };
                // What this step (and its interim) wait for of the
                // dependency: its interim only, when the dependency's
                // update waits for this one.
                let contracted = contracts.contains(&(dep.as_str(), a));
                if contracted {
                    g.order(s, d);
                }
                let before = if contracted {
                    expands.get(dep.as_str())
                } else {
                    Some(d)
                };
                for step in std::iter::once(s).chain(own_expand) {
                    if let Some(b) = before {
                        g.order(b, step);
                    }
                }
            }
            if let Some(detach) = detaches.get(a) {
                g.order(detach, s);
            }
            for old in &r.after_delete_of {
                if let Some(d) = deletes.get(old.as_str()) {
                    g.order(d, s);
                }
            }
        }
        if let (Some(del), Some(create)) = (deletes.get(a), forward.get(a)) {
            match r.replace_order {
                Some(ReplaceOrder::CreateBeforeDestroy) => g.order(create, del),
                _ => g.order(del, create),
            }
        }
        if let Some(detach) = detaches.get(a) {
            for d in &r.detach_from {
                if let Some(del) = deletes.get(d.from.as_str()) {
                    g.order(detach, del);
                }
            }
        }
    }
    if omit.reverse_edges {
        return g;
    }
    for (address, recorded) in &state.resources {
        let a = address.as_str();
        for dep in &recorded.dependencies {
            let Some(dep_delete) = deletes.get(dep.as_str()) else {
                continue;
            };
            if let Some(own_delete) = deletes.get(a) {
                g.order(own_delete, dep_delete);
            } else if let Some(own_update) = forward.get(a).filter(|s| s.op == Op::Update)
                && !early(dep)
            {
                g.order(own_update, dep_delete);
            }
        }
    }
    g
}

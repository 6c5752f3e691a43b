//! The planner: a pure function from the stack, the refreshed prior state
//! and the region's facts to a [`Plan`]. No I/O happens here, so planning
//! is deterministic and tested without a cloud.

use std::collections::{BTreeMap, BTreeSet};

use super::eval::{EvalError, Lookup, Scope, desired_attrs, eval, normalize_attr};
use super::make_before_break;
use super::model::{Action, AttrChange, OutputChange, PLAN_FORMAT_VERSION, Plan, ResourceChange, Summary};
use super::order::{self, Desired, Promotion};
use super::partial::{Partial, partial_attr};
use crate::config::Stack;
use crate::graph::ResourceGraph;
use crate::provider::RegionFacts;
use crate::{Attrs, Value};

/// A resource as recorded in state and refreshed from the cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorResource {
    /// The resource type recorded in state, such as `aws.ec2.subnet`; when it
    /// differs from the stack's `type`, the plan replaces the resource.
    pub kind: String,
    /// The cloud id: the one the cloud reports now, or the recorded one when
    /// the resource no longer exists.
    pub id: String,
    /// What the cloud reports now; `None` when it no longer exists.
    pub live: Option<Attrs>,
    /// Addresses it depended on when last applied, as recorded in state; they
    /// order deletions of resources the stack no longer declares.
    pub dependencies: Vec<String>,
    /// Why the resource could not be read (its cloud is unreachable); `live`
    /// then holds the attributes state recorded.
    pub not_refreshed: Option<String>,
}

/// Everything the planner knows about the present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prior {
    /// Every resource state records, by address.
    pub resources: BTreeMap<String, PriorResource>,
    /// Output values recorded by the last apply, by name.
    pub outputs: BTreeMap<String, Value>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    /// A value the plan needs cannot be computed.
    #[error("{address}: {source}")]
    Eval {
        /// The resource or `output.<name>` whose value failed.
        address: String,
        /// Why the value could not be computed.
        source: EvalError,
    },
    /// The stack asks for an order of operations that cannot work, such as
    /// `create_before_destroy` on a resource whose new object would have
    /// the old one's unique name.
    #[error("{address}: {message}")]
    Order {
        /// The resource whose setting cannot be honoured.
        address: String,
        /// Why, naming the attributes or resources involved.
        message: String,
    },
}

/// What the planner has decided so far about each resource, for
/// evaluating references of the resources after it.
struct Planned {
    action: Action,
    id: Option<String>,
    desired: Attrs,
    unknown: BTreeSet<String>,
    live: Attrs,
}

struct PlanScope<'a> {
    planned: BTreeMap<String, Planned>,
    azs: &'a [String],
}

impl Scope for PlanScope<'_> {
    fn attr(&self, resource: &str, attr: &str) -> Lookup {
        let Some(p) = self.planned.get(resource) else {
            return Lookup::Missing;
        };
        let fresh = matches!(p.action, Action::Create | Action::Replace);
        if attr == "id" {
            return match (&p.id, fresh) {
                (Some(id), false) => Lookup::Known(Value::String(id.clone())),
                _ => Lookup::Unknown,
            };
        }
        if p.unknown.contains(attr) {
            return Lookup::Unknown;
        }
        if let Some(v) = p.desired.get(attr) {
            return Lookup::Known(v.clone());
        }
        if fresh {
            return Lookup::Unknown;
        }
        p.live.get(attr).cloned().map_or(Lookup::Missing, Lookup::Known)
    }

    fn azs(&self) -> &[String] {
        self.azs
    }
}

/// Computes the plan that makes the cloud match `stack`, with the order of
/// its operations decided (see [`super::order`]): how each replacement goes,
/// which updates detach first, which creates wait for a deletion.
pub fn plan(
    stack: &Stack,
    graph: &ResourceGraph,
    prior: &Prior,
    facts: &RegionFacts,
) -> Result<Plan, PlanError> {
    // Ordering may find resources that must be replaced although their own
    // attributes could change in place; planning again with them replaced
    // changes what their dependents see. Each round adds at least one such
    // resource that was an update, so this ends.
    let mut forced: BTreeMap<String, Promotion> = BTreeMap::new();
    loop {
        let (mut plan, desired) = diff(stack, graph, prior, facts, &forced)?;
        let promotions = order::order(&mut plan.resources, &desired, stack, prior)?;
        if promotions.is_empty() {
            make_before_break::order(&mut plan.resources, &desired, stack, prior);
            plan.summarize();
            return Ok(plan);
        }
        forced.extend(promotions);
    }
}

/// The diff of `stack` against `prior`, with `forced` resources replaced,
/// and the desired attributes of every stack resource.
fn diff(
    stack: &Stack,
    graph: &ResourceGraph,
    prior: &Prior,
    facts: &RegionFacts,
    forced: &BTreeMap<String, Promotion>,
) -> Result<(Plan, BTreeMap<String, Desired>), PlanError> {
    let mut scope = PlanScope {
        planned: BTreeMap::new(),
        azs: &facts.azs,
    };
    let mut changes = Vec::new();
    let mut desired_all = BTreeMap::new();
    for address in graph.topo_order() {
        let Some(resource) = stack.resources.get(&address) else {
            continue;
        };
        let (desired, unknown) =
            desired_attrs(resource, &stack.name, &scope).map_err(|source| PlanError::Eval {
                address: address.clone(),
                source,
            })?;
        // What is known of the values that are unknown as a whole, to show.
        let mut partials = BTreeMap::new();
        for name in &unknown {
            let partial =
                partial_attr(resource, name, &stack.name, &scope).map_err(|source| PlanError::Eval {
                    address: address.clone(),
                    source,
                })?;
            if let Some(p) = partial {
                partials.insert(name.clone(), p);
            }
        }
        let existing = prior.resources.get(&address);
        let mut change = ResourceChange {
            address: address.clone(),
            kind: resource.kind.type_name.to_string(),
            action: Action::NoOp,
            id: existing.map(|e| e.id.clone()),
            reason: None,
            replaced_because: Vec::new(),
            changes: Vec::new(),
            dependencies: graph.dependencies(&address),
            replace_order: None,
            detach_from: Vec::new(),
            after_delete_of: Vec::new(),
            early_delete: false,
            contract_after: Vec::new(),
            expand_first: false,
            not_refreshed: existing.and_then(|e| e.not_refreshed.clone()),
        };
        let live = match existing {
            Some(e) if e.kind != resource.kind.type_name => {
                change.action = Action::Replace;
                change.reason = Some(format!(
                    "type changes from {} to {}",
                    e.kind, resource.kind.type_name
                ));
                change.replaced_because.push("type".to_string());
                change.changes = creation_changes(&desired, &unknown, &partials);
                None
            }
            Some(e) => match &e.live {
                Some(live) => Some(live),
                None => {
                    change.action = Action::Create;
                    change.id = None;
                    change.reason = Some(format!("{} was deleted outside meshform", e.id));
                    change.changes = creation_changes(&desired, &unknown, &partials);
                    None
                }
            },
            None => {
                change.action = Action::Create;
                change.changes = creation_changes(&desired, &unknown, &partials);
                None
            }
        };
        if let Some(live) = live {
            let names: BTreeSet<&String> = desired.keys().chain(unknown.iter()).collect();
            for name in names {
                let schema = resource.kind.attr(name);
                let force_new = schema.is_some_and(|s| s.force_new);
                let before = live
                    .get(name)
                    .cloned()
                    .map(|v| normalize_attr(resource.kind, name, v));
                let after = desired.get(name).cloned();
                let after_unknown = unknown.contains(name);
                // A sealed sensitive value (see `crate::sensitive`) matches
                // the value it was made from.
                if after_unknown || !crate::sensitive::same(before.as_ref(), after.as_ref()) {
                    let (after_partial, after_unknown_paths) = split(partials.get(name));
                    change.changes.push(AttrChange {
                        name: name.clone(),
                        before,
                        after,
                        after_unknown,
                        forces_replacement: force_new,
                        after_partial,
                        after_unknown_paths,
                    });
                    if force_new {
                        change.replaced_because.push(name.clone());
                    }
                }
            }
            if let Some(p) = forced.get(&address)
                && change.replaced_because.is_empty()
            {
                change.reason = Some(p.reason.clone());
                for c in change.changes.iter_mut().filter(|c| p.attrs.contains(&c.name)) {
                    c.forces_replacement = true;
                }
                change.replaced_because = p.attrs.clone();
            }
            change.action = if !change.replaced_because.is_empty() {
                Action::Replace
            } else if !change.changes.is_empty() {
                Action::Update
            } else {
                Action::NoOp
            };
        }
        desired_all.insert(
            address.clone(),
            Desired {
                attrs: desired.clone(),
                unknown: unknown.clone(),
            },
        );
        scope.planned.insert(
            address.clone(),
            Planned {
                action: change.action,
                id: change.id.clone(),
                desired,
                unknown,
                live: existing.and_then(|e| e.live.clone()).unwrap_or_default(),
            },
        );
        changes.push(change);
    }

    // Resources in state that the stack no longer declares.
    let gone: BTreeMap<&String, &PriorResource> = prior
        .resources
        .iter()
        .filter(|(a, _)| !stack.resources.contains_key(*a))
        .collect();
    changes.extend(deletions(&gone));

    let mut outputs = Vec::new();
    for (name, output) in &stack.outputs {
        let after = eval(&output.expr, &scope).map_err(|source| PlanError::Eval {
            address: format!("output.{name}"),
            source,
        })?;
        outputs.push(OutputChange {
            name: name.clone(),
            before: prior.outputs.get(name).cloned(),
            after_unknown: after.is_none(),
            after,
        });
    }
    for (name, before) in &prior.outputs {
        if !stack.outputs.contains_key(name) {
            outputs.push(OutputChange {
                name: name.clone(),
                before: Some(before.clone()),
                after: None,
                after_unknown: false,
            });
        }
    }

    let plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        stack: stack.name.clone(),
        region: stack.region.clone(),
        destroy: false,
        resources: changes,
        outputs,
        summary: Summary::default(),
        targets: Vec::new(),
        partial: false,
        left_out: Vec::new(),
    };
    Ok((plan, desired_all))
}

/// The plan that deletes everything in `prior`, dependents first.
pub fn plan_destroy(stack: &str, region: &str, prior: &Prior) -> Plan {
    let all: BTreeMap<&String, &PriorResource> = prior.resources.iter().collect();
    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        stack: stack.to_string(),
        region: region.to_string(),
        destroy: true,
        resources: deletions(&all),
        outputs: prior
            .outputs
            .iter()
            .map(|(name, before)| OutputChange {
                name: name.clone(),
                before: Some(before.clone()),
                after: None,
                after_unknown: false,
            })
            .collect(),
        summary: Summary::default(),
        targets: Vec::new(),
        partial: false,
        left_out: Vec::new(),
    };
    plan.summarize();
    plan
}

/// Delete changes for `gone`, in reverse dependency order (by the
/// dependencies recorded in state). A resource already deleted outside
/// meshform is still listed, so that state forgets it.
fn deletions(gone: &BTreeMap<&String, &PriorResource>) -> Vec<ResourceChange> {
    let edges = gone
        .iter()
        .flat_map(|(a, r)| r.dependencies.iter().map(move |d| (d.clone(), (*a).clone())));
    let order = match ResourceGraph::from_edges(gone.keys().map(|a| (*a).clone()), edges) {
        Ok(g) => g.topo_order(),
        // State written by meshform has no cycles; if edited into one, fall
        // back to name order rather than refusing to delete.
        Err(_) => gone.keys().map(|a| (*a).clone()).collect(),
    };
    order
        .into_iter()
        .rev()
        .filter_map(|address| {
            let r = gone.get(&address)?;
            Some(ResourceChange {
                address: address.clone(),
                kind: r.kind.clone(),
                action: Action::Delete,
                id: Some(r.id.clone()),
                reason: match (crate::state::deposed_of(&address), &r.live) {
                    (_, None) => Some("already deleted outside meshform".to_string()),
                    (Some(of), Some(_)) => Some(format!(
                        "the old object of `{of}`, replaced create-before-destroy by a run that ended before deleting it"
                    )),
                    (None, Some(_)) => None,
                },
                replaced_because: Vec::new(),
                changes: Vec::new(),
                dependencies: r.dependencies.clone(),
                replace_order: None,
                detach_from: Vec::new(),
                after_delete_of: Vec::new(),
                early_delete: false,
                contract_after: Vec::new(),
                expand_first: false,
                not_refreshed: r.not_refreshed.clone(),
            })
        })
        .collect()
}

fn creation_changes(
    desired: &Attrs,
    unknown: &BTreeSet<String>,
    partials: &BTreeMap<String, Partial>,
) -> Vec<AttrChange> {
    let mut out: Vec<AttrChange> = desired
        .iter()
        .map(|(name, v)| AttrChange {
            name: name.clone(),
            before: None,
            after: Some(v.clone()),
            after_unknown: false,
            forces_replacement: false,
            after_partial: None,
            after_unknown_paths: Vec::new(),
        })
        .chain(unknown.iter().map(|name| {
            let (after_partial, after_unknown_paths) = split(partials.get(name));
            AttrChange {
                name: name.clone(),
                before: None,
                after: None,
                after_unknown: true,
                forces_replacement: false,
                after_partial,
                after_unknown_paths,
            }
        }))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The plan's fields for a partly known value.
fn split(partial: Option<&Partial>) -> (Option<Value>, Vec<String>) {
    match partial {
        Some(p) => (Some(p.value.clone()), p.unknown.clone()),
        None => (None, Vec::new()),
    }
}

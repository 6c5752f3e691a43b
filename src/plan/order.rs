//! Ordering a plan's operations so that its step graph has no cycle and
//! every cloud call can succeed. Pure, like the rest of planning.
//!
//! A replacement is two operations on two objects: creating the new one
//! and deleting the old one. Which goes first is decided here:
//!
//! - **Create before destroy** when the new object can exist beside the old
//!   one (no identity attribute, such as a unique name, stays the same; see
//!   [`KindDef::identity`]) and something updated in place must move from
//!   the old object to the new one, or when the stack asks for it with
//!   `create_before_destroy = true`. The dependents are updated between the
//!   create and the delete.
//! - **Destroy before create** otherwise. The old object is then deleted
//!   *early*, before any new object is created, and so is any old object
//!   whose name a new object takes (a resource renamed in the stack with
//!   the same unique name: its create lists it in `after_delete_of`).
//!
//! What still refers to an object deleted early must let go of it first:
//! a resource being deleted is deleted early too; one being replaced is
//! replaced destroy-before-create; one updated in place (or unchanged)
//! whose reference sits in a list *detaches* (a first update removing the
//! old object's identifiers from the list, the full update coming after the
//! successor exists); one whose reference cannot be removed (a scalar or a
//! force-new attribute) is replaced, which the planner then plans again.
//!
//! With these rules the step graph splits into three layers that only ever
//! point forward: detaches and early deletes (among themselves in reverse
//! dependency order), then creates and updates (in dependency order), then
//! the remaining deletes (in reverse dependency order). So it has no cycle;
//! the engine checks that again before it calls the cloud.

use std::collections::{BTreeMap, BTreeSet};

use super::diff::{PlanError, Prior, PriorResource};
use super::eval::normalize_attr;
use super::model::{Action, Detach, ReplaceOrder, ResourceChange};
use crate::config::{Resource, Stack, parse_cidr};
use crate::provider::{AttrType, KindDef, Mode};
use crate::{Attrs, Value};

/// A resource's desired attributes as the planner computed them.
#[derive(Debug, Clone, Default)]
pub(super) struct Desired {
    /// Values known now.
    pub attrs: Attrs,
    /// Attributes known only after apply.
    pub unknown: BTreeSet<String>,
}

/// A resource that must be replaced although its attributes could change
/// in place: it refers to an object deleted early and cannot let go.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Promotion {
    /// The plan's reason for the replacement.
    pub reason: String,
    /// The attributes holding the reference.
    pub attrs: Vec<String>,
}

/// Decides the order fields of `changes` (`replace_order`, `detach_from`,
/// `after_delete_of`, `early_delete`), turning unchanged resources that
/// must detach into updates. Returns the resources that must be replaced
/// instead (plan again with them forced); empty when the order is final.
pub(super) fn order(
    changes: &mut [ResourceChange],
    desired: &BTreeMap<String, Desired>,
    stack: &Stack,
    prior: &Prior,
) -> Result<BTreeMap<String, Promotion>, PlanError> {
    for c in changes.iter_mut() {
        c.replace_order = None;
        c.detach_from.clear();
        c.after_delete_of.clear();
        c.early_delete = false;
    }
    let index: BTreeMap<String, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.clone(), i))
        .collect();
    let clash = collisions(changes, desired, stack, prior);
    for (new, olds) in &clash.after {
        changes[index[new]].after_delete_of = olds.iter().cloned().collect();
    }

    // How each replacement goes.
    let explicit = |a: &str| stack.resources.get(a).is_some_and(|r| r.create_before_destroy);
    let mut mode: BTreeMap<String, ReplaceOrder> = BTreeMap::new();
    for c in changes.iter().filter(|c| c.action == Action::Replace) {
        let coexists = !clash.self_collision.contains_key(&c.address);
        let moves_dependents = changes
            .iter()
            .any(|d| d.action == Action::Update && d.dependencies.contains(&c.address));
        let order = if explicit(&c.address) {
            if let Some(attrs) = clash.self_collision.get(&c.address) {
                return Err(PlanError::Order {
                    address: c.address.clone(),
                    message: format!(
                        "create_before_destroy = true, but the new object cannot exist beside the old one: {} would be the same",
                        quoted(attrs)
                    ),
                });
            }
            ReplaceOrder::CreateBeforeDestroy
        } else if coexists && moves_dependents {
            ReplaceOrder::CreateBeforeDestroy
        } else {
            ReplaceOrder::DestroyBeforeCreate
        };
        mode.insert(c.address.clone(), order);
    }
    // An explicit create-before-destroy keeps the old objects it refers to
    // until it is done with them: they go create-before-destroy as well.
    let mut work: Vec<String> = mode
        .iter()
        .filter(|(a, m)| **m == ReplaceOrder::CreateBeforeDestroy && explicit(a))
        .map(|(a, _)| a.clone())
        .collect();
    while let Some(x) = work.pop() {
        for y in recorded_deps(prior, &x) {
            if mode.get(y) != Some(&ReplaceOrder::DestroyBeforeCreate) {
                continue;
            }
            if let Some(attrs) = clash.self_collision.get(y) {
                return Err(PlanError::Order {
                    address: x.clone(),
                    message: format!(
                        "create_before_destroy = true, but it refers to `{y}`, which must be destroyed before it is created ({} stays the same)",
                        quoted(attrs)
                    ),
                });
            }
            mode.insert(y.clone(), ReplaceOrder::CreateBeforeDestroy);
            work.push(y.clone());
        }
    }

    // Old objects deleted early, and what must let go of them first.
    let mut early: BTreeSet<String> = mode
        .iter()
        .filter(|(_, m)| **m == ReplaceOrder::DestroyBeforeCreate)
        .map(|(a, _)| a.clone())
        .chain(clash.after.values().flatten().cloned())
        .collect();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (r, p) in &prior.resources {
        for d in &p.dependencies {
            if d != r && index.contains_key(r) {
                dependents.entry(d.as_str()).or_default().push(r.as_str());
            }
        }
    }
    // An old object whose name a new one takes goes early, so its own
    // replacement cannot create first.
    for o in &early {
        if mode.get(o) == Some(&ReplaceOrder::CreateBeforeDestroy) {
            if explicit(o) {
                return Err(PlanError::Order {
                    address: o.clone(),
                    message: "create_before_destroy = true, but another resource's new object takes its old one's name, so the old one must be deleted first".to_string(),
                });
            }
            mode.insert(o.clone(), ReplaceOrder::DestroyBeforeCreate);
        }
    }
    let mut queue: Vec<String> = early.iter().cloned().collect();
    let mut promotions = BTreeMap::new();
    while let Some(o) = queue.pop() {
        for &r in dependents.get(o.as_str()).map(Vec::as_slice).unwrap_or_default() {
            let ci = index[r];
            match changes[ci].action {
                Action::Delete => {}
                Action::Replace => {
                    if mode.get(r) == Some(&ReplaceOrder::CreateBeforeDestroy) {
                        if explicit(r) {
                            return Err(PlanError::Order {
                                address: r.to_string(),
                                message: format!(
                                    "create_before_destroy = true, but it refers to `{o}`, whose old object is deleted before its successor is created"
                                ),
                            });
                        }
                        mode.insert(r.to_string(), ReplaceOrder::DestroyBeforeCreate);
                    }
                }
                Action::Update | Action::NoOp => {
                    let (Some(resource), Some(recorded)) = (stack.resources.get(r), prior.resources.get(r))
                    else {
                        continue;
                    };
                    let Some(old_prior) = prior.resources.get(&o) else {
                        continue;
                    };
                    match references(resource, recorded, &o, old_prior) {
                        Refs::None => {}
                        Refs::Detachable(detaches) => {
                            let change = &mut changes[ci];
                            if change.action == Action::NoOp {
                                change.action = Action::Update;
                                change.reason = Some(format!("detaches from {o} while {o} is replaced"));
                            }
                            change.detach_from.extend(detaches);
                        }
                        Refs::Fixed(attrs) => {
                            promotions.insert(
                                r.to_string(),
                                Promotion {
                                    reason: format!(
                                        "refers to {o} in {}, which cannot let go of it, and {o}'s old object is deleted before its successor is created",
                                        quoted(&attrs)
                                    ),
                                    attrs,
                                },
                            );
                        }
                    }
                    continue;
                }
                Action::Create => continue,
            }
            if early.insert(r.to_string()) {
                queue.push(r.to_string());
            }
        }
    }
    if !promotions.is_empty() {
        return Ok(promotions);
    }
    for c in changes.iter_mut() {
        c.replace_order = mode.get(&c.address).copied();
        c.early_delete = early.contains(&c.address) && matches!(c.action, Action::Delete | Action::Replace);
        c.detach_from
            .sort_by(|a, b| (&a.from, &a.attribute).cmp(&(&b.from, &b.attribute)));
    }
    Ok(BTreeMap::new())
}

/// The dependencies state recorded for `address`.
fn recorded_deps<'a>(prior: &'a Prior, address: &str) -> &'a [String] {
    prior
        .resources
        .get(address)
        .map(|p| p.dependencies.as_slice())
        .unwrap_or_default()
}

/// `name` or `vpc_id and cidr_block`, for messages.
fn quoted(attrs: &[String]) -> String {
    let names: Vec<String> = attrs.iter().map(|a| format!("`{a}`")).collect();
    names.join(" and ")
}

/// Which new objects could not exist beside which old ones.
#[derive(Debug, Default)]
struct Collisions {
    /// Replacements whose new object clashes with their own old one, with
    /// the identity attributes that stay the same.
    self_collision: BTreeMap<String, Vec<String>>,
    /// New objects (creates and replacements) and the other resources
    /// whose old objects they clash with.
    after: BTreeMap<String, BTreeSet<String>>,
}

fn collisions(
    changes: &[ResourceChange],
    desired: &BTreeMap<String, Desired>,
    stack: &Stack,
    prior: &Prior,
) -> Collisions {
    let mut out = Collisions::default();
    let olds: Vec<(&str, &PriorResource, &Attrs)> = changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
        .filter_map(|c| {
            let p = prior.resources.get(&c.address)?;
            Some((c.address.as_str(), p, p.live.as_ref()?))
        })
        .collect();
    for c in changes
        .iter()
        .filter(|c| matches!(c.action, Action::Create | Action::Replace))
    {
        let (Some(resource), Some(want)) = (stack.resources.get(&c.address), desired.get(&c.address)) else {
            continue;
        };
        for (old_address, old, old_live) in &olds {
            if old.kind != resource.kind.type_name {
                continue;
            }
            let Some(attrs) = identity_clash(resource.kind, old_live, want) else {
                continue;
            };
            if *old_address == c.address {
                out.self_collision.insert(c.address.clone(), attrs);
            } else {
                out.after
                    .entry(c.address.clone())
                    .or_default()
                    .insert(old_address.to_string());
            }
        }
    }
    out
}

/// The identity attributes an old object and a new one of `kind` share, if
/// they cannot exist at once. A value known only after apply comes from a
/// new object, so it differs.
fn identity_clash(kind: &KindDef, old: &Attrs, new: &Desired) -> Option<Vec<String>> {
    kind.identity
        .iter()
        .filter(|set| !set.is_empty())
        .find(|set| {
            set.iter().all(|a| {
                if new.unknown.contains(*a) {
                    return false;
                }
                let (Some(o), Some(n)) = (old.get(*a), new.attrs.get(*a)) else {
                    return false;
                };
                let o = normalize_attr(kind, a, o.clone());
                match kind.attr(a).map(|s| s.ty) {
                    Some(AttrType::Cidr) => cidrs_overlap(&o, n),
                    _ => o == *n,
                }
            })
        })
        .map(|set| set.iter().map(|a| a.to_string()).collect())
}

/// Whether two CIDR blocks share addresses (equal when not both CIDRs).
fn cidrs_overlap(a: &Value, b: &Value) -> bool {
    match (
        a.as_str().and_then(|s| parse_cidr(s).ok()),
        b.as_str().and_then(|s| parse_cidr(s).ok()),
    ) {
        (Some((x, lx)), Some((y, ly))) => {
            let len = lx.min(ly);
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(x) & mask == u32::from(y) & mask
        }
        _ => a == b,
    }
}

/// How a resource's live object refers to an old object.
#[derive(Debug, PartialEq)]
enum Refs {
    /// It does not hold the old object's identifiers.
    None,
    /// Only as items of lists that can change in place: removable.
    Detachable(Vec<Detach>),
    /// Somewhere it cannot be removed from (the attributes named).
    Fixed(Vec<String>),
}

/// How `resource` (recorded as `recorded`) refers to the old object of
/// `old` (recorded as `old_prior`): which of its configurable attributes
/// hold `old`'s identifiers as they are now (see [`identifiers`]), whether
/// or not the stack still refers to `old` (an update may be what drops the
/// reference; until it runs, the live object holds it). Tags never count:
/// they hold no references a cloud enforces.
fn references(resource: &Resource, recorded: &PriorResource, old: &str, old_prior: &PriorResource) -> Refs {
    let Some(live) = &recorded.live else {
        return Refs::None;
    };
    let values = identifiers(old_prior);
    if values.is_empty() {
        return Refs::None;
    }
    let mut detach = Vec::new();
    let mut fixed = Vec::new();
    for (name, current) in live {
        let Some(schema) = resource.kind.attr(name) else {
            continue;
        };
        if name == "tags" || schema.mode == Mode::Computed {
            continue;
        }
        let removable = matches!(schema.ty, AttrType::StringList) && !schema.force_new;
        match current {
            Value::Array(items) if removable => {
                let found: Vec<String> = values
                    .iter()
                    .filter(|v| items.iter().any(|i| i.as_str() == Some(v.as_str())))
                    .cloned()
                    .collect();
                let rest_holds = items
                    .iter()
                    .filter(|i| !i.as_str().is_some_and(|s| values.contains(s)))
                    .any(|i| values.iter().any(|v| holds(i, v)));
                if rest_holds {
                    fixed.push(name.clone());
                } else if !found.is_empty() {
                    detach.push(Detach {
                        from: old.to_string(),
                        attribute: name.clone(),
                        values: found,
                    });
                }
            }
            other => {
                if values.iter().any(|v| holds(other, v)) {
                    fixed.push(name.clone());
                }
            }
        }
    }
    if !fixed.is_empty() {
        Refs::Fixed(fixed)
    } else if !detach.is_empty() {
        Refs::Detachable(detach)
    } else {
        Refs::None
    }
}

/// The values that identify an old object wherever another object refers
/// to it: its id, and its computed `arn`. Other computed values may name
/// other objects (an internet gateway's `vpc_id`) or be shared (an
/// account id), and names the stack chose are no references: equal values
/// elsewhere prove nothing.
fn identifiers(old: &PriorResource) -> BTreeSet<String> {
    let kind = crate::provider::kind_def(&old.kind);
    let arn = old
        .live
        .as_ref()
        .and_then(|l| l.get("arn"))
        .and_then(Value::as_str)
        .filter(|_| {
            kind.and_then(|k| k.attr("arn"))
                .is_some_and(|s| s.mode == Mode::Computed)
        });
    std::iter::once(old.id.as_str())
        .chain(arn)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `value` holds `needle`: as the whole of a string, inside a long
/// one (an ARN or id built into a bigger string; short ids would match by
/// accident), or in a nested list or table.
fn holds(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s == needle || (needle.len() >= 20 && s.contains(needle)),
        Value::Array(items) => items.iter().any(|i| holds(i, needle)),
        Value::Object(map) => map.values().any(|v| holds(v, needle)),
        _ => false,
    }
}

/// Dependencies the live objects show but state may not have recorded (an
/// update whose answer was lost, or a run killed before recording it, can
/// leave a resource referring to another that its recorded dependencies
/// do not name): for each address, the other tracked resources whose
/// identifiers (see [`identifiers`]) its configurable attributes hold as
/// whole values. Deletes are ordered by recorded dependencies, so refresh
/// adds these to them.
pub fn live_dependencies(resources: &BTreeMap<String, PriorResource>) -> BTreeMap<String, BTreeSet<String>> {
    // A value two resources would both claim proves nothing: left out.
    let mut owner: BTreeMap<String, Option<&str>> = BTreeMap::new();
    for (address, r) in resources {
        if r.live.is_some() {
            for id in identifiers(r) {
                owner
                    .entry(id)
                    .and_modify(|o| *o = None)
                    .or_insert(Some(address.as_str()));
            }
        }
    }
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (address, r) in resources {
        let Some(live) = &r.live else { continue };
        let kind = crate::provider::kind_def(&r.kind);
        for (name, value) in live {
            let configurable = kind
                .and_then(|k| k.attr(name))
                .is_some_and(|s| s.mode != Mode::Computed);
            if name == "tags" || !configurable {
                continue;
            }
            strings(value, &mut |s| {
                if let Some(Some(other)) = owner.get(s).copied()
                    && other != address
                {
                    out.entry(address.clone()).or_default().insert(other.to_string());
                }
            });
        }
    }
    out
}

/// Calls `f` with every string inside `value`.
fn strings(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| strings(i, f)),
        Value::Object(map) => map.values().for_each(|v| strings(v, f)),
        _ => {}
    }
}

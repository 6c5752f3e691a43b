//! Make-before-break inside one apply. Pure, like the rest of planning.
//!
//! Dependency order makes things before what uses them: a DestinationRule
//! is updated before the VirtualService that depends on it, so a subset
//! the rule gains exists before a route names it. Taking away needs the
//! opposite order: a route must stop naming a subset before the rule loses
//! it. And one apply may do both (traffic moves from v2 to v3: the rule
//! gains v3 and loses v2, the route moves from v2 to v3).
//!
//! So an update whose kind can say what an interim object serving both old
//! and new users looks like ([`KindDef::expand`]) and that takes something
//! away, while resources depending on it change in the same apply, goes in
//! up to two steps:
//! 1. an interim update to the expanded attributes (prior and desired
//!    together), when they differ from the prior ones (`expand_first`);
//! 2. the dependents' changes;
//! 3. the update itself, which now only removes what nothing names any
//!    more (`contract_after` lists the dependents it waits for).
//!
//! The engine turns these fields into step-graph edges; the plan shows
//! them.

use std::collections::BTreeMap;

use super::diff::Prior;
use super::model::{Action, ResourceChange};
use super::order::Desired;
use crate::config::Stack;

/// Sets `contract_after` and `expand_first` on the updates of `changes`
/// that take something away while their dependents change too.
pub(super) fn order(
    changes: &mut [ResourceChange],
    desired: &BTreeMap<String, Desired>,
    stack: &Stack,
    prior: &Prior,
) {
    let mut decided: Vec<(usize, Vec<String>, bool)> = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        if change.action != Action::Update {
            continue;
        }
        let Some(expand) = stack.resources.get(&change.address).and_then(|r| r.kind.expand) else {
            continue;
        };
        let (Some(want), Some(had)) = (
            desired.get(&change.address).filter(|d| d.unknown.is_empty()),
            prior.resources.get(&change.address).and_then(|p| p.live.as_ref()),
        ) else {
            // Values known only at apply time cannot be compared now.
            continue;
        };
        let interim = expand(had, &want.attrs);
        if interim == want.attrs {
            // Nothing taken away: dependency order already makes before it
            // breaks.
            continue;
        }
        let dependents: Vec<String> = changes
            .iter()
            .filter(|d| d.action == Action::Update && d.dependencies.contains(&change.address))
            .filter(|d| desired.get(&d.address).is_some_and(|w| w.unknown.is_empty()))
            .map(|d| d.address.clone())
            .collect();
        if dependents.is_empty() {
            continue;
        }
        let adds = interim.iter().any(|(k, v)| had.get(k) != Some(v));
        decided.push((i, dependents, adds));
    }
    for (i, dependents, adds) in decided {
        changes[i].contract_after = dependents;
        changes[i].expand_first = adds;
    }
}

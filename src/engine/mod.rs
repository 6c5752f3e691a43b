//! The engine: refresh, plan, apply and destroy, reporting through events.
//!
//! The engine owns no I/O of its own beyond calling resource kinds and the
//! state store; it never prints. Planning itself is the pure
//! [`crate::plan::plan`]; the engine gathers its inputs.

mod apply;
pub mod events;
mod import;
#[cfg(test)]
mod make_before_break_tests;
mod refresh;
mod steps;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use apply::{ApplyReport, StateFailure, refreshed_state};
pub use events::{Event, EventSink, Op, no_events, redacting};
pub use import::ImportError;
pub use refresh::Resolution;
pub use steps::{Step, step_graph};

use crate::Attrs;
use crate::config::Stack;
use crate::graph::{CancelFlag, ResourceGraph};
use crate::plan::eval::EvalError;
use crate::plan::{Action, Plan, PlanError, Prior};
use crate::provider::{Kinds, OpContext, Progress, ProviderError, RegionFacts, ResourceKind};
use crate::state::{State, StateError, StateStore};

/// Errors that stop a run (a failed step is not one: it is reported in the
/// [`ApplyReport`]).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EngineError {
    /// A resource kind's cloud call failed. During refresh this stops the
    /// run; during a step it becomes the step's failure.
    #[error("{address}: {op} failed: {source}")]
    Provider {
        /// The resource's address; for a failed batched refresh, the first
        /// address of the batch.
        address: String,
        /// What was being done: "create", "update", "delete", "refresh" or
        /// "resolve interrupted create".
        op: &'static str,
        /// The kind's error.
        source: ProviderError,
    },
    /// Reading, locking or writing the state file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A value the plan needs could not be computed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A resource's attributes could not be evaluated at apply time (the
    /// step fails).
    #[error("{address}: {source}")]
    Eval {
        /// The resource's address.
        address: String,
        /// Why the evaluation failed.
        source: EvalError,
    },
    /// A kind's batched read answered a different number of resources than
    /// it was asked for: a bug in the kind. Nothing is planned from such an
    /// answer, as a missing answer would plan a duplicate.
    #[error("refresh of `{kind}`: asked for {requested} resources, the kind answered {returned}")]
    ShortRead {
        /// The kind's type name.
        kind: String,
        /// How many resources were asked for.
        requested: usize,
        /// How many answers came back.
        returned: usize,
    },
    /// State records a resource of a type this build does not know (the
    /// type name).
    #[error("state records a resource of type `{0}`, which this meshform does not know")]
    UnknownKind(String),
    /// The step did not call the cloud because the run is stopping (Ctrl-C
    /// or a failed state write); reported as not started.
    #[error("not started: the run is stopping")]
    Stopped,
    /// A broken invariant, such as a cycle in a validated stack: a bug, or
    /// a state file edited by hand.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Runs refresh, plan, apply and destroy for one stack.
#[derive(Clone)]
pub struct Engine {
    stack_name: String,
    kinds: Kinds,
    events: EventSink,
    parallelism: usize,
    cancel: CancelFlag,
    /// Edges left out of step graphs: none, except in tests that break the
    /// engine on purpose.
    omit: steps::Omit,
}

impl Engine {
    /// An engine for stack `stack_name` using `kinds`, reporting to `events`.
    /// Parallelism defaults to 10.
    pub fn new(stack_name: &str, kinds: Kinds, events: EventSink) -> Engine {
        Engine {
            stack_name: stack_name.to_string(),
            kinds,
            events,
            parallelism: 10,
            cancel: CancelFlag::default(),
            omit: steps::Omit::default(),
        }
    }

    /// At most `n` cloud operations at once.
    pub fn with_parallelism(mut self, n: usize) -> Engine {
        self.parallelism = n.max(1);
        self
    }

    /// Stops starting new operations once `cancel` is set.
    pub fn with_cancel(mut self, cancel: CancelFlag) -> Engine {
        self.cancel = cancel;
        self
    }

    /// The context of an operation on `address`, reporting progress as events.
    fn op_context(&self, address: &str, token: &str) -> OpContext {
        let events = self.events.clone();
        let at = address.to_string();
        OpContext {
            stack: self.stack_name.clone(),
            address: address.to_string(),
            token: token.to_string(),
            progress: Progress::new(move |message| {
                events(&Event::Progress {
                    address: at.clone(),
                    message: message.to_string(),
                })
            }),
            exclude: Vec::new(),
        }
    }

    fn kind(&self, type_name: &str) -> Result<&Arc<dyn ResourceKind>, EngineError> {
        self.kinds
            .get(type_name)
            .ok_or_else(|| EngineError::UnknownKind(type_name.to_string()))
    }

    /// Refreshes without writing anything: interrupted creates are resolved
    /// in memory only. For `plan`.
    pub async fn refresh(&self, state: &State) -> Result<Prior, EngineError> {
        let mut state = state.clone();
        for r in self.resolve_pending(&state).await? {
            if r.unresolved.is_some() {
                continue;
            }
            state.pending.remove(&r.address);
            if let Some(adopted) = r.adopted {
                state.resources.insert(r.address, adopted);
            }
        }
        self.read_live(&state).await
    }

    /// Refreshes and records the result: interrupted creates become tracked
    /// resources (or are dropped when nothing was made), and refreshed
    /// attributes are saved. For `apply` and `destroy`.
    pub async fn refresh_into(&self, store: &mut StateStore) -> Result<Prior, EngineError> {
        for r in self.resolve_pending(store.state()).await? {
            match (r.adopted, r.unresolved) {
                (_, Some(_)) => {}
                (Some(adopted), None) => store.finish_create(&r.address, adopted)?,
                (None, None) => store.abandon_create(&r.address)?,
            }
        }
        let prior = self.read_live(store.state()).await?;
        let refreshed = apply::refreshed_state(store.state(), &prior);
        // Sealed values (see `crate::sensitive`) match what they stand for:
        // a refresh that finds nothing new writes nothing.
        let changed = refreshed.iter().any(|(a, r)| {
            store.state().resources.get(a).is_none_or(|stored| {
                stored.kind != r.kind
                    || stored.id != r.id
                    || stored.dependencies != r.dependencies
                    || !crate::sensitive::same_attrs(&stored.attributes, &r.attributes)
            })
        });
        if changed {
            store.update(|s| s.resources.extend(refreshed))?;
        }
        Ok(prior)
    }

    /// Refines the creates and in-place updates of `plan` with the kinds'
    /// previews (a server-side dry run for Kubernetes objects), so that
    /// each change shows what the cloud would make of it and what the
    /// cloud would refuse fails the plan; updates the preview shows to be
    /// no change are dropped. A create whose cloud cannot be reached yet
    /// stays as planned. The plan itself stays a pure diff; this is the
    /// one step of planning that asks the cloud.
    pub async fn preview(&self, plan: &mut Plan, prior: &Prior) -> Result<(), EngineError> {
        for change in plan
            .resources
            .iter_mut()
            .filter(|c| matches!(c.action, Action::Update | Action::Create))
        {
            // An update that detaches first is part of the plan's order of
            // operations even when its attributes end up the same.
            if !change.detach_from.is_empty() || change.changes.iter().any(|c| c.after_unknown) {
                continue;
            }
            let kind = self.kind(&change.kind)?.clone();
            let (current, mut desired) = if change.action == Action::Update {
                let Some(recorded) = prior.resources.get(&change.address) else {
                    continue;
                };
                let Some(live) = &recorded.live else { continue };
                let current = crate::provider::Live {
                    id: recorded.id.clone(),
                    attrs: live.clone(),
                };
                (Some(current), live.clone())
            } else {
                (None, Attrs::new())
            };
            for c in &change.changes {
                if let Some(after) = &c.after {
                    desired.insert(c.name.clone(), after.clone());
                }
            }
            let previewed = match kind.preview(current.as_ref(), &desired).await {
                Err(ProviderError::Unreachable { .. }) if change.action == Action::Create => continue,
                other => other.map_err(|source| EngineError::Provider {
                    address: change.address.clone(),
                    op: "preview",
                    source,
                })?,
            };
            let Some(previewed) = previewed else { continue };
            for c in change.changes.iter_mut() {
                if let Some(v) = previewed.get(&c.name) {
                    c.after = Some(crate::plan::eval::normalize_attr(kind.def(), &c.name, v.clone()));
                }
            }
            if change.action == Action::Update {
                change.changes.retain(|c| c.after != c.before);
                if change.changes.is_empty() {
                    change.action = Action::NoOp;
                }
            }
        }
        plan.summarize();
        Ok(())
    }

    /// Plans `stack` against `prior`.
    pub fn plan(&self, stack: &Stack, prior: &Prior, facts: &RegionFacts) -> Result<Plan, EngineError> {
        let graph = ResourceGraph::build(stack)
            .map_err(|c| EngineError::Internal(format!("dependency cycle: {}", c.path())))?;
        Ok(crate::plan::plan(stack, &graph, prior, facts)?)
    }
}

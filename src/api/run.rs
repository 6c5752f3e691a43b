//! A prepared run (state locked, refreshed, planned) and how it ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::ApiError;
use crate::Value;
use crate::config::Stack;
use crate::engine::{ApplyReport, Engine, step_graph};
use crate::graph::CancelFlag;
use crate::plan::Plan;
use crate::state::{LockHolder, StateError, StateStore};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Make the cloud match the stack.
    Apply,
    /// Delete every resource state records.
    Destroy,
}

/// What a prepared run is made of.
pub(super) struct Parts {
    pub operation: Operation,
    pub stack: Stack,
    pub engine: Engine,
    pub store: StateStore,
    pub plan: Plan,
    pub azs: Vec<String>,
    pub cancel: CancelFlag,
}

/// A run whose plan is computed, holding the state lock: show
/// [`Prepared::plan`], then [`Prepared::run`] it or drop it (which releases
/// the lock, changing nothing).
pub struct Prepared {
    parts: Parts,
    stale: Option<LockHolder>,
}

impl Prepared {
    pub(super) fn new(parts: Parts, stale: Option<LockHolder>) -> Prepared {
        Prepared { parts, stale }
    }

    /// The plan this run applies.
    pub fn plan(&self) -> &Plan {
        &self.parts.plan
    }

    /// Apply or destroy.
    pub fn operation(&self) -> Operation {
        self.parts.operation
    }

    /// The previous holder of the state lock, when it died holding it: its
    /// run was interrupted (this run resolved what it left).
    pub fn stale_lock(&self) -> Option<&LockHolder> {
        self.stale.as_ref()
    }

    /// How many steps the run has (for progress), when the plan's step
    /// graph can be built (if not, [`Prepared::run`] fails with its error).
    pub fn step_count(&self) -> Option<usize> {
        step_graph(&self.parts.plan, self.parts.store.state())
            .ok()
            .map(|g| g.nodes().len())
    }

    /// Applies the plan, recording every step in state as it happens, then
    /// compacts the state journal and releases the lock. A plan without
    /// changes returns at once.
    pub async fn run(self) -> Result<RunReport, ApiError> {
        let Parts {
            operation,
            stack,
            engine,
            store,
            plan,
            azs,
            cancel,
        } = self.parts;
        let started = Instant::now();
        let store = Arc::new(Mutex::new(store));
        let result = if plan.has_changes() {
            engine.apply(Some(&stack), &plan, store.clone(), &azs).await
        } else {
            Ok(ApplyReport::default())
        };
        let (outputs, clusters) = {
            let guard = store.lock().await;
            (
                guard.state().outputs.clone(),
                crate::kubeconfig::cluster_names(guard.state()),
            )
        };
        // Compacting now (rather than on drop) lets a failure be reported.
        let close_error = match Arc::try_unwrap(store) {
            Ok(store) => store.into_inner().close().err(),
            Err(_) => None,
        };
        let report = result?;
        Ok(RunReport {
            operation,
            plan,
            cancelled: cancel.is_cancelled(),
            report,
            outputs: if operation == Operation::Destroy {
                BTreeMap::new()
            } else {
                outputs
            },
            eks_clusters: if operation == Operation::Destroy {
                Vec::new()
            } else {
                clusters
            },
            elapsed: started.elapsed(),
            close_error,
        })
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    /// Apply or destroy.
    pub operation: Operation,
    /// The plan that was applied.
    pub plan: Plan,
    /// Each step's outcome, state write failures and resources dropped.
    pub report: ApplyReport,
    /// The run was cancelled through [`super::Options::cancel`].
    pub cancelled: bool,
    /// The stack's outputs as state records them after the run (empty
    /// after a destroy).
    pub outputs: BTreeMap<String, Value>,
    /// The names of the EKS clusters state records after the run.
    pub eks_clusters: Vec<String>,
    /// From the first step started to the last finished.
    pub elapsed: Duration,
    /// Compacting the state journal at the end failed: state is intact
    /// (the next run replays the journal).
    pub close_error: Option<StateError>,
}

impl RunReport {
    /// Every step done and recorded.
    pub fn is_success(&self) -> bool {
        self.report.is_success()
    }
}

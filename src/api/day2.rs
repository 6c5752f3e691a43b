//! Day-two operations through the API: `--target` restriction, saved plans,
//! import and renaming an address. The logic is the library's
//! (`plan::restrict`, `plan::saved`, `Engine::import`,
//! `StateStore::move_resource`); this file applies it under the state lock
//! with the workspace's stack and options.

use std::path::Path;

use super::run::{Operation, Parts, Prepared};
use super::{ApiError, StackSource, Workspace};
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Plan, Prior};
use crate::state::{ResourceState, State};

/// What a plan was made against: enough to save it.
#[derive(Debug)]
pub(super) struct Basis {
    /// State as it was read (under the lock).
    pub state: State,
    /// What the plan's refresh read.
    pub prior: Prior,
    /// The region's availability zones the plan used.
    pub azs: Vec<String>,
}

/// What [`Workspace::state_mv`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Where the state before the edit is kept.
    pub backup: String,
    /// The stack has a resource at the new address (if not, the next plan
    /// deletes what is now tracked there).
    pub in_stack: bool,
}

impl Workspace {
    /// Checks [`super::Options::targets`] against the stack and `state`
    /// (for a destroy, state only: it deletes only what state tracks).
    pub(super) fn check_targets(&self, state: &State, destroy: bool) -> Result<(), ApiError> {
        let in_stack = self.stack.resources.keys().filter(|_| !destroy);
        let known = in_stack
            .chain(state.resources.keys())
            .chain(state.pending.keys())
            .map(String::as_str);
        Ok(plan::check_targets(&self.options.targets, known)?)
    }

    /// Restricts `plan` to the targets and what they need, with the
    /// dependencies the refresh found recorded.
    pub(super) fn restrict(&self, plan: &mut Plan, prior: &Prior) -> Result<(), ApiError> {
        let recorded = prior
            .resources
            .iter()
            .map(|(a, p)| (a.clone(), p.dependencies.clone()))
            .collect();
        let outputs = plan::output_dependencies(&self.stack);
        Ok(plan::restrict(plan, &self.options.targets, &outputs, &recorded)?)
    }

    /// Writes `planned` to `file` as a saved plan, with the state's
    /// lineage and serial, a digest of the stack and the variables it was
    /// made with, for [`Workspace::prepare_saved`]. Needs a stack file
    /// (a saved plan re-loads it).
    pub fn save_plan(&self, planned: &super::Planned, file: &Path) -> Result<SavedPlan, ApiError> {
        let StackSource::File(stack_file) = &self.source else {
            return Err(ApiError::SavedPlanNeedsFile);
        };
        // Absolute, so that `apply FILE` finds stack and state from any
        // directory.
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let location = match self.state.as_path() {
            Some(p) => absolute(p).display().to_string(),
            None => self.state.to_string(),
        };
        let basis = &planned.basis;
        let saved = SavedPlan::new(
            &planned.plan,
            &self.stack,
            &absolute(stack_file),
            &self.options.vars,
            Some(&location),
            &basis.state,
            crate::engine::refreshed_state(&basis.state, &basis.prior),
            &basis.azs,
        )?;
        saved.write(file)?;
        Ok(saved)
    }

    /// Locks state and prepares `saved` for applying exactly as it was
    /// made: refuses, writing nothing, if the stack (as this workspace
    /// loaded it) or state changed since. No refresh: it would write state
    /// before the check. Open the workspace with the saved plan's stack
    /// file, variables and state location ([`SavedPlan::vars_with`]).
    pub async fn prepare_saved(&self, saved: &SavedPlan) -> Result<Prepared, ApiError> {
        let (mut store, stale) = self.lock().await?;
        let (plan, azs) = saved.prepare(&self.stack, &mut store)?;
        let aws = self.connect().await;
        Ok(Prepared::new(
            Parts {
                operation: Operation::Apply,
                stack: self.stack.clone(),
                engine: self.engine(&aws),
                store,
                plan,
                azs,
                cancel: self.options.cancel.clone(),
            },
            stale,
        ))
    }

    /// Brings the live object `id` under management at `address` (a
    /// resource of the stack): reads it through its kind and records it in
    /// state; nothing in the cloud changes (the next apply adds the
    /// ownership tags). Refuses, changing nothing, an address not in the
    /// stack or already tracked, an id that does not exist, or an object
    /// state already tracks elsewhere.
    pub async fn import(&self, address: &str, id: &str) -> Result<ResourceState, ApiError> {
        let (mut store, _) = self.lock().await?;
        let aws = self.connect().await;
        let engine = self.engine(&aws);
        Ok(engine.import(&self.stack, &mut store, address, id).await?)
    }

    /// Renames `from` to `to` in state (and in what state records as
    /// depending on it), touching nothing in the cloud.
    pub async fn state_mv(&self, from: &str, to: &str) -> Result<Moved, ApiError> {
        let (mut store, _) = self.lock().await?;
        store.move_resource(from, to)?;
        Ok(Moved {
            backup: store.backup_location(),
            in_stack: self.stack.resources.contains_key(to),
        })
    }
}

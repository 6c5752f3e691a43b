//! Day-two commands and options: `--target`, saved plans (`plan --out`,
//! `apply FILE`), `import` and `state mv`. The logic is in the library
//! (`plan::restrict`, `plan::saved`, `Engine::import`,
//! `StateStore::move_resource`); this file parses and renders.

use std::path::Path;
use std::process::ExitCode;

use miette::{Report, miette};

use super::StackArgs;
use super::commands::{connect, load, open_store, state_location};
use crate::config::Stack;
use crate::engine::{Engine, no_events};
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Plan};
use crate::provider;
use crate::state::{ResourceState, State, StateLocation};

/// What `plan`, `apply` and `destroy` take besides the stack: `--target`
/// addresses, or a saved plan to apply in place of planning.
#[derive(Debug, Default)]
pub(super) struct RunOptions {
    /// `--target` addresses (none: the whole stack).
    pub targets: Vec<String>,
    /// `apply FILE` of a saved plan: applied as it is, without refresh.
    pub saved: Option<SavedPlan>,
}

fn target_error(e: plan::TargetError) -> Report {
    let help = "`meshform state list` and the stack file name the addresses";
    miette!(help = help, "{e}")
}

/// Checks the `--target` addresses against the stack and `state` (for a
/// destroy, against state only: it deletes only what state tracks) before
/// anything is refreshed or written (see [`plan::check_targets`]).
pub(super) fn check_targets(
    targets: &[String],
    stack: &Stack,
    state: &State,
    destroy: bool,
) -> Result<(), Report> {
    let in_stack = stack.resources.keys().filter(|_| !destroy);
    let known = in_stack
        .chain(state.resources.keys())
        .chain(state.pending.keys())
        .map(String::as_str);
    plan::check_targets(targets, known).map_err(target_error)
}

/// Restricts `plan` to `targets` (see [`plan::restrict`]), with the
/// dependencies `prior` (the refresh) records.
pub(super) fn restrict(
    plan: &mut Plan,
    targets: &[String],
    stack: &Stack,
    prior: &plan::Prior,
) -> Result<(), Report> {
    let recorded = prior
        .resources
        .iter()
        .map(|(a, p)| (a.clone(), p.dependencies.clone()))
        .collect();
    plan::restrict(plan, targets, &plan::output_dependencies(stack), &recorded).map_err(target_error)
}

/// For `apply FILE`: when FILE is a saved plan, the stack arguments it was
/// made with (the stack file, its variables, the state location; `--var`
/// and `--state` given now are added) and the plan to apply. `None` when
/// FILE is a stack.
pub(super) fn saved_plan_args(
    args: &StackArgs,
    targets: &[String],
) -> Result<Option<(StackArgs, RunOptions)>, Report> {
    let Some(saved) = SavedPlan::sniff(&args.stack).map_err(Report::new)? else {
        return Ok(None);
    };
    if !targets.is_empty() {
        return Err(miette!(
            "--target cannot be given with a saved plan: its targets ({}) were fixed when it was made",
            if saved.targets.is_empty() {
                "none".to_string()
            } else {
                saved.targets.join(", ")
            }
        ));
    }
    let stack_args = StackArgs {
        stack: saved.stack_file.clone(),
        vars: saved.vars_with(&args.vars).map_err(Report::new)?,
        state: args.state.clone().or_else(|| saved.state_location.clone()),
    };
    Ok(Some((
        stack_args,
        RunOptions {
            targets: Vec::new(),
            saved: Some(saved),
        },
    )))
}

/// Whether `path` is a saved plan rather than a stack.
pub(super) fn is_saved_plan(path: &Path) -> Result<bool, Report> {
    Ok(SavedPlan::sniff(path).map_err(Report::new)?.is_some())
}

/// `plan --out FILE`: writes `plan` as a saved plan, with what it was made
/// against.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_saved_plan(
    file: &Path,
    plan: &Plan,
    stack: &Stack,
    args: &StackArgs,
    location: &StateLocation,
    state: &State,
    refreshed: std::collections::BTreeMap<String, ResourceState>,
    azs: &[String],
) -> Result<(), Report> {
    // Absolute, so that `apply FILE` finds the stack and state from any
    // directory.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let location = match location.as_path() {
        Some(p) => absolute(p).display().to_string(),
        None => location.to_string(),
    };
    let saved = SavedPlan::new(
        plan,
        stack,
        &absolute(&args.stack),
        &args.vars,
        Some(&location),
        state,
        refreshed,
        azs,
    )
    .map_err(Report::new)?;
    saved.write(file).map_err(Report::new)?;
    errln!(
        "Saved the plan to {}; `meshform apply {}` applies exactly it.",
        file.display(),
        file.display()
    );
    Ok(())
}

/// `apply FILE` of a saved plan, once state is locked: see
/// [`SavedPlan::prepare`] (refuses, changing nothing, a stale plan).
pub(super) fn prepare_saved(
    saved: &SavedPlan,
    stack: &Stack,
    store: &mut crate::state::StateStore,
) -> Result<(Plan, Vec<String>), Report> {
    saved.prepare(stack, store).map_err(Report::new)
}

/// `meshform import STACK ADDRESS ID`.
pub(super) async fn import_cmd(args: &StackArgs, address: &str, id: &str) -> Result<ExitCode, Report> {
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let mut store = open_store(args, &path, &stack).await?;
    let aws = connect(&stack).await;
    let engine = Engine::new(&stack.name, provider::all_kinds(&aws), no_events());
    let recorded = engine
        .import(&stack, &mut store, address, id)
        .await
        .map_err(Report::new)?;
    outln!(
        "imported {} {} as `{address}`; `meshform plan {}` shows how it differs from the stack (at least the ownership tags, which the next apply adds)",
        recorded.kind,
        recorded.id,
        args.stack.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `meshform state mv STACK FROM TO`.
pub(super) async fn state_mv(args: &StackArgs, from: &str, to: &str) -> Result<ExitCode, Report> {
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let mut store = open_store(args, &path, &stack).await?;
    store.move_resource(from, to).map_err(Report::new)?;
    if !stack.resources.contains_key(to) {
        errln!(
            "warning: stack `{}` has no resource `{to}`: the next plan deletes what is now tracked there",
            stack.name
        );
    }
    outln!("moved {from} to {to}");
    outln!("the previous state is in {}", store.backup_location());
    Ok(ExitCode::SUCCESS)
}

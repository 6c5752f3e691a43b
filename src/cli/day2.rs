//! Day-two commands and options: `--target`, saved plans (`plan --out`,
//! `apply FILE`), `import` and `state mv`. The logic is in the library
//! (`plan::restrict`, `plan::saved`, `Engine::import`,
//! `StateStore::move_resource`); this file parses and renders.

use std::path::Path;
use std::process::ExitCode;

use miette::{Report, miette};

use super::StackArgs;
use super::commands::{api_report, quiet_workspace};
use crate::plan::saved::SavedPlan;

/// What `plan`, `apply` and `destroy` take besides the stack: `--target`
/// addresses, or a saved plan to apply in place of planning.
#[derive(Debug, Default)]
pub(super) struct RunOptions {
    /// `--target` addresses (none: the whole stack).
    pub targets: Vec<String>,
    /// `apply FILE` of a saved plan: applied as it is, without refresh.
    pub saved: Option<SavedPlan>,
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

/// `meshform import STACK ADDRESS ID`.
pub(super) async fn import_cmd(args: &StackArgs, address: &str, id: &str) -> Result<ExitCode, Report> {
    let ws = quiet_workspace(args)?;
    let recorded = ws.import(address, id).await.map_err(|e| api_report(args, e))?;
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
    let ws = quiet_workspace(args)?;
    let moved = ws.state_mv(from, to).await.map_err(|e| api_report(args, e))?;
    if !moved.in_stack {
        errln!(
            "warning: stack `{}` has no resource `{to}`: the next plan deletes what is now tracked there",
            ws.stack().name
        );
    }
    outln!("moved {from} to {to}");
    outln!("the previous state is in {}", moved.backup);
    Ok(ExitCode::SUCCESS)
}

//! One function per subcommand.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, Report, miette};

use super::progress::{Progress, ProgressMode};
use super::{Command, StackArgs, StateCommand, day2};
use crate::api::{ApiError, Options, RunReport, StackSource, Workspace};
use crate::config::{self, LoadOptions, Stack};
use crate::engine::EventSink;
use crate::graph::{CancelFlag, ResourceGraph};
use crate::plan;
use crate::provider::{self, Mode};
use crate::state::{self, ForceUnlock, LockHolder, StateLocation};
use crate::{eks_auth, kubeconfig};

pub async fn run(command: Command, progress: ProgressMode) -> Result<ExitCode, Report> {
    match command {
        Command::Validate(args) => {
            let stack = load(&args)?;
            outln!(
                "{}: stack `{}` is valid ({} resources, {} outputs)",
                args.stack.display(),
                stack.name,
                stack.resources.len(),
                stack.outputs.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph(args) => {
            let stack = load(&args)?;
            let graph =
                ResourceGraph::build(&stack).map_err(|c| miette!("dependency cycle: {}", c.path()))?;
            let labels: BTreeMap<String, String> = stack
                .resources
                .values()
                .map(|r| (r.name.clone(), r.kind.type_name.to_string()))
                .collect();
            out!("{}", graph.to_dot(&labels));
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            stack,
            json,
            detailed_exitcode,
            targets,
            out,
        } => plan_cmd(&stack, json, detailed_exitcode, progress, targets, out.as_deref()).await,
        Command::Apply {
            stack,
            auto_approve,
            parallelism,
            targets,
        } => match day2::saved_plan_args(&stack, &targets)? {
            // A saved plan was reviewed when it was made: applied as is.
            Some((args, options)) => {
                apply_cmd(&args, true, parallelism.into(), false, progress, &options).await
            }
            None => {
                let options = day2::RunOptions { targets, saved: None };
                apply_cmd(
                    &stack,
                    auto_approve,
                    parallelism.into(),
                    false,
                    progress,
                    &options,
                )
                .await
            }
        },
        Command::Destroy {
            stack,
            auto_approve,
            parallelism,
            targets,
        } => {
            if day2::is_saved_plan(&stack.stack)? {
                return Err(miette!(
                    "{} is a saved plan: apply it with `meshform apply`; destroy takes a stack",
                    stack.stack.display()
                ));
            }
            let options = day2::RunOptions { targets, saved: None };
            apply_cmd(&stack, auto_approve, parallelism.into(), true, progress, &options).await
        }
        Command::Import { stack, address, id } => day2::import_cmd(&stack, &address, &id).await,
        Command::Shift(args) => super::shift::shift_cmd(args, progress).await,
        Command::Output { stack, name, json } => output_cmd(&stack, name.as_deref(), json).await,
        Command::State { command } => match command {
            StateCommand::List(args) => state_list(&args).await,
            StateCommand::Show { stack, address } => state_show(&stack, &address).await,
            StateCommand::Rm { stack, addresses } => state_rm(&stack, &addresses).await,
            StateCommand::Mv { stack, from, to } => day2::state_mv(&stack, &from, &to).await,
        },
        Command::ForceUnlock { stack, force } => force_unlock_cmd(&stack, force).await,
        Command::Types => {
            types();
            Ok(ExitCode::SUCCESS)
        }
        Command::EksToken { cluster, region } => eks_token_cmd(&cluster, &region).await,
        Command::Kubeconfig { stack, cluster, file } => {
            kubeconfig_cmd(&stack, cluster.as_deref(), file).await
        }
    }
}

pub(super) fn load(args: &StackArgs) -> Result<Stack, Report> {
    config::load(
        &args.stack,
        &LoadOptions {
            vars: args.vars.clone(),
        },
    )
    .map_err(Report::new)
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Opens the stack as a library [`Workspace`] with the command's
/// variables and state location, reporting to `events`.
pub(super) fn workspace(
    args: &StackArgs,
    events: EventSink,
    cancel: CancelFlag,
    parallelism: usize,
    targets: Vec<String>,
) -> Result<Workspace, Report> {
    let state = match &args.state {
        Some(text) => Some(StateLocation::parse(text).map_err(|e| miette!("--state {text}: {e}"))?),
        None => None,
    };
    let options = Options {
        vars: args.vars.clone(),
        state,
        targets,
        parallelism,
        events,
        // The progress printers redact what they print.
        raw_events: true,
        cancel,
        command: command_line(),
        aws: None,
    };
    Workspace::open(StackSource::File(args.stack.clone()), options).map_err(|e| api_report(args, e))
}

/// The workspace of a command that runs no plan (no progress events).
pub(super) fn quiet_workspace(args: &StackArgs) -> Result<Workspace, Report> {
    workspace(
        args,
        crate::engine::no_events(),
        CancelFlag::default(),
        10,
        Vec::new(),
    )
}

/// An API error as a report; a held lock says how to clear it.
pub(super) fn api_report(args: &StackArgs, error: ApiError) -> Report {
    match error {
        ApiError::State(e @ state::StateError::Locked { .. }) => {
            // A remote lock (s3://bucket/key.lock) is named with its state.
            let lock = match &e {
                state::StateError::Locked { path, .. } => path.display().to_string(),
                _ => String::new(),
            };
            let help = match lock.strip_suffix(".lock").filter(|_| lock.contains("://")) {
                Some(location) => format!(
                    "if it is dead: meshform force-unlock {} --state {location} (or wait until its lock expires)",
                    args.stack.display()
                ),
                None => format!("if it is dead: meshform force-unlock {}", args.stack.display()),
            };
            miette!(help = help, "{e}")
        }
        other => Report::new(other),
    }
}

fn warn_stale(stale: Option<&LockHolder>) {
    if let Some(stale) = stale {
        errln!("warning: the previous run ({stale}) ended without releasing the state lock; taking it over");
    }
}

async fn plan_cmd(
    args: &StackArgs,
    json: bool,
    detailed: bool,
    mode: ProgressMode,
    targets: Vec<String>,
    out: Option<&Path>,
) -> Result<ExitCode, Report> {
    let progress = Progress::start(mode);
    let ws = workspace(args, progress.sink(), CancelFlag::default(), 10, targets)?;
    // Planning reads state under the lock, so it never sees a half-applied run.
    let planned = ws.plan().await.map_err(|e| api_report(args, e))?;
    drop(progress);
    warn_stale(planned.stale_lock.as_ref());
    if let Some(file) = out {
        ws.save_plan(&planned, file).map_err(|e| api_report(args, e))?;
        errln!(
            "Saved the plan to {}; `meshform apply {}` applies exactly it.",
            file.display(),
            file.display()
        );
    }
    let plan = planned.plan;
    if json {
        let shown = crate::sensitive::redact_value(&serde_json::to_value(&plan).into_diagnostic()?);
        outln!("{}", serde_json::to_string_pretty(&shown).into_diagnostic()?);
    } else {
        out!("{}", plan::render(&plan));
    }
    Ok(if detailed && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// How one apply (or destroy) ended, for `apply` and `shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    /// Nothing to change, or every step done.
    Done,
    /// The user did not confirm.
    Declined,
    /// A step failed (already reported).
    Failed,
    /// Interrupted with Ctrl-C.
    Interrupted,
}

impl Applied {
    fn exit_code(self) -> ExitCode {
        match self {
            Applied::Done => ExitCode::SUCCESS,
            Applied::Declined | Applied::Failed => ExitCode::from(1),
            Applied::Interrupted => ExitCode::from(130),
        }
    }
}

async fn apply_cmd(
    args: &StackArgs,
    auto_approve: bool,
    parallelism: usize,
    destroy: bool,
    mode: ProgressMode,
    options: &day2::RunOptions,
) -> Result<ExitCode, Report> {
    apply_stack(args, auto_approve, parallelism, destroy, mode, options)
        .await
        .map(Applied::exit_code)
}

/// The one plan/apply path: load, lock, refresh, plan, show, confirm,
/// apply, record, summarize. `apply`, `destroy` and each step of `shift`
/// run through it.
pub(super) async fn apply_stack(
    args: &StackArgs,
    auto_approve: bool,
    parallelism: usize,
    destroy: bool,
    mode: ProgressMode,
    options: &day2::RunOptions,
) -> Result<Applied, Report> {
    let cancel = CancelFlag::default();
    // Dropped on every way out, which clears the live area.
    let progress = Progress::start(mode);
    let targets = options.targets.clone();
    let ws = workspace(args, progress.sink(), cancel.clone(), parallelism, targets)?;
    let prepared = if let Some(saved) = &options.saved {
        ws.prepare_saved(saved).await
    } else if destroy {
        ws.prepare_destroy().await
    } else {
        ws.prepare_apply().await
    }
    .map_err(|e| api_report(args, e))?;
    progress.pause();
    warn_stale(prepared.stale_lock());
    out!("{}", plan::render(prepared.plan()));
    if !prepared.plan().has_changes() {
        // Nothing to do; an apply still says where things are.
        if !destroy {
            let run = prepared.run().await.map_err(|e| api_report(args, e))?;
            summarize(&run, &args.stack);
        }
        return Ok(Applied::Done);
    }
    if !auto_approve && !confirm(destroy)? {
        outln!(
            "{} cancelled; nothing was changed.",
            if destroy { "Destroy" } else { "Apply" }
        );
        return Ok(Applied::Declined);
    }
    let interrupt = {
        let cancel = cancel.clone();
        let note = progress.notifier();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                note(
                    "\ninterrupted: starting nothing new; waiting for operations in flight, then saving state",
                );
                cancel.cancel();
            }
        })
    };
    // The step count heads the live view; a graph that cannot be built
    // fails in the run itself, with its error.
    progress.begin_steps(
        if destroy { "destroying" } else { "applying" },
        prepared.step_count(),
    );
    let result = prepared.run().await;
    interrupt.abort();
    drop(progress);
    let run = result.map_err(|e| api_report(args, e))?;
    if let Some(e) = &run.close_error {
        errln!("warning: {e}; the next run replays the state journal");
    }
    summarize(&run, &args.stack);
    Ok(if run.is_success() {
        Applied::Done
    } else if run.cancelled {
        Applied::Interrupted
    } else {
        Applied::Failed
    })
}

fn confirm(destroy: bool) -> Result<bool, Report> {
    let question = if destroy {
        "Delete every resource listed above? Only 'yes' is accepted: "
    } else {
        "Perform the actions above? Only 'yes' is accepted: "
    };
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        errln!("(reading the answer from standard input; use --auto-approve in scripts)");
    }
    out!("\n{question}");
    std::io::stdout().flush().into_diagnostic()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).into_diagnostic()?;
    Ok(answer.trim() == "yes")
}

fn summarize(run: &RunReport, stack_path: &Path) {
    // A remote state (s3://...) cannot be checked from here: it is named as
    // holding the last version written.
    let exists = |location: &str| location.contains("://") || Path::new(location).exists();
    let cx = super::summary::Context {
        stack_path,
        exists: &exists,
    };
    for line in super::summary::lines(run, &cx) {
        outln!("{line}");
    }
}

async fn output_cmd(args: &StackArgs, name: Option<&str>, json: bool) -> Result<ExitCode, Report> {
    let ws = quiet_workspace(args)?;
    let path = ws.state_location();
    let state = ws
        .read_state()
        .await
        .map_err(Report::new)?
        .ok_or_else(|| miette!("no state at {}: run `meshform apply` first", path))?;
    let outputs = &state.outputs;
    match name {
        Some(name) => {
            let value = outputs.get(name).ok_or_else(|| {
                let known = outputs.keys().cloned().collect::<Vec<_>>().join(", ");
                miette!("no output `{name}` in {} (outputs: {known})", path)
            })?;
            match (json, value) {
                (false, serde_json::Value::String(s)) => outln!("{s}"),
                _ => outln!("{value}"),
            }
        }
        None if json => outln!("{}", serde_json::to_string_pretty(outputs).into_diagnostic()?),
        None => {
            for (k, v) in outputs {
                match v {
                    serde_json::Value::String(s) => outln!("{k} = {s}"),
                    other => outln!("{k} = {other}"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn state_list(args: &StackArgs) -> Result<ExitCode, Report> {
    let ws = quiet_workspace(args)?;
    let Some(state) = ws.read_state().await.map_err(Report::new)? else {
        outln!("no state at {}", ws.state_location());
        return Ok(ExitCode::SUCCESS);
    };
    for (address, r) in &state.resources {
        outln!("{address}\t{}\t{}", r.kind, r.id);
    }
    for (address, p) in &state.pending {
        outln!(
            "{address}\t{}\t(create interrupted at {}; resolved on the next run)",
            p.kind,
            p.started_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn state_show(args: &StackArgs, address: &str) -> Result<ExitCode, Report> {
    let ws = quiet_workspace(args)?;
    let state = ws
        .read_state()
        .await
        .map_err(Report::new)?
        .ok_or_else(|| miette!("no state at {}", ws.state_location()))?;
    let shown = if let Some(r) = state.resources.get(address) {
        serde_json::json!({ "address": address, "resource": r })
    } else if let Some(p) = state.pending.get(address) {
        serde_json::json!({ "address": address, "interrupted_create": p })
    } else {
        return Err(Report::new(ws.unknown_address(&state, address)));
    };
    outln!("{}", serde_json::to_string_pretty(&shown).into_diagnostic()?);
    Ok(ExitCode::SUCCESS)
}

async fn state_rm(args: &StackArgs, addresses: &[String]) -> Result<ExitCode, Report> {
    let ws = quiet_workspace(args)?;
    let done = ws.state_rm(addresses).await.map_err(|e| api_report(args, e))?;
    for (address, what) in done.removed {
        outln!(
            "removed {address} ({what}): meshform no longer tracks it; whatever exists in the cloud is left alone"
        );
    }
    outln!("the previous state is in {}", done.backup);
    Ok(ExitCode::SUCCESS)
}

async fn force_unlock_cmd(args: &StackArgs, force: bool) -> Result<ExitCode, Report> {
    let ws = quiet_workspace(args)?;
    match ws.force_unlock(force).await.map_err(Report::new)? {
        ForceUnlock::WasStale(holder) => match holder {
            Some(h) => outln!("the lock was not held (last holder: {h}); cleared"),
            None => outln!("the state is not locked"),
        },
        ForceUnlock::Removed(holder) => match holder {
            Some(h) => outln!("removed the lock held by {h}"),
            None => outln!("removed the lock"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

async fn eks_token_cmd(cluster: &str, region: &str) -> Result<ExitCode, Report> {
    let credential = eks_auth::exec_credential(cluster, region)
        .await
        .map_err(Report::new)?;
    outln!("{}", serde_json::to_string(&credential).into_diagnostic()?);
    Ok(ExitCode::SUCCESS)
}

async fn kubeconfig_cmd(
    args: &StackArgs,
    cluster: Option<&str>,
    file: Option<PathBuf>,
) -> Result<ExitCode, Report> {
    let ws = quiet_workspace(args)?;
    let stack = ws.stack();
    let state = ws.read_state().await.map_err(Report::new)?.ok_or_else(|| {
        miette!(
            help = format!("run `meshform apply {}` first", args.stack.display()),
            "no state at {}: stack `{}` has no EKS cluster yet",
            ws.state_location(),
            stack.name
        )
    })?;
    let cluster = kubeconfig::select_cluster(&state, cluster, &stack.region).map_err(Report::new)?;
    let file = match file {
        Some(f) => f,
        None => kubeconfig::default_path().map_err(Report::new)?,
    };
    let program = std::env::current_exe()
        .into_diagnostic()
        .map_err(|e| e.wrap_err("cannot find the meshform executable for the exec entry"))?;
    let exec = kubeconfig::ExecCommand::eks_token(&program, &cluster);
    kubeconfig::write(&file, &cluster, &exec).map_err(Report::new)?;
    outln!(
        "wrote context `{}` (cluster `{}`) to {} and made it the current context",
        cluster.entry_name(),
        cluster.name,
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn types() {
    for kind in provider::kind_defs() {
        outln!(
            "{}{}",
            kind.type_name,
            if kind.doc.is_empty() {
                String::new()
            } else {
                format!(": {}", kind.doc)
            }
        );
        let mut names = kind.attr_names();
        names.sort();
        for name in names {
            if let Some(a) = kind.attr(name) {
                let mode = match a.mode {
                    Mode::Required => "required",
                    Mode::Optional => "optional",
                    Mode::Computed => "computed",
                };
                let replace = if a.force_new { ", forces replacement" } else { "" };
                outln!("    {name}: {} ({mode}{replace})", a.ty.describe());
            }
        }
    }
}

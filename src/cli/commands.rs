//! One function per subcommand.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use miette::{IntoDiagnostic, Report, miette};
use tokio::sync::Mutex;

use super::live_view::human;
use super::progress::{Progress, ProgressMode};
use super::{Command, StackArgs, StateCommand};
use crate::config::{self, LoadOptions, Stack};
use crate::engine::{ApplyReport, Engine, step_graph};
use crate::graph::{CancelFlag, Outcome, ResourceGraph};
use crate::plan::{self, Plan};
use crate::provider::aws::AwsClients;
use crate::provider::{self, Mode};
use crate::state::{self, ForceUnlock, LockHolder, StateLocation, StateStore};
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
        } => plan_cmd(&stack, json, detailed_exitcode, progress).await,
        Command::Apply {
            stack,
            auto_approve,
            parallelism,
        } => apply_cmd(&stack, auto_approve, parallelism.into(), false, progress).await,
        Command::Destroy {
            stack,
            auto_approve,
            parallelism,
        } => apply_cmd(&stack, auto_approve, parallelism.into(), true, progress).await,
        Command::Shift(args) => super::shift::shift_cmd(args, progress).await,
        Command::Output { stack, name, json } => output_cmd(&stack, name.as_deref(), json).await,
        Command::State { command } => match command {
            StateCommand::List(args) => state_list(&args).await,
            StateCommand::Show { stack, address } => state_show(&stack, &address).await,
            StateCommand::Rm { stack, addresses } => state_rm(&stack, &addresses).await,
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

pub(super) fn state_location(args: &StackArgs, stack: &Stack) -> Result<StateLocation, Report> {
    match (&args.state, &stack.state) {
        (Some(text), _) => StateLocation::parse(text).map_err(|e| miette!("--state {text}: {e}")),
        (None, Some(location)) => Ok(location.clone()),
        (None, None) => Ok(StateLocation::default_for(&stack.name)),
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

async fn connect(stack: &Stack) -> Arc<AwsClients> {
    Arc::new(AwsClients::connect(&stack.region).await)
}

async fn open_store(args: &StackArgs, path: &StateLocation, stack: &Stack) -> Result<StateStore, Report> {
    let opened = path
        .open(&stack.name, &stack.region, LockHolder::current(&command_line()))
        .await;
    let (store, stale) = match opened {
        Err(e @ state::StateError::Locked { .. }) => {
            let help = if path.is_remote() {
                format!(
                    "if it is dead: meshform force-unlock {} --state {path} (or wait until its lock expires)",
                    args.stack.display()
                )
            } else {
                format!("if it is dead: meshform force-unlock {}", args.stack.display())
            };
            return Err(miette!(help = help, "{e}"));
        }
        other => other.map_err(Report::new)?,
    };
    if let Some(stale) = stale {
        errln!("warning: the previous run ({stale}) ended without releasing the state lock; taking it over");
    }
    Ok(store)
}

async fn plan_cmd(
    args: &StackArgs,
    json: bool,
    detailed: bool,
    mode: ProgressMode,
) -> Result<ExitCode, Report> {
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    // Planning reads state under the lock, so it never sees a half-applied run.
    let store = open_store(args, &path, &stack).await?;
    let aws = connect(&stack).await;
    let progress = Progress::start(mode);
    let engine = Engine::new(&stack.name, provider::all_kinds(&aws), progress.sink());
    let facts = aws.region_facts().await.into_diagnostic()?;
    let prior = engine.refresh(store.state()).await.map_err(Report::new)?;
    let mut plan = engine.plan(&stack, &prior, &facts).map_err(Report::new)?;
    engine.preview(&mut plan, &prior).await.map_err(Report::new)?;
    drop(store);
    drop(progress);
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
) -> Result<ExitCode, Report> {
    apply_stack(args, auto_approve, parallelism, destroy, mode)
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
) -> Result<Applied, Report> {
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let mut store = open_store(args, &path, &stack).await?;
    let aws = connect(&stack).await;
    let cancel = CancelFlag::default();
    // Dropped on every way out, which clears the live area.
    let progress = Progress::start(mode);
    let engine = Engine::new(&stack.name, provider::all_kinds(&aws), progress.sink())
        .with_parallelism(parallelism)
        .with_cancel(cancel.clone());
    let prior = engine.refresh_into(&mut store).await.map_err(Report::new)?;
    let (plan, azs) = if destroy {
        (plan::plan_destroy(&stack.name, &stack.region, &prior), Vec::new())
    } else {
        let facts = aws.region_facts().await.into_diagnostic()?;
        let mut plan = engine.plan(&stack, &prior, &facts).map_err(Report::new)?;
        engine.preview(&mut plan, &prior).await.map_err(Report::new)?;
        (plan, facts.azs)
    };
    progress.pause();
    out!("{}", plan::render(&plan));
    if !plan.has_changes() {
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
    // fails in apply itself, with its error.
    let total = step_graph(&plan, store.state()).ok().map(|g| g.nodes().len());
    let started = Instant::now();
    progress.begin_steps(if destroy { "destroying" } else { "applying" }, total);
    let store = Arc::new(Mutex::new(store));
    let result = engine.apply(Some(&stack), &plan, store.clone(), &azs).await;
    interrupt.abort();
    drop(progress);
    let outputs = if destroy {
        BTreeMap::new()
    } else {
        store.lock().await.state().outputs.clone()
    };
    // Compact the state journal before the summary names the files (if a
    // task still held the store, dropping it compacts instead).
    if let Ok(store) = Arc::try_unwrap(store)
        && let Err(e) = store.into_inner().close()
    {
        errln!("warning: {e}; the next run replays the state journal");
    }
    let report = result.map_err(Report::new)?;
    summarize(&plan, &report, cancel.is_cancelled(), destroy, started.elapsed());
    if report.is_success() && !outputs.is_empty() {
        outln!("\nOutputs:");
        for (k, v) in &outputs {
            match v {
                serde_json::Value::String(s) => outln!("  {k} = {s}"),
                other => outln!("  {k} = {other}"),
            }
        }
    }
    Ok(if report.is_success() {
        Applied::Done
    } else if cancel.is_cancelled() {
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

fn summarize(plan: &Plan, report: &ApplyReport, interrupted: bool, destroy: bool, took: Duration) {
    let (done, failed, skipped, cancelled) = report.counts();
    let what = if destroy { "Destroy" } else { "Apply" };
    if !report.dropped.is_empty() {
        outln!(
            "\nWarning: {} resources were dropped from state without a delete call: their cluster could not be reached, and the cluster they lived in was deleted:",
            report.dropped.len()
        );
        for (address, host) in &report.dropped {
            outln!("  {address} (in {host})");
        }
    }
    if let Some(f) = &report.state_failure {
        outln!(
            "\n{what} stopped: state could not be written while recording `{}` (see the error above); nothing new was started after it. {done} done, {failed} failed, {skipped} skipped, {cancelled} not started.",
            f.step
        );
        // A remote state (s3://...) cannot be checked from here: name it.
        let remote = f.location.contains("://");
        if remote || Path::new(&f.location).exists() {
            outln!(
                "State: {} holds the last version written; it may lack the result of `{}`, whose cloud call may have been made.",
                f.location,
                f.step
            );
        } else {
            outln!("State: nothing was written yet ({} does not exist).", f.location);
        }
        if remote || Path::new(&f.backup).exists() {
            outln!(
                "Backup: {} holds an earlier version (as of the run's start or a later compaction of the state journal).",
                f.backup
            );
        }
        outln!(
            "Fix the cause and run the command again: it reads the cloud first, tracks what an interrupted create made (found by its ownership tags or natural key) and forgets what was deleted, so nothing is made twice."
        );
        return;
    }
    if report.is_success() {
        outln!(
            "\n{what} complete: {done} operations on stack `{}` in {}.",
            plan.stack,
            human(took)
        );
        return;
    }
    outln!(
        "\n{what} {}: {done} done, {failed} failed, {skipped} skipped, {cancelled} not started (after {}).",
        if interrupted { "interrupted" } else { "failed" },
        human(took)
    );
    for (step, error) in report.failures() {
        outln!("  root cause: {} ({}): {error}", step.address, step.op);
    }
    for (step, outcome) in &report.outcomes {
        if let Outcome::Skipped { because } = outcome {
            outln!(
                "  skipped: {} ({}) because {} failed",
                step.address,
                step.op,
                because.address
            );
        }
    }
    outln!("State records everything that was done; run the command again to continue.");
}

async fn output_cmd(args: &StackArgs, name: Option<&str>, json: bool) -> Result<ExitCode, Report> {
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let state = path
        .read(&stack.name, &stack.region)
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
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let Some(state) = path.read(&stack.name, &stack.region).await.map_err(Report::new)? else {
        outln!("no state at {}", path);
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
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let state = path
        .read(&stack.name, &stack.region)
        .await
        .map_err(Report::new)?
        .ok_or_else(|| miette!("no state at {}", path))?;
    let shown = if let Some(r) = state.resources.get(address) {
        serde_json::json!({ "address": address, "resource": r })
    } else if let Some(p) = state.pending.get(address) {
        serde_json::json!({ "address": address, "interrupted_create": p })
    } else {
        return Err(unknown_address(&state, address, &path));
    };
    outln!("{}", serde_json::to_string_pretty(&shown).into_diagnostic()?);
    Ok(ExitCode::SUCCESS)
}

async fn state_rm(args: &StackArgs, addresses: &[String]) -> Result<ExitCode, Report> {
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let mut store = open_store(args, &path, &stack).await?;
    // Check every address before changing anything.
    if let Some(missing) = addresses
        .iter()
        .find(|a| !store.state().resources.contains_key(*a) && !store.state().pending.contains_key(*a))
    {
        return Err(unknown_address(store.state(), missing, &path));
    }
    let removed: Vec<String> = addresses
        .iter()
        .map(|a| match store.state().resources.get(a) {
            Some(r) => format!("{a} ({} {})", r.kind, r.id),
            None => format!("{a} (an interrupted create)"),
        })
        .collect();
    store
        .update_labeled("state-rm", |s| {
            for a in addresses {
                s.resources.remove(a);
                s.pending.remove(a);
            }
        })
        .map_err(Report::new)?;
    for r in removed {
        outln!("removed {r}: meshform no longer tracks it; whatever exists in the cloud is left alone");
    }
    outln!("the previous state is in {}", store.backup_location());
    Ok(ExitCode::SUCCESS)
}

/// "state has no resource X", suggesting a close address.
fn unknown_address(state: &state::State, address: &str, path: &StateLocation) -> Report {
    let known = state
        .resources
        .keys()
        .chain(state.pending.keys())
        .map(String::as_str);
    let help = match config::suggest(address, known) {
        Some(s) => format!("did you mean `{s}`? (`meshform state list` shows them all)"),
        None => "`meshform state list` shows what state tracks".to_string(),
    };
    miette!(help = help, "{} tracks no resource `{address}`", path)
}

async fn force_unlock_cmd(args: &StackArgs, force: bool) -> Result<ExitCode, Report> {
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    match path
        .force_unlock(force, &stack.region)
        .await
        .map_err(Report::new)?
    {
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
    let stack = load(args)?;
    let path = state_location(args, &stack)?;
    let state = path
        .read(&stack.name, &stack.region)
        .await
        .map_err(Report::new)?
        .ok_or_else(|| {
            miette!(
                help = format!("run `meshform apply {}` first", args.stack.display()),
                "no state at {}: stack `{}` has no EKS cluster yet",
                path,
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

//! `meshform shift`: progressive traffic shifting with health gates. The
//! loop is the library's [`crate::shift::run`]; each step is applied through
//! [`super::commands::apply_stack`], the same path as `meshform apply`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use miette::{Report, miette};

use super::StackArgs;
use super::commands::{Applied, apply_stack, load, quiet_workspace};
use super::progress::{ProgressMode, printer};
use crate::shift::{self, ShiftError, ShiftPlan, StepApplier, StepError};

/// The pause when neither the command line nor the stack gives one.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

/// Options of `meshform shift`.
#[derive(Debug, clap::Args)]
pub struct ShiftArgs {
    /// The stack file.
    pub stack: PathBuf,
    /// `--var NAME` (no `=`) names the variable to shift; `--var NAME=VALUE`
    /// sets a variable as for apply (repeatable). `--var NAME=VALUE` for the
    /// shifted variable itself is its value before the shift: the last good
    /// value a failure at the first step returns to (default: the stack's
    /// default). Without `--var NAME`, the stack's one [shift.<var>] table.
    #[arg(long = "var", value_name = "NAME[=VALUE]")]
    pub vars: Vec<String>,
    /// State file (default: `.meshform/<stack name>.json` under the current directory).
    #[arg(long, value_name = "PATH")]
    pub state: Option<String>,
    /// The values to apply, in order: `10,50,100` (overrides the stack's `steps`).
    #[arg(long, value_name = "V1,V2,...")]
    pub steps: Option<String>,
    /// The wait after each step before the gates are evaluated: `60s`, `2m`,
    /// `500ms` (overrides the stack's `pause`; default 60s).
    #[arg(long, value_name = "DURATION")]
    pub pause: Option<String>,
    /// A health gate (repeatable; replaces the stack's gates):
    /// `deployment:NAMESPACE/NAME[@RESOURCE]` or
    /// `prometheus:URL;QUERY;OP;THRESHOLD` with OP one of < <= > >= ==.
    #[arg(long = "gate", value_name = "GATE")]
    pub gates: Vec<String>,
    /// At most this many operations at once in each apply.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
}

/// Applies the steps through the `apply` command's path.
struct CliApplier {
    args: ShiftArgs,
    variable: String,
    others: Vec<(String, String)>,
    mode: ProgressMode,
}

impl CliApplier {
    fn stack_args(&self, value: &str) -> StackArgs {
        let mut vars = self.others.clone();
        vars.push((self.variable.clone(), value.to_string()));
        StackArgs {
            stack: self.args.stack.clone(),
            vars,
            state: self.args.state.clone(),
        }
    }
}

#[async_trait::async_trait(?Send)]
impl StepApplier for CliApplier {
    async fn apply(&self, value: &str) -> Result<(), StepError> {
        let args = self.stack_args(value);
        match apply_stack(
            &args,
            true,
            self.args.parallelism.into(),
            false,
            self.mode,
            &Default::default(),
        )
        .await
        {
            Ok(Applied::Done) => Ok(()),
            Ok(Applied::Interrupted) => Err(StepError::Interrupted),
            Ok(Applied::Failed | Applied::Declined) => Err(StepError::Failed(
                "the apply failed (see its summary above)".to_string(),
            )),
            Err(report) => Err(StepError::Failed(format!("{report}"))),
        }
    }

    async fn wait(&self, pause: Duration) -> bool {
        errln!("waiting {} before the gates", super::live_view::human(pause));
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            r = tokio::signal::ctrl_c() => r.is_err(),
        }
    }
}

/// The value of a variable as `--var` writes it.
fn as_var_text(v: &crate::Value) -> String {
    match v {
        crate::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `meshform shift`.
pub async fn shift_cmd(args: ShiftArgs, mode: ProgressMode) -> Result<ExitCode, Report> {
    let mut named = Vec::new();
    let mut others = Vec::new();
    for v in &args.vars {
        match v.split_once('=') {
            Some((k, val)) if !k.trim().is_empty() => others.push((k.trim().to_string(), val.to_string())),
            Some(_) => return Err(miette!("`--var {v}` is not NAME or NAME=VALUE")),
            None => named.push(v.trim().to_string()),
        }
    }
    let base = StackArgs {
        stack: args.stack.clone(),
        vars: others.clone(),
        state: args.state.clone(),
    };
    let stack = load(&base)?;
    let variable = match named.as_slice() {
        [one] => one.clone(),
        [] => match stack.shifts.keys().collect::<Vec<_>>().as_slice() {
            [one] => (*one).clone(),
            [] => return Err(miette!("name the variable to shift: --var NAME")),
            many => {
                let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                return Err(miette!(
                    "the stack declares shifts of {}: name one with --var NAME",
                    names.join(", ")
                ));
            }
        },
        many => {
            return Err(miette!(
                "shift one variable at a time (got --var {})",
                many.join(", --var ")
            ));
        }
    };
    let Some(start) = stack.vars.get(&variable) else {
        let help = config_help(&stack, &variable);
        return Err(miette!(help = help, "the stack has no variable `{variable}`"));
    };
    let start = as_var_text(start);
    // The step values override the start value from now on.
    others.retain(|(k, _)| *k != variable);
    let decl = stack.shifts.get(&variable);
    let steps = match (&args.steps, decl) {
        (Some(s), _) => shift::parse_steps(s).map_err(|e| miette!("--steps: {e}"))?,
        (None, Some(d)) => d.steps.clone(),
        (None, None) => {
            return Err(miette!(
                "no steps for `{variable}`: give --steps 10,50,100 or declare [shift.{variable}] steps in the stack"
            ));
        }
    };
    let pause = match (&args.pause, decl.and_then(|d| d.pause)) {
        (Some(p), _) => shift::parse_pause(p).map_err(|e| miette!("--pause: {e}"))?,
        (None, Some(p)) => p,
        (None, None) => DEFAULT_PAUSE,
    };
    let specs = if args.gates.is_empty() {
        decl.map(|d| d.gates.clone()).unwrap_or_default()
    } else {
        args.gates
            .iter()
            .map(|g| shift::parse_gate(g).map_err(|e| miette!("--gate: {e}")))
            .collect::<Result<Vec<_>, _>>()?
    };
    if specs.is_empty() {
        errln!("warning: no gates: each step is applied after the pause without a health check");
    }
    let applier = CliApplier {
        args,
        variable: variable.clone(),
        others,
        mode,
    };
    // Every step must be a valid value before anything is applied.
    for step in &steps {
        load(&applier.stack_args(step)).map_err(|e| e.wrap_err(format!("step {variable}={step}")))?;
    }
    let state = quiet_workspace(&base)?.state_location().clone();
    let plan = ShiftPlan {
        variable: variable.clone(),
        steps: steps.clone(),
        pause,
        gates: specs
            .iter()
            .map(|s| s.bind(&state, &stack.name, &stack.region))
            .collect(),
        start: start.clone(),
    };
    errln!(
        "shift {variable}: {start} -> {} (pause {}, {} gates)",
        steps.join(" -> "),
        super::live_view::human(pause),
        plan.gates.len()
    );
    let report = match shift::run(&plan, &applier, &printer()).await {
        Ok(r) => r,
        // Ctrl-C exits 130, as apply does.
        Err(e @ ShiftError::Interrupted { .. }) => {
            errln!("{e}");
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(Report::new(e)),
    };
    outln!(
        "\nShift of `{variable}` complete: {} (every gate passed at every step).",
        report
            .steps
            .iter()
            .map(|(v, _)| v.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    Ok(ExitCode::SUCCESS)
}

fn config_help(stack: &crate::config::Stack, variable: &str) -> String {
    match crate::config::suggest(variable, stack.vars.keys().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "its variables: {}",
            stack.vars.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

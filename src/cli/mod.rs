//! The `meshform` command line: argument parsing and rendering only; the
//! work is done by the library.
//!
//! Everything it prints goes through [`crate::sensitive::redact`] (the
//! `outln!`/`errln!` macros, the progress printers, the log writer), so no
//! sensitive value shows.

/// `println!`, with sensitive values shown as `(sensitive)`.
macro_rules! outln {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", $crate::sensitive::redact(&format!($($arg)*)))
    };
}

/// `print!`, with sensitive values shown as `(sensitive)`.
macro_rules! out {
    ($($arg:tt)*) => {
        print!("{}", $crate::sensitive::redact(&format!($($arg)*)))
    };
}

/// `eprintln!`, with sensitive values shown as `(sensitive)`.
macro_rules! errln {
    () => {
        eprintln!()
    };
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::sensitive::redact(&format!($($arg)*)))
    };
}

mod commands;
mod day2;
mod live_term;
mod live_view;
mod progress;
mod shift;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// meshform: declarative infrastructure from one TOML stack.
#[derive(Debug, Parser)]
#[command(name = "meshform", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How apply, destroy and plan show progress on stderr: `live` redraws
    /// the steps in flight in place, `plain` prints one line per event,
    /// `auto` is live when stderr is a terminal and TERM is not `dumb`.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "MESHFORM_PROGRESS",
        default_value = "auto"
    )]
    pub progress: progress::ProgressMode,
}

/// Options shared by commands that read a stack.
#[derive(Debug, clap::Args)]
pub struct StackArgs {
    /// The stack file.
    pub stack: PathBuf,
    /// Override a variable from `[vars]`: `--var name=value` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Where the state is kept: a file path, or `s3://bucket/key` for
    /// remote state locked with S3 conditional writes (default: the
    /// stack's `[stack] state`, else `.meshform/<stack name>.json` under the
    /// current directory).
    #[arg(long, value_name = "PATH|s3://BUCKET/KEY")]
    pub state: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a stack file without touching the cloud.
    Validate(StackArgs),
    /// Print the stack's dependency graph in Graphviz DOT.
    Graph(StackArgs),
    /// Refresh, then show what apply would change.
    Plan {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// Print the plan as versioned JSON (see docs/plan-format.md).
        #[arg(long)]
        json: bool,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Plan only this resource and what it depends on (repeatable); the
        /// plan says it is partial.
        #[arg(long = "target", value_name = "ADDRESS")]
        targets: Vec<String>,
        /// Also write the plan to FILE, for `meshform apply FILE` to apply
        /// exactly it (refused if the stack or state changed meanwhile).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Plan, ask, then make the cloud match the stack; or, given a file
    /// written by `plan --out` instead of a stack, apply exactly that plan.
    Apply {
        /// The stack (or saved plan) and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// At most this many operations at once.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
        parallelism: u16,
        /// Apply only this resource and what it depends on (repeatable).
        #[arg(long = "target", value_name = "ADDRESS")]
        targets: Vec<String>,
    },
    /// Delete everything the stack's state tracks, dependents first.
    Destroy {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// At most this many operations at once.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
        parallelism: u16,
        /// Destroy only this resource and what depends on it (repeatable).
        #[arg(long = "target", value_name = "ADDRESS")]
        targets: Vec<String>,
    },
    /// Progressive delivery: apply the stack once per value of one variable
    /// (`--steps 10,50,100`), each through the apply path, pause, evaluate
    /// the health gates; on a failed gate apply the last good value again
    /// and exit non-zero naming the gate and the value it observed.
    Shift(shift::ShiftArgs),
    /// Print the stack's outputs recorded by the last apply.
    Output {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// Print only this output.
        name: Option<String>,
        /// Print JSON (a string output is quoted).
        #[arg(long)]
        json: bool,
    },
    /// Bring an existing object under management: read it by ID and record
    /// it in state at ADDRESS (a resource of the stack); nothing in the
    /// cloud changes.
    Import {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// The stack's resource to record it as.
        address: String,
        /// The object's cloud id (as `state show` would show it).
        id: String,
    },
    /// Inspect the state file.
    State {
        /// What to do with the state.
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Remove the state lock of a run that died without releasing it.
    ForceUnlock {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// Remove the lock even if its holder looks alive (dangerous). An
        /// S3 state's lock is always removed: a remote holder cannot be
        /// checked.
        #[arg(long)]
        force: bool,
    },
    /// List the resource types meshform knows and their attributes.
    Types,
    /// Print an EKS authentication token as a Kubernetes ExecCredential
    /// (kubectl runs this through the entry `meshform kubeconfig` writes).
    EksToken {
        /// The EKS cluster name.
        #[arg(long)]
        cluster: String,
        /// The cluster's region.
        #[arg(long)]
        region: String,
    },
    /// Write or merge a kubeconfig entry for the stack's EKS cluster (from
    /// state; no cloud calls) and make it the current context.
    Kubeconfig {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// The cluster's name, when the stack has several.
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
        /// The kubeconfig to write (default: the first path in $KUBECONFIG,
        /// else ~/.kube/config).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

/// Subcommands of `meshform state`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the resources the state tracks.
    List(StackArgs),
    /// Print what state records of one resource (or interrupted create), as JSON.
    Show {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// The resource's address.
        address: String,
    },
    /// Stop tracking resources without deleting them, for manual recovery;
    /// the previous state is kept as the backup.
    Rm {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// The addresses to forget.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Rename a resource's address in state (and in what state records as
    /// depending on it), without touching the cloud; the previous state is
    /// kept as the backup.
    Mv {
        /// The stack and its variables and state.
        #[command(flatten)]
        stack: StackArgs,
        /// The address state tracks the resource at.
        from: String,
        /// The new address.
        to: String,
    },
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

/// Log output on stderr, with sensitive values shown as `(sensitive)`.
/// The formatter hands each event over in one write.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(crate::sensitive::redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MESHFORM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        .init();
    // Unwrapped lines keep messages (ids, paths, pids) greppable in logs.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli.command, cli.progress)) {
        Ok(code) => code,
        Err(report) => {
            errln!("{report:?}");
            ExitCode::from(1)
        }
    }
}

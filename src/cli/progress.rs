//! Progress on stderr (stdout may carry JSON): plain lines, one per
//! resource step as it starts and as it ends with the step's elapsed time,
//! or, on a terminal, the live view (`live_view`, drawn by `live_term`).

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use super::live_term::LiveTerm;
use crate::engine::{Event, EventSink, Op};

fn verb(op: Op) -> (&'static str, &'static str) {
    match op {
        Op::Create => ("creating", "created"),
        Op::Update => ("updating", "updated"),
        Op::Delete => ("deleting", "deleted"),
        Op::Detach => ("detaching", "detached"),
        Op::Expand => ("expanding", "expanded"),
    }
}

/// "creating", "deleting"...
pub fn started_verb(op: Op) -> &'static str {
    verb(op).0
}

/// "created", "deleted"...
pub fn finished_verb(op: Op) -> &'static str {
    verb(op).1
}

/// How progress is shown (`--progress`, `MESHFORM_PROGRESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// Live on a terminal that can take it, plain lines otherwise.
    #[default]
    Auto,
    /// One line per event, as logs and scripts want.
    Plain,
    /// The live view, even when stderr does not look like a terminal.
    Live,
}

impl ProgressMode {
    /// Whether to draw the live view: forced, or `auto` with stderr on a
    /// terminal whose `TERM` is set and not `dumb` (cursor movements would
    /// show as garbage otherwise).
    fn is_live(self) -> bool {
        match self {
            ProgressMode::Plain => false,
            ProgressMode::Live => true,
            ProgressMode::Auto => {
                let term = std::env::var("TERM").unwrap_or_default();
                std::io::stderr().is_terminal() && !term.is_empty() && term != "dumb"
            }
        }
    }
}

/// The progress display of one command: plain lines or the live view.
pub struct Progress {
    live: Option<LiveTerm>,
}

impl Progress {
    /// Starts showing progress as `mode` asks.
    pub fn start(mode: ProgressMode) -> Progress {
        Progress {
            live: mode.is_live().then(LiveTerm::start),
        }
    }

    /// The sink to give the engine.
    pub fn sink(&self) -> EventSink {
        match &self.live {
            Some(live) => live.sink(),
            None => printer(),
        }
    }

    /// Steps start: `label` ("applying") and the number of steps, when
    /// known, head the live area.
    pub fn begin_steps(&self, label: &str, total: Option<usize>) {
        if let Some(live) = &self.live {
            live.begin_steps(label, total);
        }
    }

    /// Clears the live area (if any) before the command prints to the
    /// terminal itself: a plan, a question, a summary.
    pub fn pause(&self) {
        if let Some(live) = &self.live {
            live.pause();
        }
    }

    /// A function that prints a line above the live area, or on stderr.
    pub fn notifier(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let live = self.live.as_ref().map(LiveTerm::notifier);
        move |line: &str| match &live {
            Some(note) => note(line),
            None => errln!("{line}"),
        }
    }
}

/// The plain line of an event; `None` for events that print nothing.
pub fn plain_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::Refreshing { count } if *count > 0 => format!("refreshing {count} resources"),
        Event::Refreshing { .. } => return None,
        Event::PendingResolved {
            address,
            found: Some(id),
        } => {
            format!("{address}: found {id}, created by an interrupted run; now tracked")
        }
        Event::PendingResolved { address, found: None } => {
            format!("{address}: an interrupted run's create made nothing; it will be retried")
        }
        Event::Started { address, op } => format!("{address}: {}...", verb(*op).0),
        Event::Progress { address, message } => format!("{address}: {message}"),
        Event::Finished {
            address,
            op,
            id,
            elapsed,
        } => {
            let id = id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
            format!("{address}: {}{id} [{:.1}s]", verb(*op).1, elapsed.as_secs_f64())
        }
        Event::Failed {
            address,
            op,
            error,
            elapsed,
        } => {
            format!(
                "{address}: {op} FAILED after {:.1}s: {error}",
                elapsed.as_secs_f64()
            )
        }
        Event::Skipped { address, op, because } => {
            format!("{address}: {op} skipped because {because} failed")
        }
        Event::Cancelled { address, op } => format!("{address}: {op} not started (the run stopped)"),
        Event::Warning { address, message } => format!("{address}: warning: {message}"),
        Event::Dropped { address, host } => format!(
            "{address}: warning: dropped from state without a delete: its cluster could not be reached, and {host}, which it lived in, was deleted"
        ),
        Event::ShiftStep {
            variable,
            value,
            rollback: true,
            ..
        } => format!("shift {variable}: returning to the last good value: applying {variable}={value}"),
        Event::ShiftStep {
            variable,
            value,
            step,
            of,
            ..
        } => format!("shift {variable}: step {step}/{of}: applying {variable}={value}"),
        Event::GateChecked {
            gate,
            passed,
            observed,
            detail,
        } => format!(
            "gate {gate}: {} (observed {}): {detail}",
            if *passed { "passed" } else { "FAILED" },
            observed.as_deref().unwrap_or("none")
        ),
    })
}

/// Prints each event as one line on stderr.
pub fn printer() -> EventSink {
    Arc::new(|event: &Event| {
        if let Some(line) = plain_line(event) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}", crate::sensitive::redact(&line));
        }
    })
}

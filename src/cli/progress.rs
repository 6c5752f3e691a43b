//! Live progress: one line per resource step as it starts and as it ends,
//! with the step's elapsed time.

use std::io::Write;
use std::sync::Arc;

use crate::engine::{Event, EventSink, Op};

fn verb(op: Op) -> (&'static str, &'static str) {
    match op {
        Op::Create => ("creating", "created"),
        Op::Update => ("updating", "updated"),
        Op::Delete => ("deleting", "deleted"),
        Op::Detach => ("detaching", "detached"),
    }
}

/// Prints events to stderr (stdout may carry JSON).
pub fn printer() -> EventSink {
    Arc::new(|event: &Event| {
        let line = match event {
            Event::Refreshing { count } if *count > 0 => format!("refreshing {count} resources"),
            Event::Refreshing { .. } => return,
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
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    })
}

//! Events the engine reports as it works. The CLI turns them into progress
//! lines; tests and library users can record them.

use std::sync::Arc;
use std::time::Duration;

/// The kind of cloud operation a step performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        })
    }
}

/// Something that happened during refresh, apply or destroy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Reading the live state of `count` recorded resources.
    Refreshing {
        count: usize,
    },
    /// A create interrupted in an earlier run was resolved: the resource was
    /// found (and is now tracked) or was never made.
    PendingResolved {
        address: String,
        found: Option<String>,
    },
    Started {
        address: String,
        op: Op,
    },
    /// A status report during a long operation (for example "status CREATING").
    Progress {
        address: String,
        message: String,
    },
    Finished {
        address: String,
        op: Op,
        id: Option<String>,
        elapsed: Duration,
    },
    Failed {
        address: String,
        op: Op,
        error: String,
        elapsed: Duration,
    },
    /// Not started because `because` failed.
    Skipped {
        address: String,
        op: Op,
        because: String,
    },
    /// Not started because the run was interrupted.
    Cancelled {
        address: String,
        op: Op,
    },
}

/// Receives events; must be cheap and must not block.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// A sink that drops every event.
pub fn no_events() -> EventSink {
    Arc::new(|_| {})
}

//! Events the engine reports as it works. The CLI turns them into progress
//! lines; tests and library users can record them.

use std::sync::Arc;
use std::time::Duration;

/// The kind of cloud operation a step performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Creates the resource; for a replacement, after the old one is deleted.
    Create,
    /// Changes attributes of the existing resource in place.
    Update,
    /// Deletes the resource; for a replacement, the old one.
    Delete,
    /// Removes from the resource's lists references to objects about to be
    /// deleted, before its full update.
    Detach,
    /// Make-before-break: an interim update adding what the update adds
    /// while keeping what it removes, before the dependents change.
    Expand,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Detach => "detach",
            Op::Expand => "expand",
        })
    }
}

/// Something that happened during refresh, apply or destroy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Reading the live state of `count` recorded resources.
    Refreshing {
        /// How many resources state records (0 for a new stack).
        count: usize,
    },
    /// A create interrupted in an earlier run was resolved: the resource was
    /// found (and is now tracked) or was never made.
    PendingResolved {
        /// The address of the resource whose create was interrupted.
        address: String,
        /// The cloud id of the resource found; `None` when the create made
        /// nothing.
        found: Option<String>,
    },
    /// A step started its cloud operation.
    Started {
        /// The address of the step's resource.
        address: String,
        /// What the step does.
        op: Op,
    },
    /// A status report during a long operation (for example "status CREATING").
    Progress {
        /// The address of the resource being worked on.
        address: String,
        /// The status, as the resource kind reports it.
        message: String,
    },
    /// A step succeeded and state records its result.
    Finished {
        /// The address of the step's resource.
        address: String,
        /// What the step did.
        op: Op,
        /// The resource's cloud id: the new one after a create, the deleted
        /// one after a delete; `None` when a delete found nothing recorded.
        id: Option<String>,
        /// Time since the step started.
        elapsed: Duration,
    },
    /// A step failed; the steps that depend on it are skipped.
    Failed {
        /// The address of the step's resource.
        address: String,
        /// What the step tried to do.
        op: Op,
        /// The error message.
        error: String,
        /// Time since the step started.
        elapsed: Duration,
    },
    /// Not started because `because` failed.
    Skipped {
        /// The address of the skipped step's resource.
        address: String,
        /// What the step would have done.
        op: Op,
        /// The address of the resource whose step failed: the root cause,
        /// never another skipped step.
        because: String,
    },
    /// Something the user should know that does not stop the run, such as
    /// a resource that could not be refreshed because its cloud is
    /// unreachable.
    Warning {
        /// The resource concerned.
        address: String,
        /// What happened.
        message: String,
    },
    /// A resource was dropped from state without a delete call: its cloud
    /// could not be reached, and `host`, which it lived in, was deleted.
    Dropped {
        /// The resource dropped.
        address: String,
        /// The deleted resource it lived in (a cluster).
        host: String,
    },
    /// Not started because the run was interrupted.
    Cancelled {
        /// The address of the step's resource.
        address: String,
        /// What the step would have done.
        op: Op,
    },
    /// `meshform shift` is about to apply one value of its variable.
    ShiftStep {
        /// The variable shifted.
        variable: String,
        /// The value applied.
        value: String,
        /// The step's number, from 1 (0 for a return to the last good value).
        step: usize,
        /// How many steps the shift has.
        of: usize,
        /// Whether this applies the last good value again after a failure.
        rollback: bool,
    },
    /// A shift gate was evaluated.
    GateChecked {
        /// The gate's name.
        gate: String,
        /// Whether it passed.
        passed: bool,
        /// The value observed, if any.
        observed: Option<String>,
        /// Why it passed or failed.
        detail: String,
    },
}

/// Receives events; must be cheap and must not block.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

impl Event {
    /// The event with every text it carries passed through
    /// [`crate::sensitive::redact`]: what may be shown to a person or
    /// written to a log.
    pub fn redacted(&self) -> Event {
        let r = |s: &String| crate::sensitive::redact(s).into_owned();
        let mut e = self.clone();
        match &mut e {
            Event::Refreshing { .. } | Event::Started { .. } | Event::Cancelled { .. } => {}
            Event::PendingResolved { found, .. } => *found = found.as_ref().map(r),
            Event::Progress { message, .. } | Event::Warning { message, .. } => *message = r(message),
            Event::Finished { id, .. } => *id = id.as_ref().map(r),
            Event::Failed { error, .. } => *error = r(error),
            Event::Skipped { .. } | Event::Dropped { .. } => {}
            Event::ShiftStep { value, .. } => *value = r(value),
            Event::GateChecked { observed, detail, .. } => {
                *observed = observed.as_ref().map(r);
                *detail = r(detail);
            }
        }
        e
    }
}

/// A sink forwarding every event to `inner` redacted (see
/// [`Event::redacted`]).
pub fn redacting(inner: EventSink) -> EventSink {
    Arc::new(move |e: &Event| inner(&e.redacted()))
}

/// A sink that drops every event.
pub fn no_events() -> EventSink {
    Arc::new(|_| {})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_redacting_sink_hides_registered_secrets_in_every_text() {
        crate::sensitive::register(&json!("s3nt1nel-events"));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let inner: EventSink = {
            let seen = seen.clone();
            Arc::new(move |e: &Event| seen.lock().expect("not poisoned").push(e.clone()))
        };
        let sink = redacting(inner);
        sink(&Event::Failed {
            address: "cache".into(),
            op: Op::Create,
            error: "AUTH s3nt1nel-events refused".into(),
            elapsed: Duration::ZERO,
        });
        sink(&Event::Progress {
            address: "cache".into(),
            message: "token s3nt1nel-events".into(),
        });
        let seen = seen.lock().expect("not poisoned");
        let text = format!("{seen:?}");
        assert!(!text.contains("s3nt1nel-events"), "{text}");
        assert!(text.contains("AUTH (sensitive) refused"), "{text}");
    }
}

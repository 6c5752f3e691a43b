//! Test hooks that let crash-safety tests stop, slow down or fail meshform at
//! exact points of a run. Inert unless the environment variable
//! `MESHFORM_FAILPOINT` is set.
//!
//! `MESHFORM_FAILPOINT` holds comma-separated specs `[ACTION-]POINT:TARGET`:
//!
//! - `POINT` is one of `before-create`, `after-create`, `before-update`,
//!   `after-update`, `before-delete`, `after-delete` (TARGET is a resource
//!   address; "before" is after state recorded the intent and before the
//!   cloud call, "after" is after the cloud call returned and before state
//!   records its result), `state-write` (TARGET names the write, such as
//!   `finish-create/vpc`, `put/vpc`, `remove/vpc`, `begin-create/vpc`, or
//!   `compact` for a compaction's snapshot; for a journal append the point
//!   sits before the line is written, for a snapshot between writing the new
//!   temporary file and renaming it over the state file; for an S3 state,
//!   before the journal object is rewritten, and between the backup's and
//!   the snapshot's uploads), or
//!   `state-compact` (TARGET `start`: the journal holds the run's changes
//!   and the snapshot is not yet written; `replaced`: the new snapshot is in
//!   place and the journal not yet removed).
//! - `ACTION` is absent (hang: announce and block forever, so a test can
//!   SIGKILL the process exactly there), `delay` (announce and wait two
//!   seconds, so a test can interrupt while the operation is in flight) or
//!   `fail` (announce and make the operation fail), or `wait` (announce and
//!   wait until the file named by `MESHFORM_FAILPOINT_RESUME` exists, then
//!   go on: a test can pause a run there, act, and resume it).
//!
//! Every hit is announced on stderr as `meshform: failpoint SPEC reached`.

use std::time::Duration;

/// The environment variable holding the failpoint specs.
pub const ENV: &str = "MESHFORM_FAILPOINT";

/// The environment variable naming the file whose existence resumes a
/// `wait-` failpoint.
pub const RESUME_ENV: &str = "MESHFORM_FAILPOINT_RESUME";

/// How often a `wait-` failpoint looks for its file.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// How long a `delay-` failpoint waits.
const DELAY: Duration = Duration::from_secs(2);

/// What a reached failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Hang,
    Delay,
    Fail,
    Wait,
}

/// The action and spec of the failpoint set for `point` and `target`, if any.
fn matching(point: &str, target: &str) -> Option<(Action, String)> {
    let specs = std::env::var(ENV).ok()?;
    specs.split(',').map(str::trim).find_map(|spec| {
        let (action, rest) = if let Some(rest) = spec.strip_prefix("delay-") {
            (Action::Delay, rest)
        } else if let Some(rest) = spec.strip_prefix("fail-") {
            (Action::Fail, rest)
        } else if let Some(rest) = spec.strip_prefix("wait-") {
            (Action::Wait, rest)
        } else {
            (Action::Hang, spec)
        };
        let (p, t) = rest.split_once(':')?;
        (p == point && t == target).then(|| (action, spec.to_string()))
    })
}

/// Checks the failpoint `point` for `target` from async code. Returns
/// `Err(spec)` when a `fail-` failpoint is set there.
pub async fn hit(point: &str, target: &str) -> Result<(), String> {
    let Some((action, spec)) = matching(point, target) else {
        return Ok(());
    };
    eprintln!("meshform: failpoint {spec} reached");
    match action {
        Action::Hang => hang(),
        Action::Delay => {
            tokio::time::sleep(DELAY).await;
            Ok(())
        }
        Action::Wait => {
            while !resumed() {
                tokio::time::sleep(WAIT_POLL).await;
            }
            Ok(())
        }
        Action::Fail => Err(spec),
    }
}

/// Whether the resume file of `wait-` failpoints exists (never, when
/// `MESHFORM_FAILPOINT_RESUME` is not set: the wait is a hang then).
fn resumed() -> bool {
    std::env::var_os(RESUME_ENV).is_some_and(|path| std::path::Path::new(&path).exists())
}

/// Checks the failpoint `point` for `target` from blocking code (the state
/// store). Returns `Err(spec)` when a `fail-` failpoint is set there.
pub fn hit_blocking(point: &str, target: &str) -> Result<(), String> {
    let Some((action, spec)) = matching(point, target) else {
        return Ok(());
    };
    eprintln!("meshform: failpoint {spec} reached");
    match action {
        Action::Hang => hang(),
        Action::Delay => {
            std::thread::sleep(DELAY);
            Ok(())
        }
        Action::Wait => {
            while !resumed() {
                std::thread::sleep(WAIT_POLL);
            }
            Ok(())
        }
        Action::Fail => Err(spec),
    }
}

/// Blocks the calling thread for good: the test kills the process.
fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

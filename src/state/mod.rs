//! The state file: what meshform has created for a stack, and the lock that
//! keeps two runs from changing it at once.
//!
//! One JSON file per stack (by default `.meshform/<stack>.json`, see
//! [`default_path`]) records every managed resource with its cloud id,
//! attributes and dependencies, the creates that were started but not yet
//! recorded as finished, and the stack's outputs. Changes since that file was
//! last written are in the journal beside it (`<state file>.journal`, see
//! [`journal`]). The model is in [`model`], persistence in [`store`],
//! locking in [`lock`]. Where state lives is a [`StateLocation`]: a file, or
//! S3 objects (`s3://bucket/key`, see [`s3`]) persisted through the same
//! [`StateStore`] with an S3 [`StateBackend`].
//!
//! # Invariants
//!
//! - **Written after every operation, proportionally to the change.** The
//!   engine records each create, update and delete through
//!   [`StateStore::update`] (or one of the methods built on it) as soon as
//!   the cloud call returns, so a crash loses at most the operation in
//!   flight. Every write increments [`State::serial`]. A write is one
//!   fsynced journal line (the first write of a new state, and writes after
//!   a failed append, are snapshots instead).
//! - **The state is the snapshot plus the journal.** Loading (locked or
//!   not) replays the journal's records whose serial follows the
//!   snapshot's; records at or below it are already in the snapshot and are
//!   skipped, so replay is idempotent. A torn last line (a crash during an
//!   append) is ignored; damage before it, a record of another lineage or a
//!   gap in serials is [`StateError::Corrupt`].
//! - **Compacted.** The journal is written into the snapshot and removed at
//!   the end of a run ([`StateStore::close`], or when the store is dropped,
//!   on error paths too), when it grows past the snapshot's size (so bytes
//!   written stay linear in the changes), and when [`StateStore::open`]
//!   finds one left by a crashed run.
//! - **Never half-written.** A snapshot goes to a temporary file in the same
//!   directory, is fsynced, renamed over the state file, and the directory is
//!   fsynced. A crash leaves either the old or the new file, never a mix; a
//!   leftover temporary file is ignored on load and removed by the next
//!   [`StateStore::open`].
//! - **Private.** The state file, its backup, the journal and the lock file
//!   are created with mode `0600` (attributes may hold secrets); a created
//!   state directory gets `0700`.
//! - **Previous version kept.** Before each snapshot write the snapshot
//!   currently on disk is written (atomically, the same way) to
//!   `<state file>.backup`: the backup is the state as of the previous
//!   compaction (for a run, usually the state it started from).
//! - **Exclusive, fail-fast lock.** [`StateStore::open`] takes an exclusive
//!   `flock` on `<state file>.lock` without waiting. If another run holds it,
//!   opening fails at once with [`StateError::Locked`], naming the holder's
//!   pid, host, start time and command, which the holder writes into the lock
//!   file. The OS releases a `flock` when its holder dies, so a crashed run
//!   never blocks the next one; its leftover holder record is reported as
//!   stale. [`force_unlock`] removes a lock by hand.
//! - **Pending creates recorded before the cloud call.** A create first
//!   records a [`PendingCreate`] with an idempotency token
//!   ([`StateStore::begin_create`]), then calls the cloud, then replaces the
//!   pending entry with the [`ResourceState`] ([`StateStore::finish_create`]).
//!   A pending entry found on the next run means a crash between the call and
//!   the state write: the engine resolves it by looking the resource up by
//!   its ownership tags or natural key.
//! - **Remote state: conditional writes under a lease.** An S3 state
//!   ([`s3`]) is locked by a lock object created with `If-None-Match: *`,
//!   holding the holder and an expiry the holder renews; an unexpired lock
//!   makes opening fail at once with [`StateError::Locked`], an expired one
//!   is taken over (conditionally) and its holder reported as stale. Every
//!   write of the snapshot, journal (rewritten whole per append; compacted
//!   at [`s3::JOURNAL_LIMIT`], see [`StateBackend::journal_limit`]), backup
//!   and lock is conditional on the ETag this run last saw, so a run whose
//!   lock was broken gets [`StateError::Superseded`] instead of
//!   overwriting a newer state; once its renewal is refused or its lease
//!   has run out it refuses every write itself. With bucket versioning on,
//!   every previous version stays recoverable.
//! - **In memory equals on disk.** [`StateStore::update`] changes the
//!   in-memory state only once the change is persisted; when persisting
//!   fails (a journal append included) it returns the error and the caller
//!   must stop.

pub mod edit;
pub mod journal;
pub mod location;
pub mod lock;
pub mod memory;
pub mod model;
pub mod s3;
pub mod store;

use std::path::PathBuf;

pub use edit::EditError;
pub use location::StateLocation;
pub use lock::{ForceUnlock, LockHolder, StateLock, force_unlock, lock_path};
pub use memory::MemoryState;
pub use model::{
    DEPOSED_SUFFIX, FORMAT_VERSION, PendingCreate, ResourceState, State, deposed_of, format_rfc3339,
    now_rfc3339,
};
pub use store::{PersistFailure, StateBackend, StateStore, backup_path, default_path, journal_path};

/// Errors reading, writing or locking state.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    /// A file system operation on a state, backup, lock or temporary file (or
    /// their directory) failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file is not valid JSON or does not have the state's shape.
    #[error(
        "state file {} is corrupt: {message} (the version before the last write, if any, is in {})",
        path.display(),
        backup_path(path).display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong, with line and column where the parser gives them.
        message: String,
    },
    /// The state file was written by a newer meshform.
    #[error(
        "state file {} has format version {found}, but this meshform supports only up to {supported}; upgrade meshform",
        path.display()
    )]
    UnsupportedVersion {
        /// The state file.
        path: PathBuf,
        /// The file's `format_version`.
        found: u64,
        /// [`FORMAT_VERSION`].
        supported: u32,
    },
    /// The state file records another stack.
    #[error(
        "state file {} belongs to stack `{found}`, not `{expected}`",
        path.display()
    )]
    WrongStack {
        /// The state file.
        path: PathBuf,
        /// The stack being opened.
        expected: String,
        /// The stack the file records.
        found: String,
    },
    /// Another process holds the state lock.
    #[error(
        "state lock {} is held by {}; if that process is dead, run `meshform force-unlock`",
        path.display(),
        describe_holder(holder.as_deref())
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder recorded in the lock file; `None` when it names none
        /// (the holder may be between taking the lock and writing its record).
        /// Boxed, as in [`StateError::LockHolderAlive`], to keep every state
        /// result small.
        holder: Option<Box<LockHolder>>,
    },
    /// A request to the S3 bucket holding remote state failed (network,
    /// permissions, a missing bucket), or the remote state's settings are
    /// invalid.
    #[error("remote state {location}: {message}")]
    Remote {
        /// The object (`s3://bucket/key...`) the request was about.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// A conditional write of remote state was refused, or this run's lock
    /// is no longer held: another run changed the state after this one last
    /// read or wrote it (this run's lock was force-unlocked, or expired and
    /// was taken over). This run must not write again.
    #[error(
        "state {location} was changed by another run, so this run stops without overwriting it: {reason}. This run's state lock was broken (force-unlock) or taken over after it expired; the other run's state stands. Run the command again once the other run is done"
    )]
    Superseded {
        /// The state object whose write was refused, or the lock object.
        location: String,
        /// What was refused, or how the lock was lost.
        reason: String,
    },
    /// [`force_unlock`] without `force` found the lock held by a process that
    /// is still running on this host.
    #[error(
        "state lock {} is held by {holder}, which is still running on this host; stop it first, or force-unlock with --force if you are sure it is not writing the state",
        path.display()
    )]
    LockHolderAlive {
        /// The lock file.
        path: PathBuf,
        /// The running holder.
        holder: Box<LockHolder>,
    },
}

impl StateError {
    /// Builds a [`StateError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StateError::Io {
            path: path.into(),
            source,
        }
    }
}

fn describe_holder(holder: Option<&LockHolder>) -> String {
    match holder {
        Some(h) => h.to_string(),
        None => "an unknown process (the lock file names no holder)".to_string(),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    /// A fresh directory under the system temp dir, removed when dropped.
    pub(crate) struct TestDir(PathBuf);

    impl TestDir {
        pub(crate) fn new(name: &str) -> TestDir {
            let dir = std::env::temp_dir().join(format!(
                "meshform-state-{name}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir).expect("create test dir");
            TestDir(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

//! Loading and persisting the state file under its lock.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::StateError;
use super::journal::{self, Change};
use super::lock::{LockHolder, StateLock, lock_path};
use super::model::{FORMAT_VERSION, PendingCreate, ResourceState, State};
use crate::{Attrs, Value};

/// The default state file of a stack: `.meshform/<stack>.json`, relative to
/// the current directory.
pub fn default_path(stack: &str) -> PathBuf {
    Path::new(".meshform").join(format!("{stack}.json"))
}

/// The backup of a state file: `<state file>.backup`, holding the version
/// before the last write.
pub fn backup_path(state_path: &Path) -> PathBuf {
    let mut s = state_path.as_os_str().to_owned();
    s.push(".backup");
    PathBuf::from(s)
}

/// The journal of a state file: `<state file>.journal`, holding the changes
/// made since the state file was last written (see [`journal`]).
pub fn journal_path(state_path: &Path) -> PathBuf {
    let mut s = state_path.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// The journal is compacted into the snapshot during a run once it holds
/// more bytes than the snapshot, and at least this many: each compaction
/// then rewrites no more than the journal bytes written since the last one,
/// so bytes written stay linear in the changes made.
const COMPACT_MIN_BYTES: u64 = 64 * 1024;

/// Where a state's bytes are persisted: a local file (the default), or
/// memory for tests and library users who keep state elsewhere.
pub trait StateBackend: Send + std::fmt::Debug {
    /// Persists `next` as the state, keeping `previous` (the bytes persisted
    /// before, `None` for the first write) as the backup. Atomic: if the
    /// process dies during the call, the persisted state is either
    /// `previous` or `next`. `label` names what the write records (for
    /// example `finish-create/vpc`), for failpoints and diagnostics.
    fn persist(&mut self, previous: Option<&[u8]>, next: &[u8], label: &str) -> Result<(), PersistFailure>;

    /// Appends `record` (one whole journal line) to the journal, durably
    /// before returning. `label` names the write as for [`persist`](Self::persist).
    /// A failure may leave a prefix of the record (a torn line, which replay
    /// ignores); `in_place` means the whole record is written.
    fn append(&mut self, record: &[u8], label: &str) -> Result<(), PersistFailure>;

    /// Empties the journal, once what it holds is in the persisted state.
    fn clear_journal(&mut self) -> Result<(), StateError>;

    /// Where the state is kept, for messages (a file path).
    fn location(&self) -> String;

    /// Where the version before the last write is kept, for messages.
    fn backup_location(&self) -> String;

    /// The journal size (bytes appended since it was last emptied) past
    /// which the store compacts it into the snapshot during a run, given
    /// the snapshot's size. The default (the file backend's) is the larger
    /// of the two sizes and 64 KiB, so bytes written stay linear in the
    /// changes. A backend that cannot append (S3: every append rewrites the
    /// whole journal object) returns a small fixed limit instead.
    fn journal_limit(&self, snapshot_bytes: u64) -> u64 {
        snapshot_bytes.max(COMPACT_MIN_BYTES)
    }
}

/// A write that failed.
#[derive(Debug)]
pub struct PersistFailure {
    /// What went wrong.
    pub error: StateError,
    /// The new version is in place all the same (for a file: renamed over
    /// the state file, but the directory fsync that makes it durable failed).
    pub in_place: bool,
}

impl From<StateError> for PersistFailure {
    fn from(error: StateError) -> Self {
        PersistFailure {
            error,
            in_place: false,
        }
    }
}

/// The file backend: `<state file>`, `<state file>.backup` and
/// `<state file>.journal`, written under the lock `<state file>.lock`, held
/// until dropped.
#[derive(Debug)]
struct FileBackend {
    path: PathBuf,
    backup_path: PathBuf,
    journal_path: PathBuf,
    /// The journal, open for appending once this run created it.
    journal: Option<File>,
    _lock: StateLock,
}

impl StateBackend for FileBackend {
    /// The version currently on disk is first written to the backup file;
    /// then the new version goes to a temporary file (mode `0600`) in the
    /// same directory, which is fsynced and renamed over the state file, and
    /// the directory is fsynced. Both renames are atomic.
    fn persist(&mut self, previous: Option<&[u8]>, next: &[u8], label: &str) -> Result<(), PersistFailure> {
        let names = TempNames::of(&self.path)?;
        if let Some(previous) = previous {
            replace(&self.backup_path, &names.backup_prefix, previous, None)?;
        }
        replace(&self.path, &names.state_prefix, next, Some(label))?;
        sync_dir(&parent_dir(&self.path)).map_err(|error| PersistFailure {
            error,
            in_place: true,
        })
    }

    /// Creates the journal (mode `0600`, its directory entry fsynced) on
    /// the first append, then writes the line with one `write` and fsyncs
    /// the file. The `state-write` failpoint sits before the write.
    fn append(&mut self, record: &[u8], label: &str) -> Result<(), PersistFailure> {
        let path = &self.journal_path;
        let io_err = |e| StateError::io(path, e);
        crate::failpoint::hit_blocking("state-write", label)
            .map_err(|spec| io_err(io::Error::other(format!("failpoint {spec}"))))?;
        if self.journal.is_none() {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .map_err(io_err)?;
            // The umask may have taken more than group and other bits.
            file.set_permissions(Permissions::from_mode(0o600))
                .map_err(io_err)?;
            sync_dir(&parent_dir(path))?;
            self.journal = Some(file);
        }
        let Some(file) = self.journal.as_mut() else {
            return Err(io_err(io::Error::other("the journal is not open")).into());
        };
        file.write_all(record).map_err(io_err)?;
        file.sync_data().map_err(|e| PersistFailure {
            error: io_err(e),
            in_place: true,
        })
    }

    /// Removes the journal file and fsyncs the directory.
    fn clear_journal(&mut self) -> Result<(), StateError> {
        self.journal = None;
        match std::fs::remove_file(&self.journal_path) {
            Ok(()) => sync_dir(&parent_dir(&self.journal_path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::io(&self.journal_path, e)),
        }
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn backup_location(&self) -> String {
        self.backup_path.display().to_string()
    }
}

/// A stack's state, loaded and locked for changing.
///
/// Every change goes through [`StateStore::update`] (or a method built on
/// it), which persists it before it returns: as one record appended to the
/// journal, or, for a state not yet written, as the first snapshot. The
/// journal is compacted into the snapshot when it grows past the snapshot's
/// size, on [`StateStore::close`] and when the store is dropped. The lock is
/// held until the store is dropped.
#[derive(Debug)]
pub struct StateStore {
    backend: Box<dyn StateBackend>,
    state: State,
    /// The snapshot's bytes as persisted; `None` while nothing has been written.
    on_disk: Option<Vec<u8>>,
    /// The serial of the persisted snapshot.
    snapshot_serial: u64,
    /// Bytes appended to the journal since it was last emptied.
    journal_bytes: u64,
    /// The journal may end in a torn line or hold records not compacted:
    /// set by a failed append or a leftover journal. Until a compaction
    /// empties it, nothing is appended and changes are written as snapshots.
    journal_dirty: bool,
}

impl StateStore {
    /// Locks and loads the state file at `path` for `stack`.
    ///
    /// Creates missing parent directories (mode `0700`), takes the lock
    /// `<path>.lock` recording `holder` (failing at once with
    /// [`StateError::Locked`] if another run holds it), removes temporary
    /// files left by an interrupted write, and loads the file. A journal
    /// (`<path>.journal`) left by an interrupted run is replayed onto it and
    /// compacted into it. A missing file gives a new empty [`State`], which
    /// is not written until the first update.
    ///
    /// Also returns the record of a previous holder that died without
    /// releasing the lock, if the lock file held one: its run was
    /// interrupted, and the state may hold pending creates to resolve.
    ///
    /// Fails with [`StateError::Corrupt`], [`StateError::UnsupportedVersion`]
    /// or [`StateError::WrongStack`] when the file (or journal) cannot be
    /// used.
    pub fn open(
        path: &Path,
        stack: &str,
        holder: LockHolder,
    ) -> Result<(StateStore, Option<LockHolder>), StateError> {
        let names = TempNames::of(path)?;
        let dir = parent_dir(path);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| StateError::io(&dir, e))?;
        let (lock, stale) = StateLock::acquire(&lock_path(path), &holder)?;
        // Only the lock holder writes, so any temporary file is a leftover.
        names.remove_leftovers(&dir);
        let backend = FileBackend {
            path: path.to_path_buf(),
            backup_path: backup_path(path),
            journal_path: journal_path(path),
            journal: None,
            _lock: lock,
        };
        let journal = read_bytes(&journal_path(path))?;
        let store = StateStore::with_backend(Box::new(backend), read_bytes(path)?, journal, stack)?;
        Ok((store, stale))
    }

    /// A store persisting through `backend`, starting from `persisted` (the
    /// snapshot the backend holds now; `None` for a new state) and `journal`
    /// (the journal's bytes, if any), which is replayed and compacted. The
    /// backend must already exclude other writers.
    pub fn with_backend(
        backend: Box<dyn StateBackend>,
        persisted: Option<Vec<u8>>,
        journal: Option<Vec<u8>>,
        stack: &str,
    ) -> Result<StateStore, StateError> {
        let location = PathBuf::from(backend.location());
        let mut state = match &persisted {
            Some(bytes) => parse(&location, stack, bytes)?,
            None => State::new(stack),
        };
        // Changes are canonicalized one by one; start from a canonical state.
        canonicalize(&mut state);
        let snapshot_serial = state.serial;
        let journal = journal.filter(|j| !j.is_empty());
        if let Some(journal) = &journal {
            replay_journal(&location, persisted.is_some(), &mut state, journal)?;
        }
        let mut store = StateStore {
            backend,
            state,
            on_disk: persisted,
            snapshot_serial,
            journal_bytes: 0,
            journal_dirty: journal.is_some(),
        };
        if let Err(e) = store.compact() {
            // Leave the journal to the next load, without a second try on drop.
            store.journal_dirty = false;
            return Err(e);
        }
        Ok(store)
    }

    /// Reads the state file at `path` for `stack` without locking, for
    /// read-only commands, with the changes its journal records applied
    /// (in memory only); `None` if there is no state file yet.
    ///
    /// Snapshots replace the file atomically, the journal only grows until
    /// a compaction has put its records in the snapshot, and the journal is
    /// read first: so this sees a state some write produced, never a mix.
    pub fn read(path: &Path, stack: &str) -> Result<Option<State>, StateError> {
        let journal = read_bytes(&journal_path(path))?;
        StateStore::read_parts(path, stack, read_bytes(path)?, journal)
    }

    /// The state from a snapshot's and a journal's bytes (either may be
    /// missing), read without the lock from the location named `path`
    /// (for messages): the snapshot with the journal replayed in memory,
    /// `None` if there is no snapshot. The journal must have been read
    /// before the snapshot (see [`read`](Self::read)).
    pub fn read_parts(
        path: &Path,
        stack: &str,
        snapshot: Option<Vec<u8>>,
        journal: Option<Vec<u8>>,
    ) -> Result<Option<State>, StateError> {
        let journal = journal.filter(|j| !j.is_empty());
        let Some(bytes) = snapshot else {
            if let Some(journal) = &journal {
                replay_journal(path, false, &mut State::new(stack), journal)?;
            }
            return Ok(None);
        };
        let mut state = parse(path, stack, &bytes)?;
        if let Some(journal) = &journal {
            replay_journal(path, true, &mut state, journal)?;
        }
        Ok(Some(state))
    }

    /// The state as last written (or loaded).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Where the state is kept (the state file's path), for messages.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Where the version before the last write is kept (`<state file>.backup`).
    pub fn backup_location(&self) -> String {
        self.backend.backup_location()
    }

    /// Writes the state as a new snapshot (keeping the previous one as the
    /// backup) and empties the journal, if the journal holds anything.
    /// Called on [`close`](Self::close), on drop, when loading, and when the
    /// journal outgrows the snapshot.
    ///
    /// The failpoint `state-compact:start` sits before the snapshot write,
    /// `state-compact:replaced` between it and the journal's removal.
    pub fn compact(&mut self) -> Result<(), StateError> {
        if !self.journal_dirty && self.journal_bytes == 0 {
            return Ok(());
        }
        let location = self.backend.location();
        let failpoint = |target: &str| {
            crate::failpoint::hit_blocking("state-compact", target)
                .map_err(|spec| StateError::io(&location, io::Error::other(format!("failpoint {spec}"))))
        };
        failpoint("start")?;
        if self.state.serial != self.snapshot_serial {
            let bytes = snapshot_bytes(&self.state, &location)?;
            self.persist_snapshot(bytes, "compact")?;
        }
        failpoint("replaced")?;
        self.backend.clear_journal()?;
        self.journal_bytes = 0;
        self.journal_dirty = false;
        Ok(())
    }

    /// Compacts the journal into the snapshot and releases the store.
    pub fn close(mut self) -> Result<(), StateError> {
        self.compact()
    }

    /// Persists `bytes` (the current state) as the snapshot.
    fn persist_snapshot(&mut self, bytes: Vec<u8>, label: &str) -> Result<(), StateError> {
        let result = self.backend.persist(self.on_disk.as_deref(), &bytes, label);
        if result.is_ok() || result.as_ref().is_err_and(|f| f.in_place) {
            self.on_disk = Some(bytes);
            self.snapshot_serial = self.state.serial;
        }
        result.map_err(|f| f.error)
    }

    /// Changes the state with `f`, increments the serial and persists it.
    ///
    /// `f` works on a copy: the in-memory state changes only once the new
    /// version is persisted, so when writing fails the store still holds
    /// what is persisted and the error is returned. The caller must then
    /// stop, as the change `f` recorded (for example a resource just
    /// created) is not in state. If only the file backend's final directory
    /// fsync fails, the new file is in place and the error is still
    /// returned.
    ///
    /// `f` cannot change the state's identity: `format_version`, `lineage`,
    /// `stack` and `serial` are set by the store.
    pub fn update<F: FnOnce(&mut State)>(&mut self, f: F) -> Result<(), StateError> {
        self.update_labeled("update", f)
    }

    /// [`update`](Self::update), naming the write `label` (for example
    /// `remove/vpc`) for failpoints and diagnostics.
    pub fn update_labeled<F: FnOnce(&mut State)>(&mut self, label: &str, f: F) -> Result<(), StateError> {
        let mut next = self.state.clone();
        f(&mut next);
        self.record(label, Change::diff(&self.state, &next))
    }

    /// Persists `change` as the next serial, then applies it in memory: one
    /// journal append, or a snapshot while there is no snapshot yet or the
    /// journal must not be appended to.
    fn record(&mut self, label: &str, mut change: Change) -> Result<(), StateError> {
        change.seal();
        change.canonicalize();
        let location = self.backend.location();
        let serial = self.state.serial + 1;
        if self.on_disk.is_none() || self.journal_dirty {
            let previous = self.state.clone();
            change.apply(&mut self.state);
            self.state.serial = serial;
            let written =
                snapshot_bytes(&self.state, &location).and_then(|bytes| self.persist_snapshot(bytes, label));
            if self.snapshot_serial != serial {
                // Not in place: memory must keep equalling what is persisted.
                self.state = previous;
            }
            written?;
            // Best effort: the journal's records are all in the snapshot
            // now, so replay would skip them anyway.
            if self.journal_dirty && self.backend.clear_journal().is_ok() {
                self.journal_bytes = 0;
                self.journal_dirty = false;
            }
            return Ok(());
        }
        let line = journal::encode(&self.state.lineage, serial, &change)
            .map_err(|e| StateError::io(&location, io::Error::other(e)))?;
        match self.backend.append(&line, label) {
            Ok(()) => {
                change.apply(&mut self.state);
                self.state.serial = serial;
                self.journal_bytes += line.len() as u64;
                let snapshot = self.on_disk.as_ref().map_or(0, |b| b.len() as u64);
                if self.journal_bytes > self.backend.journal_limit(snapshot)
                    && let Err(e) = self.compact()
                {
                    // The change is durable in the journal; the next
                    // compaction (at the latest on the next load) retries.
                    tracing::warn!("could not compact the state journal into {location}: {e}");
                }
                Ok(())
            }
            Err(PersistFailure { error, in_place }) => {
                // A torn line may end the journal: append nothing more.
                self.journal_dirty = true;
                if in_place {
                    change.apply(&mut self.state);
                    self.state.serial = serial;
                    self.journal_bytes += line.len() as u64;
                }
                Err(error)
            }
        }
    }

    /// Records that a create of `addr` is about to be called. Call it before
    /// the cloud call.
    pub fn begin_create(&mut self, addr: &str, pending: PendingCreate) -> Result<(), StateError> {
        let change = Change::BeginCreate {
            address: addr.to_string(),
            pending,
        };
        self.record(&format!("begin-create/{addr}"), change)
    }

    /// Records that the create of `addr` replacing its current object is
    /// about to be called, the old object staying until it is deleted: in
    /// one write, the old object moves to a deposed address (returned),
    /// every resource depending on `addr` is recorded as depending on it too
    /// (they refer to it until they are updated), and the pending create is
    /// recorded.
    pub fn begin_replacement(&mut self, addr: &str, pending: PendingCreate) -> Result<String, StateError> {
        let deposed = self.state.free_deposed_address(addr);
        let change = Change::BeginReplacement {
            address: addr.to_string(),
            deposed: deposed.clone(),
            pending,
        };
        self.record(&format!("begin-create/{addr}"), change)?;
        Ok(deposed)
    }

    /// Records that the create of `addr` finished: drops its pending entry and
    /// records the resource (replacing any entry at `addr`).
    pub fn finish_create(&mut self, addr: &str, resource: ResourceState) -> Result<(), StateError> {
        let change = Change::FinishCreate {
            address: addr.to_string(),
            resource,
        };
        self.record(&format!("finish-create/{addr}"), change)
    }

    /// Drops the pending create of `addr`: the create failed, or the
    /// resource it may have made was found not to exist.
    pub fn abandon_create(&mut self, addr: &str) -> Result<(), StateError> {
        let change = Change::AbandonCreate {
            address: addr.to_string(),
        };
        self.record(&format!("abandon-create/{addr}"), change)
    }

    /// Records `resource` at `addr` (after an update or a refresh), replacing
    /// any entry.
    pub fn put_resource(&mut self, addr: &str, resource: ResourceState) -> Result<(), StateError> {
        let change = Change::PutResource {
            address: addr.to_string(),
            resource,
        };
        self.record(&format!("put/{addr}"), change)
    }

    /// Forgets the resource at `addr` (after it was deleted).
    pub fn remove_resource(&mut self, addr: &str) -> Result<(), StateError> {
        self.forget(&format!("remove/{addr}"), vec![addr.to_string()], Vec::new())
    }

    /// Forgets the resources at `resources` and the pending creates at
    /// `pending` in one write named `label` (after a delete).
    pub fn forget(
        &mut self,
        label: &str,
        resources: Vec<String>,
        pending: Vec<String>,
    ) -> Result<(), StateError> {
        self.record(label, Change::Forget { resources, pending })
    }

    /// Replaces the recorded outputs.
    pub fn set_outputs(&mut self, outputs: BTreeMap<String, Value>) -> Result<(), StateError> {
        self.record("outputs", Change::SetOutputs { outputs })
    }
}

impl Drop for StateStore {
    /// Compacts the journal, on every way out of a run (errors included).
    /// A failure leaves the journal for the next load to replay.
    fn drop(&mut self) {
        if let Err(e) = self.compact() {
            tracing::warn!(
                "could not compact the state journal into {}: {e}; the next run replays it",
                self.backend.location()
            );
        }
    }
}

/// The snapshot's bytes for `state`: pretty JSON with a trailing newline.
fn snapshot_bytes(state: &State, location: &str) -> Result<Vec<u8>, StateError> {
    let mut bytes =
        serde_json::to_vec_pretty(state).map_err(|e| StateError::io(location, io::Error::other(e)))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Replays `journal` onto `state` loaded from the state file at `path`
/// (`snapshot` says whether there was one).
fn replay_journal(path: &Path, snapshot: bool, state: &mut State, journal: &[u8]) -> Result<(), StateError> {
    let corrupt = |message: String| StateError::Corrupt {
        path: path.to_path_buf(),
        message: format!("its journal {}: {message}", journal_path(path).display()),
    };
    if !snapshot {
        return Err(corrupt(
            "the journal holds changes but there is no state file to apply them to".to_string(),
        ));
    }
    journal::replay(state, journal).map(|_| ()).map_err(corrupt)
}

/// Just enough of a state file to check its version before reading the rest
/// (a newer format may not have this one's shape).
#[derive(Deserialize)]
#[serde(rename = "state file")]
struct VersionProbe {
    #[serde(default)]
    format_version: Option<u64>,
}

/// Parses and checks a state file's bytes.
fn parse(path: &Path, stack: &str, bytes: &[u8]) -> Result<State, StateError> {
    let corrupt = |message: String| StateError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    match probe.format_version {
        None => return Err(corrupt("missing field `format_version`".to_string())),
        Some(0) => return Err(corrupt("invalid format_version 0".to_string())),
        Some(v) if v > u64::from(FORMAT_VERSION) => {
            return Err(StateError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: v,
                supported: FORMAT_VERSION,
            });
        }
        Some(_) => {}
    }
    let state: State = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if state.stack != stack {
        return Err(StateError::WrongStack {
            path: path.to_path_buf(),
            expected: stack.to_string(),
            found: state.stack,
        });
    }
    Ok(state)
}

/// The file's bytes, `None` if it does not exist.
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io(path, e)),
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Name prefixes of the temporary files used to write a state file and its
/// backup: `.<name>.tmp-` and `.<name>.backup.tmp-`.
struct TempNames {
    state_prefix: String,
    backup_prefix: String,
}

impl TempNames {
    fn of(path: &Path) -> Result<TempNames, StateError> {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            StateError::io(
                path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a state file path must end in a UTF-8 file name",
                ),
            )
        })?;
        Ok(TempNames {
            state_prefix: format!(".{name}.tmp-"),
            backup_prefix: format!(".{name}.backup.tmp-"),
        })
    }

    /// Removes temporary files a crashed write left in `dir` (best effort:
    /// they are never read, only clutter).
    fn remove_leftovers(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&self.state_prefix) || name.starts_with(&self.backup_prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Atomically replaces `path` with `bytes`: writes a new temporary file
/// (mode `0600`) named `<prefix><random>` in the same directory, fsyncs it
/// and renames it over `path`. The caller fsyncs the directory. `label`
/// names the write for the `state-write` failpoint, which sits between the
/// temporary file and the rename.
fn replace(path: &Path, prefix: &str, bytes: &[u8], label: Option<&str>) -> Result<(), StateError> {
    let tmp = parent_dir(path).join(format!("{prefix}{}", uuid::Uuid::new_v4().simple()));
    let result = write_new(&tmp, bytes)
        .and_then(|()| match label {
            Some(label) => crate::failpoint::hit_blocking("state-write", label)
                .map_err(|spec| StateError::io(path, io::Error::other(format!("failpoint {spec}")))),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| StateError::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (which must not exist) with mode `0600`, writes `bytes` and
/// fsyncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io_err = |e| StateError::io(path, e);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    // The umask may have taken more than group and other bits.
    file.set_permissions(Permissions::from_mode(0o600))
        .map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Fsyncs a directory, making renames in it durable.
fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(dir, e))
}

/// Sorts the keys of every JSON object in the state's attribute values, so
/// that the file does not depend on the order attributes were built in.
fn canonicalize(state: &mut State) {
    for r in state.resources.values_mut() {
        sort_attrs(&mut r.attributes);
    }
    for p in state.pending.values_mut() {
        sort_attrs(&mut p.desired);
    }
    for v in state.outputs.values_mut() {
        sort_value(v);
    }
}

pub(super) fn sort_attrs(attrs: &mut Attrs) {
    attrs.sort_keys();
    for v in attrs.values_mut() {
        sort_value(v);
    }
}

pub(super) fn sort_value(value: &mut Value) {
    match value {
        Value::Object(m) => sort_attrs(m),
        Value::Array(items) => items.iter_mut().for_each(sort_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::TestDir;
    use serde_json::json;

    fn holder(command: &str) -> LockHolder {
        LockHolder::current(command)
    }

    fn open(path: &Path, stack: &str) -> StateStore {
        let (store, stale) = StateStore::open(path, stack, holder("meshform apply")).expect("open");
        assert!(stale.is_none());
        store
    }

    fn attrs(v: Value) -> Attrs {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn vpc() -> ResourceState {
        ResourceState {
            kind: "aws_vpc".to_string(),
            id: "vpc-0123".to_string(),
            attributes: attrs(json!({
                "cidr_block": "10.0.0.0/16",
                "tags": {"meshform:stack": "dev", "Name": "main"}
            })),
            dependencies: vec![],
        }
    }

    fn subnet_pending() -> PendingCreate {
        PendingCreate::new(
            "aws_subnet",
            attrs(json!({"vpc_id": "vpc-0123", "cidr_block": "10.0.1.0/24"})),
            vec!["aws_vpc.main".to_string()],
        )
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    /// The state as persisted: the state file with its journal replayed.
    fn on_disk(path: &Path) -> State {
        StateStore::read(path, "dev").expect("read").expect("exists")
    }

    /// The file at `path` alone, parsed (a snapshot or backup).
    fn file(path: &Path) -> State {
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("parse")
    }

    #[test]
    fn default_path_is_under_dot_meshform() {
        assert_eq!(default_path("dev"), Path::new(".meshform/dev.json"));
        assert_eq!(
            backup_path(Path::new("a/dev.json")),
            Path::new("a/dev.json.backup")
        );
        assert_eq!(lock_path(Path::new("a/dev.json")), Path::new("a/dev.json.lock"));
    }

    #[test]
    fn new_state_not_written_until_first_update() {
        let dir = TestDir::new("store-new");
        let path = dir.path().join("nested/deeper/dev.json");
        let store = open(&path, "dev");
        assert_eq!(store.state().serial, 0);
        assert_eq!(store.state().stack, "dev");
        assert_eq!(store.location(), path.display().to_string());
        assert!(!path.exists());
        assert_eq!(mode(path.parent().expect("parent")), 0o700);
        drop(store);
        assert!(!path.exists());
        assert!(!lock_path(&path).exists());
        assert_eq!(StateStore::read(&path, "dev").expect("read"), None);
    }

    #[test]
    fn round_trip() {
        let dir = TestDir::new("store-round-trip");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        store.put_resource("aws_vpc.main", vpc()).expect("put");
        store
            .begin_create("aws_subnet.a", subnet_pending())
            .expect("begin");
        store
            .set_outputs(BTreeMap::from([("vpc_id".to_string(), json!("vpc-0123"))]))
            .expect("outputs");
        let written = store.state().clone();
        drop(store);

        let store = open(&path, "dev");
        assert_eq!(store.state(), &written);
        assert_eq!(
            StateStore::read(&path, "dev").expect("read").as_ref(),
            Some(&written)
        );
        // The file is pretty JSON with a trailing newline.
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("{\n  \"format_version\": 1,\n"));
        assert!(text.ends_with("}\n"));
        // Unlocked reads work while the store is open.
        assert_eq!(StateStore::read(&path, "dev").expect("read"), Some(written));
    }

    #[test]
    fn serial_increments_per_update() {
        let dir = TestDir::new("store-serial");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        let lineage = store.state().lineage.clone();
        for expected in 1..=3 {
            store.update(|s| s.outputs.clear()).expect("update");
            assert_eq!(store.state().serial, expected);
            assert_eq!(on_disk(&path).serial, expected);
        }
        // Identity fields are the store's, not the closure's.
        store
            .update(|s| {
                s.serial = 100;
                s.stack = "other".to_string();
                s.lineage = "x".to_string();
            })
            .expect("update");
        assert_eq!(store.state().serial, 4);
        assert_eq!(store.state().stack, "dev");
        assert_eq!(store.state().lineage, lineage);
        drop(store);
        let store = open(&path, "dev");
        assert_eq!(store.state().serial, 4);
        assert_eq!(store.state().lineage, lineage);
    }

    #[test]
    fn backup_holds_the_snapshot_before_the_last_compaction() {
        let dir = TestDir::new("store-backup");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        assert_eq!(store.backup_location(), backup_path(&path).display().to_string());
        store.put_resource("aws_vpc.main", vpc()).expect("first");
        assert!(!backup_path(&path).exists(), "nothing to back up yet");
        let first = std::fs::read(&path).expect("read");
        store.remove_resource("aws_vpc.main").expect("second");
        store.put_resource("aws_vpc.main", vpc()).expect("third");
        // Journaled: the snapshot is still the first write.
        assert_eq!(std::fs::read(&path).expect("read"), first);
        assert!(!backup_path(&path).exists());
        store.close().expect("close");
        assert_eq!(std::fs::read(backup_path(&path)).expect("backup"), first);
        assert_eq!(file(&path).serial, 3);
        assert!(!journal_path(&path).exists(), "compacted at close");

        // The backup is made from the file as loaded, too.
        let loaded = std::fs::read(&path).expect("read");
        let mut store = open(&path, "dev");
        store.remove_resource("aws_vpc.main").expect("fourth");
        drop(store);
        assert_eq!(std::fs::read(backup_path(&path)).expect("backup"), loaded);
        assert_eq!(file(&path).serial, 4);
        assert!(file(&path).resources.is_empty());
    }

    #[test]
    fn files_are_private() {
        let dir = TestDir::new("store-mode");
        let path = dir.path().join("dev.json");
        // A pre-existing readable file is replaced by a private one.
        let mut state = State::new("dev");
        state.serial = 7;
        std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        let mut store = open(&path, "dev");
        assert_eq!(mode(&lock_path(&path)), 0o600);
        store.update(|_| {}).expect("first");
        store.update(|_| {}).expect("second");
        assert_eq!(mode(&journal_path(&path)), 0o600);
        assert_eq!(store.state().serial, 9);
        store.close().expect("compact");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&backup_path(&path)), 0o600);
        assert_eq!(file(&path).serial, 9);
    }

    #[test]
    fn second_open_fails_with_holder_until_first_is_dropped() {
        let dir = TestDir::new("store-locked");
        let path = dir.path().join("dev.json");
        let first = open(&path, "dev");
        let err =
            StateStore::open(&path, "dev", holder("meshform destroy")).expect_err("second open must fail");
        let message = err.to_string();
        match err {
            StateError::Locked {
                path: p,
                holder: Some(h),
            } => {
                assert_eq!(p, lock_path(&path));
                assert_eq!(h.pid, std::process::id());
                assert_eq!(h.host, holder("x").host);
                assert_eq!(h.command, "meshform apply");
            }
            other => panic!("expected Locked with a holder, got {other:?}"),
        }
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains(&holder("x").host), "{message}");
        assert!(message.contains("dev.json.lock"), "{message}");
        assert!(message.contains("meshform force-unlock"), "{message}");
        // Read-only access is not blocked.
        assert_eq!(StateStore::read(&path, "dev").expect("read"), None);

        drop(first);
        let (_second, stale) = StateStore::open(&path, "dev", holder("meshform destroy")).expect("reopen");
        assert!(stale.is_none());
    }

    #[test]
    fn stale_lock_is_taken_over_and_reported() {
        let dir = TestDir::new("store-stale");
        let path = dir.path().join("dev.json");
        let dead = LockHolder {
            pid: i32::MAX as u32,
            host: "build-7".to_string(),
            started_at: "2026-11-22T10:00:00Z".to_string(),
            command: "meshform apply".to_string(),
            user: String::new(),
        };
        std::fs::write(lock_path(&path), serde_json::to_vec(&dead).expect("json")).expect("write");
        let (mut store, stale) = StateStore::open(&path, "dev", holder("meshform apply")).expect("open");
        assert_eq!(stale, Some(dead));
        store.update(|_| {}).expect("update");
    }

    #[test]
    fn force_unlock_lets_a_new_store_open() {
        let dir = TestDir::new("store-force");
        let path = dir.path().join("dev.json");
        let _first = open(&path, "dev");
        assert!(matches!(
            crate::state::force_unlock(&lock_path(&path), false),
            Err(StateError::LockHolderAlive { .. })
        ));
        assert!(matches!(
            crate::state::force_unlock(&lock_path(&path), true),
            Ok(crate::state::ForceUnlock::Removed(Some(_)))
        ));
        let _second = open(&path, "dev");
    }

    #[test]
    fn corrupt_json_names_path_and_position() {
        let dir = TestDir::new("store-corrupt");
        let path = dir.path().join("dev.json");
        std::fs::write(&path, "{\n  \"format_version\": 1,\n  \"lineage\": \n").expect("write");
        for result in [
            StateStore::open(&path, "dev", holder("x")).map(|_| ()),
            StateStore::read(&path, "dev").map(|_| ()),
        ] {
            let err = result.expect_err("corrupt");
            let message = err.to_string();
            match &err {
                StateError::Corrupt { path: p, message } => {
                    assert_eq!(p, &path);
                    assert!(message.contains("line 4"), "{message}");
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        // The failed open released the lock.
        assert!(!lock_path(&path).exists());

        // Valid JSON of the wrong shape.
        std::fs::write(
            &path,
            r#"{"format_version": 1, "lineage": "l", "serial": "x", "stack": "dev"}"#,
        )
        .expect("write");
        assert!(matches!(
            StateStore::read(&path, "dev"),
            Err(StateError::Corrupt { message, .. }) if message.contains("column")
        ));
        std::fs::write(&path, "[]").expect("write");
        assert!(matches!(
            StateStore::read(&path, "dev"),
            Err(StateError::Corrupt { .. })
        ));
        std::fs::write(&path, r#"{"stack": "dev"}"#).expect("write");
        assert!(matches!(
            StateStore::read(&path, "dev"),
            Err(StateError::Corrupt { message, .. }) if message.contains("format_version")
        ));
        std::fs::write(&path, "").expect("write");
        assert!(matches!(
            StateStore::read(&path, "dev"),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = TestDir::new("store-version");
        let path = dir.path().join("dev.json");
        std::fs::write(&path, r#"{"format_version": 2, "something": "new"}"#).expect("write");
        let err = StateStore::open(&path, "dev", holder("x"))
            .map(|_| ())
            .expect_err("newer");
        assert!(err.to_string().contains("upgrade meshform"), "{err}");
        assert!(matches!(
            err,
            StateError::UnsupportedVersion {
                found: 2,
                supported: FORMAT_VERSION,
                ..
            }
        ));
    }

    #[test]
    fn wrong_stack_is_refused() {
        let dir = TestDir::new("store-wrong-stack");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        store.update(|_| {}).expect("write");
        drop(store);
        let err = StateStore::open(&path, "prod", holder("x"))
            .map(|_| ())
            .expect_err("wrong");
        assert!(
            err.to_string().contains("belongs to stack `dev`, not `prod`"),
            "{err}"
        );
        match err {
            StateError::WrongStack {
                path: p,
                expected,
                found,
            } => {
                assert_eq!(p, path);
                assert_eq!(expected, "prod");
                assert_eq!(found, "dev");
            }
            other => panic!("expected WrongStack, got {other:?}"),
        }
        assert!(matches!(
            StateStore::read(&path, "prod"),
            Err(StateError::WrongStack { .. })
        ));
    }

    #[test]
    fn leftover_temp_file_is_ignored_and_cleaned() {
        let dir = TestDir::new("store-crash");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        store.put_resource("aws_vpc.main", vpc()).expect("write");
        let written = store.state().clone();
        drop(store);
        // A write that crashed before its rename.
        let tmp = dir.path().join(".dev.json.tmp-0123456789abcdef");
        let tmp_backup = dir.path().join(".dev.json.backup.tmp-0123456789abcdef");
        std::fs::write(&tmp, "{\n  \"format_version\": 1,\n  \"lin").expect("write");
        std::fs::write(&tmp_backup, "{").expect("write");
        let unrelated = dir.path().join(".prod.json.tmp-0123");
        std::fs::write(&unrelated, "{").expect("write");

        assert_eq!(
            StateStore::read(&path, "dev").expect("read"),
            Some(written.clone())
        );
        let mut store = open(&path, "dev");
        assert_eq!(store.state(), &written);
        assert!(!tmp.exists() && !tmp_backup.exists());
        assert!(unrelated.exists(), "other stacks' files are left alone");
        store.update(|_| {}).expect("write after crash");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-") && n.starts_with(".dev"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn failed_write_leaves_memory_equal_to_disk() {
        let dir = TestDir::new("store-fail");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        // A directory where the file should be makes the rename fail.
        std::fs::create_dir(&path).expect("mkdir");
        let err = store.put_resource("aws_vpc.main", vpc()).expect_err("must fail");
        assert!(matches!(err, StateError::Io { .. }), "{err:?}");
        assert_eq!(store.state().serial, 0);
        assert!(store.state().resources.is_empty());
        std::fs::remove_dir(&path).expect("rmdir");
        store.put_resource("aws_vpc.main", vpc()).expect("now it works");
        assert_eq!(store.state().serial, 1);
        assert_eq!(&on_disk(&path), store.state());
        let leftovers = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn create_lifecycle() {
        let dir = TestDir::new("store-create");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        let pending = subnet_pending();
        store
            .begin_create("aws_subnet.a", pending.clone())
            .expect("begin");
        assert_eq!(on_disk(&path).pending.get("aws_subnet.a"), Some(&pending));
        let subnet = ResourceState {
            kind: "aws_subnet".to_string(),
            id: "subnet-1".to_string(),
            attributes: pending.desired.clone(),
            dependencies: pending.dependencies.clone(),
        };
        store
            .finish_create("aws_subnet.a", subnet.clone())
            .expect("finish");
        let disk = on_disk(&path);
        assert!(disk.pending.is_empty());
        assert_eq!(disk.resources.get("aws_subnet.a"), Some(&subnet));

        store
            .begin_create("aws_subnet.b", subnet_pending())
            .expect("begin");
        store.abandon_create("aws_subnet.b").expect("abandon");
        store.remove_resource("aws_subnet.a").expect("remove");
        let disk = on_disk(&path);
        assert!(disk.pending.is_empty() && disk.resources.is_empty());
        assert_eq!(disk.serial, 5);
        assert!(uuid::Uuid::parse_str(&pending.token).is_ok());
    }

    #[test]
    fn output_is_deterministic() {
        let dir = TestDir::new("store-deterministic");
        let write = |name: &str, value: Value| {
            let path = dir.path().join(name);
            let mut store = open(&path, "dev");
            let lineage = "fixed".to_string();
            store.state.lineage = lineage;
            let mut r = vpc();
            r.attributes = attrs(value);
            store.put_resource("aws_vpc.main", r).expect("put");
            std::fs::read(&path).expect("read")
        };
        let a = write("a.json", json!({"b": 1, "a": {"y": [{"q": 1, "p": 2}], "x": 2}}));
        let b = write("b.json", json!({"a": {"x": 2, "y": [{"p": 2, "q": 1}]}, "b": 1}));
        assert_eq!(a, b);
    }

    // --- the journal --------------------------------------------------------

    /// Copies the state file and its journal to `to` (same names), as a
    /// crash at this moment would leave them.
    fn crash_image(path: &Path, to: &Path) -> PathBuf {
        let copy = to.join(path.file_name().expect("name"));
        for (from, into) in [
            (path.to_path_buf(), copy.clone()),
            (journal_path(path), journal_path(&copy)),
        ] {
            let _ = std::fs::remove_file(&into);
            if from.exists() {
                std::fs::copy(&from, &into).expect("copy");
            }
        }
        copy
    }

    fn subnet(id: &str) -> ResourceState {
        ResourceState {
            kind: "aws_subnet".to_string(),
            id: id.to_string(),
            attributes: attrs(json!({"vpc_id": "vpc-0123", "cidr_block": "10.0.1.0/24"})),
            dependencies: vec!["aws_vpc.main".to_string()],
        }
    }

    #[test]
    fn changes_are_journaled_and_readers_see_them() {
        let dir = TestDir::new("store-journal");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        store
            .put_resource("aws_vpc.main", vpc())
            .expect("first write: the snapshot");
        assert!(!journal_path(&path).exists());
        let snapshot = std::fs::read(&path).expect("read");
        store
            .begin_create("aws_subnet.a", subnet_pending())
            .expect("journaled");
        store
            .finish_create("aws_subnet.a", subnet("subnet-1"))
            .expect("journaled");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            snapshot,
            "the snapshot is not rewritten"
        );
        let journal = std::fs::read_to_string(journal_path(&path)).expect("journal");
        assert_eq!(journal.lines().count(), 2, "{journal}");
        assert_eq!(mode(&journal_path(&path)), 0o600);
        // A reader without the lock sees the journal's changes.
        assert_eq!(&on_disk(&path), store.state());
        assert_eq!(on_disk(&path).serial, 3);
        drop(store);
        assert!(!journal_path(&path).exists(), "compacted when dropped");
        assert_eq!(file(&path).resources["aws_subnet.a"].id, "subnet-1");
    }

    #[test]
    fn leftover_journal_is_replayed_and_compacted_on_load_torn_last_record_ignored() {
        let dir = TestDir::new("store-journal-torn");
        let image = TestDir::new("store-journal-torn-image");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        store.put_resource("aws_vpc.main", vpc()).expect("snapshot");
        store
            .begin_create("aws_subnet.a", subnet_pending())
            .expect("journaled");
        store
            .put_resource("aws_subnet.b", subnet("subnet-2"))
            .expect("journaled");
        let expected = store.state().clone();
        let crashed = crash_image(&path, image.path());
        drop(store);

        // The crash cut an append short: half a record with no newline.
        let next = journal::encode(
            &expected.lineage,
            4,
            &Change::AbandonCreate {
                address: "aws_subnet.a".to_string(),
            },
        )
        .expect("encode");
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&crashed))
            .expect("journal");
        journal.write_all(&next[..next.len() / 2]).expect("write");
        drop(journal);

        assert_eq!(
            StateStore::read(&crashed, "dev").expect("read"),
            Some(expected.clone())
        );
        let store = open(&crashed, "dev");
        assert_eq!(store.state(), &expected);
        // Compacted on load: the snapshot has everything, the journal is gone.
        assert!(!journal_path(&crashed).exists());
        assert_eq!(file(&crashed), expected);
        drop(store);
        assert_eq!(file(&crashed), expected, "nothing more to write");
    }

    #[test]
    fn crash_between_snapshot_replace_and_journal_removal_does_not_double_apply() {
        let dir = TestDir::new("store-journal-twice");
        let image = TestDir::new("store-journal-twice-image");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        store.put_resource("aws_vpc.main", vpc()).expect("snapshot");
        // A replacement is not idempotent: applied twice it would move the
        // new object to a second deposed address.
        store
            .put_resource("aws_subnet.a", subnet("subnet-1"))
            .expect("journaled");
        let deposed = store
            .begin_replacement("aws_subnet.a", subnet_pending())
            .expect("journaled");
        store
            .finish_create("aws_subnet.a", subnet("subnet-2"))
            .expect("journaled");
        let expected = store.state().clone();
        let crashed = crash_image(&path, image.path());
        store.close().expect("compact");
        // The compaction's snapshot, with the journal it did not remove.
        std::fs::copy(&path, &crashed).expect("copy");
        assert!(journal_path(&crashed).exists());

        for state in [
            StateStore::read(&crashed, "dev").expect("read").expect("exists"),
            open(&crashed, "dev").state().clone(),
        ] {
            assert_eq!(state, expected);
            assert_eq!(state.serial, 4);
            assert_eq!(state.resources[&deposed].id, "subnet-1");
            assert_eq!(state.resources.len(), 3, "{:?}", state.resources.keys());
        }
        assert!(!journal_path(&crashed).exists(), "removed on load");
    }

    #[test]
    fn a_failed_append_is_a_failed_write_and_nothing_is_appended_after_it() {
        let dir = TestDir::new("store-journal-fail");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        store.put_resource("aws_vpc.main", vpc()).expect("snapshot");
        // A directory where the journal should be makes the append fail.
        std::fs::create_dir(journal_path(&path)).expect("mkdir");
        let err = store
            .put_resource("aws_subnet.a", subnet("subnet-1"))
            .expect_err("must fail");
        assert!(matches!(err, StateError::Io { .. }), "{err:?}");
        assert_eq!(store.state().serial, 1);
        assert!(!store.state().resources.contains_key("aws_subnet.a"));
        std::fs::remove_dir(journal_path(&path)).expect("rmdir");
        // The next write is a whole snapshot.
        store
            .put_resource("aws_subnet.a", subnet("subnet-1"))
            .expect("now it works");
        assert_eq!(&file(&path), store.state());
        assert!(!journal_path(&path).exists());
    }

    #[test]
    fn a_journal_without_its_state_file_is_refused() {
        let dir = TestDir::new("store-journal-orphan");
        let path = dir.path().join("dev.json");
        let line = journal::encode("l", 1, &Change::AbandonCreate { address: "a".into() }).expect("encode");
        std::fs::write(journal_path(&path), line).expect("write");
        for err in [
            StateStore::open(&path, "dev", holder("x"))
                .map(|_| ())
                .expect_err("open"),
            StateStore::read(&path, "dev").map(|_| ()).expect_err("read"),
        ] {
            assert!(err.to_string().contains("dev.json.journal"), "{err}");
            assert!(matches!(err, StateError::Corrupt { .. }));
        }
    }

    /// Counts the bytes a store writes, by kind.
    #[derive(Debug, Clone, Default)]
    struct Counting(std::sync::Arc<std::sync::Mutex<(u64, u64)>>);

    impl Counting {
        /// (snapshot and backup bytes, journal bytes) written so far.
        fn written(&self) -> (u64, u64) {
            *self.0.lock().expect("lock")
        }
    }

    impl StateBackend for Counting {
        fn persist(&mut self, previous: Option<&[u8]>, next: &[u8], _: &str) -> Result<(), PersistFailure> {
            let mut c = self.0.lock().expect("lock");
            c.0 += (previous.map_or(0, <[u8]>::len) + next.len()) as u64;
            Ok(())
        }
        fn append(&mut self, record: &[u8], _: &str) -> Result<(), PersistFailure> {
            self.0.lock().expect("lock").1 += record.len() as u64;
            Ok(())
        }
        fn clear_journal(&mut self) -> Result<(), StateError> {
            Ok(())
        }
        fn location(&self) -> String {
            "counting".to_string()
        }
        fn backup_location(&self) -> String {
            "counting (backup)".to_string()
        }
    }

    /// A store holding `held` resources, and its byte counter.
    fn store_holding(held: usize) -> (StateStore, Counting) {
        let counting = Counting::default();
        let mut store =
            StateStore::with_backend(Box::new(counting.clone()), None, None, "dev").expect("store");
        store
            .update(|s| {
                for n in 0..held {
                    s.resources.insert(format!("aws_vpc.held_{n:05}"), vpc());
                }
            })
            .expect("fill");
        (store, counting)
    }

    /// Bytes written by `ops` puts and removes of 5-digit-numbered subnets.
    fn written_by_ops(store: &mut StateStore, counting: &Counting, ops: usize) -> (u64, u64) {
        let before = counting.written();
        for n in 0..ops {
            let addr = format!("aws_subnet.s_{:05}", n / 2);
            if n % 2 == 0 {
                store.put_resource(&addr, subnet("subnet-1")).expect("put");
            } else {
                store.remove_resource(&addr).expect("remove");
            }
        }
        let after = counting.written();
        (after.0 - before.0, after.1 - before.1)
    }

    #[test]
    fn bytes_written_per_operation_do_not_grow_with_the_state() {
        let ops = 100;
        let (mut small, small_count) = store_holding(10);
        let (mut large, large_count) = store_holding(2_000);
        let small_bytes = written_by_ops(&mut small, &small_count, ops);
        let large_bytes = written_by_ops(&mut large, &large_count, ops);
        // Same records whatever the state holds; no snapshot rewritten.
        assert_eq!(small_bytes, large_bytes);
        assert_eq!(large_bytes.0, 0, "no snapshot written");
        assert!(
            large_bytes.1 > 0 && large_bytes.1 < 400 * ops as u64,
            "{large_bytes:?}"
        );

        // Over many operations the compactions (snapshot and backup, each
        // once the journal outgrew the snapshot) keep the total linear:
        // doubling the operations at most doubles the bytes, plus one
        // compaction's worth.
        let snapshot = snapshot_bytes(large.state(), "counting").expect("json").len() as u64;
        let (mut a, a_count) = store_holding(500);
        let (mut b, b_count) = store_holding(500);
        let one = written_by_ops(&mut a, &a_count, 4_000);
        let two = written_by_ops(&mut b, &b_count, 8_000);
        assert!(one.0 > 0, "compacted during the run: {one:?}");
        let (one, two) = (one.0 + one.1, two.0 + two.1);
        assert!(two <= 2 * one + 2 * snapshot, "{one} then {two}");
        assert!(one <= 3 * 4_000 * 400 + 2 * snapshot, "{one}");
    }
}

//! Loading and persisting the state file under its lock.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::StateError;
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

/// Where a state's bytes are persisted: a local file (the default), or
/// memory for tests and library users who keep state elsewhere.
pub trait StateBackend: Send + std::fmt::Debug {
    /// Persists `next` as the state, keeping `previous` (the bytes persisted
    /// before, `None` for the first write) as the backup. Atomic: if the
    /// process dies during the call, the persisted state is either
    /// `previous` or `next`. `label` names what the write records (for
    /// example `finish-create/vpc`), for failpoints and diagnostics.
    fn persist(&mut self, previous: Option<&[u8]>, next: &[u8], label: &str) -> Result<(), PersistFailure>;

    /// Where the state is kept, for messages (a file path).
    fn location(&self) -> String;

    /// Where the version before the last write is kept, for messages.
    fn backup_location(&self) -> String;
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

/// The file backend: `<state file>` and `<state file>.backup`, written
/// atomically under the lock `<state file>.lock`, held until dropped.
#[derive(Debug)]
struct FileBackend {
    path: PathBuf,
    backup_path: PathBuf,
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

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn backup_location(&self) -> String {
        self.backup_path.display().to_string()
    }
}

/// A stack's state, loaded and locked for changing.
///
/// Every change goes through [`StateStore::update`], which persists the new
/// version before it returns. The lock is held until the store is dropped.
#[derive(Debug)]
pub struct StateStore {
    backend: Box<dyn StateBackend>,
    state: State,
    /// The bytes as persisted; `None` while nothing has been written.
    on_disk: Option<Vec<u8>>,
}

impl StateStore {
    /// Locks and loads the state file at `path` for `stack`.
    ///
    /// Creates missing parent directories (mode `0700`), takes the lock
    /// `<path>.lock` recording `holder` (failing at once with
    /// [`StateError::Locked`] if another run holds it), removes temporary
    /// files left by an interrupted write, and loads the file. A missing file
    /// gives a new empty [`State`], which is not written until the first
    /// update.
    ///
    /// Also returns the record of a previous holder that died without
    /// releasing the lock, if the lock file held one: its run was
    /// interrupted, and the state may hold pending creates to resolve.
    ///
    /// Fails with [`StateError::Corrupt`], [`StateError::UnsupportedVersion`]
    /// or [`StateError::WrongStack`] when the file cannot be used.
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
            _lock: lock,
        };
        let store = StateStore::with_backend(Box::new(backend), read_bytes(path)?, stack)?;
        Ok((store, stale))
    }

    /// A store persisting through `backend`, starting from `persisted` (the
    /// bytes the backend holds now; `None` for a new state). The backend
    /// must already exclude other writers.
    pub fn with_backend(
        backend: Box<dyn StateBackend>,
        persisted: Option<Vec<u8>>,
        stack: &str,
    ) -> Result<StateStore, StateError> {
        let state = match &persisted {
            Some(bytes) => parse(&PathBuf::from(backend.location()), stack, bytes)?,
            None => State::new(stack),
        };
        Ok(StateStore {
            backend,
            state,
            on_disk: persisted,
        })
    }

    /// Reads the state file at `path` for `stack` without locking, for
    /// read-only commands; `None` if there is no state file yet.
    ///
    /// Writes replace the file atomically, so this sees either the version
    /// before or the version after a concurrent write.
    pub fn read(path: &Path, stack: &str) -> Result<Option<State>, StateError> {
        match read_bytes(path)? {
            Some(bytes) => parse(path, stack, &bytes).map(Some),
            None => Ok(None),
        }
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
        next.format_version = FORMAT_VERSION;
        next.lineage.clone_from(&self.state.lineage);
        next.stack.clone_from(&self.state.stack);
        next.serial = self.state.serial + 1;
        canonicalize(&mut next);
        let location = self.backend.location();
        let mut bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| StateError::io(&location, io::Error::other(e)))?;
        bytes.push(b'\n');
        match self.backend.persist(self.on_disk.as_deref(), &bytes, label) {
            Ok(()) => {
                self.state = next;
                self.on_disk = Some(bytes);
                Ok(())
            }
            Err(PersistFailure { error, in_place }) => {
                if in_place {
                    self.state = next;
                    self.on_disk = Some(bytes);
                }
                Err(error)
            }
        }
    }

    /// Records that a create of `addr` is about to be called. Call it before
    /// the cloud call.
    pub fn begin_create(&mut self, addr: &str, pending: PendingCreate) -> Result<(), StateError> {
        self.update_labeled(&format!("begin-create/{addr}"), |s| {
            s.pending.insert(addr.to_string(), pending);
        })
    }

    /// Records that the create of `addr` replacing its current object is
    /// about to be called, the old object staying until it is deleted: in
    /// one write, the old object moves to a deposed address (returned),
    /// every resource depending on `addr` is recorded as depending on it too
    /// (they refer to it until they are updated), and the pending create is
    /// recorded.
    pub fn begin_replacement(&mut self, addr: &str, pending: PendingCreate) -> Result<String, StateError> {
        let deposed = self.state.free_deposed_address(addr);
        self.update_labeled(&format!("begin-create/{addr}"), |s| {
            if let Some(old) = s.resources.remove(addr) {
                for (a, r) in s.resources.iter_mut() {
                    if a != addr && r.dependencies.iter().any(|d| d == addr) {
                        r.dependencies.push(deposed.clone());
                    }
                }
                s.resources.insert(deposed.clone(), old);
            }
            s.pending.insert(addr.to_string(), pending);
        })?;
        Ok(deposed)
    }

    /// Records that the create of `addr` finished: drops its pending entry and
    /// records the resource (replacing any entry at `addr`).
    pub fn finish_create(&mut self, addr: &str, resource: ResourceState) -> Result<(), StateError> {
        self.update_labeled(&format!("finish-create/{addr}"), |s| {
            s.pending.remove(addr);
            s.resources.insert(addr.to_string(), resource);
        })
    }

    /// Drops the pending create of `addr`: the create failed, or the
    /// resource it may have made was found not to exist.
    pub fn abandon_create(&mut self, addr: &str) -> Result<(), StateError> {
        self.update_labeled(&format!("abandon-create/{addr}"), |s| {
            s.pending.remove(addr);
        })
    }

    /// Records `resource` at `addr` (after an update or a refresh), replacing
    /// any entry.
    pub fn put_resource(&mut self, addr: &str, resource: ResourceState) -> Result<(), StateError> {
        self.update_labeled(&format!("put/{addr}"), |s| {
            s.resources.insert(addr.to_string(), resource);
        })
    }

    /// Forgets the resource at `addr` (after it was deleted).
    pub fn remove_resource(&mut self, addr: &str) -> Result<(), StateError> {
        self.update_labeled(&format!("remove/{addr}"), |s| {
            s.resources.remove(addr);
        })
    }

    /// Replaces the recorded outputs.
    pub fn set_outputs(&mut self, outputs: BTreeMap<String, Value>) -> Result<(), StateError> {
        self.update_labeled("outputs", |s| s.outputs = outputs)
    }
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

fn sort_attrs(attrs: &mut Attrs) {
    attrs.sort_keys();
    for v in attrs.values_mut() {
        sort_value(v);
    }
}

fn sort_value(value: &mut Value) {
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

    fn on_disk(path: &Path) -> State {
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
    fn backup_holds_previous_version() {
        let dir = TestDir::new("store-backup");
        let path = dir.path().join("dev.json");
        let mut store = open(&path, "dev");
        assert_eq!(store.backup_location(), backup_path(&path).display().to_string());
        store.put_resource("aws_vpc.main", vpc()).expect("first");
        assert!(!backup_path(&path).exists(), "nothing to back up yet");
        let first = std::fs::read(&path).expect("read");
        store.remove_resource("aws_vpc.main").expect("second");
        assert_eq!(std::fs::read(backup_path(&path)).expect("backup"), first);
        let second = std::fs::read(&path).expect("read");
        store.put_resource("aws_vpc.main", vpc()).expect("third");
        assert_eq!(std::fs::read(backup_path(&path)).expect("backup"), second);
        assert_eq!(on_disk(&backup_path(&path)).serial, 2);
        assert!(on_disk(&backup_path(&path)).resources.is_empty());
        drop(store);

        // The backup is made from the file as loaded, too.
        let loaded = std::fs::read(&path).expect("read");
        let mut store = open(&path, "dev");
        store.remove_resource("aws_vpc.main").expect("fourth");
        assert_eq!(std::fs::read(backup_path(&path)).expect("backup"), loaded);
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
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&backup_path(&path)), 0o600);
        assert_eq!(store.state().serial, 9);
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
}

//! The exclusive state lock: a `flock` on `<state file>.lock`, plus a record
//! of the holder inside that file so that a refused run can say who holds it.
//!
//! The `flock` is what excludes; the record is only information. The OS
//! releases a `flock` when the holding process exits, however it exits, so a
//! crashed run never keeps the lock; its record stays in the file and is
//! reported by the next [`StateLock::acquire`] as stale.
//!
//! `flock` locks belong to open file descriptions: two opens of the lock file
//! conflict even within one process. On network file systems `flock` may not
//! exclude across hosts; keep state on a local disk.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StateError;
use super::model::now_rfc3339;

/// How many times [`StateLock::acquire`] retries when the lock file it locked
/// was removed or replaced before it could check (a concurrent release).
const ACQUIRE_ATTEMPTS: usize = 16;

/// Who holds (or held) a state lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name of the machine the process runs on.
    pub host: String,
    /// When the lock was taken (RFC 3339, UTC).
    pub started_at: String,
    /// What the process is doing, for example `meshform apply`.
    pub command: String,
    /// The user running it (`$USER`, else `$LOGNAME`, else `unknown`);
    /// empty in records written before it was recorded.
    #[serde(default)]
    pub user: String,
}

impl LockHolder {
    /// This process, on this host, starting now, doing `command`.
    pub fn current(command: &str) -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: hostname(),
            started_at: now_rfc3339(),
            command: command.to_string(),
            user: current_user(),
        }
    }
}

/// The user running this process, for lock records.
fn current_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.user.is_empty() {
            write!(f, " of user {}", self.user)?;
        }
        write!(
            f,
            " on host {} since {} ({})",
            self.host, self.started_at, self.command
        )
    }
}

/// The lock file of a state file: `<state file>.lock`.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut s = state_path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A held state lock; released when dropped.
///
/// Dropping clears the holder record, removes the lock file (unless it has
/// been replaced by another file, see [`force_unlock`]) and releases the
/// `flock`.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the exclusive lock on `lock_path` (created with mode `0600` if
    /// missing) without waiting, and records `holder` in it.
    ///
    /// Returns the lock and, when the file held the record of a previous
    /// holder that died without releasing (the OS released its `flock`), that
    /// stale holder, so that the caller can warn that its run may have been
    /// interrupted.
    ///
    /// Fails at once with [`StateError::Locked`], naming the holder recorded
    /// in the file, when another open of the file holds the lock.
    pub fn acquire(
        lock_path: &Path,
        holder: &LockHolder,
    ) -> Result<(StateLock, Option<LockHolder>), StateError> {
        let io_err = |e| StateError::io(lock_path, e);
        for _ in 0..ACQUIRE_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(lock_path)
                .map_err(io_err)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(StateError::Locked {
                        path: lock_path.to_path_buf(),
                        holder: read_holder(&file).map(Box::new),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
            // The previous holder may have removed the file between our open
            // and our lock, or a force-unlock may have replaced it: then we
            // locked an orphan that nobody else will look at. Start over.
            if !is_current_file(lock_path, &file).map_err(io_err)? {
                continue;
            }
            let stale = read_holder(&file);
            let mut record = serde_json::to_vec_pretty(holder).map_err(|e| io_err(e.into()))?;
            record.push(b'\n');
            file.set_len(0).map_err(io_err)?;
            file.write_all_at(&record, 0).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            return Ok((
                StateLock {
                    file,
                    path: lock_path.to_path_buf(),
                },
                stale,
            ));
        }
        Err(io_err(io::Error::other(
            "the lock file keeps being removed or replaced by other processes",
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Best effort: the flock is released when the file is closed whatever
        // happens here, and a leftover record is only reported as stale.
        let _ = self.file.set_len(0);
        if let Ok(true) = is_current_file(&self.path, &self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

/// What [`force_unlock`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceUnlock {
    /// Nobody held the lock: the lock file (if any) was removed. Carries the
    /// stale holder record it contained, if any.
    WasStale(Option<LockHolder>),
    /// The lock was held and its file was removed anyway. Carries the holder
    /// recorded in it, if any.
    Removed(Option<LockHolder>),
}

/// Removes a state lock by hand.
///
/// - If the lock can be taken, nobody holds it: the lock file (with any stale
///   record) is removed and [`ForceUnlock::WasStale`] returned. A missing lock
///   file gives `WasStale(None)`.
/// - If it is held and `force` is false: when the recorded holder runs on this
///   host and its pid is alive, fails with [`StateError::LockHolderAlive`];
///   when the file names no holder, fails with [`StateError::Locked`] (the
///   lock is certainly held, by an unknown process).
/// - Otherwise (the holder's pid is dead, it is on another host, or `force`)
///   the lock file is removed and [`ForceUnlock::Removed`] returned.
///
/// # Hazard
///
/// Removing a held lock does not stop its holder: a process still holding
/// the `flock` keeps it on the removed file and goes on writing the state,
/// while the next run creates a new lock file and locks that one. Two runs
/// then change the state and the cloud at once, and one's writes overwrite
/// the other's: resources created by one can be lost from state. Only force
/// when the holder is known to be gone: a pid on another host, or in another
/// pid namespace (container) on this host, cannot be checked from here, and
/// a pid may have been reused by an unrelated process.
pub fn force_unlock(lock_path: &Path, force: bool) -> Result<ForceUnlock, StateError> {
    let io_err = |e| StateError::io(lock_path, e);
    let file = match OpenOptions::new().read(true).open(lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ForceUnlock::WasStale(None)),
        Err(e) => return Err(io_err(e)),
    };
    match file.try_lock() {
        Ok(()) => {
            let holder = read_holder(&file);
            if is_current_file(lock_path, &file).map_err(io_err)? {
                remove_if_exists(lock_path)?;
            }
            Ok(ForceUnlock::WasStale(holder))
        }
        Err(TryLockError::WouldBlock) => {
            let holder = read_holder(&file);
            if !force {
                match &holder {
                    None => {
                        return Err(StateError::Locked {
                            path: lock_path.to_path_buf(),
                            holder: None,
                        });
                    }
                    Some(h) if h.host == hostname() && pid_alive(h.pid) => {
                        return Err(StateError::LockHolderAlive {
                            path: lock_path.to_path_buf(),
                            holder: Box::new(h.clone()),
                        });
                    }
                    Some(_) => {}
                }
            }
            remove_if_exists(lock_path)?;
            Ok(ForceUnlock::Removed(holder))
        }
        Err(TryLockError::Error(e)) => Err(io_err(e)),
    }
}

/// The holder record in an open lock file, if it holds a valid one.
fn read_holder(file: &File) -> Option<LockHolder> {
    let mut text = String::new();
    let mut reader = file;
    reader.seek(SeekFrom::Start(0)).ok()?;
    reader.read_to_string(&mut text).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    serde_json::from_str(&text).ok()
}

/// Whether `path` still names the file open as `file`.
fn is_current_file(path: &Path, file: &File) -> io::Result<bool> {
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.dev() == open.dev() && m.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io(path, e)),
    }
}

/// Whether a process with this pid exists (in this pid namespace).
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // pid 0 and negative pids would address process groups.
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks.
    let r = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists but belongs to another user.
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's host name, `unknown` if it cannot be found.
pub(crate) fn hostname() -> String {
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            return name.to_string();
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for writes of its length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r == 0 {
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..len]).trim().to_string();
        if !name.is_empty() {
            return name;
        }
    }
    "unknown".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::TestDir;

    fn holder(pid: u32, host: &str) -> LockHolder {
        LockHolder {
            pid,
            host: host.to_string(),
            started_at: "2026-11-22T10:00:00Z".to_string(),
            command: "meshform apply".to_string(),
            user: String::new(),
        }
    }

    /// A pid that cannot exist (above Linux's maximum pid_max, 2^22).
    const DEAD_PID: u32 = i32::MAX as u32;

    #[test]
    fn holder_display() {
        assert_eq!(
            holder(1234, "build-7").to_string(),
            "pid 1234 on host build-7 since 2026-11-22T10:00:00Z (meshform apply)"
        );
    }

    #[test]
    fn current_holder_is_this_process() {
        let h = LockHolder::current("meshform plan");
        assert_eq!(h.pid, std::process::id());
        assert!(!h.host.is_empty());
        assert_eq!(h.host, hostname());
        assert_eq!(h.command, "meshform plan");
        assert!(h.started_at.ends_with('Z') && h.started_at.len() == 20);
        assert!(!h.user.is_empty());
    }

    #[test]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(DEAD_PID));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }

    #[test]
    fn acquire_conflict_release() {
        let dir = TestDir::new("lock-conflict");
        let path = dir.path().join("s.json.lock");
        let me = LockHolder::current("meshform apply");
        let (lock, stale) = StateLock::acquire(&path, &me).expect("first acquire");
        assert!(stale.is_none());
        assert_eq!(lock.path(), path);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("lock file").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        // A second open file description conflicts, even in this process.
        match StateLock::acquire(&path, &LockHolder::current("meshform destroy")) {
            Err(StateError::Locked { path: p, holder }) => {
                assert_eq!(p, path);
                assert_eq!(holder.as_deref(), Some(&me));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lock);
        assert!(!path.exists(), "lock file removed on release");
        let (_again, stale) = StateLock::acquire(&path, &me).expect("acquire after release");
        assert!(stale.is_none(), "a clean release leaves no stale record");
    }

    #[test]
    fn stale_record_is_taken_over_and_reported() {
        let dir = TestDir::new("lock-stale");
        let path = dir.path().join("s.json.lock");
        let dead = holder(DEAD_PID, "build-7");
        std::fs::write(&path, serde_json::to_vec(&dead).expect("json")).expect("write");
        let me = LockHolder::current("meshform apply");
        let (lock, stale) = StateLock::acquire(&path, &me).expect("acquire over stale");
        assert_eq!(stale, Some(dead));
        let recorded: LockHolder =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("record");
        assert_eq!(recorded, me);
        drop(lock);

        // Garbage in the file is not a holder, but does not block either.
        std::fs::write(&path, b"{ half a rec").expect("write");
        let (_lock, stale) = StateLock::acquire(&path, &me).expect("acquire over garbage");
        assert!(stale.is_none());
    }

    #[test]
    fn force_unlock_without_lock_file() {
        let dir = TestDir::new("force-none");
        let path = dir.path().join("s.json.lock");
        assert_eq!(
            force_unlock(&path, false).expect("ok"),
            ForceUnlock::WasStale(None)
        );
    }

    #[test]
    fn force_unlock_stale() {
        let dir = TestDir::new("force-stale");
        let path = dir.path().join("s.json.lock");
        let dead = holder(DEAD_PID, "build-7");
        std::fs::write(&path, serde_json::to_vec(&dead).expect("json")).expect("write");
        assert_eq!(
            force_unlock(&path, false).expect("ok"),
            ForceUnlock::WasStale(Some(dead))
        );
        assert!(!path.exists());
    }

    #[test]
    fn force_unlock_refuses_live_local_holder_unless_forced() {
        let dir = TestDir::new("force-live");
        let path = dir.path().join("s.json.lock");
        let me = LockHolder::current("meshform apply");
        let (first, _) = StateLock::acquire(&path, &me).expect("acquire");
        match force_unlock(&path, false) {
            Err(StateError::LockHolderAlive { path: p, holder }) => {
                assert_eq!(p, path);
                assert_eq!(*holder, me);
            }
            other => panic!("expected LockHolderAlive, got {other:?}"),
        }
        assert!(path.exists());
        assert_eq!(
            force_unlock(&path, true).expect("forced"),
            ForceUnlock::Removed(Some(me.clone()))
        );
        assert!(!path.exists());

        // The hazard: a new run now gets a lock while the first still holds
        // its (orphaned) one. The first one's release must not remove the new
        // run's lock file.
        let (second, stale) = StateLock::acquire(&path, &me).expect("acquire after force");
        assert!(stale.is_none());
        drop(first);
        assert!(path.exists(), "old holder's release kept the new lock file");
        assert!(matches!(
            StateLock::acquire(&path, &me),
            Err(StateError::Locked { .. })
        ));
        drop(second);
        assert!(!path.exists());
    }

    #[test]
    fn force_unlock_removes_dead_or_remote_holder() {
        let dir = TestDir::new("force-dead");
        let path = dir.path().join("s.json.lock");
        // Held (by this process) but recording a dead local pid.
        let dead = LockHolder {
            pid: DEAD_PID,
            ..LockHolder::current("meshform apply")
        };
        let (_held, _) = StateLock::acquire(&path, &dead).expect("acquire");
        assert_eq!(
            force_unlock(&path, false).expect("dead holder"),
            ForceUnlock::Removed(Some(dead))
        );
        assert!(!path.exists());

        // Held, recording a live pid on another host.
        let remote = LockHolder {
            host: format!("{}-elsewhere", hostname()),
            ..LockHolder::current("meshform apply")
        };
        let (_held2, _) = StateLock::acquire(&path, &remote).expect("acquire");
        assert_eq!(
            force_unlock(&path, false).expect("remote holder"),
            ForceUnlock::Removed(Some(remote))
        );
        assert!(!path.exists());
    }

    #[test]
    fn force_unlock_unknown_holder_needs_force() {
        let dir = TestDir::new("force-unknown");
        let path = dir.path().join("s.json.lock");
        let (held, _) = StateLock::acquire(&path, &LockHolder::current("x")).expect("acquire");
        // Simulate a holder that has not written its record yet.
        held.file.set_len(0).expect("truncate");
        assert!(matches!(
            force_unlock(&path, false),
            Err(StateError::Locked { holder: None, .. })
        ));
        assert_eq!(
            force_unlock(&path, true).expect("forced"),
            ForceUnlock::Removed(None)
        );
    }
}

//! State kept in memory: for tests and simulations (the engine harness
//! restarts "crashed" runs from it thousands of times, where files with
//! fsync would dominate the run time), and for library users who store the
//! bytes themselves.
//!
//! A [`MemoryState`] is a shared handle on one state's bytes and backup, with
//! a lock (one open store at a time) and scripted write failures.

use std::sync::{Arc, Mutex, MutexGuard};

use super::StateError;
use super::store::{PersistFailure, StateBackend, StateStore};

/// A state's bytes in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryState(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    current: Option<Vec<u8>>,
    backup: Option<Vec<u8>>,
    /// The journal's bytes (empty when compacted).
    journal: Vec<u8>,
    locked: bool,
    /// Writes (snapshots and journal appends) persisted so far.
    writes: u64,
    /// The write numbers (counting from 1) that fail instead of persisting.
    failing: Vec<u64>,
    /// Writes fail without counting: the process is "dead".
    frozen: bool,
}

impl MemoryState {
    /// An empty state store location.
    pub fn new() -> MemoryState {
        MemoryState::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain bytes behind, which
        // are still consistent: keep using them.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens the state for `stack`, locked until the store is dropped. Fails
    /// with [`StateError::Locked`] while another store holds it.
    pub fn open(&self, stack: &str) -> Result<StateStore, StateError> {
        let persisted = {
            let mut inner = self.inner();
            if inner.locked {
                return Err(StateError::Locked {
                    path: "memory".into(),
                    holder: None,
                });
            }
            inner.locked = true;
            (inner.current.clone(), inner.journal.clone())
        };
        let backend = MemoryBackend(self.clone());
        StateStore::with_backend(Box::new(backend), persisted.0, Some(persisted.1), stack)
    }

    /// The persisted bytes, `None` before the first write.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.inner().current.clone()
    }

    /// The journal's bytes: changes since the snapshot ([`bytes`](Self::bytes))
    /// was last written; empty once compacted.
    pub fn journal(&self) -> Vec<u8> {
        self.inner().journal.clone()
    }

    /// The backup's bytes: the version before the last write.
    pub fn backup(&self) -> Option<Vec<u8>> {
        self.inner().backup.clone()
    }

    /// Number of writes persisted so far.
    pub fn writes(&self) -> u64 {
        self.inner().writes
    }

    /// Makes write number `n` (counting persisted writes, snapshots and
    /// journal appends, from 1, over the life of this state) fail with an I/O error, persisting nothing.
    pub fn fail_write(&self, n: u64) {
        self.inner().failing.push(n);
    }

    /// While `frozen`, every write fails without counting: what a killed
    /// process leaves is what was persisted before, so a store dropped
    /// meanwhile leaves its journal uncompacted, as a crash would.
    pub fn set_frozen(&self, frozen: bool) {
        self.inner().frozen = frozen;
    }
}

/// The [`StateBackend`] of a [`MemoryState`]; releases the lock when dropped.
#[derive(Debug)]
struct MemoryBackend(MemoryState);

impl StateBackend for MemoryBackend {
    fn persist(&mut self, previous: Option<&[u8]>, next: &[u8], label: &str) -> Result<(), PersistFailure> {
        let mut inner = self.0.inner();
        inner.next_write(label)?;
        inner.backup = previous.map(<[u8]>::to_vec);
        inner.current = Some(next.to_vec());
        Ok(())
    }

    fn append(&mut self, record: &[u8], label: &str) -> Result<(), PersistFailure> {
        let mut inner = self.0.inner();
        inner.next_write(label)?;
        inner.journal.extend_from_slice(record);
        Ok(())
    }

    fn clear_journal(&mut self) -> Result<(), StateError> {
        let mut inner = self.0.inner();
        if inner.frozen {
            return Err(frozen());
        }
        inner.journal.clear();
        Ok(())
    }

    fn location(&self) -> String {
        "memory".to_string()
    }

    fn backup_location(&self) -> String {
        "memory (backup)".to_string()
    }
}

impl Inner {
    /// Counts a write, or fails it if it is scripted to fail.
    fn next_write(&mut self, label: &str) -> Result<(), PersistFailure> {
        if self.frozen {
            return Err(frozen().into());
        }
        let number = self.writes + 1;
        if let Some(i) = self.failing.iter().position(|n| *n == number) {
            self.failing.swap_remove(i);
            return Err(StateError::Io {
                path: "memory".into(),
                source: std::io::Error::other(format!("injected failure of write {number} ({label})")),
            }
            .into());
        }
        self.writes = number;
        Ok(())
    }
}

fn frozen() -> StateError {
    StateError::Io {
        path: "memory".into(),
        source: std::io::Error::other("the state is frozen (a simulated crash)"),
    }
}

impl Drop for MemoryBackend {
    fn drop(&mut self) {
        self.0.inner().locked = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_locks_and_fails_on_request() {
        let mem = MemoryState::new();
        let mut store = mem.open("dev").expect("open");
        assert!(matches!(mem.open("dev"), Err(StateError::Locked { .. })));
        store
            .update(|s| {
                s.outputs.insert("a".into(), 1.into());
            })
            .expect("write 1");
        assert_eq!(mem.writes(), 1);
        mem.fail_write(2);
        let err = store.update(|s| {
            s.outputs.insert("b".into(), 2.into());
        });
        assert!(err.is_err());
        // Nothing changed, in memory or persisted.
        assert!(!store.state().outputs.contains_key("b"));
        assert_eq!(mem.writes(), 1);
        store
            .update(|s| {
                s.outputs.insert("b".into(), 2.into());
            })
            .expect("write 2");
        drop(store);
        let again = mem.open("dev").expect("reopen after drop");
        assert_eq!(again.state().outputs.len(), 2);
        assert_eq!(again.state().serial, 2);
        assert!(mem.backup().is_some());
    }

    #[test]
    fn a_frozen_state_keeps_the_journal_for_the_next_open() {
        let mem = MemoryState::new();
        let mut store = mem.open("dev").expect("open");
        for n in 0..3 {
            store
                .update(|s| {
                    s.outputs.insert(format!("o{n}"), n.into());
                })
                .expect("write");
        }
        let expected = store.state().clone();
        assert_eq!(mem.writes(), 3, "a snapshot, then two appends");
        assert!(!mem.journal().is_empty());
        // Dropped while "dead": no compaction.
        mem.set_frozen(true);
        drop(store);
        mem.set_frozen(false);
        assert_eq!(mem.writes(), 3);
        assert!(!mem.journal().is_empty());
        // The next open replays the journal and compacts it.
        let store = mem.open("dev").expect("reopen");
        assert_eq!(store.state(), &expected);
        assert!(mem.journal().is_empty());
        assert_eq!(mem.writes(), 4);
    }
}

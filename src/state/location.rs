//! Where a stack's state lives: a local file (the default,
//! `.meshform/<stack>.json`) or, later, a remote store. Commands and the
//! library API name state by a [`StateLocation`] and open, read or unlock
//! it through it, so they never depend on one backend.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{ForceUnlock, LockHolder, State, StateError, StateStore, default_path};

/// Where a stack's state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A local state file (with its `.journal`, `.backup` and `.lock`
    /// beside it).
    File(PathBuf),
}

impl StateLocation {
    /// The location a `--state` argument or a `[stack] state` value names.
    pub fn parse(text: &str) -> Result<StateLocation, String> {
        if text.is_empty() {
            return Err("the state location is empty".to_string());
        }
        Ok(StateLocation::File(PathBuf::from(text)))
    }

    /// The default location of `stack`'s state: `.meshform/<stack>.json`.
    pub fn default_for(stack: &str) -> StateLocation {
        StateLocation::File(default_path(stack))
    }

    /// Locks and loads the state for changing (see [`StateStore::open`]).
    /// Also returns the record of a previous holder that died holding the
    /// lock.
    pub async fn open(
        &self,
        stack: &str,
        holder: LockHolder,
    ) -> Result<(StateStore, Option<LockHolder>), StateError> {
        match self {
            StateLocation::File(path) => StateStore::open(path, stack, holder),
        }
    }

    /// Reads the state without locking (see [`StateStore::read`]); `None`
    /// when there is none yet.
    pub async fn read(&self, stack: &str) -> Result<Option<State>, StateError> {
        match self {
            StateLocation::File(path) => StateStore::read(path, stack),
        }
    }

    /// Removes the lock by hand (see [`super::force_unlock`]).
    pub async fn force_unlock(&self, force: bool) -> Result<ForceUnlock, StateError> {
        match self {
            StateLocation::File(path) => super::force_unlock(&super::lock_path(path), force),
        }
    }

    /// The local file, if the state is kept in one.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            StateLocation::File(path) => Some(path),
        }
    }
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::File(path) => write!(f, "{}", path.display()),
        }
    }
}

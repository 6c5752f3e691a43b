//! Where a stack's state lives: a local file (the default,
//! `.meshform/<stack>.json`) or an S3 object (`s3://bucket/key`, see
//! [`super::s3`]). Commands and the library API name state by a
//! [`StateLocation`] and open, read or unlock it through it, so they never
//! depend on one backend.

use std::fmt;
use std::path::{Path, PathBuf};

use super::s3::{self, S3Backend, S3Connect, S3Objects, S3Options};
use super::{ForceUnlock, LockHolder, State, StateError, StateStore, default_path};

/// Where a stack's state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A local state file (with its `.journal`, `.backup` and `.lock`
    /// beside it).
    File(PathBuf),
    /// An S3 object (`s3://bucket/key`), with `key.journal`, `key.backup`
    /// and `key.lock` beside it, reached through the standard AWS
    /// configuration chain in the stack's region.
    S3 {
        /// The bucket.
        bucket: String,
        /// The snapshot's object key.
        key: String,
    },
}

impl StateLocation {
    /// The location a `--state` argument or a `[stack] state` value names.
    pub fn parse(text: &str) -> Result<StateLocation, String> {
        if text.is_empty() {
            return Err("the state location is empty".to_string());
        }
        if text.starts_with("s3://") {
            let S3Objects { bucket, key } = s3::parse_url(text)?;
            return Ok(StateLocation::S3 { bucket, key });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "unsupported state location scheme `{scheme}://`: use a file path or s3://bucket/key"
            ));
        }
        Ok(StateLocation::File(PathBuf::from(text)))
    }

    /// The default location of `stack`'s state: `.meshform/<stack>.json`.
    pub fn default_for(stack: &str) -> StateLocation {
        StateLocation::File(default_path(stack))
    }

    /// Locks and loads the state for changing (see [`StateStore::open`] and
    /// [`S3Backend`]). Also returns the record of a previous holder that
    /// died holding the lock (for S3: whose lock expired). `region` is the
    /// stack's: the region of an S3 state's bucket.
    pub async fn open(
        &self,
        stack: &str,
        region: &str,
        holder: LockHolder,
    ) -> Result<(StateStore, Option<LockHolder>), StateError> {
        self.open_via(S3Connect::Region(region.to_string()), stack, holder)
            .await
    }

    /// [`open`](Self::open), reaching an S3 state through `connect`.
    pub async fn open_via(
        &self,
        connect: S3Connect,
        stack: &str,
        holder: LockHolder,
    ) -> Result<(StateStore, Option<LockHolder>), StateError> {
        match self {
            StateLocation::File(path) => StateStore::open(path, stack, holder),
            StateLocation::S3 { .. } => {
                let options = S3Options::from_env().map_err(|message| StateError::Remote {
                    location: self.to_string(),
                    message,
                })?;
                self.open_s3(connect, stack, holder, options).await
            }
        }
    }

    /// [`open`](Self::open) for an S3 location, reaching S3 through
    /// `connect` with `options` (for library users and tests that pick
    /// endpoint, credentials and lock TTL themselves). Fails for a file
    /// location.
    pub async fn open_s3(
        &self,
        connect: S3Connect,
        stack: &str,
        holder: LockHolder,
        options: S3Options,
    ) -> Result<(StateStore, Option<LockHolder>), StateError> {
        let objects = self.s3_objects()?;
        let (backend, loaded) = S3Backend::open(connect, objects, holder, options).await?;
        let store = StateStore::with_backend(Box::new(backend), loaded.snapshot, loaded.journal, stack)?;
        Ok((store, loaded.stale))
    }

    /// Reads the state without locking (see [`StateStore::read`]); `None`
    /// when there is none yet. `region` as for [`open`](Self::open).
    pub async fn read(&self, stack: &str, region: &str) -> Result<Option<State>, StateError> {
        self.read_via(S3Connect::Region(region.to_string()), stack).await
    }

    /// [`read`](Self::read), reaching an S3 state through `connect`.
    pub async fn read_via(&self, connect: S3Connect, stack: &str) -> Result<Option<State>, StateError> {
        match self {
            StateLocation::File(path) => StateStore::read(path, stack),
            StateLocation::S3 { .. } => s3::read(connect, &self.s3_objects()?, stack).await,
        }
    }

    /// Removes the lock by hand (see [`super::force_unlock`]). For S3 the
    /// lock is removed whoever holds it, and `force` is not needed: a
    /// remote holder's liveness cannot be checked (see
    /// [`s3::force_unlock`]). `region` as for [`open`](Self::open).
    pub async fn force_unlock(&self, force: bool, region: &str) -> Result<ForceUnlock, StateError> {
        self.force_unlock_via(force, S3Connect::Region(region.to_string()))
            .await
    }

    /// [`force_unlock`](Self::force_unlock), reaching an S3 state through
    /// `connect`.
    pub async fn force_unlock_via(&self, force: bool, connect: S3Connect) -> Result<ForceUnlock, StateError> {
        match self {
            StateLocation::File(path) => super::force_unlock(&super::lock_path(path), force),
            StateLocation::S3 { .. } => s3::force_unlock(connect, &self.s3_objects()?).await,
        }
    }

    /// The local file, if the state is kept in one.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            StateLocation::File(path) => Some(path),
            StateLocation::S3 { .. } => None,
        }
    }

    /// Whether the state is kept remotely (not in a local file).
    pub fn is_remote(&self) -> bool {
        self.as_path().is_none()
    }

    fn s3_objects(&self) -> Result<S3Objects, StateError> {
        match self {
            StateLocation::S3 { bucket, key } => Ok(S3Objects {
                bucket: bucket.clone(),
                key: key.clone(),
            }),
            StateLocation::File(path) => Err(StateError::Remote {
                location: path.display().to_string(),
                message: "not an S3 state location".to_string(),
            }),
        }
    }
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::File(path) => write!(f, "{}", path.display()),
            StateLocation::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_and_s3_urls() {
        assert_eq!(
            StateLocation::parse("state/dev.json"),
            Ok(StateLocation::File(PathBuf::from("state/dev.json")))
        );
        let s3 = StateLocation::parse("s3://team-state/stacks/dev.json").expect("s3");
        assert_eq!(
            s3,
            StateLocation::S3 {
                bucket: "team-state".to_string(),
                key: "stacks/dev.json".to_string()
            }
        );
        assert_eq!(s3.to_string(), "s3://team-state/stacks/dev.json");
        assert!(s3.is_remote());
        for bad in [
            "",
            "s3://",
            "s3:///dev.json",
            "s3://bucket",
            "s3://bucket/",
            "gs://b/k",
        ] {
            assert!(StateLocation::parse(bad).is_err(), "{bad}");
        }
    }
}

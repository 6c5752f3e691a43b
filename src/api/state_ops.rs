//! Editing state by hand through the API: forgetting resources and
//! clearing a dead run's lock. Each edit takes the lock, checks every
//! address before changing anything, and writes one state change.

use super::{ApiError, Workspace};
use crate::state::{ForceUnlock, State};

/// What [`Workspace::state_rm`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Each address forgotten, with what it was (`kind id`, or an
    /// interrupted create).
    pub removed: Vec<(String, String)>,
    /// Where the state before the edit is kept.
    pub backup: String,
}

impl Workspace {
    /// Forgets `addresses` (resources or interrupted creates): meshform no
    /// longer tracks them, and whatever exists in the cloud is left alone.
    /// Refuses, changing nothing, if any address is not in state.
    pub async fn state_rm(&self, addresses: &[String]) -> Result<Removed, ApiError> {
        let (mut store, _) = self.lock().await?;
        if let Some(missing) = addresses
            .iter()
            .find(|a| !store.state().resources.contains_key(*a) && !store.state().pending.contains_key(*a))
        {
            return Err(self.unknown_address(store.state(), missing));
        }
        let removed = addresses
            .iter()
            .map(|a| {
                let what = match store.state().resources.get(a) {
                    Some(r) => format!("{} {}", r.kind, r.id),
                    None => "an interrupted create".to_string(),
                };
                (a.clone(), what)
            })
            .collect();
        store.update_labeled("state-rm", |s| {
            for a in addresses {
                s.resources.remove(a);
                s.pending.remove(a);
            }
        })?;
        Ok(Removed {
            removed,
            backup: store.backup_location(),
        })
    }

    /// Removes the state lock of a run that died holding it (see
    /// [`crate::state::force_unlock`]; `force` also removes a lock whose
    /// holder still runs on this host).
    pub async fn force_unlock(&self, force: bool) -> Result<ForceUnlock, ApiError> {
        Ok(self.state.force_unlock_via(force, self.s3_connect()).await?)
    }

    /// "state tracks no resource X", suggesting a close address.
    pub(crate) fn unknown_address(&self, state: &State, address: &str) -> ApiError {
        let known = state
            .resources
            .keys()
            .chain(state.pending.keys())
            .map(String::as_str);
        ApiError::UnknownAddress {
            location: self.state.to_string(),
            address: address.to_string(),
            suggestion: crate::config::suggest(address, known).map(str::to_string),
        }
    }
}

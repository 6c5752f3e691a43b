//! Edits of state by hand (`meshform state mv`, `meshform import`): store
//! methods that check the addresses first and change nothing when
//! refusing, each one write (one journal record) under the lock.

use super::model::{DEPOSED_SUFFIX, ResourceState};
use super::{StateError, StateStore};

/// Why an edit of state was refused (nothing changed), or failed to be
/// written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EditError {
    /// The address to move from is not in state.
    #[error("state tracks no resource `{address}`{}", hint(suggestion.as_deref()))]
    Missing {
        /// The address given.
        address: String,
        /// A close address state does track.
        suggestion: Option<String>,
    },
    /// The address is an interrupted create, which only a run resolves.
    #[error("`{0}` is an interrupted create, not a resource: run `meshform apply` to resolve it first")]
    Pending(String),
    /// The address to move to, or to import at, is taken.
    #[error(
        "state already tracks `{address}` ({kind} {id}); choose another address, or `meshform state rm` it first"
    )]
    Taken {
        /// The address.
        address: String,
        /// What state tracks there: its type.
        kind: String,
        /// And its id.
        id: String,
    },
    /// The same object (kind and id) is already tracked at another address.
    #[error(
        "{kind} {id} is already tracked by state as `{address}`: one object cannot be tracked twice (`meshform state mv {address} ...` renames it)"
    )]
    AlreadyTracked {
        /// Where state tracks it.
        address: String,
        /// Its type.
        kind: String,
        /// Its id.
        id: String,
    },
    /// The new address cannot be a resource's address.
    #[error(
        "`{0}` cannot be a resource address (empty, or holding `~`, which state keeps for the old objects of replacements)"
    )]
    BadAddress(String),
    /// Writing state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

fn hint(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

impl StateStore {
    /// Renames the resource at `from` to `to`, and `from` to `to` in every
    /// other resource's (and interrupted create's) recorded dependencies,
    /// in one write. Refuses, changing nothing, when `from` is not a
    /// resource state tracks or `to` is taken.
    pub fn move_resource(&mut self, from: &str, to: &str) -> Result<(), EditError> {
        let state = self.state();
        if to.is_empty() || to.contains('~') {
            return Err(EditError::BadAddress(to.to_string()));
        }
        if state.pending.contains_key(from) {
            return Err(EditError::Pending(from.to_string()));
        }
        if !state.resources.contains_key(from) {
            return Err(EditError::Missing {
                address: from.to_string(),
                suggestion: crate::config::suggest(from, state.resources.keys().map(String::as_str))
                    .map(str::to_string),
            });
        }
        if let Some(r) = state.resources.get(to) {
            return Err(EditError::Taken {
                address: to.to_string(),
                kind: r.kind.clone(),
                id: r.id.clone(),
            });
        }
        if state.pending.contains_key(to) {
            return Err(EditError::Pending(to.to_string()));
        }
        // The old objects of `from`'s interrupted replacements move with it.
        let deposed_prefix = format!("{from}{DEPOSED_SUFFIX}");
        self.update_labeled(&format!("move/{from}/{to}"), |s| {
            let renamed = |a: &str| -> Option<String> {
                if a == from {
                    Some(to.to_string())
                } else {
                    a.strip_prefix(&deposed_prefix)
                        .map(|rest| format!("{to}{DEPOSED_SUFFIX}{rest}"))
                }
            };
            let moving: Vec<String> = s
                .resources
                .keys()
                .filter(|a| renamed(a).is_some())
                .cloned()
                .collect();
            for a in moving {
                if let (Some(r), Some(new)) = (s.resources.remove(&a), renamed(&a)) {
                    s.resources.insert(new, r);
                }
            }
            let deps = s
                .resources
                .values_mut()
                .map(|r| &mut r.dependencies)
                .chain(s.pending.values_mut().map(|p| &mut p.dependencies));
            for list in deps {
                for d in list.iter_mut() {
                    if let Some(new) = renamed(d) {
                        *d = new;
                    }
                }
            }
        })?;
        Ok(())
    }

    /// Records `resource`, an object that exists but that meshform did
    /// not make, at `address`. Refuses, changing nothing, when `address` is
    /// taken or the same object (type and id) is tracked elsewhere.
    pub fn import_resource(&mut self, address: &str, resource: ResourceState) -> Result<(), EditError> {
        let state = self.state();
        if let Some(r) = state.resources.get(address) {
            return Err(EditError::Taken {
                address: address.to_string(),
                kind: r.kind.clone(),
                id: r.id.clone(),
            });
        }
        if state.pending.contains_key(address) {
            return Err(EditError::Pending(address.to_string()));
        }
        if let Some((other, r)) = state
            .resources
            .iter()
            .find(|(_, r)| r.kind == resource.kind && r.id == resource.id)
        {
            return Err(EditError::AlreadyTracked {
                address: other.clone(),
                kind: r.kind.clone(),
                id: r.id.clone(),
            });
        }
        self.update_labeled(&format!("import/{address}"), |s| {
            s.resources.insert(address.to_string(), resource);
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::TestDir;
    use crate::state::{LockHolder, PendingCreate, State};

    fn resource(id: &str, deps: &[&str]) -> ResourceState {
        ResourceState {
            kind: "test.named".to_string(),
            id: id.to_string(),
            attributes: crate::Attrs::new(),
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn store(dir: &TestDir) -> StateStore {
        let path = dir.path().join("s.json");
        let (mut store, _) = StateStore::open(&path, "s", LockHolder::current("test")).unwrap();
        store
            .update(|s| {
                s.resources.insert("vpc".into(), resource("vpc-1", &[]));
                s.resources
                    .insert("subnet".into(), resource("subnet-1", &["vpc"]));
                s.resources.insert("vpc~deposed".into(), resource("vpc-0", &[]));
                s.pending.insert(
                    "nat".into(),
                    PendingCreate::new("test.named", crate::Attrs::new(), vec!["vpc".into()]),
                );
            })
            .unwrap();
        store
    }

    #[test]
    fn move_renames_the_address_and_what_depends_on_it() {
        let dir = TestDir::new("mv");
        let mut store = store(&dir);
        store.move_resource("vpc", "network").unwrap();
        let s = store.state();
        assert!(!s.resources.contains_key("vpc"));
        assert_eq!(s.resources["network"].id, "vpc-1");
        assert_eq!(s.resources["network~deposed"].id, "vpc-0");
        assert_eq!(s.resources["subnet"].dependencies, ["network"]);
        assert_eq!(s.pending["nat"].dependencies, ["network"]);
        // What was written is what a reader sees.
        let read = StateStore::read(&dir.path().join("s.json"), "s")
            .unwrap()
            .unwrap();
        assert_eq!(&read, store.state());
    }

    #[test]
    fn move_refuses_without_changing_anything() {
        let dir = TestDir::new("mv-refused");
        let mut store = store(&dir);
        let before: State = store.state().clone();
        let cases: &[(&str, &str, &str)] = &[
            ("vcp", "x", "tracks no resource `vcp` (did you mean `vpc`?)"),
            ("vpc", "subnet", "already tracks `subnet` (test.named subnet-1)"),
            ("nat", "x", "`nat` is an interrupted create"),
            ("vpc", "nat", "`nat` is an interrupted create"),
            ("vpc", "a~b", "cannot be a resource address"),
            ("vpc", "", "cannot be a resource address"),
        ];
        for (from, to, message) in cases {
            let err = store.move_resource(from, to).unwrap_err();
            assert!(err.to_string().contains(message), "{from} -> {to}: {err}");
            assert_eq!(store.state(), &before, "{from} -> {to}");
        }
    }

    #[test]
    fn import_refuses_a_taken_address_and_an_object_tracked_elsewhere() {
        let dir = TestDir::new("import");
        let mut store = store(&dir);
        let before = store.state().clone();
        let err = store.import_resource("vpc", resource("vpc-9", &[])).unwrap_err();
        assert!(matches!(err, EditError::Taken { .. }), "{err}");
        let err = store
            .import_resource("other", resource("subnet-1", &[]))
            .unwrap_err();
        assert!(
            err.to_string().contains("already tracked by state as `subnet`"),
            "{err}"
        );
        assert_eq!(store.state(), &before);
        store
            .import_resource("other", resource("subnet-2", &["vpc"]))
            .unwrap();
        assert_eq!(store.state().resources["other"].id, "subnet-2");
        assert_eq!(store.state().serial, before.serial + 1, "one write");
    }
}

//! Import (`meshform import STACK ADDRESS ID`): an object made outside
//! meshform comes under its management at a stack's address.
//!
//! The object is read by id through its kind's `read` (the read a refresh
//! makes, given only the id), and recorded at the address with its live
//! attributes and the stack resource's dependencies. Nothing in the cloud
//! changes: the next plan shows how the object differs from the stack (at
//! least the ownership tags, which the next apply adds).

use super::Engine;
use crate::config::Stack;
use crate::provider::{ProviderError, ReadRequest};
use crate::state::{EditError, ResourceState, StateStore};

/// Why an import was refused or failed. Nothing has changed when one is
/// returned.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    /// The address names no resource of the stack.
    #[error("stack `{stack}` has no resource `{address}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    NotInStack {
        /// The stack's name.
        stack: String,
        /// The address given.
        address: String,
        /// The closest address of the stack, if one is close.
        suggestion: Option<String>,
    },
    /// The kind read nothing with that id.
    #[error(
        "{kind} `{id}` does not exist (reading it by id found nothing), so there is nothing to import at `{address}`"
    )]
    NotFound {
        /// The address given.
        address: String,
        /// The resource's type.
        kind: String,
        /// The id given.
        id: String,
    },
    /// Reading the object failed.
    #[error("{address}: reading {kind} `{id}` failed: {source}")]
    Read {
        /// The address given.
        address: String,
        /// The resource's type.
        kind: String,
        /// The id given.
        id: String,
        /// The kind's error.
        source: ProviderError,
    },
    /// State refused the record (address taken, object tracked elsewhere)
    /// or could not be written.
    #[error(transparent)]
    State(#[from] EditError),
    /// The stack names a type this meshform has no kind for.
    #[error(transparent)]
    Engine(#[from] super::EngineError),
}

impl Engine {
    /// Imports the object `id` at `address` of `stack` into `store`, and
    /// returns what was recorded. Refuses, changing nothing, an address not
    /// in the stack or already in state, an id the kind reads nothing for,
    /// and an object state already tracks at another address.
    pub async fn import(
        &self,
        stack: &Stack,
        store: &mut StateStore,
        address: &str,
        id: &str,
    ) -> Result<ResourceState, ImportError> {
        let Some(resource) = stack.resources.get(address) else {
            return Err(ImportError::NotInStack {
                stack: stack.name.clone(),
                address: address.to_string(),
                suggestion: crate::config::suggest(address, stack.resources.keys().map(String::as_str))
                    .map(str::to_string),
            });
        };
        let type_name = resource.kind.type_name;
        // Checked before the read as well as by the store's write, so that
        // a taken address is refused without a cloud call.
        if let Some(r) = store.state().resources.get(address) {
            return Err(EditError::Taken {
                address: address.to_string(),
                kind: r.kind.clone(),
                id: r.id.clone(),
            }
            .into());
        }
        let kind = self.kind(type_name)?.clone();
        let request = ReadRequest {
            address: address.to_string(),
            id: id.to_string(),
            attrs: crate::Attrs::new(),
        };
        let read_error = |source| ImportError::Read {
            address: address.to_string(),
            kind: type_name.to_string(),
            id: id.to_string(),
            source,
        };
        let mut answers = kind
            .read(std::slice::from_ref(&request))
            .await
            .map_err(read_error)?;
        if answers.len() != 1 {
            return Err(read_error(ProviderError::unexpected(
                "read",
                format!("one request, {} answers", answers.len()),
            )));
        }
        let Some(live) = answers.remove(0) else {
            return Err(ImportError::NotFound {
                address: address.to_string(),
                kind: type_name.to_string(),
                id: id.to_string(),
            });
        };
        let record = ResourceState {
            kind: type_name.to_string(),
            id: live.id,
            attributes: live.attrs,
            dependencies: resource.dependencies(),
        };
        store.import_resource(address, record.clone())?;
        Ok(record)
    }
}

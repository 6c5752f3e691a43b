//! In-cluster resource kinds: namespaces, manifests applied with
//! server-side apply, and Helm releases. They reach their cluster through
//! the `cluster` attribute ([`connection`]).

pub mod connection;
mod helm_cli;
pub mod helm_release;
mod helm_version;
mod interim;
pub mod manifest;
pub mod namespace;
pub mod objects;
pub mod wait;

use std::sync::Arc;

use crate::provider::Kinds;
use crate::provider::schema::KindDef;

/// Static definitions of the in-cluster kinds.
pub static KIND_DEFS: &[&KindDef] = &[&namespace::DEF, &manifest::DEF, &helm_release::DEF];

/// Adds the in-cluster kinds to `kinds`, sharing one client cache.
pub fn add_kinds(kinds: &mut Kinds) {
    let clients = Arc::new(connection::Clients::default());
    kinds.insert(Arc::new(namespace::Namespace(clients.clone())));
    kinds.insert(Arc::new(manifest::Manifest(clients.clone())));
    kinds.insert(Arc::new(helm_release::HelmRelease(clients)));
}

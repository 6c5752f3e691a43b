//! meshform: a declarative infrastructure provisioner.
//!
//! A stack is a TOML file describing resources and the references between
//! them. meshform loads and validates it ([`config`]), builds the dependency
//! graph ([`graph`]), refreshes what state records against the cloud and
//! computes a [`plan::Plan`] with a pure diff ([`plan`]), then applies or
//! destroys it concurrently in dependency order ([`engine`]), recording every
//! operation in a locked, atomically written state file ([`state`]).
//! Resource kinds live in [`provider`]; an in-memory fake cloud and kinds
//! for tests live in [`testing`]. Access to a created EKS cluster:
//! tokens in [`eks_auth`], kubeconfig entries in [`kubeconfig`]. Progressive
//! traffic shifting with health gates: [`shift`].
//!
//! The `meshform` binary ([`cli`]) is a thin layer over this library.

#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod config;
pub mod eks_auth;
pub mod engine;
pub mod failpoint;
pub mod graph;
pub mod kubeconfig;
pub mod plan;
pub mod provider;
pub mod sensitive;
pub mod shift;
pub mod state;
pub mod testing;

/// Values of attributes, variables and outputs: JSON values.
///
/// TOML values convert losslessly for every type meshform accepts (strings,
/// integers, booleans, arrays and tables); JSON is what the state file and the
/// plan's JSON form hold, so one type serves config, plan and state.
pub type Value = serde_json::Value;

/// A resource's attributes by name.
pub type Attrs = serde_json::Map<String, Value>;

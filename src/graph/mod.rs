//! Dependency graphs and their concurrent walk.
//!
//! [`ResourceGraph`] is the stack's graph (resources and the references and
//! `depends_on` between them). [`walk`] runs any graph of work concurrently
//! in dependency order and knows nothing of resources: the engine builds a
//! graph of actions and hands each node's work to it.

mod resources;
mod walk;

pub use resources::{Cycle, ResourceGraph};
pub use walk::{CancelFlag, Outcome, WorkGraph, walk};

//! Planning: a pure diff of the stack against the refreshed prior state,
//! producing a [`Plan`] that is plain, serialisable data.

mod diff;
pub mod eval;
mod make_before_break;
mod model;
mod order;
pub mod partial;
#[cfg(test)]
mod partial_tests;
mod render;
pub mod saved;
mod target;
#[cfg(test)]
mod tests;

pub use diff::{PlanError, Prior, PriorResource, plan, plan_destroy};
pub use model::{
    Action, AttrChange, Detach, OutputChange, PLAN_FORMAT_VERSION, Plan, ReplaceOrder, ResourceChange,
    Summary,
};
pub use order::live_dependencies;
pub use render::render;
pub use target::{TargetError, check_targets, output_dependencies, restrict};

//! Progressive traffic shifting with health gates.
//!
//! `meshform shift` applies a stack once per step of one variable (for
//! example `v2_weight` = 10, 50, 100), each through the normal plan/apply
//! path, waits a pause, and evaluates every [`Gate`]; when one fails it
//! applies the last good step again and stops with an error naming the gate
//! and the value it observed.
//!
//! - [`gate`]: the `Gate` trait and its typed outcome, so other tooling can
//!   add gates; [`Comparison`] for threshold gates.
//! - [`deployment`]: a Deployment is Available with every replica updated.
//! - [`prometheus`]: a PromQL query compared to a threshold, through the
//!   Prometheus HTTP API ([`http`] is its minimal client).
//! - [`spec`]: steps, pauses and gate specifications as the command line
//!   and the stack's `[shift.<var>]` tables write them.
//! - [`driver`]: the step loop and its last-good rule.

pub mod deployment;
pub mod driver;
pub mod gate;
pub mod http;
pub mod prometheus;
pub mod spec;

pub use deployment::DeploymentGate;
pub use driver::{ShiftError, ShiftPlan, ShiftReport, StepApplier, StepError, run};
pub use gate::{Comparison, Gate, GateOutcome};
pub use prometheus::PrometheusGate;
pub use spec::{GateSpec, ShiftDecl, SpecError, parse_gate, parse_pause, parse_steps};

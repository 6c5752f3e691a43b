//! Test support: the local AWS emulator, running the CLI, and helpers shared
//! by test modules.
#![allow(dead_code)]

pub mod chart_repo;
pub mod cli;
pub mod fault_proxy;
pub mod inventory;
pub mod kind_ops;
pub mod kube_tools;
pub mod moto;
pub mod prometheus;
pub mod real_helm;
pub mod walkthrough;

//! Test support: the local AWS emulator, running the CLI, and helpers shared
//! by test modules.
#![allow(dead_code)]

pub mod cli;
pub mod fake_helm;
pub mod fault_proxy;
pub mod inventory;
pub mod kube_tools;
pub mod moto;
pub mod walkthrough;

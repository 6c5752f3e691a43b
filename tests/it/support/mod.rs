//! Test support: the local AWS emulator and helpers shared by test modules.
#![allow(dead_code)]

pub mod moto;

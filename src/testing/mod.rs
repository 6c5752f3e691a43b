//! An in-process test provider: a fake cloud with strict semantics and
//! scripted faults, and fake resource kinds that run on it, so that the
//! engine (and anything built on it) can be exercised without a cloud,
//! thousands of times, in virtual time.
//!
//! - [`FakeCloud`] is an in-memory world of objects (`fk-<n>` ids, types,
//!   attributes, tags), shared between the kinds and the test, which can
//!   inspect it ([`FakeCloud::objects`], [`FakeCloud::owned_by`],
//!   [`FakeCloud::ownership_counts`], the [journal](FakeCloud::journal)).
//!   It refuses what a strict cloud refuses: a second object with the same
//!   identity (`EntityAlreadyExists`), a reference to an id that does not
//!   exist (`InvalidReference.NotFound`), deleting an object another one
//!   still refers to (`DependencyViolation`).
//! - [`fake_kinds`] gives the kinds `test.named` (taggable, unique `name`),
//!   `test.anon` (taggable, no identity) and `test.keyed` (untagged, found by
//!   its `key`), registered with [`crate::provider::register_kinds`] so that
//!   stack files can use them.
//! - [`FaultScript`] decides, deterministically from a seed, the run, the
//!   call's target, operation and attempt, which calls are slow, fail before
//!   any effect (transient or not), lose their response after the effect, or
//!   crash the run (the call never returns and [`FakeCloud::crashed`]
//!   wakes, so the test drops the run as a SIGKILL would).
//!
//! ```
//! use std::sync::Arc;
//! use meshform::testing::{FakeCloud, fake_kinds};
//!
//! let cloud = FakeCloud::new();
//! let kinds = fake_kinds(&cloud);
//! let text = r#"
//! [stack]
//! name = "demo"
//! region = "test-1"
//!
//! [resource.a]
//! type = "test.named"
//! name = "a"
//!
//! [resource.b]
//! type = "test.anon"
//! refs = ["${a.id}"]
//! "#;
//! let stack = meshform::config::load_str("demo.toml".as_ref(), text.into(), &Default::default())?;
//! let engine = meshform::engine::Engine::new(&stack.name, kinds, meshform::engine::no_events());
//! let mem = meshform::state::MemoryState::new();
//! let facts = meshform::provider::RegionFacts::default();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! rt.block_on(async {
//!     let mut store = mem.open(&stack.name)?;
//!     let prior = engine.refresh_into(&mut store).await?;
//!     let plan = engine.plan(&stack, &prior, &facts)?;
//!     let store = Arc::new(tokio::sync::Mutex::new(store));
//!     let report = engine.apply(Some(&stack), &plan, store, &facts.azs).await?;
//!     assert!(report.is_success());
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! assert_eq!(cloud.owned_by("demo").len(), 2);
//! // `b` refers to `a`: the cloud refuses to delete `a` first.
//! let a = cloud.owned_by("demo").into_iter().find(|o| o.tag("meshform:address") == Some("a")).unwrap();
//! assert!(cloud.remove(&a.id).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The randomized engine harness built on these is part of the library's
//! unit tests (`testing::harness`, `cargo test --lib testing::harness`):
//! generated stacks, edits, faults and kills, with the engine's promises
//! checked after every run.

mod cloud;
mod faults;
mod kinds;

#[cfg(test)]
mod harness;

pub use cloud::{FakeCloud, FakeObject, ID_PREFIX, Refusal, referenced_id};
pub use faults::{
    CallOp, Decision, FaultOutcome, FaultRates, FaultScript, OpSet, SplitMix, hash_str, splitmix64,
};
pub use kinds::{ANON, FakeKind, KEYED, KIND_DEFS, NAMED, fake_kinds, register};

//! What the reads of one refresh share.
//!
//! Several kinds can read the same cloud objects (route tables, routes and
//! subnet associations all come from `DescribeRouteTables`). Before any
//! read of a refresh starts, the engine lets every kind announce what it
//! will read ([`crate::provider::ResourceKind::announce`]); a shared reader
//! kept in the [`ReadSession`] then describes the union once, and each
//! kind's read takes its part from that one answer. A session lives for one
//! refresh only, so nothing read in it is ever reused later (reads during
//! an apply always ask the cloud).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Shared readers of one refresh, one of each type, made on first use.
#[derive(Default)]
pub struct ReadSession {
    slots: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl ReadSession {
    /// A session with no shared reader yet.
    pub fn new() -> ReadSession {
        ReadSession::default()
    }

    /// The session's shared reader of type `T`, made (empty) the first
    /// time it is asked for.
    pub fn shared<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn Any + Send + Sync>)
            .clone();
        drop(slots);
        match slot.downcast::<T>() {
            Ok(t) => t,
            // Unreachable: the slot of `TypeId::of::<T>()` only ever holds a
            // `T`. A fresh reader keeps the caller correct all the same.
            Err(_) => Arc::new(T::default()),
        }
    }
}

impl std::fmt::Debug for ReadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        write!(f, "ReadSession({n} shared readers)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    #[test]
    fn one_reader_per_type() {
        let s = ReadSession::new();
        s.shared::<Counter>()
            .0
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            s.shared::<Counter>().0.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        assert!(
            ReadSession::new()
                .shared::<Counter>()
                .0
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0
        );
    }
}

//! The fake resource kinds: static schemas, registered so that stacks can
//! use them, and [`FakeKind`], their operations on a [`FakeCloud`].

use std::sync::Arc;

use async_trait::async_trait;

use super::cloud::FakeCloud;
use crate::provider::schema::attrs;
use crate::provider::{
    InPlace, KindDef, Kinds, Live, OpContext, ProviderError, ReadRequest, ResourceKind, Schema,
};
use crate::{Attrs, Value};

/// `test.named`: a taggable object with a unique `name`.
pub static NAMED: KindDef = KindDef {
    type_name: "test.named",
    doc: "A fake object with a unique name (in memory, for tests).",
    attrs: attrs! {
        /// Unique among test.named objects.
        required name: String, force_new;
        /// Any number; changes in place.
        optional size: Int;
        /// Ids of objects it refers to; changes in place.
        optional refs: StringList;
        /// Id of an object it lives in.
        optional parent: String, force_new;
        /// `arn:fake:test.named/<id>`.
        computed arn: String;
    },
    taggable: true,
    identity: &[&["name"]],
    ..KindDef::BASE
};

/// `test.anon`: a taggable object with no identity of its own.
pub static ANON: KindDef = KindDef {
    type_name: "test.anon",
    doc: "A fake object any number of which may look alike (in memory, for tests).",
    attrs: attrs! {
        /// Any text; changes in place.
        optional label: String;
        /// Id of an object it lives in.
        optional parent: String, force_new;
        /// Ids of objects it refers to; changes in place.
        optional refs: StringList;
    },
    taggable: true,
    ..KindDef::BASE
};

/// `test.keyed`: an untagged object found by its natural key.
pub static KEYED: KindDef = KindDef {
    type_name: "test.keyed",
    doc: "A fake untagged object identified by its key (in memory, for tests).",
    attrs: attrs! {
        /// Unique among test.keyed objects.
        required key: String, force_new;
        /// Id of an object it points at; changes in place.
        optional target: String;
    },
    identity: &[&["key"]],
    ..KindDef::BASE
};

/// `test.pool`: an object with named members that others name
/// (`${pool.id}#member`), like a DestinationRule's subsets named by routes.
pub static POOL: KindDef = KindDef {
    type_name: "test.pool",
    doc: "A fake object with members other objects name (in memory, for tests).",
    attrs: attrs! {
        /// Member names; changes in place, but not to drop one still named.
        optional members: StringList;
        /// `arn:fake:test.pool/<id>`.
        computed arn: String;
    },
    taggable: true,
    expand: Some(pool_interim),
    ..KindDef::BASE
};

/// `test.pool`'s interim between two updates: the desired members, then
/// the prior ones the update drops.
fn pool_interim(prior: &Attrs, desired: &Attrs) -> Attrs {
    let list = |a: &Attrs| -> Vec<Value> {
        a.get("members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut members = list(desired);
    for m in list(prior) {
        if !members.contains(&m) {
            members.push(m);
        }
    }
    let mut out = desired.clone();
    out.insert("members".into(), Value::Array(members));
    out
}

/// Every fake kind's definition.
pub static KIND_DEFS: &[&KindDef] = &[&NAMED, &ANON, &KEYED, &POOL];

/// Makes the fake kinds known to stack loading and planning
/// ([`crate::provider::register_kinds`]). Idempotent.
pub fn register() {
    crate::provider::register_kinds(KIND_DEFS);
}

/// The fake kinds operating on `cloud`, ready for
/// [`Engine::new`](crate::engine::Engine::new); registers them too.
pub fn fake_kinds(cloud: &FakeCloud) -> Kinds {
    register();
    let mut kinds = Kinds::default();
    for def in KIND_DEFS {
        kinds.insert(Arc::new(FakeKind {
            def,
            cloud: cloud.clone(),
        }));
    }
    kinds
}

/// One fake kind: its cloud operations are calls on a [`FakeCloud`], with
/// the cloud's checks and scripted faults.
#[derive(Debug, Clone)]
pub struct FakeKind {
    def: &'static KindDef,
    cloud: FakeCloud,
}

impl FakeKind {
    /// The kind `def` (one of [`KIND_DEFS`]) on `cloud`.
    pub fn new(def: &'static KindDef, cloud: FakeCloud) -> FakeKind {
        FakeKind { def, cloud }
    }
}

impl Schema for FakeKind {
    fn def(&self) -> &'static KindDef {
        self.def
    }
}

#[async_trait]
impl ResourceKind for FakeKind {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        self.cloud.create(self.def, cx, desired).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        self.cloud.read(self.def, requests).await
    }

    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        self.cloud
            .update(self.def, cx, change.prior, change.desired)
            .await
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        self.cloud.delete(cx, prior).await
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        self.cloud.find_existing(self.def, cx, desired).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ownership_tags;
    use crate::testing::{FaultRates, FaultScript};
    use serde_json::json;

    fn cx(address: &str) -> OpContext {
        OpContext {
            stack: "s".into(),
            address: address.into(),
            ..Default::default()
        }
    }

    fn attrs(v: serde_json::Value) -> Attrs {
        v.as_object().cloned().expect("object")
    }

    fn named(name: &str, address: &str, extra: serde_json::Value) -> Attrs {
        let mut a = attrs(json!({ "name": name, "tags": ownership_tags("s", address) }));
        a.extend(attrs(extra));
        a
    }

    fn code(e: &ProviderError) -> Option<&str> {
        e.code()
    }

    #[tokio::test]
    async fn a_strict_cloud_refuses_what_a_real_one_would() {
        let cloud = FakeCloud::new();
        let kinds = fake_kinds(&cloud);
        let n = kinds.get("test.named").expect("named").clone();
        let k = kinds.get("test.keyed").expect("keyed").clone();

        let a = n
            .create(&cx("a"), &named("x", "a", json!({})))
            .await
            .expect("create a");
        assert!(a.id.starts_with("fk-"));
        assert_eq!(a.attrs["arn"], json!(format!("arn:fake:test.named/{}", a.id)));
        // Same name: EntityAlreadyExists, not transient.
        let e = n.create(&cx("b"), &named("x", "b", json!({}))).await.unwrap_err();
        assert_eq!(code(&e), Some("EntityAlreadyExists"));
        assert!(!e.is_transient());
        // Reference to a missing id: NotFound.
        let e = n
            .create(&cx("b"), &named("y", "b", json!({ "refs": ["fk-999"] })))
            .await
            .unwrap_err();
        assert_eq!(code(&e), Some("InvalidReference.NotFound"));
        // A reference by arn holds the referee.
        let b = n
            .create(
                &cx("b"),
                &named("y", "b", json!({ "refs": [a.attrs["arn"].clone()] })),
            )
            .await
            .expect("create b");
        let e = n.delete(&cx("a"), &a).await.unwrap_err();
        assert_eq!(code(&e), Some("DependencyViolation"));
        // A keyed object pointing at b holds it too.
        let kv = k
            .create(&cx("k"), &attrs(json!({ "key": "k1", "target": b.id })))
            .await
            .expect("create k");
        assert_eq!(
            code(&n.delete(&cx("b"), &b).await.unwrap_err()),
            Some("DependencyViolation")
        );
        // Force-new attributes do not change in place.
        let renamed = named("z", "b", json!({}));
        let change = InPlace {
            prior: &b,
            desired: &renamed,
            changed: &["name".into()],
        };
        let e = n.update(&cx("b"), change).await.unwrap_err();
        assert_eq!(code(&e), Some("ImmutableAttribute"));
        // Detach, then deletes succeed, and deleting again succeeds.
        let detached = attrs(json!({ "key": "k1", "target": "none" }));
        let change = InPlace {
            prior: &kv,
            desired: &detached,
            changed: &[],
        };
        k.update(&cx("k"), change).await.expect("detach k");
        let unreferenced = named("y", "b", json!({ "refs": [] }));
        let change = InPlace {
            prior: &b,
            desired: &unreferenced,
            changed: &["refs".into()],
        };
        let b2 = n.update(&cx("b"), change).await.expect("detach b");
        assert_eq!(b2.attrs["refs"], json!([]));
        n.delete(&cx("b"), &b).await.expect("delete b");
        n.delete(&cx("a"), &a).await.expect("delete a");
        n.delete(&cx("a"), &a).await.expect("delete a again");
        // Reads answer one result per request, None for what is gone.
        let reads = k
            .read(&[
                ReadRequest {
                    address: "k".into(),
                    id: kv.id.clone(),
                    attrs: Attrs::new(),
                },
                ReadRequest {
                    address: "a".into(),
                    id: a.id.clone(),
                    attrs: Attrs::new(),
                },
            ])
            .await
            .expect("read");
        assert_eq!(reads.len(), 2);
        assert!(reads[0].is_some() && reads[1].is_none());
        // find_existing: by ownership tags, or by natural key when untagged.
        let found = k
            .find_existing(&cx("other"), &attrs(json!({ "key": "k1" })))
            .await
            .expect("find");
        assert_eq!(found.map(|l| l.id), Some(kv.id.clone()));
        let c = n
            .create(&cx("c"), &named("c", "c", json!({})))
            .await
            .expect("create c");
        let found = n.find_existing(&cx("c"), &Attrs::new()).await.expect("find c");
        assert_eq!(found.map(|l| l.id), Some(c.id));
        assert_eq!(cloud.ownership_counts()[&("s".to_string(), "c".to_string())], 1);
        assert_eq!(cloud.take_refusals().len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_faults_lose_responses_and_crash() {
        let cloud = FakeCloud::new();
        let kinds = fake_kinds(&cloud);
        let anon = kinds.get("test.anon").expect("anon").clone();
        let lose = FaultRates {
            lost_response: 1.0,
            ..FaultRates::NONE
        };
        cloud.set_faults(Some(FaultScript {
            seed: 1,
            run: 1,
            rates: lose,
        }));
        let desired = attrs(json!({ "label": "l", "tags": ownership_tags("s", "x") }));
        let e = anon.create(&cx("x"), &desired).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        // The effect happened all the same.
        assert_eq!(cloud.owned_by("s").len(), 1);

        let crash = FaultRates {
            crash_after: 1.0,
            ..FaultRates::NONE
        };
        cloud.set_faults(Some(FaultScript {
            seed: 1,
            run: 2,
            rates: crash,
        }));
        let (cy, cz) = (cx("y"), cx("z"));
        let call = anon.create(&cy, &desired);
        tokio::select! {
            _ = call => panic!("a crashed call must never return"),
            () = cloud.crashed() => {}
        }
        assert!(cloud.is_crashed());
        assert_eq!(cloud.owned_by("s").len(), 2);
        // Calls after the crash hang without effect.
        let after = tokio::time::timeout(std::time::Duration::from_secs(60), anon.create(&cz, &desired));
        assert!(after.await.is_err());
        assert_eq!(cloud.owned_by("s").len(), 2);
        // A new run forgets the crash.
        cloud.set_faults(None);
        anon.create(&cx("z"), &desired)
            .await
            .expect("create after restart");
        assert!(cloud.journal().iter().any(|l| l.contains("CRASH")));
    }
}

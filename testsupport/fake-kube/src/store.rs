//! The object store: objects keyed by group, resource, namespace and name;
//! one global `resourceVersion` counter bumped by every change; the history
//! of changes that watches replay; deletion with finalizers.

use super::kinds::{self, ResourceType};
use super::status::ApiError;
use super::util::{now_rfc3339, str_at};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// `(group, plural, namespace or "", name)`. Objects of a kind are kept
/// once whatever version they were written in (no conversion: a CRD with
/// several versions serves the same stored object under each).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(ty: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            group: ty.group.clone(),
            plural: ty.plural.clone(),
            namespace: if ty.namespaced {
                namespace.into()
            } else {
                String::new()
            },
            name: name.into(),
        }
    }

    pub fn of(ty: &ResourceType, obj: &Value) -> Key {
        Key::new(
            ty,
            str_at(obj, &["metadata", "namespace"]).unwrap_or_default(),
            str_at(obj, &["metadata", "name"]).unwrap_or_default(),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub key: Key,
    pub type_: EventType,
    /// The object after the change (for DELETED, its last state with the
    /// deletion's resourceVersion).
    pub object: Value,
    /// The object before the change, to tell a watch with a selector that
    /// an object left or entered it.
    pub old: Option<Value>,
}

/// Everything behind the fake's one lock.
pub struct State {
    pub rv: u64,
    pub objects: BTreeMap<Key, Value>,
    pub events: Vec<Event>,
    pub crd_establish_delay: Duration,
    /// CRD name → when it becomes Established.
    pub establish_due: HashMap<String, Instant>,
    pub auto_complete_deployments: bool,
    pub auto_complete_load_balancers: bool,
    /// Counter for allocated Service cluster IPs and node ports.
    pub next_ip: u32,
}

/// What a write did.
pub enum Outcome {
    /// Stored (or, for a dry run, what would be stored).
    Stored(Value),
    /// The write left the object with a deletion timestamp and no
    /// finalizers, so it is gone; this is its last state.
    Removed(Value),
}

impl Outcome {
    pub fn into_value(self) -> Value {
        match self {
            Outcome::Stored(v) | Outcome::Removed(v) => v,
        }
    }
}

/// True when deleting the object must wait: `metadata.finalizers` is not
/// empty, or (a Namespace) `spec.finalizers` is not empty.
pub fn blocking_finalizers(obj: &Value) -> bool {
    let non_empty = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    non_empty("/metadata/finalizers") || (obj["kind"] == "Namespace" && non_empty("/spec/finalizers"))
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// The object without metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

impl State {
    pub fn new() -> State {
        State {
            rv: 1,
            objects: BTreeMap::new(),
            events: vec![],
            crd_establish_delay: Duration::ZERO,
            establish_due: HashMap::new(),
            auto_complete_deployments: false,
            auto_complete_load_balancers: false,
            next_ip: 1,
        }
    }

    /// Every served type: the built-ins and those of Established CRDs.
    pub fn types(&self) -> Vec<ResourceType> {
        let mut types = kinds::builtins();
        let crd_key = |k: &Key| k.group == "apiextensions.k8s.io" && k.plural == "customresourcedefinitions";
        for (_, crd) in self.objects.iter().filter(|(k, _)| crd_key(k)) {
            types.extend(kinds::from_crd(crd));
        }
        types
    }

    /// Any served version of a group/plural (for internal writes).
    pub fn type_of(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.types()
            .into_iter()
            .find(|t| t.group == group && t.plural == plural)
    }

    /// The object as served at `ty`'s version (kind and apiVersion set).
    pub fn render(ty: &ResourceType, obj: &Value) -> Value {
        let mut v = obj.clone();
        v["apiVersion"] = json!(ty.api_version());
        v["kind"] = json!(ty.kind);
        v
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Stores `new` at its key (sets `resourceVersion`, keeps
    /// `generation`, records the event). A write that changes nothing is
    /// not a write: no new resourceVersion, no event. An object being
    /// deleted whose finalizers are now all gone is removed instead. With
    /// `dry_run` nothing is stored and the counter does not move.
    pub fn commit(&mut self, ty: &ResourceType, new: Value, dry_run: bool) -> Outcome {
        let key = Key::of(ty, &new);
        let old = self.objects.get(&key).cloned();
        let mut obj = State::render(ty, &new);
        if ty.tracks_generation {
            let generation = match &old {
                None => 1,
                Some(o) => {
                    let g = o
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    if spec_part(o) != spec_part(&obj) { g + 1 } else { g }
                }
            };
            obj["metadata"]["generation"] = json!(generation);
        }
        match &old {
            Some(o) => obj["metadata"]["resourceVersion"] = o["metadata"]["resourceVersion"].clone(),
            None => {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            }
        }
        if old.as_ref() == Some(&obj) {
            return Outcome::Stored(obj);
        }
        if is_deleting(&obj) && !blocking_finalizers(&obj) {
            if dry_run {
                return Outcome::Removed(obj);
            }
            if old.is_some() {
                self.objects.insert(key.clone(), obj);
                return Outcome::Removed(self.remove(&key).expect("just stored"));
            }
            return Outcome::Removed(obj);
        }
        if dry_run {
            return Outcome::Stored(obj);
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), obj.clone());
        self.events.push(Event {
            rv: self.rv,
            key,
            type_: if old.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            object: obj.clone(),
            old,
        });
        Outcome::Stored(obj)
    }

    /// Removes the object now (whatever its finalizers), with a new
    /// resourceVersion and a DELETED event; returns its last state.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        let old = obj.clone();
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.events.push(Event {
            rv: self.rv,
            key: key.clone(),
            type_: EventType::Deleted,
            object: obj.clone(),
            old: Some(old),
        });
        Some(obj)
    }

    /// DELETE: an object without finalizers goes at once (200 and, as
    /// the real server answers, a `Status` of `Success` naming it, or the
    /// object itself for the kinds that return it). One with finalizers
    /// gets `deletionTimestamp` (and a generation bump where generation is
    /// kept) and stays until they are removed (200 and the object; the real
    /// server's 202 is only for the deprecated `orphanDependents: false`).
    /// Deleting an object that is already being deleted changes nothing.
    /// `preconditions` are the DeleteOptions' `{uid, resourceVersion}`.
    pub fn delete(
        &mut self,
        ty: &ResourceType,
        key: &Key,
        preconditions: &Value,
        dry_run: bool,
    ) -> Result<(u16, Value), ApiError> {
        let Some(current) = self.objects.get(key).cloned() else {
            return Err(ApiError::not_found(&ty.plural, &ty.group, &key.name));
        };
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = preconditions.get(field).and_then(Value::as_str) {
                let have = current["metadata"][field].as_str().unwrap_or_default();
                if want != have {
                    return Err(ApiError::conflict(
                        &ty.plural,
                        &ty.group,
                        &key.name,
                        &format!(
                            "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                        ),
                    ));
                }
            }
        }
        let rendered = State::render(ty, &current);
        if !blocking_finalizers(&current) {
            let gone = if dry_run {
                rendered
            } else {
                State::render(ty, &self.remove(key).expect("exists"))
            };
            if ty.returns_deleted_object {
                return Ok((200, gone));
            }
            return Ok((
                200,
                json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": key.name,
                        "group": ty.group,
                        "kind": ty.plural,
                        "uid": gone["metadata"]["uid"],
                    },
                }),
            ));
        }
        if is_deleting(&current) {
            return Ok((200, rendered));
        }
        let mut next = current.clone();
        next["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if ty.tracks_generation {
            let g = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            next["metadata"]["generation"] = json!(g + 1);
        }
        if ty.kind == "Namespace" {
            next["status"]["phase"] = json!("Terminating");
        }
        let stored = self.force_store(key, next, dry_run);
        Ok((200, State::render(ty, &stored)))
    }

    /// Stores without the generation logic of [`State::commit`] (used
    /// where the caller already set metadata, e.g. the deletion mark).
    fn force_store(&mut self, key: &Key, mut obj: Value, dry_run: bool) -> Value {
        if dry_run {
            return obj;
        }
        let old = self.objects.get(key).cloned();
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), obj.clone());
        self.events.push(Event {
            rv: self.rv,
            key: key.clone(),
            type_: EventType::Modified,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Objects of a group/plural, optionally in one namespace, key order.
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<(Key, Value)> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.group == group && k.plural == plural && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

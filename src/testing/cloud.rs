//! The fake cloud: an in-memory world of objects that behaves like a strict
//! cloud API, with scripted faults.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::faults::{CallOp, Decision, FaultOutcome, FaultScript};
use crate::provider::{KindDef, Live, Mode, OpContext, ProviderError, ReadRequest, TAG_ADDRESS, TAG_STACK};
use crate::{Attrs, Value};

/// Prefix of every object id the fake cloud hands out (`fk-1`, `fk-2`, ...),
/// so that references to objects are recognisable in attribute values.
pub const ID_PREFIX: &str = "fk-";

/// One object of the fake world.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeObject {
    /// Its id, `fk-<n>`.
    pub id: String,
    /// Its kind's type name, such as `test.named`.
    pub type_name: String,
    /// Its attributes as `read` reports them: configurable ones, computed
    /// ones (such as `arn`) and, for taggable kinds, `tags`.
    pub attrs: Attrs,
}

impl FakeObject {
    /// The value of tag `key`, if the object has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.attrs.get("tags")?.get(key)?.as_str()
    }

    /// The ownership tags `(meshform:stack, meshform:address)`, when it has both.
    pub fn owner(&self) -> Option<(&str, &str)> {
        Some((self.tag(TAG_STACK)?, self.tag(TAG_ADDRESS)?))
    }

    /// Ids of the objects this one refers to: every string in its
    /// attributes (tags aside; at any depth) that is an object id or an
    /// object's `arn`, reduced to the id.
    pub fn references(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in &self.attrs {
            if name != "tags" {
                collect_refs(v, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn live(&self) -> Live {
        Live {
            id: self.id.clone(),
            attrs: self.attrs.clone(),
        }
    }
}

/// The id a string value refers to: the value itself when it is an id
/// (`fk-12`), the id at the end of an `arn` (`arn:fake:test.named/fk-12`),
/// or the id of a member reference (`fk-12#v2`, see [`member_ref`]).
pub fn referenced_id(s: &str) -> Option<&str> {
    let s = s.split_once('#').map_or(s, |(id, _)| id);
    let candidate = match s.strip_prefix("arn:fake:") {
        Some(rest) => rest.rsplit('/').next()?,
        None => s,
    };
    let digits = candidate.strip_prefix(ID_PREFIX)?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(candidate)
}

/// A reference to one member of an object's `members` list: `fk-12#v2`
/// names member `v2` of `fk-12` (a route naming a subset of a rule).
pub fn member_ref(s: &str) -> Option<(&str, &str)> {
    let (id, member) = s.split_once('#')?;
    referenced_id(id).filter(|i| *i == id).map(|id| (id, member))
}

/// Every member reference in `v`, at any depth, as `id#member`.
fn collect_member_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if member_ref(s).is_some() => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_member_refs(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_member_refs(i, out)),
        _ => {}
    }
}

/// The strings of an object's `members` list.
fn members(attrs: &Attrs) -> Vec<&str> {
    attrs
        .get("members")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = referenced_id(s) {
                out.push(id.to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// A call the cloud refused because of what exists (or does not): the
/// errors a caller that orders its calls correctly never sees. Faults the
/// script injects are not refusals.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The operation refused.
    pub op: CallOp,
    /// The resource address the call was about (a type name for reads).
    pub target: String,
    /// The error code, such as `DependencyViolation`.
    pub code: String,
    /// The error message.
    pub message: String,
}

/// An in-memory cloud shared by the [`FakeKind`](super::FakeKind)s and the
/// test that inspects it; clones share the same world.
///
/// It is strict the way real clouds are:
/// - creating an object whose identity (see
///   [`KindDef::identity`]) equals an existing object's of the same type
///   fails with `EntityAlreadyExists`;
/// - a create or update whose attributes refer to an object id (or arn)
///   that does not exist fails with `InvalidReference.NotFound`;
/// - deleting an object another object still refers to fails with
///   `DependencyViolation`; deleting a missing object succeeds;
/// - a member reference (`fk-3#v2`) must name a member of the object's
///   `members`, and an update cannot drop a member another object still
///   names (`DependencyViolation`): make-before-break is checked;
/// - an update cannot change a force-new attribute (`ImmutableAttribute`).
///
/// Faults follow the [`FaultScript`] set with [`FakeCloud::set_faults`].
/// A crash (scripted, or [`FakeCloud::crash_now`]) makes every call in
/// flight or to come hang without effect, as a killed process would, and
/// wakes [`FakeCloud::crashed`] so that the test drops the run.
#[derive(Clone)]
pub struct FakeCloud(Arc<Shared>);

struct Shared {
    world: Mutex<World>,
    crash: watch::Sender<bool>,
}

#[derive(Default)]
struct World {
    next_id: u64,
    objects: BTreeMap<String, FakeObject>,
    script: Option<FaultScript>,
    attempts: BTreeMap<(String, CallOp), u32>,
    journal: Vec<String>,
    refusals: Vec<Refusal>,
    calls: u64,
}

impl Default for FakeCloud {
    fn default() -> Self {
        FakeCloud::new()
    }
}

impl std::fmt::Debug for FakeCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.world();
        f.debug_struct("FakeCloud")
            .field("objects", &w.objects.len())
            .field("calls", &w.calls)
            .finish()
    }
}

/// Ways a call ends before it reaches the world.
enum Gate {
    Go(Decision),
    Fail(ProviderError),
}

impl FakeCloud {
    /// An empty world without faults.
    pub fn new() -> FakeCloud {
        FakeCloud(Arc::new(Shared {
            world: Mutex::new(World::default()),
            crash: watch::Sender::new(false),
        }))
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.0.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- inspection -------------------------------------------------------

    /// Every object, by id.
    pub fn objects(&self) -> Vec<FakeObject> {
        self.world().objects.values().cloned().collect()
    }

    /// The object with id `id`.
    pub fn object(&self, id: &str) -> Option<FakeObject> {
        self.world().objects.get(id).cloned()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.world().objects.len()
    }

    /// Whether the world has no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects whose `meshform:stack` tag is `stack`.
    pub fn owned_by(&self, stack: &str) -> Vec<FakeObject> {
        self.world()
            .objects
            .values()
            .filter(|o| o.tag(TAG_STACK) == Some(stack))
            .cloned()
            .collect()
    }

    /// Number of objects per ownership tag pair `(stack, address)`; objects
    /// without both tags are not counted. More than one for a pair means
    /// something was created twice.
    pub fn ownership_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for o in self.world().objects.values() {
            if let Some((s, a)) = o.owner() {
                *out.entry((s.to_string(), a.to_string())).or_insert(0) += 1;
            }
        }
        out
    }

    /// Objects of type `type_name` whose attributes `attr` equals `value`
    /// (for example untagged objects by natural key).
    pub fn find_by_attr(&self, type_name: &str, attr: &str, value: &Value) -> Vec<FakeObject> {
        self.world()
            .objects
            .values()
            .filter(|o| o.type_name == type_name && o.attrs.get(attr) == Some(value))
            .cloned()
            .collect()
    }

    /// Total number of API calls made so far.
    pub fn calls(&self) -> u64 {
        self.world().calls
    }

    /// The journal: one line per call and outcome, in order, interleaved
    /// with the lines given to [`note`](Self::note) (for example engine
    /// events), so a failure can be read as one story.
    pub fn journal(&self) -> Vec<String> {
        self.world().journal.clone()
    }

    /// Number of journal lines so far.
    pub fn journal_len(&self) -> usize {
        self.world().journal.len()
    }

    /// Adds a line to the journal.
    pub fn note(&self, line: impl Into<String>) {
        self.world().journal.push(line.into());
    }

    /// The refusals since the last call of this function.
    pub fn take_refusals(&self) -> Vec<Refusal> {
        std::mem::take(&mut self.world().refusals)
    }

    // ---- changes from outside --------------------------------------------

    /// Creates an object directly, with the cloud's checks but without
    /// faults (for example another stack's object, or one made by hand).
    pub fn insert(&self, def: &'static KindDef, attrs: &Attrs) -> Result<String, ProviderError> {
        let mut w = self.world();
        w.create(def, "(outside)", attrs).map(|l| l.id)
    }

    /// Deletes an object directly, with the cloud's checks but without
    /// faults, as someone deleting it by hand would.
    pub fn remove(&self, id: &str) -> Result<(), ProviderError> {
        self.world().delete(id, "(outside)")
    }

    /// Sets one attribute of an object directly (drift made outside
    /// meshform); `None` removes it. Returns false when there is no such
    /// object.
    pub fn set_attr(&self, id: &str, name: &str, value: Option<Value>) -> bool {
        let mut w = self.world();
        let Some(o) = w.objects.get_mut(id) else {
            return false;
        };
        match value {
            Some(v) => o.attrs.insert(name.to_string(), v),
            None => o.attrs.remove(name),
        };
        true
    }

    // ---- faults and crashes ----------------------------------------------

    /// Starts a new run: faults follow `script` (none with `None`), the
    /// attempt counters restart and a previous crash is forgotten.
    pub fn set_faults(&self, script: Option<FaultScript>) {
        let mut w = self.world();
        w.script = script;
        w.attempts.clear();
        drop(w);
        self.0.crash.send_replace(false);
    }

    /// Simulates the death of the process using the cloud: from now on every
    /// call hangs before any effect, and [`crashed`](Self::crashed) wakes.
    pub fn crash_now(&self) {
        if !self.is_crashed() {
            self.note("cloud: CRASH (the run is killed)");
        }
        self.0.crash.send_replace(true);
    }

    /// Whether the current run has crashed.
    pub fn is_crashed(&self) -> bool {
        *self.0.crash.borrow()
    }

    /// Completes once the current run crashes.
    pub async fn crashed(&self) {
        let mut rx = self.0.crash.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Hangs for good if the run has crashed.
    async fn halt_if_crashed(&self) {
        if self.is_crashed() {
            std::future::pending::<()>().await;
        }
    }

    /// Counts the call and decides its fate; waits its latency; fails it
    /// before any effect or crashes when the script says so.
    async fn gate(&self, op: CallOp, target: &str) -> Gate {
        self.halt_if_crashed().await;
        let decision = {
            let mut w = self.world();
            w.calls += 1;
            let attempt = {
                let n = w.attempts.entry((target.to_string(), op)).or_insert(0);
                *n += 1;
                *n - 1
            };
            let d = w
                .script
                .map_or(Decision::CLEAN, |s| s.decide(target, op, attempt));
            if op.mutates() {
                w.journal.push(format!("cloud: > {op} {target}"));
            }
            d
        };
        if let Some(latency) = decision.latency {
            tokio::time::sleep(latency).await;
        }
        self.halt_if_crashed().await;
        match decision.outcome {
            FaultOutcome::FailBefore { code } => {
                let message = match code {
                    Some(c) => format!("{c}: injected fault before any effect"),
                    None => "connection refused (injected fault before any effect)".to_string(),
                };
                self.note(format!("cloud: {op} {target} failed: {message}"));
                Gate::Fail(ProviderError::Api {
                    operation: op.api_name().to_string(),
                    code: code.map(str::to_string),
                    message,
                })
            }
            FaultOutcome::CrashBefore => {
                self.note(format!("cloud: crash before {op} {target}"));
                self.crash_now();
                std::future::pending::<()>().await;
                unreachable!()
            }
            _ => Gate::Go(decision),
        }
    }

    /// Finishes a mutating call whose effect `result` has happened (or been
    /// refused): loses the answer or crashes when the decision says so.
    async fn finish<T>(
        &self,
        op: CallOp,
        target: &str,
        decision: Decision,
        result: Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        if let Err(e) = &result {
            let mut w = self.world();
            w.journal.push(format!("cloud: {op} {target} REFUSED: {e}"));
            if let ProviderError::Api { code: Some(code), .. } = e {
                w.refusals.push(Refusal {
                    op,
                    target: target.to_string(),
                    code: code.clone(),
                    message: e.to_string(),
                });
            }
            return result;
        }
        match decision.outcome {
            FaultOutcome::LoseResponse => {
                self.note(format!("cloud: {op} {target} done, response lost"));
                Err(ProviderError::Api {
                    operation: op.api_name().to_string(),
                    code: None,
                    message: "connection reset after the request was sent (injected lost response)"
                        .to_string(),
                })
            }
            FaultOutcome::CrashAfter => {
                self.note(format!("cloud: crash after {op} {target}"));
                self.crash_now();
                std::future::pending::<()>().await;
                unreachable!()
            }
            _ => result,
        }
    }

    // ---- the API, as the fake kinds call it ------------------------------

    pub(super) async fn create(
        &self,
        def: &'static KindDef,
        cx: &OpContext,
        desired: &Attrs,
    ) -> Result<Live, ProviderError> {
        let decision = match self.gate(CallOp::Create, &cx.address).await {
            Gate::Go(d) => d,
            Gate::Fail(e) => return Err(e),
        };
        let result = {
            let mut w = self.world();
            let r = w.create(def, &cx.address, desired);
            if let Ok(live) = &r {
                w.journal
                    .push(format!("cloud: < create {} -> {}", cx.address, live.id));
            }
            r
        };
        self.finish(CallOp::Create, &cx.address, decision, result).await
    }

    pub(super) async fn read(
        &self,
        def: &'static KindDef,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let decision = match self.gate(CallOp::Read, def.type_name).await {
            Gate::Go(d) => d,
            Gate::Fail(e) => return Err(e),
        };
        let w = self.world();
        let mut out: Vec<Option<Live>> = requests
            .iter()
            .map(|r| {
                w.objects
                    .get(&r.id)
                    .filter(|o| o.type_name == def.type_name)
                    .map(FakeObject::live)
            })
            .collect();
        drop(w);
        if decision.outcome == FaultOutcome::ShortRead && out.pop().is_some() {
            self.note(format!(
                "cloud: read {} answered {} results for {} requests (injected short read)",
                def.type_name,
                out.len(),
                requests.len()
            ));
        }
        Ok(out)
    }

    pub(super) async fn update(
        &self,
        def: &'static KindDef,
        cx: &OpContext,
        prior: &Live,
        desired: &Attrs,
    ) -> Result<Live, ProviderError> {
        let decision = match self.gate(CallOp::Update, &cx.address).await {
            Gate::Go(d) => d,
            Gate::Fail(e) => return Err(e),
        };
        let result = {
            let mut w = self.world();
            let r = w.update(def, &cx.address, &prior.id, desired);
            if r.is_ok() {
                w.journal
                    .push(format!("cloud: < update {} ({})", cx.address, prior.id));
            }
            r
        };
        self.finish(CallOp::Update, &cx.address, decision, result).await
    }

    pub(super) async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let decision = match self.gate(CallOp::Delete, &cx.address).await {
            Gate::Go(d) => d,
            Gate::Fail(e) => return Err(e),
        };
        let result = {
            let mut w = self.world();
            let r = w.delete(&prior.id, &cx.address);
            if r.is_ok() {
                w.journal
                    .push(format!("cloud: < delete {} ({})", cx.address, prior.id));
            }
            r
        };
        self.finish(CallOp::Delete, &cx.address, decision, result).await
    }

    pub(super) async fn find_existing(
        &self,
        def: &'static KindDef,
        cx: &OpContext,
        desired: &Attrs,
    ) -> Result<Option<Live>, ProviderError> {
        if let Gate::Fail(e) = self.gate(CallOp::Find, &cx.address).await {
            return Err(e);
        }
        let w = self.world();
        let found: Vec<&FakeObject> = if def.taggable {
            w.objects
                .values()
                .filter(|o| {
                    o.type_name == def.type_name
                        && o.owner() == Some((cx.stack.as_str(), cx.address.as_str()))
                })
                .collect()
        } else {
            w.objects
                .values()
                .filter(|o| {
                    o.type_name == def.type_name
                        && def.identity.iter().any(|set| {
                            set.iter()
                                .all(|a| desired.get(*a).is_some() && o.attrs.get(*a) == desired.get(*a))
                        })
                })
                .collect()
        };
        // Objects state already tracks (the old object of a replacement
        // under way) are not what an interrupted create made.
        let found: Vec<&FakeObject> = found
            .into_iter()
            .filter(|o| !cx.exclude.contains(&o.id))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.live())),
            many => Err(ProviderError::unexpected(
                CallOp::Find.api_name(),
                format!(
                    "{} objects match {}: {}",
                    many.len(),
                    cx.address,
                    many.iter().map(|o| o.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}

fn api_error(op: CallOp, code: &str, message: String) -> ProviderError {
    ProviderError::Api {
        operation: op.api_name().to_string(),
        code: Some(code.to_string()),
        message: format!("{code}: {message}"),
    }
}

impl World {
    /// Ids referred to by `attrs` (tags aside) that no object has, and
    /// member references naming a member their object lacks.
    fn missing_refs(&self, attrs: &Attrs) -> Vec<String> {
        let mut refs = Vec::new();
        let mut member_refs = Vec::new();
        for (name, v) in attrs {
            if name != "tags" {
                collect_refs(v, &mut refs);
                collect_member_refs(v, &mut member_refs);
            }
        }
        refs.retain(|id| !self.objects.contains_key(id));
        refs.extend(member_refs.into_iter().filter(|r| {
            member_ref(r).is_some_and(|(id, member)| {
                self.objects
                    .get(id)
                    .is_some_and(|o| !members(&o.attrs).contains(&member))
            })
        }));
        refs.sort();
        refs.dedup();
        refs
    }

    /// The configurable attributes of `desired` the kind knows, and tags.
    fn stored_attrs(def: &KindDef, desired: &Attrs) -> Attrs {
        desired
            .iter()
            .filter(|(name, _)| {
                (name.as_str() == "tags" && def.taggable)
                    || def
                        .attrs
                        .iter()
                        .any(|a| a.name == name.as_str() && a.mode != Mode::Computed)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn create(
        &mut self,
        def: &'static KindDef,
        target: &str,
        desired: &Attrs,
    ) -> Result<Live, ProviderError> {
        let missing = self.missing_refs(desired);
        if !missing.is_empty() {
            return Err(api_error(
                CallOp::Create,
                "InvalidReference.NotFound",
                format!("{target} refers to {} which does not exist", missing.join(", ")),
            ));
        }
        for set in def.identity {
            if set.iter().any(|a| desired.get(*a).is_none()) {
                continue;
            }
            if let Some(clash) = self.objects.values().find(|o| {
                o.type_name == def.type_name && set.iter().all(|a| o.attrs.get(*a) == desired.get(*a))
            }) {
                let values: Vec<String> = set
                    .iter()
                    .map(|a| {
                        format!(
                            "{a} = {}",
                            desired.get(*a).map(Value::to_string).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(api_error(
                    CallOp::Create,
                    "EntityAlreadyExists",
                    format!(
                        "{target}: a {} with {} already exists ({})",
                        def.type_name,
                        values.join(", "),
                        clash.id
                    ),
                ));
            }
        }
        self.next_id += 1;
        let id = format!("{ID_PREFIX}{}", self.next_id);
        let mut attrs = Self::stored_attrs(def, desired);
        for a in def.attrs.iter().filter(|a| a.mode == Mode::Computed) {
            if a.name == "arn" {
                attrs.insert(
                    "arn".into(),
                    Value::String(format!("arn:fake:{}/{id}", def.type_name)),
                );
            }
        }
        let object = FakeObject {
            id: id.clone(),
            type_name: def.type_name.to_string(),
            attrs,
        };
        let live = object.live();
        self.objects.insert(id, object);
        Ok(live)
    }

    fn update(
        &mut self,
        def: &'static KindDef,
        target: &str,
        id: &str,
        desired: &Attrs,
    ) -> Result<Live, ProviderError> {
        let Some(current) = self.objects.get(id) else {
            return Err(api_error(
                CallOp::Update,
                "InvalidId.NotFound",
                format!("{target}: object {id} does not exist"),
            ));
        };
        for a in def.attrs.iter().filter(|a| a.force_new) {
            if let Some(v) = desired.get(a.name)
                && current.attrs.get(a.name) != Some(v)
            {
                return Err(api_error(
                    CallOp::Update,
                    "ImmutableAttribute",
                    format!("{target}: `{}` of {id} cannot change in place", a.name),
                ));
            }
        }
        let missing = self.missing_refs(desired);
        if !missing.is_empty() {
            return Err(api_error(
                CallOp::Update,
                "InvalidReference.NotFound",
                format!(
                    "{target} would refer to {} which does not exist",
                    missing.join(", ")
                ),
            ));
        }
        let dropped: Vec<String> = members(&current.attrs)
            .into_iter()
            .filter(|m| {
                !desired
                    .get("members")
                    .is_some_and(|_| members(desired).contains(m))
            })
            .map(|m| format!("{id}#{m}"))
            .collect();
        let still_named: Vec<String> = self
            .objects
            .values()
            .filter(|o| o.id != id)
            .flat_map(|o| {
                let mut named = Vec::new();
                o.attrs
                    .iter()
                    .filter(|(name, _)| name.as_str() != "tags")
                    .for_each(|(_, v)| collect_member_refs(v, &mut named));
                named
                    .into_iter()
                    .filter(|r| dropped.contains(r))
                    .map(|r| format!("{r} (by {})", o.id))
            })
            .collect();
        if !still_named.is_empty() {
            return Err(api_error(
                CallOp::Update,
                "DependencyViolation",
                format!("{target}: members still named: {}", still_named.join(", ")),
            ));
        }
        let Some(object) = self.objects.get_mut(id) else {
            return Err(api_error(
                CallOp::Update,
                "NotFound",
                format!("{target}: {id} does not exist"),
            ));
        };
        // Every in-place attribute takes its desired value; one absent from
        // `desired` is unset. Force-new attributes stay as they are.
        for a in def
            .attrs
            .iter()
            .filter(|a| a.mode != Mode::Computed && !a.force_new)
        {
            match desired.get(a.name) {
                Some(v) => object.attrs.insert(a.name.to_string(), v.clone()),
                None => object.attrs.remove(a.name),
            };
        }
        if def.taggable {
            match desired.get("tags") {
                Some(v) => object.attrs.insert("tags".into(), v.clone()),
                None => object.attrs.remove("tags"),
            };
        }
        Ok(object.live())
    }

    fn delete(&mut self, id: &str, target: &str) -> Result<(), ProviderError> {
        if !self.objects.contains_key(id) {
            return Ok(());
        }
        let referrers: Vec<&str> = self
            .objects
            .values()
            .filter(|o| o.id != id && o.references().iter().any(|r| r == id))
            .map(|o| o.id.as_str())
            .collect();
        if !referrers.is_empty() {
            return Err(api_error(
                CallOp::Delete,
                "DependencyViolation",
                format!("{target}: {id} is still referred to by {}", referrers.join(", ")),
            ));
        }
        self.objects.remove(id);
        Ok(())
    }
}

//! `kube.manifest`: Kubernetes objects given as YAML documents, applied to
//! a cluster with server-side apply (field manager `meshform`, forced) and
//! waited on until usable.
//!
//! Objects are applied CustomResourceDefinitions first, then Namespaces,
//! then the rest in file order; each kind is found by discovery (run again
//! for a kind a CRD applied just before has made available). A CRD is
//! waited on until Established before anything after it is applied, and
//! every Deployment until rolled out before the operation returns, so that
//! what depends on the manifest starts only once it is usable. Objects an
//! update no longer lists are deleted at its end; a delete removes the
//! objects in the reverse order and waits until each is gone.
//!
//! The `yaml` attribute is compared as objects, not text: [`normalize`]
//! turns the documents into an array of objects, state holds that array,
//! and a read projects each live object onto the shape of the object as
//! applied ([`objects::project`]), so that plans show field-level drift
//! (a changed image) but not what the server adds (status, defaults).
//! Planning shows each create and update as the API server's dry run
//! answers it ([`Manifest`]'s `preview`), so a field the server would
//! default or drop is shown as it would be stored, and an object the
//! server would refuse fails the plan. The id names the cluster and the
//! first object.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kube::api::{DeleteParams, Patch, PatchParams};

use super::connection::{Clients, Connection};
use super::objects::{
    self, ObjectKey, Resolver, api_error, apply_order, delete_order, desired_objects, dyn_api, is_not_found,
    scoped,
};
use super::wait;
use crate::provider::schema::{KindDef, attrs};
use crate::provider::{InPlace, Live, OpContext, ProviderError, ReadRequest, ResourceKind, Schema};
use crate::{Attrs, Value};

/// Schema of `kube.manifest`.
pub static DEF: KindDef = KindDef {
    type_name: "kube.manifest",
    doc: "Kubernetes objects from YAML documents, applied with server-side apply and waited on until \
          ready (CRDs Established, Deployments rolled out). The id names the cluster and the first object.",
    attrs: attrs! {
        /// The cluster: "${cluster.connection}" of an aws.eks.cluster, or { kubeconfig_context = "name"
        /// } with an optional `kubeconfig` path.
        required cluster: Json, force_new;
        /// One or more YAML documents separated by `---`, each a Kubernetes object with apiVersion,
        /// kind, metadata.name and, for namespaced kinds, metadata.namespace. Changes in place; objects
        /// no longer listed are deleted.
        required yaml: String;
        /// How long each wait may take, in seconds: a CRD becoming Established, a Deployment rolling
        /// out, an object being deleted. Changes in place.
        optional wait_timeout_seconds: Int = Int(DEFAULT_WAIT_SECONDS as i64);
        /// The objects last applied, in file order: a list of { apiVersion, kind, namespace, name }.
        computed objects: Json;
    },
    normalize: Some(normalize),
    expand: Some(super::interim::interim),
    ..KindDef::BASE
};

/// The field manager meshform applies as.
pub const FIELD_MANAGER: &str = "meshform";

/// Default of `wait_timeout_seconds`.
const DEFAULT_WAIT_SECONDS: u64 = 600;

/// The longest a kind a CRD has just made available may take to appear in
/// discovery.
const DISCOVERY_GRACE: Duration = Duration::from_secs(30);

/// Canonical form of attribute `attr` of `kube.manifest`: for `yaml`, the
/// array of objects the YAML documents hold ([`objects::normalize_yaml`]);
/// other attributes unchanged. Pure.
pub fn normalize(attr: &str, value: Value) -> Value {
    if attr == "yaml" {
        objects::normalize_yaml(value)
    } else {
        value
    }
}

/// The `wait_timeout_seconds` in `attrs` (the default when absent).
fn wait_timeout(attrs: &Attrs) -> Result<Duration, ProviderError> {
    match attrs.get("wait_timeout_seconds") {
        None | Some(Value::Null) => Ok(Duration::from_secs(DEFAULT_WAIT_SECONDS)),
        Some(v) => v
            .as_u64()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                ProviderError::invalid("wait_timeout_seconds", "must be a positive number of seconds")
            }),
    }
}

/// The object keys recorded in `objects`.
fn recorded_keys(attrs: &Attrs) -> Result<Vec<ObjectKey>, ProviderError> {
    match attrs.get("objects") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                ObjectKey::from_value(v).ok_or_else(|| {
                    ProviderError::unexpected("kube.manifest state", format!("bad recorded object {v}"))
                })
            })
            .collect(),
        Some(other) => Err(ProviderError::unexpected(
            "kube.manifest state",
            format!("objects is not a list: {other}"),
        )),
    }
}

/// The objects a read found, with their recorded keys (objects gone are
/// left out).
fn read_objects(attrs: &Attrs) -> Result<Vec<(ObjectKey, Value)>, ProviderError> {
    let keys = recorded_keys(attrs)?;
    let shown = attrs
        .get("yaml")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(keys
        .into_iter()
        .zip(shown)
        .filter(|(_, v)| v.is_object())
        .collect())
}

/// The cluster part of an id.
fn cluster_label(conn: &Connection) -> String {
    match conn {
        Connection::Eks { name, .. } => format!("eks:{name}"),
        Connection::Context { context, .. } => format!("context:{context}"),
    }
}

/// The id of a manifest: its cluster and its first object.
fn manifest_id(conn: &Connection, first: Option<&ObjectKey>) -> String {
    match first {
        Some(k) => {
            let ns = k
                .namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default();
            format!(
                "{}/{}/{}/{ns}{}",
                cluster_label(conn),
                k.api_version,
                k.kind,
                k.name
            )
        }
        None => cluster_label(conn),
    }
}

/// The attributes of a manifest: `yaml` as an object array, `objects`
/// from `keys`, the others from `from` (desired or recorded).
fn live(id: String, from: &Attrs, yaml: Vec<Value>, keys: &[ObjectKey]) -> Live {
    let mut attrs = Attrs::new();
    if let Some(c) = from.get("cluster") {
        attrs.insert("cluster".into(), c.clone());
    }
    attrs.insert("yaml".into(), Value::Array(yaml));
    attrs.insert(
        "wait_timeout_seconds".into(),
        from.get("wait_timeout_seconds")
            .cloned()
            .unwrap_or_else(|| Value::from(DEFAULT_WAIT_SECONDS)),
    );
    attrs.insert(
        "objects".into(),
        Value::Array(keys.iter().map(ObjectKey::to_value).collect()),
    );
    Live { id, attrs }
}

/// Operations of `kube.manifest`.
pub struct Manifest(pub Arc<Clients>);

/// A readiness wait left for after every object is applied.
struct Rollout {
    api: kube::Api<kube::api::DynamicObject>,
    key: ObjectKey,
    what: &'static str,
    check: wait::Check,
}

impl Manifest {
    /// The connection named by `attrs`' `cluster`, and a client for it.
    async fn connect(&self, attrs: &Attrs) -> Result<(Connection, kube::Client), ProviderError> {
        let conn = Connection::parse(attrs.get("cluster").unwrap_or(&Value::Null))?;
        let client = self.0.client(&conn).await?;
        Ok((conn, client))
    }

    /// How the cluster serves the kind of document `doc` (from 1). When a
    /// CRD was applied earlier in this operation, a kind not yet served is
    /// looked up again for a while (discovery may lag Established).
    async fn resolve_for_apply(
        cx: &OpContext,
        resolver: &mut Resolver,
        key: &ObjectKey,
        doc: usize,
        crd_applied: bool,
    ) -> Result<(kube::discovery::ApiResource, bool), ProviderError> {
        let deadline = Instant::now() + DISCOVERY_GRACE;
        let mut reported = false;
        loop {
            if let Some(found) = resolver.resolve(key).await? {
                return Ok(found);
            }
            if !crd_applied || Instant::now() >= deadline {
                return Err(ProviderError::invalid(
                    "yaml",
                    format!(
                        "document {doc} ({key}): the cluster does not serve kind {} in apiVersion {} \
                         (is its CustomResourceDefinition installed?)",
                        key.kind, key.api_version
                    ),
                ));
            }
            if !reported {
                cx.progress.report(&format!(
                    "waiting for the cluster to serve {} {}",
                    key.api_version, key.kind
                ));
                reported = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Applies `objects` (keys as written in `keys`) in apply order and
    /// waits for them to be ready; returns their keys, scoped as the
    /// cluster serves them, in file order.
    async fn apply(
        &self,
        cx: &OpContext,
        client: &kube::Client,
        objects: &[Value],
        keys: &[ObjectKey],
        timeout: Duration,
    ) -> Result<Vec<ObjectKey>, ProviderError> {
        let mut resolver = Resolver::new(client.clone());
        let mut applied: Vec<Option<ObjectKey>> = vec![None; keys.len()];
        let mut crd_applied = false;
        let mut rollouts = Vec::new();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for i in apply_order(keys) {
            let doc = i + 1;
            let (ar, namespaced) =
                Self::resolve_for_apply(cx, &mut resolver, &keys[i], doc, crd_applied).await?;
            let key = scoped(&keys[i], namespaced, doc)?;
            let api = dyn_api(client, &ar, key.namespace.as_deref());
            cx.progress.report(&format!("applying {key}"));
            api.patch(&key.name, &params, &Patch::Apply(&objects[i]))
                .await
                .map_err(|e| api_error(&format!("apply of document {doc} ({key})"), e))?;
            if let Some((what, check)) = wait::readiness(&key) {
                if key.is_crd() {
                    // What follows may be objects of this CRD's kind.
                    wait::wait_for(
                        api,
                        &key.name,
                        &key.to_string(),
                        what,
                        timeout,
                        &cx.progress,
                        check,
                    )
                    .await?;
                    crd_applied = true;
                } else {
                    rollouts.push(Rollout {
                        api,
                        key: key.clone(),
                        what,
                        check,
                    });
                }
            }
            applied[i] = Some(key);
        }
        for r in rollouts {
            wait::wait_for(
                r.api,
                &r.key.name,
                &r.key.to_string(),
                r.what,
                timeout,
                &cx.progress,
                r.check,
            )
            .await?;
        }
        Ok(applied.into_iter().flatten().collect())
    }

    /// Deletes the objects of `keys` in delete order, waiting until each
    /// is gone. Objects (and kinds) already gone are skipped.
    async fn delete_objects(
        &self,
        cx: &OpContext,
        client: &kube::Client,
        keys: &[ObjectKey],
        timeout: Duration,
    ) -> Result<(), ProviderError> {
        let mut resolver = Resolver::new(client.clone());
        // Foreground: an object is gone only once what it owns (a
        // Deployment's pods) is gone too.
        let params = DeleteParams::foreground();
        for i in delete_order(keys) {
            let key = &keys[i];
            // A kind no longer served went with its CRD, and its objects too.
            let Some((ar, _)) = resolver.resolve(key).await? else {
                continue;
            };
            let api = dyn_api(client, &ar, key.namespace.as_deref());
            cx.progress.report(&format!("deleting {key}"));
            let uid = match api.delete(&key.name, &params).await {
                // Still there while finalizers run.
                Ok(either) => match either.left() {
                    Some(obj) => obj.metadata.uid,
                    None => continue,
                },
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(api_error(&format!("delete of {key}"), e)),
            };
            wait::wait_gone(
                api,
                &key.name,
                uid.as_deref(),
                &key.to_string(),
                wait::delete_timeout(timeout),
                &cx.progress,
            )
            .await?;
        }
        Ok(())
    }

    /// The live object of `key`, `None` when it (or its kind) is gone.
    async fn get(resolver: &mut Resolver, key: &ObjectKey) -> Result<Option<Value>, ProviderError> {
        let Some((ar, _)) = resolver.resolve(key).await? else {
            return Ok(None);
        };
        let operation = format!("get of {key}");
        let api = dyn_api(resolver.client(), &ar, key.namespace.as_deref());
        match api.get_opt(&key.name).await {
            Ok(Some(obj)) => objects::to_value(&obj, &operation).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(api_error(&operation, e)),
        }
    }

    /// Applies `desired` and returns the manifest's attributes (`id` as given).
    async fn apply_desired(
        &self,
        cx: &OpContext,
        desired: &Attrs,
        id: Option<String>,
    ) -> Result<Live, ProviderError> {
        let (objects, keys) = desired_objects(desired.get("yaml"))?;
        let timeout = wait_timeout(desired)?;
        let (conn, client) = self.connect(desired).await?;
        let applied = self.apply(cx, &client, &objects, &keys, timeout).await?;
        let id = id.unwrap_or_else(|| manifest_id(&conn, applied.first()));
        Ok(live(id, desired, objects, &applied))
    }
}

impl Schema for Manifest {
    fn def(&self) -> &'static KindDef {
        &DEF
    }
}

#[async_trait]
impl ResourceKind for Manifest {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        self.apply_desired(cx, desired, None).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        let mut resolvers: BTreeMap<Connection, Resolver> = BTreeMap::new();
        let mut out = Vec::with_capacity(requests.len());
        for req in requests {
            let conn = Connection::parse(req.attrs.get("cluster").unwrap_or(&Value::Null))?;
            let resolver = match resolvers.get_mut(&conn) {
                Some(r) => r,
                None => {
                    let client = self.0.client(&conn).await?;
                    resolvers.entry(conn).or_insert(Resolver::new(client))
                }
            };
            let keys = recorded_keys(&req.attrs)?;
            let shapes = match req.attrs.get("yaml").cloned().map(objects::normalize_yaml) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let mut projected = Vec::with_capacity(keys.len());
            let mut any = false;
            for (i, key) in keys.iter().enumerate() {
                match Self::get(resolver, key).await? {
                    Some(obj) => {
                        any = true;
                        let shape = shapes
                            .get(i)
                            .filter(|s| s.is_object())
                            .cloned()
                            .unwrap_or_else(|| key.shape());
                        projected.push(objects::project(&obj, &shape));
                    }
                    None => projected.push(Value::Null),
                }
            }
            out.push(any.then(|| live(req.id.clone(), &req.attrs, projected, &keys)));
        }
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        // A force-new attribute never reaches an update: the engine replaces
        // the manifest instead.
        let updated = self.apply_desired(cx, desired, Some(prior.id.clone())).await?;
        let applied = recorded_keys(&updated.attrs)?;
        let stale: Vec<ObjectKey> = recorded_keys(&prior.attrs)?
            .into_iter()
            .filter(|old| !applied.iter().any(|new| new.same_object(old)))
            .collect();
        if !stale.is_empty() {
            let (_, client) = self.connect(desired).await?;
            self.delete_objects(cx, &client, &stale, wait_timeout(desired)?)
                .await?;
        }
        Ok(updated)
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let keys = recorded_keys(&prior.attrs)?;
        if keys.is_empty() {
            return Ok(());
        }
        let (_, client) = self.connect(&prior.attrs).await?;
        self.delete_objects(cx, &client, &keys, wait_timeout(&prior.attrs)?)
            .await
    }

    /// A server-side dry run of every desired object (apply under
    /// "meshform", `dryRun=All`): what the API server would store, in the
    /// shape a read gives (projected onto the fields the manifest sets),
    /// so that a plan shows what the server would make of the change and
    /// what it would refuse fails the plan, naming the document. A field
    /// the manifest no longer sets is shown as the server would leave it:
    /// gone, or back at its default. An object the dry run cannot ask
    /// about yet is shown as written: a kind the cluster does not serve
    /// yet (its CRD comes with this apply), or a namespace that does not
    /// exist yet (404).
    async fn preview(&self, prior: Option<&Live>, desired: &Attrs) -> Result<Option<Attrs>, ProviderError> {
        let (objects, keys) = desired_objects(desired.get("yaml"))?;
        let (_, client) = self.connect(desired).await?;
        let before = match prior {
            Some(p) => read_objects(&p.attrs)?,
            None => Vec::new(),
        };
        let mut resolver = Resolver::new(client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        let mut previewed = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            let doc = i + 1;
            let shown = match resolver.resolve(&keys[i]).await? {
                None => object.clone(),
                Some((ar, namespaced)) => {
                    let key = scoped(&keys[i], namespaced, doc)?;
                    let api = dyn_api(&client, &ar, key.namespace.as_deref());
                    match api.patch(&key.name, &params, &Patch::Apply(object)).await {
                        Ok(result) => {
                            let shape = match before.iter().find(|(k, _)| k.same_object(&key)) {
                                Some((_, was)) => objects::union_shape(object, was),
                                None => object.clone(),
                            };
                            objects::project(&objects::to_value(&result, "dry run")?, &shape)
                        }
                        Err(e) if is_not_found(&e) => object.clone(),
                        Err(e) => return Err(api_error(&format!("dry run of document {doc} ({key})"), e)),
                    }
                }
            };
            previewed.push(shown);
        }
        let mut attrs = desired.clone();
        attrs.insert("yaml".into(), Value::Array(previewed));
        Ok(Some(attrs))
    }

    /// Finds the manifest when every object exists and was applied by
    /// meshform (its managedFields list the `meshform` manager).
    async fn find_existing(&self, _cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let (objects, raw) = desired_objects(desired.get("yaml"))?;
        let (conn, client) = self.connect(desired).await?;
        let mut resolver = Resolver::new(client);
        let mut keys = Vec::with_capacity(raw.len());
        let mut projected = Vec::with_capacity(raw.len());
        for (i, raw_key) in raw.iter().enumerate() {
            let Some((ar, namespaced)) = resolver.resolve(raw_key).await? else {
                return Ok(None);
            };
            let Ok(key) = scoped(raw_key, namespaced, i + 1) else {
                return Ok(None);
            };
            let operation = format!("get of {key}");
            let api = dyn_api(resolver.client(), &ar, key.namespace.as_deref());
            let obj = match api.get_opt(&key.name).await {
                Ok(Some(obj)) => obj,
                Ok(None) => return Ok(None),
                Err(e) => return Err(api_error(&operation, e)),
            };
            // An object applied with nothing but its identity has no
            // managedFields entry to show who applied it.
            if objects::sets_fields(&objects[i]) && !objects::managed_by(&obj, FIELD_MANAGER) {
                return Ok(None);
            }
            projected.push(objects::project(
                &objects::to_value(&obj, &operation)?,
                &objects[i],
            ));
            keys.push(key);
        }
        let id = manifest_id(&conn, keys.first());
        Ok(Some(live(id, desired, projected, &keys)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_parses_only_yaml() {
        assert_eq!(
            normalize("yaml", json!("kind: A\n---\n\n---\nkind: B\n")),
            json!([{"kind": "A"}, {"kind": "B"}])
        );
        assert_eq!(normalize("cluster", json!("kind: A")), json!("kind: A"));
    }

    #[test]
    fn ids_name_cluster_and_first_object() {
        let conn = Connection::Context {
            context: "kind".into(),
            kubeconfig: None,
        };
        let key = ObjectKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        assert_eq!(
            manifest_id(&conn, Some(&key)),
            "context:kind/apps/v1/Deployment/shop/web"
        );
    }

    #[test]
    fn wait_timeout_defaults_and_checks() {
        let mut attrs = Attrs::new();
        assert_eq!(wait_timeout(&attrs).ok(), Some(Duration::from_secs(600)));
        attrs.insert("wait_timeout_seconds".into(), json!(5));
        assert_eq!(wait_timeout(&attrs).ok(), Some(Duration::from_secs(5)));
        attrs.insert("wait_timeout_seconds".into(), json!(-1));
        assert!(wait_timeout(&attrs).is_err());
    }
}

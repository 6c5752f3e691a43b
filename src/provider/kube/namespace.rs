//! `kube.namespace`: a Kubernetes namespace and the labels and annotations
//! meshform manages on it.
//!
//! The id is the name. Creates and updates are one server-side apply
//! (field manager `meshform`, forced) of the namespace with exactly the
//! desired labels and annotations: the API server then removes the ones
//! meshform applied before and no longer wants, and leaves everyone
//! else's alone. A read reports only the keys meshform manages (those
//! recorded at the last apply), so labels the server adds
//! (`kubernetes.io/metadata.name`) or others add are not drift, while a
//! managed label changed or removed out of band is.
//!
//! A delete waits until the namespace is gone, which takes as long as
//! deleting everything in it; a namespace still there after the timeout
//! fails the delete with the finalizers holding it (so that nothing after
//! it in the order is deleted).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Namespace as K8sNamespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};

use super::connection::{Clients, Connection};
use super::manifest::FIELD_MANAGER;
use super::objects::api_error;
use super::wait;
use crate::provider::schema::{KindDef, attrs};
use crate::provider::{InPlace, Live, OpContext, ProviderError, ReadRequest, ResourceKind, Schema, attr_str};
use crate::{Attrs, Value};

/// Schema of `kube.namespace`.
pub static DEF: KindDef = KindDef {
    type_name: "kube.namespace",
    doc: "A Kubernetes namespace with the labels and annotations meshform manages (server-side apply). \
          The id is the name.",
    attrs: attrs! {
        /// The cluster: "${cluster.connection}" of an aws.eks.cluster, or { kubeconfig_context = "name"
        /// } with an optional `kubeconfig` path.
        required cluster: Json, force_new;
        /// The namespace's name.
        required name: String, force_new;
        /// Labels meshform manages on the namespace; others' labels are left alone. Change in place.
        optional labels: StringMap;
        /// Annotations meshform manages on the namespace; others' are left alone. Change in place.
        optional annotations: StringMap;
        /// The namespace's uid.
        computed uid: String;
    },
    identity: &[&["cluster", "name"]],
    ..KindDef::BASE
};

/// How long a delete waits for the namespace to go.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Operations of `kube.namespace`.
pub struct Namespace(pub Arc<Clients>);

/// A string map attribute (`labels`, `annotations`), empty when absent.
fn string_map(attrs: &Attrs, name: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    match attrs.get(name) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ProviderError::invalid(
                    name,
                    format!("value of {k} must be a string, found {other}"),
                )),
            })
            .collect(),
        Some(_) => Err(ProviderError::invalid(name, "must be a table of strings")),
    }
}

/// The keys of a string map attribute.
fn keys(attrs: &Attrs, name: &str) -> BTreeSet<String> {
    attrs
        .get(name)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `map` restricted to `managed` keys, as a value.
fn restricted(map: Option<&BTreeMap<String, String>>, managed: &BTreeSet<String>) -> Value {
    Value::Object(
        map.into_iter()
            .flatten()
            .filter(|(k, _)| managed.contains(*k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A namespace's attributes, labels and annotations restricted to the
/// managed keys.
fn live_from(
    ns: &K8sNamespace,
    cluster: &Value,
    name: &str,
    labels: &BTreeSet<String>,
    annotations: &BTreeSet<String>,
) -> Live {
    let mut attrs = Attrs::new();
    attrs.insert("cluster".into(), cluster.clone());
    attrs.insert("name".into(), Value::String(name.to_string()));
    attrs.insert("labels".into(), restricted(ns.metadata.labels.as_ref(), labels));
    attrs.insert(
        "annotations".into(),
        restricted(ns.metadata.annotations.as_ref(), annotations),
    );
    if let Some(uid) = &ns.metadata.uid {
        attrs.insert("uid".into(), Value::String(uid.clone()));
    }
    Live {
        id: name.to_string(),
        attrs,
    }
}

impl Namespace {
    /// The namespaces API of the cluster named by `attrs`' `cluster`.
    async fn api(&self, attrs: &Attrs) -> Result<Api<K8sNamespace>, ProviderError> {
        let conn = Connection::parse(attrs.get("cluster").unwrap_or(&Value::Null))?;
        Ok(Api::all(self.0.client(&conn).await?))
    }

    /// Applies the namespace with exactly the desired labels and
    /// annotations; with `dry_run`, only asks the API server what it
    /// would store.
    async fn apply(&self, desired: &Attrs, dry_run: bool) -> Result<Live, ProviderError> {
        let name = attr_str(desired, "name")?;
        let labels = string_map(desired, "labels")?;
        let annotations = string_map(desired, "annotations")?;
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), Value::String(name.to_string()));
        if !labels.is_empty() {
            metadata.insert("labels".into(), serde_json::json!(labels));
        }
        if !annotations.is_empty() {
            metadata.insert("annotations".into(), serde_json::json!(annotations));
        }
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata});
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        let operation = if dry_run {
            params = params.dry_run();
            format!("dry run of Namespace {name}")
        } else {
            format!("apply of Namespace {name}")
        };
        let ns = self
            .api(desired)
            .await?
            .patch(name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| api_error(&operation, e))?;
        Ok(live_from(
            &ns,
            desired.get("cluster").unwrap_or(&Value::Null),
            name,
            &labels.into_keys().collect(),
            &annotations.into_keys().collect(),
        ))
    }
}

impl Schema for Namespace {
    fn def(&self) -> &'static KindDef {
        &DEF
    }
}

#[async_trait]
impl ResourceKind for Namespace {
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        self.apply(desired, false).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        let mut out = Vec::with_capacity(requests.len());
        for req in requests {
            let name = req.id.as_str();
            let found = self
                .api(&req.attrs)
                .await?
                .get_opt(name)
                .await
                .map_err(|e| api_error(&format!("get of Namespace {name}"), e))?;
            out.push(found.map(|ns| {
                live_from(
                    &ns,
                    req.attrs.get("cluster").unwrap_or(&Value::Null),
                    name,
                    &keys(&req.attrs, "labels"),
                    &keys(&req.attrs, "annotations"),
                )
            }));
        }
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        // A force-new attribute never reaches an update: the engine replaces
        // the namespace instead.
        self.apply(change.desired, false).await
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let name = prior.id.as_str();
        let api = self.api(&prior.attrs).await?;
        cx.progress.report(&format!("deleting Namespace {name}"));
        let uid = match api.delete(name, &DeleteParams::default()).await {
            Ok(either) => match either.left() {
                Some(ns) => ns.metadata.uid,
                None => return Ok(()),
            },
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(api_error(&format!("delete of Namespace {name}"), e)),
        };
        let dynamic: Api<DynamicObject> =
            Api::all_with(api.into_client(), &ApiResource::erase::<K8sNamespace>(&()));
        wait::wait_gone(
            dynamic,
            name,
            uid.as_deref(),
            &format!("Namespace {name}"),
            wait::delete_timeout(DELETE_TIMEOUT),
            &cx.progress,
        )
        .await
    }

    /// A server-side dry run of the apply: the labels and annotations as
    /// the API server would store them, and its refusal (an invalid name
    /// or label) at plan time.
    async fn preview(&self, _prior: Option<&Live>, desired: &Attrs) -> Result<Option<Attrs>, ProviderError> {
        let shown = self.apply(desired, true).await?;
        let mut attrs = desired.clone();
        for k in ["labels", "annotations"] {
            if let Some(v) = shown.attrs.get(k) {
                attrs.insert(k.into(), v.clone());
            }
        }
        Ok(Some(attrs))
    }

    async fn find_existing(&self, _cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let name = attr_str(desired, "name")?;
        let found = self
            .api(desired)
            .await?
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("get of Namespace {name}"), e))?;
        let Some(ns) = found else {
            return Ok(None);
        };
        let ours = ns
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some(FIELD_MANAGER));
        Ok(ours.then(|| {
            live_from(
                &ns,
                desired.get("cluster").unwrap_or(&Value::Null),
                name,
                &keys(desired, "labels"),
                &keys(desired, "annotations"),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_restrict_to_managed_keys() {
        let ns: K8sNamespace = serde_json::from_value(json!({
            "metadata": {"name": "shop", "uid": "u1", "labels": {
                "kubernetes.io/metadata.name": "shop", "team": "a", "theirs": "x"}}
        }))
        .unwrap();
        let live = live_from(
            &ns,
            &json!({"kubeconfig_context": "k"}),
            "shop",
            &BTreeSet::from(["team".to_string(), "gone".to_string()]),
            &BTreeSet::new(),
        );
        assert_eq!(live.attrs["labels"], json!({"team": "a"}));
        assert_eq!(live.attrs["annotations"], json!({}));
        assert_eq!(live.attrs["uid"], "u1");
        assert_eq!(live.id, "shop");
    }

    #[test]
    fn string_maps_must_hold_strings() {
        let attrs = json!({"labels": {"a": 1}});
        let Value::Object(attrs) = attrs else {
            unreachable!()
        };
        assert!(string_map(&attrs, "labels").is_err());
        assert!(string_map(&attrs, "annotations").unwrap().is_empty());
    }
}

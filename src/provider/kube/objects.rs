//! Kubernetes objects as the in-cluster kinds handle them: YAML documents
//! parsed into JSON objects, the keys naming objects in a cluster, the order
//! in which objects are applied and deleted, the projection that makes a
//! live object comparable with what was applied, kind discovery, and
//! errors from the Kubernetes API.
//!
//! `kube.manifest` stores its YAML as the array of objects the documents
//! hold (see [`normalize_yaml`]) so that the planner compares object trees
//! and shows field-level changes. A live object carries much more than was
//! applied (status, uid, defaults, managedFields); [`project`] keeps only
//! the fields the applied object has, so that what the server adds is not
//! drift while a changed image is.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;

use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};

use crate::Value;
use crate::provider::ProviderError;

/// Names one object in a cluster: `{apiVersion, kind, namespace, name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey {
    /// `group/version`, or `version` for the core group (`v1`).
    pub api_version: String,
    /// The kind, such as `Deployment`.
    pub kind: String,
    /// The namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// The key of an object as written (its `metadata.namespace`, if any,
    /// taken as is): `Err` says which required field is missing.
    pub fn of(obj: &Value) -> Result<ObjectKey, String> {
        if !obj.is_object() {
            return Err("is not a mapping (a Kubernetes object)".into());
        }
        let text = |path: &str| {
            obj.pointer(path)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let api_version = text("/apiVersion").ok_or("has no apiVersion")?;
        let kind = text("/kind").ok_or("has no kind")?;
        let name = text("/metadata/name").ok_or("has no metadata.name")?;
        if obj.pointer("/metadata/namespace").is_some_and(|n| !n.is_string()) {
            return Err("has a metadata.namespace that is not a string".into());
        }
        Ok(ObjectKey {
            api_version,
            kind,
            namespace: text("/metadata/namespace"),
            name,
        })
    }

    /// Reads a key recorded by [`ObjectKey::to_value`].
    pub fn from_value(v: &Value) -> Option<ObjectKey> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(ObjectKey {
            api_version: text("apiVersion")?,
            kind: text("kind")?,
            namespace: text("namespace").filter(|n| !n.is_empty()),
            name: text("name")?,
        })
    }

    /// `{apiVersion, kind, namespace, name}`, `namespace` null for
    /// cluster-scoped objects.
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        })
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version.split_once('/').map_or("", |(g, _)| g)
    }

    /// The API version within the group.
    pub fn version(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or(self.api_version.as_str(), |(_, v)| v)
    }

    /// Whether both keys name the same object: the version an object is
    /// served at does not change which object it is.
    pub fn same_object(&self, other: &ObjectKey) -> bool {
        self.group() == other.group()
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }

    /// The smallest object with this key, used as the projection shape when
    /// the applied object is not known.
    pub fn shape(&self) -> Value {
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), Value::String(self.name.clone()));
        if let Some(ns) = &self.namespace {
            metadata.insert("namespace".into(), Value::String(ns.clone()));
        }
        serde_json::json!({"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata})
    }

    /// Where the object goes in the apply order: CRDs, then Namespaces,
    /// then everything else.
    fn rank(&self) -> u8 {
        match (self.group(), self.kind.as_str()) {
            ("apiextensions.k8s.io", "CustomResourceDefinition") => 0,
            ("", "Namespace") => 1,
            _ => 2,
        }
    }

    /// Whether the object is a CustomResourceDefinition.
    pub fn is_crd(&self) -> bool {
        self.rank() == 0
    }
}

impl fmt::Display for ObjectKey {
    /// `Deployment shop/web`, `Namespace shop`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Indices of `keys` in apply order: CustomResourceDefinitions first (their
/// kinds must be served before objects of them are applied), then
/// Namespaces, then everything else, each group in file order.
pub fn apply_order(keys: &[ObjectKey]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| keys[i].rank());
    order
}

/// Indices of `keys` in delete order: the apply order reversed, so
/// Namespaces go after what is in them and CRDs last.
pub fn delete_order(keys: &[ObjectKey]) -> Vec<usize> {
    let mut order = apply_order(keys);
    order.reverse();
    order
}

/// The YAML documents of `text` as JSON values, empty documents skipped.
/// `Err` names the first document that does not parse (counting the
/// non-empty ones from 1) and what is wrong with it.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    match serde_saphyr::from_multiple::<Value>(text) {
        Ok(docs) => Ok(docs),
        Err(e) => {
            let mut reader = text.as_bytes();
            for (i, doc) in serde_saphyr::read::<_, Value>(&mut reader).enumerate() {
                if let Err(e) = doc {
                    return Err(format!("document {}: {e}", i + 1));
                }
            }
            Err(e.to_string())
        }
    }
}

/// Canonical form of a manifest's `yaml`: YAML text becomes the array of
/// the objects its documents hold (empty documents skipped, nothing the
/// user wrote dropped; JSON objects compare regardless of key order). An
/// array (what state holds) is returned as is, and so is text that does
/// not parse: applying it reports the error.
pub fn normalize_yaml(value: Value) -> Value {
    match value {
        Value::String(text) => match parse_documents(&text) {
            Ok(docs) => Value::Array(docs.into_iter().map(secret_string_data_as_data).collect()),
            Err(_) => Value::String(text),
        },
        Value::Array(docs) => Value::Array(docs.into_iter().map(secret_string_data_as_data).collect()),
        other => other,
    }
}

/// A Secret's `stringData` as the API server stores it: base64-encoded
/// into `data` (over any `data` entry of the same key), `stringData`
/// dropped. The server never returns `stringData`, so a change of it could
/// only be compared in this form; other objects are returned unchanged.
fn secret_string_data_as_data(mut doc: Value) -> Value {
    let is_secret = doc.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && doc.get("kind").and_then(Value::as_str) == Some("Secret");
    let Some(obj) = doc.as_object_mut().filter(|_| is_secret) else {
        return doc;
    };
    let Some(Value::Object(strings)) = obj.remove("stringData") else {
        return doc;
    };
    let data = obj
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(data) = data {
        for (k, v) in strings {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            data.insert(k, Value::String(encoded));
        }
    }
    doc
}

/// The objects a manifest's `yaml` holds, with their keys as written:
/// YAML text is parsed, an array taken as is. Every object must have
/// apiVersion, kind and metadata.name, and no two may name the same
/// object; errors name the document (counting from 1).
pub fn desired_objects(yaml: Option<&Value>) -> Result<(Vec<Value>, Vec<ObjectKey>), ProviderError> {
    let invalid = |m: String| ProviderError::invalid("yaml", m);
    let objects = match yaml {
        Some(Value::String(text)) => {
            parse_documents(text).map_err(|e| invalid(format!("not valid YAML: {e}")))?
        }
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(invalid("must be YAML text".into())),
        None => return Err(invalid("missing".into())),
    };
    if objects.is_empty() {
        return Err(invalid("holds no Kubernetes objects".into()));
    }
    let mut keys: Vec<ObjectKey> = Vec::with_capacity(objects.len());
    for (i, obj) in objects.iter().enumerate() {
        let key = ObjectKey::of(obj).map_err(|m| invalid(format!("document {} {m}", i + 1)))?;
        if let Some(j) = keys.iter().position(|k| k.same_object(&key)) {
            return Err(invalid(format!(
                "documents {} and {} both describe {key}",
                j + 1,
                i + 1
            )));
        }
        keys.push(key);
    }
    Ok((objects, keys))
}

/// The key of an object whose kind discovery found `namespaced` or not:
/// a namespaced object must name its namespace, a cluster-scoped one must
/// not. `doc` (from 1) is for the error.
pub fn scoped(key: &ObjectKey, namespaced: bool, doc: usize) -> Result<ObjectKey, ProviderError> {
    match (namespaced, &key.namespace) {
        (true, None) => Err(ProviderError::invalid(
            "yaml",
            format!(
                "document {doc} ({key}): {} is namespaced: set metadata.namespace",
                key.kind
            ),
        )),
        (false, Some(ns)) => Err(ProviderError::invalid(
            "yaml",
            format!(
                "document {doc} ({} {}): {} is cluster-scoped but metadata.namespace is {ns}",
                key.kind, key.name, key.kind
            ),
        )),
        _ => Ok(key.clone()),
    }
}

/// `live` restricted to the shape of `shape` (the object as applied):
/// only the map keys `shape` has are kept, recursively; lists of maps are
/// projected element by element (live elements past the shape's are kept
/// whole); anything else is taken whole. So server-added fields (status,
/// uid, defaults, managedFields) vanish while a changed value, a removed
/// field or an extra list element stays visible. Two refinements: a null
/// in the shape (`creationTimestamp: null` in generated YAML) stays null,
/// and an empty map, list or null the live object lacks counts as present
/// (the server drops empty fields); a scalar whose text equals the
/// shape's (`cpu: 1` read back as `"1"`) takes the shape's form.
pub fn project(live: &Value, shape: &Value) -> Value {
    match (shape, live) {
        (Value::Null, _) => Value::Null,
        (Value::Object(s), Value::Object(l)) => {
            let mut out = serde_json::Map::new();
            for (k, sv) in s {
                match l.get(k) {
                    Some(lv) => {
                        out.insert(k.clone(), project(lv, sv));
                    }
                    None if is_empty(sv) => {
                        out.insert(k.clone(), sv.clone());
                    }
                    None => {}
                }
            }
            Value::Object(out)
        }
        (Value::Array(s), Value::Array(l))
            if s.iter().all(Value::is_object) && l.iter().all(Value::is_object) =>
        {
            Value::Array(
                l.iter()
                    .enumerate()
                    .map(|(i, lv)| match s.get(i) {
                        Some(sv) => project(lv, sv),
                        None => lv.clone(),
                    })
                    .collect(),
            )
        }
        (s, l) if scalar_text(s).is_some() && scalar_text(s) == scalar_text(l) => s.clone(),
        _ => live.clone(),
    }
}

/// The projection shape for showing what the server would make of
/// `desired` given the object as it was (`before`, a projected read): the
/// fields of `desired`, plus those only `before` has, so that a field the
/// desired object no longer sets shows up as the server leaves it (gone,
/// or back at its default) instead of vanishing from the comparison. Where
/// both have a field, `desired` gives its form; lists of maps are joined
/// element by element.
pub fn union_shape(desired: &Value, before: &Value) -> Value {
    match (desired, before) {
        (Value::Object(d), Value::Object(b)) => {
            let mut out = d.clone();
            for (k, bv) in b {
                let joined = match d.get(k) {
                    Some(dv) => union_shape(dv, bv),
                    None => bv.clone(),
                };
                out.insert(k.clone(), joined);
            }
            Value::Object(out)
        }
        (Value::Array(d), Value::Array(b)) if d.iter().all(Value::is_object) => Value::Array(
            d.iter()
                .enumerate()
                .map(|(i, dv)| match b.get(i) {
                    Some(bv) => union_shape(dv, bv),
                    None => dv.clone(),
                })
                .collect(),
        ),
        _ => desired.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether an object lists field manager `manager` in its managedFields.
pub fn managed_by(obj: &DynamicObject, manager: &str) -> bool {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(manager))
}

/// Whether applying `obj` sets any field besides its identity (apiVersion,
/// kind, metadata.name, metadata.namespace): only then does the server
/// record the applier in managedFields.
pub fn sets_fields(obj: &Value) -> bool {
    let Some(map) = obj.as_object() else {
        return false;
    };
    map.iter().any(|(k, v)| match k.as_str() {
        "apiVersion" | "kind" => false,
        "metadata" => v
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k != "name" && k != "namespace")),
        _ => true,
    })
}

/// An object as a JSON value (`apiVersion`, `kind`, `metadata` and the rest).
pub fn to_value(obj: &DynamicObject, operation: &str) -> Result<Value, ProviderError> {
    serde_json::to_value(obj).map_err(|e| ProviderError::unexpected(operation, e.to_string()))
}

/// The API for objects of `ar` in `namespace` (all namespaces, or
/// cluster-scoped objects, when `None`).
pub fn dyn_api(client: &kube::Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// A [`ProviderError::Api`] from a Kubernetes API error, keeping the
/// status reason (`NotFound`, `Conflict`, ...) as the code.
pub fn api_error(operation: &str, e: kube::Error) -> ProviderError {
    match e {
        kube::Error::Api(s) => ProviderError::Api {
            operation: operation.to_string(),
            code: Some(s.reason.clone()).filter(|r| !r.is_empty()),
            message: if s.message.is_empty() {
                format!("HTTP {}", s.code)
            } else {
                s.message.clone()
            },
        },
        // No answer from the API server at all: the cluster is down,
        // deleted, or its address or credentials are wrong.
        e @ (kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::RustlsTls(_)
        | kube::Error::Auth(_)
        | kube::Error::TlsRequired) => ProviderError::Unreachable {
            target: "the Kubernetes API server".to_string(),
            message: format!("{operation}: {}", error_chain(&e)),
        },
        other => ProviderError::Api {
            operation: operation.to_string(),
            code: None,
            message: other.to_string(),
        },
    }
}

/// An error with its causes, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether `name` matches `pattern`, in which `*` stands for any run of
/// characters (none included) and everything else for itself.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether the API answered 404 Not Found.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Finds how a cluster serves kinds (resource path, scope) by discovery
/// of one group version at a time, remembering what it found. A kind not
/// served is not remembered: asking again re-runs discovery, for a kind a
/// CRD applied moments ago has just made available.
pub struct Resolver {
    client: kube::Client,
    found: HashMap<(String, String), (ApiResource, bool)>,
}

impl Resolver {
    /// A resolver asking the cluster of `client`.
    pub fn new(client: kube::Client) -> Resolver {
        Resolver {
            client,
            found: HashMap::new(),
        }
    }

    /// The client this resolver asks.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// How the cluster serves `key`'s kind at its apiVersion: the API
    /// resource and whether it is namespaced; `None` when it is not served.
    pub async fn resolve(&mut self, key: &ObjectKey) -> Result<Option<(ApiResource, bool)>, ProviderError> {
        let id = (key.api_version.clone(), key.kind.clone());
        if let Some(found) = self.found.get(&id) {
            return Ok(Some(found.clone()));
        }
        let gvk = GroupVersionKind::gvk(key.group(), key.version(), &key.kind);
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => {
                let found = (ar, caps.scope == Scope::Namespaced);
                self.found.insert(id, found.clone());
                Ok(Some(found))
            }
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_error(
                &format!("discovery of {} {}", key.api_version, key.kind),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_secrets_string_data_is_compared_as_the_data_the_server_stores() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\n\
                    data: {a: eA==, b: eA==}\nstringData: {b: pw, c: '42'}\n";
        let got = normalize_yaml(Value::String(yaml.to_string()));
        assert_eq!(
            got[0]["data"],
            serde_json::json!({"a": "eA==", "b": "cHc=", "c": "NDI="})
        );
        assert!(got[0].get("stringData").is_none());
        // What state recorded goes through the same rule; a ConfigMap is left alone.
        let cm = serde_json::json!([{"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"x": "y"}}]);
        assert_eq!(normalize_yaml(cm.clone()), cm);
        assert_eq!(normalize_yaml(got.clone()), got);
    }
    use super::*;
    use serde_json::json;

    #[test]
    fn name_patterns() {
        assert!(name_matches("*.istio.io", "gateways.networking.istio.io"));
        assert!(!name_matches("*.istio.io", "gateways.networking.istio.io.evil"));
        assert!(name_matches("istio-*", "istio-sidecar-injector"));
        assert!(name_matches(
            "istiod-default-validator",
            "istiod-default-validator"
        ));
        assert!(!name_matches(
            "istiod-default-validator",
            "istiod-default-validator2"
        ));
        assert!(name_matches("istio*-validator*", "istio-validator-istio-system"));
        assert!(!name_matches("a*a", "a"));
        assert!(name_matches("a*a", "aa"));
        assert!(name_matches("*", ""));
    }

    #[test]
    fn parses_documents_and_names_the_bad_one() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n---\n\
                    apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\ndata:\n  n: \"1\"\n  m: 2\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["data"], json!({"n": "1", "m": 2}));
        let bad = "apiVersion: v1\nkind: A\n---\nkind: [unclosed\n";
        let err = parse_documents(bad).unwrap_err();
        assert!(err.starts_with("document 2"), "{err}");
        assert_eq!(normalize_yaml(json!(bad)), json!(bad));
        assert_eq!(
            normalize_yaml(json!("a: 1\n---\nb: 2")),
            json!([{"a": 1}, {"b": 2}])
        );
        assert_eq!(normalize_yaml(json!([{"a": 1}])), json!([{"a": 1}]));
    }

    #[test]
    fn desired_objects_are_checked() {
        let ok = json!("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
        let (objs, keys) = desired_objects(Some(&ok)).unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(keys[0].to_string(), "Namespace shop");
        let err = |v: Value| desired_objects(Some(&v)).unwrap_err().to_string();
        assert!(
            err(json!([{"apiVersion": "v1", "kind": "A", "metadata": {}}]))
                .contains("document 1 has no metadata.name")
        );
        assert!(err(json!([{"kind": "A"}])).contains("no apiVersion"));
        assert!(err(json!(["x"])).contains("not a mapping"));
        assert!(err(json!([])).contains("no Kubernetes objects"));
        let twice = json!([
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "s"}},
            {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "s"}},
        ]);
        assert!(err(twice).contains("documents 1 and 2 both describe Deployment s/w"));
    }

    #[test]
    fn keys_order_and_round_trip() {
        let key = |api: &str, kind: &str, ns: Option<&str>| ObjectKey {
            api_version: api.into(),
            kind: kind.into(),
            namespace: ns.map(str::to_string),
            name: "n".into(),
        };
        let keys = [
            key("apps/v1", "Deployment", Some("s")),
            key("v1", "Namespace", None),
            key("apiextensions.k8s.io/v1", "CustomResourceDefinition", None),
            key("v1", "Service", Some("s")),
        ];
        assert_eq!(apply_order(&keys), [2, 1, 0, 3]);
        assert_eq!(delete_order(&keys), [3, 0, 1, 2]);
        for k in &keys {
            assert_eq!(ObjectKey::from_value(&k.to_value()).as_ref(), Some(k));
        }
        assert_eq!(keys[0].group(), "apps");
        assert_eq!(keys[1].group(), "");
        assert_eq!(keys[1].version(), "v1");
        assert!(scoped(&keys[1], true, 2).is_err());
        assert!(scoped(&keys[0], false, 1).is_err());
        assert!(scoped(&keys[0], true, 1).is_ok());
    }

    #[test]
    fn projection_keeps_the_applied_shape() {
        let shape = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}, "creationTimestamp": null},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1", "resources": {"limits": {"cpu": 1}}}]}}},
            "status": {},
        });
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u", "labels": {"app": "web", "extra": "x"},
                         "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": []},
            "spec": {"replicas": 2, "strategy": {}, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1", "imagePullPolicy": "Always", "resources": {"limits": {"cpu": "1"}}},
                {"name": "sidecar", "image": "envoy"}]}}},
            "status": {"replicas": 2},
        });
        let mut expected = shape.clone();
        expected["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "envoy"}));
        assert_eq!(project(&live, &shape), expected);
        let mut changed = live.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        changed["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        let p = project(&changed, &shape);
        assert_eq!(p["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2");
        assert_eq!(p["metadata"]["labels"], json!({}));
        assert!(sets_fields(&shape));
        assert!(!sets_fields(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        ));
        // A union shape keeps what only the old object set.
        let desired =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
        let was = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "imagePullPolicy": "Never"}]}}}});
        assert_eq!(
            union_shape(&desired, &was),
            json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:2", "imagePullPolicy": "Never"}]}}}})
        );
        // Lists of scalars are taken whole.
        assert_eq!(
            project(&json!({"a": [1, 2, 3]}), &json!({"a": [1]})),
            json!({"a": [1, 2, 3]})
        );
    }
}

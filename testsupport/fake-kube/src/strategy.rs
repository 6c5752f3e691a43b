//! What the API server itself does to an object on create and update
//! before storing it (the real server's per-kind "strategy"): server
//! metadata, defaults, status reset, and validation.
//!
//! Per kind:
//! - every object: `uid`, `creationTimestamp`; names validated (DNS-1123
//!   subdomain; label for Namespaces; DNS-1035 label for Services; path
//!   segment for RBAC); no new finalizers once deletion has begun.
//! - Namespace: label `kubernetes.io/metadata.name`, `spec.finalizers:
//!   [kubernetes]`, `status.phase: Active`.
//! - Service: `type` defaults to ClusterIP; a cluster IP from 10.100.0.0/16
//!   is allocated (kept across updates); ports get `protocol: TCP` and
//!   `targetPort` = `port`; NodePort/LoadBalancer ports get a nodePort;
//!   `status.loadBalancer: {}`.
//! - Built-in kinds then get the rest of the real server's defaults
//!   (`defaults.rs`: Deployment replicas and strategy, pod templates,
//!   containers, Service traffic policies, ...) and its validation
//!   (`validation.rs`: selectors, containers, ports, immutable fields,
//!   label syntax), both in every write path, dry run or not.
//! - Secret: `stringData` is base64-encoded into `data` and dropped; `type`
//!   defaults to Opaque.
//! - CustomResourceDefinition: name must be `<plural>.<group>`, exactly one
//!   storage version; finalizer `customresourcecleanup.apiextensions.k8s.io`;
//!   status `acceptedNames` empty and `storedVersions` set (conditions come
//!   from the fake's controllers).
//! - Custom resources: NOT validated against the CRD's schema, and unknown
//!   fields are NOT pruned.

use super::apply::Part;
use super::kinds::ResourceType;
use super::status::ApiError;
use super::store::{State, is_deleting};
use super::util::{now_rfc3339, str_at};
use base64::Engine;
use serde_json::{Value, json};

fn is_label(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[0].is_ascii_lowercase() || (!first_alpha && b[0].is_ascii_digit()))
        && b[b.len() - 1] != b'-'
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|l| is_label(l, false))
}

fn name_problem(ty: &ResourceType, name: &str) -> Option<String> {
    if ty.group == "rbac.authorization.k8s.io" {
        return (name == "." || name == ".." || name.contains('/') || name.contains('%')).then(|| {
            format!("Invalid value: {name:?}: may not contain '/' or '%', and may not be '.' or '..'")
        });
    }
    match ty.kind.as_str() {
        "Namespace" if !is_label(name, false) => Some(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )),
        "Service" if !is_label(name, true) => Some(format!(
            "Invalid value: {name:?}: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        )),
        "Namespace" | "Service" => None,
        _ if !is_subdomain(name) => Some(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )),
        _ => None,
    }
}

/// The storage version of a CRD object, if exactly one is marked.
fn storage_versions(crd: &Value) -> Vec<String> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

/// Defaults shared by create and update.
fn default_fields(state: &mut State, ty: &ResourceType, obj: &mut Value, old: Option<&Value>) {
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("", "Secret") => {
            if let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in string_data {
                    let text = v.as_str().unwrap_or_default();
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                }
            }
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
        }
        ("", "Service") => {
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            let spec = &mut obj["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            let type_ = spec["type"].as_str().unwrap_or_default().to_string();
            let old_spec = old.map(|o| &o["spec"]);
            // "" asks for an address, as null does (charts often send it).
            if type_ != "ExternalName" && (spec["clusterIP"].is_null() || spec["clusterIP"] == "") {
                let kept = old_spec.map(|s| s["clusterIP"].clone()).filter(|v| !v.is_null());
                let ip = kept.unwrap_or_else(|| {
                    let n = state.next_ip;
                    state.next_ip += 1;
                    json!(format!("10.100.{}.{}", n / 250, n % 250 + 1))
                });
                spec["clusterIPs"] = json!([ip.clone()]);
                spec["clusterIP"] = ip;
            }
            let needs_node_port = type_ == "NodePort" || type_ == "LoadBalancer";
            if let Some(ports) = spec["ports"].as_array_mut() {
                for (i, port) in ports.iter_mut().enumerate() {
                    if port["protocol"].is_null() {
                        port["protocol"] = json!("TCP");
                    }
                    if port["targetPort"].is_null() {
                        port["targetPort"] = port["port"].clone();
                    }
                    if needs_node_port && port["nodePort"].is_null() {
                        let kept = old_spec
                            .and_then(|s| s.pointer(&format!("/ports/{i}/nodePort")))
                            .filter(|v| !v.is_null())
                            .cloned();
                        port["nodePort"] = kept.unwrap_or_else(|| {
                            let n = state.next_ip;
                            state.next_ip += 1;
                            json!(30000 + n)
                        });
                    }
                }
            }
        }
        ("", "Namespace") => {
            let name = str_at(obj, &["metadata", "name"]).unwrap_or_default().to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        ("apiextensions.k8s.io", _) => {
            let stored = storage_versions(obj);
            let mut versions: Vec<Value> = old
                .and_then(|o| o.pointer("/status/storedVersions"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for v in stored {
                if !versions.contains(&json!(v)) {
                    versions.push(json!(v));
                }
            }
            obj["status"]["storedVersions"] = json!(versions);
        }
        _ => {}
    }
    super::defaults::default_object(ty, obj, old);
}

/// Create: server metadata, a fresh status, defaults.
pub fn prepare_for_create(state: &mut State, ty: &ResourceType, obj: &mut Value) {
    let meta = obj["metadata"].as_object_mut().expect("metadata is a map");
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "generation",
        "selfLink",
    ] {
        meta.remove(k);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    if ty.status_subresource {
        obj["status"] = match ty.kind.as_str() {
            "Namespace" => json!({"phase": "Active"}),
            "Service" => json!({"loadBalancer": {}}),
            "CustomResourceDefinition" => json!({"acceptedNames": {"kind": "", "plural": ""}}),
            "Deployment" => json!({}),
            _ => Value::Null,
        };
        if obj["status"].is_null() {
            obj.as_object_mut().expect("map").remove("status");
        }
    }
    match ty.kind.as_str() {
        "Namespace" if !ty.custom => obj["spec"] = json!({"finalizers": ["kubernetes"]}),
        "CustomResourceDefinition" if !ty.custom => {
            let fins = obj["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let cleanup = json!("customresourcecleanup.apiextensions.k8s.io");
            if !fins.contains(&cleanup) {
                let mut fins = fins;
                fins.push(cleanup);
                obj["metadata"]["finalizers"] = json!(fins);
            }
        }
        _ => {}
    }
    default_fields(state, ty, obj, None);
}

/// Update of `part`: server metadata from the stored object; the part not
/// written is kept as stored.
pub fn prepare_for_update(state: &mut State, ty: &ResourceType, old: &Value, new: &mut Value, part: Part) {
    if part == Part::Status {
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                new.as_object_mut().expect("map").remove("status");
            }
        }
        return;
    }
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                new["metadata"].as_object_mut().expect("map").remove(k);
            }
        }
    }
    if ty.status_subresource {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().expect("map").remove("status");
            }
        }
    }
    if ty.kind == "Namespace" && !ty.custom {
        new["spec"] = old["spec"].clone();
    }
    default_fields(state, ty, new, Some(old));
}

/// 422 Invalid when the object breaks the kind's rules.
pub fn validate(ty: &ResourceType, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = str_at(obj, &["metadata", "name"]).unwrap_or_default();
    let mut causes: Vec<(&str, &str, String)> = vec![];
    if name.is_empty() {
        causes.push((
            "metadata.name",
            "FieldValueRequired",
            "Required value: name or generateName is required".into(),
        ));
    } else if let Some(problem) = name_problem(ty, name) {
        causes.push(("metadata.name", "FieldValueInvalid", problem));
    }
    if let Some(old) = old
        && is_deleting(old)
    {
        let fins = |o: &Value| -> Vec<Value> {
            o["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let before = fins(old);
        if fins(obj).iter().any(|f| !before.contains(f)) {
            causes.push((
                "metadata.finalizers",
                "FieldValueForbidden",
                "Forbidden: no new finalizers can be added if the object is being deleted".into(),
            ));
        }
    }
    // One kind left here; the rest of the per-kind rules are in validation.rs.
    #[allow(clippy::single_match)]
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let group = str_at(obj, &["spec", "group"]).unwrap_or_default();
            let plural = str_at(obj, &["spec", "names", "plural"]).unwrap_or_default();
            if name != format!("{plural}.{group}") {
                causes.push((
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
                ));
            }
            if storage_versions(obj).len() != 1 {
                causes.push((
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: must have exactly one version marked as storage version".into(),
                ));
            }
            if str_at(obj, &["spec", "names", "kind"])
                .unwrap_or_default()
                .is_empty()
            {
                causes.push(("spec.names.kind", "FieldValueRequired", "Required value".into()));
            }
        }
        _ => {}
    }
    let more = super::validation::causes(ty, obj, old);
    causes.extend(more.iter().map(|(f, r, m)| (f.as_str(), *r, m.clone())));
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&ty.kind, &ty.group, name, &causes))
    }
}

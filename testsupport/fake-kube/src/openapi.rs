//! OpenAPI documents for the kinds the fake serves, for clients that read
//! them (kubectl apply, diff, explain and its field validation check; Helm):
//!
//! - `/openapi/v3`: the index, `paths` → `serverRelativeURL` with a
//!   `?hash=` of the document (client-go caches by it);
//! - `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`: one
//!   OpenAPI 3.0 document per served group/version with the resource paths
//!   and `components.schemas`;
//! - `/openapi/v2`: one Swagger 2.0 document of everything, as JSON.
//!   client-go asks for it in protobuf only
//!   (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which
//!   the fake cannot produce: that is a 406, as the real server answers an
//!   encoding it does not have, and kubectl goes on without it (it uses v3
//!   first; for client-side apply of built-in kinds it falls back to its
//!   compiled-in types).
//!
//! Schemas of built-in kinds are the real ones, generated from
//! k8s-openapi's types (descriptions included, so `kubectl explain` has
//! text), plus the strategic-merge extensions written from
//! `strategic_merge::LIST_RULES` (the same table the fake's strategic merge
//! patch uses) and `x-kubernetes-group-version-kind` on each kind. A custom
//! resource's schema is its CRD's `openAPIV3Schema` (or, without one, an
//! object preserving unknown fields) with `metadata` as ObjectMeta.
//!
//! Each PATCH operation lists the `fieldValidation` query parameter (so
//! kubectl leaves validation to the server, `?fieldValidation=Strict`) and
//! the patch types the fake takes: `application/strategic-merge-patch+json`
//! for built-in kinds only, as on the real server, which is how kubectl
//! decides between a strategic and a JSON merge patch.
//!
//! SIMPLIFICATIONS: no List kinds, no `/scale` or other subresources than
//! `/status`, responses show only 200, and the per-operation parameters are
//! the ones clients look for.

use super::api::ApiResponse;
use super::kinds::ResourceType;
use super::status::ApiError;
use super::store::State;
use super::strategic_merge::{self, LIST_RULES};
use super::util::{short_hash, str_at};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const REF_PREFIX: &str = "#/components/schemas/";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const PATCH_BODY: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// The schema definition names of the built-in kinds, by group/version/kind.
type KindDefs = BTreeMap<(String, String, String), String>;

struct Builtins {
    defs: Map<String, Value>,
    kinds: KindDefs,
}

fn add<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
    kinds: &mut KindDefs,
    group: &str,
    version: &str,
    kind: &str,
) {
    generator.subschema_for::<T>();
    kinds.insert(
        (group.into(), version.into(), kind.into()),
        T::schema_name().into_owned(),
    );
}

/// The built-in kinds' schemas, generated once.
fn builtins() -> &'static Builtins {
    static BUILTINS: OnceLock<Builtins> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        use k8s_openapi::api::{
            admissionregistration::v1 as adm, apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
            coordination::v1 as coordination, core::v1 as core, networking::v1 as networking, policy::v1 as policy,
            rbac::v1 as rbac,
        };
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
        let mut generator = schemars::generate::SchemaSettings::openapi3()
            .with(|s| s.meta_schema = None)
            .into_generator();
        let g = &mut generator;
        let mut k = KindDefs::new();
        let k = &mut k;
        add::<core::ConfigMap>(g, k, "", "v1", "ConfigMap");
        add::<core::Endpoints>(g, k, "", "v1", "Endpoints");
        add::<core::Event>(g, k, "", "v1", "Event");
        add::<core::Namespace>(g, k, "", "v1", "Namespace");
        add::<core::PersistentVolumeClaim>(g, k, "", "v1", "PersistentVolumeClaim");
        add::<core::Pod>(g, k, "", "v1", "Pod");
        add::<core::Secret>(g, k, "", "v1", "Secret");
        add::<core::ServiceAccount>(g, k, "", "v1", "ServiceAccount");
        add::<core::Service>(g, k, "", "v1", "Service");
        add::<apps::DaemonSet>(g, k, "apps", "v1", "DaemonSet");
        add::<apps::Deployment>(g, k, "apps", "v1", "Deployment");
        add::<apps::ReplicaSet>(g, k, "apps", "v1", "ReplicaSet");
        add::<apps::StatefulSet>(g, k, "apps", "v1", "StatefulSet");
        add::<batch::CronJob>(g, k, "batch", "v1", "CronJob");
        add::<batch::Job>(g, k, "batch", "v1", "Job");
        add::<policy::PodDisruptionBudget>(g, k, "policy", "v1", "PodDisruptionBudget");
        add::<autoscaling::HorizontalPodAutoscaler>(g, k, "autoscaling", "v2", "HorizontalPodAutoscaler");
        add::<apiext::CustomResourceDefinition>(g, k, "apiextensions.k8s.io", "v1", "CustomResourceDefinition");
        let r = "rbac.authorization.k8s.io";
        add::<rbac::ClusterRoleBinding>(g, k, r, "v1", "ClusterRoleBinding");
        add::<rbac::ClusterRole>(g, k, r, "v1", "ClusterRole");
        add::<rbac::RoleBinding>(g, k, r, "v1", "RoleBinding");
        add::<rbac::Role>(g, k, r, "v1", "Role");
        let a = "admissionregistration.k8s.io";
        add::<adm::MutatingWebhookConfiguration>(g, k, a, "v1", "MutatingWebhookConfiguration");
        add::<adm::ValidatingWebhookConfiguration>(g, k, a, "v1", "ValidatingWebhookConfiguration");
        let n = "networking.k8s.io";
        add::<networking::IngressClass>(g, k, n, "v1", "IngressClass");
        add::<networking::Ingress>(g, k, n, "v1", "Ingress");
        add::<networking::NetworkPolicy>(g, k, n, "v1", "NetworkPolicy");
        add::<coordination::Lease>(g, k, "coordination.k8s.io", "v1", "Lease");
        let kinds = k.clone();
        let mut defs = generator.take_definitions(true);
        for ((group, version, kind), name) in &kinds {
            if let Some(d) = defs.get_mut(name) {
                d["x-kubernetes-group-version-kind"] =
                    json!([{"group": group, "version": version, "kind": kind}]);
            }
        }
        for rule in LIST_RULES {
            if let Some(field) = defs
                .get_mut(rule.definition)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|p| p.get_mut(rule.field))
            {
                field["x-kubernetes-patch-strategy"] = json!(rule.strategy);
                if let Some(key) = rule.merge_key {
                    field["x-kubernetes-patch-merge-key"] = json!(key);
                }
                if field["type"] == "array" {
                    if rule.map_keys.is_empty() {
                        field["x-kubernetes-list-type"] = json!("set");
                    } else {
                        field["x-kubernetes-list-type"] = json!("map");
                        field["x-kubernetes-list-map-keys"] = json!(rule.map_keys);
                    }
                }
            }
        }
        defs.insert(
            PATCH_BODY.into(),
            json!({
                "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
                "type": "object",
            }),
        );
        Builtins { defs, kinds }
    })
}

/// The definition a `$ref` (possibly wrapped in `allOf`, or the `items` of
/// a list) points at.
fn ref_name(schema: &Value) -> Option<&str> {
    let s = schema.get("items").unwrap_or(schema);
    let s = s.pointer("/allOf/0").unwrap_or(s);
    s.get("$ref")?.as_str()?.strip_prefix(REF_PREFIX)
}

/// Walks the built-in schemas for the strategic merge patch.
pub struct Nav {
    name: String,
}

impl strategic_merge::Schema for Nav {
    fn field(&self, field: &str) -> Option<Nav> {
        let prop = builtins()
            .defs
            .get(&self.name)?
            .pointer(&format!("/properties/{field}"))?;
        Some(Nav {
            name: ref_name(prop)?.to_string(),
        })
    }

    fn definition(&self) -> Option<&str> {
        Some(&self.name)
    }
}

/// The schema of a built-in kind, for the strategic merge patch.
pub fn builtin_nav(ty: &ResourceType) -> Option<Nav> {
    let key = (ty.group.clone(), ty.version.clone(), ty.kind.clone());
    builtins().kinds.get(&key).map(|name| Nav { name: name.clone() })
}

/// `example.com` + `v1` + `Widget` → `com.example.v1.Widget`, as the real
/// server names a custom resource's schema.
fn crd_def_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The schema of one served version of a CRD.
fn crd_schema(crd: &Value, ty: &ResourceType) -> Value {
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| str_at(v, &["name"]) == Some(ty.version.as_str()))
        });
    let mut schema = version
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if !schema["properties"].is_object() {
        schema["properties"] = json!({});
    }
    schema["properties"]["metadata"] = json!({"$ref": format!("{REF_PREFIX}{OBJECT_META}")});
    schema["properties"]["apiVersion"] = json!({"type": "string"});
    schema["properties"]["kind"] = json!({"type": "string"});
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": ty.group, "version": ty.version, "kind": ty.kind}]);
    schema
}

/// Every definition reachable from `roots` through `$ref`s, looked up in
/// the built-in definitions and then in `custom` (the CRDs' schemas).
fn closure(
    builtin: &Map<String, Value>,
    custom: &Map<String, Value>,
    roots: &[String],
) -> Map<String, Value> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix(REF_PREFIX))
                {
                    out.push(r.to_string());
                }
                m.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    let mut out = Map::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(def) = custom.get(&name).or_else(|| builtin.get(&name)) {
            refs(def, &mut todo);
            out.insert(name, def.clone());
        }
    }
    out
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(ty: &ResourceType, action: &str, def: &str, id: &str) -> Value {
    let mut op = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": ty.group, "version": ty.version, "kind": ty.kind},
        "responses": {"200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": format!("{REF_PREFIX}{def}")}}},
        }},
    });
    let params: &[&str] = match action {
        "post" | "put" => &["dryRun", "fieldManager", "fieldValidation"],
        "patch" => &["dryRun", "fieldManager", "fieldValidation", "force"],
        "list" | "watchlist" => &[
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "resourceVersionMatch",
            "sendInitialEvents",
            "allowWatchBookmarks",
            "timeoutSeconds",
            "watch",
        ],
        "delete" | "deletecollection" => &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
        _ => &[],
    };
    op["parameters"] = params.iter().map(|p| query_param(p)).collect();
    let body_ref = json!({"schema": {"$ref": format!("{REF_PREFIX}{def}")}});
    match action {
        "post" | "put" => {
            op["requestBody"] = json!({"required": true, "content": {
                "application/json": body_ref,
            }});
        }
        "patch" => {
            let patch_ref = json!({"schema": {"$ref": format!("{REF_PREFIX}{PATCH_BODY}")}});
            let mut content = json!({
                "application/json-patch+json": patch_ref,
                "application/merge-patch+json": patch_ref,
                "application/apply-patch+yaml": patch_ref,
            });
            if !ty.custom {
                content["application/strategic-merge-patch+json"] = patch_ref;
            }
            op["requestBody"] = json!({"required": true, "content": content});
        }
        _ => {}
    }
    op
}

fn path_params(names: &[&str]) -> Value {
    names
        .iter()
        .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}))
        .collect()
}

/// The paths of one resource type.
fn paths_of(ty: &ResourceType, def: &str, paths: &mut Map<String, Value>) {
    let prefix = if ty.group.is_empty() {
        format!("/api/{}", ty.version)
    } else {
        format!("/apis/{}/{}", ty.group, ty.version)
    };
    let scope = if ty.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{scope}/{}", ty.plural);
    let item = format!("{collection}/{{name}}");
    let id = |verb: &str| format!("{verb}{}", ty.kind);
    let scope_params: &[&str] = if ty.namespaced { &["namespace"] } else { &[] };
    let item_params: Vec<&str> = scope_params.iter().copied().chain(["name"]).collect();
    paths.insert(
        collection.clone(),
        json!({
            "get": operation(ty, "list", def, &id("list")),
            "post": operation(ty, "post", def, &id("create")),
            "delete": operation(ty, "deletecollection", def, &id("deleteCollection")),
            "parameters": path_params(scope_params),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": operation(ty, "get", def, &id("read")),
            "put": operation(ty, "put", def, &id("replace")),
            "patch": operation(ty, "patch", def, &id("patch")),
            "delete": operation(ty, "delete", def, &id("delete")),
            "parameters": path_params(&item_params),
        }),
    );
    if ty.namespaced {
        paths.insert(
            format!("{prefix}/{}", ty.plural),
            json!({"get": operation(ty, "list", def, &format!("list{}ForAllNamespaces", ty.kind)), "parameters": []}),
        );
    }
    if ty.status_subresource {
        paths.insert(
            format!("{item}/status"),
            json!({
                "get": operation(ty, "get", def, &(id("read") + "Status")),
                "put": operation(ty, "put", def, &(id("replace") + "Status")),
                "patch": operation(ty, "patch", def, &(id("patch") + "Status")),
                "parameters": path_params(&item_params),
            }),
        );
    }
}

/// Paths and every schema (built-in and custom) of the given types.
fn paths_and_schemas(state: &State, types: &[&ResourceType]) -> (Map<String, Value>, Map<String, Value>) {
    let b = builtins();
    let mut custom = Map::new();
    let mut paths = Map::new();
    let mut roots = vec![];
    for ty in types {
        let def = if ty.custom {
            let name = crd_def_name(&ty.group, &ty.version, &ty.kind);
            let crd = state
                .list("apiextensions.k8s.io", "customresourcedefinitions", None)
                .into_iter()
                .map(|(_, c)| c)
                .find(|c| {
                    str_at(c, &["spec", "group"]) == Some(ty.group.as_str())
                        && str_at(c, &["spec", "names", "plural"]) == Some(ty.plural.as_str())
                });
            custom.insert(
                name.clone(),
                crd.map(|c| crd_schema(&c, ty)).unwrap_or(Value::Null),
            );
            name
        } else {
            match b
                .kinds
                .get(&(ty.group.clone(), ty.version.clone(), ty.kind.clone()))
            {
                Some(n) => n.clone(),
                None => continue,
            }
        };
        paths_of(ty, &def, &mut paths);
        roots.push(def);
    }
    roots.push(PATCH_BODY.into());
    (paths, closure(&b.defs, &custom, &roots))
}

/// The OpenAPI v3 document of one group/version, or None when nothing is
/// served there.
fn v3_document(state: &State, group: &str, version: &str) -> Option<Value> {
    let types = state.types();
    let here: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if here.is_empty() {
        return None;
    }
    let (paths, schemas) = paths_and_schemas(state, &here);
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::version()["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `api/v1`, `apis/apps/v1`: the index keys of the served group/versions.
fn group_versions(state: &State) -> BTreeSet<String> {
    state
        .types()
        .iter()
        .map(|t| {
            if t.group.is_empty() {
                format!("api/{}", t.version)
            } else {
                format!("apis/{}/{}", t.group, t.version)
            }
        })
        .collect()
}

fn v3_index(state: &State) -> Value {
    let mut paths = Map::new();
    for gv in group_versions(state) {
        let parts: Vec<&str> = gv.split('/').collect();
        let doc = match parts.as_slice() {
            ["api", v] => v3_document(state, "", v),
            ["apis", g, v] => v3_document(state, g, v),
            _ => None,
        };
        if let Some(doc) = doc {
            let hash = short_hash(&doc.to_string(), 16).to_uppercase();
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// The Swagger 2.0 form of a v3 operation.
fn v2_operation(op: &Value) -> Value {
    let mut out = op.clone();
    let m = out.as_object_mut().expect("operations are maps");
    if let Some(body) = m.remove("requestBody") {
        let consumes: Vec<&String> = body["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        let schema = body["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .map(|c| c["schema"].clone())
            .unwrap_or(Value::Null);
        m.insert("consumes".into(), json!(consumes));
        if let Some(Value::Array(params)) = m.get_mut("parameters") {
            params.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        }
    }
    if let Some(Value::Array(params)) = m.get_mut("parameters") {
        for p in params.iter_mut().filter(|p| p["in"] != "body") {
            p["type"] = json!("string");
            p.as_object_mut().expect("map").remove("schema");
        }
    }
    let schema = op
        .pointer("/responses/200/content/application~1json/schema")
        .cloned();
    m.insert("produces".into(), json!(["application/json"]));
    m.insert(
        "responses".into(),
        json!({"200": {"description": "OK", "schema": schema}}),
    );
    out
}

fn v2_document(state: &State) -> Value {
    let types = state.types();
    let all: Vec<&ResourceType> = types.iter().collect();
    let (paths, schemas) = paths_and_schemas(state, &all);
    let paths: Map<String, Value> = paths
        .into_iter()
        .map(|(p, item)| {
            let mut item = item;
            for (k, v) in item.as_object_mut().expect("path items are maps") {
                if k != "parameters" {
                    *v = v2_operation(v);
                }
            }
            (p, item)
        })
        .collect();
    let text = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": super::discovery::version()["gitVersion"]},
        "paths": paths,
        "definitions": schemas,
    })
    .to_string()
    .replace(REF_PREFIX, "#/definitions/");
    serde_json::from_str(&text).expect("the fake's own JSON")
}

/// Answers `/openapi/...`, or None when the path is not one.
pub fn serve(
    state: &State,
    method: &str,
    segments: &[&str],
    accept: Option<&str>,
) -> Option<Result<ApiResponse, ApiError>> {
    let doc = match segments {
        ["openapi", "v2"] => Some(v2_document(state)),
        ["openapi", "v3"] => Some(v3_index(state)),
        ["openapi", "v3", "api", version] => v3_document(state, "", version),
        ["openapi", "v3", "apis", group, version] => v3_document(state, group, version),
        ["openapi", ..] => None,
        _ => return None,
    };
    Some((|| {
        if method != "GET" {
            return Err(ApiError::method_not_allowed());
        }
        super::discovery::negotiate(accept, false, false)?;
        doc.map(|d| ApiResponse::Json(200, d))
            .ok_or_else(ApiError::unserved)
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_rules_become_schema_extensions() {
        let defs = &builtins().defs;
        let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        let ports = &defs["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-list-map-keys"], json!(["port", "protocol"]));
        for rule in LIST_RULES {
            let field = defs
                .get(rule.definition)
                .and_then(|d| d.pointer(&format!("/properties/{}", rule.field)));
            assert!(
                field.is_some(),
                "{}.{} is not in the schemas",
                rule.definition,
                rule.field
            );
        }
    }

    #[test]
    fn kinds_carry_their_group_version_kind() {
        let defs = &builtins().defs;
        assert_eq!(
            defs["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
    }

    #[test]
    fn the_navigator_follows_refs_to_the_containers_item_type() {
        use strategic_merge::Schema;
        let ty = super::super::kinds::builtins()
            .into_iter()
            .find(|t| t.kind == "Deployment")
            .unwrap();
        let nav = builtin_nav(&ty).unwrap();
        let pod_spec = nav
            .field("spec")
            .and_then(|s| s.field("template"))
            .and_then(|t| t.field("spec"))
            .unwrap();
        assert_eq!(pod_spec.definition(), Some("io.k8s.api.core.v1.PodSpec"));
        assert_eq!(
            pod_spec.field("containers").unwrap().definition(),
            Some("io.k8s.api.core.v1.Container")
        );
    }

    #[test]
    fn every_builtin_kind_has_a_schema() {
        for ty in super::super::kinds::builtins() {
            assert!(builtin_nav(&ty).is_some(), "{} has no schema", ty.kind);
        }
    }
}

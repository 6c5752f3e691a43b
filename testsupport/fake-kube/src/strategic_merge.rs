//! Strategic merge patch (`application/strategic-merge-patch+json`) for the
//! built-in kinds, and the table of list merge rules it shares with the
//! OpenAPI schemas the fake serves (`openapi.rs` writes each rule as the
//! `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` /
//! `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` extensions of the
//! field), so what kubectl computes a patch from and what the fake applies
//! it with cannot disagree.
//!
//! What it does, as the real server's `strategicpatch` package does:
//! - maps merge key by key; `null` deletes a key;
//! - a list with a merge key (containers by `name`, ports by
//!   `containerPort`, ...) merges element by element: a patch element
//!   merges into the live element with the same key or is appended; a list
//!   of scalars with strategy `merge` (finalizers) is a union; every other
//!   list replaces the live one;
//! - a map with strategy `replace` (a PodDisruptionBudget's selector) is
//!   replaced whole;
//! - directives: `$patch: replace` (a map or list replaces the live one),
//!   `$patch: delete` (a map is deleted; in a keyed list, the element with
//!   that key), `$patch: merge`, `$retainKeys` (live keys not listed are
//!   dropped), `$setElementOrder/<list>` (the merged list in that order,
//!   elements only on the server after them, in their order), and
//!   `$deleteFromPrimitiveList/<list>` (those values leave a scalar list).
//!
//! SIMPLIFICATIONS: only the fields in [`LIST_RULES`] merge (the lists
//! charts and kubectl touch); `$setElementOrder` places server-only
//! elements at the end instead of interleaving them; no `$patch` inside
//! scalar lists.

use serde_json::{Map, Value};

/// How one list (or map) field of a built-in type is patched.
#[derive(Clone, Copy, Debug)]
pub struct ListRule {
    /// The schema definition holding the field, as the OpenAPI names it.
    pub definition: &'static str,
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`,
    /// `merge,retainKeys`, or `replace` (a map replaced whole).
    pub strategy: &'static str,
    /// `x-kubernetes-patch-merge-key`, for lists of maps that merge.
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-list-map-keys` (server-side apply's key); empty for a
    /// set (`x-kubernetes-list-type: set`) or a non-list field.
    pub map_keys: &'static [&'static str],
}

const fn rule(
    definition: &'static str,
    field: &'static str,
    strategy: &'static str,
    merge_key: Option<&'static str>,
    map_keys: &'static [&'static str],
) -> ListRule {
    ListRule {
        definition,
        field,
        strategy,
        merge_key,
        map_keys,
    }
}

/// The merge rules of the real types' `patchStrategy`/`patchMergeKey`
/// tags (k8s.io/api), for the kinds the fake serves (node, admission
/// policy and other kinds the fake does not serve left out). THE single
/// source for both the served schemas and the fake's strategic merge.
#[rustfmt::skip]
pub const LIST_RULES: &[ListRule] = &[
    rule("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", None, &[]),
    rule("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", Some("uid"), &["uid"]),
    rule("io.k8s.api.core.v1.PodSpec", "containers", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", Some("ip"), &["ip"]),
    rule("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "merge", Some("topologyKey"), &["topologyKey", "whenUnsatisfiable"]),
    rule("io.k8s.api.core.v1.PodSpec", "schedulingGates", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.PodSpec", "resourceClaims", "merge,retainKeys", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.Container", "ports", "merge", Some("containerPort"), &["containerPort", "protocol"]),
    rule("io.k8s.api.core.v1.Container", "env", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.Container", "volumeMounts", "merge", Some("mountPath"), &["mountPath"]),
    rule("io.k8s.api.core.v1.Container", "volumeDevices", "merge", Some("devicePath"), &["devicePath"]),
    rule("io.k8s.api.core.v1.EphemeralContainer", "ports", "merge", Some("containerPort"), &["containerPort", "protocol"]),
    rule("io.k8s.api.core.v1.EphemeralContainer", "env", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", "merge", Some("mountPath"), &["mountPath"]),
    rule("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", "merge", Some("devicePath"), &["devicePath"]),
    rule("io.k8s.api.core.v1.ContainerStatus", "volumeMounts", "merge", Some("mountPath"), &["mountPath"]),
    rule("io.k8s.api.core.v1.PodStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.core.v1.PodStatus", "hostIPs", "merge", Some("ip"), &["ip"]),
    rule("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", Some("ip"), &["ip"]),
    rule("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", Some("port"), &["port", "protocol"]),
    rule("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.core.v1.ServiceAccount", "secrets", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.core.v1.NamespaceStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", None, &[]),
    rule("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.batch.v1.JobStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector", "replace", None, &[]),
    rule("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", "merge", Some("type"), &["type"]),
    rule("io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.admissionregistration.v1.MutatingWebhook", "matchConditions", "merge", Some("name"), &["name"]),
    rule("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "matchConditions", "merge", Some("name"), &["name"]),
];

/// The rule for `field` of `definition`, if any.
pub fn rule_for(definition: &str, field: &str) -> Option<&'static ListRule> {
    LIST_RULES
        .iter()
        .find(|r| r.definition == definition && r.field == field)
}

/// Where in a type a value sits: which schema definition describes it, if
/// known. The schema walk lives in `openapi.rs`; this trait keeps the merge
/// independent of it (and testable with a stub).
pub trait Schema: Sized {
    /// The definition describing `self[field]` (for a list, its items).
    fn field(&self, field: &str) -> Option<Self>;
    /// The definition name of the value here.
    fn definition(&self) -> Option<&str>;
}

/// The rule for `field` inside a value described by `schema`.
fn rule_at<S: Schema>(schema: Option<&S>, field: &str) -> Option<&'static ListRule> {
    rule_for(schema?.definition()?, field)
}

/// A malformed patch (the real server's 400 wording comes from the caller).
#[derive(Debug, PartialEq)]
pub struct PatchError(pub String);

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge `patch` to `original` (an object of the type
/// `schema` describes) and returns the result.
pub fn apply<S: Schema>(original: &Value, patch: &Value, schema: Option<&S>) -> Result<Value, PatchError> {
    let Some(p) = patch.as_object() else {
        return Err(PatchError("a strategic merge patch must be a JSON object".into()));
    };
    let base = original.as_object().cloned().unwrap_or_default();
    Ok(merge_map(base, p, schema)?
        .map(Value::Object)
        .unwrap_or(Value::Null))
}

/// Merges patch map `p` into `base`; None when the patch deletes the map.
fn merge_map<S: Schema>(
    mut base: Map<String, Value>,
    p: &Map<String, Value>,
    schema: Option<&S>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match p.get(PATCH).and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove(PATCH);
            return Ok(Some(strip_directives(replaced)));
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError(format!("Unknown patch type: {other}"))),
    }
    if let Some(retain) = p.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| PatchError("$retainKeys must be a list of strings".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        base.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if let Some(list) = k.strip_prefix(DELETE_FROM) {
            let gone = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = base.get_mut(list) {
                items.retain(|i| !gone.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let child = schema.and_then(|s| s.field(k));
        match v {
            Value::Null => {
                base.remove(k);
            }
            Value::Object(pm) if rule_at(schema, k).is_some_and(|r| r.strategy == "replace") => {
                base.insert(k.clone(), Value::Object(strip_directives(pm.clone())));
            }
            Value::Object(pm) => {
                let live = match base.remove(k) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                if let Some(merged) = merge_map(live, pm, child.as_ref())? {
                    base.insert(k.clone(), Value::Object(merged));
                }
            }
            Value::Array(items) => {
                let live = match base.remove(k) {
                    Some(Value::Array(a)) => a,
                    _ => vec![],
                };
                let rule = rule_at(schema, k).filter(|r| r.strategy.split(',').any(|s| s == "merge"));
                let merged = merge_list(live, items, rule, child.as_ref())?;
                base.insert(k.clone(), Value::Array(merged));
            }
            scalar => {
                base.insert(k.clone(), scalar.clone());
            }
        }
    }
    // `$setElementOrder/<list>` orders a list, whether or not the patch
    // also changed it.
    for (k, order) in p {
        if let Some(list) = k.strip_prefix(SET_ORDER)
            && let (Some(Value::Array(items)), Some(order)) = (base.get_mut(list), order.as_array())
        {
            let key = rule_at(schema, list).and_then(|r| r.merge_key);
            reorder(items, order, key);
        }
    }
    Ok(Some(base))
}

/// Drops directive keys from a replacement value.
fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    for v in m.values_mut() {
        if let Value::Object(inner) = v {
            *inner = strip_directives(std::mem::take(inner));
        }
    }
    m
}

fn merge_list<S: Schema>(
    live: Vec<Value>,
    patch: &[Value],
    rule: Option<&ListRule>,
    items_schema: Option<&S>,
) -> Result<Vec<Value>, PatchError> {
    let is_replace = |v: &Value| v.get(PATCH).and_then(Value::as_str) == Some("replace");
    if patch.iter().any(is_replace) {
        // `[{"$patch": "replace"}, ...rest]`: the rest is the whole list.
        return Ok(patch
            .iter()
            .filter(|v| !is_replace(v))
            .map(|v| match v {
                Value::Object(m) => Value::Object(strip_directives(m.clone())),
                other => other.clone(),
            })
            .collect());
    }
    let Some(rule) = rule else {
        return Ok(patch.to_vec());
    };
    let Some(key) = rule.merge_key else {
        // A set of scalars: the union, live order first.
        let mut out = live;
        for v in patch {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        return Ok(out);
    };
    let mut out = live;
    for item in patch {
        let Some(pm) = item.as_object() else {
            return Err(PatchError(format!(
                "the list to merge by {key:?} must hold maps, found {item}"
            )));
        };
        let Some(id) = pm.get(key) else {
            return Err(PatchError(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let at = out.iter().position(|e| e.get(key) == Some(id));
        if pm.get(PATCH).and_then(Value::as_str) == Some("delete") {
            if let Some(i) = at {
                out.remove(i);
            }
            continue;
        }
        match at {
            Some(i) => {
                let live = out[i].as_object().cloned().unwrap_or_default();
                match merge_map(live, pm, items_schema)? {
                    Some(m) => out[i] = Value::Object(m),
                    None => {
                        out.remove(i);
                    }
                }
            }
            None => {
                if let Some(m) = merge_map(Map::new(), pm, items_schema)? {
                    out.push(Value::Object(m));
                }
            }
        }
    }
    Ok(out)
}

/// Orders `items` by `order` (merge-key values, or the values themselves
/// for scalars); items not named keep their relative order, after.
fn reorder(items: &mut [Value], order: &[Value], key: Option<&str>) {
    let id = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&id).collect();
    let rank = |v: &Value| wanted.iter().position(|w| *w == id(v)).unwrap_or(usize::MAX);
    items.sort_by_key(|v| rank(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stub schema: a Deployment-shaped path of definitions.
    #[derive(Clone)]
    struct Stub(&'static str);

    impl Schema for Stub {
        fn field(&self, field: &str) -> Option<Stub> {
            let next = match (self.0, field) {
                ("io.k8s.api.apps.v1.Deployment", "spec") => "io.k8s.api.apps.v1.DeploymentSpec",
                ("io.k8s.api.apps.v1.Deployment", "metadata") => {
                    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
                }
                ("io.k8s.api.apps.v1.DeploymentSpec", "template") => "io.k8s.api.core.v1.PodTemplateSpec",
                ("io.k8s.api.core.v1.PodTemplateSpec", "spec") => "io.k8s.api.core.v1.PodSpec",
                ("io.k8s.api.core.v1.PodSpec", "containers" | "initContainers") => {
                    "io.k8s.api.core.v1.Container"
                }
                ("io.k8s.api.core.v1.PodSpec", "volumes") => "io.k8s.api.core.v1.Volume",
                ("io.k8s.api.policy.v1.PodDisruptionBudget", "spec") => {
                    "io.k8s.api.policy.v1.PodDisruptionBudgetSpec"
                }
                _ => return None,
            };
            Some(Stub(next))
        }
        fn definition(&self) -> Option<&str> {
            Some(self.0)
        }
    }

    fn deployment(containers: Value) -> Value {
        json!({"metadata": {"name": "web", "finalizers": ["a"]},
               "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    fn patch(original: &Value, p: Value) -> Value {
        apply(original, &p, Some(&Stub("io.k8s.api.apps.v1.Deployment"))).unwrap()
    }

    fn containers(v: &Value) -> &Value {
        &v["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let live = deployment(json!([
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "side:1"},
        ]));
        let out = patch(
            &live,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "B", "$patch": "delete"}]},
            ]}}}}),
        );
        assert_eq!(
            containers(&out),
            &json!([
                {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "side:1"},
            ])
        );
        assert_eq!(out["spec"]["replicas"], 1, "untouched fields stay");
    }

    #[test]
    fn a_new_keyed_element_is_appended_and_null_deletes_a_field() {
        let live = deployment(json!([{"name": "app", "image": "app:1", "args": ["x"]}]));
        let out = patch(
            &live,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "args": null}, {"name": "new", "image": "new:1"},
            ]}}}}),
        );
        assert_eq!(
            containers(&out),
            &json!([{"name": "app", "image": "app:1"}, {"name": "new", "image": "new:1"}])
        );
    }

    #[test]
    fn lists_without_a_rule_replace() {
        let live = deployment(json!([{"name": "app", "args": ["a", "b"]}]));
        let out = patch(
            &live,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["c"]}]}}}}),
        );
        assert_eq!(containers(&out)[0]["args"], json!(["c"]));
    }

    #[test]
    fn patch_replace_on_a_list_and_on_a_map() {
        let live = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let out = patch(
            &live,
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "c"}]}}}}),
        );
        assert_eq!(containers(&out), &json!([{"name": "c"}]));
        let out = patch(&live, json!({"spec": {"$patch": "replace", "replicas": 3}}));
        assert_eq!(out["spec"], json!({"replicas": 3}));
    }

    #[test]
    fn patch_delete_on_a_map_removes_it() {
        let live = deployment(json!([]));
        let out = patch(&live, json!({"spec": {"template": {"$patch": "delete"}}}));
        assert!(out["spec"].get("template").is_none());
        assert_eq!(out["spec"]["replicas"], 1);
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        let live = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let out = patch(
            &live,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                "containers": [{"name": "c"}],
            }}}}),
        );
        assert_eq!(
            containers(&out),
            &json!([{"name": "c"}, {"name": "b"}, {"name": "a"}])
        );
    }

    #[test]
    fn retain_keys_drops_unlisted_live_keys() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = patch(
            &live,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn finalizers_are_a_merged_set_and_delete_from_primitive_list_removes() {
        let live = deployment(json!([]));
        let out = patch(&live, json!({"metadata": {"finalizers": ["b", "a"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        let out = patch(
            &out,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn a_map_with_strategy_replace_is_replaced_whole() {
        let live = json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let out = apply(
            &live,
            &json!({"spec": {"selector": {"matchExpressions": []}}}),
            Some(&Stub("io.k8s.api.policy.v1.PodDisruptionBudget")),
        )
        .unwrap();
        assert_eq!(
            out["spec"],
            json!({"minAvailable": 1, "selector": {"matchExpressions": []}})
        );
    }

    #[test]
    fn unknown_types_merge_maps_and_replace_lists() {
        let live = json!({"data": {"a": "1"}, "items": [1, 2]});
        let out = apply::<Stub>(&live, &json!({"data": {"b": "2"}, "items": [3]}), None).unwrap();
        assert_eq!(out, json!({"data": {"a": "1", "b": "2"}, "items": [3]}));
    }

    #[test]
    fn a_keyed_element_without_its_key_is_an_error() {
        let live = deployment(json!([]));
        let err = apply(
            &live,
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            Some(&Stub("io.k8s.api.apps.v1.Deployment")),
        )
        .unwrap_err();
        assert!(
            err.0.contains("does not contain declared merge key: name"),
            "{err:?}"
        );
    }
}

//! Make-before-break for Kubernetes objects ([`KindDef::expand`] of
//! `kube.manifest`): the interim `yaml` of an update holds every desired
//! object with what its prior version had and the desired one lacks still
//! in it, and every prior object the update would delete. Pure.
//!
//! "What it had" is found the way Kubernetes merges lists by key: lists of
//! tables that each carry a `name` (DestinationRule subsets, containers,
//! ports) are merged item by item, so a subset the update drops stays in
//! the interim object beside the ones it adds. Other lists and scalars take
//! the desired value: they have no identity to keep an old item by.
//!
//! [`KindDef::expand`]: crate::provider::KindDef::expand

use serde_json::Map;

use crate::{Attrs, Value};

/// The `kube.manifest` attribute holding the objects.
const OBJECTS: &str = "yaml";

/// The interim attributes between `prior` and `desired`: `desired`, with
/// the objects of `yaml` merged as the module says.
pub fn interim(prior: &Attrs, desired: &Attrs) -> Attrs {
    let mut out = desired.clone();
    if let (Some(Value::Array(had)), Some(Value::Array(want))) = (prior.get(OBJECTS), desired.get(OBJECTS)) {
        out.insert(OBJECTS.to_string(), Value::Array(union_objects(had, want)));
    }
    out
}

/// What identifies an object: apiVersion, kind, namespace and name.
fn object_key(object: &Value) -> Option<[&str; 4]> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    Some([
        text("/apiVersion")?,
        text("/kind")?,
        text("/metadata/namespace").unwrap_or(""),
        text("/metadata/name")?,
    ])
}

/// The desired objects, each merged with its prior version, then the prior
/// objects no longer desired.
fn union_objects(had: &[Value], want: &[Value]) -> Vec<Value> {
    let prior_of = |w: &Value| {
        let key = object_key(w)?;
        had.iter().find(|h| object_key(h) == Some(key))
    };
    let mut out: Vec<Value> = want
        .iter()
        .map(|w| prior_of(w).map_or_else(|| w.clone(), |h| merge(h, w)))
        .collect();
    out.extend(
        had.iter()
            .filter(|h| object_key(h).is_none_or(|key| !want.iter().any(|w| object_key(w) == Some(key))))
            .cloned(),
    );
    out
}

/// `want` with what `had` has and it lacks: table keys, and items of
/// named lists.
fn merge(had: &Value, want: &Value) -> Value {
    match (had, want) {
        (Value::Object(h), Value::Object(w)) => {
            let mut out = Map::new();
            for (k, v) in w {
                let merged = h.get(k).map_or_else(|| v.clone(), |old| merge(old, v));
                out.insert(k.clone(), merged);
            }
            for (k, v) in h {
                if !w.contains_key(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Object(out)
        }
        (Value::Array(h), Value::Array(w))
            if is_named_list(h) && w.iter().all(|i| item_name(i).is_some()) =>
        {
            let mut out: Vec<Value> = w
                .iter()
                .map(|item| {
                    let old = h.iter().find(|o| item_name(o) == item_name(item));
                    old.map_or_else(|| item.clone(), |o| merge(o, item))
                })
                .collect();
            out.extend(
                h.iter()
                    .filter(|o| !w.iter().any(|item| item_name(item) == item_name(o)))
                    .cloned(),
            );
            Value::Array(out)
        }
        _ => want.clone(),
    }
}

/// A list whose items are tables that each have a `name`.
fn is_named_list(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| item_name(i).is_some())
}

/// The `name` of a list item that is a table.
fn item_name(item: &Value) -> Option<&str> {
    item.as_object()?.get("name")?.as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(subsets: &[&str]) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {
                "host": "reviews",
                "subsets": subsets
                    .iter()
                    .map(|s| json!({"name": s, "labels": {"version": s}}))
                    .collect::<Vec<_>>(),
            }
        })
    }

    fn attrs(objects: Vec<Value>) -> Attrs {
        let mut a = Attrs::new();
        a.insert("cluster".into(), json!({"kubeconfig_context": "c"}));
        a.insert("yaml".into(), Value::Array(objects));
        a
    }

    fn subsets(a: &Attrs, object: usize) -> Vec<String> {
        a["yaml"][object]["spec"]["subsets"]
            .as_array()
            .map(|items| items.iter().filter_map(item_name).map(str::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_swap_of_subsets_keeps_the_old_one_beside_the_new() {
        let got = interim(
            &attrs(vec![rule(&["v1", "v2"])]),
            &attrs(vec![rule(&["v1", "v3"])]),
        );
        assert_eq!(subsets(&got, 0), ["v1", "v3", "v2"]);
    }

    #[test]
    fn an_update_that_only_adds_is_its_own_interim() {
        let desired = attrs(vec![rule(&["v1", "v3"])]);
        assert_eq!(interim(&attrs(vec![rule(&["v1"])]), &desired), desired);
    }

    #[test]
    fn a_removal_only_interim_is_the_prior_object() {
        let prior = attrs(vec![rule(&["v1", "v3"])]);
        assert_eq!(interim(&prior, &attrs(vec![rule(&["v1"])])), prior);
    }

    #[test]
    fn objects_the_update_drops_stay_and_unnamed_lists_and_scalars_take_the_desired_value() {
        let route = |weights: &[(&str, u32)]| {
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "bookinfo"},
                "spec": {"http": [{"route": weights
                    .iter()
                    .map(|(s, w)| json!({"destination": {"host": "reviews", "subset": s}, "weight": w}))
                    .collect::<Vec<_>>()}]}
            })
        };
        let got = interim(
            &attrs(vec![route(&[("v1", 50), ("v2", 50)]), rule(&["v1", "v2"])]),
            &attrs(vec![route(&[("v1", 100)])]),
        );
        assert_eq!(got["yaml"][0], route(&[("v1", 100)]));
        assert_eq!(got["yaml"][1], rule(&["v1", "v2"]));
    }

    #[test]
    fn table_keys_the_update_drops_stay_and_changed_ones_take_the_desired_value() {
        let mut old = rule(&["v1"]);
        old["spec"]["trafficPolicy"] = json!({"tls": {"mode": "ISTIO_MUTUAL"}});
        old["spec"]["host"] = json!("reviews.old");
        let got = interim(&attrs(vec![old]), &attrs(vec![rule(&["v1"])]));
        assert_eq!(
            got["yaml"][0]["spec"]["trafficPolicy"]["tls"]["mode"],
            "ISTIO_MUTUAL"
        );
        assert_eq!(got["yaml"][0]["spec"]["host"], "reviews");
    }
}

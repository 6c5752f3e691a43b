//! A stand-in for the ReplicaSets the Deployment controller keeps, for
//! clients that look at them: Helm 3's `--wait` finds a Deployment's new
//! ReplicaSet (one the Deployment controls, by a controller
//! ownerReference, whose pod template equals the Deployment's apart from
//! the `pod-template-hash` label) and waits until its `readyReplicas`
//! reach the Deployment's replicas (less maxUnavailable). Run after the
//! Deployment controller of `controllers.rs`, each change its own write:
//!
//! - every Deployment not being deleted has its current ReplicaSet
//!   `<deployment>-<hash of its template>` (the name the Deployment's
//!   conditions give), owned by it, with its selector and template plus
//!   `pod-template-hash`, `spec.replicas` = the Deployment's, and
//!   `status.readyReplicas`/`availableReplicas` those of the Deployment
//!   once its rollout is complete, 0 before (so ready exactly when the
//!   Deployment's rollout is);
//! - its other ReplicaSets (of earlier templates) are scaled to 0;
//! - ReplicaSets whose controlling Deployment is gone (or being deleted)
//!   are deleted: a garbage collector for this one owner kind only.
//!
//! No Pods are made.

use super::apply::{Part, record_update};
use super::store::{Key, State, is_deleting};
use super::util::{now_rfc3339, short_hash, str_at};
use serde_json::{Value, json};

const MANAGER: &str = "kube-controller-manager";
const HASH_LABEL: &str = "pod-template-hash";

/// The hash the ReplicaSet of `template` carries (and is named by).
fn template_hash(template: &Value) -> String {
    short_hash(&template.to_string(), 10)
}

/// The uid of the Deployment controlling `rs`, if one does.
fn controller_uid(rs: &Value) -> Option<String> {
    rs.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true && r["kind"] == "Deployment")
        .and_then(|r| r["uid"].as_str())
        .map(str::to_string)
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Drops zero counts, as the real status does.
fn counts(pairs: &[(&str, i64)]) -> Value {
    let mut status = json!({});
    for (k, v) in pairs {
        if *v != 0 {
            status[*k] = json!(v);
        }
    }
    status
}

/// Keeps every Deployment's ReplicaSets as described in the module docs.
pub fn reconcile(state: &mut State) {
    let Some(rs_ty) = state.type_of("apps", "replicasets") else {
        return;
    };
    let deployments = state.list("apps", "deployments", None);
    let live: Vec<(String, &Value)> = deployments
        .iter()
        .filter(|(_, d)| !is_deleting(d))
        .filter_map(|(_, d)| Some((str_at(d, &["metadata", "uid"])?.to_string(), d)))
        .collect();

    // Orphans: their Deployment is gone.
    for (key, rs) in state.list("apps", "replicasets", None) {
        let Some(owner) = controller_uid(&rs) else {
            continue;
        };
        if !live.iter().any(|(uid, _)| *uid == owner) && !is_deleting(&rs) {
            let _ = state.delete(&rs_ty, &key, &Value::Null, false);
        }
    }

    for (uid, dep) in live {
        let namespace = str_at(dep, &["metadata", "namespace"]).unwrap_or_default();
        let name = str_at(dep, &["metadata", "name"]).unwrap_or_default();
        let template = dep
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = template_hash(&template);
        let current_name = format!("{name}-{hash}");
        let replicas = dep.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
        // The Deployment's ready pods are the current ReplicaSet's only once
        // its rollout is complete; until then they are the old ones'.
        let (ready, available) = if super::controllers::is_complete(dep) {
            (
                int_at(dep, "/status/readyReplicas"),
                int_at(dep, "/status/availableReplicas"),
            )
        } else {
            (0, 0)
        };

        for (key, rs) in state.list("apps", "replicasets", Some(namespace)) {
            if key.name != current_name && controller_uid(&rs).as_deref() == Some(uid.as_str()) {
                let mut next = rs.clone();
                next["spec"]["replicas"] = json!(0);
                if next != rs {
                    record_update(&rs_ty, Some(&rs), &mut next, MANAGER, Part::Main);
                    state.commit(&rs_ty, next, false);
                }
                let rs = state.get(&key).cloned().unwrap_or(rs);
                let status = counts(&[("observedGeneration", int_at(&rs, "/metadata/generation"))]);
                write_status(state, &rs_ty, &key, status);
            }
        }

        let key = Key::new(&rs_ty, namespace, &current_name);
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        labels[HASH_LABEL] = json!(hash);
        let mut rs_template = template.clone();
        rs_template["metadata"]["labels"] = labels.clone();
        let mut selector = dep
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let spec = json!({"replicas": replicas, "selector": selector, "template": rs_template});
        match state.get(&key).cloned() {
            None => {
                let mut rs = json!({
                    "metadata": {
                        "name": current_name,
                        "namespace": namespace,
                        "uid": uuid::Uuid::new_v4().to_string(),
                        "creationTimestamp": now_rfc3339(),
                        "labels": labels,
                        "ownerReferences": [{
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": uid,
                            "controller": true,
                            "blockOwnerDeletion": true,
                        }],
                    },
                    "spec": spec,
                });
                record_update(&rs_ty, None, &mut rs, MANAGER, Part::Main);
                state.commit(&rs_ty, rs, false);
            }
            Some(rs) if rs["spec"] != spec => {
                let mut next = rs.clone();
                next["spec"] = spec;
                record_update(&rs_ty, Some(&rs), &mut next, MANAGER, Part::Main);
                state.commit(&rs_ty, next, false);
            }
            Some(_) => {}
        }
        let rs = state.get(&key).cloned().unwrap_or_default();
        let status = counts(&[
            ("replicas", replicas),
            ("fullyLabeledReplicas", replicas),
            ("readyReplicas", ready.min(replicas)),
            ("availableReplicas", available.min(replicas)),
            ("observedGeneration", int_at(&rs, "/metadata/generation")),
        ]);
        write_status(state, &rs_ty, &key, status);
    }
}

/// Writes `status` through the `/status` part when it differs.
fn write_status(state: &mut State, ty: &super::kinds::ResourceType, key: &Key, status: Value) {
    let Some(old) = state.get(key).cloned() else {
        return;
    };
    if old["status"] == status {
        return;
    }
    let mut new = old.clone();
    new["status"] = status;
    record_update(ty, Some(&old), &mut new, MANAGER, Part::Status);
    state.commit(ty, new, false);
}

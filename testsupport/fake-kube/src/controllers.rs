//! What the cluster's controllers would do, run by the fake itself right
//! after each write (and on a 10 ms tick for timed steps), each as its own
//! write with its own resourceVersion and MODIFIED/DELETED event, as on a
//! real cluster where they are separate actors. A write's response shows
//! the object as written; a read or watch afterwards sees the controllers'
//! changes.
//!
//! - CRDs: status.acceptedNames and `NamesAccepted=True` at once;
//!   `Established=False (Installing)` until the establish delay has passed
//!   (default 0: at once), then `Established=True` and the kind is served.
//!   A deleted CRD (it carries the `customresourcecleanup` finalizer) has
//!   its custom resources deleted; once they are all gone the finalizer is
//!   dropped and the CRD removed.
//! - Namespaces: a deleted Namespace is `Terminating`; every object in it
//!   is deleted (objects with finalizers wait for them); once it is empty
//!   its `kubernetes` finalizer is dropped and, if it has no other
//!   finalizers, it is removed.
//! - Deployments: whenever `status.observedGeneration` lags
//!   `metadata.generation`, the status is set to an in-progress rollout:
//!   `replicas`/`updatedReplicas` = spec.replicas, `unavailableReplicas`,
//!   `Available=False (MinimumReplicasUnavailable)` for a new Deployment
//!   (an already-available one stays `Available=True` with its ready
//!   replicas, plus one new surge replica not yet ready: `replicas` =
//!   spec.replicas + 1, `updatedReplicas` = 1), and
//!   `Progressing=True (ReplicaSetUpdated)`. It becomes complete only by
//!   [`complete_deployment`] (the test's `complete_deployments()`, or
//!   automatically with `set_auto_complete_deployments(true)`). A
//!   Deployment with 0 replicas completes at once, as on a cluster.
//! - LoadBalancer Services get `status.loadBalancer.ingress[].hostname`
//!   only when the test calls `complete_load_balancers()`.
//!
//! - ReplicaSets of Deployments: see `replicasets.rs`.
//!
//! There is no garbage collector (ownerReferences are not followed, but
//! for a Deployment's ReplicaSets), no Pods, and no other controller.

use super::apply::{Part, record_update};
use super::kinds::{ResourceType, has_condition};
use super::store::{Key, State, is_deleting};
use super::util::{now_rfc3339, short_hash, str_at};
use serde_json::{Value, json};
use std::time::Instant;

const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const API_SERVER: &str = "kube-apiserver";

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    })
}

/// Writes a status change as `manager` through the `/status` part.
fn write_status(state: &mut State, ty: &ResourceType, key: &Key, status: Value, manager: &str) {
    let Some(old) = state.get(key).cloned() else {
        return;
    };
    let mut new = old.clone();
    new["status"] = status;
    record_update(ty, Some(&old), &mut new, manager, Part::Status);
    state.commit(ty, new, false);
}

/// Runs every controller until nothing changes.
pub fn reconcile(state: &mut State) {
    for _ in 0..1000 {
        let before = state.rv;
        crds(state);
        terminating(state);
        deployments(state);
        super::replicasets::reconcile(state);
        if state.auto_complete_load_balancers {
            complete_load_balancers(state);
        }
        if state.rv == before {
            return;
        }
    }
    panic!("fake kube controllers did not settle");
}

fn crd_type(state: &State) -> ResourceType {
    state
        .type_of("apiextensions.k8s.io", "customresourcedefinitions")
        .expect("built-in")
}

fn crds(state: &mut State) {
    let ty = crd_type(state);
    for (key, crd) in state.list(&ty.group, &ty.plural, None) {
        if is_deleting(&crd) {
            continue;
        }
        if !has_condition(&crd, "NamesAccepted") {
            let mut status = crd["status"].clone();
            status["acceptedNames"] = crd["spec"]["names"].clone();
            let due = Instant::now() + state.crd_establish_delay;
            state.establish_due.insert(key.name.clone(), due);
            status["conditions"] = json!([
                condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                condition(
                    "Established",
                    "False",
                    "Installing",
                    "the initial names have been accepted"
                ),
            ]);
            write_status(state, &ty, &key, status, API_SERVER);
        }
        let due = state.establish_due.get(&key.name).copied();
        if due.is_some_and(|d| d <= Instant::now()) {
            state.establish_due.remove(&key.name);
            let crd = state.get(&key).cloned().expect("exists");
            let mut status = crd["status"].clone();
            let Some(conds) = status["conditions"].as_array_mut() else {
                continue;
            };
            conds.retain(|c| c["type"] != "Established");
            conds.push(condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ));
            write_status(state, &ty, &key, status, API_SERVER);
        }
    }
}

/// Deletes what a terminating Namespace or CRD contains, then lets it go.
fn terminating(state: &mut State) {
    let crd_ty = crd_type(state);
    let ns_ty = state.type_of("", "namespaces").expect("built-in");
    for (key, crd) in state.list(&crd_ty.group, &crd_ty.plural, None) {
        if !is_deleting(&crd) {
            continue;
        }
        let group = str_at(&crd, &["spec", "group"]).unwrap_or_default().to_string();
        let plural = str_at(&crd, &["spec", "names", "plural"])
            .unwrap_or_default()
            .to_string();
        let children = state.list(&group, &plural, None);
        if let Some(child_ty) = state.type_of(&group, &plural) {
            for (ck, child) in &children {
                if !is_deleting(child) {
                    let _ = state.delete(&child_ty, ck, &Value::Null, false);
                }
            }
        }
        if state.list(&group, &plural, None).is_empty() {
            let mut next = crd.clone();
            if let Some(fins) = next["metadata"]["finalizers"].as_array_mut() {
                fins.retain(|f| f != "customresourcecleanup.apiextensions.k8s.io");
            }
            record_update(&crd_ty, Some(&crd), &mut next, API_SERVER, Part::Main);
            state.commit(&crd_ty, next, false);
            state.establish_due.remove(&key.name);
        }
    }
    for (_, ns) in state.list("", "namespaces", None) {
        if !is_deleting(&ns) {
            continue;
        }
        let name = str_at(&ns, &["metadata", "name"]).unwrap_or_default().to_string();
        let inside: Vec<(Key, Value)> = state
            .objects
            .iter()
            .filter(|(k, _)| k.namespace == name)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, obj) in &inside {
            if !is_deleting(obj)
                && let Some(ty) = state.type_of(&k.group, &k.plural)
            {
                let _ = state.delete(&ty, k, &Value::Null, false);
            }
        }
        if !state.objects.keys().any(|k| k.namespace == name) {
            let mut next = ns.clone();
            next["spec"]["finalizers"] = json!([]);
            state.commit(&ns_ty, next, false);
        }
    }
}

fn replicas(dep: &Value) -> i64 {
    dep.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// `ReplicaSet "web-7d9c8b6f5x"`: the name the current template's
/// ReplicaSet would have.
fn replica_set_name(dep: &Value) -> String {
    let name = str_at(dep, &["metadata", "name"]).unwrap_or_default();
    let template = dep.pointer("/spec/template").cloned().unwrap_or_default();
    format!("{name}-{}", short_hash(&template.to_string(), 10))
}

/// Drops zero counts, as the real status does.
fn counts(status: &mut Value, pairs: &[(&str, i64)]) {
    for (k, v) in pairs {
        if *v != 0 {
            status[*k] = json!(v);
        }
    }
}

fn deployments(state: &mut State) {
    let Some(ty) = state.type_of("apps", "deployments") else {
        return;
    };
    for (key, dep) in state.list("apps", "deployments", None) {
        let observed = dep.pointer("/status/observedGeneration").and_then(Value::as_i64);
        let up_to_date = observed == Some(generation(&dep));
        if is_deleting(&dep) {
            continue;
        }
        if state.auto_complete_deployments || replicas(&dep) == 0 {
            if !is_complete(&dep) {
                complete_deployment(state, &ty, &key);
            }
        } else if !up_to_date {
            let n = replicas(&dep);
            let was_available = has_condition(&dep, "Available");
            let mut status = json!({"observedGeneration": generation(&dep)});
            let ready = if was_available {
                dep.pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            } else {
                0
            };
            // A rollout replacing available pods is seen as a real one
            // starts (maxSurge 1): one new pod, not ready, beside the old
            // ones, so that clients counting replicas (kstatus, kubectl
            // rollout status) see it in progress.
            let (total, updated) = if was_available { (n + 1, n.min(1)) } else { (n, n) };
            counts(
                &mut status,
                &[
                    ("replicas", total),
                    ("updatedReplicas", updated),
                    ("readyReplicas", ready),
                    ("availableReplicas", ready),
                    ("unavailableReplicas", total - ready),
                ],
            );
            let available = if was_available {
                condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            } else {
                condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            };
            let progressing = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{}\" is progressing.", replica_set_name(&dep)),
            );
            status["conditions"] = json!([available, progressing]);
            write_status(state, &ty, &key, status, CONTROLLER_MANAGER);
        }
    }
}

/// Observed the current generation and Progressing=NewReplicaSetAvailable.
pub fn is_complete(dep: &Value) -> bool {
    let observed = dep.pointer("/status/observedGeneration").and_then(Value::as_i64);
    let progressed = dep
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable")
        });
    observed == Some(generation(dep)) && progressed
}

/// Marks one Deployment's rollout finished: every replica updated, ready
/// and available; `Available=True`, `Progressing=True
/// (NewReplicaSetAvailable)`.
pub fn complete_deployment(state: &mut State, ty: &ResourceType, key: &Key) {
    let Some(dep) = state.get(key).cloned() else {
        return;
    };
    let n = replicas(&dep);
    let mut status = json!({"observedGeneration": generation(&dep)});
    counts(
        &mut status,
        &[
            ("replicas", n),
            ("updatedReplicas", n),
            ("readyReplicas", n),
            ("availableReplicas", n),
        ],
    );
    status["conditions"] = json!([
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability."
        ),
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!(
                "ReplicaSet \"{}\" has successfully progressed.",
                replica_set_name(&dep)
            ),
        ),
    ]);
    write_status(state, ty, key, status, CONTROLLER_MANAGER);
}

/// Completes every Deployment that is not complete.
pub fn complete_deployments(state: &mut State) {
    let Some(ty) = state.type_of("apps", "deployments") else {
        return;
    };
    for (key, dep) in state.list("apps", "deployments", None) {
        if !is_complete(&dep) && !is_deleting(&dep) {
            complete_deployment(state, &ty, &key);
        }
    }
}

/// Gives every LoadBalancer Service without one an ingress hostname.
pub fn complete_load_balancers(state: &mut State) {
    let Some(ty) = state.type_of("", "services") else {
        return;
    };
    for (key, svc) in state.list("", "services", None) {
        let is_lb = str_at(&svc, &["spec", "type"]) == Some("LoadBalancer");
        let has_ingress = svc
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if is_lb && !has_ingress && !is_deleting(&svc) {
            let uid = str_at(&svc, &["metadata", "uid"]).unwrap_or_default();
            let host = format!(
                "{}-{}-{}.elb.fake-kube.invalid",
                key.name,
                key.namespace,
                short_hash(uid, 8)
            );
            let status = json!({"loadBalancer": {"ingress": [{"hostname": host}]}});
            write_status(state, &ty, &key, status, "service-controller");
        }
    }
}

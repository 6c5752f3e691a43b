//! Waiting for in-cluster objects: until they are ready (a
//! CustomResourceDefinition Established, a Deployment rolled out) or gone
//! (after a delete, while finalizers run).
//!
//! The in-cluster kinds return only once what they made is usable or gone,
//! so that the resources depending on them start (or are deleted) in the
//! right order. Every wait watches the one object (`await_condition`: a
//! list then a watch filtered by name) instead of polling, reports each new
//! state through the operation's progress, and gives up after a timeout
//! with an error naming the object, what was awaited and the last state
//! seen (for a delete, the finalizers holding the object).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::runtime::wait::{self, await_condition};

use super::objects::ObjectKey;
use crate::Value;
use crate::provider::{Progress, ProviderError};

tokio::task_local! {
    /// A shorter delete timeout for the operations run inside
    /// [`with_delete_timeout`].
    static DELETE_TIMEOUT: Duration;
}

/// Runs `f` with every in-cluster delete wait in it limited to `timeout`
/// instead of its usual limit (five minutes for a namespace, the
/// manifest's `wait_timeout_seconds` for its objects). An internal
/// parameter, for tests of objects held by finalizers.
pub async fn with_delete_timeout<F: Future>(timeout: Duration, f: F) -> F::Output {
    DELETE_TIMEOUT.scope(timeout, f).await
}

/// How long a delete waits: `default`, unless the operation runs inside
/// [`with_delete_timeout`].
pub fn delete_timeout(default: Duration) -> Duration {
    DELETE_TIMEOUT.try_with(|d| *d).unwrap_or(default)
}

/// Where an object stands with respect to a wait.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// What was awaited has happened.
    Done,
    /// Not yet; the text says where the object stands (for progress
    /// messages and for the timeout error).
    Pending(String),
    /// It will not happen by waiting; the text says why.
    Failed(String),
}

/// Whether a CustomResourceDefinition is Established (its kind served);
/// fails when its names were not accepted.
pub fn crd_state(crd: Option<&Value>) -> State {
    let Some(crd) = crd else {
        return State::Pending("not found".into());
    };
    let conditions = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c["type"] == t);
    if find("Established").is_some_and(|c| c["status"] == "True") {
        return State::Done;
    }
    if let Some(c) = find("NamesAccepted").filter(|c| c["status"] == "False") {
        return State::Failed(format!(
            "its names were not accepted: {}",
            c["message"].as_str().unwrap_or("no reason given")
        ));
    }
    match find("Established") {
        Some(c) => State::Pending(format!(
            "Established is {} ({})",
            c["status"].as_str().unwrap_or("unknown"),
            c["reason"].as_str().unwrap_or("no reason")
        )),
        None => State::Pending("no Established condition yet".into()),
    }
}

/// Whether a Deployment has rolled out: its controller has seen the latest
/// generation, every wanted replica is updated, ready and available, no
/// old replica is left, and (when it reports one) its Progressing condition
/// says the new ReplicaSet is available. Fails once the rollout exceeded
/// its progress deadline.
pub fn deployment_state(dep: Option<&Value>) -> State {
    let Some(dep) = dep else {
        return State::Pending("not found".into());
    };
    let int = |path: &str| dep.pointer(path).and_then(Value::as_i64);
    let generation = int("/metadata/generation").unwrap_or(0);
    let observed = int("/status/observedGeneration").unwrap_or(0);
    let conditions = dep
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let progressing = conditions.iter().find(|c| c["type"] == "Progressing");
    if let Some(c) = progressing.filter(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return State::Failed(format!(
            "the rollout exceeded its progress deadline: {}",
            c["message"].as_str().unwrap_or("no message")
        ));
    }
    if observed < generation {
        return State::Pending(format!(
            "the controller has not yet seen generation {generation} (observed {observed})"
        ));
    }
    let want = int("/spec/replicas").unwrap_or(1);
    let count = |field: &str| int(&format!("/status/{field}")).unwrap_or(0);
    let (total, updated, ready, available) = (
        count("replicas"),
        count("updatedReplicas"),
        count("readyReplicas"),
        count("availableReplicas"),
    );
    let counts =
        format!("{updated}/{want} replicas updated, {ready}/{want} ready, {available}/{want} available");
    if updated < want || ready < want || available < want {
        return State::Pending(counts);
    }
    if total > updated {
        return State::Pending(format!(
            "{} old replicas are pending termination",
            total - updated
        ));
    }
    if progressing.is_some_and(|c| c["reason"] != "NewReplicaSetAvailable") {
        return State::Pending(format!(
            "{counts}; Progressing: {}",
            progressing
                .and_then(|c| c["reason"].as_str())
                .unwrap_or("no reason")
        ));
    }
    State::Done
}

/// A check of an object (`None` when it does not exist) for a wait.
pub type Check = fn(Option<&Value>) -> State;

/// The readiness wait an object needs before dependents may use it:
/// `(what is awaited, the check)`. `None` for kinds usable once applied.
pub fn readiness(key: &ObjectKey) -> Option<(&'static str, Check)> {
    match (key.group(), key.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Some(("to be Established", crd_state)),
        ("apps", "Deployment") => Some(("to roll out", deployment_state)),
        _ => None,
    }
}

/// The finalizers holding an object, for messages: `metadata.finalizers`
/// and, for a Namespace, `spec.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    let list = |path: &str, label: &str| -> Vec<String> {
        obj.pointer(path)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|f| format!("{f} ({label})"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut all = list("/metadata/finalizers", "metadata.finalizers");
    all.extend(list("/spec/finalizers", "spec.finalizers"));
    all
}

/// Whether an object that meshform deleted is gone: absent, or replaced by
/// a new object of the same name (another uid).
fn gone_state(obj: Option<&Value>, uid: Option<&str>) -> State {
    let Some(obj) = obj else {
        return State::Done;
    };
    if uid.is_some() && obj.pointer("/metadata/uid").and_then(Value::as_str) != uid {
        return State::Done;
    }
    let fins = finalizers(obj);
    if fins.is_empty() {
        State::Pending("still there (no finalizers left)".into())
    } else {
        State::Pending(format!("it is held by finalizers: {}", fins.join(", ")))
    }
}

/// Waits until `check` says Done for the object `name` of `api`, reporting
/// each new state as "waiting for {subject} {what}: {state}". Fails with
/// [`ProviderError::Timeout`] after `timeout`, naming the last state seen.
pub async fn wait_for(
    api: Api<DynamicObject>,
    name: &str,
    subject: &str,
    what: &str,
    timeout: Duration,
    progress: &Progress,
    check: impl Fn(Option<&Value>) -> State + Sync,
) -> Result<(), ProviderError> {
    // The last state seen, and how the wait ended (Done or Failed).
    let last = Mutex::new(String::from("not seen yet"));
    let outcome = Mutex::new(None::<State>);
    let condition = |obj: Option<&DynamicObject>| {
        let state = match obj.map(serde_json::to_value).transpose() {
            Ok(value) => check(value.as_ref()),
            Err(e) => State::Failed(format!("cannot read the object: {e}")),
        };
        match state {
            State::Pending(state) => {
                let mut last = lock(&last);
                if *last != state {
                    progress.report(&format!("waiting for {subject} {what}: {state}"));
                    *last = state;
                }
                false
            }
            finished => {
                *lock(&outcome) = Some(finished);
                true
            }
        }
    };
    // A watch can miss the last event (a dropped stream, or an object
    // removed between the initial list and the watch), so the object is
    // also re-read every few seconds; whichever sees the end first wins.
    let poll = async {
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            match api.get_opt(name).await {
                Ok(obj) if condition(obj.as_ref()) => return,
                _ => {}
            }
        }
    };
    let watch = async {
        loop {
            match await_condition(api.clone(), name, &condition).await {
                Ok(_) => return Ok(()),
                Err(wait::Error::ProbeFailed(e)) => {
                    if let Some((reason, message)) = fatal_watch_error(&e) {
                        return Err(ProviderError::Api {
                            operation: format!("watch {subject}"),
                            code: Some(reason),
                            message,
                        });
                    }
                    // Transient (a dropped connection): watch again.
                    *lock(&last) = format!("watch interrupted: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    };
    let either = async {
        tokio::select! {
            r = watch => r,
            () = poll => Ok(()),
        }
    };
    match tokio::time::timeout(timeout, either).await {
        Ok(Ok(())) => match lock(&outcome).take() {
            Some(State::Failed(why)) => Err(ProviderError::Api {
                operation: format!("wait for {subject} {what}"),
                code: None,
                message: why,
            }),
            _ => Ok(()),
        },
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProviderError::Timeout {
            what: format!("{subject} {what}; {}", lock(&last)),
            seconds: timeout.as_secs(),
        }),
    }
}

/// How often a wait re-reads its object besides watching it.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Locks `m`, ignoring poisoning (the data is a message, always usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until the object meshform deleted (of uid `uid`, when known) is
/// gone. On timeout the error names the finalizers still holding it.
pub async fn wait_gone(
    api: Api<DynamicObject>,
    name: &str,
    uid: Option<&str>,
    subject: &str,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), ProviderError> {
    wait_for(api, name, subject, "to be deleted", timeout, progress, |obj| {
        gone_state(obj, uid)
    })
    .await
}

/// A watch error waiting cannot fix (a 4xx answer such as Forbidden), as
/// `(reason, message)`; `None` for errors worth retrying.
fn fatal_watch_error(e: &kube::runtime::watcher::Error) -> Option<(String, String)> {
    use kube::runtime::watcher::Error as W;
    let status = match e {
        W::InitialListFailed(kube::Error::Api(s))
        | W::WatchStartFailed(kube::Error::Api(s))
        | W::WatchFailed(kube::Error::Api(s)) => s,
        _ => return None,
    };
    let retryable = matches!(status.code, 408 | 410 | 429) || status.code >= 500;
    (!retryable).then(|| (status.reason.clone(), status.message.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"metadata": {"generation": generation}, "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn deployment_rollout_states() {
        let progressing = |reason: &str| json!([{"type": "Progressing", "status": "True", "reason": reason}]);
        let fresh = deployment(
            1,
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "unavailableReplicas": 2,
                   "conditions": progressing("ReplicaSetUpdated")}),
        );
        assert!(matches!(deployment_state(Some(&fresh)), State::Pending(s) if s.contains("0/2 ready")));
        let done_counts = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2});
        let mut rolling = done_counts.clone();
        rolling["conditions"] = progressing("ReplicaSetUpdated");
        assert!(matches!(
            deployment_state(Some(&deployment(2, rolling))),
            State::Pending(s) if s.contains("ReplicaSetUpdated")
        ));
        let mut done = done_counts.clone();
        done["conditions"] = progressing("NewReplicaSetAvailable");
        assert_eq!(deployment_state(Some(&deployment(2, done.clone()))), State::Done);
        assert!(matches!(
            deployment_state(Some(&deployment(3, done))),
            State::Pending(s) if s.contains("generation 3")
        ));
        assert_eq!(deployment_state(Some(&deployment(2, done_counts))), State::Done);
        let stuck = json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "too slow"}]});
        assert!(matches!(
            deployment_state(Some(&deployment(1, stuck))),
            State::Failed(s) if s.contains("too slow")
        ));
        assert!(matches!(deployment_state(None), State::Pending(_)));
    }

    #[test]
    fn crd_states() {
        let crd = |conds: Value| json!({"status": {"conditions": conds}});
        assert_eq!(
            crd_state(Some(&crd(json!([{"type": "Established", "status": "True"}])))),
            State::Done
        );
        assert!(matches!(
            crd_state(Some(&crd(json!([{"type": "Established", "status": "False", "reason": "Installing"}])))),
            State::Pending(s) if s.contains("Installing")
        ));
        assert!(matches!(
            crd_state(Some(&crd(json!([{"type": "NamesAccepted", "status": "False", "message": "clash"}])))),
            State::Failed(s) if s.contains("clash")
        ));
    }

    #[test]
    fn deletion_names_finalizers() {
        let ns = json!({"metadata": {"uid": "u1", "finalizers": ["example.com/hold"]},
                        "spec": {"finalizers": ["kubernetes"]}});
        match gone_state(Some(&ns), Some("u1")) {
            State::Pending(s) => {
                assert!(s.contains("example.com/hold (metadata.finalizers)"), "{s}");
                assert!(s.contains("kubernetes (spec.finalizers)"), "{s}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(gone_state(Some(&ns), Some("u2")), State::Done);
        assert_eq!(gone_state(None, Some("u1")), State::Done);
    }

    #[tokio::test]
    async fn delete_timeout_is_scoped() {
        let default = Duration::from_secs(300);
        assert_eq!(delete_timeout(default), default);
        let inside = with_delete_timeout(Duration::from_secs(2), async { delete_timeout(default) }).await;
        assert_eq!(inside, Duration::from_secs(2));
    }
}

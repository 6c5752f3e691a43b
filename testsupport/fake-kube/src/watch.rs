//! WATCH: `GET <collection>?watch=true` (or `watch=1`) answers 200 at once
//! and keeps the connection open, writing one JSON event per line:
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK","object":{...}}`.
//!
//! - Without `resourceVersion`, or with `"0"`, it starts with an ADDED event
//!   for every current matching object (the real server's "get state and
//!   start at most recent"), then streams later changes.
//! - With `resourceVersion=N` it streams every change after N. The fake
//!   keeps its whole history, so it never answers 410 Gone.
//! - `sendInitialEvents=true` with `resourceVersionMatch=NotOlderThan`
//!   (client-go's WatchList, streaming lists): the current objects as
//!   ADDED, then a BOOKMARK annotated `k8s.io/initial-events-end: "true"`,
//!   then changes. `sendInitialEvents=false` starts at the current state
//!   (or at `resourceVersion`) with no initial events. As on the real
//!   server, `sendInitialEvents` without `resourceVersionMatch=NotOlderThan`,
//!   or `resourceVersionMatch` without `sendInitialEvents`, is a 422.
//! - `labelSelector` and `fieldSelector` (`metadata.name=<n>`, which
//!   kube-rs' `await_condition` uses) filter events; an object modified out
//!   of (into) the selection is sent as DELETED (ADDED), as the real server
//!   does.
//! - `allowWatchBookmarks=true`: a BOOKMARK every [`BOOKMARK_INTERVAL`]
//!   and one just before `timeoutSeconds` closes the stream, each carrying
//!   only `kind`, `apiVersion` and `metadata.resourceVersion` (the latest
//!   resourceVersion the stream has covered), as the real server's do.
//! - `timeoutSeconds` ends the stream after that long; otherwise it lasts
//!   until the client goes away or the fake shuts down.

use super::kinds::ResourceType;
use super::selectors::Selector;
use super::server::Shared;
use super::status::ApiError;
use super::store::{Event, EventType, State};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub enum Start {
    /// Send the current objects as ADDED first.
    Initial,
    /// Send changes after this resourceVersion.
    After(u64),
}

#[derive(Clone, Debug)]
pub struct WatchSpec {
    pub ty: ResourceType,
    pub namespace: Option<String>,
    pub selector: Selector,
    pub start: Start,
    pub initial_events_end_bookmark: bool,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// Objects sent as one-row Tables (`kubectl get --watch`).
    pub table: Option<super::table::WatchTable>,
    pub timeout: Option<Duration>,
}

/// How often a watch that allows bookmarks gets one (the real server sends
/// them about once a minute; the fake more often, so a client sees them).
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// A BOOKMARK: only kind, apiVersion and the resourceVersion reached.
fn bookmark(ty: &ResourceType, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": ty.kind, "apiVersion": ty.api_version(), "metadata": metadata}),
    )
}

fn line(type_: &str, object: Value) -> Bytes {
    let mut s = json!({"type": type_, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

impl WatchSpec {
    fn in_scope(&self, ns: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == ns)
    }

    /// The line this watch sends for an event, if any.
    fn render(&self, e: &Event) -> Option<Bytes> {
        if e.key.group != self.ty.group || e.key.plural != self.ty.plural || !self.in_scope(&e.key.namespace)
        {
            return None;
        }
        let now = self.selector.matches(&e.object);
        let before = e.old.as_ref().is_some_and(|o| self.selector.matches(o));
        let type_ = match e.type_ {
            EventType::Added if now => EventType::Added,
            EventType::Deleted if now || before => EventType::Deleted,
            EventType::Modified => match (before, now) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return None,
            },
            _ => return None,
        };
        Some(line(type_.as_str(), self.object(&e.object)))
    }

    /// An object as this watch sends it.
    fn object(&self, obj: &Value) -> Value {
        let rendered = State::render(&self.ty, obj);
        match &self.table {
            Some(t) => t.wrap(&rendered),
            None => rendered,
        }
    }
}

/// Streams events into `tx` until the timeout, the client leaving, or
/// shutdown (the fake's runtime dropping this task).
pub async fn run(shared: Arc<Shared>, spec: WatchSpec, tx: mpsc::Sender<Bytes>) {
    let mut changes = shared.changed.subscribe();
    changes.borrow_and_update();
    let (mut pending, mut cursor) = shared.with_state(|s| {
        let mut lines = vec![];
        let cursor = match spec.start {
            Start::Initial => {
                for (_, obj) in s.list(&spec.ty.group, &spec.ty.plural, spec.namespace.as_deref()) {
                    if spec.selector.matches(&obj) {
                        lines.push(line("ADDED", spec.object(&obj)));
                    }
                }
                s.rv
            }
            Start::After(rv) => rv,
        };
        if spec.initial_events_end_bookmark {
            lines.push(bookmark(&spec.ty, cursor, true));
        }
        (lines, cursor)
    });
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
    loop {
        for l in pending.drain(..) {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        changes.borrow_and_update();
        let (lines, seen) = shared.with_state(|s| {
            let from = s.events.partition_point(|e| e.rv <= cursor);
            let lines: Vec<Bytes> = s.events[from..].iter().filter_map(|e| spec.render(e)).collect();
            (lines, s.rv)
        });
        cursor = seen;
        if !lines.is_empty() {
            pending = lines;
            continue;
        }
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let periodic = async {
            if spec.bookmarks {
                tokio::time::sleep_until(next_bookmark).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = periodic => {
                next_bookmark = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
                pending.push(bookmark(&spec.ty, cursor, false));
            }
            _ = timeout => {
                if spec.bookmarks {
                    let _ = tx.send(bookmark(&spec.ty, cursor, false)).await;
                }
                return;
            }
            _ = tx.closed() => return,
        }
    }
}
/// `sendInitialEvents` as a flag, after the real server's checks of it
/// with `resourceVersionMatch` on a watch (422 `ListOptions` Invalid).
pub fn check_watch_list_options(
    send_initial_events: Option<&str>,
    resource_version_match: Option<&str>,
) -> Result<Option<bool>, ApiError> {
    let send = send_initial_events.map(|v| v == "true");
    let matching = resource_version_match.filter(|m| !m.is_empty());
    let mut causes: Vec<(&str, &str, String)> = vec![];
    if send.is_some() && matching != Some("NotOlderThan") {
        causes.push((
            "resourceVersionMatch",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
        ));
    }
    if let Some(m) = matching {
        if send.is_none() {
            causes.push((
                "resourceVersionMatch",
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
                    .into(),
            ));
        }
        if m != "NotOlderThan" {
            causes.push((
                "resourceVersionMatch",
                "FieldValueNotSupported",
                format!("Unsupported value: {m:?}: supported values: \"NotOlderThan\""),
            ));
        }
    }
    if causes.is_empty() {
        Ok(send)
    } else {
        Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", &causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_list_needs_not_older_than() {
        assert_eq!(
            check_watch_list_options(Some("true"), Some("NotOlderThan")).unwrap(),
            Some(true)
        );
        assert_eq!(check_watch_list_options(None, None).unwrap(), None);
        assert_eq!(
            check_watch_list_options(Some("true"), None).unwrap_err().code,
            422
        );
        assert_eq!(
            check_watch_list_options(None, Some("NotOlderThan"))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            check_watch_list_options(Some("true"), Some("Exact"))
                .unwrap_err()
                .code,
            422
        );
    }
}

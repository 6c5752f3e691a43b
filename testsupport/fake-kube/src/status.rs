//! Failures as the real API server reports them: a `Status` object
//! (`kind: Status`, `apiVersion: v1`, `status: Failure`) with the HTTP code,
//! a machine-readable `reason`, the server's wording of `message`, and
//! `details` (name, group, kind, causes). kube-rs parses this body into
//! `kube::Error::Api`, so client code sees the same errors it would see
//! against a cluster.

use serde_json::{Value, json};

/// An API failure, turned into a `Status` body by [`ApiError::to_json`].
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

/// `configmaps` for the core group, `deployments.apps` otherwise: how the
/// server names a resource in messages.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = serde_json::Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    if !kind.is_empty() {
        d.insert("kind".into(), json!(kind));
    }
    Value::Object(d)
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: json!({}),
        }
    }

    /// 404 for a path the server does not serve (an unknown group, version
    /// or resource, or a CRD's kind before the CRD is Established).
    pub fn unserved() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 404 for a missing object: `deployments.apps "web" not found`.
    pub fn not_found(plural: &str, group: &str, name: &str) -> ApiError {
        ApiError {
            details: details(name, group, plural),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(plural, group)),
            )
        }
    }

    /// 409 on create when the name is taken.
    pub fn already_exists(plural: &str, group: &str, name: &str) -> ApiError {
        ApiError {
            details: details(name, group, plural),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(plural, group)),
            )
        }
    }

    /// 409 on a stale `resourceVersion` (optimistic concurrency).
    pub fn conflict(plural: &str, group: &str, name: &str, why: &str) -> ApiError {
        ApiError {
            details: details(name, group, plural),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    qualified(plural, group)
                ),
            )
        }
    }

    /// The standard stale-resourceVersion conflict.
    pub fn stale(plural: &str, group: &str, name: &str) -> ApiError {
        ApiError::conflict(
            plural,
            group,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: `Kind.group "name" is invalid: field: message`. Each cause is
    /// `(field, reason, message)`, e.g. `("metadata.name",
    /// "FieldValueRequired", "Required value: name or generateName is
    /// required")`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[(&str, &str, String)]) -> ApiError {
        let listed: Vec<String> = causes.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
        let summary = if listed.len() == 1 {
            listed[0].clone()
        } else {
            format!("[{}]", listed.join(", "))
        };
        let mut d = details(name, group, kind);
        d["causes"] = causes
            .iter()
            .map(|(f, r, m)| json!({"reason": r, "message": m, "field": f}))
            .collect();
        ApiError {
            details: d,
            ..ApiError::new(
                422,
                "Invalid",
                format!("{} \"{name}\" is invalid: {summary}", qualified(kind, group)),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 415 for a patch content type the server does not take for this
    /// resource (or the fake does not implement).
    pub fn unsupported_media_type(content_type: &str, accepted: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted} (got {content_type:?})"
            ),
        )
    }

    /// 403 for creating in a namespace that is being deleted.
    pub fn namespace_terminating(plural: &str, group: &str, name: &str, ns: &str) -> ApiError {
        let mut d = details(name, group, plural);
        d["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace",
        }]);
        ApiError {
            details: d,
            ..ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    qualified(plural, group)
                ),
            )
        }
    }

    /// The `Status` body.
    pub fn to_json(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}

//! Routing a request to discovery or to a verb on a resource, and the
//! verbs themselves: get, list, create (POST), replace (PUT), patch (apply,
//! merge, strategic merge), delete, deletecollection; watch is set up here
//! and streamed by `watch.rs`.

use super::apply::{self, Part};
use super::controllers;
use super::discovery;
use super::kinds::ResourceType;
use super::protobuf;
use super::selectors::Selector;
use super::status::ApiError;
use super::store::{Key, Outcome, State, is_deleting};
use super::util::{parse_query, str_at};
use super::watch::{Start, WatchSpec};
use base64::Engine;
use serde_json::{Value, json};
use std::time::Duration;

/// A request as the handlers see it.
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn params(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }

    pub fn param(&self, key: &str) -> Option<String> {
        self.params().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `dryRun=All` (the only value the real server accepts).
    pub fn dry_run(&self) -> bool {
        self.params().iter().any(|(k, v)| k == "dryRun" && v == "All")
    }

    pub fn field_manager(&self) -> Option<String> {
        self.param("fieldManager").filter(|m| !m.is_empty())
    }

    /// The manager a non-apply write is recorded under: `fieldManager`, or
    /// the User-Agent up to its first `/`, as the real server defaults it.
    fn update_manager(&self) -> String {
        self.field_manager().unwrap_or_else(|| {
            self.user_agent
                .as_deref()
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string()
        })
    }

    /// The media type without parameters.
    fn media_type(&self) -> String {
        self.content_type
            .as_deref()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    fn json_body(&self, ty: &ResourceType) -> Result<Value, ApiError> {
        if self.media_type() == protobuf::MEDIA_TYPE {
            return protobuf::request_body(&self.body, ty);
        }
        let v: Value = serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e} (the fake kube server reads JSON and Protobuf bodies only)",
                ty.kind
            ))
        })?;
        if !v.is_object() {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                ty.kind
            )));
        }
        Ok(v)
    }
}

pub enum ApiResponse {
    Json(u16, Value),
    /// JSON with a more specific `Content-Type` (aggregated discovery).
    Typed(u16, String, Value),
    Watch(Box<WatchSpec>),
}

fn ok(code: u16, v: Value) -> Result<ApiResponse, ApiError> {
    Ok(ApiResponse::Json(code, v))
}

/// Where a resource path points.
struct Target {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let t = |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => match tail {
            [] => Some(t(plural, Some(ns), None, None)),
            [name] => Some(t(plural, Some(ns), Some(name), None)),
            [name, sub] => Some(t(plural, Some(ns), Some(name), Some(sub))),
            _ => None,
        },
        [plural] => Some(t(plural, None, None, None)),
        [plural, name] => Some(t(plural, None, Some(name), None)),
        [plural, name, sub] => Some(t(plural, None, Some(name), Some(sub))),
        _ => None,
    }
}

/// Handles one request against the state. Writes run the controllers
/// afterwards (see `controllers.rs`).
pub fn handle(state: &mut State, req: &ApiRequest, server_address: &str) -> ApiResponse {
    let result = route(state, req, server_address);
    if req.method != "GET" && !req.dry_run() {
        controllers::reconcile(state);
    }
    match result {
        Ok(r) => r,
        Err(e) => ApiResponse::Json(e.code, e.to_json()),
    }
}

fn route(state: &mut State, req: &ApiRequest, server_address: &str) -> Result<ApiResponse, ApiError> {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let types = state.types();
    if let Some(answer) = super::openapi::serve(state, &req.method, &segments, req.accept.as_deref()) {
        return answer;
    }
    if let Some(answer) = discovery::serve(
        &types,
        &req.method,
        &segments,
        req.accept.as_deref(),
        server_address,
    ) {
        return answer;
    }
    let target = match segments.as_slice() {
        ["api", version, rest @ ..] => parse_resource_path("", version, rest),
        ["apis", group, version, rest @ ..] => parse_resource_path(group, version, rest),
        _ => None,
    };
    let target = target.ok_or_else(ApiError::unserved)?;
    let ty = types
        .iter()
        .find(|t| t.group == target.group && t.version == target.version && t.plural == target.plural)
        .cloned()
        .ok_or_else(ApiError::unserved)?;
    // The fake writes JSON only (client-go asks for Protobuf first and
    // takes JSON too).
    if !protobuf::accepts_json(req.accept.as_deref()) {
        return Err(protobuf::not_acceptable());
    }
    // A namespace in the path of a cluster-scoped resource, or a name
    // without one for a namespaced resource, is not a served path.
    if target.namespace.is_some() && !ty.namespaced {
        return Err(ApiError::unserved());
    }
    if target.name.is_some() && ty.namespaced && target.namespace.is_none() {
        return Err(ApiError::unserved());
    }
    let part = match target.subresource.as_deref() {
        None => Part::Main,
        Some("status") if ty.status_subresource => Part::Status,
        Some(_) => return Err(ApiError::unserved()),
    };
    let ns = target.namespace.clone().unwrap_or_default();
    match (req.method.as_str(), target.name.as_deref()) {
        ("GET", None) => {
            let watch = req.param("watch").is_some_and(|w| w == "true" || w == "1");
            let format = discovery::negotiate(req.accept.as_deref(), false, true)?;
            if watch {
                watch_spec(state, req, ty, target.namespace.clone(), format)
            } else {
                let listed = list(state, req, &ty, target.namespace.as_deref())?;
                Ok(super::table::respond(state, req, &ty, format, listed))
            }
        }
        ("GET", Some(name)) => {
            let format = discovery::negotiate(req.accept.as_deref(), false, true)?;
            let key = Key::new(&ty, &ns, name);
            let obj = state
                .get(&key)
                .ok_or_else(|| ApiError::not_found(&ty.plural, &ty.group, name))?;
            let got = ApiResponse::Json(200, State::render(&ty, obj));
            Ok(super::table::respond(state, req, &ty, format, got))
        }
        ("POST", None) if ty.namespaced == target.namespace.is_some() => create(state, req, &ty, &ns),
        ("PUT", Some(name)) => replace(state, req, &ty, &ns, name, part),
        ("PATCH", Some(name)) => patch(state, req, &ty, &ns, name, part),
        ("DELETE", Some(name)) if part == Part::Main => delete(state, req, &ty, &ns, name),
        ("DELETE", None) => delete_collection(state, req, &ty, target.namespace.as_deref()),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn list(
    state: &State,
    req: &ApiRequest,
    ty: &ResourceType,
    namespace: Option<&str>,
) -> Result<ApiResponse, ApiError> {
    let selector = Selector::for_type(
        ty,
        req.param("labelSelector").as_deref(),
        req.param("fieldSelector").as_deref(),
    )?;
    let after: Option<(String, String)> = match req.param("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            Some((
                raw["namespace"].as_str().unwrap_or_default().into(),
                raw["name"].as_str().unwrap_or_default().into(),
            ))
        }
    };
    let limit = req
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let matching: Vec<(Key, Value)> = state
        .list(&ty.group, &ty.plural, namespace)
        .into_iter()
        .filter(|(k, _)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&k.namespace, &k.name) > (ns, name))
        })
        .filter(|(_, v)| selector.matches(v))
        .collect();
    let total = matching.len();
    let page: Vec<(Key, Value)> = matching.into_iter().take(limit.unwrap_or(usize::MAX)).collect();
    let mut metadata = json!({"resourceVersion": state.rv.to_string()});
    if page.len() < total {
        let last = &page.last().expect("limit > 0").0;
        let token = json!({"namespace": last.namespace, "name": last.name}).to_string();
        metadata["continue"] = json!(base64::engine::general_purpose::STANDARD.encode(token));
        metadata["remainingItemCount"] = json!(total - page.len());
    }
    let items: Vec<Value> = page
        .iter()
        .map(|(_, v)| {
            let mut item = State::render(ty, v);
            // The real server leaves kind and apiVersion off the items of
            // built-in lists (custom resource lists keep them).
            if !ty.custom {
                let m = item.as_object_mut().expect("map");
                m.remove("kind");
                m.remove("apiVersion");
            }
            item
        })
        .collect();
    ok(
        200,
        json!({
            "kind": ty.list_kind(),
            "apiVersion": ty.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    )
}

fn watch_spec(
    state: &State,
    req: &ApiRequest,
    ty: ResourceType,
    namespace: Option<String>,
    format: discovery::Format,
) -> Result<ApiResponse, ApiError> {
    let selector = Selector::for_type(
        &ty,
        req.param("labelSelector").as_deref(),
        req.param("fieldSelector").as_deref(),
    )?;
    let send_initial = super::watch::check_watch_list_options(
        req.param("sendInitialEvents").as_deref(),
        req.param("resourceVersionMatch").as_deref(),
    )?;
    let start = match req.param("resourceVersion").as_deref() {
        _ if send_initial == Some(true) => Start::Initial,
        None | Some("") | Some("0") if send_initial == Some(false) => Start::After(state.rv),
        None | Some("") | Some("0") => Start::Initial,
        Some(rv) => {
            let n: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("resourceVersion: Invalid value: {rv:?}")))?;
            if n > state.rv {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {n}, current: {}", state.rv),
                ));
            }
            Start::After(n)
        }
    };
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok(ApiResponse::Watch(Box::new(WatchSpec {
        ty: ty.clone(),
        namespace,
        selector,
        start,
        initial_events_end_bookmark: send_initial == Some(true),
        bookmarks: req.param("allowWatchBookmarks").as_deref() == Some("true"),
        table: match format {
            discovery::Format::Table(v) => Some(super::table::WatchTable {
                columns: super::table::columns_for(state, &ty),
                meta_version: v,
                include: super::table::Include::parse(req.param("includeObject").as_deref()),
            }),
            _ => None,
        },
        timeout,
    })))
}

/// Checks the body's apiVersion/kind against the path (filled in when
/// absent) and its namespace against the path's.
fn check_identity(ty: &ResourceType, obj: &mut Value, ns: &str, required: bool) -> Result<(), ApiError> {
    let api_version = ty.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        None if required => return Err(ApiError::bad_request("apiVersion must be set")),
        _ => obj["apiVersion"] = json!(api_version),
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != ty.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                ty.kind
            )));
        }
        None if required => return Err(ApiError::bad_request("kind must be set")),
        _ => obj["kind"] = json!(ty.kind),
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if ty.namespaced {
        match str_at(obj, &["metadata", "namespace"]) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => obj["metadata"]["namespace"] = json!(ns),
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    Ok(())
}

fn check_name(obj: &mut Value, name: &str) -> Result<(), ApiError> {
    match str_at(obj, &["metadata", "name"]) {
        Some(n) if !n.is_empty() && n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => {
            obj["metadata"]["name"] = json!(name);
            Ok(())
        }
    }
}

/// 404 when the namespace is missing, 403 when it is terminating.
fn check_namespace(state: &State, ty: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
    if !ty.namespaced {
        return Ok(());
    }
    let key = Key {
        group: String::new(),
        plural: "namespaces".into(),
        namespace: String::new(),
        name: ns.into(),
    };
    match state.get(&key) {
        None => Err(ApiError::not_found("namespaces", "", ns)),
        Some(n) if is_deleting(n) => Err(ApiError::namespace_terminating(&ty.plural, &ty.group, name, ns)),
        Some(_) => Ok(()),
    }
}

/// A `resourceVersion` in the body must be the stored one.
fn check_resource_version(
    ty: &ResourceType,
    body: &Value,
    current: &Value,
    name: &str,
) -> Result<(), ApiError> {
    match str_at(body, &["metadata", "resourceVersion"]) {
        Some(rv) if !rv.is_empty() && Some(rv) != str_at(current, &["metadata", "resourceVersion"]) => {
            Err(ApiError::stale(&ty.plural, &ty.group, name))
        }
        _ => Ok(()),
    }
}

fn finish(outcome: Outcome, ty: &ResourceType, code: u16) -> Result<ApiResponse, ApiError> {
    ok(code, State::render(ty, &outcome.into_value()))
}

fn create(state: &mut State, req: &ApiRequest, ty: &ResourceType, ns: &str) -> Result<ApiResponse, ApiError> {
    let mut obj = req.json_body(ty)?;
    check_identity(ty, &mut obj, ns, false)?;
    if str_at(&obj, &["metadata", "name"]).unwrap_or_default().is_empty()
        && let Some(prefix) = str_at(&obj, &["metadata", "generateName"]).map(str::to_string)
    {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..5];
        obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
    }
    let name = str_at(&obj, &["metadata", "name"])
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::invalid(
            &ty.kind,
            &ty.group,
            "",
            &[(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    check_namespace(state, ty, ns, &name)?;
    let key = Key::new(ty, ns, &name);
    if state.get(&key).is_some() {
        return Err(ApiError::already_exists(&ty.plural, &ty.group, &name));
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    // The creator owns what it sent, not the server's defaults.
    apply::record_update(ty, None, &mut obj, &req.update_manager(), Part::Main);
    super::strategy::prepare_for_create(state, ty, &mut obj);
    super::strategy::validate(ty, &obj, None)?;
    finish(state.commit(ty, obj, req.dry_run()), ty, 201)
}

fn replace(
    state: &mut State,
    req: &ApiRequest,
    ty: &ResourceType,
    ns: &str,
    name: &str,
    part: Part,
) -> Result<ApiResponse, ApiError> {
    let mut obj = req.json_body(ty)?;
    check_identity(ty, &mut obj, ns, false)?;
    check_name(&mut obj, name)?;
    let key = Key::new(ty, ns, name);
    let old = state
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&ty.plural, &ty.group, name))?;
    check_resource_version(ty, &obj, &old, name)?;
    if part == Part::Main {
        // managedFields in a PUT body replace the stored ones on the real
        // server; the fake keeps its own bookkeeping instead.
        obj["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    }
    super::strategy::prepare_for_update(state, ty, &old, &mut obj, part);
    super::strategy::validate(ty, &obj, Some(&old))?;
    apply::record_update(ty, Some(&old), &mut obj, &req.update_manager(), part);
    finish(state.commit(ty, obj, req.dry_run()), ty, 200)
}

const ACCEPTED_PATCHES: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

fn patch(
    state: &mut State,
    req: &ApiRequest,
    ty: &ResourceType,
    ns: &str,
    name: &str,
    part: Part,
) -> Result<ApiResponse, ApiError> {
    let media = req.media_type();
    let force = req.param("force");
    match media.as_str() {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            // The real server validates PatchOptions first: 422, not 400.
            let Some(manager) = req.field_manager() else {
                return Err(ApiError {
                    details: json!({
                        "group": "meta.k8s.io",
                        "kind": "PatchOptions",
                        "causes": [{
                            "reason": "FieldValueRequired",
                            "message": "Required value: is required for apply patch",
                            "field": "fieldManager",
                        }],
                    }),
                    ..ApiError::new(
                        422,
                        "Invalid",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    )
                });
            };
            server_side_apply(
                state,
                req,
                ty,
                ns,
                name,
                part,
                &manager,
                force.as_deref() == Some("true"),
            )
        }
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => {
            if force.is_some() {
                return Err(ApiError::invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    &[(
                        "force",
                        "FieldValueForbidden",
                        "Forbidden: may not be specified for non-apply patch".into(),
                    )],
                ));
            }
            if ty.custom && media == "application/strategic-merge-patch+json" {
                // As on the real server: custom resources have no strategic
                // merge schema.
                return Err(ApiError::unsupported_media_type(&media, ACCEPTED_PATCHES));
            }
            merge_patch(state, req, ty, ns, name, part)
        }
        other => Err(ApiError::unsupported_media_type(
            other,
            "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn server_side_apply(
    state: &mut State,
    req: &ApiRequest,
    ty: &ResourceType,
    ns: &str,
    name: &str,
    part: Part,
    manager: &str,
    force: bool,
) -> Result<ApiResponse, ApiError> {
    let mut applied: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding YAML: {e} (the fake kube server reads apply configurations written as JSON, which kube-rs sends)"
        ))
    })?;
    if !applied.is_object() {
        return Err(ApiError::bad_request("the apply configuration must be an object"));
    }
    check_identity(ty, &mut applied, ns, true)?;
    check_name(&mut applied, name)?;
    if applied["metadata"]
        .get("managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let key = Key::new(ty, ns, name);
    let existing = state.get(&key).cloned();
    if let Some(current) = &existing {
        check_resource_version(ty, &applied, current, name)?;
    }
    if let Some(m) = applied["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    let dry_run = req.dry_run();
    match existing {
        None => {
            if part == Part::Status {
                return Err(ApiError::not_found(&ty.plural, &ty.group, name));
            }
            check_namespace(state, ty, ns, name)?;
            let mut base =
                json!({"apiVersion": ty.api_version(), "kind": ty.kind, "metadata": {"name": name}});
            if ty.namespaced {
                base["metadata"]["namespace"] = json!(ns);
            }
            let mut obj = apply::server_side_apply(ty, None, base, &applied, manager, force, part)?;
            super::strategy::prepare_for_create(state, ty, &mut obj);
            super::strategy::validate(ty, &obj, None)?;
            finish(state.commit(ty, obj, dry_run), ty, 201)
        }
        Some(old) => {
            let mut obj =
                apply::server_side_apply(ty, Some(&old), old.clone(), &applied, manager, force, part)?;
            super::strategy::prepare_for_update(state, ty, &old, &mut obj, part);
            super::strategy::validate(ty, &obj, Some(&old))?;
            finish(state.commit(ty, obj, dry_run), ty, 200)
        }
    }
}

fn merge_patch(
    state: &mut State,
    req: &ApiRequest,
    ty: &ResourceType,
    ns: &str,
    name: &str,
    part: Part,
) -> Result<ApiResponse, ApiError> {
    let patch: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let key = Key::new(ty, ns, name);
    let old = state
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&ty.plural, &ty.group, name))?;
    check_resource_version(ty, &patch, &old, name)?;
    let mut obj = old.clone();
    if req.media_type() == "application/strategic-merge-patch+json" {
        let schema = super::openapi::builtin_nav(ty);
        obj = super::strategic_merge::apply(&old, &patch, schema.as_ref())
            .map_err(|e| ApiError::bad_request(e.0))?;
    } else if req.media_type() == "application/json-patch+json" {
        obj = super::json_patch::apply(&old, &patch).map_err(|e| ApiError::new(422, "Invalid", e.0))?;
    } else {
        apply::merge_patch(&mut obj, &patch);
    }
    if !obj.is_object() || !obj["metadata"].is_object() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "the patched object is not an object with metadata",
        ));
    }
    // managedFields a JSON patch rewrites (kubectl moving ownership from
    // client-side to server-side apply) replace the stored ones, and the
    // write is then not recorded on top, as on the real server.
    let user_managed = obj["metadata"]["managedFields"] != old["metadata"]["managedFields"]
        && req.media_type() == "application/json-patch+json";
    // Identity and server bookkeeping cannot be patched.
    for k in ["name", "namespace", "managedFields", "resourceVersion"] {
        if k == "managedFields" && user_managed {
            continue;
        }
        match old["metadata"].get(k) {
            Some(v) => obj["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    super::strategy::prepare_for_update(state, ty, &old, &mut obj, part);
    super::strategy::validate(ty, &obj, Some(&old))?;
    if !user_managed {
        apply::record_update(ty, Some(&old), &mut obj, &req.update_manager(), part);
    }
    finish(state.commit(ty, obj, req.dry_run()), ty, 200)
}

/// DeleteOptions from the body (may be empty).
fn delete_options(req: &ApiRequest) -> Result<Value, ApiError> {
    if req.media_type() == protobuf::MEDIA_TYPE && !req.body.is_empty() {
        return protobuf::delete_options(&req.body);
    }
    Ok(serde_json::from_slice(&req.body).unwrap_or(Value::Null))
}

fn delete_dry_run(req: &ApiRequest, options: &Value) -> bool {
    req.dry_run()
        || options["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"))
}

fn delete(
    state: &mut State,
    req: &ApiRequest,
    ty: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<ApiResponse, ApiError> {
    let options = delete_options(req)?;
    let key = Key::new(ty, ns, name);
    let (code, obj) = state.delete(ty, &key, &options["preconditions"], delete_dry_run(req, &options))?;
    ok(code, obj)
}

fn delete_collection(
    state: &mut State,
    req: &ApiRequest,
    ty: &ResourceType,
    namespace: Option<&str>,
) -> Result<ApiResponse, ApiError> {
    let selector = Selector::for_type(
        ty,
        req.param("labelSelector").as_deref(),
        req.param("fieldSelector").as_deref(),
    )?;
    let options = delete_options(req)?;
    let dry_run = delete_dry_run(req, &options);
    let mut items = vec![];
    for (key, obj) in state.list(&ty.group, &ty.plural, namespace) {
        if selector.matches(&obj) {
            state.delete(ty, &key, &Value::Null, dry_run)?;
            // The list shows each object as it was when deleted (or, when
            // finalizers hold it, as it is now).
            let now = state.get(&key).cloned().unwrap_or(obj);
            items.push(State::render(ty, &now));
        }
    }
    ok(
        200,
        json!({
            "kind": ty.list_kind(),
            "apiVersion": ty.api_version(),
            "metadata": {"resourceVersion": state.rv.to_string()},
            "items": items,
        }),
    )
}

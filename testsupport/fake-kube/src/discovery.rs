//! Discovery documents: `/version`, `/api` (APIVersions), `/api/v1` and
//! `/apis/{group}/{version}` (APIResourceList), `/apis` (APIGroupList with
//! preferredVersion), `/apis/{group}` (APIGroup), and the aggregated form of
//! `/api` and `/apis` (APIGroupDiscoveryList, apidiscovery.k8s.io/v2 or
//! v2beta1) when the client asks for it in `Accept`, as client-go (kubectl,
//! Helm) and kube-rs' `Discovery::run_aggregated` do. Built from the served
//! types, so a CRD's kind appears only once the CRD is Established.
//!
//! Content negotiation follows the real server: the first `Accept` clause
//! the fake can produce wins. An aggregated answer carries the exact
//! `Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`
//! (client-go decides by that header which form it got, so a plain
//! `application/json` would be read as the legacy form and come out empty);
//! `application/json`, `application/*`, `*/*` or no `Accept` get the legacy
//! form; an `Accept` naming only encodings the fake does not produce
//! (protobuf, YAML, CBOR, tables) gets 406 Not Acceptable, as the real
//! server answers an encoding it does not have.

use super::api::ApiResponse;
use super::kinds::{ResourceType, VERBS, version_priority};
use super::status::ApiError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The server version the fake reports.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake-kube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn resource_entries(t: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": VERBS,
        "storageVersionHash": super::util::short_hash(&format!("{}/{}", t.group, t.plural), 11),
    });
    if !t.short_names.is_empty() {
        main["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        main["categories"] = json!(t.categories);
    }
    let mut out = vec![main];
    if t.status_subresource {
        out.push(json!({
            "name": format!("{}/status", t.plural),
            "singularName": "",
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    out
}

/// APIResourceList for one group/version, or None when nothing is served
/// there (the caller answers 404).
pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let here: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if here.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": here.iter().flat_map(|t| resource_entries(t)).collect::<Vec<_>>(),
    }))
}

/// Non-core groups and their versions, preferred version first.
fn groups(types: &[ResourceType]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let versions = groups.entry(t.group.clone()).or_default();
        if !versions.contains(&t.version) {
            versions.push(t.version.clone());
        }
    }
    for versions in groups.values_mut() {
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    groups
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": gv(&versions[0]),
    })
}

pub fn group_list(types: &[ResourceType]) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(types).iter().map(|(n, vs)| api_group(n, vs)).collect::<Vec<_>>(),
    })
}

pub fn group(types: &[ResourceType], name: &str) -> Option<Value> {
    let groups = groups(types);
    let versions = groups.get(name)?;
    let mut g = api_group(name, versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// What a response may be encoded as, by the client's `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON (the legacy discovery form).
    Json,
    /// Aggregated discovery at this apidiscovery.k8s.io version.
    Aggregated(&'static str),
    /// A `Table` at this meta.k8s.io version (`table.rs`).
    Table(&'static str),
}

/// The media types the fake produces, for 406 messages.
const PRODUCED: &str = "application/json";

/// One `Accept` clause: media type and parameters (lowercased keys).
fn clauses(accept: &str) -> Vec<(String, BTreeMap<String, String>)> {
    accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';').map(str::trim);
            let media = parts.next()?.to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| {
                    (
                        k.trim().to_ascii_lowercase(),
                        v.trim().trim_matches('"').to_string(),
                    )
                })
                .collect();
            Some((media, params))
        })
        .collect()
}

/// The first `Accept` clause the fake can answer, in the client's order
/// (clauses with `q=0` are refused ones). `aggregated_ok` is true at `/api`
/// and `/apis`, the only paths with an aggregated form; `table_ok` on
/// reads of resources. Err is the real server's 406.
pub fn negotiate(accept: Option<&str>, aggregated_ok: bool, table_ok: bool) -> Result<Format, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    for (media, params) in clauses(accept) {
        if params
            .get("q")
            .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
        {
            continue;
        }
        let other_params = params
            .keys()
            .any(|k| !matches!(k.as_str(), "q" | "charset" | "stream"));
        match media.as_str() {
            "application/json" if params.contains_key("as") || params.contains_key("g") => {
                let aggregated = params.get("g").map(String::as_str) == Some("apidiscovery.k8s.io")
                    && params.get("as").map(String::as_str) == Some("APIGroupDiscoveryList")
                    && !params.contains_key("profile");
                let version = match params.get("v").map(String::as_str) {
                    Some("v2") => Some("v2"),
                    Some("v2beta1") => Some("v2beta1"),
                    _ => None,
                };
                if let (true, true, Some(v)) = (aggregated_ok, aggregated, version) {
                    return Ok(Format::Aggregated(v));
                }
                let table = params.get("g").map(String::as_str) == Some("meta.k8s.io")
                    && params.get("as").map(String::as_str) == Some("Table");
                let meta_version = match params.get("v").map(String::as_str) {
                    Some("v1") => Some("v1"),
                    Some("v1beta1") => Some("v1beta1"),
                    _ => None,
                };
                if let (true, true, Some(v)) = (table_ok, table, meta_version) {
                    return Ok(Format::Table(v));
                }
            }
            "application/json" | "application/*" | "*/*" if !other_params => return Ok(Format::Json),
            _ => {}
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        format!("only the following media types are accepted: {PRODUCED}"),
    ))
}

/// `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// Answers a discovery path (`/version`, `/api...`, `/apis...` up to a
/// group/version), or None when the path is not one.
pub fn serve(
    types: &[ResourceType],
    method: &str,
    segments: &[&str],
    accept: Option<&str>,
    server_address: &str,
) -> Option<Result<ApiResponse, ApiError>> {
    let root = matches!(segments, ["api"] | ["apis"]);
    let doc = match segments {
        ["version"] => Some(version()),
        ["api"] => Some(api_versions(server_address)),
        ["api", version] => resource_list(types, "", version),
        ["apis"] => Some(group_list(types)),
        ["apis", name] => group(types, name),
        ["apis", group, version] => resource_list(types, group, version),
        _ => return None,
    };
    Some((|| {
        if method != "GET" {
            return Err(ApiError::method_not_allowed());
        }
        let format = negotiate(accept, root, false)?;
        let doc = doc.ok_or_else(ApiError::unserved)?;
        Ok(match format {
            Format::Json | Format::Table(_) => ApiResponse::Json(200, doc),
            Format::Aggregated(v) => ApiResponse::Typed(
                200,
                aggregated_content_type(v),
                aggregated(types, segments == ["api"], v),
            ),
        })
    })())
}

/// APIGroupDiscoveryList for `/api` (core) or `/apis` (the rest).
pub fn aggregated(types: &[ResourceType], core: bool, version: &str) -> Value {
    let mut by_group: BTreeMap<String, Vec<String>> = groups(types);
    if core {
        by_group = BTreeMap::from([(String::new(), vec!["v1".to_string()])]);
    }
    let items: Vec<Value> = by_group
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = types
                        .iter()
                        .filter(|t| &t.group == group && &t.version == v)
                        .map(|t| {
                            let response_kind =
                                json!({"group": t.group, "version": t.version, "kind": t.kind});
                            let mut r = json!({
                                "resource": t.plural,
                                "responseKind": response_kind,
                                "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": t.singular,
                                "verbs": VERBS,
                            });
                            if !t.categories.is_empty() {
                                r["categories"] = json!(t.categories);
                            }
                            if !t.short_names.is_empty() {
                                r["shortNames"] = json!(t.short_names);
                            }
                            if t.status_subresource {
                                r["subresources"] = json!([{
                                    "subresource": "status",
                                    "responseKind": response_kind,
                                    "verbs": ["get", "patch", "update"],
                                }]);
                            }
                            r
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_GO: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn client_go_gets_aggregated_v2_at_the_roots_and_json_elsewhere() {
        assert_eq!(
            negotiate(Some(CLIENT_GO), true, false).unwrap(),
            Format::Aggregated("v2")
        );
        assert_eq!(negotiate(Some(CLIENT_GO), false, false).unwrap(), Format::Json);
    }

    #[test]
    fn first_acceptable_clause_wins() {
        let beta_first =
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(beta_first), true, false).unwrap(),
            Format::Aggregated("v2beta1")
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf, application/json"),
                true,
                false
            )
            .unwrap(),
            Format::Json
        );
        assert_eq!(negotiate(None, true, false).unwrap(), Format::Json);
        assert_eq!(negotiate(Some("*/*"), true, false).unwrap(), Format::Json);
    }

    #[test]
    fn kubectl_get_gets_a_table_where_tables_are_served() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(kubectl), false, true).unwrap(),
            Format::Table("v1")
        );
        assert_eq!(negotiate(Some(kubectl), false, false).unwrap(), Format::Json);
    }

    #[test]
    fn encodings_the_fake_lacks_are_406() {
        for accept in [
            "application/vnd.kubernetes.protobuf",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            "application/yaml",
        ] {
            assert_eq!(
                negotiate(Some(accept), true, false).unwrap_err().code,
                406,
                "{accept}"
            );
        }
    }
}

//! Validation the real API server does on built-in objects after
//! defaulting, with its field paths and wording, for a 422 Invalid
//! `Status` (`Deployment.apps "web" is invalid: spec.selector: Required
//! value`). `strategy.rs` adds the causes found here to its own (names,
//! finalizers, CRDs).
//!
//! What is checked:
//! - every object: `metadata.labels` keys and values (the label syntax).
//! - pod templates (wherever [`defaults::pod_spec_path`] finds them):
//!   at least one container; each container (and init container) has a
//!   name, unique among them, and an image; container ports between 1 and
//!   65535; `restartPolicy` Always for Deployment, StatefulSet, DaemonSet,
//!   ReplicaSet; OnFailure or Never for Job (and CronJob).
//! - Deployment, StatefulSet, DaemonSet, ReplicaSet (and Job with
//!   `manualSelector`): `spec.selector` required, must match the
//!   template's labels; immutable for Deployment, StatefulSet, DaemonSet.
//! - Job: `spec.selector` and `spec.template` immutable.
//! - Service: `type` one of the four; `ports` required (unless headless or
//!   ExternalName), each `port` and numeric `targetPort` between 1 and
//!   65535, names required when there is more than one port; the cluster
//!   IP may not change once set.
//!
//! NOT checked (a real server would): resource quantities, probes, volume
//! sources, env var names, most enum values, DNS names inside specs,
//! selector operators, and everything of kinds not listed. An immutable
//! whole template is shown as JSON where the real server prints a Go value.

use super::defaults::pod_spec_path;
use super::kinds::ResourceType;
use serde_json::{Map, Value, json};

/// One cause of a 422: field path, reason, message.
pub type Cause = (String, &'static str, String);

const REQUIRED: &str = "FieldValueRequired";
const INVALID: &str = "FieldValueInvalid";
const NOT_SUPPORTED: &str = "FieldValueNotSupported";
const DUPLICATE: &str = "FieldValueDuplicate";

fn required(field: impl Into<String>) -> Cause {
    (field.into(), REQUIRED, "Required value".into())
}

/// `Invalid value: <value>: <detail>`, the value printed as the real server
/// prints it (strings quoted, numbers bare, the rest as JSON).
fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
    (field.into(), INVALID, format!("Invalid value: {value}: {detail}"))
}

fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Cause {
    let listed: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    (
        field.into(),
        NOT_SUPPORTED,
        format!(
            "Unsupported value: {value}: supported values: {}",
            listed.join(", ")
        ),
    )
}

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

fn port_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

/// The causes for `obj` (after defaulting); `old` is the stored object on
/// an update. Empty when the object is valid as far as the fake checks.
pub fn causes(ty: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = vec![];
    labels(obj.pointer("/metadata/labels"), "metadata.labels", &mut out);
    if ty.custom {
        return out;
    }
    if let Some(path) = pod_spec_path(ty) {
        workload(ty, obj, old, path, &mut out);
    }
    if ty.group.is_empty() && ty.kind == "Service" {
        service(obj, old, &mut out);
    }
    out
}

const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

fn is_label_text(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

fn labels(labels: Option<&Value>, field: &str, out: &mut Vec<Cause>) {
    let Some(map) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        let (prefix, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        let key_problem = if prefix.is_some_and(|p| !is_subdomain(p)) {
            Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string())
        } else if name.is_empty() {
            Some("name part must be non-empty".to_string())
        } else if name.len() > 63 {
            Some("name part must be no more than 63 characters".to_string())
        } else if !is_label_text(name) {
            Some(format!(
                "name part {LABEL_KEY_MSG} (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{LABEL_FMT}')"
            ))
        } else {
            None
        };
        if let Some(p) = key_problem {
            out.push(invalid(field, &json!(k), &p));
        }
        let text = v.as_str().unwrap_or_default();
        if text.len() > 63 {
            out.push(invalid(field, v, "must be no more than 63 characters"));
        }
        if !text.is_empty() && !is_label_text(text) {
            out.push(invalid(
                field,
                v,
                &format!(
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '({LABEL_FMT})?')"
                ),
            ));
        }
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.as_object()?.get(*key))
}

fn workload(ty: &ResourceType, obj: &Value, old: Option<&Value>, path: &[&str], out: &mut Vec<Cause>) {
    let kind = ty.kind.as_str();
    let prefix = path.join(".");
    let template_path = &path[..path.len() - 1];
    let template_field = template_path.join(".");
    // In the real server's order: selector, template labels, pod spec.
    let selector_needed = match (ty.group.as_str(), kind) {
        ("apps", _) => true,
        ("batch", "Job") => obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true),
        _ => false,
    };
    if selector_needed {
        selector_matches(obj, kind, &template_field, out);
    }
    if let Some(template) = at(obj, template_path).filter(|_| !template_path.is_empty()) {
        labels(
            template.pointer("/metadata/labels"),
            &format!("{template_field}.metadata.labels"),
            out,
        );
    }
    let spec = at(obj, path).and_then(Value::as_object);
    pod_spec(spec, &prefix, out);
    // Without a pod spec there is nothing the real server would not have
    // defaulted to Always (its template is a struct, never absent).
    let restart = spec
        .map(|s| s.get("restartPolicy").cloned().unwrap_or(json!("")))
        .unwrap_or(json!("Always"));
    let restart_field = format!("{prefix}.restartPolicy");
    match (ty.group.as_str(), kind) {
        ("apps", _) if restart != "Always" => out.push(not_supported(restart_field, &restart, &["Always"])),
        ("batch", _) if restart != "OnFailure" && restart != "Never" => {
            out.push(not_supported(restart_field, &restart, &["OnFailure", "Never"]))
        }
        _ => {}
    }
    let Some(old) = old else { return };
    let mut immutable = |field: &str, pointer: &str| {
        if old.pointer(pointer) != obj.pointer(pointer) {
            out.push(invalid(
                field,
                obj.pointer(pointer).unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    };
    match (ty.group.as_str(), kind) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => immutable("spec.selector", "/spec/selector"),
        ("batch", "Job") => {
            immutable("spec.selector", "/spec/selector");
            immutable("spec.template", "/spec/template");
        }
        _ => {}
    }
}

/// `spec.selector` is required, may not be empty, and must select the
/// template's labels. A missing selector selects nothing, so the labels
/// are reported too, as the real server does.
fn selector_matches(obj: &Value, kind: &str, template_field: &str, out: &mut Vec<Cause>) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    let mismatch = || {
        invalid(
            format!("{template_field}.metadata.labels"),
            &template_labels,
            "`selector` does not match template `labels`",
        )
    };
    let Some(selector) = obj.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        out.push(required("spec.selector"));
        out.push(mismatch());
        return;
    };
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(Map::is_empty) && expressions.is_none_or(Vec::is_empty) {
        out.push(invalid(
            "spec.selector",
            selector,
            &format!("empty selector is invalid for {}", kind.to_lowercase()),
        ));
        return;
    }
    let labels = template_labels.as_object();
    let selects = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        && expressions
            .into_iter()
            .flatten()
            .all(|e| expression_matches(e, labels));
    if !selects {
        out.push(mismatch());
    }
}

fn expression_matches(e: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let key = e["key"].as_str().unwrap_or_default();
    let value = labels.and_then(|l| l.get(key));
    let values: Vec<&Value> = e["values"].as_array().into_iter().flatten().collect();
    match e["operator"].as_str().unwrap_or_default() {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

fn pod_spec(spec: Option<&Map<String, Value>>, prefix: &str, out: &mut Vec<Cause>) {
    let containers = spec.and_then(|s| s.get("containers")).and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        out.push(required(format!("{prefix}.containers")));
    }
    let mut names: Vec<&str> = vec![];
    for list in ["initContainers", "containers"] {
        let items = spec.and_then(|s| s.get(list)).and_then(Value::as_array);
        for (i, c) in items.into_iter().flatten().enumerate() {
            let field = format!("{prefix}.{list}[{i}]");
            match c["name"].as_str().filter(|n| !n.is_empty()) {
                None => out.push(required(format!("{field}.name"))),
                Some(n) if names.contains(&n) => out.push((
                    format!("{field}.name"),
                    DUPLICATE,
                    format!("Duplicate value: {:?}", n),
                )),
                Some(n) => names.push(n),
            }
            if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                out.push(required(format!("{field}.image")));
            }
            for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                let port = &p["containerPort"];
                let pf = format!("{field}.ports[{j}].containerPort");
                if port.is_null() || port == 0 {
                    out.push(required(pf));
                } else if !port_ok(port) {
                    out.push(invalid(pf, port, PORT_RANGE));
                }
            }
        }
    }
}

fn service(obj: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let type_ = &spec["type"];
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.iter().any(|t| type_ == t) {
        out.push(not_supported("spec.type", type_, &types));
    }
    let headless = spec["clusterIP"] == "None";
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() && !headless && type_ != "ExternalName" {
        out.push(required("spec.ports"));
    }
    let need_names = ports.len() > 1;
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        if need_names && p["name"].as_str().is_none_or(str::is_empty) {
            out.push(required(format!("{field}.name")));
        }
        if !port_ok(&p["port"]) {
            // A missing port is Go's zero value there.
            let shown = if p["port"].is_null() {
                json!(0)
            } else {
                p["port"].clone()
            };
            out.push(invalid(format!("{field}.port"), &shown, PORT_RANGE));
        }
        let target = &p["targetPort"];
        if target.is_number() && !port_ok(target) {
            out.push(invalid(format!("{field}.targetPort"), target, PORT_RANGE));
        }
    }
    if let Some(old) = old {
        let old_ips = old.pointer("/spec/clusterIPs").and_then(Value::as_array);
        let new_ips = spec["clusterIPs"].as_array();
        if let (Some(before), Some(after)) = (old_ips, new_ips)
            && before.first().is_some_and(|ip| ip != "None" && ip != "")
            && before.first() != after.first()
            && type_ != "ExternalName"
        {
            out.push(invalid(
                "spec.clusterIPs[0]",
                &spec["clusterIPs"],
                "may not change once set",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::builtins;

    fn ty(kind: &str) -> ResourceType {
        builtins()
            .into_iter()
            .find(|t| t.kind == kind)
            .expect("built-in kind")
    }

    fn job_type() -> ResourceType {
        ResourceType {
            group: "batch".into(),
            kind: "Job".into(),
            plural: "jobs".into(),
            ..ty("Deployment")
        }
    }

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "restartPolicy": "Always",
                "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}},
        }})
    }

    fn fields(causes: &[Cause]) -> Vec<(&str, &str)> {
        causes.iter().map(|(f, r, _)| (f.as_str(), *r)).collect()
    }

    #[test]
    fn a_valid_deployment_passes() {
        assert_eq!(causes(&ty("Deployment"), &deployment(), None), vec![]);
        assert_eq!(
            causes(&ty("Deployment"), &deployment(), Some(&deployment())),
            vec![]
        );
    }

    #[test]
    fn deployment_without_selector_names_selector_and_labels() {
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        let c = causes(&ty("Deployment"), &d, None);
        assert_eq!(
            c,
            vec![
                required("spec.selector"),
                (
                    "spec.template.metadata.labels".into(),
                    INVALID,
                    "Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`".into()
                ),
            ]
        );
    }

    #[test]
    fn containers_need_names_images_and_ports_in_range() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"] = json!([
            {"image": "a:1"},
            {"name": "b", "ports": [{"containerPort": 70000}]},
            {"name": "b", "image": "b:1"},
        ]);
        let c = causes(&ty("Deployment"), &d, None);
        assert_eq!(
            fields(&c),
            [
                ("spec.template.spec.containers[0].name", REQUIRED),
                ("spec.template.spec.containers[1].image", REQUIRED),
                ("spec.template.spec.containers[1].ports[0].containerPort", INVALID),
                ("spec.template.spec.containers[2].name", DUPLICATE),
            ]
        );
        assert_eq!(
            c[2].2,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let mut no_template = deployment();
        no_template["spec"].as_object_mut().unwrap().remove("template");
        assert_eq!(
            fields(&causes(&ty("Deployment"), &no_template, None)),
            [
                ("spec.template.metadata.labels", INVALID),
                ("spec.template.spec.containers", REQUIRED)
            ]
        );
        d["spec"]["template"]["spec"]["containers"] = json!([]);
        assert_eq!(
            fields(&causes(&ty("Deployment"), &d, None)),
            [("spec.template.spec.containers", REQUIRED)]
        );
    }

    #[test]
    fn selector_is_immutable_and_must_match() {
        let old = deployment();
        let mut new = deployment();
        new["spec"]["selector"]["matchLabels"] = json!({"app": "web", "tier": "front"});
        let c = causes(&ty("Deployment"), &new, Some(&old));
        assert_eq!(
            fields(&c),
            [
                ("spec.template.metadata.labels", INVALID),
                ("spec.selector", INVALID)
            ]
        );
        assert_eq!(
            c[1].2,
            "Invalid value: {\"matchLabels\":{\"app\":\"web\",\"tier\":\"front\"}}: field is immutable"
        );
        let mut expr = deployment();
        expr["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]});
        assert_eq!(causes(&ty("Deployment"), &expr, None), vec![]);
    }

    #[test]
    fn restart_policy_per_kind() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let c = causes(&ty("Deployment"), &d, None);
        assert_eq!(
            c,
            vec![(
                "spec.template.spec.restartPolicy".into(),
                NOT_SUPPORTED,
                "Unsupported value: \"Never\": supported values: \"Always\"".into()
            )]
        );
        let mut job = json!({"spec": {"template": {"spec": {"restartPolicy": "Always",
            "containers": [{"name": "m", "image": "m:1"}]}}}});
        let c = causes(&job_type(), &job, None);
        assert_eq!(
            c[0].2,
            "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
        job["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(causes(&job_type(), &job, None), vec![]);
        let mut changed = job.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("m:2");
        assert_eq!(
            fields(&causes(&job_type(), &changed, Some(&job))),
            [("spec.template", INVALID)]
        );
    }

    #[test]
    fn service_ports_and_cluster_ip() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP",
            "clusterIP": "10.100.0.1", "clusterIPs": ["10.100.0.1"],
            "ports": [{"port": 80, "targetPort": 8080}]}});
        assert_eq!(causes(&ty("Service"), &svc, None), vec![]);
        let mut bad = svc.clone();
        bad["spec"]["ports"] =
            json!([{"port": 0, "targetPort": 70000}, {"name": "b", "port": 81, "targetPort": "http"}]);
        let c = causes(&ty("Service"), &bad, None);
        assert_eq!(
            fields(&c),
            [
                ("spec.ports[0].name", REQUIRED),
                ("spec.ports[0].port", INVALID),
                ("spec.ports[0].targetPort", INVALID),
            ]
        );
        assert_eq!(
            c[2].2,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let mut none = svc.clone();
        none["spec"].as_object_mut().unwrap().remove("ports");
        assert_eq!(
            fields(&causes(&ty("Service"), &none, None)),
            [("spec.ports", REQUIRED)]
        );
        let mut moved = svc.clone();
        moved["spec"]["clusterIPs"] = json!(["10.100.0.9"]);
        let c = causes(&ty("Service"), &moved, Some(&svc));
        assert_eq!(
            c,
            vec![(
                "spec.clusterIPs[0]".into(),
                INVALID,
                "Invalid value: [\"10.100.0.9\"]: may not change once set".into()
            )]
        );
        let mut portless = svc.clone();
        portless["spec"]["ports"] = json!([{"targetPort": 80}]);
        assert_eq!(
            causes(&ty("Service"), &portless, None)[0].2,
            "Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        let mut odd = svc.clone();
        odd["spec"]["type"] = json!("Internal");
        assert_eq!(
            fields(&causes(&ty("Service"), &odd, None)),
            [("spec.type", NOT_SUPPORTED)]
        );
    }

    #[test]
    fn label_syntax() {
        let cm =
            json!({"metadata": {"labels": {"ok": "a.b-c_d", "bad": "no spaces!", "-x": "", "a/b/c": "v"}}});
        let c = causes(&ty("ConfigMap"), &cm, None);
        let messages: Vec<&str> = c.iter().map(|(_, _, m)| m.as_str()).collect();
        assert_eq!(c.len(), 3, "{messages:?}");
        assert!(c.iter().all(|(f, r, _)| f == "metadata.labels" && *r == INVALID));
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Invalid value: \"no spaces!\": a valid label must"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Invalid value: \"-x\": name part must consist"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Invalid value: \"a/b/c\": prefix part"))
        );
    }
}

//! Server-side table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`,
//! what `kubectl get` asks for): a `meta.k8s.io` `Table` with column
//! definitions and one row per object, as the real server's printers make
//! them, so `kubectl get` shows the columns it shows against a cluster.
//!
//! Columns: the real ones for Namespace, ConfigMap, Secret, Service, Pod,
//! Event, Deployment, StatefulSet, ReplicaSet, DaemonSet, Job and CRD (the cells
//! the fake can fill; e.g. a Pod's restarts are those in its status); for
//! custom resources the CRD version's `additionalPrinterColumns` (simple
//! `.a.b` JSON paths); NAME and AGE for every other kind. Each row's
//! `object` is the object's metadata (`PartialObjectMetadata`), the whole
//! object with `includeObject=Object`, or nothing with `includeObject=None`.

use super::api::{ApiRequest, ApiResponse};
use super::discovery::Format;
use super::kinds::ResourceType;
use super::store::State;
use super::util::str_at;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// How a cell is computed from an object. (A built-in `date` column, such
/// as a CRD's "Created At", shows the timestamp itself; a custom resource's
/// `date` printer column shows an age, as on the real server.)
#[derive(Clone, Debug)]
enum Cell {
    Name,
    Age,
    Fn(fn(&Value) -> Value),
    /// A CRD printer column: `.spec.size` and its type.
    Path(String, String),
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    type_: &'static str,
    format: &'static str,
    description: String,
    priority: i64,
    cell: Cell,
}

/// The columns of one served type.
#[derive(Clone, Debug)]
pub struct Columns(Vec<Column>);

fn col(name: &str, type_: &'static str, priority: i64, cell: Cell) -> Column {
    let format = match cell {
        Cell::Name => "name",
        _ => "",
    };
    Column {
        name: name.into(),
        type_,
        format,
        description: String::new(),
        priority,
        cell,
    }
}

fn name_col() -> Column {
    Column {
        description: "Name must be unique within a namespace.".into(),
        ..col("Name", "string", 0, Cell::Name)
    }
}

fn age_col() -> Column {
    Column {
        description:
            "CreationTimestamp is a timestamp representing the server time when this object was created."
                .into(),
        ..col("Age", "string", 0, Cell::Age)
    }
}

fn int(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

/// `spec.replicas`, which the real server defaults to 1.
fn replicas(v: &Value) -> i64 {
    v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn len(v: &Value, path: &str) -> usize {
    match v.pointer(path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn strings_at(v: &Value, path: &str, field: &str) -> String {
    v.pointer(path)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c[field].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn selector(v: &Value, path: &str) -> Value {
    let labels = v.pointer(path).and_then(Value::as_object);
    let text = labels
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into());
    json!(text)
}

fn service_ports(v: &Value) -> Value {
    let ports = v.pointer("/spec/ports").and_then(Value::as_array);
    let text: Vec<String> = ports
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(n) => format!("{}:{n}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    json!(if text.is_empty() {
        "<none>".to_string()
    } else {
        text.join(",")
    })
}

fn external_ip(v: &Value) -> Value {
    let ingress = strings_at(v, "/status/loadBalancer/ingress", "hostname");
    let text = match str_at(v, &["spec", "type"]) {
        Some("LoadBalancer") if ingress.is_empty() => "<pending>".to_string(),
        Some("LoadBalancer") => ingress,
        Some("ExternalName") => str_at(v, &["spec", "externalName"])
            .unwrap_or_default()
            .to_string(),
        _ => "<none>".to_string(),
    };
    json!(text)
}

fn pod_ready(v: &Value) -> Value {
    let total = len(v, "/spec/containers");
    let ready = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|c| c["ready"] == true).count())
        .unwrap_or(0);
    json!(format!("{ready}/{total}"))
}

fn pod_restarts(v: &Value) -> Value {
    let n: i64 = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).sum())
        .unwrap_or(0);
    json!(n)
}

fn job_status(v: &Value) -> Value {
    let conds = v.pointer("/status/conditions").and_then(Value::as_array);
    let has = |t: &str| {
        conds
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    json!(if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if v.pointer("/spec/suspend") == Some(&json!(true)) {
        "Suspended"
    } else {
        "Running"
    })
}

/// When an Event was last seen: `lastTimestamp`, else `eventTime`, else
/// its creation.
fn event_last_seen(v: &Value) -> Value {
    let ts = ["/lastTimestamp", "/eventTime", "/metadata/creationTimestamp"]
        .iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str));
    json!(ts.map(human_age).unwrap_or_else(|| "<unknown>".into()))
}

/// The Event printer's columns (the name only in wide output).
fn event_columns() -> Vec<Column> {
    let f =
        |name: &str, priority: i64, cell: fn(&Value) -> Value| col(name, "string", priority, Cell::Fn(cell));
    vec![
        f("Last Seen", 0, event_last_seen),
        f("Type", 0, |v| json!(str_at(v, &["type"]).unwrap_or_default())),
        f("Reason", 0, |v| json!(str_at(v, &["reason"]).unwrap_or_default())),
        f("Object", 0, |v| {
            let kind = str_at(v, &["involvedObject", "kind"])
                .unwrap_or_default()
                .to_lowercase();
            json!(format!(
                "{kind}/{}",
                str_at(v, &["involvedObject", "name"]).unwrap_or_default()
            ))
        }),
        f("Source", 1, |v| {
            json!(str_at(v, &["source", "component"]).unwrap_or_default())
        }),
        f("Message", 0, |v| {
            json!(str_at(v, &["message"]).unwrap_or_default())
        }),
        f("Count", 1, |v| json!(v["count"].as_i64().unwrap_or(1))),
        Column {
            priority: 1,
            ..name_col()
        },
    ]
}

/// The built-in printers' columns.
fn builtin_columns(ty: &ResourceType) -> Vec<Column> {
    let f = |name: &str, type_: &'static str, priority: i64, cell: fn(&Value) -> Value| {
        col(name, type_, priority, Cell::Fn(cell))
    };
    if (ty.group.as_str(), ty.kind.as_str()) == ("", "Event") {
        return event_columns();
    }
    let mut cols = vec![name_col()];
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("", "Namespace") => cols.push(f("Status", "string", 0, |v| {
            json!(str_at(v, &["status", "phase"]).unwrap_or_default())
        })),
        ("", "ConfigMap") => cols.push(f("Data", "integer", 0, |v| {
            json!(len(v, "/data") + len(v, "/binaryData"))
        })),
        ("", "Secret") => {
            cols.push(f("Type", "string", 0, |v| {
                json!(str_at(v, &["type"]).unwrap_or_default())
            }));
            cols.push(f("Data", "integer", 0, |v| json!(len(v, "/data"))));
        }
        ("", "Service") => {
            cols.push(f("Type", "string", 0, |v| {
                json!(str_at(v, &["spec", "type"]).unwrap_or_default())
            }));
            cols.push(f("Cluster-IP", "string", 0, |v| {
                json!(str_at(v, &["spec", "clusterIP"]).unwrap_or("<none>"))
            }));
            cols.push(f("External-IP", "string", 0, external_ip));
            cols.push(f("Port(s)", "string", 0, service_ports));
        }
        ("", "Pod") => {
            cols.push(f("Ready", "string", 0, pod_ready));
            cols.push(f("Status", "string", 0, |v| {
                json!(str_at(v, &["status", "phase"]).unwrap_or("Pending"))
            }));
            cols.push(f("Restarts", "string", 0, pod_restarts));
        }
        ("apps", "Deployment") => {
            cols.push(f("Ready", "string", 0, |v| {
                json!(format!("{}/{}", int(v, "/status/readyReplicas"), replicas(v)))
            }));
            cols.push(f("Up-to-date", "integer", 0, |v| {
                json!(int(v, "/status/updatedReplicas"))
            }));
            cols.push(f("Available", "integer", 0, |v| {
                json!(int(v, "/status/availableReplicas"))
            }));
        }
        ("apps", "StatefulSet") => cols.push(f("Ready", "string", 0, |v| {
            json!(format!("{}/{}", int(v, "/status/readyReplicas"), replicas(v)))
        })),
        ("apps", "ReplicaSet") => {
            cols.push(f("Desired", "integer", 0, |v| json!(replicas(v))));
            cols.push(f("Current", "integer", 0, |v| json!(int(v, "/status/replicas"))));
            cols.push(f("Ready", "integer", 0, |v| {
                json!(int(v, "/status/readyReplicas"))
            }));
        }
        ("apps", "DaemonSet") => {
            cols.push(f("Desired", "integer", 0, |v| {
                json!(int(v, "/status/desiredNumberScheduled"))
            }));
            cols.push(f("Current", "integer", 0, |v| {
                json!(int(v, "/status/currentNumberScheduled"))
            }));
            cols.push(f("Ready", "integer", 0, |v| json!(int(v, "/status/numberReady"))));
            cols.push(f("Up-to-date", "integer", 0, |v| {
                json!(int(v, "/status/updatedNumberScheduled"))
            }));
            cols.push(f("Available", "integer", 0, |v| {
                json!(int(v, "/status/numberAvailable"))
            }));
        }
        ("batch", "Job") => {
            cols.push(f("Status", "string", 0, job_status));
            cols.push(f("Completions", "string", 0, |v| {
                json!(format!(
                    "{}/{}",
                    int(v, "/status/succeeded"),
                    v.pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            cols.push(Column {
                description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
                ..f("Created At", "date", 0, |v| json!(str_at(v, &["metadata", "creationTimestamp"])))
            });
            return cols;
        }
        _ => {}
    }
    cols.push(age_col());
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("apps", "Deployment") => {
            cols.push(f("Containers", "string", 1, |v| {
                json!(strings_at(v, "/spec/template/spec/containers", "name"))
            }));
            cols.push(f("Images", "string", 1, |v| {
                json!(strings_at(v, "/spec/template/spec/containers", "image"))
            }));
            cols.push(f("Selector", "string", 1, |v| {
                selector(v, "/spec/selector/matchLabels")
            }));
        }
        ("", "Service") => cols.push(f("Selector", "string", 1, |v| selector(v, "/spec/selector"))),
        _ => {}
    }
    cols
}

/// The columns for `ty`: a CRD version's printer columns for a custom
/// resource (NAME and AGE when it has none), the built-in printer's
/// otherwise.
pub fn columns_for(state: &State, ty: &ResourceType) -> Columns {
    if !ty.custom {
        return Columns(builtin_columns(ty));
    }
    let crd = state
        .list("apiextensions.k8s.io", "customresourcedefinitions", None)
        .into_iter()
        .map(|(_, c)| c)
        .find(|c| {
            str_at(c, &["spec", "group"]) == Some(ty.group.as_str())
                && str_at(c, &["spec", "names", "plural"]) == Some(ty.plural.as_str())
        });
    let printer = crd
        .as_ref()
        .and_then(|c| c.pointer("/spec/versions"))
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| str_at(v, &["name"]) == Some(ty.version.as_str()))
        })
        .and_then(|v| v["additionalPrinterColumns"].as_array())
        .cloned()
        .unwrap_or_default();
    if printer.is_empty() {
        return Columns(vec![name_col(), age_col()]);
    }
    let mut cols = vec![name_col()];
    for p in printer {
        let type_ = match p["type"].as_str().unwrap_or("string") {
            "integer" => "integer",
            "number" => "number",
            "boolean" => "boolean",
            "date" => "date",
            _ => "string",
        };
        cols.push(Column {
            name: p["name"].as_str().unwrap_or_default().into(),
            type_,
            format: "",
            description: p["description"].as_str().unwrap_or_default().into(),
            priority: p["priority"].as_i64().unwrap_or(0),
            cell: Cell::Path(p["jsonPath"].as_str().unwrap_or_default().into(), type_.into()),
        });
    }
    Columns(cols)
}

/// `2024-01-02T03:04:05Z` → seconds since the epoch.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

/// The age of a timestamp as kubectl shows it (`45s`, `3m12s`, `5h`, `2d3h`).
pub fn human_age(timestamp: &str) -> String {
    let Some(then) = parse_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    human_duration(now - then)
}

fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        with(mins, "m", secs % 60, "s")
    } else if mins < 180 {
        format!("{mins}m")
    } else if hours < 8 {
        with(hours, "h", mins % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with(days, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if hours < 24 * 365 * 8 {
        with(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

fn cell(c: &Column, obj: &Value) -> Value {
    match &c.cell {
        Cell::Name => json!(str_at(obj, &["metadata", "name"]).unwrap_or_default()),
        Cell::Age => json!(human_age(
            str_at(obj, &["metadata", "creationTimestamp"]).unwrap_or_default()
        )),
        Cell::Fn(f) => f(obj),
        Cell::Path(path, type_) => {
            let keys: Vec<&str> = path
                .trim_start_matches('.')
                .split('.')
                .filter(|k| !k.is_empty())
                .collect();
            let v = keys
                .iter()
                .try_fold(obj, |cur, k| cur.get(*k))
                .cloned()
                .unwrap_or(Value::Null);
            match (type_.as_str(), &v) {
                ("date", Value::String(s)) => json!(human_age(s)),
                (_, Value::Null) => json!("<none>"),
                _ => v,
            }
        }
    }
}

/// `includeObject`: what each row carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> Include {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn row(columns: &Columns, obj: &Value, include: Include, meta_version: &str) -> Value {
    let mut r = json!({"cells": columns.0.iter().map(|c| cell(c, obj)).collect::<Vec<_>>()});
    match include {
        Include::None => {}
        Include::Object => r["object"] = obj.clone(),
        Include::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": format!("meta.k8s.io/{meta_version}"),
                "metadata": obj["metadata"],
            })
        }
    }
    r
}

/// A Table of `objects` (`meta_version` is the `v` the client asked for).
pub fn table(
    columns: &Columns,
    meta_version: &str,
    objects: &[Value],
    metadata: Value,
    include: Include,
) -> Value {
    let defs: Vec<Value> = columns
        .0
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{meta_version}"),
        "metadata": metadata,
        "columnDefinitions": defs,
        "rows": objects.iter().map(|o| row(columns, o, include, meta_version)).collect::<Vec<_>>(),
    })
}

/// What a watch asked to be sent as tables needs to make them.
#[derive(Clone, Debug)]
pub struct WatchTable {
    pub columns: Columns,
    pub meta_version: &'static str,
    pub include: Include,
}

impl WatchTable {
    /// One watch event's object as a one-row Table.
    pub fn wrap(&self, obj: &Value) -> Value {
        let metadata = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        table(
            &self.columns,
            self.meta_version,
            std::slice::from_ref(obj),
            metadata,
            self.include,
        )
    }
}

/// A read's answer in the negotiated form: unchanged for JSON, a Table
/// (of a list's items, or of the one object) when the client asked for one.
pub fn respond(
    state: &State,
    req: &ApiRequest,
    ty: &ResourceType,
    format: Format,
    answer: ApiResponse,
) -> ApiResponse {
    let (Format::Table(meta_version), ApiResponse::Json(200, body)) = (format, &answer) else {
        return answer;
    };
    let columns = columns_for(state, ty);
    let include = Include::parse(req.param("includeObject").as_deref());
    let render = |o: &Value| {
        let mut o = o.clone();
        o["kind"] = json!(ty.kind);
        o["apiVersion"] = json!(ty.api_version());
        o
    };
    let t = match body.get("items").and_then(Value::as_array) {
        Some(items) => {
            let objects: Vec<Value> = items.iter().map(render).collect();
            table(
                &columns,
                meta_version,
                &objects,
                body["metadata"].clone(),
                include,
            )
        }
        None => {
            let metadata = json!({"resourceVersion": body["metadata"]["resourceVersion"]});
            table(&columns, meta_version, &[render(body)], metadata, include)
        }
    };
    ApiResponse::Json(200, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_shows_them() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(3 * 3600), "3h");
        assert_eq!(human_duration(2 * 86_400 + 3 * 3600), "2d3h");
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01Z"), Some(86_401));
        assert_eq!(parse_rfc3339("2024-03-01T00:00:00Z"), Some(1_709_251_200));
    }

    #[test]
    fn deployment_rows_show_ready_and_wide_columns() {
        let ty = super::super::kinds::builtins()
            .into_iter()
            .find(|t| t.kind == "Deployment")
            .unwrap();
        let cols = Columns(builtin_columns(&ty));
        let dep = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
            "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1},
        });
        let t = table(&cols, "v1", &[dep], json!({}), Include::Metadata);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[7], "app=web");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}

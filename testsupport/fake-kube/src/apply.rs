//! Writes that merge: server-side apply, JSON merge patch (RFC 7386), and
//! the `metadata.managedFields` bookkeeping they share with every write.
//!
//! Field ownership is tracked as the real server does it in outline: each
//! manager (by name, operation `Apply` or `Update`, and subresource) owns
//! a set of field paths, shown in `managedFields[].fieldsV1` (`f:` keys).
//! SIMPLIFICATIONS, compared with the real structured-merge-diff:
//! - Lists are atomic: an applied list replaces the live list wholesale and
//!   is owned as one field (the real server merges lists such as
//!   `containers` or `ports` by key, `k:{...}` entries, and sets by value).
//! - Paths are map keys only; no `.` self-ownership entries.
//! - An `Update` (create, replace, merge patch) owns the fields it changed.

use super::kinds::ResourceType;
use super::status::ApiError;
use super::util::{get_path, now_rfc3339};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

pub type Path = Vec<String>;

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: BTreeSet<Path>,
}

/// Metadata the server owns; never part of anyone's field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generateName",
];

/// Which part of an object a write touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status, when the type has a
    /// status subresource.
    Main,
    /// The `/status` subresource: only status.
    Status,
}

/// The leaf paths of `v` that belong to a write of `part` of `ty`.
pub fn tracked_paths(ty: &ResourceType, v: &Value, part: Part) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(map) = v.as_object() else { return out };
    for (k, child) in map {
        let keep = match (k.as_str(), part) {
            ("apiVersion" | "kind", _) => false,
            ("status", Part::Status) => true,
            (_, Part::Status) => false,
            ("status", Part::Main) => !ty.status_subresource,
            _ => true,
        };
        if !keep {
            continue;
        }
        if k == "metadata" {
            for (mk, mv) in child.as_object().into_iter().flatten() {
                if !SERVER_METADATA.contains(&mk.as_str()) {
                    leaves(mv, vec!["metadata".into(), mk.clone()], &mut out);
                }
            }
        } else {
            leaves(child, vec![k.clone()], &mut out);
        }
    }
    out
}

fn leaves(v: &Value, path: Path, out: &mut BTreeSet<Path>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                leaves(child, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `{"f:spec":{"f:replicas":{}}}` from paths.
fn fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            cur = cur
                .entry(format!("f:{k}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("maps only");
        }
    }
    Value::Object(root)
}

fn paths_of_fields_v1(v: &Value, path: Path, out: &mut BTreeSet<Path>) {
    let children: Vec<(&String, &Value)> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("f:"))
        .collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path);
        }
        return;
    }
    for (k, child) in children {
        let mut p = path.clone();
        p.push(k[2..].to_string());
        paths_of_fields_v1(child, p, out);
    }
}

/// The entries in an object's `metadata.managedFields`.
pub fn entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return vec![];
    };
    list.iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            paths_of_fields_v1(&e["fieldsV1"], vec![], &mut fields);
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: e["subresource"].as_str().map(str::to_string),
                fields,
            }
        })
        .collect()
}

/// Writes entries back (dropping those that own nothing).
pub fn set_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    let meta = obj["metadata"].as_object_mut().expect("metadata is a map");
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Sets `manager`'s entry to own `fields`, keeping the old timestamp when
/// nothing changed (so a no-op write stays a no-op).
fn put_entry(
    list: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
    fields: BTreeSet<Path>,
) {
    let same = |e: &Entry| {
        e.manager == manager && e.operation == operation && e.subresource.as_deref() == subresource
    };
    match list.iter_mut().find(|e| same(e)) {
        Some(e) if e.fields == fields && e.api_version == api_version => {}
        Some(e) => {
            e.fields = fields;
            e.api_version = api_version.into();
            e.time = now_rfc3339();
        }
        None => list.push(Entry {
            manager: manager.into(),
            operation: operation.into(),
            api_version: api_version.into(),
            time: now_rfc3339(),
            subresource: subresource.map(str::to_string),
            fields,
        }),
    }
}

/// Records a non-apply write (create, replace, merge patch, or a fake
/// controller's status write) by `manager`: it takes the fields whose
/// value it changed from whoever owned them; fields it removed are owned by
/// nobody any more.
pub fn record_update(ty: &ResourceType, old: Option<&Value>, new: &mut Value, manager: &str, part: Part) {
    let mut list = old.map(entries).unwrap_or_default();
    let new_paths = tracked_paths(ty, new, part);
    let changed: BTreeSet<Path> = new_paths
        .iter()
        .filter(|p| old.is_none_or(|o| get_path(o, p) != get_path(new, p)))
        .cloned()
        .collect();
    let removed: BTreeSet<Path> = old
        .map(|o| tracked_paths(ty, o, part))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| get_path(new, p).is_none())
        .collect();
    let subresource = (part == Part::Status).then_some("status");
    for e in list.iter_mut() {
        let before = e.fields.len();
        e.fields
            .retain(|f| !changed.iter().any(|c| overlaps(c, f)) && !removed.iter().any(|r| f.starts_with(r)));
        if e.fields.len() != before {
            e.time = now_rfc3339();
        }
    }
    if !changed.is_empty() {
        let mine = list
            .iter()
            .find(|e| {
                e.manager == manager && e.operation == "Update" && e.subresource.as_deref() == subresource
            })
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let fields = mine.union(&changed).cloned().collect();
        put_entry(
            &mut list,
            manager,
            "Update",
            &ty.api_version(),
            subresource,
            fields,
        );
    }
    list.retain(|e| !e.fields.is_empty());
    set_entries(new, &list);
}

/// Maps merge key by key; anything else (scalars, lists, null) replaces.
pub fn deep_merge(target: &mut Value, applied: &Value) {
    match (target.as_object_mut(), applied.as_object()) {
        (Some(t), Some(a)) => {
            for (k, v) in a {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => deep_merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = applied.clone(),
    }
}

/// RFC 7386 JSON merge patch: maps merge, `null` deletes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("made a map");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn remove_path(v: &mut Value, path: &Path) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = &mut *v;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
    // Drop maps the removal left empty.
    for depth in (1..parents.len() + 1).rev() {
        let prefix = &path[..depth];
        if get_path(v, prefix)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            let (last, parents) = prefix.split_last().expect("depth >= 1");
            let mut cur = &mut *v;
            for k in parents {
                cur = cur.get_mut(k).expect("exists");
            }
            cur.as_object_mut().expect("map").remove(last);
        } else {
            break;
        }
    }
}

fn render_path(p: &Path) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

/// Server-side apply of `applied` (the client's configuration, already
/// stripped of server-owned metadata) by `manager` onto `existing` (or
/// onto a new object). Fields whose value it would change and that another
/// manager owns are conflicts: 409 unless `force`, which takes them over.
/// Fields this manager applied last time and leaves out now are removed
/// from the object unless another manager also owns them. Everything it
/// applies is then merged in (maps recursively, lists replaced), and its
/// `Apply` entry owns exactly the applied fields.
pub fn server_side_apply(
    ty: &ResourceType,
    existing: Option<&Value>,
    base: Value,
    applied: &Value,
    manager: &str,
    force: bool,
    part: Part,
) -> Result<Value, ApiError> {
    let name = applied["metadata"]["name"].as_str().unwrap_or_default();
    let mut list = existing.map(entries).unwrap_or_default();
    let new_paths = tracked_paths(ty, applied, part);
    let subresource = (part == Part::Status).then_some("status");
    let is_mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource.as_deref() == subresource;
    if let Some(live) = existing {
        let mut conflicts: Vec<(String, String, Path)> = vec![];
        for p in &new_paths {
            let cur = get_path(live, p);
            if cur.is_none() || cur == get_path(applied, p) {
                continue;
            }
            for e in list.iter().filter(|e| !is_mine(e) && e.manager != manager) {
                if let Some(f) = e.fields.iter().find(|f| overlaps(p, f)) {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), f.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            let n = conflicts.len();
            let listed: Vec<String> = conflicts
                .iter()
                .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: {}", render_path(p)))
                .collect();
            let mut err = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {n} conflict{}: {}",
                    if n == 1 { "" } else { "s" },
                    listed.join("\n")
                ),
            );
            err.details = json!({
                "name": name,
                "group": ty.group,
                "kind": ty.plural,
                "causes": conflicts.iter().map(|(m, v, p)| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{m}\" using {v}"),
                    "field": render_path(p),
                })).collect::<Vec<_>>(),
            });
            return Err(err);
        }
        for e in list.iter_mut().filter(|e| e.manager != manager) {
            let before = e.fields.len();
            e.fields.retain(|f| !conflicts.iter().any(|(_, _, c)| c == f));
            if e.fields.len() != before {
                e.time = now_rfc3339();
            }
        }
    }
    let mut result = base;
    let previously_mine = list
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previously_mine.difference(&new_paths) {
        let shared = list
            .iter()
            .filter(|e| !is_mine(e))
            .any(|e| e.fields.iter().any(|f| overlaps(p, f)));
        if !shared && !new_paths.iter().any(|n| n.starts_with(p)) {
            remove_path(&mut result, p);
        }
    }
    let mut filtered = applied.clone();
    if let Some(m) = filtered.as_object_mut() {
        match part {
            Part::Main if ty.status_subresource => {
                m.remove("status");
            }
            Part::Status => m.retain(|k, _| k == "status" || k == "apiVersion" || k == "kind"),
            Part::Main => {}
        }
    }
    deep_merge(&mut result, &filtered);
    put_entry(
        &mut list,
        manager,
        "Apply",
        &ty.api_version(),
        subresource,
        new_paths,
    );
    list.retain(|e| !e.fields.is_empty());
    set_entries(&mut result, &list);
    Ok(result)
}

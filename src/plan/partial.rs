//! Values that are partly known at plan time.
//!
//! An attribute whose expression refers to something known only after
//! apply (the URI of an ECR repository created in the same run) is unknown
//! as a whole: apply computes it again, and references to it stay unknown.
//! For showing the plan, though, most of such a value is often known: a
//! manifest of three objects of which one field holds the unknown URI. This
//! module evaluates the expression with a placeholder in place of each
//! unknown reference, brings the result into the attribute's canonical form
//! (YAML and JSON documents parsed, as for any desired value), and then
//! replaces every leaf that holds a placeholder by `null`, listing its path.
//!
//! The one assumption: an unknown value stays inside the scalar it is
//! written in (a URI in `image: ...` does not turn into YAML structure).
//! A placeholder found in a key, or a whole value that is unknown, gives no
//! partial value.

use super::eval::{EvalError, Scope, eval_filling, normalize_attr};
use crate::Value;
use crate::config::Resource;

/// Text that stands for an unknown value while the rest is evaluated; no
/// stack writes it, and it survives YAML and JSON parsing as a plain scalar.
const PLACEHOLDER: &str = "meshform-unknown-4f1c2a7e";

/// A value with some of its leaves unknown until apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    /// The value in its canonical form, with each unknown leaf `null`.
    pub value: Value,
    /// The unknown leaves, as JSON Pointers (RFC 6901) into `value`, in
    /// the order they appear in it.
    pub unknown: Vec<String>,
}

/// The partly known value of attribute `name` of `resource`, whose value as
/// a whole is unknown at plan time; `None` when nothing useful is known
/// (the whole value, or a key, is unknown).
pub fn partial_attr(
    resource: &Resource,
    name: &str,
    stack_name: &str,
    scope: &dyn Scope,
) -> Result<Option<Partial>, EvalError> {
    let Some(attr) = resource.attrs.get(name) else {
        return Ok(None);
    };
    let Some(value) = eval_filling(&attr.expr, scope, Some(PLACEHOLDER))? else {
        return Ok(None);
    };
    let mut value = normalize_attr(resource.kind, name, value);
    let mut unknown = Vec::new();
    if !mark_unknown(&mut value, "", &mut unknown) || unknown.iter().any(|p| p.is_empty()) {
        return Ok(None);
    }
    // When `unknown` is empty, every unknown reference fell outside the
    // value (in a YAML comment, say): the value is shown whole, still
    // marked unknown as a whole, since apply computes it again.
    if name == "tags"
        && resource.kind.taggable
        && let Value::Object(tags) = &mut value
    {
        for (k, v) in crate::provider::ownership_tags(stack_name, &resource.name) {
            tags.insert(k, Value::String(v));
        }
    }
    Ok(Some(Partial { value, unknown }))
}

/// Replaces each string leaf holding a placeholder by `null` and records
/// its pointer; `false` when a key holds one (the shape itself is unknown).
fn mark_unknown(value: &mut Value, pointer: &str, out: &mut Vec<String>) -> bool {
    match value {
        Value::String(s) if s.contains(PLACEHOLDER) => {
            *value = Value::Null;
            out.push(pointer.to_string());
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .enumerate()
            .all(|(i, item)| mark_unknown(item, &format!("{pointer}/{i}"), out)),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains(PLACEHOLDER)) {
                return false;
            }
            map.iter_mut()
                .all(|(k, item)| mark_unknown(item, &format!("{pointer}/{}", escape(k)), out))
        }
        _ => true,
    }
}

/// A JSON Pointer reference token (RFC 6901: `~` is `~0`, `/` is `~1`).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The path of `pointer` (into `value`) as the human plan writes paths,
/// after `name`: `yaml[0].spec.template.spec.containers[0].image`.
pub fn display_path(name: &str, value: &Value, pointer: &str) -> String {
    let mut out = name.to_string();
    let mut at = Some(value);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{token}]"));
                at = token.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            Some(Value::Object(map)) => {
                out.push('.');
                out.push_str(&token);
                at = map.get(&token);
            }
            _ => {
                out.push('.');
                out.push_str(&token);
                at = None;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_leaves_become_null_with_their_pointers() {
        let mut v = json!([
            {"kind": "Deployment", "spec": {"image": format!("{PLACEHOLDER}:latest"), "replicas": 1}},
            {"metadata": {"labels": {"a/b": PLACEHOLDER, "c": "d"}}}
        ]);
        let mut out = Vec::new();
        assert!(mark_unknown(&mut v, "", &mut out));
        assert_eq!(out, ["/0/spec/image", "/1/metadata/labels/a~1b"]);
        assert_eq!(v[0]["spec"]["image"], Value::Null);
        assert_eq!(v[0]["spec"]["replicas"], 1);
        assert_eq!(v[1]["metadata"]["labels"]["c"], "d");
        assert_eq!(
            display_path("yaml", &v, "/1/metadata/labels/a~1b"),
            "yaml[1].metadata.labels.a/b"
        );
        assert_eq!(display_path("yaml", &v, "/0/spec/image"), "yaml[0].spec.image");
    }

    #[test]
    fn an_unknown_key_gives_no_partial_value() {
        let mut v = json!({"a": {PLACEHOLDER: 1}});
        assert!(!mark_unknown(&mut v, "", &mut Vec::new()));
    }
}

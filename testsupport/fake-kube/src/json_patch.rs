//! JSON patch (RFC 6902, `application/json-patch+json`): `add`, `remove`,
//! `replace`, `move`, `copy` and `test` at JSON pointers (RFC 6901, `~0`
//! and `~1` escapes, `-` for the end of a list). kubectl sends one when it
//! moves a client-side-applied object's field ownership over to
//! server-side apply (a `test` of the resourceVersion, then a `replace` of
//! `metadata.managedFields`), and `kubectl patch --type json` sends them.

use serde_json::Value;

/// Why a patch could not be applied (the caller answers 422).
#[derive(Debug, PartialEq)]
pub struct JsonPatchError(pub String);

fn err(msg: impl Into<String>) -> JsonPatchError {
    JsonPatchError(msg.into())
}

/// `/a/b~1c` → `["a", "b/c"]`.
fn tokens(pointer: &str) -> Result<Vec<String>, JsonPatchError> {
    if pointer.is_empty() {
        return Ok(vec![]);
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| err(format!("invalid JSON pointer {pointer:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index(token: &str, len: usize, allow_end: bool) -> Result<usize, JsonPatchError> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .map_err(|_| err(format!("invalid list index {token:?}")))?;
    let max = if allow_end { len } else { len.saturating_sub(1) };
    if i > max || (!allow_end && len == 0) {
        return Err(err(format!("list index {i} out of bounds")));
    }
    Ok(i)
}

/// The parent container of the pointer's target and the last token.
fn parent<'a>(doc: &'a mut Value, path: &[String]) -> Result<(&'a mut Value, String), JsonPatchError> {
    let (last, up) = path
        .split_last()
        .ok_or_else(|| err("the whole document cannot be the target here"))?;
    let mut cur = doc;
    for t in up {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| err(format!("missing path element {t:?}")))?,
            Value::Array(a) => {
                let i = index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => return Err(err(format!("path element {t:?} is inside a scalar"))),
        };
    }
    Ok((cur, last.clone()))
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Result<&'a Value, JsonPatchError> {
    path.iter().try_fold(doc, |cur, t| match cur {
        Value::Object(m) => m.get(t).ok_or_else(|| err(format!("missing path element {t:?}"))),
        Value::Array(a) => Ok(&a[index(t, a.len(), false)?]),
        _ => Err(err(format!("path element {t:?} is inside a scalar"))),
    })
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), JsonPatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (container, last) = parent(doc, path)?;
    match container {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = index(&last, a.len(), true)?;
            a.insert(i, value);
        }
        _ => return Err(err("cannot add inside a scalar")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, JsonPatchError> {
    let (container, last) = parent(doc, path)?;
    match container {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| err(format!("cannot remove missing key {last:?}"))),
        Value::Array(a) => {
            let i = index(&last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(err("cannot remove inside a scalar")),
    }
}

/// Applies the operations in order; any failure fails the whole patch.
pub fn apply(original: &Value, patch: &Value) -> Result<Value, JsonPatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| err("a JSON patch must be a list of operations"))?;
    let mut doc = original.clone();
    for op in ops {
        let name = op["op"]
            .as_str()
            .ok_or_else(|| err("an operation needs \"op\""))?;
        let path = tokens(
            op["path"]
                .as_str()
                .ok_or_else(|| err("an operation needs \"path\""))?,
        )?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| err(format!("{name} needs \"value\"")))
        };
        let from = || -> Result<Vec<String>, JsonPatchError> {
            tokens(
                op["from"]
                    .as_str()
                    .ok_or_else(|| err(format!("{name} needs \"from\"")))?,
            )
        };
        match name {
            "add" => add(&mut doc, &path, value()?)?,
            "remove" => {
                remove(&mut doc, &path)?;
            }
            "replace" => {
                get(&doc, &path)?;
                if path.is_empty() {
                    doc = value()?;
                } else {
                    remove(&mut doc, &path)?;
                    add(&mut doc, &path, value()?)?;
                }
            }
            "move" => {
                let moved = remove(&mut doc, &from()?)?;
                add(&mut doc, &path, moved)?;
            }
            "copy" => {
                let copied = get(&doc, &from()?)?.clone();
                add(&mut doc, &path, copied)?;
            }
            "test" => {
                if *get(&doc, &path)? != value()? {
                    return Err(err(format!(
                        "testing value {} failed: test failed",
                        op["path"].as_str().unwrap_or_default()
                    )));
                }
            }
            other => return Err(err(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_apply_in_order() {
        let doc = json!({"metadata": {"name": "a", "labels": {"x/y": "1"}}, "list": [1, 2]});
        let out = apply(
            &doc,
            &json!([
                {"op": "test", "path": "/metadata/name", "value": "a"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "add", "path": "/list/0", "value": 0},
                {"op": "remove", "path": "/metadata/labels/x~1y"},
                {"op": "replace", "path": "/metadata/name", "value": "b"},
                {"op": "copy", "from": "/metadata/name", "path": "/copied"},
                {"op": "move", "from": "/copied", "path": "/moved"},
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "b", "labels": {}}, "list": [0, 1, 2, 3], "moved": "b"})
        );
    }

    #[test]
    fn a_failed_test_or_missing_path_fails_the_whole_patch() {
        let doc = json!({"a": 1});
        assert!(apply(&doc, &json!([{"op": "test", "path": "/a", "value": 2}])).is_err());
        assert!(apply(&doc, &json!([{"op": "replace", "path": "/b", "value": 2}])).is_err());
        assert!(apply(&doc, &json!([{"op": "remove", "path": "/b"}])).is_err());
    }
}

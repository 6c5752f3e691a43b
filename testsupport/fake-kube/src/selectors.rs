//! `labelSelector` and `fieldSelector` query parameters.
//!
//! Label selectors take the real grammar's requirements: `a=b`, `a==b`,
//! `a!=b`, `a` (exists), `!a` (does not exist), `a in (x,y)` and
//! `a notin (x,y)`, joined by commas (all must hold). Field selectors take
//! `metadata.name` and `metadata.namespace` with `=`, `==` or `!=` (what the
//! real server supports for every resource) and the per-kind fields the
//! real server adds (`kinds::field_selectors`: an Event's
//! `involvedObject.*`, `reason`, `type`; a Pod's `status.phase`,
//! `spec.nodeName`; a Secret's `type`, ...); any other field is a 400, as
//! on the real server.

use super::kinds::ResourceType;
use super::status::ApiError;
use super::util::str_at;
use serde_json::Value;

#[derive(Clone, Debug)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Clone, Debug)]
enum FieldReq {
    /// (JSON path of the field, value).
    Eq(String, String),
    NotEq(String, String),
}

/// Both selectors of one request; the empty selector matches everything.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_label_req(req: &str) -> Result<LabelReq, ApiError> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: {req:?}"));
    if let Some(key) = req.strip_prefix('!') {
        return Ok(LabelReq::NotExists(key.trim().to_string()));
    }
    if let Some(open) = req.find('(') {
        let close = req.rfind(')').ok_or_else(bad)?;
        let head: Vec<&str> = req[..open].split_whitespace().collect();
        let values = req[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        return match head.as_slice() {
            [key, "in"] => Ok(LabelReq::In(key.to_string(), values)),
            [key, "notin"] => Ok(LabelReq::NotIn(key.to_string(), values)),
            _ => Err(bad()),
        };
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(LabelReq::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = req.split_once("==") {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = req.split_once('=') {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    if req.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(LabelReq::Exists(req.to_string()))
}

/// `extra`: the kind's own selectable fields, (selector name, JSON path).
fn parse_field_req(req: &str, extra: &[(&str, &str)]) -> Result<FieldReq, ApiError> {
    let (field, value, eq) = if let Some((f, v)) = req.split_once("!=") {
        (f, v, false)
    } else if let Some((f, v)) = req.split_once("==") {
        (f, v, true)
    } else if let Some((f, v)) = req.split_once('=') {
        (f, v, true)
    } else {
        return Err(ApiError::bad_request(format!(
            "invalid selector: '{req}'; can't understand '{req}'"
        )));
    };
    let field: String = match field.trim() {
        "metadata.name" => "/metadata/name".into(),
        "metadata.namespace" => "/metadata/namespace".into(),
        other => match extra.iter().find(|(name, _)| *name == other) {
            Some((_, path)) => format!("/{}", path.replace('.', "/")),
            None => {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {other}"
                )));
            }
        },
    };
    let value = value.trim().to_string();
    Ok(if eq {
        FieldReq::Eq(field, value)
    } else {
        FieldReq::NotEq(field, value)
    })
}

impl Selector {
    /// Parses the two query parameters (either may be absent) for a list
    /// of `ty`, whose own selectable fields are allowed too.
    pub fn for_type(
        ty: &ResourceType,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Selector, ApiError> {
        Selector::parse_with(labels, fields, super::kinds::field_selectors(ty))
    }

    fn parse_with(
        labels: Option<&str>,
        fields: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Selector, ApiError> {
        let labels = split_top(labels.unwrap_or(""))
            .iter()
            .map(|r| parse_label_req(r))
            .collect::<Result<_, _>>()?;
        let fields = split_top(fields.unwrap_or(""))
            .iter()
            .map(|r| parse_field_req(r, extra))
            .collect::<Result<_, _>>()?;
        Ok(Selector { labels, fields })
    }

    /// True when the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let label = |k: &str| str_at(obj, &["metadata", "labels", k]);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        // The field's value as the server compares it: text, or a number
        // or boolean written out; a missing field is "".
        let field = |path: &str| match obj.pointer(path) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let fields_ok = self.fields.iter().all(|r| match r {
            FieldReq::Eq(f, v) => field(f) == *v,
            FieldReq::NotEq(f, v) => field(f) != *v,
        });
        labels_ok && fields_ok
    }
}

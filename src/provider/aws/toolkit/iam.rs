//! IAM pieces shared by the IAM kinds: tag lists, attachments and policy
//! documents, as the stack gives them and as IAM returns them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::{AttachedPolicy, Tag};

use super::tags::tag_list;
use crate::provider::ProviderError;
use crate::{Attrs, Value};

/// IAM tags from a tag map.
pub fn iam_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tag_list(tags, |k, v| Tag::builder().key(k).value(v).build())
}

/// A tag map from IAM tags.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// The ARNs of attached managed policies.
pub fn attached_arns(policies: &[AttachedPolicy]) -> BTreeSet<String> {
    policies
        .iter()
        .filter_map(AttachedPolicy::policy_arn)
        .map(str::to_string)
        .collect()
}

/// The policy document in attribute `attr`, as text to send: a JSON string
/// is sent as given (after checking it parses), any other JSON object is
/// serialized.
pub fn document_text(desired: &Attrs, attr: &str) -> Result<String, ProviderError> {
    match desired.get(attr) {
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(s)
                .map_err(|e| ProviderError::invalid(attr, format!("not valid JSON: {e}")))?;
            Ok(s.clone())
        }
        Some(v @ Value::Object(_)) => serde_json::to_string(v)
            .map_err(|e| ProviderError::invalid(attr, format!("cannot serialize: {e}"))),
        Some(_) => Err(ProviderError::invalid(attr, "must be a JSON object")),
        None => Err(ProviderError::invalid(attr, "missing")),
    }
}

/// The desired document in attribute `attr` as a JSON value (what `read`
/// reports).
pub fn document_value(desired: &Attrs, attr: &str) -> Result<Value, ProviderError> {
    let text = document_text(desired, attr)?;
    serde_json::from_str(&text).map_err(|e| ProviderError::invalid(attr, format!("not valid JSON: {e}")))
}

/// Parses a policy document (`what`, for the error) as IAM returns it from
/// `operation`: URL-encoded JSON from real IAM, plain JSON from some
/// emulators.
pub fn parse_document(operation: &str, what: &str, text: &str) -> Result<Value, ProviderError> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_json::from_str::<Value>(&percent_decode(text))
        .map_err(|e| ProviderError::unexpected(operation, format!("{what} is not JSON: {e}")))
}

/// Decodes `%XX` escapes. Bytes that are not part of a valid escape are
/// kept as they are; `+` is not treated as a space (IAM encodes spaces as
/// `%20`).
pub fn percent_decode(text: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("%7B%22a%22%3A%20%22b%2Fc%22%7D"),
            r#"{"a": "b/c"}"#
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a+b"), "a+b");
    }

    #[test]
    fn documents_parse_plain_or_encoded() {
        let want = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        let parse = |text| parse_document("Op", "policy document", text).ok();
        assert_eq!(
            parse(r#"{"Version": "2012-10-17", "Statement": []}"#),
            Some(want.clone())
        );
        assert_eq!(
            parse("%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D"),
            Some(want)
        );
        assert!(parse("{not json").is_none());
    }

    #[test]
    fn documents_to_send() {
        let mut desired = Attrs::new();
        assert!(document_text(&desired, "policy").is_err());
        desired.insert("policy".into(), Value::String("{\"a\": 1}".into()));
        assert_eq!(
            document_text(&desired, "policy").ok().as_deref(),
            Some("{\"a\": 1}")
        );
        assert_eq!(
            document_value(&desired, "policy").ok(),
            Some(serde_json::json!({"a": 1}))
        );
        desired.insert("policy".into(), serde_json::json!({"b": 2}));
        assert_eq!(
            document_text(&desired, "policy").ok().as_deref(),
            Some(r#"{"b":2}"#)
        );
        desired.insert("policy".into(), Value::String("{".into()));
        assert!(document_text(&desired, "policy").is_err());
        desired.insert("policy".into(), serde_json::json!([1]));
        assert!(document_text(&desired, "policy").is_err());
    }
}

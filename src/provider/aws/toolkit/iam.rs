//! IAM pieces shared by the IAM kinds: tag lists and policy documents as
//! IAM returns them.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;

use super::tags::tag_list;
use crate::provider::ProviderError;

/// IAM tags from a tag map.
pub fn iam_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tag_list(tags, |k, v| Tag::builder().key(k).value(v).build())
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

//! Ownership: whether a resource carries this stack's `meshform:stack` and
//! `meshform:address` tags, and which of several owned resources a lookup
//! after a crash takes.

use std::collections::BTreeMap;

use crate::provider::{OpContext, TAG_ADDRESS, TAG_STACK};

/// True when the key/value pairs `tags` name `cx`'s stack and address as
/// the owner (both tags, both values).
pub fn owned_pairs<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, cx: &OpContext) -> bool {
    let (mut stack, mut address) = (false, false);
    for (k, v) in tags {
        stack |= k == TAG_STACK && v == cx.stack;
        address |= k == TAG_ADDRESS && v == cx.address;
    }
    stack && address
}

/// True when the tag map `tags` names `cx`'s stack and address as the owner.
pub fn owned_by(tags: &BTreeMap<String, String>, cx: &OpContext) -> bool {
    owned_pairs(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())), cx)
}

/// Who `tags` say owns a resource, for error messages.
pub fn owner_of(tags: &BTreeMap<String, String>) -> String {
    match (tags.get(TAG_STACK), tags.get(TAG_ADDRESS)) {
        (Some(s), Some(a)) => format!("its tags say it belongs to stack {s:?} address {a:?}"),
        (Some(s), None) => format!("its tags say it belongs to stack {s:?} (no {TAG_ADDRESS} tag)"),
        (None, Some(a)) => format!("its tags name address {a:?} but no stack"),
        (None, None) => format!("it carries no {TAG_STACK} / {TAG_ADDRESS} tags"),
    }
}

/// The first of `owned` (resources carrying a resource's ownership tags)
/// that state does not already track under another role (see
/// [`OpContext::exclude`]), warning when several remain.
pub fn first_owned<T>(
    owned: impl Iterator<Item = T>,
    cx: &OpContext,
    what: &str,
    id: impl Fn(&T) -> Option<&str>,
) -> Option<T> {
    let mut owned = owned.filter(|x| !id(x).is_some_and(|i| cx.exclude.iter().any(|e| e == i)));
    let first = owned.next()?;
    if owned.next().is_some() {
        tracing::warn!(address = %cx.address, "several {what} carry this resource's ownership tags; using the first");
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OpContext {
        OpContext {
            stack: "demo".into(),
            address: "aws.ec2.vpc.main".into(),
            ..OpContext::default()
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn owned_needs_both_tags_with_this_stack_and_address() {
        assert!(owned_by(
            &tags(&[
                (TAG_STACK, "demo"),
                (TAG_ADDRESS, "aws.ec2.vpc.main"),
                ("Name", "x")
            ]),
            &cx()
        ));
        assert!(!owned_by(&tags(&[(TAG_STACK, "demo")]), &cx()));
        assert!(!owned_by(
            &tags(&[(TAG_STACK, "other"), (TAG_ADDRESS, "aws.ec2.vpc.main")]),
            &cx()
        ));
        assert!(!owned_by(
            &tags(&[(TAG_STACK, "demo"), (TAG_ADDRESS, "aws.ec2.vpc.other")]),
            &cx()
        ));
    }

    #[test]
    fn first_owned_skips_what_state_tracks() {
        let mut cx = cx();
        cx.exclude = vec!["a".into()];
        let found = first_owned(["a", "b", "c"].into_iter(), &cx, "things", |s| Some(*s));
        assert_eq!(found, Some("b"));
        assert_eq!(first_owned(["a"].into_iter(), &cx, "things", |s| Some(*s)), None);
    }

    #[test]
    fn owner_of_names_what_the_tags_say() {
        assert!(
            owner_of(&tags(&[(TAG_STACK, "s"), (TAG_ADDRESS, "a")])).contains("stack \"s\" address \"a\"")
        );
        assert!(owner_of(&tags(&[])).contains("carries no"));
    }
}

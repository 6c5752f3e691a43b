//! Tags: the difference between a resource's tags and the desired ones, and
//! one sync that every service (EC2, IAM, ECR, EKS) runs through its own
//! "remove keys" and "set tags" calls.

use std::collections::BTreeMap;
use std::future::Future;

use crate::provider::ProviderError;

/// What must change to make a resource's tags equal to the desired ones.
/// Keys starting with `aws:` belong to AWS and are never removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChanges {
    /// Keys to remove.
    pub removed: Vec<String>,
    /// Tags to add or overwrite.
    pub set: BTreeMap<String, String>,
}

/// The changes turning `prior` into `desired` (`aws:` keys aside).
pub fn changes(prior: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> TagChanges {
    TagChanges {
        removed: prior
            .keys()
            .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
            .cloned()
            .collect(),
        set: desired
            .iter()
            .filter(|(k, v)| prior.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Makes a resource's tags equal to `desired`: `remove` is called with the
/// keys to remove, then `set` with the tags to add or change, each only
/// when there is something to do. The closures make the service's calls
/// (DeleteTags/CreateTags, UntagX/TagX, UntagResource/TagResource).
pub async fn sync<R, RFut, S, SFut>(
    prior: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    remove: R,
    set: S,
) -> Result<(), ProviderError>
where
    R: FnOnce(Vec<String>) -> RFut,
    RFut: Future<Output = Result<(), ProviderError>>,
    S: FnOnce(BTreeMap<String, String>) -> SFut,
    SFut: Future<Output = Result<(), ProviderError>>,
{
    let TagChanges {
        removed,
        set: changed,
    } = changes(prior, desired);
    if !removed.is_empty() {
        remove(removed).await?;
    }
    if !changed.is_empty() {
        set(changed).await?;
    }
    Ok(())
}

/// A service's tag list from a tag map, through its tag builder `build`
/// (IAM's and ECR's builders fail on a missing key or value).
pub fn tag_list<T, E: std::fmt::Display>(
    tags: &BTreeMap<String, String>,
    build: impl Fn(&str, &str) -> Result<T, E>,
) -> Result<Vec<T>, ProviderError> {
    tags.iter()
        .map(|(k, v)| build(k, v).map_err(|e| ProviderError::invalid("tags", e.to_string())))
        .collect()
}

/// Runs [`sync`] from tag map `$prior` to `$desired` through a service's
/// two tag calls: `untag` is the remove call's builder with the resource
/// set (it gets `set_tag_keys`), `tag` the set call's (it gets `set_tags`
/// with `$list` of the tags to set); the literals name them in errors. One
/// macro rather than one function per service, since each SDK has its own
/// builder types.
macro_rules! sync_with {
    ($prior:expr => $desired:expr; untag $untag:expr, $untag_op:literal; tag $tag:expr, $tag_op:literal; $list:expr) => {
        $crate::provider::aws::toolkit::tags::sync(
            $prior,
            $desired,
            |keys| async move {
                $untag
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| $crate::provider::ProviderError::aws($untag_op, e))
            },
            |set| async move {
                $tag.set_tags(Some($list(&set)?))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| $crate::provider::ProviderError::aws($tag_op, e))
            },
        )
        .await
    };
}
pub(crate) use sync_with;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::test_support::tags;
    use super::*;

    #[test]
    fn changes_remove_missing_keys_but_not_aws_ones_and_set_changed_values() {
        let prior = tags(&[("a", "1"), ("b", "2"), ("aws:cloudformation:stack", "x")]);
        let desired = tags(&[("b", "3"), ("c", "4")]);
        let c = changes(&prior, &desired);
        assert_eq!(c.removed, vec!["a".to_string()]);
        assert_eq!(c.set, tags(&[("b", "3"), ("c", "4")]));
        assert_eq!(changes(&desired, &desired), TagChanges::default());
    }

    #[tokio::test]
    async fn sync_calls_only_what_has_work() {
        let calls = Mutex::new(Vec::new());
        let prior = tags(&[("a", "1"), ("b", "2")]);
        sync(
            &prior,
            &tags(&[("a", "1"), ("b", "9")]),
            |keys| {
                calls.lock().unwrap().push(format!("remove {keys:?}"));
                async { Ok(()) }
            },
            |set| {
                calls.lock().unwrap().push(format!("set {set:?}"));
                async { Ok(()) }
            },
        )
        .await
        .unwrap();
        assert_eq!(*calls.lock().unwrap(), vec![r#"set {"b": "9"}"#.to_string()]);
    }
}

//! Helpers shared by the EC2 kinds: tags on create, tag sync, filters.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::Value;
use crate::provider::{OpContext, ProviderError, TAG_ADDRESS, TAG_STACK, tags_value};

/// Tags applied in the create call itself, so that a resource is never
/// untagged (and so never unfindable after a crash), not even for a moment.
pub fn tag_spec(resource_type: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource_type);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

/// The `tags` attribute value from an EC2 tag list.
pub fn tags_attr(tags: &[Tag]) -> Value {
    tags_value(
        tags.iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))),
    )
}

/// Makes the tags on `resource_id` equal to `desired` (`aws:` keys aside).
pub async fn sync_tags(
    ec2: &Client,
    resource_id: &str,
    prior: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let removed: Vec<&String> = prior
        .keys()
        .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
        .collect();
    if !removed.is_empty() {
        let mut call = ec2.delete_tags().resources(resource_id);
        for k in removed {
            call = call.tags(Tag::builder().key(k).build());
        }
        call.send()
            .await
            .map_err(|e| ProviderError::aws("DeleteTags", e))?;
    }
    let changed: Vec<(&String, &String)> = desired
        .iter()
        .filter(|(k, v)| prior.get(*k) != Some(*v))
        .collect();
    if !changed.is_empty() {
        let mut call = ec2.create_tags().resources(resource_id);
        for (k, v) in changed {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
        call.send()
            .await
            .map_err(|e| ProviderError::aws("CreateTags", e))?;
    }
    Ok(())
}

/// Filters matching resources that carry this stack's ownership tags for
/// `address`.
pub fn ownership_filters(stack: &str, address: &str) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{TAG_STACK}"))
            .values(stack)
            .build(),
        Filter::builder()
            .name(format!("tag:{TAG_ADDRESS}"))
            .values(address)
            .build(),
    ]
}

/// A filter on `name` matching any of `values`.
pub fn filter<I, S>(name: &str, values: I) -> Filter
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut f = Filter::builder().name(name);
    for v in values {
        f = f.values(v);
    }
    f.build()
}

/// True when an EC2 error code means "no such resource".
pub fn is_not_found(err: &ProviderError) -> bool {
    err.code()
        .is_some_and(|c| c.ends_with(".NotFound") || c.ends_with("NotFound"))
}

/// Most values EC2 accepts in one filter; longer id lists are split.
pub const MAX_FILTER_VALUES: usize = 200;

/// True when `tags` carry this stack's ownership tags for `address`.
///
/// Lookups by ownership tags check this on the client too: tag filters are
/// not honoured everywhere (moto ignores them on DescribeNatGateways and
/// returns every NAT gateway).
pub fn owned_by(tags: &[Tag], stack: &str, address: &str) -> bool {
    let has = |key: &str, value: &str| {
        tags.iter()
            .any(|t| t.key() == Some(key) && t.value() == Some(value))
    };
    has(TAG_STACK, stack) && has(TAG_ADDRESS, address)
}

/// The first of `owned` (resources carrying a resource's ownership tags)
/// that state does not already track under another role (see
/// [`OpContext::exclude`]), warning when several remain.
pub fn first_owned<T>(
    owned: impl Iterator<Item = T>,
    cx: &OpContext,
    what: &str,
    id: fn(&T) -> Option<&str>,
) -> Option<T> {
    let mut owned = owned.filter(|x| !id(x).is_some_and(|i| cx.exclude.iter().any(|e| e == i)));
    let first = owned.next()?;
    if owned.next().is_some() {
        tracing::warn!(address = %cx.address, "several {what} carry this resource's ownership tags; using the first");
    }
    Some(first)
}

/// Calls `poll` until it returns `Some`, sleeping between attempts (1s,
/// doubling up to 15s), and fails with [`ProviderError::Timeout`] after
/// `timeout`. The first poll is immediate.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    timeout: std::time::Duration,
    mut poll: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        if let Some(v) = poll().await? {
            return Ok(v);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(ProviderError::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(15));
    }
}

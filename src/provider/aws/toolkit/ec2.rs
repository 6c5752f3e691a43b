//! EC2: tags on create, the tag sync through DeleteTags/CreateTags, filters
//! (ownership, ids) split at the one filter-value limit.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::ownership;
use super::tags;
use crate::Value;
use crate::provider::{OpContext, ProviderError, TAG_ADDRESS, TAG_STACK, tags_value};

/// Most values EC2 accepts in one filter; longer id lists are split.
pub const MAX_FILTER_VALUES: usize = 200;

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

/// True when an EC2 tag list names `cx`'s stack and address as the owner.
///
/// Lookups by ownership tags check this on the client too: tag filters are
/// not honoured everywhere (moto ignores them on DescribeNatGateways and
/// returns every NAT gateway).
pub fn owned(tags: &[Tag], cx: &OpContext) -> bool {
    ownership::owned_pairs(tags.iter().filter_map(|t| Some((t.key()?, t.value()?))), cx)
}

/// Makes the tags on `resource_id` equal to `desired` (`aws:` keys aside).
pub async fn sync_tags(
    ec2: &Client,
    resource_id: &str,
    prior: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    tags::sync(
        prior,
        desired,
        |removed| async move {
            let keys = removed.iter().map(|k| Tag::builder().key(k).build()).collect();
            ec2.delete_tags()
                .resources(resource_id)
                .set_tags(Some(keys))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ProviderError::aws("DeleteTags", e))
        },
        |set| async move {
            let tags = set
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            ec2.create_tags()
                .resources(resource_id)
                .set_tags(Some(tags))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ProviderError::aws("CreateTags", e))
        },
    )
    .await
}

/// Filters matching resources that carry `cx`'s ownership tags.
pub fn ownership_filters(cx: &OpContext) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{TAG_STACK}"), [cx.stack.as_str()]),
        filter(&format!("tag:{TAG_ADDRESS}"), [cx.address.as_str()]),
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

/// Filters on `name`, each holding at most [`MAX_FILTER_VALUES`] of `values`:
/// one describe call per filter covers them all.
pub fn filters_in_chunks(name: &str, values: &[String]) -> Vec<Filter> {
    values
        .chunks(MAX_FILTER_VALUES)
        .map(|chunk| filter(name, chunk.iter().cloned()))
        .collect()
}

//! ElastiCache: tags by ARN (one `ListTagsForResource` per resource, the
//! service has no batch tag read), their sync through
//! `RemoveTagsFromResource`/`AddTagsToResource`, and the ownership check a
//! lookup after a crash makes.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_elasticache::Client;
use aws_sdk_elasticache::types::Tag;

use super::bounded::tags_by_arn;
use super::errors::Service;
use super::ownership::{owned_by, owner_of};
use super::send;
use crate::provider::{OpContext, ProviderError};

/// ElastiCache tags from a tag map.
pub fn tag_list(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    Ok(tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect())
}

/// The tags of one resource.
pub async fn tags(client: &Client, arn: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    let out = send!(
        client.list_tags_for_resource().resource_name(arn),
        "ListTagsForResource"
    )?;
    Ok(out
        .tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect())
}

/// The tags of many resources, by ARN, read under the bound (see
/// [`super::bounded`]); resources gone meanwhile are left out.
pub async fn tags_of_many(
    client: &Client,
    arns: Vec<String>,
) -> Result<HashMap<String, BTreeMap<String, String>>, ProviderError> {
    tags_by_arn(
        Service::ElastiCache,
        client,
        arns,
        |c: Client, arn: String| async move { tags(&c, &arn).await },
    )
    .await
}

/// Makes the tags of `arn` equal to `desired`.
pub async fn sync(
    client: &Client,
    arn: &str,
    prior: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    super::tags::sync_with! {
        prior => desired;
        untag client.remove_tags_from_resource().resource_name(arn), "RemoveTagsFromResource";
        tag client.add_tags_to_resource().resource_name(arn), "AddTagsToResource";
        tag_list
    }
}

/// For a lookup after a crash: `Ok(true)` when the resource named `name`
/// (a `what`) with these tags is this resource's, `Err` naming its owner
/// when the name is taken by something else (ElastiCache names are unique:
/// creating again would fail anyway).
pub fn claim(
    what: &str,
    name: &str,
    tags: &BTreeMap<String, String>,
    cx: &OpContext,
) -> Result<bool, ProviderError> {
    if owned_by(tags, cx) {
        return Ok(true);
    }
    Err(ProviderError::unexpected(
        what,
        format!(
            "{name} exists and is not owned by stack {} address {} ({})",
            cx.stack,
            cx.address,
            owner_of(tags)
        ),
    ))
}

//! Cloud Map (servicediscovery): its asynchronous operations (namespace
//! creates and deletes, instance deregistrations answer with an operation
//! id, polled with `GetOperation` until `SUCCESS` or `FAIL`) and its tags
//! (one `ListTagsForResource` per resource; there is no batch tag read).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_servicediscovery::Client;
use aws_sdk_servicediscovery::types::{OperationStatus, OperationTargetType, Tag};

use super::bounded::tags_by_arn;
use super::errors::Service;
use super::poll::{Poll, Step};
use super::send;
use super::tags::tag_list as service_tag_list;
use crate::provider::{Progress, ProviderError};

/// How long an operation may take (namespace creates take about a minute
/// on AWS: a Route 53 hosted zone is made).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Waits until operation `id` (`what` it does, for progress and errors)
/// succeeds, reporting its status; returns its targets (such as the
/// `NAMESPACE` id a create made). A `FAIL` is an error with Cloud Map's
/// code and message.
pub async fn wait_operation(
    client: &Client,
    id: &str,
    what: &str,
    progress: &Progress,
) -> Result<HashMap<OperationTargetType, String>, ProviderError> {
    Poll::new(what.to_string(), OPERATION_TIMEOUT)
        .reporting(progress)
        .run(|| async {
            let out = send!(client.get_operation().operation_id(id), "GetOperation")?;
            let op = out
                .operation()
                .ok_or_else(|| ProviderError::unexpected("GetOperation", "no operation in the response"))?;
            Ok(match op.status() {
                Some(OperationStatus::Success) => Step::Done(op.targets().cloned().unwrap_or_default()),
                Some(OperationStatus::Fail) => {
                    return Err(ProviderError::Api {
                        operation: "GetOperation".into(),
                        code: op.error_code().map(str::to_string),
                        message: format!(
                            "{what} failed (operation {id}): {}",
                            op.error_message().unwrap_or("no message given")
                        ),
                    });
                }
                other => Step::Waiting(format!(
                    "operation {id} {}",
                    other.map_or("unknown", OperationStatus::as_str)
                )),
            })
        })
        .await
}

/// The operation id a call answered with.
pub fn operation_id(id: Option<&str>, operation: &str) -> Result<String, ProviderError> {
    id.map(str::to_string)
        .ok_or_else(|| ProviderError::unexpected(operation, "no operation id in the response"))
}

/// Cloud Map tags from a tag map.
pub fn tag_list(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    service_tag_list(tags, |k, v| Tag::builder().key(k).value(v).build())
}

/// The tags of one resource.
pub async fn tags(client: &Client, arn: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    let out = send!(
        client.list_tags_for_resource().resource_arn(arn),
        "ListTagsForResource"
    )?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

/// The tags of many resources, by ARN, read under the bound.
pub async fn tags_of_many(
    client: &Client,
    arns: Vec<String>,
) -> Result<HashMap<String, BTreeMap<String, String>>, ProviderError> {
    tags_by_arn(
        Service::CloudMap,
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
        untag client.untag_resource().resource_arn(arn), "UntagResource";
        tag client.tag_resource().resource_arn(arn), "TagResource";
        tag_list
    }
}

//! The provider toolkit: the one way an AWS kind classifies errors, syncs
//! tags, checks ownership, waits and (for EC2) describes and finds its
//! resources. A kind file is its schema plus its few real API calls; what
//! every kind needs lives here, once.
//!
//! - [`errors`]: "not found" / "gone" by service, from one table of codes.
//! - [`tags`]: tag diffs and one sync for every service (EC2, IAM, ECR, EKS).
//! - [`ownership`]: the `meshform:stack` / `meshform:address` checks.
//! - [`poll`]: one poll loop with backoff, timeout and progress reports.
//! - [`iam`]: IAM tag lists and policy-document decoding.
//! - [`ec2`]: the EC2 kinds' trait (describe by ids, find by ownership
//!   tags, wait for a state), paging and the filter-value limit.
//! - [`shared_reads`]: describes several EC2 kinds share in one refresh.
//! - [`iam_details`]: IAM policies and roles from one paged
//!   `GetAccountAuthorizationDetails` per refresh.
//! - [`elasticache`]: ElastiCache tags (list, sync) and the tags of many
//!   resources read under the bound.
//! - [`cloudmap`]: Cloud Map's asynchronous operations (polled with
//!   `GetOperation`) and its tags.
//! - [`bounded`]: per-resource calls run concurrently under a limit that
//!   backs off on throttling.

pub mod bounded;
pub mod cloudmap;
pub mod ec2;
pub mod elasticache;
pub mod errors;
pub mod iam;
pub mod iam_details;
pub mod ownership;
pub mod poll;
pub mod prelude;
pub mod shared_reads;
pub mod tags;

/// Every item of a paginated list or describe call of any service (a
/// fluent builder), or its error named `$op`.
macro_rules! all_pages {
    ($call:expr, $op:literal) => {
        $call
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| $crate::provider::ProviderError::aws($op, e))
    };
}
pub(crate) use all_pages;

/// [`all_pages!`] for paginators without an item stream (Cloud Map's):
/// every page's `$items` list, concatenated.
macro_rules! all_pages_of {
    ($call:expr, $items:ident, $op:literal) => {
        $call
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| $crate::provider::ProviderError::aws($op, e))
            .map(|pages| {
                pages
                    .into_iter()
                    .flat_map(|p| p.$items().to_vec())
                    .collect::<Vec<_>>()
            })
    };
}
pub(crate) use all_pages_of;

/// Sends a call (a fluent builder) with the SDK's retries, mapping its
/// error to [`crate::provider::ProviderError::Api`] named `$op` (primary
/// creates use `send_once!` instead).
macro_rules! send {
    ($call:expr, $op:literal) => {
        $call
            .send()
            .await
            .map_err(|e| $crate::provider::ProviderError::aws($op, e))
    };
}
pub(crate) use send;

/// A list of strings that means a set, in canonical form (sorted, each
/// once), for kinds' `normalize`; any other value unchanged.
pub fn sorted_set(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Array(mut items) if items.iter().all(serde_json::Value::is_string) => {
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            items.dedup();
            serde_json::Value::Array(items)
        }
        other => other,
    }
}

/// A string value lowercased (names a service stores lowercased, such as
/// ElastiCache's), for kinds' `normalize`; any other value unchanged.
pub fn lowercase(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(s.to_ascii_lowercase()),
        other => other,
    }
}

/// The items each once, in order: the ids to ask about when several
/// requests name the same resource.
pub fn distinct(items: impl IntoIterator<Item = String>) -> Vec<String> {
    items
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Helpers shared by the toolkit's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;

    use crate::provider::ProviderError;

    /// A service error with `code`.
    pub fn api(code: &str) -> ProviderError {
        ProviderError::Api {
            operation: "Op".into(),
            code: Some(code.into()),
            message: code.into(),
        }
    }

    /// A tag map from pairs.
    pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

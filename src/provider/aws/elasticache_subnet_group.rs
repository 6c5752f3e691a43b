//! `aws.elasticache.subnet_group`: the subnets (of one VPC) ElastiCache may
//! place a cache's nodes in.
//!
//! The id is the group name. The subnets and the description change in
//! place (ModifyCacheSubnetGroup, which takes the whole new list). A
//! refresh lists every group of the region in one paged
//! DescribeCacheSubnetGroups and reads the tags of those state records one
//! call each, under the bound. Delete retries while a replication group
//! being deleted still holds the group (`CacheSubnetGroupInUse`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_elasticache::types::CacheSubnetGroup;

use super::toolkit::elasticache::{self as ec, claim, tag_list, tags_of_many};
use super::toolkit::errors::{Service, gone_is_done, unless_gone};
use super::toolkit::poll::Poll;
use super::toolkit::prelude::*;
use super::toolkit::{lowercase, sorted_set};

/// Description given to a group when none is set.
const DEFAULT_DESCRIPTION: &str = "Managed by meshform";
/// How long a delete waits for the caches using the group to go.
const DELETE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Schema of `aws.elasticache.subnet_group`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.elasticache.subnet_group",
    doc: "An ElastiCache cache subnet group. The id is the group name. Its subnets change in place.",
    attrs: attrs! {
        /// Group name, unique in the region (ElastiCache stores it lowercased).
        required name: String, force_new;
        /// Group description.
        optional description: String = Str(DEFAULT_DESCRIPTION);
        /// The subnets, all in one VPC. A set: order does not matter. Changes in place.
        required subnet_ids: StringList;
        /// The VPC of the subnets.
        computed vpc_id: String;
        /// The group's ARN.
        computed arn: String;
    },
    taggable: true,
    normalize: Some(normalize),
    identity: &[&["name"]],
    ..KindDef::BASE
};

/// The subnets are a set: compared sorted. ElastiCache stores the name
/// lowercased.
fn normalize(name: &str, value: Value) -> Value {
    match name {
        "subnet_ids" => sorted_set(value),
        "name" => lowercase(value),
        _ => value,
    }
}

/// Operations of `aws.elasticache.subnet_group`.
pub struct ElastiCacheSubnetGroup(pub Arc<AwsClients>);

/// The live view of a described group with its tags.
fn live(g: &CacheSubnetGroup, tags: &std::collections::BTreeMap<String, String>) -> Option<Live> {
    let name = g.cache_subnet_group_name()?;
    let mut subnets: Vec<String> = g
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier().map(str::to_string))
        .collect();
    subnets.sort();
    let mut attrs = Attrs::new();
    attrs.insert("name".into(), Value::from(name));
    attrs.insert(
        "description".into(),
        Value::from(g.cache_subnet_group_description().unwrap_or_default()),
    );
    attrs.insert("subnet_ids".into(), Value::from(subnets));
    attrs.insert("vpc_id".into(), Value::from(g.vpc_id().unwrap_or_default()));
    attrs.insert("arn".into(), Value::from(g.arn().unwrap_or_default()));
    attrs.insert("tags".into(), tags_value(tags.clone()));
    Some(Live {
        id: name.to_string(),
        attrs,
    })
}

impl ElastiCacheSubnetGroup {
    fn client(&self) -> &aws_sdk_elasticache::Client {
        &self.0.elasticache
    }

    /// One group by name; `None` when it does not exist.
    async fn describe(&self, name: &str) -> Result<Option<CacheSubnetGroup>, ProviderError> {
        let call = self
            .client()
            .describe_cache_subnet_groups()
            .cache_subnet_group_name(name);
        let found: Result<Vec<CacheSubnetGroup>, _> = all_pages!(call, "DescribeCacheSubnetGroups");
        Ok(unless_gone(Service::ElastiCache, found)?
            .and_then(|gs| gs.into_iter().find(|g| g.cache_subnet_group_name() == Some(name))))
    }

    /// One group's live view; `None` when it does not exist.
    async fn read_one(&self, name: &str) -> Result<Option<Live>, ProviderError> {
        let Some(g) = self.describe(name).await? else {
            return Ok(None);
        };
        let arn = g.arn().unwrap_or_default();
        let Some(tags) = unless_gone(Service::ElastiCache, ec::tags(self.client(), arn).await)? else {
            return Ok(None);
        };
        Ok(live(&g, &tags))
    }
}

/// ElastiCache stores group names lowercased.
fn group_name(desired: &Attrs) -> Result<String, ProviderError> {
    Ok(attr_str(desired, "name")?.to_ascii_lowercase())
}

#[async_trait]
impl ResourceKind for ElastiCacheSubnetGroup {
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let name = group_name(desired)?;
        let tags = attr_tags(desired);
        let call = self
            .client()
            .create_cache_subnet_group()
            .cache_subnet_group_name(&name)
            .cache_subnet_group_description(
                attr_opt_str(desired, "description").unwrap_or(DEFAULT_DESCRIPTION),
            )
            .set_subnet_ids(Some(attr_str_list(desired, "subnet_ids")))
            .set_tags(Some(tag_list(&tags)?).filter(|t| !t.is_empty()));
        let out = send_once!(call, "CreateCacheSubnetGroup")?;
        let g = out.cache_subnet_group().ok_or_else(|| {
            ProviderError::unexpected("CreateCacheSubnetGroup", "no subnet group in the response")
        })?;
        live(g, &tags)
            .ok_or_else(|| ProviderError::unexpected("CreateCacheSubnetGroup", "a group without a name"))
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        // One paged call lists every group; ElastiCache has no "these
        // names" parameter.
        let groups: Vec<CacheSubnetGroup> = all_pages!(
            self.client().describe_cache_subnet_groups(),
            "DescribeCacheSubnetGroups"
        )?;
        let wanted: Vec<&str> = requests.iter().map(|r| r.id.as_str()).collect();
        let groups: HashMap<String, CacheSubnetGroup> = groups
            .into_iter()
            .filter_map(|g| Some((g.cache_subnet_group_name()?.to_string(), g)))
            .filter(|(name, _)| wanted.contains(&name.as_str()))
            .collect();
        let arns = groups
            .values()
            .filter_map(|g| g.arn().map(str::to_string))
            .collect();
        let tags = tags_of_many(self.client(), arns).await?;
        Ok(requests
            .iter()
            .map(|r| {
                let g = groups.get(&r.id)?;
                live(g, tags.get(g.arn()?)?)
            })
            .collect())
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let name = prior.id.as_str();
        if change.has_any(&["subnet_ids", "description"]) {
            send!(
                self.client()
                    .modify_cache_subnet_group()
                    .cache_subnet_group_name(name)
                    .cache_subnet_group_description(
                        attr_opt_str(desired, "description").unwrap_or(DEFAULT_DESCRIPTION)
                    )
                    .set_subnet_ids(Some(attr_str_list(desired, "subnet_ids"))),
                "ModifyCacheSubnetGroup"
            )?;
        }
        if change.has("tags") {
            let arn = attr_str(&prior.attrs, "arn")?;
            ec::sync(self.client(), arn, &attr_tags(&prior.attrs), &attr_tags(desired)).await?;
        }
        self.read_one(name).await?.ok_or_else(|| {
            ProviderError::unexpected(
                "DescribeCacheSubnetGroups",
                format!("subnet group {name} vanished"),
            )
        })
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let name = prior.id.as_str();
        let poll = Poll::new(format!("cache subnet group {name} to be free"), DELETE_TIMEOUT)
            .pauses(Duration::from_secs(5), Duration::from_secs(30))
            .reporting(&cx.progress);
        let deleted = poll
            .retry_while(
                |e| e.code() == Some("CacheSubnetGroupInUse"),
                || async {
                    send!(
                        self.client()
                            .delete_cache_subnet_group()
                            .cache_subnet_group_name(name),
                        "DeleteCacheSubnetGroup"
                    )
                },
            )
            .await;
        gone_is_done(Service::ElastiCache, deleted)
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let name = group_name(desired)?;
        let Some(found) = self.read_one(&name).await? else {
            return Ok(None);
        };
        if cx.exclude.contains(&found.id) {
            return Ok(None);
        }
        claim(
            "CreateCacheSubnetGroup",
            &format!("cache subnet group {name}"),
            &attr_tags(&found.attrs),
            cx,
        )?;
        Ok(Some(found))
    }
}

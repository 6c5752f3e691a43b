//! `aws.elasticache.replication_group`: a Valkey or Redis OSS cache (one
//! primary, `num_cache_clusters - 1` replicas, cluster mode off).
//!
//! The id is the replication group id. Create waits until the group is
//! `available` (minutes on AWS), reporting its status. The node type, the
//! engine version and the description change in place
//! (ModifyReplicationGroup, applied immediately), the number of cache
//! clusters through IncreaseReplicaCount/DecreaseReplicaCount; each waits
//! for `available` again. Everything else forces a replacement.
//!
//! A refresh lists the region's replication groups and their member cache
//! clusters in two paged calls (DescribeReplicationGroups,
//! DescribeCacheClusters: the engine version, subnet group and security
//! groups are the members' facts, not the group's), plus one tag read per
//! group under the bound.
//!
//! The AUTH token is never returned by ElastiCache: read echoes the value
//! state recorded (while the group says AUTH is on), so it shows no drift
//! and a change of it in the stack still plans a replacement. State holds
//! that value as given for now; a later change (sensitive values) will
//! store a salted hash of it instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_elasticache::types::{CacheCluster, ReplicationGroup};

use super::toolkit::elasticache::{self as ec, claim, tag_list, tags_of_many};
use super::toolkit::errors::{Service, gone_is_done, unless_gone};
use super::toolkit::poll::{Poll, Step, read_until};
use super::toolkit::prelude::*;
use super::toolkit::{lowercase, sorted_set};
use crate::provider::Progress;

/// Description given to a group when none is set.
const DEFAULT_DESCRIPTION: &str = "Managed by meshform";
/// Engines a group may run.
const ENGINES: &[&str] = &["valkey", "redis"];
/// How long a create or a change may take to reach `available`.
const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// How long a group may take to disappear once deleted.
const DELETE_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Schema of `aws.elasticache.replication_group`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.elasticache.replication_group",
    doc: "An ElastiCache (Valkey or Redis OSS) replication group, cluster mode off. The id is the \
          group id. Node type, engine version and number of cache clusters change in place.",
    attrs: attrs! {
        /// Replication group id, unique in the region (lowercase).
        required replication_group_id: String, force_new;
        /// Group description; changes in place.
        optional description: String = Str(DEFAULT_DESCRIPTION);
        /// `valkey` or `redis`.
        required engine: String, force_new;
        /// Engine version, such as `8.0`; ElastiCache's default when unset. Changes in place
        /// (upgrades only).
        optional engine_version: String;
        /// Node type, such as `cache.t3.micro`; changes in place.
        required node_type: String;
        /// Cache clusters (nodes): one primary and the rest replicas; changes in place.
        optional num_cache_clusters: Int = Int(1);
        /// TLS between clients and the cache.
        optional transit_encryption_enabled: Bool = Bool(false), force_new;
        /// The AUTH token (16-128 printable characters; needs transit encryption). Sensitive:
        /// never shown, and state keeps only its salted hash. Never returned by ElastiCache: read
        /// echoes what state recorded, which the planner compares by hashing.
        optional auth_token: String, force_new, sensitive;
        /// VPC security groups of the nodes. A set.
        optional security_group_ids: StringList, force_new;
        /// The cache subnet group the nodes live in.
        optional subnet_group_name: String, force_new;
        /// The primary endpoint's address (what clients connect to).
        computed primary_endpoint_address: String;
        /// The primary endpoint's port (6379).
        computed port: Int;
        /// The group's ARN.
        computed arn: String;
        /// The group's status, `available` once usable.
        computed status: String;
    },
    taggable: true,
    normalize: Some(normalize),
    identity: &[&["replication_group_id"]],
    ..KindDef::BASE
};

/// Security groups are a set: compared sorted. ElastiCache stores the id
/// lowercased.
fn normalize(name: &str, value: Value) -> Value {
    match name {
        "security_group_ids" => sorted_set(value),
        "replication_group_id" => lowercase(value),
        _ => value,
    }
}

/// The engine version to show: the recorded one when the described one is
/// that version or a patch of it (`7.1` asked, `7.1.0` running: no
/// drift), else what runs; the recorded one when nothing says.
fn engine_version(described: Option<&str>, recorded: Option<&str>) -> Option<String> {
    match (described, recorded) {
        (Some(d), Some(r)) if d == r || d.strip_prefix(r).is_some_and(|rest| rest.starts_with('.')) => {
            Some(r.to_string())
        }
        (Some(d), _) => Some(d.to_string()),
        (None, r) => r.map(str::to_string),
    }
}

/// Operations of `aws.elasticache.replication_group`.
pub struct ElastiCacheReplicationGroup(pub Arc<AwsClients>);

/// The live view of a described group, its member clusters, its tags and
/// what state recorded (for the AUTH token, and for member facts when no
/// member is described: moto makes no member cache clusters).
fn live(
    g: &ReplicationGroup,
    members: &[&CacheCluster],
    tags: &BTreeMap<String, String>,
    recorded: Option<&Attrs>,
) -> Option<Live> {
    let id = g.replication_group_id()?;
    let member = members.first();
    let recorded_value = |name: &str| recorded.and_then(|r| r.get(name)).cloned();
    let endpoint = g.node_groups().first().and_then(|n| n.primary_endpoint());
    let mut attrs = Attrs::new();
    attrs.insert("replication_group_id".into(), Value::from(id));
    attrs.insert(
        "description".into(),
        Value::from(g.description().unwrap_or_default()),
    );
    attrs.insert(
        "engine".into(),
        Value::from(g.engine().or(member.and_then(|m| m.engine())).unwrap_or_default()),
    );
    let from_member = |name: &str, value: Option<Value>| value.or_else(|| recorded_value(name));
    let recorded_version = recorded.and_then(|r| attr_opt_str(r, "engine_version"));
    if let Some(v) = engine_version(member.and_then(|m| m.engine_version()), recorded_version) {
        attrs.insert("engine_version".into(), Value::from(v));
    }
    if let Some(v) = from_member(
        "subnet_group_name",
        member.and_then(|m| m.cache_subnet_group_name()).map(Value::from),
    ) {
        attrs.insert("subnet_group_name".into(), v);
    }
    let groups = member.map(|m| {
        let mut ids: Vec<String> = m
            .security_groups()
            .iter()
            .filter_map(|s| s.security_group_id().map(str::to_string))
            .collect();
        ids.sort();
        Value::from(ids)
    });
    if let Some(v) = from_member("security_group_ids", groups) {
        attrs.insert("security_group_ids".into(), v);
    }
    attrs.insert(
        "node_type".into(),
        Value::from(g.cache_node_type().unwrap_or_default()),
    );
    attrs.insert(
        "num_cache_clusters".into(),
        Value::from(g.member_clusters().len()),
    );
    attrs.insert(
        "transit_encryption_enabled".into(),
        Value::Bool(g.transit_encryption_enabled().unwrap_or(false)),
    );
    // ElastiCache never returns the token: echo the recorded one (a salted
    // hash, see `crate::sensitive`) while AUTH is on.
    if g.auth_token_enabled() == Some(true)
        && let Some(token) = recorded_value("auth_token")
    {
        attrs.insert("auth_token".into(), token);
    }
    attrs.insert(
        "primary_endpoint_address".into(),
        Value::from(endpoint.and_then(|e| e.address()).unwrap_or_default()),
    );
    attrs.insert(
        "port".into(),
        Value::from(endpoint.and_then(|e| e.port()).unwrap_or(0)),
    );
    attrs.insert("arn".into(), Value::from(g.arn().unwrap_or_default()));
    attrs.insert("status".into(), Value::from(g.status().unwrap_or_default()));
    attrs.insert("tags".into(), tags_value(tags.clone()));
    Some(Live {
        id: id.to_string(),
        attrs,
    })
}

/// The desired number of cache clusters, checked (1 to 6: a primary and
/// up to five replicas).
fn cache_clusters(desired: &Attrs) -> Result<i32, ProviderError> {
    let n = desired
        .get("num_cache_clusters")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    match i32::try_from(n) {
        Ok(n @ 1..=6) => Ok(n),
        _ => Err(ProviderError::invalid(
            "num_cache_clusters",
            format!("{n} is not from 1 to 6"),
        )),
    }
}

impl ElastiCacheReplicationGroup {
    fn client(&self) -> &aws_sdk_elasticache::Client {
        &self.0.elasticache
    }

    /// One group by id; `None` when it does not exist.
    async fn describe(&self, id: &str) -> Result<Option<ReplicationGroup>, ProviderError> {
        let call = self
            .client()
            .describe_replication_groups()
            .replication_group_id(id);
        let found: Result<Vec<ReplicationGroup>, _> = all_pages!(call, "DescribeReplicationGroups");
        Ok(unless_gone(Service::ElastiCache, found)?
            .and_then(|gs| gs.into_iter().find(|g| g.replication_group_id() == Some(id))))
    }

    /// The live views of the groups `requests` name (`None` for those that
    /// do not exist), from the batched reads.
    async fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        let wanted: Vec<&str> = requests.iter().map(|r| r.id.as_str()).collect();
        let groups: Vec<ReplicationGroup> = all_pages!(
            self.client().describe_replication_groups(),
            "DescribeReplicationGroups"
        )?;
        let groups: HashMap<String, ReplicationGroup> = groups
            .into_iter()
            .filter_map(|g| Some((g.replication_group_id()?.to_string(), g)))
            .filter(|(id, _)| wanted.contains(&id.as_str()))
            .collect();
        if groups.is_empty() {
            return Ok(requests.iter().map(|_| None).collect());
        }
        let clusters: Vec<CacheCluster> =
            all_pages!(self.client().describe_cache_clusters(), "DescribeCacheClusters")?;
        let arns = groups
            .values()
            .filter_map(|g| g.arn().map(str::to_string))
            .collect();
        let tags = tags_of_many(self.client(), arns).await?;
        Ok(requests
            .iter()
            .map(|r| {
                let g = groups.get(&r.id)?;
                let members: Vec<&CacheCluster> = clusters
                    .iter()
                    .filter(|c| c.replication_group_id() == Some(r.id.as_str()))
                    .collect();
                live(g, &members, tags.get(g.arn()?)?, Some(&r.attrs))
            })
            .collect())
    }

    /// Waits until group `id` is `available`, reporting its status; `what`
    /// names the wait ("to be created", "to apply the change").
    async fn wait_available(&self, id: &str, what: &str, progress: &Progress) -> Result<(), ProviderError> {
        Poll::new(format!("replication group {id} {what}"), AVAILABLE_TIMEOUT)
            .pauses(Duration::from_secs(2), Duration::from_secs(30))
            .reporting(progress)
            .run(|| async {
                let Some(g) = self.describe(id).await? else {
                    return Ok(Step::Waiting("not visible yet".into()));
                };
                Ok(match g.status().unwrap_or_default() {
                    "available" => Step::Done(()),
                    status @ ("create-failed" | "deleting") => {
                        return Err(ProviderError::unexpected(
                            "DescribeReplicationGroups",
                            format!("replication group {id} is {status}"),
                        ));
                    }
                    status => Step::Waiting(format!("status {status}")),
                })
            })
            .await
    }

    /// The group as read once it shows `accept`; `attrs` stand for what
    /// state records (the token, facts of members moto does not make).
    async fn read_back(
        &self,
        id: &str,
        attrs: Attrs,
        accept: impl Fn(&Live) -> bool,
    ) -> Result<Live, ProviderError> {
        read_until(self, id, attrs, accept).await
    }

    /// Brings the number of cache clusters from `from` to `to`.
    async fn resize(&self, id: &str, from: usize, to: i32) -> Result<(), ProviderError> {
        let replicas = to - 1;
        let c = self.client();
        if usize::try_from(to).is_ok_and(|to| to > from) {
            send!(
                c.increase_replica_count()
                    .replication_group_id(id)
                    .new_replica_count(replicas)
                    .apply_immediately(true),
                "IncreaseReplicaCount"
            )?;
        } else {
            send!(
                c.decrease_replica_count()
                    .replication_group_id(id)
                    .new_replica_count(replicas)
                    .apply_immediately(true),
                "DecreaseReplicaCount"
            )?;
        }
        Ok(())
    }
}

/// The engine, checked.
fn engine(desired: &Attrs) -> Result<&str, ProviderError> {
    let e = attr_str(desired, "engine")?;
    if ENGINES.contains(&e) {
        Ok(e)
    } else {
        Err(ProviderError::invalid(
            "engine",
            format!("{e:?} is not one of {}", ENGINES.join(", ")),
        ))
    }
}

/// Whether `live` shows what an update of `desired` changes.
fn shows(live: &Live, desired: &Attrs) -> bool {
    let same = |name: &str| desired.get(name).is_none_or(|v| live.attrs.get(name) == Some(v));
    ["node_type", "engine_version", "num_cache_clusters", "description"]
        .iter()
        .all(|n| same(n))
}

#[async_trait]
impl ResourceKind for ElastiCacheReplicationGroup {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let id = &attr_str(desired, "replication_group_id")?.to_ascii_lowercase();
        let tags = attr_tags(desired);
        let groups = attr_str_list(desired, "security_group_ids");
        let call = self
            .client()
            .create_replication_group()
            .replication_group_id(id)
            .replication_group_description(
                attr_opt_str(desired, "description").unwrap_or(DEFAULT_DESCRIPTION),
            )
            .engine(engine(desired)?)
            .set_engine_version(attr_opt_str(desired, "engine_version").map(str::to_string))
            .cache_node_type(attr_str(desired, "node_type")?)
            .num_cache_clusters(cache_clusters(desired)?)
            .transit_encryption_enabled(attr_bool(desired, "transit_encryption_enabled"))
            .set_auth_token(attr_opt_str(desired, "auth_token").map(str::to_string))
            .set_security_group_ids(Some(groups).filter(|g| !g.is_empty()))
            .set_cache_subnet_group_name(attr_opt_str(desired, "subnet_group_name").map(str::to_string))
            .set_tags(Some(tag_list(&tags)?).filter(|t| !t.is_empty()));
        send_once!(call, "CreateReplicationGroup")?;
        self.wait_available(id, "to be created", &cx.progress).await?;
        self.read_back(id, desired.clone(), |_| true).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.read_many(requests).await
    }

    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let id = prior.id.as_str();
        if change.has_any(&["node_type", "engine_version", "description"]) {
            let pick = |name: &str| {
                change
                    .has(name)
                    .then(|| attr_opt_str(desired, name).map(str::to_string))
                    .flatten()
            };
            send!(
                self.client()
                    .modify_replication_group()
                    .replication_group_id(id)
                    .set_cache_node_type(pick("node_type"))
                    .set_engine_version(pick("engine_version"))
                    .set_replication_group_description(pick("description"))
                    .apply_immediately(true),
                "ModifyReplicationGroup"
            )?;
            self.wait_available(id, "to apply the change", &cx.progress)
                .await?;
        }
        if change.has("num_cache_clusters") {
            let from = prior
                .attrs
                .get("num_cache_clusters")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(1);
            self.resize(id, from, cache_clusters(desired)?).await?;
            self.wait_available(id, "to change its replicas", &cx.progress)
                .await?;
        }
        if change.has("tags") {
            let arn = attr_str(&prior.attrs, "arn")?;
            ec::sync(self.client(), arn, &attr_tags(&prior.attrs), &attr_tags(desired)).await?;
        }
        let mut recorded = prior.attrs.clone();
        recorded.extend(desired.iter().map(|(k, v)| (k.clone(), v.clone())));
        let want_tags = attr_tags(desired);
        self.read_back(id, recorded, |l| {
            shows(l, desired) && attr_tags(&l.attrs) == want_tags
        })
        .await
    }

    /// Deletes the group (without a final snapshot) and waits until
    /// ElastiCache no longer lists it, reporting its status.
    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let id = prior.id.as_str();
        let sent = send!(
            self.client().delete_replication_group().replication_group_id(id),
            "DeleteReplicationGroup"
        );
        match sent {
            // Already being deleted (a run interrupted during the wait).
            Err(e) if e.code() == Some("InvalidReplicationGroupState") => {}
            other => gone_is_done(Service::ElastiCache, other)?,
        }
        Poll::new(format!("replication group {id} to be deleted"), DELETE_TIMEOUT)
            .pauses(Duration::from_secs(2), Duration::from_secs(30))
            .reporting(&cx.progress)
            .run(|| async {
                Ok(match self.describe(id).await? {
                    None => Step::Done(()),
                    Some(g) => Step::Waiting(format!("status {}", g.status().unwrap_or("unknown"))),
                })
            })
            .await
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let id = &attr_str(desired, "replication_group_id")?.to_ascii_lowercase();
        let Some(g) = self.describe(id).await? else {
            return Ok(None);
        };
        if cx.exclude.iter().any(|e| e == id) {
            return Ok(None);
        }
        let arn = g.arn().unwrap_or_default();
        let Some(tags) = unless_gone(Service::ElastiCache, ec::tags(self.client(), arn).await)? else {
            return Ok(None);
        };
        claim(
            "CreateReplicationGroup",
            &format!("replication group {id}"),
            &tags,
            cx,
        )?;
        // Found while still being created: returned once usable, as a create would.
        self.wait_available(id, "to be created", &cx.progress).await?;
        self.read_back(id, desired.clone(), |_| true).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_patch_of_the_asked_version_is_no_drift() {
        assert_eq!(engine_version(Some("7.1.0"), Some("7.1")).as_deref(), Some("7.1"));
        assert_eq!(engine_version(Some("7.1"), Some("7.1")).as_deref(), Some("7.1"));
        assert_eq!(
            engine_version(Some("7.10.0"), Some("7.1")).as_deref(),
            Some("7.10.0")
        );
        assert_eq!(
            engine_version(Some("8.0.1"), Some("7.1")).as_deref(),
            Some("8.0.1")
        );
        assert_eq!(engine_version(None, Some("7.1")).as_deref(), Some("7.1"));
        assert_eq!(engine_version(Some("7.1.0"), None).as_deref(), Some("7.1.0"));
    }

    #[test]
    fn cache_clusters_are_one_to_six() {
        let attrs = |n: i64| Attrs::from_iter([("num_cache_clusters".to_string(), Value::from(n))]);
        assert_eq!(cache_clusters(&attrs(1)).ok(), Some(1));
        assert_eq!(cache_clusters(&attrs(6)).ok(), Some(6));
        assert!(cache_clusters(&attrs(0)).is_err());
        assert!(cache_clusters(&attrs(7)).is_err());
        assert_eq!(
            normalize("replication_group_id", Value::from("Dapr")),
            Value::from("dapr")
        );
    }
}

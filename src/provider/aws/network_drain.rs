//! `aws.ec2.network_drain`: at destroy, sweeps the load balancers and
//! network resources a Kubernetes cluster's controllers left in its VPC, then
//! waits until the VPC is free of them.
//!
//! When a Kubernetes Service of type LoadBalancer (or an Ingress handled by
//! the AWS Load Balancer Controller) is deleted, its controller deletes the
//! load balancer, and AWS removes the load balancer's network interfaces
//! asynchronously. Until they are gone, deleting the VPC's subnets or the VPC
//! itself fails with a dependency violation (moto, which does not check,
//! silently strands them). A stack therefore puts this resource between the
//! two layers: it depends on the network resources (so it is deleted before
//! them), and the in-cluster resources depend on it (so they are deleted
//! before it).
//!
//! Nothing is created in AWS: create only checks that the VPC exists, and
//! the id is `drain:<vpc_id>:<cluster_name>`. Read reports the resource while
//! its VPC exists (one filtered DescribeVpcs for all resources read
//! together).
//!
//! # Delete: sweep, then wait
//!
//! By graph order the in-cluster layer is already deleted when the drain is,
//! or the cluster is unreachable or has no nodes, so no controller will clean
//! up any more. Each round of the delete therefore deletes what the
//! controllers left, in dependency order, naming each in a progress report:
//!
//! 1. application and network load balancers (Elastic Load Balancing v2,
//!    listed and filtered by `VpcId` on the client, tags read 20 ARNs per
//!    DescribeTags) and classic load balancers (their `VPCId`, 20 names per
//!    DescribeTags);
//! 2. target groups in the VPC (DeleteTargetGroup fails with `ResourceInUse`
//!    while a load balancer still uses one: retried next round);
//! 3. network interfaces that are `available` (attached ones go with their
//!    instance or load balancer and are waited for);
//! 4. security groups, never the VPC's `default` one (`DependencyViolation`
//!    while load balancer interfaces still use one: retried next round).
//!    Ingress rules of other groups in the VPC that admit a swept group are
//!    revoked first, as the controllers themselves do before deleting it
//!    (the in-tree cloud provider adds such rules to the nodes' group, which
//!    may outlive the drain).
//!
//! Only resources carrying the cluster's ownership tags are deleted: the tag
//! key `kubernetes.io/cluster/<cluster_name>` (any value; the in-tree cloud
//! provider's tag on classic and network load balancers and their security
//! groups) or the tag `elbv2.k8s.aws/cluster=<cluster_name>` (the AWS Load
//! Balancer Controller's). `service.k8s.aws/stack` and `ingress.k8s.aws/stack`
//! name the Service or Ingress but not the cluster, so alone they are not
//! enough; they (and the in-tree `kubernetes.io/service-name`) are shown in
//! names. Even when tagged for the cluster, a resource that also carries
//! `aws:eks:cluster-name` (the cluster security group EKS makes and deletes
//! with the cluster) or meshform's own `meshform:stack` tag (the stack
//! deletes it) is never deleted.
//!
//! Never touched, but waited for and named in the timeout failure as "not
//! tagged for cluster X; left alone": any other load balancer in the VPC
//! (untagged, or tagged for another cluster), and network interfaces that
//! look like a load balancer's (description starting with `ELB `, requester
//! `amazon-elb`; AWS does not tag those). Interfaces tagged
//! `cluster.k8s.amazonaws.com/name=<cluster_name>` (the VPC CNI's, on nodes)
//! and tagged interfaces still attached are waited for too. Untagged target
//! groups and security groups are neither touched nor waited for.
//!
//! After each round the delete polls again, backing off from 2 s to 15 s,
//! until nothing tagged for the cluster or looking like a load balancer
//! remains, for at most `timeout_seconds`; the timeout error names every
//! remaining item and why it remains. When a round deleted everything it
//! found, the next look is immediate. NotFound answers to deletes mean
//! already gone. Deleting a VPC that is gone succeeds at once.
//!
//! The VPC CNI's node interfaces go away with the nodes, so a stack's node
//! groups must be deleted before the drain is, or the delete waits for them
//! until it times out.
//!
//! # What moto 5.2.5 cannot show
//!
//! moto creates no network interfaces for load balancers, lets a security
//! group be deleted while a load balancer or interface uses it or another
//! group's rule admits it (no `DependencyViolation`), lets an attached
//! interface be deleted, gives network load balancers `.../app/...` ARNs,
//! and answers DescribeTags for an unknown ELBv2 ARN with empty tags rather
//! than `LoadBalancerNotFound`. It does answer `ResourceInUse` for a target
//! group a listener uses, and reports `VpcId`/`VPCId` on load balancers and
//! target groups. The tests show what it can.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{
    IpPermission, NetworkInterface, NetworkInterfaceStatus, SecurityGroup, UserIdGroupPair,
};

use super::toolkit::distinct;
use super::toolkit::ec2::{filter, filters_in_chunks};
use super::toolkit::errors::Service;
use super::toolkit::prelude::*;
use crate::provider::TAG_STACK;

/// The default of `timeout_seconds`: 20 minutes.
const DEFAULT_TIMEOUT_SECONDS: i64 = 1200;
/// The first pause between two polls of a delete.
const FIRST_DELAY: Duration = Duration::from_secs(2);
/// The longest pause between two polls of a delete.
const MAX_DELAY: Duration = Duration::from_secs(15);
/// Most resources one Elastic Load Balancing DescribeTags call accepts (both
/// APIs).
const MAX_TAG_BATCH: usize = 20;
/// Tag key prefix of the in-tree cloud provider's ownership tag
/// (`kubernetes.io/cluster/<name>`, any value).
const TAG_CLUSTER_PREFIX: &str = "kubernetes.io/cluster/";
/// The AWS Load Balancer Controller's ownership tag (value: the cluster).
const TAG_LBC_CLUSTER: &str = "elbv2.k8s.aws/cluster";
/// The VPC CNI's tag on the interfaces it adds to nodes (value: the cluster).
const TAG_CNI_CLUSTER: &str = "cluster.k8s.amazonaws.com/name";
/// The tag EKS puts on what it manages itself, such as the cluster security
/// group (which also carries `kubernetes.io/cluster/<name>`).
const TAG_EKS_CLUSTER: &str = "aws:eks:cluster-name";

/// Schema of `aws.ec2.network_drain`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.network_drain",
    doc: "Creates nothing in AWS; when deleted, deletes the load balancers, target groups, \
          network interfaces and security groups tagged for a Kubernetes cluster in its VPC, \
          then waits until they and any other load balancer there are gone.",
    attrs: attrs! {
        /// The VPC to sweep and watch.
        required vpc_id: String, force_new;
        /// The Kubernetes (EKS) cluster whose load balancers and network resources are swept.
        required cluster_name: String, force_new;
        /// How long a delete waits for the VPC to be free of them before it fails.
        optional timeout_seconds: Int = Int(DEFAULT_TIMEOUT_SECONDS);
    },
    ..KindDef::BASE
};

/// Operations of `aws.ec2.network_drain`.
pub struct NetworkDrain(pub Arc<AwsClients>);

/// Tags by key.
type Tags = BTreeMap<String, String>;

/// The resource's id: `drain:<vpc_id>:<cluster_name>`.
fn drain_id(vpc_id: &str, cluster_name: &str) -> String {
    format!("drain:{vpc_id}:{cluster_name}")
}

/// The VPC id and cluster name in an id made by [`drain_id`].
fn parse_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("drain:")?;
    let (vpc, cluster) = rest.split_once(':')?;
    Some((vpc, cluster))
}

/// `timeout_seconds` from attributes: the default when absent, never negative.
fn timeout_seconds(attrs: &Attrs) -> i64 {
    attrs
        .get("timeout_seconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
        .max(0)
}

/// The live view: the attributes themselves, as nothing exists in AWS.
fn live(vpc_id: &str, cluster_name: &str, timeout: i64) -> Live {
    let mut attrs = Attrs::new();
    attrs.insert("vpc_id".into(), Value::from(vpc_id));
    attrs.insert("cluster_name".into(), Value::from(cluster_name));
    attrs.insert("timeout_seconds".into(), Value::from(timeout));
    Live {
        id: drain_id(vpc_id, cluster_name),
        attrs,
    }
}

/// The live view from desired attributes, checking them.
fn live_from_desired(desired: &Attrs) -> Result<Live, ProviderError> {
    let vpc_id = attr_str(desired, "vpc_id")?;
    let cluster = attr_str(desired, "cluster_name")?;
    if vpc_id.is_empty() {
        return Err(ProviderError::invalid("vpc_id", "must not be empty"));
    }
    if cluster.is_empty() {
        return Err(ProviderError::invalid("cluster_name", "must not be empty"));
    }
    if let Some(t) = desired.get("timeout_seconds") {
        match t.as_i64() {
            Some(n) if n >= 0 => {}
            _ => {
                return Err(ProviderError::invalid(
                    "timeout_seconds",
                    "must be a non-negative integer",
                ));
            }
        }
    }
    Ok(live(vpc_id, cluster, timeout_seconds(desired)))
}

/// The VPC id and cluster name of a resource recorded in state: from its
/// attributes, else from its id.
fn vpc_and_cluster<'a>(id: &'a str, attrs: &'a Attrs) -> Option<(&'a str, &'a str)> {
    match (attr_opt_str(attrs, "vpc_id"), attr_opt_str(attrs, "cluster_name")) {
        (Some(v), Some(c)) if !v.is_empty() && !c.is_empty() => Some((v, c)),
        _ => parse_id(id),
    }
}

/// Tags of an EC2 resource as a map.
fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

/// Whether `tags` carry one of `cluster`'s ownership tags (see the module
/// documentation): what makes a resource the drain's to delete.
fn tagged_for(tags: &Tags, cluster: &str) -> bool {
    tags.keys()
        .any(|k| k.strip_prefix(TAG_CLUSTER_PREFIX) == Some(cluster))
        || tags.get(TAG_LBC_CLUSTER).map(String::as_str) == Some(cluster)
}

/// Who a resource belongs to, by its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// Tagged for the cluster, and nobody else deletes it: the drain does.
    Ours,
    /// Not tagged for the cluster: never touched.
    Foreign,
    /// Deleted by someone else even if tagged for the cluster (EKS, or a
    /// meshform stack): never touched. The text names who.
    ManagedBy(String),
}

/// Who a resource with `tags` belongs to, from `cluster`'s point of view.
fn claim(tags: &Tags, cluster: &str) -> Claim {
    if let Some(stack) = tags.get(TAG_STACK) {
        return Claim::ManagedBy(format!("meshform stack {stack}"));
    }
    if tags.contains_key(TAG_EKS_CLUSTER) {
        return Claim::ManagedBy("EKS".to_string());
    }
    if tagged_for(tags, cluster) {
        Claim::Ours
    } else {
        Claim::Foreign
    }
}

/// The Service or Ingress a controller made a resource for, from its tags:
/// `service yelb/yelb-ui`.
fn owner_label(tags: &Tags) -> Option<String> {
    [
        ("service.k8s.aws/stack", "service"),
        ("ingress.k8s.aws/stack", "ingress"),
        ("kubernetes.io/service-name", "service"),
    ]
    .iter()
    .find_map(|(key, what)| tags.get(*key).map(|v| format!("{what} {v}")))
}

/// Whether `eni` is waited for as the cluster's: tagged for it (its
/// ownership tags or the VPC CNI's), or a load balancer's interface (see
/// the module documentation). Load balancer interfaces carry no tags on
/// AWS, so those of other load balancers in the VPC are waited for too.
fn belongs_to_cluster(eni: &NetworkInterface, cluster: &str) -> bool {
    let tags = ec2_tags(eni.tag_set());
    tagged_for(&tags, cluster)
        || tags.get(TAG_CNI_CLUSTER).map(String::as_str) == Some(cluster)
        || eni.description().is_some_and(|d| d.starts_with("ELB "))
        || eni.requester_id() == Some("amazon-elb")
}

/// The kinds of things the drain sweeps or waits for, in the order a round
/// deletes them (load balancers first: they hold target groups, interfaces
/// and security groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    LoadBalancer,
    ClassicLoadBalancer,
    TargetGroup,
    NetworkInterface,
    SecurityGroup,
}

impl Kind {
    /// What messages call one of this kind, and several.
    fn nouns(self) -> (&'static str, &'static str) {
        match self {
            Kind::LoadBalancer => ("load balancer", "load balancers"),
            Kind::ClassicLoadBalancer => ("classic load balancer", "classic load balancers"),
            Kind::TargetGroup => ("target group", "target groups"),
            Kind::NetworkInterface => ("network interface", "network interfaces"),
            Kind::SecurityGroup => ("security group", "security groups"),
        }
    }
}

/// What the drain does with an item it found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Delete it: it carries the cluster's ownership tags.
    Sweep,
    /// Leave it alone and wait for it to go; the text says why.
    Wait(String),
}

/// One thing in the VPC that the drain sweeps or waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    kind: Kind,
    /// ARN (load balancers v2, target groups), name (classic load
    /// balancers) or id (interfaces, security groups).
    id: String,
    /// What else names it: an interface's description, a group's name, the
    /// Service a load balancer serves.
    detail: Option<String>,
    plan: Plan,
}

impl Item {
    /// The item as messages name it: `load balancer arn:... (service
    /// yelb/yelb-ui)`, with `note` (why it remains) in the parentheses.
    fn name(&self, note: Option<&str>) -> String {
        let (noun, _) = self.kind.nouns();
        let parts: Vec<&str> = self.detail.iter().map(String::as_str).chain(note).collect();
        if parts.is_empty() {
            format!("{noun} {}", self.id)
        } else {
            format!("{noun} {} ({})", self.id, parts.join("; "))
        }
    }
}

/// The note on an item of `cluster` that the drain leaves alone.
fn left_alone(cluster: &str) -> String {
    format!("not tagged for cluster {cluster}; left alone")
}

/// How the drain treats a load balancer with `tags`: all are waited for,
/// only the cluster's are deleted.
fn load_balancer_plan(tags: &Tags, cluster: &str) -> Plan {
    match claim(tags, cluster) {
        Claim::Ours => Plan::Sweep,
        Claim::Foreign => Plan::Wait(left_alone(cluster)),
        Claim::ManagedBy(by) => Plan::Wait(format!("managed by {by}; left alone")),
    }
}

/// A load balancer's key as its interfaces' descriptions give it (`ELB
/// <key>`): `app/<name>/<id>` or `net/<name>/<id>` from a v2 ARN.
fn elbv2_key(arn: &str) -> Option<&str> {
    arn.split_once(":loadbalancer/").map(|(_, key)| key)
}

/// How the drain treats `eni` of `cluster` (one [`belongs_to_cluster`]
/// accepts): delete it when tagged for the cluster and not attached, else
/// wait. `swept_lbs` holds the keys ([`elbv2_key`], classic names) of load
/// balancers the drain deleted, whose interfaces AWS removes by itself.
fn interface_plan(eni: &NetworkInterface, cluster: &str, swept_lbs: &HashSet<String>) -> Plan {
    let tags = ec2_tags(eni.tag_set());
    match claim(&tags, cluster) {
        Claim::ManagedBy(by) => Plan::Wait(format!("managed by {by}; left alone")),
        Claim::Ours if eni.status() == Some(&NetworkInterfaceStatus::Available) => Plan::Sweep,
        Claim::Ours => Plan::Wait("attached; goes with its instance or load balancer".to_string()),
        Claim::Foreign => {
            if tags.get(TAG_CNI_CLUSTER).map(String::as_str) == Some(cluster) {
                Plan::Wait("the VPC CNI's; goes with its node".to_string())
            } else if eni
                .description()
                .and_then(|d| d.strip_prefix("ELB "))
                .is_some_and(|key| swept_lbs.contains(key))
            {
                Plan::Wait("of a deleted load balancer; goes with it".to_string())
            } else {
                Plan::Wait(left_alone(cluster))
            }
        }
    }
}

/// The load balancers of `kind` among `keys` (ARNs or names) whose tags
/// were read, each planned by its tags.
fn load_balancer_items(
    kind: Kind,
    keys: Vec<String>,
    tags: &HashMap<String, Tags>,
    cluster: &str,
) -> Vec<Item> {
    keys.into_iter()
        .filter_map(|key| {
            let tags = tags.get(&key)?;
            Some(Item {
                kind,
                detail: owner_label(tags),
                plan: load_balancer_plan(tags, cluster),
                id: key,
            })
        })
        .collect()
}

/// Whether an EC2 or load-balancer error means the thing is already gone.
fn is_not_found(err: &ProviderError) -> bool {
    super::toolkit::errors::is_not_found(Service::Ec2, err)
        || super::toolkit::errors::is_not_found(Service::Elb, err)
}

/// Whether a delete failed only because something still uses the resource
/// (retried next round).
fn is_in_use(err: &ProviderError) -> bool {
    err.code()
        .is_some_and(|c| c == "ResourceInUse" || c == "DependencyViolation" || c.ends_with(".InUse"))
}

/// `err` with `item` named in its message, so that a failed delete says
/// what it was deleting.
fn naming(err: ProviderError, item: &str) -> ProviderError {
    match err {
        ProviderError::Api {
            operation,
            code,
            message,
        } => ProviderError::Api {
            operation,
            code,
            message: format!("{message} (deleting {item})"),
        },
        other => other,
    }
}

/// `N <things> of cluster X to go from vpc: ...`, naming each of
/// `remaining` with why it remains.
fn remaining_message(cluster: &str, vpc_id: &str, remaining: &[(Item, String)]) -> String {
    let kinds: BTreeSet<Kind> = remaining.iter().map(|(i, _)| i.kind).collect();
    let (one, many) = match kinds.first() {
        Some(k) if kinds.len() == 1 => k.nouns(),
        _ => ("resource", "resources"),
    };
    let noun = if remaining.len() == 1 { one } else { many };
    let names: Vec<String> = remaining
        .iter()
        .map(|(item, note)| item.name(Some(note).filter(|n| !n.is_empty()).map(String::as_str)))
        .collect();
    format!(
        "{} {noun} of cluster {cluster} to go from {vpc_id}: {}",
        remaining.len(),
        names.join(", ")
    )
}

/// The ingress rules of `group` that admit `target`, reduced to that
/// admission (what RevokeSecurityGroupIngress takes to remove just it).
fn rules_admitting(group: &SecurityGroup, target: &str) -> Vec<IpPermission> {
    group
        .ip_permissions()
        .iter()
        .filter(|p| {
            p.user_id_group_pairs()
                .iter()
                .any(|g| g.group_id() == Some(target))
        })
        .map(|p| {
            IpPermission::builder()
                .set_ip_protocol(p.ip_protocol().map(str::to_string))
                .set_from_port(p.from_port())
                .set_to_port(p.to_port())
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(target).build())
                .build()
        })
        .collect()
}

/// Tags by key (ARN or name) of `keys`, read through `batch` (one
/// DescribeTags call) [`MAX_TAG_BATCH`] at a time. A batch failing with a
/// NotFound code (one of them went between the listing and this call) is
/// retried key by key; keys that are gone are left out of the answer.
async fn tags_in_batches<F, Fut>(keys: &[String], batch: F) -> Result<HashMap<String, Tags>, ProviderError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<(String, Tags)>, ProviderError>>,
{
    let mut out = HashMap::new();
    for chunk in keys.chunks(MAX_TAG_BATCH) {
        match batch(chunk.to_vec()).await {
            Ok(found) => out.extend(found),
            Err(e) if is_not_found(&e) => {
                for key in chunk {
                    match batch(vec![key.clone()]).await {
                        Ok(found) => out.extend(found),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What one look at the VPC found.
struct Scan {
    /// What to sweep or wait for, in deletion order.
    items: Vec<Item>,
    /// Every security group in the VPC: rules admitting a swept group are
    /// revoked from them.
    groups: Vec<SecurityGroup>,
}

impl NetworkDrain {
    /// The ids, among `ids`, of VPCs that exist: one filtered, paginated
    /// DescribeVpcs per filter of ids.
    async fn existing_vpcs(&self, ids: &[String]) -> Result<HashSet<String>, ProviderError> {
        let mut out = HashSet::new();
        for f in filters_in_chunks("vpc-id", ids) {
            let vpcs: Vec<_> = all_pages!(self.0.ec2.describe_vpcs().filters(f), "DescribeVpcs")?;
            out.extend(vpcs.iter().filter_map(|v| v.vpc_id().map(str::to_string)));
        }
        Ok(out)
    }

    /// Whether VPC `vpc_id` exists.
    async fn vpc_exists(&self, vpc_id: &str) -> Result<bool, ProviderError> {
        Ok(self.existing_vpcs(&[vpc_id.to_string()]).await?.contains(vpc_id))
    }

    /// Tags of Elastic Load Balancing v2 resources (load balancers or target
    /// groups) by ARN; ARNs that are gone are left out.
    async fn elbv2_tags(&self, arns: &[String]) -> Result<HashMap<String, Tags>, ProviderError> {
        let client = &self.0.elbv2;
        tags_in_batches(arns, |chunk| async move {
            let out = send!(
                client.describe_tags().set_resource_arns(Some(chunk)),
                "DescribeTags"
            )?;
            Ok(out
                .tag_descriptions()
                .iter()
                .filter_map(|d| {
                    let tags = d
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                        .collect();
                    Some((d.resource_arn()?.to_string(), tags))
                })
                .collect())
        })
        .await
    }

    /// Tags of classic load balancers by name; names that are gone are left
    /// out.
    async fn classic_tags(&self, names: &[String]) -> Result<HashMap<String, Tags>, ProviderError> {
        let client = &self.0.elb;
        tags_in_batches(names, |chunk| async move {
            let out = send!(
                client.describe_tags().set_load_balancer_names(Some(chunk)),
                "DescribeTags (classic)"
            )?;
            Ok(out
                .tag_descriptions()
                .iter()
                .filter_map(|d| {
                    let tags = d
                        .tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().unwrap_or("").to_string()))
                        .collect();
                    Some((d.load_balancer_name()?.to_string(), tags))
                })
                .collect())
        })
        .await
    }

    /// Every application and network load balancer in `vpc_id`.
    async fn load_balancers(&self, vpc_id: &str, cluster: &str) -> Result<Vec<Item>, ProviderError> {
        let lbs: Vec<_> = all_pages!(self.0.elbv2.describe_load_balancers(), "DescribeLoadBalancers")?;
        // DescribeLoadBalancers has no VPC filter.
        let arns: Vec<String> = lbs
            .iter()
            .filter(|lb| lb.vpc_id() == Some(vpc_id))
            .filter_map(|lb| lb.load_balancer_arn().map(str::to_string))
            .collect();
        let tags = self.elbv2_tags(&arns).await?;
        Ok(load_balancer_items(Kind::LoadBalancer, arns, &tags, cluster))
    }

    /// Every classic load balancer in `vpc_id`.
    async fn classic_load_balancers(&self, vpc_id: &str, cluster: &str) -> Result<Vec<Item>, ProviderError> {
        let lbs: Vec<_> = all_pages!(
            self.0.elb.describe_load_balancers(),
            "DescribeLoadBalancers (classic)"
        )?;
        let names: Vec<String> = lbs
            .iter()
            .filter(|lb| lb.vpc_id() == Some(vpc_id))
            .filter_map(|lb| lb.load_balancer_name().map(str::to_string))
            .collect();
        let tags = self.classic_tags(&names).await?;
        Ok(load_balancer_items(
            Kind::ClassicLoadBalancer,
            names,
            &tags,
            cluster,
        ))
    }

    /// The target groups in `vpc_id` tagged for `cluster` (others do not
    /// hold the VPC up and are not looked at).
    async fn target_groups(&self, vpc_id: &str, cluster: &str) -> Result<Vec<Item>, ProviderError> {
        let groups: Vec<_> = all_pages!(self.0.elbv2.describe_target_groups(), "DescribeTargetGroups")?;
        let arns: Vec<String> = groups
            .iter()
            .filter(|g| g.vpc_id() == Some(vpc_id))
            .filter_map(|g| g.target_group_arn().map(str::to_string))
            .collect();
        let tags = self.elbv2_tags(&arns).await?;
        Ok(arns
            .into_iter()
            .filter_map(|arn| {
                let tags = tags.get(&arn)?;
                (claim(tags, cluster) == Claim::Ours).then(|| Item {
                    kind: Kind::TargetGroup,
                    detail: owner_label(tags),
                    plan: Plan::Sweep,
                    id: arn,
                })
            })
            .collect())
    }

    /// The network interfaces in `vpc_id` that belong to `cluster`.
    async fn interfaces(
        &self,
        vpc_id: &str,
        cluster: &str,
        swept_lbs: &HashSet<String>,
    ) -> Result<Vec<Item>, ProviderError> {
        let call = self
            .0
            .ec2
            .describe_network_interfaces()
            .filters(filter("vpc-id", [vpc_id]));
        let enis: Vec<NetworkInterface> = all_pages!(call, "DescribeNetworkInterfaces")?;
        Ok(enis
            .iter()
            .filter(|e| belongs_to_cluster(e, cluster))
            .filter_map(|e| {
                Some(Item {
                    kind: Kind::NetworkInterface,
                    id: e.network_interface_id()?.to_string(),
                    detail: e.description().filter(|d| !d.is_empty()).map(str::to_string),
                    plan: interface_plan(e, cluster, swept_lbs),
                })
            })
            .collect())
    }

    /// Every security group in `vpc_id`.
    async fn security_groups(&self, vpc_id: &str) -> Result<Vec<SecurityGroup>, ProviderError> {
        let call = self
            .0
            .ec2
            .describe_security_groups()
            .filters(filter("vpc-id", [vpc_id]));
        all_pages!(call, "DescribeSecurityGroups")
    }

    /// One look at the VPC: what to sweep and wait for, in deletion order.
    async fn scan(
        &self,
        vpc_id: &str,
        cluster: &str,
        swept_lbs: &HashSet<String>,
    ) -> Result<Scan, ProviderError> {
        let mut items = self.load_balancers(vpc_id, cluster).await?;
        items.extend(self.classic_load_balancers(vpc_id, cluster).await?);
        items.extend(self.target_groups(vpc_id, cluster).await?);
        items.extend(self.interfaces(vpc_id, cluster, swept_lbs).await?);
        let groups = self.security_groups(vpc_id).await?;
        // The VPC's default group cannot be deleted (it goes with the VPC);
        // groups not tagged for the cluster are not the drain's business.
        items.extend(groups.iter().filter_map(|g| {
            let tags = ec2_tags(g.tags());
            (g.group_name() != Some("default") && claim(&tags, cluster) == Claim::Ours).then(|| Item {
                kind: Kind::SecurityGroup,
                id: g.group_id().unwrap_or_default().to_string(),
                detail: g.group_name().map(str::to_string),
                plan: Plan::Sweep,
            })
        }));
        items.retain(|i| !i.id.is_empty());
        items.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        Ok(Scan { items, groups })
    }

    /// Revokes the ingress rules of other groups in `groups` that admit
    /// security group `target` (its deletion fails while they do).
    async fn revoke_rules_admitting(
        &self,
        cx: &OpContext,
        groups: &[SecurityGroup],
        target: &Item,
    ) -> Result<(), ProviderError> {
        for group in groups {
            let Some(group_id) = group.group_id().filter(|g| *g != target.id) else {
                continue;
            };
            let rules = rules_admitting(group, &target.id);
            if rules.is_empty() {
                continue;
            }
            let result = send!(
                self.0
                    .ec2
                    .revoke_security_group_ingress()
                    .group_id(group_id)
                    .set_ip_permissions(Some(rules)),
                "RevokeSecurityGroupIngress"
            );
            match result {
                Ok(_) => cx.progress.report(&format!(
                    "revoked the rules of security group {group_id} that admit {}",
                    target.name(None)
                )),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(naming(e, &target.name(None))),
            }
        }
        Ok(())
    }

    /// Deletes `item`. `Ok(None)` when it is deleted or already gone,
    /// `Ok(Some(why))` when something still uses it (retried next round).
    async fn sweep(
        &self,
        cx: &OpContext,
        item: &Item,
        groups: &[SecurityGroup],
    ) -> Result<Option<String>, ProviderError> {
        let c = &self.0;
        let result = match item.kind {
            Kind::LoadBalancer => send!(
                c.elbv2.delete_load_balancer().load_balancer_arn(&item.id),
                "DeleteLoadBalancer"
            )
            .map(|_| ()),
            Kind::ClassicLoadBalancer => send!(
                c.elb.delete_load_balancer().load_balancer_name(&item.id),
                "DeleteLoadBalancer (classic)"
            )
            .map(|_| ()),
            Kind::TargetGroup => send!(
                c.elbv2.delete_target_group().target_group_arn(&item.id),
                "DeleteTargetGroup"
            )
            .map(|_| ()),
            Kind::NetworkInterface => send!(
                c.ec2.delete_network_interface().network_interface_id(&item.id),
                "DeleteNetworkInterface"
            )
            .map(|_| ()),
            Kind::SecurityGroup => {
                self.revoke_rules_admitting(cx, groups, item).await?;
                send!(
                    c.ec2.delete_security_group().group_id(&item.id),
                    "DeleteSecurityGroup"
                )
                .map(|_| ())
            }
        };
        match result {
            Ok(()) => {
                cx.progress.report(&format!("deleted {}", item.name(None)));
                Ok(None)
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) if is_in_use(&e) => Ok(Some(format!(
                "in use ({}); retrying",
                e.code().unwrap_or("in use")
            ))),
            Err(e) => Err(naming(e, &item.name(None))),
        }
    }
}

#[async_trait]
impl ResourceKind for NetworkDrain {
    /// Checks that the VPC exists; creates nothing in AWS.
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let live = live_from_desired(desired)?;
        let vpc_id = attr_str(&live.attrs, "vpc_id")?;
        if !self.vpc_exists(vpc_id).await? {
            return Err(ProviderError::invalid(
                "vpc_id",
                format!("VPC {vpc_id} does not exist"),
            ));
        }
        Ok(live)
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Option<(&str, &str)>> = requests
            .iter()
            .map(|r| vpc_and_cluster(&r.id, &r.attrs))
            .collect();
        let vpc_ids = distinct(keys.iter().flatten().map(|(v, _)| v.to_string()));
        let existing = self.existing_vpcs(&vpc_ids).await?;
        Ok(requests
            .iter()
            .zip(keys)
            .map(|(r, key)| {
                let (vpc_id, cluster) = key?;
                existing
                    .contains(vpc_id)
                    .then(|| live(vpc_id, cluster, timeout_seconds(&r.attrs)))
            })
            .collect())
    }

    /// Only `timeout_seconds` changes in place, and it lives in state only.
    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        live_from_desired(change.desired)
    }

    /// Sweeps what the cluster's controllers left in the VPC and waits until
    /// the VPC is free of the cluster's resources and of load balancers, for
    /// at most the prior `timeout_seconds` (see the module documentation);
    /// succeeds at once when the VPC is gone.
    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let Some((vpc_id, cluster)) = vpc_and_cluster(&prior.id, &prior.attrs) else {
            return Err(ProviderError::invalid(
                "id",
                format!("{} names no VPC and cluster", prior.id),
            ));
        };
        if !self.vpc_exists(vpc_id).await? {
            return Ok(());
        }
        let seconds = u64::try_from(timeout_seconds(&prior.attrs)).unwrap_or(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let mut delay = FIRST_DELAY;
        // Load balancers deleted so far (by interface key), so that their
        // interfaces, which AWS removes by itself, are named as theirs.
        let mut swept_lbs: HashSet<String> = HashSet::new();
        // Whether the last round deleted everything it found, so this look
        // is the one confirming it without a pause.
        let mut confirming = false;
        loop {
            let scan = self.scan(vpc_id, cluster, &swept_lbs).await?;
            if scan.items.is_empty() {
                return Ok(());
            }
            let mut remaining: Vec<(Item, String)> = Vec::new();
            let mut deleted: Vec<Item> = Vec::new();
            for item in &scan.items {
                let note = match &item.plan {
                    Plan::Wait(why) => Some(why.clone()),
                    Plan::Sweep => self.sweep(cx, item, &scan.groups).await?,
                };
                match note {
                    Some(note) => remaining.push((item.clone(), note)),
                    None => {
                        match item.kind {
                            Kind::LoadBalancer => {
                                swept_lbs.extend(elbv2_key(&item.id).map(str::to_string));
                            }
                            Kind::ClassicLoadBalancer => {
                                swept_lbs.insert(item.id.clone());
                            }
                            _ => {}
                        }
                        deleted.push(item.clone());
                    }
                }
            }
            if remaining.is_empty() {
                if !confirming {
                    confirming = true;
                    continue;
                }
                // Deleted twice and still listed: wait for the listing to
                // catch up.
                remaining = deleted
                    .into_iter()
                    .map(|i| (i, "deleted; still listed".to_string()))
                    .collect();
            }
            confirming = false;
            let message = remaining_message(cluster, vpc_id, &remaining);
            cx.progress.report(&format!("waiting for {message}"));
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ProviderError::Timeout {
                    what: message,
                    seconds,
                });
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    async fn find_existing(&self, _cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let live = live_from_desired(desired)?;
        let vpc_id = attr_str(&live.attrs, "vpc_id")?;
        Ok(self.vpc_exists(vpc_id).await?.then_some(live))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::Tag;

    fn eni(id: &str, description: &str, tags: &[(&str, &str)]) -> NetworkInterface {
        let mut b = NetworkInterface::builder()
            .network_interface_id(id)
            .description(description);
        for (k, v) in tags {
            b = b.tag_set(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    }

    #[test]
    fn membership() {
        assert!(belongs_to_cluster(
            &eni("eni-1", "", &[("kubernetes.io/cluster/demo", "owned")]),
            "demo"
        ));
        assert!(belongs_to_cluster(
            &eni("eni-1", "", &[("cluster.k8s.amazonaws.com/name", "demo")]),
            "demo"
        ));
        assert!(belongs_to_cluster(
            &eni("eni-1", "", &[("elbv2.k8s.aws/cluster", "demo")]),
            "demo"
        ));
        assert!(belongs_to_cluster(
            &eni("eni-1", "ELB net/k8s-x/abc", &[]),
            "demo"
        ));
        let elb = NetworkInterface::builder().requester_id("amazon-elb").build();
        assert!(belongs_to_cluster(&elb, "demo"));

        assert!(!belongs_to_cluster(
            &eni("eni-1", "", &[("kubernetes.io/cluster/other", "owned")]),
            "demo"
        ));
        assert!(!belongs_to_cluster(
            &eni("eni-1", "", &[("kubernetes.io/cluster/demo2", "owned")]),
            "demo"
        ));
        assert!(!belongs_to_cluster(
            &eni("eni-1", "", &[("cluster.k8s.amazonaws.com/name", "other")]),
            "demo"
        ));
        assert!(!belongs_to_cluster(&eni("eni-1", "ELBOW", &[]), "demo"));
        assert!(!belongs_to_cluster(&eni("eni-1", "my ELB thing", &[]), "demo"));
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(parse_id(&drain_id("vpc-1", "demo")), Some(("vpc-1", "demo")));
        assert_eq!(parse_id(&drain_id("vpc-1", "a:b")), Some(("vpc-1", "a:b")));
        assert_eq!(parse_id("vpc-1"), None);
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn item(kind: Kind, id: &str, detail: Option<&str>) -> Item {
        Item {
            kind,
            id: id.to_string(),
            detail: detail.map(str::to_string),
            plan: Plan::Sweep,
        }
    }

    #[test]
    fn messages_name_each_item_and_why_it_remains() {
        let left = left_alone("x");
        let enis = [
            (
                item(Kind::NetworkInterface, "eni-1", Some("ELB a1b2")),
                left.clone(),
            ),
            (item(Kind::NetworkInterface, "eni-2", None), String::new()),
        ];
        assert_eq!(
            format!("waiting for {}", remaining_message("x", "vpc-9", &enis)),
            "waiting for 2 network interfaces of cluster x to go from vpc-9: network interface eni-1 \
             (ELB a1b2; not tagged for cluster x; left alone), network interface eni-2"
        );
        assert!(remaining_message("x", "vpc-9", &enis[..1]).starts_with("1 network interface of"));
        let mixed = [
            (
                item(Kind::LoadBalancer, "arn:lb", Some("service yelb/yelb-ui")),
                left.clone(),
            ),
            (
                item(Kind::SecurityGroup, "sg-1", Some("k8s-elb-a1")),
                "in use (DependencyViolation); retrying".to_string(),
            ),
        ];
        assert_eq!(
            remaining_message("x", "vpc-9", &mixed),
            "2 resources of cluster x to go from vpc-9: load balancer arn:lb (service yelb/yelb-ui; \
             not tagged for cluster x; left alone), security group sg-1 (k8s-elb-a1; in use \
             (DependencyViolation); retrying)"
        );
        assert_eq!(
            item(Kind::ClassicLoadBalancer, "a1b2", None).name(None),
            "classic load balancer a1b2"
        );
    }

    #[test]
    fn ownership_tags_decide_what_is_swept() {
        assert!(tagged_for(
            &tags(&[("kubernetes.io/cluster/demo", "owned")]),
            "demo"
        ));
        assert!(tagged_for(&tags(&[("kubernetes.io/cluster/demo", "")]), "demo"));
        assert!(tagged_for(&tags(&[("elbv2.k8s.aws/cluster", "demo")]), "demo"));
        assert!(!tagged_for(&tags(&[("elbv2.k8s.aws/cluster", "other")]), "demo"));
        assert!(!tagged_for(
            &tags(&[("kubernetes.io/cluster/demo2", "owned")]),
            "demo"
        ));
        // The Service's stack tag names no cluster; nor does the CNI's tag
        // make a resource the drain's to delete.
        assert!(!tagged_for(
            &tags(&[("service.k8s.aws/stack", "yelb/yelb-ui")]),
            "demo"
        ));
        assert!(!tagged_for(
            &tags(&[("cluster.k8s.amazonaws.com/name", "demo")]),
            "demo"
        ));

        assert_eq!(
            claim(&tags(&[("elbv2.k8s.aws/cluster", "demo")]), "demo"),
            Claim::Ours
        );
        assert_eq!(claim(&tags(&[]), "demo"), Claim::Foreign);
        // The cluster security group EKS makes carries the cluster tag too.
        assert_eq!(
            claim(
                &tags(&[
                    ("kubernetes.io/cluster/demo", "owned"),
                    ("aws:eks:cluster-name", "demo")
                ]),
                "demo"
            ),
            Claim::ManagedBy("EKS".to_string())
        );
        assert_eq!(
            claim(
                &tags(&[("kubernetes.io/cluster/demo", "shared"), ("meshform:stack", "s")]),
                "demo"
            ),
            Claim::ManagedBy("meshform stack s".to_string())
        );

        assert_eq!(
            load_balancer_plan(&tags(&[("kubernetes.io/cluster/demo", "owned")]), "demo"),
            Plan::Sweep
        );
        assert_eq!(
            load_balancer_plan(&tags(&[("kubernetes.io/cluster/other", "owned")]), "demo"),
            Plan::Wait("not tagged for cluster demo; left alone".to_string())
        );
        assert_eq!(
            owner_label(&tags(&[("service.k8s.aws/stack", "yelb/yelb-ui")])).as_deref(),
            Some("service yelb/yelb-ui")
        );
        assert_eq!(
            owner_label(&tags(&[("ingress.k8s.aws/stack", "yelb/web")])).as_deref(),
            Some("ingress yelb/web")
        );
        assert_eq!(
            owner_label(&tags(&[("kubernetes.io/service-name", "yelb/yelb-ui")])).as_deref(),
            Some("service yelb/yelb-ui")
        );
        assert_eq!(owner_label(&tags(&[("Name", "x")])), None);
    }

    #[test]
    fn interfaces_are_deleted_only_when_tagged_and_detached() {
        let none = HashSet::new();
        let available = |tags: &[(&str, &str)]| {
            let mut b = NetworkInterface::builder()
                .network_interface_id("eni-1")
                .status(NetworkInterfaceStatus::Available);
            for (k, v) in tags {
                b = b.tag_set(Tag::builder().key(*k).value(*v).build());
            }
            b.build()
        };
        assert_eq!(
            interface_plan(
                &available(&[("kubernetes.io/cluster/demo", "owned")]),
                "demo",
                &none
            ),
            Plan::Sweep
        );
        let attached = NetworkInterface::builder()
            .status(NetworkInterfaceStatus::InUse)
            .tag_set(Tag::builder().key("elbv2.k8s.aws/cluster").value("demo").build())
            .build();
        assert!(
            matches!(interface_plan(&attached, "demo", &none), Plan::Wait(w) if w.starts_with("attached"))
        );
        assert!(matches!(
            interface_plan(&available(&[("cluster.k8s.amazonaws.com/name", "demo")]), "demo", &none),
            Plan::Wait(w) if w.contains("VPC CNI")
        ));
        let lb_eni = eni("eni-2", "ELB net/k8s-yelb-ui/abc", &[]);
        assert_eq!(
            interface_plan(&lb_eni, "demo", &none),
            Plan::Wait("not tagged for cluster demo; left alone".to_string())
        );
        let swept = HashSet::from(["net/k8s-yelb-ui/abc".to_string()]);
        assert!(matches!(
            interface_plan(&lb_eni, "demo", &swept),
            Plan::Wait(w) if w.contains("deleted load balancer")
        ));
        assert_eq!(
            elbv2_key("arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/net/k8s-yelb-ui/abc"),
            Some("net/k8s-yelb-ui/abc")
        );
    }

    #[test]
    fn revokes_only_what_admits_the_swept_group() {
        let group = SecurityGroup::builder()
            .group_id("sg-nodes")
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(30080)
                    .to_port(30080)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-elb").build())
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-keep").build())
                    .ip_ranges(
                        aws_sdk_ec2::types::IpRange::builder()
                            .cidr_ip("10.0.0.0/8")
                            .build(),
                    )
                    .build(),
            )
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-keep").build())
                    .build(),
            )
            .build();
        let rules = rules_admitting(&group, "sg-elb");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].from_port(), Some(30080));
        assert!(rules[0].ip_ranges().is_empty());
        let pairs: Vec<_> = rules[0]
            .user_id_group_pairs()
            .iter()
            .map(|p| p.group_id())
            .collect();
        assert_eq!(pairs, vec![Some("sg-elb")]);
        assert!(rules_admitting(&group, "sg-other").is_empty());
    }

    #[test]
    fn errors_say_what_was_being_deleted() {
        let api = |code: &str| ProviderError::Api {
            operation: "DeleteSecurityGroup".into(),
            code: Some(code.into()),
            message: format!("{code}: no"),
        };
        assert!(is_in_use(&api("DependencyViolation")));
        assert!(is_in_use(&api("ResourceInUse")));
        assert!(is_in_use(&api("InvalidNetworkInterface.InUse")));
        assert!(!is_in_use(&api("UnauthorizedOperation")));
        let named = naming(api("UnauthorizedOperation"), "security group sg-1 (k8s-elb-a)");
        assert_eq!(named.code(), Some("UnauthorizedOperation"));
        assert_eq!(
            named.to_string(),
            "DeleteSecurityGroup: UnauthorizedOperation: no (deleting security group sg-1 (k8s-elb-a))"
        );
    }

    #[test]
    fn timeout_defaults_and_clamps() {
        let mut a = Attrs::new();
        a.insert("vpc_id".into(), Value::from("vpc-1"));
        a.insert("cluster_name".into(), Value::from("demo"));
        assert_eq!(timeout_seconds(&a), 1200);
        assert_eq!(
            live_from_desired(&a)
                .map(|l| l.attrs["timeout_seconds"].clone())
                .ok(),
            Some(Value::from(1200))
        );
        a.insert("timeout_seconds".into(), Value::from(3));
        assert_eq!(timeout_seconds(&a), 3);
        assert!(live_from_desired(&a).is_ok());
        a.insert("timeout_seconds".into(), Value::from(-5));
        assert_eq!(timeout_seconds(&a), 0);
        assert!(live_from_desired(&a).is_err());
    }
}

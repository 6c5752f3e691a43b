//! `aws.ec2.network_drain`: a destroy-time wait for the network interfaces a
//! Kubernetes cluster leaves behind in its VPC.
//!
//! When a Kubernetes Service of type LoadBalancer (or an Ingress handled by
//! the AWS Load Balancer Controller) is deleted, AWS removes the load
//! balancer and its network interfaces asynchronously. Until they are gone,
//! deleting the VPC's subnets or the VPC itself fails with a dependency
//! violation (moto, which does not check, silently strands them). A stack
//! therefore puts this resource between the two layers: it depends on the
//! network resources (so it is deleted before them), and the in-cluster
//! resources depend on it (so they are deleted before it). Its delete is the
//! wait.
//!
//! Nothing is created in AWS: create only checks that the VPC exists, and
//! the id is `drain:<vpc_id>:<cluster_name>`. Read reports the resource while
//! its VPC exists (one filtered DescribeVpcs for all resources read
//! together).
//!
//! Delete polls DescribeNetworkInterfaces (filtered by `vpc-id`) until no
//! interface of the cluster remains, backing off from 2 s to 15 s, for at
//! most `timeout_seconds`. An interface belongs to the cluster when it
//! carries the tag key `kubernetes.io/cluster/<cluster_name>`, the tag
//! `cluster.k8s.amazonaws.com/name=<cluster_name>` or the tag
//! `elbv2.k8s.aws/cluster=<cluster_name>`, when its description starts with
//! `ELB ` or when its requester is `amazon-elb`. Load balancers are thus
//! waited for through their interfaces (classic, application and network
//! load balancer interfaces carry no tags but have such descriptions and
//! requester), without the Elastic Load Balancing API. The last two tests are
//! not specific to the cluster: a load balancer of anything else in the VPC
//! is waited for too.
//!
//! The VPC CNI tags the interfaces it adds to nodes with
//! `cluster.k8s.amazonaws.com/name`: those go away with the nodes, so a
//! stack's node groups must be deleted before the drain is, or the delete
//! waits for them until it times out.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::NetworkInterface;

use super::AwsClients;
use super::ec2_util::{MAX_FILTER_VALUES, filter};
use crate::provider::schema::{AttrSchema, AttrType, Default, KindDef};
use crate::provider::{Live, OpContext, ProviderError, ReadRequest, ResourceKind, attr_opt_str, attr_str};
use crate::{Attrs, Value};

/// The default of `timeout_seconds`: 20 minutes.
const DEFAULT_TIMEOUT_SECONDS: i64 = 1200;
/// The first pause between two polls of a delete.
const FIRST_DELAY: Duration = Duration::from_secs(2);
/// The longest pause between two polls of a delete.
const MAX_DELAY: Duration = Duration::from_secs(15);

/// Schema of `aws.ec2.network_drain`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.network_drain",
    doc: "Creates nothing in AWS; when deleted, waits until the load balancers and network \
          interfaces of a Kubernetes cluster are gone from its VPC.",
    attrs: &[
        AttrSchema::required("vpc_id", AttrType::String, "The VPC to watch.").force_new(),
        AttrSchema::required(
            "cluster_name",
            AttrType::String,
            "The Kubernetes (EKS) cluster whose network interfaces are waited for.",
        )
        .force_new(),
        AttrSchema::optional(
            "timeout_seconds",
            AttrType::Int,
            "How long a delete waits for the interfaces to go before it fails.",
        )
        .default(Default::Int(DEFAULT_TIMEOUT_SECONDS)),
    ],
    taggable: false,
    normalize: None,
    preflight: None,
    identity: &[],
    hosts_objects: false,
};

/// Operations of `aws.ec2.network_drain`.
pub struct NetworkDrain(pub Arc<AwsClients>);

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

/// Whether `eni` belongs to `cluster` (see the module documentation).
fn belongs_to_cluster(eni: &NetworkInterface, cluster: &str) -> bool {
    let cluster_key = format!("kubernetes.io/cluster/{cluster}");
    let tagged = eni.tag_set().iter().any(|t| match (t.key(), t.value()) {
        (Some(k), _) if k == cluster_key => true,
        (Some("cluster.k8s.amazonaws.com/name" | "elbv2.k8s.aws/cluster"), Some(v)) => v == cluster,
        _ => false,
    });
    tagged
        || eni.description().is_some_and(|d| d.starts_with("ELB "))
        || eni.requester_id() == Some("amazon-elb")
}

/// An interface as messages name it: `eni-1 (ELB a1b2)`, or the bare id
/// when it has no description.
fn describe_eni(eni: &NetworkInterface) -> String {
    let id = eni.network_interface_id().unwrap_or("(no id)");
    match eni.description().filter(|d| !d.is_empty()) {
        Some(d) => format!("{id} ({d})"),
        None => id.to_string(),
    }
}

/// `N network interface(s) of cluster X`, naming each of `remaining`.
fn remaining_message(cluster: &str, vpc_id: &str, remaining: &[NetworkInterface]) -> String {
    let noun = if remaining.len() == 1 {
        "network interface"
    } else {
        "network interfaces"
    };
    let names: Vec<String> = remaining.iter().map(describe_eni).collect();
    format!(
        "{} {noun} of cluster {cluster} to go from {vpc_id}: {}",
        remaining.len(),
        names.join(", ")
    )
}

impl NetworkDrain {
    /// The ids, among `ids`, of VPCs that exist: one filtered, paginated
    /// DescribeVpcs per [`MAX_FILTER_VALUES`] ids.
    async fn existing_vpcs(&self, ids: &[String]) -> Result<HashSet<String>, ProviderError> {
        let mut out = HashSet::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let vpcs: Vec<_> = self
                .0
                .ec2
                .describe_vpcs()
                .filters(filter("vpc-id", chunk))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| ProviderError::aws("DescribeVpcs", e))?;
            out.extend(vpcs.iter().filter_map(|v| v.vpc_id().map(str::to_string)));
        }
        Ok(out)
    }

    /// Whether VPC `vpc_id` exists.
    async fn vpc_exists(&self, vpc_id: &str) -> Result<bool, ProviderError> {
        Ok(self.existing_vpcs(&[vpc_id.to_string()]).await?.contains(vpc_id))
    }

    /// The network interfaces in `vpc_id` that belong to `cluster`.
    async fn cluster_interfaces(
        &self,
        vpc_id: &str,
        cluster: &str,
    ) -> Result<Vec<NetworkInterface>, ProviderError> {
        let enis: Vec<NetworkInterface> = self
            .0
            .ec2
            .describe_network_interfaces()
            .filters(filter("vpc-id", [vpc_id]))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| ProviderError::aws("DescribeNetworkInterfaces", e))?;
        let mut out: Vec<NetworkInterface> = enis
            .into_iter()
            .filter(|e| belongs_to_cluster(e, cluster))
            .collect();
        out.sort_by(|a, b| a.network_interface_id().cmp(&b.network_interface_id()));
        Ok(out)
    }
}

#[async_trait]
impl ResourceKind for NetworkDrain {
    fn def(&self) -> &'static KindDef {
        &DEF
    }

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
        let vpc_ids: Vec<String> = keys
            .iter()
            .flatten()
            .map(|(v, _)| v.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
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
    async fn update(
        &self,
        _cx: &OpContext,
        _prior: &Live,
        desired: &Attrs,
        _changed: &[String],
    ) -> Result<Live, ProviderError> {
        live_from_desired(desired)
    }

    /// Waits until no network interface of the cluster remains in the VPC,
    /// for at most the prior `timeout_seconds`; succeeds at once when the VPC
    /// is gone.
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
        loop {
            let remaining = self.cluster_interfaces(vpc_id, cluster).await?;
            if remaining.is_empty() {
                return Ok(());
            }
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

    #[test]
    fn messages_name_each_interface() {
        let enis = [
            eni("eni-1", "ELB a1b2", &[]),
            eni("eni-2", "", &[("kubernetes.io/cluster/x", "owned")]),
        ];
        assert_eq!(
            format!("waiting for {}", remaining_message("x", "vpc-9", &enis)),
            "waiting for 2 network interfaces of cluster x to go from vpc-9: eni-1 (ELB a1b2), eni-2"
        );
        assert!(remaining_message("x", "vpc-9", &enis[..1]).starts_with("1 network interface of"));
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

//! `aws.eks.node_group`: an EKS managed node group. The id is
//! `<cluster>:<nodegroup>` (neither name may contain a colon).
//!
//! Create passes the operation's token as `clientRequestToken` and every tag
//! in the CreateNodegroup call itself, retries the errors a freshly created
//! node role causes while IAM propagates (for up to
//! [`IAM_PROPAGATION_TIMEOUT`]), then waits until the group is `ACTIVE`,
//! reporting its status. A name already taken (`ResourceInUseException`,
//! also moto's answer to a repeated token) is adopted only when the existing
//! group carries this stack's and address's ownership tags.
//!
//! Scaling (desired/min/max size), labels and taints change in place, in one
//! UpdateNodegroupConfig call whose update meshform then waits for; tags
//! change with TagResource/UntagResource. Everything else forces
//! replacement. Delete waits until DescribeNodegroup no longer finds the group.
//!
//! EKS has no batch describe: read calls DescribeNodegroup once per
//! resource, which is unavoidable. DescribeNodegroup returns the tags.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_eks::types::{
    AmiTypes, CapacityTypes, Nodegroup, NodegroupScalingConfig, NodegroupStatus, Taint, TaintEffect,
    UpdateLabelsPayload, UpdateTaintsPayload,
};

use super::eks_lifecycle::{self as lifecycle, EksObject, Lifecycle, Until};
use super::eks_util::{
    Backoff, IAM_PROPAGATION_TIMEOUT, attr_i32, is_in_use, issues_line, retry_iam_propagation, set_value,
    sorted_set, sync_tags, tag_map, unless_gone, wait_update,
};
use super::toolkit::prelude::*;

/// Attributes of one taint in `taints`.
static TAINT_ATTRS: &[AttrSchema] = attrs! {
    /// The taint key.
    required key: String;
    /// The taint value.
    optional value: String = Str("");
    /// `NO_SCHEDULE`, `NO_EXECUTE` or `PREFER_NO_SCHEDULE`.
    required effect: String;
};

/// Default `capacity_type`.
const DEFAULT_CAPACITY_TYPE: &str = "ON_DEMAND";
/// Default `ami_type`.
const DEFAULT_AMI_TYPE: &str = "AL2023_x86_64_STANDARD";
/// Default `disk_size`, in GiB.
const DEFAULT_DISK_SIZE: i64 = 20;

/// Schema of `aws.eks.node_group`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.eks.node_group",
    doc: "An EKS managed node group. The id is `<cluster>:<nodegroup>`. Scaling, labels and taints \
          change in place.",
    attrs: attrs! {
        /// The cluster the group belongs to.
        required cluster_name: String, force_new;
        /// Node group name, unique in the cluster.
        required name: String, force_new;
        /// The IAM role the nodes run as (trusting `ec2.amazonaws.com`).
        required node_role_arn: String, force_new;
        /// Subnets the nodes are launched in. A set: order does not matter.
        required subnet_ids: StringList, force_new;
        /// Instance types, in order of preference (AWS's default, `t3.medium`, when unset).
        optional instance_types: StringList, force_new;
        /// `ON_DEMAND` or `SPOT`.
        optional capacity_type: String = Str(DEFAULT_CAPACITY_TYPE), force_new;
        /// The AMI family of the nodes.
        optional ami_type: String = Str(DEFAULT_AMI_TYPE), force_new;
        /// Root volume size of each node, in GiB.
        optional disk_size: Int = Int(DEFAULT_DISK_SIZE), force_new;
        /// How many nodes to run.
        required desired_size: Int;
        /// The fewest nodes the group may scale to.
        required min_size: Int;
        /// The most nodes the group may scale to.
        required max_size: Int;
        /// Kubernetes labels put on every node.
        optional labels: StringMap;
        /// Kubernetes taints put on every node.
        optional taints: ObjectList(TAINT_ATTRS);
        /// The node group ARN.
        computed arn: String;
        /// The group status, `ACTIVE` once usable.
        computed status: String;
    },
    taggable: true,
    normalize: Some(normalize),
    identity: &[&["cluster_name", "name"]],
    ..KindDef::BASE
};

/// The subnet list is a set (the instance type list is an order of
/// preference, and stays as given).
fn normalize(name: &str, value: Value) -> Value {
    match name {
        "subnet_ids" => sorted_set(value),
        _ => value,
    }
}

/// How long a node group may take to become `ACTIVE`.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long an in-place update (scaling, labels, taints) may take.
pub const UPDATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long a node group may take to disappear once deleted (its nodes
/// are drained first).
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Operations of `aws.eks.node_group`.
pub struct EksNodeGroup(pub Arc<AwsClients>);

/// Splits an id `<cluster>:<nodegroup>`.
fn split_id(id: &str) -> Result<(&str, &str), ProviderError> {
    id.split_once(':')
        .filter(|(c, n)| !c.is_empty() && !n.is_empty())
        .ok_or_else(|| {
            ProviderError::invalid(
                "id",
                format!("{id:?} is not a node group id of the form <cluster>:<nodegroup>"),
            )
        })
}

/// A taint as meshform writes it: key, value (`""` when none), effect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TaintSpec {
    key: String,
    value: String,
    effect: String,
}

impl TaintSpec {
    fn to_sdk(&self) -> Taint {
        Taint::builder()
            .key(&self.key)
            .value(&self.value)
            .effect(TaintEffect::from(self.effect.as_str()))
            .build()
    }

    fn to_value(&self) -> Value {
        serde_json::json!({"key": self.key, "value": self.value, "effect": self.effect})
    }
}

/// The desired taints, checked.
fn desired_taints(desired: &Attrs) -> Result<Vec<TaintSpec>, ProviderError> {
    let Some(items) = desired.get("taints") else {
        return Ok(Vec::new());
    };
    let items = items
        .as_array()
        .ok_or_else(|| ProviderError::invalid("taints", "must be a list of tables"))?;
    items
        .iter()
        .map(|item| {
            let obj = item
                .as_object()
                .ok_or_else(|| ProviderError::invalid("taints", "each taint must be a table"))?;
            let key = attr_str(obj, "key")
                .map_err(|_| ProviderError::invalid("taints", "a taint without a key"))?;
            let effect = attr_str(obj, "effect")
                .map_err(|_| ProviderError::invalid("taints", format!("taint {key:?} has no effect")))?;
            if !matches!(effect, "NO_SCHEDULE" | "NO_EXECUTE" | "PREFER_NO_SCHEDULE") {
                return Err(ProviderError::invalid(
                    "taints",
                    format!(
                        "taint {key:?} has effect {effect:?}; it must be NO_SCHEDULE, NO_EXECUTE or \
                         PREFER_NO_SCHEDULE"
                    ),
                ));
            }
            Ok(TaintSpec {
                key: key.to_string(),
                value: attr_opt_str(obj, "value").unwrap_or_default().to_string(),
                effect: effect.to_string(),
            })
        })
        .collect()
}

/// Taints read from a live or prior `taints` value (no checks: these come
/// from the cloud).
fn taints_of(attrs: &Attrs) -> Vec<TaintSpec> {
    attrs
        .get("taints")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| {
                    let obj = i.as_object()?;
                    Some(TaintSpec {
                        key: attr_opt_str(obj, "key")?.to_string(),
                        value: attr_opt_str(obj, "value").unwrap_or_default().to_string(),
                        effect: attr_opt_str(obj, "effect").unwrap_or_default().to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A string map attribute (`labels`), empty when absent.
fn str_map(attrs: &Attrs, name: &str) -> BTreeMap<String, String> {
    attrs
        .get(name)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The desired scaling, checked: `min_size <= desired_size <= max_size`.
fn scaling(desired: &Attrs) -> Result<NodegroupScalingConfig, ProviderError> {
    let size = |name: &str| -> Result<i32, ProviderError> {
        if !desired.contains_key(name) {
            return Err(ProviderError::invalid(name, "is required"));
        }
        attr_i32(desired, name, 0)
    };
    let (want, min, max) = (size("desired_size")?, size("min_size")?, size("max_size")?);
    if min < 0 || max < 1 || min > max {
        return Err(ProviderError::invalid(
            "max_size",
            format!(
                "min_size ({min}) must be at least 0 and at most max_size ({max}), which must be at least 1"
            ),
        ));
    }
    if want < min || want > max {
        return Err(ProviderError::invalid(
            "desired_size",
            format!("{want} is outside min_size..max_size ({min}..{max})"),
        ));
    }
    Ok(NodegroupScalingConfig::builder()
        .desired_size(want)
        .min_size(min)
        .max_size(max)
        .build())
}

/// The label changes from `prior` to `desired`, or `None` when there are none.
fn label_changes(
    prior: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Option<UpdateLabelsPayload> {
    let add: HashMap<String, String> = desired
        .iter()
        .filter(|(k, v)| prior.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove: Vec<String> = prior
        .keys()
        .filter(|k| !desired.contains_key(*k))
        .cloned()
        .collect();
    if add.is_empty() && remove.is_empty() {
        return None;
    }
    Some(
        UpdateLabelsPayload::builder()
            .set_add_or_update_labels(Some(add).filter(|a| !a.is_empty()))
            .set_remove_labels(Some(remove).filter(|r| !r.is_empty()))
            .build(),
    )
}

/// The taint changes from `prior` to `desired`, or `None` when there are
/// none. A taint is identified by key and effect (as Kubernetes does); one
/// whose value changed is added again, which updates it.
fn taint_changes(prior: &[TaintSpec], desired: &[TaintSpec]) -> Option<UpdateTaintsPayload> {
    let prior_set: BTreeSet<&TaintSpec> = prior.iter().collect();
    let desired_ids: BTreeSet<(&str, &str)> = desired
        .iter()
        .map(|t| (t.key.as_str(), t.effect.as_str()))
        .collect();
    let add: Vec<Taint> = desired
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|t| !prior_set.contains(t))
        .map(TaintSpec::to_sdk)
        .collect();
    let remove: Vec<Taint> = prior
        .iter()
        .filter(|t| !desired_ids.contains(&(t.key.as_str(), t.effect.as_str())))
        .map(TaintSpec::to_sdk)
        .collect();
    if add.is_empty() && remove.is_empty() {
        return None;
    }
    Some(
        UpdateTaintsPayload::builder()
            .set_add_or_update_taints(Some(add).filter(|a| !a.is_empty()))
            .set_remove_taints(Some(remove).filter(|r| !r.is_empty()))
            .build(),
    )
}

/// The live view of a described node group.
fn live(n: &Nodegroup) -> Result<Live, ProviderError> {
    let (Some(cluster), Some(name)) = (n.cluster_name(), n.nodegroup_name()) else {
        return Err(ProviderError::unexpected(
            "DescribeNodegroup",
            "a node group without a name or cluster name",
        ));
    };
    let s = |v: Option<&str>| Value::String(v.unwrap_or_default().to_string());
    let scaling = n.scaling_config();
    let size = |f: fn(&NodegroupScalingConfig) -> Option<i32>| Value::from(scaling.and_then(f).unwrap_or(0));
    let mut attrs = Attrs::new();
    attrs.insert("cluster_name".into(), s(Some(cluster)));
    attrs.insert("name".into(), s(Some(name)));
    attrs.insert("node_role_arn".into(), s(n.node_role()));
    attrs.insert("subnet_ids".into(), set_value(n.subnets()));
    attrs.insert(
        "instance_types".into(),
        Value::Array(n.instance_types().iter().cloned().map(Value::String).collect()),
    );
    attrs.insert(
        "capacity_type".into(),
        s(Some(
            n.capacity_type()
                .map_or(DEFAULT_CAPACITY_TYPE, CapacityTypes::as_str),
        )),
    );
    attrs.insert("ami_type".into(), s(n.ami_type().map(AmiTypes::as_str)));
    attrs.insert(
        "disk_size".into(),
        Value::from(n.disk_size().map_or(DEFAULT_DISK_SIZE, i64::from)),
    );
    attrs.insert("desired_size".into(), size(NodegroupScalingConfig::desired_size));
    attrs.insert("min_size".into(), size(NodegroupScalingConfig::min_size));
    attrs.insert("max_size".into(), size(NodegroupScalingConfig::max_size));
    attrs.insert(
        "labels".into(),
        Value::Object(
            tag_map(n.labels())
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    let mut taints: Vec<TaintSpec> = n
        .taints()
        .iter()
        .map(|t| TaintSpec {
            key: t.key().unwrap_or_default().to_string(),
            value: t.value().unwrap_or_default().to_string(),
            effect: t
                .effect()
                .map(TaintEffect::as_str)
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    taints.sort();
    attrs.insert(
        "taints".into(),
        Value::Array(taints.iter().map(TaintSpec::to_value).collect()),
    );
    attrs.insert("arn".into(), s(n.nodegroup_arn()));
    attrs.insert("status".into(), s(n.status().map(NodegroupStatus::as_str)));
    attrs.insert("tags".into(), tags_value(tag_map(n.tags())));
    Ok(Live {
        id: format!("{cluster}:{name}"),
        attrs,
    })
}

/// The node group's health issues, as one line.
fn health_issues(n: &Nodegroup) -> String {
    let issues = n.health().map(|h| h.issues()).unwrap_or_default();
    issues_line(
        issues
            .iter()
            .map(|i| (i.code().map(|c| c.as_str()), i.message(), i.resource_ids())),
    )
}

/// A wait for `ACTIVE` after a create ends there, or fails on these.
const UNTIL_ACTIVE: Until = Until {
    done: &["ACTIVE"],
    broken: &["CREATE_FAILED", "DEGRADED", "DELETING", "DELETE_FAILED"],
};

/// A wait after an update also accepts `DEGRADED` (with a warning).
const UNTIL_UPDATED: Until = Until {
    done: &["ACTIVE", "DEGRADED"],
    broken: &["CREATE_FAILED", "DELETING", "DELETE_FAILED"],
};

/// How the lifecycle the EKS kinds share reads a node group.
static LIFECYCLE: Lifecycle<Nodegroup> = Lifecycle {
    create_op: "CreateNodegroup",
    delete_op: "DeleteNodegroup",
    status: |x| x.status().map(NodegroupStatus::as_str),
    tags: |x| tag_map(x.tags()),
    health: health_issues,
    live,
};

impl EksNodeGroup {
    /// One object, for the lifecycle the EKS kinds share.
    fn object<'a>(&'a self, cluster: &'a str, name: &'a str) -> EksObject<'a, Nodegroup> {
        EksObject {
            kind: &LIFECYCLE,
            what: format!("EKS node group {name} of cluster {cluster}"),
            taken: format!("an EKS node group named {name} already exists in cluster {cluster}"),
            describe: Box::new(move || Box::pin(self.describe(cluster, name))),
        }
    }

    fn eks(&self) -> &aws_sdk_eks::Client {
        &self.0.eks
    }

    /// The node group, or `None` when it (or its cluster) does not exist.
    async fn describe(&self, cluster: &str, name: &str) -> Result<Option<Nodegroup>, ProviderError> {
        let call = self
            .eks()
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name);
        let described = unless_gone(send!(call, "DescribeNodegroup"))?;
        Ok(described.and_then(|out| out.nodegroup().cloned()))
    }

    /// Waits until the group is `ACTIVE` and returns it. `CREATE_FAILED`,
    /// `DELETING`, `DELETE_FAILED` or the group going away is an error of
    /// `operation` carrying its health issues; so is `DEGRADED` unless
    /// `degraded_ok` (updates may be what repairs a degraded group, and
    /// their success is the update's status, not the group's).
    async fn wait_active(
        &self,
        cx: &OpContext,
        cluster: &str,
        name: &str,
        operation: &str,
        degraded_ok: bool,
        timeout: Duration,
    ) -> Result<Live, ProviderError> {
        let until = if degraded_ok {
            &UNTIL_UPDATED
        } else {
            &UNTIL_ACTIVE
        };
        lifecycle::wait_active(&self.object(cluster, name), cx, operation, until, timeout).await
    }

    /// Creates the node group like [`ResourceKind::create`], but retries
    /// IAM propagation errors for `iam_deadline` instead of
    /// [`IAM_PROPAGATION_TIMEOUT`] (tests use a short deadline).
    pub async fn create_with_iam_deadline(
        &self,
        cx: &OpContext,
        desired: &Attrs,
        iam_deadline: Duration,
    ) -> Result<Live, ProviderError> {
        let cluster = attr_str(desired, "cluster_name")?;
        let name = attr_str(desired, "name")?;
        let instance_types = attr_str_list(desired, "instance_types");
        let labels: HashMap<String, String> = str_map(desired, "labels").into_iter().collect();
        let taints: Vec<Taint> = desired_taints(desired)?.iter().map(TaintSpec::to_sdk).collect();
        let tags: HashMap<String, String> = attr_tags(desired).into_iter().collect();
        let call = self
            .eks()
            .create_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .node_role(attr_str(desired, "node_role_arn")?)
            .set_subnets(Some(attr_str_list(desired, "subnet_ids")))
            .set_instance_types(Some(instance_types).filter(|i| !i.is_empty()))
            .capacity_type(CapacityTypes::from(
                attr_opt_str(desired, "capacity_type").unwrap_or(DEFAULT_CAPACITY_TYPE),
            ))
            .ami_type(AmiTypes::from(
                attr_opt_str(desired, "ami_type").unwrap_or(DEFAULT_AMI_TYPE),
            ))
            .disk_size(attr_i32(desired, "disk_size", DEFAULT_DISK_SIZE)?)
            .scaling_config(scaling(desired)?)
            .set_labels(Some(labels).filter(|l| !l.is_empty()))
            .set_taints(Some(taints).filter(|t| !t.is_empty()))
            .set_tags(Some(tags).filter(|t| !t.is_empty()))
            .set_client_request_token(Some(cx.token.clone()).filter(|t| !t.is_empty()));
        let what = format!("create EKS node group {name} of cluster {cluster}");
        let created = retry_iam_propagation(&what, &cx.progress, Backoff::iam(iam_deadline), || async {
            send_once!(call.clone(), "CreateNodegroup")
        })
        .await;
        match created {
            Ok(_) => {
                self.wait_active(cx, cluster, name, "CreateNodegroup", false, CREATE_TIMEOUT)
                    .await
            }
            Err(e) if is_in_use(&e) => {
                let group = self.object(cluster, name);
                lifecycle::adopt(&group, cx, e, &UNTIL_ACTIVE, CREATE_TIMEOUT).await
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl ResourceKind for EksNodeGroup {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        self.create_with_iam_deadline(cx, desired, IAM_PROPAGATION_TIMEOUT)
            .await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        // No batch describe in EKS: one DescribeNodegroup per node group.
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            let (cluster, name) = split_id(&r.id)?;
            out.push(
                self.describe(cluster, name)
                    .await?
                    .as_ref()
                    .map(live)
                    .transpose()?,
            );
        }
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let (cluster, name) = split_id(&change.prior.id)?;
        let desired = change.desired;
        // Only attributes that change in place reach an update: the engine
        // replaces the node group for a change of a force-new one.
        // EKS runs one update at a time: wait out one already running, and
        // compute the changes from the group as it is now.
        let current = self
            .wait_active(cx, cluster, name, "UpdateNodegroupConfig", true, UPDATE_TIMEOUT)
            .await?;
        if change.has("tags") {
            sync_tags(self.eks(), &current.attrs, desired).await?;
        }
        let scaling_changed = change.has_any(&["desired_size", "min_size", "max_size"]);
        let labels = if change.has("labels") {
            label_changes(&str_map(&current.attrs, "labels"), &str_map(desired, "labels"))
        } else {
            None
        };
        let taints = if change.has("taints") {
            taint_changes(&taints_of(&current.attrs), &desired_taints(desired)?)
        } else {
            None
        };
        if scaling_changed || labels.is_some() || taints.is_some() {
            // One update carrying every change: EKS runs one update at a time.
            let out = send!(
                self.eks()
                    .update_nodegroup_config()
                    .cluster_name(cluster)
                    .nodegroup_name(name)
                    .set_scaling_config(if scaling_changed {
                        Some(scaling(desired)?)
                    } else {
                        None
                    })
                    .set_labels(labels)
                    .set_taints(taints),
                "UpdateNodegroupConfig"
            )?;
            let update = out.update().ok_or_else(|| {
                ProviderError::unexpected("UpdateNodegroupConfig", "no update in the response")
            })?;
            let what = format!("EKS node group {name} of cluster {cluster} config update");
            wait_update(
                self.eks(),
                &cx.progress,
                &what,
                cluster,
                Some(name),
                update,
                UPDATE_TIMEOUT,
            )
            .await?;
        }
        self.wait_active(cx, cluster, name, "UpdateNodegroupConfig", true, UPDATE_TIMEOUT)
            .await
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let (cluster, name) = split_id(&prior.id)?;
        let Some(n) = self.describe(cluster, name).await? else {
            return Ok(());
        };
        if n.status() != Some(&NodegroupStatus::Deleting) {
            let call = self
                .eks()
                .delete_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name);
            if unless_gone(send!(call, "DeleteNodegroup"))?.is_none() {
                return Ok(());
            }
        }
        let group = self.object(cluster, name);
        lifecycle::wait_deleted(&group, cx, "DELETE_FAILED", DELETE_TIMEOUT).await
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let cluster = attr_str(desired, "cluster_name")?;
        let name = attr_str(desired, "name")?;
        lifecycle::find_owned(&self.object(cluster, name), cx, &UNTIL_ACTIVE, CREATE_TIMEOUT).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attrs(v: Value) -> Attrs {
        v.as_object().cloned().unwrap_or_default()
    }

    fn taint(key: &str, value: &str, effect: &str) -> TaintSpec {
        TaintSpec {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        }
    }

    #[test]
    fn normalizes_subnets_but_not_instance_types() {
        assert_eq!(normalize("subnet_ids", json!(["b", "a"])), json!(["a", "b"]));
        assert_eq!(
            normalize("instance_types", json!(["t3.large", "m5.large"])),
            json!(["t3.large", "m5.large"])
        );
    }

    #[test]
    fn splits_ids() {
        assert_eq!(split_id("c1:ng1").ok(), Some(("c1", "ng1")));
        assert!(split_id("c1").is_err());
        assert!(split_id(":ng").is_err());
    }

    #[test]
    fn checks_scaling() {
        let ok = scaling(&attrs(json!({"desired_size": 3, "min_size": 1, "max_size": 5})));
        assert_eq!(ok.ok().and_then(|s| s.desired_size()), Some(3));
        let err = scaling(&attrs(json!({"desired_size": 6, "min_size": 1, "max_size": 5})))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("outside"), "{err}");
        assert!(scaling(&attrs(json!({"desired_size": 1, "min_size": 1}))).is_err());
    }

    #[test]
    fn label_changes_add_update_and_remove() {
        let prior: BTreeMap<String, String> =
            [("role".into(), "workers".into()), ("old".into(), "x".into())].into();
        let desired: BTreeMap<String, String> =
            [("role".into(), "batch".into()), ("new".into(), "y".into())].into();
        let p = label_changes(&prior, &desired);
        let add = p
            .as_ref()
            .and_then(|p| p.add_or_update_labels())
            .cloned()
            .unwrap_or_default();
        assert_eq!(add.len(), 2);
        assert_eq!(add.get("role").map(String::as_str), Some("batch"));
        assert_eq!(
            p.as_ref().map(|p| p.remove_labels().to_vec()),
            Some(vec!["old".to_string()])
        );
        assert!(label_changes(&prior, &prior).is_none());
    }

    #[test]
    fn taint_changes_by_key_and_effect() {
        let prior = vec![taint("a", "1", "NO_SCHEDULE"), taint("b", "", "NO_EXECUTE")];
        let desired = vec![
            taint("a", "2", "NO_SCHEDULE"),
            taint("c", "", "PREFER_NO_SCHEDULE"),
        ];
        let p = taint_changes(&prior, &desired);
        let keys = |ts: &[Taint]| {
            ts.iter()
                .filter_map(|t| t.key().map(str::to_string))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            p.as_ref().map(|p| keys(p.add_or_update_taints())),
            Some(vec!["a".into(), "c".into()])
        );
        // `a` changes value only: updated, not removed.
        assert_eq!(
            p.as_ref().map(|p| keys(p.remove_taints())),
            Some(vec!["b".into()])
        );
        assert!(taint_changes(&prior, &prior).is_none());
    }

    #[test]
    fn rejects_bad_taint_effects() {
        let err = desired_taints(&attrs(json!({"taints": [{"key": "k", "effect": "NoSchedule"}]})))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("NO_SCHEDULE"), "{err}");
        let ok = desired_taints(&attrs(json!({"taints": [{"key": "k", "effect": "NO_EXECUTE"}]})));
        assert_eq!(ok.ok(), Some(vec![taint("k", "", "NO_EXECUTE")]));
    }
}

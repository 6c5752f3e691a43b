//! `aws.eks.cluster`: an EKS control plane. The id is the cluster name.
//!
//! Create passes the operation's token as `clientRequestToken` and every tag
//! (ownership tags included) in the CreateCluster call itself, retries the
//! errors a freshly created IAM role causes while IAM propagates (for up to
//! [`IAM_PROPAGATION_TIMEOUT`]), then waits until the cluster is `ACTIVE`
//! (10-15 minutes on AWS), reporting its status as it goes. A name already
//! taken (`ResourceInUseException`, which is also what moto answers to a
//! repeated token) is adopted only when the existing cluster carries this
//! stack's and address's ownership tags.
//!
//! Endpoint access changes in place (UpdateClusterConfig), as does the
//! Kubernetes version (UpdateClusterVersion, one minor version at a time);
//! both wait for the update to finish. Everything else forces replacement.
//!
//! Delete refuses to run while the cluster still has node groups (it names
//! them), since EKS would refuse too and meshform deletes the node groups it
//! manages first; then it waits until DescribeCluster no longer finds the
//! cluster.
//!
//! EKS has no batch describe: read calls DescribeCluster once per resource,
//! which is unavoidable. DescribeCluster returns the tags, so no
//! ListTagsForResource is needed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_eks::types::{Cluster, ClusterStatus, Update, VpcConfigRequest};

use super::eks_util::{
    Backoff, IAM_PROPAGATION_TIMEOUT, Step, is_in_use, issues_line, retry_iam_propagation, set_value,
    sorted_set, sync_tags, tag_map, unless_gone, wait_for, wait_update, waiting_on,
};
use super::toolkit::ownership::{owned_by, owner_of};
use super::toolkit::prelude::*;

/// Schema of `aws.eks.cluster`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.eks.cluster",
    doc: "An EKS cluster (control plane). The id is the cluster name. Creation takes 10-15 minutes.",
    attrs: &[
        AttrSchema::required("name", AttrType::String, "Cluster name, unique in the region.").force_new(),
        AttrSchema::optional(
            "version",
            AttrType::String,
            "Kubernetes version, for example `1.31`; AWS's default when unset. Upgraded in place, one \
             minor version at a time.",
        ),
        AttrSchema::required(
            "role_arn",
            AttrType::String,
            "The IAM role the control plane assumes (trusting `eks.amazonaws.com`).",
        )
        .force_new(),
        AttrSchema::required(
            "subnet_ids",
            AttrType::StringList,
            "Subnets for the control plane's network interfaces, in at least two availability zones. \
             A set: order does not matter.",
        )
        .force_new(),
        AttrSchema::optional(
            "security_group_ids",
            AttrType::StringList,
            "Additional security groups for the control plane's network interfaces. A set.",
        )
        .force_new(),
        AttrSchema::optional(
            "endpoint_public_access",
            AttrType::Bool,
            "Whether the Kubernetes API endpoint is reachable from the internet.",
        )
        .default(Default::Bool(true)),
        AttrSchema::optional(
            "endpoint_private_access",
            AttrType::Bool,
            "Whether the Kubernetes API endpoint is reachable from inside the VPC.",
        )
        .default(Default::Bool(false)),
        AttrSchema::computed("arn", AttrType::String, "The cluster ARN."),
        AttrSchema::computed("endpoint", AttrType::String, "The Kubernetes API server URL."),
        AttrSchema::computed(
            "connection",
            AttrType::Json,
            "How in-cluster resources reach this cluster: `cluster = \"${cluster.connection}\"`.",
        ),
        AttrSchema::computed(
            "certificate_authority_data",
            AttrType::String,
            "The cluster CA certificate, base64-encoded (for a kubeconfig).",
        ),
        AttrSchema::computed(
            "cluster_security_group_id",
            AttrType::String,
            "The security group EKS created for the cluster.",
        ),
        AttrSchema::computed(
            "oidc_issuer",
            AttrType::String,
            "The OpenID Connect issuer URL (for IAM roles for service accounts).",
        ),
        AttrSchema::computed(
            "status",
            AttrType::String,
            "The cluster status, `ACTIVE` once usable.",
        ),
        AttrSchema::computed("platform_version", AttrType::String, "The EKS platform version."),
    ],
    taggable: true,
    normalize: Some(normalize),
    identity: &[&["name"]],
    hosts_objects: true,
    ..KindDef::BASE
};

/// Subnet and security group lists are sets: compared sorted.
fn normalize(name: &str, value: Value) -> Value {
    match name {
        "subnet_ids" | "security_group_ids" => sorted_set(value),
        _ => value,
    }
}

/// How long a cluster may take to become `ACTIVE` (AWS takes 10-15 minutes).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// How long an in-place update (a version upgrade takes the longest) may take.
pub const UPDATE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// How long a cluster may take to disappear once deleted.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Operations of `aws.eks.cluster`.
pub struct EksCluster(pub Arc<AwsClients>);

/// The live view of a described cluster.
fn live(c: &Cluster) -> Result<Live, ProviderError> {
    let name = c
        .name()
        .ok_or_else(|| ProviderError::unexpected("DescribeCluster", "a cluster without a name"))?;
    let vpc = c.resources_vpc_config();
    let s = |v: Option<&str>| Value::String(v.unwrap_or_default().to_string());
    let mut attrs = Attrs::new();
    attrs.insert("name".into(), s(Some(name)));
    attrs.insert("version".into(), s(c.version()));
    attrs.insert("role_arn".into(), s(c.role_arn()));
    attrs.insert(
        "subnet_ids".into(),
        set_value(vpc.map(|v| v.subnet_ids()).unwrap_or_default()),
    );
    attrs.insert(
        "security_group_ids".into(),
        set_value(vpc.map(|v| v.security_group_ids()).unwrap_or_default()),
    );
    attrs.insert(
        "endpoint_public_access".into(),
        Value::Bool(vpc.is_none_or(|v| v.endpoint_public_access())),
    );
    attrs.insert(
        "endpoint_private_access".into(),
        Value::Bool(vpc.is_some_and(|v| v.endpoint_private_access())),
    );
    attrs.insert("arn".into(), s(c.arn()));
    attrs.insert("endpoint".into(), s(c.endpoint()));
    attrs.insert(
        "certificate_authority_data".into(),
        s(c.certificate_authority().and_then(|ca| ca.data())),
    );
    attrs.insert(
        "cluster_security_group_id".into(),
        s(vpc.and_then(|v| v.cluster_security_group_id())),
    );
    attrs.insert(
        "oidc_issuer".into(),
        s(c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer())),
    );
    // Everything an in-cluster resource needs to reach this cluster, as one
    // value: `cluster = "${cluster.connection}"` in a stack.
    let region = c.arn().and_then(|a| a.split(':').nth(3)).unwrap_or_default();
    attrs.insert(
        "connection".into(),
        serde_json::json!({
            "eks_cluster": name,
            "endpoint": c.endpoint().unwrap_or_default(),
            "certificate_authority_data": c.certificate_authority().and_then(|ca| ca.data()).unwrap_or_default(),
            "region": region,
        }),
    );
    attrs.insert("status".into(), s(c.status().map(ClusterStatus::as_str)));
    attrs.insert("platform_version".into(), s(c.platform_version()));
    attrs.insert("tags".into(), tags_value(tag_map(c.tags())));
    Ok(Live {
        id: name.to_string(),
        attrs,
    })
}

/// The cluster's health issues, as one line.
fn health_issues(c: &Cluster) -> String {
    let issues = c.health().map(|h| h.issues()).unwrap_or_default();
    issues_line(
        issues
            .iter()
            .map(|i| (i.code().map(|c| c.as_str()), i.message(), i.resource_ids())),
    )
}

/// A Kubernetes `major.minor` version as numbers.
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Checks an in-place version change before asking AWS, which only
/// upgrades, and one minor version at a time. Pure.
fn check_upgrade(name: &str, from: &str, to: &str) -> Result<(), ProviderError> {
    let (Some(f), Some(t)) = (parse_version(from), parse_version(to)) else {
        // Let the API judge versions we cannot parse.
        return Ok(());
    };
    let message = if t < f {
        format!(
            "EKS cluster {name} runs Kubernetes {from}; EKS cannot downgrade it to {to} (replace the \
             cluster, or keep version = \"{from}\")"
        )
    } else if t.0 != f.0 || t.1 > f.1 + 1 {
        format!(
            "EKS cluster {name} runs Kubernetes {from}; EKS upgrades one minor version at a time, so \
             {to} cannot be reached in one step (apply with version = \"{}.{}\" first)",
            f.0,
            f.1 + 1
        )
    } else {
        return Ok(());
    };
    Err(ProviderError::invalid("version", message))
}

impl EksCluster {
    fn eks(&self) -> &aws_sdk_eks::Client {
        &self.0.eks
    }

    /// The cluster, or `None` when it does not exist.
    async fn describe(&self, name: &str) -> Result<Option<Cluster>, ProviderError> {
        let described = unless_gone(send!(self.eks().describe_cluster().name(name), "DescribeCluster"))?;
        Ok(described.and_then(|out| out.cluster().cloned()))
    }

    /// Waits until the cluster is `ACTIVE` and returns it; `FAILED` (or the
    /// cluster going away) is an error of `operation` carrying its health
    /// issues.
    async fn wait_active(
        &self,
        cx: &OpContext,
        name: &str,
        operation: &str,
        timeout: Duration,
    ) -> Result<Live, ProviderError> {
        wait_for(&format!("EKS cluster {name}"), &cx.progress, timeout, || async {
            let Some(c) = self.describe(name).await? else {
                return Err(ProviderError::unexpected(
                    "DescribeCluster",
                    format!("EKS cluster {name} disappeared while meshform waited for it to become ACTIVE"),
                ));
            };
            match c.status() {
                Some(ClusterStatus::Active) => live(&c).map(Step::Done),
                Some(s @ (ClusterStatus::Failed | ClusterStatus::Deleting)) => Err(ProviderError::Api {
                    operation: operation.to_string(),
                    code: None,
                    message: format!("EKS cluster {name} is {}: {}", s.as_str(), health_issues(&c)),
                }),
                s => Ok(waiting_on(s.map(ClusterStatus::as_str))),
            }
        })
        .await
    }

    /// After a create found the name taken: the existing cluster if this
    /// stack and address own it (waiting until it is `ACTIVE`), an error
    /// naming its owner otherwise.
    async fn adopt(&self, cx: &OpContext, name: &str, taken: ProviderError) -> Result<Live, ProviderError> {
        let Some(c) = self.describe(name).await? else {
            // Gone again between the two calls: report the original error.
            return Err(taken);
        };
        let tags = tag_map(c.tags());
        if !owned_by(&tags, cx) {
            return Err(ProviderError::Api {
                operation: "CreateCluster".to_string(),
                code: taken.code().map(str::to_string),
                message: format!(
                    "an EKS cluster named {name} already exists and is not owned by stack {:?} address \
                     {:?}: {}; pick another name or delete that cluster",
                    cx.stack,
                    cx.address,
                    owner_of(&tags)
                ),
            });
        }
        if c.status() == Some(&ClusterStatus::Deleting) {
            return Err(ProviderError::Api {
                operation: "CreateCluster".to_string(),
                code: taken.code().map(str::to_string),
                message: format!("EKS cluster {name} is still being deleted; apply again once it is gone"),
            });
        }
        tracing::info!(cluster = %name, address = %cx.address, "adopting the existing EKS cluster this resource owns");
        self.wait_active(cx, name, "CreateCluster", CREATE_TIMEOUT).await
    }

    /// Creates the cluster like [`ResourceKind::create`], but retries IAM
    /// propagation errors for `iam_deadline` instead of
    /// [`IAM_PROPAGATION_TIMEOUT`] (tests use a short deadline).
    pub async fn create_with_iam_deadline(
        &self,
        cx: &OpContext,
        desired: &Attrs,
        iam_deadline: Duration,
    ) -> Result<Live, ProviderError> {
        let name = attr_str(desired, "name")?;
        let security_groups = attr_str_list(desired, "security_group_ids");
        let tags: HashMap<String, String> = attr_tags(desired).into_iter().collect();
        let vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(attr_str_list(desired, "subnet_ids")))
            .set_security_group_ids(Some(security_groups).filter(|g| !g.is_empty()))
            .endpoint_public_access(
                desired
                    .get("endpoint_public_access")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            )
            .endpoint_private_access(
                desired
                    .get("endpoint_private_access")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            )
            .build();
        let call = self
            .eks()
            .create_cluster()
            .name(name)
            .role_arn(attr_str(desired, "role_arn")?)
            .resources_vpc_config(vpc)
            .set_version(attr_opt_str(desired, "version").map(str::to_string))
            .set_tags(Some(tags).filter(|t| !t.is_empty()))
            .set_client_request_token(Some(cx.token.clone()).filter(|t| !t.is_empty()));
        let what = format!("create EKS cluster {name}");
        let created = retry_iam_propagation(&what, &cx.progress, Backoff::iam(iam_deadline), || async {
            send_once!(call.clone(), "CreateCluster")
        })
        .await;
        match created {
            Ok(_) => self.wait_active(cx, name, "CreateCluster", CREATE_TIMEOUT).await,
            Err(e) if is_in_use(&e) => self.adopt(cx, name, e).await,
            Err(e) => Err(e),
        }
    }

    /// Sets endpoint access with UpdateClusterConfig and waits for the update.
    async fn update_endpoint_access(
        &self,
        cx: &OpContext,
        name: &str,
        desired: &Attrs,
    ) -> Result<(), ProviderError> {
        let public = desired
            .get("endpoint_public_access")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let private = desired
            .get("endpoint_private_access")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !public && !private {
            return Err(ProviderError::invalid(
                "endpoint_public_access",
                "the API endpoint must be reachable somehow: endpoint_public_access and \
                 endpoint_private_access cannot both be false",
            ));
        }
        let out = send!(
            self.eks()
                .update_cluster_config()
                .name(name)
                .resources_vpc_config(
                    VpcConfigRequest::builder()
                        .endpoint_public_access(public)
                        .endpoint_private_access(private)
                        .build(),
                ),
            "UpdateClusterConfig"
        )?;
        // AWS always answers with an update to follow; moto applies the change
        // at once and answers with the cluster instead.
        if let Some(update) = out.update() {
            let what = format!("EKS cluster {name} endpoint access update");
            self.wait_update(cx, &what, name, update).await?;
        }
        Ok(())
    }

    /// Upgrades the Kubernetes version with UpdateClusterVersion and waits
    /// for the update.
    async fn update_version(
        &self,
        cx: &OpContext,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<(), ProviderError> {
        check_upgrade(name, from, to)?;
        let out = self
            .eks()
            .update_cluster_version()
            .name(name)
            .version(to)
            .send()
            .await
            .map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let err = ProviderError::aws("UpdateClusterVersion", e);
                let reason = match (&err, status) {
                    (
                        ProviderError::Api {
                            code: Some(_),
                            message,
                            ..
                        },
                        _,
                    ) => message.clone(),
                    // No EKS error in the answer: not an EKS refusal but an
                    // endpoint without this operation (moto has none).
                    (_, Some(status)) => format!(
                        "the endpoint answered HTTP {status} without an EKS error; it does not seem \
                         to implement UpdateClusterVersion"
                    ),
                    (other, None) => other.to_string(),
                };
                ProviderError::Api {
                    operation: "UpdateClusterVersion".to_string(),
                    code: err.code().map(str::to_string),
                    message: format!(
                        "cannot upgrade EKS cluster {name} from Kubernetes {from} to {to}: {reason}"
                    ),
                }
            })?;
        let update = out
            .update()
            .ok_or_else(|| ProviderError::unexpected("UpdateClusterVersion", "no update in the response"))?;
        let what = format!("EKS cluster {name} upgrade to Kubernetes {to}");
        self.wait_update(cx, &what, name, update).await
    }

    /// Waits for a cluster update (`what`, for progress and errors) to
    /// succeed.
    async fn wait_update(
        &self,
        cx: &OpContext,
        what: &str,
        name: &str,
        update: &Update,
    ) -> Result<(), ProviderError> {
        wait_update(self.eks(), &cx.progress, what, name, None, update, UPDATE_TIMEOUT).await
    }

    /// Waits until DescribeCluster no longer finds the cluster.
    async fn wait_deleted(&self, cx: &OpContext, name: &str) -> Result<(), ProviderError> {
        wait_for(
            &format!("EKS cluster {name}"),
            &cx.progress,
            DELETE_TIMEOUT,
            || async {
                let Some(c) = self.describe(name).await? else {
                    return Ok(Step::Done(()));
                };
                match c.status() {
                    Some(ClusterStatus::Failed) => Err(ProviderError::Api {
                        operation: "DeleteCluster".to_string(),
                        code: None,
                        message: format!("deleting EKS cluster {name} failed: {}", health_issues(&c)),
                    }),
                    s => Ok(waiting_on(s.map(ClusterStatus::as_str))),
                }
            },
        )
        .await
    }

    /// The names of the cluster's node groups.
    async fn nodegroups(&self, name: &str) -> Result<Vec<String>, ProviderError> {
        all_pages!(self.eks().list_nodegroups().cluster_name(name), "ListNodegroups")
    }
}

#[async_trait]
impl ResourceKind for EksCluster {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        self.create_with_iam_deadline(cx, desired, IAM_PROPAGATION_TIMEOUT)
            .await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        // No batch describe in EKS: one DescribeCluster per cluster.
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            out.push(self.describe(&r.id).await?.as_ref().map(live).transpose()?);
        }
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let name = change.prior.id.as_str();
        let desired = change.desired;
        // Only attributes that change in place reach an update: the engine
        // replaces the cluster for a change of a force-new one.
        // EKS runs one update at a time: wait out one already running.
        let current = self
            .wait_active(cx, name, "UpdateCluster", UPDATE_TIMEOUT)
            .await?;
        if change.has("tags") {
            sync_tags(self.eks(), &current.attrs, desired).await?;
        }
        // Each update below waits for the last to finish.
        if change.has_any(&["endpoint_public_access", "endpoint_private_access"]) {
            self.update_endpoint_access(cx, name, desired).await?;
        }
        if change.has("version")
            && let Some(to) = attr_opt_str(desired, "version")
        {
            let from = attr_opt_str(&current.attrs, "version").unwrap_or_default();
            if from != to {
                self.update_version(cx, name, from, to).await?;
            }
        }
        self.wait_active(cx, name, "UpdateCluster", UPDATE_TIMEOUT).await
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let name = prior.id.as_str();
        let Some(c) = self.describe(name).await? else {
            return Ok(());
        };
        if c.status() != Some(&ClusterStatus::Deleting) {
            let nodegroups = self.nodegroups(name).await?;
            if !nodegroups.is_empty() {
                return Err(ProviderError::Api {
                    operation: "DeleteCluster".to_string(),
                    code: Some("ResourceInUseException".to_string()),
                    message: format!(
                        "EKS cluster {name} still has node groups: {}; delete them first (meshform \
                         deletes the node groups it manages before their cluster, so these were made \
                         elsewhere or failed to delete)",
                        nodegroups.join(", ")
                    ),
                });
            }
            if unless_gone(send!(self.eks().delete_cluster().name(name), "DeleteCluster"))?.is_none() {
                return Ok(());
            }
        }
        self.wait_deleted(cx, name).await
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let name = attr_str(desired, "name")?;
        let Some(c) = self.describe(name).await? else {
            return Ok(None);
        };
        if !owned_by(&tag_map(c.tags()), cx) || c.status() == Some(&ClusterStatus::Deleting) {
            return Ok(None);
        }
        // A cluster found while still being created is returned once usable,
        // as a create would.
        self.wait_active(cx, name, "CreateCluster", CREATE_TIMEOUT)
            .await
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn normalizes_sets_only() {
        assert_eq!(
            normalize("subnet_ids", json!(["subnet-b", "subnet-a"])),
            json!(["subnet-a", "subnet-b"])
        );
        assert_eq!(
            normalize("security_group_ids", json!(["sg-2", "sg-1"])),
            json!(["sg-1", "sg-2"])
        );
        assert_eq!(normalize("version", json!("1.31")), json!("1.31"));
    }

    #[test]
    fn checks_upgrades() {
        assert!(check_upgrade("c", "1.30", "1.31").is_ok());
        let down = check_upgrade("c", "1.31", "1.30")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(down.contains("cannot downgrade"), "{down}");
        let jump = check_upgrade("c", "1.29", "1.31")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(jump.contains("one minor version at a time"), "{jump}");
        assert!(jump.contains("1.30"), "{jump}");
        // Unparseable versions are left to the API.
        assert!(check_upgrade("c", "latest", "1.31").is_ok());
    }
}

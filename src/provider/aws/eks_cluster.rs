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

use super::eks_lifecycle::{self as lifecycle, EksObject, Lifecycle, Until};
use super::eks_util::{
    Backoff, IAM_PROPAGATION_TIMEOUT, is_in_use, issues_line, retry_iam_propagation, set_value, sorted_set,
    sync_tags, tag_map, unless_gone, wait_update,
};
use super::toolkit::prelude::*;

/// Schema of `aws.eks.cluster`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.eks.cluster",
    doc: "An EKS cluster (control plane). The id is the cluster name. Creation takes 10-15 minutes.",
    attrs: attrs! {
        /// Cluster name, unique in the region.
        required name: String, force_new;
        /// Kubernetes version, for example `1.31`; AWS's default when unset. Upgraded in place, one
        /// minor version at a time.
        optional version: String;
        /// The IAM role the control plane assumes (trusting `eks.amazonaws.com`).
        required role_arn: String, force_new;
        /// Subnets for the control plane's network interfaces, in at least two availability zones. A
        /// set: order does not matter.
        required subnet_ids: StringList, force_new;
        /// Additional security groups for the control plane's network interfaces. A set.
        optional security_group_ids: StringList, force_new;
        /// Whether the Kubernetes API endpoint is reachable from the internet.
        optional endpoint_public_access: Bool = Bool(true);
        /// Whether the Kubernetes API endpoint is reachable from inside the VPC.
        optional endpoint_private_access: Bool = Bool(false);
        /// The cluster ARN.
        computed arn: String;
        /// The Kubernetes API server URL.
        computed endpoint: String;
        /// How in-cluster resources reach this cluster: `cluster = "${cluster.connection}"`.
        computed connection: Json;
        /// The cluster CA certificate, base64-encoded (for a kubeconfig).
        computed certificate_authority_data: String;
        /// The security group EKS created for the cluster (the one its managed nodes and control
        /// plane share; rules between stacks go on it). Empty on moto, which makes none.
        computed cluster_security_group_id: String;
        /// The OpenID Connect issuer URL (for IAM roles for service accounts); moto gives one.
        computed oidc_issuer: String;
        /// The cluster status, `ACTIVE` once usable.
        computed status: String;
        /// The EKS platform version.
        computed platform_version: String;
    },
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

/// A wait for `ACTIVE` ends there, or fails on these.
const UNTIL_ACTIVE: Until = Until {
    done: &["ACTIVE"],
    broken: &["FAILED", "DELETING"],
};

/// How the lifecycle the EKS kinds share reads a cluster.
static LIFECYCLE: Lifecycle<Cluster> = Lifecycle {
    create_op: "CreateCluster",
    delete_op: "DeleteCluster",
    status: |x| x.status().map(ClusterStatus::as_str),
    tags: |x| tag_map(x.tags()),
    health: health_issues,
    live,
};

impl EksCluster {
    /// One object, for the lifecycle the EKS kinds share.
    fn object<'a>(&'a self, name: &'a str) -> EksObject<'a, Cluster> {
        EksObject {
            kind: &LIFECYCLE,
            what: format!("EKS cluster {name}"),
            taken: format!("an EKS cluster named {name} already exists"),
            describe: Box::new(move || Box::pin(self.describe(name))),
        }
    }

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
        lifecycle::wait_active(&self.object(name), cx, operation, &UNTIL_ACTIVE, timeout).await
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
            Err(e) if is_in_use(&e) => {
                lifecycle::adopt(&self.object(name), cx, e, &UNTIL_ACTIVE, CREATE_TIMEOUT).await
            }
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
        lifecycle::wait_deleted(&self.object(name), cx, "FAILED", DELETE_TIMEOUT).await
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        // A cluster found while still being created is returned once usable,
        // as a create would.
        let name = attr_str(desired, "name")?;
        lifecycle::find_owned(&self.object(name), cx, &UNTIL_ACTIVE, CREATE_TIMEOUT).await
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

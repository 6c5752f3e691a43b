//! `aws.servicediscovery.private_dns_namespace`: a Cloud Map namespace
//! whose names resolve in one VPC (a private Route 53 hosted zone).
//!
//! The id is the namespace id (`ns-...`). Create and delete are
//! asynchronous: each answers with an operation id, polled with
//! GetOperation until it succeeds, with the status reported as progress.
//! The create passes the operation's token as `CreatorRequestId`, so a
//! create sent again returns the same operation.
//!
//! Cloud Map services may live in a namespace that the stack did not make
//! (the App Mesh controller registers its own). Deleting a namespace that
//! still has services fails naming them, unless `force_destroy = true`:
//! then their instances are deregistered and they are deleted first.
//!
//! A refresh lists every namespace in one paged ListNamespaces and reads
//! the tags of those state records one call each, under the bound. Cloud
//! Map does not say a namespace's VPC: read echoes the recorded `vpc_id`.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_servicediscovery::types::{
    FilterCondition, InstanceSummary, NamespaceSummary, OperationTargetType, ServiceFilter,
    ServiceFilterName, ServiceSummary,
};

use super::toolkit::all_pages_of;
use super::toolkit::cloudmap::{self as cm, operation_id, tag_list, tags_of_many, wait_operation};
use super::toolkit::errors::{Service, unless_gone};
use super::toolkit::ownership::{first_owned, owned_by};
use super::toolkit::prelude::*;

/// Schema of `aws.servicediscovery.private_dns_namespace`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.servicediscovery.private_dns_namespace",
    doc: "A Cloud Map private DNS namespace on a VPC. The id is the namespace id. Deleting it \
          while services remain fails naming them, unless `force_destroy = true`.",
    attrs: attrs! {
        /// The domain name, such as `demo.pvt.aws.local`.
        required name: String, force_new;
        /// The VPC whose resolver answers for the namespace.
        required vpc_id: String, force_new;
        /// Description.
        optional description: String = Str(""), force_new;
        /// At delete, deregister the instances of services still in the namespace and delete
        /// those services first (services a controller made); without it such a delete fails
        /// naming them.
        optional force_destroy: Bool = Bool(false);
        /// The namespace's ARN.
        computed arn: String;
        /// The Route 53 private hosted zone Cloud Map made for it.
        computed hosted_zone_id: String;
    },
    taggable: true,
    ..KindDef::BASE
};

/// Operations of `aws.servicediscovery.private_dns_namespace`.
pub struct PrivateDnsNamespace(pub Arc<AwsClients>);

/// The live view of a listed namespace, with its tags and what state
/// recorded (the VPC, `force_destroy`).
fn live(
    n: &NamespaceSummary,
    tags: &std::collections::BTreeMap<String, String>,
    recorded: &Attrs,
) -> Option<Live> {
    let id = n.id()?;
    let mut attrs = Attrs::new();
    attrs.insert("name".into(), Value::from(n.name().unwrap_or_default()));
    attrs.insert(
        "vpc_id".into(),
        Value::from(attr_opt_str(recorded, "vpc_id").unwrap_or_default()),
    );
    attrs.insert(
        "description".into(),
        Value::from(n.description().unwrap_or_default()),
    );
    attrs.insert(
        "force_destroy".into(),
        Value::Bool(attr_bool(recorded, "force_destroy")),
    );
    attrs.insert("arn".into(), Value::from(n.arn().unwrap_or_default()));
    let zone = n
        .properties()
        .and_then(|p| p.dns_properties())
        .and_then(|d| d.hosted_zone_id())
        .unwrap_or_default();
    attrs.insert("hosted_zone_id".into(), Value::from(zone));
    attrs.insert("tags".into(), tags_value(tags.clone()));
    Some(Live {
        id: id.to_string(),
        attrs,
    })
}

impl PrivateDnsNamespace {
    fn client(&self) -> &aws_sdk_servicediscovery::Client {
        &self.0.servicediscovery
    }

    /// Every namespace of the region.
    async fn list(&self) -> Result<Vec<NamespaceSummary>, ProviderError> {
        all_pages_of!(self.client().list_namespaces(), namespaces, "ListNamespaces")
    }

    /// Live views of the namespaces `wanted` names (by id), each with what
    /// state recorded for it.
    async fn lives(&self, wanted: &HashMap<String, Attrs>) -> Result<HashMap<String, Live>, ProviderError> {
        let found: Vec<NamespaceSummary> = self
            .list()
            .await?
            .into_iter()
            .filter(|n| n.id().is_some_and(|id| wanted.contains_key(id)))
            .collect();
        let arns = found.iter().filter_map(|n| n.arn().map(str::to_string)).collect();
        let tags = tags_of_many(self.client(), arns).await?;
        Ok(found
            .iter()
            .filter_map(|n| {
                let l = live(n, tags.get(n.arn()?)?, wanted.get(n.id()?)?)?;
                Some((l.id.clone(), l))
            })
            .collect())
    }

    /// Services in namespace `id`.
    async fn services(&self, id: &str) -> Result<Vec<ServiceSummary>, ProviderError> {
        let filter = ServiceFilter::builder()
            .name(ServiceFilterName::NamespaceId)
            .values(id)
            .condition(FilterCondition::Eq)
            .build()
            .map_err(|e| ProviderError::unexpected("ListServices", e.to_string()))?;
        all_pages_of!(
            self.client().list_services().filters(filter),
            services,
            "ListServices"
        )
    }

    /// Deregisters every instance of service `id` and deletes it.
    async fn remove_service(&self, cx: &OpContext, id: &str) -> Result<(), ProviderError> {
        let c = self.client();
        let instances: Vec<InstanceSummary> =
            match all_pages_of!(c.list_instances().service_id(id), instances, "ListInstances") {
                Ok(i) => i,
                Err(e) if Service::CloudMap.is_not_found(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
        for instance in instances.iter().filter_map(InstanceSummary::id) {
            let out = send!(
                c.deregister_instance().service_id(id).instance_id(instance),
                "DeregisterInstance"
            );
            let Some(out) = unless_gone(Service::CloudMap, out)? else {
                continue;
            };
            let op = operation_id(out.operation_id(), "DeregisterInstance")?;
            wait_operation(
                c,
                &op,
                &format!("instance {instance} of service {id} to be deregistered"),
                &cx.progress,
            )
            .await?;
        }
        let deleted = send!(c.delete_service().id(id), "DeleteService");
        unless_gone(Service::CloudMap, deleted).map(|_| ())
    }
}

#[async_trait]
impl ResourceKind for PrivateDnsNamespace {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let name = attr_str(desired, "name")?;
        let tags = attr_tags(desired);
        let call = self
            .client()
            .create_private_dns_namespace()
            .name(name)
            .vpc(attr_str(desired, "vpc_id")?)
            .set_description(
                attr_opt_str(desired, "description")
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            )
            .set_creator_request_id(Some(cx.token.clone()).filter(|t| !t.is_empty()))
            .set_tags(Some(tag_list(&tags)?).filter(|t| !t.is_empty()));
        let out = send_once!(call, "CreatePrivateDnsNamespace")?;
        let op = operation_id(out.operation_id(), "CreatePrivateDnsNamespace")?;
        let targets = wait_operation(
            self.client(),
            &op,
            &format!("namespace {name} to be created"),
            &cx.progress,
        )
        .await?;
        let id = targets
            .get(&OperationTargetType::Namespace)
            .cloned()
            .ok_or_else(|| {
                ProviderError::unexpected("GetOperation", "no namespace among the operation's targets")
            })?;
        let wanted = HashMap::from([(id.clone(), desired.clone())]);
        self.lives(&wanted).await?.remove(&id).ok_or_else(|| {
            ProviderError::unexpected("ListNamespaces", format!("namespace {id} is not listed"))
        })
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: HashMap<String, Attrs> =
            requests.iter().map(|r| (r.id.clone(), r.attrs.clone())).collect();
        let lives = self.lives(&wanted).await?;
        Ok(requests.iter().map(|r| lives.get(&r.id).cloned()).collect())
    }

    /// Only the tags and `force_destroy` (meshform's own) change in place.
    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let mut live = prior.clone();
        if change.has("tags") {
            let arn = attr_str(&prior.attrs, "arn")?;
            let want = attr_tags(desired);
            cm::sync(self.client(), arn, &attr_tags(&prior.attrs), &want).await?;
            live.attrs.insert("tags".into(), tags_value(want));
        }
        live.attrs.insert(
            "force_destroy".into(),
            Value::Bool(attr_bool(desired, "force_destroy")),
        );
        Ok(live)
    }

    async fn delete(&self, cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let id = prior.id.as_str();
        let services = match self.services(id).await {
            Err(e) if Service::CloudMap.is_not_found(&e) => return Ok(()),
            other => other?,
        };
        if !services.is_empty() {
            if !attr_bool(&prior.attrs, "force_destroy") {
                let names: Vec<String> = services
                    .iter()
                    .map(|s| format!("{} ({})", s.name().unwrap_or("?"), s.id().unwrap_or("?")))
                    .collect();
                return Err(ProviderError::unexpected(
                    "DeleteNamespace",
                    format!(
                        "namespace {id} still has services: {}; delete them first, or set \
                         force_destroy = true to have meshform delete them",
                        names.join(", ")
                    ),
                ));
            }
            for service in services.iter().filter_map(ServiceSummary::id) {
                self.remove_service(cx, service).await?;
            }
        }
        let sent = send!(self.client().delete_namespace().id(id), "DeleteNamespace");
        let Some(out) = unless_gone(Service::CloudMap, sent)? else {
            return Ok(());
        };
        let op = operation_id(out.operation_id(), "DeleteNamespace")?;
        wait_operation(
            self.client(),
            &op,
            &format!("namespace {id} to be deleted"),
            &cx.progress,
        )
        .await
        .map(|_| ())
    }

    /// The namespace of this name carrying the ownership tags. One of that
    /// name without them is not this resource's (it may be another VPC's:
    /// Cloud Map allows one name in several VPCs), so it is not adopted.
    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let name = attr_str(desired, "name")?;
        let named: Vec<NamespaceSummary> = self
            .list()
            .await?
            .into_iter()
            .filter(|n| n.name() == Some(name))
            .collect();
        let arns = named.iter().filter_map(|n| n.arn().map(str::to_string)).collect();
        let tags = tags_of_many(self.client(), arns).await?;
        let owned = named
            .iter()
            .filter_map(|n| Some((n, tags.get(n.arn()?)?)))
            .filter(|(_, t)| owned_by(t, cx));
        Ok(first_owned(owned, cx, "namespaces", |(n, _)| n.id()).and_then(|(n, t)| live(n, t, desired)))
    }
}

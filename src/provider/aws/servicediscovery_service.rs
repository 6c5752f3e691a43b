//! `aws.servicediscovery.service`: a Cloud Map service the stack owns, in
//! a (private DNS) namespace, with its DNS records and, optionally, custom
//! health checking.
//!
//! The id is the service id (`srv-...`). The create passes the operation's
//! token as `CreatorRequestId`, so a create sent again returns the same
//! service. The records' TTL changes in place (UpdateService, an
//! asynchronous operation polled with GetOperation); the record types, the
//! routing policy and the health check config cannot change in Cloud Map
//! and force a replacement. A refresh lists the services of each recorded
//! namespace (one paged ListServices per namespace) and reads tags one
//! call per service, under the bound. Instances are registered by what
//! runs (the App Mesh controller), not by meshform: deleting a service
//! that still has instances fails in Cloud Map (`ResourceInUse`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_servicediscovery::types::{
    DnsConfig, DnsConfigChange, DnsRecord, FilterCondition, HealthCheckCustomConfig, RecordType,
    RoutingPolicy, ServiceChange, ServiceFilter, ServiceFilterName, ServiceSummary,
};

use super::toolkit::all_pages_of;
use super::toolkit::cloudmap::{self as cm, operation_id, tag_list, tags_of_many, wait_operation};
use super::toolkit::errors::{Service, gone_is_done};
use super::toolkit::ownership::{first_owned, owned_by};
use super::toolkit::prelude::*;

/// Schema of `aws.servicediscovery.service`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.servicediscovery.service",
    doc: "A Cloud Map service in a DNS namespace. The id is the service id. The records' TTL \
          changes in place.",
    attrs: attrs! {
        /// The service name (the first label of its DNS names).
        required name: String, force_new;
        /// The namespace the service lives in.
        required namespace_id: String, force_new;
        /// Description.
        optional description: String = Str(""), force_new;
        /// DNS record types each instance gets: `A`, `AAAA`, `SRV`, `CNAME`; `["A"]` when unset.
        optional dns_record_types: StringList, force_new;
        /// TTL of the records, in seconds; changes in place.
        optional dns_ttl: Int = Int(300);
        /// `MULTIVALUE` or `WEIGHTED`.
        optional routing_policy: String = Str("MULTIVALUE"), force_new;
        /// Custom health checking: what registers instances reports their health. (Its failure
        /// threshold is deprecated in Cloud Map and always 1, so it is not an attribute.)
        optional health_check_custom: Bool = Bool(false), force_new;
        /// The service's ARN.
        computed arn: String;
    },
    taggable: true,
    ..KindDef::BASE
};

/// Operations of `aws.servicediscovery.service`.
pub struct CloudMapService(pub Arc<AwsClients>);

/// The live view of a listed service in namespace `namespace`.
fn live(s: &ServiceSummary, namespace: &str, tags: &BTreeMap<String, String>) -> Option<Live> {
    let id = s.id()?;
    let records = s.dns_config().map(DnsConfig::dns_records).unwrap_or_default();
    let mut attrs = Attrs::new();
    attrs.insert("name".into(), Value::from(s.name().unwrap_or_default()));
    attrs.insert("namespace_id".into(), Value::from(namespace));
    attrs.insert(
        "description".into(),
        Value::from(s.description().unwrap_or_default()),
    );
    attrs.insert(
        "dns_record_types".into(),
        Value::from(
            records
                .iter()
                .map(|r| r.r#type().as_str().to_string())
                .collect::<Vec<_>>(),
        ),
    );
    attrs.insert(
        "dns_ttl".into(),
        Value::from(records.first().map_or(0, DnsRecord::ttl)),
    );
    attrs.insert(
        "routing_policy".into(),
        Value::from(
            s.dns_config()
                .and_then(DnsConfig::routing_policy)
                .map_or("MULTIVALUE", RoutingPolicy::as_str),
        ),
    );
    attrs.insert(
        "health_check_custom".into(),
        Value::Bool(s.health_check_custom_config().is_some()),
    );
    attrs.insert("arn".into(), Value::from(s.arn().unwrap_or_default()));
    attrs.insert("tags".into(), tags_value(tags.clone()));
    Some(Live {
        id: id.to_string(),
        attrs,
    })
}

/// The desired DNS records (types and TTL).
fn records(desired: &Attrs) -> Result<Vec<DnsRecord>, ProviderError> {
    let mut types = attr_str_list(desired, "dns_record_types");
    if types.is_empty() {
        types.push("A".into());
    }
    let ttl = desired.get("dns_ttl").and_then(Value::as_i64).unwrap_or(300);
    types
        .iter()
        .map(|t| {
            DnsRecord::builder()
                .r#type(RecordType::from(t.as_str()))
                .ttl(ttl)
                .build()
                .map_err(|e| ProviderError::invalid("dns_record_types", e.to_string()))
        })
        .collect()
}

impl CloudMapService {
    fn client(&self) -> &aws_sdk_servicediscovery::Client {
        &self.0.servicediscovery
    }

    /// The services of namespace `namespace`.
    async fn list(&self, namespace: &str) -> Result<Vec<ServiceSummary>, ProviderError> {
        let filter = ServiceFilter::builder()
            .name(ServiceFilterName::NamespaceId)
            .values(namespace)
            .condition(FilterCondition::Eq)
            .build()
            .map_err(|e| ProviderError::unexpected("ListServices", e.to_string()))?;
        let listed = all_pages_of!(
            self.client().list_services().filters(filter),
            services,
            "ListServices"
        );
        match listed {
            // The namespace is gone, and its services with it.
            Err(e) if Service::CloudMap.is_not_found(&e) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Live views of the services of `namespace` that `keep` accepts.
    async fn lives(
        &self,
        namespace: &str,
        keep: impl Fn(&ServiceSummary) -> bool,
    ) -> Result<Vec<Live>, ProviderError> {
        let services: Vec<ServiceSummary> = self
            .list(namespace)
            .await?
            .into_iter()
            .filter(|s| keep(s))
            .collect();
        let arns = services
            .iter()
            .filter_map(|s| s.arn().map(str::to_string))
            .collect();
        let tags = tags_of_many(self.client(), arns).await?;
        Ok(services
            .iter()
            .filter_map(|s| live(s, namespace, tags.get(s.arn()?)?))
            .collect())
    }

    /// One service's live view; `None` when it does not exist.
    async fn read_one(&self, namespace: &str, id: &str) -> Result<Option<Live>, ProviderError> {
        Ok(self
            .lives(namespace, |s| s.id() == Some(id))
            .await?
            .into_iter()
            .next())
    }
}

#[async_trait]
impl ResourceKind for CloudMapService {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let namespace = attr_str(desired, "namespace_id")?;
        let tags = attr_tags(desired);
        let dns = DnsConfig::builder()
            .routing_policy(RoutingPolicy::from(
                attr_opt_str(desired, "routing_policy").unwrap_or("MULTIVALUE"),
            ))
            .set_dns_records(Some(records(desired)?))
            .build()
            .map_err(|e| ProviderError::invalid("dns_record_types", e.to_string()))?;
        let health =
            attr_bool(desired, "health_check_custom").then(|| HealthCheckCustomConfig::builder().build());
        let call = self
            .client()
            .create_service()
            .name(attr_str(desired, "name")?)
            .namespace_id(namespace)
            .set_description(
                attr_opt_str(desired, "description")
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            )
            .set_creator_request_id(Some(cx.token.clone()).filter(|t| !t.is_empty()))
            .dns_config(dns)
            .set_health_check_custom_config(health)
            .set_tags(Some(tag_list(&tags)?).filter(|t| !t.is_empty()));
        let out = send_once!(call, "CreateService")?;
        let id = out
            .service()
            .and_then(|s| s.id())
            .ok_or_else(|| ProviderError::unexpected("CreateService", "no service id in the response"))?;
        self.read_one(namespace, id)
            .await?
            .ok_or_else(|| ProviderError::unexpected("ListServices", format!("service {id} is not listed")))
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in requests {
            let namespace = attr_opt_str(&r.attrs, "namespace_id").unwrap_or_default();
            by_namespace.entry(namespace).or_default().push(&r.id);
        }
        let mut lives: HashMap<String, Live> = HashMap::new();
        for (namespace, ids) in by_namespace {
            if namespace.is_empty() {
                continue;
            }
            let found = self
                .lives(namespace, |s| s.id().is_some_and(|id| ids.contains(&id)))
                .await?;
            lives.extend(found.into_iter().map(|l| (l.id.clone(), l)));
        }
        Ok(requests.iter().map(|r| lives.get(&r.id).cloned()).collect())
    }

    async fn update(&self, cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let id = prior.id.as_str();
        let c = self.client();
        if change.has("dns_ttl") {
            let dns = DnsConfigChange::builder()
                .set_dns_records(Some(records(desired)?))
                .build()
                .map_err(|e| ProviderError::invalid("dns_ttl", e.to_string()))?;
            let out = send!(
                c.update_service()
                    .id(id)
                    .service(ServiceChange::builder().dns_config(dns).build()),
                "UpdateService"
            )?;
            let op = operation_id(out.operation_id(), "UpdateService")?;
            wait_operation(c, &op, &format!("service {id} to be updated"), &cx.progress).await?;
        }
        if change.has("tags") {
            let arn = attr_str(&prior.attrs, "arn")?;
            cm::sync(c, arn, &attr_tags(&prior.attrs), &attr_tags(desired)).await?;
        }
        let namespace = attr_str(&prior.attrs, "namespace_id")?;
        self.read_one(namespace, id)
            .await?
            .ok_or_else(|| ProviderError::unexpected("ListServices", format!("service {id} vanished")))
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        gone_is_done(
            Service::CloudMap,
            send!(self.client().delete_service().id(&prior.id), "DeleteService"),
        )
    }

    /// The service of this name in the namespace carrying the ownership tags.
    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let namespace = attr_str(desired, "namespace_id")?;
        let name = attr_str(desired, "name")?;
        let named = self.lives(namespace, |s| s.name() == Some(name)).await?;
        let owned = named.into_iter().filter(|l| owned_by(&attr_tags(&l.attrs), cx));
        Ok(first_owned(owned, cx, "Cloud Map services", |l| {
            Some(l.id.as_str())
        }))
    }
}

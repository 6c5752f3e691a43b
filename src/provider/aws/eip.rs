//! `aws.ec2.eip`: an Elastic IP address, identified by its allocation id
//! (what NAT gateways and associations take).
//!
//! Addresses are listed with an `allocation-id` filter rather than
//! `AllocationIds`, which fails the whole call when one id no longer exists.
//! DescribeAddresses is not paginated: one call answers for all ids.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{DomainType, ResourceType};

use super::ec2_util::{
    MAX_FILTER_VALUES, filter, first_owned, is_not_found, owned_by, ownership_filters, sync_tags, tag_spec,
    tags_attr, wait_until,
};
use super::{AwsClients, SingleAttempt};
use crate::provider::schema::{AttrSchema, AttrType, Default, KindDef};
use crate::provider::{Live, OpContext, ProviderError, ReadRequest, ResourceKind, attr_opt_str, attr_tags};
use crate::{Attrs, Value};

/// Schema of `aws.ec2.eip`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.eip",
    doc: "An Elastic IP address (for example for a NAT gateway).",
    attrs: &[
        AttrSchema::optional("domain", AttrType::String, "`vpc` (or the legacy `standard`).")
            .force_new()
            .default(Default::Str("vpc")),
        AttrSchema::computed(
            "allocation_id",
            AttrType::String,
            "The allocation id (also the resource id).",
        ),
        AttrSchema::computed("public_ip", AttrType::String, "The public IPv4 address."),
    ],
    taggable: true,
    normalize: None,
    preflight: None,
    identity: &[],
    hosts_objects: false,
};

/// How long a new address may take to show in describes.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a release may wait for the address to stop being in use.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Operations of `aws.ec2.eip`.
pub struct Eip(pub Arc<AwsClients>);

/// The live view of a described address.
fn live(a: &aws_sdk_ec2::types::Address) -> Result<Live, ProviderError> {
    let id = a.allocation_id().ok_or_else(|| {
        ProviderError::unexpected("DescribeAddresses", "an address without an allocation id")
    })?;
    let mut attrs = Attrs::new();
    attrs.insert(
        "domain".into(),
        Value::from(a.domain().map(DomainType::as_str).unwrap_or("vpc")),
    );
    attrs.insert("allocation_id".into(), Value::from(id));
    attrs.insert("public_ip".into(), Value::from(a.public_ip().unwrap_or_default()));
    attrs.insert("tags".into(), tags_attr(a.tags()));
    Ok(Live {
        id: id.to_string(),
        attrs,
    })
}

impl Eip {
    /// Describes addresses by allocation id, one call per
    /// [`MAX_FILTER_VALUES`] ids. Released addresses are left out.
    async fn describe(&self, ids: &[String]) -> Result<Vec<aws_sdk_ec2::types::Address>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let resp = self
                .0
                .ec2
                .describe_addresses()
                .filters(filter("allocation-id", chunk))
                .send()
                .await
                .map_err(|e| ProviderError::aws("DescribeAddresses", e))?;
            out.extend(resp.addresses().iter().cloned());
        }
        Ok(out)
    }

    /// Reads one address; `None` when it has been released.
    async fn read_one(&self, id: &str) -> Result<Option<Live>, ProviderError> {
        self.describe(&[id.to_string()])
            .await?
            .iter()
            .find(|a| a.allocation_id() == Some(id))
            .map(live)
            .transpose()
    }
}

#[async_trait]
impl ResourceKind for Eip {
    fn def(&self) -> &'static KindDef {
        &DEF
    }

    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let tags = attr_tags(desired);
        let domain = attr_opt_str(desired, "domain").unwrap_or("vpc");
        let mut call = self.0.ec2.allocate_address().domain(DomainType::from(domain));
        if !tags.is_empty() {
            call = call.tag_specifications(tag_spec(ResourceType::ElasticIp, &tags));
        }
        let out = call
            .customize()
            .config_override(SingleAttempt)
            .send()
            .await
            .map_err(|e| ProviderError::aws("AllocateAddress", e))?;
        let id = out
            .allocation_id()
            .ok_or_else(|| ProviderError::unexpected("AllocateAddress", "no allocation id in the response"))?
            .to_string();
        // Read back until visible: EC2 describes are eventually consistent.
        wait_until(&format!("address {id} to be visible"), VISIBLE_TIMEOUT, || {
            self.read_one(&id)
        })
        .await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = requests
            .iter()
            .map(|r| r.id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lives: HashMap<String, Live> = self
            .describe(&ids)
            .await?
            .iter()
            .map(|a| live(a).map(|l| (l.id.clone(), l)))
            .collect::<Result<_, _>>()?;
        Ok(requests.iter().map(|r| lives.get(&r.id).cloned()).collect())
    }

    async fn update(
        &self,
        _cx: &OpContext,
        prior: &Live,
        desired: &Attrs,
        changed: &[String],
    ) -> Result<Live, ProviderError> {
        let id = prior.id.as_str();
        if changed.iter().any(|c| c == "tags") {
            sync_tags(&self.0.ec2, id, &attr_tags(&prior.attrs), &attr_tags(desired)).await?;
        }
        self.read_one(id).await?.ok_or_else(|| {
            ProviderError::unexpected(
                "DescribeAddresses",
                format!("address {id} vanished during its update"),
            )
        })
    }

    /// Releases the address. Right after the NAT gateway using it is
    /// deleted, the address can still show as in use for a little while:
    /// that is retried for up to `RELEASE_TIMEOUT`.
    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + RELEASE_TIMEOUT;
        loop {
            let released = self.0.ec2.release_address().allocation_id(&prior.id).send().await;
            let e = match released {
                Ok(_) => return Ok(()),
                Err(e) => ProviderError::aws("ReleaseAddress", e),
            };
            if is_not_found(&e) {
                return Ok(());
            }
            if e.code() != Some("InvalidIPAddress.InUse") || tokio::time::Instant::now() >= deadline {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    async fn find_existing(&self, cx: &OpContext, _desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let resp = self
            .0
            .ec2
            .describe_addresses()
            .set_filters(Some(ownership_filters(&cx.stack, &cx.address)))
            .send()
            .await
            .map_err(|e| ProviderError::aws("DescribeAddresses", e))?;
        let owned = resp
            .addresses()
            .iter()
            .filter(|a| owned_by(a.tags(), &cx.stack, &cx.address));
        let Some(address) = first_owned(owned, cx, "Elastic IPs", |a| a.allocation_id()) else {
            return Ok(None);
        };
        live(address).map(Some)
    }
}

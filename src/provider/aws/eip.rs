//! `aws.ec2.eip`: an Elastic IP address, identified by its allocation id
//! (what NAT gateways and associations take).
//!
//! Addresses are listed with an `allocation-id` filter rather than
//! `AllocationIds`, which fails the whole call when one id no longer exists.
//! DescribeAddresses is not paginated: one call answers for all ids.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{DomainType, ResourceType};

use super::toolkit::ec2::{
    Ec2Kind, Recorded, created_id, delete_retrying, ec2_described, tagged, tags_attr, visible,
};
use super::toolkit::poll::Poll;
use super::toolkit::prelude::*;

/// Schema of `aws.ec2.eip`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.eip",
    doc: "An Elastic IP address (for example for a NAT gateway).",
    attrs: attrs! {
        /// `vpc` (or the legacy `standard`).
        optional domain: String = Str("vpc"), force_new;
        /// The allocation id (also the resource id).
        computed allocation_id: String;
        /// The public IPv4 address.
        computed public_ip: String;
    },
    taggable: true,
    ..KindDef::BASE
};

/// How long a release may wait for the address to stop being in use.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Operations of `aws.ec2.eip`.
pub struct Eip(pub Arc<AwsClients>);

ec2_described! {
    Eip: aws_sdk_ec2::types::Address, id allocation_id, filter "allocation-id", noun "Elastic IPs",
    describe once describe_addresses(addresses) "DescribeAddresses",
    delete release_address(allocation_id) "ReleaseAddress"
}

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

#[async_trait]
impl Ec2Kind for Eip {
    fn live(&self, a: &Self::Item, _recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        live(a).map(Some)
    }

    async fn make(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let domain = attr_opt_str(desired, "domain").unwrap_or("vpc");
        let call = self
            .0
            .ec2
            .allocate_address()
            .domain(DomainType::from(domain))
            .set_tag_specifications(tagged(ResourceType::ElasticIp, desired));
        let out = send_once!(call, "AllocateAddress")?;
        let id = created_id(out.allocation_id(), "AllocateAddress")?;
        // Read back until visible: EC2 describes are eventually consistent.
        visible(self, &id, &Recorded::new(), |_| true).await
    }

    /// Releases the address. Right after the NAT gateway using it is
    /// deleted, the address can still show as in use for a little while:
    /// that is retried for up to `RELEASE_TIMEOUT`.
    async fn remove(&self, id: &str) -> Result<(), ProviderError> {
        let poll = Poll::new(format!("address {id} to be released"), RELEASE_TIMEOUT)
            .pauses(Duration::from_secs(5), Duration::from_secs(5));
        delete_retrying(self, id, "InvalidIPAddress.InUse", poll).await
    }
}

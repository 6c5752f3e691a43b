//! `aws.ec2.internet_gateway`: an internet gateway. It is attached to a VPC
//! by the separate `aws.ec2.internet_gateway_attachment` kind, so that the
//! gateway and the VPC can be created in parallel and the attachment removed
//! before either is deleted.
//!
//! Gateways are listed with an `internet-gateway-id` filter rather than
//! `InternetGatewayIds`, which fails the whole call when one id no longer
//! exists.

use std::sync::Arc;

use aws_sdk_ec2::types::ResourceType;

use super::toolkit::ec2::{Ec2Kind, Recorded, created_id, ec2_described, tagged, tags_attr, visible};
use super::toolkit::prelude::*;
use super::toolkit::shared_reads::InternetGatewayReads;

/// Schema of `aws.ec2.internet_gateway`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.internet_gateway",
    doc: "An internet gateway; attach it to a VPC with `aws.ec2.internet_gateway_attachment`.",
    attrs: attrs! {
        /// The account that owns the gateway.
        computed owner_id: String;
    },
    taggable: true,
    ..KindDef::BASE
};

/// Operations of `aws.ec2.internet_gateway`.
pub struct InternetGateway(pub Arc<AwsClients>);

ec2_described! {
    InternetGateway: aws_sdk_ec2::types::InternetGateway, id internet_gateway_id,
    filter "internet-gateway-id", noun "internet gateways", describe describe_internet_gateways
    "DescribeInternetGateways", delete delete_internet_gateway(internet_gateway_id) "DeleteInternetGateway"
}

/// The live view of a described gateway.
fn live(g: &aws_sdk_ec2::types::InternetGateway) -> Result<Live, ProviderError> {
    let id = g
        .internet_gateway_id()
        .ok_or_else(|| ProviderError::unexpected("DescribeInternetGateways", "a gateway without an id"))?;
    let mut attrs = Attrs::new();
    attrs.insert("owner_id".into(), Value::from(g.owner_id().unwrap_or_default()));
    attrs.insert("tags".into(), tags_attr(g.tags()));
    Ok(Live {
        id: id.to_string(),
        attrs,
    })
}

#[async_trait]
impl Ec2Kind for InternetGateway {
    fn live(&self, g: &Self::Item, _recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        live(g).map(Some)
    }

    /// The attachment kind reads the same gateways: one describe serves both.
    fn announce_shared(&self, session: &ReadSession, requests: &[ReadRequest]) {
        session
            .shared::<InternetGatewayReads>()
            .want(requests.iter().map(|r| r.id.as_str()));
    }

    async fn read_shared(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
        let gateways = session
            .shared::<InternetGatewayReads>()
            .gateways(&self.0.ec2, &ids)
            .await?;
        requests
            .iter()
            .map(|r| gateways.get(&r.id).map(live).transpose())
            .collect()
    }

    async fn make(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let call = self
            .0
            .ec2
            .create_internet_gateway()
            .set_tag_specifications(tagged(ResourceType::InternetGateway, desired));
        let out = send_once!(call, "CreateInternetGateway")?;
        let gateway = out.internet_gateway().and_then(|g| g.internet_gateway_id());
        let id = created_id(gateway, "CreateInternetGateway")?;
        // Read back until visible: EC2 describes are eventually consistent.
        visible(self, &id, &Recorded::new(), |_| true).await
    }
}

//! `aws.ec2.internet_gateway_attachment`: attaches an internet gateway to a
//! VPC. Its id is `<igw-id>:<vpc-id>`; it exists while the gateway reports
//! an `available` (or `attached`) attachment to that VPC. An attachment
//! carries no tags: it is found again by its natural key.

use std::sync::Arc;

use super::toolkit::distinct;
use super::toolkit::ec2::filters_in_chunks;
use super::toolkit::errors::{Service, gone_is_done};
use super::toolkit::poll::{Poll, VISIBLE_TIMEOUT};
use super::toolkit::prelude::*;
use super::toolkit::shared_reads::InternetGatewayReads;

/// Schema of `aws.ec2.internet_gateway_attachment`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.internet_gateway_attachment",
    doc: "Attaches an internet gateway to a VPC.",
    attrs: attrs! {
        /// The internet gateway to attach.
        required internet_gateway_id: String, force_new;
        /// The VPC to attach it to.
        required vpc_id: String, force_new;
    },
    identity: &[&["vpc_id"], &["internet_gateway_id"]],
    ..KindDef::BASE
};

/// Operations of `aws.ec2.internet_gateway_attachment`.
pub struct InternetGatewayAttachment(pub Arc<AwsClients>);

/// The attachment's id.
fn attachment_id(igw: &str, vpc: &str) -> String {
    format!("{igw}:{vpc}")
}

/// The gateway and VPC ids an attachment stands for: from its id, or from
/// its recorded attributes when the id is not `<igw-id>:<vpc-id>`.
fn key(id: &str, attrs: &Attrs) -> Option<(String, String)> {
    if let Some((igw, vpc)) = id.split_once(':') {
        return Some((igw.to_string(), vpc.to_string()));
    }
    Some((
        attr_opt_str(attrs, "internet_gateway_id")?.to_string(),
        attr_opt_str(attrs, "vpc_id")?.to_string(),
    ))
}

/// The (gateway, VPC) key of every request.
fn keys(requests: &[ReadRequest]) -> Result<Vec<(String, String)>, ProviderError> {
    requests
        .iter()
        .map(|r| {
            key(&r.id, &r.attrs).ok_or_else(|| {
                ProviderError::invalid(
                    "id",
                    format!("{}: `{}` is not <igw-id>:<vpc-id>", r.address, r.id),
                )
            })
        })
        .collect()
}

fn live(igw: &str, vpc: &str) -> Live {
    let mut attrs = Attrs::new();
    attrs.insert("internet_gateway_id".into(), Value::from(igw));
    attrs.insert("vpc_id".into(), Value::from(vpc));
    Live {
        id: attachment_id(igw, vpc),
        attrs,
    }
}

/// Whether `gateway` reports a live attachment to `vpc`.
fn attached_to(gateway: &aws_sdk_ec2::types::InternetGateway, vpc: &str) -> bool {
    gateway.attachments().iter().any(|a| {
        a.vpc_id() == Some(vpc)
            && a.state()
                .is_some_and(|s| matches!(s.as_str(), "available" | "attached"))
    })
}

impl InternetGatewayAttachment {
    /// Describes gateways by id, one filtered, paginated call per filter
    /// of ids. Gateways that do not exist are left out.
    async fn describe(
        &self,
        igw_ids: &[String],
    ) -> Result<Vec<aws_sdk_ec2::types::InternetGateway>, ProviderError> {
        let mut out = Vec::new();
        for f in filters_in_chunks("internet-gateway-id", igw_ids) {
            let call = self.0.ec2.describe_internet_gateways().filters(f);
            out.extend(all_pages!(call, "DescribeInternetGateways")?);
        }
        Ok(out)
    }

    /// Reads one attachment; `None` when the gateway is not attached to the VPC.
    async fn read_one(&self, igw: &str, vpc: &str) -> Result<Option<Live>, ProviderError> {
        let gateways = self.describe(&[igw.to_string()]).await?;
        let attached = gateways
            .iter()
            .any(|g| g.internet_gateway_id() == Some(igw) && attached_to(g, vpc));
        Ok(attached.then(|| live(igw, vpc)))
    }
}

#[async_trait]
impl ResourceKind for InternetGatewayAttachment {
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let igw = attr_str(desired, "internet_gateway_id")?;
        let vpc = attr_str(desired, "vpc_id")?;
        let call = self
            .0
            .ec2
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc);
        if let Err(e) = send_once!(call, "AttachInternetGateway") {
            // Attaching again what is already attached (a retried create)
            // fails with Resource.AlreadyAssociated: that is success.
            if self.read_one(igw, vpc).await?.is_none() {
                return Err(e);
            }
        }
        Poll::new(
            format!("internet gateway {igw} to show attached to {vpc}"),
            VISIBLE_TIMEOUT,
        )
        .until(|| self.read_one(igw, vpc))
        .await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys(requests)?;
        let igw_ids = distinct(keys.iter().map(|(igw, _)| igw.clone()));
        let gateways = self.describe(&igw_ids).await?;
        Ok(keys
            .iter()
            .map(|(igw, vpc)| {
                let attached = gateways
                    .iter()
                    .any(|g| g.internet_gateway_id() == Some(igw.as_str()) && attached_to(g, vpc));
                attached.then(|| live(igw, vpc))
            })
            .collect())
    }

    /// The gateway kind reads the same gateways: one describe serves both.
    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        let keys: Vec<(String, String)> = requests.iter().filter_map(|r| key(&r.id, &r.attrs)).collect();
        session
            .shared::<InternetGatewayReads>()
            .want(keys.iter().map(|(igw, _)| igw.as_str()));
    }

    async fn read_in(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let keys = keys(requests)?;
        let igw_ids: Vec<String> = keys.iter().map(|(igw, _)| igw.clone()).collect();
        let gateways = session
            .shared::<InternetGatewayReads>()
            .gateways(&self.0.ec2, &igw_ids)
            .await?;
        Ok(keys
            .iter()
            .map(|(igw, vpc)| {
                let attached = gateways.get(igw).is_some_and(|g| attached_to(g, vpc));
                attached.then(|| live(igw, vpc))
            })
            .collect())
    }

    /// Nothing is updatable in place (both attributes force replacement):
    /// returns the attachment as it is.
    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let prior = change.prior;
        let (igw, vpc) = key(&prior.id, &prior.attrs).ok_or_else(|| {
            ProviderError::invalid("id", format!("`{}` is not <igw-id>:<vpc-id>", prior.id))
        })?;
        self.read_one(&igw, &vpc).await?.ok_or_else(|| {
            ProviderError::unexpected(
                "DescribeInternetGateways",
                format!("{igw} is no longer attached to {vpc}"),
            )
        })
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let (igw, vpc) = key(&prior.id, &prior.attrs).ok_or_else(|| {
            ProviderError::invalid("id", format!("`{}` is not <igw-id>:<vpc-id>", prior.id))
        })?;
        let detached = send!(
            self.0
                .ec2
                .detach_internet_gateway()
                .internet_gateway_id(&igw)
                .vpc_id(&vpc),
            "DetachInternetGateway"
        );
        // Gone gateway or VPC (NotFound), or no longer attached.
        match gone_is_done(Service::Ec2, detached) {
            Err(e) if e.code() == Some("Gateway.NotAttached") => Ok(()),
            other => other,
        }
    }

    async fn find_existing(&self, _cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        self.read_one(
            attr_str(desired, "internet_gateway_id")?,
            attr_str(desired, "vpc_id")?,
        )
        .await
    }
}

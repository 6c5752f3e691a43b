//! `aws.ec2.nat_gateway`: a NAT gateway in a subnet, public with an Elastic
//! IP (by allocation id) or private.
//!
//! A NAT gateway takes minutes to become `available` or `deleted`; create and
//! delete wait for that. Deleted gateways stay visible (state `deleted`) for
//! about an hour, and a `failed` one is deleted by AWS itself: read treats
//! gateways in `deleting`, `deleted` or `failed` as gone. The create passes
//! the operation's token as ClientToken so that a retried create returns the
//! same gateway. Gateways are listed with a `nat-gateway-id` filter rather
//! than `NatGatewayIds`, which fails the whole call when one id is unknown.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{ConnectivityType, NatGateway as SdkNatGateway, NatGatewayState, ResourceType};

use super::toolkit::ec2::{
    Ec2Described, Ec2Kind, created_id, describe_one, ec2_described, filter, find_owned, tagged, tags_attr,
};
use super::toolkit::errors::{Service, gone_is_done};
use super::toolkit::poll::Poll;
use super::toolkit::prelude::*;

/// Schema of `aws.ec2.nat_gateway`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.nat_gateway",
    doc: "A NAT gateway, giving private subnets outbound access.",
    attrs: attrs! {
        /// The (public) subnet the gateway lives in.
        required subnet_id: String, force_new;
        /// The Elastic IP's allocation id.
        required allocation_id: String, force_new;
        /// `public` or `private`.
        optional connectivity_type: String = Str("public"), force_new;
        /// The gateway's private IPv4 address.
        computed private_ip: String;
        /// The gateway's public IPv4 address.
        computed public_ip: String;
        /// The gateway's network interface.
        computed network_interface_id: String;
        /// The VPC of the subnet.
        computed vpc_id: String;
    },
    taggable: true,
    ..KindDef::BASE
};

/// How long a gateway may take to become `available`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long a gateway may take to become `deleted`.
const DELETE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Operations of `aws.ec2.nat_gateway`.
pub struct NatGateway(pub Arc<AwsClients>);

ec2_described! {
    NatGateway: SdkNatGateway, id nat_gateway_id, filter "nat-gateway-id", noun "NAT gateways",
    describe describe_nat_gateways.set_filter "DescribeNatGateways",
    delete delete_nat_gateway(nat_gateway_id) "DeleteNatGateway"
}

/// Whether a gateway in this state is gone or going, for meshform's purposes.
fn is_gone(state: Option<&NatGatewayState>) -> bool {
    matches!(
        state,
        Some(NatGatewayState::Deleting | NatGatewayState::Deleted | NatGatewayState::Failed)
    )
}

/// The live view of a described gateway. `allocation_id` falls back to
/// `fallback_allocation` when the gateway reports no address with one (a
/// private gateway), so that such a gateway does not show a change forever.
fn live(g: &SdkNatGateway, fallback_allocation: Option<&str>) -> Result<Live, ProviderError> {
    let id = g
        .nat_gateway_id()
        .ok_or_else(|| ProviderError::unexpected("DescribeNatGateways", "a NAT gateway without an id"))?;
    let addresses = g.nat_gateway_addresses();
    let primary = addresses
        .iter()
        .find(|a| a.is_primary() == Some(true))
        .or_else(|| addresses.first());
    let mut attrs = Attrs::new();
    attrs.insert("subnet_id".into(), Value::from(g.subnet_id().unwrap_or_default()));
    let allocation = primary
        .and_then(|a| a.allocation_id())
        .or(fallback_allocation)
        .unwrap_or_default();
    attrs.insert("allocation_id".into(), Value::from(allocation));
    attrs.insert(
        "connectivity_type".into(),
        Value::from(
            g.connectivity_type()
                .map(ConnectivityType::as_str)
                .unwrap_or("public"),
        ),
    );
    attrs.insert(
        "private_ip".into(),
        Value::from(primary.and_then(|a| a.private_ip()).unwrap_or_default()),
    );
    attrs.insert(
        "public_ip".into(),
        Value::from(primary.and_then(|a| a.public_ip()).unwrap_or_default()),
    );
    attrs.insert(
        "network_interface_id".into(),
        Value::from(primary.and_then(|a| a.network_interface_id()).unwrap_or_default()),
    );
    attrs.insert("vpc_id".into(), Value::from(g.vpc_id().unwrap_or_default()));
    attrs.insert("tags".into(), tags_attr(g.tags()));
    Ok(Live {
        id: id.to_string(),
        attrs,
    })
}

/// The error for a gateway that will never become available.
fn not_available(id: &str, g: &SdkNatGateway) -> ProviderError {
    let state = g.state().map(NatGatewayState::as_str).unwrap_or("unknown");
    let reason = match (g.failure_code(), g.failure_message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "no failure message given".to_string(),
    };
    ProviderError::Api {
        operation: "CreateNatGateway".to_string(),
        code: g.failure_code().map(str::to_string),
        message: format!("NAT gateway {id} is {state}: {reason}"),
    }
}

impl NatGateway {
    /// The live gateway once `available`; `None` while it is not visible yet
    /// or `pending`; an error when it failed or is being deleted.
    async fn poll_available(
        &self,
        id: &str,
        fallback_allocation: Option<&str>,
    ) -> Result<Option<Live>, ProviderError> {
        let Some(g) = describe_one(self, id).await? else {
            return Ok(None);
        };
        match g.state() {
            Some(NatGatewayState::Available) => live(&g, fallback_allocation).map(Some),
            state if is_gone(state) => Err(not_available(id, &g)),
            _ => Ok(None),
        }
    }

    /// Waits until the gateway is `available` and returns it.
    async fn wait_available(
        &self,
        id: &str,
        fallback_allocation: Option<&str>,
    ) -> Result<Live, ProviderError> {
        Poll::new(format!("NAT gateway {id} to become available"), CREATE_TIMEOUT)
            .until(|| self.poll_available(id, fallback_allocation))
            .await
    }
}

#[async_trait]
impl Ec2Kind for NatGateway {
    /// Gateways `deleting`, `deleted` or `failed` count as gone.
    fn live(&self, g: &Self::Item, recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        if is_gone(g.state()) {
            return Ok(None);
        }
        live(g, recorded.and_then(|r| attr_opt_str(r, "allocation_id"))).map(Some)
    }

    async fn make(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let allocation = attr_opt_str(desired, "allocation_id").filter(|a| !a.is_empty());
        let connectivity = attr_opt_str(desired, "connectivity_type").unwrap_or("public");
        let call = self
            .0
            .ec2
            .create_nat_gateway()
            .subnet_id(attr_str(desired, "subnet_id")?)
            .connectivity_type(ConnectivityType::from(connectivity))
            .set_allocation_id(allocation.map(str::to_string))
            .set_client_token(Some(cx.token.clone()).filter(|t| !t.is_empty()))
            .set_tag_specifications(tagged(ResourceType::Natgateway, desired));
        let out = send_once!(call, "CreateNatGateway")?;
        let id = created_id(
            out.nat_gateway().and_then(|g| g.nat_gateway_id()),
            "CreateNatGateway",
        )?;
        self.wait_available(&id, allocation).await
    }

    /// Deletes the gateway unless it is already going, then waits until it
    /// is `deleted` (or not listed at all).
    async fn remove(&self, id: &str) -> Result<(), ProviderError> {
        let Some(g) = describe_one(self, id).await? else {
            return Ok(());
        };
        match g.state() {
            Some(NatGatewayState::Deleted) => return Ok(()),
            Some(NatGatewayState::Deleting) => {}
            _ => gone_is_done(Service::Ec2, self.send_delete(id).await)?,
        }
        Poll::new(format!("NAT gateway {id} to be deleted"), DELETE_TIMEOUT)
            .until(|| async {
                let g = describe_one(self, id).await?;
                let deleted = g.is_none_or(|g| g.state() == Some(&NatGatewayState::Deleted));
                Ok(deleted.then_some(()))
            })
            .await
    }

    /// A gateway found while still pending is returned once usable, as a
    /// create would.
    async fn find(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let pending_or_available = filter("state", ["pending", "available"]);
        let found = find_owned(self, cx, vec![pending_or_available], |g| {
            matches!(
                g.state(),
                Some(NatGatewayState::Pending | NatGatewayState::Available)
            )
        })
        .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let allocation = attr_opt_str(desired, "allocation_id");
        self.wait_available(&found.id, allocation).await.map(Some)
    }
}

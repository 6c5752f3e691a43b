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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ConnectivityType, NatGateway as SdkNatGateway, NatGatewayState, ResourceType};

use super::ec2_util::{
    MAX_FILTER_VALUES, filter, first_owned, is_not_found, owned_by, ownership_filters, sync_tags, tag_spec,
    tags_attr, wait_until,
};
use super::{AwsClients, SingleAttempt};
use crate::provider::schema::{AttrSchema, AttrType, Default, KindDef};
use crate::provider::{
    Live, OpContext, ProviderError, ReadRequest, ResourceKind, attr_opt_str, attr_str, attr_tags,
};
use crate::{Attrs, Value};

/// Schema of `aws.ec2.nat_gateway`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.nat_gateway",
    doc: "A NAT gateway, giving private subnets outbound access.",
    attrs: &[
        AttrSchema::required(
            "subnet_id",
            AttrType::String,
            "The (public) subnet the gateway lives in.",
        )
        .force_new(),
        AttrSchema::required(
            "allocation_id",
            AttrType::String,
            "The Elastic IP's allocation id.",
        )
        .force_new(),
        AttrSchema::optional("connectivity_type", AttrType::String, "`public` or `private`.")
            .force_new()
            .default(Default::Str("public")),
        AttrSchema::computed(
            "private_ip",
            AttrType::String,
            "The gateway's private IPv4 address.",
        ),
        AttrSchema::computed(
            "public_ip",
            AttrType::String,
            "The gateway's public IPv4 address.",
        ),
        AttrSchema::computed(
            "network_interface_id",
            AttrType::String,
            "The gateway's network interface.",
        ),
        AttrSchema::computed("vpc_id", AttrType::String, "The VPC of the subnet."),
    ],
    taggable: true,
    normalize: None,
    preflight: None,
    identity: &[],
    hosts_objects: false,
};

/// How long a gateway may take to become `available`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long a gateway may take to become `deleted`.
const DELETE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Operations of `aws.ec2.nat_gateway`.
pub struct NatGateway(pub Arc<AwsClients>);

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
    /// Describes gateways by id: one filtered, paginated call per
    /// [`MAX_FILTER_VALUES`] ids, whatever their state.
    async fn describe(&self, ids: &[String]) -> Result<Vec<SdkNatGateway>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let gateways = self
                .0
                .ec2
                .describe_nat_gateways()
                .filter(filter("nat-gateway-id", chunk))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| ProviderError::aws("DescribeNatGateways", e))?;
            out.extend(gateways);
        }
        Ok(out)
    }

    /// One gateway, whatever its state.
    async fn describe_one(&self, id: &str) -> Result<Option<SdkNatGateway>, ProviderError> {
        Ok(self
            .describe(&[id.to_string()])
            .await?
            .into_iter()
            .find(|g| g.nat_gateway_id() == Some(id)))
    }

    /// The live gateway once `available`; `None` while it is not visible yet
    /// or `pending`; an error when it failed or is being deleted.
    async fn poll_available(
        &self,
        id: &str,
        fallback_allocation: Option<&str>,
    ) -> Result<Option<Live>, ProviderError> {
        let Some(g) = self.describe_one(id).await? else {
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
        wait_until(
            &format!("NAT gateway {id} to become available"),
            CREATE_TIMEOUT,
            || self.poll_available(id, fallback_allocation),
        )
        .await
    }

    /// `Some(())` once the gateway is `deleted` (or not listed at all).
    async fn poll_deleted(&self, id: &str) -> Result<Option<()>, ProviderError> {
        let g = self.describe_one(id).await?;
        let deleted = g.is_none_or(|g| g.state() == Some(&NatGatewayState::Deleted));
        Ok(deleted.then_some(()))
    }
}

#[async_trait]
impl ResourceKind for NatGateway {
    fn def(&self) -> &'static KindDef {
        &DEF
    }

    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let tags = attr_tags(desired);
        let allocation = attr_opt_str(desired, "allocation_id").filter(|a| !a.is_empty());
        let connectivity = attr_opt_str(desired, "connectivity_type").unwrap_or("public");
        let mut call = self
            .0
            .ec2
            .create_nat_gateway()
            .subnet_id(attr_str(desired, "subnet_id")?)
            .connectivity_type(ConnectivityType::from(connectivity))
            .set_allocation_id(allocation.map(str::to_string));
        if !cx.token.is_empty() {
            call = call.client_token(&cx.token);
        }
        if !tags.is_empty() {
            call = call.tag_specifications(tag_spec(ResourceType::Natgateway, &tags));
        }
        let out = call
            .customize()
            .config_override(SingleAttempt)
            .send()
            .await
            .map_err(|e| ProviderError::aws("CreateNatGateway", e))?;
        let id = out
            .nat_gateway()
            .and_then(|g| g.nat_gateway_id())
            .ok_or_else(|| {
                ProviderError::unexpected("CreateNatGateway", "no NAT gateway id in the response")
            })?
            .to_string();
        self.wait_available(&id, allocation).await
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
        let by_id: HashMap<String, SdkNatGateway> = self
            .describe(&ids)
            .await?
            .into_iter()
            .filter(|g| !is_gone(g.state()))
            .filter_map(|g| Some((g.nat_gateway_id()?.to_string(), g)))
            .collect();
        requests
            .iter()
            .map(|r| {
                by_id
                    .get(&r.id)
                    .map(|g| live(g, attr_opt_str(&r.attrs, "allocation_id")))
                    .transpose()
            })
            .collect()
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
        match self.describe_one(id).await? {
            Some(g) if !is_gone(g.state()) => live(&g, attr_opt_str(&prior.attrs, "allocation_id")),
            _ => Err(ProviderError::unexpected(
                "DescribeNatGateways",
                format!("NAT gateway {id} vanished during its update"),
            )),
        }
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let id = prior.id.as_str();
        let Some(g) = self.describe_one(id).await? else {
            return Ok(());
        };
        match g.state() {
            Some(NatGatewayState::Deleted) => return Ok(()),
            Some(NatGatewayState::Deleting) => {}
            _ => {
                if let Err(e) = self.0.ec2.delete_nat_gateway().nat_gateway_id(id).send().await {
                    let e = ProviderError::aws("DeleteNatGateway", e);
                    if is_not_found(&e) {
                        return Ok(());
                    }
                    return Err(e);
                }
            }
        }
        wait_until(&format!("NAT gateway {id} to be deleted"), DELETE_TIMEOUT, || {
            self.poll_deleted(id)
        })
        .await
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let gateways: Vec<_> = self
            .0
            .ec2
            .describe_nat_gateways()
            .set_filter(Some(ownership_filters(&cx.stack, &cx.address)))
            .filter(filter("state", ["pending", "available"]))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| ProviderError::aws("DescribeNatGateways", e))?;
        // Check tags and state here too: moto ignores the tag filters.
        let owned = gateways.iter().filter(|g| {
            owned_by(g.tags(), &cx.stack, &cx.address)
                && matches!(
                    g.state(),
                    Some(NatGatewayState::Pending | NatGatewayState::Available)
                )
        });
        let Some(gateway) = first_owned(owned, cx, "NAT gateways", |g| g.nat_gateway_id()) else {
            return Ok(None);
        };
        let id = gateway
            .nat_gateway_id()
            .ok_or_else(|| ProviderError::unexpected("DescribeNatGateways", "a NAT gateway without an id"))?;
        // A gateway found while still pending is returned once usable, as a
        // create would.
        let allocation = attr_opt_str(desired, "allocation_id");
        self.wait_available(id, allocation).await.map(Some)
    }
}

//! `aws.ec2.internet_gateway`: an internet gateway. It is attached to a VPC
//! by the separate `aws.ec2.internet_gateway_attachment` kind, so that the
//! gateway and the VPC can be created in parallel and the attachment removed
//! before either is deleted.
//!
//! Gateways are listed with an `internet-gateway-id` filter rather than
//! `InternetGatewayIds`, which fails the whole call when one id no longer
//! exists.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;

use super::ec2_util::{
    MAX_FILTER_VALUES, filter, first_owned, is_not_found, owned_by, ownership_filters, sync_tags, tag_spec,
    tags_attr, wait_until,
};
use super::shared_reads::InternetGatewayReads;
use super::{AwsClients, SingleAttempt};
use crate::provider::schema::{AttrSchema, AttrType, KindDef};
use crate::provider::{Live, OpContext, ProviderError, ReadRequest, ReadSession, ResourceKind, attr_tags};
use crate::{Attrs, Value};

/// Schema of `aws.ec2.internet_gateway`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.internet_gateway",
    doc: "An internet gateway; attach it to a VPC with `aws.ec2.internet_gateway_attachment`.",
    attrs: &[AttrSchema::computed(
        "owner_id",
        AttrType::String,
        "The account that owns the gateway.",
    )],
    taggable: true,
    normalize: None,
    preflight: None,
    identity: &[],
    hosts_objects: false,
};

/// How long a new gateway may take to show in describes.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Operations of `aws.ec2.internet_gateway`.
pub struct InternetGateway(pub Arc<AwsClients>);

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

impl InternetGateway {
    /// Describes gateways by id: one filtered, paginated call per
    /// [`MAX_FILTER_VALUES`] ids. Gateways that do not exist are left out.
    async fn describe(
        &self,
        ids: &[String],
    ) -> Result<Vec<aws_sdk_ec2::types::InternetGateway>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let gateways = self
                .0
                .ec2
                .describe_internet_gateways()
                .filters(filter("internet-gateway-id", chunk))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| ProviderError::aws("DescribeInternetGateways", e))?;
            out.extend(gateways);
        }
        Ok(out)
    }

    /// Reads one gateway; `None` when it does not exist.
    async fn read_one(&self, id: &str) -> Result<Option<Live>, ProviderError> {
        self.describe(&[id.to_string()])
            .await?
            .iter()
            .find(|g| g.internet_gateway_id() == Some(id))
            .map(live)
            .transpose()
    }
}

#[async_trait]
impl ResourceKind for InternetGateway {
    fn def(&self) -> &'static KindDef {
        &DEF
    }

    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let tags = attr_tags(desired);
        let mut call = self.0.ec2.create_internet_gateway();
        if !tags.is_empty() {
            call = call.tag_specifications(tag_spec(ResourceType::InternetGateway, &tags));
        }
        let out = call
            .customize()
            .config_override(SingleAttempt)
            .send()
            .await
            .map_err(|e| ProviderError::aws("CreateInternetGateway", e))?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| {
                ProviderError::unexpected("CreateInternetGateway", "no gateway id in the response")
            })?
            .to_string();
        // Read back until visible: EC2 describes are eventually consistent.
        wait_until(
            &format!("internet gateway {id} to be visible"),
            VISIBLE_TIMEOUT,
            || self.read_one(&id),
        )
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
            .map(|g| live(g).map(|l| (l.id.clone(), l)))
            .collect::<Result<_, _>>()?;
        Ok(requests.iter().map(|r| lives.get(&r.id).cloned()).collect())
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        session
            .shared::<InternetGatewayReads>()
            .want(requests.iter().map(|r| r.id.as_str()));
    }

    async fn read_in(
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
                "DescribeInternetGateways",
                format!("gateway {id} vanished during its update"),
            )
        })
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        match self
            .0
            .ec2
            .delete_internet_gateway()
            .internet_gateway_id(&prior.id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = ProviderError::aws("DeleteInternetGateway", e);
                if is_not_found(&e) { Ok(()) } else { Err(e) }
            }
        }
    }

    async fn find_existing(&self, cx: &OpContext, _desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let gateways: Vec<_> = self
            .0
            .ec2
            .describe_internet_gateways()
            .set_filters(Some(ownership_filters(&cx.stack, &cx.address)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| ProviderError::aws("DescribeInternetGateways", e))?;
        let owned = gateways
            .iter()
            .filter(|g| owned_by(g.tags(), &cx.stack, &cx.address));
        let Some(gateway) = first_owned(owned, cx, "internet gateways", |g| g.internet_gateway_id()) else {
            return Ok(None);
        };
        live(gateway).map(Some)
    }
}

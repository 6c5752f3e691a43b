//! `aws.ec2.subnet`: a subnet of a VPC in one availability zone.
//!
//! Subnets are listed with a `subnet-id` filter rather than `SubnetIds`,
//! which fails the whole call when one id no longer exists.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, SubnetState};

use super::ec2_util::{
    MAX_FILTER_VALUES, filter, first_owned, is_not_found, owned_by, ownership_filters, sync_tags, tag_spec,
    tags_attr, wait_until,
};
use super::{AwsClients, SingleAttempt};
use crate::provider::schema::{AttrSchema, AttrType, Default, KindDef};
use crate::provider::{
    Live, OpContext, ProviderError, ReadRequest, ResourceKind, attr_bool, attr_str, attr_tags,
};
use crate::{Attrs, Value};

/// Schema of `aws.ec2.subnet`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.subnet",
    doc: "A subnet of a VPC in one availability zone.",
    attrs: &[
        AttrSchema::required("vpc_id", AttrType::String, "The VPC the subnet belongs to.").force_new(),
        AttrSchema::required(
            "cidr_block",
            AttrType::Cidr,
            "The subnet's IPv4 CIDR block, inside the VPC's.",
        )
        .force_new(),
        AttrSchema::required(
            "availability_zone",
            AttrType::String,
            "The availability zone, e.g. `${az[0]}`.",
        )
        .force_new(),
        AttrSchema::optional(
            "map_public_ip_on_launch",
            AttrType::Bool,
            "Whether instances launched in the subnet get a public IPv4 address.",
        )
        .default(Default::Bool(false)),
        AttrSchema::computed("arn", AttrType::String, "The subnet's ARN."),
        AttrSchema::computed(
            "availability_zone_id",
            AttrType::String,
            "The availability zone's id (e.g. `usw2-az1`).",
        ),
    ],
    taggable: true,
    normalize: None,
    preflight: None,
    identity: &[&["vpc_id", "cidr_block"]],
    hosts_objects: false,
};

/// How long a new subnet may stay `pending`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Operations of `aws.ec2.subnet`.
pub struct Subnet(pub Arc<AwsClients>);

/// The live view of a described subnet.
fn live(s: &aws_sdk_ec2::types::Subnet) -> Result<Live, ProviderError> {
    let id = s
        .subnet_id()
        .ok_or_else(|| ProviderError::unexpected("DescribeSubnets", "a subnet without an id"))?;
    let mut attrs = Attrs::new();
    attrs.insert("vpc_id".into(), Value::from(s.vpc_id().unwrap_or_default()));
    attrs.insert(
        "cidr_block".into(),
        Value::from(s.cidr_block().unwrap_or_default()),
    );
    attrs.insert(
        "availability_zone".into(),
        Value::from(s.availability_zone().unwrap_or_default()),
    );
    attrs.insert(
        "map_public_ip_on_launch".into(),
        Value::Bool(s.map_public_ip_on_launch().unwrap_or(false)),
    );
    attrs.insert("arn".into(), Value::from(s.subnet_arn().unwrap_or_default()));
    attrs.insert(
        "availability_zone_id".into(),
        Value::from(s.availability_zone_id().unwrap_or_default()),
    );
    attrs.insert("tags".into(), tags_attr(s.tags()));
    Ok(Live {
        id: id.to_string(),
        attrs,
    })
}

impl Subnet {
    /// Describes subnets by id: one filtered, paginated call per
    /// [`MAX_FILTER_VALUES`] ids. Subnets that do not exist are left out.
    async fn describe(&self, ids: &[String]) -> Result<Vec<aws_sdk_ec2::types::Subnet>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let subnets = self
                .0
                .ec2
                .describe_subnets()
                .filters(filter("subnet-id", chunk))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| ProviderError::aws("DescribeSubnets", e))?;
            out.extend(subnets);
        }
        Ok(out)
    }

    /// Reads one subnet; `None` when it does not exist.
    async fn read_one(&self, id: &str) -> Result<Option<Live>, ProviderError> {
        self.describe(&[id.to_string()])
            .await?
            .iter()
            .find(|s| s.subnet_id() == Some(id))
            .map(live)
            .transpose()
    }

    /// `Some(())` once the subnet is `available`.
    async fn poll_available(&self, id: &str) -> Result<Option<()>, ProviderError> {
        let subnets = self.describe(&[id.to_string()]).await?;
        Ok(subnets
            .iter()
            .any(|s| s.state() == Some(&SubnetState::Available))
            .then_some(()))
    }

    async fn set_map_public_ip(&self, id: &str, value: bool) -> Result<(), ProviderError> {
        self.0
            .ec2
            .modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(value).build())
            .send()
            .await
            .map_err(|e| ProviderError::aws("ModifySubnetAttribute", e))?;
        Ok(())
    }
}

#[async_trait]
impl ResourceKind for Subnet {
    fn def(&self) -> &'static KindDef {
        &DEF
    }

    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let tags = attr_tags(desired);
        let mut call = self
            .0
            .ec2
            .create_subnet()
            .vpc_id(attr_str(desired, "vpc_id")?)
            .cidr_block(attr_str(desired, "cidr_block")?)
            .availability_zone(attr_str(desired, "availability_zone")?);
        if !tags.is_empty() {
            call = call.tag_specifications(tag_spec(ResourceType::Subnet, &tags));
        }
        let out = call
            .customize()
            .config_override(SingleAttempt)
            .send()
            .await
            .map_err(|e| ProviderError::aws("CreateSubnet", e))?;
        let id = out
            .subnet()
            .and_then(|s| s.subnet_id())
            .ok_or_else(|| ProviderError::unexpected("CreateSubnet", "no subnet id in the response"))?
            .to_string();
        wait_until(
            &format!("subnet {id} to become available"),
            CREATE_TIMEOUT,
            || self.poll_available(&id),
        )
        .await?;
        // A new subnet does not map public IPs on launch.
        if attr_bool(desired, "map_public_ip_on_launch") {
            self.set_map_public_ip(&id, true).await?;
        }
        self.read_one(&id).await?.ok_or_else(|| {
            ProviderError::unexpected(
                "DescribeSubnets",
                format!("subnet {id} vanished after its creation"),
            )
        })
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
            .map(|s| live(s).map(|l| (l.id.clone(), l)))
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
        if changed.iter().any(|c| c == "map_public_ip_on_launch") {
            self.set_map_public_ip(id, attr_bool(desired, "map_public_ip_on_launch"))
                .await?;
        }
        if changed.iter().any(|c| c == "tags") {
            sync_tags(&self.0.ec2, id, &attr_tags(&prior.attrs), &attr_tags(desired)).await?;
        }
        self.read_one(id).await?.ok_or_else(|| {
            ProviderError::unexpected(
                "DescribeSubnets",
                format!("subnet {id} vanished during its update"),
            )
        })
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        match self.0.ec2.delete_subnet().subnet_id(&prior.id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = ProviderError::aws("DeleteSubnet", e);
                if is_not_found(&e) { Ok(()) } else { Err(e) }
            }
        }
    }

    async fn find_existing(&self, cx: &OpContext, _desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let subnets: Vec<_> = self
            .0
            .ec2
            .describe_subnets()
            .set_filters(Some(ownership_filters(&cx.stack, &cx.address)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| ProviderError::aws("DescribeSubnets", e))?;
        let owned = subnets
            .iter()
            .filter(|s| owned_by(s.tags(), &cx.stack, &cx.address));
        let Some(subnet) = first_owned(owned, cx, "subnets", |s| s.subnet_id()) else {
            return Ok(None);
        };
        live(subnet).map(Some)
    }
}

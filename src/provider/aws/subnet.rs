//! `aws.ec2.subnet`: a subnet of a VPC in one availability zone.
//!
//! Subnets are listed with a `subnet-id` filter rather than `SubnetIds`,
//! which fails the whole call when one id no longer exists.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, SubnetState};

use super::toolkit::ec2::{
    Ec2Kind, Recorded, created_id, ec2_described, tagged, tags_attr, visible, wait_state,
};
use super::toolkit::prelude::*;

/// Schema of `aws.ec2.subnet`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.subnet",
    doc: "A subnet of a VPC in one availability zone.",
    attrs: attrs! {
        /// The VPC the subnet belongs to.
        required vpc_id: String, force_new;
        /// The subnet's IPv4 CIDR block, inside the VPC's.
        required cidr_block: Cidr, force_new;
        /// The availability zone, e.g. `${az[0]}`.
        required availability_zone: String, force_new;
        /// Whether instances launched in the subnet get a public IPv4 address.
        optional map_public_ip_on_launch: Bool = Bool(false);
        /// The subnet's ARN.
        computed arn: String;
        /// The availability zone's id (e.g. `usw2-az1`).
        computed availability_zone_id: String;
    },
    taggable: true,
    identity: &[&["vpc_id", "cidr_block"]],
    ..KindDef::BASE
};

/// How long a new subnet may stay `pending`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Operations of `aws.ec2.subnet`.
pub struct Subnet(pub Arc<AwsClients>);

ec2_described! {
    Subnet: aws_sdk_ec2::types::Subnet, id subnet_id, filter "subnet-id", noun "subnets",
    describe describe_subnets "DescribeSubnets", delete delete_subnet(subnet_id) "DeleteSubnet"
}

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
    async fn set_map_public_ip(&self, id: &str, value: bool) -> Result<(), ProviderError> {
        send!(
            self.0
                .ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(value).build()),
            "ModifySubnetAttribute"
        )?;
        Ok(())
    }
}

#[async_trait]
impl Ec2Kind for Subnet {
    fn live(&self, s: &Self::Item, _recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        live(s).map(Some)
    }

    async fn make(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let call = self
            .0
            .ec2
            .create_subnet()
            .vpc_id(attr_str(desired, "vpc_id")?)
            .cidr_block(attr_str(desired, "cidr_block")?)
            .availability_zone(attr_str(desired, "availability_zone")?)
            .set_tag_specifications(tagged(ResourceType::Subnet, desired));
        let out = send_once!(call, "CreateSubnet")?;
        let id = created_id(out.subnet().and_then(|s| s.subnet_id()), "CreateSubnet")?;
        wait_state(self, &id, "become available", CREATE_TIMEOUT, |s| {
            s.state() == Some(&SubnetState::Available)
        })
        .await?;
        // A new subnet does not map public IPs on launch.
        if attr_bool(desired, "map_public_ip_on_launch") {
            self.set_map_public_ip(&id, true).await?;
        }
        visible(self, &id, &Recorded::new(), |_| true).await
    }

    async fn change(&self, change: InPlace<'_>) -> Result<(), ProviderError> {
        if change.has("map_public_ip_on_launch") {
            let on = attr_bool(change.desired, "map_public_ip_on_launch");
            self.set_map_public_ip(&change.prior.id, on).await?;
        }
        Ok(())
    }
}

//! `aws.ec2.vpc`: a virtual private cloud and its two DNS attributes.
//!
//! DescribeVpcs does not report the DNS attributes, so a read also makes two
//! DescribeVpcAttribute calls per VPC (the API takes one VPC and one
//! attribute per call). The main route table and default security group are
//! looked up with one filtered describe each for all VPCs read together.
//! VPCs are listed with a `vpc-id` filter rather than `VpcIds`, which fails
//! the whole call when one id no longer exists.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName, VpcState};

use super::ec2_util::{
    MAX_FILTER_VALUES, filter, first_owned, is_not_found, owned_by, ownership_filters, sync_tags, tag_spec,
    tags_attr, wait_until,
};
use super::shared_reads::RouteTableReads;
use super::{AwsClients, SingleAttempt};
use crate::provider::schema::{AttrSchema, AttrType, Default, KindDef};
use crate::provider::{
    Live, OpContext, ProviderError, ReadRequest, ReadSession, ResourceKind, attr_opt_str, attr_str, attr_tags,
};
use crate::{Attrs, Value};

/// Schema of `aws.ec2.vpc`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.vpc",
    doc: "A virtual private cloud (VPC).",
    attrs: &[
        AttrSchema::required("cidr_block", AttrType::Cidr, "The VPC's IPv4 CIDR block.").force_new(),
        AttrSchema::optional(
            "enable_dns_support",
            AttrType::Bool,
            "Whether the Amazon-provided DNS server resolves names in the VPC.",
        )
        .default(Default::Bool(true)),
        AttrSchema::optional(
            "enable_dns_hostnames",
            AttrType::Bool,
            "Whether instances with public IP addresses get public DNS hostnames.",
        )
        .default(Default::Bool(false)),
        AttrSchema::computed("owner_id", AttrType::String, "The account that owns the VPC."),
        AttrSchema::computed(
            "main_route_table_id",
            AttrType::String,
            "The VPC's main route table.",
        ),
        AttrSchema::computed(
            "default_security_group_id",
            AttrType::String,
            "The VPC's default security group.",
        ),
    ],
    taggable: true,
    normalize: None,
    preflight: None,
    identity: &[],
    hosts_objects: false,
};

/// How long a new VPC may stay `pending`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Operations of `aws.ec2.vpc`.
pub struct Vpc(pub Arc<AwsClients>);

/// A boolean attribute, `default` when absent.
fn bool_or(attrs: &Attrs, name: &str, default: bool) -> bool {
    attrs.get(name).and_then(Value::as_bool).unwrap_or(default)
}

/// What a read already knows about VPCs, by VPC id.
struct Known {
    main_route_tables: HashMap<String, String>,
    default_groups: HashMap<String, String>,
}

impl Known {
    /// Nothing known: everything is described.
    fn none() -> Known {
        Known {
            main_route_tables: HashMap::new(),
            default_groups: HashMap::new(),
        }
    }
}

impl Vpc {
    /// Describes VPCs by id: one filtered, paginated call per
    /// [`MAX_FILTER_VALUES`] ids. VPCs that do not exist are left out.
    async fn describe(&self, ids: &[String]) -> Result<Vec<aws_sdk_ec2::types::Vpc>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let vpcs = self
                .0
                .ec2
                .describe_vpcs()
                .filters(filter("vpc-id", chunk))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| ProviderError::aws("DescribeVpcs", e))?;
            out.extend(vpcs);
        }
        Ok(out)
    }

    /// Main route table id by VPC id, for the given VPCs.
    async fn main_route_tables(&self, vpc_ids: &[String]) -> Result<HashMap<String, String>, ProviderError> {
        let mut out = HashMap::new();
        for chunk in vpc_ids.chunks(MAX_FILTER_VALUES) {
            let tables = self
                .0
                .ec2
                .describe_route_tables()
                .filters(filter("vpc-id", chunk))
                .filters(filter("association.main", ["true"]))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| ProviderError::aws("DescribeRouteTables", e))?;
            for t in tables {
                if let (Some(vpc), Some(id)) = (t.vpc_id(), t.route_table_id()) {
                    out.insert(vpc.to_string(), id.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Default security group id by VPC id, for the given VPCs.
    async fn default_security_groups(
        &self,
        vpc_ids: &[String],
    ) -> Result<HashMap<String, String>, ProviderError> {
        let mut out = HashMap::new();
        for chunk in vpc_ids.chunks(MAX_FILTER_VALUES) {
            let groups = self
                .0
                .ec2
                .describe_security_groups()
                .filters(filter("vpc-id", chunk))
                .filters(filter("group-name", ["default"]))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| ProviderError::aws("DescribeSecurityGroups", e))?;
            for g in groups {
                if let (Some(vpc), Some(id)) = (g.vpc_id(), g.group_id()) {
                    out.insert(vpc.to_string(), id.to_string());
                }
            }
        }
        Ok(out)
    }

    /// One DNS attribute of a VPC; `None` when the VPC no longer exists.
    async fn dns_attr(&self, vpc_id: &str, name: VpcAttributeName) -> Result<Option<bool>, ProviderError> {
        let out = match self
            .0
            .ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(name.clone())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = ProviderError::aws("DescribeVpcAttribute", e);
                return if is_not_found(&e) { Ok(None) } else { Err(e) };
            }
        };
        let value = match name {
            VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
            _ => out.enable_dns_hostnames(),
        };
        value
            .and_then(AttributeBooleanValue::value)
            .map(Some)
            .ok_or_else(|| {
                ProviderError::unexpected(
                    "DescribeVpcAttribute",
                    format!("no {} value for {vpc_id}", name.as_str()),
                )
            })
    }

    /// Sets one DNS attribute (the API takes one attribute per call).
    async fn set_dns_attr(
        &self,
        vpc_id: &str,
        name: VpcAttributeName,
        value: bool,
    ) -> Result<(), ProviderError> {
        let v = AttributeBooleanValue::builder().value(value).build();
        let call = self.0.ec2.modify_vpc_attribute().vpc_id(vpc_id);
        let call = match name {
            VpcAttributeName::EnableDnsSupport => call.enable_dns_support(v),
            _ => call.enable_dns_hostnames(v),
        };
        call.send()
            .await
            .map_err(|e| ProviderError::aws("ModifyVpcAttribute", e))?;
        Ok(())
    }

    /// Builds the live view of described VPCs, by VPC id. A VPC that vanishes
    /// between the calls is left out.
    ///
    /// `known` holds what a refresh already has: main route tables found in
    /// the shared route table describe, and default security groups state
    /// recorded (a VPC's default group is made with it and cannot be
    /// deleted, so its id never changes). Only the rest is described.
    async fn lives(
        &self,
        vpcs: Vec<aws_sdk_ec2::types::Vpc>,
        known: Known,
    ) -> Result<HashMap<String, Live>, ProviderError> {
        let ids: Vec<String> = vpcs
            .iter()
            .filter_map(|v| v.vpc_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let Known {
            main_route_tables,
            default_groups,
        } = known;
        let rt_ids: Vec<String> = ids
            .iter()
            .filter(|id| !main_route_tables.contains_key(*id))
            .cloned()
            .collect();
        let sg_ids: Vec<String> = ids
            .iter()
            .filter(|id| !default_groups.contains_key(*id))
            .cloned()
            .collect();
        let (mut route_tables, mut groups) = tokio::try_join!(
            async {
                if rt_ids.is_empty() {
                    Ok(HashMap::new())
                } else {
                    self.main_route_tables(&rt_ids).await
                }
            },
            async {
                if sg_ids.is_empty() {
                    Ok(HashMap::new())
                } else {
                    self.default_security_groups(&sg_ids).await
                }
            }
        )?;
        route_tables.extend(main_route_tables);
        groups.extend(default_groups);
        let mut out = HashMap::new();
        for vpc in vpcs {
            let id = vpc
                .vpc_id()
                .ok_or_else(|| ProviderError::unexpected("DescribeVpcs", "a VPC without an id"))?;
            let (support, hostnames) = tokio::try_join!(
                self.dns_attr(id, VpcAttributeName::EnableDnsSupport),
                self.dns_attr(id, VpcAttributeName::EnableDnsHostnames),
            )?;
            let (Some(support), Some(hostnames)) = (support, hostnames) else {
                continue;
            };
            let mut attrs = Attrs::new();
            attrs.insert(
                "cidr_block".into(),
                Value::from(vpc.cidr_block().unwrap_or_default()),
            );
            attrs.insert("enable_dns_support".into(), Value::Bool(support));
            attrs.insert("enable_dns_hostnames".into(), Value::Bool(hostnames));
            attrs.insert("owner_id".into(), Value::from(vpc.owner_id().unwrap_or_default()));
            if let Some(rt) = route_tables.get(id) {
                attrs.insert("main_route_table_id".into(), Value::from(rt.as_str()));
            }
            if let Some(sg) = groups.get(id) {
                attrs.insert("default_security_group_id".into(), Value::from(sg.as_str()));
            }
            attrs.insert("tags".into(), tags_attr(vpc.tags()));
            out.insert(
                id.to_string(),
                Live {
                    id: id.to_string(),
                    attrs,
                },
            );
        }
        Ok(out)
    }

    /// Reads one VPC; `None` when it does not exist.
    async fn read_one(&self, id: &str) -> Result<Option<Live>, ProviderError> {
        let vpcs = self.describe(&[id.to_string()]).await?;
        Ok(self.lives(vpcs, Known::none()).await?.remove(id))
    }

    /// `Some(())` once the VPC is `available`.
    async fn poll_available(&self, id: &str) -> Result<Option<()>, ProviderError> {
        let vpcs = self.describe(&[id.to_string()]).await?;
        Ok(vpcs
            .iter()
            .any(|v| v.state() == Some(&VpcState::Available))
            .then_some(()))
    }
}

#[async_trait]
impl ResourceKind for Vpc {
    fn def(&self) -> &'static KindDef {
        &DEF
    }

    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let tags = attr_tags(desired);
        let mut call = self
            .0
            .ec2
            .create_vpc()
            .cidr_block(attr_str(desired, "cidr_block")?);
        if !tags.is_empty() {
            call = call.tag_specifications(tag_spec(ResourceType::Vpc, &tags));
        }
        let out = call
            .customize()
            .config_override(SingleAttempt)
            .send()
            .await
            .map_err(|e| ProviderError::aws("CreateVpc", e))?;
        let id = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| ProviderError::unexpected("CreateVpc", "no VPC id in the response"))?
            .to_string();
        wait_until(&format!("VPC {id} to become available"), CREATE_TIMEOUT, || {
            self.poll_available(&id)
        })
        .await?;
        // A new VPC has DNS support on and DNS hostnames off.
        if !bool_or(desired, "enable_dns_support", true) {
            self.set_dns_attr(&id, VpcAttributeName::EnableDnsSupport, false)
                .await?;
        }
        if bool_or(desired, "enable_dns_hostnames", false) {
            self.set_dns_attr(&id, VpcAttributeName::EnableDnsHostnames, true)
                .await?;
        }
        self.read_one(&id).await?.ok_or_else(|| {
            ProviderError::unexpected("DescribeVpcs", format!("VPC {id} vanished after its creation"))
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
        let lives = self.lives(self.describe(&ids).await?, Known::none()).await?;
        Ok(requests.iter().map(|r| lives.get(&r.id).cloned()).collect())
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        session
            .shared::<RouteTableReads>()
            .want_vpcs(requests.iter().map(|r| r.id.as_str()));
    }

    async fn read_in(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let ids: Vec<String> = requests
            .iter()
            .map(|r| r.id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tables = session.shared::<RouteTableReads>();
        let mut known = Known::none();
        for id in ids.iter().filter(|id| tables.covers_vpc(id)) {
            let main = tables
                .of_vpc(&self.0.ec2, id)
                .await?
                .into_iter()
                .find(|t| t.associations().iter().any(|a| a.main() == Some(true)));
            if let Some(rt) = main.as_ref().and_then(|t| t.route_table_id()) {
                known.main_route_tables.insert(id.clone(), rt.to_string());
            }
        }
        for r in requests {
            if let Some(sg) = attr_opt_str(&r.attrs, "default_security_group_id").filter(|s| !s.is_empty()) {
                known.default_groups.insert(r.id.clone(), sg.to_string());
            }
        }
        let lives = self.lives(self.describe(&ids).await?, known).await?;
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
        let has = |name: &str| changed.iter().any(|c| c == name);
        // DNS hostnames need DNS support: turn support on before and off
        // after changing hostnames.
        let support = bool_or(desired, "enable_dns_support", true);
        if has("enable_dns_support") && support {
            self.set_dns_attr(id, VpcAttributeName::EnableDnsSupport, true)
                .await?;
        }
        if has("enable_dns_hostnames") {
            let hostnames = bool_or(desired, "enable_dns_hostnames", false);
            self.set_dns_attr(id, VpcAttributeName::EnableDnsHostnames, hostnames)
                .await?;
        }
        if has("enable_dns_support") && !support {
            self.set_dns_attr(id, VpcAttributeName::EnableDnsSupport, false)
                .await?;
        }
        if has("tags") {
            sync_tags(&self.0.ec2, id, &attr_tags(&prior.attrs), &attr_tags(desired)).await?;
        }
        self.read_one(id).await?.ok_or_else(|| {
            ProviderError::unexpected("DescribeVpcs", format!("VPC {id} vanished during its update"))
        })
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        match self.0.ec2.delete_vpc().vpc_id(&prior.id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = ProviderError::aws("DeleteVpc", e);
                if is_not_found(&e) { Ok(()) } else { Err(e) }
            }
        }
    }

    async fn find_existing(&self, cx: &OpContext, _desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let vpcs: Vec<_> = self
            .0
            .ec2
            .describe_vpcs()
            .set_filters(Some(ownership_filters(&cx.stack, &cx.address)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| ProviderError::aws("DescribeVpcs", e))?;
        let owned = vpcs
            .into_iter()
            .filter(|v| owned_by(v.tags(), &cx.stack, &cx.address));
        let Some(vpc) = first_owned(owned, cx, "VPCs", |v| v.vpc_id()) else {
            return Ok(None);
        };
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        Ok(self.lives(vec![vpc], Known::none()).await?.remove(&id))
    }
}

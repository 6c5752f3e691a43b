//! `aws.ec2.vpc`: a virtual private cloud and its two DNS attributes.
//!
//! DescribeVpcs does not report the DNS attributes, so a read also makes two
//! DescribeVpcAttribute calls per VPC (the API takes one VPC and one
//! attribute per call). The main route table and default security group are
//! looked up with one filtered describe each for all VPCs read together;
//! in a refresh, the main route table comes from the route tables the
//! route table kinds share, and the default security group (made with the
//! VPC, never deleted or replaced) from what state recorded.
//! VPCs are listed with a `vpc-id` filter rather than `VpcIds`, which fails
//! the whole call when one id no longer exists.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName, VpcState};

use super::toolkit::distinct;
use super::toolkit::ec2::{
    Ec2Kind, Recorded, created_id, describe_ids, ec2_described, filter, filters_in_chunks, tagged, tags_attr,
    visible, wait_state,
};
use super::toolkit::errors::{Service, unless_gone};
use super::toolkit::prelude::*;
use super::toolkit::shared_reads::RouteTableReads;

/// Schema of `aws.ec2.vpc`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.vpc",
    doc: "A virtual private cloud (VPC).",
    attrs: attrs! {
        /// The VPC's IPv4 CIDR block.
        required cidr_block: Cidr, force_new;
        /// Whether the Amazon-provided DNS server resolves names in the VPC.
        optional enable_dns_support: Bool = Bool(true);
        /// Whether instances with public IP addresses get public DNS hostnames.
        optional enable_dns_hostnames: Bool = Bool(false);
        /// The account that owns the VPC.
        computed owner_id: String;
        /// The VPC's main route table.
        computed main_route_table_id: String;
        /// The VPC's default security group.
        computed default_security_group_id: String;
    },
    taggable: true,
    ..KindDef::BASE
};

/// How long a new VPC may stay `pending`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Operations of `aws.ec2.vpc`.
pub struct Vpc(pub Arc<AwsClients>);

ec2_described! {
    Vpc: aws_sdk_ec2::types::Vpc, id vpc_id, filter "vpc-id", noun "VPCs",
    describe describe_vpcs "DescribeVpcs", delete delete_vpc(vpc_id) "DeleteVpc"
}

/// A boolean attribute, `default` when absent.
fn bool_or(attrs: &Attrs, name: &str, default: bool) -> bool {
    attrs.get(name).and_then(Value::as_bool).unwrap_or(default)
}

impl Vpc {
    /// The id of one object per VPC among `vpc_ids` that `describe` finds
    /// with the extra `filter`, by VPC id (a main route table, a default
    /// security group).
    async fn per_vpc<T, F, Fut>(
        vpc_ids: &[String],
        extra: aws_sdk_ec2::types::Filter,
        describe: F,
        ids: fn(&T) -> (Option<&str>, Option<&str>),
    ) -> Result<HashMap<String, String>, ProviderError>
    where
        F: Fn(Vec<aws_sdk_ec2::types::Filter>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, ProviderError>>,
    {
        let mut out = HashMap::new();
        for f in filters_in_chunks("vpc-id", vpc_ids) {
            for item in describe(vec![f, extra.clone()]).await? {
                if let (Some(vpc), Some(id)) = ids(&item) {
                    out.insert(vpc.to_string(), id.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Main route table id by VPC id, for the given VPCs.
    async fn main_route_tables(&self, vpc_ids: &[String]) -> Result<HashMap<String, String>, ProviderError> {
        let describe = |filters| {
            let call = self.0.ec2.describe_route_tables().set_filters(Some(filters));
            async move { all_pages!(call, "DescribeRouteTables") }
        };
        let main = filter("association.main", ["true"]);
        Self::per_vpc(vpc_ids, main, describe, |t: &aws_sdk_ec2::types::RouteTable| {
            (t.vpc_id(), t.route_table_id())
        })
        .await
    }

    /// Default security group id by VPC id, for the given VPCs.
    async fn default_security_groups(
        &self,
        vpc_ids: &[String],
    ) -> Result<HashMap<String, String>, ProviderError> {
        let describe = |filters| {
            let call = self.0.ec2.describe_security_groups().set_filters(Some(filters));
            async move { all_pages!(call, "DescribeSecurityGroups") }
        };
        let default = filter("group-name", ["default"]);
        Self::per_vpc(
            vpc_ids,
            default,
            describe,
            |g: &aws_sdk_ec2::types::SecurityGroup| (g.vpc_id(), g.group_id()),
        )
        .await
    }

    /// One DNS attribute of a VPC; `None` when the VPC no longer exists.
    async fn dns_attr(&self, vpc_id: &str, name: VpcAttributeName) -> Result<Option<bool>, ProviderError> {
        let out = send!(
            self.0
                .ec2
                .describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(name.clone()),
            "DescribeVpcAttribute"
        );
        let Some(out) = unless_gone(Service::Ec2, out)? else {
            return Ok(None);
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
}

impl Vpc {
    /// The live views of described VPCs. DescribeVpcs does not report the
    /// DNS attributes: two DescribeVpcAttribute calls per VPC. The main
    /// route tables not in `main_route_tables` (by VPC id) and the default
    /// security groups `recorded` does not name take one describe each for
    /// all VPCs. A VPC that vanishes between the calls is left out.
    async fn lives_knowing(
        &self,
        vpcs: Vec<aws_sdk_ec2::types::Vpc>,
        recorded: &Recorded,
        main_route_tables: HashMap<String, String>,
    ) -> Result<Vec<Live>, ProviderError> {
        let ids: Vec<String> = vpcs
            .iter()
            .filter_map(|v| v.vpc_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Default groups state recorded; what is not known is described.
        let mut groups: HashMap<String, String> = recorded
            .iter()
            .filter_map(|(id, attrs)| {
                let sg = attr_opt_str(attrs, "default_security_group_id").filter(|s| !s.is_empty())?;
                Some((id.clone(), sg.to_string()))
            })
            .collect();
        let mut route_tables = main_route_tables;
        let rt_ids: Vec<String> = ids
            .iter()
            .filter(|id| !route_tables.contains_key(*id))
            .cloned()
            .collect();
        let sg_ids: Vec<String> = ids
            .iter()
            .filter(|id| !groups.contains_key(*id))
            .cloned()
            .collect();
        let (more_tables, more_groups) = tokio::try_join!(
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
        route_tables.extend(more_tables);
        groups.extend(more_groups);
        let mut out = Vec::new();
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
            out.push(Live {
                id: id.to_string(),
                attrs,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl Ec2Kind for Vpc {
    async fn lives(&self, vpcs: Vec<Self::Item>, recorded: &Recorded) -> Result<Vec<Live>, ProviderError> {
        self.lives_knowing(vpcs, recorded, HashMap::new()).await
    }

    /// The route table kinds describe every table of these VPCs: the main
    /// tables come from that one answer.
    fn announce_shared(&self, session: &ReadSession, requests: &[ReadRequest]) {
        session
            .shared::<RouteTableReads>()
            .want_vpcs(requests.iter().map(|r| r.id.as_str()));
    }

    async fn read_shared(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let ids = distinct(requests.iter().map(|r| r.id.clone()));
        let main_route_tables = session
            .shared::<RouteTableReads>()
            .main_tables(&self.0.ec2)
            .await?;
        let recorded: Recorded = requests.iter().map(|r| (r.id.clone(), r.attrs.clone())).collect();
        let vpcs = describe_ids(self, &ids).await?;
        let lives: HashMap<String, Live> = self
            .lives_knowing(vpcs, &recorded, main_route_tables)
            .await?
            .into_iter()
            .map(|l| (l.id.clone(), l))
            .collect();
        Ok(requests.iter().map(|r| lives.get(&r.id).cloned()).collect())
    }

    async fn make(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let call = self
            .0
            .ec2
            .create_vpc()
            .cidr_block(attr_str(desired, "cidr_block")?)
            .set_tag_specifications(tagged(ResourceType::Vpc, desired));
        let out = send_once!(call, "CreateVpc")?;
        let id = created_id(out.vpc().and_then(|v| v.vpc_id()), "CreateVpc")?;
        wait_state(self, &id, "become available", CREATE_TIMEOUT, |v| {
            v.state() == Some(&VpcState::Available)
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
        visible(self, &id, &Recorded::new(), |_| true).await
    }

    async fn change(&self, change: InPlace<'_>) -> Result<(), ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let id = prior.id.as_str();
        // DNS hostnames need DNS support: turn support on before and off
        // after changing hostnames.
        let support = bool_or(desired, "enable_dns_support", true);
        if change.has("enable_dns_support") && support {
            self.set_dns_attr(id, VpcAttributeName::EnableDnsSupport, true)
                .await?;
        }
        if change.has("enable_dns_hostnames") {
            let hostnames = bool_or(desired, "enable_dns_hostnames", false);
            self.set_dns_attr(id, VpcAttributeName::EnableDnsHostnames, hostnames)
                .await?;
        }
        if change.has("enable_dns_support") && !support {
            self.set_dns_attr(id, VpcAttributeName::EnableDnsSupport, false)
                .await?;
        }
        Ok(())
    }
}

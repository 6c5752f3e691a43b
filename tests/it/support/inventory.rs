//! Reads the baseline's resources back from the emulator through the SDK,
//! independently of meshform's state file.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use super::moto::Moto;

/// The baseline stack's name (`stacks/baseline.toml`).
pub const STACK: &str = "appmesh-getting-started-eks";
/// The full walkthrough stack's name (`stacks/appmesh-getting-started.toml`).
pub const FULL_STACK: &str = "appmesh-getting-started";

fn f(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_string))
}

/// What the emulator holds that carries the stack's ownership tag, plus
/// the untagged things (routes, associations) under its route tables.
#[derive(Debug, Default)]
pub struct Inventory {
    pub vpcs: Vec<aws_sdk_ec2::types::Vpc>,
    pub subnets: Vec<aws_sdk_ec2::types::Subnet>,
    pub internet_gateways: Vec<aws_sdk_ec2::types::InternetGateway>,
    pub addresses: Vec<aws_sdk_ec2::types::Address>,
    /// NAT gateways not deleted or deleting.
    pub nat_gateways: Vec<aws_sdk_ec2::types::NatGateway>,
    pub route_tables: Vec<aws_sdk_ec2::types::RouteTable>,
    /// Local (customer managed) IAM policies named as in the stack.
    pub policies: Vec<aws_sdk_iam::types::Policy>,
    pub repositories: Vec<aws_sdk_ecr::types::Repository>,
}

impl Inventory {
    /// Reads what the baseline stack owns.
    pub async fn read(moto: &Moto) -> Inventory {
        Self::read_stack(moto, STACK).await
    }

    /// Reads what carries the ownership tag of `stack`.
    pub async fn read_stack(moto: &Moto, stack: &str) -> Inventory {
        let ec2 = moto.ec2().await;
        let owned = f("tag:meshform:stack", stack);
        let vpcs = ec2
            .describe_vpcs()
            .filters(owned.clone())
            .send()
            .await
            .unwrap()
            .vpcs()
            .to_vec();
        let subnets = ec2
            .describe_subnets()
            .filters(owned.clone())
            .send()
            .await
            .unwrap()
            .subnets()
            .to_vec();
        let internet_gateways = ec2
            .describe_internet_gateways()
            .filters(owned.clone())
            .send()
            .await
            .unwrap()
            .internet_gateways()
            .to_vec();
        // Every address, tagged or not: an EIP leaked without tags counts too.
        let addresses = ec2
            .describe_addresses()
            .send()
            .await
            .unwrap()
            .addresses()
            .to_vec();
        // moto ignores tag filters on NAT gateways: list all, keep live ones.
        let nat_gateways = ec2
            .describe_nat_gateways()
            .send()
            .await
            .unwrap()
            .nat_gateways()
            .iter()
            .filter(|n| {
                !matches!(
                    n.state(),
                    Some(
                        aws_sdk_ec2::types::NatGatewayState::Deleted
                            | aws_sdk_ec2::types::NatGatewayState::Deleting
                    )
                )
            })
            .cloned()
            .collect();
        let route_tables = ec2
            .describe_route_tables()
            .filters(owned)
            .send()
            .await
            .unwrap()
            .route_tables()
            .to_vec();
        let iam = moto.iam().await;
        let policies = iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .send()
            .await
            .unwrap()
            .policies()
            .iter()
            .filter(|p| p.policy_name() == Some("NodesSDPolicy"))
            .cloned()
            .collect();
        let ecr = moto.ecr().await;
        let repositories = ecr
            .describe_repositories()
            .send()
            .await
            .unwrap()
            .repositories()
            .iter()
            .filter(|r| r.repository_name() == Some("yelb-appserver-v2"))
            .cloned()
            .collect();
        Inventory {
            vpcs,
            subnets,
            internet_gateways,
            addresses,
            nat_gateways,
            route_tables,
            policies,
            repositories,
        }
    }

    /// Subnet ids by CIDR block.
    pub fn subnet_ids(&self) -> BTreeMap<String, String> {
        self.subnets
            .iter()
            .map(|s| {
                (
                    s.cidr_block().unwrap().to_string(),
                    s.subnet_id().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The route table with the given `meshform:address` tag.
    pub fn route_table(&self, address: &str) -> &aws_sdk_ec2::types::RouteTable {
        let matching: Vec<_> = self
            .route_tables
            .iter()
            .filter(|t| tag(t.tags(), "meshform:address").as_deref() == Some(address))
            .collect();
        assert_eq!(matching.len(), 1, "route tables tagged {address}: {matching:?}");
        matching[0]
    }

    /// Asserts the whole inventory of section 1 exists exactly once, with
    /// its properties.
    pub async fn assert_baseline(&self, moto: &Moto) {
        let ec2 = moto.ec2().await;
        assert_eq!(self.vpcs.len(), 1, "VPCs: {:?}", self.vpcs);
        let vpc = &self.vpcs[0];
        let vpc_id = vpc.vpc_id().unwrap();
        assert_eq!(vpc.cidr_block(), Some("10.192.0.0/16"));
        assert_eq!(
            tag(vpc.tags(), "Name").as_deref(),
            Some("AppMeshServiceDiscovery")
        );
        for (attr, what) in [
            (
                aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
                "dns support",
            ),
            (
                aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
                "dns hostnames",
            ),
        ] {
            let out = ec2
                .describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(attr.clone())
                .send()
                .await
                .unwrap();
            let on = match attr {
                aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
                _ => out.enable_dns_hostnames(),
            }
            .and_then(|v| v.value());
            assert_eq!(on, Some(true), "{what}");
        }

        let mut azs: Vec<String> = ec2
            .describe_availability_zones()
            .send()
            .await
            .unwrap()
            .availability_zones()
            .iter()
            .map(|z| z.zone_name().unwrap().to_string())
            .collect();
        azs.sort();
        assert_eq!(self.subnets.len(), 4, "subnets: {:?}", self.subnets);
        let expected = [
            ("10.192.10.0/24", &azs[0], true),
            ("10.192.11.0/24", &azs[1], true),
            ("10.192.20.0/24", &azs[0], false),
            ("10.192.21.0/24", &azs[1], false),
        ];
        for (cidr, az, public) in expected {
            let s = self
                .subnets
                .iter()
                .find(|s| s.cidr_block() == Some(cidr))
                .unwrap_or_else(|| panic!("no {cidr}"));
            assert_eq!(s.vpc_id(), Some(vpc_id), "{cidr} vpc");
            assert_eq!(s.availability_zone(), Some(az.as_str()), "{cidr} AZ");
            assert_eq!(
                s.map_public_ip_on_launch(),
                Some(public),
                "{cidr} public IP mapping"
            );
        }
        let ids = self.subnet_ids();
        let (pub1, pub2, priv1, priv2) = (
            &ids["10.192.10.0/24"],
            &ids["10.192.11.0/24"],
            &ids["10.192.20.0/24"],
            &ids["10.192.21.0/24"],
        );

        assert_eq!(self.internet_gateways.len(), 1);
        let igw = &self.internet_gateways[0];
        let igw_id = igw.internet_gateway_id().unwrap();
        assert_eq!(igw.attachments().len(), 1);
        assert_eq!(igw.attachments()[0].vpc_id(), Some(vpc_id));

        assert_eq!(self.addresses.len(), 2, "EIPs: {:?}", self.addresses);
        assert!(
            self.addresses
                .iter()
                .all(|a| a.domain() == Some(&aws_sdk_ec2::types::DomainType::Vpc))
        );
        assert_eq!(
            self.nat_gateways.len(),
            2,
            "NAT gateways: {:?}",
            self.nat_gateways
        );
        let nat_in = |subnet: &str| {
            let nats: Vec<_> = self
                .nat_gateways
                .iter()
                .filter(|n| n.subnet_id() == Some(subnet))
                .collect();
            assert_eq!(nats.len(), 1, "NAT gateways in {subnet}");
            assert_eq!(
                nats[0].state(),
                Some(&aws_sdk_ec2::types::NatGatewayState::Available)
            );
            nats[0]
        };
        let (nat1, nat2) = (nat_in(pub1), nat_in(pub2));
        let alloc = |n: &aws_sdk_ec2::types::NatGateway| {
            n.nat_gateway_addresses()[0].allocation_id().unwrap().to_string()
        };
        assert_ne!(alloc(nat1), alloc(nat2), "each NAT gateway has its own EIP");
        for n in [nat1, nat2] {
            assert!(
                self.addresses
                    .iter()
                    .any(|a| a.allocation_id() == Some(alloc(n).as_str()))
            );
        }

        let routes_to = |t: &aws_sdk_ec2::types::RouteTable| -> Vec<(String, String)> {
            t.routes()
                .iter()
                .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
                .map(|r| {
                    let target = r.gateway_id().or(r.nat_gateway_id()).unwrap_or("").to_string();
                    (r.destination_cidr_block().unwrap().to_string(), target)
                })
                .collect()
        };
        let subnets_of = |t: &aws_sdk_ec2::types::RouteTable| -> Vec<String> {
            let mut s: Vec<String> = t
                .associations()
                .iter()
                .filter_map(|a| a.subnet_id().map(str::to_string))
                .collect();
            s.sort();
            s
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(self.route_tables.len(), 3);
        let public = self.route_table("public_route_table");
        assert_eq!(public.vpc_id(), Some(vpc_id));
        assert_eq!(
            routes_to(public),
            vec![("0.0.0.0/0".to_string(), igw_id.to_string())]
        );
        assert_eq!(subnets_of(public), sorted(vec![pub1.clone(), pub2.clone()]));
        let private1 = self.route_table("private_route_table_1");
        assert_eq!(
            routes_to(private1),
            vec![(
                "0.0.0.0/0".to_string(),
                nat1.nat_gateway_id().unwrap().to_string()
            )]
        );
        assert_eq!(subnets_of(private1), vec![priv1.clone()]);
        let private2 = self.route_table("private_route_table_2");
        assert_eq!(
            routes_to(private2),
            vec![(
                "0.0.0.0/0".to_string(),
                nat2.nat_gateway_id().unwrap().to_string()
            )]
        );
        assert_eq!(subnets_of(private2), vec![priv2.clone()]);

        assert_eq!(self.policies.len(), 1, "NodesSDPolicy policies");
        let iam = moto.iam().await;
        let p = &self.policies[0];
        let version = iam
            .get_policy_version()
            .policy_arn(p.arn().unwrap())
            .version_id(p.default_version_id().unwrap())
            .send()
            .await
            .unwrap();
        let doc = version.policy_version().unwrap().document().unwrap();
        let doc: serde_json::Value = serde_json::from_str(doc).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["servicediscovery:UpdateInstanceCustomHealthStatus"],
                    "Resource": "*"
                }]
            })
        );
        assert_eq!(self.repositories.len(), 1, "ECR repositories");
    }

    /// Nothing of the stack remains.
    pub fn assert_empty(&self) {
        assert!(self.vpcs.is_empty(), "VPCs left: {:?}", self.vpcs);
        assert!(self.subnets.is_empty(), "subnets left: {:?}", self.subnets);
        assert!(
            self.internet_gateways.is_empty(),
            "IGWs left: {:?}",
            self.internet_gateways
        );
        assert!(self.addresses.is_empty(), "EIPs left: {:?}", self.addresses);
        assert!(
            self.nat_gateways.is_empty(),
            "NAT gateways left: {:?}",
            self.nat_gateways
        );
        assert!(
            self.route_tables.is_empty(),
            "route tables left: {:?}",
            self.route_tables
        );
        assert!(self.policies.is_empty(), "policies left: {:?}", self.policies);
        assert!(
            self.repositories.is_empty(),
            "repositories left: {:?}",
            self.repositories
        );
    }
}

/// The EKS cluster and node group of the walkthrough stack.
pub const WALKTHROUGH_CLUSTER: &str = "appmesh-getting-started-eks";

/// What the walkthrough stack makes beyond the baseline's network, read
/// back from moto: EKS clusters and their node groups, IAM roles and local
/// policies named for the walkthrough (the baseline's `NodesSDPolicy` and
/// the external-dns policy), and the ECR repository.
#[derive(Debug)]
pub struct WalkthroughExtras {
    pub clusters: Vec<String>,
    pub node_groups: Vec<String>,
    pub roles: Vec<String>,
    pub policies: Vec<String>,
    pub repositories: Vec<String>,
}

impl WalkthroughExtras {
    pub async fn read(moto: &Moto) -> WalkthroughExtras {
        let eks = moto.eks().await;
        let clusters: Vec<String> = eks.list_clusters().send().await.unwrap().clusters().to_vec();
        let mut node_groups = Vec::new();
        for c in &clusters {
            let groups = eks.list_nodegroups().cluster_name(c).send().await.unwrap();
            node_groups.extend(groups.nodegroups().iter().map(|g| format!("{c}/{g}")));
        }
        let iam = moto.iam().await;
        let roles = iam
            .list_roles()
            .send()
            .await
            .unwrap()
            .roles()
            .iter()
            .map(|r| r.role_name().to_string())
            .filter(|n| n.starts_with(WALKTHROUGH_CLUSTER))
            .collect();
        let policies = iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .send()
            .await
            .unwrap()
            .policies()
            .iter()
            .filter_map(|p| p.policy_name().map(str::to_string))
            .filter(|n| n == "NodesSDPolicy" || n.starts_with(WALKTHROUGH_CLUSTER))
            .collect();
        let repositories = moto
            .ecr()
            .await
            .describe_repositories()
            .send()
            .await
            .unwrap()
            .repositories()
            .iter()
            .filter_map(|r| r.repository_name().map(str::to_string))
            .collect();
        WalkthroughExtras {
            clusters,
            node_groups,
            roles,
            policies,
            repositories,
        }
    }

    /// Everything the walkthrough made beyond the network is there once.
    pub fn assert_present(&self) {
        assert_eq!(self.clusters, [WALKTHROUGH_CLUSTER], "{self:?}");
        assert_eq!(self.node_groups.len(), 1, "{self:?}");
        assert_eq!(self.roles.len(), 2, "cluster and node roles: {self:?}");
        assert_eq!(self.policies.len(), 2, "both policies: {self:?}");
        assert_eq!(self.repositories, ["yelb-appserver-v2"], "{self:?}");
    }

    pub fn assert_empty(&self) {
        assert!(self.clusters.is_empty(), "clusters left: {self:?}");
        assert!(self.node_groups.is_empty(), "node groups left: {self:?}");
        assert!(self.roles.is_empty(), "roles left: {self:?}");
        assert!(self.policies.is_empty(), "policies left: {self:?}");
        assert!(self.repositories.is_empty(), "repositories left: {self:?}");
    }
}

/// Names of what moto holds outside EC2 that a stack may make: local IAM
/// policies, roles, ECR repositories, EKS clusters and node groups
/// (`cluster/nodegroup`). Read without any filter, so that a duplicate or
/// an object no stack declared shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    pub local_policies: std::collections::BTreeSet<String>,
    pub roles: std::collections::BTreeSet<String>,
    pub repositories: std::collections::BTreeSet<String>,
    pub clusters: std::collections::BTreeSet<String>,
    pub node_groups: std::collections::BTreeSet<String>,
    /// How many objects were listed in all (more than the names when a
    /// name is listed twice, which the services forbid; kept as a check).
    pub listed: usize,
}

impl Names {
    /// What the baseline stack (`stacks/baseline.toml`) makes.
    pub fn baseline() -> Names {
        Names {
            local_policies: ["NodesSDPolicy".to_string()].into(),
            repositories: ["yelb-appserver-v2".to_string()].into(),
            listed: 2,
            ..Names::default()
        }
    }

    /// Reads them from moto.
    pub async fn read(moto: &Moto) -> Names {
        let iam = moto.iam().await;
        let mut names = Names::default();
        let policies = iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        names.listed += policies.len();
        names.local_policies = policies
            .iter()
            .filter_map(|p| p.policy_name().map(str::to_string))
            .collect();
        let roles = iam
            .list_roles()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        names.listed += roles.len();
        names.roles = roles.iter().map(|r| r.role_name().to_string()).collect();
        let repositories = moto
            .ecr()
            .await
            .describe_repositories()
            .send()
            .await
            .unwrap()
            .repositories()
            .to_vec();
        names.listed += repositories.len();
        names.repositories = repositories
            .iter()
            .filter_map(|r| r.repository_name().map(str::to_string))
            .collect();
        let eks = moto.eks().await;
        let clusters = eks.list_clusters().send().await.unwrap().clusters().to_vec();
        names.listed += clusters.len();
        for c in &clusters {
            let groups = eks
                .list_nodegroups()
                .cluster_name(c)
                .send()
                .await
                .unwrap()
                .nodegroups()
                .to_vec();
            names.listed += groups.len();
            names
                .node_groups
                .extend(groups.iter().map(|g| format!("{c}/{g}")));
        }
        names.clusters = clusters.into_iter().collect();
        names
    }
}

/// The EC2 objects moto holds that do not carry `meshform:stack=<stack>`:
/// VPCs, subnets, internet gateways, route tables, NAT gateways (not
/// deleted), Elastic IPs and security groups, leaving out what moto or
/// AWS makes by itself (the default VPC and its subnets, gateways and
/// groups, every VPC's main route table and default security group). Each
/// is described in one line. Read without tag filters: a second VPC made by
/// a retried create shows here even if it carries the tags, because the
/// stack inventory counts those separately.
pub async fn foreign_ec2_objects(moto: &Moto, stack: &str) -> Vec<String> {
    use aws_sdk_ec2::types::NatGatewayState;
    let ec2 = moto.ec2().await;
    let ours = |tags: &[aws_sdk_ec2::types::Tag]| tag(tags, "meshform:stack").as_deref() == Some(stack);
    let mut out = Vec::new();
    let vpcs = ec2.describe_vpcs().send().await.unwrap().vpcs().to_vec();
    let default_vpcs: Vec<String> = vpcs
        .iter()
        .filter(|v| v.is_default() == Some(true))
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    let in_default = |vpc: Option<&str>| vpc.is_some_and(|v| default_vpcs.iter().any(|d| d == v));
    for v in vpcs.iter().filter(|v| v.is_default() != Some(true)) {
        if !ours(v.tags()) {
            out.push(format!("VPC {:?} tags {:?}", v.vpc_id(), v.tags()));
        }
    }
    for s in ec2.describe_subnets().send().await.unwrap().subnets() {
        if !in_default(s.vpc_id()) && !ours(s.tags()) {
            out.push(format!("subnet {:?} tags {:?}", s.subnet_id(), s.tags()));
        }
    }
    for g in ec2
        .describe_internet_gateways()
        .send()
        .await
        .unwrap()
        .internet_gateways()
    {
        let on_default = g.attachments().iter().any(|a| in_default(a.vpc_id()));
        if !on_default && !ours(g.tags()) {
            out.push(format!(
                "internet gateway {:?} tags {:?}",
                g.internet_gateway_id(),
                g.tags()
            ));
        }
    }
    for t in ec2.describe_route_tables().send().await.unwrap().route_tables() {
        let main = t.associations().iter().any(|a| a.main() == Some(true));
        if !main && !in_default(t.vpc_id()) && !ours(t.tags()) {
            out.push(format!(
                "route table {:?} tags {:?}",
                t.route_table_id(),
                t.tags()
            ));
        }
    }
    for n in ec2.describe_nat_gateways().send().await.unwrap().nat_gateways() {
        let gone = matches!(
            n.state(),
            Some(NatGatewayState::Deleted | NatGatewayState::Deleting)
        );
        if !gone && !ours(n.tags()) {
            out.push(format!(
                "NAT gateway {:?} tags {:?}",
                n.nat_gateway_id(),
                n.tags()
            ));
        }
    }
    for a in ec2.describe_addresses().send().await.unwrap().addresses() {
        if !ours(a.tags()) {
            out.push(format!("Elastic IP {:?} tags {:?}", a.allocation_id(), a.tags()));
        }
    }
    for g in ec2
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
    {
        if g.group_name() != Some("default") && !in_default(g.vpc_id()) && !ours(g.tags()) {
            out.push(format!(
                "security group {:?} {:?} tags {:?}",
                g.group_id(),
                g.group_name(),
                g.tags()
            ));
        }
    }
    out
}

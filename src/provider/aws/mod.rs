//! AWS resource kinds, reached through aws-sdk-rust configured by
//! aws-config (so `AWS_ENDPOINT_URL`, profiles and proxies work as for any
//! AWS tool; tests point it at moto server).
//!
//! One file per kind. Each file exports `DEF` (its [`KindDef`]) and a type
//! implementing [`crate::provider::ResourceKind`] built from [`AwsClients`].

pub mod ecr_repository;
pub mod eip;
pub mod eks_cluster;
mod eks_lifecycle;
pub mod eks_node_group;
mod eks_util;
pub mod elasticache_replication_group;
pub mod elasticache_subnet_group;
pub mod iam_policy;
pub mod iam_role;
pub mod internet_gateway;
pub mod internet_gateway_attachment;
pub mod nat_gateway;
pub mod network_drain;
pub mod route;
pub mod route_table;
pub mod route_table_association;
pub mod security_group;
pub mod security_group_rule;
pub mod servicediscovery_namespace;
pub mod servicediscovery_service;
pub mod subnet;
pub(crate) mod toolkit;
pub mod vpc;

use std::sync::Arc;

use aws_config::retry::RetryConfig;

use crate::provider::{Kinds, ProviderError, RegionFacts, Schema, schema::KindDef};
use toolkit::send;

/// The per-operation configuration of a call that must be made at most once
/// per attempt of the engine: the SDK's own retries off.
///
/// Every kind's primary create call (the one that makes the object) is sent
/// with it: `call.customize().config_override(SingleAttempt).send()`. If the
/// SDK retried such a call after its answer was lost, the first request may
/// already have made the object and the retry would make a second one (most
/// of these APIs take no client token, and emulators ignore tokens). Instead
/// the failure reaches the engine, which looks the resource up (ownership
/// tags or natural key) before it tries again. Every other call keeps the
/// client's retry configuration (the SDK's standard mode).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SingleAttempt;

/// `From<SingleAttempt>` for each service's config builder: only the retry
/// configuration is set, so the override leaves everything else as the
/// client has it.
macro_rules! single_attempt_for {
    ($($service:ident),* $(,)?) => {
        $(
            impl From<SingleAttempt> for $service::config::Builder {
                fn from(_: SingleAttempt) -> Self {
                    $service::config::Builder::default().retry_config(RetryConfig::disabled())
                }
            }
        )*
    };
}

single_attempt_for!(
    aws_sdk_ec2,
    aws_sdk_iam,
    aws_sdk_ecr,
    aws_sdk_eks,
    aws_sdk_elasticache,
    aws_sdk_servicediscovery
);

/// How many times [`send_resolving_doubt`] sends its call in all, as the
/// SDK's standard mode would.
const RESOLVING_ATTEMPTS: u32 = 3;
/// Its pause before the second attempt; doubled before each next one.
const RESOLVING_FIRST_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends a call that makes something inside an existing resource (such as
/// a new policy version) and must not be repeated blindly: `send` makes
/// the call once (with [`SingleAttempt`]); when it fails transiently (see
/// [`ProviderError::is_transient`]: its answer may have been lost after it
/// took effect), `look` reads whether it took effect and returns what the
/// call would have, and only if it did not is the call sent again, up to
/// three attempts in all. The kind-level counterpart of the engine's
/// lookup before it retries a create.
pub(crate) async fn send_resolving_doubt<T, S, SFut, L, LFut>(
    mut send: S,
    mut look: L,
) -> Result<T, ProviderError>
where
    S: FnMut() -> SFut,
    SFut: std::future::Future<Output = Result<T, ProviderError>>,
    L: FnMut() -> LFut,
    LFut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
{
    let mut delay = RESOLVING_FIRST_DELAY;
    let mut attempt = 1;
    loop {
        let err = match send().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        if let Some(done) = look().await? {
            return Ok(done);
        }
        if attempt >= RESOLVING_ATTEMPTS {
            return Err(err);
        }
        tracing::info!(error = %err, attempt, "call failed and took no effect; sending it again");
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    }
}

/// The AWS kinds, declared once: each `module::Type` gives the kind's
/// schema (`module::DEF`, in [`KIND_DEFS`] and as the type's [`Schema`])
/// and its operations (built from the clients by [`AwsClients::kinds`]).
macro_rules! registry {
    ($($module:ident :: $kind:ident),* $(,)?) => {
        /// Static definitions of every AWS kind.
        pub static KIND_DEFS: &[&KindDef] = &[$(&$module::DEF),*];

        $(impl Schema for $module::$kind {
            fn def(&self) -> &'static KindDef {
                &$module::DEF
            }
        })*

        /// Every AWS kind, operating through `clients`.
        fn build_kinds(clients: &Arc<AwsClients>) -> Kinds {
            let mut kinds = Kinds::default();
            $(kinds.insert(Arc::new($module::$kind(clients.clone())));)*
            kinds
        }
    };
}

registry!(
    vpc::Vpc,
    subnet::Subnet,
    internet_gateway::InternetGateway,
    internet_gateway_attachment::InternetGatewayAttachment,
    eip::Eip,
    nat_gateway::NatGateway,
    route_table::RouteTable,
    route::Route,
    route_table_association::RouteTableAssociation,
    security_group::SecurityGroup,
    security_group_rule::SecurityGroupRule,
    elasticache_subnet_group::ElastiCacheSubnetGroup,
    elasticache_replication_group::ElastiCacheReplicationGroup,
    servicediscovery_namespace::PrivateDnsNamespace,
    servicediscovery_service::CloudMapService,
    iam_policy::IamPolicy,
    iam_role::IamRole,
    ecr_repository::EcrRepository,
    eks_cluster::EksCluster,
    eks_node_group::EksNodeGroup,
    network_drain::NetworkDrain,
);

/// Sends a primary create call once, with [`SingleAttempt`], mapping its
/// error to [`ProviderError::Api`] named `$op`.
macro_rules! send_once {
    ($call:expr, $op:literal) => {
        $call
            .customize()
            .config_override($crate::provider::aws::SingleAttempt)
            .send()
            .await
            .map_err(|e| $crate::provider::ProviderError::aws($op, e))
    };
}
pub(crate) use send_once;

/// SDK clients for one region, shared by every kind.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// The region the clients talk to; empty when the SDK configuration names
    /// none.
    pub region: String,
    /// EC2: VPCs, subnets, gateways, addresses, route tables, security groups
    /// and availability zones.
    pub ec2: aws_sdk_ec2::Client,
    /// IAM: policies and roles.
    pub iam: aws_sdk_iam::Client,
    /// ECR: container image repositories.
    pub ecr: aws_sdk_ecr::Client,
    /// EKS: clusters and node groups.
    pub eks: aws_sdk_eks::Client,
    /// Elastic Load Balancing v2: application and network load balancers and
    /// target groups (swept by the network drain).
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    /// Classic Elastic Load Balancing (swept by the network drain).
    pub elb: aws_sdk_elasticloadbalancing::Client,
    /// ElastiCache: cache subnet groups and replication groups.
    pub elasticache: aws_sdk_elasticache::Client,
    /// Cloud Map: private DNS namespaces and services.
    pub servicediscovery: aws_sdk_servicediscovery::Client,
}

impl AwsClients {
    /// Loads the standard AWS configuration chain (environment, profile,
    /// `AWS_ENDPOINT_URL`, ...) for `region`.
    pub async fn connect(region: &str) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        Self::from_sdk_config(&config)
    }

    /// Clients from an already loaded SDK configuration (library users and
    /// tests that pick endpoint and credentials themselves). The region is
    /// the configuration's.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        AwsClients {
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            ec2: aws_sdk_ec2::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            ecr: aws_sdk_ecr::Client::new(config),
            eks: aws_sdk_eks::Client::new(config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
            elb: aws_sdk_elasticloadbalancing::Client::new(config),
            elasticache: aws_sdk_elasticache::Client::new(config),
            servicediscovery: aws_sdk_servicediscovery::Client::new(config),
        }
    }

    /// Every AWS kind, operating through these clients.
    pub fn kinds(self: &Arc<Self>) -> Kinds {
        build_kinds(self)
    }

    /// Reads the region's available availability zones, sorted by name.
    pub async fn region_facts(&self) -> Result<RegionFacts, ProviderError> {
        let out = send!(
            self.ec2.describe_availability_zones().filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("state")
                    .values("available")
                    .build(),
            ),
            "DescribeAvailabilityZones"
        )?;
        let mut azs: Vec<String> = out
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        azs.sort();
        Ok(RegionFacts {
            region: self.region.clone(),
            azs,
        })
    }
}

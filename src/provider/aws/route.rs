//! `aws.ec2.route`: one IPv4 route in a route table, to an internet gateway
//! or a NAT gateway.
//!
//! Routes have no id of their own in EC2: meshform names a route
//! `<route-table-id>_<destination>` and finds it again through its table.

use std::sync::Arc;

use aws_sdk_ec2::types::RouteOrigin;

use super::toolkit::distinct;
use super::toolkit::ec2::route_tables_where;
use super::toolkit::errors::{Service, gone_is_done};
use super::toolkit::poll::read_until;
use super::toolkit::prelude::*;
use super::toolkit::shared_reads::RouteTableReads;

/// Schema of `aws.ec2.route`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.route",
    doc: "A route in a route table. Exactly one of `gateway_id` and `nat_gateway_id` must be \
          set; changing the target is done in place.",
    attrs: attrs! {
        /// The route table holding the route.
        required route_table_id: String, force_new;
        /// The IPv4 destination, for example `0.0.0.0/0`.
        required destination_cidr_block: Cidr, force_new;
        /// Target internet gateway (igw-...).
        optional gateway_id: String;
        /// Target NAT gateway (nat-...).
        optional nat_gateway_id: String;
    },
    identity: &[&["route_table_id", "destination_cidr_block"]],
    ..KindDef::BASE
};

/// Operations of `aws.ec2.route`.
pub struct Route(pub Arc<AwsClients>);

/// Where a route sends its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Gateway(String),
    Nat(String),
}

impl Target {
    /// The target named by desired attributes: exactly one must be given.
    fn from_attrs(attrs: &Attrs) -> Result<Target, ProviderError> {
        let non_empty = |name| attr_opt_str(attrs, name).filter(|s| !s.is_empty());
        match (non_empty("gateway_id"), non_empty("nat_gateway_id")) {
            (Some(g), None) => Ok(Target::Gateway(g.to_string())),
            (None, Some(n)) => Ok(Target::Nat(n.to_string())),
            (Some(_), Some(_)) => Err(ProviderError::invalid(
                "gateway_id",
                "set only one of gateway_id and nat_gateway_id",
            )),
            (None, None) => Err(ProviderError::invalid(
                "gateway_id",
                "one of gateway_id and nat_gateway_id is required",
            )),
        }
    }

    /// Whether a read route points at this target.
    fn matches(&self, live: &Live) -> bool {
        match self {
            Target::Gateway(g) => attr_opt_str(&live.attrs, "gateway_id") == Some(g.as_str()),
            Target::Nat(n) => attr_opt_str(&live.attrs, "nat_gateway_id") == Some(n.as_str()),
        }
    }
}

/// The id meshform gives a route.
fn route_id(table: &str, destination: &str) -> String {
    format!("{table}_{destination}")
}

/// The (table, destination) a read request is about: from its recorded
/// attributes, else parsed from its id.
fn natural_key(req: &ReadRequest) -> Result<(String, String), ProviderError> {
    let parsed = req.id.split_once('_');
    let table = attr_opt_str(&req.attrs, "route_table_id").or(parsed.map(|p| p.0));
    let destination = attr_opt_str(&req.attrs, "destination_cidr_block").or(parsed.map(|p| p.1));
    match (table, destination) {
        (Some(t), Some(d)) if !t.is_empty() && !d.is_empty() => Ok((t.to_string(), d.to_string())),
        _ => Err(ProviderError::invalid(
            "id",
            format!("route id {:?} is not <route-table-id>_<destination>", req.id),
        )),
    }
}

/// The distinct route tables of `keys` (table, destination).
fn table_ids(keys: &[(String, String)]) -> Vec<String> {
    distinct(keys.iter().map(|(t, _)| t.clone()))
}

/// The route of each key (table, destination) found in `described`.
fn routes_in(keys: &[(String, String)], described: &[aws_sdk_ec2::types::RouteTable]) -> Vec<Option<Live>> {
    keys.iter()
        .map(|(table, destination)| {
            let rt = described
                .iter()
                .find(|rt| rt.route_table_id() == Some(table.as_str()))?;
            let route = rt.routes().iter().find(|r| {
                r.destination_cidr_block() == Some(destination.as_str())
                    && r.origin() == Some(&RouteOrigin::CreateRoute)
            })?;
            let mut attrs = Attrs::new();
            attrs.insert("route_table_id".into(), Value::from(table.as_str()));
            attrs.insert("destination_cidr_block".into(), Value::from(destination.as_str()));
            if let Some(g) = route.gateway_id().filter(|g| !g.is_empty() && *g != "local") {
                attrs.insert("gateway_id".into(), Value::from(g));
            } else if let Some(n) = route.nat_gateway_id().filter(|n| !n.is_empty()) {
                attrs.insert("nat_gateway_id".into(), Value::from(n));
            }
            Some(Live {
                id: route_id(table, destination),
                attrs,
            })
        })
        .collect()
}

fn request_for(table: &str, destination: &str) -> ReadRequest {
    let mut attrs = Attrs::new();
    attrs.insert("route_table_id".into(), Value::from(table));
    attrs.insert("destination_cidr_block".into(), Value::from(destination));
    ReadRequest {
        address: String::new(),
        id: route_id(table, destination),
        attrs,
    }
}

impl Route {
    /// The route as read once it shows `target`.
    async fn visible(&self, table: &str, destination: &str, target: &Target) -> Result<Live, ProviderError> {
        let request = request_for(table, destination);
        read_until(self, &request.id, request.attrs, |live| target.matches(live)).await
    }
}

#[async_trait]
impl ResourceKind for Route {
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let table = attr_str(desired, "route_table_id")?;
        let destination = attr_str(desired, "destination_cidr_block")?;
        let target = Target::from_attrs(desired)?;
        let mut call = self
            .0
            .ec2
            .create_route()
            .route_table_id(table)
            .destination_cidr_block(destination);
        call = match &target {
            Target::Gateway(g) => call.gateway_id(g),
            Target::Nat(n) => call.nat_gateway_id(n),
        };
        send_once!(call, "CreateRoute")?;
        self.visible(table, destination, &target).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        let keys: Vec<(String, String)> = requests.iter().map(natural_key).collect::<Result<_, _>>()?;
        let tables = table_ids(&keys);
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let described = route_tables_where(&self.0.ec2, "route-table-id", &tables).await?;
        Ok(routes_in(&keys, &described))
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        let keys: Vec<(String, String)> = requests.iter().filter_map(|r| natural_key(r).ok()).collect();
        session
            .shared::<RouteTableReads>()
            .want_tables(keys.iter().map(|(t, _)| t.as_str()));
    }

    async fn read_in(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let keys: Vec<(String, String)> = requests.iter().map(natural_key).collect::<Result<_, _>>()?;
        let tables = table_ids(&keys);
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let reads = session.shared::<RouteTableReads>();
        let described = reads.table_list(&self.0.ec2, &tables).await?;
        Ok(routes_in(&keys, &described))
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let desired = change.desired;
        let table = attr_str(desired, "route_table_id")?;
        let destination = attr_str(desired, "destination_cidr_block")?;
        let target = Target::from_attrs(desired)?;
        if change.has_any(&["gateway_id", "nat_gateway_id"]) {
            let mut call = self
                .0
                .ec2
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block(destination);
            call = match &target {
                Target::Gateway(g) => call.gateway_id(g),
                Target::Nat(n) => call.nat_gateway_id(n),
            };
            call.send()
                .await
                .map_err(|e| ProviderError::aws("ReplaceRoute", e))?;
        }
        self.visible(table, destination, &target).await
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let req = ReadRequest {
            address: String::new(),
            id: prior.id.clone(),
            attrs: prior.attrs.clone(),
        };
        let (table, destination) = natural_key(&req)?;
        let result = send!(
            self.0
                .ec2
                .delete_route()
                .route_table_id(table)
                .destination_cidr_block(destination),
            "DeleteRoute"
        );
        gone_is_done(Service::Ec2, result)
    }

    async fn find_existing(&self, _cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let table = attr_str(desired, "route_table_id")?;
        let destination = attr_str(desired, "destination_cidr_block")?;
        Ok(self
            .read(&[request_for(table, destination)])
            .await?
            .into_iter()
            .next()
            .flatten())
    }
}

//! Describes that several EC2 kinds share within one refresh (see
//! [`crate::provider::ReadSession`]).
//!
//! - Route tables: `aws.ec2.route_table`, `aws.ec2.route` and
//!   `aws.ec2.route_table_association` read them, and `aws.ec2.vpc` finds
//!   its main route table among them. The kinds announce VPC ids and table
//!   ids; one `DescribeRouteTables` filtered by the VPCs returns every table
//!   in them, and only announced tables outside those VPCs cost another
//!   call (by table id).
//! - Internet gateways: `aws.ec2.internet_gateway` and
//!   `aws.ec2.internet_gateway_attachment` both read them; one
//!   `DescribeInternetGateways` by the announced gateway ids serves both.
//!
//! Each reader describes once, the first time a read asks, and every read
//! of the refresh gets that answer (a failure too). Ids asked for that were
//! not announced are described separately, so a read is never wrong, only
//! dearer.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types::{InternetGateway, RouteTable};
use tokio::sync::OnceCell;

use super::all_pages;
use super::ec2::{filters_in_chunks, route_tables_where};
use crate::provider::ProviderError;

/// One shared answer: the described objects by id.
type Described<T> = Result<Arc<HashMap<String, T>>, ProviderError>;

/// Ids that the kinds of a refresh announced.
#[derive(Default)]
struct Wanted {
    vpcs: BTreeSet<String>,
    ids: BTreeSet<String>,
}

/// Route tables of one refresh.
#[derive(Default)]
pub struct RouteTableReads {
    wanted: Mutex<Wanted>,
    described: OnceCell<Described<RouteTable>>,
}

impl RouteTableReads {
    /// Announces that every route table of these VPCs will be read.
    pub fn want_vpcs<'a>(&self, vpc_ids: impl IntoIterator<Item = &'a str>) {
        let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        w.vpcs.extend(vpc_ids.into_iter().map(str::to_string));
    }

    /// Announces that these route tables will be read.
    pub fn want_tables<'a>(&self, table_ids: impl IntoIterator<Item = &'a str>) {
        let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        w.ids.extend(table_ids.into_iter().map(str::to_string));
    }

    /// Every announced table that exists (and every other table of the
    /// announced VPCs), by id: described once, on first use.
    async fn all(&self, ec2: &aws_sdk_ec2::Client) -> Described<RouteTable> {
        self.described
            .get_or_init(|| async {
                let (vpcs, ids) = {
                    let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
                    (w.vpcs.iter().cloned().collect::<Vec<_>>(), w.ids.clone())
                };
                let mut found = HashMap::new();
                for t in route_tables_where(ec2, "vpc-id", &vpcs).await? {
                    if let Some(id) = t.route_table_id() {
                        found.insert(id.to_string(), t);
                    }
                }
                let rest: Vec<String> = ids.into_iter().filter(|id| !found.contains_key(id)).collect();
                for t in route_tables_where(ec2, "route-table-id", &rest).await? {
                    if let Some(id) = t.route_table_id() {
                        found.insert(id.to_string(), t);
                    }
                }
                Ok(Arc::new(found))
            })
            .await
            .clone()
    }

    /// [`RouteTableReads::tables`] as a list, for the kinds that read what
    /// the tables hold (routes, associations).
    pub async fn table_list(
        &self,
        ec2: &aws_sdk_ec2::Client,
        ids: &[String],
    ) -> Result<Vec<RouteTable>, ProviderError> {
        Ok(self.tables(ec2, ids).await?.into_values().collect())
    }

    /// The tables among `ids` that exist, by id: from the shared answer,
    /// plus a describe of any id that was not announced.
    pub async fn tables(
        &self,
        ec2: &aws_sdk_ec2::Client,
        ids: &[String],
    ) -> Result<HashMap<String, RouteTable>, ProviderError> {
        let all = self.all(ec2).await?;
        let unannounced: Vec<String> = {
            let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter()
                .filter(|id| !all.contains_key(*id) && !w.ids.contains(*id))
                .cloned()
                .collect()
        };
        let mut out: HashMap<String, RouteTable> = ids
            .iter()
            .filter_map(|id| all.get(id).map(|t| (id.clone(), t.clone())))
            .collect();
        for t in route_tables_where(ec2, "route-table-id", &unannounced).await? {
            if let Some(id) = t.route_table_id() {
                out.insert(id.to_string(), t);
            }
        }
        Ok(out)
    }

    /// The main route table of each announced VPC (see
    /// [`RouteTableReads::want_vpcs`]) that has one, by VPC id, from the
    /// shared answer: one pass over it, no call of its own.
    pub async fn main_tables(
        &self,
        ec2: &aws_sdk_ec2::Client,
    ) -> Result<HashMap<String, String>, ProviderError> {
        let all = self.all(ec2).await?;
        let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        Ok(all
            .values()
            .filter(|t| t.associations().iter().any(|a| a.main() == Some(true)))
            .filter_map(|t| Some((t.vpc_id()?, t.route_table_id()?)))
            .filter(|(vpc, _)| w.vpcs.contains(*vpc))
            .map(|(vpc, id)| (vpc.to_string(), id.to_string()))
            .collect())
    }
}

/// Internet gateways of one refresh.
#[derive(Default)]
pub struct InternetGatewayReads {
    wanted: Mutex<Wanted>,
    described: OnceCell<Described<InternetGateway>>,
}

impl InternetGatewayReads {
    /// Announces that these gateways will be read.
    pub fn want<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        w.ids.extend(ids.into_iter().map(str::to_string));
    }

    /// The gateways among `ids` that exist, by id.
    pub async fn gateways(
        &self,
        ec2: &aws_sdk_ec2::Client,
        ids: &[String],
    ) -> Result<HashMap<String, InternetGateway>, ProviderError> {
        let all = self
            .described
            .get_or_init(|| async {
                let ids: Vec<String> = {
                    let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
                    w.ids.iter().cloned().collect()
                };
                Ok(Arc::new(by_gateway_id(describe_gateways(ec2, &ids).await?)))
            })
            .await
            .clone()?;
        let unannounced: Vec<String> = {
            let w = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter().filter(|id| !w.ids.contains(*id)).cloned().collect()
        };
        let mut out: HashMap<String, InternetGateway> = ids
            .iter()
            .filter_map(|id| all.get(id).map(|g| (id.clone(), g.clone())))
            .collect();
        out.extend(by_gateway_id(describe_gateways(ec2, &unannounced).await?));
        Ok(out)
    }
}

fn by_gateway_id(gateways: Vec<InternetGateway>) -> HashMap<String, InternetGateway> {
    gateways
        .into_iter()
        .filter_map(|g| Some((g.internet_gateway_id()?.to_string(), g)))
        .collect()
}

/// Internet gateways by id: one filtered, paginated describe per
/// filter-value limit of ids; none for no ids.
pub async fn describe_gateways(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<Vec<InternetGateway>, ProviderError> {
    let mut out = Vec::new();
    for f in filters_in_chunks("internet-gateway-id", ids) {
        let call = ec2.describe_internet_gateways().filters(f);
        out.extend(all_pages!(call, "DescribeInternetGateways")?);
    }
    Ok(out)
}

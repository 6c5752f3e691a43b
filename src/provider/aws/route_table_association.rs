//! `aws.ec2.route_table_association`: the explicit association of a subnet
//! with a route table.
//!
//! The resource's id is the association id (`rtbassoc-...`). Moving the
//! subnet to another table is done in place with
//! `ReplaceRouteTableAssociation`, which gives the association a new id: the
//! `Live` returned by `update` carries it.

use std::sync::Arc;

use aws_sdk_ec2::types::RouteTableAssociationStateCode;

use super::toolkit::distinct;
use super::toolkit::ec2::{filter, route_tables, route_tables_where};
use super::toolkit::errors::{Service, gone_is_done};
use super::toolkit::poll::read_until;
use super::toolkit::prelude::*;
use super::toolkit::shared_reads::RouteTableReads;

/// Schema of `aws.ec2.route_table_association`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.route_table_association",
    doc: "Associates a subnet with a route table. Changing the table is done in place \
          (the association id changes).",
    attrs: attrs! {
        /// The route table.
        required route_table_id: String;
        /// The subnet.
        required subnet_id: String, force_new;
    },
    identity: &[&["subnet_id"]],
    ..KindDef::BASE
};

/// Operations of `aws.ec2.route_table_association`.
pub struct RouteTableAssociation(pub Arc<AwsClients>);

/// The live subnet associations found in `tables`, as `Live` values.
fn subnet_associations(tables: &[aws_sdk_ec2::types::RouteTable]) -> Vec<Live> {
    tables
        .iter()
        .flat_map(|t| t.associations())
        .filter(|a| {
            !matches!(
                a.association_state().and_then(|s| s.state()),
                Some(RouteTableAssociationStateCode::Disassociated)
                    | Some(RouteTableAssociationStateCode::Failed)
            )
        })
        .filter_map(|a| {
            let id = a.route_table_association_id()?;
            let subnet = a.subnet_id().filter(|s| !s.is_empty())?;
            let mut attrs = Attrs::new();
            attrs.insert(
                "route_table_id".into(),
                Value::from(a.route_table_id().unwrap_or_default()),
            );
            attrs.insert("subnet_id".into(), Value::from(subnet));
            Some(Live {
                id: id.to_string(),
                attrs,
            })
        })
        .collect()
}

fn table_is(live: &Live, table: &str) -> bool {
    attr_opt_str(&live.attrs, "route_table_id") == Some(table)
}

/// The route tables the requests were recorded in, each once.
fn recorded_tables<'a>(requests: impl IntoIterator<Item = &'a ReadRequest>) -> Vec<String> {
    distinct(
        requests
            .into_iter()
            .filter_map(|r| attr_opt_str(&r.attrs, "route_table_id").map(str::to_string)),
    )
}

#[async_trait]
impl ResourceKind for RouteTableAssociation {
    async fn create(&self, _cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let table = attr_str(desired, "route_table_id")?;
        let subnet = attr_str(desired, "subnet_id")?;
        let call = self
            .0
            .ec2
            .associate_route_table()
            .route_table_id(table)
            .subnet_id(subnet);
        let out = send_once!(call, "AssociateRouteTable")?;
        let id = out
            .association_id()
            .ok_or_else(|| ProviderError::unexpected("AssociateRouteTable", "no association id"))?;
        let live = read_until(self, id, Attrs::new(), |_| true).await?;
        // AWS refuses to associate a subnet that already has an explicit
        // association; moto instead answers with the existing association,
        // whatever its table. Never adopt another table's association.
        if !table_is(&live, table) {
            return Err(ProviderError::unexpected(
                "AssociateRouteTable",
                format!(
                    "subnet {subnet} is already associated with {} ({id})",
                    attr_opt_str(&live.attrs, "route_table_id").unwrap_or("another route table")
                ),
            ));
        }
        Ok(live)
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
        let by_id = "association.route-table-association-id";
        let tables = route_tables_where(&self.0.ec2, by_id, &ids).await?;
        let mut found = subnet_associations(&tables);

        // moto matches a multi-valued filter against a table's set of
        // association ids as "subset or superset" rather than "any", so a
        // table holding an association that was not asked about can be
        // missed. Look again, by recorded table, for what seems gone: on AWS
        // this only costs a call when something really was deleted.
        let missing_tables = recorded_tables(requests.iter().filter(|r| !found.iter().any(|l| l.id == r.id)));
        if !missing_tables.is_empty() {
            let more = route_tables_where(&self.0.ec2, "route-table-id", &missing_tables).await?;
            found.extend(subnet_associations(&more));
        }

        Ok(requests
            .iter()
            .map(|r| found.iter().find(|l| l.id == r.id).cloned())
            .collect())
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        session.shared::<RouteTableReads>().want_tables(
            requests
                .iter()
                .filter_map(|r| attr_opt_str(&r.attrs, "route_table_id")),
        );
    }

    /// Looks in the recorded tables (shared with the other route table
    /// kinds) first: an association id never moves to another table
    /// (replacing the table makes a new association id). What is not found
    /// there is read as [`ResourceKind::read`] does, which on AWS only
    /// costs a call when something really was deleted.
    async fn read_in(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let tables = recorded_tables(requests);
        let reads = session.shared::<RouteTableReads>();
        let described = reads.table_list(&self.0.ec2, &tables).await?;
        let found = subnet_associations(&described);
        let mut out: Vec<Option<Live>> = requests
            .iter()
            .map(|r| found.iter().find(|l| l.id == r.id).cloned())
            .collect();
        let missing: Vec<ReadRequest> = requests
            .iter()
            .zip(&out)
            .filter(|(_, l)| l.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let mut again = self.read(&missing).await?.into_iter();
        for slot in out.iter_mut().filter(|l| l.is_none()) {
            *slot = again.next().flatten();
        }
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let table = attr_str(desired, "route_table_id")?;
        let mut id = prior.id.clone();
        if change.has("route_table_id") && !table_is(prior, table) {
            let out = send!(
                self.0
                    .ec2
                    .replace_route_table_association()
                    .association_id(&prior.id)
                    .route_table_id(table),
                "ReplaceRouteTableAssociation"
            )?;
            id = out
                .new_association_id()
                .ok_or_else(|| {
                    ProviderError::unexpected("ReplaceRouteTableAssociation", "no new association id")
                })?
                .to_string();
        }
        read_until(self, &id, Attrs::new(), |live| table_is(live, table)).await
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let result = send!(
            self.0.ec2.disassociate_route_table().association_id(&prior.id),
            "DisassociateRouteTable"
        );
        gone_is_done(Service::Ec2, result)
    }

    async fn find_existing(&self, _cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let table = attr_str(desired, "route_table_id")?;
        let subnet = attr_str(desired, "subnet_id")?;
        let tables = route_tables(&self.0.ec2, vec![filter("association.subnet-id", [subnet])]).await?;
        Ok(subnet_associations(&tables)
            .into_iter()
            .find(|l| attr_opt_str(&l.attrs, "subnet_id") == Some(subnet))
            .filter(|l| table_is(l, table)))
    }
}

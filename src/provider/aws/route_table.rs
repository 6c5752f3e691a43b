//! `aws.ec2.route_table`: a VPC route table. Routes and subnet
//! associations are separate kinds, read through `DescribeRouteTables` too.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::ResourceType;

use super::toolkit::ec2::{
    Ec2Kind, Recorded, created_id, delete_once_free, ec2_described, tagged, tags_attr, visible,
};
use super::toolkit::prelude::*;
use super::toolkit::shared_reads::RouteTableReads;

/// Schema of `aws.ec2.route_table`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.route_table",
    doc: "A route table in a VPC. Routes and subnet associations are separate resources \
          (`aws.ec2.route`, `aws.ec2.route_table_association`).",
    attrs: attrs! {
        /// The VPC the table belongs to.
        required vpc_id: String, force_new;
        /// The AWS account owning the table.
        computed owner_id: String;
    },
    taggable: true,
    ..KindDef::BASE
};

/// Operations of `aws.ec2.route_table`.
pub struct RouteTable(pub Arc<AwsClients>);

ec2_described! {
    RouteTable: aws_sdk_ec2::types::RouteTable, id route_table_id, filter "route-table-id",
    noun "route tables", describe describe_route_tables "DescribeRouteTables",
    delete delete_route_table(route_table_id) "DeleteRouteTable"
}

fn to_live(table: &aws_sdk_ec2::types::RouteTable) -> Option<Live> {
    let id = table.route_table_id()?;
    let mut attrs = Attrs::new();
    attrs.insert("vpc_id".into(), Value::from(table.vpc_id().unwrap_or_default()));
    attrs.insert(
        "owner_id".into(),
        Value::from(table.owner_id().unwrap_or_default()),
    );
    attrs.insert("tags".into(), tags_attr(table.tags()));
    Some(Live {
        id: id.to_string(),
        attrs,
    })
}

#[async_trait]
impl Ec2Kind for RouteTable {
    fn live(&self, table: &Self::Item, _recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        Ok(to_live(table))
    }

    /// Routes, associations and the VPC's main-table lookup read the same
    /// tables: one describe by VPC serves them all.
    fn announce_shared(&self, session: &ReadSession, requests: &[ReadRequest]) {
        let reads = session.shared::<RouteTableReads>();
        reads.want_tables(requests.iter().map(|r| r.id.as_str()));
        reads.want_vpcs(requests.iter().filter_map(|r| attr_opt_str(&r.attrs, "vpc_id")));
    }

    async fn read_shared(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
        let tables = session
            .shared::<RouteTableReads>()
            .tables(&self.0.ec2, &ids)
            .await?;
        Ok(requests
            .iter()
            .map(|r| tables.get(&r.id).and_then(to_live))
            .collect())
    }

    async fn make(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let call = self
            .0
            .ec2
            .create_route_table()
            .vpc_id(attr_str(desired, "vpc_id")?)
            .set_client_token(Some(cx.token.clone()).filter(|t| !t.is_empty()))
            .set_tag_specifications(tagged(ResourceType::RouteTable, desired));
        let out = send_once!(call, "CreateRouteTable")?;
        let id = created_id(
            out.route_table().and_then(|t| t.route_table_id()),
            "CreateRouteTable",
        )?;
        visible(self, &id, &Recorded::new(), |_| true).await
    }

    /// A dependent being deleted (an association, a route to a gateway)
    /// keeps the table for a while: `DependencyViolation` is retried.
    async fn remove(&self, id: &str) -> Result<(), ProviderError> {
        delete_once_free(self, "route table", id, Duration::from_secs(60)).await
    }
}

//! `aws.ec2.route_table`: a VPC route table.
//!
//! Also holds the route-table helpers shared with `aws.ec2.route` and
//! `aws.ec2.route_table_association` (both live inside route tables and are
//! read through `DescribeRouteTables`), and two small retry helpers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType};

use super::ec2_util::{filter, is_not_found, ownership_filters, sync_tags, tag_spec, tags_attr};
use super::shared_reads::RouteTableReads;
use super::{AwsClients, SingleAttempt};
use crate::provider::schema::{AttrSchema, AttrType, KindDef};
use crate::provider::{
    Live, OpContext, ProviderError, ReadRequest, ReadSession, ResourceKind, attr_opt_str, attr_str, attr_tags,
};
use crate::{Attrs, Value};

/// Schema of `aws.ec2.route_table`.
pub static DEF: KindDef = KindDef {
    type_name: "aws.ec2.route_table",
    doc: "A route table in a VPC. Routes and subnet associations are separate resources \
          (`aws.ec2.route`, `aws.ec2.route_table_association`).",
    attrs: &[
        AttrSchema::required("vpc_id", AttrType::String, "The VPC the table belongs to.").force_new(),
        AttrSchema::computed("owner_id", AttrType::String, "The AWS account owning the table."),
    ],
    taggable: true,
    normalize: None,
    preflight: None,
    identity: &[],
    hosts_objects: false,
};

/// Operations of `aws.ec2.route_table`.
pub struct RouteTable(pub Arc<AwsClients>);

/// Most values AWS accepts in one filter; longer id lists are split.
pub(super) const FILTER_VALUES_MAX: usize = 200;

/// How long a create or update waits for its effect to become visible to
/// describe calls (EC2 is eventually consistent).
pub(super) const VISIBLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Every route table matching `filters`, all pages.
pub(super) async fn describe_route_tables(
    ec2: &aws_sdk_ec2::Client,
    filters: Vec<Filter>,
) -> Result<Vec<aws_sdk_ec2::types::RouteTable>, ProviderError> {
    ec2.describe_route_tables()
        .set_filters(Some(filters))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| ProviderError::aws("DescribeRouteTables", e))
}

/// Every route table whose id is in `ids`: one filtered describe per
/// [`FILTER_VALUES_MAX`] ids (a filter, unlike `RouteTableIds`, does not
/// fail on ids that no longer exist).
pub(super) async fn route_tables_by_id(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<Vec<aws_sdk_ec2::types::RouteTable>, ProviderError> {
    let mut tables = Vec::new();
    for chunk in ids.chunks(FILTER_VALUES_MAX) {
        tables
            .extend(describe_route_tables(ec2, vec![filter("route-table-id", chunk.iter().cloned())]).await?);
    }
    Ok(tables)
}

/// Reads one resource of `kind` until it exists and `accept` holds, for
/// creates and updates to return what the cloud reports once the change is
/// visible.
pub(super) async fn read_until<K, F>(kind: &K, request: ReadRequest, accept: F) -> Result<Live, ProviderError>
where
    K: ResourceKind + ?Sized,
    F: Fn(&Live) -> bool,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let found = kind
            .read(std::slice::from_ref(&request))
            .await?
            .into_iter()
            .next()
            .flatten();
        if let Some(live) = found
            && accept(&live)
        {
            return Ok(live);
        }
        if started.elapsed() >= VISIBLE_TIMEOUT {
            return Err(ProviderError::Timeout {
                what: format!("{} {} to be visible", kind.def().type_name, request.id),
                seconds: VISIBLE_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Runs `op` again while it fails with `DependencyViolation` (a dependent
/// being deleted is still visible for a while), up to `timeout`.
pub(super) async fn retry_dependency_violation<F, Fut>(
    timeout: Duration,
    mut op: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ProviderError>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        match op().await {
            Err(e) if e.code() == Some("DependencyViolation") && started.elapsed() < timeout => {
                tracing::debug!("{e}; retrying in {}s", pause.as_secs());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
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

impl RouteTable {
    fn request(id: &str) -> ReadRequest {
        ReadRequest {
            address: String::new(),
            id: id.to_string(),
            attrs: Attrs::new(),
        }
    }
}

#[async_trait]
impl ResourceKind for RouteTable {
    fn def(&self) -> &'static KindDef {
        &DEF
    }

    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        let vpc_id = attr_str(desired, "vpc_id")?;
        let out = self
            .0
            .ec2
            .create_route_table()
            .vpc_id(vpc_id)
            .set_client_token(Some(cx.token.clone()).filter(|t| !t.is_empty()))
            .tag_specifications(tag_spec(ResourceType::RouteTable, &attr_tags(desired)))
            .customize()
            .config_override(SingleAttempt)
            .send()
            .await
            .map_err(|e| ProviderError::aws("CreateRouteTable", e))?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| ProviderError::unexpected("CreateRouteTable", "no route table id"))?;
        read_until(self, Self::request(id), |_| true).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
        let tables = route_tables_by_id(&self.0.ec2, &ids).await?;
        let found: Vec<Live> = tables.iter().filter_map(to_live).collect();
        Ok(requests
            .iter()
            .map(|r| found.iter().find(|l| l.id == r.id).cloned())
            .collect())
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        let reads = session.shared::<RouteTableReads>();
        reads.want_tables(requests.iter().map(|r| r.id.as_str()));
        reads.want_vpcs(requests.iter().filter_map(|r| attr_opt_str(&r.attrs, "vpc_id")));
    }

    async fn read_in(
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

    async fn update(
        &self,
        _cx: &OpContext,
        prior: &Live,
        desired: &Attrs,
        changed: &[String],
    ) -> Result<Live, ProviderError> {
        let tags_changed = changed.iter().any(|c| c == "tags");
        let desired_tags = attr_tags(desired);
        if tags_changed {
            sync_tags(&self.0.ec2, &prior.id, &attr_tags(&prior.attrs), &desired_tags).await?;
        }
        read_until(self, Self::request(&prior.id), |live| {
            !tags_changed || attr_tags(&live.attrs) == desired_tags
        })
        .await
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        let result = retry_dependency_violation(Duration::from_secs(60), || async {
            self.0
                .ec2
                .delete_route_table()
                .route_table_id(&prior.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ProviderError::aws("DeleteRouteTable", e))
        })
        .await;
        match result {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other,
        }
    }

    async fn find_existing(&self, cx: &OpContext, _desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        let tables = describe_route_tables(&self.0.ec2, ownership_filters(&cx.stack, &cx.address)).await?;
        let mut found: Vec<Live> = tables.iter().filter_map(to_live).collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found.into_iter().next())
    }
}

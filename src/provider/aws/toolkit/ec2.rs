//! EC2: the trait the tagged EC2 kinds implement (describe by ids, find by
//! ownership tags, wait for a state), tags on create, the tag sync through
//! DeleteTags/CreateTags, and filters split at the one filter-value limit.
//!
//! A tagged EC2 kind names its describe call, id filter and id/tag getters
//! with [`ec2_described!`](crate::provider::aws::toolkit::ec2::ec2_described)
//! and implements [`Ec2Kind`] (build the live view, create, change in
//! place, delete); it is then a [`ResourceKind`]: batched reads, tag sync,
//! the read-back after a change, "already gone" deletes and the lookup by
//! ownership tags come from here.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::errors::{Service, gone_is_done};
use super::ownership;
use super::poll::{Poll, VISIBLE_PAUSES, VISIBLE_TIMEOUT};
use super::tags;
use super::{all_pages, distinct, send};
use crate::provider::schema::KindDef;
use crate::provider::{
    InPlace, Live, OpContext, ProviderError, ReadRequest, ReadSession, ResourceKind, Schema, TAG_ADDRESS,
    TAG_STACK, attr_tags, tags_value,
};
use crate::{Attrs, Value};

/// Most values EC2 accepts in one filter; longer id lists are split.
pub const MAX_FILTER_VALUES: usize = 200;

/// Attributes recorded in state (or desired) by cloud id, for kinds whose
/// live view needs something the describe call does not say.
pub type Recorded = HashMap<String, Attrs>;

/// A boxed call of an SDK client.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// What the toolkit must know of a tagged EC2 kind's describe call.
/// Implemented with [`ec2_described!`].
pub trait Ec2Described: Send + Sync + 'static {
    /// The SDK type of one described resource.
    type Item: Send + Sync + 'static;
    /// The kind's schema.
    const DEF: &'static KindDef;
    /// The filter matching resource ids, such as `vpc-id`. A filter, unlike
    /// the `...Ids` parameters, does not fail the whole call on one unknown id.
    const ID_FILTER: &'static str;
    /// The resources' name in the plural, for warnings.
    const NOUN: &'static str;
    /// The EC2 client.
    fn ec2(&self) -> &Client;
    /// Every resource matching `filters`, all pages.
    fn describe(&self, filters: Vec<Filter>) -> Pending<'_, Vec<Self::Item>>;
    /// Sends the delete call for `id`.
    fn send_delete(&self, id: &str) -> Pending<'_, ()>;
    /// A described resource's id.
    fn item_id(item: &Self::Item) -> Option<&str>;
    /// A described resource's tags.
    fn item_tags(item: &Self::Item) -> &[Tag];
}

/// Implements [`Ec2Described`] for a kind type holding `Arc<AwsClients>`:
///
/// ```text
/// ec2_described! {
///     Vpc: aws_sdk_ec2::types::Vpc, id vpc_id, filter "vpc-id", noun "VPCs",
///     describe describe_vpcs "DescribeVpcs", delete delete_vpc(vpc_id) "DeleteVpc"
/// }
/// ```
///
/// for a paginated describe (`describe describe_nat_gateways.set_filter
/// "DescribeNatGateways"` where the filter parameter has another name);
/// `describe once describe_addresses(addresses) "DescribeAddresses"` for
/// one that is not paginated (with the answer's list getter).
macro_rules! ec2_described {
    (@impl $kind:ident: $item:ty, $id:ident, $filter:literal, $noun:literal,
     $describe:expr, $delete:ident($param:ident) $delete_op:literal) => {
        impl $crate::provider::aws::toolkit::ec2::Ec2Described for $kind {
            type Item = $item;
            const DEF: &'static $crate::provider::schema::KindDef = &DEF;
            const ID_FILTER: &'static str = $filter;
            const NOUN: &'static str = $noun;
            fn ec2(&self) -> &aws_sdk_ec2::Client {
                &self.0.ec2
            }
            fn describe(
                &self,
                filters: Vec<aws_sdk_ec2::types::Filter>,
            ) -> $crate::provider::aws::toolkit::ec2::Pending<'_, Vec<$item>> {
                let describe = $describe;
                Box::pin(describe(self, filters))
            }
            fn send_delete(&self, id: &str) -> $crate::provider::aws::toolkit::ec2::Pending<'_, ()> {
                let call = self.0.ec2.$delete().$param(id);
                Box::pin(async move {
                    call.send()
                        .await
                        .map(|_| ())
                        .map_err(|e| $crate::provider::ProviderError::aws($delete_op, e))
                })
            }
            fn item_id(item: &$item) -> Option<&str> {
                item.$id()
            }
            fn item_tags(item: &$item) -> &[aws_sdk_ec2::types::Tag] {
                item.tags()
            }
        }
    };
    ($kind:ident: $item:ty, id $id:ident, filter $filter:literal, noun $noun:literal,
     describe $call:ident $op:literal, delete $($delete:tt)*) => {
        $crate::provider::aws::toolkit::ec2::ec2_described!($kind: $item, id $id, filter $filter,
            noun $noun, describe $call.set_filters $op, delete $($delete)*);
    };
    ($kind:ident: $item:ty, id $id:ident, filter $filter:literal, noun $noun:literal,
     describe $call:ident.$setter:ident $op:literal, delete $($delete:tt)*) => {
        $crate::provider::aws::toolkit::ec2::ec2_described!(@impl $kind: $item, $id, $filter, $noun,
            |k: &$kind, filters: Vec<aws_sdk_ec2::types::Filter>| {
                let call = k.0.ec2.$call().$setter(Some(filters));
                async move { $crate::provider::aws::toolkit::all_pages!(call, $op) }
            }, $($delete)*);
    };
    ($kind:ident: $item:ty, id $id:ident, filter $filter:literal, noun $noun:literal,
     describe once $call:ident($list:ident) $op:literal, delete $($delete:tt)*) => {
        $crate::provider::aws::toolkit::ec2::ec2_described!(@impl $kind: $item, $id, $filter, $noun,
            |k: &$kind, filters: Vec<aws_sdk_ec2::types::Filter>| {
                let call = k.0.ec2.$call().set_filters(Some(filters));
                async move {
                    let out = call.send().await.map_err(|e| $crate::provider::ProviderError::aws($op, e))?;
                    Ok(out.$list().to_vec())
                }
            }, $($delete)*);
    };
}
pub(crate) use ec2_described;

/// A tagged EC2 kind: its own calls. Every such kind is a [`ResourceKind`]
/// (see the blanket implementation below).
#[async_trait]
pub trait Ec2Kind: Ec2Described {
    /// The live view of a described resource, `None` when it counts as
    /// gone; `recorded` is what state recorded for it, when known. Kinds
    /// whose live view needs more calls override [`lives`](Self::lives)
    /// instead, and never reach this default.
    fn live(&self, _item: &Self::Item, _recorded: Option<&Attrs>) -> Result<Option<Live>, ProviderError> {
        Err(ProviderError::unexpected(
            Self::DEF.type_name,
            "the kind builds its live views in batches",
        ))
    }

    /// The live views of described resources, leaving out those that count
    /// as gone; `recorded` holds what state recorded, by id, when known.
    async fn lives(&self, items: Vec<Self::Item>, recorded: &Recorded) -> Result<Vec<Live>, ProviderError> {
        let mut out = Vec::new();
        for item in &items {
            let recorded = Self::item_id(item).and_then(|id| recorded.get(id));
            out.extend(self.live(item, recorded)?);
        }
        Ok(out)
    }

    /// What [`read_shared`](Self::read_shared) will take from `session`'s
    /// shared readers (see [`ResourceKind::announce`]). By default nothing.
    fn announce_shared(&self, _session: &ReadSession, _requests: &[ReadRequest]) {}

    /// A refresh's read (see [`ResourceKind::read_in`]): by default the
    /// kind's own batched describe.
    async fn read_shared(
        &self,
        _session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        read_batched(self, requests).await
    }

    /// Creates the resource (tagged in the create call itself) and returns
    /// it once usable.
    async fn make(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError>;

    /// Applies in-place changes other than tags (the toolkit syncs those)
    /// to the resource `change.prior` names.
    async fn change(&self, _change: InPlace<'_>) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Whether a read-back shows an in-place change of `desired` (tags
    /// aside): the read after an update waits until it does.
    fn shows(_live: &Live, _desired: &Attrs) -> bool {
        true
    }

    /// Deletes (and waits while the delete takes effect): by default the
    /// delete call alone. A "not found" error counts as done.
    async fn remove(&self, id: &str) -> Result<(), ProviderError> {
        self.send_delete(id).await
    }

    /// Finds what a create may have made before it was recorded: by default
    /// the first resource carrying the ownership tags.
    async fn find(&self, cx: &OpContext, _desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        find_owned(self, cx, Vec::new(), |_| true).await
    }
}

#[async_trait]
impl<K: Ec2Kind + Schema> ResourceKind for K {
    async fn create(&self, cx: &OpContext, desired: &Attrs) -> Result<Live, ProviderError> {
        self.make(cx, desired).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Live>>, ProviderError> {
        read_batched(self, requests).await
    }

    fn announce(&self, session: &ReadSession, requests: &[ReadRequest]) {
        self.announce_shared(session, requests)
    }

    async fn read_in(
        &self,
        session: &ReadSession,
        requests: &[ReadRequest],
    ) -> Result<Vec<Option<Live>>, ProviderError> {
        self.read_shared(session, requests).await
    }

    async fn update(&self, _cx: &OpContext, change: InPlace<'_>) -> Result<Live, ProviderError> {
        let InPlace { prior, desired, .. } = change;
        let id = prior.id.as_str();
        self.change(change).await?;
        let tags_changed = change.has("tags");
        let desired_tags = attr_tags(desired);
        if tags_changed {
            sync_tags(self.ec2(), id, &attr_tags(&prior.attrs), &desired_tags).await?;
        }
        let recorded = Recorded::from([(id.to_string(), prior.attrs.clone())]);
        visible(self, id, &recorded, |live| {
            K::shows(live, desired) && (!tags_changed || attr_tags(&live.attrs) == desired_tags)
        })
        .await
    }

    async fn delete(&self, _cx: &OpContext, prior: &Live) -> Result<(), ProviderError> {
        gone_is_done(Service::Ec2, self.remove(&prior.id).await)
    }

    async fn find_existing(&self, cx: &OpContext, desired: &Attrs) -> Result<Option<Live>, ProviderError> {
        self.find(cx, desired).await
    }
}

/// Reads resources by id in batches ([`describe_ids`]) and answers in
/// request order, `None` for those that do not exist.
pub async fn read_batched<K: Ec2Kind + ?Sized>(
    kind: &K,
    requests: &[ReadRequest],
) -> Result<Vec<Option<Live>>, ProviderError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let ids = distinct(requests.iter().map(|r| r.id.clone()));
    let recorded: Recorded = requests.iter().map(|r| (r.id.clone(), r.attrs.clone())).collect();
    let items = describe_ids(kind, &ids).await?;
    let lives: HashMap<String, Live> = kind
        .lives(items, &recorded)
        .await?
        .into_iter()
        .map(|l| (l.id.clone(), l))
        .collect();
    Ok(requests.iter().map(|r| lives.get(&r.id).cloned()).collect())
}

/// Describes resources by id: one filtered, paginated call per
/// [`MAX_FILTER_VALUES`] ids. Ids that do not exist are left out.
pub async fn describe_ids<K: Ec2Described + ?Sized>(
    kind: &K,
    ids: &[String],
) -> Result<Vec<K::Item>, ProviderError> {
    let mut out = Vec::new();
    for f in filters_in_chunks(K::ID_FILTER, ids) {
        out.extend(kind.describe(vec![f]).await?);
    }
    Ok(out)
}

/// One described resource; `None` when it does not exist.
pub async fn describe_one<K: Ec2Described + ?Sized>(
    kind: &K,
    id: &str,
) -> Result<Option<K::Item>, ProviderError> {
    let items = describe_ids(kind, &[id.to_string()]).await?;
    Ok(items.into_iter().find(|i| K::item_id(i) == Some(id)))
}

/// One resource's live view; `None` when it does not exist (or counts as
/// gone).
pub async fn read_one<K: Ec2Kind + ?Sized>(
    kind: &K,
    id: &str,
    recorded: &Recorded,
) -> Result<Option<Live>, ProviderError> {
    let items = describe_ids(kind, &[id.to_string()]).await?;
    Ok(kind
        .lives(items, recorded)
        .await?
        .into_iter()
        .find(|l| l.id == id))
}

/// Reads the resource `id` until it is visible and `accept` holds: what a
/// create or update returns, once EC2's describes show it.
pub async fn visible<K: Ec2Kind + ?Sized>(
    kind: &K,
    id: &str,
    recorded: &Recorded,
    accept: impl Fn(&Live) -> bool + Send + Sync,
) -> Result<Live, ProviderError> {
    Poll::new(
        format!("{} {id} to be visible", K::DEF.type_name),
        VISIBLE_TIMEOUT,
    )
    .pauses(VISIBLE_PAUSES.0, VISIBLE_PAUSES.1)
    .until(|| async { Ok(read_one(kind, id, recorded).await?.filter(|l| accept(l))) })
    .await
}

/// Waits until the resource `id` is described and `reached` holds for it
/// (a state such as `available`), polling 1 s doubling up to 15 s.
pub async fn wait_state<K: Ec2Described + ?Sized>(
    kind: &K,
    id: &str,
    what: &str,
    timeout: Duration,
    reached: impl Fn(&K::Item) -> bool,
) -> Result<(), ProviderError> {
    Poll::new(format!("{} {id} to {what}", K::DEF.type_name), timeout)
        .until(|| async { Ok(describe_one(kind, id).await?.filter(|i| reached(i)).map(|_| ())) })
        .await
}

/// Deletes `id`, retrying under `poll` while the delete fails with error
/// code `busy` (something still holds the resource for a while).
pub async fn delete_retrying<K: Ec2Described + ?Sized>(
    kind: &K,
    id: &str,
    busy: &str,
    poll: Poll,
) -> Result<(), ProviderError> {
    poll.retry_while(|e| e.code() == Some(busy), || kind.send_delete(id))
        .await
}

/// Deletes `id` (a `what`, for progress), retrying for up to `timeout`
/// while dependents being deleted still hold it (`DependencyViolation`):
/// an association or route going away keeps its table for a while, an
/// interface its security group.
pub async fn delete_once_free<K: Ec2Described + ?Sized>(
    kind: &K,
    what: &str,
    id: &str,
    timeout: Duration,
) -> Result<(), ProviderError> {
    let poll = Poll::new(format!("{what} {id} to be deletable"), timeout)
        .pauses(Duration::from_secs(1), Duration::from_secs(10));
    delete_retrying(kind, id, "DependencyViolation", poll).await
}

/// The first resource carrying `cx`'s ownership tags (checked here too:
/// tag filters are not honoured everywhere, moto ignores them on
/// DescribeNatGateways) that `usable` accepts and state does not already
/// track, as a live view. `extra` filters narrow the describe.
pub async fn find_owned<K: Ec2Kind + ?Sized>(
    kind: &K,
    cx: &OpContext,
    extra: Vec<Filter>,
    usable: impl Fn(&K::Item) -> bool + Send,
) -> Result<Option<Live>, ProviderError> {
    let mut filters = ownership_filters(cx);
    filters.extend(extra);
    let items = kind.describe(filters).await?;
    let owned = items
        .into_iter()
        .filter(|i| owned(K::item_tags(i), cx) && usable(i));
    let Some(item) = ownership::first_owned(owned, cx, K::NOUN, |i| K::item_id(i)) else {
        return Ok(None);
    };
    Ok(kind.lives(vec![item], &Recorded::new()).await?.into_iter().next())
}

/// Every route table matching `filters`, all pages. Routes and subnet
/// associations live inside route tables and are read through them.
pub async fn route_tables(
    ec2: &Client,
    filters: Vec<Filter>,
) -> Result<Vec<aws_sdk_ec2::types::RouteTable>, ProviderError> {
    all_pages!(
        ec2.describe_route_tables().set_filters(Some(filters)),
        "DescribeRouteTables"
    )
}

/// Every route table whose filter `name` matches one of `values`: one
/// describe per [`MAX_FILTER_VALUES`] values.
pub async fn route_tables_where(
    ec2: &Client,
    name: &str,
    values: &[String],
) -> Result<Vec<aws_sdk_ec2::types::RouteTable>, ProviderError> {
    let mut tables = Vec::new();
    for f in filters_in_chunks(name, values) {
        tables.extend(route_tables(ec2, vec![f]).await?);
    }
    Ok(tables)
}

/// A security group rule's protocol as meshform writes it (EC2 may answer
/// with protocol numbers or `all`).
pub fn normalize_protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "all" => "-1".into(),
        other => other.to_string(),
    }
}

/// The id a create call answered with, or an error naming the call.
pub fn created_id(id: Option<&str>, operation: &str) -> Result<String, ProviderError> {
    id.map(str::to_string)
        .ok_or_else(|| ProviderError::unexpected(operation, "no id in the response"))
}

/// Tags applied in the create call itself, so that a resource is never
/// untagged (and so never unfindable after a crash), not even for a moment.
pub fn tag_spec(resource_type: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource_type);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

/// The tag specifications of a create call from the desired `tags`
/// (`None` when there are none), for `set_tag_specifications`.
pub fn tagged(resource_type: ResourceType, desired: &Attrs) -> Option<Vec<TagSpecification>> {
    let tags = attr_tags(desired);
    (!tags.is_empty()).then(|| vec![tag_spec(resource_type, &tags)])
}

/// The `tags` attribute value from an EC2 tag list.
pub fn tags_attr(tags: &[Tag]) -> Value {
    tags_value(
        tags.iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))),
    )
}

/// True when an EC2 tag list names `cx`'s stack and address as the owner.
pub fn owned(tags: &[Tag], cx: &OpContext) -> bool {
    ownership::owned_pairs(tags.iter().filter_map(|t| Some((t.key()?, t.value()?))), cx)
}

/// Makes the tags on `resource_id` equal to `desired` (`aws:` keys aside).
pub async fn sync_tags(
    ec2: &Client,
    resource_id: &str,
    prior: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    tags::sync(
        prior,
        desired,
        |removed| async move {
            let keys = removed.iter().map(|k| Tag::builder().key(k).build()).collect();
            send!(
                ec2.delete_tags().resources(resource_id).set_tags(Some(keys)),
                "DeleteTags"
            )
            .map(|_| ())
        },
        |set| async move {
            let tags = set
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            send!(
                ec2.create_tags().resources(resource_id).set_tags(Some(tags)),
                "CreateTags"
            )
            .map(|_| ())
        },
    )
    .await
}

/// Filters matching resources that carry `cx`'s ownership tags.
pub fn ownership_filters(cx: &OpContext) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{TAG_STACK}"), [cx.stack.as_str()]),
        filter(&format!("tag:{TAG_ADDRESS}"), [cx.address.as_str()]),
    ]
}

/// A filter on `name` matching any of `values`.
pub fn filter<I, S>(name: &str, values: I) -> Filter
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut f = Filter::builder().name(name);
    for v in values {
        f = f.values(v);
    }
    f.build()
}

/// Filters on `name`, each holding at most [`MAX_FILTER_VALUES`] of `values`:
/// one describe call per filter covers them all.
pub fn filters_in_chunks(name: &str, values: &[String]) -> Vec<Filter> {
    values
        .chunks(MAX_FILTER_VALUES)
        .map(|chunk| filter(name, chunk.iter().cloned()))
        .collect()
}

//! The EC2 networking kinds (VPC, subnet, internet gateway and its
//! attachment, Elastic IP, NAT gateway) against moto: effects are checked
//! with an independent SDK client.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, Tag, VpcAttributeName};
use meshform::Attrs;
use meshform::provider::aws::AwsClients;
use meshform::provider::aws::eip::Eip;
use meshform::provider::aws::internet_gateway::InternetGateway;
use meshform::provider::aws::internet_gateway_attachment::InternetGatewayAttachment;
use meshform::provider::aws::nat_gateway::NatGateway;
use meshform::provider::aws::subnet::Subnet;
use meshform::provider::aws::vpc::Vpc;
use meshform::provider::{InPlace, Live, OpContext, ReadRequest, ReadSession, ResourceKind, ownership_tags};
use serde_json::json;

use crate::support::moto::{Moto, REGION};

const STACK: &str = "ec2net-test";

fn cx(address: &str) -> OpContext {
    OpContext {
        stack: STACK.to_string(),
        address: address.to_string(),
        token: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

/// Desired `tags` as the engine passes them: user tags plus ownership tags.
fn tags(address: &str, user: &[(&str, &str)]) -> serde_json::Value {
    let mut all = ownership_tags(STACK, address);
    all.extend(user.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    json!(all)
}

fn attrs(v: serde_json::Value) -> Attrs {
    v.as_object().expect("attrs are an object").clone()
}

fn req(live: &Live) -> ReadRequest {
    ReadRequest {
        address: "x".into(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

fn gone(id: &str) -> ReadRequest {
    ReadRequest {
        address: "gone".into(),
        id: id.to_string(),
        attrs: Attrs::new(),
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn expected_tags(address: &str, user: &[(&str, &str)]) -> BTreeMap<String, String> {
    serde_json::from_value(tags(address, user)).expect("tags")
}

fn str_attr<'a>(live: &'a Live, name: &str) -> &'a str {
    live.attrs
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{name} missing in {live:?}"))
}

async fn new_vpc(clients: &Arc<AwsClients>, address: &str, cidr: &str) -> Live {
    Vpc(clients.clone())
        .create(
            &cx(address),
            &attrs(json!({"cidr_block": cidr, "tags": tags(address, &[])})),
        )
        .await
        .expect("create vpc")
}

async fn new_subnet(clients: &Arc<AwsClients>, address: &str, vpc_id: &str, cidr: &str) -> Live {
    let desired = json!({
        "vpc_id": vpc_id, "cidr_block": cidr, "availability_zone": format!("{REGION}a"),
        "map_public_ip_on_launch": false, "tags": tags(address, &[]),
    });
    Subnet(clients.clone())
        .create(&cx(address), &attrs(desired))
        .await
        .expect("create subnet")
}

async fn dns_attr(ec2: &aws_sdk_ec2::Client, vpc_id: &str, name: VpcAttributeName) -> bool {
    let out = ec2
        .describe_vpc_attribute()
        .vpc_id(vpc_id)
        .attribute(name.clone())
        .send()
        .await
        .expect("attr");
    let v = match name {
        VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
        _ => out.enable_dns_hostnames(),
    };
    v.and_then(|v| v.value()).expect("attribute value")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpc_create_read_update_find_delete() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let kind = Vpc(clients.clone());

    let address = "network.vpc";
    let desired = attrs(json!({
        "cidr_block": "10.10.0.0/16",
        "enable_dns_support": true,
        "enable_dns_hostnames": true,
        "tags": tags(address, &[("Name", "main")]),
    }));
    let live = kind.create(&cx(address), &desired).await.expect("create");
    assert!(live.id.starts_with("vpc-"), "{live:?}");
    assert_eq!(str_attr(&live, "cidr_block"), "10.10.0.0/16");
    assert_eq!(live.attrs["enable_dns_support"], json!(true));
    assert_eq!(live.attrs["enable_dns_hostnames"], json!(true));
    assert!(!str_attr(&live, "owner_id").is_empty());
    assert!(
        str_attr(&live, "main_route_table_id").starts_with("rtb-"),
        "{live:?}"
    );
    assert!(
        str_attr(&live, "default_security_group_id").starts_with("sg-"),
        "{live:?}"
    );
    assert_eq!(live.attrs["tags"], tags(address, &[("Name", "main")]));

    // Independent read-back.
    let vpcs = ec2
        .describe_vpcs()
        .vpc_ids(&live.id)
        .send()
        .await
        .expect("describe");
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.10.0.0/16"));
    assert_eq!(tag_map(vpc.tags()), expected_tags(address, &[("Name", "main")]));
    assert!(dns_attr(&ec2, &live.id, VpcAttributeName::EnableDnsSupport).await);
    assert!(dns_attr(&ec2, &live.id, VpcAttributeName::EnableDnsHostnames).await);
    let rts = ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(&live.id).build())
        .filters(Filter::builder().name("association.main").values("true").build())
        .send()
        .await
        .expect("route tables");
    assert_eq!(
        rts.route_tables()[0].route_table_id(),
        Some(str_attr(&live, "main_route_table_id"))
    );

    // Batched read: in request order, None for a deleted or unknown VPC.
    let other = new_vpc(&clients, "network.other", "10.20.0.0/16").await;
    let read = kind
        .read(&[req(&other), req(&live), gone("vpc-0123456789abcdef0")])
        .await
        .expect("read");
    assert_eq!(read, vec![Some(other.clone()), Some(live.clone()), None]);
    kind.delete(&cx("network.other"), &other)
        .await
        .expect("delete other");
    let read = kind.read(&[req(&live), req(&other)]).await.expect("read");
    assert_eq!(read, vec![Some(live.clone()), None]);

    // A refresh's read: the main route table comes from the route tables
    // the session describes once for every kind (the call count is
    // refresh_calls' business); the view is the same as a plain read's,
    // whose main table was checked against moto above. A second, non-main
    // table in the VPC: only the main one may be taken.
    let extra = ec2
        .create_route_table()
        .vpc_id(&live.id)
        .send()
        .await
        .expect("a non-main route table");
    let extra = extra
        .route_table()
        .and_then(|t| t.route_table_id())
        .expect("its id")
        .to_string();
    let session = ReadSession::new();
    let requests = [req(&live), req(&other)];
    kind.announce(&session, &requests);
    let read = kind
        .read_in(&session, &requests)
        .await
        .expect("read in a session");
    assert_eq!(read, vec![Some(live.clone()), None]);
    ec2.delete_route_table()
        .route_table_id(&extra)
        .send()
        .await
        .expect("delete the non-main table");

    // Update in place: DNS hostnames off, tags changed.
    let mut desired2 = desired.clone();
    desired2.insert("enable_dns_hostnames".into(), json!(false));
    desired2.insert(
        "tags".into(),
        tags(address, &[("Name", "renamed"), ("env", "test")]),
    );
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &live,
                desired: &desired2,
                changed: &["enable_dns_hostnames".into(), "tags".into()],
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.id, live.id);
    assert_eq!(updated.attrs["enable_dns_hostnames"], json!(false));
    assert_eq!(
        updated.attrs["tags"],
        tags(address, &[("Name", "renamed"), ("env", "test")])
    );
    assert!(!dns_attr(&ec2, &live.id, VpcAttributeName::EnableDnsHostnames).await);
    assert!(dns_attr(&ec2, &live.id, VpcAttributeName::EnableDnsSupport).await);
    let vpcs = ec2
        .describe_vpcs()
        .vpc_ids(&live.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        tag_map(vpcs.vpcs()[0].tags()),
        expected_tags(address, &[("Name", "renamed"), ("env", "test")])
    );

    // Turning DNS support off (hostnames already off).
    let mut desired3 = desired2.clone();
    desired3.insert("enable_dns_support".into(), json!(false));
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &updated,
                desired: &desired3,
                changed: &["enable_dns_support".into()],
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.attrs["enable_dns_support"], json!(false));
    assert!(!dns_attr(&ec2, &live.id, VpcAttributeName::EnableDnsSupport).await);

    // find_existing by ownership tags.
    let found = kind.find_existing(&cx(address), &desired).await.expect("find");
    assert_eq!(found, Some(updated.clone()));
    assert_eq!(
        kind.find_existing(&cx("network.nothing"), &desired)
            .await
            .expect("find"),
        None
    );

    // Delete is idempotent.
    kind.delete(&cx(address), &live).await.expect("delete");
    kind.delete(&cx(address), &live).await.expect("delete again");
    assert_eq!(kind.read(&[req(&live)]).await.expect("read"), vec![None]);
    assert_eq!(
        kind.find_existing(&cx(address), &desired).await.expect("find"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpc_create_with_dns_support_off() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let address = "network.quiet";
    let desired = attrs(json!({
        "cidr_block": "10.30.0.0/16",
        "enable_dns_support": false,
        "enable_dns_hostnames": false,
        "tags": tags(address, &[]),
    }));
    let live = Vpc(clients).create(&cx(address), &desired).await.expect("create");
    assert_eq!(live.attrs["enable_dns_support"], json!(false));
    assert!(!dns_attr(&ec2, &live.id, VpcAttributeName::EnableDnsSupport).await);
    assert!(!dns_attr(&ec2, &live.id, VpcAttributeName::EnableDnsHostnames).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_create_read_update_find_delete() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let kind = Subnet(clients.clone());
    let vpc = new_vpc(&clients, "network.vpc", "10.0.0.0/16").await;

    let address = "network.public_a";
    let desired = attrs(json!({
        "vpc_id": vpc.id,
        "cidr_block": "10.0.1.0/24",
        "availability_zone": format!("{REGION}a"),
        "map_public_ip_on_launch": true,
        "tags": tags(address, &[("Name", "public-a")]),
    }));
    let live = kind.create(&cx(address), &desired).await.expect("create");
    assert!(live.id.starts_with("subnet-"), "{live:?}");
    assert_eq!(str_attr(&live, "vpc_id"), vpc.id);
    assert_eq!(str_attr(&live, "cidr_block"), "10.0.1.0/24");
    assert_eq!(str_attr(&live, "availability_zone"), format!("{REGION}a"));
    assert_eq!(live.attrs["map_public_ip_on_launch"], json!(true));
    assert!(str_attr(&live, "arn").contains(&live.id), "{live:?}");
    assert!(!str_attr(&live, "availability_zone_id").is_empty(), "{live:?}");
    assert_eq!(live.attrs["tags"], tags(address, &[("Name", "public-a")]));

    let out = ec2
        .describe_subnets()
        .subnet_ids(&live.id)
        .send()
        .await
        .expect("describe");
    let s = &out.subnets()[0];
    assert_eq!(s.vpc_id(), Some(vpc.id.as_str()));
    assert_eq!(s.cidr_block(), Some("10.0.1.0/24"));
    assert_eq!(s.availability_zone(), Some(format!("{REGION}a").as_str()));
    assert_eq!(s.map_public_ip_on_launch(), Some(true));
    assert_eq!(tag_map(s.tags()), expected_tags(address, &[("Name", "public-a")]));

    // Batched read with a deleted subnet.
    let other = new_subnet(&clients, "network.private_a", &vpc.id, "10.0.2.0/24").await;
    let read = kind.read(&[req(&live), req(&other)]).await.expect("read");
    assert_eq!(read, vec![Some(live.clone()), Some(other.clone())]);
    kind.delete(&cx("network.private_a"), &other)
        .await
        .expect("delete other");
    let read = kind
        .read(&[req(&other), req(&live), gone("subnet-0123456789abcdef0")])
        .await
        .expect("read");
    assert_eq!(read, vec![None, Some(live.clone()), None]);

    // Update in place.
    let mut desired2 = desired.clone();
    desired2.insert("map_public_ip_on_launch".into(), json!(false));
    desired2.insert("tags".into(), tags(address, &[]));
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &live,
                desired: &desired2,
                changed: &["map_public_ip_on_launch".into(), "tags".into()],
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.attrs["map_public_ip_on_launch"], json!(false));
    assert_eq!(updated.attrs["tags"], tags(address, &[]));
    let out = ec2
        .describe_subnets()
        .subnet_ids(&live.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(out.subnets()[0].map_public_ip_on_launch(), Some(false));
    assert_eq!(tag_map(out.subnets()[0].tags()), expected_tags(address, &[]));

    // find_existing by ownership tags.
    assert_eq!(
        kind.find_existing(&cx(address), &desired2).await.expect("find"),
        Some(updated.clone())
    );
    assert_eq!(
        kind.find_existing(&cx("network.private_a"), &desired2)
            .await
            .expect("find"),
        None
    );

    kind.delete(&cx(address), &live).await.expect("delete");
    kind.delete(&cx(address), &live).await.expect("delete again");
    assert_eq!(kind.read(&[req(&live)]).await.expect("read"), vec![None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internet_gateway_and_attachment() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let igws = InternetGateway(clients.clone());
    let attachments = InternetGatewayAttachment(clients.clone());
    let vpc = new_vpc(&clients, "network.vpc", "10.0.0.0/16").await;

    let address = "network.igw";
    let desired = attrs(json!({"tags": tags(address, &[("Name", "igw")])}));
    let igw = igws.create(&cx(address), &desired).await.expect("create igw");
    assert!(igw.id.starts_with("igw-"), "{igw:?}");
    assert!(!str_attr(&igw, "owner_id").is_empty());
    assert_eq!(igw.attrs["tags"], tags(address, &[("Name", "igw")]));
    let out = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        tag_map(out.internet_gateways()[0].tags()),
        expected_tags(address, &[("Name", "igw")])
    );
    assert!(out.internet_gateways()[0].attachments().is_empty());

    // Attach.
    let att_desired = attrs(json!({"internet_gateway_id": igw.id, "vpc_id": vpc.id}));
    let att = attachments
        .create(&cx("network.igw_attachment"), &att_desired)
        .await
        .expect("attach");
    assert_eq!(att.id, format!("{}:{}", igw.id, vpc.id));
    assert_eq!(att.attrs, att_desired);
    let out = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw.id)
        .send()
        .await
        .expect("describe");
    let a = &out.internet_gateways()[0].attachments()[0];
    assert_eq!(a.vpc_id(), Some(vpc.id.as_str()));
    // A retried create (already attached) succeeds.
    assert_eq!(
        attachments
            .create(&cx("network.igw_attachment"), &att_desired)
            .await
            .expect("again"),
        att
    );
    assert_eq!(
        attachments
            .find_existing(&cx("network.igw_attachment"), &att_desired)
            .await
            .expect("find"),
        Some(att.clone())
    );

    // Batched reads: a second, unattached gateway reads as None.
    let igw2 = igws
        .create(
            &cx("network.igw2"),
            &attrs(json!({"tags": tags("network.igw2", &[])})),
        )
        .await
        .expect("igw2");
    let att2 = ReadRequest {
        address: "network.igw2_attachment".into(),
        id: format!("{}:{}", igw2.id, vpc.id),
        attrs: Attrs::new(),
    };
    let read = attachments
        .read(&[att2.clone(), req(&att), gone("igw-0123456789abcdef0:vpc-1")])
        .await
        .expect("read");
    assert_eq!(read, vec![None, Some(att.clone()), None]);
    let read = igws.read(&[req(&igw2), req(&igw)]).await.expect("read igws");
    assert_eq!(read, vec![Some(igw2.clone()), Some(igw.clone())]);
    igws.delete(&cx("network.igw2"), &igw2)
        .await
        .expect("delete igw2");
    let read = igws
        .read(&[req(&igw2), req(&igw), gone("igw-0123456789abcdef0")])
        .await
        .expect("read igws");
    assert_eq!(read, vec![None, Some(igw.clone()), None]);
    assert_eq!(
        attachments.read(std::slice::from_ref(&att2)).await.expect("read"),
        vec![None]
    );

    // Gateway tags update in place; find_existing by tags.
    let desired2 = attrs(json!({"tags": tags(address, &[("Name", "igw-renamed")])}));
    let updated = igws
        .update(
            &cx(address),
            InPlace {
                prior: &igw,
                desired: &desired2,
                changed: &["tags".into()],
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.attrs["tags"], tags(address, &[("Name", "igw-renamed")]));
    let out = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        tag_map(out.internet_gateways()[0].tags()),
        expected_tags(address, &[("Name", "igw-renamed")])
    );
    assert_eq!(
        igws.find_existing(&cx(address), &desired2).await.expect("find"),
        Some(updated.clone())
    );
    assert_eq!(
        igws.find_existing(&cx("network.igw2"), &desired2)
            .await
            .expect("find"),
        None
    );

    // Detach (idempotent), then delete the gateway (idempotent).
    attachments
        .delete(&cx("network.igw_attachment"), &att)
        .await
        .expect("detach");
    attachments
        .delete(&cx("network.igw_attachment"), &att)
        .await
        .expect("detach again");
    assert_eq!(attachments.read(&[req(&att)]).await.expect("read"), vec![None]);
    assert_eq!(
        attachments
            .find_existing(&cx("network.igw_attachment"), &att_desired)
            .await
            .expect("find"),
        None
    );
    let out = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw.id)
        .send()
        .await
        .expect("describe");
    assert!(out.internet_gateways()[0].attachments().is_empty());
    igws.delete(&cx(address), &igw).await.expect("delete igw");
    igws.delete(&cx(address), &igw).await.expect("delete igw again");
    // Detaching from a gateway that no longer exists is fine too.
    attachments
        .delete(&cx("network.igw_attachment"), &att)
        .await
        .expect("detach from gone igw");
    assert_eq!(attachments.read(&[req(&att)]).await.expect("read"), vec![None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eip_and_nat_gateway() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let eips = Eip(clients.clone());
    let nats = NatGateway(clients.clone());
    let vpc = new_vpc(&clients, "network.vpc", "10.0.0.0/16").await;
    let subnet = new_subnet(&clients, "network.public_a", &vpc.id, "10.0.1.0/24").await;

    // Elastic IP.
    let eip_address = "network.nat_eip";
    let eip_desired = attrs(json!({"domain": "vpc", "tags": tags(eip_address, &[("Name", "nat")])}));
    let eip = eips
        .create(&cx(eip_address), &eip_desired)
        .await
        .expect("allocate");
    assert!(eip.id.starts_with("eipalloc-"), "{eip:?}");
    assert_eq!(str_attr(&eip, "allocation_id"), eip.id);
    assert_eq!(str_attr(&eip, "domain"), "vpc");
    assert!(!str_attr(&eip, "public_ip").is_empty());
    assert_eq!(eip.attrs["tags"], tags(eip_address, &[("Name", "nat")]));
    let out = ec2
        .describe_addresses()
        .allocation_ids(&eip.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(out.addresses()[0].public_ip(), Some(str_attr(&eip, "public_ip")));
    assert_eq!(
        tag_map(out.addresses()[0].tags()),
        expected_tags(eip_address, &[("Name", "nat")])
    );

    // NAT gateway with that address, passing the token as ClientToken.
    let nat_address = "network.nat";
    let nat_desired = attrs(json!({
        "subnet_id": subnet.id,
        "allocation_id": eip.id,
        "connectivity_type": "public",
        "tags": tags(nat_address, &[("Name", "nat")]),
    }));
    let nat = nats
        .create(&cx(nat_address), &nat_desired)
        .await
        .expect("create nat");
    assert!(nat.id.starts_with("nat-"), "{nat:?}");
    assert_eq!(str_attr(&nat, "subnet_id"), subnet.id);
    assert_eq!(str_attr(&nat, "allocation_id"), eip.id);
    assert_eq!(str_attr(&nat, "connectivity_type"), "public");
    assert_eq!(str_attr(&nat, "vpc_id"), vpc.id);
    assert_eq!(str_attr(&nat, "public_ip"), str_attr(&eip, "public_ip"));
    assert!(!str_attr(&nat, "private_ip").is_empty());
    assert!(
        str_attr(&nat, "network_interface_id").starts_with("eni-"),
        "{nat:?}"
    );
    assert_eq!(nat.attrs["tags"], tags(nat_address, &[("Name", "nat")]));
    let out = ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat.id)
        .send()
        .await
        .expect("describe");
    let g = &out.nat_gateways()[0];
    assert_eq!(g.state().map(|s| s.as_str()), Some("available"));
    assert_eq!(g.subnet_id(), Some(subnet.id.as_str()));
    assert_eq!(
        g.nat_gateway_addresses()[0].allocation_id(),
        Some(eip.id.as_str())
    );
    assert_eq!(tag_map(g.tags()), expected_tags(nat_address, &[("Name", "nat")]));

    // A second NAT gateway (another address), so that find_existing must
    // tell them apart even where tag filters are ignored.
    let eip2 = eips
        .create(
            &cx("network.nat2_eip"),
            &attrs(json!({"domain": "vpc", "tags": tags("network.nat2_eip", &[])})),
        )
        .await
        .expect("allocate 2");
    let nat2_desired = attrs(json!({
        "subnet_id": subnet.id, "allocation_id": eip2.id, "connectivity_type": "public",
        "tags": tags("network.nat2", &[]),
    }));
    let nat2 = nats
        .create(&cx("network.nat2"), &nat2_desired)
        .await
        .expect("create nat 2");
    assert_eq!(
        nats.find_existing(&cx(nat_address), &nat_desired)
            .await
            .expect("find"),
        Some(nat.clone())
    );
    assert_eq!(
        nats.find_existing(&cx("network.nat2"), &nat2_desired)
            .await
            .expect("find"),
        Some(nat2.clone())
    );
    assert_eq!(
        nats.find_existing(&cx("network.nat3"), &nat2_desired)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        eips.find_existing(&cx(eip_address), &eip_desired)
            .await
            .expect("find"),
        Some(eip.clone())
    );
    assert_eq!(
        eips.find_existing(&cx("network.nat3_eip"), &eip_desired)
            .await
            .expect("find"),
        None
    );

    // Batched reads; a deleted NAT gateway (still listed as `deleted`) is None.
    let read = nats.read(&[req(&nat2), req(&nat)]).await.expect("read");
    assert_eq!(read, vec![Some(nat2.clone()), Some(nat.clone())]);
    nats.delete(&cx("network.nat2"), &nat2)
        .await
        .expect("delete nat 2");
    let out = ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat2.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(out.nat_gateways()[0].state().map(|s| s.as_str()), Some("deleted"));
    let read = nats
        .read(&[req(&nat), req(&nat2), gone("nat-0123456789abcdef0")])
        .await
        .expect("read");
    assert_eq!(read, vec![Some(nat.clone()), None, None]);
    assert_eq!(
        nats.find_existing(&cx("network.nat2"), &nat2_desired)
            .await
            .expect("find"),
        None
    );
    nats.delete(&cx("network.nat2"), &nat2)
        .await
        .expect("delete nat 2 again");

    eips.delete(&cx("network.nat2_eip"), &eip2)
        .await
        .expect("release 2");
    let read = eips
        .read(&[req(&eip2), req(&eip), gone("eipalloc-0123456789abcdef0")])
        .await
        .expect("read");
    assert_eq!(read, vec![None, Some(eip.clone()), None]);

    // Tag updates in place.
    let nat_desired2 = {
        let mut d = nat_desired.clone();
        d.insert("tags".into(), tags(nat_address, &[("Name", "nat-renamed")]));
        d
    };
    let nat_updated = nats
        .update(
            &cx(nat_address),
            InPlace {
                prior: &nat,
                desired: &nat_desired2,
                changed: &["tags".into()],
            },
        )
        .await
        .expect("update");
    assert_eq!(
        nat_updated.attrs["tags"],
        tags(nat_address, &[("Name", "nat-renamed")])
    );
    let out = ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        tag_map(out.nat_gateways()[0].tags()),
        expected_tags(nat_address, &[("Name", "nat-renamed")])
    );
    let eip_desired2 = attrs(json!({"domain": "vpc", "tags": tags(eip_address, &[])}));
    let eip_updated = eips
        .update(
            &cx(eip_address),
            InPlace {
                prior: &eip,
                desired: &eip_desired2,
                changed: &["tags".into()],
            },
        )
        .await
        .expect("update");
    assert_eq!(eip_updated.attrs["tags"], tags(eip_address, &[]));
    let out = ec2
        .describe_addresses()
        .allocation_ids(&eip.id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        tag_map(out.addresses()[0].tags()),
        expected_tags(eip_address, &[])
    );

    // Delete, idempotently.
    nats.delete(&cx(nat_address), &nat).await.expect("delete nat");
    nats.delete(&cx(nat_address), &nat)
        .await
        .expect("delete nat again");
    assert_eq!(nats.read(&[req(&nat)]).await.expect("read"), vec![None]);
    eips.delete(&cx(eip_address), &eip).await.expect("release");
    eips.delete(&cx(eip_address), &eip).await.expect("release again");
    assert_eq!(eips.read(&[req(&eip)]).await.expect("read"), vec![None]);
    assert_eq!(
        eips.find_existing(&cx(eip_address), &eip_desired)
            .await
            .expect("find"),
        None
    );
}

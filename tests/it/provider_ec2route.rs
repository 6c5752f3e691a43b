//! Route tables, routes, route table associations and security groups
//! against moto. Prerequisites (VPC, subnets, gateways) are made directly
//! with the SDK; effects are checked with an independent SDK client.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, RouteOrigin};
use meshform::provider::aws::route::Route;
use meshform::provider::aws::route_table::RouteTable;
use meshform::provider::aws::route_table_association::RouteTableAssociation;
use meshform::provider::aws::security_group::SecurityGroup;
use meshform::provider::{
    InPlace, Live, OpContext, ProviderError, ReadRequest, ResourceKind, ownership_tags,
};
use meshform::{Attrs, Value};
use serde_json::json;

use crate::support::moto::Moto;

const STACK: &str = "ec2route-test";

fn cx(address: &str) -> OpContext {
    OpContext {
        stack: STACK.to_string(),
        address: address.to_string(),
        token: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

fn attrs(v: Value) -> Attrs {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Desired tags: user tags plus the ownership tags.
fn tags(address: &str, user: &[(&str, &str)]) -> Value {
    let mut t: BTreeMap<String, String> = ownership_tags(STACK, address);
    for (k, v) in user {
        t.insert(k.to_string(), v.to_string());
    }
    serde_json::to_value(t).unwrap()
}

fn req(live: &Live) -> ReadRequest {
    ReadRequest {
        address: String::new(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

fn req_id(id: &str) -> ReadRequest {
    ReadRequest {
        address: String::new(),
        id: id.to_string(),
        attrs: Attrs::new(),
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

async fn vpc(ec2: &aws_sdk_ec2::Client) -> String {
    let out = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    out.vpc().unwrap().vpc_id().unwrap().to_string()
}

async fn subnet(ec2: &aws_sdk_ec2::Client, vpc: &str, cidr: &str) -> String {
    let out = ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block(cidr)
        .send()
        .await
        .unwrap();
    out.subnet().unwrap().subnet_id().unwrap().to_string()
}

async fn igw(ec2: &aws_sdk_ec2::Client, vpc: &str) -> String {
    let out = ec2.create_internet_gateway().send().await.unwrap();
    let id = out
        .internet_gateway()
        .unwrap()
        .internet_gateway_id()
        .unwrap()
        .to_string();
    ec2.attach_internet_gateway()
        .internet_gateway_id(&id)
        .vpc_id(vpc)
        .send()
        .await
        .unwrap();
    id
}

async fn nat(ec2: &aws_sdk_ec2::Client, subnet: &str) -> String {
    let eip = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap();
    let out = ec2
        .create_nat_gateway()
        .subnet_id(subnet)
        .allocation_id(eip.allocation_id().unwrap())
        .send()
        .await
        .unwrap();
    out.nat_gateway().unwrap().nat_gateway_id().unwrap().to_string()
}

async fn sdk_route_table(ec2: &aws_sdk_ec2::Client, vpc: &str) -> String {
    let out = ec2.create_route_table().vpc_id(vpc).send().await.unwrap();
    out.route_table().unwrap().route_table_id().unwrap().to_string()
}

async fn describe_table(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<aws_sdk_ec2::types::RouteTable> {
    let out = ec2
        .describe_route_tables()
        .filters(filter("route-table-id", id))
        .send()
        .await
        .unwrap();
    out.route_tables().first().cloned()
}

/// The (gateway, nat gateway) of the route to `dest` in table `id`.
async fn route_target(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    dest: &str,
) -> Option<(Option<String>, Option<String>)> {
    let table = describe_table(ec2, id).await?;
    let r = table
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some(dest))?;
    assert_eq!(r.origin(), Some(&RouteOrigin::CreateRoute));
    Some((
        r.gateway_id().map(str::to_string),
        r.nat_gateway_id().map(str::to_string),
    ))
}

fn is_invalid(r: Result<Live, ProviderError>) -> bool {
    matches!(r, Err(ProviderError::InvalidAttr { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_tables_and_routes() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let clients = moto.clients().await;
    let tables = RouteTable(clients.clone());
    let routes = Route(clients.clone());

    let vpc = vpc(&ec2).await;
    let public_subnet = subnet(&ec2, &vpc, "10.0.0.0/24").await;
    let igw = igw(&ec2, &vpc).await;
    let nat = nat(&ec2, &public_subnet).await;

    // Route tables: created in the VPC, tagged in the create call.
    let addr = "aws.ec2.route_table.public";
    let desired = attrs(json!({"vpc_id": vpc, "tags": tags(addr, &[("Name", "public")])}));
    let public = tables.create(&cx(addr), &desired).await.unwrap();
    assert!(public.id.starts_with("rtb-"), "{}", public.id);
    assert_eq!(public.attrs["vpc_id"], json!(vpc));
    assert_eq!(public.attrs["tags"], tags(addr, &[("Name", "public")]));
    assert!(!public.attrs["owner_id"].as_str().unwrap().is_empty());
    let seen = describe_table(&ec2, &public.id).await.unwrap();
    assert_eq!(seen.vpc_id(), Some(vpc.as_str()));
    let seen_tags: BTreeMap<_, _> = seen
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(
        serde_json::to_value(seen_tags).unwrap(),
        tags(addr, &[("Name", "public")])
    );

    let private_addr = "aws.ec2.route_table.private";
    let private = tables
        .create(
            &cx(private_addr),
            &attrs(json!({"vpc_id": vpc, "tags": tags(private_addr, &[])})),
        )
        .await
        .unwrap();

    // Batched read, in request order, None for what does not exist.
    let read = tables
        .read(&[req(&private), req_id("rtb-0123456789abcdef0"), req(&public)])
        .await
        .unwrap();
    assert_eq!(read, vec![Some(private.clone()), None, Some(public.clone())]);

    // find_existing by ownership tags.
    let found = tables.find_existing(&cx(addr), &desired).await.unwrap();
    assert_eq!(found.map(|l| l.id), Some(public.id.clone()));
    assert!(
        tables
            .find_existing(&cx("aws.ec2.route_table.other"), &desired)
            .await
            .unwrap()
            .is_none()
    );

    // Tag update in place.
    let retagged = attrs(json!({"vpc_id": vpc, "tags": tags(addr, &[("Name", "public-2"), ("env", "t")])}));
    let updated = tables
        .update(
            &cx(addr),
            InPlace {
                prior: &public,
                desired: &retagged,
                changed: &["tags".to_string()],
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.id, public.id);
    assert_eq!(
        updated.attrs["tags"],
        tags(addr, &[("Name", "public-2"), ("env", "t")])
    );

    // Routes: exactly one target is required.
    let both = attrs(
        json!({"route_table_id": public.id, "destination_cidr_block": "0.0.0.0/0",
        "gateway_id": igw, "nat_gateway_id": nat}),
    );
    assert!(is_invalid(routes.create(&cx("aws.ec2.route.bad"), &both).await));
    let neither = attrs(json!({"route_table_id": public.id, "destination_cidr_block": "0.0.0.0/0"}));
    assert!(is_invalid(
        routes.create(&cx("aws.ec2.route.bad"), &neither).await
    ));

    // Route to the internet gateway.
    let to_igw =
        attrs(json!({"route_table_id": public.id, "destination_cidr_block": "0.0.0.0/0", "gateway_id": igw}));
    let default_public = routes
        .create(&cx("aws.ec2.route.public_default"), &to_igw)
        .await
        .unwrap();
    assert_eq!(default_public.id, format!("{}_0.0.0.0/0", public.id));
    assert_eq!(default_public.attrs, to_igw);
    assert_eq!(
        route_target(&ec2, &public.id, "0.0.0.0/0").await,
        Some((Some(igw.clone()), None))
    );

    // Route to the NAT gateway.
    let to_nat = attrs(
        json!({"route_table_id": private.id, "destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": nat}),
    );
    let default_private = routes
        .create(&cx("aws.ec2.route.private_default"), &to_nat)
        .await
        .unwrap();
    assert_eq!(default_private.attrs, to_nat);
    assert_eq!(
        route_target(&ec2, &private.id, "0.0.0.0/0").await,
        Some((None, Some(nat.clone())))
    );

    // Creating it again fails (RouteAlreadyExists), find_existing sees it.
    assert!(
        routes
            .create(&cx("aws.ec2.route.private_default"), &to_nat)
            .await
            .is_err()
    );
    let found = routes
        .find_existing(&cx("aws.ec2.route.private_default"), &to_nat)
        .await
        .unwrap();
    assert_eq!(found, Some(default_private.clone()));

    // Batched read: by recorded attrs or by id alone; the local route and
    // unknown tables or destinations are None.
    let read = routes
        .read(&[
            req(&default_private),
            req_id(&format!("{}_10.0.0.0/16", public.id)),
            req_id(&default_public.id),
            req_id(&format!("{}_10.9.0.0/16", public.id)),
            req_id("rtb-0123456789abcdef0_0.0.0.0/0"),
        ])
        .await
        .unwrap();
    assert_eq!(
        read,
        vec![
            Some(default_private.clone()),
            None,
            Some(default_public.clone()),
            None,
            None
        ]
    );

    // Target change in place: IGW -> NAT -> IGW.
    let changed = vec!["gateway_id".to_string(), "nat_gateway_id".to_string()];
    let public_to_nat = attrs(
        json!({"route_table_id": public.id, "destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": nat}),
    );
    let moved = routes
        .update(
            &cx("aws.ec2.route.public_default"),
            InPlace {
                prior: &default_public,
                desired: &public_to_nat,
                changed: &changed,
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.id, default_public.id);
    assert_eq!(moved.attrs, public_to_nat);
    assert_eq!(
        route_target(&ec2, &public.id, "0.0.0.0/0").await,
        Some((None, Some(nat.clone())))
    );
    let back = routes
        .update(
            &cx("aws.ec2.route.public_default"),
            InPlace {
                prior: &moved,
                desired: &to_igw,
                changed: &changed,
            },
        )
        .await
        .unwrap();
    assert_eq!(back.attrs, to_igw);
    assert_eq!(
        route_target(&ec2, &public.id, "0.0.0.0/0").await,
        Some((Some(igw.clone()), None))
    );

    // Out-of-band deletion: read says None; delete still succeeds.
    ec2.delete_route()
        .route_table_id(&public.id)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    assert_eq!(routes.read(&[req(&default_public)]).await.unwrap(), vec![None]);
    routes
        .delete(&cx("aws.ec2.route.public_default"), &default_public)
        .await
        .unwrap();

    // Delete, then delete again.
    routes
        .delete(&cx("aws.ec2.route.private_default"), &default_private)
        .await
        .unwrap();
    assert_eq!(route_target(&ec2, &private.id, "0.0.0.0/0").await, None);
    routes
        .delete(&cx("aws.ec2.route.private_default"), &default_private)
        .await
        .unwrap();

    // Route tables: delete is idempotent, read then says None.
    tables.delete(&cx(addr), &public).await.unwrap();
    tables.delete(&cx(addr), &public).await.unwrap();
    tables.delete(&cx(private_addr), &private).await.unwrap();
    assert_eq!(
        tables.read(&[req(&public), req(&private)]).await.unwrap(),
        vec![None, None]
    );
    assert!(describe_table(&ec2, &public.id).await.is_none());
    // Deleting a route of a table that is gone succeeds too.
    routes
        .delete(&cx("aws.ec2.route.private_default"), &default_private)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_table_associations() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let assocs = RouteTableAssociation(moto.clients().await);

    let vpc = vpc(&ec2).await;
    let subnet_a = subnet(&ec2, &vpc, "10.0.1.0/24").await;
    let subnet_b = subnet(&ec2, &vpc, "10.0.2.0/24").await;
    let rtb_1 = sdk_route_table(&ec2, &vpc).await;
    let rtb_2 = sdk_route_table(&ec2, &vpc).await;

    let desired_a = attrs(json!({"route_table_id": rtb_1, "subnet_id": subnet_a}));
    let a = assocs
        .create(&cx("aws.ec2.route_table_association.a"), &desired_a)
        .await
        .unwrap();
    assert!(a.id.starts_with("rtbassoc-"), "{}", a.id);
    assert_eq!(a.attrs, desired_a);
    let table = describe_table(&ec2, &rtb_1).await.unwrap();
    assert!(
        table
            .associations()
            .iter()
            .any(|x| x.route_table_association_id() == Some(a.id.as_str())
                && x.subnet_id() == Some(subnet_a.as_str()))
    );

    let desired_b = attrs(json!({"route_table_id": rtb_1, "subnet_id": subnet_b}));
    let b = assocs
        .create(&cx("aws.ec2.route_table_association.b"), &desired_b)
        .await
        .unwrap();

    // Batched reads in request order. Reading `a` with an unknown id is the
    // case moto's multi-value filter misses (rtb_1 also holds `b`).
    let gone = ReadRequest {
        address: String::new(),
        id: "rtbassoc-0123456789abcdef0".into(),
        attrs: desired_a.clone(),
    };
    assert_eq!(
        assocs.read(&[req(&b), gone.clone(), req(&a)]).await.unwrap(),
        vec![Some(b.clone()), None, Some(a.clone())]
    );
    assert_eq!(
        assocs.read(&[req(&a), gone]).await.unwrap(),
        vec![Some(a.clone()), None]
    );
    assert_eq!(
        assocs.read(&[req_id(&a.id)]).await.unwrap(),
        vec![Some(a.clone())]
    );

    // find_existing: the subnet's association when it is to the desired table.
    assert_eq!(
        assocs.find_existing(&cx("x"), &desired_a).await.unwrap(),
        Some(a.clone())
    );
    let a_to_2 = attrs(json!({"route_table_id": rtb_2, "subnet_id": subnet_a}));
    assert_eq!(assocs.find_existing(&cx("x"), &a_to_2).await.unwrap(), None);

    // A subnet already associated elsewhere is never adopted.
    assert!(
        assocs
            .create(&cx("aws.ec2.route_table_association.a2"), &a_to_2)
            .await
            .is_err()
    );

    // Replace in place: the association gets a new id.
    let moved = assocs
        .update(
            &cx("aws.ec2.route_table_association.a"),
            InPlace {
                prior: &a,
                desired: &a_to_2,
                changed: &["route_table_id".to_string()],
            },
        )
        .await
        .unwrap();
    assert_ne!(moved.id, a.id);
    assert_eq!(moved.attrs, a_to_2);
    let table_2 = describe_table(&ec2, &rtb_2).await.unwrap();
    assert!(
        table_2
            .associations()
            .iter()
            .any(|x| x.route_table_association_id() == Some(moved.id.as_str())
                && x.subnet_id() == Some(subnet_a.as_str()))
    );
    assert_eq!(
        assocs.read(&[req(&a), req(&moved)]).await.unwrap(),
        vec![None, Some(moved.clone())]
    );

    // Delete is idempotent.
    assocs
        .delete(&cx("aws.ec2.route_table_association.a"), &moved)
        .await
        .unwrap();
    assocs
        .delete(&cx("aws.ec2.route_table_association.a"), &moved)
        .await
        .unwrap();
    assert_eq!(
        assocs.read(&[req(&moved), req(&b)]).await.unwrap(),
        vec![None, Some(b.clone())]
    );
    let table_2 = describe_table(&ec2, &rtb_2).await.unwrap();
    assert!(
        table_2
            .associations()
            .iter()
            .all(|x| x.subnet_id() != Some(subnet_a.as_str()))
    );
    assocs
        .delete(&cx("aws.ec2.route_table_association.b"), &b)
        .await
        .unwrap();
    assert!(
        describe_table(&ec2, &rtb_1)
            .await
            .unwrap()
            .associations()
            .iter()
            .all(|x| x.subnet_id().is_none())
    );
}

/// The rules of a described group as sorted (protocol, from, to, cidr, description).
fn described_rules(perms: &[aws_sdk_ec2::types::IpPermission]) -> Vec<(String, i32, i32, String, String)> {
    let mut rules: Vec<_> = perms
        .iter()
        .flat_map(|p| {
            p.ip_ranges().iter().map(move |r| {
                (
                    p.ip_protocol().unwrap_or_default().to_string(),
                    p.from_port().unwrap_or(0),
                    p.to_port().unwrap_or(0),
                    r.cidr_ip().unwrap_or_default().to_string(),
                    r.description().unwrap_or_default().to_string(),
                )
            })
        })
        .collect();
    rules.sort();
    rules
}

async fn describe_group(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<aws_sdk_ec2::types::SecurityGroup> {
    let out = ec2
        .describe_security_groups()
        .filters(filter("group-id", id))
        .send()
        .await
        .unwrap();
    out.security_groups().first().cloned()
}

fn rule(p: &str, from: i32, to: i32, cidr: &str, d: &str) -> (String, i32, i32, String, String) {
    (p.to_string(), from, to, cidr.to_string(), d.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let groups = SecurityGroup(moto.clients().await);
    let vpc = vpc(&ec2).await;

    let addr = "aws.ec2.security_group.web";
    let desired = attrs(json!({
        "name": "web",
        "vpc_id": vpc,
        "tags": tags(addr, &[("Name", "web")]),
        "ingress": [
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"], "description": "https"},
            {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["192.168.0.0/16", "10.0.0.0/8"]},
        ],
        "egress": [
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]},
        ],
    }));
    let web = groups.create(&cx(addr), &desired).await.unwrap();
    assert!(web.id.starts_with("sg-"), "{}", web.id);
    assert_eq!(web.attrs["name"], json!("web"));
    assert_eq!(web.attrs["description"], json!("Managed by meshform"));
    assert_eq!(web.attrs["vpc_id"], json!(vpc));
    assert_eq!(web.attrs["tags"], tags(addr, &[("Name", "web")]));
    assert!(
        web.attrs["arn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("security-group/{}", web.id))
    );
    assert!(!web.attrs["owner_id"].as_str().unwrap().is_empty());
    // Read shape: every key, CIDR blocks sorted, list sorted by JSON text.
    assert_eq!(
        web.attrs["ingress"],
        json!([
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"], "description": "https"},
            {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["10.0.0.0/8", "192.168.0.0/16"], "description": ""},
        ])
    );
    assert_eq!(
        web.attrs["egress"],
        json!([{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"], "description": ""}])
    );
    // Effects seen by an independent client: default egress revoked.
    let seen = describe_group(&ec2, &web.id).await.unwrap();
    assert_eq!(seen.group_name(), Some("web"));
    assert_eq!(seen.vpc_id(), Some(vpc.as_str()));
    assert_eq!(
        described_rules(seen.ip_permissions()),
        vec![
            rule("tcp", 80, 80, "10.0.0.0/8", ""),
            rule("tcp", 80, 80, "192.168.0.0/16", ""),
            rule("tcp", 443, 443, "0.0.0.0/0", "https"),
        ]
    );
    assert_eq!(
        described_rules(seen.ip_permissions_egress()),
        vec![rule("tcp", 443, 443, "0.0.0.0/0", "")]
    );
    assert_eq!(seen.tags().len(), 3);

    // A group without `egress` keeps AWS's default allow-all egress.
    let plain_addr = "aws.ec2.security_group.plain";
    let plain_desired = attrs(
        json!({"name": "plain", "vpc_id": vpc, "description": "plain group",
        "tags": tags(plain_addr, &[])}),
    );
    let plain = groups.create(&cx(plain_addr), &plain_desired).await.unwrap();
    assert_eq!(plain.attrs["description"], json!("plain group"));
    assert_eq!(plain.attrs["ingress"], json!([]));
    assert_eq!(
        plain.attrs["egress"],
        json!([{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"], "description": ""}])
    );

    // Batched read in request order.
    let read = groups
        .read(&[req(&plain), req_id("sg-0123456789abcdef0"), req(&web)])
        .await
        .unwrap();
    assert_eq!(read, vec![Some(plain.clone()), None, Some(web.clone())]);

    // find_existing by ownership tags.
    assert_eq!(
        groups
            .find_existing(&cx(addr), &desired)
            .await
            .unwrap()
            .map(|l| l.id),
        Some(web.id.clone())
    );
    assert_eq!(
        groups
            .find_existing(&cx(plain_addr), &plain_desired)
            .await
            .unwrap()
            .map(|l| l.id),
        Some(plain.id.clone())
    );
    assert!(
        groups
            .find_existing(&cx("aws.ec2.security_group.none"), &desired)
            .await
            .unwrap()
            .is_none()
    );

    // Rule update in place: drop port 80 and a CIDR, add DNS, change a
    // description, allow all egress instead of 443 only.
    let desired2 = attrs(json!({
        "name": "web",
        "vpc_id": vpc,
        "tags": tags(addr, &[("Name", "web")]),
        "ingress": [
            {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"], "description": "TLS"},
            {"protocol": "udp", "from_port": 53, "to_port": 53, "cidr_blocks": ["10.0.0.0/16"], "description": "dns"},
            {"protocol": "icmp", "from_port": -1, "to_port": -1, "cidr_blocks": ["10.0.0.0/16"]},
        ],
        "egress": [{"protocol": "-1", "cidr_blocks": ["0.0.0.0/0"]}],
    }));
    let changed = vec!["ingress".to_string(), "egress".to_string()];
    let web2 = groups
        .update(
            &cx(addr),
            InPlace {
                prior: &web,
                desired: &desired2,
                changed: &changed,
            },
        )
        .await
        .unwrap();
    assert_eq!(web2.id, web.id);
    let seen = describe_group(&ec2, &web.id).await.unwrap();
    assert_eq!(
        described_rules(seen.ip_permissions()),
        vec![
            rule("icmp", -1, -1, "10.0.0.0/16", ""),
            rule("tcp", 443, 443, "0.0.0.0/0", "TLS"),
            rule("udp", 53, 53, "10.0.0.0/16", "dns"),
        ]
    );
    assert_eq!(
        described_rules(seen.ip_permissions_egress()),
        vec![rule("-1", 0, 0, "0.0.0.0/0", "")]
    );
    assert_eq!(
        web2.attrs["egress"],
        json!([{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"], "description": ""}])
    );
    assert_eq!(
        groups.read(&[req(&web2)]).await.unwrap(),
        vec![Some(web2.clone())]
    );

    // Without `egress`, an update leaves egress alone; tags are synced.
    let mut desired3 = desired2.clone();
    desired3.remove("egress");
    desired3.insert("tags".into(), tags(addr, &[("team", "edge")]));
    desired3.insert(
        "ingress".into(),
        json!([{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"], "description": "TLS"}]),
    );
    let changed = vec!["ingress".to_string(), "egress".to_string(), "tags".to_string()];
    let web3 = groups
        .update(
            &cx(addr),
            InPlace {
                prior: &web2,
                desired: &desired3,
                changed: &changed,
            },
        )
        .await
        .unwrap();
    assert_eq!(web3.attrs["tags"], tags(addr, &[("team", "edge")]));
    assert_eq!(web3.attrs["egress"], web2.attrs["egress"]);
    let seen = describe_group(&ec2, &web.id).await.unwrap();
    assert_eq!(
        described_rules(seen.ip_permissions()),
        vec![rule("tcp", 443, 443, "0.0.0.0/0", "TLS")]
    );
    assert_eq!(
        described_rules(seen.ip_permissions_egress()),
        vec![rule("-1", 0, 0, "0.0.0.0/0", "")]
    );

    // Invalid rules are refused before any call.
    let mut bad = desired.clone();
    bad.insert("name".into(), json!("bad"));
    bad.insert(
        "ingress".into(),
        json!([{"protocol": "sctp", "cidr_blocks": ["0.0.0.0/0"]}]),
    );
    assert!(is_invalid(
        groups.create(&cx("aws.ec2.security_group.bad"), &bad).await
    ));
    bad.insert(
        "ingress".into(),
        json!([{"protocol": "tcp", "from_port": 1, "to_port": 2}]),
    );
    assert!(is_invalid(
        groups.create(&cx("aws.ec2.security_group.bad"), &bad).await
    ));
    assert!(
        ec2.describe_security_groups()
            .filters(filter("group-name", "bad"))
            .send()
            .await
            .unwrap()
            .security_groups()
            .is_empty()
    );

    // Delete is idempotent; read then says None.
    groups.delete(&cx(addr), &web3).await.unwrap();
    groups.delete(&cx(addr), &web3).await.unwrap();
    groups.delete(&cx(plain_addr), &plain).await.unwrap();
    assert!(describe_group(&ec2, &web.id).await.is_none());
    assert_eq!(
        groups.read(&[req(&web3), req(&plain)]).await.unwrap(),
        vec![None, None]
    );
}

//! `aws.ec2.network_drain` against moto: the VPC, subnets, load balancers,
//! target groups, network interfaces and security groups a cluster would
//! leave behind are made with independent SDK clients, and effects are read
//! back through them. The kind's delete must delete what carries the
//! cluster's ownership tags, wait for (and, on timeout, name) the load
//! balancers and interfaces it leaves alone, and ignore everything else.
//!
//! moto reports no `amazon-elb` requester, creates no interfaces for load
//! balancers and never removes interfaces by itself, so the tests delete
//! them; it also lets a subnet be deleted while interfaces are still in it
//! (the stranding this kind exists to prevent on AWS, where that fails), and
//! never answers `DependencyViolation` for a security group in use, so the
//! retry of those is shown only for target groups (`ResourceInUse`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum, TargetTypeEnum,
};
use meshform::Attrs;
use meshform::provider::aws::network_drain::NetworkDrain;
use meshform::provider::{InPlace, Live, OpContext, Progress, ProviderError, ReadRequest, ResourceKind};
use serde_json::{Value, json};

use crate::support::moto::{Moto, REGION};

const CLUSTER: &str = "demo";

fn cx() -> OpContext {
    OpContext {
        stack: "drain-test".to_string(),
        address: "cluster.drain".to_string(),
        ..Default::default()
    }
}

/// A context whose progress reports are collected in the returned list.
fn cx_capturing() -> (OpContext, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut cx = cx();
    cx.progress = Progress::new(move |m| sink.lock().unwrap().push(m.to_string()));
    (cx, seen)
}

fn attrs(v: Value) -> Attrs {
    v.as_object().expect("attrs are an object").clone()
}

fn req(live: &Live) -> ReadRequest {
    ReadRequest {
        address: "cluster.drain".into(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

/// A VPC and one subnet in it: (vpc id, subnet id).
async fn network(ec2: &aws_sdk_ec2::Client) -> (String, String) {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.40.0.0/16")
        .send()
        .await
        .expect("create vpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.40.1.0/24")
        .availability_zone(format!("{REGION}a"))
        .send()
        .await
        .expect("create subnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_string();
    (vpc, subnet)
}

/// A network interface in `subnet` with `description` and `tags`.
async fn eni(ec2: &aws_sdk_ec2::Client, subnet: &str, description: &str, tags: &[(&str, &str)]) -> String {
    let mut call = ec2.create_network_interface().subnet_id(subnet);
    if !description.is_empty() {
        call = call.description(description);
    }
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::NetworkInterface);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        call = call.tag_specifications(spec.build());
    }
    call.send()
        .await
        .expect("create network interface")
        .network_interface()
        .and_then(|n| n.network_interface_id())
        .expect("eni id")
        .to_string()
}

async fn delete_eni(ec2: &aws_sdk_ec2::Client, id: &str) {
    ec2.delete_network_interface()
        .network_interface_id(id)
        .send()
        .await
        .expect("delete network interface");
}

/// A second subnet of `vpc`, in the region's second AZ (Elastic Load
/// Balancing v2 needs subnets in two).
async fn second_subnet(ec2: &aws_sdk_ec2::Client, vpc: &str) -> String {
    ec2.create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.40.2.0/24")
        .availability_zone(format!("{REGION}b"))
        .send()
        .await
        .expect("create subnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_string()
}

/// An instance in `subnet` with a second interface tagged `tags` attached
/// to it: (interface id, attachment id, instance id).
async fn attached_eni(
    ec2: &aws_sdk_ec2::Client,
    subnet: &str,
    tags: &[(&str, &str)],
) -> (String, String, String) {
    let instance = ec2
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .send()
        .await
        .expect("run instance")
        .instances()[0]
        .instance_id()
        .expect("instance id")
        .to_string();
    let id = eni(ec2, subnet, "", tags).await;
    let attachment = ec2
        .attach_network_interface()
        .network_interface_id(&id)
        .instance_id(&instance)
        .device_index(1)
        .send()
        .await
        .expect("attach network interface")
        .attachment_id()
        .expect("attachment id")
        .to_string();
    (id, attachment, instance)
}

/// Ids of the network interfaces in `vpc`, read back from moto.
async fn enis_in(ec2: &aws_sdk_ec2::Client, vpc: &str) -> Vec<String> {
    ec2.describe_network_interfaces()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(vpc)
                .build(),
        )
        .send()
        .await
        .expect("describe network interfaces")
        .network_interfaces()
        .iter()
        .filter_map(|e| e.network_interface_id().map(str::to_string))
        .collect()
}

/// A security group in `vpc` named `name` with `tags`.
async fn security_group(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str, tags: &[(&str, &str)]) -> String {
    let mut call = ec2
        .create_security_group()
        .vpc_id(vpc)
        .group_name(name)
        .description(name);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        call = call.tag_specifications(spec.build());
    }
    call.send()
        .await
        .expect("create security group")
        .group_id()
        .expect("group id")
        .to_string()
}

/// The security groups in `vpc`, read back from moto.
async fn groups_in(ec2: &aws_sdk_ec2::Client, vpc: &str) -> Vec<aws_sdk_ec2::types::SecurityGroup> {
    ec2.describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(vpc)
                .build(),
        )
        .send()
        .await
        .expect("describe security groups")
        .security_groups()
        .to_vec()
}

fn v2_tags(tags: &[(&str, &str)]) -> Vec<aws_sdk_elasticloadbalancingv2::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
        })
        .collect()
}

/// An application or network load balancer over `subnets` with `tags`: its ARN.
async fn load_balancer(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    name: &str,
    kind: LoadBalancerTypeEnum,
    subnets: &[&str],
    tags: &[(&str, &str)],
) -> String {
    elbv2
        .create_load_balancer()
        .name(name)
        .r#type(kind)
        .set_subnets(Some(subnets.iter().map(|s| s.to_string()).collect()))
        .set_tags(Some(v2_tags(tags)).filter(|t| !t.is_empty()))
        .send()
        .await
        .expect("create load balancer")
        .load_balancers()[0]
        .load_balancer_arn()
        .expect("load balancer arn")
        .to_string()
}

/// A target group in `vpc` with `tags`: its ARN.
async fn target_group(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    vpc: &str,
    name: &str,
    tags: &[(&str, &str)],
) -> String {
    elbv2
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Tcp)
        .port(30080)
        .vpc_id(vpc)
        .target_type(TargetTypeEnum::Ip)
        .set_tags(Some(v2_tags(tags)).filter(|t| !t.is_empty()))
        .send()
        .await
        .expect("create target group")
        .target_groups()[0]
        .target_group_arn()
        .expect("target group arn")
        .to_string()
}

/// A classic load balancer `name` over `subnets` with `groups` and `tags`.
async fn classic_load_balancer(
    elb: &aws_sdk_elasticloadbalancing::Client,
    name: &str,
    subnets: &[&str],
    groups: &[&str],
    tags: &[(&str, &str)],
) {
    use aws_sdk_elasticloadbalancing::types::{Listener, Tag as ElbTag};
    elb.create_load_balancer()
        .load_balancer_name(name)
        .listeners(
            Listener::builder()
                .protocol("TCP")
                .load_balancer_port(80)
                .instance_port(30080)
                .build()
                .expect("listener"),
        )
        .set_subnets(Some(subnets.iter().map(|s| s.to_string()).collect()))
        .set_security_groups(Some(groups.iter().map(|s| s.to_string()).collect()))
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| ElbTag::builder().key(*k).value(*v).build().expect("tag"))
                .collect(),
        ))
        .send()
        .await
        .expect("create classic load balancer");
}

/// ARNs of the application and network load balancers in `vpc`, read back.
async fn load_balancers_in(elbv2: &aws_sdk_elasticloadbalancingv2::Client, vpc: &str) -> Vec<String> {
    elbv2
        .describe_load_balancers()
        .send()
        .await
        .expect("describe load balancers")
        .load_balancers()
        .iter()
        .filter(|l| l.vpc_id() == Some(vpc))
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .collect()
}

/// Names of the classic load balancers in `vpc`, read back.
async fn classic_load_balancers_in(elb: &aws_sdk_elasticloadbalancing::Client, vpc: &str) -> Vec<String> {
    elb.describe_load_balancers()
        .send()
        .await
        .expect("describe classic load balancers")
        .load_balancer_descriptions()
        .iter()
        .filter(|l| l.vpc_id() == Some(vpc))
        .filter_map(|l| l.load_balancer_name().map(str::to_string))
        .collect()
}

/// ARNs of the target groups in `vpc`, read back.
async fn target_groups_in(elbv2: &aws_sdk_elasticloadbalancingv2::Client, vpc: &str) -> Vec<String> {
    elbv2
        .describe_target_groups()
        .send()
        .await
        .expect("describe target groups")
        .target_groups()
        .iter()
        .filter(|t| t.vpc_id() == Some(vpc))
        .filter_map(|t| t.target_group_arn().map(str::to_string))
        .collect()
}

/// The position of the first report containing `needle`.
fn report_at(reports: &[String], needle: &str) -> usize {
    reports
        .iter()
        .position(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("no report with `{needle}` in {reports:#?}"))
}

/// What a stack with the cluster `demo` leaves in its VPC when its
/// controllers never ran: everything tagged for the cluster.
struct Leftovers {
    /// A network load balancer of the AWS Load Balancer Controller, for the
    /// Service yelb/yelb-ui, with a listener on `target_group`.
    nlb: String,
    target_group: String,
    /// A classic load balancer of the in-tree cloud provider.
    classic: String,
    /// A detached interface.
    eni: String,
    /// The classic load balancer's group (in-tree provider's tag).
    classic_group: String,
    /// A group of the Load Balancer Controller.
    lbc_group: String,
}

async fn leftovers(moto: &Moto, vpc: &str, subnets: &[&str]) -> Leftovers {
    let ec2 = moto.ec2().await;
    let elbv2 = moto.elbv2().await;
    let elb = moto.elb().await;
    let nlb = load_balancer(
        &elbv2,
        "k8s-yelb-yelbui-0a1b2c",
        LoadBalancerTypeEnum::Network,
        subnets,
        &[
            ("elbv2.k8s.aws/cluster", CLUSTER),
            ("service.k8s.aws/stack", "yelb/yelb-ui"),
            ("service.k8s.aws/resource", "LoadBalancer"),
        ],
    )
    .await;
    let target_group = target_group(
        &elbv2,
        vpc,
        "k8s-yelb-yelbui-3d4e5f",
        &[
            ("elbv2.k8s.aws/cluster", CLUSTER),
            ("service.k8s.aws/stack", "yelb/yelb-ui"),
        ],
    )
    .await;
    // The listener keeps the target group in use until the load balancer
    // goes: the drain must delete them in that order.
    elbv2
        .create_listener()
        .load_balancer_arn(&nlb)
        .protocol(ProtocolEnum::Tcp)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&target_group)
                .build(),
        )
        .send()
        .await
        .expect("create listener");
    let classic_group = security_group(
        &ec2,
        vpc,
        "k8s-elb-a1b2c3",
        &[("kubernetes.io/cluster/demo", "owned")],
    )
    .await;
    let classic = "a1b2c3d4e5f6".to_string();
    classic_load_balancer(
        &elb,
        &classic,
        subnets,
        &[&classic_group],
        &[
            ("kubernetes.io/cluster/demo", "owned"),
            ("kubernetes.io/service-name", "yelb/yelb-ui"),
        ],
    )
    .await;
    let eni = eni(&ec2, subnets[0], "", &[("kubernetes.io/cluster/demo", "owned")]).await;
    let lbc_group = security_group(
        &ec2,
        vpc,
        "k8s-traffic-demo-0a1b2c",
        &[("elbv2.k8s.aws/cluster", CLUSTER)],
    )
    .await;
    Leftovers {
        nlb,
        target_group,
        classic,
        eni,
        classic_group,
        lbc_group,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_create_read_delete_waits_for_cluster_interfaces() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let kind = NetworkDrain(clients.clone());
    let (vpc, subnet) = network(&ec2).await;

    // Create: nothing in AWS, the VPC must exist; the default timeout is filled in.
    let live = kind
        .create(&cx(), &attrs(json!({"vpc_id": vpc, "cluster_name": CLUSTER})))
        .await
        .expect("create");
    assert_eq!(live.id, format!("drain:{vpc}:{CLUSTER}"));
    assert_eq!(live.attrs["timeout_seconds"], json!(1200));
    let missing = kind
        .create(
            &cx(),
            &attrs(json!({"vpc_id": "vpc-0123456789abcdef0", "cluster_name": CLUSTER})),
        )
        .await
        .expect_err("create in a missing VPC");
    assert!(
        matches!(&missing, ProviderError::InvalidAttr { attr, .. } if attr == "vpc_id"),
        "{missing:?}"
    );

    // Read, find_existing and update.
    let desired = attrs(json!({"vpc_id": vpc, "cluster_name": CLUSTER, "timeout_seconds": 3}));
    let live = kind
        .update(
            &cx(),
            InPlace {
                prior: &live,
                desired: &desired,
                changed: &["timeout_seconds".to_string()],
            },
        )
        .await
        .expect("update");
    assert_eq!(live.attrs["timeout_seconds"], json!(3));
    let gone_vpc = ReadRequest {
        address: "other".into(),
        id: format!("drain:vpc-0123456789abcdef0:{CLUSTER}"),
        attrs: Attrs::new(),
    };
    let read = kind.read(&[req(&live), gone_vpc]).await.expect("read");
    assert_eq!(read, vec![Some(live.clone()), None]);
    assert_eq!(
        kind.find_existing(&cx(), &desired).await.expect("find"),
        Some(live.clone())
    );

    // Nothing of the cluster in the VPC: delete returns at once.
    let started = Instant::now();
    kind.delete(&cx(), &live)
        .await
        .expect("delete with nothing to wait for");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Interfaces of the cluster (tagged and attached, tagged and detached,
    // and a load balancer's) and others.
    let (tagged, attachment, instance) =
        attached_eni(&ec2, &subnet, &[("kubernetes.io/cluster/demo", "owned")]).await;
    let detached = eni(&ec2, &subnet, "", &[("kubernetes.io/cluster/demo", "owned")]).await;
    let elb = eni(&ec2, &subnet, "ELB test-lb", &[]).await;
    let other_cluster = eni(&ec2, &subnet, "", &[("kubernetes.io/cluster/other", "owned")]).await;
    let plain = eni(&ec2, &subnet, "some instance", &[("Name", "x")]).await;

    let (cx_seen, seen) = cx_capturing();
    let started = Instant::now();
    let err = kind.delete(&cx_seen, &live).await.expect_err("delete times out");
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(
        matches!(err, ProviderError::Timeout { seconds: 3, .. }),
        "{err:?}"
    );
    assert!(text.contains(&format!("{tagged} (attached")), "{text}");
    assert!(
        text.contains(&format!(
            "{elb} (ELB test-lb; not tagged for cluster demo; left alone)"
        )),
        "{text}"
    );
    assert!(text.contains("2 network interfaces of cluster demo"), "{text}");
    assert!(!text.contains(&detached), "{text}");
    assert!(!text.contains(&other_cluster), "{text}");
    assert!(!text.contains(&plain), "{text}");
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    // The detached tagged interface was deleted (and said so); the attached
    // one, the load balancer's and the others are still there.
    let left = enis_in(&ec2, &vpc).await;
    assert!(!left.contains(&detached), "{left:?}");
    for id in [&tagged, &elb, &other_cluster, &plain] {
        assert!(left.contains(id), "{id} kept: {left:?}");
    }
    let reports = seen.lock().unwrap().clone();
    assert_eq!(
        reports[0],
        format!("deleted network interface {detached}"),
        "{reports:?}"
    );
    let waits: Vec<&String> = reports.iter().filter(|r| r.starts_with("waiting")).collect();
    assert!(waits.len() >= 2, "{reports:?}");
    assert!(
        waits.iter().all(
            |r| r.starts_with("waiting for 2 network interfaces of cluster demo")
                && r.contains(&tagged)
                && r.contains(&elb)
        ),
        "{reports:?}"
    );

    // Only the load balancer's interface left: named alone.
    ec2.detach_network_interface()
        .attachment_id(&attachment)
        .send()
        .await
        .expect("detach");
    delete_eni(&ec2, &tagged).await;
    let err = kind.delete(&cx(), &live).await.expect_err("still one left");
    let text = err.to_string();
    assert!(text.contains("1 network interface of cluster demo"), "{text}");
    assert!(text.contains(&elb) && !text.contains(&tagged), "{text}");

    // Once the cluster's interfaces are gone, the others do not hold it up.
    delete_eni(&ec2, &elb).await;
    kind.delete(&cx(), &live).await.expect("delete once drained");

    // The VPC gone: read reports the drain gone, and delete succeeds.
    delete_eni(&ec2, &other_cluster).await;
    delete_eni(&ec2, &plain).await;
    ec2.terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("terminate instance");
    ec2.delete_subnet()
        .subnet_id(&subnet)
        .send()
        .await
        .expect("delete subnet");
    ec2.delete_vpc().vpc_id(&vpc).send().await.expect("delete vpc");
    assert_eq!(kind.read(&[req(&live)]).await.expect("read"), vec![None]);
    assert_eq!(kind.find_existing(&cx(), &desired).await.expect("find"), None);
    kind.delete(&cx(), &live).await.expect("delete with the VPC gone");
}

/// The VPC CNI's interfaces are waited for but never deleted (they go with
/// their nodes); a detached interface with the Load Balancer Controller's
/// tag is deleted; another cluster's are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_tags_of_cni_and_load_balancer_controller_count() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let kind = NetworkDrain(clients.clone());
    let (vpc, subnet) = network(&ec2).await;
    let live = kind
        .create(
            &cx(),
            &attrs(json!({"vpc_id": vpc, "cluster_name": CLUSTER, "timeout_seconds": 0})),
        )
        .await
        .expect("create");

    let cni = eni(&ec2, &subnet, "", &[("cluster.k8s.amazonaws.com/name", CLUSTER)]).await;
    let lbc = eni(&ec2, &subnet, "", &[("elbv2.k8s.aws/cluster", CLUSTER)]).await;
    let cni_other = eni(&ec2, &subnet, "", &[("cluster.k8s.amazonaws.com/name", "other")]).await;
    let err = kind.delete(&cx(), &live).await.expect_err("times out at once");
    let text = err.to_string();
    assert!(text.contains(&format!("{cni} (the VPC CNI's")), "{text}");
    assert!(!text.contains(&lbc), "{text}");
    assert!(!text.contains(&cni_other), "{text}");
    let left = enis_in(&ec2, &vpc).await;
    assert!(
        !left.contains(&lbc),
        "the controller's interface is deleted: {left:?}"
    );
    assert!(left.contains(&cni) && left.contains(&cni_other), "{left:?}");

    delete_eni(&ec2, &cni).await;
    kind.delete(&cx(), &live).await.expect("drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delete_returns_once_interfaces_go_concurrently() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let kind = NetworkDrain(clients.clone());
    let (vpc, subnet) = network(&ec2).await;
    let live = kind
        .create(
            &cx(),
            &attrs(json!({"vpc_id": vpc, "cluster_name": CLUSTER, "timeout_seconds": 20})),
        )
        .await
        .expect("create");
    // A load balancer's interface: waited for, never deleted by the drain.
    let id = eni(&ec2, &subnet, "ELB net/k8s-yelb-yelbui/0a1b2c", &[]).await;

    let remover = {
        let ec2 = ec2.clone();
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            delete_eni(&ec2, &id).await;
        })
    };
    let (cx_seen, seen) = cx_capturing();
    let started = Instant::now();
    kind.delete(&cx_seen, &live)
        .await
        .expect("delete waits, then succeeds");
    let elapsed = started.elapsed();
    remover.await.expect("remover task");
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let reports = seen.lock().unwrap().clone();
    assert!(
        !reports.is_empty()
            && reports
                .iter()
                .all(|r| r.starts_with("waiting") && r.contains(&id)),
        "{reports:?}"
    );
}

/// What a cluster's controllers left (load balancers v2 and classic, a target
/// group in use, a detached interface, security groups, all tagged for the
/// cluster) is deleted in order, each named; a rule of another group
/// admitting a swept group is revoked, the rest of that group kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_sweeps_what_the_cluster_left() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let elbv2 = moto.elbv2().await;
    let elb = moto.elb().await;
    let kind = NetworkDrain(clients.clone());
    let (vpc, subnet) = network(&ec2).await;
    let subnet_b = second_subnet(&ec2, &vpc).await;
    let left = leftovers(&moto, &vpc, &[&subnet, &subnet_b]).await;
    // The nodes' group admits the classic load balancer's group (what the
    // in-tree cloud provider adds) and a CIDR.
    let nodes = security_group(&ec2, &vpc, "nodes", &[]).await;
    ec2.authorize_security_group_ingress()
        .group_id(&nodes)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(30080)
                .to_port(30080)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&left.classic_group).build())
                .build(),
        )
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("10.40.0.0/16").build())
                .build(),
        )
        .send()
        .await
        .expect("authorize");

    let live = kind
        .create(
            &cx(),
            &attrs(json!({"vpc_id": vpc, "cluster_name": CLUSTER, "timeout_seconds": 20})),
        )
        .await
        .expect("create");
    let (cx_seen, seen) = cx_capturing();
    let started = Instant::now();
    kind.delete(&cx_seen, &live).await.expect("sweep succeeds");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Read back: all of it is gone; the nodes' group stays, without the rule.
    assert_eq!(load_balancers_in(&elbv2, &vpc).await, Vec::<String>::new());
    assert_eq!(classic_load_balancers_in(&elb, &vpc).await, Vec::<String>::new());
    assert_eq!(target_groups_in(&elbv2, &vpc).await, Vec::<String>::new());
    assert!(!enis_in(&ec2, &vpc).await.contains(&left.eni));
    let groups = groups_in(&ec2, &vpc).await;
    let ids: Vec<&str> = groups.iter().filter_map(|g| g.group_id()).collect();
    assert!(!ids.contains(&left.classic_group.as_str()), "{ids:?}");
    assert!(!ids.contains(&left.lbc_group.as_str()), "{ids:?}");
    assert!(
        groups.iter().any(|g| g.group_name() == Some("default")),
        "the default group is never deleted: {ids:?}"
    );
    let nodes_group = groups
        .iter()
        .find(|g| g.group_id() == Some(nodes.as_str()))
        .expect("the nodes' group is kept");
    let rules = nodes_group.ip_permissions();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].from_port(), Some(22));
    assert!(rules[0].user_id_group_pairs().is_empty(), "{rules:?}");

    // Each deletion is named, load balancers before target groups before
    // interfaces before groups.
    let reports = seen.lock().unwrap().clone();
    let nlb = report_at(
        &reports,
        &format!("deleted load balancer {} (service yelb/yelb-ui)", left.nlb),
    );
    let classic = report_at(
        &reports,
        &format!(
            "deleted classic load balancer {} (service yelb/yelb-ui)",
            left.classic
        ),
    );
    let tg = report_at(
        &reports,
        &format!(
            "deleted target group {} (service yelb/yelb-ui)",
            left.target_group
        ),
    );
    let eni = report_at(&reports, &format!("deleted network interface {}", left.eni));
    let revoked = report_at(
        &reports,
        &format!(
            "revoked the rules of security group {nodes} that admit security group {}",
            left.classic_group
        ),
    );
    let classic_group = report_at(
        &reports,
        &format!("deleted security group {} (k8s-elb-a1b2c3)", left.classic_group),
    );
    let lbc_group = report_at(
        &reports,
        &format!(
            "deleted security group {} (k8s-traffic-demo-0a1b2c)",
            left.lbc_group
        ),
    );
    assert!(nlb < tg && classic < tg, "{reports:#?}");
    assert!(
        tg < eni && eni < revoked && revoked < classic_group,
        "{reports:#?}"
    );
    assert!(eni < lbc_group, "{reports:#?}");
    assert!(
        !reports
            .iter()
            .any(|r| r.contains(&nodes) && r.starts_with("deleted")),
        "{reports:#?}"
    );

    // A second delete finds nothing and returns at once.
    kind.delete(&cx(), &live).await.expect("nothing left");
}

/// A target group still in use (its load balancer is not the drain's to
/// delete) is retried every round and named in the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_retries_a_target_group_in_use() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let elbv2 = moto.elbv2().await;
    let kind = NetworkDrain(clients.clone());
    let (vpc, subnet) = network(&ec2).await;
    let subnet_b = second_subnet(&ec2, &vpc).await;
    let lb = load_balancer(
        &elbv2,
        "untagged",
        LoadBalancerTypeEnum::Network,
        &[&subnet, &subnet_b],
        &[],
    )
    .await;
    let tg = target_group(&elbv2, &vpc, "k8s-tg", &[("elbv2.k8s.aws/cluster", CLUSTER)]).await;
    elbv2
        .create_listener()
        .load_balancer_arn(&lb)
        .protocol(ProtocolEnum::Tcp)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&tg)
                .build(),
        )
        .send()
        .await
        .expect("create listener");
    let live = kind
        .create(
            &cx(),
            &attrs(json!({"vpc_id": vpc, "cluster_name": CLUSTER, "timeout_seconds": 3})),
        )
        .await
        .expect("create");
    let err = kind.delete(&cx(), &live).await.expect_err("times out");
    let text = err.to_string();
    assert!(
        text.contains(&format!("target group {tg} (in use (ResourceInUse); retrying)")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "load balancer {lb} (not tagged for cluster demo; left alone)"
        )),
        "{text}"
    );
    assert_eq!(target_groups_in(&elbv2, &vpc).await, vec![tg.clone()]);
    assert_eq!(load_balancers_in(&elbv2, &vpc).await, vec![lb.clone()]);

    // Once its load balancer goes, the next delete sweeps it.
    elbv2
        .delete_load_balancer()
        .load_balancer_arn(&lb)
        .send()
        .await
        .expect("delete load balancer");
    kind.delete(&cx(), &live).await.expect("swept");
    assert_eq!(target_groups_in(&elbv2, &vpc).await, Vec::<String>::new());
}

/// Load balancers not tagged for the cluster (untagged, tagged for another
/// cluster, or naming only their Service) and untagged groups are never
/// touched: the drain deletes the cluster's, waits for the rest, and times
/// out naming each one left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_leaves_alone_what_is_not_tagged_for_the_cluster() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let ec2 = moto.ec2().await;
    let elbv2 = moto.elbv2().await;
    let elb = moto.elb().await;
    let kind = NetworkDrain(clients.clone());
    let (vpc, subnet) = network(&ec2).await;
    let subnet_b = second_subnet(&ec2, &vpc).await;
    let subnets = [subnet.as_str(), subnet_b.as_str()];
    let left = leftovers(&moto, &vpc, &subnets).await;

    let untagged = load_balancer(
        &elbv2,
        "untagged",
        LoadBalancerTypeEnum::Application,
        &subnets,
        &[],
    )
    .await;
    let other = load_balancer(
        &elbv2,
        "k8s-other-web-9f8e7d",
        LoadBalancerTypeEnum::Network,
        &subnets,
        &[("elbv2.k8s.aws/cluster", "other")],
    )
    .await;
    let stack_only = load_balancer(
        &elbv2,
        "k8s-yelb-other-1a2b3c",
        LoadBalancerTypeEnum::Network,
        &subnets,
        &[("service.k8s.aws/stack", "yelb/other")],
    )
    .await;
    let other_classic = "f6e5d4c3b2a1".to_string();
    classic_load_balancer(
        &elb,
        &other_classic,
        &subnets,
        &[],
        &[("kubernetes.io/cluster/other", "owned")],
    )
    .await;
    let stack_only_tg = target_group(
        &elbv2,
        &vpc,
        "k8s-yelb-other",
        &[("service.k8s.aws/stack", "yelb/other")],
    )
    .await;
    let plain_group = security_group(&ec2, &vpc, "plain", &[]).await;
    let other_group = security_group(
        &ec2,
        &vpc,
        "k8s-elb-other",
        &[("kubernetes.io/cluster/other", "owned")],
    )
    .await;
    // EKS's cluster security group carries the cluster tag too.
    let eks_group = security_group(
        &ec2,
        &vpc,
        "eks-cluster-sg-demo-123",
        &[
            ("kubernetes.io/cluster/demo", "owned"),
            ("aws:eks:cluster-name", CLUSTER),
        ],
    )
    .await;

    let live = kind
        .create(
            &cx(),
            &attrs(json!({"vpc_id": vpc, "cluster_name": CLUSTER, "timeout_seconds": 3})),
        )
        .await
        .expect("create");
    let (cx_seen, seen) = cx_capturing();
    let started = Instant::now();
    let err = kind.delete(&cx_seen, &live).await.expect_err("times out");
    let elapsed = started.elapsed();
    assert!(
        matches!(err, ProviderError::Timeout { seconds: 3, .. }),
        "{err:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let text = err.to_string();
    let alone = "not tagged for cluster demo; left alone";
    assert!(text.contains("4 resources of cluster demo"), "{text}");
    assert!(
        text.contains(&format!("load balancer {untagged} ({alone})")),
        "{text}"
    );
    assert!(
        text.contains(&format!("load balancer {other} ({alone})")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "load balancer {stack_only} (service yelb/other; {alone})"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("classic load balancer {other_classic} ({alone})")),
        "{text}"
    );
    for swept in [
        &left.nlb,
        &left.classic,
        &left.target_group,
        &left.eni,
        &left.lbc_group,
    ] {
        assert!(
            !text.contains(swept.as_str()),
            "{swept} is not named as remaining: {text}"
        );
    }
    for ignored in [&stack_only_tg, &plain_group, &other_group, &eks_group] {
        assert!(!text.contains(ignored.as_str()), "{ignored}: {text}");
    }

    // Read back: the cluster's are gone, the rest untouched.
    let mut lbs = load_balancers_in(&elbv2, &vpc).await;
    lbs.sort();
    let mut expected = vec![untagged.clone(), other.clone(), stack_only.clone()];
    expected.sort();
    assert_eq!(lbs, expected);
    assert_eq!(
        classic_load_balancers_in(&elb, &vpc).await,
        vec![other_classic.clone()]
    );
    assert_eq!(target_groups_in(&elbv2, &vpc).await, vec![stack_only_tg.clone()]);
    assert!(!enis_in(&ec2, &vpc).await.contains(&left.eni));
    let groups: Vec<String> = groups_in(&ec2, &vpc)
        .await
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    for kept in [&plain_group, &other_group, &eks_group] {
        assert!(groups.contains(kept), "{kept} kept: {groups:?}");
    }
    for gone in [&left.classic_group, &left.lbc_group] {
        assert!(!groups.contains(gone), "{gone} deleted: {groups:?}");
    }
    let reports = seen.lock().unwrap().clone();
    for never in [
        &untagged,
        &other,
        &stack_only,
        &other_classic,
        &plain_group,
        &other_group,
        &eks_group,
    ] {
        assert!(
            !reports
                .iter()
                .any(|r| r.starts_with("deleted") && r.contains(never.as_str())),
            "{never}: {reports:#?}"
        );
    }
    report_at(&reports, &format!("deleted load balancer {}", left.nlb));
}

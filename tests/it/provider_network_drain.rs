//! `aws.ec2.network_drain` against moto: the VPC, subnet and the network
//! interfaces a cluster would leave behind are made with an independent SDK
//! client; the kind's delete must wait for (and, on timeout, name) the
//! cluster's interfaces and ignore everything else.
//!
//! moto reports no `amazon-elb` requester and never removes interfaces by
//! itself, so the tests delete them; it also lets a subnet be deleted while
//! interfaces are still in it (the stranding this kind exists to prevent on
//! AWS, where that fails).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use meshform::Attrs;
use meshform::provider::aws::network_drain::NetworkDrain;
use meshform::provider::{Live, OpContext, Progress, ProviderError, ReadRequest, ResourceKind};
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
        .update(&cx(), &live, &desired, &["timeout_seconds".to_string()])
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

    // Interfaces of the cluster (tagged, and a load balancer's) and others.
    let tagged = eni(&ec2, &subnet, "", &[("kubernetes.io/cluster/demo", "owned")]).await;
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
    assert!(text.contains(&tagged), "{text}");
    assert!(text.contains(&format!("{elb} (ELB test-lb)")), "{text}");
    assert!(text.contains("2 network interfaces of cluster demo"), "{text}");
    assert!(!text.contains(&other_cluster), "{text}");
    assert!(!text.contains(&plain), "{text}");
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let reports = seen.lock().unwrap().clone();
    assert!(reports.len() >= 2, "{reports:?}");
    assert!(
        reports.iter().all(
            |r| r.starts_with("waiting for 2 network interfaces of cluster demo")
                && r.contains(&tagged)
                && r.contains(&elb)
        ),
        "{reports:?}"
    );

    // Only the load balancer's interface left: named alone.
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
    assert!(text.contains(&cni) && text.contains(&lbc), "{text}");
    assert!(!text.contains(&cni_other), "{text}");

    delete_eni(&ec2, &cni).await;
    delete_eni(&ec2, &lbc).await;
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
    let id = eni(&ec2, &subnet, "", &[("kubernetes.io/cluster/demo", "owned")]).await;

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
        !reports.is_empty() && reports.iter().all(|r| r.contains(&id)),
        "{reports:?}"
    );
}

//! `aws.eks.cluster` and `aws.eks.node_group` against moto: each test starts
//! its own server, makes the prerequisites (VPC, subnets in two AZs, IAM
//! roles) with independent SDK clients, drives the kinds, and reads the
//! effects back with an independent EKS client. IAM propagation retries go
//! through a fault proxy in front of moto, since moto never produces them.
//!
//! moto creates clusters and node groups ACTIVE at once and deletes them at
//! once, so the waits here return on their first poll.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshform::Attrs;
use meshform::provider::aws::AwsClients;
use meshform::provider::aws::eks_cluster::EksCluster;
use meshform::provider::aws::eks_node_group::EksNodeGroup;
use meshform::provider::{
    InPlace, Live, OpContext, Progress, ReadRequest, ResourceKind, Schema, ownership_tags,
};
use serde_json::{Value, json};

use crate::support::fault_proxy::FaultProxy;
use crate::support::moto::{Moto, REGION};

const STACK: &str = "eks-test";

fn cx(address: &str) -> OpContext {
    OpContext {
        stack: STACK.to_string(),
        address: address.to_string(),
        token: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

/// A context whose progress reports are collected in the returned list.
fn cx_capturing(address: &str) -> (OpContext, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut cx = cx(address);
    cx.progress = Progress::new(move |m| sink.lock().unwrap().push(m.to_string()));
    (cx, seen)
}

/// Desired `tags` as the engine passes them: user tags plus ownership tags.
fn tags(address: &str, user: &[(&str, &str)]) -> Value {
    let mut all = ownership_tags(STACK, address);
    all.extend(user.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    json!(all)
}

fn expected_tags(address: &str, user: &[(&str, &str)]) -> HashMap<String, String> {
    serde_json::from_value(tags(address, user)).unwrap()
}

fn attrs(v: Value) -> Attrs {
    v.as_object().expect("attrs are an object").clone()
}

fn req(live: &Live) -> ReadRequest {
    ReadRequest {
        address: "x".into(),
        id: live.id.clone(),
        attrs: live.attrs.clone(),
    }
}

fn str_attr<'a>(live: &'a Live, name: &str) -> &'a str {
    live.attrs
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{name} missing in {live:?}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Prerequisites made outside meshform.
struct Fixture {
    moto: Moto,
    clients: Arc<AwsClients>,
    eks: aws_sdk_eks::Client,
    subnets: Vec<String>,
    cluster_role: String,
    node_role: String,
}

async fn role(iam: &aws_sdk_iam::Client, name: &str, service: &str) -> String {
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    });
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string()
}

async fn fixture() -> Fixture {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let iam = moto.iam().await;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.30.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut subnets = Vec::new();
    for (az, cidr) in [("a", "10.30.1.0/24"), ("b", "10.30.2.0/24")] {
        let out = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone(format!("{REGION}{az}"))
            .send()
            .await
            .unwrap();
        subnets.push(out.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    let cluster_role = role(&iam, "eks-cluster", "eks.amazonaws.com").await;
    let node_role = role(&iam, "eks-node", "ec2.amazonaws.com").await;
    Fixture {
        clients: moto.clients().await,
        eks: moto.eks().await,
        moto,
        subnets,
        cluster_role,
        node_role,
    }
}

impl Fixture {
    fn cluster_desired(&self, name: &str, address: &str) -> Attrs {
        // Subnets given in reverse order: a set, read back sorted.
        let mut subnets = self.subnets.clone();
        subnets.reverse();
        attrs(json!({
            "name": name,
            "role_arn": self.cluster_role,
            "subnet_ids": subnets,
            "endpoint_public_access": true,
            "endpoint_private_access": false,
            "tags": tags(address, &[("team", "platform")]),
        }))
    }

    fn node_group_desired(&self, cluster: &str, name: &str, address: &str) -> Attrs {
        attrs(json!({
            "cluster_name": cluster,
            "name": name,
            "node_role_arn": self.node_role,
            "subnet_ids": self.subnets,
            "instance_types": ["t3.large"],
            "capacity_type": "ON_DEMAND",
            "ami_type": "AL2023_x86_64_STANDARD",
            "disk_size": 20,
            "desired_size": 3,
            "min_size": 1,
            "max_size": 5,
            "labels": {"role": "workers"},
            "taints": [{"key": "dedicated", "value": "infra", "effect": "NO_SCHEDULE"}],
            "tags": tags(address, &[]),
        }))
    }

    async fn describe_cluster(&self, name: &str) -> Option<aws_sdk_eks::types::Cluster> {
        match self.eks.describe_cluster().name(name).send().await {
            Ok(out) => out.cluster().cloned(),
            Err(e) => {
                let code = e.as_service_error().map(|s| s.is_resource_not_found_exception());
                assert_eq!(code, Some(true), "{e:?}");
                None
            }
        }
    }

    async fn describe_node_group(&self, cluster: &str, name: &str) -> Option<aws_sdk_eks::types::Nodegroup> {
        match self
            .eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(out) => out.nodegroup().cloned(),
            Err(e) => {
                let code = e.as_service_error().map(|s| s.is_resource_not_found_exception());
                assert_eq!(code, Some(true), "{e:?}");
                None
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_create_read_update_delete() {
    let f = fixture().await;
    let kind = EksCluster(f.clients.clone());
    let address = "eks.cluster";
    let desired = f.cluster_desired("main", address);
    let (cx1, seen) = cx_capturing(address);

    let live = kind.create(&cx1, &desired).await.expect("create");
    assert_eq!(live.id, "main");
    assert!(
        str_attr(&live, "arn").starts_with("arn:aws:eks:us-west-2:"),
        "{live:?}"
    );
    assert!(str_attr(&live, "endpoint").starts_with("https://"), "{live:?}");
    assert!(!str_attr(&live, "certificate_authority_data").is_empty());
    assert!(
        str_attr(&live, "oidc_issuer").starts_with("https://oidc.eks."),
        "{live:?}"
    );
    // moto makes no cluster security group (the schema says so): this
    // fails, and the doc needs changing, once it does.
    assert_eq!(str_attr(&live, "cluster_security_group_id"), "", "{live:?}");
    assert_eq!(str_attr(&live, "status"), "ACTIVE");
    assert!(!str_attr(&live, "platform_version").is_empty());
    assert!(!str_attr(&live, "version").is_empty());
    assert_eq!(live.attrs["subnet_ids"], json!(sorted(f.subnets.clone())));
    assert_eq!(live.attrs["role_arn"], json!(f.cluster_role));
    assert_eq!(live.attrs["endpoint_public_access"], json!(true));
    assert_eq!(live.attrs["endpoint_private_access"], json!(false));
    assert_eq!(live.attrs["tags"], tags(address, &[("team", "platform")]));
    // moto's cluster is ACTIVE at once: nothing to report while waiting.
    assert!(seen.lock().unwrap().is_empty(), "{seen:?}");

    // Independent read-back.
    let c = f.describe_cluster("main").await.expect("cluster exists");
    assert_eq!(c.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(c.role_arn(), Some(f.cluster_role.as_str()));
    let vpc = c.resources_vpc_config().expect("vpc config");
    assert_eq!(sorted(vpc.subnet_ids().to_vec()), sorted(f.subnets.clone()));
    assert_eq!(c.tags(), Some(&expected_tags(address, &[("team", "platform")])));
    assert_eq!(c.arn(), Some(str_attr(&live, "arn")));

    // Read: the same view; None for an unknown cluster.
    let unknown = ReadRequest {
        address: "gone".into(),
        id: "no-such-cluster".into(),
        attrs: Attrs::new(),
    };
    let read = kind.read(&[req(&live), unknown]).await.expect("read");
    assert_eq!(read, vec![Some(live.clone()), None]);

    // Tags in place: one added, one removed.
    let mut desired2 = desired.clone();
    desired2.insert("tags".into(), tags(address, &[("env", "test")]));
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &live,
                desired: &desired2,
                changed: &["tags".into()],
            },
        )
        .await
        .expect("update tags");
    assert_eq!(updated.attrs["tags"], tags(address, &[("env", "test")]));
    let c = f.describe_cluster("main").await.unwrap();
    assert_eq!(c.tags(), Some(&expected_tags(address, &[("env", "test")])));

    // Endpoint access in place (UpdateClusterConfig).
    let mut desired3 = desired2.clone();
    desired3.insert("endpoint_private_access".into(), json!(true));
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &updated,
                desired: &desired3,
                changed: &["endpoint_private_access".into()],
            },
        )
        .await
        .expect("update endpoint access");
    assert_eq!(updated.attrs["endpoint_private_access"], json!(true));
    assert_eq!(updated.attrs["endpoint_public_access"], json!(true));
    // moto quirk: its UpdateClusterConfig replaces the whole VPC config with
    // the request's, so the subnets read back empty from here on (AWS keeps
    // them); they are not checked after this point.
    let c = f.describe_cluster("main").await.unwrap();
    let vpc = c.resources_vpc_config().unwrap();
    assert!(vpc.endpoint_private_access());
    assert!(vpc.endpoint_public_access());

    // Version: a downgrade is refused before any call; an upgrade goes to
    // UpdateClusterVersion, which moto does not implement, and the error
    // says what was attempted.
    let from = str_attr(&live, "version").to_string();
    let mut down = desired3.clone();
    down.insert("version".into(), json!("1.0"));
    let err = kind
        .update(
            &cx(address),
            InPlace {
                prior: &updated,
                desired: &down,
                changed: &["version".into()],
            },
        )
        .await
        .expect_err("downgrade");
    assert!(err.to_string().contains("cannot downgrade"), "{err}");
    let (major, minor) = from.split_once('.').unwrap();
    let next = format!("{major}.{}", minor.parse::<u32>().unwrap() + 1);
    let mut up = desired3.clone();
    up.insert("version".into(), json!(next));
    let err = kind
        .update(
            &cx(address),
            InPlace {
                prior: &updated,
                desired: &up,
                changed: &["version".into()],
            },
        )
        .await
        .expect_err("moto has no UpdateClusterVersion");
    let msg = err.to_string();
    assert!(msg.contains("UpdateClusterVersion"), "{msg}");
    assert!(msg.contains("HTTP 404 without an EKS error"), "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot upgrade EKS cluster main from Kubernetes {from} to {next}"
        )),
        "{msg}"
    );

    // A force-new attribute is not changed in place: the schema says so, and
    // the engine replaces the cluster rather than asking `update` (the
    // engine's own test checks that it refuses such an update).
    assert!(kind.def().attr("role_arn").is_some_and(|a| a.force_new));

    // Delete, then read gives None and a second delete is a no-op.
    kind.delete(&cx(address), &updated).await.expect("delete");
    assert!(f.describe_cluster("main").await.is_none());
    assert_eq!(kind.read(&[req(&live)]).await.expect("read"), vec![None]);
    kind.delete(&cx(address), &updated).await.expect("delete again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_group_create_update_delete() {
    // Tags of a node group are not updated here: moto's TagResource and
    // UntagResource only know clusters (they answer ResourceNotFoundException
    // for a node group ARN).
    let f = fixture().await;
    let clusters = EksCluster(f.clients.clone());
    let kind = EksNodeGroup(f.clients.clone());
    let cluster = clusters
        .create(&cx("eks.cluster"), &f.cluster_desired("c1", "eks.cluster"))
        .await
        .expect("create cluster");

    let address = "eks.workers";
    let desired = f.node_group_desired("c1", "workers", address);
    let live = kind
        .create(&cx(address), &desired)
        .await
        .expect("create node group");
    assert_eq!(live.id, "c1:workers");
    assert!(
        str_attr(&live, "arn").starts_with("arn:aws:eks:us-west-2:"),
        "{live:?}"
    );
    assert_eq!(str_attr(&live, "status"), "ACTIVE");
    assert_eq!(live.attrs["desired_size"], json!(3));
    assert_eq!(live.attrs["min_size"], json!(1));
    assert_eq!(live.attrs["max_size"], json!(5));
    assert_eq!(live.attrs["disk_size"], json!(20));
    assert_eq!(live.attrs["instance_types"], json!(["t3.large"]));
    assert_eq!(live.attrs["ami_type"], json!("AL2023_x86_64_STANDARD"));
    assert_eq!(live.attrs["capacity_type"], json!("ON_DEMAND"));
    assert_eq!(live.attrs["labels"], json!({"role": "workers"}));
    assert_eq!(
        live.attrs["taints"],
        json!([{"key": "dedicated", "value": "infra", "effect": "NO_SCHEDULE"}])
    );
    assert_eq!(live.attrs["tags"], tags(address, &[]));

    // Independent read-back.
    let n = f
        .describe_node_group("c1", "workers")
        .await
        .expect("node group exists");
    assert_eq!(n.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(n.instance_types(), ["t3.large".to_string()]);
    let scaling = n.scaling_config().unwrap();
    assert_eq!(
        (scaling.desired_size(), scaling.min_size(), scaling.max_size()),
        (Some(3), Some(1), Some(5))
    );
    assert_eq!(
        n.labels().and_then(|l| l.get("role")).map(String::as_str),
        Some("workers")
    );
    assert_eq!(sorted(n.subnets().to_vec()), sorted(f.subnets.clone()));
    assert_eq!(n.node_role(), Some(f.node_role.as_str()));
    assert_eq!(n.tags(), Some(&expected_tags(address, &[])));
    assert_eq!(n.disk_size(), Some(20));

    // Desired size 3 → 4 in place.
    let mut desired2 = desired.clone();
    desired2.insert("desired_size".into(), json!(4));
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &live,
                desired: &desired2,
                changed: &["desired_size".into()],
            },
        )
        .await
        .expect("scale");
    assert_eq!(updated.attrs["desired_size"], json!(4));
    let n = f.describe_node_group("c1", "workers").await.unwrap();
    assert_eq!(n.scaling_config().and_then(|s| s.desired_size()), Some(4));
    assert_eq!(n.scaling_config().and_then(|s| s.max_size()), Some(5));

    // Labels and taints (and scaling again) in one update.
    let mut desired3 = desired2.clone();
    desired3.insert("labels".into(), json!({"role": "batch", "tier": "spot"}));
    desired3.insert(
        "taints".into(),
        json!([{"key": "spot", "value": "", "effect": "PREFER_NO_SCHEDULE"}]),
    );
    desired3.insert("min_size".into(), json!(2));
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &updated,
                desired: &desired3,
                changed: &["labels".into(), "taints".into(), "min_size".into()],
            },
        )
        .await
        .expect("labels and taints");
    assert_eq!(updated.attrs["labels"], json!({"role": "batch", "tier": "spot"}));
    assert_eq!(
        updated.attrs["taints"],
        json!([{"key": "spot", "value": "", "effect": "PREFER_NO_SCHEDULE"}])
    );
    assert_eq!(updated.attrs["min_size"], json!(2));
    let n = f.describe_node_group("c1", "workers").await.unwrap();
    let labels: BTreeMap<_, _> = n.labels().unwrap().clone().into_iter().collect();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("role".to_string(), "batch".to_string()),
            ("tier".into(), "spot".into())
        ])
    );
    let taints: Vec<_> = n
        .taints()
        .iter()
        .map(|t| (t.key().unwrap(), t.effect().unwrap().as_str()))
        .collect();
    assert_eq!(taints, vec![("spot", "PREFER_NO_SCHEDULE")]);
    assert_eq!(n.scaling_config().and_then(|s| s.min_size()), Some(2));

    // Labels removed altogether.
    let mut desired4 = desired3.clone();
    desired4.insert("labels".into(), json!({}));
    let updated = kind
        .update(
            &cx(address),
            InPlace {
                prior: &updated,
                desired: &desired4,
                changed: &["labels".into()],
            },
        )
        .await
        .expect("remove labels");
    assert_eq!(updated.attrs["labels"], json!({}));

    // Bad scaling is refused before any call.
    let mut bad = desired4.clone();
    bad.insert("desired_size".into(), json!(9));
    let err = kind
        .update(
            &cx(address),
            InPlace {
                prior: &updated,
                desired: &bad,
                changed: &["desired_size".into()],
            },
        )
        .await
        .expect_err("desired above max");
    assert!(err.to_string().contains("outside"), "{err}");

    // The cluster cannot be deleted while it has a node group.
    let err = clusters
        .delete(&cx("eks.cluster"), &cluster)
        .await
        .expect_err("cluster has a node group");
    let msg = err.to_string();
    assert!(msg.contains("still has node groups: workers"), "{msg}");
    assert!(f.describe_cluster("c1").await.is_some());

    // Node group first, then the cluster.
    kind.delete(&cx(address), &updated)
        .await
        .expect("delete node group");
    assert!(f.describe_node_group("c1", "workers").await.is_none());
    assert_eq!(kind.read(&[req(&live)]).await.expect("read"), vec![None]);
    kind.delete(&cx(address), &updated)
        .await
        .expect("delete node group again");
    clusters
        .delete(&cx("eks.cluster"), &cluster)
        .await
        .expect("delete cluster");
    assert!(f.describe_cluster("c1").await.is_none());
    // A node group whose cluster is gone reads as gone too.
    assert_eq!(kind.read(&[req(&live)]).await.expect("read"), vec![None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_is_none_after_out_of_band_delete() {
    let f = fixture().await;
    let clusters = EksCluster(f.clients.clone());
    let groups = EksNodeGroup(f.clients.clone());
    let c = clusters
        .create(&cx("eks.cluster"), &f.cluster_desired("oob", "eks.cluster"))
        .await
        .unwrap();
    let n = groups
        .create(&cx("eks.ng"), &f.node_group_desired("oob", "ng", "eks.ng"))
        .await
        .unwrap();
    assert_eq!(groups.read(&[req(&n)]).await.unwrap(), vec![Some(n.clone())]);

    f.eks
        .delete_nodegroup()
        .cluster_name("oob")
        .nodegroup_name("ng")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.read(&[req(&n)]).await.unwrap(), vec![None]);
    assert_eq!(clusters.read(&[req(&c)]).await.unwrap(), vec![Some(c.clone())]);
    f.eks.delete_cluster().name("oob").send().await.unwrap();
    assert_eq!(clusters.read(&[req(&c)]).await.unwrap(), vec![None]);
    // Deleting what is already gone succeeds.
    groups.delete(&cx("eks.ng"), &n).await.unwrap();
    clusters.delete(&cx("eks.cluster"), &c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_names_are_adopted_only_when_ours() {
    let f = fixture().await;
    let clusters = EksCluster(f.clients.clone());
    let groups = EksNodeGroup(f.clients.clone());

    // A cluster of another stack, and one without ownership tags.
    let foreign_tags = HashMap::from([
        ("meshform:stack".to_string(), "other-stack".to_string()),
        ("meshform:address".to_string(), "their.cluster".to_string()),
    ]);
    let vpc = aws_sdk_eks::types::VpcConfigRequest::builder()
        .set_subnet_ids(Some(f.subnets.clone()))
        .build();
    f.eks
        .create_cluster()
        .name("taken")
        .role_arn(&f.cluster_role)
        .resources_vpc_config(vpc.clone())
        .set_tags(Some(foreign_tags))
        .send()
        .await
        .unwrap();
    f.eks
        .create_cluster()
        .name("untagged")
        .role_arn(&f.cluster_role)
        .resources_vpc_config(vpc)
        .send()
        .await
        .unwrap();

    let address = "eks.cluster";
    let err = clusters
        .create(&cx(address), &f.cluster_desired("taken", address))
        .await
        .expect_err("a foreign cluster is not adopted");
    let msg = err.to_string();
    assert!(msg.contains("EKS cluster named taken already exists"), "{msg}");
    assert!(
        msg.contains("\"other-stack\"") && msg.contains("\"their.cluster\""),
        "{msg}"
    );
    let err = clusters
        .create(&cx(address), &f.cluster_desired("untagged", address))
        .await
        .expect_err("an untagged cluster is not adopted");
    assert!(err.to_string().contains("carries no meshform:stack"), "{err}");
    // Neither is found as ours.
    for name in ["taken", "untagged"] {
        let found = clusters
            .find_existing(&cx(address), &f.cluster_desired(name, address))
            .await
            .unwrap();
        assert!(found.is_none(), "{found:?}");
    }
    // Nothing was changed on them.
    let c = f.describe_cluster("taken").await.unwrap();
    assert_eq!(
        c.tags().and_then(|t| t.get("meshform:stack")).map(String::as_str),
        Some("other-stack")
    );

    // A create retried with the same token (moto: ResourceInUseException)
    // adopts the cluster the first attempt made.
    let ours = cx(address);
    let desired = f.cluster_desired("mine", address);
    let first = clusters.create(&ours, &desired).await.expect("create");
    let again = clusters
        .create(&ours, &desired)
        .await
        .expect("retried create adopts");
    assert_eq!(again, first);
    // So does a create with a new token, once the tags say it is ours.
    let adopted = clusters.create(&cx(address), &desired).await.expect("adopt");
    assert_eq!(adopted.attrs["arn"], first.attrs["arn"]);
    let found = clusters.find_existing(&cx(address), &desired).await.unwrap();
    assert_eq!(found, Some(first.clone()));
    // Under another address it is not ours.
    let other = cx("eks.other");
    assert!(clusters.find_existing(&other, &desired).await.unwrap().is_none());
    let err = clusters
        .create(&other, &desired)
        .await
        .expect_err("other address");
    assert!(err.to_string().contains("\"eks.cluster\""), "{err}");

    // Node groups: the same rules.
    let ng_address = "eks.ng";
    let ng_cx = cx(ng_address);
    let ng_desired = f.node_group_desired("mine", "ng", ng_address);
    let ng = groups
        .create(&ng_cx, &ng_desired)
        .await
        .expect("create node group");
    let ng_again = groups
        .create(&ng_cx, &ng_desired)
        .await
        .expect("retried create adopts");
    assert_eq!(ng_again, ng);
    assert_eq!(
        groups.find_existing(&cx(ng_address), &ng_desired).await.unwrap(),
        Some(ng.clone())
    );
    let err = groups
        .create(&cx("eks.ng2"), &ng_desired)
        .await
        .expect_err("a node group of another address");
    let msg = err.to_string();
    assert!(
        msg.contains("EKS node group named ng already exists in cluster mine"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("\"{STACK}\"")) && msg.contains("\"eks.ng\""),
        "{msg}"
    );
    assert!(
        groups
            .find_existing(&cx("eks.ng2"), &ng_desired)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_propagation_errors_are_retried() {
    let f = fixture().await;
    // The first two CreateCluster calls fail as if the role were too new.
    let proxy = FaultProxy::start(f.moto.port, "POST", "/clusters", 2);
    let clients = proxy.clients().await;
    let clusters = EksCluster(clients.clone());
    let address = "eks.cluster";
    let (cx1, seen) = cx_capturing(address);
    let started = Instant::now();
    let live = clusters
        .create(&cx1, &f.cluster_desired("late-role", address))
        .await
        .expect("create after retries");
    assert_eq!(proxy.matched(), 3);
    assert_eq!(str_attr(&live, "status"), "ACTIVE");
    // Two pauses: 2s, then 4s.
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("create EKS cluster late-role"), "{seen:?}");
    assert!(seen[0].contains("IAM") && seen[0].contains("retry 1"), "{seen:?}");
    assert!(seen[0].contains(&f.cluster_role), "{seen:?}");
    assert!(seen[1].contains("retry 2"), "{seen:?}");
    assert!(f.describe_cluster("late-role").await.is_some());

    // Node groups too (CreateNodegroup is POST /clusters/<name>/node-groups).
    let proxy = FaultProxy::start(f.moto.port, "POST", "/clusters/late-role/node-groups", 1);
    let groups = EksNodeGroup(proxy.clients().await);
    let (cx2, seen) = cx_capturing("eks.ng");
    groups
        .create(&cx2, &f.node_group_desired("late-role", "ng", "eks.ng"))
        .await
        .expect("create node group after a retry");
    assert_eq!(proxy.matched(), 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains(&f.node_role), "{seen:?}");
    assert!(f.describe_node_group("late-role", "ng").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_propagation_retries_give_up_with_the_aws_message() {
    let f = fixture().await;
    let proxy = FaultProxy::start(f.moto.port, "POST", "/clusters", 1000);
    let clusters = EksCluster(proxy.clients().await);
    let address = "eks.cluster";
    let (cx1, seen) = cx_capturing(address);
    let started = Instant::now();
    let err = clusters
        .create_with_iam_deadline(&cx1, &f.cluster_desired("never", address), Duration::from_secs(5))
        .await
        .expect_err("the role never becomes usable");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(30),
        "{elapsed:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("CreateCluster: InvalidParameterException: Role with arn: "),
        "{msg}"
    );
    assert!(msg.contains(&f.cluster_role), "{msg}");
    assert!(msg.contains("could not be assumed"), "{msg}");
    assert_eq!(err.code(), Some("InvalidParameterException"));
    // Attempts at 0s, 2s and 5s (the last pause cut short by the deadline).
    assert_eq!(proxy.matched(), 3);
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert!(f.describe_cluster("never").await.is_none());
}

//! The full walkthrough stack (baseline included, plus IAM roles, the EKS
//! cluster and the node group) against moto: apply, read back through the
//! SDK, in-place scaling, a replacement plan, and the destroy order.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::support::cli::{Workdir, expect_code, meshform, stdout};
use crate::support::inventory::{FULL_STACK, Inventory, WalkthroughExtras};
use crate::support::moto::{Moto, project_root};
use crate::support::walkthrough::{Walkthrough, assert_cluster_emptied};

const CLUSTER: &str = "appmesh-getting-started-eks";
const NODE_GROUP: &str = "appmesh-cloudmap-ng";

fn full_stack() -> PathBuf {
    project_root().join("stacks/appmesh-getting-started.toml")
}

fn aws_managed(name: &str) -> String {
    format!("arn:aws:iam::aws:policy/{name}")
}

async fn attached(moto: &Moto, role: &str) -> BTreeSet<String> {
    let iam = moto.iam().await;
    let out = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    out.attached_policies()
        .iter()
        .map(|p| p.policy_arn().unwrap().to_string())
        .collect()
}

/// The JSON plan's resources that change: (address, action).
fn changes(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "no_op")
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stack_applies_scales_in_place_plans_replacement_and_destroys_in_order() {
    // The full stack also carries the in-cluster layer: it runs against the
    // fake API server and the real helm (in_cluster.rs tests that layer).
    let w = Walkthrough::start("eks-stack");
    let moto = &w.moto;
    let stack = w.stack();
    let stack = stack.to_str().unwrap();
    let run = |args: &[&str]| w.meshform(args);

    expect_code(run(&["apply", stack, "--auto-approve"]), 0);

    // Baseline and EKS from one apply, read back through the SDK.
    let inventory = Inventory::read_stack(moto, FULL_STACK).await;
    inventory.assert_baseline(moto).await;
    let ids = inventory.subnet_ids();
    let all_subnets: BTreeSet<String> = ids.values().cloned().collect();
    let private: BTreeSet<String> = [ids["10.192.20.0/24"].clone(), ids["10.192.21.0/24"].clone()].into();

    let iam = moto.iam().await;
    let cluster_role = iam
        .get_role()
        .role_name(format!("{CLUSTER}-cluster"))
        .send()
        .await
        .unwrap();
    let cluster_role_arn = cluster_role.role().unwrap().arn().to_string();
    let node_role = iam
        .get_role()
        .role_name(format!("{CLUSTER}-nodes"))
        .send()
        .await
        .unwrap();
    let node_role_arn = node_role.role().unwrap().arn().to_string();

    let eks = moto.eks().await;
    let cluster = eks.describe_cluster().name(CLUSTER).send().await.unwrap();
    let cluster = cluster.cluster().unwrap();
    assert_eq!(cluster.status(), Some(&aws_sdk_eks::types::ClusterStatus::Active));
    assert_eq!(cluster.role_arn(), Some(cluster_role_arn.as_str()));
    let vpc_config = cluster.resources_vpc_config().unwrap();
    let cluster_subnets: BTreeSet<String> = vpc_config.subnet_ids().iter().cloned().collect();
    assert_eq!(cluster_subnets, all_subnets, "the cluster spans the four subnets");

    let ng = eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name(NODE_GROUP)
        .send()
        .await
        .unwrap();
    let ng = ng.nodegroup().unwrap();
    assert_eq!(ng.instance_types(), ["t3.large".to_string()]);
    assert_eq!(ng.scaling_config().unwrap().desired_size(), Some(3));
    assert_eq!(
        ng.labels().unwrap().get("role").map(String::as_str),
        Some("workers")
    );
    let ng_subnets: BTreeSet<String> = ng.subnets().iter().cloned().collect();
    assert_eq!(ng_subnets, private, "nodes only in the private subnets");
    assert_eq!(ng.node_role(), Some(node_role_arn.as_str()));

    // Each role has exactly the policies the inventory lists.
    assert_eq!(
        attached(moto, &format!("{CLUSTER}-cluster")).await,
        [aws_managed("AmazonEKSClusterPolicy")].into()
    );
    let sd_policy = inventory.policies[0].arn().unwrap().to_string();
    let policies = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    let external_dns = policies
        .policies()
        .iter()
        .find(|p| p.policy_name() == Some(&format!("{CLUSTER}-external-dns")))
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let mut expected: BTreeSet<String> = [
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
        "ElasticLoadBalancingFullAccess",
        "AWSAppMeshFullAccess",
        "AWSXRayDaemonWriteAccess",
        "CloudWatchAgentServerPolicy",
    ]
    .iter()
    .map(|n| aws_managed(n))
    .collect();
    expected.insert(sd_policy);
    expected.insert(external_dns);
    assert_eq!(attached(moto, &format!("{CLUSTER}-nodes")).await, expected);

    // Outputs name the cluster and node group.
    let out = expect_code(run(&["output", stack, "--json"]), 0);
    let outputs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(outputs["cluster_name"], CLUSTER);
    assert_eq!(outputs["node_group_name"], NODE_GROUP);
    assert_eq!(outputs["cluster_endpoint"], cluster.endpoint().unwrap());

    // Nothing to do right after apply.
    expect_code(run(&["plan", stack, "--detailed-exitcode"]), 0);

    // Desired size 4: an in-place update of the node group only.
    let plan = expect_code(
        run(&[
            "plan",
            stack,
            "--json",
            "--detailed-exitcode",
            "--var",
            "node_desired=4",
        ]),
        2,
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(changes(&plan), [("node_group".to_string(), "update".to_string())]);
    let ng_change = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "node_group")
        .unwrap();
    let fields: Vec<&str> = ng_change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["desired_size"]);
    assert_eq!(ng_change["changes"][0]["before"], 3);
    assert_eq!(ng_change["changes"][0]["after"], 4);
    expect_code(
        run(&["apply", stack, "--auto-approve", "--var", "node_desired=4"]),
        0,
    );
    let ng = eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name(NODE_GROUP)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ng.nodegroup().unwrap().scaling_config().unwrap().desired_size(),
        Some(4)
    );

    // A Kubernetes version change is an in-place upgrade of the cluster
    // (moto has no UpdateClusterVersion, so only the plan is checked).
    let plan = expect_code(
        run(&[
            "plan",
            stack,
            "--json",
            "--detailed-exitcode",
            "--var",
            "node_desired=4",
            "--var",
            "kubernetes_version=1.34",
        ]),
        2,
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(changes(&plan), [("cluster".to_string(), "update".to_string())]);
    let cluster_change = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "cluster")
        .unwrap();
    assert_eq!(cluster_change["changes"][0]["name"], "version");
    assert_eq!(cluster_change["changes"][0]["after"], "1.34");

    // Another instance type cannot change in place: the plan replaces the
    // node group and names the attribute.
    let plan = expect_code(
        run(&[
            "plan",
            stack,
            "--json",
            "--detailed-exitcode",
            "--var",
            "node_desired=4",
            "--var",
            "node_instance_type=m5.large",
        ]),
        2,
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(
        changes(&plan),
        [("node_group".to_string(), "replace".to_string())]
    );
    let ng_change = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "node_group")
        .unwrap();
    assert_eq!(
        ng_change["replaced_because"],
        serde_json::json!(["instance_types"])
    );
    let human = expect_code(
        run(&[
            "plan",
            stack,
            "--var",
            "node_desired=4",
            "--var",
            "node_instance_type=m5.large",
        ]),
        0,
    );
    assert!(
        stdout(&human).contains("-/+ node_group (aws.eks.node_group)"),
        "{}",
        stdout(&human)
    );
    assert!(
        stdout(&human).contains("instance_types cannot change in place"),
        "{}",
        stdout(&human)
    );

    // Destroy: node group gone before the cluster delete starts; cluster
    // gone before its role and the subnets are deleted.
    let out = expect_code(
        run(&["destroy", stack, "--auto-approve", "--var", "node_desired=4"]),
        0,
    );
    let events = String::from_utf8_lossy(&out.stderr).into_owned();
    let at = |needle: &str| {
        events
            .lines()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` event in:\n{events}"))
    };
    assert!(at("node_group: deleted") < at("cluster: deleting..."), "{events}");
    for later in [
        "cluster_role: deleting...",
        "public_subnet_1: deleting...",
        "private_subnet_2: deleting...",
    ] {
        assert!(at("cluster: deleted") < at(later), "{later}\n{events}");
    }
    assert!(
        at("node_group: deleted") < at("node_role: deleting..."),
        "{events}"
    );

    Inventory::read_stack(moto, FULL_STACK).await.assert_empty();
    // Everything beyond the network too: cluster, node group, both roles,
    // both policies, the repository; and the in-cluster objects.
    WalkthroughExtras::read(moto).await.assert_empty();
    assert_cluster_emptied(&w);
    let clusters = eks.list_clusters().send().await.unwrap();
    assert!(
        clusters.clusters().is_empty(),
        "clusters left: {:?}",
        clusters.clusters()
    );
    let roles = iam.list_roles().send().await.unwrap();
    let ours: Vec<&str> = roles
        .roles()
        .iter()
        .map(|r| r.role_name())
        .filter(|n| n.starts_with(CLUSTER))
        .collect();
    assert!(ours.is_empty(), "roles left: {ours:?}");
}

#[test]
fn baseline_still_stands_alone_and_the_full_stack_validates() {
    let dir = Workdir::new("compose");
    let full = full_stack();
    // helm.release needs a helm program on PATH: without one, validation says so.
    let out = expect_code(
        {
            let mut cmd = meshform(&dir.path, None, &["validate", full.to_str().unwrap()]);
            cmd.env("PATH", "/usr/bin:/bin").env_remove("MESHFORM_HELM");
            cmd
        },
        1,
    );
    assert!(
        crate::support::cli::stderr(&out).contains("the `helm` program is not on PATH"),
        "{}",
        crate::support::cli::stderr(&out)
    );
    let helm = crate::support::real_helm::RealHelm::install(crate::support::kube_tools::Tool::Helm4);
    let out = expect_code(
        {
            let mut cmd = meshform(&dir.path, None, &["validate", full.to_str().unwrap()]);
            cmd.env("PATH", format!("{}:/usr/bin:/bin", helm.bin_dir().display()));
            cmd
        },
        0,
    );
    assert!(
        stdout(&out).contains("stack `appmesh-getting-started` is valid (35 resources"),
        "{}",
        stdout(&out)
    );
    let base = project_root().join("stacks/baseline.toml");
    let out = expect_code(
        meshform(&dir.path, None, &["validate", base.to_str().unwrap()]),
        0,
    );
    assert!(stdout(&out).contains("(23 resources"), "{}", stdout(&out));
}

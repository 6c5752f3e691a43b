//! `stacks/appmesh-cross-cluster.toml`: one App Mesh across two EKS
//! clusters with Cloud Map discovery. AWS is moto; each cluster is its own
//! fake API server (testsupport/fake-kube), reached through
//! `MESHFORM_KUBE_SERVER=<colorapp cluster>=<url>,<front cluster>=<url>`;
//! helm is the real Helm 4 installing the appmesh-controller chart fixture
//! in both. Nothing runs in the fakes: no controller creates Cloud Map
//! services or App Mesh objects, so the test checks what the stack itself
//! makes. moto's EKS gives no cluster security group: the copied stack
//! names groups of its own in their place (`dapr::stand_in_cluster_groups`).
//! Cloud Map does not return a namespace's VPC: the create request a
//! recording proxy saw shows it.

use std::time::Duration;

use serde_json::Value;

use crate::dapr::stand_in_cluster_groups;
use crate::support::cli::{expect_code, stderr, stdout};
use crate::support::fault_proxy::{FaultPlan, FaultProxy};
use crate::support::inventory::Inventory;
use crate::support::walkthrough::Walkthrough;
use fake_kube::FakeKube;

const APPMESH_REPO: &str = "https://aws.github.io/eks-charts";
const STACK: &str = "appmesh-cross-cluster";
const PROJECT: &str = "howto-k8s-cross-cluster";
const COLORAPP_CLUSTER: &str = "howto-k8s-cross-cluster-colorapp";
const FRONT_CLUSTER: &str = "howto-k8s-cross-cluster-front";
const MESH: &str = "appmesh.k8s.aws/v1beta2";

/// `meshform <args>` with each cluster's calls sent to its own fake.
fn run(w: &Walkthrough, front: &FakeKube, proxy: &FaultProxy, args: &[&str]) -> std::process::Command {
    let mut cmd = w.meshform(args);
    cmd.envs(proxy.env());
    cmd.env(
        "MESHFORM_KUBE_SERVER",
        format!(
            "{COLORAPP_CLUSTER}={},{FRONT_CLUSTER}={}",
            w.kube.url(),
            front.url()
        ),
    );
    cmd
}

/// Names of the objects of `plural` in `kube`, as `namespace/name`.
fn names(kube: &FakeKube, plural: &str) -> Vec<String> {
    let mut out: Vec<String> = kube
        .objects(plural)
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

fn router_weights(kube: &FakeKube) -> Vec<(String, i64)> {
    let router = kube
        .object(MESH, "virtualrouters", Some(PROJECT), "colorapp-router")
        .expect("colorapp's router");
    router["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["virtualNodeRef"]["name"].as_str().unwrap().to_string(),
                t["weight"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The mesh's namespace (with its labels), the Mesh and the controller
/// release are in `kube`.
fn assert_mesh_layer(w: &Walkthrough, kube: &FakeKube, which: &str) {
    let ns = kube
        .object("v1", "namespaces", None, PROJECT)
        .unwrap_or_else(|| panic!("{which}: namespace {PROJECT}"));
    assert_eq!(ns["metadata"]["labels"]["mesh"], PROJECT, "{which}");
    assert_eq!(
        ns["metadata"]["labels"]["appmesh.k8s.aws/sidecarInjectorWebhook"], "enabled",
        "{which}"
    );
    let mesh = kube
        .object(MESH, "meshes", None, PROJECT)
        .unwrap_or_else(|| panic!("{which}: Mesh"));
    assert_eq!(mesh["spec"]["namespaceSelector"]["matchLabels"]["mesh"], PROJECT);
    let kubeconfig = w.dir.path.join(format!("{which}.kubeconfig"));
    std::fs::write(&kubeconfig, kube.kubeconfig()).unwrap();
    let meta = w.helm.json(
        &kubeconfig,
        &["get", "metadata", "appmesh-controller", "-n", "appmesh-system"],
    );
    assert_eq!(meta["status"], "deployed", "{which}");
    let values = w.helm.json(
        &kubeconfig,
        &["get", "values", "appmesh-controller", "-n", "appmesh-system"],
    );
    assert_eq!(values["region"], "us-west-2", "{which}");
    assert_eq!(values["accountId"], "123456789012", "{which}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_one_mesh_apply_and_tear_down() {
    let w = Walkthrough::start_stack(
        "cross-cluster",
        "appmesh-cross-cluster.toml",
        &["appmesh-controller"],
        APPMESH_REPO,
    );
    let front = FakeKube::start();
    for kube in [&w.kube, &front] {
        kube.set_auto_complete_deployments(true);
        kube.set_auto_complete_load_balancers(true);
        kube.set_crd_establish_delay(Duration::from_millis(200));
    }
    stand_in_cluster_groups(&w, &["cluster", "front_cluster"]);
    // A recording pass-through in front of moto.
    let proxy = FaultProxy::with_plan(w.moto.port, FaultPlan::new());
    let stack = w.stack();
    let stack = stack.to_str().unwrap();

    expect_code(run(&w, &front, &proxy, &["apply", stack, "--auto-approve"]), 0);

    // AWS: one VPC, two clusters on the same subnets.
    let inv = Inventory::read_stack(&w.moto, STACK).await;
    assert_eq!(inv.vpcs.len(), 1);
    let vpc = inv.vpcs[0].vpc_id().unwrap().to_string();
    let eks = w.moto.eks().await;
    let mut subnets = Vec::new();
    for name in [COLORAPP_CLUSTER, FRONT_CLUSTER] {
        let c = eks.describe_cluster().name(name).send().await.unwrap();
        let mut ids: Vec<String> = c
            .cluster()
            .and_then(|c| c.resources_vpc_config())
            .map(|v| v.subnet_ids().to_vec())
            .unwrap_or_default();
        ids.sort();
        assert_eq!(ids.len(), 4, "{name}");
        subnets.push(ids);
    }
    assert_eq!(subnets[0], subnets[1], "the front cluster reuses the subnets");

    // The Cloud Map namespace on the VPC.
    let sd = w.moto.servicediscovery().await;
    let namespaces = sd.list_namespaces().send().await.unwrap();
    let ns: Vec<_> = namespaces
        .namespaces()
        .iter()
        .filter(|n| n.name() == Some("howto-k8s-cross-cluster.pvt.aws.local"))
        .collect();
    assert_eq!(ns.len(), 1, "{namespaces:?}");
    // Cloud Map does not say a namespace's VPC: the create request did.
    let creates = proxy.calls("CreatePrivateDnsNamespace");
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].json_field("Vpc").as_deref(), Some(vpc.as_str()));

    // Two repositories.
    let ecr = w.moto.ecr().await;
    let mut repos: Vec<(String, String)> = ecr
        .describe_repositories()
        .send()
        .await
        .unwrap()
        .repositories()
        .iter()
        .map(|r| {
            (
                r.repository_name().unwrap().to_string(),
                r.registry_id().unwrap().to_string(),
            )
        })
        .collect();
    repos.sort();
    assert_eq!(
        repos.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        [
            "howto-k8s-cross-cluster/colorapp",
            "howto-k8s-cross-cluster/feapp"
        ]
    );
    let account = repos[0].1.clone();

    // The rule: 8080 into colorapp's (stand-in cluster) group from front's.
    let ec2 = w.moto.ec2().await;
    let group = |name: &'static str| {
        let ec2 = ec2.clone();
        async move {
            ec2.describe_security_groups()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("group-name")
                        .values(name)
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .security_groups()
                .first()
                .and_then(|g| g.group_id())
                .map(str::to_string)
        }
    };
    let colorapp_sg = group("cluster_group_stand_in").await.expect("colorapp's group");
    let front_sg = group("front_cluster_group_stand_in")
        .await
        .expect("front's group");
    let rules = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(&colorapp_sg)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ingress: Vec<_> = rules
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() == Some(false))
        .map(|r| {
            (
                r.ip_protocol().unwrap_or_default().to_string(),
                r.from_port(),
                r.to_port(),
                r.referenced_group_info()
                    .and_then(|g| g.group_id())
                    .map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        ingress,
        vec![("tcp".to_string(), Some(8080), Some(8080), Some(front_sg.clone()))]
    );

    // Both in-cluster layers, each in its own cluster.
    assert_mesh_layer(&w, &w.kube, "colorapp");
    assert_mesh_layer(&w, &front, "front");
    assert_eq!(
        names(&w.kube, "virtualnodes"),
        [
            format!("{PROJECT}/colorapp-blue"),
            format!("{PROJECT}/colorapp-red")
        ]
    );
    assert_eq!(names(&front, "virtualnodes"), [format!("{PROJECT}/front")]);
    assert!(names(&front, "virtualrouters").is_empty());
    for color in ["blue", "red"] {
        let node = w
            .kube
            .object(MESH, "virtualnodes", Some(PROJECT), &format!("colorapp-{color}"))
            .unwrap();
        let cloud_map = &node["spec"]["serviceDiscovery"]["awsCloudMap"];
        assert_eq!(
            cloud_map["namespaceName"],
            "howto-k8s-cross-cluster.pvt.aws.local"
        );
        assert_eq!(cloud_map["serviceName"], "colorapp");
        assert_eq!(cloud_map["attributes"][0]["value"], color);
        let d = w
            .kube
            .object(
                "apps/v1",
                "deployments",
                Some(PROJECT),
                &format!("colorapp-{color}"),
            )
            .unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("{account}.dkr.ecr.us-west-2.amazonaws.com/howto-k8s-cross-cluster/colorapp:latest")
        );
    }
    assert_eq!(
        router_weights(&w.kube),
        [("colorapp-blue".to_string(), 1), ("colorapp-red".to_string(), 1)]
    );
    let vs = w
        .kube
        .object(MESH, "virtualservices", Some(PROJECT), "colorapp")
        .expect("colorapp's virtual service");
    let aws_name = vs["spec"]["awsName"].as_str().unwrap().to_string();
    assert_eq!(aws_name, "colorapp.howto-k8s-cross-cluster.svc.cluster.local");

    // front's backend: colorapp's virtual service by its ARN, computed.
    let node = front
        .object(MESH, "virtualnodes", Some(PROJECT), "front")
        .expect("front's virtual node");
    let expected_arn =
        format!("arn:aws:appmesh:us-west-2:{account}:mesh/{PROJECT}/virtualService/{aws_name}");
    assert_eq!(
        node["spec"]["backends"][0]["virtualService"]["virtualServiceARN"],
        Value::from(expected_arn.clone())
    );
    assert_eq!(
        node["spec"]["serviceDiscovery"]["awsCloudMap"]["attributes"],
        serde_json::json!([])
    );
    let out = expect_code(
        run(
            &w,
            &front,
            &proxy,
            &["output", stack, "colorapp_virtual_service_arn"],
        ),
        0,
    );
    assert_eq!(stdout(&out).trim(), expected_arn);
    let svc = front
        .object("v1", "services", Some(PROJECT), "front")
        .expect("front's Service");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert!(
        front
            .object("v1", "services", Some(PROJECT), "colorapp")
            .is_some()
    );
    assert!(w.kube.object("v1", "services", Some(PROJECT), "front").is_none());

    // Applied is applied; the split is a variable.
    expect_code(
        run(&w, &front, &proxy, &["plan", stack, "--detailed-exitcode"]),
        0,
    );
    expect_code(
        run(
            &w,
            &front,
            &proxy,
            &["apply", stack, "--auto-approve", "--var", "red_weight=0"],
        ),
        0,
    );
    assert_eq!(
        router_weights(&w.kube),
        [("colorapp-blue".to_string(), 1), ("colorapp-red".to_string(), 0)]
    );

    // Destroy leaves nothing in either cluster or in moto, in the
    // walkthrough's order: the load balancer first, the apps and mesh
    // objects, the controllers, then Cloud Map and the rule.
    let out = expect_code(
        run(
            &w,
            &front,
            &proxy,
            &["destroy", stack, "--auto-approve", "--var", "red_weight=0"],
        ),
        0,
    );
    let events = stderr(&out);
    let line_of = |needle: &str| {
        events
            .lines()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{events}"))
    };
    for (first, then) in [
        ("front_service", "front_app"),
        ("front_node", "colorapp_route"),
        ("colorapp_nodes", "colorapp_mesh"),
        ("front_mesh", "front_appmesh_controller"),
        ("colorapp_mesh", "colorapp_appmesh_controller"),
        ("colorapp_appmesh_controller", "cloud_map_namespace"),
        ("front_appmesh_controller", "cloud_map_namespace"),
        ("front_appmesh_controller", "front_to_colorapp"),
        ("front_to_colorapp", "front_cluster"),
    ] {
        assert!(
            line_of(&format!("{first}: deleted")) < line_of(&format!("{then}: deleting...")),
            "{first} before {then}:\n{events}"
        );
    }
    for (which, kube) in [("colorapp", &w.kube), ("front", &front)] {
        for plural in [
            "deployments",
            "meshes",
            "virtualnodes",
            "virtualrouters",
            "virtualservices",
        ] {
            assert!(names(kube, plural).is_empty(), "{which}: {plural} left");
        }
        let services: Vec<String> = names(kube, "services")
            .into_iter()
            .filter(|s| s != "default/kubernetes")
            .collect();
        assert!(services.is_empty(), "{which}: Services left: {services:?}");
        for ns in [PROJECT, "appmesh-system"] {
            assert!(
                kube.object("v1", "namespaces", None, ns).is_none(),
                "{which}: namespace {ns} left"
            );
        }
    }
    Inventory::read_stack(&w.moto, STACK).await.assert_empty();
    assert!(eks.list_clusters().send().await.unwrap().clusters().is_empty());
    let left = sd.list_namespaces().send().await.unwrap();
    assert!(left.namespaces().is_empty(), "{left:?}");
    assert!(
        ecr.describe_repositories()
            .send()
            .await
            .unwrap()
            .repositories()
            .is_empty()
    );
    for name in ["cluster_group_stand_in", "front_cluster_group_stand_in"] {
        assert_eq!(group(name).await, None, "security group {name} left");
    }
}

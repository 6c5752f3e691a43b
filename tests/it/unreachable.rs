//! Plan and destroy when the cluster cannot be reached: the AWS side of the
//! walkthrough stack must still be torn down completely (nothing stranded
//! that keeps costing money), and the in-cluster objects that went with the
//! cluster are dropped from state with a warning naming them.
//!
//! AWS is moto; the cluster is the fake API server (a fake, not
//! Kubernetes), made unreachable by pointing meshform at a closed port, or
//! never reachable at all (moto's EKS endpoint leads nowhere).

use crate::support::cli::{expect_code, stderr, stdout};
use crate::support::inventory::{FULL_STACK, Inventory, WalkthroughExtras};
use crate::support::walkthrough::Walkthrough;

/// An address nothing listens on: connections are refused at once.
const DEAD_SERVER: &str = "http://127.0.0.1:9";

fn state(w: &Walkthrough) -> serde_json::Value {
    let text = std::fs::read_to_string(w.dir.state_file(FULL_STACK)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// State tracks nothing any more: no resource, no interrupted create.
fn assert_state_empty(w: &Walkthrough) {
    let s = state(w);
    assert!(
        s["resources"].as_object().unwrap().is_empty(),
        "{}",
        s["resources"]
    );
    assert!(
        s["pending"].as_object().is_none_or(|p| p.is_empty()),
        "{}",
        s["pending"]
    );
}

/// The addresses of the in-cluster resources of the walkthrough stack.
fn in_cluster(state: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = ["resources", "pending"]
        .iter()
        .flat_map(|k| state[k].as_object().cloned().unwrap_or_default())
        .filter(|(_, r)| {
            r["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("kube.") || t.starts_with("helm."))
        })
        .map(|(a, _)| a)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_with_the_cluster_unreachable_removes_every_aws_resource() {
    let w = Walkthrough::start("unreachable");
    let stack = w.stack();
    let stack = stack.to_str().unwrap();
    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);
    WalkthroughExtras::read(&w.moto).await.assert_present();
    let objects = in_cluster(&state(&w));
    assert!(
        objects.len() >= 5,
        "the in-cluster layer is in state: {objects:?}"
    );
    let requests_before = w.kube.requests().len();

    // The cluster stops answering. Planning still works, from what state
    // recorded, and says which resources it could not refresh.
    let mut plan = w.meshform(&["plan", stack, "--detailed-exitcode"]);
    plan.env("MESHFORM_KUBE_SERVER", DEAD_SERVER);
    let out = expect_code(plan, 0);
    for address in &objects {
        assert!(
            stdout(&out).contains(&format!("Warning: {address} could not be refreshed")),
            "{address}:\n{}",
            stdout(&out)
        );
    }

    let mut destroy = w.meshform(&["destroy", stack, "--auto-approve"]);
    destroy.env("MESHFORM_KUBE_SERVER", DEAD_SERVER);
    let out = expect_code(destroy, 0);
    let (printed, events) = (stdout(&out), stderr(&out));
    assert!(
        printed.contains(&format!(
            "Warning: {} resources were dropped from state without a delete call",
            objects.len()
        )),
        "{printed}\n{events}"
    );
    for address in &objects {
        assert!(
            printed.contains(&format!("  {address} (in cluster)")),
            "{address}:\n{printed}"
        );
    }

    // Read back: nothing of the stack is left in AWS.
    Inventory::read_stack(&w.moto, FULL_STACK).await.assert_empty();
    WalkthroughExtras::read(&w.moto).await.assert_empty();
    assert_state_empty(&w);
    // And nothing reached the cluster: its objects are all still there (on
    // a real cluster they would have gone with it).
    assert_eq!(w.kube.requests().len(), requests_before);
    assert!(!w.kube.objects("deployments").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_after_in_cluster_creates_failed_on_an_unreachable_cluster() {
    // Never reachable: without the test override, meshform connects to the
    // endpoint and CA moto gave the cluster, which lead nowhere. The AWS
    // part is made; the in-cluster creates fail, as they must, and leave
    // interrupted creates that cannot be looked up.
    let w = Walkthrough::start("never-reachable");
    let stack = w.stack();
    let stack = stack.to_str().unwrap();
    let mut apply = w.meshform(&["apply", stack, "--auto-approve"]);
    apply.env_remove("MESHFORM_KUBE_SERVER");
    let out = expect_code(apply, 1);
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    WalkthroughExtras::read(&w.moto).await.assert_present();
    let pending = in_cluster(&state(&w));
    assert!(!pending.is_empty(), "failed in-cluster creates stay pending");

    let mut destroy = w.meshform(&["destroy", stack, "--auto-approve"]);
    destroy.env_remove("MESHFORM_KUBE_SERVER");
    let out = expect_code(destroy, 0);
    let printed = stdout(&out);
    for address in &pending {
        assert!(
            printed.contains(&format!("  {address} (in cluster)")),
            "{address}:\n{printed}"
        );
    }
    Inventory::read_stack(&w.moto, FULL_STACK).await.assert_empty();
    WalkthroughExtras::read(&w.moto).await.assert_empty();
    assert_state_empty(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_deleted_outside_meshform_takes_its_objects_with_it() {
    let w = Walkthrough::start("cluster-gone");
    let stack = w.stack();
    let stack = stack.to_str().unwrap();
    expect_code(w.meshform(&["apply", stack, "--auto-approve"]), 0);
    let objects = in_cluster(&state(&w));

    // Someone deletes the node group and the cluster by hand; its API
    // server is gone with it.
    let eks = w.moto.eks().await;
    let cluster = crate::support::inventory::WALKTHROUGH_CLUSTER;
    for ng in eks
        .list_nodegroups()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap()
        .nodegroups()
    {
        eks.delete_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(ng)
            .send()
            .await
            .unwrap();
    }
    eks.delete_cluster().name(cluster).send().await.unwrap();

    // The plan makes them all again, the in-cluster objects included.
    let mut plan = w.meshform(&["plan", stack, "--json", "--detailed-exitcode"]);
    plan.env("MESHFORM_KUBE_SERVER", DEAD_SERVER);
    let out = expect_code(plan, 2);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let action = |address: &str| {
        plan["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == address)
            .map(|r| r["action"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(action("cluster"), "create");
    for address in &objects {
        assert_eq!(action(address), "create", "{address}");
    }

    // Destroy forgets them without trying the dead cluster, and removes
    // everything else.
    let mut destroy = w.meshform(&["destroy", stack, "--auto-approve"]);
    destroy.env("MESHFORM_KUBE_SERVER", DEAD_SERVER);
    let out = expect_code(destroy, 0);
    assert!(
        stderr(&out).contains("no longer exists, and this went with it"),
        "{}",
        stderr(&out)
    );
    Inventory::read_stack(&w.moto, FULL_STACK).await.assert_empty();
    WalkthroughExtras::read(&w.moto).await.assert_empty();
    assert_state_empty(&w);
}

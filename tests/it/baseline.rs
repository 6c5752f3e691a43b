//! The walkthrough's baseline stack against moto: apply, read back through
//! the SDK, plan again, outputs, destroy.

use std::os::unix::fs::PermissionsExt;

use crate::support::cli::{Workdir, baseline_stack, expect_code, meshform, stdout};
use crate::support::inventory::{Inventory, STACK};
use crate::support::moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_builds_the_inventory_then_plan_is_empty_and_destroy_leaves_nothing() {
    let moto = Moto::start();
    let dir = Workdir::new("baseline");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();

    expect_code(meshform(&dir.path, Some(&moto), &["validate", stack]), 0);
    let plan = expect_code(
        meshform(&dir.path, Some(&moto), &["plan", stack, "--detailed-exitcode"]),
        2,
    );
    assert!(
        stdout(&plan).contains("Plan: 23 to create, 0 to update, 0 to replace, 0 to delete."),
        "{}",
        stdout(&plan)
    );

    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );
    let inventory = Inventory::read(&moto).await;
    inventory.assert_baseline(&moto).await;

    // Right after apply there is nothing to do.
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", stack, "--detailed-exitcode"]),
        0,
    );

    // State file and its backup are private to the user.
    let state_file = dir.state_file(STACK);
    for path in [state_file.clone(), state_file.with_extension("json.backup")] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }

    // Outputs replace cfn-output.json: they name what the emulator holds.
    let out = expect_code(meshform(&dir.path, Some(&moto), &["output", stack, "--json"]), 0);
    let outputs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ids = inventory.subnet_ids();
    assert_eq!(outputs["vpc_id"], inventory.vpcs[0].vpc_id().unwrap());
    assert_eq!(
        outputs["public_subnets"],
        format!("{},{}", ids["10.192.10.0/24"], ids["10.192.11.0/24"])
    );
    assert_eq!(
        outputs["private_subnets"],
        format!("{},{}", ids["10.192.20.0/24"], ids["10.192.21.0/24"])
    );
    assert_eq!(outputs["region"], "us-west-2");
    assert_eq!(
        outputs["node_sd_policy_arn"],
        inventory.policies[0].arn().unwrap()
    );
    let uri = outputs["ecr_repository_uri"].as_str().unwrap();
    assert!(
        uri.ends_with(".dkr.ecr.us-west-2.amazonaws.com/yelb-appserver-v2"),
        "{uri}"
    );
    let one = expect_code(meshform(&dir.path, Some(&moto), &["output", stack, "vpc_id"]), 0);
    assert_eq!(stdout(&one).trim(), inventory.vpcs[0].vpc_id().unwrap());

    // An image in the repository, as the walkthrough pushes one: destroy
    // must remove it first (cleanup.sh did).
    let ecr = moto.ecr().await;
    ecr.put_image()
        .repository_name("yelb-appserver-v2")
        .image_tag("v2")
        .image_manifest(
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                           "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"},
                "layers": []
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();

    expect_code(
        meshform(&dir.path, Some(&moto), &["destroy", stack, "--auto-approve"]),
        0,
    );
    Inventory::read(&moto).await.assert_empty();
    let listed = expect_code(meshform(&dir.path, Some(&moto), &["state", "list", stack]), 0);
    assert_eq!(
        stdout(&listed).trim(),
        "",
        "state still tracks: {}",
        stdout(&listed)
    );
}

/// Refresh reads in batches: one describe per kind (and page), however
/// many resources of that kind the stack has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_makes_one_describe_call_per_kind_not_per_resource() {
    let moto = Moto::start();
    let dir = Workdir::new("batching");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );

    // A pass-through proxy (it fails nothing) that records every call.
    let proxy = crate::support::fault_proxy::FaultProxy::start(moto.port, "NONE", "/", 0);
    let mut plan = meshform(&dir.path, Some(&moto), &["plan", stack, "--detailed-exitcode"]);
    plan.envs(proxy.env());
    expect_code(plan, 0);
    let actions = proxy.actions();
    let count = |a: &str| actions.iter().filter(|x| x.as_str() == a).count();
    // Four subnets, two EIPs, two NAT gateways, three route tables, three
    // routes and four associations: one call per kind each.
    assert_eq!(count("DescribeSubnets"), 1, "{actions:?}");
    assert_eq!(count("DescribeAddresses"), 1, "{actions:?}");
    assert_eq!(count("DescribeNatGateways"), 1, "{actions:?}");
    // Kinds reading the same objects share one describe per refresh.
    assert_eq!(
        count("DescribeInternetGateways"),
        1,
        "internet gateway + its attachment: {actions:?}"
    );
    // route tables, routes, associations, and the VPC's main route table.
    assert_eq!(count("DescribeRouteTables"), 1, "{actions:?}");
    assert_eq!(count("DescribeVpcs"), 1, "{actions:?}");
    assert_eq!(count("GetAccountAuthorizationDetails"), 1, "{actions:?}");
    // Per-resource calls remain only where the API has no batch form:
    // the VPC's two DNS attributes, the policy tags, the repository tags.
    assert_eq!(count("ListPolicyTags"), 1, "{actions:?}");
    assert_eq!(count("DescribeVpcAttribute"), 2, "{actions:?}");
}

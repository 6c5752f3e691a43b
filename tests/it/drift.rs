//! Out-of-band changes show up in the next plan, exactly, and apply
//! repairs them.

use crate::support::cli::{Workdir, baseline_stack, expect_code, meshform, stdout};
use crate::support::inventory::Inventory;
use crate::support::moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_route_and_changed_tag_are_planned_exactly_and_repaired() {
    let moto = Moto::start();
    let dir = Workdir::new("drift");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );

    let before = Inventory::read(&moto).await;
    let ec2 = moto.ec2().await;
    let table = before
        .route_table("private_route_table_1")
        .route_table_id()
        .unwrap()
        .to_string();
    ec2.delete_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let vpc_id = before.vpcs[0].vpc_id().unwrap().to_string();
    ec2.create_tags()
        .resources(&vpc_id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value("renamed-by-hand")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let out = expect_code(
        meshform(
            &dir.path,
            Some(&moto),
            &["plan", stack, "--json", "--detailed-exitcode"],
        ),
        2,
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["format_version"], 4);
    let changed: Vec<(String, String)> = plan["resources"]
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
        .collect();
    let mut sorted = changed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            ("default_private_route_1".to_string(), "create".to_string()),
            ("vpc".to_string(), "update".to_string())
        ],
        "exactly the deleted route and the tag change"
    );
    let vpc = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "vpc")
        .unwrap();
    assert_eq!(vpc["action"], "update");
    let fields: Vec<&str> = vpc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["tags"]);
    assert_eq!(vpc["changes"][0]["before"]["Name"], "renamed-by-hand");
    assert_eq!(vpc["changes"][0]["after"]["Name"], "AppMeshServiceDiscovery");
    let route = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "default_private_route_1")
        .unwrap();
    assert_eq!(route["action"], "create");

    // The human plan says the same with its symbols.
    let human = expect_code(meshform(&dir.path, Some(&moto), &["plan", stack]), 0);
    let text = stdout(&human);
    assert!(text.contains("~ vpc (aws.ec2.vpc)"), "{text}");
    assert!(
        text.contains("+ default_private_route_1 (aws.ec2.route)"),
        "{text}"
    );
    assert!(
        text.contains("\"renamed-by-hand\"") && text.contains("->"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 1 to create, 1 to update, 0 to replace, 0 to delete."),
        "{text}"
    );

    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );
    let after = Inventory::read(&moto).await;
    after.assert_baseline(&moto).await;
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", stack, "--detailed-exitcode"]),
        0,
    );
}

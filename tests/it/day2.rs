//! Day two (issue 12): `--target` on plan, apply and destroy; saved plans
//! (`plan --out`, `apply FILE`); `import`. Effects are read back from moto
//! through the SDK.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;

use crate::support::cli::{Workdir, baseline_stack, expect_code, meshform, stderr, stdout};
use crate::support::inventory::{Inventory, STACK};
use crate::support::moto::Moto;

/// A `plan --json`'s output, parsed.
fn plan_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn addresses(plan: &serde_json::Value) -> BTreeSet<String> {
    plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Everything `targets` depend on in a whole plan, transitively, by the
/// plan's own `dependencies`: computed independently of `--target`.
fn closure(plan: &serde_json::Value, targets: &[&str]) -> BTreeSet<String> {
    let deps = |a: &str| -> Vec<String> {
        plan["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == a)
            .map(|r| {
                r["dependencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    let mut queue: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    while let Some(a) = queue.pop() {
        if out.insert(a.clone()) {
            queue.extend(deps(&a));
        }
    }
    out
}

/// What the private route of AZ1 needs: its table, its NAT gateway, the
/// NAT's EIP and public subnet, the VPC, and (the EIP's `depends_on`) the
/// internet gateway's attachment and the gateway.
const ROUTE_1_NEEDS: &[&str] = &[
    "default_private_route_1",
    "private_route_table_1",
    "nat_gateway_1",
    "nat_gateway_1_eip",
    "public_subnet_1",
    "internet_gateway_attachment",
    "internet_gateway",
    "vpc",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_brings_in_dependencies_for_plan_and_apply_and_dependents_for_destroy() {
    let moto = Moto::start();
    let dir = Workdir::new("target");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    let cmd = |args: &[&str]| meshform(&dir.path, Some(&moto), args);

    let whole = plan_json(&expect_code(cmd(&["plan", stack, "--json"]), 0));
    assert_eq!(whole["format_version"], 4);
    assert_eq!(whole["partial"], false);
    assert_eq!(addresses(&whole).len(), 23);
    assert_eq!(closure(&whole, &["default_private_route_1"]), set(ROUTE_1_NEEDS));

    // plan --target: exactly the target and what it depends on.
    let partial = plan_json(&expect_code(
        cmd(&["plan", stack, "--json", "--target", "default_private_route_1"]),
        0,
    ));
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["targets"], serde_json::json!(["default_private_route_1"]));
    assert_eq!(addresses(&partial), set(ROUTE_1_NEEDS));
    assert_eq!(partial["summary"]["create"], 8);
    let left_out: BTreeSet<String> = partial["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(left_out, &addresses(&whole) - &set(ROUTE_1_NEEDS));
    let human = expect_code(cmd(&["plan", stack, "--target", "default_private_route_1"]), 0);
    assert!(
        stdout(&human).contains(
            "Partial plan: only default_private_route_1 and what it depends on; other changes are left out."
        ),
        "{}",
        stdout(&human)
    );
    assert!(stdout(&human).contains("Plan: 8 to create"), "{}", stdout(&human));

    // An unknown target: refused with a suggestion; no state written.
    let out = expect_code(cmd(&["plan", stack, "--target", "default_privte_route_1"]), 1);
    assert!(
        stderr(&out).contains("no resource `default_privte_route_1`")
            && stderr(&out).contains("did you mean `default_private_route_1`?"),
        "{}",
        stderr(&out)
    );
    let out = expect_code(cmd(&["apply", stack, "--auto-approve", "--target", "vcp"]), 1);
    assert!(stderr(&out).contains("did you mean `vpc`?"), "{}", stderr(&out));
    assert!(
        !dir.state_file(STACK).exists(),
        "a refused target writes no state"
    );
    assert!(Inventory::read(&moto).await.vpcs.is_empty());

    // apply --target: the emulator holds exactly what the route needs.
    expect_code(
        cmd(&[
            "apply",
            stack,
            "--auto-approve",
            "--target",
            "default_private_route_1",
        ]),
        0,
    );
    let inv = Inventory::read(&moto).await;
    assert_eq!(inv.vpcs.len(), 1);
    assert_eq!(inv.subnets.len(), 1, "only the NAT's public subnet");
    assert_eq!(inv.subnets[0].cidr_block(), Some("10.192.10.0/24"));
    assert_eq!(inv.internet_gateways.len(), 1);
    assert_eq!(inv.addresses.len(), 1);
    assert_eq!(inv.nat_gateways.len(), 1);
    assert_eq!(inv.route_tables.len(), 1, "only the private table of AZ1");
    let table = inv.route_table("private_route_table_1");
    let nat_id = inv.nat_gateways[0].nat_gateway_id().unwrap();
    assert!(
        table
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && r.nat_gateway_id() == Some(nat_id)),
        "{table:?}"
    );
    assert!(
        table
            .associations()
            .iter()
            .all(|a| a.main() == Some(true) || a.subnet_id().is_none())
    );
    assert!(inv.policies.is_empty() && inv.repositories.is_empty());
    // Outputs: those of what was applied, not those of left-out changes.
    let outputs: serde_json::Value =
        serde_json::from_str(&stdout(&expect_code(cmd(&["output", stack, "--json"]), 0))).unwrap();
    assert_eq!(outputs["vpc_id"], inv.vpcs[0].vpc_id().unwrap());
    assert_eq!(outputs["public_subnet_1"], inv.subnets[0].subnet_id().unwrap());
    assert!(outputs.get("public_subnets").is_none(), "{outputs}");
    assert!(outputs.get("node_sd_policy_arn").is_none(), "{outputs}");

    // The same target again: nothing to do; the rest is still planned.
    expect_code(
        cmd(&[
            "plan",
            stack,
            "--detailed-exitcode",
            "--target",
            "default_private_route_1",
        ]),
        0,
    );
    let rest = plan_json(&expect_code(cmd(&["plan", stack, "--json"]), 0));
    assert_eq!(rest["summary"]["create"], 15);
    assert_eq!(rest["summary"]["unchanged"], 8);

    // The whole stack, then destroy --target vpc: what depends on the VPC
    // goes; the internet gateway, IAM policy and ECR repository stay.
    expect_code(cmd(&["apply", stack, "--auto-approve"]), 0);
    Inventory::read(&moto).await.assert_baseline(&moto).await;
    let out = expect_code(cmd(&["destroy", stack, "--auto-approve", "--target", "vpc"]), 0);
    assert!(
        stdout(&out).contains("Partial plan: only vpc and what depends on it"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("Plan: 0 to create, 0 to update, 0 to replace, 20 to delete."),
        "{}",
        stdout(&out)
    );
    let inv = Inventory::read(&moto).await;
    assert!(inv.vpcs.is_empty() && inv.subnets.is_empty() && inv.route_tables.is_empty());
    assert!(inv.nat_gateways.is_empty() && inv.addresses.is_empty());
    assert_eq!(
        inv.internet_gateways.len(),
        1,
        "the gateway does not depend on the VPC"
    );
    assert_eq!(inv.policies.len(), 1);
    assert_eq!(inv.repositories.len(), 1);
    let listed = stdout(&expect_code(cmd(&["state", "list", stack]), 0));
    let tracked: BTreeSet<String> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(
        tracked,
        set(&["internet_gateway", "nodes_sd_policy", "ecr_repository"])
    );
    let outputs: serde_json::Value =
        serde_json::from_str(&stdout(&expect_code(cmd(&["output", stack, "--json"]), 0))).unwrap();
    assert!(outputs.get("vpc_id").is_none(), "{outputs}");
    assert_eq!(
        outputs["node_sd_policy_arn"],
        inv.policies[0].arn().unwrap(),
        "kept"
    );

    expect_code(cmd(&["destroy", stack, "--auto-approve"]), 0);
    Inventory::read(&moto).await.assert_empty();
}

const SMALL: &str = r#"
[stack]
name = "saved"
region = "us-west-2"

[vars]
name = "saved"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.50.0.0/16"
tags = { Name = "${var.name}" }

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.50.1.0/24"
availability_zone = "${az[0]}"

[output.vpc_id]
value = "${vpc.id}"
"#;

async fn vpcs_with_cidr(moto: &Moto, cidr: &str) -> Vec<aws_sdk_ec2::types::Vpc> {
    moto.ec2()
        .await
        .describe_vpcs()
        .filters(Filter::builder().name("cidr").values(cidr).build())
        .send()
        .await
        .unwrap()
        .vpcs()
        .to_vec()
}

async fn subnets_in(moto: &Moto, vpc: &str) -> Vec<aws_sdk_ec2::types::Subnet> {
    moto.ec2()
        .await
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .send()
        .await
        .unwrap()
        .subnets()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_applies_exactly_and_refuses_when_the_stack_or_state_changed() {
    let moto = Moto::start();
    let dir = Workdir::new("saved-plan");
    let file = dir.write("saved.toml", SMALL);
    let file = file.to_str().unwrap();
    let cmd = |args: &[&str]| meshform(&dir.path, Some(&moto), args);
    let state_file = dir.state_file("saved");

    // A saved plan applies, without a question, from another directory.
    let out = expect_code(
        cmd(&["plan", file, "--var", "name=first", "--out", "one.plan"]),
        0,
    );
    assert!(stdout(&out).contains("Plan: 2 to create"), "{}", stdout(&out));
    let plan_file = dir.path.join("one.plan");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(saved["format"], "meshform-saved-plan");
    assert_eq!(
        saved["state"],
        serde_json::Value::Null,
        "made before any state existed"
    );
    assert_eq!(saved["stack_digest"].as_str().unwrap().len(), 64);
    let elsewhere = Workdir::new("saved-plan-elsewhere");
    expect_code(
        meshform(
            &elsewhere.path,
            Some(&moto),
            &["apply", plan_file.to_str().unwrap()],
        ),
        0,
    );
    let vpcs = vpcs_with_cidr(&moto, "10.50.0.0/16").await;
    assert_eq!(vpcs.len(), 1);
    let name = vpcs[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value());
    assert_eq!(name, Some("first"), "the variable the plan was made with");
    assert_eq!(subnets_in(&moto, vpcs[0].vpc_id().unwrap()).await.len(), 1);
    assert!(
        state_file.exists(),
        "the state the plan named, not the other directory's"
    );
    assert!(!elsewhere.state_file("saved").exists());
    expect_code(
        cmd(&["plan", file, "--var", "name=first", "--detailed-exitcode"]),
        0,
    );

    // A change of the stack between plan and apply: refused, nothing changes.
    expect_code(
        cmd(&["plan", file, "--var", "name=first", "--out", "two.plan"]),
        0,
    );
    let with_tag = SMALL.replace(
        "tags = { Name = \"${var.name}\" }",
        "tags = { Name = \"${var.name}\", Team = \"edited\" }",
    );
    let edited = SMALL.replace("cidr_block = \"10.50.1.0/24\"", "cidr_block = \"10.50.2.0/24\"");
    std::fs::write(file, &with_tag).unwrap();
    expect_code(
        cmd(&["plan", file, "--var", "name=first", "--out", "four.plan"]),
        0,
    );
    std::fs::write(file, &edited).unwrap();
    let state_before = std::fs::read(&state_file).unwrap();
    let out = expect_code(cmd(&["apply", "four.plan"]), 1);
    assert!(
        stderr(&out).contains("the saved plan is stale: stack")
            && stderr(&out).contains("changed since the plan was made"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        state_before,
        "state untouched"
    );
    let vpc_id = vpcs[0].vpc_id().unwrap();
    let subnets = subnets_in(&moto, vpc_id).await;
    assert_eq!(subnets.len(), 1);
    assert_eq!(
        subnets[0].cidr_block(),
        Some("10.50.1.0/24"),
        "the emulator is untouched"
    );
    let team = |v: &aws_sdk_ec2::types::Vpc| {
        v.tags()
            .iter()
            .find(|t| t.key() == Some("Team"))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(team(&vpcs_with_cidr(&moto, "10.50.0.0/16").await[0]), None);
    // A --var that differs from the plan's changes the digest too.
    std::fs::write(file, SMALL).unwrap();
    let out = expect_code(cmd(&["apply", "two.plan", "--var", "name=other"]), 1);
    assert!(
        stderr(&out).contains("the saved plan is stale: stack"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), state_before);

    // Back to the stack it was made from, `two.plan` (no change) applies.
    let out = expect_code(cmd(&["apply", "two.plan"]), 0);
    assert!(stdout(&out).contains("No changes."), "{}", stdout(&out));

    // A state change between plan and apply (state rm, another apply):
    // refused, nothing changes.
    std::fs::write(file, &with_tag).unwrap();
    expect_code(
        cmd(&["plan", file, "--var", "name=first", "--out", "five.plan"]),
        0,
    );
    expect_code(cmd(&["state", "rm", file, "--var", "name=first", "subnet"]), 0);
    let state_before = std::fs::read(&state_file).unwrap();
    let out = expect_code(cmd(&["apply", "five.plan"]), 1);
    assert!(
        stderr(&out).contains("it was made against state lineage")
            && stderr(&out).contains("but state is now"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        state_before,
        "state untouched"
    );
    assert_eq!(team(&vpcs_with_cidr(&moto, "10.50.0.0/16").await[0]), None);
    // And the tag change, planned against the current state, applies.
    expect_code(
        cmd(&[
            "plan",
            file,
            "--var",
            "name=first",
            "--target",
            "vpc",
            "--out",
            "six.plan",
        ]),
        0,
    );
    let six: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path.join("six.plan")).unwrap()).unwrap();
    assert_eq!(six["targets"], serde_json::json!(["vpc"]));
    assert_eq!(six["plan"]["partial"], true);
    let out = expect_code(cmd(&["apply", "six.plan", "--target", "subnet"]), 1);
    assert!(
        stderr(&out).contains("--target cannot be given with a saved plan"),
        "{}",
        stderr(&out)
    );
    expect_code(cmd(&["apply", "six.plan"]), 0);
    assert_eq!(
        team(&vpcs_with_cidr(&moto, "10.50.0.0/16").await[0]).as_deref(),
        Some("edited")
    );
    // The partial plan left the subnet alone: the forgotten subnet still
    // exists, untracked, and nothing else was made.
    assert_eq!(subnets_in(&moto, vpc_id).await.len(), 1);

    // A saved plan is applied once: the apply wrote state.
    let out = expect_code(cmd(&["apply", "six.plan"]), 1);
    assert!(
        stderr(&out).contains("the saved plan is stale"),
        "{}",
        stderr(&out)
    );
}

const IMPORTED: &str = r#"
[stack]
name = "adopt"
region = "us-west-2"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.70.0.0/16"
tags = { Name = "adopted" }

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.70.1.0/24"
availability_zone = "us-west-2a"
tags = { Name = "adopted-subnet" }
"#;

fn tags_of(tags: &[aws_sdk_ec2::types::Tag]) -> std::collections::BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adopts_a_vpc_and_subnet_made_outside_and_refuses_what_it_cannot() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let name_tag = |v: &str| {
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(if v.ends_with("subnet") {
                aws_sdk_ec2::types::ResourceType::Subnet
            } else {
                aws_sdk_ec2::types::ResourceType::Vpc
            })
            .tags(aws_sdk_ec2::types::Tag::builder().key("Name").value(v).build())
            .build()
    };
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.70.0.0/16")
        .tag_specifications(name_tag("adopted"))
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.70.1.0/24")
        .availability_zone("us-west-2a")
        .tag_specifications(name_tag("adopted-subnet"))
        .send()
        .await
        .unwrap();
    let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_string();

    let dir = Workdir::new("import");
    let file = dir.write("adopt.toml", IMPORTED);
    let file = file.to_str().unwrap();
    let cmd = |args: &[&str]| meshform(&dir.path, Some(&moto), args);
    let state_file = dir.state_file("adopt");

    // An address not in the stack: refused with a suggestion; no state.
    let out = expect_code(cmd(&["import", file, "vcp", &vpc_id]), 1);
    assert!(
        stderr(&out).contains("stack `adopt` has no resource `vcp` (did you mean `vpc`?)"),
        "{}",
        stderr(&out)
    );
    // An id that does not exist.
    let out = expect_code(cmd(&["import", file, "vpc", "vpc-0123456789abcdef0"]), 1);
    assert!(
        stderr(&out).contains("aws.ec2.vpc `vpc-0123456789abcdef0` does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!state_file.exists(), "nothing was recorded: no state written");

    let out = expect_code(cmd(&["import", file, "vpc", &vpc_id]), 0);
    assert!(
        stdout(&out).contains(&format!("imported aws.ec2.vpc {vpc_id} as `vpc`")),
        "{}",
        stdout(&out)
    );
    expect_code(cmd(&["import", file, "subnet", &subnet_id]), 0);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(state["resources"]["vpc"]["id"], vpc_id.as_str());
    assert_eq!(state["resources"]["subnet"]["id"], subnet_id.as_str());
    assert_eq!(
        state["resources"]["subnet"]["dependencies"],
        serde_json::json!(["vpc"])
    );

    // Refused, state unchanged byte for byte: the address is taken; the
    // object is already tracked under another address.
    let before = std::fs::read(&state_file).unwrap();
    let out = expect_code(cmd(&["import", file, "vpc", &vpc_id]), 1);
    assert!(
        stderr(&out).contains("state already tracks `vpc`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), before, "state unchanged");
    expect_code(cmd(&["state", "rm", file, "subnet"]), 0);
    let after_rm = std::fs::read(&state_file).unwrap();
    let out = expect_code(cmd(&["import", file, "subnet", &vpc_id]), 1);
    assert!(
        stderr(&out).contains("does not exist") || stderr(&out).contains("already tracked"),
        "a VPC id is no subnet: {}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), after_rm);
    expect_code(cmd(&["import", file, "subnet", &subnet_id]), 0);
    let twice =
        format!("{IMPORTED}\n[resource.other_vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.70.0.0/16\"\n");
    let twice_file = dir.write("adopt-twice.toml", &twice);
    let before = std::fs::read(&state_file).unwrap();
    let out = expect_code(
        cmd(&["import", twice_file.to_str().unwrap(), "other_vpc", &vpc_id]),
        1,
    );
    assert!(
        stderr(&out).contains(&format!(
            "aws.ec2.vpc {vpc_id} is already tracked by state as `vpc`"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), before, "state unchanged");

    // The next plan: only the ownership tags are added.
    let plan = plan_json(&expect_code(cmd(&["plan", file, "--json"]), 0));
    assert_eq!(plan["summary"]["update"], 2, "{plan}");
    assert_eq!(plan["summary"]["create"], 0);
    assert_eq!(plan["summary"]["replace"], 0);
    assert_eq!(plan["summary"]["delete"], 0);
    for r in plan["resources"].as_array().unwrap() {
        let changes = r["changes"].as_array().unwrap();
        let names: Vec<&str> = changes.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["tags"], "{}: {r}", r["address"]);
        let before = &changes[0]["before"];
        let after = &changes[0]["after"];
        let added: BTreeSet<&String> = after
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| before.get(k.as_str()) != after.get(k.as_str()))
            .collect();
        let address = r["address"].as_str().unwrap();
        assert_eq!(
            added,
            ["meshform:address".to_string(), "meshform:stack".to_string()]
                .iter()
                .collect(),
            "{address}: only the ownership tags: {r}"
        );
        for (k, v) in before.as_object().unwrap() {
            assert_eq!(after.get(k), Some(v), "{address}: {k} kept");
        }
    }
    expect_code(cmd(&["apply", file, "--auto-approve"]), 0);
    let vpcs = ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    let tags = tags_of(vpcs.vpcs()[0].tags());
    assert_eq!(tags.get("meshform:stack").map(String::as_str), Some("adopt"));
    assert_eq!(tags.get("meshform:address").map(String::as_str), Some("vpc"));
    assert_eq!(tags.get("Name").map(String::as_str), Some("adopted"));
    let subnets = ec2
        .describe_subnets()
        .subnet_ids(&subnet_id)
        .send()
        .await
        .unwrap();
    let tags = tags_of(subnets.subnets()[0].tags());
    assert_eq!(tags.get("meshform:address").map(String::as_str), Some("subnet"));
    assert_eq!(tags.get("meshform:stack").map(String::as_str), Some("adopt"));
    // One VPC of that CIDR: the imported one, not a new one.
    assert_eq!(vpcs_with_cidr(&moto, "10.70.0.0/16").await.len(), 1);
    expect_code(cmd(&["plan", file, "--detailed-exitcode"]), 0);
    expect_code(cmd(&["destroy", file, "--auto-approve"]), 0);
    assert!(vpcs_with_cidr(&moto, "10.70.0.0/16").await.is_empty());
}

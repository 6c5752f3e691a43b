//! How many API calls a refresh makes (issue 9: refresh that scales),
//! counted by the fault proxy (with no faults) in front of moto during a
//! no-op `meshform plan`.
//!
//! Batchable kinds must not come back to calls per resource: IAM policies
//! and roles are read from `GetAccountAuthorizationDetails`, ECR
//! repositories from `DescribeRepositories` with up to 100 names, EC2
//! objects by id lists; kinds that read the same objects share one
//! describe. What AWS has no batch for (a managed policy's tags, a
//! repository's tags) is one call per resource, and no more.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::cli::{Workdir, baseline_stack, expect_code, meshform, stdout};
use crate::support::fault_proxy::{FaultPlan, FaultProxy};
use crate::support::moto::Moto;

/// `meshform <args>` in `dir` reaching moto through `proxy`.
fn via(proxy: &FaultProxy, dir: &std::path::Path, moto: &Moto, args: &[&str]) -> Command {
    let mut cmd = meshform(dir, Some(moto), args);
    cmd.envs(proxy.env());
    cmd
}

/// The calls `proxy` saw, by call type.
fn counts(proxy: &FaultProxy) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in proxy.actions() {
        *out.entry(a).or_insert(0) += 1;
    }
    out
}

/// A stack of `n` IAM policies, `n` ECR repositories, a few roles, a VPC
/// with subnets and security groups.
fn generated_stack(n: usize) -> String {
    let mut s = String::from(
        "[stack]\nname = \"refresh-calls\"\nregion = \"us-west-2\"\n\n\
         [resource.vpc]\ntype = \"aws.ec2.vpc\"\ncidr_block = \"10.70.0.0/16\"\n\n",
    );
    for i in 0..n {
        s += &format!(
            "[resource.policy_{i}]\ntype = \"aws.iam.policy\"\nname = \"refresh-policy-{i}\"\n\
             description = \"policy {i}\"\ntags = {{ team = \"t{i}\" }}\n\
             policy = {{ Version = \"2012-10-17\", Statement = [{{ Effect = \"Allow\", Action = [\"s3:GetObject\"], Resource = \"arn:aws:s3:::bucket-{i}/*\" }}] }}\n\n\
             [resource.repo_{i}]\ntype = \"aws.ecr.repository\"\nname = \"refresh-repo-{i}\"\n\
             tags = {{ team = \"t{i}\" }}\n\n"
        );
    }
    for i in 0..3 {
        s += &format!(
            "[resource.role_{i}]\ntype = \"aws.iam.role\"\nname = \"refresh-role-{i}\"\n\
             description = \"role {i}\"\n\
             managed_policy_arns = [\"${{policy_{i}.arn}}\"]\n\
             tags = {{ team = \"t{i}\" }}\n\
             assume_role_policy = {{ Version = \"2012-10-17\", Statement = [{{ Effect = \"Allow\", Principal = {{ Service = \"ec2.amazonaws.com\" }}, Action = \"sts:AssumeRole\" }}] }}\n\n"
        );
    }
    for i in 0..5 {
        s += &format!(
            "[resource.subnet_{i}]\ntype = \"aws.ec2.subnet\"\nvpc_id = \"${{vpc.id}}\"\n\
             cidr_block = \"10.70.{i}.0/24\"\navailability_zone = \"${{az[0]}}\"\n\n\
             [resource.sg_{i}]\ntype = \"aws.ec2.security_group\"\nname = \"refresh-sg-{i}\"\n\
             vpc_id = \"${{vpc.id}}\"\n\
             ingress = [{{ protocol = \"tcp\", from_port = 443, to_port = 443, cidr_blocks = [\"10.0.0.0/8\"] }}]\n\n"
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_plan_of_a_generated_stack_makes_no_per_resource_calls_for_batchable_kinds() {
    const N: usize = 30;
    let moto = Moto::start();
    let dir = Workdir::new("refresh-calls");
    let stack = dir.write("stack.toml", &generated_stack(N));
    let stack = stack.to_str().unwrap();
    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );

    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::new());
    let plan = expect_code(
        via(&proxy, &dir.path, &moto, &["plan", stack, "--detailed-exitcode"]),
        0,
    );
    let seen = counts(&proxy);
    let report = format!("{seen:#?}\n{}", stdout(&plan));
    let count = |call: &str| seen.get(call).copied().unwrap_or(0);

    // Never per policy, role or repository.
    for call in [
        "GetPolicy",
        "GetPolicyVersion",
        "ListPolicies",
        "GetRole",
        "ListAttachedRolePolicies",
        "ListRoleTags",
    ] {
        assert_eq!(count(call), 0, "{call} came back:\n{report}");
    }
    assert_eq!(count("GetAccountAuthorizationDetails"), 1, "{report}");
    assert_eq!(count("ListRoles"), 1, "{report}");
    assert!(
        count("DescribeRepositories") <= 1,
        "DescribeRepositories per repository:\n{report}"
    );
    // AWS has no batch for these: one per resource, not more.
    assert_eq!(count("ListPolicyTags"), N, "{report}");
    assert_eq!(count("ListTagsForResource"), N, "{report}");
    // EC2: one describe per kind (by id lists), not per resource.
    for call in ["DescribeSubnets", "DescribeVpcs"] {
        assert_eq!(count(call), 1, "{call}:\n{report}");
    }
    assert!(count("DescribeSecurityGroups") <= 2, "{report}");
    let batchable: usize = seen
        .iter()
        .filter(|(call, _)| !call.ends_with("ListPolicyTags") && !call.ends_with("ListTagsForResource"))
        .map(|(_, n)| n)
        .sum();
    assert!(batchable <= 20, "{batchable} calls besides tag reads:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_plan_of_the_baseline_makes_at_most_13_calls() {
    let moto = Moto::start();
    let dir = Workdir::new("refresh-calls-baseline");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );

    let proxy = FaultProxy::with_plan(moto.port, FaultPlan::new());
    expect_code(
        via(&proxy, &dir.path, &moto, &["plan", stack, "--detailed-exitcode"]),
        0,
    );
    let actions = proxy.actions();
    // 13: the region's availability zones; one describe each for VPCs,
    // subnets, internet gateways (with their attachments), addresses, NAT
    // gateways, route tables (with routes, associations and the VPC's main
    // table), repositories; IAM's account details; and what AWS has no
    // batch for: the VPC's two DNS attributes (one call each), the
    // policy's tags and the repository's tags.
    assert!(
        actions.len() <= 13,
        "{} calls (at most 13 expected):\n{}",
        actions.len(),
        actions.join("\n")
    );
    // Kinds reading the same objects share one describe.
    let count = |call: &str| actions.iter().filter(|a| *a == call).count();
    assert_eq!(count("DescribeRouteTables"), 1, "{}", actions.join("\n"));
    assert_eq!(count("DescribeInternetGateways"), 1, "{}", actions.join("\n"));
}

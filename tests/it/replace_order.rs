//! Replacements whose dependents change in place, on moto: renaming an IAM
//! policy that a role attaches used to stall apply forever (a cycle in the
//! step graph). Now one apply converges, in either order: create before
//! destroy when the new policy has a new name, destroy before create (the
//! role detaching first) when it keeps its name. Effects are read back
//! through the IAM API.

use std::collections::BTreeSet;

use crate::support::cli::{Workdir, expect_code, meshform, stderr, stdout};
use crate::support::moto::Moto;

fn stack(policy_name: &str, policy_path: &str) -> String {
    format!(
        r#"
[stack]
name = "rename"
region = "us-west-2"

[resource.policy]
type = "aws.iam.policy"
name = "{policy_name}"
path = "{policy_path}"
policy = {{ Version = "2012-10-17", Statement = [{{ Effect = "Allow", Action = "servicediscovery:UpdateInstanceCustomHealthStatus", Resource = "*" }}] }}

[resource.role]
type = "aws.iam.role"
name = "rename-nodes"
assume_role_policy = {{ Version = "2012-10-17", Statement = [{{ Effect = "Allow", Principal = {{ Service = "ec2.amazonaws.com" }}, Action = "sts:AssumeRole" }}] }}
managed_policy_arns = ["${{policy.arn}}", "AmazonEKS_CNI_Policy"]
"#
    )
}

/// The ARNs of the policies attached to the role, read back from moto.
async fn attached(moto: &Moto) -> BTreeSet<String> {
    moto.iam()
        .await
        .list_attached_role_policies()
        .role_name("rename-nodes")
        .send()
        .await
        .unwrap()
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect()
}

/// The local policies moto holds: (name, path, ARN).
async fn local_policies(moto: &Moto) -> Vec<(String, String, String)> {
    moto.iam()
        .await
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap()
        .policies()
        .iter()
        .map(|p| {
            (
                p.policy_name().unwrap_or_default().to_string(),
                p.path().unwrap_or_default().to_string(),
                p.arn().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

const CNI: &str = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_an_attached_policy_converges_in_one_apply() {
    let moto = Moto::start();
    let dir = Workdir::new("rename");
    let file = dir.write("rename.toml", &stack("sd", "/"));
    let file = file.to_str().unwrap();
    let apply = |dir: &Workdir| meshform(&dir.path, Some(&moto), &["apply", file, "--auto-approve"]);
    expect_code(apply(&dir), 0);
    let first = local_policies(&moto).await;
    assert_eq!(first.len(), 1);

    // A new name: the new policy can exist beside the old one, so it is
    // made first, the role moves to it, and the old one goes.
    dir.write("rename.toml", &stack("sd-renamed", "/"));
    let plan = expect_code(meshform(&dir.path, Some(&moto), &["plan", file]), 0);
    assert!(
        stdout(&plan).contains("-/+ policy (aws.iam.policy)")
            && stdout(&plan).contains("must be replaced (create before destroy)"),
        "{}",
        stdout(&plan)
    );
    let out = expect_code(apply(&dir), 0);
    let events = stderr(&out);
    let at = |needle: &str| line_of(&events, needle);
    assert!(at("policy: created") < at("role: updating..."), "{events}");
    assert!(at("role: updated") < at("policy: deleting..."), "{events}");
    let now = local_policies(&moto).await;
    assert_eq!(now.len(), 1, "the old policy is gone: {now:?}");
    assert_eq!(now[0].0, "sd-renamed");
    assert_eq!(attached(&moto).await, [now[0].2.clone(), CNI.to_string()].into());
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", file, "--detailed-exitcode"]),
        0,
    );

    // A new path with the same name: the two cannot exist at once, so the
    // role lets go of the old policy, the old one goes, the new one is made
    // and attached.
    dir.write("rename.toml", &stack("sd-renamed", "/meshform/"));
    let plan = expect_code(meshform(&dir.path, Some(&moto), &["plan", file]), 0);
    assert!(
        stdout(&plan).contains("must be replaced (destroy before create)")
            && stdout(&plan).contains("# first removes"),
        "{}",
        stdout(&plan)
    );
    let out = expect_code(apply(&dir), 0);
    let events = stderr(&out);
    let at = |needle: &str| line_of(&events, needle);
    assert!(at("role: detached") < at("policy: deleting..."), "{events}");
    assert!(at("policy: deleted") < at("policy: creating..."), "{events}");
    assert!(at("policy: created") < at("role: updating..."), "{events}");
    let now = local_policies(&moto).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (now[0].0.as_str(), now[0].1.as_str()),
        ("sd-renamed", "/meshform/")
    );
    assert_eq!(attached(&moto).await, [now[0].2.clone(), CNI.to_string()].into());
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", file, "--detailed-exitcode"]),
        0,
    );
    expect_code(
        meshform(&dir.path, Some(&moto), &["destroy", file, "--auto-approve"]),
        0,
    );
    assert!(local_policies(&moto).await.is_empty());
}

/// The line of `events` starting with `needle`.
fn line_of(events: &str, needle: &str) -> usize {
    events
        .lines()
        .position(|l| l.starts_with(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{events}"))
}

//! `meshform state show` and `state rm`, the manual recovery commands:
//! `rm` forgets resources without touching the cloud (read back from moto),
//! keeps the previous state as the backup, and refuses unknown addresses
//! without changing anything.

use crate::support::cli::{Workdir, expect_code, meshform, stderr, stdout};
use crate::support::moto::Moto;

const STACK: &str = r#"
[stack]
name = "recover"
region = "us-west-2"

[resource.repo]
type = "aws.ecr.repository"
name = "recover-repo"

[resource.policy]
type = "aws.iam.policy"
name = "recover-policy"
policy = { Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "ecr:ListImages", Resource = "*" }] }
"#;

async fn repositories(moto: &Moto) -> Vec<String> {
    moto.ecr()
        .await
        .describe_repositories()
        .send()
        .await
        .unwrap()
        .repositories()
        .iter()
        .filter_map(|r| r.repository_name().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_show_and_rm_recover_by_hand_without_touching_the_cloud() {
    let moto = Moto::start();
    let dir = Workdir::new("state-cmd");
    let file = dir.write("recover.toml", STACK);
    let file = file.to_str().unwrap();
    let cmd = |args: &[&str]| meshform(&dir.path, Some(&moto), args);
    expect_code(cmd(&["apply", file, "--auto-approve"]), 0);
    let state_file = dir.state_file("recover");
    let before = std::fs::read_to_string(&state_file).unwrap();

    let shown = expect_code(cmd(&["state", "show", file, "repo"]), 0);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&shown)).unwrap();
    assert_eq!(shown["address"], "repo");
    assert_eq!(shown["resource"]["type"], "aws.ecr.repository");
    assert_eq!(shown["resource"]["id"], "recover-repo");

    // An unknown address: refused, with a suggestion, and nothing changes.
    let out = expect_code(cmd(&["state", "rm", file, "repo", "polcy"]), 1);
    assert!(
        stderr(&out).contains("tracks no resource `polcy`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("did you mean `policy`?"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&state_file).unwrap(), before);

    let out = expect_code(cmd(&["state", "rm", file, "repo"]), 0);
    assert!(
        stdout(&out).contains("removed repo (aws.ecr.repository recover-repo)"),
        "{}",
        stdout(&out)
    );
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert!(after["resources"].get("repo").is_none());
    assert!(after["resources"].get("policy").is_some());
    // The previous version is the backup; the cloud still has the repository.
    let backup = std::fs::read_to_string(state_file.with_extension("json.backup")).unwrap();
    assert_eq!(backup, before);
    assert_eq!(repositories(&moto).await, ["recover-repo"]);
    expect_code(cmd(&["state", "show", file, "repo"]), 1);

    // Untracked now: destroy leaves it alone.
    expect_code(cmd(&["destroy", file, "--auto-approve"]), 0);
    assert_eq!(repositories(&moto).await, ["recover-repo"]);
}

/// `repo` depends on `policy` (an explicit `depends_on`), so that `state
/// mv policy ...` has a recorded dependency to rename.
const LINKED: &str = r#"
[stack]
name = "moving"
region = "us-west-2"

[resource.policy]
type = "aws.iam.policy"
name = "moving-policy"
policy = { Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "ecr:ListImages", Resource = "*" }] }

[resource.repo]
type = "aws.ecr.repository"
name = "moving-repo"
depends_on = ["policy"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mv_renames_an_address_and_what_depends_on_it() {
    let moto = Moto::start();
    let dir = Workdir::new("state-mv");
    let file = dir.write("moving.toml", LINKED);
    let file = file.to_str().unwrap();
    let cmd = |args: &[&str]| meshform(&dir.path, Some(&moto), args);
    expect_code(cmd(&["apply", file, "--auto-approve"]), 0);
    let state_file = dir.state_file("moving");
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap()
    };
    let before = std::fs::read(&state_file).unwrap();
    let policy_id = read()["resources"]["policy"]["id"].clone();

    // Refused, nothing changed: FROM missing (with a suggestion), TO taken.
    let out = expect_code(cmd(&["state", "mv", file, "polcy", "x"]), 1);
    assert!(
        stderr(&out).contains("state tracks no resource `polcy` (did you mean `policy`?)"),
        "{}",
        stderr(&out)
    );
    let out = expect_code(cmd(&["state", "mv", file, "policy", "repo"]), 1);
    assert!(
        stderr(&out).contains("state already tracks `repo` (aws.ecr.repository moving-repo)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), before);

    // The stack renames the policy; the state follows with `state mv`.
    std::fs::write(
        file,
        LINKED
            .replace("[resource.policy]", "[resource.nodes_policy]")
            .replace("depends_on = [\"policy\"]", "depends_on = [\"nodes_policy\"]"),
    )
    .unwrap();
    let out = expect_code(cmd(&["state", "mv", file, "policy", "nodes_policy"]), 0);
    assert!(
        stdout(&out).contains("moved policy to nodes_policy"),
        "{}",
        stdout(&out)
    );
    let after = read();
    assert!(after["resources"].get("policy").is_none());
    assert_eq!(after["resources"]["nodes_policy"]["id"], policy_id);
    assert_eq!(
        after["resources"]["repo"]["dependencies"],
        serde_json::json!(["nodes_policy"]),
        "the recorded dependency follows the rename"
    );
    assert_eq!(
        std::fs::read(state_file.with_extension("json.backup")).unwrap(),
        before,
        "the previous state is the backup"
    );
    // The same objects, tracked at the new address: the next plan only
    // moves the ownership tag naming the address; nothing is replaced.
    let out = expect_code(cmd(&["plan", file, "--detailed-exitcode"]), 2);
    assert!(
        stdout(&out).contains("tags.meshform:address  \"policy\" -> \"nodes_policy\""),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete."),
        "{}",
        stdout(&out)
    );
    expect_code(cmd(&["apply", file, "--auto-approve"]), 0);
    expect_code(cmd(&["plan", file, "--detailed-exitcode"]), 0);
    let policies = moto
        .iam()
        .await
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = policies
        .policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert_eq!(names, ["moving-policy"]);
    expect_code(cmd(&["destroy", file, "--auto-approve"]), 0);
    assert!(repositories(&moto).await.is_empty());
}

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

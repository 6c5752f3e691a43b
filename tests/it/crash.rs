//! Crash safety: SIGKILL `meshform apply` at several points, including the
//! window between "created in AWS" and "recorded in state", re-run, and
//! check against the emulator that every resource exists exactly once.

use crate::support::cli::{Workdir, baseline_stack, expect_code, kill_when, meshform, stdout};
use crate::support::inventory::{Inventory, STACK};
use crate::support::moto::Moto;

fn state(dir: &Workdir) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.state_file(STACK)).unwrap();
    serde_json::from_str(&text).expect("state is valid JSON after a SIGKILL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_applies_converge_without_duplicates() {
    let moto = Moto::start();
    let dir = Workdir::new("crash");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();

    // With one operation at a time the order of creates is the plan's, so
    // each kill point below is reached by the run that targets it.
    let plan = expect_code(
        meshform(
            &dir.path,
            Some(&moto),
            &["plan", stack, "--json", "--detailed-exitcode"],
        ),
        2,
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    let order: Vec<String> = plan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect();
    let mut points = vec![
        "vpc",
        "nat_gateway_1_eip",
        "nat_gateway_1",
        "default_public_route",
        "public_subnet_1_route_table_association",
        "nodes_sd_policy",
        "ecr_repository",
    ];
    points.sort_by_key(|p| {
        order
            .iter()
            .position(|o| o == p)
            .unwrap_or_else(|| panic!("{p} not in plan"))
    });

    for point in &points {
        let mut cmd = meshform(
            &dir.path,
            Some(&moto),
            &["apply", stack, "--auto-approve", "--parallelism", "1"],
        );
        cmd.env("MESHFORM_FAILPOINT", format!("after-create:{point}"));
        let seen = kill_when(cmd, |line, _| line.contains("failpoint after-create"));
        // Killed after the cloud call and before the state write: state
        // holds the intent, not the resource.
        let s = state(&dir);
        assert!(
            s["pending"].get(*point).is_some(),
            "{point} should be pending after the kill; stderr:\n{seen}"
        );
        assert!(
            s["resources"].get(*point).is_none(),
            "{point} recorded although killed before the write"
        );
    }

    // And a kill at an arbitrary moment with full concurrency.
    kill_when(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        |line, _| line.contains(": created "),
    );
    state(&dir);

    let last = expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );
    let text = String::from_utf8_lossy(&last.stderr).into_owned();
    let s = state(&dir);
    assert_eq!(
        s["pending"].as_object().map_or(0, |p| p.len()),
        0,
        "pending left: {}",
        s["pending"]
    );
    assert_eq!(s["resources"].as_object().unwrap().len(), 23, "{text}");

    Inventory::read(&moto).await.assert_baseline(&moto).await;
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", stack, "--detailed-exitcode"]),
        0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_create_is_adopted_by_tags_on_the_next_run() {
    let moto = Moto::start();
    let dir = Workdir::new("adopt");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    let mut cmd = meshform(
        &dir.path,
        Some(&moto),
        &["apply", stack, "--auto-approve", "--parallelism", "1"],
    );
    cmd.env("MESHFORM_FAILPOINT", "after-create:vpc");
    kill_when(cmd, |line, _| line.contains("failpoint after-create:vpc"));
    let vpcs = Inventory::read(&moto).await.vpcs;
    assert_eq!(vpcs.len(), 1, "the killed run made the VPC");

    // The next run finds it by its tags and tracks it instead of making another.
    let out = expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = vpcs[0].vpc_id().unwrap();
    assert!(
        stderr.contains(&format!("vpc: found {id}, created by an interrupted run")),
        "{stderr}"
    );
    assert_eq!(state(&dir)["resources"]["vpc"]["id"], id);
    Inventory::read(&moto).await.assert_baseline(&moto).await;
}

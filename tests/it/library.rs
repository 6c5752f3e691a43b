//! The library API (`meshform::api`) as other tooling uses it: the example
//! program applying and destroying the baseline, and an apply cancelled
//! midway through the API and re-run to convergence. Effects are read back
//! from moto through the SDK.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshform::api::{Options, StackSource, Workspace};
use meshform::engine::{Event, EventSink, Op};
use meshform::graph::CancelFlag;
use meshform::state::StateLocation;

use crate::support::cli::{Workdir, baseline_stack, run, stderr, stdout};
use crate::support::inventory::{Inventory, STACK};
use crate::support::moto::Moto;

/// The example program `examples/baseline.rs`, built if the test run did
/// not build it (`cargo test --all-targets` does).
fn example_binary() -> PathBuf {
    let meshform = PathBuf::from(env!("CARGO_BIN_EXE_meshform"));
    let binary = meshform
        .parent()
        .expect("the binary has a directory")
        .join("examples")
        .join("baseline");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--example", "baseline"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --example baseline failed");
    }
    binary
}

fn example(dir: &Workdir, moto: &Moto, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(example_binary());
    cmd.current_dir(&dir.path).args(args).envs(moto.env());
    for k in ["AWS_PROFILE", "MESHFORM_FAILPOINT"] {
        cmd.env_remove(k);
    }
    run(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_program_applies_then_destroys_the_baseline() {
    let moto = Moto::start();
    let dir = Workdir::new("library-example");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();

    // Apply only: the emulator then holds the whole baseline.
    let kept = example(&dir, &moto, &[stack, "--keep"]);
    assert!(kept.status.success(), "{}\n{}", stdout(&kept), stderr(&kept));
    let text = stdout(&kept);
    assert!(text.contains("plan: 23 to create"), "{text}");
    assert!(
        text.contains("  create vpc -> vpc-"),
        "its own progress lines: {text}"
    );
    assert!(text.contains("apply: complete (23 done"), "{text}");
    let inventory = Inventory::read(&moto).await;
    inventory.assert_baseline(&moto).await;
    assert!(
        text.contains(&format!(
            "output vpc_id = \"{}\"",
            inventory.vpcs[0].vpc_id().unwrap()
        )),
        "{text}"
    );
    assert!(dir.state_file(STACK).exists(), "state at the default location");

    // The full program: the apply finds nothing to do, then it destroys.
    let full = example(&dir, &moto, &[stack]);
    assert!(full.status.success(), "{}\n{}", stdout(&full), stderr(&full));
    let text = stdout(&full);
    assert!(
        text.contains("plan: 0 to create, 0 to update, 0 to replace, 0 to delete"),
        "{text}"
    );
    assert!(text.contains("destroy: complete (23 done"), "{text}");
    assert!(text.contains("  delete vpc"), "{text}");
    Inventory::read(&moto).await.assert_empty();
}

/// A sink cancelling the run once `after` creates have finished.
fn cancel_after(after: usize, cancel: CancelFlag, finished: Arc<AtomicUsize>) -> EventSink {
    Arc::new(move |event: &Event| {
        if let Event::Finished { op: Op::Create, .. } = event
            && finished.fetch_add(1, Ordering::SeqCst) + 1 == after
        {
            cancel.cancel();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_cancelled_midway_keeps_what_it_made_and_a_rerun_converges() {
    let moto = Moto::start();
    let dir = Workdir::new("library-cancel");
    let state = StateLocation::File(dir.path.join("state.json"));
    let text = std::fs::read_to_string(baseline_stack()).unwrap();
    let cancel = CancelFlag::default();
    let finished = Arc::new(AtomicUsize::new(0));
    let options = Options {
        state: Some(state.clone()),
        // One at a time, so the cancel lands with most of the plan left.
        parallelism: 1,
        events: cancel_after(5, cancel.clone(), finished.clone()),
        cancel: cancel.clone(),
        aws: Some(moto.sdk_config().await),
        ..Options::default()
    };
    // Stack text held in memory, named as its file for errors and includes.
    let ws = Workspace::open(StackSource::text(baseline_stack(), text), options).unwrap();

    let first = ws.apply().await.unwrap();
    assert!(first.cancelled, "the run saw the cancel");
    assert!(!first.is_success());
    let (done, failed, _, not_started) = first.report.counts();
    assert_eq!(failed, 0);
    assert!(
        done >= 5 && not_started > 0,
        "done {done}, not started {not_started}"
    );

    // State records exactly what the emulator holds: every recorded VPC,
    // subnet and gateway exists, and nothing owned is unrecorded.
    let recorded = ws.read_state().await.unwrap().expect("state was written");
    assert_eq!(recorded.resources.len(), done, "one record per finished create");
    let inventory = Inventory::read(&moto).await;
    let owned = inventory.vpcs.len()
        + inventory.subnets.len()
        + inventory.internet_gateways.len()
        + inventory.addresses.len()
        + inventory.nat_gateways.len()
        + inventory.policies.len()
        + inventory.repositories.len();
    let recorded_of_those = recorded
        .resources
        .values()
        .filter(|r| {
            [
                "aws.ec2.vpc",
                "aws.ec2.subnet",
                "aws.ec2.internet_gateway",
                "aws.ec2.eip",
                "aws.ec2.nat_gateway",
                "aws.iam.policy",
                "aws.ecr.repository",
            ]
            .contains(&r.kind.as_str())
        })
        .count();
    assert_eq!(owned, recorded_of_those, "the emulator holds what state records");

    // A new workspace (a new run; the flag is not set) converges.
    let options = Options {
        state: Some(state.clone()),
        aws: Some(moto.sdk_config().await),
        ..Options::default()
    };
    let ws = Workspace::open(StackSource::file(baseline_stack()), options).unwrap();
    let second = ws.apply().await.unwrap();
    assert!(second.is_success(), "{:?}", second.report.failures());
    let (done_again, ..) = second.report.counts();
    assert_eq!(done + done_again, 23, "only what was left is made");
    Inventory::read(&moto).await.assert_baseline(&moto).await;
    assert!(!ws.plan().await.unwrap().plan.has_changes(), "nothing left to do");
    assert_eq!(ws.outputs().await.unwrap()["region"], "us-west-2");

    let gone = ws.destroy().await.unwrap();
    assert!(gone.is_success());
    Inventory::read(&moto).await.assert_empty();
}

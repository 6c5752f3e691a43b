//! A failing resource: its dependents are skipped, independent branches
//! finish, the summary names the root cause, and a corrected re-run
//! converges. Ctrl-C: nothing new starts, in-flight work is recorded.

use crate::support::cli::{Workdir, expect_code, meshform, stdout};
use crate::support::moto::Moto;

const STACK: &str = r#"
[stack]
name = "failing"
region = "us-west-2"

[vars]
subnet_cidr = "10.50.1.0/24"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.50.0.0/16"

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "${var.subnet_cidr}"
availability_zone = "${az[0]}"

[resource.table]
type = "aws.ec2.route_table"
vpc_id = "${vpc.id}"

[resource.association]
type = "aws.ec2.route_table_association"
route_table_id = "${table.id}"
subnet_id = "${subnet.id}"

[resource.repository]
type = "aws.ecr.repository"
name = "independent"
"#;

fn state(dir: &Workdir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.state_file("failing")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_skips_dependents_finishes_the_rest_and_names_the_root_cause() {
    let moto = Moto::start();
    let dir = Workdir::new("failure");
    let file = dir.write("failing.toml", STACK);
    let file = file.to_str().unwrap();

    // A subnet outside the VPC's range: the cloud refuses it.
    let out = expect_code(
        meshform(
            &dir.path,
            Some(&moto),
            &[
                "apply",
                file,
                "--auto-approve",
                "--var",
                "subnet_cidr=10.99.1.0/24",
            ],
        ),
        1,
    );
    let text = stdout(&out);
    assert!(text.contains("root cause: subnet (create)"), "{text}");
    assert!(
        text.contains("skipped: association (create) because subnet failed"),
        "{text}"
    );
    let s = state(&dir);
    for done in ["vpc", "table", "repository"] {
        assert!(
            s["resources"].get(done).is_some(),
            "{done} should be created: {s}"
        );
    }
    assert!(s["resources"].get("association").is_none());
    let ecr = moto.ecr().await;
    let repos = ecr
        .describe_repositories()
        .repository_names("independent")
        .send()
        .await
        .unwrap();
    assert_eq!(repos.repositories().len(), 1, "the independent branch finished");

    // Corrected, the same stack converges without touching what exists.
    let vpc_id = s["resources"]["vpc"]["id"].clone();
    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", file, "--auto-approve"]),
        0,
    );
    let s = state(&dir);
    assert_eq!(s["resources"]["vpc"]["id"], vpc_id);
    let ec2 = moto.ec2().await;
    let tables = ec2
        .describe_route_tables()
        .route_table_ids(s["resources"]["table"]["id"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let assoc = tables.route_tables()[0]
        .associations()
        .iter()
        .filter(|a| a.subnet_id().is_some())
        .count();
    assert_eq!(assoc, 1);
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", file, "--detailed-exitcode"]),
        0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_lets_in_flight_work_finish_saves_it_and_starts_nothing_new() {
    let moto = Moto::start();
    let dir = Workdir::new("interrupt");
    let file = dir.write("failing.toml", STACK);
    let file = file.to_str().unwrap();
    let mut cmd = meshform(
        &dir.path,
        Some(&moto),
        &["apply", file, "--auto-approve", "--parallelism", "1"],
    );
    cmd.env("MESHFORM_FAILPOINT", "delay-after-create:vpc")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("failpoint delay-after-create:vpc") {
            // Ctrl-C while the VPC create is in flight.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
            break;
        }
    }
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let mut child_stdout = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut child_stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit non-zero");
    let s = state(&dir);
    assert!(seen.contains("interrupted"), "{seen}");
    assert!(
        s["resources"].get("vpc").is_some(),
        "the in-flight create was recorded: {s}\n{seen}"
    );
    assert_eq!(s["pending"].as_object().map_or(0, |p| p.len()), 0, "{s}");
    // One at a time in plan order: the repository was done and the VPC in
    // flight; nothing started after the interrupt.
    let started: Vec<&str> = seen.lines().filter(|l| l.ends_with("creating...")).collect();
    assert_eq!(
        started,
        vec!["repository: creating...", "vpc: creating..."],
        "{seen}"
    );
    assert!(child_stdout.contains("not started"), "{child_stdout}");
    assert!(child_stdout.contains("Apply interrupted"), "{child_stdout}");

    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", file, "--auto-approve"]),
        0,
    );
    expect_code(
        meshform(&dir.path, Some(&moto), &["plan", file, "--detailed-exitcode"]),
        0,
    );
}

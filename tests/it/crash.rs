//! Crash safety: SIGKILL `meshform apply` and `destroy` at every kind of
//! step (before and after a create's, an update's and a delete's cloud call,
//! before a journal append, between a snapshot's temporary file and its
//! rename, and before and in the middle of a journal compaction), and fail a
//! state write; re-run, and check against the emulator (read back through
//! the SDK) that the stack exists exactly once, or not at all after destroy.

use crate::support::cli::{Workdir, baseline_stack, expect_code, kill_when, meshform, stderr, stdout};
use crate::support::inventory::{Inventory, STACK};
use crate::support::moto::Moto;

/// The state as the next run loads it: the state file (which must be valid
/// JSON after a SIGKILL) with its journal replayed.
fn state(dir: &Workdir) -> serde_json::Value {
    let path = dir.state_file(STACK);
    let text = std::fs::read_to_string(&path).unwrap();
    let _: serde_json::Value = serde_json::from_str(&text).expect("state is valid JSON after a SIGKILL");
    let state = meshform::state::StateStore::read(&path, STACK)
        .expect("state and journal load after a SIGKILL")
        .expect("a state file");
    serde_json::to_value(state).unwrap()
}

/// The state file alone (the last snapshot), parsed.
fn snapshot(dir: &Workdir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.state_file(STACK)).unwrap()).unwrap()
}

/// The journal's bytes; empty when there is none.
fn journal(dir: &Workdir) -> Vec<u8> {
    std::fs::read(meshform::state::journal_path(&dir.state_file(STACK))).unwrap_or_default()
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

// --- every step of a run, not only after a create ---------------------------

/// `apply` of the baseline, one operation at a time, with `extra` arguments.
fn apply_args<'a>(stack: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["apply", stack, "--auto-approve", "--parallelism", "1"];
    args.extend_from_slice(extra);
    args
}

/// The state file's backup, parsed (it must parse whenever it exists).
fn backup(dir: &Workdir) -> Option<serde_json::Value> {
    let mut path = dir.state_file(STACK).into_os_string();
    path.push(".backup");
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("the backup is valid JSON after a SIGKILL"))
}

/// Temporary files a state write left next to the state file.
fn temp_files(dir: &Workdir) -> Vec<std::path::PathBuf> {
    let state_dir = dir.state_file(STACK).parent().unwrap().to_path_buf();
    let prefix = format!(".{STACK}.json.");
    let mut out: Vec<_> = std::fs::read_dir(state_dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.contains(".tmp-")
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Runs meshform with `args`, hanging at the failpoint `spec`, SIGKILLs it
/// there, and checks that the state file and its backup still parse.
/// Returns the stderr seen.
fn kill_at(dir: &Workdir, moto: &Moto, args: &[&str], spec: &str) -> String {
    let mut cmd = meshform(&dir.path, Some(moto), args);
    cmd.env("MESHFORM_FAILPOINT", spec);
    let needle = format!("failpoint {spec} reached");
    let seen = kill_when(cmd, |line, _| line.contains(&needle));
    state(dir);
    backup(dir);
    seen
}

/// Runs meshform with `args` to a zero exit; returns its stderr.
fn succeed(dir: &Workdir, moto: &Moto, args: &[&str]) -> String {
    String::from_utf8_lossy(&expect_code(meshform(&dir.path, Some(moto), args), 0).stderr).into_owned()
}

/// `plan --detailed-exitcode` of the stack with `extra` arguments shows no change.
fn assert_no_changes(dir: &Workdir, moto: &Moto, stack: &str, extra: &[&str]) {
    let mut args = vec!["plan", stack, "--detailed-exitcode"];
    args.extend_from_slice(extra);
    expect_code(meshform(&dir.path, Some(moto), &args), 0);
}

fn pending(s: &serde_json::Value) -> Vec<String> {
    s["pending"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn recorded(s: &serde_json::Value, address: &str) -> bool {
    s["resources"].get(address).is_some()
}

fn tag_of(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_string))
}

fn owned(tags: &[aws_sdk_ec2::types::Tag], address: &str) -> bool {
    tag_of(tags, "meshform:address").as_deref() == Some(address)
}

/// The default route (0.0.0.0/0) of the route table tagged `table`, if the
/// table exists and has one.
fn default_route(inv: &Inventory, table: &str) -> Option<String> {
    inv.route_tables
        .iter()
        .find(|t| owned(t.tags(), table))?
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .map(|r| r.gateway_id().or(r.nat_gateway_id()).unwrap_or("").to_string())
}

/// Whether moto (read back through the SDK) holds the baseline resource at
/// `address`; for the addresses these tests kill at.
fn in_moto(inv: &Inventory, address: &str) -> bool {
    match address {
        "vpc" => !inv.vpcs.is_empty(),
        "public_subnet_1" => inv.subnets.iter().any(|s| owned(s.tags(), address)),
        "nat_gateway_1" => inv.nat_gateways.iter().any(|n| owned(n.tags(), address)),
        "nat_gateway_1_eip" => inv.addresses.iter().any(|a| owned(a.tags(), address)),
        "internet_gateway_attachment" => inv.internet_gateways.iter().any(|g| !g.attachments().is_empty()),
        "default_public_route" => default_route(inv, "public_route_table").is_some(),
        "default_private_route_1" => default_route(inv, "private_route_table_1").is_some(),
        "ecr_repository" => !inv.repositories.is_empty(),
        other => panic!("in_moto does not know {other}"),
    }
}

/// The baseline stack without the TOML tables whose headers are given
/// (each table runs to the next header).
fn baseline_without(headers: &[&str]) -> String {
    let text = std::fs::read_to_string(baseline_stack()).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = headers
                .iter()
                .any(|h| line.trim() == *h || line.starts_with(&format!("{}.", &h[..h.len() - 1])));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_a_create_the_intent_is_retried_and_nothing_is_made_twice() {
    let moto = Moto::start();
    let dir = Workdir::new("before-create");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    let apply = apply_args(stack, &[]);

    // Each depends on the one before, so each run reaches its point after
    // the previous run's; the last is untagged (found by its natural key).
    let points = ["public_subnet_1", "nat_gateway_1", "default_private_route_1"];
    let mut previous: Option<&str> = None;
    for point in points {
        let seen = kill_at(&dir, &moto, &apply, &format!("before-create:{point}"));
        if let Some(prev) = previous {
            assert!(
                seen.contains(&format!(
                    "{prev}: an interrupted run's create made nothing; it will be retried"
                )),
                "{prev} should be looked up and found absent; stderr:\n{seen}"
            );
        }
        // The intent is recorded, the call was not made.
        let s = state(&dir);
        assert_eq!(pending(&s), vec![point.to_string()], "stderr:\n{seen}");
        assert!(!recorded(&s, point), "{point} recorded before its create");
        let inv = Inventory::read(&moto).await;
        assert!(
            !in_moto(&inv, point),
            "{point} exists although killed before its create"
        );
        previous = Some(point);
    }

    let text = succeed(&dir, &moto, &apply);
    assert!(
        text.contains("default_private_route_1: an interrupted run's create made nothing"),
        "{text}"
    );
    let s = state(&dir);
    assert!(pending(&s).is_empty(), "pending left: {}", s["pending"]);
    assert_eq!(s["resources"].as_object().unwrap().len(), 23, "{text}");
    Inventory::read(&moto).await.assert_baseline(&moto).await;
    assert_no_changes(&dir, &moto, stack, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_around_an_update_the_next_run_converges() {
    let moto = Moto::start();
    let dir = Workdir::new("update");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    succeed(&dir, &moto, &apply_args(stack, &[]));
    let first = Inventory::read(&moto).await;
    let vpc_id = first.vpcs[0].vpc_id().unwrap().to_string();

    // A new name prefix changes the Name tag of 13 resources in place.
    let renamed = ["--var", "name_prefix=Renamed"];
    let apply = apply_args(stack, &renamed);
    let seen = kill_at(&dir, &moto, &apply, "after-update:vpc");
    // The cloud has the update, state still the old attributes.
    let inv = Inventory::read(&moto).await;
    assert_eq!(
        tag_of(inv.vpcs[0].tags(), "Name").as_deref(),
        Some("Renamed"),
        "{seen}"
    );
    assert_eq!(
        state(&dir)["resources"]["vpc"]["attributes"]["tags"]["Name"],
        "AppMeshServiceDiscovery"
    );
    // nat_gateway_1 depends (through public_subnet_1) on vpc, so its update
    // is still to come.
    let seen = kill_at(&dir, &moto, &apply, "after-update:nat_gateway_1");
    assert!(
        !seen.contains("vpc: updating..."),
        "the VPC's update was refreshed into state:\n{seen}"
    );
    succeed(&dir, &moto, &apply);
    assert_no_changes(&dir, &moto, stack, &renamed);
    let inv = Inventory::read(&moto).await;
    assert_eq!(inv.vpcs.len(), 1);
    assert_eq!(inv.vpcs[0].vpc_id(), Some(vpc_id.as_str()), "updated in place");
    assert_eq!(inv.nat_gateways.len(), 2);
    for nat in &inv.nat_gateways {
        assert!(
            tag_of(nat.tags(), "Name").is_some_and(|n| n.starts_with("Renamed NAT")),
            "{nat:?}"
        );
    }

    // And back, killed before an update's call, then after another's.
    let apply = apply_args(stack, &[]);
    kill_at(&dir, &moto, &apply, "before-update:vpc");
    assert_eq!(
        tag_of(Inventory::read(&moto).await.vpcs[0].tags(), "Name").as_deref(),
        Some("Renamed"),
        "killed before the call"
    );
    kill_at(&dir, &moto, &apply, "after-update:public_subnet_1");
    succeed(&dir, &moto, &apply);
    let inv = Inventory::read(&moto).await;
    assert_eq!(inv.vpcs[0].vpc_id(), Some(vpc_id.as_str()));
    inv.assert_baseline(&moto).await;
    assert_no_changes(&dir, &moto, stack, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_around_deletes_the_next_run_finishes_the_job() {
    let moto = Moto::start();
    let dir = Workdir::new("delete");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    succeed(&dir, &moto, &apply_args(stack, &[]));

    // An apply that removes resources from the stack, killed after the
    // route's delete returned and before state forgot it.
    let smaller = dir.write(
        "smaller.toml",
        &baseline_without(&[
            "[resource.default_public_route]",
            "[resource.ecr_repository]",
            "[output.ecr_repository_uri]",
        ]),
    );
    let smaller = smaller.to_str().unwrap();
    let seen = kill_at(
        &dir,
        &moto,
        &["apply", smaller, "--auto-approve"],
        "after-delete:default_public_route",
    );
    assert!(recorded(&state(&dir), "default_public_route"), "{seen}");
    assert!(!in_moto(&Inventory::read(&moto).await, "default_public_route"));
    succeed(&dir, &moto, &["apply", smaller, "--auto-approve"]);
    assert_no_changes(&dir, &moto, smaller, &[]);
    let s = state(&dir);
    assert!(!recorded(&s, "default_public_route") && !recorded(&s, "ecr_repository"));
    assert_eq!(s["resources"].as_object().unwrap().len(), 21);
    let inv = Inventory::read(&moto).await;
    assert!(inv.repositories.is_empty() && default_route(&inv, "public_route_table").is_none());
    assert_eq!(
        (inv.vpcs.len(), inv.subnets.len(), inv.nat_gateways.len()),
        (1, 4, 2)
    );
    succeed(&dir, &moto, &apply_args(stack, &[]));
    Inventory::read(&moto).await.assert_baseline(&moto).await;

    // Destroy, killed along a chain of deletes (each waits for the one
    // before: deletes go dependents first), before and after the calls.
    let destroy = ["destroy", stack, "--auto-approve"];
    for (point, address) in [
        ("before-delete", "default_private_route_1"),
        ("after-delete", "nat_gateway_1"),
        ("after-delete", "nat_gateway_1_eip"),
        ("before-delete", "internet_gateway_attachment"),
        ("after-delete", "internet_gateway_attachment"),
        ("after-delete", "vpc"),
    ] {
        let seen = kill_at(&dir, &moto, &destroy, &format!("{point}:{address}"));
        let s = state(&dir);
        assert!(
            recorded(&s, address),
            "{address} forgotten before the write; stderr:\n{seen}"
        );
        let exists = in_moto(&Inventory::read(&moto).await, address);
        assert_eq!(
            exists,
            point == "before-delete",
            "{point}:{address}; stderr:\n{seen}"
        );
    }
    let text = succeed(&dir, &moto, &destroy);
    let s = state(&dir);
    assert_eq!(s["resources"].as_object().map_or(0, |r| r.len()), 0, "{text}");
    assert!(pending(&s).is_empty());
    Inventory::read(&moto).await.assert_empty();
    // Nothing left to do.
    let again = stdout(&expect_code(meshform(&dir.path, Some(&moto), &destroy), 0));
    assert!(again.contains("No changes."), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_the_middle_of_a_state_write_state_stays_whole() {
    let moto = Moto::start();
    let dir = Workdir::new("state-write");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    let renamed = ["--var", "name_prefix=Renamed"];
    let destroy = ["destroy", stack, "--auto-approve"];
    let apply = apply_args(stack, &[]);
    let apply_renamed = apply_args(stack, &renamed);

    // Each run takes the lock, removes the temporary file the previous one
    // left (and replays the journal it left), and is killed in the middle of
    // a write of its own: a snapshot between its temporary file and the
    // rename (the first write of a new state), or just before a journal
    // append. The kill points follow dependencies (vpc, then public_subnet_1
    // on it; deletes in reverse), so each run reaches its point.
    let mut earlier_temps = Vec::new();
    let steps: [(&[&str], &str, &str); 6] = [
        (&apply, "begin-create/vpc", "vpc"),
        (&apply, "finish-create/vpc", "vpc"),
        (&apply, "finish-create/public_subnet_1", "public_subnet_1"),
        (&apply_renamed, "put/vpc", "vpc"),
        (&destroy, "remove/nat_gateway_1", "nat_gateway_1"),
        (&destroy, "remove/vpc", "vpc"),
    ];
    for (n, (args, label, address)) in steps.into_iter().enumerate() {
        if n == 3 {
            // Updates and deletes need the whole stack in place.
            succeed(&dir, &moto, &apply);
            Inventory::read(&moto).await.assert_baseline(&moto).await;
            assert!(
                temp_files(&dir).is_empty(),
                "a finished run leaves no temporary file"
            );
        }
        let seen = kill_at(&dir, &moto, args, &format!("state-write:{label}"));
        let on_disk = state(&dir);
        let temps = temp_files(&dir);
        assert!(temps.len() <= 1, "{label}: {temps:?}");
        assert!(
            temps.iter().all(|t| !earlier_temps.contains(t)),
            "{label}: the previous run's temporary file was not cleaned up"
        );
        // Killed before a journal append: every line in the journal is whole.
        assert!(
            journal(&dir).last().is_none_or(|b| *b == b'\n'),
            "{label}: torn journal"
        );
        let has = |s: &serde_json::Value| match label.split('/').next().unwrap() {
            "begin-create" => pending(s).iter().any(|p| p == address),
            "finish-create" | "remove" => recorded(s, address),
            _ => s["resources"][address]["attributes"]["tags"]["Name"] == "Renamed",
        };
        // The old version is still the state.
        assert_eq!(
            has(&on_disk),
            label.starts_with("remove"),
            "{label}; stderr:\n{seen}"
        );
        // A snapshot write has the new version whole in its temporary file.
        if let Some(temp) = temps.first() {
            let next: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(temp).unwrap()).unwrap();
            assert_eq!(
                next["serial"].as_u64(),
                on_disk["serial"].as_u64().map(|s| s + 1),
                "{label}; stderr:\n{seen}"
            );
            assert_eq!(has(&next), !label.starts_with("remove"), "{label}: new version");
        }
        earlier_temps.extend(temps);
        if n == 3 {
            succeed(&dir, &moto, &apply_renamed);
            assert_no_changes(&dir, &moto, stack, &renamed);
            assert_eq!(
                tag_of(Inventory::read(&moto).await.vpcs[0].tags(), "Name").as_deref(),
                Some("Renamed")
            );
        }
    }
    succeed(&dir, &moto, &destroy);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
    let s = state(&dir);
    assert_eq!(s["resources"].as_object().map_or(0, |r| r.len()), 0);
    assert!(pending(&s).is_empty());
    Inventory::read(&moto).await.assert_empty();
}

/// Kills a run just before it compacts its journal (the state file old,
/// the journal holding the run's changes), then in the middle of a
/// compaction (the new state file in place, the journal not yet removed),
/// then while a run compacts the journal a killed run left: nothing is lost
/// and nothing applied twice, and the re-run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_around_a_journal_compaction_nothing_is_lost_or_applied_twice() {
    let moto = Moto::start();
    let dir = Workdir::new("compaction");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    let apply = apply_args(stack, &[]);
    let renamed = ["--var", "name_prefix=Renamed"];
    let apply_renamed = apply_args(stack, &renamed);
    let name = |s: &serde_json::Value| s["resources"]["vpc"]["attributes"]["tags"]["Name"].clone();

    // The run's changes (all of them, or those up to a compaction when the
    // journal outgrew the state file) are in the journal, not in the state
    // file.
    let seen = kill_at(&dir, &moto, &apply, "state-compact:start");
    let s = state(&dir);
    assert!(!journal(&dir).is_empty(), "{seen}");
    assert!(
        snapshot(&dir)["serial"].as_u64() < s["serial"].as_u64(),
        "the state file is older than the journal"
    );
    assert!(!s["resources"].as_object().unwrap().is_empty(), "{seen}");

    // The next run replays and compacts it when it loads (before anything
    // else, so no `plan` in between): killed there before the snapshot is
    // written, then after it, before the journal's removal.
    let before = state(&dir);
    kill_at(&dir, &moto, &apply_renamed, "state-compact:start");
    assert_eq!(
        state(&dir),
        before,
        "nothing changed before the load's compaction"
    );
    kill_at(&dir, &moto, &apply_renamed, "state-compact:replaced");
    assert_eq!(snapshot(&dir), before, "the compaction's snapshot is in place");
    assert!(!journal(&dir).is_empty(), "the journal is not yet removed");
    assert_eq!(state(&dir), before, "replaying it again changes nothing");

    // A run killed after its own changes' compaction, before the journal's
    // removal: the journal's records are all in the state file.
    succeed(&dir, &moto, &apply);
    kill_at(&dir, &moto, &apply_renamed, "state-compact:replaced");
    let s = state(&dir);
    assert_eq!(name(&s), "Renamed");
    assert_eq!(s, snapshot(&dir), "nothing applied twice");
    assert!(!journal(&dir).is_empty());

    succeed(&dir, &moto, &apply_renamed);
    assert!(journal(&dir).is_empty(), "a finished run leaves no journal");
    assert_eq!(state(&dir), snapshot(&dir));
    assert_no_changes(&dir, &moto, stack, &renamed);
    let inv = Inventory::read(&moto).await;
    assert_eq!(inv.vpcs.len(), 1);
    assert_eq!(tag_of(inv.vpcs[0].tags(), "Name").as_deref(), Some("Renamed"));
    succeed(&dir, &moto, &["destroy", stack, "--auto-approve"]);
    Inventory::read(&moto).await.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_state_write_stops_the_run_names_the_state_and_the_rerun_converges() {
    let moto = Moto::start();
    let dir = Workdir::new("state-fail");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();
    let state_path = format!(".meshform/{STACK}.json");
    let backup_path = format!("{state_path}.backup");

    // The second point depends (through nat_gateway_1) on the first.
    let mut previous: Option<&str> = None;
    for point in ["public_subnet_1", "default_private_route_1"] {
        let mut cmd = meshform(&dir.path, Some(&moto), &apply_args(stack, &[]));
        cmd.env(
            "MESHFORM_FAILPOINT",
            format!("fail-state-write:finish-create/{point}"),
        );
        let out = expect_code(cmd, 1);
        let (text, err) = (stdout(&out), stderr(&out));
        assert!(
            text.contains(&format!(
                "Apply stopped: state could not be written while recording `create {point}`"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("State: {state_path} holds the last version written")),
            "{text}"
        );
        assert!(text.contains(&format!("Backup: {backup_path}")), "{text}");
        if let Some(prev) = previous {
            assert!(
                err.contains(&format!("{prev}: found ")) && err.contains("created by an interrupted run"),
                "{prev} should be found by the re-run: {err}"
            );
        }

        // Nothing started after the failure: the failing write is the last
        // thing that reached the cloud.
        let lines: Vec<&str> = err.lines().collect();
        let failed_at = lines
            .iter()
            .position(|l| {
                l.contains(&format!(
                    "failpoint fail-state-write:finish-create/{point} reached"
                ))
            })
            .unwrap_or_else(|| panic!("failpoint not reached:\n{err}"));
        let started: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_suffix(": creating..."))
            .collect();
        assert_eq!(started.last(), Some(&point), "{err}");
        assert!(
            lines[failed_at..].iter().all(|l| !l.ends_with("creating...")),
            "a create started after the failed write:\n{err}"
        );
        let not_started = lines.iter().filter(|l| l.contains("create not started")).count();
        let skipped = lines
            .iter()
            .filter(|l| l.contains("create skipped because"))
            .count();
        assert!(not_started > 0, "{err}");

        // State: everything started before is recorded, the failed one is
        // an interrupted create; the cloud has it.
        let s = state(&dir);
        assert_eq!(pending(&s), vec![point.to_string()], "{err}");
        for done in &started[..started.len() - 1] {
            assert!(recorded(&s, done), "{done} not recorded:\n{err}");
        }
        let total = s["resources"].as_object().unwrap().len() + 1 + not_started + skipped;
        assert_eq!(
            total, 23,
            "every step is done, failed, skipped or not started:\n{err}"
        );
        assert!(
            in_moto(&Inventory::read(&moto).await, point),
            "the create was made"
        );
        previous = Some(point);
    }

    let err = succeed(&dir, &moto, &apply_args(stack, &[]));
    assert!(
        err.contains("default_private_route_1: found ") && err.contains("created by an interrupted run"),
        "{err}"
    );
    let s = state(&dir);
    assert!(pending(&s).is_empty());
    assert_eq!(s["resources"].as_object().unwrap().len(), 23);
    Inventory::read(&moto).await.assert_baseline(&moto).await;
    assert_no_changes(&dir, &moto, stack, &[]);

    // A destroy whose write fails stops too; the next destroy finishes.
    let mut cmd = meshform(&dir.path, Some(&moto), &["destroy", stack, "--auto-approve"]);
    cmd.env("MESHFORM_FAILPOINT", "fail-state-write:remove/nat_gateway_1");
    let out = expect_code(cmd, 1);
    assert!(
        stdout(&out)
            .contains("Destroy stopped: state could not be written while recording `delete nat_gateway_1`"),
        "{}",
        stdout(&out)
    );
    assert!(recorded(&state(&dir), "nat_gateway_1"));
    succeed(&dir, &moto, &["destroy", stack, "--auto-approve"]);
    Inventory::read(&moto).await.assert_empty();
}

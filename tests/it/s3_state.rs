//! Remote state on S3 (moto): the lock made of conditional writes, stale
//! writers refused, SIGKILL and recovery, and the backend itself. Effects
//! are read back from S3 and the emulator through the SDK, never from
//! meshform's own view of its state.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, VersioningConfiguration,
};
use meshform::state::s3::{self, LockRecord, S3Connect, S3Objects, S3Options};
use meshform::state::{ForceUnlock, LockHolder, ResourceState, StateError, StateLocation, StateStore};

use crate::support::cli::{Workdir, baseline_stack, expect_code, meshform, stderr, stdout};
use crate::support::inventory::{Inventory, STACK};
use crate::support::moto::Moto;

const BUCKET: &str = "team-state";
const KEY: &str = "stacks/baseline.json";

fn url() -> String {
    format!("s3://{BUCKET}/{KEY}")
}

/// Creates the bucket (versioned, as the docs advise).
async fn make_bucket(moto: &Moto) {
    let s3 = moto.s3().await;
    s3.create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// An object's bytes, read through the SDK; `None` if missing.
async fn object(moto: &Moto, key: &str) -> Option<Vec<u8>> {
    match moto.s3().await.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => Some(out.body.collect().await.unwrap().to_vec()),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(404), "GetObject {key}: {e:?}");
            None
        }
    }
}

/// The snapshot object, parsed.
async fn snapshot(moto: &Moto, key: &str) -> serde_json::Value {
    serde_json::from_slice(&object(moto, key).await.expect("a snapshot object")).unwrap()
}

/// The journal object's records (its header line dropped).
async fn journal_records(moto: &Moto, key: &str) -> Vec<String> {
    let Some(bytes) = object(moto, &format!("{key}.journal")).await else {
        return Vec::new();
    };
    let text = String::from_utf8(bytes).unwrap();
    text.lines()
        .filter(|l| !l.starts_with("#meshform-journal "))
        .map(str::to_string)
        .collect()
}

async fn lock_record(moto: &Moto, key: &str) -> Option<LockRecord> {
    let bytes = object(moto, &format!("{key}.lock")).await?;
    Some(serde_json::from_slice(&bytes).expect("a lock record"))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A running `meshform` whose stderr a thread collects.
struct Running {
    child: Child,
    seen: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running {
            child,
            seen,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until stderr holds `needle`; panics after `timeout` or if the
    /// process ends first.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader drain what is left.
                std::thread::sleep(Duration::from_millis(200));
                assert!(
                    self.stderr().contains(needle),
                    "ended ({status}) before `{needle}`:\n{}",
                    self.stderr()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it has ended, with its exit code.
    fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().unwrap().map(|s| s.code())
    }

    /// Waits for the end (at most `timeout`) and returns the exit code.
    fn finish(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exited() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `meshform apply` of the baseline against the S3 state, one operation
/// at a time.
fn apply(dir: &Workdir, moto: &Moto) -> Command {
    let stack = baseline_stack();
    let mut cmd = meshform(
        &dir.path,
        Some(moto),
        &[
            "apply",
            stack.to_str().unwrap(),
            "--auto-approve",
            "--parallelism",
            "1",
            "--state",
            &url(),
        ],
    );
    cmd.env_remove(s3::LOCK_TTL_ENV);
    cmd
}

/// Another meshform command on the baseline against the S3 state.
fn command(dir: &Workdir, moto: &Moto, args: &[&str]) -> Command {
    let stack = baseline_stack();
    let mut all = vec![args[0], stack.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    let state = url();
    all.extend_from_slice(&["--state", &state]);
    let mut cmd = meshform(&dir.path, Some(moto), &all);
    cmd.env_remove(s3::LOCK_TTL_ENV);
    cmd
}

/// Asserts that the emulator holds the baseline exactly once and that a
/// plan against the S3 state has nothing to do.
async fn assert_converged(moto: &Moto, dir: &Workdir) {
    let inventory = Inventory::read(moto).await;
    assert_eq!(inventory.vpcs.len(), 1);
    assert_eq!(inventory.subnets.len(), 4);
    inventory.assert_baseline(moto).await;
    expect_code(command(dir, moto, &["plan", "--detailed-exitcode"]), 0);
    assert!(
        object(moto, &format!("{KEY}.lock")).await.is_none(),
        "the lock is released"
    );
}

// --- through the CLI ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_started_together_one_runs_and_the_other_names_the_holder() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let (one, two) = (Workdir::new("s3-together-1"), Workdir::new("s3-together-2"));
    let resume = one.path.join("resume");
    let start = |dir: &Workdir| {
        let mut cmd = apply(dir, &moto);
        // Whoever gets the lock pauses after its first create, so the
        // other certainly runs while it is held.
        cmd.env("MESHFORM_FAILPOINT", "wait-after-create:vpc")
            .env("MESHFORM_FAILPOINT_RESUME", &resume);
        Running::start(cmd)
    };
    let mut runs = [start(&one), start(&two)];
    let started = Instant::now();
    let loser = loop {
        if let Some(i) = (0..2).find(|&i| runs[i].exited().is_some()) {
            break i;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "neither run ended");
        std::thread::sleep(Duration::from_millis(50));
    };
    let winner = 1 - loser;
    let code = runs[loser].finish(Duration::from_secs(5));
    assert_eq!(code, Some(1), "{}", runs[loser].stderr());
    let message = runs[loser].stderr();
    let holder_pid = runs[winner].pid();
    assert!(
        message.contains(&format!("pid {holder_pid}")),
        "names the holder's pid: {message}"
    );
    assert!(message.contains(&host()), "names the host: {message}");
    assert!(
        message.contains("meshform") && message.contains("apply"),
        "names the command: {message}"
    );
    assert!(
        message.contains(&format!("s3://{BUCKET}/{KEY}.lock")),
        "{message}"
    );
    assert!(message.contains("force-unlock"), "says how to recover: {message}");
    // The lock object names the winner.
    let lock = lock_record(&moto, KEY).await.expect("held");
    assert_eq!(lock.holder.pid, holder_pid);

    runs[winner].wait_for(
        "failpoint wait-after-create:vpc reached",
        Duration::from_secs(120),
    );
    // The loser made nothing: only the winner's VPC exists.
    assert_eq!(Inventory::read(&moto).await.vpcs.len(), 1);
    std::fs::write(&resume, "").unwrap();
    assert_eq!(
        runs[winner].finish(Duration::from_secs(300)),
        Some(0),
        "{}",
        runs[winner].stderr()
    );
    assert_converged(&moto, &one).await;
    let state = snapshot(&moto, KEY).await;
    assert_eq!(state["resources"].as_object().unwrap().len(), 23);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lock_was_broken_cannot_overwrite_the_newer_state() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let (dir_a, dir_b) = (Workdir::new("s3-broken-a"), Workdir::new("s3-broken-b"));
    let resume = dir_a.path.join("resume");

    // A pauses after creating the VPC, before recording it.
    let mut cmd = apply(&dir_a, &moto);
    cmd.env("MESHFORM_FAILPOINT", "wait-after-create:vpc")
        .env("MESHFORM_FAILPOINT_RESUME", &resume);
    let mut a = Running::start(cmd);
    a.wait_for(
        "failpoint wait-after-create:vpc reached",
        Duration::from_secs(120),
    );

    // Its lock is broken by hand, and B takes the lock and writes.
    let unlocked = expect_code(command(&dir_b, &moto, &["force-unlock"]), 0);
    assert!(
        stdout(&unlocked).contains(&format!("removed the lock held by pid {}", a.pid())),
        "{}",
        stdout(&unlocked)
    );
    let b = expect_code(apply(&dir_b, &moto), 0);
    let b_state = object(&moto, KEY).await.expect("B's snapshot");
    let b_json: serde_json::Value = serde_json::from_slice(&b_state).unwrap();
    assert_eq!(
        b_json["resources"].as_object().unwrap().len(),
        23,
        "{}",
        stderr(&b)
    );

    // A resumes: its next write is refused, and it stops.
    std::fs::write(&resume, "").unwrap();
    let code = a.finish(Duration::from_secs(120));
    let message = a.stderr();
    assert_ne!(code, Some(0), "{message}");
    assert!(message.contains("changed by another run"), "{message}");
    assert!(message.contains(&format!("s3://{BUCKET}/{KEY}")), "{message}");

    // The objects are B's: same snapshot bytes, serial and lineage; A
    // added no journal record and left no lock.
    let after = object(&moto, KEY).await.unwrap();
    assert_eq!(after, b_state, "the snapshot is still B's");
    let after: serde_json::Value = serde_json::from_slice(&after).unwrap();
    assert_eq!(after["serial"], b_json["serial"]);
    assert_eq!(after["lineage"], b_json["lineage"]);
    assert!(journal_records(&moto, KEY).await.is_empty());
    assert!(object(&moto, &format!("{KEY}.lock")).await.is_none());
    // The backup is B's too: the state B started from, not A's.
    let backup: serde_json::Value =
        serde_json::from_slice(&object(&moto, &format!("{KEY}.backup")).await.unwrap()).unwrap();
    assert!(backup["serial"].as_u64().unwrap() < after["serial"].as_u64().unwrap());
    assert_converged(&moto, &dir_b).await;
}

/// Starts an apply hanging at its first create's failpoint and SIGKILLs it
/// there; returns its pid.
fn kill_mid_apply(dir: &Workdir, moto: &Moto, ttl: Option<&str>) -> u32 {
    let mut cmd = apply(dir, moto);
    cmd.env("MESHFORM_FAILPOINT", "after-create:vpc");
    if let Some(ttl) = ttl {
        cmd.env(s3::LOCK_TTL_ENV, ttl);
    }
    let mut run = Running::start(cmd);
    run.wait_for("failpoint after-create:vpc reached", Duration::from_secs(120));
    let pid = run.pid();
    // SIGKILL: no cleanup of any kind runs in the child.
    run.kill();
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_apply_leaves_a_lock_naming_it_until_force_unlock_then_converges() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let dir = Workdir::new("s3-kill");
    let dead = kill_mid_apply(&dir, &moto, None);
    assert_eq!(
        lock_record(&moto, KEY).await.expect("left behind").holder.pid,
        dead
    );

    let refused = expect_code(apply(&dir, &moto), 1);
    let message = stderr(&refused);
    assert!(message.contains(&format!("pid {dead}")), "{message}");
    assert!(
        message.contains("force-unlock") && message.contains(&format!("--state {}", url())),
        "says how to recover, naming the remote state: {message}"
    );
    assert_eq!(
        Inventory::read(&moto).await.vpcs.len(),
        1,
        "only the killed run's VPC"
    );

    let unlocked = expect_code(command(&dir, &moto, &["force-unlock"]), 0);
    assert!(
        stdout(&unlocked).contains(&format!("removed the lock held by pid {dead}")),
        "{}",
        stdout(&unlocked)
    );
    expect_code(apply(&dir, &moto), 0);
    assert_converged(&moto, &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_apply_lock_expires_and_the_next_run_takes_it_over() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let dir = Workdir::new("s3-expire");
    let dead = kill_mid_apply(&dir, &moto, Some("5"));
    let lock = lock_record(&moto, KEY).await.expect("left behind");
    assert_eq!(lock.holder.pid, dead);
    assert_eq!(lock.ttl_secs, 5);
    // Wait (by the lock's own expiry) until it has expired.
    while !lock_record(&moto, KEY).await.expect("not released").expired() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let next = expect_code(apply(&dir, &moto), 0);
    let message = stderr(&next);
    assert!(
        message.contains("ended without releasing the state lock")
            && message.contains(&format!("pid {dead}")),
        "the expired holder is reported: {message}"
    );
    assert_converged(&moto, &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_file_state_key_and_read_only_commands() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let dir = Workdir::new("s3-stack-key");
    // The baseline with `[stack] state` naming the bucket.
    let text = std::fs::read_to_string(baseline_stack()).unwrap().replacen(
        "region = \"us-west-2\"",
        &format!("region = \"us-west-2\"\nstate = \"{}\"", url()),
        1,
    );
    let stack = dir.write("baseline.toml", &text);
    let stack = stack.to_str().unwrap();
    expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );
    assert!(!dir.state_file(STACK).exists(), "no local state file");
    assert_eq!(snapshot(&moto, KEY).await["stack"], STACK);
    let listed = expect_code(meshform(&dir.path, Some(&moto), &["state", "list", stack]), 0);
    assert_eq!(stdout(&listed).lines().count(), 23, "{}", stdout(&listed));
    let out = expect_code(meshform(&dir.path, Some(&moto), &["output", stack, "--json"]), 0);
    assert!(stdout(&out).contains("vpc-"), "{}", stdout(&out));
    // --state overrides the stack's key.
    let elsewhere = expect_code(
        meshform(
            &dir.path,
            Some(&moto),
            &[
                "state",
                "list",
                stack,
                "--state",
                &format!("s3://{BUCKET}/other.json"),
            ],
        ),
        0,
    );
    assert!(
        stdout(&elsewhere).contains("no state at s3://"),
        "{}",
        stdout(&elsewhere)
    );
    let rm = expect_code(
        meshform(&dir.path, Some(&moto), &["state", "rm", stack, "ecr_repository"]),
        0,
    );
    assert!(
        stdout(&rm).contains(&format!("s3://{BUCKET}/{KEY}.backup")),
        "{}",
        stdout(&rm)
    );
    assert!(
        snapshot(&moto, KEY).await["resources"]
            .get("ecr_repository")
            .is_none()
    );
    // Versioning keeps every earlier snapshot.
    let versions = moto
        .s3()
        .await
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(KEY)
        .send()
        .await
        .unwrap();
    let of_snapshot = versions
        .versions()
        .iter()
        .filter(|v| v.key() == Some(KEY))
        .count();
    assert!(of_snapshot >= 2, "{of_snapshot} versions");
}

// --- the backend in process ----------------------------------------------------

async fn connect(moto: &Moto) -> S3Connect {
    S3Connect::Config(Box::new(moto.sdk_config().await))
}

fn location(key: &str) -> StateLocation {
    StateLocation::parse(&format!("s3://{BUCKET}/{key}")).unwrap()
}

fn objects(key: &str) -> S3Objects {
    S3Objects {
        bucket: BUCKET.to_string(),
        key: key.to_string(),
    }
}

async fn open(moto: &Moto, key: &str, ttl: u64) -> Result<(StateStore, Option<LockHolder>), StateError> {
    location(key)
        .open_s3(
            connect(moto).await,
            "dev",
            LockHolder::current("meshform test"),
            S3Options {
                lock_ttl: Duration::from_secs(ttl),
            },
        )
        .await
}

fn vpc(padding: usize) -> ResourceState {
    ResourceState {
        kind: "aws.ec2.vpc".to_string(),
        id: "vpc-1".to_string(),
        attributes: serde_json::json!({"cidr_block": "10.0.0.0/16", "note": "x".repeat(padding)})
            .as_object()
            .unwrap()
            .clone(),
        dependencies: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_second_lock_is_refused_and_drop_releases() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let (first, stale) = open(&moto, "a.json", 300).await.unwrap();
    assert!(stale.is_none());
    let holder = lock_record(&moto, "a.json").await.unwrap().holder;
    assert_eq!(holder.pid, std::process::id());
    assert!(!holder.user.is_empty());
    match open(&moto, "a.json", 300).await {
        Err(StateError::Locked {
            path,
            holder: Some(h),
        }) => {
            assert_eq!(path, PathBuf::from(format!("s3://{BUCKET}/a.json.lock")));
            assert_eq!(*h, holder);
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    assert!(object(&moto, "a.json.lock").await.is_none(), "released on drop");
    let (again, stale) = open(&moto, "a.json", 300).await.unwrap();
    assert!(stale.is_none(), "a clean release leaves nothing stale");
    drop(again);

    // A lock that is not a lock record blocks, naming no holder.
    moto.s3()
        .await
        .put_object()
        .bucket(BUCKET)
        .key("a.json.lock")
        .body(b"garbage".to_vec().into())
        .send()
        .await
        .unwrap();
    assert!(matches!(
        open(&moto, "a.json", 300).await,
        Err(StateError::Locked { holder: None, .. })
    ));
    assert_eq!(
        s3::force_unlock(connect(&moto).await, &objects("a.json"))
            .await
            .unwrap(),
        ForceUnlock::Removed(None)
    );
    assert_eq!(
        s3::force_unlock(connect(&moto).await, &objects("a.json"))
            .await
            .unwrap(),
        ForceUnlock::WasStale(None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_stale_writer_is_refused_by_if_match() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let (mut a, _) = open(&moto, "b.json", 300).await.unwrap();
    a.put_resource("vpc", vpc(10)).unwrap();
    a.put_resource("vpc2", vpc(10)).unwrap();
    assert_eq!(
        journal_records(&moto, "b.json").await.len(),
        1,
        "the second write is journaled"
    );

    // A's lock is broken, and B writes.
    let removed = s3::force_unlock(connect(&moto).await, &objects("b.json"))
        .await
        .unwrap();
    assert!(matches!(removed, ForceUnlock::Removed(Some(_))), "{removed:?}");
    let (mut b, _) = open(&moto, "b.json", 300).await.unwrap();
    assert_eq!(b.state().serial, 2, "B sees A's journaled write");
    b.put_resource("vpc3", vpc(10)).unwrap();
    let b_snapshot = object(&moto, "b.json").await.unwrap();
    let b_journal = object(&moto, "b.json.journal").await.unwrap();

    // A's append (If-Match on the journal it last wrote) is refused ...
    let err = a.put_resource("vpc4", vpc(10)).expect_err("stale append");
    assert!(matches!(err, StateError::Superseded { .. }), "{err:?}");
    assert!(err.to_string().contains("b.json.journal"), "{err}");
    // ... and so is its next write, a snapshot (If-Match on the snapshot).
    b.close().unwrap();
    let b_snapshot_closed = object(&moto, "b.json").await.unwrap();
    assert_ne!(b_snapshot_closed, b_snapshot, "B compacted");
    let err = a.put_resource("vpc4", vpc(10)).expect_err("stale snapshot");
    assert!(matches!(err, StateError::Superseded { .. }), "{err:?}");
    assert!(!a.state().resources.contains_key("vpc4"));
    drop(a);
    assert_eq!(
        object(&moto, "b.json").await.unwrap(),
        b_snapshot_closed,
        "still B's"
    );
    assert_ne!(object(&moto, "b.json.journal").await.unwrap(), b_journal);
    assert!(journal_records(&moto, "b.json").await.is_empty());
    let state: serde_json::Value = serde_json::from_slice(&b_snapshot_closed).unwrap();
    assert_eq!(state["serial"], 3);
    assert!(state["resources"].get("vpc3").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_renews_its_lock_and_a_refused_renewal_stops_every_write() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let (mut a, _) = open(&moto, "c.json", 3).await.unwrap();
    a.put_resource("vpc", vpc(10)).unwrap();
    let first = lock_record(&moto, "c.json").await.unwrap();
    // Renewed every second; alive past its 3 s TTL.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let later = lock_record(&moto, "c.json").await.unwrap();
    assert_eq!(later.lock_id, first.lock_id);
    assert!(
        later.expires_unix > first.expires_unix,
        "{first:?} then {later:?}"
    );
    assert!(!later.expired());
    assert!(matches!(
        open(&moto, "c.json", 3).await,
        Err(StateError::Locked { .. })
    ));
    a.put_resource("vpc2", vpc(10)).unwrap();

    // The lock is removed by hand: the next renewal is refused, and then
    // writes fail although their own If-Match would pass.
    s3::force_unlock(connect(&moto).await, &objects("c.json"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let journal = object(&moto, "c.json.journal").await.unwrap();
    let err = a.put_resource("vpc3", vpc(10)).expect_err("lock lost");
    assert!(matches!(err, StateError::Superseded { .. }), "{err:?}");
    assert!(err.to_string().contains("renewing it was refused"), "{err}");
    assert_eq!(
        object(&moto, "c.json.journal").await.unwrap(),
        journal,
        "nothing written"
    );
    // Dropping it neither compacts nor touches a lock it does not hold.
    let (b, stale) = open(&moto, "c.json", 300).await.unwrap();
    assert!(stale.is_none());
    let b_lock = lock_record(&moto, "c.json").await.unwrap();
    drop(a);
    assert_eq!(lock_record(&moto, "c.json").await.unwrap(), b_lock);
    assert_eq!(b.state().serial, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_journal_is_read_and_compacted_at_its_limit() {
    let moto = Moto::start();
    make_bucket(&moto).await;
    let (mut store, _) = open(&moto, "d.json", 300).await.unwrap();
    store.put_resource("vpc", vpc(10)).unwrap();
    let first = object(&moto, "d.json").await.unwrap();
    // Journaled: the snapshot object does not change, and an unlocked
    // reader sees the change.
    store.put_resource("big_0", vpc(4_000)).unwrap();
    assert_eq!(object(&moto, "d.json").await.unwrap(), first);
    let read = s3::read(connect(&moto).await, &objects("d.json"), "dev")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&read, store.state());
    assert!(read.resources.contains_key("big_0"));

    // ~4 KiB records: the journal is compacted once past 64 KiB, whatever
    // the snapshot's size, and never grows far beyond that.
    let mut compacted = false;
    for n in 1..40 {
        store.put_resource(&format!("big_{n}"), vpc(4_000)).unwrap();
        let journal = object(&moto, "d.json.journal").await.unwrap_or_default();
        assert!(
            journal.len() < 64 * 1024 + 8 * 1024,
            "journal {} bytes",
            journal.len()
        );
        let snapshot: serde_json::Value =
            serde_json::from_slice(&object(&moto, "d.json").await.unwrap()).unwrap();
        if snapshot["serial"].as_u64().unwrap() > 1 {
            compacted = true;
        }
        let read = s3::read(connect(&moto).await, &objects("d.json"), "dev")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&read, store.state(), "after write {n}");
    }
    assert!(compacted, "compacted during the run");
    let expected = store.state().clone();
    store.close().unwrap();
    assert!(journal_records(&moto, "d.json").await.is_empty());
    let snapshot: meshform::state::State =
        serde_json::from_slice(&object(&moto, "d.json").await.unwrap()).unwrap();
    assert_eq!(snapshot, expected);
    let backup: meshform::state::State =
        serde_json::from_slice(&object(&moto, "d.json.backup").await.unwrap()).unwrap();
    assert!(backup.serial < snapshot.serial);
    assert!(object(&moto, "d.json.lock").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_an_emptied_journal_is_never_the_same_object_twice() {
    // A compacts (its journal is emptied), loses its lock, and B appends and
    // compacts: the journal is empty again. Were the two empty journals the
    // same bytes (the same ETag), A's stale append would pass If-Match and
    // land on B's state.
    let moto = Moto::start();
    make_bucket(&moto).await;
    let (mut a, _) = open(&moto, "e.json", 300).await.unwrap();
    a.put_resource("vpc", vpc(10)).unwrap();
    a.put_resource("vpc2", vpc(10)).unwrap();
    a.compact().unwrap();
    assert!(journal_records(&moto, "e.json").await.is_empty());
    s3::force_unlock(connect(&moto).await, &objects("e.json"))
        .await
        .unwrap();
    let (mut b, _) = open(&moto, "e.json", 300).await.unwrap();
    b.put_resource("vpc3", vpc(10)).unwrap();
    b.close().unwrap();
    assert!(journal_records(&moto, "e.json").await.is_empty());
    let err = a.put_resource("vpc4", vpc(10)).expect_err("stale append");
    assert!(matches!(err, StateError::Superseded { .. }), "{err:?}");
    drop(a);
    assert!(
        journal_records(&moto, "e.json").await.is_empty(),
        "nothing appended"
    );
    let state = s3::read(connect(&moto).await, &objects("e.json"), "dev")
        .await
        .unwrap()
        .unwrap();
    assert!(state.resources.contains_key("vpc3") && !state.resources.contains_key("vpc4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_a_missing_bucket_is_a_clear_error() {
    let moto = Moto::start();
    let err = StateLocation::parse("s3://no-such-bucket/x.json")
        .unwrap()
        .open_s3(
            connect(&moto).await,
            "dev",
            LockHolder::current("meshform test"),
            S3Options::default(),
        )
        .await
        .map(|_| ())
        .expect_err("no bucket");
    assert!(matches!(err, StateError::Remote { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("s3://no-such-bucket/x.json.lock") && text.contains("NoSuchBucket"),
        "{text}"
    );
}

//! The state lock: a second concurrent run fails at once naming the
//! holder; state stays valid; a dead holder does not block the next run.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::cli::{Workdir, baseline_stack, expect_code, meshform, stderr, stdout};
use crate::support::inventory::STACK;
use crate::support::moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_apply_fails_fast_naming_the_holder() {
    let moto = Moto::start();
    let dir = Workdir::new("lock");
    let stack = baseline_stack();
    let stack = stack.to_str().unwrap();

    // The first apply holds the lock, paused in the middle of its work.
    let mut first = meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]);
    first
        .env("MESHFORM_FAILPOINT", "after-create:vpc")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut first = KillOnDrop(first.spawn().unwrap());
    let mut lines = BufReader::new(first.0.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("first apply ended early").unwrap();
        if line.contains("failpoint after-create:vpc") {
            break;
        }
    }

    let started = Instant::now();
    let second = expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        1,
    );
    let elapsed = started.elapsed();
    let message = stderr(&second);
    assert!(
        message.contains("locked") || message.contains("is held by"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", first.0.id())),
        "names the holder's pid: {message}"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(message.contains(host.trim()), "names the host: {message}");
    assert!(message.contains("force-unlock"), "says how to recover: {message}");
    // "At once": no waiting for the lock (generous bound for a slow machine;
    // the point is that it does not wait for the first run, which never ends).
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    // plan takes the lock as well.
    expect_code(meshform(&dir.path, Some(&moto), &["plan", stack]), 1);

    let text = std::fs::read_to_string(dir.state_file(STACK)).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).expect("state is valid JSON");
    assert_eq!(state["stack"], STACK);

    first.0.kill().unwrap();
    first.0.wait().unwrap();
    // The dead holder's lock does not block: the OS released it, and the
    // next run says whose it was.
    let next = expect_code(
        meshform(&dir.path, Some(&moto), &["apply", stack, "--auto-approve"]),
        0,
    );
    assert!(
        stderr(&next).contains("ended without releasing the state lock"),
        "{}",
        stderr(&next)
    );
    let unlock = expect_code(meshform(&dir.path, Some(&moto), &["force-unlock", stack]), 0);
    assert!(stdout(&unlock).contains("not locked"), "{}", stdout(&unlock));
}

/// Kills the child if the test fails before it does (it would otherwise
/// hang on its failpoint forever).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! The live progress view: on a terminal (a pseudo-terminal here) apply
//! and destroy redraw the steps in flight in place with done/total and end
//! with the summary; on a pipe, or with TERM=dumb, progress stays the plain
//! one-line events other tests parse; `--progress` forces either.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use crate::support::cli::{Workdir, meshform, stderr, stdout};
use crate::support::moto::Moto;

const STACK: &str = r#"
[stack]
name = "progress"
region = "us-west-2"

[resource.vpc]
type = "aws.ec2.vpc"
cidr_block = "10.60.0.0/16"

[resource.subnet]
type = "aws.ec2.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.60.1.0/24"
availability_zone = "${az[0]}"

[resource.repository]
type = "aws.ecr.repository"
name = "progress-view"

[output.vpc_id]
value = "${vpc.id}"
"#;

/// The cursor-up-and-erase that replaces the live area.
const REDRAW: &str = "A\r\x1b[J";

/// A pseudo-terminal: the child writes to `slave`, we read `master`.
/// Both descriptors are close-on-exec from the start, so no other process
/// the test binary spawns meanwhile keeps the terminal open.
struct Pty {
    master: File,
    slave: OwnedFd,
}

fn open_pty(columns: u16) -> Pty {
    // SAFETY: plain libc calls on descriptors this function owns; each
    // result is checked before use.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(master >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master_file = File::from_raw_fd(master);
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 256];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(slave >= 0, "open pty slave: {}", std::io::Error::last_os_error());
        let size = libc::winsize {
            ws_row: 40,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(libc::ioctl(master, libc::TIOCSWINSZ, &size), 0);
        Pty {
            master: master_file,
            slave: OwnedFd::from_raw_fd(slave),
        }
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with its stderr on a pseudo-terminal and stdout on a pipe.
fn run_on_terminal(mut cmd: Command) -> Run {
    let pty = open_pty(120);
    cmd.stdout(Stdio::piped()).stderr(Stdio::from(pty.slave));
    let child = cmd.spawn().unwrap();
    // The command holds the slave too: closed, only the child has it, and
    // reading the master ends (EIO) once the child exits.
    drop(cmd);
    let mut master = pty.master;
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: reader.join().unwrap(),
    }
}

fn run_on_pipes(mut cmd: Command) -> Run {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: stdout(&out),
        stderr: stderr(&out),
    }
}

fn command(dir: &Workdir, moto: &Moto, args: &[&str], term: &str) -> Command {
    let mut cmd = meshform(&dir.path, Some(moto), args);
    cmd.env("TERM", term).env_remove("MESHFORM_PROGRESS");
    cmd
}

fn assert_ok(run: &Run) {
    assert_eq!(
        run.code,
        Some(0),
        "--- stdout\n{}\n--- stderr\n{:?}",
        run.stdout,
        run.stderr
    );
}

/// The plain lines of a run that created the stack's three resources.
fn assert_plain_create_lines(err: &str) {
    assert!(
        !err.contains('\x1b'),
        "no terminal codes on plain output: {err:?}"
    );
    for address in ["vpc", "subnet", "repository"] {
        assert!(err.contains(&format!("{address}: creating...\n")), "{err}");
    }
    assert!(err.contains("vpc: created vpc-"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_apply_and_destroy_redraw_live_frames_and_end_with_the_summary() {
    let moto = Moto::start();
    let dir = Workdir::new("progress-live");
    let file = dir.write("progress.toml", STACK);
    let file = file.to_str().unwrap();

    let apply = run_on_terminal(command(&dir, &moto, &["apply", file, "--auto-approve"], "xterm"));
    assert_ok(&apply);
    let err = &apply.stderr;
    // The first frame: nothing done yet out of the three steps.
    assert!(err.contains("applying: 0/3 done"), "{err:?}");
    // The live area was redrawn in place (at least when it was cleared).
    assert!(err.contains(REDRAW), "{err:?}");
    // Ended steps scroll above it, with their ids and human times...
    assert!(err.contains("vpc: created vpc-"), "{err:?}");
    assert!(err.contains("repository: created "), "{err:?}");
    // ...and start lines are not printed: the live area shows them.
    assert!(!err.contains("creating..."), "{err:?}");
    // The summary, with duration and outputs, is on stdout as always.
    let (_, outputs) = apply
        .stdout
        .split_once("\nOutputs:\n")
        .unwrap_or_else(|| panic!("no outputs after the summary:\n{}", apply.stdout));
    let vpc_id = outputs
        .lines()
        .find_map(|l| l.trim().strip_prefix("vpc_id = "))
        .unwrap_or_else(|| panic!("no vpc_id output in:\n{}", apply.stdout));
    assert!(
        apply
            .stdout
            .contains("Apply complete: 3 operations on stack `progress` in "),
        "{}",
        apply.stdout
    );
    // The output names the VPC moto holds.
    let vpcs = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "{vpc_id}");

    // TERM=dumb: a terminal that cannot move its cursor gets plain lines.
    let destroy = run_on_terminal(command(&dir, &moto, &["destroy", file, "--auto-approve"], "dumb"));
    assert_ok(&destroy);
    assert!(!destroy.stderr.contains('\x1b'), "{:?}", destroy.stderr);
    assert!(destroy.stderr.contains("vpc: deleting..."), "{}", destroy.stderr);
    assert!(
        destroy
            .stdout
            .contains("Destroy complete: 3 operations on stack `progress` in "),
        "{}",
        destroy.stdout
    );
    assert!(!destroy.stdout.contains("Outputs:"), "{}", destroy.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_pipe_progress_is_plain_lines_unless_live_is_asked_for() {
    let moto = Moto::start();
    let dir = Workdir::new("progress-plain");
    let file = dir.write("progress.toml", STACK);
    let file = file.to_str().unwrap();

    // TERM says xterm, but stderr is a pipe: plain lines, as CI logs want.
    let apply = run_on_pipes(command(&dir, &moto, &["apply", file, "--auto-approve"], "xterm"));
    assert_ok(&apply);
    assert_plain_create_lines(&apply.stderr);
    assert!(
        apply.stdout.contains("Apply complete: 3 operations"),
        "{}",
        apply.stdout
    );

    // `--progress live` draws the live view even on a pipe.
    let destroy = run_on_pipes(command(
        &dir,
        &moto,
        &["destroy", file, "--auto-approve", "--progress", "live"],
        "xterm",
    ));
    assert_ok(&destroy);
    assert!(
        destroy.stderr.contains("destroying: 0/3 done"),
        "{:?}",
        destroy.stderr
    );
    assert!(destroy.stderr.contains(REDRAW), "{:?}", destroy.stderr);
    assert!(
        destroy.stderr.contains("vpc: deleted vpc-"),
        "{:?}",
        destroy.stderr
    );

    // And MESHFORM_PROGRESS=plain keeps plain lines on a terminal.
    let mut again = command(&dir, &moto, &["apply", file, "--auto-approve"], "xterm");
    again.env("MESHFORM_PROGRESS", "plain");
    let again = run_on_terminal(again);
    assert_ok(&again);
    assert_plain_create_lines(&again.stderr.replace("\r\n", "\n"));
}

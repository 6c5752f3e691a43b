//! Applies a stack and then destroys it through the library API, rendering
//! its own progress: what a tool embedding meshform (a workshop portal, a
//! test rig) does, with no `meshform` binary on PATH.
//!
//! ```sh
//! scripts/moto.sh start 5055 && eval "$(scripts/moto.sh env 5055)"
//! cargo run --example baseline -- stacks/baseline.toml
//! cargo run --example baseline -- stacks/baseline.toml --keep   # apply only
//! ```
//!
//! State goes where the stack says (by default `.meshform/<stack>.json`);
//! `--state PATH` puts it elsewhere. The program prints one line per
//! finished operation, the outputs after the apply, and the counts after
//! each run; it exits non-zero when a run fails.

use std::path::PathBuf;
use std::process::ExitCode;

use meshform::api::{Options, RunReport, StackSource, Workspace, event_channel};
use meshform::engine::Event;
use meshform::sensitive::redact;
use meshform::state::StateLocation;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", redact(&e.to_string()));
            ExitCode::from(1)
        }
    }
}

async fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut stack = PathBuf::from("stacks/baseline.toml");
    let mut state = None;
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep" => keep = true,
            "--state" => {
                let text = args.next().ok_or("--state needs a location")?;
                state = Some(StateLocation::parse(&text)?);
            }
            other => stack = PathBuf::from(other),
        }
    }

    let (events, mut received) = event_channel();
    // The renderer: one line per operation that ends, as it ends.
    let printer = tokio::spawn(async move {
        while let Some(event) = received.recv().await {
            // Events come redacted: sensitive values read "(sensitive)".
            if let Some(line) = describe(&event) {
                println!("{line}");
            }
        }
    });
    let options = Options {
        state,
        events,
        command: "examples/baseline".to_string(),
        ..Options::default()
    };
    let ws = Workspace::open(StackSource::file(&stack), options)?;
    println!(
        "stack `{}` ({} resources), state at {}",
        ws.stack().name,
        ws.stack().resources.len(),
        ws.state_location()
    );

    let apply = ws.prepare_apply().await?;
    let s = &apply.plan().summary;
    println!(
        "plan: {} to create, {} to update, {} to replace, {} to delete",
        s.create, s.update, s.replace, s.delete
    );
    let applied = apply.run().await?;
    report("apply", &applied);
    for (name, value) in ws.outputs().await? {
        println!("output {name} = {}", redact(&value.to_string()));
    }
    if !applied.is_success() {
        return Ok(ExitCode::from(1));
    }
    if keep {
        return Ok(ExitCode::SUCCESS);
    }

    let destroyed = ws.destroy().await?;
    report("destroy", &destroyed);
    drop(ws);
    // Every sender is gone with the workspace: the printer drains and ends.
    printer.await?;
    Ok(if destroyed.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn describe(event: &Event) -> Option<String> {
    match event {
        Event::Finished {
            address,
            op,
            id,
            elapsed,
        } => Some(format!(
            "  {op} {address}{} ({:.1}s)",
            id.as_deref().map(|i| format!(" -> {i}")).unwrap_or_default(),
            elapsed.as_secs_f64()
        )),
        Event::Failed {
            address, op, error, ..
        } => Some(format!("  {op} {address} FAILED: {error}")),
        Event::Warning { address, message } => Some(format!("  warning: {address}: {message}")),
        _ => None,
    }
}

fn report(what: &str, run: &RunReport) {
    let (done, failed, skipped, not_started) = run.report.counts();
    println!(
        "{what}: {} ({done} done, {failed} failed, {skipped} skipped, {not_started} not started) in {:.1}s",
        if run.is_success() { "complete" } else { "FAILED" },
        run.elapsed.as_secs_f64()
    );
}

//! Loads a stack and computes its plan through the library API, the way
//! other tooling embeds meshform.
//!
//! ```sh
//! scripts/moto.sh start 5055 && eval "$(scripts/moto.sh env 5055)"
//! cargo run --example plan -- stacks/baseline.toml
//! ```
//!
//! It reads the stack's state file if there is one (without locking it:
//! this is a read-only look), refreshes the recorded resources, and prints
//! the plan as JSON followed by a one-line summary.

use std::path::PathBuf;
use std::sync::Arc;

use meshform::config::{self, LoadOptions};
use meshform::engine::{Engine, no_events};
use meshform::provider::aws::AwsClients;
use meshform::state::{State, StateStore, default_path};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "stacks/baseline.toml".into())
        .into();
    let stack = match config::load(&path, &LoadOptions::default()) {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("{}", e.messages());
            std::process::exit(1);
        }
    };
    let state =
        StateStore::read(&default_path(&stack.name), &stack.name)?.unwrap_or_else(|| State::new(&stack.name));

    let aws = Arc::new(AwsClients::connect(&stack.region).await);
    let engine = Engine::new(&stack.name, meshform::provider::all_kinds(&aws), no_events());
    let facts = aws.region_facts().await?;
    let prior = engine.refresh(&state).await?;
    let plan = engine.plan(&stack, &prior, &facts)?;

    println!("{}", serde_json::to_string_pretty(&plan)?);
    let s = &plan.summary;
    eprintln!(
        "{}: {} to create, {} to update, {} to replace, {} to delete",
        stack.name, s.create, s.update, s.replace, s.delete
    );
    Ok(())
}

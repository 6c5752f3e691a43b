//! meshform as a library for other tooling, with no CLI on `PATH`: open a
//! stack (a file, or stack text held in memory), then plan, apply, destroy,
//! read outputs. Like Pulumi's Automation API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshform::api::ApiError> {
//! use meshform::api::{Options, StackSource, Workspace};
//!
//! let ws = Workspace::open(StackSource::file("stacks/baseline.toml"), Options::default())?;
//! let run = ws.prepare_apply().await?; // locked, refreshed, planned
//! println!("{} changes", run.plan().summary.create);
//! let done = run.run().await?; // applied, recorded, lock released
//! assert!(done.is_success());
//! println!("{:?}", ws.outputs().await?);
//! # Ok(()) }
//! ```
//!
//! Everything goes through the same path as the `meshform` command, which
//! is itself a thin layer over this module: the state lock is taken before
//! anything is read and held until the run ends, each operation is recorded
//! in state (and its journal) as it happens, a cancelled or crashed run
//! leaves state describing exactly what exists, and a re-run converges.
//!
//! Progress comes as [`Event`]s through [`Options::events`] (a callback;
//! [`event_channel`] turns it into a channel). [`Options::cancel`] stops a
//! run from starting new operations; those in flight finish and are
//! recorded. Events come redacted (sensitive values read `(sensitive)`)
//! unless [`Options::raw_events`] is set.

mod day2;
mod error;
mod run;
mod state_ops;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use day2::Moved;
pub use error::ApiError;
pub use run::{Operation, Prepared, RunReport};
pub use state_ops::Removed;

use crate::Value;
use crate::config::{self, LoadOptions, Stack};
use crate::engine::{Engine, Event, EventSink, no_events};
use crate::graph::CancelFlag;
use crate::plan::Plan;
use crate::provider::{self, aws::AwsClients};
use crate::state::s3::S3Connect;
use crate::state::{LockHolder, State, StateLocation, StateStore};

/// Where a stack's text comes from.
#[derive(Debug, Clone)]
pub enum StackSource {
    /// A stack file; `include`s and `file()`s are relative to it.
    File(PathBuf),
    /// Stack text held in memory. `path` names it in error messages and is
    /// the base for its `include`s and `file()`s (it need not exist).
    Text {
        /// The name errors give the text, such as `generated/stack.toml`.
        path: PathBuf,
        /// The stack's TOML.
        text: String,
    },
}

impl StackSource {
    /// A stack file.
    pub fn file(path: impl Into<PathBuf>) -> StackSource {
        StackSource::File(path.into())
    }

    /// Stack text named `path` in errors.
    pub fn text(path: impl Into<PathBuf>, text: impl Into<String>) -> StackSource {
        StackSource::Text {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// How a [`Workspace`] runs.
#[derive(Clone)]
pub struct Options {
    /// Variable values (`--var name=value`), in order; later ones win.
    pub vars: Vec<(String, String)>,
    /// Where state is kept; `None` for the stack's `[stack] state`, or
    /// else the default (`.meshform/<stack>.json` under the current
    /// directory).
    pub state: Option<StateLocation>,
    /// Plan, apply or destroy only these resources and what they need (for
    /// a destroy: what depends on them); empty for the whole stack. The
    /// plan says it is partial.
    pub targets: Vec<String>,
    /// At most this many cloud operations at once (at least 1).
    pub parallelism: usize,
    /// Receives every progress event.
    pub events: EventSink,
    /// Pass events on as the engine made them, sensitive values included.
    /// By default every text an event carries goes through
    /// [`crate::sensitive::redact`] first.
    pub raw_events: bool,
    /// Set it to stop a run from starting new operations.
    pub cancel: CancelFlag,
    /// What the state lock records as the holder's command.
    pub command: String,
    /// The AWS configuration (endpoint, credentials) to use instead of the
    /// standard chain (environment, profile, `AWS_ENDPOINT_URL`); its
    /// region is replaced by the stack's.
    pub aws: Option<aws_config::SdkConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            vars: Vec::new(),
            state: None,
            targets: Vec::new(),
            parallelism: 10,
            events: no_events(),
            raw_events: false,
            cancel: CancelFlag::default(),
            command: "meshform library".to_string(),
            aws: None,
        }
    }
}

/// An event sink that forwards every event into a channel, and the
/// channel's receiving end. Events are never dropped; the receiver should
/// be drained while a run goes on.
pub fn event_channel() -> (EventSink, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sink: EventSink = Arc::new(move |e: &Event| {
        // A dropped receiver means nobody listens any more: not an error.
        let _ = tx.send(e.clone());
    });
    (sink, rx)
}

/// A plan made by [`Workspace::plan`].
#[derive(Debug)]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// The previous holder of the state lock, when it died holding it.
    pub stale_lock: Option<LockHolder>,
    /// What the plan was made against, for [`Workspace::save_plan`].
    basis: day2::Basis,
}

/// A loaded, validated stack and where its state lives.
pub struct Workspace {
    source: StackSource,
    stack: Stack,
    state: StateLocation,
    options: Options,
}

impl Workspace {
    /// Loads and validates the stack. Bad input fails here, naming the
    /// file, line and column, before anything is read or changed.
    pub fn open(source: StackSource, options: Options) -> Result<Workspace, ApiError> {
        let load = LoadOptions {
            vars: options.vars.clone(),
        };
        let stack = match &source {
            StackSource::File(path) => config::load(path, &load)?,
            StackSource::Text { path, text } => config::load_str(path, text.clone(), &load)?,
        };
        // Given, else the stack's `[stack] state`, else the default file.
        let state = options
            .state
            .clone()
            .or_else(|| stack.state.clone())
            .unwrap_or_else(|| StateLocation::default_for(&stack.name));
        Ok(Workspace {
            source,
            stack,
            state,
            options,
        })
    }

    /// The validated stack.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Where the stack's state is kept.
    pub fn state_location(&self) -> &StateLocation {
        &self.state
    }

    /// The options the workspace runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The stack's plan against the live cloud, changing nothing: state is
    /// read under the lock (so never half-applied), refreshed in memory
    /// only, and the lock is released before this returns.
    pub async fn plan(&self) -> Result<Planned, ApiError> {
        let (store, stale_lock) = self.lock().await?;
        self.check_targets(store.state(), false)?;
        let aws = self.connect().await;
        let engine = self.engine(&aws);
        let facts = aws.region_facts().await?;
        let prior = engine.refresh(store.state()).await?;
        let mut plan = engine.plan(&self.stack, &prior, &facts)?;
        self.restrict(&mut plan, &prior)?;
        engine.preview(&mut plan, &prior).await?;
        // Kept for `save_plan`; what the refresh read is derived there.
        let basis = day2::Basis {
            state: store.state().clone(),
            prior,
            azs: facts.azs,
        };
        Ok(Planned {
            plan,
            stale_lock,
            basis,
        })
    }

    /// Locks state, refreshes it (recording what the refresh finds) and
    /// plans an apply. The returned run holds the lock until it is run or
    /// dropped, so the plan it shows is the plan it applies.
    pub async fn prepare_apply(&self) -> Result<Prepared, ApiError> {
        self.prepare(Operation::Apply).await
    }

    /// Like [`Workspace::prepare_apply`], for deleting every resource state
    /// records.
    pub async fn prepare_destroy(&self) -> Result<Prepared, ApiError> {
        self.prepare(Operation::Destroy).await
    }

    /// Plans and applies the stack in one call.
    pub async fn apply(&self) -> Result<RunReport, ApiError> {
        self.prepare_apply().await?.run().await
    }

    /// Plans and deletes every resource of the stack in one call.
    pub async fn destroy(&self) -> Result<RunReport, ApiError> {
        self.prepare_destroy().await?.run().await
    }

    /// The outputs state records (empty before the first apply). Reads
    /// without locking.
    pub async fn outputs(&self) -> Result<BTreeMap<String, Value>, ApiError> {
        Ok(self.read_state().await?.map(|s| s.outputs).unwrap_or_default())
    }

    /// The state as last written, without locking; `None` before the first
    /// apply.
    pub async fn read_state(&self) -> Result<Option<State>, ApiError> {
        Ok(self.state.read_via(self.s3_connect(), &self.stack.name).await?)
    }

    async fn prepare(&self, operation: Operation) -> Result<Prepared, ApiError> {
        let (mut store, stale) = self.lock().await?;
        // Unknown targets fail before anything is read or written.
        self.check_targets(store.state(), operation == Operation::Destroy)?;
        let aws = self.connect().await;
        let engine = self.engine(&aws);
        let prior = engine.refresh_into(&mut store).await?;
        let (plan, azs) = match operation {
            Operation::Destroy => {
                let mut plan = crate::plan::plan_destroy(&self.stack.name, &self.stack.region, &prior);
                self.restrict(&mut plan, &prior)?;
                (plan, Vec::new())
            }
            Operation::Apply => {
                let facts = aws.region_facts().await?;
                let mut plan = engine.plan(&self.stack, &prior, &facts)?;
                self.restrict(&mut plan, &prior)?;
                engine.preview(&mut plan, &prior).await?;
                (plan, facts.azs)
            }
        };
        Ok(Prepared::new(
            run::Parts {
                operation,
                stack: self.stack.clone(),
                engine,
                store,
                plan,
                azs,
                cancel: self.options.cancel.clone(),
            },
            stale,
        ))
    }

    /// Takes the state lock, recording this process as the holder.
    async fn lock(&self) -> Result<(StateStore, Option<LockHolder>), ApiError> {
        Ok(self
            .state
            .open_via(
                self.s3_connect(),
                &self.stack.name,
                LockHolder::current(&self.options.command),
            )
            .await?)
    }

    /// How an S3 state is reached: through the given SDK configuration,
    /// else the standard chain, in the stack's region.
    pub(super) fn s3_connect(&self) -> S3Connect {
        match &self.options.aws {
            Some(config) => S3Connect::Config(Box::new(self.sdk_config(config))),
            None => S3Connect::Region(self.stack.region.clone()),
        }
    }

    /// `config` in the stack's region.
    fn sdk_config(&self, config: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        config
            .to_builder()
            .region(aws_config::Region::new(self.stack.region.clone()))
            .build()
    }

    async fn connect(&self) -> Arc<AwsClients> {
        Arc::new(match &self.options.aws {
            Some(config) => AwsClients::from_sdk_config(&self.sdk_config(config)),
            None => AwsClients::connect(&self.stack.region).await,
        })
    }

    fn engine(&self, aws: &Arc<AwsClients>) -> Engine {
        Engine::new(
            &self.stack.name,
            provider::all_kinds(aws),
            self.options.events.clone(),
        )
        .with_parallelism(self.options.parallelism)
        .with_cancel(self.options.cancel.clone())
    }
}

//! The library API's one error type.

use crate::config::ConfigError;
use crate::engine::{EngineError, ImportError};
use crate::plan::TargetError;
use crate::plan::saved::SavedPlanError;
use crate::provider::ProviderError;
use crate::state::StateError;
use crate::state::edit::EditError;

/// Why a [`super::Workspace`] operation failed. A step that fails during an
/// apply is not an error here: it is in the run's report.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ApiError {
    /// The stack does not load or validate (file, line and column inside).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),
    /// State cannot be read, written or locked.
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),
    /// Refreshing, planning or starting the apply failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
    /// A `--target` address is neither in the stack nor in state.
    #[error(transparent)]
    #[diagnostic(help("`meshform state list` and the stack file name the addresses"))]
    Target(#[from] TargetError),
    /// A saved plan cannot be read, written or applied (nothing changed).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Saved(#[from] SavedPlanError),
    /// A plan is saved for a stack file: one held in memory cannot be
    /// re-loaded when the plan is applied.
    #[error("a plan can be saved only for a stack read from a file")]
    SavedPlanNeedsFile,
    /// An import was refused or failed (nothing changed).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Import(Box<ImportError>),
    /// A hand edit of state was refused (nothing changed) or not written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Edit(#[from] EditError),
    /// An address state does not track.
    #[error("{location} tracks no resource `{address}`")]
    #[diagnostic(help("{}", match suggestion {
        Some(s) => format!("did you mean `{s}`? (`meshform state list` shows them all)"),
        None => "`meshform state list` shows what state tracks".to_string(),
    }))]
    UnknownAddress {
        /// The state's location.
        location: String,
        /// The address asked for.
        address: String,
        /// A tracked address close to it.
        suggestion: Option<String>,
    },
    /// The region's facts (availability zones) cannot be read.
    #[error("cannot read the region's availability zones: {0}")]
    Region(#[from] ProviderError),
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        ApiError::Import(Box::new(e))
    }
}

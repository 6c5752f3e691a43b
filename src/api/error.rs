//! The library API's one error type.

use crate::config::ConfigError;
use crate::engine::EngineError;
use crate::provider::ProviderError;
use crate::state::StateError;

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

//! Errors of model selection.

use std::path::PathBuf;

/// Everything that can go wrong while selecting a model.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// A device profile name is not known.
    #[error("unknown device profile '{name}' (known: {known})")]
    UnknownDevice {
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// A budget, search space or training setting is out of range.
    #[error("invalid selection setting: {0}")]
    Config(String),
    /// No candidate fits the budget (every one is listed with its reason in the message).
    #[error("no candidate fits the budget:\n{0}")]
    NothingFits(String),
    /// Building a candidate's image failed (export, quantization or compilation).
    #[error("candidate {candidate}: {stage}: {message}")]
    Build {
        /// Candidate name.
        candidate: String,
        /// `export`, `quantize`, `pin input` or `compile`.
        stage: &'static str,
        /// The underlying error.
        message: String,
    },
    /// The image written by the compiler does not parse (a compiler bug).
    #[error("image of {candidate} does not parse: {message}")]
    Image {
        /// Candidate name.
        candidate: String,
        /// The runtime's error.
        message: String,
    },
    /// Training or evaluating a candidate failed.
    #[error(transparent)]
    Audio(#[from] edgeloop_trainer::audio::AudioError),
    /// An error from the trainer (model construction, export).
    #[error(transparent)]
    Trainer(#[from] edgeloop_trainer::TrainerError),
    /// An error from the quantizer or compiler.
    #[error(transparent)]
    Quantize(#[from] edgeloop_quantize::Error),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The front plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl SelectError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SelectError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result type of model selection.
pub type Result<T> = std::result::Result<T, SelectError>;

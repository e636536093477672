//! Errors of the audio task: malformed WAV files, dataset layouts, training and export.

use std::path::PathBuf;

/// Everything that can go wrong while loading audio data or training the keyword model.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A WAV file is malformed or not in the format the front end takes.
    #[error("{path}: {reason}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A dataset folder does not have the expected layout.
    #[error("dataset {path}: {reason}")]
    Layout {
        /// The folder or list file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    Config(String),
    /// The audio front end rejected a buffer.
    #[error("front end: {0}")]
    FrontEnd(edgeloop_runtime::Error),
    /// An error from the model, training or export code.
    #[error(transparent)]
    Trainer(#[from] crate::TrainerError),
}

impl From<candle_core::Error> for AudioError {
    fn from(e: candle_core::Error) -> Self {
        AudioError::Trainer(e.into())
    }
}

impl AudioError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AudioError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result type of the audio task.
pub type Result<T> = std::result::Result<T, AudioError>;

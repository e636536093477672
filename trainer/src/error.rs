//! Errors of the trainer crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, training, checkpointing or exporting a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// An error from candle (tensor shapes, devices, kernels).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON document (config, training state) is malformed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A model or training configuration is inconsistent.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The field at fault.
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A checkpoint or imported weight file lacks a tensor or has one of the wrong shape.
    #[error("weights: tensor `{name}`: {reason}")]
    Weights {
        /// Name of the tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A batch or dataset does not fit the model (token ids beyond the vocabulary, too long, empty).
    #[error("data: {0}")]
    Data(String),
    /// The ONNX export could not express the model.
    #[error("onnx export: {0}")]
    Export(String),
    /// A chart could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// A checkpoint folder fails its integrity check (truncated, corrupted, incomplete).
    #[error("checkpoint {dir}: {reason}")]
    Checkpoint {
        /// The checkpoint folder.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Training diverged (non-finite loss).
    #[error("training diverged at step {step}: loss is {loss}")]
    Diverged {
        /// Optimizer step at which the loss became non-finite.
        step: usize,
        /// The offending loss value.
        loss: f32,
    },
}

/// Result type of the trainer crate.
pub type Result<T> = std::result::Result<T, TrainerError>;

impl TrainerError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error on `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

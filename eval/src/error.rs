//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while computing metrics or writing reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two inputs that must be aligned element by element have different lengths.
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch {
        /// What was being compared (for example "y_true vs y_pred").
        what: String,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },
    /// An input was empty where at least one element is needed.
    #[error("{0}: empty input")]
    Empty(String),
    /// A value is outside its allowed range or is not finite.
    #[error("{what}: invalid value {value} at index {index}")]
    InvalidValue {
        /// Which input holds the value.
        what: String,
        /// Position of the offending value.
        index: usize,
        /// The value, formatted.
        value: String,
    },
    /// A parameter (k, bin count, label) is not usable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Drawing a plot failed.
    #[error("plot {name}: {message}")]
    Plot {
        /// The plot (its file name or title).
        name: String,
        /// What the plotting backend said.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// JSON (de)serialization failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Checks that two inputs have the same length.
pub(crate) fn same_len(what: &str, left: usize, right: usize) -> Result<()> {
    if left == right {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what: what.to_string(),
            left,
            right,
        })
    }
}

/// Checks that every value is finite.
pub(crate) fn all_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::InvalidValue {
            what: what.to_string(),
            index,
            value: values[index].to_string(),
        }),
    }
}

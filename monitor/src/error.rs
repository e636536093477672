//! The monitor's error type.

use std::path::PathBuf;

/// Everything that can go wrong while ingesting, storing or analysing telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading an input stream or a file failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing or listing the store failed.
    #[error("store {path}: {source}")]
    StoreIo {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Arrow or Parquet rejected a batch or a file.
    #[error("parquet {path}: {message}")]
    Parquet {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file in the store does not have the layout or columns this crate writes.
    #[error("store layout {path}: {message}")]
    StoreLayout {
        /// The file or directory involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A drift computation got data it cannot use.
    #[error("drift: {0}")]
    Drift(String),
    /// Writing the report (JSON, Markdown) failed.
    #[error("report {path}: {message}")]
    Report {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Drawing a plot failed.
    #[error(transparent)]
    Plot(#[from] edgeloop_eval::Error),
}

/// Result with the monitor's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

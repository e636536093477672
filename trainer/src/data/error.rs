//! Errors of data selection, tokenizers and the corpus generator.
//!
//! Every error about user input names the file and, where there is one, the line (1-based)
//! and the field at fault.

use std::fmt;
use std::path::PathBuf;

/// What is wrong with one input record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BadRecordKind {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is not a JSON object (the parser's message).
    Json(String),
    /// A required field is absent.
    MissingField(String),
    /// A field has the wrong JSON type.
    WrongType {
        /// The field.
        field: String,
        /// What was expected there.
        expected: String,
    },
    /// A CSV row could not be parsed (the parser's message).
    Csv(String),
    /// The file has no record at all.
    EmptyFile,
}

impl fmt::Display for BadRecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRecordKind::InvalidUtf8 => write!(f, "invalid UTF-8"),
            BadRecordKind::Json(m) => write!(f, "malformed JSON: {m}"),
            BadRecordKind::MissingField(name) => write!(f, "missing field `{name}`"),
            BadRecordKind::WrongType { field, expected } => {
                write!(f, "field `{field}` must be {expected}")
            }
            BadRecordKind::Csv(m) => write!(f, "malformed CSV: {m}"),
            BadRecordKind::EmptyFile => write!(f, "the file has no records"),
        }
    }
}

/// Errors of `data`, `tokenizer` and `corpus`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// One input record is malformed (use `skip_bad` to count and skip such records).
    #[error("{path}:{line}: {kind} (pass --skip-bad to skip and count bad records)")]
    BadRecord {
        /// The input file.
        path: PathBuf,
        /// 1-based line (JSONL, text) or record number (CSV); 0 for a whole-file problem.
        line: u64,
        /// What is wrong.
        kind: BadRecordKind,
    },
    /// A configuration value is invalid.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The option at fault.
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Training, loading or applying a tokenizer failed.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file, or `<memory>`.
        path: PathBuf,
        /// The underlying message.
        message: String,
    },
    /// A binary token file is malformed.
    #[error("token file {path}: {message}")]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A report or plot could not be produced.
    #[error("report {path}: {message}")]
    Report {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Result type of `data`, `tokenizer` and `corpus`.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error on `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DataError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A tokenizer error.
    pub fn tokenizer(path: impl Into<PathBuf>, message: impl fmt::Display) -> Self {
        DataError::Tokenizer {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

//! edgeloop monitor: telemetry ingest, a Hive-partitioned Parquet store, and drift detection.
//!
//! * [`ingest`] reads COBS-framed telemetry (format: `runtime/TELEMETRY.md`) from any byte
//!   stream (file, stdin, serial device), skips and counts corrupt frames, deduplicates by
//!   `(device, boot, seq)`.
//! * [`store`] writes the frames as Parquet under `<kind>/date=…/model_version=…/device=…/`,
//!   readable as they are by DataFusion, DuckDB, Spark, Trino or pyarrow.
//! * [`stats`] holds the drift statistics (PSI, Kolmogorov–Smirnov, Jensen–Shannon,
//!   Wasserstein, chi-square); [`drift`] applies them over windows and builds a report that
//!   [`report`] writes as JSON, Markdown and PNG plots.
//!
//! * [`policy`] is the retraining policy: triggers, the feedback that becomes training data,
//!   and the evaluation gate (`edgeloop retrain` runs it around the trainer and the compiler);
//!   [`preferences`] turns rated generations into DPO preference pairs.
#![deny(missing_docs)]

pub mod drift;
pub mod error;
pub mod ingest;
pub mod policy;
pub mod preferences;
pub mod report;
pub mod stats;
pub mod store;

pub use error::{Error, Result};

//! edgeloop monitor: telemetry ingest, columnar store, drift detection, retraining policy.
//!
//! Not implemented yet (issue 9).
#![deny(missing_docs)]

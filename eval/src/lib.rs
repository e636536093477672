//! edgeloop evaluation: metrics, robustness, fairness, explainability and reports.
#![deny(missing_docs)]

pub mod error;
pub mod plot;

pub use error::{Error, Result};

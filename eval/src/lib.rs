//! edgeloop evaluation: metrics, robustness, fairness, explainability and reports.
#![deny(missing_docs)]

pub mod calibration;
pub mod classification;
pub mod error;
pub mod fairness;
pub mod lm;
pub mod plot;
pub mod robustness;
pub mod text;

pub use error::{Error, Result};

#[cfg(test)]
pub(crate) mod testing;

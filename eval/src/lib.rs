//! edgeloop evaluation: metrics, robustness, fairness, explainability and reports.
//!
//! - [`classification`], [`calibration`]: accuracy, precision/recall/F1, confusion matrices,
//!   top-k, ECE (checked against scikit-learn).
//! - [`text`]: BLEU and chrF as sacrebleu, ROUGE as rouge-score (checked against both).
//! - [`lm`]: corpus perplexity, cross-entropy, bits per byte, word perplexity.
//! - [`fairness`]: per-slice metrics and fairlearn's parity/odds gaps.
//! - [`robustness`]: seeded text perturbations and a runner over any model closure.
//! - [`explain`]: attribution types and model-agnostic occlusion.
//! - [`compare`]: the side-by-side backend table.
//! - [`report`]: JSON / Markdown / HTML reports; [`plot`]: PNG charts for every crate.
#![deny(missing_docs)]

pub mod calibration;
pub mod classification;
pub mod compare;
pub mod error;
pub mod explain;
pub mod fairness;
pub mod lm;
mod nan_null;
pub mod plot;
pub mod report;
pub mod robustness;
pub mod text;

pub use error::{Error, Result};

#[cfg(test)]
pub(crate) mod testing;

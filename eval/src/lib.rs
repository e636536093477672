//! edgeloop evaluation: metrics, robustness, fairness, explainability and reports.
//!
//! Not implemented yet (issue 7).
#![deny(missing_docs)]

//! Device-aware model selection (`edgeloop select`, issue 13).
//!
//! Given a task (the keyword-spotting data set, or a labelled text set for a classifier:
//! [`text`]), a target ([`device::Budget`]: a named device
//! profile or explicit flash / RAM / latency limits) and a search space ([`space`]), the
//! selection
//!
//! 1. builds every candidate's int8 image with the real toolchain before any training
//!    ([`footprint`]): flash by section and the planned arena come from the compiler, the cost
//!    from the image's MACs and the instructions per MAC measured on our Cortex-M4 kernels
//!    ([`cost`]); candidates that do not fit are dropped with the reason;
//! 2. trains the survivors briefly (same steps, same seed) and ranks them on the Pareto front
//!    of validation accuracy against latency and RAM ([`pareto`]);
//! 3. trains the winner fully, builds its image again (checking that the footprint predicted
//!    before training is the one it has), and measures the int8 image's accuracy;
//! 4. reports a table (Markdown and JSON), a PNG of the front ([`plot`]) and the chosen
//!    configuration in the trainer's format ([`report`]).
//!
//! Precision ([`precision`]): int8, or int8 with the classification head kept f32 (mixed),
//! for both tasks; the keyword selection is int8-only unless asked ([`SelectConfig::precisions`]).
#![deny(missing_docs)]

#[cfg(test)]
mod bench_md;
pub mod cost;
pub mod device;
pub mod error;
pub mod footprint;
pub mod pareto;
pub mod plot;
pub mod precision;
mod progress;
pub mod report;
mod rows;
pub mod search;
pub mod space;
pub mod text;

pub use device::{parse_bytes, profile, profiles, Budget, DeviceProfile, KernelSet};
pub use error::{Result, SelectError};
pub use precision::Precision;
pub use search::{select, SelectConfig, Selection};
pub use space::{Candidate, SearchSpace};

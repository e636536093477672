//! edgeloop-bench: the host runtime side by side with ONNX Runtime and tract on the same ONNX
//! artifacts (issue 11).
//!
//! [`models`] builds each benchmark model as fp32 ONNX, quantizes it with our quantizer to int8
//! QDQ ONNX and compiles both to model images. [`backends`] runs one artifact in one engine:
//! our runtime (int8 / f32 image), ONNX Runtime through `ort` (QDQ at its default optimization
//! level and at Level1, fp32) and tract (QDQ, fp32). [`measure`] times them in interleaved
//! rounds so that every ratio is taken pair by pair on the same round, and [`report`] writes
//! `results.json` and the Markdown tables. [`page_cache`] evicts the peak-RSS probe's binary
//! from the page cache before it runs. [`counting`] is the counting allocator used to check
//! that `invoke` does not allocate. [`trainer`] adds the trainer's tokens/s against PyTorch eager
//! (issue 6's nanoGPT CPU recipe) to the same results file.

pub mod backends;
pub mod check;
pub mod counting;
pub mod error;
pub mod measure;
pub mod models;
pub mod page_cache;
pub mod report;
pub mod stats;
pub mod trainer;

pub use error::{Error, Result};

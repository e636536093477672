//! edgeloop runtime: parses model images and runs them over a caller-provided arena.
//!
//! `no_std`, no allocator. See `FORMAT.md` for the model image layout.
//!
//! On Linux, the functions a transformer's `invoke` spends its time in (found with `perf` on
//! the bench's tiny GPT: the x86 kernels, the interpreter loop, the bound-op dispatch, tensor
//! lookups) are placed in the section `.text.hot.edgeloop`, which the linker's default script
//! gathers at the start of `.text`. The kernel maps a program's code in 64 KiB windows around
//! each page executed, so grouping them keeps fewer of those windows resident: the peak RSS of
//! the bench's probe running the decode step dropped by about 50 KiB (median of 11 processes).
//! The start-up path (parsing, validation, binding, `Interpreter::new`) and every function an
//! int8 transformer, MLP or MiniLM runs outside the kernels are there too; code the compiler
//! would otherwise emit outside it is kept from being separate functions (`OnceLock`
//! initializers, closures of the row walkers, iterator adapters in `Model::parse`).
//! The convolution and pooling kernels the CNNs run go to `.text.sorted.edgeloop.conv`, which
//! the default script places right after the hot sections: next to the code a CNN shares with the
//! other models, but not inside the span a transformer runs.
//! `scripts/code_windows.py` lists the functions a process runs and the 64 KiB windows they sit
//! in (uprobes on every function of the binary): rerun it after adding a kernel.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]

#[macro_use]
mod fmt;

pub mod arch;
pub mod arena;
pub mod audio;
pub mod error;
pub mod image;
pub mod interpreter;
#[cfg(feature = "std")]
pub mod models;
pub mod ops;
pub mod quant;
pub mod telemetry;
#[cfg(any(test, feature = "std"))]
pub mod threads;

pub use error::Error;
pub use image::Model;
pub use interpreter::{Interpreter, PreparedOp};

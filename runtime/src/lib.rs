//! edgeloop runtime: parses model images and runs them over a caller-provided arena.
//!
//! `no_std`, no allocator. See `FORMAT.md` for the model image layout.
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
pub use interpreter::Interpreter;

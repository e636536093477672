//! The board the examples run on. Only QEMU's `mps2-an386` exists today.

mod mps2_an386;
pub use mps2_an386::*;

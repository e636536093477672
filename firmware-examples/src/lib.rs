//! Board layer and shared helpers for the edgeloop firmware examples.
//!
//! Everything board-specific sits in [`board`]; an example only calls `board::exit`, the tick
//! counter and the logging macros, so a real board (say an STM32F4 Nucleo with RTT) is one
//! module away: add `board/nucleo_f4.rs` that sets up clocks and an RTT channel, select it in
//! `build.rs`, and give it a `memory-*.x`.
#![no_std]

pub mod arena;
#[cfg(feature = "assets")]
pub mod assets;
#[cfg(board = "mps2_an386")]
pub mod bench;
pub mod board;
pub mod classify;
#[cfg(all(feature = "assets", board = "mps2_an386"))]
pub mod footprint;
#[cfg(all(feature = "kws", board = "mps2_an386"))]
pub mod kws;
pub mod partition;
pub mod stack;
#[cfg(board = "mps2_an386")]
pub mod sweep;

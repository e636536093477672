//! Board layer and shared helpers for the edgeloop firmware examples.
//!
//! Everything board-specific sits in [`board`]; an example only calls `board::init`,
//! `board::exit`, the tick counter and the logging macros, so a real board (say an STM32F4
//! Nucleo with RTT) is one module away: swap `board/mps2_an386.rs` for one that sets up clocks
//! and an RTT channel, and change `memory.x`.
#![no_std]

pub mod arena;
pub mod assets;
pub mod board;
pub mod stack;

use defmt_semihosting as _;

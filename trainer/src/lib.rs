//! edgeloop trainer: data selection, tokenizers, GPT/BERT models, training.
//!
//! Not implemented yet (issues 5 and 6).
#![deny(missing_docs)]

pub mod audio;
pub mod checkpoint;
pub mod corpus;
pub mod data;
pub mod error;
pub mod explain;
pub mod export;
pub mod models;
pub mod ops;
pub mod optim;
pub mod rlhf;
pub mod tokenizer;
pub mod train;

pub use error::{Result, TrainerError};

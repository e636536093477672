//! edgeloop trainer: data selection, tokenizers, GPT/BERT models, training, fine-tuning,
//! preference optimization and RLHF on candle (CPU, or CUDA with the `cuda` feature).
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

/// The candle version the trainer is built on (its `Device` and `DType` appear in this API).
pub use candle_core;

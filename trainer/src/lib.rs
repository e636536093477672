//! edgeloop trainer: data selection, tokenizers, GPT/BERT models, training.
//!
//! Not implemented yet (issues 5 and 6).
#![deny(missing_docs)]

pub mod corpus;
pub mod data;
pub mod tokenizer;

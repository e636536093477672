//! Model selection for the text task (the demo's intent classifier kind): a labelled data set
//! in the trainer's format with a classification head, searched over model family (encoder or
//! GPT), width, depth, heads, context, tokenizer vocabulary and precision (int8, or int8 with
//! the classification head kept f32).
//!
//! The steps are the keyword model's ([`crate::search`]): every candidate's image is built
//! with the real toolchain before training ([`build`]: flash by section and the planned arena
//! from the compiler, cost from the image's ops and the firmware bench's figures,
//! [`crate::cost`]); misfits are dropped with the reason; the survivors are trained briefly
//! with the trainer's fine-tuning job (same steps and seed), each precision's real quantized
//! image scored on the validation split; the Pareto front of that accuracy vs latency vs RAM
//! gives the winner, which is trained fully and checked against its predicted footprint
//! ([`search`]); [`report`] writes the table, the plot and the chosen config.

pub mod build;
pub mod report;
pub mod search;
pub mod space;
pub mod task;

pub use search::{select_text, TextSelectConfig, TextSelection};
pub use space::{Family, Precision, TextCandidate, TextSearchSpace};
pub use task::TextTask;

//! Data selection: sources, the streaming pipeline and the dataset card.
//!
//! Public API (what the trainer, the CLI and the demo call):
//!
//! - [`Record`]: `{text, label?, slice{tag: value}}`, one JSONL line.
//! - [`SourceSpec::parse`]`("a.jsonl:0.7")`, [`SourceSpec::file`]: inputs (text lines or
//!   paragraphs, JSONL, CSV) with mixture weights; [`FieldNames`] names the fields.
//! - [`select`]`(&`[`SelectConfig`]`) -> Result<`[`SelectionReport`]`>`: normalization, PII
//!   scrubbing, quality filters, exact and near-duplicate removal, leak-free split, card.
//!   Writes `train.jsonl`, `val.jsonl`, `test.jsonl`, `card.json`, `card.md`,
//!   `length_hist.png`.
//! - [`read_jsonl`]: loads a split back.
//! - [`baseline`]: the bag-of-words logistic-regression baseline.
//! - [`minhash`]: shingles, MinHash, LSH (also usable on their own).
//!
//! ```no_run
//! use edgeloop_trainer::data::{select, SelectConfig, SourceSpec};
//! let cfg = SelectConfig::new(
//!     vec![SourceSpec::parse("a.jsonl:0.7")?, SourceSpec::parse("b.txt:0.3")?],
//!     "out/data",
//! );
//! let report = select(&cfg)?;
//! println!("{} train records", report.card.splits["train"].records);
//! # Ok::<(), edgeloop_trainer::data::DataError>(())
//! ```

pub mod baseline;
pub mod card;
pub mod error;
pub mod filters;
pub mod minhash;
pub mod normalize;
pub mod pii;
pub mod pipeline;
pub mod record;
pub mod source;
pub mod split;

pub use card::DatasetCard;
pub use error::{BadRecordKind, DataError, Result};
pub use filters::QualityConfig;
pub use normalize::Normalization;
pub use pipeline::{read_jsonl, select, NearDupConfig, SelectConfig, SelectionReport};
pub use record::Record;
pub use source::{FieldNames, Format, SourceInput, SourceSpec};
pub use split::{Split, SplitConfig};

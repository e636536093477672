//! Models: GPT (causal LM) and a BERT-style encoder (masked LM), their layers and parameters.

pub mod bert;
pub mod ds_cnn;
pub mod gpt;
pub mod import;
pub mod layers;
pub mod params;

pub use bert::{Bert, BertConfig};
pub use gpt::{Gpt, GptConfig};
pub use layers::{BuildOptions, LoraConfig};
pub use params::{Init, Params};

#[cfg(test)]
pub(crate) mod tests;

/// A model configuration tagged with its architecture, as stored in checkpoints' `config.json`
/// (`{"arch": "gpt", "vocab_size": ..}` or `{"arch": "bert", ..}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "arch", rename_all = "lowercase")]
pub enum ModelSpec {
    /// Decoder-only GPT.
    Gpt(GptConfig),
    /// BERT-style encoder.
    Bert(BertConfig),
}

impl ModelSpec {
    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        match self {
            ModelSpec::Gpt(c) => c.vocab_size,
            ModelSpec::Bert(c) => c.vocab_size,
        }
    }

    /// Context length.
    pub fn context(&self) -> usize {
        match self {
            ModelSpec::Gpt(c) => c.block_size,
            ModelSpec::Bert(c) => c.max_position_embeddings,
        }
    }

    /// Sets the number of classes of the classification head.
    pub fn set_num_labels(&mut self, n: Option<usize>) {
        match self {
            ModelSpec::Gpt(c) => c.num_labels = n,
            ModelSpec::Bert(c) => c.num_labels = n,
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> crate::Result<()> {
        match self {
            ModelSpec::Gpt(c) => c.validate(),
            ModelSpec::Bert(c) => c.validate(),
        }
    }
}

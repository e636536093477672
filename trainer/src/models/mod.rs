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

/// The most parameters a model config may describe: 2^28 (1 GiB of f32 weights, before the
/// gradients and optimizer moments training adds). Far above the models this project trains
/// or imports (the largest, MiniLM-L6, has 22.7M), far below what a hostile or mistyped
/// `config.json` could ask for: [`GptConfig::validate`] and [`BertConfig::validate`] refuse
/// larger configs with an error instead of trying to allocate them.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// The most transformer layers a model config may have (each layer costs a dozen tensors
/// beyond its elements, so a deep model of tiny width is refused even under
/// [`MAX_PARAMETERS`]).
pub const MAX_LAYERS: usize = 1024;

/// `Some(sum of products)`, `None` when it overflows `usize`.
pub(crate) fn sum_of_products(terms: &[&[usize]]) -> Option<usize> {
    terms.iter().try_fold(0usize, |acc, factors| {
        let p = factors.iter().try_fold(1usize, |p, &f| p.checked_mul(f))?;
        acc.checked_add(p)
    })
}

/// The size checks every model config shares: the layer count, the layer-norm epsilon and the
/// parameter count (`None`: it overflows `usize`).
pub(crate) fn check_size(
    layers_field: &str,
    layers: usize,
    layer_norm_eps: f64,
    parameters: Option<usize>,
) -> crate::Result<()> {
    if layers > MAX_LAYERS {
        return Err(crate::TrainerError::config(
            layers_field,
            format!("{layers} layers: at most {MAX_LAYERS} are supported"),
        ));
    }
    if !(layer_norm_eps.is_finite() && layer_norm_eps > 0.0) {
        return Err(crate::TrainerError::config(
            "layer_norm_eps",
            format!("{layer_norm_eps}: must be a positive number"),
        ));
    }
    match parameters {
        Some(n) if n <= MAX_PARAMETERS => Ok(()),
        n => Err(crate::TrainerError::config(
            "model size",
            format!(
                "the config describes {} parameters, more than the {MAX_PARAMETERS} a model may \
                 have: check the vocabulary size, width, context and layer count",
                n.map_or("over 2^64".to_string(), |n| n.to_string())
            ),
        )),
    }
}

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

    /// Number of scalar parameters of the model it describes (without LoRA adapters); `None`
    /// when that overflows `usize`.
    pub fn num_parameters(&self) -> Option<usize> {
        match self {
            ModelSpec::Gpt(c) => c.num_parameters(),
            ModelSpec::Bert(c) => c.num_parameters(),
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

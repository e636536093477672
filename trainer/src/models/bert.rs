//! BERT-style encoder (post-norm), for masked language modeling, sentence embeddings and
//! sequence classification.
//!
//! Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding" (2019). Parameter names follow Hugging Face's `BertModel`
//! (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ...),
//! so that checkpoints such as all-MiniLM-L6-v2 load as they are, and the config reads a
//! Hugging Face `config.json`.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::layers::{self, Attention, BuildOptions, Builder, LayerNorm, Linear};
use super::params::{Init, Params};
use crate::{Result, TrainerError};

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_true() -> bool {
    true
}

/// Encoder hyper-parameters (Hugging Face `BertConfig` field names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Number of segment types.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Share the word embedding with the MLM decoder.
    #[serde(default = "default_true")]
    pub tied_embeddings: bool,
    /// Number of classes of the classification head (absent: no such head).
    #[serde(default)]
    pub num_labels: Option<usize>,
}

impl BertConfig {
    /// Number of scalar parameters of the model (without LoRA adapters); `None` when that
    /// overflows `usize`.
    pub fn num_parameters(&self) -> Option<usize> {
        let (v, h, i) = (self.vocab_size, self.hidden_size, self.intermediate_size);
        let untied = usize::from(!self.tied_embeddings);
        let labels = self.num_labels.unwrap_or(0);
        // A layer: query, key, value, output (h × h), intermediate (h × i), output (i × h),
        // their biases (5h + i) and two layer norms (4h).
        let layer = super::sum_of_products(&[&[4, h, h], &[2, h, i], &[9, h], &[i]])?;
        super::sum_of_products(&[
            // word, position and segment embeddings, their norm
            &[v, h],
            &[self.max_position_embeddings, h],
            &[self.type_vocab_size, h],
            &[2, h],
            &[self.num_hidden_layers, layer],
            // MLM head: dense (h × h + h), norm, decoder (when untied) and bias
            &[h, h],
            &[3, h],
            &[untied, v, h],
            &[v],
            &[h, labels],
            &[labels],
        ])
    }

    /// Checks that the sizes are usable (including the bounds [`super::MAX_LAYERS`] and
    /// [`super::MAX_PARAMETERS`]).
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return Err(TrainerError::config(f, "must be at least 1"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(TrainerError::config(
                "hidden_size",
                format!(
                    "{} is not divisible by num_attention_heads = {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.num_labels == Some(0) {
            return Err(TrainerError::config("num_labels", "must be at least 1"));
        }
        super::check_size(
            "num_hidden_layers",
            self.num_hidden_layers,
            self.layer_norm_eps,
            self.num_parameters(),
        )
    }
}

/// One post-norm encoder layer.
#[derive(Debug)]
pub struct EncoderLayer {
    /// Self-attention.
    pub attn: Attention,
    /// Norm after attention + residual.
    pub attn_ln: LayerNorm,
    /// Feed-forward up-projection.
    pub intermediate: Linear,
    /// Feed-forward down-projection.
    pub output: Linear,
    /// Norm after feed-forward + residual.
    pub output_ln: LayerNorm,
}

/// The MLM head: dense + GELU + norm, then the decoder (tied word embedding) and a bias.
#[derive(Debug)]
pub struct MlmHead {
    /// Transform dense layer.
    pub dense: Linear,
    /// Transform norm.
    pub ln: LayerNorm,
    /// Decoder weight `[V, H]`.
    pub decoder: Tensor,
    /// Decoder bias `[V]`.
    pub bias: Tensor,
}

/// The encoder with its MLM head and optional classification head.
#[derive(Debug)]
pub struct Bert {
    /// Configuration.
    pub config: BertConfig,
    /// Word embedding `[V, H]`.
    pub word_embeddings: Tensor,
    /// Position embedding `[T, H]`.
    pub position_embeddings: Tensor,
    /// Segment embedding `[types, H]`.
    pub token_type_embeddings: Tensor,
    /// Embedding norm.
    pub embeddings_ln: LayerNorm,
    /// Encoder layers.
    pub layers: Vec<EncoderLayer>,
    /// MLM head.
    pub mlm: MlmHead,
    /// Classification head on the mean-pooled hidden states, if `num_labels` is set.
    pub classifier: Option<Linear>,
    /// The dtype of the MLM decoder's product (autocast; f32 when off).
    pub compute: candle_core::DType,
}

impl Bert {
    /// Builds the model, taking or creating its parameters in `params`.
    pub fn new(config: &BertConfig, params: &mut Params, options: BuildOptions) -> Result<Self> {
        config.validate()?;
        let h = config.hidden_size;
        let std = 0.02;
        let eps = config.layer_norm_eps;
        let mut b = Builder::new(params, options);
        let (word_embeddings, position_embeddings, token_type_embeddings, embeddings_ln) = {
            let mut e = b.pp("embeddings");
            (
                e.get(
                    "word_embeddings.weight",
                    &[config.vocab_size, h],
                    Init::Normal(std),
                )?,
                e.get(
                    "position_embeddings.weight",
                    &[config.max_position_embeddings, h],
                    Init::Normal(std),
                )?,
                e.get(
                    "token_type_embeddings.weight",
                    &[config.type_vocab_size, h],
                    Init::Normal(std),
                )?,
                LayerNorm::new(&mut e, "LayerNorm", h, eps)?,
            )
        };
        let mut layers_ = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let mut l = b.pp(format!("encoder.layer.{i}"));
            let compute = l.compute_dtype();
            let attn = {
                let mut s = l.pp("attention.self");
                Attention {
                    q: Linear::new(&mut s, "query", h, h, true, std)?,
                    k: Linear::new(&mut s, "key", h, h, true, std)?,
                    v: Linear::new(&mut s, "value", h, h, true, std)?,
                    o: Linear::new(&mut l.pp("attention.output"), "dense", h, h, true, std)?,
                    heads: config.num_attention_heads,
                    compute,
                }
            };
            let attn_ln = LayerNorm::new(&mut l.pp("attention.output"), "LayerNorm", h, eps)?;
            let intermediate = Linear::new(
                &mut l.pp("intermediate"),
                "dense",
                h,
                config.intermediate_size,
                true,
                std,
            )?;
            let output = Linear::new(
                &mut l.pp("output"),
                "dense",
                config.intermediate_size,
                h,
                true,
                std,
            )?;
            let output_ln = LayerNorm::new(&mut l.pp("output"), "LayerNorm", h, eps)?;
            layers_.push(EncoderLayer {
                attn,
                attn_ln,
                intermediate,
                output,
                output_ln,
            });
        }
        let mlm = {
            let mut p = b.pp("cls.predictions");
            let dense = Linear::new(&mut p.pp("transform"), "dense", h, h, true, std)?;
            let ln = LayerNorm::new(&mut p.pp("transform"), "LayerNorm", h, eps)?;
            let decoder = if config.tied_embeddings {
                word_embeddings.clone()
            } else {
                p.get("decoder.weight", &[config.vocab_size, h], Init::Normal(std))?
            };
            let bias = p.get("bias", &[config.vocab_size], Init::Zeros)?;
            MlmHead {
                dense,
                ln,
                decoder,
                bias,
            }
        };
        let classifier = match config.num_labels {
            Some(n) => Some(Linear::new(&mut b, "classifier", h, n, true, std)?),
            None => None,
        };
        let compute = b.compute_dtype();
        Ok(Self {
            config: config.clone(),
            compute,
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_ln,
            layers: layers_,
            mlm,
            classifier,
        })
    }

    /// Hidden states `[B, T, H]` for `ids` `[B, T]` (u32); `attention_mask` `[B, T]` (1 keep,
    /// 0 pad); segment ids are all 0.
    pub fn hidden(&self, ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        if t > self.config.max_position_embeddings {
            return Err(TrainerError::Data(format!(
                "sequence of {t} tokens is longer than the context ({})",
                self.config.max_position_embeddings
            )));
        }
        let tok = layers::embed(&self.word_embeddings, ids, "token")?;
        self.hidden_from_token_embeddings(&tok, attention_mask)
    }

    /// Token embeddings `[B, T, H]` of `ids` (the input of
    /// [`hidden_from_token_embeddings`](Self::hidden_from_token_embeddings)).
    pub fn token_embeddings(&self, ids: &Tensor) -> Result<Tensor> {
        layers::embed(&self.word_embeddings, ids, "token")
    }

    /// Hidden states from token embeddings `[B, T, H]` (position and segment embeddings are
    /// added here): what integrated gradients differentiates through.
    pub fn hidden_from_token_embeddings(
        &self,
        tok: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (_b, t, _h) = tok.dims3()?;
        if t > self.config.max_position_embeddings {
            return Err(TrainerError::Data(format!(
                "sequence of {t} tokens is longer than the context ({})",
                self.config.max_position_embeddings
            )));
        }
        let pos = self.position_embeddings.narrow(0, 0, t)?;
        let typ = self.token_type_embeddings.narrow(0, 0, 1)?;
        let x = tok.broadcast_add(&pos)?.broadcast_add(&typ)?;
        let mut x = self.embeddings_ln.forward(&x)?;
        let mask = attention_mask.map(layers::padding_mask).transpose()?;
        for l in &self.layers {
            let a = l.attn.forward(&x, mask.as_ref())?;
            x = l.attn_ln.forward(&(&x + a)?)?;
            let f = l
                .output
                .forward(&crate::ops::gelu(&l.intermediate.forward(&x)?)?)?;
            x = l.output_ln.forward(&(&x + f)?)?;
        }
        Ok(x)
    }

    /// Masked-LM logits `[B, T, V]`.
    pub fn forward_mlm(&self, ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.hidden(ids, attention_mask)?;
        let (b, t, c) = h.dims3()?;
        let h = self
            .mlm
            .ln
            .forward(&crate::ops::gelu(&self.mlm.dense.forward(&h)?)?)?;
        let logits = crate::ops::matmul_in(
            &h.reshape((b * t, c))?,
            &self.mlm.decoder.t()?,
            self.compute,
        )?
        .broadcast_add(&self.mlm.bias)?;
        Ok(logits.reshape((b, t, self.config.vocab_size))?)
    }

    /// Sentence embeddings `[B, H]`: mean of the hidden states over non-padding positions.
    pub fn embed(&self, ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        layers::mean_pool(&self.hidden(ids, attention_mask)?, attention_mask)
    }

    /// Class logits `[B, num_labels]` from the mean-pooled hidden states.
    pub fn classify(&self, ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let head = self.classifier.as_ref().ok_or_else(|| {
            TrainerError::config("num_labels", "the model has no classification head")
        })?;
        head.forward(&self.embed(ids, attention_mask)?)
    }

    /// Class logits from token embeddings `[B, T, H]` (see [`Self::token_embeddings`]).
    pub fn classify_from_token_embeddings(
        &self,
        tok: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let head = self.classifier.as_ref().ok_or_else(|| {
            TrainerError::config("num_labels", "the model has no classification head")
        })?;
        let h = self.hidden_from_token_embeddings(tok, attention_mask)?;
        head.forward(&layers::mean_pool(&h, attention_mask)?)
    }
}

//! Decoder-only transformer (GPT-2 / nanoGPT layout, pre-norm), for causal language modeling
//! and sequence classification.
//!
//! Radford et al., "Language Models are Unsupervised Multitask Learners" (2019); the layout
//! follows Karpathy's nanoGPT. Parameter names (`wte.weight`, `h.0.attn.q.weight`, ...) become
//! the initializer names of the ONNX export.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::layers::{self, Attention, BuildOptions, Builder, LayerNorm, Linear};
use super::params::{Init, Params};
use crate::{Result, TrainerError};

fn default_true() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-5
}

/// GPT hyper-parameters (JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GptConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Number of attention heads.
    pub n_head: usize,
    /// Model width.
    pub n_embd: usize,
    /// Context length (maximum sequence length).
    pub block_size: usize,
    /// Share the token embedding with the LM head.
    #[serde(default = "default_true")]
    pub tied_embeddings: bool,
    /// Biases in linear layers.
    #[serde(default = "default_true")]
    pub bias: bool,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Number of classes of the sequence-classification head (absent: no such head).
    #[serde(default)]
    pub num_labels: Option<usize>,
}

impl GptConfig {
    /// Number of scalar parameters of the model (without LoRA adapters); `None` when that
    /// overflows `usize`.
    pub fn num_parameters(&self) -> Option<usize> {
        let (v, t, c, l) = (self.vocab_size, self.block_size, self.n_embd, self.n_layer);
        let b = usize::from(self.bias);
        let untied = usize::from(!self.tied_embeddings);
        let labels = self.num_labels.unwrap_or(0);
        // A block: q, k, v, o (c × c), fc (c × 4c), proj (4c × c), their biases (9c) and two
        // layer norms (4c).
        let block = super::sum_of_products(&[&[12, c, c], &[9, b, c], &[4, c]])?;
        super::sum_of_products(&[
            &[v, c],
            &[t, c],
            &[l, block],
            &[2, c],
            &[untied, v, c],
            &[c, labels],
            &[labels],
        ])
    }

    /// Checks that the sizes are usable (including the bounds [`super::MAX_LAYERS`] and
    /// [`super::MAX_PARAMETERS`]).
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("vocab_size", self.vocab_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("block_size", self.block_size),
        ] {
            if v == 0 {
                return Err(TrainerError::config(f, "must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(TrainerError::config(
                "n_embd",
                format!(
                    "{} is not divisible by n_head = {}",
                    self.n_embd, self.n_head
                ),
            ));
        }
        if self.num_labels == Some(0) {
            return Err(TrainerError::config("num_labels", "must be at least 1"));
        }
        super::check_size(
            "n_layer",
            self.n_layer,
            self.layer_norm_eps,
            self.num_parameters(),
        )
    }
}

/// One pre-norm block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Debug)]
pub struct Block {
    /// Norm before attention.
    pub ln_1: LayerNorm,
    /// Causal self-attention.
    pub attn: Attention,
    /// Norm before the MLP.
    pub ln_2: LayerNorm,
    /// MLP up-projection (4×).
    pub fc: Linear,
    /// MLP down-projection.
    pub proj: Linear,
}

/// The GPT model with its LM head and optional classification head.
#[derive(Debug)]
pub struct Gpt {
    /// Configuration.
    pub config: GptConfig,
    /// Token embedding `[V, C]`.
    pub wte: Tensor,
    /// Position embedding `[T, C]`.
    pub wpe: Tensor,
    /// Blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub ln_f: LayerNorm,
    /// LM head `[V, C]` (the token embedding when tied).
    pub lm_head: Tensor,
    /// Classification head, if `num_labels` is set.
    pub classifier: Option<Linear>,
    /// The dtype of the LM head's product (autocast; f32 when off).
    pub compute: candle_core::DType,
}

impl Gpt {
    /// Builds the model, taking or creating its parameters in `params`.
    pub fn new(config: &GptConfig, params: &mut Params, options: BuildOptions) -> Result<Self> {
        config.validate()?;
        let c = config.n_embd;
        let std = 0.02;
        // GPT-2: residual projections scaled by 1/sqrt(2 * n_layer).
        let proj_std = std / (2.0 * config.n_layer as f32).sqrt();
        let mut b = Builder::new(params, options);
        let wte = b.get("wte.weight", &[config.vocab_size, c], Init::Normal(std))?;
        let wpe = b.get("wpe.weight", &[config.block_size, c], Init::Normal(std))?;
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let mut bb = b.pp(format!("h.{i}"));
            let ln_1 = LayerNorm::new(&mut bb, "ln_1", c, config.layer_norm_eps)?;
            let attn = {
                let mut a = bb.pp("attn");
                Attention {
                    q: Linear::new(&mut a, "q", c, c, config.bias, std)?,
                    k: Linear::new(&mut a, "k", c, c, config.bias, std)?,
                    v: Linear::new(&mut a, "v", c, c, config.bias, std)?,
                    o: Linear::new(&mut a, "o", c, c, config.bias, proj_std)?,
                    heads: config.n_head,
                    compute: a.compute_dtype(),
                }
            };
            let ln_2 = LayerNorm::new(&mut bb, "ln_2", c, config.layer_norm_eps)?;
            let mut m = bb.pp("mlp");
            let fc = Linear::new(&mut m, "fc", c, 4 * c, config.bias, std)?;
            let proj = Linear::new(&mut m, "proj", 4 * c, c, config.bias, proj_std)?;
            blocks.push(Block {
                ln_1,
                attn,
                ln_2,
                fc,
                proj,
            });
        }
        let ln_f = LayerNorm::new(&mut b, "ln_f", c, config.layer_norm_eps)?;
        let lm_head = if config.tied_embeddings {
            wte.clone()
        } else {
            b.get("lm_head.weight", &[config.vocab_size, c], Init::Normal(std))?
        };
        let classifier = match config.num_labels {
            Some(n) => Some(Linear::new(&mut b, "classifier", c, n, true, std)?),
            None => None,
        };
        let compute = b.compute_dtype();
        Ok(Self {
            config: config.clone(),
            compute,
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head,
            classifier,
        })
    }

    /// Final hidden states `[B, T, C]` for `ids` `[B, T]` (u32).
    pub fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        if t > self.config.block_size {
            return Err(TrainerError::Data(format!(
                "sequence of {t} tokens is longer than the context ({})",
                self.config.block_size
            )));
        }
        let tok = layers::embed(&self.wte, ids, "token")?;
        self.hidden_from_token_embeddings(&tok)
    }

    /// Token embeddings `[B, T, C]` of `ids`.
    pub fn token_embeddings(&self, ids: &Tensor) -> Result<Tensor> {
        layers::embed(&self.wte, ids, "token")
    }

    /// Hidden states from token embeddings `[B, T, C]` (position embeddings are added here):
    /// what integrated gradients differentiates through.
    pub fn hidden_from_token_embeddings(&self, tok: &Tensor) -> Result<Tensor> {
        let (_b, t, _c) = tok.dims3()?;
        if t > self.config.block_size {
            return Err(TrainerError::Data(format!(
                "sequence of {t} tokens is longer than the context ({})",
                self.config.block_size
            )));
        }
        let pos = self.wpe.narrow(0, 0, t)?;
        let mut x = tok.broadcast_add(&pos)?;
        let mask = layers::causal_mask(t, tok.device())?;
        for blk in &self.blocks {
            x = (&x + blk.attn.forward_causal(&blk.ln_1.forward(&x)?, &mask)?)?;
            let h = blk.fc.forward(&blk.ln_2.forward(&x)?)?;
            x = (&x + blk.proj.forward(&crate::ops::gelu(&h)?)?)?;
        }
        self.ln_f.forward(&x)
    }

    /// Next-token logits `[B, T, V]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let h = self.hidden(ids)?;
        let (b, t, c) = h.dims3()?;
        let logits =
            crate::ops::matmul_in(&h.reshape((b * t, c))?, &self.lm_head.t()?, self.compute)?;
        Ok(logits.reshape((b, t, self.config.vocab_size))?)
    }

    /// Class logits `[B, num_labels]`: mean of the hidden states over non-padding positions.
    pub fn classify(&self, ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let head = self.classifier.as_ref().ok_or_else(|| {
            TrainerError::config("num_labels", "the model has no classification head")
        })?;
        let h = self.hidden(ids)?;
        head.forward(&layers::mean_pool(&h, attention_mask)?)
    }

    /// Class logits from token embeddings `[B, T, C]` (see [`Self::token_embeddings`]).
    pub fn classify_from_token_embeddings(
        &self,
        tok: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let head = self.classifier.as_ref().ok_or_else(|| {
            TrainerError::config("num_labels", "the model has no classification head")
        })?;
        let h = self.hidden_from_token_embeddings(tok)?;
        head.forward(&layers::mean_pool(&h, attention_mask)?)
    }
}

#[cfg(test)]
mod fused_tests {
    use super::*;
    use crate::models::tests::tiny_gpt_config;
    use crate::train::objectives::{self, TokenBatch};
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    /// The whole GPT (fused linear, attention, GELU, layer norm, cross-entropy) gives the same
    /// loss and the same gradient for every parameter as the primitive forms.
    #[test]
    fn fused_and_primitive_gpt_agree_on_loss_and_every_gradient() {
        let cfg = GptConfig {
            n_embd: 16,
            n_head: 4,
            ..tiny_gpt_config(None)
        };
        let mut params = Params::new(5, &Device::Cpu);
        let gpt = Gpt::new(&cfg, &mut params, BuildOptions::default()).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let seqs: Vec<Vec<u32>> = (0..3)
            .map(|_| (0..8).map(|_| rng.gen_range(0..17)).collect())
            .collect();
        let batch = TokenBatch::causal(&seqs).unwrap();
        let run = |fused: bool| {
            crate::ops::set_fused(fused);
            let loss = objectives::gpt_lm_loss(&gpt, &batch).unwrap();
            let grads = loss.backward().unwrap();
            crate::ops::set_fused(true);
            (loss.to_scalar::<f32>().unwrap(), grads)
        };
        let (lf, gf) = run(true);
        let (lp, gp) = run(false);
        assert!((lf - lp).abs() < 1e-5, "loss {lf} vs {lp}");
        for (name, var) in params.iter() {
            let a = gf.get(var.as_tensor()).expect("fused gradient");
            let b = gp.get(var.as_tensor()).expect("primitive gradient");
            let scale: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let d: f32 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d <= 1e-4 * (1.0 + scale), "{name}: {d} (scale {scale})");
        }
    }
}

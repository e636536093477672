//! Layers shared by the GPT and the encoder: linear (with optional LoRA adapter and QAT fake
//! quantization), layer norm, embeddings, multi-head attention.

use std::sync::Mutex;

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use super::params::{Init, Params};
use crate::ops::{self, fake_quant};
use crate::{Result, TrainerError};

/// Additive attention-mask value for positions that may not be attended to.
///
/// Finite (not `-inf`) so that exported graphs stay calibratable; `exp(-1e4)` is 0 in f32.
pub const MASK_VALUE: f32 = -1e4;

/// LoRA adapter settings: `W x + (alpha / rank) B A x`, with `B` initialized to zero.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoraConfig {
    /// Rank of the update.
    pub rank: usize,
    /// Scaling numerator (`alpha / rank` multiplies the update).
    pub alpha: f32,
    /// Linear layers that get an adapter, matched against the end of their name
    /// (e.g. `"q"`, `"v"`, `"attention.self.query"`).
    pub target_modules: Vec<String>,
}

impl LoraConfig {
    fn matches(&self, name: &str) -> bool {
        self.target_modules
            .iter()
            .any(|t| name == t || name.ends_with(&format!(".{t}")))
    }
}

/// Options that change how layers are built, independently of the architecture.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BuildOptions {
    /// Add LoRA adapters to the matching linear layers.
    #[serde(default)]
    pub lora: Option<LoraConfig>,
    /// Quantization-aware training: fake int8 on linear weights (per channel) and inputs (per tensor).
    #[serde(default)]
    pub qat: bool,
}

/// Hands out parameters under a name prefix (`vb.pp(..)` in candle terms).
pub struct Builder<'a> {
    params: &'a mut Params,
    prefix: String,
    /// Build options.
    pub options: BuildOptions,
}

impl<'a> Builder<'a> {
    /// A builder at the root of `params`.
    pub fn new(params: &'a mut Params, options: BuildOptions) -> Self {
        Self {
            params,
            prefix: String::new(),
            options,
        }
    }

    /// A builder whose names get `.name` appended to the prefix.
    pub fn pp(&mut self, name: impl AsRef<str>) -> Builder<'_> {
        let prefix = self.path(name.as_ref());
        Builder {
            params: &mut *self.params,
            prefix,
            options: self.options.clone(),
        }
    }

    /// Full name of `name` under this builder.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The prefix of this builder.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The dtype matrix products of layers built here run in (autocast; see
    /// [`Params::set_autocast`]).
    pub fn compute_dtype(&self) -> DType {
        self.params.compute_dtype()
    }

    /// Parameter `name` under this prefix.
    pub fn get(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let full = self.path(name);
        self.params.get(&full, shape, init)
    }
}

/// Running min/max of an activation (exponential moving average), for QAT.
#[derive(Debug, Default)]
pub struct RangeObserver {
    range: Mutex<Option<(f32, f32)>>,
}

impl RangeObserver {
    const MOMENTUM: f32 = 0.9;

    /// Updates the range with `x` and returns the current `(min, max)`.
    pub fn observe(&self, x: &Tensor) -> Result<(f32, f32)> {
        let lo = x.min_all()?.to_scalar::<f32>()?;
        let hi = x.max_all()?.to_scalar::<f32>()?;
        let mut r = self
            .range
            .lock()
            .map_err(|_| TrainerError::Data("range observer poisoned".into()))?;
        let new = match *r {
            None => (lo, hi),
            Some((a, b)) => (
                Self::MOMENTUM * a + (1.0 - Self::MOMENTUM) * lo,
                Self::MOMENTUM * b + (1.0 - Self::MOMENTUM) * hi,
            ),
        };
        *r = Some(new);
        Ok(new)
    }
}

/// `y = x W^T + b`, optionally with a LoRA adapter and QAT fake quantization.
#[derive(Debug)]
pub struct Linear {
    /// Parameter name prefix (e.g. `h.0.attn.q`).
    pub name: String,
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    lora: Option<(Tensor, Tensor, f64)>,
    qat: Option<RangeObserver>,
    compute: DType,
}

impl Linear {
    /// Builds `name` (`name.weight`, `name.bias`) with weights drawn from N(0, std).
    pub fn new(
        b: &mut Builder,
        name: &str,
        inp: usize,
        out: usize,
        bias: bool,
        std: f32,
    ) -> Result<Self> {
        let mut b = b.pp(name);
        let weight = b.get("weight", &[out, inp], Init::Normal(std))?;
        let bias = if bias {
            Some(b.get("bias", &[out], Init::Zeros)?)
        } else {
            None
        };
        let full = b.prefix().to_string();
        let lora = match b.options.lora.clone() {
            Some(cfg) if cfg.matches(&full) => {
                if cfg.rank == 0 {
                    return Err(TrainerError::config("lora.rank", "must be at least 1"));
                }
                let a = b.get(
                    "lora_a",
                    &[cfg.rank, inp],
                    Init::Normal(1.0 / (inp as f32).sqrt()),
                )?;
                let bb = b.get("lora_b", &[out, cfg.rank], Init::Zeros)?;
                Some((a, bb, (cfg.alpha / cfg.rank as f32) as f64))
            }
            _ => None,
        };
        let qat = b.options.qat.then(RangeObserver::default);
        let compute = b.compute_dtype();
        Ok(Self {
            name: full,
            weight,
            bias,
            lora,
            qat,
            compute,
        })
    }

    /// Whether the layer is a plain `x Wᵀ + b`: no LoRA adapter, no QAT, products in f32.
    pub fn is_plain(&self) -> bool {
        self.lora.is_none() && self.qat.is_none() && self.compute == DType::F32
    }

    /// Applies the layer to `x` of shape `[..., in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let inp = *dims
            .last()
            .ok_or_else(|| TrainerError::Data("linear on a scalar".into()))?;
        if let (None, None, DType::F32, Some(bias)) =
            (&self.lora, &self.qat, self.compute, &self.bias)
        {
            // the plain layer: one fused product with the bias where it applies (any rank,
            // so no reshape nodes for the backward to walk)
            if let Some(y) = ops::linear_fused(x, &self.weight, bias)? {
                return Ok(y);
            }
        }
        let rows = x.elem_count() / inp.max(1);
        let mut x2 = x.reshape((rows, inp))?;
        let mut w = self.weight.clone();
        if let Some(obs) = &self.qat {
            let (lo, hi) = obs.observe(&x2.detach())?;
            let (s, zp) = fake_quant::activation_qparams(lo, hi);
            x2 = fake_quant::fake_quant_activation(&x2, s, zp)?;
            w = fake_quant::fake_quant_weight(&w)?;
        }
        let mut y = ops::matmul_in(&x2, &w.t()?, self.compute)?;
        if let Some((a, b, scale)) = &self.lora {
            let down = ops::matmul_in(&x2, &a.t()?, self.compute)?;
            let up = ops::matmul_in(&down, &b.t()?, self.compute)?;
            y = (y + (up * *scale)?)?;
        }
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight.dim(0)?;
        Ok(y.reshape(out_dims)?)
    }
}

/// Layer normalization with learnable gain and bias (primitive form: has a backward).
#[derive(Debug)]
pub struct LayerNorm {
    /// Gain `[dim]`.
    pub weight: Tensor,
    /// Bias `[dim]`.
    pub bias: Tensor,
    /// Epsilon added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// Builds `name.weight` (ones) and `name.bias` (zeros).
    pub fn new(b: &mut Builder, name: &str, dim: usize, eps: f64) -> Result<Self> {
        let mut b = b.pp(name);
        Ok(Self {
            weight: b.get("weight", &[dim], Init::Ones)?,
            bias: b.get("bias", &[dim], Init::Zeros)?,
            eps,
        })
    }

    /// Normalizes over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Looks up rows of `table` `[n, dim]` for `ids` (u32, any shape), checking bounds first.
pub fn embed(table: &Tensor, ids: &Tensor, what: &str) -> Result<Tensor> {
    let n = table.dim(0)?;
    let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
    if max >= n {
        return Err(TrainerError::Data(format!(
            "{what} id {max} is out of range (table has {n} rows)"
        )));
    }
    let mut dims = ids.dims().to_vec();
    dims.push(table.dim(1)?);
    Ok(table.index_select(&ids.flatten_all()?, 0)?.reshape(dims)?)
}

/// Multi-head self-attention with separate query/key/value/output projections.
#[derive(Debug)]
pub struct Attention {
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// Number of heads.
    pub heads: usize,
    /// The dtype of the score and value products (autocast; f32 when off).
    pub compute: DType,
}

impl Attention {
    /// `[B, T, C]` → `[B, H, T, C/H]` (contiguous).
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        Ok(x.reshape((b, t, self.heads, c / self.heads))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Attends over `x` `[B, T, C]`; `mask` is additive, broadcastable to `[B, H, T, T]`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (q, k, v) = (self.q.forward(x)?, self.k.forward(x)?, self.v.forward(x)?);
        self.attend(&q, &k, &v, mask)
    }

    /// Causal self-attention over `x` `[B, T, C]`: one fused op for the scores, softmax and
    /// value product where it applies (f32 CPU, no autocast), else [`Self::forward`] with
    /// `causal`, the additive causal mask of [`causal_mask`].
    pub fn forward_causal(&self, x: &Tensor, causal: &Tensor) -> Result<Tensor> {
        let (q, k, v) = (self.q.forward(x)?, self.k.forward(x)?, self.v.forward(x)?);
        if self.compute == DType::F32 {
            if let Some(y) = ops::causal_attention(&q, &k, &v, self.heads)? {
                return self.o.forward(&y);
            }
        }
        self.attend(&q, &k, &v, Some(causal))
    }

    /// Attention from projected `q`, `k`, `v` `[B, T, C]`, composed from primitives.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, c) = q.dims3()?;
        let q = self.split(q)?;
        let k = self.split(k)?;
        let v = self.split(v)?;
        let scale = 1.0 / ((c / self.heads) as f64).sqrt();
        let kt = k.transpose(2, 3)?.contiguous()?;
        let mut att = (ops::matmul_in(&q, &kt, self.compute)? * scale)?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = ops::softmax_last(&att)?;
        let y = ops::matmul_in(&att, &v, self.compute)?
            .transpose(1, 2)?
            .reshape((b, t, c))?;
        self.o.forward(&y)
    }
}

/// `[T, T]` additive causal mask (0 on and below the diagonal, [`MASK_VALUE`] above).
pub fn causal_mask(t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { MASK_VALUE } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(data, (t, t), device)?)
}

/// `[B, 1, 1, T]` additive padding mask from a `[B, T]` attention mask (1 keep, 0 pad).
pub fn padding_mask(attention_mask: &Tensor) -> Result<Tensor> {
    let m = attention_mask.to_dtype(candle_core::DType::F32)?;
    let add = ((1.0 - m)? * MASK_VALUE as f64)?;
    Ok(add.unsqueeze(1)?.unsqueeze(1)?)
}

/// Mean of `h` `[B, T, C]` over the positions where `mask` `[B, T]` is 1 (all if `None`).
pub fn mean_pool(h: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    match mask {
        None => Ok(h.mean(1)?),
        Some(m) => {
            let m = m.to_dtype(candle_core::DType::F32)?.unsqueeze(D::Minus1)?;
            let sum = h.broadcast_mul(&m)?.sum(1)?;
            let count = m.sum(1)?.clamp(1f32, f32::MAX)?;
            Ok(sum.broadcast_div(&count)?)
        }
    }
}

/// Merges every LoRA adapter in `params` into its base weight (`W += alpha/rank · B A`) and
/// removes the adapters, leaving a plain model for export.
pub fn merge_lora(params: &mut Params, cfg: &LoraConfig) -> Result<usize> {
    let names: Vec<String> = params
        .iter()
        .filter(|(n, _)| n.ends_with(".lora_a"))
        .map(|(n, _)| n.trim_end_matches(".lora_a").to_string())
        .collect();
    let scale = (cfg.alpha / cfg.rank as f32) as f64;
    for base in &names {
        let get = |s: &str| {
            params
                .var(&format!("{base}.{s}"))
                .map(|v| v.as_tensor().clone())
                .ok_or_else(|| TrainerError::Weights {
                    name: format!("{base}.{s}"),
                    reason: "missing while merging LoRA".into(),
                })
        };
        let (a, b, w) = (get("lora_a")?, get("lora_b")?, get("weight")?);
        let merged = (w + (b.matmul(&a)? * scale)?)?;
        params.set(&format!("{base}.weight"), &merged)?;
    }
    params.remove_where(|n| n.ends_with(".lora_a") || n.ends_with(".lora_b"));
    params.unfreeze_all();
    Ok(names.len())
}

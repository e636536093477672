//! A depthwise-separable CNN keyword classifier in the manner of "Hello Edge" (Zhang et al.,
//! 2017, <https://arxiv.org/abs/1711.07128>): a strided first convolution over the
//! time × mel-band feature map, blocks of 3×3 depthwise + 1×1 pointwise convolutions (ReLU
//! after each), global average pooling and a linear classifier. No batch norm: with the input
//! normalized ([`InputNorm`]), a trial with batch norm after every convolution trained no
//! better on the synthetic corpus in a few hundred steps and cost more per step.
//!
//! Built from primitive candle ops that all have gradients, with channel-major activations
//! `[C, B·H·W]` so every convolution is one matmul: the first convolution multiplies its weights
//! by the taps gathered (`index_select`) from the input with "SAME" (possibly asymmetric) zero
//! padding; the depthwise convolution gathers the nine taps of every position the same way and
//! is a matmul batched over channels; the pointwise convolution is a plain matmul. (Gathers
//! keep the backward pass to one scatter-add per layer; nine shifted channels-last views cost
//! about 4× more on a CPU.) Parameter names and layouts are ONNX's (`conv0.weight`
//! `[C, 1, kh, kw]`, `dw{i}.weight` `[C, 1, 3, 3]`, `pw{i}.weight` `[C, C, 1, 1]`,
//! `fc.weight` `[K, C]`), so the export is a copy (with the input normalization folded into
//! `conv0`).

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainerError};

/// Sizes of the DS-CNN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsCnnConfig {
    /// Input time frames.
    pub frames: usize,
    /// Input mel bands.
    pub bands: usize,
    /// Channels of the first convolution and of every block.
    pub channels: usize,
    /// Depthwise-separable blocks.
    pub blocks: usize,
    /// First convolution kernel (time, bands).
    pub kernel: [usize; 2],
    /// First convolution stride (both axes).
    pub stride: usize,
    /// Output classes.
    pub classes: usize,
}

impl DsCnnConfig {
    /// A small model for the 49 × 40 features of the runtime's front end: a 10 × 4 stride-2
    /// convolution to `channels`, then `blocks` depthwise-separable blocks.
    pub fn small(classes: usize, channels: usize, blocks: usize) -> Self {
        DsCnnConfig {
            frames: edgeloop_runtime::audio::FRAMES,
            bands: edgeloop_runtime::audio::MEL_BANDS,
            channels,
            blocks,
            kernel: [10, 4],
            stride: 2,
            classes,
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, r: &str| Err(TrainerError::config(f, r));
        if self.frames == 0 || self.bands == 0 {
            return bad("frames/bands", "must be at least 1");
        }
        if self.channels == 0 || self.classes < 2 {
            return bad("channels/classes", "need ≥ 1 channel and ≥ 2 classes");
        }
        if self.kernel[0] == 0 || self.kernel[1] == 0 || self.stride == 0 {
            return bad("kernel/stride", "must be at least 1");
        }
        Ok(())
    }

    /// "SAME" padding of the first convolution: `(top, bottom, left, right)`.
    pub fn pads(&self) -> [usize; 4] {
        let same = |n: usize, k: usize| {
            let out = n.div_ceil(self.stride);
            let total = ((out - 1) * self.stride + k).saturating_sub(n);
            (total / 2, total - total / 2)
        };
        let (t, b) = same(self.frames, self.kernel[0]);
        let (l, r) = same(self.bands, self.kernel[1]);
        [t, b, l, r]
    }

    /// Feature-map size after the first convolution `(H, W)`.
    pub fn map(&self) -> (usize, usize) {
        (
            self.frames.div_ceil(self.stride),
            self.bands.div_ceil(self.stride),
        )
    }

    /// Multiply-accumulates per inference.
    pub fn macs(&self) -> usize {
        let (h, w) = self.map();
        let c = self.channels;
        h * w * c * self.kernel[0] * self.kernel[1]
            + self.blocks * h * w * (9 * c + c * c)
            + c * self.classes
    }
}

/// A fixed affine normalization of the input, `(x − mean) / std`, applied to the first
/// convolution's zero-padded input (the padding is a raw 0, the front end's "no energy"
/// feature, normalized like every other value). Because it is a scalar affine map applied
/// before the convolution, the ONNX export folds it exactly into the first convolution's weights
/// (`w / std`) and bias (`b − mean / std · Σw`), so the exported model takes raw features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InputNorm {
    /// Subtracted from every input value.
    pub mean: f32,
    /// Divides every input value after the mean is subtracted (positive).
    pub std: f32,
}

impl Default for InputNorm {
    fn default() -> Self {
        InputNorm {
            mean: 0.0,
            std: 1.0,
        }
    }
}

/// The DS-CNN's parameters.
#[derive(Debug, Clone)]
pub struct DsCnn {
    /// Sizes.
    pub config: DsCnnConfig,
    /// Input normalization (identity after [`DsCnn::new`]; the trainer sets it from the
    /// training features).
    pub input_norm: InputNorm,
    /// Named variables, in ONNX layout (see the module docs).
    pub vars: Vec<(String, Var)>,
}

fn uniform(r: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| r.gen_range(-bound..bound)).collect()
}

impl DsCnn {
    /// A model with He-uniform weights drawn from `seed` and zero biases. `input_scale` is the
    /// typical magnitude of the inputs (the first layer's weights are divided by it).
    pub fn new(config: DsCnnConfig, seed: u64, input_scale: f32, dtype: DType) -> Result<Self> {
        config.validate()?;
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let c = config.channels;
        let [kh, kw] = config.kernel;
        let mut vars = Vec::new();
        let mut push = |name: String, shape: &[usize], v: Vec<f32>| -> Result<()> {
            let t = Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?;
            vars.push((name, Var::from_tensor(&t)?));
            Ok(())
        };
        let he = |fan_in: usize| (6.0 / fan_in as f32).sqrt();
        push(
            "conv0.weight".into(),
            &[c, 1, kh, kw],
            uniform(&mut r, c * kh * kw, he(kh * kw) / input_scale.max(1e-6)),
        )?;
        push("conv0.bias".into(), &[c], vec![0.0; c])?;
        for i in 1..=config.blocks {
            push(
                format!("dw{i}.weight"),
                &[c, 1, 3, 3],
                uniform(&mut r, 9 * c, he(9)),
            )?;
            push(format!("dw{i}.bias"), &[c], vec![0.0; c])?;
            push(
                format!("pw{i}.weight"),
                &[c, c, 1, 1],
                uniform(&mut r, c * c, he(c)),
            )?;
            push(format!("pw{i}.bias"), &[c], vec![0.0; c])?;
        }
        let k = config.classes;
        push("fc.weight".into(), &[k, c], uniform(&mut r, k * c, he(c)))?;
        push("fc.bias".into(), &[k], vec![0.0; k])?;
        Ok(DsCnn {
            config,
            input_norm: InputNorm::default(),
            vars,
        })
    }

    /// The variable `name`.
    pub fn var(&self, name: &str) -> Result<&Var> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| TrainerError::Weights {
                name: name.into(),
                reason: "missing".into(),
            })
    }

    /// Parameter count.
    pub fn params(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Logits `[B, K]` of inputs `x` `[B, 1, frames, bands]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, _, f, m) = x.dims4()?;
        if f != cfg.frames || m != cfg.bands {
            return Err(TrainerError::Data(format!(
                "input is {f}×{m}, the model takes {}×{}",
                cfg.frames, cfg.bands
            )));
        }
        let c = cfg.channels;
        let [kh, kw] = cfg.kernel;
        let [t, _, l, _] = cfg.pads();
        let (hh, ww) = cfg.map();
        let n = b * hh * ww;
        let dev = x.device();
        // Activations are channel-major, [C, B·H·W], so that every convolution is one matmul.
        // First convolution: the taps of every output position gathered from the flattened
        // input plus one trailing zero (the padding, in raw input units), normalized, then
        // [C, kh·kw] × [kh·kw, B·H·W]. The input needs no gradient, so only the weight's is
        // computed. Raw-zero padding normalized with the input is what the export's folding of
        // the normalization into the weights computes (see `InputNorm`).
        let geo = Unfold {
            batch: b,
            in_h: f,
            in_w: m,
            out_h: hh,
            out_w: ww,
            kh,
            kw,
            stride: cfg.stride,
            pad_top: t,
            pad_left: l,
        };
        let flat = Tensor::cat(&[&x.flatten_all()?, &Tensor::zeros(1, x.dtype(), dev)?], 0)?;
        let idx = Tensor::from_vec(geo.index(), kh * kw * n, dev)?;
        let u = flat.index_select(&idx, 0)?.reshape((kh * kw, n))?.affine(
            1.0 / self.input_norm.std as f64,
            -(self.input_norm.mean / self.input_norm.std) as f64,
        )?;
        let w0 = self
            .var("conv0.weight")?
            .as_tensor()
            .reshape((c, kh * kw))?;
        let b0 = self.var("conv0.bias")?.as_tensor().reshape((c, 1))?;
        let mut h = w0
            .matmul(&u.to_dtype(w0.dtype())?)?
            .broadcast_add(&b0)?
            .relu()?;
        // Depthwise 3×3 (pad 1): the nine taps of every position gathered from h plus a zero
        // column, [C, B·H·W, 9] × [C, 9, 1] batched over channels.
        let dgeo = Unfold {
            batch: b,
            in_h: hh,
            in_w: ww,
            out_h: hh,
            out_w: ww,
            kh: 3,
            kw: 3,
            stride: 1,
            pad_top: 1,
            pad_left: 1,
        };
        let didx = Tensor::from_vec(dgeo.index_tap_last(), n * 9, dev)?;
        let zero = Tensor::zeros((c, 1), h.dtype(), dev)?;
        for i in 1..=cfg.blocks {
            let dw = self.var(&format!("dw{i}.weight"))?.as_tensor();
            let db = self.var(&format!("dw{i}.bias"))?.as_tensor();
            let pw = self.var(&format!("pw{i}.weight"))?.as_tensor();
            let pb = self.var(&format!("pw{i}.bias"))?.as_tensor();
            let taps = Tensor::cat(&[&h, &zero], 1)?
                .index_select(&didx, 1)?
                .reshape((c, n, 9))?;
            let a = taps
                .matmul(&dw.reshape((c, 9, 1))?)?
                .reshape((c, n))?
                .broadcast_add(&db.reshape((c, 1))?)?
                .relu()?;
            h = pw
                .reshape((c, c))?
                .matmul(&a)?
                .broadcast_add(&pb.reshape((c, 1))?)?
                .relu()?;
        }
        let pooled = h.reshape((c, b, hh * ww))?.mean(2)?.t()?; // [B, C]
        let fw = self.var("fc.weight")?.as_tensor();
        let fb = self.var("fc.bias")?.as_tensor();
        Ok(pooled.matmul(&fw.t()?)?.broadcast_add(fb)?)
    }
}

/// Geometry of a convolution's gather: a batch of `in_h × in_w` maps stored flat (map after
/// map), followed by one zero element that every padding tap reads.
struct Unfold {
    batch: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad_top: usize,
    pad_left: usize,
}

impl Unfold {
    /// Flat input index of tap `(a, c)` of output `(bi, i, j)` (the trailing zero when padding).
    fn at(&self, bi: usize, i: usize, j: usize, a: usize, c: usize) -> u32 {
        let (y, x) = (
            (i * self.stride + a).checked_sub(self.pad_top),
            (j * self.stride + c).checked_sub(self.pad_left),
        );
        match (y, x) {
            (Some(y), Some(x)) if y < self.in_h && x < self.in_w => {
                ((bi * self.in_h + y) * self.in_w + x) as u32
            }
            _ => (self.batch * self.in_h * self.in_w) as u32,
        }
    }

    /// Indices tap-major: `[kh·kw, batch·out_h·out_w]`.
    fn index(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.kh * self.kw * self.batch * self.out_h * self.out_w);
        for a in 0..self.kh {
            for c in 0..self.kw {
                for bi in 0..self.batch {
                    for i in 0..self.out_h {
                        for j in 0..self.out_w {
                            v.push(self.at(bi, i, j, a, c));
                        }
                    }
                }
            }
        }
        v
    }

    /// Indices tap-last: `[batch·out_h·out_w, kh·kw]`.
    fn index_tap_last(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.kh * self.kw * self.batch * self.out_h * self.out_w);
        for bi in 0..self.batch {
            for i in 0..self.out_h {
                for j in 0..self.out_w {
                    for a in 0..self.kh {
                        for c in 0..self.kw {
                            v.push(self.at(bi, i, j, a, c));
                        }
                    }
                }
            }
        }
        v
    }
}

/// Mean cross-entropy of `logits` `[B, K]` against `labels` (u32 `[B]`), from primitive ops
/// (max-shifted log-sum-exp and a gather), so it has a gradient.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let z = logits.broadcast_sub(&max)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let logp = z.broadcast_sub(&lse)?;
    let picked = logp.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(picked.mean_all()?.neg()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(dtype: DType) -> (DsCnn, Tensor, Tensor) {
        let cfg = DsCnnConfig {
            frames: 7,
            bands: 6,
            channels: 3,
            blocks: 2,
            kernel: [3, 2],
            stride: 2,
            classes: 4,
        };
        let mut m = DsCnn::new(cfg, 3, 1.0, dtype).unwrap();
        m.input_norm = InputNorm {
            mean: 0.7,
            std: 1.9,
        };
        // Non-zero biases so every parameter's gradient is exercised.
        let mut r = ChaCha8Rng::seed_from_u64(9);
        for (_, v) in m.vars.iter_mut() {
            let n = v.elem_count();
            let t = Tensor::from_vec(uniform(&mut r, n, 0.5), v.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            v.set(&(v.as_tensor() + t).unwrap()).unwrap();
        }
        let x = Tensor::from_vec(uniform(&mut r, 2 * 7 * 6, 2.0), (2, 1, 7, 6), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let y = Tensor::new(&[1u32, 3], &Device::Cpu).unwrap();
        (m, x, y)
    }

    #[test]
    fn shapes_and_pads() {
        let c = DsCnnConfig::small(8, 32, 3);
        assert_eq!(c.pads(), [4, 5, 1, 1]);
        assert_eq!(c.map(), (25, 20));
        let m = DsCnn::new(c, 1, 10.0, DType::F32).unwrap();
        let x = Tensor::zeros((2, 1, 49, 40), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(m.forward(&x).unwrap().dims(), &[2, 8]);
        let bad = Tensor::zeros((2, 1, 48, 40), DType::F32, &Device::Cpu).unwrap();
        assert!(m.forward(&bad).is_err());
    }

    /// Analytic gradients of the loss equal central finite differences (f64) for a sample of
    /// entries of every parameter.
    #[test]
    fn gradient_check() {
        let (m, x, y) = tiny(DType::F64);
        let loss = cross_entropy(&m.forward(&x).unwrap(), &y).unwrap();
        let grads = loss.backward().unwrap();
        let eps = 1e-6;
        for (name, var) in &m.vars {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} has no gradient"))
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let base = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for idx in (0..base.len()).step_by(base.len().div_ceil(5)) {
                let eval = |delta: f64| {
                    let mut v = base.clone();
                    v[idx] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    let l = cross_entropy(&m.forward(&x).unwrap(), &y).unwrap();
                    l.to_scalar::<f64>().unwrap()
                };
                let num = (eval(eps) - eval(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let err = (num - g[idx]).abs();
                assert!(
                    err < 1e-6 + 1e-4 * num.abs().max(g[idx].abs()),
                    "{name}[{idx}]: analytic {} numeric {num}",
                    g[idx]
                );
            }
        }
    }

    #[test]
    fn cross_entropy_matches_formula() {
        let logits = Tensor::new(&[[1.0f32, 2.0, 3.0], [0.0, 0.0, 10.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[2u32, 0], &Device::Cpu).unwrap();
        let got = cross_entropy(&logits, &y)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let l1 = -(3.0f32.exp() / (1f32.exp() + 2f32.exp() + 3f32.exp())).ln();
        let l2 = -(1.0 / (2.0 + 10f32.exp())).ln();
        assert!((got - (l1 + l2) / 2.0).abs() < 1e-5);
    }
}

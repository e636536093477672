//! Example models built in code with the image writer (feature `std`): a small MLP and a
//! keyword-spotting DS-CNN. Each is a [`Sequential`] of float layers with seeded random weights,
//! which can be written as an f32 image, or calibrated and written as an int8 image, and run in
//! f64 as the reference the runtime's outputs are compared with.

pub mod ds_cnn;
pub mod mlp;
pub mod tiny_encoder;
pub mod tiny_gpt;

use crate::image::layers::{choose_quant, Activation, Window};
use crate::image::writer::{BuiltImage, ImageWriter, TensorId, WriteError};
use crate::image::DType;

/// One float layer of a sequential model.
#[derive(Debug, Clone)]
pub enum Layer {
    /// FullyConnected: weights `[out, in]`.
    Dense {
        /// Weights `[out, in]`.
        w: Vec<f32>,
        /// Bias `[out]`.
        b: Vec<f32>,
        /// Output features.
        out: usize,
        /// Fused activation.
        act: Activation,
    },
    /// Conv2D: weights `[out_c, kh, kw, in_c]`.
    Conv2d {
        /// Weights.
        w: Vec<f32>,
        /// Bias `[out_c]`.
        b: Vec<f32>,
        /// Weight dims `[out_c, kh, kw, in_c]`.
        dims: [usize; 4],
        /// Stride, dilation, padding.
        win: Window,
        /// Fused activation.
        act: Activation,
    },
    /// DepthwiseConv2D (depth multiplier 1): weights `[1, kh, kw, c]`.
    Depthwise {
        /// Weights.
        w: Vec<f32>,
        /// Bias `[c]`.
        b: Vec<f32>,
        /// Weight dims `[1, kh, kw, c]`.
        dims: [usize; 4],
        /// Stride, dilation, padding.
        win: Window,
        /// Fused activation.
        act: Activation,
    },
    /// Mean over H and W: `[n, h, w, c]` → `[n, 1, 1, c]`.
    GlobalAvgPool,
    /// `[n, ...]` → `[n, features]`, a zero-copy alias.
    Flatten,
    /// Softmax over the last axis.
    Softmax,
}

/// A sequential float model with a fixed input shape.
#[derive(Debug, Clone)]
pub struct Sequential {
    /// Model name (≤ 24 bytes).
    pub name: &'static str,
    /// Input shape (batch first).
    pub input: Vec<usize>,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

/// Quantization of an int8 image's input and output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IoQuant {
    /// Input `(scale, zero_point)`.
    pub input: (f32, i32),
    /// Output `(scale, zero_point)`.
    pub output: (f32, i32),
}

/// A deterministic generator for weights and inputs (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[-1, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// `n` values uniform in `[-limit, limit)`.
    pub fn vec(&mut self, n: usize, limit: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * limit).collect()
    }
}

fn shape_after(layer: &Layer, shape: &[usize]) -> Vec<usize> {
    match layer {
        Layer::Dense { out, .. } => {
            let mut s = shape.to_vec();
            if let Some(l) = s.last_mut() {
                *l = *out;
            }
            s
        }
        Layer::Conv2d { dims, win, .. } | Layer::Depthwise { dims, win, .. } => {
            let oc = if matches!(layer, Layer::Conv2d { .. }) {
                dims[0]
            } else {
                dims[3]
            };
            let [oh, ow] = win
                .output([shape[1], shape[2]], [dims[1], dims[2]])
                .unwrap_or([0, 0]);
            vec![shape[0], oh, ow, oc]
        }
        Layer::GlobalAvgPool => vec![shape[0], 1, 1, shape[3]],
        Layer::Flatten => vec![shape[0], shape[1..].iter().product()],
        Layer::Softmax => shape.to_vec(),
    }
}

/// NHWC index.
fn at(s: &[usize], n: usize, h: usize, w: usize, c: usize) -> usize {
    ((n * s[1] + h) * s[2] + w) * s[3] + c
}

#[allow(clippy::too_many_arguments)]
fn conv_f64(
    x: &[f64],
    xs: &[usize],
    w: &[f32],
    b: &[f32],
    dims: [usize; 4],
    win: &Window,
    depthwise: bool,
    act: Activation,
) -> (Vec<f64>, Vec<usize>) {
    let oc = if depthwise { dims[3] } else { dims[0] };
    let [kh, kw] = [dims[1], dims[2]];
    let [oh, ow] = win.output([xs[1], xs[2]], [kh, kw]).unwrap_or([0, 0]);
    let os = vec![xs[0], oh, ow, oc];
    let mut y = vec![0f64; os.iter().product()];
    for n in 0..xs[0] {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..oc {
                    let mut acc = b[o] as f64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * win.stride[0] + ky * win.dilation[0]) as isize
                                - win.padding[0] as isize;
                            let ix = (ox * win.stride[1] + kx * win.dilation[1]) as isize
                                - win.padding[2] as isize;
                            if iy < 0 || ix < 0 || iy as usize >= xs[1] || ix as usize >= xs[2] {
                                continue;
                            }
                            let (iy, ix) = (iy as usize, ix as usize);
                            if depthwise {
                                let ic = o / (oc / xs[3]);
                                acc += x[at(xs, n, iy, ix, ic)] * w[(ky * kw + kx) * oc + o] as f64;
                            } else {
                                for ic in 0..xs[3] {
                                    acc += x[at(xs, n, iy, ix, ic)]
                                        * w[((o * kh + ky) * kw + kx) * xs[3] + ic] as f64;
                                }
                            }
                        }
                    }
                    y[at(&os, n, oy, ox, o)] = act.apply(acc);
                }
            }
        }
    }
    (y, os)
}

impl Sequential {
    /// Number of weights and biases.
    pub fn num_params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Dense { w, b, .. }
                | Layer::Conv2d { w, b, .. }
                | Layer::Depthwise { w, b, .. } => w.len() + b.len(),
                _ => 0,
            })
            .sum()
    }

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Runs the model in f64 and returns the output of every layer (the last is the model's).
    pub fn forward_f64(&self, x: &[f32]) -> Vec<Vec<f64>> {
        let mut shape = self.input.clone();
        let mut cur: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut outs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let next_shape = shape_after(layer, &shape);
            cur = match layer {
                Layer::Dense { w, b, out, act } => {
                    let k = *shape.last().unwrap_or(&1);
                    let rows = cur.len() / k;
                    let mut y = vec![0f64; rows * out];
                    for r in 0..rows {
                        for o in 0..*out {
                            let mut acc = b[o] as f64;
                            for i in 0..k {
                                acc += cur[r * k + i] * w[o * k + i] as f64;
                            }
                            y[r * out + o] = act.apply(acc);
                        }
                    }
                    y
                }
                Layer::Conv2d {
                    w,
                    b,
                    dims,
                    win,
                    act,
                } => conv_f64(&cur, &shape, w, b, *dims, win, false, *act).0,
                Layer::Depthwise {
                    w,
                    b,
                    dims,
                    win,
                    act,
                } => conv_f64(&cur, &shape, w, b, *dims, win, true, *act).0,
                Layer::GlobalAvgPool => {
                    let (n, hw, c) = (shape[0], shape[1] * shape[2], shape[3]);
                    let mut y = vec![0f64; n * c];
                    for b in 0..n {
                        for p in 0..hw {
                            for ch in 0..c {
                                y[b * c + ch] += cur[(b * hw + p) * c + ch] / hw as f64;
                            }
                        }
                    }
                    y
                }
                Layer::Flatten => cur,
                Layer::Softmax => {
                    let k = *shape.last().unwrap_or(&1);
                    let mut y = cur.clone();
                    for row in y.chunks_mut(k) {
                        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
                        row.iter_mut().for_each(|v| *v = (*v - m).exp() / s);
                    }
                    y
                }
            };
            shape = next_shape;
            outs.push(cur.clone());
        }
        outs
    }

    fn emit(
        &self,
        wr: &mut ImageWriter,
        x: TensorId,
        quants: Option<&[(f32, i32)]>,
    ) -> Result<TensorId, WriteError> {
        let mut cur = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let q = quants.map(|q| q[i]);
            cur = match layer {
                Layer::Dense { w, b, out, act } => {
                    wr.fully_connected(cur, w, Some(b), *out, *act, q)?
                }
                Layer::Conv2d {
                    w,
                    b,
                    dims,
                    win,
                    act,
                } => wr.conv2d(cur, w, Some(b), *dims, *win, *act, q)?,
                Layer::Depthwise {
                    w,
                    b,
                    dims,
                    win,
                    act,
                } => wr.depthwise_conv2d(cur, w, Some(b), *dims, *win, *act, q)?,
                Layer::GlobalAvgPool => wr.global_avg_pool(cur, q)?,
                Layer::Flatten => {
                    let s = wr.shape(cur)?;
                    wr.alias(cur, &[s[0], s[1..].iter().product()])?
                }
                Layer::Softmax => wr.softmax(cur, 1.0)?,
            };
        }
        wr.output(cur)?;
        Ok(cur)
    }

    /// Writes the model as an f32 image.
    pub fn build_f32(&self) -> Result<BuiltImage, WriteError> {
        let mut wr = ImageWriter::new(self.name, 1)?;
        let x = wr.input(DType::F32, &self.input, None)?;
        self.emit(&mut wr, x, None)?;
        wr.finish()
    }

    /// Calibrates activation ranges on `calibration` inputs and writes an int8 image
    /// (int8 input and output tensors).
    pub fn build_i8(&self, calibration: &[Vec<f32>]) -> Result<(BuiltImage, IoQuant), WriteError> {
        let n = self.layers.len();
        let (mut in_min, mut in_max) = (0f32, 0f32);
        let mut ranges = vec![(0f32, 0f32); n];
        for x in calibration {
            x.iter().for_each(|&v| {
                in_min = in_min.min(v);
                in_max = in_max.max(v);
            });
            for (r, out) in ranges.iter_mut().zip(self.forward_f64(x)) {
                for v in out {
                    r.0 = r.0.min(v as f32);
                    r.1 = r.1.max(v as f32);
                }
            }
        }
        let in_q = choose_quant(in_min, in_max);
        let mut quants: Vec<(f32, i32)> = ranges.iter().map(|&(a, b)| choose_quant(a, b)).collect();
        // Layers that keep their input's quantization (pooling, flatten), and softmax's fixed one.
        for i in 0..n {
            let prev = if i == 0 { in_q } else { quants[i - 1] };
            match self.layers[i] {
                Layer::GlobalAvgPool | Layer::Flatten => quants[i] = prev,
                Layer::Softmax => quants[i] = (1.0 / 256.0, -128),
                _ => {}
            }
        }
        let mut wr = ImageWriter::new(self.name, 1)?;
        let x = wr.input(DType::I8, &self.input, Some(in_q))?;
        self.emit(&mut wr, x, Some(&quants))?;
        let built = wr.finish()?;
        Ok((
            built,
            IoQuant {
                input: in_q,
                output: quants[n - 1],
            },
        ))
    }
}

/// Quantizes a float vector with `(scale, zero_point)`.
pub fn quantize(x: &[f32], q: (f32, i32)) -> Vec<i8> {
    x.iter()
        .map(|&v| ((v / q.0).round() as i32 + q.1).clamp(-128, 127) as i8)
        .collect()
}

/// Dequantizes an int8 vector.
pub fn dequantize(x: &[i8], q: (f32, i32)) -> Vec<f32> {
    x.iter().map(|&v| (v as i32 - q.1) as f32 * q.0).collect()
}

#[cfg(test)]
mod tests;

//! Typed op encoders for [`ImageWriter`] (feature `std`): one method per op, writing the
//! parameter record of `FORMAT.md` ("Operators"), plus the offline int8 quantization of float
//! weights (symmetric per output channel) and the requantization constants the kernels read.

use super::writer::{ConstRole, ImageWriter, TensorId, WriteError};
use super::{DType, OpCode, TableFn};
use crate::ops::{ClampF32, ClampI8};
use crate::quant::quantize_multiplier;

/// Fused activation of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
}

impl Activation {
    /// The int8 clamp for an output quantized with `(scale, zero_point)`.
    pub fn clamp_i8(self, scale: f32, zero_point: i32) -> ClampI8 {
        match self {
            Activation::None => ClampI8::NONE,
            Activation::Relu => ClampI8::relu(zero_point),
            Activation::Relu6 => ClampI8::relu6(scale, zero_point),
        }
    }

    /// The f32 clamp.
    pub fn clamp_f32(self) -> ClampF32 {
        match self {
            Activation::None => ClampF32::NONE,
            Activation::Relu => ClampF32::RELU,
            Activation::Relu6 => ClampF32::RELU6,
        }
    }

    /// Applies the activation in f64 (for reference computations).
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}

/// Sliding-window geometry of a convolution or pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
    /// Dilation `[h, w]`.
    pub dilation: [usize; 2],
    /// Padding `[top, bottom, left, right]`.
    pub padding: [usize; 4],
}

impl Window {
    /// No padding, stride 1, dilation 1.
    pub const VALID: Window = Window {
        stride: [1, 1],
        dilation: [1, 1],
        padding: [0, 0, 0, 0],
    };

    /// TensorFlow "SAME" padding for an input `[h, w]`, kernel `[kh, kw]` and stride.
    pub fn same(input: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> Window {
        let pad = |i: usize, k: usize, s: usize| {
            let out = i.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(i);
            (total / 2, total - total / 2)
        };
        let (t, b) = pad(input[0], kernel[0], stride[0]);
        let (l, r) = pad(input[1], kernel[1], stride[1]);
        Window {
            stride,
            dilation: [1, 1],
            padding: [t, b, l, r],
        }
    }

    /// Output `[h, w]` for an input `[h, w]` and kernel `[kh, kw]`, `None` if the window does not fit.
    pub fn output(&self, input: [usize; 2], kernel: [usize; 2]) -> Option<[usize; 2]> {
        let axis = |i: usize, k: usize, a: usize| {
            let padded = i + self.padding[2 * a] + self.padding[2 * a + 1];
            let eff = (k - 1) * self.dilation[a] + 1;
            (eff <= padded && self.stride[a] > 0).then(|| (padded - eff) / self.stride[a] + 1)
        };
        Some([axis(input[0], kernel[0], 0)?, axis(input[1], kernel[1], 1)?])
    }

    fn words(&self) -> [u32; 8] {
        [
            self.stride[0] as u32,
            self.stride[1] as u32,
            self.dilation[0] as u32,
            self.dilation[1] as u32,
            self.padding[0] as u32,
            self.padding[1] as u32,
            self.padding[2] as u32,
            self.padding[3] as u32,
        ]
    }
}

/// Symmetric per-channel int8 quantization of weights; the output channel is the slowest axis
/// (`channel_last == false`: FullyConnected, Conv2D, Conv1D) or the fastest
/// (`channel_last == true`: DepthwiseConv2D). Returns the int8 values in [-127, 127] and the scale
/// of each channel.
pub fn quantize_weights(w: &[f32], channels: usize, channel_last: bool) -> (Vec<i8>, Vec<f32>) {
    let ch = |i: usize| {
        if channel_last {
            i % channels
        } else {
            i / (w.len() / channels)
        }
    };
    let mut max = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        max[ch(i)] = max[ch(i)].max(v.abs());
    }
    let scales: Vec<f32> = max
        .iter()
        .map(|&m| {
            if m > 0.0 && m.is_finite() {
                m / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| (v / scales[ch(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// Quantization `(scale, zero_point)` covering the real range `[min, max]` (extended to include 0).
pub fn choose_quant(min: f32, max: f32) -> (f32, i32) {
    let min = min.min(0.0);
    let max = max.max(0.0);
    let scale = if max > min {
        (max - min) / 255.0
    } else {
        1.0 / 255.0
    };
    let zp = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

impl ImageWriter {
    fn require(&self, t: TensorId, dtype: DType) -> Result<(), WriteError> {
        if self.dtype(t)? == dtype {
            Ok(())
        } else {
            Err(WriteError::UnknownTensor(t.0))
        }
    }

    /// Constants for an int8 layer: quantized weights, int32 bias, multipliers and shifts.
    #[allow(clippy::too_many_arguments)]
    fn int8_constants(
        &mut self,
        x: TensorId,
        w: &[f32],
        w_dims: &[usize],
        bias: Option<&[f32]>,
        channels: usize,
        channel_last: bool,
        out_scale: f32,
    ) -> Result<[Option<TensorId>; 5], WriteError> {
        let (s_in, _) = self.quant(x)?;
        let (qw, ws) = quantize_weights(w, channels, channel_last);
        let wt = self.const_i8(w_dims, &qw, ConstRole::Weight)?;
        let bt = match bias {
            Some(b) => {
                if b.len() != channels {
                    return Err(WriteError::ConstantLength {
                        expected: channels,
                        got: b.len(),
                    });
                }
                let qb: Vec<i32> = b
                    .iter()
                    .zip(&ws)
                    .map(|(&v, &s)| {
                        (v as f64 / (s_in as f64 * s as f64))
                            .round()
                            .clamp(i32::MIN as f64, i32::MAX as f64) as i32
                    })
                    .collect();
                Some(self.const_i32(&[channels], &qb, ConstRole::Bias)?)
            }
            None => None,
        };
        let mut mult = Vec::with_capacity(channels);
        let mut shift = Vec::with_capacity(channels);
        for &s in &ws {
            let real = s_in as f64 * s as f64 / out_scale as f64;
            let (m, sh) = quantize_multiplier(real).ok_or(WriteError::BadScale(real))?;
            mult.push(m);
            shift.push(sh);
        }
        let mt = self.const_i32(&[channels], &mult, ConstRole::Other)?;
        let st = self.const_i32(&[channels], &shift, ConstRole::Other)?;
        Ok([Some(x), Some(wt), bt, Some(mt), Some(st)])
    }

    fn f32_constants(
        &mut self,
        x: TensorId,
        w: &[f32],
        w_dims: &[usize],
        bias: Option<&[f32]>,
    ) -> Result<[Option<TensorId>; 3], WriteError> {
        let wt = self.const_f32(w_dims, w, ConstRole::Weight)?;
        let bt = match bias {
            Some(b) => Some(self.const_f32(&[b.len()], b, ConstRole::Bias)?),
            None => None,
        };
        Ok([Some(x), Some(wt), bt])
    }

    /// FullyConnected on an f32 or int8 input `x` (`[.., in]`), weights `[out, in]` given in
    /// f32 (quantized per output channel for int8). `out_quant` is required for int8.
    pub fn fully_connected(
        &mut self,
        x: TensorId,
        w: &[f32],
        bias: Option<&[f32]>,
        out_features: usize,
        act: Activation,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let mut dims = self.shape(x)?;
        let k = *dims.last().ok_or(WriteError::BadShape(dims.clone()))?;
        *dims.last_mut().unwrap_or(&mut 0) = out_features;
        let w_dims = [out_features, k];
        self.layer(
            OpCode::FullyConnected,
            x,
            w,
            &w_dims,
            bias,
            out_features,
            false,
            &dims,
            &[],
            act,
            out_quant,
        )
    }

    /// Conv2D on NHWC `x`, weights `[out_c, kh, kw, in_c]`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &mut self,
        x: TensorId,
        w: &[f32],
        bias: Option<&[f32]>,
        w_dims: [usize; 4],
        win: Window,
        act: Activation,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let xd = self.shape(x)?;
        if xd.len() != 4 {
            return Err(WriteError::BadShape(xd));
        }
        let [oh, ow] = win
            .output([xd[1], xd[2]], [w_dims[1], w_dims[2]])
            .ok_or(WriteError::BadShape(xd.clone()))?;
        let out = [xd[0], oh, ow, w_dims[0]];
        self.layer(
            OpCode::Conv2d,
            x,
            w,
            &w_dims,
            bias,
            w_dims[0],
            false,
            &out,
            &win.words(),
            act,
            out_quant,
        )
    }

    /// DepthwiseConv2D on NHWC `x`, weights `[1, kh, kw, out_c]` (`out_c` a multiple of `in_c`).
    #[allow(clippy::too_many_arguments)]
    pub fn depthwise_conv2d(
        &mut self,
        x: TensorId,
        w: &[f32],
        bias: Option<&[f32]>,
        w_dims: [usize; 4],
        win: Window,
        act: Activation,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let xd = self.shape(x)?;
        if xd.len() != 4 {
            return Err(WriteError::BadShape(xd));
        }
        let [oh, ow] = win
            .output([xd[1], xd[2]], [w_dims[1], w_dims[2]])
            .ok_or(WriteError::BadShape(xd.clone()))?;
        let out = [xd[0], oh, ow, w_dims[3]];
        self.layer(
            OpCode::DepthwiseConv2d,
            x,
            w,
            &w_dims,
            bias,
            w_dims[3],
            true,
            &out,
            &win.words(),
            act,
            out_quant,
        )
    }

    /// Conv1D on NWC `x`, weights `[out_c, k, in_c]`; `padding = [left, right]`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d(
        &mut self,
        x: TensorId,
        w: &[f32],
        bias: Option<&[f32]>,
        w_dims: [usize; 3],
        stride: usize,
        dilation: usize,
        padding: [usize; 2],
        act: Activation,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let xd = self.shape(x)?;
        if xd.len() != 3 {
            return Err(WriteError::BadShape(xd));
        }
        let win = Window {
            stride: [1, stride],
            dilation: [1, dilation],
            padding: [0, 0, padding[0], padding[1]],
        };
        let [_, ow] = win
            .output([1, xd[1]], [1, w_dims[1]])
            .ok_or(WriteError::BadShape(xd.clone()))?;
        let out = [xd[0], ow, w_dims[0]];
        let words = [
            stride as u32,
            dilation as u32,
            padding[0] as u32,
            padding[1] as u32,
        ];
        self.layer(
            OpCode::Conv1d,
            x,
            w,
            &w_dims,
            bias,
            w_dims[0],
            false,
            &out,
            &words,
            act,
            out_quant,
        )
    }

    /// Shared encoder of the weight layers: geometry words, then the clamp (2 words).
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        code: OpCode,
        x: TensorId,
        w: &[f32],
        w_dims: &[usize],
        bias: Option<&[f32]>,
        channels: usize,
        channel_last: bool,
        out_dims: &[usize],
        geometry: &[u32],
        act: Activation,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let mut words = geometry.to_vec();
        match self.dtype(x)? {
            DType::F32 => {
                let ins = self.f32_constants(x, w, w_dims, bias)?;
                let y = self.activation(DType::F32, out_dims, None)?;
                let c = act.clamp_f32();
                words.extend([c.min.to_bits(), c.max.to_bits()]);
                self.op(code, 1, &ins, &[y], &words)?;
                Ok(y)
            }
            _ => {
                self.require(x, DType::I8)?;
                let (s_out, zp_out) = out_quant.ok_or(WriteError::BadQuant {
                    scale: 0.0,
                    zero_point: 0,
                })?;
                let ins = self.int8_constants(x, w, w_dims, bias, channels, channel_last, s_out)?;
                let y = self.activation(DType::I8, out_dims, Some((s_out, zp_out)))?;
                let c = act.clamp_i8(s_out, zp_out);
                words.extend([c.min as i32 as u32, c.max as i32 as u32]);
                self.op(code, 1, &ins, &[y], &words)?;
                Ok(y)
            }
        }
    }

    fn same_as(&mut self, x: TensorId, dims: &[usize]) -> Result<TensorId, WriteError> {
        let dt = self.dtype(x)?;
        let (scale, zp) = self.quant(x)?;
        let q = (scale > 0.0).then_some((scale, zp));
        self.activation(dt, dims, q)
    }

    fn clamp_words(
        &self,
        x: TensorId,
        act: Activation,
        out_quant: Option<(f32, i32)>,
    ) -> Result<[u32; 2], WriteError> {
        Ok(match self.dtype(x)? {
            DType::F32 => {
                let c = act.clamp_f32();
                [c.min.to_bits(), c.max.to_bits()]
            }
            _ => {
                let (s, z) = match out_quant {
                    Some(q) => q,
                    None => self.quant(x)?,
                };
                let c = act.clamp_i8(s, z);
                [c.min as i32 as u32, c.max as i32 as u32]
            }
        })
    }

    /// A standalone ReLU (`relu6 == false`) or ReLU6; int8 keeps the input's quantization.
    pub fn relu(&mut self, x: TensorId, relu6: bool) -> Result<TensorId, WriteError> {
        let dims = self.shape(x)?;
        let y = self.same_as(x, &dims)?;
        let act = if relu6 {
            Activation::Relu6
        } else {
            Activation::Relu
        };
        let words = self.clamp_words(x, act, None)?;
        let code = if relu6 { OpCode::Relu6 } else { OpCode::Relu };
        self.op(code, 1, &[Some(x)], &[y], &words)?;
        Ok(y)
    }

    /// Max (`max == true`) or average pooling with window `kernel`; int8 keeps the input's quantization.
    pub fn pool2d(
        &mut self,
        x: TensorId,
        kernel: [usize; 2],
        win: Window,
        max: bool,
    ) -> Result<TensorId, WriteError> {
        let xd = self.shape(x)?;
        if xd.len() != 4 || win.dilation != [1, 1] {
            return Err(WriteError::BadShape(xd));
        }
        let [oh, ow] = win
            .output([xd[1], xd[2]], kernel)
            .ok_or(WriteError::BadShape(xd.clone()))?;
        let y = self.same_as(x, &[xd[0], oh, ow, xd[3]])?;
        let mut words = vec![
            kernel[0] as u32,
            kernel[1] as u32,
            win.stride[0] as u32,
            win.stride[1] as u32,
        ];
        words.extend(win.padding.iter().map(|&p| p as u32));
        words.extend(self.clamp_words(x, Activation::None, None)?);
        let code = if max {
            OpCode::MaxPool2d
        } else {
            OpCode::AvgPool2d
        };
        self.op(code, 1, &[Some(x)], &[y], &words)?;
        Ok(y)
    }

    /// Global average pooling `[n, h, w, c] → [n, 1, 1, c]` (int8: requantized to `out_quant`).
    pub fn global_avg_pool(
        &mut self,
        x: TensorId,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let xd = self.shape(x)?;
        if xd.len() != 4 {
            return Err(WriteError::BadShape(xd));
        }
        let dims = [xd[0], 1, 1, xd[3]];
        if self.dtype(x)? == DType::F32 {
            let y = self.activation(DType::F32, &dims, None)?;
            let words = self.clamp_words(x, Activation::None, None)?;
            self.op(OpCode::GlobalAvgPool, 1, &[Some(x)], &[y], &words)?;
            return Ok(y);
        }
        let (s_in, _) = self.quant(x)?;
        let q = match out_quant {
            Some(q) => q,
            None => self.quant(x)?,
        };
        let real = s_in as f64 / (q.0 as f64 * (xd[1] * xd[2]) as f64);
        let (m, sh) = crate::ops::pooling::global_avg_requant(
            s_in as f64,
            q.0 as f64,
            (xd[1] * xd[2]) as u32,
        )
        .ok_or(WriteError::BadScale(real))?;
        let y = self.activation(DType::I8, &dims, Some(q))?;
        let [lo, hi] = self.clamp_words(x, Activation::None, Some(q))?;
        self.op(
            OpCode::GlobalAvgPool,
            1,
            &[Some(x)],
            &[y],
            &[m as u32, sh as u32, lo, hi],
        )?;
        Ok(y)
    }

    /// A reshape that copies (prefer [`ImageWriter::alias`], which costs nothing).
    pub fn reshape_copy(&mut self, x: TensorId, dims: &[usize]) -> Result<TensorId, WriteError> {
        let y = self.same_as(x, dims)?;
        self.op(OpCode::Reshape, 1, &[Some(x)], &[y], &[])?;
        Ok(y)
    }

    /// Softmax over the last axis (int8: output scale 1/256, zero point -128, exp table in the image).
    pub fn softmax(&mut self, x: TensorId, beta: f32) -> Result<TensorId, WriteError> {
        use crate::ops::softmax::{exp_table, OUTPUT_SCALE, OUTPUT_ZERO_POINT};
        let dims = self.shape(x)?;
        if self.dtype(x)? == DType::F32 {
            let y = self.activation(DType::F32, &dims, None)?;
            self.op(OpCode::Softmax, 1, &[Some(x)], &[y], &[beta.to_bits()])?;
            return Ok(y);
        }
        let (s_in, _) = self.quant(x)?;
        let table = exp_table(s_in as f64, beta as f64);
        let t = self.const_i32(&[table.len()], &table, ConstRole::Other)?;
        let y = self.activation(DType::I8, &dims, Some((OUTPUT_SCALE, OUTPUT_ZERO_POINT)))?;
        self.op(OpCode::Softmax, 1, &[Some(x), Some(t)], &[y], &[])?;
        Ok(y)
    }

    /// f32 → int8 with `(scale, zero_point)`.
    pub fn quantize(&mut self, x: TensorId, q: (f32, i32)) -> Result<TensorId, WriteError> {
        let dims = self.shape(x)?;
        let y = self.activation(DType::I8, &dims, Some(q))?;
        self.op(OpCode::Quantize, 1, &[Some(x)], &[y], &[])?;
        Ok(y)
    }

    /// int8 → f32.
    pub fn dequantize(&mut self, x: TensorId) -> Result<TensorId, WriteError> {
        let dims = self.shape(x)?;
        let y = self.activation(DType::F32, &dims, None)?;
        self.op(OpCode::Dequantize, 1, &[Some(x)], &[y], &[])?;
        Ok(y)
    }

    /// Index of the largest value along `axis` (int32 output, the axis removed).
    pub fn argmax(&mut self, x: TensorId, axis: usize) -> Result<TensorId, WriteError> {
        let mut dims = self.shape(x)?;
        if axis >= dims.len() {
            return Err(WriteError::BadShape(dims));
        }
        dims.remove(axis);
        if dims.is_empty() {
            dims.push(1);
        }
        let y = self.activation(DType::I32, &dims, None)?;
        self.op(OpCode::ArgMax, 1, &[Some(x)], &[y], &[axis as u32])?;
        Ok(y)
    }

    /// Element-wise Add (`add == true`) or Mul of two tensors with broadcasting; int8 requantizes to `out_quant`.
    pub fn binary(
        &mut self,
        a: TensorId,
        b: TensorId,
        add: bool,
        act: Activation,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let (da, db) = (self.shape(a)?, self.shape(b)?);
        let rank = da.len().max(db.len());
        let pad = |d: &[usize]| {
            let mut v = vec![1; rank - d.len()];
            v.extend_from_slice(d);
            v
        };
        let (pa, pb) = (pad(&da), pad(&db));
        let dims: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
        let code = if add { OpCode::Add } else { OpCode::Mul };
        if self.dtype(a)? == DType::F32 {
            let y = self.activation(DType::F32, &dims, None)?;
            let words = self.clamp_words(a, act, None)?;
            self.op(code, 1, &[Some(a), Some(b)], &[y], &words)?;
            return Ok(y);
        }
        let q = out_quant.ok_or(WriteError::BadQuant {
            scale: 0.0,
            zero_point: 0,
        })?;
        let (s1, s2) = (self.quant(a)?.0 as f64, self.quant(b)?.0 as f64);
        let y = self.activation(DType::I8, &dims, Some(q))?;
        let [lo, hi] = self.clamp_words(a, act, Some(q))?;
        let words: Vec<u32> = if add {
            let r = crate::ops::add::AddRequant::new(s1, s2, q.0 as f64)
                .ok_or(WriteError::BadScale(s1 / q.0 as f64))?;
            vec![
                r.input1.0, r.input1.1, r.input2.0, r.input2.1, r.output.0, r.output.1,
            ]
            .into_iter()
            .map(|v| v as u32)
            .chain([lo, hi])
            .collect()
        } else {
            let real = s1 * s2 / q.0 as f64;
            let (m, sh) = quantize_multiplier(real).ok_or(WriteError::BadScale(real))?;
            vec![m as u32, sh as u32, lo, hi]
        };
        self.op(code, 1, &[Some(a), Some(b)], &[y], &words)?;
        Ok(y)
    }

    /// Concatenation along `axis`; int8 inputs are rescaled to `out_quant`.
    pub fn concat(
        &mut self,
        xs: &[TensorId],
        axis: usize,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let first = *xs.first().ok_or(WriteError::TooLarge)?;
        let mut dims = self.shape(first)?;
        if axis >= dims.len() {
            return Err(WriteError::BadShape(dims));
        }
        dims[axis] = xs
            .iter()
            .map(|&x| self.shape(x).map(|d| d.get(axis).copied().unwrap_or(0)))
            .sum::<Result<usize, _>>()?;
        let ins: Vec<Option<TensorId>> = xs.iter().map(|&x| Some(x)).collect();
        if self.dtype(first)? == DType::F32 {
            let y = self.activation(DType::F32, &dims, None)?;
            self.op(OpCode::Concat, 1, &ins, &[y], &[axis as u32])?;
            return Ok(y);
        }
        let q = out_quant.ok_or(WriteError::BadQuant {
            scale: 0.0,
            zero_point: 0,
        })?;
        let mut zps = Vec::new();
        let mut ms = Vec::new();
        let mut shs = Vec::new();
        for &x in xs {
            let (s, z) = self.quant(x)?;
            let (m, sh) = crate::ops::concat::concat_requant(s as f64, q.0 as f64)
                .ok_or(WriteError::BadScale(s as f64 / q.0 as f64))?;
            zps.push(z as u32);
            ms.push(m as u32);
            shs.push(sh as u32);
        }
        let y = self.activation(DType::I8, &dims, Some(q))?;
        let words: Vec<u32> = [axis as u32]
            .into_iter()
            .chain(zps)
            .chain(ms)
            .chain(shs)
            .collect();
        self.op(OpCode::Concat, 1, &ins, &[y], &words)?;
        Ok(y)
    }

    /// BatchMatMul of two activations `a [.., m, k]` and `b [.., k, n]` (or `[.., n, k]` with
    /// `transpose_b`); int8 requantizes to `out_quant`.
    pub fn batch_matmul(
        &mut self,
        a: TensorId,
        b: TensorId,
        transpose_b: bool,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let (ad, bd) = (self.shape(a)?, self.shape(b)?);
        if ad.len() < 2 || bd.len() != ad.len() {
            return Err(WriteError::BadShape(bd));
        }
        let r = ad.len();
        let n = if transpose_b { bd[r - 2] } else { bd[r - 1] };
        let mut dims = ad.clone();
        dims[r - 1] = n;
        let tb = transpose_b as u32;
        if self.dtype(a)? == DType::F32 {
            let y = self.activation(DType::F32, &dims, None)?;
            let c = ClampF32::NONE;
            let words = [tb, c.min.to_bits(), c.max.to_bits()];
            self.op(OpCode::BatchMatMul, 1, &[Some(a), Some(b)], &[y], &words)?;
            return Ok(y);
        }
        let q = out_quant.ok_or(WriteError::BadShape(dims.clone()))?;
        let ((sa, _), (sb, _)) = (self.quant(a)?, self.quant(b)?);
        let real = sa as f64 * sb as f64 / q.0 as f64;
        let (m, sh) = quantize_multiplier(real).ok_or(WriteError::BadScale(real))?;
        let y = self.activation(DType::I8, &dims, Some(q))?;
        let words = [tb, m as u32, sh as u32, -128i32 as u32, 127];
        self.op(OpCode::BatchMatMul, 1, &[Some(a), Some(b)], &[y], &words)?;
        Ok(y)
    }

    /// Transpose: output axis `i` is input axis `perm[i]` (`perm` a permutation of `0..rank`).
    pub fn transpose(&mut self, x: TensorId, perm: &[usize]) -> Result<TensorId, WriteError> {
        let xd = self.shape(x)?;
        let r = xd.len();
        let mut seen = [false; 4];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(WriteError::BadShape(perm.to_vec()));
        }
        let pad = 4 - r;
        let mut words = [0u32, 1, 2, 3];
        for (i, &p) in perm.iter().enumerate() {
            words[pad + i] = (pad + p) as u32;
        }
        let dims: Vec<usize> = perm.iter().map(|&p| xd[p]).collect();
        let y = self.same_as(x, &dims)?;
        self.op(OpCode::Transpose, 1, &[Some(x)], &[y], &words)?;
        Ok(y)
    }

    /// Embedding lookup: `table [rows, row_len]` (f32; stored as int8 with `quant` when given),
    /// `ids` an `i32` tensor `[count]`; output `[count, row_len]`.
    pub fn gather(
        &mut self,
        table: &[f32],
        rows: usize,
        row_len: usize,
        ids: TensorId,
        quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let count = self.shape(ids)?.iter().product::<usize>();
        let t = match quant {
            None => self.const_f32(&[rows, row_len], table, ConstRole::Weight)?,
            Some((s, z)) => {
                let q: Vec<u8> = table
                    .iter()
                    .map(|&v| ((v / s).round() + z as f32).clamp(-128.0, 127.0) as i8 as u8)
                    .collect();
                self.constant(DType::I8, &[rows, row_len], q, quant, ConstRole::Weight)?
            }
        };
        let dt = if quant.is_some() {
            DType::I8
        } else {
            DType::F32
        };
        let y = self.activation(dt, &[count, row_len], quant)?;
        self.op(OpCode::Gather, 1, &[Some(t), Some(ids)], &[y], &[])?;
        Ok(y)
    }

    /// LayerNorm over the last axis with `gamma`, `beta`, `epsilon`; int8 requantizes to `out_quant`.
    pub fn layer_norm(
        &mut self,
        x: TensorId,
        gamma: &[f32],
        beta: &[f32],
        epsilon: f32,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let dims = self.shape(x)?;
        let cols = *dims.last().ok_or(WriteError::BadShape(dims.clone()))?;
        if gamma.len() != cols || beta.len() != cols {
            return Err(WriteError::ConstantLength {
                expected: cols,
                got: gamma.len().min(beta.len()),
            });
        }
        if self.dtype(x)? == DType::F32 {
            let g = self.const_f32(&[cols], gamma, ConstRole::Weight)?;
            let b = self.const_f32(&[cols], beta, ConstRole::Bias)?;
            let y = self.activation(DType::F32, &dims, None)?;
            self.op(
                OpCode::LayerNorm,
                1,
                &[Some(x), Some(g), Some(b)],
                &[y],
                &[epsilon.to_bits()],
            )?;
            return Ok(y);
        }
        let q = out_quant.ok_or(WriteError::BadShape(dims.clone()))?;
        let (s_in, _) = self.quant(x)?;
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let k = crate::ops::layer_norm::LayerNormConstants::new(
            &f64s(gamma),
            &f64s(beta),
            epsilon as f64,
            s_in as f64,
            q.0 as f64,
        )
        .ok_or(WriteError::BadScale(q.0 as f64))?;
        let gm = self.const_i32(&[cols], &k.gamma_multiplier, ConstRole::Other)?;
        let gs = self.const_i32(&[cols], &k.gamma_shift, ConstRole::Other)?;
        let bq = self.const_i32(&[cols], &k.beta_q, ConstRole::Bias)?;
        let y = self.activation(DType::I8, &dims, Some(q))?;
        let words = [k.epsilon_q16 as u32, (k.epsilon_q16 >> 32) as u32];
        self.op(
            OpCode::LayerNorm,
            1,
            &[Some(x), Some(gm), Some(gs), Some(bq)],
            &[y],
            &words,
        )?;
        Ok(y)
    }

    /// Causal mask on scores `[.., rows, cols]`: row `i` keeps columns `0..=offset + i`.
    pub fn causal_mask(&mut self, x: TensorId, offset: usize) -> Result<TensorId, WriteError> {
        let dims = self.shape(x)?;
        let y = self.same_as(x, &dims)?;
        self.op(OpCode::CausalMask, 1, &[Some(x)], &[y], &[offset as u32])?;
        Ok(y)
    }

    /// Elementwise GELU / SiLU / Sigmoid / Tanh. int8 stores the 256-entry table for `x`'s and
    /// `out_quant`'s quantization in the constant section.
    pub fn table_fn(
        &mut self,
        x: TensorId,
        f: TableFn,
        out_quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let dims = self.shape(x)?;
        if self.dtype(x)? == DType::F32 {
            let y = self.activation(DType::F32, &dims, None)?;
            self.op(OpCode::Table, 1, &[Some(x)], &[y], &[f as u32])?;
            return Ok(y);
        }
        let q = out_quant.ok_or(WriteError::BadShape(dims.clone()))?;
        let (s, z) = self.quant(x)?;
        let build = match f {
            TableFn::Gelu => crate::ops::gelu::build_table,
            TableFn::Silu => crate::ops::silu::build_table,
            TableFn::Sigmoid => crate::ops::sigmoid::build_table,
            TableFn::Tanh => crate::ops::tanh::build_table,
        };
        let table = build(s as f64, z, q.0 as f64, q.1).ok_or(WriteError::BadQuant {
            scale: q.0,
            zero_point: q.1,
        })?;
        let t = self.const_i8(&[table.len()], &table, ConstRole::Other)?;
        let y = self.activation(DType::I8, &dims, Some(q))?;
        self.op(OpCode::Table, 1, &[Some(x), Some(t)], &[y], &[f as u32])?;
        Ok(y)
    }

    /// A persistent KV cache `[heads, capacity, head_dim]` with `new`'s type and quantization.
    pub fn kv_cache(&mut self, new: TensorId, capacity: usize) -> Result<TensorId, WriteError> {
        let d = self.shape(new)?;
        if d.len() != 3 {
            return Err(WriteError::BadShape(d));
        }
        let (s, z) = self.quant(new)?;
        let q = (s > 0.0).then_some((s, z));
        self.persistent(self.dtype(new)?, &[d[0], capacity, d[2]], q)
    }

    /// Writes `new [heads, tokens, head_dim]` into `cache` at the position held by `pos`
    /// (an `i32 [1]` graph input).
    pub fn kv_append(
        &mut self,
        new: TensorId,
        pos: TensorId,
        cache: TensorId,
    ) -> Result<(), WriteError> {
        self.op(OpCode::KvAppend, 1, &[Some(new), Some(pos)], &[cache], &[])
    }

    /// Attention of `q [heads, tokens, head_dim]` over the caches up to `pos + tokens`; the
    /// score scale is `1/√head_dim`. int8 needs `quant`: the score and output quantizations.
    pub fn attention(
        &mut self,
        q: TensorId,
        k_cache: TensorId,
        v_cache: TensorId,
        pos: TensorId,
        causal: bool,
        quant: Option<AttentionQuant>,
    ) -> Result<TensorId, WriteError> {
        let qd = self.shape(q)?;
        let cd = self.shape(k_cache)?;
        if qd.len() != 3 || cd.len() != 3 {
            return Err(WriteError::BadShape(qd));
        }
        let scale = 1.0 / (qd[2] as f64).sqrt();
        let ins = [Some(q), Some(k_cache), Some(v_cache), Some(pos)];
        if self.dtype(q)? == DType::F32 {
            let y = self.activation(DType::F32, &qd, None)?;
            let scr = self.activation(DType::F32, &[cd[1]], None)?;
            let words = [causal as u32, (scale as f32).to_bits()];
            self.op(OpCode::Attention, 1, &ins, &[y, scr], &words)?;
            return Ok(y);
        }
        let aq = quant.ok_or(WriteError::BadShape(qd.clone()))?;
        let ((sq, _), (sk, _), (sv, _)) =
            (self.quant(q)?, self.quant(k_cache)?, self.quant(v_cache)?);
        let real_s = sq as f64 * sk as f64 * scale / aq.score.0 as f64;
        let (sm, ss) = quantize_multiplier(real_s).ok_or(WriteError::BadScale(real_s))?;
        let real_o = sv as f64 / (aq.output.0 as f64 * 65536.0);
        let (om, os) = quantize_multiplier(real_o).ok_or(WriteError::BadScale(real_o))?;
        let table = crate::ops::softmax::exp_table(aq.score.0 as f64, 1.0);
        let t = self.const_i32(&[table.len()], &table, ConstRole::Other)?;
        let y = self.activation(DType::I8, &qd, Some(aq.output))?;
        let scr = self.activation(DType::I32, &[cd[1]], None)?;
        let words = [
            causal as u32,
            sm as u32,
            ss as u32,
            aq.score.1 as u32,
            om as u32,
            os as u32,
        ];
        let ins = [ins[0], ins[1], ins[2], ins[3], Some(t)];
        self.op(OpCode::Attention, 1, &ins, &[y, scr], &words)?;
        Ok(y)
    }
}

/// Quantizations of an int8 attention: its internal int8 scores and its output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionQuant {
    /// `(scale, zero_point)` of the scores `q·kᵀ/√d`.
    pub score: (f32, i32),
    /// `(scale, zero_point)` of the output.
    pub output: (f32, i32),
}

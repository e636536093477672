//! Binds op records to kernels: decodes each op's parameter record and tensors into the
//! kernel's `Params` (borrowing constants from the image), validates them with the kernel's
//! `check_*` at parse time, and runs `eval_*` over arena slices at invoke time.
//!
//! Parameter records are specified in `FORMAT.md` ("Operators"). Every decode step is fallible:
//! nothing here can panic on a malformed image.

use super::bytes::{self, i32_at, u32_at};
use super::model::Model;
use super::op::{OpCode, OpRecord, TableFn};
use super::tensor::{DType, Storage, TensorInfo};
use super::{FIRST_MINOR_1_OP, NO_TENSOR};
use crate::error::OpProblem;
use crate::ops::{self, ClampF32, ClampI8, Dims, Padding};
use crate::Error;

fn op_err(op: usize, problem: OpProblem) -> Error {
    Error::ImageBadOp {
        op: op as u32,
        problem,
    }
}

/// What a bound op needs at run time: kernel params plus the tensors it reads and writes.
pub(crate) enum Bound<'a> {
    FcI8(ops::fully_connected::FullyConnectedParams<'a>),
    FcPackedI8(ops::fully_connected::packed::PackedFullyConnectedParams<'a>),
    FcF32(ops::fully_connected::FullyConnectedF32Params<'a>),
    Conv2dI8(ops::conv2d::Conv2dParams<'a>),
    Conv2dF32(ops::conv2d::Conv2dF32Params<'a>),
    DwConvI8(ops::depthwise_conv2d::DepthwiseConv2dParams<'a>),
    DwConvF32(ops::depthwise_conv2d::DepthwiseConv2dF32Params<'a>),
    Conv1dI8(ops::conv1d::Conv1dParams<'a>),
    Conv1dF32(ops::conv1d::Conv1dF32Params<'a>),
    ActI8(ops::activation::ActivationParams),
    ActF32(ops::activation::ActivationF32Params),
    MaxPoolI8(ops::pooling::PoolParams),
    MaxPoolF32(ops::pooling::PoolF32Params),
    AvgPoolI8(ops::pooling::PoolParams),
    AvgPoolF32(ops::pooling::PoolF32Params),
    GlobalAvgI8(ops::pooling::GlobalAvgPoolParams),
    GlobalAvgF32(ops::pooling::GlobalAvgPoolF32Params),
    Reshape(ops::reshape::ReshapeParams, DType),
    SoftmaxI8(ops::softmax::SoftmaxParams<'a>),
    SoftmaxF32(ops::softmax::SoftmaxF32Params),
    SoftmaxQdq(ops::softmax::quantized::QuantizedSoftmaxParams<'a>),
    LayerNormQdq(ops::layer_norm::quantized::QuantizedLayerNormParams<'a>),
    Quantize(ops::quantize::QuantizeParams),
    Dequantize(ops::quantize::QuantizeParams),
    ArgMaxI8(ops::argmax::ArgMaxParams),
    ArgMaxF32(ops::argmax::ArgMaxParams),
    AddI8(ops::add::AddParams),
    AddF32(ops::add::AddF32Params),
    MulI8(ops::mul::MulParams),
    MulF32(ops::mul::MulF32Params),
    ConcatI8(ops::concat::ConcatParams<'a>),
    ConcatF32(ops::concat::ConcatF32Params),
    BmmI8(ops::batch_matmul::BatchMatMulParams),
    BmmF32(ops::batch_matmul::BatchMatMulF32Params),
    Transpose(ops::transpose::TransposeParams, DType),
    GatherI8(ops::gather::GatherParams<'a, i8>),
    GatherF32(ops::gather::GatherParams<'a, f32>),
    LayerNormI8(ops::layer_norm::LayerNormParams<'a>),
    LayerNormF32(ops::layer_norm::LayerNormF32Params<'a>),
    CausalMask(ops::causal_mask::CausalMaskParams, DType),
    TableI8(ops::lut::LutParams<'a>),
    TableF32(TableFn),
    KvAppend(ops::attention::KvShape, DType),
    AttentionI8(ops::attention::AttentionParams<'a>),
    AttentionF32(ops::attention::AttentionF32Params),
}

/// Decoding context for one op.
struct Ctx<'m, 'a> {
    model: &'m Model<'a>,
    index: usize,
    rec: &'m OpRecord<'a>,
    /// The records of output 0 and inputs 0 and 1, decoded once for the op's `bind_*`, the
    /// parse-time check and the interpreter (see [`bind_with_io`]).
    io: Io,
}

impl<'m, 'a> Ctx<'m, 'a> {
    /// The context of op `index`, its output 0 and inputs 0 and 1 decoded.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn new(model: &'m Model<'a>, index: usize, rec: &'m OpRecord<'a>) -> Self {
        Ctx {
            model,
            index,
            rec,
            io: Io::new(model, rec),
        }
    }

    fn err(&self, p: OpProblem) -> Error {
        op_err(self.index, p)
    }

    /// Whether the op runs its f32 variant, decided by `dtype` (that of the tensor the binder
    /// reads the variant from, usually input 0), when that variant is linked (`OPS`); an op
    /// whose variant is not linked is unsupported. Inlined, so
    /// that a runtime without f32 (or int8) kernels drops the other branch of the binder.
    /// `codes` is the op set of the op codes whose variant bits decide (the binder's own; both
    /// for the ReLU/ReLU6 binder), a constant.
    #[inline(always)]
    fn runs_f32<const OPS: u128>(&self, codes: u128, dtype: DType) -> Result<bool, Error> {
        let float = dtype == DType::F32;
        let linked = if float {
            OPS & codes & F32_KERNELS != 0
        } else {
            OPS & codes & INT8_KERNELS != 0
        };
        if linked {
            Ok(float)
        } else {
            Err(unsupported(self.index, self.rec))
        }
    }

    fn arity(&self, inputs: core::ops::RangeInclusive<usize>, outputs: usize) -> Result<(), Error> {
        if inputs.contains(&self.rec.num_inputs()) && self.rec.num_outputs() == outputs {
            Ok(())
        } else {
            Err(self.err(OpProblem::BadArity))
        }
    }

    fn tensor(&self, t: u16) -> Result<TensorInfo, Error> {
        if t == NO_TENSOR {
            return Err(self.err(OpProblem::BadTensorIndex));
        }
        self.model
            .tensor(t as usize)
            .map_err(|_| self.err(OpProblem::BadTensorIndex))
    }

    /// Input `i`'s record: the one in [`Self::io`] when it decoded, else decoded here (with the
    /// error, when it does not).
    fn input(&self, i: usize) -> Result<TensorInfo, Error> {
        let cached = match i {
            0 => self.io.x,
            1 => self.io.x2,
            _ => None,
        };
        match cached {
            Some(t) => Ok(t),
            None => self.tensor(self.rec.input(i)),
        }
    }

    /// Output `i`'s record ([`Self::io`]'s for output 0, as [`Self::input`]).
    fn output(&self, i: usize) -> Result<TensorInfo, Error> {
        match self.io.y {
            Some(t) if i == 0 => Ok(t),
            _ => self.tensor(self.rec.output(i)),
        }
    }

    /// A required constant input of type `dtype`.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn constant(&self, i: usize, dtype: DType) -> Result<&'a [u8], Error> {
        let t = self.rec.input(i);
        let info = self.input(i)?;
        if info.dtype != dtype {
            return Err(self.err(OpProblem::BadDtype));
        }
        if info.storage != Storage::Constant {
            return Err(self.err(OpProblem::BadParams));
        }
        self.model
            .constant_bytes(t as usize, &info)
            .map_err(|_| self.err(OpProblem::BadParams))
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn const_i8(&self, i: usize) -> Result<&'a [i8], Error> {
        Ok(bytes::as_i8(self.constant(i, DType::I8)?))
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn const_i32(&self, i: usize) -> Result<&'a [i32], Error> {
        bytes::as_i32(self.constant(i, DType::I32)?).map_err(|_| self.err(OpProblem::BadParams))
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn const_f32(&self, i: usize) -> Result<&'a [f32], Error> {
        bytes::as_f32(self.constant(i, DType::F32)?).map_err(|_| self.err(OpProblem::BadParams))
    }

    /// An optional constant input (absent when the index is [`NO_TENSOR`] or past the end).
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn opt_i32(&self, i: usize) -> Result<Option<&'a [i32]>, Error> {
        if i >= self.rec.num_inputs() || self.rec.input(i) == NO_TENSOR {
            return Ok(None);
        }
        self.const_i32(i).map(Some)
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn opt_f32(&self, i: usize) -> Result<Option<&'a [f32]>, Error> {
        if i >= self.rec.num_inputs() || self.rec.input(i) == NO_TENSOR {
            return Ok(None);
        }
        self.const_f32(i).map(Some)
    }

    fn params_len(&self, words: usize) -> Result<(), Error> {
        if self.rec.params.len() == 4 * words {
            Ok(())
        } else {
            Err(self.err(OpProblem::BadParams))
        }
    }

    fn word(&self, k: usize) -> Result<u32, Error> {
        u32_at(self.rec.params, 4 * k).ok_or(self.err(OpProblem::BadParams))
    }

    fn int(&self, k: usize) -> Result<i32, Error> {
        i32_at(self.rec.params, 4 * k).ok_or(self.err(OpProblem::BadParams))
    }

    fn float(&self, k: usize) -> Result<f32, Error> {
        self.word(k).map(f32::from_bits)
    }

    fn clamp_i8(&self, k: usize) -> Result<ClampI8, Error> {
        let (min, max) = (self.int(k)?, self.int(k + 1)?);
        let ok = |v: i32| (-128..=127).contains(&v);
        if !ok(min) || !ok(max) {
            return Err(self.err(OpProblem::BadParams));
        }
        Ok(ClampI8 {
            min: min as i8,
            max: max as i8,
        })
    }

    fn clamp_f32(&self, k: usize) -> Result<ClampF32, Error> {
        let (min, max) = (self.float(k)?, self.float(k + 1)?);
        if min.is_nan() || max.is_nan() {
            return Err(self.err(OpProblem::BadParams));
        }
        Ok(ClampF32 { min, max })
    }

    /// Requires a quantized int8 tensor and returns its zero point.
    fn zp_i8(&self, t: &TensorInfo) -> Result<i32, Error> {
        if t.dtype != DType::I8 || t.scale <= 0.0 {
            return Err(self.err(OpProblem::BadDtype));
        }
        Ok(t.zero_point)
    }

    fn expect_dtype(&self, t: &TensorInfo, dtype: DType) -> Result<(), Error> {
        if t.dtype == dtype {
            Ok(())
        } else {
            Err(self.err(OpProblem::BadDtype))
        }
    }

    /// Requires `a` and `b` to be int8 with the same quantization (ops that do not requantize).
    fn same_quant(&self, a: &TensorInfo, b: &TensorInfo) -> Result<(), Error> {
        self.zp_i8(a)?;
        self.zp_i8(b)?;
        if a.scale.to_bits() != b.scale.to_bits() || a.zero_point != b.zero_point {
            return Err(self.err(OpProblem::BadParams));
        }
        Ok(())
    }

    /// `(multiplier, shift)` words at `k`, `k + 1`.
    fn requant(&self, k: usize) -> Result<(i32, i32), Error> {
        Ok((self.int(k)?, self.int(k + 1)?))
    }

    /// A slice of `n` i32 words of the parameter record starting at word `k` (read in place).
    fn words_i32(&self, k: usize, n: usize) -> Result<&'a [i32], Error> {
        let all = bytes::as_i32(self.rec.params).map_err(|_| self.err(OpProblem::BadParams))?;
        all.get(k..k.checked_add(n).ok_or(self.err(OpProblem::BadParams))?)
            .ok_or(self.err(OpProblem::BadParams))
    }

    /// `(outer, axis, inner)` of `t` around `axis`.
    fn around_axis(&self, t: &TensorInfo, axis: u32) -> Result<(u32, u32, u32), Error> {
        let axis = axis as usize;
        if axis >= t.shape.rank() {
            return Err(self.err(OpProblem::BadParams));
        }
        let d = t.shape.dims();
        let prod = |s: &[u16]| s.iter().map(|&v| v as u32).product::<u32>();
        Ok((prod(&d[..axis]), d[axis] as u32, prod(&d[axis + 1..])))
    }

    /// NHWC dims of a rank-4 tensor.
    fn nhwc(&self, t: &TensorInfo) -> Result<Dims, Error> {
        if t.shape.rank() != 4 {
            return Err(self.err(OpProblem::BadShape));
        }
        Ok([0, 1, 2, 3].map(|i| t.shape.dim(i) as u32))
    }
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_fully_connected<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::fully_connected::*;
    if c.rec.version == 2 {
        if OPS & PACKED_WEIGHTS == 0 {
            return Err(unsupported(c.index, c.rec));
        }
        return bind_fully_connected_packed(c);
    }
    let x = c.input(0)?;
    let y = c.output(0)?;
    let w = c.input(1)?;
    if w.shape.rank() != 2 {
        return Err(c.err(OpProblem::BadShape));
    }
    let k = w.shape.dim(1);
    let n = w.shape.dim(0);
    if x.shape.last() != k || y.shape.last() != n || x.num_elements() % k != 0 {
        return Err(c.err(OpProblem::BadShape));
    }
    let shape = FullyConnectedShape {
        batch: (x.num_elements() / k) as u32,
        in_features: k as u32,
        out_features: n as u32,
    };
    c.params_len(2)?;
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::FullyConnected]) }, x.dtype)? {
        c.arity(2..=3, 1)?;
        c.expect_dtype(&y, DType::F32)?;
        Ok(Bound::FcF32(FullyConnectedF32Params {
            shape,
            weights: c.const_f32(1)?,
            bias: c.opt_f32(2)?,
            activation: c.clamp_f32(0)?,
        }))
    } else {
        c.arity(5..=5, 1)?;
        Ok(Bound::FcI8(FullyConnectedParams {
            shape,
            weights: c.const_i8(1)?,
            bias: c.opt_i32(2)?,
            input_zero_point: c.zp_i8(&x)?,
            output_zero_point: c.zp_i8(&y)?,
            output_multiplier: c.const_i32(3)?,
            output_shift: c.const_i32(4)?,
            activation: c.clamp_i8(0)?,
        }))
    }
}

/// FullyConnected version 2: int8 only, inputs `x`, the packed weights (int8, `[⌈n/16⌉·16,
/// ⌈k/4⌉·4]`), the column terms (int32 `[n]`), multipliers and shifts; `k` from `x`'s last axis,
/// `n` from the output's (see [`ops::fully_connected::packed`]).
fn bind_fully_connected_packed<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::fully_connected::packed::*;
    use ops::fully_connected::FullyConnectedShape;
    c.arity(5..=5, 1)?;
    c.params_len(2)?;
    let x = c.input(0)?;
    let y = c.output(0)?;
    let w = c.input(1)?;
    let (k, n) = (x.shape.last(), y.shape.last());
    if w.shape.rank() != 2
        || w.shape.dim(0) != n.div_ceil(16) * 16
        || w.shape.dim(1) != k.div_ceil(4) * 4
        || x.num_elements() % k != 0
        || y.num_elements() != x.num_elements() / k * n
    {
        return Err(c.err(OpProblem::BadShape));
    }
    Ok(Bound::FcPackedI8(PackedFullyConnectedParams {
        shape: FullyConnectedShape {
            batch: (x.num_elements() / k) as u32,
            in_features: k as u32,
            out_features: n as u32,
        },
        panels: c.const_i8(1)?,
        column_terms: c.const_i32(2)?,
        output_zero_point: {
            c.zp_i8(&x)?;
            c.zp_i8(&y)?
        },
        output_multiplier: c.const_i32(3)?,
        output_shift: c.const_i32(4)?,
        activation: c.clamp_i8(0)?,
    }))
}

/// Conv geometry words: stride h/w, dilation h/w, padding top/bottom/left/right.
fn conv_geometry(c: &Ctx<'_, '_>) -> Result<([u32; 2], [u32; 2], Padding), Error> {
    Ok((
        [c.word(0)?, c.word(1)?],
        [c.word(2)?, c.word(3)?],
        Padding {
            top: c.word(4)?,
            bottom: c.word(5)?,
            left: c.word(6)?,
            right: c.word(7)?,
        },
    ))
}

#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
fn bind_conv2d<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::conv2d::*;
    let x = c.input(0)?;
    let y = c.output(0)?;
    let w = c.input(1)?;
    let wd = c.nhwc(&w)?;
    c.params_len(10)?;
    let (stride, dilation, padding) = conv_geometry(c)?;
    let shape = Conv2dShape {
        input: c.nhwc(&x)?,
        output: c.nhwc(&y)?,
        kernel: [wd[1], wd[2]],
        stride,
        dilation,
        padding,
    };
    if wd[0] != shape.output[3] || wd[3] != shape.input[3] {
        return Err(c.err(OpProblem::BadShape));
    }
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Conv2d]) }, x.dtype)? {
        c.arity(2..=3, 1)?;
        c.expect_dtype(&y, DType::F32)?;
        Ok(Bound::Conv2dF32(Conv2dF32Params {
            shape,
            weights: c.const_f32(1)?,
            bias: c.opt_f32(2)?,
            activation: c.clamp_f32(8)?,
        }))
    } else {
        c.arity(5..=5, 1)?;
        Ok(Bound::Conv2dI8(Conv2dParams {
            shape,
            weights: c.const_i8(1)?,
            bias: c.opt_i32(2)?,
            input_zero_point: c.zp_i8(&x)?,
            output_zero_point: c.zp_i8(&y)?,
            output_multiplier: c.const_i32(3)?,
            output_shift: c.const_i32(4)?,
            activation: c.clamp_i8(8)?,
        }))
    }
}

#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
fn bind_depthwise<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::conv2d::Conv2dShape;
    use ops::depthwise_conv2d::*;
    let x = c.input(0)?;
    let y = c.output(0)?;
    let w = c.input(1)?;
    let wd = c.nhwc(&w)?;
    c.params_len(10)?;
    let (stride, dilation, padding) = conv_geometry(c)?;
    let shape = Conv2dShape {
        input: c.nhwc(&x)?,
        output: c.nhwc(&y)?,
        kernel: [wd[1], wd[2]],
        stride,
        dilation,
        padding,
    };
    let (in_c, out_c) = (shape.input[3], shape.output[3]);
    if wd[0] != 1 || wd[3] != out_c || out_c % in_c != 0 {
        return Err(c.err(OpProblem::BadShape));
    }
    let depth_multiplier = out_c / in_c;
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::DepthwiseConv2d]) }, x.dtype)? {
        c.arity(2..=3, 1)?;
        c.expect_dtype(&y, DType::F32)?;
        Ok(Bound::DwConvF32(DepthwiseConv2dF32Params {
            shape,
            depth_multiplier,
            weights: c.const_f32(1)?,
            bias: c.opt_f32(2)?,
            activation: c.clamp_f32(8)?,
        }))
    } else {
        c.arity(5..=5, 1)?;
        Ok(Bound::DwConvI8(DepthwiseConv2dParams {
            shape,
            depth_multiplier,
            weights: c.const_i8(1)?,
            bias: c.opt_i32(2)?,
            input_zero_point: c.zp_i8(&x)?,
            output_zero_point: c.zp_i8(&y)?,
            output_multiplier: c.const_i32(3)?,
            output_shift: c.const_i32(4)?,
            activation: c.clamp_i8(8)?,
        }))
    }
}

fn bind_conv1d<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::conv1d::*;
    let x = c.input(0)?;
    let y = c.output(0)?;
    let w = c.input(1)?;
    let dims3 = |t: &TensorInfo| -> Result<[u32; 3], Error> {
        if t.shape.rank() != 3 {
            return Err(c.err(OpProblem::BadShape));
        }
        Ok([0, 1, 2].map(|i| t.shape.dim(i) as u32))
    };
    let wd = dims3(&w)?;
    c.params_len(6)?;
    let shape = Conv1dShape {
        input: dims3(&x)?,
        output: dims3(&y)?,
        kernel: wd[1],
        stride: c.word(0)?,
        dilation: c.word(1)?,
        padding: [c.word(2)?, c.word(3)?],
    };
    if wd[0] != shape.output[2] || wd[2] != shape.input[2] {
        return Err(c.err(OpProblem::BadShape));
    }
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Conv1d]) }, x.dtype)? {
        c.arity(2..=3, 1)?;
        c.expect_dtype(&y, DType::F32)?;
        Ok(Bound::Conv1dF32(Conv1dF32Params {
            shape,
            weights: c.const_f32(1)?,
            bias: c.opt_f32(2)?,
            activation: c.clamp_f32(4)?,
        }))
    } else {
        c.arity(5..=5, 1)?;
        Ok(Bound::Conv1dI8(Conv1dParams {
            shape,
            weights: c.const_i8(1)?,
            bias: c.opt_i32(2)?,
            input_zero_point: c.zp_i8(&x)?,
            output_zero_point: c.zp_i8(&y)?,
            output_multiplier: c.const_i32(3)?,
            output_shift: c.const_i32(4)?,
            activation: c.clamp_i8(4)?,
        }))
    }
}

/// Dims of any tensor right-aligned to rank 4 (leading 1s).
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn dims4(t: &TensorInfo) -> Dims {
    let r = t.shape.rank();
    let mut d = [1u32; 4];
    for i in 0..r {
        d[4 - r + i] = t.shape.dim(i) as u32;
    }
    d
}

fn bind_activation<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::activation::*;
    c.arity(1..=1, 1)?;
    c.params_len(2)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Relu, OpCode::Relu6]) }, x.dtype)? {
        c.expect_dtype(&y, DType::F32)?;
        Ok(Bound::ActF32(ActivationF32Params {
            clamp: c.clamp_f32(0)?,
        }))
    } else {
        c.same_quant(&x, &y)?;
        Ok(Bound::ActI8(ActivationParams {
            clamp: c.clamp_i8(0)?,
        }))
    }
}

#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
fn bind_pool<'a, const OPS: u128>(c: &Ctx<'_, 'a>, max: bool) -> Result<Bound<'a>, Error> {
    use ops::pooling::*;
    c.arity(1..=1, 1)?;
    c.params_len(10)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    let shape = PoolShape {
        input: c.nhwc(&x)?,
        output: c.nhwc(&y)?,
        kernel: [c.word(0)?, c.word(1)?],
        stride: [c.word(2)?, c.word(3)?],
        padding: Padding {
            top: c.word(4)?,
            bottom: c.word(5)?,
            left: c.word(6)?,
            right: c.word(7)?,
        },
    };
    if c.runs_f32::<OPS>(
        if max {
            const { op_set(&[OpCode::MaxPool2d]) }
        } else {
            const { op_set(&[OpCode::AvgPool2d]) }
        },
        x.dtype,
    )? {
        c.expect_dtype(&y, DType::F32)?;
        let p = PoolF32Params {
            shape,
            activation: c.clamp_f32(8)?,
        };
        Ok(if max {
            Bound::MaxPoolF32(p)
        } else {
            Bound::AvgPoolF32(p)
        })
    } else {
        c.same_quant(&x, &y)?;
        let p = PoolParams {
            shape,
            activation: c.clamp_i8(8)?,
        };
        Ok(if max {
            Bound::MaxPoolI8(p)
        } else {
            Bound::AvgPoolI8(p)
        })
    }
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_global_avg<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::pooling::*;
    c.arity(1..=1, 1)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    let input = c.nhwc(&x)?;
    let yd = dims4(&y);
    if yd != [input[0], 1, 1, input[3]] {
        return Err(c.err(OpProblem::BadShape));
    }
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::GlobalAvgPool]) }, x.dtype)? {
        c.expect_dtype(&y, DType::F32)?;
        c.params_len(2)?;
        Ok(Bound::GlobalAvgF32(GlobalAvgPoolF32Params {
            input,
            activation: c.clamp_f32(0)?,
        }))
    } else {
        c.params_len(4)?;
        let (output_multiplier, output_shift) = c.requant(0)?;
        Ok(Bound::GlobalAvgI8(GlobalAvgPoolParams {
            input,
            input_zero_point: c.zp_i8(&x)?,
            output_zero_point: c.zp_i8(&y)?,
            output_multiplier,
            output_shift,
            activation: c.clamp_i8(2)?,
        }))
    }
}

fn bind_reshape<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    c.arity(1..=1, 1)?;
    c.params_len(0)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    if x.dtype != y.dtype || !matches!(x.dtype, DType::I8 | DType::F32) {
        return Err(c.err(OpProblem::BadDtype));
    }
    let p = ops::reshape::ReshapeParams {
        input: dims4(&x),
        output: dims4(&y),
    };
    Ok(Bound::Reshape(p, x.dtype))
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_softmax<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::softmax::*;
    if c.rec.version == 2 {
        // int8 in and out around the f32 op: the f32 Softmax kernel.
        if !has_f32(OPS, OpCode::Softmax) {
            return Err(unsupported(c.index, c.rec));
        }
        return bind_softmax_quantized(c);
    }
    let (x, y) = (c.input(0)?, c.output(0)?);
    let depth = x.shape.last() as u32;
    let shape = SoftmaxShape {
        outer: (x.num_elements() / depth as usize) as u32,
        depth,
    };
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Softmax]) }, x.dtype)? {
        c.arity(1..=1, 1)?;
        c.expect_dtype(&y, DType::F32)?;
        c.params_len(1)?;
        Ok(Bound::SoftmaxF32(SoftmaxF32Params {
            shape,
            beta: c.float(0)?,
        }))
    } else {
        c.arity(2..=2, 1)?;
        c.params_len(0)?;
        c.zp_i8(&x)?;
        if c.zp_i8(&y)? != OUTPUT_ZERO_POINT || y.scale != OUTPUT_SCALE {
            return Err(c.err(OpProblem::BadParams));
        }
        Ok(Bound::SoftmaxI8(SoftmaxParams {
            shape,
            table: c.const_i32(1)?,
        }))
    }
}

/// What Softmax and LayerNorm version 2 share: `inputs` inputs and two outputs, int8 `x` and
/// `y` with the same element count and last axis, an f32 scratch (output 1), `words` parameter
/// words. Returns x's element count, its last axis and the two quantizations.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn int8_around_f32(
    c: &Ctx<'_, '_>,
    inputs: usize,
    words: usize,
) -> Result<
    (
        usize,
        usize,
        ops::quantize::QuantizeParams,
        ops::quantize::QuantizeParams,
    ),
    Error,
> {
    c.arity(inputs..=inputs, 2)?;
    c.params_len(words)?;
    let (x, y, scratch) = (c.input(0)?, c.output(0)?, c.output(1)?);
    c.expect_dtype(&x, DType::I8)?;
    c.expect_dtype(&y, DType::I8)?;
    c.expect_dtype(&scratch, DType::F32)?;
    let last = x.shape.last();
    if last == 0 || y.num_elements() != x.num_elements() || y.shape.last() != last {
        return Err(c.err(OpProblem::BadShape));
    }
    let q = |t: &TensorInfo| -> Result<ops::quantize::QuantizeParams, Error> {
        Ok(ops::quantize::QuantizeParams {
            scale: t.scale,
            zero_point: c.zp_i8(t)?,
        })
    };
    Ok((x.num_elements(), last, q(&x)?, q(&y)?))
}

/// Softmax version 2 (int8 in and out, f32 inside; see [`ops::softmax::quantized`]): inputs
/// `x` (int8) and an optional constant f32 mask; outputs `y` (int8) and an f32 scratch; params
/// `beta`, the pre-scale and a flags word (bit 0: the pre-scale applies).
fn bind_softmax_quantized<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::softmax::{quantized::QuantizedSoftmaxParams, SoftmaxShape};
    let (n, depth, input, output) = int8_around_f32(c, 2, 3)?;
    let flags = c.word(2)?;
    if flags > 1 {
        return Err(c.err(OpProblem::BadParams));
    }
    Ok(Bound::SoftmaxQdq(QuantizedSoftmaxParams {
        shape: SoftmaxShape {
            outer: (n / depth) as u32,
            depth: depth as u32,
        },
        input,
        pre_scale: if flags & 1 != 0 {
            Some(c.float(1)?)
        } else {
            None
        },
        mask: c.opt_f32(1)?,
        beta: c.float(0)?,
        output,
    }))
}

/// LayerNorm version 2 (int8 in and out, f32 inside; see [`ops::layer_norm::quantized`]):
/// inputs `x` (int8), γ and β (f32 constants `[C]`); outputs `y` (int8) and an f32 scratch;
/// param ε.
fn bind_layer_norm_quantized<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::layer_norm::{quantized::QuantizedLayerNormParams, LayerNormF32Params};
    let (n, cols, input, output) = int8_around_f32(c, 3, 1)?;
    Ok(Bound::LayerNormQdq(QuantizedLayerNormParams {
        norm: LayerNormF32Params {
            rows: (n / cols) as u32,
            cols: cols as u32,
            epsilon: c.float(0)?,
            gamma: c.const_f32(1)?,
            beta: c.const_f32(2)?,
        },
        input,
        output,
    }))
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_quantize<'a>(c: &Ctx<'_, 'a>, quantize: bool) -> Result<Bound<'a>, Error> {
    c.arity(1..=1, 1)?;
    c.params_len(0)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    let (f, q) = if quantize { (x, y) } else { (y, x) };
    c.expect_dtype(&f, DType::F32)?;
    let p = ops::quantize::QuantizeParams {
        scale: q.scale,
        zero_point: c.zp_i8(&q)?,
    };
    Ok(if quantize {
        Bound::Quantize(p)
    } else {
        Bound::Dequantize(p)
    })
}

fn bind_argmax<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    c.arity(1..=1, 1)?;
    c.params_len(1)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    c.expect_dtype(&y, DType::I32)?;
    let (outer, axis, inner) = c.around_axis(&x, c.word(0)?)?;
    let p = ops::argmax::ArgMaxParams { outer, axis, inner };
    match x.dtype {
        DType::F32 => Ok(Bound::ArgMaxF32(p)),
        DType::I8 => Ok(Bound::ArgMaxI8(p)),
        _ => Err(c.err(OpProblem::BadDtype)),
    }
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_binary<'a, const OPS: u128>(c: &Ctx<'_, 'a>, add: bool) -> Result<Bound<'a>, Error> {
    c.arity(2..=2, 1)?;
    let (a, b, y) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let shape = ops::BroadcastShape {
        input1: dims4(&a),
        input2: dims4(&b),
        output: dims4(&y),
    };
    if c.runs_f32::<OPS>(
        if add {
            const { op_set(&[OpCode::Add]) }
        } else {
            const { op_set(&[OpCode::Mul]) }
        },
        a.dtype,
    )? {
        c.expect_dtype(&b, DType::F32)?;
        c.expect_dtype(&y, DType::F32)?;
        c.params_len(2)?;
        let activation = c.clamp_f32(0)?;
        return Ok(if add {
            Bound::AddF32(ops::add::AddF32Params { shape, activation })
        } else {
            Bound::MulF32(ops::mul::MulF32Params { shape, activation })
        });
    }
    let (z1, z2, zo) = (c.zp_i8(&a)?, c.zp_i8(&b)?, c.zp_i8(&y)?);
    if add {
        c.params_len(8)?;
        Ok(Bound::AddI8(ops::add::AddParams {
            shape,
            input1_zero_point: z1,
            input2_zero_point: z2,
            output_zero_point: zo,
            requant: ops::add::AddRequant {
                input1: c.requant(0)?,
                input2: c.requant(2)?,
                output: c.requant(4)?,
            },
            activation: c.clamp_i8(6)?,
        }))
    } else {
        c.params_len(4)?;
        let (output_multiplier, output_shift) = c.requant(0)?;
        Ok(Bound::MulI8(ops::mul::MulParams {
            shape,
            input1_zero_point: z1,
            input2_zero_point: z2,
            output_zero_point: zo,
            output_multiplier,
            output_shift,
            activation: c.clamp_i8(2)?,
        }))
    }
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_concat<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::concat::*;
    c.arity(1..=MAX_INPUTS, 1)?;
    let n = c.rec.num_inputs();
    let y = c.output(0)?;
    let (outer, _, inner) = c.around_axis(&y, c.word(0)?)?;
    for i in 0..n {
        let x = c.input(i)?;
        if x.dtype != y.dtype {
            return Err(c.err(OpProblem::BadDtype));
        }
    }
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Concat]) }, y.dtype)? {
        c.params_len(1)?;
        return Ok(Bound::ConcatF32(ConcatF32Params { outer, inner }));
    }
    c.zp_i8(&y)?;
    c.params_len(1 + 3 * n)?;
    Ok(Bound::ConcatI8(ConcatParams {
        outer,
        inner,
        input_zero_points: c.words_i32(1, n)?,
        input_multipliers: c.words_i32(1 + n, n)?,
        input_shifts: c.words_i32(1 + 2 * n, n)?,
        output_zero_point: y.zero_point,
    }))
}

/// `(batch, rows, cols)` of a tensor of rank ≥ 2 (leading dims multiplied into `batch`).
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn matrix(c: &Ctx<'_, '_>, t: &TensorInfo) -> Result<(u32, u32, u32), Error> {
    let r = t.shape.rank();
    if r < 2 {
        return Err(c.err(OpProblem::BadShape));
    }
    let d = t.shape.dims();
    let batch = d[..r - 2].iter().map(|&v| v as u32).product::<u32>();
    Ok((batch, d[r - 2] as u32, d[r - 1] as u32))
}

/// A boolean parameter word (0 or 1).
fn flag(c: &Ctx<'_, '_>, k: usize) -> Result<bool, Error> {
    match c.word(k)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(c.err(OpProblem::BadParams)),
    }
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_batch_matmul<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::batch_matmul::*;
    c.arity(2..=2, 1)?;
    let (a, b, y) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let transpose_b = flag(c, 0)?;
    let (ba, m, k) = matrix(c, &a)?;
    let (bb, r1, r2) = matrix(c, &b)?;
    let (by, ym, n) = matrix(c, &y)?;
    let (bk, bn) = if transpose_b { (r2, r1) } else { (r1, r2) };
    if ba != bb || ba != by || ym != m || bk != k || bn != n {
        return Err(c.err(OpProblem::BadShape));
    }
    let shape = BatchMatMulShape {
        batch: ba,
        m,
        k,
        n,
        transpose_b,
    };
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::BatchMatMul]) }, a.dtype)? {
        c.expect_dtype(&b, DType::F32)?;
        c.expect_dtype(&y, DType::F32)?;
        c.params_len(3)?;
        return Ok(Bound::BmmF32(BatchMatMulF32Params {
            shape,
            activation: c.clamp_f32(1)?,
        }));
    }
    c.params_len(5)?;
    let (output_multiplier, output_shift) = c.requant(1)?;
    Ok(Bound::BmmI8(BatchMatMulParams {
        shape,
        a_zero_point: c.zp_i8(&a)?,
        b_zero_point: c.zp_i8(&b)?,
        output_zero_point: c.zp_i8(&y)?,
        output_multiplier,
        output_shift,
        activation: c.clamp_i8(3)?,
    }))
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_transpose<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    c.arity(1..=1, 1)?;
    c.params_len(4)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    match x.dtype {
        DType::I8 => c.same_quant(&x, &y)?,
        DType::F32 | DType::I32 => c.expect_dtype(&y, x.dtype)?,
        _ => return Err(c.err(OpProblem::BadDtype)),
    }
    let mut perm = [0u8; 4];
    for (i, p) in perm.iter_mut().enumerate() {
        let w = c.word(i)?;
        if w > 3 {
            return Err(c.err(OpProblem::BadParams));
        }
        *p = w as u8;
    }
    let p = ops::transpose::TransposeParams {
        input_dims: dims4(&x),
        perm,
    };
    ops::transpose::check(&p, x.num_elements(), y.num_elements())
        .map_err(|_| c.err(OpProblem::BadParams))?;
    if p.output_dims() != dims4(&y) {
        return Err(c.err(OpProblem::BadShape));
    }
    Ok(Bound::Transpose(p, x.dtype))
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_gather<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::gather::GatherParams;
    c.arity(2..=2, 1)?;
    c.params_len(0)?;
    let (table, ids, y) = (c.input(0)?, c.input(1)?, c.output(0)?);
    c.expect_dtype(&ids, DType::I32)?;
    if table.shape.rank() != 2 {
        return Err(c.err(OpProblem::BadShape));
    }
    let (rows, row_len) = (table.shape.dim(0) as u32, table.shape.dim(1) as u32);
    if y.shape.last() as u32 != row_len {
        return Err(c.err(OpProblem::BadShape));
    }
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Gather]) }, table.dtype)? {
        c.expect_dtype(&y, DType::F32)?;
        return Ok(Bound::GatherF32(GatherParams {
            rows,
            row_len,
            table: c.const_f32(0)?,
        }));
    }
    c.same_quant(&table, &y)?;
    Ok(Bound::GatherI8(GatherParams {
        rows,
        row_len,
        table: c.const_i8(0)?,
    }))
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_layer_norm<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    if c.rec.version == 2 {
        // int8 in and out around the f32 op: the f32 LayerNorm kernel.
        if !has_f32(OPS, OpCode::LayerNorm) {
            return Err(unsupported(c.index, c.rec));
        }
        return bind_layer_norm_quantized(c);
    }
    use ops::layer_norm::*;
    let (x, y) = (c.input(0)?, c.output(0)?);
    let cols = x.shape.last() as u32;
    if cols == 0 || x.shape.dims() != y.shape.dims() {
        return Err(c.err(OpProblem::BadShape));
    }
    let rows = (x.num_elements() / cols as usize) as u32;
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::LayerNorm]) }, x.dtype)? {
        c.arity(3..=3, 1)?;
        c.expect_dtype(&y, DType::F32)?;
        c.params_len(1)?;
        return Ok(Bound::LayerNormF32(LayerNormF32Params {
            rows,
            cols,
            epsilon: c.float(0)?,
            gamma: c.const_f32(1)?,
            beta: c.const_f32(2)?,
        }));
    }
    c.arity(4..=4, 1)?;
    c.params_len(2)?;
    Ok(Bound::LayerNormI8(LayerNormParams {
        rows,
        cols,
        input_zero_point: c.zp_i8(&x)?,
        output_zero_point: c.zp_i8(&y)?,
        epsilon_q16: c.word(0)? as u64 | (c.word(1)? as u64) << 32,
        gamma_multiplier: c.const_i32(1)?,
        gamma_shift: c.const_i32(2)?,
        beta_q: c.const_i32(3)?,
    }))
}

fn bind_causal_mask<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    c.arity(1..=1, 1)?;
    c.params_len(1)?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    match x.dtype {
        DType::I8 => c.same_quant(&x, &y)?,
        DType::F32 => c.expect_dtype(&y, DType::F32)?,
        _ => return Err(c.err(OpProblem::BadDtype)),
    }
    if x.shape.dims() != y.shape.dims() {
        return Err(c.err(OpProblem::BadShape));
    }
    let (batch, rows, cols) = matrix(c, &x)?;
    let p = ops::causal_mask::CausalMaskParams {
        batch,
        rows,
        cols,
        offset: c.word(0)?,
    };
    Ok(Bound::CausalMask(p, x.dtype))
}

#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_table<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    c.params_len(1)?;
    let f = TableFn::from_word(c.word(0)?).ok_or(c.err(OpProblem::BadParams))?;
    let (x, y) = (c.input(0)?, c.output(0)?);
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Table]) }, x.dtype)? {
        c.arity(1..=1, 1)?;
        c.expect_dtype(&y, DType::F32)?;
        return Ok(Bound::TableF32(f));
    }
    c.arity(2..=2, 1)?;
    c.zp_i8(&x)?;
    c.zp_i8(&y)?;
    Ok(Bound::TableI8(ops::lut::LutParams {
        table: c.const_i8(1)?,
    }))
}

/// `[a, b, c]` of a rank-3 tensor.
fn dims3(c: &Ctx<'_, '_>, t: &TensorInfo) -> Result<[u32; 3], Error> {
    if t.shape.rank() != 3 {
        return Err(c.err(OpProblem::BadShape));
    }
    Ok([0, 1, 2].map(|i| t.shape.dim(i) as u32))
}

/// The decode position input: an `i32` arena tensor of one element.
fn position_input(c: &Ctx<'_, '_>, i: usize) -> Result<(), Error> {
    let p = c.input(i)?;
    c.expect_dtype(&p, DType::I32)?;
    if p.num_elements() != 1 || p.storage == Storage::Constant {
        return Err(c.err(OpProblem::BadShape));
    }
    Ok(())
}

/// The KV shape of new rows `[H, T, D]` against a cache `[H, C, D]`.
fn kv_shape(
    c: &Ctx<'_, '_>,
    new: &TensorInfo,
    cache: &TensorInfo,
) -> Result<ops::attention::KvShape, Error> {
    let [h, t, d] = dims3(c, new)?;
    let [ch, cap, cd] = dims3(c, cache)?;
    if ch != h || cd != d || t > cap {
        return Err(c.err(OpProblem::BadShape));
    }
    Ok(ops::attention::KvShape {
        heads: h,
        head_dim: d,
        capacity: cap,
        tokens: t,
    })
}

fn bind_kv_append<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    c.arity(2..=2, 1)?;
    c.params_len(0)?;
    let (new, cache) = (c.input(0)?, c.output(0)?);
    position_input(c, 1)?;
    if cache.storage != Storage::Persistent {
        return Err(c.err(OpProblem::BadWrite));
    }
    match new.dtype {
        DType::I8 => c.same_quant(&new, &cache)?,
        DType::F32 => c.expect_dtype(&cache, DType::F32)?,
        _ => return Err(c.err(OpProblem::BadDtype)),
    }
    Ok(Bound::KvAppend(kv_shape(c, &new, &cache)?, new.dtype))
}

fn bind_attention<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::attention::*;
    let (q, kc, vc) = (c.input(0)?, c.input(1)?, c.input(2)?);
    position_input(c, 3)?;
    let (y, scratch) = (c.output(0)?, c.output(1)?);
    let shape = kv_shape(c, &q, &kc)?;
    if vc.shape.dims() != kc.shape.dims() || y.shape.dims() != q.shape.dims() {
        return Err(c.err(OpProblem::BadShape));
    }
    if kc.storage == Storage::Constant || vc.storage == Storage::Constant {
        return Err(c.err(OpProblem::BadParams));
    }
    let causal = flag(c, 0)?;
    if c.runs_f32::<OPS>(const { op_set(&[OpCode::Attention]) }, q.dtype)? {
        c.arity(4..=4, 2)?;
        for t in [&kc, &vc, &y, &scratch] {
            c.expect_dtype(t, DType::F32)?;
        }
        c.params_len(2)?;
        return Ok(Bound::AttentionF32(AttentionF32Params {
            shape,
            causal,
            scale: c.float(1)?,
        }));
    }
    c.arity(5..=5, 2)?;
    c.expect_dtype(&scratch, DType::I32)?;
    c.params_len(6)?;
    let (score_multiplier, score_shift) = c.requant(1)?;
    let (output_multiplier, output_shift) = c.requant(4)?;
    Ok(Bound::AttentionI8(AttentionParams {
        shape,
        causal,
        q_zero_point: c.zp_i8(&q)?,
        k_zero_point: c.zp_i8(&kc)?,
        v_zero_point: c.zp_i8(&vc)?,
        score_multiplier,
        score_shift,
        score_zero_point: c.int(3)?,
        exp_table: c.const_i32(4)?,
        output_multiplier,
        output_shift,
        output_zero_point: c.zp_i8(&y)?,
    }))
}

/// The set of every op this runtime has (the default of [`crate::Interpreter`] and
/// [`Model::parse`]).
pub const ALL_OPS: u128 = u128::MAX;

// An op set has one bit per (op code, variant): the int8 variant of code `c` is bit `c`, its f32
// variant bit `64 + c` (every code is below 61: a test holds them to it). Bit 61 is
// `PACKED_WEIGHTS`. Quantize and Dequantize count as f32 ops (each has one kernel, with an f32
// side). A fused int8 Softmax or LayerNorm (version 2) runs the f32 kernel of its op.

/// Bit offset of the f32 variants in an op set.
const F32_BITS: u32 = 64;
/// Bits of op codes in each half.
const CODE_MASK: u128 = (1 << 61) - 1;

/// Every f32 variant (combine with `&` to keep only f32 kernels, `& !` to drop them).
pub const F32_KERNELS: u128 = CODE_MASK << F32_BITS;
/// Every int8 variant.
pub const INT8_KERNELS: u128 = CODE_MASK;
/// FullyConnected version 2 (int8 weights pre-packed in the host's AVX-512 VNNI panel layout,
/// `edgeloop compile --prepack`). [`op_set`], [`op_set_int8`] and [`op_set_f32`] leave it out:
/// firmware runs version 1.
pub const PACKED_WEIGHTS: u128 = 1 << 61;

/// An op set with both variants of `codes`, for [`Model::parse_with_ops`] and
/// [`crate::Interpreter::new_with_ops`]: kernels outside the set are not linked.
pub const fn op_set(codes: &[OpCode]) -> u128 {
    op_set_int8(codes) | op_set_f32(codes)
}

/// An op set with only the int8 variants of `codes`.
pub const fn op_set_int8(codes: &[OpCode]) -> u128 {
    let mut set = 0;
    let mut i = 0;
    while i < codes.len() {
        set |= 1 << (codes[i] as u8 % 61);
        i += 1;
    }
    set
}

/// An op set with only the f32 variants of `codes`.
pub const fn op_set_f32(codes: &[OpCode]) -> u128 {
    op_set_int8(codes) << F32_BITS
}

/// Whether `ops` has either variant of `code`.
#[inline(always)]
pub const fn has(ops: u128, code: OpCode) -> bool {
    has_i8(ops, code) || has_f32(ops, code)
}

/// Whether `ops` has the int8 variant of `code` (a constant after monomorphization, so
/// excluded kernels disappear from the binary).
#[inline(always)]
pub const fn has_i8(ops: u128, code: OpCode) -> bool {
    (ops >> (code as u8 % 61)) & 1 != 0
}

/// Whether `ops` has the f32 variant of `code`.
#[inline(always)]
pub const fn has_f32(ops: u128, code: OpCode) -> bool {
    (ops >> (F32_BITS + (code as u8 % 61) as u32)) & 1 != 0
}

/// The smallest op set that runs `model`: for each op the variant its binding picks (from the
/// tensor types, as [`crate::Interpreter`] does), plus [`PACKED_WEIGHTS`] for a pre-packed
/// FullyConnected. What a firmware's `build.rs` computes from its image, and what the
/// compiler's report prints.
pub fn op_set_of(model: &Model<'_>) -> Result<u128, Error> {
    let mut set = 0;
    for (i, rec) in model.ops().enumerate() {
        let rec = rec?;
        let (b, _) = bind_with_io::<ALL_OPS>(model, i, &rec)?;
        let code = OpCode::from_code(rec.code).ok_or(unsupported(i, &rec))?;
        set |= match b {
            // Version 2 is bound through the FullyConnected code, then its own flag.
            Bound::FcPackedI8(_) => PACKED_WEIGHTS | op_set_int8(&[code]),
            Bound::FcF32(_)
            | Bound::Conv2dF32(_)
            | Bound::DwConvF32(_)
            | Bound::Conv1dF32(_)
            | Bound::ActF32(_)
            | Bound::MaxPoolF32(_)
            | Bound::AvgPoolF32(_)
            | Bound::GlobalAvgF32(_)
            | Bound::SoftmaxF32(_)
            | Bound::SoftmaxQdq(_)
            | Bound::LayerNormQdq(_)
            | Bound::Quantize(_)
            | Bound::Dequantize(_)
            | Bound::ArgMaxF32(_)
            | Bound::AddF32(_)
            | Bound::MulF32(_)
            | Bound::ConcatF32(_)
            | Bound::BmmF32(_)
            | Bound::GatherF32(_)
            | Bound::LayerNormF32(_)
            | Bound::TableF32(_)
            | Bound::AttentionF32(_) => op_set_f32(&[code]),
            // Reshape, Transpose, CausalMask and KvAppend have one kernel for every type
            // (either bit links it); the rest are the int8 variants.
            _ => op_set_int8(&[code]),
        };
    }
    Ok(set)
}

fn unsupported(index: usize, rec: &OpRecord<'_>) -> Error {
    Error::UnsupportedOp {
        index: index as u32,
        code: rec.code,
    }
}

/// Decodes op `index` (an op outside `OPS` is unsupported), with the records of the op's output
/// 0 and inputs 0 and 1 that decoding it read (each of those records is decoded once for the
/// op's binding, its parse-time check and its runs).
///
/// Always inlined: as a function of its own it returns `Result<(Bound, Places), Error>`
/// through memory, and the Cortex-M4 build copied that out with four `memcpy` calls per op.
#[inline(always)]
pub(crate) fn bind_with_io<'a, const OPS: u128>(
    model: &Model<'a>,
    index: usize,
    rec: &OpRecord<'a>,
) -> Result<(Bound<'a>, Places), Error> {
    let (b, places) = bind_in_place::<OPS>(model, index, rec);
    Ok((b?, places))
}

/// [`bind_with_io`] for callers that only borrow the binding: the `Result` stays where
/// [`bind_ctx`] wrote it. Taking the `Bound` out of it with `?` is a move, and the `Bound` is
/// 128 bytes on the Cortex-M4 (a `memcpy` call per op on every invoke without prepared ops).
#[inline(always)]
pub(crate) fn bind_in_place<'a, const OPS: u128>(
    model: &Model<'a>,
    index: usize,
    rec: &OpRecord<'a>,
) -> (Result<Bound<'a>, Error>, Places) {
    let c = Ctx::new(model, index, rec);
    (bind_ctx::<OPS>(&c), c.io.places())
}

/// [`bind_with_io`] with the context built.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn bind_ctx<'a, const OPS: u128>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    let (model, index, rec) = (c.model, c.index, c.rec);
    let unsupported = unsupported(index, rec);
    let code = OpCode::from_code(rec.code).ok_or(unsupported)?;
    // Version 2 exists for FullyConnected (pre-packed int8 weights), Softmax and LayerNorm
    // (int8 in and out around the f32 op, fused).
    if rec.version != 1
        && !(rec.version == 2
            && matches!(
                code,
                OpCode::FullyConnected | OpCode::Softmax | OpCode::LayerNorm
            ))
    {
        return Err(unsupported);
    }
    // An op (or parameter version) newer than the format version the image declares is not
    // part of that version: the image is rejected as an older runtime would reject it.
    let needs_minor = match (rec.version, code) {
        (2, OpCode::Softmax | OpCode::LayerNorm) => 3,
        (2, _) => 2,
        _ if rec.code >= FIRST_MINOR_1_OP => 1,
        _ => 0,
    };
    if model.format_version().1 < needs_minor {
        return Err(unsupported);
    }
    match code {
        OpCode::FullyConnected if has(OPS, OpCode::FullyConnected) => {
            bind_fully_connected::<OPS>(c)
        }
        OpCode::Conv2d if has(OPS, OpCode::Conv2d) => bind_conv2d::<OPS>(c),
        OpCode::DepthwiseConv2d if has(OPS, OpCode::DepthwiseConv2d) => bind_depthwise::<OPS>(c),
        OpCode::Conv1d if has(OPS, OpCode::Conv1d) => bind_conv1d::<OPS>(c),
        OpCode::Relu | OpCode::Relu6 if has(OPS, OpCode::Relu) || has(OPS, OpCode::Relu6) => {
            bind_activation::<OPS>(c)
        }
        OpCode::MaxPool2d if has(OPS, OpCode::MaxPool2d) => bind_pool::<OPS>(c, true),
        OpCode::AvgPool2d if has(OPS, OpCode::AvgPool2d) => bind_pool::<OPS>(c, false),
        OpCode::GlobalAvgPool if has(OPS, OpCode::GlobalAvgPool) => bind_global_avg::<OPS>(c),
        OpCode::Reshape if has(OPS, OpCode::Reshape) => bind_reshape(c),
        OpCode::Softmax if has(OPS, OpCode::Softmax) => bind_softmax::<OPS>(c),
        OpCode::Quantize if has(OPS, OpCode::Quantize) => bind_quantize(c, true),
        OpCode::Dequantize if has(OPS, OpCode::Dequantize) => bind_quantize(c, false),
        OpCode::ArgMax if has(OPS, OpCode::ArgMax) => bind_argmax(c),
        OpCode::Add if has(OPS, OpCode::Add) => bind_binary::<OPS>(c, true),
        OpCode::Mul if has(OPS, OpCode::Mul) => bind_binary::<OPS>(c, false),
        OpCode::Concat if has(OPS, OpCode::Concat) => bind_concat::<OPS>(c),
        OpCode::BatchMatMul if has(OPS, OpCode::BatchMatMul) => bind_batch_matmul::<OPS>(c),
        OpCode::Transpose if has(OPS, OpCode::Transpose) => bind_transpose(c),
        OpCode::Gather if has(OPS, OpCode::Gather) => bind_gather::<OPS>(c),
        OpCode::LayerNorm if has(OPS, OpCode::LayerNorm) => bind_layer_norm::<OPS>(c),
        OpCode::CausalMask if has(OPS, OpCode::CausalMask) => bind_causal_mask(c),
        OpCode::Table if has(OPS, OpCode::Table) => bind_table::<OPS>(c),
        OpCode::KvAppend if has(OPS, OpCode::KvAppend) => bind_kv_append(c),
        OpCode::Attention if has(OPS, OpCode::Attention) => bind_attention::<OPS>(c),
        _ => Err(unsupported),
    }
}

/// Element count of tensor `t`, from its record `cached` when that decoded (else decoded
/// again, for the error).
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn len_of(model: &Model<'_>, cached: Option<TensorInfo>, t: u16) -> Result<usize, Error> {
    match cached {
        Some(info) => Ok(info.num_elements()),
        None => Ok(model.tensor(t as usize)?.num_elements()),
    }
}

/// Parse-time check of op `index`: decodes it and runs the kernel's `check_*`.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn check<const OPS: u128>(
    model: &Model<'_>,
    index: usize,
    rec: &OpRecord<'_>,
) -> Result<(), Error> {
    // The context kept here rather than `bind_with_io`'s copy of its records.
    let c = Ctx::new(model, index, rec);
    // Borrowed where `bind_ctx` wrote it (see `bind_in_place`).
    let bound = bind_ctx::<OPS>(&c);
    let b = bound.as_ref().map_err(|e| *e)?;
    let io = &c.io;
    let xi = len_of(model, io.x, rec.input(0))?;
    let yo = len_of(model, io.y, rec.output(0))?;
    let r = match b {
        Bound::FcI8(p) if has_i8(OPS, OpCode::FullyConnected) => {
            ops::fully_connected::check_i8(p, xi, yo)
        }
        Bound::FcF32(p) if has_f32(OPS, OpCode::FullyConnected) => {
            ops::fully_connected::check_f32(p, xi, yo)
        }
        Bound::FcPackedI8(p) if OPS & PACKED_WEIGHTS != 0 => {
            ops::fully_connected::packed::check(p, xi, yo)
        }
        Bound::Conv2dI8(p) if has_i8(OPS, OpCode::Conv2d) => ops::conv2d::check_i8(p, xi, yo),
        Bound::Conv2dF32(p) if has_f32(OPS, OpCode::Conv2d) => ops::conv2d::check_f32(p, xi, yo),
        Bound::DwConvI8(p) if has_i8(OPS, OpCode::DepthwiseConv2d) => {
            ops::depthwise_conv2d::check_i8(p, xi, yo)
        }
        Bound::DwConvF32(p) if has_f32(OPS, OpCode::DepthwiseConv2d) => {
            ops::depthwise_conv2d::check_f32(p, xi, yo)
        }
        Bound::Conv1dI8(p) if has_i8(OPS, OpCode::Conv1d) => ops::conv1d::check_i8(p, xi, yo),
        Bound::Conv1dF32(p) if has_f32(OPS, OpCode::Conv1d) => ops::conv1d::check_f32(p, xi, yo),
        Bound::ActI8(p) if (has_i8(OPS, OpCode::Relu) || has_i8(OPS, OpCode::Relu6)) => {
            ops::activation::check_i8(p, xi, yo)
        }
        Bound::ActF32(p) if (has_f32(OPS, OpCode::Relu) || has_f32(OPS, OpCode::Relu6)) => {
            ops::activation::check_f32(p, xi, yo)
        }
        Bound::MaxPoolI8(p) | Bound::AvgPoolI8(p)
            if (has_i8(OPS, OpCode::MaxPool2d) || has_i8(OPS, OpCode::AvgPool2d)) =>
        {
            ops::pooling::check_i8(p, xi, yo)
        }
        Bound::MaxPoolF32(p) | Bound::AvgPoolF32(p)
            if (has_f32(OPS, OpCode::MaxPool2d) || has_f32(OPS, OpCode::AvgPool2d)) =>
        {
            ops::pooling::check_f32(p, xi, yo)
        }
        Bound::GlobalAvgI8(p) if has_i8(OPS, OpCode::GlobalAvgPool) => {
            ops::pooling::check_global_avg_i8(p, xi, yo)
        }
        Bound::GlobalAvgF32(p) if has_f32(OPS, OpCode::GlobalAvgPool) => {
            ops::pooling::check_global_avg_f32(p, xi, yo)
        }
        Bound::Reshape(p, _) if has(OPS, OpCode::Reshape) => ops::reshape::check(p, xi, yo),
        Bound::SoftmaxI8(p) if has_i8(OPS, OpCode::Softmax) => ops::softmax::check_i8(p, xi, yo),
        Bound::SoftmaxF32(p) if has_f32(OPS, OpCode::Softmax) => ops::softmax::check_f32(p, xi, yo),
        Bound::SoftmaxQdq(p) if has_f32(OPS, OpCode::Softmax) => {
            ops::softmax::quantized::check(p, xi, len_of(model, None, rec.output(1))?, yo)
        }
        Bound::LayerNormQdq(p) if has_f32(OPS, OpCode::LayerNorm) => {
            ops::layer_norm::quantized::check(p, xi, len_of(model, None, rec.output(1))?, yo)
        }
        Bound::Quantize(p) | Bound::Dequantize(p)
            if (has_f32(OPS, OpCode::Quantize) || has_f32(OPS, OpCode::Dequantize)) =>
        {
            ops::quantize::check(p, xi, yo)
        }
        Bound::ArgMaxI8(p) | Bound::ArgMaxF32(p) if has(OPS, OpCode::ArgMax) => {
            ops::argmax::check(p, xi, yo)
        }
        Bound::AddI8(p) if has_i8(OPS, OpCode::Add) => {
            ops::add::check_i8(p, xi, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::AddF32(p) if has_f32(OPS, OpCode::Add) => {
            ops::add::check_f32(p, xi, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::MulI8(p) if has_i8(OPS, OpCode::Mul) => {
            ops::mul::check_i8(p, xi, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::MulF32(p) if has_f32(OPS, OpCode::Mul) => {
            ops::mul::check_f32(p, xi, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::ConcatI8(_) | Bound::ConcatF32(_) if has(OPS, OpCode::Concat) => {
            let mut lens = [0usize; ops::concat::MAX_INPUTS];
            let n = rec.num_inputs().min(lens.len());
            for (i, l) in lens[..n].iter_mut().enumerate() {
                *l = len_of(model, None, rec.input(i))?;
            }
            match b {
                Bound::ConcatI8(p) if has_i8(OPS, OpCode::Concat) => {
                    ops::concat::check_i8(p, &lens[..n], yo)
                }
                Bound::ConcatF32(p) if has_f32(OPS, OpCode::Concat) => {
                    ops::concat::check_f32(p, &lens[..n], yo)
                }
                _ => Ok(()),
            }
        }
        Bound::BmmI8(p) if has_i8(OPS, OpCode::BatchMatMul) => {
            ops::batch_matmul::check_i8(p, xi, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::BmmF32(p) if has_f32(OPS, OpCode::BatchMatMul) => {
            ops::batch_matmul::check_f32(p, xi, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::Transpose(p, _) if has(OPS, OpCode::Transpose) => ops::transpose::check(p, xi, yo),
        Bound::GatherI8(p) if has_i8(OPS, OpCode::Gather) => {
            ops::gather::check(p, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::GatherF32(p) if has_f32(OPS, OpCode::Gather) => {
            ops::gather::check(p, len_of(model, io.x2, rec.input(1))?, yo)
        }
        Bound::LayerNormI8(p) if has_i8(OPS, OpCode::LayerNorm) => {
            ops::layer_norm::check_i8(p, xi, yo)
        }
        Bound::LayerNormF32(p) if has_f32(OPS, OpCode::LayerNorm) => {
            ops::layer_norm::check_f32(p, xi, yo)
        }
        Bound::CausalMask(p, _) if has(OPS, OpCode::CausalMask) => {
            ops::causal_mask::check(p, xi).and(ops::causal_mask::check(p, yo))
        }
        Bound::TableI8(p) if has_i8(OPS, OpCode::Table) => ops::lut::check_i8(p, xi, yo),
        Bound::TableF32(_) if has_f32(OPS, OpCode::Table) => ops::lut::check_f32(xi, yo),
        Bound::KvAppend(shape, _) if has(OPS, OpCode::KvAppend) => {
            ops::attention::check_append(shape, xi, yo)
        }
        Bound::AttentionI8(p) if has_i8(OPS, OpCode::Attention) => {
            let cache = len_of(model, io.x2, rec.input(1))?;
            let scratch = len_of(model, None, rec.output(1))?;
            ops::attention::check_i8(p, xi, cache, scratch, yo)
        }
        Bound::AttentionF32(p) if has_f32(OPS, OpCode::Attention) => {
            let cache = len_of(model, io.x2, rec.input(1))?;
            let scratch = len_of(model, None, rec.output(1))?;
            ops::attention::check_f32(p, xi, cache, scratch, yo)
        }
        _ => Err(unsupported(index, rec)),
    };
    r.map_err(|e| e.with_op(index as u32))
}

/// The arena split around one op's output: bytes before it, the output, bytes after it.
struct Split<'b> {
    before: &'b [u8],
    after: &'b [u8],
    out_start: usize,
    out_end: usize,
}

fn split<'b>(arena: &'b mut [u8], out: Place) -> Result<(Split<'b>, &'b mut [u8]), Error> {
    let (start, end) = out.range();
    if end > arena.len() {
        return Err(Error::ArenaTooSmall {
            needed: end as u32,
            given: arena.len() as u32,
        });
    }
    let (before, rest) = arena.split_at_mut(start);
    let (out, after) = rest.split_at_mut(end - start);
    Ok((
        Split {
            before,
            after,
            out_start: start,
            out_end: end,
        },
        out,
    ))
}

/// Where output 0 is: the interpreter's kept place (`io`) when there is one, else decoded.
fn output_place(
    model: &Model<'_>,
    rec: &OpRecord<'_>,
    io: Option<&Places>,
) -> Result<Place, Error> {
    match io.and_then(|io| io.y) {
        Some(y) => Ok(y),
        None => Ok(Place::of(&model.tensor(rec.output(0) as usize)?)),
    }
}

impl<'b> Split<'b> {
    /// Bytes of input `k` of `rec`, with its record from the interpreter's cache (`cached`) when
    /// there is one.
    fn input_of(
        &self,
        model: &Model<'b>,
        rec: &OpRecord<'_>,
        k: usize,
        cached: Option<Place>,
        op: usize,
    ) -> Result<&'b [u8], Error> {
        match cached {
            Some(place) => self.input_at(model, rec.input(k), place, op),
            None => self.input(model, rec.input(k), op),
        }
    }

    /// Bytes of an input tensor: from the image for constants, else from the arena (which
    /// validation guarantees does not overlap the output).
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn input(&self, model: &Model<'b>, t: u16, op: usize) -> Result<&'b [u8], Error> {
        let info = model.tensor(t as usize)?;
        self.input_at(model, t, Place::of(&info), op)
    }

    /// [`Self::input`] with tensor `t`'s place already known.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn input_at(
        &self,
        model: &Model<'b>,
        t: u16,
        place: Place,
        op: usize,
    ) -> Result<&'b [u8], Error> {
        if place.constant {
            return model.constant(t as usize);
        }
        let (s, e) = place.range();
        if e <= self.out_start {
            self.before.get(s..e)
        } else if s >= self.out_end {
            self.after.get(s - self.out_end..e - self.out_end)
        } else {
            None
        }
        .ok_or(Error::ImagePlanOverlap {
            a: t as u32,
            b: op as u32,
        })
    }
}

/// Runs op `index` over the arena, decoding its record first (see [`run_bound`]): what the
/// interpreter does for an op it has not kept decoded; the tests' reference path.
#[cfg(test)]
pub(crate) fn run<const OPS: u128>(
    model: &Model<'_>,
    index: usize,
    rec: &OpRecord<'_>,
    arena: &mut [u8],
) -> Result<(), Error> {
    let (bound, places) = bind_in_place::<OPS>(model, index, rec);
    let b = bound.as_ref().map_err(|e| *e)?;
    run_bound::<OPS>(model, index, rec, b, Some(&places), arena)
}

/// The decoded records of an op's output and first two inputs, read once for the op's binding
/// and its parse-time check. A record that does not decode (an op without that tensor) is
/// `None`.
#[derive(Clone, Copy)]
pub(crate) struct Io {
    y: Option<TensorInfo>,
    x: Option<TensorInfo>,
    x2: Option<TensorInfo>,
}

impl Io {
    /// Decodes the records of op `rec`'s output 0 and inputs 0 and 1.
    fn new(model: &Model<'_>, rec: &OpRecord<'_>) -> Io {
        let t = |i: u16| model.tensor(i as usize).ok();
        Io {
            y: t(rec.output(0)),
            x: t(rec.input(0)),
            x2: t(rec.input(1)),
        }
    }

    /// Where the three tensors are: what [`run_bound`] needs of them.
    fn places(&self) -> Places {
        let p = |t: &Option<TensorInfo>| t.as_ref().map(Place::of);
        Places {
            y: p(&self.y),
            x: p(&self.x),
            x2: p(&self.x2),
        }
    }
}

/// Where a tensor's bytes are: all [`run_bound`] reads of its record, in 12 bytes instead of the
/// whole record's (which matters because every prepared op keeps three: the Cortex-M4's
/// [`PreparedOp`](crate::PreparedOp) went from 256 to 184 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    /// Byte offset in the arena (for a constant: in the constant section; for an alias: the
    /// base tensor's offset, as in [`TensorInfo::offset`]).
    offset: u32,
    /// Byte length.
    len: u32,
    /// Whether the bytes are a constant of the image (else the arena's).
    constant: bool,
}

impl Place {
    /// The place of a decoded tensor record.
    #[inline(always)]
    fn of(info: &TensorInfo) -> Place {
        Place {
            offset: info.offset,
            len: info.len,
            constant: info.storage == Storage::Constant,
        }
    }

    /// Byte range `start..end` (in `usize`, as the arena is indexed).
    #[inline(always)]
    fn range(&self) -> (usize, usize) {
        (
            self.offset as usize,
            self.offset as usize + self.len as usize,
        )
    }
}

/// Where an op's output 0 and inputs 0 and 1 are, kept with its [`Bound`] form by the
/// interpreter (prepared ops, and its own copy under `std`). `None` for a tensor whose record
/// did not decode (an op without that tensor): `run_bound` decodes it again, with its error,
/// if the op uses it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Places {
    y: Option<Place>,
    x: Option<Place>,
    x2: Option<Place>,
}

/// Runs op `index`, already decoded by [`bind_with_io`] into `b`, over the arena. The interpreter keeps
/// the decoded ops of a model under `std` (bound once, in `Interpreter::new`), so `invoke`
/// decodes only the op's output and input tensor records here.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn run_bound<const OPS: u128>(
    model: &Model<'_>,
    index: usize,
    rec: &OpRecord<'_>,
    b: &Bound<'_>,
    io: Option<&Places>,
    arena: &mut [u8],
) -> Result<(), Error> {
    use bytes::{
        as_f32 as f32s, as_f32_mut as f32m, as_i32_mut as i32m, as_i8 as i8s, as_i8_mut as i8m,
    };
    // Both tests are constants after monomorphization: an op set without these ops links
    // neither function (nor `split_two`); such a bound then falls to `unsupported` below.
    if has(OPS, OpCode::Attention) && matches!(b, Bound::AttentionI8(_) | Bound::AttentionF32(_)) {
        return run_attention::<OPS>(model, index, rec, b, arena);
    }
    if (has_f32(OPS, OpCode::Softmax) || has_f32(OPS, OpCode::LayerNorm))
        && matches!(b, Bound::SoftmaxQdq(_) | Bound::LayerNormQdq(_))
    {
        return run_with_scratch::<OPS>(model, index, rec, b, arena);
    }
    let y = output_place(model, rec, io)?;
    let (s, out) = split(arena, y)?;
    let at = |e: Error| e.with_op(index as u32);
    let x = s.input_of(model, rec, 0, io.and_then(|io| io.x), index)?;
    let x2 = || s.input_of(model, rec, 1, io.and_then(|io| io.x2), index);
    match b {
        Bound::FcI8(p) if has_i8(OPS, OpCode::FullyConnected) => {
            ops::fully_connected::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::FcF32(p) if has_f32(OPS, OpCode::FullyConnected) => {
            ops::fully_connected::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::FcPackedI8(p) if OPS & PACKED_WEIGHTS != 0 => {
            ops::fully_connected::packed::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::Conv2dI8(p) if has_i8(OPS, OpCode::Conv2d) => {
            ops::conv2d::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::Conv2dF32(p) if has_f32(OPS, OpCode::Conv2d) => {
            ops::conv2d::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::DwConvI8(p) if has_i8(OPS, OpCode::DepthwiseConv2d) => {
            ops::depthwise_conv2d::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::DwConvF32(p) if has_f32(OPS, OpCode::DepthwiseConv2d) => {
            ops::depthwise_conv2d::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::Conv1dI8(p) if has_i8(OPS, OpCode::Conv1d) => {
            ops::conv1d::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::Conv1dF32(p) if has_f32(OPS, OpCode::Conv1d) => {
            ops::conv1d::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::ActI8(p) if (has_i8(OPS, OpCode::Relu) || has_i8(OPS, OpCode::Relu6)) => {
            ops::activation::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::ActF32(p) if (has_f32(OPS, OpCode::Relu) || has_f32(OPS, OpCode::Relu6)) => {
            ops::activation::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::MaxPoolI8(p) if has_i8(OPS, OpCode::MaxPool2d) => {
            ops::pooling::eval_max_i8(p, i8s(x), i8m(out))
        }
        Bound::AvgPoolI8(p) if has_i8(OPS, OpCode::AvgPool2d) => {
            ops::pooling::eval_avg_i8(p, i8s(x), i8m(out))
        }
        Bound::MaxPoolF32(p) if has_f32(OPS, OpCode::MaxPool2d) => {
            ops::pooling::eval_max_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::AvgPoolF32(p) if has_f32(OPS, OpCode::AvgPool2d) => {
            ops::pooling::eval_avg_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::GlobalAvgI8(p) if has_i8(OPS, OpCode::GlobalAvgPool) => {
            ops::pooling::eval_global_avg_i8(p, i8s(x), i8m(out))
        }
        Bound::GlobalAvgF32(p) if has_f32(OPS, OpCode::GlobalAvgPool) => {
            ops::pooling::eval_global_avg_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::Reshape(p, DType::F32) if has(OPS, OpCode::Reshape) => {
            ops::reshape::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::Reshape(p, _) if has(OPS, OpCode::Reshape) => {
            ops::reshape::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::SoftmaxI8(p) if has_i8(OPS, OpCode::Softmax) => {
            ops::softmax::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::SoftmaxF32(p) if has_f32(OPS, OpCode::Softmax) => {
            ops::softmax::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::Quantize(p) if has_f32(OPS, OpCode::Quantize) => {
            ops::quantize::eval_quantize(p, f32s(x)?, i8m(out))
        }
        Bound::Dequantize(p) if has_f32(OPS, OpCode::Dequantize) => {
            ops::quantize::eval_dequantize(p, i8s(x), f32m(out)?)
        }
        Bound::ArgMaxI8(p) if has_i8(OPS, OpCode::ArgMax) => {
            ops::argmax::eval_i8(p, i8s(x), i32m(out)?)
        }
        Bound::ArgMaxF32(p) if has_f32(OPS, OpCode::ArgMax) => {
            ops::argmax::eval_f32(p, f32s(x)?, i32m(out)?)
        }
        Bound::AddI8(p) if has_i8(OPS, OpCode::Add) => {
            ops::add::eval_i8(p, i8s(x), i8s(x2()?), i8m(out))
        }
        Bound::AddF32(p) if has_f32(OPS, OpCode::Add) => {
            ops::add::eval_f32(p, f32s(x)?, f32s(x2()?)?, f32m(out)?)
        }
        Bound::MulI8(p) if has_i8(OPS, OpCode::Mul) => {
            ops::mul::eval_i8(p, i8s(x), i8s(x2()?), i8m(out))
        }
        Bound::MulF32(p) if has_f32(OPS, OpCode::Mul) => {
            ops::mul::eval_f32(p, f32s(x)?, f32s(x2()?)?, f32m(out)?)
        }
        Bound::ConcatI8(p) if has_i8(OPS, OpCode::Concat) => {
            let mut ins: [&[i8]; ops::concat::MAX_INPUTS] = [&[]; ops::concat::MAX_INPUTS];
            let n = rec.num_inputs().min(ins.len());
            for (i, slot) in ins[..n].iter_mut().enumerate() {
                *slot = i8s(s.input(model, rec.input(i), index)?);
            }
            ops::concat::eval_i8(p, &ins[..n], i8m(out))
        }
        Bound::ConcatF32(p) if has_f32(OPS, OpCode::Concat) => {
            let mut ins: [&[f32]; ops::concat::MAX_INPUTS] = [&[]; ops::concat::MAX_INPUTS];
            let n = rec.num_inputs().min(ins.len());
            for (i, slot) in ins[..n].iter_mut().enumerate() {
                *slot = f32s(s.input(model, rec.input(i), index)?)?;
            }
            ops::concat::eval_f32(p, &ins[..n], f32m(out)?)
        }
        Bound::BmmI8(p) if has_i8(OPS, OpCode::BatchMatMul) => {
            ops::batch_matmul::eval_i8(p, i8s(x), i8s(x2()?), i8m(out))
        }
        Bound::BmmF32(p) if has_f32(OPS, OpCode::BatchMatMul) => {
            ops::batch_matmul::eval_f32(p, f32s(x)?, f32s(x2()?)?, f32m(out)?)
        }
        Bound::Transpose(p, DType::F32) if has(OPS, OpCode::Transpose) => {
            ops::transpose::eval(p, f32s(x)?, f32m(out)?)
        }
        Bound::Transpose(p, DType::I32) if has(OPS, OpCode::Transpose) => {
            ops::transpose::eval(p, bytes::as_i32(x)?, i32m(out)?)
        }
        Bound::Transpose(p, _) if has(OPS, OpCode::Transpose) => {
            ops::transpose::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::GatherI8(p) if has_i8(OPS, OpCode::Gather) => {
            ops::gather::eval(p, bytes::as_i32(x2()?)?, i8m(out)).map_err(at)?
        }
        Bound::GatherF32(p) if has_f32(OPS, OpCode::Gather) => {
            ops::gather::eval(p, bytes::as_i32(x2()?)?, f32m(out)?).map_err(at)?
        }
        Bound::LayerNormI8(p) if has_i8(OPS, OpCode::LayerNorm) => {
            ops::layer_norm::eval_i8(p, i8s(x), i8m(out))
        }
        Bound::LayerNormF32(p) if has_f32(OPS, OpCode::LayerNorm) => {
            ops::layer_norm::eval_f32(p, f32s(x)?, f32m(out)?)
        }
        Bound::CausalMask(p, DType::F32) if has(OPS, OpCode::CausalMask) => {
            let out = f32m(out)?;
            out.copy_from_slice(f32s(x)?);
            ops::causal_mask::eval_f32(p, out)
        }
        Bound::CausalMask(p, _) if has(OPS, OpCode::CausalMask) => {
            let out = i8m(out);
            out.copy_from_slice(i8s(x));
            ops::causal_mask::eval_i8(p, out)
        }
        Bound::TableI8(p) if has_i8(OPS, OpCode::Table) => ops::lut::eval_i8(p, i8s(x), i8m(out)),
        Bound::TableF32(f) if has_f32(OPS, OpCode::Table) => {
            let (x, out) = (f32s(x)?, f32m(out)?);
            match f {
                TableFn::Gelu => ops::gelu::eval_f32(x, out),
                TableFn::Silu => ops::silu::eval_f32(x, out),
                TableFn::Sigmoid => ops::sigmoid::eval_f32(x, out),
                TableFn::Tanh => ops::tanh::eval_f32(x, out),
            }
        }
        Bound::KvAppend(shape, DType::F32) if has(OPS, OpCode::KvAppend) => {
            let pos = position(x2()?)?;
            ops::attention::append(shape, f32s(x)?, pos, f32m(out)?).map_err(at)?
        }
        Bound::KvAppend(shape, _) if has(OPS, OpCode::KvAppend) => {
            let pos = position(x2()?)?;
            ops::attention::append(shape, i8s(x), pos, i8m(out)).map_err(at)?
        }
        _ => return Err(unsupported(index, rec)),
    }
    Ok(())
}

/// The decode position from its `i32 [1]` tensor's bytes.
fn position(b: &[u8]) -> Result<i32, Error> {
    bytes::as_i32(b)?
        .first()
        .copied()
        .ok_or(Error::KernelShapeMismatch { op: 0 })
}

/// The arena split around two outputs: up to three read-only pieces and the two outputs.
struct Pieces<'b> {
    parts: [(usize, &'b [u8]); 3],
}

impl<'b> Pieces<'b> {
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn input(&self, model: &Model<'b>, t: u16, op: usize) -> Result<&'b [u8], Error> {
        let info = model.tensor(t as usize)?;
        if info.storage == Storage::Constant {
            return model.constant(t as usize);
        }
        let (s, e) = (
            info.offset as usize,
            info.offset as usize + info.len as usize,
        );
        self.parts
            .iter()
            .find(|(start, p)| s >= *start && e <= start + p.len())
            .and_then(|(start, p)| p.get(s - start..e - start))
            .ok_or(Error::ImagePlanOverlap {
                a: t as u32,
                b: op as u32,
            })
    }
}

/// Splits the arena into the bytes of two disjoint outputs `a`, `b` and the rest.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn split_two<'b>(
    arena: &'b mut [u8],
    a: Place,
    b: Place,
    op: usize,
) -> Result<(Pieces<'b>, &'b mut [u8], &'b mut [u8]), Error> {
    let ((a0, a1), (b0, b1)) = (a.range(), b.range());
    let swap = b0 < a0;
    let ((f0, f1), (s0, s1)) = if swap {
        ((b0, b1), (a0, a1))
    } else {
        ((a0, a1), (b0, b1))
    };
    if f1 > s0 {
        return Err(Error::ImagePlanOverlap {
            a: op as u32,
            b: op as u32,
        });
    }
    if s1 > arena.len() {
        return Err(Error::ArenaTooSmall {
            needed: s1 as u32,
            given: arena.len() as u32,
        });
    }
    let (p0, rest) = arena.split_at_mut(f0);
    let (first, rest) = rest.split_at_mut(f1 - f0);
    let (p1, rest) = rest.split_at_mut(s0 - f1);
    let (second, p2) = rest.split_at_mut(s1 - s0);
    let pieces = Pieces {
        parts: [(0, &*p0), (f1, &*p1), (s1, &*p2)],
    };
    Ok(if swap {
        (pieces, second, first)
    } else {
        (pieces, first, second)
    })
}

/// Rows of an op's output each part of a split gets at least (and its boundaries' multiple).
#[cfg(any(test, feature = "std"))]
const SPLIT_ALIGN: usize = 8;
/// Fewest multiply-accumulates for which an op is split over threads (below, the hand-off costs
/// more than it saves).
#[cfg(any(test, feature = "std"))]
const SPLIT_MIN_MACS: usize = 1 << 18;

/// A raw pointer that the parts of one split may share: each part touches its own rows only.
#[cfg(any(test, feature = "std"))]
#[derive(Clone, Copy)]
struct SharedPtr<T>(*mut T);
// SAFETY: the parts of a split read shared inputs and write disjoint output rows (see
// `run_split`); `Pool::run` returns only after every part is done.
#[cfg(any(test, feature = "std"))]
unsafe impl<T> Sync for SharedPtr<T> {}
#[cfg(any(test, feature = "std"))]
unsafe impl<T> Send for SharedPtr<T> {}

#[cfg(any(test, feature = "std"))]
impl<T> SharedPtr<T> {
    /// The pointer (a method, so that closures capture the whole `SharedPtr`).
    fn get(&self) -> *mut T {
        self.0
    }
}

/// Runs op `index` split over the pool's threads when it is an op that splits (FullyConnected by
/// rows, int8 and f32, packed or not; int8 BatchMatMul by batch) and is large enough; `None`
/// when it is not (the caller runs it on one thread). Every part computes whole output rows
/// with the same kernel as the single-threaded run, so the bytes are the same.
// Cold and out of line: a process that never starts workers never runs it, and keeping it
// away from the hot code keeps its pages out of such a process's resident text.
#[cfg(any(test, feature = "std"))]
#[cold]
#[inline(never)]
pub(crate) fn run_split<const OPS: u128>(
    model: &Model<'_>,
    index: usize,
    rec: &OpRecord<'_>,
    b: &Bound<'_>,
    io: Option<&Places>,
    arena: &mut [u8],
    pool: &crate::threads::Pool,
) -> Option<Result<(), Error>> {
    use bytes::{as_f32 as f32s, as_f32_mut as f32m, as_i8 as i8s, as_i8_mut as i8m};
    let threads = pool.threads();
    if threads < 2 {
        return None;
    }
    // (rows, input row length, output row length, MACs)
    let fc = |s: &ops::fully_connected::FullyConnectedShape| {
        let (r, k, n) = (
            s.batch as usize,
            s.in_features as usize,
            s.out_features as usize,
        );
        (r, k, n, r * k * n)
    };
    let (rows, xk, yn, macs) = match b {
        Bound::FcI8(ops::fully_connected::FullyConnectedParams { shape, .. })
        | Bound::FcPackedI8(ops::fully_connected::packed::PackedFullyConnectedParams {
            shape,
            ..
        }) if has_i8(OPS, OpCode::FullyConnected) => fc(shape),
        Bound::FcF32(ops::fully_connected::FullyConnectedF32Params { shape, .. })
            if has_f32(OPS, OpCode::FullyConnected) =>
        {
            fc(shape)
        }
        Bound::BmmI8(p) if has_i8(OPS, OpCode::BatchMatMul) => {
            let s = &p.shape;
            let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
            (s.batch as usize, m * k, m * n, s.batch as usize * m * k * n)
        }
        _ => return None,
    };
    let align = if matches!(b, Bound::BmmI8(_)) {
        1
    } else {
        SPLIT_ALIGN
    };
    let parts = threads.min(rows / align);
    if parts < 2 || macs < SPLIT_MIN_MACS {
        return None;
    }
    let r = (|| -> Result<(), Error> {
        let y = output_place(model, rec, io)?;
        let (s, out) = split(arena, y)?;
        let x = s.input_of(model, rec, 0, io.and_then(|io| io.x), index)?;
        let x2 = if matches!(b, Bound::BmmI8(_)) {
            s.input_of(model, rec, 1, io.and_then(|io| io.x2), index)?
        } else {
            &[]
        };
        let esize = if matches!(b, Bound::FcF32(_)) { 4 } else { 1 };
        if x.len() < rows * xk * esize || out.len() < rows * yn * esize {
            return Err(Error::KernelShapeMismatch { op: index as u32 });
        }
        let kn = x2_row_len(b);
        if x2.len() < rows * kn {
            return Err(Error::KernelShapeMismatch { op: index as u32 });
        }
        let (xp, yp) = (
            SharedPtr(x.as_ptr() as *mut u8),
            SharedPtr(out.as_mut_ptr()),
        );
        let x2 = SharedPtr(x2.as_ptr() as *mut u8);
        let job = |part: usize| {
            let (r0, r1) = crate::threads::part_rows(rows, parts, align, part);
            if r0 == r1 {
                return;
            }
            let n = r1 - r0;
            // SAFETY: rows `r0..r1` of `x` and of `out` are inside the lengths checked above;
            // the parts' output rows are disjoint, and `out` is not aliased by `x` (the plan
            // check); `Pool::run` keeps the borrows alive until every part is done.
            let (xs, ys) = unsafe {
                (
                    core::slice::from_raw_parts(xp.get().add(r0 * xk * esize), n * xk * esize),
                    core::slice::from_raw_parts_mut(yp.get().add(r0 * yn * esize), n * yn * esize),
                )
            };
            match b {
                Bound::FcI8(p) => {
                    let mut q = *p;
                    q.shape.batch = n as u32;
                    ops::fully_connected::eval_i8(&q, i8s(xs), i8m(ys));
                }
                Bound::FcPackedI8(p) => {
                    let mut q = *p;
                    q.shape.batch = n as u32;
                    ops::fully_connected::packed::eval_i8(&q, i8s(xs), i8m(ys));
                }
                Bound::FcF32(p) => {
                    let mut q = *p;
                    q.shape.batch = n as u32;
                    if let (Ok(xs), Ok(ys)) = (f32s(xs), f32m(ys)) {
                        ops::fully_connected::eval_f32(&q, xs, ys);
                    }
                }
                Bound::BmmI8(p) => {
                    let mut q = *p;
                    q.shape.batch = n as u32;
                    // SAFETY: `B` rows `r0..r1` (of `kn` bytes each) lie inside `x2`, whose
                    // length the parse-time check ties to the shape.
                    let bs = unsafe { core::slice::from_raw_parts(x2.get().add(r0 * kn), n * kn) };
                    ops::batch_matmul::eval_i8(&q, i8s(xs), i8s(bs), i8m(ys));
                }
                _ => {}
            }
        };
        pool.run(parts, &job);
        Ok(())
    })();
    Some(r.map_err(|e| e.with_op(index as u32)))
}

/// Bytes of one batch entry of a BatchMatMul's `B` (0 for other ops).
#[cfg(any(test, feature = "std"))]
fn x2_row_len(b: &Bound<'_>) -> usize {
    match b {
        Bound::BmmI8(p) => p.shape.k as usize * p.shape.n as usize,
        _ => 0,
    }
}

/// Runs a Softmax or LayerNorm version 2 (two outputs: the int8 result and the f32 scratch).
fn run_with_scratch<const OPS: u128>(
    model: &Model<'_>,
    index: usize,
    rec: &OpRecord<'_>,
    b: &Bound<'_>,
    arena: &mut [u8],
) -> Result<(), Error> {
    let y = model.tensor(rec.output(0) as usize)?;
    let scratch = model.tensor(rec.output(1) as usize)?;
    let (s, out, scr) = split_two(arena, Place::of(&y), Place::of(&scratch), index)?;
    let x = bytes::as_i8(s.input(model, rec.input(0), index)?);
    let scr = bytes::as_f32_mut(scr).map_err(|e| e.with_op(index as u32))?;
    let out = bytes::as_i8_mut(out);
    match b {
        Bound::SoftmaxQdq(p) if has_f32(OPS, OpCode::Softmax) => {
            ops::softmax::quantized::eval(p, x, scr, out)
        }
        Bound::LayerNormQdq(p) if has_f32(OPS, OpCode::LayerNorm) => {
            ops::layer_norm::quantized::eval(p, x, scr, out)
        }
        _ => return Err(unsupported(index, rec)),
    }
    Ok(())
}

/// Runs an Attention op (two outputs: the result and the score scratch row).
fn run_attention<const OPS: u128>(
    model: &Model<'_>,
    index: usize,
    rec: &OpRecord<'_>,
    b: &Bound<'_>,
    arena: &mut [u8],
) -> Result<(), Error> {
    use bytes::{
        as_f32 as f32s, as_f32_mut as f32m, as_i32_mut as i32m, as_i8 as i8s, as_i8_mut as i8m,
    };
    let y = model.tensor(rec.output(0) as usize)?;
    let scratch = model.tensor(rec.output(1) as usize)?;
    let (s, out, scr) = split_two(arena, Place::of(&y), Place::of(&scratch), index)?;
    let input = |i: usize| s.input(model, rec.input(i), index);
    let pos = position(input(3)?)?;
    let r = match b {
        Bound::AttentionI8(p) if has_i8(OPS, OpCode::Attention) => ops::attention::eval_i8(
            p,
            i8s(input(0)?),
            i8s(input(1)?),
            i8s(input(2)?),
            pos,
            i32m(scr)?,
            i8m(out),
        ),
        Bound::AttentionF32(p) if has_f32(OPS, OpCode::Attention) => ops::attention::eval_f32(
            p,
            f32s(input(0)?)?,
            f32s(input(1)?)?,
            f32s(input(2)?)?,
            pos,
            f32m(scr)?,
            f32m(out)?,
        ),
        _ => return Err(unsupported(index, rec)),
    };
    r.map_err(|e| e.with_op(index as u32))
}

//! Binds op records to kernels: decodes each op's parameter record and tensors into the
//! kernel's `Params` (borrowing constants from the image), validates them with the kernel's
//! `check_*` at parse time, and runs `eval_*` over arena slices at invoke time.
//!
//! Parameter records are specified in `FORMAT.md` ("Operators"). Every decode step is fallible:
//! nothing here can panic on a malformed image.

use super::bytes::{self, i32_at, u32_at};
use super::model::Model;
use super::op::{OpCode, OpRecord};
use super::tensor::{DType, Storage, TensorInfo};
use super::NO_TENSOR;
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
    FcF32(ops::fully_connected::FullyConnectedF32Params<'a>),
    Conv2dI8(ops::conv2d::Conv2dParams<'a>),
    Conv2dF32(ops::conv2d::Conv2dF32Params<'a>),
    DwConvI8(ops::depthwise_conv2d::DepthwiseConv2dParams<'a>),
    DwConvF32(ops::depthwise_conv2d::DepthwiseConv2dF32Params<'a>),
    Conv1dI8(ops::conv1d::Conv1dParams<'a>),
    Conv1dF32(ops::conv1d::Conv1dF32Params<'a>),
}

/// Decoding context for one op.
struct Ctx<'m, 'a> {
    model: &'m Model<'a>,
    index: usize,
    rec: &'m OpRecord<'a>,
}

impl<'m, 'a> Ctx<'m, 'a> {
    fn err(&self, p: OpProblem) -> Error {
        op_err(self.index, p)
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

    fn input(&self, i: usize) -> Result<TensorInfo, Error> {
        self.tensor(self.rec.input(i))
    }

    fn output(&self, i: usize) -> Result<TensorInfo, Error> {
        self.tensor(self.rec.output(i))
    }

    /// A required constant input of type `dtype`.
    fn constant(&self, i: usize, dtype: DType) -> Result<&'a [u8], Error> {
        let t = self.rec.input(i);
        let info = self.tensor(t)?;
        if info.dtype != dtype {
            return Err(self.err(OpProblem::BadDtype));
        }
        if info.storage != Storage::Constant {
            return Err(self.err(OpProblem::BadParams));
        }
        self.model
            .constant(t as usize)
            .map_err(|_| self.err(OpProblem::BadParams))
    }

    fn const_i8(&self, i: usize) -> Result<&'a [i8], Error> {
        Ok(bytes::as_i8(self.constant(i, DType::I8)?))
    }

    fn const_i32(&self, i: usize) -> Result<&'a [i32], Error> {
        bytes::as_i32(self.constant(i, DType::I32)?).map_err(|_| self.err(OpProblem::BadParams))
    }

    fn const_f32(&self, i: usize) -> Result<&'a [f32], Error> {
        bytes::as_f32(self.constant(i, DType::F32)?).map_err(|_| self.err(OpProblem::BadParams))
    }

    /// An optional constant input (absent when the index is [`NO_TENSOR`] or past the end).
    fn opt_i32(&self, i: usize) -> Result<Option<&'a [i32]>, Error> {
        if i >= self.rec.num_inputs() || self.rec.input(i) == NO_TENSOR {
            return Ok(None);
        }
        self.const_i32(i).map(Some)
    }

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

    /// NHWC dims of a rank-4 tensor.
    fn nhwc(&self, t: &TensorInfo) -> Result<Dims, Error> {
        if t.shape.rank() != 4 {
            return Err(self.err(OpProblem::BadShape));
        }
        Ok([0, 1, 2, 3].map(|i| t.shape.dim(i) as u32))
    }
}

fn bind_fully_connected<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
    use ops::fully_connected::*;
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
    if x.dtype == DType::F32 {
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

fn bind_conv2d<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
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
    if x.dtype == DType::F32 {
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

fn bind_depthwise<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
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
    if x.dtype == DType::F32 {
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

fn bind_conv1d<'a>(c: &Ctx<'_, 'a>) -> Result<Bound<'a>, Error> {
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
    if x.dtype == DType::F32 {
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

/// Decodes op `index`.
pub(crate) fn bind<'a>(model: &Model<'a>, index: usize, rec: &OpRecord<'a>) -> Result<Bound<'a>, Error> {
    let c = Ctx { model, index, rec };
    let unsupported = Error::UnsupportedOp {
        index: index as u32,
        code: rec.code,
    };
    let code = OpCode::from_code(rec.code).ok_or(unsupported)?;
    if rec.version != 1 {
        return Err(unsupported);
    }
    match code {
        OpCode::FullyConnected => bind_fully_connected(&c),
        OpCode::Conv2d => bind_conv2d(&c),
        OpCode::DepthwiseConv2d => bind_depthwise(&c),
        OpCode::Conv1d => bind_conv1d(&c),
        _ => Err(unsupported),
    }
}

/// Element count of the op's input `i` and output `o` tensors.
fn lens(model: &Model<'_>, rec: &OpRecord<'_>) -> Result<(usize, usize), Error> {
    let x = model.tensor(rec.input(0) as usize)?;
    let y = model.tensor(rec.output(0) as usize)?;
    Ok((x.num_elements(), y.num_elements()))
}

/// Parse-time check of op `index`: decodes it and runs the kernel's `check_*`.
pub(crate) fn check(model: &Model<'_>, index: usize, rec: &OpRecord<'_>) -> Result<(), Error> {
    let b = bind(model, index, rec)?;
    let (xi, yo) = lens(model, rec)?;
    let r = match &b {
        Bound::FcI8(p) => ops::fully_connected::check_i8(p, xi, yo),
        Bound::FcF32(p) => ops::fully_connected::check_f32(p, xi, yo),
        Bound::Conv2dI8(p) => ops::conv2d::check_i8(p, xi, yo),
        Bound::Conv2dF32(p) => ops::conv2d::check_f32(p, xi, yo),
        Bound::DwConvI8(p) => ops::depthwise_conv2d::check_i8(p, xi, yo),
        Bound::DwConvF32(p) => ops::depthwise_conv2d::check_f32(p, xi, yo),
        Bound::Conv1dI8(p) => ops::conv1d::check_i8(p, xi, yo),
        Bound::Conv1dF32(p) => ops::conv1d::check_f32(p, xi, yo),
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

fn split<'b>(arena: &'b mut [u8], out: &TensorInfo) -> Result<(Split<'b>, &'b mut [u8]), Error> {
    let start = out.offset as usize;
    let end = start + out.len as usize;
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

impl<'b> Split<'b> {
    /// Bytes of an input tensor: from the image for constants, else from the arena (which
    /// validation guarantees does not overlap the output).
    fn input(&self, model: &Model<'b>, t: u16, op: usize) -> Result<&'b [u8], Error> {
        let info = model.tensor(t as usize)?;
        if info.storage == Storage::Constant {
            return model.constant(t as usize);
        }
        let (s, e) = (info.offset as usize, info.offset as usize + info.len as usize);
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

/// Runs op `index` over the arena.
pub(crate) fn run(model: &Model<'_>, index: usize, rec: &OpRecord<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let b = bind(model, index, rec)?;
    let y = model.tensor(rec.output(0) as usize)?;
    let (s, out) = split(arena, &y)?;
    let x = s.input(model, rec.input(0), index)?;
    match &b {
        Bound::FcI8(p) => ops::fully_connected::eval_i8(p, bytes::as_i8(x), bytes::as_i8_mut(out)),
        Bound::FcF32(p) => ops::fully_connected::eval_f32(p, bytes::as_f32(x)?, bytes::as_f32_mut(out)?),
        Bound::Conv2dI8(p) => ops::conv2d::eval_i8(p, bytes::as_i8(x), bytes::as_i8_mut(out)),
        Bound::Conv2dF32(p) => ops::conv2d::eval_f32(p, bytes::as_f32(x)?, bytes::as_f32_mut(out)?),
        Bound::DwConvI8(p) => ops::depthwise_conv2d::eval_i8(p, bytes::as_i8(x), bytes::as_i8_mut(out)),
        Bound::DwConvF32(p) => {
            ops::depthwise_conv2d::eval_f32(p, bytes::as_f32(x)?, bytes::as_f32_mut(out)?)
        }
        Bound::Conv1dI8(p) => ops::conv1d::eval_i8(p, bytes::as_i8(x), bytes::as_i8_mut(out)),
        Bound::Conv1dF32(p) => ops::conv1d::eval_f32(p, bytes::as_f32(x)?, bytes::as_f32_mut(out)?),
    }
    Ok(())
}

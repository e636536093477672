//! Operator kernels: one folder per op, each with `mod.rs` (params, `check_*`, `eval_*`
//! dispatch), `reference.rs` (the portable specification) and `tests.rs`.
//!
//! # Contract with the interpreter
//!
//! - **Params borrow their constants.** Each op has a `<Op>Params<'a>` (int8) and, where the
//!   types differ, an `<Op>F32Params<'a>` struct. They hold plain integers (geometry, zero points)
//!   and borrow constant slices (`&'a [i8]` weights, `&'a [i32]` biases, multipliers, shifts and
//!   tables, `&'a [f32]` for f32 models) straight from the image bytes. Nothing is copied.
//! - **`check_*` once, `eval_*` many times.** `check_i8(&params, input lens.., output len)` /
//!   `check_f32(..)` validate every length, shape and parameter relation and return
//!   [`Error::KernelShapeMismatch`], [`Error::KernelParamInvalid`] or
//!   [`Error::QuantParamInvalid`] (with `op: 0`; the interpreter sets the operator index with
//!   [`Error::with_op`]). After `check_*` returned `Ok` for some params and lengths, `eval_*` with
//!   the same params and slices of those lengths cannot panic or index out of bounds **for any
//!   tensor values**. Without a successful check, `eval_*` may panic (it stays memory safe).
//! - **Kernels never allocate.** They take `(params, input slices, output slice)`; none of the
//!   reference kernels needs scratch memory. Outputs never alias inputs, except where an op says so
//!   ([`activation`] has an in-place form; [`reshape`] is meant to be aliased by the planner).
//! - **Dispatch.** `eval_*` calls the entry of [`kernels()`] (a [`KernelTable`]) for the ops that have
//!   optimized variants, through `kernel!` (without `std`, a direct call to the compile-time
//!   table's entry), and `reference::` for the others. Every variant must be bit-exact to
//!   `reference` (asserted by `bit_exact_<variant>` tests on random cases).
//!
//! # Shapes
//!
//! Activations are **NHWC**, described by [`Dims`] = `[u32; 4]` (`[n, h, w, c]`), row-major with `c`
//! fastest. Lower-rank tensors are right-aligned and padded with leading 1s (a `[batch, features]`
//! tensor is `[1, 1, batch, features]` where an op takes `Dims`). Every dimension is at least 1.
//! Spatial sizes, kernel sizes, strides, dilations and paddings are at most [`MAX_DIM`], so index
//! arithmetic fits in 32 bits on every target.
//!
//! Weight layouts (TFLite's):
//! - FullyConnected: `[out, in]` row-major.
//! - Conv2D: `[out_c, kh, kw, in_c]` (OHWI).
//! - DepthwiseConv2D: `[kh, kw, in_c * depth_multiplier]` (1HWC); output channel
//!   `ic * depth_multiplier + m` reads input channel `ic`.
//! - Conv1D over `[n, w, c]`: `[out_c, kw, in_c]`.
//!
//! # int8 semantics
//!
//! - Activations: int8 asymmetric per tensor, `real = scale * (q - zero_point)`, zero points in
//!   `[-128, 127]`. Scales appear only offline: kernels see integer multipliers.
//! - Weights: int8 symmetric per output channel, zero point 0, values in `[-127, 127]` (kernels stay
//!   correct for -128 too). Biases: `i32` at scale `s_in * s_w[c]`.
//! - Accumulation: `i32`, wrapping (two's complement) on overflow. `check_*` bounds the
//!   accumulation depth by [`MAX_ACC_DEPTH`], so the sum of products cannot wrap; only an extreme
//!   bias can. Every variant wraps the same way.
//! - Requantization: per output channel `output_multiplier: &[i32]` (Q31, in `[0, 2^31)`) and
//!   `output_shift: &[i32]` (in `[-31, 30]`, positive = left), from
//!   [`quantize_multiplier`](crate::quant::quantize_multiplier)`(s_in * s_w[c] / s_out)`, applied
//!   by [`requantize_to_i8`](crate::quant::requantize_to_i8): one rounding (half up), then the
//!   output zero point (saturating), then the fused clamp [`ClampI8`].
//! - Add uses TFLite's scheme: inputs shifted left by [`add::LEFT_SHIFT`] (20), each scaled by its
//!   own multiplier (< 1), summed, then requantized; see [`add::AddRequant`].
//! - Softmax uses a 256-entry `exp` table precomputed offline, integer sums and one integer
//!   division per element; output scale 1/256, zero point -128; within 1 LSB of exact.
//! - Quantize/Dequantize (graph edges) use `f32` with ONNX's rounding (half to even).
//!
//! # Accuracy against exact arithmetic (tested on random cases in each op's `tests.rs`)
//!
//! Each int8 op is compared with `quantize(op(dequantize(inputs)))` evaluated in f64:
//!
//! | op | int8 entry points | bound |
//! |---|---|---|
//! | FullyConnected, Conv2D, DepthwiseConv2D, Conv1D | `eval_i8` | 1 LSB |
//! | Add, Mul | `eval_i8(p, a, b, out)` | 1 LSB |
//! | ReLU / clamp | `activation::eval_i8` (+ `_in_place`) | exact (ReLU6: 1 LSB, tie rounding of the code of 6.0) |
//! | Max / Avg / GlobalAvg pooling | `pooling::eval_{max,avg,global_avg}_i8` | max exact, averages 1 LSB |
//! | Reshape | `reshape::eval_i8` (copy; normally aliased) | exact |
//! | Concat | `concat::eval_i8(p, &[&[i8]], out)` | exact for inputs with the output's quantization, else 1 LSB |
//! | Softmax | `softmax::eval_i8` | 1 LSB for depth ≤ [`softmax::MAX_DEPTH`] (derivation in its docs) |
//! | Quantize / Dequantize | `quantize::eval_{quantize,dequantize}` | bit-exact to ONNX's f32 formula; 1 LSB vs f64 |
//! | ArgMax | `argmax::eval_{i8,f32}` (output `i32`) | exact (first index on ties) |
//!
//! f32 kernels are compared with the same ops in f64 with a relative tolerance of about 1e-5.
//!
//! # Adding an optimized variant
//!
//! Put it in `ops/<op>/<isa>.rs` (for example `avx2.rs`, `dsp.rs`) with the same signature as the
//! reference function, replace its [`KernelTable`] entry in `crate::arch` (`ops_table_avx2` for
//! runtime detection under `std`, `ops_table_compile_time` for target `cfg`s such as Cortex-M
//! DSP), which [`kernels()`] returns, and add a `bit_exact_<isa>` test that runs the op's random
//! cases through both (see `fully_connected::tests::assert_bit_exact`).

use crate::Error;

pub mod activation;
pub mod add;
pub mod argmax;
pub mod concat;
pub mod conv1d;
pub mod conv2d;
pub mod depthwise_conv2d;
pub mod fully_connected;
pub mod mul;
pub mod pooling;
pub mod quantize;
pub mod reshape;
pub mod softmax;
// Transformer ops (issue 3).
pub mod attention;
pub mod batch_matmul;
pub mod causal_mask;
pub mod fmath;
pub mod gather;
pub mod gelu;
// The AVX2 int8 matrix product shared by FullyConnected and BatchMatMul (issue 11).
#[cfg(target_arch = "x86_64")]
pub(crate) mod gemm_avx2;
// The AVX-512 VNNI panel matrix product (FullyConnected and BatchMatMul, issue 11).
#[cfg(target_arch = "x86_64")]
pub(crate) mod gemm_avx512;
pub mod layer_norm;
pub mod lut;
pub mod sigmoid;
pub mod silu;
pub mod tanh;
pub mod transpose;

#[cfg(test)]
pub(crate) mod testing;

/// NHWC dimensions `[n, h, w, c]` of an activation tensor.
pub type Dims = [u32; 4];

/// Largest spatial size, kernel size, stride, dilation or padding accepted by `check_*`.
pub const MAX_DIM: u32 = u16::MAX as u32;

/// Largest number of products summed into one accumulator (for example `kh * kw * in_c`).
///
/// With inputs minus zero point in `[-255, 255]` and weights in `[-128, 127]`, a sum of up to
/// 65 536 products stays inside `i32`.
pub const MAX_ACC_DEPTH: u32 = 1 << 16;

/// Fused int8 activation: outputs are clamped to `[min, max]` (in the output's quantized domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClampI8 {
    /// Smallest output value.
    pub min: i8,
    /// Largest output value.
    pub max: i8,
}

impl ClampI8 {
    /// No activation: the full int8 range.
    pub const NONE: ClampI8 = ClampI8 {
        min: i8::MIN,
        max: i8::MAX,
    };

    /// ReLU for an output quantized with `zero_point`: clamp below at the code of 0.0.
    pub fn relu(zero_point: i32) -> ClampI8 {
        ClampI8 {
            min: zero_point.clamp(-128, 127) as i8,
            max: i8::MAX,
        }
    }

    /// ReLU6 for an output quantized with `(scale, zero_point)`: clamp to the codes of 0.0 and 6.0.
    pub fn relu6(scale: f32, zero_point: i32) -> ClampI8 {
        ClampI8 {
            min: zero_point.clamp(-128, 127) as i8,
            max: crate::quant::quantize_f32(6.0, scale, zero_point),
        }
    }
}

/// Fused f32 activation: outputs are clamped to `[min, max]` (`±inf` for none).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClampF32 {
    /// Smallest output value.
    pub min: f32,
    /// Largest output value.
    pub max: f32,
}

impl ClampF32 {
    /// No activation.
    pub const NONE: ClampF32 = ClampF32 {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
    /// ReLU: `max(x, 0)`.
    pub const RELU: ClampF32 = ClampF32 {
        min: 0.0,
        max: f32::INFINITY,
    };
    /// ReLU6: `min(max(x, 0), 6)`.
    pub const RELU6: ClampF32 = ClampF32 { min: 0.0, max: 6.0 };

    /// Applies the clamp. NaN stays NaN.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        // Written with comparisons (not f32::clamp, which panics when min > max or NaN bounds).
        if x < self.min {
            self.min
        } else if x > self.max {
            self.max
        } else {
            x
        }
    }
}

/// Explicit spatial padding, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Padding {
    /// Rows added above the input.
    pub top: u32,
    /// Rows added below the input.
    pub bottom: u32,
    /// Columns added left of the input.
    pub left: u32,
    /// Columns added right of the input.
    pub right: u32,
}

/// Shapes of a binary element-wise op (Add, Mul) with NumPy-style broadcasting over [`Dims`]:
/// each input dimension equals the output's or is 1 (then that input is repeated along it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BroadcastShape {
    /// First input.
    pub input1: Dims,
    /// Second input.
    pub input2: Dims,
    /// Output.
    pub output: Dims,
}

impl BroadcastShape {
    /// Both inputs and the output have `dims` (no broadcasting).
    pub const fn same(dims: Dims) -> BroadcastShape {
        BroadcastShape {
            input1: dims,
            input2: dims,
            output: dims,
        }
    }

    /// Validates the dims and the three lengths.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub(crate) fn check(&self, len1: usize, len2: usize, output_len: usize) -> Result<(), Error> {
        for k in 0..4 {
            let o = self.output[k];
            for i in [self.input1[k], self.input2[k]] {
                if i != o && i != 1 {
                    return Err(shape_err());
                }
            }
        }
        expect_len(len1, elements(&self.input1)?)?;
        expect_len(len2, elements(&self.input2)?)?;
        expect_len(output_len, elements(&self.output)?)
    }

    /// Calls `f(index1, index2)` for every output element, in output order. Requires a
    /// successful `check`. The element-by-element specification of the broadcast, which the
    /// kernels' row walk (`add::rows`) is tested against.
    #[cfg(test)]
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, usize)) {
        if self.input1 == self.output && self.input2 == self.output {
            let n = self.output.iter().map(|&d| d as usize).product();
            for i in 0..n {
                f(i, i);
            }
            return;
        }
        let s1 = broadcast_strides(&self.input1, &self.output);
        let s2 = broadcast_strides(&self.input2, &self.output);
        let [d0, d1, d2, d3] = self.output.map(|d| d as usize);
        for a in 0..d0 {
            for b in 0..d1 {
                for c in 0..d2 {
                    let base1 = a * s1[0] + b * s1[1] + c * s1[2];
                    let base2 = a * s2[0] + b * s2[1] + c * s2[2];
                    for d in 0..d3 {
                        f(base1 + d * s1[3], base2 + d * s2[3]);
                    }
                }
            }
        }
    }
}

/// Row-major strides of `input`, with 0 where it is broadcast along `output`.
#[cfg(test)]
pub(crate) fn broadcast_strides(input: &Dims, output: &Dims) -> [usize; 4] {
    let mut strides = [0usize; 4];
    let mut s = 1usize;
    for k in (0..4).rev() {
        strides[k] = if input[k] == 1 && output[k] != 1 {
            0
        } else {
            s
        };
        s *= input[k] as usize;
    }
    strides
}

/// Signature of an int8 FullyConnected kernel variant.
pub type FullyConnectedI8Fn = fn(&fully_connected::FullyConnectedParams<'_>, &[i8], &mut [i8]);
/// Signature of an f32 FullyConnected kernel variant.
pub type FullyConnectedF32Fn =
    fn(&fully_connected::FullyConnectedF32Params<'_>, &[f32], &mut [f32]);
/// Signature of an int8 Conv2D kernel variant.
pub type Conv2dI8Fn = fn(&conv2d::Conv2dParams<'_>, &[i8], &mut [i8]);
/// Signature of an f32 Conv2D kernel variant.
pub type Conv2dF32Fn = fn(&conv2d::Conv2dF32Params<'_>, &[f32], &mut [f32]);
/// Signature of an int8 DepthwiseConv2D kernel variant.
pub type DepthwiseConv2dI8Fn = fn(&depthwise_conv2d::DepthwiseConv2dParams<'_>, &[i8], &mut [i8]);
/// Signature of an f32 DepthwiseConv2D kernel variant.
pub type DepthwiseConv2dF32Fn =
    fn(&depthwise_conv2d::DepthwiseConv2dF32Params<'_>, &[f32], &mut [f32]);
/// Signature of an int8 Conv1D kernel variant.
pub type Conv1dI8Fn = fn(&conv1d::Conv1dParams<'_>, &[i8], &mut [i8]);
/// Signature of an int8 BatchMatMul kernel variant.
pub type BatchMatMulI8Fn = fn(&batch_matmul::BatchMatMulParams, &[i8], &[i8], &mut [i8]);
/// Signature of an f32 BatchMatMul kernel variant.
pub type BatchMatMulF32Fn = fn(&batch_matmul::BatchMatMulF32Params, &[f32], &[f32], &mut [f32]);
/// Signature of an f32 → int8 Quantize kernel variant.
pub type QuantizeFn = fn(&quantize::QuantizeParams, &[f32], &mut [i8]);
/// Signature of an int8 Add kernel variant.
pub type AddI8Fn = fn(&add::AddParams, &[i8], &[i8], &mut [i8]);
/// Signature of an f32 Add kernel variant.
pub type AddF32Fn = fn(&add::AddF32Params, &[f32], &[f32], &mut [f32]);
/// Signature of an f32 Mul kernel variant.
pub type MulF32Fn = fn(&mul::MulF32Params, &[f32], &[f32], &mut [f32]);
/// Signature of an int8 Softmax kernel variant.
pub type SoftmaxI8Fn = fn(&softmax::SoftmaxParams<'_>, &[i8], &mut [i8]);
/// Signature of an f32 Softmax kernel variant.
pub type SoftmaxF32Fn = fn(&softmax::SoftmaxF32Params, &[f32], &mut [f32]);
/// Signature of an f32 LayerNorm kernel variant.
pub type LayerNormF32Fn = fn(&layer_norm::LayerNormF32Params<'_>, &[f32], &mut [f32]);
/// Signature of an int8 → f32 Dequantize kernel variant.
pub type DequantizeFn = fn(&quantize::QuantizeParams, &[i8], &mut [f32]);
/// Signature of an int8 Mul kernel variant.
pub type MulI8Fn = fn(&mul::MulParams, &[i8], &[i8], &mut [i8]);
/// Signature of an int8 table-lookup kernel variant.
pub type LutI8Fn = fn(&lut::LutParams<'_>, &[i8], &mut [i8]);
/// Signature of an f32 GELU kernel variant.
pub type GeluF32Fn = fn(&[f32], &mut [f32]);

/// The kernel variants `eval_*` dispatches to, for the ops that have optimized variants.
///
/// [`KernelTable::reference`] holds the portable specification; optimized tables replace entries
/// with bit-exact variants. Both stay callable, so A/B runs compare them directly.
#[derive(Clone, Copy)]
pub struct KernelTable {
    /// int8 FullyConnected.
    pub fully_connected_i8: FullyConnectedI8Fn,
    /// f32 FullyConnected.
    pub fully_connected_f32: FullyConnectedF32Fn,
    /// int8 Conv2D.
    pub conv2d_i8: Conv2dI8Fn,
    /// f32 Conv2D.
    pub conv2d_f32: Conv2dF32Fn,
    /// int8 DepthwiseConv2D.
    pub depthwise_conv2d_i8: DepthwiseConv2dI8Fn,
    /// f32 DepthwiseConv2D.
    pub depthwise_conv2d_f32: DepthwiseConv2dF32Fn,
    /// int8 Conv1D.
    pub conv1d_i8: Conv1dI8Fn,
    /// f32 → int8 Quantize.
    pub quantize: QuantizeFn,
    /// int8 BatchMatMul.
    pub batch_matmul_i8: BatchMatMulI8Fn,
    /// f32 BatchMatMul.
    pub batch_matmul_f32: BatchMatMulF32Fn,
    /// int8 Add.
    pub add_i8: AddI8Fn,
    /// f32 Add.
    pub add_f32: AddF32Fn,
    /// f32 Mul.
    pub mul_f32: MulF32Fn,
    /// int8 Softmax.
    pub softmax_i8: SoftmaxI8Fn,
    /// f32 Softmax.
    pub softmax_f32: SoftmaxF32Fn,
    /// f32 LayerNorm.
    pub layer_norm_f32: LayerNormF32Fn,
    /// int8 → f32 Dequantize.
    pub dequantize: DequantizeFn,
    /// int8 Mul.
    pub mul_i8: MulI8Fn,
    /// int8 table lookup (GELU, SiLU, Sigmoid, Tanh).
    pub lut_i8: LutI8Fn,
    /// f32 GELU.
    pub gelu_f32: GeluF32Fn,
}

impl core::fmt::Debug for KernelTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KernelTable").finish_non_exhaustive()
    }
}

impl KernelTable {
    /// The portable reference kernels.
    pub const fn reference() -> KernelTable {
        KernelTable {
            fully_connected_i8: fully_connected::reference::eval_i8,
            fully_connected_f32: fully_connected::reference::eval_f32,
            conv2d_i8: conv2d::reference::eval_i8,
            conv2d_f32: conv2d::reference::eval_f32,
            depthwise_conv2d_i8: depthwise_conv2d::reference::eval_i8,
            depthwise_conv2d_f32: depthwise_conv2d::reference::eval_f32,
            conv1d_i8: conv1d::reference::eval_i8,
            quantize: quantize::reference::eval_quantize,
            batch_matmul_i8: batch_matmul::reference::eval_i8,
            batch_matmul_f32: batch_matmul::reference::eval_f32,
            add_i8: add::reference::eval_i8,
            add_f32: add::reference::eval_f32,
            mul_f32: mul::reference::eval_f32,
            softmax_i8: softmax::reference::eval_i8,
            softmax_f32: softmax::reference::eval_f32,
            layer_norm_f32: layer_norm::reference::eval_f32,
            dequantize: quantize::reference::eval_dequantize,
            mul_i8: mul::reference::eval_i8,
            lut_i8: lut::lookup_i8,
            gelu_f32: gelu::reference_f32,
        }
    }
}

/// The table for the compilation target (DSP variants on `thumbv7em-*`, NEON on aarch64).
#[cfg(not(any(test, feature = "std")))]
static COMPILE_TIME_TABLE: KernelTable = crate::arch::ops_table_compile_time();

/// The kernel table `eval_*` uses on this machine.
///
/// With `std` (and in tests): [`crate::arch::ops_table_best`], detected once (AVX2 on x86_64 when
/// the CPU has it). Without `std`: the compile-time table of the target
/// ([`crate::arch::ops_table_compile_time`]). Every entry is bit-exact to
/// [`KernelTable::reference`], which stays callable for A/B runs.
#[inline]
pub fn kernels() -> &'static KernelTable {
    #[cfg(any(test, feature = "std"))]
    {
        crate::arch::ops_table_best()
    }
    #[cfg(not(any(test, feature = "std")))]
    {
        &COMPILE_TIME_TABLE
    }
}

/// Entry `$field` of [`kernels()`], for `eval_*`'s dispatch. Without `std` it is read from the
/// compile-time table in a constant, so the call is direct and the table itself is not in the
/// binary: a firmware links only the kernels its ops call. (A static table would not do: LLVM
/// may merge two `eval_*` calls into one indirect call through a computed offset into the
/// table, which keeps every kernel the table names.)
macro_rules! kernel {
    ($field:ident) => {{
        #[cfg(any(test, feature = "std"))]
        let k = $crate::ops::kernels().$field;
        #[cfg(not(any(test, feature = "std")))]
        let k = const { $crate::arch::ops_table_compile_time().$field };
        k
    }};
}
pub(crate) use kernel;

/// The three kernels of an int8-in, int8-out op computed in f32 (the fused Softmax and LayerNorm,
/// version 2): Dequantize, the f32 op `op`, Quantize. [`QdqSteps::linked`] takes them through
/// `kernel!`, so that a firmware links these three kernels and not the whole table;
/// [`QdqSteps::from_table`] from an explicit table (the tests' reference table).
#[derive(Clone, Copy)]
pub(crate) struct QdqSteps<F> {
    pub(crate) dequantize: DequantizeFn,
    pub(crate) op: F,
    pub(crate) quantize: QuantizeFn,
}

impl<F> QdqSteps<F> {
    /// Dequantize and Quantize of this machine's kernels, around `op`.
    #[inline]
    pub(crate) fn linked(op: F) -> Self {
        QdqSteps {
            dequantize: kernel!(dequantize),
            op,
            quantize: kernel!(quantize),
        }
    }

    /// Dequantize and Quantize of `k`, around `op`.
    pub(crate) fn from_table(k: &KernelTable, op: F) -> Self {
        QdqSteps {
            dequantize: k.dequantize,
            op,
            quantize: k.quantize,
        }
    }
}

// ---- shared validation helpers for `check_*` ------------------------------------------------

pub(crate) const fn shape_err() -> Error {
    Error::KernelShapeMismatch { op: 0 }
}

pub(crate) const fn param_err() -> Error {
    Error::KernelParamInvalid { op: 0 }
}

pub(crate) const fn quant_err() -> Error {
    Error::QuantParamInvalid { op: 0 }
}

/// Number of elements of `dims`, or an error when a dimension is 0 or the product overflows.
pub(crate) fn elements(dims: &[u32]) -> Result<usize, Error> {
    let mut n: usize = 1;
    for &d in dims {
        if d == 0 {
            return Err(shape_err());
        }
        n = n.checked_mul(d as usize).ok_or(shape_err())?;
    }
    Ok(n)
}

/// `Ok` when `len == expected`.
pub(crate) fn expect_len(len: usize, expected: usize) -> Result<(), Error> {
    if len == expected {
        Ok(())
    } else {
        Err(shape_err())
    }
}

/// `Ok` when every value is in `1..=MAX_DIM`.
pub(crate) fn check_geometry(values: &[u32]) -> Result<(), Error> {
    if values.iter().all(|&v| (1..=MAX_DIM).contains(&v)) {
        Ok(())
    } else {
        Err(param_err())
    }
}

/// `Ok` when every padding is at most `MAX_DIM`.
pub(crate) fn check_padding(p: &Padding) -> Result<(), Error> {
    if [p.top, p.bottom, p.left, p.right]
        .iter()
        .all(|&v| v <= MAX_DIM)
    {
        Ok(())
    } else {
        Err(param_err())
    }
}

/// Output size of a sliding window along one axis, or an error when the window does not fit.
pub(crate) fn window_output(
    input: u32,
    pad_before: u32,
    pad_after: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
) -> Result<u32, Error> {
    let padded = input as u64 + pad_before as u64 + pad_after as u64;
    let effective = (kernel as u64 - 1) * dilation as u64 + 1;
    if stride == 0 || effective > padded {
        return Err(shape_err());
    }
    Ok(((padded - effective) / stride as u64 + 1) as u32)
}

/// `Ok` when `zp` is a valid int8 zero point.
pub(crate) fn check_zero_point(zp: i32) -> Result<(), Error> {
    if (-128..=127).contains(&zp) {
        Ok(())
    } else {
        Err(quant_err())
    }
}

/// `Ok` when `multiplier` is non-negative and `shift` is in range.
pub(crate) fn check_multiplier(multiplier: i32, shift: i32) -> Result<(), Error> {
    if multiplier >= 0 && crate::quant::shift_is_valid(shift) {
        Ok(())
    } else {
        Err(quant_err())
    }
}

/// `Ok` when both slices have `channels` entries and each pair is valid.
pub(crate) fn check_per_channel(
    multipliers: &[i32],
    shifts: &[i32],
    channels: usize,
) -> Result<(), Error> {
    if multipliers.len() != channels || shifts.len() != channels {
        return Err(shape_err());
    }
    // Every pair is judged, without an early exit, so that the loop over these constants
    // (thousands of channels per model, read at every parse) is branch-free and vectorizes; any
    // bad pair is the same error `check_multiplier` gives.
    let ok = multipliers.iter().zip(shifts).fold(true, |ok, (&m, &s)| {
        ok & (m >= 0) & crate::quant::shift_is_valid(s)
    });
    if ok {
        Ok(())
    } else {
        Err(quant_err())
    }
}

/// `Ok` when `min <= max`.
pub(crate) fn check_clamp_i8(c: ClampI8) -> Result<(), Error> {
    if c.min <= c.max {
        Ok(())
    } else {
        Err(param_err())
    }
}

/// `Ok` when `min <= max` and neither bound is NaN.
pub(crate) fn check_clamp_f32(c: ClampF32) -> Result<(), Error> {
    if c.min <= c.max {
        Ok(())
    } else {
        Err(param_err())
    }
}

/// `Ok` when an accumulation over `depth` products cannot wrap.
pub(crate) fn check_depth(depth: usize) -> Result<(), Error> {
    if depth >= 1 && depth <= MAX_ACC_DEPTH as usize {
        Ok(())
    } else {
        Err(param_err())
    }
}

/// `Ok` when `bias` is absent or has `channels` entries.
pub(crate) fn check_bias<T>(bias: Option<&[T]>, channels: usize) -> Result<(), Error> {
    match bias {
        Some(b) if b.len() != channels => Err(shape_err()),
        _ => Ok(()),
    }
}

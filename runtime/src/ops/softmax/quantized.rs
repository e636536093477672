//! The attention-score chain of an int8 QDQ graph as one op: int8 in, int8 out, the f32 softmax
//! inside (Softmax version 2 in the image format).
//!
//! A quantized transformer computes its attention weights as
//! `Quantize(Softmax(Add(Mul(Dequantize(s), c), mask)))`: five ops, four f32 tensors of
//! `[heads, rows, depth]` between them (64 KiB each for four heads of 64 × 64), and five passes
//! over memory. This op does the same arithmetic row group by row group in a small f32 scratch
//! (`2 · g · depth` values for `g` rows at a time), so the intermediates never reach the arena.
//!
//! # Arithmetic (bit-exact to the chain)
//!
//! For each element, in this order and with these roundings (each step is one f32 operation):
//!
//! 1. `d = (q − zp_in) as f32 · s_in` — [`dequantize_f32`](crate::quant::dequantize_f32);
//! 2. `m = d · c` when a pre-scale `c` is given (the `Mul` by a scalar);
//! 3. `a = m + mask[r mod mask_rows][j]` when a mask is given (the `Add` of a mask that
//!    broadcasts over the leading axes: row `r` of the input reads mask row `r mod mask_rows`);
//! 4. the f32 softmax of the row with `beta` ([`super::reference::eval_f32`]);
//! 5. `y = quantize_f32(p, s_out, zp_out)`.
//!
//! In [`eval_with`] (the specification), steps 1, 4 and 5 call the kernel table's
//! `dequantize`, `softmax_f32` and `quantize`, which are bit-exact to their references; steps
//! 2 and 3 are two separately rounded f32 operations (Rust never contracts them into a fused
//! multiply-add). So the output equals, bit for bit, what the five reference ops give; the
//! tests compare them on random shapes and values.
//!
//! Where the CPU has AVX-512 and the scratch holds two rows padded to a multiple of sixteen
//! values ([`super::avx512::quantized_fits`]), [`eval`] runs all five steps in one kernel
//! instead ([`super::avx512::eval_quantized`]): steps 1–3 straight from the int8 input, the
//! exponentials of the blocks that do not underflow only, the quantization straight into the
//! int8 output (a block whose exponentials are all `+0.0` is the zero point). It does the
//! same f32 operations per value and the same additions in the same order, so it gives the
//! same bytes; the tests compare it with the reference chain too.

use super::{SoftmaxF32Params, SoftmaxShape};
use crate::ops::quantize::QuantizeParams;
use crate::ops::QdqSteps;
use crate::Error;

/// Parameters of the fused int8 softmax.
#[derive(Debug, Clone, Copy)]
pub struct QuantizedSoftmaxParams<'a> {
    /// Sizes (rows of `depth` values).
    pub shape: SoftmaxShape,
    /// Quantization of the int8 input (the Dequantize's).
    pub input: QuantizeParams,
    /// The scalar the dequantized scores are multiplied by (`None`: no multiplication).
    pub pre_scale: Option<f32>,
    /// The additive mask, `[mask_rows, depth]` f32 values (`None`: no mask).
    pub mask: Option<&'a [f32]>,
    /// The softmax's inverse temperature.
    pub beta: f32,
    /// Quantization of the int8 output (the Quantize's).
    pub output: QuantizeParams,
}

/// Scratch values [`eval`] needs at least: two rows.
pub fn min_scratch(depth: u32) -> usize {
    2 * depth as usize
}

/// Scratch values that let [`eval`] take up to `group` rows at a time (the AVX-512 kernel
/// keeps two groups of `group` rows, one being quantized while the next is computed).
pub fn scratch_for(shape: &SoftmaxShape, group: u32) -> usize {
    2 * shape.depth as usize * group.clamp(1, shape.outer.max(1)) as usize
}

/// Validates the parameters against the input, scratch and output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check(
    p: &QuantizedSoftmaxParams<'_>,
    input_len: usize,
    scratch_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    super::check_f32(
        &SoftmaxF32Params {
            shape: p.shape,
            beta: p.beta,
        },
        input_len,
        output_len,
    )?;
    for q in [&p.input, &p.output] {
        crate::ops::quantize::check(q, 1, 1)?;
    }
    if let Some(c) = p.pre_scale {
        if !c.is_finite() {
            return Err(crate::ops::param_err());
        }
    }
    if let Some(m) = p.mask {
        let depth = p.shape.depth as usize;
        let rows = m.len() / depth;
        if m.is_empty()
            || !m.len().is_multiple_of(depth)
            || !(p.shape.outer as usize).is_multiple_of(rows)
        {
            return Err(crate::ops::shape_err());
        }
    }
    if scratch_len < min_scratch(p.shape.depth) {
        return Err(crate::ops::shape_err());
    }
    Ok(())
}

/// Runs the op: with the fused AVX-512 kernel ([`super::avx512::eval_quantized`]) where the
/// CPU has it, otherwise with the kernel table of this machine ([`crate::ops::kernels`]).
/// Requires a successful [`check`].
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval(p: &QuantizedSoftmaxParams<'_>, input: &[i8], scratch: &mut [f32], output: &mut [i8]) {
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    if super::avx512::detected()
        && super::avx512::quantized_fits(p.shape.depth as usize, scratch.len())
    {
        return super::avx512::eval_quantized_detected(p, input, scratch, output);
    }
    let steps = QdqSteps::linked(crate::ops::kernel!(softmax_f32));
    run(steps, p, input, scratch, output)
}

/// [`eval`] with an explicit kernel table: steps 1–3 in portable code into the scratch, then
/// the table's `softmax_f32` and `quantize` (the reference table gives the specification).
pub fn eval_with(
    k: &crate::ops::KernelTable,
    p: &QuantizedSoftmaxParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    let steps = QdqSteps::from_table(k, k.softmax_f32);
    run(steps, p, input, scratch, output)
}

fn run(
    k: QdqSteps<crate::ops::SoftmaxF32Fn>,
    p: &QuantizedSoftmaxParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    let depth = p.shape.depth as usize;
    if depth == 0 {
        return;
    }
    let group = (scratch.len() / (2 * depth)).max(1);
    let (a_all, b_all) = scratch.split_at_mut(scratch.len() / 2);
    let mut mask_row = 0;
    for (x, y) in input
        .chunks(group * depth)
        .zip(output.chunks_mut(group * depth))
    {
        let n = x.len();
        let (a, b) = (&mut a_all[..n], &mut b_all[..n]);
        mask_row = pre_portable(k.dequantize, p, x, a, mask_row);
        let sp = SoftmaxF32Params {
            shape: SoftmaxShape {
                outer: (n / depth) as u32,
                depth: p.shape.depth,
            },
            beta: p.beta,
        };
        (k.op)(&sp, a, b);
        (k.quantize)(&p.output, b, y);
    }
}

/// The mask rows and the row count of `p`'s mask (`(&[], 1)` without one).
pub(crate) fn mask_parts<'a>(p: &QuantizedSoftmaxParams<'a>) -> (&'a [f32], usize) {
    let depth = p.shape.depth as usize;
    match p.mask {
        Some(m) if depth > 0 && m.len() >= depth => (m, m.len() / depth),
        _ => (&[], 1),
    }
}

/// Portable steps 1–3: the kernel table's Dequantize, then the multiplication and the addition.
fn pre_portable(
    dequantize: crate::ops::DequantizeFn,
    p: &QuantizedSoftmaxParams<'_>,
    x: &[i8],
    a: &mut [f32],
    mut mr: usize,
) -> usize {
    let depth = p.shape.depth as usize;
    dequantize(&p.input, x, a);
    let (mask, mask_rows) = mask_parts(p);
    for ar in a.chunks_exact_mut(depth) {
        if let Some(c) = p.pre_scale {
            ar.iter_mut().for_each(|v| *v *= c);
        }
        if !mask.is_empty() {
            let m = &mask[mr * depth..][..depth];
            ar.iter_mut().zip(m).for_each(|(v, &w)| *v += w);
        }
        mr += 1;
        if mr == mask_rows {
            mr = 0;
        }
    }
    mr
}

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
//! Steps 1, 4 and 5 call the kernel table's `dequantize`, `softmax_f32` and `quantize`, which
//! are bit-exact to their references; steps 2 and 3 are two separately rounded f32 operations
//! (Rust never contracts them into a fused multiply-add). So the output equals, bit for bit,
//! what the five reference ops give; the tests compare them on random shapes and values.

use super::{SoftmaxF32Params, SoftmaxShape};
use crate::ops::quantize::QuantizeParams;
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

/// Scratch values that let [`eval`] take up to `group` rows at a time (the AVX-512 softmax
/// overlaps the rows of a group; 8 is its group).
pub fn scratch_for(shape: &SoftmaxShape, group: u32) -> usize {
    2 * shape.depth as usize * group.clamp(1, shape.outer.max(1)) as usize
}

/// Validates the parameters against the input, scratch and output lengths.
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

/// Runs the op with the kernel table of this machine ([`crate::ops::kernels`]), and with
/// AVX-512 for the scaling and masking where the CPU has it. Requires a successful [`check`].
pub fn eval(p: &QuantizedSoftmaxParams<'_>, input: &[i8], scratch: &mut [f32], output: &mut [i8]) {
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    if super::avx512::detected() {
        return run(
            crate::ops::kernels(),
            pre_avx512_detected,
            p,
            input,
            scratch,
            output,
        );
    }
    eval_with(crate::ops::kernels(), p, input, scratch, output)
}

/// [`eval`] with an explicit kernel table and portable scaling and masking (the reference table
/// gives the specification).
pub fn eval_with(
    k: &crate::ops::KernelTable,
    p: &QuantizedSoftmaxParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    run(k, pre_portable, p, input, scratch, output)
}

/// Steps 1–3 for `rows` whole rows: `x` (int8) to `a` (f32); `mask_row` is the mask row of the
/// first row (`< mask_rows`). Returns the mask row of the row after the last.
type PreFn =
    fn(&crate::ops::KernelTable, &QuantizedSoftmaxParams<'_>, &[i8], &mut [f32], usize) -> usize;

fn run(
    k: &crate::ops::KernelTable,
    pre: PreFn,
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
        mask_row = pre(k, p, x, a, mask_row);
        let sp = SoftmaxF32Params {
            shape: SoftmaxShape {
                outer: (n / depth) as u32,
                depth: p.shape.depth,
            },
            beta: p.beta,
        };
        (k.softmax_f32)(&sp, a, b);
        (k.quantize)(&p.output, b, y);
    }
}

/// The mask rows and the row count of `p`'s mask (`(&[], 1)` without one).
fn mask_parts<'a>(p: &QuantizedSoftmaxParams<'a>) -> (&'a [f32], usize) {
    let depth = p.shape.depth as usize;
    match p.mask {
        Some(m) if depth > 0 && m.len() >= depth => (m, m.len() / depth),
        _ => (&[], 1),
    }
}

/// Portable steps 1–3: the kernel table's Dequantize, then the multiplication and the addition.
fn pre_portable(
    k: &crate::ops::KernelTable,
    p: &QuantizedSoftmaxParams<'_>,
    x: &[i8],
    a: &mut [f32],
    mut mr: usize,
) -> usize {
    let depth = p.shape.depth as usize;
    (k.dequantize)(&p.input, x, a);
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

/// Steps 1–3 on sixteen lanes: sign-extend, subtract the zero point, convert (exact: at most
/// 255 in magnitude), multiply by the scale, by `c`, add the mask: the same f32 operations as
/// [`pre_portable`], each rounded on its own. The last `depth % 16` values of a row take the
/// scalar steps.
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
#[target_feature(enable = "avx512f")]
fn pre_avx512(p: &QuantizedSoftmaxParams<'_>, x: &[i8], a: &mut [f32], mut mr: usize) -> usize {
    use core::arch::x86_64::*;
    let depth = p.shape.depth as usize;
    let (mask, mask_rows) = mask_parts(p);
    let (zp, s) = (p.input.zero_point, p.input.scale);
    let (zp16, s16) = (_mm512_set1_epi32(zp), _mm512_set1_ps(s));
    let c16 = _mm512_set1_ps(p.pre_scale.unwrap_or(1.0));
    let full = depth - depth % 16;
    for (xr, ar) in x.chunks_exact(depth).zip(a.chunks_exact_mut(depth)) {
        let m = if mask.is_empty() {
            None
        } else {
            Some(&mask[mr * depth..][..depth])
        };
        let mut j = 0;
        while j < full {
            // SAFETY: `j + 16 <= depth` = the length of `xr`, `ar` and `m`: a 16-byte load of
            // `xr`, 64-byte accesses of `ar` and `m`, all in bounds.
            unsafe {
                let q = _mm_loadu_si128(xr.as_ptr().add(j) as *const __m128i);
                let q = _mm512_sub_epi32(_mm512_cvtepi8_epi32(q), zp16);
                let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(q), s16);
                if p.pre_scale.is_some() {
                    v = _mm512_mul_ps(v, c16);
                }
                if let Some(m) = m {
                    v = _mm512_add_ps(v, _mm512_loadu_ps(m.as_ptr().add(j)));
                }
                _mm512_storeu_ps(ar.as_mut_ptr().add(j), v);
            }
            j += 16;
        }
        for j in full..depth {
            let mut v = crate::quant::dequantize_f32(xr[j], s, zp);
            if let Some(c) = p.pre_scale {
                v *= c;
            }
            if let Some(m) = m {
                v += m[j];
            }
            ar[j] = v;
        }
        mr += 1;
        if mr == mask_rows {
            mr = 0;
        }
    }
    mr
}

#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
fn pre_avx512_detected(
    _: &crate::ops::KernelTable,
    p: &QuantizedSoftmaxParams<'_>,
    x: &[i8],
    a: &mut [f32],
    mr: usize,
) -> usize {
    // SAFETY: only called by `eval` after `softmax::avx512::detected()` (AVX512F).
    unsafe { pre_avx512(p, x, a, mr) }
}

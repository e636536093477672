//! AVX2 int8 FullyConnected, bit-exact to [`super::reference::eval_i8`].
//!
//! Rows of up to [`crate::ops::gemm_avx2::X_BUF`] inputs run through the widened 16-bit matrix
//! product of [`crate::ops::gemm_avx2`] (weights widened once per call, eight outputs requantized
//! at a time). Longer rows use four output features at a time sharing each 16-byte block of the
//! input row, sign-extended and offset once ([`crate::arch::x86::dot4_offset_i8_avx2`]). Either
//! way the accumulator is the reference's (bias plus the same wrapping sum of the same products,
//! in another order) and requantization is bit-exact to [`requantize_to_i8`].

use super::FullyConnectedParams;
use crate::arch::x86;
use crate::ops::gemm_avx2::{gemm, Epilogue};
use crate::quant::requantize_to_i8;

/// AVX2 FullyConnected.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`] (like every variant).
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let m = input.len().checked_div(k).unwrap_or(0);
    let zp = p.input_zero_point;
    let epi = Epilogue {
        bias: p.bias,
        multiplier: p.output_multiplier,
        shift: p.output_shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    };
    let x_row = |i: usize, dst: &mut [i16]| {
        for (d, &v) in dst.iter_mut().zip(&input[i * k..(i + 1) * k]) {
            *d = (v as i32 - zp) as i16;
        }
    };
    let w_row = |j: usize, dst: &mut [i16]| {
        for (d, &v) in dst.iter_mut().zip(&p.weights[j * k..(j + 1) * k]) {
            *d = v as i16;
        }
    };
    // SAFETY: the caller guarantees AVX2; `output` holds `m·n` values and the epilogue's slices
    // `n` (checked by `check_i8`).
    if unsafe { gemm(m, n, k, x_row, w_row, &epi, output) } {
        return;
    }
    // SAFETY: the caller guarantees AVX2.
    unsafe { eval_i8_dot4(p, input, output) }
}

/// The per-row dot-product form, for rows longer than the widened path's buffer.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
unsafe fn eval_i8_dot4(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let zp = p.input_zero_point;
    let bias = |o: usize| p.bias.map_or(0, |b| b[o]);
    let finish = |o: usize, acc: i32| {
        requantize_to_i8(
            acc,
            p.output_multiplier[o],
            p.output_shift[o],
            p.output_zero_point,
            p.activation.min,
            p.activation.max,
        )
    };
    for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        let mut o = 0;
        while o + 4 <= n {
            let w = |r: usize| &p.weights[(o + r) * k..(o + r + 1) * k];
            // SAFETY: the caller guarantees AVX2 (this function's contract).
            let acc = unsafe { x86::dot4_offset_i8_avx2(x, -zp, [w(0), w(1), w(2), w(3)]) };
            for (r, a) in acc.iter().enumerate() {
                y[o + r] = finish(o + r, bias(o + r).wrapping_add(*a));
            }
            o += 4;
        }
        while o < n {
            let w = &p.weights[o * k..(o + 1) * k];
            // SAFETY: the caller guarantees AVX2.
            let acc = unsafe { x86::dot_offset_i8_avx2(x, -zp, w, 0) };
            y[o] = finish(o, bias(o).wrapping_add(acc));
            o += 1;
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input, output) }
}

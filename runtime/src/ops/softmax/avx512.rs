//! AVX-512 f32 softmax, bit-exact to [`super::reference::eval_f32`] (and to [`super::avx2`]).
//!
//! The AVX2 form's steps on sixteen lanes: the row maximum with `vmaxps zmm` (the maximum of
//! the non-NaN values does not depend on the order), `exp` sixteen at a time with
//! [`fmath::avx512::exp16`](crate::ops::fmath) (bit-exact to `fmath::exp`), the scaling by
//! `1 / sum`. The sum keeps the reference's order (`fmath::sum_lanes`: element `i` into partial
//! sum `i % 8`): each block of sixteen exponentials is added to the eight partial sums as its
//! low half, then its high half. A last block of eight uses the AVX2 `exp8`, the last
//! `depth % 8` values the scalar functions.
//!
//! # Short rows
//!
//! Attention's rows are short (64 values), and row by row the kernel ran at ~2.3 ns per value,
//! a third of its throughput: each `exp16` is a chain of ~40 dependent instructions, and a few
//! of them written one after another fill the scheduler with instructions that wait. So:
//!
//! - blocks of 64 values go through [`exp16_n`](crate::ops::fmath) four at a time, step by
//!   step (the same operations per lane);
//! - rows are taken in groups (up to [`GROUP`] rows, about [`GROUP_VALUES`] values) and each
//!   step (maximum, exponentials and sum, scaling) runs for every row of the group before the
//!   next, so that the rows' horizontal reductions and divisions overlap;
//! - trailing blocks of sixteen whose arguments all lie below `exp`'s underflow threshold (the
//!   masked future of a causal attention row, `-1e4` after the mask) are stored as `+0.0`, what
//!   `exp16` gives there, and skip the `exp` work and the partial sums (adding `+0.0` to a
//!   partial sum, which is never `-0.0`, changes no bit);
//! - with no tail, the eight partial sums are reduced in registers ([`reduce8`], the order of
//!   `fmath::reduce_lanes`).
//!
//! The arithmetic of each value is unchanged: the tests compare bits with the reference.

use core::arch::x86_64::*;

use super::SoftmaxF32Params;
use crate::ops::fmath::{
    self,
    avx2::exp8,
    avx512::{exp16, exp16_n},
};

/// Most rows processed step by step together.
pub const GROUP: usize = 8;
/// `fmath::exp(x)` is `+0.0` for `x` below this (the threshold of `exp` and `exp16`).
const UNDERFLOW: f32 = -87.3;
/// Rows per group are limited to about this many values (they are read again by the last step).
pub const GROUP_VALUES: usize = 1024;

/// The maximum of the non-NaN values of `x` (`-inf` when there are none).
///
#[inline]
#[target_feature(enable = "avx512f")]
fn row_max(x: &[f32]) -> f32 {
    let mut xc = x.chunks_exact(16);
    let mut m16 = _mm512_set1_ps(f32::NEG_INFINITY);
    for c in &mut xc {
        // SAFETY: `c` has exactly 16 values: one unaligned 64-byte load.
        let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        // `vmaxps` returns its second operand when either is NaN: NaN values are skipped.
        m16 = _mm512_max_ps(v, m16);
    }
    // The lanes hold no NaN: the order of the reduction does not change the maximum (up to the
    // sign of a zero maximum, which gives the same `x - max` bits for every nonzero `x` and the
    // same `exp` for `±0`).
    let m = _mm512_reduce_max_ps(m16);
    xc.remainder()
        .iter()
        .fold(m, |m, &v| if v > m { v } else { m })
}

/// Writes `exp(beta · (x - max))` into `y` and returns its sum in the reference's order.
/// Requires `x.len() == y.len()`.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn row_exp(x: &[f32], y: &mut [f32], max: f32, beta: f32) -> f32 {
    let depth = x.len();
    let full16 = depth - depth % 16;
    let full8 = depth - depth % 8;
    let beta16 = _mm512_set1_ps(beta);
    let max16 = _mm512_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    // Adds a block of sixteen exponentials to the partial sums: elements 16b..16b+7, then
    // 16b+8..16b+15, the reference's order.
    let add16 = |acc: __m256, e: __m512| {
        let acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
        _mm256_add_ps(
            acc,
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e))),
        )
    };
    // Blocks of 64 values: four `exp16` interleaved (`exp16_n`), summed in block order. A
    // block whose sixteen arguments are all below `exp`'s underflow threshold is sixteen `+0.0`
    // (what `exp16` returns there) and adds nothing to the partial sums (`acc + 0.0 == acc`
    // bit for bit: the partial sums are never `-0.0`). Trailing blocks of that kind (the
    // masked future of a causal attention row) skip the `exp` work.
    let full64 = depth - depth % 64;
    let zero = _mm512_setzero_ps();
    let floor = _mm512_set1_ps(UNDERFLOW);
    let dead = |v: __m512| _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, floor) == 0xFFFF;
    for (yc, c) in y[..full64].chunks_exact_mut(64).zip(x.chunks_exact(64)) {
        // SAFETY: `c` has exactly 64 values: four unaligned 64-byte loads.
        let v: [__m512; 4] = core::array::from_fn(|k| unsafe {
            let v = _mm512_loadu_ps(c.as_ptr().add(16 * k));
            _mm512_mul_ps(beta16, _mm512_sub_ps(v, max16))
        });
        let live = 4 - v.iter().rev().take_while(|&&v| dead(v)).count();
        // SAFETY: AVX512F is enabled in this function.
        let e: [__m512; 4] = unsafe {
            match live {
                0 => [zero; 4],
                1 => [exp16(v[0]), zero, zero, zero],
                2 => {
                    let [a, b] = exp16_n([v[0], v[1]]);
                    [a, b, zero, zero]
                }
                3 => {
                    let [a, b, c] = exp16_n([v[0], v[1], v[2]]);
                    [a, b, c, zero]
                }
                _ => exp16_n(v),
            }
        };
        for (k, &e) in e.iter().enumerate() {
            // SAFETY: `yc` has exactly 64 values: unaligned 64-byte store at `16 * k < 64`.
            unsafe { _mm512_storeu_ps(yc.as_mut_ptr().add(16 * k), e) };
        }
        for &e in &e[..live] {
            acc = add16(acc, e);
        }
    }
    for (yc, c) in y[full64..full16]
        .chunks_exact_mut(16)
        .zip(x[full64..full16].chunks_exact(16))
    {
        // SAFETY: `c` and `yc` have exactly 16 values: unaligned 64-byte load and store.
        unsafe {
            let v = _mm512_mul_ps(beta16, _mm512_sub_ps(_mm512_loadu_ps(c.as_ptr()), max16));
            if dead(v) {
                _mm512_storeu_ps(yc.as_mut_ptr(), zero);
            } else {
                let e = exp16(v);
                _mm512_storeu_ps(yc.as_mut_ptr(), e);
                acc = add16(acc, e);
            }
        }
    }
    if full8 > full16 {
        let (c, yc) = (&x[full16..full8], &mut y[full16..full8]);
        // SAFETY: `c` and `yc` have exactly 8 values: unaligned 32-byte load and store.
        unsafe {
            let v = _mm256_loadu_ps(c.as_ptr());
            let e = exp8(_mm256_mul_ps(
                _mm256_set1_ps(beta),
                _mm256_sub_ps(v, _mm256_set1_ps(max)),
            ));
            _mm256_storeu_ps(yc.as_mut_ptr(), e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    for (yi, &xi) in y[full8..].iter_mut().zip(&x[full8..]) {
        *yi = fmath::exp(beta * (xi - max));
    }
    if full8 == depth {
        reduce8(acc)
    } else {
        // SAFETY: AVX2 is enabled in this function.
        unsafe { fmath::avx2::lanes_finish(acc, &y[full8..], |v| v) }
    }
}

/// [`fmath::reduce_lanes`] of the eight partial sums in registers:
/// `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`, the same additions (a store and scalar
/// reloads of the vector stall on store forwarding).
#[inline]
#[target_feature(enable = "avx2")]
fn reduce8(acc: __m256) -> f32 {
    // [a0 + a4, a1 + a5, a2 + a6, a3 + a7]
    let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
    // [s0 + s2, s1 + s3, ..]
    let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    // t0 + t1
    _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps::<0b01>(t, t)))
}

/// `y *= inv`.
#[inline]
#[target_feature(enable = "avx512f")]
fn row_scale(y: &mut [f32], inv: f32) {
    let inv16 = _mm512_set1_ps(inv);
    let mut yc = y.chunks_exact_mut(16);
    for c in &mut yc {
        // SAFETY: `c` has exactly 16 values: unaligned 64-byte load and store.
        unsafe {
            let v = _mm512_loadu_ps(c.as_ptr());
            _mm512_storeu_ps(c.as_mut_ptr(), _mm512_mul_ps(v, inv16));
        }
    }
    for yi in yc.into_remainder() {
        *yi *= inv;
    }
}

/// AVX-512 f32 softmax.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2,avx512f")]
pub unsafe fn eval_f32(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    let depth = p.shape.depth as usize;
    let beta = p.beta;
    let group = (GROUP_VALUES / depth.max(1)).clamp(1, GROUP);
    for (x, y) in input
        .chunks(group * depth)
        .zip(output.chunks_mut(group * depth))
    {
        let rows = x.len() / depth;
        let mut max = [0f32; GROUP];
        for (m, xr) in max.iter_mut().zip(x.chunks_exact(depth)) {
            *m = row_max(xr);
        }
        let mut inv = [0f32; GROUP];
        for ((s, &m), (xr, yr)) in inv
            .iter_mut()
            .zip(&max)
            .zip(x.chunks_exact(depth).zip(y.chunks_exact_mut(depth)))
        {
            *s = 1.0 / row_exp(xr, yr, m, beta);
        }
        for (&s, yr) in inv[..rows].iter().zip(y.chunks_exact_mut(depth)) {
            row_scale(yr, s);
        }
    }
}

/// Whether this CPU runs [`eval_f32`] (AVX2 and AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avx512f")
}

/// Safe entry for kernel tables built after [`detected`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_detected(p: &SoftmaxF32Params, input: &[f32], output: &mut [f32]) {
    debug_assert!(detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after `detected()`.
    unsafe { eval_f32(p, input, output) }
}

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
//!
//! # The fused int8 softmax
//!
//! [`eval_quantized`] runs Softmax version 2 ([`super::quantized`]) in one kernel. In the tiny
//! GPT's prefill (`[4, 64, 64]` scores, a causal mask) the chain of kernels took ~25 µs per
//! op: a dequantize/scale/mask pass, this file's f32 softmax over the scratch, and the
//! Quantize kernel, whose IEEE division (~10 cycles per sixteen values) ran alone in its pass,
//! also for the masked future (`+0.0` values, always quantized to the zero point). Here, per
//! group of rows (the scratch holds two groups, rows padded to a multiple of sixteen):
//!
//! - steps 1–3 and the row maximum in one pass from the int8 input, row by row alternating with
//!   the quantization of the previous group's rows straight into the int8 output, so that the
//!   divisions overlap the other work; a block of sixteen `±0.0` is sixteen zero points without
//!   a division;
//! - blocks whose arguments all underflow are `+0.0` at once; the others are listed and go
//!   through the exponential eight at a time, across rows
//!   ([`exp16_n_nonpositive`](crate::ops::fmath): softmax's arguments are `≤ 0` or NaN,
//!   which drops about a quarter of `exp16`'s instructions; the same bits);
//! - each row's sum runs over its blocks up to the last live one, in the reference's order.
//!
//! Measured on the prefill: ~25 µs → ~19.5 µs per op (see the commit for the runs).

use core::arch::x86_64::*;

use super::quantized::QuantizedSoftmaxParams;
use super::SoftmaxF32Params;
use crate::ops::fmath::{
    self,
    avx2::exp8,
    avx512::{exp16, exp16_n, exp16_n_nonpositive},
};
use crate::ops::quantize::avx512::Quantize16;

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

// ---------------------------------------------------------------------------------------------
// The fused int8 softmax (Softmax version 2) in one kernel.
// ---------------------------------------------------------------------------------------------

/// Most rows in a group of [`eval_quantized`].
pub const QUANTIZED_GROUP: usize = 16;
/// Blocks of sixteen whose exponentials [`exp_rows`] computes together: with two vector ports
/// and four-cycle latencies, eight independent chains keep both busy.
const EXP_BLOCKS: usize = 8;
/// Live blocks [`exp_rows`] lists before it computes their exponentials (a multiple of
/// [`EXP_BLOCKS`]).
const LIST: usize = 64;

/// The row stride of [`eval_quantized`]'s scratch: `depth` rounded up to a multiple of 16, so
/// that every block of sixteen lies within its row.
pub fn quantized_stride(depth: usize) -> usize {
    depth.next_multiple_of(16)
}

/// Whether [`eval_quantized`] can run with this scratch: two groups of at least one row.
pub fn quantized_fits(depth: usize, scratch_len: usize) -> bool {
    depth > 0 && scratch_len >= 2 * quantized_stride(depth)
}

/// Steps 1–3 of [`super::quantized`] for one row `x`, sixteen lanes at a time:
/// `a = ((q − zp) · s) · c + mask` (the multiplication by `c` and the addition only when
/// given), each step one separately rounded f32 operation, as
/// [`dequantize_f32`](crate::quant::dequantize_f32) and the reference `Mul` and `Add` compute
/// it; the conversion of `q − zp` (at most 255 in magnitude) is exact. Stores `a` into the
/// first `x.len()` values of `a` (`a.len()` is the stride, a multiple of 16 that is at least
/// `x.len()`; the other values get unspecified finite values) and returns the maximum of `a`
/// over the non-NaN values (`-inf` when there are none), which equals the reference fold's up
/// to the sign of a zero maximum (see [`row_max`]). `m` is the mask row (`x.len()` values) or
/// empty. A last block of fewer than sixteen values is read through a local buffer and a lane
/// mask.
#[inline]
#[target_feature(enable = "avx512f")]
fn pre_row(p: &QuantizedSoftmaxParams<'_>, x: &[i8], m: &[f32], a: &mut [f32]) -> f32 {
    let depth = x.len();
    let full = depth - depth % 16;
    let zp16 = _mm512_set1_epi32(p.input.zero_point);
    let s16 = _mm512_set1_ps(p.input.scale);
    let c16 = _mm512_set1_ps(p.pre_scale.unwrap_or(1.0));
    let scaled = p.pre_scale.is_some();
    // Steps 1 and 2 of sixteen int8 values.
    let scale = |q: __m128i| {
        let d = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepi8_epi32(q), zp16));
        let v = _mm512_mul_ps(d, s16);
        if scaled {
            _mm512_mul_ps(v, c16)
        } else {
            v
        }
    };
    let masked = !m.is_empty() && m.len() >= depth;
    let mut max16 = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut j = 0;
    while j < full && j + 16 <= a.len() {
        // SAFETY: `j + 16 <= full <= depth`, the length of `x` and (when `masked`) of `m`, and
        // `j + 16 <= a.len()`: a 16-byte load of `x`, 64-byte accesses of `a` and `m`.
        unsafe {
            let mut v = scale(_mm_loadu_si128(x.as_ptr().add(j) as *const __m128i));
            if masked {
                v = _mm512_add_ps(v, _mm512_loadu_ps(m.as_ptr().add(j)));
            }
            _mm512_storeu_ps(a.as_mut_ptr().add(j), v);
            // `vmaxps` returns its second operand when either is NaN: NaN values are skipped.
            max16 = _mm512_max_ps(v, max16);
        }
        j += 16;
    }
    if full < depth && full + 16 <= a.len() {
        let k = ((1u32 << (depth - full)) - 1) as __mmask16;
        let mut t = [0i8; 16];
        t[..depth - full].copy_from_slice(&x[full..]);
        // SAFETY: `t` holds sixteen bytes; `full + 16 <= a.len()`; the lanes of `k` are
        // `full..depth`, within `m` when `masked` (masked-off lanes are not read).
        unsafe {
            let mut v = scale(_mm_loadu_si128(t.as_ptr() as *const __m128i));
            if masked {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, m.as_ptr().add(full)));
            }
            _mm512_storeu_ps(a.as_mut_ptr().add(full), v);
            max16 = _mm512_mask_max_ps(max16, k, v, max16);
        }
    }
    _mm512_reduce_max_ps(max16)
}

/// Adds a block of sixteen exponentials to eight partial sums: its low half, then its high
/// half (the reference's order: element `i` into partial sum `i % 8`).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn add16(acc: __m256, e: __m512) -> __m256 {
    let acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
    _mm256_add_ps(
        acc,
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e))),
    )
}

/// Replaces the arguments at the offsets `list` (blocks of sixteen in `buf`) by their
/// exponentials ([`exp16_n_nonpositive`]), [`EXP_BLOCKS`] at a time; a last partial chunk
/// repeats its last offset (the same value is computed and stored twice).
#[inline]
#[target_feature(enable = "avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn exp_list(buf: &mut [f32], list: &[usize]) {
    let Some(&last) = list.last() else {
        return;
    };
    let n = list.len();
    let mut i = 0;
    while i < n {
        let take = (n - i).min(EXP_BLOCKS);
        let off: [usize; EXP_BLOCKS] = core::array::from_fn(|k| list[i + k.min(take - 1)]);
        debug_assert!(off.iter().all(|&o| o + 16 <= buf.len()) && last + 16 <= buf.len());
        // SAFETY: every listed offset `o` has `o + 16 <= buf.len()` (`exp_rows` lists blocks
        // of its rows): 64-byte loads and stores in bounds. AVX512F is enabled here.
        unsafe {
            if take <= 4 {
                let v: [__m512; 4] =
                    core::array::from_fn(|k| _mm512_loadu_ps(buf.as_ptr().add(off[k])));
                let e = exp16_n_nonpositive(v);
                for (k, e) in e.into_iter().enumerate() {
                    _mm512_storeu_ps(buf.as_mut_ptr().add(off[k]), e);
                }
            } else {
                let v: [__m512; EXP_BLOCKS] =
                    core::array::from_fn(|k| _mm512_loadu_ps(buf.as_ptr().add(off[k])));
                let e = exp16_n_nonpositive(v);
                for (k, e) in e.into_iter().enumerate() {
                    _mm512_storeu_ps(buf.as_mut_ptr().add(off[k]), e);
                }
            }
        }
        i += take;
    }
}

/// Step 4 up to the sums for the rows of `buf` (`stride` values each, the first `depth` of
/// them the row's `a`): replaces each row's values by `exp(beta · (a − max[r]))` (and the
/// values past `depth` by `+0.0`) and writes `1 / sum` of each row into `inv`, the sum in the
/// reference's order (element `i` into partial sum `i % 8`, then [`reduce8`]).
///
/// First each block's arguments `v = beta · (a − max)` (`≤ 0` or NaN, since `a ≤ max`); a
/// block whose arguments all lie below `exp`'s underflow threshold is sixteen `+0.0` (what
/// `exp` gives there) at once; the others are listed, with `-inf` (whose `exp` is `+0.0`)
/// in the lanes past `depth`, and go through [`exp_list`], eight blocks of any rows at a
/// time (their dependency chains overlap). Then each row's blocks are added to its eight
/// partial sums, low half then high half; the `+0.0` values change no partial sum (`acc +
/// 0.0 == acc` bit for bit: the partial sums are never `-0.0`).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn exp_rows(buf: &mut [f32], stride: usize, depth: usize, max: &[f32], beta: f32, inv: &mut [f32]) {
    let rows = max.len().min(inv.len()).min(buf.len() / stride.max(1));
    let beta16 = _mm512_set1_ps(beta);
    let zero = _mm512_setzero_ps();
    let floor = _mm512_set1_ps(UNDERFLOW);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut list = [0usize; LIST];
    let mut n = 0;
    // Per row, the end of its last live block (the blocks after it are all `+0.0`).
    let mut live_end = [0usize; QUANTIZED_GROUP];
    let full = depth - depth % 16;
    for ((r, &m), end) in max[..rows].iter().enumerate().zip(live_end.iter_mut()) {
        let max16 = _mm512_set1_ps(m);
        let mut j = 0;
        while j < depth {
            // The lanes that hold values of the row: all sixteen but in a last partial block.
            let k = if j < full {
                0xFFFF
            } else {
                ((1u32 << (depth - j)) - 1) as __mmask16
            };
            let off = r * stride + j;
            // SAFETY: `r < rows`, `j < depth <= stride` and `j` and `stride` are multiples of
            // 16: `off + 16 <= (r + 1) · stride <= buf.len()`. A 64-byte load and store.
            unsafe {
                let a = _mm512_loadu_ps(buf.as_ptr().add(off));
                let v = _mm512_mul_ps(beta16, _mm512_sub_ps(a, max16));
                if _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(k, v, floor) == k {
                    _mm512_storeu_ps(buf.as_mut_ptr().add(off), zero);
                } else {
                    let v = if j < full {
                        v
                    } else {
                        _mm512_mask_blend_ps(k, ninf, v)
                    };
                    _mm512_storeu_ps(buf.as_mut_ptr().add(off), v);
                    *end = j + 16;
                    list[n] = off;
                    n += 1;
                    if n == LIST {
                        exp_list(buf, &list);
                        n = 0;
                    }
                }
            }
            j += 16;
        }
    }
    exp_list(buf, &list[..n]);
    for ((r, s), &end) in inv[..rows].iter_mut().enumerate().zip(&live_end) {
        let mut acc = _mm256_setzero_ps();
        let mut j = 0;
        while j < end {
            // SAFETY: as above, a 64-byte load within row `r` (`end <= stride`).
            acc = add16(acc, unsafe {
                _mm512_loadu_ps(buf.as_ptr().add(r * stride + j))
            });
            j += 16;
        }
        *s = 1.0 / reduce8(acc);
    }
}

/// Step 4's scaling and step 5 for one row: `y = quantize(e · inv)`, sixteen lanes at a time
/// with [`Quantize16`] (the AVX-512 `quantize` kernel's step, bit-exact to
/// [`quantize_f32`](crate::quant::quantize_f32)). `e` is the row's stride (a multiple of 16,
/// at least `y.len()`). A block whose sixteen exponentials are all zero (the masked future of a
/// causal attention row) is sixteen zero points: `±0 · inv` is `±0` or NaN (`inv` NaN or
/// infinite), and `quantize_f32` maps `±0` and NaN to the zero point, which is in
/// `[-128, 127]`. A last block of fewer than sixteen values goes through a local buffer.
#[inline]
#[target_feature(enable = "avx512f")]
fn quantize_row(e: &[f32], inv: f32, q16: &Quantize16, zp8: __m128i, y: &mut [i8]) {
    let depth = y.len();
    let inv16 = _mm512_set1_ps(inv);
    let zero = _mm512_setzero_ps();
    let mut j = 0;
    while j + 16 <= depth && j + 16 <= e.len() {
        // SAFETY: `j + 16` is at most both lengths: a 64-byte load and a 16-byte store.
        unsafe {
            let v = _mm512_loadu_ps(e.as_ptr().add(j));
            // Unordered (NaN) lanes compare not-equal: only all-`±0` blocks take the shortcut.
            let b = if _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, zero) == 0 {
                zp8
            } else {
                q16.apply(_mm512_mul_ps(v, inv16))
            };
            _mm_storeu_si128(y.as_mut_ptr().add(j) as *mut __m128i, b);
        }
        j += 16;
    }
    if j < depth && j + 16 <= e.len() {
        let mut t = [0i8; 16];
        // SAFETY: `j + 16 <= e.len()`: a 64-byte load; `t` holds sixteen bytes.
        unsafe {
            let v = _mm512_loadu_ps(e.as_ptr().add(j));
            _mm_storeu_si128(
                t.as_mut_ptr() as *mut __m128i,
                q16.apply(_mm512_mul_ps(v, inv16)),
            );
        }
        y[j..].copy_from_slice(&t[..depth - j]);
    }
}

/// The fused int8 softmax ([`super::quantized`]) in one kernel. The scratch holds two groups
/// of up to [`QUANTIZED_GROUP`] rows, each row padded to [`quantized_stride`] values. Per
/// group: steps 1–3 on sixteen lanes straight from the int8 input into the scratch, with each
/// row's maximum ([`pre_row`]), row by row alternating with the scaling and quantization of
/// the previous group's rows straight into the int8 output ([`quantize_row`]: its divisions
/// overlap the other work); then the exponentials of all the group's live blocks, eight at a
/// time, and the rows' `1 / sum` ([`exp_rows`]). Each value goes through the same f32
/// operations as in the chain of reference kernels, and each sum through the same additions
/// in the same order, so the bytes are equal (the tests compare them).
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::quantized::check`]
/// and [`quantized_fits`]`(depth, scratch.len())`.
#[target_feature(enable = "avx2,avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_quantized(
    p: &QuantizedSoftmaxParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    let depth = p.shape.depth as usize;
    if !quantized_fits(depth, scratch.len()) {
        return;
    }
    let stride = quantized_stride(depth);
    let n = input.len().min(output.len()) / depth * depth;
    let group = (scratch.len() / (2 * stride))
        .min(GROUP_VALUES / depth)
        .clamp(1, QUANTIZED_GROUP);
    let (mask, mask_rows) = super::quantized::mask_parts(p);
    let q16 = Quantize16::new(&p.output);
    let zp8 = _mm_set1_epi8(p.output.zero_point as i8);
    let (mut cur, mut old) = scratch[..2 * group * stride].split_at_mut(group * stride);
    let mut prev: Option<&mut [i8]> = None;
    let mut prev_inv = [0f32; QUANTIZED_GROUP];
    let mut mr = 0;
    for (x, y) in input[..n]
        .chunks(group * depth)
        .zip(output[..n].chunks_mut(group * depth))
    {
        let rows = x.len() / depth;
        let mut max = [0f32; QUANTIZED_GROUP];
        // Steps 1–3 of this group's rows, each followed by the quantization of the previous
        // group's row of the same index (if any).
        let mut done = prev.as_deref_mut().map(|py| {
            py.chunks_exact_mut(depth)
                .zip(old.chunks_exact(stride))
                .zip(prev_inv.iter())
        });
        for ((xr, ar), m) in x
            .chunks_exact(depth)
            .zip(cur.chunks_exact_mut(stride))
            .zip(max.iter_mut())
        {
            let mrow = mask.get(mr * depth..(mr + 1) * depth).unwrap_or(&[]);
            *m = pre_row(p, xr, mrow, ar);
            mr += 1;
            if mr == mask_rows {
                mr = 0;
            }
            if let Some(((yr, er), &s)) = done.as_mut().and_then(|d| d.next()) {
                quantize_row(er, s, &q16, zp8, yr);
            }
        }
        // The previous group's rows left (when it had more rows than this one).
        for ((yr, er), &s) in done.into_iter().flatten() {
            quantize_row(er, s, &q16, zp8, yr);
        }
        exp_rows(
            cur,
            stride,
            depth,
            &max[..rows],
            p.beta,
            &mut prev_inv[..rows],
        );
        prev = Some(y);
        core::mem::swap(&mut cur, &mut old);
    }
    if let Some(py) = prev {
        for ((yr, er), &s) in py
            .chunks_exact_mut(depth)
            .zip(old.chunks_exact(stride))
            .zip(prev_inv.iter())
        {
            quantize_row(er, s, &q16, zp8, yr);
        }
    }
}

/// Safe entry, called after [`detected`]; requires a successful [`super::quantized::check`]
/// and [`quantized_fits`]`(depth, scratch.len())`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_quantized_detected(
    p: &QuantizedSoftmaxParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    debug_assert!(detected());
    // SAFETY: only called by `super::quantized::eval` after `detected()` (AVX2 and AVX512F).
    unsafe { eval_quantized(p, input, scratch, output) }
}

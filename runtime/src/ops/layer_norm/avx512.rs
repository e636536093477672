//! AVX-512 fused int8 LayerNorm (`Quantize(LayerNorm(Dequantize(x)))`), bit-exact to
//! [`super::quantized::eval_with`] with any kernel table (they all give the reference's bytes).
//!
//! The three-kernel path dequantizes a group of rows into an f32 scratch, normalizes it into a
//! second one (AVX2, eight lanes) and quantizes that: three kernels and five passes over f32
//! memory. Here each row is dequantized once into the scratch (sixteen lanes), then read back
//! for the variance and once more for `((x − mean) · inv) · γ + β` and the quantization, which
//! write the int8 output directly; four rows at a time, their reductions interleaved (each is a
//! chain of dependent vector adds).
//!
//! # Arithmetic (bit-exact to the chain)
//!
//! Per value, in this order and with these roundings (each step one f32 operation, separate
//! multiplies and adds, never a fused multiply-add):
//!
//! 1. `d = (q − zp_in) as f32 · s_in` — [`dequantize_f32`] (`vpmovsxbd`, `vpsubd`, `vcvtdq2ps`
//!    with round to nearest, `vmulps`: the AVX2 `dequantize`'s steps on sixteen lanes);
//! 2. `mean = sum_lanes(d) / cols`, `var = sum_lanes((d − mean)²) / cols`,
//!    `inv = 1 / fmath::sqrt(var + ε)`, as [`super::reference::eval_f32`] computes them. The
//!    sums keep [`fmath::sum_lanes`]'s order (element `i` into partial sum `i % 8`): a block of
//!    sixteen is added to the eight partial sums as its low half, then its high half (the order
//!    of two blocks of eight); a last block of eight is one AVX2 add; the last `cols % 8` values
//!    go to the first partial sums in scalar code, and the partial sums are combined by
//!    [`fmath::reduce_lanes`] ([`lanes_finish`]), as in [`super::avx2`];
//! 3. `o = ((d − mean) · inv) · γᵢ + βᵢ`;
//! 4. `y = quantize_f32(o, s_out, zp_out)` — the AVX-512 `quantize` kernel's step
//!    ([`Quantize16`]): IEEE `vdivps`, round to nearest even with `vrndscaleps`, NaN to 0, clamp to `[-512, 512]`,
//!    exact conversion, zero point, `vpmovsdb` (saturation to int8). The last `cols % 16` values
//!    use [`quantize_f32`] itself.
//!
//! Every value thus goes through the same operations as in the chain, and the sums through the
//! same additions in the same order, so the bytes are equal; the tests compare them with the
//! reference chain.

use core::arch::x86_64::*;

use super::quantized::QuantizedLayerNormParams;
use crate::ops::fmath::{self, avx2::lanes_finish};
use crate::ops::quantize::avx512::Quantize16;
use crate::quant::{dequantize_f32, quantize_f32};

/// Rows normalized together (their reductions are independent dependency chains).
const ROWS: usize = 4;

/// AVX-512 fused int8 LayerNorm.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful
/// [`super::quantized::check`] and `scratch.len() >= p.norm.cols`.
#[target_feature(enable = "avx2,avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_quantized(
    p: &QuantizedLayerNormParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    let c = p.norm.cols as usize;
    if c == 0 || scratch.len() < c {
        return;
    }
    let n = input.len().min(output.len());
    let (input, output) = (&input[..n], &mut output[..n]);
    let mut rest = 0;
    if scratch.len() >= ROWS * c {
        let mut xs = input.chunks_exact(ROWS * c);
        let mut ys = output.chunks_exact_mut(ROWS * c);
        for (x, y) in (&mut xs).zip(&mut ys) {
            // SAFETY: AVX2 and AVX512F are enabled in this function; `x`, `y` and the scratch
            // hold `ROWS` rows.
            unsafe { rows::<ROWS>(p, x, &mut scratch[..ROWS * c], y) };
        }
        rest = n - xs.remainder().len();
    }
    for (x, y) in input[rest..]
        .chunks_exact(c)
        .zip(output[rest..].chunks_exact_mut(c))
    {
        // SAFETY: as above, one row.
        unsafe { rows::<1>(p, x, &mut scratch[..c], y) };
    }
}

/// Adds a block of sixteen values to the eight partial sums: its low half, then its high half
/// (the reference's order for elements `16b..16b+7`, then `16b+8..16b+15`).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn add16(acc: __m256, v: __m512) -> __m256 {
    let acc = _mm256_add_ps(acc, _mm512_castps512_ps256(v));
    _mm256_add_ps(
        acc,
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
    )
}

/// Normalizes the `R` rows of `x` into `y` through `buf` (`R` rows of f32), each exactly as
/// the chain does, with the rows' reductions interleaved.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. `x`, `buf` and `y` hold `R` rows of `p.norm.cols`
/// values, `p.norm.gamma` and `p.norm.beta` at least `p.norm.cols`.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn rows<const R: usize>(
    p: &QuantizedLayerNormParams<'_>,
    x: &[i8],
    buf: &mut [f32],
    y: &mut [i8],
) {
    let c = p.norm.cols as usize;
    let full16 = c - c % 16;
    let full8 = c - c % 8;
    let (gamma, beta) = (&p.norm.gamma[..c], &p.norm.beta[..c]);
    assert!(x.len() >= R * c && buf.len() >= R * c && y.len() >= R * c);
    let (xp, bp) = (x.as_ptr(), buf.as_mut_ptr());
    let (s_in, zp_in) = (p.input.scale, p.input.zero_point);

    // Step 1 and the sum: dequantize into `buf`.
    let scale16 = _mm512_set1_ps(s_in);
    let zp16 = _mm512_set1_epi32(zp_in);
    let mut acc = [_mm256_setzero_ps(); R];
    for b in (0..full16).step_by(16) {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: `r·c + b + 16 <= r·c + full16 <= R·c` values of `x` and `buf` (asserted
            // above): an unaligned 16-byte load and an unaligned 64-byte store.
            let d = unsafe {
                let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(xp.add(r * c + b) as *const __m128i));
                let d = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, zp16)), scale16);
                _mm512_storeu_ps(bp.add(r * c + b), d);
                d
            };
            *a = add16(*a, d);
        }
    }
    if full8 > full16 {
        let scale8 = _mm256_set1_ps(s_in);
        let zp8 = _mm256_set1_epi32(zp_in);
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: `r·c + full16 + 8 = r·c + full8 <= R·c` values of `x` and `buf`: an
            // unaligned 8-byte load and an unaligned 32-byte store.
            let d = unsafe {
                let q =
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(xp.add(r * c + full16) as *const __m128i));
                let d = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, zp8)), scale8);
                _mm256_storeu_ps(bp.add(r * c + full16), d);
                d
            };
            *a = _mm256_add_ps(*a, d);
        }
    }
    let mut mean = [0f32; R];
    for (r, m) in mean.iter_mut().enumerate() {
        let row = r * c..(r + 1) * c;
        for (d, &q) in buf[row.clone()][full8..].iter_mut().zip(&x[row][full8..]) {
            *d = dequantize_f32(q, s_in, zp_in);
        }
        // SAFETY: AVX2 is enabled in this function.
        *m = unsafe { lanes_finish(acc[r], &buf[r * c + full8..(r + 1) * c], |v| v) } / c as f32;
    }

    // The sum of squared deviations (`buf` is only read from here on).
    let bp = buf.as_ptr();
    let mean16: [__m512; R] = core::array::from_fn(|r| _mm512_set1_ps(mean[r]));
    let mut acc = [_mm256_setzero_ps(); R];
    for b in (0..full16).step_by(16) {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: as in the first pass: an unaligned 64-byte load of `buf`.
            let d = _mm512_sub_ps(unsafe { _mm512_loadu_ps(bp.add(r * c + b)) }, mean16[r]);
            *a = add16(*a, _mm512_mul_ps(d, d));
        }
    }
    if full8 > full16 {
        for (r, a) in acc.iter_mut().enumerate() {
            let m8 = _mm256_set1_ps(mean[r]);
            // SAFETY: as in the first pass: an unaligned 32-byte load of `buf`.
            let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(bp.add(r * c + full16)) }, m8);
            *a = _mm256_add_ps(*a, _mm256_mul_ps(d, d));
        }
    }
    let mut inv = [0f32; R];
    for (r, iv) in inv.iter_mut().enumerate() {
        let m = mean[r];
        let tail = &buf[r * c + full8..(r + 1) * c];
        // SAFETY: AVX2 is enabled in this function.
        let var = unsafe { lanes_finish(acc[r], tail, |v| (v - m) * (v - m)) } / c as f32;
        *iv = 1.0 / fmath::sqrt(var + p.norm.epsilon);
    }

    // Steps 3 and 4, straight into `y`.
    let (s_out, zp_out) = (p.output.scale, p.output.zero_point);
    let q16 = Quantize16::new(&p.output);
    for r in 0..R {
        let yp = y.as_mut_ptr();
        let inv16 = _mm512_set1_ps(inv[r]);
        for b in (0..full16).step_by(16) {
            // SAFETY: `r·c + b + 16 <= R·c` values of `buf` and `y`, `b + 16 <= c` of `gamma`
            // and `beta`: unaligned 64-byte loads and one unaligned 16-byte store.
            unsafe {
                let d = _mm512_sub_ps(_mm512_loadu_ps(bp.add(r * c + b)), mean16[r]);
                let v = _mm512_mul_ps(
                    _mm512_mul_ps(d, inv16),
                    _mm512_loadu_ps(gamma.as_ptr().add(b)),
                );
                let o = _mm512_add_ps(v, _mm512_loadu_ps(beta.as_ptr().add(b)));
                _mm_storeu_si128(yp.add(r * c + b) as *mut __m128i, q16.apply(o));
            }
        }
        let (m, iv) = (mean[r], inv[r]);
        for i in full16..c {
            let o = (buf[r * c + i] - m) * iv * gamma[i] + beta[i];
            y[r * c + i] = quantize_f32(o, s_out, zp_out);
        }
    }
}

/// Whether this CPU runs [`eval_quantized`] (AVX2 and AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avx512f")
}

/// Safe entry, called after [`detected`]; requires a successful [`super::quantized::check`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_quantized_detected(
    p: &QuantizedLayerNormParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    debug_assert!(detected());
    // SAFETY: only called by `super::quantized::eval` after `detected()`.
    unsafe { eval_quantized(p, input, scratch, output) }
}

//! AVX2 int8 Conv2D, bit-exact to [`super::reference::eval_i8`].
//!
//! The convolution runs as a matrix product over 16-bit lanes, with every operand widened once:
//!
//! - A block of output channels' weights (OHWI rows of `kh·kw·in_c` int8 values) is widened to
//!   int16 on the stack, each row padded with zeros to a multiple of 16 (at most
//!   [`W_BUF`] values per block; more output channels take several blocks).
//! - For each output pixel, its receptive field (the patch) is written once as int16
//!   `x - input_zero_point`, in the weights' `(ky, kx, c)` order. Taps in the padding are written
//!   as 0, which is exactly what the reference's skipped taps contribute; so are the lanes past the
//!   patch's end.
//! - Four output channels at a time, `vpmaddwd` multiplies 16 patch lanes by 16 weight lanes and
//!   adds pairs into 32-bit lanes (`|x - zp| ≤ 255`, `|w| ≤ 128`: each pair sum is below 2¹⁷,
//!   exact), accumulated with wrapping 32-bit adds and reduced with `vphaddd` (wrapping).
//!
//! Every accumulator is therefore the bias plus the reference's products, summed modulo 2³² in
//! another order: the same `i32`, requantized eight channels at a time by
//! [`crate::arch::x86::requantize8_avx2`] (bit-exact to [`crate::quant::requantize_to_i8`]; remainders call it). Patches longer
//! than [`X_BUF`] lanes use the per-tap dot-product loop ([`super::dot_variant`]).
//! Nothing is allocated: the two buffers live on the stack (20 KiB).

use core::arch::x86_64::*;

use super::reference::tap;
use super::Conv2dParams;
use crate::ops::gemm_avx2::Epilogue;

/// int16 weight values held per block of output channels.
const W_BUF: usize = 8192;
/// Largest patch (`kh·kw·in_c`, rounded up to 16) the widened path handles.
const X_BUF: usize = 2048;

/// AVX2 Conv2D.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let epi = epilogue(p);
    let s = &p.shape;
    let [n, h, w, in_c] = s.input;
    let [_, oh, ow, out_c] = s.output;
    let [kh, kw] = s.kernel;
    let (n, h, w, in_c) = (n as usize, h as usize, w as usize, in_c as usize);
    let (oh, ow, out_c, kh, kw) = (
        oh as usize,
        ow as usize,
        out_c as usize,
        kh as usize,
        kw as usize,
    );
    let depth = kh * kw * in_c;
    let k16 = depth.div_ceil(16) * 16;
    if k16 > X_BUF {
        return super::dot_variant::eval_i8_with(p, input, output, |x, xo, wt| {
            // SAFETY: the caller guarantees AVX2 (this function's contract).
            unsafe { crate::arch::x86::dot_offset_i8_avx2(x, xo, wt, 0) }
        });
    }
    // Rows per block: a multiple of 4 that fits the buffer (k16 ≤ X_BUF = W_BUF / 4).
    let block = ((W_BUF / k16) / 4 * 4).min(out_c);
    let zp = p.input_zero_point;
    let mut ws = [0i16; W_BUF];
    let mut xs = [0i16; X_BUF];
    let mut oc0 = 0;
    while oc0 < out_c {
        let rows = block.min(out_c - oc0);
        for r in 0..rows {
            let src = &p.weights[(oc0 + r) * depth..(oc0 + r + 1) * depth];
            let dst = &mut ws[r * k16..(r + 1) * k16];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = v as i16;
            }
            dst[depth..].fill(0);
        }
        let mut pixel = 0;
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    // The patch; lanes `depth..k16` stay 0 from the buffer's initialisation.
                    for ky in 0..kh {
                        let iy = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h as u32);
                        for kx in 0..kw {
                            let ix =
                                tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w as u32);
                            let dst = &mut xs[(ky * kw + kx) * in_c..(ky * kw + kx + 1) * in_c];
                            match (iy, ix) {
                                (Some(iy), Some(ix)) => {
                                    let x0 = ((b * h + iy) * w + ix) * in_c;
                                    for (d, &v) in dst.iter_mut().zip(&input[x0..x0 + in_c]) {
                                        *d = (v as i32 - zp) as i16;
                                    }
                                }
                                _ => dst.fill(0),
                            }
                        }
                    }
                    let out = &mut output[pixel * out_c + oc0..pixel * out_c + oc0 + rows];
                    let x = &xs[..k16];
                    let mut r = 0;
                    while r + 8 <= rows {
                        // SAFETY: the caller guarantees AVX2; `oc0 + r + 8 <= out_c`.
                        unsafe {
                            let lo = dot4_i16_v(x, &ws[r * k16..(r + 4) * k16]);
                            let hi = dot4_i16_v(x, &ws[(r + 4) * k16..(r + 8) * k16]);
                            let sum = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
                            epi.eight(oc0 + r, sum, &mut out[r..r + 8]);
                        }
                        r += 8;
                    }
                    while r + 4 <= rows {
                        // SAFETY: the caller guarantees AVX2.
                        let acc = unsafe { dot4_i16(x, &ws[r * k16..(r + 4) * k16]) };
                        for (j, a) in acc.iter().enumerate() {
                            out[r + j] = epi.one(oc0 + r + j, *a);
                        }
                        r += 4;
                    }
                    while r < rows {
                        // SAFETY: the caller guarantees AVX2.
                        let a = unsafe { dot1_i16(x, &ws[r * k16..(r + 1) * k16]) };
                        out[r] = epi.one(oc0 + r, a);
                        r += 1;
                    }
                    pixel += 1;
                }
            }
        }
        oc0 += rows;
    }
}

/// Bias and the reference's requantization of each output channel.
fn epilogue<'a>(p: &Conv2dParams<'a>) -> Epilogue<'a> {
    Epilogue {
        bias: p.bias,
        multiplier: p.output_multiplier,
        shift: p.output_shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    }
}

/// `[Σ_k x[k]·w[r·len + k]]` for `r < 4`, `len = x.len()` (a multiple of 16), wrapping int32.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot4_i16(x: &[i16], w: &[i16]) -> [i32; 4] {
    let mut out = [0i32; 4];
    // SAFETY: the caller guarantees AVX2; `out` is 16 writable bytes (unaligned store).
    unsafe {
        _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, dot4_i16_v(x, w));
    }
    out
}

/// [`dot4_i16`] as one vector of the four sums.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot4_i16_v(x: &[i16], w: &[i16]) -> __m128i {
    let len = x.len();
    assert!(len % 16 == 0 && w.len() >= 4 * len);
    let (xp, wp) = (x.as_ptr(), w.as_ptr());
    let mut a = [_mm256_setzero_si256(); 4];
    let mut i = 0;
    while i < len {
        // SAFETY: `i + 16 <= len` (len is a multiple of 16) and row `r < 4` ends at
        // `(r + 1)·len <= w.len()` (asserted above), so each 32-byte load is in bounds.
        unsafe {
            let xv = _mm256_loadu_si256(xp.add(i) as *const __m256i);
            for (r, acc) in a.iter_mut().enumerate() {
                let wv = _mm256_loadu_si256(wp.add(r * len + i) as *const __m256i);
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(xv, wv));
            }
        }
        i += 16;
    }
    hsum4_v(a)
}

/// `Σ_k x[k]·w[k]` over `x.len()` (a multiple of 16) lanes, wrapping int32.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot1_i16(x: &[i16], w: &[i16]) -> i32 {
    let len = x.len();
    assert!(len % 16 == 0 && w.len() >= len);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i < len {
        // SAFETY: `i + 16 <= len <= w.len()` (asserted above).
        unsafe {
            let xv = _mm256_loadu_si256(x.as_ptr().add(i) as *const __m256i);
            let wv = _mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, wv));
        }
        i += 16;
    }
    let z = _mm256_setzero_si256();
    _mm_cvtsi128_si32(hsum4_v([acc, z, z, z]))
}

/// The lane sums of four vectors (wrapping), in order, as one vector.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum4_v(a: [__m256i; 4]) -> __m128i {
    // [a0 01, a0 23, a1 01, a1 23 | a0 45, a0 67, a1 45, a1 67], the same for a2, a3.
    let s01 = _mm256_hadd_epi32(a[0], a[1]);
    let s23 = _mm256_hadd_epi32(a[2], a[3]);
    // [a0 0-3, a1 0-3, a2 0-3, a3 0-3 | a0 4-7, a1 4-7, a2 4-7, a3 4-7]
    let s = _mm256_hadd_epi32(s01, s23);
    _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input, output) }
}

//! AVX2 int8 DepthwiseConv2D, bit-exact to [`super::reference::eval_i8`].
//!
//! With depth multiplier 1, output channel `c` reads input channel `c`, and both the input pixel
//! (NHWC) and the weights of one tap (`[kh, kw, c]`) are contiguous over channels. Sixteen
//! channels at a time: inputs and weights are sign-extended to 16-bit lanes, `x - zp` (in
//! `[-255, 255]`) times `w` (in `[-128, 127]`) is exact in 16 bits (`|p| ≤ 32 640`), and each
//! product is sign-extended to 32 bits and added (wrapping) to an accumulator that starts at the
//! bias. Taps in the padding are skipped, as in the reference. The accumulators are the
//! reference's `i32`s, requantized eight at a time by [`crate::arch::x86::requantize8_avx2`] (bit-exact to
//! [`crate::quant::requantize_to_i8`]). Remaining channels
//! (fewer than 16) and other depth multipliers use the reference loops.

use core::arch::x86_64::*;

use super::DepthwiseConv2dParams;
use crate::ops::conv2d::reference::tap;
use crate::ops::gemm_avx2::Epilogue;

/// AVX2 DepthwiseConv2D.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let epi = epilogue(p);
    if p.depth_multiplier != 1 {
        return super::reference::eval_i8(p, input, output);
    }
    let s = &p.shape;
    let [n, h, w, c] = s.input;
    let [_, oh, ow, _] = s.output;
    let [kh, kw] = s.kernel;
    let (n, h, w, c) = (n as usize, h as usize, w as usize, c as usize);
    let (oh, ow, kh, kw) = (oh as usize, ow as usize, kh as usize, kw as usize);
    let zp = p.input_zero_point;
    let zpv = _mm256_set1_epi16(zp as i16);
    let c16 = c / 16 * 16;
    let mut pixel = 0;
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let out = &mut output[pixel * c..(pixel + 1) * c];
                let mut ch = 0;
                while ch < c16 {
                    let (mut lo, mut hi) = match p.bias {
                        // SAFETY: `ch + 16 <= c16 <= c = bias.len()` (checked by `check_i8`).
                        Some(bias) => unsafe {
                            (
                                _mm256_loadu_si256(bias.as_ptr().add(ch) as *const __m256i),
                                _mm256_loadu_si256(bias.as_ptr().add(ch + 8) as *const __m256i),
                            )
                        },
                        None => (_mm256_setzero_si256(), _mm256_setzero_si256()),
                    };
                    for ky in 0..kh {
                        let Some(iy) =
                            tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h as u32)
                        else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(ix) =
                                tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w as u32)
                            else {
                                continue;
                            };
                            let x = &input[((b * h + iy) * w + ix) * c + ch..][..16];
                            let wt = &p.weights[(ky * kw + kx) * c + ch..][..16];
                            // SAFETY: `x` and `wt` are 16-element slices (bounds-checked above).
                            let (xv, wv) = unsafe {
                                (
                                    _mm_loadu_si128(x.as_ptr() as *const __m128i),
                                    _mm_loadu_si128(wt.as_ptr() as *const __m128i),
                                )
                            };
                            let xs = _mm256_sub_epi16(_mm256_cvtepi8_epi16(xv), zpv);
                            let prod = _mm256_mullo_epi16(xs, _mm256_cvtepi8_epi16(wv));
                            lo = _mm256_add_epi32(
                                lo,
                                _mm256_cvtepi16_epi32(_mm256_castsi256_si128(prod)),
                            );
                            hi = _mm256_add_epi32(
                                hi,
                                _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(prod)),
                            );
                        }
                    }
                    // SAFETY: the caller guarantees AVX2.
                    unsafe {
                        epi.eight(ch, lo, &mut out[ch..ch + 8]);
                        epi.eight(ch + 8, hi, &mut out[ch + 8..ch + 16]);
                    }
                    ch += 16;
                }
                for (oc, y) in out.iter_mut().enumerate().skip(c16) {
                    let mut acc: i32 = p.bias.map_or(0, |bias| bias[oc]);
                    for ky in 0..kh {
                        let Some(iy) =
                            tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h as u32)
                        else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(ix) =
                                tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w as u32)
                            else {
                                continue;
                            };
                            let xi = input[((b * h + iy) * w + ix) * c + oc];
                            let wi = p.weights[(ky * kw + kx) * c + oc];
                            acc = acc.wrapping_add((xi as i32 - zp) * wi as i32);
                        }
                    }
                    *y = epi.one(oc, acc);
                }
                pixel += 1;
            }
        }
    }
}

/// The reference's requantization of each output channel (the bias is already in the sums).
fn epilogue<'a>(p: &DepthwiseConv2dParams<'a>) -> Epilogue<'a> {
    Epilogue {
        bias: None,
        multiplier: p.output_multiplier,
        shift: p.output_shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input, output) }
}

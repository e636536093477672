//! x86-64 f32 DepthwiseConv2D (AVX and AVX-512F), bit-exact to [`super::reference::eval_f32`].
//!
//! The reference computes each output `(pixel, oc)` as `bias[oc]` (or `0.0`) followed by
//! `acc += x·w` over the taps `(ky, kx)` in row-major order, skipping the taps that fall in the
//! padding (a rounded product, then a rounded sum; no fused multiply-add); then the fused clamp.
//! With a depth multiplier of 1 both the input pixel's channels and the weights of a tap
//! (`[kh, kw, c]`) are contiguous, so these kernels put channels in lanes: per output pixel, up
//! to 4 vectors of channels (32 with AVX, 64 with AVX-512; masked loads and stores for a partial
//! last vector) run the taps in the reference's order with `vmulps` then `vaddps`. The clamp is
//! [`crate::ops::ClampF32::apply`] (scalar on the stored sums for AVX, its 16-lane form
//! `conv2d::f32_avx::clamp_512` for AVX-512). Depth multipliers other than 1
//! use the reference.

// Without `std` nothing detects the CPU: the kernels are unused.
#![cfg_attr(not(any(test, feature = "std")), allow(dead_code))]

use core::arch::x86_64::*;

use super::DepthwiseConv2dF32Params;
use crate::ops::conv2d::f32_avx::clamp_512;
use crate::ops::conv2d::reference::tap;

/// Vectors of channels per chunk.
const VB: usize = 4;

/// Whether the vector kernels apply (depth multiplier 1) and the slices have the lengths they
/// read and write (asserted, so the raw loads below stay in bounds).
fn supported(p: &DepthwiseConv2dF32Params<'_>, input: &[f32], output: &[f32]) -> bool {
    let s = &p.shape;
    if p.depth_multiplier != 1 || s.input[3] != s.output[3] {
        return false;
    }
    let c = s.input[3] as usize;
    let taps = (s.kernel[0] * s.kernel[1]) as usize;
    assert!(s.input[0] == s.output[0]);
    assert!(input.len() >= s.input_len() && output.len() >= s.output_len());
    assert!(p.weights.len() >= taps * c && p.bias.is_none_or(|b| b.len() >= c));
    true
}

/// Calls `f(pixel, b, oy, ox)` for every output pixel, in NHWC order.
#[inline(always)]
fn pixels(p: &DepthwiseConv2dF32Params<'_>, mut f: impl FnMut(usize, usize, usize, usize)) {
    let [n, oh, ow, _] = p.shape.output.map(|d| d as usize);
    let mut pixel = 0;
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                f(pixel, b, oy, ox);
                pixel += 1;
            }
        }
    }
}

/// Input offsets `((b·h + iy)·w + ix)·c` of the taps of output pixel `(b, oy, ox)` that are
/// inside the input, with their tap index, in the reference's order.
#[inline(always)]
fn for_each_tap(
    p: &DepthwiseConv2dF32Params<'_>,
    b: usize,
    oy: usize,
    ox: usize,
    mut f: impl FnMut(usize, usize),
) {
    let s = &p.shape;
    let [_, h, w, c] = s.input;
    let [kh, kw] = s.kernel.map(|k| k as usize);
    for ky in 0..kh {
        let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h) else {
            continue;
        };
        for kx in 0..kw {
            let Some(ix) = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w) else {
                continue;
            };
            f(
                ((b * h as usize + iy) * w as usize + ix) * c as usize,
                ky * kw + kx,
            );
        }
    }
}

/// Clamps the `n` outputs of pixel `pixel` from channel `c0`.
#[inline(always)]
fn clamp(p: &DepthwiseConv2dF32Params<'_>, output: &mut [f32], pixel: usize, c0: usize, n: usize) {
    let c = p.shape.output[3] as usize;
    for y in &mut output[pixel * c + c0..pixel * c + c0 + n] {
        *y = p.activation.apply(*y);
    }
}

/// AVX f32 DepthwiseConv2D.
///
/// # Safety
/// The CPU must support AVX. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx")]
pub unsafe fn eval_f32(p: &DepthwiseConv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    if !supported(p, input, output) {
        return super::reference::eval_f32(p, input, output);
    }
    let c = p.shape.input[3] as usize;
    pixels(p, |pixel, b, oy, ox| {
        let mut c0 = 0;
        while c0 < c {
            let n = (8 * VB).min(c - c0);
            // SAFETY: the caller guarantees AVX (the closure runs inside this function).
            unsafe {
                match n.div_ceil(8) {
                    4 => chunk_avx::<4>(p, input, output, (pixel, b, oy, ox), c0),
                    3 => chunk_avx::<3>(p, input, output, (pixel, b, oy, ox), c0),
                    2 => chunk_avx::<2>(p, input, output, (pixel, b, oy, ox), c0),
                    _ => chunk_avx::<1>(p, input, output, (pixel, b, oy, ox), c0),
                }
            }
            clamp(p, output, pixel, c0, n);
            c0 += n;
        }
    });
}

/// Channels `c0..c0 + min(8·V, c - c0)` of one output pixel `(pixel, b, oy, ox)`, unclamped
/// (AVX, masked loads and stores).
///
/// # Safety
/// The CPU must support AVX; [`supported`] returned `true`; `c0 < c` and `V = ⌈(c - c0) / 8⌉`
/// or at most [`VB`].
#[inline]
#[target_feature(enable = "avx")]
unsafe fn chunk_avx<const V: usize>(
    p: &DepthwiseConv2dF32Params<'_>,
    input: &[f32],
    output: &mut [f32],
    (pixel, b, oy, ox): (usize, usize, usize, usize),
    c0: usize,
) {
    let c = p.shape.input[3] as usize;
    let n = (8 * V).min(c - c0);
    let lanes: [[i32; 8]; V] =
        core::array::from_fn(|v| core::array::from_fn(|l| if 8 * v + l < n { -1 } else { 0 }));
    // SAFETY: each `lanes[v]` holds 8 values.
    let masks: [__m256i; V] =
        core::array::from_fn(|v| unsafe { _mm256_loadu_si256(lanes[v].as_ptr().cast()) });
    let mut acc = [_mm256_setzero_ps(); V];
    if let Some(bias) = p.bias {
        for ((a, &m), v) in acc.iter_mut().zip(&masks).zip(0..) {
            // SAFETY: the unmasked lanes read `bias[c0 + 8v + l]`, `8v + l < n`, inside `bias`
            // (`supported`); every vector has such a lane, so its address is inside `bias`.
            *a = unsafe { _mm256_maskload_ps(bias.as_ptr().add(c0 + 8 * v), m) };
        }
    }
    let (xp, wp) = (input.as_ptr(), p.weights.as_ptr());
    for_each_tap(p, b, oy, ox, |x0, t| {
        for ((a, &m), v) in acc.iter_mut().zip(&masks).zip(0..) {
            // SAFETY: the unmasked lanes read input channel `c0 + 8v + l < c` of an input pixel
            // and weight `t·c + c0 + 8v + l` of tap `t < kh·kw`, inside the lengths asserted by
            // `supported`; each start address has an unmasked lane.
            unsafe {
                let x = _mm256_maskload_ps(xp.add(x0 + c0 + 8 * v), m);
                let w = _mm256_maskload_ps(wp.add(t * c + c0 + 8 * v), m);
                *a = _mm256_add_ps(*a, _mm256_mul_ps(x, w));
            }
        }
    });
    let op = output.as_mut_ptr();
    for ((a, &m), v) in acc.iter().zip(&masks).zip(0..) {
        // SAFETY: the unmasked lanes write output `pixel·c + c0 + 8v + l`, `8v + l < n`, inside
        // `output` (`supported`).
        unsafe { _mm256_maskstore_ps(op.add(pixel * c + c0 + 8 * v), m, *a) };
    }
}

/// AVX-512 f32 DepthwiseConv2D.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2,avx512f")]
pub unsafe fn eval_f32_avx512(p: &DepthwiseConv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    if !supported(p, input, output) {
        return super::reference::eval_f32(p, input, output);
    }
    let c = p.shape.input[3] as usize;
    pixels(p, |pixel, b, oy, ox| {
        let mut c0 = 0;
        while c0 < c {
            let n = (16 * VB).min(c - c0);
            // SAFETY: the caller guarantees AVX2 and AVX512F (the closure runs inside this
            // function).
            unsafe {
                match n.div_ceil(16) {
                    4 => chunk_512::<4>(p, input, output, (pixel, b, oy, ox), c0),
                    3 => chunk_512::<3>(p, input, output, (pixel, b, oy, ox), c0),
                    2 => chunk_512::<2>(p, input, output, (pixel, b, oy, ox), c0),
                    _ => chunk_512::<1>(p, input, output, (pixel, b, oy, ox), c0),
                }
            }
            c0 += n;
        }
    });
}

/// Channels `c0..c0 + min(16·V, c - c0)` of one output pixel, clamped (AVX-512, masked).
///
/// # Safety
/// The CPU must support AVX2 and AVX512F; [`supported`] returned `true`; `c0 < c` and
/// `V = ⌈(c - c0) / 16⌉` or at most [`VB`].
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn chunk_512<const V: usize>(
    p: &DepthwiseConv2dF32Params<'_>,
    input: &[f32],
    output: &mut [f32],
    (pixel, b, oy, ox): (usize, usize, usize, usize),
    c0: usize,
) {
    let c = p.shape.input[3] as usize;
    let n = (16 * V).min(c - c0);
    let masks: [__mmask16; V] = core::array::from_fn(|v| {
        let l = n.saturating_sub(16 * v).min(16);
        if l == 16 {
            !0
        } else {
            (1u16 << l) - 1
        }
    });
    let mut acc = [_mm512_setzero_ps(); V];
    if let Some(bias) = p.bias {
        for ((a, &m), v) in acc.iter_mut().zip(&masks).zip(0..) {
            // SAFETY: the unmasked lanes read `bias[c0 + 16v + l]`, `16v + l < n`, inside
            // `bias` (`supported`); every vector has such a lane.
            *a = unsafe { _mm512_maskz_loadu_ps(m, bias.as_ptr().add(c0 + 16 * v)) };
        }
    }
    let (xp, wp) = (input.as_ptr(), p.weights.as_ptr());
    for_each_tap(p, b, oy, ox, |x0, t| {
        for ((a, &m), v) in acc.iter_mut().zip(&masks).zip(0..) {
            // SAFETY: as in `chunk_avx`, with 16 lanes per vector.
            unsafe {
                let x = _mm512_maskz_loadu_ps(m, xp.add(x0 + c0 + 16 * v));
                let w = _mm512_maskz_loadu_ps(m, wp.add(t * c + c0 + 16 * v));
                *a = _mm512_add_ps(*a, _mm512_mul_ps(x, w));
            }
        }
    });
    let op = output.as_mut_ptr();
    for ((a, &m), v) in acc.iter().zip(&masks).zip(0..) {
        let y = clamp_512(*a, p.activation);
        // SAFETY: the unmasked lanes write output `pixel·c + c0 + 16v + l`, inside `output`.
        unsafe { _mm512_mask_storeu_ps(op.add(pixel * c + c0 + 16 * v), m, y) };
    }
}

/// Whether this CPU runs [`eval_f32_avx512`] (AVX2 and AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn avx512_detected() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avx512f")
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")` (which implies
/// AVX).
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_detected(
    p: &DepthwiseConv2dF32Params<'_>,
    input: &[f32],
    output: &mut [f32],
) {
    debug_assert!(std::is_x86_feature_detected!("avx"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_f32(p, input, output) }
}

/// Safe entry for kernel tables built after [`avx512_detected`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_avx512_detected(
    p: &DepthwiseConv2dF32Params<'_>,
    input: &[f32],
    output: &mut [f32],
) {
    debug_assert!(avx512_detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after
    // `avx512_detected()`.
    unsafe { eval_f32_avx512(p, input, output) }
}

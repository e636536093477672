//! x86-64 f32 Conv2D (AVX and AVX-512F), bit-exact to [`super::reference::eval_f32`].
//!
//! The reference computes each output `(pixel, oc)` as `bias[oc]` (or `0.0`) followed by
//! `acc += x·w` over the taps `(ky, kx)` in row-major order, skipping the taps that fall in the
//! padding, and within a tap over the input channels in increasing order (a rounded product, then
//! a rounded sum; no fused multiply-add); then the fused clamp. These kernels keep exactly that
//! sequence for every output and vectorize across output channels: each lane is one `oc`,
//! updated with `vmulps` then `vaddps`.
//!
//! Weights are packed per block of 16 output channels into panels `[tap][ic][16]` (zero-padded
//! past `out_c`, up to [`KC`] rows on the stack, whole taps per panel). A register tile holds up
//! to 4 pixels (AVX, two vectors per pixel) or 8 pixels (AVX-512) of consecutive output positions;
//! for a tap where some pixels of the tile read padding, those pixels' updates are masked off
//! (the accumulator keeps its bits, as the reference's `continue`). Between panels the partial
//! sums wait in `output` (stored and reloaded unchanged). The clamp is the scalar
//! [`crate::ops::ClampF32::apply`]. Input channels beyond [`KC`] use the reference.

// Without `std` nothing detects the CPU: the kernels are unused.
#![cfg_attr(not(any(test, feature = "std")), allow(dead_code))]

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::reference::tap;
use super::Conv2dF32Params;

/// Output channels per block (two AVX vectors, one AVX-512 vector).
const NC: usize = 16;
/// Rows (tap, input channel) per packed panel.
const KC: usize = 512;
/// Pixels per AVX register tile.
const MR_AVX: usize = 4;
/// Pixels per AVX-512 register tile.
const MR_512: usize = 8;

/// One panel: output channels `j0..j0 + nc`, taps `tap0..tap1` (all input channels).
struct Panel<'a, 'p> {
    p: &'a Conv2dF32Params<'p>,
    /// `[(tap - tap0)·in_c + ic][16]`.
    w: &'a [f32],
    j0: usize,
    nc: usize,
    tap0: usize,
    tap1: usize,
    /// The first panel of the block: accumulators start at the bias.
    first: bool,
    /// The last panel of the block: outputs are clamped.
    last: bool,
}

/// The output coordinates `(b, oy, ox)` of the pixels `px0..px0 + R` (NHWC order).
#[inline(always)]
fn coords<const R: usize>(p: &Conv2dF32Params<'_>, px0: usize) -> [(usize, usize, usize); R] {
    let [_, oh, ow, _] = p.shape.output;
    let (oh, ow) = (oh as usize, ow as usize);
    core::array::from_fn(|r| {
        let px = px0 + r;
        (px / (ow * oh), (px / ow) % oh, px % ow)
    })
}

/// The input offsets of the pixels at `xy` for tap `tap_i` (`None` in the padding).
#[inline(always)]
fn offsets<const R: usize>(
    p: &Conv2dF32Params<'_>,
    xy: &[(usize, usize, usize); R],
    tap_i: usize,
) -> [Option<usize>; R] {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let kw = s.kernel[1] as usize;
    let (ky, kx) = (tap_i / kw, tap_i % kw);
    core::array::from_fn(|r| {
        let (b, oy, ox) = xy[r];
        let iy = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h)?;
        let ix = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w)?;
        Some(((b * h as usize + iy) * w as usize + ix) * in_c as usize)
    })
}

/// Runs `tile(panel, px0, pixels)` over every panel and pixel tile of the convolution, or returns
/// `false` (nothing written) when the input channels exceed a panel.
#[inline(always)]
fn for_each_panel(
    p: &Conv2dF32Params<'_>,
    mr: usize,
    mut tile: impl FnMut(&Panel<'_, '_>, usize, usize),
) -> bool {
    let s = &p.shape;
    let in_c = s.input[3] as usize;
    let out_c = s.output[3] as usize;
    let taps = (s.kernel[0] * s.kernel[1]) as usize;
    let depth = taps * in_c;
    if in_c > KC || p.weights.len() < out_c * depth {
        return false;
    }
    let pixels = s.output_len() / out_c;
    let taps_per_panel = KC / in_c;
    let mut buf = [const { MaybeUninit::<f32>::uninit() }; NC * KC];
    let panel = crate::ops::gemm_avx2::filled(&mut buf, NC * KC.min(depth), 0.0);
    let mut j0 = 0;
    while j0 < out_c {
        let nc = NC.min(out_c - j0);
        let mut tap0 = 0;
        while tap0 < taps {
            let tap1 = taps.min(tap0 + taps_per_panel);
            let rows = (tap1 - tap0) * in_c;
            for (d, row) in panel[..rows * NC].chunks_exact_mut(NC).enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = if c < nc {
                        p.weights[(j0 + c) * depth + tap0 * in_c + d]
                    } else {
                        0.0
                    };
                }
            }
            let pn = Panel {
                p,
                w: &panel[..rows * NC],
                j0,
                nc,
                tap0,
                tap1,
                first: tap0 == 0,
                last: tap1 == taps,
            };
            let mut px0 = 0;
            while px0 < pixels {
                let r = mr.min(pixels - px0);
                tile(&pn, px0, r);
                px0 += r;
            }
            tap0 = tap1;
        }
        j0 += nc;
    }
    true
}

impl Panel<'_, '_> {
    /// Asserts what a tile of `r` pixels from `px0` reads and writes.
    fn check(&self, input: &[f32], output: &[f32], px0: usize, r: usize) {
        let s = &self.p.shape;
        let (in_c, out_c) = (s.input[3] as usize, s.output[3] as usize);
        // Pixels `< n·oh·ow` of the output decompose into batches `< n` of the input.
        assert!(s.input[0] == s.output[0] && (px0 + r) * out_c <= s.output_len());
        assert!(input.len() >= s.input_len() && output.len() >= (px0 + r) * out_c);
        assert!(self.w.len() >= (self.tap1 - self.tap0) * in_c * NC);
        assert!(self.nc >= 1 && self.nc <= NC && self.j0 + self.nc <= out_c);
        assert!(self.p.bias.is_none_or(|b| b.len() >= out_c));
    }

    /// The starting sums of pixel `px`: the bias (or `0.0`) on the first panel, else the partial
    /// sums in `output`; lanes past `nc` are `0.0`.
    #[inline(always)]
    fn start(&self, output: &[f32], px: usize) -> [f32; NC] {
        let out_c = self.p.shape.output[3] as usize;
        let mut a = [0f32; NC];
        for (c, v) in a.iter_mut().enumerate().take(self.nc) {
            *v = if self.first {
                self.p.bias.map_or(0.0, |b| b[self.j0 + c])
            } else {
                output[px * out_c + self.j0 + c]
            };
        }
        a
    }

    /// Stores pixel `px`'s sums `v[..nc]` to `output`, clamped after the last panel.
    #[inline(always)]
    fn finish(&self, v: &[f32; NC], output: &mut [f32], px: usize) {
        let out_c = self.p.shape.output[3] as usize;
        let o = &mut output[px * out_c + self.j0..px * out_c + self.j0 + self.nc];
        for (y, &x) in o.iter_mut().zip(v) {
            *y = if self.last {
                self.p.activation.apply(x)
            } else {
                x
            };
        }
    }
}

/// AVX f32 Conv2D.
///
/// # Safety
/// The CPU must support AVX. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx")]
pub unsafe fn eval_f32(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let done = for_each_panel(p, MR_AVX, |pn, px0, r| match r {
        4 => tile_avx::<4>(pn, input, px0, output),
        3 => tile_avx::<3>(pn, input, px0, output),
        2 => tile_avx::<2>(pn, input, px0, output),
        _ => tile_avx::<1>(pn, input, px0, output),
    });
    if !done {
        super::reference::eval_f32(p, input, output);
    }
}

/// Pixels `px0..px0 + R` of one panel (AVX, two vectors per pixel).
#[inline]
#[target_feature(enable = "avx")]
fn tile_avx<const R: usize>(pn: &Panel<'_, '_>, input: &[f32], px0: usize, output: &mut [f32]) {
    pn.check(input, output, px0, R);
    let in_c = pn.p.shape.input[3] as usize;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        let init = pn.start(output, px0 + r);
        // SAFETY: `init` holds 16 values.
        *a = unsafe {
            [
                _mm256_loadu_ps(init.as_ptr()),
                _mm256_loadu_ps(init.as_ptr().add(8)),
            ]
        };
    }
    let (xp, wp) = (input.as_ptr(), pn.w.as_ptr());
    let xy = coords::<R>(pn.p, px0);
    for (ti, tap_i) in (pn.tap0..pn.tap1).enumerate() {
        let offs = offsets::<R>(pn.p, &xy, tap_i);
        let wt = ti * in_c * NC;
        if offs.iter().all(Option::is_some) {
            let o: [usize; R] = core::array::from_fn(|r| offs[r].unwrap_or(0));
            for ic in 0..in_c {
                // SAFETY: panel row `ti·in_c + ic` (16 values) is inside `w` and every
                // `o[r] + ic` is an input pixel's channel, inside `input` (asserted by `check`).
                unsafe {
                    let w0 = _mm256_loadu_ps(wp.add(wt + ic * NC));
                    let w1 = _mm256_loadu_ps(wp.add(wt + ic * NC + 8));
                    for (a, &o) in acc.iter_mut().zip(&o) {
                        let x = _mm256_set1_ps(*xp.add(o + ic));
                        a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(x, w0));
                        a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(x, w1));
                    }
                }
            }
        } else {
            // Pixels reading padding: offset 0 (a valid read), update discarded by the blend.
            let o: [usize; R] = core::array::from_fn(|r| offs[r].unwrap_or(0));
            let keep: [__m256; R] = core::array::from_fn(|r| {
                _mm256_castsi256_ps(_mm256_set1_epi32(if offs[r].is_some() { -1 } else { 0 }))
            });
            for ic in 0..in_c {
                // SAFETY: as above (`o[r] + ic < in_c <= input.len()` for the padded pixels).
                unsafe {
                    let w0 = _mm256_loadu_ps(wp.add(wt + ic * NC));
                    let w1 = _mm256_loadu_ps(wp.add(wt + ic * NC + 8));
                    for ((a, &o), &k) in acc.iter_mut().zip(&o).zip(&keep) {
                        let x = _mm256_set1_ps(*xp.add(o + ic));
                        let s0 = _mm256_add_ps(a[0], _mm256_mul_ps(x, w0));
                        let s1 = _mm256_add_ps(a[1], _mm256_mul_ps(x, w1));
                        a[0] = _mm256_blendv_ps(a[0], s0, k);
                        a[1] = _mm256_blendv_ps(a[1], s1, k);
                    }
                }
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let mut v = [0f32; NC];
        // SAFETY: `v` holds 16 writable values.
        unsafe {
            _mm256_storeu_ps(v.as_mut_ptr(), a[0]);
            _mm256_storeu_ps(v.as_mut_ptr().add(8), a[1]);
        }
        pn.finish(&v, output, px0 + r);
    }
}

/// AVX-512 f32 Conv2D.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2,avx512f")]
pub unsafe fn eval_f32_avx512(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let done = for_each_panel(p, MR_512, |pn, px0, r| match r {
        8 => tile_512::<8>(pn, input, px0, output),
        7 => tile_512::<7>(pn, input, px0, output),
        6 => tile_512::<6>(pn, input, px0, output),
        5 => tile_512::<5>(pn, input, px0, output),
        4 => tile_512::<4>(pn, input, px0, output),
        3 => tile_512::<3>(pn, input, px0, output),
        2 => tile_512::<2>(pn, input, px0, output),
        _ => tile_512::<1>(pn, input, px0, output),
    });
    if !done {
        super::reference::eval_f32(p, input, output);
    }
}

/// Pixels `px0..px0 + R` of one panel (AVX-512, one vector per pixel; padded taps masked off).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn tile_512<const R: usize>(pn: &Panel<'_, '_>, input: &[f32], px0: usize, output: &mut [f32]) {
    pn.check(input, output, px0, R);
    let in_c = pn.p.shape.input[3] as usize;
    let mut acc = [_mm512_setzero_ps(); R];
    for (r, a) in acc.iter_mut().enumerate() {
        let init = pn.start(output, px0 + r);
        // SAFETY: `init` holds 16 values.
        *a = unsafe { _mm512_loadu_ps(init.as_ptr()) };
    }
    let (xp, wp) = (input.as_ptr(), pn.w.as_ptr());
    let xy = coords::<R>(pn.p, px0);
    for (ti, tap_i) in (pn.tap0..pn.tap1).enumerate() {
        let offs = offsets::<R>(pn.p, &xy, tap_i);
        let wt = ti * in_c * NC;
        let o: [usize; R] = core::array::from_fn(|r| offs[r].unwrap_or(0));
        if offs.iter().all(Option::is_some) {
            for ic in 0..in_c {
                // SAFETY: panel row `ti·in_c + ic` (16 values) is inside `w` and every
                // `o[r] + ic` is an input pixel's channel, inside `input` (asserted by `check`).
                unsafe {
                    let w = _mm512_loadu_ps(wp.add(wt + ic * NC));
                    for (a, &o) in acc.iter_mut().zip(&o) {
                        let x = _mm512_set1_ps(*xp.add(o + ic));
                        *a = _mm512_add_ps(*a, _mm512_mul_ps(x, w));
                    }
                }
            }
        } else {
            // Pixels reading padding: offset 0 (a valid read), lanes kept by the zero mask.
            let keep: [__mmask16; R] =
                core::array::from_fn(|r| if offs[r].is_some() { !0 } else { 0 });
            for ic in 0..in_c {
                // SAFETY: as above (`o[r] + ic < in_c <= input.len()` for the padded pixels).
                unsafe {
                    let w = _mm512_loadu_ps(wp.add(wt + ic * NC));
                    for ((a, &o), &k) in acc.iter_mut().zip(&o).zip(&keep) {
                        let x = _mm512_set1_ps(*xp.add(o + ic));
                        *a = _mm512_mask_add_ps(*a, k, *a, _mm512_mul_ps(x, w));
                    }
                }
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let mut v = [0f32; NC];
        // SAFETY: `v` holds 16 writable values.
        unsafe { _mm512_storeu_ps(v.as_mut_ptr(), *a) };
        pn.finish(&v, output, px0 + r);
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
pub(crate) fn eval_f32_detected(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    debug_assert!(std::is_x86_feature_detected!("avx"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_f32(p, input, output) }
}

/// Safe entry for kernel tables built after [`avx512_detected`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_avx512_detected(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    debug_assert!(avx512_detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after
    // `avx512_detected()`.
    unsafe { eval_f32_avx512(p, input, output) }
}

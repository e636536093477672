//! x86-64 f32 Conv2D (AVX and AVX-512F), bit-exact to [`super::reference::eval_f32`].
//!
//! The reference computes each output `(pixel, oc)` as `bias[oc]` (or `0.0`) followed by
//! `acc += x·w` over the taps `(ky, kx)` in row-major order, skipping the taps that fall in the
//! padding, and within a tap over the input channels in increasing order (a rounded product, then
//! a rounded sum; no fused multiply-add); then the fused clamp. These kernels keep exactly that
//! sequence for every output and vectorize across output channels: each lane is one `oc`,
//! updated with `vmulps` then `vaddps`.
//!
//! Weights are packed per block of output channels (16 for AVX, up to 64 for AVX-512) into
//! panels `[tap][ic][width]` (zero-padded past `out_c`, `PANEL` floats on the stack, whole taps
//! per panel). A register tile holds up to 4 pixels × 16 channels (AVX, two vectors per pixel) or
//! 6 pixels × 64 channels / 8 pixels × 16–48 channels (AVX-512) of consecutive output positions;
//! for a tap where some pixels of the tile read padding, those pixels' updates are masked off
//! (the accumulator keeps its bits, as the reference's `continue`). Between panels the partial
//! sums wait in `output` (stored and reloaded unchanged). The clamp is
//! [`crate::ops::ClampF32::apply`] (scalar for AVX, `clamp_512` for AVX-512). More than
//! `PANEL / 16` input channels use the reference.

// Without `std` nothing detects the CPU: the kernels are unused.
#![cfg_attr(not(any(test, feature = "std")), allow(dead_code))]

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::Conv2dF32Params;

/// Floats in the packed weight panel (32 KiB on the stack).
const PANEL: usize = 8192;
/// Output channels per AVX block (two vectors).
const NC_AVX: usize = 16;
/// Pixels per AVX register tile.
const MR_AVX: usize = 4;

/// One panel: output channels `j0..j0 + nc`, taps `tap0..tap1` (all input channels).
struct Panel<'a, 'p> {
    p: &'a Conv2dF32Params<'p>,
    /// `[(tap - tap0)·in_c + ic][width]`, zero past `nc`.
    w: &'a [f32],
    /// Output channels per panel row (a multiple of 8).
    width: usize,
    j0: usize,
    nc: usize,
    tap0: usize,
    tap1: usize,
    /// The first panel of the block: accumulators start at the bias.
    first: bool,
    /// The last panel of the block: outputs are clamped.
    last: bool,
}

/// The pixels of a tile: per pixel, the input row and column of its tap `(0, 0)` (negative in
/// the top or left padding) and the input offset `((b·h + iy0)·w + ix0)·in_c` they would have.
struct Pixels<const R: usize> {
    iy0: [isize; R],
    ix0: [isize; R],
    base: [isize; R],
}

/// The [`Pixels`] `px0..px0 + R` (NHWC order).
#[inline(always)]
fn pixels<const R: usize>(p: &Conv2dF32Params<'_>, px0: usize) -> Pixels<R> {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input.map(|d| d as isize);
    let [_, oh, ow, _] = s.output.map(|d| d as usize);
    let (mut b, mut oy, mut ox) = (px0 / (ow * oh), (px0 / ow) % oh, px0 % ow);
    let mut px = Pixels {
        iy0: [0; R],
        ix0: [0; R],
        base: [0; R],
    };
    for r in 0..R {
        let iy0 = (oy * s.stride[0] as usize) as isize - s.padding.top as isize;
        let ix0 = (ox * s.stride[1] as usize) as isize - s.padding.left as isize;
        px.iy0[r] = iy0;
        px.ix0[r] = ix0;
        px.base[r] = ((b as isize * h + iy0) * w + ix0) * in_c;
        ox += 1;
        if ox == ow {
            ox = 0;
            oy += 1;
            if oy == oh {
                oy = 0;
                b += 1;
            }
        }
    }
    px
}

/// The input offsets of the pixels at tap `(ky, kx)`, and whether each is inside the input
/// (the offset is 0 for a pixel in the padding). The same tests as the reference's
/// [`tap`](super::reference::tap): `iy = oy·sh + ky·dh - pad_top` in `0..h`, likewise `ix`.
#[inline(always)]
fn offsets<const R: usize>(
    p: &Conv2dF32Params<'_>,
    px: &Pixels<R>,
    (ky, kx): (usize, usize),
) -> ([usize; R], [bool; R]) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input.map(|d| d as usize);
    let dy = (ky * s.dilation[0] as usize) as isize;
    let dx = (kx * s.dilation[1] as usize) as isize;
    let toff = (dy * w as isize + dx) * in_c as isize;
    let valid: [bool; R] = core::array::from_fn(|r| {
        ((px.iy0[r] + dy) as usize) < h && ((px.ix0[r] + dx) as usize) < w
    });
    let off = core::array::from_fn(|r| {
        if valid[r] {
            (px.base[r] + toff) as usize
        } else {
            0
        }
    });
    (off, valid)
}

/// The taps `tap0..tap1` as `(index in the panel, (ky, kx))`, in row-major order.
#[inline(always)]
fn taps(kw: usize, tap0: usize, tap1: usize) -> impl Iterator<Item = (usize, (usize, usize))> {
    let (mut ky, mut kx) = (tap0 / kw, tap0 % kw);
    (0..tap1 - tap0).map(move |ti| {
        let t = (ti, (ky, kx));
        kx += 1;
        if kx == kw {
            kx = 0;
            ky += 1;
        }
        t
    })
}

/// Packs the weights into panels and calls `run` on each: blocks of output channels of the
/// width `width_for(remaining channels)` returns (a multiple of 8, at most `PANEL / in_c`), and
/// within a block as many whole taps per panel as [`PANEL`] holds. Returns `false` (nothing
/// run) when one tap's input channels exceed a 16-wide panel.
#[inline(always)]
fn for_each_panel(
    p: &Conv2dF32Params<'_>,
    width_for: impl Fn(usize) -> usize,
    mut run: impl FnMut(&Panel<'_, '_>),
) -> bool {
    let s = &p.shape;
    let in_c = s.input[3] as usize;
    let out_c = s.output[3] as usize;
    let taps = (s.kernel[0] * s.kernel[1]) as usize;
    let depth = taps * in_c;
    if in_c > PANEL / 16 || p.weights.len() < out_c * depth {
        return false;
    }
    let mut buf = [const { MaybeUninit::<f32>::uninit() }; PANEL];
    let panel = crate::ops::gemm_avx2::filled(&mut buf, PANEL.min(64 * depth), 0.0);
    let mut j0 = 0;
    while j0 < out_c {
        let width = width_for(out_c - j0);
        let nc = width.min(out_c - j0);
        let taps_per_panel = (panel.len() / width / in_c).max(1);
        let mut tap0 = 0;
        while tap0 < taps {
            let tap1 = taps.min(tap0 + taps_per_panel);
            let rows = (tap1 - tap0) * in_c;
            // Channel by channel: contiguous reads of each channel's weights.
            let dst = &mut panel[..rows * width];
            for c in 0..width {
                if c < nc {
                    let src = &p.weights[(j0 + c) * depth + tap0 * in_c..][..rows];
                    for (row, &v) in dst.chunks_exact_mut(width).zip(src) {
                        row[c] = v;
                    }
                } else {
                    for row in dst.chunks_exact_mut(width) {
                        row[c] = 0.0;
                    }
                }
            }
            run(&Panel {
                p,
                w: &panel[..rows * width],
                width,
                j0,
                nc,
                tap0,
                tap1,
                first: tap0 == 0,
                last: tap1 == taps,
            });
            tap0 = tap1;
        }
        j0 += nc;
    }
    true
}

impl Panel<'_, '_> {
    /// Asserts what a tile of `r` pixels from `px0` reads and writes with `width` channels.
    fn check(&self, input: &[f32], output: &[f32], px0: usize, r: usize, width: usize) {
        let s = &self.p.shape;
        let (in_c, out_c) = (s.input[3] as usize, s.output[3] as usize);
        // Pixels `< n·oh·ow` of the output decompose into batches `< n` of the input.
        assert!(s.input[0] == s.output[0] && (px0 + r) * out_c <= s.output_len());
        assert!(input.len() >= s.input_len() && output.len() >= (px0 + r) * out_c);
        assert!(self.width == width && self.w.len() >= (self.tap1 - self.tap0) * in_c * width);
        assert!(self.nc >= 1 && self.nc <= width && self.j0 + self.nc <= out_c);
        // Every vector of 16 channels holds at least one of the `nc`.
        assert!(self.nc + 16 > width);
        assert!(self.p.bias.is_none_or(|b| b.len() >= out_c));
    }

    /// The starting sums of pixel `px` (16 channels): the bias (or `0.0`) on the first panel,
    /// else the partial sums in `output`; lanes past `nc` are `0.0`.
    #[inline(always)]
    fn start(&self, output: &[f32], px: usize) -> [f32; NC_AVX] {
        let out_c = self.p.shape.output[3] as usize;
        let mut a = [0f32; NC_AVX];
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
    fn finish(&self, v: &[f32; NC_AVX], output: &mut [f32], px: usize) {
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
    let pixels = p.shape.output_len() / (p.shape.output[3] as usize).max(1);
    let done = for_each_panel(
        p,
        |_| NC_AVX,
        |pn| {
            let mut px0 = 0;
            while px0 < pixels {
                let r = MR_AVX.min(pixels - px0);
                match r {
                    4 => tile_avx::<4>(pn, input, px0, output),
                    3 => tile_avx::<3>(pn, input, px0, output),
                    2 => tile_avx::<2>(pn, input, px0, output),
                    _ => tile_avx::<1>(pn, input, px0, output),
                }
                px0 += r;
            }
        },
    );
    if !done {
        super::reference::eval_f32(p, input, output);
    }
}

/// Pixels `px0..px0 + R` of one panel (AVX, 16 channels in two vectors per pixel).
#[inline]
#[target_feature(enable = "avx")]
fn tile_avx<const R: usize>(pn: &Panel<'_, '_>, input: &[f32], px0: usize, output: &mut [f32]) {
    pn.check(input, output, px0, R, NC_AVX);
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
    let px = pixels::<R>(pn.p, px0);
    for (ti, kyx) in taps(pn.p.shape.kernel[1] as usize, pn.tap0, pn.tap1) {
        let (o, valid) = offsets::<R>(pn.p, &px, kyx);
        let wt = ti * in_c * NC_AVX;
        // Pixels reading padding: offset 0 (a valid read), update discarded below.
        if valid.iter().all(|&v| v) {
            for ic in 0..in_c {
                // SAFETY: panel row `ti·in_c + ic` (16 values) is inside `w` and every
                // `o[r] + ic` is an input pixel's channel, inside `input` (asserted by `check`).
                unsafe {
                    let w0 = _mm256_loadu_ps(wp.add(wt + ic * NC_AVX));
                    let w1 = _mm256_loadu_ps(wp.add(wt + ic * NC_AVX + 8));
                    for (a, &o) in acc.iter_mut().zip(&o) {
                        let x = _mm256_set1_ps(*xp.add(o + ic));
                        a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(x, w0));
                        a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(x, w1));
                    }
                }
            }
        } else {
            let keep: [__m256; R] = core::array::from_fn(|r| {
                _mm256_castsi256_ps(_mm256_set1_epi32(if valid[r] { -1 } else { 0 }))
            });
            for ic in 0..in_c {
                // SAFETY: as above (`o[r] + ic < in_c <= input.len()` for the padded pixels).
                unsafe {
                    let w0 = _mm256_loadu_ps(wp.add(wt + ic * NC_AVX));
                    let w1 = _mm256_loadu_ps(wp.add(wt + ic * NC_AVX + 8));
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
        let mut v = [0f32; NC_AVX];
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
/// Blocks of up to 64 output channels (4 vectors; fewer where the input channels of a tap would
/// not fit a panel) × 6 pixels, or 48/32/16 channels × 8 pixels; leftover pixels one at a time.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2,avx512f")]
pub unsafe fn eval_f32_avx512(p: &Conv2dF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let in_c = (p.shape.input[3] as usize).max(1);
    let pixels = p.shape.output_len() / (p.shape.output[3] as usize).max(1);
    let vmax = (PANEL / (16 * in_c)).clamp(1, 4);
    let done = for_each_panel(
        p,
        |rem| 16 * rem.div_ceil(16).min(vmax),
        |pn| match pn.width / 16 {
            4 => tiles_512::<4, 6, 3>(pn, input, pixels, output),
            3 => tiles_512::<3, 8, 4>(pn, input, pixels, output),
            2 => tiles_512::<2, 8, 4>(pn, input, pixels, output),
            _ => tiles_512::<1, 8, 4>(pn, input, pixels, output),
        },
    );
    if !done {
        super::reference::eval_f32(p, input, output);
    }
}

/// Every pixel of one panel: tiles of `R` pixels, then at most one of `H` (< `R`), then single
/// pixels.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn tiles_512<const V: usize, const R: usize, const H: usize>(
    pn: &Panel<'_, '_>,
    input: &[f32],
    pixels: usize,
    output: &mut [f32],
) {
    let mut px0 = 0;
    while px0 + R <= pixels {
        tile_512::<V, R>(pn, input, px0, output);
        px0 += R;
    }
    if px0 + H <= pixels {
        tile_512::<V, H>(pn, input, px0, output);
        px0 += H;
    }
    while px0 < pixels {
        tile_512::<V, 1>(pn, input, px0, output);
        px0 += 1;
    }
}

/// Pixels `px0..px0 + R` of one panel (AVX-512, `16·V` channels in `V` vectors per pixel;
/// padded taps masked off).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn tile_512<const V: usize, const R: usize>(
    pn: &Panel<'_, '_>,
    input: &[f32],
    px0: usize,
    output: &mut [f32],
) {
    pn.check(input, output, px0, R, 16 * V);
    let in_c = pn.p.shape.input[3] as usize;
    let out_c = pn.p.shape.output[3] as usize;
    let cm: [__mmask16; V] = core::array::from_fn(|v| {
        let l = (pn.nc - 16 * v).min(16);
        if l == 16 {
            !0
        } else {
            (1u16 << l) - 1
        }
    });
    let op = output.as_mut_ptr();
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        for (v, a) in a.iter_mut().enumerate() {
            let c0 = pn.j0 + 16 * v;
            // SAFETY: the unmasked lanes `16v + l < nc` read `bias[j0 + 16v + l]` (`bias.len()
            // >= out_c`) or output `(px0 + r)·out_c + j0 + 16v + l`, inside the lengths
            // asserted by `check`; every vector has such a lane, so its address is in bounds.
            *a = unsafe {
                match (pn.first, pn.p.bias) {
                    (true, Some(bias)) => _mm512_maskz_loadu_ps(cm[v], bias.as_ptr().add(c0)),
                    (true, None) => _mm512_setzero_ps(),
                    (false, _) => _mm512_maskz_loadu_ps(cm[v], op.add((px0 + r) * out_c + c0)),
                }
            };
        }
    }
    let (xp, wp) = (input.as_ptr(), pn.w.as_ptr());
    let width = 16 * V;
    let px = pixels::<R>(pn.p, px0);
    for (ti, kyx) in taps(pn.p.shape.kernel[1] as usize, pn.tap0, pn.tap1) {
        let (o, valid) = offsets::<R>(pn.p, &px, kyx);
        let wt = ti * in_c * width;
        // Pixels reading padding: offset 0 (a valid read), lanes kept by the zero mask.
        if valid.iter().all(|&v| v) {
            for ic in 0..in_c {
                // SAFETY: panel row `ti·in_c + ic` (`16·V` values) is inside `w` and every
                // `o[r] + ic` is an input pixel's channel, inside `input` (asserted by `check`).
                unsafe {
                    let w: [__m512; V] =
                        core::array::from_fn(|v| _mm512_loadu_ps(wp.add(wt + ic * width + 16 * v)));
                    for (a, &o) in acc.iter_mut().zip(&o) {
                        let x = _mm512_set1_ps(*xp.add(o + ic));
                        for (a, &w) in a.iter_mut().zip(&w) {
                            *a = _mm512_add_ps(*a, _mm512_mul_ps(x, w));
                        }
                    }
                }
            }
        } else {
            let keep: [__mmask16; R] = core::array::from_fn(|r| if valid[r] { !0 } else { 0 });
            for ic in 0..in_c {
                // SAFETY: as above (`o[r] + ic < in_c <= input.len()` for the padded pixels).
                unsafe {
                    let w: [__m512; V] =
                        core::array::from_fn(|v| _mm512_loadu_ps(wp.add(wt + ic * width + 16 * v)));
                    for ((a, &o), &k) in acc.iter_mut().zip(&o).zip(&keep) {
                        let x = _mm512_set1_ps(*xp.add(o + ic));
                        for (a, &w) in a.iter_mut().zip(&w) {
                            *a = _mm512_mask_add_ps(*a, k, *a, _mm512_mul_ps(x, w));
                        }
                    }
                }
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        for (v, &a) in a.iter().enumerate() {
            let y = if pn.last {
                clamp_512(a, pn.p.activation)
            } else {
                a
            };
            // SAFETY: the unmasked lanes write output `(px0 + r)·out_c + j0 + 16v + l`,
            // `16v + l < nc`, inside `output` (asserted by `check`).
            unsafe { _mm512_mask_storeu_ps(op.add((px0 + r) * out_c + pn.j0 + 16 * v), cm[v], y) };
        }
    }
}

/// [`ClampF32::apply`](crate::ops::ClampF32::apply) on 16 lanes, bit for bit: `x < min` gives
/// `min`, else `x > max` gives `max`, else `x` (NaN stays NaN; ordered comparisons, as the
/// scalar `<` and `>`). Requires `min <= max` (`check_f32`), so at most one test holds.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
pub(crate) fn clamp_512(x: __m512, act: crate::ops::ClampF32) -> __m512 {
    let (min, max) = (_mm512_set1_ps(act.min), _mm512_set1_ps(act.max));
    let lo = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, min);
    let hi = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, max);
    _mm512_mask_blend_ps(hi, _mm512_mask_blend_ps(lo, x, min), max)
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

//! Cortex-M4 DSP int8 Conv2D (SMLAD; portable emulation off-target), bit-exact to
//! [`super::reference::eval_i8`].
//!
//! For each output pixel the receptive field is gathered into a stack patch (im2col, up to
//! [`MAX_PATCH`] bytes; padded taps are filled with the input zero point, so they contribute
//! `(zp − zp)·w = 0`, exactly like the reference's skipped taps), and the patch is multiplied by
//! the weights `[out_c, kh·kw·in_c]` with the DSP FullyConnected kernel
//! ([`crate::ops::fully_connected::dsp`]: input sign-extended and offset once). Patches are
//! gathered four output pixels at a time (two when four do not fit) and multiplied as a batch,
//! so the kernel runs its four-row loop (every sign-extended weight pair feeds four
//! accumulators). Without column dilation a patch is gathered one kernel row at a time: the
//! row's columns inside the input are contiguous bytes, copied at once, with the zero point on
//! either side. Same bias, same per-channel requantization, and the int32 sums only
//! change order (wrapping addition is associative), so outputs are bit-exact. Larger receptive
//! fields use the per-tap dot product over input channels
//! ([`crate::arch::cortex_m::dot_offset_i8_dsp`]).

use super::reference::{for_each_output, tap};
use super::Conv2dParams;
use crate::ops::fully_connected;

/// Largest receptive field (`kh · kw · in_c`) gathered into the 1 KiB stack patch.
pub const MAX_PATCH: usize = 1024;

/// DSP Conv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let out_c = s.output[3] as usize;
    let k = s.patch_len();
    if k > MAX_PATCH {
        return super::dot_variant::eval_i8_with(p, input, output, |x, xo, w| {
            crate::arch::cortex_m::dot_offset_i8_dsp(x, xo, w, 0)
        });
    }
    let fc = |batch: u32| super::as_fully_connected(p, k, out_c, batch);
    if s.is_pointwise() {
        // 1×1, stride 1, no padding: the input pixels are the patches, one FullyConnected over
        // all of them (rows four at a time).
        let pixels = output.len() / out_c;
        return fully_connected::dsp::eval_i8(&fc(pixels as u32), input, output);
    }
    eval_patches(p, input, output, k);
}

/// The im2col path of [`eval_i8`]: a function of its own, so that its 2 KiB of patches are not
/// on the stack when a pointwise layer runs the FullyConnected kernel directly.
#[inline(never)]
fn eval_patches(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8], k: usize) {
    eval_patches_with(p, input, output, k, fully_connected::dsp::eval_i8);
}

/// The im2col walk with `fc` multiplying each group of patches by the weights (the DSP
/// FullyConnected here, the 2×2-block one on cores without the DSP extension). `k` at most
/// [`MAX_PATCH`].
#[inline(always)]
pub(super) fn eval_patches_with(
    p: &Conv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
    k: usize,
    fc_kernel: impl Fn(&fully_connected::FullyConnectedParams<'_>, &[i8], &mut [i8]),
) {
    let s = &p.shape;
    let out_c = s.output[3] as usize;
    let fc = |batch: u32| super::as_fully_connected(p, k, out_c, batch);
    // Up to four patches back to back (a batch of rows of `k` bytes): four when they fit.
    let mut patches = [0i8; 2 * MAX_PATCH];
    let group = if 4 * k <= patches.len() { 4 } else { 2 };
    // The first pixel of the patches waiting for partners, and how many there are.
    let (mut first, mut waiting) = (0usize, 0usize);
    let flush = |first: usize, count: usize, patches: &[i8], output: &mut [i8]| {
        fc_kernel(
            &fc(count as u32),
            &patches[..count * k],
            &mut output[first * out_c..(first + count) * out_c],
        );
    };
    for_each_output(s, |pixel, b, oy, ox| {
        // Group only consecutive pixels (their outputs are adjacent).
        if waiting > 0 && first + waiting != pixel {
            flush(first, waiting, &patches, output);
            waiting = 0;
        }
        if waiting == 0 {
            first = pixel;
        }
        let patch = &mut patches[waiting * k..(waiting + 1) * k];
        if s.dilation[1] == 1 {
            gather_rows(p, input, patch, (b, oy, ox));
        } else {
            gather_taps(p, input, patch, (b, oy, ox));
        }
        waiting += 1;
        if waiting == group {
            flush(first, waiting, &patches, output);
            waiting = 0;
        }
    });
    if waiting > 0 {
        flush(first, waiting, &patches, output);
    }
}

/// One output pixel's patch row by row, without column dilation: the window's columns inside
/// the input are `kx0..kx1` (`kx0 > 0` or `kx1 < kw` only at the left and right borders), so
/// each kernel row is `(kx1 − kx0) · in_c` contiguous input bytes from the image's row
/// `iy = oy · stride + ky · dilation − pad` (above the image the subtraction wraps past `h`),
/// copied at once, with the input zero point on either side; rows outside the image are all
/// zero point.
#[inline(always)]
fn gather_rows(p: &Conv2dParams<'_>, input: &[i8], patch: &mut [i8], (b, oy, ox): Pixel) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let (h, w, in_c, kw) = (h as usize, w as usize, in_c as usize, s.kernel[1] as usize);
    // Zero points are int8 (checked by `check_i8`).
    let pad = p.input_zero_point as i8;
    // The window's first column in the padded input; columns before the padding wrap.
    let left = (ox * s.stride[1] as usize).wrapping_sub(s.padding.left as usize);
    let kx0 = if left < w {
        0
    } else {
        left.wrapping_neg().min(kw)
    };
    let kx1 = w.wrapping_sub(left).min(kw).max(kx0);
    let (pitch, row) = (w * in_c, kw * in_c);
    let (lo, hi) = (kx0 * in_c, kx1 * in_c);
    let image = &input[b * h * pitch..(b + 1) * h * pitch];
    let top = oy * s.stride[0] as usize;
    let (dy, pad_top) = (s.dilation[0] as usize, s.padding.top as usize);
    for (ky, dst) in patch.chunks_exact_mut(row).enumerate() {
        // `tap(oy, ky, …)` as one wrapping subtraction and one compare: the `Option` form
        // cost ~3 instructions more per kernel row here (+0.4% on the keyword model).
        let iy = (top + ky * dy).wrapping_sub(pad_top);
        if iy < h && lo < hi {
            // Column `left + kx0` of row `iy`: inside the image.
            let x0 = iy * pitch + left.wrapping_add(kx0) * in_c;
            copy_bytes(&mut dst[lo..hi], &image[x0..x0 + (hi - lo)]);
            // Only at the borders (a `memset` call even when empty).
            if lo > 0 {
                dst[..lo].fill(pad);
            }
            if hi < row {
                dst[hi..].fill(pad);
            }
        } else {
            dst.fill(pad);
        }
    }
}

/// One output pixel's patch tap by tap (column dilation): each tap's
/// `in_c` channels, or the input zero point where the tap lies outside the input.
fn gather_taps(p: &Conv2dParams<'_>, input: &[i8], patch: &mut [i8], (b, oy, ox): Pixel) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input;
    let [kh, kw] = s.kernel;
    let (in_c, kh, kw) = (in_c as usize, kh as usize, kw as usize);
    // Zero points are int8 (checked by `check_i8`).
    let pad = p.input_zero_point as i8;
    let mut at = 0;
    for ky in 0..kh {
        let iy = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h);
        for kx in 0..kw {
            let ix = tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w);
            let dst = &mut patch[at..at + in_c];
            match (iy, ix) {
                (Some(iy), Some(ix)) => {
                    let x0 = ((b * h as usize + iy) * w as usize + ix) * in_c;
                    copy_bytes(dst, &input[x0..x0 + in_c]);
                }
                _ => dst.fill(pad),
            }
            at += in_c;
        }
    }
}

/// An output pixel: batch index, row, column.
type Pixel = (usize, usize, usize);

/// `dst.copy_from_slice(src)` for the short runs of im2col (a kernel row, or one tap's
/// channels: often 1 to 16 bytes). A run of up to 16 bytes is copied as a fixed-size array,
/// which the compiler expands into a few loads and stores; a `memcpy` call costs about 30
/// instructions on the Cortex-M4, more than the copy of a few bytes (and a plain loop over
/// words is turned back into that call). Longer runs call `memcpy`. `dst` and `src` have the
/// same length.
#[inline(always)]
pub(super) fn copy_bytes(dst: &mut [i8], src: &[i8]) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match dst.len() {
                $($n => {
                    if let (Ok(d), Ok(s)) =
                        (<&mut [i8; $n]>::try_from(&mut *dst), <&[i8; $n]>::try_from(src))
                    {
                        *d = *s;
                    }
                })*
                _ => dst.copy_from_slice(src),
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
}

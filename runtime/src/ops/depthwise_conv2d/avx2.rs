//! AVX2 int8 DepthwiseConv2D, bit-exact to [`super::reference::eval_i8`].
//!
//! With depth multiplier 1, output channel `c` reads input channel `c` only, and both the input
//! pixel (NHWC) and the weights of one tap (`[kh, kw, c]`) are contiguous over channels.
//!
//! - **Padded input**: the input is widened once per call to int16 `x - input_zero_point` in a
//!   stack buffer with the padding rows and columns written as 0 and the channels rounded up to a
//!   multiple of 16 (also 0). A padding tap then contributes `0 · w = 0`, exactly what the
//!   reference's skipped tap contributes, and every tap of every output pixel is a plain load.
//! - **Tap pairs**: the taps (in `(ky, kx)` order) are taken two at a time. For sixteen channels,
//!   the two taps' vectors are interleaved (`vpunpcklwd`/`vpunpckhwd`) and `vpmaddwd` multiplies
//!   them by the two taps' weights, interleaved the same way once per call, adding the two
//!   products into each 32-bit lane (`|x - zp| ≤ 255`, `|w| ≤ 128`: exact), accumulated with
//!   wrapping adds (`vpdpwssd` with AVX-VNNI). An odd last tap is paired with a zero weight.
//!   The interleave leaves channels in the order `0-3, 8-11 | 4-7, 12-15`; one `vperm2i128` pair
//!   per output restores `0-7 | 8-15` before the bias is added.
//! - Requantization: [`crate::ops::conv2d::requant_avx2`] (bit-exact).
//!
//! Every accumulator is the bias plus the reference's products summed modulo 2³² in another
//! order: the same `i32`. Other depth multipliers, and layers whose padded input or interleaved
//! weights exceed the stack buffers ([`X_MAX`], [`W_MAX`]), use the tap-major kernel
//! ([`super::tap_major`]). Nothing is allocated (at most 40 KiB of stack, written only where a call uses it).

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::DepthwiseConv2dParams;
#[cfg(any(test, feature = "std"))]
use crate::arch::x86_vnni::Vnni;
#[cfg(any(test, feature = "std"))]
use crate::ops::conv2d::avx2::Dpwssd;
use crate::ops::conv2d::avx2::{widen, zeroed, Mac, MaddAdd};
use crate::ops::conv2d::requant_avx2::{store_bytes, Finish, Rq8};

/// int16 values of the padded, widened input.
const X_MAX: usize = 16384;
/// int16 values of the interleaved weights (`pairs · channels16 · 2`).
const W_MAX: usize = 4096;
/// Taps per kernel on the fast path.
const T_MAX: usize = 64;

/// AVX2 DepthwiseConv2D.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    // SAFETY: AVX2 is enabled here; the caller checked the params.
    unsafe { body::<MaddAdd>(p, input, output) }
}

/// The same kernel with `vpdpwssd` (in `V`'s encoding) in the inner loop.
///
/// # Safety
/// The CPU must support AVX2 and `V`'s encoding. Requires a successful [`super::check_i8`].
#[cfg(any(test, feature = "std"))]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn eval_i8_vnni<V: Vnni>(
    p: &DepthwiseConv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
) {
    // SAFETY: AVX2 is enabled here; the caller guarantees `V`'s encoding and checked the params.
    unsafe { body::<Dpwssd<V>>(p, input, output) }
}

#[inline(always)]
unsafe fn body<M: Mac>(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [n, h, w, c] = s.input;
    let [_, oh, ow, _] = s.output;
    let [kh, kw] = s.kernel;
    let (n, h, w, c) = (n as usize, h as usize, w as usize, c as usize);
    let (oh, ow, kh, kw) = (oh as usize, ow as usize, kh as usize, kw as usize);
    let pad = &s.padding;
    let (hp, wp) = (
        h + pad.top as usize + pad.bottom as usize,
        w + pad.left as usize + pad.right as usize,
    );
    let c16 = c.div_ceil(16) * 16;
    let taps = kh * kw;
    let pairs = taps.div_ceil(2);
    let fits = p.depth_multiplier == 1
        && taps <= T_MAX
        && n.checked_mul(hp * wp)
            .and_then(|v| v.checked_mul(c16))
            .is_some_and(|v| v <= X_MAX)
        && pairs * c16 * 2 <= W_MAX;
    if !fits {
        return super::tap_major::eval_i8(p, input, output);
    }
    let zp = p.input_zero_point;
    // Padded input: xb[((b·hp + y)·wp + x)·c16 + ch].
    let mut xb_buf = [const { MaybeUninit::<i16>::uninit() }; X_MAX];
    let xb = zeroed(&mut xb_buf, n * hp * wp * c16);
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let src = &input[((b * h + y) * w + x) * c..][..c];
                let at = ((b * hp + y + pad.top as usize) * wp + x + pad.left as usize) * c16;
                // SAFETY: the caller guarantees AVX2.
                unsafe { widen(src, zp, &mut xb[at..at + c]) };
            }
        }
    }
    // Interleaved weights: for block `cb` of 16 channels and pair `r` (taps 2r, 2r + 1), two
    // vectors: lanes (2i, 2i + 1) of the first hold channel LO[i]'s two weights, of the second
    // channel HI[i]'s, matching vpunpck{l,h}wd's channel order.
    const LO: [usize; 8] = [0, 1, 2, 3, 8, 9, 10, 11];
    const HI: [usize; 8] = [4, 5, 6, 7, 12, 13, 14, 15];
    let mut wb_buf = [const { MaybeUninit::<i16>::uninit() }; W_MAX];
    let wb = zeroed(&mut wb_buf, pairs * c16 * 2);
    let blocks = c16 / 16;
    for cb in 0..blocks {
        for r in 0..pairs {
            let dst = &mut wb[(cb * pairs + r) * 32..(cb * pairs + r + 1) * 32];
            for e in 0..2 {
                let t = 2 * r + e;
                if t >= taps {
                    continue;
                }
                for (i, (&lo, &hi)) in LO.iter().zip(&HI).enumerate() {
                    for (half, ch) in [(0, lo), (16, hi)] {
                        let ch = cb * 16 + ch;
                        if ch < c {
                            dst[half + 2 * i + e] = p.weights[t * c + ch] as i16;
                        }
                    }
                }
            }
        }
    }
    // Offsets of each tap from the window's top-left corner, in the padded input.
    let mut offs = [0usize; T_MAX + 1];
    for (t, o) in offs.iter_mut().take(taps).enumerate() {
        let (ky, kx) = (t / kw, t % kw);
        *o = (ky * s.dilation[0] as usize * wp + kx * s.dilation[1] as usize) * c16;
    }
    // The odd tap's partner reads the first tap again, times zero weights.
    offs[taps] = 0;
    let (sh, sw) = (s.stride[0] as usize, s.stride[1] as usize);
    // Every load reads 16 lanes at `corner + offs[t] + cb·16` with the corner of an output pixel
    // at most `last_corner`; geometry (`check_spatial`) keeps windows inside the padded input.
    let last_corner = (((n - 1) * hp + (oh - 1) * sh) * wp + (ow - 1) * sw) * c16;
    let max_off = offs[..taps].iter().copied().max().unwrap_or(0);
    assert!(last_corner + max_off + c16 <= n * hp * wp * c16);
    // SAFETY: the caller guarantees AVX2.
    let fin = unsafe { Finish::new(p.output_zero_point, p.activation.min, p.activation.max) };
    let xp = xb.as_ptr();
    for cb in 0..blocks {
        let ch0 = cb * 16;
        // SAFETY: the caller guarantees AVX2; `ch0 < c`, the slices' length (check_i8).
        let (ra, rb) = unsafe {
            (
                Rq8::new(p.bias, p.output_multiplier, p.output_shift, ch0),
                if ch0 + 8 < c {
                    Rq8::new(p.bias, p.output_multiplier, p.output_shift, ch0 + 8)
                } else {
                    Rq8::zero()
                },
            )
        };
        let wv = &wb[cb * pairs * 32..(cb + 1) * pairs * 32];
        let end = (ch0 + 16).min(c);
        let mut pixel = 0;
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let corner = ((b * hp + oy * sh) * wp + ox * sw) * c16 + ch0;
                    // SAFETY: the caller guarantees AVX2 (and AVX-VNNI for `Dpwssd`). Loads:
                    // `corner + offs[t] + 16 <= last_corner + max_off + c16` (asserted above;
                    // `offs[taps] = 0`); weights: `r < pairs`, `wv` holds `pairs · 32` values.
                    unsafe {
                        let mut lo = _mm256_setzero_si256();
                        let mut hi = _mm256_setzero_si256();
                        for r in 0..pairs {
                            let x0 =
                                _mm256_loadu_si256(xp.add(corner + offs[2 * r]) as *const __m256i);
                            let x1 = _mm256_loadu_si256(
                                xp.add(corner + offs[2 * r + 1]) as *const __m256i
                            );
                            let w = wv.as_ptr().add(r * 32);
                            let wl = _mm256_loadu_si256(w as *const __m256i);
                            let wh = _mm256_loadu_si256(w.add(16) as *const __m256i);
                            lo = M::mac(lo, _mm256_unpacklo_epi16(x0, x1), wl);
                            hi = M::mac(hi, _mm256_unpackhi_epi16(x0, x1), wh);
                        }
                        // [0-3 | 8-11], [4-7 | 12-15] -> [0-7], [8-15], plus the bias.
                        let a =
                            _mm256_add_epi32(_mm256_permute2x128_si256::<0x20>(lo, hi), ra.bias);
                        let bv =
                            _mm256_add_epi32(_mm256_permute2x128_si256::<0x31>(lo, hi), rb.bias);
                        let v = fin.pack16(a, &ra, bv, &rb);
                        store_bytes(v, &mut output[pixel * c + ch0..pixel * c + end]);
                    }
                    pixel += 1;
                }
            }
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`: the VNNI
/// form when the CPU has either encoding.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub(crate) fn eval_i8_detected(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    if crate::arch::x86_avx512_conv::detected() {
        // SAFETY: AVX2 and AVX-512 F, BW, VL and VNNI detected just above.
        if unsafe { super::vnni512::eval_i8(p, input, output) } {
            return;
        }
    }
    if let Some(cpu) = crate::arch::x86_vnni::detected() {
        return eval_i8_vnni_on(cpu, p, input, output);
    }
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input, output) }
}

/// Safe entry for the VNNI form in the encoding `cpu` proves.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_vnni_on(
    cpu: crate::arch::x86_vnni::VnniCpu,
    p: &DepthwiseConv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
) {
    crate::arch::x86_vnni::with_vnni!(cpu, eval_i8_vnni(p, input, output))
}

/// Safe entry for the 512-bit form alone (the AVX2 form where it does not apply); the CPU must
/// pass [`crate::arch::x86_avx512_conv::detected`].
#[cfg(test)]
pub(crate) fn eval_i8_avx512_only(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    assert!(crate::arch::x86_avx512_conv::detected());
    // SAFETY: AVX2 and AVX-512 F, BW, VL and VNNI detected just above.
    unsafe {
        if !super::vnni512::eval_i8(p, input, output) {
            eval_i8(p, input, output)
        }
    }
}

/// Safe entry for the plain AVX2 form (tests compare both forms with the reference).
#[cfg(test)]
pub(crate) fn eval_i8_avx2_only(p: &DepthwiseConv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: AVX2 detected just above.
    unsafe { eval_i8(p, input, output) }
}

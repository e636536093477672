//! AVX2 int8 Conv2D, bit-exact to [`super::reference::eval_i8`].
//!
//! The convolution runs as a register-blocked matrix product over 16-bit lanes:
//!
//! - **Weights** of a chunk of output channels are widened to int16 once per call and packed in
//!   panels of eight channels: for each pair of reduction indices `(k, k + 1)` (the weights'
//!   `(ky, kx, c)` order, padded with one zero when `kh·kw·in_c` is odd), eight channels' two
//!   weights, 32 bytes. Channels past `out_c` are zeros.
//! - **Patches**: for each of [`P`] output pixels, the receptive field is written once as int16
//!   `x - input_zero_point` in the same order; taps in the padding are 0, which is exactly what
//!   the reference's skipped taps contribute. Runs of `kw·in_c` contiguous input values (dilation
//!   1, the whole row inside the input) are widened sixteen at a time.
//! - **Tile**: `P` pixels × 16 output channels in 8 accumulators (the bias to start with). For each
//!   pair of reduction indices, a pixel's two patch values are broadcast to all lanes and
//!   `vpmaddwd` multiplies them by the panel's eight channels' weights, adding the two products
//!   into each 32-bit lane (`|x - zp| ≤ 255`, `|w| ≤ 128`: the pair sum is below 2¹⁷, exact),
//!   accumulated with wrapping 32-bit adds.
//!
//! With AVX-VNNI (detected at run time) the kernel table runs [`super::vnni`] instead, the same
//! blocking over bytes with `vpdpbusd` (twice the products per instruction).
//!
//! Every accumulator is the bias plus the reference's products summed modulo 2³² in another
//! order: the same `i32`. Requantization is [`super::requant_avx2`] (bit-exact). Patches longer
//! than [`K_MAX`] lanes use the per-tap dot-product loop ([`super::dot_variant`]). Nothing is
//! allocated: the buffers live on the stack (about 17 KiB), and only the parts a call uses are
//! written.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::reference::tap;
use super::requant_avx2::{store_bytes, Finish, Rq8};
use super::Conv2dParams;
#[cfg(any(test, feature = "std"))]
use crate::arch::x86_vnni::Vnni;

/// Output pixels per tile.
const P: usize = 4;
/// Longest patch (`kh·kw·in_c` rounded up to even) on the blocked path.
const K_MAX: usize = 512;
/// int16 packed weights held per chunk of output channels (at least one panel of K_MAX).
const W_MAX: usize = 4096;
/// Groups of eight output channels per chunk.
const G_MAX: usize = 16;

/// `acc + Σ pairs x·w` over 32-bit lanes: `vpmaddwd` + `vpaddd`, or `vpdpwssd`.
pub(crate) trait Mac {
    /// # Safety
    /// The CPU must support the instructions the implementation uses.
    unsafe fn mac(acc: __m256i, x: __m256i, w: __m256i) -> __m256i;
}

/// `vpmaddwd` then `vpaddd` (AVX2).
pub(crate) struct MaddAdd;

impl Mac for MaddAdd {
    #[inline(always)]
    unsafe fn mac(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)) }
    }
}

/// `vpdpwssd` in `V`'s encoding: the same pair products, added to `acc` with wrapping (the
/// non-saturating form). Like every VNNI form, reached only through run-time CPU detection.
#[cfg(any(test, feature = "std"))]
pub(crate) struct Dpwssd<V>(core::marker::PhantomData<V>);

#[cfg(any(test, feature = "std"))]
impl<V: Vnni> Mac for Dpwssd<V> {
    #[inline(always)]
    unsafe fn mac(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: the caller guarantees `V`'s encoding.
        unsafe { V::dpwssd(acc, x, w) }
    }
}

/// AVX2 Conv2D.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
#[inline(never)]
pub unsafe fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    // SAFETY: AVX2 is enabled here; the caller checked the params.
    unsafe { body::<MaddAdd>(p, input, output) }
}

/// The VNNI form: [`super::vnni`]'s `vpdpbusd` kernel, or this module's kernel for patches
/// too long for it.
///
/// # Safety
/// The CPU must support AVX2 and `V`'s encoding. Requires a successful [`super::check_i8`].
#[cfg(any(test, feature = "std"))]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn eval_i8_vnni<V: Vnni>(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    // SAFETY: AVX2 is enabled here; the caller guarantees `V`'s encoding and checked the params.
    unsafe {
        if !super::vnni::eval_i8::<V>(p, input, output) {
            // One out-of-line copy of the AVX2 kernel serves every encoding.
            eval_i8(p, input, output)
        }
    }
}

/// Writes `src[i] - zp` to `dst[i]` (`dst.len() == src.len()`), sixteen lanes at a time.
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn widen(src: &[i8], zp: i32, dst: &mut [i16]) {
    let n = src.len().min(dst.len());
    let mut i = 0;
    // SAFETY (whole block): the caller guarantees AVX2; every access below is `i + lanes <= n`.
    unsafe {
        let z = _mm256_set1_epi16(zp as i16);
        while i + 16 <= n {
            let v = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            let v = _mm256_sub_epi16(_mm256_cvtepi8_epi16(v), z);
            _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, v);
            i += 16;
        }
        let z = _mm256_castsi256_si128(z);
        if i + 8 <= n {
            let v = _mm_loadl_epi64(src.as_ptr().add(i) as *const __m128i);
            let v = _mm_sub_epi16(_mm_cvtepi8_epi16(v), z);
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, v);
            i += 8;
        }
        if i + 4 <= n {
            let b = (src.as_ptr().add(i) as *const i32).read_unaligned();
            let v = _mm_sub_epi16(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(b)), z);
            _mm_storel_epi64(dst.as_mut_ptr().add(i) as *mut __m128i, v);
            i += 4;
        }
    }
    while i < n {
        dst[i] = (src[i] as i32 - zp) as i16;
        i += 1;
    }
}

#[inline(always)]
unsafe fn body<M: Mac>(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    let [n, _, _, in_c] = s.input.map(|d| d as usize);
    let [_, oh, ow, out_c] = s.output.map(|d| d as usize);
    let [kh, kw] = s.kernel.map(|d| d as usize);
    let depth = kh * kw * in_c;
    let k2 = depth.next_multiple_of(2);
    if k2 > K_MAX {
        return super::dot_variant::eval_i8_with(p, input, output, |x, xo, wt| {
            // SAFETY: the caller guarantees AVX2 (this function's contract).
            unsafe { crate::arch::x86::dot_offset_i8_avx2(x, xo, wt, 0) }
        });
    }
    let kp = k2 / 2;
    // One panel (eight channels) is `kp · 16` int16 values; k2 ≤ K_MAX keeps 8·k2 ≤ W_MAX.
    let panel = kp * 16;
    let chunk = (W_MAX / panel).min(G_MAX);
    let groups = out_c.div_ceil(8);
    let pixels = n * oh * ow;
    let zp = p.input_zero_point;
    // SAFETY: the caller guarantees AVX2.
    let fin = unsafe { Finish::new(p.output_zero_point, p.activation.min, p.activation.max) };
    let mut ws_buf = [const { MaybeUninit::<i16>::uninit() }; W_MAX];
    let ws = zeroed(&mut ws_buf, chunk.min(groups) * panel);
    let mut xs_buf = [const { MaybeUninit::<i16>::uninit() }; P * K_MAX];
    let xs = zeroed(&mut xs_buf, P * k2);
    // SAFETY: the caller guarantees AVX2.
    let mut rq = [unsafe { Rq8::zero() }; G_MAX];
    let mut g0 = 0;
    while g0 < groups {
        let gn = chunk.min(groups - g0);
        // Pack the chunk's weights: ws[(g·kp + t)·16 + 2j + e] = w[(g0 + g)·8 + j][2t + e].
        if g0 > 0 {
            ws[..gn * panel].fill(0);
        }
        for g in 0..gn {
            // SAFETY: the caller guarantees AVX2.
            unsafe {
                pack_panel(
                    p.weights,
                    depth,
                    (g0 + g) * 8,
                    out_c,
                    &mut ws[g * panel..(g + 1) * panel],
                )
            };
            // SAFETY: the caller guarantees AVX2; `(g0 + g)·8 < out_c`, the slices' length.
            rq[g] = unsafe { Rq8::new(p.bias, p.output_multiplier, p.output_shift, (g0 + g) * 8) };
        }
        let ws = &ws[..gn * panel];
        let mut pix0 = 0;
        let mut at = PixelAt::new(oh, ow);
        while pix0 < pixels {
            let pp = P.min(pixels - pix0);
            // Patches of pixels pix0..pix0 + pp (every lane written).
            for q in 0..pp {
                let patch = &mut xs[q * k2..(q + 1) * k2];
                if depth < k2 {
                    patch[depth] = 0;
                }
                build_patch(p, input, at.get(), &mut patch[..depth], 0, &Widen(zp));
                at.next();
            }
            let xs = &xs[..pp * k2];
            let mut g = 0;
            while g < gn {
                let two = g + 2 <= gn;
                // SAFETY: the caller guarantees AVX2 (and AVX-VNNI for `Dpwssd`); the slices
                // hold `pp` patches of `k2` values and `1` or `2` panels of `kp · 16` values.
                unsafe {
                    if two {
                        let w2 = &ws[g * panel..(g + 2) * panel];
                        let bias = [rq[g].bias, rq[g + 1].bias];
                        match pp {
                            4 => store::<4, 2>(
                                tile::<M, 4, 2>(xs, k2, w2, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                            3 => store::<3, 2>(
                                tile::<M, 3, 2>(xs, k2, w2, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                            2 => store::<2, 2>(
                                tile::<M, 2, 2>(xs, k2, w2, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                            _ => store::<1, 2>(
                                tile::<M, 1, 2>(xs, k2, w2, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                        }
                    } else {
                        let w1 = &ws[g * panel..(g + 1) * panel];
                        let bias = [rq[g].bias];
                        match pp {
                            4 => store::<4, 1>(
                                tile::<M, 4, 1>(xs, k2, w1, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                            3 => store::<3, 1>(
                                tile::<M, 3, 1>(xs, k2, w1, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                            2 => store::<2, 1>(
                                tile::<M, 2, 1>(xs, k2, w1, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                            _ => store::<1, 1>(
                                tile::<M, 1, 1>(xs, k2, w1, bias),
                                &fin,
                                &rq[g..],
                                output,
                                out_c,
                                pix0,
                                (g0 + g) * 8,
                            ),
                        }
                    }
                }
                g += if two { 2 } else { 1 };
            }
            pix0 += pp;
        }
        g0 += gn;
    }
}

/// Output pixel coordinates `(b, oy, ox)`, advanced in NHWC order (no divisions per pixel).
#[derive(Clone, Copy)]
pub(super) struct PixelAt {
    at: (usize, usize, usize),
    oh: usize,
    ow: usize,
}

impl PixelAt {
    /// The first pixel of an output `[_, oh, ow, _]`.
    pub(super) fn new(oh: usize, ow: usize) -> PixelAt {
        PixelAt {
            at: (0, 0, 0),
            oh,
            ow,
        }
    }

    /// The current pixel.
    #[inline(always)]
    pub(super) fn get(&self) -> (usize, usize, usize) {
        self.at
    }

    /// Moves to the next pixel.
    #[inline(always)]
    pub(super) fn next(&mut self) {
        let (b, oy, ox) = &mut self.at;
        *ox += 1;
        if *ox == self.ow {
            *ox = 0;
            *oy += 1;
            if *oy == self.oh {
                *oy = 0;
                *b += 1;
            }
        }
    }
}

/// How input values are written into a patch.
pub(super) trait CopyIn<T> {
    /// Writes `src`'s values to `dst` (same length).
    fn copy(&self, src: &[i8], dst: &mut [T]);
}

/// `x - zp` as int16 ([`widen`]); only built inside AVX2 functions.
struct Widen(i32);

impl CopyIn<i16> for Widen {
    #[inline(always)]
    fn copy(&self, src: &[i8], dst: &mut [i16]) {
        // SAFETY: `Widen` is only used by `body`, which runs with AVX2 (its callers' contract).
        unsafe { widen(src, self.0, dst) }
    }
}

/// Writes the patch (receptive field) of output pixel `(b, oy, ox)` to `patch` (`kh·kw·in_c` values in
/// the weights' `(ky, kx, c)` order): `copy.copy(src, dst)` for the taps inside the input, `pad` for
/// the taps in the padding. With dilation 1 along the width, the valid taps of a kernel row are
/// one contiguous run of the input row, copied at once.
#[inline(always)]
pub(super) fn build_patch<T: Copy>(
    p: &Conv2dParams<'_>,
    input: &[i8],
    (b, oy, ox): (usize, usize, usize),
    patch: &mut [T],
    pad: T,
    copy: &impl CopyIn<T>,
) {
    let s = &p.shape;
    let [_, h, w, in_c] = s.input.map(|d| d as usize);
    let [kh, kw] = s.kernel.map(|d| d as usize);
    let run = kw * in_c;
    for (ky, row) in patch.chunks_exact_mut(run).enumerate().take(kh) {
        let Some(iy) = tap(oy, ky, s.stride[0], s.dilation[0], s.padding.top, h as u32) else {
            row.fill(pad);
            continue;
        };
        let line = (b * h + iy) * w;
        if s.dilation[1] == 1 {
            // Tap kx reads column ox·sw + kx - left: valid for kx in lo..hi.
            let start = ox * s.stride[1] as usize;
            let left = s.padding.left as usize;
            let lo = left.saturating_sub(start).min(kw);
            let hi = (w + left).saturating_sub(start).clamp(lo, kw);
            if lo > 0 {
                row[..lo * in_c].fill(pad);
            }
            if hi > lo {
                let x0 = (line + start + lo - left) * in_c;
                copy.copy(
                    &input[x0..x0 + (hi - lo) * in_c],
                    &mut row[lo * in_c..hi * in_c],
                );
            }
            if hi < kw {
                row[hi * in_c..].fill(pad);
            }
            continue;
        }
        for (kx, dst) in row.chunks_exact_mut(in_c).enumerate() {
            match tap(ox, kx, s.stride[1], s.dilation[1], s.padding.left, w as u32) {
                Some(ix) => copy.copy(&input[(line + ix) * in_c..(line + ix + 1) * in_c], dst),
                None => dst.fill(pad),
            }
        }
    }
}

/// The input with its padding, converted once per call: `buf[((b·hp + y)·wp + x)·in_c + c]`
/// holds `copy` of the input value, or `pad` in the padding. With dilation 1 along the width, a
/// kernel row of a patch is then the contiguous run of `kw·in_c` values at
/// [`Padded::row_start`], copied in fixed chunks of `CH` values ([`Padded::copy_row`]). Used by
/// the VNNI kernels ([`super::vnni`], [`super::vnni512`]), which exist under `std` or in tests.
#[cfg(any(test, feature = "std"))]
pub(super) struct Padded<'b, T> {
    buf: &'b [T],
    hp: usize,
    wp: usize,
}

#[cfg(any(test, feature = "std"))]
impl<'b, T: Copy> Padded<'b, T> {
    /// Builds the padded input in `space`, or `None` when it does not fit (with `CH` values of
    /// slack for the chunked copies) or the width is dilated.
    #[inline(always)]
    pub(super) fn new<const CH: usize>(
        p: &Conv2dParams<'_>,
        input: &[i8],
        pad: T,
        copy: &impl CopyIn<T>,
        space: &'b mut [MaybeUninit<T>],
    ) -> Option<Padded<'b, T>> {
        let s = &p.shape;
        let [n, h, w, in_c] = s.input.map(|d| d as usize);
        let hp = h + s.padding.top as usize + s.padding.bottom as usize;
        let wp = w + s.padding.left as usize + s.padding.right as usize;
        let len = n.checked_mul(hp)?.checked_mul(wp)?.checked_mul(in_c)?;
        if s.dilation[1] != 1 || len + CH > space.len() {
            return None;
        }
        let part = &mut space[..len + CH];
        for v in part.iter_mut() {
            v.write(pad);
        }
        // SAFETY: every element of `part` was initialised just above, and `MaybeUninit<T>` has
        // the layout of `T`.
        let buf = unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) };
        let (top, left) = (s.padding.top as usize, s.padding.left as usize);
        for b in 0..n {
            for y in 0..h {
                let src = &input[(b * h + y) * w * in_c..][..w * in_c];
                let at = ((b * hp + y + top) * wp + left) * in_c;
                copy.copy(src, &mut buf[at..at + w * in_c]);
            }
        }
        Some(Padded { buf, hp, wp })
    }

    /// Writes the patch of output pixel `(b, oy, ox)`: `kh` rows of `run = kw·in_c` values, each
    /// copied as whole chunks of `CH` values. `patch` must hold `kh·run` values plus `CH` of
    /// slack; the slack and the values after `kh·run` are overwritten with other values.
    #[inline(always)]
    pub(super) fn copy_patch<const CH: usize>(
        &self,
        p: &Conv2dParams<'_>,
        (b, oy, ox): (usize, usize, usize),
        patch: &mut [T],
    ) {
        let s = &p.shape;
        let in_c = s.input[3] as usize;
        let [kh, kw] = s.kernel.map(|d| d as usize);
        let run = kw * in_c;
        let (sh, sw, dh) = (
            s.stride[0] as usize,
            s.stride[1] as usize,
            s.dilation[0] as usize,
        );
        for ky in 0..kh {
            let src0 = ((b * self.hp + oy * sh + ky * dh) * self.wp + ox * sw) * in_c;
            let mut k = 0;
            while k < run {
                let dst = &mut patch[ky * run + k..ky * run + k + CH];
                dst.copy_from_slice(&self.buf[src0 + k..src0 + k + CH]);
                k += CH;
            }
        }
    }
}

/// The first `len` values of `buf`, set to zero. Stack buffers are declared uninitialised so that
/// a call only writes the part it uses.
#[inline(always)]
pub(crate) fn zeroed<T: Copy + Default>(buf: &mut [MaybeUninit<T>], len: usize) -> &mut [T] {
    let part = &mut buf[..len];
    for v in part.iter_mut() {
        v.write(T::default());
    }
    // SAFETY: every element of `part` was initialised just above, and `MaybeUninit<T>` has the
    // layout of `T`.
    unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// Packs the weights of output channels `oc0..min(oc0 + 8, out_c)` (rows of `depth` values) into
/// one panel: `dst[t·16 + 2j + e] = w[oc0 + j][2t + e]`. `dst` (`depth.div_ceil(2) · 16` values)
/// must be zero where no weight lands (channels past `out_c`, the odd depth's last lane).
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
unsafe fn pack_panel(weights: &[i8], depth: usize, oc0: usize, out_c: usize, dst: &mut [i16]) {
    let rows = (out_c - oc0).min(8);
    let mut k0 = 0;
    if rows == 8 {
        let src = &weights[oc0 * depth..(oc0 + 8) * depth];
        let dst16 = &mut dst[..depth / 16 * 128];
        // Sixteen weights (eight pairs) of each of the eight rows, widened, then an 8×8 transpose
        // of the 32-bit pairs: vector `t` holds pair `t` of rows 0..8.
        while k0 + 16 <= depth {
            // SAFETY (whole block): the caller guarantees AVX2; row `j` reads
            // `src[j·depth + k0..][..16]` (`k0 + 16 <= depth`), the stores write
            // `dst16[k0·8 + t·16..][..16]` (`t < 8`, `k0·8 + 128 <= depth / 16 · 128`).
            unsafe {
                let mut r = [_mm256_setzero_si256(); 8];
                for (j, v) in r.iter_mut().enumerate() {
                    let x = _mm_loadu_si128(src.as_ptr().add(j * depth + k0) as *const __m128i);
                    *v = _mm256_cvtepi8_epi16(x);
                }
                let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
                let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
                let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
                let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
                let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
                let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
                let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
                let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
                let u = [
                    _mm256_unpacklo_epi64(t0, t2),
                    _mm256_unpackhi_epi64(t0, t2),
                    _mm256_unpacklo_epi64(t1, t3),
                    _mm256_unpackhi_epi64(t1, t3),
                ];
                let v = [
                    _mm256_unpacklo_epi64(t4, t6),
                    _mm256_unpackhi_epi64(t4, t6),
                    _mm256_unpacklo_epi64(t5, t7),
                    _mm256_unpackhi_epi64(t5, t7),
                ];
                let d = dst16.as_mut_ptr().add(k0 * 8);
                for q in 0..4 {
                    let lo = _mm256_permute2x128_si256::<0x20>(u[q], v[q]);
                    let hi = _mm256_permute2x128_si256::<0x31>(u[q], v[q]);
                    _mm256_storeu_si256(d.add(q * 16) as *mut __m256i, lo);
                    _mm256_storeu_si256(d.add((q + 4) * 16) as *mut __m256i, hi);
                }
            }
            k0 += 16;
        }
    }
    for j in 0..rows {
        let row = &weights[(oc0 + j) * depth + k0..(oc0 + j + 1) * depth];
        for (k, &v) in (k0..).zip(row) {
            dst[(k / 2) * 16 + 2 * j + (k & 1)] = v as i16;
        }
    }
}

/// `PP` pixels × `NB` panels of sums: `acc[q][g] = bias[g] + Σ_t x_q[2t..2t+2] · panel_g[t]`.
///
/// # Safety
/// The CPU must support what `M` uses (AVX2 at least).
#[inline(always)]
unsafe fn tile<M: Mac, const PP: usize, const NB: usize>(
    xs: &[i16],
    k2: usize,
    ws: &[i16],
    bias: [__m256i; NB],
) -> [[__m256i; NB]; PP] {
    let kp = k2 / 2;
    assert!(xs.len() >= PP * k2 && ws.len() >= NB * kp * 16);
    let (xp, wp) = (xs.as_ptr(), ws.as_ptr());
    let mut acc = [bias; PP];
    for t in 0..kp {
        // SAFETY: `t < kp`: the loads read `wp[g·kp·16 + t·16..][..16]` (`g < NB`) and
        // `xp[q·k2 + 2t..][..2]` (`q < PP`), inside the lengths asserted above. The caller
        // guarantees the instructions.
        unsafe {
            let mut wv = [_mm256_setzero_si256(); NB];
            for (g, v) in wv.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(wp.add(g * kp * 16 + t * 16) as *const __m256i);
            }
            for (q, row) in acc.iter_mut().enumerate() {
                let pair = (xp.add(q * k2 + 2 * t) as *const i32).read_unaligned();
                let xb = _mm256_set1_epi32(pair);
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = M::mac(*a, xb, *v);
                }
            }
        }
    }
    acc
}

/// Requantizes a tile and writes pixels `pix0..pix0 + PP`, channels `c0..min(c0 + 8·NB, out_c)`.
///
/// # Safety
/// The CPU must support AVX2. `rq` holds at least `NB` groups; `output` holds `out_c` values per
/// pixel for every pixel of the tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn store<const PP: usize, const NB: usize>(
    acc: [[__m256i; NB]; PP],
    fin: &Finish,
    rq: &[Rq8],
    output: &mut [i8],
    out_c: usize,
    pix0: usize,
    c0: usize,
) {
    let end = (c0 + 8 * NB).min(out_c);
    for (q, a) in acc.iter().enumerate() {
        let out = &mut output[(pix0 + q) * out_c + c0..(pix0 + q) * out_c + end];
        // SAFETY: the caller guarantees AVX2.
        unsafe {
            let v = if NB == 2 {
                fin.pack16(a[0], &rq[0], a[NB - 1], &rq[1])
            } else {
                fin.pack8(a[0], &rq[0])
            };
            store_bytes(v, out);
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`: the VNNI
/// form when the CPU has either encoding.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.sorted.edgeloop.conv")]
pub(crate) fn eval_i8_detected(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
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
    p: &Conv2dParams<'_>,
    input: &[i8],
    output: &mut [i8],
) {
    crate::arch::x86_vnni::with_vnni!(cpu, eval_i8_vnni(p, input, output))
}

/// Safe entry for the 512-bit form alone (the AVX2 form where it does not apply); the CPU must
/// pass [`crate::arch::x86_avx512_conv::detected`].
#[cfg(test)]
pub(crate) fn eval_i8_avx512_only(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
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
pub(crate) fn eval_i8_avx2_only(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: AVX2 detected just above.
    unsafe { eval_i8(p, input, output) }
}

// The widened dot products below are used by `crate::ops::gemm_avx2` (FullyConnected,
// BatchMatMul).

/// `[Σ_k x[k]·w[r·len + k]]` for `r < 4`, `len = x.len()` (a multiple of 16), wrapping int32,
/// as one vector of the four sums.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot4_i16_v(x: &[i16], w: &[i16]) -> __m128i {
    let len = x.len();
    assert!(len.is_multiple_of(16) && w.len() >= 4 * len);
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
    assert!(len.is_multiple_of(16) && w.len() >= len);
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

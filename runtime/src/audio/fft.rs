//! Fixed-point FFT of a real frame over [`FFT_SIZE`] points, as a [`CFFT_SIZE`]-point complex
//! FFT and one split stage.
//!
//! The windowed frame, halved, is packed into [`CFFT_SIZE`] complex points: even samples are
//! the real parts, odd samples the imaginary parts (loaded bit-reversed by [`load_windowed`]).
//! Their radix-2
//! decimation-in-time FFT ([`fft_in_place`]) uses Q31 twiddles from a quarter-wave table; each
//! butterfly is computed in 64-bit and halved with rounding (`(a·2^31 ± b·w + 2^31) >> 32`), so
//! the result is the complex DFT divided by [`CFFT_SIZE`]. [`split_real`] then separates the
//! even and odd samples' spectra (conjugate symmetry) and joins them with the [`FFT_SIZE`]-point
//! twiddles, rounding once: bins `0..=FFT_SIZE/2` of the real frame's DFT divided by
//! [`FFT_SIZE`] (the halving at the load and the `CFFT_SIZE` of the complex FFT make
//! `FFT_SIZE`), for fewer than half the butterflies of a 512-point complex FFT (1,024 instead
//! of 2,304) and 129 split steps.
//!
//! Magnitudes: a windowed sample is below 2^30, halved below 2^29, so a packed point's magnitude
//! is below 2^29.5; a halving butterfly never makes a magnitude larger than the larger of its
//! two inputs' (plus the half LSB of its rounding), so every component stays below 2^30 and
//! every 64-bit sum below stays under 2^63 (the split's sums under 2^62.5).

use super::tables::{COS_Q31, HANN_Q15};
use super::{Scratch, BINS, FFT_SIZE, WINDOW};

/// Points of the complex FFT: the real frame's samples in pairs.
pub const CFFT_SIZE: usize = FFT_SIZE / 2;

/// log2 of [`CFFT_SIZE`] (complex FFT stages).
pub const CFFT_LOG2: u32 = CFFT_SIZE.trailing_zeros();

/// `cos` and `sin` of `2πk / FFT_SIZE` in Q31 for `k` in `0..FFT_SIZE/2`. Both fit `i32`: the
/// table's values are at most `2^31 − 1` in magnitude, so their negations are too.
#[inline]
fn twiddle(k: usize) -> (i32, i32) {
    const Q: usize = FFT_SIZE / 4;
    let c = |i: usize| COS_Q31.get(i).copied().unwrap_or(0);
    if k <= Q {
        (c(k), c(Q - k))
    } else {
        (-c(2 * Q - k), c(k - Q))
    }
}

/// Writes `(frame · Hann) >> 1` (Q15 products halved, below 2^29 in magnitude) as
/// [`CFFT_SIZE`] complex points in bit-reversed order: sample `2m` is the real and sample
/// `2m + 1` the imaginary part of point `m`, zero-padded to [`FFT_SIZE`] samples. Only the first [`CFFT_SIZE`]
/// elements of `scratch.re` and `scratch.im` are written.
pub fn load_windowed(frame: &[i16; WINDOW], scratch: &mut Scratch) {
    let (Some(re), Some(im)) = (
        scratch.re.first_chunk_mut::<CFFT_SIZE>(),
        scratch.im.first_chunk_mut::<CFFT_SIZE>(),
    ) else {
        return;
    };
    re.fill(0);
    im.fill(0);
    let pairs = frame.chunks_exact(2).zip(HANN_Q15.chunks_exact(2));
    for (m, (x, w)) in pairs.enumerate() {
        let r = ((m as u32).reverse_bits() >> (32 - CFFT_LOG2)) as usize;
        if let (Some(a), Some(b)) = (re.get_mut(r), im.get_mut(r)) {
            *a = (x[0] as i32 * w[0] as i32) >> 1;
            *b = (x[1] as i32 * w[1] as i32) >> 1;
        }
    }
}

/// One radix-2 butterfly on `(re[a], im[a])` and `(re[b], im[b])` with the twiddle `(c, s)`:
/// `a ± b · (c − i s)`, each component `(x · 2^31 ± t + 2^31) >> 32`.
///
/// The products are of two `i32` values widened to `i64` (one `SMULL`/`SMLAL` each on a
/// Cortex-M4), all exact; with every magnitude below 2^30 no sum overflows (module docs).
#[inline(always)]
fn butterfly(
    re: &mut [i32; CFFT_SIZE],
    im: &mut [i32; CFFT_SIZE],
    a: usize,
    b: usize,
    c: i32,
    s: i32,
) {
    let (ar, ai) = (re[a] as i64, im[a] as i64);
    let (br, bi) = (re[b], im[b]);
    let wide = |x: i32, y: i32| x as i64 * y as i64;
    // b · (c − i s)
    let tr = wide(br, c) + wide(bi, s);
    let ti = wide(bi, c) - wide(br, s);
    const ROUND: i64 = 1 << 31;
    re[a] = (((ar << 31) + tr + ROUND) >> 32) as i32;
    im[a] = (((ai << 31) + ti + ROUND) >> 32) as i32;
    re[b] = (((ar << 31) - tr + ROUND) >> 32) as i32;
    im[b] = (((ai << 31) - ti + ROUND) >> 32) as i32;
}

/// In-place forward complex FFT of bit-reversed input (`re`, `im`), scaled by
/// `1 / CFFT_SIZE`: the specification, stage by stage and block by block, the twiddle looked
/// up per butterfly (`2πj/(2·half)` is entry `j · FFT_SIZE/(2·half)` of the [`FFT_SIZE`]-point
/// table).
///
/// Every magnitude must be below 2^30 (as [`load_windowed`] guarantees).
pub fn fft_in_place_reference(re: &mut [i32; CFFT_SIZE], im: &mut [i32; CFFT_SIZE]) {
    let mut half = 1;
    while half < CFFT_SIZE {
        let step = FFT_SIZE / (2 * half);
        let mut start = 0;
        while start < CFFT_SIZE {
            for j in 0..half {
                let (c, s) = twiddle(j * step);
                butterfly(re, im, start + j, start + j + half, c, s);
            }
            start += 2 * half;
        }
        half *= 2;
    }
}

/// [`fft_in_place_reference`] with the same butterflies in another order: within a stage the
/// butterflies are independent (each reads and writes only its own pair), so this runs them
/// twiddle by twiddle (`j` outer, blocks inner) and looks each twiddle up once per stage
/// instead of once per butterfly. The blocks are walked as chunks split at `half`, so the
/// element accesses need no bounds checks in the inner loop, and each butterfly is
/// [`butterfly_shared`]: the same integers as [`butterfly`], so the same result. Bit-exact to
/// the reference; the tests compare them. The same precondition: every magnitude below 2^30.
///
/// On the Cortex-M4 (`kws` firmware, QEMU instruction count) the inner loop is 35 instructions
/// per butterfly, two of them a spilled operand (session 19's form, with indices and two
/// multiply-accumulates per output, ran 49). Tried and slower: the twiddles walked straight
/// from the table with a stride, in two ranges (two copies of the inner loop, 37 and 44
/// instructions), and this function kept out of line (+0.9% per clip).
pub fn fft_in_place(re: &mut [i32; CFFT_SIZE], im: &mut [i32; CFFT_SIZE]) {
    let mut half = 1;
    while half < CFFT_SIZE {
        let step = FFT_SIZE / (2 * half);
        for j in 0..half {
            let (c, s) = twiddle(j * step);
            // `−s` fits `i32` (`|s| ≤ 2^31 − 1`).
            let ns = -s;
            let blocks = re
                .chunks_exact_mut(2 * half)
                .zip(im.chunks_exact_mut(2 * half));
            for (r, i) in blocks {
                let (ra, rb) = r.split_at_mut(half);
                let (ia, ib) = i.split_at_mut(half);
                // Always `Some`: `j < half`, the length of each half-block.
                if let (Some(ra), Some(rb), Some(ia), Some(ib)) =
                    (ra.get_mut(j), rb.get_mut(j), ia.get_mut(j), ib.get_mut(j))
                {
                    butterfly_shared([ra, rb], [ia, ib], c, s, ns);
                }
            }
        }
        half *= 2;
    }
}

/// [`butterfly`] on `(re[a], im[a]) = (*r[0], *i[0])` and `(re[b], im[b]) = (*r[1], *i[1])`, with
/// each product sum computed once and shared by the `+` and `−` outputs, and
/// `bi·c − br·s = bi·c + br·(−s)` with `ns = −s` computed once per twiddle: on a Cortex-M4 each
/// sum is one `SMULL` and one `SMLAL`, each output one 64-bit add or subtract of which only the
/// high word is kept.
///
/// The reference's `x·2^31 + 2^31 ± t` is `(x + 1)·2^31 ± t` (`x + 1` fits `i32`: |x| < 2^30),
/// built from its two 32-bit halves, `(x + 1) >> 1` and `(x + 1) << 31` (the compiler otherwise
/// spends two instructions per high half on the sign-extended shift): the same `i64` values, so
/// the same integers.
#[inline(always)]
fn butterfly_shared(r: [&mut i32; 2], i: [&mut i32; 2], c: i32, s: i32, ns: i32) {
    let wide = |x: i32, y: i32| x as i64 * y as i64;
    let ([ra, rb], [ia, ib]) = (r, i);
    let (br, bi) = (*rb, *ib);
    let tr = wide(br, c) + wide(bi, s);
    let ti = wide(bi, c) + wide(br, ns);
    // (x + 1)·2^31 as an i64 from its halves.
    let base = |x: i32| {
        let u = x + 1;
        (((u >> 1) as i64) << 32) | (((u as u32) << 31) as i64)
    };
    let (base_r, base_i) = (base(*ra), base(*ia));
    *ra = ((base_r + tr) >> 32) as i32;
    *rb = ((base_r - tr) >> 32) as i32;
    *ia = ((base_i + ti) >> 32) as i32;
    *ib = ((base_i - ti) >> 32) as i32;
}

/// The real frame's spectrum from the packed complex one: `re[..CFFT_SIZE]`, `im[..CFFT_SIZE]`
/// hold `Z/CFFT_SIZE` in natural order ([`fft_in_place`]'s output); on return `re[k]`, `im[k]`
/// hold bin `k` of the frame's DFT divided by [`FFT_SIZE`] for `k` in `0..=FFT_SIZE/2`: the
/// specification, in 64-bit arithmetic throughout.
///
/// With `A = Z[k]/N'`, `B = Z[N' − k]/N'` (`N' = CFFT_SIZE`, index modulo `N'`, `Z` the DFT of
/// the halved, packed frame) and the [`FFT_SIZE`]-point twiddle `W = c − i s` of bin `k`, the
/// even samples' spectrum is `(A + B̄)/2` and the odd samples' `(A − B̄)/(2i)`, so (the frame
/// was halved) `X[k]/N = (A + B̄ + W·P)/2` and `X[N' − k]/N = conj(A + B̄ − W·P)/2` with
/// `P = (A − B̄)/i = (ai + bi) + i(br − ar)`. Per component: `(u·2^31 ± t + 2^31) >> 32` with `u`
/// the component of `A + B̄` and `t` that of `W·P` in Q31, rounded once. Each pair `(k, N' − k)`
/// reads and writes only its own two bins (bin `N'` is written from pair 0), so the split runs
/// in place. Bin `N'/2` pairs with itself: only the first formula is used there.
pub fn split_real_reference(re: &mut [i32; BINS], im: &mut [i32; BINS]) {
    const ROUND: i64 = 1 << 31;
    for k in 0..=CFFT_SIZE / 2 {
        let j = (CFFT_SIZE - k) % CFFT_SIZE;
        let [ar, ai, br, bi] = [re[k], im[k], re[j], im[j]].map(i64::from);
        let (c, s) = twiddle(k);
        let (c, s) = (c as i64, s as i64);
        // A + B̄ and W·P.
        let (ur, ui) = ((ar + br) << 31, (ai - bi) << 31);
        let (pr, pi) = (ai + bi, br - ar);
        let (tr, ti) = (c * pr + s * pi, c * pi - s * pr);
        re[k] = ((ur + tr + ROUND) >> 32) as i32;
        im[k] = ((ui + ti + ROUND) >> 32) as i32;
        if k != CFFT_SIZE / 2 {
            let m = CFFT_SIZE - k;
            re[m] = ((ur - tr + ROUND) >> 32) as i32;
            im[m] = ((ti - ui + ROUND) >> 32) as i32;
        }
    }
}

/// [`split_real_reference`], bit for bit, with 32-bit sums: every component is below 2^30 in
/// magnitude (module docs), so `ar + br`, `ai ± bi` and `br − ar` fit `i32`, each product sum
/// is one `SMULL` and one `SMLAL`, and each output is built as in [`butterfly_shared`]
/// (`u·2^31 + 2^31 = (u + 1)·2^31`, and `−ui·2^31 + 2^31 = (1 − ui)·2^31`). The pairs
/// `(k, N' − k)` for `k` in `1..N'/2` are walked as two slices, one reversed, with the
/// twiddles read straight from the quarter-wave table (`c = cos[k]`, `s = cos[N'/2 − k]`).
#[inline(never)]
pub fn split_real(re: &mut [i32; BINS], im: &mut [i32; BINS]) {
    const H: usize = CFFT_SIZE / 2;
    // Bin 0 with bin N' (A = B = Z[0]), and the bin that pairs with itself.
    let (r0, i0) = (re[0], im[0]);
    let [x0r, x0i, xnr, xni] = split_pair([r0, i0, r0, i0], COS_Q31[0], COS_Q31[H]);
    (re[0], im[0], re[CFFT_SIZE], im[CFFT_SIZE]) = (x0r, x0i, xnr, xni);
    let (rh, ih) = (re[H], im[H]);
    let [xhr, xhi, _, _] = split_pair([rh, ih, rh, ih], COS_Q31[H], COS_Q31[0]);
    (re[H], im[H]) = (xhr, xhi);
    // k in 1..H with N' − k in H+1..N' (reversed).
    let (re_lo, re_hi) = re[1..CFFT_SIZE].split_at_mut(H - 1);
    let (im_lo, im_hi) = im[1..CFFT_SIZE].split_at_mut(H - 1);
    let (re_hi, im_hi) = (&mut re_hi[1..], &mut im_hi[1..]);
    let cos = &COS_Q31[1..H];
    let pairs = re_lo
        .iter_mut()
        .zip(re_hi.iter_mut().rev())
        .zip(im_lo.iter_mut().zip(im_hi.iter_mut().rev()))
        .zip(cos.iter().zip(cos.iter().rev()));
    for (((ar, br), (ai, bi)), (&c, &s)) in pairs {
        [*ar, *ai, *br, *bi] = split_pair([*ar, *ai, *br, *bi], c, s);
    }
}

/// One pair of [`split_real`]: from `[ar, ai, br, bi]` (`A = Z[k]/N'`, `B = Z[N' − k]/N'`) and
/// the twiddle `(c, s)` of bin `k`, `[re, im]` of bins `k` and `N' − k`.
#[inline(always)]
fn split_pair([ar, ai, br, bi]: [i32; 4], c: i32, s: i32) -> [i32; 4] {
    let wide = |x: i32, y: i32| x as i64 * y as i64;
    let base = |x: i32| {
        let u = x + 1;
        (((u >> 1) as i64) << 32) | (((u as u32) << 31) as i64)
    };
    let (ur, ui) = (ar + br, ai - bi);
    let (pr, pi) = (ai + bi, br - ar);
    let tr = wide(c, pr) + wide(s, pi);
    // `c·pi − s·pr` as two multiply-accumulates (`−s` fits `i32`: `|s| ≤ 2^31 − 1`).
    let ti = wide(c, pi) + wide(-s, pr);
    let base_r = base(ur);
    [
        ((base_r + tr) >> 32) as i32,
        ((base(ui) + ti) >> 32) as i32,
        ((base_r - tr) >> 32) as i32,
        ((base(-ui) + ti) >> 32) as i32,
    ]
}

/// The frame's spectrum in `scratch` (bins `0..=FFT_SIZE/2` of its DFT divided by
/// [`FFT_SIZE`]): [`fft_in_place`] on the first [`CFFT_SIZE`] points, then [`split_real`].
/// `scratch` must hold [`load_windowed`]'s output.
pub fn real_fft(scratch: &mut Scratch) {
    if let (Some(re), Some(im)) = (
        scratch.re.first_chunk_mut::<CFFT_SIZE>(),
        scratch.im.first_chunk_mut::<CFFT_SIZE>(),
    ) {
        fft_in_place(re, im);
    }
    split_real(&mut scratch.re, &mut scratch.im);
}

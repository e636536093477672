//! Fixed-point radix-2 FFT over [`FFT_SIZE`] points: decimation in time, bit-reversed load,
//! Q31 twiddles from a quarter-wave table, each butterfly computed in 64-bit and halved with
//! rounding (`(a·2^31 ± b·w + 2^31) >> 32`), so nothing can overflow: magnitudes never grow
//! past the input's 2^30 bound, and the output is the DFT divided by [`FFT_SIZE`].

use super::tables::{COS_Q31, HANN_Q15};
use super::{Scratch, FFT_LOG2, FFT_SIZE, WINDOW};

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

/// Writes `frame · Hann` (Q15 products, at most 2^30 in magnitude) into `scratch.re` in
/// bit-reversed order, zero-padded to [`FFT_SIZE`]; zeroes `scratch.im`.
pub fn load_windowed(frame: &[i16; WINDOW], scratch: &mut Scratch) {
    scratch.re.fill(0);
    scratch.im.fill(0);
    for (n, (&x, &w)) in frame.iter().zip(HANN_Q15.iter()).enumerate() {
        let r = (n as u32).reverse_bits() >> (32 - FFT_LOG2);
        if let Some(slot) = scratch.re.get_mut(r as usize) {
            *slot = x as i32 * w as i32;
        }
    }
}

/// One radix-2 butterfly on `(re[a], im[a])` and `(re[b], im[b])` with the twiddle `(c, s)`:
/// `a ± b · (c − i s)`, each component `(x · 2^31 ± t + 2^31) >> 32`.
///
/// The products are of two `i32` values widened to `i64` (one `SMULL`/`SMLAL` each on a
/// Cortex-M4), all exact: `|b| ≤ 2^30` and `|c|, |s| < 2^31`, so no sum overflows.
#[inline(always)]
fn butterfly(
    re: &mut [i32; FFT_SIZE],
    im: &mut [i32; FFT_SIZE],
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

/// In-place forward FFT of bit-reversed input (`re`, `im`), scaled by `1 / FFT_SIZE`: the
/// specification, stage by stage and block by block, the twiddle looked up per butterfly.
///
/// Every component must be at most 2^30 in magnitude (as [`load_windowed`] guarantees).
pub fn fft_in_place_reference(re: &mut [i32; FFT_SIZE], im: &mut [i32; FFT_SIZE]) {
    let mut half = 1;
    while half < FFT_SIZE {
        let step = FFT_SIZE / (2 * half);
        let mut start = 0;
        while start < FFT_SIZE {
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
/// instead of once per butterfly (511 lookups per transform instead of 2304). The blocks are
/// walked as chunks split at `half`, so the element accesses need no bounds checks in the inner
/// loop, and each butterfly is [`butterfly_shared`]: the same integers as [`butterfly`], so the
/// same result. Bit-exact to the reference; the tests compare them. The same precondition:
/// every component at most 2^30 in magnitude.
///
/// On the Cortex-M4 (`kws` firmware, QEMU instruction count) the inner loop is 31 instructions
/// per butterfly, and the keyword front end 5,175,983 instructions per 1 s clip: session 19's
/// form (indices, two multiply-accumulates per output with negated twiddles) ran 49 and
/// 7,186,701.
pub fn fft_in_place(re: &mut [i32; FFT_SIZE], im: &mut [i32; FFT_SIZE]) {
    let mut half = 1;
    while half < FFT_SIZE {
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
/// The reference's `x·2^31 + 2^31 ± t` is `(x + 1)·2^31 ± t` (`x + 1` fits `i32`: |x| ≤ 2^30),
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

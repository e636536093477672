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
/// instead of once per butterfly (511 lookups per transform instead of 2304). Each butterfly is
/// [`butterfly_shared`]: the same integers as [`butterfly`], so the same result. Bit-exact to
/// the reference; the tests compare them. The same precondition: every component at most 2^30
/// in magnitude.
pub fn fft_in_place(re: &mut [i32; FFT_SIZE], im: &mut [i32; FFT_SIZE]) {
    let mut half = 1;
    while half < FFT_SIZE {
        let step = FFT_SIZE / (2 * half);
        for j in 0..half {
            let (c, s) = twiddle(j * step);
            // `−s` fits `i32` (`|s| ≤ 2^31 − 1`).
            let ns = -s;
            // a + half < FFT_SIZE for every a of the stride (a ≤ FFT_SIZE − 2·half + j).
            let mut a = j;
            while a + half < FFT_SIZE {
                butterfly_shared(re, im, a, a + half, c, s, ns);
                a += 2 * half;
            }
        }
        half *= 2;
    }
}

/// [`butterfly`] with each product sum computed once and shared by the `+` and `−` outputs
/// (`(x + 1)·2^31 ± t`: the same `i64` values as `x·2^31 ± t + 2^31`, so the same integers), and
/// `bi·c − br·s = bi·c + br·(−s)` with `ns = −s` computed once per twiddle: on a Cortex-M4 each
/// sum is one `SMULL` and one `SMLAL`, each output one 64-bit add or subtract of which only the
/// high word is kept: 44 instructions per butterfly in the `kws` firmware (session 19's form, two
/// multiply-accumulates per output with negated twiddles, ran 49; the front end went from
/// 7,186,701 to 6,572,143 instructions per 1 s clip).
#[inline(always)]
fn butterfly_shared(
    re: &mut [i32; FFT_SIZE],
    im: &mut [i32; FFT_SIZE],
    a: usize,
    b: usize,
    c: i32,
    s: i32,
    ns: i32,
) {
    let wide = |x: i32, y: i32| x as i64 * y as i64;
    let (br, bi) = (re[b], im[b]);
    let tr = wide(br, c) + wide(bi, s);
    let ti = wide(bi, c) + wide(br, ns);
    // x·2^31 + 2^31 = (x + 1)·2^31; `x + 1` fits `i32` (|x| ≤ 2^30).
    let base_r = ((re[a] + 1) as i64) << 31;
    let base_i = ((im[a] + 1) as i64) << 31;
    re[a] = ((base_r + tr) >> 32) as i32;
    re[b] = ((base_r - tr) >> 32) as i32;
    im[a] = ((base_i + ti) >> 32) as i32;
    im[b] = ((base_i - ti) >> 32) as i32;
}

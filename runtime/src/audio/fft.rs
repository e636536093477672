//! Fixed-point radix-2 FFT over [`FFT_SIZE`] points: decimation in time, bit-reversed load,
//! Q31 twiddles from a quarter-wave table, each butterfly computed in 64-bit and halved with
//! rounding (`(a·2^31 ± b·w + 2^31) >> 32`), so nothing can overflow: magnitudes never grow
//! past the input's 2^30 bound, and the output is the DFT divided by [`FFT_SIZE`].

use super::tables::{COS_Q31, HANN_Q15};
use super::{Scratch, FFT_LOG2, FFT_SIZE, WINDOW};

/// `cos` and `sin` of `2πk / FFT_SIZE` in Q31 for `k` in `0..FFT_SIZE/2`.
#[inline]
fn twiddle(k: usize) -> (i64, i64) {
    const Q: usize = FFT_SIZE / 4;
    let c = |i: usize| COS_Q31.get(i).copied().unwrap_or(0) as i64;
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

/// In-place forward FFT of bit-reversed input (`re`, `im`), scaled by `1 / FFT_SIZE`.
///
/// Every component must be at most 2^30 in magnitude (as [`load_windowed`] guarantees).
pub fn fft_in_place(re: &mut [i32; FFT_SIZE], im: &mut [i32; FFT_SIZE]) {
    let mut half = 1;
    while half < FFT_SIZE {
        let step = FFT_SIZE / (2 * half);
        let mut start = 0;
        while start < FFT_SIZE {
            for j in 0..half {
                let (c, s) = twiddle(j * step);
                let (a, b) = (start + j, start + j + half);
                let (ar, ai) = (re[a] as i64, im[a] as i64);
                let (br, bi) = (re[b] as i64, im[b] as i64);
                // b · (c − i s)
                let tr = br * c + bi * s;
                let ti = bi * c - br * s;
                const ROUND: i64 = 1 << 31;
                re[a] = (((ar << 31) + tr + ROUND) >> 32) as i32;
                im[a] = (((ai << 31) + ti + ROUND) >> 32) as i32;
                re[b] = (((ar << 31) - tr + ROUND) >> 32) as i32;
                im[b] = (((ai << 31) - ti + ROUND) >> 32) as i32;
            }
            start += 2 * half;
        }
        half *= 2;
    }
}

//! Power spectrum and mel filterbank: `p = re² + im²` (u64) for bins `0..=FFT_SIZE/2`,
//! reduced to `(p + 2^11) >> 12` (the squared DFT magnitude in int16 sample units, see the
//! module docs; below 2^49) and summed under each band's Q15 triangle. By Parseval the band
//! sums stay below 2^63.

use super::tables::{MEL_FIRST_BIN, MEL_OFFSET, MEL_WEIGHTS_Q15};
use super::{BINS, MEL_BANDS};

/// Band energies `E · 2^15` from the FFT output (`[re, im]` per bin, in natural order).
///
/// Each bin's reduced power is computed once (most bins lie under two triangles) and kept in
/// place of the bin, its low 32 bits first, so `bins` no longer holds the spectrum on return.
pub fn mel_energies(bins: &mut [[i32; 2]; BINS], out: &mut [u64; MEL_BANDS]) {
    for b in bins.iter_mut() {
        let (r, q) = (b[0] as i64, b[1] as i64);
        let p = (r * r) as u64 + (q * q) as u64;
        let p = (p + (1 << 11)) >> 12;
        b[0] = p as u32 as i32;
        b[1] = (p >> 32) as u32 as i32;
    }
    for (m, o) in out.iter_mut().enumerate() {
        let first = MEL_FIRST_BIN.get(m).copied().unwrap_or(0) as usize;
        let lo = MEL_OFFSET.get(m).copied().unwrap_or(0) as usize;
        let hi = MEL_OFFSET.get(m + 1).copied().unwrap_or(0) as usize;
        let weights = MEL_WEIGHTS_Q15.get(lo..hi).unwrap_or(&[]);
        let mut acc = 0u64;
        for (&w, &[plo, phi]) in weights.iter().zip(bins.get(first..).unwrap_or(&[])) {
            let p = plo as u32 as u64 | (phi as u32 as u64) << 32;
            acc += p * w as u64;
        }
        *o = acc;
    }
}

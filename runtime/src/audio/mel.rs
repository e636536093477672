//! Power spectrum and mel filterbank: `p = re² + im²` (u64) for bins `0..=FFT_SIZE/2`,
//! reduced to `(p + 2^11) >> 12` (the squared DFT magnitude in int16 sample units, see the
//! module docs) and summed under each band's Q15 triangle. By Parseval the band sums stay
//! below 2^63.

use super::tables::{MEL_FIRST_BIN, MEL_OFFSET, MEL_WEIGHTS_Q15};
use super::{FFT_SIZE, MEL_BANDS};

/// Band energies `E · 2^15` from the FFT output (`re`, `im` in natural order).
pub fn mel_energies(re: &[i32; FFT_SIZE], im: &[i32; FFT_SIZE], out: &mut [u64; MEL_BANDS]) {
    for (m, o) in out.iter_mut().enumerate() {
        let first = MEL_FIRST_BIN.get(m).copied().unwrap_or(0) as usize;
        let lo = MEL_OFFSET.get(m).copied().unwrap_or(0) as usize;
        let hi = MEL_OFFSET.get(m + 1).copied().unwrap_or(0) as usize;
        let weights = MEL_WEIGHTS_Q15.get(lo..hi).unwrap_or(&[]);
        let mut acc = 0u64;
        for (i, &w) in weights.iter().enumerate() {
            let k = first + i;
            let (Some(&r), Some(&q)) = (re.get(k), im.get(k)) else {
                break;
            };
            let p = (r as i64 * r as i64) as u64 + (q as i64 * q as i64) as u64;
            acc += ((p + (1 << 11)) >> 12) * w as u64;
        }
        *o = acc;
    }
}

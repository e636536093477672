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
        let powers = bins.get(first..).unwrap_or(&[]);
        *o = band_sum(weights, powers);
    }
}

/// `Σ p[i] · w[i]` (u64, modulo 2⁶⁴; below 2⁶³ for the mel triangles) over the shorter of
/// `weights` and `powers`, each power kept as its low and high 32-bit words. On the Cortex-M4
/// one `UMLAL` adds `lo · w` to the 64-bit sum and one `MLA` adds `hi · w` to its high word:
/// 6 instructions per weight with the loads and the loop (the compiled loop took 9).
#[inline(always)]
fn band_sum(weights: &[u16], powers: &[[i32; 2]]) -> u64 {
    let n = weights.len().min(powers.len());
    #[cfg(edgeloop_dsp)]
    if n > 0 {
        let (mut lo, mut hi) = (0u32, 0u32);
        // SAFETY: `n ≥ 1` passes (a counted loop that ends); reads `n` halfwords of `weights`
        // and `n` pairs of words of `powers` (both at least `n` long), through pointers advanced
        // by each load (`LDRD` needs word alignment: `[i32; 2]` has it). Only the named
        // registers are written; the flags (SUBS) are clobbered, which `asm!` assumes.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldrd {pl}, {ph}, [{pp}], #8",
                "ldrh {w}, [{pw}], #2",
                "umlal {lo}, {hi}, {pl}, {w}",
                "mla {hi}, {ph}, {w}, {hi}",
                "subs {n}, {n}, #1",
                "bne 2b",
                pp = inout(reg) powers.as_ptr() => _,
                pw = inout(reg) weights.as_ptr() => _,
                n = inout(reg) n => _,
                lo = inout(reg) lo,
                hi = inout(reg) hi,
                pl = out(reg) _,
                ph = out(reg) _,
                w = out(reg) _,
                options(nostack, readonly),
            );
        }
        return u64::from(lo) | u64::from(hi) << 32;
    }
    let mut acc = 0u64;
    for (&w, &[plo, phi]) in weights[..n].iter().zip(powers) {
        let p = plo as u32 as u64 | (phi as u32 as u64) << 32;
        acc = acc.wrapping_add(p.wrapping_mul(w as u64));
    }
    acc
}

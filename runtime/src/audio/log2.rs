//! Integer base-2 logarithm: the exponent from the leading-zero count, the mantissa from a
//! 65-entry Q16 table of `log2(1 + i/64)` with linear interpolation on the next 16 bits
//! (worst-case error about 4·10⁻⁵, far below the 0.2 step of the int8 features).

use super::tables::LOG2_Q16;

/// Index bits of the mantissa table.
pub const LOG2_BITS: u32 = 6;

/// `log2(v)` in Q16 (`0` for `v ≤ 1`).
#[inline]
pub fn log2_q16(v: u64) -> i32 {
    if v <= 1 {
        return 0;
    }
    let lz = v.leading_zeros();
    let exponent = 63 - lz as i32;
    // Normalised mantissa: the leading one at bit 63.
    let m = v << lz;
    let idx = ((m >> (63 - LOG2_BITS)) & ((1 << LOG2_BITS) - 1)) as usize;
    let frac = ((m >> (63 - LOG2_BITS - 16)) & 0xFFFF) as i64;
    let (t0, t1) = match (LOG2_Q16.get(idx), LOG2_Q16.get(idx + 1)) {
        (Some(&a), Some(&b)) => (a as i64, b as i64),
        _ => (0, 0), // unreachable: idx < 64 and the table has 65 entries
    };
    let mant = t0 + (((t1 - t0) * frac + (1 << 15)) >> 16);
    (exponent << 16) + mant as i32
}

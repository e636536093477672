//! Fixed-point requantization: the one primitive every int8 kernel uses.
//!
//! A real scale `s` (for example `s_in * s_w / s_out`) is stored as a Q31 `multiplier` in
//! `[2^30, 2^31)` and a power-of-two `shift`, so that `s ≈ multiplier * 2^(shift - 31)`.
//! [`requantize`] applies it to an int32 accumulator with a **single rounding** step
//! (round half up, i.e. towards +∞ on ties, in 64-bit arithmetic), as TensorFlow Lite does
//! with `TFLITE_SINGLE_ROUNDING`. This is the specification: every kernel variant must call
//! this function or reproduce it bit for bit.

/// Smallest shift accepted by [`requantize`].
pub const MIN_SHIFT: i32 = -31;
/// Largest shift accepted by [`requantize`].
pub const MAX_SHIFT: i32 = 30;

/// Returns `round(acc * multiplier * 2^(shift - 31))`, ties rounded up, saturated to `i32`.
///
/// `shift` must lie in [`MIN_SHIFT`]..=[`MAX_SHIFT`]; image validation guarantees it, and
/// [`shift_is_valid`] is the check to use. Out-of-range shifts are clamped (never a panic).
#[inline(always)]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total_shift = (31 - shift).clamp(1, 62) as u32;
    let round = 1i64 << (total_shift - 1);
    let wide = (acc as i64) * (multiplier as i64) + round;
    (wide >> total_shift).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Whether `shift` is in the range [`requantize`] is specified for.
#[inline]
pub const fn shift_is_valid(shift: i32) -> bool {
    shift >= MIN_SHIFT && shift <= MAX_SHIFT
}

/// Splits a positive real scale into `(multiplier, shift)` for [`requantize`].
///
/// Returns `None` when `real` is not finite, not positive, or too small/large to be represented
/// with a shift in range (scales below `2^-32` round to zero; callers treat that as an error).
/// Used offline by the image writer and the compiler; works without `std`.
pub fn quantize_multiplier(real: f64) -> Option<(i32, i32)> {
    if !real.is_finite() || real <= 0.0 {
        return None;
    }
    // Normalise real = q * 2^shift with q in [0.5, 1).
    let mut q = real;
    let mut shift = 0i32;
    while q >= 1.0 {
        q *= 0.5;
        shift += 1;
        if shift > MAX_SHIFT + 1 {
            return None;
        }
    }
    while q < 0.5 {
        q *= 2.0;
        shift -= 1;
        if shift < MIN_SHIFT - 1 {
            return None;
        }
    }
    // Round to Q31 (nearest, ties away from zero; q > 0).
    let mut m = (q * (1u64 << 31) as f64 + 0.5) as i64;
    if m == 1i64 << 31 {
        m /= 2;
        shift += 1;
    }
    if !shift_is_valid(shift) {
        return None;
    }
    Some((m as i32, shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(acc: i32, multiplier: i32, shift: i32) -> i64 {
        // floor((acc*m + 2^(t-1)) / 2^t) computed with i128.
        let t = 31 - shift;
        let num = acc as i128 * multiplier as i128 + (1i128 << (t - 1));
        num.div_euclid(1i128 << t) as i64
    }

    #[test]
    fn golden_half_rounds_up() {
        // 0.5 exactly: multiplier 2^30 (=0.5 in Q31), shift 0.
        assert_eq!(requantize(1, 1 << 30, 0), 1); // 0.5 -> 1
        assert_eq!(requantize(-1, 1 << 30, 0), 0); // -0.5 -> 0 (ties up)
        assert_eq!(requantize(3, 1 << 30, 0), 2); // 1.5 -> 2
        assert_eq!(requantize(-3, 1 << 30, 0), -1); // -1.5 -> -1
    }

    #[test]
    fn matches_wide_arithmetic_on_random_values() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let acc = x as i32;
            let multiplier = ((x >> 32) as u32 >> 1 | 1 << 30) as i32;
            let shift = ((x >> 8) % 62) as i32 - 31;
            let expected = exact(acc, multiplier, shift).clamp(i32::MIN as i64, i32::MAX as i64);
            assert_eq!(requantize(acc, multiplier, shift) as i64, expected);
        }
    }

    #[test]
    fn quantize_multiplier_round_trips() {
        for &real in &[
            1e-9,
            0.000_123,
            0.0039,
            0.25,
            0.5,
            0.999_999_999_9,
            1.0,
            3.7,
            1234.5,
        ] {
            let (m, s) = quantize_multiplier(real).expect("representable");
            assert!((1 << 30..=i32::MAX).contains(&m), "{real}: m={m}");
            let back = m as f64 * 2f64.powi(s - 31);
            assert!((back - real).abs() / real < 1e-9, "{real} -> {back}");
        }
        assert_eq!(quantize_multiplier(0.0), None);
        assert_eq!(quantize_multiplier(-1.0), None);
        assert_eq!(quantize_multiplier(f64::NAN), None);
        assert_eq!(quantize_multiplier(1e-30), None);
    }
}

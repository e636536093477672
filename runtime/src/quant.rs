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

/// Finishes an int8 output: [`requantize`], add `output_zero_point` (saturating), clamp to
/// `[min, max]`. Every int8 kernel with a requantized output ends with this.
#[inline(always)]
pub fn requantize_to_i8(
    acc: i32,
    multiplier: i32,
    shift: i32,
    output_zero_point: i32,
    min: i8,
    max: i8,
) -> i8 {
    let v = requantize(acc, multiplier, shift).saturating_add(output_zero_point);
    // `max(min).min(max)` rather than `clamp`, which panics when min > max.
    v.max(min as i32).min(max as i32) as i8
}

/// Rounds to the nearest integer, ties to even (as ONNX `QuantizeLinear` does), saturating to
/// `i32`; NaN gives 0. Works without `std`.
pub fn round_ties_even(x: f32) -> i32 {
    if x.is_nan() {
        return 0;
    }
    // 2^23: from here on every f32 is an integer. The `as` cast saturates.
    if x.abs() >= 8_388_608.0 {
        return x as i32;
    }
    let t = x as i32; // truncates towards zero
    let frac = x - t as f32; // exact for |x| < 2^23
    if frac > 0.5 || (frac == 0.5 && t & 1 != 0) {
        t + 1
    } else if frac < -0.5 || (frac == -0.5 && t & 1 != 0) {
        t - 1
    } else {
        t
    }
}

/// Quantizes a real value: `clamp(round_ties_even(x / scale) + zero_point, -128, 127)`, as ONNX
/// `QuantizeLinear` does for int8.
#[inline]
pub fn quantize_f32(x: f32, scale: f32, zero_point: i32) -> i8 {
    round_ties_even(x / scale)
        .saturating_add(zero_point)
        .clamp(-128, 127) as i8
}

/// Dequantizes an int8 value: `(q - zero_point) * scale`, as ONNX `DequantizeLinear` does.
#[inline]
pub fn dequantize_f32(q: i8, scale: f32, zero_point: i32) -> f32 {
    (q as i32 - zero_point) as f32 * scale
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
    #[test]
    fn golden_round_ties_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (2.4999, 2),
            (-2.6, -3),
            (1e10, i32::MAX),
            (-1e10, i32::MIN),
            (f32::NAN, 0),
            (f32::INFINITY, i32::MAX),
            (8_388_609.0, 8_388_609),
        ];
        for (x, want) in cases {
            assert_eq!(round_ties_even(x), want, "{x}");
        }
    }

    #[test]
    fn round_ties_even_matches_std() {
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f32::from_bits(x as u32);
            if !v.is_finite() || v.abs() > 2e9 {
                continue;
            }
            assert_eq!(round_ties_even(v), v.round_ties_even() as i32, "{v}");
            let small = (x >> 40) as i32 as f32 / 64.0 - 1000.0;
            assert_eq!(
                round_ties_even(small),
                small.round_ties_even() as i32,
                "{small}"
            );
        }
    }

    #[test]
    fn golden_quantize_dequantize() {
        assert_eq!(quantize_f32(0.0, 0.1, -3), -3);
        assert_eq!(quantize_f32(0.25, 0.1, 0), 2); // 2.5 -> 2 (ties to even)
        assert_eq!(quantize_f32(0.36, 0.1, 0), 4);
        assert_eq!(quantize_f32(100.0, 0.1, 0), 127);
        assert_eq!(quantize_f32(-100.0, 0.1, 10), -128);
        assert_eq!(dequantize_f32(-128, 0.5, -128), 0.0);
        assert_eq!(dequantize_f32(127, 0.5, -1), 64.0);
    }

    #[test]
    fn golden_requantize_to_i8() {
        // 100 * 0.5 = 50, + zp 10 = 60, clamped to max 55.
        assert_eq!(requantize_to_i8(100, 1 << 30, 0, 10, -128, 55), 55);
        assert_eq!(requantize_to_i8(100, 1 << 30, 0, 10, -128, 127), 60);
        // Saturation far outside the int8 range, both ways.
        assert_eq!(
            requantize_to_i8(i32::MAX, i32::MAX, 30, 127, -128, 127),
            127
        );
        assert_eq!(
            requantize_to_i8(i32::MIN, i32::MAX, 30, -128, -128, 127),
            -128
        );
    }
}

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
///
/// On cores without a 32×32→64-bit multiply (ARMv6-M; build.rs cfg `edgeloop_armv6m`) this is
/// [`requantize_narrow`], the same function in 32-bit arithmetic.
#[inline(always)]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    #[cfg(edgeloop_armv6m)]
    {
        requantize_narrow(acc, multiplier, shift)
    }
    #[cfg(not(edgeloop_armv6m))]
    {
        requantize_wide(acc, multiplier, shift)
    }
}

/// [`requantize`] in `i64` arithmetic: the specification, and the form for every core with a
/// 64-bit product in one instruction (`SMULL`, x86-64, AArch64).
#[inline(always)]
pub fn requantize_wide(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total_shift = (31 - shift).clamp(1, 62) as u32;
    let round = 1i64 << (total_shift - 1);
    let wide = (acc as i64) * (multiplier as i64) + round;
    saturate_i32(wide >> total_shift)
}

/// `v` saturated to `i32`: the low word when it sign-extends back to `v`, else the bound on
/// `v`'s side. Compiles smaller than `i64::clamp` on 32-bit cores (one compare of the high
/// word instead of two 64-bit compares); the same function.
#[inline(always)]
fn saturate_i32(v: i64) -> i32 {
    let low = v as i32;
    if low as i64 == v {
        low
    } else if v < 0 {
        i32::MIN
    } else {
        i32::MAX
    }
}

/// [`requantize_wide`], bit for bit, from the high word of the product computed in 32-bit
/// arithmetic ([`mul_high`]): for an ARMv6-M core the `i64` form is a call to a 64×64-bit
/// multiply routine (~45 instructions) and another to a 64-bit shift. With a total shift
/// `t = 31 − shift` of 32 or more (every scale below 1/2, the usual case) the result is
/// `(high + 2^(t−33)) >> (t − 32)` (at `t = 32`: `high` plus the low word's top bit), which
/// always fits; smaller total shifts take the `i64` form.
#[inline(always)]
pub fn requantize_narrow(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total_shift = (31 - shift).clamp(1, 62);
    if total_shift < 32 {
        return requantize_wide(acc, multiplier, shift);
    }
    let high = mul_high(acc, multiplier);
    if total_shift == 32 {
        // (p + 2^31) >> 32: the rounding carries into the high word when the low word's top
        // bit is set. |high| ≤ 2^30, so the sum cannot overflow.
        let low = acc.wrapping_mul(multiplier) as u32;
        return high + (low >> 31) as i32;
    }
    // floor((high·2^32 + low + 2^(t−1)) / 2^t) = floor((high + 2^(t−33)) / 2^(t−32)), as the
    // low word is below 2^32; |high| ≤ 2^30 and 2^(t−33) ≤ 2^29, so no overflow.
    (high + (1 << (total_shift - 33))) >> (total_shift - 32)
}

/// One output channel's [`requantize`] with its constants worked out once, for kernels that
/// requantize many accumulators of the same channel (a FullyConnected feature over a batch of
/// rows). On ARMv6-M (cfg `edgeloop_armv6m`), with a total shift `t = 31 − shift` of 33 or more,
/// [`ChannelRequant::apply`] is `(mul_high(acc, multiplier) + 2^(t−33)) >> (t − 32)`: the
/// clamps, branches and shift arithmetic of [`requantize_narrow`] are done in `new`. Elsewhere
/// it is [`requantize_wide`]. Bit-exact to [`requantize`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelRequant {
    multiplier: i32,
    shift: i32,
    /// `2^(t−33)` when `high_shift` is not 0.
    high_round: i32,
    /// `t − 32` (1 to 30) when `t ≥ 33`, else 0: the other total shifts take [`requantize_narrow`].
    high_shift: u32,
}

impl ChannelRequant {
    /// The requantization by `multiplier` and `shift` (as [`requantize`] takes them).
    #[inline(always)]
    pub fn new(multiplier: i32, shift: i32) -> Self {
        let total_shift = (31 - shift).clamp(1, 62);
        let (high_round, high_shift) = if total_shift >= 33 {
            (1 << (total_shift - 33), (total_shift - 32) as u32)
        } else {
            (0, 0)
        };
        ChannelRequant {
            multiplier,
            shift,
            high_round,
            high_shift,
        }
    }

    /// [`requantize`]`(acc, multiplier, shift)`.
    #[inline(always)]
    pub fn apply(&self, acc: i32) -> i32 {
        #[cfg(edgeloop_armv6m)]
        {
            self.apply_narrow(acc)
        }
        #[cfg(not(edgeloop_armv6m))]
        {
            requantize_wide(acc, self.multiplier, self.shift)
        }
    }

    /// The ARMv6-M form of [`ChannelRequant::apply`] (tested on every target).
    #[inline(always)]
    pub fn apply_narrow(&self, acc: i32) -> i32 {
        if self.high_shift != 0 {
            // As in `requantize_narrow`: |high| ≤ 2^30 and the rounding ≤ 2^29, no overflow.
            (mul_high(acc, self.multiplier) + self.high_round) >> self.high_shift
        } else {
            requantize_narrow(acc, self.multiplier, self.shift)
        }
    }
}

/// The high 32 bits of the signed 64-bit product `a·b`, from four 16×16-bit products (each
/// one 32-bit `MULS`; Hacker's Delight, `mulhs`).
#[inline(always)]
pub fn mul_high(a: i32, b: i32) -> i32 {
    let (a0, a1) = (a & 0xFFFF, a >> 16);
    let (b0, b1) = (b & 0xFFFF, b >> 16);
    // a0·b0 < 2^32: unsigned.
    let w0 = (a0 as u32).wrapping_mul(b0 as u32);
    // |a1·b0| + 2^16 < 2^31: no overflow in any of the sums below.
    let t = a1 * b0 + (w0 >> 16) as i32;
    let w1 = a0 * b1 + (t & 0xFFFF);
    a1 * b1 + (t >> 16) + (w1 >> 16)
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
    finish_i8(
        requantize(acc, multiplier, shift),
        output_zero_point,
        min,
        max,
    )
}

/// The tail of [`requantize_to_i8`] for a value already requantized (as by
/// [`ChannelRequant::apply`]): add `output_zero_point` (saturating), clamp to `[min, max]`.
#[inline(always)]
pub fn finish_i8(v: i32, output_zero_point: i32, min: i8, max: i8) -> i8 {
    let v = v.saturating_add(output_zero_point);
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

    /// One step of xorshift64 (the random values of the tests below).
    fn xorshift(x: &mut u64) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
    }

    #[test]
    fn saturate_i32_is_i64_clamp() {
        let clamp = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        let edges = [
            0i64,
            1,
            -1,
            i32::MAX as i64,
            i32::MAX as i64 + 1,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
            u32::MAX as i64,
            -(u32::MAX as i64),
            1 << 32,
            -(1 << 32),
            i64::MAX,
            i64::MIN,
        ];
        for v in edges {
            assert_eq!(saturate_i32(v), clamp(v), "{v}");
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000 {
            xorshift(&mut x);
            // Every magnitude: shift the random word right by 0..63 bits.
            let v = (x as i64) >> (i % 64);
            assert_eq!(saturate_i32(v), clamp(v), "{v}");
        }
    }

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
            xorshift(&mut x);
            let acc = x as i32;
            let multiplier = ((x >> 32) as u32 >> 1 | 1 << 30) as i32;
            let shift = ((x >> 8) % 62) as i32 - 31;
            let expected = exact(acc, multiplier, shift).clamp(i32::MIN as i64, i32::MAX as i64);
            assert_eq!(requantize(acc, multiplier, shift) as i64, expected);
        }
    }

    /// Values near the edges of every range: the extremes, powers of two and their neighbours.
    fn edge_values() -> Vec<i32> {
        let mut v = vec![0, 1, -1, i32::MAX, i32::MIN, i32::MAX - 1, i32::MIN + 1];
        for k in 0..31 {
            for d in [-1, 0, 1] {
                v.push((1i32 << k).wrapping_add(d));
                v.push((-(1i32 << k)).wrapping_add(d));
            }
        }
        v
    }

    #[test]
    fn mul_high_is_the_high_word_of_the_product() {
        let edges = edge_values();
        for &a in &edges {
            for &b in &edges {
                assert_eq!(
                    mul_high(a, b),
                    ((a as i64 * b as i64) >> 32) as i32,
                    "{a} {b}"
                );
            }
        }
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            xorshift(&mut x);
            let (a, b) = (x as i32, (x >> 32) as i32);
            assert_eq!(
                mul_high(a, b),
                ((a as i64 * b as i64) >> 32) as i32,
                "{a} {b}"
            );
        }
    }

    #[test]
    fn narrow_requantize_is_the_wide_one_bit_for_bit() {
        // Every shift (and some out of range, which both clamp), edge accumulators and
        // multipliers of either sign, then random ones.
        let edges = edge_values();
        for shift in MIN_SHIFT - 3..=MAX_SHIFT + 3 {
            for &acc in &edges {
                for &m in &edges {
                    assert_eq!(
                        requantize_narrow(acc, m, shift),
                        requantize_wide(acc, m, shift),
                        "acc {acc} multiplier {m} shift {shift}"
                    );
                }
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300_000 {
            xorshift(&mut x);
            let acc = (x as i32) >> (x >> 59); // small and large magnitudes
            let m = (x >> 32) as i32;
            let shift = ((x >> 40) % 62) as i32 - 31;
            assert_eq!(
                requantize_narrow(acc, m, shift),
                requantize_wide(acc, m, shift),
                "acc {acc} multiplier {m} shift {shift}"
            );
        }
    }

    #[test]
    fn channel_requant_is_requantize_bit_for_bit() {
        let edges = edge_values();
        let mut x = 0x0DDB_1A5E_5BAD_5EEDu64;
        for shift in MIN_SHIFT - 3..=MAX_SHIFT + 3 {
            for &m in edges.iter().step_by(3) {
                let q = ChannelRequant::new(m, shift);
                for &acc in &edges {
                    let want = requantize_wide(acc, m, shift);
                    assert_eq!(q.apply_narrow(acc), want, "acc {acc} m {m} shift {shift}");
                    assert_eq!(q.apply(acc), want, "acc {acc} m {m} shift {shift}");
                }
                for _ in 0..200 {
                    xorshift(&mut x);
                    let acc = (x as i32) >> (x >> 59);
                    assert_eq!(q.apply_narrow(acc), requantize_wide(acc, m, shift));
                }
            }
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
            xorshift(&mut x);
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

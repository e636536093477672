//! Every offset-dot-product variant is bit-exact to the portable reference.

use super::*;
use proptest::prelude::*;

fn case() -> impl Strategy<Value = (Vec<i8>, Vec<i8>, i32, i32)> {
    (0usize..200).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<i8>(), n),
            proptest::collection::vec(any::<i8>(), n),
            -128i32..=127,
            -128i32..=127,
        )
    })
}

#[test]
fn golden_dot_offset_reference() {
    // (1+1)(3-2) + (2+1)(-4-2) + (-128+1)(127-2) = 2 - 18 - 15875
    assert_eq!(dot_offset_i8(&[1, 2, -128], 1, &[3, -4, 127], -2), -15891);
    assert_eq!(dot_offset_i8(&[], 5, &[], 5), 0);
}

#[test]
fn golden_dsp_instruction_emulation() {
    // SXTB16: bytes 0 and 2, sign-extended.
    assert_eq!(sxtb16_bytes(0x80_7F_01_FF), (-1, 127));
    assert_eq!(sxtb16_ror8_bytes(0x80_7F_01_FF), (1, -128));
    // SADD16 wraps per lane.
    assert_eq!(cortex_m::sadd16(0x7FFF_0001, 0x0001_FFFF), 0x8000_0000);
    // SMLAD: acc + lo*lo + hi*hi, modulo 2^32.
    let a = ((-3i16 as u16 as u32) << 16) | 5;
    let b = (7u32 << 16) | (-2i16 as u16 as u32);
    assert_eq!(cortex_m::smlad(a, b, 100), 100 - 10 - 21);
    let m = 0x8000_8000u32; // (-32768, -32768)
    assert_eq!(cortex_m::smlad(m, m, 0), i32::MIN); // 2^31 wraps
}

fn sxtb16_bytes(x: u32) -> (i16, i16) {
    let r = cortex_m::sxtb16(x);
    (r as u16 as i16, (r >> 16) as u16 as i16)
}

fn sxtb16_ror8_bytes(x: u32) -> (i16, i16) {
    let r = cortex_m::sxtb16_ror8(x);
    (r as u16 as i16, (r >> 16) as u16 as i16)
}

#[test]
fn dot_offsets_beyond_lanes_fall_back() {
    let a: Vec<i8> = (0..37).map(|i| (i * 7 - 100) as i8).collect();
    let b: Vec<i8> = (0..37).map(|i| (i * 13 - 50) as i8).collect();
    let r = dot_offset_i8(&a, 30_000, &b, -1000);
    assert_eq!(cortex_m::dot_offset_i8_dsp(&a, 30_000, &b, -1000), r);
    if let Some(t) = DotKernel::avx2_for_tests() {
        assert_eq!(t.dot_offset_i8(&a, 30_000, &b, -1000), r);
    }
}

proptest! {
    #[test]
    fn bit_exact_dsp((a, b, oa, ob) in case()) {
        prop_assert_eq!(DotKernel::dsp().dot_offset_i8(&a, oa, &b, ob), dot_offset_i8(&a, oa, &b, ob));
    }

    #[test]
    fn bit_exact_avx2((a, b, oa, ob) in case()) {
        match DotKernel::avx2_for_tests() {
            Some(t) => prop_assert_eq!(t.dot_offset_i8(&a, oa, &b, ob), dot_offset_i8(&a, oa, &b, ob)),
            None => println!("skipped: dot_offset_i8/avx2"),
        }
    }

    #[test]
    fn bit_exact_best((a, b, oa, ob) in case()) {
        prop_assert_eq!(DotKernel::best().dot_offset_i8(&a, oa, &b, ob), dot_offset_i8(&a, oa, &b, ob));
    }
}

#[test]
fn bit_exact_neon() {
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        let mut x = 0x1234_5678_9abc_def0u64;
        for n in 0..100 {
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let a: Vec<i8> = (0..n).map(|_| next() as i8).collect();
            let b: Vec<i8> = (0..n).map(|_| next() as i8).collect();
            let (oa, ob) = ((next() % 256) as i32 - 128, (next() % 256) as i32 - 128);
            assert_eq!(
                DotKernel::neon().dot_offset_i8(&a, oa, &b, ob),
                dot_offset_i8(&a, oa, &b, ob)
            );
        }
    }
    #[cfg(not(all(target_arch = "aarch64", target_feature = "neon")))]
    println!("skipped: dot_offset_i8/neon");
}

impl DotKernel {
    /// `avx2()` on x86-64, `None` elsewhere (keeps the tests free of cfg noise).
    pub(crate) fn avx2_for_tests() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        return Self::avx2();
        #[cfg(not(target_arch = "x86_64"))]
        None
    }
}

/// `x86::requantize8_avx2` against [`crate::quant::requantize_to_i8`] lane by lane, on random
/// accumulators (with the extremes of `i32`), multipliers (any `i32`), shifts (the valid range
/// and beyond it, which both clamp), zero points and clamps (including `min > max`).
#[test]
fn bit_exact_requantize8_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        use core::arch::x86_64::*;
        let mut s = 0x5eed_1234_abcd_0001u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for case in 0..20_000 {
            let pick = |r: u64, v: i32| if r.is_multiple_of(8) { v } else { r as i32 };
            let mut acc = [0i32; 8];
            let mut mul = [0i32; 8];
            let mut sh = [0i32; 8];
            for l in 0..8 {
                let r = next();
                acc[l] = match r % 6 {
                    0 => i32::MAX - (r >> 40) as i32 % 3,
                    1 => i32::MIN + (r >> 40) as i32 % 3,
                    2 => (r >> 32) as i32 % 100_000,
                    _ => (r >> 16) as i32,
                };
                let m = next();
                mul[l] = if m % 5 == 0 {
                    pick(m >> 8, i32::MAX)
                } else {
                    (1 << 30) + (m >> 34) as i32
                };
                sh[l] = (next() % 72) as i32 - 36;
            }
            let zp = (next() % 256) as i32 - 128;
            let (a, b) = ((next() % 256) as i32 - 128, (next() % 256) as i32 - 128);
            let (min, max) = if case % 10 == 0 {
                (a.max(b) as i8, a.min(b) as i8)
            } else {
                (a.min(b) as i8, a.max(b) as i8)
            };
            let mut got = [0i32; 8];
            // SAFETY: AVX2 detected above; loads and stores of 8 `i32`s from/to arrays of 8.
            unsafe {
                let v = x86::requantize8_avx2(
                    _mm256_loadu_si256(acc.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(mul.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(sh.as_ptr() as *const __m256i),
                    zp,
                    min,
                    max,
                );
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
                let mut bytes = [0i8; 8];
                x86::store8_i8(v, &mut bytes);
                assert_eq!(bytes.map(|b| b as i32), got, "store8_i8, case {case}");
            }
            for l in 0..8 {
                let want =
                    crate::quant::requantize_to_i8(acc[l], mul[l], sh[l], zp, min, max) as i32;
                assert_eq!(
                    got[l], want,
                    "case {case} lane {l}: acc {} mul {} shift {} zp {zp} [{min}, {max}]",
                    acc[l], mul[l], sh[l]
                );
            }
        }
        return;
    }
    println!("skipped: requantize8/avx2");
}

/// `smmla` (its portable emulation on the host) against 64-bit arithmetic, extremes included.
#[test]
fn smmla_matches_wide_arithmetic() {
    let cases = [
        (i32::MIN, i32::MIN, 0),
        (i32::MIN, i32::MAX, 7),
        (i32::MAX, i32::MAX, i32::MAX),
        (-1, 1, 0),
        (-1, 1, 5),
        (1 << 30, 1 << 30, -3),
        (123_456_789, -987_654_321, 1 << 29),
    ];
    for (a, b, acc) in cases {
        let want = ((acc as i64) << 32).wrapping_add(a as i64 * b as i64) >> 32;
        assert_eq!(cortex_m::smmla(a, b, acc), want as i32, "{a} {b} {acc}");
    }
}

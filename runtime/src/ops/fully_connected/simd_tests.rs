//! Optimized FullyConnected variants against the reference, every output element, on random cases
//! (odd sizes, tails, 1×N and N×1, edge values, zero points and shifts of both signs; see
//! [`super::tests::FcCase::random`]).

use super::tests::assert_bit_exact;

/// Fewer under Miri (`scripts/sanitizers.sh`), where each case is interpreted.
const CASES: usize = if cfg!(miri) { 16 } else { 300 };

#[test]
fn bit_exact_dsp() {
    // Real SMLAD on thumbv7em; the portable emulation of the same instructions elsewhere.
    assert_bit_exact(super::dsp::eval_i8, 0xD5B0, CASES);
}

/// The DSP variant's groups of four rows with every feature in one block (`quad_fast`: a bias,
/// K a multiple of 4, every shift in `-31..=-2`), on random cases that meet those conditions:
/// 4 to 14 rows (whole groups and leftover rows), up to 256 inputs, up to 40 outputs.
#[test]
fn bit_exact_dsp_quads() {
    let mut rng = crate::ops::testing::Rng::new(0xD5B4);
    let mut taken = 0;
    for i in 0..20_000 {
        let c = super::tests::FcCase::random_batch(&mut rng, 14, 256, 40);
        let (b, k) = (c.shape.batch, c.shape.in_features);
        let fits = b >= 4 && k.is_multiple_of(4) && k <= 256 && c.bias.is_some();
        if !fits || !super::dsp::fast_shifts(&c.shift) || c.input_zero_point.abs() > 255 {
            continue;
        }
        let p = c.params();
        super::check_i8(&p, c.input.len(), c.output_len()).expect("valid case");
        let mut want = std::vec![0i8; c.output_len()];
        let mut got = std::vec![0i8; c.output_len()];
        super::reference::eval_i8(&p, &c.input, &mut want);
        super::dsp::eval_i8(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i}: {:?}", c.shape);
        taken += 1;
        if taken == CASES {
            break;
        }
    }
    assert!(taken >= CASES / 2, "only {taken} cases met the conditions");
}

#[test]
fn bit_exact_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert_bit_exact(super::avx2::eval_i8_detected, 0xA7C2, CASES);
        // Wider: several blocks of widened weights (up to 1000 inputs, 90 outputs) and rows
        // beyond the widened buffer (over 2032 inputs: the per-row dot-product form).
        let mut rng = crate::ops::testing::Rng::new(0xA7C3);
        for i in 0..40 {
            let c = super::tests::FcCase::random_with(
                &mut rng,
                if i % 4 == 0 { 2600 } else { 1000 },
                90,
            );
            let p = c.params();
            super::check_i8(&p, c.input.len(), c.output_len()).expect("valid case");
            let mut want = std::vec![0i8; c.output_len()];
            let mut got = std::vec![0i8; c.output_len()];
            super::reference::eval_i8(&p, &c.input, &mut want);
            super::avx2::eval_i8_detected(&p, &c.input, &mut got);
            assert_eq!(got, want, "case {i}: {:?}", c.shape);
        }
        // Batches of up to 14 rows: the 4-row register tiles, leftover rows and columns; every
        // eighth case up to 1100 outputs (several 512-column blocks of sums).
        for i in 0..120 {
            let c = if i % 8 == 7 {
                super::tests::FcCase::random_batch(&mut rng, 9, 70, 1100)
            } else {
                super::tests::FcCase::random_batch(&mut rng, 14, 200, 23)
            };
            let p = c.params();
            super::check_i8(&p, c.input.len(), c.output_len()).expect("valid case");
            let mut want = std::vec![0i8; c.output_len()];
            let mut got = std::vec![0i8; c.output_len()];
            super::reference::eval_i8(&p, &c.input, &mut want);
            super::avx2::eval_i8_detected(&p, &c.input, &mut got);
            assert_eq!(got, want, "batch case {i}: {:?}", c.shape);
        }
        return;
    }
    println!("skipped: fully_connected/avx2");
}

/// The VNNI variant, in each encoding the CPU has: the random cases, then batches of up to 14 rows (4-row tiles, leftover
/// rows and columns) with rows up to 300 inputs (several 32-byte blocks and tails), then rows
/// longer than its buffer (the AVX2 fallback).
#[test]
fn bit_exact_avx_vnni() {
    #[cfg(target_arch = "x86_64")]
    for cpu in crate::arch::x86_vnni::available() {
        let f: crate::ops::FullyConnectedI8Fn = match cpu.kind() {
            crate::arch::x86_vnni::VnniKind::Vex => vnni_vex,
            crate::arch::x86_vnni::VnniKind::Evex => vnni_evex,
        };
        println!("fully_connected VNNI form: {:?}", cpu.kind());
        assert_bit_exact(f, 0x7A11, CASES);
        let mut rng = crate::ops::testing::Rng::new(0x7A12);
        for i in 0..160 {
            let c = if i % 20 == 19 {
                super::tests::FcCase::random_batch(&mut rng, 5, 4200, 9)
            } else if i % 8 == 7 {
                super::tests::FcCase::random_batch(&mut rng, 9, 70, 1100)
            } else {
                super::tests::FcCase::random_batch(&mut rng, 14, 300, 23)
            };
            let p = c.params();
            super::check_i8(&p, c.input.len(), c.output_len()).expect("valid case");
            let mut want = std::vec![0i8; c.output_len()];
            let mut got = std::vec![0i8; c.output_len()];
            super::reference::eval_i8(&p, &c.input, &mut want);
            f(&p, &c.input, &mut got);
            assert_eq!(got, want, "{:?} case {i}: {:?}", cpu.kind(), c.shape);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if crate::arch::x86_vnni::available().is_empty() {
        println!("skipped: fully_connected/avx2 (CPU has neither AVX-VNNI nor AVX512-VNNI)");
    }
}

/// The AVX-512 VNNI forms (dot products below 4 rows, panels from 4): the random cases, batches
/// of up to 14 rows (4-row tiles and leftover rows) with up to 130 outputs (64-column panels, a
/// partial last vector, 8-column groups of the dot products and partial ones), rows of up to 2100
/// inputs (panels of fewer vectors, `k mod 4` and `k mod 64` tails, and beyond its limit: not
/// taken), then the kernel table's entry on the same batches.
#[test]
fn bit_exact_avx512_vnni() {
    #[cfg(target_arch = "x86_64")]
    if crate::ops::gemm_avx512::detected().is_some() {
        assert_bit_exact(avx512_forced, 0x5120, CASES);
        let mut rng = crate::ops::testing::Rng::new(0x5121);
        for i in 0..200 {
            let c = match i % 10 {
                9 => super::tests::FcCase::random_batch(&mut rng, 7, 2100, 40),
                7 | 8 => super::tests::FcCase::random_batch(&mut rng, 14, 600, 130),
                _ => super::tests::FcCase::random_batch(&mut rng, 14, 300, 70),
            };
            let p = c.params();
            super::check_i8(&p, c.input.len(), c.output_len()).expect("valid case");
            let mut want = std::vec![0i8; c.output_len()];
            super::reference::eval_i8(&p, &c.input, &mut want);
            for f in [avx512_forced, super::avx2::eval_i8_vnni_detected] {
                let mut got = std::vec![0i8; c.output_len()];
                f(&p, &c.input, &mut got);
                assert_eq!(got, want, "case {i}: {:?}", c.shape);
            }
        }
        return;
    }
    println!("skipped: fully_connected AVX-512 VNNI (CPU lacks AVX512-F/BW/VL/VNNI)");
}

/// The AVX-512 VNNI forms (the reference beyond their longest row).
#[cfg(target_arch = "x86_64")]
fn avx512_forced(p: &super::FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let cpu = crate::ops::gemm_avx512::detected().expect("detected by the test");
    if !super::avx2::eval_i8_avx512_on(cpu, p, input, output) {
        assert!(p.shape.in_features as usize > crate::ops::gemm_avx512::MAX_K);
        super::reference::eval_i8(p, input, output);
    }
}

/// The VNNI form in one encoding (the CPU must have it).
#[cfg(target_arch = "x86_64")]
fn vnni_in(
    kind: crate::arch::x86_vnni::VnniKind,
    p: &super::FullyConnectedParams<'_>,
    input: &[i8],
    output: &mut [i8],
) {
    let cpu = crate::arch::x86_vnni::cpu_with(kind).expect("encoding detected by the test");
    super::avx2::eval_i8_vnni_on(cpu, p, input, output)
}

#[cfg(target_arch = "x86_64")]
fn vnni_vex(p: &super::FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    vnni_in(crate::arch::x86_vnni::VnniKind::Vex, p, input, output)
}

#[cfg(target_arch = "x86_64")]
fn vnni_evex(p: &super::FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    vnni_in(crate::arch::x86_vnni::VnniKind::Evex, p, input, output)
}

#[test]
fn bit_exact_neon() {
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        assert_bit_exact(super::neon::eval_i8, 0x4E0, CASES);
        return;
    }
    #[allow(unreachable_code)]
    {
        println!("skipped: fully_connected/neon");
    }
}

#[test]
fn bit_exact_kernel_table() {
    // Whatever `arch::ops_table_best()` selected on this machine.
    assert_bit_exact(
        crate::arch::ops_table_best().fully_connected_i8,
        0xBE57,
        CASES,
    );
}

/// The AVX f32 kernel against the reference, bit for bit (same summation order per output), on
/// random sizes: up to 11 rows (4-row tiles and leftovers), 600 inputs (several 256-input
/// blocks), 40 outputs (16-feature panels and a partial one), with and without bias and clamp;
/// the AVX form and (where the CPU has it) the AVX-512 form (8-row tiles, 512-input blocks).
#[test]
fn bit_exact_avx_f32() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        use super::{ClampF32, FullyConnectedF32Params, FullyConnectedShape};
        let mut rng = crate::ops::testing::Rng::new(0xF32A);
        for case in 0..200 {
            let shape = FullyConnectedShape {
                batch: rng.dim(19),
                in_features: if rng.one_in(3) {
                    rng.dim(1100)
                } else {
                    rng.dim(40)
                },
                out_features: rng.dim(40),
            };
            let (b, k, n) = (
                shape.batch as usize,
                shape.in_features as usize,
                shape.out_features as usize,
            );
            let x = rng.f32_vec(b * k, 3.0);
            let w = rng.f32_vec(n * k, 1.0);
            let bias = rng.f32_vec(n, 2.0);
            let activation = match case % 3 {
                0 => ClampF32::NONE,
                1 => ClampF32::RELU6,
                _ => ClampF32::RELU,
            };
            let p = FullyConnectedF32Params {
                shape,
                weights: &w,
                bias: if rng.one_in(4) { None } else { Some(&bias) },
                activation,
            };
            super::check_f32(&p, x.len(), b * n).expect("valid case");
            let mut want = std::vec![0f32; b * n];
            let mut got = std::vec![0f32; b * n];
            super::reference::eval_f32(&p, &x, &mut want);
            super::avx2::eval_f32_detected(&p, &x, &mut got);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "case {case}: {shape:?}");
            // SAFETY: AVX2 (hence AVX) detected above.
            unsafe { super::avx2::eval_f32(&p, &x, &mut got) };
            assert_eq!(bits(&got), bits(&want), "AVX, case {case}: {shape:?}");
            if crate::ops::gemm_avx512::detected().is_some() {
                // SAFETY: the token proves AVX512F.
                unsafe { super::avx512::eval_f32(&p, &x, &mut got) };
                assert_eq!(bits(&got), bits(&want), "AVX-512, case {case}: {shape:?}");
            }
        }
        return;
    }
    println!("skipped: fully_connected/avx2 f32");
}

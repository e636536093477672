use super::*;
use crate::arch::DotKernel;
use crate::ops::testing::{self, Rng};
use proptest::prelude::*;

struct Case {
    p: BatchMatMulParams,
    a: Vec<i8>,
    b: Vec<i8>,
    scales: (f64, f64, f64),
}

fn random_case(rng: &mut Rng) -> Case {
    random_case_with(rng, 9, 9)
}

/// A random case with up to `max_m` rows and `max_n` columns.
fn random_case_with(rng: &mut Rng, max_m: u32, max_n: u32) -> Case {
    let shape = BatchMatMulShape {
        batch: rng.dim(3),
        m: rng.dim(max_m),
        k: if rng.one_in(4) {
            rng.dim(200)
        } else {
            rng.dim(40)
        },
        n: rng.dim(max_n),
        transpose_b: rng.one_in(2),
    };
    let (la, lb, _) = shape.lens().unwrap();
    let (sa, sb) = (rng.scale(), rng.scale());
    let so = sa * sb * (shape.k as f64).sqrt() * rng.log_uniform(20.0, 200.0);
    let (output_multiplier, output_shift) = testing::multiplier(sa * sb / so);
    let output_zero_point = rng.zero_point();
    Case {
        p: BatchMatMulParams {
            shape,
            a_zero_point: rng.zero_point(),
            b_zero_point: rng.zero_point(),
            output_zero_point,
            output_multiplier,
            output_shift,
            activation: rng.clamp(output_zero_point),
        },
        a: rng.i8_vec(la),
        b: rng.i8_vec(lb),
        scales: (sa, sb, so),
    }
}

fn oracle(c: &Case) -> Vec<i8> {
    let s = c.p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    let a = testing::dequantize(&c.a, c.scales.0, c.p.a_zero_point);
    let b = testing::dequantize(&c.b, c.scales.1, c.p.b_zero_point);
    let mut out = Vec::new();
    for bi in 0..s.batch as usize {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f64;
                for t in 0..k {
                    let bv = if s.transpose_b {
                        b[bi * n * k + j * k + t]
                    } else {
                        b[bi * k * n + t * n + j]
                    };
                    acc += a[bi * m * k + i * k + t] * bv;
                }
                out.push(testing::quantize_f64(
                    acc,
                    c.scales.2,
                    c.p.output_zero_point,
                    c.p.activation,
                ));
            }
        }
    }
    out
}

#[test]
fn golden_qk_transpose() {
    // A = [[1, 2]], B^T rows [[3, 4], [5, 6]] (zero points 0): [11, 17], scaled by 0.5.
    let shape = BatchMatMulShape {
        batch: 1,
        m: 1,
        k: 2,
        n: 2,
        transpose_b: true,
    };
    let p = BatchMatMulParams {
        shape,
        a_zero_point: 0,
        b_zero_point: 0,
        output_zero_point: 0,
        output_multiplier: 1 << 30,
        output_shift: 0,
        activation: ClampI8::NONE,
    };
    let mut out = [0i8; 2];
    check_i8(&p, 2, 4, 2).unwrap();
    eval_i8(&p, &[1, 2], &[3, 4, 5, 6], &mut out);
    assert_eq!(out, [6, 9]); // 5.5 -> 6, 8.5 -> 9 (ties up)
    let mut out2 = [0i8; 2];
    let p2 = BatchMatMulParams {
        shape: BatchMatMulShape {
            transpose_b: false,
            ..shape
        },
        ..p
    };
    eval_i8(&p2, &[1, 2], &[3, 5, 4, 6], &mut out2);
    assert_eq!(out2, out);
}

#[test]
fn rejects_bad_shapes() {
    let shape = BatchMatMulShape {
        batch: 1,
        m: 2,
        k: 3,
        n: 4,
        transpose_b: false,
    };
    let p = BatchMatMulF32Params {
        shape,
        activation: ClampF32::NONE,
    };
    assert!(check_f32(&p, 6, 12, 8).is_ok());
    assert!(check_f32(&p, 6, 11, 8).is_err());
    let deep = BatchMatMulShape {
        k: MAX_DEPTH + 1,
        ..shape
    };
    assert!(deep.lens().is_err());
    assert!(BatchMatMulShape { m: 0, ..shape }.lens().is_err());
}

fn assert_bit_exact(dot: DotKernel, seed: u64) {
    let c = random_case(&mut Rng::new(seed));
    let (_, _, lo) = c.p.shape.lens().unwrap();
    let mut want = vec![0i8; lo];
    let mut got = vec![0i8; lo];
    reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
    eval_i8_with(&dot, &c.p, &c.a, &c.b, &mut got);
    assert_eq!(got, want, "{:?} (seed {seed})", c.p.shape);
}

/// The DSP kernel (`dsp::eval_i8`, emulated SMLAD off-target) on random cases: both layouts of
/// `B`, odd row counts (the three-column pass), depths not a multiple of 4, column blocks of the
/// gathered `Bᵀ` (k·n > 1 KiB) and depths beyond `dsp::MAX_K`.
#[test]
fn bit_exact_dsp_kernel() {
    let mut rng = Rng::new(0xB33D5);
    for i in 0..300 {
        let mut c = random_case_with(&mut rng, 9, 40);
        if i % 10 == 0 {
            c.p.shape.k = rng.dim(700);
            let (la, lb, _) = c.p.shape.lens().unwrap();
            c.a = rng.i8_vec(la);
            c.b = rng.i8_vec(lb);
        }
        let (la, lb, lo) = c.p.shape.lens().unwrap();
        check_i8(&c.p, la, lb, lo).unwrap();
        let mut want = vec![0i8; lo];
        let mut got = vec![0i8; lo];
        reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
        dsp::eval_i8(&c.p, &c.a, &c.b, &mut got);
        assert_eq!(got, want, "case {i}: {:?}", c.p.shape);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES))]

    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let c = random_case(&mut Rng::new(seed));
        let (la, lb, lo) = c.p.shape.lens().unwrap();
        check_i8(&c.p, la, lb, lo).unwrap();
        let mut out = vec![0i8; lo];
        eval_i8(&c.p, &c.a, &c.b, &mut out);
        testing::assert_within_lsb(&out, &oracle(&c), 1, "batch_matmul int8");
    }

    #[test]
    fn bit_exact_dsp(seed in any::<u64>()) {
        assert_bit_exact(DotKernel::dsp(), seed);
    }

    #[test]
    fn bit_exact_avx2(seed in any::<u64>()) {
        match DotKernel::avx2_for_tests() {
            Some(t) => assert_bit_exact(t, seed),
            None => println!("skipped: batch_matmul/avx2"),
        }
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let shape = BatchMatMulShape { batch: rng.dim(3), m: rng.dim(7), k: rng.dim(50), n: rng.dim(7), transpose_b: rng.one_in(2) };
        let (la, lb, lo) = shape.lens().unwrap();
        let (a, b) = (rng.f32_vec(la, 2.0), rng.f32_vec(lb, 2.0));
        let p = BatchMatMulF32Params { shape, activation: ClampF32::NONE };
        check_f32(&p, la, lb, lo).unwrap();
        let mut out = vec![0f32; lo];
        eval_f32(&p, &a, &b, &mut out);
        let (m, k, n) = (shape.m as usize, shape.k as usize, shape.n as usize);
        let mut want = Vec::new();
        for bi in 0..shape.batch as usize {
            for i in 0..m {
                for j in 0..n {
                    want.push((0..k).map(|t| {
                        let bv = if shape.transpose_b { b[bi * n * k + j * k + t] } else { b[bi * k * n + t * n + j] };
                        a[bi * m * k + i * k + t] as f64 * bv as f64
                    }).sum::<f64>());
                }
            }
        }
        testing::assert_close_f32(&out, &want, 1e-5, 1e-4, "batch_matmul f32");
    }
}

/// The AVX2 BatchMatMul against the reference on random cases, both layouts of `B`, up to 20 rows
/// (4-row tiles and leftovers) and 70 columns (column pairs and a leftover), and `k` up to 200
/// (several 16-lane chunks and a partial one); then `B` too large to transpose on the stack, and
/// rows longer than the buffer (`k` = 2100, the reference fallback).
#[test]
fn bit_exact_avx2_gemm() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0xB3A2);
        for case in 0..300 {
            let c = random_case_with(&mut rng, 20, 70);
            let (la, lb, lo) = c.p.shape.lens().unwrap();
            check_i8(&c.p, la, lb, lo).unwrap();
            let mut want = vec![0i8; lo];
            let mut got = vec![0i8; lo];
            reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
            avx2::eval_i8_detected(&c.p, &c.a, &c.b, &mut got);
            assert_eq!(got, want, "case {case}: {:?}", c.p.shape);
        }
        // `B` larger than the transposition buffer (k·n > 16384): gathered columns.
        for case in 0..6 {
            let mut c = random_case_with(&mut rng, 9, 5);
            c.p.shape.k = 400 + case;
            c.p.shape.n = 41 + case;
            c.p.shape.transpose_b = false;
            let (la, lb, lo) = c.p.shape.lens().unwrap();
            c.a = rng.i8_vec(la);
            c.b = rng.i8_vec(lb);
            let mut want = vec![0i8; lo];
            let mut got = vec![0i8; lo];
            reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
            avx2::eval_i8_detected(&c.p, &c.a, &c.b, &mut got);
            assert_eq!(got, want, "large B {case}: {:?}", c.p.shape);
        }
        let mut c = random_case_with(&mut rng, 3, 5);
        c.p.shape.k = 2100;
        let (la, lb, lo) = c.p.shape.lens().unwrap();
        c.a = rng.i8_vec(la);
        c.b = rng.i8_vec(lb);
        let mut want = vec![0i8; lo];
        let mut got = vec![0i8; lo];
        reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
        avx2::eval_i8_detected(&c.p, &c.a, &c.b, &mut got);
        assert_eq!(got, want, "long rows: {:?}", c.p.shape);
        return;
    }
    println!("skipped: batch_matmul/avx2");
}

/// The VNNI BatchMatMul, in each encoding the CPU has, on the same cases (zero points of both operands folded in through
/// row and column sums); rows beyond its buffer (`k` = 4200) take the reference fallback.
#[test]
fn bit_exact_avx_vnni() {
    #[cfg(target_arch = "x86_64")]
    for cpu in crate::arch::x86_vnni::available() {
        println!("batch_matmul VNNI form: {:?}", cpu.kind());
        let f = |p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]| {
            avx2::eval_i8_vnni_on(cpu, p, a, b, out)
        };
        let mut rng = Rng::new(0xB3A7);
        for case in 0..300 {
            let c = random_case_with(&mut rng, 20, 70);
            let (la, lb, lo) = c.p.shape.lens().unwrap();
            check_i8(&c.p, la, lb, lo).unwrap();
            let mut want = vec![0i8; lo];
            let mut got = vec![0i8; lo];
            reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
            f(&c.p, &c.a, &c.b, &mut got);
            assert_eq!(got, want, "case {case}: {:?}", c.p.shape);
        }
        // `B` larger than the transposition buffer (k·n > 16384): gathered columns.
        for case in 0..6 {
            let mut c = random_case_with(&mut rng, 9, 5);
            c.p.shape.k = 400 + case;
            c.p.shape.n = 41 + case;
            c.p.shape.transpose_b = false;
            let (la, lb, lo) = c.p.shape.lens().unwrap();
            c.a = rng.i8_vec(la);
            c.b = rng.i8_vec(lb);
            let mut want = vec![0i8; lo];
            let mut got = vec![0i8; lo];
            reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
            f(&c.p, &c.a, &c.b, &mut got);
            assert_eq!(got, want, "large B {case}: {:?}", c.p.shape);
        }
        let mut c = random_case_with(&mut rng, 3, 5);
        c.p.shape.k = 4200;
        let (la, lb, lo) = c.p.shape.lens().unwrap();
        c.a = rng.i8_vec(la);
        c.b = rng.i8_vec(lb);
        let mut want = vec![0i8; lo];
        let mut got = vec![0i8; lo];
        reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
        f(&c.p, &c.a, &c.b, &mut got);
        assert_eq!(got, want, "long rows: {:?}", c.p.shape);
    }
    #[cfg(target_arch = "x86_64")]
    if crate::arch::x86_vnni::available().is_empty() {
        println!("skipped: batch_matmul/avx2 (CPU has neither AVX-VNNI nor AVX512-VNNI)");
    }
}

/// The AVX-512 VNNI panel form (`B` packed from either layout), forced for every `m`, then the
/// kernel table's VNNI entry: rows up to 20 (4-row tiles and leftovers), up to 150 columns (64-column
/// panels, partial vectors), `k` up to 200 with tails, zero points on both operands, per-tensor
/// multipliers and shifts of both signs; then `k` beyond its limit (not taken).
#[test]
fn bit_exact_avx512_vnni() {
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = crate::ops::gemm_avx512::detected() {
        let mut rng = Rng::new(0x512B);
        for case in 0..300 {
            let c = random_case_with(&mut rng, 20, if case % 5 == 4 { 150 } else { 70 });
            let (la, lb, lo) = c.p.shape.lens().unwrap();
            check_i8(&c.p, la, lb, lo).unwrap();
            let mut want = vec![0i8; lo];
            reference::eval_i8(&c.p, &c.a, &c.b, &mut want);
            let mut got = vec![0i8; lo];
            assert!(avx2::eval_i8_avx512_on(cpu, &c.p, &c.a, &c.b, &mut got));
            assert_eq!(got, want, "case {case}: {:?}", c.p.shape);
            let mut got = vec![0i8; lo];
            avx2::eval_i8_vnni_detected(&c.p, &c.a, &c.b, &mut got);
            assert_eq!(got, want, "table entry, case {case}: {:?}", c.p.shape);
        }
        let mut c = random_case_with(&mut rng, 5, 5);
        c.p.shape.k = 2100;
        let (la, lb, lo) = c.p.shape.lens().unwrap();
        c.a = rng.i8_vec(la);
        c.b = rng.i8_vec(lb);
        let mut got = vec![0i8; lo];
        assert!(!avx2::eval_i8_avx512_on(cpu, &c.p, &c.a, &c.b, &mut got));
        return;
    }
    println!("skipped: batch_matmul AVX-512 VNNI (CPU lacks AVX512-F/BW/VL/VNNI)");
}

/// The x86 f32 BatchMatMul kernels (AVX, and AVX-512F where the CPU has it) against the
/// reference, bit for bit: random shapes (row tiles and leftovers, column blocks of 16 and partial
/// ones, both layouts of `B`, several batches), values with some ±0, ±inf and NaN, and clamps.
#[test]
fn bit_exact_avx_f32() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let mut rng = Rng::new(0xBA7F32);
        for case in 0..400 {
            let shape = BatchMatMulShape {
                batch: rng.dim(3),
                m: rng.dim(20),
                k: if rng.one_in(4) {
                    rng.dim(600)
                } else {
                    rng.dim(40)
                },
                n: rng.dim(70),
                transpose_b: rng.one_in(2),
            };
            let (la, lb, lo) = shape.lens().unwrap();
            let (mut a, mut b) = (rng.f32_vec(la, 3.0), rng.f32_vec(lb, 3.0));
            if rng.one_in(4) {
                let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
                for v in [&mut a, &mut b] {
                    let step = rng.range(5, 40) as usize;
                    for x in v.iter_mut().skip(rng.range(0, 6) as usize).step_by(step) {
                        *x = specials[rng.range(0, specials.len() as i32 - 1) as usize];
                    }
                }
            }
            let activation = match rng.range(0, 3) {
                0 => ClampF32::NONE,
                1 => ClampF32::RELU,
                2 => ClampF32::RELU6,
                _ => ClampF32 {
                    min: -1.0,
                    max: 0.5,
                },
            };
            let p = BatchMatMulF32Params { shape, activation };
            check_f32(&p, la, lb, lo).unwrap();
            let mut want = vec![0f32; lo];
            reference::eval_f32(&p, &a, &b, &mut want);
            let mut got = vec![0f32; lo];
            f32_avx::eval_f32_detected(&p, &a, &b, &mut got);
            assert_eq!(
                crate::ops::testing::f32_bits(&got),
                crate::ops::testing::f32_bits(&want),
                "avx, case {case}: {p:?}"
            );
            if f32_avx::avx512_detected() {
                got.fill(7.0);
                f32_avx::eval_f32_avx512_detected(&p, &a, &b, &mut got);
                assert_eq!(
                    crate::ops::testing::f32_bits(&got),
                    crate::ops::testing::f32_bits(&want),
                    "avx512, case {case}: {p:?}"
                );
            }
        }
        if !f32_avx::avx512_detected() {
            println!("skipped: batch_matmul/f32_avx avx512 (CPU lacks AVX512F)");
        }
        return;
    }
    println!("skipped: batch_matmul/f32_avx");
}

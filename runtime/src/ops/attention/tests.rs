use super::*;
use crate::arch::DotKernel;
use crate::ops::softmax::exp_table;
use crate::ops::testing::{self, Rng};
use crate::ops::ClampI8;
use proptest::prelude::*;

/// A random int8 attention step with its real scales.
struct Case {
    shape: KvShape,
    causal: bool,
    q: Vec<i8>,
    k: Vec<i8>,
    v: Vec<i8>,
    pos: i32,
    zps: [i32; 5], // q, k, v, score, out
    scales: [f64; 5],
    table: [i32; 256],
}

impl Case {
    fn random(rng: &mut Rng) -> Case {
        let capacity = rng.dim(40);
        let tokens = rng.dim(capacity.min(5));
        let shape = KvShape {
            heads: rng.dim(3),
            head_dim: rng.dim(20),
            capacity,
            tokens,
        };
        let (n, c) = shape.lens().unwrap();
        let pos = rng.range(0, (capacity - tokens) as i32);
        let scales = [
            rng.scale(),
            rng.scale(),
            rng.scale(),
            rng.log_uniform(0.02, 0.2),
            rng.log_uniform(0.003, 0.1),
        ];
        let zps = [
            rng.zero_point(),
            rng.zero_point(),
            rng.zero_point(),
            rng.zero_point(),
            rng.zero_point(),
        ];
        Case {
            shape,
            causal: !rng.one_in(4),
            q: rng.i8_vec(n),
            k: rng.i8_vec(c),
            v: rng.i8_vec(c),
            pos,
            zps,
            scales,
            table: exp_table(scales[3], 1.0),
        }
    }

    fn score_scale(&self) -> f64 {
        self.scales[0] * self.scales[1] / (self.shape.head_dim as f64).sqrt() / self.scales[3]
    }

    fn params(&self) -> AttentionParams<'_> {
        let (sm, ss) = testing::multiplier(self.score_scale());
        let (om, os) = testing::multiplier(self.scales[2] / (self.scales[4] * 65536.0));
        AttentionParams {
            shape: self.shape,
            causal: self.causal,
            q_zero_point: self.zps[0],
            k_zero_point: self.zps[1],
            v_zero_point: self.zps[2],
            score_multiplier: sm,
            score_shift: ss,
            score_zero_point: self.zps[3],
            exp_table: &self.table,
            output_multiplier: om,
            output_shift: os,
            output_zero_point: self.zps[4],
        }
    }

    fn run(&self, dot: &DotKernel) -> Result<Vec<i8>, Error> {
        let p = self.params();
        let mut scratch = vec![0i32; self.shape.capacity as usize];
        let mut out = vec![0i8; self.q.len()];
        check_i8(&p, self.q.len(), self.k.len(), scratch.len(), out.len()).unwrap();
        eval_i8_with(
            dot,
            &p,
            &self.q,
            &self.k,
            &self.v,
            self.pos,
            &mut scratch,
            &mut out,
        )?;
        Ok(out)
    }

    /// int8 scores as the kernel's integer requantization gives them, then softmax and P·V in f64.
    fn oracle(&self) -> Vec<i8> {
        let p = self.params();
        let s = self.shape;
        let (t, d, cap) = (s.tokens as usize, s.head_dim as usize, s.capacity as usize);
        let mut out = Vec::new();
        for h in 0..s.heads as usize {
            for i in 0..t {
                let len = if self.causal {
                    self.pos as usize + i + 1
                } else {
                    self.pos as usize + t
                };
                let qi = &self.q[(h * t + i) * d..][..d];
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        let kj = &self.k[(h * cap + j) * d..][..d];
                        let acc = crate::arch::dot_offset_i8(qi, -self.zps[0], kj, -self.zps[1]);
                        let q = crate::quant::requantize_to_i8(
                            acc,
                            p.score_multiplier,
                            p.score_shift,
                            self.zps[3],
                            -128,
                            127,
                        );
                        (q as i32 - self.zps[3]) as f64 * self.scales[3]
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for c in 0..d {
                    let y: f64 = (0..len)
                        .map(|j| {
                            e[j] / total
                                * (self.v[(h * cap + j) * d + c] as i32 - self.zps[2]) as f64
                                * self.scales[2]
                        })
                        .sum();
                    out.push(testing::quantize_f64(
                        y,
                        self.scales[4],
                        self.zps[4],
                        ClampI8::NONE,
                    ));
                }
            }
        }
        out
    }
}

#[test]
fn golden_single_position_copies_v() {
    // One cached position: softmax weight 1, output = v requantized (same scale and zero point).
    let table = exp_table(0.1, 1.0);
    let shape = KvShape {
        heads: 1,
        head_dim: 3,
        capacity: 4,
        tokens: 1,
    };
    let (om, os) = testing::multiplier(1.0 / 65536.0);
    let p = AttentionParams {
        shape,
        causal: true,
        q_zero_point: 0,
        k_zero_point: 0,
        v_zero_point: 5,
        score_multiplier: 1 << 30,
        score_shift: 0,
        score_zero_point: 0,
        exp_table: &table,
        output_multiplier: om,
        output_shift: os,
        output_zero_point: 5,
    };
    let mut k = vec![0i8; 12];
    let mut v = vec![0i8; 12];
    append(&shape, &[1i8, 2, 3], 0, &mut k).unwrap();
    append(&shape, &[-7i8, 0, 100], 0, &mut v).unwrap();
    let mut out = [0i8; 3];
    let mut scratch = [0i32; 4];
    check_i8(&p, 3, 12, 4, 3).unwrap();
    eval_i8(&p, &[4, 5, 6], &k, &v, 0, &mut scratch, &mut out).unwrap();
    assert_eq!(out, [-7, 0, 100]);
}

#[test]
fn positions_outside_the_cache_are_errors() {
    let shape = KvShape {
        heads: 2,
        head_dim: 2,
        capacity: 3,
        tokens: 2,
    };
    let mut cache = vec![0i8; 12];
    let new = [1i8; 8];
    assert!(append(&shape, &new, 1, &mut cache).is_ok());
    assert_eq!(
        append(&shape, &new, 2, &mut cache),
        Err(Error::KvCacheFull {
            op: 0,
            capacity: 3,
            position: 4
        })
    );
    assert!(matches!(
        append(&shape, &new, -1, &mut cache),
        Err(Error::KvCacheFull { .. })
    ));
    assert_eq!(
        append(&shape, &new, i32::MAX, &mut cache),
        Err(Error::KvCacheFull {
            op: 0,
            capacity: 3,
            position: i32::MAX
        })
    );
    assert!(check_append(&shape, 8, 11).is_err());
    assert!(KvShape { tokens: 4, ..shape }.lens().is_err());
    assert!(KvShape {
        capacity: MAX_CAPACITY + 1,
        ..shape
    }
    .lens()
    .is_err());
}

/// Decoding token by token through the cache gives exactly the outputs of one causal pass over
/// the whole sequence (prefill), int8 and f32.
#[test]
fn incremental_decode_equals_full_recompute() {
    let mut rng = Rng::new(99);
    for _ in 0..20 {
        let seq = rng.dim(12);
        let full = Case::random(&mut rng);
        let (heads, d, cap) = (
            full.shape.heads,
            full.shape.head_dim,
            seq + rng.range(0, 3) as u32,
        );
        let whole = KvShape {
            heads,
            head_dim: d,
            capacity: cap,
            tokens: seq,
        };
        let one = KvShape { tokens: 1, ..whole };
        let (n, c) = whole.lens().unwrap();
        let (q, k_new, v_new) = (rng.i8_vec(n), rng.i8_vec(n), rng.i8_vec(n));
        let table = full.table;
        let mut p = full.params();
        p.causal = true;
        // Prefill: append all tokens, attend once.
        p.shape = whole;
        let (mut kc, mut vc) = (vec![0i8; c], vec![0i8; c]);
        append(&whole, &k_new, 0, &mut kc).unwrap();
        append(&whole, &v_new, 0, &mut vc).unwrap();
        let mut scratch = vec![0i32; cap as usize];
        let mut want = vec![0i8; n];
        eval_i8(&p, &q, &kc, &vc, 0, &mut scratch, &mut want).unwrap();
        // Decode: one token per step into a fresh (garbage-filled) cache.
        p.shape = one;
        p.exp_table = &table;
        let (mut kc, mut vc) = (rng.i8_vec(c), rng.i8_vec(c));
        let mut got = vec![0i8; n];
        let du = d as usize;
        for pos in 0..seq as usize {
            let pick = |x: &[i8]| -> Vec<i8> {
                (0..heads as usize)
                    .flat_map(|h| x[(h * seq as usize + pos) * du..][..du].to_vec())
                    .collect()
            };
            append(&one, &pick(&k_new), pos as i32, &mut kc).unwrap();
            append(&one, &pick(&v_new), pos as i32, &mut vc).unwrap();
            let mut o = vec![0i8; heads as usize * du];
            eval_i8(&p, &pick(&q), &kc, &vc, pos as i32, &mut scratch, &mut o).unwrap();
            for h in 0..heads as usize {
                got[(h * seq as usize + pos) * du..][..du].copy_from_slice(&o[h * du..][..du]);
            }
        }
        assert_eq!(got, want);
    }
}

/// The DSP attention kernel (`dsp::eval_i8`, emulated SMLAD off-target) against the reference
/// on random cases (heads, head widths 1-20, capacities, prefill and decode, causal or not).
#[test]
fn bit_exact_dsp_kernel() {
    let mut rng = Rng::new(0xA77D);
    for i in 0..400 {
        let c = Case::random(&mut rng);
        let p = c.params();
        let mut scratch = vec![0i32; c.shape.capacity as usize];
        let mut got = vec![0i8; c.q.len()];
        check_i8(&p, c.q.len(), c.k.len(), scratch.len(), got.len()).unwrap();
        dsp::eval_i8(&p, &c.q, &c.k, &c.v, c.pos, &mut scratch, &mut got).unwrap();
        let want = c.run(&DotKernel::reference()).unwrap();
        assert_eq!(got, want, "case {i}: {:?}", c.shape);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testing::CASES * 2))]

    #[test]
    fn int8_within_1_lsb_of_f64(seed in any::<u64>()) {
        let c = Case::random(&mut Rng::new(seed));
        let out = c.run(&DotKernel::reference()).unwrap();
        testing::assert_within_lsb(&out, &c.oracle(), 1, "attention int8");
    }

    #[test]
    fn bit_exact_dsp(seed in any::<u64>()) {
        let c = Case::random(&mut Rng::new(seed));
        prop_assert_eq!(c.run(&DotKernel::dsp()).unwrap(), c.run(&DotKernel::reference()).unwrap());
    }

    #[test]
    fn bit_exact_avx2(seed in any::<u64>()) {
        let c = Case::random(&mut Rng::new(seed));
        match DotKernel::avx2_for_tests() {
            Some(t) => prop_assert_eq!(c.run(&t).unwrap(), c.run(&DotKernel::reference()).unwrap()),
            None => println!("skipped: attention/avx2"),
        }
    }

    #[test]
    fn f32_matches_f64(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let capacity = rng.dim(30);
        let tokens = rng.dim(capacity.min(4));
        let shape = KvShape { heads: rng.dim(3), head_dim: rng.dim(16), capacity, tokens };
        let (n, c) = shape.lens().unwrap();
        let pos = rng.range(0, (capacity - tokens) as i32);
        let causal = rng.one_in(2);
        let scale = 1.0 / (shape.head_dim as f32).sqrt();
        let (q, k, v) = (rng.f32_vec(n, 2.0), rng.f32_vec(c, 2.0), rng.f32_vec(c, 2.0));
        let p = AttentionF32Params { shape, causal, scale };
        let mut scratch = vec![0f32; capacity as usize];
        let mut out = vec![0f32; n];
        check_f32(&p, n, c, scratch.len(), n).unwrap();
        eval_f32(&p, &q, &k, &v, pos, &mut scratch, &mut out).unwrap();
        let (t, d, cap) = (tokens as usize, shape.head_dim as usize, capacity as usize);
        let mut want = Vec::new();
        for h in 0..shape.heads as usize {
            for i in 0..t {
                let len = if causal { pos as usize + i + 1 } else { pos as usize + t };
                let s: Vec<f64> = (0..len).map(|j| (0..d).map(|x| q[(h * t + i) * d + x] as f64 * k[(h * cap + j) * d + x] as f64).sum::<f64>() * scale as f64).collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let tot: f64 = e.iter().sum();
                for x in 0..d {
                    want.push((0..len).map(|j| e[j] / tot * v[(h * cap + j) * d + x] as f64).sum());
                }
            }
        }
        testing::assert_close_f32(&out, &want, 1e-5, 1e-5, "attention f32");
    }
}

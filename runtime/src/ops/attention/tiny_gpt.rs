//! A tiny decoder-only GPT assembled from the kernels directly, without a model image, in f32 and
//! in int8 with calibrated scales: a kernel-level fixture that checks the attention and KV-cache
//! kernels in isolation (`std` only; not a public API). The same architecture as a model image,
//! run by the interpreter, is `models::tiny_gpt`.
//!
//! vocabulary 32, d_model 32, 2 heads of 16, MLP 64 with GELU, 1 pre-LN block, learned positions,
//! context 16; weights are seeded random (untrained). The tests check that greedy decoding through
//! the KV cache gives the same tokens and the same logits bits as recomputing the whole prefix at
//! every step, and measure how closely the int8 model tracks the f32 one; `benches/matmul.rs`
//! times one decode step of this fixture and `benches/invoke.rs` one of the image.

use super::{append, AttentionF32Params, AttentionParams, KvShape};
use crate::ops::add::{self, AddF32Params, AddParams, AddRequant};
use crate::ops::fully_connected::{
    self as fc, FullyConnectedF32Params, FullyConnectedParams, FullyConnectedShape,
};
use crate::ops::gather::{self, GatherParams};
use crate::ops::layer_norm::{self, LayerNormConstants, LayerNormF32Params};
use crate::ops::lut::LutParams;
use crate::ops::transpose::{self, TransposeParams};
use crate::ops::{gelu, softmax, BroadcastShape, ClampF32, ClampI8};
use std::collections::BTreeMap;

/// splitmix64, for seeded weights and calibration data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
    }

    /// Uniform in `[-amp, amp)`.
    fn f32_vec(&mut self, n: usize, amp: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                (((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amp) as f32
            })
            .collect()
    }
}

/// Vocabulary size.
pub const V: usize = 32;
const D: usize = 32;
const H: usize = 2;
const HD: usize = 16;
const F: usize = 64;
/// Context length (KV-cache capacity).
pub const CTX: usize = 16;

struct Lin {
    w: Vec<f32>,
    b: Vec<f32>,
    k: usize,
    n: usize,
}

impl Lin {
    fn random(rng: &mut Rng, k: usize, n: usize) -> Lin {
        let a = 1.0 / (k as f64).sqrt();
        Lin {
            w: rng.f32_vec(k * n, 1.7 * a),
            b: rng.f32_vec(n, 0.1),
            k,
            n,
        }
    }
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

impl Norm {
    fn random(rng: &mut Rng) -> Norm {
        Norm {
            g: rng.f32_vec(D, 0.3).iter().map(|x| 1.0 + x).collect(),
            b: rng.f32_vec(D, 0.1),
        }
    }
}

struct Model {
    tok: Vec<f32>,
    pos: Vec<f32>,
    ln1: Norm,
    qkv: Lin,
    proj: Lin,
    ln2: Norm,
    up: Lin,
    down: Lin,
    lnf: Norm,
    head: Lin,
}

impl Model {
    fn random(seed: u64) -> Model {
        let mut rng = Rng::new(seed);
        Model {
            tok: rng.f32_vec(V * D, 1.0),
            pos: rng.f32_vec(CTX * D, 0.5),
            ln1: Norm::random(&mut rng),
            qkv: Lin::random(&mut rng, D, 3 * D),
            proj: Lin::random(&mut rng, D, D),
            ln2: Norm::random(&mut rng),
            up: Lin::random(&mut rng, D, F),
            down: Lin::random(&mut rng, F, D),
            lnf: Norm::random(&mut rng),
            head: Lin::random(&mut rng, D, V),
        }
    }
}

/// Per-tensor activation ranges seen during calibration.
type Stats = BTreeMap<&'static str, (f32, f32)>;

fn record(stats: &mut Option<&mut Stats>, name: &'static str, v: &[f32]) {
    if let Some(s) = stats {
        let e = s.entry(name).or_insert((0.0, 0.0));
        for &x in v {
            e.0 = e.0.min(x);
            e.1 = e.1.max(x);
        }
    }
}

fn fc_f32(l: &Lin, x: &[f32]) -> Vec<f32> {
    let t = x.len() / l.k;
    let p = FullyConnectedF32Params {
        shape: FullyConnectedShape {
            batch: t as u32,
            in_features: l.k as u32,
            out_features: l.n as u32,
        },
        weights: &l.w,
        bias: Some(&l.b),
        activation: ClampF32::NONE,
    };
    let mut y = vec![0f32; t * l.n];
    fc::check_f32(&p, x.len(), y.len()).unwrap();
    fc::eval_f32(&p, x, &mut y);
    y
}

fn ln_f32(n: &Norm, x: &[f32]) -> Vec<f32> {
    let p = LayerNormF32Params {
        rows: (x.len() / D) as u32,
        cols: D as u32,
        epsilon: 1e-5,
        gamma: &n.g,
        beta: &n.b,
    };
    let mut y = vec![0f32; x.len()];
    layer_norm::check_f32(&p, x.len(), y.len()).unwrap();
    layer_norm::eval_f32(&p, x, &mut y);
    y
}

fn add_f32(a: &[f32], b: &[f32]) -> Vec<f32> {
    let p = AddF32Params {
        shape: BroadcastShape::same([1, 1, (a.len() / D) as u32, D as u32]),
        activation: ClampF32::NONE,
    };
    let mut y = vec![0f32; a.len()];
    add::check_f32(&p, a.len(), b.len(), y.len()).unwrap();
    add::eval_f32(&p, a, b, &mut y);
    y
}

fn transpose_any<T: Copy + Default>(dims: [u32; 4], perm: [u8; 4], x: &[T]) -> Vec<T> {
    let p = TransposeParams {
        input_dims: dims,
        perm,
    };
    let mut y = vec![T::default(); x.len()];
    transpose::check(&p, x.len(), y.len()).unwrap();
    transpose::eval(&p, x, &mut y);
    y
}

fn gather_any<T: Copy + Default>(table: &[T], rows: usize, ids: &[i32]) -> Vec<T> {
    let p = GatherParams {
        rows: rows as u32,
        row_len: D as u32,
        table,
    };
    let mut y = vec![T::default(); ids.len() * D];
    gather::check(&p, ids.len(), y.len()).unwrap();
    gather::eval(&p, ids, &mut y).unwrap();
    y
}

/// KV caches `[H, CTX, HD]` (the persistent state of a decode).
pub struct Cache<T> {
    k: Vec<T>,
    v: Vec<T>,
}

impl<T: Copy + Default> Cache<T> {
    /// Empty caches.
    pub fn new() -> Self {
        Cache {
            k: vec![T::default(); H * CTX * HD],
            v: vec![T::default(); H * CTX * HD],
        }
    }
}

/// f32 forward of `ids` at positions `pos0..`, appending to `cache`; logits `[T, V]`.
fn forward_f32(
    m: &Model,
    ids: &[i32],
    pos0: usize,
    cache: &mut Cache<f32>,
    mut stats: Option<&mut Stats>,
) -> Vec<f32> {
    let t = ids.len();
    let positions: Vec<i32> = (pos0..pos0 + t).map(|p| p as i32).collect();
    let xt = gather_any(&m.tok, V, ids);
    let xp = gather_any(&m.pos, CTX, &positions);
    record(&mut stats, "tok", &m.tok);
    record(&mut stats, "pos", &m.pos);
    let x = add_f32(&xt, &xp);
    record(&mut stats, "x0", &x);
    let h = ln_f32(&m.ln1, &x);
    record(&mut stats, "ln1", &h);
    let qkv = fc_f32(&m.qkv, &h);
    record(&mut stats, "qkv", &qkv);
    let split = transpose_any([t as u32, 3, H as u32, HD as u32], [1, 2, 0, 3], &qkv);
    let n = H * t * HD;
    let shape = KvShape {
        heads: H as u32,
        head_dim: HD as u32,
        capacity: CTX as u32,
        tokens: t as u32,
    };
    append(&shape, &split[n..2 * n], pos0 as i32, &mut cache.k).unwrap();
    append(&shape, &split[2 * n..], pos0 as i32, &mut cache.v).unwrap();
    let p = AttentionF32Params {
        shape,
        causal: true,
        scale: 1.0 / (HD as f32).sqrt(),
    };
    let mut scratch = vec![0f32; CTX];
    let mut att = vec![0f32; n];
    super::check_f32(&p, n, cache.k.len(), CTX, n).unwrap();
    super::eval_f32(
        &p,
        &split[..n],
        &cache.k,
        &cache.v,
        pos0 as i32,
        &mut scratch,
        &mut att,
    )
    .unwrap();
    if stats.is_some() {
        // Scores, for the int8 score scale.
        let q = &split[..n];
        let mut s = Vec::new();
        for hh in 0..H {
            for i in 0..t {
                for j in 0..=pos0 + i {
                    let qi = &q[(hh * t + i) * HD..][..HD];
                    let kj = &cache.k[(hh * CTX + j) * HD..][..HD];
                    s.push(qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * p.scale);
                }
            }
        }
        record(&mut stats, "scores", &s);
    }
    record(&mut stats, "att", &att);
    let att = transpose_any([1, H as u32, t as u32, HD as u32], [0, 2, 1, 3], &att);
    let o = fc_f32(&m.proj, &att);
    record(&mut stats, "proj", &o);
    let x1 = add_f32(&x, &o);
    record(&mut stats, "x1", &x1);
    let h2 = ln_f32(&m.ln2, &x1);
    record(&mut stats, "ln2", &h2);
    let u = fc_f32(&m.up, &h2);
    record(&mut stats, "up", &u);
    let mut g = vec![0f32; u.len()];
    gelu::eval_f32(&u, &mut g);
    record(&mut stats, "gelu", &g);
    let dn = fc_f32(&m.down, &g);
    record(&mut stats, "down", &dn);
    let x2 = add_f32(&x1, &dn);
    record(&mut stats, "x2", &x2);
    let hf = ln_f32(&m.lnf, &x2);
    record(&mut stats, "lnf", &hf);
    let logits = fc_f32(&m.head, &hf);
    record(&mut stats, "logits", &logits);
    logits
}

/// Asymmetric int8 quantization `(scale, zero_point)` of a range (widened to include 0).
fn qparams((lo, hi): (f32, f32)) -> (f64, i32) {
    let (lo, hi) = (lo.min(0.0) as f64, hi.max(0.0) as f64);
    let scale = ((hi - lo) / 255.0).max(1e-6);
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

fn quantize(x: &[f32], (s, zp): (f64, i32)) -> Vec<i8> {
    x.iter()
        .map(|&v| ((v as f64 / s).round() + zp as f64).clamp(-128.0, 127.0) as i8)
        .collect()
}

struct QLin {
    w: Vec<i8>,
    bias: Vec<i32>,
    mult: Vec<i32>,
    shift: Vec<i32>,
    k: usize,
    n: usize,
    input: (f64, i32),
    output: (f64, i32),
}

impl QLin {
    fn new(l: &Lin, input: (f64, i32), output: (f64, i32)) -> QLin {
        let mut w = Vec::new();
        let (mut bias, mut mult, mut shift) = (Vec::new(), Vec::new(), Vec::new());
        for o in 0..l.n {
            let row = &l.w[o * l.k..(o + 1) * l.k];
            let sw = (row.iter().fold(0f32, |a, &v| a.max(v.abs())) as f64 / 127.0).max(1e-9);
            w.extend(
                row.iter()
                    .map(|&v| (v as f64 / sw).round().clamp(-127.0, 127.0) as i8),
            );
            bias.push((l.b[o] as f64 / (input.0 * sw)).round() as i32);
            let (m, s) = crate::quant::quantize_multiplier(input.0 * sw / output.0).unwrap();
            mult.push(m);
            shift.push(s);
        }
        QLin {
            w,
            bias,
            mult,
            shift,
            k: l.k,
            n: l.n,
            input,
            output,
        }
    }

    fn eval(&self, x: &[i8]) -> Vec<i8> {
        let t = x.len() / self.k;
        let p = FullyConnectedParams {
            shape: FullyConnectedShape {
                batch: t as u32,
                in_features: self.k as u32,
                out_features: self.n as u32,
            },
            weights: &self.w,
            bias: Some(&self.bias),
            input_zero_point: self.input.1,
            output_zero_point: self.output.1,
            output_multiplier: &self.mult,
            output_shift: &self.shift,
            activation: ClampI8::NONE,
        };
        let mut y = vec![0i8; t * self.n];
        fc::check_i8(&p, x.len(), y.len()).unwrap();
        fc::eval_i8(&p, x, &mut y);
        y
    }
}

struct QNorm {
    k: LayerNormConstants,
    input: (f64, i32),
    output: (f64, i32),
}

impl QNorm {
    fn new(n: &Norm, input: (f64, i32), output: (f64, i32)) -> QNorm {
        let g: Vec<f64> = n.g.iter().map(|&v| v as f64).collect();
        let b: Vec<f64> = n.b.iter().map(|&v| v as f64).collect();
        QNorm {
            k: LayerNormConstants::new(&g, &b, 1e-5, input.0, output.0).unwrap(),
            input,
            output,
        }
    }

    fn eval(&self, x: &[i8]) -> Vec<i8> {
        let p = self
            .k
            .params((x.len() / D) as u32, self.input.1, self.output.1);
        let mut y = vec![0i8; x.len()];
        layer_norm::check_i8(&p, x.len(), y.len()).unwrap();
        layer_norm::eval_i8(&p, x, &mut y);
        y
    }
}

fn add_i8(a: &[i8], qa: (f64, i32), b: &[i8], qb: (f64, i32), qo: (f64, i32)) -> Vec<i8> {
    let p = AddParams {
        shape: BroadcastShape::same([1, 1, (a.len() / D) as u32, D as u32]),
        input1_zero_point: qa.1,
        input2_zero_point: qb.1,
        output_zero_point: qo.1,
        requant: AddRequant::new(qa.0, qb.0, qo.0).unwrap(),
        activation: ClampI8::NONE,
    };
    let mut y = vec![0i8; a.len()];
    add::check_i8(&p, a.len(), b.len(), y.len()).unwrap();
    add::eval_i8(&p, a, b, &mut y);
    y
}

struct QModel {
    q: BTreeMap<&'static str, (f64, i32)>,
    tok: Vec<i8>,
    pos: Vec<i8>,
    ln1: QNorm,
    qkv: QLin,
    proj: QLin,
    ln2: QNorm,
    up: QLin,
    gelu: [i8; 256],
    down: QLin,
    lnf: QNorm,
    head: QLin,
    exp_table: [i32; 256],
}

impl QModel {
    fn new(m: &Model, stats: &Stats) -> QModel {
        let q: BTreeMap<_, _> = stats.iter().map(|(&k, &r)| (k, qparams(r))).collect();
        QModel {
            tok: quantize(&m.tok, q["tok"]),
            pos: quantize(&m.pos, q["pos"]),
            ln1: QNorm::new(&m.ln1, q["x0"], q["ln1"]),
            qkv: QLin::new(&m.qkv, q["ln1"], q["qkv"]),
            proj: QLin::new(&m.proj, q["att"], q["proj"]),
            ln2: QNorm::new(&m.ln2, q["x1"], q["ln2"]),
            up: QLin::new(&m.up, q["ln2"], q["up"]),
            gelu: gelu::build_table(q["up"].0, q["up"].1, q["gelu"].0, q["gelu"].1).unwrap(),
            down: QLin::new(&m.down, q["gelu"], q["down"]),
            lnf: QNorm::new(&m.lnf, q["x2"], q["lnf"]),
            head: QLin::new(&m.head, q["lnf"], q["logits"]),
            exp_table: softmax::exp_table(q["scores"].0, 1.0),
            q,
        }
    }

    /// int8 forward; logits `[T, V]` (int8 at the `logits` quantization).
    fn forward(&self, ids: &[i32], pos0: usize, cache: &mut Cache<i8>) -> Vec<i8> {
        let q = &self.q;
        let t = ids.len();
        let positions: Vec<i32> = (pos0..pos0 + t).map(|p| p as i32).collect();
        let x = add_i8(
            &gather_any(&self.tok, V, ids),
            q["tok"],
            &gather_any(&self.pos, CTX, &positions),
            q["pos"],
            q["x0"],
        );
        let h = self.ln1.eval(&x);
        let qkv = self.qkv.eval(&h);
        let split = transpose_any([t as u32, 3, H as u32, HD as u32], [1, 2, 0, 3], &qkv);
        let n = H * t * HD;
        let shape = KvShape {
            heads: H as u32,
            head_dim: HD as u32,
            capacity: CTX as u32,
            tokens: t as u32,
        };
        append(&shape, &split[n..2 * n], pos0 as i32, &mut cache.k).unwrap();
        append(&shape, &split[2 * n..], pos0 as i32, &mut cache.v).unwrap();
        let (sqkv, zqkv) = q["qkv"];
        let (ss, zs) = q["scores"];
        let (sm, sh) =
            crate::quant::quantize_multiplier(sqkv * sqkv / (HD as f64).sqrt() / ss).unwrap();
        let (om, os) = crate::quant::quantize_multiplier(sqkv / (q["att"].0 * 65536.0)).unwrap();
        let p = AttentionParams {
            shape,
            causal: true,
            q_zero_point: zqkv,
            k_zero_point: zqkv,
            v_zero_point: zqkv,
            score_multiplier: sm,
            score_shift: sh,
            score_zero_point: zs,
            exp_table: &self.exp_table,
            output_multiplier: om,
            output_shift: os,
            output_zero_point: q["att"].1,
        };
        let mut scratch = vec![0i32; CTX];
        let mut att = vec![0i8; n];
        super::check_i8(&p, n, cache.k.len(), CTX, n).unwrap();
        super::eval_i8(
            &p,
            &split[..n],
            &cache.k,
            &cache.v,
            pos0 as i32,
            &mut scratch,
            &mut att,
        )
        .unwrap();
        let att = transpose_any([1, H as u32, t as u32, HD as u32], [0, 2, 1, 3], &att);
        let o = self.proj.eval(&att);
        let x1 = add_i8(&x, q["x0"], &o, q["proj"], q["x1"]);
        let h2 = self.ln2.eval(&x1);
        let mut g = self.up.eval(&h2);
        crate::ops::lut::eval_i8_in_place(&LutParams { table: &self.gelu }, &mut g);
        let dn = self.down.eval(&g);
        let x2 = add_i8(&x1, q["x1"], &dn, q["down"], q["x2"]);
        let hf = self.lnf.eval(&x2);
        self.head.eval(&hf)
    }
}

#[cfg(test)]
fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

impl<T: Copy + Default> Default for Cache<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn calibrated(seed: u64) -> (Model, QModel) {
    let m = Model::random(seed);
    let mut stats = Stats::new();
    let mut rng = Rng::new(seed ^ 0xCA11B);
    for _ in 0..8 {
        let ids: Vec<i32> = (0..CTX).map(|_| rng.range(0, V as i32 - 1)).collect();
        forward_f32(&m, &ids, 0, &mut Cache::new(), Some(&mut stats));
    }
    let qm = QModel::new(&m, &stats);
    (m, qm)
}

/// The f32 model and its int8 twin (calibrated on 8 random sequences).
pub struct TinyGpt {
    f32: Model,
    int8: QModel,
}

impl TinyGpt {
    /// Seeded random weights, then calibration.
    pub fn new(seed: u64) -> TinyGpt {
        let (f32, int8) = calibrated(seed);
        TinyGpt { f32, int8 }
    }

    /// int8 logits `[ids.len(), V]` for tokens at positions `pos0..`, appending to `cache`.
    pub fn forward_i8(&self, ids: &[i32], pos0: usize, cache: &mut Cache<i8>) -> Vec<i8> {
        self.int8.forward(ids, pos0, cache)
    }

    /// f32 logits `[ids.len(), V]` for tokens at positions `pos0..`, appending to `cache`.
    pub fn forward_f32(&self, ids: &[i32], pos0: usize, cache: &mut Cache<f32>) -> Vec<f32> {
        forward_f32(&self.f32, ids, pos0, cache, None)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy decoding through the KV cache equals recomputing the whole prefix at every step:
    /// same tokens and bit-identical logits, int8 and f32.
    #[test]
    fn kv_cache_decode_equals_full_recompute() {
        let (m, qm) = calibrated(1);
        let prompt = [3i32, 17, 5];
        // int8
        let mut cache = Cache::new();
        let mut logits = qm.forward(&prompt, 0, &mut cache);
        let mut seq = prompt.to_vec();
        let mut last = logits[(prompt.len() - 1) * V..].to_vec();
        while seq.len() < CTX {
            let next = argmax(&last) as i32;
            // Full recompute of the prefix plus `next`, in fresh caches.
            seq.push(next);
            let full = qm.forward(&seq, 0, &mut Cache::new());
            logits = qm.forward(&[next], seq.len() - 1, &mut cache);
            assert_eq!(
                &full[(seq.len() - 1) * V..],
                &logits[..],
                "int8, step {}",
                seq.len()
            );
            last = logits;
        }
        // f32
        let mut cache = Cache::new();
        let mut seq_f = prompt.to_vec();
        let l = forward_f32(&m, &prompt, 0, &mut cache, None);
        let mut last = l[(prompt.len() - 1) * V..].to_vec();
        while seq_f.len() < CTX {
            let next = argmax(&last) as i32;
            seq_f.push(next);
            let full = forward_f32(&m, &seq_f, 0, &mut Cache::new(), None);
            last = forward_f32(&m, &[next], seq_f.len() - 1, &mut cache, None);
            assert_eq!(
                &full[(seq_f.len() - 1) * V..],
                &last[..],
                "f32, step {}",
                seq_f.len()
            );
        }
        println!("tiny GPT greedy tokens: int8 {seq:?}, f32 {seq_f:?}");
        // Decoding one more token (position CTX) is an error, not a panic.
        let shape = KvShape {
            heads: H as u32,
            head_dim: HD as u32,
            capacity: CTX as u32,
            tokens: 1,
        };
        let mut k = vec![0i8; H * CTX * HD];
        assert!(matches!(
            append(&shape, &[0i8; H * HD], CTX as i32, &mut k),
            Err(crate::Error::KvCacheFull { .. })
        ));
    }

    /// Teacher-forced agreement between the int8 and the f32 model (stated in the report):
    /// top-1 agreement of the logits and their error relative to the f32 logits' spread.
    #[test]
    fn int8_tracks_f32() {
        let mut agree = 0usize;
        let mut total = 0usize;
        let mut err = 0f64;
        let mut spread = 0f64;
        for seed in 1..=4 {
            let (m, qm) = calibrated(seed);
            let mut rng = Rng::new(seed * 7919);
            for _ in 0..4 {
                let ids: Vec<i32> = (0..CTX).map(|_| rng.range(0, V as i32 - 1)).collect();
                let lf = forward_f32(&m, &ids, 0, &mut Cache::new(), None);
                let lq = qm.forward(&ids, 0, &mut Cache::new());
                let (s, zp) = qm.q["logits"];
                for (rf, rq) in lf.chunks(V).zip(lq.chunks(V)) {
                    total += 1;
                    agree += (argmax(rf) == argmax(rq)) as usize;
                    let mean = rf.iter().map(|&v| v as f64).sum::<f64>() / V as f64;
                    spread += (rf.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()
                        / V as f64)
                        .sqrt();
                    err += rf
                        .iter()
                        .zip(rq)
                        .map(|(&f, &q)| (f as f64 - (q as i32 - zp) as f64 * s).abs())
                        .sum::<f64>()
                        / V as f64;
                }
            }
        }
        let rate = agree as f64 / total as f64;
        let rel = err / spread;
        println!("tiny GPT int8 vs f32: top-1 agreement {agree}/{total} ({:.1}%), mean |logit error| / logit std = {rel:.3}", 100.0 * rate);
        assert!(rate >= 0.85, "top-1 agreement {rate}");
        assert!(rel <= 0.15, "relative logit error {rel}");
    }
}

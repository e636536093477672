//! A tiny decoder-only GPT written as a model image: token and position embeddings (Gather),
//! one pre-LN block (LayerNorm → Q/K/V FullyConnected → KV-cache append → causal Attention →
//! projection, residual Add; LayerNorm → MLP with GELU, residual Add), final LayerNorm and LM head.
//!
//! Sizes as the kernel fixture `ops::attention::tiny_gpt` (vocabulary 32, d_model 32, 2 heads of
//! 16, MLP 64, context 16), with its own seeded random weights (untrained) and separate Q, K, V
//! projections. One image decodes `tokens` new tokens per `invoke`: inputs are the token ids
//! `i32 [tokens]`, their positions `i32 [tokens]` and `pos` `i32 [1]` (tokens already in the
//! cache); the output is the logits `[tokens, V]`. The KV caches are persistent tensors.
//!
//! int8: every activation is quantized per tensor with ranges calibrated by running the f32
//! image (all intermediates marked as outputs) on random sequences.

use super::Rng;
use crate::image::layers::{choose_quant, Activation, AttentionQuant};
use crate::image::writer::{BuiltImage, ImageWriter, TensorId, WriteError};
use crate::image::{DType, TableFn};
use std::collections::BTreeMap;

/// Vocabulary size.
pub const V: usize = 32;
/// Model width.
pub const D: usize = 32;
/// Attention heads.
pub const H: usize = 2;
/// Head width.
pub const HD: usize = 16;
/// MLP width.
pub const F: usize = 64;
/// Context length (KV-cache capacity).
pub const CTX: usize = 16;

/// Weights `[out, in]` and bias of a FullyConnected layer.
#[derive(Debug, Clone)]
pub struct Lin {
    pub(crate) w: Vec<f32>,
    pub(crate) b: Vec<f32>,
    pub(crate) n: usize,
}

impl Lin {
    pub(crate) fn random(rng: &mut Rng, k: usize, n: usize) -> Lin {
        let a = 1.7 / (k as f32).sqrt();
        Lin {
            w: rng.vec(k * n, a),
            b: rng.vec(n, 0.1),
            n,
        }
    }
}

/// LayerNorm γ and β.
#[derive(Debug, Clone)]
pub struct Norm {
    pub(crate) g: Vec<f32>,
    pub(crate) b: Vec<f32>,
}

impl Norm {
    pub(crate) fn random(rng: &mut Rng) -> Norm {
        Norm {
            g: rng.vec(D, 0.3).iter().map(|x| 1.0 + x).collect(),
            b: rng.vec(D, 0.1),
        }
    }
}

/// The float weights.
#[derive(Debug, Clone)]
pub struct TinyGpt {
    tok: Vec<f32>,
    pos: Vec<f32>,
    ln1: Norm,
    q: Lin,
    k: Lin,
    v: Lin,
    proj: Lin,
    ln2: Norm,
    up: Lin,
    down: Lin,
    lnf: Norm,
    head: Lin,
}

/// Calibrated `(min, max)` of each named activation, plus the attention score range.
pub type Ranges = BTreeMap<&'static str, (f32, f32)>;

pub(crate) const EPS: f32 = 1e-5;

impl TinyGpt {
    /// Seeded random weights.
    pub fn random(seed: u64) -> TinyGpt {
        let mut rng = Rng::new(seed);
        TinyGpt {
            tok: rng.vec(V * D, 1.0),
            pos: rng.vec(CTX * D, 0.5),
            ln1: Norm::random(&mut rng),
            q: Lin::random(&mut rng, D, D),
            k: Lin::random(&mut rng, D, D),
            v: Lin::random(&mut rng, D, D),
            proj: Lin::random(&mut rng, D, D),
            ln2: Norm::random(&mut rng),
            up: Lin::random(&mut rng, D, F),
            down: Lin::random(&mut rng, F, D),
            lnf: Norm::random(&mut rng),
            head: Lin::random(&mut rng, D, V),
        }
    }

    /// Writes the image for `tokens` new tokens per invoke: f32 when `ranges` is `None`, else
    /// int8 with those ranges. `calibration` marks every intermediate as an extra output (f32
    /// only; the names are returned in output order after the logits).
    pub fn image(
        &self,
        tokens: usize,
        ranges: Option<&Ranges>,
        calibration: bool,
    ) -> Result<(BuiltImage, Vec<&'static str>), WriteError> {
        let mut w = ImageWriter::new("tiny-gpt", 1)?;
        let q = |name: &'static str| {
            ranges.map(|r| {
                let (lo, hi) = r.get(name).copied().unwrap_or((-1.0, 1.0));
                choose_quant(lo, hi)
            })
        };
        let mut taps: Vec<(&'static str, TensorId)> = Vec::new();
        let ids = w.input(DType::I32, &[tokens], None)?;
        let positions = w.input(DType::I32, &[tokens], None)?;
        let pos = w.input(DType::I32, &[1], None)?;
        let xt = w.gather(&self.tok, V, D, ids, q("tok"))?;
        let xp = w.gather(&self.pos, CTX, D, positions, q("pos"))?;
        let x = w.binary(xt, xp, true, Activation::None, q("x"))?;
        taps.push(("x", x));
        let h = w.layer_norm(x, &self.ln1.g, &self.ln1.b, EPS, q("ln1"))?;
        taps.push(("ln1", h));
        let heads = |w: &mut ImageWriter, l: &Lin, name: &'static str| {
            let t = w.fully_connected(h, &l.w, Some(&l.b), l.n, Activation::None, q(name))?;
            let a = w.alias(t, &[tokens, H, HD])?;
            let r = w.transpose(a, &[1, 0, 2])?;
            Ok::<_, WriteError>((t, r))
        };
        let (q_flat, qh) = heads(&mut w, &self.q, "q")?;
        let (k_flat, kh) = heads(&mut w, &self.k, "k")?;
        let (v_flat, vh) = heads(&mut w, &self.v, "v")?;
        taps.extend([("q", q_flat), ("k", k_flat), ("v", v_flat)]);
        let kc = w.kv_cache(kh, CTX)?;
        let vc = w.kv_cache(vh, CTX)?;
        w.kv_append(kh, pos, kc)?;
        w.kv_append(vh, pos, vc)?;
        let aq = ranges.map(|_| AttentionQuant {
            score: q("scores").unwrap_or((1.0, 0)),
            output: q("att").unwrap_or((1.0, 0)),
        });
        let att = w.attention(qh, kc, vc, pos, true, aq)?;
        let att_t = w.transpose(att, &[1, 0, 2])?;
        let att_flat = w.alias(att_t, &[tokens, D])?;
        taps.push(("att", att_t));
        let o = w.fully_connected(
            att_flat,
            &self.proj.w,
            Some(&self.proj.b),
            D,
            Activation::None,
            q("proj"),
        )?;
        taps.push(("proj", o));
        let x1 = w.binary(x, o, true, Activation::None, q("x1"))?;
        taps.push(("x1", x1));
        let h2 = w.layer_norm(x1, &self.ln2.g, &self.ln2.b, EPS, q("ln2"))?;
        taps.push(("ln2", h2));
        let u = w.fully_connected(
            h2,
            &self.up.w,
            Some(&self.up.b),
            F,
            Activation::None,
            q("up"),
        )?;
        taps.push(("up", u));
        let g = w.table_fn(u, TableFn::Gelu, q("gelu"))?;
        taps.push(("gelu", g));
        let dn = w.fully_connected(
            g,
            &self.down.w,
            Some(&self.down.b),
            D,
            Activation::None,
            q("down"),
        )?;
        taps.push(("down", dn));
        let x2 = w.binary(x1, dn, true, Activation::None, q("x2"))?;
        taps.push(("x2", x2));
        let hf = w.layer_norm(x2, &self.lnf.g, &self.lnf.b, EPS, q("lnf"))?;
        taps.push(("lnf", hf));
        let logits = w.fully_connected(
            hf,
            &self.head.w,
            Some(&self.head.b),
            V,
            Activation::None,
            q("logits"),
        )?;
        w.output(logits)?;
        let mut names = Vec::new();
        if calibration {
            for (n, t) in taps {
                w.output(t)?;
                names.push(n);
            }
        }
        Ok((w.finish()?, names))
    }

    /// Embedding-table ranges (constants, known without running anything).
    pub fn table_ranges(&self) -> Ranges {
        let mm = |v: &[f32]| {
            v.iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)))
        };
        Ranges::from([("tok", mm(&self.tok)), ("pos", mm(&self.pos))])
    }
}

/// Output bytes of one image invoke sequence, kept alive with its arena.
pub(crate) struct Runner {
    pub(crate) image: crate::image::writer::AlignedBytes,
    pub(crate) arena: crate::image::writer::AlignedBytes,
}

impl Runner {
    pub(crate) fn new(built: &BuiltImage) -> Runner {
        Runner {
            image: crate::image::writer::AlignedBytes::new(&built.bytes),
            arena: crate::image::writer::AlignedBytes::zeroed(built.stats.plan.arena_bytes),
        }
    }
}

/// Calibrates the int8 ranges: runs the f32 calibration image on `n` random sequences of
/// `CTX` tokens and records every intermediate's range and the attention scores' range.
pub fn calibrate(m: &TinyGpt, seed: u64, n: usize) -> Result<Ranges, crate::Error> {
    let (built, names) = m.image(CTX, None, true).map_err(|e| match e {
        WriteError::Invalid(e) => e,
        _ => crate::Error::KernelParamInvalid { op: 0 },
    })?;
    let mut r = m.table_ranges();
    let mut rng = Rng::new(seed);
    let mut run = Runner::new(&built);
    let model = crate::image::Model::parse(run.image.as_slice())?;
    let mut it = crate::Interpreter::new(&model, run.arena.as_mut_slice())?;
    let grow = |r: &mut Ranges, name: &'static str, v: &[f32]| {
        let e = r.entry(name).or_insert((f32::MAX, f32::MIN));
        for &x in v {
            e.0 = e.0.min(x);
            e.1 = e.1.max(x);
        }
    };
    for _ in 0..n {
        let ids: Vec<i32> = (0..CTX)
            .map(|_| (rng.next_u64() % V as u64) as i32)
            .collect();
        it.input_i32(0)?.copy_from_slice(&ids);
        for (i, p) in it.input_i32(1)?.iter_mut().enumerate() {
            *p = i as i32;
        }
        it.input_i32(2)?[0] = 0;
        it.invoke()?;
        for (k, &name) in names.iter().enumerate() {
            grow(&mut r, name, it.output_f32(k + 1)?);
        }
        grow(&mut r, "logits", it.output_f32(0)?);
        let qi = names.iter().position(|&n| n == "q").unwrap_or(0) + 1;
        let ki = names.iter().position(|&n| n == "k").unwrap_or(0) + 1;
        let (q, k) = (it.output_f32(qi)?.to_vec(), it.output_f32(ki)?.to_vec());
        let scale = 1.0 / (HD as f32).sqrt();
        let mut s = Vec::new();
        for h in 0..H {
            for i in 0..CTX {
                for j in 0..=i {
                    let a = &q[i * D + h * HD..][..HD];
                    let b = &k[j * D + h * HD..][..HD];
                    s.push(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() * scale);
                }
            }
        }
        grow(&mut r, "scores", &s);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Model;
    use crate::Interpreter;

    fn argmax(v: &[f32]) -> usize {
        let mut best = 0;
        for (i, &x) in v.iter().enumerate() {
            if x > v[best] {
                best = i;
            }
        }
        best
    }

    /// Logits of the last token as f32 (int8 dequantized), and the raw output bytes.
    fn last_logits(it: &Interpreter<'_, '_>, tokens: usize) -> (Vec<f32>, Vec<u8>) {
        let info = it.output_info(0).expect("info");
        let bytes = it.output_bytes(0).expect("out").to_vec();
        let vals: Vec<f32> = if info.dtype == DType::F32 {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            bytes
                .iter()
                .map(|&b| (b as i8 as i32 - info.zero_point) as f32 * info.scale)
                .collect()
        };
        let row = vals[(tokens - 1) * V..].to_vec();
        let size = bytes.len() / (tokens * V);
        (row, bytes[(tokens - 1) * V * size..].to_vec())
    }

    /// Runs the `tokens`-token image once on `ids` at position `pos0` in fresh state.
    fn full(m: &TinyGpt, ranges: Option<&Ranges>, ids: &[i32]) -> (Vec<f32>, Vec<u8>) {
        let (built, _) = m.image(ids.len(), ranges, false).expect("image");
        let mut run = Runner::new(&built);
        let model = Model::parse(run.image.as_slice()).expect("parses");
        let mut it = Interpreter::new(&model, run.arena.as_mut_slice()).expect("fits");
        it.input_i32(0).expect("ids").copy_from_slice(ids);
        for (i, p) in it.input_i32(1).expect("positions").iter_mut().enumerate() {
            *p = i as i32;
        }
        it.input_i32(2).expect("pos")[0] = 0;
        it.invoke().expect("runs");
        last_logits(&it, ids.len())
    }

    /// Greedy decoding token by token through the KV cache (the `pos` input) gives the same
    /// tokens and bit-identical logits as recomputing the whole prefix at every step.
    fn decode_equals_recompute(m: &TinyGpt, ranges: Option<&Ranges>) -> Vec<i32> {
        let (built, _) = m.image(1, ranges, false).expect("image");
        let p = &built.stats.plan;
        println!(
            "tiny GPT ({}) decode image: arena {} bytes, planner lower bound {} (incl. 2 KV caches of {} bytes)",
            if ranges.is_some() { "int8" } else { "f32" },
            p.arena_bytes,
            p.lower_bound,
            H * CTX * HD * if ranges.is_some() { 1 } else { 4 },
        );
        assert_eq!(p.arena_bytes, p.lower_bound);
        let mut run = Runner::new(&built);
        let model = Model::parse(run.image.as_slice()).expect("parses");
        let mut it = Interpreter::new(&model, run.arena.as_mut_slice()).expect("fits");
        let mut seq = vec![3i32, 17, 5];
        let step = |it: &mut Interpreter<'_, '_>, tok: i32, at: usize| {
            it.input_i32(0).expect("ids")[0] = tok;
            it.input_i32(1).expect("positions")[0] = at as i32;
            it.input_i32(2).expect("pos")[0] = at as i32;
            it.invoke().expect("runs");
            last_logits(it, 1)
        };
        let mut last = (Vec::new(), Vec::new());
        for (i, &t) in seq.clone().iter().enumerate() {
            last = step(&mut it, t, i);
        }
        while seq.len() < CTX {
            let f = full(m, ranges, &seq);
            assert_eq!(f.1, last.1, "logits differ at length {}", seq.len());
            let next = argmax(&last.0) as i32;
            seq.push(next);
            let at = seq.len() - 1;
            last = step(&mut it, next, at);
        }
        // One more token does not fit the cache: an error, not a panic.
        it.input_i32(0).expect("ids")[0] = 0;
        it.input_i32(1).expect("positions")[0] = 0;
        it.input_i32(2).expect("pos")[0] = CTX as i32;
        let r = it.invoke();
        assert!(matches!(r, Err(crate::Error::KvCacheFull { .. })), "{r:?}");
        seq
    }

    #[test]
    fn kv_cache_decode_equals_full_recompute_f32_and_int8() {
        let m = TinyGpt::random(11);
        let tf = decode_equals_recompute(&m, None);
        let r = calibrate(&m, 5, 8).expect("calibrates");
        let tq = decode_equals_recompute(&m, Some(&r));
        println!("tiny GPT greedy tokens: f32 {tf:?}, int8 {tq:?}");
    }

    /// Teacher-forced agreement of the int8 image with the f32 image on random sequences.
    #[test]
    fn int8_logits_track_f32() {
        let mut agree = 0;
        let mut total = 0;
        let (mut err, mut spread) = (0f64, 0f64);
        for seed in 1..=3u64 {
            let m = TinyGpt::random(seed);
            let r = calibrate(&m, seed + 100, 8).expect("calibrates");
            let mut rng = Rng::new(seed * 7919);
            for _ in 0..4 {
                let ids: Vec<i32> = (0..CTX)
                    .map(|_| (rng.next_u64() % V as u64) as i32)
                    .collect();
                for len in [4, 9, CTX] {
                    let (lf, _) = full(&m, None, &ids[..len]);
                    let (lq, _) = full(&m, Some(&r), &ids[..len]);
                    total += 1;
                    agree += (argmax(&lf) == argmax(&lq)) as usize;
                    let mean = lf.iter().map(|&v| v as f64).sum::<f64>() / V as f64;
                    spread += (lf.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()
                        / V as f64)
                        .sqrt();
                    err += lf
                        .iter()
                        .zip(&lq)
                        .map(|(&a, &b)| (a - b).abs() as f64)
                        .sum::<f64>()
                        / V as f64;
                }
            }
        }
        let rate = agree as f64 / total as f64;
        let rel = err / spread;
        println!("tiny GPT image int8 vs f32: top-1 agreement {agree}/{total} ({:.1}%), mean |logit error| / logit std = {rel:.3}", 100.0 * rate);
        assert!(rate >= 0.75, "top-1 agreement {rate}");
        assert!(rel <= 0.25, "relative logit error {rel}");
    }
}

//! A tiny transformer encoder with a classification head, written as a model image: token and
//! position embeddings (Gather), one pre-LN block with bidirectional (non-causal) attention and a
//! GELU MLP, final LayerNorm, mean pooling over the tokens (GlobalAvgPool) and a linear head.
//!
//! Attention reads K and V straight from the projections (`capacity == tokens`, `pos = 0`), so
//! nothing is persistent. Seeded random weights (untrained); int8 ranges are calibrated by
//! running the f32 image with every intermediate marked as an output.

use super::tiny_gpt::{Lin, Norm, Ranges, Runner, EPS};
use super::Rng;
use crate::image::layers::{choose_quant, Activation, AttentionQuant};
use crate::image::writer::{BuiltImage, ImageWriter, TensorId, WriteError};
use crate::image::{DType, Model, TableFn};
use crate::Interpreter;

/// Vocabulary size.
pub const V: usize = 32;
/// Tokens per sequence.
pub const T: usize = 8;
/// Model width.
pub const D: usize = 32;
/// Attention heads.
pub const H: usize = 2;
/// Head width.
pub const HD: usize = 16;
/// MLP width.
pub const F: usize = 64;
/// Classes.
pub const CLASSES: usize = 4;

/// The float weights.
#[derive(Debug, Clone)]
pub struct TinyEncoder {
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

impl TinyEncoder {
    /// Seeded random weights.
    pub fn random(seed: u64) -> TinyEncoder {
        let mut rng = Rng::new(seed);
        TinyEncoder {
            tok: rng.vec(V * D, 1.0),
            pos: rng.vec(T * D, 0.5),
            ln1: Norm::random(&mut rng),
            q: Lin::random(&mut rng, D, D),
            k: Lin::random(&mut rng, D, D),
            v: Lin::random(&mut rng, D, D),
            proj: Lin::random(&mut rng, D, D),
            ln2: Norm::random(&mut rng),
            up: Lin::random(&mut rng, D, F),
            down: Lin::random(&mut rng, F, D),
            lnf: Norm::random(&mut rng),
            head: Lin::random(&mut rng, D, CLASSES),
        }
    }

    /// Writes the image: inputs ids `i32 [T]`, positions `i32 [T]`, `pos` `i32 [1]` (always 0);
    /// output the class logits `[1, CLASSES]`. f32 when `ranges` is `None`, else int8.
    /// `calibration` adds every intermediate as an output (names returned in order).
    pub fn image(
        &self,
        ranges: Option<&Ranges>,
        calibration: bool,
    ) -> Result<(BuiltImage, Vec<&'static str>), WriteError> {
        let mut w = ImageWriter::new("tiny-encoder", 1)?;
        let q = |name: &'static str| {
            ranges.map(|r| {
                let (lo, hi) = r.get(name).copied().unwrap_or((-1.0, 1.0));
                choose_quant(lo, hi)
            })
        };
        let mut taps: Vec<(&'static str, TensorId)> = Vec::new();
        let ids = w.input(DType::I32, &[T], None)?;
        let positions = w.input(DType::I32, &[T], None)?;
        let pos = w.input(DType::I32, &[1], None)?;
        let xt = w.gather(&self.tok, V, D, ids, q("tok"))?;
        let xp = w.gather(&self.pos, T, D, positions, q("pos"))?;
        let x = w.binary(xt, xp, true, Activation::None, q("x"))?;
        taps.push(("x", x));
        let h = w.layer_norm(x, &self.ln1.g, &self.ln1.b, EPS, q("ln1"))?;
        taps.push(("ln1", h));
        let heads = |w: &mut ImageWriter, l: &Lin, name: &'static str| {
            let t = w.fully_connected(h, &l.w, Some(&l.b), l.n, Activation::None, q(name))?;
            let a = w.alias(t, &[T, H, HD])?;
            let r = w.transpose(a, &[1, 0, 2])?;
            Ok::<_, WriteError>((t, r))
        };
        let (q_flat, qh) = heads(&mut w, &self.q, "q")?;
        let (k_flat, kh) = heads(&mut w, &self.k, "k")?;
        let (v_flat, vh) = heads(&mut w, &self.v, "v")?;
        taps.extend([("q", q_flat), ("k", k_flat), ("v", v_flat)]);
        let aq = ranges.map(|_| AttentionQuant {
            score: q("scores").unwrap_or((1.0, 0)),
            output: q("att").unwrap_or((1.0, 0)),
        });
        let att = w.attention(qh, kh, vh, pos, false, aq)?;
        let att_t = w.transpose(att, &[1, 0, 2])?;
        let att_flat = w.alias(att_t, &[T, D])?;
        taps.push(("att", att_t));
        let p = &self.proj;
        let o = w.fully_connected(att_flat, &p.w, Some(&p.b), D, Activation::None, q("proj"))?;
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
        let hf4 = w.alias(hf, &[1, T, 1, D])?;
        let pooled = w.global_avg_pool(hf4, q("pooled"))?;
        taps.push(("pooled", pooled));
        let pooled = w.alias(pooled, &[1, D])?;
        let hd = &self.head;
        let logits = w.fully_connected(
            pooled,
            &hd.w,
            Some(&hd.b),
            CLASSES,
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
}

/// Runs `built` on each sequence and returns the logits (int8 dequantized) and every output's
/// f32 values (f32 images only) per sequence.
fn run(built: &BuiltImage, seqs: &[Vec<i32>]) -> Result<Vec<Vec<Vec<f32>>>, crate::Error> {
    let mut r = Runner::new(built);
    let model = Model::parse(r.image.as_slice())?;
    let mut it = Interpreter::new(&model, r.arena.as_mut_slice())?;
    let mut all = Vec::new();
    for ids in seqs {
        it.input_i32(0)?.copy_from_slice(ids);
        for (i, p) in it.input_i32(1)?.iter_mut().enumerate() {
            *p = i as i32;
        }
        it.input_i32(2)?[0] = 0;
        it.invoke()?;
        let mut outs = Vec::new();
        for k in 0..model.num_outputs() {
            let info = it.output_info(k)?;
            outs.push(if info.dtype == DType::F32 {
                it.output_f32(k)?.to_vec()
            } else {
                it.output_i8(k)?
                    .iter()
                    .map(|&v| (v as i32 - info.zero_point) as f32 * info.scale)
                    .collect()
            });
        }
        all.push(outs);
    }
    Ok(all)
}

/// Calibrates the int8 ranges on `seqs` (f32 image with every intermediate as an output).
pub fn calibrate(m: &TinyEncoder, seqs: &[Vec<i32>]) -> Result<Ranges, crate::Error> {
    let (built, names) = m.image(None, true).map_err(|e| match e {
        WriteError::Invalid(e) => e,
        _ => crate::Error::KernelParamInvalid { op: 0 },
    })?;
    let mut r = Ranges::new();
    let mut grow = |name: &'static str, v: &[f32]| {
        let e = r.entry(name).or_insert((f32::MAX, f32::MIN));
        for &x in v {
            e.0 = e.0.min(x);
            e.1 = e.1.max(x);
        }
    };
    grow("tok", &m.tok);
    grow("pos", &m.pos);
    for outs in run(&built, seqs)? {
        grow("logits", &outs[0]);
        for (k, &name) in names.iter().enumerate() {
            grow(name, &outs[k + 1]);
        }
        let at = |n: &str| names.iter().position(|&x| x == n).map_or(0, |i| i + 1);
        let (q, k) = (&outs[at("q")], &outs[at("k")]);
        let scale = 1.0 / (HD as f32).sqrt();
        let mut s = Vec::new();
        for h in 0..H {
            for i in 0..T {
                for j in 0..T {
                    let a = &q[i * D + h * HD..][..HD];
                    let b = &k[j * D + h * HD..][..HD];
                    s.push(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() * scale);
                }
            }
        }
        grow("scores", &s);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(seed: u64, n: usize) -> Vec<Vec<i32>> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| (0..T).map(|_| (rng.next_u64() % V as u64) as i32).collect())
            .collect()
    }

    fn argmax(v: &[f32]) -> usize {
        (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
    }

    /// The int8 image tracks the f32 image: predicted class and logit error (stated in the report).
    #[test]
    fn int8_classifier_tracks_f32() {
        let mut agree = 0;
        let mut total = 0;
        let (mut err, mut spread) = (0f64, 0f64);
        for seed in 1..=3u64 {
            let m = TinyEncoder::random(seed);
            let r = calibrate(&m, &seqs(seed + 50, 16)).expect("calibrates");
            let (fb, _) = m.image(None, false).expect("f32 image");
            let (qb, _) = m.image(Some(&r), false).expect("int8 image");
            let test = seqs(seed * 31, 16);
            let lf = run(&fb, &test).expect("f32 runs");
            let lq = run(&qb, &test).expect("int8 runs");
            for (f, q) in lf.iter().zip(&lq) {
                let (f, q) = (&f[0], &q[0]);
                total += 1;
                agree += (argmax(f) == argmax(q)) as usize;
                let mean = f.iter().map(|&v| v as f64).sum::<f64>() / CLASSES as f64;
                spread += (f.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()
                    / CLASSES as f64)
                    .sqrt();
                err += f
                    .iter()
                    .zip(q)
                    .map(|(&a, &b)| (a - b).abs() as f64)
                    .sum::<f64>()
                    / CLASSES as f64;
            }
            let p = &qb.stats.plan;
            if seed == 1 {
                println!(
                    "tiny encoder int8 image: {} bytes, arena {} (lower bound {})",
                    qb.stats.image_bytes, p.arena_bytes, p.lower_bound
                );
            }
        }
        let rate = agree as f64 / total as f64;
        let rel = err / spread;
        println!(
            "tiny encoder int8 vs f32: same class {agree}/{total} ({:.1}%), mean |logit error| / logit std = {rel:.3}",
            100.0 * rate
        );
        assert!(rate >= 0.75, "class agreement {rate}");
        assert!(rel <= 0.25, "relative logit error {rel}");
    }
}

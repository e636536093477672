//! A model image running on the host runtime the way an edge-Linux device runs it: parse the
//! (signed) image, check its signature against the fleet's public key, run token-id inputs
//! through the interpreter over one arena, and hand back the class, scores and latency.

use std::time::Instant;

use anyhow::{bail, Context};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::DType;
use edgeloop_runtime::telemetry::{DriftSource, ReferenceHistogram};
use edgeloop_runtime::{Interpreter, Model};
use edgeloop_trainer::tokenizer::Tokenizer;

/// One prediction.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Top-1 class.
    pub class: usize,
    /// Softmax probabilities over the classes (from the image's logits).
    pub probs: Vec<f64>,
    /// Wall-clock microseconds spent in `invoke`.
    pub micros: f64,
}

/// A verified model image, ready to run.
pub struct HostModel {
    bytes: AlignedBytes,
    /// Model version in the image header.
    pub version: u32,
}

impl HostModel {
    /// Parses `image` and verifies its Ed25519 signature against `public_key`.
    pub fn load(image: &[u8], public_key: &[u8; 32]) -> anyhow::Result<Self> {
        let bytes = AlignedBytes::new(image);
        let version = {
            let model = Model::parse(bytes.as_slice()).context("parsing the model image")?;
            model
                .verify_signature(public_key)
                .context("verifying the image signature")?;
            if model.num_inputs() != 1 || model.num_outputs() != 1 {
                bail!(
                    "a classifier image has one input (token ids) and one output (logits); this one has {} and {}",
                    model.num_inputs(),
                    model.num_outputs()
                );
            }
            model.model_version()
        };
        Ok(HostModel { bytes, version })
    }

    /// The reference histogram for `source` the compiler stored in the image (statistics tags
    /// 1 and 2), if any.
    pub fn reference<const B: usize>(
        &self,
        source: DriftSource,
    ) -> anyhow::Result<Option<ReferenceHistogram<B>>> {
        let model = Model::parse(self.bytes.as_slice())?;
        ReferenceHistogram::<B>::from_image(&model, source)
            .context("reading the image's reference statistics")
    }

    /// Runs each fixed-length token-id row through the image.
    pub fn predict(&self, rows: &[Vec<i32>]) -> anyhow::Result<Vec<Prediction>> {
        let model = Model::parse(self.bytes.as_slice())?;
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice())?;
        let input = it.input_info(0)?;
        let output = it.output_info(0)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if row.len() != input.num_elements() {
                bail!(
                    "input has {} token ids, the image takes {}",
                    row.len(),
                    input.num_elements()
                );
            }
            match input.dtype {
                DType::I32 => it.input_i32(0)?.copy_from_slice(row),
                DType::F32 => it
                    .input_f32(0)?
                    .iter_mut()
                    .zip(row)
                    .for_each(|(d, &v)| *d = v as f32),
                other => bail!("the image's input is {other:?}; token ids need i32"),
            }
            let t = Instant::now();
            it.invoke().context("invoke")?;
            let micros = t.elapsed().as_secs_f64() * 1e6;
            let logits: Vec<f64> = match output.dtype {
                DType::F32 => it.output_f32(0)?.iter().map(|&v| f64::from(v)).collect(),
                DType::I8 => it
                    .output_i8(0)?
                    .iter()
                    .map(|&q| (i32::from(q) - output.zero_point) as f64 * f64::from(output.scale))
                    .collect(),
                other => bail!("the image's output is {other:?}; logits need f32 or i8"),
            };
            let probs = softmax(&logits);
            out.push(Prediction {
                class: argmax(&probs),
                probs,
                micros,
            });
        }
        Ok(out)
    }
}

/// Softmax in f64.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|&l| (l - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Token ids of `text` exactly as the classifier was fine-tuned on them: cut to `max_len`,
/// padded with the pad token to `max_len`.
pub fn encode(tok: &Tokenizer, text: &str, max_len: usize) -> anyhow::Result<Vec<i32>> {
    let mut ids = tok.encode(text)?;
    ids.truncate(max_len);
    ids.resize(max_len, tok.specials().pad.unwrap_or(0));
    ids.into_iter()
        .map(|i| i32::try_from(i).context("token id beyond i32"))
        .collect()
}

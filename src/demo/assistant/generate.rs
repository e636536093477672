//! The assistant's int8 image on the host runtime, as an edge-Linux device runs it: verify the
//! signature, then generate token by token. The image is the trainer's full-sequence GPT export
//! (`input_ids [1, T]` → `logits [1, T, V]`), so each new token re-runs the sequence written so
//! far (padded to T; the causal mask keeps the padding out of earlier positions) and reads the
//! logits at the last real position.

use std::time::Instant;

use anyhow::{bail, Context};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::DType;
use edgeloop_runtime::{Interpreter, Model};

/// Sampling settings (greedy decoding when not given).
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Softmax temperature (> 0).
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Seed of this generation's random draws.
    pub seed: u64,
}

/// One generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// New tokens, without the end-of-text token.
    pub tokens: Vec<u32>,
    /// Whether the model ended the response itself (end-of-text).
    pub ended: bool,
    /// Probability of the first new token.
    pub first_probability: f64,
    /// Microseconds spent in `invoke`.
    pub micros: f64,
}

/// A verified assistant image.
pub struct AssistantImage {
    bytes: AlignedBytes,
    /// Model version in the image header.
    pub version: u32,
    /// Context length T.
    pub context: usize,
    /// Vocabulary size V.
    pub vocab: usize,
}

impl AssistantImage {
    /// Parses `image`, verifies its signature against `public_key` and checks its layout.
    pub fn load(image: &[u8], public_key: &[u8; 32]) -> anyhow::Result<Self> {
        let bytes = AlignedBytes::new(image);
        let (version, context, vocab) = {
            let model = Model::parse(bytes.as_slice()).context("parsing the assistant image")?;
            model
                .verify_signature(public_key)
                .context("verifying the assistant image's signature")?;
            if model.num_inputs() != 1 || model.num_outputs() != 1 {
                bail!(
                    "an assistant image has one input (token ids) and one output (logits); this one has {} and {}",
                    model.num_inputs(),
                    model.num_outputs()
                );
            }
            let mut arena = AlignedBytes::zeroed(model.arena_bytes());
            let it = Interpreter::new(&model, arena.as_mut_slice())?;
            let input = it.input_info(0)?;
            let output = it.output_info(0)?;
            let context = input.num_elements();
            if input.dtype != DType::I32 || context < 2 {
                bail!(
                    "the assistant image takes {:?} × {context}; token ids need i32 and a context of at least 2",
                    input.dtype
                );
            }
            if output.num_elements() % context != 0 {
                bail!(
                    "the assistant image's logits ({} values) are not a whole number of rows of {context} positions",
                    output.num_elements()
                );
            }
            (
                model.model_version(),
                context,
                output.num_elements() / context,
            )
        };
        Ok(AssistantImage {
            bytes,
            version,
            context,
            vocab,
        })
    }

    /// Generates at most `max_new` tokens after `prompt`, stopping at `eos` or a full context.
    pub fn generate(
        &self,
        prompt: &[u32],
        max_new: usize,
        eos: Option<u32>,
        pad: u32,
        sampling: Option<Sampling>,
    ) -> anyhow::Result<Generation> {
        if prompt.is_empty() || prompt.len() >= self.context {
            bail!(
                "the prompt has {} tokens; the assistant takes 1 to {}",
                prompt.len(),
                self.context - 1
            );
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.vocab) {
            bail!("token id {bad} is outside the vocabulary of {}", self.vocab);
        }
        let model = Model::parse(self.bytes.as_slice())?;
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice())?;
        let output = it.output_info(0)?;
        let mut seq: Vec<u32> = prompt.to_vec();
        let mut rng = sampling.map(|s| s.seed ^ 0x9E37_79B9_7F4A_7C15);
        let mut g = Generation {
            tokens: Vec::new(),
            ended: false,
            first_probability: 0.0,
            micros: 0.0,
        };
        while g.tokens.len() < max_new && seq.len() < self.context {
            let input = it.input_i32(0)?;
            input.fill(pad as i32);
            for (d, &t) in input.iter_mut().zip(&seq) {
                *d = t as i32;
            }
            let t = Instant::now();
            it.invoke().context("invoke")?;
            g.micros += t.elapsed().as_secs_f64() * 1e6;
            let row = (seq.len() - 1) * self.vocab..seq.len() * self.vocab;
            let logits: Vec<f64> = match output.dtype {
                DType::F32 => it.output_f32(0)?[row]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect(),
                DType::I8 => it.output_i8(0)?[row]
                    .iter()
                    .map(|&q| (i32::from(q) - output.zero_point) as f64 * f64::from(output.scale))
                    .collect(),
                other => bail!("the assistant image's logits are {other:?}; expected f32 or i8"),
            };
            let (next, p) = match (sampling, rng.as_mut()) {
                (Some(s), Some(state)) => sample(&logits, s, state),
                _ => {
                    let k = super::super::device::argmax(&logits);
                    (k, super::super::device::softmax(&logits)[k])
                }
            };
            if g.tokens.is_empty() {
                g.first_probability = p;
            }
            let next = next as u32;
            if Some(next) == eos {
                g.ended = true;
                break;
            }
            g.tokens.push(next);
            seq.push(next);
        }
        Ok(g)
    }
}

/// SplitMix64 step: the next uniform draw in [0, 1).
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Draws a token from `softmax(logits / temperature)` restricted to the `top_k` largest;
/// returns it and its probability under that distribution.
fn sample(logits: &[f64], s: Sampling, state: &mut u64) -> (usize, f64) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let t = s.temperature.max(1e-6);
    let m = logits[order[0]];
    let w: Vec<f64> = order.iter().map(|&i| ((logits[i] - m) / t).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut u = uniform(state) * total;
    for (k, &i) in order.iter().enumerate() {
        if u < w[k] {
            return (i, w[k] / total);
        }
        u -= w[k];
    }
    let last = order.len() - 1;
    (order[last], w[last] / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_to_top_k_and_follows_the_distribution() {
        let logits = [0.0, 2.0, 1.0, -5.0];
        let mut state = 42;
        let s = Sampling {
            temperature: 1.0,
            top_k: 2,
            seed: 0,
        };
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[sample(&logits, s, &mut state).0] += 1;
        }
        assert_eq!(counts[0] + counts[3], 0, "{counts:?}");
        // P(1) = e² / (e² + e) ≈ 0.731.
        let p1 = counts[1] as f64 / 4000.0;
        assert!((p1 - 0.731).abs() < 0.03, "{p1}");
        // A low temperature is (almost) greedy.
        let cold = Sampling {
            temperature: 0.01,
            ..s
        };
        assert!((0..100).all(|_| sample(&logits, cold, &mut state).0 == 1));
    }
}

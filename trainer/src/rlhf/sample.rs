//! Token sampling from the fp32 policy: temperature, top-k and top-p (nucleus), or greedy.
//!
//! Generation is batched: each step runs the rows still generating, right-padded to the longest
//! (the causal mask keeps the padding out of the real positions), and reads each row's logits at
//! its last real position. There is no key/value cache: the small GPT's context is short, and a
//! full pass keeps the sampler on the same code path as training.

use candle_core::{Tensor, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::rollout::Rollout;
use crate::models::Gpt;
use crate::{Result, TrainerError};

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature (> 0). The on-policy trainers fold it into the policy: their
    /// log-probabilities are those of `softmax(logits / temperature)`.
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0: all).
    ///
    /// Truncation (top-k, top-p) inside PPO or RLOO makes the draws differ slightly from the
    /// distribution their log-probabilities use (the full tempered softmax), as in common PPO
    /// implementations; [`Sampling::default`] is exactly on-policy.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (1: all).
    pub top_p: f64,
}

impl Default for Sampling {
    /// Plain sampling from the policy (temperature 1, no truncation): exactly on-policy.
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

impl Sampling {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(TrainerError::config(
                "sampling.temperature",
                "must be a positive number",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(TrainerError::config("sampling.top_p", "must be in (0, 1]"));
        }
        Ok(())
    }

    /// Whether the draws follow `softmax(logits / temperature)` exactly (no truncation).
    pub fn is_untruncated(&self) -> bool {
        self.top_k == 0 && self.top_p >= 1.0
    }

    /// The distribution the sampler draws from: `(token, probability)`, most likely first
    /// (ties by token id), after temperature, top-k and top-p.
    pub fn distribution(&self, logits: &[f32]) -> Vec<(u32, f64)> {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if self.top_k > 0 {
            order.truncate(self.top_k);
        }
        let Some(&first) = order.first() else {
            return Vec::new();
        };
        let t = self.temperature.max(1e-6);
        let m = f64::from(logits[first]);
        let w: Vec<f64> = order
            .iter()
            .map(|&i| ((f64::from(logits[i]) - m) / t).exp())
            .collect();
        let total: f64 = w.iter().sum();
        let mut out = Vec::with_capacity(order.len());
        let mut cum = 0.0;
        for (k, &i) in order.iter().enumerate() {
            let p = w[k] / total;
            out.push((i as u32, p));
            cum += p;
            if cum >= self.top_p {
                break;
            }
        }
        let kept: f64 = out.iter().map(|x| x.1).sum();
        for x in &mut out {
            x.1 /= kept;
        }
        out
    }

    /// Draws one token from [`Self::distribution`] with `rng`.
    pub fn draw(&self, logits: &[f32], rng: &mut ChaCha8Rng) -> u32 {
        let dist = self.distribution(logits);
        let mut u: f64 = rng.gen();
        for &(tok, p) in &dist {
            if u < p {
                return tok;
            }
            u -= p;
        }
        dist.last().map_or(0, |x| x.0)
    }
}

/// The most likely token (lowest id on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Logits `[B, V]` at position `last[b]` of each row of `ids` `[B, T]`.
pub fn last_logits(gpt: &Gpt, ids: &Tensor, last: &[usize]) -> Result<Tensor> {
    let h = gpt.hidden(ids)?;
    let (b, t, c) = h.dims3()?;
    let idx: Vec<u32> = last
        .iter()
        .enumerate()
        .map(|(r, &p)| (r * t + p) as u32)
        .collect();
    if idx.len() != b {
        return Err(TrainerError::Data(format!(
            "{} last positions for a batch of {b}",
            idx.len()
        )));
    }
    let idx = Tensor::from_vec(idx, b, h.device())?;
    let rows = h.reshape((b * t, c))?.index_select(&idx, 0)?;
    Ok(rows.matmul(&gpt.lm_head.t()?)?)
}

/// Generates a response to each prompt: at most `max_new` tokens, stopping at `eos` or when the
/// sequence fills the context. `sampling` `None` decodes greedily (no draws from `rng`).
pub fn generate(
    gpt: &Gpt,
    prompts: &[Vec<u32>],
    max_new: usize,
    eos: Option<u32>,
    pad: u32,
    sampling: Option<&Sampling>,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Rollout>> {
    if let Some(s) = sampling {
        s.validate()?;
    }
    let ctx = gpt.config.block_size;
    let vocab = gpt.config.vocab_size;
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() || p.len() >= ctx {
            return Err(TrainerError::Data(format!(
                "prompt {}: {} tokens; prompts need 1 to {} (the context is {ctx})",
                i + 1,
                p.len(),
                ctx - 1
            )));
        }
        if let Some(&bad) = p.iter().find(|&&t| t as usize >= vocab) {
            return Err(TrainerError::Data(format!(
                "prompt {}: token id {bad} is outside the vocabulary of {vocab}",
                i + 1
            )));
        }
    }
    let mut out: Vec<Rollout> = prompts
        .iter()
        .map(|p| Rollout {
            prompt: p.clone(),
            response: Vec::new(),
            ended: false,
        })
        .collect();
    let device = gpt.wte.device().clone();
    loop {
        let active: Vec<usize> = (0..out.len())
            .filter(|&i| {
                let r = &out[i];
                !r.ended && r.response.len() < max_new && r.prompt.len() + r.response.len() < ctx
            })
            .collect();
        if active.is_empty() {
            break;
        }
        let lens: Vec<usize> = active
            .iter()
            .map(|&i| out[i].prompt.len() + out[i].response.len())
            .collect();
        let t = lens.iter().copied().max().unwrap_or(1);
        let mut ids = Vec::with_capacity(active.len() * t);
        for &i in &active {
            let r = &out[i];
            let row: Vec<u32> = r.prompt.iter().chain(&r.response).copied().collect();
            ids.extend_from_slice(&row);
            ids.extend(std::iter::repeat_n(pad, t - row.len()));
        }
        let ids = Tensor::from_vec(ids, (active.len(), t), &device)?;
        let last: Vec<usize> = lens.iter().map(|l| l - 1).collect();
        let logits: Vec<Vec<f32>> = last_logits(gpt, &ids, &last)?.detach().to_vec2()?;
        for (k, &i) in active.iter().enumerate() {
            let next = match sampling {
                Some(s) => s.draw(&logits[k], rng),
                None => argmax(&logits[k]),
            };
            if Some(next) == eos {
                out[i].ended = true;
            } else {
                out[i].response.push(next);
            }
        }
    }
    Ok(out)
}

/// The seeded generator [`generate`] draws from.
pub fn rng(seed: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    ChaCha8Rng::seed_from_u64(seed)
}

/// Greedy responses to `prompts` (see [`generate`]).
pub fn greedy(
    gpt: &Gpt,
    prompts: &[Vec<u32>],
    max_new: usize,
    eos: Option<u32>,
    pad: u32,
) -> Result<Vec<Rollout>> {
    use rand::SeedableRng;
    // Greedy decoding draws nothing; the generator is only a placeholder.
    let mut unused = ChaCha8Rng::seed_from_u64(0);
    generate(gpt, prompts, max_new, eos, pad, None, &mut unused)
}

/// Log-softmax over the last dimension of `logits / temperature`.
pub fn tempered_log_softmax(logits: &Tensor, temperature: f64) -> Result<Tensor> {
    let l = if temperature == 1.0 {
        logits.clone()
    } else {
        (logits / temperature)?
    };
    let max = l.max_keepdim(D::Minus1)?.detach();
    let shifted = l.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn distribution_applies_top_k_top_p_and_temperature() {
        let logits = [0.0f32, 2.0, 1.0, -5.0];
        let s = Sampling {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
        };
        let d = s.distribution(&logits);
        assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        let e = std::f64::consts::E;
        assert!((d[0].1 - e * e / (e * e + e)).abs() < 1e-9);
        // top-p 0.5: the first token alone has 0.665 of the mass of the full softmax.
        let p = Sampling {
            top_k: 0,
            top_p: 0.5,
            ..s
        }
        .distribution(&logits);
        assert_eq!(p, vec![(1, 1.0)]);
        // probabilities 0.665, 0.245, 0.090, 0.0006: top-p 0.9 keeps two tokens, 0.95 three
        let p = Sampling {
            top_k: 0,
            top_p: 0.9,
            ..s
        }
        .distribution(&logits);
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        let p = Sampling {
            top_k: 0,
            top_p: 0.95,
            ..s
        }
        .distribution(&logits);
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 0]);
        assert!((p.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-12);
        // a high temperature flattens
        let hot = Sampling {
            temperature: 100.0,
            top_k: 0,
            top_p: 1.0,
        }
        .distribution(&logits);
        assert!(hot.iter().all(|x| (x.1 - 0.25).abs() < 0.02), "{hot:?}");
    }

    #[test]
    fn draws_follow_the_distribution() {
        let logits = [0.0f32, 2.0, 1.0, -5.0];
        let s = Sampling {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[s.draw(&logits, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[0] + counts[3], 0, "{counts:?}");
        let p1 = counts[1] as f64 / 4000.0;
        assert!((p1 - 0.731).abs() < 0.03, "{p1}");
        assert!(Sampling {
            temperature: 0.0,
            ..s
        }
        .validate()
        .is_err());
        assert!(Sampling { top_p: 0.0, ..s }.validate().is_err());
    }

    #[test]
    fn batched_generation_matches_one_at_a_time_and_respects_limits() {
        let (gpt, _p) = super::super::testutil::tiny_gpt(5);
        let prompts = vec![vec![3u32, 4], vec![5u32, 6, 7, 8], vec![9u32]];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let batch = generate(&gpt, &prompts, 5, Some(1), 0, None, &mut rng).unwrap();
        for (p, b) in prompts.iter().zip(&batch) {
            let one =
                generate(&gpt, std::slice::from_ref(p), 5, Some(1), 0, None, &mut rng).unwrap();
            assert_eq!(one[0], *b);
            assert!(b.response.len() <= 5);
            assert!(b.prompt.len() + b.response.len() <= gpt.config.block_size);
        }
        // Sampled generation is reproducible from the seed.
        let s = Sampling::default();
        let a = generate(
            &gpt,
            &prompts,
            6,
            Some(1),
            0,
            Some(&s),
            &mut ChaCha8Rng::seed_from_u64(9),
        )
        .unwrap();
        let b = generate(
            &gpt,
            &prompts,
            6,
            Some(1),
            0,
            Some(&s),
            &mut ChaCha8Rng::seed_from_u64(9),
        )
        .unwrap();
        assert_eq!(a, b);
        // Bad prompts are errors, not panics.
        assert!(generate(&gpt, &[vec![]], 3, None, 0, None, &mut rng).is_err());
        assert!(generate(&gpt, &[vec![999]], 3, None, 0, None, &mut rng).is_err());
        assert!(generate(&gpt, &[vec![2; 64]], 3, None, 0, None, &mut rng).is_err());
    }
}

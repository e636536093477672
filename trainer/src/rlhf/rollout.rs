//! Rollouts (a prompt and the policy's response) and what the trainers compute on them in one
//! forward pass: per-token log-probabilities of the response tokens (the actions), the value
//! head's estimates, and the KL to the reference.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::sample::tempered_log_softmax;
use crate::models::layers::Linear;
use crate::models::Gpt;
use crate::train::objectives::TokenBatch;
use crate::{Result, TrainerError};

/// A prompt and one generated response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Response token ids, without the end-of-text token.
    pub response: Vec<u32>,
    /// Whether the policy ended the response itself (drew end-of-text).
    pub ended: bool,
}

impl Rollout {
    /// The tokens the policy chose: the response, then end-of-text when it ended.
    pub fn actions(&self, eos: Option<u32>) -> Vec<u32> {
        let mut a = self.response.clone();
        if self.ended {
            a.extend(eos);
        }
        a
    }

    /// Prompt followed by the actions (what the reward model scores).
    pub fn sequence(&self, eos: Option<u32>) -> Vec<u32> {
        let mut s = self.prompt.clone();
        s.extend(self.actions(eos));
        s
    }
}

/// Rollouts as one right-padded batch: `inputs[b, i]` predicts `targets[b, i]`; the weights are
/// 1 exactly where the target is an action.
#[derive(Debug, Clone)]
pub struct ActionBatch {
    /// The token batch (instruction layout: loss weights on the response).
    pub batch: TokenBatch,
    /// For each row, the flat positions (`b * len + i`) of its actions, in order.
    pub positions: Vec<Vec<usize>>,
}

impl ActionBatch {
    /// Builds the batch of `rollouts`; a rollout without any action is an error.
    pub fn new(rollouts: &[Rollout], eos: Option<u32>, pad: u32) -> Result<Self> {
        let examples: Vec<(Vec<u32>, Vec<u32>)> = rollouts
            .iter()
            .map(|r| (r.prompt.clone(), r.actions(eos)))
            .collect();
        if examples.iter().any(|(_, a)| a.is_empty()) {
            return Err(TrainerError::Data(
                "a rollout has no action (empty response that did not end)".into(),
            ));
        }
        let batch = TokenBatch::instruction(&examples, pad)?;
        let positions = (0..batch.batch)
            .map(|b| {
                (0..batch.len)
                    .map(|i| b * batch.len + i)
                    .filter(|&k| batch.weights[k] > 0.0)
                    .collect()
            })
            .collect();
        Ok(Self { batch, positions })
    }

    /// Mask `[B, T]` (1.0 on actions).
    pub fn mask(&self, device: &candle_core::Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.batch.weights,
            (self.batch.batch, self.batch.len),
            device,
        )?)
    }

    /// Per-row action values of a flat `[B * T]` vector.
    pub fn per_row(&self, flat: &[f32]) -> Vec<Vec<f32>> {
        self.positions
            .iter()
            .map(|ps| ps.iter().map(|&k| flat[k]).collect())
            .collect()
    }

    /// A flat `[B * T]` vector holding `rows[b][j]` at the `j`-th action of row `b`, 0 elsewhere.
    pub fn scatter(&self, rows: &[Vec<f32>]) -> Vec<f32> {
        let mut flat = vec![0f32; self.batch.batch * self.batch.len];
        for (ps, vals) in self.positions.iter().zip(rows) {
            for (&k, &v) in ps.iter().zip(vals) {
                flat[k] = v;
            }
        }
        flat
    }
}

/// What one forward pass over an [`ActionBatch`] yields.
#[derive(Debug)]
pub struct Outputs {
    /// `log π(target)` at every position `[B, T]` (meaningful on actions only).
    pub logprobs: Tensor,
    /// Value estimates `[B, T]` when a value head was given.
    pub values: Option<Tensor>,
}

/// Log-probabilities of the targets under `softmax(logits / temperature)` and, with a value
/// head, the values of the hidden states.
pub fn forward(
    gpt: &Gpt,
    value_head: Option<&Linear>,
    ab: &ActionBatch,
    temperature: f64,
) -> Result<Outputs> {
    let device = gpt.wte.device();
    let (x, y, _, _) = ab.batch.tensors(device)?;
    let h = gpt.hidden(&x)?;
    let (b, t, c) = h.dims3()?;
    let flat = h.reshape((b * t, c))?;
    let logits = flat.matmul(&gpt.lm_head.t()?)?;
    let logp = tempered_log_softmax(&logits, temperature)?;
    let picked = logp.gather(&y.unsqueeze(1)?, 1)?.reshape((b, t))?;
    let values = match value_head {
        Some(v) => Some(v.forward(&flat)?.reshape((b, t))?),
        None => None,
    };
    Ok(Outputs {
        logprobs: picked,
        values,
    })
}

/// Per-row sums over actions of `policy log-prob − reference log-prob` (a sample of the
/// sequence-level KL(π ‖ π_ref) for each rollout), with the per-token terms.
pub fn kl_terms(
    policy_logp: &[Vec<f32>],
    reference_logp: &[Vec<f32>],
) -> (Vec<Vec<f32>>, Vec<f64>) {
    let per_token: Vec<Vec<f32>> = policy_logp
        .iter()
        .zip(reference_logp)
        .map(|(p, r)| p.iter().zip(r).map(|(a, b)| a - b).collect())
        .collect();
    let sums = per_token
        .iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).sum())
        .collect();
    (per_token, sums)
}

/// Per-row action log-probabilities of `gpt` on `ab` (no gradient kept).
pub fn action_logprobs(gpt: &Gpt, ab: &ActionBatch, temperature: f64) -> Result<Vec<Vec<f32>>> {
    let o = forward(gpt, None, ab, temperature)?;
    let flat: Vec<f32> = o.logprobs.detach().flatten_all()?.to_vec1()?;
    Ok(ab.per_row(&flat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_positions_follow_the_response() {
        let r = vec![
            Rollout {
                prompt: vec![5, 6, 7],
                response: vec![8],
                ended: true,
            },
            Rollout {
                prompt: vec![5],
                response: vec![9, 9],
                ended: false,
            },
        ];
        let ab = ActionBatch::new(&r, Some(1), 0).unwrap();
        // row 0: 5 6 7 8 1 → len 4; actions 8 (predicted at 2) and 1 (at 3)
        assert_eq!(ab.batch.len, 4);
        assert_eq!(ab.positions, vec![vec![2, 3], vec![4, 5]]);
        let flat: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let rows = ab.per_row(&flat);
        assert_eq!(rows, vec![vec![2.0, 3.0], vec![4.0, 5.0]]);
        let back = ab.scatter(&rows);
        assert_eq!(back, vec![0., 0., 2., 3., 4., 5., 0., 0.]);
        let empty = Rollout {
            prompt: vec![2],
            response: vec![],
            ended: false,
        };
        assert!(ActionBatch::new(&[empty], Some(1), 0).is_err());
    }

    #[test]
    fn logprobs_match_the_lm_loss() {
        let (gpt, _p) = super::super::testutil::tiny_gpt(2);
        let r = vec![Rollout {
            prompt: vec![3, 4, 5],
            response: vec![6, 7],
            ended: true,
        }];
        let ab = ActionBatch::new(&r, Some(1), 0).unwrap();
        let lp = action_logprobs(&gpt, &ab, 1.0).unwrap();
        let seq = crate::train::objectives::sequence_logprob(&gpt, &ab.batch)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let sum: f32 = lp[0].iter().sum();
        assert_eq!(lp[0].len(), 3);
        assert!((sum - seq[0]).abs() < 1e-4, "{sum} vs {}", seq[0]);
    }
}

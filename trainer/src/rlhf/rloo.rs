//! REINFORCE leave-one-out (RLOO; Kool et al. 2019, Ahmadian et al. 2024): the simpler
//! on-policy method. Each iteration samples `k` responses to each of `prompts_per_iteration`
//! prompts; a response's return is its score minus `β ×` its sequence KL to the reference; its
//! baseline is the mean return of the other `k − 1` responses to the same prompt; the loss is
//! `−mean(A · Σ_t log π(a_t))`, one optimizer step per iteration (exactly on-policy: no value
//! head, no ratio, no clipping).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::kl::KlController;
use super::policy::{draw_prompts, PolicyPair};
use super::ppo::progress_bar;
use super::reward::Scorer;
use super::rollout::{self, ActionBatch};
use super::sample::{self, Sampling};
use super::state::{self, IterationStats, ResumeTarget, RlState};
use crate::models::GptConfig;
use crate::optim::{AdamW, AdamWConfig};
use crate::{Result, TrainerError};

/// RLOO settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlooConfig {
    /// Iterations (= optimizer steps).
    pub iterations: usize,
    /// Prompts per iteration.
    pub prompts_per_iteration: usize,
    /// Responses sampled per prompt (k ≥ 2).
    pub samples_per_prompt: usize,
    /// Most tokens generated per response.
    pub max_new_tokens: usize,
    /// Sampling inside the loop.
    pub sampling: Sampling,
    /// KL penalty (sequence level, in the return).
    pub kl: KlController,
    /// Learning rate (constant).
    pub lr: f64,
    /// AdamW settings.
    pub optimizer: AdamWConfig,
    /// Global gradient-norm clip.
    pub clip_grad_norm: Option<f64>,
    /// Seed of prompt and token draws.
    pub seed: u64,
    /// Checkpoint every this many iterations (0: only at the end), when a folder is given.
    pub checkpoint_every: usize,
}

impl Default for RlooConfig {
    fn default() -> Self {
        Self {
            iterations: 40,
            prompts_per_iteration: 8,
            samples_per_prompt: 4,
            max_new_tokens: 16,
            sampling: Sampling::default(),
            kl: KlController::default(),
            lr: 1e-4,
            optimizer: AdamWConfig {
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            clip_grad_norm: Some(1.0),
            seed: 0,
            checkpoint_every: 0,
        }
    }
}

impl RlooConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.samples_per_prompt < 2 {
            return Err(TrainerError::config(
                "samples_per_prompt",
                "RLOO needs at least 2 samples per prompt (the baseline is the others' mean)",
            ));
        }
        for (f, v) in [
            ("prompts_per_iteration", self.prompts_per_iteration),
            ("max_new_tokens", self.max_new_tokens),
        ] {
            if v == 0 {
                return Err(TrainerError::config(f, "must be at least 1"));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(TrainerError::config("lr", "must be positive"));
        }
        self.sampling.validate()?;
        self.kl.validate()
    }
}

/// Leave-one-out advantages of `returns`, grouped in consecutive runs of `k`.
pub fn leave_one_out(returns: &[f64], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(returns.len());
    for g in returns.chunks(k) {
        let sum: f64 = g.iter().sum();
        let m = (g.len().max(2) - 1) as f64;
        out.extend(g.iter().map(|r| r - (sum - r) / m));
    }
    out
}

/// What an RLOO checkpoint's `config.json` holds (checked on resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlooCheckpointConfig {
    /// The policy's architecture.
    pub policy: GptConfig,
    /// The RLOO settings.
    pub rloo: RlooConfig,
}

/// An RLOO run.
#[derive(Debug)]
pub struct Rloo {
    /// Policy and reference.
    pub models: PolicyPair,
    /// Settings.
    pub config: RlooConfig,
    /// Run state.
    pub state: RlState,
    opt: AdamW,
    ckpt_config: RlooCheckpointConfig,
    eos: Option<u32>,
    pad: u32,
    device: Device,
}

impl Rloo {
    /// A run starting from the SFT model's tensors.
    pub fn new(
        policy: &GptConfig,
        sft: &HashMap<String, Tensor>,
        config: RlooConfig,
        eos: Option<u32>,
        pad: u32,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let models = PolicyPair::new(policy, sft, false, device)?;
        let opt = AdamW::new(models.params.trainable(), config.optimizer.clone())?;
        Ok(Self {
            state: RlState::new(config.seed, config.kl.init_coef),
            ckpt_config: RlooCheckpointConfig {
                policy: models.policy.config.clone(),
                rloo: config.clone(),
            },
            models,
            config,
            opt,
            eos,
            pad,
            device: device.clone(),
        })
    }

    /// Loads the latest checkpoint under `root` when there is one; returns whether it did.
    pub fn resume(&mut self, root: &Path) -> Result<bool> {
        match state::resume_rl(
            root,
            &self.models.params,
            &mut self.opt,
            &self.ckpt_config,
            &self.device,
        )? {
            Some(s) => {
                self.state = s;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Runs one iteration (one optimizer step).
    pub fn iterate(&mut self, prompts: &[Vec<u32>], scorer: &dyn Scorer) -> Result<IterationStats> {
        let c = self.config.clone();
        let mut rng = self.state.rng()?;
        let drawn = draw_prompts(prompts, c.prompts_per_iteration, &mut rng)?;
        let batch: Vec<Vec<u32>> = drawn
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), c.samples_per_prompt))
            .collect();
        let pi = &self.models;
        let rollouts = sample::generate(
            &pi.policy,
            &batch,
            c.max_new_tokens,
            self.eos,
            self.pad,
            Some(&c.sampling),
            &mut rng,
        )?;
        let ab = ActionBatch::new(&rollouts, self.eos, self.pad)?;
        let t = c.sampling.temperature;
        let out = rollout::forward(&pi.policy, None, &ab, t)?;
        let logp = ab.per_row(&out.logprobs.detach().flatten_all()?.to_vec1()?);
        let ref_logp = rollout::action_logprobs(&pi.reference, &ab, t)?;
        let (_, kl_seq) = rollout::kl_terms(&logp, &ref_logp);
        let scores = scorer.score(&rollouts, self.eos)?;
        if scores.len() != rollouts.len() || scores.iter().any(|s| !s.is_finite()) {
            return Err(TrainerError::Data(
                "the reward function gave a wrong number of scores or a non-finite one".into(),
            ));
        }
        let beta = self.state.kl_coef;
        let returns: Vec<f64> = scores
            .iter()
            .zip(&kl_seq)
            .map(|(s, k)| s - beta * k)
            .collect();
        let adv = leave_one_out(&returns, c.samples_per_prompt);
        let n = rollouts.len();
        // Σ_t log π(a_t) per row, weighted by the row's advantage.
        let rows: Vec<Vec<f32>> = ab
            .positions
            .iter()
            .zip(&adv)
            .map(|(ps, a)| vec![*a as f32; ps.len()])
            .collect();
        let (b, len) = (ab.batch.batch, ab.batch.len);
        let w = Tensor::from_vec(ab.scatter(&rows), (b, len), &self.device)?;
        let loss = ((out.logprobs * w)?.sum_all()?.neg()? / n as f64)?;
        let l = loss.to_scalar::<f32>()?;
        if !l.is_finite() {
            return Err(TrainerError::Diverged {
                step: self.state.optimizer_steps,
                loss: l,
            });
        }
        let grads = loss.backward()?;
        let mut scale = 1.0;
        if let Some(max) = c.clip_grad_norm {
            let norm = self.opt.grad_norm(&grads)?;
            if norm > max {
                scale = max / norm;
            }
        }
        self.opt.step(&grads, c.lr, scale)?;
        self.state.optimizer_steps += 1;
        let kl = kl_seq.iter().sum::<f64>() / n as f64;
        self.state.kl_coef = c.kl.update(beta, kl, n);
        self.state.iteration += 1;
        self.state.save_rng(&rng);
        let stats = IterationStats {
            iteration: self.state.iteration,
            optimizer_steps: self.state.optimizer_steps,
            reward: scores.iter().sum::<f64>() / n as f64,
            kl,
            kl_coef: beta,
            policy_loss: f64::from(l),
            value_loss: None,
            clip_fraction: None,
            response_len: logp.iter().map(Vec::len).sum::<usize>() as f64 / n as f64,
        };
        self.state.history.push(stats.clone());
        Ok(stats)
    }

    /// Runs iterations until `config.iterations` (at most `max_this_run` in this call),
    /// checkpointing under `checkpoints` (and resuming from it first when it holds a run).
    pub fn train(
        &mut self,
        prompts: &[Vec<u32>],
        scorer: &dyn Scorer,
        checkpoints: Option<&Path>,
        max_this_run: Option<usize>,
        progress: bool,
    ) -> Result<()> {
        if let Some(root) = checkpoints {
            self.resume(root)?;
        }
        let bar = progress_bar(
            progress,
            self.config.iterations,
            self.state.iteration,
            "RLOO",
        );
        let mut done = 0;
        while self.state.iteration < self.config.iterations && max_this_run.is_none_or(|m| done < m)
        {
            let s = self.iterate(prompts, scorer)?;
            done += 1;
            bar.set_position(s.iteration as u64);
            bar.set_message(format!("reward {:.3} KL {:.3}", s.reward, s.kl));
            if let Some(root) = checkpoints {
                let every = self.config.checkpoint_every;
                let last = self.state.iteration >= self.config.iterations;
                if last || (every > 0 && self.state.iteration.is_multiple_of(every)) {
                    state::save_rl(
                        &ResumeTarget {
                            root,
                            config: &self.ckpt_config,
                        },
                        &self.models.params,
                        &self.opt,
                        &self.state,
                    )?;
                }
            }
        }
        bar.finish_and_clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_baseline() {
        let a = leave_one_out(&[1.0, 2.0, 3.0, 10.0, 10.0], 3);
        // group 1: 1 - 2.5, 2 - 2, 3 - 1.5; group 2: 10 - 10 twice
        assert_eq!(a, vec![-1.5, 0.0, 1.5, 0.0, 0.0]);
    }
}

#[cfg(test)]
mod training_tests {
    use super::super::reward::FnScorer;
    use super::super::testutil::{self, max_weight_diff, tiny_config, EOS, PAD};
    use super::*;

    fn config(iterations: usize) -> RlooConfig {
        RlooConfig {
            iterations,
            prompts_per_iteration: 8,
            samples_per_prompt: 4,
            max_new_tokens: 5,
            lr: 3e-3,
            kl: KlController {
                init_coef: 0.05,
                target: None,
                horizon: 100.0,
            },
            seed: 23,
            checkpoint_every: 1,
            ..RlooConfig::default()
        }
    }

    /// RLOO raises the reward; a resumed run ends with the uninterrupted run's weights.
    #[test]
    fn rloo_raises_the_reward_and_resumes_bitwise() {
        let sft = testutil::sft_tensors(30);
        let prompts = testutil::prompts(40, 5);
        let scorer = FnScorer(testutil::oracle);
        let mut r = Rloo::new(
            &tiny_config(),
            &sft,
            config(40),
            Some(EOS),
            PAD,
            &Device::Cpu,
        )
        .unwrap();
        r.train(&prompts, &scorer, None, None, false).unwrap();
        let h = &r.state.history;
        let mean = |s: &[IterationStats]| s.iter().map(|x| x.reward).sum::<f64>() / s.len() as f64;
        let (first, last) = (mean(&h[..8]), mean(&h[32..]));
        assert!(last > first + 0.15, "reward {first:.3} → {last:.3}");

        let run = |root: Option<&Path>, max: Option<usize>| {
            let mut p = Rloo::new(
                &tiny_config(),
                &sft,
                config(4),
                Some(EOS),
                PAD,
                &Device::Cpu,
            )
            .unwrap();
            p.train(&prompts, &scorer, root, max, false).unwrap();
            p
        };
        let whole = run(None, None);
        let dir = std::env::temp_dir().join(format!("edgeloop-rloo-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        run(Some(&dir), Some(3));
        let resumed = run(Some(&dir), None);
        assert_eq!(
            max_weight_diff(
                &whole.models.params.to_tensors().unwrap(),
                &resumed.models.params.to_tensors().unwrap()
            ),
            0.0
        );
        assert_eq!(whole.state, resumed.state);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(RlooConfig {
            samples_per_prompt: 1,
            ..config(1)
        }
        .validate()
        .is_err());
    }
}

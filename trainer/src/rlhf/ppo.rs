//! PPO for the GPT policy (Schulman et al. 2017; the RLHF recipe of Ziegler et al. 2019 and
//! Ouyang et al. 2022).
//!
//! One iteration: draw prompts; sample responses from the current policy (temperature, top-k,
//! top-p; see [`Sampling`] for the on-policy caveat of truncation); score each rollout with the
//! reward function; per-token rewards `r_t = −β (log π_old(a_t) − log π_ref(a_t))`, plus the score
//! on the last token; generalized advantage estimation (Schulman et al. 2016) with the value
//! head's estimates; advantages whitened; then `epochs` passes of minibatch updates of the
//! clipped surrogate `max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε))` plus `vf_coef ×` the clipped value loss;
//! finally β follows the [`KlController`].

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::kl::KlController;
use super::policy::{draw_prompts, PolicyPair};
use super::reward::Scorer;
use super::rollout::{self, ActionBatch, Rollout};
use super::sample::{self, Sampling};
use super::state::{self, IterationStats, ResumeTarget, RlState};
use crate::models::GptConfig;
use crate::optim::{AdamW, AdamWConfig};
use crate::{Result, TrainerError};

/// PPO settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoConfig {
    /// Iterations (rollout + update rounds).
    pub iterations: usize,
    /// Rollouts sampled per iteration.
    pub rollouts_per_iteration: usize,
    /// Most tokens generated per response.
    pub max_new_tokens: usize,
    /// Sampling inside the loop.
    pub sampling: Sampling,
    /// Passes over each iteration's rollouts.
    pub epochs: usize,
    /// Rollouts per optimizer step.
    pub minibatch_size: usize,
    /// ε of the ratio clip.
    pub clip_range: f64,
    /// Clip of the value update around the old values.
    pub value_clip_range: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Discount.
    pub gamma: f64,
    /// GAE λ.
    pub lam: f64,
    /// KL penalty.
    pub kl: KlController,
    /// Learning rate (constant).
    pub lr: f64,
    /// AdamW settings.
    pub optimizer: AdamWConfig,
    /// Global gradient-norm clip.
    pub clip_grad_norm: Option<f64>,
    /// Normalize advantages to mean 0, standard deviation 1 per iteration.
    pub whiten_advantages: bool,
    /// Seed of prompt draws, token draws and minibatch order.
    pub seed: u64,
    /// Checkpoint every this many iterations (0: only at the end), when a folder is given.
    pub checkpoint_every: usize,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            iterations: 20,
            rollouts_per_iteration: 32,
            max_new_tokens: 16,
            sampling: Sampling::default(),
            epochs: 2,
            minibatch_size: 16,
            clip_range: 0.2,
            value_clip_range: 0.2,
            vf_coef: 0.1,
            gamma: 1.0,
            lam: 0.95,
            kl: KlController::default(),
            lr: 1e-4,
            optimizer: AdamWConfig {
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            clip_grad_norm: Some(1.0),
            whiten_advantages: true,
            seed: 0,
            checkpoint_every: 0,
        }
    }
}

impl PpoConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("rollouts_per_iteration", self.rollouts_per_iteration),
            ("max_new_tokens", self.max_new_tokens),
            ("epochs", self.epochs),
            ("minibatch_size", self.minibatch_size),
        ] {
            if v == 0 {
                return Err(TrainerError::config(f, "must be at least 1"));
            }
        }
        for (f, v) in [
            ("clip_range", self.clip_range),
            ("value_clip_range", self.value_clip_range),
            ("lr", self.lr),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(TrainerError::config(f, "must be positive"));
            }
        }
        for (f, v) in [("gamma", self.gamma), ("lam", self.lam)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(TrainerError::config(f, "must be in [0, 1]"));
            }
        }
        if !(self.vf_coef >= 0.0 && self.vf_coef.is_finite()) {
            return Err(TrainerError::config("vf_coef", "must be ≥ 0"));
        }
        self.sampling.validate()?;
        self.kl.validate()
    }

    /// Optimizer steps per iteration.
    pub fn steps_per_iteration(&self) -> usize {
        self.epochs
            * self
                .rollouts_per_iteration
                .div_ceil(self.minibatch_size.max(1))
    }
}

/// What a PPO checkpoint's `config.json` holds (checked on resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoCheckpointConfig {
    /// The policy's architecture.
    pub policy: GptConfig,
    /// The PPO settings.
    pub ppo: PpoConfig,
}

/// Generalized advantage estimates and returns of one rollout: `rewards[t]` and `values[t]` per
/// action; the value after the last action is 0 (the episode ends).
pub fn gae(rewards: &[f32], values: &[f32], gamma: f64, lam: f64) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut adv = vec![0f32; n];
    let mut next_adv = 0f64;
    for t in (0..n).rev() {
        let next_v = if t + 1 < n {
            f64::from(values[t + 1])
        } else {
            0.0
        };
        let delta = f64::from(rewards[t]) + gamma * next_v - f64::from(values[t]);
        next_adv = delta + gamma * lam * next_adv;
        adv[t] = next_adv as f32;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// One iteration's rollouts with everything the updates need, per row and per action.
struct Experience {
    rollouts: Vec<Rollout>,
    old_logp: Vec<Vec<f32>>,
    old_values: Vec<Vec<f32>>,
    advantages: Vec<Vec<f32>>,
    returns: Vec<Vec<f32>>,
}

/// A PPO run: the policy with its value head, the reference, the optimizer and the run state.
#[derive(Debug)]
pub struct Ppo {
    /// Policy, value head and reference.
    pub models: PolicyPair,
    /// Settings.
    pub config: PpoConfig,
    /// Run state (iteration, RNG position, β, history).
    pub state: RlState,
    opt: AdamW,
    ckpt_config: PpoCheckpointConfig,
    eos: Option<u32>,
    pad: u32,
    device: Device,
}

impl Ppo {
    /// A run starting from the SFT model's tensors.
    pub fn new(
        policy: &GptConfig,
        sft: &HashMap<String, Tensor>,
        config: PpoConfig,
        eos: Option<u32>,
        pad: u32,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let models = PolicyPair::new(policy, sft, true, device)?;
        let opt = AdamW::new(models.params.trainable(), config.optimizer.clone())?;
        Ok(Self {
            state: RlState::new(config.seed, config.kl.init_coef),
            ckpt_config: PpoCheckpointConfig {
                policy: models.policy.config.clone(),
                ppo: config.clone(),
            },
            models,
            config,
            opt,
            eos,
            pad,
            device: device.clone(),
        })
    }

    /// Loads the latest checkpoint under `root` (same config) when there is one; returns
    /// whether it did.
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

    fn collect(
        &self,
        prompts: &[Vec<u32>],
        scorer: &dyn Scorer,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Experience, f64, f64)> {
        let c = &self.config;
        let batch = draw_prompts(prompts, c.rollouts_per_iteration, rng)?;
        let pi = &self.models;
        let rollouts = sample::generate(
            &pi.policy,
            &batch,
            c.max_new_tokens,
            self.eos,
            self.pad,
            Some(&c.sampling),
            rng,
        )?;
        let ab = ActionBatch::new(&rollouts, self.eos, self.pad)?;
        let t = c.sampling.temperature;
        let out = rollout::forward(&pi.policy, pi.value_head.as_ref(), &ab, t)?;
        let old_logp = ab.per_row(&out.logprobs.detach().flatten_all()?.to_vec1()?);
        let old_values = match &out.values {
            Some(v) => ab.per_row(&v.detach().flatten_all()?.to_vec1()?),
            None => return Err(TrainerError::config("ppo", "the policy has no value head")),
        };
        let ref_logp = rollout::action_logprobs(&pi.reference, &ab, t)?;
        let (kl_tok, kl_seq) = rollout::kl_terms(&old_logp, &ref_logp);
        let scores = scorer.score(&rollouts, self.eos)?;
        if scores.len() != rollouts.len() || scores.iter().any(|s| !s.is_finite()) {
            return Err(TrainerError::Data(
                "the reward function gave a wrong number of scores or a non-finite one".into(),
            ));
        }
        let beta = self.state.kl_coef;
        let mut advantages = Vec::with_capacity(rollouts.len());
        let mut returns = Vec::with_capacity(rollouts.len());
        for i in 0..rollouts.len() {
            let mut r: Vec<f32> = kl_tok[i]
                .iter()
                .map(|k| (-beta * f64::from(*k)) as f32)
                .collect();
            if let Some(last) = r.last_mut() {
                *last += scores[i] as f32;
            }
            let (a, ret) = gae(&r, &old_values[i], c.gamma, c.lam);
            advantages.push(a);
            returns.push(ret);
        }
        if c.whiten_advantages {
            let all: Vec<f64> = advantages.iter().flatten().map(|&v| f64::from(v)).collect();
            let n = all.len().max(1) as f64;
            let mean = all.iter().sum::<f64>() / n;
            let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let sd = var.sqrt().max(1e-8);
            for row in &mut advantages {
                for v in row {
                    *v = ((f64::from(*v) - mean) / sd) as f32;
                }
            }
        }
        let n = rollouts.len() as f64;
        let reward = scores.iter().sum::<f64>() / n;
        let kl = kl_seq.iter().sum::<f64>() / n;
        Ok((
            Experience {
                rollouts,
                old_logp,
                old_values,
                advantages,
                returns,
            },
            reward,
            kl,
        ))
    }

    /// Loss on a minibatch of rows `idx` of `ex`; returns the loss tensor, the policy and value
    /// losses and the clipped share.
    fn minibatch_loss(&self, ex: &Experience, idx: &[usize]) -> Result<(Tensor, f64, f64, f64)> {
        let c = &self.config;
        let rows: Vec<Rollout> = idx.iter().map(|&i| ex.rollouts[i].clone()).collect();
        let ab = ActionBatch::new(&rows, self.eos, self.pad)?;
        let pick =
            |v: &Vec<Vec<f32>>| -> Vec<Vec<f32>> { idx.iter().map(|&i| v[i].clone()).collect() };
        let (b, t) = (ab.batch.batch, ab.batch.len);
        let dev = &self.device;
        let flat = |v: &Vec<Vec<f32>>| -> Result<Tensor> {
            Ok(Tensor::from_vec(ab.scatter(&pick(v)), (b, t), dev)?)
        };
        let old_logp = flat(&ex.old_logp)?;
        let adv = flat(&ex.advantages)?;
        let ret = flat(&ex.returns)?;
        let old_v = flat(&ex.old_values)?;
        let mask = ab.mask(dev)?;
        let count = mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
        let pi = &self.models;
        let out = rollout::forward(
            &pi.policy,
            pi.value_head.as_ref(),
            &ab,
            c.sampling.temperature,
        )?;
        // Mask before exp: off-action positions get ratio 1 (and advantage 0).
        let log_ratio = ((&out.logprobs - &old_logp)? * &mask)?;
        let ratio = log_ratio.exp()?;
        let clipped = ratio.clamp(1.0 - c.clip_range, 1.0 + c.clip_range)?;
        let pg = (&adv * &ratio)?
            .neg()?
            .maximum(&(&adv * &clipped)?.neg()?)?;
        let pg_loss = ((pg * &mask)?.sum_all()? / count)?;
        let values = out
            .values
            .ok_or_else(|| TrainerError::config("ppo", "the policy has no value head"))?;
        let v_clip =
            (&old_v + (&values - &old_v)?.clamp(-c.value_clip_range, c.value_clip_range)?)?;
        let vf = (&values - &ret)?.sqr()?.maximum(&(v_clip - &ret)?.sqr()?)?;
        let vf_loss = (((vf * &mask)?.sum_all()? / count)? * 0.5)?;
        let loss = (&pg_loss + (&vf_loss * c.vf_coef)?)?;
        let clip_frac = ((ratio - 1.0)?
            .abs()?
            .gt(c.clip_range)?
            .to_dtype(candle_core::DType::F32)?
            * &mask)?
            .sum_all()?
            .to_scalar::<f32>()? as f64
            / count;
        Ok((
            loss,
            f64::from(pg_loss.to_scalar::<f32>()?),
            f64::from(vf_loss.to_scalar::<f32>()?),
            clip_frac,
        ))
    }

    /// Runs one iteration on `prompts` with rewards from `scorer`.
    pub fn iterate(&mut self, prompts: &[Vec<u32>], scorer: &dyn Scorer) -> Result<IterationStats> {
        let c = self.config.clone();
        let mut rng = self.state.rng()?;
        let (ex, reward, kl) = self.collect(prompts, scorer, &mut rng)?;
        let n = ex.rollouts.len();
        let (mut pl, mut vl, mut cf, mut steps) = (0f64, 0f64, 0f64, 0usize);
        for _ in 0..c.epochs {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            for idx in order.chunks(c.minibatch_size) {
                let (loss, p, v, f) = self.minibatch_loss(&ex, idx)?;
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
                pl += p;
                vl += v;
                cf += f;
                steps += 1;
            }
        }
        let used = self.state.kl_coef;
        self.state.kl_coef = c.kl.update(used, kl, n);
        self.state.iteration += 1;
        self.state.save_rng(&rng);
        let actions: usize = ex.old_logp.iter().map(Vec::len).sum();
        let stats = IterationStats {
            iteration: self.state.iteration,
            optimizer_steps: self.state.optimizer_steps,
            reward,
            kl,
            kl_coef: used,
            policy_loss: pl / steps.max(1) as f64,
            value_loss: Some(vl / steps.max(1) as f64),
            clip_fraction: Some(cf / steps.max(1) as f64),
            response_len: actions as f64 / n.max(1) as f64,
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
            "PPO",
        );
        let mut done = 0;
        while self.state.iteration < self.config.iterations && max_this_run.is_none_or(|m| done < m)
        {
            let s = self.iterate(prompts, scorer)?;
            done += 1;
            bar.set_position(s.iteration as u64);
            bar.set_message(format!(
                "reward {:.3} KL {:.3} β {:.3}",
                s.reward, s.kl, self.state.kl_coef
            ));
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

/// A progress bar over iterations (hidden when not asked for).
pub(crate) fn progress_bar(show: bool, len: usize, pos: usize, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} iterations {{per_sec}} eta {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_position(pos as u64);
    b
}

#[cfg(test)]
mod tests {
    use super::super::reward::FnScorer;
    use super::super::testutil::{self, max_weight_diff, tiny_config, EOS, PAD};
    use super::*;

    #[test]
    fn gae_matches_hand_computation() {
        // γ = 1, λ = 0.5; rewards 0, 0, 1; values 0.2, 0.4, 0.6
        let (a, r) = gae(&[0.0, 0.0, 1.0], &[0.2, 0.4, 0.6], 1.0, 0.5);
        // δ = (0 + 0.4 − 0.2, 0 + 0.6 − 0.4, 1 − 0.6) = (0.2, 0.2, 0.4)
        // A₂ = 0.4, A₁ = 0.2 + 0.5·0.4 = 0.4, A₀ = 0.2 + 0.5·0.4 = 0.4
        for (x, y) in a.iter().zip([0.4f32, 0.4, 0.4]) {
            assert!((x - y).abs() < 1e-6, "{a:?}");
        }
        for (x, y) in r.iter().zip([0.6f32, 0.8, 1.0]) {
            assert!((x - y).abs() < 1e-6, "{r:?}");
        }
        // λ = 1, γ = 1: the advantage is the return-to-go minus the value
        let (a, _) = gae(&[1.0, 2.0], &[0.5, 0.5], 1.0, 1.0);
        assert!(
            (a[0] - 2.5).abs() < 1e-6 && (a[1] - 1.5).abs() < 1e-6,
            "{a:?}"
        );
    }

    fn config(iterations: usize) -> PpoConfig {
        PpoConfig {
            iterations,
            rollouts_per_iteration: 32,
            max_new_tokens: 5,
            epochs: 2,
            minibatch_size: 16,
            lr: 3e-3,
            kl: KlController {
                init_coef: 0.05,
                target: Some(2.0),
                horizon: 200.0,
            },
            seed: 17,
            checkpoint_every: 1,
            ..PpoConfig::default()
        }
    }

    /// The clipped-surrogate + value loss differentiates through the policy, its backbone and
    /// the value head, agreeing with central finite differences (first minibatch, where the
    /// ratio is 1 and no clip is active).
    #[test]
    fn ppo_loss_gradient_matches_finite_differences() {
        let sft = testutil::sft_tensors(20);
        let ppo = Ppo::new(
            &tiny_config(),
            &sft,
            config(1),
            Some(EOS),
            PAD,
            &Device::Cpu,
        )
        .unwrap();
        let scorer = FnScorer(testutil::oracle);
        let mut rng = ppo.state.rng().unwrap();
        let (ex, _, _) = ppo
            .collect(&testutil::prompts(20, 2), &scorer, &mut rng)
            .unwrap();
        // the value head starts at zero: give it a value so its gradient is informative
        ppo.models
            .params
            .var("value_head.bias")
            .unwrap()
            .set(&Tensor::new(&[0.3f32], &Device::Cpu).unwrap())
            .unwrap();
        let idx: Vec<usize> = (0..8).collect();
        let loss = |p: &Ppo| p.minibatch_loss(&ex, &idx).unwrap().0;
        let grads = loss(&ppo).backward().unwrap();
        let mut checked = 0;
        for name in [
            "value_head.weight",
            "value_head.bias",
            "h.0.attn.v.weight",
            "h.0.ln_2.weight",
            "wte.weight",
        ] {
            let var = ppo.models.params.var(name).unwrap().clone();
            let g: Vec<f32> = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut order: Vec<usize> = (0..g.len()).collect();
            order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
            for &i in order.iter().take(2) {
                let orig = var.as_tensor().copy().unwrap();
                let at = |d: f32| -> f64 {
                    let mut v: Vec<f32> = orig.flatten_all().unwrap().to_vec1().unwrap();
                    v[i] += d;
                    var.set(&Tensor::from_vec(v, orig.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    let l = f64::from(loss(&ppo).to_scalar::<f32>().unwrap());
                    var.set(&orig).unwrap();
                    l
                };
                let eps = 5e-3f32;
                let fd = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
                let ag = f64::from(g[i]);
                assert!(
                    (fd - ag).abs() < 2e-2 * (1.0 + fd.abs())
                        && (fd - ag).abs() < 0.15 * fd.abs().max(1e-2),
                    "{name}[{i}]: finite difference {fd} vs autograd {ag}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 9); // 2 per tensor, 1 for the scalar bias
    }

    /// With the oracle as the reward, PPO raises the mean reward of its rollouts.
    #[test]
    fn ppo_raises_the_reward() {
        let sft = testutil::sft_tensors(30);
        let mut ppo = Ppo::new(
            &tiny_config(),
            &sft,
            config(14),
            Some(EOS),
            PAD,
            &Device::Cpu,
        )
        .unwrap();
        let prompts = testutil::prompts(40, 5);
        ppo.train(&prompts, &FnScorer(testutil::oracle), None, None, false)
            .unwrap();
        let h = &ppo.state.history;
        assert_eq!(h.len(), 14);
        assert_eq!(ppo.state.optimizer_steps, 14 * 4);
        let mean = |s: &[IterationStats]| s.iter().map(|x| x.reward).sum::<f64>() / s.len() as f64;
        let (first, last) = (mean(&h[..3]), mean(&h[11..]));
        assert!(
            last > first + 0.15,
            "reward {first:.3} → {last:.3}: {:?}",
            h.iter().map(|x| x.reward).collect::<Vec<_>>()
        );
        assert!(h.iter().all(|x| x.kl.is_finite() && x.kl_coef > 0.0));
    }

    /// Two runs with the same seed end with identical weights; a run killed after 2 of 4
    /// iterations and resumed from its checkpoint too. Sampling with temperature, top-k and
    /// top-p inside the loop.
    #[test]
    fn deterministic_and_resumes_bitwise() {
        let sft = testutil::sft_tensors(10);
        let prompts = testutil::prompts(20, 6);
        let mut cfg = config(4);
        cfg.sampling = Sampling {
            temperature: 0.9,
            top_k: 8,
            top_p: 0.95,
        };
        let scorer = FnScorer(testutil::oracle);
        let run = |root: Option<&Path>, max: Option<usize>| {
            let mut p = Ppo::new(
                &tiny_config(),
                &sft,
                cfg.clone(),
                Some(EOS),
                PAD,
                &Device::Cpu,
            )
            .unwrap();
            p.train(&prompts, &scorer, root, max, false).unwrap();
            p
        };
        let a = run(None, None);
        let b = run(None, None);
        let wa = a.models.params.to_tensors().unwrap();
        assert_eq!(
            max_weight_diff(&wa, &b.models.params.to_tensors().unwrap()),
            0.0
        );
        assert_eq!(a.state, b.state);
        let dir = std::env::temp_dir().join(format!("edgeloop-ppo-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = run(Some(&dir), Some(2));
        assert_eq!(first.state.iteration, 2);
        let resumed = run(Some(&dir), None);
        assert_eq!(resumed.state.iteration, 4);
        assert_eq!(
            max_weight_diff(&wa, &resumed.models.params.to_tensors().unwrap()),
            0.0
        );
        assert_eq!(a.state, resumed.state);
        // the policy moved away from SFT
        let pol = a.models.policy_tensors().unwrap();
        assert!(max_weight_diff(&pol, &sft) > 0.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_settings_are_errors() {
        let sft = testutil::sft_tensors(1);
        for bad in [
            PpoConfig {
                epochs: 0,
                ..config(1)
            },
            PpoConfig {
                clip_range: 0.0,
                ..config(1)
            },
            PpoConfig {
                lam: 1.5,
                ..config(1)
            },
        ] {
            assert!(Ppo::new(&tiny_config(), &sft, bad, Some(EOS), PAD, &Device::Cpu).is_err());
        }
        let mut missing = sft.clone();
        missing.remove("ln_f.weight");
        assert!(Ppo::new(
            &tiny_config(),
            &missing,
            config(1),
            Some(EOS),
            PAD,
            &Device::Cpu
        )
        .is_err());
    }
}

//! The reward model: a GPT backbone (initialized from the SFT policy) with a scalar head read at
//! the last real token, trained on preference pairs with the Bradley–Terry loss
//! `−log σ(r(chosen) − r(rejected))` (Christiano et al. 2017; Ouyang et al. 2022).

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::rollout::Rollout;
use super::state;
use crate::models::layers::{Builder, Linear};
use crate::models::{BuildOptions, Gpt, GptConfig, Params};
use crate::optim::AdamW;
use crate::train::tasks::Preference;
use crate::train::{self, RunOptions, Task, TrainConfig, TrainState};
use crate::{Result, TrainerError};

/// Parameter-name prefix of the scalar head.
pub const HEAD: &str = "reward_head";

/// What a reward-model checkpoint's `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RewardModelConfig {
    /// The backbone.
    pub backbone: GptConfig,
    /// Always `"last_token_scalar"`: the head reads the final hidden state of the last real token.
    pub head: String,
}

impl RewardModelConfig {
    /// The config of a reward model on `backbone`.
    pub fn new(backbone: &GptConfig) -> Self {
        Self {
            backbone: GptConfig {
                num_labels: None,
                ..backbone.clone()
            },
            head: "last_token_scalar".into(),
        }
    }
}

/// GPT backbone + scalar head.
#[derive(Debug)]
pub struct RewardModel {
    /// The backbone.
    pub gpt: Gpt,
    /// `[1, C]` head (with bias).
    pub head: Linear,
    /// Padding token.
    pub pad: u32,
}

impl RewardModel {
    /// Builds the model on `params` (backbone names as the GPT's, head under [`HEAD`]); a store
    /// holding an SFT policy gives the backbone its weights, the head is drawn from the store's
    /// seed.
    pub fn new(config: &RewardModelConfig, params: &mut Params, pad: u32) -> Result<Self> {
        let gpt = Gpt::new(&config.backbone, params, BuildOptions::default())?;
        let mut b = Builder::new(params, BuildOptions::default());
        let head = Linear::new(&mut b, HEAD, config.backbone.n_embd, 1, true, 0.02)?;
        Ok(Self { gpt, head, pad })
    }

    /// Scores `[B]` of whole sequences (prompt ++ response), right-padded internally.
    pub fn scores(&self, sequences: &[Vec<u32>]) -> Result<Tensor> {
        let t = sequences.iter().map(Vec::len).max().unwrap_or(0);
        if t == 0 || sequences.iter().any(Vec::is_empty) {
            return Err(TrainerError::Data(
                "the reward model scores non-empty sequences".into(),
            ));
        }
        let ctx = self.gpt.config.block_size;
        if t > ctx {
            return Err(TrainerError::Data(format!(
                "a sequence of {t} tokens is longer than the reward model's context ({ctx})"
            )));
        }
        let b = sequences.len();
        let mut ids = Vec::with_capacity(b * t);
        let mut last = Vec::with_capacity(b);
        for (r, s) in sequences.iter().enumerate() {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(self.pad, t - s.len()));
            last.push((r * t + s.len() - 1) as u32);
        }
        let device = self.gpt.wte.device();
        let ids = Tensor::from_vec(ids, (b, t), device)?;
        let h = self.gpt.hidden(&ids)?;
        let c = h.dim(2)?;
        let rows = h
            .reshape((b * t, c))?
            .index_select(&Tensor::from_vec(last, b, device)?, 0)?;
        Ok(self.head.forward(&rows)?.reshape(b)?)
    }

    /// Scores as numbers, in chunks of `chunk` sequences.
    pub fn score_values(&self, sequences: &[Vec<u32>], chunk: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(sequences.len());
        for c in sequences.chunks(chunk.max(1)) {
            out.extend(self.scores(c)?.detach().to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// Mean Bradley–Terry loss over `pairs` (prompt, chosen, rejected).
    pub fn loss(&self, pairs: &[Preference]) -> Result<Tensor> {
        let (c, r) = split(pairs);
        let margin = (self.scores(&c)? - self.scores(&r)?)?;
        bradley_terry(&margin)
    }

    /// Share of `pairs` whose chosen response scores higher than the rejected one (ties count
    /// half).
    pub fn pairwise_accuracy(&self, pairs: &[Preference]) -> Result<f64> {
        if pairs.is_empty() {
            return Err(TrainerError::Data("no pairs to measure accuracy on".into()));
        }
        let (c, r) = split(pairs);
        let sc = self.score_values(&c, 64)?;
        let sr = self.score_values(&r, 64)?;
        let hits: f64 = sc
            .iter()
            .zip(&sr)
            .map(|(a, b)| match a.partial_cmp(b) {
                Some(std::cmp::Ordering::Greater) => 1.0,
                Some(std::cmp::Ordering::Equal) => 0.5,
                _ => 0.0,
            })
            .sum();
        Ok(hits / pairs.len() as f64)
    }
}

/// The reward a policy maximizes: a score per rollout.
pub trait Scorer {
    /// Scores of `rollouts` (their responses end with `eos` when they ended).
    fn score(&self, rollouts: &[Rollout], eos: Option<u32>) -> Result<Vec<f64>>;
}

impl Scorer for RewardModel {
    fn score(&self, rollouts: &[Rollout], eos: Option<u32>) -> Result<Vec<f64>> {
        let seqs: Vec<Vec<u32>> = rollouts.iter().map(|r| r.sequence(eos)).collect();
        Ok(self
            .score_values(&seqs, 64)?
            .into_iter()
            .map(f64::from)
            .collect())
    }
}

/// A scoring function of `(prompt, response without end-of-text)` used directly as the reward
/// (e.g. the oracle itself: the upper bound a reward model can reach).
pub struct FnScorer<F>(pub F);

impl<F: Fn(&[u32], &[u32]) -> f64> Scorer for FnScorer<F> {
    fn score(&self, rollouts: &[Rollout], _eos: Option<u32>) -> Result<Vec<f64>> {
        Ok(rollouts
            .iter()
            .map(|r| (self.0)(&r.prompt, &r.response))
            .collect())
    }
}

fn split(pairs: &[Preference]) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let join = |p: &[u32], x: &[u32]| p.iter().chain(x).copied().collect::<Vec<u32>>();
    (
        pairs.iter().map(|(p, c, _)| join(p, c)).collect(),
        pairs.iter().map(|(p, _, r)| join(p, r)).collect(),
    )
}

/// `mean(−log σ(margin))`, computed stably as `relu(−m) + log(1 + e^{−|m|})`.
pub fn bradley_terry(margin: &Tensor) -> Result<Tensor> {
    let sp = (margin.neg()?.relu()? + (margin.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok(sp.mean_all()?)
}

/// Reward-model training as a [`Task`] of the common loop.
#[derive(Debug)]
pub struct RewardTask {
    /// The model.
    pub model: RewardModel,
    /// Training pairs.
    pub train: Vec<Preference>,
    /// Held-out pairs.
    pub val: Vec<Preference>,
    /// Pairs per micro-batch.
    pub batch_size: usize,
}

impl Task for RewardTask {
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let ex: Vec<Preference> = self
            .train
            .choose_multiple(rng, self.batch_size)
            .cloned()
            .collect();
        if ex.is_empty() {
            return Err(TrainerError::Data("no training preference pairs".into()));
        }
        self.model.loss(&ex)
    }

    fn eval_loss(&mut self) -> Result<f32> {
        if self.val.is_empty() {
            return Err(TrainerError::Data("no held-out preference pairs".into()));
        }
        let mut total = 0f32;
        for c in self.val.chunks(64) {
            total += self.model.loss(c)?.to_scalar::<f32>()? * c.len() as f32;
        }
        Ok(total / self.val.len() as f32)
    }
}

/// A trained reward model with its parameters and history.
#[derive(Debug)]
pub struct TrainedReward {
    /// The model.
    pub model: RewardModel,
    /// Its parameters.
    pub params: Params,
    /// The run's state (losses, steps).
    pub state: TrainState,
    /// Pairwise accuracy on the held-out pairs.
    pub val_accuracy: f64,
    /// Pairwise accuracy on the training pairs.
    pub train_accuracy: f64,
}

/// Settings of [`train_reward_model`].
#[derive(Debug, Clone)]
pub struct RewardTraining {
    /// Loop settings (steps, schedule, clipping, seed, checkpoint period).
    pub train: TrainConfig,
    /// Pairs per micro-batch.
    pub batch_size: usize,
    /// Seed of the head's initialization.
    pub init_seed: u64,
    /// Checkpoints folder (resumes from its latest checkpoint when present).
    pub checkpoints: Option<std::path::PathBuf>,
    /// Stop after this many steps in this invocation.
    pub max_steps_this_run: Option<usize>,
    /// Progress bar.
    pub progress: bool,
}

/// Trains a reward model whose backbone starts from `backbone` (e.g. the SFT policy's tensors)
/// on `train`, validating on `val`; resumes from `settings.checkpoints` when it holds one.
pub fn train_reward_model(
    config: &RewardModelConfig,
    backbone: std::collections::HashMap<String, Tensor>,
    train: Vec<Preference>,
    val: Vec<Preference>,
    pad: u32,
    settings: &RewardTraining,
    device: &Device,
) -> Result<TrainedReward> {
    if train.is_empty() || val.is_empty() {
        return Err(TrainerError::Data(format!(
            "the reward model needs training and held-out pairs ({} and {})",
            train.len(),
            val.len()
        )));
    }
    let mut params = Params::from_tensors(
        backbone
            .into_iter()
            .filter(|(n, _)| !n.starts_with(HEAD) && !n.starts_with("classifier"))
            .collect(),
        device,
    )?;
    params.reseed(settings.init_seed);
    let model = RewardModel::new(config, &mut params, pad)?;
    let mut task = RewardTask {
        model,
        train,
        val,
        batch_size: settings.batch_size,
    };
    let mut opt = AdamW::new(params.trainable(), settings.train.optimizer.clone())?;
    let mut st = TrainState::new(settings.train.seed);
    if let Some(root) = &settings.checkpoints {
        if let Some(s) = state::resume_train(root, &params, &mut opt, config, device)? {
            st = s;
        }
    }
    let target = settings
        .checkpoints
        .as_ref()
        .map(|root| train::CheckpointTarget {
            root: root.clone(),
            model_config: config,
        });
    train::run(
        &mut task,
        &params,
        &mut opt,
        &settings.train,
        &mut st,
        target.as_ref(),
        &RunOptions {
            max_steps_this_run: settings.max_steps_this_run,
            progress: settings.progress,
        },
    )?;
    let val_accuracy = task.model.pairwise_accuracy(&task.val)?;
    let train_accuracy = task.model.pairwise_accuracy(&task.train)?;
    Ok(TrainedReward {
        model: task.model,
        params,
        state: st,
        val_accuracy,
        train_accuracy,
    })
}

/// Loads a reward model saved by [`save_reward_model`] (or a training checkpoint).
pub fn load_reward_model(dir: &Path, pad: u32, device: &Device) -> Result<(RewardModel, Params)> {
    let l = crate::checkpoint::load::<RewardModelConfig, serde_json::Value>(dir, device)?;
    let mut params = l.params;
    if params.var(&format!("{HEAD}.weight")).is_none() {
        return Err(TrainerError::Weights {
            name: format!("{HEAD}.weight"),
            reason: format!("missing from {}: not a reward model", dir.display()),
        });
    }
    let m = RewardModel::new(&l.config, &mut params, pad)?;
    Ok((m, params))
}

/// Saves a reward model (weights + config) to `dir`, atomically.
pub fn save_reward_model(dir: &Path, config: &RewardModelConfig, params: &Params) -> Result<()> {
    crate::checkpoint::save::<_, ()>(dir, params, config, None, None)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{self, tiny_config, PAD};
    use super::*;
    use crate::optim::Schedule;

    fn cfg() -> RewardModelConfig {
        RewardModelConfig::new(&tiny_config())
    }

    /// Autograd through the backbone, the last-token gather and the head agrees with central
    /// finite differences of the Bradley–Terry loss.
    #[test]
    fn bradley_terry_gradient_matches_finite_differences() {
        let mut params = Params::new(11, &Device::Cpu);
        let rm = RewardModel::new(&cfg(), &mut params, PAD).unwrap();
        let pairs = testutil::pairs(4, 3);
        let grads = rm.loss(&pairs).unwrap().backward().unwrap();
        let loss_at = |name: &str, i: usize, delta: f32| -> f64 {
            let var = params.var(name).unwrap();
            let orig = var.as_tensor().copy().unwrap();
            let mut v: Vec<f32> = orig.flatten_all().unwrap().to_vec1().unwrap();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, orig.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let l = rm.loss(&pairs).unwrap().to_scalar::<f32>().unwrap();
            var.set(&orig).unwrap();
            f64::from(l)
        };
        let mut checked = 0;
        for name in [
            "reward_head.weight",
            "reward_head.bias",
            "h.0.attn.q.weight",
            "h.0.mlp.fc.weight",
            "ln_f.weight",
            "wte.weight",
            "wpe.weight",
        ] {
            let var = params.var(name).unwrap();
            let g: Vec<f32> = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            // the coordinates with the largest gradients (small ones drown in f32 noise)
            let mut idx: Vec<usize> = (0..g.len()).collect();
            idx.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
            for &i in idx.iter().take(3) {
                let eps = 1e-2f32;
                let fd = (loss_at(name, i, eps) - loss_at(name, i, -eps)) / (2.0 * f64::from(eps));
                let ag = f64::from(g[i]);
                assert!(
                    (fd - ag).abs() < 2e-2 * (1.0 + fd.abs())
                        && (fd - ag).abs() < 0.1 * fd.abs().max(1e-2),
                    "{name}[{i}]: finite difference {fd} vs autograd {ag}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 19); // 3 per tensor, 1 for the scalar bias
    }

    /// The score reads the last real token: padding after it changes nothing.
    #[test]
    fn scores_ignore_padding_and_reject_bad_input() {
        let mut params = Params::new(2, &Device::Cpu);
        let rm = RewardModel::new(&cfg(), &mut params, PAD).unwrap();
        let a = vec![3u32, 4, 5];
        let alone = rm.score_values(std::slice::from_ref(&a), 8).unwrap();
        let with = rm
            .score_values(&[a.clone(), vec![2, 3, 4, 5, 6, 7, 8]], 8)
            .unwrap();
        assert!((alone[0] - with[0]).abs() < 1e-5);
        assert!(rm.scores(&[vec![]]).is_err());
        assert!(rm.scores(&[vec![2; 40]]).is_err());
        assert!(rm.scores(&[vec![99]]).is_err());
    }

    fn settings(steps: usize, root: Option<std::path::PathBuf>) -> RewardTraining {
        RewardTraining {
            train: TrainConfig {
                steps,
                grad_accum: 1,
                schedule: Schedule {
                    lr: 1e-2,
                    min_lr: 1e-3,
                    warmup_steps: 5,
                    decay_steps: steps,
                },
                optimizer: Default::default(),
                clip_grad_norm: Some(1.0),
                eval_every: 0,
                patience: None,
                checkpoint_every: 10,
                seed: 5,
            },
            batch_size: 16,
            init_seed: 77,
            checkpoints: root,
            max_steps_this_run: None,
            progress: false,
        }
    }

    /// The reward model learns the synthetic preference (the chosen response names the token
    /// the prompt asks for): held-out pairwise accuracy well above chance.
    #[test]
    fn learns_a_synthetic_preference() {
        let (_g, sft) = testutil::tiny_gpt(1);
        let all = testutil::pairs(360, 8);
        let (val, train) = all.split_at(60);
        let r = train_reward_model(
            &cfg(),
            sft.to_tensors().unwrap(),
            train.to_vec(),
            val.to_vec(),
            PAD,
            &settings(120, None),
            &Device::Cpu,
        )
        .unwrap();
        assert!(
            r.val_accuracy >= 0.8,
            "held-out accuracy {} (train {})",
            r.val_accuracy,
            r.train_accuracy
        );
    }

    /// Killed after 7 steps and resumed: the same final weights as an uninterrupted run.
    #[test]
    fn resumes_bitwise() {
        let (_g, sft) = testutil::tiny_gpt(1);
        let all = testutil::pairs(80, 9);
        let (val, train) = all.split_at(16);
        let dir = std::env::temp_dir().join(format!("edgeloop-rm-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let run = |root: Option<std::path::PathBuf>, max: Option<usize>| {
            let mut s = settings(14, root);
            s.max_steps_this_run = max;
            train_reward_model(
                &cfg(),
                sft.to_tensors().unwrap(),
                train.to_vec(),
                val.to_vec(),
                PAD,
                &s,
                &Device::Cpu,
            )
            .unwrap()
        };
        let whole = run(None, None);
        let first = run(Some(dir.clone()), Some(7));
        assert_eq!(first.state.step, 7);
        let resumed = run(Some(dir.clone()), None);
        assert_eq!(resumed.state.step, 14);
        for (name, v) in whole.params.iter() {
            let a: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = resumed
                .params
                .var(name)
                .unwrap()
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(a, b, "{name}");
        }
        let (loaded, _) = {
            save_reward_model(&dir.join("final"), &cfg(), &resumed.params).unwrap();
            load_reward_model(&dir.join("final"), PAD, &Device::Cpu).unwrap()
        };
        let s1 = loaded.score_values(&[vec![3, 4, 5]], 4).unwrap();
        let s2 = resumed.model.score_values(&[vec![3, 4, 5]], 4).unwrap();
        assert_eq!(s1, s2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

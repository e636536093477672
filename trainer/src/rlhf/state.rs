//! Run state of the on-policy trainers and the resume logic shared by every RLHF job.
//!
//! Checkpoints use the trainer's format ([`crate::checkpoint`]): `step-NNNNNN` folders (here the
//! number is the iteration) with weights, config, AdamW moments and `state.json`, and the
//! `latest` pointer. An on-policy run is checkpointed between iterations, where everything that
//! decides the future — weights, optimizer moments, the RNG's position and the KL coefficient —
//! is saved, so a resumed run repeats the uninterrupted one bit for bit on CPU.

use std::path::{Path, PathBuf};

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::checkpoint;
use crate::models::Params;
use crate::optim::AdamW;
use crate::train::{self, TrainState};
use crate::{Result, TrainerError};

/// What one on-policy iteration measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// Iteration number (1-based).
    pub iteration: usize,
    /// Optimizer steps done after this iteration.
    pub optimizer_steps: usize,
    /// Mean reward-function score of the iteration's rollouts (before the KL penalty).
    pub reward: f64,
    /// Mean sequence-level KL(π ‖ π_ref) of the rollouts (sum over tokens of the log-ratio).
    pub kl: f64,
    /// KL coefficient used in this iteration.
    pub kl_coef: f64,
    /// Mean policy loss over the iteration's minibatches.
    pub policy_loss: f64,
    /// Mean value loss (PPO only).
    pub value_loss: Option<f64>,
    /// Share of action tokens whose ratio was clipped (PPO only).
    pub clip_fraction: Option<f64>,
    /// Mean response length in tokens (actions).
    pub response_len: f64,
}

/// Progress of an on-policy run; saved in its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlState {
    /// Iterations done.
    pub iteration: usize,
    /// Optimizer steps done.
    pub optimizer_steps: usize,
    /// Seed of the run's RNG.
    pub rng_seed: u64,
    /// Position of the RNG in its stream (decimal: a u128).
    pub rng_word_pos: String,
    /// Current KL coefficient.
    pub kl_coef: f64,
    /// Per-iteration measurements.
    pub history: Vec<IterationStats>,
}

impl RlState {
    /// A fresh state.
    pub fn new(seed: u64, kl_coef: f64) -> Self {
        Self {
            iteration: 0,
            optimizer_steps: 0,
            rng_seed: seed,
            rng_word_pos: "0".into(),
            kl_coef,
            history: Vec::new(),
        }
    }

    /// The RNG at the saved position.
    pub fn rng(&self) -> Result<ChaCha8Rng> {
        let pos: u128 = self
            .rng_word_pos
            .parse()
            .map_err(|_| TrainerError::config("rng_word_pos", "not a non-negative integer"))?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.rng_seed);
        rng.set_word_pos(pos);
        Ok(rng)
    }

    /// Records the RNG's position.
    pub fn save_rng(&mut self, rng: &ChaCha8Rng) {
        self.rng_word_pos = rng.get_word_pos().to_string();
    }
}

/// Where an on-policy run checkpoints.
#[derive(Debug, Clone)]
pub struct ResumeTarget<'a, C> {
    /// Folder of `step-NNNNNN` checkpoints and the `latest` pointer.
    pub root: &'a Path,
    /// Config written beside the weights (checked on resume).
    pub config: &'a C,
}

/// Writes the checkpoint of `state.iteration`.
pub fn save_rl<C: Serialize>(
    target: &ResumeTarget<C>,
    params: &Params,
    opt: &AdamW,
    state: &RlState,
) -> Result<PathBuf> {
    let dir = target.root.join(train::checkpoint_name(state.iteration));
    let mut full = serde_json::to_value(state).map_err(|e| TrainerError::Json {
        path: dir.clone(),
        source: e,
    })?;
    if let Some(o) = full.as_object_mut() {
        o.insert("optimizer_t".into(), opt.t.into());
    }
    checkpoint::save(&dir, params, target.config, Some(opt), Some(&full))?;
    checkpoint::mark_latest(target.root, &dir)?;
    Ok(dir)
}

/// Loads the latest checkpoint under `root` into `params` and `opt` (same names, same config),
/// returning its state JSON; `None` when there is no checkpoint yet.
fn load_into<C: DeserializeOwned + PartialEq>(
    root: &Path,
    params: &Params,
    opt: &mut AdamW,
    config: &C,
    device: &Device,
) -> Result<Option<serde_json::Value>> {
    if !root.exists() {
        return Ok(None);
    }
    let Some(dir) = checkpoint::latest(root)? else {
        return Ok(None);
    };
    let l = checkpoint::load::<C, serde_json::Value>(&dir, device)?;
    if &l.config != config {
        return Err(TrainerError::config(
            "resume",
            format!("{} holds a different config", dir.display()),
        ));
    }
    for (name, var) in params.iter() {
        let t = l.params.var(name).ok_or_else(|| TrainerError::Weights {
            name: name.clone(),
            reason: format!("missing from {}", dir.display()),
        })?;
        var.set(t.as_tensor())?;
    }
    let state = l.state.ok_or_else(|| {
        TrainerError::config(
            "checkpoint",
            format!("{} has no state.json: cannot resume", dir.display()),
        )
    })?;
    let t = state
        .get("optimizer_t")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize;
    let moments = l.optimizer.ok_or_else(|| {
        TrainerError::config(
            "checkpoint",
            format!("{} has no optimizer state: cannot resume", dir.display()),
        )
    })?;
    opt.load_state(&moments, t)?;
    Ok(Some(state))
}

/// Resumes an on-policy run from the latest checkpoint under `root`, if any.
pub fn resume_rl<C: DeserializeOwned + PartialEq>(
    root: &Path,
    params: &Params,
    opt: &mut AdamW,
    config: &C,
    device: &Device,
) -> Result<Option<RlState>> {
    match load_into(root, params, opt, config, device)? {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| TrainerError::Json {
                path: root.join(checkpoint::STATE_FILE),
                source: e,
            }),
    }
}

/// Resumes a job of the common loop ([`train::run`]) from the latest checkpoint under `root`.
pub fn resume_train<C: DeserializeOwned + PartialEq>(
    root: &Path,
    params: &Params,
    opt: &mut AdamW,
    config: &C,
    device: &Device,
) -> Result<Option<TrainState>> {
    match load_into(root, params, opt, config, device)? {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| TrainerError::Json {
                path: root.join(checkpoint::STATE_FILE),
                source: e,
            }),
    }
}

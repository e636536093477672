//! The training loop: gradient accumulation, clipping, AdamW with warmup + cosine schedule,
//! periodic evaluation with early stopping, progress bar, periodic atomic checkpoints, and
//! bitwise-reproducible resume on CPU.

pub mod gpt_engine;
pub mod jobs;
pub mod objectives;
pub mod tasks;

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::models::Params;
use crate::optim::{self, AdamW, AdamWConfig, Schedule};
use crate::{Result, TrainerError};

/// What the loop needs from a task: a loss on a fresh micro-batch, and an evaluation loss.
pub trait Task {
    /// Loss on one micro-batch, drawn with `rng` (the only source of randomness allowed, so
    /// that resumed runs repeat the same batches).
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor>;
    /// Loss on held-out data (lower is better). Must not consume the training RNG.
    fn eval_loss(&mut self) -> Result<f32>;
    /// The loss on one micro-batch and the gradients of the parameters, computed without
    /// candle's autograd (see [`gpt_engine`]); `None` where the task has no such path, and
    /// then it must not have touched `rng`. Where it is `Some`, the batch is drawn from `rng`
    /// exactly as [`Self::train_loss`] draws it (resumed runs repeat the same batches).
    fn train_loss_and_grads(
        &mut self,
        _rng: &mut ChaCha8Rng,
    ) -> Result<Option<(f32, candle_core::backprop::GradStore)>> {
        Ok(None)
    }
}

/// Training-loop settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Micro-batches per optimizer step (gradients averaged).
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// AdamW settings.
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Evaluate every this many steps (0: only at the end).
    #[serde(default)]
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement.
    #[serde(default)]
    pub patience: Option<usize>,
    /// Checkpoint every this many steps (0: only at the end), when a folder is given.
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Seed of the batch-sampling RNG.
    #[serde(default)]
    pub seed: u64,
}

fn one() -> usize {
    1
}

impl TrainConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.grad_accum == 0 {
            return Err(TrainerError::config("grad_accum", "must be at least 1"));
        }
        if !(self.schedule.lr > 0.0 && self.schedule.lr.is_finite()) {
            return Err(TrainerError::config(
                "schedule.lr",
                "must be a positive number",
            ));
        }
        if matches!(self.clip_grad_norm, Some(c) if c <= 0.0 || !c.is_finite()) {
            return Err(TrainerError::config("clip_grad_norm", "must be positive"));
        }
        Ok(())
    }
}

/// Progress of a run; saved in checkpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: usize,
    /// Seed of the batch RNG.
    pub rng_seed: u64,
    /// Position of the batch RNG in its stream (decimal string: it is a u128).
    pub rng_word_pos: String,
    /// Best evaluation loss so far.
    pub best_eval: Option<f32>,
    /// Evaluations since the best one.
    pub evals_since_best: usize,
    /// `(step, mean training loss of that step)`.
    pub train_losses: Vec<(usize, f32)>,
    /// `(step, evaluation loss)`.
    pub eval_losses: Vec<(usize, f32)>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

impl TrainState {
    /// A fresh state whose batch RNG starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng_seed: seed,
            rng_word_pos: "0".into(),
            ..Default::default()
        }
    }

    fn rng(&self) -> Result<ChaCha8Rng> {
        let pos: u128 = self
            .rng_word_pos
            .parse()
            .map_err(|_| TrainerError::config("rng_word_pos", "not a non-negative integer"))?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.rng_seed);
        rng.set_word_pos(pos);
        Ok(rng)
    }

    /// Whether the run has finished (all steps done or stopped early).
    pub fn finished(&self, cfg: &TrainConfig) -> bool {
        self.stopped_early || self.step >= cfg.steps
    }
}

/// Where and what to checkpoint.
#[derive(Debug)]
pub struct CheckpointTarget<'a, C: Serialize> {
    /// Folder holding `step-NNNNNN` checkpoints and the `latest` pointer.
    pub root: PathBuf,
    /// Model config written beside the weights.
    pub model_config: &'a C,
}

/// Options of one invocation of [`run`].
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Stop after this many steps in this invocation (simulates an interrupted run).
    pub max_steps_this_run: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
}

/// Folder name of the checkpoint at `step`.
pub fn checkpoint_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// Trains `task` from `state` until `cfg.steps` (or early stop, or the invocation limit),
/// updating `opt`'s variables in place. Checkpoints go under `ckpt.root` when given.
pub fn run<C: Serialize>(
    task: &mut dyn Task,
    params: &Params,
    opt: &mut AdamW,
    cfg: &TrainConfig,
    state: &mut TrainState,
    ckpt: Option<&CheckpointTarget<C>>,
    options: &RunOptions,
) -> Result<()> {
    cfg.validate()?;
    let mut rng = state.rng()?;
    let bar = if options.progress {
        let b = ProgressBar::new(cfg.steps as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps {per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_position(state.step as u64);
        b
    } else {
        ProgressBar::hidden()
    };
    let mut done_here = 0usize;
    while !state.finished(cfg) {
        if options.max_steps_this_run.is_some_and(|m| done_here >= m) {
            break;
        }
        let mut grads = None;
        let mut loss_sum = 0f32;
        for _ in 0..cfg.grad_accum {
            let diverged = |l: f32| TrainerError::Diverged {
                step: state.step,
                loss: l,
            };
            let (l, g) = match task.train_loss_and_grads(&mut rng)? {
                Some((l, g)) if l.is_finite() => (l, g),
                Some((l, _)) => return Err(diverged(l)),
                None => {
                    let loss = task.train_loss(&mut rng)?;
                    let l = loss.to_scalar::<f32>()?;
                    if !l.is_finite() {
                        return Err(diverged(l));
                    }
                    (l, loss.backward()?)
                }
            };
            loss_sum += l;
            grads = Some(optim::accumulate(grads, g, opt.vars())?);
        }
        let grads =
            grads.ok_or_else(|| TrainerError::config("grad_accum", "must be at least 1"))?;
        let mut scale = 1.0 / cfg.grad_accum as f64;
        if let Some(max) = cfg.clip_grad_norm {
            let norm = opt.grad_norm(&grads)? * scale;
            if norm > max {
                scale *= max / norm;
            }
        }
        opt.step(&grads, cfg.schedule.lr_at(state.step), scale)?;
        state.step += 1;
        done_here += 1;
        let mean = loss_sum / cfg.grad_accum as f32;
        state.train_losses.push((state.step, mean));
        bar.set_position(state.step as u64);
        bar.set_message(format!("loss {mean:.4}"));
        let last = state.step >= cfg.steps;
        if (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every)) || last {
            let e = task.eval_loss()?;
            state.eval_losses.push((state.step, e));
            match state.best_eval {
                Some(b) if e >= b => state.evals_since_best += 1,
                _ => {
                    state.best_eval = Some(e);
                    state.evals_since_best = 0;
                }
            }
            if cfg.patience.is_some_and(|p| state.evals_since_best >= p) {
                state.stopped_early = true;
            }
            bar.println(format!("step {}: train {mean:.4}, eval {e:.4}", state.step));
        }
        state.rng_word_pos = rng.get_word_pos().to_string();
        if let Some(c) = ckpt {
            let periodic =
                cfg.checkpoint_every > 0 && state.step.is_multiple_of(cfg.checkpoint_every);
            if periodic || state.finished(cfg) {
                save_checkpoint(&c.root, params, c.model_config, opt, state)?;
            }
        }
    }
    state.rng_word_pos = rng.get_word_pos().to_string();
    bar.finish_and_clear();
    Ok(())
}

/// Writes the checkpoint of `state.step` under `root` and points `latest` to it.
pub fn save_checkpoint<C: Serialize>(
    root: &Path,
    params: &Params,
    model_config: &C,
    opt: &AdamW,
    state: &TrainState,
) -> Result<PathBuf> {
    let dir = root.join(checkpoint_name(state.step));
    let mut full = serde_json::to_value(state).map_err(|e| TrainerError::Json {
        path: dir.clone(),
        source: e,
    })?;
    if let Some(obj) = full.as_object_mut() {
        obj.insert("optimizer_t".into(), opt.t.into());
    }
    checkpoint::save(&dir, params, model_config, Some(opt), Some(&full))?;
    checkpoint::mark_latest(root, &dir)?;
    Ok(dir)
}

/// Draws the training and evaluation loss curves of `state` as a PNG at `path`.
pub fn plot_losses(state: &TrainState, title: &str, path: &Path) -> Result<()> {
    use edgeloop_eval::plot::{line_chart_png, ChartOptions, Series};
    let train: Vec<(f64, f64)> = state
        .train_losses
        .iter()
        .map(|&(s, l)| (s as f64, l as f64))
        .collect();
    let eval: Vec<(f64, f64)> = state
        .eval_losses
        .iter()
        .map(|&(s, l)| (s as f64, l as f64))
        .collect();
    let mut series = vec![Series::new("train", train)];
    if !eval.is_empty() {
        series.push(Series::new("eval", eval));
    }
    let opts = ChartOptions::new(title)
        .x_label("optimizer step")
        .y_label("loss (nats)");
    line_chart_png(path, &opts, &series)
        .map_err(|e| TrainerError::Plot(format!("{}: {e}", path.display())))
}

/// Restores an optimizer and training state from a checkpoint's parts.
pub fn restore(
    opt: &mut AdamW,
    optimizer: Option<&std::collections::HashMap<String, Tensor>>,
    state: Option<serde_json::Value>,
) -> Result<TrainState> {
    let state = state.ok_or_else(|| {
        TrainerError::config(
            "checkpoint",
            "has no state.json: it is weights only, cannot resume",
        )
    })?;
    let t = state
        .get("optimizer_t")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize;
    let opt_state = optimizer.ok_or_else(|| {
        TrainerError::config("checkpoint", "has no optimizer.safetensors: cannot resume")
    })?;
    opt.load_state(opt_state, t)?;
    serde_json::from_value(state).map_err(|e| TrainerError::Json {
        path: PathBuf::from(checkpoint::STATE_FILE),
        source: e,
    })
}

#[cfg(test)]
mod tests;

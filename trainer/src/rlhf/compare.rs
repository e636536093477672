//! SFT only vs DPO vs PPO (vs RLOO) on the same data and the same optimizer-step budget.
//!
//! The data: training prompts, held-out evaluation prompts, and preference pairs (training and
//! held-out). DPO trains on the pairs directly; the reward model trains on the same pairs, and
//! PPO and RLOO optimize its score on the training prompts. Every method starts from the same
//! SFT weights and gets the same number of optimizer steps.
//!
//! Each method is evaluated every `eval_every` steps on the held-out prompts:
//! - reward-model score and oracle score of sampled responses (temperature 1, the same seed for
//!   every method and point), and the sampled estimate of KL(π ‖ π_SFT): the mean over those
//!   samples of `Σ_t log π(a_t) − log π_SFT(a_t)`;
//! - greedy responses judged by the [`Oracle`] against the SFT model's greedy responses to the
//!   same prompts: wins, ties and losses; win rate = (wins + ties / 2) / prompts.
//!
//! The oracle is passed in: the demo's user lives in the root crate (`src/demo/assistant`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ppo::{Ppo, PpoConfig};
use super::reward::{self, RewardModel, RewardModelConfig, RewardTraining, Scorer};
use super::rloo::{Rloo, RlooConfig};
use super::rollout::{self, ActionBatch, Rollout};
use super::sample::{self, Sampling};
use super::state::IterationStats;
use crate::models::{BuildOptions, Gpt, GptConfig, Params};
use crate::optim::{AdamW, AdamWConfig, Schedule};
use crate::train::tasks::{DpoTask, Preference};
use crate::train::{self, RunOptions, TrainConfig, TrainState};
use crate::{Result, TrainerError};

/// The judge of the comparison.
pub trait Oracle {
    /// Score of `response` (without end-of-text) to `prompt`; higher is better.
    fn score(&self, prompt: &[u32], response: &[u32]) -> f64;
}

impl<F: Fn(&[u32], &[u32]) -> f64> Oracle for F {
    fn score(&self, prompt: &[u32], response: &[u32]) -> f64 {
        self(prompt, response)
    }
}

/// DPO settings of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpoSettings {
    /// β.
    pub beta: f64,
    /// Learning rate (constant).
    pub lr: f64,
    /// Pairs per optimizer step.
    pub batch_size: usize,
}

/// Settings of [`compare`].
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Optimizer steps each method gets.
    pub steps: usize,
    /// Steps between evaluations.
    pub eval_every: usize,
    /// Most tokens per generated response.
    pub max_new_tokens: usize,
    /// Sampled responses per evaluation prompt.
    pub eval_samples: usize,
    /// Seed of the evaluation's draws.
    pub seed: u64,
    /// Reward-model training.
    pub reward: RewardTraining,
    /// DPO.
    pub dpo: DpoSettings,
    /// PPO (its `iterations` is set from `steps`).
    pub ppo: PpoConfig,
    /// RLOO, when compared (its `iterations` is set to `steps`).
    pub rloo: Option<RlooConfig>,
    /// Progress bars.
    pub progress: bool,
}

/// The comparison's data (token ids).
#[derive(Debug, Clone)]
pub struct CompareData {
    /// Prompts PPO and RLOO sample on.
    pub train_prompts: Vec<Vec<u32>>,
    /// Held-out prompts of the evaluation.
    pub eval_prompts: Vec<Vec<u32>>,
    /// Preference pairs for DPO and the reward model (responses end with end-of-text).
    pub train_pairs: Vec<Preference>,
    /// Held-out pairs (reward-model accuracy, DPO validation).
    pub val_pairs: Vec<Preference>,
}

/// One evaluation of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Optimizer steps done.
    pub step: usize,
    /// Mean reward-model score of sampled responses.
    pub rm_score: f64,
    /// Mean oracle score of sampled responses.
    pub oracle_sampled: f64,
    /// Mean oracle score of greedy responses.
    pub oracle_greedy: f64,
    /// Sampled estimate of the sequence-level KL to the SFT reference (nats).
    pub kl: f64,
    /// Greedy responses better than SFT's by the oracle.
    pub wins: usize,
    /// Equal.
    pub ties: usize,
    /// Worse.
    pub losses: usize,
    /// `(wins + ties / 2) / prompts`.
    pub win_rate: f64,
}

/// One method's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    /// `sft`, `dpo`, `ppo` or `rloo`.
    pub method: String,
    /// Optimizer steps done.
    pub steps: usize,
    /// Rollouts generated during training (0 for SFT and DPO).
    pub rollouts: usize,
    /// Wall-clock seconds of training (evaluations excluded).
    pub train_seconds: f64,
    /// The final evaluation.
    pub last: EvalPoint,
    /// Every evaluation.
    pub curve: Vec<EvalPoint>,
    /// Per-iteration training measurements (PPO, RLOO).
    pub history: Vec<IterationStats>,
}

/// The reward model's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardSummary {
    /// Training pairs.
    pub train_pairs: usize,
    /// Held-out pairs.
    pub val_pairs: usize,
    /// Pairwise accuracy on the training pairs.
    pub train_accuracy: f64,
    /// Pairwise accuracy on the held-out pairs.
    pub val_accuracy: f64,
    /// Optimizer steps.
    pub steps: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// What [`compare`] reports (also `report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// Optimizer-step budget of each method.
    pub steps: usize,
    /// Evaluation prompts.
    pub eval_prompts: usize,
    /// Sampled responses per evaluation prompt.
    pub eval_samples: usize,
    /// Training prompts (PPO, RLOO).
    pub train_prompts: usize,
    /// The reward model.
    pub reward_model: RewardSummary,
    /// SFT, DPO, PPO, RLOO.
    pub methods: Vec<MethodResult>,
    /// Settings, as text.
    pub settings: serde_json::Value,
}

impl CompareReport {
    /// The result of `method`.
    pub fn method(&self, method: &str) -> Option<&MethodResult> {
        self.methods.iter().find(|m| m.method == method)
    }
}

/// The report and each method's final policy weights (`sft`, `dpo`, `ppo`, `rloo`), e.g. for
/// export and quantization.
#[derive(Debug)]
pub struct Comparison {
    /// The report.
    pub report: CompareReport,
    /// `(method, weights)`, in the report's order.
    pub policies: Vec<(String, HashMap<String, Tensor>)>,
}

/// Evaluates policies against the SFT reference on fixed prompts.
struct Evaluator<'a> {
    prompts: &'a [Vec<u32>],
    reference: &'a Gpt,
    rm: &'a RewardModel,
    oracle: &'a dyn Oracle,
    sft_greedy: Vec<f64>,
    cfg: &'a CompareConfig,
    eos: Option<u32>,
    pad: u32,
}

impl Evaluator<'_> {
    fn greedy_scores(&self, policy: &Gpt) -> Result<Vec<f64>> {
        let mut unused = ChaCha8Rng::seed_from_u64(0);
        let g = sample::generate(
            policy,
            self.prompts,
            self.cfg.max_new_tokens,
            self.eos,
            self.pad,
            None,
            &mut unused,
        )?;
        Ok(g.iter()
            .map(|r| self.oracle.score(&r.prompt, &r.response))
            .collect())
    }

    fn eval(&self, policy: &Gpt, step: usize) -> Result<EvalPoint> {
        let greedy = self.greedy_scores(policy)?;
        let (mut wins, mut ties, mut losses) = (0, 0, 0);
        for (a, b) in greedy.iter().zip(&self.sft_greedy) {
            if (a - b).abs() < 1e-12 {
                ties += 1;
            } else if a > b {
                wins += 1;
            } else {
                losses += 1;
            }
        }
        let n = greedy.len().max(1) as f64;
        let batch: Vec<Vec<u32>> = self
            .prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), self.cfg.eval_samples.max(1)))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ 0xe7a1_5eed);
        let mut rollouts: Vec<Rollout> = Vec::with_capacity(batch.len());
        let mut kl_sum = 0f64;
        for chunk in batch.chunks(64) {
            let r = sample::generate(
                policy,
                chunk,
                self.cfg.max_new_tokens,
                self.eos,
                self.pad,
                Some(&Sampling::default()),
                &mut rng,
            )?;
            let ab = ActionBatch::new(&r, self.eos, self.pad)?;
            let lp = rollout::action_logprobs(policy, &ab, 1.0)?;
            let lr = rollout::action_logprobs(self.reference, &ab, 1.0)?;
            kl_sum += rollout::kl_terms(&lp, &lr).1.iter().sum::<f64>();
            rollouts.extend(r);
        }
        let m = rollouts.len().max(1) as f64;
        let rm = self.rm.score(&rollouts, self.eos)?;
        let oracle_sampled = rollouts
            .iter()
            .map(|r| self.oracle.score(&r.prompt, &r.response))
            .sum::<f64>()
            / m;
        Ok(EvalPoint {
            step,
            rm_score: rm.iter().sum::<f64>() / m,
            oracle_sampled,
            oracle_greedy: greedy.iter().sum::<f64>() / n,
            kl: kl_sum / m,
            wins,
            ties,
            losses,
            win_rate: (wins as f64 + 0.5 * ties as f64) / n,
        })
    }
}

fn params_of(
    sft: &HashMap<String, Tensor>,
    config: &GptConfig,
    device: &Device,
) -> Result<(Gpt, Params)> {
    let copy: HashMap<String, Tensor> = sft
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.detach().copy()?)))
        .collect::<Result<_>>()?;
    let mut p = Params::from_tensors(copy, device)?;
    let g = Gpt::new(config, &mut p, BuildOptions::default())?;
    Ok((g, p))
}

fn due(step: usize, next: usize) -> bool {
    step >= next
}

/// Runs the comparison from the SFT model's tensors; writes `report.json`, `report.md` and the
/// reward/KL/oracle plots under `out` when given.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    config: &GptConfig,
    sft: &HashMap<String, Tensor>,
    data: &CompareData,
    oracle: &dyn Oracle,
    cfg: &CompareConfig,
    eos: Option<u32>,
    pad: u32,
    device: &Device,
    out: Option<&Path>,
) -> Result<Comparison> {
    if data.eval_prompts.is_empty() || data.train_prompts.is_empty() {
        return Err(TrainerError::Data(
            "the comparison needs training and evaluation prompts".into(),
        ));
    }
    if cfg.steps == 0 || cfg.eval_every == 0 {
        return Err(TrainerError::config(
            "compare",
            "steps and eval_every must be at least 1",
        ));
    }
    let config = &GptConfig {
        num_labels: None,
        ..config.clone()
    };
    // The reward model, on the pairs.
    let t0 = Instant::now();
    let rm_cfg = RewardModelConfig::new(config);
    let rm = reward::train_reward_model(
        &rm_cfg,
        sft.clone(),
        data.train_pairs.clone(),
        data.val_pairs.clone(),
        pad,
        &cfg.reward,
        device,
    )?;
    let reward_model = RewardSummary {
        train_pairs: data.train_pairs.len(),
        val_pairs: data.val_pairs.len(),
        train_accuracy: rm.train_accuracy,
        val_accuracy: rm.val_accuracy,
        steps: rm.state.step,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let (reference, _ref_params) = params_of(sft, config, device)?;
    let mut ev = Evaluator {
        prompts: &data.eval_prompts,
        reference: &reference,
        rm: &rm.model,
        oracle,
        sft_greedy: Vec::new(),
        cfg,
        eos,
        pad,
    };
    ev.sft_greedy = ev.greedy_scores(&reference)?;
    let mut methods = Vec::new();
    let mut policies = vec![("sft".to_string(), sft.clone())];

    // SFT only.
    let p0 = ev.eval(&reference, 0)?;
    methods.push(MethodResult {
        method: "sft".into(),
        steps: 0,
        rollouts: 0,
        train_seconds: 0.0,
        last: p0.clone(),
        curve: vec![p0.clone()],
        history: Vec::new(),
    });

    // DPO on the pairs.
    {
        let (policy, params) = params_of(sft, config, device)?;
        let (refm, _rp) = params_of(sft, config, device)?;
        let mut task = DpoTask {
            policy,
            reference: refm,
            train: data.train_pairs.clone(),
            val: data.val_pairs.clone(),
            batch_size: cfg.dpo.batch_size,
            pad,
            beta: cfg.dpo.beta,
            nll_weight: 0.0,
        };
        let tc = TrainConfig {
            steps: cfg.steps,
            grad_accum: 1,
            schedule: Schedule {
                lr: cfg.dpo.lr,
                min_lr: cfg.dpo.lr,
                warmup_steps: 0,
                decay_steps: 0,
            },
            optimizer: AdamWConfig {
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            clip_grad_norm: Some(1.0),
            eval_every: 0,
            patience: None,
            checkpoint_every: 0,
            seed: cfg.seed,
        };
        let mut opt = AdamW::new(params.trainable(), tc.optimizer.clone())?;
        let mut st = TrainState::new(cfg.seed);
        let mut curve = vec![p0.clone()];
        let mut secs = 0.0;
        let bar = super::ppo::progress_bar(cfg.progress, cfg.steps, 0, "DPO");
        while st.step < cfg.steps {
            let t = Instant::now();
            train::run::<()>(
                &mut task,
                &params,
                &mut opt,
                &tc,
                &mut st,
                None,
                &RunOptions {
                    max_steps_this_run: Some(cfg.eval_every),
                    progress: false,
                },
            )?;
            secs += t.elapsed().as_secs_f64();
            curve.push(ev.eval(&task.policy, st.step)?);
            bar.set_position(st.step as u64);
        }
        bar.finish_and_clear();
        policies.push(("dpo".into(), params.to_tensors()?));
        methods.push(MethodResult {
            method: "dpo".into(),
            steps: st.step,
            rollouts: 0,
            train_seconds: secs,
            last: curve.last().cloned().unwrap_or(p0.clone()),
            curve,
            history: Vec::new(),
        });
    }

    // PPO on the reward model.
    {
        let mut pc = cfg.ppo.clone();
        pc.iterations = cfg.steps.div_ceil(pc.steps_per_iteration().max(1));
        pc.max_new_tokens = cfg.max_new_tokens;
        let mut ppo = Ppo::new(config, sft, pc.clone(), eos, pad, device)?;
        let mut curve = vec![p0.clone()];
        let (mut secs, mut next) = (0.0, cfg.eval_every);
        let bar = super::ppo::progress_bar(cfg.progress, pc.iterations, 0, "PPO");
        while ppo.state.iteration < pc.iterations {
            let t = Instant::now();
            ppo.iterate(&data.train_prompts, &rm.model)?;
            secs += t.elapsed().as_secs_f64();
            let s = ppo.state.optimizer_steps;
            if due(s, next) || ppo.state.iteration == pc.iterations {
                curve.push(ev.eval(&ppo.models.policy, s)?);
                while next <= s {
                    next += cfg.eval_every;
                }
            }
            bar.set_position(ppo.state.iteration as u64);
        }
        bar.finish_and_clear();
        policies.push(("ppo".into(), ppo.models.policy_tensors()?));
        methods.push(MethodResult {
            method: "ppo".into(),
            steps: ppo.state.optimizer_steps,
            rollouts: pc.iterations * pc.rollouts_per_iteration,
            train_seconds: secs,
            last: curve.last().cloned().unwrap_or(p0.clone()),
            curve,
            history: ppo.state.history.clone(),
        });
    }

    // RLOO on the reward model.
    if let Some(rc) = &cfg.rloo {
        let mut rc = rc.clone();
        rc.iterations = cfg.steps;
        rc.max_new_tokens = cfg.max_new_tokens;
        let mut rloo = Rloo::new(config, sft, rc.clone(), eos, pad, device)?;
        let mut curve = vec![p0.clone()];
        let mut secs = 0.0;
        let bar = super::ppo::progress_bar(cfg.progress, rc.iterations, 0, "RLOO");
        while rloo.state.iteration < rc.iterations {
            let t = Instant::now();
            rloo.iterate(&data.train_prompts, &rm.model)?;
            secs += t.elapsed().as_secs_f64();
            let s = rloo.state.optimizer_steps;
            if s % cfg.eval_every == 0 || s == rc.iterations {
                curve.push(ev.eval(&rloo.models.policy, s)?);
            }
            bar.set_position(s as u64);
        }
        bar.finish_and_clear();
        policies.push(("rloo".into(), rloo.models.policy_tensors()?));
        methods.push(MethodResult {
            method: "rloo".into(),
            steps: rloo.state.optimizer_steps,
            rollouts: rc.iterations * rc.prompts_per_iteration * rc.samples_per_prompt,
            train_seconds: secs,
            last: curve.last().cloned().unwrap_or(p0.clone()),
            curve,
            history: rloo.state.history.clone(),
        });
    }

    let report = CompareReport {
        steps: cfg.steps,
        eval_prompts: data.eval_prompts.len(),
        eval_samples: cfg.eval_samples,
        train_prompts: data.train_prompts.len(),
        reward_model,
        methods,
        settings: serde_json::json!({
            "dpo": cfg.dpo,
            "ppo": cfg.ppo,
            "rloo": cfg.rloo,
            "reward_steps": cfg.reward.train.steps,
            "reward_lr": cfg.reward.train.schedule.lr,
            "reward_batch": cfg.reward.batch_size,
            "max_new_tokens": cfg.max_new_tokens,
            "seed": cfg.seed,
        }),
    };
    if let Some(dir) = out {
        write_report(&report, dir)?;
    }
    Ok(Comparison { report, policies })
}

/// Writes `report.json`, `report.md`, `reward.png`, `kl.png` and `oracle.png` under `dir`.
pub fn write_report(report: &CompareReport, dir: &Path) -> Result<()> {
    use edgeloop_eval::plot::{line_chart_png, ChartOptions, Series};
    std::fs::create_dir_all(dir).map_err(|e| TrainerError::io(dir, e))?;
    crate::checkpoint::write_json(&dir.join("report.json"), report)?;
    let series = |f: &dyn Fn(&EvalPoint) -> f64| -> Vec<Series> {
        report
            .methods
            .iter()
            .map(|m| {
                let mut pts: Vec<(f64, f64)> =
                    m.curve.iter().map(|p| (p.step as f64, f(p))).collect();
                if m.method == "sft" {
                    // the starting point, drawn across the budget
                    pts.push((report.steps as f64, f(&m.last)));
                }
                Series::new(m.method.clone(), pts)
            })
            .collect()
    };
    for (file, title, y, f) in [
        (
            "reward.png",
            "Reward-model score of sampled responses (held-out prompts)",
            "mean reward-model score",
            (&|p: &EvalPoint| p.rm_score) as &dyn Fn(&EvalPoint) -> f64,
        ),
        (
            "kl.png",
            "KL to the SFT reference (sampled estimate)",
            "nats per response",
            &|p: &EvalPoint| p.kl,
        ),
        (
            "oracle.png",
            "Oracle score of sampled responses (held-out prompts)",
            "mean oracle score",
            &|p: &EvalPoint| p.oracle_sampled,
        ),
    ] {
        let path = dir.join(file);
        line_chart_png(
            &path,
            &ChartOptions::new(title)
                .x_label("optimizer steps")
                .y_label(y),
            &series(f),
        )
        .map_err(|e| TrainerError::Plot(format!("{}: {e}", path.display())))?;
    }
    let md_path = dir.join("report.md");
    std::fs::write(&md_path, markdown(report)).map_err(|e| TrainerError::io(&md_path, e))
}

/// The report as Markdown.
pub fn markdown(r: &CompareReport) -> String {
    let mut s = String::new();
    s.push_str("# RLHF comparison: SFT only vs DPO vs PPO");
    if r.method("rloo").is_some() {
        s.push_str(" vs RLOO");
    }
    s.push_str("\n\n");
    s.push_str(&format!(
        "Every method starts from the same SFT weights and gets {} optimizer steps. Evaluation on {} held-out prompts: greedy responses judged by the oracle against SFT's (win rate = (wins + ties/2) / prompts); {} sampled responses per prompt (temperature 1, same seed for every method) for the reward-model score, the oracle score and the KL to the SFT reference.\n\n",
        r.steps, r.eval_prompts, r.eval_samples
    ));
    let rm = &r.reward_model;
    s.push_str(&format!(
        "Reward model (GPT backbone from SFT + scalar head on the last token, Bradley–Terry loss): {} training pairs, {} held-out pairs, pairwise accuracy {:.3} held out ({:.3} on training pairs), {} steps in {:.1} s.\n\n",
        rm.train_pairs, rm.val_pairs, rm.val_accuracy, rm.train_accuracy, rm.steps, rm.seconds
    ));
    if rm.val_accuracy < 0.6 {
        s.push_str("**The reward model barely beats chance on held-out pairs**: it fits its training pairs but does not generalize, so PPO and RLOO optimize a proxy that says little about the oracle; expect their reward-model score to rise while the oracle score does not (over-optimization), and read their rows with that in mind.\n\n");
    }
    s.push_str("| method | steps | rollouts | train s | RM score | oracle (sampled) | oracle (greedy) | win rate vs SFT (W/T/L) | KL to SFT |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---|---:|\n");
    for m in &r.methods {
        let p = &m.last;
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} ({}/{}/{}) | {:.3} |\n",
            m.method,
            m.steps,
            m.rollouts,
            m.train_seconds,
            p.rm_score,
            p.oracle_sampled,
            p.oracle_greedy,
            p.win_rate,
            p.wins,
            p.ties,
            p.losses,
            p.kl
        ));
    }
    s.push_str("\nPlots: `reward.png` (reward-model score), `kl.png` (KL to SFT), `oracle.png` (oracle score) over optimizer steps.\n\n");
    s.push_str("Notes: the oracle never trains anything — the reward model learns it from the preference pairs, and PPO/RLOO optimize the reward model, so a gap between RM score and oracle score is reward over-optimization. PPO does several optimizer steps per batch of rollouts (epochs × minibatches); RLOO does one step per batch, so at equal steps it samples more rollouts (the `rollouts` column).\n");
    s
}

#[cfg(test)]
mod tests;

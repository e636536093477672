//! RLHF on the assistant task (issue 14): the demo's user ([`super::judge`]) as the oracle of
//! the trainer's comparison harness ([`edgeloop_trainer::rlhf::compare`]), field feedback from the
//! assistant's telemetry store as the preference pairs, and the agreement of the int8 image of a
//! policy with its fp32 weights.
//!
//! [`compare_on_run`] runs the comparison on a finished demo run (`edgeloop demo --out RUN`):
//! the SFT checkpoint `RUN/assistant/model`, the preference pairs users' ratings produced in
//! `RUN/telemetry/assistant`, the held-out field prompts `RUN/data/assistant/field_holdout.jsonl`
//! for evaluation; then it quantizes, compiles and signs the SFT and PPO policies the way the
//! assistant stage deploys them and measures int8-vs-fp32 top-1 agreement.

//! `edgeloop rlhf --run RUN --out OUT` (`crate::cli::rlhf`) calls [`compare_on_run`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use edgeloop_monitor::preferences::{self, PreferenceSet};
use edgeloop_monitor::store;
use edgeloop_trainer::export::{ExportOptions, Head};
use edgeloop_trainer::models::{BuildOptions, Gpt, GptConfig, ModelSpec, Params};
use edgeloop_trainer::optim::Schedule;
use edgeloop_trainer::rlhf::compare::{
    self, CompareConfig, CompareData, CompareReport, DpoSettings,
};
use edgeloop_trainer::rlhf::kl::KlController;
use edgeloop_trainer::rlhf::reward::RewardTraining;
use edgeloop_trainer::rlhf::sample;
use edgeloop_trainer::rlhf::{Oracle, PpoConfig, RlooConfig};
use edgeloop_trainer::tokenizer::Tokenizer;
use edgeloop_trainer::train::jobs;
use edgeloop_trainer::train::tasks::Preference;
use edgeloop_trainer::train::TrainConfig;
use serde::{Deserialize, Serialize};

use super::generate::AssistantImage;
use super::{judge, read_prompts, Prompt, Prompts, ASSISTANT_MODEL_ID};
use crate::demo::{Ctx, Sizes};

/// The demo's user as an [`Oracle`]: 1 when [`judge`] accepts the decoded response to a prompt
/// whose right answer it knows, 0 otherwise (also for prompts it does not know).
pub struct DemoOracle<'a> {
    tok: &'a Tokenizer,
    answers: HashMap<Vec<u32>, String>,
}

impl<'a> DemoOracle<'a> {
    /// The oracle over `prompts`.
    pub fn new(tok: &'a Tokenizer, prompts: &[Prompt]) -> Self {
        Self {
            tok,
            answers: prompts
                .iter()
                .map(|p| (p.ids.clone(), p.answer_text.clone()))
                .collect(),
        }
    }
}

impl Oracle for DemoOracle<'_> {
    fn score(&self, prompt: &[u32], response: &[u32]) -> f64 {
        match (self.answers.get(prompt), self.tok.decode(response)) {
            (Some(right), Ok(answer)) => f64::from(u8::from(judge(&answer, right))),
            _ => 0.0,
        }
    }
}

/// The field's preference pairs as the trainer's `(prompt, chosen ++ eos, rejected ++ eos)`,
/// keeping those that fit `context` (+1: the last target is not an input).
pub fn field_preferences(set: &PreferenceSet, eos: Option<u32>, context: usize) -> Vec<Preference> {
    set.pairs
        .iter()
        .map(|p| {
            let mut c = p.chosen.clone();
            let mut r = p.rejected.clone();
            c.extend(eos);
            r.extend(eos);
            (p.prompt.clone(), c, r)
        })
        .filter(|(p, c, r)| p.len() + c.len().max(r.len()) <= context + 1)
        .collect()
}

/// Preference pairs from the synthetic oracle: the policy answers each prompt 4 times (temperature
/// 1, top-k 8, as the devices sample), the oracle judges each answer, and a prompt whose answers
/// were judged both ways gives up to 2 pairs `(prompt, accepted ++ eos, refused ++ eos)`.
pub fn oracle_pairs(
    policy: &Gpt,
    prompts: &[Prompt],
    oracle: &dyn Oracle,
    eos: Option<u32>,
    pad: u32,
    max_new: usize,
    seed: u64,
) -> anyhow::Result<Vec<Preference>> {
    const K: usize = 4;
    let sampling = sample::Sampling {
        temperature: 1.0,
        top_k: 8,
        top_p: 1.0,
    };
    let mut rng = sample::rng(seed ^ 0x0a_c1e5);
    let mut out = Vec::new();
    for chunk in prompts.chunks(16) {
        let batch: Vec<Vec<u32>> = chunk
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.ids.clone(), K))
            .collect();
        let r = sample::generate(policy, &batch, max_new, eos, pad, Some(&sampling), &mut rng)?;
        for g in r.chunks(K) {
            let mut ups: Vec<Vec<u32>> = Vec::new();
            let mut downs: Vec<Vec<u32>> = Vec::new();
            for x in g {
                let a = x.actions(eos);
                let side = if oracle.score(&x.prompt, &x.response) > 0.5 {
                    &mut ups
                } else {
                    &mut downs
                };
                if !side.contains(&a) {
                    side.push(a);
                }
            }
            for (k, d) in downs.iter().take(2).enumerate() {
                if let Some(u) = ups.get(k % ups.len().max(1)) {
                    out.push((g[0].prompt.clone(), u.clone(), d.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// Top-1 agreement of the int8 image with the fp32 policy: along the fp32 policy's greedy
/// answer to each prompt, the share of positions where the image's most likely next token is
/// the fp32 policy's. Returns the share and the number of positions compared.
pub fn int8_agreement(
    image: &AssistantImage,
    policy: &Gpt,
    prompts: &[Prompt],
    eos: Option<u32>,
    pad: u32,
    max_new: usize,
) -> anyhow::Result<(f64, usize)> {
    let (mut same, mut total) = (0usize, 0usize);
    for p in prompts {
        let r = sample::greedy(policy, std::slice::from_ref(&p.ids), max_new, eos, pad)?;
        let actions = r[0].actions(eos);
        for k in 0..actions.len() {
            let mut prefix = p.ids.clone();
            prefix.extend_from_slice(&actions[..k]);
            if prefix.len() >= image.context {
                break;
            }
            let g = image.generate(&prefix, 1, None, pad, None)?;
            same += usize::from(g.tokens.first() == Some(&actions[k]));
            total += 1;
        }
    }
    Ok((same as f64 / total.max(1) as f64, total))
}

/// Budget and settings of [`compare_on_run`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoComparison {
    /// Optimizer steps of each method.
    pub steps: usize,
    /// Steps between evaluations.
    pub eval_every: usize,
    /// Sampled responses per evaluation prompt.
    pub eval_samples: usize,
    /// Reward-model steps.
    pub reward_steps: usize,
    /// Lab training prompts on which the SFT model's sampled answers are judged by the oracle
    /// into extra preference pairs (the synthetic preference oracle; 0: field pairs only).
    pub oracle_prompts: usize,
    /// Learning rate of PPO and RLOO.
    pub rl_lr: f64,
    /// Learning rate of DPO.
    pub dpo_lr: f64,
    /// Initial KL coefficient of PPO and RLOO.
    pub kl_coef: f64,
    /// Target KL of the adaptive coefficient (nats per response).
    pub kl_target: f64,
    /// Seed.
    pub seed: u64,
    /// Quantize, compile and sign the SFT and PPO policies and measure int8 agreement.
    pub int8: bool,
    /// Progress bars.
    pub progress: bool,
}

impl Default for DemoComparison {
    fn default() -> Self {
        Self {
            steps: 120,
            eval_every: 20,
            eval_samples: 4,
            reward_steps: 300,
            oracle_prompts: 600,
            rl_lr: 3e-4,
            dpo_lr: 1e-4,
            kl_coef: 0.05,
            kl_target: 4.0,
            seed: 14,
            int8: true,
            progress: true,
        }
    }
}

/// One policy's int8 image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Int8Result {
    /// `sft`, `ppo`, ...
    pub method: String,
    /// Share of positions where the int8 image's next token is the fp32 policy's (greedy).
    pub top1_agreement: f64,
    /// Positions compared.
    pub positions: usize,
    /// Share of held-out field prompts the user accepts the int8 greedy answer to.
    pub field_right_int8: f64,
    /// Share of lab test prompts the user accepts the int8 greedy answer to.
    pub lab_right_int8: f64,
    /// Signed image bytes.
    pub image_bytes: usize,
}

/// What [`compare_on_run`] reports (`OUT/rlhf.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoRlhfReport {
    /// The demo run compared on.
    pub run: String,
    /// Preference pairs from the field store (before the fit-to-context filter).
    pub field_pairs: PreferenceSet,
    /// Field pairs that fit the context.
    pub field_pair_count: usize,
    /// Pairs from the synthetic oracle.
    pub synthetic_pairs: usize,
    /// The comparison.
    pub comparison: CompareReport,
    /// int8 images of the policies.
    pub int8: Vec<Int8Result>,
    /// Settings.
    pub settings: DemoComparison,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs SFT-only vs DPO vs PPO vs RLOO on a finished demo run's assistant data, writing the
/// comparison report, its plots and `rlhf.json` under `out`.
pub fn compare_on_run(
    run: &Path,
    out: &Path,
    s: &DemoComparison,
) -> anyhow::Result<DemoRlhfReport> {
    let t0 = std::time::Instant::now();
    let device = jobs::device("cpu")?;
    let sft_dir = run.join("assistant/model");
    let base = jobs::load_base(&sft_dir, &device)
        .with_context(|| format!("loading the SFT assistant {}", sft_dir.display()))?;
    let cfg: GptConfig = match &base.spec {
        ModelSpec::Gpt(c) => c.clone(),
        _ => anyhow::bail!("{}: the assistant is not a GPT", sft_dir.display()),
    };
    let tok = base.tokenizer.clone();
    let eos = tok.specials().eos;
    let pad = tok.specials().pad.unwrap_or(0);
    let context = cfg.block_size;
    let data_dir = run.join("data/assistant");
    let holdout = read_prompts(&tok, &data_dir.join("field_holdout.jsonl"), context)?;
    let lab_test = read_prompts(&tok, &data_dir.join("lab_test.jsonl"), context)?;
    let stored = store::read(&run.join("telemetry/assistant"))
        .with_context(|| format!("reading {}/telemetry/assistant", run.display()))?;
    let held_out: HashSet<Vec<u32>> = holdout
        .iter()
        .chain(&lab_test)
        .map(|p| p.ids.clone())
        .collect();
    let set = preferences::preference_pairs(&stored, Some(ASSISTANT_MODEL_ID), &held_out, 2);
    let field = field_preferences(&set, eos, context);
    let lab_train = read_prompts(&tok, &data_dir.join("sft_train.jsonl"), context)?;
    let oracle_src: Vec<Prompt> = lab_train.iter().take(s.oracle_prompts).cloned().collect();
    let synthetic = {
        let mut params = Params::from_tensors(base.params.to_tensors()?, &device)?;
        let gpt = Gpt::new(&cfg, &mut params, BuildOptions::default())?;
        oracle_pairs(
            &gpt,
            &oracle_src,
            &DemoOracle::new(&tok, &oracle_src),
            eos,
            pad,
            16,
            s.seed,
        )?
    };
    let n_field = field.len();
    let n_synthetic = synthetic.len();
    // Interleave so that both kinds land in the training and the held-out split.
    let mut pairs = Vec::with_capacity(n_field + n_synthetic);
    let (mut fi, mut si) = (field.into_iter(), synthetic.into_iter());
    loop {
        match (fi.next(), si.next()) {
            (None, None) => break,
            (a, b) => pairs.extend(a.into_iter().chain(b)),
        }
    }
    anyhow::ensure!(
        pairs.len() >= 20,
        "only {} usable preference pairs in {}: run the full demo",
        pairs.len(),
        run.display()
    );
    let n_val = (pairs.len() / 7).max(4);
    let (val, train) = pairs.split_at(n_val);
    let mut seen = HashSet::new();
    let train_prompts: Vec<Vec<u32>> = train
        .iter()
        .filter(|(p, _, _)| seen.insert(p.clone()))
        .map(|(p, _, _)| p.clone())
        .collect();
    let data = CompareData {
        train_prompts,
        eval_prompts: holdout.iter().map(|p| p.ids.clone()).collect(),
        train_pairs: train.to_vec(),
        val_pairs: val.to_vec(),
    };
    let max_new = 16;
    let kl = KlController {
        init_coef: s.kl_coef,
        target: Some(s.kl_target),
        horizon: 2000.0,
    };
    let cc = CompareConfig {
        steps: s.steps,
        eval_every: s.eval_every,
        max_new_tokens: max_new,
        eval_samples: s.eval_samples,
        seed: s.seed,
        reward: RewardTraining {
            train: TrainConfig {
                steps: s.reward_steps,
                grad_accum: 1,
                schedule: Schedule {
                    lr: 1e-3,
                    min_lr: 1e-4,
                    warmup_steps: 10,
                    decay_steps: s.reward_steps,
                },
                optimizer: Default::default(),
                clip_grad_norm: Some(1.0),
                eval_every: 0,
                patience: None,
                checkpoint_every: 0,
                seed: s.seed,
            },
            batch_size: 16,
            init_seed: s.seed ^ 1,
            checkpoints: None,
            max_steps_this_run: None,
            progress: s.progress,
        },
        dpo: DpoSettings {
            beta: 0.1,
            lr: s.dpo_lr,
            batch_size: 8,
        },
        ppo: PpoConfig {
            rollouts_per_iteration: 32,
            epochs: 2,
            minibatch_size: 16,
            lr: s.rl_lr,
            kl: kl.clone(),
            seed: s.seed ^ 2,
            ..PpoConfig::default()
        },
        rloo: Some(RlooConfig {
            prompts_per_iteration: 4,
            samples_per_prompt: 4,
            lr: s.rl_lr,
            kl,
            seed: s.seed ^ 3,
            ..RlooConfig::default()
        }),
        progress: s.progress,
    };
    let oracle = DemoOracle::new(&tok, &holdout);
    let sft = base.params.to_tensors()?;
    let c = compare::compare(
        &cfg,
        &sft,
        &data,
        &oracle,
        &cc,
        eos,
        pad,
        &device,
        Some(out),
    )?;
    let mut int8 = Vec::new();
    if s.int8 {
        let ctx = Ctx {
            out: out.to_path_buf(),
            sizes: Sizes::full(),
            seed: s.seed,
            progress: false,
            device: "cpu".to_string(),
        };
        let keys = crate::demo::deploy::keys(&ctx)?;
        let train_pairs = &lab_train;
        let prompts = Prompts {
            sft: (PathBuf::new(), PathBuf::new()),
            lab_test: lab_test.clone(),
            field_stream: Vec::new(),
            field_holdout: holdout.clone(),
            calibration: train_pairs
                .iter()
                .take(64)
                .map(|p| {
                    let mut s = p.ids.clone();
                    s.extend(&p.answer);
                    s.extend(eos);
                    s
                })
                .collect(),
            context,
        };
        for (version, (method, weights)) in c
            .policies
            .iter()
            .filter(|(m, _)| m == "sft" || m == "ppo")
            .enumerate()
        {
            let mut params = Params::from_tensors(weights.clone(), &device)?;
            let onnx = jobs::export_model(
                &base.spec,
                &mut params,
                &ExportOptions {
                    batch: 1,
                    seq_len: context,
                    opset: crate::demo::train::OPSET,
                    head: Head::Lm,
                },
                &out.join(format!("{method}.onnx")),
            )?;
            let d = super::deploy(&ctx, &tok, &onnx, &prompts, &keys, 100 + version as u32)?;
            let image =
                AssistantImage::load(&std::fs::read(ctx.out.join(&d.image))?, &keys.public.0)?;
            let gpt = Gpt::new(&cfg, &mut params, BuildOptions::default())?;
            let (agree, positions) = int8_agreement(&image, &gpt, &holdout, eos, pad, max_new)?;
            int8.push(Int8Result {
                method: method.clone(),
                top1_agreement: agree,
                positions,
                field_right_int8: d.field_right,
                lab_right_int8: d.lab_right,
                image_bytes: d.image_bytes,
            });
        }
    }
    let report = DemoRlhfReport {
        run: run.display().to_string(),
        field_pairs: set,
        field_pair_count: n_field,
        synthetic_pairs: n_synthetic,
        comparison: c.report,
        int8,
        settings: s.clone(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    crate::demo::write_json(&out.join("rlhf.json"), &report)?;
    let mut md = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    if !report.int8.is_empty() {
        md.push_str("\n## int8 images (quantized, compiled and signed as the assistant stage deploys them)\n\n| policy | top-1 agreement int8 vs fp32 | positions | field right (int8 greedy) | lab right (int8 greedy) | image bytes |\n|---|---:|---:|---:|---:|---:|\n");
        for r in &report.int8 {
            md.push_str(&format!(
                "| {} | {:.4} | {} | {:.3} | {:.3} | {} |\n",
                r.method,
                r.top1_agreement,
                r.positions,
                r.field_right_int8,
                r.lab_right_int8,
                r.image_bytes
            ));
        }
    }
    md.push_str(&format!(
        "\nData: {} preference pairs from the field telemetry store of `{}` ({} rated answers; {} fit the context) and {} pairs from the synthetic oracle (the SFT model's sampled answers to {} lab training prompts judged by the demo's user); {} train / {} held out; {} PPO/RLOO training prompts; {} held-out field prompts for the evaluation.\n",
        report.field_pairs.pairs.len(),
        report.run,
        report.field_pairs.rated,
        report.field_pair_count,
        report.synthetic_pairs,
        s.oracle_prompts,
        data.train_pairs.len(),
        data.val_pairs.len(),
        data.train_prompts.len(),
        data.eval_prompts.len()
    ));
    std::fs::write(out.join("report.md"), md)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeloop_runtime::telemetry::{
        Feedback, InferenceSummary, InputSummary, ModelRef, Record, Recorder, Sample, Thumbs,
        RESPONSE_SEPARATOR,
    };
    use edgeloop_trainer::rlhf::reward::{self, RewardModelConfig};

    /// SplitMix64: the test's deterministic draws.
    struct Draws(u64);

    impl Draws {
        fn below(&mut self, lo: i32, hi: i32) -> i32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            lo + (z % (hi - lo) as u64) as i32
        }
    }

    /// Field feedback → preference pairs → reward model: simulated devices rate answers (thumbs
    /// up when the answer contains the token the user wants), the ratings with their
    /// `prompt, -1, response` samples cross the telemetry framing into a Parquet store,
    /// `monitor::preferences` turns them into pairs, and a reward model trained on them ranks
    /// held-out pairs far above chance.
    #[test]
    fn telemetry_pairs_train_the_reward_model() {
        const GOOD: u32 = 7;
        let mut rng = Draws(14);
        let mut wires = Vec::new();
        for device in 0..3u64 {
            let mut rec: Box<Recorder<{ 16 * 1024 }>> = Box::new(Recorder::new(
                0xfeed_0000 + device,
                1,
                ModelRef {
                    id: ASSISTANT_MODEL_ID,
                    version: 1,
                },
            ));
            let mut wire = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            for i in 0..60u64 {
                let prompt: Vec<i32> = {
                    let n = rng.below(2, 5);
                    (0..n).map(|_| rng.below(2, 16)).collect()
                };
                for k in 0..2 {
                    // one good and one bad answer per prompt
                    let mut answer: Vec<i32> = (0..3)
                        .map(|_| loop {
                            let t = rng.below(2, 16);
                            if t != GOOD as i32 {
                                break t;
                            }
                        })
                        .collect();
                    let up = k == 0;
                    if up {
                        answer[rng.below(0, 3) as usize] = GOOD as i32;
                    }
                    let ticks = 1000 * (i * 2 + k as u64 + 1);
                    let seq = rec
                        .record(
                            ticks,
                            Record::Inference(InferenceSummary {
                                class: answer[0] as u16,
                                confidence_q16: 30000,
                                latency_ticks: 100,
                                input: InputSummary::from_i32(&prompt),
                            }),
                        )
                        .unwrap();
                    let mut sample = prompt.clone();
                    sample.push(RESPONSE_SEPARATOR);
                    sample.extend(&answer);
                    rec.record(
                        ticks + 500,
                        Record::Feedback(Feedback {
                            inference_seq: seq,
                            correction: None,
                            thumbs: Some(if up { Thumbs::Up } else { Thumbs::Down }),
                            sample: Sample::from_i32(&sample).unwrap(),
                        }),
                    )
                    .unwrap();
                }
                if i % 8 == 7 {
                    let n = rec.drain(&mut buf).unwrap();
                    wire.extend_from_slice(&buf[..n]);
                }
            }
            let n = rec.drain(&mut buf).unwrap();
            wire.extend_from_slice(&buf[..n]);
            assert_eq!(rec.stats().dropped, 0);
            wires.push(wire);
        }
        let root = std::env::temp_dir().join(format!("edgeloop-rlhf-field-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (frames, corrupt) =
            crate::demo::fleet::ingest(&root, &wires, 1_764_000_000_000).unwrap();
        assert!(frames > 0 && corrupt == 0);
        let stored = store::read(&root).unwrap();
        let set =
            preferences::preference_pairs(&stored, Some(ASSISTANT_MODEL_ID), &HashSet::new(), 2);
        let pairs = field_preferences(&set, Some(1), 16);
        assert!(pairs.len() >= 150, "{} pairs: {set:?}", pairs.len());
        assert!(pairs
            .iter()
            .all(|(_, c, r)| c.contains(&GOOD) && !r.contains(&GOOD)));
        let config = GptConfig {
            vocab_size: 16,
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            block_size: 16,
            tied_embeddings: true,
            bias: true,
            layer_norm_eps: 1e-5,
            num_labels: None,
        };
        let cpu = jobs::device("cpu").unwrap();
        let mut base = Params::new(3, &cpu);
        Gpt::new(&config, &mut base, BuildOptions::default()).unwrap();
        let (val, train) = pairs.split_at(40);
        let r = reward::train_reward_model(
            &RewardModelConfig::new(&config),
            base.to_tensors().unwrap(),
            train.to_vec(),
            val.to_vec(),
            0,
            &RewardTraining {
                train: TrainConfig {
                    steps: 120,
                    grad_accum: 1,
                    schedule: Schedule {
                        lr: 1e-2,
                        min_lr: 1e-3,
                        warmup_steps: 5,
                        decay_steps: 120,
                    },
                    optimizer: Default::default(),
                    clip_grad_norm: Some(1.0),
                    eval_every: 0,
                    patience: None,
                    checkpoint_every: 0,
                    seed: 5,
                },
                batch_size: 16,
                init_seed: 6,
                checkpoints: None,
                max_steps_this_run: None,
                progress: false,
            },
            &cpu,
        )
        .unwrap();
        assert!(
            r.val_accuracy >= 0.8,
            "held-out accuracy {}",
            r.val_accuracy
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The demo's user as the oracle: right answers score 1, wrong or unknown 0.
    #[test]
    fn demo_oracle_judges_decoded_answers() {
        let texts = [
            "turn on the lamp in the den.",
            "setting the ac in the hall to 20 degrees.",
        ];
        let tok = Tokenizer::train_char(
            texts.iter().copied(),
            &edgeloop_trainer::tokenizer::CharConfig::default(),
        )
        .unwrap();
        let p = Prompt {
            ids: tok.encode("lamp den on").unwrap(),
            answer: tok.encode(texts[0]).unwrap(),
            answer_text: texts[0].into(),
        };
        let o = DemoOracle::new(&tok, std::slice::from_ref(&p));
        assert_eq!(o.score(&p.ids, &p.answer), 1.0);
        assert_eq!(
            o.score(
                &p.ids,
                &tok.encode("turn on the lamp in the hall.").unwrap()
            ),
            0.0
        );
        assert_eq!(o.score(&tok.encode("other").unwrap(), &p.answer), 0.0);
    }

    /// The full comparison on a finished demo run (`EDGELOOP_DEMO_RUN=/path/to/run`, the folder
    /// of `edgeloop demo --out`); writes to `EDGELOOP_RLHF_OUT` (default `runs/rlhf`). Minutes.
    #[test]
    #[ignore = "minutes: the full comparison on a finished demo run"]
    fn full_comparison_on_a_demo_run() {
        let run = std::env::var("EDGELOOP_DEMO_RUN")
            .expect("set EDGELOOP_DEMO_RUN to a finished `edgeloop demo --out` folder");
        let out = std::env::var("EDGELOOP_RLHF_OUT").unwrap_or_else(|_| "runs/rlhf".into());
        let mut s = DemoComparison::default();
        let num = |name: &str| -> Option<f64> {
            std::env::var(name).ok().map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
            })
        };
        // Overrides: EDGELOOP_RLHF_{STEPS, ORACLE_PROMPTS, REWARD_STEPS, RL_LR, DPO_LR, KL_COEF, KL_TARGET}.
        if let Some(v) = num("EDGELOOP_RLHF_STEPS") {
            s.steps = v as usize;
        }
        if let Some(v) = num("EDGELOOP_RLHF_ORACLE_PROMPTS") {
            s.oracle_prompts = v as usize;
        }
        if let Some(v) = num("EDGELOOP_RLHF_REWARD_STEPS") {
            s.reward_steps = v as usize;
        }
        if let Some(v) = num("EDGELOOP_RLHF_RL_LR") {
            s.rl_lr = v;
        }
        if let Some(v) = num("EDGELOOP_RLHF_DPO_LR") {
            s.dpo_lr = v;
        }
        if let Some(v) = num("EDGELOOP_RLHF_KL_COEF") {
            s.kl_coef = v;
        }
        if let Some(v) = num("EDGELOOP_RLHF_KL_TARGET") {
            s.kl_target = v;
        }
        let r = compare_on_run(Path::new(&run), Path::new(&out), &s).unwrap();
        eprintln!(
            "{}",
            std::fs::read_to_string(Path::new(&out).join("report.md")).unwrap()
        );
        assert_eq!(r.comparison.methods.len(), 4);
    }
}

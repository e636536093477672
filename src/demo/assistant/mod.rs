//! Demo stage: the generative half of the loop, driven by preference feedback.
//!
//! The pretrained GPT is instruction-tuned on lab prompts (utterance → response naming the
//! action, device and room), quantized, compiled and signed as the `assistant` image v1. Devices
//! answer shifted field prompts with that image, four sampled answers per prompt; users rate each
//! answer (thumbs up when it is right — the demo's oracle knows the right response), and the
//! devices sample `prompt, -1, response` into the feedback records. The telemetry crosses the
//! byte framing into its own Parquet store; [`edgeloop_monitor::preferences`] turns the ratings
//! into preference pairs; DPO fine-tunes the deployed checkpoint on them; the candidate is
//! quantized, compiled and signed as v2 and goes through the same evaluation gate as the
//! classifier (the share of right greedy answers on held-out field prompts must rise; on lab test prompts it may
//! drop at most the tolerance), then gets a rollout manifest or a rejection that says why.
//! "Right" is the demo user's verdict ([`judge`]): the answer names the right action, device,
//! room and value.

pub mod field;
pub mod generate;
pub mod rlhf;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use edgeloop_monitor::policy::{GateScores, Policy};
use edgeloop_monitor::preferences;
use edgeloop_monitor::store;
use edgeloop_quantize::compile::{self, CompileOptions};
use edgeloop_quantize::runner::Sample;
use edgeloop_quantize::sign;
use edgeloop_quantize::tensor::Tensor;
use edgeloop_quantize::{quantize, Dataset, Method, OnnxModel, QuantizeConfig};
use edgeloop_trainer::corpus::{self, CorpusConfig, InstructionPair};
use edgeloop_trainer::tokenizer::Tokenizer;
use edgeloop_trainer::train::jobs::{self, InstructionExample};
use serde::{Deserialize, Serialize};

use super::deploy::Keys;
use super::train::{self as train_stage, relative, summarize, JobSummary};
use super::{write_json, Ctx};
use generate::AssistantImage;

/// Model id of the assistant in telemetry records (the classifier is `0x1e7e_0001`).
pub const ASSISTANT_MODEL_ID: u32 = 0x1e7e_0002;

/// Most preference pairs taken from one prompt.
const PAIRS_PER_PROMPT: usize = 2;

/// DPO's β.
const DPO_BETA: f64 = 0.1;
/// DPO's peak learning rate (SFT used 2e-3).
const DPO_LR: f64 = 1e-4;
/// Passes over the preference pairs (and the replayed lab answers).
const DPO_EPOCHS: usize = 8;
/// Weight of the NLL term on the chosen answers (RPO-style; 0 is plain DPO).
const DPO_NLL: f64 = 2.0;
/// Lab SFT examples replayed per field pair, as `(prompt, answer, answer)`: the DPO term of such
/// a pair is zero (same response on both sides), so it only adds the NLL of a lab answer — the
/// assistant's replay, as the classifier's retraining replays lab examples.
const DPO_REPLAY: f64 = 1.0;

/// One prompt with its tokens and the response the oracle accepts.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Prompt token ids.
    pub ids: Vec<u32>,
    /// Token ids of the right response (without end-of-text).
    pub answer: Vec<u32>,
    /// The right response.
    pub answer_text: String,
}

/// Words that carry no action, device, room or value.
const STOP_WORDS: &[&str] = &[
    "the", "a", "an", "in", "to", "of", "for", "at", "is", "will",
];

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The demo's user (the oracle of issue 14): an answer is right when it starts with the right
/// action word, names every content word of the right response (device, room, value, unit) and
/// adds at most two words.
pub fn judge(answer: &str, right: &str) -> bool {
    let (a, r) = (words(answer), words(right));
    if a.first() != r.first() || a.len() > r.len() + 2 {
        return false;
    }
    r.iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .all(|w| a.contains(w))
}

/// The assistant's prompt sets.
#[derive(Debug)]
pub struct Prompts {
    /// Lab instruction pairs for SFT (train, validation).
    pub sft: (PathBuf, PathBuf),
    /// Lab test prompts (the gate's lab set).
    pub lab_test: Vec<Prompt>,
    /// Field prompts the devices answer.
    pub field_stream: Vec<Prompt>,
    /// Field prompts held out for the gate.
    pub field_holdout: Vec<Prompt>,
    /// Lab calibration sequences (prompt + response) for the quantizer.
    pub calibration: Vec<Vec<u32>>,
    /// The model's context (tokens per image input).
    pub context: usize,
}

/// Scores of one assistant image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssistantDeployment {
    /// Model version.
    pub version: u32,
    /// Signed image, relative to the run folder.
    pub image: String,
    /// Image bytes.
    pub image_bytes: usize,
    /// Arena bytes.
    pub arena_bytes: usize,
    /// Share of lab test prompts whose greedy answer (int8 image) the user accepts.
    pub lab_right: f64,
    /// Share of held-out field prompts whose greedy answer the user accepts.
    pub field_right: f64,
    /// Mean microseconds per generated token (host runtime).
    pub micros_per_token: f64,
}

/// The deployed assistant, as `state.json` records it (for `edgeloop retrain --model assistant`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssistantState {
    /// Checkpoint folder of the deployed model, relative to the run folder.
    pub model_dir: String,
    /// Its image and scores.
    pub deployment: AssistantDeployment,
    /// The assistant's field telemetry store, relative to the run folder.
    pub store: String,
    /// Versions deployed so far, oldest first.
    pub history: Vec<u32>,
}

/// A retraining round of the assistant: preference pairs from a telemetry store → DPO from the
/// deployed checkpoint → image `version` → gate against the deployed one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssistantRetrain {
    /// Preference pairs built from the store.
    pub pairs: preferences::PreferenceSet,
    /// DPO on the pairs, when it ran.
    pub dpo: Option<JobSummary>,
    /// Validation reward margin of DPO (β-scaled log-ratio difference, chosen − rejected).
    pub dpo_val_margin: Option<f64>,
    /// The candidate.
    pub candidate: Option<AssistantDeployment>,
    /// The candidate's checkpoint folder, relative to the run folder.
    pub candidate_model_dir: Option<String>,
    /// Gate verdict.
    pub accepted: bool,
    /// Gate lines (or why nothing was trained).
    pub gate: Vec<String>,
    /// Rollout manifest, when accepted.
    pub manifest: Option<String>,
}

/// What the stage reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssistantSummary {
    /// Lab SFT pairs (train).
    pub sft_pairs: usize,
    /// Instruction SFT of the pretrained GPT.
    pub sft: JobSummary,
    /// v1.
    pub v1: AssistantDeployment,
    /// Field prompts answered.
    pub field_prompts: usize,
    /// Sampled answers per field prompt.
    pub answers_per_prompt: usize,
    /// Answers rated up / down by users.
    pub rated_up: usize,
    /// Answers rated down.
    pub rated_down: usize,
    /// Wrong answers the users corrected.
    pub corrected: usize,
    /// Telemetry frames ingested into the assistant store.
    pub frames_ingested: u64,
    /// Corrupt frames.
    pub corrupt_frames: u64,
    /// The assistant's telemetry store.
    pub store: String,
    /// Preference pairs built from the store.
    pub pairs: preferences::PreferenceSet,
    /// DPO on the pairs, when it ran.
    pub dpo: Option<JobSummary>,
    /// Validation reward margin of DPO (β-scaled log-ratio difference, chosen − rejected).
    pub dpo_val_margin: Option<f64>,
    /// The candidate.
    pub v2: Option<AssistantDeployment>,
    /// Gate verdict.
    pub accepted: bool,
    /// Gate lines (or why nothing was trained).
    pub gate: Vec<String>,
    /// Rollout manifest, when accepted.
    pub manifest: Option<String>,
    /// The deployed assistant after the stage (recorded in `state.json`).
    pub state: AssistantState,
}

fn dedup_by_prompt(
    pairs: Vec<InstructionPair>,
    seen: &mut HashSet<String>,
) -> Vec<InstructionPair> {
    pairs
        .into_iter()
        .filter(|p| seen.insert(p.prompt.clone()))
        .collect()
}

fn to_prompt(
    tok: &Tokenizer,
    p: &InstructionPair,
    context: usize,
) -> anyhow::Result<Option<Prompt>> {
    let ids = tok.encode(&p.prompt)?;
    let answer = tok.encode(&p.response)?;
    // Prompt + response + end-of-text within the context (what SFT trains on).
    if ids.is_empty() || ids.len() + answer.len() + 1 > context {
        return Ok(None);
    }
    Ok(Some(Prompt {
        ids,
        answer,
        answer_text: p.response.clone(),
    }))
}

/// The instruction pairs of a JSONL file (`{"prompt", "response"}` records) as prompts that fit
/// `context`.
pub(crate) fn read_prompts(
    tok: &Tokenizer,
    path: &Path,
    context: usize,
) -> anyhow::Result<Vec<Prompt>> {
    let mut out = Vec::new();
    for e in jobs::read_jsonl::<InstructionExample>(path)? {
        let pair = InstructionPair {
            prompt: e.prompt,
            response: e.response,
            intent: String::new(),
        };
        out.extend(to_prompt(tok, &pair, context)?);
    }
    Ok(out)
}

/// Generates the assistant's corpora (seeded apart from the classifier's) and writes the SFT files.
pub fn prompts(ctx: &Ctx, tok: &Tokenizer, context: usize) -> anyhow::Result<Prompts> {
    let sz = &ctx.sizes;
    let dir = ctx.dir("data/assistant")?;
    let seed = ctx.seed ^ 0xa551_57a4;
    let gen = |cfg: CorpusConfig, n: usize| {
        corpus::generate(&CorpusConfig {
            n_labelled: 0,
            pretrain_bytes: 0,
            n_instructions: n,
            n_preferences: 0,
            ..cfg
        })
        .instructions
    };
    let mut seen = HashSet::new();
    let lab = dedup_by_prompt(gen(CorpusConfig::lab(seed), sz.assistant_lab), &mut seen);
    let field = dedup_by_prompt(
        gen(CorpusConfig::field(seed), sz.assistant_field),
        &mut seen,
    );
    let fits = |p: &&InstructionPair| -> bool { matches!(to_prompt(tok, p, context), Ok(Some(_))) };
    let lab: Vec<InstructionPair> = lab.iter().filter(fits).cloned().collect();
    let field: Vec<InstructionPair> = field.iter().filter(fits).cloned().collect();
    anyhow::ensure!(
        lab.len() >= 20 && field.len() >= 8,
        "too few assistant prompts fit the context of {context} tokens ({} lab, {} field)",
        lab.len(),
        field.len()
    );
    // Lab: 80% SFT train, 10% validation, 10% test. Field: a quarter held out for the gate.
    let n_test = lab.len() / 10;
    let (test, rest) = lab.split_at(n_test);
    let (val, train) = rest.split_at(n_test);
    let write = |name: &str, pairs: &[InstructionPair]| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        let mut s = String::new();
        for p in pairs {
            s.push_str(&serde_json::to_string(&InstructionExample {
                prompt: p.prompt.clone(),
                response: p.response.clone(),
            })?);
            s.push('\n');
        }
        std::fs::write(&path, s).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let sft = (
        write("sft_train.jsonl", train)?,
        write("sft_val.jsonl", val)?,
    );
    write("lab_test.jsonl", test)?;
    let convert = |ps: &[InstructionPair]| -> anyhow::Result<Vec<Prompt>> {
        let mut out = Vec::new();
        for p in ps {
            out.extend(to_prompt(tok, p, context)?);
        }
        Ok(out)
    };
    let n_hold = field.len() / 4;
    let (hold, stream) = field.split_at(n_hold);
    write("field_holdout.jsonl", hold)?;
    let eos = tok.specials().eos;
    let calibration = convert(&train[..train.len().min(sz.calibration)])?
        .into_iter()
        .map(|p| {
            let mut s = p.ids;
            s.extend(p.answer);
            s.extend(eos);
            s
        })
        .collect();
    Ok(Prompts {
        sft,
        lab_test: convert(test)?,
        field_stream: convert(stream)?,
        field_holdout: convert(hold)?,
        calibration,
        context,
    })
}

fn sample_of(ids: &[u32], context: usize, pad: u32) -> anyhow::Result<Sample> {
    let mut row: Vec<i64> = ids.iter().map(|&v| i64::from(v)).collect();
    row.resize(context, i64::from(pad));
    let mut s = HashMap::new();
    s.insert("input_ids".to_string(), Tensor::i64(vec![1, context], row)?);
    Ok(s)
}

/// Quantizes (calibrated on lab prompt + response sequences), compiles and signs the assistant's
/// fp32 ONNX export as `version`, and scores it.
pub fn deploy(
    ctx: &Ctx,
    tok: &Tokenizer,
    onnx: &Path,
    prompts: &Prompts,
    keys: &Keys,
    version: u32,
) -> anyhow::Result<AssistantDeployment> {
    let dir = ctx.dir(&format!("deploy/assistant-v{version}"))?;
    let bytes = std::fs::read(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let fp32 = OnnxModel::from_bytes(&bytes)?;
    let context = prompts.context;
    let pad = tok.specials().pad.unwrap_or(0);
    let mut calib = Dataset::default();
    for seq in &prompts.calibration {
        calib.samples.push(sample_of(seq, context, pad)?);
    }
    let q = quantize(
        &fp32,
        &calib,
        &QuantizeConfig {
            method: Method::Percentile(99.99),
            progress: false,
            ..QuantizeConfig::default()
        },
    )
    .context("quantizing the assistant")?;
    std::fs::write(dir.join("model-int8.onnx"), q.model.to_bytes())?;
    let compiled = compile::compile(
        &q.model.proto,
        &CompileOptions {
            name: Some("assistant".into()),
            model_version: version,
            ..CompileOptions::default()
        },
    )
    .context("compiling the assistant image")?;
    let signed = sign::sign_image(compiled.bytes(), &keys.secret)?;
    let image_path = dir.join("assistant.edli");
    std::fs::write(&image_path, &signed)?;
    std::fs::write(dir.join("compile-report.txt"), compiled.report.to_string())?;
    let image = AssistantImage::load(&signed, &keys.public.0)?;
    let (lab_right, lab_us, lab_answers) = right_rate(&image, tok, &prompts.lab_test)?;
    let (field_right, field_us, field_answers) = right_rate(&image, tok, &prompts.field_holdout)?;
    let mut lines = String::new();
    for (set, answers) in [("lab", &lab_answers), ("field", &field_answers)] {
        for a in answers {
            lines.push_str(&serde_json::to_string(
                &serde_json::json!({"set": set, "answer": a}),
            )?);
            lines.push('\n');
        }
    }
    std::fs::write(dir.join("answers.jsonl"), lines)?;
    let d = AssistantDeployment {
        version,
        image: relative(&ctx.out, &image_path),
        image_bytes: signed.len(),
        arena_bytes: compiled.report.arena_bytes,
        lab_right,
        field_right,
        micros_per_token: (lab_us + field_us) / 2.0,
    };
    crate::say!(
        "assistant v{version}: signed image {} bytes, arena {} bytes; greedy answers right: lab {:.1}%, field {:.1}% ({:.0} µs per token)",
        d.image_bytes,
        d.arena_bytes,
        100.0 * lab_right,
        100.0 * field_right,
        d.micros_per_token
    );
    Ok(d)
}

/// One greedy answer, judged (written to `answers.jsonl` next to the image).
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    /// The prompt.
    pub prompt: String,
    /// The right response.
    pub right: String,
    /// The image's greedy answer.
    pub answer: String,
    /// The user's verdict.
    pub accepted: bool,
}

/// Share of `prompts` whose greedy answer the user accepts ([`judge`]), µs per token, and the
/// judged answers.
pub fn right_rate(
    image: &AssistantImage,
    tok: &Tokenizer,
    prompts: &[Prompt],
) -> anyhow::Result<(f64, f64, Vec<Judged>)> {
    let eos = tok.specials().eos;
    let pad = tok.specials().pad.unwrap_or(0);
    let (mut ok, mut micros, mut tokens) = (0usize, 0.0, 0usize);
    let mut judged = Vec::with_capacity(prompts.len());
    for p in prompts {
        let g = image.generate(&p.ids, image.context - p.ids.len(), eos, pad, None)?;
        let answer = tok.decode(&g.tokens)?;
        let accepted = judge(&answer, &p.answer_text);
        ok += usize::from(accepted);
        micros += g.micros;
        tokens += g.tokens.len() + usize::from(g.ended);
        judged.push(Judged {
            prompt: tok.decode(&p.ids)?,
            right: p.answer_text.clone(),
            answer,
            accepted,
        });
    }
    Ok((
        ok as f64 / prompts.len().max(1) as f64,
        micros / tokens.max(1) as f64,
        judged,
    ))
}

/// Runs the stage.
pub fn run(
    ctx: &Ctx,
    tok: &Tokenizer,
    gpt_dir: &Path,
    keys: &Keys,
    policy: &Policy,
) -> anyhow::Result<AssistantSummary> {
    let sz = &ctx.sizes;
    let base = jobs::load_base(gpt_dir, &ctx.train_device()?)?;
    let context = match &base.spec {
        edgeloop_trainer::models::ModelSpec::Gpt(c) => c.block_size,
        _ => anyhow::bail!("{}: the assistant needs a GPT", gpt_dir.display()),
    };
    let prompts = prompts(ctx, tok, context)?;
    let sft_train_n = jobs::read_jsonl::<InstructionExample>(&prompts.sft.0)?.len();
    let sft = jobs::finetune_sft(
        base,
        &prompts.sft.0,
        &prompts.sft.1,
        None,
        &train_stage::common(ctx, ctx.out.join("assistant"), sz.sft_steps, 2e-3, true)?,
    )
    .context("instruction-tuning the GPT")?;
    crate::say!(
        "assistant SFT on {sft_train_n} lab pairs: {} steps, val loss {:.3} in {:.1} s",
        sft.steps,
        sft.best_eval_loss.unwrap_or(f32::NAN),
        sft.seconds
    );
    let sft_onnx = sft.onnx.clone().context("the SFT job exported no ONNX")?;
    let v1 = deploy(ctx, tok, &sft_onnx, &prompts, keys, 1)?;

    // The field: devices answer, users rate, telemetry into the store.
    let image = AssistantImage::load(&std::fs::read(ctx.out.join(&v1.image))?, &keys.public.0)?;
    let f = field::simulate(ctx, tok, &image, &prompts.field_stream)?;
    let state = AssistantState {
        model_dir: relative(&ctx.out, &sft.model_dir),
        deployment: v1.clone(),
        store: relative(&ctx.out, &f.store),
        history: vec![v1.version],
    };
    let r = retrain(ctx, tok, &prompts, &state, &f.store, keys, policy)?;
    let mut state = state;
    if let (true, Some(v2), Some(dir)) = (r.accepted, &r.candidate, &r.candidate_model_dir) {
        state.model_dir = dir.clone();
        state.deployment = v2.clone();
        state.history.push(v2.version);
    }
    Ok(AssistantSummary {
        sft_pairs: sft_train_n,
        sft: summarize(ctx, &sft),
        v1,
        field_prompts: prompts.field_stream.len(),
        answers_per_prompt: field::ANSWERS,
        rated_up: f.up,
        rated_down: f.down,
        corrected: f.corrected,
        frames_ingested: f.frames,
        corrupt_frames: f.corrupt,
        store: relative(&ctx.out, &f.store),
        pairs: r.pairs,
        dpo: r.dpo,
        dpo_val_margin: r.dpo_val_margin,
        v2: r.candidate,
        accepted: r.accepted,
        gate: r.gate,
        manifest: r.manifest,
        state,
    })
}

/// One retraining round of the deployed assistant `deployed` on the ratings in `store`:
/// preference pairs (held-out field and lab test prompts removed) → DPO from the deployed
/// checkpoint → quantized, compiled, signed image version + 1 → the evaluation gate → rollout
/// manifest, or a rejection. Writes `retrain/assistant-v<N>/retrain.json` either way.
pub fn retrain(
    ctx: &Ctx,
    tok: &Tokenizer,
    prompts: &Prompts,
    deployed: &AssistantState,
    store: &Path,
    keys: &Keys,
    policy: &Policy,
) -> anyhow::Result<AssistantRetrain> {
    let sz = &ctx.sizes;
    let context = prompts.context;
    let current = &deployed.deployment;
    let version = current.version + 1;
    let stored = store::read(store).with_context(|| {
        format!(
            "reading the assistant's telemetry store {}",
            store.display()
        )
    })?;
    let held_out: HashSet<Vec<u32>> = prompts
        .field_holdout
        .iter()
        .chain(&prompts.lab_test)
        .map(|p| p.ids.clone())
        .collect();
    let pairs = preferences::preference_pairs(
        &stored,
        Some(ASSISTANT_MODEL_ID),
        &held_out,
        PAIRS_PER_PROMPT,
    );
    crate::say!(
        "preference pairs from the store: {} ({} from corrections; {} rated answers, {} corrected; {} prompts rated one way only, {} held-out prompts removed, {} repeats, {} unusable)",
        pairs.pairs.len(),
        pairs.from_corrections,
        pairs.rated,
        pairs.corrected,
        pairs.prompts_without_pair,
        pairs.leaks_removed,
        pairs.duplicates_removed,
        pairs.unusable
    );
    let mut out = AssistantRetrain {
        pairs: pairs.clone(),
        dpo: None,
        dpo_val_margin: None,
        candidate: None,
        candidate_model_dir: None,
        accepted: false,
        gate: Vec::new(),
        manifest: None,
    };
    let dir = ctx.dir(&format!("retrain/assistant-v{version}"))?;
    if pairs.pairs.len() < sz.min_preference_pairs.max(2) {
        out.gate.push(format!(
            "no retraining: {} preference pairs, fewer than the {} the policy asks for",
            pairs.pairs.len(),
            sz.min_preference_pairs.max(2)
        ));
        write_json(&dir.join("retrain.json"), &out)?;
        return Ok(out);
    }

    // DPO from the deployed checkpoint.
    let eos = tok.specials().eos;
    let all = rlhf::field_preferences(&pairs, eos, context);
    let n_val = (all.len() / 10).max(1);
    let (val, field_train) = all.split_at(n_val);
    // Replay: lab SFT answers, spread evenly over the lab training file.
    let lab = read_prompts(tok, &prompts.sft.0, context)?;
    let n_replay = ((field_train.len() as f64 * DPO_REPLAY).round() as usize).min(lab.len());
    let mut train = field_train.to_vec();
    train.extend((0..n_replay).map(|k| {
        let p = &lab[k * lab.len() / n_replay.max(1)];
        let mut a = p.answer.clone();
        a.extend(eos);
        (p.ids.clone(), a.clone(), a)
    }));
    let base = jobs::load_base(&ctx.out.join(&deployed.model_dir), &ctx.train_device()?)?;
    // A few epochs at a small learning rate, with the NLL term and the lab replay: plain DPO
    // collapses this small policy — seen on the full demo's 250 field pairs: 4 epochs at 1e-4
    // changed no greedy answer, 4 at 2e-4 took lab from 81.5% to 65.0%, 8 at 5e-4 to 8.0%; with
    // NLL 2 but no replay, 8 at 1e-4 gave field +1.1 but lab -2.5; with both, 8 at 1e-4 gave
    // field +2.3, lab ±0. The gate catches what gets through.
    let steps = (DPO_EPOCHS * train.len())
        .div_ceil(sz.batch.max(1))
        .clamp(5, sz.dpo_steps.max(5));
    let d = jobs::dpo_pairs_nll(
        base,
        train,
        val.to_vec(),
        DPO_BETA,
        DPO_NLL,
        &train_stage::common(
            ctx,
            ctx.out.join(format!("assistant-v{version}")),
            steps,
            DPO_LR,
            true,
        )?,
    )
    .context("DPO on the field preference pairs")?;
    let margin = std::fs::read_to_string(d.model_dir.join("dpo.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["val_reward_margin"].as_f64());
    crate::say!(
        "DPO on {} field pairs (+ {n_replay} lab answers replayed, NLL weight {DPO_NLL}): {} steps in {:.1} s, validation reward margin {}",
        field_train.len(),
        d.steps,
        d.seconds,
        margin.map_or("n/a".to_string(), |m| format!("{m:.3}"))
    );
    out.dpo = Some(summarize(ctx, &d));
    out.dpo_val_margin = margin;
    let cand = deploy(
        ctx,
        tok,
        &d.onnx.clone().context("the DPO job exported no ONNX")?,
        prompts,
        keys,
        version,
    )?;
    let decision = policy.gate(
        GateScores {
            lab: current.lab_right,
            field: current.field_right,
        },
        GateScores {
            lab: cand.lab_right,
            field: cand.field_right,
        },
    );
    out.accepted = decision.accepted;
    out.gate = decision
        .lines
        .iter()
        .map(|l| format!("assistant answers judged right, {l}"))
        .collect();
    for g in &out.gate {
        crate::say!("gate: {g}");
    }
    if out.accepted {
        let manifest = serde_json::json!({
            "model": "assistant",
            "version": cand.version,
            "replaces": current.version,
            "image": cand.image,
            "image_bytes": cand.image_bytes,
            "arena_bytes": cand.arena_bytes,
            "trained_on": format!(
                "{} preference pairs from field feedback and {n_replay} replayed lab answers (DPO, beta {DPO_BETA}, NLL weight {DPO_NLL})",
                field_train.len()
            ),
            "signed_by": relative(&ctx.out, &keys.public_path),
            "gate": out.gate,
            "rollout": super::retrain::rollout_stages(),
            "rollback_to": current.image,
        });
        let path = dir.join("rollout.json");
        write_json(&path, &manifest)?;
        out.manifest = Some(relative(&ctx.out, &path));
        crate::say!(
            "assistant v{version} accepted: rollout manifest {}",
            path.display()
        );
    } else {
        crate::say!(
            "assistant v{version} rejected: v{} stays deployed (see the gate lines above)",
            current.version
        );
    }
    out.candidate = Some(cand);
    out.candidate_model_dir = Some(relative(&ctx.out, &d.model_dir));
    write_json(&dir.join("retrain.json"), &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn judge_wants_the_action_and_every_content_word() {
        let right = "setting the ac in the den to 20 degrees.";
        assert!(judge("setting the ac in the den to 20 degrees.", right));
        assert!(judge("setting ac in den to 20 degrees", right));
        assert!(!judge("setting the ac in the den to 21 degrees.", right));
        assert!(!judge("setting the ac to 20 degrees.", right));
        assert!(!judge("turning on the ac in the den to 20 degrees.", right));
        assert!(!judge(
            "setting the ac in the den to 20 degrees and the hall and the lamp.",
            right
        ));
        assert!(!judge("", right));
    }
}

//! Demo stage 2: pretrain a tiny GPT (causal LM) and a tiny encoder (masked LM) on the lab
//! text, then fine-tune the encoder as the intent classifier in its device form (fixed-length
//! inputs, no attention mask) and export it as fp32 ONNX.

use std::path::{Path, PathBuf};

use anyhow::Context;
use edgeloop_trainer::models::ModelSpec;
use edgeloop_trainer::optim::{AdamWConfig, Schedule};
use edgeloop_trainer::train::jobs::{self, ClassifyOptions, JobCommon, JobReport};
use edgeloop_trainer::train::TrainConfig;
use serde::Serialize;

use super::data::Data;
use super::Ctx;

/// ONNX opset of every export (20: GELU is the `Gelu` operator).
pub const OPSET: i64 = 20;

/// One training job, as reported.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JobSummary {
    /// Steps.
    pub steps: usize,
    /// Parameters.
    pub parameters: usize,
    /// Last training loss.
    pub final_train_loss: Option<f32>,
    /// Best validation loss.
    pub best_eval_loss: Option<f32>,
    /// Validation accuracy (classifier).
    pub val_accuracy: Option<f32>,
    /// Seconds.
    pub seconds: f64,
    /// Loss-curve PNG, relative to the run folder.
    pub loss_png: String,
    /// Validation-loss curve `(step, loss)`.
    pub eval_losses: Vec<(usize, f32)>,
}

/// What the training stage reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// GPT pretraining.
    pub gpt: JobSummary,
    /// Encoder pretraining.
    pub encoder: JobSummary,
    /// Classifier fine-tuning.
    pub classifier: JobSummary,
}

/// The fine-tuned classifier.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// Model folder (config, weights, tokenizer, labels).
    pub model_dir: PathBuf,
    /// fp32 ONNX export.
    pub onnx: PathBuf,
    /// Class names (the trainer's sorted order = output index).
    pub labels: Vec<String>,
    /// Fixed input length in tokens.
    pub max_len: usize,
}

/// The stage's result.
#[derive(Debug)]
pub struct Trained {
    /// Summary.
    pub summary: TrainSummary,
    /// The classifier.
    pub classifier: Classifier,
    /// The pretrained GPT's model folder (the assistant starts from it).
    pub gpt_dir: PathBuf,
}

/// Training settings for `steps` steps with peak learning rate `lr`.
pub fn common(
    ctx: &Ctx,
    out: PathBuf,
    steps: usize,
    lr: f64,
    export: bool,
) -> anyhow::Result<JobCommon> {
    Ok(JobCommon {
        out,
        autocast: edgeloop_trainer::candle_core::DType::F32,
        train: TrainConfig {
            steps,
            grad_accum: 1,
            schedule: Schedule {
                lr,
                min_lr: lr / 10.0,
                warmup_steps: (steps / 10).max(1),
                decay_steps: steps,
            },
            optimizer: AdamWConfig {
                weight_decay: 0.01,
                ..Default::default()
            },
            clip_grad_norm: Some(1.0),
            eval_every: (steps / 5).max(1),
            patience: None,
            checkpoint_every: steps,
            seed: ctx.seed,
        },
        batch_size: ctx.sizes.batch,
        resume: false,
        progress: ctx.progress,
        export_opset: export.then_some(OPSET),
        seed: ctx.seed,
        device: ctx.train_device()?,
    })
}

/// Summarizes a job report; paths relative to the run folder.
pub fn summarize(ctx: &Ctx, r: &JobReport) -> JobSummary {
    JobSummary {
        steps: r.steps,
        parameters: r.parameters,
        final_train_loss: r.final_train_loss,
        best_eval_loss: r.best_eval_loss,
        val_accuracy: r.val_accuracy,
        seconds: r.seconds,
        loss_png: relative(&ctx.out, &r.loss_png),
        eval_losses: r.eval_losses.clone(),
    }
}

/// `path` relative to `base` when under it.
pub fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Reads the labels a classifier job wrote.
pub fn read_labels(model_dir: &Path) -> anyhow::Result<Vec<String>> {
    let p = model_dir.join("labels.json");
    let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("{}: not a JSON list of labels", p.display()))
}

/// Runs the stage.
pub fn run(ctx: &Ctx, data: &Data) -> anyhow::Result<Trained> {
    let sz = &ctx.sizes;
    let vocab = data.tokenizer.vocab_size();
    let gpt: ModelSpec = serde_json::from_value(serde_json::json!({
        "arch": "gpt", "vocab_size": vocab, "n_layer": sz.layers, "n_head": sz.heads,
        "n_embd": sz.hidden, "block_size": 32
    }))?;
    let enc: ModelSpec = serde_json::from_value(serde_json::json!({
        "arch": "bert", "vocab_size": vocab, "hidden_size": sz.hidden,
        "num_hidden_layers": sz.layers, "num_attention_heads": sz.heads,
        "intermediate_size": 4 * sz.hidden, "max_position_embeddings": sz.max_len
    }))?;
    let (pre_train, pre_val) = &data.pretrain;
    let g = jobs::pretrain(
        &gpt,
        &data.tokenizer,
        pre_train,
        pre_val,
        32,
        &common(ctx, ctx.out.join("gpt"), sz.pretrain_steps, 3e-3, false)?,
    )
    .context("pretraining the GPT")?;
    crate::say!(
        "GPT ({} parameters): {} steps, val loss {:.3} in {:.1} s",
        g.parameters,
        g.steps,
        g.best_eval_loss.unwrap_or(f32::NAN),
        g.seconds
    );
    let e = jobs::pretrain(
        &enc,
        &data.tokenizer,
        pre_train,
        pre_val,
        sz.max_len,
        &common(ctx, ctx.out.join("encoder"), sz.pretrain_steps, 3e-3, false)?,
    )
    .context("pretraining the encoder")?;
    crate::say!(
        "encoder ({} parameters): {} steps, val MLM loss {:.3} in {:.1} s",
        e.parameters,
        e.steps,
        e.best_eval_loss.unwrap_or(f32::NAN),
        e.seconds
    );
    let base = jobs::load_base(&e.model_dir, &ctx.train_device()?)?;
    let c = jobs::finetune_classifier(
        base,
        &data.train,
        &data.val,
        &ClassifyOptions {
            lora: None,
            qat: false,
            max_len: sz.max_len,
            fixed_length: true,
            keep_head: false,
        },
        &common(
            ctx,
            ctx.out.join("classifier"),
            sz.finetune_steps,
            2e-3,
            true,
        )?,
    )
    .context("fine-tuning the intent classifier")?;
    crate::say!(
        "intent classifier: {} steps, validation accuracy {:.1}% in {:.1} s",
        c.steps,
        100.0 * c.val_accuracy.unwrap_or(f32::NAN),
        c.seconds
    );
    let onnx = c
        .onnx
        .clone()
        .context("the classifier job exported no ONNX model")?;
    let labels = read_labels(&c.model_dir)?;
    Ok(Trained {
        summary: TrainSummary {
            gpt: summarize(ctx, &g),
            encoder: summarize(ctx, &e),
            classifier: summarize(ctx, &c),
        },
        classifier: Classifier {
            model_dir: c.model_dir.clone(),
            onnx,
            labels,
            max_len: sz.max_len,
        },
        gpt_dir: g.model_dir.clone(),
    })
}

//! `edgeloop train pretrain|finetune|dpo|export`: thin wrappers over `edgeloop_trainer::train::jobs`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use edgeloop_trainer::export::{ExportOptions, Head};
use edgeloop_trainer::models::{LoraConfig, ModelSpec};
use edgeloop_trainer::optim::{AdamWConfig, Schedule};
use edgeloop_trainer::tokenizer::Tokenizer;
use edgeloop_trainer::train::jobs::{self, ClassifyOptions, JobCommon, JobReport};
use edgeloop_trainer::train::TrainConfig;

/// Arguments of `edgeloop train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Pretrain a GPT (causal LM) or an encoder (masked LM) from scratch.
    #[command(
        after_help = "Example:\n  edgeloop train pretrain --config gpt.json --tokenizer data/tokenizer.json \\\n    --train data/train.jsonl --val data/val.jsonl --out runs/gpt --steps 2000\n\n\
The config is JSON with an \"arch\" tag: {\"arch\": \"gpt\", \"vocab_size\": 512, \"n_layer\": 4, \"n_head\": 4, \
\"n_embd\": 128, \"block_size\": 64} or {\"arch\": \"bert\", \"vocab_size\": .., \"hidden_size\": .., \"num_hidden_layers\": .., \
\"num_attention_heads\": .., \"intermediate_size\": .., \"max_position_embeddings\": ..}.\n\
Data: JSONL records {\"text\": ..} (the data stage's train.jsonl / val.jsonl)."
    )]
    Pretrain(PretrainArgs),
    /// Fine-tune a trained model: sequence classification or instruction SFT (optionally LoRA / QAT).
    #[command(
        after_help = "Examples:\n  edgeloop train finetune --task classify --base runs/bert/model --train data/train.jsonl \\\n    --val data/val.jsonl --out runs/intent --lora-rank 4 --export-onnx\n  \
edgeloop train finetune --task sft --base runs/gpt/model --train sft_train.jsonl --val sft_val.jsonl --out runs/sft\n\n\
classify reads JSONL {\"text\", \"label\"}; sft reads JSONL {\"prompt\", \"response\"} and computes the loss on the response only."
    )]
    Finetune(FinetuneArgs),
    /// Preference tuning (DPO) of a GPT against a frozen copy of itself.
    #[command(
        after_help = "Example:\n  edgeloop train dpo --base runs/sft/model --train prefs.jsonl --val prefs_val.jsonl --out runs/dpo --beta 0.1\n\n\
Reads JSONL {\"prompt\", \"chosen\", \"rejected\"}."
    )]
    Dpo(DpoArgs),
    /// Export a trained model folder to fp32 ONNX.
    Export(ExportArgs),
}

/// Flags shared by the training subcommands.
#[derive(Debug, clap::Args)]
struct Common {
    /// Output folder (checkpoints/, model/, loss.png, report.json, model.onnx).
    #[arg(long)]
    out: PathBuf,
    /// Training split (JSONL).
    #[arg(long)]
    train: PathBuf,
    /// Validation split (JSONL).
    #[arg(long)]
    val: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 12)]
    batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Final learning rate of the cosine decay.
    #[arg(long)]
    min_lr: Option<f64>,
    /// Linear warmup steps.
    #[arg(long)]
    warmup: Option<usize>,
    /// AdamW decoupled weight decay (matrices only).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Clip the global gradient norm (0: off).
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Evaluate every N steps (0: at the end only).
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Stop after this many evaluations without improvement.
    #[arg(long)]
    patience: Option<usize>,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: usize,
    /// Seed (initialization and batch sampling).
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Continue from OUT/checkpoints/latest if present.
    #[arg(long)]
    resume: bool,
    /// Also write OUT/model.onnx (fp32, static batch 1).
    #[arg(long)]
    export_onnx: bool,
    /// ONNX opset of the export (17: GELU as Erf; 20+: the Gelu operator).
    #[arg(long, default_value_t = 17)]
    opset: i64,
    /// Device: cpu, or cuda[:N] (needs a build with --features edgeloop-trainer/cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// bf16 autocast: matrix products in bfloat16, weights, gradients and optimizer state in
    /// f32 (for GPUs; on a CPU it is slower, and only useful to check numerics).
    #[arg(long)]
    bf16: bool,
}

#[derive(Debug, clap::Args)]
struct PretrainArgs {
    #[command(flatten)]
    common: Common,
    /// Model config (JSON with an "arch" tag).
    #[arg(long)]
    config: PathBuf,
    /// Tokenizer (tokenizer.json from `edgeloop data`).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Tokens per training sequence (default: the model's context).
    #[arg(long)]
    seq_len: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FinetuneTask {
    Classify,
    Sft,
}

#[derive(Debug, clap::Args)]
struct FinetuneArgs {
    #[command(flatten)]
    common: Common,
    /// What to fine-tune for.
    #[arg(long, value_enum)]
    task: FinetuneTask,
    /// Base model folder (OUT/model of an earlier run).
    #[arg(long)]
    base: PathBuf,
    /// LoRA rank (enables LoRA: base frozen, adapters merged at the end).
    #[arg(long)]
    lora_rank: Option<usize>,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f32,
    /// LoRA target layers (comma separated; matched against the end of layer names).
    #[arg(long, value_delimiter = ',', default_value = "q,v,query,value")]
    lora_targets: Vec<String>,
    /// Quantization-aware training (fake int8 with the runtime's semantics; classify only).
    #[arg(long)]
    qat: bool,
    /// Longest input in tokens for classification (default: the model's context).
    #[arg(long)]
    max_len: Option<usize>,
    /// Classify: pad every input to --max-len (pad token kept as a token) and export without the
    /// attention_mask input — the form a microcontroller image takes (encoders only).
    #[arg(long)]
    fixed_length: bool,
}

#[derive(Debug, clap::Args)]
struct DpoArgs {
    #[command(flatten)]
    common: Common,
    /// Base model folder (usually the SFT model).
    #[arg(long)]
    base: PathBuf,
    /// DPO temperature.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Model folder (OUT/model of a training run).
    #[arg(long)]
    model: PathBuf,
    /// Where to write the ONNX file.
    #[arg(long)]
    out: PathBuf,
    /// Head: lm, classifier or embedding (encoder only).
    #[arg(long, default_value = "lm")]
    head: String,
    /// Static batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Static sequence length (default: the model's context).
    #[arg(long)]
    seq_len: Option<usize>,
    /// ONNX opset (17 to 21).
    #[arg(long, default_value_t = 17)]
    opset: i64,
}

fn common(c: &Common) -> anyhow::Result<JobCommon> {
    if c.steps == 0 || c.batch_size == 0 {
        bail!("--steps and --batch-size must be at least 1");
    }
    let train = TrainConfig {
        steps: c.steps,
        grad_accum: c.grad_accum,
        schedule: Schedule {
            lr: c.lr,
            min_lr: c.min_lr.unwrap_or(c.lr / 10.0),
            warmup_steps: c.warmup.unwrap_or((c.steps / 20).min(100)),
            decay_steps: c.steps,
        },
        optimizer: AdamWConfig {
            weight_decay: c.weight_decay,
            ..Default::default()
        },
        clip_grad_norm: (c.clip > 0.0).then_some(c.clip),
        eval_every: c.eval_every,
        patience: c.patience,
        checkpoint_every: c.checkpoint_every,
        seed: c.seed,
    };
    train.validate()?;
    Ok(JobCommon {
        out: c.out.clone(),
        train,
        batch_size: c.batch_size,
        resume: c.resume,
        progress: super::output::progress(),
        export_opset: c.export_onnx.then_some(c.opset),
        seed: c.seed,
        device: jobs::device(&c.device)?,
        autocast: if c.bf16 {
            edgeloop_trainer::candle_core::DType::BF16
        } else {
            edgeloop_trainer::candle_core::DType::F32
        },
    })
}

fn print(report: &JobReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    crate::say!(
        "{}: {} steps in {:.1} s{}",
        report.job,
        report.steps,
        report.seconds,
        if report.stopped_early {
            " (early stop)"
        } else {
            ""
        }
    );
    if let Some(l) = report.final_train_loss {
        crate::say!("  final train loss {l:.4}");
    }
    if let Some(l) = report.best_eval_loss {
        crate::say!("  best eval loss   {l:.4}");
    }
    if let Some(a) = report.val_accuracy {
        crate::say!("  val accuracy     {:.2}%", 100.0 * a);
    }
    crate::say!("  model            {}", report.model_dir.display());
    crate::say!("  loss curves      {}", report.loss_png.display());
    if let Some(o) = &report.onnx {
        crate::say!("  fp32 ONNX        {}", o.display());
    }
    Ok(())
}

fn read_spec(path: &Path) -> anyhow::Result<ModelSpec> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading model config {}", path.display()))?;
    serde_json::from_str(&s).with_context(|| format!("{}: not a model config (JSON with \"arch\": \"gpt\" or \"bert\" and its sizes; see --help)", path.display()))
}

/// Runs `edgeloop train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Pretrain(a) => {
            let c = common(&a.common)?;
            let spec = read_spec(&a.config)?;
            let tok = Tokenizer::load(&a.tokenizer)
                .with_context(|| format!("loading tokenizer {}", a.tokenizer.display()))?;
            let seq = a.seq_len.unwrap_or(spec.context());
            let r = jobs::pretrain(&spec, &tok, &a.common.train, &a.common.val, seq, &c)?;
            print(&r, super::output::json())
        }
        Command::Finetune(a) => {
            let c = common(&a.common)?;
            let base = jobs::load_base(&a.base, &c.device)
                .with_context(|| format!("loading base model {}", a.base.display()))?;
            let lora = a.lora_rank.map(|rank| LoraConfig {
                rank,
                alpha: a.lora_alpha,
                target_modules: a.lora_targets.clone(),
            });
            let r = match a.task {
                FinetuneTask::Classify => {
                    let opts = ClassifyOptions {
                        lora,
                        qat: a.qat,
                        max_len: a.max_len.unwrap_or(base.spec.context()),
                        fixed_length: a.fixed_length,
                        keep_head: false,
                    };
                    jobs::finetune_classifier(base, &a.common.train, &a.common.val, &opts, &c)?
                }
                FinetuneTask::Sft => {
                    if a.qat {
                        bail!("--qat applies to --task classify only");
                    }
                    jobs::finetune_sft(base, &a.common.train, &a.common.val, lora, &c)?
                }
            };
            print(&r, super::output::json())
        }
        Command::Dpo(a) => {
            let c = common(&a.common)?;
            let base = jobs::load_base(&a.base, &c.device)
                .with_context(|| format!("loading base model {}", a.base.display()))?;
            let r = jobs::dpo(base, &a.common.train, &a.common.val, a.beta, &c)?;
            print(&r, super::output::json())
        }
        Command::Export(a) => {
            let mut base = jobs::load_base(&a.model, &jobs::device("cpu")?)
                .with_context(|| format!("loading model {}", a.model.display()))?;
            let head = match a.head.as_str() {
                "lm" => Head::Lm,
                "classifier" => Head::Classifier,
                "embedding" => Head::Embedding,
                other => bail!("--head {other}: expected lm, classifier or embedding"),
            };
            let opts = ExportOptions {
                batch: a.batch,
                seq_len: a.seq_len.unwrap_or(base.spec.context()),
                opset: a.opset,
                head,
            };
            jobs::export_model(&base.spec, &mut base.params, &opts, &a.out)?;
            crate::say!("wrote {}", a.out.display());
            Ok(())
        }
    }
}

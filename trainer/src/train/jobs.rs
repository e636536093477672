//! End-to-end jobs the CLI and the demo call: pretraining (GPT or encoder), classification
//! fine-tuning (full, LoRA, QAT), instruction SFT and DPO. Each job reads JSONL data, trains with
//! checkpoints under `out/checkpoints` (resumable), writes the final model to `out/model`
//! (weights-only checkpoint + tokenizer), the loss curves to `out/loss.png`, an fp32 ONNX export
//! when asked, and `out/report.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::tasks::{Classifier, ClassifyTask, DpoTask, LmTask, MlmTask, Preference, SftTask};
use super::{CheckpointTarget, RunOptions, Task, TrainConfig, TrainState};
use crate::checkpoint;
use crate::export::{self, ExportOptions, Head};
use crate::models::{layers, Bert, BuildOptions, Gpt, LoraConfig, ModelSpec, Params};
use crate::optim::AdamW;
use crate::tokenizer::Tokenizer;
use crate::{Result, TrainerError};

/// Settings shared by every job.
#[derive(Debug, Clone)]
pub struct JobCommon {
    /// Output folder.
    pub out: PathBuf,
    /// Training-loop settings.
    pub train: TrainConfig,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Resume from `out/checkpoints/latest` when present.
    pub resume: bool,
    /// Show progress bars.
    pub progress: bool,
    /// Export an fp32 ONNX model to `out/model.onnx` with this opset (static batch 1).
    pub export_opset: Option<i64>,
    /// Seed of parameter initialization.
    pub seed: u64,
    /// Device.
    pub device: Device,
    /// Autocast: the dtype matrix products run in (`F32` off; `BF16` on GPUs). Weights,
    /// gradients and optimizer state stay f32 (see `Params::set_autocast`).
    pub autocast: candle_core::DType,
}

/// What a job reports (also written to `out/report.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobReport {
    /// Which job.
    pub job: String,
    /// Optimizer steps done.
    pub steps: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Last training loss.
    pub final_train_loss: Option<f32>,
    /// Evaluation losses `(step, loss)`.
    pub eval_losses: Vec<(usize, f32)>,
    /// Best evaluation loss.
    pub best_eval_loss: Option<f32>,
    /// Validation accuracy (classification).
    pub val_accuracy: Option<f32>,
    /// Wall-clock seconds of training in this invocation.
    pub seconds: f64,
    /// Number of parameters.
    pub parameters: usize,
    /// Final model folder.
    pub model_dir: PathBuf,
    /// fp32 ONNX export, if any.
    pub onnx: Option<PathBuf>,
    /// Loss-curve PNG.
    pub loss_png: PathBuf,
}

/// An instruction example (`{"prompt": .., "response": ..}` per JSONL line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstructionExample {
    /// The prompt.
    pub prompt: String,
    /// The desired response.
    pub response: String,
}

/// A preference example (`{"prompt": .., "chosen": .., "rejected": ..}` per JSONL line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreferenceExample {
    /// The prompt.
    pub prompt: String,
    /// Preferred response.
    pub chosen: String,
    /// Rejected response.
    pub rejected: String,
}

/// Reads a JSONL file of `T`, naming the file and line of a bad record.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainerError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(line)
                .map_err(|e| TrainerError::Data(format!("{}:{}: {e}", path.display(), i + 1)))?,
        );
    }
    if out.is_empty() {
        return Err(TrainerError::Data(format!(
            "{}: no records",
            path.display()
        )));
    }
    Ok(out)
}

/// Texts of a dataset split written by the data stage (`train.jsonl`, `val.jsonl`).
pub fn read_texts(path: &Path) -> Result<Vec<crate::data::Record>> {
    crate::data::read_jsonl(path).map_err(|e| TrainerError::Data(e.to_string()))
}

fn tok_err(e: crate::data::DataError) -> TrainerError {
    TrainerError::Data(format!("tokenizer: {e}"))
}

/// Token stream of `texts`, each followed by `sep`.
pub fn token_stream(tok: &Tokenizer, texts: &[String], sep: u32) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for t in texts {
        out.extend(tok.encode(t).map_err(tok_err)?);
        out.push(sep);
    }
    Ok(out)
}

/// The device named `cpu`, `cuda` or `cuda:N` (CUDA needs the `cuda` feature and a GPU).
pub fn device(name: &str) -> Result<Device> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let bad = || TrainerError::config("device", format!("`{name}`: expected cpu, cuda or cuda:N"));
    let ordinal = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?,
        None => return Err(bad()),
    };
    Device::new_cuda(ordinal).map_err(|e| {
        TrainerError::config("device", format!("`{name}`: CUDA is not available ({e})"))
    })
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| TrainerError::io(p, e))
}

/// Starts or resumes the loop, then writes the final model, plot, export and report.
struct Finish<'a> {
    job: &'a str,
    common: &'a JobCommon,
    spec: &'a ModelSpec,
    tokenizer: &'a Tokenizer,
}

impl Finish<'_> {
    fn train(&self, task: &mut dyn Task, params: &Params) -> Result<(TrainState, f64)> {
        let root = self.common.out.join("checkpoints");
        let mut opt = AdamW::new(params.trainable(), self.common.train.optimizer.clone())?;
        let mut state = TrainState::new(self.common.train.seed);
        if self.common.resume {
            if let Some(dir) = checkpoint::latest(&root)? {
                let l =
                    checkpoint::load::<ModelSpec, serde_json::Value>(&dir, &self.common.device)?;
                if &l.config != self.spec {
                    return Err(TrainerError::config(
                        "resume",
                        format!("{} holds a different model config", dir.display()),
                    ));
                }
                for (name, var) in params.iter() {
                    let t = l.params.var(name).ok_or_else(|| TrainerError::Weights {
                        name: name.clone(),
                        reason: format!("missing from {}", dir.display()),
                    })?;
                    var.set(t.as_tensor())?;
                }
                state = super::restore(&mut opt, l.optimizer.as_ref(), l.state)?;
            }
        }
        let start = Instant::now();
        let target = CheckpointTarget {
            root,
            model_config: self.spec,
        };
        let opts = RunOptions {
            max_steps_this_run: None,
            progress: self.common.progress,
        };
        super::run(
            task,
            params,
            &mut opt,
            &self.common.train,
            &mut state,
            Some(&target),
            &opts,
        )?;
        Ok((state, start.elapsed().as_secs_f64()))
    }

    fn write(
        &self,
        params: &Params,
        state: &TrainState,
        seconds: f64,
        onnx: Option<PathBuf>,
        val_accuracy: Option<f32>,
        extra: &[(&str, serde_json::Value)],
    ) -> Result<JobReport> {
        let model_dir = self.common.out.join("model");
        checkpoint::save::<_, ()>(&model_dir, params, self.spec, None, None)?;
        self.tokenizer
            .save(&model_dir.join("tokenizer.json"))
            .map_err(tok_err)?;
        for (name, v) in extra {
            checkpoint::write_json(&model_dir.join(name), v)?;
        }
        let loss_png = self.common.out.join("loss.png");
        super::plot_losses(state, &format!("{} loss", self.job), &loss_png)?;
        let report = JobReport {
            job: self.job.to_string(),
            steps: state.step,
            stopped_early: state.stopped_early,
            final_train_loss: state.train_losses.last().map(|x| x.1),
            eval_losses: state.eval_losses.clone(),
            best_eval_loss: state.best_eval,
            val_accuracy,
            seconds,
            parameters: params.num_elements(),
            model_dir,
            onnx,
            loss_png,
        };
        checkpoint::write_json(&self.common.out.join("report.json"), &report)?;
        Ok(report)
    }
}

/// Pretrains a GPT (causal LM) or an encoder (MLM) on the texts of `train`/`val` JSONL files.
pub fn pretrain(
    spec: &ModelSpec,
    tokenizer: &Tokenizer,
    train: &Path,
    val: &Path,
    seq_len: usize,
    common: &JobCommon,
) -> Result<JobReport> {
    spec.validate()?;
    if tokenizer.vocab_size() > spec.vocab_size() {
        return Err(TrainerError::config(
            "vocab_size",
            format!(
                "{} is smaller than the tokenizer's {}",
                spec.vocab_size(),
                tokenizer.vocab_size()
            ),
        ));
    }
    if seq_len == 0 || seq_len > spec.context() {
        return Err(TrainerError::config(
            "seq_len",
            format!("must be in 1..={}", spec.context()),
        ));
    }
    mkdir(&common.out)?;
    let texts = |p: &Path| -> Result<Vec<String>> {
        Ok(read_texts(p)?.into_iter().map(|r| r.text).collect())
    };
    let (train_t, val_t) = (texts(train)?, texts(val)?);
    let sp = tokenizer.specials();
    let mut params = Params::new(common.seed, &common.device);
    params.set_autocast(common.autocast)?;
    let fin = Finish {
        job: "pretrain",
        common,
        spec,
        tokenizer,
    };
    let (state, secs) = match spec {
        ModelSpec::Gpt(c) => {
            let sep = sp.eos.or(sp.sep).unwrap_or(0);
            let mut task = LmTask {
                model: Gpt::new(c, &mut params, BuildOptions::default())?,
                train: token_stream(tokenizer, &train_t, sep)?,
                val: token_stream(tokenizer, &val_t, sep)?,
                batch_size: common.batch_size,
                seq_len,
                eval_windows: 64,
                engine: None,
            };
            fin.train(&mut task, &params)?
        }
        ModelSpec::Bert(c) => {
            let sep = sp.sep.or(sp.eos).unwrap_or(0);
            let mask_id = sp.mask.ok_or_else(|| {
                TrainerError::config(
                    "tokenizer",
                    "has no [MASK] token: cannot pretrain an encoder",
                )
            })?;
            let special: Vec<u32> = [sp.pad, sp.cls, sp.sep, sp.eos, sp.unk]
                .into_iter()
                .flatten()
                .collect();
            let mut task = MlmTask {
                model: Bert::new(c, &mut params, BuildOptions::default())?,
                train: token_stream(tokenizer, &train_t, sep)?,
                val: token_stream(tokenizer, &val_t, sep)?,
                batch_size: common.batch_size,
                seq_len,
                eval_windows: 64,
                mask_id,
                special,
            };
            fin.train(&mut task, &params)?
        }
    };
    let onnx = match common.export_opset {
        Some(opset) => {
            let opts = ExportOptions {
                batch: 1,
                seq_len,
                opset,
                head: Head::Lm,
            };
            Some(export_model(
                spec,
                &mut params,
                &opts,
                &common.out.join("model.onnx"),
            )?)
        }
        None => None,
    };
    fin.write(&params, &state, secs, onnx, None, &[])
}

/// Builds the model of `spec` on `params` and writes its ONNX export to `path`.
pub fn export_model(
    spec: &ModelSpec,
    params: &mut Params,
    opts: &ExportOptions,
    path: &Path,
) -> Result<PathBuf> {
    let m = match spec {
        ModelSpec::Gpt(c) => {
            export::export_gpt(&Gpt::new(c, params, BuildOptions::default())?, opts)?
        }
        ModelSpec::Bert(c) => {
            export::export_bert(&Bert::new(c, params, BuildOptions::default())?, opts)?
        }
    };
    export::write(&m, path)?;
    Ok(path.to_path_buf())
}

/// A base model loaded from a checkpoint or model folder (`config.json` with an `arch` tag).
#[derive(Debug)]
pub struct Base {
    /// Its config.
    pub spec: ModelSpec,
    /// Its weights.
    pub params: Params,
    /// Its tokenizer (`tokenizer.json` in the folder).
    pub tokenizer: Tokenizer,
}

/// Loads `dir` (a `model` folder written by a job).
pub fn load_base(dir: &Path, device: &Device) -> Result<Base> {
    let l = checkpoint::load::<ModelSpec, serde_json::Value>(dir, device)?;
    // Callers read sizes (the context length) before they build the model: refuse a config
    // that would not build.
    l.config.validate()?;
    let tokenizer = Tokenizer::load(&dir.join("tokenizer.json")).map_err(tok_err)?;
    Ok(Base {
        spec: l.config,
        params: l.params,
        tokenizer,
    })
}

/// A fine-tuned classifier loaded for inference (what [`finetune_classifier`] wrote): the model,
/// its tokenizer and its label names (output index order).
#[derive(Debug)]
pub struct LoadedClassifier {
    /// The model, wrapped for batched prediction.
    pub task: ClassifyTask,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Label names, index = class.
    pub labels: Vec<String>,
}

/// Loads a classifier folder (`config.json`, weights, `tokenizer.json`, `labels.json`).
pub fn load_classifier(dir: &Path, device: &Device) -> Result<LoadedClassifier> {
    let base = load_base(dir, device)?;
    let labels: Vec<String> = checkpoint::read_json(&dir.join("labels.json"))?;
    let mut params = base.params;
    let model = match &base.spec {
        ModelSpec::Gpt(c) => Classifier::Gpt(Gpt::new(c, &mut params, BuildOptions::default())?),
        ModelSpec::Bert(c) => Classifier::Bert(Bert::new(c, &mut params, BuildOptions::default())?),
    };
    if model.num_labels() != labels.len() {
        return Err(TrainerError::Data(format!(
            "{}: the model has {} classes, labels.json {}",
            dir.display(),
            model.num_labels(),
            labels.len()
        )));
    }
    let pad = base.tokenizer.specials().pad.unwrap_or(0);
    Ok(LoadedClassifier {
        task: ClassifyTask {
            model,
            train: Vec::new(),
            val: Vec::new(),
            batch_size: 32,
            pad,
        },
        tokenizer: base.tokenizer,
        labels,
    })
}

/// Classification fine-tuning settings.
#[derive(Debug, Clone, Default)]
pub struct ClassifyOptions {
    /// LoRA adapters (base frozen, adapters + head trained, merged at the end).
    pub lora: Option<LoraConfig>,
    /// Quantization-aware training.
    pub qat: bool,
    /// Longest input in tokens (cut beyond; at most the context).
    pub max_len: usize,
    /// Pad every input to `max_len` with the pad token, kept as a token (no padding mask), and
    /// export the encoder without the `attention_mask` input: the form a microcontroller image
    /// takes (see [`export::export_bert_fixed_length`], [`export::export_gpt_fixed_length`]).
    pub fixed_length: bool,
    /// Continue from the base's own classification head (retraining a deployed classifier on
    /// the same labels) instead of starting a fresh one. The base must be a classifier with as
    /// many labels as the training set has.
    pub keep_head: bool,
}

/// Fine-tunes `base` as a sequence classifier on labelled JSONL records.
pub fn finetune_classifier(
    base: Base,
    train: &Path,
    val: &Path,
    options: &ClassifyOptions,
    common: &JobCommon,
) -> Result<JobReport> {
    mkdir(&common.out)?;
    let (train_r, val_r) = (read_texts(train)?, read_texts(val)?);
    let mut labels: Vec<String> = train_r.iter().filter_map(|r| r.label.clone()).collect();
    labels.sort();
    labels.dedup();
    if labels.len() < 2 {
        return Err(TrainerError::Data(format!(
            "{}: need at least 2 distinct labels, found {}",
            train.display(),
            labels.len()
        )));
    }
    let tok = &base.tokenizer;
    let max_len = options.max_len.clamp(1, base.spec.context());
    let encode = |rs: &[crate::data::Record], path: &Path| -> Result<Vec<(Vec<u32>, u32)>> {
        rs.iter()
            .enumerate()
            .map(|(i, r)| {
                let label = r.label.as_ref().ok_or_else(|| {
                    TrainerError::Data(format!("{}: record {} has no label", path.display(), i + 1))
                })?;
                let id = labels.binary_search(label).map_err(|_| {
                    TrainerError::Data(format!(
                        "{}: label `{label}` does not occur in the training set",
                        path.display()
                    ))
                })?;
                let mut ids = tok.encode(&r.text).map_err(tok_err)?;
                ids.truncate(max_len);
                if ids.is_empty() {
                    return Err(TrainerError::Data(format!(
                        "{}: record {} has no tokens",
                        path.display(),
                        i + 1
                    )));
                }
                if options.fixed_length {
                    ids.resize(max_len, tok.specials().pad.unwrap_or(0));
                }
                Ok((ids, id as u32))
            })
            .collect()
    };
    let (train_x, val_x) = (encode(&train_r, train)?, encode(&val_r, val)?);
    let base_labels = match &base.spec {
        ModelSpec::Gpt(c) => c.num_labels,
        ModelSpec::Bert(c) => c.num_labels,
    };
    if options.keep_head && base_labels != Some(labels.len()) {
        return Err(TrainerError::config(
            "keep_head",
            format!(
                "the base has {} labels, the training set {}: keep_head needs a classifier with the same labels",
                base_labels.map_or("no".to_string(), |n| n.to_string()),
                labels.len()
            ),
        ));
    }
    let mut spec = base.spec.clone();
    spec.set_num_labels(Some(labels.len()));
    let mut params = base.params;
    params.set_autocast(common.autocast)?;
    if !options.keep_head {
        params.remove_where(|n| n.starts_with("classifier."));
    }
    params.reseed(common.seed);
    let build = BuildOptions {
        lora: options.lora.clone(),
        qat: options.qat,
    };
    let model = match &spec {
        ModelSpec::Gpt(c) => Classifier::Gpt(Gpt::new(c, &mut params, build)?),
        ModelSpec::Bert(c) => Classifier::Bert(Bert::new(c, &mut params, build)?),
    };
    if options.lora.is_some() {
        params.freeze_where(|n| !(n.contains(".lora_") || n.starts_with("classifier.")));
    }
    let pad = tok.specials().pad.unwrap_or(0);
    let mut task = ClassifyTask {
        model,
        train: train_x,
        val: val_x,
        batch_size: common.batch_size,
        pad,
    };
    let fin = Finish {
        job: "finetune-classify",
        common,
        spec: &spec,
        tokenizer: tok,
    };
    let (state, secs) = fin.train(&mut task, &params)?;
    let (_, acc) = task.evaluate(&task.val)?;
    if let Some(l) = &options.lora {
        layers::merge_lora(&mut params, l)?;
    }
    params.unfreeze_all();
    let onnx = match common.export_opset {
        Some(opset) => {
            let opts = ExportOptions {
                batch: 1,
                seq_len: max_len,
                opset,
                head: Head::Classifier,
            };
            let path = common.out.join("model.onnx");
            Some(match (&spec, options.fixed_length) {
                (ModelSpec::Bert(c), true) => {
                    let m = Bert::new(c, &mut params, BuildOptions::default())?;
                    export::write(&export::export_bert_fixed_length(&m, &opts)?, &path)?;
                    path
                }
                (ModelSpec::Gpt(c), true) => {
                    let m = Gpt::new(c, &mut params, BuildOptions::default())?;
                    export::write(&export::export_gpt_fixed_length(&m, &opts)?, &path)?;
                    path
                }
                _ => export_model(&spec, &mut params, &opts, &path)?,
            })
        }
        None => None,
    };
    fin.write(
        &params,
        &state,
        secs,
        onnx,
        Some(acc),
        &[("labels.json", serde_json::json!(labels))],
    )
}

fn encode_pair(
    tok: &Tokenizer,
    prompt: &str,
    response: &str,
    eos: Option<u32>,
    max: usize,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let p = tok.encode(prompt).map_err(tok_err)?;
    let mut r = tok.encode(response).map_err(tok_err)?;
    r.extend(eos);
    if p.len() + r.len() > max + 1 {
        return Err(TrainerError::Data(format!(
            "an example has {} tokens, more than the context {} + 1: shorten it or use a longer context",
            p.len() + r.len(),
            max
        )));
    }
    if r.is_empty() {
        return Err(TrainerError::Data(
            "an example has an empty response".into(),
        ));
    }
    Ok((p, r))
}

fn gpt_config(spec: &ModelSpec, job: &str) -> Result<crate::models::GptConfig> {
    match spec {
        ModelSpec::Gpt(c) => Ok(c.clone()),
        ModelSpec::Bert(_) => Err(TrainerError::config(
            "arch",
            format!("{job} needs a GPT base model, not an encoder"),
        )),
    }
}

/// Instruction SFT of a GPT base on `{"prompt", "response"}` JSONL (loss on the response only).
pub fn finetune_sft(
    base: Base,
    train: &Path,
    val: &Path,
    lora: Option<LoraConfig>,
    common: &JobCommon,
) -> Result<JobReport> {
    mkdir(&common.out)?;
    let cfg = gpt_config(&base.spec, "instruction SFT")?;
    let tok = &base.tokenizer;
    let eos = tok.specials().eos;
    let load = |p: &Path| -> Result<Vec<(Vec<u32>, Vec<u32>)>> {
        read_jsonl::<InstructionExample>(p)?
            .iter()
            .map(|e| encode_pair(tok, &e.prompt, &e.response, eos, cfg.block_size))
            .collect()
    };
    let (train_x, val_x) = (load(train)?, load(val)?);
    let mut params = base.params;
    params.set_autocast(common.autocast)?;
    let model = Gpt::new(
        &cfg,
        &mut params,
        BuildOptions {
            lora: lora.clone(),
            qat: false,
        },
    )?;
    if lora.is_some() {
        params.freeze_where(|n| !n.contains(".lora_"));
    }
    let mut task = SftTask {
        model,
        train: train_x,
        val: val_x,
        batch_size: common.batch_size,
        pad: tok.specials().pad.unwrap_or(0),
    };
    let fin = Finish {
        job: "finetune-sft",
        common,
        spec: &base.spec,
        tokenizer: tok,
    };
    let (state, secs) = fin.train(&mut task, &params)?;
    if let Some(l) = &lora {
        layers::merge_lora(&mut params, l)?;
    }
    let onnx = match common.export_opset {
        Some(opset) => Some(export_model(
            &base.spec,
            &mut params,
            &ExportOptions {
                batch: 1,
                seq_len: cfg.block_size,
                opset,
                head: Head::Lm,
            },
            &common.out.join("model.onnx"),
        )?),
        None => None,
    };
    fin.write(&params, &state, secs, onnx, None, &[])
}

/// DPO of a GPT base on `{"prompt", "chosen", "rejected"}` JSONL, against a frozen copy of the base.
pub fn dpo(
    base: Base,
    train: &Path,
    val: &Path,
    beta: f64,
    common: &JobCommon,
) -> Result<JobReport> {
    let cfg = gpt_config(&base.spec, "DPO")?;
    let tok = &base.tokenizer;
    let eos = tok.specials().eos;
    let load = |p: &Path| -> Result<Vec<Preference>> {
        read_jsonl::<PreferenceExample>(p)?
            .iter()
            .map(|e| {
                let (pr, c) = encode_pair(tok, &e.prompt, &e.chosen, eos, cfg.block_size)?;
                let (_, r) = encode_pair(tok, &e.prompt, &e.rejected, eos, cfg.block_size)?;
                Ok((pr, c, r))
            })
            .collect()
    };
    let (train_x, val_x) = (load(train)?, load(val)?);
    dpo_pairs(base, train_x, val_x, beta, common)
}

/// DPO of a GPT base on preference pairs already in token ids — `(prompt, chosen, rejected)`,
/// responses ending with the end-of-text token when the model has one — against a frozen copy
/// of the base. Field feedback on generations arrives this way (`edgeloop retrain`).
pub fn dpo_pairs(
    base: Base,
    train: Vec<Preference>,
    val: Vec<Preference>,
    beta: f64,
    common: &JobCommon,
) -> Result<JobReport> {
    dpo_pairs_nll(base, train, val, beta, 0.0, common)
}

/// [`dpo_pairs`] with an NLL term of weight `nll_weight` on the chosen responses
/// ([`crate::train::objectives::dpo_nll_loss`]).
pub fn dpo_pairs_nll(
    base: Base,
    train: Vec<Preference>,
    val: Vec<Preference>,
    beta: f64,
    nll_weight: f64,
    common: &JobCommon,
) -> Result<JobReport> {
    mkdir(&common.out)?;
    let cfg = gpt_config(&base.spec, "DPO")?;
    if !(beta > 0.0 && beta.is_finite()) {
        return Err(TrainerError::config("beta", "must be a positive number"));
    }
    if !(nll_weight >= 0.0 && nll_weight.is_finite()) {
        return Err(TrainerError::config("nll_weight", "must be a number ≥ 0"));
    }
    for (set, name) in [(&train, "training"), (&val, "validation")] {
        if set.is_empty() {
            return Err(TrainerError::Data(format!("no {name} preference pairs")));
        }
        for (i, (p, c, r)) in set.iter().enumerate() {
            let longest = c.len().max(r.len());
            if p.is_empty() || c.is_empty() || r.is_empty() {
                return Err(TrainerError::Data(format!(
                    "{name} pair {}: an empty prompt or response",
                    i + 1
                )));
            }
            if p.len() + longest > cfg.block_size + 1 {
                return Err(TrainerError::Data(format!(
                    "{name} pair {}: {} tokens, more than the context {} + 1",
                    i + 1,
                    p.len() + longest,
                    cfg.block_size
                )));
            }
            if let Some(&bad) = p
                .iter()
                .chain(c)
                .chain(r)
                .find(|&&t| t as usize >= cfg.vocab_size)
            {
                return Err(TrainerError::Data(format!(
                    "{name} pair {}: token id {bad} is outside the vocabulary of {}",
                    i + 1,
                    cfg.vocab_size
                )));
            }
        }
    }
    let tok = &base.tokenizer;
    let (train_x, val_x) = (train, val);
    let mut params = base.params;
    params.set_autocast(common.autocast)?;
    let mut ref_params = Params::from_tensors(params.to_tensors()?, &common.device)?;
    ref_params.set_autocast(common.autocast)?;
    let reference = Gpt::new(&cfg, &mut ref_params, BuildOptions::default())?;
    let policy = Gpt::new(&cfg, &mut params, BuildOptions::default())?;
    let mut task = DpoTask {
        policy,
        reference,
        train: train_x,
        val: val_x,
        batch_size: common.batch_size,
        pad: tok.specials().pad.unwrap_or(0),
        beta,
        nll_weight,
    };
    let fin = Finish {
        job: "dpo",
        common,
        spec: &base.spec,
        tokenizer: tok,
    };
    let (state, secs) = fin.train(&mut task, &params)?;
    let margin = task.reward_margin(&task.val)?;
    let onnx = match common.export_opset {
        Some(opset) => Some(export_model(
            &base.spec,
            &mut params,
            &ExportOptions {
                batch: 1,
                seq_len: cfg.block_size,
                opset,
                head: Head::Lm,
            },
            &common.out.join("model.onnx"),
        )?),
        None => None,
    };
    fin.write(
        &params,
        &state,
        secs,
        onnx,
        None,
        &[(
            "dpo.json",
            serde_json::json!({"beta": beta, "val_reward_margin": margin}),
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Schedule;
    use crate::tokenizer::CharConfig;

    fn write_records(path: &Path, n: usize, offset: usize) -> Vec<String> {
        let mut lines = String::new();
        let mut texts = vec![];
        for i in 0..n {
            let (text, label) = if (i + offset).is_multiple_of(2) {
                (format!("turn on the light {}", i % 7), "on")
            } else {
                (format!("turn off the fan {}", i % 5), "off")
            };
            lines.push_str(
                &serde_json::to_string(&crate::data::Record::labelled(
                    text.clone(),
                    label,
                    Vec::<(String, String)>::new(),
                ))
                .unwrap(),
            );
            lines.push('\n');
            texts.push(text);
        }
        std::fs::write(path, lines).unwrap();
        texts
    }

    fn common(out: PathBuf, steps: usize) -> JobCommon {
        JobCommon {
            out,
            autocast: candle_core::DType::F32,
            train: TrainConfig {
                steps,
                grad_accum: 1,
                schedule: Schedule {
                    lr: 1e-2,
                    min_lr: 1e-3,
                    warmup_steps: 2,
                    decay_steps: steps,
                },
                optimizer: Default::default(),
                clip_grad_norm: Some(1.0),
                eval_every: 5,
                patience: None,
                checkpoint_every: 5,
                seed: 3,
            },
            batch_size: 8,
            resume: true,
            progress: false,
            export_opset: Some(17),
            seed: 1,
            device: Device::Cpu,
        }
    }

    /// Pretrain a tiny GPT on JSONL text with the data stage's character tokenizer, then
    /// fine-tune it as a LoRA classifier; both write model, loss curves, report and ONNX.
    #[test]
    fn pretrain_then_lora_classifier_end_to_end() {
        let root = std::env::temp_dir().join(format!("edgeloop-jobs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let texts = write_records(&root.join("train.jsonl"), 40, 0);
        write_records(&root.join("val.jsonl"), 10, 1);
        let tok = Tokenizer::train_char(texts.iter(), &CharConfig::default()).unwrap();
        let spec: ModelSpec = serde_json::from_value(serde_json::json!({
            "arch": "gpt", "vocab_size": tok.vocab_size(), "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 24
        }))
        .unwrap();
        let c = common(root.join("gpt"), 10);
        let r = pretrain(
            &spec,
            &tok,
            &root.join("train.jsonl"),
            &root.join("val.jsonl"),
            16,
            &c,
        )
        .unwrap();
        assert_eq!(r.steps, 10);
        assert!(
            r.loss_png.is_file()
                && r.onnx.as_ref().unwrap().is_file()
                && c.out.join("report.json").is_file()
        );
        // resuming a finished run does no more steps
        let again = pretrain(
            &spec,
            &tok,
            &root.join("train.jsonl"),
            &root.join("val.jsonl"),
            16,
            &c,
        )
        .unwrap();
        assert_eq!(again.steps, 10);
        assert_eq!(again.eval_losses, r.eval_losses);

        let base = load_base(&r.model_dir, &Device::Cpu).unwrap();
        let lora = LoraConfig {
            rank: 2,
            alpha: 4.0,
            target_modules: vec!["q".into(), "v".into()],
        };
        let opts = ClassifyOptions {
            lora: Some(lora),
            qat: false,
            max_len: 24,
            fixed_length: false,
            keep_head: false,
        };
        let cc = common(root.join("intent"), 30);
        let rc = finetune_classifier(
            base,
            &root.join("train.jsonl"),
            &root.join("val.jsonl"),
            &opts,
            &cc,
        )
        .unwrap();
        println!(
            "tiny LoRA intent classifier: val accuracy {:?}",
            rc.val_accuracy
        );
        assert!(rc.val_accuracy.unwrap() >= 0.9);
        let labels: Vec<String> = checkpoint::read_json(&rc.model_dir.join("labels.json")).unwrap();
        assert_eq!(labels, vec!["off", "on"]);
        let merged = load_base(&rc.model_dir, &Device::Cpu).unwrap();
        assert!(
            merged.params.iter().all(|(n, _)| !n.contains("lora")),
            "adapters merged for export"
        );
        // The folder loads back as a classifier that predicts like the trained one.
        let loaded = load_classifier(&rc.model_dir, &Device::Cpu).unwrap();
        assert_eq!(loaded.labels, vec!["off", "on"]);
        let val = read_texts(&root.join("val.jsonl")).unwrap();
        let rows: Vec<Vec<u32>> = val
            .iter()
            .map(|r| loaded.tokenizer.encode(&r.text).unwrap())
            .collect();
        let pred = loaded.task.predict(&rows).unwrap();
        let correct = pred
            .iter()
            .zip(&val)
            .filter(|(p, r)| Some(&loaded.labels[**p as usize]) == r.label.as_ref())
            .count();
        assert!(
            correct as f64 / val.len() as f64 >= 0.9,
            "{correct}/{}",
            val.len()
        );
        // Retraining a deployed classifier continues from its head: with a ~zero learning rate
        // the continued model keeps the trained accuracy, a fresh head does not.
        let again = |keep_head: bool, name: &str| {
            let mut cc = common(root.join(name), 1);
            cc.train.schedule.lr = 1e-9;
            cc.train.schedule.min_lr = 1e-9;
            let opts = ClassifyOptions {
                max_len: 24,
                keep_head,
                ..ClassifyOptions::default()
            };
            finetune_classifier(
                load_base(&rc.model_dir, &Device::Cpu).unwrap(),
                &root.join("train.jsonl"),
                &root.join("val.jsonl"),
                &opts,
                &cc,
            )
        };
        let kept = again(true, "kept").unwrap();
        assert!(kept.val_accuracy.unwrap() >= 0.9, "the head was kept");
        let fresh = again(false, "fresh").unwrap();
        println!(
            "zero-lr continuation: kept head {:?}, fresh head {:?}",
            kept.val_accuracy, fresh.val_accuracy
        );
        assert!(
            fresh.val_accuracy < kept.val_accuracy,
            "a fresh head is untrained"
        );
        // A base without a head cannot keep one.
        let err = finetune_classifier(
            load_base(&r.model_dir, &Device::Cpu).unwrap(),
            &root.join("train.jsonl"),
            &root.join("val.jsonl"),
            &ClassifyOptions {
                max_len: 24,
                keep_head: true,
                ..ClassifyOptions::default()
            },
            &common(root.join("nohead"), 1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("keep_head"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_problem() {
        let root = std::env::temp_dir().join(format!("edgeloop-jobs-bad-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("x.jsonl"), "{\"prompt\": \"a\"}\nnot json\n").unwrap();
        let e = read_jsonl::<InstructionExample>(&root.join("x.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.jsonl:1"), "{e}");
        assert!(device("tpu").is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}

//! The text selection: footprints of every candidate before training, brief training of the
//! survivors' architectures (one trained model per architecture, shared by its precisions),
//! each precision's real quantized image scored on the validation split, the Pareto front, full
//! training of the winner and the check of its trained image.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::Device;
use edgeloop_quantize::Dataset;
use edgeloop_trainer::models::{ModelSpec, Params};
use edgeloop_trainer::optim::{AdamWConfig, Schedule};
use edgeloop_trainer::tokenizer::Tokenizer;
use edgeloop_trainer::train::jobs::{self, Base, ClassifyOptions, JobCommon};
use edgeloop_trainer::train::TrainConfig;
use serde::Serialize;

use super::build::{build, export, image_accuracy, untrained};
use super::space::{Precision, TextCandidate, TextSearchSpace};
use super::task::{calibration, tokenizers, TextTask};
use crate::device::Budget;
use crate::error::{Result, SelectError};
use crate::footprint::{Built, Footprint};
use crate::pareto::{front, pick, Point};
use crate::progress::Steps;
use crate::rows::{point, ranked_row, survivors};
use crate::search::{check_training, Brief};

/// Settings of a text selection run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextSelectConfig {
    /// What every candidate must fit (with the text firmware's overheads, [`Budget::for_text`]).
    pub budget: Budget,
    /// The candidates.
    pub space: TextSearchSpace,
    /// Seed of every model's initial weights and batch order (the same for all candidates).
    pub seed: u64,
    /// Optimizer steps of the brief training of each surviving architecture.
    pub brief_steps: usize,
    /// Optimizer steps of the winner's full training.
    pub full_steps: usize,
    /// Texts per step.
    pub batch: usize,
    /// Peak learning rate (warm-up over the first tenth, cosine decay to a tenth).
    pub lr: f64,
    /// Training texts the quantizer calibrates on.
    pub calibration_texts: usize,
    /// Pick the lowest-latency front member whose validation accuracy is within this much of
    /// the best (0: the most accurate).
    pub tolerance: f64,
    /// Folder for the trainer's job outputs (`brief/<arch>/`, `winner/`).
    pub work_dir: PathBuf,
    /// Show progress bars.
    pub progress: bool,
}

impl TextSelectConfig {
    /// Defaults for `budget` (made [`Budget::for_text`]): the default space, seed 1, 150 brief
    /// steps, 1000 full steps, batch 32, learning rate 2e-3 (the demo's classifier rate), 64
    /// calibration texts, tolerance 0.01, jobs under `work_dir`.
    pub fn new(budget: Budget, work_dir: PathBuf) -> Self {
        TextSelectConfig {
            budget: budget.for_text(),
            space: TextSearchSpace::default(),
            seed: 1,
            brief_steps: 150,
            full_steps: 1000,
            batch: 32,
            lr: 2e-3,
            calibration_texts: 64,
            tolerance: 0.01,
            work_dir,
            progress: false,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.budget.validate()?;
        self.space.validate()?;
        check_training(
            self.brief_steps,
            self.full_steps,
            self.batch,
            self.lr,
            self.tolerance,
        )?;
        if self.calibration_texts == 0 {
            return Err(SelectError::Config("calibrate on at least one text".into()));
        }
        Ok(())
    }

    /// The trainer's job settings for `steps` steps writing into `out`.
    pub fn job(&self, out: PathBuf, steps: usize, progress: bool) -> JobCommon {
        JobCommon {
            out,
            autocast: candle_core::DType::F32,
            train: TrainConfig {
                steps,
                grad_accum: 1,
                schedule: Schedule {
                    lr: self.lr,
                    min_lr: self.lr / 10.0,
                    warmup_steps: (steps / 10).max(1),
                    decay_steps: steps,
                },
                optimizer: AdamWConfig {
                    weight_decay: 0.01,
                    ..Default::default()
                },
                clip_grad_norm: Some(1.0),
                eval_every: steps,
                patience: None,
                checkpoint_every: steps,
                seed: self.seed,
            },
            batch_size: self.batch,
            resume: false,
            progress,
            export_opset: Some(super::build::OPSET),
            seed: self.seed,
            device: Device::Cpu,
        }
    }
}

/// Brief-training result of a survivor: `val_accuracy` is the candidate's quantized image's
/// (what the front ranks), `fp32_val_accuracy` the fp32 model's (shared by the architecture's
/// precisions), `seconds` the architecture's training time.
pub type TextBrief = Brief;

/// One candidate's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextRow {
    /// The candidate.
    pub candidate: TextCandidate,
    /// Actual vocabulary of its tokenizer.
    pub vocab_size: usize,
    /// Its model config in the trainer's format (none when the combination is invalid).
    pub spec: Option<ModelSpec>,
    /// Its exact footprint (none when its image could not be built).
    pub footprint: Option<Footprint>,
    /// Why it was dropped before training (empty: it was trained).
    pub dropped: Vec<String>,
    /// Brief training (survivors only).
    pub brief: Option<TextBrief>,
    /// Whether it is on the Pareto front.
    pub on_front: bool,
}

ranked_row!(TextRow);

/// The chosen candidate after full training.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextWinner {
    /// Index into [`TextSelection::rows`].
    pub row: usize,
    /// Its model config (the trainer's `config.json` format).
    pub spec: ModelSpec,
    /// Its precision.
    pub precision: Precision,
    /// ONNX nodes the quantizer kept float.
    pub float_nodes: Vec<String>,
    /// The trainer's model folder (config, weights, tokenizer, labels).
    pub model_dir: PathBuf,
    /// Footprint of the trained image.
    pub footprint: Footprint,
    /// Whether the trained image's arena, RAM, MACs and header equal the footprint predicted
    /// before training and its flash is within the predicted bound.
    pub footprint_as_predicted: bool,
    /// Predicted flash bound minus the trained image's flash (bytes saved by deduplication).
    pub flash_below_bound: u64,
    /// fp32 validation accuracy after full training.
    pub fp32_val_accuracy: f32,
    /// Validation accuracy of the trained image.
    pub val_accuracy: f32,
    /// Test accuracy of the trained image on the host runtime.
    pub test_accuracy: f32,
    /// Full training wall time (s).
    pub seconds: f64,
}

/// Everything a text selection produced.
#[derive(Debug, Clone, Serialize)]
pub struct TextSelection {
    /// The settings.
    pub config: TextSelectConfig,
    /// Class names.
    pub labels: Vec<String>,
    /// One row per candidate.
    pub rows: Vec<TextRow>,
    /// Indices of the rows on the front.
    pub front: Vec<usize>,
    /// The winner.
    pub winner: TextWinner,
    /// The winner's trained image (not serialized).
    #[serde(skip)]
    pub built: Option<Built>,
    /// The winner's tokenizer (not serialized).
    #[serde(skip)]
    pub tokenizer: Option<Tokenizer>,
}

/// The footprint of a candidate with config `spec`, from an image built before any training.
pub fn footprint(
    candidate: &TextCandidate,
    spec: &ModelSpec,
    calib: &Dataset,
    budget: &Budget,
    seed: u64,
) -> Result<Footprint> {
    let mut params = untrained(spec, seed)?;
    let fp32 = export(spec, &mut params, &candidate.name)?;
    let built = build(&fp32, calib, candidate.precision, &candidate.name)?;
    Footprint::with_front_end(&built.compiled, budget, 0)
}

/// Trains the classifier `spec` with the trainer's fine-tuning job (fresh weights, fixed-length
/// inputs) for `steps` steps into `out`; returns its report and the fp32 ONNX it exported.
fn train(
    task: &TextTask,
    spec: &ModelSpec,
    tok: &Tokenizer,
    cfg: &TextSelectConfig,
    out: PathBuf,
    steps: usize,
    progress: bool,
) -> Result<(jobs::JobReport, edgeloop_quantize::OnnxModel)> {
    let mut base_spec = spec.clone();
    base_spec.set_num_labels(None);
    let base = Base {
        spec: base_spec,
        params: Params::new(cfg.seed, &Device::Cpu),
        tokenizer: tok.clone(),
    };
    let opts = ClassifyOptions {
        lora: None,
        qat: false,
        max_len: spec.context(),
        fixed_length: true,
        keep_head: false,
    };
    let rep = jobs::finetune_classifier(
        base,
        &task.train_path,
        &task.val_path,
        &opts,
        &cfg.job(out, steps, progress),
    )?;
    let onnx = rep
        .onnx
        .as_ref()
        .ok_or_else(|| SelectError::Config("the trainer exported no ONNX model".into()))?;
    let fp32 = edgeloop_quantize::OnnxModel::from_path(onnx)?;
    Ok((rep, fp32))
}

/// Runs the text selection on `task`.
pub fn select_text(task: &TextTask, cfg: &TextSelectConfig) -> Result<TextSelection> {
    cfg.validate()?;
    let classes = task.labels.len();
    let candidates = cfg.space.candidates()?;
    if task.val.is_empty() || task.test.is_empty() {
        return Err(SelectError::Config(
            "the task needs validation and test texts".into(),
        ));
    }
    let toks = tokenizers(task, &cfg.space.vocabs)?;
    // Encoded splits and calibration sets per (vocabulary, context).
    struct Enc {
        val: Vec<(Vec<u32>, u32)>,
        test: Vec<(Vec<u32>, u32)>,
        calib: Dataset,
    }
    let mut enc: BTreeMap<(usize, usize), Enc> = BTreeMap::new();
    for (&v, tok) in &toks {
        for &t in &cfg.space.contexts {
            if enc.contains_key(&(v, t)) {
                continue;
            }
            let train_rows = task.encode(tok, &task.train, t)?;
            enc.insert(
                (v, t),
                Enc {
                    val: task.encode(tok, &task.val, t)?,
                    test: task.encode(tok, &task.test, t)?,
                    calib: calibration(&train_rows, cfg.calibration_texts)?,
                },
            );
        }
    }
    let get_enc = |c: &TextCandidate| {
        enc.get(&(c.vocab, c.context))
            .ok_or_else(|| SelectError::Config(format!("{}: no encoded data", c.name)))
    };
    let get_tok = |c: &TextCandidate| {
        toks.get(&c.vocab)
            .ok_or_else(|| SelectError::Config(format!("{}: no tokenizer", c.name)))
    };

    // 1. Exact footprints before training.
    let pb = Steps::new(cfg.progress, candidates.len(), "footprints");
    let mut rows = Vec::with_capacity(candidates.len());
    for c in candidates {
        pb.start(&c.name);
        let vocab_size = get_tok(&c)?.vocab_size();
        let (spec, footprint, dropped) = match c.invalid() {
            Some(why) => (None, None, vec![format!("not a model: {why}")]),
            None => {
                let spec = c.spec(vocab_size, classes)?;
                match footprint(&c, &spec, &get_enc(&c)?.calib, &cfg.budget, cfg.seed) {
                    Ok(f) => {
                        let d = f.over_budget.clone();
                        (Some(spec), Some(f), d)
                    }
                    Err(e) => (Some(spec), None, vec![format!("image not built: {e}")]),
                }
            }
        };
        rows.push(TextRow {
            candidate: c,
            vocab_size,
            spec,
            footprint,
            dropped,
            brief: None,
            on_front: false,
        });
        pb.done();
    }
    pb.finish();
    let survivors = survivors(&rows)?;

    // 2. Brief training: one model per surviving architecture (same steps and seed for all),
    // then each surviving precision's image built from it and scored on the validation split.
    let mut archs: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in &survivors {
        archs.entry(rows[i].candidate.arch()).or_default().push(i);
    }
    let pb = Steps::new(cfg.progress, archs.len(), "brief training");
    for (arch, members) in &archs {
        pb.start(arch);
        let first = &rows[members[0]];
        let spec = first
            .spec
            .clone()
            .ok_or_else(|| SelectError::Config(format!("{arch}: no model config")))?;
        let tok = get_tok(&first.candidate)?;
        let e = get_enc(&first.candidate)?;
        let (rep, fp32) = train(
            task,
            &spec,
            tok,
            cfg,
            cfg.work_dir.join("brief").join(arch),
            cfg.brief_steps,
            false,
        )?;
        for &i in members {
            let c = &rows[i].candidate;
            let built = build(&fp32, &e.calib, c.precision, &c.name)?;
            let acc = image_accuracy(&built.compiled, &e.val)?;
            rows[i].brief = Some(TextBrief {
                val_accuracy: acc,
                fp32_val_accuracy: rep.val_accuracy.unwrap_or(f32::NAN),
                seconds: rep.seconds,
                params: rep.parameters,
            });
        }
        pb.done();
    }
    pb.finish();

    // 3. The front over the survivors.
    let points: Vec<Point> = rows.iter().map(point).collect();
    let front = front(&points);
    for &i in &front {
        rows[i].on_front = true;
    }
    let w = pick(&points, &front, cfg.tolerance)
        .ok_or_else(|| SelectError::Config("the front is empty".into()))?;

    // 4. Full training of the winner, its image, and the check of its footprint.
    let c = rows[w].candidate.clone();
    let spec = rows[w]
        .spec
        .clone()
        .ok_or_else(|| SelectError::Config(format!("{}: no model config", c.name)))?;
    let tok = get_tok(&c)?;
    let e = get_enc(&c)?;
    let (rep, fp32) = train(
        task,
        &spec,
        tok,
        cfg,
        cfg.work_dir.join("winner"),
        cfg.full_steps,
        cfg.progress,
    )?;
    let built = build(&fp32, &e.calib, c.precision, &c.name)?;
    let fp = Footprint::with_front_end(&built.compiled, &cfg.budget, 0)?;
    let footprint_as_predicted = fp.as_predicted_by(rows[w].footprint.as_ref());
    let mut float_nodes: Vec<String> = super::build::float_nodes(&fp32, c.precision)
        .into_iter()
        .collect();
    float_nodes.sort();
    let winner = TextWinner {
        row: w,
        spec,
        precision: c.precision,
        float_nodes,
        model_dir: rep.model_dir.clone(),
        flash_below_bound: fp.flash_bound.saturating_sub(fp.flash_total),
        footprint: fp,
        footprint_as_predicted,
        fp32_val_accuracy: rep.val_accuracy.unwrap_or(f32::NAN),
        val_accuracy: image_accuracy(&built.compiled, &e.val)?,
        test_accuracy: image_accuracy(&built.compiled, &e.test)?,
        seconds: rep.seconds,
    };
    Ok(TextSelection {
        config: cfg.clone(),
        labels: task.labels.clone(),
        rows,
        front,
        winner,
        built: Some(built),
        tokenizer: Some(tok.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_budget_gets_text_overheads() {
        let b = Budget::explicit(1 << 18, 1 << 16, None).unwrap();
        let ok = TextSelectConfig::new(b, PathBuf::from("w"));
        ok.validate().unwrap();
        assert_eq!(
            ok.budget.firmware_flash_bytes,
            crate::device::TEXT_FIRMWARE_FLASH
        );
        assert_eq!(
            ok.budget.firmware_ram_bytes,
            crate::device::TEXT_FIRMWARE_RAM
        );
        for bad in [
            TextSelectConfig {
                brief_steps: 0,
                ..ok.clone()
            },
            TextSelectConfig {
                lr: -1.0,
                ..ok.clone()
            },
            TextSelectConfig {
                tolerance: f64::NAN,
                ..ok.clone()
            },
            TextSelectConfig {
                calibration_texts: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err());
        }
        let job = ok.job(PathBuf::from("o"), 10, false);
        assert_eq!((job.train.steps, job.train.seed, job.seed), (10, 1, 1));
    }
}

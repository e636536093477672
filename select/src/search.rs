//! The selection itself: footprints of every candidate, brief training of the survivors, the
//! Pareto front, full training of the winner and the check of its trained image.

use candle_core::DType;
use edgeloop_trainer::audio::train::{train, FeatureSet, KwsTrainConfig};
use edgeloop_trainer::audio::{KwsDataset, Split};
use edgeloop_trainer::models::ds_cnn::{DsCnn, DsCnnConfig};
use serde::Serialize;

use crate::device::Budget;
use crate::error::{Result, SelectError};
use crate::footprint::{build_at, calibration, distinct_biases, image_accuracy, Built, Footprint};
use crate::pareto::{front, Point};
use crate::precision::Precision;
use crate::progress::Steps;
use crate::rows::{point, ranked_row, survivors};
use crate::space::{Candidate, SearchSpace};

/// Scale of the inputs the DS-CNN's first layer is initialised for (the trainer's value).
const INPUT_SCALE: f32 = 20.0;

/// Settings of a selection run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectConfig {
    /// What every candidate must fit.
    pub budget: Budget,
    /// The candidates.
    pub space: SearchSpace,
    /// Precisions every DS-CNN size is built at (default int8 only). With more than int8 the
    /// front ranks every candidate on its image's validation accuracy (what tells the
    /// precisions of one model apart); int8-only selections rank on the fp32 model's.
    pub precisions: Vec<Precision>,
    /// Seed of every model's initial weights and batch order (the same for all candidates).
    pub seed: u64,
    /// Optimizer steps of the brief training of each survivor.
    pub brief_steps: usize,
    /// Optimizer steps of the winner's full training.
    pub full_steps: usize,
    /// Clips per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Train clips the quantizer calibrates on.
    pub calibration_clips: usize,
    /// Pick the lowest-latency front member whose validation accuracy is within this much of
    /// the best (0: the most accurate).
    pub tolerance: f64,
    /// Show progress bars.
    pub progress: bool,
}

impl SelectConfig {
    /// Defaults for `budget`: the default space, seed 1, 150 brief steps and the trainer's
    /// defaults for the full training (steps, batch, learning rate; `KwsTrainConfig::new`),
    /// 32 calibration clips, tolerance 0.01.
    pub fn new(budget: Budget) -> Self {
        let t = KwsTrainConfig::new(2, 1);
        SelectConfig {
            budget,
            space: SearchSpace::default(),
            precisions: vec![Precision::Int8],
            seed: 1,
            brief_steps: 150,
            full_steps: t.steps,
            batch: t.batch,
            lr: t.lr,
            calibration_clips: 32,
            tolerance: 0.01,
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
        if self.precisions.is_empty() {
            return Err(SelectError::Config("give at least one precision".into()));
        }
        if self.calibration_clips == 0 {
            return Err(SelectError::Config("calibrate on at least one clip".into()));
        }
        Ok(())
    }

    /// Whether the front ranks on the images' validation accuracy (precisions searched).
    pub fn ranks_images(&self) -> bool {
        self.precisions.iter().any(|&p| p != Precision::Int8)
    }

    /// The trainer's configuration for `model` with `steps` steps.
    pub fn train_config(&self, model: &DsCnnConfig, steps: usize) -> KwsTrainConfig {
        KwsTrainConfig {
            model: model.clone(),
            seed: self.seed,
            steps,
            batch: self.batch,
            lr: self.lr,
            progress: false,
        }
    }
}

/// Checks the training settings both selections share: steps and batch at least 1, a
/// positive learning rate, a tolerance in [0, 1].
pub(crate) fn check_training(
    brief_steps: usize,
    full_steps: usize,
    batch: usize,
    lr: f64,
    tolerance: f64,
) -> Result<()> {
    if brief_steps == 0 || full_steps == 0 || batch == 0 {
        return Err(SelectError::Config(
            "brief steps, full steps and batch must be at least 1".into(),
        ));
    }
    if !(lr.is_finite() && lr > 0.0) {
        return Err(SelectError::Config(format!(
            "learning rate {lr} must be positive"
        )));
    }
    if !(tolerance.is_finite() && (0.0..=1.0).contains(&tolerance)) {
        return Err(SelectError::Config(format!(
            "tolerance {tolerance} must lie in [0, 1]"
        )));
    }
    Ok(())
}

/// Brief-training result of a survivor (of either selection).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Brief {
    /// Validation accuracy the front ranks: the fp32 model's, or, when precisions are searched
    /// ([`SelectConfig::ranks_images`]), the candidate's image's on the host runtime.
    pub val_accuracy: f32,
    /// fp32 accuracy on the validation split.
    pub fp32_val_accuracy: f32,
    /// Training wall time (s).
    pub seconds: f64,
    /// Parameters.
    pub params: usize,
}

/// One candidate's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The candidate.
    pub candidate: Candidate,
    /// Its exact footprint (none when its image could not be built).
    pub footprint: Option<Footprint>,
    /// Why it was dropped before training (empty: it was trained).
    pub dropped: Vec<String>,
    /// Brief training (survivors only).
    pub brief: Option<Brief>,
    /// Whether it is on the Pareto front.
    pub on_front: bool,
}

ranked_row!(Row);

/// The winner after full training.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Winner {
    /// Index into [`Selection::rows`].
    pub row: usize,
    /// The configuration it was fully trained with (the trainer's format).
    pub train_config: KwsTrainConfig,
    /// Footprint of the trained image.
    pub footprint: Footprint,
    /// Whether the trained image's arena and RAM equal the footprint predicted before training
    /// and its flash is within the predicted bound.
    pub footprint_as_predicted: bool,
    /// Predicted flash bound minus the trained image's flash (bytes saved by deduplication).
    pub flash_below_bound: u64,
    /// fp32 validation accuracy after full training.
    pub val_accuracy: f32,
    /// fp32 test accuracy after full training.
    pub test_accuracy: f32,
    /// Test accuracy of the winner's image (int8, or mixed at its precision) on the host
    /// runtime.
    pub int8_test_accuracy: f32,
    /// Full training wall time (s).
    pub seconds: f64,
}

/// Everything a selection produced.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// The settings.
    pub config: SelectConfig,
    /// Class names.
    pub labels: Vec<String>,
    /// One row per candidate, smallest first.
    pub rows: Vec<Row>,
    /// Indices of the rows on the front.
    pub front: Vec<usize>,
    /// The winner.
    pub winner: Winner,
    /// The winner's trained model and image (not serialized).
    #[serde(skip)]
    pub built: Option<Built>,
    /// The winner's trained model (not serialized).
    #[serde(skip)]
    pub model: Option<DsCnn>,
}

/// The footprint of `candidate`, from an image built before any training.
pub fn footprint(
    candidate: &Candidate,
    calib: &edgeloop_quantize::Dataset,
    budget: &Budget,
    seed: u64,
) -> Result<Footprint> {
    let m = DsCnn::new(candidate.model.clone(), seed, INPUT_SCALE, DType::F32)?;
    distinct_biases(&m, seed)?;
    let built = build_at(&m, calib, &candidate.name, candidate.precision)?;
    Footprint::of(&built.compiled, budget)
}

/// Picks the winner among `front` (indices into `rows`): the lowest-latency member whose
/// validation accuracy is within `tolerance` of the best, ties to less RAM.
pub fn pick(rows: &[Row], front: &[usize], tolerance: f64) -> Option<usize> {
    let points: Vec<Point> = rows.iter().map(point).collect();
    crate::pareto::pick(&points, front, tolerance)
}

/// Runs the selection on `data` (train split to train, validation split to rank, test split
/// for the winner's final numbers).
pub fn select(data: &KwsDataset, cfg: &SelectConfig) -> Result<Selection> {
    cfg.validate()?;
    let classes = data.labels.len();
    let mut candidates = Vec::new();
    for c in cfg.space.candidates(classes)? {
        for &p in &cfg.precisions {
            let c = Candidate::at(c.model.clone(), p);
            if !candidates.iter().any(|o: &Candidate| o.name == c.name) {
                candidates.push(c);
            }
        }
    }
    let train_set = FeatureSet::of(data, Split::Train)?;
    let test_set = FeatureSet::of(data, Split::Test)?;
    if train_set.is_empty() || test_set.is_empty() || data.split(Split::Validation).count() == 0 {
        return Err(SelectError::Config(
            "the data set needs train, validation and test clips".into(),
        ));
    }
    let calib = calibration(&train_set, cfg.calibration_clips)?;

    // 1. Exact footprints before training.
    let pb = Steps::new(cfg.progress, candidates.len(), "footprints");
    let mut rows = Vec::with_capacity(candidates.len());
    for c in candidates {
        pb.start(&c.name);
        let (footprint, dropped) = match footprint(&c, &calib, &cfg.budget, cfg.seed) {
            Ok(f) => {
                let d = f.over_budget.clone();
                (Some(f), d)
            }
            Err(e) => (None, vec![format!("image not built: {e}")]),
        };
        rows.push(Row {
            candidate: c,
            footprint,
            dropped,
            brief: None,
            on_front: false,
        });
        pb.done();
    }
    pb.finish();
    let survivors = survivors(&rows)?;

    // 2. Brief training, same steps and seed for every survivor; one model per DS-CNN size,
    // shared by its precisions (whose images are scored on the validation split when
    // precisions are searched).
    let val_set = if cfg.ranks_images() {
        Some(FeatureSet::of(data, Split::Validation)?)
    } else {
        None
    };
    let mut models: Vec<(DsCnnConfig, Vec<usize>)> = Vec::new();
    for &i in &survivors {
        let m = &rows[i].candidate.model;
        match models.iter_mut().find(|(c, _)| c == m) {
            Some((_, v)) => v.push(i),
            None => models.push((m.clone(), vec![i])),
        }
    }
    let pb = Steps::new(cfg.progress, models.len(), "brief training");
    for (model_cfg, members) in &models {
        pb.start(&rows[members[0]].candidate.name);
        let tc = cfg.train_config(model_cfg, cfg.brief_steps);
        let (model, rep) = train(data, &tc)?;
        for &i in members {
            let val_accuracy = match &val_set {
                Some(v) => {
                    let c = &rows[i].candidate;
                    let b = build_at(&model, &calib, &c.name, c.precision)?;
                    image_accuracy(&b.compiled, v)?
                }
                None => rep.val_accuracy,
            };
            rows[i].brief = Some(Brief {
                val_accuracy,
                fp32_val_accuracy: rep.val_accuracy,
                seconds: rep.seconds,
                params: rep.params,
            });
        }
        pb.done();
    }
    pb.finish();

    // 3. The front over the survivors.
    let points: Vec<Point> = survivors.iter().map(|&i| point(&rows[i])).collect();
    let front: Vec<usize> = front(&points).into_iter().map(|k| survivors[k]).collect();
    for &i in &front {
        rows[i].on_front = true;
    }
    let w = pick(&rows, &front, cfg.tolerance)
        .ok_or_else(|| SelectError::Config("the front is empty".into()))?;

    // 4. Full training of the winner, its image, and the check of its footprint.
    let mut tc = cfg.train_config(&rows[w].candidate.model, cfg.full_steps);
    tc.progress = cfg.progress;
    let (model, rep) = train(data, &tc)?;
    tc.progress = false;
    let wc = &rows[w].candidate;
    let built = build_at(&model, &calib, &wc.name, wc.precision)?;
    let fp = Footprint::of(&built.compiled, &cfg.budget)?;
    let footprint_as_predicted = fp.as_predicted_by(rows[w].footprint.as_ref());
    let flash_below_bound = fp.flash_bound.saturating_sub(fp.flash_total);
    let int8_test_accuracy = image_accuracy(&built.compiled, &test_set)?;
    let winner = Winner {
        row: w,
        train_config: tc,
        footprint: fp,
        footprint_as_predicted,
        flash_below_bound,
        val_accuracy: rep.val_accuracy,
        test_accuracy: rep.test_accuracy,
        int8_test_accuracy,
        seconds: rep.seconds,
    };
    Ok(Selection {
        config: cfg.clone(),
        labels: data.labels.clone(),
        rows,
        front,
        winner,
        built: Some(built),
        model: Some(model),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::footprint::FRONT_END_SCRATCH;
    use edgeloop_quantize::compile::report::FlashSections;

    fn row(name: &str, acc: f32, latency: f64, ram: u64) -> Row {
        let fl = FlashSections {
            header_and_graph: 0,
            constants: 0,
            weights: 0,
            biases: 0,
            requant_and_tables: 0,
            statistics: 0,
            total: 0,
        };
        Row {
            candidate: Candidate {
                name: name.into(),
                ..Candidate::new(DsCnnConfig::small(8, 8, 1))
            },
            footprint: Some(Footprint {
                image: fl,
                firmware_flash: 0,
                flash_total: 0,
                flash_bound: 0,
                arena: 0,
                arena_lower_bound: 0,
                front_end_scratch: FRONT_END_SCRATCH,
                firmware_ram: 0,
                ram_total: ram,
                macs: 0,
                instructions: 0.0,
                latency_ms: latency,
                unmeasured_ops: vec![],
                over_budget: vec![],
            }),
            dropped: vec![],
            brief: Some(Brief {
                val_accuracy: acc,
                fp32_val_accuracy: acc,
                seconds: 0.0,
                params: 0,
            }),
            on_front: true,
        }
    }

    #[test]
    fn pick_takes_the_fastest_within_tolerance() {
        let rows = vec![
            row("a", 0.80, 10.0, 100),
            row("b", 0.795, 5.0, 200),
            row("c", 0.70, 1.0, 50),
        ];
        let f = vec![0, 1, 2];
        assert_eq!(pick(&rows, &f, 0.0), Some(0));
        assert_eq!(pick(&rows, &f, 0.01), Some(1));
        assert_eq!(pick(&rows, &f, 0.2), Some(2));
        assert_eq!(pick(&rows, &[], 0.0), None);
    }

    #[test]
    fn settings_are_checked() {
        let b = Budget::explicit(1 << 18, 1 << 16, None).unwrap();
        let ok = SelectConfig::new(b);
        ok.validate().unwrap();
        for bad in [
            SelectConfig {
                brief_steps: 0,
                ..ok.clone()
            },
            SelectConfig {
                lr: f64::NAN,
                ..ok.clone()
            },
            SelectConfig {
                tolerance: 2.0,
                ..ok.clone()
            },
            SelectConfig {
                calibration_clips: 0,
                ..ok.clone()
            },
            SelectConfig {
                precisions: vec![],
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }

    /// Precisions searched: each size is a candidate at int8 and mixed precision, trained once,
    /// each ranked on its own image's validation accuracy; the mixed image has its own
    /// footprint.
    #[test]
    fn precisions_multiply_candidates_and_rank_on_images() {
        use edgeloop_trainer::audio::synth::{generate, SynthConfig};
        let data = generate(&SynthConfig::new(3, 10));
        let mut cfg = SelectConfig::new(Budget::explicit(1 << 20, 1 << 20, None).unwrap());
        cfg.space = SearchSpace {
            channels: vec![4],
            blocks: vec![1],
            strides: vec![3],
        };
        cfg.precisions = vec![Precision::Int8, Precision::MixedHead, Precision::MixedFirst];
        cfg.brief_steps = 3;
        cfg.full_steps = 3;
        cfg.batch = 4;
        assert!(cfg.ranks_images());
        let s = select(&data, &cfg).unwrap();
        let names: Vec<&str> = s.rows.iter().map(|r| r.candidate.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["c4-b1-s3", "c4-b1-s3-mixed", "c4-b1-s3-mixed-first"]
        );
        let fa = s.rows[0].footprint.as_ref().unwrap();
        let ba = s.rows[0].brief.as_ref().unwrap();
        for r in &s.rows[1..] {
            let (fb, bb) = (r.footprint.as_ref().unwrap(), r.brief.as_ref().unwrap());
            // The mixed-head image equals the int8 one here (the int8 build already runs this
            // head in f32); the f32 first layer makes another image.
            if r.candidate.name.ends_with("-mixed-first") {
                assert_ne!(fa.image, fb.image);
            } else {
                assert_eq!(fa.image, fb.image);
            }
            assert_eq!(fa.macs, fb.macs);
            // One fp32 model for all three.
            assert_eq!(ba.fp32_val_accuracy, bb.fp32_val_accuracy);
        }
        // The f32 first convolution costs more than its int8 twin.
        assert!(s.rows[2].footprint.as_ref().unwrap().instructions > fa.instructions);
        assert!(s.winner.footprint_as_predicted, "{:?}", s.winner.footprint);
        let md = crate::report::markdown(&s);
        assert!(
            md.contains("f32 kernel table, fully_connected_f32_small")
                && md.contains("f32 kernel table, conv2d_f32_ds_cnn")
                && !md.contains("NOT MEASURED")
                && md.contains("| mixed |")
                && md.contains("| mixed-first |"),
            "{md}"
        );
    }

    /// A budget nothing fits: the error lists every candidate with its reason.
    #[test]
    fn nothing_fits_lists_the_reasons() {
        use edgeloop_trainer::audio::synth::{generate, SynthConfig};
        let data = generate(&SynthConfig::new(3, 10));
        let mut cfg = SelectConfig::new(Budget::explicit(1024, 1024, None).unwrap());
        cfg.space = SearchSpace {
            channels: vec![4, 8],
            blocks: vec![1],
            strides: vec![3],
        };
        let e = select(&data, &cfg).unwrap_err().to_string();
        assert!(
            e.contains("c4-b1-s3") && e.contains("c8-b1-s3") && e.contains("flash"),
            "{e}"
        );
    }
}

//! Training of the keyword DS-CNN on the integer front end's features: features are computed
//! once per clip ([`super::features`]), dequantized, normalized by their training-set mean and
//! standard deviation (a scalar [`InputNorm`] the export folds into the first convolution), and fed in seeded random mini-batches to
//! AdamW (warmup + cosine schedule). Progress is shown with indicatif when asked for.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::error::{AudioError, Result};
use super::{dequantize, features, KwsDataset, Split};
use crate::models::ds_cnn::{cross_entropy, DsCnn, DsCnnConfig, InputNorm};
use crate::optim::{AdamW, AdamWConfig, Schedule};
use edgeloop_runtime::audio::{FRAMES, MEL_BANDS};

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KwsTrainConfig {
    /// Model sizes (`classes` must equal the data set's label count).
    pub model: DsCnnConfig,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
    /// Optimizer steps.
    pub steps: usize,
    /// Clips per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Show a progress bar.
    pub progress: bool,
}

impl KwsTrainConfig {
    /// Defaults for `classes` classes: 24 channels, 2 blocks, 300 steps of 32 clips, lr 1.5e-2.
    pub fn new(classes: usize, seed: u64) -> Self {
        KwsTrainConfig {
            model: DsCnnConfig::small(classes, 24, 2),
            seed,
            steps: 300,
            batch: 32,
            lr: 1.5e-2,
            progress: false,
        }
    }
}

/// Features of one split, ready for the model.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    /// int8 features, [`FRAMES`] × [`MEL_BANDS`] per clip, clip after clip.
    pub int8: Vec<i8>,
    /// Labels.
    pub labels: Vec<u32>,
}

impl FeatureSet {
    /// Runs the front end over the clips of `split`.
    pub fn of(data: &KwsDataset, split: Split) -> Result<Self> {
        let mut int8 = Vec::new();
        let mut labels = Vec::new();
        for c in data.split(split) {
            int8.extend(features(&c.samples)?);
            labels.push(c.label as u32);
        }
        Ok(FeatureSet { int8, labels })
    }

    /// Mean and standard deviation of the dequantized features (the model's input
    /// normalization; a standard deviation of 1 when the features are all equal).
    pub fn norm(&self) -> InputNorm {
        let n = self.int8.len().max(1) as f64;
        let mean = self.int8.iter().map(|&q| dequantize(q) as f64).sum::<f64>() / n;
        let var = self
            .int8
            .iter()
            .map(|&q| (dequantize(q) as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt();
        InputNorm {
            mean: mean as f32,
            std: if std > 1e-3 { std as f32 } else { 1.0 },
        }
    }

    /// Number of clips.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no clips.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The dequantized features of clips `idx` as `[n, 1, FRAMES, MEL_BANDS]`.
    pub fn batch(&self, idx: &[usize]) -> Result<Tensor> {
        let per = FRAMES * MEL_BANDS;
        let mut v = Vec::with_capacity(idx.len() * per);
        for &i in idx {
            v.extend(
                self.int8[i * per..(i + 1) * per]
                    .iter()
                    .map(|&q| dequantize(q)),
            );
        }
        Ok(Tensor::from_vec(
            v,
            (idx.len(), 1, FRAMES, MEL_BANDS),
            &Device::Cpu,
        )?)
    }
}

/// What training produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KwsTrainReport {
    /// Mean loss of every 10 steps.
    pub loss: Vec<f32>,
    /// Accuracy on the validation split.
    pub val_accuracy: f32,
    /// Accuracy on the test split.
    pub test_accuracy: f32,
    /// Training wall time (s), front end excluded.
    pub seconds: f64,
    /// Parameters.
    pub params: usize,
}

/// Predicted classes of `set` (batches of 64).
pub fn predict(model: &DsCnn, set: &FeatureSet) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(set.len());
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(64) {
        let logits = model.forward(&set.batch(chunk)?)?;
        out.extend(logits.argmax(1)?.to_vec1::<u32>()?);
    }
    Ok(out)
}

/// Fraction of `set` classified correctly.
pub fn accuracy(model: &DsCnn, set: &FeatureSet) -> Result<f32> {
    if set.is_empty() {
        return Ok(0.0);
    }
    let p = predict(model, set)?;
    let ok = p.iter().zip(&set.labels).filter(|(a, b)| a == b).count();
    Ok(ok as f32 / set.len() as f32)
}

/// Trains a DS-CNN on the train split of `data`; reports validation and test accuracy.
pub fn train(data: &KwsDataset, cfg: &KwsTrainConfig) -> Result<(DsCnn, KwsTrainReport)> {
    if cfg.model.classes != data.labels.len() {
        return Err(AudioError::Config(format!(
            "the model has {} classes, the data set {}",
            cfg.model.classes,
            data.labels.len()
        )));
    }
    if cfg.batch == 0 || cfg.steps == 0 {
        return Err(AudioError::Config(
            "steps and batch must be at least 1".into(),
        ));
    }
    let train = FeatureSet::of(data, Split::Train)?;
    let val = FeatureSet::of(data, Split::Validation)?;
    let test = FeatureSet::of(data, Split::Test)?;
    if train.is_empty() {
        return Err(AudioError::Config("the train split is empty".into()));
    }
    let mut model = DsCnn::new(cfg.model.clone(), cfg.seed, 1.0, DType::F32)?;
    model.input_norm = train.norm();
    let mut opt = AdamW::new(
        model.vars.clone(),
        AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        },
    )?;
    let sched = Schedule {
        lr: cfg.lr,
        min_lr: cfg.lr * 0.05,
        warmup_steps: (cfg.steps / 20).max(1),
        decay_steps: cfg.steps,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0BA7_C4E5);
    let mut order: Vec<usize> = Vec::new();
    let bar = cfg.progress.then(|| {
        let b = indicatif::ProgressBar::new(cfg.steps as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("kws train [{elapsed_precise}] {bar:30} {pos}/{len} steps {per_sec} eta {eta} loss {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let start = Instant::now();
    let (mut losses, mut window) = (Vec::new(), Vec::new());
    for step in 0..cfg.steps {
        if order.len() < cfg.batch {
            let mut all: Vec<usize> = (0..train.len()).collect();
            all.shuffle(&mut rng);
            order.extend(all);
        }
        let idx: Vec<usize> = order.drain(..cfg.batch.min(order.len())).collect();
        let x = train.batch(&idx)?;
        let y = Tensor::from_vec(
            idx.iter().map(|&i| train.labels[i]).collect::<Vec<_>>(),
            idx.len(),
            &Device::Cpu,
        )?;
        let loss = cross_entropy(&model.forward(&x)?, &y)?;
        let l = loss.to_scalar::<f32>()?;
        if !l.is_finite() {
            return Err(crate::TrainerError::Diverged { step, loss: l }.into());
        }
        let grads = loss.backward()?;
        let norm = opt.grad_norm(&grads)?;
        let clip = if norm > 5.0 { 5.0 / norm } else { 1.0 };
        opt.step(&grads, sched.lr_at(step), clip)?;
        window.push(l);
        if window.len() == 10 {
            losses.push(window.iter().sum::<f32>() / 10.0);
            window.clear();
        }
        if let Some(b) = &bar {
            b.set_message(format!("{l:.3}"));
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    let seconds = start.elapsed().as_secs_f64();
    let report = KwsTrainReport {
        loss: losses,
        val_accuracy: accuracy(&model, &val)?,
        test_accuracy: accuracy(&model, &test)?,
        seconds,
        params: model.params(),
    };
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::synth::{generate, SynthConfig};

    #[test]
    fn norm_is_the_mean_and_std_of_the_dequantized_features() {
        let set = FeatureSet {
            int8: vec![-128, -118, -108, -98],
            labels: vec![],
        };
        // Dequantized: 0, 2, 4, 6 → mean 3, population std √5.
        let n = set.norm();
        assert!((n.mean - 3.0).abs() < 1e-6, "{n:?}");
        assert!((n.std - 5f32.sqrt()).abs() < 1e-5, "{n:?}");
        let flat = FeatureSet {
            int8: vec![7; 10],
            labels: vec![],
        };
        assert_eq!(flat.norm().std, 1.0);
    }

    #[test]
    fn bad_configs_are_refused() {
        let data = generate(&SynthConfig::new(1, 2));
        let mut cfg = KwsTrainConfig::new(data.labels.len() + 1, 1);
        assert!(matches!(train(&data, &cfg), Err(AudioError::Config(_))));
        cfg = KwsTrainConfig::new(data.labels.len(), 1);
        cfg.steps = 0;
        assert!(matches!(train(&data, &cfg), Err(AudioError::Config(_))));
    }
}

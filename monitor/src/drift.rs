//! Drift detection over windows of the current telemetry against a reference period.
//!
//! The current inference rows (in receive order) are cut into windows of
//! [`DriftConfig::window`] rows; each window is compared with the whole reference on every
//! feature of the inference summaries, on labels where feedback exists, and per device slice.
//!
//! Defaults follow Evidently's data-drift preset:
//! * numeric features: with at most 1000 reference rows the Kolmogorov–Smirnov test decides
//!   (drift when p < 0.05), above that the normed Wasserstein distance (drift when ≥ 0.1);
//! * categorical features (the predicted class): with at most 1000 reference rows the chi-square
//!   test decides (p < 0.05), above that the Jensen–Shannon distance (≥ 0.1). Evidently uses a
//!   proportion z-test for binary categories; here chi-square covers that case too;
//! * PSI (threshold 0.1, 30 bins) and Jensen–Shannon are reported for every feature;
//! * a window has dataset drift when at least half of its features drift (`drift_share` 0.5).
//!
//! Label-based performance drift: a feedback row labels its inference (`correction == class`,
//! else thumbs up/down). A window's accuracy has drifted when it is more than
//! [`DriftConfig::accuracy_drop`] below the reference accuracy and a two-proportion z-test gives
//! p < 0.05, with at least [`DriftConfig::min_labels`] labels. Per-slice gaps: accuracy per device
//! in each window; the gap is best minus worst slice with enough labels.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::stats;
use crate::store::{FeedbackRow, InferenceRow, StoreData};
use crate::{Error, Result};

/// Thresholds and window sizes. [`Default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftConfig {
    /// Inference rows per window.
    pub window: usize,
    /// A trailing window smaller than this joins the previous one.
    pub min_window: usize,
    /// Bins for PSI and Jensen–Shannon on numeric features.
    pub bins: usize,
    /// PSI threshold.
    pub psi_threshold: f64,
    /// Jensen–Shannon distance threshold.
    pub js_threshold: f64,
    /// Normed Wasserstein threshold.
    pub wasserstein_threshold: f64,
    /// p-value threshold for KS and chi-square.
    pub p_value: f64,
    /// Reference sizes above this switch from KS/chi-square to Wasserstein/Jensen–Shannon.
    pub large_sample: usize,
    /// Share of drifting features that makes a window's dataset drift.
    pub drift_share: f64,
    /// Accuracy drop (absolute) that counts as performance drift.
    pub accuracy_drop: f64,
    /// Fewest labels for an accuracy or a slice to be judged.
    pub min_labels: usize,
    /// Largest acceptable accuracy gap between slices.
    pub slice_gap: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            window: 500,
            min_window: 50,
            bins: 30,
            psi_threshold: 0.1,
            js_threshold: 0.1,
            wasserstein_threshold: 0.1,
            p_value: 0.05,
            large_sample: 1000,
            drift_share: 0.5,
            accuracy_drop: 0.05,
            min_labels: 20,
            slice_gap: 0.1,
        }
    }
}

/// Drift of one feature in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// Feature name (a store column).
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// PSI.
    pub psi: f64,
    /// Jensen–Shannon distance.
    pub jensen_shannon: f64,
    /// KS statistic (numeric).
    pub ks: Option<f64>,
    /// KS p-value (numeric).
    pub ks_p: Option<f64>,
    /// Normed Wasserstein distance (numeric).
    pub wasserstein_normed: Option<f64>,
    /// Chi-square statistic (categorical).
    pub chi2: Option<f64>,
    /// Chi-square p-value (categorical).
    pub chi2_p: Option<f64>,
    /// The test that decides: `ks`, `wasserstein`, `chi2` or `jensen_shannon`.
    pub test: &'static str,
    /// Its value (a p-value for `ks`/`chi2`).
    pub score: f64,
    /// Its threshold.
    pub threshold: f64,
    /// Whether the feature drifted.
    pub drift: bool,
}

/// Labelled accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Labelled inferences.
    pub labels: usize,
    /// Correct ones.
    pub correct: usize,
    /// `correct / labels` (NaN when there are none; serialized as null).
    pub accuracy: Option<f64>,
}

impl Accuracy {
    fn new(labels: usize, correct: usize) -> Self {
        Self {
            labels,
            correct,
            accuracy: (labels > 0).then(|| correct as f64 / labels as f64),
        }
    }
}

/// Accuracy of one slice in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceAccuracy {
    /// Slice name (`device=0x…`).
    pub slice: String,
    /// Its accuracy.
    pub accuracy: Accuracy,
}

/// Everything measured in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowDrift {
    /// 0-based window index.
    pub index: usize,
    /// Inference rows.
    pub rows: usize,
    /// First and last receive time (ms since the Unix epoch).
    pub received_ms: (i64, i64),
    /// Per-feature drift.
    pub features: Vec<FeatureDrift>,
    /// Share of drifting features.
    pub drift_share: f64,
    /// Dataset drift (share ≥ the configured share).
    pub dataset_drift: bool,
    /// Labelled accuracy in the window.
    pub accuracy: Accuracy,
    /// p-value of the accuracy difference against the reference.
    pub accuracy_p: Option<f64>,
    /// Performance drift.
    pub performance_drift: bool,
    /// Per-device accuracy (slices with at least `min_labels` labels).
    pub slices: Vec<SliceAccuracy>,
    /// Best minus worst slice accuracy, when at least two slices qualify.
    pub slice_gap: Option<f64>,
    /// The gap exceeds the configured maximum.
    pub slice_gap_exceeded: bool,
}

/// A drift report: reference summary and one entry per window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// Configuration used.
    pub config: DriftConfig,
    /// Reference inference rows.
    pub reference_rows: usize,
    /// Reference labelled accuracy.
    pub reference_accuracy: Accuracy,
    /// Reference per-slice gap.
    pub reference_slice_gap: Option<f64>,
    /// Current inference rows.
    pub current_rows: usize,
    /// Current feedback rows whose inference was not found (dropped or not yet ingested).
    pub unmatched_feedback: usize,
    /// On-device drift alarms in the current store.
    pub device_alarms: usize,
    /// Per-window results.
    pub windows: Vec<WindowDrift>,
    /// Reference class proportions (class, proportion).
    pub reference_classes: Vec<(u32, f64)>,
}

impl DriftReport {
    /// Windows with dataset drift.
    pub fn drifted_windows(&self) -> usize {
        self.windows.iter().filter(|w| w.dataset_drift).count()
    }
}

type NumericFeature = (&'static str, fn(&InferenceRow) -> f64);

/// Numeric features taken from inference rows.
pub const NUMERIC_FEATURES: [NumericFeature; 6] = [
    ("confidence", |r| r.confidence),
    ("latency_ticks", |r| f64::from(r.latency_ticks)),
    ("input_mean", |r| r.input_mean),
    ("input_std", |r| r.input_std),
    ("input_min", |r| f64::from(r.input_min)),
    ("input_max", |r| f64::from(r.input_max)),
];

fn numeric(cfg: &DriftConfig, name: &str, r: &[f64], c: &[f64]) -> FeatureDrift {
    let edges = stats::bin_edges(r, c, cfg.bins);
    let (hr, hc) = (stats::histogram(r, &edges), stats::histogram(c, &edges));
    let (ks, ks_p) = stats::ks_2samp(r, c);
    let wd = stats::wasserstein_normed(r, c);
    let (test, score, threshold, drift) = if r.len() <= cfg.large_sample {
        ("ks", ks_p, cfg.p_value, ks_p < cfg.p_value)
    } else {
        (
            "wasserstein",
            wd,
            cfg.wasserstein_threshold,
            wd >= cfg.wasserstein_threshold,
        )
    };
    FeatureDrift {
        name: name.to_string(),
        kind: "numeric",
        psi: stats::psi(&hr, &hc),
        jensen_shannon: stats::jensen_shannon(&hr, &hc),
        ks: Some(ks),
        ks_p: Some(ks_p),
        wasserstein_normed: Some(wd),
        chi2: None,
        chi2_p: None,
        test,
        score,
        threshold,
        drift,
    }
}

fn categorical(cfg: &DriftConfig, name: &str, r: &[u32], c: &[u32]) -> FeatureDrift {
    let (_, hr, hc) = stats::category_counts(r, c);
    let (chi2, chi2_p) = stats::chi_square(&hr, &hc);
    let js = stats::jensen_shannon(&hr, &hc);
    let (test, score, threshold, drift) = if r.len() <= cfg.large_sample {
        ("chi2", chi2_p, cfg.p_value, chi2_p < cfg.p_value)
    } else {
        (
            "jensen_shannon",
            js,
            cfg.js_threshold,
            js >= cfg.js_threshold,
        )
    };
    FeatureDrift {
        name: name.to_string(),
        kind: "categorical",
        psi: stats::psi(&hr, &hc),
        jensen_shannon: js,
        ks: None,
        ks_p: None,
        wasserstein_normed: None,
        chi2: Some(chi2),
        chi2_p: Some(chi2_p),
        test,
        score,
        threshold,
        drift,
    }
}

/// `(device, boot, seq)` → index into the inference rows.
fn index(rows: &[InferenceRow]) -> HashMap<(u64, u32, u32), usize> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| ((r.common.partition.device, r.common.boot, r.common.seq), i))
        .collect()
}

/// For each feedback row that labels an inference: (inference index, correct?).
fn labels(rows: &[InferenceRow], feedback: &[FeedbackRow]) -> (Vec<(usize, bool)>, usize) {
    let idx = index(rows);
    let mut out = Vec::new();
    let mut unmatched = 0;
    for f in feedback {
        let key = (f.common.partition.device, f.common.boot, f.inference_seq);
        let Some(&i) = idx.get(&key) else {
            unmatched += 1;
            continue;
        };
        let correct = match (f.correction, f.thumbs_up) {
            (Some(c), _) => Some(c == rows[i].class),
            (None, Some(up)) => Some(up),
            (None, None) => None,
        };
        if let Some(ok) = correct {
            out.push((i, ok));
        }
    }
    (out, unmatched)
}

fn slices(
    cfg: &DriftConfig,
    rows: &[InferenceRow],
    labelled: &[(usize, bool)],
) -> (Vec<SliceAccuracy>, Option<f64>) {
    let mut per: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for &(i, ok) in labelled {
        let e = per.entry(rows[i].common.partition.device).or_default();
        e.0 += 1;
        e.1 += usize::from(ok);
    }
    let out: Vec<SliceAccuracy> = per
        .into_iter()
        .filter(|(_, (n, _))| *n >= cfg.min_labels)
        .map(|(d, (n, c))| SliceAccuracy {
            slice: format!("device=0x{d:016x}"),
            accuracy: Accuracy::new(n, c),
        })
        .collect();
    let accs: Vec<f64> = out.iter().filter_map(|s| s.accuracy.accuracy).collect();
    let gap = (accs.len() >= 2).then(|| {
        accs.iter().cloned().fold(f64::MIN, f64::max)
            - accs.iter().cloned().fold(f64::MAX, f64::min)
    });
    (out, gap)
}

/// Compares the current data with the reference, window by window.
pub fn analyse(
    reference: &StoreData,
    current: &StoreData,
    cfg: &DriftConfig,
) -> Result<DriftReport> {
    if reference.inferences.is_empty() {
        return Err(Error::Drift("the reference has no inference rows".into()));
    }
    if current.inferences.is_empty() {
        return Err(Error::Drift(
            "the current store has no inference rows".into(),
        ));
    }
    if cfg.window == 0 || cfg.bins == 0 {
        return Err(Error::Drift("window and bins must be at least 1".into()));
    }
    let ref_num: Vec<Vec<f64>> = NUMERIC_FEATURES
        .iter()
        .map(|(_, f)| reference.inferences.iter().map(f).collect())
        .collect();
    let ref_class: Vec<u32> = reference
        .inferences
        .iter()
        .map(|r| u32::from(r.class))
        .collect();
    let (ref_labels, _) = labels(&reference.inferences, &reference.feedback);
    let ref_acc = Accuracy::new(ref_labels.len(), ref_labels.iter().filter(|l| l.1).count());
    let (_, ref_gap) = slices(cfg, &reference.inferences, &ref_labels);
    let (cur_labels, unmatched) = labels(&current.inferences, &current.feedback);

    // Window boundaries over the current rows.
    let n = current.inferences.len();
    let mut bounds: Vec<(usize, usize)> = (0..n)
        .step_by(cfg.window)
        .map(|s| (s, (s + cfg.window).min(n)))
        .collect();
    if bounds.len() > 1 {
        let last = bounds[bounds.len() - 1];
        if last.1 - last.0 < cfg.min_window {
            bounds.pop();
            if let Some(prev) = bounds.last_mut() {
                prev.1 = last.1;
            }
        }
    }

    let mut windows = Vec::new();
    for (index, &(s, e)) in bounds.iter().enumerate() {
        let rows = &current.inferences[s..e];
        let mut features: Vec<FeatureDrift> = NUMERIC_FEATURES
            .iter()
            .zip(&ref_num)
            .map(|((name, f), r)| numeric(cfg, name, r, &rows.iter().map(f).collect::<Vec<_>>()))
            .collect();
        let cls: Vec<u32> = rows.iter().map(|r| u32::from(r.class)).collect();
        features.push(categorical(cfg, "class", &ref_class, &cls));
        let drifted = features.iter().filter(|f| f.drift).count();
        let share = drifted as f64 / features.len() as f64;
        let win_labels: Vec<(usize, bool)> = cur_labels
            .iter()
            .copied()
            .filter(|(i, _)| (s..e).contains(i))
            .collect();
        let acc = Accuracy::new(win_labels.len(), win_labels.iter().filter(|l| l.1).count());
        let accuracy_p = (acc.labels > 0 && ref_acc.labels > 0).then(|| {
            stats::two_proportion_p(
                ref_acc.correct as u64,
                ref_acc.labels as u64,
                acc.correct as u64,
                acc.labels as u64,
            )
        });
        let performance_drift = match (ref_acc.accuracy, acc.accuracy, accuracy_p) {
            (Some(ra), Some(wa), Some(p)) => {
                acc.labels >= cfg.min_labels
                    && ref_acc.labels >= cfg.min_labels
                    && ra - wa > cfg.accuracy_drop
                    && p < cfg.p_value
            }
            _ => false,
        };
        let (slice_acc, gap) = slices(cfg, &current.inferences, &win_labels);
        windows.push(WindowDrift {
            index,
            rows: rows.len(),
            received_ms: (
                rows[0].common.received_at_ms,
                rows[rows.len() - 1].common.received_at_ms,
            ),
            features,
            drift_share: share,
            dataset_drift: share >= cfg.drift_share,
            accuracy: acc,
            accuracy_p,
            performance_drift,
            slices: slice_acc,
            slice_gap: gap,
            slice_gap_exceeded: gap.is_some_and(|g| g > cfg.slice_gap),
        });
    }
    let (keys, counts, _) = stats::category_counts(&ref_class, &[]);
    let total = ref_class.len() as f64;
    Ok(DriftReport {
        config: cfg.clone(),
        reference_rows: reference.inferences.len(),
        reference_accuracy: ref_acc,
        reference_slice_gap: ref_gap,
        current_rows: n,
        unmatched_feedback: unmatched,
        device_alarms: current.drift_alarms,
        windows,
        reference_classes: keys
            .into_iter()
            .zip(counts)
            .map(|(k, c)| (k, c as f64 / total))
            .collect(),
    })
}

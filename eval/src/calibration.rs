//! Expected calibration error and reliability diagrams.
//!
//! Confidence is the top predicted probability; bins are `M` equal-width intervals
//! `(e_{m-1}, e_m]` (a confidence of exactly 0 falls into the first bin), as in Guo et al.,
//! "On Calibration of Modern Neural Networks" (2017). The edges are `e_k = k · (1/M)` in f64,
//! as numpy's `linspace(0, 1, M + 1)` computes them, so every confidence lands in the same bin
//! as in scikit-learn's `calibration_curve(strategy="uniform")` (tested against it, edges
//! included; `0.3 · 10` rounds up, so a plain `ceil(c · M)` would put 0.3 in the wrong bin):
//! `ECE = Σ_m |B_m|/n · |acc(B_m) − conf(B_m)|`, `MCE = max_m |acc(B_m) − conf(B_m)|` over
//! non-empty bins.

use serde::{Deserialize, Serialize};

use crate::classification::argmax;
use crate::error::{same_len, Error, Result};

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge (exclusive, except 0 for the first bin).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Examples in the bin.
    pub count: u64,
    /// Fraction correct in the bin (NaN when empty).
    #[serde(with = "crate::nan_null")]
    pub accuracy: f64,
    /// Mean confidence in the bin (NaN when empty).
    #[serde(with = "crate::nan_null")]
    pub confidence: f64,
}

/// Calibration summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Expected calibration error.
    #[serde(with = "crate::nan_null")]
    pub ece: f64,
    /// Maximum calibration error over non-empty bins.
    #[serde(with = "crate::nan_null")]
    pub mce: f64,
    /// The bins, in order.
    pub bins: Vec<ReliabilityBin>,
}

/// ECE from a confidence and a correctness flag per example.
pub fn calibration(confidences: &[f64], correct: &[bool], n_bins: usize) -> Result<Calibration> {
    same_len("confidences vs correct", confidences.len(), correct.len())?;
    if confidences.is_empty() {
        return Err(Error::Empty("calibration".into()));
    }
    if n_bins == 0 || n_bins > 1000 {
        return Err(Error::InvalidArgument(format!(
            "calibration bins must be in 1..=1000, got {n_bins}"
        )));
    }
    if let Some(i) = confidences.iter().position(|c| !(0.0..=1.0).contains(c)) {
        return Err(Error::InvalidValue {
            what: "confidence (must be in [0, 1])".into(),
            index: i,
            value: confidences[i].to_string(),
        });
    }
    let step = 1.0 / n_bins as f64;
    let edge = |k: usize| k as f64 * step;
    // The bin whose edges satisfy e_b < c <= e_{b+1}: start from ceil(c·M) and correct for
    // rounding against the f64 edges.
    let bin_of = |c: f64| {
        let mut b = ((c * n_bins as f64).ceil() as usize).clamp(1, n_bins) - 1;
        while b > 0 && edge(b) >= c {
            b -= 1;
        }
        while b + 1 < n_bins && edge(b + 1) < c {
            b += 1;
        }
        b
    };
    let mut count = vec![0u64; n_bins];
    let mut hits = vec![0u64; n_bins];
    let mut conf_sum = vec![0.0f64; n_bins];
    for (&c, &ok) in confidences.iter().zip(correct) {
        let b = bin_of(c);
        count[b] += 1;
        hits[b] += ok as u64;
        conf_sum[b] += c;
    }
    let n = confidences.len() as f64;
    let mut ece = 0.0;
    let mut mce = 0.0f64;
    let mut bins = Vec::with_capacity(n_bins);
    for b in 0..n_bins {
        let (accuracy, confidence) = if count[b] == 0 {
            (f64::NAN, f64::NAN)
        } else {
            let k = count[b] as f64;
            (hits[b] as f64 / k, conf_sum[b] / k)
        };
        if count[b] > 0 {
            let gap = (accuracy - confidence).abs();
            ece += count[b] as f64 / n * gap;
            mce = mce.max(gap);
        }
        bins.push(ReliabilityBin {
            lower: edge(b),
            upper: if b + 1 == n_bins { 1.0 } else { edge(b + 1) },
            count: count[b],
            accuracy,
            confidence,
        });
    }
    Ok(Calibration { ece, mce, bins })
}

/// ECE from labels and per-class probabilities (confidence = top probability, correct =
/// top class equals the label).
pub fn calibration_from_probs(
    y_true: &[usize],
    probs: &[Vec<f64>],
    n_bins: usize,
) -> Result<Calibration> {
    same_len("y_true vs probabilities", y_true.len(), probs.len())?;
    let mut conf = Vec::with_capacity(probs.len());
    let mut correct = Vec::with_capacity(probs.len());
    for (&t, row) in y_true.iter().zip(probs) {
        let top = argmax(row)?;
        conf.push(row[top]);
        correct.push(top == t);
    }
    calibration(&conf, &correct, n_bins)
}

impl Calibration {
    /// Draws the reliability diagram as a PNG.
    pub fn plot_png(&self, path: impl AsRef<std::path::Path>, title: &str) -> Result<()> {
        let mut edges: Vec<f64> = self.bins.iter().map(|b| b.lower).collect();
        edges.push(self.bins.last().map_or(1.0, |b| b.upper));
        let acc: Vec<f64> = self.bins.iter().map(|b| b.accuracy).collect();
        let conf: Vec<f64> = self.bins.iter().map(|b| b.confidence).collect();
        let counts: Vec<u64> = self.bins.iter().map(|b| b.count).collect();
        crate::plot::reliability_png(
            path,
            &crate::plot::ChartOptions::new(title).size(600, 600),
            &edges,
            &acc,
            &conf,
            &counts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_ece() {
        // Bins of width 0.5: (0,0.5] holds 0.2 (wrong) and 0.5 (right): acc 0.5, conf 0.35.
        // (0.5,1] holds 0.9 (right), 0.8 (wrong): acc 0.5, conf 0.85.
        let c = calibration(&[0.2, 0.5, 0.9, 0.8], &[false, true, true, false], 2).unwrap();
        assert_eq!(c.bins[0].count, 2);
        assert!((c.ece - (0.5 * 0.15 + 0.5 * 0.35)).abs() < 1e-12);
        assert!((c.mce - 0.35).abs() < 1e-12);
    }

    #[test]
    fn perfectly_calibrated_is_zero_and_edges_bin_correctly() {
        let c = calibration(&[0.0, 1.0, 1.0], &[false, true, true], 10).unwrap();
        assert_eq!(c.bins[0].count, 1);
        assert_eq!(c.bins[9].count, 2);
        assert_eq!(c.ece, 0.0);
    }

    /// Bins, per-bin accuracy and confidence, and ECE equal scikit-learn's
    /// `calibration_curve(strategy="uniform")` on random confidences, many of them exactly on
    /// bin edges (k/M as f64), for several bin counts.
    #[test]
    fn matches_sklearn_calibration_curve() {
        use crate::testing::{assert_close, python_reference, rng};
        use rand::Rng;
        let mut r = rng(41);
        let mut cases = Vec::new();
        for case in 0..40 {
            let n_bins = [1, 2, 3, 5, 7, 10, 15, 20][case % 8];
            let n = r.gen_range(1..120);
            let conf: Vec<f64> = (0..n)
                .map(|_| match r.gen_range(0..3) {
                    0 => r.gen_range(0..=n_bins) as f64 / n_bins as f64,
                    1 => r.gen_range(0..=20) as f64 / 20.0,
                    _ => r.gen_range(0.0..=1.0),
                })
                .collect();
            let correct: Vec<bool> = conf.iter().map(|&c| r.gen_bool(c)).collect();
            cases.push((n_bins, conf, correct));
        }
        let input: Vec<_> = cases
            .iter()
            .map(|(m, c, ok)| serde_json::json!({"n_bins": m, "conf": c, "correct": ok}))
            .collect();
        let want = python_reference(
            "eval_sklearn.py",
            &serde_json::json!({"task": "calibration", "cases": input}),
        );
        for (i, (m, conf, correct)) in cases.iter().enumerate() {
            let ctx = format!("case {i} ({m} bins)");
            let got = calibration(conf, correct, *m).unwrap();
            let w = &want[i];
            let counts: Vec<u64> = got.bins.iter().map(|b| b.count).collect();
            let want_counts: Vec<u64> = serde_json::from_value(w["counts"].clone()).unwrap();
            assert_eq!(counts, want_counts, "{ctx}: bin counts");
            let nonempty: Vec<&ReliabilityBin> = got.bins.iter().filter(|b| b.count > 0).collect();
            assert_eq!(
                Some(nonempty.len()),
                w["prob_true"].as_array().map(Vec::len)
            );
            for (j, b) in nonempty.iter().enumerate() {
                let wt = &w["prob_true"][j];
                let wp = &w["prob_pred"][j];
                assert_close(b.accuracy, wt, 1e-12, &format!("{ctx} bin {j} accuracy"));
                assert_close(
                    b.confidence,
                    wp,
                    1e-12,
                    &format!("{ctx} bin {j} confidence"),
                );
            }
            assert_close(got.ece, &w["ece"], 1e-12, &format!("{ctx} ECE"));
            assert_close(got.mce, &w["mce"], 1e-12, &format!("{ctx} MCE"));
        }
    }

    #[test]
    fn rejects_out_of_range() {
        assert!(calibration(&[1.5], &[true], 10).is_err());
        assert!(calibration(&[f64::NAN], &[true], 10).is_err());
        assert!(calibration(&[0.5], &[true], 0).is_err());
        assert!(calibration_from_probs(&[0], &[vec![]], 10).is_err());
    }
}

//! Classification metrics: accuracy, confusion matrix, precision/recall/F1 (per class, binary,
//! macro, micro, weighted), top-k accuracy.
//!
//! Classes are indices `0..n_classes`. Every average runs over all `n_classes` classes, including
//! classes absent from both the labels and the predictions; this equals scikit-learn called with
//! `labels=list(range(n_classes))`. A ratio whose denominator is zero takes the value chosen by
//! [`ZeroDivision`] (scikit-learn's `zero_division`, whose default `"warn"` means 0). With
//! [`ZeroDivision::Nan`], averages skip NaN entries as scikit-learn does.

use serde::{Deserialize, Serialize};

use crate::error::{same_len, Error, Result};

/// Value of a precision, recall or F1 whose denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDivision {
    /// 0.0 (scikit-learn's default, `"warn"`).
    #[default]
    Zero,
    /// 1.0.
    One,
    /// NaN; averages ignore NaN entries.
    Nan,
}

impl ZeroDivision {
    fn value(self) -> f64 {
        match self {
            ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
            ZeroDivision::Nan => f64::NAN,
        }
    }
}

/// How per-class scores are combined into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Average {
    /// The scores of one positive class.
    Binary {
        /// The positive class.
        positive: usize,
    },
    /// Unweighted mean over classes.
    Macro,
    /// Global counts of true positives, false positives and false negatives.
    Micro,
    /// Mean over classes weighted by support (number of true instances).
    Weighted,
}

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `counts[t][p]`: examples of true class `t` predicted as `p`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Builds the matrix; every label must be below `n_classes`.
    pub fn new(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<Self> {
        same_len("y_true vs y_pred", y_true.len(), y_pred.len())?;
        if n_classes == 0 {
            return Err(Error::InvalidArgument(
                "n_classes must be at least 1".into(),
            ));
        }
        check_labels("y_true", y_true, n_classes)?;
        check_labels("y_pred", y_pred, n_classes)?;
        let mut counts = vec![vec![0u64; n_classes]; n_classes];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            counts[t][p] += 1;
        }
        Ok(ConfusionMatrix { counts })
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.counts.len()
    }

    /// Number of examples.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// True positives of class `c`.
    pub fn true_positives(&self, c: usize) -> u64 {
        self.counts[c][c]
    }

    /// Examples predicted as `c`.
    pub fn predicted(&self, c: usize) -> u64 {
        self.counts.iter().map(|row| row[c]).sum()
    }

    /// Examples whose true class is `c` (the support).
    pub fn support(&self, c: usize) -> u64 {
        self.counts[c].iter().sum()
    }

    /// Fraction of examples on the diagonal (NaN when there are none).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        let correct: u64 = (0..self.n_classes()).map(|c| self.counts[c][c]).sum();
        correct as f64 / total as f64
    }

    /// Rows divided by their sums (recall-normalized); empty rows stay zero.
    pub fn normalized_by_true(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|row| {
                let s: u64 = row.iter().sum();
                row.iter()
                    .map(|&v| if s == 0 { 0.0 } else { v as f64 / s as f64 })
                    .collect()
            })
            .collect()
    }
}

fn check_labels(what: &str, labels: &[usize], n_classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l >= n_classes) {
        None => Ok(()),
        Some(index) => Err(Error::InvalidValue {
            what: format!("{what} (classes 0..{n_classes})"),
            index,
            value: labels[index].to_string(),
        }),
    }
}

/// Fraction of positions where `y_true == y_pred`.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    same_len("y_true vs y_pred", y_true.len(), y_pred.len())?;
    if y_true.is_empty() {
        return Err(Error::Empty("accuracy".into()));
    }
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / y_true.len() as f64)
}

/// Precision, recall, F1 and support of one class or of an average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// tp / (tp + fp).
    #[serde(with = "crate::nan_null")]
    pub precision: f64,
    /// tp / (tp + fn).
    #[serde(with = "crate::nan_null")]
    pub recall: f64,
    /// 2 tp / (2 tp + fp + fn).
    #[serde(with = "crate::nan_null")]
    pub f1: f64,
    /// Number of true instances covered.
    pub support: u64,
}

fn divide(num: f64, den: f64, zero_division: ZeroDivision) -> f64 {
    if den == 0.0 {
        zero_division.value()
    } else {
        num / den
    }
}

fn scores_from_counts(tp: u64, pred: u64, truth: u64, zd: ZeroDivision) -> Scores {
    let (tp, pred_f, truth_f) = (tp as f64, pred as f64, truth as f64);
    Scores {
        precision: divide(tp, pred_f, zd),
        recall: divide(tp, truth_f, zd),
        f1: divide(2.0 * tp, truth_f + pred_f, zd),
        support: truth,
    }
}

/// Scores of every class, in class order.
pub fn per_class(cm: &ConfusionMatrix, zero_division: ZeroDivision) -> Vec<Scores> {
    (0..cm.n_classes())
        .map(|c| {
            scores_from_counts(
                cm.true_positives(c),
                cm.predicted(c),
                cm.support(c),
                zero_division,
            )
        })
        .collect()
}

/// Mean ignoring NaN entries, optionally weighted (all-zero weights fall back to the plain mean),
/// as scikit-learn's `_nanaverage`.
fn nan_average(values: &[f64], weights: Option<&[f64]>) -> f64 {
    let kept: Vec<usize> = (0..values.len()).filter(|&i| !values[i].is_nan()).collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    if let Some(w) = weights {
        let wsum: f64 = kept.iter().map(|&i| w[i]).sum();
        if wsum != 0.0 {
            return kept.iter().map(|&i| values[i] * w[i]).sum::<f64>() / wsum;
        }
    }
    kept.iter().map(|&i| values[i]).sum::<f64>() / kept.len() as f64
}

/// Precision, recall and F1 combined as `average` asks. `support` is the number of true
/// instances covered (the positive class's for `Binary`, all examples otherwise).
pub fn precision_recall_f1(
    cm: &ConfusionMatrix,
    average: Average,
    zero_division: ZeroDivision,
) -> Result<Scores> {
    let n = cm.n_classes();
    match average {
        Average::Binary { positive } => {
            if positive >= n {
                return Err(Error::InvalidArgument(format!(
                    "positive class {positive} is not below n_classes {n}"
                )));
            }
            Ok(per_class(cm, zero_division)[positive])
        }
        Average::Micro => {
            let tp: u64 = (0..n).map(|c| cm.true_positives(c)).sum();
            let total = cm.total();
            Ok(scores_from_counts(tp, total, total, zero_division))
        }
        Average::Macro | Average::Weighted => {
            let pc = per_class(cm, zero_division);
            let weights: Vec<f64> = pc.iter().map(|s| s.support as f64).collect();
            let w = matches!(average, Average::Weighted).then_some(weights.as_slice());
            let pick =
                |f: fn(&Scores) -> f64| nan_average(&pc.iter().map(f).collect::<Vec<_>>(), w);
            Ok(Scores {
                precision: pick(|s| s.precision),
                recall: pick(|s| s.recall),
                f1: pick(|s| s.f1),
                support: cm.total(),
            })
        }
    }
}

/// Fraction of examples whose true class is among the `k` highest scores. Ties are broken as
/// scikit-learn's `top_k_accuracy_score` does: among equal scores the higher class index ranks
/// first. `scores[i]` holds one score per class.
pub fn top_k_accuracy(y_true: &[usize], scores: &[Vec<f64>], k: usize) -> Result<f64> {
    same_len("y_true vs scores", y_true.len(), scores.len())?;
    if y_true.is_empty() {
        return Err(Error::Empty("top_k_accuracy".into()));
    }
    if k == 0 {
        return Err(Error::InvalidArgument("top-k needs k >= 1".into()));
    }
    let mut hits = 0usize;
    for (i, (&t, row)) in y_true.iter().zip(scores).enumerate() {
        if t >= row.len() {
            return Err(Error::InvalidValue {
                what: format!("y_true (row {i} has {} scores)", row.len()),
                index: i,
                value: t.to_string(),
            });
        }
        crate::error::all_finite(&format!("scores row {i}"), row)?;
        let st = row[t];
        let rank = row
            .iter()
            .enumerate()
            .filter(|&(j, &s)| s > st || (s == st && j > t))
            .count();
        if rank < k {
            hits += 1;
        }
    }
    Ok(hits as f64 / y_true.len() as f64)
}

/// Index of the largest score (the first one on ties), or an error for an empty or non-finite row.
pub fn argmax(row: &[f64]) -> Result<usize> {
    crate::error::all_finite("scores", row)?;
    let mut best: Option<usize> = None;
    for (i, &v) in row.iter().enumerate() {
        if best.is_none_or(|b| v > row[b]) {
            best = Some(i);
        }
    }
    best.ok_or_else(|| Error::Empty("argmax of an empty score row".into()))
}

/// Every classification number for one evaluation, ready to serialize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationSummary {
    /// Class names, index = class id.
    pub class_names: Vec<String>,
    /// Number of examples.
    pub n: u64,
    /// Accuracy.
    #[serde(with = "crate::nan_null")]
    pub accuracy: f64,
    /// Macro-averaged scores.
    pub macro_avg: Scores,
    /// Micro-averaged scores.
    pub micro_avg: Scores,
    /// Support-weighted scores.
    pub weighted_avg: Scores,
    /// One entry per class.
    pub per_class: Vec<Scores>,
    /// The confusion matrix.
    pub confusion: ConfusionMatrix,
    /// Top-k accuracies `(k, value)` when scores were given.
    pub top_k: Vec<(usize, f64)>,
}

impl ClassificationSummary {
    /// Computes everything from labels, predictions and (optionally) per-class scores.
    pub fn compute(
        class_names: &[String],
        y_true: &[usize],
        y_pred: &[usize],
        scores: Option<&[Vec<f64>]>,
        top_ks: &[usize],
        zero_division: ZeroDivision,
    ) -> Result<Self> {
        let cm = ConfusionMatrix::new(y_true, y_pred, class_names.len())?;
        if y_true.is_empty() {
            return Err(Error::Empty("classification summary".into()));
        }
        let mut top_k = Vec::new();
        if let Some(s) = scores {
            for &k in top_ks {
                top_k.push((k, top_k_accuracy(y_true, s, k)?));
            }
        }
        Ok(ClassificationSummary {
            class_names: class_names.to_vec(),
            n: y_true.len() as u64,
            accuracy: cm.accuracy(),
            macro_avg: precision_recall_f1(&cm, Average::Macro, zero_division)?,
            micro_avg: precision_recall_f1(&cm, Average::Micro, zero_division)?,
            weighted_avg: precision_recall_f1(&cm, Average::Weighted, zero_division)?,
            per_class: per_class(&cm, zero_division),
            confusion: cm,
            top_k,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, python_reference, rng};
    use rand::Rng;
    use serde_json::json;

    #[test]
    fn hand_checked_binary() {
        // tp=2 fp=1 fn=1 tn=1
        let t = [1, 1, 1, 0, 0];
        let p = [1, 1, 0, 1, 0];
        let cm = ConfusionMatrix::new(&t, &p, 2).unwrap();
        assert_eq!(cm.counts, vec![vec![1, 1], vec![1, 2]]);
        let s =
            precision_recall_f1(&cm, Average::Binary { positive: 1 }, ZeroDivision::Zero).unwrap();
        assert_eq!(
            (s.precision, s.recall, s.support),
            (2.0 / 3.0, 2.0 / 3.0, 3)
        );
        assert!((s.f1 - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(accuracy(&t, &p).unwrap(), 0.6);
    }

    #[test]
    fn bad_labels_are_errors() {
        assert!(ConfusionMatrix::new(&[0, 3], &[0, 1], 3).is_err());
        assert!(ConfusionMatrix::new(&[0], &[0, 1], 3).is_err());
        assert!(top_k_accuracy(&[5], &[vec![0.1, 0.2]], 1).is_err());
        assert!(top_k_accuracy(&[0], &[vec![f64::NAN, 0.2]], 1).is_err());
        assert!(accuracy(&[], &[]).is_err());
    }

    #[test]
    fn top_k_ties_rank_higher_index_first() {
        // class 0 ties with class 2: class 2 ranks first, so top-1 misses class 0.
        assert_eq!(
            top_k_accuracy(&[0], &[vec![0.5, 0.1, 0.5]], 1).unwrap(),
            0.0
        );
        assert_eq!(
            top_k_accuracy(&[2], &[vec![0.5, 0.1, 0.5]], 1).unwrap(),
            1.0
        );
        assert_eq!(
            top_k_accuracy(&[0], &[vec![0.5, 0.1, 0.5]], 2).unwrap(),
            1.0
        );
    }

    /// Random label sets (skewed so some classes are absent from labels, predictions or both)
    /// scored here and by scikit-learn; every number must agree to 1e-12.
    #[test]
    fn matches_sklearn_on_random_label_sets() {
        let mut r = rng(7);
        let mut cases = Vec::new();
        for case in 0..120 {
            let n_classes = r.gen_range(2..7usize);
            let n = match case % 6 {
                0 => r.gen_range(1..4),
                _ => r.gen_range(5..200),
            };
            // Restrict the classes that appear so some are absent.
            let used_true = r.gen_range(1..=n_classes);
            let used_pred = r.gen_range(1..=n_classes);
            let y_true: Vec<usize> = (0..n).map(|_| r.gen_range(0..used_true)).collect();
            let y_pred: Vec<usize> = (0..n)
                .map(|i| {
                    if r.gen_bool(0.5) {
                        y_true[i].min(used_pred - 1)
                    } else {
                        r.gen_range(0..used_pred)
                    }
                })
                .collect();
            let scores: Vec<Vec<f64>> = (0..n)
                .map(|_| {
                    (0..n_classes)
                        .map(|_| (r.gen_range(0..20) as f64) / 20.0)
                        .collect()
                })
                .collect();
            let zd = [ZeroDivision::Zero, ZeroDivision::One, ZeroDivision::Nan][case % 3];
            cases.push((n_classes, y_true, y_pred, scores, zd));
        }
        let input: Vec<_> = cases
            .iter()
            .map(|(nc, t, p, s, zd)| {
                json!({"n_classes": nc, "y_true": t, "y_pred": p, "scores": s,
                       "zero_division": match zd { ZeroDivision::Zero => json!(0), ZeroDivision::One => json!(1), ZeroDivision::Nan => json!("nan") }})
            })
            .collect();
        let out = python_reference(
            "eval_sklearn.py",
            &json!({"task": "classification", "cases": input}),
        );
        let out = out.as_array().expect("array of results");
        assert_eq!(out.len(), cases.len());
        for (i, ((nc, t, p, s, zd), want)) in cases.iter().zip(out).enumerate() {
            let ctx = format!("case {i} (n_classes={nc}, zero_division={zd:?})");
            let cm = ConfusionMatrix::new(t, p, *nc).unwrap();
            let want_cm: Vec<Vec<u64>> = serde_json::from_value(want["confusion"].clone()).unwrap();
            assert_eq!(cm.counts, want_cm, "{ctx}: confusion");
            assert_close(
                accuracy(t, p).unwrap(),
                &want["accuracy"],
                1e-12,
                &format!("{ctx} accuracy"),
            );
            for (name, avg) in [
                ("macro", Average::Macro),
                ("micro", Average::Micro),
                ("weighted", Average::Weighted),
            ] {
                let got = precision_recall_f1(&cm, avg, *zd).unwrap();
                let w = &want[name];
                assert_close(
                    got.precision,
                    &w[0],
                    1e-12,
                    &format!("{ctx} {name} precision"),
                );
                assert_close(got.recall, &w[1], 1e-12, &format!("{ctx} {name} recall"));
                assert_close(got.f1, &w[2], 1e-12, &format!("{ctx} {name} f1"));
            }
            let pc = per_class(&cm, *zd);
            for c in 0..*nc {
                let w = &want["per_class"];
                assert_close(
                    pc[c].precision,
                    &w[0][c],
                    1e-12,
                    &format!("{ctx} class {c} precision"),
                );
                assert_close(
                    pc[c].recall,
                    &w[1][c],
                    1e-12,
                    &format!("{ctx} class {c} recall"),
                );
                assert_close(pc[c].f1, &w[2][c], 1e-12, &format!("{ctx} class {c} f1"));
                assert_eq!(
                    Some(pc[c].support as f64),
                    w[3][c].as_f64(),
                    "{ctx} class {c} support"
                );
            }
            if *nc == 2 {
                let got = precision_recall_f1(&cm, Average::Binary { positive: 1 }, *zd).unwrap();
                let w = &want["binary"];
                assert_close(
                    got.precision,
                    &w[0],
                    1e-12,
                    &format!("{ctx} binary precision"),
                );
                assert_close(got.recall, &w[1], 1e-12, &format!("{ctx} binary recall"));
                assert_close(got.f1, &w[2], 1e-12, &format!("{ctx} binary f1"));
            }
            if *nc >= 3 {
                for k in 1..*nc {
                    let got = top_k_accuracy(t, s, k).unwrap();
                    assert_close(got, &want["top_k"][k - 1], 1e-12, &format!("{ctx} top-{k}"));
                }
            }
        }
    }
}

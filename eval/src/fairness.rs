//! Fairness: metrics per slice (sensitive group) and the gaps between slices, with fairlearn's
//! definitions.
//!
//! For binary tasks (labels 0/1, positive = 1): selection rate, true- and false-positive rates
//! per group (a rate whose group has no positives, or no negatives, is 0, as fairlearn's
//! normalized confusion matrix gives), demographic parity difference and ratio, equalized odds
//! difference and ratio ("worst case" aggregation), each `between_groups` or `to_overall`.
//! For any task, [`per_slice`] gives accuracy and macro F1 per slice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::classification::{precision_recall_f1, Average, ConfusionMatrix, ZeroDivision};
use crate::error::{same_len, Error, Result};

/// Which reference the gaps are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GapMethod {
    /// Largest group value against smallest.
    #[default]
    BetweenGroups,
    /// Each group against the whole population.
    ToOverall,
}

/// Rates of one group (or of everyone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    /// Group name (`"overall"` for everyone).
    pub group: String,
    /// Examples.
    pub count: u64,
    /// Accuracy.
    #[serde(with = "crate::nan_null")]
    pub accuracy: f64,
    /// Fraction predicted positive.
    #[serde(with = "crate::nan_null")]
    pub selection_rate: f64,
    /// True-positive rate (0 when the group has no positives).
    #[serde(with = "crate::nan_null")]
    pub tpr: f64,
    /// False-positive rate (0 when the group has no negatives).
    #[serde(with = "crate::nan_null")]
    pub fpr: f64,
}

/// Binary fairness summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairnessReport {
    /// How gaps were measured.
    pub method: GapMethod,
    /// One entry per group, sorted by name.
    pub groups: Vec<GroupRates>,
    /// Everyone.
    pub overall: GroupRates,
    /// Demographic parity difference (selection-rate gap).
    #[serde(with = "crate::nan_null")]
    pub demographic_parity_difference: f64,
    /// Demographic parity ratio (NaN when undefined, as fairlearn).
    #[serde(with = "crate::nan_null")]
    pub demographic_parity_ratio: f64,
    /// Equalized odds difference: the larger of the TPR and FPR gaps.
    #[serde(with = "crate::nan_null")]
    pub equalized_odds_difference: f64,
    /// Equalized odds ratio: the smaller of the TPR and FPR ratios.
    #[serde(with = "crate::nan_null")]
    pub equalized_odds_ratio: f64,
}

fn rates(group: &str, t: &[usize], p: &[usize]) -> GroupRates {
    let n = t.len() as f64;
    let mut tp = 0u64;
    let mut fp = 0u64;
    let mut pos = 0u64;
    let mut correct = 0u64;
    let mut selected = 0u64;
    for (&a, &b) in t.iter().zip(p) {
        pos += (a == 1) as u64;
        tp += (a == 1 && b == 1) as u64;
        fp += (a == 0 && b == 1) as u64;
        correct += (a == b) as u64;
        selected += (b == 1) as u64;
    }
    let neg = t.len() as u64 - pos;
    GroupRates {
        group: group.to_string(),
        count: t.len() as u64,
        accuracy: correct as f64 / n,
        selection_rate: selected as f64 / n,
        tpr: if pos == 0 {
            0.0
        } else {
            tp as f64 / pos as f64
        },
        fpr: if neg == 0 {
            0.0
        } else {
            fp as f64 / neg as f64
        },
    }
}

fn group_indices(groups: &[String]) -> BTreeMap<&str, Vec<usize>> {
    let mut m: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        m.entry(g.as_str()).or_default().push(i);
    }
    m
}

/// pandas `max`/`min` skip NaN; all-NaN gives NaN.
fn nan_max(v: impl Iterator<Item = f64>) -> f64 {
    v.filter(|x| !x.is_nan())
        .fold(f64::NAN, |m, x| if m.is_nan() || x > m { x } else { m })
}

fn nan_min(v: impl Iterator<Item = f64>) -> f64 {
    v.filter(|x| !x.is_nan())
        .fold(f64::NAN, |m, x| if m.is_nan() || x < m { x } else { m })
}

fn difference(values: &[f64], overall: f64, method: GapMethod) -> f64 {
    match method {
        GapMethod::BetweenGroups => {
            let lo = nan_min(values.iter().copied());
            nan_max(values.iter().map(|v| (v - lo).abs()))
        }
        GapMethod::ToOverall => nan_max(values.iter().map(|v| (v - overall).abs())),
    }
}

fn ratio(values: &[f64], overall: f64, method: GapMethod) -> f64 {
    match method {
        GapMethod::BetweenGroups => {
            nan_min(values.iter().copied()) / nan_max(values.iter().copied())
        }
        GapMethod::ToOverall => nan_min(values.iter().map(|v| {
            let r = v / overall;
            if r > 1.0 {
                1.0 / r
            } else {
                r
            }
        })),
    }
}

/// Python's built-in `max(a, b)` / `min(a, b)` over a two-element sequence (NaN-order dependent,
/// as fairlearn's worst-case aggregation inherits).
fn py_max2(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

fn py_min2(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// Binary fairness metrics. Labels and predictions must be 0 or 1; `groups[i]` names the
/// sensitive group of example `i`.
pub fn binary_fairness(
    y_true: &[usize],
    y_pred: &[usize],
    groups: &[String],
    method: GapMethod,
) -> Result<FairnessReport> {
    same_len("y_true vs y_pred", y_true.len(), y_pred.len())?;
    same_len("y_true vs groups", y_true.len(), groups.len())?;
    if y_true.is_empty() {
        return Err(Error::Empty("fairness".into()));
    }
    for (what, v) in [("y_true", y_true), ("y_pred", y_pred)] {
        if let Some(i) = v.iter().position(|&x| x > 1) {
            return Err(Error::InvalidValue {
                what: format!("{what} (binary fairness needs 0/1 labels)"),
                index: i,
                value: v[i].to_string(),
            });
        }
    }
    let overall = rates("overall", y_true, y_pred);
    let groups: Vec<GroupRates> = group_indices(groups)
        .into_iter()
        .map(|(g, idx)| {
            let t: Vec<usize> = idx.iter().map(|&i| y_true[i]).collect();
            let p: Vec<usize> = idx.iter().map(|&i| y_pred[i]).collect();
            rates(g, &t, &p)
        })
        .collect();
    let sel: Vec<f64> = groups.iter().map(|g| g.selection_rate).collect();
    let tpr: Vec<f64> = groups.iter().map(|g| g.tpr).collect();
    let fpr: Vec<f64> = groups.iter().map(|g| g.fpr).collect();
    Ok(FairnessReport {
        method,
        demographic_parity_difference: difference(&sel, overall.selection_rate, method),
        demographic_parity_ratio: ratio(&sel, overall.selection_rate, method),
        equalized_odds_difference: py_max2(
            difference(&tpr, overall.tpr, method),
            difference(&fpr, overall.fpr, method),
        ),
        equalized_odds_ratio: py_min2(
            ratio(&tpr, overall.tpr, method),
            ratio(&fpr, overall.fpr, method),
        ),
        groups,
        overall,
    })
}

/// Metrics of one slice of a (possibly multi-class) evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceMetrics {
    /// Slice name.
    pub slice: String,
    /// Examples.
    pub count: u64,
    /// Accuracy.
    #[serde(with = "crate::nan_null")]
    pub accuracy: f64,
    /// Macro F1 over all classes (zero division → 0).
    #[serde(with = "crate::nan_null")]
    pub macro_f1: f64,
}

/// Accuracy and macro F1 per slice, sorted by slice name.
pub fn per_slice(
    y_true: &[usize],
    y_pred: &[usize],
    slices: &[String],
    n_classes: usize,
) -> Result<Vec<SliceMetrics>> {
    same_len("y_true vs slices", y_true.len(), slices.len())?;
    same_len("y_true vs y_pred", y_true.len(), y_pred.len())?;
    group_indices(slices)
        .into_iter()
        .map(|(s, idx)| {
            let t: Vec<usize> = idx.iter().map(|&i| y_true[i]).collect();
            let p: Vec<usize> = idx.iter().map(|&i| y_pred[i]).collect();
            let cm = ConfusionMatrix::new(&t, &p, n_classes)?;
            Ok(SliceMetrics {
                slice: s.to_string(),
                count: t.len() as u64,
                accuracy: cm.accuracy(),
                macro_f1: precision_recall_f1(&cm, Average::Macro, ZeroDivision::Zero)?.f1,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, python_reference, rng};
    use rand::Rng;
    use serde_json::json;

    #[test]
    fn matches_fairlearn_on_random_data() {
        let mut r = rng(21);
        let mut cases = Vec::new();
        for case in 0..24 {
            let n = r.gen_range(4..150);
            let n_groups = r.gen_range(1..5);
            let names = ["a", "b", "c", "d"];
            let groups: Vec<String> = (0..n)
                .map(|_| names[r.gen_range(0..n_groups)].to_string())
                .collect();
            let p_pos = [0.0, 0.3, 0.5, 1.0][case % 4];
            let y_true: Vec<usize> = (0..n).map(|_| r.gen_bool(p_pos) as usize).collect();
            let y_pred: Vec<usize> = (0..n)
                .map(|i| {
                    if r.gen_bool(0.6) {
                        y_true[i]
                    } else {
                        r.gen_bool(0.5) as usize
                    }
                })
                .collect();
            cases.push((y_true, y_pred, groups));
        }
        let input: Vec<_> = cases
            .iter()
            .map(|(t, p, g)| json!({"y_true": t, "y_pred": p, "groups": g}))
            .collect();
        let want = python_reference(
            "eval_sklearn.py",
            &json!({"task": "fairness", "cases": input}),
        );
        for (i, (t, p, g)) in cases.iter().enumerate() {
            for (m, suffix) in [
                (GapMethod::BetweenGroups, "between_groups"),
                (GapMethod::ToOverall, "to_overall"),
            ] {
                let ctx = format!("case {i} {suffix}");
                let got = binary_fairness(t, p, g, m).unwrap();
                let w = &want[i];
                assert_close(
                    got.demographic_parity_difference,
                    &w[format!("dp_difference_{suffix}")],
                    1e-12,
                    &format!("{ctx} dp difference"),
                );
                assert_close(
                    got.demographic_parity_ratio,
                    &w[format!("dp_ratio_{suffix}")],
                    1e-12,
                    &format!("{ctx} dp ratio"),
                );
                assert_close(
                    got.equalized_odds_difference,
                    &w[format!("eo_difference_{suffix}")],
                    1e-12,
                    &format!("{ctx} eo difference"),
                );
                assert_close(
                    got.equalized_odds_ratio,
                    &w[format!("eo_ratio_{suffix}")],
                    1e-12,
                    &format!("{ctx} eo ratio"),
                );
                for gr in &got.groups {
                    let wg = &w["by_group"][&gr.group];
                    assert_close(
                        gr.accuracy,
                        &wg["accuracy"],
                        1e-12,
                        &format!("{ctx} group {} accuracy", gr.group),
                    );
                    assert_close(
                        gr.selection_rate,
                        &wg["selection_rate"],
                        1e-12,
                        &format!("{ctx} group {} selection", gr.group),
                    );
                    assert_eq!(
                        Some(gr.count as f64),
                        wg["count"].as_f64(),
                        "{ctx} group {} count",
                        gr.group
                    );
                }
            }
        }
    }

    #[test]
    fn per_slice_and_errors() {
        let s: Vec<String> = ["x", "y", "x", "y"].iter().map(|s| s.to_string()).collect();
        let m = per_slice(&[0, 1, 1, 1], &[0, 1, 0, 1], &s, 2).unwrap();
        assert_eq!(m[0].slice, "x");
        assert_eq!(m[0].accuracy, 0.5);
        assert_eq!(m[1].accuracy, 1.0);
        assert!(binary_fairness(&[2], &[0], &s[..1], GapMethod::BetweenGroups).is_err());
        assert!(binary_fairness(&[], &[], &[], GapMethod::BetweenGroups).is_err());
    }
}

//! The retraining policy: when to retrain (triggers), which field feedback becomes training data
//! (corrections and confirmed predictions, deduplicated, purged of anything in a held-out set),
//! and whether a candidate ships (the evaluation gate). Training, quantizing and compiling are
//! the trainer's and the compiler's; `edgeloop retrain` and `edgeloop demo` run this policy
//! around them.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::store::StoreData;

/// Thresholds of the policy. The defaults are what `edgeloop demo` uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Corrections that trigger retraining on their own.
    pub min_corrections: usize,
    /// Host drift windows that trigger retraining (0 disables the trigger).
    pub min_drifted_windows: usize,
    /// On-device drift alarms that trigger retraining (0 disables the trigger).
    pub min_device_alarms: usize,
    /// Schedule: retrain when the deployed model is at least this many days old.
    pub max_age_days: Option<f64>,
    /// Gate: the candidate's accuracy on the original (lab) test set may be at most this much
    /// below the deployed model's.
    pub lab_tolerance: f64,
    /// Gate: the candidate's accuracy on the held-out field set must exceed the deployed
    /// model's by more than this.
    pub min_field_gain: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_corrections: 20,
            min_drifted_windows: 1,
            min_device_alarms: 1,
            max_age_days: None,
            lab_tolerance: 0.02,
            min_field_gain: 0.0,
        }
    }
}

/// What the fleet's telemetry says, for the triggers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Host drift windows flagged (dataset drift).
    pub drifted_windows: usize,
    /// Host drift windows analysed.
    pub windows: usize,
    /// On-device drift alarms in the store.
    pub device_alarms: usize,
    /// User corrections in the store.
    pub corrections: usize,
    /// Age of the deployed model in days, when known.
    pub deployed_age_days: Option<f64>,
}

/// Accuracy of one model version on the two gate sets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateScores {
    /// The original (lab) test set.
    pub lab: f64,
    /// The held-out field set.
    pub field: f64,
}

/// The gate's verdict, with one line per criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    /// Ship the candidate.
    pub accepted: bool,
    /// Each criterion with its numbers and `pass` / `FAIL`.
    pub lines: Vec<String>,
}

impl Policy {
    /// The triggers that fire on `e` (empty: do not retrain).
    pub fn triggers(&self, e: &Evidence) -> Vec<String> {
        let mut t = Vec::new();
        if self.min_drifted_windows > 0 && e.drifted_windows >= self.min_drifted_windows {
            t.push(format!(
                "host drift: {} of {} windows",
                e.drifted_windows, e.windows
            ));
        }
        if self.min_device_alarms > 0 && e.device_alarms >= self.min_device_alarms {
            t.push(format!("on-device drift alarms: {}", e.device_alarms));
        }
        if self.min_corrections > 0 && e.corrections >= self.min_corrections {
            t.push(format!("{} user corrections", e.corrections));
        }
        if let (Some(max), Some(age)) = (self.max_age_days, e.deployed_age_days) {
            if age >= max {
                t.push(format!(
                    "schedule: the deployed model is {age:.1} days old (retrain every {max} days)"
                ));
            }
        }
        t
    }

    /// Decides whether `candidate` replaces `deployed`.
    pub fn gate(&self, deployed: GateScores, candidate: GateScores) -> GateDecision {
        let field_ok = candidate.field - deployed.field > self.min_field_gain;
        let lab_ok = deployed.lab - candidate.lab <= self.lab_tolerance + 1e-12;
        let verdict = |ok: bool| if ok { "pass" } else { "FAIL" };
        let lines = vec![
            format!(
                "field hold-out accuracy {:.1}% → {:.1}% ({:+.1} points; must rise by more than {:.1}): {}",
                100.0 * deployed.field,
                100.0 * candidate.field,
                100.0 * (candidate.field - deployed.field),
                100.0 * self.min_field_gain,
                verdict(field_ok)
            ),
            format!(
                "lab test accuracy {:.1}% → {:.1}% ({:+.1} points; may drop at most {:.1}): {}",
                100.0 * deployed.lab,
                100.0 * candidate.lab,
                100.0 * (candidate.lab - deployed.lab),
                100.0 * self.lab_tolerance,
                verdict(lab_ok)
            ),
        ];
        GateDecision {
            accepted: field_ok && lab_ok,
            lines,
        }
    }
}

/// One labelled input from field feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackExample {
    /// The sampled input values (token ids), as the device recorded them.
    pub sample: Vec<i32>,
    /// The class: the user's correction, or the prediction a thumbs-up confirmed.
    pub class: u16,
}

/// The feedback that can be trained on, and what was left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedbackSet {
    /// Usable examples, in store order.
    pub examples: Vec<FeedbackExample>,
    /// Dropped: the input is in a held-out set (training on it would leak the evaluation).
    pub leaks_removed: usize,
    /// Dropped: the same input was already taken.
    pub duplicates_removed: usize,
    /// Dropped: no sampled input, or no class (a thumbs-down without a correction, or a
    /// thumbs-up whose inference row is not in the store).
    pub unusable: usize,
}

/// Turns the store's feedback into labelled examples: a correction gives the right class; a
/// thumbs-up confirms the predicted class (looked up from the inference row by device, boot and
/// sequence). Inputs in `held_out` and repeated inputs are dropped and counted.
pub fn feedback_examples(data: &StoreData, held_out: &HashSet<Vec<i32>>) -> FeedbackSet {
    let predicted: HashMap<(u64, u32, u32), u16> = data
        .inferences
        .iter()
        .map(|r| {
            (
                (r.common.partition.device, r.common.boot, r.common.seq),
                r.class,
            )
        })
        .collect();
    let mut set = FeedbackSet::default();
    let mut seen: HashSet<&[i32]> = HashSet::new();
    for f in &data.feedback {
        let class = match (f.correction, f.thumbs_up) {
            (Some(c), _) => Some(c),
            (None, Some(true)) => predicted
                .get(&(f.common.partition.device, f.common.boot, f.inference_seq))
                .copied(),
            _ => None,
        };
        let Some(class) = class.filter(|_| !f.sample.is_empty()) else {
            set.unusable += 1;
            continue;
        };
        if held_out.contains(&f.sample) {
            set.leaks_removed += 1;
            continue;
        }
        if !seen.insert(&f.sample) {
            set.duplicates_removed += 1;
            continue;
        }
        set.examples.push(FeedbackExample {
            sample: f.sample.clone(),
            class,
        });
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Common, FeedbackRow, InferenceRow, Partition};

    fn common(device: u64, seq: u32) -> Common {
        Common {
            partition: Partition {
                date: "2026-11-26".into(),
                model_version: 1,
                device,
            },
            boot: 0,
            seq,
            ticks: 0,
            model_id: 1,
            received_at_ms: 0,
        }
    }

    fn inference(device: u64, seq: u32, class: u16) -> InferenceRow {
        InferenceRow {
            common: common(device, seq),
            class,
            confidence: 0.9,
            latency_ticks: 1,
            input_len: 3,
            input_min: 0,
            input_max: 9,
            input_mean: 1.0,
            input_std: 1.0,
        }
    }

    fn feedback(
        device: u64,
        about: u32,
        correction: Option<u16>,
        up: Option<bool>,
        sample: &[i32],
    ) -> FeedbackRow {
        FeedbackRow {
            common: common(device, about + 1000),
            inference_seq: about,
            correction,
            thumbs_up: up,
            sample: sample.to_vec(),
        }
    }

    #[test]
    fn each_trigger_fires_at_its_threshold_and_not_below() {
        let p = Policy {
            max_age_days: Some(30.0),
            ..Policy::default()
        };
        assert!(p.triggers(&Evidence::default()).is_empty());
        let e = Evidence {
            drifted_windows: 1,
            windows: 8,
            ..Evidence::default()
        };
        assert_eq!(p.triggers(&e), vec!["host drift: 1 of 8 windows"]);
        let e = Evidence {
            device_alarms: 3,
            ..Evidence::default()
        };
        assert_eq!(p.triggers(&e), vec!["on-device drift alarms: 3"]);
        let below = Evidence {
            corrections: 19,
            deployed_age_days: Some(29.9),
            ..Evidence::default()
        };
        assert!(p.triggers(&below).is_empty());
        let at = Evidence {
            corrections: 20,
            deployed_age_days: Some(30.0),
            ..Evidence::default()
        };
        let t = p.triggers(&at);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t[0].contains("20 user corrections") && t[1].starts_with("schedule"));
        // A zero threshold disables a trigger.
        let off = Policy {
            min_drifted_windows: 0,
            min_device_alarms: 0,
            min_corrections: 0,
            ..Policy::default()
        };
        let all = Evidence {
            drifted_windows: 5,
            windows: 5,
            device_alarms: 5,
            corrections: 500,
            deployed_age_days: Some(1000.0),
        };
        assert!(off.triggers(&all).is_empty());
    }

    #[test]
    fn the_gate_needs_a_field_gain_and_bounds_the_lab_drop() {
        let p = Policy::default();
        let v1 = GateScores {
            lab: 0.90,
            field: 0.60,
        };
        let ok = p.gate(
            v1,
            GateScores {
                lab: 0.88,
                field: 0.61,
            },
        );
        assert!(ok.accepted, "{:?}", ok.lines);
        let no_gain = p.gate(
            v1,
            GateScores {
                lab: 0.95,
                field: 0.60,
            },
        );
        assert!(!no_gain.accepted);
        assert!(no_gain.lines[0].ends_with("FAIL") && no_gain.lines[1].ends_with("pass"));
        let lab_drop = p.gate(
            v1,
            GateScores {
                lab: 0.879,
                field: 0.9,
            },
        );
        assert!(!lab_drop.accepted);
        assert!(lab_drop.lines[1].ends_with("FAIL"));
    }

    #[test]
    fn feedback_becomes_examples_without_leaks_or_duplicates() {
        let data = StoreData {
            inferences: vec![inference(1, 10, 4), inference(2, 10, 5)],
            feedback: vec![
                feedback(1, 10, Some(2), Some(false), &[1, 2, 3]), // correction → 2
                feedback(2, 10, None, Some(true), &[4, 5, 6]),     // confirmed → device 2's 5
                feedback(1, 99, None, Some(true), &[7, 7, 7]),     // no inference row
                feedback(1, 10, None, Some(false), &[8, 8, 8]),    // thumbs-down, no correction
                feedback(1, 11, Some(1), None, &[]),               // no sample
                feedback(1, 12, Some(3), None, &[9, 9, 9]),        // held out
                feedback(2, 13, Some(0), None, &[1, 2, 3]),        // duplicate input
            ],
            ..StoreData::default()
        };
        let held: HashSet<Vec<i32>> = [vec![9, 9, 9]].into_iter().collect();
        let set = feedback_examples(&data, &held);
        assert_eq!(
            set.examples,
            vec![
                FeedbackExample {
                    sample: vec![1, 2, 3],
                    class: 2
                },
                FeedbackExample {
                    sample: vec![4, 5, 6],
                    class: 5
                },
            ]
        );
        assert_eq!(
            (set.leaks_removed, set.duplicates_removed, set.unusable),
            (1, 1, 3)
        );
    }
}

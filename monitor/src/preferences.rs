//! Preference pairs from field feedback on generations, for DPO.
//!
//! A device (or `edgeloop serve`) that opts in samples `prompt ids…, -1, response ids…` into the
//! feedback record of a rated generation ([`RESPONSE_SEPARATOR`]). Responses to the same prompt
//! with a thumbs-up and a thumbs-down make a pair `(prompt, chosen, rejected)`.
//!
//! A generation the user *corrected* (typed the answer it should have given) makes a pair on its
//! own: the correction is chosen over the response. Its sample has one of two forms
//! ([`CORRECTION_SEPARATOR`]):
//! - `prompt…, -1, response…, -2, correction…` when all of it fits one sample;
//! - `prompt…, -2, correction…`, in a feedback record about the same inference (device, boot,
//!   `inference_seq`) as another record that carries `prompt…, -1, response…` — for a device
//!   whose prompt, response and correction together exceed the sample.
//!
//! Prompts in a held-out set are dropped (training on them would leak the evaluation), repeated
//! pairs are dropped, and a prompt with only one kind of rating and no correction yields no pair;
//! each is counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use edgeloop_runtime::telemetry::{CORRECTION_SEPARATOR, RESPONSE_SEPARATOR};
use serde::{Deserialize, Serialize};

use crate::store::{FeedbackRow, StoreData};

/// One preference pair in token ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The prompt.
    pub prompt: Vec<u32>,
    /// The response rated up (or the user's correction).
    pub chosen: Vec<u32>,
    /// The response rated down (or the corrected one).
    pub rejected: Vec<u32>,
}

/// The pairs, and what was left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceSet {
    /// Usable pairs, ordered by prompt; within a prompt, pairs from corrections come first.
    pub pairs: Vec<PreferencePair>,
    /// Rated responses with a usable sample.
    pub rated: usize,
    /// Corrected responses whose response is known (each a pair candidate on its own).
    #[serde(default)]
    pub corrected: usize,
    /// Pairs among [`Self::pairs`] that come from corrections.
    #[serde(default)]
    pub from_corrections: usize,
    /// Feedback without thumbs or correction, without a usable sample, from another model, with an
    /// empty prompt or correction, with a correction equal to the response, or a correction whose
    /// response no record of the same inference carries.
    pub unusable: usize,
    /// Rated or corrected responses whose prompt is in a held-out set.
    pub leaks_removed: usize,
    /// Prompts rated only up or only down, and never corrected (no pair).
    pub prompts_without_pair: usize,
    /// Repeated ratings or corrections of the same response to the same prompt.
    pub duplicates_removed: usize,
}

/// A generation's feedback sample, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationSample {
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    /// The model's response, when the sample carries it.
    pub response: Option<Vec<u32>>,
    /// The response the user typed instead, when they corrected it.
    pub correction: Option<Vec<u32>>,
}

/// Parses `prompt…, -1, response…`, `prompt…, -1, response…, -2, correction…` or
/// `prompt…, -2, correction…`; `None` when there is neither separator, the prompt or the
/// correction is empty, the response is empty and not corrected, or an id is negative.
pub fn parse_sample(sample: &[i32]) -> Option<GenerationSample> {
    let ids =
        |s: &[i32]| -> Option<Vec<u32>> { s.iter().map(|&v| u32::try_from(v).ok()).collect() };
    let r = sample.iter().position(|&v| v == RESPONSE_SEPARATOR);
    let c = sample.iter().position(|&v| v == CORRECTION_SEPARATOR);
    let (prompt, response, correction) = match (r, c) {
        (None, None) => return None,
        (Some(r), None) => (&sample[..r], Some(&sample[r + 1..]), None),
        (None, Some(c)) => (&sample[..c], None, Some(&sample[c + 1..])),
        (Some(r), Some(c)) if r < c => (
            &sample[..r],
            Some(&sample[r + 1..c]),
            Some(&sample[c + 1..]),
        ),
        (Some(_), Some(_)) => return None,
    };
    let g = GenerationSample {
        prompt: ids(prompt)?,
        response: match response {
            Some(r) => Some(ids(r)?),
            None => None,
        },
        correction: match correction {
            Some(c) => Some(ids(c)?),
            None => None,
        },
    };
    // An empty response (end of text first) is usable only when corrected: "stop at once" is
    // then the rejected answer.
    let bad = g.prompt.is_empty()
        || g.correction.as_ref().is_some_and(|c| c.is_empty())
        || (g.correction.is_none() && g.response.as_ref().is_some_and(|r| r.is_empty()));
    (!bad).then_some(g)
}

/// Splits a feedback sample into `(prompt, response)` (any correction is left out); `None` when
/// it carries no response, or as for [`parse_sample`].
pub fn split_sample(sample: &[i32]) -> Option<(Vec<u32>, Vec<u32>)> {
    let g = parse_sample(sample)?;
    let r = g.response?;
    (!r.is_empty()).then_some((g.prompt, r))
}

/// `prompt…, -1, response…` with a non-empty prompt and any response, empty included (an
/// answer that ended at once can still be corrected).
fn prompt_and_response(sample: &[i32]) -> Option<(Vec<u32>, Vec<u32>)> {
    let ids =
        |s: &[i32]| -> Option<Vec<u32>> { s.iter().map(|&v| u32::try_from(v).ok()).collect() };
    let at = sample.iter().position(|&v| v == RESPONSE_SEPARATOR)?;
    let prompt = ids(&sample[..at])?;
    (!prompt.is_empty()).then_some((prompt, ids(&sample[at + 1..])?))
}

/// Per prompt: responses rated up, rated down, and `(correction, response)` pairs, in
/// first-seen order.
#[derive(Default)]
struct Rated {
    up: Vec<Vec<u32>>,
    down: Vec<Vec<u32>>,
    corrected: Vec<(Vec<u32>, Vec<u32>)>,
}

/// `(prompt, chosen, rejected)`: a pair already taken.
type PairKey = (Vec<u32>, Vec<u32>, Vec<u32>);

/// Device, boot, inference sequence number: one inference.
type InferenceKey = (u64, u32, u32);

/// The inference a feedback record is about.
fn inference_key(f: &FeedbackRow) -> InferenceKey {
    (f.common.partition.device, f.common.boot, f.inference_seq)
}

/// Builds preference pairs from the store's feedback on `model_id`'s generations (any model when
/// `None`). Each prompt gives at most `max_pairs_per_prompt` pairs: its corrections first, then
/// every rejected response paired with a chosen one, round robin, in store order.
pub fn preference_pairs(
    data: &StoreData,
    model_id: Option<u32>,
    held_out_prompts: &HashSet<Vec<u32>>,
    max_pairs_per_prompt: usize,
) -> PreferenceSet {
    let mut set = PreferenceSet::default();
    let ours = |f: &&FeedbackRow| model_id.is_none_or(|m| m == f.common.model_id);
    // The response of each inference, for corrections recorded apart from it.
    let mut responses: HashMap<InferenceKey, (Vec<u32>, Vec<u32>)> = HashMap::new();
    for f in data.feedback.iter().filter(ours) {
        if let Some((prompt, response)) = prompt_and_response(&f.sample) {
            responses
                .entry(inference_key(f))
                .or_insert((prompt, response));
        }
    }
    let mut by_prompt: BTreeMap<Vec<u32>, Rated> = BTreeMap::new();
    let mut seen: HashSet<(Vec<u32>, Vec<u32>, bool)> = HashSet::new();
    let mut seen_corrections: HashSet<PairKey> = HashSet::new();
    for f in &data.feedback {
        if !ours(&f) {
            set.unusable += 1;
            continue;
        }
        let Some(g) = parse_sample(&f.sample) else {
            set.unusable += 1;
            continue;
        };
        // A correction recorded apart takes its response from the same inference's record.
        let response = g.response.clone().or_else(|| {
            responses
                .get(&inference_key(f))
                .filter(|(p, _)| *p == g.prompt)
                .map(|(_, r)| r.clone())
        });
        let correction = g
            .correction
            .filter(|c| response.as_ref().is_some_and(|r| r != c));
        let thumbs = f.thumbs_up.filter(|_| g.response.is_some());
        if thumbs.is_none() && correction.is_none() {
            set.unusable += 1;
            continue;
        }
        if thumbs.is_some() {
            set.rated += 1;
        }
        if correction.is_some() {
            set.corrected += 1;
        }
        if held_out_prompts.contains(&g.prompt) {
            set.leaks_removed += 1;
            continue;
        }
        let e = by_prompt.entry(g.prompt.clone()).or_default();
        if let (Some(c), Some(r)) = (correction, &response) {
            if seen_corrections.insert((g.prompt.clone(), c.clone(), r.clone())) {
                e.corrected.push((c, r.clone()));
            } else {
                set.duplicates_removed += 1;
            }
        }
        if let (Some(up), Some(r)) = (thumbs, response) {
            if !seen.insert((g.prompt, r.clone(), up)) {
                set.duplicates_removed += 1;
            } else if up {
                e.up.push(r);
            } else {
                e.down.push(r);
            }
        }
    }
    for (prompt, r) in by_prompt {
        let rated_pair = !r.up.is_empty() && !r.down.is_empty();
        if !rated_pair && r.corrected.is_empty() {
            set.prompts_without_pair += 1;
            continue;
        }
        let mut taken = 0;
        for (chosen, rejected) in r.corrected.into_iter().take(max_pairs_per_prompt) {
            set.pairs.push(PreferencePair {
                prompt: prompt.clone(),
                chosen,
                rejected,
            });
            set.from_corrections += 1;
            taken += 1;
        }
        if !rated_pair {
            continue;
        }
        for (k, rejected) in r.down.iter().take(max_pairs_per_prompt - taken).enumerate() {
            let chosen = &r.up[k % r.up.len()];
            if chosen == rejected {
                // Rated both up and down: no preference.
                continue;
            }
            set.pairs.push(PreferencePair {
                prompt: prompt.clone(),
                chosen: chosen.clone(),
                rejected: rejected.clone(),
            });
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Common, FeedbackRow, Partition};

    fn row(model_id: u32, thumbs_up: Option<bool>, sample: &[i32]) -> FeedbackRow {
        FeedbackRow {
            common: Common {
                partition: Partition {
                    date: "2026-11-26".into(),
                    model_version: 1,
                    device: 7,
                },
                boot: 0,
                seq: 0,
                ticks: 0,
                model_id,
                received_at_ms: 0,
            },
            inference_seq: 0,
            correction: None,
            thumbs_up,
            sample: sample.to_vec(),
        }
    }

    #[test]
    fn split_sample_needs_a_separator_and_both_sides() {
        assert_eq!(
            split_sample(&[4, 5, -1, 6, 7]),
            Some((vec![4, 5], vec![6, 7]))
        );
        assert_eq!(split_sample(&[4, 5, 6]), None);
        assert_eq!(split_sample(&[-1, 6]), None);
        assert_eq!(split_sample(&[4, -1]), None);
        assert_eq!(split_sample(&[4, -1, 6, -2]), None);
        assert_eq!(split_sample(&[4, -1, 6, -2, 7]), Some((vec![4], vec![6])));
        assert_eq!(
            parse_sample(&[4, -1, 6, -2, 7, 8]),
            Some(GenerationSample {
                prompt: vec![4],
                response: Some(vec![6]),
                correction: Some(vec![7, 8]),
            })
        );
        assert_eq!(
            parse_sample(&[4, -1, -2, 7]).and_then(|g| g.response),
            Some(vec![])
        );
        assert_eq!(
            parse_sample(&[4, 5, -2, 7]),
            Some(GenerationSample {
                prompt: vec![4, 5],
                response: None,
                correction: Some(vec![7]),
            })
        );
        assert_eq!(parse_sample(&[4, -1, -2]), None);
        assert_eq!(parse_sample(&[4, -2, 7, -1, 6]), None);
        assert_eq!(split_sample(&[4, -2, 7]), None);
        assert_eq!(parse_sample(&[4, -1, 6, -2, 7, -3]), None);
    }

    #[test]
    fn a_correction_is_a_pair_on_its_own() {
        let data = StoreData {
            feedback: vec![
                // Corrected, rated down too.
                row(1, Some(false), &[1, 2, -1, 12, -2, 10, 11]),
                // Corrected without thumbs; then the same correction again.
                row(1, None, &[3, -1, 13, -2, 14]),
                row(1, None, &[3, -1, 13, -2, 14]),
                // A correction equal to the response is no preference.
                row(1, None, &[4, -1, 15, -2, 15]),
                // Held out.
                row(1, None, &[9, -1, 13, -2, 14]),
                // A rated pair on prompt 1 as well.
                row(1, Some(true), &[1, 2, -1, 16]),
            ],
            ..StoreData::default()
        };
        let held: HashSet<Vec<u32>> = [vec![9]].into_iter().collect();
        let s = preference_pairs(&data, Some(1), &held, 4);
        let pair = |p: &[u32], c: &[u32], r: &[u32]| PreferencePair {
            prompt: p.to_vec(),
            chosen: c.to_vec(),
            rejected: r.to_vec(),
        };
        assert_eq!(
            s.pairs,
            vec![
                pair(&[1, 2], &[10, 11], &[12]),
                pair(&[1, 2], &[16], &[12]),
                pair(&[3], &[14], &[13]),
            ]
        );
        assert_eq!(s.from_corrections, 2);
        assert_eq!(s.corrected, 4);
        assert_eq!(s.rated, 2);
        assert_eq!(s.duplicates_removed, 1);
        assert_eq!(s.leaks_removed, 1);
        assert_eq!(s.unusable, 1);
        assert_eq!(s.prompts_without_pair, 0);
        // The cap per prompt counts corrections first.
        let capped = preference_pairs(&data, Some(1), &held, 1);
        assert_eq!(capped.pairs.len(), 2);
        assert_eq!(capped.pairs[0], pair(&[1, 2], &[10, 11], &[12]));
    }

    #[test]
    fn up_and_down_on_one_prompt_make_a_pair_and_the_rest_is_counted() {
        let data = StoreData {
            feedback: vec![
                row(1, Some(true), &[1, 2, -1, 10, 11]),
                row(1, Some(false), &[1, 2, -1, 12]),
                row(1, Some(false), &[1, 2, -1, 13]),
                // Repeated rating.
                row(1, Some(false), &[1, 2, -1, 12]),
                // Only rated down: no pair.
                row(1, Some(false), &[3, -1, 12]),
                // Held out.
                row(1, Some(true), &[9, -1, 12]),
                // Another model, no thumbs, no separator.
                row(2, Some(true), &[1, 2, -1, 14]),
                row(1, None, &[1, 2, -1, 15]),
                row(1, Some(true), &[1, 2, 15]),
            ],
            ..StoreData::default()
        };
        let held: HashSet<Vec<u32>> = [vec![9]].into_iter().collect();
        let s = preference_pairs(&data, Some(1), &held, 4);
        assert_eq!(
            s.pairs,
            vec![
                PreferencePair {
                    prompt: vec![1, 2],
                    chosen: vec![10, 11],
                    rejected: vec![12]
                },
                PreferencePair {
                    prompt: vec![1, 2],
                    chosen: vec![10, 11],
                    rejected: vec![13]
                },
            ]
        );
        assert_eq!(s.rated, 6);
        assert_eq!(s.duplicates_removed, 1);
        assert_eq!(s.leaks_removed, 1);
        assert_eq!(s.prompts_without_pair, 1);
        assert_eq!(s.unusable, 3);
        // The cap per prompt.
        assert_eq!(preference_pairs(&data, Some(1), &held, 1).pairs.len(), 1);
    }

    #[test]
    fn a_correction_recorded_apart_takes_the_response_of_its_inference() {
        let at = |seq: u32, thumbs: Option<bool>, sample: &[i32]| {
            let mut r = row(1, thumbs, sample);
            r.inference_seq = seq;
            r
        };
        let data = StoreData {
            feedback: vec![
                at(5, Some(false), &[1, -1, 12]),
                at(5, None, &[1, -2, 10]),
                // No record of inference 6 carries its response.
                at(6, None, &[2, -2, 10]),
                // Inference 7's response answers another prompt.
                at(7, Some(false), &[3, -1, 13]),
                at(7, None, &[4, -2, 14]),
                // An answer that ended at once (unusable as a rating), then corrected.
                at(8, Some(false), &[5, -1]),
                at(8, None, &[5, -2, 15]),
            ],
            ..StoreData::default()
        };
        let s = preference_pairs(&data, None, &HashSet::new(), 4);
        assert_eq!(
            s.pairs,
            vec![
                PreferencePair {
                    prompt: vec![1],
                    chosen: vec![10],
                    rejected: vec![12],
                },
                PreferencePair {
                    prompt: vec![5],
                    chosen: vec![15],
                    rejected: vec![],
                },
            ]
        );
        assert_eq!(s.from_corrections, 2);
        assert_eq!(s.corrected, 2);
        assert_eq!(s.rated, 2);
        assert_eq!(s.unusable, 3);
        assert_eq!(s.prompts_without_pair, 1);
    }
}

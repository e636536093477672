//! Preference pairs from field feedback on generations, for DPO.
//!
//! A device (or `edgeloop serve`) that opts in samples `prompt ids…, -1, response ids…` into the
//! feedback record of a rated generation ([`RESPONSE_SEPARATOR`]). Responses to the same prompt
//! with a thumbs-up and a thumbs-down make a pair `(prompt, chosen, rejected)`. Prompts in a
//! held-out set are dropped (training on them would leak the evaluation), repeated pairs are
//! dropped, and a prompt with only one kind of rating yields no pair; each is counted.

use std::collections::{BTreeMap, HashSet};

use edgeloop_runtime::telemetry::RESPONSE_SEPARATOR;
use serde::{Deserialize, Serialize};

use crate::store::StoreData;

/// One preference pair in token ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The prompt.
    pub prompt: Vec<u32>,
    /// The response rated up.
    pub chosen: Vec<u32>,
    /// The response rated down.
    pub rejected: Vec<u32>,
}

/// The pairs, and what was left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceSet {
    /// Usable pairs, ordered by prompt.
    pub pairs: Vec<PreferencePair>,
    /// Rated responses with a usable sample.
    pub rated: usize,
    /// Feedback without thumbs, without a `prompt, -1, response` sample, from another model, or
    /// with an empty prompt or response.
    pub unusable: usize,
    /// Rated responses whose prompt is in a held-out set.
    pub leaks_removed: usize,
    /// Prompts rated only up or only down (no pair).
    pub prompts_without_pair: usize,
    /// Repeated ratings of the same response to the same prompt.
    pub duplicates_removed: usize,
}

/// Responses to one prompt rated up and rated down, in first-seen order.
type Rated = (Vec<Vec<u32>>, Vec<Vec<u32>>);

/// Splits a feedback sample into `(prompt, response)` at the first [`RESPONSE_SEPARATOR`];
/// `None` when there is no separator, either side is empty, or an id is negative.
pub fn split_sample(sample: &[i32]) -> Option<(Vec<u32>, Vec<u32>)> {
    let at = sample.iter().position(|&v| v == RESPONSE_SEPARATOR)?;
    let ids =
        |s: &[i32]| -> Option<Vec<u32>> { s.iter().map(|&v| u32::try_from(v).ok()).collect() };
    let (p, r) = (ids(&sample[..at])?, ids(&sample[at + 1..])?);
    (!p.is_empty() && !r.is_empty()).then_some((p, r))
}

/// Builds preference pairs from the store's feedback on `model_id`'s generations (any model when
/// `None`). Each prompt gives at most `max_pairs_per_prompt` pairs: every rejected response is
/// paired with a chosen one, round robin, in store order.
pub fn preference_pairs(
    data: &StoreData,
    model_id: Option<u32>,
    held_out_prompts: &HashSet<Vec<u32>>,
    max_pairs_per_prompt: usize,
) -> PreferenceSet {
    let mut set = PreferenceSet::default();
    let mut by_prompt: BTreeMap<Vec<u32>, Rated> = BTreeMap::new();
    let mut seen: HashSet<(Vec<u32>, Vec<u32>, bool)> = HashSet::new();
    for f in &data.feedback {
        if model_id.is_some_and(|m| m != f.common.model_id) {
            set.unusable += 1;
            continue;
        }
        let (Some(up), Some((prompt, response))) = (f.thumbs_up, split_sample(&f.sample)) else {
            set.unusable += 1;
            continue;
        };
        set.rated += 1;
        if held_out_prompts.contains(&prompt) {
            set.leaks_removed += 1;
            continue;
        }
        if !seen.insert((prompt.clone(), response.clone(), up)) {
            set.duplicates_removed += 1;
            continue;
        }
        let e = by_prompt.entry(prompt).or_default();
        if up {
            e.0.push(response);
        } else {
            e.1.push(response);
        }
    }
    for (prompt, (ups, downs)) in by_prompt {
        if ups.is_empty() || downs.is_empty() {
            set.prompts_without_pair += 1;
            continue;
        }
        for (k, rejected) in downs.iter().take(max_pairs_per_prompt).enumerate() {
            let chosen = &ups[k % ups.len()];
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
}

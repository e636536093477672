//! Robustness of text classifiers: a seeded perturbation suite and a runner that reports
//! accuracy under each perturbation and how often predictions flip.
//!
//! Perturbations: keyboard-adjacency typos (QWERTY), adjacent character swaps, character drops,
//! case changes, whitespace changes, punctuation changes, synonym substitution from a small
//! lexicon shipped in `eval/assets/synonyms.txt`, and number changes. Each example gets its own
//! generator seeded from `(seed, perturbation, example index)`, so results do not depend on the
//! order or number of other examples.

use std::collections::HashMap;
use std::sync::OnceLock;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{same_len, Error, Result};

/// One kind of perturbation. `rate` is the probability that each eligible word is changed
/// (at least one word is changed when any is eligible).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Perturbation {
    /// Replace a letter with a neighbouring key on a QWERTY keyboard.
    KeyboardTypo {
        /// Per-word probability.
        rate: f64,
    },
    /// Swap two adjacent characters inside a word.
    CharSwap {
        /// Per-word probability.
        rate: f64,
    },
    /// Delete one character of a word.
    CharDrop {
        /// Per-word probability.
        rate: f64,
    },
    /// Change the case of words (upper, lower or title).
    Case {
        /// Per-word probability.
        rate: f64,
    },
    /// Double spaces, tabs, or joined words.
    Whitespace {
        /// Per-gap probability.
        rate: f64,
    },
    /// Remove existing punctuation or add some after words.
    Punctuation {
        /// Per-word probability.
        rate: f64,
    },
    /// Replace words with a synonym from the shipped lexicon.
    Synonym {
        /// Per-word probability (for words that have synonyms).
        rate: f64,
    },
    /// Change digits of numbers.
    Number {
        /// Per-number probability.
        rate: f64,
    },
}

impl Perturbation {
    /// A short stable name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Perturbation::KeyboardTypo { .. } => "keyboard_typo",
            Perturbation::CharSwap { .. } => "char_swap",
            Perturbation::CharDrop { .. } => "char_drop",
            Perturbation::Case { .. } => "case",
            Perturbation::Whitespace { .. } => "whitespace",
            Perturbation::Punctuation { .. } => "punctuation",
            Perturbation::Synonym { .. } => "synonym",
            Perturbation::Number { .. } => "number",
        }
    }

    fn rate(&self) -> f64 {
        match *self {
            Perturbation::KeyboardTypo { rate }
            | Perturbation::CharSwap { rate }
            | Perturbation::CharDrop { rate }
            | Perturbation::Case { rate }
            | Perturbation::Whitespace { rate }
            | Perturbation::Punctuation { rate }
            | Perturbation::Synonym { rate }
            | Perturbation::Number { rate } => rate,
        }
    }

    /// The default suite: every perturbation at a per-word rate of 0.15.
    pub fn default_suite() -> Vec<Perturbation> {
        let rate = 0.15;
        vec![
            Perturbation::KeyboardTypo { rate },
            Perturbation::CharSwap { rate },
            Perturbation::CharDrop { rate },
            Perturbation::Case { rate },
            Perturbation::Whitespace { rate },
            Perturbation::Punctuation { rate },
            Perturbation::Synonym { rate },
            Perturbation::Number { rate },
        ]
    }

    /// Applies the perturbation with the given generator.
    pub fn apply(&self, text: &str, rng: &mut ChaCha8Rng) -> String {
        let words: Vec<&str> = text.split(' ').collect();
        let rate = self.rate().clamp(0.0, 1.0);
        match self {
            Perturbation::Whitespace { .. } => return whitespace(&words, rate, rng),
            Perturbation::Number { .. } => return numbers(text, rate, rng),
            _ => {}
        }
        let eligible: Vec<usize> = (0..words.len())
            .filter(|&i| self.eligible(words[i]))
            .collect();
        let chosen = choose(&eligible, rate, rng);
        let mut out: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        for i in chosen {
            out[i] = self.change_word(words[i], rng);
        }
        out.join(" ")
    }

    fn eligible(&self, w: &str) -> bool {
        let letters = w.chars().filter(|c| c.is_alphabetic()).count();
        match self {
            Perturbation::KeyboardTypo { .. } => w.chars().any(|c| neighbours(c).is_some()),
            Perturbation::CharSwap { .. } => letters >= 2,
            Perturbation::CharDrop { .. } => w.chars().count() >= 2,
            Perturbation::Case { .. } => w.chars().any(|c| c.is_alphabetic()),
            Perturbation::Punctuation { .. } => !w.is_empty(),
            Perturbation::Synonym { .. } => synonym_candidates(w).is_some(),
            Perturbation::Whitespace { .. } | Perturbation::Number { .. } => false,
        }
    }

    fn change_word(&self, w: &str, rng: &mut ChaCha8Rng) -> String {
        let mut chars: Vec<char> = w.chars().collect();
        match self {
            Perturbation::KeyboardTypo { .. } => {
                let idx: Vec<usize> = (0..chars.len())
                    .filter(|&i| neighbours(chars[i]).is_some())
                    .collect();
                if let Some(&i) = idx.choose(rng) {
                    let c = chars[i];
                    let near = neighbours(c).unwrap_or_default();
                    let bytes = near.as_bytes();
                    let n = bytes[rng.gen_range(0..bytes.len())] as char;
                    chars[i] = if c.is_uppercase() {
                        n.to_ascii_uppercase()
                    } else {
                        n
                    };
                }
            }
            Perturbation::CharSwap { .. } => {
                let pairs: Vec<usize> = (0..chars.len().saturating_sub(1))
                    .filter(|&i| chars[i] != chars[i + 1])
                    .collect();
                if let Some(&i) = pairs.choose(rng) {
                    chars.swap(i, i + 1);
                }
            }
            Perturbation::CharDrop { .. } => {
                let i = rng.gen_range(0..chars.len());
                chars.remove(i);
            }
            Perturbation::Case { .. } => {
                let lower = w.to_lowercase();
                let upper = w.to_uppercase();
                let mut title: String = lower.clone();
                if let Some(f) = lower.chars().next() {
                    title = f.to_uppercase().chain(lower.chars().skip(1)).collect();
                }
                let options: Vec<String> = [lower, upper, title]
                    .into_iter()
                    .filter(|o| o != w)
                    .collect();
                return options
                    .choose(rng)
                    .cloned()
                    .unwrap_or_else(|| w.to_string());
            }
            Perturbation::Punctuation { .. } => {
                let has_punct = chars.iter().any(|c| c.is_ascii_punctuation());
                if has_punct && rng.gen_bool(0.5) {
                    chars.retain(|c| !c.is_ascii_punctuation());
                } else {
                    chars.push(*[',', '.', '!', '?', ';'].choose(rng).unwrap_or(&','));
                }
            }
            Perturbation::Synonym { .. } => {
                if let Some((prefix, core, suffix, cands)) = synonym_candidates(w) {
                    let pick = cands.choose(rng).cloned().unwrap_or_else(|| core.clone());
                    let pick = match_case(&core, &pick);
                    return format!("{prefix}{pick}{suffix}");
                }
            }
            Perturbation::Whitespace { .. } | Perturbation::Number { .. } => {}
        }
        chars.into_iter().collect()
    }
}

/// Picks each index with probability `rate`, and at least one if any is eligible.
fn choose(eligible: &[usize], rate: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if eligible.is_empty() || rate <= 0.0 {
        return Vec::new();
    }
    let mut chosen: Vec<usize> = eligible
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(rate))
        .collect();
    if chosen.is_empty() {
        chosen.push(eligible[rng.gen_range(0..eligible.len())]);
    }
    chosen
}

fn whitespace(words: &[&str], rate: f64, rng: &mut ChaCha8Rng) -> String {
    if words.len() < 2 || rate <= 0.0 {
        // Nothing to join: pad instead.
        return format!(" {} ", words.join(" "));
    }
    let gaps: Vec<usize> = (1..words.len()).collect();
    let chosen = choose(&gaps, rate, rng);
    let mut out = String::from(words[0]);
    for (i, w) in words.iter().enumerate().skip(1) {
        if chosen.contains(&i) {
            out.push_str(["", "  ", "\t", " \n "][rng.gen_range(0..4)]);
        } else {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

fn numbers(text: &str, rate: f64, rng: &mut ChaCha8Rng) -> String {
    // Runs of ASCII digits.
    let chars: Vec<char> = text.chars().collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let s = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    let idx: Vec<usize> = (0..runs.len()).collect();
    let chosen = choose(&idx, rate, rng);
    let mut out = String::new();
    let mut pos = 0;
    for (k, &(s, e)) in runs.iter().enumerate() {
        out.extend(&chars[pos..s]);
        let digits: String = chars[s..e].iter().collect();
        if chosen.contains(&k) {
            let value: u128 = digits.parse().unwrap_or(0);
            let changed = match rng.gen_range(0..3) {
                0 => value.saturating_add(rng.gen_range(1..10)),
                1 => value.saturating_mul(10),
                _ => value / 2 + 1,
            };
            let changed = if changed == value { value + 1 } else { changed };
            out.push_str(&changed.to_string());
        } else {
            out.push_str(&digits);
        }
        pos = e;
    }
    out.extend(&chars[pos..]);
    out
}

/// QWERTY neighbours of a letter (lowercase), or `None` for other characters.
fn neighbours(c: char) -> Option<&'static str> {
    Some(match c.to_ascii_lowercase() {
        'q' => "wa",
        'w' => "qeas",
        'e' => "wrsd",
        'r' => "etdf",
        't' => "ryfg",
        'y' => "tugh",
        'u' => "yihj",
        'i' => "uojk",
        'o' => "ipkl",
        'p' => "ol",
        'a' => "qwsz",
        's' => "weadzx",
        'd' => "erfsxc",
        'f' => "rtdgcv",
        'g' => "tyfhvb",
        'h' => "yugjbn",
        'j' => "uihknm",
        'k' => "iojlm",
        'l' => "opk",
        'z' => "asx",
        'x' => "zsdc",
        'c' => "xdfv",
        'v' => "cfgb",
        'b' => "vghn",
        'n' => "bhjm",
        'm' => "njk",
        _ => return None,
    })
}

fn lexicon() -> &'static HashMap<String, Vec<String>> {
    static LEX: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    LEX.get_or_init(|| {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for line in include_str!("../assets/synonyms.txt").lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let group: Vec<String> = line.split(',').map(|w| w.trim().to_lowercase()).collect();
            for w in &group {
                let others: Vec<String> = group.iter().filter(|o| *o != w).cloned().collect();
                m.entry(w.clone()).or_default().extend(others);
            }
        }
        m
    })
}

/// Splits leading/trailing punctuation off a word and looks its core up in the lexicon.
fn synonym_candidates(w: &str) -> Option<(String, String, String, Vec<String>)> {
    let start = w.find(|c: char| c.is_alphanumeric())?;
    let end = w.rfind(|c: char| c.is_alphanumeric())?;
    let end = end + w[end..].chars().next()?.len_utf8();
    let core = &w[start..end];
    let cands = lexicon().get(&core.to_lowercase())?;
    Some((
        w[..start].to_string(),
        core.to_string(),
        w[end..].to_string(),
        cands.clone(),
    ))
}

fn match_case(original: &str, word: &str) -> String {
    if original.chars().all(|c| !c.is_lowercase()) && original.chars().count() > 1 {
        word.to_uppercase()
    } else if original.chars().next().is_some_and(|c| c.is_uppercase()) {
        let mut c = word.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    } else {
        word.to_string()
    }
}

/// The generator for one example under one perturbation.
pub fn example_rng(seed: u64, perturbation: &Perturbation, index: usize) -> ChaCha8Rng {
    let tag = perturbation
        .name()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    ChaCha8Rng::seed_from_u64(seed ^ tag ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// One perturbed example where the prediction changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flip {
    /// The original text.
    pub original: String,
    /// The perturbed text.
    pub perturbed: String,
    /// Prediction on the original.
    pub clean_prediction: usize,
    /// Prediction on the perturbed text.
    pub perturbed_prediction: usize,
    /// True label.
    pub label: usize,
}

/// Results of one perturbation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbationResult {
    /// Perturbation name.
    pub name: String,
    /// The perturbation and its rate.
    pub perturbation: Perturbation,
    /// Accuracy on perturbed texts.
    pub accuracy: f64,
    /// Accuracy change against clean texts.
    pub accuracy_delta: f64,
    /// Fraction of examples whose prediction differs from the clean prediction.
    pub flip_rate: f64,
    /// Fraction of examples whose text the perturbation actually changed.
    pub changed_fraction: f64,
    /// Up to five flipped examples, for the report.
    pub flips: Vec<Flip>,
}

/// The whole robustness evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessReport {
    /// Seed used.
    pub seed: u64,
    /// Examples.
    pub n: u64,
    /// Accuracy on the unperturbed texts.
    pub clean_accuracy: f64,
    /// One entry per perturbation, in suite order.
    pub results: Vec<PerturbationResult>,
}

/// Runs `model` (text → predicted label and class scores) on the clean texts and on each
/// perturbation of them.
pub fn run_suite<F>(
    model: F,
    texts: &[String],
    labels: &[usize],
    suite: &[Perturbation],
    seed: u64,
) -> Result<RobustnessReport>
where
    F: Fn(&str) -> (usize, Vec<f64>),
{
    same_len("texts vs labels", texts.len(), labels.len())?;
    if texts.is_empty() {
        return Err(Error::Empty("robustness suite".into()));
    }
    if let Some(p) = suite.iter().find(|p| !(0.0..=1.0).contains(&p.rate())) {
        return Err(Error::InvalidArgument(format!(
            "perturbation {} rate {} outside [0, 1]",
            p.name(),
            p.rate()
        )));
    }
    let n = texts.len() as f64;
    let clean: Vec<usize> = texts.iter().map(|t| model(t).0).collect();
    let clean_correct = clean.iter().zip(labels).filter(|(p, l)| p == l).count();
    let clean_accuracy = clean_correct as f64 / n;
    let mut results = Vec::with_capacity(suite.len());
    for p in suite {
        let mut correct = 0usize;
        let mut flipped = 0usize;
        let mut changed = 0usize;
        let mut flips = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let mut rng = example_rng(seed, p, i);
            let perturbed = p.apply(text, &mut rng);
            changed += (perturbed != *text) as usize;
            let pred = model(&perturbed).0;
            correct += (pred == labels[i]) as usize;
            if pred != clean[i] {
                flipped += 1;
                if flips.len() < 5 {
                    flips.push(Flip {
                        original: text.clone(),
                        perturbed,
                        clean_prediction: clean[i],
                        perturbed_prediction: pred,
                        label: labels[i],
                    });
                }
            }
        }
        let accuracy = correct as f64 / n;
        results.push(PerturbationResult {
            name: p.name().to_string(),
            perturbation: *p,
            accuracy,
            accuracy_delta: accuracy - clean_accuracy,
            flip_rate: flipped as f64 / n,
            changed_fraction: changed as f64 / n,
            flips,
        });
    }
    Ok(RobustnessReport {
        seed,
        n: texts.len() as u64,
        clean_accuracy,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: &[&str] = &[
        "The movie was great and the actor was very good.",
        "A terrible, boring film; I hate it.",
        "Battery lasts 12 hours, works fine.",
        "Quick delivery, cheap price: 5 stars!",
    ];

    fn texts() -> Vec<String> {
        TEXTS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn perturbations_are_seeded_and_change_text() {
        for p in Perturbation::default_suite() {
            for (i, t) in TEXTS.iter().enumerate() {
                let a = p.apply(t, &mut example_rng(3, &p, i));
                let b = p.apply(t, &mut example_rng(3, &p, i));
                assert_eq!(a, b, "{} is not deterministic", p.name());
            }
            let changed = TEXTS
                .iter()
                .enumerate()
                .filter(|(i, t)| p.apply(t, &mut example_rng(3, &p, *i)) != **t)
                .count();
            // Two of the texts contain no number.
            let want = if p.name() == "number" { 2 } else { 3 };
            assert!(
                changed >= want,
                "{} changed only {changed} of 4 texts",
                p.name()
            );
        }
    }

    #[test]
    fn typos_use_adjacent_keys_and_keep_length() {
        let p = Perturbation::KeyboardTypo { rate: 1.0 };
        let t = "hello world";
        let out = p.apply(t, &mut example_rng(1, &p, 0));
        assert_eq!(out.chars().count(), t.chars().count());
        for (a, b) in t.chars().zip(out.chars()) {
            if a != b {
                assert!(
                    neighbours(a).unwrap().contains(b),
                    "{a} -> {b} is not adjacent"
                );
            }
        }
    }

    #[test]
    fn synonyms_come_from_the_lexicon_and_keep_case() {
        let p = Perturbation::Synonym { rate: 1.0 };
        let out = p.apply("Great movie!", &mut example_rng(1, &p, 0));
        let words: Vec<&str> = out.split(' ').collect();
        assert!(
            ["Excellent", "Superb", "Terrific"].contains(&words[0]),
            "{out}"
        );
        assert!(["film!", "picture!"].contains(&words[1]), "{out}");
    }

    #[test]
    fn numbers_change() {
        let p = Perturbation::Number { rate: 1.0 };
        let out = p.apply("take 2 pills at 10:30", &mut example_rng(1, &p, 0));
        assert!(!out.contains(" 2 ") && out.starts_with("take "), "{out}");
    }

    #[test]
    fn runner_counts_flips_against_a_keyword_model() {
        // Positive (1) when "great" appears verbatim; no lexicon group maps another word to it.
        let model = |t: &str| {
            let pos = t.contains("great");
            (pos as usize, vec![(!pos) as u8 as f64, pos as u8 as f64])
        };
        let labels = vec![1, 0, 0, 0];
        let suite = [
            Perturbation::Synonym { rate: 1.0 },
            Perturbation::Whitespace { rate: 1.0 },
        ];
        let r = run_suite(model, &texts(), &labels, &suite, 9).unwrap();
        assert_eq!(r.clean_accuracy, 1.0);
        // Synonyms replace the keyword in the first text: its prediction must flip.
        assert_eq!(r.results[0].flip_rate, 0.25);
        assert_eq!(r.results[0].accuracy, 0.75);
        assert_eq!(r.results[0].flips[0].original, TEXTS[0]);
        // Whitespace changes never touch the keywords.
        assert_eq!(r.results[1].flip_rate, 0.0);
        assert!(run_suite(model, &texts(), &labels[..2], &suite, 9).is_err());
        assert!(run_suite(
            model,
            &texts(),
            &labels,
            &[Perturbation::Case { rate: 2.0 }],
            9
        )
        .is_err());
    }
}

//! chrF (and chrF++ with word n-grams) as sacrebleu 2.x computes it: character n-grams up to
//! order 6 over the text with whitespace removed, β = 2, the reference with the best segment
//! F-score chosen per segment, statistics summed over the corpus, precision and recall averaged
//! over the orders that have both hypothesis and reference n-grams (sacrebleu's default
//! `eps_smoothing=False`). Scores are 0–100.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::py_split;
use crate::error::{same_len, Error, Result};

/// Options of a chrF computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChrfOptions {
    /// Character n-gram order (6).
    pub char_order: usize,
    /// Word n-gram order (0 for chrF, 2 for chrF++).
    pub word_order: usize,
    /// Recall weight β (2).
    pub beta: f64,
    /// Lowercase first.
    pub lowercase: bool,
    /// Keep whitespace in character n-grams.
    pub whitespace: bool,
    /// Epsilon smoothing as chrF++.py / NLTK / Moses instead of effective order.
    pub eps_smoothing: bool,
}

impl Default for ChrfOptions {
    fn default() -> Self {
        ChrfOptions {
            char_order: 6,
            word_order: 0,
            beta: 2.0,
            lowercase: false,
            whitespace: false,
            eps_smoothing: false,
        }
    }
}

const PUNCTS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn counter<I: IntoIterator<Item = String>>(items: I) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for it in items {
        *m.entry(it).or_insert(0) += 1;
    }
    m
}

fn char_ngrams(line: &str, opts: &ChrfOptions) -> Vec<HashMap<String, u64>> {
    let chars: Vec<char> = if opts.whitespace {
        line.chars().collect()
    } else {
        py_split(line).flat_map(|w| w.chars()).collect()
    };
    (1..=opts.char_order)
        .map(|n| {
            if chars.len() < n {
                HashMap::new()
            } else {
                counter(chars.windows(n).map(|w| w.iter().collect()))
            }
        })
        .collect()
}

/// sacrebleu's `_remove_punctuation`: split one leading or trailing punctuation mark off words.
fn words(sent: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in py_split(sent) {
        let chars: Vec<char> = w.chars().collect();
        if chars.len() == 1 {
            out.push(w.to_string());
        } else if PUNCTS.contains(chars[chars.len() - 1]) {
            out.push(chars[..chars.len() - 1].iter().collect());
            out.push(chars[chars.len() - 1].to_string());
        } else if PUNCTS.contains(chars[0]) {
            out.push(chars[0].to_string());
            out.push(chars[1..].iter().collect());
        } else {
            out.push(w.to_string());
        }
    }
    out
}

fn all_ngrams(line: &str, opts: &ChrfOptions) -> Vec<HashMap<String, u64>> {
    let mut all = char_ngrams(line, opts);
    if opts.word_order > 0 {
        let ws = words(line);
        for n in 1..=opts.word_order {
            all.push(if ws.len() < n {
                HashMap::new()
            } else {
                counter(ws.windows(n).map(|w| w.join(" ")))
            });
        }
    }
    all
}

fn f_score(stats: &[u64], opts: &ChrfOptions) -> f64 {
    let eps = 1e-16;
    let order = opts.char_order + opts.word_order;
    let factor = opts.beta * opts.beta;
    let mut score = 0.0;
    let mut effective = 0usize;
    let (mut avg_prec, mut avg_rec) = (0.0, 0.0);
    for i in 0..order {
        let (n_hyp, n_ref, n_match) = (stats[3 * i], stats[3 * i + 1], stats[3 * i + 2]);
        let prec = if n_hyp > 0 {
            n_match as f64 / n_hyp as f64
        } else {
            eps
        };
        let rec = if n_ref > 0 {
            n_match as f64 / n_ref as f64
        } else {
            eps
        };
        let denom = factor * prec + rec;
        score += if denom > 0.0 {
            (1.0 + factor) * prec * rec / denom
        } else {
            eps
        };
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += prec;
            avg_rec += rec;
            effective += 1;
        }
    }
    if opts.eps_smoothing {
        return 100.0 * score / order as f64;
    }
    if effective == 0 {
        avg_prec = 0.0;
        avg_rec = 0.0;
    } else {
        avg_prec /= effective as f64;
        avg_rec /= effective as f64;
    }
    if avg_prec + avg_rec != 0.0 {
        let s = (1.0 + factor) * avg_prec * avg_rec / ((factor * avg_prec) + avg_rec);
        100.0 * s
    } else {
        0.0
    }
}

fn segment_stats(hyp: &str, refs: &[&str], opts: &ChrfOptions) -> Vec<u64> {
    let prep = |s: &str| {
        if opts.lowercase {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let hyp_ngrams = all_ngrams(&prep(hyp), opts);
    let mut best: Vec<u64> = Vec::new();
    let mut best_f = -1.0;
    for r in refs {
        let ref_ngrams = all_ngrams(&prep(r), opts);
        let mut stats = Vec::with_capacity(3 * hyp_ngrams.len());
        for (h, rn) in hyp_ngrams.iter().zip(&ref_ngrams) {
            let mut matched = 0;
            let mut hyp_count = 0;
            for (g, &c) in h {
                hyp_count += c;
                if let Some(&rc) = rn.get(g) {
                    matched += c.min(rc);
                }
            }
            stats.push(if rn.is_empty() { 0 } else { hyp_count });
            stats.push(rn.values().sum());
            stats.push(matched);
        }
        let f = f_score(&stats, opts);
        if f > best_f {
            best_f = f;
            best = stats;
        }
    }
    best
}

/// Corpus chrF; `refs[i]` holds the references of segment `i`.
pub fn corpus_chrf<S: AsRef<str>>(hyps: &[S], refs: &[Vec<S>], opts: &ChrfOptions) -> Result<f64> {
    same_len("hypotheses vs reference sets", hyps.len(), refs.len())?;
    if hyps.is_empty() {
        return Err(Error::Empty("corpus chrF".into()));
    }
    if opts.char_order + opts.word_order == 0 {
        return Err(Error::InvalidArgument("chrF needs a non-zero order".into()));
    }
    let mut total = vec![0u64; 3 * (opts.char_order + opts.word_order)];
    for (i, (h, r)) in hyps.iter().zip(refs).enumerate() {
        if r.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "segment {i} has no reference"
            )));
        }
        let rs: Vec<&str> = r.iter().map(|s| s.as_ref()).collect();
        for (t, s) in total.iter_mut().zip(segment_stats(h.as_ref(), &rs, opts)) {
            *t += s;
        }
    }
    Ok(f_score(&total, opts))
}

/// Sentence chrF against one or more references.
pub fn sentence_chrf<S: AsRef<str>>(hyp: &str, refs: &[S], opts: &ChrfOptions) -> Result<f64> {
    let refs: Vec<String> = refs.iter().map(|s| s.as_ref().to_string()).collect();
    corpus_chrf(&[hyp.to_string()], &[refs], opts)
}

//! BLEU as sacrebleu 2.x computes it: `13a` tokenization, n-grams up to 4, clipped counts
//! against the per-n-gram maximum over references, brevity penalty against the reference
//! length closest to the hypothesis length (the shorter one on ties), statistics summed over the
//! corpus before the geometric mean, and `exp` smoothing by default. Scores are on sacrebleu's
//! 0–100 scale.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{py_rstrip, py_split, tokenize_13a::tokenize_13a};
use crate::error::{same_len, Error, Result};

/// Maximum n-gram order.
pub const MAX_ORDER: usize = 4;

/// Smoothing of zero n-gram precisions (Chen & Cherry 2014), as in sacrebleu.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Smoothing {
    /// No smoothing.
    None,
    /// Zero counts replaced by this value (sacrebleu default 0.1).
    Floor(f64),
    /// Add this value to counts and totals of orders ≥ 2 (sacrebleu default 1).
    AddK(f64),
    /// NIST geometric sequence (mteval-v13a), sacrebleu's default.
    Exp,
}

/// Options of a BLEU computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BleuOptions {
    /// Lowercase before tokenizing.
    pub lowercase: bool,
    /// Apply the 13a tokenizer (otherwise split on whitespace only).
    pub tokenize: bool,
    /// Smoothing method.
    pub smoothing: Smoothing,
    /// Stop at the highest n-gram order with a non-zero total (sentence BLEU).
    pub effective_order: bool,
}

impl Default for BleuOptions {
    fn default() -> Self {
        BleuOptions {
            lowercase: false,
            tokenize: true,
            smoothing: Smoothing::Exp,
            effective_order: false,
        }
    }
}

/// A BLEU score with its sufficient statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BleuScore {
    /// BLEU, 0–100.
    pub score: f64,
    /// Matched n-grams per order.
    pub counts: [u64; MAX_ORDER],
    /// Hypothesis n-grams per order.
    pub totals: [u64; MAX_ORDER],
    /// Precision per order (0–100), after smoothing.
    pub precisions: [f64; MAX_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    /// Total hypothesis length in tokens.
    pub sys_len: u64,
    /// Total (closest) reference length in tokens.
    pub ref_len: u64,
}

/// Per-segment statistics: hypothesis length, closest reference length, matches and totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stats {
    sys_len: u64,
    ref_len: u64,
    correct: [u64; MAX_ORDER],
    total: [u64; MAX_ORDER],
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

fn preprocess(s: &str, opts: &BleuOptions) -> String {
    let s = if opts.lowercase {
        s.to_lowercase()
    } else {
        s.to_string()
    };
    let s = py_rstrip(&s);
    if opts.tokenize {
        tokenize_13a(s)
    } else {
        s.to_string()
    }
}

fn ngrams(tokens: &[&str]) -> HashMap<Vec<String>, u64> {
    let mut m = HashMap::new();
    for n in 1..=MAX_ORDER {
        if tokens.len() < n {
            break;
        }
        for w in tokens.windows(n) {
            *m.entry(w.iter().map(|t| t.to_string()).collect())
                .or_insert(0) += 1;
        }
    }
    m
}

fn segment_stats(hyp: &str, refs: &[&str], opts: &BleuOptions) -> Stats {
    let mut ref_ngrams: HashMap<Vec<String>, u64> = HashMap::new();
    let mut ref_lens = Vec::with_capacity(refs.len());
    for r in refs {
        let r = preprocess(r, opts);
        let toks: Vec<&str> = py_split(&r).collect();
        ref_lens.push(toks.len() as u64);
        for (g, c) in ngrams(&toks) {
            let e = ref_ngrams.entry(g).or_insert(0);
            *e = (*e).max(c);
        }
    }
    let hyp = preprocess(hyp, opts);
    let toks: Vec<&str> = py_split(&hyp).collect();
    let hyp_len = toks.len() as u64;
    // Closest reference length; the shorter one on ties.
    let mut closest: Option<(u64, u64)> = None;
    for &l in &ref_lens {
        let diff = hyp_len.abs_diff(l);
        closest = match closest {
            Some((d, cl)) if d < diff || (d == diff && cl <= l) => Some((d, cl)),
            _ => Some((diff, l)),
        };
    }
    let mut s = Stats {
        sys_len: hyp_len,
        ref_len: closest.map_or(0, |c| c.1),
        ..Stats::default()
    };
    for (g, c) in ngrams(&toks) {
        let n = g.len() - 1;
        s.total[n] += c;
        if let Some(&rc) = ref_ngrams.get(&g) {
            s.correct[n] += c.min(rc);
        }
    }
    s
}

/// sacrebleu's `my_log`: log with 0 mapped to -9999999999.
fn floored_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

fn compute(stats: &Stats, opts: &BleuOptions) -> BleuScore {
    let sys_len = stats.sys_len as f64;
    let ref_len = stats.ref_len as f64;
    let mut bp = 1.0;
    if stats.sys_len < stats.ref_len {
        bp = if stats.sys_len > 0 {
            (1.0 - ref_len / sys_len).exp()
        } else {
            0.0
        };
    }
    let mut precisions = [0.0; MAX_ORDER];
    let mut score = BleuScore {
        score: 0.0,
        counts: stats.correct,
        totals: stats.total,
        precisions,
        bp,
        sys_len: stats.sys_len,
        ref_len: stats.ref_len,
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return score;
    }
    let mut correct: [f64; MAX_ORDER] = stats.correct.map(|c| c as f64);
    let mut total: [f64; MAX_ORDER] = stats.total.map(|c| c as f64);
    let mut smooth_mteval = 1.0;
    let mut eff_order = MAX_ORDER;
    for n in 1..=MAX_ORDER {
        if let Smoothing::AddK(k) = opts.smoothing {
            if n > 1 {
                correct[n - 1] += k;
                total[n - 1] += k;
            }
        }
        if total[n - 1] == 0.0 {
            break;
        }
        if opts.effective_order {
            eff_order = n;
        }
        if correct[n - 1] == 0.0 {
            match opts.smoothing {
                Smoothing::Exp => {
                    smooth_mteval *= 2.0;
                    precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1]);
                }
                Smoothing::Floor(v) => precisions[n - 1] = 100.0 * v / total[n - 1],
                _ => {}
            }
        } else {
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
        }
    }
    let log_sum: f64 = precisions[..eff_order]
        .iter()
        .map(|&p| floored_log(p))
        .sum();
    score.score = bp * (log_sum / eff_order as f64).exp();
    score.precisions = precisions;
    score
}

/// Corpus BLEU. `refs[i]` holds the references of segment `i` (one or more).
pub fn corpus_bleu<S: AsRef<str>>(
    hyps: &[S],
    refs: &[Vec<S>],
    opts: &BleuOptions,
) -> Result<BleuScore> {
    same_len("hypotheses vs reference sets", hyps.len(), refs.len())?;
    if hyps.is_empty() {
        return Err(Error::Empty("corpus BLEU".into()));
    }
    let mut total = Stats::default();
    for (i, (h, r)) in hyps.iter().zip(refs).enumerate() {
        if r.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "segment {i} has no reference"
            )));
        }
        let rs: Vec<&str> = r.iter().map(|s| s.as_ref()).collect();
        total.add(&segment_stats(h.as_ref(), &rs, opts));
    }
    Ok(compute(&total, opts))
}

/// Sentence BLEU as sacrebleu's `sentence_bleu` (exp smoothing, effective order).
pub fn sentence_bleu<S: AsRef<str>>(hyp: &str, refs: &[S]) -> Result<BleuScore> {
    if refs.is_empty() {
        return Err(Error::InvalidArgument(
            "sentence BLEU needs a reference".into(),
        ));
    }
    let opts = BleuOptions {
        effective_order: true,
        ..BleuOptions::default()
    };
    let rs: Vec<&str> = refs.iter().map(|s| s.as_ref()).collect();
    Ok(compute(&segment_stats(hyp, &rs, &opts), &opts))
}

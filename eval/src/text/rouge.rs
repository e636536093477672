//! ROUGE-N, ROUGE-L and ROUGE-Lsum as Google's `rouge-score` 0.1.2 computes them.
//!
//! Tokenization follows rouge-score's default tokenizer: lowercase, every run of characters
//! outside `[a-z0-9]` becomes a separator, tokens longer than 3 characters are Porter-stemmed
//! when stemming is on. Consequence (also true of rouge-score): non-ASCII letters are dropped,
//! so "café" tokenizes to "caf" and a Chinese or Cyrillic sentence has no tokens at all.
//! ROUGE-Lsum splits both texts into sentences on `\n` and uses the union LCS.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::porter;
use crate::error::{same_len, Error, Result};

/// Precision, recall and F-measure of one ROUGE variant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RougeScore {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub fmeasure: f64,
}

/// ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum of one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: RougeScore,
    /// Bigram overlap.
    pub rouge2: RougeScore,
    /// Longest common subsequence.
    pub rouge_l: RougeScore,
    /// Summary-level (union) LCS over `\n`-separated sentences.
    pub rouge_lsum: RougeScore,
}

/// rouge-score's `tokenize.tokenize`.
pub fn tokenize(text: &str, stem: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            if stem && t.len() > 3 {
                porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect()
}

fn fmeasure(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

fn score(p: f64, r: f64) -> RougeScore {
    RougeScore {
        precision: p,
        recall: r,
        fmeasure: fmeasure(p, r),
    }
}

/// ROUGE-N between token lists.
pub fn rouge_n(target: &[String], prediction: &[String], n: usize) -> RougeScore {
    fn grams(t: &[String], n: usize) -> HashMap<&[String], u64> {
        let mut m: HashMap<&[String], u64> = HashMap::new();
        if n > 0 && t.len() >= n {
            for w in t.windows(n) {
                *m.entry(w).or_insert(0) += 1;
            }
        }
        m
    }
    let tg = grams(target, n);
    let pg = grams(prediction, n);
    let inter: u64 = tg
        .iter()
        .map(|(g, &c)| c.min(pg.get(g).copied().unwrap_or(0)))
        .sum();
    let tc: u64 = tg.values().sum();
    let pc: u64 = pg.values().sum();
    score(
        inter as f64 / pc.max(1) as f64,
        inter as f64 / tc.max(1) as f64,
    )
}

fn lcs_table(r: &[String], c: &[String]) -> Vec<Vec<u32>> {
    let mut t = vec![vec![0u32; c.len() + 1]; r.len() + 1];
    for i in 1..=r.len() {
        for j in 1..=c.len() {
            t[i][j] = if r[i - 1] == c[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    t
}

/// ROUGE-L between token lists.
pub fn rouge_l(target: &[String], prediction: &[String]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_table(target, prediction)[target.len()][prediction.len()] as f64;
    score(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// Indices into `r` of one LCS with `c`, chosen by rouge-score's backtracking.
fn lcs_indices(r: &[String], c: &[String]) -> Vec<usize> {
    let t = lcs_table(r, c);
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// ROUGE-Lsum between sentence-split token lists.
pub fn rouge_lsum(target: &[Vec<String>], prediction: &[Vec<String>]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let m: usize = target.iter().map(Vec::len).sum();
    let n: usize = prediction.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut cnt_r: HashMap<&str, i64> = HashMap::new();
    let mut cnt_c: HashMap<&str, i64> = HashMap::new();
    for s in target {
        for t in s {
            *cnt_r.entry(t).or_insert(0) += 1;
        }
    }
    for s in prediction {
        for t in s {
            *cnt_c.entry(t).or_insert(0) += 1;
        }
    }
    let mut hits = 0u64;
    for r in target {
        let union: BTreeSet<usize> = prediction.iter().flat_map(|c| lcs_indices(r, c)).collect();
        for i in union {
            let t = r[i].as_str();
            let (cc, cr) = (
                cnt_c.get(t).copied().unwrap_or(0),
                cnt_r.get(t).copied().unwrap_or(0),
            );
            if cc > 0 && cr > 0 {
                hits += 1;
                cnt_c.insert(t, cc - 1);
                cnt_r.insert(t, cr - 1);
            }
        }
    }
    score(hits as f64 / n as f64, hits as f64 / m as f64)
}

fn sentences(text: &str, stem: bool) -> Vec<Vec<String>> {
    text.split('\n')
        .filter(|s| !s.is_empty())
        .map(|s| tokenize(s, stem))
        .collect()
}

/// All four ROUGE variants of `prediction` against one `target`.
pub fn rouge(target: &str, prediction: &str, stem: bool) -> RougeScores {
    let t = tokenize(target, stem);
    let p = tokenize(prediction, stem);
    RougeScores {
        rouge1: rouge_n(&t, &p, 1),
        rouge2: rouge_n(&t, &p, 2),
        rouge_l: rouge_l(&t, &p),
        rouge_lsum: rouge_lsum(&sentences(target, stem), &sentences(prediction, stem)),
    }
}

/// Against several targets, each variant takes the target with the best F-measure (the first on
/// ties), as rouge-score's `score_multi`.
pub fn rouge_multi<S: AsRef<str>>(
    targets: &[S],
    prediction: &str,
    stem: bool,
) -> Result<RougeScores> {
    if targets.is_empty() {
        return Err(Error::InvalidArgument(
            "ROUGE needs at least one target".into(),
        ));
    }
    let all: Vec<RougeScores> = targets
        .iter()
        .map(|t| rouge(t.as_ref(), prediction, stem))
        .collect();
    let best = |f: fn(&RougeScores) -> RougeScore| {
        let mut b = f(&all[0]);
        for s in &all[1..] {
            if f(s).fmeasure > b.fmeasure {
                b = f(s);
            }
        }
        b
    };
    Ok(RougeScores {
        rouge1: best(|s| s.rouge1),
        rouge2: best(|s| s.rouge2),
        rouge_l: best(|s| s.rouge_l),
        rouge_lsum: best(|s| s.rouge_lsum),
    })
}

/// Mean of each ROUGE score over a corpus (rouge-score's usual aggregation, without bootstrap).
pub fn corpus_rouge<S: AsRef<str>>(
    targets: &[S],
    predictions: &[S],
    stem: bool,
) -> Result<RougeScores> {
    same_len("targets vs predictions", targets.len(), predictions.len())?;
    if targets.is_empty() {
        return Err(Error::Empty("corpus ROUGE".into()));
    }
    let n = targets.len() as f64;
    let mut acc = [[0.0f64; 3]; 4];
    for (t, p) in targets.iter().zip(predictions) {
        let s = rouge(t.as_ref(), p.as_ref(), stem);
        for (k, v) in [s.rouge1, s.rouge2, s.rouge_l, s.rouge_lsum]
            .iter()
            .enumerate()
        {
            acc[k][0] += v.precision;
            acc[k][1] += v.recall;
            acc[k][2] += v.fmeasure;
        }
    }
    let mk = |a: [f64; 3]| RougeScore {
        precision: a[0] / n,
        recall: a[1] / n,
        fmeasure: a[2] / n,
    };
    Ok(RougeScores {
        rouge1: mk(acc[0]),
        rouge2: mk(acc[1]),
        rouge_l: mk(acc[2]),
        rouge_lsum: mk(acc[3]),
    })
}

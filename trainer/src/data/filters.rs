//! Quality filters: length bounds, symbol and alphabetic ratios, repeated lines and repeated
//! word n-grams (in the spirit of the Gopher/C4 heuristics, with thresholds suited to short
//! texts by default).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Thresholds of the quality filters. A record failing any of them is removed and counted
/// under the first failing filter's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityConfig {
    /// Minimum length in characters.
    pub min_chars: usize,
    /// Maximum length in characters.
    pub max_chars: usize,
    /// Minimum number of whitespace-separated words.
    pub min_words: usize,
    /// Maximum share of non-space characters that are neither letters nor digits.
    pub max_symbol_ratio: f64,
    /// Minimum share of non-space characters that are letters.
    pub min_alpha_ratio: f64,
    /// Maximum share of lines that repeat an earlier line of the same record.
    pub max_dup_line_ratio: f64,
    /// Word n-gram size for the repetition check.
    pub ngram: usize,
    /// Maximum share of characters inside word n-grams that occur more than once.
    pub max_dup_ngram_ratio: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            min_chars: 3,
            max_chars: 100_000,
            min_words: 1,
            max_symbol_ratio: 0.3,
            min_alpha_ratio: 0.5,
            max_dup_line_ratio: 0.3,
            ngram: 3,
            max_dup_ngram_ratio: 0.3,
        }
    }
}

/// Names of the filters, in the order they are applied (used as card keys).
pub const FILTER_NAMES: [&str; 7] = [
    "too_short",
    "too_long",
    "too_few_words",
    "symbol_ratio",
    "alpha_ratio",
    "repeated_lines",
    "repeated_ngrams",
];

/// Returns `None` when `text` passes every filter, else the name of the first failing one.
pub fn check(text: &str, cfg: &QualityConfig) -> Option<&'static str> {
    let chars = text.chars().count();
    if chars < cfg.min_chars {
        return Some(FILTER_NAMES[0]);
    }
    if chars > cfg.max_chars {
        return Some(FILTER_NAMES[1]);
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < cfg.min_words {
        return Some(FILTER_NAMES[2]);
    }
    let (mut visible, mut symbols, mut alpha) = (0usize, 0usize, 0usize);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        visible += 1;
        if c.is_alphabetic() {
            alpha += 1;
        } else if !c.is_numeric() {
            symbols += 1;
        }
    }
    let visible = visible.max(1) as f64;
    if symbols as f64 / visible > cfg.max_symbol_ratio {
        return Some(FILTER_NAMES[3]);
    }
    if (alpha as f64 / visible) < cfg.min_alpha_ratio {
        return Some(FILTER_NAMES[4]);
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() >= 2 {
        let mut seen = std::collections::HashSet::new();
        let dup = lines.iter().filter(|l| !seen.insert(**l)).count();
        if dup as f64 / lines.len() as f64 > cfg.max_dup_line_ratio {
            return Some(FILTER_NAMES[5]);
        }
    }
    let n = cfg.ngram.max(1);
    if words.len() >= n + 2 {
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let mut counts: HashMap<&[String], usize> = HashMap::new();
        for g in lower.windows(n) {
            *counts.entry(g).or_default() += 1;
        }
        // Characters covered by a repeated n-gram (each word counted once).
        let mut covered = vec![false; lower.len()];
        for (i, g) in lower.windows(n).enumerate() {
            if counts[g] > 1 {
                covered[i..i + n].iter_mut().for_each(|c| *c = true);
            }
        }
        let total: usize = lower.iter().map(|w| w.chars().count()).sum();
        let dup: usize = lower
            .iter()
            .zip(&covered)
            .filter(|(_, c)| **c)
            .map(|(w, _)| w.chars().count())
            .sum();
        if dup as f64 / total.max(1) as f64 > cfg.max_dup_ngram_ratio {
            return Some(FILTER_NAMES[6]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_fires() {
        let c = QualityConfig::default();
        assert_eq!(check("turn on the kitchen light", &c), None);
        assert_eq!(check("hi", &c), Some("too_short"));
        let long = "a".repeat(100_001);
        assert_eq!(check(&long, &c), Some("too_long"));
        assert_eq!(check("!!!! ???? ####", &c), Some("symbol_ratio"));
        assert_eq!(check("12345 67890 42", &c), Some("alpha_ratio"));
        assert_eq!(
            check("lights on\nlights on\nlights on\nfan off", &c),
            Some("repeated_lines")
        );
        assert_eq!(
            check("buy now cheap buy now cheap buy now cheap today", &c),
            Some("repeated_ngrams")
        );
        let strict = QualityConfig {
            min_words: 3,
            ..QualityConfig::default()
        };
        assert_eq!(check("lights on", &strict), Some("too_few_words"));
    }
}

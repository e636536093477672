//! Language-modelling metrics over a corpus: token cross-entropy and perplexity, bits per byte,
//! byte perplexity and word perplexity.
//!
//! **Convention (the choice, stated):** every metric is a *corpus* aggregate. Negative
//! log-likelihoods are summed over all scored tokens of all documents and divided by the total
//! count of tokens, UTF-8 bytes or words, then exponentiated; this is not the mean of
//! per-document perplexities (which over-weights short documents). Bytes and words follow
//! lm-evaluation-harness (`bits_per_byte`, `byte_perplexity`, `word_perplexity` of its
//! rolling-loglikelihood tasks): bytes are `len(doc.encode("utf-8"))`, words are
//! `len(re.split(r"\s+", doc))` (so leading/trailing whitespace counts an empty word, exactly as
//! the harness does), and bits per byte is `nll_sum / bytes / ln 2`. Log-likelihoods are in nats.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Running sums over a corpus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LmAccumulator {
    /// Sum of negative log-likelihoods (nats) of all scored tokens.
    pub nll_sum: f64,
    /// Scored tokens.
    pub tokens: u64,
    /// UTF-8 bytes of the documents.
    pub bytes: u64,
    /// Words of the documents (lm-evaluation-harness count).
    pub words: u64,
    /// Documents.
    pub documents: u64,
}

/// The corpus metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmMetrics {
    /// Mean negative log-likelihood per token, in nats.
    pub token_cross_entropy: f64,
    /// `exp(token_cross_entropy)`.
    pub token_perplexity: f64,
    /// `nll_sum / bytes / ln 2`.
    pub bits_per_byte: f64,
    /// `exp(nll_sum / bytes)`.
    pub byte_perplexity: f64,
    /// `exp(nll_sum / words)`.
    pub word_perplexity: f64,
    /// The sums these come from.
    pub totals: LmAccumulator,
}

/// lm-evaluation-harness word count: `len(re.split(r"\s+", text))`.
pub fn harness_word_count(text: &str) -> u64 {
    let mut pieces = 1u64;
    let mut in_space = false;
    for c in text.chars() {
        let s = crate::text::py_is_space(c);
        if s && !in_space {
            pieces += 1;
        }
        in_space = s;
    }
    pieces
}

impl LmAccumulator {
    /// Adds one document: its text and the negative log-likelihood (nats) of each of its tokens.
    pub fn add_document(&mut self, text: &str, token_nll: &[f64]) -> Result<()> {
        if let Some(i) = token_nll.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return Err(Error::InvalidValue {
                what: format!(
                    "token negative log-likelihood of document {}",
                    self.documents
                ),
                index: i,
                value: token_nll[i].to_string(),
            });
        }
        self.nll_sum += token_nll.iter().sum::<f64>();
        self.tokens += token_nll.len() as u64;
        self.bytes += text.len() as u64;
        self.words += harness_word_count(text);
        self.documents += 1;
        Ok(())
    }

    /// The metrics of everything added so far.
    pub fn finish(&self) -> Result<LmMetrics> {
        if self.tokens == 0 || self.bytes == 0 {
            return Err(Error::Empty(
                "language-model corpus (no tokens or bytes)".into(),
            ));
        }
        let ce = self.nll_sum / self.tokens as f64;
        let per_byte = self.nll_sum / self.bytes as f64;
        Ok(LmMetrics {
            token_cross_entropy: ce,
            token_perplexity: ce.exp(),
            bits_per_byte: per_byte / std::f64::consts::LN_2,
            byte_perplexity: per_byte.exp(),
            word_perplexity: (self.nll_sum / self.words as f64).exp(),
            totals: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_count_matches_python_re_split() {
        // Values of len(re.split(r"\s+", s)) in CPython.
        assert_eq!(harness_word_count(""), 1);
        assert_eq!(harness_word_count("a"), 1);
        assert_eq!(harness_word_count("a b"), 2);
        assert_eq!(harness_word_count(" a  b "), 4);
        assert_eq!(harness_word_count("a\n\tb\u{a0}c"), 3);
    }

    /// The word count (and so word perplexity) equals lm-evaluation-harness's
    /// `len(re.split(r"\s+", doc))` run by CPython: on random documents mixing words with every
    /// kind of whitespace, and `\s` matches exactly the code points we treat as spaces.
    #[test]
    fn word_count_matches_python_re_on_random_documents() {
        use crate::testing::{python_reference, rng};
        use rand::seq::SliceRandom;
        use rand::Rng;
        let seps = [
            " ", "  ", "\t", "\n", "\r\n", "\u{b}", "\u{c}", "\u{1c}", "\u{1f}", "\u{85}",
            "\u{a0}", "\u{1680}", "\u{180e}", "\u{2007}", "\u{200b}", "\u{2028}", "\u{202f}",
            "\u{3000}", "\u{feff}", "-", "",
        ];
        let words = ["a", "word", "café", "東京", "😀", "x.y", "3,5", "e\u{301}"];
        let mut r = rng(31);
        let docs: Vec<String> = (0..300)
            .map(|_| {
                let mut d = String::new();
                for _ in 0..r.gen_range(0..12) {
                    if r.gen_bool(0.5) {
                        d.push_str(words.choose(&mut r).expect("non-empty"));
                    }
                    d.push_str(seps.choose(&mut r).expect("non-empty"));
                }
                d
            })
            .collect();
        let want = python_reference(
            "eval_text.py",
            &serde_json::json!({"task": "harness_words", "docs": docs}),
        );
        let counts = want["counts"].as_array().expect("counts");
        assert_eq!(counts.len(), docs.len());
        for (d, w) in docs.iter().zip(counts) {
            assert_eq!(Some(harness_word_count(d)), w.as_u64(), "{d:?}");
        }
        let space: std::collections::BTreeSet<u32> = want["space_chars"]
            .as_array()
            .expect("space_chars")
            .iter()
            .filter_map(|v| v.as_u64().map(|c| c as u32))
            .collect();
        assert!(space.len() > 20, "{space:?}");
        for c in (0..0x11_0000u32).filter_map(char::from_u32) {
            assert_eq!(
                crate::text::py_is_space(c),
                space.contains(&(c as u32)),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn corpus_aggregate_is_not_mean_of_document_perplexities() {
        let mut acc = LmAccumulator::default();
        acc.add_document("ab", &[1.0]).unwrap();
        acc.add_document("cd ef", &[2.0, 3.0, 4.0]).unwrap();
        let m = acc.finish().unwrap();
        assert!((m.token_cross_entropy - 10.0 / 4.0).abs() < 1e-15);
        assert!((m.token_perplexity - (2.5f64).exp()).abs() < 1e-12);
        assert!((m.bits_per_byte - 10.0 / 7.0 / std::f64::consts::LN_2).abs() < 1e-15);
        assert!((m.word_perplexity - (10.0f64 / 3.0).exp()).abs() < 1e-12);
        let mean_doc_ppl = (1.0f64.exp() + 3.0f64.exp()) / 2.0;
        assert!((m.token_perplexity - mean_doc_ppl).abs() > 0.5);
    }

    #[test]
    fn rejects_bad_values() {
        let mut acc = LmAccumulator::default();
        assert!(acc.add_document("x", &[f64::NAN]).is_err());
        assert!(acc.add_document("x", &[-0.5]).is_err());
        assert!(acc.finish().is_err());
    }
}

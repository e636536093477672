//! The text search space: model family (encoder or GPT), width, depth, heads, context,
//! tokenizer vocabulary and precision (int8, or int8 with the classification head kept f32).

use edgeloop_trainer::models::{BertConfig, GptConfig, ModelSpec};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SelectError};
pub use crate::precision::Precision;

/// Most candidates a text space may hold.
pub const MAX_CANDIDATES: usize = 512;

/// Smallest vocabulary a byte-level BPE can have (256 bytes + the trainer's 6 special tokens).
pub const MIN_VOCAB: usize = 262;

/// Model family of a text candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// BERT-style encoder (post-norm), mean-pooled, fixed-length inputs.
    Encoder,
    /// GPT decoder (pre-norm, causal), mean-pooled, fixed-length inputs.
    Gpt,
}

impl Family {
    /// Short name used in candidate names (`enc`, `gpt`).
    pub fn short(self) -> &'static str {
        match self {
            Family::Encoder => "enc",
            Family::Gpt => "gpt",
        }
    }

    /// Parses `encoder` / `enc` / `bert` or `gpt`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "encoder" | "enc" | "bert" => Ok(Family::Encoder),
            "gpt" | "decoder" => Ok(Family::Gpt),
            o => Err(SelectError::Config(format!(
                "unknown model family '{o}' (encoder or gpt)"
            ))),
        }
    }
}

/// The text dimensions searched (their cartesian product is the candidate list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSearchSpace {
    /// Model families.
    pub families: Vec<Family>,
    /// Model widths (hidden size; the feed-forward layer is 4× wider).
    pub widths: Vec<usize>,
    /// Layers (transformer blocks).
    pub depths: Vec<usize>,
    /// Attention heads (must divide the width).
    pub heads: Vec<usize>,
    /// Context: the fixed input length in tokens.
    pub contexts: Vec<usize>,
    /// Target vocabulary sizes of the byte-level BPE retrained on the task's training texts.
    pub vocabs: Vec<usize>,
    /// Precisions.
    pub precisions: Vec<Precision>,
}

impl Default for TextSearchSpace {
    /// Both families, width 16/32/64, 1–2 layers, 2 heads, 16 or 24 tokens, vocabulary 384 or
    /// 512, int8 and mixed (96 candidates).
    fn default() -> Self {
        TextSearchSpace {
            families: vec![Family::Encoder, Family::Gpt],
            widths: vec![16, 32, 64],
            depths: vec![1, 2],
            heads: vec![2],
            contexts: vec![16, 24],
            vocabs: vec![384, 512],
            precisions: vec![Precision::Int8, Precision::MixedHead],
        }
    }
}

/// One point of the text space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextCandidate {
    /// Short name, `{enc|gpt}-w{width}-d{depth}-h{heads}-t{context}-v{vocab}-{int8|mixed}`.
    pub name: String,
    /// Family.
    pub family: Family,
    /// Width.
    pub width: usize,
    /// Layers.
    pub depth: usize,
    /// Heads.
    pub heads: usize,
    /// Context (fixed input length).
    pub context: usize,
    /// Target vocabulary size.
    pub vocab: usize,
    /// Precision.
    pub precision: Precision,
}

impl TextCandidate {
    /// A candidate named after its sizes.
    pub fn new(
        family: Family,
        width: usize,
        depth: usize,
        heads: usize,
        context: usize,
        vocab: usize,
        precision: Precision,
    ) -> Self {
        let arch = format!(
            "{}-w{width}-d{depth}-h{heads}-t{context}-v{vocab}",
            family.short()
        );
        TextCandidate {
            name: format!("{arch}-{}", precision.short()),
            family,
            width,
            depth,
            heads,
            context,
            vocab,
            precision,
        }
    }

    /// The name without the precision: candidates sharing it share one trained model.
    pub fn arch(&self) -> String {
        self.name
            .rsplit_once('-')
            .map_or(self.name.clone(), |(a, _)| a.to_string())
    }

    /// Why this combination is not a model (`None`: it is one).
    pub fn invalid(&self) -> Option<String> {
        if !self.width.is_multiple_of(self.heads) {
            return Some(format!(
                "width {} is not divisible by {} heads",
                self.width, self.heads
            ));
        }
        None
    }

    /// The trainer's model config for this candidate with the tokenizer's actual vocabulary
    /// size and `num_labels` classes.
    pub fn spec(&self, vocab_size: usize, num_labels: usize) -> Result<ModelSpec> {
        let spec = match self.family {
            Family::Encoder => ModelSpec::Bert(BertConfig {
                vocab_size,
                hidden_size: self.width,
                num_hidden_layers: self.depth,
                num_attention_heads: self.heads,
                intermediate_size: 4 * self.width,
                max_position_embeddings: self.context,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
                tied_embeddings: true,
                num_labels: Some(num_labels),
            }),
            Family::Gpt => ModelSpec::Gpt(GptConfig {
                vocab_size,
                n_layer: self.depth,
                n_head: self.heads,
                n_embd: self.width,
                block_size: self.context,
                tied_embeddings: true,
                bias: true,
                layer_norm_eps: 1e-5,
                num_labels: Some(num_labels),
            }),
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl TextSearchSpace {
    /// Checks the lists (non-empty, in range, at most [`MAX_CANDIDATES`] combinations, at least
    /// one valid model).
    pub fn validate(&self) -> Result<()> {
        let check = |what: &str, v: &[usize], lo: usize, hi: usize| {
            crate::space::check_list(&format!("text search space {what}"), v, lo, hi)
        };
        check("widths", &self.widths, 2, 1024)?;
        check("depths", &self.depths, 1, 12)?;
        check("heads", &self.heads, 1, 32)?;
        check("contexts", &self.contexts, 2, 512)?;
        check("vocabs", &self.vocabs, MIN_VOCAB, 65_536)?;
        if self.precisions.contains(&Precision::MixedFirst) {
            return Err(SelectError::Config(
                "text search space: mixed-first applies to the keyword model; text offers int8 and mixed-head".into(),
            ));
        }
        if self.families.is_empty() || self.precisions.is_empty() {
            return Err(SelectError::Config(
                "text search space: give at least one family and one precision".into(),
            ));
        }
        let n = self.families.len()
            * self.widths.len()
            * self.depths.len()
            * self.heads.len()
            * self.contexts.len()
            * self.vocabs.len()
            * self.precisions.len();
        if n > MAX_CANDIDATES {
            return Err(SelectError::Config(format!(
                "the text search space has {n} combinations (at most {MAX_CANDIDATES})"
            )));
        }
        if !self
            .widths
            .iter()
            .any(|w| self.heads.iter().any(|h| w % h == 0))
        {
            return Err(SelectError::Config(format!(
                "no width in {:?} is divisible by a head count in {:?}",
                self.widths, self.heads
            )));
        }
        Ok(())
    }

    /// Every combination, duplicates removed, in the order family, vocabulary, context, width,
    /// depth, heads, precision (smallest first). Invalid combinations (width not divisible by
    /// heads) are kept: the selection lists them as dropped with [`TextCandidate::invalid`].
    pub fn candidates(&self) -> Result<Vec<TextCandidate>> {
        self.validate()?;
        let sorted = |v: &[usize]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut fams = self.families.clone();
        fams.dedup();
        let mut out: Vec<TextCandidate> = Vec::new();
        for &f in &fams {
            for &v in &sorted(&self.vocabs) {
                for &t in &sorted(&self.contexts) {
                    for &w in &sorted(&self.widths) {
                        for &d in &sorted(&self.depths) {
                            for &h in &sorted(&self.heads) {
                                for &p in &self.precisions {
                                    let c = TextCandidate::new(f, w, d, h, t, v, p);
                                    if !out.iter().any(|o| o.name == c.name) {
                                        out.push(c);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> TextSearchSpace {
        TextSearchSpace {
            families: vec![Family::Encoder, Family::Gpt],
            widths: vec![16, 12],
            depths: vec![1],
            heads: vec![2, 8],
            contexts: vec![8],
            vocabs: vec![300],
            precisions: vec![Precision::Int8, Precision::MixedHead],
        }
    }

    #[test]
    fn product_with_invalid_combinations_marked() {
        let c = tiny().candidates().unwrap();
        assert_eq!(c.len(), 2 * 2 * 2 * 2);
        assert_eq!(c[0].name, "enc-w12-d1-h2-t8-v300-int8");
        assert_eq!(c[1].name, "enc-w12-d1-h2-t8-v300-mixed");
        assert_eq!(c[0].arch(), c[1].arch());
        let invalid: Vec<&str> = c
            .iter()
            .filter(|c| c.invalid().is_some())
            .map(|c| c.name.as_str())
            .collect();
        // 12 is not divisible by 8; 16 is.
        assert_eq!(invalid.len(), 4, "{invalid:?}");
        assert!(invalid
            .iter()
            .all(|n| n.contains("w12") && n.contains("h8")));
        assert_eq!(TextSearchSpace::default().candidates().unwrap().len(), 96);
        // Duplicates collapse.
        let mut d = tiny();
        d.widths = vec![16, 16];
        d.families = vec![Family::Gpt, Family::Gpt];
        assert_eq!(d.candidates().unwrap().len(), 4);
    }

    #[test]
    fn specs_load_in_the_trainer_and_carry_the_sizes() {
        let c = TextCandidate::new(Family::Gpt, 32, 2, 4, 20, 512, Precision::MixedHead);
        let s = c.spec(500, 7).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: ModelSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(json.contains("\"arch\":\"gpt\""), "{json}");
        assert_eq!((s.vocab_size(), s.context()), (500, 20));
        let e = TextCandidate::new(Family::Encoder, 32, 1, 2, 16, 300, Precision::Int8);
        match e.spec(290, 3).unwrap() {
            ModelSpec::Bert(b) => {
                assert_eq!((b.hidden_size, b.intermediate_size), (32, 128));
                assert_eq!(b.num_labels, Some(3));
            }
            o => panic!("{o:?}"),
        }
        let bad = TextCandidate::new(Family::Encoder, 30, 1, 4, 16, 300, Precision::Int8);
        assert!(bad.invalid().unwrap().contains("not divisible"));
        assert!(bad.spec(300, 3).is_err());
    }

    #[test]
    fn bad_spaces_are_refused() {
        let ok = tiny();
        for s in [
            TextSearchSpace {
                widths: vec![],
                ..ok.clone()
            },
            TextSearchSpace {
                vocabs: vec![100],
                ..ok.clone()
            },
            TextSearchSpace {
                depths: vec![0],
                ..ok.clone()
            },
            TextSearchSpace {
                families: vec![],
                ..ok.clone()
            },
            TextSearchSpace {
                precisions: vec![],
                ..ok.clone()
            },
            TextSearchSpace {
                precisions: vec![Precision::MixedFirst],
                ..ok.clone()
            },
            TextSearchSpace {
                widths: vec![15],
                heads: vec![2, 4],
                ..ok.clone()
            },
            TextSearchSpace {
                widths: (2..200).collect(),
                ..ok.clone()
            },
        ] {
            assert!(s.candidates().is_err(), "{s:?}");
        }
        assert!(Family::parse("bert").is_ok() && Family::parse("rnn").is_err());
        assert_eq!(
            Precision::parse("mixed-head").unwrap(),
            Precision::MixedHead
        );
        assert!(Precision::parse("fp16").is_err());
    }
}

//! Tokenizers: byte-level BPE trained with the `tokenizers` crate, character-level, and loading
//! an existing `tokenizer.json` or a WordPiece `vocab.txt`; plus compact binary token files
//! ([`token_file`], format in `trainer/TOKENS.md`).
//!
//! Every tokenizer is a standard Hugging Face `tokenizers` pipeline and saves as a standard
//! `tokenizer.json` (the character-level one is a `WordLevel` model over single characters
//! with a `Split` pre-tokenizer and a `Fuse` decoder), so other tools load what we train.
//!
//! Trained tokenizers reserve the same special tokens at ids 0–5: `[PAD]`, `[UNK]`, `[CLS]`,
//! `[SEP]`, `[MASK]`, `<|endoftext|>` ([`SPECIAL_TOKENS`]).
//!
//! ```
//! use edgeloop_trainer::tokenizer::{BpeConfig, Tokenizer};
//! let texts = ["turn on the kitchen light", "turn off the hall lamp"];
//! let tok = Tokenizer::train_bpe(texts.iter(), &BpeConfig { vocab_size: 300, min_frequency: 1 })?;
//! let ids = tok.encode("turn on the lamp")?;
//! assert_eq!(tok.decode(&ids)?, "turn on the lamp");
//! # Ok::<(), edgeloop_trainer::data::DataError>(())
//! ```

pub mod token_file;
pub mod tokenize;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use crate::data::error::{DataError, Result};

/// Special tokens reserved at ids 0..6 by every tokenizer trained here.
pub const SPECIAL_TOKENS: [&str; 6] = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "<|endoftext|>",
];

/// The ids of the special tokens a tokenizer has (any may be absent in a loaded one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialIds {
    /// Padding.
    pub pad: Option<u32>,
    /// Unknown.
    pub unk: Option<u32>,
    /// Classification / start (BERT `[CLS]`).
    pub cls: Option<u32>,
    /// Separator (BERT `[SEP]`).
    pub sep: Option<u32>,
    /// Mask (masked LM).
    pub mask: Option<u32>,
    /// End of text (causal LM document separator).
    pub eos: Option<u32>,
}

/// Which kind of tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// Byte-level BPE.
    Bpe,
    /// One token per character.
    Char,
    /// WordPiece (BERT).
    WordPiece,
    /// Any other `tokenizer.json`.
    Other,
}

/// Byte-level BPE training settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpeConfig {
    /// Target vocabulary size (including the 256 byte symbols and the special tokens).
    pub vocab_size: usize,
    /// Minimum pair frequency for a merge.
    pub min_frequency: u64,
}

impl Default for BpeConfig {
    fn default() -> Self {
        BpeConfig {
            vocab_size: 2048,
            min_frequency: 2,
        }
    }
}

/// Character-level settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharConfig {
    /// Maximum vocabulary size (special tokens included); rarer characters map to `[UNK]`.
    pub max_vocab: usize,
    /// Minimum character count to get an id.
    pub min_frequency: u64,
}

impl Default for CharConfig {
    fn default() -> Self {
        CharConfig {
            max_vocab: 512,
            min_frequency: 1,
        }
    }
}

/// A tokenizer (wraps `tokenizers::Tokenizer`).
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    kind: TokenizerKind,
    specials: SpecialIds,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.vocab_size())
            .field("specials", &self.specials)
            .finish()
    }
}

fn mem_err(e: impl std::fmt::Display) -> DataError {
    DataError::tokenizer("<memory>", e)
}

impl Tokenizer {
    fn wrap(inner: tokenizers::Tokenizer, kind: TokenizerKind) -> Self {
        let id = |t: &str| inner.token_to_id(t);
        let specials = SpecialIds {
            pad: id("[PAD]").or_else(|| id("<pad>")),
            unk: id("[UNK]").or_else(|| id("<unk>")),
            cls: id("[CLS]").or_else(|| id("<s>")),
            sep: id("[SEP]").or_else(|| id("</s>")),
            mask: id("[MASK]").or_else(|| id("<mask>")),
            eos: id("<|endoftext|>").or_else(|| id("</s>")),
        };
        Tokenizer {
            inner,
            kind,
            specials,
        }
    }

    /// Trains a byte-level BPE (GPT-2 style pre-tokenization, no unknown tokens) on `texts`.
    pub fn train_bpe<I, S>(texts: I, cfg: &BpeConfig) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        if cfg.vocab_size < 256 + SPECIAL_TOKENS.len() {
            return Err(DataError::config(
                "vocab_size",
                format!(
                    "a byte-level BPE needs at least {} tokens",
                    256 + SPECIAL_TOKENS.len()
                ),
            ));
        }
        let alphabet: std::collections::HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        let mut trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(cfg.vocab_size)
            .min_frequency(cfg.min_frequency)
            .special_tokens(
                SPECIAL_TOKENS
                    .iter()
                    .map(|t| AddedToken::from(*t, true))
                    .collect(),
            )
            .initial_alphabet(alphabet)
            .build();
        let mut tk = TokenizerBuilder::<
            BPE,
            tokenizers::NormalizerWrapper,
            ByteLevel,
            ByteLevel,
            ByteLevel,
        >::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .build()
        .map_err(mem_err)?;
        tk.train(&mut trainer, texts).map_err(mem_err)?;
        let json = tk.to_string(false).map_err(mem_err)?;
        let inner = tokenizers::Tokenizer::from_bytes(json.as_bytes()).map_err(mem_err)?;
        Ok(Self::wrap(inner, TokenizerKind::Bpe))
    }

    /// Builds a character-level tokenizer from the characters of `texts` (most frequent first).
    pub fn train_char<I, S>(texts: I, cfg: &CharConfig) -> Result<Self>
    where
        I: Iterator<Item = S>,
        S: AsRef<str>,
    {
        if cfg.max_vocab <= SPECIAL_TOKENS.len() {
            return Err(DataError::config(
                "max_vocab",
                "must exceed the number of special tokens (6)",
            ));
        }
        let mut counts: BTreeMap<char, u64> = BTreeMap::new();
        for t in texts {
            for c in t.as_ref().chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        let mut chars: Vec<(char, u64)> = counts
            .into_iter()
            .filter(|(_, n)| *n >= cfg.min_frequency)
            .collect();
        chars.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        chars.truncate(cfg.max_vocab - SPECIAL_TOKENS.len());
        let mut vocab = serde_json::Map::new();
        let mut added = Vec::new();
        for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
            vocab.insert(t.to_string(), json!(i));
            added.push(
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}),
            );
        }
        for (i, (c, _)) in chars.iter().enumerate() {
            vocab.insert(c.to_string(), json!(i + SPECIAL_TOKENS.len()));
        }
        let doc = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(?s)."}, "behavior": "Isolated", "invert": false},
            "post_processor": null,
            "decoder": {"type": "Fuse"},
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        });
        let inner =
            tokenizers::Tokenizer::from_bytes(doc.to_string().as_bytes()).map_err(mem_err)?;
        Ok(Self::wrap(inner, TokenizerKind::Char))
    }

    /// Loads a `tokenizer.json`.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let mut inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| DataError::tokenizer(path, e))?;
        // A tokenizer.json exported for batched inference (MiniLM's pads every sequence to 128)
        // carries padding settings; `encode` works on one text and pads nothing, batching pads
        // per batch, so the file's padding is dropped here. Truncation is kept.
        inner.with_padding(None);
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| DataError::tokenizer(path, e))?;
        let kind = match (
            v.pointer("/model/type").and_then(|t| t.as_str()),
            v.pointer("/pre_tokenizer/type").and_then(|t| t.as_str()),
        ) {
            (Some("BPE"), Some("ByteLevel")) => TokenizerKind::Bpe,
            (Some("WordLevel"), Some("Split")) => TokenizerKind::Char,
            (Some("WordPiece"), _) => TokenizerKind::WordPiece,
            _ => TokenizerKind::Other,
        };
        Ok(Self::wrap(inner, kind))
    }

    /// Loads a BERT WordPiece `vocab.txt` (one token per line) with BERT normalization
    /// (lower-casing when `lowercase`), BERT pre-tokenization and the WordPiece decoder.
    pub fn from_wordpiece_vocab(path: &Path, lowercase: bool) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let mut vocab = serde_json::Map::new();
        for (i, line) in text.lines().enumerate() {
            let tok = line.trim_end_matches('\r');
            if tok.is_empty() {
                continue;
            }
            if vocab.contains_key(tok) {
                return Err(DataError::BadRecord {
                    path: path.to_path_buf(),
                    line: i as u64 + 1,
                    kind: crate::data::BadRecordKind::WrongType {
                        field: "token".into(),
                        expected: format!("a token not listed before (`{tok}` is a duplicate)"),
                    },
                });
            }
            vocab.insert(tok.to_string(), json!(i));
        }
        if !vocab.contains_key("[UNK]") {
            return Err(DataError::tokenizer(
                path,
                "the WordPiece vocabulary has no [UNK] token",
            ));
        }
        let added: Vec<serde_json::Value> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .filter_map(|t| vocab.get(*t).map(|id| (t, id.clone())))
            .map(|(t, id)| {
                json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let post = match (vocab.get("[CLS]"), vocab.get("[SEP]")) {
            (Some(c), Some(s)) => {
                json!({"type": "BertProcessing", "sep": ["[SEP]", s], "cls": ["[CLS]", c]})
            }
            _ => serde_json::Value::Null,
        };
        let doc = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                "strip_accents": null, "lowercase": lowercase},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": post,
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100, "vocab": vocab}
        });
        let inner = tokenizers::Tokenizer::from_bytes(doc.to_string().as_bytes())
            .map_err(|e| DataError::tokenizer(path, e))?;
        Ok(Self::wrap(inner, TokenizerKind::WordPiece))
    }

    /// Loads `tokenizer.json` or (by a `.txt` extension) a WordPiece `vocab.txt` (lower-cased).
    pub fn load(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("txt") => Self::from_wordpiece_vocab(path, true),
            _ => Self::from_json_file(path),
        }
    }

    /// Saves as a standard `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let s = self
            .inner
            .to_string(true)
            .map_err(|e| DataError::tokenizer(path, e))?;
        std::fs::write(path, s).map_err(|e| DataError::io(path, e))
    }

    /// Token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(mem_err)?
            .get_ids()
            .to_vec())
    }

    /// Token ids with the tokenizer's own special tokens (e.g. `[CLS] .. [SEP]` for WordPiece).
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, true)
            .map_err(mem_err)?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(mem_err)
    }

    /// Vocabulary size, added tokens included (all ids are below it).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Which kind it is.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// The special token ids.
    pub fn specials(&self) -> SpecialIds {
        self.specials
    }

    /// The underlying `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{generate, CorpusConfig};

    fn texts() -> Vec<String> {
        let c = generate(&CorpusConfig {
            n_labelled: 500,
            pretrain_bytes: 20_000,
            ..CorpusConfig::lab(1)
        });
        c.pretrain
    }

    #[test]
    fn bpe_round_trips_and_saves_a_standard_file() {
        let t = texts();
        let tok = Tokenizer::train_bpe(
            t.iter(),
            &BpeConfig {
                vocab_size: 600,
                min_frequency: 2,
            },
        )
        .unwrap();
        assert_eq!(tok.kind(), TokenizerKind::Bpe);
        assert!(tok.vocab_size() <= 600 && tok.vocab_size() > 300);
        assert_eq!(tok.specials().pad, Some(0));
        assert_eq!(tok.specials().eos, Some(5));
        for s in [
            "turn on the kitchen light",
            "Ünïcödé — 東京 ok?",
            "  two  spaces\nnewline",
        ] {
            let ids = tok.encode(s).unwrap();
            assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
            assert_eq!(tok.decode(&ids).unwrap(), s);
        }
        // Merges make common words shorter than their bytes.
        assert!(tok.encode("turn on the kitchen light").unwrap().len() < 12);
        let dir = std::env::temp_dir().join(format!("edgeloop-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tokenizer.json");
        tok.save(&p).unwrap();
        let back = Tokenizer::load(&p).unwrap();
        assert_eq!(back.kind(), TokenizerKind::Bpe);
        assert_eq!(
            back.encode("set the lounge heating to 21").unwrap(),
            tok.encode("set the lounge heating to 21").unwrap()
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["model"]["type"], "BPE");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn char_level_maps_unknown_characters_to_unk() {
        let tok = Tokenizer::train_char(["abc ab"].iter(), &CharConfig::default()).unwrap();
        assert_eq!(tok.vocab_size(), 6 + 4);
        let ids = tok.encode("ab c").unwrap();
        assert_eq!(ids.len(), 4);
        assert_eq!(tok.decode(&ids).unwrap(), "ab c");
        let ids = tok.encode("abz").unwrap();
        assert_eq!(ids[2], tok.specials().unk.unwrap());
        let dir = std::env::temp_dir().join(format!("edgeloop-chartok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tokenizer.json");
        tok.save(&p).unwrap();
        let back = Tokenizer::load(&p).unwrap();
        assert_eq!(back.kind(), TokenizerKind::Char);
        assert_eq!(back.encode("cab").unwrap(), tok.encode("cab").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wordpiece_vocab_txt() {
        let dir = std::env::temp_dir().join(format!("edgeloop-wp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("vocab.txt");
        std::fs::write(
            &p,
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nturn\non\nthe\nkitchen\nlight\n##s\n",
        )
        .unwrap();
        let tok = Tokenizer::load(&p).unwrap();
        assert_eq!(tok.kind(), TokenizerKind::WordPiece);
        assert_eq!(
            tok.encode("Turn on the kitchen lights").unwrap(),
            vec![5, 6, 7, 8, 9, 10]
        );
        assert_eq!(
            tok.encode_with_special("turn on").unwrap(),
            vec![2, 5, 6, 3]
        );
        assert_eq!(tok.encode("turn on the garage").unwrap()[3], 1);
        assert_eq!(tok.decode(&[5, 6, 9, 10]).unwrap(), "turn on lights");
        std::fs::write(&p, "[PAD]\nturn\n").unwrap();
        assert!(Tokenizer::load(&p).is_err());
        std::fs::write(&p, "[UNK]\nturn\nturn\n").unwrap();
        let e = Tokenizer::load(&p).unwrap_err().to_string();
        assert!(e.contains(":3:"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_tokenizer_json_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("edgeloop-badtok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tokenizer.json");
        std::fs::write(&p, "{\"model\": 3}").unwrap();
        let e = Tokenizer::load(&p).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

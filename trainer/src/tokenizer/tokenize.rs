//! Tokenizing datasets into token files: train (or load) a tokenizer, then write one
//! `<stem>.tokens` per input (JSONL `text` field, or plain text lines/paragraphs).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::token_file::TokenFileWriter;
use super::{BpeConfig, CharConfig, Tokenizer, TokenizerKind};
use crate::data::error::{DataError, Result};
use crate::data::source::{FieldNames, RecordReader, SourceSpec};
use crate::data::BadRecordKind;

/// How to get the tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TokenizerSource {
    /// Train a byte-level BPE on the first input.
    TrainBpe(BpeConfig),
    /// Build a character-level tokenizer from the first input.
    TrainChar(CharConfig),
    /// Load a `tokenizer.json` or WordPiece `vocab.txt`.
    Load(PathBuf),
}

/// Settings of [`tokenize`].
#[derive(Debug, Clone)]
pub struct TokenizeConfig {
    /// Inputs (the first one trains the tokenizer).
    pub inputs: Vec<SourceSpec>,
    /// Field names for JSONL/CSV.
    pub fields: FieldNames,
    /// Tokenizer to train or load.
    pub tokenizer: TokenizerSource,
    /// Output folder: `tokenizer.json` and one `.tokens` per input.
    pub out_dir: PathBuf,
    /// Append the end-of-text id after each document (causal LM); needs an `eos` token.
    pub append_eos: bool,
}

/// One written token file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizedFile {
    /// The input.
    pub input: String,
    /// The token file.
    pub output: String,
    /// Documents.
    pub documents: u64,
    /// Tokens.
    pub tokens: u64,
    /// Characters of text encoded.
    pub chars: u64,
}

/// What [`tokenize`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizeReport {
    /// Tokenizer kind.
    pub kind: TokenizerKind,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// The saved `tokenizer.json`.
    pub tokenizer: String,
    /// Per input.
    pub files: Vec<TokenizedFile>,
}

fn texts(spec: &SourceSpec, fields: &FieldNames) -> Result<Vec<String>> {
    let mut r = RecordReader::open(spec, fields)?;
    let mut v = Vec::new();
    while let Some(it) = r.next_item()? {
        match it.record {
            Ok(rec) => v.push(rec.text),
            Err(BadRecordKind::EmptyFile) => {}
            Err(kind) => {
                return Err(DataError::BadRecord {
                    path: r.name().to_path_buf(),
                    line: it.line,
                    kind,
                })
            }
        }
    }
    Ok(v)
}

/// Trains or loads the tokenizer, saves it and writes the token files.
pub fn tokenize(cfg: &TokenizeConfig) -> Result<TokenizeReport> {
    let first = cfg
        .inputs
        .first()
        .ok_or_else(|| DataError::config("input", "give at least one input"))?;
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| DataError::io(&cfg.out_dir, e))?;
    let tok = match &cfg.tokenizer {
        TokenizerSource::Load(p) => Tokenizer::load(p)?,
        TokenizerSource::TrainBpe(c) => {
            let t = texts(first, &cfg.fields)?;
            Tokenizer::train_bpe(t.iter(), c)?
        }
        TokenizerSource::TrainChar(c) => {
            let t = texts(first, &cfg.fields)?;
            Tokenizer::train_char(t.iter(), c)?
        }
    };
    let eos = if cfg.append_eos {
        Some(tok.specials().eos.ok_or_else(|| {
            DataError::config(
                "append_eos",
                "the tokenizer has no end-of-text token (<|endoftext|> or </s>)",
            )
        })?)
    } else {
        None
    };
    let tok_path = cfg.out_dir.join("tokenizer.json");
    tok.save(&tok_path)?;
    let mut files = Vec::new();
    for spec in &cfg.inputs {
        let name = spec.input.name();
        let stem = name
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("input")
            .to_string();
        let out = cfg.out_dir.join(format!("{stem}.tokens"));
        let mut w = TokenFileWriter::create(&out, tok.vocab_size())?;
        let mut r = RecordReader::open(spec, &cfg.fields)?;
        let mut chars = 0u64;
        while let Some(it) = r.next_item()? {
            let rec = match it.record {
                Ok(rec) => rec,
                Err(BadRecordKind::EmptyFile) => continue,
                Err(kind) => {
                    return Err(DataError::BadRecord {
                        path: name.clone(),
                        line: it.line,
                        kind,
                    })
                }
            };
            let mut ids = tok.encode(&rec.text)?;
            if let Some(e) = eos {
                ids.push(e);
            }
            chars += rec.text.chars().count() as u64;
            w.push(&ids)?;
        }
        let (documents, tokens) = w.finish()?;
        files.push(TokenizedFile {
            input: name.display().to_string(),
            output: out.display().to_string(),
            documents,
            tokens,
            chars,
        });
    }
    Ok(TokenizeReport {
        kind: tok.kind(),
        vocab_size: tok.vocab_size(),
        tokenizer: tok_path.display().to_string(),
        files,
    })
}

/// Path helper: the token file written for `input` in `out_dir`.
pub fn token_file_for(out_dir: &Path, input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("input");
    out_dir.join(format!("{stem}.tokens"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::token_file::TokenFile;

    #[test]
    fn tokenizes_jsonl_into_token_files() {
        let dir = std::env::temp_dir().join(format!("edgeloop-tokenize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("train.jsonl");
        std::fs::write(
            &a,
            "{\"text\":\"turn on the light\"}\n{\"text\":\"turn off the light\"}\n",
        )
        .unwrap();
        let cfg = TokenizeConfig {
            inputs: vec![SourceSpec::file(&a)],
            fields: FieldNames::default(),
            tokenizer: TokenizerSource::TrainChar(CharConfig::default()),
            out_dir: dir.join("out"),
            append_eos: true,
        };
        let r = tokenize(&cfg).unwrap();
        assert_eq!(r.files[0].documents, 2);
        assert_eq!(r.files[0].tokens, 17 + 1 + 18 + 1);
        let f = TokenFile::open(&token_file_for(&dir.join("out"), &a)).unwrap();
        f.verify().unwrap();
        let tok = Tokenizer::load(&dir.join("out/tokenizer.json")).unwrap();
        let d0 = f.doc(0).unwrap();
        assert_eq!(*d0.last().unwrap(), tok.specials().eos.unwrap());
        assert_eq!(tok.decode(&d0).unwrap(), "turn on the light");
        std::fs::write(&a, "{\"text\":\"ok\"}\n{\"txt\":1}\n").unwrap();
        let e = tokenize(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("train.jsonl:2") && e.contains("missing field `text`"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

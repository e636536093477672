//! Demo stage 1: the embedded corpora (lab and shifted field), data selection (normalization,
//! PII scrub, quality filters, exact and near-duplicate removal, leak-free split) and a BPE
//! tokenizer trained on the lab training text.

use std::path::{Path, PathBuf};

use anyhow::Context;
use edgeloop_trainer::corpus::{self, CorpusConfig};
use edgeloop_trainer::data::pipeline::{self, SelectConfig};
use edgeloop_trainer::data::source::SourceSpec;
use edgeloop_trainer::data::split::Split;
use edgeloop_trainer::data::Record;
use edgeloop_trainer::tokenizer::{BpeConfig, Tokenizer};
use edgeloop_trainer::train::jobs;
use serde::Serialize;

use super::Ctx;

/// What the data stage reports.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DataSummary {
    /// Records per lab split after selection.
    pub lab_train: usize,
    /// Validation records.
    pub lab_val: usize,
    /// Held-out lab test records.
    pub lab_test: usize,
    /// Field records the fleet sees.
    pub field_stream: usize,
    /// Field records held out for the retraining gate.
    pub field_holdout: usize,
    /// Records the selection removed (quality, duplicates, near-duplicates).
    pub removed: u64,
    /// Tokenizer vocabulary.
    pub vocab: usize,
    /// Class names, index = class id.
    pub labels: Vec<String>,
}

/// The data stage's files and tokenizer.
#[derive(Debug)]
pub struct Data {
    /// Lab training split (JSONL records).
    pub train: PathBuf,
    /// Lab validation split.
    pub val: PathBuf,
    /// Lab test split.
    pub test: PathBuf,
    /// Pretraining text, train / val (JSONL `{text}`).
    pub pretrain: (PathBuf, PathBuf),
    /// Field records the devices see, in arrival order.
    pub field_stream: Vec<Record>,
    /// Field records held out (never seen by retraining).
    pub field_holdout: PathBuf,
    /// The tokenizer (`data/tokenizer.json`).
    pub tokenizer: Tokenizer,
    /// Summary.
    pub summary: DataSummary,
}

/// Writes `records` as JSON Lines (the trainer's dataset format).
pub fn write_records(path: &Path, records: &[Record]) -> anyhow::Result<()> {
    let mut s = String::new();
    for r in records {
        s.push_str(&serde_json::to_string(r)?);
        s.push('\n');
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// Runs the stage.
pub fn run(ctx: &Ctx) -> anyhow::Result<Data> {
    let sz = &ctx.sizes;
    let dir = ctx.dir("data")?;
    let lab_cfg = CorpusConfig {
        n_labelled: sz.lab_labelled,
        pretrain_bytes: sz.pretrain_bytes,
        n_instructions: 0,
        n_preferences: 0,
        ..CorpusConfig::lab(ctx.seed)
    };
    let field_cfg = CorpusConfig {
        n_labelled: sz.field_labelled,
        pretrain_bytes: 0,
        n_instructions: 0,
        n_preferences: 0,
        ..CorpusConfig::field(ctx.seed)
    };
    let lab = corpus::generate(&lab_cfg);
    let field = corpus::generate(&field_cfg);
    let (lab_files, _) = lab
        .write(&dir.join("lab"), None)
        .context("writing the lab corpus")?;
    field
        .write(&dir.join("field"), Some(&lab))
        .context("writing the field corpus")?;
    crate::say!(
        "lab corpus: {} labelled, {} pretraining documents; field corpus: {} labelled (shifted wording, regions, styles)",
        lab.labelled.len(),
        lab.pretrain.len(),
        field.labelled.len()
    );

    // Selection over the lab labelled set: normalization, PII, quality, dedup, split.
    let mut sel = SelectConfig::new(
        vec![SourceSpec::file(&lab_files.labelled)],
        dir.join("selected"),
    );
    sel.name = "edgeloop demo: lab intents".into();
    sel.seed = ctx.seed;
    sel.progress = ctx.progress;
    let report = pipeline::select(&sel).context("data selection")?;
    let file = |s: Split| -> anyhow::Result<PathBuf> {
        report
            .files
            .get(&s)
            .cloned()
            .with_context(|| format!("the selection wrote no {} split", s.name()))
    };
    let (train, val, test) = (file(Split::Train)?, file(Split::Val)?, file(Split::Test)?);
    let count = |p: &Path| -> anyhow::Result<usize> { Ok(jobs::read_texts(p)?.len()) };
    let removed: u64 = report.card.steps.iter().map(|s| s.removed).sum();

    // Pretraining text: documents, 95/5 split by position.
    let docs: Vec<Record> = lab.pretrain.iter().map(Record::text).collect();
    let n_val = (docs.len() / 20).max(1);
    let pre_train = dir.join("pretrain_train.jsonl");
    let pre_val = dir.join("pretrain_val.jsonl");
    write_records(&pre_train, &docs[n_val..])?;
    write_records(&pre_val, &docs[..n_val])?;

    // Field data: every 4th record is held out for the retraining gate.
    let (mut stream, mut holdout) = (Vec::new(), Vec::new());
    for (i, r) in field.labelled.iter().enumerate() {
        if i % 4 == 3 {
            holdout.push(r.clone());
        } else {
            stream.push(r.clone());
        }
    }
    let field_holdout = dir.join("field_holdout.jsonl");
    write_records(&field_holdout, &holdout)?;
    write_records(&dir.join("field_stream.jsonl"), &stream)?;

    // Tokenizer: BPE on the lab training text (never the test or field text).
    let mut texts: Vec<String> = jobs::read_texts(&train)?
        .into_iter()
        .map(|r| r.text)
        .collect();
    texts.extend(lab.pretrain.iter().cloned());
    let tokenizer = Tokenizer::train_bpe(
        texts.iter(),
        &BpeConfig {
            vocab_size: sz.vocab,
            min_frequency: 2,
        },
    )
    .context("training the BPE tokenizer")?;
    let tokenizer_path = dir.join("tokenizer.json");
    tokenizer.save(&tokenizer_path)?;

    let summary = DataSummary {
        lab_train: count(&train)?,
        lab_val: count(&val)?,
        lab_test: count(&test)?,
        field_stream: stream.len(),
        field_holdout: holdout.len(),
        removed,
        vocab: tokenizer.vocab_size(),
        labels: corpus::labels().iter().map(|s| s.to_string()).collect(),
    };
    crate::say!(
        "selected: train {} / val {} / test {} ({} removed); field: stream {} / held out {}; BPE vocabulary {}",
        summary.lab_train,
        summary.lab_val,
        summary.lab_test,
        summary.removed,
        summary.field_stream,
        summary.field_holdout,
        summary.vocab
    );
    Ok(Data {
        train,
        val,
        test,
        pretrain: (pre_train, pre_val),
        field_stream: stream,
        field_holdout,
        tokenizer,
        summary,
    })
}

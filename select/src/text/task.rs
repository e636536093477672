//! The text task: a labelled data set in the trainer's format (`train.jsonl`, `val.jsonl`,
//! `test.jsonl` of `{"text", "label"}` records, as the data stage writes them) for a
//! classification head, and the tokenizers the candidates use (a byte-level BPE retrained on
//! the training texts at each vocabulary size of the space).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use edgeloop_quantize::tensor::Tensor as QTensor;
use edgeloop_quantize::Dataset;
use edgeloop_trainer::data::Record;
use edgeloop_trainer::tokenizer::{BpeConfig, Tokenizer};
use edgeloop_trainer::train::jobs;

use crate::error::{Result, SelectError};

/// Name of the token-id input of the exported classifiers.
pub const INPUT: &str = "input_ids";

/// A classification task on labelled texts.
#[derive(Debug, Clone)]
pub struct TextTask {
    /// `train.jsonl` (the trainer reads it again when it trains a candidate).
    pub train_path: PathBuf,
    /// `val.jsonl`.
    pub val_path: PathBuf,
    /// Training records.
    pub train: Vec<Record>,
    /// Validation records (what the front ranks on).
    pub val: Vec<Record>,
    /// Test records (the winner's final numbers).
    pub test: Vec<Record>,
    /// Class names, sorted (the trainer's output order).
    pub labels: Vec<String>,
}

impl TextTask {
    /// Loads `dir/train.jsonl`, `dir/val.jsonl` and `dir/test.jsonl`. Every record needs a
    /// label; validation and test labels must occur in the training set; at least 2 classes.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<(PathBuf, Vec<Record>)> {
            let p = dir.join(name);
            if !p.is_file() {
                return Err(SelectError::Config(format!(
                    "{}: missing (a text task is a folder with train.jsonl, val.jsonl and test.jsonl)",
                    p.display()
                )));
            }
            let r = jobs::read_texts(&p)?;
            Ok((p, r))
        };
        let (train_path, train) = read("train.jsonl")?;
        let (val_path, val) = read("val.jsonl")?;
        let (_, test) = read("test.jsonl")?;
        let mut labels: Vec<String> = Vec::new();
        for (i, r) in train.iter().enumerate() {
            match &r.label {
                Some(l) => labels.push(l.clone()),
                None => {
                    return Err(SelectError::Config(format!(
                        "{}: record {} has no label",
                        train_path.display(),
                        i + 1
                    )))
                }
            }
        }
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return Err(SelectError::Config(format!(
                "{}: need at least 2 distinct labels, found {}",
                train_path.display(),
                labels.len()
            )));
        }
        for (name, set) in [("val.jsonl", &val), ("test.jsonl", &test)] {
            for (i, r) in set.iter().enumerate() {
                let ok = r
                    .label
                    .as_ref()
                    .is_some_and(|l| labels.binary_search(l).is_ok());
                if !ok {
                    return Err(SelectError::Config(format!(
                        "{}: record {} has no label or one the training set lacks ({:?})",
                        dir.join(name).display(),
                        i + 1,
                        r.label
                    )));
                }
            }
        }
        Ok(TextTask {
            train_path,
            val_path,
            train,
            val,
            test,
            labels,
        })
    }

    /// Class index of `r` (checked at load).
    fn class(&self, r: &Record) -> u32 {
        r.label
            .as_ref()
            .and_then(|l| self.labels.binary_search(l).ok())
            .unwrap_or(0) as u32
    }

    /// Encodes `records` as the trainer does for a fixed-length classifier: tokens cut to
    /// `context` and padded to it with the pad token; records with no tokens are an error.
    pub fn encode(
        &self,
        tok: &Tokenizer,
        records: &[Record],
        context: usize,
    ) -> Result<Vec<(Vec<u32>, u32)>> {
        let pad = tok.specials().pad.unwrap_or(0);
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut ids = tok
                    .encode(&r.text)
                    .map_err(|e| SelectError::Config(format!("tokenizer: {e}")))?;
                if ids.is_empty() {
                    return Err(SelectError::Config(format!(
                        "record {} ({:?}) has no tokens",
                        i + 1,
                        r.text
                    )));
                }
                ids.truncate(context);
                ids.resize(context, pad);
                Ok((ids, self.class(r)))
            })
            .collect()
    }
}

/// Byte-level BPE tokenizers retrained on the task's training texts, one per target vocabulary
/// size (its actual size can be smaller when the texts have fewer merges to offer).
pub fn tokenizers(task: &TextTask, vocabs: &[usize]) -> Result<BTreeMap<usize, Tokenizer>> {
    let mut out = BTreeMap::new();
    for &v in vocabs {
        if out.contains_key(&v) {
            continue;
        }
        let tok = Tokenizer::train_bpe(
            task.train.iter().map(|r| r.text.as_str()),
            &BpeConfig {
                vocab_size: v,
                min_frequency: 1,
            },
        )
        .map_err(|e| SelectError::Config(format!("training a BPE of {v} tokens: {e}")))?;
        out.insert(v, tok);
    }
    Ok(out)
}

/// A calibration set of `n` encoded rows spread evenly over `rows`.
pub fn calibration(rows: &[(Vec<u32>, u32)], n: usize) -> Result<Dataset> {
    let n = n.min(rows.len());
    if n == 0 {
        return Err(SelectError::Config(
            "no texts to calibrate the quantizer with".into(),
        ));
    }
    let mut samples = Vec::with_capacity(n);
    for k in 0..n {
        let ids = &rows[k * rows.len() / n].0;
        let t = QTensor::i64(vec![1, ids.len()], ids.iter().map(|&v| v as i64).collect())?;
        samples.push(HashMap::from([(INPUT.to_string(), t)]));
    }
    Ok(Dataset { samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, rows: &[(&str, Option<&str>)]) {
        let mut s = String::new();
        for (t, l) in rows {
            let r = match l {
                Some(l) => Record::labelled(*t, *l, []),
                None => Record::text(*t),
            };
            s.push_str(&serde_json::to_string(&r).unwrap());
            s.push('\n');
        }
        std::fs::write(dir.join(name), s).unwrap();
    }

    #[test]
    fn loads_encodes_and_checks_labels() {
        let dir = std::env::temp_dir().join(format!("edgeloop-select-task-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let train = [
            ("turn on the light", Some("on")),
            ("switch off the fan", Some("off")),
            ("lights on please", Some("on")),
        ];
        write(&dir, "train.jsonl", &train);
        write(&dir, "val.jsonl", &[("fan off", Some("off"))]);
        write(&dir, "test.jsonl", &[("light on", Some("on"))]);
        let t = TextTask::load(&dir).unwrap();
        assert_eq!(t.labels, vec!["off", "on"]);
        let toks = tokenizers(&t, &[300, 300]).unwrap();
        assert_eq!(toks.len(), 1);
        let tok = &toks[&300];
        assert!(tok.vocab_size() <= 300);
        let rows = t.encode(tok, &t.train, 4).unwrap();
        assert!(rows.iter().all(|(ids, _)| ids.len() == 4));
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1, 0, 1]);
        let c = calibration(&rows, 2).unwrap();
        assert_eq!(c.samples.len(), 2);
        assert!(calibration(&[], 2).is_err());
        // A validation label the training set lacks, and a missing split, are named.
        write(&dir, "val.jsonl", &[("fan off", Some("dim"))]);
        let e = TextTask::load(&dir).unwrap_err().to_string();
        assert!(e.contains("val.jsonl") && e.contains("dim"), "{e}");
        std::fs::remove_file(dir.join("test.jsonl")).unwrap();
        let e = TextTask::load(&dir).unwrap_err().to_string();
        assert!(e.contains("test.jsonl"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The dataset card: every pipeline step with its counts, per-source and per-split
//! statistics, bad input, PII, the length histogram and the baseline, written as
//! `card.json`, `card.md` and `length_hist.png`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::baseline::BaselineReport;
use super::error::{DataError, Result};
use super::minhash::LshParams;
use super::pii::PiiCounts;

/// Counts of one pipeline step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Step name.
    pub name: String,
    /// Records entering the step.
    pub input: u64,
    /// Records removed by the step.
    pub removed: u64,
    /// Records whose text the step changed.
    pub modified: u64,
    /// Records leaving the step.
    pub output: u64,
    /// Per-reason breakdown (filters, PII kinds, bad-record kinds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, u64>,
    /// What the step does.
    pub note: String,
}

/// Statistics of one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStats {
    /// Path or stream name.
    pub name: String,
    /// Layout.
    pub format: String,
    /// Mixture weight as given.
    pub weight: f64,
    /// Target share (weight normalized over sources).
    pub target_share: f64,
    /// Sampling probability applied to its valid records.
    pub sampling_rate: f64,
    /// Valid records read.
    pub records: u64,
    /// Bad records (skipped with `skip_bad`).
    pub bad_records: u64,
    /// Blank lines (no record).
    pub blank_lines: u64,
    /// Records of this source in the output.
    pub kept: u64,
    /// Share of the output coming from this source.
    pub achieved_share: f64,
}

/// Statistics of one output split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Output file.
    pub file: String,
    /// Records.
    pub records: u64,
    /// Characters.
    pub chars: u64,
    /// Records per label (`<none>` for unlabelled).
    pub labels: BTreeMap<String, u64>,
    /// Records per slice tag value (`tag=value`).
    pub slices: BTreeMap<String, u64>,
}

/// Near-duplicate detection settings and counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NearDupStats {
    /// Whether near-duplicates are removed (else only kept in one split).
    pub remove: bool,
    /// Estimated Jaccard similarity at or above which a record is a near-duplicate.
    pub threshold: f64,
    /// Similarity at or above which a record joins the split of its match.
    pub split_threshold: f64,
    /// MinHash permutations.
    pub num_perm: usize,
    /// Character shingle size.
    pub shingle: usize,
    /// LSH layout.
    pub lsh: Option<LshParams>,
    /// Records that inherited the split of a similar earlier record.
    pub inherited_split: u64,
    /// Queries whose candidate chain was cut (possible missed matches).
    pub truncated_queries: u64,
}

/// Histogram of record lengths (characters) in fixed power-of-two bins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LengthHistogram {
    /// Lower edges of the bins (characters): 0, 1, 2, 4, 8, ...
    pub bin_edges: Vec<u64>,
    /// Records per bin.
    pub counts: Vec<u64>,
    /// Mean length.
    pub mean: f64,
    /// Largest length.
    pub max: u64,
    /// The PNG beside the card (drawn from a uniform reservoir sample of lengths).
    pub png: Option<String>,
}

impl LengthHistogram {
    /// Counts one length.
    pub fn add(&mut self, len: u64) {
        if self.bin_edges.is_empty() {
            self.bin_edges = std::iter::once(0)
                .chain((0..32).map(|i| 1u64 << i))
                .collect();
            self.counts = vec![0; self.bin_edges.len()];
        }
        let bin = if len == 0 {
            0
        } else {
            1 + (63 - len.leading_zeros() as usize).min(31)
        };
        self.counts[bin] += 1;
        let n: u64 = self.counts.iter().sum();
        self.mean += (len as f64 - self.mean) / n as f64;
        self.max = self.max.max(len);
    }
}

/// Bad records seen (only with `skip_bad`; without it the first one is an error).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BadRecords {
    /// Total skipped.
    pub total: u64,
    /// Per kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The first few, as `file:line: reason`.
    pub examples: Vec<String>,
}

/// The dataset card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetCard {
    /// Dataset name.
    pub name: String,
    /// Tool and version that produced it.
    pub produced_by: String,
    /// Settings, as given.
    pub config: serde_json::Value,
    /// Per source.
    pub sources: Vec<SourceStats>,
    /// Pipeline steps, in order.
    pub steps: Vec<StepStats>,
    /// Skipped bad records.
    pub bad_records: BadRecords,
    /// PII replaced.
    pub pii: PiiCounts,
    /// Near-duplicate settings and counters.
    pub near_dup: NearDupStats,
    /// Per output split.
    pub splits: BTreeMap<String, SplitStats>,
    /// Lengths of the output records.
    pub length_histogram: LengthHistogram,
    /// Bag-of-words baseline (labelled data only).
    pub baseline: Option<BaselineReport>,
    /// Why there is no baseline, when there is none.
    pub baseline_note: Option<String>,
    /// The memory bound of the streaming pipeline, stated.
    pub memory_bound: String,
}

fn table_row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

impl DatasetCard {
    /// Renders the card as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Dataset card: {}\n", self.name);
        let _ = writeln!(s, "Produced by {}.\n", self.produced_by);
        let total: u64 = self.splits.values().map(|v| v.records).sum();
        let _ = writeln!(s, "**{total} records** in the output.\n");
        s.push_str("## Pipeline\n\n| step | in | removed | modified | out | detail | what it does |\n|---|---:|---:|---:|---:|---|---|\n");
        for st in &self.steps {
            let detail = st
                .detail
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            s.push_str(&table_row(&[
                st.name.clone(),
                st.input.to_string(),
                st.removed.to_string(),
                st.modified.to_string(),
                st.output.to_string(),
                detail,
                st.note.clone(),
            ]));
        }
        s.push_str("\n## Sources\n\n| source | format | weight | target share | sampling rate | records | bad | blank lines | kept | achieved share |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for so in &self.sources {
            s.push_str(&table_row(&[
                so.name.clone(),
                so.format.clone(),
                format!("{}", so.weight),
                format!("{:.3}", so.target_share),
                format!("{:.3}", so.sampling_rate),
                so.records.to_string(),
                so.bad_records.to_string(),
                so.blank_lines.to_string(),
                so.kept.to_string(),
                format!("{:.3}", so.achieved_share),
            ]));
        }
        s.push_str("\n## Splits\n\n| split | file | records | characters | labels | slices |\n|---|---|---:|---:|---:|---:|\n");
        for (name, sp) in &self.splits {
            s.push_str(&table_row(&[
                name.clone(),
                sp.file.clone(),
                sp.records.to_string(),
                sp.chars.to_string(),
                sp.labels.len().to_string(),
                sp.slices.len().to_string(),
            ]));
        }
        let mut labels: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
        for (i, name) in ["train", "val", "test"].iter().enumerate() {
            if let Some(sp) = self.splits.get(*name) {
                for (l, c) in &sp.labels {
                    labels.entry(l).or_default()[i] = *c;
                }
            }
        }
        if !labels.is_empty() {
            s.push_str("\n### Labels\n\n| label | train | val | test |\n|---|---:|---:|---:|\n");
            for (l, c) in &labels {
                s.push_str(&table_row(&[
                    l.to_string(),
                    c[0].to_string(),
                    c[1].to_string(),
                    c[2].to_string(),
                ]));
            }
        }
        let mut slices: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
        for (i, name) in ["train", "val", "test"].iter().enumerate() {
            if let Some(sp) = self.splits.get(*name) {
                for (l, c) in &sp.slices {
                    slices.entry(l).or_default()[i] = *c;
                }
            }
        }
        if !slices.is_empty() {
            s.push_str("\n### Slices\n\n| slice | train | val | test |\n|---|---:|---:|---:|\n");
            for (l, c) in &slices {
                s.push_str(&table_row(&[
                    l.to_string(),
                    c[0].to_string(),
                    c[1].to_string(),
                    c[2].to_string(),
                ]));
            }
        }
        let nd = &self.near_dup;
        let _ = writeln!(
            s,
            "\n## Near-duplicates\n\nMinHash ({} permutations, {}-character shingles), LSH {}; a record with estimated Jaccard ≥ {} to a kept record is {}; a record with similarity ≥ {} joins its match's split ({} did), so no near-duplicate pair crosses splits. Truncated candidate chains: {}.",
            nd.num_perm,
            nd.shingle,
            nd.lsh.map(|p| format!("{} bands × {} rows", p.bands, p.rows)).unwrap_or_else(|| "off".into()),
            nd.threshold,
            if nd.remove { "removed" } else { "kept" },
            nd.split_threshold,
            nd.inherited_split,
            nd.truncated_queries
        );
        let _ = writeln!(
            s,
            "\n## PII\n\nReplaced: {} e-mail, {} phone, {} IP, {} card (Luhn-valid).",
            self.pii.email, self.pii.phone, self.pii.ip, self.pii.card
        );
        let _ = writeln!(
            s,
            "\n## Bad input\n\n{} bad records skipped.",
            self.bad_records.total
        );
        for (k, v) in &self.bad_records.by_kind {
            let _ = writeln!(s, "- {k}: {v}");
        }
        if !self.bad_records.examples.is_empty() {
            s.push_str("\nFirst ones:\n\n");
            for e in &self.bad_records.examples {
                let _ = writeln!(s, "- `{e}`");
            }
        }
        let h = &self.length_histogram;
        let _ = writeln!(
            s,
            "\n## Lengths\n\nMean {:.1} characters, max {}.",
            h.mean, h.max
        );
        if let Some(png) = &h.png {
            let _ = writeln!(s, "\n![length histogram]({png})");
        }
        s.push_str("\n## Bag-of-words baseline\n\n");
        match (&self.baseline, &self.baseline_note) {
            (Some(b), _) => {
                let _ = writeln!(
                    s,
                    "{}: logistic regression on word presence ({} features, {} classes), {} training and {} evaluation examples. Accuracy: train {:.1}%, **eval {:.1}%** (majority class {:.1}%).",
                    b.description,
                    b.features,
                    b.classes,
                    b.train_examples,
                    b.eval_examples,
                    100.0 * b.train_accuracy,
                    100.0 * b.eval_accuracy,
                    100.0 * b.majority_accuracy
                );
            }
            (None, Some(n)) => {
                let _ = writeln!(s, "{n}");
            }
            (None, None) => s.push_str("Not computed.\n"),
        }
        let _ = writeln!(s, "\n## Memory bound\n\n{}", self.memory_bound);
        s
    }

    /// Writes `card.json` and `card.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| DataError::Report {
            path: dir.join("card.json"),
            message: e.to_string(),
        })?;
        std::fs::write(dir.join("card.json"), json)
            .map_err(|e| DataError::io(dir.join("card.json"), e))?;
        std::fs::write(dir.join("card.md"), self.to_markdown())
            .map_err(|e| DataError::io(dir.join("card.md"), e))?;
        Ok(())
    }
}

/// Draws a histogram PNG of `lengths` (characters) with the eval crate's plotting.
pub fn length_histogram_png(path: &Path, title: &str, lengths: &[f64]) -> Result<()> {
    use edgeloop_eval::plot::{histogram_png, ChartOptions};
    let opts = ChartOptions::new(title)
        .x_label("length (characters)")
        .y_label("records");
    histogram_png(path, &opts, lengths, 40).map_err(|e| DataError::Report {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_are_powers_of_two() {
        let mut h = LengthHistogram::default();
        for l in [0, 1, 2, 3, 4, 100] {
            h.add(l);
        }
        assert_eq!(&h.counts[..4], &[1, 1, 2, 1]);
        assert_eq!(h.counts[7], 1); // 100 is in [64, 128)
        assert_eq!(h.max, 100);
        assert!((h.mean - 110.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn markdown_lists_steps() {
        let card = DatasetCard {
            name: "t".into(),
            steps: vec![StepStats {
                name: "exact_dedup".into(),
                input: 3,
                removed: 1,
                output: 2,
                ..StepStats::default()
            }],
            ..DatasetCard::default()
        };
        let md = card.to_markdown();
        assert!(md.contains("| exact_dedup | 3 | 1 | 0 | 2 |"), "{md}");
    }
}

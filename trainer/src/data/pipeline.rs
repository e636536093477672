//! `select`: the streaming selection pipeline.
//!
//! Per record, in order: read (bad records are an error, or skipped and counted with
//! `skip_bad`) → mixture sampling → Unicode normalization → PII scrubbing → quality filters →
//! exact dedup (64-bit xxh3 of the normalized text) → near-duplicate removal (MinHash + LSH) →
//! split (content hash; near-duplicates inherit their match's split) → append to
//! `train.jsonl`/`val.jsonl`/`test.jsonl`. PII is scrubbed before deduplication so that two
//! records differing only in an e-mail address count as duplicates.
//!
//! Memory is bounded independently of the corpus size in bytes: one record at a time, buffered
//! writers, a reservoir of at most 50,000 lengths, label/slice counters, and per *kept* record
//! a fingerprint: 8 bytes of exact hash (~16 bytes with table overhead) plus the LSH entry
//! (`2 * num_perm` bytes of truncated signature and ~20 bytes per band). With the defaults that
//! is under 1 KB per kept record whatever its length; [`memory_bound`] gives the formula.
//! Mixture sampling with several sources reads each source twice (a counting pass first).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::baseline::{self, BaselineConfig};
use super::card::{
    length_histogram_png, BadRecords, DatasetCard, LengthHistogram, NearDupStats, SourceStats,
    SplitStats, StepStats,
};
use super::error::{DataError, Result};
use super::filters::{self, QualityConfig};
use super::minhash::{shingles, LshIndex, LshParams, MinHasher};
use super::normalize::{normalize, Normalization};
use super::pii::{scrub, PiiCounts};
use super::record::Record;
use super::source::{FieldNames, RecordReader, SourceSpec};
use super::split::{Split, SplitConfig};

/// Near-duplicate settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NearDupConfig {
    /// Remove near-duplicates (else keep them, but in their match's split).
    pub remove: bool,
    /// Jaccard similarity (estimated) at or above which a record is a near-duplicate.
    pub threshold: f64,
    /// Similarity at or above which a record joins its match's split; at most `threshold`.
    /// The LSH layout is tuned to this value, so pairs at `threshold` are found reliably.
    pub split_threshold: f64,
    /// MinHash permutations.
    pub num_perm: usize,
    /// Character shingle size.
    pub shingle: usize,
}

impl Default for NearDupConfig {
    fn default() -> Self {
        NearDupConfig {
            remove: true,
            threshold: 0.8,
            split_threshold: 0.6,
            num_perm: 128,
            shingle: 5,
        }
    }
}

/// Everything `select` needs.
#[derive(Debug, Clone)]
pub struct SelectConfig {
    /// Dataset name (card title).
    pub name: String,
    /// Inputs with mixture weights.
    pub sources: Vec<SourceSpec>,
    /// Field/column names.
    pub fields: FieldNames,
    /// Output folder (created).
    pub out_dir: PathBuf,
    /// Skip and count bad records instead of failing on the first.
    pub skip_bad: bool,
    /// Unicode normal form.
    pub normalization: Normalization,
    /// Scrub PII.
    pub pii: bool,
    /// Quality filters.
    pub quality: QualityConfig,
    /// Remove exact duplicates.
    pub exact_dedup: bool,
    /// Near-duplicate handling (`None`: no MinHash at all, splits by content hash only).
    pub near_dup: Option<NearDupConfig>,
    /// Split fractions.
    pub split: SplitConfig,
    /// Seed for sampling, MinHash and split hashing.
    pub seed: u64,
    /// Train the bag-of-words baseline when the output is labelled and has at most this many
    /// train+test records (0 disables it).
    pub baseline_max_records: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl SelectConfig {
    /// Defaults for `sources` written to `out_dir`.
    pub fn new(sources: Vec<SourceSpec>, out_dir: impl Into<PathBuf>) -> Self {
        SelectConfig {
            name: "selection".into(),
            sources,
            fields: FieldNames::default(),
            out_dir: out_dir.into(),
            skip_bad: false,
            normalization: Normalization::Nfkc,
            pii: true,
            quality: QualityConfig::default(),
            exact_dedup: true,
            near_dup: Some(NearDupConfig::default()),
            split: SplitConfig::default(),
            seed: 0,
            baseline_max_records: 200_000,
            progress: false,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.sources.is_empty() {
            return Err(DataError::config("input", "give at least one input"));
        }
        self.split.validate()?;
        if let Some(nd) = &self.near_dup {
            if !(0.0..=1.0).contains(&nd.threshold) || !(0.0..=1.0).contains(&nd.split_threshold) {
                return Err(DataError::config(
                    "jaccard",
                    "thresholds must be within [0, 1]",
                ));
            }
            if nd.split_threshold > nd.threshold {
                return Err(DataError::config(
                    "split_threshold",
                    "must not exceed the near-duplicate threshold",
                ));
            }
            if nd.num_perm == 0 || nd.num_perm > 1024 || nd.shingle == 0 {
                return Err(DataError::config(
                    "num_perm",
                    "num_perm must be in 1..=1024 and shingle > 0",
                ));
            }
        }
        if self.quality.min_chars > self.quality.max_chars {
            return Err(DataError::config(
                "min_chars",
                "min_chars exceeds max_chars",
            ));
        }
        Ok(())
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "sources": self.sources.iter().map(|s| serde_json::json!({
                "input": s.input.name().display().to_string(),
                "weight": s.weight,
                "format": s.format,
            })).collect::<Vec<_>>(),
            "fields": self.fields,
            "skip_bad": self.skip_bad,
            "normalization": self.normalization,
            "pii": self.pii,
            "quality": self.quality,
            "exact_dedup": self.exact_dedup,
            "near_dup": self.near_dup,
            "split": self.split,
            "seed": self.seed,
        })
    }
}

/// What `select` produced.
#[derive(Debug, Clone)]
pub struct SelectionReport {
    /// The card (also written to `card.json`/`card.md`).
    pub card: DatasetCard,
    /// Output files per split.
    pub files: BTreeMap<Split, PathBuf>,
    /// The card files and the histogram PNG.
    pub card_files: Vec<PathBuf>,
}

/// The stated memory bound, in bytes, for `kept` output records.
pub fn memory_bound(kept: u64, near_dup: Option<&NearDupConfig>) -> u64 {
    let fixed: u64 = 8 << 20; // buffers, reservoir (400 KB), counters, one record
    let exact = 32;
    let lsh = near_dup
        .map(|nd| {
            let p = LshParams::optimal(nd.split_threshold, nd.num_perm);
            2 * nd.num_perm as u64 + 40 * p.bands as u64
        })
        .unwrap_or(0);
    fixed + kept * (exact + lsh)
}

const RESERVOIR: usize = 50_000;
const BAD_EXAMPLES: usize = 20;

struct Step {
    stats: StepStats,
}

impl Step {
    fn new(name: &str, note: &str) -> Self {
        Step {
            stats: StepStats {
                name: name.into(),
                note: note.into(),
                ..StepStats::default()
            },
        }
    }
    fn pass(&mut self) {
        self.stats.input += 1;
        self.stats.output += 1;
    }
    fn remove(&mut self, reason: Option<&str>) {
        self.stats.input += 1;
        self.stats.removed += 1;
        if let Some(r) = reason {
            *self.stats.detail.entry(r.into()).or_default() += 1;
        }
    }
}

/// Runs the pipeline; writes the splits and the card into `cfg.out_dir`.
pub fn select(cfg: &SelectConfig) -> Result<SelectionReport> {
    cfg.validate()?;
    let out = &cfg.out_dir;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;

    // Mixture: target shares and per-source sampling rates (a counting pass when needed).
    let total_w: f64 = cfg.sources.iter().map(|s| s.weight).sum();
    let shares: Vec<f64> = cfg.sources.iter().map(|s| s.weight / total_w).collect();
    let mut rates = vec![1.0f64; cfg.sources.len()];
    if cfg.sources.len() > 1 {
        let mut counts = Vec::new();
        for s in &cfg.sources {
            let mut r = RecordReader::open(s, &cfg.fields)?;
            let mut n = 0u64;
            while let Some(it) = r.next_item()? {
                if it.record.is_ok() {
                    n += 1;
                }
            }
            counts.push(n);
        }
        // The largest total N such that every source can supply share_i * N records.
        // Sources without any valid record (skipped empty files) do not limit the others.
        let n_total = counts
            .iter()
            .zip(&shares)
            .filter(|(&c, _)| c > 0)
            .map(|(&c, &w)| c as f64 / w)
            .fold(f64::INFINITY, f64::min);
        for i in 0..rates.len() {
            rates[i] = if counts[i] == 0 {
                0.0
            } else {
                (shares[i] * n_total / counts[i] as f64).min(1.0)
            };
        }
    }
    let total_bytes: Option<u64> = cfg
        .sources
        .iter()
        .map(|s| match &s.input {
            super::source::SourceInput::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            _ => None,
        })
        .sum();

    let bar = if cfg.progress {
        ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} select [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut writers: BTreeMap<Split, BufWriter<File>> = BTreeMap::new();
    let mut files = BTreeMap::new();
    for s in Split::ALL {
        let p = out.join(format!("{}.jsonl", s.name()));
        let f = File::create(&p).map_err(|e| DataError::io(&p, e))?;
        writers.insert(s, BufWriter::with_capacity(1 << 16, f));
        files.insert(s, p);
    }

    let mut read = Step::new(
        "read",
        "parse records; bad ones fail or are skipped and counted (--skip-bad)",
    );
    let mut sample = Step::new(
        "mixture_sampling",
        "keep each record of source i with its sampling rate (seeded hash)",
    );
    let mut norm = Step::new(
        "unicode_normalization",
        "Unicode normal form, whitespace and control characters",
    );
    let mut pii_step = Step::new(
        "pii_scrub",
        "replace e-mail, phone, IP and Luhn-valid card numbers",
    );
    let mut quality = Step::new(
        "quality_filters",
        "length bounds, symbol/alpha ratios, repeated lines and n-grams",
    );
    let mut exact = Step::new(
        "exact_dedup",
        "drop records whose normalized text was already kept (xxh3-64)",
    );
    let mut near = Step::new(
        "near_dedup",
        "drop records whose estimated Jaccard to a kept record reaches the threshold, and records similar to kept records of two different splits (MinHash + LSH)",
    );
    let mut split_step = Step::new(
        "split",
        "train/val/test by content hash; near-duplicates join their match's split",
    );

    let mut source_stats: Vec<SourceStats> = cfg
        .sources
        .iter()
        .zip(&shares)
        .zip(&rates)
        .map(|((s, &share), &rate)| SourceStats {
            name: s.input.name().display().to_string(),
            format: format!("{:?}", s.format).to_lowercase(),
            weight: s.weight,
            target_share: share,
            sampling_rate: rate,
            ..SourceStats::default()
        })
        .collect();
    let mut bad = BadRecords::default();
    let mut pii_total = PiiCounts::default();
    let mut seen: HashSet<u64> = HashSet::new();
    let hasher = cfg
        .near_dup
        .map(|nd| MinHasher::new(nd.num_perm, cfg.seed ^ 0x005e_ed0f_4d1f));
    let mut index = cfg.near_dup.map(|nd| {
        LshIndex::new(
            LshParams::optimal(nd.split_threshold, nd.num_perm),
            nd.num_perm,
        )
    });
    let mut inherited = 0u64;
    let mut split_stats: BTreeMap<Split, SplitStats> = BTreeMap::new();
    let mut hist = LengthHistogram::default();
    let mut reservoir: Vec<f64> = Vec::new();
    let mut res_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x4e5e_4701);
    let mut kept_total = 0u64;
    let mut bytes_done = 0u64;

    for (si, spec) in cfg.sources.iter().enumerate() {
        let mut reader = RecordReader::open(spec, &cfg.fields)?;
        let mut last_bytes = 0u64;
        while let Some(item) = reader.next_item()? {
            bytes_done += reader.bytes_read - last_bytes;
            last_bytes = reader.bytes_read;
            if kept_total.is_multiple_of(1024) {
                bar.set_position(bytes_done);
                bar.set_message(format!("{kept_total} kept"));
            }
            let rec = match item.record {
                Ok(r) => {
                    read.pass();
                    source_stats[si].records += 1;
                    r
                }
                Err(kind) => {
                    if !cfg.skip_bad {
                        bar.finish_and_clear();
                        return Err(DataError::BadRecord {
                            path: reader.name().to_path_buf(),
                            line: item.line,
                            kind,
                        });
                    }
                    read.remove(Some(kind_name(&kind)));
                    source_stats[si].bad_records += 1;
                    bad.total += 1;
                    *bad.by_kind.entry(kind_name(&kind).into()).or_default() += 1;
                    if bad.examples.len() < BAD_EXAMPLES {
                        bad.examples.push(format!(
                            "{}:{}: {}",
                            reader.name().display(),
                            item.line,
                            kind
                        ));
                    }
                    continue;
                }
            };
            // Mixture sampling.
            let rate = rates[si];
            if rate < 1.0 {
                let h = xxh3_64_with_seed(
                    &[si as u64, item.line].map(u64::to_le_bytes).concat(),
                    cfg.seed,
                );
                let u = (h >> 11) as f64 / (1u64 << 53) as f64;
                if u >= rate {
                    sample.remove(None);
                    continue;
                }
            }
            sample.pass();
            let mut rec = rec;
            // Normalization.
            let n = normalize(&rec.text, cfg.normalization);
            norm.pass();
            if n != rec.text {
                norm.stats.modified += 1;
                rec.text = n;
            }
            // PII.
            if cfg.pii {
                let (t, c) = scrub(&rec.text);
                pii_step.pass();
                if c.total() > 0 {
                    pii_step.stats.modified += 1;
                    pii_total.add(&c);
                    rec.text = t;
                }
            }
            // Quality.
            if let Some(reason) = filters::check(&rec.text, &cfg.quality) {
                quality.remove(Some(reason));
                continue;
            }
            quality.pass();
            // Exact dedup.
            let content_hash = xxh3_64(rec.text.as_bytes());
            if cfg.exact_dedup {
                if !seen.insert(content_hash) {
                    exact.remove(None);
                    continue;
                }
                exact.pass();
            }
            // Near dedup and split.
            let mut split = cfg.split.assign(content_hash, cfg.seed);
            if let (Some(nd), Some(h), Some(idx)) = (&cfg.near_dup, &hasher, index.as_mut()) {
                let sig = h.signature(&shingles(&rec.text, nd.shingle));
                let ms = idx.matches(&sig, nd.split_threshold);
                if let Some(m) = ms.first() {
                    if nd.remove && m.similarity >= nd.threshold {
                        near.remove(Some("near_duplicate"));
                        continue;
                    }
                    // Similar records already sit in two splits: keeping this one would put a
                    // near-duplicate pair across splits whichever split it joins.
                    if ms.iter().any(|o| o.tag != m.tag) {
                        near.remove(Some("split_conflict"));
                        continue;
                    }
                    let s = Split::from_index(m.tag);
                    if s != split {
                        inherited += 1;
                    }
                    split = s;
                }
                near.pass();
                idx.insert(&sig, split.index());
            }
            split_step.pass();
            *split_step
                .stats
                .detail
                .entry(split.name().into())
                .or_default() += 1;
            // Write.
            let w = writers
                .get_mut(&split)
                .ok_or_else(|| DataError::config("split", "internal"))?;
            let line = serde_json::to_string(&rec).map_err(|e| DataError::Report {
                path: files[&split].clone(),
                message: e.to_string(),
            })?;
            w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| DataError::io(&files[&split], e))?;
            let st = split_stats.entry(split).or_default();
            st.records += 1;
            let chars = rec.text.chars().count() as u64;
            st.chars += chars;
            *st.labels
                .entry(rec.label.clone().unwrap_or_else(|| "<none>".into()))
                .or_default() += 1;
            for (k, v) in &rec.slice {
                *st.slices.entry(format!("{k}={v}")).or_default() += 1;
            }
            hist.add(chars);
            kept_total += 1;
            source_stats[si].kept += 1;
            if reservoir.len() < RESERVOIR {
                reservoir.push(chars as f64);
            } else {
                let j = res_rng.gen_range(0..kept_total);
                if (j as usize) < RESERVOIR {
                    reservoir[j as usize] = chars as f64;
                }
            }
        }
        source_stats[si].blank_lines = reader.blank_lines;
    }
    for (s, mut w) in writers {
        w.flush().map_err(|e| DataError::io(&files[&s], e))?;
    }
    bar.finish_and_clear();

    for s in source_stats.iter_mut() {
        s.achieved_share = if kept_total == 0 {
            0.0
        } else {
            s.kept as f64 / kept_total as f64
        };
    }
    if kept_total == 0 {
        return Err(DataError::config(
            "input",
            "no record survived the pipeline; see the filters and the inputs",
        ));
    }

    let mut card_files = vec![out.join("card.json"), out.join("card.md")];
    let png = out.join("length_hist.png");
    length_histogram_png(&png, &format!("{}: record lengths", cfg.name), &reservoir)?;
    hist.png = Some("length_hist.png".into());
    card_files.push(png);

    let mut steps = vec![read, sample, norm];
    if cfg.pii {
        steps.push(pii_step);
    }
    steps.push(quality);
    if cfg.exact_dedup {
        steps.push(exact);
    }
    if cfg.near_dup.is_some() {
        steps.push(near);
    }
    steps.push(split_step);

    let nd_stats = match (&cfg.near_dup, &index) {
        (Some(nd), Some(idx)) => NearDupStats {
            remove: nd.remove,
            threshold: nd.threshold,
            split_threshold: nd.split_threshold,
            num_perm: nd.num_perm,
            shingle: nd.shingle,
            lsh: Some(idx.params()),
            inherited_split: inherited,
            truncated_queries: idx.truncated_queries,
        },
        _ => NearDupStats::default(),
    };
    let bound = memory_bound(kept_total, cfg.near_dup.as_ref());
    let mut card = DatasetCard {
        name: cfg.name.clone(),
        produced_by: format!("edgeloop-trainer {} data::select", env!("CARGO_PKG_VERSION")),
        config: cfg.summary(),
        sources: source_stats,
        steps: steps.into_iter().map(|s| s.stats).collect(),
        bad_records: bad,
        pii: pii_total,
        near_dup: nd_stats,
        splits: split_stats
            .into_iter()
            .map(|(s, mut st)| {
                st.file = format!("{}.jsonl", s.name());
                (s.name().to_string(), st)
            })
            .collect(),
        length_histogram: hist,
        baseline: None,
        baseline_note: None,
        memory_bound: format!(
            "Streaming: one record in memory at a time. Fingerprints of kept records: 32 B (exact hash){}; fixed part ≤ 8 MiB. For this run ({kept_total} kept records): ≤ {:.1} MiB, whatever the input size in bytes.",
            cfg.near_dup
                .map(|nd| format!(
                    " + {} B (LSH: {} × 2 B signature + 40 B × {} bands)",
                    2 * nd.num_perm as u64 + 40 * LshParams::optimal(nd.split_threshold, nd.num_perm).bands as u64,
                    nd.num_perm,
                    LshParams::optimal(nd.split_threshold, nd.num_perm).bands
                ))
                .unwrap_or_default(),
            bound as f64 / (1 << 20) as f64
        ),
    };
    add_baseline(&mut card, cfg, &files)?;
    card.write(out)?;
    Ok(SelectionReport {
        card,
        files,
        card_files,
    })
}

fn kind_name(k: &super::error::BadRecordKind) -> &'static str {
    use super::error::BadRecordKind::*;
    match k {
        InvalidUtf8 => "invalid_utf8",
        Json(_) => "malformed_json",
        MissingField(_) => "missing_field",
        WrongType { .. } => "wrong_type",
        Csv(_) => "malformed_csv",
        EmptyFile => "empty_file",
    }
}

/// Reads a JSONL file of records written by `select` (or any file in that format).
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let spec = SourceSpec {
        input: super::source::SourceInput::Path(path.to_path_buf()),
        weight: 1.0,
        format: super::source::Format::Jsonl,
    };
    let mut r = RecordReader::open(&spec, &FieldNames::default())?;
    let mut v = Vec::new();
    while let Some(it) = r.next_item()? {
        match it.record {
            Ok(rec) => v.push(rec),
            Err(super::error::BadRecordKind::EmptyFile) => {}
            Err(kind) => {
                return Err(DataError::BadRecord {
                    path: path.to_path_buf(),
                    line: it.line,
                    kind,
                })
            }
        }
    }
    Ok(v)
}

fn add_baseline(
    card: &mut DatasetCard,
    cfg: &SelectConfig,
    files: &BTreeMap<Split, PathBuf>,
) -> Result<()> {
    let labelled_train = card
        .splits
        .get("train")
        .map(|s| s.labels.keys().any(|l| l != "<none>"))
        .unwrap_or(false);
    if !labelled_train {
        card.baseline_note = Some("The output is unlabelled: no baseline.".into());
        return Ok(());
    }
    let n: u64 = card.splits.values().map(|s| s.records).sum();
    if cfg.baseline_max_records == 0 || n > cfg.baseline_max_records as u64 {
        card.baseline_note = Some(format!(
            "Skipped: {n} records exceed the baseline limit of {} (it holds the data in memory).",
            cfg.baseline_max_records
        ));
        return Ok(());
    }
    let train = read_jsonl(&files[&Split::Train])?;
    let mut eval_split = Split::Test;
    let mut eval = read_jsonl(&files[&Split::Test])?;
    if eval.is_empty() {
        eval_split = Split::Val;
        eval = read_jsonl(&files[&Split::Val])?;
    }
    let pairs = |v: &[Record]| -> Vec<(String, String)> {
        v.iter()
            .filter_map(|r| r.label.as_ref().map(|l| (r.text.clone(), l.clone())))
            .collect()
    };
    let (tr, ev) = (pairs(&train), pairs(&eval));
    if tr.is_empty() || ev.is_empty() {
        card.baseline_note = Some("Not enough labelled records in train and test/val.".into());
        return Ok(());
    }
    let tr_ref: Vec<(&str, &str)> = tr.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let ev_ref: Vec<(&str, &str)> = ev.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    card.baseline = Some(baseline::evaluate(
        format!("trained on train, evaluated on {}", eval_split.name()),
        &tr_ref,
        &ev_ref,
        &BaselineConfig {
            seed: cfg.seed,
            ..BaselineConfig::default()
        },
    ));
    Ok(())
}

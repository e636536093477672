//! The columnar store: Parquet files with Hive-style partitions, one table per record kind.
//!
//! ```text
//! <root>/<table>/date=YYYY-MM-DD/model_version=<u32>/device=0x<16 hex digits>/part-<ms>-<n>.parquet
//! ```
//!
//! `<table>` is `inference`, `feedback`, `drift_alarm` or `heartbeat`. `date` is the UTC date on
//! which the host received the frame (device ticks have no epoch). Partition values are not
//! repeated inside the files (Spark rejects a column present in both), so engines read them
//! from the path: `pyarrow.dataset.dataset(root / "inference", partitioning="hive")`,
//! DuckDB `read_parquet('<root>/inference/**/*.parquet', hive_partitioning = true)`.
//! The device id is hex with a `0x` prefix so every engine infers a string.
//!
//! Columns (all tables): `boot u32`, `seq u32`, `ticks u64`, `model_id u32`,
//! `received_at timestamp[ms, UTC]`; then
//! * inference: `class u16`, `confidence f64` (`confidence_q16 / 65536`, exact), `latency_ticks u32`,
//!   `input_len u32`, `input_min i32`, `input_max i32`, `input_mean f64`, `input_std f64`
//!   (`*_q8 / 256`, exact);
//! * feedback: `inference_seq u32`, `correction u16?`, `thumbs utf8?` (`up`/`down`),
//!   `sample list<i32>`;
//! * drift_alarm: `source utf8` (`input`/`predicted_class`), `psi f64`, `threshold f64`,
//!   `window_events u32`, `window_index u32`;
//! * heartbeat: `uptime_ticks u64`, `inferences u32`, `feedback u32`, `alarms u32`, `dropped u32`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, Float64Array, Int32Array, ListArray, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use edgeloop_runtime::telemetry::{DriftSource, Record, Thumbs};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::ingest::{Received, RecordKey};
use crate::{Error, Result};

/// Table names, in the order they are written.
pub const TABLES: [&str; 4] = ["inference", "feedback", "drift_alarm", "heartbeat"];

/// Where a row lives: the partition values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// UTC receive date, `YYYY-MM-DD`.
    pub date: String,
    /// Model version from the frame header.
    pub model_version: u32,
    /// Device id.
    pub device: u64,
}

/// Fields every row has.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// Partition values.
    pub partition: Partition,
    /// Boot counter.
    pub boot: u32,
    /// Sequence number within the boot.
    pub seq: u32,
    /// Device ticks.
    pub ticks: u64,
    /// Model id.
    pub model_id: u32,
    /// Host receive time, ms since the Unix epoch.
    pub received_at_ms: i64,
}

/// One inference row.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRow {
    /// Common fields.
    pub common: Common,
    /// Top-1 class.
    pub class: u16,
    /// Top-1 probability.
    pub confidence: f64,
    /// Latency in device ticks.
    pub latency_ticks: u32,
    /// Input length.
    pub input_len: u32,
    /// Input minimum.
    pub input_min: i32,
    /// Input maximum.
    pub input_max: i32,
    /// Input mean.
    pub input_mean: f64,
    /// Input standard deviation.
    pub input_std: f64,
}

/// One feedback row.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    /// Common fields.
    pub common: Common,
    /// The inference this feedback is about.
    pub inference_seq: u32,
    /// Corrected class.
    pub correction: Option<u16>,
    /// Thumbs up (`Some(true)`) or down (`Some(false)`).
    pub thumbs_up: Option<bool>,
    /// Sampled input values.
    pub sample: Vec<i32>,
}

/// Everything read back from a store (drift alarms and heartbeats are counted, not kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreData {
    /// Inference rows, in (received_at, device, boot, seq) order.
    pub inferences: Vec<InferenceRow>,
    /// Feedback rows, in the same order.
    pub feedback: Vec<FeedbackRow>,
    /// Number of drift-alarm rows.
    pub drift_alarms: usize,
    /// Number of heartbeat rows.
    pub heartbeats: usize,
}

/// Formats ms since the Unix epoch as a UTC `YYYY-MM-DD` date.
pub fn utc_date(ms: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn partition_dir(root: &Path, table: &str, p: &Partition) -> PathBuf {
    root.join(table)
        .join(format!("date={}", p.date))
        .join(format!("model_version={}", p.model_version))
        .join(format!("device=0x{:016x}", p.device))
}

fn common_fields() -> Vec<Field> {
    vec![
        Field::new("boot", DataType::UInt32, false),
        Field::new("seq", DataType::UInt32, false),
        Field::new("ticks", DataType::UInt64, false),
        Field::new("model_id", DataType::UInt32, false),
        Field::new(
            "received_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]
}

fn common_columns(rows: &[&Received]) -> Vec<ArrayRef> {
    let h = |f: fn(&Received) -> u32| {
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| f(r)))) as ArrayRef
    };
    vec![
        h(|r| r.frame.header.boot),
        h(|r| r.frame.header.seq),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.frame.header.ticks),
        )),
        h(|r| r.frame.header.model.id),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.received_at_ms))
                .with_timezone("UTC"),
        ),
    ]
}

fn batch_for(table: &str, rows: &[&Received]) -> std::result::Result<RecordBatch, String> {
    let mut fields = common_fields();
    let mut cols = common_columns(rows);
    let u32col = |f: &dyn Fn(&Record) -> u32| {
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| f(&r.frame.record)),
        )) as ArrayRef
    };
    match table {
        "inference" => {
            let inf = |r: &Record| match r {
                Record::Inference(i) => *i,
                _ => unreachable!("rows are grouped by kind"),
            };
            let f64col = |f: &dyn Fn(&Record) -> f64| {
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| f(&r.frame.record)),
                )) as ArrayRef
            };
            let i32col = |f: &dyn Fn(&Record) -> i32| {
                Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|r| f(&r.frame.record)),
                )) as ArrayRef
            };
            fields.extend([
                Field::new("class", DataType::UInt16, false),
                Field::new("confidence", DataType::Float64, false),
                Field::new("latency_ticks", DataType::UInt32, false),
                Field::new("input_len", DataType::UInt32, false),
                Field::new("input_min", DataType::Int32, false),
                Field::new("input_max", DataType::Int32, false),
                Field::new("input_mean", DataType::Float64, false),
                Field::new("input_std", DataType::Float64, false),
            ]);
            cols.extend([
                Arc::new(UInt16Array::from_iter_values(
                    rows.iter().map(|r| inf(&r.frame.record).class),
                )) as ArrayRef,
                f64col(&|r| f64::from(inf(r).confidence_q16) / 65536.0),
                u32col(&|r| inf(r).latency_ticks),
                u32col(&|r| inf(r).input.len),
                i32col(&|r| inf(r).input.min),
                i32col(&|r| inf(r).input.max),
                f64col(&|r| f64::from(inf(r).input.mean_q8) / 256.0),
                f64col(&|r| f64::from(inf(r).input.std_q8) / 256.0),
            ]);
        }
        "feedback" => {
            let fb: Vec<_> = rows
                .iter()
                .map(|r| match &r.frame.record {
                    Record::Feedback(f) => f.clone(),
                    _ => unreachable!("rows are grouped by kind"),
                })
                .collect();
            let mut sample = ListBuilder::new(Int32Builder::new());
            for f in &fb {
                sample.values().append_slice(f.sample.as_slice());
                sample.append(true);
            }
            fields.extend([
                Field::new("inference_seq", DataType::UInt32, false),
                Field::new("correction", DataType::UInt16, true),
                Field::new("thumbs", DataType::Utf8, true),
                Field::new(
                    "sample",
                    DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                    false,
                ),
            ]);
            cols.extend([
                Arc::new(UInt32Array::from_iter_values(
                    fb.iter().map(|f| f.inference_seq),
                )) as ArrayRef,
                Arc::new(UInt16Array::from_iter(fb.iter().map(|f| f.correction))),
                Arc::new(StringArray::from_iter(fb.iter().map(|f| {
                    f.thumbs.map(|t| match t {
                        Thumbs::Up => "up",
                        Thumbs::Down => "down",
                    })
                }))),
                Arc::new(sample.finish()),
            ]);
        }
        "drift_alarm" => {
            let al = |r: &Record| match r {
                Record::DriftAlarm(a) => *a,
                _ => unreachable!("rows are grouped by kind"),
            };
            fields.extend([
                Field::new("source", DataType::Utf8, false),
                Field::new("psi", DataType::Float64, false),
                Field::new("threshold", DataType::Float64, false),
                Field::new("window_events", DataType::UInt32, false),
                Field::new("window_index", DataType::UInt32, false),
            ]);
            cols.extend([
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
                    match al(&r.frame.record).source {
                        DriftSource::Input => "input",
                        DriftSource::PredictedClass => "predicted_class",
                    }
                }))) as ArrayRef,
                Arc::new(Float64Array::from_iter_values(
                    rows.iter()
                        .map(|r| f64::from(al(&r.frame.record).psi_q16) / 65536.0),
                )),
                Arc::new(Float64Array::from_iter_values(
                    rows.iter()
                        .map(|r| f64::from(al(&r.frame.record).threshold_q16) / 65536.0),
                )),
                u32col(&|r| al(r).window_events),
                u32col(&|r| al(r).window_index),
            ]);
        }
        _ => {
            let hb = |r: &Record| match r {
                Record::Heartbeat(h) => *h,
                _ => unreachable!("rows are grouped by kind"),
            };
            fields.extend([
                Field::new("uptime_ticks", DataType::UInt64, false),
                Field::new("inferences", DataType::UInt32, false),
                Field::new("feedback", DataType::UInt32, false),
                Field::new("alarms", DataType::UInt32, false),
                Field::new("dropped", DataType::UInt32, false),
            ]);
            cols.extend([
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| hb(&r.frame.record).uptime_ticks),
                )) as ArrayRef,
                u32col(&|r| hb(r).inferences),
                u32col(&|r| hb(r).feedback),
                u32col(&|r| hb(r).alarms),
                u32col(&|r| hb(r).dropped),
            ]);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())
}

static PART_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `rows` into the store under `root`, one new Parquet file per (table, partition).
/// Returns the files written.
pub fn write(root: &Path, rows: &[Received]) -> Result<Vec<PathBuf>> {
    let mut groups: BTreeMap<(&'static str, Partition), Vec<&Received>> = BTreeMap::new();
    for r in rows {
        let h = &r.frame.header;
        let p = Partition {
            date: utc_date(r.received_at_ms),
            model_version: h.model.version,
            device: h.device,
        };
        groups
            .entry((r.frame.record.kind(), p))
            .or_default()
            .push(r);
    }
    let stamp = crate::ingest::now_ms();
    let mut written = Vec::new();
    for ((table, p), rows) in groups {
        let dir = partition_dir(root, table, &p);
        fs::create_dir_all(&dir).map_err(|source| Error::StoreIo {
            path: dir.clone(),
            source,
        })?;
        let n = PART_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("part-{stamp}-{}-{n}.parquet", std::process::id()));
        let perr = |message: String| Error::Parquet {
            path: path.clone(),
            message,
        };
        let batch = batch_for(table, &rows).map_err(perr)?;
        let file = File::create(&path).map_err(|source| Error::StoreIo {
            path: path.clone(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
            .map_err(|e| perr(e.to_string()))?;
        writer.write(&batch).map_err(|e| perr(e.to_string()))?;
        writer.close().map_err(|e| perr(e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

/// Every Parquet file of `table` with its partition, sorted by path.
fn files(root: &Path, table: &str) -> Result<Vec<(PathBuf, Partition)>> {
    let mut out = Vec::new();
    let base = root.join(table);
    if !base.exists() {
        return Ok(out);
    }
    let mut stack = vec![base];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| Error::StoreIo {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| Error::StoreIo {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let p = parse_partition(&path)?;
                out.push((path, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn parse_partition(path: &Path) -> Result<Partition> {
    let bad = |message: &str| Error::StoreLayout {
        path: path.to_path_buf(),
        message: message.to_string(),
    };
    let mut date = None;
    let mut version = None;
    let mut device = None;
    for comp in path.components() {
        let s = comp.as_os_str().to_string_lossy();
        if let Some(v) = s.strip_prefix("date=") {
            date = Some(v.to_string());
        } else if let Some(v) = s.strip_prefix("model_version=") {
            version = Some(
                v.parse::<u32>()
                    .map_err(|_| bad("model_version is not a u32"))?,
            );
        } else if let Some(v) = s.strip_prefix("device=") {
            let hex = v
                .strip_prefix("0x")
                .ok_or_else(|| bad("device is not 0x-prefixed hex"))?;
            device = Some(
                u64::from_str_radix(hex, 16).map_err(|_| bad("device is not 0x-prefixed hex"))?,
            );
        }
    }
    Ok(Partition {
        date: date.ok_or_else(|| bad("no date= directory"))?,
        model_version: version.ok_or_else(|| bad("no model_version= directory"))?,
        device: device.ok_or_else(|| bad("no device= directory"))?,
    })
}

fn read_batches(path: &Path) -> Result<Vec<RecordBatch>> {
    let perr = |e: &dyn std::fmt::Display| Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|source| Error::StoreIo {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| perr(&e))?
        .build()
        .map_err(|e| perr(&e))?;
    reader.map(|b| b.map_err(|e| perr(&e))).collect()
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::StoreLayout {
            path: path.to_path_buf(),
            message: format!("column `{name}` is missing or has the wrong type"),
        })
}

fn commons(batch: &RecordBatch, p: &Partition, path: &Path) -> Result<Vec<Common>> {
    let boot = column::<UInt32Array>(batch, "boot", path)?;
    let seq = column::<UInt32Array>(batch, "seq", path)?;
    let ticks = column::<UInt64Array>(batch, "ticks", path)?;
    let model_id = column::<UInt32Array>(batch, "model_id", path)?;
    let at = column::<TimestampMillisecondArray>(batch, "received_at", path)?;
    Ok((0..batch.num_rows())
        .map(|i| Common {
            partition: p.clone(),
            boot: boot.value(i),
            seq: seq.value(i),
            ticks: ticks.value(i),
            model_id: model_id.value(i),
            received_at_ms: at.value(i),
        })
        .collect())
}

/// Reads the keys `(device, boot, seq)` of every row in the store (for deduplication across ingests).
pub fn keys(root: &Path) -> Result<Vec<RecordKey>> {
    let mut out = Vec::new();
    for table in TABLES {
        for (path, p) in files(root, table)? {
            for batch in read_batches(&path)? {
                for c in commons(&batch, &p, &path)? {
                    out.push((p.device, c.boot, c.seq));
                }
            }
        }
    }
    Ok(out)
}

/// Reads the inference and feedback tables back (and counts the others).
pub fn read(root: &Path) -> Result<StoreData> {
    let mut data = StoreData::default();
    for (path, p) in files(root, "inference")? {
        for b in read_batches(&path)? {
            let class = column::<UInt16Array>(&b, "class", &path)?;
            let conf = column::<Float64Array>(&b, "confidence", &path)?;
            let lat = column::<UInt32Array>(&b, "latency_ticks", &path)?;
            let len = column::<UInt32Array>(&b, "input_len", &path)?;
            let min = column::<Int32Array>(&b, "input_min", &path)?;
            let max = column::<Int32Array>(&b, "input_max", &path)?;
            let mean = column::<Float64Array>(&b, "input_mean", &path)?;
            let std = column::<Float64Array>(&b, "input_std", &path)?;
            for (i, common) in commons(&b, &p, &path)?.into_iter().enumerate() {
                data.inferences.push(InferenceRow {
                    common,
                    class: class.value(i),
                    confidence: conf.value(i),
                    latency_ticks: lat.value(i),
                    input_len: len.value(i),
                    input_min: min.value(i),
                    input_max: max.value(i),
                    input_mean: mean.value(i),
                    input_std: std.value(i),
                });
            }
        }
    }
    for (path, p) in files(root, "feedback")? {
        for b in read_batches(&path)? {
            let iseq = column::<UInt32Array>(&b, "inference_seq", &path)?;
            let corr = column::<UInt16Array>(&b, "correction", &path)?;
            let thumbs = column::<StringArray>(&b, "thumbs", &path)?;
            let sample = column::<ListArray>(&b, "sample", &path)?;
            for (i, common) in commons(&b, &p, &path)?.into_iter().enumerate() {
                let values = sample.value(i);
                let values = values
                    .as_any()
                    .downcast_ref::<arrow_array::PrimitiveArray<Int32Type>>()
                    .ok_or_else(|| Error::StoreLayout {
                        path: path.clone(),
                        message: "column `sample` is not a list of i32".into(),
                    })?;
                data.feedback.push(FeedbackRow {
                    common,
                    inference_seq: iseq.value(i),
                    correction: corr.is_valid(i).then(|| corr.value(i)),
                    thumbs_up: thumbs.is_valid(i).then(|| thumbs.value(i) == "up"),
                    sample: values.values().to_vec(),
                });
            }
        }
    }
    for (path, _) in files(root, "drift_alarm")? {
        data.drift_alarms += read_batches(&path)?
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    for (path, _) in files(root, "heartbeat")? {
        data.heartbeats += read_batches(&path)?
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    let order = |c: &Common| (c.received_at_ms, c.partition.device, c.boot, c.seq);
    data.inferences.sort_by_key(|r| order(&r.common));
    data.feedback.sort_by_key(|r| order(&r.common));
    Ok(data)
}

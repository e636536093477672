//! Device recorder → byte stream → ingest → Parquet store → read back (Rust and pyarrow) → drift.

use std::path::Path;
use std::process::Command;

use edgeloop_monitor::drift::{analyse, DriftConfig};
use edgeloop_monitor::ingest::{Ingestor, Received};
use edgeloop_monitor::store;
use edgeloop_runtime::telemetry::*;

/// Deterministic xorshift generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Roughly normal int8 value (sum of uniforms) around `mean`.
    fn int8(&mut self, mean: i32, spread: i32) -> i8 {
        let s: i32 = (0..4)
            .map(|_| self.below(2 * spread as u64 + 1) as i32 - spread)
            .sum();
        (mean + s / 2).clamp(-128, 127) as i8
    }
}

/// The exact distribution (×10⁴) of `Rng::int8(0, 20)` over 16 bins: what calibration would store.
const REFERENCE_HIST: [u32; 16] = [0, 0, 0, 0, 0, 11, 802, 3943, 4290, 936, 17, 0, 0, 0, 0, 0];

/// One simulated device: `n` inferences with inputs centred on `mean`, feedback on every 4th,
/// an on-device drift monitor over the inputs, heartbeats. Returns the bytes it sent.
fn device_stream(device: u64, n: u32, mean: i32, wrong_rate: u64, rng: &mut Rng) -> Vec<u8> {
    let mut rec = Recorder::<4096>::new(device, 1, ModelRef { id: 7, version: 1 });
    let mut monitor =
        DriftMonitor::<16>::new(&REFERENCE_HIST, DriftSource::Input, 50, 6554).unwrap();
    let mut wire = Vec::new();
    let drain = |rec: &mut Recorder<4096>, wire: &mut Vec<u8>| {
        let mut buf = [0u8; 2048];
        loop {
            let k = rec.drain(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            wire.extend_from_slice(&buf[..k]);
        }
    };
    for i in 0..n {
        let input: Vec<i8> = (0..32).map(|_| rng.int8(mean, 20)).collect();
        let truth = ((i32::from(input[0]) + 128) * 4 / 256) as u16;
        let class = if rng.below(100) < wrong_rate {
            (truth + 1) % 4
        } else {
            truth
        };
        let seq = rec
            .record(
                u64::from(i) * 100,
                Record::Inference(InferenceSummary {
                    class,
                    confidence_q16: 30000 + rng.below(30000) as u16,
                    latency_ticks: 900 + rng.below(50) as u32,
                    input: InputSummary::from_i8(&input),
                }),
            )
            .unwrap();
        if let Some(w) = monitor.observe_i8(&input) {
            if let Some(alarm) = w.alarm {
                rec.record(u64::from(i) * 100 + 1, Record::DriftAlarm(alarm))
                    .unwrap();
            }
        }
        if i % 4 == 0 {
            rec.record(
                u64::from(i) * 100 + 2,
                Record::Feedback(Feedback {
                    inference_seq: seq,
                    correction: Some(truth),
                    thumbs: None,
                    sample: Sample::from_i8(&input[..8]).unwrap(),
                }),
            )
            .unwrap();
        }
        if i % 100 == 99 {
            rec.heartbeat(u64::from(i) * 100 + 3, u64::from(i) * 100)
                .unwrap();
        }
        drain(&mut rec, &mut wire);
    }
    assert_eq!(rec.stats().dropped, 0, "drained after every record");
    wire
}

fn ingest(bytes: &[u8], at_ms: i64) -> (Vec<Received>, edgeloop_monitor::ingest::IngestStats) {
    let mut ing = Ingestor::new();
    let mut out = Vec::new();
    ing.feed(bytes, at_ms, &mut out);
    ing.finish();
    (out, ing.stats())
}

fn python() -> String {
    std::env::var("EDGELOOP_PYTHON")
        .expect("EDGELOOP_PYTHON must point at the project venv's python (scripts/test.sh sets it)")
}

const PYARROW_CHECK: &str = r#"
import json, os, sys
import pyarrow.dataset as ds
root = sys.argv[1]
out = {}
for table in ["inference", "feedback", "drift_alarm", "heartbeat"]:
    if not os.path.isdir(f"{root}/{table}"):
        continue
    t = ds.dataset(f"{root}/{table}", format="parquet", partitioning="hive").to_table()
    d = t.to_pydict()
    out[table] = dict(
        rows=t.num_rows,
        columns=sorted(t.column_names),
        devices=sorted(set(d["device"])),
        versions=sorted(set(int(v) for v in d["model_version"])),
        dates=sorted(set(str(v) for v in d["date"])),
        seq_sum=sum(d["seq"]),
    )
    if table == "inference":
        out[table]["class_sum"] = sum(d["class"])
        out[table]["input_mean_sum"] = sum(d["input_mean"])
    if table == "feedback":
        out[table]["sample_len_sum"] = sum(len(s) for s in d["sample"])
        out[table]["corrections"] = sum(1 for c in d["correction"] if c is not None)
print(json.dumps(out))
"#;

#[test]
fn store_round_trip_and_pyarrow_reads_it() {
    let mut rng = Rng(42);
    let mut bytes = device_stream(0xA1, 300, 0, 5, &mut rng);
    bytes.extend(device_stream(0xB2, 200, 0, 5, &mut rng));
    // 2026-11-26 12:00 UTC.
    let day_ms = 1_795_694_400_000;
    let (rows, stats) = ingest(&bytes, day_ms);
    assert_eq!(stats.corrupt.total(), 0);
    let dir = tempfile::tempdir().unwrap();
    let files = store::write(dir.path(), &rows).unwrap();
    assert!(files.iter().all(|f| f.starts_with(dir.path())));
    let data = store::read(dir.path()).unwrap();
    let inferences = rows
        .iter()
        .filter(|r| matches!(r.frame.record, Record::Inference(_)))
        .count();
    let feedback = rows
        .iter()
        .filter(|r| matches!(r.frame.record, Record::Feedback(_)))
        .count();
    let heartbeats = rows
        .iter()
        .filter(|r| matches!(r.frame.record, Record::Heartbeat(_)))
        .count();
    assert_eq!(data.inferences.len(), inferences);
    assert_eq!(data.inferences.len(), 500);
    assert_eq!(data.feedback.len(), feedback);
    assert_eq!(data.heartbeats, heartbeats);
    // Every inference row equals its frame.
    for r in &rows {
        if let Record::Inference(i) = &r.frame.record {
            let h = &r.frame.header;
            let row = data
                .inferences
                .iter()
                .find(|x| x.common.partition.device == h.device && x.common.seq == h.seq)
                .unwrap();
            assert_eq!(row.class, i.class);
            assert_eq!(row.input_mean, f64::from(i.input.mean_q8) / 256.0);
            assert_eq!(row.confidence, f64::from(i.confidence_q16) / 65536.0);
            assert_eq!(row.common.partition.date, "2026-11-26");
            assert_eq!(row.common.received_at_ms, day_ms);
        }
    }
    // Re-ingesting the same bytes against the store's keys adds nothing.
    let mut again = Ingestor::with_seen(store::keys(dir.path()).unwrap());
    let mut out = Vec::new();
    again.feed(&bytes, day_ms, &mut out);
    assert!(out.is_empty());
    assert_eq!(again.stats().duplicates as usize, rows.len());

    // An independent reader: pyarrow with Hive partitioning.
    let script = dir.path().join("check.py");
    std::fs::write(&script, PYARROW_CHECK).unwrap();
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inf = &got["inference"];
    assert_eq!(inf["rows"], 500);
    assert_eq!(
        inf["devices"],
        serde_json::json!(["0x00000000000000a1", "0x00000000000000b2"])
    );
    assert_eq!(inf["versions"], serde_json::json!([1]));
    assert_eq!(inf["dates"], serde_json::json!(["2026-11-26"]));
    let seq_sum: u64 = data
        .inferences
        .iter()
        .map(|r| u64::from(r.common.seq))
        .sum();
    assert_eq!(inf["seq_sum"].as_u64().unwrap(), seq_sum);
    let class_sum: u64 = data.inferences.iter().map(|r| u64::from(r.class)).sum();
    assert_eq!(inf["class_sum"].as_u64().unwrap(), class_sum);
    let mean_sum: f64 = data.inferences.iter().map(|r| r.input_mean).sum();
    assert!((inf["input_mean_sum"].as_f64().unwrap() - mean_sum).abs() < 1e-9);
    for col in [
        "boot",
        "seq",
        "ticks",
        "model_id",
        "received_at",
        "class",
        "confidence",
        "input_std",
        "date",
        "model_version",
        "device",
    ] {
        assert!(
            inf["columns"].as_array().unwrap().iter().any(|c| c == col),
            "missing {col}"
        );
    }
    let fb = &got["feedback"];
    assert_eq!(fb["rows"].as_u64().unwrap() as usize, feedback);
    assert_eq!(
        fb["sample_len_sum"].as_u64().unwrap() as usize,
        feedback * 8
    );
    assert_eq!(fb["corrections"].as_u64().unwrap() as usize, feedback);
    assert_eq!(
        got["heartbeat"]["rows"].as_u64().unwrap() as usize,
        heartbeats
    );
}

fn store_of(dir: &Path, streams: &[Vec<u8>], at_ms: i64) -> store::StoreData {
    for s in streams {
        let (rows, _) = ingest(s, at_ms);
        store::write(dir, &rows).unwrap();
    }
    store::read(dir).unwrap()
}

#[test]
fn shifted_field_data_drifts_on_device_and_on_host() {
    let mut rng = Rng(7);
    let ref_dir = tempfile::tempdir().unwrap();
    let reference = store_of(
        ref_dir.path(),
        &[
            device_stream(1, 400, 0, 5, &mut rng),
            device_stream(2, 400, 0, 5, &mut rng),
        ],
        1_000,
    );
    assert_eq!(
        reference.drift_alarms, 0,
        "the reference matches the device's reference histogram"
    );
    // Field: device 3 unchanged, device 4 sees shifted inputs and is wrong more often.
    let cur_dir = tempfile::tempdir().unwrap();
    let calm = device_stream(3, 400, 0, 5, &mut rng);
    let shifted = device_stream(4, 400, 40, 40, &mut rng);
    let (calm_rows, _) = ingest(&calm, 2_000);
    let (shift_rows, _) = ingest(&shifted, 3_000);
    store::write(cur_dir.path(), &calm_rows).unwrap();
    store::write(cur_dir.path(), &shift_rows).unwrap();
    let current = store::read(cur_dir.path()).unwrap();
    assert!(
        current.drift_alarms >= 7,
        "on-device PSI alarms: {}",
        current.drift_alarms
    );

    let cfg = DriftConfig {
        window: 400,
        ..DriftConfig::default()
    };
    let report = analyse(&reference, &current, &cfg).unwrap();
    assert_eq!(report.windows.len(), 2);
    let (w0, w1) = (&report.windows[0], &report.windows[1]);
    assert!(!w0.dataset_drift, "calm window: {:?}", w0.features);
    assert!(w1.dataset_drift, "shifted window: {:?}", w1.features);
    let input_mean = w1.features.iter().find(|f| f.name == "input_mean").unwrap();
    assert!(input_mean.drift && input_mean.psi > 0.1);
    assert!(
        !w0.performance_drift && w1.performance_drift,
        "{:?} / {:?}",
        w0.accuracy,
        w1.accuracy
    );
    assert_eq!(report.unmatched_feedback, 0);

    let out = tempfile::tempdir().unwrap();
    let files = edgeloop_monitor::report::write(&report, out.path()).unwrap();
    for name in [
        "drift_report.json",
        "drift_report.md",
        "psi_by_window.png",
        "accuracy_by_window.png",
    ] {
        let f = out.path().join(name);
        assert!(
            files.contains(&f) && std::fs::metadata(&f).unwrap().len() > 100,
            "{name}"
        );
    }
    let md = std::fs::read_to_string(out.path().join("drift_report.md")).unwrap();
    assert!(md.contains("| 1 |") && md.contains("**yes**"));
}

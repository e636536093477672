//! Demo stage 6: a simulated fleet. Each device runs the signed v1 image on the host runtime
//! (as an edge-Linux box would), first on lab-like traffic, then on the shifted field traffic.
//! Every inference, user correction, on-device drift alarm and heartbeat goes through the
//! device's fixed-capacity telemetry recorder, is drained as COBS frames onto a byte stream,
//! ingested by the monitor (resync, dedup), stored as Hive-partitioned Parquet, and analysed for
//! drift against a reference window of the same image on lab data.

use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_monitor::drift::{self, DriftConfig, DriftReport};
use edgeloop_monitor::ingest::{now_ms, Ingestor};
use edgeloop_monitor::{report as drift_report, store};
use edgeloop_runtime::telemetry::{
    DriftMonitor, DriftSource, Feedback, InferenceSummary, InputSummary, ModelRef, Record,
    Recorder, ReferenceHistogram, Sample, Thumbs,
};
use edgeloop_trainer::data::Record as TextRecord;
use edgeloop_trainer::train::jobs;
use serde::Serialize;

use super::data::Data;
use super::deploy::{encode_records, image_bytes, Deployment, Keys};
use super::device::HostModel;
use super::train::relative;
use super::Ctx;

/// Histogram bins of the on-device class-drift monitor (classes beyond it are refused).
const CLASS_BINS: usize = 32;
/// Bins of the on-device input (token id) monitor: the compiler's reference has 16.
const INPUT_BINS: usize = 16;
/// Bytes of each device's telemetry ring.
const RING: usize = 16 * 1024;

/// One window of the host drift analysis, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct WindowPoint {
    /// Window index.
    pub index: usize,
    /// Share of drifting features.
    pub drift_share: f64,
    /// Dataset drift flagged.
    pub dataset_drift: bool,
    /// Labelled accuracy in the window (from feedback), if any labels.
    pub accuracy: Option<f64>,
    /// Class-distribution PSI.
    pub class_psi: Option<f64>,
}

/// What the field stage reports.
#[derive(Debug, Clone, Serialize)]
pub struct FleetSummary {
    /// Devices.
    pub devices: usize,
    /// Inferences run.
    pub inferences: usize,
    /// Feedback records sent.
    pub feedback: usize,
    /// Corrections among them (the prediction was wrong).
    pub corrections: usize,
    /// Frames ingested (after dedup).
    pub frames_ingested: u64,
    /// Corrupt frames skipped.
    pub corrupt_frames: u64,
    /// Frames the device rings dropped (ring full).
    pub ring_drops: u64,
    /// On-device drift alarms raised.
    pub device_alarms: usize,
    /// Of which on the input (token id) histogram; the rest on predicted classes.
    pub input_alarms: usize,
    /// Host windows with dataset drift.
    pub drifted_windows: usize,
    /// Host windows analysed.
    pub windows: usize,
    /// Accuracy of v1 on the lab-like phase (from feedback labels).
    pub lab_phase_accuracy: f64,
    /// Accuracy of v1 on the field phase (from feedback labels).
    pub field_phase_accuracy: f64,
    /// Per-window drift for the report.
    pub window_points: Vec<WindowPoint>,
    /// Parquet store root, relative to the run folder.
    pub store: String,
    /// Drift report folder.
    pub drift_report: String,
}

/// The field stage's result.
#[derive(Debug)]
pub struct Fleet {
    /// Summary.
    pub summary: FleetSummary,
    /// The telemetry store (Parquet).
    pub store: PathBuf,
    /// The host drift report.
    pub report: DriftReport,
    /// The reference telemetry store (the image on the lab validation split).
    pub reference_store: PathBuf,
    /// Events per host drift window.
    pub drift_window: usize,
}

/// The host drift analysis settings for windows of `window` events.
pub fn drift_config(window: usize) -> DriftConfig {
    DriftConfig {
        window,
        min_window: 10,
        ..DriftConfig::default()
    }
}

/// Deterministic per-event coin (SplitMix64), so runs are reproducible.
fn coin(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Event counts over the fleet.
#[derive(Debug, Default)]
struct Counts {
    inferences: usize,
    feedback: usize,
    corrections: usize,
    alarms: usize,
    ring_drops: u64,
    input_alarms: usize,
}

/// The drift references the compiler stored in the image (from the lab validation split).
struct References {
    classes: ReferenceHistogram<CLASS_BINS>,
    input: ReferenceHistogram<INPUT_BINS>,
}

/// Runs `records` through `model` on one simulated device and returns its telemetry bytes.
#[allow(clippy::too_many_arguments)]
fn run_device(
    ctx: &Ctx,
    device: u64,
    model: &HostModel,
    rows: &[Vec<i32>],
    labels: &[usize],
    reference: &References,
    feedback_rate: f64,
    counts: &mut Counts,
) -> anyhow::Result<Vec<u8>> {
    let mut rec: Box<Recorder<RING>> = Box::new(Recorder::new(
        device,
        1,
        ModelRef {
            id: 0x1e7e_0001,
            version: model.version,
        },
    ));
    let mut monitor = DriftMonitor::<CLASS_BINS>::new(
        &reference.classes.counts,
        DriftSource::PredictedClass,
        50,
        DriftMonitor::<CLASS_BINS>::DEFAULT_THRESHOLD_Q16,
    )?;
    let mut input_monitor = DriftMonitor::<INPUT_BINS>::new(
        &reference.input.counts,
        DriftSource::Input,
        50,
        DriftMonitor::<INPUT_BINS>::DEFAULT_THRESHOLD_Q16,
    )?;
    let mut wire = Vec::new();
    let drain = |rec: &mut Recorder<RING>, wire: &mut Vec<u8>| -> anyhow::Result<()> {
        let mut buf = vec![0u8; RING];
        let n = rec.drain(&mut buf)?;
        wire.extend_from_slice(&buf[..n]);
        Ok(())
    };
    let preds = model.predict(rows)?;
    let mut ticks = 0u64;
    for (i, ((p, row), &y)) in preds.iter().zip(rows).zip(labels).enumerate() {
        ticks += 1000 + p.micros as u64;
        let seq = rec.record(
            ticks,
            Record::Inference(InferenceSummary {
                class: u16::try_from(p.class)?,
                confidence_q16: (p.probs[p.class] * 65535.0).round() as u16,
                latency_ticks: p.micros.round() as u32,
                input: InputSummary::from_i32(row),
            }),
        )?;
        counts.inferences += 1;
        if let Some(w) = monitor.observe_class(u16::try_from(p.class)?)? {
            if let Some(alarm) = w.alarm {
                rec.record(ticks, Record::DriftAlarm(alarm))?;
                counts.alarms += 1;
            }
        }
        for &v in row {
            input_monitor.add(reference.input.bin(v))?;
        }
        if let Some(alarm) = input_monitor.end_event().and_then(|w| w.alarm) {
            rec.record(ticks, Record::DriftAlarm(alarm))?;
            counts.alarms += 1;
            counts.input_alarms += 1;
        }
        if coin(ctx.seed ^ device, i as u64) < feedback_rate {
            let wrong = p.class != y;
            rec.record(
                ticks + 500,
                Record::Feedback(Feedback {
                    inference_seq: seq,
                    correction: wrong.then_some(u16::try_from(y)?),
                    thumbs: Some(if wrong { Thumbs::Down } else { Thumbs::Up }),
                    // Opt-in input sampling: the token ids, so corrections can be retrained on.
                    sample: Sample::from_i32(row)?,
                }),
            )?;
            counts.feedback += 1;
            if wrong {
                counts.corrections += 1;
            }
        }
        if i % 64 == 63 {
            rec.heartbeat(ticks, ticks)?;
            drain(&mut rec, &mut wire)?;
        }
    }
    rec.heartbeat(ticks, ticks)?;
    drain(&mut rec, &mut wire)?;
    counts.ring_drops += u64::from(rec.stats().dropped);
    Ok(wire)
}

/// Ingests telemetry `wire` bytes (one stream per device) into the store at `root`, in 1 KiB
/// chunks as a UART or HTTP stream delivers them; returns (frames, corrupt frames).
pub fn ingest(root: &std::path::Path, wires: &[Vec<u8>], t0: i64) -> anyhow::Result<(u64, u64)> {
    let mut ing = Ingestor::with_seen(store::keys(root)?);
    let mut rows = Vec::new();
    for (k, w) in wires.iter().enumerate() {
        // Deliver in chunks, as a UART or HTTP stream would.
        for (j, chunk) in w.chunks(1024).enumerate() {
            ing.feed(chunk, t0 + (k as i64) * 10 + j as i64, &mut rows);
        }
    }
    ing.finish();
    store::write(root, &rows)?;
    let st = ing.stats();
    Ok((st.frames, st.corrupt.total()))
}

/// Runs the stage.
pub fn simulate(ctx: &Ctx, data: &Data, v1: &Deployment, keys: &Keys) -> anyhow::Result<Fleet> {
    let sz = &ctx.sizes;
    if v1.labels.len() > CLASS_BINS {
        bail!(
            "{} classes: the on-device class monitor has {CLASS_BINS} bins",
            v1.labels.len()
        );
    }
    let dir = ctx.dir("telemetry")?;
    let model = HostModel::load(&image_bytes(ctx, v1)?, &keys.public.0)?;
    let tok = &data.tokenizer;

    // The devices' drift references come from the image: the compiler ran it on the lab
    // validation split and stored the histograms of token ids and predicted classes. The host
    // reference window is the same split through the same image.
    let lab_val: Vec<TextRecord> = jobs::read_texts(&data.val)?;
    let (ref_x, ref_y) = encode_records(tok, &lab_val, &v1.labels, v1.max_len)?;
    let missing = || {
        anyhow::anyhow!(
            "the v1 image has no reference statistics (compile it with reference inputs)"
        )
    };
    let references = References {
        classes: model
            .reference::<CLASS_BINS>(DriftSource::PredictedClass)?
            .ok_or_else(missing)?,
        input: model
            .reference::<INPUT_BINS>(DriftSource::Input)?
            .ok_or_else(missing)?,
    };
    let ref_preds = model.predict(&ref_x)?;
    let mut host_classes = [0u32; CLASS_BINS];
    for p in &ref_preds {
        host_classes[p.class] += 1;
    }
    if host_classes != references.classes.counts {
        bail!(
            "the image's reference class histogram {:?} differs from the host runtime's predictions on the same split {:?}",
            references.classes.counts,
            host_classes
        );
    }
    let reference_root = dir.join("reference");
    let _ = std::fs::remove_dir_all(&reference_root);
    let mut counts = Counts::default();
    let ref_wire = run_device(
        ctx,
        0x5EF0,
        &model,
        &ref_x,
        &ref_y,
        &references,
        1.0,
        &mut Counts::default(),
    )?;
    let t0 = now_ms();
    ingest(&reference_root, &[ref_wire], t0)?;

    // The fleet: each device sees lab-like traffic first (a quarter), then field traffic.
    let field_root = dir.join("field");
    let _ = std::fs::remove_dir_all(&field_root);
    let field: &[TextRecord] = &data.field_stream;
    let lab_share = sz.per_device / 4;
    let mut wires = Vec::new();
    let (mut lab_ok, mut lab_n, mut field_ok, mut field_n) = (0usize, 0usize, 0usize, 0usize);
    for d in 0..sz.devices {
        let mut recs: Vec<TextRecord> = Vec::new();
        for k in 0..lab_share {
            recs.push(lab_val[(d * lab_share + k) % lab_val.len()].clone());
        }
        for k in 0..sz.per_device - lab_share {
            recs.push(field[(d * (sz.per_device - lab_share) + k) % field.len()].clone());
        }
        let (x, y) = encode_records(tok, &recs, &v1.labels, v1.max_len)?;
        let wire = run_device(
            ctx,
            0xde71_0000 + d as u64,
            &model,
            &x,
            &y,
            &references,
            sz.feedback_rate,
            &mut counts,
        )?;
        // Ground-truth accuracy per phase (the demo knows every label; the monitor only sees feedback).
        let preds = model.predict(&x)?;
        for (i, (p, &t)) in preds.iter().zip(&y).enumerate() {
            if i < lab_share {
                lab_n += 1;
                lab_ok += usize::from(p.class == t);
            } else {
                field_n += 1;
                field_ok += usize::from(p.class == t);
            }
        }
        wires.push(wire);
    }
    let total_bytes: usize = wires.iter().map(|w| w.len()).sum();
    let (frames, corrupt) = ingest(&field_root, &wires, t0 + 1)?;
    crate::say!(
        "{} devices: {} inferences, {} feedback records ({} corrections), {} on-device drift alarms ({} on token ids, \
         the rest on predicted classes); \
         {} bytes of telemetry → {} frames ingested, {} corrupt",
        sz.devices,
        counts.inferences,
        counts.feedback,
        counts.corrections,
        counts.alarms,
        counts.input_alarms,
        total_bytes,
        frames,
        corrupt
    );

    let reference = store::read(&reference_root)?;
    let current = store::read(&field_root)?;
    let drift_window = (sz.per_device * sz.devices / 8).max(20);
    let cfg = drift_config(drift_window);
    let report = drift::analyse(&reference, &current, &cfg).context("drift analysis")?;
    let report_dir = dir.join("drift");
    drift_report::write(&report, &report_dir)?;
    let window_points: Vec<WindowPoint> = report
        .windows
        .iter()
        .map(|w| WindowPoint {
            index: w.index,
            drift_share: w.drift_share,
            dataset_drift: w.dataset_drift,
            accuracy: w.accuracy.accuracy,
            class_psi: w.features.iter().find(|f| f.name == "class").map(|f| f.psi),
        })
        .collect();
    crate::say!(
        "host drift: {} of {} windows drifted; on-device alarms in the store: {}; v1 accuracy lab phase {:.1}% → field phase {:.1}%",
        report.drifted_windows(),
        report.windows.len(),
        report.device_alarms,
        100.0 * lab_ok as f64 / lab_n.max(1) as f64,
        100.0 * field_ok as f64 / field_n.max(1) as f64
    );
    Ok(Fleet {
        summary: FleetSummary {
            devices: sz.devices,
            inferences: counts.inferences,
            feedback: counts.feedback,
            corrections: counts.corrections,
            frames_ingested: frames,
            corrupt_frames: corrupt,
            ring_drops: counts.ring_drops,
            device_alarms: report.device_alarms,
            input_alarms: counts.input_alarms,
            drifted_windows: report.drifted_windows(),
            windows: report.windows.len(),
            lab_phase_accuracy: lab_ok as f64 / lab_n.max(1) as f64,
            field_phase_accuracy: field_ok as f64 / field_n.max(1) as f64,
            window_points,
            store: relative(&ctx.out, &field_root),
            drift_report: relative(&ctx.out, &report_dir),
        },
        store: field_root,
        report,
        reference_store: reference_root,
        drift_window,
    })
}

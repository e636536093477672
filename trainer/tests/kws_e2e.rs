//! Keyword spotting end to end (issue 13, second modality): the synthetic keyword corpus →
//! the runtime's integer log-mel front end → a DS-CNN trained on those features → fp32 ONNX →
//! our quantizer (int8 QDQ, per-channel, min-max on training features) → the input pinned to
//! the front end's int8 quantization → the compiler (with reference statistics: histograms of
//! the int8 input features and of the predicted classes on training clips) → the int8 image run
//! by the host runtime on the front end's bytes. Held-out accuracy (speakers never trained on):
//! fp32 (candle) must reach 70% (chance is 12.5%) and int8 (image) stay within 5 points of it;
//! both are printed. Then the telemetry and drift loop for this model: inference records and
//! the on-device drift monitors (input-feature and predicted-class PSI against the image's
//! references) over a window of held-out clips (no alarm) and of the same clips 30 dB quieter
//! (both alarms), the frames decoded as the host receives them.
use std::collections::HashMap;
use std::time::Instant;

use edgeloop_quantize::compile::host::{Elem, HostTensor};
use edgeloop_quantize::compile::{compile, CompileOptions, HostMap};
use edgeloop_quantize::runner::Sample;
use edgeloop_quantize::tensor::Tensor as QTensor;
use edgeloop_quantize::{quantize, Dataset, OnnxModel, QuantizeConfig};
use edgeloop_runtime::audio::{FEATURE_SCALE, FEATURE_ZERO_POINT, FRAMES, MEL_BANDS};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::telemetry::{
    decode_frame, DriftMonitor, DriftSource, InferenceSummary, InputSummary, ModelRef, Record,
    Recorder, ReferenceHistogram,
};
use edgeloop_runtime::{Interpreter, Model};
use edgeloop_trainer::audio::synth::{generate, SynthConfig};
use edgeloop_trainer::audio::train::{accuracy, predict, train, FeatureSet, KwsTrainConfig};
use edgeloop_trainer::audio::{dequantize, features, KwsDataset, Split};
use edgeloop_trainer::export::ds_cnn::{export_ds_cnn, pin_int8_input, INPUT};
use edgeloop_trainer::export::graph::encode;

#[test]
fn keyword_spotting_trains_quantizes_compiles_and_runs() {
    let t0 = Instant::now();
    let data = generate(&SynthConfig::new(13, 160));
    let t_data = t0.elapsed().as_secs_f64();
    let cfg = KwsTrainConfig::new(data.labels.len(), 1);
    let (model, report) = train(&data, &cfg).expect("train");
    let chance = 1.0 / data.labels.len() as f32;
    println!(
        "kws: {} clips ({} classes) generated in {t_data:.1} s; DS-CNN {} params, {} MACs; \
         trained {} steps in {:.1} s; loss {:?} → {:?}; fp32 val {:.3} test {:.3} (chance {chance:.3})",
        data.clips.len(),
        data.labels.len(),
        report.params,
        cfg.model.macs(),
        cfg.steps,
        report.seconds,
        report.loss.first(),
        report.loss.last(),
        report.val_accuracy,
        report.test_accuracy
    );
    assert!(
        report.test_accuracy > 0.7,
        "fp32 test accuracy {} is not well above chance",
        report.test_accuracy
    );

    // Export, quantize with training features as calibration, pin the input, compile.
    let proto = export_ds_cnn(&model, 1, 17).expect("export");
    let fp32 = OnnxModel::from_bytes(&encode(&proto)).expect("parse fp32 onnx");
    let train_set = FeatureSet::of(&data, Split::Train).expect("features");
    let per = FRAMES * MEL_BANDS;
    let calib: Vec<Sample> = (0..train_set.len())
        .step_by((train_set.len() / 64).max(1))
        .map(|i| {
            let v: Vec<f32> = train_set.int8[i * per..(i + 1) * per]
                .iter()
                .map(|&q| dequantize(q))
                .collect();
            HashMap::from([(
                INPUT.to_string(),
                QTensor::f32(vec![1, 1, FRAMES, MEL_BANDS], v).expect("tensor"),
            )])
        })
        .collect();
    let q = quantize(
        &fp32,
        &Dataset { samples: calib },
        &QuantizeConfig::default(),
    )
    .expect("quantize");
    let mut qdq = q.model.proto.clone();
    pin_int8_input(&mut qdq, INPUT, FEATURE_SCALE, FEATURE_ZERO_POINT as i8).expect("pin");
    // Reference statistics for on-device drift checks (as `edgeloop compile --reference` stores
    // them for the classifier): the image runs on 256 training feature maps, and the histograms
    // of its int8 input values and of its predicted classes go into the image.
    let reference: Vec<HostMap> = train_set
        .int8
        .chunks_exact(per)
        .step_by((train_set.len() / 256).max(1))
        .map(|x| {
            HashMap::from([(
                INPUT.to_string(),
                HostTensor::int(
                    vec![1, 1, FRAMES, MEL_BANDS],
                    Elem::I8,
                    x.iter().map(|&v| v as i64).collect(),
                ),
            )])
        })
        .collect();
    let opts = CompileOptions {
        name: Some("kws".into()),
        reference,
        ..CompileOptions::default()
    };
    let compiled = compile(&qdq, &opts).expect("compile");
    let input = &compiled.report.inputs[0];
    assert_eq!(input.image_type, "i8");
    assert_eq!(input.quant, Some((FEATURE_SCALE, FEATURE_ZERO_POINT)));

    // Run the image on the held-out front-end bytes.
    let test = FeatureSet::of(&data, Split::Test).expect("features");
    let fp32_pred = predict(&model, &test).expect("predict");
    let image = AlignedBytes::new(compiled.bytes());
    let parsed = Model::parse(image.as_slice()).expect("parse image");
    let mut arena = AlignedBytes::zeroed(parsed.arena_bytes());
    let mut it = Interpreter::new(&parsed, arena.as_mut_slice()).expect("interpreter");
    let (mut ok, mut agree) = (0, 0);
    for ((x, &label), &fp32) in test
        .int8
        .chunks_exact(per)
        .zip(&test.labels)
        .zip(&fp32_pred)
    {
        it.input_i8(0).expect("input").copy_from_slice(x);
        it.invoke().expect("invoke");
        let logits = it.output_f32(0).expect("output");
        let pred = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap_or(0) as u32;
        ok += (pred == label) as usize;
        agree += (pred == fp32) as usize;
    }
    let int8_acc = ok as f32 / test.len() as f32;
    let fp32_acc = accuracy(&model, &test).expect("accuracy");
    println!(
        "kws: held-out test ({} clips): fp32 {fp32_acc:.3}, int8 image {int8_acc:.3}, top-1 \
         agreement {:.3}; image {} bytes, arena {} bytes; total {:.1} s",
        test.len(),
        agree as f32 / test.len() as f32,
        compiled.bytes().len(),
        parsed.arena_bytes(),
        t0.elapsed().as_secs_f64()
    );
    assert!(int8_acc > 0.7, "int8 accuracy {int8_acc}");
    assert!(
        int8_acc >= fp32_acc - 0.05,
        "int8 {int8_acc} is more than 5 points below fp32 {fp32_acc}"
    );
    telemetry_and_drift(&parsed, &mut it, &data);
}

/// Histogram bins the device keeps (the compiler stores 16 input bins and one per class).
const BINS: usize = 16;

/// What the device's drift monitors saw over one window.
#[derive(Debug, Default)]
struct Window {
    input_psi: f64,
    class_psi: f64,
    input_alarms: usize,
    class_alarms: usize,
    inferences: usize,
}

/// Telemetry and drift for the keyword model: every clip through the front end and the image as
/// a device would run it, one inference record per clip (input summary of the int8 features,
/// class) in a telemetry recorder, the input-feature and predicted-class histograms of the window
/// compared with the references the compiler stored in the image (PSI), alarms recorded; the
/// frames are drained and decoded as the host would receive them.
fn run_window(model: &Model<'_>, it: &mut Interpreter<'_, '_>, clips: &[Vec<i16>]) -> Window {
    let input_ref = ReferenceHistogram::<BINS>::from_image(model, DriftSource::Input)
        .expect("input reference")
        .expect("the image has an input histogram");
    let class_ref = ReferenceHistogram::<BINS>::from_image(model, DriftSource::PredictedClass)
        .expect("class reference")
        .expect("the image has a class histogram");
    let n = clips.len() as u32;
    let mut input_mon =
        DriftMonitor::<BINS>::new(&input_ref.counts, DriftSource::Input, n, 6554).expect("monitor");
    let mut class_mon =
        DriftMonitor::<BINS>::new(&class_ref.counts, DriftSource::PredictedClass, n, 6554)
            .expect("monitor");
    let mut rec: Box<Recorder<4096>> = Box::new(Recorder::new(
        0xC11F,
        1,
        ModelRef {
            id: 0x6b77_7331,
            version: 1,
        },
    ));
    let mut wire = Vec::new();
    let mut w = Window::default();
    let mut buf = vec![0u8; 4096];
    for (t, clip) in clips.iter().enumerate() {
        let x = features(clip).expect("front end");
        it.input_i8(0).expect("input").copy_from_slice(&x);
        it.invoke().expect("invoke");
        let logits = it.output_f32(0).expect("output");
        let class = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap_or(0) as u16;
        rec.record(
            t as u64,
            Record::Inference(InferenceSummary {
                class,
                confidence_q16: 0,
                latency_ticks: 0,
                input: InputSummary::from_i8(&x),
            }),
        )
        .expect("record");
        for &v in &x {
            input_mon
                .add(input_ref.bin(i32::from(v)))
                .expect("input bin");
        }
        let windows = [
            input_mon.end_event(),
            class_mon.observe_class(class).expect("class bin"),
        ];
        for (k, r) in windows.into_iter().enumerate() {
            if let Some(r) = r {
                let psi = r.psi_q16 as f64 / 65536.0;
                if k == 0 {
                    w.input_psi = psi;
                } else {
                    w.class_psi = psi;
                }
                if let Some(alarm) = r.alarm {
                    rec.record(t as u64, Record::DriftAlarm(alarm))
                        .expect("record");
                }
            }
        }
        let k = rec.drain(&mut buf).expect("drain");
        wire.extend_from_slice(&buf[..k]);
    }
    for f in wire.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let mut framed = f.to_vec();
        framed.push(0);
        match decode_frame(&framed)
            .expect("a valid telemetry frame")
            .record
        {
            Record::Inference(_) => w.inferences += 1,
            Record::DriftAlarm(a) if a.source == DriftSource::Input => w.input_alarms += 1,
            Record::DriftAlarm(_) => w.class_alarms += 1,
            _ => {}
        }
    }
    w
}

fn telemetry_and_drift(model: &Model<'_>, it: &mut Interpreter<'_, '_>, data: &KwsDataset) {
    let held_out: Vec<Vec<i16>> = data.split(Split::Test).map(|c| c.samples.clone()).collect();
    // The same clips through a microphone 30 dB quieter (a field condition the reference never
    // saw): every band energy drops by a factor 1000, i.e. about 50 feature steps.
    let quiet: Vec<Vec<i16>> = held_out
        .iter()
        .map(|c| c.iter().map(|&v| (v as i32 / 32) as i16).collect())
        .collect();
    let same = run_window(model, it, &held_out);
    let drifted = run_window(model, it, &quiet);
    println!(
        "kws telemetry: held-out window of {} inferences: input PSI {:.3}, class PSI {:.3}, \
         alarms input {} class {}; 30 dB quieter: input PSI {:.3}, class PSI {:.3}, alarms input \
         {} class {} (threshold 0.100)",
        same.inferences,
        same.input_psi,
        same.class_psi,
        same.input_alarms,
        same.class_alarms,
        drifted.input_psi,
        drifted.class_psi,
        drifted.input_alarms,
        drifted.class_alarms
    );
    assert_eq!(same.inferences, held_out.len());
    assert_eq!(drifted.inferences, held_out.len());
    assert_eq!(
        same.input_alarms, 0,
        "held-out speakers raised an input alarm"
    );
    assert_eq!(
        same.class_alarms, 0,
        "held-out speakers raised a class alarm"
    );
    assert_eq!(drifted.input_alarms, 1, "quiet audio raised no input alarm");
    assert_eq!(drifted.class_alarms, 1, "quiet audio raised no class alarm");
}

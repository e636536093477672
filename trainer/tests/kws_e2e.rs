//! Keyword spotting end to end (issue 13, second modality): the synthetic keyword corpus →
//! the runtime's integer log-mel front end → a DS-CNN trained briefly on those features →
//! fp32 ONNX → our quantizer (int8 QDQ, per-channel, min-max on training features) → the
//! input pinned to the front end's int8 quantization → the compiler → the int8 image run by
//! the host runtime on the front end's bytes. Held-out accuracy (speakers never trained on):
//! fp32 (candle) must reach 70% (chance is 12.5%) and int8 (image) stay within 5 points of it;
//! both are printed.

use std::collections::HashMap;
use std::time::Instant;

use edgeloop_quantize::compile::{compile, CompileOptions};
use edgeloop_quantize::runner::Sample;
use edgeloop_quantize::tensor::Tensor as QTensor;
use edgeloop_quantize::{quantize, Dataset, OnnxModel, QuantizeConfig};
use edgeloop_runtime::audio::{FEATURE_SCALE, FEATURE_ZERO_POINT, FRAMES, MEL_BANDS};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};
use edgeloop_trainer::audio::synth::{generate, SynthConfig};
use edgeloop_trainer::audio::train::{accuracy, predict, train, FeatureSet, KwsTrainConfig};
use edgeloop_trainer::audio::{dequantize, Split};
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
    let compiled = compile(&qdq, &CompileOptions::default()).expect("compile");
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
}

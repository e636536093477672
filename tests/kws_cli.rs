//! `edgeloop kws classify`: WAV files through the front end and a keyword model image; the
//! classes and logits equal the host runtime's on the same clips, and malformed inputs (a
//! truncated WAV, a wrong sample rate, an image that is not a keyword model) are refused with an
//! error naming the file and the problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgeloop_quantize::compile::{compile, CompileOptions};
use edgeloop_quantize::runner::Sample;
use edgeloop_quantize::tensor::Tensor as QTensor;
use edgeloop_quantize::{quantize, Dataset, OnnxModel, QuantizeConfig};
use edgeloop_runtime::audio::{FEATURE_SCALE, FEATURE_ZERO_POINT, FRAMES, MEL_BANDS};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};
use edgeloop_trainer::audio::synth::{generate, SynthConfig};
use edgeloop_trainer::audio::train::{train, FeatureSet, KwsTrainConfig};
use edgeloop_trainer::audio::{dequantize, features, wav, Split};
use edgeloop_trainer::export::ds_cnn::{export_ds_cnn, pin_int8_input, INPUT};
use edgeloop_trainer::export::graph::encode;
use edgeloop_trainer::models::ds_cnn::DsCnnConfig;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

fn edgeloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args(args)
        .output()
        .expect("running edgeloop")
}

/// A small keyword image (8 channels, 1 block, 20 steps: the CLI is under test, not accuracy).
fn keyword_image(data: &edgeloop_trainer::audio::KwsDataset) -> Vec<u8> {
    let mut cfg = KwsTrainConfig::new(data.labels.len(), 2);
    cfg.model = DsCnnConfig::small(data.labels.len(), 8, 1);
    cfg.steps = 20;
    let (model, _) = train(data, &cfg).expect("train");
    let fp32 = OnnxModel::from_bytes(&encode(&export_ds_cnn(&model, 1, 17).expect("export")))
        .expect("onnx");
    let per = FRAMES * MEL_BANDS;
    let calib: Vec<Sample> = FeatureSet::of(data, Split::Train)
        .expect("features")
        .int8
        .chunks_exact(per)
        .step_by(4)
        .map(|x| {
            let v = x.iter().map(|&q| dequantize(q)).collect();
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
    compile(&qdq, &CompileOptions::default())
        .expect("compile")
        .bytes()
        .to_vec()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn kws_classify_matches_the_host_runtime_and_refuses_bad_inputs() {
    let dir = tmp("kws_cli");
    let data = generate(&SynthConfig::new(21, 16));
    let image = keyword_image(&data);
    let image_path = dir.join("kws.edli");
    std::fs::write(&image_path, &image).expect("write image");

    // Three held-out clips as WAV files; the host's own classes for them.
    let aligned = AlignedBytes::new(&image);
    let model = Model::parse(aligned.as_slice()).expect("parse");
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("interpreter");
    let mut files = Vec::new();
    let mut want = Vec::new();
    for (k, c) in data.split(Split::Test).take(3).enumerate() {
        let p = dir.join(format!("clip{k}.wav"));
        wav::write(&p, 16_000, &c.samples).expect("write wav");
        it.input_i8(0)
            .expect("input")
            .copy_from_slice(&features(&c.samples).expect("features"));
        it.invoke().expect("invoke");
        want.push(it.output_f32(0).expect("output").to_vec());
        files.push(p);
    }
    let labels = data.labels.join(",");
    let mut args = vec![
        "--json",
        "kws",
        "classify",
        "--image",
        s(&image_path),
        "--labels",
        &labels,
    ];
    args.extend(files.iter().map(|p| s(p)));
    let out = edgeloop(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    let got = got.as_array().expect("an array");
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(&want) {
        let logits: Vec<f32> = g["logits"]
            .as_array()
            .expect("logits")
            .iter()
            .map(|v| v.as_f64().expect("number") as f32)
            .collect();
        assert_eq!(&logits, w, "logits differ from the host runtime's");
        let class = g["class"].as_u64().expect("class") as usize;
        let best = (0..w.len())
            .max_by(|&a, &b| w[a].total_cmp(&w[b]).then(b.cmp(&a)))
            .expect("classes");
        assert_eq!(class, best);
        assert_eq!(g["label"], data.labels[class].as_str());
    }

    // A truncated WAV: refused, naming the file.
    let bad = dir.join("truncated.wav");
    std::fs::write(&bad, &std::fs::read(&files[0]).expect("read")[..30]).expect("write");
    let out = edgeloop(&["kws", "classify", "--image", s(&image_path), s(&bad)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("truncated.wav"), "{}", stderr(&out));

    // A WAV at 8 kHz: refused with the rate.
    let slow = dir.join("slow.wav");
    wav::write(&slow, 8_000, &vec![0i16; 8_000]).expect("write");
    let out = edgeloop(&["kws", "classify", "--image", s(&image_path), s(&slow)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("8000 Hz"), "{}", stderr(&out));

    // Not an image, and an image that is not a keyword model (the wrong label count too).
    let junk = dir.join("junk.edli");
    std::fs::write(&junk, b"not an image at all").expect("write");
    let out = edgeloop(&["kws", "classify", "--image", s(&junk), s(&files[0])]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a valid model image"),
        "{}",
        stderr(&out)
    );
    let out = edgeloop(&[
        "kws",
        "classify",
        "--image",
        s(&image_path),
        "--labels",
        "a,b",
        s(&files[0]),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--labels names 2 classes"),
        "{}",
        stderr(&out)
    );
}

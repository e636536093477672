//! End-to-end tests: quantize the test models, then check the QDQ output with the ONNX checker
//! (Python), ONNX Runtime (Level1) and tract against fp32, and against ONNX Runtime's quantizer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::oracle::OrtModel;
use crate::report::{sqnr_db, ErrorStats};
use crate::runner::{Sample, Tap};
use crate::testmodels;
use crate::*;

/// The pinned Python of the project venv; tests needing it fail (not skip) without it.
fn python() -> PathBuf {
    let p = std::env::var("EDGELOOP_PYTHON").unwrap_or_else(|_| {
        panic!("EDGELOOP_PYTHON is not set: run scripts/test.sh or point it at the venv python (with onnx, onnxruntime)")
    });
    PathBuf::from(p)
}

fn script(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../python/ref")
        .join(name)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgeloop-quantize-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn models() -> Vec<(&'static str, OnnxModel)> {
    vec![
        ("mlp", testmodels::mlp()),
        ("cnn", testmodels::cnn()),
        ("transformer", testmodels::transformer()),
        ("linear_bias", testmodels::linear_bias(true)),
    ]
}

fn dataset(m: &OnnxModel, n: usize, seed: u64) -> (Vec<InputSpec>, Dataset) {
    let inputs = m.inputs(&HashMap::new()).unwrap();
    let samples = testmodels::samples(&inputs, n, seed);
    (inputs, Dataset { samples })
}

/// Writes the calibration set as one .npy per sample (single-input models).
fn write_calib(dir: &Path, inputs: &[InputSpec], data: &Dataset) {
    assert_eq!(inputs.len(), 1);
    for (i, s) in data.samples.iter().enumerate() {
        let t = &s[&inputs[0].name];
        std::fs::write(
            dir.join(format!("s{i:04}.npy")),
            npy::write_npy_f32(&t.shape, t.as_f32().unwrap()),
        )
        .unwrap();
    }
}

/// SQNR (dB) of `test`'s output `y` against `reference`'s over `samples`.
fn output_sqnr(
    reference: &mut OrtModel,
    test: &mut dyn FnMut(&Sample) -> Vec<f32>,
    samples: &[Sample],
) -> f64 {
    let mut st = ErrorStats::default();
    for s in samples {
        let r = reference.run(s).unwrap();
        let y = test(s);
        st.update(r["y"].as_f32().unwrap(), &y);
    }
    st.sqnr_db()
}

fn ort_fn(bytes: &[u8]) -> impl FnMut(&Sample) -> Vec<f32> {
    let mut m = OrtModel::new(bytes).unwrap();
    move |s| m.run(s).unwrap()["y"].as_f32().unwrap().to_vec()
}

#[test]
fn qdq_models_run_in_ort_and_tract_close_to_fp32() {
    for (name, m) in models() {
        let (inputs, calib) = dataset(&m, 64, 11);
        let (_, test) = dataset(&m, 16, 99);
        let q = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
        let bytes = q.model.to_bytes();
        let mut fp32 = OrtModel::new(&m.to_bytes()).unwrap();
        let sq_ort = output_sqnr(&mut fp32, &mut ort_fn(&bytes), &test.samples);
        let tap = Tap::new(&q.model, &inputs, &[]).unwrap();
        let sq_tract = output_sqnr(
            &mut fp32,
            &mut |s: &Sample| tap.run(s).unwrap()["y"].as_f32().unwrap().to_vec(),
            &test.samples,
        );
        // tract's full optimization (into_optimized) rewrites DQ → Softmax → Q into its own
        // quantized softmax, which loses accuracy on the transformer; measured and printed.
        let opt = Tap::optimized(&q.model, &inputs).unwrap();
        let sq_opt = output_sqnr(
            &mut fp32,
            &mut |s: &Sample| opt.run(s).unwrap()["y"].as_f32().unwrap().to_vec(),
            &test.samples,
        );
        println!("{name}: tract into_optimized SQNR {sq_opt:.2} dB");
        if name != "transformer" {
            assert!(sq_opt > 25.0, "{name}: tract optimized SQNR {sq_opt}");
        }
        // tract and ORT on the same QDQ model agree far better than either agrees with fp32.
        let mut ort_q = OrtModel::new(&bytes).unwrap();
        let mut agree = ErrorStats::default();
        for s in &test.samples {
            agree.update(
                ort_q.run(s).unwrap()["y"].as_f32().unwrap(),
                tap.run(s).unwrap()["y"].as_f32().unwrap(),
            );
        }
        let nq = q.plan.quantized.iter().filter(|&&b| b).count();
        println!(
            "{name}: {nq}/{} nodes quantized; int8 vs fp32 SQNR: ORT {sq_ort:.2} dB, tract {sq_tract:.2} dB; ORT vs tract on QDQ {:.2} dB",
            q.plan.quantized.len(),
            agree.sqnr_db()
        );
        assert!(sq_ort > 25.0, "{name}: ORT SQNR {sq_ort}");
        assert!(sq_tract > 25.0, "{name}: tract SQNR {sq_tract}");
        assert!(
            agree.sqnr_db() > sq_ort,
            "{name}: ORT and tract disagree on the QDQ model"
        );
        assert!(nq >= 5, "{name}: only {nq} quantized nodes");
    }
}

#[test]
fn qdq_models_pass_the_onnx_full_checker() {
    let dir = tmpdir("check");
    let mut paths = Vec::new();
    for (name, m) in models() {
        let (_, calib) = dataset(&m, 8, 5);
        for per_channel in [true, false] {
            let cfg = QuantizeConfig {
                per_channel,
                smoothquant_alpha: (name == "transformer").then_some(0.5),
                ..Default::default()
            };
            let q = quantize(&m, &calib, &cfg).unwrap();
            let p = dir.join(format!("{name}_{per_channel}.onnx"));
            std::fs::write(&p, q.model.to_bytes()).unwrap();
            paths.push(p);
        }
    }
    let out = Command::new(python())
        .arg(script("quant_check.py"))
        .args(&paths)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "onnx checker failed:\n{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        paths.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_calibration_method_gives_a_working_model() {
    let m = testmodels::cnn();
    let (_, calib) = dataset(&m, 32, 7);
    let (_, test) = dataset(&m, 8, 77);
    let mut fp32 = OrtModel::new(&m.to_bytes()).unwrap();
    let mut seen = Vec::new();
    for method in [
        Method::MinMax,
        Method::Percentile(99.99),
        Method::Entropy,
        Method::Mse,
    ] {
        let cfg = QuantizeConfig {
            method,
            ..Default::default()
        };
        let q = quantize(&m, &calib, &cfg).unwrap();
        let sq = output_sqnr(&mut fp32, &mut ort_fn(&q.model.to_bytes()), &test.samples);
        println!("cnn {}: SQNR {sq:.2} dB", method.name());
        assert!(sq > 20.0, "{method:?}: {sq}");
        seen.push(q.ranges);
    }
    // The clipping methods really clip: some range differs from min-max.
    for r in &seen[1..] {
        assert!(r.iter().any(|(t, v)| seen[0][t] != *v));
    }
}

#[test]
fn our_error_is_no_worse_than_ort_quantize_static() {
    let dir = tmpdir("vs-ort");
    let mut failures = Vec::new();
    for (name, m) in models() {
        let (inputs, calib) = dataset(&m, 64, 21);
        let (_, test) = dataset(&m, 32, 123);
        let cdir = dir.join(format!("{name}_calib"));
        std::fs::create_dir_all(&cdir).unwrap();
        write_calib(&cdir, &inputs, &calib);
        let fp = dir.join(format!("{name}.onnx"));
        std::fs::write(&fp, m.to_bytes()).unwrap();
        let ort_out = dir.join(format!("{name}_ort.onnx"));
        let op_types = DEFAULT_OP_TYPES.join(",");
        let out = Command::new(python())
            .arg(script("quant_ort.py"))
            .args([
                "--model",
                fp.to_str().unwrap(),
                "--calib",
                cdir.to_str().unwrap(),
            ])
            .args(["--out", ort_out.to_str().unwrap(), "--op-types", &op_types])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "quant_ort.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Our quantizer reads the same files.
        let data = Dataset::load_dir(&cdir, &inputs).unwrap();
        assert_eq!(data.samples.len(), 64);
        let q = quantize(&m, &data, &QuantizeConfig::default()).unwrap();
        let mut fp32 = OrtModel::new(&m.to_bytes()).unwrap();
        let ours = output_sqnr(&mut fp32, &mut ort_fn(&q.model.to_bytes()), &test.samples);
        let theirs = output_sqnr(
            &mut fp32,
            &mut ort_fn(&std::fs::read(&ort_out).unwrap()),
            &test.samples,
        );
        println!("{name}: SQNR vs fp32 (ORT Level1 runtime): edgeloop {ours:.2} dB, onnxruntime.quantization {theirs:.2} dB");
        // The transformer block: ours 26.07 dB, ORT 26.16 dB. The two QDQ models have the same
        // weights, activation scales and zero points; ORT alone also rounds the LayerNorm
        // gamma/beta to int8/int32. With those put back to float, ORT's model measures 26.07 dB,
        // the same as ours: on this model the extra rounding happens to cancel some error. On the
        // demo's GPT and classifier the same rounding costs accuracy (scripts/quantizer-vs-ort.sh),
        // so we keep LayerNorm parameters float and hold this model to 0.1 dB below ORT.
        let slack = if name == "transformer" { 0.1 } else { 0.0 };
        if ours < theirs - slack - 1e-9 {
            failures.push(format!("{name}: ours {ours:.2} dB < ORT {theirs:.2} dB"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn sensitivity_report_covers_every_quantized_layer() {
    let m = testmodels::transformer();
    let (_, calib) = dataset(&m, 16, 3);
    let q = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
    let rep = q.sensitivity(&calib, 8, "minmax").unwrap();
    let dir = tmpdir("report");
    rep.write(&dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sensitivity.json")).unwrap())
            .unwrap();
    let layers = json["layers"].as_array().unwrap();
    for (i, n) in q.fp32.graph().node.iter().enumerate() {
        if q.plan.quantized[i] && q.plan.activations.contains(&n.output[0]) {
            assert!(
                layers.iter().any(|l| l["node"] == n.name.as_str()),
                "{} missing",
                n.name
            );
        }
    }
    let md = std::fs::read_to_string(dir.join("sensitivity.md")).unwrap();
    assert!(md.contains("| y |") && md.contains("attn_probs"), "{md}");
    let out = &rep.outputs[0];
    assert!(out.sqnr_db.unwrap() > 20.0 && out.cosine > 0.99, "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn excluded_nodes_stay_float_and_bias_is_int32_at_input_times_weight_scale() {
    let m = testmodels::mlp();
    let (_, calib) = dataset(&m, 16, 4);
    let cfg = QuantizeConfig {
        exclude: ["fc2".to_string()].into_iter().collect(),
        ..Default::default()
    };
    let q = quantize(&m, &calib, &cfg).unwrap();
    let g = q.model.graph();
    let fc2 = g.node.iter().find(|n| n.name == "fc2").unwrap();
    assert_eq!(
        fc2.input[1], "fc2.weight",
        "excluded node reads its float weight"
    );
    assert!(q.plan.kept_float.iter().any(|(n, _)| n == "fc2"));
    // fc1's bias: int32 initializer, scale = s_x · s_w per channel.
    let fc1 = g.node.iter().find(|n| n.name == "fc1").unwrap();
    let dq = g.node.iter().find(|n| n.output[0] == fc1.input[2]).unwrap();
    let inits: HashMap<String, crate::tensor::Tensor> = g
        .initializer
        .iter()
        .filter(|t| t.data_type == 1)
        .map(|t| (t.name.clone(), crate::tensor::from_proto(t).unwrap()))
        .collect();
    let b_scale = inits[&dq.input[1]].as_f32().unwrap().to_vec();
    let w_dq = g.node.iter().find(|n| n.output[0] == fc1.input[1]).unwrap();
    let w_scale = inits[&w_dq.input[1]].as_f32().unwrap().to_vec();
    let x_dq = g.node.iter().find(|n| n.output[0] == fc1.input[0]).unwrap();
    let x_scale = inits[&x_dq.input[1]].as_f32().unwrap()[0];
    assert_eq!(b_scale.len(), 32);
    for (b, w) in b_scale.iter().zip(&w_scale) {
        assert_eq!(*b, x_scale * w);
    }
    let raw = g
        .initializer
        .iter()
        .find(|t| t.name == dq.input[0])
        .unwrap();
    assert_eq!(raw.data_type, 6, "bias is int32");
    // Weights are int8 within [-127, 127].
    let wq = g
        .initializer
        .iter()
        .find(|t| t.name == w_dq.input[0])
        .unwrap();
    assert_eq!(wq.data_type, 3);
    assert!(wq.raw_data.iter().all(|&b| b as i8 >= -127));
}

/// Issue 11: a linear layer exported as MatMul + Add of a constant bias (either operand order)
/// gets its bias as a QDQ Conv/Gemm bias: the MatMul's output has no Q/DQ pair, and the Add reads
/// `DequantizeLinear` of an int32 initializer at scale `s_x · s_w[c]`, zero point 0, axis 0.
#[test]
fn matmul_add_bias_is_int32_at_input_times_weight_scale() {
    let m = testmodels::linear_bias(true);
    let (_, calib) = dataset(&m, 16, 5);
    let q = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
    assert_eq!(q.plan.bias_adds.len(), 2, "{:?}", q.plan.bias_adds);
    let g = q.model.graph();
    let init = |name: &str| g.initializer.iter().find(|t| t.name == name).unwrap();
    let f32s = |name: &str| crate::tensor::from_proto(init(name)).unwrap();
    let writer = |t: &str| g.node.iter().find(|n| n.output[0] == t).unwrap();
    for (mm, add, bias_input) in [("l1", "l1_bias", 1), ("l2", "l2_bias", 0)] {
        let mm = g.node.iter().find(|n| n.name == mm).unwrap();
        let add = g.node.iter().find(|n| n.name == add).unwrap();
        assert!(
            !g.node
                .iter()
                .any(|n| n.op_type == "QuantizeLinear" && n.input[0] == mm.output[0]),
            "no Q/DQ pair between {} and its bias Add",
            mm.name
        );
        assert_eq!(add.input[1 - bias_input], mm.output[0]);
        let dq = writer(&add.input[bias_input]);
        assert_eq!(dq.op_type, "DequantizeLinear");
        assert_eq!(init(&dq.input[0]).data_type, 6, "bias is int32");
        assert_eq!(init(&dq.input[2]).data_type, 6, "int32 zero point");
        assert!(init(&dq.input[2]).raw_data.iter().all(|&b| b == 0));
        assert_eq!(crate::onnx::attr_i(dq, "axis", 1), 0);
        let x_scale = f32s(&writer(&mm.input[0]).input[1]).as_f32().unwrap()[0];
        let w_scale = f32s(&writer(&mm.input[1]).input[1])
            .as_f32()
            .unwrap()
            .to_vec();
        let b_scale = f32s(&dq.input[1]).as_f32().unwrap().to_vec();
        assert_eq!(b_scale.len(), w_scale.len());
        for (b, w) in b_scale.iter().zip(&w_scale) {
            assert_eq!(*b, x_scale * w);
        }
        // The int32 values are the float bias rounded at that scale.
        let fp = q.fp32.initializers().unwrap();
        let want = fp[&format!("{}.bias", mm.name)].as_f32().unwrap().to_vec();
        let got: Vec<i32> = init(&dq.input[0])
            .raw_data
            .chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        for ((v, s), q) in want.iter().zip(&b_scale).zip(&got) {
            assert_eq!(*q as f64, (*v as f64 / *s as f64).round());
        }
    }
    // The Add outputs keep their Q/DQ pair (the Relu after l1_bias runs on its float output).
    assert!(g
        .node
        .iter()
        .any(|n| n.op_type == "QuantizeLinear" && n.input[0] == "relu"));
    assert!(q.dequantized.contains_key("y"));
    // Only Add is not enough: a MatMul kept float keeps a plain float Add.
    let cfg = QuantizeConfig {
        exclude: ["l1".to_string()].into_iter().collect(),
        ..Default::default()
    };
    let q = quantize(&m, &calib, &cfg).unwrap();
    assert_eq!(q.plan.bias_adds.len(), 1);
    assert!(q.plan.bias_adds.values().all(|&(p, _)| p == 3));
}

/// The bias of a linear layer is folded only when its Add's output is read by QuantizeLinear
/// alone: a classifier head whose sum a float `Identity` copies to `logits` keeps its MatMul's
/// Q/DQ pair and a plain Add (folded, its MatMul would have no int8 output and would compile to
/// an f32 FullyConnected), and so does a layer whose sum (or fused Relu's output) a float node
/// reads.
#[test]
fn a_bias_add_read_by_a_float_node_is_not_folded() {
    let m = testmodels::linear_bias_head();
    let (_, calib) = dataset(&m, 16, 5);
    let q = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
    let node_index = |name: &str| m.graph().node.iter().position(|n| n.name == name).unwrap();
    let folded: Vec<usize> = q.plan.bias_adds.keys().copied().collect();
    assert_eq!(
        folded,
        vec![node_index("l1_bias")],
        "{:?}",
        q.plan.bias_adds
    );
    let g = q.model.graph();
    assert!(
        g.node
            .iter()
            .any(|n| n.op_type == "QuantizeLinear" && n.input[0] == "classifier"),
        "the head's MatMul output keeps its Q/DQ pair"
    );
    // The Identity reads the head's float sum.
    let identity = g.node.iter().find(|n| n.op_type == "Identity").unwrap();
    assert_eq!(identity.input[0], "classifier_bias");
    // An excluded Relu reads l1's float sum, and a float head reads the fused Relu's float
    // output: in either case nothing is folded.
    for excluded in [&["relu"][..], &["classifier", "classifier_bias"]] {
        let cfg = QuantizeConfig {
            exclude: excluded.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let q = quantize(&m, &calib, &cfg).unwrap();
        assert!(
            q.plan.bias_adds.is_empty(),
            "{excluded:?}: {:?}",
            q.plan.bias_adds
        );
    }
    // The two-layer model, whose Add outputs QuantizeLinear reads (directly or through the
    // fused Relu), folds both.
    let m = testmodels::linear_bias(true);
    let (_, calib) = dataset(&m, 16, 5);
    let q = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
    assert_eq!(q.plan.bias_adds.len(), 2);
}

/// `op_types` restricts quantization to the listed types: with only Gemm, the MLP's two Gemms
/// read int8 weights and everything else (MatMul, Add, Relu) keeps float weights and no QDQ
/// pair of its own; the model still runs close to fp32.
#[test]
fn only_the_requested_op_types_are_quantized() {
    let m = testmodels::mlp();
    let (_, calib) = dataset(&m, 16, 6);
    let cfg = QuantizeConfig {
        op_types: ["Gemm".to_string()].into(),
        ..Default::default()
    };
    let q = quantize(&m, &calib, &cfg).unwrap();
    for (i, n) in q.fp32.graph().node.iter().enumerate() {
        assert_eq!(
            q.plan.quantized[i],
            n.op_type == "Gemm",
            "{} ({})",
            n.name,
            n.op_type
        );
    }
    let g = q.model.graph();
    let node = |name: &str| g.node.iter().find(|n| n.name == name).unwrap();
    assert_eq!(
        node("fc2").input[1],
        "fc2.weight",
        "MatMul keeps its float weight"
    );
    assert_ne!(
        node("fc1").input[1],
        "fc1.weight",
        "Gemm reads a dequantized weight"
    );
    assert!(
        !g.node
            .iter()
            .any(|n| n.op_type == "QuantizeLinear" && n.input[0] == "relu1"),
        "no QDQ pair on relu1's output, which only the float MatMul reads"
    );
    let full = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
    // Every quantized activation, weight and bias has a DequantizeLinear. (QuantizeLinear nodes
    // alone do not tell: the full model has none on fc2's output, whose bias Add is folded, and
    // the Gemm-only model has one on fc1's, whose Relu is float.)
    let count = |m: &OnnxModel| {
        m.graph()
            .node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear")
            .count()
    };
    assert!(count(&q.model) < count(&full.model));
    // ORT's quantize_static with the same restriction, same calibration files.
    let dir = tmpdir("optypes");
    let (inputs, _) = dataset(&m, 1, 6);
    write_calib(&dir, &inputs, &calib);
    let fp = dir.join("mlp.onnx");
    std::fs::write(&fp, m.to_bytes()).unwrap();
    let ort_out = dir.join("mlp_ort_gemm.onnx");
    let out = Command::new(python())
        .arg(script("quant_ort.py"))
        .args([
            "--model",
            fp.to_str().unwrap(),
            "--calib",
            dir.to_str().unwrap(),
        ])
        .args(["--out", ort_out.to_str().unwrap(), "--op-types", "Gemm"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quant_ort.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, test) = dataset(&m, 32, 66);
    let mut fp32 = OrtModel::new(&m.to_bytes()).unwrap();
    let ours = output_sqnr(&mut fp32, &mut ort_fn(&q.model.to_bytes()), &test.samples);
    let theirs = output_sqnr(
        &mut fp32,
        &mut ort_fn(&std::fs::read(&ort_out).unwrap()),
        &test.samples,
    );
    println!("mlp, Gemm only: SQNR vs fp32 edgeloop {ours:.2} dB, onnxruntime.quantization {theirs:.2} dB");
    assert!(ours >= theirs - 1e-9, "ours {ours} < ORT {theirs}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn smoothquant_keeps_the_fp32_function_and_flattens_activations() {
    let m = testmodels::transformer();
    let (inputs, calib) = dataset(&m, 16, 8);
    let cfg = QuantizeConfig {
        smoothquant_alpha: Some(0.5),
        ..Default::default()
    };
    let q = quantize(&m, &calib, &cfg).unwrap();
    assert!(q.smoothed_groups >= 2, "{}", q.smoothed_groups);
    // The smoothed fp32 model computes the same function.
    let a = Tap::new(&m, &inputs, &[]).unwrap();
    let b = Tap::new(&q.fp32, &inputs, &[]).unwrap();
    for s in &calib.samples[..4] {
        let (ya, yb) = (a.run(s).unwrap(), b.run(s).unwrap());
        let sq = sqnr_db(ya["y"].as_f32().unwrap(), yb["y"].as_f32().unwrap());
        assert!(sq > 80.0, "smoothing changed the fp32 output: {sq} dB");
    }
    // The activations the smoothed MatMuls read (ln1 feeds q/k/v, ln2 feeds mlp_up; X / s is
    // folded into the LayerNorms) have flatter channels: the largest per-channel magnitude over
    // the smallest shrinks.
    let xs = ["ln1".to_string(), "ln2".to_string()];
    let before = calib::channel_absmax(&m, &inputs, &calib, &xs, false).unwrap();
    let after = calib::channel_absmax(&q.fp32, &inputs, &calib, &xs, false).unwrap();
    let spread = |v: &[f32]| {
        let hi = v.iter().cloned().fold(0f32, f32::max);
        let lo = v.iter().cloned().fold(f32::INFINITY, f32::min);
        hi / lo
    };
    for x in &xs {
        let (b, a) = (spread(&before[x]), spread(&after[x]));
        println!("{x}: channel max/min magnitude {b:.2} -> {a:.2} after SmoothQuant(0.5)");
        assert!(a < b, "{x}: spread {b} -> {a}");
    }
    let (_, test) = dataset(&m, 16, 42);
    let mut fp32 = OrtModel::new(&m.to_bytes()).unwrap();
    let plain = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
    let sq_plain = output_sqnr(
        &mut fp32,
        &mut ort_fn(&plain.model.to_bytes()),
        &test.samples,
    );
    let sq_smooth = output_sqnr(&mut fp32, &mut ort_fn(&q.model.to_bytes()), &test.samples);
    println!("transformer: SQNR plain {sq_plain:.2} dB, SmoothQuant(0.5) {sq_smooth:.2} dB");
    assert!(sq_smooth > 20.0);
}

#[test]
fn per_tensor_weights_have_scalar_scales() {
    let m = testmodels::cnn();
    let (_, calib) = dataset(&m, 8, 9);
    let q = quantize(
        &m,
        &calib,
        &QuantizeConfig {
            per_channel: false,
            ..Default::default()
        },
    )
    .unwrap();
    let g = q.model.graph();
    let conv = g.node.iter().find(|n| n.name == "conv1").unwrap();
    let w_dq = g
        .node
        .iter()
        .find(|n| n.output[0] == conv.input[1])
        .unwrap();
    assert!(w_dq.attribute.iter().all(|a| a.name != "axis"));
    let s = g
        .initializer
        .iter()
        .find(|t| t.name == w_dq.input[1])
        .unwrap();
    assert!(s.dims.is_empty());
}

/// Softmax outputs get the range [0, 1] whatever the calibration saw: with few calibration
/// samples the largest observed probability is well below 1, and a calibrated range would clip
/// every larger probability at inference.
#[test]
fn softmax_output_range_is_zero_to_one_for_every_method() {
    let m = testmodels::transformer();
    let (_, calib) = dataset(&m, 4, 5);
    let probs = Tap::new(
        &m,
        &m.inputs(&HashMap::new()).unwrap(),
        &["attn_probs".into()],
    )
    .unwrap()
    .run(&calib.samples[0])
    .unwrap();
    let seen = probs["attn_probs"]
        .as_f32()
        .unwrap()
        .iter()
        .cloned()
        .fold(0.0f32, f32::max);
    assert!(
        seen < 0.99,
        "the test needs probabilities below 1, saw {seen}"
    );
    for method in [
        Method::MinMax,
        Method::Percentile(99.0),
        Method::Entropy,
        Method::Mse,
    ] {
        let cfg = QuantizeConfig {
            method,
            ..Default::default()
        };
        let q = quantize(&m, &calib, &cfg).unwrap();
        assert_eq!(q.ranges["attn_probs"], Range { min: 0.0, max: 1.0 });
        let g = q.model.graph();
        let ql = g
            .node
            .iter()
            .find(|n| n.op_type == "QuantizeLinear" && n.input[0] == "attn_probs")
            .unwrap();
        let init = |name: &str| g.initializer.iter().find(|t| t.name == name).unwrap();
        let scale = tensor::from_proto(init(&ql.input[1])).unwrap();
        assert_eq!(scale.as_f32().unwrap(), &[1.0f32 / 255.0][..]);
        assert_eq!(init(&ql.input[2]).raw_data, vec![(-128i8) as u8]);
        // Other tensors keep their calibrated ranges.
        assert_ne!(q.ranges["scores_scaled"], Range { min: 0.0, max: 1.0 });
    }
}

/// A Gather from a constant table outputs table values only: its range is the table's, so a row
/// the calibration set never looked up (here the one with the largest values) is not clipped.
#[test]
fn gather_output_range_is_the_table_range() {
    let m = testmodels::embedding();
    let ids = |v: Vec<i64>| -> Sample {
        HashMap::from([(
            "ids".to_string(),
            tensor::Tensor::i64(vec![1, 6], v).unwrap(),
        )])
    };
    // Calibration looks up rows 0..30 only; the test looks up row 31 too.
    let calib = Dataset {
        samples: (0..5)
            .map(|k| ids((0..6).map(|i| (k * 6 + i) % 31).collect()))
            .collect(),
    };
    let table = m.initializers().unwrap()["table"]
        .as_f32()
        .unwrap()
        .to_vec();
    let lo = table.iter().cloned().fold(f32::INFINITY, f32::min);
    let hi = table.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let seen: Vec<f32> = table[..31 * 8].to_vec();
    let seen_hi = seen.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    assert!(seen_hi < 0.7 * hi, "row 31 must hold the largest value");
    for method in [Method::MinMax, Method::Percentile(99.0), Method::Entropy] {
        let cfg = QuantizeConfig {
            method,
            ..Default::default()
        };
        let q = quantize(&m, &calib, &cfg).unwrap();
        assert_eq!(q.ranges["embed"], Range { min: lo, max: hi }, "{method:?}");
        let mut fp32 = OrtModel::new(&m.to_bytes()).unwrap();
        let test = [ids(vec![31, 0, 31, 5, 31, 9])];
        let sq = output_sqnr(&mut fp32, &mut ort_fn(&q.model.to_bytes()), &test);
        assert!(sq > 30.0, "{method:?}: SQNR {sq} on the unseen row");
    }
}

/// A constant additive attention mask (-1e4) makes the masked scores' int8 step ~40, which
/// would round every real score to zero (uniform attention): the masked scores and the Softmax
/// reading them stay float, everything else is quantized, and the result stays close to fp32.
#[test]
fn additive_attention_mask_keeps_masked_scores_float() {
    let m = testmodels::causal_attention();
    let (_, calib) = dataset(&m, 32, 8);
    let (_, test) = dataset(&m, 16, 99);
    let q = quantize(&m, &calib, &QuantizeConfig::default()).unwrap();
    let float: Vec<&str> = q.plan.kept_float.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(float, ["scores_masked", "probs"], "{:?}", q.plan.kept_float);
    assert!(q.plan.kept_float[0].1.contains("causal_mask"));
    assert!(!q.plan.activations.contains("scores_masked"));
    for t in ["scores_scaled", "probs", "context", "y"] {
        assert!(q.plan.activations.contains(t), "{t} is not quantized");
    }
    assert_eq!(q.ranges["probs"], Range { min: 0.0, max: 1.0 });
    let mut fp32 = OrtModel::new(&m.to_bytes()).unwrap();
    let ours = output_sqnr(&mut fp32, &mut ort_fn(&q.model.to_bytes()), &test.samples);
    // The same model with the masked scores forced through int8 (what a quantizer without this
    // rule produces; ONNX Runtime's quantize_static does).
    let mut ranges = q.ranges.clone();
    ranges.insert(
        "scores_masked".into(),
        Range {
            min: -1e4,
            max: 8.0,
        },
    );
    let reg = onnx::ops::Registry::standard();
    let opts = qdq::QdqOptions {
        op_types: DEFAULT_OP_TYPES.iter().map(|s| s.to_string()).collect(),
        exclude: Default::default(),
        per_channel: true,
    };
    let inits = q.fp32.initializers().unwrap();
    let mut plan = q.plan.clone();
    for (i, n) in q.fp32.graph().node.iter().enumerate() {
        if n.name == "scores_masked" || n.name == "probs" {
            plan.quantized[i] = true;
        }
    }
    plan.activations.insert("scores_masked".into());
    let forced = qdq::rewrite(&q.fp32, &inits, &reg, &plan, &ranges, &opts).unwrap();
    let naive = output_sqnr(
        &mut fp32,
        &mut ort_fn(&forced.model.to_bytes()),
        &test.samples,
    );
    println!("causal attention: SQNR vs fp32 {ours:.2} dB (masked scores int8: {naive:.2} dB)");
    assert!(ours > 12.0, "SQNR {ours}");
    assert!(
        ours > naive + 10.0,
        "ours {ours} vs int8 masked scores {naive}"
    );
}

#[test]
fn bad_configuration_is_reported() {
    let m = testmodels::mlp();
    let (_, calib) = dataset(&m, 2, 1);
    let e = quantize(
        &m,
        &calib,
        &QuantizeConfig {
            exclude: ["nope".into()].into(),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("nope"), "{e}");
    let e = quantize(
        &m,
        &calib,
        &QuantizeConfig {
            op_types: ["Frobnicate".into()].into(),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Frobnicate"), "{e}");
    let e = quantize(&m, &Dataset::default(), &QuantizeConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty"), "{e}");
    assert!(OnnxModel::from_bytes(b"not a model at all").is_err());
}

#[test]
fn npz_files_written_by_numpy_read_back_exactly() {
    let dir = tmpdir("npz");
    let code = r#"
import sys, numpy as np
d = sys.argv[1]
x = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5) / 3
np.savez(d + "/plain.npz", x=x, ids=np.arange(6, dtype=np.int32).reshape(2, 3))
np.savez_compressed(d + "/packed.npz", x=x.astype(np.float64), ids=np.arange(6, dtype=np.int64).reshape(2, 3))
np.save(d + "/big_endian.npy", x.astype(">f4"))
np.save(d + "/fortran.npy", np.asfortranarray(x))
"#;
    let out = Command::new(python())
        .args(["-c", code, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<f32> = (0..24).map(|i| (i as f32 - 7.5) / 3.0).collect();
    for f in ["plain.npz", "packed.npz"] {
        let arrays = npy::read_npz(&dir.join(f)).unwrap();
        let get = |k: &str| arrays.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let x = get("x");
        assert_eq!(x.shape, vec![2, 3, 4]);
        for (a, b) in x.as_f32().unwrap().iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{f}");
        }
        assert_eq!(
            get("ids").data,
            crate::tensor::TensorData::I64((0..6).collect())
        );
    }
    let be = npy::read_npy(&dir.join("big_endian.npy")).unwrap();
    assert_eq!(be.as_f32().unwrap(), want.as_slice());
    assert!(npy::read_npy(&dir.join("fortran.npy"))
        .unwrap_err()
        .to_string()
        .contains("Fortran"));
    // A truncated archive is an error, not a panic.
    let bytes = std::fs::read(dir.join("packed.npz")).unwrap();
    std::fs::write(dir.join("cut.npz"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(npy::read_npz(&dir.join("cut.npz")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

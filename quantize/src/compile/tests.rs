//! Unit tests of the compiler on small models built in code (the comparisons with ONNX Runtime
//! are in `tests/compile_fidelity.rs` and `tests/compile_conformance.rs`).

use super::host::{Elem, HostTensor};
use super::lower::elementwise::broadcast;
use super::*;
use crate::onnx::{attr_ints, node, value_info, ElemType};
use crate::testmodels::{self, Builder};

fn f32_input(c: &Compiled, name: &str, shape: &[usize], seed: u64) -> HostMap {
    let mut rng = testmodels::Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    assert!(c.report.inputs.iter().any(|i| i.name == name));
    [(name.to_string(), HostTensor::f32(shape.to_vec(), v))]
        .into_iter()
        .collect()
}

#[test]
fn fp32_mlp_compiles_and_plans_at_the_lower_bound() {
    let m = testmodels::mlp();
    let c = compile(&m.proto, &CompileOptions::default()).unwrap();
    println!("{}", c.report);
    assert_eq!(
        c.report.arena_bytes,
        c.report.lower_bound + c.report.declared_scratch
    );
    assert_eq!(c.report.total_macs, (16 * 32 + 32 * 24 + 24 * 10) as u64);
    assert!(c.report.float_islands.is_empty());
    assert_eq!(
        c.report.firmware_op_set, "op_set_f32(&[OpCode::FullyConnected])",
        "bias Add and Relu are fused into the FullyConnected ops"
    );
    let j: serde_json::Value = serde_json::from_str(&c.report.to_json()).unwrap();
    assert_eq!(j["total_macs"], 1520);
    assert_eq!(j["arena_bytes"], j["lower_bound"]);
    assert!(j["flash"]["weights"].as_u64().unwrap() > 0);
    let out = c.run(&f32_input(&c, "x", &[1, 16], 1)).unwrap();
    assert_eq!(out["y"].shape, vec![1, 10]);
    assert!(out["y"].f.iter().any(|v| *v != 0.0));
}

/// `edgeloop compile --report` prints this report: flash bytes by section (adding up to the
/// image), the arena against its exact lower bound, MACs per op and in total, the ops used and the
/// firmware op set. Checked on the int8 CNN, whose MACs are known by hand.
#[test]
fn int8_cnn_report_gives_sections_plan_macs_and_ops() {
    let m = testmodels::cnn();
    let inputs = m.inputs(&Default::default()).unwrap();
    let calib = crate::Dataset {
        samples: testmodels::samples(&inputs, 8, 3),
    };
    let q = crate::quantize(&m, &calib, &crate::QuantizeConfig::default()).unwrap();
    let c = compile(&q.model.proto, &CompileOptions::default()).unwrap();
    let r = &c.report;
    let text = r.to_string();
    println!("{text}");
    // Flash by section.
    let fl = &r.flash;
    assert_eq!(fl.total, c.bytes().len());
    assert_eq!(fl.header_and_graph + fl.constants + fl.statistics, fl.total);
    assert!(fl.weights + fl.biases + fl.requant_and_tables <= fl.constants);
    // Weights: int8, one byte each (3·3·3·8 + 3·3·8·16 + 16·10); biases int32.
    assert_eq!(fl.weights, 216 + 1152 + 160);
    assert_eq!(fl.biases, 4 * (8 + 16 + 10));
    assert!(
        fl.requant_and_tables > 0,
        "per-channel multipliers and shifts"
    );
    for line in [
        format!("flash: {} bytes", fl.total),
        format!("    weights          {:>9}", fl.weights),
        format!("    biases           {:>9}", fl.biases),
        format!("    requant + tables {:>9}", fl.requant_and_tables),
        format!(
            "arena: {} bytes planned, exact lower bound {} (+0 declared scratch): +0.0%",
            r.arena_bytes, r.lower_bound
        ),
    ] {
        assert!(text.contains(&line), "missing '{line}' in:\n{text}");
    }
    assert_eq!(r.arena_bytes, r.lower_bound + r.declared_scratch);
    // MACs per op: conv1 16·16·8 outputs × 27, conv2 8·8·16 × 72, fc 10 × 16.
    let macs: Vec<(String, u64)> = r
        .ops
        .iter()
        .filter(|o| o.macs > 0)
        .map(|o| (o.op.clone(), o.macs))
        .collect();
    assert_eq!(
        macs,
        vec![
            ("Conv2d".to_string(), 2048 * 27),
            ("Conv2d".to_string(), 1024 * 72),
            ("FullyConnected".to_string(), 160)
        ]
    );
    assert_eq!(r.total_macs, 2048 * 27 + 1024 * 72 + 160);
    assert!(
        text.contains(&format!("total MACs: {}", r.total_macs)),
        "{text}"
    );
    for o in &r.ops {
        assert!(
            text.lines().any(
                |l| l.split_whitespace().next() == Some(&o.index.to_string())
                    && l.contains(&o.op)
                    && l.trim_end().ends_with(&o.macs.to_string())
            ),
            "op {} ({}) has no row with its MACs",
            o.index,
            o.op
        );
    }
    // Ops used: every op of the image counted once, all int8 but the edges.
    assert_eq!(r.ops_used.values().sum::<usize>(), r.ops.len());
    assert_eq!(r.ops_used.get("Conv2d (int8)"), Some(&2));
    let used_line = text.lines().find(|l| l.starts_with("ops used: ")).unwrap();
    for k in r.ops_used.keys() {
        assert!(used_line.contains(k.as_str()), "{used_line}");
    }
    assert!(text.contains(&format!("firmware op set: {}", r.firmware_op_set)));
    assert!(r.firmware_op_set.contains("OpCode::Conv2d"));
    assert!(r.float_islands.is_empty(), "{:?}", r.float_islands);
}

/// Issue 11: a linear layer exported as MatMul + Add of a constant bias becomes one int8
/// FullyConnected with an int32 bias: the image of the two-layer model has exactly as many ops
/// as that of the same layers without biases (one op fewer per linear than an FC + Add), and no
/// Add. (Agreement with ONNX Runtime: `tests/compile_fidelity.rs`, model `linear_bias`.)
#[test]
fn int8_matmul_bias_add_is_one_fully_connected() {
    let compiled = |m: &crate::OnnxModel| {
        let inputs = m.inputs(&Default::default()).unwrap();
        let calib = crate::Dataset {
            samples: testmodels::samples(&inputs, 16, 7),
        };
        let q = crate::quantize(m, &calib, &crate::QuantizeConfig::default()).unwrap();
        compile(&q.model.proto, &CompileOptions::default()).unwrap()
    };
    let with = compiled(&testmodels::linear_bias(true));
    let without = compiled(&testmodels::linear_bias(false));
    println!("{}", with.report);
    let r = &with.report;
    assert!(r.float_islands.is_empty(), "{:?}", r.float_islands);
    assert_eq!(r.ops.len(), without.report.ops.len(), "{:?}", r.ops_used);
    assert_eq!(r.ops_used.get("FullyConnected (int8)"), Some(&2));
    assert!(
        !r.ops_used.keys().any(|k| k.starts_with("Add")),
        "{:?}",
        r.ops_used
    );
    assert_eq!(r.flash.biases, 4 * (32 + 12), "int32 biases in the FC ops");
    assert_eq!(without.report.flash.biases, 0);
    // The biases change the outputs.
    let x = f32_input(&with, "x", &[1, 4, 16], 5);
    let (a, b) = (with.run(&x).unwrap(), without.run(&x).unwrap());
    assert_ne!(a["y"].f, b["y"].f);
}

/// A classifier head whose sum a float `Identity` copies to `logits` (as the trainer exports it)
/// keeps an int8 FullyConnected: the quantizer does not fold that bias (the float sum is read),
/// so no linear layer runs in f32, while the hidden layer's bias is folded.
#[test]
fn int8_classifier_head_read_by_a_float_identity_stays_int8() {
    let m = testmodels::linear_bias_head();
    let inputs = m.inputs(&Default::default()).unwrap();
    let calib = crate::Dataset {
        samples: testmodels::samples(&inputs, 16, 7),
    };
    let q = crate::quantize(&m, &calib, &crate::QuantizeConfig::default()).unwrap();
    let c = compile(&q.model.proto, &CompileOptions::default()).unwrap();
    println!("{}", c.report);
    let r = &c.report;
    assert_eq!(
        r.ops_used.get("FullyConnected (int8)"),
        Some(&2),
        "{:?}",
        r.ops_used
    );
    assert!(
        !r.ops_used.contains_key("FullyConnected (f32)"),
        "{:?}",
        r.ops_used
    );
    assert!(
        !r.float_islands
            .iter()
            .any(|f| f.starts_with("classifier (")),
        "{:?}",
        r.float_islands
    );
    // The hidden layer's bias is in its FC (32 int32 values); the head's Add runs apart.
    assert_eq!(r.flash.biases, 4 * 32);
}

#[test]
fn every_unsupported_node_is_listed_in_one_error() {
    let mut b = Builder::new("bad", 17, 1);
    let x = b.input("x", &[1, 4]);
    let h = b.op("Cos", "cos_node", &[&x], vec![]);
    let h = b.op("Relu", "fine", &[&h], vec![]);
    let g = b.op("Sin", "sin_node", &[&x], vec![]);
    let s = b.op("Add", "sum", &[&h, &g], vec![]);
    b.output(&s, &[1, 4]);
    let m = b.build();
    let e = compile(&m.proto, &CompileOptions::default()).unwrap_err();
    let Error::Unsupported(nodes) = &e else {
        panic!("expected Unsupported, got {e}");
    };
    let names: Vec<(&str, &str)> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.op_type.as_str()))
        .collect();
    // The nodes downstream of a refused node are not blamed for it.
    assert_eq!(names, vec![("cos_node", "Cos"), ("sin_node", "Sin")]);
    let text = e.to_string();
    assert!(
        text.contains("cos_node") && text.contains("sin_node"),
        "{text}"
    );
}

#[test]
fn nchw_conv_pool_in_f32_matches_a_direct_computation() {
    // Conv 1→2 channels 3x3 pad 1 on a 1x1x4x4 input, then MaxPool 2x2: compare with loops.
    let mut b = Builder::new("conv", 17, 5);
    let x = b.input("x", &[1, 1, 4, 4]);
    let w = b.weight("w", &[2, 1, 3, 3], 0.5);
    let bias = b.constant("b", &[2], &[0.1, -0.2]);
    let h = b.op(
        "Conv",
        "conv",
        &[&x, &w, &bias],
        vec![attr_ints("pads", &[1, 1, 1, 1])],
    );
    let y = b.op(
        "MaxPool",
        "pool",
        &[&h],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.output(&y, &[1, 2, 2, 2]);
    let m = b.build();
    let wv = host::from_proto(&m.graph().initializer[0]).unwrap().f;
    let c = compile(&m.proto, &CompileOptions::default()).unwrap();
    let inp = f32_input(&c, "x", &[1, 1, 4, 4], 9);
    let xv = inp["x"].f.clone();
    let out = c.run(&inp).unwrap();
    let got = &out[&y].f;
    let conv = |o: usize, r: i64, cc: i64| -> f32 {
        let mut acc = [0.1f32, -0.2][o];
        for ky in 0..3i64 {
            for kx in 0..3i64 {
                let (yy, xx) = (r + ky - 1, cc + kx - 1);
                if (0..4).contains(&yy) && (0..4).contains(&xx) {
                    acc += wv[o * 9 + (ky * 3 + kx) as usize] * xv[(yy * 4 + xx) as usize];
                }
            }
        }
        acc
    };
    for o in 0..2 {
        for py in 0..2 {
            for px in 0..2 {
                let mut m = f32::NEG_INFINITY;
                for dy in 0..2 {
                    for dx in 0..2 {
                        m = m.max(conv(o, (2 * py + dy) as i64, (2 * px + dx) as i64));
                    }
                }
                let g = got[(o * 2 + py) * 2 + px];
                assert!((g - m).abs() < 1e-5, "o{o} ({py},{px}): {g} vs {m}");
            }
        }
    }
}

#[test]
fn reshape_only_graph_copies_its_input() {
    let mut b = Builder::new("reshape", 17, 1);
    let x = b.input("x", &[2, 3]);
    let s = b.ints("shape", &[3, 2]);
    let y = b.op("Reshape", "r", &[&x, &s], vec![]);
    b.output(&y, &[3, 2]);
    let m = b.build();
    let c = compile(&m.proto, &CompileOptions::default()).unwrap();
    let inp = f32_input(&c, "x", &[2, 3], 3);
    let out = c.run(&inp).unwrap();
    assert_eq!(out[&y].f, inp["x"].f);
    assert_eq!(out[&y].shape, vec![3, 2]);
}

#[test]
fn int64_ids_feed_a_gather_as_int32() {
    let mut b = Builder::new("emb", 17, 1);
    let table = b.weight("table", &[5, 4], 1.0);
    b.output("y", &[3, 4]);
    let mut m = b.build();
    let g = m.graph_mut();
    g.input.push(value_info("ids", ElemType::I64, &[3]));
    g.node
        .push(node("Gather", "g", &[&table, "ids"], &["y"], vec![]));
    let tv = host::from_proto(&m.graph().initializer[0]).unwrap().f;
    let c = compile(&m.proto, &CompileOptions::default()).unwrap();
    assert_eq!(c.report.inputs[0].image_type, "i32");
    let feeds: HostMap = [(
        "ids".to_string(),
        HostTensor::int(vec![3], Elem::I64, vec![4, 0, -1]),
    )]
    .into_iter()
    .collect();
    let out = c.run(&feeds).unwrap();
    let want: Vec<f32> = [4usize, 0, 4]
        .iter()
        .flat_map(|&r| tv[r * 4..r * 4 + 4].to_vec())
        .collect();
    assert_eq!(out["y"].f, want);
}

#[test]
fn numpy_broadcast_rules() {
    assert_eq!(broadcast(&[2, 1, 4], &[3, 1]), Some(vec![2, 3, 4]));
    assert_eq!(broadcast(&[], &[5]), Some(vec![5]));
    assert_eq!(broadcast(&[2, 3], &[4, 3]), None);
}

#[test]
fn same_padding_matches_onnx_auto_pad() {
    let mut n = node("Conv", "c", &["x", "w"], &["y"], vec![]);
    n.attribute.push(crate::onnx::attr_ints("strides", &[2, 2]));
    let mut a = tract_onnx::pb::AttributeProto {
        name: "auto_pad".into(),
        s: b"SAME_UPPER".to_vec(),
        ..Default::default()
    };
    n.attribute.push(a.clone());
    let w = lower::dense::window(&n, [5, 5], [3, 3])
        .map_err(|_| ())
        .unwrap();
    assert_eq!(w.padding, [1, 1, 1, 1]);
    let w = lower::dense::window(&n, [6, 6], [3, 3])
        .map_err(|_| ())
        .unwrap();
    // Total padding 1: SAME_UPPER puts it at the end.
    assert_eq!(w.padding, [0, 1, 0, 1]);
    a.s = b"SAME_LOWER".to_vec();
    n.attribute.pop();
    n.attribute.push(a);
    let w = lower::dense::window(&n, [6, 6], [3, 3])
        .map_err(|_| ())
        .unwrap();
    assert_eq!(w.padding, [1, 0, 1, 0]);
}

#[test]
fn a_truncated_model_is_an_error_not_a_panic() {
    let bytes = testmodels::mlp().to_bytes();
    let path = std::env::temp_dir().join(format!(
        "edgeloop-compile-trunc-{}.onnx",
        std::process::id()
    ));
    for cut in [0, 7, bytes.len() / 2, bytes.len() - 3] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(
            compile_file(&path, &CompileOptions::default()).is_err(),
            "cut {cut}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn mutated_models_compile_or_fail_cleanly() {
    use prost::Message;
    let mut rng = testmodels::Rng::new(2024);
    let mut compiled = 0;
    let mut refused = 0;
    let qdq = |m: crate::OnnxModel| {
        let inputs = m.inputs(&std::collections::HashMap::new()).unwrap();
        let data = crate::Dataset {
            samples: testmodels::samples(&inputs, 8, 3),
        };
        crate::quantize(&m, &data, &crate::QuantizeConfig::default())
            .unwrap()
            .model
    };
    let models = [
        testmodels::mlp(),
        testmodels::cnn(),
        testmodels::transformer(),
        qdq(testmodels::cnn()),
        qdq(testmodels::transformer()),
    ];
    for m in models {
        let bytes = m.to_bytes();
        for _ in 0..150 {
            let mut b = bytes.clone();
            for _ in 0..1 + (rng.uniform() * 3.0) as usize {
                let k = (rng.uniform() * b.len() as f32) as usize % b.len();
                b[k] ^= 1 << ((rng.uniform() * 8.0) as u32 % 8);
            }
            let Ok(proto) = tract_onnx::pb::ModelProto::decode(b.as_slice()) else {
                continue;
            };
            // Any outcome but a panic is acceptable.
            match compile(&proto, &CompileOptions::default()) {
                Ok(_) => compiled += 1,
                Err(_) => refused += 1,
            }
        }
    }
    println!("mutated models: {compiled} compiled, {refused} refused");
    assert!(compiled + refused > 100);
}

#[test]
fn reference_inputs_store_class_and_input_histograms_in_the_image() {
    use edgeloop_runtime::image::writer::AlignedBytes;
    use edgeloop_runtime::telemetry::{DriftSource, ReferenceHistogram};
    use edgeloop_runtime::Model;
    // fp32 MLP: a class histogram, no input histogram (the device sees float inputs).
    let m = testmodels::mlp();
    let plain = compile(&m.proto, &CompileOptions::default()).unwrap();
    let samples: Vec<HostMap> = (0..40)
        .map(|k| f32_input(&plain, "x", &[1, 16], 100 + k))
        .collect();
    let with = compile(
        &m.proto,
        &CompileOptions {
            reference: samples.clone(),
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let r = with.report.reference.clone().expect("reference summary");
    assert_eq!(r.samples, 40);
    assert_eq!(r.classes.len(), 10);
    assert_eq!(r.classes.iter().sum::<u32>(), 40);
    assert!(r.input.is_none());
    // The histogram counts exactly the argmax of each output.
    let mut want = vec![0u32; 10];
    for s in &samples {
        let y = &plain.run(s).unwrap()["y"].f;
        let best = (0..10).fold(0, |b, c| if y[c] > y[b] { c } else { b });
        want[best] += 1;
    }
    assert_eq!(r.classes, want);
    let bytes = AlignedBytes::new(with.bytes());
    let model = Model::parse(bytes.as_slice()).unwrap();
    let h = ReferenceHistogram::<16>::from_image(&model, DriftSource::PredictedClass)
        .unwrap()
        .expect("tag 2 present");
    assert_eq!(&h.counts[..10], &want[..]);
    assert_eq!(with.report.flash.total, with.bytes().len());
    assert!(with.report.flash.statistics >= 48);
    assert!(with.report.to_string().contains("reference statistics"));
    // Same graph and outputs as without the statistics.
    assert_eq!(
        with.run(&samples[0]).unwrap()["y"].f,
        plain.run(&samples[0]).unwrap()["y"].f
    );

    // Token ids: an input histogram over the observed id range.
    let mut b = Builder::new("emb", 17, 1);
    let table = b.weight("table", &[50, 4], 1.0);
    b.output("y", &[3, 4]);
    let mut m = b.build();
    let g = m.graph_mut();
    g.input.push(value_info("ids", ElemType::I64, &[3]));
    g.node
        .push(node("Gather", "g", &[&table, "ids"], &["y"], vec![]));
    let ids: Vec<HostMap> = (0..8)
        .map(|k| {
            [(
                "ids".to_string(),
                HostTensor::int(vec![3], Elem::I64, vec![k, 2 * k, 40 + k]),
            )]
            .into_iter()
            .collect()
        })
        .collect();
    let c = compile(
        &m.proto,
        &CompileOptions {
            reference: ids,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let r = c.report.reference.clone().unwrap();
    let (lo, hi, counts) = r.input.expect("input histogram");
    assert_eq!((lo, hi), (0, 47));
    assert_eq!(counts.len(), reference::INPUT_BINS);
    assert_eq!(counts.iter().sum::<u32>(), 24);
    assert_eq!(r.classes.iter().sum::<u32>(), 24, "3 rows per sample");
    let bytes = AlignedBytes::new(c.bytes());
    let model = Model::parse(bytes.as_slice()).unwrap();
    let h = ReferenceHistogram::<16>::from_image(&model, DriftSource::Input)
        .unwrap()
        .expect("tag 1 present");
    assert_eq!(h.counts.to_vec(), counts);
    assert_eq!(h.bin(47), 15);
}

/// `CompileOptions::prepack` writes FullyConnected version 2 (pre-packed weights, column terms)
/// for the int8 FullyConnected ops with at least 4 rows, and the image's outputs are exactly the
/// unpacked image's: a linear layer with a bias (4 rows) and the transformer encoder.
#[test]
fn prepacked_fully_connected_gives_the_same_outputs() {
    use edgeloop_runtime::image::writer::AlignedBytes;
    use edgeloop_runtime::Model;
    for (m, x_shape) in [
        (testmodels::linear_bias(true), vec![1, 4, 16]),
        (testmodels::transformer(), Vec::new()),
    ] {
        let inputs = m.inputs(&Default::default()).unwrap();
        let calib = crate::Dataset {
            samples: testmodels::samples(&inputs, 16, 7),
        };
        let q = crate::quantize(&m, &calib, &crate::QuantizeConfig::default()).unwrap();
        // Unfused, so that FullyConnected is the only op with a version 2.
        let plain = compile(
            &q.model.proto,
            &CompileOptions {
                unfused: true,
                ..CompileOptions::default()
            },
        )
        .unwrap();
        let packed = compile(
            &q.model.proto,
            &CompileOptions {
                prepack: true,
                unfused: true,
                ..CompileOptions::default()
            },
        )
        .unwrap();
        let versions = |c: &Compiled| {
            let bytes = AlignedBytes::new(c.bytes());
            let model = Model::parse(bytes.as_slice()).unwrap();
            let v: Vec<u8> = model.ops().map(|r| r.unwrap().version).collect();
            (
                model.format_version(),
                v.iter().filter(|&&v| v == 2).count(),
            )
        };
        let (fmt, v2) = versions(&packed);
        assert!(v2 > 0, "no pre-packed FullyConnected");
        assert_eq!(fmt, (1, 2));
        assert_eq!(versions(&plain).1, 0);
        assert_eq!(plain.report.ops.len(), packed.report.ops.len());
        // A firmware running the packed image needs the flag that links version 2.
        assert!(
            packed.report.firmware_op_set.ends_with(" | PACKED_WEIGHTS"),
            "{}",
            packed.report.firmware_op_set
        );
        assert!(!plain.report.firmware_op_set.contains("PACKED"));
        {
            use edgeloop_runtime::image::{ALL_OPS, PACKED_WEIGHTS};
            let bytes = AlignedBytes::new(packed.bytes());
            assert!(matches!(
                Model::parse_with_ops::<{ ALL_OPS & !PACKED_WEIGHTS }>(bytes.as_slice()),
                Err(edgeloop_runtime::Error::UnsupportedOp { .. })
            ));
            let bytes = AlignedBytes::new(plain.bytes());
            Model::parse_with_ops::<{ ALL_OPS & !PACKED_WEIGHTS }>(bytes.as_slice()).unwrap();
        }
        let spec = &inputs[0];
        let shape = if x_shape.is_empty() {
            spec.shape.clone()
        } else {
            x_shape.clone()
        };
        for seed in 0..4 {
            let x = f32_input(&plain, &spec.name, &shape, 40 + seed);
            let (a, b) = (plain.run(&x).unwrap(), packed.run(&x).unwrap());
            assert_eq!(a.len(), b.len());
            for (name, t) in &a {
                assert_eq!(t.f, b[name].f, "{name}, seed {seed}");
            }
        }
    }
}

/// By default the transformer's attention-score chains (Dequantize, Mul, Softmax, Quantize) and
/// its Dequantize → LayerNorm → Quantize are fused into Softmax and LayerNorm version 2 (format
/// 1.3): the outputs are exactly the unfused image's, with fewer ops and no larger arena.
#[test]
fn fused_int8_islands_give_the_same_outputs() {
    use edgeloop_runtime::image::writer::AlignedBytes;
    use edgeloop_runtime::Model;
    let m = testmodels::transformer();
    let inputs = m.inputs(&Default::default()).unwrap();
    let calib = crate::Dataset {
        samples: testmodels::samples(&inputs, 16, 7),
    };
    let q = crate::quantize(&m, &calib, &crate::QuantizeConfig::default()).unwrap();
    let fused = compile(&q.model.proto, &CompileOptions::default()).unwrap();
    let plain = compile(
        &q.model.proto,
        &CompileOptions {
            unfused: true,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let facts = |c: &Compiled| {
        let bytes = AlignedBytes::new(c.bytes());
        let model = Model::parse(bytes.as_slice()).unwrap();
        let v2 = |code: edgeloop_runtime::image::OpCode| {
            model
                .ops()
                .map(|r| r.unwrap())
                .filter(|r| r.code == code as u8 && r.version == 2)
                .count()
        };
        use edgeloop_runtime::image::OpCode;
        // (This block's LayerNorms have a few rows: fusing them would grow the arena, so they
        // stay; its attention softmax fuses.)
        let softmax_v2 = v2(OpCode::Softmax) + v2(OpCode::LayerNorm);
        (
            model.format_version(),
            model.num_ops(),
            model.arena_bytes(),
            softmax_v2,
        )
    };
    let (f_fmt, f_ops, f_arena, f_v2) = facts(&fused);
    let (p_fmt, p_ops, p_arena, p_v2) = facts(&plain);
    assert!(f_v2 > 0, "no fused softmax");
    assert_eq!(p_v2, 0);
    assert_eq!(f_fmt, (1, 3));
    assert!(p_fmt.1 < 3);
    assert!(f_ops + 2 * f_v2 <= p_ops, "{f_ops} ops fused vs {p_ops}");
    assert!(f_arena <= p_arena, "arena {f_arena} fused vs {p_arena}");
    let spec = &inputs[0];
    for seed in 0..4 {
        let x = f32_input(&plain, &spec.name, &spec.shape, 60 + seed);
        let (a, b) = (plain.run(&x).unwrap(), fused.run(&x).unwrap());
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            assert_eq!(t.f, b[name].f, "{name}, seed {seed}");
        }
    }
}

//! The exported graphs run in ONNX Runtime and tract and agree with candle (max relative error
//! below 1e-4 of the output's largest magnitude).

use super::*;
use crate::models::{BertConfig, BuildOptions, GptConfig, Params};
use candle_core::Device;
use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;
use tract_onnx::prelude::{
    tract_ndarray, Framework, InferenceModelExt, IntoRunnable, IntoTensor, TValue, TVec,
};

fn ort_env() -> &'static ort::environment::Environment {
    static ENV: OnceLock<ort::environment::Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var("ORT_DYLIB_PATH")
            .expect("ORT_DYLIB_PATH must point to libonnxruntime (scripts/test.sh sets it)");
        ort::init_from(path)
            .expect("load ONNX Runtime")
            .build()
            .expect("ORT environment")
    })
}

/// Runs `bytes` in ONNX Runtime (graph optimization Level1) on int64 inputs.
fn run_ort(bytes: &[u8], inputs: &[(&str, Vec<usize>, Vec<i64>)]) -> Vec<f32> {
    use ort::session::{builder::GraphOptimizationLevel, Session};
    let mut s = Session::builder(ort_env())
        .unwrap()
        .with_optimization_level(GraphOptimizationLevel::Level1)
        .unwrap()
        .commit_from_memory(bytes)
        .expect("ONNX Runtime loads the export");
    let values: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> = inputs
        .iter()
        .map(|(n, shape, v)| {
            let t = ort::value::Tensor::from_array((shape.clone(), v.clone())).unwrap();
            (std::borrow::Cow::from(n.to_string()), t.into())
        })
        .collect();
    let out = s.run(values).expect("ORT run");
    let (_, data) = out[0].try_extract_tensor::<f32>().unwrap();
    data.to_vec()
}

/// Runs `bytes` in tract on int64 inputs.
fn run_tract(bytes: &[u8], inputs: &[(&str, Vec<usize>, Vec<i64>)]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .expect("tract parses the export")
        .into_optimized()
        .expect("tract optimizes")
        .into_runnable()
        .unwrap();
    let tv: TVec<TValue> = inputs
        .iter()
        .map(|(_, shape, v)| {
            tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v.clone())
                .unwrap()
                .into_tensor()
                .into()
        })
        .collect();
    let out = model.run(tv).expect("tract run");
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn max_rel_err(reference: &[f32], got: &[f32]) -> f32 {
    assert_eq!(reference.len(), got.len());
    let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
    reference
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / scale
}

fn random_ids(b: usize, t: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..b * t).map(|_| rng.gen_range(0..vocab as u32)).collect()
}

fn tiny_gpt(num_labels: Option<usize>) -> (Gpt, Params) {
    let cfg = GptConfig {
        vocab_size: 23,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 12,
        tied_embeddings: true,
        bias: true,
        layer_norm_eps: 1e-5,
        num_labels,
    };
    let mut p = Params::new(11, &Device::Cpu);
    // Larger init than 0.02 so that the test exercises non-trivial attention patterns.
    let model = Gpt::new(&cfg, &mut p, BuildOptions::default()).unwrap();
    for (_, v) in p.iter() {
        if v.rank() == 2 {
            v.set(&(v.as_tensor() * 10.0).unwrap()).unwrap();
        }
    }
    (model, p)
}

fn tiny_bert(num_labels: Option<usize>) -> (Bert, Params) {
    let cfg = BertConfig {
        vocab_size: 29,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 32,
        max_position_embeddings: 10,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        tied_embeddings: true,
        num_labels,
    };
    let mut p = Params::new(12, &Device::Cpu);
    let model = Bert::new(&cfg, &mut p, BuildOptions::default()).unwrap();
    for (_, v) in p.iter() {
        if v.rank() == 2 {
            v.set(&(v.as_tensor() * 10.0).unwrap()).unwrap();
        }
    }
    (model, p)
}

fn compare(name: &str, candle_out: &Tensor, bytes: &[u8], inputs: &[(&str, Vec<usize>, Vec<i64>)]) {
    let reference: Vec<f32> = candle_out.flatten_all().unwrap().to_vec1().unwrap();
    let ort = run_ort(bytes, inputs);
    let tract = run_tract(bytes, inputs);
    let (e_ort, e_tract) = (
        max_rel_err(&reference, &ort),
        max_rel_err(&reference, &tract),
    );
    println!("{name}: max rel error vs candle: ORT {e_ort:.2e}, tract {e_tract:.2e}");
    assert!(e_ort < 1e-4, "{name}: ORT differs from candle by {e_ort}");
    assert!(
        e_tract < 1e-4,
        "{name}: tract differs from candle by {e_tract}"
    );
}

fn to_i64(v: &[u32]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

#[test]
fn gpt_lm_export_matches_candle_in_ort_and_tract() {
    let (gpt, _p) = tiny_gpt(None);
    let (b, t) = (2, 12);
    let ids = random_ids(b, t, 23, 1);
    let out = gpt
        .forward(&Tensor::from_slice(&ids, (b, t), &Device::Cpu).unwrap())
        .unwrap();
    for opset in [17, 20] {
        let m = export_gpt(
            &gpt,
            &ExportOptions {
                batch: b,
                seq_len: t,
                opset,
                head: Head::Lm,
            },
        )
        .unwrap();
        let names: Vec<&str> = m
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert!(
            names.contains(&"h.0.attn.q.weight_t") && names.contains(&"wte.weight"),
            "{names:?}"
        );
        compare(
            &format!("gpt lm opset {opset}"),
            &out,
            &graph::encode(&m),
            &[("input_ids", vec![b, t], to_i64(&ids))],
        );
    }
}

#[test]
fn gpt_classifier_export_matches_candle() {
    let (gpt, _p) = tiny_gpt(Some(3));
    let (b, t) = (3, 8);
    let ids = random_ids(b, t, 23, 2);
    let mask: Vec<u32> = (0..b * t)
        .map(|i| u32::from(i % t < 3 + 2 * (i / t)))
        .collect();
    let dev = Device::Cpu;
    let out = gpt
        .classify(
            &Tensor::from_slice(&ids, (b, t), &dev).unwrap(),
            Some(&Tensor::from_slice(&mask, (b, t), &dev).unwrap()),
        )
        .unwrap();
    let m = export_gpt(
        &gpt,
        &ExportOptions {
            batch: b,
            seq_len: t,
            opset: 17,
            head: Head::Classifier,
        },
    )
    .unwrap();
    compare(
        "gpt classifier",
        &out,
        &graph::encode(&m),
        &[
            ("input_ids", vec![b, t], to_i64(&ids)),
            ("attention_mask", vec![b, t], to_i64(&mask)),
        ],
    );
}

/// The fixed-length GPT classifier (no mask input, mean over every position) is the model
/// classifying with an all-ones mask.
#[test]
fn gpt_fixed_length_classifier_export_matches_candle() {
    let (gpt, _p) = tiny_gpt(Some(3));
    let (b, t) = (2, 8);
    let ids = random_ids(b, t, 23, 3);
    let dev = Device::Cpu;
    let ones = Tensor::ones((b, t), candle_core::DType::U32, &dev).unwrap();
    let out = gpt
        .classify(
            &Tensor::from_slice(&ids, (b, t), &dev).unwrap(),
            Some(&ones),
        )
        .unwrap();
    for opset in [17, 20] {
        let m = export_gpt_fixed_length(
            &gpt,
            &ExportOptions {
                batch: b,
                seq_len: t,
                opset,
                head: Head::Classifier,
            },
        )
        .unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.input.len(), 1, "only input_ids");
        compare(
            &format!("gpt fixed-length classifier opset {opset}"),
            &out,
            &graph::encode(&m),
            &[("input_ids", vec![b, t], to_i64(&ids))],
        );
    }
}

#[test]
fn bert_exports_match_candle() {
    let (bert, _p) = tiny_bert(Some(4));
    let (b, t) = (2, 10);
    let ids = random_ids(b, t, 29, 3);
    let mask: Vec<u32> = (0..b * t)
        .map(|i| u32::from(i % t < 6 + 4 * (i / t)))
        .collect();
    let dev = Device::Cpu;
    let (x, am) = (
        Tensor::from_slice(&ids, (b, t), &dev).unwrap(),
        Tensor::from_slice(&mask, (b, t), &dev).unwrap(),
    );
    let inputs = [
        ("input_ids", vec![b, t], to_i64(&ids)),
        ("attention_mask", vec![b, t], to_i64(&mask)),
    ];
    for (head, out) in [
        (Head::Lm, bert.forward_mlm(&x, Some(&am)).unwrap()),
        (Head::Embedding, bert.embed(&x, Some(&am)).unwrap()),
        (Head::Classifier, bert.classify(&x, Some(&am)).unwrap()),
    ] {
        let m = export_bert(
            &bert,
            &ExportOptions {
                batch: b,
                seq_len: t,
                opset: 20,
                head,
            },
        )
        .unwrap();
        compare(
            &format!("encoder {head:?}"),
            &out,
            &graph::encode(&m),
            &inputs,
        );
    }
}

#[test]
fn export_rejects_bad_options() {
    let (gpt, _p) = tiny_gpt(None);
    let bad = [
        ExportOptions {
            batch: 1,
            seq_len: 13,
            opset: 17,
            head: Head::Lm,
        },
        ExportOptions {
            batch: 0,
            seq_len: 4,
            opset: 17,
            head: Head::Lm,
        },
        ExportOptions {
            batch: 1,
            seq_len: 4,
            opset: 13,
            head: Head::Lm,
        },
        ExportOptions {
            batch: 1,
            seq_len: 4,
            opset: 17,
            head: Head::Classifier,
        },
        ExportOptions {
            batch: 1,
            seq_len: 4,
            opset: 17,
            head: Head::Embedding,
        },
    ];
    for o in bad {
        assert!(export_gpt(&gpt, &o).is_err(), "{o:?}");
    }
}

/// Generation with the decode-step graph and a key/value cache in ONNX Runtime reproduces the
/// full-context candle logits at every position.
#[test]
fn gpt_decode_step_with_cache_matches_full_forward() {
    use ort::session::{builder::GraphOptimizationLevel, Session};
    let (gpt, _p) = tiny_gpt(None);
    let cfg = gpt.config.clone();
    let (l, v, h, d) = (
        cfg.block_size,
        cfg.vocab_size,
        cfg.n_head,
        cfg.n_embd / cfg.n_head,
    );
    let p_len = l - 1;
    let ids = random_ids(1, l, v, 4);
    let full: Vec<f32> = gpt
        .forward(&Tensor::from_slice(&ids, (1, l), &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let bytes = graph::encode(&export_gpt_decode_step(&gpt, 1, 17).unwrap());
    let mut s = Session::builder(ort_env())
        .unwrap()
        .with_optimization_level(GraphOptimizationLevel::Level1)
        .unwrap()
        .commit_from_memory(&bytes)
        .unwrap();
    let mut cache: Vec<(Vec<f32>, Vec<f32>)> = (0..cfg.n_layer)
        .map(|_| (vec![0.0; h * p_len * d], vec![0.0; h * p_len * d]))
        .collect();
    let mut mask = vec![0i64; p_len];
    let mut got = Vec::new();
    for t in 0..l {
        let mut inputs: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> = vec![
            (
                "input_ids".into(),
                ort::value::Tensor::from_array((vec![1usize, 1], vec![ids[t] as i64]))
                    .unwrap()
                    .into(),
            ),
            (
                "position".into(),
                ort::value::Tensor::from_array((vec![1usize], vec![t as i64]))
                    .unwrap()
                    .into(),
            ),
            (
                "past_mask".into(),
                ort::value::Tensor::from_array((vec![1usize, p_len], mask.clone()))
                    .unwrap()
                    .into(),
            ),
        ];
        for (i, (k, vv)) in cache.iter().enumerate() {
            inputs.push((
                format!("past_key.{i}").into(),
                ort::value::Tensor::from_array((vec![1, h, p_len, d], k.clone()))
                    .unwrap()
                    .into(),
            ));
            inputs.push((
                format!("past_value.{i}").into(),
                ort::value::Tensor::from_array((vec![1, h, p_len, d], vv.clone()))
                    .unwrap()
                    .into(),
            ));
        }
        let out = s.run(inputs).unwrap();
        got.extend_from_slice(out["logits"].try_extract_tensor::<f32>().unwrap().1);
        if t < p_len {
            for (i, (k, vv)) in cache.iter_mut().enumerate() {
                let pk = out[format!("present_key.{i}").as_str()]
                    .try_extract_tensor::<f32>()
                    .unwrap()
                    .1
                    .to_vec();
                let pv = out[format!("present_value.{i}").as_str()]
                    .try_extract_tensor::<f32>()
                    .unwrap()
                    .1
                    .to_vec();
                for hh in 0..h {
                    k[(hh * p_len + t) * d..(hh * p_len + t + 1) * d]
                        .copy_from_slice(&pk[hh * d..(hh + 1) * d]);
                    vv[(hh * p_len + t) * d..(hh * p_len + t + 1) * d]
                        .copy_from_slice(&pv[hh * d..(hh + 1) * d]);
                }
            }
            mask[t] = 1;
        }
    }
    let e = max_rel_err(&full, &got);
    println!("gpt decode step (ORT, {l} steps with cache): max rel error vs candle {e:.2e}");
    assert!(e < 1e-4, "{e}");
}

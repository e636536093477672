//! Gradient checks: every trainable tensor of each model and head receives a non-zero
//! gradient, and autograd agrees with central finite differences on a tiny GPT.

use super::*;
use crate::train::objectives::{self, TokenBatch};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

pub(crate) fn tiny_gpt_config(num_labels: Option<usize>) -> GptConfig {
    GptConfig {
        vocab_size: 17,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        block_size: 8,
        tied_embeddings: true,
        bias: true,
        layer_norm_eps: 1e-5,
        num_labels,
    }
}

pub(crate) fn tiny_bert_config(num_labels: Option<usize>) -> BertConfig {
    BertConfig {
        vocab_size: 19,
        hidden_size: 8,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 16,
        max_position_embeddings: 8,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        tied_embeddings: false,
        num_labels,
    }
}

fn sequences(n: usize, len: usize, vocab: u32, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..len).map(|_| rng.gen_range(3..vocab)).collect())
        .collect()
}

fn assert_all_grads_nonzero(params: &Params, loss: &Tensor, skip: &[&str]) {
    let grads = loss.backward().unwrap();
    for (name, var) in params.trainable() {
        if skip.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reaches {name}"));
        let n = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0 && n.is_finite(), "gradient of {name} is {n}");
    }
}

#[test]
fn gpt_every_parameter_gets_a_gradient() {
    let dev = Device::Cpu;
    let mut p = Params::new(1, &dev);
    let cfg = GptConfig {
        tied_embeddings: false,
        ..tiny_gpt_config(Some(3))
    };
    let gpt = Gpt::new(&cfg, &mut p, BuildOptions::default()).unwrap();
    let batch = TokenBatch::causal(&sequences(3, 9, 17, 2)).unwrap();
    let loss = objectives::gpt_lm_loss(&gpt, &batch).unwrap();
    assert_all_grads_nonzero(&p, &loss, &["classifier"]);
    let ids = Tensor::from_slice(&batch.inputs, (3, 8), &dev).unwrap();
    let labels = Tensor::new(&[0u32, 2, 1], &dev).unwrap();
    let loss =
        objectives::classification_loss(&gpt.classify(&ids, None).unwrap(), &labels).unwrap();
    assert_all_grads_nonzero(&p, &loss, &["lm_head"]);
}

#[test]
fn bert_every_parameter_gets_a_gradient() {
    let dev = Device::Cpu;
    let mut p = Params::new(2, &dev);
    let bert = Bert::new(&tiny_bert_config(Some(2)), &mut p, BuildOptions::default()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let batch = TokenBatch::masked(&sequences(4, 8, 19, 4), 19, 2, &[], 0.3, &mut rng).unwrap();
    let loss = objectives::bert_mlm_loss(&bert, &batch).unwrap();
    // segment embedding rows other than 0 are never used (segment ids are all 0)
    assert_all_grads_nonzero(
        &p,
        &loss,
        &["classifier", "embeddings.token_type_embeddings"],
    );
    let ids = Tensor::from_slice(&batch.inputs, (4, 8), &dev).unwrap();
    let labels = Tensor::new(&[0u32, 1, 1, 0], &dev).unwrap();
    let loss =
        objectives::classification_loss(&bert.classify(&ids, None).unwrap(), &labels).unwrap();
    assert_all_grads_nonzero(&p, &loss, &["cls.", "embeddings.token_type_embeddings"]);
}

#[test]
fn gpt_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let mut p = Params::new(3, &dev);
    let gpt = Gpt::new(&tiny_gpt_config(None), &mut p, BuildOptions::default()).unwrap();
    // scale weights up so the function is far from linear
    for (_, v) in p.iter() {
        if v.rank() == 2 {
            v.set(&(v.as_tensor() * 10.0).unwrap()).unwrap();
        }
    }
    let batch = TokenBatch::causal(&sequences(2, 7, 17, 5)).unwrap();
    let loss_of = || objectives::gpt_lm_loss(&gpt, &batch).unwrap();
    let grads = loss_of().backward().unwrap();
    let mut checked = 0;
    for name in [
        "wte.weight",
        "wpe.weight",
        "h.0.ln_1.weight",
        "h.0.attn.q.weight",
        "h.1.attn.v.bias",
        "h.1.mlp.fc.weight",
        "h.1.mlp.proj.weight",
        "ln_f.bias",
    ] {
        let var = p.var(name).unwrap().clone();
        let g: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base = var.as_tensor().copy().unwrap();
        let flat: Vec<f32> = base.flatten_all().unwrap().to_vec1().unwrap();
        // the coordinate with the largest gradient, and one more
        let imax = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        for i in [imax, g.len() / 2] {
            let eps = 1e-2f32;
            let eval = |delta: f32| {
                let mut v = flat.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, base.shape(), &dev).unwrap())
                    .unwrap();
                loss_of().to_scalar::<f32>().unwrap()
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            var.set(&base).unwrap();
            assert!(
                (fd - g[i]).abs() <= 1e-3 + 3e-2 * fd.abs().max(g[i].abs()),
                "{name}[{i}]: finite difference {fd}, autograd {}",
                g[i]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}

#[test]
fn configs_read_json_and_reject_bad_sizes() {
    let cfg: GptConfig = serde_json::from_str(
        r#"{"vocab_size": 65, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64}"#,
    )
    .unwrap();
    assert!(cfg.tied_embeddings && cfg.bias && cfg.num_labels.is_none());
    let bad = GptConfig {
        n_embd: 10,
        n_head: 4,
        ..cfg.clone()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("n_embd"));
    let hf = r#"{"architectures": ["BertModel"], "hidden_act": "gelu", "hidden_size": 384, "intermediate_size": 1536,
        "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 6, "vocab_size": 30522, "layer_norm_eps": 1e-12}"#;
    let b: BertConfig = serde_json::from_str(hf).unwrap();
    assert_eq!(b.type_vocab_size, 2);
    b.validate().unwrap();
}

#[test]
fn out_of_range_tokens_and_long_inputs_are_errors() {
    let dev = Device::Cpu;
    let mut p = Params::new(4, &dev);
    let gpt = Gpt::new(&tiny_gpt_config(None), &mut p, BuildOptions::default()).unwrap();
    let bad = Tensor::new(&[[1u32, 17]], &dev).unwrap();
    assert!(gpt
        .forward(&bad)
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    let long = Tensor::zeros((1, 9), candle_core::DType::U32, &dev).unwrap();
    assert!(gpt
        .forward(&long)
        .unwrap_err()
        .to_string()
        .contains("longer than the context"));
}

#[test]
fn bf16_autocast_keeps_gradients_f32_and_close_to_f32() {
    use candle_core::DType;
    let dev = Device::Cpu;
    let cfg = GptConfig {
        tied_embeddings: false,
        ..tiny_gpt_config(None)
    };
    let batch = TokenBatch::causal(&sequences(3, 9, 17, 5)).unwrap();
    let loss_and_grads = |autocast: DType| {
        let mut p = Params::new(11, &dev);
        p.set_autocast(autocast).unwrap();
        let gpt = Gpt::new(&cfg, &mut p, BuildOptions::default()).unwrap();
        let loss = objectives::gpt_lm_loss(&gpt, &batch).unwrap();
        assert_eq!(loss.dtype(), DType::F32);
        let grads = loss.backward().unwrap();
        let g: Vec<(String, Vec<f32>)> = p
            .trainable()
            .into_iter()
            .map(|(n, v)| {
                let g = grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient reaches {n} under {autocast:?}"));
                assert_eq!(g.dtype(), DType::F32, "{n}");
                (n, g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            })
            .collect();
        (loss.to_scalar::<f32>().unwrap(), g)
    };
    let (l32, g32) = loss_and_grads(DType::F32);
    let (l16, g16) = loss_and_grads(DType::BF16);
    assert_eq!(g32.len(), g16.len());
    // bf16 keeps 8 mantissa bits: the loss agrees to ~1e-2 relative, gradients by direction
    assert!((l32 - l16).abs() / l32 < 1e-2, "loss f32 {l32} bf16 {l16}");
    assert!(
        l16 != l32,
        "autocast changed nothing: the products did not run in bf16"
    );
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let largest = g32.iter().map(|(_, g)| norm(g)).fold(0f32, f32::max);
    for ((n, a), (_, b)) in g32.iter().zip(&g16) {
        let (na, nb) = (norm(a), norm(b));
        assert!(nb > 0.0, "{n}: zero gradient under bf16");
        // the key bias's true gradient is 0 (softmax ignores a per-query constant): both are
        // rounding noise there, with no direction to compare
        if na < 1e-3 * largest {
            continue;
        }
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let cos = dot / (na * nb);
        assert!(cos > 0.98, "{n}: gradient cosine f32 vs bf16 {cos}");
    }
    let mut p = Params::new(1, &dev);
    assert!(p.set_autocast(DType::U8).is_err());
}

#[test]
fn parameter_counts_match_the_built_models() {
    let dev = Device::Cpu;
    for (tied, bias, labels) in [
        (true, true, None),
        (false, false, Some(3)),
        (true, false, Some(1)),
    ] {
        let cfg = GptConfig {
            tied_embeddings: tied,
            bias,
            ..tiny_gpt_config(labels)
        };
        let mut p = Params::new(1, &dev);
        Gpt::new(&cfg, &mut p, BuildOptions::default()).unwrap();
        assert_eq!(cfg.num_parameters(), Some(p.num_elements()), "{cfg:?}");
    }
    for (tied, labels) in [(false, None), (true, Some(4))] {
        let cfg = BertConfig {
            tied_embeddings: tied,
            ..tiny_bert_config(labels)
        };
        let mut p = Params::new(1, &dev);
        Bert::new(&cfg, &mut p, BuildOptions::default()).unwrap();
        assert_eq!(cfg.num_parameters(), Some(p.num_elements()), "{cfg:?}");
        let spec = super::ModelSpec::Bert(cfg);
        assert_eq!(spec.num_parameters(), Some(p.num_elements()));
    }
}

/// Hostile or mistyped configs (as `config.json` of a checkpoint, or `--config` of `edgeloop
/// train`) are errors naming the field, before anything is allocated.
#[test]
fn hostile_configs_are_refused_before_allocating() {
    let dev = Device::Cpu;
    let gpt = |json: &str| -> String {
        let spec: super::ModelSpec = serde_json::from_str(json).unwrap();
        let e = spec.validate().unwrap_err().to_string();
        if let super::ModelSpec::Gpt(c) = &spec {
            let mut p = Params::new(0, &dev);
            let built = Gpt::new(c, &mut p, BuildOptions::default()).unwrap_err();
            assert_eq!(built.to_string(), e);
            assert_eq!(p.num_elements(), 0);
        }
        e
    };
    let base = r#""arch": "gpt", "vocab_size": 65, "n_layer": 2, "n_head": 4, "n_embd": 32, "block_size": 16"#;
    for (patch, want) in [
        (r#""vocab_size": 1000000000"#, "model size"),
        (r#""n_embd": 4000000000"#, "model size"),
        (r#""block_size": 18446744073709551615"#, "model size"),
        (r#""n_layer": 1000000"#, "n_layer"),
        (r#""n_head": 0"#, "n_head"),
        (r#""n_embd": 30"#, "not divisible by n_head"),
        (r#""layer_norm_eps": -1.0"#, "layer_norm_eps"),
        (r#""layer_norm_eps": 0.0"#, "layer_norm_eps"),
        (r#""num_labels": 18446744073709551615"#, "model size"),
    ] {
        let key = patch.split(':').next().unwrap();
        let json = format!(
            "{{{}, {patch}}}",
            base.split(", ")
                .filter(|kv| !kv.starts_with(key))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let e = gpt(&json);
        assert!(e.contains(want), "{json}: {e}");
    }
    // The width alone overflows usize: still an error, not an overflow panic.
    let huge = GptConfig {
        n_embd: usize::MAX,
        n_head: 1,
        ..tiny_gpt_config(None)
    };
    assert_eq!(huge.num_parameters(), None);
    let e = huge.validate().unwrap_err().to_string();
    assert!(e.contains("over 2^64"), "{e}");
    // BERT: the feed-forward width and the segment vocabulary count too.
    for cfg in [
        BertConfig {
            intermediate_size: 1 << 40,
            ..tiny_bert_config(None)
        },
        BertConfig {
            type_vocab_size: usize::MAX / 2,
            ..tiny_bert_config(None)
        },
        BertConfig {
            num_hidden_layers: MAX_LAYERS + 1,
            ..tiny_bert_config(None)
        },
    ] {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("model size") || e.contains("num_hidden_layers"),
            "{e}"
        );
        let mut p = Params::new(0, &dev);
        assert!(Bert::new(&cfg, &mut p, BuildOptions::default()).is_err());
        assert_eq!(p.num_elements(), 0);
    }
    // At the bound: valid (counted, not built).
    let mut edge = tiny_gpt_config(None);
    edge.vocab_size = MAX_PARAMETERS / edge.n_embd - 1000;
    edge.validate().unwrap();
    edge.vocab_size = MAX_PARAMETERS / edge.n_embd + 1;
    assert!(edge.validate().is_err());
}

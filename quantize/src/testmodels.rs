//! Small fp32 ONNX models built in code (an MLP, a CNN, a transformer block) with deterministic
//! random weights, and random input samples: used by the tests of this crate and the CLI.

use std::collections::HashMap;

use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, OperatorSetIdProto};

use crate::onnx::{
    attr_float, attr_int, attr_ints, node, value_info, ElemType, InputSpec, OnnxModel,
};
use crate::runner::Sample;
use crate::tensor::{self, Tensor};

/// Deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Approximately standard normal (Irwin–Hall of 12 uniforms).
    pub fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }
}

/// Builds a single-graph model node by node.
pub struct Builder {
    graph: GraphProto,
    opset: i64,
    rng: Rng,
}

impl Builder {
    /// A builder for the default domain at `opset`.
    pub fn new(name: &str, opset: i64, seed: u64) -> Self {
        Builder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
            opset,
            rng: Rng::new(seed),
        }
    }

    /// Declares a float input.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> String {
        self.graph
            .input
            .push(value_info(name, ElemType::F32, shape));
        name.to_string()
    }

    /// Declares a float output.
    pub fn output(&mut self, name: &str, shape: &[usize]) {
        self.graph
            .output
            .push(value_info(name, ElemType::F32, shape));
    }

    /// A random initializer with standard deviation `std`.
    pub fn weight(&mut self, name: &str, shape: &[usize], std: f32) -> String {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.normal() * std).collect();
        self.constant(name, shape, &v)
    }

    /// A given initializer.
    pub fn constant(&mut self, name: &str, shape: &[usize], v: &[f32]) -> String {
        self.graph
            .initializer
            .push(tensor::f32_proto(name, shape, v));
        name.to_string()
    }

    /// An int64 initializer.
    pub fn ints(&mut self, name: &str, v: &[i64]) -> String {
        self.graph
            .initializer
            .push(tensor::i64_proto(name, &[v.len()], v));
        name.to_string()
    }

    /// Adds a node whose single output is named after it; returns the output name.
    pub fn op(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        self.graph.node.push(node(op, name, inputs, &[name], attrs));
        name.to_string()
    }

    /// The model.
    pub fn build(self) -> OnnxModel {
        OnnxModel {
            proto: ModelProto {
                ir_version: if self.opset >= 19 { 9 } else { 8 },
                opset_import: vec![OperatorSetIdProto {
                    domain: String::new(),
                    version: self.opset,
                }],
                producer_name: "edgeloop-quantize tests".into(),
                graph: Some(self.graph),
                ..Default::default()
            },
        }
    }
}

/// MLP at opset 17: Gemm+Relu, MatMul+Add+Relu, Gemm; input `x` [1, 16], output `y` [1, 10].
pub fn mlp() -> OnnxModel {
    let mut b = Builder::new("mlp", 17, 1);
    let x = b.input("x", &[1, 16]);
    let w1 = b.weight("fc1.weight", &[32, 16], 0.35);
    let b1 = b.weight("fc1.bias", &[32], 0.1);
    let h = b.op("Gemm", "fc1", &[&x, &w1, &b1], vec![attr_int("transB", 1)]);
    let h = b.op("Relu", "relu1", &[&h], vec![]);
    let w2 = b.weight("fc2.weight", &[32, 24], 0.25);
    let b2 = b.weight("fc2.bias", &[24], 0.1);
    let h = b.op("MatMul", "fc2", &[&h, &w2], vec![]);
    let h = b.op("Add", "fc2_bias", &[&h, &b2], vec![]);
    let h = b.op("Relu", "relu2", &[&h], vec![]);
    let w3 = b.weight("fc3.weight", &[10, 24], 0.3);
    let b3 = b.weight("fc3.bias", &[10], 0.1);
    b.graph.node.push(node(
        "Gemm",
        "fc3",
        &[&h, &w3, &b3],
        &["y"],
        vec![attr_int("transB", 1)],
    ));
    b.output("y", &[1, 10]);
    b.build()
}

/// Two linear layers as trainers export them, at opset 17: `MatMul` by a constant `[K, N]` weight
/// then `Add` of a constant `[N]` bias (the second layer adds `bias + h`, the other operand
/// order), with a Relu between; input `x` [1, 4, 16], output `y` [1, 4, 12]. Without `bias`, the
/// same layers with no Add (to count the ops the biases cost).
pub fn linear_bias(bias: bool) -> OnnxModel {
    let mut b = Builder::new("linear_bias", 17, 6);
    let x = b.input("x", &[1, 4, 16]);
    let w1 = b.weight("l1.weight", &[16, 32], 0.3);
    let b1 = b.weight("l1.bias", &[32], 0.2);
    let w2 = b.weight("l2.weight", &[32, 12], 0.25);
    let b2 = b.weight("l2.bias", &[12], 0.2);
    let mut h = b.op("MatMul", "l1", &[&x, &w1], vec![]);
    if bias {
        h = b.op("Add", "l1_bias", &[&h, &b1], vec![]);
    }
    let h = b.op("Relu", "relu", &[&h], vec![]);
    if bias {
        let h = b.op("MatMul", "l2", &[&h, &w2], vec![]);
        b.graph
            .node
            .push(node("Add", "l2_bias", &[&b2, &h], &["y"], vec![]));
    } else {
        b.graph
            .node
            .push(node("MatMul", "l2", &[&h, &w2], &["y"], vec![]));
    }
    b.output("y", &[1, 4, 12]);
    b.build()
}

/// A classifier head as the trainer exports it, at opset 17: mean pooling over the positions
/// (`ReduceMean`, axis 1; float, not a default quantized op type), a hidden linear layer
/// (`MatMul` + `Add` of a bias, Relu), and the head `MatMul` + `Add` whose sum a float
/// `Identity` copies to the graph output `logits`; input `x` [1, 4, 16], output `logits`
/// [1, 3]. The `Identity` is not quantized, so it reads the head's float sum.
pub fn linear_bias_head() -> OnnxModel {
    let mut b = Builder::new("linear_bias_head", 17, 8);
    let x = b.input("x", &[1, 4, 16]);
    let w1 = b.weight("l1.weight", &[16, 32], 0.3);
    let b1 = b.weight("l1.bias", &[32], 0.2);
    let w2 = b.weight("classifier.weight", &[32, 3], 0.25);
    let b2 = b.weight("classifier.bias", &[3], 0.2);
    let p = b.op(
        "ReduceMean",
        "pool",
        &[&x],
        vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
    );
    let h = b.op("MatMul", "l1", &[&p, &w1], vec![]);
    let h = b.op("Add", "l1_bias", &[&h, &b1], vec![]);
    let h = b.op("Relu", "relu", &[&h], vec![]);
    let y = b.op("MatMul", "classifier", &[&h, &w2], vec![]);
    let y = b.op("Add", "classifier_bias", &[&y, &b2], vec![]);
    b.graph
        .node
        .push(node("Identity", "logits", &[&y], &["logits"], vec![]));
    b.output("logits", &[1, 3]);
    b.build()
}

/// CNN at opset 17: Conv+Relu, MaxPool, Conv+Relu, GlobalAveragePool, Flatten, Gemm;
/// input `x` [1, 3, 16, 16], output `y` [1, 10].
pub fn cnn() -> OnnxModel {
    let mut b = Builder::new("cnn", 17, 2);
    let x = b.input("x", &[1, 3, 16, 16]);
    let pads = || attr_ints("pads", &[1, 1, 1, 1]);
    let w = b.weight("conv1.weight", &[8, 3, 3, 3], 0.25);
    let bi = b.weight("conv1.bias", &[8], 0.1);
    let h = b.op(
        "Conv",
        "conv1",
        &[&x, &w, &bi],
        vec![pads(), attr_ints("kernel_shape", &[3, 3])],
    );
    let h = b.op("Relu", "relu1", &[&h], vec![]);
    let h = b.op(
        "MaxPool",
        "pool1",
        &[&h],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    let w = b.weight("conv2.weight", &[16, 8, 3, 3], 0.15);
    let bi = b.weight("conv2.bias", &[16], 0.1);
    let h = b.op(
        "Conv",
        "conv2",
        &[&h, &w, &bi],
        vec![pads(), attr_ints("kernel_shape", &[3, 3])],
    );
    let h = b.op("Relu", "relu2", &[&h], vec![]);
    let h = b.op("GlobalAveragePool", "gap", &[&h], vec![]);
    let h = b.op("Flatten", "flatten", &[&h], vec![attr_int("axis", 1)]);
    let w = b.weight("fc.weight", &[10, 16], 0.4);
    let bi = b.weight("fc.bias", &[10], 0.1);
    b.graph.node.push(node(
        "Gemm",
        "fc",
        &[&h, &w, &bi],
        &["y"],
        vec![attr_int("transB", 1)],
    ));
    b.output("y", &[1, 10]);
    b.build()
}

/// A pre-norm transformer block at opset 20: LayerNormalization, single-head attention
/// (MatMul, Transpose, Mul, Softmax), residual Add, MLP with Gelu; input `x` [1, 8, 16], output `y`.
pub fn transformer() -> OnnxModel {
    let (t, d, f) = (8usize, 16usize, 32usize);
    let mut b = Builder::new("block", 20, 3);
    let x = b.input("x", &[1, t, d]);
    let ln = |b: &mut Builder, name: &str, inp: &str| {
        let g: Vec<f32> = (0..d).map(|i| 1.0 + 0.05 * (i as f32 % 5.0)).collect();
        let g = b.constant(&format!("{name}.weight"), &[d], &g);
        let be = b.weight(&format!("{name}.bias"), &[d], 0.02);
        b.op(
            "LayerNormalization",
            name,
            &[inp, &g, &be],
            vec![attr_int("axis", -1), attr_float("epsilon", 1e-5)],
        )
    };
    let std = 1.0 / (d as f32).sqrt();
    let h = ln(&mut b, "ln1", &x);
    let wq = b.weight("attn.wq", &[d, d], std);
    let wk = b.weight("attn.wk", &[d, d], std);
    let wv = b.weight("attn.wv", &[d, d], std);
    let q = b.op("MatMul", "q_proj", &[&h, &wq], vec![]);
    let k = b.op("MatMul", "k_proj", &[&h, &wk], vec![]);
    let v = b.op("MatMul", "v_proj", &[&h, &wv], vec![]);
    let kt = b.op(
        "Transpose",
        "k_t",
        &[&k],
        vec![attr_ints("perm", &[0, 2, 1])],
    );
    let s = b.op("MatMul", "scores", &[&q, &kt], vec![]);
    let c = b.constant("attn.scale", &[], &[1.0 / (d as f32).sqrt()]);
    let s = b.op("Mul", "scores_scaled", &[&s, &c], vec![]);
    let p = b.op("Softmax", "attn_probs", &[&s], vec![attr_int("axis", -1)]);
    let a = b.op("MatMul", "attn_out", &[&p, &v], vec![]);
    let wo = b.weight("attn.wo", &[d, d], std);
    let o = b.op("MatMul", "o_proj", &[&a, &wo], vec![]);
    let r1 = b.op("Add", "residual1", &[&x, &o], vec![]);
    let h = ln(&mut b, "ln2", &r1);
    let w1 = b.weight("mlp.w1", &[d, f], std);
    let b1 = b.weight("mlp.b1", &[f], 0.05);
    let h = b.op("MatMul", "mlp_up", &[&h, &w1], vec![]);
    let h = b.op("Add", "mlp_up_bias", &[&h, &b1], vec![]);
    let h = b.op("Gelu", "gelu", &[&h], vec![]);
    let w2 = b.weight("mlp.w2", &[f, d], 1.0 / (f as f32).sqrt());
    let b2 = b.weight("mlp.b2", &[d], 0.05);
    let h = b.op("MatMul", "mlp_down", &[&h, &w2], vec![]);
    let h = b.op("Add", "mlp_down_bias", &[&h, &b2], vec![]);
    b.graph
        .node
        .push(node("Add", "residual2", &[&r1, &h], &["y"], vec![]));
    b.output("y", &[1, t, d]);
    b.build()
}

/// Causal self-attention at opset 20, as decoder-only LMs export it: scores = q·kᵀ/√d, plus a
/// constant causal mask (-1e4 above the diagonal), Softmax, times v, output projection; input `x`
/// [1, 8, 16], output `y` [1, 8, 16].
pub fn causal_attention() -> OnnxModel {
    let (t, d) = (8usize, 16usize);
    let mut b = Builder::new("causal", 20, 5);
    let x = b.input("x", &[1, t, d]);
    let std = 1.0 / (d as f32).sqrt();
    let wq = b.weight("wq", &[d, d], std);
    let wk = b.weight("wk", &[d, d], std);
    let wv = b.weight("wv", &[d, d], std);
    let q = b.op("MatMul", "q_proj", &[&x, &wq], vec![]);
    let k = b.op("MatMul", "k_proj", &[&x, &wk], vec![]);
    let v = b.op("MatMul", "v_proj", &[&x, &wv], vec![]);
    let kt = b.op(
        "Transpose",
        "k_t",
        &[&k],
        vec![attr_ints("perm", &[0, 2, 1])],
    );
    let s = b.op("MatMul", "scores", &[&q, &kt], vec![]);
    let c = b.constant("scale", &[], &[1.0 / (d as f32).sqrt()]);
    let s = b.op("Mul", "scores_scaled", &[&s, &c], vec![]);
    let mask: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e4 } else { 0.0 })
        .collect();
    let m = b.constant("causal_mask", &[t, t], &mask);
    let s = b.op("Add", "scores_masked", &[&s, &m], vec![]);
    let p = b.op("Softmax", "probs", &[&s], vec![attr_int("axis", -1)]);
    let a = b.op("MatMul", "context", &[&p, &v], vec![]);
    let wo = b.weight("wo", &[d, d], std);
    b.graph
        .node
        .push(node("MatMul", "o_proj", &[&a, &wo], &["y"], vec![]));
    b.output("y", &[1, t, d]);
    b.build()
}

/// Token embedding at opset 17: `ids` int64 [1, 6] → Gather from a table [32, 8] (row 31 holds
/// the largest values) → Transpose; output `y` [1, 8, 6].
pub fn embedding() -> OnnxModel {
    let (v, d, t) = (32usize, 8usize, 6usize);
    let mut b = Builder::new("embedding", 17, 11);
    b.graph
        .input
        .push(value_info("ids", ElemType::I64, &[1, t]));
    let mut table: Vec<f32> = (0..v * d).map(|_| b.rng.normal() * 0.5).collect();
    for x in &mut table[(v - 1) * d..] {
        *x *= 6.0;
    }
    let table = b.constant("table", &[v, d], &table);
    let e = b.op("Gather", "embed", &[&table, "ids"], vec![]);
    b.graph.node.push(node(
        "Transpose",
        "to_channels",
        &[&e],
        &["y"],
        vec![attr_ints("perm", &[0, 2, 1])],
    ));
    b.output("y", &[1, d, t]);
    b.build()
}

/// `n` random samples for `inputs` (standard normal, a few channels of the last axis scaled up
/// ×8 to mimic activation outliers).
pub fn samples(inputs: &[InputSpec], n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            inputs
                .iter()
                .map(|spec| {
                    let count: usize = spec.shape.iter().product();
                    let last = spec.shape.last().copied().unwrap_or(1).max(1);
                    let v: Vec<f32> = (0..count)
                        .map(|i| {
                            let boost = if i % last == 3 { 8.0 } else { 1.0 };
                            rng.normal() * boost
                        })
                        .collect();
                    (
                        spec.name.clone(),
                        Tensor::f32(spec.shape.clone(), v).expect("shape matches"),
                    )
                })
                .collect::<HashMap<_, _>>()
        })
        .collect()
}

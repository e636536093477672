//! Rewrites an fp32 model into a QDQ int8 model.
//!
//! - Activations: asymmetric int8 per tensor. A `QuantizeLinear` → `DequantizeLinear` pair follows
//!   the producer; quantized consumers read the dequantized value, float consumers the original.
//! - Weights: symmetric int8 in [-127, 127], zero point 0, per output channel (`axis` on the
//!   `DequantizeLinear`) or per tensor.
//! - Biases: int32 at scale `s_input · s_weight`, zero point 0. This includes the bias of a
//!   linear layer exported as `MatMul` (constant 2-D weight) followed by `Add` of a constant 1-D
//!   bias, when the Add's output is read by `QuantizeLinear` alone (directly or through a fused
//!   Relu/Clip; not when a float node such as a classifier's final `Identity` reads the float
//!   sum): the MatMul's output gets no Q/DQ pair, and the Add reads the bias as
//!   `DequantizeLinear(int32)` at `s_x · s_w[c]` (the pattern of a QDQ Conv/Gemm bias). ONNX
//!   Runtime and tract then round once (at the Add's output), like one FullyConnected with an
//!   int32 bias, which is what the compiler makes of it.
//! - Constant operands of other quantized ops: asymmetric int8 per tensor.
//!
//! The output keeps the input's opset (checked to lie in `MIN_OPSET..=MAX_OPSET`).

use std::collections::{BTreeSet, HashMap, HashSet};

use tract_onnx::pb::NodeProto;

use crate::calib::Range;
use crate::error::{Error, Result};
use crate::onnx::ops::{Registry, Role};
use crate::onnx::{attr_int, node, node_label, OnnxModel};
use crate::tensor::{self, Tensor};

/// int8 quantization parameters of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
}

/// Asymmetric int8 parameters covering `r` (widened to include zero).
pub fn activation_params(r: Range) -> QParams {
    let lo = r.min.min(0.0) as f64;
    let hi = r.max.max(0.0) as f64;
    let scale = (hi - lo) / 255.0;
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return QParams {
            scale: 1.0,
            zero_point: 0,
        };
    }
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0);
    QParams {
        scale: scale as f32,
        zero_point: zp as i8,
    }
}

/// Quantizes one value.
pub fn quantize(x: f32, p: QParams) -> i8 {
    ((x / p.scale).round() + p.zero_point as f32).clamp(-128.0, 127.0) as i8
}

/// Symmetric per-channel (or per-tensor when `per_channel` is false) int8 weights:
/// returns (values, scales).
pub fn quantize_weight(
    w: &[f32],
    shape: &[usize],
    axis: usize,
    per_channel: bool,
) -> (Vec<i8>, Vec<f32>) {
    let channels = if per_channel { shape[axis] } else { 1 };
    let inner: usize = shape[axis + 1..].iter().product();
    let chan_of = |i: usize| {
        if per_channel {
            (i / inner) % channels
        } else {
            0
        }
    };
    let mut absmax = vec![0f32; channels];
    for (i, &x) in w.iter().enumerate() {
        let c = chan_of(i);
        absmax[c] = absmax[c].max(x.abs());
    }
    let scales: Vec<f32> = absmax
        .iter()
        .map(|&a| {
            if a > 0.0 && a.is_finite() {
                a / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &x)| (x / scales[chan_of(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// Options of the rewrite.
#[derive(Debug, Clone)]
pub struct QdqOptions {
    /// Op types to quantize.
    pub op_types: HashSet<String>,
    /// Node names kept float.
    pub exclude: HashSet<String>,
    /// Per-channel weights (else per tensor).
    pub per_channel: bool,
}

/// Which nodes get quantized and which tensors need ranges.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Input roles per node (from the registry).
    pub roles: Vec<Vec<Role>>,
    /// Whether each node is quantized.
    pub quantized: Vec<bool>,
    /// Activation tensors (not initializers) that get a QDQ pair.
    pub activations: BTreeSet<String>,
    /// Nodes demoted to float, with the reason.
    pub kept_float: Vec<(String, String)>,
    /// Linear layers whose bias is folded: `Add` node → (`MatMul` node, index of the Add's
    /// constant bias input). The MatMul's output has no Q/DQ pair and the bias is int32 at
    /// `s_x · s_w[c]`.
    pub bias_adds: HashMap<usize, (usize, usize)>,
}

fn consumers(model: &OnnxModel) -> HashMap<String, Vec<usize>> {
    let mut m: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in model.graph().node.iter().enumerate() {
        for t in &n.input {
            if !t.is_empty() {
                m.entry(t.clone()).or_default().push(i);
            }
        }
    }
    m
}

/// Magnitude from which a constant added to an activation counts as an additive mask (attention
/// masks use -1e4, -1e9, the lowest float or -inf).
pub const MASK_MAGNITUDE: f32 = 1e4;

/// Tensors that carry an additive mask, each with the mask constant: outputs of an `Add` with an
/// initializer input holding a value of magnitude [`MASK_MAGNITUDE`] or more (or not finite),
/// followed through data-movement ops (whose output shares their input's parameters).
pub fn mask_tensors(
    model: &OnnxModel,
    registry: &Registry,
    inits: &HashMap<String, Tensor>,
) -> HashMap<String, String> {
    let mut masks: HashMap<String, String> = HashMap::new();
    for n in &model.graph().node {
        let Some(out) = n.output.first() else {
            continue;
        };
        let found = if n.op_type == "Add" {
            n.input
                .iter()
                .find(|t| {
                    inits.get(*t).and_then(|c| c.as_f32()).is_some_and(|v| {
                        v.iter()
                            .any(|x| !x.is_finite() || x.abs() >= MASK_MAGNITUDE)
                    })
                })
                .cloned()
        } else if registry
            .get(&n.op_type)
            .is_some_and(|h| h.output_same_as_input)
        {
            n.input.first().and_then(|t| masks.get(t)).cloned()
        } else {
            None
        };
        if let Some(c) = found {
            masks.insert(out.clone(), c);
        }
    }
    masks
}

/// Plans the rewrite. `float_tensors`: tensors known to hold floats (graph float inputs and the
/// activations calibration observed); `None` before calibration (all candidates are returned).
pub fn plan(
    model: &OnnxModel,
    registry: &Registry,
    inits: &HashMap<String, Tensor>,
    opts: &QdqOptions,
    float_tensors: Option<&HashSet<String>>,
) -> Result<Plan> {
    let roles = registry.check(model, inits)?;
    let nodes = &model.graph().node;
    let names: HashSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let unknown: Vec<&String> = opts
        .exclude
        .iter()
        .filter(|e| !names.contains(*e))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Config(format!(
            "--exclude names unknown node(s): {unknown:?}"
        )));
    }
    let mut kept_float = Vec::new();
    let mut quantized: Vec<bool> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let h = registry.get(&n.op_type).expect("checked by the registry");
            let q = h.quantizable && opts.op_types.contains(&n.op_type);
            if q && opts.exclude.contains(&n.name) {
                kept_float.push((node_label(n, i), "excluded by the user".to_string()));
                return false;
            }
            q
        })
        .collect();
    // Tensors carrying an additive attention mask stay float: int8 over [-1e4, max] has a step
    // of ~40, which rounds every real attention score to zero (uniform attention).
    let masks = mask_tensors(model, registry, inits);
    for (i, n) in nodes.iter().enumerate() {
        if !quantized[i] {
            continue;
        }
        let hit = n
            .input
            .iter()
            .chain(n.output.first())
            .find_map(|t| masks.get(t).map(|c| (t, c)));
        if let Some((t, c)) = hit {
            quantized[i] = false;
            kept_float.push((
                node_label(n, i),
                format!(
                    "tensor '{t}' carries an additive mask (constant '{c}' holds values of magnitude \
                     {MASK_MAGNITUDE:e} or more); int8 would round the other values to zero"
                ),
            ));
        }
    }
    let is_act_input = |i: usize, j: usize, role: Role| -> Option<String> {
        let t = nodes[i].input.get(j)?;
        if t.is_empty() || inits.contains_key(t) {
            return None;
        }
        matches!(role, Role::Activation | Role::Weight { .. }).then(|| t.clone())
    };
    if let Some(floats) = float_tensors {
        for i in 0..nodes.len() {
            if !quantized[i] {
                continue;
            }
            let n = &nodes[i];
            let mut bad: Vec<String> = roles[i]
                .iter()
                .enumerate()
                .filter_map(|(j, &r)| is_act_input(i, j, r))
                .chain(n.output.first().cloned())
                .filter(|t| !floats.contains(t))
                .collect();
            bad.dedup();
            if !bad.is_empty() {
                quantized[i] = false;
                kept_float.push((
                    node_label(n, i),
                    format!("tensor(s) {bad:?} hold no float values"),
                ));
            }
        }
    }
    let mut activations = BTreeSet::new();
    for i in 0..nodes.len() {
        if !quantized[i] {
            continue;
        }
        for (j, &r) in roles[i].iter().enumerate() {
            if let Some(t) = is_act_input(i, j, r) {
                activations.insert(t);
            }
        }
        if let Some(o) = nodes[i].output.first() {
            activations.insert(o.clone());
        }
    }
    // A fusable activation (Relu) right after a quantized Conv/Gemm/MatMul/Add runs on that op's float
    // output: its input needs no QDQ pair of its own.
    let cons = consumers(model);
    let outputs: HashSet<String> = model.output_names().into_iter().collect();
    let producer: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    for i in 0..nodes.len() {
        let n = &nodes[i];
        let fusable = registry
            .get(&n.op_type)
            .map(|h| h.fusable_activation)
            .unwrap_or(false);
        // Before calibration every candidate is returned, so that fused tensors are checked too.
        if !quantized[i] || !fusable || float_tensors.is_none() {
            continue;
        }
        let Some(t) = n.input.first() else { continue };
        let Some(&p) = producer.get(t.as_str()) else {
            continue;
        };
        let fuse_into = matches!(
            nodes[p].op_type.as_str(),
            "Conv" | "Gemm" | "MatMul" | "Add"
        );
        if quantized[p]
            && fuse_into
            && cons.get(t).map(|c| c.len()) == Some(1)
            && !outputs.contains(t)
        {
            activations.remove(t);
        }
    }
    let bias_adds = if float_tensors.is_some() {
        let graph = Graph {
            nodes,
            inits,
            roles: &roles,
            quantized: &quantized,
            cons: &cons,
            outputs: &outputs,
            producer: &producer,
            activations: &activations,
        };
        bias_adds(&graph, registry)
    } else {
        // Before calibration every candidate is returned, so that the folded tensors are
        // checked too.
        HashMap::new()
    };
    for &(p, _) in bias_adds.values() {
        if let Some(t) = nodes[p].output.first() {
            activations.remove(t);
        }
    }
    Ok(Plan {
        roles,
        quantized,
        activations,
        kept_float,
        bias_adds,
    })
}

/// What [`bias_adds`] reads of the plan being made.
struct Graph<'a> {
    nodes: &'a [NodeProto],
    inits: &'a HashMap<String, Tensor>,
    roles: &'a [Vec<Role>],
    quantized: &'a [bool],
    cons: &'a HashMap<String, Vec<usize>>,
    outputs: &'a HashSet<String>,
    producer: &'a HashMap<&'a str, usize>,
    /// The activations that get a Q/DQ pair (after the fused-activation pass).
    activations: &'a BTreeSet<String>,
}

impl Graph<'_> {
    /// Whether activation `t` gets a Q/DQ pair and every node that reads it reads the
    /// dequantized value (a quantized node, at an activation or weight input): then the
    /// `QuantizeLinear` is the only reader of the float value. A float reader (an op type that
    /// is not quantized, such as the `Identity` in front of a classifier's `logits`, or an
    /// excluded node) reads the float value itself.
    ///
    /// A graph output is read back under its own name from its `DequantizeLinear` by every
    /// reader (see [`rewrite`]).
    fn read_dequantized_only(&self, t: &str) -> bool {
        self.activations.contains(t)
            && (self.outputs.contains(t)
                || self.cons.get(t).into_iter().flatten().all(|&c| {
                    self.quantized[c]
                        && self.nodes[c].input.iter().enumerate().all(|(j, x)| {
                            x != t
                                || matches!(
                                    self.roles[c].get(j),
                                    Some(Role::Activation | Role::Weight { .. })
                                )
                        })
                }))
    }

    /// Whether the float output `t` of a folded bias `Add` is read by `QuantizeLinear` alone,
    /// directly or through one fused activation (a quantized Relu, or a Clip with constant
    /// bounds, that is its only reader) — the pattern that the compiler lowers to an int8
    /// FullyConnected with an int32 bias. Anywhere else the float sum itself is read, which
    /// only an f32 FullyConnected computes.
    fn quantized_only(&self, t: &str, registry: &Registry) -> bool {
        if self.read_dequantized_only(t) {
            return true;
        }
        if self.activations.contains(t) || self.outputs.contains(t) {
            return false;
        }
        let Some(&[r]) = self.cons.get(t).map(|c| c.as_slice()) else {
            return false;
        };
        let act = &self.nodes[r];
        let fusable = registry
            .get(&act.op_type)
            .is_some_and(|h| h.fusable_activation);
        let const_bounds = act
            .input
            .iter()
            .skip(1)
            .all(|b| b.is_empty() || self.inits.contains_key(b));
        self.quantized[r]
            && fusable
            && const_bounds
            && act.input.first().map(String::as_str) == Some(t)
            && act
                .output
                .first()
                .is_some_and(|u| self.read_dequantized_only(u))
    }
}

/// Quantized `Add` nodes that add a constant 1-D bias `[N]` (either operand order) to the output
/// of a quantized `MatMul` with a constant 2-D weight `[K, N]`, that output being read by the Add
/// alone (and not a graph output), and the Add's own output being read by `QuantizeLinear`
/// alone ([`Graph::quantized_only`]): `Add` → (`MatMul`, bias input index).
///
/// The last condition keeps a linear layer whose sum a float node reads (a classifier head
/// followed by a float `Identity` to `logits`) as an int8 MatMul and a separate Add: folded,
/// its MatMul would have no int8 output to write, and the compiler would run it in f32.
fn bias_adds(g: &Graph<'_>, registry: &Registry) -> HashMap<usize, (usize, usize)> {
    let nodes = g.nodes;
    let mut out = HashMap::new();
    for (a, n) in nodes.iter().enumerate() {
        if n.op_type != "Add" || !g.quantized[a] || n.input.len() != 2 || n.input[0] == n.input[1] {
            continue;
        }
        if !n
            .output
            .first()
            .is_some_and(|y| g.quantized_only(y, registry))
        {
            continue;
        }
        for k in 0..2 {
            let (b, t) = (&n.input[k], &n.input[1 - k]);
            let Some(bias) = g.inits.get(b).filter(|c| c.as_f32().is_some()) else {
                continue;
            };
            let Some(&p) = g.producer.get(t.as_str()) else {
                continue;
            };
            let mm = &nodes[p];
            let weight = mm.input.get(1).and_then(|w| g.inits.get(w));
            let ok = mm.op_type == "MatMul"
                && g.quantized[p]
                && g.roles[p].get(1) == Some(&Role::Weight { axis: 1 })
                && mm.input.first().is_some_and(|x| !g.inits.contains_key(x))
                && weight.is_some_and(|w| {
                    w.as_f32().is_some() && w.shape.len() == 2 && bias.shape == [w.shape[1]]
                })
                && g.cons.get(t).map(|c| c.len()) == Some(1)
                && !g.outputs.contains(t);
            if ok {
                out.insert(a, (p, k));
                break;
            }
        }
    }
    out
}

/// Result of [`rewrite`].
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The QDQ model.
    pub model: OnnxModel,
    /// Original activation tensor → the tensor holding its dequantized value in the new model.
    pub dequantized: HashMap<String, String>,
    /// Quantization parameters of each activation tensor.
    pub params: HashMap<String, QParams>,
}

/// Emits the Q/DQ pair of activation `t`, reading `src` and writing `dst`.
fn emit_qdq(
    t: &str,
    src: &str,
    dst: &str,
    p: QParams,
    out: &mut Vec<NodeProto>,
    namer: &mut Namer,
    inits: &mut Vec<tract_onnx::pb::TensorProto>,
) {
    let s = namer.fresh(&format!("{t}_scale"));
    let z = namer.fresh(&format!("{t}_zero_point"));
    let q = namer.fresh(&format!("{t}_quantized"));
    inits.push(tensor::f32_proto(&s, &[], &[p.scale]));
    inits.push(tensor::i8_proto(&z, &[], &[p.zero_point]));
    let qn = namer.fresh(&format!("{t}_QuantizeLinear"));
    let dn = namer.fresh(&format!("{t}_DequantizeLinear"));
    out.push(node("QuantizeLinear", &qn, &[src, &s, &z], &[&q], vec![]));
    out.push(node("DequantizeLinear", &dn, &[&q, &s, &z], &[dst], vec![]));
}

/// Emits `b` as an int32 constant at scale `s_in · s_w[c]` (zero point 0) with its
/// `DequantizeLinear`; returns the dequantized tensor's name, `None` when `b` is not one value
/// per output channel of `s_w` (then it stays float).
fn emit_bias(
    name: &str,
    b: &Tensor,
    s_in: f32,
    s_w: &[f32],
    head: &mut Vec<NodeProto>,
    namer: &mut Namer,
    inits: &mut Vec<tract_onnx::pb::TensorProto>,
) -> Option<String> {
    let bias = b.as_f32()?;
    let c = bias.len();
    let axis = match b.shape.as_slice() {
        [n] if *n == c => 0,
        s if s.last() == Some(&c) => s.len() - 1,
        _ => return None,
    };
    if s_w.len() != c && s_w.len() != 1 {
        return None;
    }
    let scales: Vec<f32> = (0..c)
        .map(|k| s_in * s_w[if s_w.len() == 1 { 0 } else { k }])
        .collect();
    let q: Vec<i32> = bias
        .iter()
        .zip(&scales)
        .map(|(&x, &s)| {
            (x as f64 / s as f64)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect();
    let qn = namer.fresh(&format!("{name}_quantized"));
    let sn = namer.fresh(&format!("{name}_scale"));
    let zn = namer.fresh(&format!("{name}_zero_point"));
    let dq = namer.fresh(&format!("{name}_dequantized"));
    inits.push(tensor::i32_proto(&qn, &b.shape, &q));
    inits.push(tensor::f32_proto(&sn, &[c], &scales));
    inits.push(tensor::i32_proto(&zn, &[c], &vec![0; c]));
    let dn = namer.fresh(&format!("{name}_DequantizeLinear"));
    head.push(node(
        "DequantizeLinear",
        &dn,
        &[&qn, &sn, &zn],
        &[&dq],
        vec![attr_int("axis", axis as i64)],
    ));
    Some(dq)
}

struct Namer {
    used: HashSet<String>,
}

impl Namer {
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

/// Applies `plan` with activation `ranges` (missing entries are an error).
pub fn rewrite(
    model: &OnnxModel,
    inits: &HashMap<String, Tensor>,
    registry: &Registry,
    plan: &Plan,
    ranges: &HashMap<String, Range>,
    opts: &QdqOptions,
) -> Result<Rewritten> {
    let g = model.graph();
    let mut namer = Namer {
        used: g
            .node
            .iter()
            .flat_map(|n| {
                n.input
                    .iter()
                    .chain(n.output.iter())
                    .chain(std::iter::once(&n.name))
            })
            .chain(g.initializer.iter().map(|t| &t.name))
            .chain(g.input.iter().map(|t| &t.name))
            .cloned()
            .collect(),
    };
    // Ranges, with data-movement ops sharing their input's parameters.
    let mut ranges = ranges.clone();
    for (i, n) in g.node.iter().enumerate() {
        let h = registry.get(&n.op_type).expect("checked");
        if plan.quantized[i] && h.output_same_as_input {
            if let (Some(inp), Some(out)) = (n.input.first(), n.output.first()) {
                if let Some(&r) = ranges.get(inp) {
                    if plan.activations.contains(inp) {
                        ranges.insert(out.clone(), r);
                    }
                }
            }
        }
    }
    let mut params = HashMap::new();
    for t in &plan.activations {
        let r = ranges
            .get(t)
            .ok_or_else(|| Error::Calibration(format!("no range for tensor '{t}'")))?;
        params.insert(t.clone(), activation_params(*r));
    }
    let graph_outputs: HashSet<String> = model.output_names().into_iter().collect();
    let mut new_inits = Vec::new();
    let mut head = Vec::new();
    let mut body = Vec::new();
    let mut dequantized = HashMap::new();
    let mut weight_cache: HashMap<(String, bool), (String, Vec<f32>)> = HashMap::new();
    let mut const_cache: HashMap<String, String> = HashMap::new();

    let mut rename_out: HashMap<String, String> = HashMap::new();
    for t in &plan.activations {
        if graph_outputs.contains(t) {
            // Keep the graph output's name on the dequantized value.
            rename_out.insert(t.clone(), namer.fresh(&format!("{t}_float")));
            dequantized.insert(t.clone(), t.clone());
        } else {
            dequantized.insert(t.clone(), namer.fresh(&format!("{t}_dequantized")));
        }
    }
    let input_names: HashSet<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
    for t in &plan.activations {
        if input_names.contains(t.as_str()) && !inits.contains_key(t) {
            emit_qdq(
                t,
                t,
                &dequantized[t],
                params[t],
                &mut head,
                &mut namer,
                &mut new_inits,
            );
        }
    }

    for (i, n0) in g.node.iter().enumerate() {
        let mut n = n0.clone();
        let label = node_label(n0, i);
        let folded = plan.bias_adds.get(&i).map(|&(_, k)| k);
        if plan.quantized[i] {
            for (j, &role) in plan.roles[i].iter().enumerate() {
                let Some(name) = n0.input.get(j).cloned() else {
                    continue;
                };
                if name.is_empty() {
                    continue;
                }
                let init = inits.get(&name).filter(|t| t.as_f32().is_some());
                match (role, init) {
                    (Role::Weight { axis }, Some(w)) => {
                        if axis >= w.shape.len() {
                            return Err(Error::Model(format!(
                                "node '{label}': weight '{name}' of shape {:?} has no axis {axis}",
                                w.shape
                            )));
                        }
                        let key = (name.clone(), opts.per_channel);
                        if !weight_cache.contains_key(&key) {
                            let data = w.as_f32().expect("filtered");
                            let (q, scales) =
                                quantize_weight(data, &w.shape, axis, opts.per_channel);
                            let qn = namer.fresh(&format!("{name}_quantized"));
                            let sn = namer.fresh(&format!("{name}_scale"));
                            let zn = namer.fresh(&format!("{name}_zero_point"));
                            let dq = namer.fresh(&format!("{name}_dequantized"));
                            new_inits.push(tensor::i8_proto(&qn, &w.shape, &q));
                            let pshape: Vec<usize> = if opts.per_channel {
                                vec![scales.len()]
                            } else {
                                vec![]
                            };
                            new_inits.push(tensor::f32_proto(&sn, &pshape, &scales));
                            new_inits.push(tensor::i8_proto(&zn, &pshape, &vec![0; scales.len()]));
                            let attrs = if opts.per_channel {
                                vec![attr_int("axis", axis as i64)]
                            } else {
                                vec![]
                            };
                            let dn = namer.fresh(&format!("{name}_DequantizeLinear"));
                            head.push(node(
                                "DequantizeLinear",
                                &dn,
                                &[&qn, &sn, &zn],
                                &[&dq],
                                attrs,
                            ));
                            weight_cache.insert(key.clone(), (dq, scales));
                        }
                        n.input[j] = weight_cache[&key].0.clone();
                    }
                    (Role::Bias { input, weight }, Some(b)) => {
                        let in_t = n0.input.get(input).cloned().unwrap_or_default();
                        let w_t = n0.input.get(weight).cloned().unwrap_or_default();
                        let Some(s_in) = params.get(&in_t).map(|p| p.scale) else {
                            continue;
                        };
                        let Some((_, s_w)) = weight_cache.get(&(w_t, opts.per_channel)) else {
                            continue;
                        };
                        if let Some(dq) =
                            emit_bias(&name, b, s_in, s_w, &mut head, &mut namer, &mut new_inits)
                        {
                            n.input[j] = dq;
                        }
                    }
                    (Role::Activation, Some(b)) if folded == Some(j) => {
                        // The bias of a MatMul + Add linear layer: int32 at s_x · s_w.
                        let mm = &g.node[plan.bias_adds[&i].0];
                        let x_t = mm.input.first().cloned().unwrap_or_default();
                        let w_t = mm.input.get(1).cloned().unwrap_or_default();
                        let s_in = params.get(&x_t).map(|p| p.scale);
                        let s_w = weight_cache.get(&(w_t, opts.per_channel));
                        let dq = match (s_in, s_w) {
                            (Some(s_in), Some((_, s_w))) => emit_bias(
                                &name,
                                b,
                                s_in,
                                s_w,
                                &mut head,
                                &mut namer,
                                &mut new_inits,
                            ),
                            _ => None,
                        };
                        // Planned so that this cannot fail; if it did, the Add would stay a
                        // float Add of the float bias (still the fp32 function).
                        if let Some(dq) = dq {
                            n.input[j] = dq;
                        }
                    }
                    (Role::Activation, Some(cst)) => {
                        if !const_cache.contains_key(&name) {
                            let data = cst.as_f32().expect("filtered");
                            let mut mm = crate::calib::stats::MinMax::default();
                            mm.update(data);
                            let p = activation_params(Range {
                                min: mm.min.min(0.0),
                                max: mm.max.max(0.0),
                            });
                            let q: Vec<i8> = data.iter().map(|&x| quantize(x, p)).collect();
                            let qn = namer.fresh(&format!("{name}_quantized"));
                            let sn = namer.fresh(&format!("{name}_scale"));
                            let zn = namer.fresh(&format!("{name}_zero_point"));
                            let dq = namer.fresh(&format!("{name}_dequantized"));
                            new_inits.push(tensor::i8_proto(&qn, &cst.shape, &q));
                            new_inits.push(tensor::f32_proto(&sn, &[], &[p.scale]));
                            new_inits.push(tensor::i8_proto(&zn, &[], &[p.zero_point]));
                            let dn = namer.fresh(&format!("{name}_DequantizeLinear"));
                            head.push(node(
                                "DequantizeLinear",
                                &dn,
                                &[&qn, &sn, &zn],
                                &[&dq],
                                vec![],
                            ));
                            const_cache.insert(name.clone(), dq);
                        }
                        n.input[j] = const_cache[&name].clone();
                    }
                    (Role::Activation | Role::Weight { .. }, None) => {
                        if let Some(dq) = dequantized.get(&name) {
                            n.input[j] = dq.clone();
                        }
                    }
                    _ => {}
                }
            }
        }
        // Graph outputs that get a QDQ pair: the producer writes `<name>_float`.
        for o in n.output.iter_mut() {
            if let Some(r) = rename_out.get(o) {
                *o = r.clone();
            }
        }
        body.push(n);
        for o in &n0.output {
            if plan.activations.contains(o) {
                let src = rename_out.get(o).cloned().unwrap_or_else(|| o.clone());
                emit_qdq(
                    o,
                    &src,
                    &dequantized[o],
                    params[o],
                    &mut body,
                    &mut namer,
                    &mut new_inits,
                );
            }
        }
    }
    // Float consumers of a renamed graph output keep reading the float value... which is now the
    // dequantized one under the original name: that is the value the model outputs, so it is consistent.
    let mut out = model.clone();
    let gm = out.graph_mut();
    gm.node = head.into_iter().chain(body).collect();
    let used: HashSet<&String> = gm.node.iter().flat_map(|n| n.input.iter()).collect();
    let kept: Vec<_> = gm
        .initializer
        .iter()
        .filter(|t| used.contains(&t.name))
        .cloned()
        .collect();
    let kept_names: HashSet<String> = kept.iter().map(|t| t.name.clone()).collect();
    let dropped: HashSet<String> = gm
        .initializer
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| !kept_names.contains(n))
        .collect();
    gm.initializer = kept.into_iter().chain(new_inits).collect();
    gm.input.retain(|i| !dropped.contains(&i.name));
    gm.value_info.retain(|v| !dropped.contains(&v.name));
    out.proto.producer_name = "edgeloop-quantize".into();
    out.proto.producer_version = env!("CARGO_PKG_VERSION").into();
    Ok(Rewritten {
        model: out,
        dequantized,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_cover_the_range_and_zero_exactly() {
        let p = activation_params(Range {
            min: -1.0,
            max: 3.0,
        });
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(quantize(0.0, p) as f32 - p.zero_point as f32, 0.0);
        assert_eq!(quantize(-1.0, p), -128);
        assert_eq!(quantize(3.0, p), 127);
        // Positive-only ranges start at zero.
        let p = activation_params(Range { min: 0.5, max: 2.0 });
        assert_eq!(p.zero_point, -128);
        // Degenerate range.
        assert_eq!(activation_params(Range { min: 0.0, max: 0.0 }).scale, 1.0);
    }

    #[test]
    fn weights_are_symmetric_per_channel_within_127() {
        // Two output channels on axis 0 with very different magnitudes.
        let w = [0.5, -1.0, 0.25, 100.0, -50.0, 3.0];
        let (q, s) = quantize_weight(&w, &[2, 3], 0, true);
        assert_eq!(s.len(), 2);
        assert_eq!(&q[..3], &[64, -127, 32]);
        assert_eq!(&q[3..], &[127, -64, 4]);
        assert!(q.iter().all(|&v| v >= -127));
        // Channels on the last axis of a [K, N] MatMul weight.
        let (q, s) = quantize_weight(&[1.0, 10.0, -2.0, 5.0], &[2, 2], 1, true);
        assert_eq!(s, vec![2.0 / 127.0, 10.0 / 127.0]);
        assert_eq!(q, vec![64, 127, -127, 64]);
        let (_, s) = quantize_weight(&w, &[2, 3], 0, false);
        assert_eq!(s, vec![100.0 / 127.0]);
    }
}

//! Rewrites an fp32 model into a QDQ int8 model.
//!
//! - Activations: asymmetric int8 per tensor. A `QuantizeLinear` → `DequantizeLinear` pair follows
//!   the producer; quantized consumers read the dequantized value, float consumers the original.
//! - Weights: symmetric int8 in [-127, 127], zero point 0, per output channel (`axis` on the
//!   `DequantizeLinear`) or per tensor.
//! - Biases: int32 at scale `s_input · s_weight`, zero point 0.
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
    Ok(Plan {
        roles,
        quantized,
        activations,
        kept_float,
    })
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
                        let bias = b.as_f32().expect("filtered");
                        let c = bias.len();
                        let axis = match b.shape.as_slice() {
                            [n] if *n == c => 0,
                            s if s.last() == Some(&c) => s.len() - 1,
                            _ => continue,
                        };
                        if s_w.len() != c && s_w.len() != 1 {
                            continue;
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
                                    .clamp(i32::MIN as f64, i32::MAX as f64)
                                    as i32
                            })
                            .collect();
                        let qn = namer.fresh(&format!("{name}_quantized"));
                        let sn = namer.fresh(&format!("{name}_scale"));
                        let zn = namer.fresh(&format!("{name}_zero_point"));
                        let dq = namer.fresh(&format!("{name}_dequantized"));
                        new_inits.push(tensor::i32_proto(&qn, &b.shape, &q));
                        new_inits.push(tensor::f32_proto(&sn, &[c], &scales));
                        new_inits.push(tensor::i32_proto(&zn, &[c], &vec![0; c]));
                        let dn = namer.fresh(&format!("{name}_DequantizeLinear"));
                        head.push(node(
                            "DequantizeLinear",
                            &dn,
                            &[&qn, &sn, &zn],
                            &[&dq],
                            vec![attr_int("axis", axis as i64)],
                        ));
                        n.input[j] = dq;
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

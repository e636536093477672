//! Lowering: ONNX nodes → runtime ops through the image writer.
//!
//! Every ONNX tensor gets a [`Val`]: a runtime tensor (f32, int8 or int32), the dequantized view
//! of an int8 runtime tensor (the output of an activation `DequantizeLinear`), or a constant known
//! at compile time. A compute node whose activation inputs are all dequantized int8 tensors and
//! whose output feeds only `QuantizeLinear` nodes (possibly through a Relu/Clip, fused as a
//! clamp) becomes one int8 op ([`crate::compile::qdq_match`]); any other node runs in f32 (an
//! "fp32 island": `Dequantize` in, f32 op, `Quantize` out where the model quantizes again).
//!
//! ONNX activations are NCHW; the runtime's convolutions and pools are NHWC. A rank-4 value
//! carries its [`Layout`] and is transposed only where an op needs the other one.

pub mod dense;
pub mod elementwise;
pub mod fold;
pub mod norm;
pub mod pool;
pub mod quant;
pub mod reduce;
pub mod shape;

use std::collections::{HashMap, HashSet};

use edgeloop_runtime::image::writer::{ImageWriter, TensorId, WriteError};
use edgeloop_runtime::image::{DType, OpCode};
use tract_onnx::pb::NodeProto;

use super::host::{Elem, HostTensor};
use crate::error::Error;

/// Physical layout of a runtime tensor holding a rank-4 ONNX value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Same order as the ONNX value.
    Plain,
    /// ONNX `[n, c, h, w]` stored as `[n, h, w, c]`.
    Nhwc,
}

/// A runtime tensor standing for an ONNX value.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    /// The tensor.
    pub id: TensorId,
    /// The ONNX (logical) shape.
    pub shape: Vec<usize>,
    /// How the bytes are ordered.
    pub layout: Layout,
}

/// What an ONNX tensor is in the image being built.
#[derive(Debug, Clone)]
pub enum Val {
    /// An f32 runtime tensor.
    F32(Act),
    /// An int8 runtime tensor (the output of a `QuantizeLinear`; quantization in the writer).
    I8(Act),
    /// An int32 runtime tensor (ids).
    I32(Act),
    /// The float value `dequantize(t)` of an int8 runtime tensor `t`.
    Deq(Act),
    /// A compile-time constant.
    Const(HostTensor),
}

/// Why a node could not be lowered.
#[derive(Debug)]
pub enum Fail {
    /// The node (as it is used) has no lowering; the text says why.
    Unsupported(String),
    /// Anything else.
    Error(Error),
}

impl From<WriteError> for Fail {
    fn from(e: WriteError) -> Self {
        Fail::Unsupported(format!("the image writer refuses it: {e}"))
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

/// Result of a lowering step.
pub type LResult<T> = std::result::Result<T, Fail>;

/// `Err(Fail::Unsupported(msg))`.
pub fn unsup<T>(msg: impl Into<String>) -> LResult<T> {
    Err(Fail::Unsupported(msg.into()))
}

/// Quantization parameters of a `QuantizeLinear`/`DequantizeLinear` node.
#[derive(Debug, Clone, PartialEq)]
pub struct QParams {
    /// Scales (one, or one per channel).
    pub scales: Vec<f32>,
    /// Zero points as in the model.
    pub zero_points: Vec<i64>,
    /// Integer type (from the zero point, default uint8).
    pub elem: Elem,
    /// Channel axis (normalized) when per channel.
    pub axis: Option<usize>,
}

impl QParams {
    /// Per-tensor int8 `(scale, zero_point)`; uint8 maps to int8 with the zero point − 128
    /// (exact: `q_u8 − 128` is the int8 code of the same real value).
    pub fn per_tensor_i8(&self) -> Option<(f32, i32)> {
        if self.scales.len() != 1 || self.zero_points.len() != 1 {
            return None;
        }
        let s = self.scales[0];
        if !(s.is_finite() && s > 0.0) {
            return None;
        }
        let z = self.zero_points[0];
        match self.elem {
            Elem::I8 => Some((s, z as i32)),
            Elem::U8 => Some((s, z as i32 - 128)),
            _ => None,
        }
    }
}

/// State of one compilation.
pub struct Ctx<'m> {
    /// The image being written.
    pub w: ImageWriter,
    /// The model's nodes, in order.
    pub nodes: &'m [NodeProto],
    /// Value of every ONNX tensor lowered so far.
    pub vals: HashMap<String, Val>,
    /// Node indices reading each tensor.
    pub consumers: HashMap<String, Vec<usize>>,
    /// Names of the graph outputs.
    pub graph_outputs: HashSet<String>,
    /// Nodes already lowered as part of another (fused Q, Relu).
    pub done: Vec<bool>,
    /// Default-domain opset.
    pub opset: i64,
    /// Nodes that run in f32 inside an otherwise quantized model, with the reason.
    pub float_islands: Vec<String>,
    /// Use the runtime's integer LayerNorm for quantized LayerNormalization.
    pub int8_layer_norm: bool,
    /// Pre-pack int8 FullyConnected weights for x86-64 (FullyConnected version 2).
    pub prepack: bool,
    deq_cache: HashMap<u16, TensorId>,
    layout_cache: HashMap<(u16, bool), TensorId>,
    const_cache: HashMap<String, TensorId>,
    alias_base: HashMap<u16, TensorId>,
    inputs: HashSet<u16>,
    /// Tensors written by a Transpose whose permutation moves the input's last axis to the
    /// next-to-last place, with the transpose's (plain-layout) input and the permutation `q`
    /// that differs from it by swapping the last two entries (so it keeps the last axis last).
    /// A BatchMatMul reading such a tensor as its right operand reads `transpose(input, q)` —
    /// the input itself when `q` is the identity — with `transpose_b` instead: the same
    /// products, from a transpose that moves whole rows (or none), and the original Transpose
    /// is left dead unless something else reads it.
    pub swapped_last2: HashMap<u16, (Act, Vec<usize>)>,
}

/// Runtime dims for an ONNX shape: scalars become `[1]`, leading 1s are dropped above rank 4.
pub fn runtime_dims(shape: &[usize]) -> LResult<Vec<usize>> {
    let mut d: Vec<usize> = shape.to_vec();
    while d.len() > 4 && d[0] == 1 {
        d.remove(0);
    }
    if d.len() > 4 {
        return unsup(format!(
            "shape {shape:?} has rank {} (the runtime handles rank ≤ 4)",
            shape.len()
        ));
    }
    if d.is_empty() {
        d.push(1);
    }
    if d.contains(&0) {
        return unsup(format!("shape {shape:?} has a zero dimension"));
    }
    Ok(d)
}

/// Physical dims of a logical rank-4 shape in `layout`.
pub fn physical(shape: &[usize], layout: Layout) -> Vec<usize> {
    match layout {
        Layout::Plain => shape.to_vec(),
        Layout::Nhwc => vec![shape[0], shape[2], shape[3], shape[1]],
    }
}

impl<'m> Ctx<'m> {
    /// A fresh context for `nodes`.
    pub fn new(
        w: ImageWriter,
        nodes: &'m [NodeProto],
        graph_outputs: HashSet<String>,
        opset: i64,
    ) -> Self {
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for t in n.input.iter().filter(|t| !t.is_empty()) {
                let c = consumers.entry(t.clone()).or_default();
                if !c.contains(&i) {
                    c.push(i);
                }
            }
        }
        Ctx {
            w,
            nodes,
            vals: HashMap::new(),
            consumers,
            graph_outputs,
            done: vec![false; nodes.len()],
            opset,
            float_islands: Vec::new(),
            int8_layer_norm: false,
            prepack: false,
            deq_cache: HashMap::new(),
            layout_cache: HashMap::new(),
            const_cache: HashMap::new(),
            alias_base: HashMap::new(),
            inputs: HashSet::new(),
            swapped_last2: HashMap::new(),
        }
    }

    /// Records that `t` is a graph input (a reshape of it is copied, never aliased, when it is
    /// also an output).
    pub fn mark_input(&mut self, t: TensorId) {
        self.inputs.insert(t.0);
    }

    /// Whether `t` is a graph input or an alias of one.
    pub fn is_input(&self, t: TensorId) -> bool {
        let base = self.alias_base.get(&t.0).copied().unwrap_or(t);
        self.inputs.contains(&base.0)
    }

    /// Input `k` of node `n`, `None` when absent or empty.
    pub fn in_name(n: &NodeProto, k: usize) -> Option<&str> {
        n.input.get(k).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }

    /// The value of tensor `name`.
    pub fn val(&self, name: &str) -> LResult<&Val> {
        self.vals
            .get(name)
            .ok_or_else(|| Fail::Unsupported(format!("input '{name}' is not available")))
    }

    /// Value of input `k` of `n` (required).
    pub fn input(&self, n: &NodeProto, k: usize) -> LResult<&Val> {
        match Self::in_name(n, k) {
            Some(name) => self.val(name),
            None => unsup(format!("input {k} is missing")),
        }
    }

    /// Input `k` as a constant, `None` when absent or not constant.
    pub fn konst(&self, n: &NodeProto, k: usize) -> Option<&HostTensor> {
        match self.vals.get(Self::in_name(n, k)?)? {
            Val::Const(h) => Some(h),
            _ => None,
        }
    }

    /// Input `k` as the dequantized view of an int8 tensor.
    pub fn deq(&self, n: &NodeProto, k: usize) -> Option<Act> {
        match self.vals.get(Self::in_name(n, k)?)? {
            Val::Deq(a) => Some(a.clone()),
            _ => None,
        }
    }

    /// Stores the value of output `k` of `n`.
    pub fn set_out(&mut self, n: &NodeProto, k: usize, v: Val) {
        if let Some(name) = Self::in_name_out(n, k) {
            self.vals.insert(name.to_string(), v);
        }
    }

    fn in_name_out(n: &NodeProto, k: usize) -> Option<&str> {
        n.output
            .get(k)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }

    /// Errors when output `k > 0` of `n` is used (ops whose extra outputs the runtime lacks).
    pub fn only_first_output(&self, n: &NodeProto) -> LResult<()> {
        for o in n.output.iter().skip(1).filter(|o| !o.is_empty()) {
            if self.consumers.contains_key(o) || self.graph_outputs.contains(o) {
                return unsup(format!("its extra output '{o}' is used"));
            }
        }
        Ok(())
    }

    /// `(scale, zero_point)` of an int8 tensor.
    pub fn quant(&self, a: &Act) -> LResult<(f32, i32)> {
        Ok(self.w.quant(a.id)?)
    }

    /// An f32 tensor for input `k` of `n`: dequantizes int8 values (cached) and writes
    /// constants as f32 constant tensors.
    pub fn f32_input(&mut self, n: &NodeProto, k: usize) -> LResult<Act> {
        let name = match Self::in_name(n, k) {
            Some(s) => s.to_string(),
            None => return unsup(format!("input {k} is missing")),
        };
        self.f32_of(&name)
    }

    /// An f32 tensor holding tensor `name`.
    pub fn f32_of(&mut self, name: &str) -> LResult<Act> {
        match self.val(name)?.clone() {
            Val::F32(a) => Ok(a),
            Val::Deq(a) => {
                if let Some(&t) = self.deq_cache.get(&a.id.0) {
                    return Ok(Act { id: t, ..a });
                }
                let t = self.w.dequantize(a.id)?;
                self.deq_cache.insert(a.id.0, t);
                Ok(Act { id: t, ..a })
            }
            Val::Const(h) => {
                let id = match self.const_cache.get(name) {
                    Some(&t) => t,
                    None => {
                        let dims = runtime_dims(&h.shape)?;
                        let t = self.w.const_f32(
                            &dims,
                            &h.as_f32(),
                            edgeloop_runtime::image::writer::ConstRole::Other,
                        )?;
                        self.const_cache.insert(name.to_string(), t);
                        t
                    }
                };
                Ok(Act {
                    id,
                    shape: h.shape.clone(),
                    layout: Layout::Plain,
                })
            }
            Val::I8(_) => unsup(format!(
                "'{name}' is an int8 tensor read by a float op (a QuantizeLinear output without DequantizeLinear)"
            )),
            Val::I32(_) => unsup(format!("'{name}' is an integer tensor read by a float op")),
        }
    }

    /// `a` in layout `want` (a Transpose op when it differs, cached).
    pub fn to_layout(&mut self, a: &Act, want: Layout) -> LResult<Act> {
        if a.layout == want {
            return Ok(a.clone());
        }
        if a.shape.len() != 4 {
            return unsup(format!("layout change of a rank-{} value", a.shape.len()));
        }
        let key = (a.id.0, want == Layout::Nhwc);
        let id = match self.layout_cache.get(&key) {
            Some(&t) => t,
            None => {
                let perm: [usize; 4] = if want == Layout::Nhwc {
                    [0, 2, 3, 1]
                } else {
                    [0, 3, 1, 2]
                };
                let t = self.w.transpose(a.id, &perm)?;
                self.layout_cache.insert(key, t);
                t
            }
        };
        Ok(Act {
            id,
            shape: a.shape.clone(),
            layout: want,
        })
    }

    /// `a` read under another logical shape with the same element count: a zero-copy alias
    /// (plain layout), or the act itself when nothing changes.
    pub fn reshape(&mut self, a: &Act, shape: &[usize]) -> LResult<Act> {
        let mut a = a.clone();
        if a.layout == Layout::Nhwc {
            // NHWC bytes equal NCHW bytes when C == 1 or H·W == 1.
            let s = &a.shape;
            if s[1] == 1 || s[2] * s[3] == 1 {
                a.layout = Layout::Plain;
            } else {
                a = self.to_layout(&a, Layout::Plain)?;
            }
        }
        let dims = runtime_dims(shape)?;
        if self.w.shape(a.id)? == dims {
            return Ok(Act {
                id: a.id,
                shape: shape.to_vec(),
                layout: Layout::Plain,
            });
        }
        let base = self.alias_base.get(&a.id.0).copied().unwrap_or(a.id);
        let t = self.w.alias(base, &dims)?;
        self.alias_base.insert(t.0, base);
        Ok(Act {
            id: t,
            shape: shape.to_vec(),
            layout: Layout::Plain,
        })
    }

    /// Records that `nodes[i]` was lowered in f32 although its neighbours are quantized.
    pub fn note_island(&mut self, i: usize, why: &str) {
        let n = &self.nodes[i];
        self.float_islands
            .push(format!("{} ({}): {why}", label(n, i), n.op_type));
    }

    /// Quantization parameters of a Q/DQ node (inputs 1 and 2 constant).
    pub fn qparams(&self, n: &NodeProto, rank: usize) -> LResult<QParams> {
        if crate::onnx::attr_i(n, "block_size", 0) != 0 {
            return unsup("blocked quantization (block_size) is not supported");
        }
        let s = match self.konst(n, 1) {
            Some(s) => s,
            None => return unsup("its scale is not a constant"),
        };
        let scales = s.as_f32();
        let (zero_points, elem) = match self.konst(n, 2) {
            Some(z) => (z.as_i64(), z.elem),
            None => {
                let out_t = crate::onnx::attr_i(n, "output_dtype", 0);
                let elem = if out_t != 0 {
                    Elem::from_onnx(out_t as i32).unwrap_or(Elem::F32)
                } else {
                    Elem::U8
                };
                (vec![0; scales.len()], elem)
            }
        };
        if !matches!(elem, Elem::I8 | Elem::U8 | Elem::I32) {
            return unsup(format!("quantized type {elem:?} is not supported"));
        }
        if zero_points.len() != scales.len() {
            return unsup("scale and zero point lengths differ");
        }
        if scales.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
            return unsup("a scale is not finite and positive");
        }
        let axis = if scales.len() > 1 {
            let a = crate::onnx::attr_i(n, "axis", 1);
            let a = if a < 0 { a + rank as i64 } else { a };
            if a < 0 || a as usize >= rank.max(1) {
                return unsup(format!("axis {a} out of range"));
            }
            Some(a as usize)
        } else {
            None
        };
        Ok(QParams {
            scales,
            zero_points,
            elem,
            axis,
        })
    }

    /// Finishes a graph output: a plain tensor (f32 for float values) marked as output.
    /// Returns the runtime tensor.
    pub fn output(&mut self, name: &str, want_int: bool) -> LResult<TensorId> {
        let v = self.val(name)?.clone();
        let a = match v {
            Val::Deq(a) if want_int => a,
            Val::Deq(_) | Val::F32(_) => self.f32_of(name)?,
            Val::I8(a) | Val::I32(a) => a,
            Val::Const(_) => {
                return unsup(format!(
                    "graph output '{name}' is a constant (nothing to compute)"
                ))
            }
        };
        let a = self.to_layout(&a, Layout::Plain)?;
        let mut id = a.id;
        if self.is_input(id) {
            // An input's bytes may be reused while the graph runs: copy it.
            let dims = self.w.shape(id)?;
            id = self.w.reshape_copy(id, &dims)?;
        }
        self.w.output(id)?;
        Ok(id)
    }

    /// Emits a raw op.
    pub fn op(
        &mut self,
        code: OpCode,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        params: &[u32],
    ) -> LResult<()> {
        self.op_version(code, 1, inputs, outputs, params)
    }

    /// [`Ctx::op`] with parameter-record version `version`.
    pub fn op_version(
        &mut self,
        code: OpCode,
        version: u8,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        params: &[u32],
    ) -> LResult<()> {
        Ok(self.w.op(code, version, inputs, outputs, params)?)
    }

    /// An int8 activation with `quant` and ONNX shape `shape` in `layout`.
    pub fn new_i8(&mut self, shape: &[usize], layout: Layout, q: (f32, i32)) -> LResult<Act> {
        let dims = runtime_dims(&physical(shape, layout))?;
        let id = self.w.activation(DType::I8, &dims, Some(q))?;
        Ok(Act {
            id,
            shape: shape.to_vec(),
            layout,
        })
    }

    /// An f32 activation with ONNX shape `shape` in `layout`.
    pub fn new_f32(&mut self, shape: &[usize], layout: Layout) -> LResult<Act> {
        let dims = runtime_dims(&physical(shape, layout))?;
        let id = self.w.activation(DType::F32, &dims, None)?;
        Ok(Act {
            id,
            shape: shape.to_vec(),
            layout,
        })
    }
}

/// A node's display name.
pub fn label(n: &NodeProto, i: usize) -> String {
    crate::onnx::node_label(n, i)
}

/// Lowers node `i` (dispatch by op type).
pub fn lower_node(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return unsup(format!("domain '{}' is not supported", n.domain));
    }
    if n.op_type == "Constant" {
        let h = match super::host::constant_node(n) {
            Some(r) => r?,
            None => return unsup("Constant without a value"),
        };
        ctx.set_out(n, 0, Val::Const(h));
        return Ok(());
    }
    if fold::try_fold(ctx, i)? {
        return Ok(());
    }
    match n.op_type.as_str() {
        "QuantizeLinear" => quant::quantize_linear(ctx, i),
        "DequantizeLinear" => quant::dequantize_linear(ctx, i),
        "Gemm" => dense::gemm(ctx, i),
        "MatMul" => dense::matmul(ctx, i),
        "Conv" => dense::conv(ctx, i),
        "QLinearMatMul" => dense::qlinear_matmul(ctx, i),
        "QLinearConv" => dense::qlinear_conv(ctx, i),
        "Add" | "Mul" | "Sub" | "Div" => elementwise::binary(ctx, i),
        "Relu" | "Clip" => elementwise::clip(ctx, i),
        "Sigmoid" | "Tanh" | "Gelu" | "Erf" => elementwise::table(ctx, i),
        "MaxPool" | "AveragePool" => pool::pool(ctx, i),
        "GlobalAveragePool" => pool::global_avg(ctx, i),
        "ReduceMean" => reduce::reduce_mean(ctx, i),
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" => shape::reshape(ctx, i),
        "Transpose" => shape::transpose(ctx, i),
        "Concat" => shape::concat(ctx, i),
        "Gather" => shape::gather(ctx, i),
        "Softmax" => norm::softmax(ctx, i),
        "LayerNormalization" => norm::layer_norm(ctx, i),
        other => unsup(format!("no lowering for op type {other}")),
    }
}

//! The compiler: an ONNX model (int8 QDQ, or fp32) → an edgeloop model image.
//!
//! [`compile`] reads the graph in order ([`lower`]): initializers become constants, constant
//! subgraphs are folded, QDQ patterns `DequantizeLinear → op → QuantizeLinear` become int8 ops
//! with precomputed requantization multipliers/shifts and lookup tables ([`qdq_match`]), other
//! nodes become f32 ops, and the image writer plans the arena. Every node that cannot be lowered
//! is listed in one [`Error::Unsupported`]. [`Compiled::run`] executes the image with the
//! runtime's interpreter (for tests and tools); [`report::CompileReport`] describes it.

pub mod exec;
pub mod host;
pub mod lower;
pub mod qdq_match;
pub mod reference;
pub mod report;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use edgeloop_runtime::image::writer::{BuiltImage, ImageWriter};
use edgeloop_runtime::image::DType;
use prost::Message;
use serde::Serialize;
use tract_onnx::pb::{tensor_shape_proto::dimension, type_proto, ModelProto, ValueInfoProto};

use crate::error::{Error, Result, UnsupportedNode};
use host::{Elem, HostTensor};
use lower::{Act, Ctx, Fail, Layout, Val};
pub use report::CompileReport;

/// Options of [`compile`].
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Model name stored in the image (≤ 24 printable ASCII bytes); default: the graph's name,
    /// shortened.
    pub name: Option<String>,
    /// Model version stored in the image (reported in telemetry).
    pub model_version: u32,
    /// Shapes of graph inputs the model leaves symbolic (`name → dims`).
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Lower quantized LayerNormalization to the runtime's integer-only LayerNorm (less RAM, no
    /// FPU) instead of an f32 LayerNorm between Dequantize and Quantize (the default, which
    /// computes what the QDQ model means and agrees with ONNX Runtime; the integer kernel's
    /// rounding differs by an LSB on a quarter of the outputs and more after later layers).
    pub int8_layer_norm: bool,
    /// Pre-pack the weights of int8 FullyConnected ops with at least 4 rows for x86-64 hosts
    /// (FullyConnected version 2, format 1.2): the layout of the runtime's AVX-512 VNNI panel
    /// kernel, with the bias and input zero point folded into one term per output, so `invoke`
    /// does not pack them. Same outputs bit for bit; other CPUs run such ops through a slow
    /// reference loop, so leave it off for microcontroller images.
    pub prepack: bool,
    /// Keep each attention-score chain `Dequantize → Mul → Add(mask) → Softmax → Quantize` and
    /// each `Dequantize → LayerNorm → Quantize` as separate ops instead of fusing them into one
    /// Softmax or LayerNorm version 2 (int8 in and out, image format 1.3; see
    /// `ImageWriter::fuse_quantized_softmax` and `fuse_quantized_layer_norm`), for runtimes
    /// older than 1.3. The fused ops give the same bytes, without the f32 intermediates in the
    /// arena.
    pub unfused: bool,
    /// Reference (calibration) inputs: when given, the finished image runs on them and the
    /// histograms of its first input's values and of its predicted classes are stored in its
    /// statistics section for on-device drift checks ([`reference`]).
    pub reference: Vec<HostMap>,
}

/// A graph input or output of the image, and how it maps to the ONNX tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IoSpec {
    /// ONNX tensor name.
    pub name: String,
    /// ONNX element type (`float32`, `int64`, `int8`, `uint8`, `int32`).
    pub onnx_type: String,
    /// Element type in the image (`f32`, `i8`, `i32`).
    pub image_type: String,
    /// Shape (the ONNX shape; the image stores the same elements in the same order).
    pub shape: Vec<usize>,
    /// `(scale, zero_point)` of an int8 image tensor.
    pub quant: Option<(f32, i32)>,
    /// `image value = ONNX value − offset` (128 for uint8 tensors carried as int8, else 0).
    pub offset: i64,
}

/// Result of [`compile`].
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The image and its writer statistics (bytes in `image.bytes`).
    pub image: BuiltImage,
    /// What the image contains.
    pub report: CompileReport,
}

impl Compiled {
    /// The image bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.image.bytes
    }
}

fn elem_name(e: Elem) -> &'static str {
    match e {
        Elem::F32 => "float32",
        Elem::I8 => "int8",
        Elem::U8 => "uint8",
        Elem::I32 => "int32",
        Elem::I64 => "int64",
        Elem::Bool => "bool",
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::I8 => "i8",
        DType::U8 => "u8",
        DType::I16 => "i16",
        DType::I32 => "i32",
        DType::F32 => "f32",
    }
}

/// Element type and static shape of a graph input/output declaration.
fn declared(vi: &ValueInfoProto) -> (Option<Elem>, Option<Vec<usize>>) {
    let Some(type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return (None, None);
    };
    let shape = tt.shape.as_ref().and_then(|s| {
        s.dim
            .iter()
            .map(|d| match d.value {
                Some(dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
    });
    // Graph inputs and outputs are taken in float32 only (double is not narrowed silently).
    let elem = if tt.elem_type == tract_onnx::pb::tensor_proto::DataType::Double as i32 {
        None
    } else {
        Elem::from_onnx(tt.elem_type)
    };
    (elem, shape)
}

fn image_name(model: &ModelProto, opts: &CompileOptions) -> String {
    let raw = opts
        .name
        .clone()
        .or_else(|| model.graph.as_ref().map(|g| g.name.clone()))
        .unwrap_or_default();
    let clean: String = raw
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
        .take(24)
        .collect();
    if clean.is_empty() {
        "model".into()
    } else {
        clean
    }
}

/// Quantization of an int8/uint8 graph input, from the first node that dequantizes it.
fn input_quant(ctx: &Ctx<'_>, name: &str) -> Option<(f32, i32)> {
    for &c in ctx.consumers.get(name)? {
        let n = &ctx.nodes[c];
        let k = n.input.iter().position(|t| t == name)?;
        let (s, z) = match (n.op_type.as_str(), k) {
            ("DequantizeLinear", 0) => (1, 2),
            ("QLinearMatMul" | "QLinearConv", 0) => (1, 2),
            ("QLinearMatMul" | "QLinearConv", 3) => (4, 5),
            _ => continue,
        };
        let scale = ctx.konst(n, s)?.scalar_f32()?;
        let (zp, elem) = match ctx.konst(n, z) {
            Some(h) => (h.scalar_i64()?, h.elem),
            None => (0, Elem::U8),
        };
        let zp = if elem == Elem::U8 { zp - 128 } else { zp };
        if scale > 0.0 && scale.is_finite() {
            return Some((scale, zp as i32));
        }
    }
    None
}

/// Compiles an ONNX model into a model image.
pub fn compile(model: &ModelProto, opts: &CompileOptions) -> Result<Compiled> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Model("model has no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0);
    crate::onnx::OnnxModel {
        proto: model.clone(),
    }
    .validate_graph()?;
    let writer = ImageWriter::new(&image_name(model, opts), opts.model_version)
        .map_err(|e| Error::Compile(e.to_string()))?;
    let outputs: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut ctx = Ctx::new(writer, &graph.node, outputs, opset);
    ctx.int8_layer_norm = opts.int8_layer_norm;
    ctx.prepack = opts.prepack;
    for t in &graph.initializer {
        ctx.vals
            .insert(t.name.clone(), Val::Const(host::from_proto(t)?));
    }
    // Graph inputs.
    let mut inputs = Vec::new();
    let mut missing = Vec::new();
    for vi in &graph.input {
        if ctx.vals.contains_key(&vi.name) {
            continue;
        }
        let (elem, shape) = declared(vi);
        let shape = opts.input_shapes.get(&vi.name).cloned().or(shape);
        let Some(shape) = shape else {
            missing.push(vi.name.clone());
            continue;
        };
        let Some(elem) = elem else {
            return Err(Error::Compile(format!(
                "input '{}' has an element type the compiler does not handle",
                vi.name
            )));
        };
        let dims = lower::runtime_dims(&shape)
            .map_err(|_| Error::Compile(format!("input '{}' has shape {shape:?}", vi.name)))?;
        let (dtype, quant, offset) = match elem {
            Elem::F32 => (DType::F32, None, 0),
            Elem::I64 | Elem::I32 => (DType::I32, None, 0),
            Elem::I8 => (DType::I8, input_quant(&ctx, &vi.name), 0),
            Elem::U8 => (DType::I8, input_quant(&ctx, &vi.name), 128),
            Elem::Bool => {
                return Err(Error::Compile(format!(
                    "input '{}' is bool, which the runtime does not take",
                    vi.name
                )))
            }
        };
        let id = ctx
            .w
            .input(dtype, &dims, quant)
            .map_err(|e| Error::Compile(format!("input '{}': {e}", vi.name)))?;
        ctx.mark_input(id);
        let act = Act {
            id,
            shape: shape.clone(),
            layout: Layout::Plain,
        };
        ctx.vals.insert(
            vi.name.clone(),
            match dtype {
                DType::F32 => Val::F32(act),
                DType::I32 => Val::I32(act),
                _ => Val::I8(act),
            },
        );
        inputs.push(IoSpec {
            name: vi.name.clone(),
            onnx_type: elem_name(elem).into(),
            image_type: dtype_name(dtype).into(),
            shape,
            quant,
            offset,
        });
    }
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "input(s) without a static shape: {}; give them with --input-shape NAME=D0,D1,...",
            missing.join(", ")
        )));
    }
    // Nodes.
    let mut unsupported = Vec::new();
    let mut poisoned: HashSet<String> = HashSet::new();
    for i in 0..graph.node.len() {
        if ctx.done[i] {
            continue;
        }
        let n = &graph.node[i];
        if n.input.iter().any(|t| poisoned.contains(t)) {
            poisoned.extend(n.output.iter().cloned());
            continue;
        }
        match lower::lower_node(&mut ctx, i) {
            Ok(()) => {}
            Err(Fail::Unsupported(reason)) => {
                poisoned.extend(n.output.iter().cloned());
                unsupported.push(UnsupportedNode {
                    name: lower::label(n, i),
                    op_type: n.op_type.clone(),
                    opset,
                    reason,
                });
            }
            Err(Fail::Error(e)) => return Err(e),
        }
    }
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(unsupported));
    }
    // Outputs.
    let mut outs = Vec::new();
    for vi in &graph.output {
        let (elem, _) = declared(vi);
        let Some(elem) = elem else {
            return Err(Error::Compile(format!(
                "output '{}' has an element type the compiler does not handle",
                vi.name
            )));
        };
        let want_int = matches!(elem, Elem::I8 | Elem::U8);
        let id = ctx.output(&vi.name, want_int).map_err(|f| match f {
            Fail::Unsupported(r) => Error::Compile(format!("output '{}': {r}", vi.name)),
            Fail::Error(e) => e,
        })?;
        let dtype = ctx.w.dtype(id).map_err(|e| Error::Compile(e.to_string()))?;
        let q = ctx.w.quant(id).map_err(|e| Error::Compile(e.to_string()))?;
        let shape = match ctx.vals.get(&vi.name) {
            Some(Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a)) => a.shape.clone(),
            _ => Vec::new(),
        };
        outs.push(IoSpec {
            name: vi.name.clone(),
            onnx_type: elem_name(elem).into(),
            image_type: dtype_name(dtype).into(),
            shape,
            quant: (q.0 > 0.0).then_some(q),
            offset: if elem == Elem::U8 { 128 } else { 0 },
        });
    }
    let islands = std::mem::take(&mut ctx.float_islands);
    // Lowering can leave ops whose result nothing reads (e.g. the QuantizeLinear of a value
    // whose float consumer reads the float directly): drop them and what only they used.
    ctx.w.remove_dead_ops();
    if !opts.unfused {
        // Each kind of fusion is kept unless it grows the arena: on tensors of a few rows its
        // f32 scratch is as large as the f32 tensors it replaces, and the int8 input and output
        // are then live together.
        let fuse = |e| Error::Compile(format!("fusing the int8 islands: {e}"));
        for layer_norm in [false, true] {
            let mut fused = ctx.w.clone();
            let n = if layer_norm {
                fused.fuse_quantized_layer_norm().map_err(fuse)?
            } else {
                fused.fuse_quantized_softmax().map_err(fuse)?
            };
            if n > 0 && fused.planned_arena_bytes() <= ctx.w.planned_arena_bytes() {
                ctx.w = fused;
            }
        }
    }
    let image = ctx
        .w
        .finish()
        .map_err(|e| Error::Compile(format!("writing the image: {e}")))?;
    let report = report::CompileReport::new(&image, inputs, outs, islands)?;
    let mut compiled = Compiled { image, report };
    if !opts.reference.is_empty() {
        compiled.add_reference_stats(&opts.reference)?;
    }
    Ok(compiled)
}

/// Reads an ONNX file and compiles it.
pub fn compile_file(path: &Path, opts: &CompileOptions) -> Result<Compiled> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| Error::Model(format!("{}: not an ONNX protobuf: {e}", path.display())))?;
    compile(&model, opts)
}

/// Host tensors by name (inputs or outputs of [`Compiled::run`]).
pub type HostMap = HashMap<String, HostTensor>;

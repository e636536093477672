//! The compile report: flash bytes by section, arena vs its exact lower bound, MACs per op and in
//! total, the ops used (so firmware links only those kernels), inputs/outputs and float islands.
//! Everything but the I/O mapping and the islands is read back from the image itself.

use std::collections::BTreeMap;
use std::fmt;

use edgeloop_runtime::image::writer::{AlignedBytes, BuiltImage};
use edgeloop_runtime::image::{DType, Model, OpCode};
use serde::Serialize;

use super::IoSpec;
use crate::error::{Error, Result};

/// Flash bytes of the image by section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlashSections {
    /// Header and graph section (with padding to the constant section).
    pub header_and_graph: usize,
    /// Constant section (deduplicated, 16-byte aligned entries).
    pub constants: usize,
    /// Of which raw weight bytes.
    pub weights: usize,
    /// Of which raw bias bytes.
    pub biases: usize,
    /// Of which requantization multipliers/shifts and lookup tables.
    pub requant_and_tables: usize,
    /// Statistics section and its padding.
    pub statistics: usize,
    /// Whole image (without a signature trailer).
    pub total: usize,
}

/// One op of the image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpRow {
    /// Op index in the image.
    pub index: usize,
    /// Runtime op name.
    pub op: String,
    /// `int8`, `f32` or `int32` (the element type of its first input).
    pub dtype: String,
    /// Shape of its first output.
    pub output_shape: Vec<usize>,
    /// Multiply-accumulates per invoke (0 for ops without a dot product).
    pub macs: u64,
}

/// Description of a compiled image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompileReport {
    /// Model name in the image header.
    pub name: String,
    /// Flash bytes by section.
    pub flash: FlashSections,
    /// Arena bytes the plan needs (header field `arena_bytes`).
    pub arena_bytes: usize,
    /// Exact lower bound: the largest total (16-byte aligned) size of tensors live at one op.
    pub lower_bound: usize,
    /// Kernel scratch the ops declare beyond their planned tensors (none of the ops the compiler
    /// emits needs any: scratch, where an op has it, is a planned tensor).
    pub declared_scratch: usize,
    /// Which planner strategy produced the plan.
    pub plan_method: String,
    /// Every op with its MACs.
    pub ops: Vec<OpRow>,
    /// Sum of MACs.
    pub total_macs: u64,
    /// Ops used and how often (`name (dtype)` → count).
    pub ops_used: BTreeMap<String, usize>,
    /// The op set firmware passes to `Interpreter::new_with_ops` so that only these kernels
    /// are linked (Rust expression over `edgeloop_runtime::image`).
    pub firmware_op_set: String,
    /// Graph inputs.
    pub inputs: Vec<IoSpec>,
    /// Graph outputs.
    pub outputs: Vec<IoSpec>,
    /// Nodes of a quantized model that run in f32, with the reason.
    pub float_islands: Vec<String>,
    /// Reference histograms stored for on-device drift checks (statistics tags 1 and 2), when
    /// reference inputs were given.
    pub reference: Option<super::reference::ReferenceSummary>,
}

fn op_name(code: u8) -> String {
    match OpCode::from_code(code) {
        Some(c) => format!("{c:?}"),
        None => format!("op{code}"),
    }
}

fn dtype_label(d: DType) -> &'static str {
    match d {
        DType::I8 => "int8",
        DType::U8 => "uint8",
        DType::I16 => "int16",
        DType::I32 => "int32",
        DType::F32 => "f32",
    }
}

impl CompileReport {
    /// Builds the report of `image` (parsed again with the runtime's parser).
    pub fn new(
        image: &BuiltImage,
        inputs: Vec<IoSpec>,
        outputs: Vec<IoSpec>,
        float_islands: Vec<String>,
    ) -> Result<Self> {
        let bytes = AlignedBytes::new(&image.bytes);
        let model = Model::parse(bytes.as_slice())
            .map_err(|e| Error::Compile(format!("the written image does not parse: {e:?}")))?;
        let tinfo = |t: u16| model.tensor(t as usize).ok();
        let mut ops = Vec::new();
        let mut used: BTreeMap<String, usize> = BTreeMap::new();
        for (index, rec) in model.ops().enumerate() {
            let rec = rec.map_err(|e| Error::Compile(format!("op {index}: {e:?}")))?;
            let x = tinfo(rec.input(0));
            let y = tinfo(rec.output(0));
            let w = tinfo(rec.input(1));
            let out_elems = y.map(|t| t.num_elements() as u64).unwrap_or(0);
            let dims = |t: Option<edgeloop_runtime::image::TensorInfo>| -> Vec<usize> {
                t.map(|t| t.shape.dims().iter().map(|&d| d as usize).collect())
                    .unwrap_or_default()
            };
            let wd = dims(w);
            let xd = dims(x);
            let macs = match OpCode::from_code(rec.code) {
                Some(OpCode::FullyConnected) => out_elems * wd.get(1).copied().unwrap_or(0) as u64,
                Some(OpCode::Conv2d) if wd.len() == 4 => out_elems * (wd[1] * wd[2] * wd[3]) as u64,
                Some(OpCode::DepthwiseConv2d) if wd.len() == 4 => {
                    out_elems * (wd[1] * wd[2]) as u64
                }
                Some(OpCode::Conv1d) if wd.len() == 3 => out_elems * (wd[1] * wd[2]) as u64,
                Some(OpCode::BatchMatMul) => out_elems * xd.last().copied().unwrap_or(0) as u64,
                _ => 0,
            };
            let dtype = x.map(|t| dtype_label(t.dtype)).unwrap_or("-").to_string();
            let op = op_name(rec.code);
            *used.entry(format!("{op} ({dtype})")).or_default() += 1;
            ops.push(OpRow {
                index,
                op,
                dtype,
                output_shape: dims(y),
                macs,
            });
        }
        let set = edgeloop_runtime::image::op_set_of(&model)
            .map_err(|e| Error::Compile(format!("the written image does not bind: {e:?}")))?;
        let firmware_op_set = op_set_expression(set);
        let st = &image.stats;
        let stats_bytes = st.image_bytes - st.graph_bytes - st.constant_bytes;
        // No emitted op reserves memory outside its planned tensors.
        let declared_scratch = 0;
        Ok(CompileReport {
            name: model.name().to_string(),
            flash: FlashSections {
                header_and_graph: st.graph_bytes,
                constants: st.constant_bytes,
                weights: st.weight_bytes,
                biases: st.bias_bytes,
                requant_and_tables: st.other_constant_bytes,
                statistics: stats_bytes,
                total: st.image_bytes,
            },
            arena_bytes: model.arena_bytes(),
            lower_bound: st.plan.lower_bound,
            declared_scratch,
            plan_method: st.plan.method.to_string(),
            total_macs: ops.iter().map(|o| o.macs).sum(),
            ops,
            ops_used: used,
            firmware_op_set,
            inputs,
            outputs,
            float_islands,
            reference: None,
        })
    }

    /// Machine-readable form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for CompileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fl = &self.flash;
        writeln!(f, "model image '{}'", self.name)?;
        writeln!(f, "flash: {} bytes", fl.total)?;
        writeln!(f, "  header + graph     {:>9}", fl.header_and_graph)?;
        writeln!(f, "  constants          {:>9}", fl.constants)?;
        writeln!(f, "    weights          {:>9}", fl.weights)?;
        writeln!(f, "    biases           {:>9}", fl.biases)?;
        writeln!(f, "    requant + tables {:>9}", fl.requant_and_tables)?;
        writeln!(f, "  statistics         {:>9}", fl.statistics)?;
        let over = self.arena_bytes as f64 / self.lower_bound.max(1) as f64 - 1.0;
        writeln!(
            f,
            "arena: {} bytes planned, exact lower bound {} (+{} declared scratch): {:+.1}% ({})",
            self.arena_bytes,
            self.lower_bound,
            self.declared_scratch,
            over * 100.0,
            self.plan_method
        )?;
        writeln!(f, "ops ({}):", self.ops.len())?;
        writeln!(
            f,
            "  {:>4}  {:<18} {:<6} {:<20} {:>12}",
            "#", "op", "type", "output", "MACs"
        )?;
        for o in &self.ops {
            writeln!(
                f,
                "  {:>4}  {:<18} {:<6} {:<20} {:>12}",
                o.index,
                o.op,
                o.dtype,
                format!("{:?}", o.output_shape),
                o.macs
            )?;
        }
        writeln!(f, "total MACs: {}", self.total_macs)?;
        let used: Vec<String> = self
            .ops_used
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        writeln!(f, "ops used: {}", used.join(", "))?;
        writeln!(f, "firmware op set: {}", self.firmware_op_set)?;
        for (label, io) in [("input", &self.inputs), ("output", &self.outputs)] {
            for s in io {
                write!(
                    f,
                    "{label} '{}': ONNX {} {:?} → image {}",
                    s.name, s.onnx_type, s.shape, s.image_type
                )?;
                if let Some((sc, z)) = s.quant {
                    write!(f, " (scale {sc:e}, zero point {z})")?;
                }
                if s.offset != 0 {
                    write!(f, ", image = ONNX − {}", s.offset)?;
                }
                writeln!(f)?;
            }
        }
        if let Some(r) = &self.reference {
            write!(
                f,
                "reference statistics (on-device drift): {} inputs; predicted classes {:?}",
                r.samples, r.classes
            )?;
            if let Some((lo, hi, counts)) = &r.input {
                write!(
                    f,
                    "; input values [{lo}, {hi}] in {} bins {counts:?}",
                    counts.len()
                )?;
            }
            writeln!(f)?;
        }
        if !self.float_islands.is_empty() {
            writeln!(f, "float islands ({}):", self.float_islands.len())?;
            for s in &self.float_islands {
                writeln!(f, "  {s}")?;
            }
        }
        Ok(())
    }
}

/// The Rust expression of op set `set` for a firmware (`op_set_int8(&[...]) | op_set_f32(&[...])`,
/// `| PACKED_WEIGHTS` when FullyConnected version 2 is used), the codes in code order.
fn op_set_expression(set: u128) -> String {
    use edgeloop_runtime::image::{has_f32, has_i8, PACKED_WEIGHTS};
    let codes = |f32: bool| {
        (0..=u8::MAX)
            .filter_map(OpCode::from_code)
            .filter(|&c| if f32 { has_f32(set, c) } else { has_i8(set, c) })
            .map(|c| format!("OpCode::{c:?}"))
            .collect::<Vec<_>>()
    };
    let mut parts = Vec::new();
    for (name, list) in [("op_set_int8", codes(false)), ("op_set_f32", codes(true))] {
        if !list.is_empty() {
            parts.push(format!("{name}(&[{}])", list.join(", ")));
        }
    }
    if set & PACKED_WEIGHTS != 0 {
        parts.push("PACKED_WEIGHTS".to_string());
    }
    if parts.is_empty() {
        parts.push("0".to_string());
    }
    parts.join(" | ")
}

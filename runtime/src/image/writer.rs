//! Image writer (feature `std`): build a graph in code, plan its arena, emit the bytes.
//!
//! The writer is generic: tensors, constants and op records. Typed helpers that know each op's
//! parameter record live in [`super::writer_ops`]-style methods on [`ImageWriter`] (see the
//! `add_*` methods), so the compiler and the tests share one encoder per op.

use std::collections::HashMap;
use std::fmt;

use super::bytes::align_up;
use super::crc::Crc32;
use super::planner::{self, Buffer, Plan};
use super::tensor::{DType, Shape, MAX_RANK, TENSOR_RECORD_LEN};
use super::{
    Model, OpCode, FIRST_MINOR_1_OP, FORMAT_MAJOR, FORMAT_MINOR, GRAPH_HEADER_LEN, HEADER_LEN,
    MAGIC, MAX_NAME_LEN, NO_TENSOR,
};
use crate::Error;

mod fuse;
pub use fuse::FUSED_SOFTMAX_GROUP;

/// A tensor of the graph being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub u16);

/// Why an image could not be written.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WriteError {
    /// A shape has rank > 4, a zero dimension or a dimension > 65535.
    BadShape(Vec<usize>),
    /// Constant data length does not match its shape and type.
    ConstantLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A quantization scale/zero point cannot be encoded.
    BadQuant {
        /// The scale.
        scale: f32,
        /// The zero point.
        zero_point: i32,
    },
    /// A requantization scale cannot be represented as multiplier and shift.
    BadScale(f64),
    /// Too many tensors, ops or inputs, or a section larger than 4 GiB.
    TooLarge,
    /// Name longer than 24 bytes or not printable ASCII.
    NameTooLong,
    /// A tensor id does not belong to this writer.
    UnknownTensor(u16),
    /// The graph was written but the runtime's own parser rejects it (a writer or caller bug).
    Invalid(Error),
    /// [`with_stats`] was given a signed image (sign after adding statistics).
    Signed,
    /// A statistics entry has tag 0 (reserved).
    BadStatsTag,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::BadShape(s) => write!(f, "invalid tensor shape {s:?}"),
            WriteError::ConstantLength { expected, got } => {
                write!(f, "constant has {got} bytes, its shape needs {expected}")
            }
            WriteError::BadQuant { scale, zero_point } => {
                write!(
                    f,
                    "invalid quantization (scale {scale}, zero point {zero_point})"
                )
            }
            WriteError::BadScale(s) => write!(f, "requantization scale {s} is not representable"),
            WriteError::TooLarge => write!(f, "graph too large for the image format"),
            WriteError::NameTooLong => {
                write!(
                    f,
                    "model name longer than {MAX_NAME_LEN} bytes or not printable ASCII"
                )
            }
            WriteError::UnknownTensor(t) => write!(f, "unknown tensor id {t}"),
            WriteError::Invalid(e) => write!(f, "written image does not validate: {e}"),
            WriteError::Signed => write!(
                f,
                "the image is signed; add statistics before signing (the signature covers them)"
            ),
            WriteError::BadStatsTag => write!(f, "statistics tag 0 is reserved"),
        }
    }
}

impl std::error::Error for WriteError {}

#[derive(Debug, Clone)]
enum Kind {
    Arena,
    Constant(Vec<u8>),
    Persistent,
    Alias(TensorId),
}

#[derive(Debug, Clone)]
struct TensorDef {
    dtype: DType,
    shape: Shape,
    kind: Kind,
    scale: f32,
    zero_point: i32,
}

#[derive(Debug, Clone)]
struct OpDef {
    code: u8,
    version: u8,
    inputs: Vec<u16>,
    outputs: Vec<u16>,
    params: Vec<u8>,
}

/// Sizes of a written image, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageStats {
    /// Total image bytes (without a signature trailer).
    pub image_bytes: usize,
    /// Bytes of the header and graph section.
    pub graph_bytes: usize,
    /// Bytes of the constant section (after deduplication, with alignment padding).
    pub constant_bytes: usize,
    /// Raw bytes of weight tensors (int8 or f32 constants that are op weights).
    pub weight_bytes: usize,
    /// Raw bytes of bias tensors.
    pub bias_bytes: usize,
    /// Raw bytes of the other constants (requantization multipliers/shifts, tables).
    pub other_constant_bytes: usize,
    /// The arena plan.
    pub plan: Plan,
}

/// A written image and what it is made of.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image bytes (copy them to a 16-byte aligned buffer, e.g. [`AlignedBytes`], to parse).
    pub bytes: Vec<u8>,
    /// Sizes and the arena plan.
    pub stats: ImageStats,
}

/// Role of a constant, for the size report only (not stored in the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstRole {
    /// Weights of an op.
    Weight,
    /// Biases of an op.
    Bias,
    /// Requantization parameters, tables, anything else.
    Other,
}

/// Builds a model image in code.
#[derive(Debug, Clone)]
pub struct ImageWriter {
    name: String,
    version: u32,
    tensors: Vec<TensorDef>,
    roles: Vec<ConstRole>,
    ops: Vec<OpDef>,
    inputs: Vec<u16>,
    outputs: Vec<u16>,
    stats: Vec<(u16, Vec<u8>)>,
}

fn shape_of(dims: &[usize]) -> Result<Shape, WriteError> {
    Shape::new(dims).ok_or_else(|| WriteError::BadShape(dims.to_vec()))
}

impl ImageWriter {
    /// A new, empty graph for a model called `name` (≤ 24 bytes) at `version`.
    pub fn new(name: &str, version: u32) -> Result<Self, WriteError> {
        if name.len() > MAX_NAME_LEN || !name.bytes().all(|b| (0x20..0x7F).contains(&b)) {
            return Err(WriteError::NameTooLong);
        }
        Ok(ImageWriter {
            name: name.to_string(),
            version,
            tensors: Vec::new(),
            roles: Vec::new(),
            ops: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            stats: Vec::new(),
        })
    }

    fn push(&mut self, def: TensorDef, role: ConstRole) -> Result<TensorId, WriteError> {
        if self.tensors.len() >= (NO_TENSOR - 1) as usize {
            return Err(WriteError::TooLarge);
        }
        let (zmin, zmax) = match def.dtype {
            DType::I8 => (-128, 127),
            DType::U8 => (0, 255),
            DType::I16 => (-32768, 32767),
            _ => (0, 0),
        };
        let ok = if def.scale == 0.0 {
            def.zero_point == 0
        } else {
            def.scale.is_finite() && def.scale > 0.0 && (zmin..=zmax).contains(&def.zero_point)
        };
        if !ok {
            return Err(WriteError::BadQuant {
                scale: def.scale,
                zero_point: def.zero_point,
            });
        }
        self.tensors.push(def);
        self.roles.push(role);
        Ok(TensorId(self.tensors.len() as u16 - 1))
    }

    fn def(&self, t: TensorId) -> Result<&TensorDef, WriteError> {
        self.tensors
            .get(t.0 as usize)
            .ok_or(WriteError::UnknownTensor(t.0))
    }

    /// Shape of tensor `t`.
    pub fn shape(&self, t: TensorId) -> Result<Vec<usize>, WriteError> {
        Ok(self
            .def(t)?
            .shape
            .dims()
            .iter()
            .map(|&d| d as usize)
            .collect())
    }

    /// Element type of tensor `t`.
    pub fn dtype(&self, t: TensorId) -> Result<DType, WriteError> {
        Ok(self.def(t)?.dtype)
    }

    /// Quantization `(scale, zero_point)` of tensor `t` (`(0.0, 0)` when not quantized).
    pub fn quant(&self, t: TensorId) -> Result<(f32, i32), WriteError> {
        let d = self.def(t)?;
        Ok((d.scale, d.zero_point))
    }

    /// An activation tensor in the arena. `quant` is `(scale, zero_point)` for quantized types.
    pub fn activation(
        &mut self,
        dtype: DType,
        dims: &[usize],
        quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let (scale, zero_point) = quant.unwrap_or((0.0, 0));
        let def = TensorDef {
            dtype,
            shape: shape_of(dims)?,
            kind: Kind::Arena,
            scale,
            zero_point,
        };
        self.push(def, ConstRole::Other)
    }

    /// A graph input (an activation the caller writes before `invoke`).
    pub fn input(
        &mut self,
        dtype: DType,
        dims: &[usize],
        quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let t = self.activation(dtype, dims, quant)?;
        self.inputs.push(t.0);
        Ok(t)
    }

    /// Marks `t` as a graph output.
    pub fn output(&mut self, t: TensorId) -> Result<(), WriteError> {
        self.def(t)?;
        self.outputs.push(t.0);
        Ok(())
    }

    /// A persistent arena tensor (state kept across invokes, e.g. a KV-cache).
    pub fn persistent(
        &mut self,
        dtype: DType,
        dims: &[usize],
        quant: Option<(f32, i32)>,
    ) -> Result<TensorId, WriteError> {
        let (scale, zero_point) = quant.unwrap_or((0.0, 0));
        let def = TensorDef {
            dtype,
            shape: shape_of(dims)?,
            kind: Kind::Persistent,
            scale,
            zero_point,
        };
        self.push(def, ConstRole::Other)
    }

    /// A zero-copy reshape of arena tensor `base` (same element type, quantization and byte size).
    pub fn alias(&mut self, base: TensorId, dims: &[usize]) -> Result<TensorId, WriteError> {
        let b = self.def(base)?.clone();
        let def = TensorDef {
            dtype: b.dtype,
            shape: shape_of(dims)?,
            kind: Kind::Alias(base),
            scale: b.scale,
            zero_point: b.zero_point,
        };
        self.push(def, ConstRole::Other)
    }

    /// A constant tensor from little-endian bytes.
    pub fn constant(
        &mut self,
        dtype: DType,
        dims: &[usize],
        bytes: Vec<u8>,
        quant: Option<(f32, i32)>,
        role: ConstRole,
    ) -> Result<TensorId, WriteError> {
        let shape = shape_of(dims)?;
        let expected = shape.num_elements() as usize * dtype.size();
        if bytes.len() != expected {
            return Err(WriteError::ConstantLength {
                expected,
                got: bytes.len(),
            });
        }
        let (scale, zero_point) = quant.unwrap_or((0.0, 0));
        let def = TensorDef {
            dtype,
            shape,
            kind: Kind::Constant(bytes),
            scale,
            zero_point,
        };
        self.push(def, role)
    }

    /// An int8 constant.
    pub fn const_i8(
        &mut self,
        dims: &[usize],
        data: &[i8],
        role: ConstRole,
    ) -> Result<TensorId, WriteError> {
        let bytes = data.iter().map(|&v| v as u8).collect();
        self.constant(DType::I8, dims, bytes, None, role)
    }

    /// An int32 constant.
    pub fn const_i32(
        &mut self,
        dims: &[usize],
        data: &[i32],
        role: ConstRole,
    ) -> Result<TensorId, WriteError> {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(DType::I32, dims, bytes, None, role)
    }

    /// An f32 constant.
    pub fn const_f32(
        &mut self,
        dims: &[usize],
        data: &[f32],
        role: ConstRole,
    ) -> Result<TensorId, WriteError> {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(DType::F32, dims, bytes, None, role)
    }

    /// Appends an op record. `inputs` may contain `None` for an absent optional input;
    /// `params` are the op's parameter words (see `FORMAT.md`).
    pub fn op(
        &mut self,
        code: OpCode,
        version: u8,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        params: &[u32],
    ) -> Result<(), WriteError> {
        if self.ops.len() >= u16::MAX as usize || inputs.len() > 255 || outputs.len() > 255 {
            return Err(WriteError::TooLarge);
        }
        for t in inputs.iter().flatten().chain(outputs) {
            self.def(*t)?;
        }
        self.ops.push(OpDef {
            code: code as u8,
            version,
            inputs: inputs
                .iter()
                .map(|t| t.map_or(NO_TENSOR, |t| t.0))
                .collect(),
            outputs: outputs.iter().map(|t| t.0).collect(),
            params: params.iter().flat_map(|w| w.to_le_bytes()).collect(),
        });
        Ok(())
    }

    /// Adds an entry to the reference-statistics section (tags: see `FORMAT.md`).
    pub fn stats_entry(&mut self, tag: u16, payload: Vec<u8>) {
        self.stats.push((tag, payload));
    }

    fn base(&self, t: u16) -> u16 {
        match self.tensors.get(t as usize).map(|d| &d.kind) {
            Some(Kind::Alias(b)) => b.0,
            _ => t,
        }
    }

    /// Removes the ops whose every output is an arena tensor that nothing reads (no op, directly
    /// or through an alias) and that is not a graph output, repeatedly (an op may be dead only
    /// once its readers are gone), then every tensor nothing refers to any more: the dead ops'
    /// outputs, aliases of them, constants only they read. Ops with a persistent output (state)
    /// or with no output are kept. Returns how many ops were removed.
    ///
    /// Tensors are renumbered: call it after the last op and output are added, before
    /// [`Self::finish`]; a [`TensorId`] obtained earlier does not name the same tensor after.
    pub fn remove_dead_ops(&mut self) -> usize {
        let before = self.ops.len();
        loop {
            let mut read = vec![false; self.tensors.len()];
            let reads = self
                .ops
                .iter()
                .flat_map(|o| o.inputs.iter())
                .chain(&self.outputs);
            for &t in reads {
                if (t as usize) < read.len() {
                    read[t as usize] = true;
                    read[self.base(t) as usize] = true;
                }
            }
            let dead = |o: &OpDef| {
                !o.outputs.is_empty()
                    && o.outputs.iter().all(|&t| {
                        matches!(
                            self.tensors.get(t as usize).map(|d| &d.kind),
                            Some(Kind::Arena)
                        ) && !read[t as usize]
                    })
            };
            let keep: Vec<bool> = self.ops.iter().map(|o| !dead(o)).collect();
            if keep.iter().all(|&k| k) {
                break;
            }
            let mut k = keep.iter();
            self.ops.retain(|_| k.next().copied().unwrap_or(true));
        }
        let removed = before - self.ops.len();
        if removed > 0 {
            self.remove_unreferenced_tensors();
        }
        removed
    }

    /// Drops the tensors no op, graph input or output refers to (an alias's base counts as
    /// referred to when the alias is) and renumbers the rest in order.
    fn remove_unreferenced_tensors(&mut self) {
        let n = self.tensors.len();
        let mut used = vec![false; n];
        let refs = self
            .ops
            .iter()
            .flat_map(|o| o.inputs.iter().chain(&o.outputs))
            .chain(&self.inputs)
            .chain(&self.outputs);
        for &t in refs {
            if (t as usize) < n {
                used[t as usize] = true;
                used[self.base(t) as usize] = true;
            }
        }
        for (i, d) in self.tensors.iter().enumerate() {
            if matches!(d.kind, Kind::Persistent) {
                used[i] = true;
            }
        }
        let mut map = vec![NO_TENSOR; n];
        let mut next = 0u16;
        for (i, m) in map.iter_mut().enumerate() {
            if used[i] {
                *m = next;
                next += 1;
            }
        }
        let re = |t: u16| if (t as usize) < n { map[t as usize] } else { t };
        let mut k = used.iter();
        self.tensors.retain(|_| k.next().copied().unwrap_or(true));
        let mut k = used.iter();
        self.roles.retain(|_| k.next().copied().unwrap_or(true));
        for d in &mut self.tensors {
            if let Kind::Alias(b) = &mut d.kind {
                b.0 = re(b.0);
            }
        }
        for o in &mut self.ops {
            for t in o.inputs.iter_mut().chain(o.outputs.iter_mut()) {
                *t = re(*t);
            }
        }
        for t in self.inputs.iter_mut().chain(self.outputs.iter_mut()) {
            *t = re(*t);
        }
    }

    /// Lifetimes `(first, last)` by the rules of `FORMAT.md` ("Lifetimes").
    fn lifetimes(&self) -> Vec<(usize, usize)> {
        let last_op = self.ops.len().saturating_sub(1);
        (0..self.tensors.len())
            .map(|i| {
                let t = i as u16;
                match self.tensors[i].kind {
                    Kind::Constant(_) | Kind::Alias(_) => (0, 0),
                    Kind::Persistent => (0, last_op),
                    Kind::Arena => {
                        let producer = self.ops.iter().position(|o| o.outputs.contains(&t));
                        let first = producer.unwrap_or(0);
                        let is_out = self.outputs.iter().any(|&o| o == t || self.base(o) == t);
                        let last_read = self.ops.iter().rposition(|o| {
                            o.inputs
                                .iter()
                                .any(|&x| x == t || (x != NO_TENSOR && self.base(x) == t))
                        });
                        let last = if is_out {
                            last_op
                        } else {
                            last_read.unwrap_or(first).max(first)
                        };
                        (first, last)
                    }
                }
            })
            .collect()
    }

    /// The arena tensors and the plan [`Self::finish`] would lay out.
    fn arena_plan(&self, lifetimes: &[(usize, usize)]) -> (Vec<usize>, Plan) {
        let arena_ids: Vec<usize> = (0..self.tensors.len())
            .filter(|&i| matches!(self.tensors[i].kind, Kind::Arena | Kind::Persistent))
            .collect();
        let bufs: Vec<Buffer> = arena_ids
            .iter()
            .map(|&i| Buffer {
                size: self.byte_len(i),
                first: lifetimes[i].0,
                last: lifetimes[i].1,
            })
            .collect();
        let plan = planner::plan(&bufs);
        (arena_ids, plan)
    }

    /// The arena size the graph as written now would need (what [`Self::finish`] plans).
    pub fn planned_arena_bytes(&self) -> usize {
        self.arena_plan(&self.lifetimes()).1.arena_bytes
    }

    /// Plans the arena, lays out the image, and checks it with [`Model::parse`].
    pub fn finish(&self) -> Result<BuiltImage, WriteError> {
        let lifetimes = self.lifetimes();
        let (arena_ids, plan) = self.arena_plan(&lifetimes);
        let mut offsets = vec![0u32; self.tensors.len()];
        for (k, &i) in arena_ids.iter().enumerate() {
            offsets[i] = u32::try_from(plan.offsets[k]).map_err(|_| WriteError::TooLarge)?;
        }
        // Constant section, deduplicated by content, each constant 16-byte aligned.
        let mut consts: Vec<u8> = Vec::new();
        let mut seen: HashMap<&[u8], u32> = HashMap::new();
        let (mut weight_bytes, mut bias_bytes, mut other_bytes) = (0, 0, 0);
        for (i, d) in self.tensors.iter().enumerate() {
            if let Kind::Constant(data) = &d.kind {
                match self.roles[i] {
                    ConstRole::Weight => weight_bytes += data.len(),
                    ConstRole::Bias => bias_bytes += data.len(),
                    ConstRole::Other => other_bytes += data.len(),
                }
                let off = match seen.get(data.as_slice()) {
                    Some(&o) => o,
                    None => {
                        let o = u32::try_from(consts.len()).map_err(|_| WriteError::TooLarge)?;
                        consts.extend_from_slice(data);
                        consts.resize(align_up(consts.len(), 16).ok_or(WriteError::TooLarge)?, 0);
                        seen.insert(data.as_slice(), o);
                        o
                    }
                };
                offsets[i] = off;
            }
            if let Kind::Alias(b) = d.kind {
                offsets[i] = b.0 as u32;
            }
        }
        // Graph section.
        let mut g: Vec<u8> = Vec::new();
        let ops_bytes: Vec<u8> = self.ops.iter().flat_map(encode_op).collect();
        for v in [
            self.tensors.len(),
            self.inputs.len(),
            self.outputs.len(),
            self.ops.len(),
        ] {
            g.extend_from_slice(
                &u16::try_from(v)
                    .map_err(|_| WriteError::TooLarge)?
                    .to_le_bytes(),
            );
        }
        g.extend_from_slice(&(ops_bytes.len() as u32).to_le_bytes());
        g.extend_from_slice(&0u32.to_le_bytes());
        debug_assert_eq!(g.len(), GRAPH_HEADER_LEN);
        for &t in self.inputs.iter().chain(&self.outputs) {
            g.extend_from_slice(&t.to_le_bytes());
        }
        g.resize(align_up(g.len(), 4).ok_or(WriteError::TooLarge)?, 0);
        for (i, d) in self.tensors.iter().enumerate() {
            let start = g.len();
            g.push(d.dtype as u8);
            g.push(d.shape.rank() as u8);
            g.push(match d.kind {
                Kind::Arena => 0,
                Kind::Constant(_) => 1,
                Kind::Persistent => 2,
                Kind::Alias(_) => 3,
            });
            g.push(0);
            for k in 0..MAX_RANK {
                let dim = if k < d.shape.rank() {
                    d.shape.dim(k) as u16
                } else {
                    0
                };
                g.extend_from_slice(&dim.to_le_bytes());
            }
            g.extend_from_slice(&offsets[i].to_le_bytes());
            g.extend_from_slice(&d.scale.to_le_bytes());
            g.extend_from_slice(&d.zero_point.to_le_bytes());
            g.extend_from_slice(&(lifetimes[i].0 as u16).to_le_bytes());
            g.extend_from_slice(&(lifetimes[i].1 as u16).to_le_bytes());
            debug_assert_eq!(g.len() - start, TENSOR_RECORD_LEN);
        }
        g.extend_from_slice(&ops_bytes);
        // Statistics section.
        let mut st: Vec<u8> = Vec::new();
        for (tag, payload) in &self.stats {
            st.extend_from_slice(&tag.to_le_bytes());
            st.extend_from_slice(&0u16.to_le_bytes());
            st.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            st.extend_from_slice(payload);
            st.resize(align_up(st.len(), 4).ok_or(WriteError::TooLarge)?, 0);
        }
        // Layout.
        let graph_off = HEADER_LEN;
        let const_off = align_up(graph_off + g.len(), 16).ok_or(WriteError::TooLarge)?;
        let const_end = const_off + consts.len();
        let (stats_off, end) = if st.is_empty() {
            (0, const_end)
        } else {
            (
                const_end,
                align_up(const_end + st.len(), 16).ok_or(WriteError::TooLarge)?,
            )
        };
        let image_len = u32::try_from(end).map_err(|_| WriteError::TooLarge)?;
        let mut out = vec![0u8; end];
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&FORMAT_MAJOR.to_le_bytes());
        // The oldest minor that has everything the image uses: 1.3 for Softmax and LayerNorm
        // version 2 (int8 around the f32 op, fused), 1.2 for FullyConnected version 2 (pre-packed weights), 1.1 for
        // the transformer ops.
        let minor: u16 = self
            .ops
            .iter()
            .map(|o| match (o.version, o.code) {
                (2.., c) if c == OpCode::Softmax as u8 || c == OpCode::LayerNorm as u8 => 3,
                (2.., _) => 2,
                (_, c) if c >= FIRST_MINOR_1_OP => 1,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        debug_assert!(minor <= FORMAT_MINOR);
        out[6..8].copy_from_slice(&minor.to_le_bytes());
        let fields: [(usize, u32); 11] = [
            (12, image_len),
            (16, 0),
            (20, plan.arena_bytes as u32),
            (24, graph_off as u32),
            (28, g.len() as u32),
            (32, const_off as u32),
            (36, consts.len() as u32),
            (40, stats_off as u32),
            (44, st.len() as u32),
            (48, self.version),
            (52, self.name.len() as u32),
        ];
        for (off, v) in fields {
            out[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        out[56..56 + self.name.len()].copy_from_slice(self.name.as_bytes());
        out[graph_off..graph_off + g.len()].copy_from_slice(&g);
        out[const_off..const_end].copy_from_slice(&consts);
        if !st.is_empty() {
            out[stats_off..stats_off + st.len()].copy_from_slice(&st);
        }
        let crc = image_crc(&out);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        // Self-check with the runtime's own parser.
        let aligned = AlignedBytes::new(&out);
        Model::parse(aligned.as_slice()).map_err(WriteError::Invalid)?;
        Ok(BuiltImage {
            stats: ImageStats {
                image_bytes: out.len(),
                graph_bytes: const_off,
                constant_bytes: consts.len(),
                weight_bytes,
                bias_bytes,
                other_constant_bytes: other_bytes,
                plan,
            },
            bytes: out,
        })
    }

    fn byte_len(&self, i: usize) -> usize {
        let d = &self.tensors[i];
        d.shape.num_elements() as usize * d.dtype.size()
    }
}

fn encode_op(o: &OpDef) -> Vec<u8> {
    let mut b = vec![
        o.code,
        o.version,
        o.inputs.len() as u8,
        o.outputs.len() as u8,
    ];
    b.extend_from_slice(&(o.params.len() as u16).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    for t in o.inputs.iter().chain(&o.outputs) {
        b.extend_from_slice(&t.to_le_bytes());
    }
    b.resize(b.len().div_ceil(4) * 4, 0);
    b.extend_from_slice(&o.params);
    b
}

/// The header CRC of `image` (bytes `[0, image_len)`, with the CRC field read as zero).
pub fn image_crc(image: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(&image[..8]);
    c.update(&[0; 4]);
    c.update(&image[12..]);
    c.finish()
}

/// Returns a copy of `image` whose statistics section holds exactly `entries` (tag, payload),
/// replacing any it had: how the compiler adds reference histograms after it has run the
/// finished image on its reference inputs. The image must parse and must not be signed (a
/// signature covers the statistics; sign afterwards).
pub fn with_stats(image: &[u8], entries: &[(u16, Vec<u8>)]) -> Result<Vec<u8>, WriteError> {
    let aligned = AlignedBytes::new(image);
    let model = Model::parse(aligned.as_slice()).map_err(WriteError::Invalid)?;
    if model.signature().is_some() {
        return Err(WriteError::Signed);
    }
    let word = |off: usize| {
        u32::from_le_bytes([image[off], image[off + 1], image[off + 2], image[off + 3]]) as usize
    };
    // The constant section ends 16-aligned; the statistics section starts there.
    let const_end = word(32) + word(36);
    let mut st: Vec<u8> = Vec::new();
    for (tag, payload) in entries {
        if *tag == 0 {
            return Err(WriteError::BadStatsTag);
        }
        st.extend_from_slice(&tag.to_le_bytes());
        st.extend_from_slice(&0u16.to_le_bytes());
        st.extend_from_slice(
            &u32::try_from(payload.len())
                .map_err(|_| WriteError::TooLarge)?
                .to_le_bytes(),
        );
        st.extend_from_slice(payload);
        st.resize(align_up(st.len(), 4).ok_or(WriteError::TooLarge)?, 0);
    }
    let end = if st.is_empty() {
        const_end
    } else {
        align_up(const_end + st.len(), 16).ok_or(WriteError::TooLarge)?
    };
    let mut out = vec![0u8; end];
    out[..const_end].copy_from_slice(&image[..const_end]);
    out[const_end..const_end + st.len()].copy_from_slice(&st);
    let stats_off = if st.is_empty() { 0 } else { const_end };
    for (off, v) in [(12, end), (40, stats_off), (44, st.len())] {
        let v = u32::try_from(v).map_err(|_| WriteError::TooLarge)?;
        out[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    let crc = image_crc(&out);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    Model::parse(AlignedBytes::new(&out).as_slice()).map_err(WriteError::Invalid)?;
    Ok(out)
}

/// Recomputes and stores the header CRC of an image (for tools and tests that edit images).
pub fn fix_crc(image: &mut [u8]) {
    if image.len() < HEADER_LEN {
        return;
    }
    let len = u32::from_le_bytes([image[12], image[13], image[14], image[15]]) as usize;
    if len < HEADER_LEN || len > image.len() {
        return;
    }
    let crc = image_crc(&image[..len]);
    image[8..12].copy_from_slice(&crc.to_le_bytes());
}

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Block([u8; 16]);

/// Bytes at a 16-byte aligned address, as [`Model::parse`] requires (for images read from files).
#[derive(Clone)]
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}

impl AlignedBytes {
    /// Copies `bytes` into a fresh aligned buffer.
    pub fn new(bytes: &[u8]) -> Self {
        let mut blocks = vec![Block([0; 16]); bytes.len().div_ceil(16)];
        for (b, chunk) in blocks.iter_mut().zip(bytes.chunks(16)) {
            b.0[..chunk.len()].copy_from_slice(chunk);
        }
        AlignedBytes {
            blocks,
            len: bytes.len(),
        }
    }

    /// A zeroed aligned buffer of `len` bytes (for arenas).
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn zeroed(len: usize) -> Self {
        AlignedBytes {
            blocks: vec![Block([0; 16]); len.div_ceil(16)],
            len,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `Block` is `repr(C)` around `[u8; 16]` with no padding, so the vector's
        // memory is `16 * blocks.len()` initialised bytes, and `len <= 16 * blocks.len()`.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; the exclusive borrow of `self` covers the returned slice.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

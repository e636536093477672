//! Operator records of the graph section and the operator code table.

use super::bytes::{align_up, u16_at, u8_at};

/// Operator codes. Codes are never reused; new ops get new codes (a minor format bump).
/// Codes 1–31: issue-2 core ops; 32–95: transformer ops; 96–127: telemetry/drift helpers;
/// 128–255: reserved for vendor extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
#[non_exhaustive]
pub enum OpCode {
    /// y = act(x · Wᵀ + b), per-channel int8 weights.
    FullyConnected = 1,
    /// 2-D convolution, NHWC activations, OHWI weights.
    Conv2d = 2,
    /// Depthwise 2-D convolution, NHWC activations, 1HWO weights.
    DepthwiseConv2d = 3,
    /// 1-D convolution, NLC activations, OKI weights.
    Conv1d = 4,
    /// Elementwise addition.
    Add = 5,
    /// Elementwise multiplication.
    Mul = 6,
    /// max(x, 0) (as a requantizing clamp for int8).
    Relu = 7,
    /// min(max(x, 0), 6).
    Relu6 = 8,
    /// 2-D max pooling.
    MaxPool2d = 9,
    /// 2-D average pooling.
    AvgPool2d = 10,
    /// Mean over H and W (NHWC), keeping N and C.
    GlobalAvgPool = 11,
    /// Reshape by copy (a zero-copy reshape is an alias tensor instead, see `FORMAT.md`).
    Reshape = 12,
    /// Concatenation along an axis.
    Concat = 13,
    /// Softmax along the last axis.
    Softmax = 14,
    /// f32 → int8.
    Quantize = 15,
    /// int8 → f32.
    Dequantize = 16,
    /// Index of the largest value along the last axis.
    ArgMax = 17,
    /// Batched product of two activations (`A·B` or `A·Bᵀ`).
    BatchMatMul = 32,
    /// Axis permutation (rank ≤ 4).
    Transpose = 33,
    /// Row lookup in a constant table by `i32` ids (embedding).
    Gather = 34,
    /// LayerNorm over the last axis.
    LayerNorm = 35,
    /// Causal mask on attention scores.
    CausalMask = 36,
    /// Elementwise GELU / SiLU / Sigmoid / Tanh (int8: a 256-entry table).
    Table = 37,
    /// Writes new K or V rows into a persistent KV cache at position `pos`.
    KvAppend = 38,
    /// Attention of new queries over a KV cache up to position `pos`.
    Attention = 39,
}

impl OpCode {
    /// Decodes a code byte, `None` when this runtime does not know it.
    pub const fn from_code(code: u8) -> Option<OpCode> {
        Some(match code {
            1 => OpCode::FullyConnected,
            2 => OpCode::Conv2d,
            3 => OpCode::DepthwiseConv2d,
            4 => OpCode::Conv1d,
            5 => OpCode::Add,
            6 => OpCode::Mul,
            7 => OpCode::Relu,
            8 => OpCode::Relu6,
            9 => OpCode::MaxPool2d,
            10 => OpCode::AvgPool2d,
            11 => OpCode::GlobalAvgPool,
            12 => OpCode::Reshape,
            13 => OpCode::Concat,
            14 => OpCode::Softmax,
            15 => OpCode::Quantize,
            16 => OpCode::Dequantize,
            17 => OpCode::ArgMax,
            32 => OpCode::BatchMatMul,
            33 => OpCode::Transpose,
            34 => OpCode::Gather,
            35 => OpCode::LayerNorm,
            36 => OpCode::CausalMask,
            37 => OpCode::Table,
            38 => OpCode::KvAppend,
            39 => OpCode::Attention,
            _ => return None,
        })
    }
}

/// Bytes of an op record before its tensor indices.
pub const OP_HEADER_LEN: usize = 8;

/// One operator record, borrowed from the image.
///
/// `repr(C)` with the byte fields last, for the reason given on
/// [`TensorInfo`](super::TensorInfo): moves of `Option<Result<OpRecord, _>>` stay word-aligned.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct OpRecord<'a> {
    io: &'a [u8],
    /// The parameter record (little-endian 32-bit words).
    pub params: &'a [u8],
    /// Operator code byte (see [`OpCode`]).
    pub code: u8,
    /// Version of the op's parameter record.
    pub version: u8,
    n_in: u8,
    n_out: u8,
}

impl<'a> OpRecord<'a> {
    /// Number of input tensors.
    pub fn num_inputs(&self) -> usize {
        self.n_in as usize
    }
    /// Number of output tensors.
    pub fn num_outputs(&self) -> usize {
        self.n_out as usize
    }
    /// Tensor index of input `i` (`u16::MAX` when out of range: never a valid index).
    pub fn input(&self, i: usize) -> u16 {
        if i < self.num_inputs() {
            u16_at(self.io, 2 * i).unwrap_or(u16::MAX)
        } else {
            u16::MAX
        }
    }
    /// Tensor index of output `i` (`u16::MAX` when out of range).
    pub fn output(&self, i: usize) -> u16 {
        if i < self.num_outputs() {
            u16_at(self.io, 2 * (self.num_inputs() + i)).unwrap_or(u16::MAX)
        } else {
            u16::MAX
        }
    }
    /// Input tensor indices.
    pub fn inputs(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.num_inputs()).map(|i| self.input(i))
    }
    /// Output tensor indices.
    pub fn outputs(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.num_outputs()).map(|i| self.output(i))
    }
}

/// Decodes the record at the start of `b`; returns it and its total length. `None` when the
/// record is truncated or its reserved field is not zero.
pub(crate) fn decode(b: &[u8]) -> Option<(OpRecord<'_>, usize)> {
    let code = u8_at(b, 0)?;
    let version = u8_at(b, 1)?;
    let n_in = u8_at(b, 2)?;
    let n_out = u8_at(b, 3)?;
    let params_len = u16_at(b, 4)? as usize;
    if u16_at(b, 6)? != 0 || !params_len.is_multiple_of(4) {
        return None;
    }
    let io_len = 2 * (n_in as usize + n_out as usize);
    let params_start = OP_HEADER_LEN + align_up(io_len, 4)?;
    let end = params_start + params_len;
    let io = b.get(OP_HEADER_LEN..OP_HEADER_LEN + io_len)?;
    let params = b.get(params_start..end)?;
    Some((
        OpRecord {
            code,
            version,
            n_in,
            n_out,
            io,
            params,
        },
        end,
    ))
}

/// The elementwise function of an [`OpCode::Table`] op (its parameter word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u32)]
pub enum TableFn {
    /// `0.5·x·(1 + erf(x/√2))`.
    Gelu = 0,
    /// `x·sigmoid(x)`.
    Silu = 1,
    /// `1/(1 + e⁻ˣ)`.
    Sigmoid = 2,
    /// `tanh(x)`.
    Tanh = 3,
}

impl TableFn {
    /// Decodes the parameter word, `None` for an unknown function.
    pub const fn from_word(w: u32) -> Option<TableFn> {
        Some(match w {
            0 => TableFn::Gelu,
            1 => TableFn::Silu,
            2 => TableFn::Sigmoid,
            3 => TableFn::Tanh,
            _ => return None,
        })
    }
}

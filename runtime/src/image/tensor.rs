//! Tensor records of the graph section: element type, shape, storage and quantization.

use crate::error::TensorProblem;

/// Size in bytes of one tensor record.
pub const TENSOR_RECORD_LEN: usize = 28;
/// Largest rank a tensor may have.
pub const MAX_RANK: usize = 4;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum DType {
    /// Signed 8-bit integer (quantized activations and weights).
    I8 = 0,
    /// Unsigned 8-bit integer (raw bytes, tokens).
    U8 = 1,
    /// Signed 16-bit integer.
    I16 = 2,
    /// Signed 32-bit integer (biases, requantization parameters, indices).
    I32 = 3,
    /// IEEE-754 binary32.
    F32 = 4,
}

impl DType {
    /// Decodes a dtype code.
    pub const fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            0 => DType::I8,
            1 => DType::U8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F32,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::I16 => 2,
            DType::I32 | DType::F32 => 4,
        }
    }

    /// Valid zero-point range for quantized tensors of this type.
    const fn zero_point_range(self) -> (i32, i32) {
        match self {
            DType::I8 => (-128, 127),
            DType::U8 => (0, 255),
            DType::I16 => (-32768, 32767),
            DType::I32 | DType::F32 => (0, 0),
        }
    }
}

/// Where a tensor's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Storage {
    /// In the arena at a planned offset, live between its first and last op.
    Arena,
    /// In the image's constant section (read in place, never copied).
    Constant,
    /// In the arena at a planned offset, live for the whole life of the interpreter (state such
    /// as a KV-cache); kept across `invoke` calls.
    Persistent,
    /// A view of another arena tensor with another shape and the same byte size (a Reshape
    /// that costs nothing). Holds the base tensor's index.
    Alias(u16),
}

/// A tensor's shape (rank ≤ 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    dims: [u16; MAX_RANK],
    rank: u8,
}

impl Shape {
    /// A shape from its dimensions; `None` when rank > 4 or a dimension is 0 or > 65535.
    pub fn new(dims: &[usize]) -> Option<Shape> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut d = [0u16; MAX_RANK];
        for (o, &x) in d.iter_mut().zip(dims) {
            if x == 0 || x > u16::MAX as usize {
                return None;
            }
            *o = x as u16;
        }
        Some(Shape {
            dims: d,
            rank: dims.len() as u8,
        })
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    /// Dimension `i` (1 beyond the rank, so a shape can be read as if right-aligned to rank 4).
    pub fn dim(&self, i: usize) -> usize {
        if i < self.rank() {
            self.dims[i] as usize
        } else {
            1
        }
    }

    /// The dimensions as a slice of `u16`.
    pub fn dims(&self) -> &[u16] {
        &self.dims[..self.rank()]
    }

    /// Last dimension (1 for scalars).
    pub fn last(&self) -> usize {
        if self.rank == 0 {
            1
        } else {
            self.dims[self.rank() - 1] as usize
        }
    }

    /// Number of elements (≤ 2^64 since each dim < 2^16 and rank ≤ 4).
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn num_elements(&self) -> u64 {
        self.dims().iter().map(|&d| d as u64).product()
    }
}

/// A decoded, validated tensor record.
///
/// `repr(C)`, word-sized fields first and the small ones last: the interpreter moves these by
/// value on every op, and with this layout `Option<TensorInfo>` and `Result<TensorInfo, _>`
/// keep the record word-aligned (their tag lives in `dtype`'s unused values), so a move is an
/// aligned word copy. With Rust's default layout the tag took the first halfword and each move
/// on the Cortex-M4 was a call to the misaligned `memcpy` (~150 instructions; ~60% of the
/// interpreter's per-op cost without `std`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(C)]
pub struct TensorInfo {
    /// Byte offset: into the arena (`Arena`, `Persistent`) or the constant section (`Constant`);
    /// for an alias, the base tensor's offset.
    pub offset: u32,
    /// Byte length (elements × element size).
    pub len: u32,
    /// Quantization scale (0.0 when not quantized).
    pub scale: f32,
    /// Quantization zero point (0 when not quantized).
    pub zero_point: i32,
    /// Shape.
    pub shape: Shape,
    /// First op index at which the tensor is live (see `FORMAT.md`, "Lifetimes").
    pub first_op: u16,
    /// Last op index at which the tensor is live.
    pub last_op: u16,
    /// Where the bytes live.
    pub storage: Storage,
    /// Element type.
    pub dtype: DType,
}

impl TensorInfo {
    /// Number of elements.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn num_elements(&self) -> usize {
        self.shape.num_elements() as usize
    }

    /// Whether the tensor lives in the arena (directly, not as an alias).
    pub fn in_arena(&self) -> bool {
        matches!(self.storage, Storage::Arena | Storage::Persistent)
    }
}

/// Decodes one 28-byte record and checks what can be checked without the rest of the graph
/// (aliases and constant bounds are checked by the caller). `rec` must be the record's bytes.
pub(crate) fn decode(rec: &[u8]) -> Result<TensorInfo, TensorProblem> {
    let bad_kind = TensorProblem::BadKind;
    // One length check, then fixed offsets into the array (no per-field bounds checks: parsing
    // decodes each record several times).
    let Ok(rec) = <&[u8; TENSOR_RECORD_LEN]>::try_from(rec) else {
        return Err(if rec.is_empty() {
            TensorProblem::BadDtype
        } else {
            bad_kind
        });
    };
    let u16_at = |o: usize| u16::from_le_bytes([rec[o], rec[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
    let dtype = DType::from_code(rec[0]).ok_or(TensorProblem::BadDtype)?;
    let rank = rec[1] as usize;
    let (kind, flags) = (rec[2], rec[3]);
    if rank > MAX_RANK {
        return Err(TensorProblem::BadRank);
    }
    if flags != 0 {
        return Err(bad_kind);
    }
    let mut dims = [0u16; MAX_RANK];
    for (i, d) in dims.iter_mut().enumerate() {
        *d = u16_at(4 + 2 * i);
        if (i < rank) != (*d != 0) {
            return Err(TensorProblem::BadDim);
        }
    }
    let shape = Shape {
        dims,
        rank: rank as u8,
    };
    let offset = u32_at(12);
    let scale = f32::from_bits(u32_at(16));
    let zero_point = u32_at(20) as i32;
    let first_op = u16_at(24);
    let last_op = u16_at(26);
    // Four u16 dims make up to 65535^4 elements: × 4 bytes overflows u64 (found by fuzzing).
    let bytes = shape.num_elements().saturating_mul(dtype.size() as u64);
    if bytes > u32::MAX as u64 - 15 {
        return Err(TensorProblem::TooLarge);
    }
    let storage = match kind {
        0 => Storage::Arena,
        1 => Storage::Constant,
        2 => Storage::Persistent,
        3 => {
            if offset > u16::MAX as u32 {
                return Err(TensorProblem::BadAlias);
            }
            Storage::Alias(offset as u16)
        }
        _ => return Err(bad_kind),
    };
    if !matches!(storage, Storage::Alias(_)) && offset % 16 != 0 {
        return Err(TensorProblem::Misaligned);
    }
    // Quantization: scale 0 means "not quantized" and then the zero point must be 0; otherwise
    // a finite positive scale and a zero point within the element type's range.
    let (zmin, zmax) = dtype.zero_point_range();
    let quant_ok = if scale == 0.0 && scale.to_bits() == 0 {
        zero_point == 0
    } else {
        scale.is_finite() && scale > 0.0 && zero_point >= zmin && zero_point <= zmax
    };
    if !quant_ok {
        return Err(TensorProblem::BadQuant);
    }
    Ok(TensorInfo {
        dtype,
        shape,
        storage,
        offset,
        len: bytes as u32,
        scale,
        zero_point,
        first_op,
        last_op,
    })
}

/// [`decode`] of a record that [`decode`] has already accepted (every record of a model that
/// passed `Model::validate_tensors`): the same [`TensorInfo`], read without the checks. A record
/// that would not pass them still yields some `TensorInfo` (never a panic, never a read outside
/// `rec`), but callers only pass validated records.
#[inline]
pub(crate) fn decode_validated(rec: &[u8; TENSOR_RECORD_LEN]) -> TensorInfo {
    let u16_at = |o: usize| u16::from_le_bytes([rec[o], rec[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
    let dtype = match rec[0] {
        0 => DType::I8,
        1 => DType::U8,
        2 => DType::I16,
        3 => DType::I32,
        _ => DType::F32,
    };
    let rank = rec[1].min(MAX_RANK as u8);
    let dims = [u16_at(4), u16_at(6), u16_at(8), u16_at(10)];
    let shape = Shape { dims, rank };
    let offset = u32_at(12);
    let storage = match rec[2] {
        0 => Storage::Arena,
        1 => Storage::Constant,
        2 => Storage::Persistent,
        _ => Storage::Alias(offset as u16),
    };
    TensorInfo {
        dtype,
        shape,
        storage,
        offset,
        len: shape.num_elements().saturating_mul(dtype.size() as u64) as u32,
        scale: f32::from_bits(u32_at(16)),
        zero_point: u32_at(20) as i32,
        first_op: u16_at(24),
        last_op: u16_at(26),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28-byte tensor record: dtype, rank, kind 0 (arena), flags 0, dims, offset 0, scale 0,
    /// zero point 0, live range 0..0.
    fn record(dtype: u8, dims: &[u16]) -> [u8; 28] {
        let mut r = [0u8; 28];
        r[0] = dtype;
        r[1] = dims.len() as u8;
        for (i, d) in dims.iter().enumerate() {
            r[4 + 2 * i..6 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        r
    }

    /// Regression (fuzz target `parse_invoke`): the byte size of a 65535^4 f32 tensor overflowed
    /// u64 and panicked in debug builds (and wrapped to a small size in release builds).
    #[test]
    fn largest_dims_are_too_large_not_an_overflow() {
        for dtype in [DType::I8, DType::I16, DType::F32] {
            let r = record(dtype as u8, &[u16::MAX; MAX_RANK]);
            assert_eq!(decode(&r), Err(TensorProblem::TooLarge), "{dtype:?}");
        }
        assert!(decode(&record(DType::F32 as u8, &[16, 16, 4, 4])).is_ok());
    }

    /// [`decode_validated`] agrees with [`decode`] on every record `decode` accepts: random
    /// records nudged towards valid ones (kinds, dtypes, ranks and dims in range).
    #[test]
    fn validated_decode_matches_checked_decode() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut r = [0u8; TENSOR_RECORD_LEN];
            for b in r.iter_mut() {
                *b = next() as u8;
            }
            r[0] %= 6;
            r[1] %= 5;
            r[2] %= 5;
            r[3] = (next() % 8 == 0) as u8;
            let rank = r[1] as usize;
            for i in 0..MAX_RANK {
                let d = if i < rank { 1 + next() % 300 } else { 0 } as u16;
                r[4 + 2 * i..6 + 2 * i].copy_from_slice(&d.to_le_bytes());
            }
            if next() % 2 == 0 {
                let off = (next() % 4096) as u32 & !15;
                r[12..16].copy_from_slice(&off.to_le_bytes());
            }
            match next() % 3 {
                0 => r[16..24].fill(0),
                1 => {
                    r[16..20].copy_from_slice(&0.05f32.to_bits().to_le_bytes());
                    r[20..24].copy_from_slice(&((next() % 256) as i32 - 128).to_le_bytes());
                }
                _ => {}
            }
            if let Ok(t) = decode(&r) {
                accepted += 1;
                assert_eq!(decode_validated(&r), t, "{r:?}");
            }
        }
        assert!(accepted > 1000, "only {accepted} records accepted");
    }
}

//! Flash partitions written by the host (`edgeloop flash --qemu`), read in place.
//!
//! The linker script (`memory-*.x`) reserves two regions after the firmware and names them with
//! the symbols `_edgeloop_model_partition` / `_edgeloop_vectors_partition` (and `..._len`). QEMU's
//! loader device puts a file at each address; a real board gets them from a flasher. Nothing in
//! them is trusted: every field is checked here, and the model image itself goes through
//! `Model::parse` afterwards.
//!
//! Each partition starts with a 16-byte header, then its payload (so the payload, like the
//! model image's constant section, stays 16-byte aligned):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `ELP1` |
//! | 4..8 | kind: `IMG\0` (a model image) or `VEC\0` (test vectors) |
//! | 8..12 | payload length, u32 little-endian |
//! | 12..16 | CRC-32 (IEEE) of the payload, u32 little-endian |
//!
//! The `VEC\0` payload: a 32-byte header — test count, input tensor bytes, output tensor bytes,
//! boot number (u32 LE each), device id (u64 LE), 8 reserved zero bytes — then the input
//! tensors back to back, then the host runtime's output tensors back to back.

use edgeloop_runtime::image::crc::crc32;

/// Bytes of the partition header.
pub const HEADER_LEN: usize = 16;
/// Partition magic.
pub const MAGIC: [u8; 4] = *b"ELP1";
/// Kind of a partition holding a model image.
pub const KIND_IMAGE: [u8; 4] = *b"IMG\0";
/// Kind of a partition holding test vectors.
pub const KIND_VECTORS: [u8; 4] = *b"VEC\0";
/// Bytes of the test-vector header inside a `VEC\0` payload.
pub const VECTORS_HEADER_LEN: usize = 32;

/// Why a partition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum PartitionError {
    /// The magic is wrong: nothing (or something else) was flashed there.
    NotFlashed {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The partition holds another kind of payload.
    WrongKind {
        /// The kind found.
        found: [u8; 4],
    },
    /// The payload length runs past the partition.
    TooLong {
        /// Payload length in the header.
        len: u32,
        /// Bytes the partition has after its header.
        room: u32,
    },
    /// The payload's CRC does not match the header's.
    BadCrc {
        /// CRC in the header.
        want: u32,
        /// CRC of the payload.
        got: u32,
    },
    /// The test-vector header is inconsistent with the payload length.
    BadVectors {
        /// Payload bytes the header implies.
        want: u64,
        /// Payload bytes present.
        got: u32,
    },
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

/// Checks a partition's header and CRC and returns its payload.
pub fn payload(part: &[u8], kind: [u8; 4]) -> Result<&[u8], PartitionError> {
    if part.len() < HEADER_LEN {
        return Err(PartitionError::TooLong { len: 0, room: 0 });
    }
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&part[0..4]);
    if magic != MAGIC {
        return Err(PartitionError::NotFlashed { found: magic });
    }
    let mut found = [0u8; 4];
    found.copy_from_slice(&part[4..8]);
    if found != kind {
        return Err(PartitionError::WrongKind { found });
    }
    let len = u32_at(part, 8);
    let room = part.len() - HEADER_LEN;
    if len as usize > room {
        return Err(PartitionError::TooLong {
            len,
            room: room as u32,
        });
    }
    let data = &part[HEADER_LEN..HEADER_LEN + len as usize];
    let (want, got) = (u32_at(part, 12), crc32(data));
    if want != got {
        return Err(PartitionError::BadCrc { want, got });
    }
    Ok(data)
}

/// Test vectors: inputs and the host's outputs, plus the telemetry identity to use.
#[derive(Debug, Clone, Copy)]
pub struct Vectors<'a> {
    /// Input tensors back to back.
    pub inputs: &'a [u8],
    /// The host runtime's output tensors back to back.
    pub expected: &'a [u8],
    /// Bytes of one input tensor.
    pub input_len: usize,
    /// Bytes of one output tensor.
    pub output_len: usize,
    /// Telemetry device id.
    pub device: u64,
    /// Telemetry boot number (the host picks a new one per run).
    pub boot: u32,
}

/// Parses a `VEC\0` payload.
pub fn vectors(payload: &[u8]) -> Result<Vectors<'_>, PartitionError> {
    if payload.len() < VECTORS_HEADER_LEN {
        return Err(PartitionError::BadVectors {
            want: VECTORS_HEADER_LEN as u64,
            got: payload.len() as u32,
        });
    }
    let (count, input_len, output_len, boot) = (
        u32_at(payload, 0) as u64,
        u32_at(payload, 4) as u64,
        u32_at(payload, 8) as u64,
        u32_at(payload, 12),
    );
    let device = u64::from(u32_at(payload, 16)) | (u64::from(u32_at(payload, 20)) << 32);
    let want = VECTORS_HEADER_LEN as u64 + count * (input_len + output_len);
    if want != payload.len() as u64 {
        return Err(PartitionError::BadVectors {
            want,
            got: payload.len() as u32,
        });
    }
    let body = &payload[VECTORS_HEADER_LEN..];
    let split = (count * input_len) as usize;
    Ok(Vectors {
        inputs: &body[..split],
        expected: &body[split..],
        input_len: input_len as usize,
        output_len: output_len as usize,
        device,
        boot,
    })
}

extern "C" {
    static _edgeloop_model_partition: u8;
    static _edgeloop_model_partition_len: u8;
    static _edgeloop_vectors_partition: u8;
    static _edgeloop_vectors_partition_len: u8;
}

/// A flash region: its address and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    /// Start address.
    pub address: usize,
    /// The region's bytes.
    pub bytes: &'static [u8],
}

fn region(start: *const u8, len: *const u8) -> Region {
    let (address, len) = (start as usize, len as usize);
    // SAFETY: the linker script places these regions inside the board's flash (mapped,
    // readable memory that nothing writes while the firmware runs) and outside every section
    // of the firmware; only their addresses are taken from the symbols.
    let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, len) };
    Region { address, bytes }
}

/// The model-image partition.
pub fn model_region() -> Region {
    region(
        core::ptr::addr_of!(_edgeloop_model_partition),
        core::ptr::addr_of!(_edgeloop_model_partition_len),
    )
}

/// The test-vector partition.
pub fn vectors_region() -> Region {
    region(
        core::ptr::addr_of!(_edgeloop_vectors_partition),
        core::ptr::addr_of!(_edgeloop_vectors_partition_len),
    )
}

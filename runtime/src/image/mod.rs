//! The model image: a versioned, CRC-checked binary laid out for execute-in-place from flash.
//! `FORMAT.md` (next to `Cargo.toml`) is the byte-level specification; this module reads it
//! ([`Model::parse`]) and, with feature `std`, writes it ([`writer::ImageWriter`]) after planning
//! the arena offline ([`planner`]).

pub(crate) mod binding;
pub mod bytes;
pub mod crc;
mod model;
pub mod op;
#[cfg(feature = "verify")]
pub mod signature;
pub mod tensor;
pub mod upgrade;

#[cfg(feature = "std")]
pub mod layers;
#[cfg(feature = "std")]
pub mod planner;
#[cfg(all(test, feature = "std"))]
mod tests;
#[cfg(all(test, feature = "std"))]
mod transformer_tests;
#[cfg(feature = "std")]
pub mod writer;

pub use binding::{
    has, has_f32, has_i8, op_set, op_set_f32, op_set_int8, op_set_of, ALL_OPS, F32_KERNELS,
    INT8_KERNELS, PACKED_WEIGHTS,
};
pub use model::{Model, Ops, SignatureTrailer, StatsEntries, StatsEntry, FLAG_SIGNED};
pub use op::{OpCode, OpRecord, TableFn};
pub use tensor::{DType, Shape, Storage, TensorInfo};

/// The first four bytes of every image.
pub const MAGIC: [u8; 4] = *b"EDLI";
/// Format major version this runtime reads (a change to any existing layout bumps it).
pub const FORMAT_MAJOR: u16 = 1;
/// Newest format minor version this runtime reads (additions: op codes, dtypes, stats tags,
/// op parameter versions).
pub const FORMAT_MINOR: u16 = 3;
/// First op code of format 1.1 (the transformer ops): the writer marks an image 1.1 only when it
/// uses one, so images of core ops stay readable by 1.0 runtimes.
pub const FIRST_MINOR_1_OP: u8 = 32;
/// Header length in bytes.
pub const HEADER_LEN: usize = 80;
/// Graph-section header length in bytes.
pub const GRAPH_HEADER_LEN: usize = 16;
/// Longest model name, in bytes.
pub const MAX_NAME_LEN: usize = 24;
/// Length of the signature trailer (when header flag bit 0 is set).
pub const SIGNATURE_TRAILER_LEN: usize = 80;
/// Tensor index meaning "no tensor" in an op's input list (an absent optional input, e.g. bias).
pub const NO_TENSOR: u16 = u16::MAX;

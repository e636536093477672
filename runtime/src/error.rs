//! The runtime's one error type. Variants are named `<Subject><Problem>` and carry only small numbers.

use core::fmt;

/// Everything that can go wrong while parsing a model image or running it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// A kernel was given tensors whose lengths do not match its parameters.
    KernelShapeMismatch {
        /// Index of the operator in the graph (or 0 when run outside a graph).
        op: u32,
    },
    /// A quantization parameter is out of its valid range (e.g. a shift outside [-31, 30]).
    QuantParamInvalid {
        /// Index of the operator in the graph (or 0 when run outside a graph).
        op: u32,
    },
    /// A kernel parameter is out of its valid range (e.g. a zero stride, a window larger than
    /// its padded input, an accumulation deeper than the kernels allow).
    KernelParamInvalid {
        /// Index of the operator in the graph (or 0 when run outside a graph).
        op: u32,
    },
    /// An index read from a tensor at run time (e.g. a token id given to Gather) is out of range.
    KernelIndexOutOfRange {
        /// Index of the operator in the graph (or 0 when run outside a graph).
        op: u32,
        /// The offending value.
        value: i32,
    },
    /// A KV-cache append or attention step would go past the cache's capacity (or the position
    /// given is negative): reset the cache or use a larger one.
    KvCacheFull {
        /// Index of the operator in the graph (or 0 when run outside a graph).
        op: u32,
        /// Positions the cache holds.
        capacity: u32,
        /// Position that was asked for: the first position after the write (saturated at
        /// `i32::MAX`). An `i32`, not an `i64`, so that the whole error stays 16 bytes with
        /// 4-byte alignment on 32-bit targets: every `Result` the parser and binders move is
        /// smaller (530 bytes less flash in `runtime/size-probe`).
        position: i32,
    },
    /// The image is shorter than its header or than a length it states.
    ImageTruncated {
        /// Bytes the image needs.
        needed: u32,
        /// Bytes given.
        got: u32,
    },
    /// The image bytes do not start at a 16-byte aligned address (constants are read in place).
    ImageMisaligned,
    /// The image does not start with the magic bytes `EDLI`.
    ImageBadMagic,
    /// The image's format major version is not the one this runtime reads, or its minor version is newer.
    ImageUnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The CRC32 stored in the header does not match the image bytes.
    ImageBadCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the image.
        computed: u32,
    },
    /// A header field has an invalid value.
    ImageBadHeader {
        /// Byte offset of the field in the header.
        offset: u32,
    },
    /// A section's offset or length is misaligned, out of bounds, or out of order.
    ImageBadSection {
        /// Which section.
        section: Section,
    },
    /// The graph section's structure is inconsistent (counts, record lengths).
    ImageBadGraph {
        /// Byte offset inside the graph section where the problem was found.
        offset: u32,
    },
    /// A tensor record is invalid.
    ImageBadTensor {
        /// Tensor index.
        tensor: u32,
        /// What is wrong with it.
        problem: TensorProblem,
    },
    /// An operator record is invalid.
    ImageBadOp {
        /// Operator index.
        op: u32,
        /// What is wrong with it.
        problem: OpProblem,
    },
    /// The image uses an operator code (or a version of its parameter record) this runtime does not have.
    UnsupportedOp {
        /// Operator index.
        index: u32,
        /// Operator code.
        code: u8,
    },
    /// A planned tensor does not fit in the arena size the header states.
    ImagePlanOutOfArena {
        /// Tensor index.
        tensor: u32,
    },
    /// Two tensors that are live at the same time share arena bytes.
    ImagePlanOverlap {
        /// First tensor index.
        a: u32,
        /// Second tensor index.
        b: u32,
    },
    /// The reference-statistics section is malformed.
    ImageBadStats {
        /// Byte offset inside the statistics section.
        offset: u32,
    },
    /// The signature trailer is malformed (bad magic, unknown algorithm, wrong length).
    ImageBadSignatureTrailer,
    /// Signature verification was asked for, but the image carries no signature trailer.
    ImageNotSigned,
    /// The signature trailer's key id names another key than the one given for verification.
    SignatureKeyMismatch,
    /// The public key given for verification is not a valid Ed25519 key (not a curve point, or
    /// of small order).
    SignatureBadPublicKey,
    /// The Ed25519 signature does not verify: the image or its trailer was altered after signing.
    SignatureInvalid,
    /// Downgrade protection: the offered image's model version is lower than the installed
    /// one (`image::upgrade::check_upgrade`).
    ImageDowngrade {
        /// Model version installed now.
        installed: u32,
        /// Model version of the refused image.
        offered: u32,
    },
    /// The caller's arena is smaller than the image requires.
    ArenaTooSmall {
        /// Bytes required (header field `arena_bytes`).
        needed: u32,
        /// Bytes given.
        given: u32,
    },
    /// The caller's arena does not start at a 16-byte aligned address.
    ArenaMisaligned,
    /// `Interpreter::new_prepared` was given fewer op slots than the model has ops.
    PreparedSlotsTooFew {
        /// Ops of the model.
        needed: u32,
        /// Slots given.
        given: u32,
    },
    /// An input or output index passed to the interpreter is out of range.
    TensorIndexOutOfRange {
        /// The index asked for.
        index: u32,
    },
    /// A typed view was asked for with the wrong element type.
    TensorDtypeMismatch {
        /// Tensor index in the graph.
        tensor: u32,
    },
    /// The audio front end was given a buffer of the wrong length (too few samples for one
    /// frame, or a feature buffer that does not hold exactly frames × mel bands values).
    AudioBufferLength {
        /// Length required (samples for one frame, or feature values).
        needed: u32,
        /// Length given.
        given: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KernelShapeMismatch { op } => {
                write!(
                    f,
                    "operator {op}: tensor lengths do not match its parameters"
                )
            }
            Error::QuantParamInvalid { op } => {
                write!(f, "operator {op}: quantization parameter out of range")
            }
            Error::KernelParamInvalid { op } => {
                write!(f, "operator {op}: kernel parameter out of range")
            }
            Error::KernelIndexOutOfRange { op, value } => {
                write!(f, "operator {op}: index {value} out of range")
            }
            Error::KvCacheFull {
                op,
                capacity,
                position,
            } => write!(
                f,
                "operator {op}: position {position} outside the KV cache (capacity {capacity})"
            ),
            Error::ImageTruncated { needed, got } => {
                write!(f, "image truncated: needs {needed} bytes, got {got}")
            }
            Error::ImageMisaligned => write!(f, "image bytes are not 16-byte aligned"),
            Error::ImageBadMagic => write!(f, "not a model image (bad magic)"),
            Error::ImageUnsupportedVersion { major, minor } => {
                write!(f, "unsupported image format version {major}.{minor}")
            }
            Error::ImageBadCrc { stored, computed } => write!(
                f,
                "image CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}"
            ),
            Error::ImageBadHeader { offset } => {
                write!(f, "invalid image header field at byte {offset}")
            }
            Error::ImageBadSection { section } => {
                write!(
                    f,
                    "image {section:?} section is out of bounds, misaligned or out of order"
                )
            }
            Error::ImageBadGraph { offset } => {
                write!(f, "malformed graph section at byte {offset}")
            }
            Error::ImageBadTensor { tensor, problem } => {
                write!(f, "tensor {tensor}: {problem:?}")
            }
            Error::ImageBadOp { op, problem } => write!(f, "operator {op}: {problem:?}"),
            Error::UnsupportedOp { index, code } => {
                write!(
                    f,
                    "operator {index}: unsupported op code {code} or parameter version"
                )
            }
            Error::ImagePlanOutOfArena { tensor } => {
                write!(
                    f,
                    "tensor {tensor} lies outside the arena the image declares"
                )
            }
            Error::ImagePlanOverlap { a, b } => write!(
                f,
                "tensors {a} and {b} are live at the same time but share arena bytes"
            ),
            Error::ImageBadStats { offset } => {
                write!(f, "malformed statistics section at byte {offset}")
            }
            Error::ImageBadSignatureTrailer => write!(f, "malformed signature trailer"),
            Error::ImageNotSigned => {
                write!(f, "the image is not signed, but a signature is required")
            }
            Error::SignatureKeyMismatch => {
                write!(f, "the image is signed with another key than the one given")
            }
            Error::SignatureBadPublicKey => write!(f, "the public key is not a valid Ed25519 key"),
            Error::SignatureInvalid => write!(
                f,
                "the image signature does not verify (image altered after signing)"
            ),
            Error::ImageDowngrade { installed, offered } => write!(
                f,
                "downgrade refused: the image has model version {offered}, lower than the installed version {installed}"
            ),
            Error::ArenaTooSmall { needed, given } => {
                write!(
                    f,
                    "arena too small: the model needs {needed} bytes, got {given}"
                )
            }
            Error::ArenaMisaligned => write!(f, "arena is not 16-byte aligned"),
            Error::PreparedSlotsTooFew { needed, given } => write!(
                f,
                "too few prepared-op slots: the model has {needed} ops, got {given} slots"
            ),
            Error::TensorIndexOutOfRange { index } => {
                write!(f, "input/output index {index} out of range")
            }
            Error::TensorDtypeMismatch { tensor } => {
                write!(
                    f,
                    "tensor {tensor} has another element type than the view asked for"
                )
            }
            Error::AudioBufferLength { needed, given } => {
                write!(
                    f,
                    "audio front end: buffer of {given} values where {needed} are needed"
                )
            }
        }
    }
}

impl Error {
    /// Sets the operator index of a kernel error (`check_*` functions report `op: 0`).
    pub fn with_op(self, index: u32) -> Error {
        match self {
            Error::KernelShapeMismatch { .. } => Error::KernelShapeMismatch { op: index },
            Error::QuantParamInvalid { .. } => Error::QuantParamInvalid { op: index },
            Error::KernelParamInvalid { .. } => Error::KernelParamInvalid { op: index },
            Error::KernelIndexOutOfRange { value, .. } => {
                Error::KernelIndexOutOfRange { op: index, value }
            }
            Error::KvCacheFull {
                capacity, position, ..
            } => Error::KvCacheFull {
                op: index,
                capacity,
                position,
            },
            other => other,
        }
    }
}

impl core::error::Error for Error {}

/// A section of the model image (see `FORMAT.md`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Section {
    /// The graph section (tensors, inputs/outputs, operators).
    Graph,
    /// The constant section (weights, biases, requantization parameters, tables).
    Constants,
    /// The optional reference-statistics section.
    Stats,
    /// The optional signature trailer.
    Signature,
}

/// What is wrong with a tensor record.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TensorProblem {
    /// Unknown element type code.
    BadDtype,
    /// Rank above 4.
    BadRank,
    /// A used dimension is zero, or an unused one is not.
    BadDim,
    /// Byte size does not fit in 32 bits.
    TooLarge,
    /// Unknown storage kind, or reserved bits set.
    BadKind,
    /// Data lies outside the constant section or the arena.
    OutOfBounds,
    /// Offset is not 16-byte aligned.
    Misaligned,
    /// Scale not finite/positive, or zero point out of the element type's range.
    BadQuant,
    /// An alias names a missing tensor, another alias, or has a different byte size.
    BadAlias,
    /// The stored first/last op does not match the graph, the tensor is never written, or
    /// its storage kind is not allowed where it is used (e.g. a constant as a graph input).
    BadLifetime,
}

/// What is wrong with an operator record.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpProblem {
    /// Wrong number of inputs or outputs for the op.
    BadArity,
    /// A tensor index is out of range.
    BadTensorIndex,
    /// A tensor has an element type the op does not accept.
    BadDtype,
    /// Tensor shapes do not agree with each other or with the parameters.
    BadShape,
    /// The parameter record has the wrong length or an invalid value.
    BadParams,
    /// The op reads an arena tensor that no earlier op wrote and that is not a graph input.
    ReadsUnwritten,
    /// The op writes a constant, a graph input, or a tensor another op already wrote.
    BadWrite,
}

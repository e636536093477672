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
        }
    }
}

impl core::error::Error for Error {}

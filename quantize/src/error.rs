//! Errors of the quantizer. Every variant names what is wrong and where.

use std::path::PathBuf;

/// One node the quantizer cannot handle, as listed in [`Error::Unsupported`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedNode {
    /// The node's name (or `#<index>` when the model leaves it empty).
    pub name: String,
    /// ONNX op type, prefixed by its domain when not the default one.
    pub op_type: String,
    /// Opset version in force for the node's domain (0 when the model does not import it).
    pub opset: i64,
    /// Why the node is refused.
    pub reason: String,
}

impl std::fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node '{}' ({} at opset {}): {}",
            self.name, self.op_type, self.opset, self.reason
        )
    }
}

fn list(nodes: &[UnsupportedNode]) -> String {
    nodes
        .iter()
        .map(|n| format!("  - {n}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Errors of `edgeloop-quantize`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a usable ONNX model (bad protobuf, missing graph, bad tensor data...).
    #[error("invalid ONNX model: {0}")]
    Model(String),
    /// Nodes the quantizer does not support, all listed at once.
    #[error("{} unsupported node(s):\n{}", .0.len(), list(.0))]
    Unsupported(Vec<UnsupportedNode>),
    /// A `.npy` / `.npz` file is malformed or does not fit the model.
    #[error("{path}: {msg}")]
    Data {
        /// The file (and, for `.npz`, the member) at fault.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// Calibration could not run or produced no statistics.
    #[error("calibration: {0}")]
    Calibration(String),
    /// A configuration value is invalid (unknown node to exclude, bad percentile, bad shape...).
    #[error("configuration: {0}")]
    Config(String),
    /// tract failed to load or run a model.
    #[error("tract: {0}")]
    Tract(String),
    /// ONNX Runtime failed to load or run a model.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    /// The compiler could not lower a model into a model image (shapes, quantization parameters
    /// or values the runtime cannot represent); the message names the node.
    #[error("compile: {0}")]
    Compile(String),
    /// A model image was refused by the runtime (malformed, or its signature does not verify).
    #[error("model image: {0}")]
    Image(edgeloop_runtime::Error),
    /// A model image file was refused by the runtime.
    #[error("model image {}: {source}", path.display())]
    ImageFile {
        /// The image file.
        path: PathBuf,
        /// Why the runtime refused it.
        source: edgeloop_runtime::Error,
    },
    /// A signing key (or key file) is malformed or unusable; the message names the file.
    #[error("key: {0}")]
    Key(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A data-file error.
    pub fn data(path: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

//! Errors of the bench.

/// Anything that stops a model or a peer from being measured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Quantizing or compiling the model failed.
    #[error("quantize/compile: {0}")]
    Quantize(#[from] edgeloop_quantize::Error),
    /// The runtime refused the image or failed to run it.
    #[error("edgeloop runtime: {0}")]
    Runtime(String),
    /// ONNX Runtime refused or failed.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    /// tract refused or failed.
    #[error("tract: {0}")]
    Tract(String),
    /// Outputs of two backends disagree beyond tolerance, or a shape does not match.
    #[error("check: {0}")]
    Check(String),
    /// Reading or writing a file, or running a child process.
    #[error("{0}")]
    Io(String),
}

/// Result of the bench's functions.
pub type Result<T> = std::result::Result<T, Error>;

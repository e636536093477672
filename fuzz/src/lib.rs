//! Fuzzed properties of edgeloop's untrusted-input parsers, one module per target. Each function
//! takes arbitrary bytes and must return without panicking, reading out of bounds, hanging or
//! allocating without bound; some also assert a round-trip property (a failed assertion is a
//! finding, like a panic in the code under test).
//!
//! | target | module | code under test |
//! |---|---|---|
//! | `parse_invoke` | [`image`] | `Model::parse`, signature check, `Interpreter::new` + `invoke` |
//! | `frame_decode` | [`frame`] | telemetry `decode_frame` (COBS, CRC-32, postcard) |
//! | `ingest_stream` | `ingest` | the monitor's `Ingestor` (delimiter resync, dedup) |
//! | `onnx_compile` | `onnx` | `OnnxModel::from_bytes`, `compile` (ONNX → image) |
//! | `dataset_read` | `dataset` | the trainer's JSONL/CSV/text `RecordReader` and text filters |
//! | `serve_text` | `text` | tokenizing a request's `text` field (`Tokenizer::encode`) |
//! | `wav_parse` | `wav` | the trainer's WAV reader (`audio::wav::parse`), re-encoding round trip |
//! | `checkpoint_load` | `checkpoint` | checkpoint `verify` and `load` (manifest, safetensors, JSON), model configs (`validate`, `Gpt::new`, `Bert::new`), resume, `load_hf_bert` |

pub mod frame;
pub mod image;

#[cfg(feature = "dataset")]
pub mod checkpoint;
#[cfg(feature = "dataset")]
pub mod dataset;
#[cfg(feature = "ingest")]
pub mod ingest;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "dataset")]
pub mod text;
#[cfg(feature = "dataset")]
pub mod wav;

pub use image::{fuzz_one, parse_and_invoke, MAX_ARENA};

//! Field telemetry recorded on the device: record types, COBS + CRC framing, a fixed-capacity
//! recorder ring, a power-loss-safe flash log, and integer PSI drift monitoring.
//!
//! Everything here is `no_std` and allocation-free except [`decode`] (feature `std`), which the
//! host uses to read frames back. The wire format is specified in `runtime/TELEMETRY.md`.

#[cfg(any(test, feature = "std"))]
pub mod decode;
pub mod drift;
pub mod error;
pub mod flash;
pub mod frame;
pub mod log;
pub mod record;
pub mod recorder;
pub mod reference;

#[cfg(any(test, feature = "std"))]
pub use decode::decode_frame;
pub use drift::{psi_q16, DriftMonitor, WindowResult};
pub use error::TelemetryError;
pub use flash::{EraseOrder, NorFlash, SimFlash};
pub use frame::{encode_frame, MAX_FRAME_LEN};
pub use log::{FlashLog, LogCursor};
pub use record::*;
pub use recorder::{Recorder, RecorderStats};
pub use reference::ReferenceHistogram;

//! The telemetry error type, separate from the interpreter's [`crate::Error`] so that
//! recording and flash-log failures never mix with model-execution failures.

use core::fmt;

/// Everything that can go wrong while encoding, buffering, decoding or persisting telemetry.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TelemetryError {
    /// postcard could not encode the record into the frame buffer (it is larger than
    /// [`crate::telemetry::MAX_FRAME_LEN`]).
    EncodeFailed,
    /// An encoded frame is larger than the recorder's whole ring.
    FrameTooLarge {
        /// Encoded frame length, delimiter included.
        len: u32,
        /// Capacity of the ring in bytes.
        capacity: u32,
    },
    /// The caller's output buffer cannot hold the next whole frame.
    OutputTooSmall {
        /// Bytes the next frame needs.
        needed: u32,
        /// Bytes the caller offered.
        given: u32,
    },
    /// A frame is not valid COBS (a code byte points past the end of the frame).
    FrameBadCobs,
    /// A decoded frame is shorter than the version byte plus the CRC.
    FrameTooShort {
        /// Decoded length in bytes.
        len: u32,
    },
    /// The CRC-32 at the end of a frame does not match its contents.
    FrameBadCrc,
    /// The frame was written by a format version this decoder does not know.
    FrameUnsupportedVersion {
        /// The version byte found in the frame.
        found: u8,
    },
    /// The CRC matched but the payload is not a valid record of this format version.
    FrameBadRecord,
    /// A sampled-input list in a record is longer than [`crate::telemetry::SAMPLE_MAX`].
    SampleTooLong {
        /// Number of values offered.
        len: u32,
    },
    /// A flash access falls outside the device.
    FlashOutOfBounds {
        /// Byte offset of the access.
        offset: u32,
        /// Length of the access.
        len: u32,
    },
    /// A flash program is not aligned to the device's program word.
    FlashMisaligned {
        /// Byte offset of the access.
        offset: u32,
    },
    /// A flash program targets bytes that are not erased.
    FlashNotErased {
        /// Byte offset of the first word that is not erased.
        offset: u32,
    },
    /// The flash device lost power during the operation (simulated, or reported by a driver).
    FlashPowerLoss,
    /// A flash driver reported a device-specific failure.
    FlashDevice {
        /// Driver-defined code.
        code: u32,
    },
    /// The flash geometry cannot hold the log (too few sectors, odd word size, sectors too small).
    LogBadGeometry,
    /// A record is larger than one sector can hold.
    LogRecordTooLarge {
        /// Payload length in bytes.
        len: u32,
        /// Largest payload a sector can hold.
        max: u32,
    },
    /// An earlier flash failure left the log in an unknown state: mount it again.
    LogNeedsRemount,
    /// A drift reference histogram is empty, all zeros, or its length does not match the monitor.
    DriftBadReference {
        /// Bins in the reference.
        bins: u32,
        /// Bins the monitor expects.
        expected: u32,
    },
    /// A drift observation names a bin outside the histogram.
    DriftBinOutOfRange {
        /// The bin given.
        bin: u32,
        /// Number of bins.
        bins: u32,
    },
    /// A drift window of zero events was requested.
    DriftZeroWindow,
    /// A reference-statistics entry of a model image is malformed (see `FORMAT.md`, statistics
    /// section): wrong length, no bins, or an empty value range.
    DriftBadReferencePayload {
        /// The entry's tag.
        tag: u16,
    },
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TelemetryError::*;
        match *self {
            EncodeFailed => write!(f, "telemetry record does not fit in a frame"),
            FrameTooLarge { len, capacity } => {
                write!(
                    f,
                    "telemetry frame of {len} bytes exceeds the recorder's {capacity}-byte ring"
                )
            }
            OutputTooSmall { needed, given } => {
                write!(
                    f,
                    "next telemetry frame needs {needed} bytes, buffer has {given}"
                )
            }
            FrameBadCobs => write!(f, "telemetry frame is not valid COBS"),
            FrameTooShort { len } => write!(f, "telemetry frame of {len} bytes is too short"),
            FrameBadCrc => write!(f, "telemetry frame CRC mismatch"),
            FrameUnsupportedVersion { found } => {
                write!(f, "telemetry frame format version {found} is not supported")
            }
            FrameBadRecord => write!(f, "telemetry frame payload is not a valid record"),
            SampleTooLong { len } => write!(f, "sampled input of {len} values is too long"),
            FlashOutOfBounds { offset, len } => {
                write!(
                    f,
                    "flash access of {len} bytes at {offset:#x} is out of bounds"
                )
            }
            FlashMisaligned { offset } => write!(f, "flash program at {offset:#x} is misaligned"),
            FlashNotErased { offset } => {
                write!(f, "flash program at {offset:#x} hits non-erased bytes")
            }
            FlashPowerLoss => write!(f, "flash lost power during the operation"),
            FlashDevice { code } => write!(f, "flash driver error {code}"),
            LogBadGeometry => write!(f, "flash geometry cannot hold the telemetry log"),
            LogRecordTooLarge { len, max } => {
                write!(
                    f,
                    "log record of {len} bytes exceeds the {max}-byte maximum"
                )
            }
            LogNeedsRemount => write!(
                f,
                "telemetry log must be mounted again after a flash failure"
            ),
            DriftBadReference { bins, expected } => {
                write!(
                    f,
                    "drift reference with {bins} bins is unusable (expected {expected}, non-zero)"
                )
            }
            DriftBinOutOfRange { bin, bins } => {
                write!(f, "drift bin {bin} is outside the {bins}-bin histogram")
            }
            DriftZeroWindow => write!(f, "drift window must hold at least one event"),
            DriftBadReferencePayload { tag } => write!(
                f,
                "the image's reference-statistics entry (tag {tag}) is malformed"
            ),
        }
    }
}

impl core::error::Error for TelemetryError {}

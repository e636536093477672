//! Frame encoding: `COBS(postcard(Frame) ‖ CRC-32/ISO-HDLC little-endian) ‖ 0x00`.
//!
//! The first byte inside the COBS body is [`FORMAT_VERSION`](super::FORMAT_VERSION) (postcard writes
//! a `u8` as one raw byte), so a decoder can reject a newer format before reading anything else.

use postcard::ser_flavors::crc::CrcModifier;
use postcard::ser_flavors::{Cobs, Slice};

use super::{Frame, TelemetryError};

/// Largest encoded frame, delimiter included. Every record this crate can build fits
/// (checked by `frame::tests::worst_case_frame_fits`).
pub const MAX_FRAME_LEN: usize = 256;

/// CRC-32/ISO-HDLC (the zlib/Ethernet CRC-32), table-driven.
pub(crate) static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Encodes `frame` into `out` and returns the encoded length, trailing `0x00` delimiter included.
///
/// The encoded bytes contain no `0x00` except the final delimiter.
pub fn encode_frame(frame: &Frame, out: &mut [u8]) -> Result<usize, TelemetryError> {
    let cobs = Cobs::try_new(Slice::new(out)).map_err(|_| TelemetryError::EncodeFailed)?;
    let flavor = CrcModifier::new(cobs, CRC32.digest());
    let encoded = postcard::serialize_with_flavor::<Frame, _, &mut [u8]>(frame, flavor)
        .map_err(|_| TelemetryError::EncodeFailed)?;
    Ok(encoded.len())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::telemetry::*;

    pub(crate) fn worst_case_frames() -> [Frame; 4] {
        let header = Header {
            version: FORMAT_VERSION,
            device: u64::MAX,
            boot: u32::MAX,
            seq: u32::MAX,
            ticks: u64::MAX,
            model: ModelRef {
                id: u32::MAX,
                version: u32::MAX,
            },
        };
        [
            Frame {
                header,
                record: Record::Inference(InferenceSummary {
                    class: u16::MAX,
                    confidence_q16: u16::MAX,
                    latency_ticks: u32::MAX,
                    input: InputSummary {
                        len: u32::MAX,
                        min: i32::MIN,
                        max: i32::MIN,
                        mean_q8: i32::MIN,
                        std_q8: u32::MAX,
                    },
                }),
            },
            Frame {
                header,
                record: Record::Feedback(Feedback {
                    inference_seq: u32::MAX,
                    correction: Some(u16::MAX),
                    thumbs: Some(Thumbs::Down),
                    sample: Sample::from_i32(&[i32::MIN; SAMPLE_MAX]).unwrap(),
                }),
            },
            Frame {
                header,
                record: Record::DriftAlarm(DriftAlarm {
                    source: DriftSource::PredictedClass,
                    psi_q16: u32::MAX,
                    threshold_q16: u32::MAX,
                    window_events: u32::MAX,
                    window_index: u32::MAX,
                }),
            },
            Frame {
                header,
                record: Record::Heartbeat(Heartbeat {
                    uptime_ticks: u64::MAX,
                    inferences: u32::MAX,
                    feedback: u32::MAX,
                    alarms: u32::MAX,
                    dropped: u32::MAX,
                }),
            },
        ]
    }

    #[test]
    fn worst_case_frame_fits() {
        for frame in worst_case_frames() {
            let mut buf = [0u8; MAX_FRAME_LEN];
            let n = encode_frame(&frame, &mut buf).unwrap();
            assert!(n <= MAX_FRAME_LEN);
            assert_eq!(buf[n - 1], 0);
            assert!(!buf[..n - 1].contains(&0), "only the delimiter may be zero");
        }
    }

    #[test]
    fn encode_into_short_buffer_is_an_error() {
        let frame = &worst_case_frames()[1];
        let mut buf = [0u8; 40];
        assert_eq!(
            encode_frame(frame, &mut buf),
            Err(TelemetryError::EncodeFailed)
        );
        assert_eq!(
            encode_frame(frame, &mut []),
            Err(TelemetryError::EncodeFailed)
        );
    }
}

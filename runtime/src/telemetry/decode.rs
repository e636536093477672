//! Host-side frame decoding (feature `std`): COBS, then CRC, then the version byte, then postcard.

use super::frame::CRC32;
use super::{Frame, TelemetryError, FORMAT_VERSION};

/// Decodes one frame. `encoded` may or may not end with the `0x00` delimiter, and must contain
/// no other `0x00`.
///
/// Checks, in order: COBS validity, length, CRC-32, version byte, postcard payload (with no
/// trailing bytes). Each failure has its own [`TelemetryError`] variant.
pub fn decode_frame(encoded: &[u8]) -> Result<Frame, TelemetryError> {
    let body = encoded.strip_suffix(&[0]).unwrap_or(encoded);
    if body.is_empty() || body.contains(&0) {
        return Err(TelemetryError::FrameBadCobs);
    }
    let mut raw = vec![0u8; body.len()];
    let len = cobs::decode(body, &mut raw).map_err(|_| TelemetryError::FrameBadCobs)?;
    let raw = &raw[..len];
    if raw.len() < 1 + 4 {
        return Err(TelemetryError::FrameTooShort {
            len: u32::try_from(raw.len()).unwrap_or(u32::MAX),
        });
    }
    let (payload, crc_bytes) = raw.split_at(raw.len() - 4);
    let expected = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    if CRC32.checksum(payload) != expected {
        return Err(TelemetryError::FrameBadCrc);
    }
    if payload[0] != FORMAT_VERSION {
        return Err(TelemetryError::FrameUnsupportedVersion { found: payload[0] });
    }
    match postcard::take_from_bytes::<Frame>(payload) {
        Ok((frame, [])) => Ok(frame),
        _ => Err(TelemetryError::FrameBadRecord),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::frame::encode_frame;
    use crate::telemetry::*;

    fn sample_frame() -> Frame {
        Frame {
            header: Header {
                version: FORMAT_VERSION,
                device: 0xD1,
                boot: 2,
                seq: 7,
                ticks: 1000,
                model: ModelRef {
                    id: 0xAB,
                    version: 3,
                },
            },
            record: Record::Feedback(Feedback {
                inference_seq: 6,
                correction: Some(4),
                thumbs: Some(Thumbs::Down),
                sample: Sample::from_i8(&[-1, 0, 5]).unwrap(),
            }),
        }
    }

    fn encode(frame: &Frame) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = encode_frame(frame, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// Re-frames `raw` (payload without CRC) with a correct CRC, so tests can reach the later checks.
    fn frame_raw(raw: &[u8]) -> Vec<u8> {
        let mut with_crc = raw.to_vec();
        with_crc.extend_from_slice(&CRC32.checksum(raw).to_le_bytes());
        let mut out = vec![0u8; with_crc.len() + with_crc.len() / 254 + 2];
        let n = cobs::encode(&with_crc, &mut out);
        out.truncate(n);
        out.push(0);
        out
    }

    #[test]
    fn round_trips_every_worst_case_record() {
        for frame in crate::telemetry::frame::tests::worst_case_frames() {
            assert_eq!(decode_frame(&encode(&frame)).unwrap(), frame);
        }
        let frame = sample_frame();
        let bytes = encode(&frame);
        assert_eq!(decode_frame(&bytes).unwrap(), frame);
        assert_eq!(decode_frame(&bytes[..bytes.len() - 1]).unwrap(), frame);
    }

    /// Pins the exact bytes of one frame; `TELEMETRY.md` walks through the same example.
    #[test]
    fn golden_feedback_frame() {
        let bytes = encode(&sample_frame());
        let raw: Vec<u8> = {
            let mut r = vec![0u8; bytes.len()];
            let n = cobs::decode(&bytes[..bytes.len() - 1], &mut r).unwrap();
            r.truncate(n);
            r
        };
        // version, device=0xD1 (varint d1 01), boot 2, seq 7, ticks 1000 (e8 07),
        // model id 0xAB (ab 01), version 3, Record::Feedback = 1, inference_seq 6,
        // Some(4), Some(Down = 1), sample len 3, zigzag(-1)=1, 0, zigzag(5)=10.
        let payload = [
            0x01, 0xd1, 0x01, 0x02, 0x07, 0xe8, 0x07, 0xab, 0x01, 0x03, 0x01, 0x06, 0x01, 0x04,
            0x01, 0x01, 0x03, 0x01, 0x00, 0x0a,
        ];
        assert_eq!(&raw[..raw.len() - 4], &payload);
        assert_eq!(
            &raw[raw.len() - 4..],
            &CRC32.checksum(&payload).to_le_bytes()
        );
        assert_eq!(bytes, frame_raw(&payload));
    }

    #[test]
    fn every_single_byte_corruption_is_rejected_or_exact() {
        let frame = sample_frame();
        let bytes = encode(&frame);
        for i in 0..bytes.len() - 1 {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                match decode_frame(&bad) {
                    Err(_) => {}
                    Ok(f) => panic!("corruption at {i} (^{flip:#x}) decoded as {f:?}"),
                }
            }
        }
    }

    #[test]
    fn rejection_table() {
        let good = encode(&sample_frame());
        let raw = {
            let mut r = vec![0u8; good.len()];
            let n = cobs::decode(&good[..good.len() - 1], &mut r).unwrap();
            r.truncate(n - 4);
            r
        };
        // Empty and interior zero: not COBS.
        assert_eq!(decode_frame(&[]), Err(TelemetryError::FrameBadCobs));
        assert_eq!(decode_frame(&[0]), Err(TelemetryError::FrameBadCobs));
        assert_eq!(
            decode_frame(&[3, 1, 0, 1]),
            Err(TelemetryError::FrameBadCobs)
        );
        // Code byte pointing past the end.
        assert_eq!(decode_frame(&[9, 1, 2]), Err(TelemetryError::FrameBadCobs));
        // Too short for version + CRC.
        assert_eq!(
            decode_frame(&[3, 1, 2]),
            Err(TelemetryError::FrameTooShort { len: 2 })
        );
        // CRC mismatch.
        let mut bad_crc = raw.clone();
        bad_crc.extend_from_slice(&[1, 2, 3, 4]);
        let mut enc = vec![0u8; bad_crc.len() + 2];
        let n = cobs::encode(&bad_crc, &mut enc);
        assert_eq!(decode_frame(&enc[..n]), Err(TelemetryError::FrameBadCrc));
        // A newer version with a correct CRC is rejected before its payload is read.
        let mut v2 = raw.clone();
        v2[0] = 2;
        assert_eq!(
            decode_frame(&frame_raw(&v2)),
            Err(TelemetryError::FrameUnsupportedVersion { found: 2 })
        );
        // Unknown record tag, truncated payload and trailing bytes: bad record.
        let mut tag = raw.clone();
        tag[10] = 9;
        assert_eq!(
            decode_frame(&frame_raw(&tag)),
            Err(TelemetryError::FrameBadRecord)
        );
        assert_eq!(
            decode_frame(&frame_raw(&raw[..raw.len() - 2])),
            Err(TelemetryError::FrameBadRecord)
        );
        let mut trailing = raw.clone();
        trailing.push(5);
        assert_eq!(
            decode_frame(&frame_raw(&trailing)),
            Err(TelemetryError::FrameBadRecord)
        );
        // A sample longer than SAMPLE_MAX is rejected, not truncated.
        let mut long = raw[..16].to_vec();
        long.push(SAMPLE_MAX as u8 + 1);
        long.extend(std::iter::repeat_n(2u8, SAMPLE_MAX + 1));
        assert_eq!(
            decode_frame(&frame_raw(&long)),
            Err(TelemetryError::FrameBadRecord)
        );
    }
}

//! Telemetry frames: any bytes either fail `decode_frame` with an error or decode into a frame
//! that re-encodes and decodes to the same frame.

use edgeloop_runtime::telemetry::{decode_frame, encode_frame, Frame, MAX_FRAME_LEN};

/// The frame CRC (CRC-32/ISO-HDLC, as in `runtime/TELEMETRY.md`).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Decodes `data` as an encoded frame, and `data` taken as a raw payload (version byte and
/// postcard record) framed with a correct CRC, so mutations reach the record decoder instead of
/// stopping at the CRC.
pub fn fuzz_frame(data: &[u8]) {
    if let Ok(frame) = decode_frame(data) {
        check_round_trip(&frame);
    }
    if let Some(framed) = frame_payload(data) {
        if let Ok(frame) = decode_frame(&framed) {
            check_round_trip(&frame);
        }
    }
}

/// A decoded frame must encode (it came from at most `MAX_FRAME_LEN` bytes) and decode back to
/// itself.
fn check_round_trip(frame: &Frame) {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let n = encode_frame(frame, &mut buf)
        .unwrap_or_else(|e| panic!("decoded frame does not re-encode: {e:?}: {frame:?}"));
    let again = decode_frame(&buf[..n]).expect("re-encoded frame does not decode");
    assert_eq!(&again, frame, "frame changed in a round trip");
}

/// COBS-encodes `payload ++ crc32(payload)` with the `0x00` delimiter; `None` when the payload
/// is longer than a frame can be.
pub fn frame_payload(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > MAX_FRAME_LEN {
        return None;
    }
    let mut raw = payload.to_vec();
    raw.extend_from_slice(&CRC32.checksum(payload).to_le_bytes());
    let mut out = vec![0u8; raw.len() + raw.len() / 254 + 2];
    let n = cobs::encode(&raw, &mut out);
    out.truncate(n);
    out.push(0);
    Some(out)
}

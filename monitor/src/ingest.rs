//! Frame ingest from any byte stream: split on the COBS delimiter, decode, count and skip corrupt
//! frames, drop duplicates.
//!
//! A corrupt frame costs only itself: the reader resynchronizes on the next `0x00`.
//! Deduplication key: `(device, boot, seq)` — the runtime restarts `seq` at every boot, so the
//! boot counter is part of the key.

use std::collections::HashSet;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use edgeloop_runtime::telemetry::{decode_frame, Frame, TelemetryError, MAX_FRAME_LEN};
use serde::Serialize;

use crate::{Error, Result};

/// Unique key of a record.
pub type RecordKey = (u64, u32, u32);

/// A decoded frame and when the host received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The decoded frame.
    pub frame: Frame,
    /// Host wall-clock time of receipt, milliseconds since the Unix epoch (UTC).
    pub received_at_ms: i64,
}

impl Received {
    /// The deduplication key `(device, boot, seq)`.
    pub fn key(&self) -> RecordKey {
        let h = &self.frame.header;
        (h.device, h.boot, h.seq)
    }
}

/// Corrupt frames skipped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CorruptCounts {
    /// Not valid COBS.
    pub bad_cobs: u64,
    /// Too short to hold a version byte and a CRC.
    pub too_short: u64,
    /// CRC mismatch.
    pub bad_crc: u64,
    /// Written by a newer (or unknown) format version.
    pub unsupported_version: u64,
    /// CRC matched but the record did not decode.
    pub bad_record: u64,
    /// No delimiter within the maximum frame length (the bytes up to the next delimiter are skipped).
    pub oversized: u64,
    /// Bytes at the end of the stream without a final delimiter.
    pub truncated: u64,
}

impl CorruptCounts {
    /// All corrupt frames.
    pub fn total(&self) -> u64 {
        self.bad_cobs
            + self.too_short
            + self.bad_crc
            + self.unsupported_version
            + self.bad_record
            + self.oversized
            + self.truncated
    }
}

/// Counters of one ingest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Bytes read.
    pub bytes: u64,
    /// Frames decoded and kept.
    pub frames: u64,
    /// Frames dropped because their key was seen before.
    pub duplicates: u64,
    /// Corrupt frames skipped.
    pub corrupt: CorruptCounts,
}

/// Streaming frame decoder with deduplication.
#[derive(Debug, Default)]
pub struct Ingestor {
    pending: Vec<u8>,
    /// Skipping an oversized frame until the next delimiter.
    skipping: bool,
    seen: HashSet<RecordKey>,
    stats: IngestStats,
}

/// Frames longer than this without a delimiter are treated as corrupt.
const MAX_PENDING: usize = MAX_FRAME_LEN * 4;

impl Ingestor {
    /// An ingestor that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// An ingestor that treats `keys` (for example those already in the store) as seen.
    pub fn with_seen(keys: impl IntoIterator<Item = RecordKey>) -> Self {
        Self {
            seen: keys.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// Feeds a chunk of the stream; complete new frames are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], received_at_ms: i64, out: &mut Vec<Received>) {
        self.stats.bytes += chunk.len() as u64;
        for &b in chunk {
            if b == 0 {
                if self.skipping {
                    self.skipping = false;
                } else if !self.pending.is_empty() {
                    let frame = std::mem::take(&mut self.pending);
                    self.accept(&frame, received_at_ms, out);
                }
                // An empty frame (two delimiters in a row) is idle line noise, not a record.
            } else if !self.skipping {
                self.pending.push(b);
                if self.pending.len() > MAX_PENDING {
                    self.pending.clear();
                    self.skipping = true;
                    self.stats.corrupt.oversized += 1;
                }
            }
        }
    }

    /// Ends the stream: bytes after the last delimiter count as one truncated frame.
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.stats.corrupt.truncated += 1;
        }
        self.skipping = false;
    }

    fn accept(&mut self, encoded: &[u8], received_at_ms: i64, out: &mut Vec<Received>) {
        let c = &mut self.stats.corrupt;
        match decode_frame(encoded) {
            Ok(frame) => {
                let r = Received {
                    frame,
                    received_at_ms,
                };
                if self.seen.insert(r.key()) {
                    self.stats.frames += 1;
                    out.push(r);
                } else {
                    self.stats.duplicates += 1;
                }
            }
            Err(TelemetryError::FrameTooShort { .. }) => c.too_short += 1,
            Err(TelemetryError::FrameBadCrc) => c.bad_crc += 1,
            Err(TelemetryError::FrameUnsupportedVersion { .. }) => c.unsupported_version += 1,
            Err(TelemetryError::FrameBadRecord) => c.bad_record += 1,
            Err(_) => c.bad_cobs += 1,
        }
    }

    /// Reads `reader` to its end (a file, stdin, a serial device), calling `sink` with each
    /// batch of at most `batch` new frames, stamped with the wall-clock time of the read.
    pub fn read_all<R: Read>(
        &mut self,
        mut reader: R,
        what: &str,
        batch: usize,
        mut sink: impl FnMut(Vec<Received>) -> Result<()>,
    ) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::Read {
                        what: what.to_string(),
                        source,
                    })
                }
            };
            self.feed(&buf[..n], now_ms(), &mut out);
            if out.len() >= batch.max(1) {
                sink(std::mem::take(&mut out))?;
            }
        }
        self.finish();
        if !out.is_empty() {
            sink(out)?;
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeloop_runtime::telemetry::*;

    pub(crate) fn stream(n: u32, device: u64) -> Vec<u8> {
        let mut r = Recorder::<65536>::new(device, 1, ModelRef { id: 1, version: 1 });
        for i in 0..n {
            r.record(
                u64::from(i),
                Record::Inference(InferenceSummary {
                    class: (i % 3) as u16,
                    confidence_q16: 40000,
                    latency_ticks: 100 + i,
                    input: InputSummary::from_i8(&[1, 2, 3]),
                }),
            )
            .unwrap();
        }
        let mut out = vec![0u8; 65536];
        let len = r.drain(&mut out).unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn corrupt_frames_are_skipped_counted_and_resynced() {
        let clean = stream(50, 7);
        let frames: Vec<&[u8]> = clean.split_inclusive(|&b| b == 0).collect();
        assert_eq!(frames.len(), 50);
        let mut dirty = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let mut f = f.to_vec();
            match i % 10 {
                3 => {
                    let k = f.len() / 2;
                    f[k] = f[k].wrapping_add(1).max(1); // bit error, still no zero
                }
                5 => {
                    f.drain(1..4); // lost bytes
                }
                7 => dirty.extend_from_slice(&[0x55, 0x66, 0x77]), // line noise before the frame
                _ => {}
            }
            dirty.extend_from_slice(&f);
        }
        dirty.extend_from_slice(&[9, 9, 9]); // truncated tail
        let mut ing = Ingestor::new();
        let mut out = Vec::new();
        // Feed in awkward chunk sizes.
        for chunk in dirty.chunks(7) {
            ing.feed(chunk, 1, &mut out);
        }
        ing.finish();
        let s = ing.stats();
        // Frames 3, 13, .. (bit error), 5, 15, .. (lost bytes), 7, 17, .. (noise merged into the frame) are lost.
        assert_eq!(out.len(), 35, "{s:?}");
        assert_eq!(s.corrupt.total(), 16, "{s:?}");
        assert_eq!(s.corrupt.truncated, 1);
        let seqs: Vec<u32> = out.iter().map(|r| r.frame.header.seq).collect();
        assert!(seqs.iter().all(|s| ![3, 5, 7].contains(&(s % 10))));
    }

    #[test]
    fn duplicates_dropped_by_device_boot_seq() {
        let a = stream(20, 1);
        let b = stream(20, 2);
        let mut all = a.clone();
        all.extend_from_slice(&b);
        all.extend_from_slice(&a); // replayed by a retrying transport
        let mut ing = Ingestor::with_seen([(2, 1, 0)]);
        let mut got = Vec::new();
        ing.read_all(&all[..], "test", 7, |batch| {
            assert!(batch.len() <= 7 + 64);
            got.extend(batch);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 39);
        assert_eq!(ing.stats().duplicates, 21);
        assert_eq!(ing.stats().corrupt.total(), 0);
    }

    #[test]
    fn oversized_garbage_is_skipped_until_next_delimiter() {
        let mut data = vec![1u8; MAX_PENDING + 10];
        data.push(0);
        data.extend(stream(3, 1));
        let mut ing = Ingestor::new();
        let mut out = Vec::new();
        ing.feed(&data, 0, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(ing.stats().corrupt.oversized, 1);
    }
}

//! `Recorder<N>`: a fixed-capacity byte ring of whole encoded frames.
//!
//! Recording encodes the record on the stack (at most [`MAX_FRAME_LEN`] bytes) and copies it into
//! the ring; when the ring lacks room it drops the oldest whole frames first and counts each one.
//! Recording never waits for the drain side and never allocates. Every stored frame ends with the
//! `0x00` COBS delimiter and contains no other zero, so frame boundaries are found by scanning.
//!
//! The recorder takes `&mut self`: when inference and draining run in different interrupt
//! priorities, put it behind a critical-section mutex (each operation is bounded by one frame's
//! length, so the critical section is short).

use super::frame::{encode_frame, MAX_FRAME_LEN};
use super::{Frame, Header, Heartbeat, ModelRef, Record, TelemetryError, FORMAT_VERSION};

/// Counters kept by a [`Recorder`] since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecorderStats {
    /// Frames accepted into the ring.
    pub recorded: u32,
    /// Frames dropped from the ring (oldest first) to make room; exact.
    pub dropped: u32,
    /// Records that could not be encoded or were larger than the ring (not stored, not counted in `recorded`).
    pub rejected: u32,
    /// Inference records accepted.
    pub inferences: u32,
    /// Feedback records accepted.
    pub feedback: u32,
    /// Drift alarms accepted.
    pub alarms: u32,
}

/// Fixed-capacity ring of encoded telemetry frames, `N` bytes of storage.
pub struct Recorder<const N: usize> {
    buf: [u8; N],
    /// Index of the first byte of the oldest frame.
    head: usize,
    /// Bytes in use.
    used: usize,
    /// Whole frames in the ring.
    frames: usize,
    device: u64,
    boot: u32,
    model: ModelRef,
    next_seq: u32,
    stats: RecorderStats,
}

impl<const N: usize> Recorder<N> {
    /// A recorder for `device`, in boot number `boot`, running `model`. Sequence numbers start at 0.
    pub const fn new(device: u64, boot: u32, model: ModelRef) -> Self {
        Self {
            buf: [0; N],
            head: 0,
            used: 0,
            frames: 0,
            device,
            boot,
            model,
            next_seq: 0,
            stats: RecorderStats {
                recorded: 0,
                dropped: 0,
                rejected: 0,
                inferences: 0,
                feedback: 0,
                alarms: 0,
            },
        }
    }

    /// Changes the model named in later records (after an over-the-air update).
    pub fn set_model(&mut self, model: ModelRef) {
        self.model = model;
    }

    /// Counters since creation.
    pub fn stats(&self) -> RecorderStats {
        self.stats
    }

    /// Whole frames waiting to be drained.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Bytes waiting to be drained.
    pub fn bytes_used(&self) -> usize {
        self.used
    }

    /// Encodes `record` with the next sequence number and timestamp `ticks`, and stores it.
    /// Returns the sequence number. When the ring is full, the oldest frames are dropped.
    ///
    /// On error nothing is stored and the sequence number is not consumed.
    pub fn record(&mut self, ticks: u64, record: Record) -> Result<u32, TelemetryError> {
        let seq = self.next_seq;
        let frame = Frame {
            header: Header {
                version: FORMAT_VERSION,
                device: self.device,
                boot: self.boot,
                seq,
                ticks,
                model: self.model,
            },
            record,
        };
        let mut scratch = [0u8; MAX_FRAME_LEN];
        let len = match encode_frame(&frame, &mut scratch) {
            Ok(len) => len,
            Err(e) => {
                self.stats.rejected = self.stats.rejected.wrapping_add(1);
                return Err(e);
            }
        };
        if len > N {
            self.stats.rejected = self.stats.rejected.wrapping_add(1);
            return Err(TelemetryError::FrameTooLarge {
                len: len as u32,
                capacity: u32::try_from(N).unwrap_or(u32::MAX),
            });
        }
        while N - self.used < len {
            self.drop_oldest();
        }
        self.push_bytes(&scratch[..len]);
        self.frames += 1;
        self.next_seq = self.next_seq.wrapping_add(1);
        let s = &mut self.stats;
        s.recorded = s.recorded.wrapping_add(1);
        match frame.record {
            Record::Inference(_) => s.inferences = s.inferences.wrapping_add(1),
            Record::Feedback(_) => s.feedback = s.feedback.wrapping_add(1),
            Record::DriftAlarm(_) => s.alarms = s.alarms.wrapping_add(1),
            Record::Heartbeat(_) => {}
        }
        Ok(seq)
    }

    /// Records a heartbeat carrying the current counters (drops counted before this heartbeat).
    pub fn heartbeat(&mut self, ticks: u64, uptime_ticks: u64) -> Result<u32, TelemetryError> {
        let s = self.stats;
        self.record(
            ticks,
            Record::Heartbeat(Heartbeat {
                uptime_ticks,
                inferences: s.inferences,
                feedback: s.feedback,
                alarms: s.alarms,
                dropped: s.dropped,
            }),
        )
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        debug_assert!(N - self.used >= bytes.len());
        let tail = (self.head + self.used) % N;
        let first = bytes.len().min(N - tail);
        self.buf[tail..tail + first].copy_from_slice(&bytes[..first]);
        self.buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.used += bytes.len();
    }

    /// Length (delimiter included) of the oldest frame, if any.
    fn oldest_len(&self) -> Option<usize> {
        if self.frames == 0 {
            return None;
        }
        let (a, b) = self.occupied();
        let pos = a
            .iter()
            .position(|&x| x == 0)
            .or_else(|| b.iter().position(|&x| x == 0).map(|p| a.len() + p));
        debug_assert!(pos.is_some(), "every stored frame ends with a delimiter");
        pos.map(|p| p + 1)
    }

    /// The occupied bytes, oldest first, as two slices (the second is non-empty when they wrap).
    fn occupied(&self) -> (&[u8], &[u8]) {
        let end = self.head + self.used;
        if end <= N {
            (&self.buf[self.head..end], &[])
        } else {
            (&self.buf[self.head..], &self.buf[..end - N])
        }
    }

    fn discard(&mut self, len: usize) {
        self.head = (self.head + len) % N;
        self.used -= len;
        self.frames -= 1;
        if self.used == 0 {
            self.head = 0;
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(len) = self.oldest_len() {
            self.discard(len);
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
        }
    }

    /// The oldest whole frame as one or two slices (two when it wraps around the ring), without
    /// removing it. Send both, in order, then call [`Recorder::pop`]; if the transport fails,
    /// leave it and try again later.
    pub fn peek(&self) -> Option<(&[u8], &[u8])> {
        let len = self.oldest_len()?;
        let (a, b) = self.occupied();
        if len <= a.len() {
            Some((&a[..len], &[]))
        } else {
            Some((a, &b[..len - a.len()]))
        }
    }

    /// Removes the oldest frame (after it was sent). Returns false when the ring is empty.
    pub fn pop(&mut self) -> bool {
        match self.oldest_len() {
            Some(len) => {
                self.discard(len);
                true
            }
            None => false,
        }
    }

    /// Moves as many whole frames as fit into `out`, oldest first, and returns the bytes written.
    /// A frame that does not fit stays in the ring; if not even the first one fits, this returns
    /// [`TelemetryError::OutputTooSmall`].
    pub fn drain(&mut self, out: &mut [u8]) -> Result<usize, TelemetryError> {
        let mut written = 0;
        while let Some((a, b)) = self.peek() {
            let len = a.len() + b.len();
            if out.len() - written < len {
                if written == 0 {
                    return Err(TelemetryError::OutputTooSmall {
                        needed: len as u32,
                        given: u32::try_from(out.len()).unwrap_or(u32::MAX),
                    });
                }
                break;
            }
            out[written..written + a.len()].copy_from_slice(a);
            out[written + a.len()..written + len].copy_from_slice(b);
            written += len;
            self.pop();
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::decode::decode_frame;
    use crate::telemetry::*;

    fn inference(i: u32) -> Record {
        Record::Inference(InferenceSummary {
            class: (i % 7) as u16,
            confidence_q16: (i * 977) as u16,
            latency_ticks: i * 13,
            input: InputSummary::from_i8(&[(i % 200) as i8, -3, 9]),
        })
    }

    fn feedback(i: u32, sample_len: usize) -> Record {
        let values: Vec<i32> = (0..sample_len as i32)
            .map(|v| v * 100_003 - i as i32)
            .collect();
        Record::Feedback(Feedback {
            inference_seq: i,
            correction: i.is_multiple_of(3).then_some(i as u16),
            thumbs: None,
            sample: Sample::from_i32(&values).unwrap(),
        })
    }

    fn split_frames(bytes: &[u8]) -> Vec<Frame> {
        bytes
            .split_inclusive(|&b| b == 0)
            .map(|f| decode_frame(f).unwrap())
            .collect()
    }

    #[test]
    fn records_and_drains_in_order() {
        let mut r = Recorder::<1024>::new(9, 1, ModelRef { id: 1, version: 2 });
        for i in 0..5 {
            assert_eq!(r.record(u64::from(i) * 10, inference(i)).unwrap(), i);
        }
        let mut out = [0u8; 4096];
        let n = r.drain(&mut out).unwrap();
        let frames = split_frames(&out[..n]);
        assert_eq!(frames.len(), 5);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.header.seq, i as u32);
            assert_eq!(f.header.device, 9);
            assert_eq!(f.header.boot, 1);
            assert_eq!(f.record, inference(i as u32));
        }
        assert_eq!(r.frames(), 0);
        assert_eq!(r.bytes_used(), 0);
    }

    /// Random record sizes, random drain sizes: every frame offered is either drained intact,
    /// still in the ring, or counted as dropped — exactly, and drops are always the oldest.
    #[test]
    fn drops_are_oldest_first_and_counted_exactly() {
        let mut state = 7u64;
        let mut next = move |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let mut r = Recorder::<300>::new(1, 0, ModelRef::default());
        let mut drained: Vec<Frame> = Vec::new();
        let offered = 2000u32;
        for i in 0..offered {
            let rec = if next(2) == 0 {
                inference(i)
            } else {
                feedback(i, next(SAMPLE_MAX as u64 + 1) as usize)
            };
            r.record(u64::from(i), rec).unwrap();
            assert!(r.bytes_used() <= 300);
            if next(5) == 0 {
                let mut out = vec![0u8; next(600) as usize + MAX_FRAME_LEN];
                let n = r.drain(&mut out).unwrap();
                drained.extend(split_frames(&out[..n]));
            }
        }
        let mut out = vec![0u8; 1000];
        let n = r.drain(&mut out).unwrap();
        drained.extend(split_frames(&out[..n]));
        let stats = r.stats();
        assert_eq!(stats.recorded, offered);
        assert_eq!(drained.len() as u32 + stats.dropped, offered);
        assert!(stats.dropped > 0, "the test must exercise drops");
        // Sequence numbers strictly increase; every gap is a dropped frame.
        let seqs: Vec<u32> = drained.iter().map(|f| f.header.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*seqs.last().unwrap(), offered - 1);
    }

    #[test]
    fn peek_handles_wraparound_and_pop_removes() {
        let mut r = Recorder::<200>::new(1, 0, ModelRef::default());
        let mut seen = Vec::new();
        for i in 0..50 {
            r.record(0, feedback(i, (i % 9) as usize)).unwrap();
            if i % 3 == 0 {
                while let Some((a, b)) = r.peek() {
                    let mut f = a.to_vec();
                    f.extend_from_slice(b);
                    seen.push(decode_frame(&f).unwrap().header.seq);
                    assert!(r.pop());
                }
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert!(!Recorder::<8>::new(0, 0, ModelRef::default()).pop());
    }

    #[test]
    fn heartbeat_reports_drops_and_counts() {
        let mut r = Recorder::<128>::new(1, 0, ModelRef::default());
        for i in 0..20 {
            r.record(0, inference(i)).unwrap();
        }
        let dropped = r.stats().dropped;
        assert!(dropped > 0);
        r.heartbeat(5, 500).unwrap();
        let mut out = [0u8; 1024];
        let n = r.drain(&mut out).unwrap();
        let last = split_frames(&out[..n]).pop().unwrap();
        match last.record {
            Record::Heartbeat(h) => {
                assert_eq!(h.inferences, 20);
                assert_eq!(h.uptime_ticks, 500);
                assert!(h.dropped >= dropped);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_leave_the_ring_untouched() {
        let mut r = Recorder::<16>::new(1, 0, ModelRef::default());
        let err = r.record(0, inference(1)).unwrap_err();
        assert!(matches!(
            err,
            TelemetryError::FrameTooLarge { capacity: 16, .. }
        ));
        assert_eq!(r.stats().rejected, 1);
        assert_eq!(r.frames(), 0);
        let mut r = Recorder::<512>::new(1, 0, ModelRef::default());
        r.record(0, feedback(1, 10)).unwrap();
        let mut tiny = [0u8; 4];
        assert!(matches!(
            r.drain(&mut tiny),
            Err(TelemetryError::OutputTooSmall { given: 4, .. })
        ));
        assert_eq!(r.frames(), 1);
        // The next record continues the sequence; a failed record consumed no number.
        assert_eq!(r.record(0, inference(2)).unwrap(), 1);
    }
}

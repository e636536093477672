//! Inference and feedback records for the monitor's store.
//!
//! The server is one "device" to the monitor: every request it answers becomes a telemetry
//! record (the runtime's `Frame`: header with device id, boot, sequence number, ticks and model,
//! then an `Inference` or `Feedback` record), and device frames posted to `/v1/telemetry` join
//! them. Records are buffered and written as Parquet by `edgeloop_monitor::store::write`
//! (Hive-partitioned, one file per table and partition per write) when `flush_every` are
//! waiting, at a fixed interval, on `POST /admin/flush`, and at shutdown.
//!
//! Header fields: `device` is the configured device id; `boot` is the server's start time in
//! Unix seconds (so a restart never reuses a `(device, boot, seq)` key); `seq` counts records
//! from 0; `ticks` are microseconds since the server started, and so is `latency_ticks`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use edgeloop_monitor::ingest::{now_ms, Received};
use edgeloop_runtime::telemetry::{Frame, Header, ModelRef, Record, FORMAT_VERSION};

/// Outcome counters of the store writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records waiting in memory.
    pub buffered: u64,
    /// Records written to Parquet.
    pub written: u64,
    /// Parquet files written.
    pub files: u64,
    /// Failed store writes (the records stay buffered and are retried).
    pub write_errors: u64,
    /// Records dropped because the buffer was full while the store could not be written.
    pub dropped: u64,
}

/// Buffers records and writes them to the store.
#[derive(Debug)]
pub struct RecordSink {
    store_dir: PathBuf,
    device: u64,
    boot: u32,
    started: Instant,
    seq: AtomicU32,
    buffer: Mutex<Vec<Received>>,
    flush_every: usize,
    max_buffered: usize,
    /// Held while writing, so flushes never interleave.
    writing: Mutex<()>,
    written: AtomicU64,
    files: AtomicU64,
    write_errors: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RecordSink {
    /// A sink writing under `store_dir` as device `device`.
    pub fn new(store_dir: PathBuf, device: u64, flush_every: usize, max_buffered: usize) -> Self {
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        RecordSink {
            store_dir,
            device,
            boot,
            started: Instant::now(),
            seq: AtomicU32::new(0),
            buffer: Mutex::new(Vec::new()),
            flush_every: flush_every.max(1),
            max_buffered: max_buffered.max(flush_every.max(1)),
            writing: Mutex::new(()),
            written: AtomicU64::new(0),
            files: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The store directory.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The boot value of this server's records.
    pub fn boot(&self) -> u32 {
        self.boot
    }

    /// Microseconds since the server started (the records' tick unit).
    pub fn ticks(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Records a new frame for `model`; returns its sequence number and whether a flush is due.
    pub fn record(&self, model: ModelRef, record: Record) -> (u32, bool) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let frame = Frame {
            header: Header {
                version: FORMAT_VERSION,
                device: self.device,
                boot: self.boot,
                seq,
                ticks: self.ticks(),
                model,
            },
            record,
        };
        let due = self.push(vec![Received {
            frame,
            received_at_ms: now_ms(),
        }]);
        (seq, due)
    }

    /// Adds already-made records (for example device frames posted to `/v1/telemetry`);
    /// returns whether a flush is due.
    pub fn push(&self, mut rows: Vec<Received>) -> bool {
        let mut b = lock(&self.buffer);
        b.append(&mut rows);
        if b.len() > self.max_buffered {
            let extra = b.len() - self.max_buffered;
            b.drain(..extra);
            self.dropped.fetch_add(extra as u64, Ordering::Relaxed);
        }
        b.len() >= self.flush_every
    }

    /// Writes everything buffered (blocking file I/O: call from a blocking thread). Returns
    /// the number of records written; on failure they go back to the buffer.
    pub fn flush_blocking(&self) -> Result<usize, String> {
        let _w = lock(&self.writing);
        let rows = std::mem::take(&mut *lock(&self.buffer));
        if rows.is_empty() {
            return Ok(0);
        }
        match edgeloop_monitor::store::write(&self.store_dir, &rows) {
            Ok(files) => {
                self.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                self.files.fetch_add(files.len() as u64, Ordering::Relaxed);
                Ok(rows.len())
            }
            Err(e) => {
                let msg = format!("writing the telemetry store: {e}");
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                *lock(&self.last_error) = Some(msg.clone());
                let mut b = lock(&self.buffer);
                let newer = std::mem::replace(&mut *b, rows);
                drop(b);
                self.push(newer);
                Err(msg)
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> SinkStats {
        SinkStats {
            buffered: lock(&self.buffer).len() as u64,
            written: self.written.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// The last store write error, if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeloop_runtime::telemetry::{Feedback, InferenceSummary, InputSummary, Sample, Thumbs};

    fn inference(class: u16) -> Record {
        Record::Inference(InferenceSummary {
            class,
            confidence_q16: 40000,
            latency_ticks: 12,
            input: InputSummary::from_i32(&[1, 2, 3]),
        })
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edgeloop-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_reach_the_parquet_store_with_sequence_numbers() {
        let dir = tmp("sink");
        let sink = RecordSink::new(dir.clone(), 0xABCD, 3, 100);
        let m = ModelRef { id: 5, version: 2 };
        assert_eq!(sink.record(m, inference(1)), (0, false));
        assert_eq!(sink.record(m, inference(2)), (1, false));
        let fb = Record::Feedback(Feedback {
            inference_seq: 1,
            correction: Some(3),
            thumbs: Some(Thumbs::Down),
            sample: Sample::from_i32(&[4, 5]).unwrap(),
        });
        assert_eq!(sink.record(m, fb), (2, true));
        assert_eq!(sink.flush_blocking(), Ok(3));
        assert_eq!(sink.flush_blocking(), Ok(0));
        let data = edgeloop_monitor::store::read(&dir).unwrap();
        assert_eq!(data.inferences.len(), 2);
        assert_eq!(data.feedback.len(), 1);
        let f = &data.feedback[0];
        assert_eq!(
            (f.inference_seq, f.correction, f.thumbs_up),
            (1, Some(3), Some(false))
        );
        assert_eq!(f.sample, vec![4, 5]);
        assert_eq!(f.common.partition.device, 0xABCD);
        assert_eq!(f.common.partition.model_version, 2);
        assert_eq!(f.common.boot, sink.boot());
        let s = sink.stats();
        assert_eq!((s.written, s.buffered, s.write_errors), (3, 0, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_keeps_the_records_and_a_full_buffer_counts_drops() {
        let dir = tmp("sink-fail");
        // A file where the store directory should be: every write fails.
        std::fs::write(&dir, b"not a directory").unwrap();
        let sink = RecordSink::new(dir.clone(), 1, 2, 4);
        let m = ModelRef::default();
        for c in 0..3 {
            sink.record(m, inference(c));
        }
        assert!(sink.flush_blocking().is_err());
        assert_eq!(sink.stats().buffered, 3);
        assert!(sink.last_error().unwrap().contains("telemetry store"));
        for c in 0..3 {
            sink.record(m, inference(c));
        }
        let s = sink.stats();
        assert_eq!((s.buffered, s.dropped, s.write_errors), (4, 2, 1));
        let _ = std::fs::remove_file(&dir);
    }
}

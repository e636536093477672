//! Streaming with bounded memory: a generated stream far larger than what the pipeline keeps
//! passes through `select`, and the peak heap (measured by a counting global allocator) stays
//! under the stated bound and does not grow with the stream's size.
//!
//! `huge_stream_4gib` (ignored by default; run with `--ignored --nocapture`) pushes 4 GiB.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use edgeloop_trainer::data::pipeline::memory_bound;
use edgeloop_trainer::data::{select, Format, SelectConfig, SourceInput, SourceSpec};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds relaxed counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as `System.alloc`.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as `System.dealloc`.
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Tests in this file measure the process-wide heap: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A deterministic text stream of `total` bytes: records drawn from `unique` distinct
/// paragraphs-on-a-line (~1 KB each), so most of the stream is duplicates.
struct Gen {
    total: u64,
    sent: u64,
    unique: u64,
    state: u64,
    line: Vec<u8>,
    pos: usize,
}

impl Gen {
    fn new(total: u64, unique: u64) -> Self {
        Gen {
            total,
            sent: 0,
            unique,
            state: 0x1234_5678,
            line: Vec::new(),
            pos: 0,
        }
    }
    fn next_line(&mut self) {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = (self.state >> 33) % self.unique;
        self.line.clear();
        // Random lower-case words seeded by the record number: distinct records are far apart.
        let mut x = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        self.line
            .extend_from_slice(format!("record {k}:").as_bytes());
        while self.line.len() < 1000 {
            self.line.push(b' ');
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..3 + x % 6 {
                self.line.push(b'a' + ((x >> (8 + 5 * i)) % 26) as u8);
            }
        }
        self.line.push(b'\n');
        self.pos = 0;
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent >= self.total {
            return Ok(0);
        }
        if self.pos >= self.line.len() {
            self.next_line();
        }
        let n = buf.len().min(self.line.len() - self.pos);
        buf[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        self.sent += n as u64;
        Ok(n)
    }
}

fn run(total: u64, unique: u64) -> (usize, u64, u64) {
    let dir = std::env::temp_dir().join(format!("edgeloop-stream-{}-{total}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = SourceSpec {
        input: SourceInput::Stream {
            name: format!("generated-{total}"),
            open: Arc::new(move || {
                Box::new(BufReader::with_capacity(1 << 16, Gen::new(total, unique)))
            }),
        },
        weight: 1.0,
        format: Format::Lines,
    };
    let mut cfg = SelectConfig::new(vec![spec], &dir);
    cfg.baseline_max_records = 0;
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = select(&cfg).unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let kept: u64 = r.card.splits.values().map(|s| s.records).sum();
    let read = r.card.steps[0].output;
    drop(r);
    std::fs::remove_dir_all(&dir).unwrap();
    (peak, kept, read)
}

#[test]
fn peak_memory_is_bounded_and_independent_of_stream_size() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (small_peak, small_kept, small_read) = run(8 << 20, 3000);
    let (big_peak, big_kept, big_read) = run(96 << 20, 3000);
    let bound = memory_bound(big_kept, Some(&Default::default()));
    println!(
        "8 MiB stream: {small_read} records read, {small_kept} kept, peak heap {:.2} MiB; 96 MiB stream: {big_read} read, {big_kept} kept, peak heap {:.2} MiB; stated bound {:.2} MiB",
        small_peak as f64 / 1048576.0,
        big_peak as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    assert!(big_read > 90_000, "{big_read}");
    assert!(big_kept <= 3000);
    assert!(
        (big_peak as u64) < bound,
        "peak {big_peak} over the stated bound {bound}"
    );
    // 12x the input, (nearly) the same memory: at most 1 MiB more.
    assert!(
        big_peak < small_peak + (1 << 20),
        "small {small_peak}, big {big_peak}"
    );
    assert!(
        (big_peak as u64) < (96 << 20) / 8,
        "peak {big_peak} is not small next to the input"
    );
}

#[test]
#[ignore = "pushes 4 GiB through the pipeline (minutes); run manually"]
fn huge_stream_4gib() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (peak, kept, read) = run(4 << 30, 20_000);
    let bound = memory_bound(kept, Some(&Default::default()));
    println!(
        "4 GiB: {read} records, {kept} kept, peak heap {:.2} MiB (bound {:.2} MiB)",
        peak as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    assert!((peak as u64) < bound);
}

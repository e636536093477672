//! Intra-op threads for host builds (feature `std`): a fork-join pool of worker threads that
//! [`Interpreter::set_threads`](crate::Interpreter::set_threads) creates once, so `invoke` can
//! split the rows of its largest ops without allocating or spawning anything.
//!
//! One [`Pool::run`] posts part `w + 1` of a job to worker `w` and runs part 0 on the calling
//! thread. A worker claims its part before running it; when the caller has finished part 0 it
//! takes back every part still unclaimed (a worker not yet scheduled: just started, parked, or
//! its core busy with another process) and runs it itself, then waits for the claimed ones. So
//! a job never waits for a thread to be scheduled, and [`Pool::new`] returns without waiting
//! for its threads to start: a start-up with threads costs the spawns, not their scheduling.
//! Between jobs a worker spins for about [`SPIN`] (an `invoke` posts jobs a few microseconds
//! apart) and then parks; posting a job unparks it. The parts of a job write disjoint rows, so
//! the result does not depend on which thread computes which part: it is the single-threaded
//! result, bit for bit.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
pub const SPIN: Duration = Duration::from_micros(200);

const IDLE: u32 = 0;
const POSTED: u32 = 1;
const DONE: u32 = 2;
const PANICKED: u32 = 3;
const QUIT: u32 = 4;
/// A worker has claimed the posted part and is running it.
const RUNNING: u32 = 5;

/// A job: a borrowed `Fn(part)` with its lifetime erased. [`Pool::run`] does not return before
/// every worker has finished with it.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    part: usize,
}

struct Slot {
    state: AtomicU32,
    job: UnsafeCell<Option<Job>>,
}

// SAFETY: `job` is written by the posting thread only while `state` is IDLE (the worker does not
// read it then) and read by the worker only after its compare-exchange POSTED → RUNNING
// succeeds (Acquire), which pairs with the poster's POSTED store (Release) after the write. The
// poster writes it again only after the worker's DONE/PANICKED (or after taking the part back
// with POSTED → IDLE, when the worker never read it). The pointed-to closure is `Sync`.
unsafe impl Sync for Slot {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Slot {}

struct Worker {
    slot: Arc<Slot>,
    thread: Thread,
    handle: Option<JoinHandle<()>>,
}

/// A fixed set of worker threads (see the module docs).
pub struct Pool {
    workers: Vec<Worker>,
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .finish()
    }
}

fn worker_loop(slot: &Slot) {
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    loop {
        match slot.state.load(Ordering::Acquire) {
            POSTED => {
                // Claim the part; the caller may have taken it back meanwhile.
                if slot
                    .state
                    .compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                // SAFETY: the claim succeeded: POSTED was stored (Release) after `job` was
                // written, and the poster waits for DONE/PANICKED before it touches `job` or
                // the closure again.
                let job = unsafe { *slot.job.get() };
                let ok = match job {
                    // SAFETY: the closure outlives the job (`Pool::run` waits for us).
                    Some(j) => catch_unwind(AssertUnwindSafe(|| unsafe { (*j.f)(j.part) })).is_ok(),
                    None => true,
                };
                slot.state
                    .store(if ok { DONE } else { PANICKED }, Ordering::Release);
                idle_since = Instant::now();
                spins = 0;
            }
            QUIT => return,
            _ => {
                spins = spins.wrapping_add(1);
                if !spins.is_multiple_of(256) || idle_since.elapsed() < SPIN {
                    core::hint::spin_loop();
                } else {
                    // A post between the load above and this park leaves the unpark token set:
                    // `park` then returns at once.
                    thread::park();
                }
            }
        }
    }
}

impl Pool {
    /// Starts `threads − 1` workers (none for `threads ≤ 1`). It does not wait for them to be
    /// scheduled: until a worker runs, the caller of [`Self::run`] takes its parts back.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        Self::with_gate(threads, None)
    }

    /// [`Self::new`] whose workers, when `gate` is given, wait for it to turn `true` before they
    /// look at their slots (tests use it to hold workers back as a busy machine would).
    fn with_gate(threads: usize, gate: Option<Arc<AtomicBool>>) -> std::io::Result<Pool> {
        let mut workers = Vec::new();
        for w in 1..threads.max(1) {
            let slot = Arc::new(Slot {
                state: AtomicU32::new(IDLE),
                job: UnsafeCell::new(None),
            });
            let s = Arc::clone(&slot);
            let gate = gate.clone();
            let handle = thread::Builder::new()
                .name(format!("edgeloop-worker-{w}"))
                .spawn(move || {
                    if let Some(g) = gate {
                        while !g.load(Ordering::Acquire) {
                            thread::yield_now();
                        }
                    }
                    worker_loop(&s)
                })?;
            workers.push(Worker {
                slot,
                thread: handle.thread().clone(),
                handle: Some(handle),
            });
        }
        Ok(Pool { workers })
    }

    /// Threads that take part in a job (the caller's included).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0)`, …, `f(parts − 1)` (at most [`Self::threads`] parts): part 0 on this thread,
    /// the others on the workers, except those no worker has claimed when part 0 is done, which
    /// this thread runs too; returns when all are done.
    ///
    /// # Panics
    /// If a part panics (after every part has finished).
    pub fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let extra = parts.saturating_sub(1).min(self.workers.len());
        // SAFETY: the lifetime is erased only for the duration of this call: every posted job
        // is waited for below before `f` goes out of scope.
        let erased: *const (dyn Fn(usize) + Sync) = unsafe { core::mem::transmute(f) };
        for (w, worker) in self.workers[..extra].iter().enumerate() {
            // SAFETY: the worker is IDLE (not reading `job`): see `Slot`.
            unsafe {
                *worker.slot.job.get() = Some(Job {
                    f: erased,
                    part: w + 1,
                })
            };
            worker.slot.state.store(POSTED, Ordering::Release);
            worker.thread.unpark();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        let mut panicked = false;
        for (w, worker) in self.workers[..extra].iter().enumerate() {
            // Unclaimed: take the part back and run it here.
            if worker
                .slot
                .state
                .compare_exchange(POSTED, IDLE, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                panicked |= catch_unwind(AssertUnwindSafe(|| f(w + 1))).is_err();
                continue;
            }
            loop {
                match worker.slot.state.load(Ordering::Acquire) {
                    DONE => break,
                    PANICKED => {
                        panicked = true;
                        break;
                    }
                    _ => core::hint::spin_loop(),
                }
            }
            worker.slot.state.store(IDLE, Ordering::Relaxed);
        }
        if let Err(e) = mine {
            std::panic::resume_unwind(e);
        }
        assert!(!panicked, "a part of a pool job panicked");
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for w in &self.workers {
            w.slot.state.store(QUIT, Ordering::Release);
            w.thread.unpark();
        }
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// The rows `[start, end)` of part `part` of `rows` split into `parts` near-equal parts whose
/// boundaries are multiples of `align` (the last part takes the rest).
pub fn part_rows(rows: usize, parts: usize, align: usize, part: usize) -> (usize, usize) {
    let parts = parts.max(1);
    let align = align.max(1);
    let per = rows.div_ceil(parts).div_ceil(align) * align;
    let start = (part * per).min(rows);
    let end = if part + 1 == parts {
        rows
    } else {
        ((part + 1) * per).min(rows)
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_part_runs_once_per_job() {
        let pool = Pool::new(3).expect("spawns");
        assert_eq!(pool.threads(), 3);
        for round in 0..200 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            let parts = 1 + round % 3;
            pool.run(parts, &|p| {
                hits[p].fetch_add(1, Ordering::Relaxed);
            });
            let got: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
            let want: Vec<usize> = (0..3).map(|p| usize::from(p < parts)).collect();
            assert_eq!(got, want, "round {round}");
            if round % 50 == 0 {
                // Let the worker park, then wake it with the next job.
                thread::sleep(SPIN * 3);
            }
        }
    }

    #[test]
    fn parts_no_worker_claims_run_on_the_caller() {
        // Workers held back (not yet scheduled): every part runs on the calling thread, once.
        let gate = Arc::new(AtomicBool::new(false));
        let pool = Pool::with_gate(3, Some(Arc::clone(&gate))).expect("spawns");
        let me = thread::current().id();
        for _ in 0..50 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(3, &|p| {
                assert_eq!(thread::current().id(), me, "part {p} ran on a held worker");
                hits[p].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
        // Released, the workers take part again (each part still runs exactly once).
        gate.store(true, Ordering::Release);
        let others = AtomicUsize::new(0);
        for _ in 0..2000 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(3, &|p| {
                if thread::current().id() != me {
                    others.fetch_add(1, Ordering::Relaxed);
                }
                // Long enough for a spinning worker to claim its part.
                thread::sleep(Duration::from_micros(20));
                hits[p].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            if others.load(Ordering::Relaxed) > 0 {
                break;
            }
        }
        assert!(
            others.load(Ordering::Relaxed) > 0,
            "no worker ever ran a part"
        );
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_still_works() {
        let pool = Pool::new(2).expect("spawns");
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(2, &|p| {
                if p == 1 {
                    panic!("part 1 fails");
                }
            })
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.run(2, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn parts_cover_the_rows_with_aligned_boundaries() {
        for rows in 0..70 {
            for parts in 1..5 {
                for align in [1, 4, 16] {
                    let mut next = 0;
                    for p in 0..parts {
                        let (s, e) = part_rows(rows, parts, align, p);
                        assert_eq!(s, next.min(rows), "{rows} {parts} {align} {p}");
                        assert!(e >= s && (s % align == 0 || s == rows));
                        next = e;
                    }
                    assert_eq!(next, rows);
                }
            }
        }
    }
}

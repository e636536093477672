//! Random multi-fault sequences against [`FlashLog`] on [`SimFlash`] (issue 12, fault injection).
//!
//! Each of 10,000 seeded runs picks a random geometry (program word, sector size, sector count,
//! erase order) and plays a random sequence of appends, power cuts armed at a random byte of
//! the work still to come (so they land mid-program, mid-commit, mid-header or mid-erase),
//! recoveries (power back + mount) and reads, several faults per run. A shadow model follows
//! every record: which attempt wrote it, its sequence number and the sector it went to. A record
//! leaves the model only when the flash erases its sector (the simulator counts erases), and
//! only the oldest records may leave that way. After every read:
//!
//! * zero committed records lost: every acknowledged record still in the model is returned;
//! * zero corrupted records: every returned record is byte-exact one of the payloads the test
//!   wrote, under the sequence number that append was given (an append the power cut may still
//!   have completed, or a record whose sector erase was cut before reaching it, may come back —
//!   intact — and is adopted by the model);
//! * sequence numbers are consecutive in a full read, strictly increasing through a cursor kept
//!   across appends, and acknowledged sequence numbers strictly increase across remounts.

use std::collections::BTreeMap;

use super::*;
use crate::telemetry::flash::{EraseOrder, SimFlash};

const RUNS: u64 = 10_000;
const OPS_PER_RUN: usize = 64;

/// SplitMix64: a small deterministic generator (no dependency, same sequence everywhere).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// One call to `append`: what it wrote and where.
struct Attempt {
    seq: u32,
    payload: Vec<u8>,
    /// The sector the record went to (when the append got as far as writing it).
    sector: Option<usize>,
    acked: bool,
}

/// Fault coverage over all runs.
#[derive(Default, Debug)]
struct Coverage {
    appends_acked: u64,
    cuts_mid_program: u64,
    cuts_mid_erase: u64,
    recoveries: u64,
    adopted_unacked: u64,
    survived_erase: u64,
    reads: u64,
}

struct Run<'m> {
    rng: SplitMix,
    log: Option<FlashLog<SimFlash<'m>>>,
    attempts: Vec<Attempt>,
    /// Records the model holds: seq → attempt index.
    live: BTreeMap<u32, usize>,
    /// Attempts that failed since the last mount (their record may or may not be on flash).
    unresolved: Vec<usize>,
    /// Attempts whose sector was erased (a cut erase may have left them intact).
    erased: Vec<usize>,
    last_acked: Option<u32>,
    /// An incremental reader: its cursor and the last sequence number it returned.
    reader: Option<(LogCursor, Option<u32>)>,
    armed: bool,
    faulted: bool,
    cov: Coverage,
    ctx: String,
}

impl<'m> Run<'m> {
    fn log(&mut self) -> &mut FlashLog<SimFlash<'m>> {
        self.log.as_mut().expect("mounted")
    }

    fn erase_counts(&mut self) -> Vec<u32> {
        self.log().flash.erase_counts().to_vec()
    }

    fn payload(&mut self, id: usize) -> Vec<u8> {
        let max = self.log().max_payload();
        // Mostly small records, sometimes up to a whole sector's worth.
        let len = if self.rng.below(8) == 0 {
            4 + self.rng.below(max as u64 - 3) as usize
        } else {
            4 + self.rng.below(40.min(max as u64 - 3)) as usize
        };
        let mut p = Vec::with_capacity(len);
        p.extend_from_slice(&(id as u32).to_le_bytes());
        while p.len() < len {
            p.push(self.rng.next() as u8);
        }
        p
    }

    /// Drops the records of every sector erased since `before` from the model; only the
    /// oldest records may go.
    fn evict_erased(&mut self, before: &[u32]) {
        let after = self.erase_counts();
        for (s, (a, b)) in after.iter().zip(before).enumerate() {
            if a == b {
                continue;
            }
            let gone: Vec<u32> = self
                .live
                .iter()
                .filter(|(_, &id)| self.attempts[id].sector == Some(s))
                .map(|(&seq, _)| seq)
                .collect();
            for seq in &gone {
                let id = self.live.remove(seq).expect("present");
                self.erased.push(id);
            }
            if let (Some(&max_gone), Some((&min_kept, _))) = (gone.last(), self.live.iter().next())
            {
                assert!(
                    max_gone < min_kept,
                    "{}: erasing sector {s} evicted seq {max_gone} while older... seq {min_kept} stays",
                    self.ctx
                );
            }
        }
    }

    fn append(&mut self) {
        let id = self.attempts.len();
        let payload = self.payload(id);
        let seq = self.log().next_seq();
        let before = self.erase_counts();
        let ops_before = self.log().flash.byte_ops();
        let result = self.log().append(&payload);
        let sector = self.log().cur.map(|c| c.sector);
        self.attempts.push(Attempt {
            seq,
            payload,
            sector,
            acked: false,
        });
        self.evict_erased(&before);
        match result {
            Ok(got) => {
                assert!(
                    !self.faulted,
                    "{}: append succeeded after a fault",
                    self.ctx
                );
                assert_eq!(got, seq, "{}: append returned another seq", self.ctx);
                if let Some(last) = self.last_acked {
                    assert!(
                        got > last,
                        "{}: acked seq {got} after {last}: not monotonic",
                        self.ctx
                    );
                }
                self.last_acked = Some(got);
                self.attempts[id].acked = true;
                self.live.insert(got, id);
                self.cov.appends_acked += 1;
            }
            Err(TelemetryError::FlashPowerLoss) => {
                assert!(self.armed, "{}: power loss without a cut", self.ctx);
                if !self.faulted {
                    // Where did the cut land? An erase left its sector not blank.
                    let after = self.erase_counts();
                    let erased_now = (0..after.len()).find(|&s| after[s] != before[s]);
                    let flash = &self.log().flash;
                    let (size, mem) = (flash.sector_size(), flash.contents());
                    match erased_now {
                        Some(s) if mem[s * size..(s + 1) * size].iter().any(|&b| b != 0xFF) => {
                            self.cov.cuts_mid_erase += 1
                        }
                        _ => self.cov.cuts_mid_program += 1,
                    }
                }
                self.faulted = true;
                self.unresolved.push(id);
            }
            Err(TelemetryError::LogNeedsRemount) => {
                assert!(self.faulted, "{}: needs remount without a fault", self.ctx);
                assert_eq!(
                    self.log().flash.byte_ops(),
                    ops_before,
                    "{}: a refused append wrote",
                    self.ctx
                );
            }
            Err(e) => panic!("{}: unexpected append error {e:?}", self.ctx),
        }
    }

    /// Power back on and mount again (a reboot), then check everything.
    fn recover(&mut self) {
        let mut flash = self.log.take().expect("mounted").into_inner();
        flash.restore_power();
        self.armed = false;
        self.faulted = false;
        let log = FlashLog::mount(flash).unwrap_or_else(|e| panic!("{}: mount: {e:?}", self.ctx));
        self.log = Some(log);
        self.reader = None;
        self.cov.recoveries += 1;
        self.check_full_read();
        self.unresolved.clear();
    }

    /// Checks one returned record against what the test wrote; returns its attempt.
    fn identify(&self, seq: u32, data: &[u8]) -> usize {
        assert!(
            data.len() >= 4,
            "{}: seq {seq}: {}-byte record the test never wrote",
            self.ctx,
            data.len()
        );
        let id = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let a = self.attempts.get(id).unwrap_or_else(|| {
            panic!(
                "{}: seq {seq}: corrupted record (no attempt {id})",
                self.ctx
            )
        });
        assert!(
            a.payload == data && a.seq == seq,
            "{}: seq {seq}: corrupted record (attempt {id} wrote seq {} with {} bytes, read {} bytes)",
            self.ctx,
            a.seq,
            a.payload.len(),
            data.len()
        );
        id
    }

    /// A full read from the oldest record: exactly the model's records, plus records the
    /// model let go that are provably intact (adopted back).
    fn check_full_read(&mut self) {
        self.cov.reads += 1;
        let log = self.log.as_mut().expect("mounted");
        let mut cursor = log.cursor();
        let mut buf = vec![0u8; log.max_payload()];
        let mut raw: Vec<(u32, Vec<u8>)> = Vec::new();
        loop {
            match log.read_next(&mut cursor, &mut buf) {
                Ok(Some((seq, len))) => raw.push((seq, buf[..len].to_vec())),
                Ok(None) => break,
                Err(e) => panic!("{}: read: {e:?}", self.ctx),
            }
        }
        let got: Vec<(u32, usize)> = raw
            .iter()
            .map(|(seq, data)| (*seq, self.identify(*seq, data)))
            .collect();
        for w in got.windows(2) {
            assert_eq!(
                w[1].0,
                w[0].0.wrapping_add(1),
                "{}: sequence gap or reorder in a full read",
                self.ctx
            );
        }
        for (&seq, &id) in &self.live {
            assert!(
                got.iter().any(|&(s, i)| s == seq && i == id),
                "{}: lost committed record seq {seq} (acked: {}); read back {:?}",
                self.ctx,
                self.attempts[id].acked,
                got.iter().map(|g| g.0).collect::<Vec<_>>()
            );
        }
        for &(seq, id) in &got {
            if self.live.contains_key(&seq) {
                continue;
            }
            if self.unresolved.contains(&id) {
                self.cov.adopted_unacked += 1;
            } else if self.erased.contains(&id) {
                self.cov.survived_erase += 1;
            } else {
                panic!(
                    "{}: seq {seq} (attempt {id}) came back from nowhere",
                    self.ctx
                );
            }
            self.live.insert(seq, id);
        }
        if let Some((&max, _)) = self.live.iter().next_back() {
            self.last_acked = Some(self.last_acked.map_or(max, |l| l.max(max)));
        }
        assert_eq!(
            self.log().next_seq(),
            self.last_acked.map_or(self.log().next_seq(), |l| l + 1),
            "{}: next seq does not follow the newest record",
            self.ctx
        );
    }

    /// The incremental reader: continues from where it stopped, across appends and evictions.
    fn check_incremental_read(&mut self) {
        let log = self.log.as_mut().expect("mounted");
        let (mut cursor, mut last) = self.reader.take().unwrap_or((log.cursor(), None));
        let mut buf = vec![0u8; log.max_payload()];
        let steps = 1 + self.rng.below(6);
        for _ in 0..steps {
            let log = self.log.as_mut().expect("mounted");
            match log.read_next(&mut cursor, &mut buf) {
                Ok(Some((seq, len))) => {
                    self.identify(seq, &buf[..len]);
                    if let Some(l) = last {
                        assert!(seq > l, "{}: cursor went from {l} back to {seq}", self.ctx);
                    }
                    let lo = last.map_or(0, |l| l + 1);
                    if let Some((&skipped, _)) = self.live.range(lo..seq).next() {
                        panic!(
                            "{}: cursor skipped live seq {skipped} (read {seq})",
                            self.ctx
                        );
                    }
                    last = Some(seq);
                }
                Ok(None) => break,
                Err(e) => panic!("{}: read: {e:?}", self.ctx),
            }
        }
        self.reader = Some((cursor, last));
    }
}

fn one_run(seed: u64, cov: &mut Coverage) {
    let mut rng = SplitMix(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    let word = rng.pick(&[1usize, 2, 4, 8, 16]);
    let sector_size = rng.pick(&[128usize, 256, 512]);
    let sectors = 2 + rng.below(4) as usize;
    let order = rng.pick(&[EraseOrder::Ascending, EraseOrder::Descending]);
    let mut mem = vec![0xFFu8; sector_size * sectors];
    let mut flash = SimFlash::new(&mut mem, sector_size, word).expect("geometry");
    flash.set_erase_order(order);
    let ctx = format!("seed {seed} (word {word}, {sectors} x {sector_size} B, {order:?})");
    let log = FlashLog::mount(flash).expect("blank mount");
    let mut run = Run {
        rng,
        log: Some(log),
        attempts: Vec::new(),
        live: BTreeMap::new(),
        unresolved: Vec::new(),
        erased: Vec::new(),
        last_acked: None,
        reader: None,
        armed: false,
        faulted: false,
        cov: Coverage::default(),
        ctx: String::new(),
    };
    for op in 0..OPS_PER_RUN {
        run.ctx = format!("{ctx} op {op}");
        let roll = run.rng.below(100);
        match roll {
            0..=54 => run.append(),
            55..=72 if !run.armed => {
                // Often within the next record or two; otherwise within the next couple of
                // sectors' worth of bytes (an erase costs a whole sector).
                let at = if run.rng.below(2) == 0 {
                    run.rng.below(128)
                } else {
                    run.rng.below(2 * sector_size as u64 + 64)
                };
                run.log().flash.cut_power_after(at);
                run.armed = true;
            }
            73..=84 => run.recover(),
            _ if !run.faulted => {
                if run.rng.below(2) == 0 {
                    run.check_full_read();
                } else {
                    run.check_incremental_read();
                }
            }
            _ => {}
        }
    }
    run.ctx = format!("{ctx} end");
    run.recover();
    // The recovered log still takes and returns records.
    run.append();
    run.check_full_read();
    cov.appends_acked += run.cov.appends_acked;
    cov.cuts_mid_program += run.cov.cuts_mid_program;
    cov.cuts_mid_erase += run.cov.cuts_mid_erase;
    cov.recoveries += run.cov.recoveries;
    cov.adopted_unacked += run.cov.adopted_unacked;
    cov.survived_erase += run.cov.survived_erase;
    cov.reads += run.cov.reads;
}

/// 10,000 seeded random multi-fault runs: see the module documentation for the invariants.
#[test]
fn random_multi_fault_sequences_lose_and_corrupt_nothing() {
    let mut cov = Coverage::default();
    for seed in 0..RUNS {
        one_run(seed, &mut cov);
    }
    println!("{RUNS} runs: {cov:?}");
    // The sequences really exercise what they claim to.
    assert!(cov.cuts_mid_program > 15_000, "{cov:?}");
    assert!(cov.cuts_mid_erase > 10_000, "{cov:?}");
    assert!(cov.recoveries > 70_000, "{cov:?}");
    assert!(cov.appends_acked > 150_000, "{cov:?}");
    assert!(cov.survived_erase > 0 && cov.adopted_unacked > 0, "{cov:?}");
}

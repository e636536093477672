//! Append-only telemetry log on NOR flash, safe against power loss at any byte.
//!
//! Layout (all integers little-endian; `U(n)` is `n` rounded up to the program word):
//!
//! * Sector header, `U(16)` bytes: `magic u32`, `sector_seq u32` (increases by one per opened
//!   sector), `first_seq u32` (log sequence number of the sector's first record), `crc32` of the
//!   previous 12 bytes.
//! * Record: body `U(8 + len + 4)`: `len u16`, `!len u16`, `seq u32`, `payload`, `crc32` of
//!   everything before it in the body; then a commit marker `U(4)`: `COMMIT u32`, programmed only
//!   after the body. A record counts only when its length check, CRC and commit marker are valid.
//!   [`FlashLog::append`] returns `Ok` only after the commit marker is programmed.
//!
//! Sectors are used round-robin (even wear); opening a sector erases it, which evicts the oldest
//! records. Mounting scans every sector: valid headers with consecutive `sector_seq` whose records
//! chain (`last seq + 1 == next sector's first_seq`) form the log; a torn record ends its sector's
//! usable space (the next append opens a new sector); a half-erased sector is left out and erased
//! again before reuse. Nothing that fails a check is ever returned.

use super::flash::NorFlash;
use super::frame::CRC32;
use super::TelemetryError;

const MAGIC: u32 = 0x4c54_4c45; // "ELTL"
const COMMIT: u32 = 0x5aa5_c33c;
/// Staging buffer for programs; program words up to this size are supported.
const STAGE: usize = 64;

/// Where [`FlashLog::read_next`] continues from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    sector_seq: u32,
    sector: usize,
    pos: usize,
}

#[derive(Debug, Clone, Copy)]
struct SectorHeader {
    sector_seq: u32,
    first_seq: u32,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    sector: usize,
    sector_seq: u32,
    pos: usize,
    /// No more records may go in this sector (it ends in a torn or unerased area).
    closed: bool,
}

enum Parsed {
    Record {
        seq: u32,
        len: usize,
        next: usize,
    },
    /// Erased space: no more records in this sector.
    End,
    /// Anything else: a torn or corrupted record.
    Invalid,
}

/// Result of scanning one sector's records.
struct Scan {
    count: u32,
    end: usize,
    clean_end: bool,
}

/// An append-only log of byte records on a [`NorFlash`].
pub struct FlashLog<F: NorFlash> {
    flash: F,
    word: usize,
    sector_size: usize,
    sectors: usize,
    header_len: usize,
    cur: Option<Current>,
    /// Oldest sector of the log and its `sector_seq`.
    oldest: Option<(usize, u32)>,
    next_seq: u32,
    needs_remount: bool,
}

fn round_up(n: usize, w: usize) -> usize {
    n.div_ceil(w) * w
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl<F: NorFlash> FlashLog<F> {
    /// Mounts the log on `flash`, recovering it after any power loss. A blank flash gives an empty log.
    pub fn mount(flash: F) -> Result<Self, TelemetryError> {
        let word = flash.word_size();
        let sector_size = flash.sector_size();
        let sectors = flash.sector_count();
        let header_len = round_up(16, word.max(1));
        if sectors < 2
            || !word.is_power_of_two()
            || word > STAGE
            || !sector_size.is_multiple_of(word)
            || sector_size < header_len + round_up(13, word) + round_up(4, word)
        {
            return Err(TelemetryError::LogBadGeometry);
        }
        let mut log = Self {
            flash,
            word,
            sector_size,
            sectors,
            header_len,
            cur: None,
            oldest: None,
            next_seq: 0,
            needs_remount: false,
        };
        // The newest sector: the valid header with the largest sector_seq.
        let mut newest: Option<(usize, SectorHeader)> = None;
        for s in 0..sectors {
            if let Some(h) = log.read_header(s)? {
                if newest.is_none_or(|(_, n)| h.sector_seq > n.sector_seq) {
                    newest = Some((s, h));
                }
            }
        }
        let Some((newest_idx, newest_h)) = newest else {
            return Ok(log);
        };
        let scan = log.scan(newest_idx, newest_h)?;
        let closed = !scan.clean_end || !log.is_erased(newest_idx, scan.end)?;
        log.cur = Some(Current {
            sector: newest_idx,
            sector_seq: newest_h.sector_seq,
            pos: scan.end,
            closed,
        });
        log.next_seq = newest_h.first_seq.wrapping_add(scan.count);
        // Walk back while sectors chain into the one after them.
        let mut oldest = (newest_idx, newest_h);
        for _ in 1..sectors {
            let prev = (oldest.0 + sectors - 1) % sectors;
            let Some(h) = log.read_header(prev)? else {
                break;
            };
            if h.sector_seq.wrapping_add(1) != oldest.1.sector_seq {
                break;
            }
            let s = log.scan(prev, h)?;
            if h.first_seq.wrapping_add(s.count) != oldest.1.first_seq {
                break;
            }
            oldest = (prev, h);
        }
        log.oldest = Some((oldest.0, oldest.1.sector_seq));
        Ok(log)
    }

    /// Gives the flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Sequence number the next appended record will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Largest payload one record may have.
    pub fn max_payload(&self) -> usize {
        let room = self.sector_size - self.header_len - round_up(4, self.word);
        // Largest len with round_up(12 + len, word) <= room.
        (room / self.word * self.word - 12).min(0xFFFE)
    }

    /// Appends `payload` and returns its sequence number once it is durable (commit marker
    /// programmed). After a flash error the log refuses further appends until mounted again.
    pub fn append(&mut self, payload: &[u8]) -> Result<u32, TelemetryError> {
        if self.needs_remount {
            return Err(TelemetryError::LogNeedsRemount);
        }
        let max = self.max_payload();
        if payload.len() > max {
            return Err(TelemetryError::LogRecordTooLarge {
                len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
                max: max as u32,
            });
        }
        let result = self.append_inner(payload);
        if result.is_err() {
            self.needs_remount = true;
        }
        result
    }

    fn append_inner(&mut self, payload: &[u8]) -> Result<u32, TelemetryError> {
        let body = round_up(12 + payload.len(), self.word);
        let need = body + round_up(4, self.word);
        let cur = match self.cur {
            Some(c) if !c.closed && c.pos + need <= self.sector_size => c,
            _ => self.open_next_sector()?,
        };
        let seq = self.next_seq;
        let len = payload.len() as u16;
        let mut head = [0u8; 8];
        head[..2].copy_from_slice(&len.to_le_bytes());
        head[2..4].copy_from_slice(&(!len).to_le_bytes());
        head[4..].copy_from_slice(&seq.to_le_bytes());
        let mut digest = CRC32.digest();
        digest.update(&head);
        digest.update(payload);
        let crc = digest.finalize().to_le_bytes();
        let base = cur.sector * self.sector_size + cur.pos;
        self.program_stream(base, &[&head, payload, &crc])?;
        self.program_stream(base + body, &[&COMMIT.to_le_bytes()])?;
        self.cur = Some(Current {
            pos: cur.pos + need,
            ..cur
        });
        self.next_seq = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Erases the next sector in the ring (evicting its records if it is the oldest) and writes its header.
    fn open_next_sector(&mut self) -> Result<Current, TelemetryError> {
        let (sector, sector_seq) = match self.cur {
            Some(c) => ((c.sector + 1) % self.sectors, c.sector_seq.wrapping_add(1)),
            None => (0, 1),
        };
        match self.oldest {
            Some((o, oseq)) if o == sector => {
                self.oldest = Some(((o + 1) % self.sectors, oseq.wrapping_add(1)));
            }
            None => self.oldest = Some((sector, sector_seq)),
            _ => {}
        }
        if !self.is_erased(sector, 0)? {
            self.flash.erase_sector(sector)?;
        }
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&sector_seq.to_le_bytes());
        h[8..12].copy_from_slice(&self.next_seq.to_le_bytes());
        let crc = CRC32.checksum(&h[..12]);
        h[12..].copy_from_slice(&crc.to_le_bytes());
        self.program_stream(sector * self.sector_size, &[&h])?;
        let cur = Current {
            sector,
            sector_seq,
            pos: self.header_len,
            closed: false,
        };
        self.cur = Some(cur);
        if self.oldest.is_some_and(|(o, _)| o == sector) {
            self.oldest = Some((sector, sector_seq));
        }
        Ok(cur)
    }

    /// Programs the concatenation of `parts` at `offset`, padded with `0xFF` to whole words.
    fn program_stream(&mut self, offset: usize, parts: &[&[u8]]) -> Result<(), TelemetryError> {
        let mut stage = [0xFFu8; STAGE];
        let mut fill = 0;
        let mut at = offset;
        for part in parts {
            for &b in *part {
                stage[fill] = b;
                fill += 1;
                if fill == STAGE {
                    self.flash.program(at, &stage)?;
                    at += STAGE;
                    stage = [0xFF; STAGE];
                    fill = 0;
                }
            }
        }
        if fill > 0 {
            let n = round_up(fill, self.word);
            self.flash.program(at, &stage[..n])?;
        }
        Ok(())
    }

    fn read_header(&mut self, sector: usize) -> Result<Option<SectorHeader>, TelemetryError> {
        let mut h = [0u8; 16];
        self.flash.read(sector * self.sector_size, &mut h)?;
        if le32(&h[..4]) != MAGIC || CRC32.checksum(&h[..12]) != le32(&h[12..]) {
            return Ok(None);
        }
        Ok(Some(SectorHeader {
            sector_seq: le32(&h[4..8]),
            first_seq: le32(&h[8..12]),
        }))
    }

    /// True when every byte of `sector` from `from` on is `0xFF`.
    fn is_erased(&mut self, sector: usize, from: usize) -> Result<bool, TelemetryError> {
        let mut chunk = [0u8; 32];
        let mut pos = from;
        while pos < self.sector_size {
            let n = chunk.len().min(self.sector_size - pos);
            self.flash
                .read(sector * self.sector_size + pos, &mut chunk[..n])?;
            if chunk[..n].iter().any(|&b| b != 0xFF) {
                return Ok(false);
            }
            pos += n;
        }
        Ok(true)
    }

    /// Checks the record at `pos`; copies its payload into `out` when given (and large enough).
    fn parse(
        &mut self,
        sector: usize,
        pos: usize,
        mut out: Option<&mut [u8]>,
    ) -> Result<Parsed, TelemetryError> {
        let base = sector * self.sector_size;
        if pos + round_up(13, self.word) + round_up(4, self.word) > self.sector_size {
            return Ok(Parsed::End);
        }
        let mut head = [0u8; 8];
        self.flash.read(base + pos, &mut head)?;
        if head.iter().all(|&b| b == 0xFF) {
            return Ok(Parsed::End);
        }
        let len = u16::from_le_bytes([head[0], head[1]]);
        if !len != u16::from_le_bytes([head[2], head[3]]) {
            return Ok(Parsed::Invalid);
        }
        let len = usize::from(len);
        let body = round_up(12 + len, self.word);
        let need = body + round_up(4, self.word);
        if pos + need > self.sector_size {
            return Ok(Parsed::Invalid);
        }
        let mut digest = CRC32.digest();
        digest.update(&head);
        let mut chunk = [0u8; 32];
        let mut done = 0;
        while done < len {
            let n = chunk.len().min(len - done);
            self.flash.read(base + pos + 8 + done, &mut chunk[..n])?;
            digest.update(&chunk[..n]);
            if let Some(o) = out.as_deref_mut() {
                if let Some(dst) = o.get_mut(done..done + n) {
                    dst.copy_from_slice(&chunk[..n]);
                }
            }
            done += n;
        }
        let mut tail = [0u8; 4];
        self.flash.read(base + pos + 8 + len, &mut tail)?;
        if digest.finalize() != le32(&tail) {
            return Ok(Parsed::Invalid);
        }
        self.flash.read(base + pos + body, &mut tail)?;
        if le32(&tail) != COMMIT {
            return Ok(Parsed::Invalid);
        }
        Ok(Parsed::Record {
            seq: le32(&head[4..]),
            len,
            next: pos + need,
        })
    }

    /// Counts the valid, consecutively numbered records of a sector.
    fn scan(&mut self, sector: usize, h: SectorHeader) -> Result<Scan, TelemetryError> {
        let mut pos = self.header_len;
        let mut count = 0u32;
        loop {
            match self.parse(sector, pos, None)? {
                Parsed::Record { seq, next, .. } if seq == h.first_seq.wrapping_add(count) => {
                    count += 1;
                    pos = next;
                }
                Parsed::End => {
                    return Ok(Scan {
                        count,
                        end: pos,
                        clean_end: true,
                    })
                }
                _ => {
                    return Ok(Scan {
                        count,
                        end: pos,
                        clean_end: false,
                    })
                }
            }
        }
    }

    /// A cursor at the oldest record.
    pub fn cursor(&self) -> LogCursor {
        let (sector, sector_seq) = self.oldest.unwrap_or((0, 0));
        LogCursor {
            sector_seq,
            sector,
            pos: 0,
        }
    }

    /// Reads the record at `cursor` into `buf` and advances the cursor. Returns `(seq, len)`, or
    /// `None` at the end of the log. `buf` must hold [`FlashLog::max_payload`] bytes or the record.
    pub fn read_next(
        &mut self,
        cursor: &mut LogCursor,
        buf: &mut [u8],
    ) -> Result<Option<(u32, usize)>, TelemetryError> {
        let (Some(cur), Some((oldest, oldest_seq))) = (self.cur, self.oldest) else {
            return Ok(None);
        };
        // Records the cursor pointed at may have been evicted since.
        if cursor.sector_seq.wrapping_sub(oldest_seq) > cur.sector_seq.wrapping_sub(oldest_seq) {
            *cursor = LogCursor {
                sector_seq: oldest_seq,
                sector: oldest,
                pos: 0,
            };
        }
        loop {
            if cursor.pos == 0 {
                match self.read_header(cursor.sector)? {
                    Some(h) if h.sector_seq == cursor.sector_seq => cursor.pos = self.header_len,
                    _ => return Ok(None),
                }
            }
            if cursor.sector_seq == cur.sector_seq && cursor.pos >= cur.pos {
                return Ok(None);
            }
            match self.parse(cursor.sector, cursor.pos, Some(&mut *buf))? {
                Parsed::Record { seq, len, next } => {
                    if len > buf.len() {
                        return Err(TelemetryError::OutputTooSmall {
                            needed: len as u32,
                            given: u32::try_from(buf.len()).unwrap_or(u32::MAX),
                        });
                    }
                    cursor.pos = next;
                    return Ok(Some((seq, len)));
                }
                Parsed::End | Parsed::Invalid => {
                    if cursor.sector_seq == cur.sector_seq {
                        return Ok(None);
                    }
                    cursor.sector = (cursor.sector + 1) % self.sectors;
                    cursor.sector_seq = cursor.sector_seq.wrapping_add(1);
                    cursor.pos = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::flash::{EraseOrder, SimFlash};

    const SECTOR: usize = 256;
    const SECTORS: usize = 4;

    fn payload(i: u32) -> Vec<u8> {
        let len = 1 + (i as usize * 37) % 61;
        (0..len)
            .map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8))
            .collect()
    }

    fn read_all<F: NorFlash>(log: &mut FlashLog<F>) -> Vec<(u32, Vec<u8>)> {
        let mut cursor = log.cursor();
        let mut buf = vec![0u8; log.max_payload()];
        let mut out = Vec::new();
        while let Some((seq, len)) = log.read_next(&mut cursor, &mut buf).unwrap() {
            out.push((seq, buf[..len].to_vec()));
        }
        out
    }

    #[test]
    fn appends_read_back_across_rotation_and_remount() {
        let mut mem = vec![0xFFu8; SECTOR * SECTORS];
        let flash = SimFlash::new(&mut mem, SECTOR, 4).unwrap();
        let mut log = FlashLog::mount(flash).unwrap();
        assert!(read_all(&mut log).is_empty());
        for i in 0..100 {
            assert_eq!(log.append(&payload(i)).unwrap(), i);
        }
        let got = read_all(&mut log);
        assert!(
            got.len() > 5 && got.len() < 100,
            "rotation evicts old records"
        );
        let first = got[0].0;
        for (k, (seq, p)) in got.iter().enumerate() {
            assert_eq!(*seq, first + k as u32);
            assert_eq!(*p, payload(*seq));
        }
        assert_eq!(got.last().unwrap().0, 99);
        let flash = log.into_inner();
        let counts = flash.erase_counts().to_vec();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "wear: {counts:?}"
        );
        let mut log = FlashLog::mount(flash).unwrap();
        assert_eq!(read_all(&mut log), got);
        assert_eq!(log.append(b"after").unwrap(), 100);
    }

    #[test]
    fn rejects_oversized_records_and_bad_geometry() {
        let mut mem = vec![0xFFu8; SECTOR * SECTORS];
        let mut log = FlashLog::mount(SimFlash::new(&mut mem, SECTOR, 4).unwrap()).unwrap();
        let max = log.max_payload();
        assert!(log.append(&vec![7u8; max]).is_ok());
        assert!(matches!(
            log.append(&vec![7u8; max + 1]),
            Err(TelemetryError::LogRecordTooLarge { .. })
        ));
        let mut one = vec![0xFFu8; SECTOR];
        assert!(matches!(
            FlashLog::mount(SimFlash::new(&mut one, SECTOR, 4).unwrap()),
            Err(TelemetryError::LogBadGeometry)
        ));
    }

    #[test]
    fn garbage_flash_mounts_empty_and_is_reused() {
        let mut mem: Vec<u8> = (0..SECTOR * SECTORS).map(|i| (i * 7 + 3) as u8).collect();
        let mut log = FlashLog::mount(SimFlash::new(&mut mem, SECTOR, 4).unwrap()).unwrap();
        assert!(read_all(&mut log).is_empty());
        for i in 0..10 {
            log.append(&payload(i)).unwrap();
        }
        assert_eq!(read_all(&mut log).len(), 10);
    }

    /// The workload used by the power-cut test, run until the flash fails.
    /// Returns the sequence numbers acknowledged (append returned Ok).
    fn workload(log: &mut FlashLog<SimFlash<'_>>, n: u32) -> Vec<u32> {
        let mut acked = Vec::new();
        for i in 0..n {
            match log.append(&payload(i)) {
                Ok(seq) => {
                    assert_eq!(seq, i);
                    acked.push(seq);
                }
                Err(_) => break,
            }
        }
        acked
    }

    /// Cuts power at every byte of every program and erase of a workload that rotates through
    /// all sectors twice, for both erase orders (and with a half-programmed torn byte at the cut).
    /// After each cut: every acknowledged record that an uninterrupted run would still hold is
    /// returned, every returned record is byte-exact, sequence numbers are consecutive, and the
    /// recovered log accepts and returns new records.
    #[test]
    fn power_cut_at_every_byte_keeps_acknowledged_records() {
        const N: u32 = 40;
        // Uninterrupted run: the records held after each append, and the total byte cost.
        let mut mem = vec![0xFFu8; SECTOR * SECTORS];
        let mut log = FlashLog::mount(SimFlash::new(&mut mem, SECTOR, 4).unwrap()).unwrap();
        let mut held_after: Vec<Vec<u32>> = Vec::new();
        for i in 0..N {
            log.append(&payload(i)).unwrap();
            held_after.push(read_all(&mut log).iter().map(|r| r.0).collect());
        }
        let total = log.into_inner().byte_ops();
        assert!(held_after.last().unwrap()[0] > 0, "workload must rotate");

        let mut cuts = 0;
        for order in [EraseOrder::Ascending, EraseOrder::Descending] {
            for cut in 0..=total {
                let mut mem = vec![0xFFu8; SECTOR * SECTORS];
                let mut flash = SimFlash::new(&mut mem, SECTOR, 4).unwrap();
                flash.set_erase_order(order);
                flash.cut_power_after(cut);
                let mut log = FlashLog::mount(flash).unwrap();
                let acked = workload(&mut log, N);
                let in_flight = acked.len() as u32;
                let mut flash = log.into_inner();
                flash.restore_power();
                let mut log = FlashLog::mount(flash).unwrap();
                let got = read_all(&mut log);
                for (seq, p) in &got {
                    assert!(*seq <= in_flight, "cut {cut}: unknown seq {seq}");
                    assert_eq!(*p, payload(*seq), "cut {cut}: corrupted record {seq}");
                }
                assert!(
                    got.windows(2).all(|w| w[1].0 == w[0].0 + 1),
                    "cut {cut}: gap"
                );
                if in_flight < N {
                    cuts += 1;
                    // Records an uninterrupted append of `in_flight` would keep, among those acked.
                    let must: Vec<u32> = held_after[in_flight as usize]
                        .iter()
                        .copied()
                        .filter(|s| *s < in_flight)
                        .collect();
                    for s in must {
                        assert!(
                            got.iter().any(|r| r.0 == s),
                            "cut {cut} ({order:?}): lost acked {s}"
                        );
                    }
                }
                let next = got.last().map_or(0, |r| r.0 + 1);
                assert_eq!(log.append(b"resume").unwrap(), next, "cut {cut}");
                let again = read_all(&mut log);
                assert_eq!(again.last().unwrap(), &(next, b"resume".to_vec()));
            }
        }
        assert!(cuts > 2000, "only {cuts} cut points exercised");
    }
}

#[cfg(test)]
mod fault_tests;

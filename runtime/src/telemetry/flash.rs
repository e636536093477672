//! NOR-like flash: erase by sector (to `0xFF`), program by word (bits only go 1 → 0), and a RAM
//! simulator with power-cut injection for tests.

use super::TelemetryError;

/// A NOR-like flash device, or a region of one reserved for the telemetry log.
///
/// Offsets are relative to the start of the region. Implementations for real parts wrap the
/// vendor's flash driver; [`SimFlash`] simulates one in RAM.
pub trait NorFlash {
    /// Bytes per erase sector.
    fn sector_size(&self) -> usize;
    /// Number of sectors.
    fn sector_count(&self) -> usize;
    /// Program granularity in bytes (a power of two); programs are aligned to it.
    fn word_size(&self) -> usize;
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TelemetryError>;
    /// Sets every byte of `sector` to `0xFF`.
    fn erase_sector(&mut self, sector: usize) -> Result<(), TelemetryError>;
    /// Programs `data` at `offset`; both are aligned to [`NorFlash::word_size`], and the words
    /// must be erased.
    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), TelemetryError>;
}

/// Order in which [`SimFlash`] erases the bytes of a sector (matters when power is cut mid-erase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseOrder {
    /// Lowest address first.
    Ascending,
    /// Highest address first.
    Descending,
}

/// Most sectors a [`SimFlash`] tracks erase counts for.
pub const SIM_MAX_SECTORS: usize = 64;

/// A NOR flash simulated over a caller-provided buffer, with power-cut injection.
///
/// Every programmed or erased byte costs one unit of the power budget. When the budget runs out
/// in the middle of an operation, the bytes before the cut are done, the byte at the cut is left
/// half-changed (a torn byte), the rest are untouched, and the operation and every later one fail
/// with [`TelemetryError::FlashPowerLoss`] until [`SimFlash::restore_power`].
pub struct SimFlash<'a> {
    mem: &'a mut [u8],
    sector_size: usize,
    word_size: usize,
    budget: Option<u64>,
    powered: bool,
    erase_order: EraseOrder,
    byte_ops: u64,
    erase_counts: [u32; SIM_MAX_SECTORS],
}

impl<'a> SimFlash<'a> {
    /// A simulator over `mem` (whose contents are kept: pass `0xFF`s for a blank part).
    /// Errors when the geometry is inconsistent or has more than [`SIM_MAX_SECTORS`] sectors.
    pub fn new(
        mem: &'a mut [u8],
        sector_size: usize,
        word_size: usize,
    ) -> Result<Self, TelemetryError> {
        if sector_size == 0
            || !word_size.is_power_of_two()
            || !sector_size.is_multiple_of(word_size)
            || !mem.len().is_multiple_of(sector_size)
            || mem.len() / sector_size > SIM_MAX_SECTORS
        {
            return Err(TelemetryError::LogBadGeometry);
        }
        Ok(Self {
            mem,
            sector_size,
            word_size,
            budget: None,
            powered: true,
            erase_order: EraseOrder::Ascending,
            byte_ops: 0,
            erase_counts: [0; SIM_MAX_SECTORS],
        })
    }

    /// Cuts power after `bytes` more programmed or erased bytes.
    pub fn cut_power_after(&mut self, bytes: u64) {
        self.budget = Some(bytes);
    }

    /// Restores power and removes any pending cut.
    pub fn restore_power(&mut self) {
        self.budget = None;
        self.powered = true;
    }

    /// Sets the order in which sector bytes are erased.
    pub fn set_erase_order(&mut self, order: EraseOrder) {
        self.erase_order = order;
    }

    /// Bytes programmed or erased since creation.
    pub fn byte_ops(&self) -> u64 {
        self.byte_ops
    }

    /// Times each sector was erased.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erase_counts[..self.mem.len() / self.sector_size]
    }

    /// The raw contents.
    pub fn contents(&self) -> &[u8] {
        self.mem
    }

    /// Takes one unit of budget; returns false when power is cut at this byte.
    fn spend(&mut self) -> bool {
        match &mut self.budget {
            Some(0) => {
                self.powered = false;
                false
            }
            Some(b) => {
                *b -= 1;
                self.byte_ops += 1;
                true
            }
            None => {
                self.byte_ops += 1;
                true
            }
        }
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<(), TelemetryError> {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.mem.len())
        {
            return Err(TelemetryError::FlashOutOfBounds {
                offset: u32::try_from(offset).unwrap_or(u32::MAX),
                len: u32::try_from(len).unwrap_or(u32::MAX),
            });
        }
        Ok(())
    }
}

impl NorFlash for SimFlash<'_> {
    fn sector_size(&self) -> usize {
        self.sector_size
    }

    fn sector_count(&self) -> usize {
        self.mem.len() / self.sector_size
    }

    fn word_size(&self) -> usize {
        self.word_size
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TelemetryError> {
        if !self.powered {
            return Err(TelemetryError::FlashPowerLoss);
        }
        self.check_range(offset, buf.len())?;
        buf.copy_from_slice(&self.mem[offset..offset + buf.len()]);
        Ok(())
    }

    fn erase_sector(&mut self, sector: usize) -> Result<(), TelemetryError> {
        if !self.powered {
            return Err(TelemetryError::FlashPowerLoss);
        }
        let start = sector.saturating_mul(self.sector_size);
        self.check_range(start, self.sector_size)?;
        self.erase_counts[sector] += 1;
        for k in 0..self.sector_size {
            let i = match self.erase_order {
                EraseOrder::Ascending => start + k,
                EraseOrder::Descending => start + self.sector_size - 1 - k,
            };
            if !self.spend() {
                self.mem[i] |= 0x0F;
                return Err(TelemetryError::FlashPowerLoss);
            }
            self.mem[i] = 0xFF;
        }
        Ok(())
    }

    fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), TelemetryError> {
        if !self.powered {
            return Err(TelemetryError::FlashPowerLoss);
        }
        self.check_range(offset, data.len())?;
        if !offset.is_multiple_of(self.word_size) || !data.len().is_multiple_of(self.word_size) {
            return Err(TelemetryError::FlashMisaligned {
                offset: u32::try_from(offset).unwrap_or(u32::MAX),
            });
        }
        if let Some(w) = (offset..offset + data.len())
            .step_by(self.word_size)
            .find(|&w| self.mem[w..w + self.word_size].iter().any(|&b| b != 0xFF))
        {
            return Err(TelemetryError::FlashNotErased {
                offset: u32::try_from(w).unwrap_or(u32::MAX),
            });
        }
        for (k, &byte) in data.iter().enumerate() {
            if !self.spend() {
                // Half the bits of the torn byte made it.
                self.mem[offset + k] &= byte | 0x0F;
                return Err(TelemetryError::FlashPowerLoss);
            }
            self.mem[offset + k] &= byte;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_only_onto_erased_aligned_words() {
        let mut mem = [0xFFu8; 64];
        let mut f = SimFlash::new(&mut mem, 32, 4).unwrap();
        f.program(4, &[1, 2, 3, 4]).unwrap();
        assert_eq!(
            f.program(4, &[0, 0, 0, 0]),
            Err(TelemetryError::FlashNotErased { offset: 4 })
        );
        assert_eq!(
            f.program(2, &[0; 4]),
            Err(TelemetryError::FlashMisaligned { offset: 2 })
        );
        assert!(matches!(
            f.program(62, &[0; 4]),
            Err(TelemetryError::FlashOutOfBounds { .. })
        ));
        assert!(matches!(
            f.erase_sector(2),
            Err(TelemetryError::FlashOutOfBounds { .. })
        ));
        f.erase_sector(0).unwrap();
        let mut buf = [0u8; 8];
        f.read(0, &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 8]);
        assert_eq!(f.erase_counts(), &[1, 0]);
    }

    #[test]
    fn power_cut_tears_one_byte_and_stops() {
        let mut mem = [0xFFu8; 32];
        let mut f = SimFlash::new(&mut mem, 32, 4).unwrap();
        f.cut_power_after(2);
        assert_eq!(
            f.program(0, &[0, 0, 0, 0]),
            Err(TelemetryError::FlashPowerLoss)
        );
        assert_eq!(
            f.read(0, &mut [0u8; 4]),
            Err(TelemetryError::FlashPowerLoss)
        );
        f.restore_power();
        let mut buf = [0u8; 4];
        f.read(0, &mut buf).unwrap();
        assert_eq!(buf, [0, 0, 0x0F, 0xFF]);
    }

    #[test]
    fn rejects_bad_geometry() {
        let mut mem = [0xFFu8; 30];
        assert!(SimFlash::new(&mut mem, 10, 3).is_err());
        assert!(SimFlash::new(&mut mem, 8, 4).is_err());
    }
}

//! QEMU `mps2-an386`: Cortex-M4F, 4 MiB code RAM at 0x0, 4 MiB data RAM at 0x2000_0000.
//! Logs go out over semihosting (defmt frames on the host's stdout); exit through semihosting;
//! files (telemetry) are written on the host through semihosting.

use cortex_m::peripheral::{syst::SystClkSource, SYST};

/// Bytes reserved for the interpreter's arena (the DS-CNN needs well under this).
pub const ARENA_BYTES: usize = 192 * 1024;

/// A free-running tick counter (SysTick, 24 bits, counting down).
pub struct Ticks {
    syst: SYST,
}

impl Ticks {
    /// Takes the core peripherals and starts SysTick. `None` if they were already taken.
    pub fn start() -> Option<Self> {
        let mut syst = cortex_m::Peripherals::take()?.SYST;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_counter();
        Some(Ticks { syst })
    }

    /// The current counter value (counts up, wraps at 2^24).
    pub fn now(&mut self) -> u32 {
        0x00FF_FFFF - SYST::get_current()
    }

    /// Ticks elapsed since `start` (one wrap at most).
    pub fn since(&mut self, start: u32) -> u32 {
        let _ = &self.syst;
        self.now().wrapping_sub(start) & 0x00FF_FFFF
    }
}

//! QEMU `microbit`: nRF51822, Cortex-M0 (ARMv6-M, no DSP, no FPU), 256 KiB flash at 0x0,
//! 16 KiB RAM at 0x2000_0000. Logs and exit through semihosting, as on the mps2-an386.
//!
//! The nRF51's Cortex-M0 has no SysTick, so ticks come from the chip's TIMER0 (16 MHz, 32-bit
//! mode), which QEMU models.

use core::ptr::{read_volatile, write_volatile};

/// Bytes reserved for the interpreter's arena: the RAM is 16 KiB in all.
pub const ARENA_BYTES: usize = 4 * 1024;

const TIMER0: usize = 0x4000_8000;
const TASKS_START: usize = TIMER0;
const TASKS_CAPTURE0: usize = TIMER0 + 0x040;
const MODE: usize = TIMER0 + 0x504;
const BITMODE: usize = TIMER0 + 0x508;
const PRESCALER: usize = TIMER0 + 0x510;
const CC0: usize = TIMER0 + 0x540;

/// A free-running 16 MHz tick counter (nRF51 TIMER0, 32 bits).
pub struct Ticks {
    _private: (),
}

impl Ticks {
    /// Starts TIMER0 in 32-bit timer mode without prescaling. `None` if already started.
    pub fn start() -> Option<Self> {
        static STARTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        let first = cortex_m::interrupt::free(|_| {
            let was = STARTED.load(core::sync::atomic::Ordering::Relaxed);
            STARTED.store(true, core::sync::atomic::Ordering::Relaxed);
            !was
        });
        if !first {
            return None;
        }
        // SAFETY: TIMER0's registers (nRF51 reference manual, chapter 18) at their fixed
        // addresses; this is their only user (guarded by STARTED above).
        unsafe {
            write_volatile(MODE as *mut u32, 0); // timer
            write_volatile(BITMODE as *mut u32, 3); // 32 bit
            write_volatile(PRESCALER as *mut u32, 0); // 16 MHz
            write_volatile(TASKS_START as *mut u32, 1);
        }
        Some(Ticks { _private: () })
    }

    /// The current counter value.
    pub fn now(&mut self) -> u32 {
        // SAFETY: TIMER0 registers, owned by this `Ticks` (see `start`).
        unsafe {
            write_volatile(TASKS_CAPTURE0 as *mut u32, 1);
            read_volatile(CC0 as *const u32)
        }
    }

    /// Ticks elapsed since `start`.
    pub fn since(&mut self, start: u32) -> u32 {
        self.now().wrapping_sub(start)
    }
}

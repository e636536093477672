//! QEMU `mps2-an386`: Cortex-M4F, 4 MiB code RAM at 0x0, 4 MiB data RAM at 0x2000_0000.
//! Logs go out over semihosting (defmt frames on the host's stdout); exit through semihosting;
//! files (telemetry) are written on the host through semihosting.

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_semihosting::{debug, nr, syscall};

/// Ends the program: QEMU exits with status 0 when `ok`, 1 otherwise.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

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

/// Writes `bytes` to a file on the host (through semihosting), replacing it.
/// `name_nul` must end with a NUL byte. Returns `false` if the host refused.
pub fn write_host_file(name_nul: &str, bytes: &[u8]) -> bool {
    if !name_nul.ends_with('\0') {
        return false;
    }
    // SAFETY: SYS_OPEN reads `len - 1` name bytes from a live, NUL-terminated string.
    let fd = unsafe {
        syscall!(
            OPEN,
            name_nul.as_ptr(),
            nr::open::W_TRUNC_BINARY,
            name_nul.len() - 1
        )
    } as isize;
    if fd < 0 {
        return false;
    }
    // SAFETY: SYS_WRITE reads `bytes.len()` bytes from a live slice; it returns the bytes NOT written.
    let left = unsafe { syscall!(WRITE, fd as usize, bytes.as_ptr(), bytes.len()) };
    // SAFETY: closes the handle opened above.
    unsafe { syscall!(CLOSE, fd as usize) };
    left == 0
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(false)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault");
    exit(false)
}

defmt::timestamp!("{=u32}", 0);

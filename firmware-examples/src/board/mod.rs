//! The board the examples run on, chosen by `build.rs` from the target: QEMU's `mps2-an386`
//! (Cortex-M4F, `thumbv7em-none-eabihf`) or QEMU's `microbit` (nRF51822, Cortex-M0,
//! `thumbv6m-none-eabi`). Each module offers the same items: `exit`, `Ticks`,
//! `write_host_file`, `ARENA_BYTES`.

#[cfg(board = "mps2_an386")]
mod mps2_an386;
#[cfg(board = "mps2_an386")]
pub use mps2_an386::*;

#[cfg(board = "microbit")]
mod microbit;
#[cfg(board = "microbit")]
pub use microbit::*;

mod semihosting;
pub use semihosting::{exit, write_host_file, HostFile};

/// Logs where the panic happened, without its message: formatting the message would link
/// `core::fmt` (about 2 KB of flash) into every example. Nothing the examples run is expected
/// to panic (the runtime returns errors); the file and line say where to look.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(at) => defmt::error!("panic at {=str}:{=u32}", at.file(), at.line()),
        None => defmt::error!("panic"),
    }
    exit(false)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault");
    exit(false)
}

defmt::timestamp!("{=u32}", 0);

//! Exit and host files through semihosting (both QEMU boards; a debug probe offers the same).

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

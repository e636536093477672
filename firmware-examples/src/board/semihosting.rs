//! Exit and host files through semihosting (both QEMU boards; a debug probe offers the same).

use cortex_m_semihosting::{debug, nr, syscall};
// The defmt transport: log frames go to the host's stdout through semihosting (a board with a
// debug probe would link `defmt-rtt` here instead).
use defmt_semihosting as _;

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

/// A file on the host, open for writing (through semihosting); closed when dropped. Each
/// [`HostFile::write`] reaches the host file at once, so the host can follow it while the
/// firmware runs (how `edgeloop flash --qemu` streams telemetry).
pub struct HostFile {
    fd: usize,
}

impl HostFile {
    /// Creates (or truncates) `name_nul` on the host. `name_nul` must end with a NUL byte.
    /// `None` if the host refused.
    pub fn create(name_nul: &str) -> Option<Self> {
        if !name_nul.ends_with('\0') {
            return None;
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
        (fd >= 0).then_some(HostFile { fd: fd as usize })
    }

    /// Writes all of `bytes`; `false` if the host wrote fewer.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        // SAFETY: SYS_WRITE reads `bytes.len()` bytes from a live slice; it returns the bytes
        // NOT written.
        let left = unsafe { syscall!(WRITE, self.fd, bytes.as_ptr(), bytes.len()) };
        left == 0
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        // SAFETY: closes the handle opened in `create`, once.
        unsafe { syscall!(CLOSE, self.fd) };
    }
}

/// Writes `bytes` to a file on the host (through semihosting), replacing it.
/// `name_nul` must end with a NUL byte. Returns `false` if the host refused.
pub fn write_host_file(name_nul: &str, bytes: &[u8]) -> bool {
    HostFile::create(name_nul).is_some_and(|mut f| f.write(bytes))
}

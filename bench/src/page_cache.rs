//! Dropping a file's pages from the page cache, so that the peak-RSS probe runs the way an
//! installed binary does rather than the way the linker's writes left it.
//!
//! A binary the bench has just built sits in the page cache as its writer left it: on this
//! machine's kernel (6.18, ext4 with large folios) the linker's writes become large folios, and a
//! fault on one page of a large folio maps the whole folio. The probe's resident code then reads
//! 864–992 KiB of its 992 KiB of text, against 800–864 KiB once the file has been evicted and read
//! back by `exec` and the fault path (measured on the decode-step image, 6 processes each). A
//! binary installed on an edge device is read from storage that way after every boot.

use crate::{Error, Result};

/// Writes back and then evicts every cached page of the file at `path`
/// (`fsync` + `posix_fadvise(POSIX_FADV_DONTNEED)`). Needs no privilege; pages other processes
/// have mapped stay until they exit.
#[cfg(target_os = "linux")]
pub fn evict(path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let file =
        std::fs::File::open(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    // Dirty pages cannot be dropped: write them back first.
    file.sync_all()
        .map_err(|e| Error::Io(format!("fsync {}: {e}", path.display())))?;
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(Error::Io(format!(
            "posix_fadvise(DONTNEED) on {}: {}",
            path.display(),
            std::io::Error::from_raw_os_error(rc)
        )));
    }
    Ok(())
}

/// Elsewhere the page cache is left as it is.
#[cfg(not(target_os = "linux"))]
pub fn evict(_path: &std::path::Path) -> Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn evicts_a_written_file_and_names_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("edgeloop-page-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.bin");
        std::fs::write(&f, vec![7u8; 1 << 20]).unwrap();
        super::evict(&f).unwrap();
        // The contents are intact after eviction (read back from disk).
        assert_eq!(std::fs::read(&f).unwrap(), vec![7u8; 1 << 20]);
        let err = super::evict(&dir.join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

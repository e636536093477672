//! Integrity of checkpoint folders: `manifest.json` lists every file the checkpoint writer
//! put in the folder with its length and XXH3-64 digest; loading checks them all, so a
//! truncated or corrupted checkpoint is refused with an error naming the file instead of being
//! trained on. Also the durability helpers (fsync of files and folders) the writer uses.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Result, TrainerError};

/// Manifest file inside a checkpoint folder (written last, after every file it lists).
pub const MANIFEST_FILE: &str = "manifest.json";

/// Length and digest of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// XXH3-64 of the contents, lowercase hex.
    pub xxh3: String,
}

/// What a checkpoint folder must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format (1).
    pub format: u32,
    /// File name → length and digest.
    pub files: BTreeMap<String, FileDigest>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainerError + '_ {
    move |e| TrainerError::io(path, e)
}

/// Length and digest of the file at `path`.
pub fn digest(path: &Path) -> Result<FileDigest> {
    let mut f = fs::File::open(path).map_err(io(path))?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileDigest {
        bytes,
        xxh3: format!("{:016x}", h.digest()),
    })
}

/// Flushes the file or folder at `path` to stable storage.
pub fn sync_path(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Writes `bytes` to `path` and flushes it to stable storage.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Flushes each of `files` (inside `dir`), then writes and flushes their manifest, then
/// flushes `dir` itself.
pub fn seal(dir: &Path, files: &[&str]) -> Result<()> {
    let mut m = Manifest {
        format: 1,
        files: BTreeMap::new(),
    };
    for name in files {
        let p = dir.join(name);
        sync_path(&p)?;
        m.files.insert(name.to_string(), digest(&p)?);
    }
    let p = dir.join(MANIFEST_FILE);
    let s = serde_json::to_vec_pretty(&m).map_err(|e| TrainerError::Json {
        path: p.clone(),
        source: e,
    })?;
    write_synced(&p, &s)?;
    sync_path(dir)
}

fn refuse(dir: &Path, reason: String) -> TrainerError {
    TrainerError::Checkpoint {
        dir: dir.into(),
        reason,
    }
}

/// Checks every file the manifest of `dir` lists. Folders without a manifest (written before
/// manifests existed, or assembled by hand) pass: their files are still parsed with checks.
pub fn verify(dir: &Path) -> Result<()> {
    let p = dir.join(MANIFEST_FILE);
    if !p.exists() {
        if !dir.is_dir() {
            return Err(refuse(dir, "no such checkpoint folder".into()));
        }
        return Ok(());
    }
    let raw = fs::read(&p).map_err(io(&p))?;
    let m: Manifest = serde_json::from_slice(&raw).map_err(|e| {
        refuse(
            dir,
            format!(
                "{MANIFEST_FILE} is unreadable ({e}): the checkpoint is incomplete or corrupted"
            ),
        )
    })?;
    if m.format != 1 {
        return Err(refuse(
            dir,
            format!("{MANIFEST_FILE}: unknown format {}", m.format),
        ));
    }
    for (name, want) in &m.files {
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(refuse(
                dir,
                format!("{MANIFEST_FILE} names `{name}`, not a file of this folder"),
            ));
        }
        let f = dir.join(name);
        if !f.is_file() {
            return Err(refuse(dir, format!("{name} is missing")));
        }
        let got = digest(&f)?;
        if got.bytes != want.bytes {
            return Err(refuse(
                dir,
                format!(
                    "{name} has {} bytes, the manifest says {} (truncated or overwritten)",
                    got.bytes, want.bytes
                ),
            ));
        }
        if got.xxh3 != want.xxh3 {
            return Err(refuse(
                dir,
                format!(
                    "{name} is corrupted: XXH3 {} but the manifest says {}",
                    got.xxh3, want.xxh3
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_verify_catches_truncation_corruption_and_missing_files() {
        let dir = std::env::temp_dir().join(format!("edgeloop-manifest-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.bin"), vec![7u8; 100_000]).unwrap();
        fs::write(dir.join("b.json"), b"{}").unwrap();
        seal(&dir, &["a.bin", "b.json"]).unwrap();
        verify(&dir).unwrap();
        // Files not in the manifest (added later, e.g. a tokenizer) do not matter.
        fs::write(dir.join("extra.txt"), b"x").unwrap();
        verify(&dir).unwrap();

        let mut a = fs::read(dir.join("a.bin")).unwrap();
        a[54_321] ^= 0x10;
        fs::write(dir.join("a.bin"), &a).unwrap();
        let e = verify(&dir).unwrap_err().to_string();
        assert!(e.contains("a.bin is corrupted"), "{e}");
        a[54_321] ^= 0x10;
        fs::write(dir.join("a.bin"), &a[..a.len() - 1]).unwrap();
        let e = verify(&dir).unwrap_err().to_string();
        assert!(e.contains("a.bin has 99999 bytes"), "{e}");
        fs::remove_file(dir.join("a.bin")).unwrap();
        let e = verify(&dir).unwrap_err().to_string();
        assert!(e.contains("a.bin is missing"), "{e}");
        fs::write(dir.join(MANIFEST_FILE), b"{\"format\": 1, \"fi").unwrap();
        let e = verify(&dir).unwrap_err().to_string();
        assert!(e.contains("unreadable"), "{e}");
        fs::write(
            dir.join(MANIFEST_FILE),
            br#"{"format": 1, "files": {"../x": {"bytes": 1, "xxh3": "0"}}}"#,
        )
        .unwrap();
        let e = verify(&dir).unwrap_err().to_string();
        assert!(e.contains("not a file of this folder"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

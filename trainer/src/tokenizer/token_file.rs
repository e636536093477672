//! Compact binary token files: all documents' token ids back to back (u16 when the vocabulary
//! fits, else u32), followed by an index of document offsets; read through a memory map, so a
//! corpus larger than RAM can be sampled without loading it. Byte layout: `trainer/TOKENS.md`.
//!
//! [`TokenFile::open`] validates the header, the file size and every index entry before
//! returning, so no later access can read out of bounds; [`TokenFile::verify`] also checks the
//! checksum and that every id is below the vocabulary size.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use xxhash_rust::xxh3::Xxh3;

use crate::data::error::{DataError, Result};

/// File magic.
pub const MAGIC: &[u8; 8] = b"ELTOKENS";
/// Format version written and accepted.
pub const VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 64;

fn err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::TokenFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Streaming writer.
pub struct TokenFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    width: usize,
    vocab_size: u32,
    offsets: Vec<u64>,
    tokens: u64,
    hash: Xxh3,
}

impl TokenFileWriter {
    /// Creates `path` for ids below `vocab_size` (u16 storage when `vocab_size <= 65536`).
    pub fn create(path: &Path, vocab_size: usize) -> Result<Self> {
        if vocab_size == 0 || vocab_size > u32::MAX as usize {
            return Err(err(
                path,
                format!("vocabulary size {vocab_size} out of range"),
            ));
        }
        let f = File::create(path).map_err(|e| DataError::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        out.write_all(&[0u8; HEADER_LEN])
            .map_err(|e| DataError::io(path, e))?;
        Ok(TokenFileWriter {
            path: path.to_path_buf(),
            out,
            width: if vocab_size <= 1 << 16 { 2 } else { 4 },
            vocab_size: vocab_size as u32,
            offsets: vec![0],
            tokens: 0,
            hash: Xxh3::new(),
        })
    }

    /// Appends one document.
    pub fn push(&mut self, ids: &[u32]) -> Result<()> {
        let mut buf = Vec::with_capacity(ids.len() * self.width);
        for &id in ids {
            if id >= self.vocab_size {
                return Err(err(
                    &self.path,
                    format!("token id {id} >= vocabulary size {}", self.vocab_size),
                ));
            }
            if self.width == 2 {
                buf.extend_from_slice(&(id as u16).to_le_bytes());
            } else {
                buf.extend_from_slice(&id.to_le_bytes());
            }
        }
        self.hash.update(&buf);
        self.out
            .write_all(&buf)
            .map_err(|e| DataError::io(&self.path, e))?;
        self.tokens += ids.len() as u64;
        self.offsets.push(self.tokens);
        Ok(())
    }

    /// Writes the index and the header; returns `(documents, tokens)`.
    pub fn finish(mut self) -> Result<(u64, u64)> {
        let p = self.path.clone();
        let io = |e| DataError::io(&p, e);
        let data_end = HEADER_LEN as u64 + self.tokens * self.width as u64;
        let pad = (8 - (data_end % 8) as usize) % 8;
        self.out.write_all(&[0u8; 8][..pad]).map_err(io)?;
        for o in &self.offsets {
            self.out.write_all(&o.to_le_bytes()).map_err(io)?;
        }
        let docs = self.offsets.len() as u64 - 1;
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(self.width as u32).to_le_bytes());
        h[16..24].copy_from_slice(&docs.to_le_bytes());
        h[24..32].copy_from_slice(&self.tokens.to_le_bytes());
        h[32..36].copy_from_slice(&self.vocab_size.to_le_bytes());
        h[40..48].copy_from_slice(&self.hash.digest().to_le_bytes());
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&h).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok((docs, self.tokens))
    }
}

/// A memory-mapped, validated token file.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    map: Mmap,
    width: usize,
    docs: usize,
    tokens: usize,
    vocab_size: u32,
    checksum: u64,
    index_at: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl TokenFile {
    /// Maps and validates `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| DataError::io(path, e))?;
        // SAFETY: the map is read-only and private to this value; the file is treated as
        // untrusted bytes (every read below is bounds-checked). A concurrent truncation by
        // another process is outside what a read-only map can guard against.
        let map = unsafe { Mmap::map(&f) }.map_err(|e| DataError::io(path, e))?;
        let b: &[u8] = &map;
        if b.len() < HEADER_LEN {
            return Err(err(
                path,
                format!(
                    "{} bytes is shorter than the {HEADER_LEN}-byte header",
                    b.len()
                ),
            ));
        }
        if &b[0..8] != MAGIC {
            return Err(err(path, "bad magic (not an edgeloop token file)"));
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(err(
                path,
                format!("format version {version}, this build reads {VERSION}"),
            ));
        }
        let width = u32_at(b, 12) as usize;
        if width != 2 && width != 4 {
            return Err(err(path, format!("token width {width} (must be 2 or 4)")));
        }
        let docs = u64_at(b, 16);
        let tokens = u64_at(b, 24);
        let vocab_size = u32_at(b, 32);
        if vocab_size == 0 || (width == 2 && vocab_size > 1 << 16) {
            return Err(err(
                path,
                format!("vocabulary size {vocab_size} does not fit width {width}"),
            ));
        }
        let data_end = (tokens as u128) * width as u128 + HEADER_LEN as u128;
        let index_at = data_end.div_ceil(8) * 8;
        let expected = index_at + (docs as u128 + 1) * 8;
        if expected != b.len() as u128 {
            return Err(err(
                path,
                format!(
                    "size {} bytes, header ({docs} documents, {tokens} tokens) implies {expected}",
                    b.len()
                ),
            ));
        }
        let index_at = index_at as usize;
        let mut prev = 0u64;
        for i in 0..=docs as usize {
            let o = u64_at(b, index_at + 8 * i);
            if (i == 0 && o != 0) || o < prev || o > tokens {
                return Err(err(
                    path,
                    format!("index entry {i} ({o}) is not a valid offset"),
                ));
            }
            prev = o;
        }
        if prev != tokens {
            return Err(err(
                path,
                "the last index entry does not equal the token count",
            ));
        }
        Ok(TokenFile {
            path: path.to_path_buf(),
            checksum: u64_at(b, 40),
            map,
            width,
            docs: docs as usize,
            tokens: tokens as usize,
            vocab_size,
            index_at,
        })
    }

    /// Checks the data checksum and that every id is below the vocabulary size (reads it all).
    pub fn verify(&self) -> Result<()> {
        let data = &self.map[HEADER_LEN..HEADER_LEN + self.tokens * self.width];
        if xxhash_rust::xxh3::xxh3_64(data) != self.checksum {
            return Err(err(&self.path, "checksum mismatch (corrupted token data)"));
        }
        for i in 0..self.tokens {
            let id = self.token(i);
            if id >= self.vocab_size {
                return Err(err(
                    &self.path,
                    format!(
                        "token {i} has id {id} >= vocabulary size {}",
                        self.vocab_size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Number of documents.
    pub fn num_docs(&self) -> usize {
        self.docs
    }

    /// Number of tokens.
    pub fn num_tokens(&self) -> usize {
        self.tokens
    }

    /// Vocabulary size recorded by the writer.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// Bytes per token (2 or 4).
    pub fn width(&self) -> usize {
        self.width
    }

    fn offset(&self, i: usize) -> usize {
        u64_at(&self.map, self.index_at + 8 * i) as usize
    }

    /// Token `i` of the whole stream (`i < num_tokens()`, else panics like slice indexing).
    pub fn token(&self, i: usize) -> u32 {
        assert!(i < self.tokens, "token index {i} out of range");
        let at = HEADER_LEN + i * self.width;
        if self.width == 2 {
            u16::from_le_bytes([self.map[at], self.map[at + 1]]) as u32
        } else {
            u32_at(&self.map, at)
        }
    }

    /// The token range `[start, end)` of document `doc`, or `None` when out of range.
    pub fn doc_range(&self, doc: usize) -> Option<std::ops::Range<usize>> {
        (doc < self.docs).then(|| self.offset(doc)..self.offset(doc + 1))
    }

    /// The tokens of document `doc`.
    pub fn doc(&self, doc: usize) -> Option<Vec<u32>> {
        self.doc_range(doc)
            .map(|r| r.map(|i| self.token(i)).collect())
    }

    /// `len` tokens of the stream from `start` (a training window), or `None` past the end.
    pub fn window(&self, start: usize, len: usize) -> Option<Vec<u32>> {
        let end = start.checked_add(len)?;
        (end <= self.tokens).then(|| (start..end).map(|i| self.token(i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edgeloop-tf-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("t.tokens")
    }

    #[test]
    fn round_trip_u16_and_u32() {
        for vocab in [300usize, 100_000] {
            let p = tmp(&format!("rt{vocab}"));
            let mut w = TokenFileWriter::create(&p, vocab).unwrap();
            let docs: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![], vec![(vocab - 1) as u32, 0]];
            for d in &docs {
                w.push(d).unwrap();
            }
            assert_eq!(w.finish().unwrap(), (3, 5));
            let f = TokenFile::open(&p).unwrap();
            f.verify().unwrap();
            assert_eq!(f.width(), if vocab == 300 { 2 } else { 4 });
            for (i, d) in docs.iter().enumerate() {
                assert_eq!(&f.doc(i).unwrap(), d);
            }
            assert_eq!(f.doc(3), None);
            assert_eq!(f.window(2, 3).unwrap(), vec![3, (vocab - 1) as u32, 0]);
            assert_eq!(f.window(3, 3), None);
            assert_eq!(f.window(usize::MAX, 2), None);
        }
    }

    #[test]
    fn rejects_ids_beyond_the_vocabulary_when_writing() {
        let p = tmp("big");
        let mut w = TokenFileWriter::create(&p, 10).unwrap();
        assert!(w.push(&[10]).is_err());
    }

    #[test]
    fn malformed_files_are_errors() {
        let p = tmp("bad");
        let mut w = TokenFileWriter::create(&p, 50).unwrap();
        w.push(&[1, 2, 3, 4]).unwrap();
        w.push(&[5]).unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&p).unwrap();
        let check = |bytes: &[u8], what: &str| {
            std::fs::write(&p, bytes).unwrap();
            let e = TokenFile::open(&p)
                .and_then(|f| f.verify())
                .unwrap_err()
                .to_string();
            assert!(e.contains(what), "{what}: {e}");
        };
        check(&good[..10], "shorter");
        let mut b = good.clone();
        b[0] = b'X';
        check(&b, "magic");
        let mut b = good.clone();
        b[8] = 2;
        check(&b, "version");
        let mut b = good.clone();
        b[12] = 3;
        check(&b, "width");
        check(&good[..good.len() - 1], "size");
        let mut b = good.clone();
        let idx = b.len() - 16; // entry 1
        b[idx] = 9;
        check(&b, "index entry");
        let mut b = good.clone();
        b[HEADER_LEN] = 49; // still < vocab but changes the checksum
        check(&b, "checksum");
        let mut b = good.clone();
        b[32] = 3; // vocab 3: ids 4 and 5 are beyond it (checksum still fine)
        check(&b, "vocabulary");
    }
}

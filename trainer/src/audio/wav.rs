//! A small RIFF/WAVE reader and writer for 16-bit PCM mono audio, the format of the Speech
//! Commands data set (16 kHz). Every malformed input is an [`AudioError::Wav`] naming the
//! problem; nothing is read out of bounds.

use std::path::Path;

use super::error::{AudioError, Result};

/// Decoded PCM audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Sample rate (Hz).
    pub sample_rate: u32,
    /// Samples (mono, 16-bit).
    pub samples: Vec<i16>,
}

const PCM: u16 = 1;
const EXTENSIBLE: u16 = 0xFFFE;

/// The highest sample rate a 16-bit mono WAV file can state: its header also holds the byte
/// rate (2 bytes per sample), a `u32`.
pub const MAX_SAMPLE_RATE: u32 = u32::MAX / 2;

/// The most samples a WAV file can hold: the RIFF size field (`u32`) counts them (2 bytes
/// each) plus 36 header bytes.
pub const MAX_SAMPLES: usize = (u32::MAX as usize - 36) / 2;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a WAV file's bytes: RIFF/WAVE, a `fmt ` chunk with PCM (format 1, or
/// WAVE_FORMAT_EXTENSIBLE with the PCM sub-format), one channel, 16 bits per sample, and a
/// `data` chunk. Other chunks (`LIST`, `fact`, …) are skipped. The sample rate must be in
/// `1..=`[`MAX_SAMPLE_RATE`] (the header's byte rate field is not checked).
pub fn parse(bytes: &[u8]) -> std::result::Result<Wav, String> {
    if bytes.len() < 12 {
        return Err(format!(
            "{} bytes: too short for a RIFF header",
            bytes.len()
        ));
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut at = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(bytes, at + 4).ok_or("truncated chunk header")? as usize;
        let body = at + 8;
        let end = body
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                format!(
                    "chunk '{}' declares {size} bytes but only {} remain",
                    String::from_utf8_lossy(id),
                    bytes.len() - body
                )
            })?;
        match id {
            b"fmt " => {
                if size < 16 {
                    return Err(format!("fmt chunk of {size} bytes (at least 16 needed)"));
                }
                let mut format = u16_at(bytes, body).ok_or("truncated fmt chunk")?;
                let channels = u16_at(bytes, body + 2).ok_or("truncated fmt chunk")?;
                let rate = u32_at(bytes, body + 4).ok_or("truncated fmt chunk")?;
                let bits = u16_at(bytes, body + 14).ok_or("truncated fmt chunk")?;
                if format == EXTENSIBLE {
                    // cbSize (2), valid bits (2), channel mask (4), sub-format GUID (16).
                    format = u16_at(bytes, body + 24)
                        .filter(|_| size >= 40)
                        .ok_or("WAVE_FORMAT_EXTENSIBLE fmt chunk is too short")?;
                }
                fmt = Some((format, channels, rate, bits));
            }
            b"data" => {
                let (format, channels, rate, bits) =
                    fmt.ok_or("data chunk before any fmt chunk")?;
                if format != PCM {
                    return Err(format!("format code {format}: only PCM (1) is read"));
                }
                if channels != 1 {
                    return Err(format!("{channels} channels: only mono is read"));
                }
                if bits != 16 {
                    return Err(format!("{bits} bits per sample: only 16-bit is read"));
                }
                check_rate(rate)?;
                if !size.is_multiple_of(2) {
                    return Err(format!("data chunk of {size} bytes is not whole samples"));
                }
                let samples = bytes[body..end]
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Ok(Wav {
                    sample_rate: rate,
                    samples,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = end + (size & 1);
    }
    Err(if fmt.is_none() {
        "no fmt chunk".into()
    } else {
        "no data chunk".into()
    })
}

/// Reads a WAV file (see [`parse`]).
pub fn read(path: &Path) -> Result<Wav> {
    let bytes = std::fs::read(path).map_err(|e| AudioError::io(path, e))?;
    parse(&bytes).map_err(|reason| AudioError::Wav {
        path: path.to_path_buf(),
        reason,
    })
}

fn check_rate(rate: u32) -> std::result::Result<(), String> {
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(format!(
            "sample rate {rate} Hz is out of range (1..={MAX_SAMPLE_RATE})"
        ));
    }
    Ok(())
}

/// Encodes 16-bit PCM mono audio as a WAV file's bytes. Errors (naming the problem) when the
/// header cannot state it: a sample rate outside `1..=`[`MAX_SAMPLE_RATE`], or more than
/// [`MAX_SAMPLES`] samples.
pub fn encode(sample_rate: u32, samples: &[i16]) -> std::result::Result<Vec<u8>, String> {
    check_rate(sample_rate)?;
    if samples.len() > MAX_SAMPLES {
        return Err(format!(
            "{} samples: a WAV file holds at most {MAX_SAMPLES}",
            samples.len()
        ));
    }
    let data = samples.len() * 2;
    let mut b = Vec::with_capacity(44 + data);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&((36 + data) as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&PCM.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&sample_rate.to_le_bytes());
    b.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data as u32).to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    Ok(b)
}

/// Writes a WAV file (see [`encode`]).
pub fn write(path: &Path, sample_rate: u32, samples: &[i16]) -> Result<()> {
    let bytes = encode(sample_rate, samples).map_err(|reason| AudioError::Wav {
        path: path.to_path_buf(),
        reason,
    })?;
    std::fs::write(path, bytes).map_err(|e| AudioError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s: Vec<i16> = (0..1000).map(|i| (i * 37 % 65536 - 32768) as i16).collect();
        let w = parse(&encode(16_000, &s).unwrap()).unwrap();
        assert_eq!(w.sample_rate, 16_000);
        assert_eq!(w.samples, s);
    }

    #[test]
    fn skips_other_chunks() {
        let mut b = encode(16_000, &[1, 2, 3]).unwrap();
        // Insert an odd-sized LIST chunk (padded) before fmt.
        let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc", &[0]].concat();
        let _ = b.splice(12..12, list);
        assert_eq!(parse(&b).unwrap().samples, vec![1, 2, 3]);
    }

    #[test]
    fn malformed_files_are_named_errors() {
        let good = encode(16_000, &[1, 2, 3, 4]).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "too short"),
            (b"RIFX\0\0\0\0WAVE".to_vec(), "not a RIFF/WAVE"),
            (good[..good.len() - 3].to_vec(), "declares 8 bytes"),
            (good[..40].to_vec(), "no data chunk"),
            (good[..12].to_vec(), "no fmt chunk"),
            (
                {
                    let mut b = good.clone();
                    b[22] = 2; // channels
                    b
                },
                "2 channels",
            ),
            (
                {
                    let mut b = good.clone();
                    b[34] = 8; // bits per sample
                    b
                },
                "8 bits",
            ),
            (
                {
                    let mut b = good.clone();
                    b[20] = 3; // IEEE float
                    b
                },
                "format code 3",
            ),
            (
                {
                    let mut b = good.clone();
                    b[16] = 4; // fmt size 4
                    b
                },
                "fmt chunk of 4 bytes",
            ),
            (
                {
                    let mut b = good.clone();
                    b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
                    b[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
                    b
                },
                "declares 4294967295 bytes",
            ),
        ];
        for (bytes, want) in cases {
            let e = parse(&bytes).unwrap_err();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
        let dir = std::env::temp_dir().join(format!("edgeloop-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.wav");
        std::fs::write(&p, b"RIFF").unwrap();
        let msg = read(&p).unwrap_err().to_string();
        assert!(
            msg.contains("bad.wav") && msg.contains("too short"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Regression (found while writing the fuzz target `wav_parse`'s round trip; input kept in
    /// `fuzz/regressions/wav_parse/`): a header stating a sample rate above 2^31 Hz parsed, and
    /// re-encoding it overflowed the byte rate (`sample_rate * 2`: a panic with overflow checks,
    /// a wrong header without). Such rates, and 0 Hz, are now errors in both directions.
    #[test]
    fn unrepresentable_sample_rates_are_errors() {
        let mut b = encode(16_000, &[1, 2]).unwrap();
        for rate in [0, MAX_SAMPLE_RATE + 1, u32::MAX] {
            b[24..28].copy_from_slice(&rate.to_le_bytes());
            let e = parse(&b).unwrap_err();
            assert!(e.contains(&format!("sample rate {rate} Hz")), "{e}");
            let e = encode(rate, &[1, 2]).unwrap_err();
            assert!(e.contains("out of range"), "{e}");
        }
        b[24..28].copy_from_slice(&MAX_SAMPLE_RATE.to_le_bytes());
        let w = parse(&b).unwrap();
        assert_eq!(
            parse(&encode(w.sample_rate, &w.samples).unwrap()).unwrap(),
            w
        );
        let dir = std::env::temp_dir().join(format!("edgeloop-wav-rate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let msg = write(&dir.join("zero.wav"), 0, &[1])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("zero.wav") && msg.contains("sample rate 0 Hz"),
            "{msg}"
        );
        assert!(!dir.join("zero.wav").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

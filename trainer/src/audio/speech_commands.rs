//! Loader for the Speech Commands layout (Warden, 2018): one folder of 16-bit mono 16 kHz WAV
//! files per word, a `_background_noise_` folder of long noise recordings, and
//! `validation_list.txt` / `testing_list.txt` naming held-out files as `word/file.wav`
//! (every other file is training data).
//!
//! Words in [`LoadOptions::keywords`] keep their own class; every other word folder becomes
//! `_unknown_`; `_silence_` clips are cut from the background recordings (deterministically,
//! seeded). Clips shorter than one second are zero-padded at the end, longer ones truncated.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::error::{AudioError, Result};
use super::{wav, Clip, KwsDataset, Split, SILENCE, UNKNOWN};
use edgeloop_runtime::audio::{CLIP_SAMPLES, SAMPLE_RATE};

/// Background-noise folder name.
pub const BACKGROUND: &str = "_background_noise_";

/// What to load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Words that are classes of their own (e.g. `yes`, `no`, …); empty: every word folder.
    pub keywords: Vec<String>,
    /// At most this many `_unknown_` clips per split, as a multiple of the mean keyword count
    /// (`None`: keep them all).
    pub unknown_ratio: Option<f32>,
    /// `_silence_` clips per split, as a multiple of the mean keyword count.
    pub silence_ratio: f32,
    /// Seed for the unknown subsampling and the silence cuts.
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            keywords: Vec::new(),
            unknown_ratio: Some(1.0),
            silence_ratio: 1.0,
            seed: 0,
        }
    }
}

fn read_list(path: &Path) -> Result<HashSet<String>> {
    if !path.exists() {
        return Ok(HashSet::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| AudioError::io(path, e))?;
    Ok(text
        .lines()
        .map(|l| l.trim().replace('\\', "/"))
        .filter(|l| !l.is_empty())
        .collect())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| AudioError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| AudioError::io(dir, e)))
        .collect::<Result<_>>()?;
    v.sort();
    Ok(v)
}

fn fit(mut samples: Vec<i16>) -> Vec<i16> {
    samples.resize(CLIP_SAMPLES, 0);
    samples
}

fn read_16k(path: &Path) -> Result<Vec<i16>> {
    let w = wav::read(path)?;
    if w.sample_rate != SAMPLE_RATE {
        return Err(AudioError::Wav {
            path: path.to_path_buf(),
            reason: format!(
                "sample rate {} Hz: the front end takes {SAMPLE_RATE} Hz (resample first)",
                w.sample_rate
            ),
        });
    }
    Ok(w.samples)
}

/// Loads a Speech Commands folder.
pub fn load(root: &Path, opts: &LoadOptions) -> Result<KwsDataset> {
    let layout = |reason: String| AudioError::Layout {
        path: root.to_path_buf(),
        reason,
    };
    if !root.is_dir() {
        return Err(layout("is not a folder".into()));
    }
    let validation = read_list(&root.join("validation_list.txt"))?;
    let testing = read_list(&root.join("testing_list.txt"))?;
    let mut words = Vec::new();
    for p in sorted_entries(root)? {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if p.is_dir() && name != BACKGROUND && !name.starts_with('.') {
            words.push((name, p));
        }
    }
    if words.is_empty() {
        return Err(layout(
            "no word folders (expected one folder of WAV files per word)".into(),
        ));
    }
    let keywords: Vec<String> = if opts.keywords.is_empty() {
        words.iter().map(|(w, _)| w.clone()).collect()
    } else {
        for k in &opts.keywords {
            if !words.iter().any(|(w, _)| w == k) {
                return Err(layout(format!("keyword '{k}' has no folder")));
            }
        }
        opts.keywords.clone()
    };
    let mut labels = keywords.clone();
    labels.push(SILENCE.into());
    let has_unknown = words.iter().any(|(w, _)| !keywords.contains(w));
    if has_unknown {
        labels.push(UNKNOWN.into());
    }
    let unknown_class = labels.len() - 1;
    let mut clips = Vec::new();
    let mut unknown = Vec::new();
    for (word, dir) in &words {
        let class = keywords.iter().position(|k| k == word);
        for p in sorted_entries(dir)? {
            if p.extension()
                .and_then(|e| e.to_str())
                .map(|e| e.eq_ignore_ascii_case("wav"))
                != Some(true)
            {
                continue;
            }
            let file = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let rel = format!("{word}/{file}");
            let split = if testing.contains(&rel) {
                Split::Test
            } else if validation.contains(&rel) {
                Split::Validation
            } else {
                Split::Train
            };
            let clip = Clip {
                samples: fit(read_16k(&p)?),
                label: class.unwrap_or(unknown_class),
                split,
                source: rel,
            };
            if class.is_some() {
                clips.push(clip);
            } else {
                unknown.push(clip);
            }
        }
    }
    if clips.is_empty() {
        return Err(layout("the keyword folders hold no WAV files".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let background: Vec<Vec<i16>> = match root.join(BACKGROUND) {
        d if d.is_dir() => sorted_entries(&d)?
            .into_iter()
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("wav"))
            .map(|p| read_16k(&p))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|s| s.len() >= CLIP_SAMPLES)
            .collect(),
        _ => Vec::new(),
    };
    for split in [Split::Train, Split::Validation, Split::Test] {
        let n_kw = clips.iter().filter(|c| c.split == split).count();
        let mean = n_kw as f32 / keywords.len().max(1) as f32;
        let mut u: Vec<Clip> = unknown
            .iter()
            .filter(|c| c.split == split)
            .cloned()
            .collect();
        if let Some(ratio) = opts.unknown_ratio {
            let keep = (mean * ratio).round() as usize;
            while u.len() > keep {
                let i = rng.gen_range(0..u.len());
                u.swap_remove(i);
            }
        }
        clips.extend(u);
        let n_sil = (mean * opts.silence_ratio).round() as usize;
        for i in 0..n_sil {
            // Digital silence when there is no background recording; otherwise a random
            // one-second cut at a random gain.
            let samples = if background.is_empty() {
                vec![0; CLIP_SAMPLES]
            } else {
                let b = &background[rng.gen_range(0..background.len())];
                let start = rng.gen_range(0..=b.len() - CLIP_SAMPLES);
                let gain: f32 = rng.gen_range(0.0..1.0);
                b[start..start + CLIP_SAMPLES]
                    .iter()
                    .map(|&s| (s as f32 * gain).round() as i16)
                    .collect()
            };
            clips.push(Clip {
                samples,
                label: labels.iter().position(|l| l == SILENCE).unwrap_or(0),
                split,
                source: format!("{BACKGROUND}/{split:?}/{i}"),
            });
        }
    }
    Ok(KwsDataset { labels, clips })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, f: f32, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f32::consts::PI * f * i as f32 / 16_000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn loads_layout_splits_unknown_and_silence() {
        let root = std::env::temp_dir().join(format!("edgeloop-sc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (w, f) in [
            ("yes", 500.0),
            ("no", 900.0),
            ("cat", 1500.0),
            ("dog", 2000.0),
        ] {
            std::fs::create_dir_all(root.join(w)).unwrap();
            for i in 0..5 {
                wav::write(
                    &root.join(w).join(format!("s{i}_nohash_0.wav")),
                    16_000,
                    &tone(12_000 + i * 1000, f, 3000.0),
                )
                .unwrap();
            }
        }
        std::fs::create_dir_all(root.join(BACKGROUND)).unwrap();
        wav::write(
            &root.join(BACKGROUND).join("white.wav"),
            16_000,
            &tone(40_000, 300.0, 800.0),
        )
        .unwrap();
        std::fs::write(
            root.join("validation_list.txt"),
            "yes/s3_nohash_0.wav\nno/s3_nohash_0.wav\n",
        )
        .unwrap();
        std::fs::write(
            root.join("testing_list.txt"),
            "yes/s4_nohash_0.wav\ncat/s4_nohash_0.wav\n",
        )
        .unwrap();
        let opts = LoadOptions {
            keywords: vec!["yes".into(), "no".into()],
            unknown_ratio: None,
            ..LoadOptions::default()
        };
        let d = load(&root, &opts).unwrap();
        assert_eq!(d.labels, ["yes", "no", SILENCE, UNKNOWN]);
        let count = |label: usize, split: Split| {
            d.clips
                .iter()
                .filter(|c| c.label == label && c.split == split)
                .count()
        };
        assert_eq!(count(0, Split::Train), 3);
        assert_eq!(count(0, Split::Validation), 1);
        assert_eq!(count(0, Split::Test), 1);
        assert_eq!(count(3, Split::Test), 1);
        assert_eq!(count(3, Split::Train), 9);
        assert_eq!(count(2, Split::Train), 4);
        assert!(d.clips.iter().all(|c| c.samples.len() == CLIP_SAMPLES));
        assert_eq!(d, load(&root, &opts).unwrap());

        // A malformed WAV names the file and the problem.
        std::fs::write(root.join("no").join("broken.wav"), b"RIFF\x04\0\0\0WAVE").unwrap();
        let e = load(&root, &opts).unwrap_err().to_string();
        assert!(
            e.contains("broken.wav") && e.contains("no fmt chunk"),
            "{e}"
        );
        std::fs::remove_file(root.join("no").join("broken.wav")).unwrap();
        // A wrong sample rate is refused with the fix.
        wav::write(&root.join("no").join("fast.wav"), 8_000, &[0; 100]).unwrap();
        let e = load(&root, &opts).unwrap_err().to_string();
        assert!(e.contains("fast.wav") && e.contains("8000 Hz"), "{e}");
        // Unknown keyword.
        let e = load(
            &root,
            &LoadOptions {
                keywords: vec!["zebra".into()],
                ..opts.clone()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("zebra"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

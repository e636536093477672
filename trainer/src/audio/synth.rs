//! The synthetic keyword corpus: every keyword is a fixed sequence of formant glides (voiced
//! segments through a Klatt-style cascade of three resonators), noise bands (fricatives),
//! bursts and gaps; each clip renders one with a seeded "speaker" (pitch, vocal-tract length,
//! speaking rate) and per-clip jitter, a random gain and time shift, and background noise
//! (white, pink-ish or mains hum) at a random SNR. `_silence_` clips are background noise
//! alone; `_unknown_` clips are random formant sequences that are none of the keywords.
//!
//! Deterministic: the same [`SynthConfig`] always gives the same clips, bit for bit.
//! Splits are by speaker (as in Speech Commands): speakers `s % 10 == 8` are validation,
//! `s % 10 == 9` test, so held-out clips come from voices never trained on.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Clip, KwsDataset, Split, SILENCE, UNKNOWN};
use edgeloop_runtime::audio::{CLIP_SAMPLES, SAMPLE_RATE};

/// One piece of a keyword's recipe.
#[derive(Debug, Clone, Copy)]
enum Seg {
    /// Voiced: duration (ms), F1, F2, F3 glides (start, end Hz), relative amplitude.
    Voiced(f32, [f32; 2], [f32; 2], [f32; 2], f32),
    /// Noise band (fricative): duration (ms), centre (Hz), bandwidth (Hz), amplitude.
    Noise(f32, f32, f32, f32),
    /// Stop burst: duration (ms), centre (Hz), amplitude (decays exponentially).
    Burst(f32, f32, f32),
    /// Silence (stop closure): duration (ms).
    Gap(f32),
}

use Seg::{Burst, Gap, Noise, Voiced};

/// The synthetic keywords, with their recipes.
const WORDS: &[(&str, &[Seg])] = &[
    (
        "yes",
        &[
            Voiced(
                60.0,
                [280.0, 300.0],
                [2250.0, 2100.0],
                [3000.0, 2900.0],
                0.6,
            ),
            Voiced(
                170.0,
                [300.0, 580.0],
                [2100.0, 1800.0],
                [2900.0, 2600.0],
                1.0,
            ),
            Noise(150.0, 5500.0, 2500.0, 0.35),
        ],
    ),
    (
        "no",
        &[
            Voiced(
                80.0,
                [250.0, 250.0],
                [1400.0, 1300.0],
                [2600.0, 2600.0],
                0.35,
            ),
            Voiced(
                260.0,
                [550.0, 380.0],
                [1000.0, 800.0],
                [2500.0, 2400.0],
                1.0,
            ),
        ],
    ),
    (
        "up",
        &[
            Voiced(
                180.0,
                [650.0, 620.0],
                [1250.0, 1150.0],
                [2500.0, 2500.0],
                1.0,
            ),
            Gap(60.0),
            Burst(20.0, 900.0, 0.4),
        ],
    ),
    (
        "down",
        &[
            Burst(15.0, 3500.0, 0.5),
            Voiced(
                230.0,
                [750.0, 420.0],
                [1250.0, 900.0],
                [2500.0, 2400.0],
                1.0,
            ),
            Voiced(
                90.0,
                [250.0, 250.0],
                [1500.0, 1500.0],
                [2600.0, 2600.0],
                0.35,
            ),
        ],
    ),
    (
        "left",
        &[
            Voiced(
                70.0,
                [380.0, 380.0],
                [1000.0, 1100.0],
                [2700.0, 2700.0],
                0.6,
            ),
            Voiced(
                140.0,
                [400.0, 580.0],
                [1200.0, 1800.0],
                [2600.0, 2600.0],
                1.0,
            ),
            Noise(90.0, 6500.0, 3000.0, 0.15),
            Gap(40.0),
            Burst(15.0, 4500.0, 0.4),
        ],
    ),
    (
        "right",
        &[
            Voiced(
                80.0,
                [400.0, 400.0],
                [1100.0, 1200.0],
                [1600.0, 1700.0],
                0.6,
            ),
            Voiced(
                220.0,
                [750.0, 350.0],
                [1200.0, 2200.0],
                [2500.0, 2800.0],
                1.0,
            ),
            Gap(40.0),
            Burst(15.0, 4500.0, 0.4),
        ],
    ),
];

/// The synthetic keywords, in label order.
pub fn keywords() -> Vec<&'static str> {
    WORDS.iter().map(|(w, _)| *w).collect()
}

/// Corpus settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Seed; the same config always gives the same corpus.
    pub seed: u64,
    /// Clips per class (keywords, `_silence_`, `_unknown_`), across all splits.
    pub clips_per_class: usize,
    /// Distinct speakers (at least 10, so that every split has some).
    pub speakers: usize,
}

impl SynthConfig {
    /// `clips_per_class` clips per class over 40 speakers.
    pub fn new(seed: u64, clips_per_class: usize) -> Self {
        SynthConfig {
            seed,
            clips_per_class,
            speakers: 40,
        }
    }
}

/// A speaker's voice.
#[derive(Debug, Clone, Copy)]
struct Speaker {
    f0: f32,
    formant_scale: f32,
    rate: f32,
    breathiness: f32,
}

impl Speaker {
    fn new(seed: u64, id: usize) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5BEA_CE00_0000 ^ id as u64);
        Speaker {
            f0: r.gen_range(85.0..250.0),
            formant_scale: r.gen_range(0.88..1.16),
            rate: r.gen_range(0.8..1.25),
            breathiness: r.gen_range(0.0..0.15),
        }
    }
}

/// A two-pole resonator (Klatt): unity gain at DC, peak at `f` with bandwidth `bw`.
#[derive(Debug, Default, Clone, Copy)]
struct Resonator {
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn step(&mut self, x: f32, f: f32, bw: f32) -> f32 {
        let sr = SAMPLE_RATE as f32;
        let f = f.min(0.45 * sr);
        let c = -(-2.0 * std::f32::consts::PI * bw / sr).exp();
        let b = 2.0
            * (-std::f32::consts::PI * bw / sr).exp()
            * (2.0 * std::f32::consts::PI * f / sr).cos();
        let a = 1.0 - b - c;
        let y = a * x + b * self.y1 + c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Renders a recipe (float samples, peak-normalised to 1).
fn render(recipe: &[Seg], sp: &Speaker, r: &mut ChaCha8Rng) -> Vec<f32> {
    let sr = SAMPLE_RATE as f32;
    let rate = sp.rate * r.gen_range(0.92..1.08);
    let f0 = sp.f0 * r.gen_range(0.92..1.08);
    let f0_slope = r.gen_range(-0.3..0.1);
    let fs: [f32; 3] = std::array::from_fn(|_| sp.formant_scale * r.gen_range(0.97..1.03));
    let mut out = Vec::new();
    let mut phase = 0.0f32;
    let (mut g1, mut g2) = (0.0f32, 0.0f32);
    let mut res = [Resonator::default(); 3];
    let mut noise_res = Resonator::default();
    let total_ms: f32 = recipe
        .iter()
        .map(|s| match s {
            Voiced(ms, ..) | Noise(ms, ..) | Burst(ms, ..) | Gap(ms) => *ms,
        })
        .sum();
    let mut elapsed = 0usize;
    let total = (total_ms / rate * sr / 1000.0).max(1.0);
    for seg in recipe {
        let ms = match seg {
            Voiced(ms, ..) | Noise(ms, ..) | Burst(ms, ..) | Gap(ms) => *ms,
        };
        let n = (ms / rate * sr / 1000.0).round().max(1.0) as usize;
        let ramp = (0.008 * sr) as usize;
        for i in 0..n {
            let t = i as f32 / n as f32;
            let env = {
                let e = |k: usize| {
                    if k >= ramp {
                        1.0
                    } else {
                        0.5 - 0.5 * (std::f32::consts::PI * k as f32 / ramp as f32).cos()
                    }
                };
                e(i) * e(n - 1 - i)
            };
            let progress = (elapsed + i) as f32 / total;
            let v = match *seg {
                Voiced(_, f1, f2, f3, amp) => {
                    let pitch = f0 * (1.0 + f0_slope * progress);
                    phase += pitch / sr;
                    let mut src = 0.0;
                    if phase >= 1.0 {
                        phase -= 1.0;
                        src = 1.0;
                    }
                    // Glottal pulse shaping (two one-pole low-passes) plus breath noise.
                    g1 = 0.75 * g1 + src;
                    g2 = 0.75 * g2 + g1;
                    let mut x = g2 * 0.1 + sp.breathiness * r.gen_range(-1.0..1.0);
                    let lerp = |f: [f32; 2]| f[0] + (f[1] - f[0]) * t;
                    for (k, (f, bw)) in [(lerp(f1), 80.0), (lerp(f2), 100.0), (lerp(f3), 150.0)]
                        .into_iter()
                        .enumerate()
                    {
                        x = res[k].step(x, f * fs[k], bw);
                    }
                    x * amp
                }
                Noise(_, centre, bw, amp) => {
                    let x = r.gen_range(-1.0f32..1.0);
                    noise_res.step(x, centre * fs[1], bw) * amp * 4.0
                }
                Burst(_, centre, amp) => {
                    let x = r.gen_range(-1.0f32..1.0);
                    noise_res.step(x, centre * fs[1], 2500.0) * amp * 4.0 * (-4.0 * t).exp()
                }
                Gap(_) => 0.0,
            };
            out.push(v * env);
        }
        elapsed += n;
    }
    let peak = out.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    out.iter_mut().for_each(|v| *v /= peak);
    out
}

/// A random formant recipe that is none of the keywords (for `_unknown_`).
fn random_recipe(r: &mut ChaCha8Rng) -> Vec<Seg> {
    let mut segs = Vec::new();
    if r.gen_bool(0.3) {
        segs.push(Burst(15.0, r.gen_range(800.0..5000.0), 0.4));
    }
    for _ in 0..r.gen_range(1..=3) {
        let f1 = [r.gen_range(250.0..800.0), r.gen_range(250.0..800.0)];
        let f2 = [r.gen_range(800.0..2400.0), r.gen_range(800.0..2400.0)];
        let f3 = [r.gen_range(2300.0..3100.0), r.gen_range(2300.0..3100.0)];
        segs.push(Voiced(
            r.gen_range(60.0..220.0),
            f1,
            f2,
            f3,
            r.gen_range(0.4..1.0),
        ));
    }
    if r.gen_bool(0.4) {
        segs.push(Noise(
            r.gen_range(60.0..160.0),
            r.gen_range(3000.0..7000.0),
            2500.0,
            0.3,
        ));
    }
    segs
}

/// Background noise of `n` samples with RMS about 1: white, pink-ish or mains hum + white.
fn background(n: usize, r: &mut ChaCha8Rng) -> Vec<f32> {
    let kind = r.gen_range(0..3);
    let hum = if r.gen_bool(0.5) { 50.0 } else { 60.0 };
    let mut lp = 0.0f32;
    (0..n)
        .map(|i| {
            let w: f32 = r.gen_range(-1.0..1.0) * 1.73;
            match kind {
                0 => w,
                1 => {
                    lp = 0.95 * lp + 0.05 * w;
                    lp * 5.0 + w * 0.3
                }
                _ => {
                    let t = i as f32 / SAMPLE_RATE as f32;
                    let h: f32 = (1..=4)
                        .map(|k| (2.0 * std::f32::consts::PI * hum * k as f32 * t).sin() / k as f32)
                        .sum();
                    h + 0.3 * w
                }
            }
        })
        .collect()
}

/// One clip of class `class` (an index into `labels`) by speaker `speaker`.
fn clip(labels: &[String], class: usize, speaker: &Speaker, r: &mut ChaCha8Rng) -> Vec<i16> {
    let name = labels[class].as_str();
    let mut mix = vec![0.0f32; CLIP_SAMPLES];
    let word_level = 32767.0 * 10f32.powf(r.gen_range(-1.4..-0.15));
    let mut noise_level = if name == SILENCE {
        32767.0 * 10f32.powf(r.gen_range(-4.0..-1.3))
    } else {
        // SNR 5 to 35 dB against the word's peak-normalised level (RMS ≈ peak / 4).
        word_level / 4.0 * 10f32.powf(-r.gen_range(5.0..35.0) / 20.0)
    };
    if r.gen_bool(0.1) {
        noise_level *= 0.01;
    }
    if name != SILENCE {
        let recipe = match WORDS.iter().find(|(w, _)| *w == name) {
            Some((_, recipe)) => recipe.to_vec(),
            None => random_recipe(r),
        };
        let word = render(&recipe, speaker, r);
        let len = word.len().min(CLIP_SAMPLES);
        let start = r.gen_range(0..=CLIP_SAMPLES - len);
        for (m, w) in mix[start..start + len].iter_mut().zip(&word) {
            *m += w * word_level;
        }
    }
    for (m, b) in mix.iter_mut().zip(background(CLIP_SAMPLES, r)) {
        *m += b * noise_level;
    }
    mix.iter()
        .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Generates the corpus: classes are the keywords, then `_silence_`, then `_unknown_`.
pub fn generate(cfg: &SynthConfig) -> KwsDataset {
    let mut labels: Vec<String> = WORDS.iter().map(|(w, _)| w.to_string()).collect();
    labels.push(SILENCE.into());
    labels.push(UNKNOWN.into());
    let speakers = cfg.speakers.max(10);
    let voices: Vec<Speaker> = (0..speakers).map(|s| Speaker::new(cfg.seed, s)).collect();
    let mut clips = Vec::with_capacity(labels.len() * cfg.clips_per_class);
    for class in 0..labels.len() {
        for i in 0..cfg.clips_per_class {
            let mut r = ChaCha8Rng::seed_from_u64(
                cfg.seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(((class as u64) << 32) | i as u64),
            );
            let speaker = (i * 7 + class) % speakers;
            let split = match speaker % 10 {
                8 => Split::Validation,
                9 => Split::Test,
                _ => Split::Train,
            };
            clips.push(Clip {
                samples: clip(&labels, class, &voices[speaker], &mut r),
                label: class,
                split,
                source: format!("synth:{}:{i}:speaker{speaker}", labels[class]),
            });
        }
    }
    KwsDataset { labels, clips }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_split_by_speaker() {
        let cfg = SynthConfig::new(5, 20);
        let a = generate(&cfg);
        assert_eq!(a, generate(&cfg));
        assert_eq!(a.labels.len(), WORDS.len() + 2);
        assert_eq!(a.clips.len(), a.labels.len() * 20);
        for c in &a.clips {
            assert_eq!(c.samples.len(), CLIP_SAMPLES);
        }
        for s in [Split::Train, Split::Validation, Split::Test] {
            assert!(a.clips.iter().any(|c| c.split == s), "{s:?} is empty");
        }
        let b = generate(&SynthConfig::new(6, 20));
        assert_ne!(a.clips[0].samples, b.clips[0].samples);
        // Keyword clips are louder than their background; silence is quiet.
        let rms = |s: &[i16]| {
            (s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        let silence = a.labels.iter().position(|l| l == SILENCE).unwrap();
        let loud = a
            .clips
            .iter()
            .filter(|c| c.label == 0)
            .map(|c| rms(&c.samples))
            .sum::<f64>();
        let quiet = a
            .clips
            .iter()
            .filter(|c| c.label == silence)
            .map(|c| rms(&c.samples))
            .sum::<f64>();
        assert!(loud > 3.0 * quiet, "{loud} vs {quiet}");
    }
}

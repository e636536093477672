//! Front-end tests: tables against their generator, the integer log2, the FFT and the whole
//! pipeline against an f64 reference on seeded random audio, bit-exact determinism (a pinned
//! checksum that the firmware reproduces), full-scale inputs, and buffer-length errors.

use super::*;
use crate::ops::testing::Rng;

/// Seeded random audio: a few sinusoids (random frequency, amplitude, phase) over white noise,
/// with a random overall level from near silence to near full scale.
fn random_audio(rng: &mut Rng, n: usize) -> Vec<i16> {
    let level = rng.log_uniform(20.0, 30_000.0);
    let tones: Vec<(f64, f64, f64)> = (0..rng.range(0, 4))
        .map(|_| {
            (
                rng.log_uniform(80.0, 7_800.0),
                rng.unit(),
                rng.unit() * std::f64::consts::TAU,
            )
        })
        .collect();
    let noise = rng.unit() * 0.5;
    let norm = 1.0 / (tones.iter().map(|t| t.1).sum::<f64>() + noise + 1e-9);
    (0..n)
        .map(|i| {
            let t = i as f64 / SAMPLE_RATE as f64;
            let mut v: f64 = tones
                .iter()
                .map(|&(f, a, p)| a * (std::f64::consts::TAU * f * t + p).sin())
                .sum();
            v += noise * (rng.unit() * 2.0 - 1.0);
            (v * norm * level).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// f64 reference of one frame: exact Hann window, exact DFT, exact triangles; `E` per band
/// in (int16 sample units)².
fn reference_energies(frame: &[i16]) -> Vec<f64> {
    let win: Vec<f64> = (0..WINDOW)
        .map(|n| 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / WINDOW as f64).cos())
        .collect();
    let x: Vec<f64> = frame.iter().zip(&win).map(|(&s, w)| s as f64 * w).collect();
    let power: Vec<f64> = (0..BINS)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, v) in x.iter().enumerate() {
                let a = std::f64::consts::TAU * (k * n % FFT_SIZE) as f64 / FFT_SIZE as f64;
                re += v * a.cos();
                im -= v * a.sin();
            }
            re * re + im * im
        })
        .collect();
    gen::mel_weights_f64()
        .iter()
        .map(|w| w.iter().zip(&power).map(|(a, b)| a * b).sum())
        .collect()
}

#[test]
fn tables_match_generator() {
    let generated = gen::render();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/audio/tables.rs");
    if std::env::var_os("EDGELOOP_WRITE_AUDIO_TABLES").is_some() {
        std::fs::write(path, &generated).expect("write tables.rs");
    }
    assert!(
        generated == include_str!("tables.rs"),
        "audio/tables.rs differs from gen.rs; regenerate with EDGELOOP_WRITE_AUDIO_TABLES=1"
    );
}

#[test]
fn every_mel_band_has_weights() {
    for (m, (pair, first)) in tables::MEL_OFFSET
        .windows(2)
        .zip(tables::MEL_FIRST_BIN)
        .enumerate()
    {
        let n = pair[1] - pair[0];
        assert!(n >= 2, "band {m} covers {n} bins");
        let last = first as usize + n as usize - 1;
        assert!(last < BINS);
    }
}

#[test]
fn log2_matches_f64() {
    let mut rng = Rng::new(1);
    let mut worst = 0.0f64;
    for i in 0..20_000 {
        let v = match i {
            0 => 2,
            1 => u64::MAX,
            2 => 3,
            _ => rng.next_u64() >> rng.range(0, 62),
        }
        .max(2);
        let got = log2::log2_q16(v) as f64 / 65536.0;
        worst = worst.max((got - (v as f64).log2()).abs());
    }
    assert!(worst < 1e-4, "log2 error {worst}");
    assert_eq!(log2::log2_q16(0), 0);
    assert_eq!(log2::log2_q16(1), 0);
    assert_eq!(log2::log2_q16(1 << 40), 40 << 16);
}

#[test]
fn fft_matches_f64_dft() {
    let mut rng = Rng::new(2);
    let mut worst_all = 0.0f64;
    for _ in 0..8 {
        let audio = random_audio(&mut rng, WINDOW);
        let frame: &[i16; WINDOW] = audio.as_slice().try_into().unwrap();
        let mut s = Scratch::new();
        fft::load_windowed(frame, &mut s);
        fft::real_fft(&mut s);
        let mut worst = 0.0f64;
        for k in 0..BINS {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, (&x, &w)) in frame.iter().zip(tables::HANN_Q15.iter()).enumerate() {
                let v = x as f64 * w as f64;
                let a = std::f64::consts::TAU * (k * n % FFT_SIZE) as f64 / FFT_SIZE as f64;
                re += v * a.cos();
                im -= v * a.sin();
            }
            let (re, im) = (re / FFT_SIZE as f64, im / FFT_SIZE as f64);
            worst = worst
                .max((s.bins[k][0] as f64 - re).abs())
                .max((s.bins[k][1] as f64 - im).abs());
        }
        // The halving load, eight halving stages and the split, each rounding by at most half
        // an LSB, plus twiddle rounding.
        assert!(worst <= 6.0, "FFT error {worst} LSB");
        worst_all = worst_all.max(worst);
    }
    println!("real FFT vs f64 DFT: worst {worst_all} LSB");
}

/// The split puts each frequency where a 512-point transform of the real frame would: a
/// cosine at bin `k` peaks at bin `k` (on both sides of the split's pairing, `k` and
/// `256 − k`, and at the pair that meets itself, 128), and bins 0 and 256 of a real frame are
/// real (their imaginary parts are exactly 0).
#[test]
fn real_fft_puts_a_bin_centred_cosine_in_its_bin() {
    for bin in [3usize, 7, 64, 127, 128, 129, 200, 250] {
        let frame: Vec<i16> = (0..WINDOW)
            .map(|n| {
                let a = std::f64::consts::TAU * (bin * n) as f64 / FFT_SIZE as f64;
                (20_000.0 * a.cos()).round() as i16
            })
            .collect();
        let frame: &[i16; WINDOW] = frame.as_slice().try_into().unwrap();
        let mut s = Scratch::new();
        fft::load_windowed(frame, &mut s);
        fft::real_fft(&mut s);
        let power = |k: usize| (s.bins[k][0] as f64).powi(2) + (s.bins[k][1] as f64).powi(2);
        let peak = (0..BINS).max_by(|&a, &b| power(a).total_cmp(&power(b)));
        assert_eq!(peak, Some(bin), "cosine at bin {bin}");
        assert_eq!(
            (s.bins[0][1], s.bins[BINS - 1][1]),
            (0, 0),
            "cosine at bin {bin}"
        );
    }
}

/// The twiddle-major complex FFT equals the reference (block-major) one bit for bit, on
/// windowed random audio and on random components anywhere in the allowed ±2^29 (magnitudes
/// below 2^30).
#[test]
fn fft_equals_its_reference() {
    use fft::CFFT_SIZE;
    let mut rng = Rng::new(7);
    for case in 0..64 {
        let mut z = [[0i32; 2]; CFFT_SIZE];
        if case % 2 == 0 {
            let audio = random_audio(&mut rng, WINDOW);
            let frame: &[i16; WINDOW] = audio.as_slice().try_into().unwrap();
            let mut s = Scratch::new();
            fft::load_windowed(frame, &mut s);
            z.copy_from_slice(&s.bins[..CFFT_SIZE]);
        } else {
            let bound = 1 << 29;
            let parts = rng.i32_vec(2 * CFFT_SIZE, bound);
            for (p, v) in z.iter_mut().zip(parts.chunks_exact(2)) {
                *p = [v[0], v[1]];
            }
        }
        let mut z_ref = z;
        fft::fft_in_place(&mut z);
        fft::fft_in_place_reference(&mut z_ref);
        assert_eq!(z, z_ref, "case {case}");
    }
}

/// Errors in dB of the integer `log2 E` (before int8 rounding) and of the int8 feature against
/// the f64 reference, over bands whose reference energy is at least `2^8` (well above the
/// fixed-point floor of 1): `(max, mean)` each.
fn accuracy(seed: u64, clips: usize) -> ((f64, f64), (f64, f64), usize) {
    let db = 10.0 * 2f64.log10();
    let mut rng = Rng::new(seed);
    let (mut max_pre, mut sum_pre, mut max_q, mut sum_q, mut n) = (0f64, 0f64, 0f64, 0f64, 0);
    let mut s = Scratch::new();
    for _ in 0..clips {
        let audio = random_audio(&mut rng, WINDOW + 3 * HOP);
        for t in 0..frames(audio.len()) {
            let frame: &[i16; WINDOW] = audio[t * HOP..t * HOP + WINDOW].try_into().unwrap();
            let mut e = [0u64; MEL_BANDS];
            frame_mel_energies(frame, &mut s, &mut e);
            let reference = reference_energies(frame);
            for (m, &r) in reference.iter().enumerate() {
                if r < 256.0 {
                    continue;
                }
                let l = energy_log2_q16(e[m]);
                let pre = (l as f64 / 65536.0 - r.log2()).abs() * db;
                let q = quantize_log2(l) as f64;
                let deq = (q - FEATURE_ZERO_POINT as f64) * FEATURE_SCALE as f64;
                let qe = (deq - r.log2()).abs() * db;
                max_pre = max_pre.max(pre);
                max_q = max_q.max(qe);
                sum_pre += pre;
                sum_q += qe;
                n += 1;
            }
        }
    }
    let nf = n.max(1) as f64;
    ((max_pre, sum_pre / nf), (max_q, sum_q / nf), n)
}

#[test]
fn accuracy_vs_f64() {
    let ((max_pre, mean_pre), (max_q, mean_q), n) = accuracy(3, 24);
    println!(
        "audio front end vs f64 over {n} band values: log-mel before int8 max {max_pre:.4} dB \
         mean {mean_pre:.5} dB; int8 features max {max_q:.3} dB mean {mean_q:.3} dB"
    );
    assert!(n > 2_000);
    assert!(max_pre < 0.25 && mean_pre < 0.01, "{max_pre} {mean_pre}");
    // int8 step is 0.2·log2 = 0.602 dB: rounding adds at most half of it.
    assert!(max_q < 0.301 + max_pre && mean_q < 0.2, "{max_q} {mean_q}");
}

#[test]
fn full_scale_inputs_do_not_overflow() {
    let mut s = Scratch::new();
    let db = 10.0 * 2f64.log10();
    let cases: [Vec<i16>; 4] = [
        vec![i16::MAX; WINDOW],
        vec![i16::MIN; WINDOW],
        (0..WINDOW)
            .map(|n| if n % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect(),
        (0..WINDOW)
            .map(|n| if (n / 8) % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect(),
    ];
    for c in &cases {
        let frame: &[i16; WINDOW] = c.as_slice().try_into().unwrap();
        let mut e = [0u64; MEL_BANDS];
        frame_mel_energies(frame, &mut s, &mut e);
        for (m, r) in reference_energies(c).iter().enumerate() {
            if *r >= 65536.0 {
                let got = energy_log2_q16(e[m]) as f64 / 65536.0;
                assert!(
                    (got - r.log2()).abs() * db < 0.25,
                    "band {m}: {got} vs {}",
                    r.log2()
                );
            }
        }
        let mut q = [0i8; MEL_BANDS];
        frame_features(frame, &mut s, &mut q);
        assert!(q.iter().all(|&v| v < 127), "saturated: {q:?}");
    }
    let silence = [0i16; WINDOW];
    let mut q = [0i8; MEL_BANDS];
    frame_features(&silence, &mut s, &mut q);
    assert_eq!(q, [-128; MEL_BANDS]);
}

/// FNV-1a of the int8 features.
pub(crate) fn checksum(features: &[i8]) -> u64 {
    features.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u8 as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The clip the pinned checksum is taken on (the firmware test renders the same one).
pub(crate) fn golden_clip() -> Vec<i16> {
    random_audio(&mut Rng::new(2026), CLIP_SAMPLES)
}

#[test]
fn features_are_deterministic_and_pinned() {
    let clip = golden_clip();
    let mut a = vec![0i8; CLIP_FEATURES];
    let mut b = vec![0i8; CLIP_FEATURES];
    assert_eq!(log_mel(&clip, &mut Scratch::new(), &mut a), Ok(FRAMES));
    let mut s = Scratch::new();
    s.bins.fill([12345, -6789]);
    assert_eq!(log_mel(&clip, &mut s, &mut b), Ok(FRAMES));
    assert_eq!(a, b);
    assert_eq!(FRAMES, 49);
    let sum = checksum(&a);
    println!("golden log-mel checksum {sum:#018x}");
    assert_eq!(
        sum, GOLDEN_CHECKSUM,
        "the integer front end's output changed"
    );
}

/// Checksum of [`golden_clip`]'s features; any change to the front end's arithmetic or tables
/// changes it (and must be deliberate: models are trained on these features).
const GOLDEN_CHECKSUM: u64 = 0x763f_0318_99f4_59e4;

#[test]
fn wrong_buffer_lengths_are_errors() {
    let mut s = Scratch::new();
    let mut out = vec![0i8; MEL_BANDS];
    assert_eq!(
        log_mel(&[0; WINDOW - 1], &mut s, &mut out),
        Err(Error::AudioBufferLength {
            needed: WINDOW as u32,
            given: WINDOW as u32 - 1
        })
    );
    assert_eq!(log_mel(&[0; WINDOW], &mut s, &mut out), Ok(1));
    let mut short = vec![0i8; MEL_BANDS - 1];
    assert!(matches!(
        log_mel(&[0; WINDOW + HOP], &mut s, &mut short),
        Err(Error::AudioBufferLength {
            needed: 80,
            given: 39
        })
    ));
}

/// The 32-bit split equals its 64-bit reference bit for bit, on the complex FFT of windowed
/// random audio and of random components anywhere in the allowed ±2^29.
#[test]
fn split_equals_its_reference() {
    use fft::CFFT_SIZE;
    let mut rng = Rng::new(11);
    for case in 0..64 {
        let mut s = Scratch::new();
        if case % 2 == 0 {
            let audio = random_audio(&mut rng, WINDOW);
            let frame: &[i16; WINDOW] = audio.as_slice().try_into().unwrap();
            fft::load_windowed(frame, &mut s);
        } else {
            let bound = 1 << 29;
            let parts = rng.i32_vec(2 * CFFT_SIZE, bound);
            for (p, v) in s.bins.iter_mut().zip(parts.chunks_exact(2)) {
                *p = [v[0], v[1]];
            }
        }
        fft::fft_in_place(s.bins.first_chunk_mut().unwrap());
        let mut r = s.clone();
        fft::split_real(&mut s.bins);
        fft::split_real_reference(&mut r.bins);
        assert_eq!(s.bins, r.bins, "case {case}");
    }
}

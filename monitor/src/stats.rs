//! Drift statistics between a reference sample and a current sample.
//!
//! Conventions follow Evidently (the anchor named in DESIGN.md) and match scipy where scipy has
//! the statistic (checked by `stats::tests::matches_scipy`):
//!
//! * Numeric binning: `bins` equal-width bins over the combined range of both samples (numpy's
//!   `histogram_bin_edges(concat(ref, cur), bins)`; a constant sample gets the range `v ± 0.5`).
//! * [`psi`]: `Σ (c − r) ln(c / r)` over bin proportions, an empty bin counting as 0.0001.
//! * [`jensen_shannon`]: scipy's `jensenshannon` distance (natural log, no smoothing).
//! * [`ks_2samp`]: the two-sample Kolmogorov–Smirnov statistic, as scipy; its p-value uses the
//!   asymptotic Kolmogorov distribution (scipy's `kstwobign.sf(√(nm/(n+m))·D)`), not scipy's
//!   default exact/`kstwo` p-value. The two differ most for small samples: up to 0.043 in
//!   `matches_scipy` (samples of 30 and 50 rows); prefer windows of a few hundred rows.
//! * [`wasserstein`]: scipy's `wasserstein_distance` (1-D, first order); [`wasserstein_normed`]
//!   divides it by the reference's population standard deviation (at least 0.001), as Evidently.
//! * [`chi_square`]: scipy's `chisquare(observed_current, expected = ref_proportion · n_current)`
//!   over the union of categories, with `df = categories − 1`.

use std::collections::BTreeMap;

/// Equal-width bin edges over the combined range of two samples (`bins + 1` edges).
pub fn bin_edges(a: &[f64], b: &[f64], bins: usize) -> Vec<f64> {
    let bins = bins.max(1);
    let (mut lo, mut hi) = a
        .iter()
        .chain(b)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() || !hi.is_finite() {
        lo = 0.0;
        hi = 1.0;
    }
    if lo == hi {
        lo -= 0.5;
        hi += 0.5;
    }
    // numpy's linspace: start + i·step, with the last edge set to the stop exactly.
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step + lo).collect();
    edges[bins] = hi;
    edges
}

/// Counts of `values` per bin, numpy semantics: bins are `[e_i, e_{i+1})`, the last one closed;
/// values outside the edges are not counted.
pub fn histogram(values: &[f64], edges: &[f64]) -> Vec<u64> {
    let bins = edges.len().saturating_sub(1);
    let mut counts = vec![0u64; bins];
    if bins == 0 {
        return counts;
    }
    let (lo, hi) = (edges[0], edges[bins]);
    for &v in values {
        if !(lo..=hi).contains(&v) {
            continue;
        }
        // numpy searches the edges; equal widths let us compute and then correct for rounding.
        let mut i = (((v - lo) / (hi - lo)) * bins as f64) as usize;
        i = i.min(bins - 1);
        while i > 0 && v < edges[i] {
            i -= 1;
        }
        while i + 1 < bins && v >= edges[i + 1] {
            i += 1;
        }
        counts[i] += 1;
    }
    counts
}

fn proportions(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// Population stability index from per-bin counts (reference, current).
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let r = proportions(reference);
    let c = proportions(current);
    r.iter()
        .zip(&c)
        .map(|(&r, &c)| {
            let r = if r == 0.0 { 1e-4 } else { r };
            let c = if c == 0.0 { 1e-4 } else { c };
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Jensen–Shannon distance (square root of the divergence, natural log) between two count vectors.
pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> f64 {
    let p = proportions(reference);
    let q = proportions(current);
    let rel = |x: f64, y: f64| if x > 0.0 { x * (x / y).ln() } else { 0.0 };
    let div: f64 = p
        .iter()
        .zip(&q)
        .map(|(&a, &b)| {
            let m = (a + b) / 2.0;
            (rel(a, m) + rel(b, m)) / 2.0
        })
        .sum();
    div.max(0.0).sqrt()
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    s
}

/// Number of elements of sorted `s` that are ≤ `x`.
fn count_le(s: &[f64], x: f64) -> usize {
    s.partition_point(|&v| v <= x)
}

/// Two-sample Kolmogorov–Smirnov test: `(D, asymptotic p-value)`. NaNs are ignored.
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> (f64, f64) {
    let a = sorted(reference);
    let b = sorted(current);
    if a.is_empty() || b.is_empty() {
        return (0.0, 1.0);
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let mut d = 0f64;
    for &x in a.iter().chain(&b) {
        let fa = count_le(&a, x) as f64 / n;
        let fb = count_le(&b, x) as f64 / m;
        d = d.max((fa - fb).abs());
    }
    let en = (n * m / (n + m)).sqrt();
    (d, kolmogorov_sf(en * d))
}

/// Survival function of the limiting Kolmogorov distribution (scipy's `kstwobign.sf`).
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < 1.0 {
        // CDF = √(2π)/x Σ_{k≥1} exp(−(2k−1)²π²/(8x²)); converges fast for small x.
        let mut s = 0.0;
        for k in 1..=50 {
            let t = (2 * k - 1) as f64;
            s += (-t * t * std::f64::consts::PI * std::f64::consts::PI / (8.0 * x * x)).exp();
        }
        (1.0 - (2.0 * std::f64::consts::PI).sqrt() / x * s).clamp(0.0, 1.0)
    } else {
        // SF = 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²x²); converges fast for large x.
        let mut s = 0.0;
        for k in 1..=100 {
            let kf = k as f64;
            let term = (-2.0 * kf * kf * x * x).exp();
            s += if k % 2 == 1 { term } else { -term };
            if term < 1e-18 {
                break;
            }
        }
        (2.0 * s).clamp(0.0, 1.0)
    }
}

/// First-order Wasserstein (earth mover's) distance between two 1-D samples. NaNs are ignored.
pub fn wasserstein(reference: &[f64], current: &[f64]) -> f64 {
    let a = sorted(reference);
    let b = sorted(current);
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
    all.sort_by(f64::total_cmp);
    let (n, m) = (a.len() as f64, b.len() as f64);
    all.windows(2)
        .map(|w| {
            let fa = count_le(&a, w[0]) as f64 / n;
            let fb = count_le(&b, w[0]) as f64 / m;
            (fa - fb).abs() * (w[1] - w[0])
        })
        .sum()
}

/// Population standard deviation.
pub fn std_dev(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

/// Wasserstein distance divided by the reference's standard deviation (floored at 0.001).
pub fn wasserstein_normed(reference: &[f64], current: &[f64]) -> f64 {
    wasserstein(reference, current) / std_dev(reference).max(0.001)
}

/// Counts per category of two categorical samples, over the union of categories (sorted).
pub fn category_counts(reference: &[u32], current: &[u32]) -> (Vec<u32>, Vec<u64>, Vec<u64>) {
    let mut map: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for &c in reference {
        map.entry(c).or_default().0 += 1;
    }
    for &c in current {
        map.entry(c).or_default().1 += 1;
    }
    let keys = map.keys().copied().collect();
    let r = map.values().map(|v| v.0).collect();
    let c = map.values().map(|v| v.1).collect();
    (keys, r, c)
}

/// Chi-square goodness of fit of current counts against reference proportions: `(statistic, p)`.
/// A category absent from the reference but present now gives an infinite statistic and p = 0.
pub fn chi_square(reference: &[u64], current: &[u64]) -> (f64, f64) {
    let nr: u64 = reference.iter().sum();
    let nc: u64 = current.iter().sum();
    if nr == 0 || nc == 0 || reference.len() < 2 {
        return (0.0, 1.0);
    }
    let mut stat = 0.0;
    for (&r, &c) in reference.iter().zip(current) {
        let expected = r as f64 / nr as f64 * nc as f64;
        let diff = c as f64 - expected;
        stat += if expected == 0.0 {
            if c == 0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            diff * diff / expected
        };
    }
    let df = (reference.len() - 1) as f64;
    (stat, chi2_sf(stat, df))
}

/// Survival function of the chi-square distribution with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if x.is_infinite() {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; relative error ~1e-15).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma function Q(a, x).
fn gamma_q(a: f64, x: f64) -> f64 {
    let ln_pre = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // Series for P(a, x).
        let mut sum = 1.0 / a;
        let mut term = sum;
        let mut ap = a;
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (1.0 - sum * ln_pre.exp()).clamp(0.0, 1.0)
    } else {
        // Continued fraction for Q(a, x), modified Lentz.
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (ln_pre.exp() * h).clamp(0.0, 1.0)
    }
}

/// Two-proportion z-test (pooled), two-sided p-value; 1.0 when either group is empty.
pub fn two_proportion_p(success_a: u64, n_a: u64, success_b: u64, n_b: u64) -> f64 {
    if n_a == 0 || n_b == 0 {
        return 1.0;
    }
    let (pa, pb) = (success_a as f64 / n_a as f64, success_b as f64 / n_b as f64);
    let p = (success_a + success_b) as f64 / (n_a + n_b) as f64;
    let se = (p * (1.0 - p) * (1.0 / n_a as f64 + 1.0 / n_b as f64)).sqrt();
    if se == 0.0 {
        return if pa == pb { 1.0 } else { 0.0 };
    }
    let z = ((pa - pb) / se).abs();
    // Two-sided normal tail: P(|Z| > z) = Q(1/2, z²/2).
    gamma_q(0.5, z * z / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Small deterministic generator (no dependency): xorshift plus Box–Muller.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        pub(crate) fn normal(&mut self, mean: f64, sd: f64) -> f64 {
            let u = self.uniform().max(1e-300);
            let v = self.uniform();
            mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    const SCIPY: &str = r#"
import json, sys
import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    r, k = np.array(c["ref"]), np.array(c["cur"])
    edges = np.histogram_bin_edges(np.concatenate([r, k]), bins=c["bins"])
    hr, hk = np.histogram(r, edges)[0], np.histogram(k, edges)[0]
    pr, pk = hr / hr.sum(), hk / hk.sum()
    pr2, pk2 = np.where(pr == 0, 1e-4, pr), np.where(pk == 0, 1e-4, pk)
    ks = stats.ks_2samp(r, k)
    en = len(r) * len(k) / (len(r) + len(k))
    cats = c["cat_ref"], c["cat_cur"]
    keys = sorted(set(cats[0]) | set(cats[1]))
    cr = np.array([cats[0].count(x) for x in keys], dtype=float)
    cc = np.array([cats[1].count(x) for x in keys], dtype=float)
    chi = stats.chisquare(cc, cr / cr.sum() * cc.sum())
    out.append(dict(
        hist_ref=hr.tolist(), hist_cur=hk.tolist(),
        psi=float(np.sum((pk2 - pr2) * np.log(pk2 / pr2))),
        js=float(jensenshannon(hr, hk)),
        ks=float(ks.statistic), ks_p_asymp=float(stats.kstwobign.sf(np.sqrt(en) * ks.statistic)),
        ks_p_scipy=float(ks.pvalue),
        wd=float(stats.wasserstein_distance(r, k)),
        chi=float(chi.statistic), chi_p=float(chi.pvalue)))
print(json.dumps(out))
"#;

    fn python() -> String {
        std::env::var("EDGELOOP_PYTHON").expect(
            "EDGELOOP_PYTHON must point at the project venv's python (scripts/test.sh sets it)",
        )
    }

    #[test]
    fn matches_scipy() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut cases = Vec::new();
        for i in 0..24 {
            let n = [30usize, 200, 1500][i % 3];
            let m = [50usize, 700, 120][i % 3];
            let shift = [0.0, 0.1, 0.5, 2.0][i % 4];
            let mut r: Vec<f64> = (0..n).map(|_| rng.normal(0.0, 1.0)).collect();
            let mut c: Vec<f64> = (0..m)
                .map(|_| rng.normal(shift, 1.0 + shift / 2.0))
                .collect();
            if i % 5 == 0 {
                // Ties, as in quantized summaries.
                r.iter_mut().for_each(|v| *v = (*v * 4.0).round() / 4.0);
                c.iter_mut().for_each(|v| *v = (*v * 4.0).round() / 4.0);
            }
            let k = 3 + i % 6;
            let cat_ref: Vec<u32> = (0..n).map(|_| (rng.uniform() * k as f64) as u32).collect();
            let cat_cur: Vec<u32> = (0..m)
                .map(|_| (rng.uniform().powf(1.0 + shift) * k as f64) as u32)
                .collect();
            cases.push(
                json!({"ref": r, "cur": c, "bins": 30, "cat_ref": cat_ref, "cat_cur": cat_cur}),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("cases.json");
        std::fs::write(&input, serde_json::to_vec(&cases).unwrap()).unwrap();
        let script = dir.path().join("scipy_stats.py");
        std::fs::write(&script, SCIPY).unwrap();
        let out = std::process::Command::new(python())
            .arg(&script)
            .arg(&input)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let close = |a: f64, b: f64, tol: f64, what: &str, i: usize| {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "case {i} {what}: ours {a}, scipy {b}"
            );
        };
        let mut ks_p_gap = 0f64;
        for (i, (case, w)) in cases.iter().zip(&want).enumerate() {
            let f = |k: &str| -> Vec<f64> { serde_json::from_value(case[k].clone()).unwrap() };
            let (r, c) = (f("ref"), f("cur"));
            let edges = bin_edges(&r, &c, 30);
            let (hr, hc) = (histogram(&r, &edges), histogram(&c, &edges));
            let wh: Vec<u64> = serde_json::from_value(w["hist_ref"].clone()).unwrap();
            let wc: Vec<u64> = serde_json::from_value(w["hist_cur"].clone()).unwrap();
            assert_eq!((hr.clone(), hc.clone()), (wh, wc), "case {i} histograms");
            let g = |k: &str| w[k].as_f64().unwrap();
            close(psi(&hr, &hc), g("psi"), 1e-12, "psi", i);
            close(jensen_shannon(&hr, &hc), g("js"), 1e-12, "js", i);
            let (d, p) = ks_2samp(&r, &c);
            close(d, g("ks"), 1e-12, "ks", i);
            close(p, g("ks_p_asymp"), 1e-9, "ks p", i);
            ks_p_gap = ks_p_gap.max((p - g("ks_p_scipy")).abs());
            close(wasserstein(&r, &c), g("wd"), 1e-9, "wasserstein", i);
            let cr: Vec<u32> = serde_json::from_value(case["cat_ref"].clone()).unwrap();
            let cc: Vec<u32> = serde_json::from_value(case["cat_cur"].clone()).unwrap();
            let (_, a, b) = category_counts(&cr, &cc);
            let (stat, p) = chi_square(&a, &b);
            if g("chi").is_finite() {
                close(stat, g("chi"), 1e-10, "chi2", i);
                close(p, g("chi_p"), 1e-9, "chi2 p", i);
            }
        }
        println!("KS p-value: max |asymptotic − scipy default| = {ks_p_gap:.3e}");
    }

    #[test]
    fn identical_samples_show_no_drift() {
        let v: Vec<f64> = (0..100).map(|i| f64::from(i % 17)).collect();
        let e = bin_edges(&v, &v, 30);
        let h = histogram(&v, &e);
        assert_eq!(psi(&h, &h), 0.0);
        assert_eq!(jensen_shannon(&h, &h), 0.0);
        assert_eq!(ks_2samp(&v, &v), (0.0, 1.0));
        assert_eq!(wasserstein(&v, &v), 0.0);
        let (_, a, b) = category_counts(&[1, 2, 2, 3], &[1, 2, 2, 3]);
        assert_eq!(chi_square(&a, &b), (0.0, 1.0));
    }

    #[test]
    fn special_functions() {
        // Γ(5) = 24, Γ(0.5) = √π.
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // chi2(df=2) sf = exp(−x/2).
        for x in [0.1, 1.0, 5.0, 30.0] {
            assert!((chi2_sf(x, 2.0) - (-x / 2.0f64).exp()).abs() < 1e-12);
        }
        // Two-sided normal tail at 1.959964 ≈ 0.05.
        let z = 1.959_963_984_540_054;
        assert!((gamma_q(0.5, z * z / 2.0) - 0.05).abs() < 1e-9);
        assert!((kolmogorov_sf(1.3580986393225505) - 0.05).abs() < 1e-9);
    }
}

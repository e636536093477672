//! MinHash signatures and an LSH index for near-duplicate detection.
//!
//! A document becomes a set of character `k`-shingles of its lower-cased text; MinHash with
//! `num_perm` universal hash functions `h_i(x) = (a_i x + b_i) mod (2^61 - 1)` estimates the
//! Jaccard similarity of two sets as the fraction of equal signature entries. The LSH index
//! cuts each signature into `bands` bands of `rows` rows: two documents become candidates when
//! any band is identical, which happens with probability `1 - (1 - s^rows)^bands` for
//! similarity `s`. Candidates are verified against the 16-bit truncated signatures kept per
//! document (b-bit MinHash: `P(equal) = s + (1 - s) / 65536`).
//!
//! Memory per indexed document: `2 * num_perm` bytes of signature plus, per band, one
//! hash-map slot and one chain link (about 20 bytes), i.e. about 600 bytes with the defaults
//! (128 permutations, ~16 bands) — independent of document length.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xxhash_rust::xxh3::xxh3_64;

const MERSENNE_61: u64 = (1 << 61) - 1;
const NONE: u32 = u32::MAX;

/// The character shingles of `text` (lower-cased, whitespace collapsed), hashed to 64 bits.
/// A text shorter than `k` characters gives one shingle (itself); an empty text gives none.
pub fn shingles(text: &str, k: usize) -> Vec<u64> {
    let mut chars: Vec<char> = Vec::with_capacity(text.len());
    let mut space = false;
    for c in text.chars().flat_map(|c| c.to_lowercase()) {
        if c.is_whitespace() {
            space = !chars.is_empty();
        } else {
            if space {
                chars.push(' ');
                space = false;
            }
            chars.push(c);
        }
    }
    if chars.is_empty() {
        return Vec::new();
    }
    let k = k.max(1);
    let mut buf = String::new();
    let mut out: Vec<u64> = if chars.len() <= k {
        buf.extend(chars.iter());
        vec![xxh3_64(buf.as_bytes())]
    } else {
        chars
            .windows(k)
            .map(|w| {
                buf.clear();
                buf.extend(w.iter());
                xxh3_64(buf.as_bytes())
            })
            .collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Exact Jaccard similarity of two sorted, deduplicated shingle sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Computes MinHash signatures with a fixed, seeded family of hash functions.
#[derive(Debug, Clone)]
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    /// `num_perm` hash functions drawn from `seed`.
    pub fn new(num_perm: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = (0..num_perm)
            .map(|_| rng.gen_range(1..MERSENNE_61))
            .collect();
        let b = (0..num_perm)
            .map(|_| rng.gen_range(0..MERSENNE_61))
            .collect();
        MinHasher { a, b }
    }

    /// Number of hash functions.
    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// The signature of a shingle set (all `u64::MAX` for an empty set).
    pub fn signature(&self, shingles: &[u64]) -> Vec<u64> {
        let mut sig = vec![u64::MAX; self.a.len()];
        for &s in shingles {
            let x = (s % MERSENNE_61) as u128;
            for (i, slot) in sig.iter_mut().enumerate() {
                let h = ((self.a[i] as u128 * x + self.b[i] as u128) % MERSENNE_61 as u128) as u64;
                if h < *slot {
                    *slot = h;
                }
            }
        }
        sig
    }
}

/// Estimated Jaccard similarity from two full signatures.
pub fn estimate(a: &[u64], b: &[u64]) -> f64 {
    let eq = a.iter().zip(b).filter(|(x, y)| x == y).count();
    eq as f64 / a.len().max(1) as f64
}

/// Estimated Jaccard similarity from two 16-bit truncated signatures, corrected for chance
/// collisions of the low bits.
pub fn estimate_b16(a: &[u16], b: &[u16]) -> f64 {
    let eq = a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64;
    let c = 1.0 / 65536.0;
    ((eq - c) / (1.0 - c)).clamp(0.0, 1.0)
}

/// Band/row layout of the LSH index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LshParams {
    /// Number of bands.
    pub bands: usize,
    /// Signature rows per band.
    pub rows: usize,
}

fn collision_probability(s: f64, p: LshParams) -> f64 {
    1.0 - (1.0 - s.powi(p.rows as i32)).powi(p.bands as i32)
}

impl LshParams {
    /// The layout (with `bands * rows <= num_perm`) minimizing the probability mass of false
    /// candidates below `threshold` plus missed pairs above it (numerical integration).
    pub fn optimal(threshold: f64, num_perm: usize) -> LshParams {
        let integrate = |f: &dyn Fn(f64) -> f64, lo: f64, hi: f64| {
            let n = 200;
            let h = (hi - lo) / n as f64;
            (0..n)
                .map(|i| f(lo + (i as f64 + 0.5) * h) * h)
                .sum::<f64>()
        };
        let mut best = LshParams { bands: 1, rows: 1 };
        let mut best_err = f64::INFINITY;
        for bands in 1..=num_perm.max(1) {
            for rows in 1..=num_perm / bands {
                let p = LshParams { bands, rows };
                let fp = integrate(&|s| collision_probability(s, p), 0.0, threshold);
                let fn_ = integrate(&|s| 1.0 - collision_probability(s, p), threshold, 1.0);
                let err = fp + fn_;
                if err < best_err {
                    best_err = err;
                    best = p;
                }
            }
        }
        best
    }

    /// Probability that two documents of Jaccard similarity `s` share a band.
    pub fn candidate_probability(&self, s: f64) -> f64 {
        collision_probability(s, *self)
    }
}

/// An append-only LSH index over signatures, keeping a 16-bit truncated signature and a small
/// tag (e.g. the split) per document.
#[derive(Debug)]
pub struct LshIndex {
    params: LshParams,
    num_perm: usize,
    heads: Vec<HashMap<u64, u32>>,
    next: Vec<Vec<u32>>,
    sigs: Vec<u16>,
    tags: Vec<u8>,
    max_chain: usize,
    /// Candidate chains cut at `max_chain` (reported, so that truncation is never silent).
    pub truncated_queries: u64,
}

/// The most similar indexed document found for a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index of the document (insertion order).
    pub id: u32,
    /// Estimated Jaccard similarity.
    pub similarity: f64,
    /// The document's tag.
    pub tag: u8,
}

impl LshIndex {
    /// An empty index for signatures of `num_perm` entries.
    pub fn new(params: LshParams, num_perm: usize) -> Self {
        LshIndex {
            params,
            num_perm,
            heads: (0..params.bands).map(|_| HashMap::new()).collect(),
            next: (0..params.bands).map(|_| Vec::new()).collect(),
            sigs: Vec::new(),
            tags: Vec::new(),
            max_chain: 256,
            truncated_queries: 0,
        }
    }

    /// Number of indexed documents.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The layout.
    pub fn params(&self) -> LshParams {
        self.params
    }

    fn band_key(&self, sig: &[u64], band: usize) -> u64 {
        let r = self.params.rows;
        let mut bytes = [0u8; 8 * 64];
        let rows = &sig[band * r..(band + 1) * r];
        if r <= 64 {
            for (i, v) in rows.iter().enumerate() {
                bytes[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            xxh3_64(&bytes[..r * 8]) ^ (band as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        } else {
            let v: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
            xxh3_64(&v) ^ (band as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
    }

    /// The indexed document most similar to `sig` among the LSH candidates, if any.
    pub fn best_match(&mut self, sig: &[u64]) -> Option<Match> {
        self.matches(sig, 0.0).into_iter().next()
    }

    /// Every indexed document among the LSH candidates with estimated similarity at least
    /// `min_similarity`, most similar first.
    pub fn matches(&mut self, sig: &[u64], min_similarity: f64) -> Vec<Match> {
        debug_assert_eq!(sig.len(), self.num_perm);
        let short: Vec<u16> = sig.iter().map(|v| *v as u16).collect();
        let mut seen: Vec<u32> = Vec::new();
        let mut out: Vec<Match> = Vec::new();
        for band in 0..self.params.bands {
            let key = self.band_key(sig, band);
            let mut cur = self.heads[band].get(&key).copied().unwrap_or(NONE);
            let mut steps = 0;
            while cur != NONE {
                if steps == self.max_chain {
                    self.truncated_queries += 1;
                    break;
                }
                steps += 1;
                if !seen.contains(&cur) {
                    seen.push(cur);
                    let i = cur as usize * self.num_perm;
                    let s = estimate_b16(&short, &self.sigs[i..i + self.num_perm]);
                    if s >= min_similarity {
                        out.push(Match {
                            id: cur,
                            similarity: s,
                            tag: self.tags[cur as usize],
                        });
                    }
                }
                cur = self.next[band][cur as usize];
            }
        }
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then(a.id.cmp(&b.id)));
        out
    }

    /// Adds a document; returns its id.
    pub fn insert(&mut self, sig: &[u64], tag: u8) -> u32 {
        let id = self.tags.len() as u32;
        for band in 0..self.params.bands {
            let key = self.band_key(sig, band);
            let prev = self.heads[band].insert(key, id).unwrap_or(NONE);
            self.next[band].push(prev);
        }
        self.sigs.extend(sig.iter().map(|v| *v as u16));
        self.tags.push(tag);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shingles_are_case_and_space_insensitive() {
        assert_eq!(
            shingles("Turn  ON the light", 5),
            shingles("turn on the light", 5)
        );
        assert_eq!(shingles("ab", 5).len(), 1);
        assert!(shingles("  ", 5).is_empty());
        let a = shingles("turn on the kitchen light", 5);
        assert!((jaccard(&a, &a) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn estimate_tracks_exact_jaccard() {
        let mh = MinHasher::new(256, 7);
        let a = shingles("please turn on the kitchen light in the evening", 5);
        let b = shingles("please turn on the kitchen lights in the evening", 5);
        let c = shingles("what is the temperature in the garage", 5);
        let (sa, sb, sc) = (mh.signature(&a), mh.signature(&b), mh.signature(&c));
        assert!((estimate(&sa, &sb) - jaccard(&a, &b)).abs() < 0.1);
        assert!(estimate(&sa, &sc) < 0.15);
        let ta: Vec<u16> = sa.iter().map(|v| *v as u16).collect();
        let tb: Vec<u16> = sb.iter().map(|v| *v as u16).collect();
        assert!((estimate_b16(&ta, &tb) - estimate(&sa, &sb)).abs() < 0.02);
    }

    #[test]
    fn optimal_params_fit_the_threshold() {
        for t in [0.5, 0.7, 0.8, 0.9] {
            let p = LshParams::optimal(t, 128);
            assert!(p.bands * p.rows <= 128);
            assert!(p.candidate_probability(t + 0.1) > 0.8, "{t} {p:?}");
            assert!(p.candidate_probability(t - 0.3) < 0.2, "{t} {p:?}");
        }
    }

    #[test]
    fn index_finds_near_duplicates() {
        let mh = MinHasher::new(128, 1);
        let mut idx = LshIndex::new(LshParams::optimal(0.6, 128), 128);
        let docs = [
            "set the living room thermostat to 21 degrees",
            "open the garage door",
            "what time is it in tokyo",
        ];
        for (i, d) in docs.iter().enumerate() {
            idx.insert(&mh.signature(&shingles(d, 5)), i as u8);
        }
        let q = mh.signature(&shingles("set the living room thermostat to 22 degrees", 5));
        let m = idx.best_match(&q).unwrap();
        assert_eq!(m.id, 0);
        assert_eq!(m.tag, 0);
        assert!(m.similarity > 0.6);
        let q = mh.signature(&shingles("lock every window upstairs now", 5));
        assert!(idx.best_match(&q).is_none_or(|m| m.similarity < 0.3));
    }
}

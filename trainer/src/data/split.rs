//! Deterministic train/val/test assignment by content hash.
//!
//! A record's split is a function of the seed and the hash of its normalized text only, so the
//! same text always lands in the same split, across runs and machines. The pipeline overrides
//! this for near-duplicates: a record similar to an already assigned one inherits that split,
//! so that no near-duplicate pair straddles two splits.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::error::{DataError, Result};

/// A split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data.
    Val,
    /// Held-out test data.
    Test,
}

impl Split {
    /// All splits, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The file stem (`train`, `val`, `test`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Index 0..3 (used as a tag in the LSH index).
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The split with this index.
    pub fn from_index(i: u8) -> Split {
        match i {
            0 => Split::Train,
            1 => Split::Val,
            _ => Split::Test,
        }
    }
}

/// Split fractions (they must sum to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Share of training data.
    pub train: f64,
    /// Share of validation data.
    pub val: f64,
    /// Share of test data.
    pub test: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            train: 0.8,
            val: 0.1,
            test: 0.1,
        }
    }
}

impl SplitConfig {
    /// Parses `0.8,0.1,0.1`.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                DataError::config(
                    "split",
                    format!("`{s}`: expected three numbers like 0.8,0.1,0.1"),
                )
            })?;
        if parts.len() != 3 {
            return Err(DataError::config(
                "split",
                format!("`{s}`: expected three numbers like 0.8,0.1,0.1"),
            ));
        }
        let c = SplitConfig {
            train: parts[0],
            val: parts[1],
            test: parts[2],
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks that the fractions are in [0, 1] and sum to 1.
    pub fn validate(&self) -> Result<()> {
        let all = [self.train, self.val, self.test];
        if all.iter().any(|f| !f.is_finite() || *f < 0.0)
            || (all.iter().sum::<f64>() - 1.0).abs() > 1e-6
        {
            return Err(DataError::config(
                "split",
                "fractions must be non-negative and sum to 1 (e.g. 0.8,0.1,0.1)",
            ));
        }
        Ok(())
    }

    /// The split of a record whose normalized text hashes to `content_hash`.
    pub fn assign(&self, content_hash: u64, seed: u64) -> Split {
        let u = (xxh3_64_with_seed(&content_hash.to_le_bytes(), seed) >> 11) as f64
            / (1u64 << 53) as f64;
        if u < self.train {
            Split::Train
        } else if u < self.train + self.val {
            Split::Val
        } else {
            Split::Test
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_deterministic_and_proportional() {
        let c = SplitConfig::default();
        let mut n = [0usize; 3];
        for h in 0..20_000u64 {
            let s = c.assign(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), 3);
            assert_eq!(s, c.assign(h.wrapping_mul(0x9e37_79b9_7f4a_7c15), 3));
            n[s.index() as usize] += 1;
        }
        assert!((n[0] as f64 / 20_000.0 - 0.8).abs() < 0.02, "{n:?}");
        assert!((n[2] as f64 / 20_000.0 - 0.1).abs() < 0.02, "{n:?}");
        assert!(SplitConfig::parse("0.5,0.5").is_err());
        assert!(SplitConfig::parse("0.5,0.6,0.1").is_err());
        assert_eq!(SplitConfig::parse("0.6, 0.2, 0.2").unwrap().val, 0.2);
    }
}

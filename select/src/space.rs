//! The search space: DS-CNN widths, depths and first-layer strides for the keyword model.
//!
//! Precision ([`Precision`]: int8, or the `fc` head kept f32) is the selection's
//! `precisions` list ([`crate::search::SelectConfig`]); each DS-CNN size is a candidate at every
//! precision ([`Candidate::at`]). The text classifier's space (encoder/GPT width, depth, heads,
//! context, vocabulary, precision) is [`crate::text::space`].

use edgeloop_trainer::models::ds_cnn::DsCnnConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SelectError};
use crate::precision::Precision;

/// The DS-CNN dimensions searched (the cartesian product is the candidate list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Channels of the first convolution and of every block.
    pub channels: Vec<usize>,
    /// Depthwise-separable blocks.
    pub blocks: Vec<usize>,
    /// Stride of the first convolution (both axes).
    pub strides: Vec<usize>,
}

impl Default for SearchSpace {
    /// 8 to 64 channels, 1 to 4 blocks, stride 2 or 3 (40 candidates).
    fn default() -> Self {
        SearchSpace {
            channels: vec![8, 16, 24, 32, 64],
            blocks: vec![1, 2, 3, 4],
            strides: vec![2, 3],
        }
    }
}

/// One point of the space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Short name, `c{channels}-b{blocks}-s{stride}`, with `-mixed` for mixed precision.
    pub name: String,
    /// The model sizes.
    pub model: DsCnnConfig,
    /// How its image is quantized.
    #[serde(default)]
    pub precision: Precision,
}

impl Candidate {
    /// An int8 candidate for `model`, named after its sizes.
    pub fn new(model: DsCnnConfig) -> Self {
        Self::at(model, Precision::Int8)
    }

    /// A candidate for `model` at `precision`.
    pub fn at(model: DsCnnConfig, precision: Precision) -> Self {
        let mut name = format!("c{}-b{}-s{}", model.channels, model.blocks, model.stride);
        if precision != Precision::Int8 {
            name = format!("{name}-{}", precision.short());
        }
        Candidate {
            name,
            model,
            precision,
        }
    }
}

/// Checks that the list `v` (named `what` in the error) is not empty and lies in `lo..=hi`.
pub(crate) fn check_list(what: &str, v: &[usize], lo: usize, hi: usize) -> Result<()> {
    if v.is_empty() || v.iter().any(|&x| x < lo || x > hi) {
        Err(SelectError::Config(format!(
            "{what} {v:?}: give 1 or more values in {lo}..={hi}"
        )))
    } else {
        Ok(())
    }
}

impl SearchSpace {
    /// Checks the lists (non-empty, in range, at most 512 candidates).
    pub fn validate(&self) -> Result<()> {
        let check = |what: &str, v: &[usize], lo: usize, hi: usize| {
            check_list(&format!("search space {what}"), v, lo, hi)
        };
        check("channels", &self.channels, 1, 1024)?;
        check("blocks", &self.blocks, 0, 16)?;
        check("strides", &self.strides, 1, 8)?;
        let n = self.channels.len() * self.blocks.len() * self.strides.len();
        if n > 512 {
            return Err(SelectError::Config(format!(
                "the search space has {n} candidates (at most 512)"
            )));
        }
        Ok(())
    }

    /// Every candidate for a task with `classes` classes, smallest first (duplicates removed).
    pub fn candidates(&self, classes: usize) -> Result<Vec<Candidate>> {
        self.validate()?;
        let mut out: Vec<Candidate> = Vec::new();
        for &c in &self.channels {
            for &b in &self.blocks {
                for &s in &self.strides {
                    let mut m = DsCnnConfig::small(classes, c, b);
                    m.stride = s;
                    m.validate()?;
                    let cand = Candidate::new(m);
                    if !out.iter().any(|o| o.model == cand.model) {
                        out.push(cand);
                    }
                }
            }
        }
        out.sort_by_key(|c| (c.model.macs(), c.model.channels, c.model.blocks));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_sorted_by_macs_without_duplicates() {
        let s = SearchSpace {
            channels: vec![16, 8, 8],
            blocks: vec![1, 2],
            strides: vec![2],
        };
        let c = s.candidates(8).unwrap();
        assert_eq!(c.len(), 4);
        assert!(c.windows(2).all(|w| w[0].model.macs() <= w[1].model.macs()));
        assert_eq!(c[0].name, "c8-b1-s2");
        assert_eq!(SearchSpace::default().candidates(8).unwrap().len(), 40);
        assert!(c.iter().all(|c| c.precision == Precision::Int8));
        let m = Candidate::at(c[0].model.clone(), Precision::MixedHead);
        assert_eq!(m.name, "c8-b1-s2-mixed");
    }

    #[test]
    fn bad_spaces_are_refused() {
        for s in [
            SearchSpace {
                channels: vec![],
                ..SearchSpace::default()
            },
            SearchSpace {
                strides: vec![0],
                ..SearchSpace::default()
            },
            SearchSpace {
                channels: (1..=100).collect(),
                ..SearchSpace::default()
            },
        ] {
            assert!(s.candidates(8).is_err(), "{s:?}");
        }
        // A one-class task is refused by the model's own check.
        assert!(SearchSpace::default().candidates(1).is_err());
    }
}

//! Explainability: per-token attribution types and model-agnostic occlusion.
//!
//! [`occlusion`] works with any text classifier given as a closure (candle fp32, ONNX Runtime,
//! tract or the int8 runtime behind it): the attribution of token `i` is the drop in the target
//! class score when token `i` is removed (or replaced by a mask string).
//!
//! Integrated gradients needs gradients, so it lives in the trainer (candle models); it fills the
//! same [`Attribution`] type with [`AttributionMethod::IntegratedGradients`] and should report
//! [`Attribution::completeness_gap`] (|Σ attributions − (f(x) − f(baseline))|). This crate does
//! not implement integrated gradients.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How attributions were computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AttributionMethod {
    /// Remove each token (or replace it with `mask`) and measure the score drop.
    Occlusion {
        /// Replacement token; `None` deletes the token.
        mask: Option<String>,
    },
    /// Integrated gradients (computed in the trainer).
    IntegratedGradients {
        /// Riemann steps along the path.
        steps: usize,
        /// Description of the baseline input (for example "all [PAD] embeddings").
        baseline: String,
    },
}

/// One token and its attribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenAttribution {
    /// The token text.
    pub token: String,
    /// Its attribution to the target score (positive = supports the target class).
    pub score: f64,
}

/// Attributions of one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// Method used.
    pub method: AttributionMethod,
    /// The input text.
    pub text: String,
    /// Class whose score is explained.
    pub target_class: usize,
    /// Model score of the target class on the full input, f(x).
    pub target_score: f64,
    /// Model score on the baseline input, f(baseline), when the method has one.
    pub baseline_score: Option<f64>,
    /// Per-token attributions, in input order.
    pub tokens: Vec<TokenAttribution>,
}

impl Attribution {
    /// Sum of token attributions.
    pub fn total(&self) -> f64 {
        self.tokens.iter().map(|t| t.score).sum()
    }

    /// |Σ attributions − (f(x) − f(baseline))|; `None` without a baseline. Integrated gradients
    /// satisfies completeness, so this should be near zero for it (the trainer tests it).
    pub fn completeness_gap(&self) -> Option<f64> {
        self.baseline_score
            .map(|b| (self.total() - (self.target_score - b)).abs())
    }

    /// Tokens sorted by decreasing absolute attribution (the `k` largest).
    pub fn top(&self, k: usize) -> Vec<&TokenAttribution> {
        let mut v: Vec<&TokenAttribution> = self.tokens.iter().collect();
        v.sort_by(|a, b| b.score.abs().total_cmp(&a.score.abs()));
        v.truncate(k);
        v
    }

    /// Draws the tokens coloured by attribution as a PNG.
    pub fn plot_png(&self, path: impl AsRef<std::path::Path>, title: &str) -> Result<()> {
        let tokens: Vec<String> = self.tokens.iter().map(|t| t.token.clone()).collect();
        let scores: Vec<f64> = self.tokens.iter().map(|t| t.score).collect();
        crate::plot::token_highlight_png(path, title, &tokens, &scores, 900)
    }
}

/// Occlusion attributions for whitespace-separated tokens of `text`. `model` maps a text to
/// (predicted class, class scores); `target` defaults to the predicted class on `text`.
/// The model is called `1 + tokens` times.
pub fn occlusion<F>(
    model: F,
    text: &str,
    target: Option<usize>,
    mask: Option<&str>,
) -> Result<Attribution>
where
    F: Fn(&str) -> (usize, Vec<f64>),
{
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.is_empty() {
        return Err(Error::Empty("occlusion input text".into()));
    }
    let (pred, scores) = model(text);
    let target = target.unwrap_or(pred);
    let score_of = |s: &[f64], what: &str| -> Result<f64> {
        match s.get(target) {
            Some(v) if v.is_finite() => Ok(*v),
            Some(v) => Err(Error::InvalidValue {
                what: format!("model score ({what})"),
                index: target,
                value: v.to_string(),
            }),
            None => Err(Error::InvalidArgument(format!(
                "target class {target} but the model returned {} scores ({what})",
                s.len()
            ))),
        }
    };
    let full = score_of(&scores, "full input")?;
    let mut out = Vec::with_capacity(tokens.len());
    for i in 0..tokens.len() {
        let occluded: Vec<&str> = tokens
            .iter()
            .enumerate()
            .filter_map(|(j, t)| match (j == i, mask) {
                (false, _) => Some(*t),
                (true, Some(m)) => Some(m),
                (true, None) => None,
            })
            .collect();
        let (_, s) = model(&occluded.join(" "));
        out.push(TokenAttribution {
            token: tokens[i].to_string(),
            score: full - score_of(&s, &format!("token {i} occluded"))?,
        });
    }
    Ok(Attribution {
        method: AttributionMethod::Occlusion {
            mask: mask.map(str::to_string),
        },
        text: text.to_string(),
        target_class: target,
        target_score: full,
        baseline_score: None,
        tokens: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear bag-of-words model: score of class 1 = Σ word weights.
    fn model(t: &str) -> (usize, Vec<f64>) {
        let s: f64 = t
            .split_whitespace()
            .map(|w| match w {
                "great" => 2.0,
                "bad" => -1.5,
                "not" => -0.5,
                _ => 0.0,
            })
            .sum();
        ((s > 0.0) as usize, vec![-s, s])
    }

    #[test]
    fn occlusion_recovers_linear_weights() {
        let a = occlusion(model, "a great film not bad", Some(1), None).unwrap();
        assert_eq!(a.target_class, 1);
        let scores: Vec<f64> = a.tokens.iter().map(|t| t.score).collect();
        assert_eq!(scores, vec![0.0, 2.0, 0.0, -0.5, -1.5]);
        // For an additive model with deletion, occlusion is complete w.r.t. the empty input.
        let empty = model("").1[1];
        let with_base = Attribution {
            baseline_score: Some(empty),
            ..a.clone()
        };
        assert!(with_base.completeness_gap().unwrap() < 1e-12);
        assert_eq!(a.top(1)[0].token, "great");
    }

    #[test]
    fn errors_for_empty_text_and_bad_target() {
        assert!(occlusion(model, "  ", None, None).is_err());
        assert!(occlusion(model, "great", Some(5), None).is_err());
        let nan = |_: &str| (0usize, vec![f64::NAN]);
        assert!(occlusion(nan, "x", None, None).is_err());
    }
}

//! Integrated gradients (Sundararajan, Taly and Yan, 2017) for the candle classifiers, filling
//! the eval crate's [`Attribution`] type (model-agnostic occlusion lives in `edgeloop-eval`).
//!
//! The path runs in token-embedding space from a baseline (every position holds the baseline
//! token's embedding, by default the pad token) to the input's embeddings; position embeddings
//! are added inside the model, so they are the same at every point of the path. The gradient of
//! the target class logit is integrated with the trapezoid rule over `steps` intervals; the
//! attribution of token `i` is `Σ_h (x − x')_{ih} · avg_grad_{ih}`. Completeness — the
//! attributions sum to `f(x) − f(x')` — holds up to the quadrature error, which
//! [`Attribution::completeness_gap`] reports and the tests bound.

use candle_core::{DType, Device, Tensor, Var};
use edgeloop_eval::explain::{Attribution, AttributionMethod, TokenAttribution};

use crate::error::{Result, TrainerError};
use crate::tokenizer::Tokenizer;
use crate::train::tasks::Classifier;

/// Settings of [`integrated_gradients`].
#[derive(Debug, Clone)]
pub struct IgOptions {
    /// Trapezoid intervals along the path (the model runs `steps + 1` times, batched).
    pub steps: usize,
    /// Path points per forward/backward pass (memory vs speed).
    pub chunk: usize,
    /// Token whose embedding forms the baseline at every position.
    pub baseline_id: u32,
}

impl Default for IgOptions {
    fn default() -> Self {
        IgOptions {
            steps: 64,
            chunk: 16,
            baseline_id: 0,
        }
    }
}

fn token_embeddings(model: &Classifier, ids: &Tensor) -> Result<Tensor> {
    match model {
        Classifier::Gpt(m) => m.token_embeddings(ids),
        Classifier::Bert(m) => m.token_embeddings(ids),
    }
}

fn logits_from_embeddings(model: &Classifier, tok: &Tensor, mask: &Tensor) -> Result<Tensor> {
    match model {
        Classifier::Gpt(m) => m.classify_from_token_embeddings(tok, Some(mask)),
        Classifier::Bert(m) => m.classify_from_token_embeddings(tok, Some(mask)),
    }
}

/// Integrated-gradients attributions of `ids` (one sequence; every position counts as real
/// input, as for the fixed-length device classifier) toward class `target` (default: the class
/// the model predicts). `tokenizer` names the tokens in the result.
pub fn integrated_gradients(
    model: &Classifier,
    tokenizer: &Tokenizer,
    ids: &[u32],
    target: Option<usize>,
    opts: &IgOptions,
) -> Result<Attribution> {
    if ids.is_empty() {
        return Err(TrainerError::Data(
            "integrated gradients of an empty input".into(),
        ));
    }
    if opts.steps == 0 || opts.chunk == 0 {
        return Err(TrainerError::config(
            "steps",
            "steps and chunk must be at least 1",
        ));
    }
    let device: Device = model.device();
    let t = ids.len();
    let ids_t = Tensor::from_slice(ids, (1, t), &device)?;
    let base_t = Tensor::from_vec(vec![opts.baseline_id; t], (1, t), &device)?;
    let x = token_embeddings(model, &ids_t)?.detach();
    let b = token_embeddings(model, &base_t)?.detach();
    let diff = (&x - &b)?;
    let k = model.num_labels();
    let target = match target {
        Some(c) if c < k => c,
        Some(c) => {
            return Err(TrainerError::Data(format!(
                "target class {c} is out of range ({k} classes)"
            )))
        }
        None => {
            let mask = Tensor::ones((1, t), DType::U32, &device)?;
            let l: Vec<f32> = logits_from_embeddings(model, &x, &mask)?
                .flatten_all()?
                .to_vec1()?;
            (0..l.len()).fold(0, |m, i| if l[i] > l[m] { i } else { m })
        }
    };
    let n = opts.steps + 1;
    let mut avg_grad = Tensor::zeros(x.dims(), DType::F32, &device)?.squeeze(0)?;
    let (mut f_x, mut f_b) = (0f64, 0f64);
    let mut start = 0;
    while start < n {
        let len = opts.chunk.min(n - start);
        let alphas: Vec<f32> = (start..start + len)
            .map(|j| j as f32 / opts.steps as f32)
            .collect();
        let weights: Vec<f32> = (start..start + len)
            .map(|j| {
                let w = if j == 0 || j == opts.steps { 0.5 } else { 1.0 };
                w / opts.steps as f32
            })
            .collect();
        let a = Tensor::from_vec(alphas, (len, 1, 1), &device)?;
        let points = b.broadcast_add(&diff.broadcast_mul(&a)?)?;
        let var = Var::from_tensor(&points)?;
        let mask = Tensor::ones((len, t), DType::U32, &device)?;
        let logits = logits_from_embeddings(model, var.as_tensor(), &mask)?;
        let y = logits.narrow(1, target, 1)?;
        let ys: Vec<f32> = y.flatten_all()?.to_vec1()?;
        if start == 0 {
            f_b = f64::from(ys[0]);
        }
        if start + len == n {
            f_x = f64::from(ys[len - 1]);
        }
        let grads = y.sum_all()?.backward()?;
        let g = grads
            .get(var.as_tensor())
            .ok_or_else(|| TrainerError::Data("no gradient reached the token embeddings".into()))?;
        let w = Tensor::from_vec(weights, (len, 1, 1), &device)?;
        avg_grad = (avg_grad + g.broadcast_mul(&w)?.sum(0)?)?;
        start += len;
    }
    let attr: Vec<f32> = (diff.squeeze(0)? * avg_grad)?.sum(1)?.to_vec1()?;
    let mut tokens = Vec::with_capacity(t);
    for (&id, &score) in ids.iter().zip(&attr) {
        let token = tokenizer
            .decode(&[id])
            .unwrap_or_else(|_| format!("<{id}>"));
        tokens.push(TokenAttribution {
            token,
            score: f64::from(score),
        });
    }
    Ok(Attribution {
        method: AttributionMethod::IntegratedGradients {
            steps: opts.steps,
            baseline: format!("token id {} at every position", opts.baseline_id),
        },
        text: tokens
            .iter()
            .map(|t| t.token.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        target_class: target,
        target_score: f_x,
        baseline_score: Some(f_b),
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::bert::Bert;
    use crate::models::gpt::Gpt;
    use crate::models::params::Params;
    use crate::models::tests::{tiny_bert_config, tiny_gpt_config};
    use crate::models::BuildOptions;
    use crate::tokenizer::Tokenizer;

    fn tokenizer() -> Tokenizer {
        Tokenizer::train_char(
            ["abcdefghijklmnopqrstuvwxyz"].iter(),
            &crate::tokenizer::CharConfig::default(),
        )
        .unwrap()
    }

    fn check(model: &Classifier, name: &str) {
        let tok = tokenizer();
        let ids = [3u32, 7, 1, 12, 5, 9];
        let a = integrated_gradients(model, &tok, &ids, None, &IgOptions::default()).unwrap();
        let delta = a.target_score - a.baseline_score.unwrap();
        let gap = a.completeness_gap().unwrap();
        println!(
            "{name}: f(x) {:.5}, f(baseline) {:.5}, sum of attributions {:.5}, gap {gap:.2e}",
            a.target_score,
            a.baseline_score.unwrap(),
            a.total()
        );
        assert_eq!(a.tokens.len(), ids.len());
        assert!(delta.abs() > 1e-3, "degenerate test: f(x) = f(baseline)");
        assert!(
            gap <= 0.02 * delta.abs() + 1e-4,
            "{name}: completeness gap {gap} for f(x) − f(b) = {delta}"
        );
        // More steps, smaller quadrature error.
        let coarse = integrated_gradients(
            model,
            &tok,
            &ids,
            Some(a.target_class),
            &IgOptions {
                steps: 4,
                chunk: 3,
                ..IgOptions::default()
            },
        )
        .unwrap();
        assert!(coarse.completeness_gap().unwrap() >= gap * 0.5 - 1e-6);
        // Chunking does not change the result.
        let chunked = integrated_gradients(
            model,
            &tok,
            &ids,
            Some(a.target_class),
            &IgOptions {
                chunk: 5,
                ..IgOptions::default()
            },
        )
        .unwrap();
        for (p, q) in a.tokens.iter().zip(&chunked.tokens) {
            assert!((p.score - q.score).abs() < 1e-5);
        }
    }

    #[test]
    fn attributions_sum_to_the_score_difference_bert_and_gpt() {
        let dev = Device::Cpu;
        let mut p = Params::new(5, &dev);
        let bert = Bert::new(&tiny_bert_config(Some(3)), &mut p, BuildOptions::default()).unwrap();
        check(&Classifier::Bert(bert), "bert");
        let mut p = Params::new(6, &dev);
        let gpt = Gpt::new(&tiny_gpt_config(Some(3)), &mut p, BuildOptions::default()).unwrap();
        check(&Classifier::Gpt(gpt), "gpt");
    }

    #[test]
    fn bad_arguments_are_errors() {
        let dev = Device::Cpu;
        let mut p = Params::new(5, &dev);
        let m = Classifier::Bert(
            Bert::new(&tiny_bert_config(Some(3)), &mut p, BuildOptions::default()).unwrap(),
        );
        let tok = tokenizer();
        assert!(integrated_gradients(&m, &tok, &[], None, &IgOptions::default()).is_err());
        assert!(integrated_gradients(&m, &tok, &[1, 2], Some(3), &IgOptions::default()).is_err());
        let zero = IgOptions {
            steps: 0,
            ..IgOptions::default()
        };
        assert!(integrated_gradients(&m, &tok, &[1, 2], None, &zero).is_err());
    }
}

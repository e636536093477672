//! Training objectives: causal LM, masked LM (15%, 80/10/10), sequence classification,
//! instruction SFT (loss on the response only) and DPO (against a frozen reference).

use candle_core::{Device, Tensor};
use rand::Rng;

use crate::models::{Bert, Gpt};
use crate::ops;
use crate::{Result, TrainerError};

/// A batch of token sequences with per-position targets and loss weights (row-major `[B, T]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Rows.
    pub batch: usize,
    /// Columns (sequence length).
    pub len: usize,
    /// Model inputs.
    pub inputs: Vec<u32>,
    /// Targets (next token for LM, original token for MLM).
    pub targets: Vec<u32>,
    /// 1.0 where the loss counts, 0.0 elsewhere.
    pub weights: Vec<f32>,
    /// 1 for real tokens, 0 for padding (all 1 when there is no padding).
    pub attention: Vec<u32>,
}

impl TokenBatch {
    fn check(&self) -> Result<()> {
        let n = self.batch * self.len;
        if n == 0 {
            return Err(TrainerError::Data("empty batch".into()));
        }
        for (what, l) in [
            ("inputs", self.inputs.len()),
            ("targets", self.targets.len()),
            ("weights", self.weights.len()),
            ("attention", self.attention.len()),
        ] {
            if l != n {
                return Err(TrainerError::Data(format!(
                    "batch {what} has {l} entries, expected {} x {}",
                    self.batch, self.len
                )));
            }
        }
        Ok(())
    }

    /// Next-token batch from whole sequences of `len + 1` tokens each (no padding).
    pub fn causal(sequences: &[Vec<u32>]) -> Result<Self> {
        let len = sequences.first().map(|s| s.len()).unwrap_or(0);
        if len < 2 || sequences.iter().any(|s| s.len() != len) {
            return Err(TrainerError::Data(
                "causal batches need sequences of equal length ≥ 2".into(),
            ));
        }
        let mut b = Self::empty(sequences.len(), len - 1);
        for s in sequences {
            b.inputs.extend_from_slice(&s[..len - 1]);
            b.targets.extend_from_slice(&s[1..]);
        }
        b.weights = vec![1.0; b.inputs.len()];
        b.attention = vec![1; b.inputs.len()];
        Ok(b)
    }

    fn empty(batch: usize, len: usize) -> Self {
        Self {
            batch,
            len,
            inputs: Vec::with_capacity(batch * len),
            targets: Vec::with_capacity(batch * len),
            weights: Vec::with_capacity(batch * len),
            attention: Vec::with_capacity(batch * len),
        }
    }

    /// Instruction SFT batch: each example is `prompt ++ response`, right-padded with `pad` to
    /// the longest; the loss counts only the tokens that predict the response.
    pub fn instruction(examples: &[(Vec<u32>, Vec<u32>)], pad: u32) -> Result<Self> {
        let longest = examples
            .iter()
            .map(|(p, r)| p.len() + r.len())
            .max()
            .unwrap_or(0);
        if longest < 2 || examples.iter().any(|(_, r)| r.is_empty()) {
            return Err(TrainerError::Data(
                "instruction examples need a non-empty response".into(),
            ));
        }
        let len = longest - 1;
        let mut b = Self::empty(examples.len(), len);
        for (p, r) in examples {
            let full: Vec<u32> = p.iter().chain(r.iter()).copied().collect();
            for i in 0..len {
                let real = i + 1 < full.len();
                b.inputs.push(if i < full.len() { full[i] } else { pad });
                b.targets.push(if real { full[i + 1] } else { pad });
                // position i predicts token i + 1; count it when that token is in the response
                b.weights
                    .push(if real && i + 1 >= p.len() { 1.0 } else { 0.0 });
                b.attention.push(u32::from(i < full.len()));
            }
        }
        Ok(b)
    }

    /// BERT masking of `sequences` (equal length): each maskable position is chosen with
    /// probability `prob`; a chosen token becomes `mask_id` 80% of the time, a random token 10%,
    /// and stays 10%. Positions holding one of `special` are never chosen. At least one position
    /// per batch is chosen.
    pub fn masked(
        sequences: &[Vec<u32>],
        vocab_size: usize,
        mask_id: u32,
        special: &[u32],
        prob: f64,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let len = sequences.first().map(|s| s.len()).unwrap_or(0);
        if len == 0 || sequences.iter().any(|s| s.len() != len) {
            return Err(TrainerError::Data(
                "masked batches need sequences of equal length ≥ 1".into(),
            ));
        }
        let mut b = Self::empty(sequences.len(), len);
        for s in sequences {
            for &tok in s {
                let chosen = !special.contains(&tok) && rng.gen_bool(prob);
                let input = if chosen {
                    let r: f64 = rng.gen();
                    if r < 0.8 {
                        mask_id
                    } else if r < 0.9 {
                        rng.gen_range(0..vocab_size as u32)
                    } else {
                        tok
                    }
                } else {
                    tok
                };
                b.inputs.push(input);
                b.targets.push(tok);
                b.weights.push(if chosen { 1.0 } else { 0.0 });
                b.attention.push(1);
            }
        }
        if !b.weights.iter().any(|w| *w > 0.0) {
            if let Some(i) = b.inputs.iter().position(|t| !special.contains(t)) {
                b.inputs[i] = mask_id;
                b.weights[i] = 1.0;
            } else {
                return Err(TrainerError::Data("no maskable token in the batch".into()));
            }
        }
        Ok(b)
    }

    /// `(inputs, targets, weights, attention)` as tensors of shapes `[B,T]`, `[B*T]`, `[B*T]`, `[B,T]`.
    pub fn tensors(&self, device: &Device) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
        self.check()?;
        Ok((
            Tensor::from_slice(&self.inputs, (self.batch, self.len), device)?,
            Tensor::from_slice(&self.targets, self.batch * self.len, device)?,
            Tensor::from_slice(&self.weights, self.batch * self.len, device)?,
            Tensor::from_slice(&self.attention, (self.batch, self.len), device)?,
        ))
    }
}

fn flat(logits: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    Ok(logits.reshape((b * t, v))?)
}

/// Mean next-token cross-entropy of `gpt` on `batch` (weighted positions only).
pub fn gpt_lm_loss(gpt: &Gpt, batch: &TokenBatch) -> Result<Tensor> {
    let (x, y, w, _) = batch.tensors(gpt.wte.device())?;
    ops::masked_cross_entropy(&flat(&gpt.forward(&x)?)?, &y, &w)
}

/// Mean masked-LM cross-entropy of `bert` on a batch built by [`TokenBatch::masked`].
pub fn bert_mlm_loss(bert: &Bert, batch: &TokenBatch) -> Result<Tensor> {
    let (x, y, w, a) = batch.tensors(bert.word_embeddings.device())?;
    ops::masked_cross_entropy(&flat(&bert.forward_mlm(&x, Some(&a))?)?, &y, &w)
}

/// A padded batch of token sequences with one label each.
#[derive(Debug, Clone)]
pub struct ClassBatch {
    /// Token ids `[B, T]`, right-padded.
    pub ids: Tensor,
    /// Attention mask `[B, T]` (1 real, 0 pad).
    pub mask: Tensor,
    /// Labels `[B]`.
    pub labels: Tensor,
}

impl ClassBatch {
    /// Pads `examples` (tokens, label) with `pad` to the longest (at most `max_len` tokens, the
    /// rest cut), checking labels against `num_labels`.
    pub fn new(
        examples: &[(Vec<u32>, u32)],
        pad: u32,
        max_len: usize,
        num_labels: usize,
        device: &Device,
    ) -> Result<Self> {
        let len = examples
            .iter()
            .map(|(t, _)| t.len().min(max_len))
            .max()
            .unwrap_or(0);
        if len == 0 {
            return Err(TrainerError::Data(
                "classification batch has no tokens".into(),
            ));
        }
        let mut ids = Vec::with_capacity(examples.len() * len);
        let mut mask = Vec::with_capacity(examples.len() * len);
        let mut labels = Vec::with_capacity(examples.len());
        for (toks, label) in examples {
            if *label as usize >= num_labels {
                return Err(TrainerError::Data(format!(
                    "label {label} is out of range (num_labels = {num_labels})"
                )));
            }
            if toks.is_empty() {
                return Err(TrainerError::Data("an example has no tokens".into()));
            }
            for i in 0..len {
                let real = i < toks.len().min(max_len);
                ids.push(if real { toks[i] } else { pad });
                mask.push(u32::from(real));
            }
            labels.push(*label);
        }
        let b = examples.len();
        Ok(Self {
            ids: Tensor::from_vec(ids, (b, len), device)?,
            mask: Tensor::from_vec(mask, (b, len), device)?,
            labels: Tensor::from_vec(labels, b, device)?,
        })
    }
}

/// Mean cross-entropy of class logits `[B, K]` against `labels` `[B]`.
pub fn classification_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    ops::cross_entropy(logits, labels)
}

/// Number of rows of `logits` `[B, K]` whose arg-max equals the label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred: Vec<u32> = logits.argmax(1)?.to_vec1()?;
    let gold: Vec<u32> = labels.to_vec1()?;
    Ok(pred.iter().zip(&gold).filter(|(a, b)| a == b).count())
}

/// Sum of log-probabilities of the weighted target tokens, per sequence: `[B]`.
pub fn sequence_logprob(gpt: &Gpt, batch: &TokenBatch) -> Result<Tensor> {
    let (x, y, w, _) = batch.tensors(gpt.wte.device())?;
    let nll = ops::token_nll(&flat(&gpt.forward(&x)?)?, &y)?;
    Ok((nll * w)?
        .neg()?
        .reshape((batch.batch, batch.len))?
        .sum(1)?)
}

/// DPO loss (Rafailov et al. 2023): `-log σ(β [(π_c - ref_c) - (π_r - ref_r)])`, averaged.
///
/// `chosen` and `rejected` are instruction batches (same prompts, row by row); the reference
/// model is not differentiated (its log-probabilities are detached).
pub fn dpo_loss(
    policy: &Gpt,
    reference: &Gpt,
    chosen: &TokenBatch,
    rejected: &TokenBatch,
    beta: f64,
) -> Result<Tensor> {
    if chosen.batch != rejected.batch {
        return Err(TrainerError::Data(
            "chosen and rejected batches differ in size".into(),
        ));
    }
    let pc = sequence_logprob(policy, chosen)?;
    let pr = sequence_logprob(policy, rejected)?;
    let rc = sequence_logprob(reference, chosen)?.detach();
    let rr = sequence_logprob(reference, rejected)?.detach();
    let margin = (((pc - rc)? - (pr - rr)?)? * beta)?;
    // -log σ(m) = log(1 + e^{-m}) = softplus(-m), computed stably as relu(-m) + log(1 + e^{-|m|})
    let neg = margin.neg()?;
    let softplus = (neg.relu()? + (margin.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok(softplus.mean_all()?)
}

/// DPO with a negative log-likelihood term on the chosen responses (as in RPO, Pang et al.
/// 2024): `dpo_loss + nll_weight · mean_rows(-log π(chosen) / chosen tokens)`. The NLL term
/// keeps the chosen answers likely while the margin grows; without it DPO on a small model can
/// lower both likelihoods and collapse greedy decoding. `nll_weight = 0` is plain DPO.
pub fn dpo_nll_loss(
    policy: &Gpt,
    reference: &Gpt,
    chosen: &TokenBatch,
    rejected: &TokenBatch,
    beta: f64,
    nll_weight: f64,
) -> Result<Tensor> {
    let dpo = dpo_loss(policy, reference, chosen, rejected, beta)?;
    if nll_weight == 0.0 {
        return Ok(dpo);
    }
    let tokens: Vec<f32> = chosen
        .weights
        .chunks(chosen.len.max(1))
        .map(|row| row.iter().sum::<f32>().max(1.0))
        .collect();
    let tokens = Tensor::from_vec(tokens, chosen.batch, policy.wte.device())?;
    let nll = sequence_logprob(policy, chosen)?
        .neg()?
        .div(&tokens)?
        .mean_all()?;
    Ok((dpo + (nll * nll_weight)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn instruction_batch_weights_only_response() {
        let b =
            TokenBatch::instruction(&[(vec![1, 2, 3], vec![4, 5]), (vec![1], vec![6])], 0).unwrap();
        assert_eq!(b.len, 4);
        assert_eq!(b.inputs, vec![1, 2, 3, 4, 1, 6, 0, 0]);
        assert_eq!(b.targets, vec![2, 3, 4, 5, 6, 0, 0, 0]);
        assert_eq!(b.weights, vec![0., 0., 1., 1., 1., 0., 0., 0.]);
        assert_eq!(b.attention, vec![1, 1, 1, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn masking_follows_80_10_10() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let seqs: Vec<Vec<u32>> = (0..200)
            .map(|i| {
                (0..50)
                    .map(|j| 5 + ((i * 7 + j) % 40) as u32)
                    .chain([1])
                    .collect()
            })
            .collect();
        let b = TokenBatch::masked(&seqs, 50, 2, &[1], 0.15, &mut rng).unwrap();
        let chosen: Vec<usize> = (0..b.weights.len())
            .filter(|&i| b.weights[i] > 0.0)
            .collect();
        let frac = chosen.len() as f64 / b.weights.len() as f64;
        assert!((frac - 0.15 * 50.0 / 51.0).abs() < 0.01, "{frac}");
        let masked =
            chosen.iter().filter(|&&i| b.inputs[i] == 2).count() as f64 / chosen.len() as f64;
        let kept = chosen
            .iter()
            .filter(|&&i| b.inputs[i] == b.targets[i])
            .count() as f64
            / chosen.len() as f64;
        assert!((masked - 0.8).abs() < 0.03, "{masked}");
        assert!((kept - 0.1).abs() < 0.03 + 0.01, "{kept}"); // random replacements may hit the same token
        assert!(
            b.targets
                .iter()
                .zip(&b.weights)
                .all(|(t, w)| *t != 1 || *w == 0.0),
            "specials never chosen"
        );
    }
}

//! Ready-made [`Task`]s: GPT pretraining on a token stream, encoder MLM pretraining, sequence
//! classification (GPT or encoder), instruction SFT and DPO.

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use candle_core::backprop::GradStore;

use super::gpt_engine::GptEngine;
use super::objectives::{self, ClassBatch, TokenBatch};
use super::Task;
use crate::models::{Bert, Gpt};
use crate::{Result, TrainerError};

fn windows(tokens: &[u32], len: usize, what: &str) -> Result<usize> {
    if tokens.len() < len + 1 {
        return Err(TrainerError::Data(format!(
            "{what} has {} tokens, fewer than one window of {} (+1)",
            tokens.len(),
            len
        )));
    }
    Ok(tokens.len() - len)
}

/// Evenly spaced evaluation windows (deterministic; never touches the training RNG).
fn eval_starts(n_starts: usize, count: usize) -> Vec<usize> {
    let count = count.min(n_starts).max(1);
    (0..count).map(|i| i * n_starts / count).collect()
}

/// Causal-LM pretraining of a GPT on random windows of a token stream (nanoGPT style).
#[derive(Debug)]
pub struct LmTask {
    /// The model.
    pub model: Gpt,
    /// Training tokens.
    pub train: Vec<u32>,
    /// Validation tokens.
    pub val: Vec<u32>,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Tokens per sequence (≤ context).
    pub seq_len: usize,
    /// Validation windows per evaluation.
    pub eval_windows: usize,
    /// The hand-written training pass (built on first use where the model qualifies; `None`
    /// to start with).
    pub engine: Option<GptEngine>,
}

impl LmTask {
    fn batch_at(&self, data: &[u32], starts: &[usize]) -> Result<TokenBatch> {
        let seqs: Vec<Vec<u32>> = starts
            .iter()
            .map(|&s| data[s..s + self.seq_len + 1].to_vec())
            .collect();
        TokenBatch::causal(&seqs)
    }
}

impl Task for LmTask {
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let n = windows(&self.train, self.seq_len, "training data")?;
        let starts: Vec<usize> = (0..self.batch_size).map(|_| rng.gen_range(0..n)).collect();
        objectives::gpt_lm_loss(&self.model, &self.batch_at(&self.train, &starts)?)
    }

    fn train_loss_and_grads(&mut self, rng: &mut ChaCha8Rng) -> Result<Option<(f32, GradStore)>> {
        if !GptEngine::supports(&self.model) {
            return Ok(None);
        }
        if !self.engine.as_ref().is_some_and(|e| e.matches(&self.model)) {
            self.engine = GptEngine::new(&self.model)?;
        }
        if self.engine.is_none() {
            return Ok(None);
        }
        // the same draws as `train_loss`
        let n = windows(&self.train, self.seq_len, "training data")?;
        let starts: Vec<usize> = (0..self.batch_size).map(|_| rng.gen_range(0..n)).collect();
        let batch = self.batch_at(&self.train, &starts)?;
        match self.engine.as_mut() {
            Some(engine) => Ok(Some(engine.loss_and_grads(&batch)?)),
            None => Ok(None),
        }
    }

    fn eval_loss(&mut self) -> Result<f32> {
        let n = windows(&self.val, self.seq_len, "validation data")?;
        let starts = eval_starts(n, self.eval_windows);
        let mut total = 0f32;
        let mut count = 0usize;
        for chunk in starts.chunks(self.batch_size.max(1)) {
            let l = objectives::gpt_lm_loss(&self.model, &self.batch_at(&self.val, chunk)?)?;
            total += l.to_scalar::<f32>()? * chunk.len() as f32;
            count += chunk.len();
        }
        Ok(total / count as f32)
    }
}

/// Masked-LM pretraining of the encoder on random windows of a token stream.
#[derive(Debug)]
pub struct MlmTask {
    /// The model.
    pub model: Bert,
    /// Training tokens.
    pub train: Vec<u32>,
    /// Validation tokens.
    pub val: Vec<u32>,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Validation windows per evaluation.
    pub eval_windows: usize,
    /// The `[MASK]` token id.
    pub mask_id: u32,
    /// Token ids never masked (padding, separators).
    pub special: Vec<u32>,
}

impl MlmTask {
    fn batch(&self, data: &[u32], starts: &[usize], rng: &mut ChaCha8Rng) -> Result<TokenBatch> {
        let seqs: Vec<Vec<u32>> = starts
            .iter()
            .map(|&s| data[s..s + self.seq_len].to_vec())
            .collect();
        TokenBatch::masked(
            &seqs,
            self.model.config.vocab_size,
            self.mask_id,
            &self.special,
            0.15,
            rng,
        )
    }
}

impl Task for MlmTask {
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let n = windows(&self.train, self.seq_len, "training data")?;
        let starts: Vec<usize> = (0..self.batch_size).map(|_| rng.gen_range(0..n)).collect();
        let b = self.batch(&self.train, &starts, rng)?;
        objectives::bert_mlm_loss(&self.model, &b)
    }

    fn eval_loss(&mut self) -> Result<f32> {
        let n = windows(&self.val, self.seq_len, "validation data")?;
        let starts = eval_starts(n, self.eval_windows);
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
        let mut total = 0f32;
        for chunk in starts.chunks(self.batch_size.max(1)) {
            let b = self.batch(&self.val, chunk, &mut rng)?;
            total += objectives::bert_mlm_loss(&self.model, &b)?.to_scalar::<f32>()?
                * chunk.len() as f32;
        }
        Ok(total / starts.len() as f32)
    }
}

/// A model with a classification head.
#[derive(Debug)]
pub enum Classifier {
    /// GPT, mean-pooled.
    Gpt(Gpt),
    /// Encoder, mean-pooled.
    Bert(Bert),
}

impl Classifier {
    /// Class logits `[B, K]`.
    pub fn logits(&self, batch: &ClassBatch) -> Result<Tensor> {
        match self {
            Classifier::Gpt(m) => m.classify(&batch.ids, Some(&batch.mask)),
            Classifier::Bert(m) => m.classify(&batch.ids, Some(&batch.mask)),
        }
    }

    /// Context length.
    pub fn context(&self) -> usize {
        match self {
            Classifier::Gpt(m) => m.config.block_size,
            Classifier::Bert(m) => m.config.max_position_embeddings,
        }
    }

    /// Number of classes (0 without a head).
    pub fn num_labels(&self) -> usize {
        match self {
            Classifier::Gpt(m) => m.config.num_labels.unwrap_or(0),
            Classifier::Bert(m) => m.config.num_labels.unwrap_or(0),
        }
    }

    /// The device the model's parameters live on.
    pub fn device(&self) -> candle_core::Device {
        match self {
            Classifier::Gpt(m) => m.wte.device().clone(),
            Classifier::Bert(m) => m.word_embeddings.device().clone(),
        }
    }
}

/// Sequence classification fine-tuning.
#[derive(Debug)]
pub struct ClassifyTask {
    /// The model.
    pub model: Classifier,
    /// Training examples (tokens, label).
    pub train: Vec<(Vec<u32>, u32)>,
    /// Validation examples.
    pub val: Vec<(Vec<u32>, u32)>,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Padding token id.
    pub pad: u32,
}

impl ClassifyTask {
    fn batch(&self, ex: &[(Vec<u32>, u32)]) -> Result<ClassBatch> {
        ClassBatch::new(
            ex,
            self.pad,
            self.model.context(),
            self.model.num_labels(),
            &self.model.device(),
        )
    }

    /// `(loss, accuracy)` on `examples`.
    pub fn evaluate(&self, examples: &[(Vec<u32>, u32)]) -> Result<(f32, f32)> {
        if examples.is_empty() {
            return Err(TrainerError::Data("no validation examples".into()));
        }
        let (mut loss, mut correct) = (0f32, 0usize);
        for chunk in examples.chunks(self.batch_size.max(1)) {
            let b = self.batch(chunk)?;
            let logits = self.model.logits(&b)?;
            loss += objectives::classification_loss(&logits, &b.labels)?.to_scalar::<f32>()?
                * chunk.len() as f32;
            correct += objectives::correct(&logits, &b.labels)?;
        }
        let n = examples.len() as f32;
        Ok((loss / n, correct as f32 / n))
    }

    /// Predicted class of each example.
    pub fn predict(&self, examples: &[Vec<u32>]) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(self.batch_size.max(1)) {
            let ex: Vec<(Vec<u32>, u32)> = chunk.iter().map(|t| (t.clone(), 0)).collect();
            let logits = self.model.logits(&self.batch(&ex)?)?;
            out.extend(logits.argmax(1)?.to_vec1::<u32>()?);
        }
        Ok(out)
    }
}

impl Task for ClassifyTask {
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        if self.train.is_empty() {
            return Err(TrainerError::Data("no training examples".into()));
        }
        let ex: Vec<(Vec<u32>, u32)> = (0..self.batch_size)
            .map(|_| self.train[rng.gen_range(0..self.train.len())].clone())
            .collect();
        let b = self.batch(&ex)?;
        objectives::classification_loss(&self.model.logits(&b)?, &b.labels)
    }

    fn eval_loss(&mut self) -> Result<f32> {
        Ok(self.evaluate(&self.val)?.0)
    }
}

/// Instruction SFT of a GPT: loss on the response tokens only.
#[derive(Debug)]
pub struct SftTask {
    /// The model.
    pub model: Gpt,
    /// Training pairs (prompt, response).
    pub train: Vec<(Vec<u32>, Vec<u32>)>,
    /// Validation pairs.
    pub val: Vec<(Vec<u32>, Vec<u32>)>,
    /// Pairs per micro-batch.
    pub batch_size: usize,
    /// Padding token id.
    pub pad: u32,
}

impl Task for SftTask {
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let ex: Vec<_> = self
            .train
            .choose_multiple(rng, self.batch_size)
            .cloned()
            .collect();
        objectives::gpt_lm_loss(&self.model, &TokenBatch::instruction(&ex, self.pad)?)
    }

    fn eval_loss(&mut self) -> Result<f32> {
        let mut total = 0f32;
        for chunk in self.val.chunks(self.batch_size.max(1)) {
            let l =
                objectives::gpt_lm_loss(&self.model, &TokenBatch::instruction(chunk, self.pad)?)?;
            total += l.to_scalar::<f32>()? * chunk.len() as f32;
        }
        Ok(total / self.val.len().max(1) as f32)
    }
}

/// A preference pair: prompt, preferred response, rejected response.
pub type Preference = (Vec<u32>, Vec<u32>, Vec<u32>);

/// DPO of a GPT policy against a frozen reference.
#[derive(Debug)]
pub struct DpoTask {
    /// The policy (trained).
    pub policy: Gpt,
    /// The reference (frozen; built on a separate parameter store).
    pub reference: Gpt,
    /// Training preferences.
    pub train: Vec<Preference>,
    /// Validation preferences.
    pub val: Vec<Preference>,
    /// Pairs per micro-batch.
    pub batch_size: usize,
    /// Padding token id.
    pub pad: u32,
    /// DPO temperature β.
    pub beta: f64,
    /// Weight of the NLL term on the chosen responses (0: plain DPO; see
    /// [`objectives::dpo_nll_loss`]).
    pub nll_weight: f64,
}

impl DpoTask {
    fn loss(&self, ex: &[Preference]) -> Result<Tensor> {
        // pad chosen and rejected to a common length so rows line up
        let chosen: Vec<_> = ex.iter().map(|(p, c, _)| (p.clone(), c.clone())).collect();
        let rejected: Vec<_> = ex.iter().map(|(p, _, r)| (p.clone(), r.clone())).collect();
        let c = TokenBatch::instruction(&chosen, self.pad)?;
        let r = TokenBatch::instruction(&rejected, self.pad)?;
        objectives::dpo_nll_loss(
            &self.policy,
            &self.reference,
            &c,
            &r,
            self.beta,
            self.nll_weight,
        )
    }

    /// Mean of `policy margin - reference margin` (implicit reward gap) on `ex`.
    pub fn reward_margin(&self, ex: &[Preference]) -> Result<f32> {
        let chosen: Vec<_> = ex.iter().map(|(p, c, _)| (p.clone(), c.clone())).collect();
        let rejected: Vec<_> = ex.iter().map(|(p, _, r)| (p.clone(), r.clone())).collect();
        let c = TokenBatch::instruction(&chosen, self.pad)?;
        let r = TokenBatch::instruction(&rejected, self.pad)?;
        let lp = |m: &Gpt, b: &TokenBatch| objectives::sequence_logprob(m, b);
        let m = ((lp(&self.policy, &c)? - lp(&self.reference, &c)?)?
            - (lp(&self.policy, &r)? - lp(&self.reference, &r)?)?)?;
        Ok(m.mean_all()?.to_scalar::<f32>()?)
    }
}

impl Task for DpoTask {
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let ex: Vec<_> = self
            .train
            .choose_multiple(rng, self.batch_size)
            .cloned()
            .collect();
        if ex.is_empty() {
            return Err(TrainerError::Data("no preference pairs".into()));
        }
        self.loss(&ex)
    }

    fn eval_loss(&mut self) -> Result<f32> {
        if self.val.is_empty() {
            return Err(TrainerError::Data("no validation preference pairs".into()));
        }
        Ok(self.loss(&self.val)?.to_scalar::<f32>()?)
    }
}

//! A hand-written forward and backward pass of the GPT language-model loss on f32 CPU tensors
//! (llm.c style), for the plain model: no LoRA, no QAT, no autocast.
//!
//! Through candle's autograd, every op allocates its output and the backward accumulates each
//! gradient as `zeros_like` + `add`; a fifth of a nanoGPT step went to that bookkeeping. Here
//! one forward pass keeps the activations the backward needs (layer-norm statistics, attention
//! probabilities, pre- and post-GELU activations) in buffers reused across steps, and one
//! backward pass writes each parameter's gradient once. The parameters are copied into one
//! flat buffer per step, laid out so that the query, key and value projections are one
//! `[3C, C]` matrix (one product forward, one per gradient backward); biases and residual adds
//! are the initial values of the products that follow them. The kernels are the slice
//! functions the fused candle ops of [`crate::ops`] run, so both paths compute the same math;
//! the tests hold the loss and every gradient to the autograd path's.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};

use super::objectives::TokenBatch;
use crate::models::layers::Linear;
use crate::models::Gpt;
use crate::ops::attention::{head_backward, head_forward, HeadViews};
use crate::ops::gemm::{matmul, View};
use crate::ops::linear::{linear_backward, linear_forward};
use crate::ops::{loss, vmath};
use crate::{Result, TrainerError};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the engine on (the default) or off, process-wide; off, language-model tasks train
/// through candle's autograd (for benchmarks and tests that compare the two).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the engine is on (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Offsets of one block's parameters in the flat buffer (each bias right after its weight,
/// each layer-norm bias right after its gain).
#[derive(Debug, Clone, Copy)]
struct LayerOffsets {
    ln1: usize,
    wqkv: usize,
    wo: usize,
    ln2: usize,
    wfc: usize,
    wproj: usize,
}

/// A model tensor and where its values (and gradient) live in the flat buffers.
#[derive(Debug)]
struct Slot {
    tensor: Tensor,
    offset: usize,
}

/// Activations of the last forward pass and scratch of the backward, for `b × t` tokens.
#[derive(Debug, Default)]
struct Workspace {
    b: usize,
    t: usize,
    /// Residual stream entering each block, and after the last: `(L + 1) · N · C`.
    res: Vec<f32>,
    /// Residual stream after each block's attention: `L · N · C`.
    mid: Vec<f32>,
    ln1: Vec<f32>,
    ln1_stats: Vec<f32>,
    qkv: Vec<f32>,
    /// Attention probabilities `L · B · H · T · T`.
    att: Vec<f32>,
    atty: Vec<f32>,
    ln2: Vec<f32>,
    ln2_stats: Vec<f32>,
    /// GELU's derivative at the MLP pre-activation, and GELU's output, `L · N · 4C` each.
    fch: Vec<f32>,
    fcg: Vec<f32>,
    lnf: Vec<f32>,
    lnf_stats: Vec<f32>,
    /// Logits, then (after the loss) their gradient.
    logits: Vec<f32>,
    dres: Vec<f32>,
    dln: Vec<f32>,
    dqkv: Vec<f32>,
    datty: Vec<f32>,
    d4: Vec<f32>,
    dp: Vec<f32>,
}

fn resize(v: &mut Vec<f32>, n: usize) {
    if v.len() != n {
        v.clear();
        v.resize(n, 0.0);
    }
}

/// The hand-written training pass of one GPT (see the module documentation).
pub struct GptEngine {
    vocab: usize,
    heads: usize,
    c: usize,
    block: usize,
    eps: f32,
    wte: usize,
    wpe: usize,
    lnf: usize,
    lm: usize,
    layers: Vec<LayerOffsets>,
    slots: Vec<Slot>,
    params: Vec<f32>,
    grads: Vec<f32>,
    ws: Workspace,
}

impl std::fmt::Debug for GptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GptEngine")
            .field("layers", &self.layers.len())
            .field("width", &self.c)
            .field("parameters", &self.params.len())
            .finish()
    }
}

fn plain_tensor(t: &Tensor, dims: &[usize]) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.dims() == dims
}

fn plain_linear(l: &Linear, inp: usize, out: usize) -> bool {
    l.is_plain()
        && plain_tensor(&l.weight, &[out, inp])
        && l.bias.as_ref().is_none_or(|b| plain_tensor(b, &[out]))
}

/// Hands out consecutive offsets in the flat buffers.
#[derive(Default)]
struct Alloc {
    slots: Vec<Slot>,
    at: usize,
}

impl Alloc {
    fn put(&mut self, t: &Tensor) -> usize {
        let offset = self.at;
        self.slots.push(Slot {
            tensor: t.clone(),
            offset,
        });
        self.at += t.elem_count();
        offset
    }

    /// The layer's bias, or a slot of zeros when it has none.
    fn bias(&mut self, l: &Linear) {
        match &l.bias {
            Some(b) => {
                self.put(b);
            }
            None => self.at += l.weight.dim(0).unwrap_or(0),
        }
    }

    /// Weight then bias; the weight's offset.
    fn linear(&mut self, l: &Linear) -> usize {
        let w = self.put(&l.weight);
        self.bias(l);
        w
    }
}

/// Copies `t`'s values into `dst` (its length).
fn read_into(t: &Tensor, dst: &mut [f32]) -> Result<()> {
    {
        let (s, l) = t.storage_and_layout();
        if let candle_core::Storage::Cpu(cpu) = &*s {
            if let (Ok(data), Some((a, b))) = (cpu.as_slice::<f32>(), l.contiguous_offsets()) {
                if b - a == dst.len() {
                    dst.copy_from_slice(&data[a..b]);
                    return Ok(());
                }
            }
        }
    }
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    if v.len() != dst.len() {
        return Err(TrainerError::Data(format!(
            "engine: parameter of {} values where {} were expected",
            v.len(),
            dst.len()
        )));
    }
    dst.copy_from_slice(&v);
    Ok(())
}

/// Layer norm of every row of `x` into `y`, keeping `(mean, rstd)` per row in `stats`.
fn layer_norm(x: &[f32], gb: &[f32], eps: f32, y: &mut [f32], stats: &mut [f32]) {
    let c = gb.len() / 2;
    let (g, b) = gb.split_at(c);
    for ((xr, yr), st) in x
        .chunks_exact(c)
        .zip(y.chunks_exact_mut(c))
        .zip(stats.chunks_exact_mut(2))
    {
        let (mean, rstd) = vmath::layer_norm_forward_row(xr, g, b, eps, yr);
        st[0] = mean;
        st[1] = rstd;
    }
}

/// [`linear_backward`] of the linear layer whose weight `[out, inp]` and bias `[out]` (a slot of
/// zeros when the layer has none) start at `off` in the flat parameters `p`; the weight and bias
/// gradients are written at the same offset in `g`.
fn linear_backward_at(
    p: &[f32],
    g: &mut [f32],
    off: usize,
    dy: &[f32],
    x: &[f32],
    (n, inp, out): (usize, usize, usize),
    dx: Option<&mut [f32]>,
) -> candle_core::Result<()> {
    let (dw, db) = g[off..][..out * inp + out].split_at_mut(out * inp);
    linear_backward(
        dy,
        x,
        &p[off..][..out * inp],
        (n, inp, out),
        dx,
        dw,
        Some(db),
    )
}

/// Backward of [`layer_norm`]: `dx += ∂/∂x`, `dgb` (gain then bias gradient) written.
fn layer_norm_backward(
    x: &[f32],
    stats: &[f32],
    g: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgb: &mut [f32],
) {
    let c = g.len();
    dgb.iter_mut().for_each(|v| *v = 0.0);
    let (dg, db) = dgb.split_at_mut(c);
    for (((xr, st), dyr), dxr) in x
        .chunks_exact(c)
        .zip(stats.chunks_exact(2))
        .zip(dy.chunks_exact(c))
        .zip(dx.chunks_exact_mut(c))
    {
        vmath::layer_norm_backward_row_acc(xr, st[0], st[1], g, dyr, dxr, dg, db);
    }
}

impl GptEngine {
    /// Whether `gpt` trains through the engine: the engine and the fused kernels are on
    /// ([`set_enabled`], [`crate::ops::set_fused`]) and the model qualifies (see
    /// [`Self::qualifies`]).
    pub fn supports(gpt: &Gpt) -> bool {
        enabled() && crate::ops::fused_enabled() && Self::qualifies(gpt)
    }

    /// Whether the engine can compute `gpt`'s loss: the plain configuration (no LoRA, no QAT,
    /// no autocast) with f32 CPU parameters of the configured shapes.
    pub fn qualifies(gpt: &Gpt) -> bool {
        let cfg = &gpt.config;
        let c = cfg.n_embd;
        gpt.compute == DType::F32
            && plain_tensor(&gpt.wte, &[cfg.vocab_size, c])
            && plain_tensor(&gpt.wpe, &[cfg.block_size, c])
            && plain_tensor(&gpt.lm_head, &[cfg.vocab_size, c])
            && plain_tensor(&gpt.ln_f.weight, &[c])
            && plain_tensor(&gpt.ln_f.bias, &[c])
            && gpt.blocks.len() == cfg.n_layer
            && gpt.blocks.iter().all(|blk| {
                let a = &blk.attn;
                a.compute == DType::F32
                    && a.heads == cfg.n_head
                    && [&a.q, &a.k, &a.v, &a.o]
                        .iter()
                        .all(|l| plain_linear(l, c, c))
                    && plain_linear(&blk.fc, c, 4 * c)
                    && plain_linear(&blk.proj, 4 * c, c)
                    && [&blk.ln_1, &blk.ln_2]
                        .iter()
                        .all(|n| plain_tensor(&n.weight, &[c]) && plain_tensor(&n.bias, &[c]))
            })
    }

    /// The model tensors in the engine's layout: `(tensor, offset)` pairs, the offsets of
    /// the globals and of each block, and the buffer length.
    #[allow(clippy::type_complexity)]
    fn layout(
        gpt: &Gpt,
    ) -> (
        Vec<Slot>,
        (usize, usize, usize, usize),
        Vec<LayerOffsets>,
        usize,
    ) {
        let mut a = Alloc::default();
        let wte = a.put(&gpt.wte);
        let wpe = a.put(&gpt.wpe);
        let lnf = a.put(&gpt.ln_f.weight);
        a.put(&gpt.ln_f.bias);
        let lm = if gpt.lm_head.id() == gpt.wte.id() {
            wte
        } else {
            a.put(&gpt.lm_head)
        };
        let mut layers = Vec::with_capacity(gpt.blocks.len());
        for blk in &gpt.blocks {
            let ln1 = a.put(&blk.ln_1.weight);
            a.put(&blk.ln_1.bias);
            let wqkv = a.put(&blk.attn.q.weight);
            a.put(&blk.attn.k.weight);
            a.put(&blk.attn.v.weight);
            // the three biases follow the three weights
            for l in [&blk.attn.q, &blk.attn.k, &blk.attn.v] {
                a.bias(l);
            }
            let wo = a.linear(&blk.attn.o);
            let ln2 = a.put(&blk.ln_2.weight);
            a.put(&blk.ln_2.bias);
            let wfc = a.linear(&blk.fc);
            let wproj = a.linear(&blk.proj);
            layers.push(LayerOffsets {
                ln1,
                wqkv,
                wo,
                ln2,
                wfc,
                wproj,
            });
        }
        (a.slots, (wte, wpe, lnf, lm), layers, a.at)
    }

    /// The engine for `gpt`, or `None` where the model does not qualify (see
    /// [`Self::qualifies`]).
    pub fn new(gpt: &Gpt) -> Result<Option<Self>> {
        if !Self::qualifies(gpt) {
            return Ok(None);
        }
        let cfg = &gpt.config;
        let (slots, (wte, wpe, lnf, lm), layers, len) = Self::layout(gpt);
        Ok(Some(Self {
            vocab: cfg.vocab_size,
            heads: cfg.n_head,
            c: cfg.n_embd,
            block: cfg.block_size,
            eps: cfg.layer_norm_eps as f32,
            wte,
            wpe,
            lnf,
            lm,
            layers,
            slots,
            params: vec![0.0; len],
            grads: vec![0.0; len],
            ws: Workspace::default(),
        }))
    }

    /// Whether this engine was built for `gpt`'s parameter tensors.
    pub fn matches(&self, gpt: &Gpt) -> bool {
        let (slots, ..) = Self::layout(gpt);
        slots.len() == self.slots.len()
            && slots
                .iter()
                .zip(&self.slots)
                .all(|(a, b)| a.tensor.id() == b.tensor.id() && a.offset == b.offset)
    }

    fn check(&self, batch: &TokenBatch) -> Result<f32> {
        let n = batch.batch * batch.len;
        if n == 0 {
            return Err(TrainerError::Data("empty batch".into()));
        }
        if batch.inputs.len() != n || batch.targets.len() != n || batch.weights.len() != n {
            return Err(TrainerError::Data(format!(
                "batch of {} x {} with {} inputs, {} targets, {} weights",
                batch.batch,
                batch.len,
                batch.inputs.len(),
                batch.targets.len(),
                batch.weights.len()
            )));
        }
        if batch.len > self.block {
            return Err(TrainerError::Data(format!(
                "sequence of {} tokens is longer than the context ({})",
                batch.len, self.block
            )));
        }
        for (what, ids) in [("token", &batch.inputs), ("target", &batch.targets)] {
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.vocab) {
                return Err(TrainerError::Data(format!(
                    "{what} id {bad} is out of range (table has {} rows)",
                    self.vocab
                )));
            }
        }
        let total: f32 = batch.weights.iter().sum();
        if total <= 0.0 {
            return Err(TrainerError::Data(
                "a batch has no position to compute the loss on (all masked)".into(),
            ));
        }
        Ok(total)
    }

    /// Mean next-token cross-entropy of the model on `batch` (weighted positions only, as
    /// [`super::objectives::gpt_lm_loss`]) and the gradient of every parameter tensor of the
    /// model (fresh tensors, keyed by the model's tensors).
    pub fn loss_and_grads(&mut self, batch: &TokenBatch) -> Result<(f32, GradStore)> {
        let total = self.check(batch)?;
        for s in &self.slots {
            let len = s.tensor.elem_count();
            read_into(&s.tensor, &mut self.params[s.offset..s.offset + len])?;
        }
        self.prepare(batch.batch, batch.len);
        let loss = self.forward(batch, total)?;
        self.backward(&batch.inputs)?;
        let anchor = Tensor::zeros((), DType::F32, &Device::Cpu)?;
        let mut store = anchor.backward()?;
        store.remove(&anchor);
        for s in &self.slots {
            let len = s.tensor.elem_count();
            let g = Tensor::from_slice(
                &self.grads[s.offset..s.offset + len],
                s.tensor.shape(),
                &Device::Cpu,
            )?;
            store.insert(&s.tensor, g);
        }
        Ok((loss, store))
    }

    fn prepare(&mut self, b: usize, t: usize) {
        let (l, c, h, v) = (self.layers.len(), self.c, self.heads, self.vocab);
        let n = b * t;
        let ws = &mut self.ws;
        ws.b = b;
        ws.t = t;
        resize(&mut ws.res, (l + 1) * n * c);
        resize(&mut ws.mid, l * n * c);
        resize(&mut ws.ln1, l * n * c);
        resize(&mut ws.ln1_stats, l * n * 2);
        resize(&mut ws.qkv, l * n * 3 * c);
        resize(&mut ws.att, l * b * h * t * t);
        resize(&mut ws.atty, l * n * c);
        resize(&mut ws.ln2, l * n * c);
        resize(&mut ws.ln2_stats, l * n * 2);
        resize(&mut ws.fch, l * n * 4 * c);
        resize(&mut ws.fcg, l * n * 4 * c);
        resize(&mut ws.lnf, n * c);
        resize(&mut ws.lnf_stats, n * 2);
        resize(&mut ws.logits, n * v);
        resize(&mut ws.dres, n * c);
        resize(&mut ws.dln, n * c);
        resize(&mut ws.dqkv, n * 3 * c);
        resize(&mut ws.datty, n * c);
        resize(&mut ws.d4, n * 4 * c);
        resize(&mut ws.dp, t * t);
    }

    /// The forward pass through the loss; leaves the logits' gradient in `ws.logits`.
    fn forward(&mut self, batch: &TokenBatch, total: f32) -> Result<f32> {
        let (c, v, h) = (self.c, self.vocab, self.heads);
        let (b, t) = (self.ws.b, self.ws.t);
        let (n, d) = (b * t, c / h);
        let nc = n * c;
        let scale = 1.0 / (d as f32).sqrt();
        let p = &self.params;
        let ws = &mut self.ws;
        // token + position embeddings
        for (i, row) in ws.res[..nc].chunks_exact_mut(c).enumerate() {
            let te = &p[self.wte + batch.inputs[i] as usize * c..][..c];
            let pe = &p[self.wpe + (i % t) * c..][..c];
            for ((r, &a), &e) in row.iter_mut().zip(te).zip(pe) {
                *r = a + e;
            }
        }
        let btt = b * h * t * t;
        for (l, lo) in self.layers.iter().enumerate() {
            let (done, next) = ws.res.split_at_mut((l + 1) * nc);
            let x = &done[l * nc..];
            let out = &mut next[..nc];
            let ln1 = &mut ws.ln1[l * nc..][..nc];
            let st1 = &mut ws.ln1_stats[l * 2 * n..][..2 * n];
            layer_norm(x, &p[lo.ln1..][..2 * c], self.eps, ln1, st1);
            let qkv = &mut ws.qkv[l * 3 * nc..][..3 * nc];
            let wqkv = &p[lo.wqkv..][..3 * c * c + 3 * c];
            let (w, bias) = wqkv.split_at(3 * c * c);
            linear_forward(qkv, ln1, w, Some(bias), None, (n, c, 3 * c))?;
            let att = &mut ws.att[l * btt..][..btt];
            let atty = &mut ws.atty[l * nc..][..nc];
            for bi in 0..b {
                for hh in 0..h {
                    let q = View::rows(bi * t * 3 * c + hh * d, t, d, 3 * c);
                    let k = View {
                        offset: q.offset + c,
                        ..q
                    };
                    let vv = View {
                        offset: q.offset + 2 * c,
                        ..q
                    };
                    head_forward(
                        scale,
                        (qkv, q),
                        (qkv, k),
                        (qkv, vv),
                        &mut att[(bi * h + hh) * t * t..][..t * t],
                        atty,
                        View::rows(bi * t * c + hh * d, t, d, c),
                    )?;
                }
            }
            let mid = &mut ws.mid[l * nc..][..nc];
            let (w, bias) = p[lo.wo..][..c * c + c].split_at(c * c);
            linear_forward(mid, atty, w, Some(bias), Some(x), (n, c, c))?;
            let ln2 = &mut ws.ln2[l * nc..][..nc];
            let st2 = &mut ws.ln2_stats[l * 2 * n..][..2 * n];
            layer_norm(mid, &p[lo.ln2..][..2 * c], self.eps, ln2, st2);
            let fch = &mut ws.fch[l * 4 * nc..][..4 * nc];
            let (w, bias) = p[lo.wfc..][..4 * c * c + 4 * c].split_at(4 * c * c);
            linear_forward(fch, ln2, w, Some(bias), None, (n, c, 4 * c))?;
            let fcg = &mut ws.fcg[l * 4 * nc..][..4 * nc];
            // `fch` keeps GELU's derivative for the backward
            vmath::gelu_forward_keep_derivative(fch, fcg);
            let (w, bias) = p[lo.wproj..][..4 * c * c + c].split_at(4 * c * c);
            linear_forward(out, fcg, w, Some(bias), Some(mid), (n, 4 * c, c))?;
        }
        let last = self.layers.len();
        let xl = &ws.res[last * nc..][..nc];
        layer_norm(
            xl,
            &p[self.lnf..][..2 * c],
            self.eps,
            &mut ws.lnf,
            &mut ws.lnf_stats,
        );
        matmul(
            &mut ws.logits,
            View::rows(0, n, v, v),
            false,
            &ws.lnf,
            View::rows(0, n, c, c),
            p,
            View::rows(self.lm, v, c, c).t(),
        )?;
        let mut sum = 0f32;
        for ((row, &target), &w) in ws
            .logits
            .chunks_exact_mut(v)
            .zip(&batch.targets)
            .zip(&batch.weights)
        {
            sum += w * loss::nll_row_and_grad_in_place(row, target as usize, w / total);
        }
        Ok(sum / total)
    }

    /// The backward pass from the logits' gradient: every parameter gradient written once.
    fn backward(&mut self, inputs: &[u32]) -> Result<()> {
        let (c, v, h) = (self.c, self.vocab, self.heads);
        let (b, t) = (self.ws.b, self.ws.t);
        let (n, d) = (b * t, c / h);
        let nc = n * c;
        let scale = 1.0 / (d as f32).sqrt();
        let p = &self.params;
        let g = &mut self.grads;
        let ws = &mut self.ws;
        // LM head: dW = dlogitsᵀ lnf, dlnf = dlogits W
        matmul(
            &mut g[self.lm..self.lm + v * c],
            View::rows(0, v, c, c),
            false,
            &ws.logits,
            View::rows(0, n, v, v).t(),
            &ws.lnf,
            View::rows(0, n, c, c),
        )?;
        matmul(
            &mut ws.dln,
            View::rows(0, n, c, c),
            false,
            &ws.logits,
            View::rows(0, n, v, v),
            p,
            View::rows(self.lm, v, c, c),
        )?;
        let last = self.layers.len();
        ws.dres.iter_mut().for_each(|x| *x = 0.0);
        layer_norm_backward(
            &ws.res[last * nc..][..nc],
            &ws.lnf_stats,
            &p[self.lnf..][..c],
            &ws.dln,
            &mut ws.dres,
            &mut g[self.lnf..][..2 * c],
        );
        let btt = b * h * t * t;
        for (l, lo) in self.layers.iter().enumerate().rev() {
            // MLP: out = mid + proj(gelu(fc(ln2(mid))))
            linear_backward_at(
                p,
                g,
                lo.wproj,
                &ws.dres,
                &ws.fcg[l * 4 * nc..][..4 * nc],
                (n, 4 * c, c),
                Some(&mut ws.d4),
            )?;
            vmath::mul_in_place(&mut ws.d4, &ws.fch[l * 4 * nc..][..4 * nc]);
            linear_backward_at(
                p,
                g,
                lo.wfc,
                &ws.d4,
                &ws.ln2[l * nc..][..nc],
                (n, c, 4 * c),
                Some(&mut ws.dln),
            )?;
            layer_norm_backward(
                &ws.mid[l * nc..][..nc],
                &ws.ln2_stats[l * 2 * n..][..2 * n],
                &p[lo.ln2..][..c],
                &ws.dln,
                &mut ws.dres,
                &mut g[lo.ln2..][..2 * c],
            );
            // attention: mid = x + o(attend(qkv(ln1(x))))
            linear_backward_at(
                p,
                g,
                lo.wo,
                &ws.dres,
                &ws.atty[l * nc..][..nc],
                (n, c, c),
                Some(&mut ws.datty),
            )?;
            let qkv = &ws.qkv[l * 3 * nc..][..3 * nc];
            let att = &ws.att[l * btt..][..btt];
            for bi in 0..b {
                for hh in 0..h {
                    let q = View::rows(bi * t * 3 * c + hh * d, t, d, 3 * c);
                    let views = HeadViews {
                        q,
                        k: View {
                            offset: q.offset + c,
                            ..q
                        },
                        v: View {
                            offset: q.offset + 2 * c,
                            ..q
                        },
                    };
                    head_backward(
                        scale,
                        qkv,
                        views,
                        &att[(bi * h + hh) * t * t..][..t * t],
                        (&ws.datty, View::rows(bi * t * c + hh * d, t, d, c)),
                        &mut ws.dp,
                        &mut ws.dqkv,
                    )?;
                }
            }
            linear_backward_at(
                p,
                g,
                lo.wqkv,
                &ws.dqkv,
                &ws.ln1[l * nc..][..nc],
                (n, c, 3 * c),
                Some(&mut ws.dln),
            )?;
            layer_norm_backward(
                &ws.res[l * nc..][..nc],
                &ws.ln1_stats[l * 2 * n..][..2 * n],
                &p[lo.ln1..][..c],
                &ws.dln,
                &mut ws.dres,
                &mut g[lo.ln1..][..2 * c],
            );
        }
        // embeddings: the token table's gradient adds to the LM head's when they are tied
        let dwpe = &mut g[self.wpe..self.wpe + self.block * c];
        dwpe.iter_mut().for_each(|x| *x = 0.0);
        for (i, row) in ws.dres.chunks_exact(c).enumerate() {
            for (a, &x) in dwpe[(i % t) * c..][..c].iter_mut().zip(row) {
                *a += x;
            }
        }
        let dwte = &mut g[self.wte..self.wte + v * c];
        if self.lm != self.wte {
            dwte.iter_mut().for_each(|x| *x = 0.0);
        }
        for (&id, row) in inputs.iter().zip(ws.dres.chunks_exact(c)) {
            for (a, &x) in dwte[id as usize * c..][..c].iter_mut().zip(row) {
                *a += x;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{BuildOptions, GptConfig, Params};
    use crate::train::objectives;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn config(tied: bool, bias: bool) -> GptConfig {
        GptConfig {
            vocab_size: 23,
            n_layer: 3,
            n_head: 4,
            n_embd: 16,
            block_size: 12,
            tied_embeddings: tied,
            bias,
            layer_norm_eps: 1e-5,
            num_labels: None,
        }
    }

    /// A model with every parameter random (biases and norms too, not their zero/one
    /// initialization), so that every gradient path carries signal.
    fn model(cfg: &GptConfig, seed: u64) -> (Params, Gpt) {
        let mut params = Params::new(seed, &Device::Cpu);
        let gpt = Gpt::new(cfg, &mut params, BuildOptions::default()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
        for (name, var) in params.iter() {
            let n = var.elem_count();
            let (center, spread) = if name.contains("ln_") && name.ends_with("weight") {
                (1.0, 0.3)
            } else {
                (0.0, 0.3)
            };
            let v: Vec<f32> = (0..n)
                .map(|_| center + rng.gen_range(-spread..spread))
                .collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
        (params, gpt)
    }

    fn batch(cfg: &GptConfig, b: usize, t: usize, seed: u64, masked: bool) -> TokenBatch {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let seqs: Vec<Vec<u32>> = (0..b)
            .map(|_| {
                (0..=t)
                    .map(|_| rng.gen_range(0..cfg.vocab_size as u32))
                    .collect()
            })
            .collect();
        let mut batch = TokenBatch::causal(&seqs).unwrap();
        if masked {
            for (i, w) in batch.weights.iter_mut().enumerate() {
                *w = if i % 3 == 1 { 0.0 } else { 1.0 };
            }
        }
        batch
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

    /// The loss and the gradient of every parameter equal candle's autograd through the model
    /// (fused kernels on and off), tied and untied embeddings, with and without biases, with
    /// masked positions, for sequences shorter than the context.
    #[test]
    fn loss_and_every_gradient_match_autograd() {
        for (case, &(tied, bias, masked)) in [
            (true, true, false),
            (false, true, true),
            (true, false, true),
        ]
        .iter()
        .enumerate()
        {
            let cfg = config(tied, bias);
            let (params, gpt) = model(&cfg, 10 + case as u64);
            let batch = batch(&cfg, 3, 9, 20 + case as u64, masked);
            let mut engine = GptEngine::new(&gpt)
                .unwrap()
                .expect("plain model qualifies");
            let (loss, grads) = engine.loss_and_grads(&batch).unwrap();
            // a second call reuses the buffers and gives the same result
            let (loss2, grads2) = engine.loss_and_grads(&batch).unwrap();
            assert_eq!(loss.to_bits(), loss2.to_bits());
            for fused in [true, false] {
                crate::ops::set_fused(fused);
                let reference = objectives::gpt_lm_loss(&gpt, &batch).unwrap();
                let want = reference.backward().unwrap();
                crate::ops::set_fused(true);
                let rl = reference.to_scalar::<f32>().unwrap();
                assert!((loss - rl).abs() <= 1e-5 * rl.abs(), "loss {loss} vs {rl}");
                let mut count = 0;
                for (name, var) in params.iter() {
                    let (Some(a), Some(b)) =
                        (grads.get(var.as_tensor()), want.get(var.as_tensor()))
                    else {
                        panic!("{name}: gradient missing")
                    };
                    assert_eq!(a.dims(), b.dims(), "{name}");
                    let scale = max_abs(b);
                    assert!(scale > 0.0, "{name}: zero reference gradient");
                    let d = max_abs(&(a - b).unwrap());
                    // the key bias's true gradient is zero (a per-row constant shift of the
                    // scores): both sides are rounding noise there, hence the small floor
                    assert!(
                        d <= 1e-5 * scale + 1e-7,
                        "case {case} fused {fused} {name}: max diff {d}, scale {scale}"
                    );
                    let a2 = grads2.get(var.as_tensor()).unwrap();
                    assert_eq!(max_abs(&(a - a2).unwrap()), 0.0, "{name} repeat");
                    count += 1;
                }
                assert_eq!(count, params.iter().count());
            }
        }
    }

    /// Central finite differences of the engine's loss agree with its gradient on a few
    /// entries of several parameters of a tiny model.
    #[test]
    fn gradient_matches_finite_differences() {
        let cfg = GptConfig {
            vocab_size: 7,
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            block_size: 6,
            ..config(true, true)
        };
        let (params, gpt) = model(&cfg, 3);
        let batch = batch(&cfg, 2, 5, 4, false);
        let mut engine = GptEngine::new(&gpt).unwrap().unwrap();
        let (_, grads) = engine.loss_and_grads(&batch).unwrap();
        let mut checked = 0;
        for name in [
            "wte.weight",
            "wpe.weight",
            "h.0.ln_1.weight",
            "h.0.attn.q.weight",
            "h.0.attn.k.bias",
            "h.1.attn.v.weight",
            "h.1.attn.o.bias",
            "h.1.mlp.fc.weight",
            "h.0.mlp.proj.weight",
            "ln_f.bias",
        ] {
            let var = params.var(name).unwrap();
            let g: Vec<f32> = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for i in [0, base.len() / 2, base.len() - 1] {
                let eps = 1e-2f32;
                let mut at = |delta: f32| {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    engine.loss_and_grads(&batch).unwrap().0 as f64
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let got = g[i] as f64;
                assert!(
                    (fd - got).abs() <= 2e-3 + 2e-2 * got.abs(),
                    "{name}[{i}]: finite difference {fd} vs engine {got}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 30);
    }

    /// Models the engine does not handle are refused (the caller falls back to autograd), and
    /// bad batches are errors.
    #[test]
    fn unsupported_models_and_bad_batches() {
        let cfg = config(true, true);
        let mut params = Params::new(1, &Device::Cpu);
        let lora = BuildOptions {
            lora: Some(crate::models::LoraConfig {
                rank: 2,
                alpha: 4.0,
                target_modules: vec!["q".into()],
            }),
            qat: false,
        };
        let gpt = Gpt::new(&cfg, &mut params, lora).unwrap();
        assert!(GptEngine::new(&gpt).unwrap().is_none());
        assert!(!GptEngine::supports(&gpt));
        let (_, gpt) = model(&cfg, 2);
        let mut engine = GptEngine::new(&gpt).unwrap().unwrap();
        let long = batch(&cfg, 1, 13, 1, false);
        assert!(engine.loss_and_grads(&long).is_err());
        let mut bad = batch(&cfg, 2, 4, 1, false);
        bad.inputs[3] = 23;
        assert!(engine.loss_and_grads(&bad).is_err());
        let mut none = batch(&cfg, 2, 4, 1, false);
        none.weights.iter_mut().for_each(|w| *w = 0.0);
        assert!(engine.loss_and_grads(&none).is_err());
    }
}

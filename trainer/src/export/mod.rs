//! fp32 ONNX export of the GPT (LM head or classification head) and the encoder (MLM head,
//! sentence embedding or classification head), with static shapes.
//!
//! Standard ONNX operators only: Gather, Add, Mul, Sub, Div, MatMul, Reshape, Transpose,
//! LayerNormalization (opset 17), Softmax, Gelu (opset ≥ 20) or its Erf form (opset 17–19),
//! Cast, ReduceSum, Max. Linear layers are `MatMul` with the weight stored transposed as
//! `<layer>.weight_t` `[in, out]` (so per-channel quantization uses axis 1), plus `Add` of
//! `<layer>.bias`. Inputs are `input_ids` (int64 `[B, T]`) and, for the encoder and the
//! classifiers, `attention_mask` (int64 `[B, T]`, 1 real / 0 padding).

pub mod ds_cnn;
pub mod graph;

use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;

use crate::models::layers::{Attention, LayerNorm, Linear, MASK_VALUE};
use crate::models::{Bert, Gpt};
use crate::{Result, TrainerError};
use graph::{Attr, Elem, GraphBuilder};

/// Which head the exported graph ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Token logits `[B, T, V]` (next-token for GPT, masked-token for the encoder).
    Lm,
    /// Class logits `[B, K]`.
    Classifier,
    /// Mean-pooled hidden states `[B, C]` (encoder sentence embeddings).
    Embedding,
}

/// Export settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOptions {
    /// Static batch size.
    pub batch: usize,
    /// Static sequence length (at most the model's context).
    pub seq_len: usize,
    /// ONNX opset (17 to 21). From 20 on, GELU is the `Gelu` operator; below, its Erf form.
    pub opset: i64,
    /// The head.
    pub head: Head,
}

fn data(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

struct Exporter {
    g: GraphBuilder,
    opset: i64,
    batch: usize,
    seq: usize,
}

impl Exporter {
    fn linear(&mut self, x: &str, l: &Linear) -> Result<String> {
        let (out, inp) = l.weight.dims2()?;
        let wt = data(&l.weight.t()?.contiguous()?)?;
        let w = self
            .g
            .init_f32(&format!("{}.weight_t", l.name), &[inp, out], wt);
        let mut y = self
            .g
            .node("MatMul", &format!("{}/MatMul", l.name), &[x, &w], &[]);
        if let Some(b) = &l.bias {
            let b = self
                .g
                .init_f32(&format!("{}.bias", l.name), &[out], data(b)?);
            y = self
                .g
                .node("Add", &format!("{}/Add", l.name), &[&y, &b], &[]);
        }
        Ok(y)
    }

    fn layer_norm(&mut self, x: &str, ln: &LayerNorm, name: &str) -> Result<String> {
        let dim = ln.weight.dim(0)?;
        let w = self
            .g
            .init_f32(&format!("{name}.weight"), &[dim], data(&ln.weight)?);
        let b = self
            .g
            .init_f32(&format!("{name}.bias"), &[dim], data(&ln.bias)?);
        Ok(self.g.node(
            "LayerNormalization",
            &format!("{name}/LayerNormalization"),
            &[x, &w, &b],
            &[
                ("axis", Attr::Int(-1)),
                ("epsilon", Attr::Float(ln.eps as f32)),
            ],
        ))
    }

    fn gelu(&mut self, x: &str, name: &str) -> String {
        if self.opset >= 20 {
            return self.g.node("Gelu", &format!("{name}/Gelu"), &[x], &[]);
        }
        let sqrt2 = self.g.scalar(std::f32::consts::SQRT_2);
        let one = self.g.scalar(1.0);
        let half = self.g.scalar(0.5);
        let d = self
            .g
            .node("Div", &format!("{name}/Div"), &[x, &sqrt2], &[]);
        let e = self.g.node("Erf", &format!("{name}/Erf"), &[&d], &[]);
        let a = self.g.node("Add", &format!("{name}/Add"), &[&e, &one], &[]);
        let m = self.g.node("Mul", &format!("{name}/Mul"), &[x, &a], &[]);
        self.g
            .node("Mul", &format!("{name}/Mul_half"), &[&m, &half], &[])
    }

    /// Self-attention on `x` `[B, T, C]`; `mask` is an additive tensor broadcastable to
    /// `[B, H, T, T]` (`None`: every position attends to every position).
    fn attention(
        &mut self,
        x: &str,
        a: &Attention,
        name: &str,
        mask: Option<&str>,
    ) -> Result<String> {
        let (b, t) = (self.batch, self.seq);
        let c = a.q.weight.dim(0)?;
        let h = a.heads;
        let d = c / h;
        let split = self.g.ints(&[b as i64, t as i64, h as i64, d as i64]);
        let merged = self.g.ints(&[b as i64, t as i64, c as i64]);
        let q = self.linear(x, &a.q)?;
        let k = self.linear(x, &a.k)?;
        let v = self.linear(x, &a.v)?;
        let q = self
            .g
            .node("Reshape", &format!("{name}/q/Reshape"), &[&q, &split], &[]);
        let q = self.g.node(
            "Transpose",
            &format!("{name}/q/Transpose"),
            &[&q],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let k = self
            .g
            .node("Reshape", &format!("{name}/k/Reshape"), &[&k, &split], &[]);
        let k = self.g.node(
            "Transpose",
            &format!("{name}/k/Transpose"),
            &[&k],
            &[("perm", Attr::Ints(vec![0, 2, 3, 1]))],
        );
        let v = self
            .g
            .node("Reshape", &format!("{name}/v/Reshape"), &[&v, &split], &[]);
        let v = self.g.node(
            "Transpose",
            &format!("{name}/v/Transpose"),
            &[&v],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let s = self
            .g
            .node("MatMul", &format!("{name}/scores/MatMul"), &[&q, &k], &[]);
        let scale = self.g.scalar(1.0 / (d as f32).sqrt());
        let s = self
            .g
            .node("Mul", &format!("{name}/scores/Mul"), &[&s, &scale], &[]);
        let s = match mask {
            Some(mask) => self
                .g
                .node("Add", &format!("{name}/scores/mask"), &[&s, mask], &[]),
            None => s,
        };
        let p = self.g.node(
            "Softmax",
            &format!("{name}/Softmax"),
            &[&s],
            &[("axis", Attr::Int(-1))],
        );
        let y = self
            .g
            .node("MatMul", &format!("{name}/context/MatMul"), &[&p, &v], &[]);
        let y = self.g.node(
            "Transpose",
            &format!("{name}/context/Transpose"),
            &[&y],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let y = self.g.node(
            "Reshape",
            &format!("{name}/context/Reshape"),
            &[&y, &merged],
            &[],
        );
        self.linear(&y, &a.o)
    }

    fn embed(&mut self, table: &Tensor, name: &str, ids: &str) -> Result<String> {
        let (n, c) = table.dims2()?;
        let w = self.g.init_f32(name, &[n, c], data(table)?);
        Ok(self.g.node(
            "Gather",
            &format!("{name}/Gather"),
            &[&w, ids],
            &[("axis", Attr::Int(0))],
        ))
    }

    /// Positions `0..T` of `table` as a `[T, C]` constant slice input to Gather.
    fn positions(&mut self, table: &Tensor, name: &str) -> Result<String> {
        let pos = self
            .g
            .init_i64("position_ids", &[self.seq], (0..self.seq as i64).collect());
        self.embed(table, name, &pos)
    }

    /// `[B, 1, 1, T]` additive mask from the int64 `attention_mask` input, plus the float `[B, T]` mask.
    fn padding_mask(&mut self, mask: &str) -> (String, String) {
        let m = self.g.node(
            "Cast",
            "attention_mask/Cast",
            &[mask],
            &[("to", Attr::Int(pb::tensor_proto::DataType::Float as i64))],
        );
        let one = self.g.scalar(1.0);
        let big = self.g.scalar(MASK_VALUE);
        let inv = self.g.node("Sub", "attention_mask/Sub", &[&one, &m], &[]);
        let add = self.g.node("Mul", "attention_mask/Mul", &[&inv, &big], &[]);
        let shape = self.g.ints(&[self.batch as i64, 1, 1, self.seq as i64]);
        let add = self
            .g
            .node("Reshape", "attention_mask/Reshape", &[&add, &shape], &[]);
        (add, m)
    }

    /// Mean over the positions of `h` `[B, T, C]`: the real ones with a float mask `[B, T]`,
    /// all of them without.
    fn pool(&mut self, h: &str, m: Option<&str>) -> String {
        match m {
            Some(m) => self.mean_pool(h, m),
            None => {
                if self.opset >= 18 {
                    let axes = self.g.ints(&[1]);
                    self.g.node(
                        "ReduceMean",
                        "pool/ReduceMean",
                        &[h, &axes],
                        &[("keepdims", Attr::Int(0))],
                    )
                } else {
                    self.g.node(
                        "ReduceMean",
                        "pool/ReduceMean",
                        &[h],
                        &[("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))],
                    )
                }
            }
        }
    }

    /// Mean over the real positions of `h` `[B, T, C]` with float mask `m` `[B, T]`.
    fn mean_pool(&mut self, h: &str, m: &str) -> String {
        let shape = self.g.ints(&[self.batch as i64, self.seq as i64, 1]);
        let m3 = self
            .g
            .node("Reshape", "pool/mask/Reshape", &[m, &shape], &[]);
        let hm = self.g.node("Mul", "pool/Mul", &[h, &m3], &[]);
        let axes = self.g.ints(&[1]);
        let sum = self.g.node(
            "ReduceSum",
            "pool/ReduceSum",
            &[&hm, &axes],
            &[("keepdims", Attr::Int(0))],
        );
        let cnt = self.g.node(
            "ReduceSum",
            "pool/count/ReduceSum",
            &[&m3, &axes],
            &[("keepdims", Attr::Int(0))],
        );
        let one = self.g.scalar(1.0);
        let cnt = self.g.node("Max", "pool/count/Max", &[&cnt, &one], &[]);
        self.g.node("Div", "pool/Div", &[&sum, &cnt], &[])
    }

    fn matmul_t(&mut self, x: &str, w: &Tensor, name: &str) -> Result<String> {
        let (n, c) = w.dims2()?;
        let wt = self.g.init_f32(name, &[c, n], data(&w.t()?.contiguous()?)?);
        Ok(self
            .g
            .node("MatMul", &format!("{name}/MatMul"), &[x, &wt], &[]))
    }
}

fn check(opts: &ExportOptions, context: usize) -> Result<()> {
    if opts.batch == 0 || opts.seq_len == 0 {
        return Err(TrainerError::Export(
            "batch and seq_len must be at least 1".into(),
        ));
    }
    if opts.seq_len > context {
        return Err(TrainerError::Export(format!(
            "seq_len {} exceeds the model's context {context}",
            opts.seq_len
        )));
    }
    if !(17..=21).contains(&opts.opset) {
        return Err(TrainerError::Export(format!(
            "opset {} is not supported (17 to 21)",
            opts.opset
        )));
    }
    Ok(())
}

/// Exports the GPT with the chosen head (LM or classifier).
pub fn export_gpt(model: &Gpt, opts: &ExportOptions) -> Result<pb::ModelProto> {
    export_gpt_with(model, opts, true)
}

/// Exports the GPT classifier for fixed-length inputs, without the `attention_mask` input:
/// causal attention over all `seq_len` positions and a plain mean over them (`ReduceMean`),
/// the form a microcontroller image takes. It matches a model fine-tuned on inputs padded to
/// `seq_len` with the pad token kept as a token (`ClassifyOptions::fixed_length`). With the LM
/// head it is [`export_gpt`].
pub fn export_gpt_fixed_length(model: &Gpt, opts: &ExportOptions) -> Result<pb::ModelProto> {
    export_gpt_with(model, opts, false)
}

fn export_gpt_with(model: &Gpt, opts: &ExportOptions, masked: bool) -> Result<pb::ModelProto> {
    check(opts, model.config.block_size)?;
    let (b, t) = (opts.batch, opts.seq_len);
    let cfg = &model.config;
    let mut e = Exporter {
        g: GraphBuilder::default(),
        opset: opts.opset,
        batch: b,
        seq: t,
    };
    let ids = e.g.input("input_ids", Elem::I64, &[b, t]);
    let mask_in = match opts.head {
        Head::Classifier if masked => Some(e.g.input("attention_mask", Elem::I64, &[b, t])),
        Head::Classifier | Head::Lm => None,
        Head::Embedding => {
            return Err(TrainerError::Export(
                "the GPT has no embedding head; use lm or classifier".into(),
            ))
        }
    };
    let tok = e.embed(&model.wte, "wte.weight", &ids)?;
    let pos = e.positions(&model.wpe, "wpe.weight")?;
    let mut x = e.g.node("Add", "embeddings/Add", &[&tok, &pos], &[]);
    let causal = crate::models::layers::causal_mask(t, &candle_core::Device::Cpu)?;
    let mask = e.g.init_f32("causal_mask", &[t, t], data(&causal)?);
    for (i, blk) in model.blocks.iter().enumerate() {
        let p = format!("h.{i}");
        let n1 = e.layer_norm(&x, &blk.ln_1, &format!("{p}.ln_1"))?;
        let a = e.attention(&n1, &blk.attn, &format!("{p}.attn"), Some(&mask))?;
        x = e.g.node("Add", &format!("{p}/residual_1"), &[&x, &a], &[]);
        let n2 = e.layer_norm(&x, &blk.ln_2, &format!("{p}.ln_2"))?;
        let f = e.linear(&n2, &blk.fc)?;
        let f = e.gelu(&f, &format!("{p}.mlp"));
        let f = e.linear(&f, &blk.proj)?;
        x = e.g.node("Add", &format!("{p}/residual_2"), &[&x, &f], &[]);
    }
    let h = e.layer_norm(&x, &model.ln_f, "ln_f")?;
    let out = match (opts.head, mask_in) {
        (Head::Classifier, Some(m)) => {
            let cls = model.classifier.as_ref().ok_or_else(|| {
                TrainerError::Export("the model has no classification head".into())
            })?;
            let mf = e.g.node(
                "Cast",
                "attention_mask/Cast",
                &[&m],
                &[("to", Attr::Int(pb::tensor_proto::DataType::Float as i64))],
            );
            let pooled = e.mean_pool(&h, &mf);
            let y = e.linear(&pooled, cls)?;
            let y = e.g.node("Identity", "logits", &[&y], &[]);
            e.g.output(&y, Elem::F32, &[b, cls.weight.dim(0)?]);
            y
        }
        (Head::Classifier, None) => {
            let cls = model.classifier.as_ref().ok_or_else(|| {
                TrainerError::Export("the model has no classification head".into())
            })?;
            let pooled = e.pool(&h, None);
            let y = e.linear(&pooled, cls)?;
            let y = e.g.node("Identity", "logits", &[&y], &[]);
            e.g.output(&y, Elem::F32, &[b, cls.weight.dim(0)?]);
            y
        }
        _ => {
            let y = e.matmul_t(&h, &model.lm_head, "lm_head.weight_t")?;
            let y = e.g.node("Identity", "logits", &[&y], &[]);
            e.g.output(&y, Elem::F32, &[b, t, cfg.vocab_size]);
            y
        }
    };
    let _ = out;
    Ok(e.g.finish(
        "gpt",
        opts.opset,
        &serde_json::to_string(cfg).unwrap_or_default(),
    ))
}

/// Exports the encoder with the chosen head (MLM logits, sentence embedding or classifier).
pub fn export_bert(model: &Bert, opts: &ExportOptions) -> Result<pb::ModelProto> {
    export_bert_with(model, opts, true)
}

/// Exports the encoder for fixed-length inputs, without the `attention_mask` input: every
/// position attends to every position and pooling is a plain mean over all `seq_len` positions
/// (`ReduceMean`). This is the form a microcontroller image takes (no int64 mask arithmetic);
/// it matches a model fine-tuned on inputs padded to `seq_len` with the pad token kept as a
/// token (`ClassifyOptions::fixed_length`).
pub fn export_bert_fixed_length(model: &Bert, opts: &ExportOptions) -> Result<pb::ModelProto> {
    export_bert_with(model, opts, false)
}

fn export_bert_with(model: &Bert, opts: &ExportOptions, masked: bool) -> Result<pb::ModelProto> {
    check(opts, model.config.max_position_embeddings)?;
    let (b, t) = (opts.batch, opts.seq_len);
    let cfg = &model.config;
    let mut e = Exporter {
        g: GraphBuilder::default(),
        opset: opts.opset,
        batch: b,
        seq: t,
    };
    let ids = e.g.input("input_ids", Elem::I64, &[b, t]);
    let mask_in = masked.then(|| e.g.input("attention_mask", Elem::I64, &[b, t]));
    let tok = e.embed(
        &model.word_embeddings,
        "embeddings.word_embeddings.weight",
        &ids,
    )?;
    let pos = e.positions(
        &model.position_embeddings,
        "embeddings.position_embeddings.weight",
    )?;
    let typ = e.g.init_f32(
        "embeddings.token_type_embeddings.weight.0",
        &[cfg.hidden_size],
        data(&model.token_type_embeddings.narrow(0, 0, 1)?)?,
    );
    let x = e.g.node("Add", "embeddings/Add", &[&tok, &pos], &[]);
    let x = e.g.node("Add", "embeddings/Add_type", &[&x, &typ], &[]);
    let mut x = e.layer_norm(&x, &model.embeddings_ln, "embeddings.LayerNorm")?;
    let (mask, mf) = match &mask_in {
        Some(m) => {
            let (mask, mf) = e.padding_mask(m);
            (Some(mask), Some(mf))
        }
        None => (None, None),
    };
    for (i, l) in model.layers.iter().enumerate() {
        let p = format!("encoder.layer.{i}");
        let a = e.attention(&x, &l.attn, &format!("{p}.attention"), mask.as_deref())?;
        let r =
            e.g.node("Add", &format!("{p}.attention/residual"), &[&x, &a], &[]);
        x = e.layer_norm(&r, &l.attn_ln, &format!("{p}.attention.output.LayerNorm"))?;
        let f = e.linear(&x, &l.intermediate)?;
        let f = e.gelu(&f, &format!("{p}.intermediate"));
        let f = e.linear(&f, &l.output)?;
        let r =
            e.g.node("Add", &format!("{p}.output/residual"), &[&x, &f], &[]);
        x = e.layer_norm(&r, &l.output_ln, &format!("{p}.output.LayerNorm"))?;
    }
    match opts.head {
        Head::Lm => {
            let y = e.linear(&x, &model.mlm.dense)?;
            let y = e.gelu(&y, "cls.predictions.transform");
            let y = e.layer_norm(&y, &model.mlm.ln, "cls.predictions.transform.LayerNorm")?;
            let y = e.matmul_t(&y, &model.mlm.decoder, "cls.predictions.decoder.weight_t")?;
            let bias = e.g.init_f32(
                "cls.predictions.bias",
                &[cfg.vocab_size],
                data(&model.mlm.bias)?,
            );
            let y = e.g.node("Add", "logits", &[&y, &bias], &[]);
            e.g.output(&y, Elem::F32, &[b, t, cfg.vocab_size]);
        }
        Head::Embedding => {
            let pooled = e.pool(&x, mf.as_deref());
            let y = e.g.node("Identity", "embedding", &[&pooled], &[]);
            e.g.output(&y, Elem::F32, &[b, cfg.hidden_size]);
        }
        Head::Classifier => {
            let cls = model.classifier.as_ref().ok_or_else(|| {
                TrainerError::Export("the model has no classification head".into())
            })?;
            let pooled = e.pool(&x, mf.as_deref());
            let y = e.linear(&pooled, cls)?;
            let y = e.g.node("Identity", "logits", &[&y], &[]);
            e.g.output(&y, Elem::F32, &[b, cls.weight.dim(0)?]);
        }
    }
    Ok(e.g.finish(
        "encoder",
        opts.opset,
        &serde_json::to_string(cfg).unwrap_or_default(),
    ))
}

/// Exports one decoding step of the GPT with a static key/value cache (for generation).
///
/// Inputs: `input_ids` int64 `[B, 1]` (the new token), `position` int64 `[1]` (its position),
/// `past_mask` int64 `[B, P]` (1 where the cache slot holds a real earlier token, P = context − 1),
/// and per layer `past_key.<i>` / `past_value.<i>` f32 `[B, H, P, D]`. Outputs: `logits`
/// `[B, 1, V]` and per layer `present_key.<i>` / `present_value.<i>` `[B, H, 1, D]`, the new
/// token's key and value, which the caller stores into the cache slot of `position`.
pub fn export_gpt_decode_step(model: &Gpt, batch: usize, opset: i64) -> Result<pb::ModelProto> {
    let cfg = &model.config;
    if cfg.block_size < 2 {
        return Err(TrainerError::Export(
            "a decode step needs a context of at least 2".into(),
        ));
    }
    let p_len = cfg.block_size - 1;
    check(
        &ExportOptions {
            batch,
            seq_len: 1,
            opset,
            head: Head::Lm,
        },
        cfg.block_size,
    )?;
    let (c, h) = (cfg.n_embd, cfg.n_head);
    let d = c / h;
    let b = batch;
    let mut e = Exporter {
        g: GraphBuilder::default(),
        opset,
        batch: b,
        seq: 1,
    };
    let ids = e.g.input("input_ids", Elem::I64, &[b, 1]);
    let pos = e.g.input("position", Elem::I64, &[1]);
    let past_mask = e.g.input("past_mask", Elem::I64, &[b, p_len]);
    let mut past = Vec::new();
    for i in 0..cfg.n_layer {
        let k =
            e.g.input(&format!("past_key.{i}"), Elem::F32, &[b, h, p_len, d]);
        let v =
            e.g.input(&format!("past_value.{i}"), Elem::F32, &[b, h, p_len, d]);
        past.push((k, v));
    }
    let tok = e.embed(&model.wte, "wte.weight", &ids)?;
    let wpe =
        e.g.init_f32("wpe.weight", &[cfg.block_size, c], data(&model.wpe)?);
    let pe = e.g.node(
        "Gather",
        "wpe.weight/Gather",
        &[&wpe, &pos],
        &[("axis", Attr::Int(0))],
    );
    let mut x = e.g.node("Add", "embeddings/Add", &[&tok, &pe], &[]);
    // additive mask over [past slots, new token]
    let mf = e.g.node(
        "Cast",
        "past_mask/Cast",
        &[&past_mask],
        &[("to", Attr::Int(pb::tensor_proto::DataType::Float as i64))],
    );
    let ones = e.g.init_f32("decode.self_slot", &[b, 1], vec![1.0; b]);
    let full = e.g.node(
        "Concat",
        "past_mask/Concat",
        &[&mf, &ones],
        &[("axis", Attr::Int(1))],
    );
    let one = e.g.scalar(1.0);
    let big = e.g.scalar(MASK_VALUE);
    let inv = e.g.node("Sub", "past_mask/Sub", &[&one, &full], &[]);
    let add = e.g.node("Mul", "past_mask/Mul", &[&inv, &big], &[]);
    let shape = e.g.ints(&[b as i64, 1, 1, (p_len + 1) as i64]);
    let mask =
        e.g.node("Reshape", "past_mask/Reshape", &[&add, &shape], &[]);
    let split = e.g.ints(&[b as i64, 1, h as i64, d as i64]);
    let merged = e.g.ints(&[b as i64, 1, c as i64]);
    let scale = e.g.scalar(1.0 / (d as f32).sqrt());
    let mut presents = Vec::new();
    for (i, blk) in model.blocks.iter().enumerate() {
        let p = format!("h.{i}");
        let n1 = e.layer_norm(&x, &blk.ln_1, &format!("{p}.ln_1"))?;
        let a = &blk.attn;
        let heads = |e: &mut Exporter, t: &str, name: &str| -> String {
            let r = e.g.node(
                "Reshape",
                &format!("{p}.attn/{name}/Reshape"),
                &[t, &split],
                &[],
            );
            e.g.node(
                "Transpose",
                &format!("{p}.attn/{name}/Transpose"),
                &[&r],
                &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
            )
        };
        let q = e.linear(&n1, &a.q)?;
        let q = heads(&mut e, &q, "q");
        let k = e.linear(&n1, &a.k)?;
        let k = heads(&mut e, &k, "k");
        let v = e.linear(&n1, &a.v)?;
        let v = heads(&mut e, &v, "v");
        let pk =
            e.g.node("Identity", &format!("present_key.{i}"), &[&k], &[]);
        let pv =
            e.g.node("Identity", &format!("present_value.{i}"), &[&v], &[]);
        presents.push((pk, pv));
        let keys = e.g.node(
            "Concat",
            &format!("{p}.attn/keys/Concat"),
            &[&past[i].0, &k],
            &[("axis", Attr::Int(2))],
        );
        let vals = e.g.node(
            "Concat",
            &format!("{p}.attn/values/Concat"),
            &[&past[i].1, &v],
            &[("axis", Attr::Int(2))],
        );
        let kt = e.g.node(
            "Transpose",
            &format!("{p}.attn/keys/Transpose"),
            &[&keys],
            &[("perm", Attr::Ints(vec![0, 1, 3, 2]))],
        );
        let s = e.g.node(
            "MatMul",
            &format!("{p}.attn/scores/MatMul"),
            &[&q, &kt],
            &[],
        );
        let s =
            e.g.node("Mul", &format!("{p}.attn/scores/Mul"), &[&s, &scale], &[]);
        let s =
            e.g.node("Add", &format!("{p}.attn/scores/mask"), &[&s, &mask], &[]);
        let pr = e.g.node(
            "Softmax",
            &format!("{p}.attn/Softmax"),
            &[&s],
            &[("axis", Attr::Int(-1))],
        );
        let y = e.g.node(
            "MatMul",
            &format!("{p}.attn/context/MatMul"),
            &[&pr, &vals],
            &[],
        );
        let y = e.g.node(
            "Transpose",
            &format!("{p}.attn/context/Transpose"),
            &[&y],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let y = e.g.node(
            "Reshape",
            &format!("{p}.attn/context/Reshape"),
            &[&y, &merged],
            &[],
        );
        let y = e.linear(&y, &a.o)?;
        x = e.g.node("Add", &format!("{p}/residual_1"), &[&x, &y], &[]);
        let n2 = e.layer_norm(&x, &blk.ln_2, &format!("{p}.ln_2"))?;
        let f = e.linear(&n2, &blk.fc)?;
        let f = e.gelu(&f, &format!("{p}.mlp"));
        let f = e.linear(&f, &blk.proj)?;
        x = e.g.node("Add", &format!("{p}/residual_2"), &[&x, &f], &[]);
    }
    let hid = e.layer_norm(&x, &model.ln_f, "ln_f")?;
    let y = e.matmul_t(&hid, &model.lm_head, "lm_head.weight_t")?;
    let y = e.g.node("Identity", "logits", &[&y], &[]);
    e.g.output(&y, Elem::F32, &[b, 1, cfg.vocab_size]);
    for (pk, pv) in &presents {
        e.g.output(pk, Elem::F32, &[b, h, 1, d]);
        e.g.output(pv, Elem::F32, &[b, h, 1, d]);
    }
    Ok(e.g.finish(
        "gpt_decode_step",
        opset,
        &serde_json::to_string(cfg).unwrap_or_default(),
    ))
}

/// Writes `model` to `path` atomically (temp file + rename).
pub fn write(model: &pb::ModelProto, path: &Path) -> Result<()> {
    let bytes = graph::encode(model);
    let tmp = path.with_extension(format!("onnx.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| TrainerError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainerError::io(path, e))
}

#[cfg(test)]
mod tests;

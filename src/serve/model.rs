//! Loading a model image for serving: parse and validate it with the runtime, check its
//! signature when a key is configured, and work out how its inputs and outputs are read.
//!
//! The runtime's [`Model`] borrows the image bytes, so a served image keeps its bytes (16-byte
//! aligned) and parses them again for each request: `Model::parse` checks the CRC and every
//! record, a cost linear in the image size (tens of microseconds for the tiny models). Each
//! request gets its own arena, so requests never share interpreter state.

use anyhow::{bail, Context};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::{DType, Model, OpCode, Storage, TensorInfo};
use edgeloop_runtime::telemetry::ModelRef;
use edgeloop_runtime::Interpreter;

/// Statistics-section tag of the reference predicted-class histogram (`runtime/FORMAT.md`).
pub const STATS_TAG_CLASS_HISTOGRAM: u16 = 2;

/// The model id used in telemetry headers: FNV-1a (32 bit) of the image's model name, as the
/// firmware examples compute it.
pub fn model_id(name: &str) -> u32 {
    name.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// What the header and trailer of a served image say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    /// Model name from the header.
    pub name: String,
    /// Model version from the header.
    pub version: u32,
    /// Image length in bytes (without the signature trailer).
    pub image_len: usize,
    /// Arena bytes one request needs.
    pub arena_bytes: usize,
    /// The image carries a signature trailer.
    pub signed: bool,
    /// The signature was checked against the configured public key.
    pub verified: bool,
}

impl ImageMeta {
    /// Model reference for telemetry headers.
    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            id: model_id(&self.name),
            version: self.version,
        }
    }
}

/// A validated image, its bytes kept aligned for the runtime.
#[derive(Debug)]
pub struct Image {
    bytes: AlignedBytes,
    /// Header facts.
    pub meta: ImageMeta,
}

impl Image {
    /// Parses and validates `bytes`. With `public_key`, the image must carry an Ed25519
    /// signature by that key over its bytes (an unsigned, re-signed or altered image is refused).
    pub fn open(bytes: &[u8], public_key: Option<&[u8; 32]>) -> anyhow::Result<Image> {
        let aligned = AlignedBytes::new(bytes);
        let model = Model::parse(aligned.as_slice())
            .map_err(|e| anyhow::anyhow!("the model image is invalid: {e}"))?;
        let signed = model.signature().is_some();
        if let Some(key) = public_key {
            model
                .verify_signature(key)
                .map_err(|e| anyhow::anyhow!("the model image is refused: {e}"))?;
        }
        let meta = ImageMeta {
            name: model.name().to_string(),
            version: model.model_version(),
            image_len: model.image_len(),
            arena_bytes: model.arena_bytes(),
            signed,
            verified: public_key.is_some(),
        };
        Ok(Image {
            bytes: aligned,
            meta,
        })
    }

    /// The parsed model (validated again: see the module docs).
    pub fn model(&self) -> Result<Model<'_>, edgeloop_runtime::Error> {
        Model::parse(self.bytes.as_slice())
    }

    /// A fresh zeroed arena for one request.
    pub fn arena(&self) -> AlignedBytes {
        AlignedBytes::zeroed(self.meta.arena_bytes)
    }
}

/// The reference predicted-class histogram stored in the image (statistics tag 2), if any.
///
/// Payload layout (defined here for tag 2, which `FORMAT.md` reserves for it): one
/// little-endian `u32` count per class, in class order. A payload of another length than
/// `4 × classes`, or all zeros, is reported as unusable rather than guessed at.
pub fn reference_class_histogram(
    model: &Model<'_>,
    classes: usize,
) -> Result<Option<Vec<u32>>, String> {
    for entry in model.stats_entries() {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.tag != STATS_TAG_CLASS_HISTOGRAM {
            continue;
        }
        if entry.payload.len() != 4 * classes {
            return Err(format!(
                "statistics entry {STATS_TAG_CLASS_HISTOGRAM} holds {} bytes, expected {} (one u32 per class)",
                entry.payload.len(),
                4 * classes
            ));
        }
        let counts: Vec<u32> = entry
            .payload
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if counts.iter().all(|&c| c == 0) {
            return Err(format!(
                "statistics entry {STATS_TAG_CLASS_HISTOGRAM} is all zeros"
            ));
        }
        return Ok(Some(counts));
    }
    Ok(None)
}

fn is_i32_of(info: &TensorInfo, n: usize) -> bool {
    info.dtype == DType::I32 && info.num_elements() == n
}

/// The tensor an alias views, or the tensor itself.
fn base_tensor(model: &Model<'_>, t: usize) -> usize {
    match model.tensor(t).map(|i| i.storage) {
        Ok(Storage::Alias(b)) => b as usize,
        _ => t,
    }
}

/// The op code that writes tensor `t` (through aliases), if any op does.
fn producer(model: &Model<'_>, t: usize) -> Option<u8> {
    let base = base_tensor(model, t);
    model
        .ops()
        .filter_map(|r| r.ok())
        .find(|r| r.outputs().any(|o| o as usize == base))
        .map(|r| r.code)
}

/// Rows of the embedding table gathered by graph input 0 (the token ids), when a Gather op
/// reads that input directly: the largest valid token id is `rows - 1`.
fn embedding_rows(model: &Model<'_>, ids_tensor: usize) -> Option<usize> {
    let rec = model
        .ops()
        .filter_map(|r| r.ok())
        .find(|r| r.code == OpCode::Gather as u8 && r.inputs().any(|i| i as usize == ids_tensor))?;
    let rows = rec
        .inputs()
        .filter(|&i| i as usize != ids_tensor)
        .filter_map(|i| model.tensor(i as usize).ok())
        .find(|t| t.storage == Storage::Constant && t.shape.dims().len() == 2)
        .map(|t| t.shape.dims()[0] as usize);
    rows
}

fn describe(t: &TensorInfo) -> String {
    format!("{:?} {:?}", t.dtype, t.shape.dims())
}

/// Reads output `k` as real numbers (int8 dequantized with the tensor's scale and zero point).
pub fn output_values(it: &Interpreter<'_, '_>, k: usize) -> anyhow::Result<Vec<f32>> {
    let info = it.output_info(k)?;
    Ok(match info.dtype {
        DType::F32 => it.output_f32(k)?.to_vec(),
        DType::I8 => it
            .output_i8(k)?
            .iter()
            .map(|&q| (i32::from(q) - info.zero_point) as f32 * info.scale)
            .collect(),
        other => bail!("output {k} has element type {other:?}; expected f32 or int8"),
    })
}

/// Softmax of `x` (max-subtracted, in f64).
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// How a classifier image is driven.
///
/// Inputs: 0 — token ids, `i32` with `tokens` elements (padded or truncated to it);
/// optional 1 — their positions `0..tokens`, `i32 [tokens]`; optional 2 — the cache position,
/// `i32 [1]`, always 0 (the layout of `edgeloop_runtime::models::tiny_encoder`).
/// Output 0: one score per class (f32 or int8). When a Softmax op writes it, the scores are
/// the probabilities; otherwise they are logits and a softmax is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierSpec {
    /// Token positions per request.
    pub tokens: usize,
    /// Number of graph inputs (1 to 3).
    pub inputs: usize,
    /// Number of classes.
    pub classes: usize,
    /// Output 0 is a softmax already.
    pub probabilities: bool,
    /// Rows of the token embedding table, when the image reveals it.
    pub vocab: Option<usize>,
}

impl ClassifierSpec {
    /// Works the layout out from a parsed image, or says which tensor does not fit.
    pub fn of(model: &Model<'_>) -> anyhow::Result<ClassifierSpec> {
        let n_in = model.num_inputs();
        if !(1..=3).contains(&n_in) {
            bail!("a classifier image has 1 to 3 inputs (token ids, positions, cache position); this one has {n_in}");
        }
        let ids_t = model.input(0)?;
        let ids = model.tensor(ids_t)?;
        let tokens = ids.num_elements();
        if ids.dtype != DType::I32 || tokens == 0 {
            bail!(
                "classifier input 0 must be the token ids, i32; it is {}",
                describe(&ids)
            );
        }
        if n_in >= 2 {
            let p = model.tensor(model.input(1)?)?;
            if !is_i32_of(&p, tokens) {
                bail!(
                    "classifier input 1 must be the positions, i32 with {tokens} elements; it is {}",
                    describe(&p)
                );
            }
        }
        if n_in == 3 {
            let p = model.tensor(model.input(2)?)?;
            if !is_i32_of(&p, 1) {
                bail!(
                    "classifier input 2 must be the cache position, i32 [1]; it is {}",
                    describe(&p)
                );
            }
        }
        if model.num_outputs() == 0 {
            bail!("the image has no output");
        }
        let out_t = model.output(0)?;
        let out = model.tensor(out_t)?;
        let classes = out.num_elements();
        if !matches!(out.dtype, DType::F32 | DType::I8) || classes < 2 {
            bail!(
                "classifier output 0 must hold one f32 or int8 score per class (at least 2); it is {}",
                describe(&out)
            );
        }
        Ok(ClassifierSpec {
            tokens,
            inputs: n_in,
            classes,
            probabilities: producer(model, out_t) == Some(OpCode::Softmax as u8),
            vocab: embedding_rows(model, ids_t),
        })
    }
}

/// One classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// Probability of each class.
    pub scores: Vec<f32>,
    /// Index of the most probable class (the first one on ties).
    pub class: usize,
    /// Time in `invoke`, microseconds.
    pub invoke_us: f64,
}

/// Runs a classifier image on token ids (already padded to `spec.tokens`).
pub fn classify(image: &Image, spec: &ClassifierSpec, ids: &[i32]) -> anyhow::Result<Classified> {
    if ids.len() != spec.tokens {
        bail!(
            "{} token ids given; the classifier takes exactly {} (pad or truncate first)",
            ids.len(),
            spec.tokens
        );
    }
    let model = image.model().context("parsing the model image")?;
    let mut arena = image.arena();
    let mut it = Interpreter::new(&model, arena.as_mut_slice())?;
    it.input_i32(0)?.copy_from_slice(ids);
    if spec.inputs >= 2 {
        for (i, p) in it.input_i32(1)?.iter_mut().enumerate() {
            *p = i as i32;
        }
    }
    if spec.inputs == 3 {
        it.input_i32(2)?[0] = 0;
    }
    let t = std::time::Instant::now();
    it.invoke()
        .map_err(|e| anyhow::anyhow!("the model failed: {e}"))?;
    let invoke_us = t.elapsed().as_secs_f64() * 1e6;
    let raw = output_values(&it, 0)?;
    let scores = if spec.probabilities {
        raw
    } else {
        softmax(&raw)
    };
    let class = argmax(&scores);
    Ok(Classified {
        scores,
        class,
        invoke_us,
    })
}

/// Index of the largest value (the first on ties; 0 for an empty slice).
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// How a generator (KV-cache decoder) image is driven: the layout of
/// `edgeloop_runtime::models::tiny_gpt` built for one token per invoke. Inputs: token id
/// `i32 [1]`, its position `i32 [1]`, the cache position `i32 [1]`; output 0: the logits over
/// the vocabulary; persistent KV caches `[heads, context, head_dim]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorSpec {
    /// Vocabulary size (logits per step).
    pub vocab: usize,
    /// Context length: the KV caches' capacity.
    pub context: usize,
}

impl GeneratorSpec {
    /// Works the layout out from a parsed image, or says which tensor does not fit.
    pub fn of(model: &Model<'_>) -> anyhow::Result<GeneratorSpec> {
        if model.num_inputs() != 3 {
            bail!(
                "a generator image has 3 inputs (token id, position, cache position); this one has {}",
                model.num_inputs()
            );
        }
        for k in 0..3 {
            let t = model.tensor(model.input(k)?)?;
            if !is_i32_of(&t, 1) {
                bail!(
                    "generator input {k} must be i32 [1] (one token per step); it is {}",
                    describe(&t)
                );
            }
        }
        if model.num_outputs() == 0 {
            bail!("the image has no output");
        }
        let out = model.tensor(model.output(0)?)?;
        if !matches!(out.dtype, DType::F32 | DType::I8) || out.num_elements() < 2 {
            bail!(
                "generator output 0 must be the logits (f32 or int8, one per token id); it is {}",
                describe(&out)
            );
        }
        let mut context = None::<usize>;
        for i in 0..model.num_tensors() {
            let t = model.tensor(i)?;
            if t.storage == Storage::Persistent && t.shape.dims().len() == 3 {
                let c = t.shape.dims()[1] as usize;
                context = Some(context.map_or(c, |x| x.min(c)));
            }
        }
        let Some(context) = context else {
            bail!("the image has no KV cache (persistent [heads, context, dim] tensor): not a decoder");
        };
        Ok(GeneratorSpec {
            vocab: out.num_elements(),
            context,
        })
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated.
    MaxTokens,
    /// The end-of-text token was generated (it is not part of the output).
    EndOfText,
    /// The context (KV cache) is full.
    ContextFull,
}

impl StopReason {
    /// Name used in responses.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::MaxTokens => "max_tokens",
            StopReason::EndOfText => "end_of_text",
            StopReason::ContextFull => "context_full",
        }
    }
}

/// One greedy generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// New token ids.
    pub tokens: Vec<u32>,
    /// Probability of the first new token (0 when none was generated).
    pub first_probability: f32,
    /// Why it stopped.
    pub stop: StopReason,
    /// Total time in `invoke`, microseconds.
    pub invoke_us: f64,
}

/// Greedy decoding: feeds `prompt` one token per invoke through the KV cache, then appends the
/// most probable token until `max_tokens`, `eos` or the end of the context.
pub fn generate(
    image: &Image,
    spec: &GeneratorSpec,
    prompt: &[u32],
    max_tokens: usize,
    eos: Option<u32>,
) -> anyhow::Result<Generated> {
    if prompt.is_empty() {
        bail!("the prompt has no tokens");
    }
    if prompt.len() > spec.context {
        bail!(
            "the prompt has {} tokens; the model's context is {}",
            prompt.len(),
            spec.context
        );
    }
    if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= spec.vocab) {
        bail!(
            "token id {bad} is outside the model's vocabulary of {}",
            spec.vocab
        );
    }
    let model = image.model().context("parsing the model image")?;
    let mut arena = image.arena();
    let mut it = Interpreter::new(&model, arena.as_mut_slice())?;
    let mut invoke_us = 0.0;
    let mut step = |it: &mut Interpreter<'_, '_>, token: u32, pos: usize| {
        it.input_i32(0)?[0] = token as i32;
        it.input_i32(1)?[0] = pos as i32;
        it.input_i32(2)?[0] = pos as i32;
        let t = std::time::Instant::now();
        it.invoke()
            .map_err(|e| anyhow::anyhow!("the model failed at position {pos}: {e}"))?;
        invoke_us += t.elapsed().as_secs_f64() * 1e6;
        output_values(it, 0)
    };
    let mut logits = Vec::new();
    for (pos, &t) in prompt.iter().enumerate() {
        logits = step(&mut it, t, pos)?;
    }
    let mut out = Vec::new();
    let mut first_probability = 0.0;
    let stop = loop {
        if out.len() >= max_tokens {
            break StopReason::MaxTokens;
        }
        let next = argmax(&logits) as u32;
        if out.is_empty() {
            first_probability = softmax(&logits)[next as usize];
        }
        if Some(next) == eos {
            break StopReason::EndOfText;
        }
        out.push(next);
        let pos = prompt.len() + out.len() - 1;
        if out.len() >= max_tokens {
            break StopReason::MaxTokens;
        }
        if pos >= spec.context {
            break StopReason::ContextFull;
        }
        logits = step(&mut it, next, pos)?;
    };
    Ok(Generated {
        tokens: out,
        first_probability,
        stop,
        invoke_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeloop_runtime::models::{tiny_encoder::TinyEncoder, tiny_gpt::TinyGpt};

    #[test]
    fn tiny_encoder_image_is_a_classifier_with_its_vocabulary() {
        let (built, _) = TinyEncoder::random(3).image(None, false).unwrap();
        let img = Image::open(&built.bytes, None).unwrap();
        let model = img.model().unwrap();
        let spec = ClassifierSpec::of(&model).unwrap();
        assert_eq!(spec.tokens, 8);
        assert_eq!(spec.inputs, 3);
        assert_eq!(spec.classes, 4);
        assert!(!spec.probabilities);
        assert_eq!(spec.vocab, Some(32));
        assert!(GeneratorSpec::of(&model).is_err());
        let r = classify(&img, &spec, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert!((r.scores.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(r.class, argmax(&r.scores));
    }

    #[test]
    fn greedy_decoding_through_the_cache_equals_recomputing_the_whole_sequence() {
        // The generator feeds one token per invoke through the KV cache; a fresh interpreter
        // over the image must predict the same next token from the same prefix.
        let gpt = TinyGpt::random(5);
        let (built, _) = gpt.image(1, None, false).unwrap();
        let img = Image::open(&built.bytes, None).unwrap();
        let spec = GeneratorSpec::of(&img.model().unwrap()).unwrap();
        assert_eq!(
            spec,
            GeneratorSpec {
                vocab: 32,
                context: 16
            }
        );
        let g = generate(&img, &spec, &[3, 1, 4], 5, None).unwrap();
        assert_eq!(g.tokens.len(), 5);
        assert_eq!(g.stop, StopReason::MaxTokens);
        let mut prefix = vec![3u32, 1, 4];
        for &t in &g.tokens {
            let again = generate(&img, &spec, &prefix, 1, None).unwrap();
            assert_eq!(again.tokens, vec![t]);
            prefix.push(t);
        }
        // The context bounds the output.
        let long = generate(&img, &spec, &[1; 10], 100, None).unwrap();
        assert_eq!(long.stop, StopReason::ContextFull);
        assert_eq!(10 + long.tokens.len(), 17);
        assert!(generate(&img, &spec, &[40], 1, None).is_err());
        assert!(generate(&img, &spec, &[1; 17], 1, None).is_err());
    }

    #[test]
    fn model_id_is_fnv1a_of_the_name() {
        assert_eq!(model_id(""), 0x811C_9DC5);
        assert_eq!(model_id("a"), 0xE40C_292C);
    }
}

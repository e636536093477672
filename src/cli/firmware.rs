//! `edgeloop firmware-assets`: writes what the firmware examples embed — model images, test
//! inputs, and the host runtime's output tensors for them (which the firmware must reproduce bit
//! for bit on the Cortex-M4).
//!
//! `classify.*` is the demo's intent classifier: the test command (tests/firmware_qemu.rs) runs
//! `edgeloop demo --fast` and passes its image (`deploy/v1/intent.edli`) with `--image`, and its
//! lab test split and tokenizer with `--texts` / `--tokenizer`: the inputs are real token-id rows
//! of the demo's data, encoded as the classifier was fine-tuned on them (i32 in, f32 logits out).
//! Any int8-input image works with `--image` alone (seeded random int8 inputs). Without `--image`,
//! `classify.*` falls back to the keyword-spotting-sized DS-CNN below.
//!
//! Always written: `dscnn.*`, the DS-CNN built in code with the image writer (calibrated on seeded
//! random inputs), which the `bench` firmware measures per op; `classify.signed.img` and
//! `classify.pub` (the classify image signed with `--sign-key`, or with a fresh key pair written
//! next to it as `edgeloop.key` / `edgeloop.pub`; `classify.pub` is the raw 32-byte public key the
//! `verify` firmware embeds); the tiny GPT decoding assets of `generate` (`generate.img`,
//! `generate.prompt`, `generate.expected`: the host runtime's greedy tokens and int8 logits of
//! every step); and the small int8 MLP the Cortex-M0 build runs (`mlp.img`, `mlp.inputs`,
//! `mlp.expected`).

use std::path::PathBuf;

use anyhow::Context;
use edgeloop_quantize::sign;
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::models::{self, tiny_gpt, Rng};
use edgeloop_runtime::{Interpreter, Model};

use crate::say;

/// Arguments of `edgeloop firmware-assets`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example (what the test command does):\n  \
edgeloop demo --fast --out runs/fast\n  \
edgeloop firmware-assets --out firmware-examples/assets --image runs/fast/deploy/v1/intent.edli \\\n    \
--texts runs/fast/data/selected/test.jsonl --tokenizer runs/fast/data/tokenizer.json\n  \
cd firmware-examples && cargo run --release --bin classify")]
pub struct Args {
    /// Folder to write the assets into (`classify.img`, `classify.inputs`, `classify.expected`, ...).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of test inputs.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Seed of the inputs (and of the built-in model's weights).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The classifier image (e.g. the demo's `deploy/v1/intent.edli`); default: the DS-CNN.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// JSON Lines records with a "text" field (e.g. the demo's `data/selected/test.jsonl`):
    /// the first `--count` become the classifier's token-id inputs.
    #[arg(long, requires = "tokenizer", requires = "image")]
    pub texts: Option<PathBuf>,
    /// The tokenizer for `--texts` (the demo's `data/tokenizer.json`).
    #[arg(long, requires = "texts")]
    pub tokenizer: Option<PathBuf>,
    /// Secret key file (`edgeloop keygen`) to sign `classify.signed.img` with; without it a new
    /// key pair is generated and written to `--out` as `edgeloop.key` / `edgeloop.pub`.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
}

/// Writes the assets.
pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut rng = Rng::new(args.seed ^ 0x5EED);
    let dscnn = {
        let net = models::ds_cnn::ds_cnn(args.seed, true);
        let calib: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(net.input_len(), 1.0)).collect();
        net.build_i8(&calib)
            .context("building the DS-CNN image")?
            .0
            .bytes
    };
    let (inputs, expected, desc) = run_inputs(&dscnn, &random_int8(&dscnn, args.count, &mut rng)?)?;
    write(&args.out, "dscnn.img", &dscnn)?;
    write(&args.out, "dscnn.inputs", &inputs)?;
    write(&args.out, "dscnn.expected", &expected)?;
    say!("bench DS-CNN: {desc}, {} random int8 inputs", args.count);

    let bytes = match &args.image {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading model image {}", path.display()))?,
        None => dscnn.clone(),
    };
    if let Some(path) = &args.image {
        Model::parse(AlignedBytes::new(&bytes).as_slice()).map_err(|e| {
            anyhow::anyhow!(
                "--image {}: not a valid model image ({e}); give a `.edli` written by \
                 `edgeloop compile` or the demo (runs/demo/deploy/v1/intent.edli)",
                path.display()
            )
        })?;
    }
    let rows = match (&args.texts, &args.tokenizer) {
        (Some(texts), Some(tok)) => {
            let n_el = input_elements(&bytes)?;
            let rows = crate::cli::flash::text_rows(texts, tok, n_el, args.count)?;
            rows.iter()
                .flat_map(|r| r.iter().flat_map(|v| v.to_le_bytes()))
                .collect()
        }
        _ => random_int8(&bytes, args.count, &mut rng)?,
    };
    let (inputs, expected, model_desc) = run_inputs(&bytes, &rows)?;
    for (name, data) in [
        ("classify.img", &bytes),
        ("classify.inputs", &inputs),
        ("classify.expected", &expected),
    ] {
        write(&args.out, name, data)?;
    }
    say!(
        "wrote {}: classify = {model_desc}, {} inputs ({})",
        args.out.display(),
        model_desc.count,
        match &args.texts {
            Some(t) => format!("token ids of {}", t.display()),
            None => "seeded random int8".into(),
        }
    );
    write_signed(&args, &bytes)?;
    write_generate(&args.out, args.seed)?;
    write_mlp(&args.out, args.seed, &mut rng)?;
    Ok(())
}

/// Elements of the image's first input tensor.
fn input_elements(bytes: &[u8]) -> anyhow::Result<usize> {
    let image = AlignedBytes::new(bytes);
    let model = Model::parse(image.as_slice()).context("parsing the model image")?;
    let t = model.tensor(model.input(0)?)?;
    Ok(t.shape.num_elements() as usize)
}

/// `count` seeded random int8 input tensors back to back; errors for a non-int8 input.
fn random_int8(bytes: &[u8], count: usize, rng: &mut Rng) -> anyhow::Result<Vec<u8>> {
    let image = AlignedBytes::new(bytes);
    let model = Model::parse(image.as_slice()).context("parsing the model image")?;
    let t = model.tensor(model.input(0)?)?;
    if t.dtype != edgeloop_runtime::image::DType::I8 {
        anyhow::bail!(
            "model '{}' takes {:?} inputs, not int8: give --texts and --tokenizer for token ids",
            model.name(),
            t.dtype
        );
    }
    Ok((0..count * t.len as usize)
        .map(|_| (rng.next_u64() >> 56) as u8)
        .collect())
}

fn write(dir: &std::path::Path, name: &str, data: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))
}

/// `classify.signed.img` and `classify.pub` (raw 32 bytes) for the `verify` firmware.
fn write_signed(args: &Args, image: &[u8]) -> anyhow::Result<()> {
    let secret = match &args.sign_key {
        Some(path) => super::keygen::secret_key("--sign-key", path)?,
        None => {
            let (secret, _) = sign::generate_keypair(None)?;
            sign::write_keypair(&args.out, &secret, true)?;
            secret
        }
    };
    let signed = sign::sign_image(image, &secret).context("signing the classify image")?;
    write(&args.out, "classify.signed.img", &signed)?;
    write(&args.out, "classify.pub", &secret.public_key().0)?;
    say!(
        "signed classify.signed.img with key id {}",
        sign::hex(&secret.public_key().key_id())
    );
    Ok(())
}

/// The tiny GPT (int8, one token per invoke, KV caches) and the host's greedy decoding of it:
/// `generate.prompt` (i32 LE token ids), `generate.expected` (i32 LE: the whole sequence, prompt
/// then generated tokens, up to the context length), `generate.logits` (int8 logits of every
/// step, back to back).
fn write_generate(out: &std::path::Path, seed: u64) -> anyhow::Result<()> {
    let rt = |e: edgeloop_runtime::Error| anyhow::anyhow!("{e}");
    let m = tiny_gpt::TinyGpt::random(seed);
    let ranges = tiny_gpt::calibrate(&m, seed + 100, 8).map_err(rt)?;
    let (built, _) = m
        .image(1, Some(&ranges), false)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("building the tiny GPT image")?;
    let image = AlignedBytes::new(&built.bytes);
    let model = Model::parse(image.as_slice()).map_err(rt)?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).map_err(rt)?;
    let prompt = [3i32, 17, 5];
    let mut seq: Vec<i32> = prompt.to_vec();
    let mut logits = Vec::new();
    let mut at = 0;
    while at < tiny_gpt::CTX {
        it.input_i32(0).map_err(rt)?[0] = seq[at];
        it.input_i32(1).map_err(rt)?[0] = at as i32;
        it.input_i32(2).map_err(rt)?[0] = at as i32;
        it.invoke().map_err(rt)?;
        let row = it.output_i8(0).map_err(rt)?;
        logits.extend(row.iter().map(|&v| v as u8));
        at += 1;
        if at == seq.len() && seq.len() < tiny_gpt::CTX {
            // Greedy: the first index of the largest logit.
            let next = row
                .iter()
                .enumerate()
                .fold(
                    (0usize, i8::MIN),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0;
            seq.push(next as i32);
        }
    }
    let le = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    write(out, "generate.img", &built.bytes)?;
    write(out, "generate.prompt", &le(&prompt))?;
    write(out, "generate.expected", &le(&seq))?;
    write(out, "generate.logits", &logits)?;
    say!(
        "tiny GPT: image {} bytes, arena {} bytes; host tokens {seq:?}",
        built.bytes.len(),
        model.arena_bytes()
    );
    Ok(())
}

/// The small int8 MLP (64 → 128 → 64 → 10) the Cortex-M0+ build runs (16 KiB of RAM).
fn write_mlp(out: &std::path::Path, seed: u64, rng: &mut Rng) -> anyhow::Result<()> {
    let net = models::mlp::mlp(seed, true);
    let calib: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(net.input_len(), 1.0)).collect();
    let bytes = net
        .build_i8(&calib)
        .context("building the MLP image")?
        .0
        .bytes;
    let (inputs, expected, desc) = run_inputs(&bytes, &random_int8(&bytes, 8, rng)?)?;
    write(out, "mlp.img", &bytes)?;
    write(out, "mlp.inputs", &inputs)?;
    write(out, "mlp.expected", &expected)?;
    say!("MLP for Cortex-M0+: {desc}, 8 inputs");
    Ok(())
}

/// A model and how many inputs ran through it.
struct Desc {
    text: String,
    count: usize,
}

impl std::fmt::Display for Desc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Runs input tensors (raw bytes back to back) through `bytes` on the host runtime: (inputs,
/// output tensors back to back, a description of the model).
fn run_inputs(bytes: &[u8], inputs: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<u8>, Desc)> {
    let image = AlignedBytes::new(bytes);
    let model = Model::parse(image.as_slice())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("parsing the model image")?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it =
        Interpreter::new(&model, arena.as_mut_slice()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = |e: edgeloop_runtime::Error| anyhow::anyhow!("{e}");
    let in_len = it.input_bytes(0).map_err(rt)?.len();
    if in_len == 0 || !inputs.len().is_multiple_of(in_len) {
        anyhow::bail!(
            "{} input bytes are not a whole number of {in_len}-byte input tensors",
            inputs.len()
        );
    }
    let mut expected = Vec::new();
    for x in inputs.chunks_exact(in_len) {
        it.input_bytes(0).map_err(rt)?.copy_from_slice(x);
        it.invoke().map_err(rt)?;
        expected.extend_from_slice(it.output_bytes(0).map_err(rt)?);
    }
    let desc = Desc {
        text: format!(
            "model '{}' ({} image bytes, arena {} bytes)",
            model.name(),
            bytes.len(),
            model.arena_bytes()
        ),
        count: inputs.len() / in_len,
    };
    Ok((inputs.to_vec(), expected, desc))
}

//! Writes the seed corpora, one folder per target under `corpus/`, all made by the project's
//! own writers:
//!
//! - `parse_invoke`: example models (MLP, DS-CNN; int8 and f32) and a small graph with every
//!   elementwise/edge op, from the runtime's `ImageWriter`; signed copies (`quantize::sign`).
//! - `frame_decode`: one frame of each record kind (`encode_frame`), and the same as raw payloads.
//! - `ingest_stream`: a recorder ring's drained stream (`Recorder`), clean and with line noise.
//! - `onnx_compile`: the quantizer's test models (fp32) and their int8 QDQ exports (`quantize`).
//! - `dataset_read`: a generated lab corpus as JSONL, CSV, text lines and paragraphs.
//! - `serve_text`: request texts from the generated corpus.
//! - `wav_parse`: 16 kHz clips from the trainer's WAV writer (`wav::encode`), one with a `LIST`
//!   chunk before `fmt `, one with a WAVE_FORMAT_EXTENSIBLE `fmt ` chunk.
//! - `checkpoint_load`: tiny GPT and BERT checkpoints written by `checkpoint::save` (with and
//!   without optimizer moments and training state, with their own manifest or sealed by the
//!   target), and model configs on their own.
//!
//! With `--smoke N`, also runs each target's property on its seeds and on N seeded single-byte
//! mutations of each seed — a stable-toolchain smoke test (no libFuzzer needed).

use std::path::{Path, PathBuf};

use edgeloop_quantize::sign::{sign_image, SecretKey};
use edgeloop_quantize::{testmodels, Dataset, QuantizeConfig};
use edgeloop_runtime::image::layers::{Activation, Window};
use edgeloop_runtime::image::writer::{fix_crc, ImageWriter};
use edgeloop_runtime::image::DType;
use edgeloop_runtime::models::{ds_cnn, mlp, Rng};
use edgeloop_runtime::telemetry::{
    encode_frame, DriftAlarm, DriftSource, Feedback, Frame, Header, Heartbeat, InferenceSummary,
    InputSummary, ModelRef, Record, Recorder, Sample, Thumbs, FORMAT_VERSION, MAX_FRAME_LEN,
};
use edgeloop_trainer::audio::wav;
use edgeloop_trainer::candle_core::Device;
use edgeloop_trainer::checkpoint::{
    self, CONFIG_FILE, MANIFEST_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE,
};
use edgeloop_trainer::corpus::{generate, CorpusConfig};
use edgeloop_trainer::data::Format;
use edgeloop_trainer::models::{Bert, BuildOptions, Gpt, ModelSpec, Params};
use edgeloop_trainer::optim::{AdamW, AdamWConfig};
use edgeloop_trainer::train::TrainState;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
type Seeds = Vec<(String, Vec<u8>)>;
/// A target's name, its seeds and its property.
type Target = (&'static str, Seeds, fn(&[u8]));

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let smoke: usize = match args.iter().position(|a| a == "--smoke") {
        Some(i) => args.get(i + 1).ok_or("--smoke needs a count")?.parse()?,
        None => 0,
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets: [Target; 8] = [
        ("parse_invoke", image_seeds()?, edgeloop_fuzz::fuzz_one),
        (
            "frame_decode",
            frame_seeds()?,
            edgeloop_fuzz::frame::fuzz_frame,
        ),
        (
            "ingest_stream",
            ingest_seeds()?,
            edgeloop_fuzz::ingest::fuzz_ingest,
        ),
        (
            "onnx_compile",
            onnx_seeds()?,
            edgeloop_fuzz::onnx::fuzz_onnx,
        ),
        (
            "dataset_read",
            dataset_seeds()?,
            edgeloop_fuzz::dataset::fuzz_dataset,
        ),
        ("serve_text", text_seeds(), edgeloop_fuzz::text::fuzz_text),
        ("wav_parse", wav_seeds()?, edgeloop_fuzz::wav::fuzz_wav),
        (
            "checkpoint_load",
            checkpoint_seeds()?,
            edgeloop_fuzz::checkpoint::fuzz_checkpoint,
        ),
    ];
    for (target, seeds, property) in &targets {
        write(&root.join(target), seeds)?;
        for (_, bytes) in seeds {
            property(bytes);
        }
        println!("{target}: wrote {} seeds", seeds.len());
        if smoke > 0 {
            mutate(seeds, smoke, *target == "parse_invoke", *property);
            println!("{target}: smoke: {smoke} mutations of each seed: no panic");
        }
    }
    Ok(())
}

fn write(dir: &Path, seeds: &Seeds) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

/// Runs `property` on `n` seeded single-bit flips of each seed (images get their CRC fixed so
/// the flips reach the structural checks).
fn mutate(seeds: &Seeds, n: usize, fix_image_crc: bool, property: fn(&[u8])) {
    let mut s = 0x5EED_u64;
    for (_, good) in seeds {
        if good.is_empty() {
            continue;
        }
        for _ in 0..n {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mut b = good.clone();
            let i = (s >> 8) as usize % b.len();
            b[i] ^= 1 << (s >> 60 & 7);
            if fix_image_crc {
                fix_crc(&mut b);
            }
            property(&b);
        }
    }
}

fn image_seeds() -> Result<Seeds> {
    let mut seeds: Seeds = Vec::new();
    let mut rng = Rng::new(9);
    for seq in [mlp::mlp(2, true), ds_cnn::ds_cnn(2, true)] {
        let calib: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(seq.input_len(), 1.0)).collect();
        seeds.push((format!("{}-f32.edli", seq.name), seq.build_f32()?.bytes));
        seeds.push((
            format!("{}-int8.edli", seq.name),
            seq.build_i8(&calib)?.0.bytes,
        ));
    }
    // A small graph with every elementwise/edge op, so mutations reach each binding quickly.
    let mut w = ImageWriter::new("ops-mix", 1)?;
    let x = w.input(DType::F32, &[1, 2, 2, 4], None)?;
    let q = w.quantize(x, (0.02, 3))?;
    let r = w.relu(q, false)?;
    let p = w.pool2d(r, [2, 2], Window::VALID, true)?;
    let s = w.binary(p, p, true, Activation::None, Some((0.04, 0)))?;
    let m = w.binary(s, p, false, Activation::Relu, Some((0.05, -10)))?;
    let c = w.concat(&[m, s], 3, Some((0.05, 0)))?;
    let flat = w.alias(c, &[1, 8])?;
    let sm = w.softmax(flat, 1.0)?;
    let am = w.argmax(sm, 1)?;
    let d = w.dequantize(sm)?;
    w.output(am)?;
    w.output(d)?;
    seeds.push(("ops-mix.edli".into(), w.finish()?.bytes));
    // Signed copies (the key the target verifies with), so mutations reach the verifier.
    let key = SecretKey::from_seed(edgeloop_fuzz::image::SEED_KEY_SEED)?;
    if key.public_key().0 != edgeloop_fuzz::image::SEED_PUBLIC_KEY {
        return Err(format!(
            "image::SEED_PUBLIC_KEY is stale; the seed key's public key is {:?}",
            key.public_key().0
        )
        .into());
    }
    for i in [1, 4] {
        let (name, bytes) = seeds[i].clone();
        seeds.push((
            name.replace(".edli", "-signed.edli"),
            sign_image(&bytes, &key)?,
        ));
    }
    Ok(seeds)
}

fn header(seq: u32) -> Header {
    Header {
        version: FORMAT_VERSION,
        device: 0xD1,
        boot: 2,
        seq,
        ticks: 1000 + u64::from(seq),
        model: ModelRef { id: 7, version: 3 },
    }
}

fn records() -> Result<Vec<Record>> {
    Ok(vec![
        Record::Inference(InferenceSummary {
            class: 3,
            confidence_q16: 51_000,
            latency_ticks: 1234,
            input: InputSummary::from_i8(&[-5, 0, 17, 127, -128]),
        }),
        Record::Feedback(Feedback {
            inference_seq: 0,
            correction: Some(4),
            thumbs: Some(Thumbs::Down),
            sample: Sample::from_i32(&[-1, 0, 5, 70_000])?,
        }),
        Record::DriftAlarm(DriftAlarm {
            source: DriftSource::Input,
            psi_q16: 20_000,
            threshold_q16: 16_384,
            window_events: 256,
            window_index: 3,
        }),
        Record::Heartbeat(Heartbeat {
            uptime_ticks: 99_000,
            inferences: 12,
            feedback: 1,
            alarms: 1,
            dropped: 0,
        }),
    ])
}

fn frame_seeds() -> Result<Seeds> {
    let mut seeds = Vec::new();
    for (i, record) in records()?.into_iter().enumerate() {
        let frame = Frame {
            header: header(i as u32),
            record,
        };
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = encode_frame(&frame, &mut buf)?;
        let kind = frame.record.kind();
        seeds.push((format!("{kind}.frame"), buf[..n].to_vec()));
        // The same frame's raw payload (version + postcard), which the target also frames.
        let mut raw = vec![0u8; n];
        let len = cobs::decode(&buf[..n - 1], &mut raw).map_err(|e| format!("{e:?}"))?;
        raw.truncate(len - 4);
        seeds.push((format!("{kind}.payload"), raw));
    }
    Ok(seeds)
}

fn ingest_seeds() -> Result<Seeds> {
    let mut rec: Recorder<4096> = Recorder::new(0xD1, 2, ModelRef { id: 7, version: 3 });
    for (i, r) in records()?.into_iter().enumerate() {
        rec.record(100 * i as u64, r)?;
    }
    rec.heartbeat(1000, 5000)?;
    let mut stream = vec![0u8; 4096];
    let n = rec.drain(&mut stream)?;
    stream.truncate(n);
    // First byte: where the target cuts the stream into two chunks.
    let clean: Vec<u8> = [&[128u8][..], &stream].concat();
    // Line noise between frames, a duplicate frame and a truncated tail.
    let mut noisy = vec![40u8, 0, 0, 0x55, 0x13];
    noisy.extend_from_slice(&stream);
    noisy.extend_from_slice(&stream[..stream.len() / 2]);
    Ok(vec![
        ("recorder.stream".into(), clean),
        ("noisy.stream".into(), noisy),
    ])
}

fn onnx_seeds() -> Result<Seeds> {
    let mut seeds = Vec::new();
    for (name, model) in [
        ("mlp", testmodels::mlp()),
        ("cnn", testmodels::cnn()),
        ("transformer", testmodels::transformer()),
        ("causal-attention", testmodels::causal_attention()),
        ("embedding", testmodels::embedding()),
    ] {
        seeds.push((format!("{name}-fp32.onnx"), model.to_bytes()));
        let inputs = model.inputs(&Default::default())?;
        let data = Dataset {
            samples: testmodels::samples(&inputs, 8, 3),
        };
        match edgeloop_quantize::quantize(&model, &data, &QuantizeConfig::default()) {
            Ok(q) => seeds.push((format!("{name}-qdq.onnx"), q.model.to_bytes())),
            Err(e) => println!("onnx_compile: {name} has no QDQ seed ({e})"),
        }
    }
    Ok(seeds)
}

fn dataset_seeds() -> Result<Seeds> {
    let mut cfg = CorpusConfig::lab(5);
    cfg.n_labelled = 24;
    cfg.pretrain_bytes = 1500;
    cfg.n_instructions = 0;
    cfg.n_preferences = 0;
    let corpus = generate(&cfg);
    let dir = std::env::temp_dir().join(format!("edgeloop-fuzz-seeds-{}", std::process::id()));
    let (files, _) = corpus.write(&dir, None)?;
    let jsonl = std::fs::read(&files.labelled)?;
    let pretrain = std::fs::read(&files.pretrain)?;
    std::fs::remove_dir_all(&dir)?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["text", "label", "slice"])?;
    for r in &corpus.labelled {
        let slice: Vec<String> = r.slice.iter().map(|(k, v)| format!("{k}={v}")).collect();
        csv.write_record([
            r.text.as_str(),
            r.label.as_deref().unwrap_or(""),
            &slice.join(";"),
        ])?;
    }
    let csv = csv.into_inner().map_err(|e| e.to_string())?;
    let mode = |f: Format| -> u8 {
        edgeloop_fuzz::dataset::FORMATS
            .iter()
            .position(|&g| g == f)
            .unwrap_or(0) as u8
    };
    let with = |m: u8, body: &[u8]| [&[m][..], body].concat();
    Ok(vec![
        (
            "labelled.jsonl".into(),
            with(mode(Format::Jsonl) | 4, &jsonl),
        ),
        ("labelled.csv".into(), with(mode(Format::Csv), &csv)),
        (
            "pretrain.lines".into(),
            with(mode(Format::Lines), &pretrain),
        ),
        (
            "pretrain.paragraphs".into(),
            with(mode(Format::Paragraphs), &pretrain),
        ),
    ])
}

fn text_seeds() -> Seeds {
    let mut cfg = CorpusConfig::field(11);
    cfg.n_labelled = 8;
    cfg.pretrain_bytes = 0;
    cfg.n_instructions = 0;
    cfg.n_preferences = 0;
    generate(&cfg)
        .labelled
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("request-{i}.txt"), r.text.into_bytes()))
        .collect()
}

fn wav_seeds() -> Result<Seeds> {
    // A chirp-like clip (deterministic), 1000 samples at 16 kHz.
    let samples: Vec<i16> = (0..1000)
        .map(|i: i32| ((i * i / 7 % 2000 - 1000) * 30) as i16)
        .collect();
    let plain = wav::encode(16_000, &samples)?;
    // A LIST chunk of odd size (padded) before `fmt `, as recorders write.
    let mut list = plain.clone();
    let chunk = [b"LIST".as_slice(), &5u32.to_le_bytes(), b"INFOa", &[0]].concat();
    let _ = list.splice(12..12, chunk);
    // WAVE_FORMAT_EXTENSIBLE: the 16-byte fmt body, cbSize 22, valid bits, channel mask and
    // the PCM sub-format GUID.
    let mut ext = plain[..36].to_vec();
    ext[16..20].copy_from_slice(&40u32.to_le_bytes());
    ext[20..22].copy_from_slice(&0xFFFEu16.to_le_bytes());
    ext.extend_from_slice(&22u16.to_le_bytes());
    ext.extend_from_slice(&16u16.to_le_bytes());
    ext.extend_from_slice(&4u32.to_le_bytes());
    ext.extend_from_slice(&[
        1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
    ]);
    ext.extend_from_slice(&plain[36..]);
    let riff = (ext.len() - 8) as u32;
    ext[4..8].copy_from_slice(&riff.to_le_bytes());
    for (name, b) in [("list", &list), ("extensible", &ext)] {
        if wav::parse(b)?.samples != samples {
            return Err(format!("wav seed {name} does not parse back").into());
        }
    }
    Ok(vec![
        ("chirp-16k.wav".into(), plain),
        ("list-chunk.wav".into(), list),
        ("extensible.wav".into(), ext),
        ("empty-8k.wav".into(), wav::encode(8_000, &[])?),
    ])
}

fn checkpoint_seeds() -> Result<Seeds> {
    use edgeloop_fuzz::checkpoint::{join, HF_BERT, SEAL};
    let dev = Device::Cpu;
    let gpt: ModelSpec = serde_json::from_value(serde_json::json!({
        "arch": "gpt", "vocab_size": 17, "n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8
    }))?;
    let bert: ModelSpec = serde_json::from_value(serde_json::json!({
        "arch": "bert", "vocab_size": 19, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 8,
        "num_labels": 3
    }))?;
    let root =
        std::env::temp_dir().join(format!("edgeloop-fuzz-ckpt-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut seeds: Seeds = Vec::new();
    for (name, spec) in [("gpt", &gpt), ("bert", &bert)] {
        let mut params = Params::new(3, &dev);
        match spec {
            ModelSpec::Gpt(c) => drop(Gpt::new(c, &mut params, BuildOptions::default())?),
            ModelSpec::Bert(c) => drop(Bert::new(c, &mut params, BuildOptions::default())?),
        }
        let opt = AdamW::new(params.trainable(), AdamWConfig::default())?;
        let mut state = TrainState::new(7);
        state.step = 3;
        state.train_losses = vec![(1, 2.5), (2, 2.25), (3, 2.0)];
        state.best_eval = Some(2.1);
        let dir = root.join(name);
        checkpoint::save(&dir, &params, spec, Some(&opt), Some(&state))?;
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_default();
        let files = [
            read(CONFIG_FILE),
            read(MODEL_FILE),
            read(OPTIMIZER_FILE),
            read(STATE_FILE),
            read(MANIFEST_FILE),
        ];
        fn pieces(f: &[Vec<u8>; 5]) -> [&[u8]; 5] {
            std::array::from_fn(|i| &f[i][..])
        }
        let hf = if name == "bert" { HF_BERT } else { 0 };
        // The folder as written (its own manifest), and sealed by the target.
        seeds.push((format!("{name}-resume.ckpt"), join(0, &pieces(&files))));
        seeds.push((
            format!("{name}-resume-sealed.ckpt"),
            join(SEAL | hf, &pieces(&files)),
        ));
        // Weights only (as a job's `model` folder), sealed.
        let weights = [
            files[0].clone(),
            files[1].clone(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ];
        seeds.push((
            format!("{name}-weights.ckpt"),
            join(SEAL | hf, &pieces(&weights)),
        ));
        // The config alone (what `edgeloop train pretrain --config` reads).
        seeds.push((
            format!("{name}-config.ckpt"),
            join(0, &[&files[0][..], &[], &[], &[], &[]]),
        ));
    }
    std::fs::remove_dir_all(&root)?;
    Ok(seeds)
}

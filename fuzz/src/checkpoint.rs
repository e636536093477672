//! Checkpoint folders and model configs: fuzzed files are written into a scratch folder and
//! loaded the way `edgeloop train` and the demos load a checkpoint or a model folder
//! (`checkpoint::verify` + `checkpoint::load::<ModelSpec, _>`, the model built on the loaded
//! weights, the optimizer and training state restored as `--resume` does), and the way
//! `load_hf_bert` imports a Hugging Face BERT folder. The config piece is also read on its own,
//! as `edgeloop train pretrain --config` reads it, and a model is built from it.
//!
//! Properties: no panic; a folder `verify` refuses is never loaded; a config that validates
//! counts at most `MAX_PARAMETERS` parameters, and a small one builds on an empty store into
//! exactly that many parameters and runs a forward pass.

use std::path::{Path, PathBuf};

use edgeloop_trainer::candle_core::{Device, Tensor};
use edgeloop_trainer::checkpoint::manifest::{digest, Manifest};
use edgeloop_trainer::checkpoint::{
    self, CONFIG_FILE, MANIFEST_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE,
};
use edgeloop_trainer::models::import::load_hf_bert;
use edgeloop_trainer::models::{
    Bert, BertConfig, BuildOptions, Gpt, ModelSpec, Params, MAX_PARAMETERS,
};
use edgeloop_trainer::optim::{AdamW, AdamWConfig};

/// Separates the pieces of an input (after the flags byte).
pub const SEPARATOR: &[u8] = b"\n%%edgeloop-fuzz-file%%\n";

/// The files the pieces become, in order (an empty piece: the file is absent).
pub const FILES: [&str; 5] = [
    CONFIG_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    MANIFEST_FILE,
];

/// Flags bit 0: write an honest manifest of the files present instead of the manifest piece
/// (so that mutations of the other files get past verification to their parsers, as the image
/// target recomputes the CRC).
pub const SEAL: u8 = 1;
/// Flags bit 1: also import the folder as a Hugging Face BERT (`load_hf_bert`).
pub const HF_BERT: u8 = 2;

/// Models up to this many parameters are built and run (bigger valid configs are only
/// validated: building them is correct but slow, 2^28 parameters take minutes to initialize).
pub const BUILD_LIMIT: usize = 1 << 17;

/// An input from the files of a checkpoint folder (absent ones as empty pieces).
pub fn join(flags: u8, pieces: &[&[u8]; 5]) -> Vec<u8> {
    let mut out = vec![flags];
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(p);
    }
    out
}

fn split(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::with_capacity(FILES.len());
    while pieces.len() + 1 < FILES.len() {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(i) => {
                pieces.push(&rest[..i]);
                rest = &rest[i + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    pieces.push(rest);
    pieces.resize(FILES.len(), &[]);
    pieces
}

/// This process's scratch folder (in memory where `/dev/shm` exists), emptied.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("edgeloop-fuzz-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch folder");
    dir
}

/// First byte: flags ([`SEAL`], [`HF_BERT`]); the rest: the pieces of [`FILES`], separated by
/// [`SEPARATOR`].
pub fn fuzz_checkpoint(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let pieces = split(rest);
    let dir = scratch();
    let mut present = Vec::new();
    for (name, bytes) in FILES[..4].iter().zip(&pieces) {
        if !bytes.is_empty() {
            std::fs::write(dir.join(name), bytes).expect("write a scratch file");
            present.push(*name);
        }
    }
    if flags & SEAL != 0 {
        let mut m = Manifest {
            format: 1,
            ..Manifest::default()
        };
        for name in &present {
            m.files
                .insert(name.to_string(), digest(&dir.join(name)).expect("digest"));
        }
        let json = serde_json::to_vec(&m).expect("serialize the manifest");
        std::fs::write(dir.join(MANIFEST_FILE), json).expect("write the manifest");
    } else if !pieces[4].is_empty() {
        std::fs::write(dir.join(MANIFEST_FILE), pieces[4]).expect("write the manifest");
    }

    let dev = Device::Cpu;
    let verified = checkpoint::verify(&dir);
    match checkpoint::load::<ModelSpec, serde_json::Value>(&dir, &dev) {
        Ok(l) => {
            assert!(
                verified.is_ok(),
                "loaded a folder verify refused: {verified:?}"
            );
            if let Some(params) = build(&l.config, Some(l.params)) {
                // Resume: optimizer moments and training state onto the model's parameters.
                if let Ok(mut opt) = AdamW::new(params.trainable(), AdamWConfig::default()) {
                    let _ =
                        edgeloop_trainer::train::restore(&mut opt, l.optimizer.as_ref(), l.state);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    // The config on its own, as `edgeloop train pretrain --config` reads it.
    if let Ok(spec) = serde_json::from_slice::<ModelSpec>(pieces[0]) {
        build(&spec, None);
    }

    if flags & HF_BERT != 0 {
        // Only configs small enough to build (missing heads are created, see BUILD_LIMIT).
        let small = serde_json::from_slice::<BertConfig>(pieces[0]).is_ok_and(|c| {
            c.validate().is_ok() && c.num_parameters().is_some_and(|n| n <= BUILD_LIMIT)
        });
        if small {
            if let Err(e) = load_hf_bert(&dir, 0, &dev) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Validates `spec`; builds its model on `params` (an empty store when `None`) when it is
/// small, and runs a two-token forward pass. Returns the store when the model was built.
fn build(spec: &ModelSpec, params: Option<Params>) -> Option<Params> {
    let valid = spec.validate();
    let count = spec.num_parameters();
    if let Err(e) = valid {
        assert!(!e.to_string().is_empty());
        return None;
    }
    let n = count.expect("a valid config has a parameter count");
    assert!(n <= MAX_PARAMETERS, "a valid config of {n} parameters");
    if n > BUILD_LIMIT {
        return None;
    }
    let dev = Device::Cpu;
    let fresh = params.is_none();
    let mut p = params.unwrap_or_else(|| Params::new(0, &dev));
    let t = spec.context().min(2);
    let last = u32::try_from(spec.vocab_size() - 1).unwrap_or(u32::MAX);
    let ids = Tensor::new(&[0u32, last][..t], &dev)
        .and_then(|x| x.reshape((1, t)))
        .expect("token ids");
    let run = match spec {
        ModelSpec::Gpt(c) => {
            Gpt::new(c, &mut p, BuildOptions::default()).map(|m| m.forward(&ids).map(|_| ()))
        }
        ModelSpec::Bert(c) => Bert::new(c, &mut p, BuildOptions::default())
            .map(|m| m.forward_mlm(&ids, None).map(|_| ())),
    };
    match run {
        Ok(forward) => {
            if fresh {
                assert_eq!(p.num_elements(), n, "built model vs num_parameters");
                forward.expect("a fresh valid model runs");
            }
            Some(p)
        }
        Err(e) => {
            assert!(!fresh, "a valid config failed to build: {e}");
            None
        }
    }
}

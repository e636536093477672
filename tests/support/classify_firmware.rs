//! The `classify` firmware (`firmware-examples`, binary `classify`) on QEMU's Cortex-M4F with
//! any token-id classifier image, for tests: writes its assets (the image, token-id rows, the
//! host runtime's outputs for them; the other examples' assets come from `edgeloop
//! firmware-assets`, since the `assets` feature embeds them all), builds it with the
//! instruction-counting TCG plugin, runs it, and parses the per-inference and per-op
//! instruction counts, the MACs, the arena and the stack high-water mark from its log.
//!
//! Included by root test files next to [`super::kws_firmware`], whose build and QEMU helpers it
//! uses:
//! `#[path = "support/kws_firmware.rs"] mod kws_firmware;`
//! `#[path = "support/classify_firmware.rs"] mod classify_firmware;`.
//! Needs `qemu-system-arm`, a C compiler and the thumbv7em target (scripts/test.sh installs
//! them); fails, never skips, without them.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::DType;
use edgeloop_runtime::{Interpreter, Model};

use super::kws_firmware::{
    build_firmware, build_plugin, number_after, run_counted, Region, Stats, M4,
};

/// What the host runtime computed for the rows written by [`write_assets`].
#[derive(Debug, Clone)]
pub struct HostOutputs {
    /// Output tensor 0 of every row, raw bytes, back to back (`classify.expected`).
    pub expected: Vec<u8>,
    /// The first highest score of every row, as the firmware picks it.
    pub classes: Vec<usize>,
}

/// Writes the firmware's assets into `dir`: every example's through `edgeloop firmware-assets`
/// (its own `classify.*` included), then `classify.img` = `image`, `classify.inputs` = `rows`
/// as the image's input tensor (i32 token ids), `classify.expected` = the host runtime's
/// (`edgeloop_runtime`, `std`) output for each row.
pub fn write_assets(dir: &Path, image: &[u8], rows: &[Vec<u32>]) -> HostOutputs {
    std::fs::create_dir_all(dir).expect("assets dir");
    let out = Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args(["firmware-assets", "--count", "2", "--out"])
        .arg(dir)
        .output()
        .expect("running edgeloop firmware-assets");
    assert!(
        out.status.success(),
        "firmware-assets failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let aligned = AlignedBytes::new(image);
    let model = Model::parse(aligned.as_slice()).expect("parse the image");
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("interpreter");
    let input = it.input_info(0).expect("input 0");
    assert_eq!(input.dtype, DType::I32, "token ids go in as i32");
    let (mut inputs, mut expected, mut classes) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let ids = it.input_i32(0).expect("i32 input");
        assert_eq!(ids.len(), row.len(), "row length vs the image's context");
        for (d, &s) in ids.iter_mut().zip(row) {
            *d = i32::try_from(s).expect("token id fits i32");
        }
        inputs.extend(ids.iter().flat_map(|v| v.to_le_bytes()));
        it.invoke().expect("invoke");
        expected.extend_from_slice(it.output_bytes(0).expect("output 0"));
        let scores: Vec<f32> = match it.output_info(0).expect("output 0").dtype {
            DType::F32 => it.output_f32(0).expect("f32 output").to_vec(),
            _ => it
                .output_i8(0)
                .expect("int8 output")
                .iter()
                .map(|&v| f32::from(v))
                .collect(),
        };
        let best = (1..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        classes.push(best);
    }
    for (name, bytes) in [
        ("classify.img", image),
        ("classify.inputs", &inputs[..]),
        ("classify.expected", &expected[..]),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write a classify asset");
    }
    HostOutputs { expected, classes }
}

/// What one run of the `classify` firmware showed.
#[derive(Debug)]
pub struct ClassifyRun {
    /// The decoded defmt log.
    pub log: String,
    /// Instructions per inference (every input but the first, which ran op by op).
    pub model: Stats,
    /// Per op of the first input (`classify op <i> <op>`).
    pub ops: Vec<Region>,
    /// The classes the device predicted, in input order.
    pub classes: Vec<usize>,
    /// The arena the firmware's interpreter used, bytes (from the log).
    pub arena_bytes: Option<u64>,
    /// The firmware's stack high-water mark, bytes (from the log).
    pub stack_bytes: Option<u64>,
}

/// Builds the `classify` example with the assets in `assets` (see [`write_assets`]) and runs it
/// on the emulated Cortex-M4F with the instruction-counting plugin; asserts that it passed:
/// all `inputs` outputs equal the host's byte for byte.
pub fn run_classify(assets: &Path, work: &Path, inputs: usize) -> ClassifyRun {
    assert!(
        inputs >= 2,
        "the first input runs op by op: give two or more"
    );
    let plugin = build_plugin(work);
    let elf = build_firmware("classify", M4, &[], assets, work, "classify");
    let counts = work.join("insn-count.txt");
    let (out, log, regions) = run_counted(&elf, work, &plugin, &counts, &["--timeout", "300"]);
    assert!(
        out.status.success(),
        "classify exited with {:?}",
        out.status
    );
    let want = format!("{inputs} of {inputs} outputs bit-exact with the host runtime");
    assert!(log.contains(&want), "log: {log}");
    assert!(log.contains("classify: PASS"), "log: {log}");
    let per_inference: Vec<&Region> = regions
        .iter()
        .filter(|r| r.name == "classify model")
        .collect();
    assert_eq!(per_inference.len(), inputs - 1, "log: {log}");
    let model = Stats::of(&per_inference, "classify model");
    let ops: Vec<Region> = regions
        .iter()
        .filter(|r| r.name.starts_with("classify op "))
        .cloned()
        .collect();
    assert!(!ops.is_empty(), "no per-op regions in {log}");
    // "input 3: class 1 (confidence ...), ..."
    let classes = log
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("input ")?..];
            let (_, tail) = rest.split_once(": class ")?;
            tail.split(' ').next()?.parse().ok()
        })
        .collect();
    ClassifyRun {
        model,
        ops,
        classes,
        arena_bytes: number_after(&log, "MACs per inference, arena ", "bytes"),
        stack_bytes: number_after(&log, "stack high-water mark: ", "bytes"),
        log,
    }
}

//! The firmware examples in QEMU: builds `firmware-examples/` (its own workspace) with assets
//! written once by `edgeloop firmware-assets`, runs each example through `tools/qemu-run` (its
//! own workspace, built here), and checks exit codes and decoded defmt log lines:
//! - `classify` on the Cortex-M4F (`mps2-an386`): the demo's intent classifier (`edgeloop demo
//!   --fast`, run once here) on token ids of its test split, bit-exact with the host, telemetry;
//! - `verify`: a signed image runs, a tampered one (CRC recomputed, so only the signature
//!   catches it) and a corrupted one are refused;
//! - `generate`: tiny GPT greedy decoding with the KV cache, tokens and logits equal the host's;
//! - `bench`: executed-instruction counts per kernel (reference vs DSP) and per op, through the
//!   TCG plugin `firmware-examples/tools/insn-count.c` (built here with `cc`), built twice (DSP
//!   kernel table, and the scalar reference one with feature `reference-kernels`) for whole
//!   inference both ways, and the f32 kernels (scalar reference only) on fixed shapes; the DSP
//!   kernels' outputs on 40 random shapes per kernel must equal the reference's on the device;
//!   the tables are printed and written to
//!   `$CARGO_TARGET_TMPDIR/firmware_bench/bench.md`;
//! - `classify` on the Cortex-M0 (`microbit`, thumbv6m-none-eabi) with the small MLP;
//! - `edgeloop flash --qemu`: the demo's intent classifier image (from `edgeloop demo --fast`,
//!   run once here) flashed next to the `flashed` firmware, its telemetry in a Parquet store;
//!   corrupted partitions are refused by the firmware; missing QEMU / target give clear errors.
//!
//! Needs `qemu-system-arm`, a C compiler and the thumbv7em/thumbv6m targets (scripts/test.sh
//! installs them); fails, never skips, without them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

#[path = "support/kws_firmware.rs"]
mod kws_firmware;

use kws_firmware::{
    build_plugin, per_mac, qemu_run_bin, repo, run_counted, run_qemu, tmp, Region, BUILD, M4,
};

/// The assets every example embeds, written once per test run: `classify` gets the demo's
/// intent classifier and token ids of the demo's test split.
fn assets() -> &'static Path {
    static ASSETS: OnceLock<PathBuf> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let d = demo();
        let dir = tmp("firmware_assets");
        let out = Command::new(env!("CARGO_BIN_EXE_edgeloop"))
            .args(["firmware-assets", "--count", "12", "--image"])
            .arg(&d.image)
            .arg("--texts")
            .arg(&d.texts)
            .arg("--tokenizer")
            .arg(&d.tokenizer)
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("running edgeloop firmware-assets");
        assert!(
            out.status.success(),
            "firmware-assets failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{}", String::from_utf8_lossy(&out.stdout));
        dir
    })
}

/// What `edgeloop demo --fast` wrote that the firmware uses: the intent classifier's signed
/// image, the lab test split, the tokenizer.
struct Demo {
    image: PathBuf,
    texts: PathBuf,
    tokenizer: PathBuf,
}

/// Runs `edgeloop demo --fast` once per test run.
fn demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tmp("firmware_demo");
        let out = Command::new(env!("CARGO_BIN_EXE_edgeloop"))
            .args(["demo", "--fast", "--quiet", "--out"])
            .arg(&dir)
            .output()
            .expect("running edgeloop demo --fast");
        assert!(
            out.status.success(),
            "edgeloop demo --fast failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let demo = Demo {
            image: dir.join("deploy/v1/intent.edli"),
            texts: dir.join("data/selected/test.jsonl"),
            tokenizer: dir.join("data/tokenizer.json"),
        };
        for p in [&demo.image, &demo.texts, &demo.tokenizer] {
            assert!(p.is_file(), "the demo wrote no {}", p.display());
        }
        demo
    })
}

/// Builds one example for `target` with the assets of [`assets`] and copies its ELF to `into`.
fn build_firmware(bin: &str, target: &str, into: &Path) -> PathBuf {
    kws_firmware::build_firmware(bin, target, &[], assets(), into, bin)
}

const M0: &str = "thumbv6m-none-eabi";

fn decode_telemetry(path: &Path) -> usize {
    let frames = std::fs::read(path).expect("telemetry.bin written by the firmware");
    frames
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| {
            let mut framed = f.to_vec();
            framed.push(0);
            edgeloop_runtime::telemetry::decode_frame(&framed).expect("valid telemetry frame")
        })
        .count()
}

#[test]
fn classify_matches_host_runtime_bit_exact_on_cortex_m4() {
    let work = tmp("firmware_classify");
    let elf = build_firmware("classify", M4, &work);
    let (run, log) = run_qemu(&elf, &work, &[]);
    assert!(
        run.status.success(),
        "classify exited with {:?}",
        run.status
    );
    assert!(log.contains("model 'intent-classifier'"), "log: {log}");
    assert!(
        log.contains("12 of 12 outputs bit-exact with the host runtime"),
        "log: {log}"
    );
    assert!(log.contains("classify: PASS"));
    assert!(log.contains("stack high-water mark:"));
    assert_no_allocator(&elf);
    assert_eq!(log.matches("matches the host").count(), 12);
    assert_eq!(
        decode_telemetry(&work.join("telemetry.bin")),
        12,
        "one record per input"
    );
}

/// `cargo run --release` in `firmware-examples/` goes through the runner of its
/// `.cargo/config.toml` (`qemu-run.sh` → `edgeloop-qemu-run`): QEMU with semihosting, the defmt
/// log decoded on the host, and the firmware's exit status passed through — success for a
/// passing example, failure for a firmware that fails (a tampered image refused by `verify`).
#[test]
fn cargo_run_in_the_example_folder_runs_the_firmware_in_qemu() {
    let work = tmp("firmware_cargo_run");
    let fw = repo().join("firmware-examples");
    // Both take BUILD themselves: resolve them before holding it.
    let (asset_dir, tool) = (assets(), qemu_run_bin());
    let out = {
        let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        Command::new(env!("CARGO"))
            .args(["run", "--release", "--bin", "classify", "--", "--workdir"])
            .arg(&work)
            .current_dir(&fw)
            .env("EDGELOOP_FW_ASSETS", asset_dir)
            .env("EDGELOOP_QEMU_RUN", tool)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("running cargo run in firmware-examples")
    };
    let log = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo run failed: {log}\n{err}");
    // Cargo names the runner it used; the log is decoded defmt (format strings filled in from
    // the ELF's table), not raw frames; the telemetry went to the work folder.
    assert!(err.contains("qemu-run.sh"), "runner not used: {err}");
    assert!(log.contains("model 'intent-classifier'"), "log: {log}");
    assert!(
        log.contains("12 of 12 outputs bit-exact with the host runtime"),
        "log: {log}"
    );
    assert_eq!(decode_telemetry(&work.join("telemetry.bin")), 12);
    assert!(log.contains("classify: PASS"), "log: {log}");

    // The runner passes a failing firmware's status through: the verify ELF with its signed
    // image's weight flipped (CRC recomputed, so only the signature catches it).
    let elf = build_firmware("verify", M4, &work);
    let signed = std::fs::read(asset_dir.join("classify.signed.img")).expect("signed image");
    let mut bytes = std::fs::read(&elf).expect("ELF");
    let at = find(&bytes, &signed).expect("the signed image is embedded in the ELF");
    let mut image = signed.clone();
    let weight = signed.len() - 80 - 100;
    image[weight] ^= 0x01;
    edgeloop_runtime::image::writer::fix_crc(&mut image);
    bytes[at..at + image.len()].copy_from_slice(&image);
    let bad = work.join("verify-tampered.elf");
    std::fs::write(&bad, &bytes).expect("write tampered ELF");
    let out = Command::new("bash")
        .arg(fw.join("qemu-run.sh"))
        .arg(&bad)
        .arg("--workdir")
        .arg(&work)
        .env("EDGELOOP_QEMU_RUN", qemu_run_bin())
        .current_dir(&work)
        .output()
        .expect("running qemu-run.sh");
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "log: {log}");
    assert!(log.contains("verify: FAIL"), "log: {log}");
}

/// Offset of `needle` in `hay` (the embedded image inside the ELF).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn verify_runs_a_signed_image_and_refuses_a_tampered_one() {
    let work = tmp("firmware_verify");
    let elf = build_firmware("verify", M4, &work);
    let (run, log) = run_qemu(&elf, &work, &[]);
    assert!(run.status.success(), "verify exited with {:?}", run.status);
    assert!(log.contains("signature OK"), "log: {log}");
    assert!(
        log.contains("upgrade check OK: Same { version: 1 }"),
        "log: {log}"
    );
    assert!(log.contains("12 of 12 outputs bit-exact with the host runtime"));
    assert!(log.contains("verify: PASS"));

    // Tamper with the image in the firmware's flash (the ELF): one weight byte flipped.
    let signed = std::fs::read(assets().join("classify.signed.img")).expect("signed image");
    let elf_bytes = std::fs::read(&elf).expect("ELF");
    let at = find(&elf_bytes, &signed).expect("the signed image is embedded in the ELF");
    let image_len = signed.len() - 80;
    let weight = image_len - 100; // in the constant section
    for (name, fix_crc, want) in [
        (
            "crc_fixed",
            true,
            "signature check failed: SignatureInvalid",
        ),
        ("corrupted", false, "image refused: ImageBadCrc"),
    ] {
        let mut image = signed.clone();
        image[weight] ^= 0x01;
        if fix_crc {
            edgeloop_runtime::image::writer::fix_crc(&mut image);
        }
        let mut tampered = elf_bytes.clone();
        tampered[at..at + image.len()].copy_from_slice(&image);
        let path = work.join(format!("verify-{name}.elf"));
        std::fs::write(&path, &tampered).expect("write tampered ELF");
        let (run, log) = run_qemu(&path, &work, &[]);
        assert!(
            !run.status.success(),
            "{name}: tampered image accepted: {log}"
        );
        assert!(log.contains(want), "{name}: log: {log}");
        assert!(log.contains("verify: FAIL"));
        assert!(!log.contains("matches the host"), "{name}: the model ran");
    }

    // Downgrade: the firmware keeps the installed model version in a record tagged `EDIV`
    // (little-endian u32 after the tag; 1 = the classify image's version). Raised to 2, the
    // signed image (version 1) is a downgrade and is refused before it runs.
    let at = find(&elf_bytes, b"EDIV").expect("installed-version record in the ELF");
    let mut downgrade = elf_bytes.clone();
    downgrade[at + 4..at + 8].copy_from_slice(&2u32.to_le_bytes());
    let path = work.join("verify-downgrade.elf");
    std::fs::write(&path, &downgrade).expect("write patched ELF");
    let (run, log) = run_qemu(&path, &work, &[]);
    assert!(!run.status.success(), "downgrade accepted: {log}");
    assert!(
        log.contains("upgrade refused: ImageDowngrade { installed: 2, offered: 1 }"),
        "log: {log}"
    );
    assert!(log.contains("verify: FAIL"));
    assert!(!log.contains("matches the host"), "the model ran");
}

#[test]
fn generate_decodes_the_hosts_tokens_with_the_kv_cache() {
    let work = tmp("firmware_generate");
    let elf = build_firmware("generate", M4, &work);
    let (run, log) = run_qemu(&elf, &work, &[]);
    assert!(
        run.status.success(),
        "generate exited with {:?}",
        run.status
    );
    let expected = std::fs::read(assets().join("generate.expected")).expect("tokens");
    let n = expected.len() / 4;
    assert!(
        log.contains(&format!(
            "{n} of {n} steps with logits bit-exact with the host; tokens equal the host's"
        )),
        "log: {log}"
    );
    let tokens: Vec<i32> = expected
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(
        log.contains(&format!("generated: {tokens:?}")),
        "log: {log}"
    );
    assert!(log.contains("generate: PASS"));
}

#[test]
fn classify_runs_on_cortex_m0_microbit() {
    let work = tmp("firmware_m0");
    let elf = build_firmware("classify", M0, &work);
    let (run, log) = run_qemu(&elf, &work, &["--machine", "microbit"]);
    assert!(
        run.status.success(),
        "classify (M0) exited with {:?}",
        run.status
    );
    assert!(log.contains("model 'mlp'"), "log: {log}");
    assert!(log.contains("8 of 8 outputs bit-exact with the host runtime"));
    assert!(log.contains("classify: PASS"));
    assert_eq!(decode_telemetry(&work.join("telemetry.bin")), 8);
}

/// Runs a `bench` ELF with the instruction-count plugin; returns its decoded log and regions.
fn run_bench(elf: &Path, work: &Path, plugin: &Path, tag: &str) -> (String, Vec<Region>) {
    let counts = work.join(format!("insn-count-{tag}.txt"));
    let (run, log, regions) = run_counted(elf, work, plugin, &counts, &[]);
    assert!(
        run.status.success(),
        "bench ({tag}) exited with {:?}",
        run.status
    );
    assert!(log.contains("bench: PASS"), "log: {log}");
    (log, regions)
}

/// A row `| name | MACs | reference instr | instr/MAC | DSP instr | instr/MAC | speed-up |`.
fn speed_up_row(name: &str, macs: u64, r: &Region, d: &Region) -> String {
    format!(
        "| {name} | {macs} | {} | {:.2} | {} | {:.2} | {:.2}x |\n",
        r.insns,
        r.insns as f64 / r.macs as f64,
        d.insns,
        d.insns as f64 / d.macs as f64,
        r.insns as f64 / d.insns as f64
    )
}

/// Kernels of the bench's fixed-shape table (reference vs DSP, both in one firmware).
const BENCH_KERNELS: [&str; 13] = [
    "dot",
    "fully_connected",
    "fully_connected_small",
    "fully_connected_rows_narrow",
    "conv2d",
    "conv2d_pointwise",
    "conv2d_first_narrow",
    "depthwise_conv2d",
    "batch_matmul_qk",
    "batch_matmul_pv",
    "batch_matmul_qk_narrow",
    "batch_matmul_pv_narrow",
    "attention",
];

/// The bench's int8 element-wise and row kernels on fixed shapes (reference vs DSP table), with
/// their shapes for the table; counted per element.
const BENCH_ROW_KERNELS: [(&str, &str); 8] = [
    (
        "add_direct",
        "1×1×8×16 + 1×1×8×16 (below the DSP Add's table threshold)",
    ),
    (
        "add_tabled",
        "1×1×48×32 + 1×1×48×32 (through the DSP Add's per-input tables)",
    ),
    (
        "layer_norm_quantized",
        "8 rows of 64 (version 2: Dequantize, f32 LayerNorm, Quantize)",
    ),
    (
        "softmax_quantized",
        "16 rows of 32 (version 2: Dequantize, scale, f32 Softmax, Quantize)",
    ),
    (
        "transpose_narrow",
        "1×16×2×8 → 1×2×16×8 (the general path: runs of 8; one kernel in both tables)",
    ),
    (
        "transpose_quarter",
        "1×8×4×4 → 1×4×8×4 (the general path: runs of 4; one kernel in both tables)",
    ),
    (
        "transpose_runs",
        "1×16×4×16 → 1×4×16×16 (whole runs of 16 copied; one kernel in both tables)",
    ),
    (
        "transpose_copy",
        "1×1×32×40 → 1×32×40×1 (the identity once size-1 axes are dropped: one copy; one kernel in both tables)",
    ),
];

/// The bench's f32 kernels on fixed shapes (the scalar reference: the only f32 kernel), with
/// their shapes for the table. Mul, Softmax, LayerNorm and GlobalAvgPool count elements where
/// the others count MACs.
const BENCH_F32_KERNELS: [(&str, &str); 8] = [
    ("fully_connected_f32", "K 256, N 64, batch 1"),
    (
        "fully_connected_f32_small",
        "K 64, N 12, batch 1 (the DS-CNN head)",
    ),
    ("conv2d_f32", "10×10×16, 3×3, pad 1, 16 out"),
    (
        "conv2d_f32_ds_cnn",
        "49×10×1, 10×4, stride 2, SAME, 64 out (the DS-CNN's first layer; 25×5×64 out)",
    ),
    ("mul_f32", "1×1×20×16 · scalar (elements, not MACs)"),
    (
        "softmax_f32",
        "40 rows of 20 (the intent classifier's attention probabilities; elements, not MACs)",
    ),
    ("layer_norm_f32", "8 rows of 64 (elements, not MACs)"),
    (
        "global_avg_pool_f32",
        "1×32×1×48: 32 positions of 48 channels (input elements, not MACs)",
    ),
];

#[test]
fn bench_counts_instructions_per_mac_reference_vs_dsp() {
    let work = tmp("firmware_bench");
    let plugin = build_plugin(&work);
    // Two firmwares: the DSP kernel table (default) and the scalar reference table (feature
    // `reference-kernels`), for whole-inference counts of each model both ways.
    let elf = build_firmware("bench", M4, &work);
    let features = ["--features", "reference-kernels"];
    let elf_ref =
        kws_firmware::build_firmware("bench", M4, &features, assets(), &work, "bench-reference");
    // The firmware compiled for ARMv6-M (the Cortex-M0/M0+ instruction set: the runtime's table
    // for cores without the DSP extension) and run on the same board, whose Cortex-M4 executes
    // ARMv6-M code as it is: what a Cortex-M0+ runs.
    let features_m0 = ["--features", "board-mps2-an386"];
    let elf_m0 =
        kws_firmware::build_firmware("bench", M0, &features_m0, assets(), &work, "bench-armv6m");
    let (log, regions) = run_bench(&elf, &work, &plugin, "dsp");
    let (log_ref, regions_ref) = run_bench(&elf_ref, &work, &plugin, "reference");
    let (log_m0, regions_m0) = run_bench(&elf_m0, &work, &plugin, "armv6m");
    assert!(log_m0.contains("kernel table: armv6m"), "log: {log_m0}");
    assert!(log.contains("kernel table: dsp"), "log: {log}");
    assert!(
        log_ref.contains("kernel table: reference"),
        "log: {log_ref}"
    );
    for k in BENCH_KERNELS {
        assert!(
            log.contains(&format!("{k}: DSP output equals the reference")),
            "{k}"
        );
    }
    // Random shapes and values on the device, every output byte against the reference.
    for k in [
        "fully_connected",
        "fully_connected_quads",
        "conv2d",
        "depthwise_conv2d",
        "batch_matmul",
        "attention",
        "add",
        "mul",
        "quantize",
    ] {
        assert!(
            log.contains(&format!(
                "random shapes: {k} 40 cases, DSP equals the reference"
            )),
            "{k}: log: {log}"
        );
    }
    let by_name: HashMap<&str, &Region> = regions.iter().map(|r| (r.name.as_str(), r)).collect();
    let by_name_ref: HashMap<&str, &Region> =
        regions_ref.iter().map(|r| (r.name.as_str(), r)).collect();

    let mut md = String::from(
        "# Executed instructions on Cortex-M4 (QEMU mps2-an386, TCG plugin count)\n\n\
         ## Whole inference per model: scalar reference kernels vs DSP kernels\n\n\
         Two builds of the `bench` firmware: the runtime's compile-time kernel table with the DSP \
         (SMLAD) variants of FullyConnected, Conv2D, DepthwiseConv2D, BatchMatMul and Attention, the \
         Cortex-M4 variants of int8 Add and Mul (SMMLA requantization, tables) and of Quantize \
         (default), and with the scalar reference kernels (firmware feature `reference-kernels`). \
         Same model, same input, one invoke.\n\n\
         | model | MACs | reference kernels instr | instr/MAC | DSP kernels instr | instr/MAC | speed-up |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for model in ["ds-cnn", "intent-classifier", "tiny-gpt"] {
        let key = format!("{model} total");
        let (d, r) = (by_name[key.as_str()], by_name_ref[key.as_str()]);
        assert!(
            d.macs > 0 && d.insns > 0 && r.insns > 0,
            "{model}: empty total"
        );
        assert!(
            d.insns < r.insns,
            "{model}: DSP {} >= reference {}",
            d.insns,
            r.insns
        );
        md.push_str(&speed_up_row(model, d.macs, r, d));
    }
    let by_name_m0: HashMap<&str, &Region> =
        regions_m0.iter().map(|r| (r.name.as_str(), r)).collect();
    md.push_str(
        "\n## Whole inference on the ARMv6-M instruction set (Cortex-M0+ code)\n\n\
         The `bench` firmware built for `thumbv6m-none-eabi` (firmware feature \
         `board-mps2-an386`) and run on the same Cortex-M4, which executes ARMv6-M code as it \
         is: the instructions a Cortex-M0+ executes with the runtime's table for cores without \
         the DSP extension (the reference kernels, with FullyConnected and pointwise Conv2D in \
         2×2 blocks and DepthwiseConv2D tap-major, their inner loops in Thumb-1 `asm!`, and \
         requantization in 32-bit arithmetic; no FPU: f32 ops in software floating point, as in \
         the intent classifier's LayerNorm and Softmax). Next to the reference kernels built for the Cortex-M4 \
         (above).\n\n\
         | model | MACs | Cortex-M4 reference instr | ARMv6-M instr | ARMv6-M / Cortex-M4 |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for model in ["ds-cnn", "intent-classifier", "tiny-gpt"] {
        let key = format!("{model} total");
        let (r, m) = (by_name_ref[key.as_str()], by_name_m0[key.as_str()]);
        assert!(m.insns > 0 && m.macs == r.macs, "{model}: ARMv6-M total");
        md.push_str(&format!(
            "| {model} | {} | {} | {} | {:.3} |\n",
            r.macs,
            r.insns,
            m.insns,
            m.insns as f64 / r.insns as f64
        ));
    }
    md.push_str(
        "\n## Ops decoded on every invoke vs once (`Interpreter::new_prepared`)\n\n\
         The same DSP build and input. Without `std`, `Interpreter::new` decodes each op's record, \
         tensors and parameters again on every invoke; `new_prepared` decodes them once into op \
         slots the caller provides (RAM: slots × `PreparedOp::BYTES`).\n\n\
         | model | ops | decoded per invoke instr | prepared instr | saved per op | op slots RAM (bytes) |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for model in ["ds-cnn", "intent-classifier", "tiny-gpt"] {
        let d = by_name[format!("{model} total").as_str()];
        let p = by_name[format!("prepared {model} total").as_str()];
        let line = log
            .lines()
            .find_map(|l| l.strip_prefix(&format!("prepared {model}: ")))
            .unwrap_or_else(|| panic!("{model}: no op-slot line in the log"));
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        let [ops, bytes] = nums[..] else {
            panic!("{model}: op-slot line {line:?}");
        };
        assert!(
            p.insns < d.insns,
            "{model}: prepared {} >= decoded per invoke {}",
            p.insns,
            d.insns
        );
        md.push_str(&format!(
            "| {model} | {ops} | {} | {} | {} | {bytes} |\n",
            d.insns,
            p.insns,
            (d.insns - p.insns) / ops.max(1)
        ));
    }
    md.push_str(
        "\n## Start-up: image bytes to an interpreter ready to invoke\n\n\
         The same DSP build. `Model::parse` checks the whole image (CRC-32 over every byte, section \
         bounds, every tensor and op record, lifetimes, the arena plan, each op's parameters); \
         `Interpreter::new` checks the arena; `new_prepared` also decodes every op into its slot. \
         Nothing is computed in floating point: requantization parameters are in the image.\n\n\
         | model | image bytes | parse + `new` instr | instr per image byte | parse + `new_prepared` instr |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for model in ["ds-cnn", "intent-classifier", "tiny-gpt"] {
        let bytes: u64 = log
            .lines()
            .find_map(|l| l.split(&format!("start-up {model}: ")).nth(1))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{model}: no image-size line in the log"));
        let s = by_name[format!("{model} start-up").as_str()];
        let p = by_name[format!("prepared {model} start-up").as_str()];
        assert!(s.insns > 0 && p.insns > 0, "{model}: empty start-up region");
        md.push_str(&format!(
            "| {model} | {bytes} | {} | {:.2} | {} |\n",
            s.insns,
            s.insns as f64 / bytes.max(1) as f64,
            p.insns
        ));
    }
    md.push_str(
        "\n## Kernels on fixed shapes\n\n\
         Random int8 data; each count includes one marker call (~4 instructions). FullyConnected K 256 \
         N 64 batch 1, and K 64 N 12 (`fully_connected_small`: the DS-CNN head's shape, the kernel \
         alone, without the interpreter's per-op work), and K 16 N 32 over 8 rows (`fully_connected_rows_narrow`: a narrow text model's per-token layer); Conv2D and DepthwiseConv2D 10×10×16, 3×3, pad 1 (padded taps not counted as \
         MACs), and Conv2D 1×1 on the same input (`conv2d_pointwise`, 16 out); \
         `conv2d_first_narrow`: the DS-CNN's first layer with 16 channels (49×10×1, 10×4, stride 2, \
         SAME; MACs with padded taps, as the compiler counts them); BatchMatMul as in the intent classifier's attention (2 heads, 20 tokens, head width \
         16: Q·Kᵀ and P·V; `_narrow`: 2 heads, 12 tokens, head width 8, a width-16 text model's); attention: the tiny GPT's op over its KV cache (2 heads × 16, 16 cached \
         positions, one query; q·k and p·v).\n\n\
         | kernel | MACs | reference instr | reference instr/MAC | DSP instr | DSP instr/MAC | speed-up |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for k in BENCH_KERNELS {
        let r = by_name[format!("{k} reference").as_str()];
        let d = by_name[format!("{k} dsp").as_str()];
        assert!(
            r.macs > 0 && r.insns > 0 && d.insns > 0,
            "{k}: empty region"
        );
        md.push_str(&speed_up_row(k, r.macs, r, d));
    }
    // The DSP kernels must beat the scalar reference.
    for k in BENCH_KERNELS {
        let (r, d) = (
            by_name[format!("{k} reference").as_str()],
            by_name[format!("{k} dsp").as_str()],
        );
        assert!(
            d.insns < r.insns,
            "{k}: DSP {} >= reference {}",
            d.insns,
            r.insns
        );
    }
    md.push_str(
        "\n## int8 element-wise and row kernels on fixed shapes\n\n\
         Kernel calls alone (no interpreter), random int8 data; each count includes one marker \
         call (~4 instructions). The fused LayerNorm and Softmax (version 2) run through each \
         table's Dequantize, f32 kernel and Quantize with a scratch of up to 8 rows, as the image \
         writer sizes it. Counted per element.\n\n\
         | kernel | shape | elements | reference instr | reference instr/element | DSP instr | DSP instr/element | speed-up |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (k, shape) in BENCH_ROW_KERNELS {
        assert!(
            log.contains(&format!("{k}: DSP output equals the reference")),
            "{k}"
        );
        let r = by_name[format!("{k} reference").as_str()];
        let d = by_name[format!("{k} dsp").as_str()];
        assert!(
            r.macs > 0 && r.insns > 0 && d.insns > 0,
            "{k}: empty region"
        );
        md.push_str(&format!(
            "| {k} | {shape} | {} | {} | {} | {} | {} | {:.2}x |\n",
            r.macs,
            r.insns,
            per_mac(r),
            d.insns,
            per_mac(d),
            r.insns as f64 / d.insns as f64
        ));
    }
    md.push_str(
        "\n## f32 kernels on fixed shapes\n\n\
         The runtime's f32 kernels (the scalar reference: no DSP variant; the FPU's single-precision \
         instructions, no SIMD), kernel calls alone (no interpreter), random non-zero f32 data in \
         (-1, 1); each count includes one marker call (~4 instructions). Padded Conv2D taps are not \
         counted as MACs (the DS-CNN layer's 25×5×64×40 = 320000 MACs as the compiler counts them \
         include them); Mul, Softmax, LayerNorm and GlobalAvgPool count elements.\n\n\
         | kernel | shape | MACs / elements | instr | instr per MAC / element |\n\
         |---|---|---:|---:|---:|\n",
    );
    for (k, shape) in BENCH_F32_KERNELS {
        assert!(log.contains(&format!("{k}: f32 output finite")), "{k}");
        let r = by_name[format!("{k} reference").as_str()];
        assert!(r.macs > 0 && r.insns > 0, "{k}: empty region");
        md.push_str(&format!(
            "| {k} | {shape} | {} | {} | {} |\n",
            r.macs,
            r.insns,
            per_mac(r)
        ));
    }
    for model in ["ds-cnn", "intent-classifier", "tiny-gpt"] {
        md.push_str(&format!(
            "\n## {model}: per op (one invoke), reference kernels vs DSP kernels\n\n\
             | op | MACs | reference instr | instr/MAC | DSP instr | instr/MAC |\n\
             |---|---:|---:|---:|---:|---:|\n"
        ));
        for r in regions.iter().filter(|r| {
            r.name.starts_with(&format!("{model} ")) && r.name != format!("{model} start-up")
        }) {
            let Some(rr) = by_name_ref.get(r.name.as_str()) else {
                panic!("{}: missing in the reference-kernel run", r.name);
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                &r.name[model.len() + 1..],
                r.macs,
                rr.insns,
                per_mac(rr),
                r.insns,
                per_mac(r)
            ));
        }
    }
    println!("{md}");
    std::fs::write(work.join("bench.md"), &md).expect("write bench.md");
}

/// `edgeloop flash --qemu` with the demo's texts into `store`; returns (status, JSON summary).
fn flash_qemu(store: &Path, work: &Path, count: usize) -> (Output, serde_json::Value) {
    let d = demo();
    // The CLI builds the firmware in the same target folder as the other tests.
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args(["flash", "--qemu", "--json", "--count", &count.to_string()])
        .arg("--image")
        .arg(&d.image)
        .arg("--texts")
        .arg(&d.texts)
        .arg("--tokenizer")
        .arg(&d.tokenizer)
        .arg("--store")
        .arg(store)
        .arg("--workdir")
        .arg(work)
        .output()
        .expect("running edgeloop flash --qemu");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "flash --qemu --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out, json)
}

#[test]
fn flash_qemu_runs_the_demo_image_and_streams_telemetry_into_the_store() {
    let dir = tmp("firmware_flash_qemu");
    let store = dir.join("store");
    let (out, run) = flash_qemu(&store, &dir.join("work1"), 12);
    assert!(out.status.success(), "flash --qemu failed: {run}");
    assert_eq!(run["model"], "intent-classifier");
    assert_eq!(run["passed"], true);
    assert_eq!(run["inputs"], 12);
    assert_eq!(run["bit_exact"], 12, "{run}");
    assert_eq!(run["top1_agree"], 12, "{run}");
    let t = &run["telemetry"];
    assert_eq!(
        (t["frames"].as_u64(), t["corrupt"].as_u64()),
        (Some(12), Some(0))
    );
    assert_eq!(t["boot"], 0);
    let preds = run["predictions"].as_array().expect("predictions");
    let device_classes: Vec<u64> = preds
        .iter()
        .map(|p| {
            p["device_class"]
                .as_u64()
                .expect("a telemetry frame per input")
        })
        .collect();
    let host_classes: Vec<u64> = preds
        .iter()
        .map(|p| p["host_class"].as_u64().unwrap())
        .collect();
    assert_eq!(device_classes, host_classes);

    // The store holds one row per inference, as the device reported it.
    let data = edgeloop_monitor::store::read(&store).expect("read the store");
    assert_eq!(data.inferences.len(), 12);
    let device = t["device"].as_u64().unwrap();
    let mut rows = data.inferences.clone();
    rows.sort_by_key(|r| r.common.seq);
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(r.common.partition.device, device);
        assert_eq!(r.common.partition.model_version, 1);
        assert_eq!((r.common.boot, r.common.seq), (0, k as u32));
        assert_eq!(u64::from(r.class), device_classes[k]);
        assert_eq!(r.input_len, 20, "token ids per input");
        assert!(r.confidence > 0.0 && r.confidence <= 1.0);
    }

    // A second run is a new boot of the same device: 12 more rows, none taken for duplicates.
    let (out, run2) = flash_qemu(&store, &dir.join("work2"), 5);
    assert!(out.status.success());
    assert_eq!(run2["telemetry"]["boot"], 1);
    assert_eq!(run2["telemetry"]["frames"], 5);
    assert_eq!(
        edgeloop_monitor::store::read(&store)
            .unwrap()
            .inferences
            .len(),
        17
    );

    // The firmware refuses what it must not run: the kept partitions, corrupted.
    let work = dir.join("work1");
    let elf = PathBuf::from(run["firmware"].as_str().unwrap());
    let model = std::fs::read(work.join("model.part")).expect("model partition");
    let vectors = work.join("vectors.part");
    // A byte near the image's end (constants or statistics: both under the image's CRC).
    type Corrupt = fn(&mut [u8]);
    let cases: [(&str, Corrupt, &str); 3] = [
        (
            "weight flipped, partition CRC fixed",
            |p| {
                let at = p.len() - 200;
                p[at] ^= 0x10;
                let crc = edgeloop_runtime::image::crc::crc32(&p[16..]);
                p[12..16].copy_from_slice(&crc.to_le_bytes());
            },
            "image refused: ImageBadCrc",
        ),
        (
            "weight flipped",
            |p| {
                let at = p.len() - 200;
                p[at] ^= 0x10;
            },
            "model image partition at 0x200000 refused: BadCrc",
        ),
        (
            "length past the partition",
            |p| p[8..12].copy_from_slice(&u32::MAX.to_le_bytes()),
            "refused: TooLong",
        ),
    ];
    for (name, corrupt, want) in cases {
        let mut bad = model.clone();
        corrupt(&mut bad);
        let path = dir.join("bad.part");
        std::fs::write(&path, &bad).unwrap();
        let load_model = format!("{}@_edgeloop_model_partition", path.display());
        let load_vectors = format!("{}@_edgeloop_vectors_partition", vectors.display());
        let (run, log) = run_qemu(
            &elf,
            &dir,
            &[
                "--load",
                &load_model,
                "--load",
                &load_vectors,
                "--timeout",
                "60",
            ],
        );
        assert!(!run.status.success(), "{name}: accepted: {log}");
        assert!(log.contains(want), "{name}: log: {log}");
        assert!(log.contains("flashed: FAIL"), "{name}");
        assert!(!log.contains("matches the host"), "{name}: the model ran");
    }
    // Test vectors for another model (input length off by one word), CRC valid.
    let mut vec_part = std::fs::read(&vectors).expect("vectors partition");
    let in_len = u32::from_le_bytes(vec_part[20..24].try_into().unwrap());
    vec_part[20..24].copy_from_slice(&(in_len + 4).to_le_bytes());
    let crc = edgeloop_runtime::image::crc::crc32(&vec_part[16..]);
    vec_part[12..16].copy_from_slice(&crc.to_le_bytes());
    let bad_vectors = dir.join("bad-vectors.part");
    std::fs::write(&bad_vectors, &vec_part).unwrap();
    let load_model = format!(
        "{}@_edgeloop_model_partition",
        work.join("model.part").display()
    );
    let load_vectors = format!("{}@_edgeloop_vectors_partition", bad_vectors.display());
    let (run, log) = run_qemu(
        &elf,
        &dir,
        &[
            "--load",
            &load_model,
            "--load",
            &load_vectors,
            "--timeout",
            "60",
        ],
    );
    assert!(!run.status.success(), "mismatched vectors accepted: {log}");
    assert!(
        log.contains("test vectors refused: BadVectors"),
        "log: {log}"
    );
    // Nothing flashed at all.
    let (run, log) = run_qemu(&elf, &dir, &["--timeout", "60"]);
    assert!(!run.status.success());
    assert!(
        log.contains("ERROR no model image flashed at 0x200000"),
        "log: {log}"
    );
}

#[test]
fn flash_qemu_names_what_is_missing() {
    let d = demo();
    let dir = tmp("firmware_flash_missing");
    // No QEMU on PATH.
    let out = Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args(["flash", "--qemu", "--image"])
        .arg(&d.image)
        .arg("--texts")
        .arg(&d.texts)
        .arg("--tokenizer")
        .arg(&d.tokenizer)
        .env("PATH", &dir)
        .output()
        .expect("run edgeloop");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("qemu-system-arm is not installed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // No thumbv7em standard library (a rustc whose sysroot lacks it).
    let fake = dir.join("rustc");
    std::fs::write(&fake, format!("#!/bin/sh\necho {}\n", dir.display())).unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args(["flash", "--qemu", "--image"])
        .arg(&d.image)
        .arg("--texts")
        .arg(&d.texts)
        .arg("--tokenizer")
        .arg(&d.tokenizer)
        .env("RUSTC", &fake)
        .output()
        .expect("run edgeloop");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the Rust target thumbv7em-none-eabihf is not installed")
            && err.contains("rustup target add thumbv7em-none-eabihf"),
        "{err}"
    );
}

/// Asserts that no heap allocator is linked into `elf`: no allocator shim (`__rust_alloc`,
/// `__rg_alloc`, `__rdl_alloc`), no `GlobalAlloc` implementation, nothing from `alloc::`.
fn assert_no_allocator(elf: &Path) {
    let syms = symbols(elf);
    assert!(syms.len() > 100, "{}: symbols stripped?", elf.display());
    let found: Vec<&String> = syms
        .iter()
        .map(|(_, _, name)| name)
        .filter(|n| {
            [
                "__rust_alloc",
                "__rg_alloc",
                "__rdl_alloc",
                "__rust_no_alloc_shim",
            ]
            .iter()
            .any(|a| n.contains(a))
                || n.contains("GlobalAlloc")
                || n.starts_with("alloc::")
                || n.starts_with("<alloc::")
        })
        .collect();
    assert!(
        found.is_empty(),
        "{}: allocator symbols linked: {found:?}",
        elf.display()
    );
}

/// Section sizes (`size -A`) of an ELF.
fn sections(elf: &Path) -> HashMap<String, u64> {
    let out = Command::new("size")
        .arg("-A")
        .arg(elf)
        .output()
        .expect("running size (binutils)");
    assert!(out.status.success(), "size -A failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (name, size) = (it.next()?, it.next()?.parse().ok()?);
            Some((name.to_string(), size))
        })
        .collect()
}

/// (size, type, demangled name) of every sized symbol (`nm -S -C`).
fn symbols(elf: &Path) -> Vec<(u64, char, String)> {
    let out = Command::new("nm")
        .args(["-S", "-C", "--size-sort"])
        .arg(elf)
        .output()
        .expect("running nm (binutils)");
    assert!(out.status.success(), "nm failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(4, ' ');
            let _addr = it.next()?;
            let size = u64::from_str_radix(it.next()?, 16).ok()?;
            let kind = it.next()?.chars().next()?;
            Some((size, kind, it.next()?.to_string()))
        })
        .collect()
}

#[test]
fn footprint_per_model_flash_and_ram() {
    let work = tmp("firmware_footprint");
    let mut md = String::from(
        "# Memory footprint per model (Cortex-M4F, QEMU mps2-an386; release, opt-level \"s\", LTO)\n\n\
         One firmware per model with only that model's ops linked (`footprint-*` examples: op set \
         computed from the image by `build.rs`), one invoke on zeroed inputs. Flash: *runtime* is \
         the runtime's out-of-line code other than kernels (image parsing and validation, op \
         binding, the interpreter, with whatever the compiler inlined into them) plus the example's \
         driver; *kernels* are the out-of-line `ops::*` functions; *other code* is `core`, \
         `compiler_builtins`, defmt, cortex-m-rt and the board layer; *image* is the model image \
         executed in place. RAM: *arena* is the image's planned arena (the firmware reserves a \
         fixed static that is larger), *stack* the high-water mark by painting, *statics* every \
         other `.data`/`.bss` byte. The rows marked ARMv6-M are the same firmwares built for \
         `thumbv6m-none-eabi` (feature `board-mps2-an386`: the Cortex-M0+ instruction set, no \
         FPU, so f32 arithmetic and 64-bit division come from `compiler_builtins`, in *other \
         code*), run on the same board.\n\n\
         | model | flash total | runtime | kernels | other code | image | other rodata | RAM: arena | stack high-water | statics |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let armv6m = ["--features", "board-mps2-an386"];
    for (bin, name, target, features, row) in [
        (
            "footprint-classify",
            "intent-classifier",
            M4,
            &[][..],
            "intent-classifier",
        ),
        ("footprint-dscnn", "ds-cnn", M4, &[], "ds-cnn"),
        ("footprint-generate", "tiny-gpt", M4, &[], "tiny-gpt"),
        ("footprint-mlp", "mlp", M4, &[], "mlp"),
        (
            "footprint-classify",
            "intent-classifier",
            M0,
            &armv6m,
            "intent-classifier (ARMv6-M)",
        ),
        ("footprint-dscnn", "ds-cnn", M0, &armv6m, "ds-cnn (ARMv6-M)"),
    ] {
        let elf_name = format!("{bin}-{}", if target == M0 { "armv6m" } else { "m4" });
        let elf = kws_firmware::build_firmware(bin, target, features, assets(), &work, &elf_name);
        let (run, log) = run_qemu(&elf, &work, &["--timeout", "120"]);
        assert!(run.status.success(), "{bin} exited with {:?}", run.status);
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("footprint {name}: ")))
            .unwrap_or_else(|| panic!("{bin}: no footprint line in {log}"));
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .collect();
        let [image, arena, stack] = nums[nums.len() - 3..] else {
            panic!("{line}")
        };
        let sec = sections(&elf);
        let s = |n: &str| sec.get(n).copied().unwrap_or(0);
        let (mut kernels, mut runtime, mut arena_static) = (0, 0, 0);
        for (size, kind, sym) in symbols(&elf) {
            let text = matches!(kind, 't' | 'T');
            if text
                && (sym.starts_with("edgeloop_runtime::ops::")
                    || sym.starts_with("edgeloop_runtime::arch::"))
            {
                kernels += size;
            } else if text
                && (sym.starts_with("edgeloop_runtime::")
                    || sym.starts_with("edgeloop_firmware_examples::footprint::"))
            {
                runtime += size;
            } else if sym == "edgeloop_firmware_examples::arena::ARENA" {
                arena_static = size;
            }
        }
        assert!(kernels > 0 && runtime > 0, "{bin}: no runtime symbols");
        assert_no_allocator(&elf);
        assert!(arena_static >= arena, "{bin}: arena static too small");
        let text = s(".vector_table") + s(".text");
        let flash = text + s(".rodata") + s(".data");
        let statics = s(".data") + s(".bss") - arena_static;
        md.push_str(&format!(
            "| {row} | {flash} | {runtime} | {kernels} | {} | {image} | {} | {arena} | {stack} | {statics} |\n",
            text - runtime - kernels,
            s(".rodata") - image,
        ));
    }
    println!("{md}");
    std::fs::write(work.join("footprint.md"), &md).expect("write footprint.md");
}

/// Writes the keyword-spotting example's assets into `dir`: a DS-CNN trained briefly on the
/// synthetic keyword corpus (the accuracy target is `trainer/tests/kws_e2e.rs`'s; here the
/// point is the device), quantized, its input pinned to the front end's int8 quantization,
/// compiled; 8 held-out clips through [`kws_firmware::write_assets`] (raw int16 PCM, the host's
/// front-end features, the host runtime's outputs and the true labels). Returns the host's fp32
/// test accuracy.
fn write_kws_assets(dir: &Path) -> f32 {
    use edgeloop_quantize::compile::{compile, CompileOptions};
    use edgeloop_quantize::runner::Sample;
    use edgeloop_quantize::tensor::Tensor as QTensor;
    use edgeloop_quantize::{quantize, Dataset, OnnxModel, QuantizeConfig};
    use edgeloop_runtime::audio::{FEATURE_SCALE, FEATURE_ZERO_POINT, FRAMES, MEL_BANDS};
    use edgeloop_trainer::audio::synth::{generate, SynthConfig};
    use edgeloop_trainer::audio::train::{train, FeatureSet, KwsTrainConfig};
    use edgeloop_trainer::audio::{dequantize, Split};
    use edgeloop_trainer::export::ds_cnn::{export_ds_cnn, pin_int8_input, INPUT};
    use edgeloop_trainer::export::graph::encode;

    let data = generate(&SynthConfig::new(13, 80));
    let mut cfg = KwsTrainConfig::new(data.labels.len(), 1);
    cfg.steps = 120;
    let (model, report) = train(&data, &cfg).expect("train the keyword model");
    let proto = export_ds_cnn(&model, 1, 17).expect("export");
    let fp32 = OnnxModel::from_bytes(&encode(&proto)).expect("parse the fp32 ONNX");
    let train_set = FeatureSet::of(&data, Split::Train).expect("features");
    let per = FRAMES * MEL_BANDS;
    let calib: Vec<Sample> = train_set
        .int8
        .chunks_exact(per)
        .step_by((train_set.len() / 64).max(1))
        .map(|x| {
            let v: Vec<f32> = x.iter().map(|&q| dequantize(q)).collect();
            HashMap::from([(
                INPUT.to_string(),
                QTensor::f32(vec![1, 1, FRAMES, MEL_BANDS], v).expect("tensor"),
            )])
        })
        .collect();
    let q = quantize(
        &fp32,
        &Dataset { samples: calib },
        &QuantizeConfig::default(),
    )
    .expect("quantize");
    let mut qdq = q.model.proto.clone();
    pin_int8_input(&mut qdq, INPUT, FEATURE_SCALE, FEATURE_ZERO_POINT as i8).expect("pin");
    let opts = CompileOptions {
        name: Some("kws".into()),
        ..CompileOptions::default()
    };
    let compiled = compile(&qdq, &opts).expect("compile");
    kws_firmware::write_assets(dir, compiled.bytes(), &data, 8);
    report.test_accuracy
}

/// Keyword spotting on the Cortex-M4F from raw audio: the `kws` example runs the runtime's
/// integer log-mel front end on raw 16 kHz int16 clips and the trained DS-CNN's int8 image;
/// features and outputs must equal the host's byte for byte ([`kws_firmware::run_kws`]).
/// Executed instructions of the front end and of the model per clip are counted with the TCG
/// plugin (as `bench` does), printed and written to `$CARGO_TARGET_TMPDIR/firmware_kws/kws.md`.
#[test]
fn kws_front_end_and_model_bit_exact_on_cortex_m4() {
    let work = tmp("firmware_kws");
    let assets = work.join("assets");
    std::fs::create_dir_all(&assets).expect("assets dir");
    let host_accuracy = write_kws_assets(&assets);
    let run = kws_firmware::run_kws(&assets, &work, 8);
    let log = &run.log;
    assert!(
        log.contains("8 of 8 feature maps and 8 of 8 outputs bit-exact with the host"),
        "log: {log}"
    );
    let (fe, mo) = (run.front_end, run.model);
    let correct = log
        .lines()
        .find_map(|l| {
            let (_, tail) = l.split_once("outputs bit-exact with the host; ")?;
            Some(tail.to_string())
        })
        .unwrap_or_default();
    let mut md = format!(
        "# Keyword spotting on Cortex-M4 (QEMU mps2-an386, TCG plugin count)\n\n\
         Raw 16 kHz int16 clip (1 s) → integer log-mel front end (49 frames × 40 bands) → DS-CNN \
         int8 image; 8 held-out synthetic clips; features and outputs bit-exact with the host. \
         Model trained briefly here (host fp32 test accuracy {host_accuracy:.3}); on the device: {correct}.\n\n\
         | stage | instructions per clip (mean) | min | max | MACs | instr/MAC |\n|---|---:|---:|---:|---:|---:|\n\
         | front end | {} | {} | {} | - | - |\n\
         | DS-CNN | {} | {} | {} | {} | {:.2} |\n\
         | total | {} | | | | |\n",
        fe.mean,
        fe.min,
        fe.max,
        mo.mean,
        mo.min,
        mo.max,
        mo.macs,
        mo.mean as f64 / mo.macs.max(1) as f64,
        fe.mean + mo.mean
    );
    md.push_str(
        "\n## DS-CNN per op (first clip)\n\n| op | MACs | instructions | instr/MAC |\n|---|---:|---:|---:|\n",
    );
    for r in &run.ops {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            &r.name["kws op ".len()..],
            r.macs,
            r.insns,
            per_mac(r)
        ));
    }
    println!("{md}");
    std::fs::write(work.join("kws.md"), &md).expect("write kws.md");
}

//! A model image on the emulated Cortex-M4F: `edgeloop flash --qemu` and the demo's device stage.
//!
//! The `flashed` firmware (`firmware-examples/src/bin/flashed.rs`) is built once, with no model in
//! it. Each run writes two flash partitions — the model image, and the test vectors (inputs, the
//! host runtime's output tensors for them, the telemetry device id and boot number) — and QEMU's
//! `mps2-an386` board starts with them loaded at the addresses the firmware's linker script names
//! (`-device loader`, through `tools/qemu-run --load FILE@SYMBOL`). The firmware parses the image
//! in place, runs every input, checks each output tensor against the host's byte for byte, and
//! writes one telemetry frame per inference to `telemetry.bin` through semihosting as it goes;
//! this module follows that file while QEMU runs, feeds the bytes to the monitor's [`Ingestor`]
//! (COBS resync, corrupt frames counted, duplicates dropped) and writes the frames into the
//! Parquet store.

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use edgeloop_monitor::ingest::{self, CorruptCounts, Ingestor, Received};
use edgeloop_runtime::image::crc::crc32;
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::{DType, TensorInfo};
use edgeloop_runtime::telemetry::Record;
use edgeloop_runtime::{Interpreter, Model};
use serde::Serialize;

/// Linker symbol of the model-image partition (0x0020_0000 on the mps2-an386).
pub const MODEL_PARTITION: &str = "_edgeloop_model_partition";
/// Linker symbol of the test-vector partition (0x0030_0000 on the mps2-an386).
pub const VECTORS_PARTITION: &str = "_edgeloop_vectors_partition";
/// Telemetry device id used when none is given.
pub const DEFAULT_DEVICE: u64 = 0x0E11_0000_0000_0001;
const TARGET: &str = "thumbv7em-none-eabihf";

/// Test inputs, one row per inference.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// Token ids (an image whose input is i32, such as the intent classifier).
    TokenIds(Vec<Vec<i32>>),
    /// int8 tensors (an image whose input is int8).
    Int8(Vec<Vec<i8>>),
    /// Raw input tensors back to back (`edgeloop firmware-assets` writes `classify.inputs` so).
    Raw(Vec<u8>),
}

impl Inputs {
    /// Input tensors back to back as the image's input `info` lays them out, and their count.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> anyhow::Result<(Vec<u8>, usize)> {
        let (n_el, n_bytes) = (info.shape.num_elements() as usize, info.len as usize);
        let check_len = |i: usize, len: usize| {
            if len != n_el {
                bail!(
                    "input row {} has {len} values; the image's input takes {n_el}",
                    i + 1
                );
            }
            Ok(())
        };
        let mut out = Vec::new();
        let rows = match self {
            Inputs::TokenIds(rows) => {
                if info.dtype != DType::I32 {
                    bail!(
                        "token-id inputs need an image whose input is i32; this one's is {:?}",
                        info.dtype
                    );
                }
                for (i, r) in rows.iter().enumerate() {
                    check_len(i, r.len())?;
                    out.extend(r.iter().flat_map(|v| v.to_le_bytes()));
                }
                rows.len()
            }
            Inputs::Int8(rows) => {
                if info.dtype != DType::I8 {
                    bail!(
                        "int8 inputs need an image whose input is int8; this one's is {:?}",
                        info.dtype
                    );
                }
                for (i, r) in rows.iter().enumerate() {
                    check_len(i, r.len())?;
                    out.extend(r.iter().map(|&v| v as u8));
                }
                rows.len()
            }
            Inputs::Raw(bytes) => {
                if n_bytes == 0 || bytes.len() % n_bytes != 0 {
                    bail!(
                        "{} input bytes are not a whole number of the image's {n_bytes}-byte input tensors",
                        bytes.len()
                    );
                }
                out.extend_from_slice(bytes);
                bytes.len() / n_bytes
            }
        };
        if rows == 0 {
            bail!("no test inputs");
        }
        Ok((out, rows))
    }
}

/// How to run (everything has a default).
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// A prebuilt `flashed` firmware ELF; default: build `firmware-examples/` (once; cargo
    /// rebuilds nothing later) for thumbv7em-none-eabihf.
    pub firmware: Option<PathBuf>,
    /// A prebuilt `edgeloop-qemu-run`; default: build `tools/qemu-run/`.
    pub qemu_run: Option<PathBuf>,
    /// Folder for the partitions, the firmware's `telemetry.bin` and `firmware.log`; default: a
    /// fresh temporary folder, removed afterwards.
    pub workdir: Option<PathBuf>,
    /// Telemetry device id.
    pub device: u64,
    /// Kill QEMU after this many seconds.
    pub timeout_s: u64,
    /// Print the firmware's decoded log lines as they arrive.
    pub echo: bool,
}

impl Default for QemuOptions {
    fn default() -> Self {
        QemuOptions {
            firmware: None,
            qemu_run: None,
            workdir: None,
            device: DEFAULT_DEVICE,
            timeout_s: 300,
            echo: false,
        }
    }
}

/// One input's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicePrediction {
    /// Input index.
    pub index: usize,
    /// Top-1 class on the host runtime.
    pub host_class: usize,
    /// Top-1 class the device reported in telemetry (`None`: its frame did not arrive).
    pub device_class: Option<u16>,
    /// The device's top-1 probability (telemetry, Q16 → [0, 1]).
    pub device_confidence: Option<f64>,
    /// Device latency in SysTick ticks (QEMU's clock, not a cycle count).
    pub latency_ticks: Option<u32>,
    /// Whether the firmware found its output tensor byte-for-byte equal to the host's.
    pub bit_exact: bool,
}

/// Telemetry that crossed the byte stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetrySummary {
    /// Device id in the frames.
    pub device: u64,
    /// Boot number of this run (one more than the highest the store held for the device).
    pub boot: u32,
    /// Bytes read from the firmware's stream.
    pub bytes: u64,
    /// Frames decoded and kept.
    pub frames: u64,
    /// Frames dropped as already seen.
    pub duplicates: u64,
    /// Corrupt frames skipped (all reasons).
    pub corrupt: u64,
    /// Corrupt frames by reason.
    pub corrupt_by_reason: CorruptCounts,
    /// Parquet files written into the store.
    pub store_files: Vec<String>,
}

/// What a run on the emulated device did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QemuRun {
    /// The model image.
    pub image: String,
    /// Model name in the image header.
    pub model: String,
    /// Model version in the image header.
    pub model_version: u32,
    /// Image bytes (with any signature trailer).
    pub image_bytes: usize,
    /// Firmware ELF run.
    pub firmware: String,
    /// QEMU board.
    pub machine: String,
    /// The firmware exited with success (every output bit-exact with the host).
    pub passed: bool,
    /// QEMU's exit status (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// Inputs run.
    pub inputs: usize,
    /// Outputs byte-for-byte equal to the host runtime's (as the firmware checked them).
    pub bit_exact: usize,
    /// Inputs whose device top-1 (telemetry) equals the host's.
    pub top1_agree: usize,
    /// Per input.
    pub predictions: Vec<DevicePrediction>,
    /// Telemetry ingest.
    pub telemetry: TelemetrySummary,
    /// Stack high-water mark the firmware measured (painting), bytes.
    pub stack_high_water_bytes: Option<u64>,
    /// Error and warning lines of the firmware log.
    pub firmware_errors: Vec<String>,
    /// Wall-clock seconds in QEMU.
    pub qemu_seconds: f64,
}

/// A flash partition: 16-byte header (`ELP1`, kind, payload length, CRC-32 of the payload),
/// then the payload. The layout is the firmware's (`firmware-examples/src/partition.rs`).
pub fn partition(kind: &[u8; 4], payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).context("partition payload over 4 GiB")?;
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(b"ELP1");
    out.extend_from_slice(kind);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// The test-vector payload: count, input bytes, output bytes, boot (u32 LE), device (u64 LE),
/// 8 zero bytes, then the inputs, then the expected outputs.
pub fn vectors_payload(
    inputs: &[u8],
    expected: &[u8],
    count: usize,
    device: u64,
    boot: u32,
) -> anyhow::Result<Vec<u8>> {
    if count == 0 || !inputs.len().is_multiple_of(count) || !expected.len().is_multiple_of(count) {
        bail!("test vectors: {count} inputs do not divide the input and output bytes");
    }
    let word = |v: usize| u32::try_from(v).context("test vectors over 4 GiB");
    let mut out = Vec::with_capacity(32 + inputs.len() + expected.len());
    for v in [count, inputs.len() / count, expected.len() / count] {
        out.extend_from_slice(&word(v)?.to_le_bytes());
    }
    out.extend_from_slice(&boot.to_le_bytes());
    out.extend_from_slice(&device.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(inputs);
    out.extend_from_slice(expected);
    Ok(out)
}

/// Index of the largest element of an output tensor (first on ties), by dtype.
fn argmax(bytes: &[u8], dtype: DType) -> usize {
    let mut best = (0usize, f64::NEG_INFINITY);
    let mut see = |i: usize, v: f64| {
        if v > best.1 {
            best = (i, v);
        }
    };
    match dtype {
        DType::I8 => bytes
            .iter()
            .enumerate()
            .for_each(|(i, &b)| see(i, f64::from(b as i8))),
        DType::F32 => bytes
            .chunks_exact(4)
            .enumerate()
            .for_each(|(i, c)| see(i, f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))),
        _ => bytes
            .chunks_exact(4)
            .enumerate()
            .for_each(|(i, c)| see(i, f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))),
    }
    best.0
}

/// The image on the host runtime: (model name, version, input info, expected output bytes per
/// input, host top-1 per input).
struct HostRun {
    name: String,
    version: u32,
    inputs: Vec<u8>,
    count: usize,
    expected: Vec<u8>,
    classes: Vec<usize>,
}

fn host_run(image: &[u8], inputs: &Inputs) -> anyhow::Result<HostRun> {
    let bytes = AlignedBytes::new(image);
    let model = Model::parse(bytes.as_slice()).context("not a valid model image")?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice())?;
    let (in_info, out_info) = (it.input_info(0)?, it.output_info(0)?);
    let (raw, count) = inputs.tensor_bytes(&in_info)?;
    let (mut expected, mut classes) = (Vec::new(), Vec::new());
    for (i, x) in raw.chunks_exact(in_info.len as usize).enumerate() {
        it.input_bytes(0)?.copy_from_slice(x);
        it.invoke()
            .with_context(|| format!("host runtime, input {}", i + 1))?;
        let out = it.output_bytes(0)?;
        classes.push(argmax(out, out_info.dtype));
        expected.extend_from_slice(out);
    }
    Ok(HostRun {
        name: model.name().to_string(),
        version: model.model_version(),
        inputs: raw,
        count,
        expected,
        classes,
    })
}

/// The repository with the firmware's and qemu-run's sources: the one `cargo run` / `cargo test`
/// runs in (cargo sets `CARGO_MANIFEST_DIR` for the process), else the one this binary was built
/// from. (A compile-time path alone breaks when cargo reuses a binary built in another checkout.)
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `name` on PATH, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Fails with the fix when qemu-system-arm is missing.
pub fn check_qemu() -> anyhow::Result<PathBuf> {
    on_path("qemu-system-arm").context(
        "qemu-system-arm is not installed (not on PATH): install it with `apt-get install qemu-system-arm` \
         (scripts/test.sh does), or run the image on the host with `edgeloop run`",
    )
}

/// Fails with the fix when the thumbv7em-none-eabihf standard library is missing.
fn check_target() -> anyhow::Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc to find the Rust sysroot (is Rust installed?)")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        bail!(
            "the Rust target {TARGET} is not installed (no {}): install it with `rustup target add {TARGET}`, \
             or pass a prebuilt firmware with --firmware",
            sysroot.join("lib/rustlib").join(TARGET).display()
        );
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The folders below are their own workspaces with their own target folders and targets.
    c.env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS");
    c
}

fn run_cargo(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running cargo to build {what}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("building {what} failed:\n{}", tail.join("\n"));
    }
    Ok(())
}

/// The `flashed` firmware ELF: `opts.firmware`, or built from `firmware-examples/`.
pub fn firmware_elf(opts: &QemuOptions) -> anyhow::Result<PathBuf> {
    if let Some(p) = &opts.firmware {
        if !p.is_file() {
            bail!("firmware ELF {} does not exist", p.display());
        }
        return Ok(p.clone());
    }
    let src = repo().join("firmware-examples");
    if !src.join("Cargo.toml").is_file() {
        bail!(
            "the firmware sources are not at {} (this edgeloop was built elsewhere): pass --firmware ELF",
            src.display()
        );
    }
    check_target()?;
    let target_dir = src.join("target");
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "--bin",
        "flashed",
        "--no-default-features",
    ])
    .args(["--target", TARGET, "--target-dir"])
    .arg(&target_dir)
    .current_dir(&src);
    run_cargo(cmd, "the flashed firmware (firmware-examples)")?;
    Ok(target_dir.join(TARGET).join("release/flashed"))
}

/// The `edgeloop-qemu-run` binary: `opts.qemu_run`, or built from `tools/qemu-run/`.
pub fn qemu_run_bin(opts: &QemuOptions) -> anyhow::Result<PathBuf> {
    if let Some(p) = &opts.qemu_run {
        if !p.is_file() {
            bail!("edgeloop-qemu-run binary {} does not exist", p.display());
        }
        return Ok(p.clone());
    }
    let src = repo().join("tools/qemu-run");
    if !src.join("Cargo.toml").is_file() {
        bail!(
            "tools/qemu-run is not at {}: pass --qemu-run BIN",
            src.display()
        );
    }
    let target_dir = src.join("target");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&src);
    run_cargo(cmd, "tools/qemu-run")?;
    Ok(target_dir.join("release/edgeloop-qemu-run"))
}

/// One line of the firmware's per-input log: `input K: class C (...), T ticks, matches the host`.
fn parse_input_line(line: &str) -> Option<(usize, bool)> {
    let rest = line.strip_prefix("input ")?;
    let (k, tail) = rest.split_once(':')?;
    let k = k.trim().parse().ok()?;
    if tail.ends_with("matches the host") {
        Some((k, true))
    } else if tail.ends_with("DIFFERS from the host") {
        Some((k, false))
    } else {
        None
    }
}

fn parse_stack_line(line: &str) -> Option<u64> {
    line.strip_prefix("stack high-water mark: ")?
        .strip_suffix(" bytes")?
        .parse()
        .ok()
}

/// Follows a file another process appends to, feeding new bytes to the ingestor.
struct Follower {
    path: PathBuf,
    file: Option<std::fs::File>,
    at: u64,
}

impl Follower {
    fn poll(&mut self, ing: &mut Ingestor, out: &mut Vec<Received>) -> anyhow::Result<()> {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(_) => return Ok(()), // not created yet
            }
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        f.seek(SeekFrom::Start(self.at))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .with_context(|| format!("reading {}", self.path.display()))?;
        self.at += buf.len() as u64;
        if !buf.is_empty() {
            ing.feed(&buf, ingest::now_ms(), out);
        }
        Ok(())
    }
}

/// Runs `image` on the emulated Cortex-M4F (QEMU `mps2-an386`) over `inputs`, checks every
/// output against the host runtime, and streams the firmware's telemetry into the Parquet
/// store at `store` (when given). Errors (not panics) when QEMU or the thumbv7em target is
/// missing, the image is invalid, or the firmware does not exit in time; a firmware that runs
/// but finds a mismatch (or refuses the image) gives `Ok` with `passed == false`.
pub fn run_in_qemu(
    image: &Path,
    inputs: &Inputs,
    store: Option<&Path>,
    opts: &QemuOptions,
) -> anyhow::Result<QemuRun> {
    check_qemu()?;
    let image_bytes =
        std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let host = host_run(&image_bytes, inputs).with_context(|| format!("{}", image.display()))?;
    let firmware = firmware_elf(opts)?;
    let runner = qemu_run_bin(opts)?;

    let (workdir, temporary) = match &opts.workdir {
        Some(d) => (d.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let d =
                std::env::temp_dir().join(format!("edgeloop-qemu-{}-{nanos}", std::process::id()));
            (d, true)
        }
    };
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;

    // Dedup against the store, and a new boot number so this run's frames are new records.
    let seen = match store {
        Some(root) if root.exists() => edgeloop_monitor::store::keys(root)
            .with_context(|| format!("reading the store {}", root.display()))?,
        _ => Vec::new(),
    };
    let boot = seen
        .iter()
        .filter(|k| k.0 == opts.device)
        .map(|k| k.1.saturating_add(1))
        .max()
        .unwrap_or(0);
    let mut ingestor = Ingestor::with_seen(seen);

    let model_part = workdir.join("model.part");
    let vectors_part = workdir.join("vectors.part");
    std::fs::write(&model_part, partition(b"IMG\0", &image_bytes)?)
        .with_context(|| format!("writing {}", model_part.display()))?;
    let payload = vectors_payload(&host.inputs, &host.expected, host.count, opts.device, boot)?;
    std::fs::write(&vectors_part, partition(b"VEC\0", &payload)?)
        .with_context(|| format!("writing {}", vectors_part.display()))?;
    let telemetry = workdir.join("telemetry.bin");
    let _ = std::fs::remove_file(&telemetry);

    let started = Instant::now();
    let mut child = Command::new(&runner)
        .arg(&firmware)
        .arg("--workdir")
        .arg(&workdir)
        .arg("--load")
        .arg(format!("{}@{MODEL_PARTITION}", model_part.display()))
        .arg("--load")
        .arg(format!("{}@{VECTORS_PARTITION}", vectors_part.display()))
        .arg("--timeout")
        .arg(opts.timeout_s.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", runner.display()))?;
    let stdout = child.stdout.take().context("qemu-run stdout")?;
    let mut stderr = child.stderr.take().context("qemu-run stderr")?;
    let echo = opts.echo;
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if echo {
                println!("  device | {line}");
            }
            lines.push(line);
        }
        lines
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut follower = Follower {
        path: telemetry.clone(),
        file: None,
        at: 0,
    };
    let mut received = Vec::new();
    let status = loop {
        follower.poll(&mut ingestor, &mut received)?;
        if let Some(status) = child.try_wait().context("waiting for qemu-run")? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    follower.poll(&mut ingestor, &mut received)?;
    ingestor.finish();
    let qemu_seconds = started.elapsed().as_secs_f64();
    let lines = reader.join().unwrap_or_default();
    let runner_err = err_reader.join().unwrap_or_default();
    if runner_err.contains("edgeloop-qemu-run: error:") {
        bail!("{}", runner_err.trim());
    }

    let stats = ingestor.stats();
    let store_files = match store {
        Some(root) if !received.is_empty() => edgeloop_monitor::store::write(root, &received)
            .with_context(|| format!("writing the store {}", root.display()))?
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        _ => Vec::new(),
    };

    let mut exact = vec![false; host.count];
    let mut stack = None;
    let mut firmware_errors = Vec::new();
    for line in &lines {
        if let Some((k, eq)) = parse_input_line(line) {
            if let Some(slot) = exact.get_mut(k) {
                *slot = eq;
            }
        } else if let Some(s) = parse_stack_line(line) {
            stack = Some(s);
        } else if line.starts_with("ERROR") || line.starts_with("WARN") {
            firmware_errors.push(line.clone());
        }
    }
    let mut device = vec![None; host.count];
    for r in &received {
        let h = &r.frame.header;
        if let Record::Inference(s) = &r.frame.record {
            if h.device == opts.device && h.boot == boot {
                if let Some(slot) = device.get_mut(h.seq as usize) {
                    *slot = Some(*s);
                }
            }
        }
    }
    let predictions: Vec<DevicePrediction> = (0..host.count)
        .map(|i| DevicePrediction {
            index: i,
            host_class: host.classes[i],
            device_class: device[i].map(|s| s.class),
            device_confidence: device[i].map(|s| f64::from(s.confidence_q16) / 65535.0),
            latency_ticks: device[i].map(|s| s.latency_ticks),
            bit_exact: exact[i],
        })
        .collect();
    let run = QemuRun {
        image: image.display().to_string(),
        model: host.name,
        model_version: host.version,
        image_bytes: image_bytes.len(),
        firmware: firmware.display().to_string(),
        machine: "mps2-an386 (Cortex-M4F)".into(),
        passed: status.success(),
        exit_code: status.code(),
        inputs: host.count,
        bit_exact: exact.iter().filter(|&&e| e).count(),
        top1_agree: predictions
            .iter()
            .filter(|p| p.device_class.map(usize::from) == Some(p.host_class))
            .count(),
        predictions,
        telemetry: TelemetrySummary {
            device: opts.device,
            boot,
            bytes: stats.bytes,
            frames: stats.frames,
            duplicates: stats.duplicates,
            corrupt: stats.corrupt.total(),
            corrupt_by_reason: stats.corrupt,
            store_files,
        },
        stack_high_water_bytes: stack,
        firmware_errors,
        qemu_seconds,
    };
    let log = workdir.join("firmware.log");
    std::fs::write(&log, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", log.display()))?;
    if temporary && run.passed {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_header_names_kind_length_and_crc() {
        let p = partition(b"IMG\0", b"hello").unwrap();
        assert_eq!(&p[0..8], b"ELP1IMG\0");
        assert_eq!(u32::from_le_bytes(p[8..12].try_into().unwrap()), 5);
        assert_eq!(
            u32::from_le_bytes(p[12..16].try_into().unwrap()),
            crc32(b"hello")
        );
        assert_eq!(&p[16..], b"hello");
    }

    #[test]
    fn vectors_payload_layout() {
        let v = vectors_payload(&[1, 2, 3, 4], &[9, 8], 2, 0x0102_0304_0506_0708, 7).unwrap();
        let w = |o: usize| u32::from_le_bytes(v[o..o + 4].try_into().unwrap());
        assert_eq!((w(0), w(4), w(8), w(12)), (2, 2, 1, 7));
        assert_eq!(
            u64::from_le_bytes(v[16..24].try_into().unwrap()),
            0x0102_0304_0506_0708
        );
        assert_eq!(&v[24..32], &[0; 8]);
        assert_eq!(&v[32..], &[1, 2, 3, 4, 9, 8]);
        assert!(vectors_payload(&[1, 2, 3], &[1], 2, 0, 0).is_err());
        assert!(vectors_payload(&[], &[], 0, 0, 0).is_err());
    }

    #[test]
    fn argmax_by_dtype_first_on_ties() {
        assert_eq!(argmax(&[0x80, 5, 5, 0xFF], DType::I8), 1);
        let f: Vec<u8> = [0.5f32, -1.0, 2.5, 2.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(argmax(&f, DType::F32), 2);
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            parse_input_line("input 3: class 5 (confidence 100/65535), 42 ticks, matches the host"),
            Some((3, true))
        );
        assert_eq!(
            parse_input_line(
                "input 11: class 0 (confidence 1/65535), 1 ticks, DIFFERS from the host"
            ),
            Some((11, false))
        );
        assert_eq!(parse_input_line("input file holds 3 bytes"), None);
        assert_eq!(
            parse_stack_line("stack high-water mark: 1234 bytes"),
            Some(1234)
        );
    }

    #[test]
    fn inputs_are_checked_against_the_image_input() {
        let info = TensorInfo {
            dtype: DType::I32,
            shape: edgeloop_runtime::image::Shape::new(&[1, 3]).unwrap(),
            storage: edgeloop_runtime::image::Storage::Arena,
            offset: 0,
            len: 12,
            scale: 0.0,
            zero_point: 0,
            first_op: 0,
            last_op: 0,
        };
        let (bytes, n) = Inputs::TokenIds(vec![vec![1, 2, 3], vec![4, 5, 6]])
            .tensor_bytes(&info)
            .unwrap();
        assert_eq!((bytes.len(), n), (24, 2));
        assert_eq!(&bytes[..4], &1i32.to_le_bytes());
        let e = Inputs::TokenIds(vec![vec![1, 2]])
            .tensor_bytes(&info)
            .unwrap_err();
        assert!(e.to_string().contains("row 1 has 2 values"), "{e}");
        assert!(Inputs::Int8(vec![vec![1, 2, 3]])
            .tensor_bytes(&info)
            .is_err());
        assert!(Inputs::Raw(vec![0; 13]).tensor_bytes(&info).is_err());
        assert_eq!(Inputs::Raw(vec![0; 36]).tensor_bytes(&info).unwrap().1, 3);
        assert!(Inputs::TokenIds(vec![]).tensor_bytes(&info).is_err());
    }
}

//! The keyword-spotting firmware (`firmware-examples`, binary `kws`) on QEMU's Cortex-M4F, for
//! tests: writes its assets for a compiled keyword image (raw clips, the host front end's
//! features, the host runtime's outputs), builds it with the instruction-counting TCG plugin,
//! runs it, and parses the per-clip instruction counts of the front end and the model.
//!
//! Included by test files with `#[path = "support/kws_firmware.rs"] mod kws_firmware;`. Needs
//! `qemu-system-arm`, a C compiler and the thumbv7em target (scripts/test.sh installs them);
//! fails, never skips, without them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};
use edgeloop_trainer::audio::{features, KwsDataset, Split};

/// The Cortex-M4F target.
pub const M4: &str = "thumbv7em-none-eabihf";

/// Firmware builds share one target folder: one at a time per test process.
pub static BUILD: Mutex<()> = Mutex::new(());

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh folder under the test target's tmp dir.
pub fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// Writes `kws.{img,pcm,features,expected,labels}` into `dir` for `image` over `clips` test clips
/// of `data` (evenly spaced over its test split); returns how many of them the host image
/// classifies right.
pub fn write_assets(dir: &Path, image: &[u8], data: &KwsDataset, clips: usize) -> usize {
    let aligned = AlignedBytes::new(image);
    let parsed = Model::parse(aligned.as_slice()).expect("parse the image");
    let mut arena = AlignedBytes::zeroed(parsed.arena_bytes());
    let mut it = Interpreter::new(&parsed, arena.as_mut_slice()).expect("interpreter");
    let (mut pcm, mut feats, mut expected, mut labels) = (vec![], vec![], vec![], vec![]);
    let test: Vec<_> = data.split(Split::Test).collect();
    let mut right = 0;
    for c in test.iter().step_by((test.len() / clips).max(1)).take(clips) {
        pcm.extend(c.samples.iter().flat_map(|s| s.to_le_bytes()));
        let f = features(&c.samples).expect("front end");
        feats.extend(f.iter().map(|&v| v as u8));
        it.input_i8(0).expect("input").copy_from_slice(&f);
        it.invoke().expect("invoke");
        // The first highest score, as the firmware picks it.
        let scores = it.output_f32(0).expect("f32 scores");
        let class = scores
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, f32)>, (i, &v)| match best {
                Some((_, b)) if b >= v => best,
                _ => Some((i, v)),
            })
            .map(|(i, _)| i);
        right += usize::from(class == Some(c.label));
        expected.extend_from_slice(it.output_bytes(0).expect("output"));
        labels.push(c.label as u8);
    }
    for (name, bytes) in [
        ("kws.img", image.to_vec()),
        ("kws.pcm", pcm),
        ("kws.features", feats),
        ("kws.expected", expected),
        ("kws.labels", labels),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write a kws asset");
    }
    right
}

/// Builds `tools/qemu-run` (the defmt-decoding QEMU runner) once and returns a command for it.
pub fn qemu_run() -> Command {
    Command::new(qemu_run_bin())
}

/// Builds `tools/qemu-run` once and returns its binary.
pub fn qemu_run_bin() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let tool = repo().join("tools/qemu-run");
        let target = tool.join("target");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target-dir"])
            .arg(&target)
            .current_dir(&tool)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .status()
            .expect("running cargo for tools/qemu-run");
        assert!(status.success(), "building tools/qemu-run failed");
        target.join("release/edgeloop-qemu-run")
    })
}

/// Builds firmware example `bin` for `target` with the extra cargo `args` (features) and the
/// assets in `assets`, and copies its ELF to `into/<name>.elf` (later builds may replace the
/// one in the shared target folder).
pub fn build_firmware(
    bin: &str,
    target: &str,
    args: &[&str],
    assets: &Path,
    into: &Path,
    name: &str,
) -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let fw = repo().join("firmware-examples");
    let target_dir = fw.join("target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", bin, "--target", target])
        .args(args)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&fw)
        .env("EDGELOOP_FW_ASSETS", assets)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("running cargo for firmware-examples");
    assert!(
        status.success(),
        "building firmware example {bin} for {target} failed"
    );
    let elf = into.join(format!("{name}.elf"));
    std::fs::copy(target_dir.join(target).join("release").join(bin), &elf).expect("copy ELF");
    elf
}

/// Builds the instruction-counting TCG plugin (`firmware-examples/tools/insn-count.c`) into
/// `work/insn-count.so`.
pub fn build_plugin(work: &Path) -> PathBuf {
    let plugin = work.join("insn-count.so");
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&plugin)
        .arg(repo().join("firmware-examples/tools/insn-count.c"))
        .status()
        .expect("running cc (install gcc)");
    assert!(cc.success(), "building the TCG plugin failed");
    plugin
}

/// Runs an ELF in QEMU with the runner arguments `extra`; returns (output, decoded log), both
/// printed.
pub fn run_qemu(elf: &Path, work: &Path, extra: &[&str]) -> (Output, String) {
    let out = qemu_run()
        .arg(elf)
        .arg("--workdir")
        .arg(work)
        .args(extra)
        .output()
        .expect("running edgeloop-qemu-run (is qemu-system-arm installed?)");
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{log}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    (out, log)
}

/// Runs `elf` with the instruction-counting `plugin` (marks written to `counts`) and the
/// runner arguments `extra`; returns (output, decoded log, measured regions: none when the
/// run failed).
pub fn run_counted(
    elf: &Path,
    work: &Path,
    plugin: &Path,
    counts: &Path,
    extra: &[&str],
) -> (Output, String, Vec<Region>) {
    let plugin_s = plugin.to_string_lossy().into_owned();
    let counts_s = counts.to_string_lossy().into_owned();
    let mut args = vec!["--insn-plugin", &plugin_s, "--insn-out", &counts_s];
    args.extend_from_slice(extra);
    let (out, log) = run_qemu(elf, work, &args);
    if !out.status.success() {
        return (out, log, Vec::new());
    }
    let text = std::fs::read_to_string(counts).expect("plugin output");
    let marks: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("mark ")?.parse().ok())
        .collect();
    let regions = parse_regions(&log, &marks);
    (out, log, regions)
}

/// Instructions per MAC with two decimals, `-` for a region without MACs.
pub fn per_mac(r: &Region) -> String {
    if r.macs > 0 {
        format!("{:.2}", r.insns as f64 / r.macs as f64)
    } else {
        "-".into()
    }
}

/// One measured region of a firmware log (`region NAME: marks A B, M MACs`).
#[derive(Debug, Clone)]
pub struct Region {
    /// Region name.
    pub name: String,
    /// Executed instructions between its marks.
    pub insns: u64,
    /// Multiply-accumulates the firmware declared for it.
    pub macs: u64,
}

/// The regions of `log`, their instruction counts taken from the plugin's `marks`.
pub fn parse_regions(log: &str, marks: &[u64]) -> Vec<Region> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find("region ")? + 7..];
            let (name, tail) = rest.split_once(": marks ")?;
            let mut it = tail.split([' ', ',']).filter(|s| !s.is_empty());
            let a: usize = it.next()?.parse().ok()?;
            let b: usize = it.next()?.parse().ok()?;
            let macs: u64 = it.next()?.parse().ok()?;
            Some(Region {
                name: name.to_string(),
                insns: marks.get(b)? - marks.get(a)?,
                macs,
            })
        })
        .collect()
}

/// Mean, min and max instructions of the regions named `name`, and their MACs.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Mean instructions per clip.
    pub mean: u64,
    /// Fewest.
    pub min: u64,
    /// Most.
    pub max: u64,
    /// MACs per clip.
    pub macs: u64,
}

impl Stats {
    /// Mean, fewest and most instructions of `regions` (at least one, none empty), and the
    /// first one's MACs.
    pub fn of(regions: &[&Region], what: &str) -> Stats {
        assert!(!regions.is_empty(), "{what}: no regions");
        assert!(regions.iter().all(|r| r.insns > 0), "{what}: empty region");
        Stats {
            mean: regions.iter().map(|r| r.insns).sum::<u64>() / regions.len() as u64,
            min: regions.iter().map(|r| r.insns).min().unwrap_or(0),
            max: regions.iter().map(|r| r.insns).max().unwrap_or(0),
            macs: regions[0].macs,
        }
    }
}

/// What one run of the `kws` firmware showed.
#[derive(Debug)]
pub struct KwsRun {
    /// The decoded defmt log.
    pub log: String,
    /// The front end per clip.
    pub front_end: Stats,
    /// The model per clip.
    pub model: Stats,
    /// Per op of the first clip (`kws op <i> <op>`).
    pub ops: Vec<Region>,
    /// The arena the firmware's interpreter used, bytes (from the log).
    pub arena_bytes: Option<u64>,
    /// The firmware's stack high-water mark, bytes (from the log).
    pub stack_bytes: Option<u64>,
}

/// The number between `prefix` and `suffix` on the first log line holding both.
pub fn number_after(log: &str, prefix: &str, suffix: &str) -> Option<u64> {
    log.lines().find_map(|l| {
        let tail = &l[l.find(prefix)? + prefix.len()..];
        tail[..tail.find(suffix)?].trim().parse().ok()
    })
}

/// Builds the `kws` example with the assets in `assets` and runs it on the emulated Cortex-M4F
/// with the instruction-counting plugin; asserts it passed (every feature map and output
/// bit-exact with the host) over `clips` clips.
pub fn run_kws(assets: &Path, work: &Path, clips: usize) -> KwsRun {
    let plugin = build_plugin(work);
    let features = ["--no-default-features", "--features", "kws"];
    let elf = build_firmware("kws", M4, &features, assets, work, "kws");
    let counts = work.join("insn-count.txt");
    let (out, log, regions) = run_counted(&elf, work, &plugin, &counts, &["--timeout", "300"]);
    assert!(out.status.success(), "kws exited with {:?}", out.status);
    let want = format!("{clips} of {clips} feature maps and {clips} of {clips} outputs bit-exact");
    assert!(log.contains(&want), "log: {log}");
    assert!(log.contains("kws: PASS"), "log: {log}");
    let stats = |name: &str| {
        let v: Vec<&Region> = regions.iter().filter(|r| r.name == name).collect();
        assert_eq!(v.len(), clips, "{name}: {} regions", v.len());
        Stats::of(&v, name)
    };
    let ops = regions
        .iter()
        .filter(|r| r.name.starts_with("kws op "))
        .cloned()
        .collect::<Vec<_>>();
    assert!(!ops.is_empty(), "no per-op regions in {log}");
    KwsRun {
        front_end: stats("kws front-end"),
        model: stats("kws model"),
        ops,
        arena_bytes: number_after(&log, "MACs per inference, arena ", "bytes"),
        stack_bytes: number_after(&log, "stack high-water mark: ", "bytes"),
        log,
    }
}

//! `rss-probe IMAGE [CALLS]`: a process that runs one model image and prints its peak RSS.
//!
//! Reads the image file straight into an aligned buffer (standing in for flash), parses it, allocates
//! the arena, runs `invoke` CALLS times (default 100) on zero inputs (written before each call) and prints one JSON line
//! with `VmHWM` and `VmRSS` from `/proc/self/status` (KiB) next to the image and arena sizes.
//! `rss-probe --baseline` prints the same for a process that loads no model. With the environment
//! variable `RSS_PROBE_SMAPS` set, it also writes each mapping's resident size to stderr.

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};

fn status_kib(key: &str) -> Result<u64, String> {
    let s = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("/proc/self/status has no {key}"))
}

/// How this binary was linked (the process floor differs by ~1.5 MB), and whether it was built
/// with the `edge` profile (the only one that aborts on panic).
const LINKAGE: &str = match (cfg!(target_env = "musl"), cfg!(panic = "abort")) {
    (true, true) => "static musl, edge profile",
    (true, false) => "static musl",
    (false, _) if cfg!(target_feature = "crt-static") => "static glibc",
    (false, _) => "dynamic glibc",
};

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        return Err("usage: rss-probe IMAGE [CALLS] | rss-probe --baseline".into());
    };
    if path == "--baseline" {
        return Ok(format!(
            "{{\"vm_hwm_kib\":{},\"vm_rss_kib\":{},\"image_bytes\":0,\"arena_bytes\":0,\"linkage\":\"{LINKAGE}\"}}",
            status_kib("VmHWM:")?,
            status_kib("VmRSS:")?
        ));
    }
    let calls: usize = match args.get(1) {
        Some(c) => c
            .parse()
            .map_err(|_| format!("CALLS '{c}' is not a number"))?,
        None => 100,
    };
    // Read straight into the aligned buffer: one copy of the image in memory.
    let mut file = std::fs::File::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    let len = file.metadata().map_err(|e| format!("{path}: {e}"))?.len();
    let len = usize::try_from(len).map_err(|_| format!("{path}: too large"))?;
    let mut img = AlignedBytes::zeroed(len);
    std::io::Read::read_exact(&mut file, img.as_mut_slice())
        .map_err(|e| format!("reading {path}: {e}"))?;
    let model = Model::parse(img.as_slice()).map_err(|e| format!("{path}: {e:?}"))?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it =
        Interpreter::new(&model, arena.as_mut_slice()).map_err(|e| format!("arena: {e:?}"))?;
    for _ in 0..calls {
        // Inputs live in the arena and the planner may reuse their bytes after they are read:
        // write them before every invoke (zeros: token id 0, 0.0).
        for k in 0..model.num_inputs() {
            it.input_bytes(k)
                .map_err(|e| format!("input {k}: {e:?}"))?
                .fill(0);
        }
        it.invoke().map_err(|e| format!("invoke: {e:?}"))?;
    }
    std::hint::black_box(it.output_bytes(0).map_err(|e| format!("{e:?}"))?);
    if std::env::var_os("RSS_PROBE_SMAPS").is_some() {
        // Diagnostic: each mapping's resident size, to see whether code, stack or heap grew.
        let smaps = std::fs::read_to_string("/proc/self/smaps")
            .map_err(|e| format!("reading /proc/self/smaps: {e}"))?;
        let mut name = String::new();
        for line in smaps.lines() {
            if let Some(rss) = line.strip_prefix("Rss:") {
                eprintln!("{:>8} {name}", rss.trim());
            } else if line
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p.len() == 4 && p.chars().all(|c| "rwxsp-".contains(c)))
            {
                name = line.to_string();
            }
        }
    }
    Ok(format!(
        "{{\"vm_hwm_kib\":{},\"vm_rss_kib\":{},\"image_bytes\":{},\"arena_bytes\":{},\"linkage\":\"{LINKAGE}\"}}",
        status_kib("VmHWM:")?,
        status_kib("VmRSS:")?,
        img.as_slice().len(),
        model.arena_bytes()
    ))
}

fn main() {
    match run() {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("rss-probe: {e}");
            std::process::exit(1);
        }
    }
}

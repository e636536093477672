//! The firmware examples on a Cortex-M4F in QEMU (`mps2-an386`): builds `firmware-examples/`
//! (its own workspace, target thumbv7em-none-eabihf) with assets written by `edgeloop
//! firmware-assets`, runs each example through `tools/qemu-run` (its own workspace, built here),
//! and checks exit codes and
//! decoded defmt log lines. Needs `qemu-system-arm` and the thumbv7em target (scripts/test.sh
//! installs both); fails, never skips, without them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn edgeloop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgeloop"))
}

/// Builds `tools/qemu-run` (the defmt-decoding QEMU runner) and returns its binary.
fn qemu_run() -> Command {
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
    Command::new(target.join("release/edgeloop-qemu-run"))
}

fn build_firmware(assets: &Path, bin: &str) -> PathBuf {
    let fw = repo().join("firmware-examples");
    let target = fw.join("target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", bin, "--target-dir"])
        .arg(&target)
        .current_dir(&fw)
        .env("EDGELOOP_FW_ASSETS", assets)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("running cargo for firmware-examples");
    assert!(status.success(), "building firmware example {bin} failed");
    target.join("thumbv7em-none-eabihf/release").join(bin)
}

#[test]
fn classify_matches_host_runtime_bit_exact_on_cortex_m4() {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("firmware_classify");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("tmp dir");
    let assets = work.join("assets");
    let out = edgeloop()
        .args(["firmware-assets", "--count", "12", "--out"])
        .arg(&assets)
        .output()
        .expect("running edgeloop firmware-assets");
    assert!(
        out.status.success(),
        "firmware-assets failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let elf = build_firmware(&assets, "classify");
    let run = qemu_run()
        .arg(&elf)
        .arg("--workdir")
        .arg(&work)
        .output()
        .expect("running edgeloop-qemu-run (is qemu-system-arm installed?)");
    let log = String::from_utf8_lossy(&run.stdout);
    println!("{log}");
    eprintln!("{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success(),
        "classify exited with {:?}",
        run.status
    );
    assert!(
        log.contains("12 of 12 outputs bit-exact with the host runtime"),
        "log: {log}"
    );
    assert!(log.contains("classify: PASS"));
    assert!(log.contains("stack high-water mark:"));
    assert_eq!(log.matches("matches the host").count(), 12);

    // Telemetry frames written through semihosting decode on the host.
    let frames =
        std::fs::read(work.join("telemetry.bin")).expect("telemetry.bin written by the firmware");
    let decoded: Vec<_> = frames
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| {
            let mut framed = f.to_vec();
            framed.push(0);
            edgeloop_runtime::telemetry::decode_frame(&framed).expect("valid telemetry frame")
        })
        .collect();
    assert_eq!(decoded.len(), 12, "one inference record per input");
}

//! Picks the board from the target (`thumbv7em-none-eabihf`: QEMU mps2-an386, cfg
//! `board="mps2_an386"`; `thumbv6m-none-eabi`: QEMU microbit, cfg `board="microbit"`), puts its
//! memory layout on the linker search path as `memory.x`, passes the link scripts, and copies
//! the examples' model images and test vectors into OUT_DIR.
//!
//! The assets come from `$EDGELOOP_FW_ASSETS` (default: `assets/` in this folder), written by
//! the project's own tools: `edgeloop firmware-assets --out DIR` (tests/firmware_qemu.rs runs
//! it). Only the examples behind feature `assets` (default) embed them; without the feature
//! (`flashed`, which reads its model from a flash partition) nothing is copied.
use std::{env, fs, path::PathBuf};

const ASSETS: [&str; 12] = [
    "classify.img",
    "classify.inputs",
    "classify.expected",
    "classify.signed.img",
    "classify.pub",
    "generate.img",
    "generate.prompt",
    "generate.expected",
    "generate.logits",
    "mlp.img",
    "mlp.inputs",
    "mlp.expected",
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-check-cfg=cfg(board, values(\"mps2_an386\", \"microbit\"))");
    let (board, memory): (&str, &[u8]) = if target.starts_with("thumbv6m") {
        ("microbit", include_bytes!("memory-microbit.x"))
    } else {
        ("mps2_an386", include_bytes!("memory-mps2-an386.x"))
    };
    println!("cargo:rustc-cfg=board=\"{board}\"");
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");
    println!("cargo:rerun-if-changed=memory-microbit.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rustc-link-arg=-Tdefmt.x");

    if env::var_os("CARGO_FEATURE_ASSETS").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed=EDGELOOP_FW_ASSETS");
    let dir = env::var_os("EDGELOOP_FW_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("assets")
        });
    for name in ASSETS {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        if let Err(e) = fs::copy(&src, out.join(name)) {
            panic!(
                "missing firmware asset {} ({e}). Produce the assets from the repository root with\n  \
                 cargo run --release -- firmware-assets --out firmware-examples/assets\n\
                 (tests/firmware_qemu.rs does this), or point EDGELOOP_FW_ASSETS at a folder holding {ASSETS:?}",
                src.display()
            );
        }
    }
}

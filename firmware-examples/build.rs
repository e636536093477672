//! Picks the board from the target (`thumbv7em-none-eabihf`: QEMU mps2-an386, cfg
//! `board="mps2_an386"`; `thumbv6m-none-eabi`: QEMU microbit, cfg `board="microbit"`, or the
//! mps2-an386 with feature `board-mps2-an386`), puts its
//! memory layout on the linker search path as `memory.x`, passes the link scripts, and copies
//! the examples' model images and test vectors into OUT_DIR.
//!
//! The assets come from `$EDGELOOP_FW_ASSETS` (default: `assets/` in this folder), written by
//! the project's own tools: `edgeloop firmware-assets --out DIR` (tests/firmware_qemu.rs runs
//! it). Only the examples behind feature `assets` (default) embed them; without the feature
//! (`flashed`, which reads its model from a flash partition) nothing is copied.
use std::{env, fs, path::PathBuf};

const ASSETS: [&str; 15] = [
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
    "dscnn.img",
    "dscnn.inputs",
    "dscnn.expected",
];

/// The keyword-spotting example's assets (feature `kws`).
const KWS_ASSETS: [&str; 5] = [
    "kws.img",
    "kws.pcm",
    "kws.features",
    "kws.expected",
    "kws.labels",
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-check-cfg=cfg(board, values(\"mps2_an386\", \"microbit\"))");
    let mps2 = env::var_os("CARGO_FEATURE_BOARD_MPS2_AN386").is_some();
    let (board, memory): (&str, &[u8]) = if target.starts_with("thumbv6m") && !mps2 {
        ("microbit", include_bytes!("memory-microbit.x"))
    } else {
        ("mps2_an386", include_bytes!("memory-mps2-an386.x"))
    };
    println!("cargo:rustc-cfg=board=\"{board}\"");
    // ARMv6-M (Cortex-M0/M0+): no DSP kernels; the runtime's table has its 2×2-block ones.
    println!("cargo:rustc-check-cfg=cfg(armv6m)");
    if target.starts_with("thumbv6m") {
        println!("cargo:rustc-cfg=armv6m");
    }
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");
    println!("cargo:rerun-if-changed=memory-microbit.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rustc-link-arg=-Tdefmt.x");

    println!("cargo:rerun-if-env-changed=EDGELOOP_FW_ASSETS");
    let dir = env::var_os("EDGELOOP_FW_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("assets")
        });
    if env::var_os("CARGO_FEATURE_KWS").is_some() {
        copy_assets(&dir, &KWS_ASSETS, &out);
    }
    if env::var_os("CARGO_FEATURE_ASSETS").is_none() {
        return;
    }
    for (model, image) in [
        ("classify", "classify.img"),
        ("dscnn", "dscnn.img"),
        ("generate", "generate.img"),
        ("mlp", "mlp.img"),
    ] {
        write_op_set(&dir.join(image), &out.join(format!("ops_{model}.rs")));
    }
    copy_assets(&dir, &ASSETS, &out);
}

/// Copies `names` from `dir` into `out`; panics naming a missing one and how to produce it.
fn copy_assets(dir: &std::path::Path, names: &[&str], out: &std::path::Path) {
    for name in names {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        if let Err(e) = fs::copy(&src, out.join(name)) {
            let how = if name.starts_with("kws.") {
                "tests/firmware_qemu.rs (kws_front_end_and_model_bit_exact_on_cortex_m4) writes them \
                 from a DS-CNN it trains"
            } else {
                "produce them from the repository root with\n  \
                 cargo run --release -- firmware-assets --out firmware-examples/assets\n\
                 (tests/firmware_qemu.rs does this)"
            };
            panic!(
                "missing firmware asset {} ({e}): {how}; or point EDGELOOP_FW_ASSETS at a folder holding {names:?}",
                src.display()
            );
        }
    }
}

/// Writes `pub const OPS: u128 = ...;`: the op set of the image at `image`
/// (`edgeloop_runtime::image::op_set_of`: for each op the int8 or f32 variant it binds to).
fn write_op_set(image: &std::path::Path, out: &std::path::Path) {
    let Ok(bytes) = fs::read(image) else {
        // The asset loop below reports the missing file.
        return;
    };
    // The image's constants need 16-byte alignment: copy to a 16-byte aligned offset.
    let mut buf = vec![0u8; bytes.len() + 16];
    let off = buf.as_ptr().align_offset(16);
    buf[off..off + bytes.len()].copy_from_slice(&bytes);
    let model = edgeloop_runtime::Model::parse(&buf[off..off + bytes.len()])
        .unwrap_or_else(|e| panic!("{}: not a valid model image: {e:?}", image.display()));
    let set = edgeloop_runtime::image::op_set_of(&model)
        .unwrap_or_else(|e| panic!("{}: an op does not bind: {e:?}", image.display()));
    fs::write(
        out,
        format!("/// The embedded model's op set (generated by build.rs).\npub const OPS: u128 = {set:#x};\n"),
    )
    .expect("write op set");
}

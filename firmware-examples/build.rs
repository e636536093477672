//! Puts memory.x on the linker search path, passes the link scripts, and copies the model image
//! and test vectors of the `classify` example into OUT_DIR.
//!
//! The assets come from `$EDGELOOP_FW_ASSETS` (default: `assets/` in this folder), produced by
//! the project's own tools (scripts/test.sh runs the runtime's `firmware_assets` example).
use std::{env, fs, path::PathBuf};

const ASSETS: [&str; 3] = ["classify.img", "classify.inputs", "classify.expected"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rustc-link-arg=-Tdefmt.x");

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
                "missing firmware asset {} ({e}). Produce it from the repository root with\n  \
                 cargo run -p edgeloop-runtime --features std --example firmware_assets -- firmware-examples/assets\n\
                 (scripts/test.sh does this), or point EDGELOOP_FW_ASSETS at a folder holding {ASSETS:?}",
                src.display()
            );
        }
    }
}

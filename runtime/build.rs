//! Emits `cfg(edgeloop_dsp)` for Cortex-M targets with the DSP extension (`thumbv7em-*`: Cortex-M4
//! and M7). On stable Rust, `cfg(target_feature = "dsp")` is never set for these targets and the
//! `core::arch::arm` DSP intrinsics are unstable, so the runtime writes the few DSP instructions it
//! needs with `asm!` behind this cfg.
//!
//! Emits `cfg(edgeloop_armv6m)` for Arm cores without a 32×32→64-bit multiply (`thumbv6m-*`:
//! Cortex-M0/M0+/M1; `thumbv8m.base-*`: Cortex-M23), where [`quant::requantize`] takes the
//! 32-bit route (an `i64` product there is a library call).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(edgeloop_dsp)");
    println!("cargo::rustc-check-cfg=cfg(edgeloop_armv6m)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=edgeloop_dsp");
    }
    if target.starts_with("thumbv6m-") || target.starts_with("thumbv8m.base-") {
        println!("cargo::rustc-cfg=edgeloop_armv6m");
    }
}

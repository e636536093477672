//! Memory footprint of the mlp image: only its ops linked, one invoke (see `footprint.rs`).
#![no_std]
#![no_main]

use edgeloop_firmware_examples::assets;

edgeloop_firmware_examples::footprint_main!("mlp", assets::mlp::image(), "ops_mlp.rs");

//! Memory footprint of the tiny-gpt image: only its ops linked, one invoke (see `footprint.rs`).
#![no_std]
#![no_main]

use edgeloop_firmware_examples::assets;

edgeloop_firmware_examples::footprint_main!(
    "tiny-gpt",
    assets::generate::image(),
    "ops_generate.rs"
);

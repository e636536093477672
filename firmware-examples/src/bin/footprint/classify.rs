//! Memory footprint of the intent-classifier image: only its ops linked, one invoke (see `footprint.rs`).
#![no_std]
#![no_main]

use edgeloop_firmware_examples::assets;

edgeloop_firmware_examples::footprint_main!(
    "intent-classifier",
    assets::classify::image(),
    "ops_classify.rs"
);

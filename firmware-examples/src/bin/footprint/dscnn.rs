//! Memory footprint of the ds-cnn image: only its ops linked, one invoke (see `footprint.rs`).
#![no_std]
#![no_main]

use edgeloop_firmware_examples::assets;

edgeloop_firmware_examples::footprint_main!("ds-cnn", assets::dscnn::image(), "ops_dscnn.rs");

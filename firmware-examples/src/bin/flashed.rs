//! The model image flashed next to the firmware: reads a model image from the flash partition
//! at `_edgeloop_model_partition` (0x0020_0000 on the mps2-an386) and test vectors — inputs and
//! the host runtime's outputs, plus the telemetry device id and boot number — from the one at
//! `_edgeloop_vectors_partition` (0x0030_0000), then runs them as `classify` does: one log line
//! and one telemetry record per prediction (streamed to `telemetry.bin` on the host), success
//! only if every output tensor equals the host's byte for byte.
//!
//! Built once, without embedded assets (`--no-default-features`); `edgeloop flash --qemu`
//! writes the partitions and QEMU's loader device places them (`-device loader,file=...,addr=...`).
//! The partition bytes are untrusted: a missing, malformed or corrupted partition, or an image
//! `Model::parse` refuses, is logged and the firmware exits with failure.
#![no_std]
#![no_main]

use edgeloop_firmware_examples::partition::{self, PartitionError, Region};
use edgeloop_firmware_examples::{board, classify, stack};
use edgeloop_runtime::Model;

fn read(region: Region, kind: [u8; 4], what: &str) -> Option<&'static [u8]> {
    match partition::payload(region.bytes, kind) {
        Ok(p) => Some(p),
        Err(e) => {
            match e {
                PartitionError::NotFlashed { .. } => {
                    defmt::error!("no {} flashed at {=usize:#x} ({})", what, region.address, e)
                }
                _ => defmt::error!(
                    "{} partition at {=usize:#x} refused: {}",
                    what,
                    region.address,
                    e
                ),
            }
            None
        }
    }
}

fn run() -> Result<bool, edgeloop_runtime::Error> {
    let Some(mut ticks) = board::Ticks::start() else {
        defmt::error!("tick counter already taken");
        return Ok(false);
    };
    let (model_region, vectors_region) = (partition::model_region(), partition::vectors_region());
    let Some(image) = read(model_region, partition::KIND_IMAGE, "model image") else {
        return Ok(false);
    };
    let t0 = ticks.now();
    let model = match Model::parse(image) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("image refused: {}", e);
            return Ok(false);
        }
    };
    defmt::info!(
        "image at {=usize:#x} parsed in {} ticks",
        model_region.address,
        ticks.since(t0)
    );
    let Some(payload) = read(vectors_region, partition::KIND_VECTORS, "test vectors") else {
        return Ok(false);
    };
    let vectors = match partition::vectors(payload) {
        Ok(v) => v,
        Err(e) => {
            defmt::error!("test vectors refused: {}", e);
            return Ok(false);
        }
    };
    let (in_len, out_len) = (
        model.tensor(model.input(0)?)?.len as usize,
        model.tensor(model.output(0)?)?.len as usize,
    );
    if (vectors.input_len, vectors.output_len) != (in_len, out_len) {
        defmt::error!(
            "test vectors are for {}-byte inputs and {}-byte outputs; the model's are {} and {}",
            vectors.input_len,
            vectors.output_len,
            in_len,
            out_len
        );
        return Ok(false);
    }
    let tests = classify::TestSet {
        inputs: vectors.inputs,
        expected: vectors.expected,
        device: vectors.device,
        boot: vectors.boot,
    };
    classify::run::<{ edgeloop_runtime::image::ALL_OPS }>(&model, image.len(), &tests, &mut ticks)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    stack::paint();
    let ok = match run() {
        Ok(ok) => ok,
        Err(e) => {
            defmt::error!("runtime error: {}", e);
            false
        }
    };
    defmt::info!("stack high-water mark: {} bytes", stack::high_water());
    defmt::info!("{}", if ok { "flashed: PASS" } else { "flashed: FAIL" });
    board::exit(ok)
}

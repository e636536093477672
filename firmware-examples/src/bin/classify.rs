//! The intent classifier on the device: runs every embedded test input through the model image,
//! logs each prediction, records telemetry (written to `telemetry.bin` on the host through
//! semihosting), and exits with success only if every output tensor equals, byte for byte, the
//! host runtime's output for the same input. Builds for the mps2-an386 (Cortex-M4F: the demo's
//! intent classifier, token ids of the demo's test split) and the microbit (Cortex-M0, small MLP).
#![no_std]
#![no_main]

use edgeloop_firmware_examples::{assets, board, classify, stack};
use edgeloop_runtime::Model;

// `OPS`: the embedded image's op set (build.rs reads it from the image), so only the kernels this
// model needs are linked, as a TFLite Micro op resolver would: the whole runtime does not fit the
// microbit's 128 KiB firmware region next to the model.
#[cfg(board = "mps2_an386")]
include!(concat!(env!("OUT_DIR"), "/ops_classify.rs"));
#[cfg(board = "microbit")]
include!(concat!(env!("OUT_DIR"), "/ops_mlp.rs"));

fn run() -> Result<bool, edgeloop_runtime::Error> {
    let Some(mut ticks) = board::Ticks::start() else {
        defmt::error!("tick counter already taken");
        return Ok(false);
    };
    let t0 = ticks.now();
    let model = Model::parse_with_ops::<OPS>(assets::classify::image())?;
    defmt::info!("parsed in {} ticks", ticks.since(t0));
    let tests = classify::TestSet {
        inputs: assets::classify::INPUTS,
        expected: assets::classify::EXPECTED,
        device: classify::DEFAULT_DEVICE,
        boot: 0,
    };
    classify::run::<OPS>(&model, assets::classify::image().len(), &tests, &mut ticks)
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
    defmt::info!(
        "{}",
        if ok {
            "classify: PASS"
        } else {
            "classify: FAIL"
        }
    );
    board::exit(ok)
}

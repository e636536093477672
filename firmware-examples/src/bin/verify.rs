//! Signature check before running: parses the signed classifier image, verifies its Ed25519
//! signature against the public key compiled into the firmware, and only then runs the
//! classifier (as `classify` does). A tampered image — even one whose CRC was recomputed — is
//! refused with an error line and a failing exit status. Then downgrade protection: an image
//! whose model version is lower than the installed one is refused
//! (`edgeloop_runtime::image::upgrade::check_upgrade`).
#![no_std]
#![no_main]

use edgeloop_firmware_examples::{assets, board, classify, stack};
use edgeloop_runtime::image::upgrade::check_upgrade;
use edgeloop_runtime::Model;

/// The installed-version record: the model version this device ran before the image was
/// offered, as an update process keeps it in flash the image cannot overwrite (tag `EDIV`,
/// little-endian version). Here 1, the version `edgeloop firmware-assets` gives the classify
/// image, so the example re-installs the same version; raising it refuses the image.
#[repr(C)]
struct InstalledVersion {
    tag: [u8; 4],
    version: u32,
}

#[used]
static INSTALLED: InstalledVersion = InstalledVersion {
    tag: *b"EDIV",
    version: 1,
};

fn run() -> Result<bool, edgeloop_runtime::Error> {
    let Some(mut ticks) = board::Ticks::start() else {
        defmt::error!("tick counter already taken");
        return Ok(false);
    };
    let image = assets::signed::image();
    let model = match Model::parse(image) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("image refused: {}", e);
            return Ok(false);
        }
    };
    let t0 = ticks.now();
    let checked = model.verify_signature(&assets::signed::PUBLIC_KEY);
    let verify_ticks = ticks.since(t0);
    if let Err(e) = checked {
        defmt::error!("signature check failed: {} — refusing to run the model", e);
        return Ok(false);
    }
    defmt::info!(
        "signature OK ({} signed bytes, verified in {} ticks)",
        model.image_len(),
        verify_ticks
    );
    // Read through `black_box`, as if from flash: the compiler must not fold the record in.
    let installed = core::hint::black_box(&INSTALLED).version;
    match check_upgrade(installed, &model) {
        Ok(u) => defmt::info!("upgrade check OK: {}", u),
        Err(e) => {
            defmt::error!("upgrade refused: {} — refusing to run the model", e);
            return Ok(false);
        }
    }
    let tests = classify::TestSet {
        inputs: assets::classify::INPUTS,
        expected: assets::classify::EXPECTED,
        device: classify::DEFAULT_DEVICE,
        boot: 0,
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
    defmt::info!("{}", if ok { "verify: PASS" } else { "verify: FAIL" });
    board::exit(ok)
}

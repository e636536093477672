//! Demo stage: the signed v1 image on the emulated Cortex-M4F (QEMU `mps2-an386`), when QEMU
//! and the firmware toolchain are installed. The `flashed` firmware (built once) takes the image
//! and the lab test inputs from flash partitions, checks every output tensor against the host
//! runtime byte for byte, and streams its telemetry into the Parquet store — the same path as
//! `edgeloop flash --qemu` ([`crate::qemu`]). Without QEMU the stage is skipped and says why.

use anyhow::Context;
use edgeloop_trainer::train::jobs;
use serde::{Deserialize, Serialize};

use super::data::Data;
use super::deploy::{encode_records, Deployment};
use super::train::relative;
use super::Ctx;
use crate::qemu::{self, Inputs, QemuOptions};

/// Lab test inputs run on the device.
const INPUTS: usize = 24;

/// What the stage reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CortexM4Summary {
    /// Whether the image ran in QEMU.
    pub ran: bool,
    /// Why not, when it did not.
    pub skipped: Option<String>,
    /// Inputs run.
    pub inputs: usize,
    /// Output tensors byte-for-byte equal to the host runtime's.
    pub bit_exact: usize,
    /// Device top-1 (from its telemetry) equal to the host's.
    pub top1_agree: usize,
    /// Telemetry frames ingested from the firmware's stream.
    pub frames: u64,
    /// Corrupt frames.
    pub corrupt_frames: u64,
    /// Stack high-water mark (painted stack), bytes.
    pub stack_high_water_bytes: Option<u64>,
    /// Arena bytes (from the image).
    pub arena_bytes: usize,
    /// Seconds in QEMU.
    pub qemu_seconds: f64,
    /// The store the device's telemetry went to, relative to the run folder.
    pub store: Option<String>,
}

/// Runs the stage.
pub fn run(ctx: &Ctx, data: &Data, v1: &Deployment) -> anyhow::Result<CortexM4Summary> {
    let mut s = CortexM4Summary {
        ran: false,
        skipped: None,
        inputs: 0,
        bit_exact: 0,
        top1_agree: 0,
        frames: 0,
        corrupt_frames: 0,
        stack_high_water_bytes: None,
        arena_bytes: v1.arena_bytes,
        qemu_seconds: 0.0,
        store: None,
    };
    let opts = QemuOptions {
        workdir: Some(ctx.dir("device/qemu")?),
        ..QemuOptions::default()
    };
    // Missing tools are a skip with the reason, not a failure of the demo.
    let ready = qemu::check_qemu()
        .and_then(|_| qemu::firmware_elf(&opts))
        .and_then(|_| qemu::qemu_run_bin(&opts));
    if let Err(e) = ready {
        let why = format!("{e:#}");
        crate::say!("skipped: {why}");
        s.skipped = Some(why);
        return Ok(s);
    }
    let test = jobs::read_texts(&data.test)?;
    let n = test.len().min(INPUTS);
    let (rows, _) = encode_records(&data.tokenizer, &test[..n], &v1.labels, v1.max_len)?;
    let store = ctx.out.join("telemetry/cortex-m4");
    let image = ctx.out.join(&v1.image);
    let r = qemu::run_in_qemu(&image, &Inputs::TokenIds(rows), Some(&store), &opts)
        .context("running v1 on the emulated Cortex-M4")?;
    s.ran = true;
    s.inputs = r.inputs;
    s.bit_exact = r.bit_exact;
    s.top1_agree = r.top1_agree;
    s.frames = r.telemetry.frames;
    s.corrupt_frames = r.telemetry.corrupt;
    s.stack_high_water_bytes = r.stack_high_water_bytes;
    s.qemu_seconds = r.qemu_seconds;
    s.store = Some(relative(&ctx.out, &store));
    crate::say!(
        "Cortex-M4 (QEMU mps2-an386): {} of {} outputs bit-exact with the host runtime, top-1 agrees on {}; \
         {} telemetry frames ({} corrupt) into {}; stack high-water {} B, arena {} B; {:.1} s in QEMU",
        r.bit_exact,
        r.inputs,
        r.top1_agree,
        r.telemetry.frames,
        r.telemetry.corrupt,
        store.display(),
        r.stack_high_water_bytes
            .map(|b| b.to_string())
            .unwrap_or_else(|| "?".into()),
        v1.arena_bytes,
        r.qemu_seconds
    );
    anyhow::ensure!(
        r.passed && r.bit_exact == r.inputs,
        "the Cortex-M4 outputs differ from the host runtime's ({} of {} bit-exact; firmware errors: {:?})",
        r.bit_exact,
        r.inputs,
        r.firmware_errors
    );
    Ok(s)
}

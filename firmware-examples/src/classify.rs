//! The classifier run shared by the `classify`, `verify` and `flashed` examples: every test input
//! through the model, one log line and one telemetry record per prediction, telemetry frames
//! streamed to `telemetry.bin` on the host as they are recorded, and success only if every output
//! tensor equals the host runtime's byte for byte.
//!
//! Inputs and outputs are moved as raw tensor bytes, so any element type works for the
//! comparison: int8 (the DS-CNN, the MLP) or i32 token ids in and f32 logits out (the demo's
//! intent classifier).

use edgeloop_runtime::image::DType;
use edgeloop_runtime::ops::fmath;
use edgeloop_runtime::telemetry::{InferenceSummary, InputSummary, ModelRef, Record, Recorder};
use edgeloop_runtime::{Interpreter, Model};

use crate::{arena, board};

/// Telemetry buffer bytes (the recorder's ring and the drained frames, each).
#[cfg(board = "mps2_an386")]
const TELEMETRY_BYTES: usize = 4096;
#[cfg(board = "microbit")]
const TELEMETRY_BYTES: usize = 512;

/// Device id the examples with embedded test vectors report in telemetry.
pub const DEFAULT_DEVICE: u64 = 0xED6E_100F;

/// FNV-1a of the model name: the model id used in telemetry.
pub fn model_id(name: &str) -> u32 {
    name.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Test inputs, the host's outputs for them, and who the device is in telemetry.
#[derive(Debug, Clone, Copy)]
pub struct TestSet<'a> {
    /// Input tensors (raw bytes, the model's input 0) back to back.
    pub inputs: &'a [u8],
    /// The host runtime's output tensors (raw bytes, output 0) back to back.
    pub expected: &'a [u8],
    /// Telemetry device id.
    pub device: u64,
    /// Telemetry boot number.
    pub boot: u32,
}

/// Top-1 class and its confidence (Q16 probability) from an output tensor.
fn top1<const OPS: u128>(
    it: &Interpreter<'_, '_, OPS>,
) -> Result<(usize, u16), edgeloop_runtime::Error> {
    let info = it.output_info(0)?;
    let argmax = |n: usize, at: &dyn Fn(usize) -> f32| {
        let mut best = 0;
        for i in 1..n {
            if at(i) > at(best) {
                best = i;
            }
        }
        best
    };
    // Softmax probability of the top logit: 1 / sum(exp(l_i - l_max)).
    let softmax_top = |n: usize, at: &dyn Fn(usize) -> f32, best: usize| {
        let m = at(best);
        let sum: f32 = (0..n).map(|i| fmath::exp(at(i) - m)).sum();
        (65535.0 / sum + 0.5) as u16
    };
    Ok(match info.dtype {
        DType::I8 => {
            let out = it.output_i8(0)?;
            let best = argmax(out.len(), &|i| f32::from(out[i]));
            // An int8 softmax output (scale 1/256, zero point -128) already is a probability.
            let is_softmax = info.zero_point == -128 && info.scale == 1.0 / 256.0;
            let conf = if is_softmax {
                edgeloop_runtime::telemetry::confidence_q16_from_int8_softmax(out[best])
            } else {
                let deq = |i: usize| (i32::from(out[i]) - info.zero_point) as f32 * info.scale;
                softmax_top(out.len(), &deq, best)
            };
            (best, conf)
        }
        DType::F32 => {
            let out = it.output_f32(0)?;
            let best = argmax(out.len(), &|i| out[i]);
            (best, softmax_top(out.len(), &|i| out[i], best))
        }
        _ => {
            let out = it.output_i32(0)?;
            let best = argmax(out.len(), &|i| out[i] as f32);
            (best, 0)
        }
    })
}

/// Summary of input 0 for telemetry (integer inputs; an f32 input gets an empty summary).
fn input_summary<const OPS: u128>(
    it: &mut Interpreter<'_, '_, OPS>,
) -> Result<InputSummary, edgeloop_runtime::Error> {
    Ok(match it.input_info(0)?.dtype {
        DType::I8 => InputSummary::from_i8(it.input_i8(0)?),
        DType::I32 => InputSummary::from_i32(it.input_i32(0)?),
        _ => InputSummary::from_i32(&[]),
    })
}

/// What [`run_probed`] calls around each inference: the `classify` firmware puts
/// instruction-count marks there (see `bench`). [`Probe::before`], [`Probe::op`] and
/// [`Probe::after`] run right around the `invoke`, inside the inference's latency ticks (keep
/// them to a marker call, a few instructions); [`Probe::done`] runs after the latency is taken
/// (for logging).
pub trait Probe {
    /// Whether input `k` runs op by op (`Interpreter::invoke_with_hook`, [`Probe::op`] after
    /// every op) instead of in one `invoke`.
    fn per_op(&self, _k: usize) -> bool {
        false
    }
    /// Right before input `k`'s inference.
    fn before(&mut self, _k: usize) {}
    /// Right after op `op` of input `k`, when [`Probe::per_op`] said so.
    fn op(&mut self, _k: usize, _op: usize) {}
    /// Right after input `k`'s inference.
    fn after(&mut self, _k: usize) {}
    /// After input `k`'s latency is taken and its output compared.
    fn done(&mut self, _k: usize) {}
}

/// The probe that does nothing (what [`run`] uses).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProbe;

impl Probe for NoProbe {}

/// Runs the test inputs through `model` (parsed from an image of `image_len` bytes) with the
/// kernels of op set `OPS` linked (`edgeloop_runtime::image::ALL_OPS` for any image; an
/// embedded image's own set, computed by `build.rs`, links only what it needs).
/// `Ok(true)` when every output equals the host's.
pub fn run<const OPS: u128>(
    model: &Model<'_>,
    image_len: usize,
    tests: &TestSet<'_>,
    ticks: &mut board::Ticks,
) -> Result<bool, edgeloop_runtime::Error> {
    run_probed::<OPS, _>(model, image_len, tests, ticks, &mut NoProbe)
}

/// [`run`], with `probe` called around every inference.
pub fn run_probed<const OPS: u128, P: Probe>(
    model: &Model<'_>,
    image_len: usize,
    tests: &TestSet<'_>,
    ticks: &mut board::Ticks,
    probe: &mut P,
) -> Result<bool, edgeloop_runtime::Error> {
    defmt::info!(
        "model '{}' v{}: {} ops, {} tensors, image {} bytes, arena {} bytes",
        model.name(),
        model.model_version(),
        model.num_ops(),
        model.num_tensors(),
        image_len,
        model.arena_bytes()
    );
    let Some(arena) = arena::take() else {
        defmt::error!("arena already taken");
        return Ok(false);
    };
    let mut it = Interpreter::<'_, '_, OPS>::new_with_ops(model, arena)?;
    let in_len = it.input_bytes(0)?.len();
    let out_len = it.output_bytes(0)?.len();
    let (inputs, expected) = (tests.inputs, tests.expected);
    if in_len == 0 || inputs.len() % in_len != 0 {
        defmt::error!(
            "test inputs hold {} bytes, not a multiple of the model's input tensor ({} bytes)",
            inputs.len(),
            in_len
        );
        return Ok(false);
    }
    let n = inputs.len() / in_len;
    if expected.len() != n * out_len {
        defmt::error!(
            "expected outputs hold {} bytes, want {} ({} outputs of {} bytes)",
            expected.len(),
            n * out_len,
            n,
            out_len
        );
        return Ok(false);
    }

    let mref = ModelRef {
        id: model_id(model.name()),
        version: model.model_version(),
    };
    let mut recorder: Recorder<TELEMETRY_BYTES> = Recorder::new(tests.device, tests.boot, mref);
    let mut sink = board::HostFile::create("telemetry.bin\0");
    if sink.is_none() {
        defmt::warn!("could not create telemetry.bin on the host");
    }
    let mut frames = [0u8; TELEMETRY_BYTES];
    let mut frame_bytes = 0usize;
    let mut matched = 0usize;
    for (k, (x, want)) in inputs
        .chunks_exact(in_len)
        .zip(expected.chunks_exact(out_len))
        .enumerate()
    {
        it.input_bytes(0)?.copy_from_slice(x);
        let summary = input_summary(&mut it)?;
        let start = ticks.now();
        probe.before(k);
        if probe.per_op(k) {
            it.invoke_with_hook(|i, _| probe.op(k, i))?;
        } else {
            it.invoke()?;
        }
        probe.after(k);
        let latency = ticks.since(start);
        let equal = it.output_bytes(0)? == want;
        probe.done(k);
        let (class, confidence_q16) = top1(&it)?;
        matched += usize::from(equal);
        defmt::info!(
            "input {}: class {} (confidence {}/65535), {} ticks, {}",
            k,
            class,
            confidence_q16,
            latency,
            if equal {
                "matches the host"
            } else {
                "DIFFERS from the host"
            }
        );
        let record = Record::Inference(InferenceSummary {
            class: class as u16,
            confidence_q16,
            latency_ticks: latency,
            input: summary,
        });
        if recorder.record(u64::from(ticks.now()), record).is_err() {
            defmt::warn!("telemetry record refused");
        }
        // Stream: hand the new frames to the host right away.
        match recorder.drain(&mut frames) {
            Ok(len) => {
                frame_bytes += len;
                if let Some(f) = sink.as_mut() {
                    if !f.write(&frames[..len]) {
                        defmt::warn!("telemetry write to the host failed");
                    }
                }
            }
            Err(e) => defmt::warn!("telemetry drain failed: {}", e),
        }
    }
    drop(sink);
    let stats = recorder.stats();
    defmt::info!(
        "telemetry: {} records, {} dropped, {} bytes of frames",
        stats.recorded,
        stats.dropped,
        frame_bytes
    );
    defmt::info!(
        "{} of {} outputs bit-exact with the host runtime",
        matched,
        n
    );
    Ok(matched == n)
}

//! The classifier run shared by the `classify` and `verify` examples: every embedded test input
//! through the model, one log line and one telemetry record per prediction, telemetry frames
//! written to `telemetry.bin` on the host, and success only if every output tensor equals the
//! host runtime's byte for byte.

use edgeloop_runtime::telemetry::{InferenceSummary, InputSummary, ModelRef, Record, Recorder};
use edgeloop_runtime::{Interpreter, Model};

use crate::{arena, assets, board};

/// Telemetry buffer bytes (the recorder's ring and the drained frames, each).
#[cfg(board = "mps2_an386")]
const TELEMETRY_BYTES: usize = 4096;
#[cfg(board = "microbit")]
const TELEMETRY_BYTES: usize = 512;

/// FNV-1a of the model name: the model id used in telemetry.
pub fn model_id(name: &str) -> u32 {
    name.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Runs the embedded test inputs through `model` (parsed from `image`). `Ok(true)` when every
/// output equals the host's.
pub fn run(
    model: &Model<'_>,
    image_len: usize,
    ticks: &mut board::Ticks,
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
    let mut it = Interpreter::new(model, arena)?;
    let in_len = it.input_i8(0)?.len();
    let out_len = it.output_i8(0)?.len();
    let (inputs, expected) = (assets::classify::INPUTS, assets::classify::EXPECTED);
    if in_len == 0 || inputs.len() % in_len != 0 {
        defmt::error!(
            "input file holds {} bytes, not a multiple of the input length {}",
            inputs.len(),
            in_len
        );
        return Ok(false);
    }
    let n = inputs.len() / in_len;
    if expected.len() != n * out_len {
        defmt::error!(
            "expected-output file holds {} bytes, want {}",
            expected.len(),
            n * out_len
        );
        return Ok(false);
    }

    let mref = ModelRef {
        id: model_id(model.name()),
        version: model.model_version(),
    };
    let mut recorder: Recorder<TELEMETRY_BYTES> = Recorder::new(0xED6E_100F, 0, mref);
    let mut matched = 0usize;
    for (k, (x, want)) in inputs
        .chunks_exact(in_len)
        .zip(expected.chunks_exact(out_len))
        .enumerate()
    {
        let input = it.input_i8(0)?;
        for (d, &s) in input.iter_mut().zip(x) {
            *d = s as i8;
        }
        let summary = InputSummary::from_i8(input);
        let start = ticks.now();
        it.invoke()?;
        let latency = ticks.since(start);
        let out = it.output_i8(0)?;
        let (class, top) =
            out.iter().enumerate().fold(
                (0usize, i8::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            );
        let equal = out.iter().zip(want).all(|(&a, &b)| a as u8 == b);
        matched += usize::from(equal);
        defmt::info!(
            "input {}: class {} (score {}), {} ticks, {}",
            k,
            class,
            top,
            latency,
            if equal {
                "matches the host"
            } else {
                "DIFFERS from the host"
            }
        );
        let record = Record::Inference(InferenceSummary {
            class: class as u16,
            confidence_q16: edgeloop_runtime::telemetry::confidence_q16_from_int8_softmax(top),
            latency_ticks: latency,
            input: summary,
        });
        if recorder.record(u64::from(ticks.now()), record).is_err() {
            defmt::warn!("telemetry record refused");
        }
    }
    let stats = recorder.stats();
    let mut frames = [0u8; TELEMETRY_BYTES];
    match recorder.drain(&mut frames) {
        Ok(len) => {
            if !board::write_host_file("telemetry.bin\0", &frames[..len]) {
                defmt::warn!("could not write telemetry.bin on the host");
            }
            defmt::info!(
                "telemetry: {} records, {} dropped, {} bytes of frames",
                stats.recorded,
                stats.dropped,
                len
            );
        }
        Err(e) => defmt::warn!("telemetry drain failed: {}", e),
    }
    defmt::info!(
        "{} of {} outputs bit-exact with the host runtime",
        matched,
        n
    );
    Ok(matched == n)
}

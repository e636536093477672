//! The intent classifier on the device: runs every embedded test input through the model image,
//! logs each prediction, records telemetry (written to `telemetry.bin` on the host through
//! semihosting), and exits with success only if every output tensor equals, byte for byte, the
//! host runtime's output for the same input.
#![no_std]
#![no_main]

use edgeloop_firmware_examples::{arena, assets, board, stack};
use edgeloop_runtime::telemetry::{InferenceSummary, InputSummary, ModelRef, Record, Recorder};
use edgeloop_runtime::{Interpreter, Model};

/// FNV-1a of the model name: the model id used in telemetry.
fn model_id(name: &str) -> u32 {
    name.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn run() -> Result<bool, edgeloop_runtime::Error> {
    let Some(mut ticks) = board::Ticks::start() else {
        defmt::error!("core peripherals already taken");
        return Ok(false);
    };
    let t0 = ticks.now();
    let model = Model::parse(assets::image())?;
    let parse_ticks = ticks.since(t0);
    defmt::info!(
        "model '{}' v{}: {} ops, {} tensors, image {} bytes, arena {} bytes (parsed in {} ticks)",
        model.name(),
        model.model_version(),
        model.num_ops(),
        model.num_tensors(),
        assets::image().len(),
        model.arena_bytes(),
        parse_ticks
    );
    let Some(arena) = arena::take() else {
        defmt::error!("arena already taken");
        return Ok(false);
    };
    let mut it = Interpreter::new(&model, arena)?;
    let in_len = it.input_i8(0)?.len();
    let out_len = it.output_i8(0)?.len();
    if in_len == 0 || assets::INPUTS.len() % in_len != 0 {
        defmt::error!(
            "input file holds {} bytes, not a multiple of the input length {}",
            assets::INPUTS.len(),
            in_len
        );
        return Ok(false);
    }
    let n = assets::INPUTS.len() / in_len;
    if assets::EXPECTED.len() != n * out_len {
        defmt::error!(
            "expected-output file holds {} bytes, want {}",
            assets::EXPECTED.len(),
            n * out_len
        );
        return Ok(false);
    }

    let mref = ModelRef {
        id: model_id(model.name()),
        version: model.model_version(),
    };
    let mut recorder: Recorder<4096> = Recorder::new(0xED6E_100F, 0, mref);
    let mut matched = 0usize;
    for (k, (x, want)) in assets::INPUTS
        .chunks_exact(in_len)
        .zip(assets::EXPECTED.chunks_exact(out_len))
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
    let mut frames = [0u8; 4096];
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

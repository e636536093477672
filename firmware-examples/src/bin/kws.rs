//! Keyword spotting on the device, raw audio to class: every embedded 16 kHz int16 clip goes
//! through the runtime's integer log-mel front end (`edgeloop_runtime::audio::log_mel`) and the
//! trained DS-CNN's int8 image. The features must equal the host's byte for byte, and so must
//! the model's outputs; each clip's prediction and true label are logged. With
//! `tools/insn-count.c` loaded, the executed instructions of the front end and of the model are
//! measured per clip (regions `kws front-end` and `kws model`, see `bench`), and per op for the
//! first clip (regions `kws op <i> <op>`).
#![no_std]
#![no_main]

use edgeloop_firmware_examples::bench::{macs, mark, op_name};
use edgeloop_firmware_examples::{arena, board, kws, stack};
use edgeloop_runtime::audio::{self as fe, CLIP_FEATURES, CLIP_SAMPLES};
use edgeloop_runtime::{Interpreter, Model};

struct Buffers {
    clip: [i16; CLIP_SAMPLES],
    features: [i8; CLIP_FEATURES],
    scratch: fe::Scratch,
}

static mut BUFFERS: Buffers = Buffers {
    clip: [0; CLIP_SAMPLES],
    features: [0; CLIP_FEATURES],
    scratch: fe::Scratch::new(),
};

/// Ops whose instructions are counted one by one (the DS-CNN has about a dozen).
const MAX_OPS: usize = 32;

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn run() -> Result<bool, edgeloop_runtime::Error> {
    let model = Model::parse(kws::image())?;
    let model_macs: u64 = model
        .ops()
        .map(|r| r.map(|r| macs(&model, &r, 0)).unwrap_or(0))
        .sum();
    let Some(arena) = arena::take() else {
        defmt::error!("arena already taken");
        return Ok(false);
    };
    let mut it = Interpreter::new(&model, arena)?;
    // SAFETY: the only reference to BUFFERS, taken once in this single-threaded program.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let out_len = it.output_bytes(0)?.len();
    let n = kws::LABELS.len();
    if kws::PCM.len() != n * 2 * CLIP_SAMPLES
        || kws::FEATURES.len() != n * CLIP_FEATURES
        || kws::EXPECTED.len() != n * out_len
        || it.input_bytes(0)?.len() != CLIP_FEATURES
    {
        defmt::error!(
            "asset sizes disagree: {} labels, {} PCM bytes, {} feature bytes, {} output bytes ({} per clip)",
            n,
            kws::PCM.len(),
            kws::FEATURES.len(),
            kws::EXPECTED.len(),
            out_len
        );
        return Ok(false);
    }
    defmt::info!(
        "model '{}': {} clips, {} MACs per inference, arena {} bytes",
        model.name(),
        n,
        model_macs,
        model.arena_bytes()
    );
    let (mut features_exact, mut outputs_exact, mut correct) = (0usize, 0usize, 0usize);
    for k in 0..n {
        let pcm = &kws::PCM[k * 2 * CLIP_SAMPLES..(k + 1) * 2 * CLIP_SAMPLES];
        for (s, b) in buf.clip.iter_mut().zip(pcm.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        let m0 = mark();
        fe::log_mel(&buf.clip, &mut buf.scratch, &mut buf.features)?;
        let m1 = mark();
        let want = &kws::FEATURES[k * CLIP_FEATURES..(k + 1) * CLIP_FEATURES];
        let f_ok = buf.features.iter().zip(want).all(|(a, b)| *a as u8 == *b);
        it.input_i8(0)?.copy_from_slice(&buf.features);
        // One mark after every op (the first clip's per-op counts are logged).
        let mut marks = [0u32; MAX_OPS + 1];
        marks[0] = mark();
        it.invoke_with_hook(|i, _| {
            if i < MAX_OPS {
                marks[i + 1] = mark();
            }
        })?;
        let m3 = mark();
        let m2 = marks[0];
        if k == 0 {
            for (i, rec) in model.ops().enumerate().take(MAX_OPS) {
                let rec = rec?;
                defmt::info!(
                    "region kws op {} {}: marks {} {}, {} MACs",
                    i,
                    op_name(rec.code),
                    marks[i],
                    marks[i + 1],
                    macs(&model, &rec, 0)
                );
            }
        }
        let o_ok = it.output_bytes(0)? == &kws::EXPECTED[k * out_len..(k + 1) * out_len];
        let class = argmax(it.output_f32(0)?);
        let label = kws::LABELS[k] as usize;
        features_exact += f_ok as usize;
        outputs_exact += o_ok as usize;
        correct += (class == label) as usize;
        defmt::info!("region kws front-end: marks {} {}, 0 MACs", m0, m1);
        defmt::info!("region kws model: marks {} {}, {} MACs", m2, m3, model_macs);
        defmt::info!(
            "clip {}: class {} (label {}), features {}, outputs {}",
            k,
            class,
            label,
            if f_ok { "bit-exact" } else { "DIFFER" },
            if o_ok { "bit-exact" } else { "DIFFER" }
        );
    }
    defmt::info!(
        "{} of {} feature maps and {} of {} outputs bit-exact with the host; {} of {} clips classified correctly",
        features_exact,
        n,
        outputs_exact,
        n,
        correct,
        n
    );
    Ok(n > 0 && features_exact == n && outputs_exact == n)
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
    defmt::info!("{}", if ok { "kws: PASS" } else { "kws: FAIL" });
    board::exit(ok)
}

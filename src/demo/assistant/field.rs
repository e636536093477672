//! The assistant in the field: each simulated device answers its share of the field prompts with
//! the signed image, four sampled answers per prompt (temperature 1, top-k 8); the user rates each
//! answer (the demo's oracle, [`super::judge`]: thumbs up when it names the right action, device,
//! room and value). Every answer and
//! rating goes through the device's fixed-capacity telemetry recorder — the rating with the
//! opt-in sample `prompt ids, -1, response ids` — and is drained as COBS frames into the
//! assistant's Parquet store. One wrong answer in [`CORRECT_EVERY`] is also corrected: the user
//! types the right answer, recorded as a second feedback record on the same inference with the
//! sample `prompt ids, -2, corrected ids` (prompt, response and correction rarely fit one
//! 32-value sample together; `edgeloop_monitor::preferences` joins the two records).

use std::path::PathBuf;

use edgeloop_monitor::ingest::now_ms;
use edgeloop_runtime::telemetry::{
    Feedback, InferenceSummary, InputSummary, ModelRef, Record, Recorder, Sample, Thumbs,
    CORRECTION_SEPARATOR, RESPONSE_SEPARATOR, SAMPLE_MAX,
};
use edgeloop_trainer::tokenizer::Tokenizer;

use super::generate::{AssistantImage, Sampling};
use super::{Prompt, ASSISTANT_MODEL_ID};
use crate::demo::fleet::ingest;
use crate::demo::Ctx;

/// Bytes of each device's telemetry ring.
const RING: usize = 16 * 1024;
/// Sampled answers per prompt (a prompt yields a preference pair only when its answers are rated
/// both ways).
pub const ANSWERS: usize = 4;
/// The user corrects one wrong answer in this many (the others are only rated down).
pub const CORRECT_EVERY: usize = 3;

/// What the field stage of the assistant produced.
#[derive(Debug)]
pub struct FieldRun {
    /// The assistant's telemetry store.
    pub store: PathBuf,
    /// Answers rated up.
    pub up: usize,
    /// Answers rated down.
    pub down: usize,
    /// Ratings whose `prompt, -1, response` did not fit a sample (recorded without one).
    pub unsampled: usize,
    /// Wrong answers the user corrected (recorded with `prompt, -2, corrected`).
    pub corrected: usize,
    /// Frames ingested.
    pub frames: u64,
    /// Corrupt frames.
    pub corrupt: u64,
}

/// Runs the devices over `prompts` and ingests their telemetry.
pub fn simulate(
    ctx: &Ctx,
    tok: &Tokenizer,
    image: &AssistantImage,
    prompts: &[Prompt],
) -> anyhow::Result<FieldRun> {
    let devices = ctx.sizes.devices.max(1);
    let eos = tok.specials().eos;
    let pad = tok.specials().pad.unwrap_or(0);
    let root = ctx.out.join("telemetry/assistant");
    let _ = std::fs::remove_dir_all(&root);
    let mut run = FieldRun {
        store: root.clone(),
        up: 0,
        down: 0,
        unsampled: 0,
        corrected: 0,
        frames: 0,
        corrupt: 0,
    };
    let bar = crate::cli::output::bar(
        ctx.progress,
        prompts.len() as u64,
        "assistant field",
        "prompts answered",
    );
    let mut wires = Vec::new();
    for d in 0..devices {
        let device = 0xa551_0000 + d as u64;
        let mut rec: Box<Recorder<RING>> = Box::new(Recorder::new(
            device,
            1,
            ModelRef {
                id: ASSISTANT_MODEL_ID,
                version: image.version,
            },
        ));
        let mut wire = Vec::new();
        let mut buf = vec![0u8; RING];
        let mut ticks = 0u64;
        let mut answered = 0usize;
        for (i, p) in prompts.iter().enumerate().skip(d).step_by(devices) {
            for k in 0..ANSWERS {
                let g = image.generate(
                    &p.ids,
                    image.context - p.ids.len(),
                    eos,
                    pad,
                    Some(Sampling {
                        temperature: 1.0,
                        top_k: 8,
                        seed: ctx.seed ^ device.rotate_left(17) ^ ((i * ANSWERS + k) as u64),
                    }),
                )?;
                ticks += 1000 + g.micros as u64;
                let prompt_i32: Vec<i32> = p.ids.iter().map(|&v| v as i32).collect();
                let seq = rec.record(
                    ticks,
                    Record::Inference(InferenceSummary {
                        // For generation the record's class is the first new token.
                        class: g
                            .tokens
                            .first()
                            .copied()
                            .unwrap_or(0)
                            .min(u32::from(u16::MAX)) as u16,
                        confidence_q16: (g.first_probability.clamp(0.0, 1.0) * 65535.0).round()
                            as u16,
                        latency_ticks: g.micros.round().min(f64::from(u32::MAX)) as u32,
                        input: InputSummary::from_i32(&prompt_i32),
                    }),
                )?;
                let right = super::judge(&tok.decode(&g.tokens)?, &p.answer_text);
                let mut sample: Vec<i32> = prompt_i32.clone();
                sample.push(RESPONSE_SEPARATOR);
                sample.extend(g.tokens.iter().map(|&v| v as i32));
                let sampled = sample.len() <= SAMPLE_MAX;
                let sample = if sampled {
                    Sample::from_i32(&sample)?
                } else {
                    run.unsampled += 1;
                    Sample::EMPTY
                };
                rec.record(
                    ticks + 500,
                    Record::Feedback(Feedback {
                        inference_seq: seq,
                        correction: None,
                        thumbs: Some(if right { Thumbs::Up } else { Thumbs::Down }),
                        sample,
                    }),
                )?;
                if right {
                    run.up += 1;
                } else {
                    run.down += 1;
                    // The correction joins its response through the rating's sample.
                    if sampled && run.down.is_multiple_of(CORRECT_EVERY) {
                        let mut c = prompt_i32.clone();
                        c.push(CORRECTION_SEPARATOR);
                        c.extend(p.answer.iter().map(|&v| v as i32));
                        if c.len() <= SAMPLE_MAX {
                            rec.record(
                                ticks + 700,
                                Record::Feedback(Feedback {
                                    inference_seq: seq,
                                    correction: None,
                                    thumbs: None,
                                    sample: Sample::from_i32(&c)?,
                                }),
                            )?;
                            run.corrected += 1;
                        }
                    }
                }
            }
            answered += 1;
            if answered.is_multiple_of(8) {
                rec.heartbeat(ticks, ticks)?;
                let n = rec.drain(&mut buf)?;
                wire.extend_from_slice(&buf[..n]);
            }
            bar.inc(1);
        }
        rec.heartbeat(ticks, ticks)?;
        let n = rec.drain(&mut buf)?;
        wire.extend_from_slice(&buf[..n]);
        anyhow::ensure!(
            rec.stats().dropped == 0,
            "device {device:#x}: the telemetry ring dropped {} records",
            rec.stats().dropped
        );
        wires.push(wire);
    }
    bar.finish_and_clear();
    let (frames, corrupt) = ingest(&root, &wires, now_ms())?;
    run.frames = frames;
    run.corrupt = corrupt;
    crate::say!(
        "assistant field: {} devices answered {} prompts {} times each; users rated {} answers up, {} down, and corrected {}; {} frames ingested, {} corrupt",
        devices,
        prompts.len(),
        ANSWERS,
        run.up,
        run.down,
        run.corrected,
        frames,
        corrupt
    );
    Ok(run)
}

//! Outputs of a selection: the table (Markdown and JSON), the front plot, the chosen
//! configuration in the trainer's format, and the winner's ONNX models and image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Result, SelectError};
use crate::plot::{front_png, PlotPoint};
use crate::search::Selection;

/// Files written by [`write()`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Written {
    /// `select.md`: the table.
    pub markdown: PathBuf,
    /// `select.json`: everything, machine-readable.
    pub json: PathBuf,
    /// `front.png`: the front.
    pub plot: PathBuf,
    /// `chosen.json`: the winner's `KwsTrainConfig` (the trainer's config format).
    pub chosen: PathBuf,
    /// `model.onnx`: the winner, fp32.
    pub fp32_onnx: PathBuf,
    /// `model-int8.onnx`: the winner, int8 QDQ with the front end's int8 input.
    pub int8_onnx: PathBuf,
    /// `model.edli`: the winner's model image.
    pub image: PathBuf,
}

fn kib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

/// The Markdown report.
pub fn markdown(s: &Selection) -> String {
    let b = &s.config.budget;
    let mut out = String::new();
    let precisions: Vec<&str> = s.config.precisions.iter().map(|p| p.short()).collect();
    let _ = writeln!(
        out,
        "# Model selection: keyword spotting (DS-CNN, {})\n",
        precisions.join(" / ")
    );
    let _ = writeln!(
        out,
        "Target **{}**: flash {} B, RAM {} B, latency {}; {:.0} instructions/s, {:?} kernels. \
Firmware overhead added to every image: {} B flash, {} B RAM (firmware-examples/BENCH.md).\n",
        b.target,
        b.flash_bytes,
        b.ram_bytes,
        b.latency_ms
            .map(|l| format!("≤ {l} ms"))
            .unwrap_or("unbounded".into()),
        b.instructions_per_second,
        b.kernels,
        b.firmware_flash_bytes,
        b.firmware_ram_bytes,
    );
    let _ = writeln!(
        out,
        "Footprints are exact (each candidate's image built by the compiler before training); \
flash is given as the bound without constant deduplication (what any trained weights can take at most; \
the built image is at most a few 16-byte blocks smaller); latency is an estimate (image MACs × measured Cortex-M4 instructions per MAC ÷ instructions/s). \
Survivors trained {} steps (batch {}, lr {}, seed {}); the winner {} steps. Accuracy: validation \
split, brief training, {}.\n",
        s.config.brief_steps,
        s.config.batch,
        s.config.lr,
        s.config.seed,
        s.config.full_steps,
        if s.config.ranks_images() {
            "each candidate's image on the host runtime (one fp32 model per size, shared by its precisions; fp32 alongside)"
        } else {
            "fp32"
        }
    );
    if s.config.ranks_images() {
        use crate::cost::{figure, KernelClass};
        let (h, c) = (
            figure(KernelClass::FullyConnectedF32Small),
            figure(KernelClass::Conv2dF32),
        );
        let _ = writeln!(
            out,
            "Mixed precision keeps one layer f32: `mixed` the `fc` head (which the compiler already runs \
as an f32 island in the int8 image: its output is the float graph output), `mixed-first` the first \
convolution (the int8 input dequantized in front of it). f32 FullyConnected: {} instructions/MAC, {}. \
f32 Conv2D: {} instructions/MAC, {}.\n",
            h.dsp, h.source, c.dsp, c.source
        );
    }
    let _ = writeln!(
        out,
        "| candidate | ch | blocks | stride | precision | params | image flash B | flash bound KiB | arena B | RAM total KiB | MACs | est. instr | est. ms | val acc | val acc (fp32) | front | status |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---|"
    );
    for (i, r) in s.rows.iter().enumerate() {
        let m = &r.candidate.model;
        let (img, fl, ar, ram, macs, ins, ms) = match &r.footprint {
            Some(f) => (
                f.image.total.to_string(),
                kib(f.flash_bound),
                f.arena.to_string(),
                kib(f.ram_total),
                f.macs.to_string(),
                format!("{:.0}", f.instructions),
                format!("{:.2}", f.latency_ms),
            ),
            None => Default::default(),
        };
        let (params, acc, facc) = match &r.brief {
            Some(b) => (
                b.params.to_string(),
                format!("{:.3}", b.val_accuracy),
                format!("{:.3}", b.fp32_val_accuracy),
            ),
            None => Default::default(),
        };
        let status = if i == s.winner.row {
            "**chosen**".to_string()
        } else if r.dropped.is_empty() {
            "trained".to_string()
        } else {
            format!("dropped: {}", r.dropped.join("; "))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {params} | {img} | {fl} | {ar} | {ram} | {macs} | {ins} | {ms} | {acc} | {facc} | {} | {status} |",
            r.candidate.name,
            m.channels,
            m.blocks,
            m.stride,
            r.candidate.precision.short(),
            if r.on_front { "●" } else { "" },
        );
    }
    let w = &s.winner;
    let f = &w.footprint;
    let _ = writeln!(
        out,
        "\n## Chosen: {}\n\nFully trained {} steps ({:.1} s): validation {:.3}, test {:.3} (fp32), \
test {:.3} (its {} image on the host runtime).\n\nImage {} B (header+graph {}, constants {}: \
weights {}, biases {}, requantization {}; statistics {}), arena {} B (lower bound {}), RAM total \
{} B, flash total {} B (bound before training {} B), {} MACs, ~{:.0} instructions ≈ {:.2} ms.\nFootprint of the trained image \
equals the one predicted before training: **{}**.\n",
        s.rows[w.row].candidate.name,
        w.train_config.steps,
        w.seconds,
        w.val_accuracy,
        w.test_accuracy,
        w.int8_test_accuracy,
        s.rows[w.row].candidate.precision.short(),
        f.image.total,
        f.image.header_and_graph,
        f.image.constants,
        f.image.weights,
        f.image.biases,
        f.image.requant_and_tables,
        f.image.statistics,
        f.arena,
        f.arena_lower_bound,
        f.ram_total,
        f.flash_total,
        f.flash_bound,
        f.macs,
        f.instructions,
        f.latency_ms,
        if w.footprint_as_predicted { "yes" } else { "NO" },
    );
    if !f.unmeasured_ops.is_empty() {
        let _ = writeln!(
            out,
            "Ops the firmware bench did not measure (counted as 0 instructions): {}.",
            f.unmeasured_ops.join(", ")
        );
    }
    out
}

/// Writes every output into `dir` (created if needed).
pub fn write(s: &Selection, dir: &Path) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| SelectError::io(dir, e))?;
    let put = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| SelectError::io(&p, e))?;
        Ok(p)
    };
    let json = serde_json::to_vec_pretty(s).map_err(|e| SelectError::Config(e.to_string()))?;
    let chosen = serde_json::to_vec_pretty(&s.winner.train_config)
        .map_err(|e| SelectError::Config(e.to_string()))?;
    let built = s
        .built
        .as_ref()
        .ok_or_else(|| SelectError::Config("the selection has no built winner".into()))?;
    let plot = dir.join("front.png");
    let points: Vec<PlotPoint> = s
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let f = r.footprint.as_ref()?;
            let b = r.brief.as_ref()?;
            Some(PlotPoint {
                label: r.candidate.name.clone(),
                latency_ms: f.latency_ms,
                accuracy: b.val_accuracy as f64,
                ram: f.ram_total,
                on_front: r.on_front,
                winner: i == s.winner.row,
            })
        })
        .collect();
    front_png(
        &plot,
        &format!(
            "DS-CNN candidates for {} ({} brief steps)",
            s.config.budget.target, s.config.brief_steps
        ),
        &points,
    )?;
    Ok(Written {
        markdown: put("select.md", markdown(s).as_bytes())?,
        json: put("select.json", &json)?,
        plot,
        chosen: put("chosen.json", &chosen)?,
        fp32_onnx: put("model.onnx", &built.fp32.to_bytes())?,
        int8_onnx: put("model-int8.onnx", &built.qdq.to_bytes())?,
        image: put("model.edli", built.compiled.bytes())?,
    })
}

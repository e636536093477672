//! Outputs of a selection: the table (Markdown and JSON), the front plot, the chosen
//! configuration in the trainer's format, and the winner's ONNX models and image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::device::Budget;
use crate::error::{Result, SelectError};
use crate::footprint::Built;
use crate::plot::front_png;
use crate::rows::{image_summary, plot_points, table_cells, RankedRow};
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

/// The report's paragraph on the target `b` (its firmware overheads taken from `source`).
pub(crate) fn budget_paragraph(b: &Budget, source: &str) -> String {
    format!(
        "Target **{}**: flash {} B, RAM {} B, latency {}; {:.0} instructions/s, {:?} kernels. \
Firmware overhead added to every image: {} B flash, {} B RAM ({source}).\n\n",
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
    )
}

/// Writes `bytes` to `dir/name`.
pub(crate) fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).map_err(|e| SelectError::io(&p, e))?;
    Ok(p)
}

/// `value` as pretty JSON.
pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| SelectError::Config(e.to_string()))
}

/// The winner's `built` models and image written into `dir`: `model.onnx` (fp32),
/// `model-int8.onnx` and `model.edli`.
pub(crate) fn put_built(dir: &Path, built: Option<&Built>) -> Result<[PathBuf; 3]> {
    let built =
        built.ok_or_else(|| SelectError::Config("the selection has no built winner".into()))?;
    Ok([
        put(dir, "model.onnx", &built.fp32.to_bytes())?,
        put(dir, "model-int8.onnx", &built.qdq.to_bytes())?,
        put(dir, "model.edli", built.compiled.bytes())?,
    ])
}

/// The front plot of `rows` (winner at index `winner`) as `dir/front.png`.
pub(crate) fn put_plot<R: RankedRow>(
    dir: &Path,
    rows: &[R],
    winner: usize,
    title: &str,
) -> Result<PathBuf> {
    let plot = dir.join("front.png");
    front_png(&plot, title, &plot_points(rows, winner))?;
    Ok(plot)
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
    out.push_str(&budget_paragraph(b, "firmware-examples/BENCH.md"));
    let _ = writeln!(
        out,
        "Footprints are exact (each candidate's image built by the compiler before training); \
flash is given as the bound without constant deduplication (what any trained weights can take at most; \
the built image is at most a few 16-byte blocks smaller); latency is an estimate (each op's instructions on our Cortex-M4 kernels, per op plus per MAC or element as measured in firmware-examples/BENCH.md, ÷ instructions/s). \
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
convolution (the int8 input dequantized in front of it). f32 FullyConnected: {} instructions/MAC + {} per op, {}. \
f32 Conv2D: {} instructions/MAC + {} per op, {}.\n",
            h.unit.dsp, h.op.dsp, h.source, c.unit.dsp, c.op.dsp, c.source
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
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}",
            r.candidate.name,
            m.channels,
            m.blocks,
            m.stride,
            r.candidate.precision.short(),
            table_cells(r, i == s.winner.row),
        );
    }
    let w = &s.winner;
    let _ = write!(
        out,
        "\n## Chosen: {}\n\nFully trained {} steps ({:.1} s): validation {:.3}, test {:.3} (fp32), \
test {:.3} (its {} image on the host runtime).\n\n{}",
        s.rows[w.row].candidate.name,
        w.train_config.steps,
        w.seconds,
        w.val_accuracy,
        w.test_accuracy,
        w.int8_test_accuracy,
        s.rows[w.row].candidate.precision.short(),
        image_summary(&w.footprint, w.footprint_as_predicted),
    );
    out
}

/// Writes every output into `dir` (created if needed).
pub fn write(s: &Selection, dir: &Path) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| SelectError::io(dir, e))?;
    let json_all = json(s)?;
    let chosen = json(&s.winner.train_config)?;
    let [fp32_onnx, int8_onnx, image] = put_built(dir, s.built.as_ref())?;
    let plot = put_plot(
        dir,
        &s.rows,
        s.winner.row,
        &format!(
            "DS-CNN candidates for {} ({} brief steps)",
            s.config.budget.target, s.config.brief_steps
        ),
    )?;
    Ok(Written {
        markdown: put(dir, "select.md", markdown(s).as_bytes())?,
        json: put(dir, "select.json", &json_all)?,
        plot,
        chosen: put(dir, "chosen.json", &chosen)?,
        fp32_onnx,
        int8_onnx,
        image,
    })
}

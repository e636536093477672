//! Outputs of a text selection: the table (Markdown and JSON), the front plot, the chosen
//! configuration in the trainer's format, and the winner's tokenizer, ONNX models and image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::search::TextSelection;
use super::space::Precision;
use crate::cost::{figure, KernelClass};
use crate::error::{Result, SelectError};
use crate::plot::{front_png, PlotPoint};

/// Files written by [`write()`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TextWritten {
    /// `select.md`: the table.
    pub markdown: PathBuf,
    /// `select.json`: everything, machine-readable.
    pub json: PathBuf,
    /// `front.png`: the front.
    pub plot: PathBuf,
    /// `chosen.json`: the winner's model config (the trainer's `config.json` format, `arch`
    /// tagged).
    pub chosen: PathBuf,
    /// `chosen-quantize.json`: precision, the nodes kept float, input length, vocabulary.
    pub quantize: PathBuf,
    /// `tokenizer.json`: the winner's tokenizer.
    pub tokenizer: PathBuf,
    /// `model.onnx`: the winner, fp32.
    pub fp32_onnx: PathBuf,
    /// `model-int8.onnx`: the winner, quantized at its precision.
    pub int8_onnx: PathBuf,
    /// `model.edli`: the winner's model image.
    pub image: PathBuf,
    /// The trainer's model folder of the winner (config, weights, tokenizer, labels).
    pub model_dir: PathBuf,
}

fn kib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

/// The Markdown report.
pub fn markdown(s: &TextSelection) -> String {
    let b = &s.config.budget;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Model selection: text classifier ({} classes)\n",
        s.labels.len()
    );
    let _ = writeln!(
        out,
        "Target **{}**: flash {} B, RAM {} B, latency {}; {:.0} instructions/s, {:?} kernels. \
Firmware overhead added to every image: {} B flash, {} B RAM (firmware-examples/BENCH.md, intent classifier).\n",
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
        "Footprints are exact (each candidate's image built by the compiler before training, at its \
precision); flash is the bound without constant deduplication. Latency is an estimate (the image's ops × \
instructions per MAC or element measured on our Cortex-M4 kernels ÷ instructions/s). Vocabulary: a byte-level \
BPE retrained on the training texts at each size (actual size shown). Survivors trained {} steps (batch {}, \
lr {}, seed {}; one model per architecture, shared by its precisions); the winner {} steps. Accuracy: \
validation split, the candidate's quantized image on the host runtime (fp32 alongside).\n",
        s.config.brief_steps, s.config.batch, s.config.lr, s.config.seed, s.config.full_steps
    );
    if s.rows
        .iter()
        .any(|r| r.candidate.precision == Precision::MixedHead)
    {
        let (s_, l_) = (
            figure(KernelClass::FullyConnectedF32Small),
            figure(KernelClass::FullyConnectedF32Large),
        );
        let _ = writeln!(
            out,
            "Mixed precision keeps the classification head f32. Its f32 FullyConnected cost: {} instructions/MAC \
below {} MACs ({}); {} above ({}).\n",
            s_.dsp,
            crate::cost::LARGE_FC_MACS,
            s_.source,
            l_.dsp,
            l_.source
        );
    }
    let _ = writeln!(
        out,
        "| candidate | family | width | depth | heads | context | vocab | precision | params | image flash B | flash bound KiB | arena B | RAM total KiB | MACs | est. instr | est. ms | val acc (image) | val acc (fp32) | front | status |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---|"
    );
    for (i, r) in s.rows.iter().enumerate() {
        let c = &r.candidate;
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
            "| {} | {:?} | {} | {} | {} | {} | {} | {} | {params} | {img} | {fl} | {ar} | {ram} | {macs} | {ins} | {ms} | {acc} | {facc} | {} | {status} |",
            c.name,
            c.family,
            c.width,
            c.depth,
            c.heads,
            c.context,
            r.vocab_size,
            c.precision.short(),
            if r.on_front { "●" } else { "" },
        );
    }
    let w = &s.winner;
    let f = &w.footprint;
    let _ = writeln!(
        out,
        "\n## Chosen: {}\n\nFully trained {} steps ({:.1} s): validation {:.3} (fp32), validation {:.3} and \
test {:.3} (its image on the host runtime). Kept float: {}.\n\nImage {} B (header+graph {}, constants {}: \
weights {}, biases {}, requantization {}; statistics {}), arena {} B (lower bound {}), RAM total {} B, \
flash total {} B (bound before training {} B), {} MACs, ~{:.0} instructions ≈ {:.2} ms.\nFootprint of the \
trained image equals the one predicted before training: **{}**.\n",
        s.rows[w.row].candidate.name,
        s.config.full_steps,
        w.seconds,
        w.fp32_val_accuracy,
        w.val_accuracy,
        w.test_accuracy,
        if w.float_nodes.is_empty() {
            "nothing".to_string()
        } else {
            w.float_nodes.join(", ")
        },
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
pub fn write(s: &TextSelection, dir: &Path) -> Result<TextWritten> {
    std::fs::create_dir_all(dir).map_err(|e| SelectError::io(dir, e))?;
    let put = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| SelectError::io(&p, e))?;
        Ok(p)
    };
    let json_err = |e: serde_json::Error| SelectError::Config(e.to_string());
    let json = serde_json::to_vec_pretty(s).map_err(json_err)?;
    let w = &s.winner;
    let chosen = serde_json::to_vec_pretty(&w.spec).map_err(json_err)?;
    let quant = serde_json::to_vec_pretty(&serde_json::json!({
        "precision": w.precision,
        "float_nodes": w.float_nodes,
        "max_len": w.spec.context(),
        "fixed_length": true,
        "vocab_size": w.spec.vocab_size(),
        "tokenizer": "tokenizer.json",
        "model_dir": w.model_dir,
    }))
    .map_err(json_err)?;
    let built = s
        .built
        .as_ref()
        .ok_or_else(|| SelectError::Config("the selection has no built winner".into()))?;
    let tok = s
        .tokenizer
        .as_ref()
        .ok_or_else(|| SelectError::Config("the selection has no tokenizer".into()))?;
    let tok_path = dir.join("tokenizer.json");
    tok.save(&tok_path)
        .map_err(|e| SelectError::Config(format!("{}: {e}", tok_path.display())))?;
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
                winner: i == w.row,
            })
        })
        .collect();
    front_png(
        &plot,
        &format!(
            "Text classifier candidates for {} ({} brief steps)",
            s.config.budget.target, s.config.brief_steps
        ),
        &points,
    )?;
    Ok(TextWritten {
        markdown: put("select.md", markdown(s).as_bytes())?,
        json: put("select.json", &json)?,
        plot,
        chosen: put("chosen.json", &chosen)?,
        quantize: put("chosen-quantize.json", &quant)?,
        tokenizer: tok_path,
        fp32_onnx: put("model.onnx", &built.fp32.to_bytes())?,
        int8_onnx: put("model-int8.onnx", &built.qdq.to_bytes())?,
        image: put("model.edli", built.compiled.bytes())?,
        model_dir: w.model_dir.clone(),
    })
}

//! Outputs of a text selection: the table (Markdown and JSON), the front plot, the chosen
//! configuration in the trainer's format, and the winner's tokenizer, ONNX models and image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::search::TextSelection;
use super::space::Precision;
use crate::cost::{figure, KernelClass};
use crate::error::{Result, SelectError};
use crate::report::{budget_paragraph, json, put, put_built, put_plot};
use crate::rows::{image_summary, table_cells};

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

/// The Markdown report.
pub fn markdown(s: &TextSelection) -> String {
    let b = &s.config.budget;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Model selection: text classifier ({} classes)\n",
        s.labels.len()
    );
    out.push_str(&budget_paragraph(
        b,
        "firmware-examples/BENCH.md, intent classifier",
    ));
    let _ = writeln!(
        out,
        "Footprints are exact (each candidate's image built by the compiler before training, at its \
precision); flash is the bound without constant deduplication. Latency is an estimate (each op's instructions on \
our Cortex-M4 kernels, per op plus per MAC or element as measured in firmware-examples/BENCH.md, ÷ instructions/s). Vocabulary: a byte-level \
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
+ {} per op below {} MACs ({}); {} + {} above ({}).\n",
            s_.unit.dsp,
            s_.op.dsp,
            crate::cost::LARGE_FC_MACS,
            s_.source,
            l_.unit.dsp,
            l_.op.dsp,
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
        let _ = writeln!(
            out,
            "| {} | {:?} | {} | {} | {} | {} | {} | {} | {}",
            c.name,
            c.family,
            c.width,
            c.depth,
            c.heads,
            c.context,
            r.vocab_size,
            c.precision.short(),
            table_cells(r, i == s.winner.row),
        );
    }
    let w = &s.winner;
    let _ = write!(
        out,
        "\n## Chosen: {}\n\nFully trained {} steps ({:.1} s): validation {:.3} (fp32), validation {:.3} and \
test {:.3} (its image on the host runtime). Kept float: {}.\n\n{}",
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
        image_summary(&w.footprint, w.footprint_as_predicted),
    );
    out
}

/// Writes every output into `dir` (created if needed).
pub fn write(s: &TextSelection, dir: &Path) -> Result<TextWritten> {
    std::fs::create_dir_all(dir).map_err(|e| SelectError::io(dir, e))?;
    let json_all = json(s)?;
    let w = &s.winner;
    let chosen = json(&w.spec)?;
    let quant = json(&serde_json::json!({
        "precision": w.precision,
        "float_nodes": w.float_nodes,
        "max_len": w.spec.context(),
        "fixed_length": true,
        "vocab_size": w.spec.vocab_size(),
        "tokenizer": "tokenizer.json",
        "model_dir": w.model_dir,
    }))?;
    if s.built.is_none() {
        return Err(SelectError::Config(
            "the selection has no built winner".into(),
        ));
    }
    let tok = s
        .tokenizer
        .as_ref()
        .ok_or_else(|| SelectError::Config("the selection has no tokenizer".into()))?;
    let tok_path = dir.join("tokenizer.json");
    tok.save(&tok_path)
        .map_err(|e| SelectError::Config(format!("{}: {e}", tok_path.display())))?;
    let plot = put_plot(
        dir,
        &s.rows,
        w.row,
        &format!(
            "Text classifier candidates for {} ({} brief steps)",
            s.config.budget.target, s.config.brief_steps
        ),
    )?;
    let [fp32_onnx, int8_onnx, image] = put_built(dir, s.built.as_ref())?;
    Ok(TextWritten {
        markdown: put(dir, "select.md", markdown(s).as_bytes())?,
        json: put(dir, "select.json", &json_all)?,
        plot,
        chosen: put(dir, "chosen.json", &chosen)?,
        quantize: put(dir, "chosen-quantize.json", &quant)?,
        tokenizer: tok_path,
        fp32_onnx,
        int8_onnx,
        image,
        model_dir: w.model_dir.clone(),
    })
}

//! Demo stage: why the classifier says what it says, for a few lab test inputs — integrated
//! gradients on the fp32 candle model (token attributions that sum to the logit difference from
//! an all-pad input) and occlusion on the signed int8 image (the drop in the predicted class's
//! probability when a word is removed), each drawn as a PNG for the report.

use anyhow::Context;
use edgeloop_eval::explain::occlusion;
use edgeloop_trainer::explain::{integrated_gradients, IgOptions};
use edgeloop_trainer::train::jobs;
use serde::{Deserialize, Serialize};

use super::data::Data;
use super::deploy::{image_bytes, Deployment, Keys};
use super::device::{self, HostModel};
use super::train::{relative, Classifier};
use super::Ctx;

/// Inputs explained.
const EXAMPLES: usize = 3;

/// One explained input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explained {
    /// The input text.
    pub text: String,
    /// Its label.
    pub label: String,
    /// The fp32 model's predicted class.
    pub predicted: String,
    /// Integrated-gradients PNG (fp32 candle), relative to the run folder.
    pub ig_png: String,
    /// |Σ attributions − (f(x) − f(baseline))| of the integrated gradients.
    pub ig_completeness_gap: f64,
    /// f(x) − f(baseline) (target logit).
    pub ig_score_difference: f64,
    /// The three tokens with the largest |IG attribution|.
    pub ig_top_tokens: Vec<String>,
    /// Occlusion PNG (int8 image on the edgeloop runtime), relative to the run folder.
    pub occlusion_png: String,
}

/// Runs the stage.
pub fn run(
    ctx: &Ctx,
    data: &Data,
    classifier: &Classifier,
    v1: &Deployment,
    keys: &Keys,
) -> anyhow::Result<Vec<Explained>> {
    let dir = ctx.dir("plots")?;
    let candle = jobs::load_classifier(&classifier.model_dir, &jobs::device("cpu")?)
        .context("loading the fp32 classifier")?;
    let host = HostModel::load(&image_bytes(ctx, v1)?, &keys.public.0)?;
    let tok = &data.tokenizer;
    let pad = tok.specials().pad.unwrap_or(0);
    let image_scores = |text: &str| -> (usize, Vec<f64>) {
        let row = match device::encode(tok, text, v1.max_len) {
            Ok(r) => r,
            Err(_) => return (0, Vec::new()),
        };
        match host.predict(&[row]) {
            Ok(mut p) if !p.is_empty() => {
                let p = p.remove(0);
                (p.class, p.probs)
            }
            _ => (0, Vec::new()),
        }
    };
    let mut out = Vec::new();
    for (k, r) in jobs::read_texts(&data.test)?
        .into_iter()
        .take(EXAMPLES)
        .enumerate()
    {
        let ids: Vec<u32> = device::encode(tok, &r.text, v1.max_len)?
            .into_iter()
            .map(|v| v as u32)
            .collect();
        let ig = integrated_gradients(
            &candle.task.model,
            tok,
            &ids,
            None,
            &IgOptions {
                baseline_id: pad,
                ..IgOptions::default()
            },
        )
        .with_context(|| format!("integrated gradients of test input {k}"))?;
        let ig_png = dir.join(format!("ig-{k}.png"));
        ig.plot_png(
            &ig_png,
            &format!(
                "integrated gradients (fp32): {}",
                candle.labels[ig.target_class]
            ),
        )?;
        let occ = occlusion(image_scores, &r.text, None, None)
            .with_context(|| format!("occlusion on the image, test input {k}"))?;
        let occ_png = dir.join(format!("occlusion-{k}.png"));
        occ.plot_png(
            &occ_png,
            &format!(
                "occlusion (int8 image): {}",
                v1.labels.get(occ.target_class).map_or("?", |s| s.as_str())
            ),
        )?;
        let gap = ig.completeness_gap().unwrap_or(f64::NAN);
        let diff = ig.target_score - ig.baseline_score.unwrap_or(f64::NAN);
        crate::say!(
            "\"{}\": fp32 says {}; integrated gradients sum to {:.4} vs f(x) - f(pad) = {:.4} (gap {:.1e}); top tokens {:?}",
            r.text,
            candle.labels[ig.target_class],
            ig.total(),
            diff,
            gap,
            ig.top(3).iter().map(|t| t.token.clone()).collect::<Vec<_>>()
        );
        out.push(Explained {
            text: r.text.clone(),
            label: r.label.clone().unwrap_or_default(),
            predicted: candle.labels[ig.target_class].clone(),
            ig_png: relative(&ctx.out, &ig_png),
            ig_completeness_gap: gap,
            ig_score_difference: diff,
            ig_top_tokens: ig.top(3).iter().map(|t| t.token.clone()).collect(),
            occlusion_png: relative(&ctx.out, &occ_png),
        });
    }
    Ok(out)
}

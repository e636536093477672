//! `edgeloop run --model M.onnx --backend runtime|ort|tract|all`: the same ONNX model and the
//! same inputs through our runtime (compiled in memory), ONNX Runtime (graph optimization
//! Level1, loaded from `ORT_DYLIB_PATH`) and tract, with outputs, timing and the largest
//! difference from our runtime's outputs.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{bail, Context};
use edgeloop_quantize::compile::reference::host_sample;
use edgeloop_quantize::compile::{compile, CompileOptions};
use edgeloop_quantize::onnx::ElemType;
use edgeloop_quantize::oracle::OrtModel;
use edgeloop_quantize::runner::{Sample, Tap};
use edgeloop_quantize::tensor::{Tensor, TensorData};
use edgeloop_quantize::{InputSpec, OnnxModel};
use serde::Serialize;

/// A backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The edgeloop runtime (the ONNX model is compiled to an image in memory).
    Runtime,
    /// ONNX Runtime (`ORT_DYLIB_PATH`), graph optimization Level1.
    Ort,
    /// tract.
    Tract,
    /// All three, side by side.
    All,
}

/// One backend's result.
#[derive(Debug, Clone, Serialize)]
pub struct BackendRun {
    /// Which.
    pub backend: Backend,
    /// Outputs by name, as f64.
    pub outputs: BTreeMap<String, Vec<f64>>,
    /// Mean and minimum run time (µs) over the repeats (for ONNX Runtime and tract, a whole
    /// `run` call; for the runtime, the compiled image's run including input/output copies).
    pub run_us_mean: f64,
    /// Minimum.
    pub run_us_min: f64,
    /// Largest |difference| from the runtime's outputs (absent for the runtime itself).
    pub max_abs_diff_vs_runtime: Option<f64>,
}

/// Builds the sample: `values[k]` for input `k`, or a fixed pattern (small non-negative ids for
/// integer inputs, a smooth ramp in [-1, 1] for float ones).
pub fn sample(inputs: &[InputSpec], values: &[Option<Vec<f64>>]) -> anyhow::Result<Sample> {
    let mut s = Sample::new();
    for (k, spec) in inputs.iter().enumerate() {
        let n: usize = spec.shape.iter().product();
        let v: Vec<f64> = match values.get(k).cloned().flatten() {
            Some(v) => {
                if v.len() != n {
                    bail!(
                        "input '{}' ({:?}) needs {n} values, got {}",
                        spec.name,
                        spec.shape,
                        v.len()
                    );
                }
                v
            }
            None => (0..n)
                .map(|i| match spec.elem {
                    ElemType::I64 => ((i * 7 + 3) % 11) as f64,
                    ElemType::F32 => ((i * 37 % 101) as f64 / 50.0) - 1.0,
                })
                .collect(),
        };
        let t = match spec.elem {
            ElemType::F32 => {
                Tensor::f32(spec.shape.clone(), v.iter().map(|&x| x as f32).collect())?
            }
            ElemType::I64 => {
                if let Some(bad) = v.iter().find(|x| x.fract() != 0.0) {
                    bail!("input '{}' takes integers; got {bad}", spec.name);
                }
                Tensor::i64(spec.shape.clone(), v.iter().map(|&x| x as i64).collect())?
            }
        };
        s.insert(spec.name.clone(), t);
    }
    Ok(s)
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
    }
}

fn timed(
    repeat: usize,
    mut f: impl FnMut() -> anyhow::Result<BTreeMap<String, Vec<f64>>>,
) -> anyhow::Result<(BTreeMap<String, Vec<f64>>, f64, f64)> {
    let mut times = Vec::with_capacity(repeat.max(1));
    let mut out = BTreeMap::new();
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        out = f()?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    Ok((out, mean, min))
}

/// Runs `model` on `sample` through each of `backends`, `repeat` times each.
pub fn run_all(
    bytes: &[u8],
    model: &OnnxModel,
    inputs: &[InputSpec],
    sample: &Sample,
    backends: &[Backend],
    repeat: usize,
) -> anyhow::Result<Vec<BackendRun>> {
    let mut runs: Vec<BackendRun> = Vec::new();
    for &b in backends {
        let (outputs, mean, min) = match b {
            Backend::Runtime => {
                let c = compile(
                    &model.proto,
                    &CompileOptions {
                        input_shapes: inputs
                            .iter()
                            .map(|i| (i.name.clone(), i.shape.clone()))
                            .collect::<HashMap<_, _>>(),
                        ..CompileOptions::default()
                    },
                )
                .context("compiling the model for the runtime")?;
                let feeds = host_sample(sample);
                timed(repeat, || {
                    Ok(c.run(&feeds)?
                        .into_iter()
                        .map(|(k, t)| {
                            let v = if t.elem.is_int() {
                                t.i.iter().map(|&x| x as f64).collect()
                            } else {
                                t.f.iter().map(|&x| f64::from(x)).collect()
                            };
                            (k, v)
                        })
                        .collect())
                })?
            }
            Backend::Ort => {
                let mut m = OrtModel::new(bytes).context(
                    "loading ONNX Runtime (set ORT_DYLIB_PATH to libonnxruntime.so.1.31.1)",
                )?;
                timed(repeat, || {
                    Ok(m.run(sample)?
                        .iter()
                        .map(|(k, t)| (k.clone(), to_f64(t)))
                        .collect())
                })?
            }
            Backend::Tract => {
                let tap = Tap::optimized(model, inputs).context("loading the model in tract")?;
                timed(repeat, || {
                    Ok(tap
                        .run(sample)?
                        .iter()
                        .map(|(k, t)| (k.clone(), to_f64(t)))
                        .collect())
                })?
            }
            Backend::All => bail!("`all` is expanded before running"),
        };
        let reference = runs.iter().find(|r| r.backend == Backend::Runtime);
        let diff = match (b, reference) {
            (Backend::Runtime, _) | (_, None) => None,
            (_, Some(r)) => Some(max_abs_diff(&r.outputs, &outputs)?),
        };
        runs.push(BackendRun {
            backend: b,
            outputs,
            run_us_mean: mean,
            run_us_min: min,
            max_abs_diff_vs_runtime: diff,
        });
    }
    Ok(runs)
}

fn max_abs_diff(
    a: &BTreeMap<String, Vec<f64>>,
    b: &BTreeMap<String, Vec<f64>>,
) -> anyhow::Result<f64> {
    let mut worst = 0.0f64;
    for (name, va) in a {
        let vb = b
            .get(name)
            .with_context(|| format!("output '{name}' is missing from a backend's results"))?;
        if va.len() != vb.len() {
            bail!(
                "output '{name}' has {} values in one backend and {} in another",
                va.len(),
                vb.len()
            );
        }
        for (x, y) in va.iter().zip(vb) {
            worst = worst.max((x - y).abs());
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tract_and_runtime_agree_on_an_fp32_mlp() {
        let m = edgeloop_quantize::testmodels::mlp();
        let bytes = m.to_bytes();
        let inputs = m.inputs(&HashMap::new()).unwrap();
        let s = sample(&inputs, &[]).unwrap();
        let runs = run_all(
            &bytes,
            &m,
            &inputs,
            &s,
            &[Backend::Runtime, Backend::Tract],
            2,
        )
        .unwrap();
        assert_eq!(runs.len(), 2);
        let d = runs[1].max_abs_diff_vs_runtime.unwrap();
        assert!(d < 1e-4, "runtime vs tract differ by {d}");
        assert!(runs[0]
            .outputs
            .values()
            .next()
            .unwrap()
            .iter()
            .any(|&v| v != 0.0));
    }

    #[test]
    fn wrong_input_lengths_and_fractional_ids_are_errors() {
        let spec = vec![
            InputSpec {
                name: "x".into(),
                shape: vec![1, 3],
                elem: ElemType::F32,
            },
            InputSpec {
                name: "ids".into(),
                shape: vec![2],
                elem: ElemType::I64,
            },
        ];
        assert!(sample(&spec, &[Some(vec![1.0, 2.0])]).is_err());
        assert!(sample(&spec, &[None, Some(vec![1.0, 2.5])]).is_err());
        let s = sample(&spec, &[None, Some(vec![1.0, 2.0])]).unwrap();
        assert_eq!(s["ids"].data, TensorData::I64(vec![1, 2]));
    }
}

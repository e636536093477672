//! ONNX Runtime as an oracle (loaded dynamically from `ORT_DYLIB_PATH`), at graph optimization
//! Level1 so that QDQ nodes are not fused into kernels that round differently.

use std::collections::HashMap;
use std::sync::OnceLock;

use ort::session::{builder::GraphOptimizationLevel, Session};
use ort::value::TensorRef;

use crate::error::{Error, Result};
use crate::runner::Sample;
use crate::tensor::{Tensor, TensorData};

/// The process-wide ONNX Runtime environment, loaded from `ORT_DYLIB_PATH` once.
fn environment() -> Result<&'static ort::environment::Environment> {
    static ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var("ORT_DYLIB_PATH")
            .map_err(|_| "ORT_DYLIB_PATH is not set (point it at libonnxruntime.so)".to_string())?;
        if !std::path::Path::new(&path).is_file() {
            return Err(format!("ORT_DYLIB_PATH={path} is not a file"));
        }
        ort::init_from(&path)
            .map_err(|e| format!("loading {path}: {e}"))?
            .build()
            .map_err(|e| format!("creating the environment: {e}"))
    })
    .as_ref()
    .map_err(|e| Error::Ort(e.clone()))
}

/// An ONNX Runtime session over model bytes.
pub struct OrtModel {
    session: Session,
}

impl OrtModel {
    /// Loads a model (optimization Level1, one intra-op thread for reproducibility).
    pub fn new(bytes: &[u8]) -> Result<Self> {
        let env = environment()?;
        let e = |e: ort::Error| Error::Ort(e.to_string());
        let session = Session::builder(env)
            .map_err(e)?
            .with_optimization_level(GraphOptimizationLevel::Level1)
            .map_err(|x| Error::Ort(x.to_string()))?
            .with_intra_threads(1)
            .map_err(|x| Error::Ort(x.to_string()))?
            .commit_from_memory(bytes)
            .map_err(e)?;
        Ok(OrtModel { session })
    }

    /// Runs one sample; returns every float output by name.
    pub fn run(&mut self, sample: &Sample) -> Result<HashMap<String, Tensor>> {
        let e = |e: ort::Error| Error::Ort(e.to_string());
        let names: Vec<String> = self
            .session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let mut arrays_f = Vec::new();
        let mut arrays_i = Vec::new();
        for name in &names {
            let t = sample
                .get(name)
                .ok_or_else(|| Error::Ort(format!("sample lacks input '{name}'")))?;
            match &t.data {
                TensorData::F32(v) => arrays_f.push((
                    name.clone(),
                    ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())
                        .map_err(|x| Error::Ort(x.to_string()))?,
                )),
                TensorData::I64(v) => arrays_i.push((
                    name.clone(),
                    ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())
                        .map_err(|x| Error::Ort(x.to_string()))?,
                )),
            }
        }
        let mut inputs: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> = Vec::new();
        for (n, a) in &arrays_f {
            inputs.push((
                n.clone().into(),
                TensorRef::from_array_view(a.view()).map_err(e)?.into(),
            ));
        }
        for (n, a) in &arrays_i {
            inputs.push((
                n.clone().into(),
                TensorRef::from_array_view(a.view()).map_err(e)?.into(),
            ));
        }
        let out_names: Vec<String> = self
            .session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let outputs = self.session.run(inputs).map_err(e)?;
        let mut map = HashMap::new();
        for name in out_names {
            let Some(v) = outputs.get(&name) else {
                continue;
            };
            if let Ok(a) = v.try_extract_array::<f32>() {
                map.insert(
                    name,
                    Tensor::f32(a.shape().to_vec(), a.iter().copied().collect())?,
                );
            }
        }
        Ok(map)
    }
}

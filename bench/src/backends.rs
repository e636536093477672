//! One ONNX artifact (or its image) in one engine, behind [`Backend`].

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use edgeloop_quantize::compile::{Compiled, IoSpec};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use tract_onnx::prelude as tp;
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable};

use crate::models::{Input, InputData};
use crate::{Error, Result};

/// An engine loaded with one model and one fixed input.
pub trait Backend {
    /// Runs the model once on its input (what the bench times).
    fn run(&mut self) -> Result<()>;
    /// Runs the model once and returns its first output as f32 (dequantized where the engine
    /// returns int8).
    fn output(&mut self) -> Result<Vec<f32>>;
}

// ---------------------------------------------------------------------------------------------
// Our runtime.

enum OurInput {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I8(Vec<i8>),
}

/// Our runtime over a compiled image. The image, model and arena are leaked so that the
/// interpreter can live in a struct: a bench process builds a handful of them.
pub struct Ours {
    it: Interpreter<'static, 'static>,
    inputs: Vec<OurInput>,
    output: IoSpec,
    /// Arena bytes.
    pub arena_bytes: usize,
    /// Image bytes.
    pub image_bytes: usize,
}

fn rt(e: edgeloop_runtime::Error) -> Error {
    Error::Runtime(format!("{e:?}"))
}

impl Ours {
    /// Parses the image, allocates its arena, starts `threads − 1` worker threads
    /// (`Interpreter::set_threads`) and converts `inputs` to the image's input types.
    pub fn new(c: &Compiled, inputs: &[Input], threads: usize) -> Result<Self> {
        let bytes: &'static AlignedBytes = Box::leak(Box::new(AlignedBytes::new(c.bytes())));
        let model: &'static Model<'static> =
            Box::leak(Box::new(Model::parse(bytes.as_slice()).map_err(rt)?));
        let arena_bytes = model.arena_bytes();
        let arena: &'static mut AlignedBytes =
            Box::leak(Box::new(AlignedBytes::zeroed(arena_bytes)));
        let mut it = Interpreter::new(model, arena.as_mut_slice()).map_err(rt)?;
        it.set_threads(threads)
            .map_err(|e| Error::Runtime(format!("starting {threads} threads: {e}")))?;
        let mut ours = Vec::new();
        for spec in &c.report.inputs {
            let inp = inputs
                .iter()
                .find(|i| i.name == spec.name)
                .ok_or_else(|| Error::Check(format!("no value for image input '{}'", spec.name)))?;
            let v = match (&inp.data, spec.image_type.as_str()) {
                (InputData::F32(v), "f32") => OurInput::F32(v.clone()),
                (InputData::I64(v), "i32") => OurInput::I32(
                    v.iter()
                        .map(|&x| i32::try_from(x))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| Error::Check(format!("'{}': id exceeds int32", spec.name)))?,
                ),
                (InputData::I64(v), "i8") => OurInput::I8(
                    v.iter()
                        .map(|&x| i8::try_from(x - spec.offset))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| {
                            Error::Check(format!("'{}': value outside int8", spec.name))
                        })?,
                ),
                (_, t) => {
                    return Err(Error::Check(format!(
                        "input '{}': image type {t} does not match the sample",
                        spec.name
                    )))
                }
            };
            ours.push(v);
        }
        let output = c
            .report
            .outputs
            .first()
            .cloned()
            .ok_or_else(|| Error::Check("image has no output".into()))?;
        Ok(Ours {
            it,
            inputs: ours,
            output,
            arena_bytes,
            image_bytes: c.bytes().len(),
        })
    }
}

impl Backend for Ours {
    fn run(&mut self) -> Result<()> {
        for (k, inp) in self.inputs.iter().enumerate() {
            match inp {
                OurInput::F32(v) => self.it.input_f32(k).map_err(rt)?.copy_from_slice(v),
                OurInput::I32(v) => self.it.input_i32(k).map_err(rt)?.copy_from_slice(v),
                OurInput::I8(v) => self.it.input_i8(k).map_err(rt)?.copy_from_slice(v),
            }
        }
        self.it.invoke().map_err(rt)?;
        std::hint::black_box(self.it.output_bytes(0).map_err(rt)?);
        Ok(())
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        self.run()?;
        Ok(match self.output.image_type.as_str() {
            "f32" => self.it.output_f32(0).map_err(rt)?.to_vec(),
            "i32" => self
                .it
                .output_i32(0)
                .map_err(rt)?
                .iter()
                .map(|&v| v as f32)
                .collect(),
            "i8" => {
                let (s, z) = self.output.quant.unwrap_or((1.0, 0));
                self.it
                    .output_i8(0)
                    .map_err(rt)?
                    .iter()
                    .map(|&v| (v as i32 - z) as f32 * s)
                    .collect()
            }
            t => return Err(Error::Check(format!("output image type {t}"))),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// ONNX Runtime.

/// The process-wide ONNX Runtime environment, loaded once from `ORT_DYLIB_PATH`.
pub fn ort_environment() -> Result<&'static ort::environment::Environment> {
    static ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var("ORT_DYLIB_PATH").map_err(|_| {
            "ORT_DYLIB_PATH is not set: point it at libonnxruntime.so (the venv's \
             onnxruntime/capi/libonnxruntime.so.*; scripts/bench.sh sets it)"
                .to_string()
        })?;
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

/// ONNX Runtime's build information (version, commit), from the loaded library.
pub fn ort_build_info() -> Result<String> {
    ort_environment()?;
    Ok(ort::info().to_string())
}

/// ONNX Runtime session over model bytes.
pub struct OrtPeer {
    session: Session,
    f32_inputs: Vec<(String, ndarray::ArrayD<f32>)>,
    i64_inputs: Vec<(String, ndarray::ArrayD<i64>)>,
    output: String,
}

impl OrtPeer {
    /// A session with `threads` intra-op threads (inter-op 1, sequential execution) at
    /// `level` (`None`: ONNX Runtime's default, which enables all graph optimizations).
    pub fn new(
        bytes: &[u8],
        inputs: &[Input],
        level: Option<GraphOptimizationLevel>,
        threads: usize,
    ) -> Result<Self> {
        let env = ort_environment()?;
        let e = |e: ort::Error| Error::Ort(e.to_string());
        let mut b = Session::builder(env).map_err(e)?;
        if let Some(l) = level {
            b = b
                .with_optimization_level(l)
                .map_err(|x| Error::Ort(x.to_string()))?;
        }
        let session = b
            .with_intra_threads(threads)
            .map_err(|x| Error::Ort(x.to_string()))?
            .with_inter_threads(1)
            .map_err(|x| Error::Ort(x.to_string()))?
            .commit_from_memory(bytes)
            .map_err(e)?;
        let output = session
            .outputs()
            .first()
            .map(|o| o.name().to_string())
            .ok_or_else(|| Error::Ort("model has no output".into()))?;
        let sh = |x: ndarray::ShapeError| Error::Check(x.to_string());
        let (mut f32_inputs, mut i64_inputs) = (Vec::new(), Vec::new());
        for i in inputs {
            match &i.data {
                InputData::F32(v) => f32_inputs.push((
                    i.name.clone(),
                    ndarray::ArrayD::from_shape_vec(i.shape.clone(), v.clone()).map_err(sh)?,
                )),
                InputData::I64(v) => i64_inputs.push((
                    i.name.clone(),
                    ndarray::ArrayD::from_shape_vec(i.shape.clone(), v.clone()).map_err(sh)?,
                )),
            }
        }
        Ok(OrtPeer {
            session,
            f32_inputs,
            i64_inputs,
            output,
        })
    }

    fn run_inner(&mut self, keep: bool) -> Result<Vec<f32>> {
        let e = |e: ort::Error| Error::Ort(e.to_string());
        let mut inputs: Vec<(Cow<str>, SessionInputValue)> = Vec::new();
        for (n, a) in &self.f32_inputs {
            inputs.push((
                n.as_str().into(),
                TensorRef::from_array_view(a.view()).map_err(e)?.into(),
            ));
        }
        for (n, a) in &self.i64_inputs {
            inputs.push((
                n.as_str().into(),
                TensorRef::from_array_view(a.view()).map_err(e)?.into(),
            ));
        }
        let outputs = self.session.run(inputs).map_err(e)?;
        if !keep {
            std::hint::black_box(&outputs);
            return Ok(Vec::new());
        }
        let v = outputs
            .get(&self.output)
            .ok_or_else(|| Error::Ort(format!("no output '{}'", self.output)))?;
        let a = v.try_extract_array::<f32>().map_err(e)?;
        Ok(a.iter().copied().collect())
    }
}

impl Backend for OrtPeer {
    fn run(&mut self) -> Result<()> {
        self.run_inner(false).map(|_| ())
    }
    fn output(&mut self) -> Result<Vec<f32>> {
        self.run_inner(true)
    }
}

// ---------------------------------------------------------------------------------------------
// tract.

/// tract with its full optimization (`into_optimized`), as a user running the model in tract
/// would. The tract in this workspace is built without `multithread-mm`: one thread only.
pub struct TractPeer {
    plan: Arc<tp::TypedRunnableModel>,
    inputs: tp::TVec<tp::TValue>,
}

impl TractPeer {
    /// Loads `model` with static input shapes taken from `inputs`.
    pub fn new(model: &edgeloop_quantize::OnnxModel, inputs: &[Input]) -> Result<Self> {
        let terr = |e: tp::TractError| Error::Tract(format!("{e:#}"));
        let mut m = tract_onnx::onnx()
            .model_for_proto_model(&model.proto)
            .map_err(terr)?;
        let mut values = tp::TVec::new();
        for (k, i) in inputs.iter().enumerate() {
            let (dt, t) = match &i.data {
                InputData::F32(v) => (
                    tp::DatumType::F32,
                    tp::Tensor::from_shape(&i.shape, v.as_slice()),
                ),
                InputData::I64(v) => (
                    tp::DatumType::I64,
                    tp::Tensor::from_shape(&i.shape, v.as_slice()),
                ),
            };
            m.set_input_fact(k, tp::InferenceFact::dt_shape(dt, i.shape.clone()))
                .map_err(terr)?;
            values.push(tp::IntoTValue::into_tvalue(t.map_err(terr)?));
        }
        let plan = m
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(terr)?;
        Ok(TractPeer {
            plan,
            inputs: values,
        })
    }
}

impl Backend for TractPeer {
    fn run(&mut self) -> Result<()> {
        let out = self
            .plan
            .run(self.inputs.clone())
            .map_err(|e| Error::Tract(format!("{e:#}")))?;
        std::hint::black_box(&out);
        Ok(())
    }
    fn output(&mut self) -> Result<Vec<f32>> {
        let out = self
            .plan
            .run(self.inputs.clone())
            .map_err(|e| Error::Tract(format!("{e:#}")))?;
        let v = out
            .first()
            .ok_or_else(|| Error::Tract("no output".into()))?;
        let view = v
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::Tract(format!("{e:#}")))?;
        Ok(view.iter().copied().collect())
    }
}

// ---------------------------------------------------------------------------------------------

/// The engines and configurations the bench compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Engine {
    /// Our runtime, int8 image.
    OursInt8,
    /// Our runtime, f32 image.
    OursF32,
    /// ONNX Runtime, int8 QDQ model, default optimization level (all).
    OrtInt8Default,
    /// ONNX Runtime, int8 QDQ model, Level1.
    OrtInt8Level1,
    /// ONNX Runtime, fp32 model, default optimization level.
    OrtF32,
    /// tract, int8 QDQ model.
    TractInt8,
    /// tract, fp32 model.
    TractF32,
}

impl Engine {
    /// All, ours first.
    pub const ALL: [Engine; 7] = [
        Engine::OursInt8,
        Engine::OursF32,
        Engine::OrtInt8Default,
        Engine::OrtInt8Level1,
        Engine::OrtF32,
        Engine::TractInt8,
        Engine::TractF32,
    ];

    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            Engine::OursInt8 => "edgeloop int8 image",
            Engine::OursF32 => "edgeloop f32 image",
            Engine::OrtInt8Default => "ORT int8 QDQ (default opt)",
            Engine::OrtInt8Level1 => "ORT int8 QDQ (Level1)",
            Engine::OrtF32 => "ORT fp32",
            Engine::TractInt8 => "tract int8 QDQ",
            Engine::TractF32 => "tract fp32",
        }
    }

    /// Whether it computes in int8.
    pub fn is_int8(self) -> bool {
        matches!(
            self,
            Engine::OursInt8 | Engine::OrtInt8Default | Engine::OrtInt8Level1 | Engine::TractInt8
        )
    }

    /// Whether it is our runtime.
    pub fn is_ours(self) -> bool {
        matches!(self, Engine::OursInt8 | Engine::OursF32)
    }

    /// Threads the engine really uses when `threads` are asked for.
    pub fn effective_threads(self, threads: usize) -> usize {
        match self {
            Engine::OrtInt8Default
            | Engine::OrtInt8Level1
            | Engine::OrtF32
            | Engine::OursInt8
            | Engine::OursF32 => threads,
            _ => 1,
        }
    }

    /// Loads `m` into this engine with `threads` threads.
    pub fn load(self, m: &crate::models::BenchModel, threads: usize) -> Result<Box<dyn Backend>> {
        Ok(match self {
            Engine::OursInt8 => Box::new(Ours::new(&m.image_i8, &m.inputs, threads)?),
            Engine::OursF32 => Box::new(Ours::new(&m.image_f32, &m.inputs, threads)?),
            Engine::OrtInt8Default => {
                Box::new(OrtPeer::new(&m.qdq.to_bytes(), &m.inputs, None, threads)?)
            }
            Engine::OrtInt8Level1 => Box::new(OrtPeer::new(
                &m.qdq.to_bytes(),
                &m.inputs,
                Some(GraphOptimizationLevel::Level1),
                threads,
            )?),
            Engine::OrtF32 => Box::new(OrtPeer::new(&m.fp32.to_bytes(), &m.inputs, None, threads)?),
            Engine::TractInt8 => Box::new(TractPeer::new(&m.qdq, &m.inputs)?),
            Engine::TractF32 => Box::new(TractPeer::new(&m.fp32, &m.inputs)?),
        })
    }
}

//! Exact footprints before training: a candidate's image is built with the real toolchain —
//! fp32 ONNX export of the (untrained) DS-CNN, calibrated int8 QDQ quantization, the front
//! end's int8 input pinned, compilation to a model image — and its flash (by section) and arena
//! (from the planner) are read from the compiler's report.
//!
//! Sizes of the image depend only on the shapes, not on the weights' values, with one
//! exception: the image writer stores identical constants once. A freshly initialised model's
//! biases are all zero (every bias of one length would share one entry), so the footprint build
//! sets them to small distinct values first; other coincidences (two layers with the same
//! per-channel shifts, say) depend on the trained values and save a few 16-byte blocks. So the
//! footprint gives the built image's exact flash **and** the flash bound without deduplication
//! ([`flash_without_dedup`]), which no set of weight values can exceed; the fit check uses the
//! bound. The arena depends on shapes only and is exact. The selection re-checks the winner's
//! trained image against its predicted footprint ([`crate::search`]).

use std::collections::HashMap;

use candle_core::Tensor;
use edgeloop_quantize::compile::host::{Elem, HostTensor};
use edgeloop_quantize::compile::report::FlashSections;
use edgeloop_quantize::compile::{compile, CompileOptions, Compiled, HostMap};
use edgeloop_quantize::tensor::Tensor as QTensor;
use edgeloop_quantize::{Dataset, OnnxModel, QuantizeConfig};
use edgeloop_runtime::audio::{Scratch, FEATURE_SCALE, FEATURE_ZERO_POINT, FRAMES, MEL_BANDS};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::{Model, Storage};
use edgeloop_trainer::audio::dequantize;
use edgeloop_trainer::audio::train::FeatureSet;
use edgeloop_trainer::export::ds_cnn::{export_ds_cnn, pin_int8_input, INPUT};
use edgeloop_trainer::export::graph::encode;
use edgeloop_trainer::models::ds_cnn::DsCnn;
use serde::Serialize;

use crate::cost::{estimate, Cost};
use crate::device::Budget;
use crate::error::{Result, SelectError};
use crate::precision::{float_nodes, Precision};

/// ONNX opset of the exported models.
pub const OPSET: i64 = 17;

/// RAM of the audio front end's working memory on the device (its FFT buffers), bytes.
pub const FRONT_END_SCRATCH: u64 = std::mem::size_of::<Scratch>() as u64;

/// A calibration set of `n` clips spread evenly over `set` (every class, since the splits
/// list clips class by class), dequantized as the model sees them.
pub fn calibration(set: &FeatureSet, n: usize) -> Result<Dataset> {
    let per = FRAMES * MEL_BANDS;
    let n = n.min(set.len());
    if n == 0 {
        return Err(SelectError::Config(
            "no clips to calibrate the quantizer with".into(),
        ));
    }
    let mut samples = Vec::with_capacity(n);
    for k in 0..n {
        let i = k * set.len() / n;
        let v: Vec<f32> = set.int8[i * per..(i + 1) * per]
            .iter()
            .map(|&q| dequantize(q))
            .collect();
        let t = QTensor::f32(vec![1, 1, FRAMES, MEL_BANDS], v)?;
        samples.push(HashMap::from([(INPUT.to_string(), t)]));
    }
    Ok(Dataset { samples })
}

/// An image built from a model, with the int8 QDQ ONNX it was compiled from.
#[derive(Debug, Clone)]
pub struct Built {
    /// The fp32 ONNX export.
    pub fp32: OnnxModel,
    /// The int8 QDQ model with the front end's int8 input.
    pub qdq: OnnxModel,
    /// The compiled image and its report.
    pub compiled: Compiled,
}

/// The keyword model's classification head (the `fc` Gemm), kept f32 by
/// [`Precision::MixedHead`].
pub const HEAD: &str = "fc";

/// The keyword model's first layer (the `conv0` convolution and `conv0/Relu`), kept f32 by
/// [`Precision::MixedFirst`].
pub const FIRST: &str = "conv0";

/// Puts a `QuantizeLinear → DequantizeLinear` pair on graph input `input` of a QDQ model whose
/// first layer was left float (so nothing quantizes the input), reusing the scalar scale and
/// zero-point initializers of the model's first `QuantizeLinear` as templates: the input's
/// consumers read the dequantized value, and [`pin_int8_input`] can then make it the int8
/// input it is on the device.
fn quantize_input(qdq: &mut OnnxModel, input: &str) -> std::result::Result<(), String> {
    let g = qdq.graph_mut();
    let q = g
        .node
        .iter()
        .find(|n| n.op_type == "QuantizeLinear" && n.input.len() == 3)
        .cloned()
        .ok_or("the model has no QuantizeLinear to copy")?;
    let mut inits = Vec::new();
    for (k, suffix) in [(1usize, "scale"), (2, "zero_point")] {
        let mut t = g
            .initializer
            .iter()
            .find(|t| t.name == q.input[k])
            .cloned()
            .ok_or_else(|| format!("'{}' is not an initializer", q.input[k]))?;
        t.name = format!("{input}/pinned_{suffix}");
        inits.push(t.name.clone());
        g.initializer.push(t);
    }
    let (qn, dqn) = (format!("{input}/pinned_q"), format!("{input}/pinned_dq"));
    for n in g.node.iter_mut() {
        for i in n.input.iter_mut() {
            if i == input {
                *i = dqn.clone();
            }
        }
    }
    let mut qnode = q.clone();
    qnode.name = qn.clone();
    qnode.input = vec![input.to_string(), inits[0].clone(), inits[1].clone()];
    qnode.output = vec![qn.clone()];
    let mut dq = q;
    dq.op_type = "DequantizeLinear".into();
    dq.name = dqn.clone();
    dq.input = vec![qn, inits[0].clone(), inits[1].clone()];
    dq.output = vec![dqn];
    dq.attribute.retain(|a| a.name == "axis");
    g.node.insert(0, dq);
    g.node.insert(0, qnode);
    Ok(())
}

/// Exports, quantizes to int8 (calibrated on `calib`), pins the int8 input and compiles `model`.
pub fn build(model: &DsCnn, calib: &Dataset, name: &str) -> Result<Built> {
    build_at(model, calib, name, Precision::Int8)
}

/// [`build`] at `precision` (mixed: the head's nodes are left float by the quantizer).
pub fn build_at(model: &DsCnn, calib: &Dataset, name: &str, precision: Precision) -> Result<Built> {
    let err = |stage: &'static str| {
        move |e: &dyn std::fmt::Display| SelectError::Build {
            candidate: name.to_string(),
            stage,
            message: e.to_string(),
        }
    };
    let proto = export_ds_cnn(model, 1, OPSET).map_err(|e| err("export")(&e))?;
    let fp32 = OnnxModel::from_bytes(&encode(&proto)).map_err(|e| err("export")(&e))?;
    let exclude = float_nodes(&fp32, precision, HEAD, Some(FIRST));
    if precision != Precision::Int8 && exclude.is_empty() {
        return Err(err("quantize")(&format!(
            "{precision:?}: the model has no node to keep float"
        )));
    }
    let cfg = QuantizeConfig {
        exclude,
        ..QuantizeConfig::default()
    };
    let q = edgeloop_quantize::quantize(&fp32, calib, &cfg).map_err(|e| err("quantize")(&e))?;
    let mut qdq = q.model;
    if precision == Precision::MixedFirst {
        quantize_input(&mut qdq, INPUT).map_err(|e| err("pin input")(&e))?;
    }
    pin_int8_input(
        &mut qdq.proto,
        INPUT,
        FEATURE_SCALE,
        FEATURE_ZERO_POINT as i8,
    )
    .map_err(|e| err("pin input")(&e))?;
    let opts = CompileOptions {
        name: Some(name.chars().take(24).collect()),
        model_version: 1,
        ..CompileOptions::default()
    };
    let compiled = compile(&qdq.proto, &opts).map_err(|e| err("compile")(&e))?;
    Ok(Built {
        fp32,
        qdq,
        compiled,
    })
}

/// Uniform noise in ±`amplitude / 2` from splitmix64 started at `state` (the same sequence for
/// the same state).
pub(crate) fn noise(mut state: u64, amplitude: f32) -> impl FnMut() -> f32 {
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amplitude
    }
}

/// Sets every bias of `model` to small distinct values (seeded), so that the footprint build's
/// constants are not deduplicated where a trained model's would not be (see the module docs).
pub fn distinct_biases(model: &DsCnn, seed: u64) -> Result<()> {
    let mut next = noise(seed ^ 0x00B1_A5ED, 0.1);
    for (name, var) in &model.vars {
        if name.ends_with(".bias") {
            let n = var.elem_count();
            let v: Vec<f32> = (0..n).map(|_| next()).collect();
            let t = Tensor::from_vec(v, var.shape(), var.device())?.to_dtype(var.dtype())?;
            var.set(&t)?;
        }
    }
    Ok(())
}

/// Bytes of `image` if no constant were deduplicated: the image's size with its constant
/// section replaced by every constant tensor stored separately, 16-byte aligned (the writer's
/// layout). Training cannot make an image larger than this.
pub fn flash_without_dedup(image: &[u8], constant_section: usize) -> Result<u64> {
    let bytes = AlignedBytes::new(image);
    let model = Model::parse(bytes.as_slice()).map_err(|e| SelectError::Image {
        candidate: "footprint".into(),
        message: format!("{e:?}"),
    })?;
    let mut consts = 0u64;
    for i in 0..model.num_tensors() {
        let t = model.tensor(i).map_err(|e| SelectError::Image {
            candidate: "footprint".into(),
            message: format!("tensor {i}: {e:?}"),
        })?;
        if t.storage == Storage::Constant {
            consts += (t.len as u64).div_ceil(16) * 16;
        }
    }
    Ok(image.len() as u64 - constant_section as u64 + consts)
}

/// Flash, RAM and cost of one image against a budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Footprint {
    /// The image's flash by section (from the compiler's report).
    pub image: FlashSections,
    /// Firmware flash besides the image (the budget's overhead).
    pub firmware_flash: u64,
    /// Image + firmware flash (this build, exact).
    pub flash_total: u64,
    /// Image without constant deduplication + firmware flash: the most any trained weights
    /// can take (what the fit check uses).
    pub flash_bound: u64,
    /// The planned arena (header field `arena_bytes`).
    pub arena: u64,
    /// The arena's exact lower bound (largest set of live tensors).
    pub arena_lower_bound: u64,
    /// The audio front end's scratch RAM.
    pub front_end_scratch: u64,
    /// Firmware RAM besides the arena (stack, statics; the budget's overhead).
    pub firmware_ram: u64,
    /// Arena + front-end scratch + firmware RAM.
    pub ram_total: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Estimated instructions per inference ([`crate::cost`]).
    pub instructions: f64,
    /// Estimated latency per inference (ms) at the budget's instructions per second.
    pub latency_ms: f64,
    /// Ops counted as zero instructions (not measured by the bench).
    pub unmeasured_ops: Vec<String>,
    /// Why the candidate does not fit (empty: it fits).
    pub over_budget: Vec<String>,
}

impl Footprint {
    /// The footprint of the keyword model's `compiled` image against `budget` (the audio front
    /// end's scratch counted in RAM).
    pub fn of(compiled: &Compiled, budget: &Budget) -> Result<Self> {
        Self::with_front_end(compiled, budget, FRONT_END_SCRATCH)
    }

    /// The footprint of `compiled` against `budget`, with `front_end_scratch` bytes of RAM for
    /// the input pipeline besides the arena (0 for token inputs).
    pub fn with_front_end(
        compiled: &Compiled,
        budget: &Budget,
        front_end_scratch: u64,
    ) -> Result<Self> {
        let cost: Cost = estimate(compiled.bytes(), budget.kernels)?;
        let r = &compiled.report;
        let image = r.flash.clone();
        let flash_total = image.total as u64 + budget.firmware_flash_bytes;
        let flash_bound =
            flash_without_dedup(compiled.bytes(), image.constants)? + budget.firmware_flash_bytes;
        let ram_total = r.arena_bytes as u64 + front_end_scratch + budget.firmware_ram_bytes;
        let latency_ms = cost.latency_ms(budget.instructions_per_second);
        let mut over = Vec::new();
        if flash_bound > budget.flash_bytes {
            over.push(format!(
                "flash {flash_bound} B (image ≤ {} + firmware {}) > {} B",
                flash_bound - budget.firmware_flash_bytes,
                budget.firmware_flash_bytes,
                budget.flash_bytes
            ));
        }
        if ram_total > budget.ram_bytes {
            over.push(format!(
                "RAM {ram_total} B (arena {} + front end {front_end_scratch} + firmware {}) > {} B",
                r.arena_bytes, budget.firmware_ram_bytes, budget.ram_bytes
            ));
        }
        if let Some(l) = budget.latency_ms {
            if latency_ms > l {
                over.push(format!("latency {latency_ms:.2} ms > {l} ms"));
            }
        }
        Ok(Footprint {
            image,
            firmware_flash: budget.firmware_flash_bytes,
            flash_total,
            flash_bound,
            arena: r.arena_bytes as u64,
            arena_lower_bound: r.lower_bound as u64,
            front_end_scratch,
            firmware_ram: budget.firmware_ram_bytes,
            ram_total,
            macs: cost.macs,
            instructions: cost.instructions,
            latency_ms,
            unmeasured_ops: cost.unmeasured(),
            over_budget: over,
        })
    }

    /// Whether it fits.
    pub fn fits(&self) -> bool {
        self.over_budget.is_empty()
    }

    /// Whether this (trained) image's footprint is the one `predicted` before training: same
    /// flash bound, header and graph, arena, RAM and MACs, and its flash within the bound.
    pub fn as_predicted_by(&self, predicted: Option<&Footprint>) -> bool {
        predicted.is_some_and(|p| {
            p.flash_bound == self.flash_bound
                && self.flash_total <= p.flash_bound
                && p.image.header_and_graph == self.image.header_and_graph
                && p.arena == self.arena
                && p.ram_total == self.ram_total
                && p.macs == self.macs
        })
    }
}

/// Accuracy of the int8 image on `set` (the host runtime runs the image on each clip's int8
/// features, exactly the bytes the device's front end produces).
pub fn image_accuracy(compiled: &Compiled, set: &FeatureSet) -> Result<f32> {
    let per = FRAMES * MEL_BANDS;
    let samples = set.labels.iter().enumerate().map(|(i, &label)| {
        let x = HostTensor::int(
            vec![1, 1, FRAMES, MEL_BANDS],
            Elem::I8,
            set.int8[i * per..(i + 1) * per]
                .iter()
                .map(|&q| q as i64)
                .collect(),
        );
        (x, label)
    });
    accuracy_on(compiled, INPUT, set.len(), samples)
}

/// Share of the `n` `samples` (input tensor, label) whose largest output of `compiled` (run
/// on the host runtime with the tensor as input `input`) is at the label's index; 0 when
/// `n` is 0.
pub(crate) fn accuracy_on(
    compiled: &Compiled,
    input: &str,
    n: usize,
    samples: impl Iterator<Item = (HostTensor, u32)>,
) -> Result<f32> {
    if n == 0 {
        return Ok(0.0);
    }
    let mut ok = 0usize;
    for (x, label) in samples {
        let inputs: HostMap = HashMap::from([(input.to_string(), x)]);
        let out = compiled.run(&inputs)?;
        let logits = out
            .values()
            .next()
            .map(|t| t.as_f32())
            .ok_or_else(|| SelectError::Config("the image has no output".into()))?;
        let best = logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (k, &v)| {
                if v > b.1 {
                    (k, v)
                } else {
                    b
                }
            })
            .0;
        if best as u32 == label {
            ok += 1;
        }
    }
    Ok(ok as f32 / n as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use edgeloop_trainer::audio::synth::{generate, SynthConfig};
    use edgeloop_trainer::audio::Split;
    use edgeloop_trainer::models::ds_cnn::DsCnnConfig;

    fn calib() -> Dataset {
        let data = generate(&SynthConfig::new(3, 10));
        let set = FeatureSet::of(&data, Split::Train).unwrap();
        calibration(&set, 4).unwrap()
    }

    /// Perturbs every variable (as training would), keeping shapes.
    fn perturb(m: &DsCnn, seed: u64) {
        let mut s = seed;
        for (_, v) in &m.vars {
            let n = v.elem_count();
            let d: Vec<f32> = (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
                })
                .collect();
            let t = Tensor::from_vec(d, v.shape(), v.device()).unwrap();
            v.set(&(v.as_tensor() + t).unwrap()).unwrap();
        }
    }

    /// The footprint of an untrained build with distinct biases is the footprint of the same
    /// shapes with other weights (as after training); with all-zero biases the constant section
    /// is deduplicated and smaller, which is why the biases are set first.
    #[test]
    fn footprint_depends_on_shapes_not_weights() {
        let calib = calib();
        let budget = Budget::explicit(256 * 1024, 64 * 1024, None).unwrap();
        let cfg = DsCnnConfig::small(8, 8, 2);
        let a = DsCnn::new(cfg.clone(), 1, 20.0, DType::F32).unwrap();
        let zero = build(&a, &calib, "zero").unwrap();
        distinct_biases(&a, 1).unwrap();
        let fa = Footprint::of(&build(&a, &calib, "a").unwrap().compiled, &budget).unwrap();
        let b = DsCnn::new(cfg, 2, 20.0, DType::F32).unwrap();
        perturb(&b, 5);
        let fb = Footprint::of(&build(&b, &calib, "b").unwrap().compiled, &budget).unwrap();
        // Same bound, arena and cost; the exact images differ by deduplicated blocks at most.
        assert_eq!(
            (fa.flash_bound, fa.arena, fa.ram_total, fa.macs),
            (fb.flash_bound, fb.arena, fb.ram_total, fb.macs)
        );
        assert_eq!(fa.instructions, fb.instructions);
        assert_eq!(fa.image.header_and_graph, fb.image.header_and_graph);
        for f in [&fa, &fb] {
            assert!(f.flash_total <= f.flash_bound);
            assert!(f.flash_bound - f.flash_total <= 128, "{f:?}");
        }
        let zc = &zero.compiled;
        assert!(zc.report.flash.constants < fa.image.constants);
        assert_eq!(
            flash_without_dedup(zc.bytes(), zc.report.flash.constants).unwrap(),
            fa.flash_bound - budget.firmware_flash_bytes
        );
        // The footprint is the compiler's report plus the budget's overheads.
        assert_eq!(
            fa.flash_total,
            fa.image.total as u64 + budget.firmware_flash_bytes
        );
        assert_eq!(
            fa.ram_total,
            fa.arena + FRONT_END_SCRATCH + budget.firmware_ram_bytes
        );
        assert!(fa.arena >= fa.arena_lower_bound && fa.macs == cfg_macs(8, 8, 2));
        assert!(fa.fits() && fa.latency_ms > 0.0);
    }

    fn cfg_macs(classes: usize, c: usize, b: usize) -> u64 {
        DsCnnConfig::small(classes, c, b).macs() as u64
    }

    #[test]
    fn over_budget_names_every_reason() {
        let calib = calib();
        let m = DsCnn::new(DsCnnConfig::small(8, 16, 1), 1, 20.0, DType::F32).unwrap();
        distinct_biases(&m, 1).unwrap();
        let c = build(&m, &calib, "m").unwrap().compiled;
        let tight = Budget::explicit(34 * 1024, 20 * 1024, Some(1.0)).unwrap();
        let f = Footprint::of(&c, &tight).unwrap();
        assert_eq!(f.over_budget.len(), 3, "{:?}", f.over_budget);
        assert!(f.over_budget[0].starts_with("flash"));
        assert!(f.over_budget[1].starts_with("RAM"));
        assert!(f.over_budget[2].starts_with("latency"));
    }

    /// Every op of a keyword image has a figure except the free `Reshape`. The compiler already
    /// runs the int8 model's `fc` head as an f32 island (its output feeds the float graph
    /// output, so there is no int8 pattern). The int8 image used to differ from the mixed one
    /// only by a Quantize of the head's output that nothing read; the compiler now drops ops
    /// nothing reads, so for this model the two images are the same.
    #[test]
    fn keyword_images_are_costed_and_mixed_keeps_fc_float() {
        use crate::cost::{estimate, KernelClass};
        use crate::device::KernelSet;
        let calib = calib();
        let m = DsCnn::new(DsCnnConfig::small(8, 8, 1), 1, 20.0, DType::F32).unwrap();
        distinct_biases(&m, 1).unwrap();
        let i8 = build(&m, &calib, "m").unwrap().compiled;
        let mx = build_at(&m, &calib, "m", Precision::MixedHead)
            .unwrap()
            .compiled;
        let (ci, cm) = (
            estimate(i8.bytes(), KernelSet::Dsp).unwrap(),
            estimate(mx.bytes(), KernelSet::Dsp).unwrap(),
        );
        for o in ci.ops.iter().chain(&cm.ops) {
            println!(
                "{} {:?} macs {} instr {:.0}",
                o.op, o.class, o.macs, o.instructions
            );
        }
        assert!(
            ci.unmeasured().iter().all(|o| o == "Reshape"),
            "{:?}",
            ci.unmeasured()
        );
        assert!(
            cm.unmeasured().iter().all(|o| o == "Reshape"),
            "{:?}",
            cm.unmeasured()
        );
        let f32_fc = |c: &crate::cost::Cost| {
            c.ops
                .iter()
                .filter(|o| o.class == Some(KernelClass::FullyConnectedF32Small))
                .count()
        };
        assert_eq!((f32_fc(&ci), f32_fc(&cm)), (1, 1));
        assert_eq!(ci.macs, cm.macs);
        assert_eq!(cm.ops.len(), ci.ops.len());
        assert_eq!(i8.report.flash, mx.report.flash);

        // First layer f32: the int8 input is dequantized in front of an f32 Conv2D, whose
        // weights are stored as f32 (more flash), and the rest stays int8.
        let mf = build_at(&m, &calib, "m", Precision::MixedFirst)
            .unwrap()
            .compiled;
        let cf = estimate(mf.bytes(), KernelSet::Dsp).unwrap();
        for o in &cf.ops {
            println!(
                "first: {} {:?} macs {} instr {:.0}",
                o.op, o.class, o.macs, o.instructions
            );
        }
        assert!(
            cf.unmeasured().iter().all(|o| o == "Reshape"),
            "{:?}",
            cf.unmeasured()
        );
        let classes: Vec<_> = cf.ops.iter().filter_map(|o| o.class).collect();
        assert_eq!(
            classes
                .iter()
                .filter(|&&c| c == KernelClass::Conv2dF32)
                .count(),
            1
        );
        assert!(classes.contains(&KernelClass::Conv2dPointwise));
        assert_eq!(cf.macs, ci.macs);
        assert!(mf.report.flash.total > i8.report.flash.total);
        assert!(cf.instructions > ci.instructions);
        // The image still takes the front end's int8 features, and runs.
        let data = generate(&SynthConfig::new(3, 10));
        let set = FeatureSet::of(&data, Split::Test).unwrap();
        let a = image_accuracy(&mf, &set).unwrap();
        assert!((0.0..=1.0).contains(&a));
    }

    /// Calibration clips are spread over the whole split (which lists clips class by class),
    /// not its first clips.
    #[test]
    fn calibration_spreads_over_the_split() {
        let per = FRAMES * MEL_BANDS;
        let set = FeatureSet {
            int8: (0..100).flat_map(|i| vec![i as i8; per]).collect(),
            labels: (0..100).map(|i| i / 10).collect(),
        };
        let d = calibration(&set, 10).unwrap();
        let firsts: Vec<f32> = d
            .samples
            .iter()
            .map(|s| s[INPUT].as_f32().unwrap()[0])
            .collect();
        let want: Vec<f32> = (0..10).map(|k| dequantize((k * 10) as i8)).collect();
        assert_eq!(firsts, want);
        assert!(calibration(
            &FeatureSet {
                int8: vec![],
                labels: vec![]
            },
            4
        )
        .is_err());
    }

    /// The image's int8 accuracy is computed on the image's own outputs: an untrained model
    /// scores what its argmax gives, in [0, 1], and an empty set scores 0.
    #[test]
    fn image_accuracy_runs_the_image() {
        let data = generate(&SynthConfig::new(3, 10));
        let set = FeatureSet::of(&data, Split::Test).unwrap();
        let m = DsCnn::new(DsCnnConfig::small(8, 8, 1), 1, 20.0, DType::F32).unwrap();
        let c = build(&m, &calib(), "m").unwrap().compiled;
        let a = image_accuracy(&c, &set).unwrap();
        assert!((0.0..=1.0).contains(&a));
        let empty = FeatureSet {
            int8: vec![],
            labels: vec![],
        };
        assert_eq!(image_accuracy(&c, &empty).unwrap(), 0.0);
    }
}

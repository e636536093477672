//! The interpreter: runs a validated [`Model`] over a caller-provided arena.
//!
//! Nothing is allocated during `invoke`: without `std` the interpreter is references (to the
//! model, the arena and, when given, the caller's [`PreparedOp`] slots); with `std`, `new` also
//! keeps every op decoded once (one `Vec`).
//!
//! Without `std`, [`Interpreter::new`] decodes each op's record, tensors and parameters again on
//! every `invoke` (2,100 to 2,800 Cortex-M4 instructions per op). [`Interpreter::new_prepared`]
//! decodes them once, into slots the caller provides (TensorFlow Lite Micro's "prepare", kept in
//! the caller's memory rather than the arena): [`PreparedOp::BYTES`] bytes of RAM per op for a
//! faster `invoke`.
//!
//! Inputs are written and outputs read through typed views into the arena. Graph inputs may be
//! overwritten by `invoke` (their bytes are reused once no op needs them), so write all inputs
//! before each call.

use crate::arena;
use crate::image::{binding, bytes, DType, Model, OpRecord, TensorInfo, ALL_OPS};
use crate::Error;

/// Runs a model over a caller's arena. `OPS` is the set of op kernels linked in (default: all;
/// firmware that runs one known model names them so the linker drops the others: one bit per
/// (op code, int8 or f32 variant), built with [`op_set_int8`](crate::image::op_set_int8),
/// [`op_set_f32`](crate::image::op_set_f32) or [`op_set`](crate::image::op_set) (both), or
/// computed from an image by [`op_set_of`](crate::image::op_set_of), plus
/// [`PACKED_WEIGHTS`](crate::image::PACKED_WEIGHTS) for FullyConnected version 2). An op whose
/// variant is outside the set is [`Error::UnsupportedOp`].
pub struct Interpreter<'m, 'a, const OPS: u128 = { ALL_OPS }> {
    model: &'m Model<'m>,
    arena: &'a mut [u8],
    /// The caller's slots filled by [`Interpreter::new_prepared`] (empty otherwise): op `i`
    /// runs from `prepared[i]` without decoding anything.
    prepared: &'a [PreparedOp<'m>],
    /// Under `std`: every op decoded once by `new` (kernel params borrowing the image, and the
    /// records of its output and first two inputs), so `invoke` does not decode and re-validate
    /// them again.
    /// Allocated in `new`, never in `invoke`. Without `std` each op is decoded as it runs,
    /// unless the caller gave op slots (`prepared`).
    #[cfg(any(test, feature = "std"))]
    bound: std::vec::Vec<PreparedOp<'m>>,
    #[cfg(any(test, feature = "std"))]
    pool: Option<crate::threads::Pool>,
}

impl<const OPS: u128> core::fmt::Debug for Interpreter<'_, '_, OPS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Interpreter")
            .field("model", &self.model)
            .field("arena_len", &self.arena.len())
            .finish_non_exhaustive()
    }
}

/// One op decoded once, for [`Interpreter::new_prepared`]: its record, kernel parameters
/// (borrowing constants from the image) and the records of its output and first two inputs.
///
/// Declare one per op of the model, `[PreparedOp::EMPTY; N]` (`Model::num_ops`; a firmware knows
/// it at build time), and hand them to the interpreter.
pub struct PreparedOp<'m> {
    slot: Option<(OpRecord<'m>, binding::Bound<'m>, binding::Places)>,
}

impl PreparedOp<'_> {
    /// An empty slot.
    pub const EMPTY: Self = PreparedOp { slot: None };
    /// RAM per slot on this target (on `thumbv7em-none-eabihf`: 184 bytes).
    pub const BYTES: usize = core::mem::size_of::<Self>();
}

impl core::fmt::Debug for PreparedOp<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreparedOp")
            .field("code", &self.slot.as_ref().map(|(rec, _, _)| rec.code))
            .finish_non_exhaustive()
    }
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Binds `model` to `arena`, which must be 16-byte aligned and at least
    /// [`Model::arena_bytes`] long. Persistent tensors (state) are zeroed.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        Self::new_with_ops(model, arena)
    }

    /// [`Interpreter::new`], with every op decoded once now into `slots` (at least
    /// [`Model::num_ops`] of them, else [`Error::PreparedSlotsTooFew`]) so that `invoke` decodes
    /// nothing: the same outputs, bit for bit, for [`PreparedOp::BYTES`] bytes of the caller's
    /// RAM per op.
    ///
    /// The slots hold borrows of the image bytes (lifetime `'i`), not of the `Model` value, so a
    /// firmware can keep them in a `static` (`[PreparedOp<'static>; N]` for an image in flash).
    pub fn new_prepared<'i: 'm>(
        model: &'m Model<'i>,
        arena: &'a mut [u8],
        slots: &'a mut [PreparedOp<'i>],
    ) -> Result<Self, Error> {
        Self::new_prepared_with_ops(model, arena, slots)
    }
}

impl<'m, 'a, const OPS: u128> Interpreter<'m, 'a, OPS> {
    /// [`Interpreter::new`] with only the kernels in `OPS` linked.
    pub fn new_with_ops(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        arena::check(model, arena)?;
        Self::with_prepared(model, arena, &[])
    }

    /// [`Interpreter::new_prepared`] with only the kernels in `OPS` linked.
    pub fn new_prepared_with_ops<'i: 'm>(
        model: &'m Model<'i>,
        arena: &'a mut [u8],
        slots: &'a mut [PreparedOp<'i>],
    ) -> Result<Self, Error> {
        let (needed, given) = (model.num_ops(), slots.len());
        let Some(slots) = slots.get_mut(..needed) else {
            return Err(Error::PreparedSlotsTooFew {
                needed: needed as u32,
                given: given as u32,
            });
        };
        // The arena first, as `new` checks it before binding: the same image and arena give
        // the same error either way.
        arena::check(model, arena)?;
        Self::prepare(model, slots)?;
        Self::with_prepared(model, arena, slots)
    }

    /// Decodes every op of `model` into `slots` (one per op, in order).
    fn prepare<'i>(model: &Model<'i>, slots: &mut [PreparedOp<'i>]) -> Result<(), Error> {
        for (i, (rec, slot)) in model.ops().zip(slots.iter_mut()).enumerate() {
            let rec = rec?;
            let (b, io) = binding::bind_with_io::<OPS>(model, i, &rec)?;
            slot.slot = Some((rec, b, io));
        }
        Ok(())
    }

    /// The interpreter over an arena already checked, running from `prepared` (filled) or,
    /// when it is empty, from its own decoded copy under `std`.
    fn with_prepared(
        model: &'m Model<'m>,
        arena: &'a mut [u8],
        prepared: &'a [PreparedOp<'m>],
    ) -> Result<Self, Error> {
        #[cfg(any(test, feature = "std"))]
        let bound = if prepared.is_empty() {
            Self::bind_all(model)?
        } else {
            std::vec::Vec::new()
        };
        let mut it = Interpreter {
            model,
            arena,
            prepared,
            #[cfg(any(test, feature = "std"))]
            bound,
            #[cfg(any(test, feature = "std"))]
            pool: None,
        };
        it.reset_state()?;
        Ok(it)
    }

    /// Every op of `model` decoded once, into one allocation of the model's op count.
    #[cfg(any(test, feature = "std"))]
    fn bind_all(model: &'m Model<'m>) -> Result<std::vec::Vec<PreparedOp<'m>>, Error> {
        let mut bound: std::vec::Vec<PreparedOp<'m>> =
            (0..model.num_ops()).map(|_| PreparedOp::EMPTY).collect();
        Self::prepare(model, &mut bound)?;
        Ok(bound)
    }

    /// Runs the largest ops (FullyConnected, int8 BatchMatMul) of each `invoke` on `threads`
    /// threads: this one and `threads − 1` workers started now (`std` only; 1 stops them). The
    /// outputs are the single-threaded outputs, bit for bit: each thread computes whole rows
    /// with the same kernel. Between ops the workers spin briefly, then park; `invoke` still
    /// allocates nothing.
    #[cfg(any(test, feature = "std"))]
    pub fn set_threads(&mut self, threads: usize) -> std::io::Result<()> {
        self.pool = None;
        if threads > 1 {
            self.pool = Some(crate::threads::Pool::new(threads)?);
        }
        Ok(())
    }

    /// Threads `invoke` uses (1 unless [`Self::set_threads`] asked for more).
    #[cfg(any(test, feature = "std"))]
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.threads())
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Zeroes every persistent tensor (e.g. clears a KV-cache).
    pub fn reset_state(&mut self) -> Result<(), Error> {
        for i in 0..self.model.num_tensors() {
            if self.model.is_persistent(i) == Some(true) {
                let t = self.model.tensor(i)?;
                arena::bytes_mut(self.arena, &t)?.fill(0);
            }
        }
        Ok(())
    }

    /// Runs every op in order.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn invoke(&mut self) -> Result<(), Error> {
        self.invoke_with_hook(|_, _| {})
    }

    /// Runs every op in order, like [`Interpreter::invoke`], and calls `after(index, record)`
    /// right after op `index` has run: a per-op profiling hook (instruction counters, cycle
    /// counters, tracing). Nothing is allocated; the hook sees the op's record, not its tensors.
    ///
    /// Each op runs from the caller's prepared slot ([`Interpreter::new_prepared`]), else from
    /// the interpreter's own decoded copy (`std`), else decoded now; one `run_bound` call site
    /// serves all three (two sites made the Cortex-M4 build stop inlining it: +600 instructions
    /// per op).
    pub fn invoke_with_hook(
        &mut self,
        mut after: impl FnMut(usize, &OpRecord<'m>),
    ) -> Result<(), Error> {
        let prepared: &[PreparedOp<'m>] = self.prepared;
        #[cfg(any(test, feature = "std"))]
        let prepared = if prepared.is_empty() {
            &self.bound[..]
        } else {
            prepared
        };
        let mut records = self.model.ops();
        for i in 0..self.model.num_ops() {
            // Decoded here only when nothing is kept: separate locals, since building a
            // `PreparedOp` would move the parameters once more (two `memcpy` calls per op on the
            // Cortex-M4).
            let (rec_now, bound_now);
            let (rec, b, io) = match prepared.get(i) {
                Some(PreparedOp {
                    slot: Some((rec, b, io)),
                }) => (rec, b, io),
                Some(PreparedOp { slot: None }) => {
                    return Err(Error::PreparedSlotsTooFew {
                        needed: self.model.num_ops() as u32,
                        given: i as u32,
                    })
                }
                None => {
                    let Some(rec) = records.next() else {
                        return Err(Error::ImageBadOp {
                            op: i as u32,
                            problem: crate::error::OpProblem::BadArity,
                        });
                    };
                    rec_now = rec?;
                    // Borrowed in place: `?` on the `Result` would copy the `Bound` out.
                    bound_now = binding::bind_in_place::<OPS>(self.model, i, &rec_now);
                    let b = bound_now.0.as_ref().map_err(|e| *e)?;
                    (&rec_now, b, &bound_now.1)
                }
            };
            #[cfg(any(test, feature = "std"))]
            if let Some(pool) = &self.pool {
                if let Some(r) =
                    binding::run_split::<OPS>(self.model, i, rec, b, Some(io), self.arena, pool)
                {
                    r?;
                    after(i, rec);
                    continue;
                }
            }
            binding::run_bound::<OPS>(self.model, i, rec, b, Some(io), self.arena)?;
            after(i, rec);
        }
        Ok(())
    }

    /// Description of graph input `k` (type, shape, quantization).
    pub fn input_info(&self, k: usize) -> Result<TensorInfo, Error> {
        self.model.tensor(self.model.input(k)?)
    }

    /// Description of graph output `k`.
    pub fn output_info(&self, k: usize) -> Result<TensorInfo, Error> {
        self.model.tensor(self.model.output(k)?)
    }

    fn typed(&self, t: usize, dtype: DType) -> Result<TensorInfo, Error> {
        let info = self.model.tensor(t)?;
        if info.dtype != dtype {
            return Err(Error::TensorDtypeMismatch { tensor: t as u32 });
        }
        Ok(info)
    }

    /// Raw bytes of graph input `k`, to write.
    pub fn input_bytes(&mut self, k: usize) -> Result<&mut [u8], Error> {
        let info = self.input_info(k)?;
        arena::bytes_mut(self.arena, &info)
    }

    /// Graph input `k` as int8, to write.
    pub fn input_i8(&mut self, k: usize) -> Result<&mut [i8], Error> {
        let info = self.typed(self.model.input(k)?, DType::I8)?;
        Ok(bytes::as_i8_mut(arena::bytes_mut(self.arena, &info)?))
    }

    /// Graph input `k` as f32, to write.
    pub fn input_f32(&mut self, k: usize) -> Result<&mut [f32], Error> {
        let info = self.typed(self.model.input(k)?, DType::F32)?;
        bytes::as_f32_mut(arena::bytes_mut(self.arena, &info)?)
    }

    /// Graph input `k` as int32 (e.g. token ids), to write.
    pub fn input_i32(&mut self, k: usize) -> Result<&mut [i32], Error> {
        let info = self.typed(self.model.input(k)?, DType::I32)?;
        bytes::as_i32_mut(arena::bytes_mut(self.arena, &info)?)
    }

    /// Raw bytes of graph output `k`.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn output_bytes(&self, k: usize) -> Result<&[u8], Error> {
        let info = self.output_info(k)?;
        arena::bytes(self.arena, &info)
    }

    /// Graph output `k` as int8.
    pub fn output_i8(&self, k: usize) -> Result<&[i8], Error> {
        let info = self.typed(self.model.output(k)?, DType::I8)?;
        Ok(bytes::as_i8(arena::bytes(self.arena, &info)?))
    }

    /// Graph output `k` as f32.
    pub fn output_f32(&self, k: usize) -> Result<&[f32], Error> {
        let info = self.typed(self.model.output(k)?, DType::F32)?;
        bytes::as_f32(arena::bytes(self.arena, &info)?).map_err(|_| Error::ArenaMisaligned)
    }

    /// Graph output `k` as int32 (e.g. ArgMax indices).
    pub fn output_i32(&self, k: usize) -> Result<&[i32], Error> {
        let info = self.typed(self.model.output(k)?, DType::I32)?;
        bytes::as_i32(arena::bytes(self.arena, &info)?).map_err(|_| Error::ArenaMisaligned)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use crate::image::writer::AlignedBytes;
    use crate::models::{mlp, Rng};
    use crate::{Interpreter, Model};

    /// The per-op hook sees every op once, in order, and changes no output.
    #[test]
    fn invoke_with_hook_visits_every_op_and_matches_invoke() {
        let net = mlp::mlp(4, true);
        let mut rng = Rng::new(9);
        let calib: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(net.input_len(), 1.0)).collect();
        let built = net.build_i8(&calib).expect("builds").0;
        let image = AlignedBytes::new(&built.bytes);
        let model = Model::parse(image.as_slice()).expect("parses");
        let x: Vec<i8> = (0..net.input_len()).map(|i| (i * 37 % 251) as i8).collect();
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("fits");
        it.input_i8(0).expect("input").copy_from_slice(&x);
        it.invoke().expect("runs");
        let want = it.output_i8(0).expect("output").to_vec();
        it.input_i8(0).expect("input").copy_from_slice(&x);
        let mut seen = Vec::new();
        it.invoke_with_hook(|i, rec| seen.push((i, rec.code)))
            .expect("runs");
        let codes: Vec<(usize, u8)> = model
            .ops()
            .enumerate()
            .map(|(i, r)| (i, r.expect("valid").code))
            .collect();
        assert_eq!(seen, codes);
        assert_eq!(it.output_i8(0).expect("output"), &want[..]);
    }

    /// Runs `invokes` invokes of `image` with every input filled from `seed` (int32 inputs get
    /// small ids/positions, one per invoke, like a decode loop) and returns the outputs' bytes
    /// after each, from `Interpreter::new` (`prepared` false) or `new_prepared`.
    fn arenas(image: &[u8], seed: u64, invokes: usize, prepared: bool) -> Vec<Vec<u8>> {
        use crate::image::DType;
        let image = AlignedBytes::new(image);
        let model = Model::parse(image.as_slice()).expect("parses");
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut slots: Vec<crate::PreparedOp> = (0..model.num_ops() + 2)
            .map(|_| crate::PreparedOp::EMPTY)
            .collect();
        let mut it = if prepared {
            Interpreter::new_prepared(&model, arena.as_mut_slice(), &mut slots).expect("fits")
        } else {
            Interpreter::new(&model, arena.as_mut_slice()).expect("fits")
        };
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for step in 0..invokes {
            for k in 0..model.num_inputs() {
                match it.input_info(k).expect("input").dtype {
                    DType::I32 => it.input_i32(k).expect("i32").fill(step as i32 % 4),
                    DType::F32 => {
                        for v in it.input_f32(k).expect("f32") {
                            *v = rng.uniform() * 2.0 - 1.0;
                        }
                    }
                    _ => {
                        for v in it.input_bytes(k).expect("bytes") {
                            *v = rng.next_u64() as u8;
                        }
                    }
                }
            }
            it.invoke().expect("runs");
            let mut all = Vec::new();
            for k in 0..model.num_outputs() {
                all.extend_from_slice(it.output_bytes(k).expect("output"));
            }
            out.push(all);
        }
        out
    }

    /// `new_prepared` (every op decoded once into the caller's slots) gives the outputs of `new`
    /// byte for byte, over several invokes (the tiny GPT's KV cache carries state across them),
    /// for int8 and f32 images of the MLP, the DS-CNN and the tiny GPT.
    #[test]
    fn prepared_ops_match_decoding_per_invoke() {
        let mut images = Vec::new();
        for net in [
            crate::models::mlp::mlp(3, true),
            crate::models::ds_cnn::ds_cnn(5, true),
        ] {
            let mut rng = Rng::new(3);
            let calib: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(net.input_len(), 1.0)).collect();
            images.push(net.build_i8(&calib).expect("builds").0.bytes);
            images.push(net.build_f32().expect("builds").bytes);
        }
        let gpt = crate::models::tiny_gpt::TinyGpt::random(7);
        let ranges = crate::models::tiny_gpt::calibrate(&gpt, 8, 4).expect("calibrates");
        images.push(gpt.image(1, Some(&ranges), false).expect("gpt").0.bytes);
        images.push(gpt.image(1, None, false).expect("gpt").0.bytes);
        for (k, image) in images.iter().enumerate() {
            let want = arenas(image, 40 + k as u64, 4, false);
            let got = arenas(image, 40 + k as u64, 4, true);
            assert_eq!(got, want, "image {k}");
        }
    }

    /// Fewer slots than ops is an error naming both counts, not a panic or a partial prepare.
    #[test]
    fn prepared_ops_need_a_slot_per_op() {
        let net = mlp::mlp(3, true);
        let built = net.build_f32().expect("builds");
        let image = AlignedBytes::new(&built.bytes);
        let model = Model::parse(image.as_slice()).expect("parses");
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let n = model.num_ops();
        let mut slots: Vec<crate::PreparedOp> =
            (0..n - 1).map(|_| crate::PreparedOp::EMPTY).collect();
        let err = Interpreter::new_prepared(&model, arena.as_mut_slice(), &mut slots)
            .expect_err("too few slots");
        assert_eq!(
            err,
            crate::Error::PreparedSlotsTooFew {
                needed: n as u32,
                given: n as u32 - 1
            }
        );
        assert!(err.to_string().contains("slots"), "{err}");
    }

    /// `invoke` from the ops decoded once (`std`) writes the same arena, byte for byte, as
    /// decoding every op as it runs (the `no_std` path, `binding::run`), for int8 and f32 images.
    #[test]
    fn decoded_once_matches_decoding_per_op() {
        for (k, net) in [
            crate::models::mlp::mlp(3, true),
            crate::models::ds_cnn::ds_cnn(5, true),
        ]
        .into_iter()
        .enumerate()
        {
            let mut rng = Rng::new(11 + k as u64);
            let calib: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(net.input_len(), 1.0)).collect();
            for built in [
                net.build_i8(&calib).expect("builds").0,
                net.build_f32().expect("builds"),
            ] {
                let image = AlignedBytes::new(&built.bytes);
                let model = Model::parse(image.as_slice()).expect("parses");
                let x = rng.vec(net.input_len(), 1.0);
                let mut a = AlignedBytes::zeroed(model.arena_bytes());
                let mut b = AlignedBytes::zeroed(model.arena_bytes());
                let mut it = Interpreter::new(&model, a.as_mut_slice()).expect("fits");
                let input: Vec<u8> = match it.input_info(0).expect("input").dtype {
                    crate::image::DType::I8 => x.iter().map(|v| (v * 50.0) as i8 as u8).collect(),
                    _ => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
                };
                it.input_bytes(0).expect("input").copy_from_slice(&input);
                it.invoke().expect("runs");
                let off = model
                    .tensor(model.input(0).expect("input"))
                    .expect("tensor")
                    .offset;
                let arena = b.as_mut_slice();
                arena[off as usize..off as usize + input.len()].copy_from_slice(&input);
                for (i, rec) in model.ops().enumerate() {
                    crate::image::binding::run::<{ crate::image::ALL_OPS }>(
                        &model,
                        i,
                        &rec.expect("valid"),
                        arena,
                    )
                    .expect("runs");
                }
                drop(it);
                assert_eq!(a.as_mut_slice(), b.as_mut_slice(), "model {k}");
            }
        }
    }

    /// An image with the ops `set_threads` splits, large enough to be split: int8
    /// FullyConnected (version 1 and pre-packed version 2), f32 FullyConnected, int8
    /// BatchMatMul. Inputs: x i8 `[1, rows, 128]`, a i8 `[4, rows, 32]`, b i8 `[4, 48, 32]`.
    fn split_ops_image(rows: usize, seed: u64) -> crate::image::writer::BuiltImage {
        use crate::image::layers::Activation;
        use crate::image::writer::{ConstRole, ImageWriter};
        use crate::image::{DType, OpCode};
        use crate::ops::fully_connected::packed;
        let mut rng = Rng::new(seed);
        let mut w = ImageWriter::new("split", 1).expect("name");
        let x = w
            .input(DType::I8, &[1, rows, 128], Some((0.05, 3)))
            .expect("x");
        let w1 = rng.vec(256 * 128, 0.1);
        let b1 = rng.vec(256, 0.2);
        let h = w
            .fully_connected(x, &w1, Some(&b1), 256, Activation::Relu, Some((0.1, -5)))
            .expect("fc1");
        // Version 2: the same kind of layer with pre-packed weights.
        let (n, k) = (96, 256);
        let q: Vec<i8> = (0..n * k)
            .map(|i| ((i * 7919 + seed as usize) % 255) as i8)
            .collect();
        let mut panels = vec![0i8; packed::packed_len(n, k).expect("len")];
        packed::pack(&q, n, k, &mut panels);
        let bias: Vec<i32> = (0..n as i32).map(|j| j * 37 - 1500).collect();
        let mut ct = vec![0i32; n];
        packed::column_terms(&q, n, k, Some(&bias), w.quant(h).expect("q").1, &mut ct);
        let wt = w
            .const_i8(
                &[n.div_ceil(16) * 16, k.div_ceil(4) * 4],
                &panels,
                ConstRole::Weight,
            )
            .expect("w2");
        let ctt = w.const_i32(&[n], &ct, ConstRole::Bias).expect("ct");
        let mt = w
            .const_i32(&[n], &vec![0x5A00_0000; n], ConstRole::Other)
            .expect("m");
        let st = w
            .const_i32(&[n], &vec![-9; n], ConstRole::Other)
            .expect("s");
        let y2 = w
            .activation(DType::I8, &[1, rows, n], Some((0.2, 1)))
            .expect("y2");
        w.op(
            OpCode::FullyConnected,
            2,
            &[Some(h), Some(wt), Some(ctt), Some(mt), Some(st)],
            &[y2],
            &[-128i32 as u32, 127],
        )
        .expect("fc2");
        let f = w.dequantize(y2).expect("deq");
        let w3 = rng.vec(65 * n, 0.3);
        let logits = w
            .fully_connected(f, &w3, None, 65, Activation::None, None)
            .expect("fc3");
        w.output(logits).expect("out");
        let a = w
            .input(DType::I8, &[4, rows, 32], Some((0.04, -2)))
            .expect("a");
        let b = w
            .input(DType::I8, &[4, 48, 32], Some((0.03, 5)))
            .expect("b");
        let s = w.batch_matmul(a, b, true, Some((0.5, 0))).expect("bmm");
        w.output(s).expect("out");
        w.finish().expect("writes")
    }

    /// With 2 and 3 threads, every output equals the single-threaded one, invoke after invoke,
    /// for row counts that split evenly, unevenly and not at all.
    #[test]
    fn threads_give_the_single_threaded_bytes() {
        for (case, rows) in [64usize, 37, 8, 200].into_iter().enumerate() {
            let built = split_ops_image(rows, case as u64);
            let image = AlignedBytes::new(&built.bytes);
            let model = Model::parse(image.as_slice()).expect("parses");
            let mut rng = Rng::new(100 + case as u64);
            let inputs: Vec<Vec<Vec<i8>>> = (0..3)
                .map(|_| {
                    (0..3)
                        .map(|k| {
                            let n = model
                                .tensor(model.input(k).expect("in"))
                                .expect("t")
                                .num_elements();
                            (0..n).map(|_| (rng.vec(1, 1.0)[0] * 127.0) as i8).collect()
                        })
                        .collect()
                })
                .collect();
            let mut outs = Vec::new();
            for threads in [1, 2, 3] {
                let mut arena = AlignedBytes::zeroed(model.arena_bytes());
                let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("fits");
                it.set_threads(threads).expect("spawns");
                assert_eq!(it.threads(), threads);
                let mut got = Vec::new();
                for set in &inputs {
                    for (k, v) in set.iter().enumerate() {
                        it.input_i8(k).expect("input").copy_from_slice(v);
                    }
                    it.invoke().expect("runs");
                    got.push((
                        it.output_bytes(0).expect("o").to_vec(),
                        it.output_bytes(1).expect("o").to_vec(),
                    ));
                }
                outs.push(got);
            }
            assert!(outs[0].iter().any(|(a, _)| a.iter().any(|&v| v != 0)));
            assert_eq!(outs[1], outs[0], "rows {rows}: 2 threads");
            assert_eq!(outs[2], outs[0], "rows {rows}: 3 threads");
        }
    }
}

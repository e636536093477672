//! Graph rewrites on a written graph, before [`ImageWriter::finish`]: the f32 islands of an
//! int8 QDQ transformer — the attention-score chain and `Dequantize → LayerNorm → Quantize` —
//! into one int8-in, int8-out op each (Softmax and LayerNorm version 2).

use super::{ImageWriter, Kind, OpDef, WriteError};
use crate::image::tensor::DType;
use crate::image::{OpCode, NO_TENSOR};
use crate::ops::softmax::quantized::scratch_for;
use crate::ops::softmax::SoftmaxShape;

/// Rows the fused softmax's scratch holds at most (the AVX-512 softmax's row group).
pub const FUSED_SOFTMAX_GROUP: u32 = 8;

/// One matched `Dequantize → LayerNorm → Quantize`: x, γ, β, ε (bits), y.
type LayerNormChain = (u16, u16, u16, u32, u16);

/// One matched chain: `Dequantize(x) [→ Mul(·, c)] [→ Add(·, mask)] → Softmax → Quantize(→ y)`.
struct Chain {
    x: u16,
    pre_scale: Option<f32>,
    mask: Option<u16>,
    beta: f32,
    quantize_op: usize,
    y: u16,
}

impl ImageWriter {
    /// Ops that read tensor `t` (directly or through an alias of it), counting a graph output
    /// as one more reader.
    fn readers(&self, t: u16) -> usize {
        let ops: usize = self
            .ops
            .iter()
            .map(|o| {
                o.inputs
                    .iter()
                    .filter(|&&i| i != NO_TENSOR && (i == t || self.base(i) == t))
                    .count()
            })
            .sum();
        let outs = self
            .outputs
            .iter()
            .filter(|&&o| o == t || self.base(o) == t)
            .count();
        ops + outs
    }

    /// The op writing `t` (or, for an alias, its base), when that is an f32 arena tensor that
    /// exactly one op reads (directly or through any alias of it).
    fn sole_producer(&self, t: u16) -> Option<usize> {
        let base = self.base(t);
        let d = self.tensors.get(base as usize)?;
        if !matches!(d.kind, Kind::Arena) || d.dtype != DType::F32 || self.readers(base) != 1 {
            return None;
        }
        self.ops.iter().position(|o| o.outputs.contains(&base))
    }

    /// A constant f32 tensor's values.
    fn const_f32_values(&self, t: u16) -> Option<Vec<f32>> {
        let d = self.tensors.get(t as usize)?;
        match (&d.kind, d.dtype) {
            (Kind::Constant(b), DType::F32) => Some(
                b.chunks_exact(4)
                    .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn dims(&self, t: u16) -> Vec<usize> {
        self.tensors
            .get(t as usize)
            .map(|d| (0..d.shape.rank()).map(|k| d.shape.dim(k)).collect())
            .unwrap_or_default()
    }

    /// An f32 Add or Mul (version 1, no clamp) of an f32 arena tensor with a constant: the
    /// other operand and the constant, in that order.
    fn with_constant(&self, o: &OpDef, code: OpCode) -> Option<(u16, u16)> {
        let none = [f32::NEG_INFINITY.to_bits(), f32::INFINITY.to_bits()];
        let words: Vec<u32> = o
            .params
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        if o.code != code as u8 || o.version != 1 || o.inputs.len() != 2 || words != none {
            return None;
        }
        let is_const = |t: u16| self.const_f32_values(t).is_some();
        let (a, b) = (o.inputs[0], o.inputs[1]);
        let (v, c) = match (is_const(a), is_const(b)) {
            (false, true) => (a, b),
            (true, false) => (b, a),
            _ => return None,
        };
        // The chain operand is not broadcast: the op's output has its shape.
        (self.dims(v) == self.dims(*o.outputs.first()?)).then_some((v, c))
    }

    /// Matches the chain that ends in the Quantize op `q`.
    fn match_chain(&self, q: usize) -> Option<Chain> {
        let quant = &self.ops[q];
        if quant.code != OpCode::Quantize as u8 || quant.version != 1 || quant.inputs.len() != 1 {
            return None;
        }
        let sm = &self.ops[self.sole_producer(quant.inputs[0])?];
        if sm.code != OpCode::Softmax as u8 || sm.version != 1 || sm.params.len() != 4 {
            return None;
        }
        let beta = f32::from_le_bytes([sm.params[0], sm.params[1], sm.params[2], sm.params[3]]);
        let mut t = *sm.inputs.first()?;
        let mut op = &self.ops[self.sole_producer(t)?];
        let mut mask = None;
        if let Some((v, m)) = self.with_constant(op, OpCode::Add) {
            // The mask broadcasts over leading axes only: its dims, from the first that is not
            // 1, are the scores' trailing dims.
            let (md, vd) = (self.dims(m), self.dims(v));
            let lead = md.iter().position(|&d| d != 1).unwrap_or(md.len());
            let tail = &md[lead..];
            if tail.len() > vd.len() || vd[vd.len() - tail.len()..] != *tail || tail.is_empty() {
                return None;
            }
            mask = Some(m);
            t = v;
            op = &self.ops[self.sole_producer(t)?];
        }
        let mut pre_scale = None;
        if let Some((v, c)) = self.with_constant(op, OpCode::Mul) {
            match self.const_f32_values(c)?.as_slice() {
                [c] if c.is_finite() => pre_scale = Some(*c),
                _ => return None,
            }
            t = v;
            op = &self.ops[self.sole_producer(t)?];
        }
        if op.code != OpCode::Dequantize as u8 || op.version != 1 || op.inputs.len() != 1 {
            return None;
        }
        let x = op.inputs[0];
        if self.tensors.get(x as usize)?.dtype != DType::I8 {
            return None;
        }
        let depth = *self.dims(x).last()?;
        if mask.is_some_and(|m| self.dims(m).last() != Some(&depth)) {
            return None;
        }
        Some(Chain {
            x,
            pre_scale,
            mask,
            beta,
            quantize_op: q,
            y: *quant.outputs.first()?,
        })
    }

    /// Matches `Dequantize(x) → LayerNorm (f32, version 1) → Quantize` ending in op `q` (aliases
    /// between them allowed): `(x, γ, β, ε, y)`.
    fn match_layer_norm(&self, q: usize) -> Option<LayerNormChain> {
        let quant = &self.ops[q];
        if quant.code != OpCode::Quantize as u8 || quant.version != 1 || quant.inputs.len() != 1 {
            return None;
        }
        let ln = &self.ops[self.sole_producer(quant.inputs[0])?];
        if ln.code != OpCode::LayerNorm as u8
            || ln.version != 1
            || ln.inputs.len() != 3
            || ln.params.len() != 4
        {
            return None;
        }
        let deq = &self.ops[self.sole_producer(ln.inputs[0])?];
        if deq.code != OpCode::Dequantize as u8 || deq.version != 1 || deq.inputs.len() != 1 {
            return None;
        }
        let x = deq.inputs[0];
        let (gamma, beta) = (ln.inputs[1], ln.inputs[2]);
        let cols = *self.dims(x).last()?;
        for c in [gamma, beta] {
            if self.const_f32_values(c)?.len() != cols {
                return None;
            }
        }
        if self.tensors.get(x as usize)?.dtype != DType::I8 {
            return None;
        }
        let eps = u32::from_le_bytes([ln.params[0], ln.params[1], ln.params[2], ln.params[3]]);
        Some((x, gamma, beta, eps, *quant.outputs.first()?))
    }

    /// Fuses every `Dequantize → LayerNorm → Quantize` whose f32 tensors nothing else reads into
    /// one LayerNorm version 2 (int8 in, int8 out; see [`crate::ops::layer_norm::quantized`]),
    /// which gives the same bytes; an f32 scratch of up to [`FUSED_SOFTMAX_GROUP`] row pairs
    /// replaces the two f32 tensors. The image needs format 1.3. Renumbers tensors like
    /// [`Self::remove_dead_ops`]. Returns how many were fused.
    pub fn fuse_quantized_layer_norm(&mut self) -> Result<usize, WriteError> {
        use crate::ops::layer_norm::quantized::scratch_for;
        let found: Vec<(usize, LayerNormChain)> = (0..self.ops.len())
            .filter_map(|q| self.match_layer_norm(q).map(|m| (q, m)))
            .collect();
        for &(q, (x, gamma, beta, eps, y)) in &found {
            let dims = self.dims(x);
            let cols = dims.last().copied().unwrap_or(1).max(1);
            let rows = dims.iter().product::<usize>() / cols;
            let len = scratch_for(rows as u32, cols as u32, FUSED_SOFTMAX_GROUP);
            let scratch = self.activation(DType::F32, &[len / cols, cols], None)?;
            self.ops[q] = OpDef {
                code: OpCode::LayerNorm as u8,
                version: 2,
                inputs: vec![x, gamma, beta],
                outputs: vec![y, scratch.0],
                params: eps.to_le_bytes().to_vec(),
            };
        }
        if !found.is_empty() {
            self.remove_dead_ops();
        }
        Ok(found.len())
    }

    /// Fuses every attention-score chain `Dequantize → [Mul by a scalar constant] → [Add of a
    /// constant mask] → Softmax → Quantize` whose intermediate f32 tensors nothing else reads
    /// into one Softmax version 2 (int8 in, int8 out; see
    /// [`crate::ops::softmax::quantized`]), which gives the same bytes. The four f32
    /// intermediates leave the arena; an f32 scratch of up to [`FUSED_SOFTMAX_GROUP`] row pairs
    /// takes their place. The image needs format 1.3.
    ///
    /// Removes the replaced ops and renumbers tensors like [`Self::remove_dead_ops`]: call it
    /// after the last op and output are added. Returns how many chains were fused.
    pub fn fuse_quantized_softmax(&mut self) -> Result<usize, WriteError> {
        let chains: Vec<Chain> = (0..self.ops.len())
            .filter_map(|q| self.match_chain(q))
            .collect();
        for c in &chains {
            let dims = self.dims(c.x);
            let depth = dims.last().copied().unwrap_or(1);
            let outer = dims.iter().product::<usize>() / depth.max(1);
            let shape = SoftmaxShape {
                outer: outer as u32,
                depth: depth as u32,
            };
            let len = scratch_for(&shape, FUSED_SOFTMAX_GROUP);
            let scratch = self.activation(DType::F32, &[len / depth, depth], None)?;
            self.ops[c.quantize_op] = OpDef {
                code: OpCode::Softmax as u8,
                version: 2,
                inputs: vec![c.x, c.mask.unwrap_or(NO_TENSOR)],
                outputs: vec![c.y, scratch.0],
                params: [
                    c.beta.to_bits(),
                    c.pre_scale.unwrap_or(1.0).to_bits(),
                    c.pre_scale.is_some() as u32,
                ]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect(),
            };
        }
        if !chains.is_empty() {
            self.remove_dead_ops();
        }
        Ok(chains.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AlignedBytes, ConstRole};
    use super::*;
    use crate::image::layers::Activation;
    use crate::image::Model;
    use crate::ops::testing::Rng;
    use crate::Interpreter;

    /// How the test chain is built.
    struct Spec {
        heads: usize,
        rows: usize,
        depth: usize,
        pre_scale: Option<f32>,
        /// Mask dims (a suffix of the scores' dims, with leading 1s allowed).
        mask: Option<Vec<usize>>,
        /// The softmax's f32 output is also a graph output (a second reader: no fusion).
        softmax_out: bool,
    }

    fn chain(rng: &mut Rng, s: &Spec) -> ImageWriter {
        let mut w = ImageWriter::new("fuse", 1).expect("name");
        let q_in = (rng.log_uniform(0.01, 0.5) as f32, rng.zero_point());
        let x = w
            .input(DType::I8, &[1, s.heads, s.rows, s.depth], Some(q_in))
            .expect("x");
        let mut t = w.dequantize(x).expect("deq");
        if let Some(c) = s.pre_scale {
            let c = w.const_f32(&[1], &[c], ConstRole::Other).expect("c");
            t = w.binary(t, c, false, Activation::None, None).expect("mul");
        }
        if let Some(dims) = &s.mask {
            let n: usize = dims.iter().product();
            let causal_rows = n / s.depth;
            let m: Vec<f32> = (0..n)
                .map(|i| {
                    let (r, j) = ((i / s.depth) % causal_rows, i % s.depth);
                    if j > r {
                        -1e4
                    } else {
                        rng.range(-500, 500) as f32 / 1000.0
                    }
                })
                .collect();
            let m = w.const_f32(dims, &m, ConstRole::Other).expect("m");
            t = w.binary(t, m, true, Activation::None, None).expect("add");
        }
        let p = w.softmax(t, 1.0).expect("softmax");
        let y = w.quantize(p, (1.0 / 255.0, -128)).expect("q");
        w.output(y).expect("out");
        if s.softmax_out {
            w.output(p).expect("out");
        }
        w
    }

    /// Parses `w`'s image and returns its format, op count, arena size and output 0 for each
    /// input.
    fn run(w: &ImageWriter, inputs: &[Vec<i8>]) -> ((u16, u16), usize, usize, Vec<Vec<u8>>) {
        let built = w.finish().expect("writes");
        let a = AlignedBytes::new(&built.bytes);
        let m = Model::parse(a.as_slice()).expect("parses");
        let mut arena = AlignedBytes::zeroed(m.arena_bytes());
        let mut it = Interpreter::new(&m, arena.as_mut_slice()).expect("binds");
        let mut outs = Vec::new();
        for x in inputs {
            it.input_i8(0).expect("input").copy_from_slice(x);
            it.invoke().expect("invoke");
            outs.push(it.output_bytes(0).expect("output").to_vec());
        }
        (m.format_version(), m.num_ops(), m.arena_bytes(), outs)
    }

    /// The fused image gives the unfused image's bytes, in one op, with a smaller arena (beyond a
    /// few rows).
    #[test]
    fn fused_softmax_image_gives_the_chains_bytes() {
        let mut rng = Rng::new(0xf05e);
        for case in 0..40 {
            let (heads, rows, depth) = (
                rng.dim(4) as usize,
                rng.dim(20) as usize,
                [8, 33, 64][case % 3],
            );
            let mask = match case % 4 {
                0 => None,
                1 => Some(vec![rows, depth]),
                2 => Some(vec![1, 1, rows, depth]),
                _ => Some(vec![heads, rows, depth]),
            };
            let s = Spec {
                heads,
                rows,
                depth,
                pre_scale: (case % 5 != 0).then(|| rng.log_uniform(0.1, 1.0) as f32),
                mask,
                softmax_out: false,
            };
            let w = chain(&mut rng, &s);
            let mut fused = w.clone();
            assert_eq!(
                fused.fuse_quantized_softmax().expect("fuse"),
                1,
                "case {case}"
            );
            let n = heads * rows * depth;
            let inputs: Vec<Vec<i8>> = (0..3).map(|_| rng.i8_vec(n)).collect();
            let (v0, ops0, arena0, want) = run(&w, &inputs);
            let (v1, ops1, arena1, got) = run(&fused, &inputs);
            assert_eq!(got, want, "case {case}");
            assert_eq!((v0, v1), ((1, 0), (1, 3)), "case {case}");
            assert_eq!(ops1, 1, "case {case}: {ops0} ops fused into one");
            // The scratch holds up to 16 rows of f32: from that many rows on, the arena shrinks.
            if heads * rows >= 2 * FUSED_SOFTMAX_GROUP as usize {
                assert!(arena1 < arena0, "case {case}: arena {arena1} vs {arena0}");
            }
        }
    }

    /// A chain whose intermediate is read elsewhere, or whose mask does not broadcast over the
    /// leading axes only, is left alone.
    #[test]
    fn chains_that_do_not_match_stay() {
        let mut rng = Rng::new(7);
        let base = Spec {
            heads: 2,
            rows: 4,
            depth: 4,
            pre_scale: Some(0.5),
            mask: None,
            softmax_out: true,
        };
        let mut w = chain(&mut rng, &base);
        assert_eq!(w.fuse_quantized_softmax().expect("fuse"), 0);
        let other = Spec {
            mask: Some(vec![2, 1, 4]),
            softmax_out: false,
            ..base
        };
        let mut w = chain(&mut rng, &other);
        assert_eq!(w.fuse_quantized_softmax().expect("fuse"), 0);
    }

    /// `Dequantize → (alias) → LayerNorm → (alias) → Quantize` fuses into one LayerNorm version
    /// 2 with the same bytes and a smaller arena; with the LayerNorm's output also read
    /// elsewhere it stays.
    #[test]
    fn fused_layer_norm_image_gives_the_chains_bytes() {
        let mut rng = Rng::new(0x1a);
        for case in 0..24 {
            let (rows, cols) = (rng.dim(40) as usize, [8, 33, 128][case % 3]);
            let mut w = ImageWriter::new("ln", 1).expect("name");
            let x = w
                .input(
                    DType::I8,
                    &[1, rows, cols],
                    Some((rng.log_uniform(0.01, 0.3) as f32, rng.zero_point())),
                )
                .expect("x");
            let d = w.dequantize(x).expect("deq");
            let d2 = w.alias(d, &[rows, cols]).expect("alias");
            let gamma: Vec<f32> = (0..cols)
                .map(|_| rng.range(-900, 900) as f32 / 500.0)
                .collect();
            let beta: Vec<f32> = (0..cols)
                .map(|_| rng.range(-300, 300) as f32 / 500.0)
                .collect();
            let n = w.layer_norm(d2, &gamma, &beta, 1e-5, None).expect("ln");
            let n2 = w.alias(n, &[1, rows, cols]).expect("alias");
            let y = w.quantize(n2, (0.03, rng.zero_point())).expect("q");
            w.output(y).expect("out");
            let mut fused = w.clone();
            assert_eq!(
                fused.fuse_quantized_layer_norm().expect("fuse"),
                1,
                "case {case}"
            );
            let inputs: Vec<Vec<i8>> = (0..3).map(|_| rng.i8_vec(rows * cols)).collect();
            let (v0, _, arena0, want) = run(&w, &inputs);
            let (v1, ops1, arena1, got) = run(&fused, &inputs);
            assert_eq!(got, want, "case {case}");
            assert_eq!((v0, v1), ((1, 1), (1, 3)), "case {case}");
            assert_eq!(ops1, 1, "case {case}");
            if rows >= 2 * FUSED_SOFTMAX_GROUP as usize {
                assert!(arena1 < arena0, "case {case}: arena {arena1} vs {arena0}");
            }
            // The LayerNorm's output is also a graph output: not fused.
            let mut w2 = w.clone();
            w2.output(n).expect("out");
            assert_eq!(w2.fuse_quantized_layer_norm().expect("fuse"), 0);
        }
    }

    /// An image whose header declares a format older than one of its ops is refused with
    /// `UnsupportedOp`, as a runtime of that older format refuses it.
    #[test]
    fn an_op_newer_than_the_declared_format_is_refused() {
        let mut rng = Rng::new(3);
        let s = Spec {
            heads: 2,
            rows: 16,
            depth: 16,
            pre_scale: Some(0.5),
            mask: None,
            softmax_out: false,
        };
        let mut w = chain(&mut rng, &s);
        w.fuse_quantized_softmax().expect("fuse");
        let mut bytes = w.finish().expect("writes").bytes;
        assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 3);
        for older in [2u16, 1, 0] {
            bytes[6..8].copy_from_slice(&older.to_le_bytes());
            super::super::fix_crc(&mut bytes);
            let a = AlignedBytes::new(&bytes);
            assert!(
                matches!(
                    Model::parse(a.as_slice()),
                    Err(crate::Error::UnsupportedOp { .. })
                ),
                "declared 1.{older}"
            );
        }
    }
}

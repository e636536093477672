//! The transformer ops through one-op images: each equals its kernel called directly, and
//! malformed parameter records are rejected at parse.

use super::layers::AttentionQuant;
use super::writer::{AlignedBytes, ImageWriter, TensorId, WriteError};
use super::*;
use crate::error::OpProblem;
use crate::ops::testing::Rng;
use crate::ops::{self, ClampF32, ClampI8};
use crate::quant::quantize_multiplier;
use crate::{Error, Interpreter};

/// Input data of a test image.
enum Data {
    I8(Vec<i8>),
    F32(Vec<f32>),
    I32(Vec<i32>),
}

/// Parses `w`'s image, writes `inputs` before each of the invokes (one set per invoke) and returns
/// output 0's bytes after every invoke (or the first error).
fn run(w: &ImageWriter, invokes: &[Vec<Data>]) -> Result<Vec<Vec<u8>>, Error> {
    let built = w.finish().expect("writes");
    let a = AlignedBytes::new(&built.bytes);
    let m = Model::parse(a.as_slice())?;
    assert_eq!(
        m.format_version(),
        (1, 1),
        "transformer ops mark the image 1.1"
    );
    let mut arena = AlignedBytes::zeroed(m.arena_bytes());
    let mut it = Interpreter::new(&m, arena.as_mut_slice())?;
    let mut outs = Vec::new();
    for inputs in invokes {
        for (k, d) in inputs.iter().enumerate() {
            match d {
                Data::I8(v) => it.input_i8(k)?.copy_from_slice(v),
                Data::F32(v) => it.input_f32(k)?.copy_from_slice(v),
                Data::I32(v) => it.input_i32(k)?.copy_from_slice(v),
            }
        }
        it.invoke()?;
        outs.push(it.output_bytes(0)?.to_vec());
    }
    Ok(outs)
}

fn i8s(b: &[u8]) -> Vec<i8> {
    b.iter().map(|&v| v as i8).collect()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn writer() -> ImageWriter {
    ImageWriter::new("t", 1).expect("name")
}

#[test]
fn batch_matmul_image_equals_kernel() {
    let mut rng = Rng::new(1);
    for transpose_b in [false, true] {
        let (batch, m, k, n) = (3, 5, 7, 4);
        let bdims = if transpose_b {
            [batch, n, k]
        } else {
            [batch, k, n]
        };
        let (qa, qb, qy) = ((0.05, 3), (0.04, -7), (0.1, 2));
        let mut w = writer();
        let a = w.input(DType::I8, &[batch, m, k], Some(qa)).expect("a");
        let b = w.input(DType::I8, &bdims, Some(qb)).expect("b");
        let y = w.batch_matmul(a, b, transpose_b, Some(qy)).expect("bmm");
        w.output(y).expect("out");
        let av = rng.i8_vec(batch * m * k);
        let bv = rng.i8_vec(batch * k * n);
        let got = run(&w, &[vec![Data::I8(av.clone()), Data::I8(bv.clone())]]).expect("runs");
        let (om, os) =
            quantize_multiplier(0.05f32 as f64 * 0.04f32 as f64 / 0.1f32 as f64).expect("m");
        let p = ops::batch_matmul::BatchMatMulParams {
            shape: ops::batch_matmul::BatchMatMulShape {
                batch: batch as u32,
                m: m as u32,
                k: k as u32,
                n: n as u32,
                transpose_b,
            },
            a_zero_point: 3,
            b_zero_point: -7,
            output_zero_point: 2,
            output_multiplier: om,
            output_shift: os,
            activation: ClampI8::NONE,
        };
        let mut want = vec![0i8; batch * m * n];
        ops::batch_matmul::eval_i8(&p, &av, &bv, &mut want);
        assert_eq!(i8s(&got[0]), want);

        let mut w = writer();
        let a = w.input(DType::F32, &[batch, m, k], None).expect("a");
        let b = w.input(DType::F32, &bdims, None).expect("b");
        let y = w.batch_matmul(a, b, transpose_b, None).expect("bmm");
        w.output(y).expect("out");
        let af = rng.f32_vec(batch * m * k, 2.0);
        let bf = rng.f32_vec(batch * k * n, 2.0);
        let got = run(&w, &[vec![Data::F32(af.clone()), Data::F32(bf.clone())]]).expect("runs");
        let pf = ops::batch_matmul::BatchMatMulF32Params {
            shape: p.shape,
            activation: ClampF32::NONE,
        };
        let mut want = vec![0f32; batch * m * n];
        ops::batch_matmul::eval_f32(&pf, &af, &bf, &mut want);
        assert_eq!(f32s(&got[0]), want);
    }
}

#[test]
fn transpose_image_equals_kernel() {
    let mut rng = Rng::new(2);
    let dims = [2, 3, 4];
    let perm = [1, 0, 2];
    let mut w = writer();
    let x = w.input(DType::I8, &dims, Some((0.1, 0))).expect("x");
    let y = w.transpose(x, &perm).expect("t");
    assert_eq!(w.shape(y).expect("shape"), vec![3, 2, 4]);
    w.output(y).expect("out");
    let xv = rng.i8_vec(24);
    let got = run(&w, &[vec![Data::I8(xv.clone())]]).expect("runs");
    let p = ops::transpose::TransposeParams {
        input_dims: [1, 2, 3, 4],
        perm: [0, 2, 1, 3],
    };
    let mut want = vec![0i8; 24];
    ops::transpose::eval(&p, &xv, &mut want);
    assert_eq!(i8s(&got[0]), want);
}

#[test]
fn gather_image_equals_kernel_and_rejects_bad_ids() {
    let mut rng = Rng::new(3);
    let (rows, row_len) = (10, 6);
    let table = rng.f32_vec(rows * row_len, 1.0);
    for quant in [None, Some((0.01f32, -4))] {
        let mut w = writer();
        let ids = w.input(DType::I32, &[4], None).expect("ids");
        let y = w.gather(&table, rows, row_len, ids, quant).expect("g");
        w.output(y).expect("out");
        let idv = vec![3, 0, -1, 9];
        let got = run(&w, &[vec![Data::I32(idv.clone())]]).expect("runs");
        match quant {
            None => {
                let p = ops::gather::GatherParams {
                    rows: rows as u32,
                    row_len: row_len as u32,
                    table: &table[..],
                };
                let mut want = vec![0f32; 4 * row_len];
                ops::gather::eval(&p, &idv, &mut want).expect("ok");
                assert_eq!(f32s(&got[0]), want);
            }
            Some((s, z)) => {
                let tq: Vec<i8> = table
                    .iter()
                    .map(|&v| ((v / s).round() + z as f32).clamp(-128.0, 127.0) as i8)
                    .collect();
                let p = ops::gather::GatherParams {
                    rows: rows as u32,
                    row_len: row_len as u32,
                    table: &tq[..],
                };
                let mut want = vec![0i8; 4 * row_len];
                ops::gather::eval(&p, &idv, &mut want).expect("ok");
                assert_eq!(i8s(&got[0]), want);
            }
        }
        let bad = run(&w, &[vec![Data::I32(vec![0, 10, 0, 0])]]);
        assert_eq!(bad, Err(Error::KernelIndexOutOfRange { op: 0, value: 10 }));
    }
}

#[test]
fn layer_norm_image_equals_kernel() {
    let mut rng = Rng::new(4);
    let (rows, cols) = (3, 16);
    let gamma = rng.f32_vec(cols, 1.5);
    let beta = rng.f32_vec(cols, 0.5);
    let (qx, qy) = ((0.03f32, 5), (0.02f32, -3));
    let mut w = writer();
    let x = w.input(DType::I8, &[rows, cols], Some(qx)).expect("x");
    let y = w.layer_norm(x, &gamma, &beta, 1e-5, Some(qy)).expect("ln");
    w.output(y).expect("out");
    let xv = rng.i8_vec(rows * cols);
    let got = run(&w, &[vec![Data::I8(xv.clone())]]).expect("runs");
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let k = ops::layer_norm::LayerNormConstants::new(
        &f(&gamma),
        &f(&beta),
        1e-5f32 as f64,
        qx.0 as f64,
        qy.0 as f64,
    )
    .expect("consts");
    let mut want = vec![0i8; rows * cols];
    ops::layer_norm::eval_i8(&k.params(rows as u32, qx.1, qy.1), &xv, &mut want);
    assert_eq!(i8s(&got[0]), want);

    let mut w = writer();
    let x = w.input(DType::F32, &[rows, cols], None).expect("x");
    let y = w.layer_norm(x, &gamma, &beta, 1e-5, None).expect("ln");
    w.output(y).expect("out");
    let xf = rng.f32_vec(rows * cols, 3.0);
    let got = run(&w, &[vec![Data::F32(xf.clone())]]).expect("runs");
    let p = ops::layer_norm::LayerNormF32Params {
        rows: rows as u32,
        cols: cols as u32,
        epsilon: 1e-5,
        gamma: &gamma,
        beta: &beta,
    };
    let mut want = vec![0f32; rows * cols];
    ops::layer_norm::eval_f32(&p, &xf, &mut want);
    assert_eq!(f32s(&got[0]), want);
}

#[test]
fn causal_mask_image_equals_kernel() {
    let mut rng = Rng::new(5);
    let mut w = writer();
    let x = w.input(DType::F32, &[2, 3, 5], None).expect("x");
    let y = w.causal_mask(x, 1).expect("m");
    w.output(y).expect("out");
    let xf = rng.f32_vec(30, 1.0);
    let got = run(&w, &[vec![Data::F32(xf.clone())]]).expect("runs");
    let p = ops::causal_mask::CausalMaskParams {
        batch: 2,
        rows: 3,
        cols: 5,
        offset: 1,
    };
    let mut want = xf;
    ops::causal_mask::eval_f32(&p, &mut want);
    assert_eq!(f32s(&got[0]), want);
}

#[test]
fn table_ops_image_equal_kernels() {
    let mut rng = Rng::new(6);
    let fns = [
        TableFn::Gelu,
        TableFn::Silu,
        TableFn::Sigmoid,
        TableFn::Tanh,
    ];
    for f in fns {
        let (qx, qy) = ((0.05f32, -10), (1.0f32 / 128.0, 0));
        let mut w = writer();
        let x = w.input(DType::I8, &[2, 9], Some(qx)).expect("x");
        let y = w.table_fn(x, f, Some(qy)).expect("t");
        w.output(y).expect("out");
        let xv = rng.i8_vec(18);
        let got = run(&w, &[vec![Data::I8(xv.clone())]]).expect("runs");
        let build = match f {
            TableFn::Gelu => ops::gelu::build_table,
            TableFn::Silu => ops::silu::build_table,
            TableFn::Sigmoid => ops::sigmoid::build_table,
            TableFn::Tanh => ops::tanh::build_table,
        };
        let table = build(qx.0 as f64, qx.1, qy.0 as f64, qy.1).expect("table");
        let mut want = vec![0i8; 18];
        ops::lut::eval_i8(&ops::lut::LutParams { table: &table }, &xv, &mut want);
        assert_eq!(i8s(&got[0]), want, "{f:?}");

        let mut w = writer();
        let x = w.input(DType::F32, &[2, 9], None).expect("x");
        let y = w.table_fn(x, f, None).expect("t");
        w.output(y).expect("out");
        let xf = rng.f32_vec(18, 4.0);
        let got = run(&w, &[vec![Data::F32(xf.clone())]]).expect("runs");
        let mut want = vec![0f32; 18];
        match f {
            TableFn::Gelu => ops::gelu::eval_f32(&xf, &mut want),
            TableFn::Silu => ops::silu::eval_f32(&xf, &mut want),
            TableFn::Sigmoid => ops::sigmoid::eval_f32(&xf, &mut want),
            TableFn::Tanh => ops::tanh::eval_f32(&xf, &mut want),
        }
        assert_eq!(f32s(&got[0]), want, "{f:?}");
    }
}

/// q, k, v `[heads, 1, d]` inputs, `pos`; K and V appended to persistent caches, attention output.
fn attention_image(
    int8: bool,
    heads: usize,
    d: usize,
    cap: usize,
) -> (ImageWriter, AttentionQuant) {
    let aq = AttentionQuant {
        score: (0.05, -20),
        output: (0.02, 1),
    };
    let mut w = writer();
    let (dt, qq, qk, qv) = if int8 {
        (
            DType::I8,
            Some((0.03, 2)),
            Some((0.04, -1)),
            Some((0.025, 0)),
        )
    } else {
        (DType::F32, None, None, None)
    };
    let q = w.input(dt, &[heads, 1, d], qq).expect("q");
    let k = w.input(dt, &[heads, 1, d], qk).expect("k");
    let v = w.input(dt, &[heads, 1, d], qv).expect("v");
    let pos = w.input(DType::I32, &[1], None).expect("pos");
    let kc = w.kv_cache(k, cap).expect("kc");
    let vc = w.kv_cache(v, cap).expect("vc");
    w.kv_append(k, pos, kc).expect("ak");
    w.kv_append(v, pos, vc).expect("av");
    let y = w
        .attention(q, kc, vc, pos, true, int8.then_some(aq))
        .expect("att");
    w.output(y).expect("out");
    (w, aq)
}

#[test]
fn kv_append_and_attention_image_equal_kernels_across_invokes() {
    let mut rng = Rng::new(7);
    let (heads, d, cap) = (2, 8, 5);
    let n = heads * d;
    let shape = ops::attention::KvShape {
        heads: heads as u32,
        head_dim: d as u32,
        capacity: cap as u32,
        tokens: 1,
    };
    // int8
    let (w, aq) = attention_image(true, heads, d, cap);
    let steps: Vec<[Vec<i8>; 3]> = (0..cap)
        .map(|_| [rng.i8_vec(n), rng.i8_vec(n), rng.i8_vec(n)])
        .collect();
    let invokes: Vec<Vec<Data>> = steps
        .iter()
        .enumerate()
        .map(|(t, s)| {
            vec![
                Data::I8(s[0].clone()),
                Data::I8(s[1].clone()),
                Data::I8(s[2].clone()),
                Data::I32(vec![t as i32]),
            ]
        })
        .collect();
    let got = run(&w, &invokes).expect("runs");
    let scale = 1.0 / (d as f64).sqrt();
    let (sm, ss) = quantize_multiplier(0.03f32 as f64 * 0.04f32 as f64 * scale / aq.score.0 as f64)
        .expect("m");
    let (om, os) =
        quantize_multiplier(0.025f32 as f64 / (aq.output.0 as f64 * 65536.0)).expect("m");
    let table = ops::softmax::exp_table(aq.score.0 as f64, 1.0);
    let p = ops::attention::AttentionParams {
        shape,
        causal: true,
        q_zero_point: 2,
        k_zero_point: -1,
        v_zero_point: 0,
        score_multiplier: sm,
        score_shift: ss,
        score_zero_point: aq.score.1,
        exp_table: &table,
        output_multiplier: om,
        output_shift: os,
        output_zero_point: aq.output.1,
    };
    let (mut kc, mut vc) = (vec![0i8; heads * cap * d], vec![0i8; heads * cap * d]);
    let mut scratch = vec![0i32; cap];
    for (t, s) in steps.iter().enumerate() {
        ops::attention::append(&shape, &s[1], t as i32, &mut kc).expect("k");
        ops::attention::append(&shape, &s[2], t as i32, &mut vc).expect("v");
        let mut want = vec![0i8; n];
        ops::attention::eval_i8(&p, &s[0], &kc, &vc, t as i32, &mut scratch, &mut want)
            .expect("att");
        assert_eq!(i8s(&got[t]), want, "step {t}");
    }
    // f32
    let (w, _) = attention_image(false, heads, d, cap);
    let steps: Vec<[Vec<f32>; 3]> = (0..cap)
        .map(|_| {
            [
                rng.f32_vec(n, 1.0),
                rng.f32_vec(n, 1.0),
                rng.f32_vec(n, 1.0),
            ]
        })
        .collect();
    let invokes: Vec<Vec<Data>> = steps
        .iter()
        .enumerate()
        .map(|(t, s)| {
            vec![
                Data::F32(s[0].clone()),
                Data::F32(s[1].clone()),
                Data::F32(s[2].clone()),
                Data::I32(vec![t as i32]),
            ]
        })
        .collect();
    let got = run(&w, &invokes).expect("runs");
    let pf = ops::attention::AttentionF32Params {
        shape,
        causal: true,
        scale: scale as f32,
    };
    let (mut kc, mut vc) = (vec![0f32; heads * cap * d], vec![0f32; heads * cap * d]);
    let mut scratch = vec![0f32; cap];
    for (t, s) in steps.iter().enumerate() {
        ops::attention::append(&shape, &s[1], t as i32, &mut kc).expect("k");
        ops::attention::append(&shape, &s[2], t as i32, &mut vc).expect("v");
        let mut want = vec![0f32; n];
        ops::attention::eval_f32(&pf, &s[0], &kc, &vc, t as i32, &mut scratch, &mut want)
            .expect("att");
        assert_eq!(f32s(&got[t]), want, "step {t}");
    }
    // A position past the cache is an error naming the op, never an out-of-bounds write.
    let mut inv = invokes[0].clone_shallow();
    inv[3] = Data::I32(vec![cap as i32]);
    let e = run(&w, &[inv]).expect_err("full");
    assert!(matches!(e, Error::KvCacheFull { op: 0, .. }), "{e:?}");
}

impl Data {
    fn clone_one(&self) -> Data {
        match self {
            Data::I8(v) => Data::I8(v.clone()),
            Data::F32(v) => Data::F32(v.clone()),
            Data::I32(v) => Data::I32(v.clone()),
        }
    }
}

trait CloneShallow {
    fn clone_shallow(&self) -> Vec<Data>;
}

impl CloneShallow for Vec<Data> {
    fn clone_shallow(&self) -> Vec<Data> {
        self.iter().map(Data::clone_one).collect()
    }
}

fn rejected(w: &ImageWriter) -> OpProblem {
    match w.finish() {
        Err(WriteError::Invalid(Error::ImageBadOp { problem, .. })) => problem,
        other => panic!("expected a rejected op, got {:?}", other.map(|_| ())),
    }
}

fn two_inputs(dt: DType, a: &[usize], b: &[usize]) -> (ImageWriter, TensorId, TensorId) {
    let mut w = writer();
    let q = (dt == DType::I8).then_some((0.1, 0));
    let x = w.input(dt, a, q).expect("a");
    let y = w.input(dt, b, q).expect("b");
    (w, x, y)
}

#[test]
fn malformed_params_are_rejected_at_parse() {
    // BatchMatMul: transpose flag not 0/1.
    let (mut w, a, b) = two_inputs(DType::F32, &[2, 3], &[3, 4]);
    let y = w.activation(DType::F32, &[2, 4], None).expect("y");
    let c = ClampF32::NONE;
    w.op(
        OpCode::BatchMatMul,
        1,
        &[Some(a), Some(b)],
        &[y],
        &[2, c.min.to_bits(), c.max.to_bits()],
    )
    .expect("op");
    w.output(y).expect("out");
    assert_eq!(rejected(&w), OpProblem::BadParams);
    // BatchMatMul: inner dimensions disagree.
    let (mut w, a, b) = two_inputs(DType::F32, &[2, 3], &[5, 4]);
    let y = w.activation(DType::F32, &[2, 4], None).expect("y");
    w.op(
        OpCode::BatchMatMul,
        1,
        &[Some(a), Some(b)],
        &[y],
        &[0, c.min.to_bits(), c.max.to_bits()],
    )
    .expect("op");
    w.output(y).expect("out");
    assert_eq!(rejected(&w), OpProblem::BadShape);
    // Transpose: a repeated axis.
    let mut w = writer();
    let x = w.input(DType::F32, &[2, 3], None).expect("x");
    let y = w.activation(DType::F32, &[2, 3], None).expect("y");
    w.op(OpCode::Transpose, 1, &[Some(x)], &[y], &[0, 1, 3, 3])
        .expect("op");
    w.output(y).expect("out");
    assert_eq!(rejected(&w), OpProblem::BadParams);
    // Table: unknown function.
    let mut w = writer();
    let x = w.input(DType::F32, &[4], None).expect("x");
    let y = w.activation(DType::F32, &[4], None).expect("y");
    w.op(OpCode::Table, 1, &[Some(x)], &[y], &[9]).expect("op");
    w.output(y).expect("out");
    assert_eq!(rejected(&w), OpProblem::BadParams);
    // KvAppend into a plain arena tensor (not persistent).
    let mut w = writer();
    let k = w.input(DType::F32, &[1, 1, 4], None).expect("k");
    let pos = w.input(DType::I32, &[1], None).expect("pos");
    let cache = w.activation(DType::F32, &[1, 3, 4], None).expect("c");
    w.op(OpCode::KvAppend, 1, &[Some(k), Some(pos)], &[cache], &[])
        .expect("op");
    w.output(cache).expect("out");
    assert_eq!(rejected(&w), OpProblem::BadWrite);
    // Attention: causal flag not 0/1.
    let mut w = writer();
    let q = w.input(DType::F32, &[1, 1, 4], None).expect("q");
    let pos = w.input(DType::I32, &[1], None).expect("pos");
    let kc = w.persistent(DType::F32, &[1, 3, 4], None).expect("kc");
    let y = w.activation(DType::F32, &[1, 1, 4], None).expect("y");
    let s = w.activation(DType::F32, &[3], None).expect("s");
    w.op(OpCode::KvAppend, 1, &[Some(q), Some(pos)], &[kc], &[])
        .expect("op");
    w.op(
        OpCode::Attention,
        1,
        &[Some(q), Some(kc), Some(kc), Some(pos)],
        &[y, s],
        &[7, 0.5f32.to_bits()],
    )
    .expect("op");
    w.output(y).expect("out");
    assert_eq!(rejected(&w), OpProblem::BadParams);
    // Gather: a float id tensor.
    let mut w = writer();
    let t = w
        .const_f32(&[3, 2], &[0.0; 6], super::writer::ConstRole::Weight)
        .expect("t");
    let ids = w.input(DType::F32, &[2], None).expect("ids");
    let y = w.activation(DType::F32, &[2, 2], None).expect("y");
    w.op(OpCode::Gather, 1, &[Some(t), Some(ids)], &[y], &[])
        .expect("op");
    w.output(y).expect("out");
    assert_eq!(rejected(&w), OpProblem::BadDtype);
}

/// An int8 image using every transformer op except Attention (covered by `attention_image`).
fn mixed_i8_image() -> ImageWriter {
    let mut w = writer();
    let ids = w.input(DType::I32, &[3], None).expect("ids");
    let table: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
    let e = w.gather(&table, 5, 8, ids, Some((0.01, 0))).expect("g");
    let n = w
        .layer_norm(e, &[1.0; 8], &[0.0; 8], 1e-5, Some((0.03, 0)))
        .expect("ln");
    let g = w
        .table_fn(n, TableFn::Gelu, Some((0.02, -50)))
        .expect("gelu");
    let t = w.transpose(g, &[1, 0]).expect("t");
    let s = w.batch_matmul(g, t, false, Some((0.05, 0))).expect("bmm");
    let m = w.causal_mask(s, 0).expect("mask");
    w.output(m).expect("out");
    w
}

/// Parses `bytes`; when valid, invokes with zeroed inputs (valid ids and positions) and with
/// patterned ones (out-of-range ids and positions). Must never panic.
fn parse_and_run_twice(bytes: &[u8]) -> bool {
    let a = AlignedBytes::new(bytes);
    let Ok(m) = Model::parse(a.as_slice()) else {
        return false;
    };
    if m.arena_bytes() > 1 << 20 {
        return true;
    }
    let mut arena = AlignedBytes::zeroed(m.arena_bytes());
    let Ok(mut it) = Interpreter::new(&m, arena.as_mut_slice()) else {
        return true;
    };
    for pattern in [0usize, 37] {
        for k in 0..m.num_inputs() {
            if let Ok(x) = it.input_bytes(k) {
                x.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = (i * pattern) as u8);
            }
        }
        let _ = it.invoke();
    }
    true
}

#[test]
fn transformer_images_survive_every_bit_flip() {
    let images = [
        attention_image(true, 2, 4, 3).0,
        attention_image(false, 1, 4, 3).0,
        mixed_i8_image(),
    ];
    for w in images {
        let good = w.finish().expect("writes").bytes;
        assert!(parse_and_run_twice(&good));
        let mut parsed = 0;
        for bit in 0..good.len() * 8 {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(!parse_and_run_twice(&b), "the CRC catches bit {bit}");
            super::writer::fix_crc(&mut b);
            parsed += parse_and_run_twice(&b) as usize;
        }
        eprintln!(
            "{} bit flips: {parsed} still valid after CRC fix-up",
            good.len() * 8
        );
    }
}

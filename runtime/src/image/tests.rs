//! Format tests: golden header bytes, the reject table of `FORMAT.md`, and robustness against
//! truncation and bit flips (every one an error or a valid model, never a panic).

use super::layers::Activation;
use super::writer::{fix_crc, AlignedBytes, BuiltImage, ImageWriter};
use super::*;
use crate::error::{OpProblem, Section, TensorProblem};
use crate::{Error, Interpreter};

/// A tiny int8 model: x[1,4] → FC(3, ReLU) → FC(2) → y, plus a stats entry.
fn tiny_i8() -> BuiltImage {
    let mut w = ImageWriter::new("tiny", 7).expect("name fits");
    let x = w
        .input(DType::I8, &[1, 4], Some((0.05, -3)))
        .expect("input");
    let w1 = [
        0.5, -0.25, 0.125, 1.0, -1.0, 0.75, 0.3, -0.6, 0.2, 0.1, -0.4, 0.9,
    ];
    let h = w
        .fully_connected(
            x,
            &w1,
            Some(&[0.1, -0.2, 0.3]),
            3,
            Activation::Relu,
            Some((0.02, -128)),
        )
        .expect("fc1");
    let w2 = [0.7, -0.3, 0.5, -0.9, 0.4, 0.2];
    let y = w
        .fully_connected(h, &w2, None, 2, Activation::None, Some((0.03, 5)))
        .expect("fc2");
    w.output(y).expect("output");
    w.stats_entry(1, vec![1, 2, 3, 4, 5]);
    w.finish().expect("writes")
}

/// A tiny f32 model.
fn tiny_f32() -> BuiltImage {
    let mut w = ImageWriter::new("tiny-f32", 1).expect("name fits");
    let x = w.input(DType::F32, &[2, 3], None).expect("input");
    let y = w
        .fully_connected(
            x,
            &[1.0, 2.0, 3.0, -1.0, 0.5, 0.25],
            Some(&[0.5, -0.5]),
            2,
            Activation::None,
            None,
        )
        .expect("fc");
    w.output(y).expect("output");
    w.finish().expect("writes")
}

fn parse(bytes: &[u8]) -> Result<(), Error> {
    let a = AlignedBytes::new(bytes);
    Model::parse(a.as_slice()).map(|_| ())
}

fn set_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Offset of tensor record `t` in the image.
fn tensor_record(b: &[u8], t: usize) -> usize {
    let g = HEADER_LEN;
    let n_io = u16::from_le_bytes([b[g + 2], b[g + 3]]) as usize
        + u16::from_le_bytes([b[g + 4], b[g + 5]]) as usize;
    g + GRAPH_HEADER_LEN + (2 * n_io).div_ceil(4) * 4 + t * tensor::TENSOR_RECORD_LEN
}

/// Offset of the first op record.
fn first_op(b: &[u8]) -> usize {
    let n_t = u16::from_le_bytes([b[HEADER_LEN], b[HEADER_LEN + 1]]) as usize;
    tensor_record(b, n_t)
}

#[test]
fn golden_header() {
    let b = tiny_i8().bytes;
    assert_eq!(&b[..4], b"EDLI");
    assert_eq!(&b[4..8], &[1, 0, 0, 0]); // format 1.0
    assert_eq!(get_u32(&b, 12) as usize, b.len());
    assert_eq!(get_u32(&b, 16), 0); // unsigned
    assert_eq!(get_u32(&b, 24), HEADER_LEN as u32);
    assert_eq!(get_u32(&b, 32) % 16, 0);
    assert_eq!(get_u32(&b, 48), 7);
    assert_eq!(b[52], 4);
    assert_eq!(&b[56..60], b"tiny");
    assert_eq!(get_u32(&b, 8), writer::image_crc(&b));
    let a = AlignedBytes::new(&b);
    let m = Model::parse(a.as_slice()).expect("parses");
    assert_eq!(m.name(), "tiny");
    assert_eq!(m.model_version(), 7);
    assert_eq!(m.format_version(), (1, 0));
    assert_eq!((m.num_inputs(), m.num_outputs(), m.num_ops()), (1, 1, 2));
    let stats: Vec<_> = m.stats_entries().map(|e| e.expect("valid")).collect();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].tag, stats[0].payload),
        (1, &[1u8, 2, 3, 4, 5][..])
    );
    assert!(m.signature().is_none());
}

#[test]
fn golden_tiny_outputs() {
    // Hand-checked: x = [0.2, -0.1, 0.4, 0.05] quantized at (0.05, -3) -> [1, -5, 5, -2].
    let b = tiny_i8().bytes;
    let a = AlignedBytes::new(&b);
    let m = Model::parse(a.as_slice()).expect("parses");
    let mut arena = AlignedBytes::zeroed(m.arena_bytes());
    let mut it = Interpreter::new(&m, arena.as_mut_slice()).expect("fits");
    it.input_i8(0)
        .expect("input")
        .copy_from_slice(&[1, -5, 5, -2]);
    it.invoke().expect("runs");
    // f64: h = relu(W1 x + b1) = relu([0.1+0.1+0.0125+0.05+0.1, ...]) ; y = W2 h.
    let x = [0.2f64, -0.1, 0.4, 0.05];
    let w1 = [
        0.5, -0.25, 0.125, 1.0, -1.0, 0.75, 0.3, -0.6, 0.2, 0.1, -0.4, 0.9,
    ];
    let b1 = [0.1, -0.2, 0.3];
    let h: Vec<f64> = (0..3)
        .map(|o| (b1[o] + (0..4).map(|i| w1[o * 4 + i] * x[i]).sum::<f64>()).max(0.0))
        .collect();
    let w2 = [0.7, -0.3, 0.5, -0.9, 0.4, 0.2];
    let y = it.output_i8(0).expect("output");
    for o in 0..2 {
        let want = (0..3).map(|i| w2[o * 3 + i] * h[i]).sum::<f64>();
        let got = (y[o] as i32 - 5) as f64 * 0.03;
        assert!(
            (got - want).abs() <= 2.0 * 0.03,
            "output {o}: {got} vs {want}"
        );
    }
}

#[test]
fn f32_model_runs() {
    let b = tiny_f32().bytes;
    let a = AlignedBytes::new(&b);
    let m = Model::parse(a.as_slice()).expect("parses");
    let mut arena = AlignedBytes::zeroed(m.arena_bytes());
    let mut it = Interpreter::new(&m, arena.as_mut_slice()).expect("fits");
    it.input_f32(0)
        .expect("input")
        .copy_from_slice(&[1.0, 0.0, -1.0, 2.0, 2.0, 2.0]);
    it.invoke().expect("runs");
    assert_eq!(
        it.output_f32(0).expect("output"),
        &[-1.5, -1.75, 12.5, -1.0]
    );
    assert!(matches!(
        it.output_i8(0),
        Err(Error::TensorDtypeMismatch { .. })
    ));
    assert!(matches!(
        it.input_f32(1),
        Err(Error::TensorIndexOutOfRange { index: 1 })
    ));
}

/// An image mixing precisions: int8 FullyConnected → Dequantize → f32 Softmax.
fn mixed_image() -> BuiltImage {
    let mut w = ImageWriter::new("mixed", 1).expect("name fits");
    let x = w
        .input(DType::I8, &[1, 4], Some((0.05, -3)))
        .expect("input");
    let wts = [
        0.5, -0.25, 0.125, 1.0, -1.0, 0.75, 0.3, -0.6, 0.2, 0.1, -0.4, 0.9,
    ];
    let h = w
        .fully_connected(x, &wts, None, 3, Activation::None, Some((0.02, 1)))
        .expect("fc");
    let f = w.dequantize(h).expect("dequantize");
    let y = w.softmax(f, 1.0).expect("softmax");
    w.output(y).expect("output");
    w.finish().expect("writes")
}

/// `op_set_of` is exactly the variants each op binds to: int8 FullyConnected, f32 Dequantize
/// and Softmax for the mixed image (not f32 FullyConnected nor int8 Softmax), and a runtime
/// with that set runs it as the full runtime does, while dropping any one of its variants makes
/// the image unsupported.
#[test]
fn op_set_of_a_model_is_the_variants_it_binds() {
    const MIXED: u128 =
        op_set_int8(&[OpCode::FullyConnected]) | op_set_f32(&[OpCode::Dequantize, OpCode::Softmax]);
    fn outputs<const OPS: u128>(bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let a = AlignedBytes::new(bytes);
        let m = Model::parse_with_ops::<OPS>(a.as_slice())?;
        let mut arena = AlignedBytes::zeroed(m.arena_bytes());
        let mut it = Interpreter::<'_, '_, OPS>::new_with_ops(&m, arena.as_mut_slice())?;
        it.input_bytes(0)?.copy_from_slice(&[7, 0xF0, 33, 0x81]);
        it.invoke()?;
        Ok(it.output_bytes(0)?.to_vec())
    }
    let bytes = mixed_image().bytes;
    let a = AlignedBytes::new(&bytes);
    let m = Model::parse(a.as_slice()).expect("parses");
    assert_eq!(op_set_of(&m).expect("binds"), MIXED);
    let want = outputs::<ALL_OPS>(&bytes).expect("runs");
    assert_eq!(outputs::<MIXED>(&bytes).expect("runs"), want);
    let refused = |r: Result<Vec<u8>, Error>| matches!(r, Err(Error::UnsupportedOp { .. }));
    assert!(refused(outputs::<
        { MIXED & !op_set_int8(&[OpCode::FullyConnected]) },
    >(&bytes)));
    assert!(refused(outputs::<
        { MIXED & !op_set_f32(&[OpCode::Dequantize]) },
    >(&bytes)));
    assert!(refused(outputs::<
        { MIXED & !op_set_f32(&[OpCode::Softmax]) },
    >(&bytes)));
    // The two single-precision images: one variant each.
    for (image, set) in [
        (tiny_i8().bytes, op_set_int8(&[OpCode::FullyConnected])),
        (tiny_f32().bytes, op_set_f32(&[OpCode::FullyConnected])),
    ] {
        let a = AlignedBytes::new(&image);
        let m = Model::parse(a.as_slice()).expect("parses");
        assert_eq!(op_set_of(&m).expect("binds"), set);
    }
}

/// A runtime that links only some kernels (`parse_with_ops`, `new_with_ops`) runs the images
/// those kernels cover exactly as the full runtime does, and names the first op it lacks as
/// unsupported, whether the op code or only its int8/f32 variant is missing.
#[test]
fn op_sets_run_what_they_link_and_refuse_the_rest() {
    const FC_I8: u128 = op_set_int8(&[OpCode::FullyConnected]);
    const FC_F32: u128 = op_set_f32(&[OpCode::FullyConnected]);
    const FC_ALL: u128 = op_set(&[OpCode::FullyConnected]);
    const SOFTMAX: u128 = op_set(&[OpCode::Softmax]);
    fn outputs<const OPS: u128>(bytes: &[u8], input: &[u8]) -> Result<Vec<u8>, Error> {
        let a = AlignedBytes::new(bytes);
        let m = Model::parse_with_ops::<OPS>(a.as_slice())?;
        let mut arena = AlignedBytes::zeroed(m.arena_bytes());
        let mut it = Interpreter::<'_, '_, OPS>::new_with_ops(&m, arena.as_mut_slice())?;
        it.input_bytes(0)?.copy_from_slice(input);
        it.invoke()?;
        Ok(it.output_bytes(0)?.to_vec())
    }
    let unsupported = |r: Result<Vec<u8>, Error>| {
        assert!(
            matches!(r, Err(Error::UnsupportedOp { index: 0, code: 1 })),
            "{r:?}"
        )
    };
    let i8_image = tiny_i8().bytes;
    let x = [1u8, 0xFB, 5, 0xFE];
    let want = outputs::<ALL_OPS>(&i8_image, &x).expect("runs");
    assert_eq!(outputs::<FC_I8>(&i8_image, &x).expect("runs"), want);
    assert_eq!(outputs::<FC_ALL>(&i8_image, &x).expect("runs"), want);
    unsupported(outputs::<SOFTMAX>(&i8_image, &x));
    unsupported(outputs::<{ FC_ALL & !INT8_KERNELS }>(&i8_image, &x));

    let f32_image = tiny_f32().bytes;
    let x: Vec<u8> = [1.0f32, 0.0, -1.0, 2.0, 2.0, 2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let want = outputs::<ALL_OPS>(&f32_image, &x).expect("runs");
    assert_eq!(outputs::<FC_ALL>(&f32_image, &x).expect("runs"), want);
    assert_eq!(outputs::<FC_F32>(&f32_image, &x).expect("runs"), want);
    unsupported(outputs::<FC_I8>(&f32_image, &x));
    unsupported(outputs::<FC_F32>(&i8_image, &[1u8, 0xFB, 5, 0xFE]));

    // Every op code has a bit of its own, below the flags.
    for code in 0..=u8::MAX {
        if OpCode::from_code(code).is_some() {
            assert!(
                code < 61,
                "op code {code} would share a bit with an op-set flag"
            );
        }
    }
}

/// Applies `edit` to a valid image, fixes the CRC, and returns the parse result.
fn edited(edit: impl Fn(&mut Vec<u8>)) -> Result<(), Error> {
    let mut b = tiny_i8().bytes;
    edit(&mut b);
    fix_crc(&mut b);
    parse(&b)
}

/// The reject table of `FORMAT.md`, row by row.
#[test]
fn reject_table() {
    let good = tiny_i8().bytes;
    let len = good.len() as u32;
    // Bad magic.
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(parse(&b), Err(Error::ImageBadMagic));
    // Unknown major / newer minor version.
    let mut b = good.clone();
    b[4] = 2;
    assert_eq!(
        parse(&b),
        Err(Error::ImageUnsupportedVersion { major: 2, minor: 0 })
    );
    let mut b = good.clone();
    let newer = FORMAT_MINOR + 1;
    b[6..8].copy_from_slice(&newer.to_le_bytes());
    assert_eq!(
        parse(&b),
        Err(Error::ImageUnsupportedVersion {
            major: 1,
            minor: newer
        })
    );
    // Shorter than a header; shorter than the stated length.
    assert_eq!(
        parse(&good[..79]),
        Err(Error::ImageTruncated {
            needed: 80,
            got: 79
        })
    );
    assert_eq!(
        parse(&good[..good.len() - 16]),
        Err(Error::ImageTruncated {
            needed: len,
            got: len - 16
        })
    );
    // Misaligned start address.
    let mut shifted = AlignedBytes::zeroed(good.len() + 1);
    shifted.as_mut_slice()[1..].copy_from_slice(&good);
    assert_eq!(
        Model::parse(&shifted.as_slice()[1..]).map(|_| ()),
        Err(Error::ImageMisaligned)
    );
    // CRC mismatch.
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    assert!(matches!(parse(&b), Err(Error::ImageBadCrc { .. })));
    // Unknown header flag.
    assert_eq!(
        edited(|b| set_u32(b, 16, 2)),
        Err(Error::ImageBadHeader { offset: 16 })
    );
    // Length not a multiple of 16.
    assert_eq!(
        edited(|b| set_u32(b, 12, len - 1)),
        Err(Error::ImageBadHeader { offset: 12 })
    );
    // Name not UTF-8.
    assert_eq!(
        edited(|b| b[56] = 0xFF),
        Err(Error::ImageBadHeader { offset: 56 })
    );
    // Section out of place / misaligned.
    assert_eq!(
        edited(|b| set_u32(b, 24, 96)),
        Err(Error::ImageBadSection {
            section: Section::Graph
        })
    );
    assert_eq!(
        edited(|b| {
            let c = get_u32(b, 32);
            set_u32(b, 32, c + 8)
        }),
        Err(Error::ImageBadSection {
            section: Section::Constants
        })
    );
    // Graph counts inconsistent with the section length.
    assert!(matches!(
        edited(|b| b[HEADER_LEN] += 1),
        Err(Error::ImageBadGraph { .. })
    ));
    // A constant tensor at a misaligned offset, or past the constant section.
    let w1 = 1; // tensor 1 is the first weight constant
    assert_eq!(
        edited(|b| {
            let r = tensor_record(b, w1);
            set_u32(b, r + 12, 8)
        }),
        Err(Error::ImageBadTensor {
            tensor: 1,
            problem: TensorProblem::Misaligned
        })
    );
    assert_eq!(
        edited(|b| {
            let r = tensor_record(b, w1);
            set_u32(b, r + 12, 1 << 20)
        }),
        Err(Error::ImageBadTensor {
            tensor: 1,
            problem: TensorProblem::OutOfBounds
        })
    );
    // Bad dtype, rank, zero point.
    assert_eq!(
        edited(|b| {
            let r = tensor_record(b, 0);
            b[r] = 9
        }),
        Err(Error::ImageBadTensor {
            tensor: 0,
            problem: TensorProblem::BadDtype
        })
    );
    assert_eq!(
        edited(|b| {
            let r = tensor_record(b, 0);
            b[r + 1] = 5
        }),
        Err(Error::ImageBadTensor {
            tensor: 0,
            problem: TensorProblem::BadRank
        })
    );
    assert_eq!(
        edited(|b| {
            let r = tensor_record(b, 0);
            set_u32(b, r + 20, 200)
        }),
        Err(Error::ImageBadTensor {
            tensor: 0,
            problem: TensorProblem::BadQuant
        })
    );
    // Arena smaller than the plan.
    assert!(matches!(
        edited(|b| set_u32(b, 20, 16)),
        Err(Error::ImagePlanOutOfArena { .. })
    ));
    // Two live tensors moved onto the same bytes: the input (tensor 0) onto fc1's output.
    let a = AlignedBytes::new(&good);
    let m = Model::parse(a.as_slice()).expect("valid");
    let h = m
        .tensor(m.ops().next().expect("op").expect("valid").output(0) as usize)
        .expect("tensor");
    assert!(matches!(
        edited(|b| {
            let r = tensor_record(b, 0);
            set_u32(b, r + 12, h.offset)
        }),
        Err(Error::ImagePlanOverlap { .. })
    ));
    // Stored lifetime that does not match the graph.
    assert_eq!(
        edited(|b| {
            let r = tensor_record(b, 0);
            b[r + 26] = 1
        }),
        Err(Error::ImageBadTensor {
            tensor: 0,
            problem: TensorProblem::BadLifetime
        })
    );
    // Unknown op code; unknown parameter version.
    assert_eq!(
        edited(|b| {
            let o = first_op(b);
            b[o] = 200
        }),
        Err(Error::UnsupportedOp {
            index: 0,
            code: 200
        })
    );
    assert_eq!(
        edited(|b| {
            let o = first_op(b);
            b[o + 1] = 3
        }),
        Err(Error::UnsupportedOp {
            index: 0,
            code: OpCode::FullyConnected as u8
        })
    );
    // Op reading a tensor index past the table.
    assert_eq!(
        edited(|b| {
            let o = first_op(b);
            b[o + 8] = 250
        }),
        Err(Error::ImageBadOp {
            op: 0,
            problem: OpProblem::BadTensorIndex
        })
    );
    // Op writing a constant.
    assert_eq!(
        edited(|b| {
            let o = first_op(b);
            let n_in = b[o + 2] as usize;
            b[o + 8 + 2 * n_in] = 1
        }),
        Err(Error::ImageBadOp {
            op: 0,
            problem: OpProblem::BadWrite
        })
    );
    // Activation clamp out of int8 range (fc1's params: [act_min, act_max]).
    assert_eq!(
        edited(|b| {
            let o = first_op(b);
            let io = 2 * (b[o + 2] as usize + b[o + 3] as usize);
            let p = o + 8 + io.div_ceil(4) * 4;
            set_u32(b, p, 500)
        }),
        Err(Error::ImageBadOp {
            op: 0,
            problem: OpProblem::BadParams
        })
    );
    // Kernel check: a shift out of range in the constant section.
    let shift_tensor = 5; // x, w1, b1, m1, s1 -> tensor 4 is fc1's shifts... find it by dtype/role
    let _ = shift_tensor;
    assert!(matches!(
        edited(|b| {
            // fc1's inputs: [x, w, b, mult, shift]; corrupt the first shift value.
            let o = first_op(b);
            let s = u16::from_le_bytes([b[o + 16], b[o + 17]]) as usize;
            let r = tensor_record(b, s);
            let off = get_u32(b, 32) as usize + get_u32(b, r + 12) as usize;
            set_u32(b, off, 99)
        }),
        Err(Error::QuantParamInvalid { op: 0 })
    ));
    // Malformed statistics entry.
    assert!(matches!(
        edited(|b| {
            let s = get_u32(b, 40) as usize;
            set_u32(b, s + 4, 1000)
        }),
        Err(Error::ImageBadStats { offset: 0 })
    ));
    // Signed flag without a trailer; trailer with a bad magic; a good trailer.
    assert!(matches!(
        edited(|b| set_u32(b, 16, 1)),
        Err(Error::ImageTruncated { .. })
    ));
    let mut signed = good.clone();
    set_u32(&mut signed, 16, FLAG_SIGNED);
    fix_crc(&mut signed);
    signed.extend_from_slice(b"EDSX\x01\x00\x00\x00");
    signed.extend_from_slice(&[7; 72]);
    assert_eq!(parse(&signed), Err(Error::ImageBadSignatureTrailer));
    signed[len as usize + 3] = b'G';
    let a = AlignedBytes::new(&signed);
    let m = Model::parse(a.as_slice()).expect("signed image parses");
    let sig = m.signature().expect("has a trailer");
    assert_eq!(sig.key_id, &[7; 8]);
    assert_eq!(sig.signature.len(), 64);
    assert_eq!(m.signed_bytes(), &signed[..len as usize]);
    // Trailing bytes (flash padding) are ignored.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0xFF; 100]);
    assert_eq!(parse(&padded), Ok(()));
}

#[test]
fn interpreter_rejects_bad_arenas() {
    let b = tiny_i8().bytes;
    let a = AlignedBytes::new(&b);
    let m = Model::parse(a.as_slice()).expect("parses");
    let need = m.arena_bytes();
    let mut small = AlignedBytes::zeroed(need - 1);
    assert_eq!(
        Interpreter::new(&m, small.as_mut_slice()).map(|_| ()),
        Err(Error::ArenaTooSmall {
            needed: need as u32,
            given: need as u32 - 1
        })
    );
    let mut big = AlignedBytes::zeroed(need + 1);
    assert_eq!(
        Interpreter::new(&m, &mut big.as_mut_slice()[1..]).map(|_| ()),
        Err(Error::ArenaMisaligned)
    );
}

/// Parses `bytes`; when it parses, runs it on arbitrary inputs. Must never panic.
fn parse_and_run(bytes: &[u8]) -> bool {
    let a = AlignedBytes::new(bytes);
    let Ok(m) = Model::parse(a.as_slice()) else {
        return false;
    };
    if m.arena_bytes() > 1 << 20 {
        // A corrupted arena size: valid, but not worth a huge allocation here.
        return true;
    }
    let mut arena = AlignedBytes::zeroed(m.arena_bytes());
    let Ok(mut it) = Interpreter::new(&m, arena.as_mut_slice()) else {
        return true;
    };
    for k in 0..m.num_inputs() {
        if let Ok(x) = it.input_bytes(k) {
            x.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i * 37) as u8);
        }
    }
    let _ = it.invoke();
    true
}

#[test]
fn truncation_at_every_length_is_an_error() {
    for built in [tiny_i8(), tiny_f32()] {
        let b = &built.bytes;
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err(), "prefix of {n} bytes parsed");
        }
        assert!(parse_and_run(b));
    }
}

#[test]
fn every_bit_flip_is_an_error_or_a_valid_model() {
    for built in [tiny_i8(), tiny_f32()] {
        let good = &built.bytes;
        let (mut crc_caught, mut parsed) = (0, 0);
        for bit in 0..good.len() * 8 {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            // As stored: the CRC catches every single-bit error.
            crc_caught += parse(&b).is_err() as usize;
            // With the CRC recomputed, the structural checks must hold on their own.
            fix_crc(&mut b);
            parsed += parse_and_run(&b) as usize;
        }
        assert_eq!(crc_caught, good.len() * 8);
        eprintln!(
            "{} bit flips: {parsed} still valid models after CRC fix-up",
            good.len() * 8
        );
    }
}

/// Every stored lifetime `(first_op, last_op)` of every tensor, for the tiny graph and the MLP
/// (with its softmax): the one-pass lifetime check and the exact per-tensor one must agree on
/// each (debug builds assert it inside `Model::parse`), and the valid edits are exactly the
/// original lifetimes.
#[test]
fn every_stored_lifetime_edit_is_judged_alike_by_both_checks() {
    let mlp = {
        let net = crate::models::mlp::mlp(5, true);
        let mut rng = crate::models::Rng::new(9);
        let calib: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(net.input_len(), 1.0)).collect();
        net.build_i8(&calib).expect("MLP image").0
    };
    for built in [tiny_i8(), tiny_f32(), mlp] {
        let good = &built.bytes;
        let (tried, valid, n_tensors) = lifetime_edits(good);
        assert_eq!(
            valid, n_tensors,
            "each tensor's own lifetime ({tried} edits tried)"
        );
    }
}

/// Every stored lifetime `(first_op, last_op)` in `0..=ops + 1` of every tensor of the image
/// `good`, parsed with the CRC fixed up; asserts that an accepted edit is the original lifetime.
/// Returns the edits tried, those accepted and the tensor count.
fn lifetime_edits(good: &[u8]) -> (usize, usize, usize) {
    let a = AlignedBytes::new(good);
    let m = Model::parse(a.as_slice()).expect("valid");
    let (n_tensors, n_ops) = (m.num_tensors(), m.num_ops() as u16);
    let (mut tried, mut valid) = (0, 0);
    for t in 0..n_tensors {
        let r = tensor_record(good, t);
        for first in 0..=n_ops + 1 {
            for last in 0..=n_ops + 1 {
                let mut b = good.to_vec();
                b[r + 24..r + 26].copy_from_slice(&first.to_le_bytes());
                b[r + 26..r + 28].copy_from_slice(&last.to_le_bytes());
                fix_crc(&mut b);
                tried += 1;
                if parse(&b).is_ok() {
                    valid += 1;
                    assert_eq!(b, good, "tensor {t}: ({first}, {last}) accepted");
                }
            }
        }
    }
    (tried, valid, n_tensors)
}

/// A Concat of 16 inputs, some the same tensor or aliases of one (past the inputs whose bases
/// the fast lifetime check keeps, 4 in tests, it resolves them again): every stored lifetime edit is
/// judged alike by the fast and the exact check (debug builds assert it inside `Model::parse`),
/// and only the writer's own lifetimes are accepted.
#[test]
fn lifetime_edits_of_an_op_with_many_inputs_are_judged_alike_by_both_checks() {
    let mut w = ImageWriter::new("wide", 1).expect("name fits");
    let x = w.input(DType::F32, &[1, 4], None).expect("input");
    let r = w.relu(x, false).expect("relu");
    let s = w.relu(r, true).expect("relu6");
    let ra = w.alias(r, &[1, 4]).expect("alias");
    let sa = w.alias(s, &[1, 4]).expect("alias");
    let mut xs = vec![x; 10];
    xs.extend([r, s, ra, r, sa, s]);
    let c = w.concat(&xs, 1, None).expect("concat");
    w.output(c).expect("output");
    let good = w.finish().expect("writes").bytes;
    let (_, valid, n_tensors) = lifetime_edits(&good);
    assert_eq!(valid, n_tensors);
}

/// A chain of 45 FullyConnected layers (more tensors than one block of the plan check): every
/// arena tensor moved onto every other one's offset, overlapping or not; the blocked plan check
/// and the exact one agree on each (debug builds assert it inside `Model::parse`).
#[test]
fn every_plan_edit_of_a_long_chain_is_judged_alike_by_both_checks() {
    let mut w = ImageWriter::new("chain", 1).expect("name fits");
    let mut h = w.input(DType::F32, &[1, 4], None).expect("input");
    let weights: [f32; 16] = core::array::from_fn(|i| (i as f32 - 7.5) / 8.0);
    for _ in 0..45 {
        h = w
            .fully_connected(h, &weights, None, 4, Activation::None, None)
            .expect("fc");
    }
    w.output(h).expect("output");
    let good = w.finish().expect("writes").bytes;
    let a = AlignedBytes::new(&good);
    let m = Model::parse(a.as_slice()).expect("valid");
    let arena: Vec<usize> = (0..m.num_tensors())
        .filter(|&t| m.tensor(t).is_ok_and(|x| x.in_arena()))
        .collect();
    assert!(arena.len() > 40, "{} arena tensors", arena.len());
    let (mut overlaps, mut valid) = (0, 0);
    for &t in &arena {
        for &u in &arena {
            let mut b = good.clone();
            let off = get_u32(&good, tensor_record(&good, u) + 12);
            set_u32(&mut b, tensor_record(&good, t) + 12, off);
            fix_crc(&mut b);
            match parse(&b) {
                Ok(()) => valid += 1,
                Err(Error::ImagePlanOverlap { .. }) => overlaps += 1,
                Err(e) => panic!("tensor {t} onto {u}'s offset: {e:?}"),
            }
        }
    }
    assert!(
        overlaps > 0 && valid > arena.len(),
        "{overlaps} overlaps, {valid} valid"
    );
}

#[test]
fn seeded_multi_byte_corruption_never_panics() {
    let good = tiny_i8().bytes;
    let mut s = 0x5EED_u64;
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + (s % 4) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let i = (s >> 8) as usize % b.len();
            b[i] = (s >> 40) as u8;
        }
        fix_crc(&mut b);
        parse_and_run(&b);
    }
}

/// One graph with every core op that is not in the example models (Quantize, ReLU, MaxPool,
/// Add, Mul, Concat, alias reshape, Reshape copy, Softmax, ArgMax, Dequantize, AvgPool, Conv1D),
/// run in int8 and f32 from the same float input; the two runs agree within the int8 resolution.
#[test]
fn every_core_op_in_one_graph() {
    use super::layers::Window;
    let build = |int8: bool| {
        let mut w = ImageWriter::new("ops-mix", 1).expect("name");
        let x = w.input(DType::F32, &[1, 2, 4, 4], None).expect("input");
        let q = |v: (f32, i32)| if int8 { Some(v) } else { None };
        let h = if int8 {
            w.quantize(x, (0.02, 3)).expect("quantize")
        } else {
            x
        };
        let r = w.relu(h, false).expect("relu");
        let p = w.pool2d(r, [2, 2], Window::VALID, true).expect("maxpool");
        let a = w.pool2d(r, [2, 2], Window::VALID, false).expect("avgpool");
        let s = w
            .binary(p, a, true, Activation::None, q((0.04, -20)))
            .expect("add");
        let m = w
            .binary(s, p, false, Activation::Relu, q((0.02, -100)))
            .expect("mul");
        let c = w.concat(&[m, s], 3, q((0.04, -20))).expect("concat");
        let k = w.shape(c).expect("shape")[3];
        let seq = w.reshape_copy(c, &[1, 3, k]).expect("reshape");
        let conv = w
            .conv1d(
                seq,
                &[
                    0.5, -0.25, 0.1, 0.3, 0.2, -0.4, 0.6, 0.1, -0.3, 0.2, 0.05, 0.15, -0.1, 0.4,
                    0.25, -0.2,
                ],
                None,
                [1, 2, k],
                1,
                1,
                [0, 1],
                Activation::None,
                q((0.01, 0)),
            )
            .expect("conv1d");
        let flat = w.alias(conv, &[1, 3]).expect("alias");
        let sm = w.softmax(flat, 1.0).expect("softmax");
        let am = w.argmax(sm, 1).expect("argmax");
        let out = if int8 {
            w.dequantize(sm).expect("dequantize")
        } else {
            sm
        };
        w.output(out).expect("output");
        w.output(am).expect("output");
        w.finish().expect("writes")
    };
    let x: Vec<f32> = (0..32)
        .map(|i| ((i * 7 % 13) as f32 - 4.0) * 0.05)
        .collect();
    let mut outs = Vec::new();
    for int8 in [false, true] {
        let built = build(int8);
        assert_eq!(built.stats.plan.arena_bytes, built.stats.plan.lower_bound);
        let a = AlignedBytes::new(&built.bytes);
        let m = Model::parse(a.as_slice()).expect("parses");
        let mut arena = AlignedBytes::zeroed(m.arena_bytes());
        let mut it = Interpreter::new(&m, arena.as_mut_slice()).expect("fits");
        it.input_f32(0).expect("input").copy_from_slice(&x);
        it.invoke().expect("runs");
        let probs = it.output_f32(0).expect("probs").to_vec();
        let arg = it.output_i32(1).expect("argmax")[0];
        let sum: f32 = probs.iter().sum();
        assert!((sum - 1.0).abs() < 0.02, "softmax sums to {sum}");
        let best = probs.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(probs[arg as usize], best);
        outs.push(probs);
    }
    for (f, q) in outs[0].iter().zip(&outs[1]) {
        assert!((f - q).abs() < 0.05, "f32 {f} vs int8 {q}");
    }
}

#[test]
fn with_stats_replaces_the_statistics_section() {
    use super::writer::with_stats;
    let built = tiny_i8();
    let before = AlignedBytes::new(&built.bytes);
    let out = with_stats(
        &built.bytes,
        &[(2, vec![9, 0, 0, 0, 4, 0, 0, 0]), (7, vec![1])],
    )
    .expect("adds stats");
    let after = AlignedBytes::new(&out);
    let a = Model::parse(after.as_slice()).expect("parses");
    let entries: Vec<(u16, Vec<u8>)> = a
        .stats_entries()
        .map(|e| e.map(|e| (e.tag, e.payload.to_vec())))
        .collect::<Result<_, _>>()
        .expect("entries");
    assert_eq!(
        entries,
        vec![(2, vec![9, 0, 0, 0, 4, 0, 0, 0]), (7, vec![1])]
    );
    // Graph and constants are unchanged byte for byte; only the header's length, statistics
    // fields and CRC differ.
    let b = Model::parse(before.as_slice()).expect("parses");
    assert_eq!(b.constants_len(), a.constants_len());
    let const_end = (get_u32(&built.bytes, 32) + get_u32(&built.bytes, 36)) as usize;
    assert_eq!(&out[80..const_end], &built.bytes[80..const_end]);
    assert_eq!(&out[16..40], &built.bytes[16..40]);
    assert_eq!(&out[48..80], &built.bytes[48..80]);
    // Removing them all gives a valid image without a statistics section.
    let bare = with_stats(&out, &[]).expect("removes stats");
    let bare_a = AlignedBytes::new(&bare);
    let m = Model::parse(bare_a.as_slice()).expect("parses");
    assert_eq!(m.stats_entries().count(), 0);
    assert!(bare.len() < out.len());
    // Tag 0 and an image that does not parse are refused.
    assert!(with_stats(&built.bytes, &[(0, vec![])]).is_err());
    let mut broken = built.bytes.clone();
    broken[100] ^= 1;
    assert!(with_stats(&broken, &[]).is_err());
}

/// Ops nothing reads (a chain of two, and one beside the live path) are removed with their
/// outputs and weights; the pruned image parses, is smaller, and computes the same output.
#[test]
fn dead_ops_are_removed_and_the_output_is_unchanged() {
    let build = |prune: bool| {
        let mut w = ImageWriter::new("dead", 1).expect("name fits");
        let x = w.input(DType::F32, &[1, 4], None).expect("input");
        let wa: [f32; 16] = core::array::from_fn(|i| (i as f32 - 7.5) / 8.0);
        let wb: [f32; 8] = core::array::from_fn(|i| (i as f32 + 1.0) / 4.0);
        let wc: [f32; 12] = core::array::from_fn(|i| 0.3 - i as f32 / 10.0);
        let d1 = w
            .fully_connected(x, &wa, None, 4, Activation::Relu, None)
            .expect("dead fc");
        w.fully_connected(d1, &wb, None, 2, Activation::None, None)
            .expect("dead fc reading a dead fc");
        let y = w
            .fully_connected(x, &wc, Some(&[0.5, -1.0, 2.0]), 3, Activation::None, None)
            .expect("live fc");
        w.output(y).expect("output");
        let removed = if prune { w.remove_dead_ops() } else { 0 };
        (w.finish().expect("writes").bytes, removed)
    };
    let run = |bytes: &[u8]| {
        let a = AlignedBytes::new(bytes);
        let m = Model::parse(a.as_slice()).expect("valid");
        let mut arena = AlignedBytes::zeroed(m.arena_bytes());
        let mut it = Interpreter::new(&m, arena.as_mut_slice()).expect("arena");
        let x: [f32; 4] = [0.25, -1.5, 3.0, 0.75];
        for (d, v) in it.input_bytes(0).expect("input").chunks_exact_mut(4).zip(x) {
            d.copy_from_slice(&v.to_le_bytes());
        }
        it.invoke().expect("invoke");
        (
            m.num_ops(),
            m.num_tensors(),
            it.output_bytes(0).expect("output").to_vec(),
        )
    };
    let (full, none) = build(false);
    let (pruned, removed) = build(true);
    assert_eq!((none, removed), (0, 2));
    let (ops_a, tensors_a, out_a) = run(&full);
    let (ops_b, tensors_b, out_b) = run(&pruned);
    assert_eq!((ops_a, ops_b), (3, 1));
    assert!(tensors_b < tensors_a && pruned.len() < full.len());
    assert_eq!(out_a, out_b);
    // Nothing dead: nothing changes.
    let mut w = ImageWriter::new("live", 1).expect("name fits");
    let x = w.input(DType::F32, &[1, 2], None).expect("input");
    let y = w
        .fully_connected(x, &[1.0, 2.0], None, 1, Activation::None, None)
        .expect("fc");
    w.output(y).expect("output");
    let before = w.finish().expect("writes").bytes;
    assert_eq!(w.remove_dead_ops(), 0);
    assert_eq!(w.finish().expect("writes").bytes, before);
}

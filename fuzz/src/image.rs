//! Model images: any bytes either fail `Model::parse` with an error, or parse into a model whose
//! signature check, `Interpreter::new` and `invoke` return without panicking, and whose ops
//! decoded once into caller slots (`Interpreter::new_prepared`) give the same result, output
//! bytes or error, as `Interpreter::new`.

use edgeloop_runtime::image::writer::{fix_crc, AlignedBytes};
use edgeloop_runtime::{Error, Interpreter, Model, PreparedOp};

/// Public key of the secret key `write-seeds` signs the signed seeds with (`SEED_KEY_SEED`).
pub const SEED_PUBLIC_KEY: [u8; 32] = [
    129, 70, 100, 15, 2, 73, 58, 244, 251, 197, 79, 227, 51, 136, 231, 93, 194, 201, 55, 174, 11,
    119, 39, 204, 43, 42, 251, 27, 117, 25, 154, 62,
];

/// The 32-byte seed of the signing key of the signed seed images.
pub const SEED_KEY_SEED: [u8; 32] = [0x5e; 32];

/// Largest arena the fuzzer allocates (a corrupted header may ask for gigabytes).
pub const MAX_ARENA: usize = 1 << 20;

/// Runs [`parse_and_invoke`] on `data` as given (the CRC rejects almost every mutation) and on a
/// copy with the header CRC recomputed, so the fuzzer explores the structural checks too.
pub fn fuzz_one(data: &[u8]) {
    parse_and_invoke(data);
    let mut fixed = data.to_vec();
    fix_crc(&mut fixed);
    if fixed != data {
        parse_and_invoke(&fixed);
    }
}

/// Parses `data`; when it parses, runs it once on a fixed input pattern, with `Interpreter::new`
/// and with `Interpreter::new_prepared`, and asserts both give the same outputs or error.
pub fn parse_and_invoke(data: &[u8]) {
    let image = AlignedBytes::new(data);
    let Ok(model) = Model::parse(image.as_slice()) else {
        return;
    };
    // Signed seeds carry a valid signature by this key, so mutations reach the verifier's
    // accept path as well as each of its refusals.
    let _ = model.verify_signature(&SEED_PUBLIC_KEY);
    if model.arena_bytes() > MAX_ARENA {
        return;
    }
    let plain = run(&model, None);
    let mut slots: Vec<PreparedOp> = (0..model.num_ops()).map(|_| PreparedOp::EMPTY).collect();
    let prepared = run(&model, Some(&mut slots));
    match (&plain, &prepared) {
        // `new` decodes nothing under `std` either (it keeps its own decoded copy), so both
        // refuse a bad op in the constructor, with the same error.
        (Ok(a), Ok(b)) => assert_eq!(a, b, "prepared ops changed the outputs"),
        (Err(a), Err(b)) => assert_eq!(a, b, "prepared ops changed the error"),
        _ => panic!("new: {plain:?}, new_prepared: {prepared:?}"),
    }
}

/// Builds an interpreter (with op slots when `slots` is given), writes a fixed input pattern,
/// invokes once and returns every output's bytes.
fn run<'i>(model: &Model<'i>, slots: Option<&mut [PreparedOp<'i>]>) -> Result<Vec<Vec<u8>>, Error> {
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = match slots {
        Some(slots) => Interpreter::new_prepared(model, arena.as_mut_slice(), slots)?,
        None => Interpreter::new(model, arena.as_mut_slice())?,
    };
    for k in 0..model.num_inputs() {
        if let Ok(x) = it.input_bytes(k) {
            x.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i as u8).wrapping_mul(151));
        }
    }
    it.invoke()?;
    (0..model.num_outputs())
        .map(|k| it.output_bytes(k).map(<[u8]>::to_vec))
        .collect()
}

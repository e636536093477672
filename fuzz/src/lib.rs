//! The fuzzed property: any bytes either fail `Model::parse` with an error, or parse into a
//! model that `Interpreter::new` and `invoke` handle without panicking.

use edgeloop_runtime::image::writer::{fix_crc, AlignedBytes};
use edgeloop_runtime::{Interpreter, Model};

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

/// Parses `data`; when it parses, runs it once on a fixed input pattern.
pub fn parse_and_invoke(data: &[u8]) {
    let image = AlignedBytes::new(data);
    let Ok(model) = Model::parse(image.as_slice()) else {
        return;
    };
    if model.arena_bytes() > MAX_ARENA {
        return;
    }
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let Ok(mut it) = Interpreter::new(&model, arena.as_mut_slice()) else {
        return;
    };
    for k in 0..model.num_inputs() {
        if let Ok(x) = it.input_bytes(k) {
            x.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i as u8).wrapping_mul(151));
        }
    }
    let _ = it.invoke();
}

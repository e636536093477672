//! The fuzzed property: any bytes either fail `Model::parse` with an error, or parse into a
//! model that `Interpreter::new` and `invoke` handle without panicking.

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};

/// Largest arena the fuzzer allocates (a corrupted header may ask for gigabytes).
pub const MAX_ARENA: usize = 1 << 20;

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

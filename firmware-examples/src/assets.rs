//! The model image and test vectors embedded at build time (see `build.rs`).

/// Bytes with 16-byte alignment, as the image's constant section requires.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

static IMAGE: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/classify.img")));

/// The model image (16-byte aligned, executed in place from flash).
pub fn image() -> &'static [u8] {
    &IMAGE.0
}

/// Test inputs: `n` int8 input tensors back to back.
pub static INPUTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/classify.inputs"));

/// The host runtime's int8 output tensors for [`INPUTS`], back to back.
pub static EXPECTED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/classify.expected"));

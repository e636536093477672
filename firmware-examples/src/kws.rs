//! Keyword-spotting assets embedded at build time (feature `kws`; `build.rs` copies them from
//! `$EDGELOOP_FW_ASSETS`): the trained DS-CNN's int8 image, raw 16 kHz int16 clips, and the
//! host's front-end features, model outputs and the clips' true labels. The test
//! `tests/firmware_qemu.rs` (`kws_front_end_and_model_bit_exact_on_cortex_m4`) writes them.

/// Bytes with 16-byte alignment, as the image's constant section requires.
#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

macro_rules! asset {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

static IMAGE: &Aligned<[u8]> = &Aligned(*asset!("kws.img"));

/// The keyword model image (input: the front end's int8 features; output: f32 logits).
pub fn image() -> &'static [u8] {
    &IMAGE.0
}

/// Clips: `edgeloop_runtime::audio::CLIP_SAMPLES` int16 little-endian samples each, back to back.
pub static PCM: &[u8] = asset!("kws.pcm");
/// The host's int8 features of every clip (`CLIP_FEATURES` bytes each), back to back.
pub static FEATURES: &[u8] = asset!("kws.features");
/// The host runtime's output tensor bytes for every clip's features, back to back.
pub static EXPECTED: &[u8] = asset!("kws.expected");
/// True class of every clip (one byte each).
pub static LABELS: &[u8] = asset!("kws.labels");

//! Model images and test vectors embedded at build time (see `build.rs`), all written by
//! `edgeloop firmware-assets`.

/// Bytes with 16-byte alignment, as the image's constant section requires.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

macro_rules! asset {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

/// The classifier's model image (16-byte aligned, executed in place from flash), its test
/// inputs (input tensors back to back) and the host runtime's outputs for them. On the
/// mps2-an386 (Cortex-M4F) this is `classify.*`: the demo's intent classifier (token ids of the
/// demo's test split in, f32 logits out) when the assets come from the test command; on the
/// microbit (Cortex-M0, 16 KiB RAM) the small MLP (`mlp.*`).
pub mod classify {
    use super::Aligned;

    #[cfg(board = "mps2_an386")]
    static IMAGE: &Aligned<[u8]> = &Aligned(*asset!("classify.img"));
    #[cfg(board = "microbit")]
    static IMAGE: &Aligned<[u8]> = &Aligned(*asset!("mlp.img"));

    /// The model image.
    pub fn image() -> &'static [u8] {
        &IMAGE.0
    }

    /// Test inputs: input tensors back to back.
    #[cfg(board = "mps2_an386")]
    pub static INPUTS: &[u8] = asset!("classify.inputs");
    /// Test inputs: int8 input tensors back to back.
    #[cfg(board = "microbit")]
    pub static INPUTS: &[u8] = asset!("mlp.inputs");

    /// The host runtime's output tensors for [`INPUTS`], back to back.
    #[cfg(board = "mps2_an386")]
    pub static EXPECTED: &[u8] = asset!("classify.expected");
    /// The host runtime's int8 output tensors for [`INPUTS`], back to back.
    #[cfg(board = "microbit")]
    pub static EXPECTED: &[u8] = asset!("mlp.expected");
}

/// The keyword-spotting-sized DS-CNN (int8, built in code), which `bench` measures per op, and
/// its int8 test inputs.
#[cfg(board = "mps2_an386")]
pub mod dscnn {
    use super::Aligned;

    static IMAGE: &Aligned<[u8]> = &Aligned(*asset!("dscnn.img"));

    /// The model image.
    pub fn image() -> &'static [u8] {
        &IMAGE.0
    }

    /// Test inputs: int8 input tensors back to back.
    pub static INPUTS: &[u8] = asset!("dscnn.inputs");
}

/// The small int8 MLP (64 → 128 → 64 → 10) the Cortex-M0 build classifies with.
pub mod mlp {
    use super::Aligned;

    static IMAGE: &Aligned<[u8]> = &Aligned(*asset!("mlp.img"));

    /// The model image.
    pub fn image() -> &'static [u8] {
        &IMAGE.0
    }
}

/// The classifier image signed with Ed25519 (`classify.signed.img`), and the public key the
/// firmware trusts (`classify.pub`, 32 raw bytes).
#[cfg(board = "mps2_an386")]
pub mod signed {
    use super::Aligned;

    static IMAGE: &Aligned<[u8]> = &Aligned(*asset!("classify.signed.img"));

    /// The signed model image (image plus 80-byte signature trailer). Read through
    /// `black_box`, as if flashed separately from the firmware: otherwise the compiler folds
    /// header fields of the embedded bytes into the code, and a test that tampers with the
    /// image inside the ELF would change only some of what the firmware reads.
    pub fn image() -> &'static [u8] {
        core::hint::black_box(&IMAGE.0)
    }

    /// The trusted Ed25519 public key.
    pub static PUBLIC_KEY: [u8; 32] = *asset!("classify.pub");
}

/// The tiny GPT (int8, one token per invoke, KV caches) and the host runtime's greedy decoding.
#[cfg(board = "mps2_an386")]
pub mod generate {
    use super::Aligned;

    static IMAGE: &Aligned<[u8]> = &Aligned(*asset!("generate.img"));

    /// The model image.
    pub fn image() -> &'static [u8] {
        &IMAGE.0
    }

    /// Prompt token ids (i32 little-endian).
    pub static PROMPT: &[u8] = asset!("generate.prompt");
    /// The host's whole sequence: prompt then greedy tokens (i32 little-endian).
    pub static EXPECTED: &[u8] = asset!("generate.expected");
    /// The host's int8 logits of every decoding step, back to back.
    pub static LOGITS: &[u8] = asset!("generate.logits");
}

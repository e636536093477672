//! `Quantize(LayerNorm(Dequantize(x)))` as one op: int8 in, int8 out, the f32 LayerNorm inside
//! (LayerNorm version 2 in the image format).
//!
//! A quantized transformer normalises its int8 residual stream through an f32 LayerNorm between
//! a Dequantize and a Quantize (what the QDQ graph means, and what agrees with ONNX Runtime).
//! This op does the same three steps a few rows at a time in a small f32 scratch (`2 · g ·
//! cols` values for `g` rows), so the two f32 tensors of the residual's size never reach the
//! arena and the data is read and written once.
//!
//! # Arithmetic (bit-exact to the three ops)
//!
//! Each row goes through the kernel table's `dequantize`, `layer_norm_f32` and `quantize` —
//! the kernels the three version-1 ops call — on the same values, so the output equals theirs
//! bit for bit (tested against the reference ops on random shapes and values). Where the CPU
//! has AVX-512, [`eval`] runs the three steps row by row in one kernel ([`super::avx512`]), with
//! the same operations in the same order.

use super::LayerNormF32Params;
use crate::ops::quantize::QuantizeParams;
use crate::ops::QdqSteps;
use crate::Error;

/// Parameters of the fused int8 LayerNorm.
#[derive(Debug, Clone, Copy)]
pub struct QuantizedLayerNormParams<'a> {
    /// The f32 LayerNorm (rows, cols, ε, γ, β).
    pub norm: LayerNormF32Params<'a>,
    /// Quantization of the int8 input (the Dequantize's).
    pub input: QuantizeParams,
    /// Quantization of the int8 output (the Quantize's).
    pub output: QuantizeParams,
}

/// Scratch values [`eval`] needs at least: two rows.
pub fn min_scratch(cols: u32) -> usize {
    2 * cols as usize
}

/// Scratch values that let [`eval`] take up to `group` rows at a time.
pub fn scratch_for(rows: u32, cols: u32, group: u32) -> usize {
    2 * cols as usize * group.clamp(1, rows.max(1)) as usize
}

/// Validates the parameters against the input, scratch and output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check(
    p: &QuantizedLayerNormParams<'_>,
    input_len: usize,
    scratch_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    super::check_f32(&p.norm, input_len, output_len)?;
    for q in [&p.input, &p.output] {
        crate::ops::quantize::check(q, 1, 1)?;
    }
    if scratch_len < min_scratch(p.norm.cols) {
        return Err(crate::ops::shape_err());
    }
    Ok(())
}

/// Runs the op with the kernel table of this machine, or in one AVX-512 kernel
/// ([`super::avx512`], the same bytes) where the CPU has it. Requires a successful [`check`].
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval(
    p: &QuantizedLayerNormParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    if super::avx512::detected() && scratch.len() >= p.norm.cols as usize {
        return super::avx512::eval_quantized_detected(p, input, scratch, output);
    }
    let steps = QdqSteps::linked(crate::ops::kernel!(layer_norm_f32));
    run(steps, p, input, scratch, output)
}

/// [`eval`] with an explicit kernel table (the reference table gives the specification).
pub fn eval_with(
    k: &crate::ops::KernelTable,
    p: &QuantizedLayerNormParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    let steps = QdqSteps::from_table(k, k.layer_norm_f32);
    run(steps, p, input, scratch, output)
}

fn run(
    k: QdqSteps<crate::ops::LayerNormF32Fn>,
    p: &QuantizedLayerNormParams<'_>,
    input: &[i8],
    scratch: &mut [f32],
    output: &mut [i8],
) {
    let cols = p.norm.cols as usize;
    if cols == 0 {
        return;
    }
    let group = (scratch.len() / (2 * cols)).max(1);
    let (a_all, b_all) = scratch.split_at_mut(scratch.len() / 2);
    for (x, y) in input
        .chunks(group * cols)
        .zip(output.chunks_mut(group * cols))
    {
        let n = x.len();
        let (a, b) = (&mut a_all[..n], &mut b_all[..n]);
        (k.dequantize)(&p.input, x, a);
        let norm = LayerNormF32Params {
            rows: (n / cols) as u32,
            ..p.norm
        };
        (k.op)(&norm, a, b);
        (k.quantize)(&p.output, b, y);
    }
}

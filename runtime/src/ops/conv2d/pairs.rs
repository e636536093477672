//! int8 Conv2D for cores without the DSP extension (Cortex-M0/M0+, ARMv6-M), bit-exact to
//! [`super::reference::eval_i8`]: a 1×1, stride-1, unpadded layer is one FullyConnected over its
//! pixels in 2×2 blocks ([`crate::ops::fully_connected::pairs`]); other layers gather each output
//! pixel's receptive field (the input zero point in the padding) four pixels at a time, as the
//! DSP kernel does, and multiply them the same way; receptive fields over
//! [`super::dsp::MAX_PATCH`] bytes run the reference.

use super::Conv2dParams;

/// int8 Conv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    let s = &p.shape;
    if s.is_pointwise() {
        let out_c = s.output[3] as usize;
        let pixels = output.len() / out_c;
        let fc = super::as_fully_connected(p, s.patch_len(), out_c, pixels as u32);
        return crate::ops::fully_connected::pairs::eval_i8(&fc, input, output);
    }
    let k = s.patch_len();
    if k > super::dsp::MAX_PATCH {
        return super::reference::eval_i8(p, input, output);
    }
    super::dsp::eval_patches_with(
        p,
        input,
        output,
        k,
        crate::ops::fully_connected::pairs::eval_i8,
    );
}

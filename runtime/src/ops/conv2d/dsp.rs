//! Cortex-M4 DSP int8 Conv2D (SMLAD; portable emulation off-target), bit-exact to
//! [`super::reference::eval_i8`]: each `(tap, output channel)` contribution is
//! [`crate::arch::cortex_m::dot_offset_i8_dsp`] over the input channels.

use super::Conv2dParams;

/// DSP Conv2D. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    super::dot_variant::eval_i8_with(p, input, output, |x, xo, w| {
        crate::arch::cortex_m::dot_offset_i8_dsp(x, xo, w, 0)
    })
}

//! Architecture-specific helpers and kernel selection.
//!
//! The integer kernels of this crate reduce to one inner primitive, the *offset dot product*
//! `Σ (a[k] + a_offset) · (b[k] + b_offset)` over int8 vectors with an int32 result, computed with
//! wrapping (modulo 2³²) arithmetic. Because integer addition modulo 2³² is associative and
//! commutative, every implementation below returns exactly the same bits as [`dot_offset_i8`],
//! whatever order it sums in; the tests check that on random lengths, values and offsets.
//!
//! - [`dot_offset_i8`]: the portable reference (plain loop).
//! - `x86::dot_offset_i8_avx2`: AVX2 (x86-64), chosen at run time under `std`.
//! - `aarch64::dot_offset_i8_neon`: NEON (aarch64, where NEON is part of the baseline).
//! - [`cortex_m::dot_offset_i8_dsp`]: the Cortex-M4 DSP algorithm (SXTB16 + SADD16 + SMLAD).
//!   On `thumbv7em-*` targets (build.rs cfg `edgeloop_dsp`) the instructions are `asm!`; on every
//!   other target the same algorithm runs over a portable emulation of the instructions, so the
//!   host tests check the algorithm bit for bit.
//!
//! [`ops_table_best`] (under `std`) and [`ops_table_compile_time`] build the
//! [`crate::ops::KernelTable`] the kernels dispatch through: the reference table with entries
//! replaced by the AVX2 (detected at run time), NEON or Cortex-M DSP variants, each bit-exact.
//!
//! [`DotKernel`] holds the selected dot product; [`DotKernel::reference`] stays callable
//! for A/B runs and [`DotKernel::best`] (under `std`) upgrades it after CPU detection.

pub mod cortex_m;

#[cfg(target_arch = "x86_64")]
pub mod x86;

// Reached only through `ops_table_avx2` (run-time CPU detection, `std` or tests).
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
pub(crate) mod x86_avx512_conv;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_vnni;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod aarch64;

#[cfg(test)]
mod tests;

/// Returns `Σ (a[k] + a_offset) · (b[k] + b_offset)` over `k < min(a.len(), b.len())`, with
/// wrapping int32 arithmetic. The portable specification every variant reproduces.
///
/// Offsets are int8 zero points negated (`-zero_point`), so `a[k] + a_offset` lies in
/// `[-255, 255]`.
#[inline]
pub fn dot_offset_i8(a: &[i8], a_offset: i32, b: &[i8], b_offset: i32) -> i32 {
    let mut acc = 0i32;
    for (&x, &y) in a.iter().zip(b.iter()) {
        acc = acc.wrapping_add((x as i32 + a_offset).wrapping_mul(y as i32 + b_offset));
    }
    acc
}

/// Largest `|offset|` the SIMD variants of [`dot_offset_i8`] handle in 16-bit lanes; beyond it
/// they call the reference.
pub const MAX_DOT_OFFSET: i32 = 255;

/// Signature of an offset dot-product implementation (see [`dot_offset_i8`]).
pub type DotOffsetI8 = fn(&[i8], i32, &[i8], i32) -> i32;

/// Which implementation a [`DotKernel`] entry uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Variant {
    /// Portable Rust (the specification).
    Reference,
    /// x86-64 AVX2.
    Avx2,
    /// aarch64 NEON.
    Neon,
    /// Cortex-M DSP extension (SMLAD); emulated on targets without it.
    Dsp,
}

impl Variant {
    /// Short lower-case name (`reference`, `avx2`, `neon`, `dsp`), as used in test and bench output.
    pub const fn name(self) -> &'static str {
        match self {
            Variant::Reference => "reference",
            Variant::Avx2 => "avx2",
            Variant::Neon => "neon",
            Variant::Dsp => "dsp",
        }
    }
}

/// The inner primitives selected for this CPU. Copy it once and pass it to kernels.
#[derive(Clone, Copy)]
pub struct DotKernel {
    variant: Variant,
    dot: DotOffsetI8,
}

impl core::fmt::Debug for DotKernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DotKernel")
            .field("variant", &self.variant)
            .finish()
    }
}

impl DotKernel {
    /// The portable reference implementations.
    pub const fn reference() -> Self {
        DotKernel {
            variant: Variant::Reference,
            dot: dot_offset_i8,
        }
    }

    /// The best table known at compile time: the DSP algorithm on `thumbv7em-*`, NEON on aarch64,
    /// AVX2 when the crate is compiled with `target-feature=+avx2`, otherwise the reference.
    pub const fn compile_time() -> Self {
        #[cfg(edgeloop_dsp)]
        {
            DotKernel {
                variant: Variant::Dsp,
                dot: cortex_m::dot_offset_i8_dsp,
            }
        }
        #[cfg(all(not(edgeloop_dsp), target_arch = "aarch64", target_feature = "neon"))]
        {
            DotKernel {
                variant: Variant::Neon,
                dot: aarch64::dot_offset_i8_neon,
            }
        }
        #[cfg(all(
            not(edgeloop_dsp),
            not(all(target_arch = "aarch64", target_feature = "neon")),
            target_arch = "x86_64",
            target_feature = "avx2"
        ))]
        {
            DotKernel {
                variant: Variant::Avx2,
                dot: x86::dot_offset_i8_avx2_static,
            }
        }
        #[cfg(not(any(
            edgeloop_dsp,
            all(target_arch = "aarch64", target_feature = "neon"),
            all(target_arch = "x86_64", target_feature = "avx2")
        )))]
        {
            Self::reference()
        }
    }

    /// The fastest table for the running CPU (AVX2 detected at run time on x86-64; the standard
    /// library caches the detection).
    #[cfg(any(test, feature = "std"))]
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = Self::avx2() {
            return t;
        }
        Self::compile_time()
    }

    /// The AVX2 table, or `None` when this CPU lacks AVX2.
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    pub fn avx2() -> Option<Self> {
        if std::is_x86_feature_detected!("avx2") {
            Some(DotKernel {
                variant: Variant::Avx2,
                dot: x86::dot_offset_i8_avx2_detected,
            })
        } else {
            None
        }
    }

    /// The NEON table (aarch64 only, where NEON is baseline).
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    pub const fn neon() -> Self {
        DotKernel {
            variant: Variant::Neon,
            dot: aarch64::dot_offset_i8_neon,
        }
    }

    /// The Cortex-M DSP algorithm: real SMLAD on `thumbv7em-*`, its portable emulation elsewhere.
    pub const fn dsp() -> Self {
        DotKernel {
            variant: Variant::Dsp,
            dot: cortex_m::dot_offset_i8_dsp,
        }
    }

    /// Which implementation this table uses.
    pub const fn variant(&self) -> Variant {
        self.variant
    }

    /// `Σ (a[k] + a_offset) · (b[k] + b_offset)`, bit-exact to [`dot_offset_i8`] for any offsets
    /// (the SIMD variants fall back to the reference when an offset exceeds [`MAX_DOT_OFFSET`]).
    #[inline]
    pub fn dot_offset_i8(&self, a: &[i8], a_offset: i32, b: &[i8], b_offset: i32) -> i32 {
        (self.dot)(a, a_offset, b, b_offset)
    }
}

/// The op kernel table for the target, known at compile time: the reference table with
/// FullyConnected, Conv2D, DepthwiseConv2D, BatchMatMul, int8 Add, int8 Mul and Quantize replaced
/// by the DSP variants on `thumbv7em-*`; FullyConnected and Conv2D by the 2×2-block variants and
/// DepthwiseConv2D by the tap-major one on other 32-bit Arm targets (`thumbv6m-*`);
/// FullyConnected by NEON on aarch64.
pub const fn ops_table_compile_time() -> crate::ops::KernelTable {
    #[allow(unused_mut)]
    let mut t = crate::ops::KernelTable::reference();
    // Feature `reference-kernels`: the scalar reference table on the Cortex-M4 too (A/B builds).
    #[cfg(all(edgeloop_dsp, not(feature = "reference-kernels")))]
    {
        t.fully_connected_i8 = crate::ops::fully_connected::dsp::eval_i8;
        t.conv2d_i8 = crate::ops::conv2d::dsp::eval_i8;
        t.depthwise_conv2d_i8 = crate::ops::depthwise_conv2d::dsp::eval_i8;
        t.batch_matmul_i8 = crate::ops::batch_matmul::dsp::eval_i8;
        t.add_i8 = crate::ops::add::dsp::eval_i8;
        t.mul_i8 = crate::ops::mul::dsp::eval_i8;
        t.quantize = crate::ops::quantize::dsp::eval_quantize;
    }
    // Arm cores without the DSP extension (Cortex-M0/M0+, ARMv6-M): FullyConnected in 2×2
    // blocks, Conv2D through it (pointwise directly, others through gathered receptive fields),
    // DepthwiseConv2D tap-major; on ARMv6-M proper (cfg `edgeloop_armv6m`) the block's and the
    // tap's inner loops are Thumb-1 `asm!`.
    #[cfg(all(
        target_arch = "arm",
        not(edgeloop_dsp),
        not(feature = "reference-kernels")
    ))]
    {
        t.fully_connected_i8 = crate::ops::fully_connected::pairs::eval_i8;
        t.conv2d_i8 = crate::ops::conv2d::pairs::eval_i8;
        t.depthwise_conv2d_i8 = crate::ops::depthwise_conv2d::tap_major::eval_i8;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        t.fully_connected_i8 = crate::ops::fully_connected::neon::eval_i8;
    }
    t
}

/// The op kernel table with the AVX2 variants, or `None` when this CPU lacks AVX2.
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn ops_table_avx2() -> Option<crate::ops::KernelTable> {
    if std::is_x86_feature_detected!("avx2") {
        let mut t = crate::ops::KernelTable::reference();
        t.fully_connected_i8 = crate::ops::fully_connected::avx2::eval_i8_detected;
        t.fully_connected_f32 = crate::ops::fully_connected::avx2::eval_f32_detected;
        t.conv2d_i8 = crate::ops::conv2d::avx2::eval_i8_detected;
        t.depthwise_conv2d_i8 = crate::ops::depthwise_conv2d::avx2::eval_i8_detected;
        t.quantize = crate::ops::quantize::avx2::eval_quantize_detected;
        t.batch_matmul_i8 = crate::ops::batch_matmul::avx2::eval_i8_detected;
        t.add_i8 = crate::ops::add::avx2::eval_i8_detected;
        if crate::arch::x86_vnni::detected().is_some() {
            t.fully_connected_i8 = crate::ops::fully_connected::avx2::eval_i8_vnni_detected;
            t.batch_matmul_i8 = crate::ops::batch_matmul::avx2::eval_i8_vnni_detected;
        }
        t.softmax_f32 = crate::ops::softmax::avx2::eval_f32_detected;
        if crate::ops::softmax::avx512::detected() {
            t.softmax_f32 = crate::ops::softmax::avx512::eval_f32_detected;
        }
        t.softmax_i8 = crate::ops::softmax::avx2::eval_i8_detected;
        t.batch_matmul_f32 = crate::ops::batch_matmul::f32_avx::eval_f32_detected;
        t.conv2d_f32 = crate::ops::conv2d::f32_avx::eval_f32_detected;
        t.depthwise_conv2d_f32 = crate::ops::depthwise_conv2d::f32_avx::eval_f32_detected;
        if crate::ops::depthwise_conv2d::f32_avx::avx512_detected() {
            t.depthwise_conv2d_f32 =
                crate::ops::depthwise_conv2d::f32_avx::eval_f32_avx512_detected;
        }
        if crate::ops::conv2d::f32_avx::avx512_detected() {
            t.conv2d_f32 = crate::ops::conv2d::f32_avx::eval_f32_avx512_detected;
        }
        if crate::ops::batch_matmul::f32_avx::avx512_detected() {
            t.batch_matmul_f32 = crate::ops::batch_matmul::f32_avx::eval_f32_avx512_detected;
        }
        t.layer_norm_f32 = crate::ops::layer_norm::avx2::eval_f32_detected;
        t.dequantize = crate::ops::quantize::avx2::eval_dequantize_detected;
        t.mul_i8 = crate::ops::mul::avx2::eval_i8_detected;
        if crate::ops::add::avx512::detected() {
            t.add_i8 = crate::ops::add::avx512::eval_i8_detected;
            t.add_f32 = crate::ops::add::avx512::eval_f32_detected;
        }
        if crate::ops::quantize::avx512::detected() {
            t.quantize = crate::ops::quantize::avx512::eval_quantize_detected;
        }
        if crate::ops::mul::avx512::detected() {
            t.mul_f32 = crate::ops::mul::avx512::eval_f32_detected;
        }
        if crate::ops::lut::avx512::detected() {
            t.lut_i8 = crate::ops::lut::avx512::eval_i8_detected;
        }
        if crate::ops::gelu::avx512::detected() {
            t.gelu_f32 = crate::ops::gelu::avx512::eval_f32_detected;
        }
        Some(t)
    } else {
        None
    }
}

/// The fastest op kernel table for the running CPU, detected once.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn ops_table_best() -> &'static crate::ops::KernelTable {
    use core::sync::atomic::{AtomicPtr, Ordering};
    // The table is built once and leaked; a thread that loses the race to publish its own copy
    // frees it. (An atomic pointer rather than a `OnceLock`: the latter's initialization code
    // lands outside `.text.hot.edgeloop`, in one more resident code window.)
    static BEST: AtomicPtr<crate::ops::KernelTable> = AtomicPtr::new(core::ptr::null_mut());
    let mut p = BEST.load(Ordering::Acquire);
    if p.is_null() {
        #[cfg(target_arch = "x86_64")]
        let table = ops_table_avx2().unwrap_or_else(ops_table_compile_time);
        #[cfg(not(target_arch = "x86_64"))]
        let table = ops_table_compile_time();
        let mine = Box::into_raw(Box::new(table));
        p = match BEST.compare_exchange(
            core::ptr::null_mut(),
            mine,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => mine,
            Err(theirs) => {
                // SAFETY: `mine` came from `Box::into_raw` above and was never published.
                drop(unsafe { Box::from_raw(mine) });
                theirs
            }
        };
    }
    // SAFETY: a non-null `BEST` points to a leaked `Box`, never freed or written again.
    unsafe { &*p }
}

//! The VNNI dot products on 256-bit registers, in both of their encodings.
//!
//! `vpdpbusd` (four unsigned × signed byte products added to a 32-bit lane) and `vpdpwssd` (two
//! 16-bit products) exist as AVX-VNNI (VEX-encoded; Alder Lake, Sapphire Rapids, Zen 5) and as
//! AVX512-VNNI with AVX512VL (EVEX-encoded; Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4). Both
//! compute the same wrapping sums; a CPU may have either, both or neither. The kernels are generic
//! over [`Vnni`] and monomorphized for [`Vex`] and [`Evex`]; [`detected`] returns a [`VnniCpu`]
//! token only when the running CPU has the encoding, and the safe entries take that token.
//!
//! The instructions are inline assembly (`{vex}` / `{evex}` pseudo-prefixes), which names the
//! encoding explicitly and needs no target feature beyond AVX2 on the kernels.
//!
//! Only run-time CPU detection (under `std`, and in tests) reaches the VNNI kernels; without it
//! just [`Vnni`], [`Vex`] and `dpbusd` remain, the encoding parameter of the plain AVX2
//! BatchMatMul (which runs no VNNI instruction).

use core::arch::asm;
use core::arch::x86_64::__m256i;

/// One encoding of the two VNNI instructions.
pub(crate) trait Vnni {
    /// `acc + Σ_{4 bytes} a·b` per 32-bit lane, `a` unsigned and `b` signed bytes, wrapping
    /// (`vpdpbusd`: exact products, no intermediate saturation).
    ///
    /// # Safety
    /// The CPU must support the encoding (see [`detected`]).
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;

    /// `acc + Σ_{2 words} a·b` per 32-bit lane over signed 16-bit values, wrapping (`vpdpwssd`,
    /// the non-saturating form).
    ///
    /// # Safety
    /// The CPU must support the encoding (see [`detected`]).
    #[cfg(any(test, feature = "std"))]
    unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

/// AVX-VNNI (VEX encoding).
pub(crate) struct Vex;

/// AVX512-VNNI + AVX512VL (EVEX encoding, 256-bit registers).
#[cfg(any(test, feature = "std"))]
pub(crate) struct Evex;

macro_rules! vnni_impl {
    ($ty:ty, $prefix:literal) => {
        impl Vnni for $ty {
            #[inline]
            #[target_feature(enable = "avx2")]
            unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
                let mut r = acc;
                // SAFETY: the caller guarantees the encoding; registers only, no memory, no flags.
                unsafe {
                    asm!(
                        concat!($prefix, " vpdpbusd {r}, {a}, {b}"),
                        r = inout(ymm_reg) r,
                        a = in(ymm_reg) a,
                        b = in(ymm_reg) b,
                        options(pure, nomem, nostack, preserves_flags)
                    );
                }
                r
            }

            #[inline]
            #[target_feature(enable = "avx2")]
            #[cfg(any(test, feature = "std"))]
            unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
                let mut r = acc;
                // SAFETY: as in `dpbusd`.
                unsafe {
                    asm!(
                        concat!($prefix, " vpdpwssd {r}, {a}, {b}"),
                        r = inout(ymm_reg) r,
                        a = in(ymm_reg) a,
                        b = in(ymm_reg) b,
                        options(pure, nomem, nostack, preserves_flags)
                    );
                }
                r
            }
        }
    };
}

vnni_impl!(Vex, "{{vex}}");
#[cfg(any(test, feature = "std"))]
vnni_impl!(Evex, "{{evex}}");

/// Which encoding a CPU runs.
#[cfg(any(test, feature = "std"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VnniKind {
    /// [`Vex`].
    Vex,
    /// [`Evex`].
    Evex,
}

/// Proof that the running CPU has AVX2 and the VNNI encoding [`VnniCpu::kind`]: made only by
/// [`detected`] and [`available`].
#[cfg(any(test, feature = "std"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VnniCpu(VnniKind);

#[cfg(any(test, feature = "std"))]
impl VnniCpu {
    /// The encoding.
    pub(crate) fn kind(self) -> VnniKind {
        self.0
    }
}

/// Whether the CPU has AVX2 and AVX-VNNI: CPUID leaf 7 sub-leaf 1, EAX bit 4.
#[cfg(any(test, feature = "std"))]
fn has_vex() -> bool {
    if !std::is_x86_feature_detected!("avx2") {
        return false;
    }
    // SAFETY: CPUID exists on every x86-64 CPU, and leaf 7 on every CPU with AVX2 (reported in
    // leaf 7 itself). `__cpuid_count` is an unsafe fn before Rust 1.87.
    #[allow(unused_unsafe)]
    let r = unsafe { core::arch::x86_64::__cpuid_count(7, 1) };
    r.eax & (1 << 4) != 0
}

/// Whether the CPU (and the OS, which must save the AVX-512 state) runs EVEX `vpdpbusd` on
/// 256-bit registers.
#[cfg(any(test, feature = "std"))]
fn has_evex() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("avx512vnni")
        && std::is_x86_feature_detected!("avx512vl")
}

/// The encodings this CPU runs, the preferred one (VEX: shorter instructions) first.
#[cfg(any(test, feature = "std"))]
pub(crate) fn available() -> std::vec::Vec<VnniCpu> {
    let mut v = std::vec::Vec::new();
    if has_vex() {
        v.push(VnniCpu(VnniKind::Vex));
    }
    if has_evex() {
        v.push(VnniCpu(VnniKind::Evex));
    }
    v
}

/// The preferred VNNI encoding of this CPU, or `None` without VNNI (or AVX2). Detected once.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn detected() -> Option<VnniCpu> {
    // 0: not detected yet, 1: none, 2: VEX, 3: EVEX. Detection is idempotent, so threads racing
    // on the first call store the same value. (An atomic rather than a `OnceLock`: the latter's
    // initialization code lands outside `.text.hot.edgeloop`, in one more resident code window.)
    static KIND: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
    let code = match KIND.load(core::sync::atomic::Ordering::Relaxed) {
        0 => {
            let code = match available().first().map(|c| c.kind()) {
                None => 1,
                Some(VnniKind::Vex) => 2,
                Some(VnniKind::Evex) => 3,
            };
            KIND.store(code, core::sync::atomic::Ordering::Relaxed);
            code
        }
        c => c,
    };
    match code {
        2 => Some(VnniCpu(VnniKind::Vex)),
        3 => Some(VnniCpu(VnniKind::Evex)),
        _ => None,
    }
}

/// Proof that the running CPU (and OS) has AVX2 and AVX512-F/BW/VL/VNNI, the instructions of the
/// 512-bit kernels: made only by [`avx512_detected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Avx512Vnni(());

/// The AVX-512 VNNI token when this CPU (and OS) runs the 512-bit kernels, detected once.
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn avx512_detected() -> Option<Avx512Vnni> {
    // 0: not detected yet, 1: no, 2: yes (as in `detected`).
    static CPU: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
    let code = match CPU.load(core::sync::atomic::Ordering::Relaxed) {
        0 => {
            let yes = has_evex()
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw");
            let code = if yes { 2 } else { 1 };
            CPU.store(code, core::sync::atomic::Ordering::Relaxed);
            code
        }
        c => c,
    };
    (code == 2).then_some(Avx512Vnni(()))
}

/// The token of one encoding, when this CPU has it (tests run every form the CPU has).
#[cfg(test)]
pub(crate) fn cpu_with(kind: VnniKind) -> Option<VnniCpu> {
    available().into_iter().find(|c| c.kind() == kind)
}

/// Calls `$f::<Vex>` or `$f::<Evex>` (an `unsafe fn` generic over [`Vnni`]) for the encoding the
/// [`VnniCpu`] token proves.
#[cfg(any(test, feature = "std"))]
macro_rules! with_vnni {
    ($cpu:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $cpu.kind() {
            // SAFETY: the token is made only after detecting its encoding (and AVX2).
            $crate::arch::x86_vnni::VnniKind::Vex => unsafe {
                $f::<$crate::arch::x86_vnni::Vex>($($arg),*)
            },
            // SAFETY: as above.
            $crate::arch::x86_vnni::VnniKind::Evex => unsafe {
                $f::<$crate::arch::x86_vnni::Evex>($($arg),*)
            },
        }
    };
}
#[cfg(any(test, feature = "std"))]
pub(crate) use with_vnni;

#[cfg(test)]
mod tests {
    use super::*;
    use core::arch::x86_64::*;

    /// Both encodings give the scalar sums (wrapping) on random bytes, where the CPU has them.
    #[test]
    fn encodings_match_scalar() {
        let cpus = available();
        if cpus.is_empty() {
            println!("skipped: x86_vnni (CPU has neither AVX-VNNI nor AVX512-VNNI)");
            return;
        }
        let mut rng = crate::ops::testing::Rng::new(0x5EED);
        for cpu in cpus {
            for _ in 0..50 {
                let a: [i8; 32] = core::array::from_fn(|_| rng.range(-128, 127) as i8);
                let b: [i8; 32] = core::array::from_fn(|_| rng.range(-128, 127) as i8);
                let acc: [i32; 8] = core::array::from_fn(|_| rng.range(-(1 << 29), 1 << 29));
                let mut want_bus = [0i32; 8];
                let mut want_wss = [0i32; 8];
                for l in 0..8 {
                    let mut s = acc[l];
                    for q in 0..4 {
                        s = s.wrapping_add(a[4 * l + q] as u8 as i32 * b[4 * l + q] as i32);
                    }
                    want_bus[l] = s;
                    let mut s = acc[l];
                    for q in 0..2 {
                        let x = i16::from_le_bytes([
                            a[4 * l + 2 * q] as u8,
                            a[4 * l + 2 * q + 1] as u8,
                        ]);
                        let y = i16::from_le_bytes([
                            b[4 * l + 2 * q] as u8,
                            b[4 * l + 2 * q + 1] as u8,
                        ]);
                        s = s.wrapping_add(x as i32 * y as i32);
                    }
                    want_wss[l] = s;
                }
                let (mut got_bus, mut got_wss) = ([0i32; 8], [0i32; 8]);
                // SAFETY: AVX2 and the encoding were detected (`available`); the buffers hold 32 bytes.
                unsafe {
                    let va = _mm256_loadu_si256(a.as_ptr() as *const __m256i);
                    let vb = _mm256_loadu_si256(b.as_ptr() as *const __m256i);
                    let vc = _mm256_loadu_si256(acc.as_ptr() as *const __m256i);
                    let (bus, wss) = match cpu.kind() {
                        VnniKind::Vex => (Vex::dpbusd(vc, va, vb), Vex::dpwssd(vc, va, vb)),
                        VnniKind::Evex => (Evex::dpbusd(vc, va, vb), Evex::dpwssd(vc, va, vb)),
                    };
                    _mm256_storeu_si256(got_bus.as_mut_ptr() as *mut __m256i, bus);
                    _mm256_storeu_si256(got_wss.as_mut_ptr() as *mut __m256i, wss);
                }
                assert_eq!(got_bus, want_bus, "{:?} vpdpbusd", cpu.kind());
                assert_eq!(got_wss, want_wss, "{:?} vpdpwssd", cpu.kind());
            }
        }
    }
}

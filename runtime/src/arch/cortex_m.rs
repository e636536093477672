//! Cortex-M DSP-extension instructions and the SMLAD dot-product algorithm.
//!
//! On `thumbv7em-*` targets (cfg `edgeloop_dsp`, emitted by `build.rs`) each instruction helper is
//! one `asm!` instruction. Everywhere else it is a portable emulation written from the Armv7-M
//! Architecture Reference Manual's pseudocode, so [`dot_offset_i8_dsp`] — the same source on both —
//! runs and is tested on the host. The QEMU firmware test compares the real instructions later.
//!
//! Algorithm of [`dot_offset_i8_dsp`], per 4 bytes of each operand loaded as one little-endian word
//! `[x0 x1 x2 x3]`:
//! 1. `SXTB16 x` → halfwords `(x0, x2)`, `SXTB16 x, ROR #8` → `(x1, x3)` (sign-extended);
//! 2. `SADD16` adds the offset to both halfwords (results in `[-383, 382]`, no wrap);
//! 3. `SMLAD` multiplies halfword pairs and adds both products to the accumulator (modulo 2³²).

/// The `asm!` lines that finish four int8 requantizations in `r0`–`r3` (each `hi >> pre`, see
/// `requant_split` in the FullyConnected kernel) and pack them into `r0`: add `k = 1 + 2 · zp`
/// (in register `$k`), `SSAT #8` of the half, and `BFI` the four bytes together (lane `j` from
/// `rj`). The clamp and the store are the caller's. Shared by the DSP FullyConnected's
/// `quad_fast` and the DSP DepthwiseConv2D's per-pixel loop.
#[cfg(edgeloop_dsp)]
macro_rules! round_pack4_m4 {
    ($k:literal) => {
        concat!(
            "add r0, r0, ",
            $k,
            "\n",
            "add r1, r1, ",
            $k,
            "\n",
            "add r2, r2, ",
            $k,
            "\n",
            "add r3, r3, ",
            $k,
            "\n",
            "ssat r0, #8, r0, asr #1\n",
            "ssat r1, #8, r1, asr #1\n",
            "ssat r2, #8, r2, asr #1\n",
            "ssat r3, #8, r3, asr #1\n",
            "bfi r0, r1, #8, #8\n",
            "bfi r0, r2, #16, #8\n",
            "bfi r0, r3, #24, #8\n",
        )
    };
}
#[cfg(edgeloop_dsp)]
pub(crate) use round_pack4_m4;

/// `SXTB16 x`: sign-extends bytes 0 and 2 of `x` into the low and high halfwords.
#[inline(always)]
pub fn sxtb16(x: u32) -> u32 {
    #[cfg(edgeloop_dsp)]
    {
        let out: u32;
        // SAFETY: SXTB16 is a register-only instruction of the DSP extension, present on every
        // thumbv7em core (cfg `edgeloop_dsp` is emitted for those targets only); no memory access.
        unsafe {
            core::arch::asm!("sxtb16 {0}, {1}", lateout(reg) out, in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        out
    }
    #[cfg(not(edgeloop_dsp))]
    {
        let lo = (x as u8 as i8 as i16) as u16 as u32;
        let hi = ((x >> 16) as u8 as i8 as i16) as u16 as u32;
        lo | (hi << 16)
    }
}

/// `SXTB16 x, ROR #8`: sign-extends bytes 1 and 3 of `x` into the low and high halfwords.
#[inline(always)]
pub fn sxtb16_ror8(x: u32) -> u32 {
    #[cfg(edgeloop_dsp)]
    {
        let out: u32;
        // SAFETY: as in `sxtb16`; register-only DSP instruction.
        unsafe {
            core::arch::asm!("sxtb16 {0}, {1}, ror #8", lateout(reg) out, in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        out
    }
    #[cfg(not(edgeloop_dsp))]
    {
        sxtb16(x.rotate_right(8))
    }
}

/// `SADD16 a, b`: adds the signed halfwords lane by lane, each modulo 2¹⁶ (GE flags not modelled).
#[inline(always)]
pub fn sadd16(a: u32, b: u32) -> u32 {
    #[cfg(edgeloop_dsp)]
    {
        let out: u32;
        // SAFETY: register-only DSP instruction; it writes the APSR.GE flags, so no
        // `preserves_flags`.
        unsafe {
            core::arch::asm!("sadd16 {0}, {1}, {2}", lateout(reg) out, in(reg) a, in(reg) b,
                options(pure, nomem, nostack));
        }
        out
    }
    #[cfg(not(edgeloop_dsp))]
    {
        let lo = (a as u16).wrapping_add(b as u16) as u32;
        let hi = ((a >> 16) as u16).wrapping_add((b >> 16) as u16) as u32;
        lo | (hi << 16)
    }
}

/// `SMLAD a, b, acc`: `acc + a.lo·b.lo + a.hi·b.hi` on signed halfwords, modulo 2³²
/// (the Q flag the instruction sets on overflow is not modelled).
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    #[cfg(edgeloop_dsp)]
    {
        let out: i32;
        // SAFETY: register-only DSP instruction; it may set APSR.Q, so no `preserves_flags`.
        unsafe {
            core::arch::asm!("smlad {0}, {1}, {2}, {3}", lateout(reg) out, in(reg) a, in(reg) b,
                in(reg) acc, options(pure, nomem, nostack));
        }
        out
    }
    #[cfg(not(edgeloop_dsp))]
    {
        let p1 = (a as u16 as i16 as i32) * (b as u16 as i16 as i32);
        let p2 = ((a >> 16) as u16 as i16 as i32) * ((b >> 16) as u16 as i16 as i32);
        acc.wrapping_add(p1).wrapping_add(p2)
    }
}

/// `SMMLA a, b, acc`: `acc` plus the high word of the 64-bit signed product `a · b`, that is
/// `floor((acc · 2³² + a · b) / 2³²)`, modulo 2³².
#[inline(always)]
pub fn smmla(a: i32, b: i32, acc: i32) -> i32 {
    #[cfg(edgeloop_dsp)]
    {
        let out: i32;
        // SAFETY: SMMLA is a register-only instruction of the DSP extension, present on every
        // thumbv7em core; it sets no flags and accesses no memory.
        unsafe {
            core::arch::asm!("smmla {0}, {1}, {2}, {3}", lateout(reg) out, in(reg) a, in(reg) b,
                in(reg) acc, options(pure, nomem, nostack, preserves_flags));
        }
        out
    }
    #[cfg(not(edgeloop_dsp))]
    {
        (((a as i64) * (b as i64)) >> 32).wrapping_add(acc as i64) as i32
    }
}

/// Both halfwords set to `v` (mod 2¹⁶).
#[inline(always)]
fn splat16(v: i32) -> u32 {
    let h = v as u16 as u32;
    h | (h << 16)
}

#[inline(always)]
fn word(bytes: &[i8]) -> u32 {
    u32::from_le_bytes([
        bytes[0] as u8,
        bytes[1] as u8,
        bytes[2] as u8,
        bytes[3] as u8,
    ])
}

/// The SMLAD offset dot product; bit-exact to [`super::dot_offset_i8`] (falls back to it when an
/// offset exceeds [`super::MAX_DOT_OFFSET`]).
pub fn dot_offset_i8_dsp(a: &[i8], a_offset: i32, b: &[i8], b_offset: i32) -> i32 {
    if a_offset.abs() > super::MAX_DOT_OFFSET || b_offset.abs() > super::MAX_DOT_OFFSET {
        return super::dot_offset_i8(a, a_offset, b, b_offset);
    }
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let oa = splat16(a_offset);
    let ob = splat16(b_offset);
    let mut acc = 0i32;
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (wa, wb) in (&mut ca).zip(&mut cb) {
        let (xa, xb) = (word(wa), word(wb));
        let a02 = sadd16(sxtb16(xa), oa);
        let a13 = sadd16(sxtb16_ror8(xa), oa);
        let b02 = sadd16(sxtb16(xb), ob);
        let b13 = sadd16(sxtb16_ror8(xb), ob);
        acc = smlad(a02, b02, acc);
        acc = smlad(a13, b13, acc);
    }
    acc.wrapping_add(super::dot_offset_i8(
        ca.remainder(),
        a_offset,
        cb.remainder(),
        b_offset,
    ))
}

//! Fixed-point FFT of a real frame over [`FFT_SIZE`] points, as a [`CFFT_SIZE`]-point complex
//! FFT and one split stage.
//!
//! The windowed frame, halved, is packed into [`CFFT_SIZE`] complex points: even samples are
//! the real parts, odd samples the imaginary parts (loaded bit-reversed by [`load_windowed`]).
//! Their radix-2 decimation-in-time FFT ([`fft_in_place`]) uses Q31 twiddles from a
//! quarter-wave table; each butterfly is computed in 64-bit and halved with rounding
//! (`(a·2^31 ± b·w + 2^31) >> 32`), so the result is the complex DFT divided by [`CFFT_SIZE`].
//! On the Cortex-M4 the butterflies and the split run in hand-written loops that compute the
//! same integers (`column_m4`, `block_m4`, `split_pairs_m4`). [`split_real`] then separates the
//! even and odd samples' spectra (conjugate symmetry) and joins them with the [`FFT_SIZE`]-point
//! twiddles, rounding once: bins `0..=FFT_SIZE/2` of the real frame's DFT divided by
//! [`FFT_SIZE`] (the halving at the load and the `CFFT_SIZE` of the complex FFT make
//! `FFT_SIZE`), for fewer than half the butterflies of a 512-point complex FFT (1,024 instead
//! of 2,304) and 129 split steps.
//!
//! Magnitudes: a windowed sample is below 2^30, halved below 2^29, so a packed point's magnitude
//! is below 2^29.5; a halving butterfly never makes a magnitude larger than the larger of its
//! two inputs' (plus the half LSB of its rounding), so every component stays below 2^30 and
//! every 64-bit sum below stays under 2^63 (the split's sums under 2^62.5).

use super::tables::{COS_Q31, HANN_Q15};
#[cfg(edgeloop_dsp)]
use super::tables::{SPLIT_TWIDDLES_Q31, TWIDDLES_Q31};
use super::{Scratch, BINS, FFT_SIZE, WINDOW};

/// Points of the complex FFT: the real frame's samples in pairs.
pub const CFFT_SIZE: usize = FFT_SIZE / 2;

/// log2 of [`CFFT_SIZE`] (complex FFT stages).
pub const CFFT_LOG2: u32 = CFFT_SIZE.trailing_zeros();

/// `cos` and `sin` of `2πk / FFT_SIZE` in Q31 for `k` in `0..FFT_SIZE/2`. Both fit `i32`: the
/// table's values are at most `2^31 − 1` in magnitude, so their negations are too.
#[inline]
fn twiddle(k: usize) -> (i32, i32) {
    const Q: usize = FFT_SIZE / 4;
    let c = |i: usize| COS_Q31.get(i).copied().unwrap_or(0);
    if k <= Q {
        (c(k), c(Q - k))
    } else {
        (-c(2 * Q - k), c(k - Q))
    }
}

/// Writes `(frame · Hann) >> 1` (Q15 products halved, below 2^29 in magnitude) as
/// [`CFFT_SIZE`] complex points in bit-reversed order: sample `2m` is the real and sample
/// `2m + 1` the imaginary part of point `m`, zero-padded to [`FFT_SIZE`] samples. Only the
/// first [`CFFT_SIZE`] points of `scratch.bins` are written.
///
/// On the Cortex-M4 the frame is one hand-written loop over sample pairs: one word of two
/// samples and one of two weights, `SMULBB`/`SMULTT`, the halving, the slot from `RBIT`, one
/// `STRD` (12 instructions per point; the compiled loop took 17).
pub fn load_windowed(frame: &[i16; WINDOW], scratch: &mut Scratch) {
    let Some(z) = scratch.bins.first_chunk_mut::<CFFT_SIZE>() else {
        return;
    };
    // Point `m`'s bit-reversed slot is `m`'s 8 bits reversed (256 points, `m < 256`), an index
    // the compiler knows to be in bounds.
    const _: () = assert!(CFFT_SIZE == 256 && CFFT_LOG2 == 8);
    let slot = |m: usize| usize::from((m as u8).reverse_bits());
    #[cfg(edgeloop_dsp)]
    {
        const _: () = assert!(WINDOW / 2 <= CFFT_SIZE && WINDOW.is_multiple_of(2));
        // The window has `WINDOW` weights (a type error otherwise).
        let hann: &[i16; WINDOW] = &HANN_Q15;
        // SAFETY: `WINDOW / 2 ≥ 1` passes (`m` from 0 to `WINDOW / 2`, a loop that ends). Reads
        // the `WINDOW` samples of `frame` and the `WINDOW` weights of `HANN_Q15`, two at a time
        // through pointers advanced by the loads (unaligned `LDR` is allowed on the Cortex-M4).
        // Writes point `m`'s 8 bytes at `z + 8 · reverse8(m)` (`RBIT` of `m < 256` puts its 8
        // bits, reversed, in bits 31..24; shifted right by 21 that is the slot times 8): a slot
        // below 256, inside `z` (256 points), with `STRD` at a word-aligned address (`[i32; 2]`
        // points). Only the named registers are written; the flags (CMP) are clobbered.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {x}, [{px}], #4",
                "ldr {w}, [{pw}], #4",
                "smulbb {re}, {x}, {w}",
                "smultt {im}, {x}, {w}",
                "asr {re}, {re}, #1",
                "asr {im}, {im}, #1",
                "rbit {w}, {m}",
                "add {w}, {z}, {w}, lsr #21",
                "strd {re}, {im}, [{w}]",
                "add {m}, {m}, #1",
                "cmp {m}, {end}",
                "bne 2b",
                px = inout(reg) frame.as_ptr() => _,
                pw = inout(reg) hann.as_ptr() => _,
                z = in(reg) z.as_mut_ptr(),
                m = inout(reg) 0usize => _,
                end = in(reg) WINDOW / 2,
                x = out(reg) _,
                w = out(reg) _,
                re = out(reg) _,
                im = out(reg) _,
                options(nostack),
            );
        }
    }
    #[cfg(not(edgeloop_dsp))]
    let pairs = frame.chunks_exact(2).zip(HANN_Q15.chunks_exact(2));
    #[cfg(not(edgeloop_dsp))]
    for (m, (x, w)) in pairs.enumerate() {
        z[slot(m)] = [
            (x[0] as i32 * w[0] as i32) >> 1,
            (x[1] as i32 * w[1] as i32) >> 1,
        ];
    }
    // The zero padding: only the points past the frame.
    for m in WINDOW / 2..CFFT_SIZE {
        z[slot(m)] = [0; 2];
    }
}

/// One radix-2 butterfly on points `a` and `b` (`[re, im]` each) with the twiddle `(c, s)`:
/// `a ± b · (c − i s)`, each component `(x · 2^31 ± t + 2^31) >> 32`.
///
/// The products are of two `i32` values widened to `i64` (one `SMULL`/`SMLAL` each on a
/// Cortex-M4), all exact; with every magnitude below 2^30 no sum overflows (module docs).
#[inline(always)]
fn butterfly(z: &mut [[i32; 2]; CFFT_SIZE], a: usize, b: usize, c: i32, s: i32) {
    let [ar, ai] = z[a].map(i64::from);
    let [br, bi] = z[b];
    let wide = |x: i32, y: i32| x as i64 * y as i64;
    // b · (c − i s)
    let tr = wide(br, c) + wide(bi, s);
    let ti = wide(bi, c) - wide(br, s);
    const ROUND: i64 = 1 << 31;
    z[a] = [
        (((ar << 31) + tr + ROUND) >> 32) as i32,
        (((ai << 31) + ti + ROUND) >> 32) as i32,
    ];
    z[b] = [
        (((ar << 31) - tr + ROUND) >> 32) as i32,
        (((ai << 31) - ti + ROUND) >> 32) as i32,
    ];
}

/// In-place forward complex FFT of bit-reversed input (`[re, im]` points), scaled by
/// `1 / CFFT_SIZE`: the specification, stage by stage and block by block, the twiddle looked
/// up per butterfly (`2πj/(2·half)` is entry `j · FFT_SIZE/(2·half)` of the [`FFT_SIZE`]-point
/// table).
///
/// Every magnitude must be below 2^30 (as [`load_windowed`] guarantees).
pub fn fft_in_place_reference(z: &mut [[i32; 2]; CFFT_SIZE]) {
    let mut half = 1;
    while half < CFFT_SIZE {
        let step = FFT_SIZE / (2 * half);
        let mut start = 0;
        while start < CFFT_SIZE {
            for j in 0..half {
                let (c, s) = twiddle(j * step);
                butterfly(z, start + j, start + j + half, c, s);
            }
            start += 2 * half;
        }
        half *= 2;
    }
}

/// [`fft_in_place_reference`] with the same butterflies in another order: within a stage the
/// butterflies are independent (each reads and writes only its own pair), so this runs them
/// twiddle by twiddle (`j` outer, blocks inner) and looks each twiddle up once per stage
/// instead of once per butterfly. The blocks are walked as chunks split at `half`, so the
/// element accesses need no bounds checks in the inner loop, and each butterfly is
/// [`butterfly_shared`]: the same integers as [`butterfly`], so the same result. Bit-exact to
/// the reference; the tests compare them. The same precondition: every magnitude below 2^30.
///
/// On the Cortex-M4 (cfg `edgeloop_dsp`) the blocks of each twiddle run through
/// `column_m4`'s hand-written loop: 26 instructions per butterfly (`kws` firmware, QEMU
/// instruction count), where the compiled form of this loop ran 34 (35 with the real and
/// imaginary parts in separate arrays; session 19's form, with indices and two
/// multiply-accumulates per output, 49). From `half = 16` on, each block's butterflies run in
/// order instead (`blocks_m4`, 28 instructions each with the twiddle's load), since a twiddle's
/// setup costs about 30 instructions and the last stages have one to eight blocks per twiddle.
/// The order of the butterflies within a stage does not change their results. Tried and slower: the twiddles walked straight from
/// the table with a stride, in two ranges (two copies of the inner loop, 37 and 44
/// instructions), and this function kept out of line (+0.9% per clip).
pub fn fft_in_place(z: &mut [[i32; 2]; CFFT_SIZE]) {
    let mut half = 1;
    while half < CFFT_SIZE {
        let step = FFT_SIZE / (2 * half);
        #[cfg(edgeloop_dsp)]
        if half >= BLOCK_INNER_MIN {
            blocks_m4(z, half);
            half *= 2;
            continue;
        }
        for j in 0..half {
            let (c, s) = twiddle(j * step);
            #[cfg(edgeloop_dsp)]
            column_m4(z, half, j, c, s);
            #[cfg(not(edgeloop_dsp))]
            column(z, half, j, c, s);
        }
        half *= 2;
    }
}

/// The butterflies of one stage (blocks of `2·half` points) that use twiddle `j`, `(c, s)`.
#[cfg_attr(edgeloop_dsp, allow(dead_code))]
#[inline(always)]
fn column(z: &mut [[i32; 2]; CFFT_SIZE], half: usize, j: usize, c: i32, s: i32) {
    // `−s` fits `i32` (`|s| ≤ 2^31 − 1`).
    let ns = -s;
    for block in z.chunks_exact_mut(2 * half) {
        let (lo, hi) = block.split_at_mut(half);
        // Always `Some`: `j < half`, the length of each half-block.
        if let (Some(a), Some(b)) = (lo.get_mut(j), hi.get_mut(j)) {
            butterfly_shared(a, b, c, s, ns);
        }
    }
}

/// The body of the Cortex-M4 butterfly loops ([`column_m4`], `block_m4`): one butterfly on the
/// points at `{p}` and `{q}` with the twiddle `({c}, {s})`, 22 instructions (see [`column_m4`]
/// for how the `−` outputs come from the `+` outputs' words). Operands: `p`, `q`, `c`, `s` and
/// the temporaries `br`, `bi`, `lo`, `hi`, `ar`, `xl`; `br` is left negated.
#[cfg(edgeloop_dsp)]
macro_rules! butterfly_m4 {
    () => {
        concat!(
            "ldrd {br}, {bi}, [{q}]\n",
            "smull {lo}, {hi}, {br}, {c}\n",
            "smlal {lo}, {hi}, {bi}, {s}\n",
            "ldr {ar}, [{p}]\n",
            "adds {ar}, {ar}, #1\n",
            "adds {xl}, {lo}, {ar}, lsl #31\n",
            "adc {hi}, {hi}, {ar}, asr #1\n",
            "rsbs {xl}, {xl}, #0\n",
            "sbc {lo}, {ar}, {hi}\n",
            "str {hi}, [{p}]\n",
            "str {lo}, [{q}]\n",
            "rsbs {br}, {br}, #0\n",
            "smull {lo}, {hi}, {bi}, {c}\n",
            "smlal {lo}, {hi}, {br}, {s}\n",
            "ldr {ar}, [{p}, #4]\n",
            "adds {ar}, {ar}, #1\n",
            "adds {xl}, {lo}, {ar}, lsl #31\n",
            "adc {hi}, {hi}, {ar}, asr #1\n",
            "rsbs {xl}, {xl}, #0\n",
            "sbc {lo}, {ar}, {hi}\n",
            "str {hi}, [{p}, #4]\n",
            "str {lo}, [{q}, #4]\n",
        )
    };
}

/// From this stage size on (`half`, the butterflies per block), the Cortex-M4 runs each
/// block's butterflies in order ([`blocks_m4`]) instead of twiddle by twiddle: the later stages
/// have many twiddles and few blocks, and a twiddle's setup around [`column_m4`] (about 30
/// instructions) would cost more than its butterflies.
#[cfg(edgeloop_dsp)]
const BLOCK_INNER_MIN: usize = 16;

/// The butterflies of one stage, block by block and within a block in order, on the Cortex-M4:
/// the twiddles come from `TWIDDLES_Q31` (the same values as [`twiddle`]), walked with the
/// stage's stride. `half` must be at least 2 and at most `CFFT_SIZE / 2`.
#[cfg(edgeloop_dsp)]
fn blocks_m4(z: &mut [[i32; 2]; CFFT_SIZE], half: usize) {
    let block: fn(*mut [i32; 2], usize) = match half {
        16 => block_m4::<{ 8 * 8 }>,
        32 => block_m4::<{ 8 * 4 }>,
        64 => block_m4::<{ 8 * 2 }>,
        128 => block_m4::<8>,
        _ => {
            // Not reached with `BLOCK_INNER_MIN = 16` and 256 points; twiddle by twiddle.
            for j in 0..half {
                let (c, s) = twiddle(j * (FFT_SIZE / (2 * half)));
                column_m4(z, half, j, c, s);
            }
            return;
        }
    };
    for points in z.chunks_exact_mut(2 * half) {
        block(points.as_mut_ptr(), half);
    }
}

/// One block of `2·half` points at `p` (`half` butterflies, point `j` with point `j + half`,
/// twiddle `j` at byte `j · STRIDE` of `TWIDDLES_Q31`), the butterflies as in [`column_m4`]
/// plus one `LDRD` of the twiddle: 28 instructions each. `STRIDE = 8 · (CFFT_SIZE/2) / half`.
#[cfg(edgeloop_dsp)]
#[inline(always)]
fn block_m4<const STRIDE: usize>(p: *mut [i32; 2], half: usize) {
    debug_assert_eq!(STRIDE * half, 8 * (CFFT_SIZE / 2));
    // SAFETY: the caller passes the start of a block of `2·half` points inside `z`; butterfly
    // `j < half` reads and writes points `j` and `j + half` of it (through `p` and `q`, which
    // advance one point per butterfly) and reads twiddle pair `j · STRIDE / 8 < CFFT_SIZE/2`
    // of `TWIDDLES_Q31` (`STRIDE · half = 8 · CFFT_SIZE/2`, the table's size in bytes); the
    // loop runs `half ≥ 1` times. Word-aligned accesses; the flags are clobbered.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldrd {c}, {s}, [{tw}], #{stride}",
            butterfly_m4!(),
            "adds {p}, {p}, #8",
            "adds {q}, {q}, #8",
            "subs {n}, {n}, #1",
            "bne 2b",
            stride = const STRIDE,
            p = inout(reg) p => _,
            q = inout(reg) p.wrapping_add(half) => _,
            tw = inout(reg) TWIDDLES_Q31.as_ptr() => _,
            n = inout(reg) half => _,
            c = out(reg) _,
            s = out(reg) _,
            br = out(reg) _,
            bi = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            ar = out(reg) _,
            xl = out(reg) _,
            options(nostack),
        );
    }
}

/// [`column`] on the Cortex-M4: a hand-written loop, 26 instructions per butterfly, that
/// computes the same integers as [`butterfly_shared`] (the host tests check that one against
/// the reference; the `kws` firmware's features are compared with the host's byte for byte).
///
/// Per component, `v = (x + 1)·2^31 + t` gives the `+` output, the high word of `v` (`ADDS` of
/// the low words with `x + 1` shifted left 31, `ADC` of the high words with it shifted right 1).
/// The `−` output is `((x + 1)·2^32 − v) >> 32 = x + 1 − hi(v) − [lo(v) ≠ 0]`: `RSBS` of the low
/// word from 0 leaves the carry clear exactly when it is not 0, and `SBC` subtracts it. The
/// imaginary products use `−br` (`bi·c + (−br)·s`). Twelve registers: the two point pointers,
/// the offset between them, the block count, `c`, `s` and six temporaries.
#[cfg(edgeloop_dsp)]
#[inline(always)]
fn column_m4(z: &mut [[i32; 2]; CFFT_SIZE], half: usize, j: usize, c: i32, s: i32) {
    let blocks = CFFT_SIZE / (2 * half);
    if half == 0 || j >= half || blocks == 0 {
        return;
    }
    let p = z[j..].as_mut_ptr();
    let q = z[j + half..].as_mut_ptr();
    // SAFETY: block `n` (`n < blocks`) reads and writes points `j + 2·half·n` (through `p`) and
    // `j + half + 2·half·n` (through `q`), both below `CFFT_SIZE` since `j < half` and
    // `2·half·blocks = CFFT_SIZE`; `p` and `q` advance by `2·half` points (`off · 2` bytes) per
    // block and the loop runs `blocks ≥ 1` times. `z` is borrowed mutably, so nothing else
    // aliases the points. Word-aligned accesses (`[i32; 2]` points); LDRD needs word alignment.
    // The flags are clobbered (`asm!` assumes that without `preserves_flags`).
    unsafe {
        core::arch::asm!(
            "2:",
            butterfly_m4!(),
            "add {p}, {p}, {off}, lsl #1",
            "add {q}, {q}, {off}, lsl #1",
            "subs {n}, {n}, #1",
            "bne 2b",
            p = inout(reg) p => _,
            q = inout(reg) q => _,
            n = inout(reg) blocks => _,
            off = in(reg) half * 8,
            c = in(reg) c,
            s = in(reg) s,
            br = out(reg) _,
            bi = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            ar = out(reg) _,
            xl = out(reg) _,
            options(nostack),
        );
    }
}

/// [`butterfly`] on the points `a` and `b`, with each product sum computed once and shared by
/// the `+` and `−` outputs, and `bi·c − br·s = bi·c + br·(−s)` with `ns = −s` computed once
/// per twiddle: on a Cortex-M4 each sum is one `SMULL` and one `SMLAL`, each output one 64-bit
/// add or subtract of which only the high word is kept.
///
/// The reference's `x·2^31 + 2^31 ± t` is `(x + 1)·2^31 ± t` (`x + 1` fits `i32`: |x| < 2^30),
/// built from its two 32-bit halves, `(x + 1) >> 1` and `(x + 1) << 31` (the compiler otherwise
/// spends two instructions per high half on the sign-extended shift): the same `i64` values, so
/// the same integers.
#[inline(always)]
fn butterfly_shared(a: &mut [i32; 2], b: &mut [i32; 2], c: i32, s: i32, ns: i32) {
    let wide = |x: i32, y: i32| x as i64 * y as i64;
    let [br, bi] = *b;
    let tr = wide(br, c) + wide(bi, s);
    let ti = wide(bi, c) + wide(br, ns);
    let (base_r, base_i) = (base(a[0]), base(a[1]));
    *a = [((base_r + tr) >> 32) as i32, ((base_i + ti) >> 32) as i32];
    *b = [((base_r - tr) >> 32) as i32, ((base_i - ti) >> 32) as i32];
}

/// `(x + 1)·2^31` as an `i64`, from its two 32-bit halves (`x + 1` must fit `i32`).
#[inline(always)]
fn base(x: i32) -> i64 {
    let u = x + 1;
    (((u >> 1) as i64) << 32) | (((u as u32) << 31) as i64)
}

/// The real frame's spectrum from the packed complex one: `z[..CFFT_SIZE]` holds
/// `Z/CFFT_SIZE` in natural order ([`fft_in_place`]'s output); on return `z[k]` holds bin `k`
/// of the frame's DFT divided by [`FFT_SIZE`] for `k` in `0..=FFT_SIZE/2`: the specification,
/// in 64-bit arithmetic throughout.
///
/// With `A = Z[k]/N'`, `B = Z[N' − k]/N'` (`N' = CFFT_SIZE`, index modulo `N'`, `Z` the DFT of
/// the halved, packed frame) and the [`FFT_SIZE`]-point twiddle `W = c − i s` of bin `k`, the
/// even samples' spectrum is `(A + B̄)/2` and the odd samples' `(A − B̄)/(2i)`, so (the frame
/// was halved) `X[k]/N = (A + B̄ + W·P)/2` and `X[N' − k]/N = conj(A + B̄ − W·P)/2` with
/// `P = (A − B̄)/i = (ai + bi) + i(br − ar)`. Per component: `(u·2^31 ± t + 2^31) >> 32` with `u`
/// the component of `A + B̄` and `t` that of `W·P` in Q31, rounded once. Each pair `(k, N' − k)`
/// reads and writes only its own two bins (bin `N'` is written from pair 0), so the split runs
/// in place. Bin `N'/2` pairs with itself: only the first formula is used there.
pub fn split_real_reference(z: &mut [[i32; 2]; BINS]) {
    const ROUND: i64 = 1 << 31;
    for k in 0..=CFFT_SIZE / 2 {
        let j = (CFFT_SIZE - k) % CFFT_SIZE;
        let [ar, ai] = z[k].map(i64::from);
        let [br, bi] = z[j].map(i64::from);
        let (c, s) = twiddle(k);
        let (c, s) = (c as i64, s as i64);
        // A + B̄ and W·P.
        let (ur, ui) = ((ar + br) << 31, (ai - bi) << 31);
        let (pr, pi) = (ai + bi, br - ar);
        let (tr, ti) = (c * pr + s * pi, c * pi - s * pr);
        z[k] = [
            ((ur + tr + ROUND) >> 32) as i32,
            ((ui + ti + ROUND) >> 32) as i32,
        ];
        if k != CFFT_SIZE / 2 {
            z[CFFT_SIZE - k] = [
                ((ur - tr + ROUND) >> 32) as i32,
                ((ti - ui + ROUND) >> 32) as i32,
            ];
        }
    }
}

/// [`split_real_reference`], bit for bit, with 32-bit sums: every component is below 2^30 in
/// magnitude (module docs), so `ar + br`, `ai ± bi` and `br − ar` fit `i32`, each product sum
/// is one `SMULL` and one `SMLAL`, and each output is built as in [`butterfly_shared`]
/// (`u·2^31 + 2^31 = (u + 1)·2^31`, and `−ui·2^31 + 2^31 = (1 − ui)·2^31`). The pairs
/// `(k, N' − k)` for `k` in `1..N'/2` are walked as two slices, one reversed, with the
/// twiddles read straight from the quarter-wave table (`c = cos[k]`, `s = cos[N'/2 − k]`); on
/// the Cortex-M4 by a hand-written loop (`split_pairs_m4`).
#[inline(never)]
pub fn split_real(z: &mut [[i32; 2]; BINS]) {
    const H: usize = CFFT_SIZE / 2;
    // Bin 0 with bin N' (A = B = Z[0]), and the bin that pairs with itself.
    let z0 = z[0];
    (z[0], z[CFFT_SIZE]) = split_pair(z0, z0, COS_Q31[0], COS_Q31[H]);
    let zh = z[H];
    (z[H], _) = split_pair(zh, zh, COS_Q31[H], COS_Q31[0]);
    #[cfg(edgeloop_dsp)]
    split_pairs_m4(z);
    #[cfg(not(edgeloop_dsp))]
    split_pairs(z);
}

/// The pairs `(k, N' − k)`, `k` in `1..N'/2`, of [`split_real`]: two slices, one reversed.
#[cfg_attr(edgeloop_dsp, allow(dead_code))]
#[inline(always)]
fn split_pairs(z: &mut [[i32; 2]; BINS]) {
    const H: usize = CFFT_SIZE / 2;
    let (lo, hi) = z[1..CFFT_SIZE].split_at_mut(H - 1);
    let cos = &COS_Q31[1..H];
    let pairs = lo
        .iter_mut()
        .zip(hi[1..].iter_mut().rev())
        .zip(cos.iter().zip(cos.iter().rev()));
    for ((a, b), (&c, &s)) in pairs {
        (*a, *b) = split_pair(*a, *b, c, s);
    }
}

/// The pairs `(k, N' − k)`, `k` in `1..N'/2`, of [`split_real`] on the Cortex-M4: a
/// hand-written loop of 29 instructions per pair (54 compiled), the twiddles from
/// `SPLIT_TWIDDLES_Q31` (the same values as `cos[k]`, `cos[N'/2 − k]`). The same integers as
/// [`split_pair`]: the real parts as in [`column_m4`] (`(ur + 1)·2^31 ± tr`, the `−` output
/// from the `+` output's words), and the imaginary part of bin `N' − k` as that of bin `k`
/// minus `ui`, since `(1 − ui)·2^31 + ti = ((ui + 1)·2^31 + ti) − ui·2^32` (the same low word;
/// every value involved fits `i32`, see [`split_real`]).
#[cfg(edgeloop_dsp)]
fn split_pairs_m4(z: &mut [[i32; 2]; BINS]) {
    const H: usize = CFFT_SIZE / 2;
    debug_assert_eq!(SPLIT_TWIDDLES_Q31.len(), 2 * (H - 1));
    let base = z.as_mut_ptr();
    // SAFETY: `pa` walks points 1, 2, … and `pb` points N' − 1, N' − 2, … of `z` (`BINS > N'`
    // points) while `pa < pb`: pairs `k = 1..H`, each reading and writing points `k` and
    // `N' − k` (both in `1..N'`); the first pair has `pa < pb`, so the do-while loop is right
    // to run it. `tw` reads pair `k − 1` of `SPLIT_TWIDDLES_Q31` (`H − 1` pairs). `z` is
    // borrowed mutably; word-aligned accesses (LDRD needs them); the flags are clobbered.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldrd {ar}, {ai}, [{pa}]",
            "ldrd {br}, {bi}, [{pb}]",
            "ldrd {c}, {s}, [{tw}], #8",
            "add {xl}, {ai}, {bi}",
            "sub {ai}, {ai}, {bi}",
            "sub {bi}, {br}, {ar}",
            "add {ar}, {ar}, {br}",
            "smull {lo}, {hi}, {c}, {xl}",
            "smlal {lo}, {hi}, {s}, {bi}",
            "adds {ar}, {ar}, #1",
            "adds {br}, {lo}, {ar}, lsl #31",
            "adc {hi}, {hi}, {ar}, asr #1",
            "rsbs {br}, {br}, #0",
            "sbc {lo}, {ar}, {hi}",
            "str {hi}, [{pa}]",
            "str {lo}, [{pb}]",
            "rsbs {xl}, {xl}, #0",
            "smull {lo}, {hi}, {c}, {bi}",
            "smlal {lo}, {hi}, {s}, {xl}",
            "adds {ar}, {ai}, #1",
            "adds {lo}, {lo}, {ar}, lsl #31",
            "adc {hi}, {hi}, {ar}, asr #1",
            "str {hi}, [{pa}, #4]",
            "sub {hi}, {hi}, {ai}",
            "str {hi}, [{pb}, #4]",
            "adds {pa}, {pa}, #8",
            "subs {pb}, {pb}, #8",
            "cmp {pa}, {pb}",
            "blo 2b",
            pa = inout(reg) base.wrapping_add(1) => _,
            pb = inout(reg) base.wrapping_add(CFFT_SIZE - 1) => _,
            tw = inout(reg) SPLIT_TWIDDLES_Q31.as_ptr() => _,
            ar = out(reg) _,
            ai = out(reg) _,
            br = out(reg) _,
            bi = out(reg) _,
            c = out(reg) _,
            s = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            xl = out(reg) _,
            options(nostack),
        );
    }
}

/// One pair of [`split_real`]: from `A = Z[k]/N'` and `B = Z[N' − k]/N'` and the twiddle
/// `(c, s)` of bin `k`, bins `k` and `N' − k`.
#[inline(always)]
fn split_pair([ar, ai]: [i32; 2], [br, bi]: [i32; 2], c: i32, s: i32) -> ([i32; 2], [i32; 2]) {
    let wide = |x: i32, y: i32| x as i64 * y as i64;
    let (ur, ui) = (ar + br, ai - bi);
    let (pr, pi) = (ai + bi, br - ar);
    let tr = wide(c, pr) + wide(s, pi);
    // `c·pi − s·pr` as two multiply-accumulates (`−s` fits `i32`: `|s| ≤ 2^31 − 1`).
    let ti = wide(c, pi) + wide(-s, pr);
    let base_r = base(ur);
    (
        [((base_r + tr) >> 32) as i32, ((base(ui) + ti) >> 32) as i32],
        [
            ((base_r - tr) >> 32) as i32,
            ((base(-ui) + ti) >> 32) as i32,
        ],
    )
}

/// The frame's spectrum in `scratch` (bins `0..=FFT_SIZE/2` of its DFT divided by
/// [`FFT_SIZE`]): [`fft_in_place`] on the first [`CFFT_SIZE`] points, then [`split_real`].
/// `scratch` must hold [`load_windowed`]'s output.
pub fn real_fft(scratch: &mut Scratch) {
    if let Some(z) = scratch.bins.first_chunk_mut::<CFFT_SIZE>() {
        fft_in_place(z);
    }
    split_real(&mut scratch.bins);
}

//! int8 FullyConnected for cores without the DSP extension (Cortex-M0/M0+, ARMv6-M), bit-exact
//! to [`super::reference::eval_i8`]: the product in 2×2 blocks, two input rows by two output
//! features, so that each input byte and each weight byte loaded serves two products (the
//! reference loads both for each product), with the input zero point folded into each
//! feature's starting value: `Σ (x − zp)·w = Σ x·w − zp·Σ w`, equal in wrapping int32
//! arithmetic, so the inner loop subtracts nothing. A row or a feature left over from the pairs
//! runs alone; a single row (batch 1) keeps the subtraction. Portable Rust, except the 2×2
//! block's inner loop on ARMv6-M proper (cfg `edgeloop_armv6m`), which is Thumb-1 `asm!`
//! (`block`): the host tests hold the portable form to the reference, and the `bench`
//! firmware built for ARMv6-M checks the `asm!` form against it on the device.

use super::FullyConnectedParams;

/// Feature `o`'s bias (0 without one) minus `zp · Σ w`, wrapping: where its accumulators start
/// when the products are `x · w`.
#[inline(always)]
fn start(p: &FullyConnectedParams<'_>, o: usize, w: &[i8]) -> i32 {
    let bias = p.bias.map_or(0, |b| b[o]);
    let sum = w.iter().fold(0i32, |s, &v| s.wrapping_add(v as i32));
    bias.wrapping_sub(p.input_zero_point.wrapping_mul(sum))
}

/// The 2×2 block: `acc + [Σ x0·w0, Σ x0·w1, Σ x1·w0, Σ x1·w1]` in wrapping int32 over the
/// four slices (all of one length).
#[inline(always)]
fn block([x0, x1]: [&[i8]; 2], [w0, w1]: [&[i8]; 2], acc: [i32; 4]) -> [i32; 4] {
    #[cfg(edgeloop_armv6m)]
    {
        block_armv6m([x0, x1], [w0, w1], acc)
    }
    #[cfg(not(edgeloop_armv6m))]
    {
        block_portable([x0, x1], [w0, w1], acc)
    }
}

/// [`block`] in Rust: the specification of the `asm!` form, and the form on other cores.
#[cfg_attr(edgeloop_armv6m, allow(dead_code))]
#[inline(always)]
fn block_portable([x0, x1]: [&[i8]; 2], [w0, w1]: [&[i8]; 2], acc: [i32; 4]) -> [i32; 4] {
    let [mut a00, mut a01, mut a10, mut a11] = acc;
    for (((&u0, &u1), &v0), &v1) in x0.iter().zip(x1).zip(w0).zip(w1) {
        let (u0, u1, v0, v1) = (u0 as i32, u1 as i32, v0 as i32, v1 as i32);
        a00 = a00.wrapping_add(u0 * v0);
        a01 = a01.wrapping_add(u0 * v1);
        a10 = a10.wrapping_add(u1 * v0);
        a11 = a11.wrapping_add(u1 * v1);
    }
    [a00, a01, a10, a11]
}

/// [`block`] for ARMv6-M in 15 instructions per four products (rustc's loop: 24, with eight
/// accumulator and pointer spills, as Thumb-1 loads, stores and multiplies reach only r0-r7).
/// The four pointers point past their slices' ends and one index runs from `−k` up to 0
/// (`LDRSB` with a register offset; `ADDS` sets the flag that ends the loop, no compare); the
/// four accumulators live in r8-r11 (`ADD` reaches the high registers; `asm!` allows them only
/// as clobbers in Thumb-1, so they come from and go back to `acc` in memory, ~20 instructions
/// per block); a weight byte is loaded twice rather than copied (no low register is left).
#[cfg(edgeloop_armv6m)]
#[inline(always)]
fn block_armv6m([x0, x1]: [&[i8]; 2], [w0, w1]: [&[i8]; 2], mut acc: [i32; 4]) -> [i32; 4] {
    let k = x0.len();
    if k == 0 || x1.len() != k || w0.len() != k || w1.len() != k {
        return block_portable([x0, x1], [w0, w1], acc);
    }
    let end = |s: &[i8]| s.as_ptr_range().end;
    // SAFETY: k ≥ 1 and all four slices hold k bytes, so the index −k..=−1 added to each end
    // pointer reads exactly the slices' bytes, and the loop ends after k passes (the index
    // reaches 0). `acc` (16 bytes, 4-aligned) is read at the start and written at the end.
    // r6 and r7 (reserved: base and frame pointer) are pushed before use and popped after,
    // with r5 (the `acc` pointer); `sp` is back where it was at the end. r8-r11 are declared
    // clobbered; the flags too, which `asm!` assumes without `preserves_flags`.
    unsafe {
        core::arch::asm!(
            "push {{r5, r6, r7}}",
            "ldr r6, [r5, #0]",
            "mov r8, r6",
            "ldr r6, [r5, #4]",
            "mov r9, r6",
            "ldr r6, [r5, #8]",
            "mov r10, r6",
            "ldr r6, [r5, #12]",
            "mov r11, r6",
            "2:",
            "ldrsb r5, [r0, r4]",
            "ldrsb r6, [r1, r4]",
            "ldrsb r7, [r2, r4]",
            "muls r7, r5, r7",
            "add r8, r7",
            "ldrsb r7, [r2, r4]",
            "muls r7, r6, r7",
            "add r10, r7",
            "ldrsb r7, [r3, r4]",
            "muls r5, r7, r5",
            "add r9, r5",
            "muls r7, r6, r7",
            "add r11, r7",
            "adds r4, #1",
            "bne 2b",
            "pop {{r5}}",
            "mov r6, r8",
            "str r6, [r5, #0]",
            "mov r6, r9",
            "str r6, [r5, #4]",
            "mov r6, r10",
            "str r6, [r5, #8]",
            "mov r6, r11",
            "str r6, [r5, #12]",
            "pop {{r6, r7}}",
            inout("r0") end(x0) => _,
            inout("r1") end(x1) => _,
            inout("r2") end(w0) => _,
            inout("r3") end(w1) => _,
            inout("r4") (k as isize).wrapping_neg() => _,
            inout("r5") acc.as_mut_ptr() => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    acc
}

/// One input row (batch 1): features in pairs, the zero point subtracted from each input byte
/// (folding it would cost one more pass over the weights than it saves).
fn one_row(p: &FullyConnectedParams<'_>, x: &[i8], y: &mut [i8]) {
    let zp = p.input_zero_point;
    let bias = |o: usize| p.bias.map_or(0, |b| b[o]);
    let mut ws = p.weights.chunks_exact(2 * x.len());
    for (pair, w) in (&mut ws).enumerate() {
        let (w0, w1) = w.split_at(x.len());
        let o = 2 * pair;
        let [mut a0, mut a1] = [bias(o), bias(o + 1)];
        for ((&u, &v0), &v1) in x.iter().zip(w0).zip(w1) {
            let u = u as i32 - zp;
            a0 = a0.wrapping_add(u * v0 as i32);
            a1 = a1.wrapping_add(u * v1 as i32);
        }
        y[o] = p.requantize(o, a0);
        y[o + 1] = p.requantize(o + 1, a1);
    }
    let w = ws.remainder();
    if let (true, Some(o)) = (w.len() == x.len(), y.len().checked_sub(1)) {
        let a = x.iter().zip(w).fold(bias(o), |a, (&u, &v)| {
            a.wrapping_add((u as i32 - zp) * v as i32)
        });
        y[o] = p.requantize(o, a);
    }
}

/// int8 FullyConnected. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let rows = input.len() / k;
    if rows < 2 {
        return one_row(p, input, output);
    }
    let mut ws = p.weights.chunks_exact(2 * k);
    for (pair, w) in (&mut ws).enumerate() {
        let (w0, w1) = w.split_at(k);
        let o = 2 * pair;
        let (c0, c1) = (start(p, o, w0), start(p, o + 1, w1));
        let (q0, q1) = (p.channel_requant(o), p.channel_requant(o + 1));
        let mut xs = input.chunks_exact(2 * k);
        for (r, x) in (&mut xs).enumerate() {
            let (x0, x1) = x.split_at(k);
            let [a00, a01, a10, a11] = block([x0, x1], [w0, w1], [c0, c1, c0, c1]);
            let (y0, y1) = (2 * r * n + o, (2 * r + 1) * n + o);
            output[y0] = p.finish(q0.apply(a00));
            output[y0 + 1] = p.finish(q1.apply(a01));
            output[y1] = p.finish(q0.apply(a10));
            output[y1 + 1] = p.finish(q1.apply(a11));
        }
        // An odd last row: the two features alone.
        let x = xs.remainder();
        if x.len() == k {
            let [mut a0, mut a1] = [c0, c1];
            for ((&u, &v0), &v1) in x.iter().zip(w0).zip(w1) {
                a0 = a0.wrapping_add(u as i32 * v0 as i32);
                a1 = a1.wrapping_add(u as i32 * v1 as i32);
            }
            let y = (rows - 1) * n + o;
            output[y] = p.requantize(o, a0);
            output[y + 1] = p.requantize(o + 1, a1);
        }
    }
    // An odd last feature: every row against its weights, one at a time.
    let w = ws.remainder();
    if w.len() == k {
        let o = n - 1;
        let c = start(p, o, w);
        for (r, x) in input.chunks_exact(k).enumerate() {
            let a = x
                .iter()
                .zip(w)
                .fold(c, |a, (&u, &v)| a.wrapping_add(u as i32 * v as i32));
            output[r * n + o] = p.requantize(o, a);
        }
    }
}

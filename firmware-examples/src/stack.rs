//! Stack high-water mark by painting: fill the free stack with a pattern at boot, and later find
//! the lowest word that no longer holds it.

const PAINT: u32 = 0xA5A5_5A5A;
/// Bytes below the current stack pointer left unpainted when painting (the painter's own frame).
const MARGIN: usize = 256;

extern "C" {
    static mut __sheap: u32;
    static mut _stack_start: u32;
}

fn bounds() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken, never their values.
    (
        core::ptr::addr_of_mut!(__sheap) as usize,
        core::ptr::addr_of_mut!(_stack_start) as usize,
    )
}

/// Paints the free stack (from the end of static data up to just below the current SP).
/// Call first thing in `main`.
#[inline(never)]
pub fn paint() {
    let (bottom, _) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom.next_multiple_of(4);
    while p + MARGIN < sp {
        // SAFETY: [bottom, sp - MARGIN) is RAM between the end of .bss/.uninit and the live
        // stack: nothing lives there (no heap is linked), and it is word aligned.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack used so far at the deepest point (since [`paint`]).
pub fn high_water() -> usize {
    let (bottom, top) = bounds();
    let mut p = bottom.next_multiple_of(4);
    // SAFETY: reads word-aligned RAM between the end of static data and the top of the stack.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

//! The interpreter's arena: one static, 16-byte aligned buffer handed out at most once.

use core::sync::atomic::{AtomicBool, Ordering};

/// Bytes reserved for the arena (per board). The model's header says how much it needs;
/// `Interpreter::new` refuses a smaller arena with an error, so this only has to be large enough.
pub const ARENA_BYTES: usize = crate::board::ARENA_BYTES;

#[repr(C, align(16))]
struct Arena([u8; ARENA_BYTES]);

static mut ARENA: Arena = Arena([0; ARENA_BYTES]);
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The arena, or `None` if it was already taken.
pub fn take() -> Option<&'static mut [u8]> {
    // Load and store inside a critical section: ARMv6-M (Cortex-M0) has no atomic swap.
    let was_taken = cortex_m::interrupt::free(|_| {
        let was = TAKEN.load(Ordering::Acquire);
        TAKEN.store(true, Ordering::Release);
        was
    });
    if was_taken {
        return None;
    }
    // SAFETY: `TAKEN` was false, so no other reference to ARENA exists, and it is set now, so
    // none will ever be created again: this `&mut` is unique for the rest of the program.
    Some(unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 })
}

//! The interpreter's arena: one static, 16-byte aligned buffer handed out at most once.

use core::sync::atomic::{AtomicBool, Ordering};

/// Bytes reserved for the arena. The model's header says how much it needs; `Interpreter::new`
/// refuses a smaller arena with an error, so this only has to be large enough.
pub const ARENA_BYTES: usize = 192 * 1024;

#[repr(C, align(16))]
struct Arena([u8; ARENA_BYTES]);

static mut ARENA: Arena = Arena([0; ARENA_BYTES]);
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The arena, or `None` if it was already taken.
pub fn take() -> Option<&'static mut [u8]> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: `TAKEN` was false, so no other reference to ARENA exists, and it is set now, so
    // none will ever be created again: this `&mut` is unique for the rest of the program.
    Some(unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 })
}

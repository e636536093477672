//! The caller's arena: alignment and size checks, and byte ranges of planned tensors.

use crate::image::{Model, TensorInfo};
use crate::Error;

/// Alignment the arena's start address must have.
pub const ARENA_ALIGN: usize = 16;

/// Checks that `arena` can hold `model`'s plan.
pub fn check(model: &Model<'_>, arena: &[u8]) -> Result<(), Error> {
    if !(arena.as_ptr() as usize).is_multiple_of(ARENA_ALIGN) {
        return Err(Error::ArenaMisaligned);
    }
    if arena.len() < model.arena_bytes() {
        return Err(Error::ArenaTooSmall {
            needed: model.arena_bytes() as u32,
            given: arena.len().min(u32::MAX as usize) as u32,
        });
    }
    Ok(())
}

/// The bytes of arena tensor `t` (validation guarantees the range lies in the plan).
pub fn bytes<'b>(arena: &'b [u8], t: &TensorInfo) -> Result<&'b [u8], Error> {
    arena
        .get(t.offset as usize..t.offset as usize + t.len as usize)
        .ok_or(Error::ArenaTooSmall {
            needed: t.offset + t.len,
            given: arena.len().min(u32::MAX as usize) as u32,
        })
}

/// The bytes of arena tensor `t`, mutable.
pub fn bytes_mut<'b>(arena: &'b mut [u8], t: &TensorInfo) -> Result<&'b mut [u8], Error> {
    let given = arena.len().min(u32::MAX as usize) as u32;
    arena
        .get_mut(t.offset as usize..t.offset as usize + t.len as usize)
        .ok_or(Error::ArenaTooSmall {
            needed: t.offset + t.len,
            given,
        })
}

//! Bounds-checked little-endian reads and the few zero-copy casts the runtime needs.

use crate::Error;

/// Reads a `u8` at `off`, or `None` when out of bounds.
#[inline]
pub(crate) fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

/// Reads a little-endian `u16` at `off`, or `None` when out of bounds.
#[inline]
pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// Reads a little-endian `u32` at `off`, or `None` when out of bounds.
#[inline]
pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a little-endian `i32` at `off`.
#[inline]
pub(crate) fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    u32_at(b, off).map(|v| v as i32)
}

/// Rounds `n` up to a multiple of `align` (a power of two), or `None` on overflow.
#[inline]
pub(crate) fn align_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

#[cfg(target_endian = "big")]
compile_error!(
    "model images are little-endian and read in place: big-endian targets are not supported"
);

/// Views bytes as `i8`.
#[inline]
pub fn as_i8(b: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity (every bit pattern is valid);
    // the new slice covers exactly the same memory with the same lifetime.
    unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<i8>(), b.len()) }
}

/// Views bytes as mutable `i8`.
#[inline]
pub fn as_i8_mut(b: &mut [u8]) -> &mut [i8] {
    // SAFETY: as in `as_i8`; the exclusive borrow is carried over to the new slice.
    unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<i8>(), b.len()) }
}

/// Views bytes as `i32` (little-endian target), or an error when misaligned or of odd length.
#[inline]
pub fn as_i32(b: &[u8]) -> Result<&[i32], Error> {
    if !(b.as_ptr() as usize).is_multiple_of(4) || !b.len().is_multiple_of(4) {
        return Err(Error::ImageMisaligned);
    }
    // SAFETY: alignment (4) and length (a multiple of 4) were checked just above; every bit
    // pattern is a valid i32; the image is little-endian and so is the target (compile_error above).
    Ok(unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<i32>(), b.len() / 4) })
}

/// Views bytes as `f32`, or an error when misaligned or of odd length.
#[inline]
pub fn as_f32(b: &[u8]) -> Result<&[f32], Error> {
    if !(b.as_ptr() as usize).is_multiple_of(4) || !b.len().is_multiple_of(4) {
        return Err(Error::ImageMisaligned);
    }
    // SAFETY: alignment and length checked above; every bit pattern is a valid f32.
    Ok(unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len() / 4) })
}

/// Views mutable bytes as `f32`, or an error when misaligned or of odd length.
#[inline]
pub fn as_f32_mut(b: &mut [u8]) -> Result<&mut [f32], Error> {
    if !(b.as_ptr() as usize).is_multiple_of(4) || !b.len().is_multiple_of(4) {
        return Err(Error::ArenaMisaligned);
    }
    // SAFETY: alignment and length checked above; every bit pattern is a valid f32; the
    // exclusive borrow is carried over.
    Ok(unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<f32>(), b.len() / 4) })
}

/// Views mutable bytes as `i32`, or an error when misaligned or of odd length.
#[inline]
pub fn as_i32_mut(b: &mut [u8]) -> Result<&mut [i32], Error> {
    if !(b.as_ptr() as usize).is_multiple_of(4) || !b.len().is_multiple_of(4) {
        return Err(Error::ArenaMisaligned);
    }
    // SAFETY: alignment and length checked above; every bit pattern is a valid i32.
    Ok(unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<i32>(), b.len() / 4) })
}

//! Gather along axis 0 of a constant table: embedding lookup from token ids.
//!
//! `table [rows, row_len]` (int8 or f32, in the image), `indices [count]` (`i32`, usually a graph
//! input), `output [count, row_len]`. Negative indices count from the end, as in ONNX
//! (`-1` is the last row). Rows are copied, so an int8 output has the table's quantization.
//!
//! Indices are data, not parameters: [`eval`] checks each one and returns
//! [`Error::KernelIndexOutOfRange`] instead of reading out of bounds (outputs of earlier indices
//! are already written then).

#[cfg(test)]
mod tests;

use crate::Error;

/// Gather parameters (the table is borrowed from the image).
#[derive(Debug, Clone, Copy)]
pub struct GatherParams<'a, T> {
    /// Number of table rows (vocabulary size).
    pub rows: u32,
    /// Elements per row (embedding width).
    pub row_len: u32,
    /// The table, `rows * row_len` elements, row-major.
    pub table: &'a [T],
}

/// Validates the table size and the index/output lengths.
pub fn check<T>(
    p: &GatherParams<'_, T>,
    indices_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    if p.rows > i32::MAX as u32 {
        return Err(super::param_err());
    }
    super::expect_len(p.table.len(), super::elements(&[p.rows, p.row_len])?)?;
    let out = indices_len
        .checked_mul(p.row_len as usize)
        .ok_or(super::shape_err())?;
    super::expect_len(output_len, out)
}

/// Copies `table[indices[i]]` to `output[i]`. Requires a successful [`check`]; returns
/// [`Error::KernelIndexOutOfRange`] for an index outside `[-rows, rows)`.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval<T: Copy>(
    p: &GatherParams<'_, T>,
    indices: &[i32],
    output: &mut [T],
) -> Result<(), Error> {
    let w = p.row_len as usize;
    let rows = p.rows as i64;
    for (&idx, out) in indices.iter().zip(output.chunks_exact_mut(w)) {
        let i = idx as i64;
        let r = if i < 0 { i + rows } else { i };
        if !(0..rows).contains(&r) {
            return Err(Error::KernelIndexOutOfRange { op: 0, value: idx });
        }
        let start = r as usize * w;
        match p.table.get(start..start + w) {
            Some(row) => out.copy_from_slice(row),
            None => return Err(Error::KernelIndexOutOfRange { op: 0, value: idx }),
        }
    }
    Ok(())
}

//! Reader for NumPy `.npy` arrays and `.npz` archives (untrusted input: every malformed byte is an error).
//!
//! Supported element types: `f4`, `f8` (narrowed to f32), `f2` is refused; `i1`, `u1`, `i2`, `u2`,
//! `i4`, `u4`, `i8` (integers become i64; use float arrays for float inputs), `b1` refused. Both
//! byte orders, C order only (Fortran order is refused unless the array has at most one dimension).

use std::io::Read;

use crate::error::{Error, Result};
use crate::tensor::{element_count, Tensor};

/// Largest array accepted (elements), to bound memory on hostile headers.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Parses one `.npy` byte buffer. `origin` names the file in errors.
pub fn parse_npy(bytes: &[u8], origin: &str) -> Result<Tensor> {
    let err = |m: String| Error::data(origin, m);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (bad magic)".into()));
    }
    let major = bytes[6];
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(err(format!("unsupported .npy format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            err(format!(
                "header length {header_len} runs past the end of the file"
            ))
        })?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| err("header is not UTF-8".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| err("header has no 'descr'".into()))?;
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| err("header has no 'fortran_order'".into()))?;
    let shape_s = dict_value(header, "shape").ok_or_else(|| err("header has no 'shape'".into()))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let shape = parse_shape(shape_s).map_err(err)?;
    let fortran = match fortran.trim() {
        "False" => false,
        "True" => true,
        o => return Err(err(format!("bad fortran_order '{o}'"))),
    };
    if fortran && shape.len() > 1 {
        return Err(err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        ));
    }
    let n = element_count(&shape)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| err(format!("shape {shape:?} is too large")))?;
    let (order, kind) = descr.split_at(descr.len().min(1));
    let big = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return Err(err(format!("unsupported dtype '{descr}'"))),
    };
    let size: usize = kind
        .get(1..)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(format!("unsupported dtype '{descr}'")))?;
    let data = &bytes[end..];
    let need = n * size;
    if data.len() != need {
        return Err(err(format!(
            "data has {} bytes, shape {shape:?} of '{descr}' needs {need}",
            data.len()
        )));
    }
    macro_rules! conv {
        ($t:ty, $n:literal, $map:expr) => {{
            data.chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    let v = if big {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    };
                    $map(v)
                })
                .collect()
        }};
    }
    let kind_char = kind.chars().next().unwrap_or(' ');
    match (kind_char, size) {
        ('f', 4) => Tensor::f32(shape, conv!(f32, 4, |v| v)),
        ('f', 8) => Tensor::f32(shape, conv!(f64, 8, |v: f64| v as f32)),
        ('i', 1) => Tensor::i64(shape, conv!(i8, 1, |v: i8| v as i64)),
        ('u', 1) => Tensor::i64(shape, conv!(u8, 1, |v: u8| v as i64)),
        ('i', 2) => Tensor::i64(shape, conv!(i16, 2, |v: i16| v as i64)),
        ('u', 2) => Tensor::i64(shape, conv!(u16, 2, |v: u16| v as i64)),
        ('i', 4) => Tensor::i64(shape, conv!(i32, 4, |v: i32| v as i64)),
        ('u', 4) => Tensor::i64(shape, conv!(u32, 4, |v: u32| v as i64)),
        ('i', 8) => Tensor::i64(shape, conv!(i64, 8, |v| v)),
        _ => Err(err(format!("unsupported dtype '{descr}'"))),
    }
    .map_err(|e| Error::data(origin, e.to_string()))
}

/// Finds `'key': value` in a Python dict literal; the value ends at the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}'");
    let pat2 = format!("\"{key}\"");
    let pos = header
        .find(&pat1)
        .map(|p| p + pat1.len())
        .or_else(|| header.find(&pat2).map(|p| p + pat2.len()))?;
    let rest = header[pos..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn parse_shape(s: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape '{s}'"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<usize>()
                .map_err(|_| format!("bad dimension '{p}' in shape '{s}'"))
        })
        .collect()
}

/// Reads a `.npy` file.
pub fn read_npy(path: &std::path::Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes, &path.display().to_string())
}

/// Reads every array of a `.npz` archive (stored or deflated), in archive order, keyed by
/// member name without the `.npy` suffix.
pub fn read_npz(path: &std::path::Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let origin = path.display().to_string();
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::data(&origin, format!("not a readable .npz (zip) archive: {e}")))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| Error::data(&origin, format!("member #{i}: {e}")))?;
        let name = member.name().to_string();
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        let where_ = format!("{origin}[{name}]");
        let limit = (MAX_ELEMENTS as u64) * 8 + 65536;
        if member.size() > limit {
            return Err(Error::data(where_, "member is too large"));
        }
        let mut bytes = Vec::new();
        (&mut member)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::data(&where_, format!("cannot decompress: {e}")))?;
        out.push((key, parse_npy(&bytes, &where_)?));
    }
    Ok(out)
}

/// Encodes an f32 array as `.npy` bytes (version 1.0, little-endian, C order).
pub fn write_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data.iter().flat_map(|x| x.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_our_own_writer() {
        let b = write_npy_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.0]);
        let t = parse_npy(&b, "x").unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.as_f32().unwrap()[5], -6.0);
        let b = write_npy_f32(&[4], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(parse_npy(&b, "x").unwrap().shape, vec![4]);
    }

    #[test]
    fn reads_big_endian_int_and_scalar() {
        let header = "{'descr': '>i4', 'fortran_order': False, 'shape': (), }\n";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&(-7i32).to_be_bytes());
        let t = parse_npy(&b, "x").unwrap();
        assert_eq!(t.shape, Vec::<usize>::new());
        assert_eq!(t.data, crate::tensor::TensorData::I64(vec![-7]));
    }

    #[test]
    fn malformed_inputs_give_errors_not_panics() {
        let good = write_npy_f32(&[2, 2], &[1.0; 4]);
        // Every truncation is an error.
        for cut in 0..good.len() {
            assert!(parse_npy(&good[..cut], "t").is_err(), "cut {cut}");
        }
        // Bad magic, huge header length, hostile shapes, unknown dtype.
        let mut bad = good.clone();
        bad[1] = b'X';
        assert!(parse_npy(&bad, "t")
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let mut bad = good.clone();
        bad[8] = 0xff;
        bad[9] = 0xff;
        assert!(parse_npy(&bad, "t").is_err());
        for (descr, shape) in [
            ("<f4", "(99999999999, 99999999999)"),
            ("<c8", "(1,)"),
            ("<f4", "(-1,)"),
            ("<f4", "(abc)"),
            ("<f2", "(1,)"),
        ] {
            let header =
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(header.len() as u16).to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(&[0u8; 16]);
            let e = parse_npy(&b, "t.npy").unwrap_err().to_string();
            assert!(e.starts_with("t.npy:"), "{e}");
        }
        // Random bytes after a valid magic never panic.
        let mut s = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = good.clone();
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let i = (s as usize) % b.len();
                b[i] = (s >> 8) as u8;
            }
            let _ = parse_npy(&b, "fuzz");
        }
    }

    #[test]
    fn fortran_order_matrix_is_refused() {
        let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&[0u8; 16]);
        assert!(parse_npy(&b, "t")
            .unwrap_err()
            .to_string()
            .contains("Fortran"));
    }
}

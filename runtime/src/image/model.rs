//! `Model::parse`: every check on an untrusted image, then zero-copy accessors.

use super::bytes::{align_up, u16_at, u32_at, u8_at};
use super::crc::Crc32;
use super::op::{self, OpRecord};
use super::tensor::{self, Storage, TensorInfo, TENSOR_RECORD_LEN};
use super::{
    binding, FORMAT_MAJOR, FORMAT_MINOR, GRAPH_HEADER_LEN, HEADER_LEN, MAGIC, MAX_NAME_LEN,
    NO_TENSOR, SIGNATURE_TRAILER_LEN,
};
use crate::error::{OpProblem, Section, TensorProblem};
use crate::Error;

/// Header flag: an Ed25519 signature trailer follows the image.
pub const FLAG_SIGNED: u32 = 1;

/// Arena tensors per block of the plan check (see `Model::plan_holds`): 12 bytes of stack each,
/// 6 KiB on hosts, 384 bytes on microcontrollers.
const PLAN_BLOCK: usize = if cfg!(feature = "std") { 512 } else { 32 };

/// Outputs whose alias bases the lifetime check resolves once (see `Model::output_cache`).
const OUTPUT_CACHE: usize = 32;

/// Inputs of one op whose alias bases the lifetime check keeps while it walks the op's inputs
/// (see `Model::lifetimes_hold`); 4 in the unit tests, so that their ops with more inputs (a
/// FullyConnected has 5) exercise the path past it too.
const SEEN: usize = if cfg!(test) { 4 } else { 16 };

/// The fields of a tensor record the lifetime checks read (see [`Model::lifetime_fields`]).
#[derive(Debug, Clone, Copy)]
struct Lifetime {
    storage: Storage,
    first_op: u16,
    last_op: u16,
}

/// Each output tensor and the tensor whose bytes it uses.
struct OutputCache {
    ids: [(u16, u16); OUTPUT_CACHE],
    len: usize,
}

/// Bytes and lifetime of an arena tensor that fits the arena (the plan check).
struct PlanSpan {
    start: u32,
    end: u32,
    first: u16,
    last: u16,
}

/// A block of arena tensors for the plan check, one array per field so that comparing a span
/// with the whole block is a branch-free loop the compiler vectorizes: byte start and end (both
/// within the arena, so `u32`), first and last op.
struct PlanBlock<const B: usize> {
    start: [u32; B],
    end: [u32; B],
    first: [u16; B],
    last: [u16; B],
    len: usize,
}

impl<const B: usize> PlanBlock<B> {
    /// Whether `s` overlaps, in bytes and in lifetime, any span of the block.
    #[inline]
    fn hits(&self, s: &PlanSpan) -> bool {
        let n = self.len;
        let mut any = false;
        for (((&b0, &b1), &f), &l) in self.start[..n]
            .iter()
            .zip(&self.end[..n])
            .zip(&self.first[..n])
            .zip(&self.last[..n])
        {
            any |= (s.first <= l) & (f <= s.last) & (s.start < b1) & (b0 < s.end);
        }
        any
    }
}

/// A parsed, fully validated model image. Borrows the image bytes (flash); copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    bytes: &'a [u8],
    name: &'a [u8],
    format_minor: u16,
    image_len: u32,
    flags: u32,
    arena_bytes: u32,
    model_version: u32,
    consts: &'a [u8],
    stats: &'a [u8],
    io: &'a [u8],
    tensors: &'a [u8],
    ops: &'a [u8],
    num_tensors: u16,
    num_inputs: u16,
    num_outputs: u16,
    num_ops: u16,
    /// Set once `validate_tensors` has accepted every tensor record: later reads decode them
    /// without repeating the record checks ([`tensor::decode_validated`]).
    tensors_valid: bool,
}

/// The Ed25519 signature trailer (verification is done by the caller, see `FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureTrailer<'a> {
    /// Eight bytes identifying the signing key.
    pub key_id: &'a [u8],
    /// The 64-byte Ed25519 signature over the image bytes `[0, image_len)`.
    pub signature: &'a [u8],
}

/// One entry of the reference-statistics section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsEntry<'a> {
    /// What the entry holds (tags are defined in `FORMAT.md`).
    pub tag: u16,
    /// The entry's payload.
    pub payload: &'a [u8],
}

fn section_err(section: Section) -> Error {
    Error::ImageBadSection { section }
}

fn graph_err(offset: usize) -> Error {
    Error::ImageBadGraph {
        offset: offset as u32,
    }
}

fn tensor_err(tensor: usize, problem: TensorProblem) -> Error {
    Error::ImageBadTensor {
        tensor: tensor as u32,
        problem,
    }
}

fn op_err(op: usize, problem: OpProblem) -> Error {
    Error::ImageBadOp {
        op: op as u32,
        problem,
    }
}

impl<'a> Model<'a> {
    /// Parses and validates an image. `bytes` must start at a 16-byte aligned address. Bytes
    /// after the image (and after its signature trailer, if any) are ignored (flash padding).
    ///
    /// Checks, in order: length, alignment, magic, version, header fields, CRC, section
    /// bounds, graph structure, every tensor record, the input/output lists, every op record,
    /// data flow and tensor lifetimes, the arena plan (bounds and overlap), each op's
    /// parameters (through the op's `check`), the statistics section, the signature trailer.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        Self::parse_with_ops::<{ binding::ALL_OPS }>(bytes)
    }

    /// [`Model::parse`] for a runtime that links only the kernels in `OPS` (see
    /// [`op_set`](crate::image::op_set)); an image using another op is `UnsupportedOp`.
    pub fn parse_with_ops<const OPS: u128>(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        let got = bytes.len().min(u32::MAX as usize) as u32;
        if bytes.len() < HEADER_LEN {
            return Err(Error::ImageTruncated {
                needed: HEADER_LEN as u32,
                got,
            });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(16) {
            return Err(Error::ImageMisaligned);
        }
        if bytes[..4] != MAGIC {
            return Err(Error::ImageBadMagic);
        }
        let h = |off: usize| u32_at(bytes, off).ok_or(Error::ImageBadHeader { offset: off as u32 });
        let major = u16_at(bytes, 4).unwrap_or(0);
        let minor = u16_at(bytes, 6).unwrap_or(0);
        if major != FORMAT_MAJOR || minor > FORMAT_MINOR {
            return Err(Error::ImageUnsupportedVersion { major, minor });
        }
        let stored_crc = h(8)?;
        let image_len = h(12)?;
        let flags = h(16)?;
        if (image_len as usize) < HEADER_LEN || image_len % 16 != 0 {
            return Err(Error::ImageBadHeader { offset: 12 });
        }
        let trailer = if flags & FLAG_SIGNED != 0 {
            SIGNATURE_TRAILER_LEN
        } else {
            0
        };
        let needed = image_len as u64 + trailer as u64;
        if (bytes.len() as u64) < needed {
            return Err(Error::ImageTruncated {
                needed: needed.min(u32::MAX as u64) as u32,
                got,
            });
        }
        let image = &bytes[..image_len as usize];
        let mut crc = Crc32::new();
        crc.update(&image[..8]);
        crc.update(&[0; 4]);
        crc.update(&image[12..]);
        let computed = crc.finish();
        if computed != stored_crc {
            return Err(Error::ImageBadCrc {
                stored: stored_crc,
                computed,
            });
        }
        if flags & !FLAG_SIGNED != 0 {
            return Err(Error::ImageBadHeader { offset: 16 });
        }
        let arena_bytes = h(20)?;
        let model_version = h(48)?;
        let name_len = u8_at(image, 52).unwrap_or(0) as usize;
        if name_len > MAX_NAME_LEN || image[53..56] != [0, 0, 0] {
            return Err(Error::ImageBadHeader { offset: 52 });
        }
        let name = &image[56..56 + name_len];
        if !name.iter().all(|b| (0x20..0x7F).contains(b)) {
            return Err(Error::ImageBadHeader { offset: 56 });
        }

        // Sections: canonical placement, each at the 16-aligned end of the previous one.
        let graph_off = h(24)? as usize;
        let graph_len = h(28)? as usize;
        let const_off = h(32)? as usize;
        let const_len = h(36)? as usize;
        let stats_off = h(40)? as usize;
        let stats_len = h(44)? as usize;
        let in_image = |off: usize, len: usize| {
            off.checked_add(len)
                .filter(|&end| end <= image.len())
                .map(|end| &image[off..end])
        };
        if graph_off != HEADER_LEN || graph_len < GRAPH_HEADER_LEN {
            return Err(section_err(Section::Graph));
        }
        let graph = in_image(graph_off, graph_len).ok_or(section_err(Section::Graph))?;
        let graph_end = align_up(graph_off + graph_len, 16).ok_or(section_err(Section::Graph))?;
        if const_off != graph_end || !const_len.is_multiple_of(16) {
            return Err(section_err(Section::Constants));
        }
        let consts = in_image(const_off, const_len).ok_or(section_err(Section::Constants))?;
        let const_end = const_off + const_len;
        let (stats, end) = if stats_len == 0 {
            if stats_off != 0 {
                return Err(section_err(Section::Stats));
            }
            (&image[const_end..const_end], const_end)
        } else {
            if stats_off != const_end {
                return Err(section_err(Section::Stats));
            }
            let s = in_image(stats_off, stats_len).ok_or(section_err(Section::Stats))?;
            (s, align_up(stats_off + stats_len, 16).unwrap_or(usize::MAX))
        };
        if end != image.len() {
            return Err(Error::ImageBadHeader { offset: 12 });
        }

        // Graph header.
        let g16 = |off: usize| u16_at(graph, off).ok_or(graph_err(off));
        let num_tensors = g16(0)?;
        let num_inputs = g16(2)?;
        let num_outputs = g16(4)?;
        let num_ops = g16(6)?;
        let ops_len = u32_at(graph, 8).ok_or(graph_err(8))? as usize;
        if u32_at(graph, 12) != Some(0) {
            return Err(graph_err(12));
        }
        if num_ops == 0 || num_inputs == 0 || num_outputs == 0 || num_tensors == u16::MAX {
            return Err(graph_err(0));
        }
        let io_len = 2 * (num_inputs as usize + num_outputs as usize);
        let tensors_off = GRAPH_HEADER_LEN + align_up(io_len, 4).ok_or(graph_err(2))?;
        let ops_off = tensors_off + TENSOR_RECORD_LEN * num_tensors as usize;
        if ops_off.checked_add(ops_len) != Some(graph.len()) {
            return Err(graph_err(8));
        }
        let model = Model {
            bytes,
            name,
            format_minor: minor,
            image_len,
            flags,
            arena_bytes,
            model_version,
            consts,
            stats,
            io: &graph[GRAPH_HEADER_LEN..GRAPH_HEADER_LEN + io_len],
            tensors: &graph[tensors_off..ops_off],
            ops: &graph[ops_off..],
            num_tensors,
            num_inputs,
            num_outputs,
            num_ops,
            tensors_valid: false,
        };
        let mut model = model;
        model.validate_tensors()?;
        model.tensors_valid = true;
        model.validate_io()?;
        model.validate_ops()?;
        model.validate_lifetimes()?;
        model.validate_plan()?;
        // Plain loops over `next`: adapters such as `enumerate` or `try_for_each` would be
        // compiled as generic functions of their own, outside `.text.hot.edgeloop`.
        let mut i = 0;
        #[allow(clippy::explicit_counter_loop)]
        for rec in model.ops() {
            binding::check::<OPS>(&model, i, &rec?)?;
            i += 1;
        }
        for e in model.stats_entries() {
            e?;
        }
        if flags & FLAG_SIGNED != 0 {
            let t = &bytes[image_len as usize..image_len as usize + SIGNATURE_TRAILER_LEN];
            if t[..4] != *b"EDSG" || u16_at(t, 4) != Some(1) || u16_at(t, 6) != Some(0) {
                return Err(Error::ImageBadSignatureTrailer);
            }
        }
        Ok(model)
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn raw_tensor(&self, i: usize) -> Result<TensorInfo, Error> {
        let rec = self
            .tensors
            .get(i * TENSOR_RECORD_LEN..(i + 1) * TENSOR_RECORD_LEN)
            .ok_or(Error::TensorIndexOutOfRange { index: i as u32 })?;
        if self.tensors_valid {
            if let Ok(rec) = <&[u8; TENSOR_RECORD_LEN]>::try_from(rec) {
                return Ok(tensor::decode_validated(rec));
            }
        }
        tensor::decode(rec).map_err(|p| tensor_err(i, p))
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn validate_tensors(&self) -> Result<(), Error> {
        for i in 0..self.num_tensors() {
            let t = self.raw_tensor(i)?;
            match t.storage {
                Storage::Constant => {
                    let end = t.offset as u64 + t.len as u64;
                    if end > self.consts.len() as u64 {
                        return Err(tensor_err(i, TensorProblem::OutOfBounds));
                    }
                }
                Storage::Alias(base) => {
                    let b = self
                        .raw_tensor(base as usize)
                        .map_err(|_| tensor_err(i, TensorProblem::BadAlias))?;
                    if b.storage != Storage::Arena || b.len != t.len || b.dtype != t.dtype {
                        return Err(tensor_err(i, TensorProblem::BadAlias));
                    }
                }
                Storage::Arena | Storage::Persistent => {}
            }
        }
        Ok(())
    }

    fn io_index(&self, k: usize) -> u16 {
        u16_at(self.io, 2 * k).unwrap_or(u16::MAX)
    }

    fn is_input(&self, t: u16) -> bool {
        (0..self.num_inputs()).any(|k| self.io_index(k) == t)
    }

    /// Whether `t` is a graph output, directly or through an alias.
    fn is_output(&self, t: u16) -> bool {
        (0..self.num_outputs()).any(|k| {
            let o = self.io_index(self.num_inputs() + k);
            o == t || self.base_of(o) == t
        })
    }

    /// [`Self::is_output`] with the outputs' alias bases resolved once: `None` when the model
    /// has more than [`OUTPUT_CACHE`] outputs (then callers use `is_output`).
    fn output_cache(&self) -> Option<OutputCache> {
        let n = self.num_outputs();
        if n > OUTPUT_CACHE {
            return None;
        }
        let mut c = OutputCache {
            ids: [(0, 0); OUTPUT_CACHE],
            len: n,
        };
        for (k, slot) in c.ids.iter_mut().enumerate().take(n) {
            let o = self.io_index(self.num_inputs() + k);
            *slot = (o, self.base_of(o));
        }
        Some(c)
    }

    /// The tensor whose arena bytes `t` uses (itself unless it is an alias).
    fn base_of(&self, t: u16) -> u16 {
        match self.lifetime_fields(t as usize) {
            Some(Lifetime {
                storage: Storage::Alias(b),
                ..
            }) => b,
            _ => t,
        }
    }

    /// Storage and stored lifetime of tensor `i`, read from its record without the full
    /// [`tensor::decode`] (the lifetime and alias checks ask for them thousands of times per
    /// parse). `None` when `i` is out of range or the record's kind or alias is malformed;
    /// every other field is judged by [`Self::validate_tensors`], which runs first.
    fn lifetime_fields(&self, i: usize) -> Option<Lifetime> {
        let rec: &[u8; TENSOR_RECORD_LEN] = self
            .tensors
            .get(i * TENSOR_RECORD_LEN..(i + 1) * TENSOR_RECORD_LEN)?
            .try_into()
            .ok()?;
        let u16_at = |o: usize| u16::from_le_bytes([rec[o], rec[o + 1]]);
        let storage = match rec[2] {
            0 => Storage::Arena,
            1 => Storage::Constant,
            2 => Storage::Persistent,
            3 if u16_at(14) == 0 => Storage::Alias(u16_at(12)),
            _ => return None,
        };
        Some(Lifetime {
            storage,
            first_op: u16_at(24),
            last_op: u16_at(26),
        })
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn validate_io(&self) -> Result<(), Error> {
        let n_in = self.num_inputs();
        for k in 0..n_in + self.num_outputs() {
            let t = self.io_index(k);
            let info = self
                .raw_tensor(t as usize)
                .map_err(|_| graph_err(16 + 2 * k))?;
            let ok = match info.storage {
                Storage::Arena => true,
                Storage::Alias(_) => k >= n_in,
                _ => false,
            };
            let dup = (0..k).any(|j| self.io_index(j) == t && (j < n_in) == (k < n_in));
            if !ok || dup {
                return Err(tensor_err(t as usize, TensorProblem::BadLifetime));
            }
        }
        Ok(())
    }

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn validate_ops(&self) -> Result<(), Error> {
        let mut off = 0usize;
        let mut count = 0usize;
        while off < self.ops.len() {
            if count == self.num_ops() {
                return Err(graph_err(off));
            }
            let (rec, len) =
                op::decode(&self.ops[off..]).ok_or(op_err(count, OpProblem::BadArity))?;
            if rec.num_outputs() == 0 {
                return Err(op_err(count, OpProblem::BadArity));
            }
            let inputs = rec.inputs().filter(|&t| t != NO_TENSOR);
            for t in inputs.chain(rec.outputs()) {
                if t as usize >= self.num_tensors() {
                    return Err(op_err(count, OpProblem::BadTensorIndex));
                }
            }
            for t in rec.outputs() {
                // Only the kind is needed: every record has passed `validate_tensors` and `t`
                // is in range, so this reads the record without decoding all of it.
                let storage = self.lifetime_fields(t as usize).map(|l| l.storage);
                let writable = match storage {
                    Some(Storage::Arena) => !self.is_input(t),
                    Some(Storage::Persistent) => true,
                    _ => false,
                };
                if !writable {
                    return Err(op_err(count, OpProblem::BadWrite));
                }
            }
            off += len;
            count += 1;
        }
        if count != self.num_ops() {
            return Err(graph_err(8));
        }
        Ok(())
    }

    /// Recomputes every tensor's lifetime from the graph and compares it with the record.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn validate_lifetimes(&self) -> Result<(), Error> {
        if !cfg!(feature = "std") && !cfg!(debug_assertions) {
            // Microcontrollers: the exact check alone. Both checks together are 2.2 KB of
            // Cortex-M4 flash, this one 0.8 KB; on their small graphs the quadratic walk costs
            // little (the DS-CNN's parse: +0.15 M instructions, with the plan check below).
            return self.validate_lifetimes_exact();
        }
        let fast = self.lifetimes_hold();
        if cfg!(debug_assertions) {
            // Debug builds (the tests, the fuzz targets) run both and hold the fast check to
            // exactly the exact one's verdict.
            let exact = self.validate_lifetimes_exact();
            assert_eq!(
                fast,
                exact.is_ok(),
                "lifetime checks disagree: exact says {exact:?}"
            );
            return exact;
        }
        if fast {
            Ok(())
        } else {
            // The error a user sees: the exact check names the tensor or op.
            self.validate_lifetimes_exact()
        }
    }

    /// The stored lifetimes checked in one pass over the ops (linear in the graph's size, where
    /// [`Self::validate_lifetimes_exact`] walks every op for every arena tensor): `true` exactly
    /// when the exact check accepts the image. Nothing is allocated; per-tensor facts that
    /// would need a table (each tensor written once, read at its last op) are checked by
    /// counting: a write of `t` is only accepted at `t.first_op` and a read at `t.last_op` is
    /// counted once per op, so each tensor contributes at most one, and the totals must equal
    /// the numbers of tensors that need one.
    fn lifetimes_hold(&self) -> bool {
        let Some(last_op) = self.num_ops().checked_sub(1) else {
            return false;
        };
        let outputs = self.output_cache();
        let is_output = |t: u16| match &outputs {
            Some(c) => c.ids[..c.len].iter().any(|&(o, b)| o == t || b == t),
            None => self.is_output(t),
        };
        // What the tensor records claim.
        let (mut writes_needed, mut late_input_writes_needed, mut last_reads_needed) = (0, 0, 0);
        for i in 0..self.num_tensors() {
            let Some(t) = self.lifetime_fields(i) else {
                return false;
            };
            let ti = i as u16;
            let (first, last) = (t.first_op as usize, t.last_op as usize);
            let (input, output) = (self.is_input(ti), is_output(ti));
            match t.storage {
                Storage::Constant | Storage::Alias(_) => {
                    if (first, last) != (0, 0) {
                        return false;
                    }
                }
                Storage::Persistent => {
                    if (first, last) != (0, last_op) {
                        return false;
                    }
                }
                Storage::Arena => {
                    if first > last || last > last_op {
                        return false;
                    }
                    if !input {
                        writes_needed += 1;
                    } else if first != 0 {
                        late_input_writes_needed += 1;
                    }
                    if output {
                        if last != last_op {
                            return false;
                        }
                    } else if last > first {
                        last_reads_needed += 1;
                    }
                }
            }
            if matches!(t.storage, Storage::Constant | Storage::Persistent) && (input || output) {
                return false;
            }
        }
        // What the ops do.
        let (mut writes, mut late_input_writes, mut last_reads) = (0, 0, 0);
        for (j, rec) in self.ops().enumerate() {
            let Ok(rec) = rec else {
                return false;
            };
            for (k, o) in rec.outputs().enumerate() {
                if rec.outputs().take(k).any(|p| p == o) {
                    continue;
                }
                // Not a tensor (an absent optional operand): the op's binding check judges it.
                let Some(t) = self.lifetime_fields(o as usize) else {
                    continue;
                };
                if t.storage != Storage::Arena {
                    continue;
                }
                if t.first_op as usize != j {
                    return false;
                }
                if !self.is_input(o) {
                    writes += 1;
                } else if j != 0 {
                    late_input_writes += 1;
                }
            }
            // The bases of the op's first inputs, so that an input is compared with the ones
            // before it without resolving their bases again (past `SEEN` inputs, they are).
            let mut seen = [0u16; SEEN];
            for (k, x) in rec.inputs().enumerate() {
                // `x`'s base and the base's record (`x`'s own unless `x` is an alias).
                let (b, t) = match self.lifetime_fields(x as usize) {
                    Some(Lifetime {
                        storage: Storage::Alias(b),
                        ..
                    }) => (b, self.lifetime_fields(b as usize)),
                    t => (x, t),
                };
                let dup = match seen.get(..k) {
                    Some(before) => before.contains(&b),
                    None => rec.inputs().take(k).any(|y| self.base_of(y) == b),
                };
                if let Some(slot) = seen.get_mut(k) {
                    *slot = b;
                }
                if dup {
                    continue;
                }
                let Some(t) = t else {
                    continue;
                };
                if t.storage != Storage::Arena {
                    continue;
                }
                let (first, last) = (t.first_op as usize, t.last_op as usize);
                if !self.is_input(b) && first >= j {
                    return false;
                }
                if !is_output(b) {
                    if j > last {
                        return false;
                    }
                    if j == last && last > first {
                        last_reads += 1;
                    }
                }
            }
        }
        writes == writes_needed
            && late_input_writes == late_input_writes_needed
            && last_reads == last_reads_needed
    }

    /// Every arena tensor's stored lifetime against the graph, tensor by tensor (the error
    /// names the first tensor or op that is wrong).
    fn validate_lifetimes_exact(&self) -> Result<(), Error> {
        let last_op = self.num_ops() - 1;
        for i in 0..self.num_tensors() {
            let t = self.raw_tensor(i)?;
            let ti = i as u16;
            let (first, last) = match t.storage {
                Storage::Constant | Storage::Alias(_) => (0, 0),
                Storage::Persistent => (0, last_op),
                Storage::Arena => {
                    let mut producer = None;
                    let mut last_read = None;
                    for (j, rec) in self.ops().enumerate() {
                        let rec = rec?;
                        if rec.outputs().any(|o| o == ti) {
                            if producer.is_some() {
                                return Err(op_err(j, OpProblem::BadWrite));
                            }
                            producer = Some(j);
                        }
                        if rec.inputs().any(|x| x == ti || self.base_of(x) == ti) {
                            if !self.is_input(ti) && producer.is_none_or(|p| p >= j) {
                                return Err(op_err(j, OpProblem::ReadsUnwritten));
                            }
                            last_read = Some(j);
                        }
                    }
                    let first = match producer {
                        Some(p) => p,
                        None if self.is_input(ti) => 0,
                        None => return Err(tensor_err(i, TensorProblem::BadLifetime)),
                    };
                    let last = if self.is_output(ti) {
                        last_op
                    } else {
                        last_read.unwrap_or(first).max(first)
                    };
                    (first, last)
                }
            };
            if t.first_op as usize != first || t.last_op as usize != last {
                return Err(tensor_err(i, TensorProblem::BadLifetime));
            }
            if matches!(t.storage, Storage::Constant | Storage::Persistent)
                && (self.is_input(ti) || self.is_output(ti))
            {
                return Err(tensor_err(i, TensorProblem::BadLifetime));
            }
        }
        Ok(())
    }

    /// Every arena tensor fits the declared arena; no two simultaneously live ones overlap.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn validate_plan(&self) -> Result<(), Error> {
        if !cfg!(feature = "std") && !cfg!(debug_assertions) {
            // Microcontrollers: the exact check alone, as for the lifetimes.
            return self.validate_plan_exact();
        }
        let fast = self.plan_holds();
        if cfg!(debug_assertions) {
            // Debug builds (tests, fuzz targets) hold the blocked check to the exact verdict.
            let exact = self.validate_plan_exact();
            assert_eq!(
                fast,
                exact.is_ok(),
                "plan checks disagree: exact says {exact:?}"
            );
            // Small blocks too, so that the multi-block path is exercised on every image.
            assert_eq!(
                self.plan_holds_blocked::<3>(),
                exact.is_ok(),
                "plan checks (blocks of 3) disagree: exact says {exact:?}"
            );
            return exact;
        }
        if fast {
            Ok(())
        } else {
            self.validate_plan_exact()
        }
    }

    /// The plan check of [`Self::validate_plan_exact`], `true` exactly when the exact check
    /// accepts the plan, with far fewer record decodes: arena tensors are gathered, in index
    /// order, into blocks of up to [`PLAN_BLOCK`] spans on the stack (constants and aliases are
    /// skipped); each span is compared with the spans before it in its block when it joins, and
    /// every later arena tensor is compared with the whole block once the block is full. Every
    /// pair of arena tensors is still compared exactly once, but a record is decoded once per
    /// block rather than once per pair, so a model with at most [`PLAN_BLOCK`] tensors decodes
    /// each record once.
    fn plan_holds(&self) -> bool {
        self.plan_holds_blocked::<PLAN_BLOCK>()
    }

    /// [`Self::plan_holds`] with blocks of `B` arena tensors.
    fn plan_holds_blocked<const B: usize>(&self) -> bool {
        let n = self.num_tensors();
        let mut block = PlanBlock::<B> {
            start: [0; B],
            end: [0; B],
            first: [0; B],
            last: [0; B],
            len: 0,
        };
        let mut next = 0;
        while next < n {
            // Fill the block with the next arena tensors, checking each against the arena's
            // size (each tensor joins exactly one block) and against the block so far.
            block.len = 0;
            while next < n && block.len < B {
                let Some(s) = self.plan_span(next) else {
                    return false;
                };
                next += 1;
                let Some(s) = s else {
                    continue;
                };
                if block.hits(&s) {
                    return false;
                }
                let k = block.len;
                (block.start[k], block.end[k]) = (s.start, s.end);
                (block.first[k], block.last[k]) = (s.first, s.last);
                block.len += 1;
            }
            // Every later arena tensor against the full block.
            for a in next..n {
                match self.plan_span(a) {
                    None => return false,
                    Some(Some(s)) if block.hits(&s) => return false,
                    Some(_) => {}
                }
            }
        }
        true
    }

    /// Tensor `i` as a [`PlanSpan`]: `Some(None)` when it is not in the arena, `None` when its
    /// record does not decode or it does not fit the arena.
    fn plan_span(&self, i: usize) -> Option<Option<PlanSpan>> {
        let t = self.raw_tensor(i).ok()?;
        if !t.in_arena() {
            return Some(None);
        }
        let end = t.offset as u64 + t.len as u64;
        if end > self.arena_bytes as u64 {
            return None;
        }
        Some(Some(PlanSpan {
            start: t.offset,
            end: end as u32,
            first: t.first_op,
            last: t.last_op,
        }))
    }

    /// Every arena tensor fits the declared arena; no two simultaneously live ones overlap (the
    /// error names the first pair).
    fn validate_plan_exact(&self) -> Result<(), Error> {
        for a in 0..self.num_tensors() {
            let ta = self.raw_tensor(a)?;
            if !ta.in_arena() {
                continue;
            }
            if ta.offset as u64 + ta.len as u64 > self.arena_bytes as u64 {
                return Err(Error::ImagePlanOutOfArena { tensor: a as u32 });
            }
            for b in 0..a {
                let tb = self.raw_tensor(b)?;
                if !tb.in_arena() {
                    continue;
                }
                let live = ta.first_op <= tb.last_op && tb.first_op <= ta.last_op;
                let bytes = (ta.offset as u64) < tb.offset as u64 + tb.len as u64
                    && (tb.offset as u64) < ta.offset as u64 + ta.len as u64;
                if live && bytes {
                    return Err(Error::ImagePlanOverlap {
                        a: b as u32,
                        b: a as u32,
                    });
                }
            }
        }
        Ok(())
    }

    /// The model's name (printable ASCII, at most 24 bytes).
    pub fn name(&self) -> &'a str {
        // Validated as printable ASCII by `parse`, so this never falls back.
        core::str::from_utf8(self.name).unwrap_or("")
    }

    /// The model's version number (set by whoever compiled it).
    pub fn model_version(&self) -> u32 {
        self.model_version
    }

    /// Format version `(major, minor)` of this image.
    pub fn format_version(&self) -> (u16, u16) {
        (FORMAT_MAJOR, self.format_minor)
    }

    /// Arena bytes the model needs (the planned peak).
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes as usize
    }

    /// Length of the image proper, without the signature trailer.
    pub fn image_len(&self) -> usize {
        self.image_len as usize
    }

    /// The bytes a signature covers: `[0, image_len)`.
    pub fn signed_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.image_len as usize]
    }

    /// The signature trailer, when the image has one.
    pub fn signature(&self) -> Option<SignatureTrailer<'a>> {
        if self.flags & FLAG_SIGNED == 0 {
            return None;
        }
        let t = self
            .bytes
            .get(self.image_len as usize..self.image_len as usize + SIGNATURE_TRAILER_LEN)?;
        Some(SignatureTrailer {
            key_id: &t[8..16],
            signature: &t[16..80],
        })
    }

    /// Bytes of the constant section.
    pub fn constants_len(&self) -> usize {
        self.consts.len()
    }

    /// Number of tensors.
    pub fn num_tensors(&self) -> usize {
        self.num_tensors as usize
    }

    /// Number of operators.
    pub fn num_ops(&self) -> usize {
        self.num_ops as usize
    }

    /// Number of graph inputs.
    pub fn num_inputs(&self) -> usize {
        self.num_inputs as usize
    }

    /// Number of graph outputs.
    pub fn num_outputs(&self) -> usize {
        self.num_outputs as usize
    }

    /// Tensor index of graph input `k`.
    pub fn input(&self, k: usize) -> Result<usize, Error> {
        if k >= self.num_inputs() {
            return Err(Error::TensorIndexOutOfRange { index: k as u32 });
        }
        Ok(self.io_index(k) as usize)
    }

    /// Tensor index of graph output `k`.
    pub fn output(&self, k: usize) -> Result<usize, Error> {
        if k >= self.num_outputs() {
            return Err(Error::TensorIndexOutOfRange { index: k as u32 });
        }
        Ok(self.io_index(self.num_inputs() + k) as usize)
    }

    /// Tensor `i`. For an alias, `offset` is its base tensor's arena offset.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn tensor(&self, i: usize) -> Result<TensorInfo, Error> {
        let mut t = self.raw_tensor(i)?;
        if let Storage::Alias(b) = t.storage {
            t.offset = self.raw_tensor(b as usize)?.offset;
        }
        Ok(t)
    }

    /// The bytes of constant tensor `i`, borrowed from the image.
    pub fn constant(&self, i: usize) -> Result<&'a [u8], Error> {
        self.constant_bytes(i, &self.raw_tensor(i)?)
    }

    /// [`Model::constant`] of tensor `i` whose record the caller has already decoded as `t`.
    pub(crate) fn constant_bytes(&self, i: usize, t: &TensorInfo) -> Result<&'a [u8], Error> {
        if t.storage != Storage::Constant {
            return Err(tensor_err(i, TensorProblem::BadKind));
        }
        self.consts
            .get(t.offset as usize..t.offset as usize + t.len as usize)
            .ok_or(tensor_err(i, TensorProblem::OutOfBounds))
    }

    /// Whether tensor `i` is persistent (state), read from its record's kind byte alone; `None`
    /// past the last tensor.
    pub(crate) fn is_persistent(&self, i: usize) -> Option<bool> {
        self.tensors
            .get(i * TENSOR_RECORD_LEN + 2)
            .map(|&kind| kind == 2)
    }

    /// The operator records, in execution order.
    pub fn ops(&self) -> Ops<'a> {
        Ops {
            rest: self.ops,
            index: 0,
        }
    }

    /// The entries of the reference-statistics section (empty when the image has none).
    pub fn stats_entries(&self) -> StatsEntries<'a> {
        StatsEntries {
            all: self.stats,
            off: 0,
        }
    }
}

/// Iterator over operator records.
#[derive(Debug, Clone)]
pub struct Ops<'a> {
    rest: &'a [u8],
    index: usize,
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<OpRecord<'a>, Error>;

    /// Inlined: a call returns `Option<Result<OpRecord, Error>>`, whose tag byte sits before
    /// the record, and the Cortex-M4 build moved it with two misaligned `memcpy` calls per op.
    #[inline]
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match op::decode(self.rest) {
            Some((rec, len)) => {
                self.rest = &self.rest[len..];
                self.index += 1;
                Some(Ok(rec))
            }
            None => {
                self.rest = &[];
                Some(Err(op_err(self.index, OpProblem::BadArity)))
            }
        }
    }
}

/// Iterator over statistics entries.
#[derive(Debug, Clone)]
pub struct StatsEntries<'a> {
    all: &'a [u8],
    off: usize,
}

impl<'a> Iterator for StatsEntries<'a> {
    type Item = Result<StatsEntry<'a>, Error>;

    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.all.len() {
            return None;
        }
        let err = Error::ImageBadStats {
            offset: self.off as u32,
        };
        let entry = (|| {
            let tag = u16_at(self.all, self.off)?;
            if tag == 0 || u16_at(self.all, self.off + 2)? != 0 {
                return None;
            }
            let len = u32_at(self.all, self.off + 4)? as usize;
            let start = self.off + 8;
            let payload = self.all.get(start..start.checked_add(len)?)?;
            let next = align_up(start + len, 4)?;
            if next > self.all.len() {
                return None;
            }
            self.off = next;
            Some(StatsEntry { tag, payload })
        })();
        match entry {
            Some(e) => Some(Ok(e)),
            None => {
                self.off = self.all.len();
                Some(Err(err))
            }
        }
    }
}

//! Instruction counting between marker calls (with `tools/insn-count.c` loaded in QEMU).
//!
//! [`mark`] calls the `#[no_mangle]` function `edgeloop_bench_marker`; the TCG plugin records
//! the running executed-instruction count every time that function's first instruction runs,
//! one line per call, in order. The firmware numbers its calls and logs, for every measured
//! region, the two call numbers that bound it and the region's multiply-accumulates; the host
//! subtracts the counts. Each region's count includes the 3-4 instructions of one marker call.

use core::sync::atomic::{AtomicU32, Ordering};

use edgeloop_runtime::image::{OpCode, OpRecord};
use edgeloop_runtime::Model;

static MARKS: AtomicU32 = AtomicU32::new(0);

/// The marker function the plugin watches (by its symbol name, `edgeloop_bench_marker`).
#[no_mangle]
#[inline(never)]
pub extern "C" fn edgeloop_bench_marker() {
    // Keeps the function from being merged or removed.
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Records a mark and returns its number (0, 1, 2, ... in program order).
#[inline(always)]
pub fn mark() -> u32 {
    edgeloop_bench_marker();
    let n = MARKS.load(Ordering::Relaxed);
    MARKS.store(n + 1, Ordering::Relaxed);
    n
}

fn elements(model: &Model<'_>, tensor: u16) -> u64 {
    model
        .tensor(tensor as usize)
        .map(|t| t.shape.num_elements())
        .unwrap_or(0)
}

fn dim(model: &Model<'_>, tensor: u16, i: usize) -> u64 {
    model
        .tensor(tensor as usize)
        .map(|t| t.shape.dim(i) as u64)
        .unwrap_or(0)
}

/// Multiply-accumulates of one op (0 for ops without a dot-product core). `position` is the
/// decode position of attention ops (run-time data).
pub fn macs(model: &Model<'_>, rec: &OpRecord<'_>, position: u64) -> u64 {
    let out = elements(model, rec.output(0));
    let (x, w) = (rec.input(0), rec.input(1));
    match OpCode::from_code(rec.code) {
        // w [N, K]
        Some(OpCode::FullyConnected) => out * dim(model, w, 1),
        // w [O, KH, KW, I]
        Some(OpCode::Conv2d) => out * dim(model, w, 1) * dim(model, w, 2) * dim(model, w, 3),
        // w [1, KH, KW, O]
        Some(OpCode::DepthwiseConv2d) => out * dim(model, w, 1) * dim(model, w, 2),
        // w [O, K, I]
        Some(OpCode::Conv1d) => out * dim(model, w, 1) * dim(model, w, 2),
        // a [.., M, K]
        Some(OpCode::BatchMatMul) => {
            let a = model.tensor(x as usize).map(|t| t.shape).ok();
            out * a.map_or(0, |s| s.last() as u64)
        }
        // q [H, T, D]: Σ over queries of visible positions × D, for q·k and for p·v.
        Some(OpCode::Attention) => {
            let (h, t, d) = (dim(model, x, 0), dim(model, x, 1), dim(model, x, 2));
            let visible: u64 = (0..t).map(|i| position + i + 1).sum();
            2 * h * visible * d
        }
        _ => 0,
    }
}

/// Short name of an op code for the log.
pub fn op_name(code: u8) -> &'static str {
    match OpCode::from_code(code) {
        Some(OpCode::FullyConnected) => "FullyConnected",
        Some(OpCode::Conv2d) => "Conv2D",
        Some(OpCode::DepthwiseConv2d) => "DepthwiseConv2D",
        Some(OpCode::Conv1d) => "Conv1D",
        Some(OpCode::Add) => "Add",
        Some(OpCode::Mul) => "Mul",
        Some(OpCode::Softmax) => "Softmax",
        Some(OpCode::GlobalAvgPool) => "GlobalAvgPool",
        Some(OpCode::BatchMatMul) => "BatchMatMul",
        Some(OpCode::Transpose) => "Transpose",
        Some(OpCode::Gather) => "Gather",
        Some(OpCode::LayerNorm) => "LayerNorm",
        Some(OpCode::Table) => "Table",
        Some(OpCode::KvAppend) => "KvAppend",
        Some(OpCode::Attention) => "Attention",
        Some(OpCode::Reshape) => "Reshape",
        Some(OpCode::Quantize) => "Quantize",
        Some(OpCode::Dequantize) => "Dequantize",
        Some(OpCode::Relu) => "ReLU",
        Some(OpCode::Relu6) => "ReLU6",
        Some(OpCode::MaxPool2d) => "MaxPool2D",
        Some(OpCode::AvgPool2d) => "AvgPool2D",
        Some(OpCode::Concat) => "Concat",
        Some(OpCode::ArgMax) => "ArgMax",
        Some(OpCode::CausalMask) => "CausalMask",
        _ => "other",
    }
}

//! A firmware-shaped binary that parses a model image and runs it with only the FullyConnected
//! and Softmax kernels linked, so `.text` measures the runtime's own flash cost (parser,
//! validation, planner checks, interpreter, two kernels). The image address comes from RAM at
//! run time, so nothing is constant-folded away.
#![no_std]
#![no_main]

use core::panic::PanicInfo;
use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use edgeloop_runtime::image::{op_set_int8, OpCode};
use edgeloop_runtime::{Interpreter, Model};

const OPS: u128 = op_set_int8(&[OpCode::FullyConnected, OpCode::Softmax]);

#[repr(C, align(16))]
struct Arena([u8; 8192]);

static mut ARENA: Arena = Arena([0; 8192]);

/// Where a loader would put the image address, its length, and where the result goes.
const MAILBOX: usize = 0x2003_F000;

fn run(image: &[u8], arena: &mut [u8]) -> i32 {
    let Ok(model) = Model::parse_with_ops::<OPS>(image) else {
        return -1;
    };
    let Ok(mut it) = Interpreter::<'_, '_, OPS>::new_with_ops(&model, arena) else {
        return -2;
    };
    if let Ok(x) = it.input_i8(0) {
        x.fill(1);
    }
    if it.invoke().is_err() {
        return -3;
    }
    match it.output_i8(0) {
        Ok(y) => y.first().copied().unwrap_or(0) as i32,
        Err(_) => -4,
    }
}

/// Reset handler.
#[no_mangle]
pub extern "C" fn reset() -> ! {
    // SAFETY: MAILBOX lies in the RAM region of link.x; a loader (or a debugger) writes the
    // image address and length there before reset. Volatile reads keep them opaque.
    let (ptr, len) = unsafe {
        (
            read_volatile(MAILBOX as *const *const u8),
            read_volatile((MAILBOX + 4) as *const usize),
        )
    };
    // SAFETY: the loader guarantees `len` readable bytes at `ptr` (the flash image).
    let image = unsafe { core::slice::from_raw_parts(ptr, len) };
    // SAFETY: `reset` runs once, so this is the only reference to ARENA.
    let arena = unsafe { &mut (*addr_of_mut!(ARENA)).0 };
    let r = run(image, arena);
    // SAFETY: MAILBOX + 8 lies in RAM (see above).
    unsafe { write_volatile((MAILBOX + 8) as *mut i32, r) };
    loop {}
}

#[repr(C)]
struct Vectors {
    stack: u32,
    reset: extern "C" fn() -> !,
}

#[link_section = ".vector_table"]
#[no_mangle]
static VECTORS: Vectors = Vectors {
    stack: 0x2004_0000,
    reset,
};

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

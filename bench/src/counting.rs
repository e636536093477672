//! A counting global allocator: wraps the system allocator and counts the allocations a thread
//! makes while that thread has counting switched on (tests running in parallel do not count
//! each other's allocations). Install it in a binary with
//! `#[global_allocator] static A: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// (counting on, allocations, bytes) of this thread.
    static STATE: Cell<(bool, u64, u64)> = const { Cell::new((false, 0, 0)) };
}

fn note(bytes: usize) {
    let _ = STATE.try_with(|s| {
        let (on, n, b) = s.get();
        if on {
            s.set((on, n + 1, b + bytes as u64));
        }
    });
}

/// The counting allocator.
pub struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; counting only touches a
// const-initialized thread-local cell (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

/// Allocations (count, bytes) made through the Rust allocator on this thread while `f` ran.
/// Only counts when [`Counting`] is the global allocator; allocations on other threads and
/// inside C++ libraries (ONNX Runtime) are not seen.
pub fn count<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let (_, n0, b0) = STATE.with(|s| {
        let v = s.get();
        s.set((true, v.1, v.2));
        v
    });
    let r = f();
    let (_, n1, b1) = STATE.with(|s| {
        let v = s.get();
        s.set((false, v.1, v.2));
        v
    });
    (r, n1 - n0, b1 - b0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: Counting = Counting;

    #[test]
    fn counts_this_threads_allocations_only() {
        let (v, n, b) = count(|| vec![0u8; 100]);
        assert_eq!(v.len(), 100);
        assert_eq!((n, b), (1, 100));
        let ((), n, _) = count(|| ());
        assert_eq!(n, 0);
        // Another thread allocating while this one counts is not seen.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _ = rx.recv();
            let v = std::hint::black_box(vec![1u8; 1000]);
            let _ = go.send(());
            v.len()
        });
        let ((), n, b) = count(|| {
            let _ = tx.send(());
            let _ = wait.recv();
        });
        assert_eq!(h.join().ok(), Some(1000));
        assert!(b < 1000, "{n} allocations, {b} bytes");
    }
}

//! Operator kernels. One folder per op: `mod.rs` (params + `check` + `eval_*` dispatch),
//! `reference.rs` (the portable specification), optimized variants, `tests.rs`.
//!
//! Contract with the interpreter (`image`/`interpreter` modules):
//! - Kernels are pure functions over a `Params` struct that borrows its constants (weights,
//!   biases, per-channel multipliers and shifts, tables) straight from the image bytes, plus
//!   input slices and output slices in the arena. They never allocate.
//! - Each op exposes `check(&Params, input lens.., output len) -> Result<(), Error>`, called once
//!   at load time; after it returned `Ok`, `eval_*` must not panic for any values in the tensors.

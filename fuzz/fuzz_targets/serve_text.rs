//! Fuzz target: tokenizing a serve request's text never panics; ids stay in the vocabulary.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::text::fuzz_text(data);
});

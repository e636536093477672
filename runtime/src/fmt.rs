//! Logging shim: forwards to `defmt` when the feature is on, expands to nothing otherwise.
//! Declared first in `lib.rs` so every module sees the macros. Never used in kernel inner loops.
#![allow(unused_macros)]

/// Debug-level log line (defmt) or nothing.
macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
    }};
}

/// Warning-level log line (defmt) or nothing.
macro_rules! warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
    }};
}

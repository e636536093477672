//! Fixed-point requantization: the one primitive every int8 kernel uses.

//! edgeloop quantizer and compiler.
//!
//! Not implemented yet (issue 4): nothing here quantizes or compiles.
#![deny(missing_docs)]

//! Writing an image to a disk (`flash`, `clone`). So far only the safety decision
//! ([`preflight`]): which targets must be refused before a single byte is written.

pub mod clone;
pub mod geometry;
pub mod mediatest;
pub mod preflight;
pub mod shrink;
pub mod write;

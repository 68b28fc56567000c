//! Checking images against what was recorded when they were made: the image manifest
//! ([`manifest`], lifeboat's own JSON) and bmap files ([`bmap`], bmaptool's format 2.0).
//! `image` writes both; `verify` and `flash` read them.

pub mod bmap;
pub mod check;
pub mod input;
pub mod manifest;

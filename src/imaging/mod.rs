//! `lifeboat image`: rescue-grade, used-blocks-only, hashed and compressed imaging.
//!
//! - [`usage`] (with [`extalloc`]): which bytes to read, from filesystem allocation.
//! - [`reader`]: aligned, `O_DIRECT`, timeout-guarded reads that survive a device reset.
//! - [`mapfile`]: GNU ddrescue mapfiles (progress, bad sectors, `--resume`).
//! - [`rescue`]: the ddrescue passes (copy with skipping, trim, scrape, retry).
//! - [`pipeline`]: read → hash → compress → write threads; [`compress`]: the encoders.
//! - [`job`]: one `image` run from options to manifest; [`svg`]: the read-speed picture.
//! - [`ranges`]: byte-range set operations.

pub mod badfiles;
pub mod compress;
pub mod extalloc;
pub mod job;
pub mod mapfile;
pub mod pipeline;
pub mod ranges;
pub mod reader;
pub mod rescue;
pub mod svg;
pub mod usage;

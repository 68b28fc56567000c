//! Home Assistant OS: recognising its disks and reading their state offline.
//!
//! - [`layout`]: which layout family a partition table is, and each partition's role (pure).
//! - [`board`]: the board id, from os-release, RAUC's compatible string or boot files (pure).
//! - [`bootenv`], [`rauc`], [`osrelease`], [`rpiboot`]: parsers of the boot state files (pure).
//! - [`data`]: the ext4 data partition (Supervisor state, config, backups), never mounted.
//! - [`view`]: puts it all together into the report `inspect` and `list` print.

pub mod board;
pub mod bootenv;
pub mod data;
pub mod layout;
pub mod osrelease;
pub mod rauc;
pub mod rpiboot;
pub mod view;

pub use view::{Depth, InspectReport, inspect};

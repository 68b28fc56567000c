//! The operating-system boundary: every `unsafe` block and ioctl of the project lives here,
//! behind safe wrappers, next to the pure parsers for the kernel's text interfaces.
//!
//! - [`ioctl`]: block-device ioctls (`BLKGETSIZE64`, `BLKSSZGET`, `BLKPBSZGET`, `BLKROGET`,
//!   `BLKRRPART`, `BLKFLSBUF`, `BLKPG` add/delete partition) on an open `&File`, with errno
//!   turned into plain words.
//! - [`stat`]: device numbers ([`DevNum`]) from sysfs text, `stat` and `fstat`.
//! - [`mountinfo`], [`swaps`], [`udev`]: pure `&str` parsers for `/proc/self/mountinfo`,
//!   `/proc/swaps` and udev database records.
//! - [`sg`], [`nvme`], [`mmc`]: storage-health pass-through (`SG_IO`, `NVME_IOCTL_ADMIN_CMD`,
//!   `MMC_IOC_CMD`/`MMC_IOC_MULTI_CMD`) for `lifeboat health`.

pub mod ioctl;
pub mod mmc;
pub mod mountinfo;
pub mod nvme;
pub mod sg;
pub mod stat;
pub mod swaps;
pub mod udev;

pub use ioctl::{
    IoctlError, add_partition, delete_partition, flush_buffers, is_read_only, logical_sector_size,
    physical_sector_size, reread_partition_table, reread_partition_table_retrying, size_bytes,
};
pub use stat::{DevNum, block_device_number, file_device_number, is_block_device};

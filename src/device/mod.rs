//! Block devices as the running kernel shows them: discovery from sysfs through an injectable
//! root ([`SysRoot`]), transports (SD, eMMC, NVMe, SATA, USB, virtio, loop), and ownership
//! (mounted, swap, held, system disk) decided fail-closed.

pub mod discover;
pub mod identity;
pub mod ownership;
pub mod transport;

use serde::Serialize;
use std::path::PathBuf;

pub use discover::{SysRoot, discover};
pub use ownership::Ownership;
pub use transport::Transport;

/// A partition of a discovered disk, as sysfs lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevPartition {
    /// Kernel name, e.g. `mmcblk0p2`, `sda1`, `loop3p8`.
    pub name: String,
    /// `/dev/<name>`.
    pub path: PathBuf,
    /// Partition number (sysfs `partition`).
    pub number: u32,
    /// Start and size in bytes (sysfs counts 512-byte units whatever the sector size).
    pub start: u64,
    pub size: u64,
    /// Where it is mounted (from mountinfo), if anywhere.
    pub mountpoints: Vec<String>,
    /// Active swap.
    pub swap: bool,
    /// Kernel holders (`holders/` entries: dm-0, md0 …).
    pub holders: Vec<String>,
}

/// A whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Kernel name, e.g. `sda`, `mmcblk0`, `nvme0n1`, `loop3`.
    pub name: String,
    /// `/dev/<name>`.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub removable: bool,
    pub read_only: bool,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub transport: Transport,
    /// For loop devices: the backing file.
    pub backing_file: Option<PathBuf>,
    /// Mountpoints of the whole disk itself (rare: a filesystem without a table).
    pub mountpoints: Vec<String>,
    pub swap: bool,
    pub holders: Vec<String>,
    pub partitions: Vec<DevPartition>,
    /// This disk holds the running system's root filesystem (or `/boot`, `/usr`…).
    pub system_disk: bool,
    /// Why it is (or is not) safe to write; see [`Ownership`].
    pub ownership: Ownership,
    /// Udev properties lifeboat cares about (e.g. `LIFEBOAT_HAOS`) when the udev database is readable.
    pub udev: std::collections::BTreeMap<String, String>,
}

impl Disk {
    /// True unless the disk is clearly free for us to use (fail closed).
    pub fn in_use(&self) -> bool {
        !matches!(self.ownership, Ownership::Unused)
    }
}

//! Filesystem probes over a partition window: FAT (label), ext2/3/4 (label, UUID, sizes,
//! free blocks), squashfs and EROFS (magic, bytes used); plus [`fat`]'s read-only file reader.
//!
//! Probes are pure functions over the first bytes of a partition (see each module);
//! [`probe`] reads those bytes from a [`ReadAt`](crate::io::ReadAt) and tries each in turn.

pub mod erofs;
pub mod erofs_read;
pub mod ext;
pub mod fat;
pub mod squashfs;
pub mod squashfs_read;

use serde::Serialize;

/// Which filesystem a probe recognised, with its type-specific facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum FsKind {
    /// FAT12/16/32; `bits` is 12, 16 or 32.
    Fat {
        bits: u8,
        cluster_size: u32,
        clusters: u32,
    },
    /// ext2/3/4; `version` is 2, 3 or 4 from the feature flags.
    Ext {
        version: u8,
        block_size: u32,
        blocks: u64,
        free_blocks: u64,
        /// Feature flags this tool does not know (incompat/ro_compat), as names or hex.
        unknown_features: Vec<String>,
    },
    /// squashfs 4.x.
    Squashfs {
        compression: String,
        block_size: u32,
    },
    /// EROFS.
    Erofs { block_size: u32 },
}

/// What a probe found in a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    #[serde(flatten)]
    pub kind: FsKind,
    /// Volume label, trimmed (FAT labels keep their case as stored).
    pub label: Option<String>,
    /// Filesystem UUID (ext: dashed lower-case; FAT: volume id `XXXX-XXXX`).
    pub uuid: Option<String>,
    /// Bytes the filesystem occupies from the start of the partition.
    pub size_bytes: u64,
    /// Bytes in use, when known (ext: (blocks-free)*bs; squashfs: bytes_used; EROFS: blocks*bs).
    pub used_bytes: Option<u64>,
}

/// Short name for display (`vfat`, `ext4`, `squashfs`, `erofs`).
pub fn fs_name(kind: &FsKind) -> &'static str {
    match kind {
        FsKind::Fat { .. } => "vfat",
        FsKind::Ext { version: 2, .. } => "ext2",
        FsKind::Ext { version: 3, .. } => "ext3",
        FsKind::Ext { .. } => "ext4",
        FsKind::Squashfs { .. } => "squashfs",
        FsKind::Erofs { .. } => "erofs",
    }
}

/// Bytes a probe needs from the start of a partition (ext's superblock ends at 2048).
pub const PROBE_LEN: usize = 4096;

/// Probe the start of a partition. `head` holds up to [`PROBE_LEN`] bytes (less for a tiny
/// or truncated partition). Returns `None` when nothing is recognised; never panics.
pub fn probe_bytes(head: &[u8]) -> Option<FsInfo> {
    ext::probe(head)
        .or_else(|| erofs::probe(head))
        .or_else(|| squashfs::probe(head))
        .or_else(|| fat::probe(head))
}

/// Probe a partition through a reader (reads at most [`PROBE_LEN`] bytes).
pub fn probe(r: &dyn crate::io::ReadAt) -> std::io::Result<Option<FsInfo>> {
    let n = (r.len().min(PROBE_LEN as u64)) as usize;
    let head = crate::io::read_vec(r, 0, n)?;
    Ok(probe_bytes(&head))
}

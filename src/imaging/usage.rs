//! The used-range map: which bytes of a disk or image `lifeboat image` reads.
//!
//! Start from "everything is used" and carve out what a recognised filesystem says is free:
//! - ext2/3/4: block bitmaps ([`super::extalloc`]);
//! - FAT12/16/32: clusters free in the active FAT ([`crate::fs::fat::FatFs::used_ranges`]);
//! - squashfs: everything after `bytes_used`; EROFS: everything after `blocks × block size`;
//! - any filesystem: the tail of its partition beyond the filesystem's own size.
//!
//! Everything else — partition tables and EBRs, gaps between partitions, SPL regions,
//! bootstate, unknown or unreadable filesystems — is read whole. A range is only free when no
//! other partition claims it (overlapping tables stay safe). The result is aligned outward to
//! [`BLOCK`]-byte blocks (the bmap block size) and clamped to the source length.

use super::extalloc;
use super::ranges::{self, Extent};
use crate::fs::{self, FsKind, fat::FatFs};
use crate::io::{ReadAt, Window};
use crate::table::{self, EntryKind};
use serde::{Deserialize, Serialize};

/// Block size of the map and of the bmap.
pub const BLOCK: u64 = 4096;

/// How one partition's share of the map was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartUsage {
    /// Kernel partition number (0 for a filesystem without a partition table).
    pub number: u32,
    pub start: u64,
    pub size: u64,
    /// `vfat`, `ext4`, `squashfs`, `erofs`, or null.
    pub fs: Option<String>,
    /// `ext block bitmaps`, `FAT`, `squashfs bytes_used`, `EROFS size`, `read whole`, `all`.
    pub method: String,
    /// Bytes of this partition in the map.
    pub mapped_bytes: u64,
    /// Why the partition is read whole, or groups counted whole.
    pub notes: Vec<String>,
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageMap {
    /// Source length in bytes.
    pub size: u64,
    /// Sorted, merged ranges to read, [`BLOCK`]-aligned (the last may end at `size`).
    pub used: Vec<Extent>,
    pub partitions: Vec<PartUsage>,
}

impl UsageMap {
    /// Bytes in the map.
    pub fn used_bytes(&self) -> u64 {
        ranges::total(&self.used)
    }
    /// A map with every byte used.
    pub fn whole(size: u64) -> Self {
        UsageMap {
            size,
            used: if size > 0 {
                vec![Extent::new(0, size)]
            } else {
                vec![]
            },
            partitions: vec![],
        }
    }
}

/// Used ranges (relative to the window) of one filesystem, or why it must be read whole.
fn fs_used(w: &dyn ReadAt) -> (Option<String>, String, Result<Vec<Extent>, String>) {
    let info = match fs::probe(w) {
        Ok(Some(i)) => i,
        Ok(None) => return (None, "read whole".into(), Err("no known filesystem".into())),
        Err(e) => {
            return (
                None,
                "read whole".into(),
                Err(format!("first bytes unreadable: {e}")),
            );
        }
    };
    let name = Some(fs::fs_name(&info.kind).to_string());
    let fs_end = |n: u64| vec![Extent::new(0, n.min(w.len()))];
    match &info.kind {
        FsKind::Ext { .. } => match extalloc::read(w) {
            Ok(a) => (name, "ext block bitmaps".into(), Ok(a.used)),
            Err(e) => (name, "read whole".into(), Err(e)),
        },
        FsKind::Fat { .. } => match FatFs::open(w).and_then(|f| f.used_ranges()) {
            Ok(v) => (
                name,
                "FAT".into(),
                Ok(v.into_iter().map(|(s, l)| Extent::new(s, l)).collect()),
            ),
            Err(e) => (name, "read whole".into(), Err(e.to_string())),
        },
        FsKind::Squashfs { .. } => (
            name,
            "squashfs bytes_used".into(),
            Ok(fs_end(info.size_bytes.div_ceil(BLOCK) * BLOCK)),
        ),
        FsKind::Erofs { .. } => (name, "EROFS size".into(), Ok(fs_end(info.size_bytes))),
    }
}

/// Build the map of `r` (a whole disk or image, `sector_size` as reported for it). With
/// `all`, every byte is used (the partitions are still listed).
pub fn build(r: &dyn ReadAt, sector_size: u32, all: bool) -> UsageMap {
    let size = r.len();
    let mut parts: Vec<(u32, u64, u64)> = Vec::new();
    match table::read_table(r, sector_size) {
        Ok(t) => {
            let ss = t.sector_size;
            for p in &t.partitions {
                if p.kind == EntryKind::Extended {
                    continue;
                }
                let start = p.start_bytes(ss).min(size);
                let len = p.size_bytes(ss).min(size - start);
                if len > 0 {
                    parts.push((p.number, start, len));
                }
            }
        }
        Err(_) => parts.push((0, 0, size)),
    }
    let mut free_per_part: Vec<Vec<Extent>> = Vec::new();
    let mut report = Vec::new();
    for &(number, start, len) in &parts {
        let w = Window::new(r, start, len);
        let (fs, method, used) = if all {
            (
                fs::probe(&w)
                    .ok()
                    .flatten()
                    .map(|i| fs::fs_name(&i.kind).to_string()),
                "all".to_string(),
                Err(String::new()),
            )
        } else {
            fs_used(&w)
        };
        let mut notes = Vec::new();
        let mut free = Vec::new();
        match used {
            Ok(u) => {
                let u = ranges::normalize(u);
                for e in ranges::complement(&u, len) {
                    free.push(Extent::new(start + e.start, e.len));
                }
            }
            Err(why) if !why.is_empty() => notes.push(why),
            Err(_) => {}
        }
        free_per_part.push(free);
        if number == 0 && fs.is_none() {
            // No table and no filesystem: a plain blob, read whole, nothing to list.
            continue;
        }
        report.push(PartUsage {
            number,
            start,
            size: len,
            fs,
            method,
            mapped_bytes: 0,
            notes,
        });
    }
    // A byte is only free if no other partition covers it (overlapping tables stay safe).
    let mut free = Vec::new();
    for (i, f) in free_per_part.iter().enumerate() {
        let others = ranges::normalize(
            parts
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, &(_, s, l))| Extent::new(s, l))
                .collect(),
        );
        free.extend(ranges::subtract(
            &ranges::normalize(f.clone()),
            &others,
            size,
        ));
    }
    let free = ranges::normalize(free);
    let used = ranges::align_out(&ranges::complement(&free, size), BLOCK, size);
    for p in &mut report {
        p.mapped_bytes = ranges::total(&ranges::intersect(&used, &[Extent::new(p.start, p.size)]));
    }
    UsageMap {
        size,
        used,
        partitions: report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_without_table_is_read_whole() {
        let img = vec![7u8; 10_000];
        let m = build(&img, 512, false);
        assert_eq!(m.used, vec![Extent::new(0, 10_000)]);
        assert!(m.partitions.is_empty());
        assert_eq!(m.used_bytes(), 10_000);
    }

    #[test]
    fn squashfs_partition_tail_is_free() {
        // A bare squashfs (no table): used up to bytes_used rounded to 4 KiB.
        let mut img = vec![0u8; 64 * 1024];
        img[..4].copy_from_slice(b"hsqs");
        img[12..16].copy_from_slice(&131072u32.to_le_bytes());
        img[20..22].copy_from_slice(&3u16.to_le_bytes());
        img[22..24].copy_from_slice(&17u16.to_le_bytes());
        img[28..30].copy_from_slice(&4u16.to_le_bytes());
        img[40..48].copy_from_slice(&5000u64.to_le_bytes());
        let m = build(&img, 512, false);
        assert_eq!(m.used, vec![Extent::new(0, 8192)]);
        assert_eq!(m.partitions[0].method, "squashfs bytes_used");
        let all = build(&img, 512, true);
        assert_eq!(all.used, vec![Extent::new(0, 65536)]);
    }
}

//! ext2/3/4 allocation: which bytes of a partition the filesystem uses, from its block
//! bitmaps, for used-blocks-only imaging.
//!
//! Read: the superblock, every group descriptor (classic GDT or `meta_bg` placement, 32- or
//! 64-byte descriptors), and each group's block bitmap. Groups flagged `BLOCK_UNINIT` (honoured
//! only with `gdt_csum`/`metadata_csum`, as the kernel does) have no bitmap on disk: their
//! used blocks are computed as the kernel's `ext4_init_block_bitmap` does — the superblock and
//! descriptor backups (sparse_super, sparse_super2), the reserved GDT blocks, and the group's
//! own bitmaps and inode table. On top of that, the bitmaps and inode tables of *every* group
//! are always counted as used, wherever `flex_bg` put them. Bitmap bits count clusters
//! (`bigalloc`). A bitmap that cannot be read or points outside the filesystem makes its whole
//! group count as used (with a note): a read error never makes data look free.

use super::ranges::{Extent, normalize};
use crate::io::ReadAt;

const SB_OFF: u64 = 1024;
const COMPAT_RESIZE_INODE: u32 = 0x10;
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_BLOCK_UNINIT: u16 = 0x2;
/// Refuse filesystems whose descriptor table would exceed this (hostile superblock).
const MAX_GDT_BYTES: u64 = 256 << 20;

/// What the bitmaps say about one ext filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtAllocation {
    /// Bytes of the filesystem (blocks × block size).
    pub fs_bytes: u64,
    pub block_size: u64,
    /// Used byte ranges relative to the partition start, normalized.
    pub used: Vec<Extent>,
    /// Groups that had to be counted whole, and why.
    pub notes: Vec<String>,
}

fn u16_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 2)
        .and_then(|s| s.try_into().ok())
        .map(|a: [u8; 2]| u64::from(u16::from_le_bytes(a)))
        .unwrap_or(0)
}
fn u32_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 4)
        .and_then(|s| s.try_into().ok())
        .map(|a: [u8; 4]| u64::from(u32::from_le_bytes(a)))
        .unwrap_or(0)
}

pub(super) struct Geometry {
    pub(super) block: u64,
    pub(super) blocks: u64,
    first_data_block: u64,
    blocks_per_group: u64,
    clusters_per_group: u64,
    cluster_ratio: u64,
    pub(super) groups: u64,
    desc_size: u64,
    pub(super) inodes_per_group: u64,
    pub(super) inode_size: u64,
    reserved_gdt: u64,
    first_meta_bg: u64,
    compat: u32,
    pub(super) incompat: u32,
    ro_compat: u32,
    backup_bgs: [u64; 2],
}

impl Geometry {
    fn parse(sb: &[u8]) -> Result<Self, String> {
        if u16_at(sb, 0x38) != 0xEF53 {
            return Err("no ext superblock (magic 0xEF53 missing)".into());
        }
        let log = u32_at(sb, 0x18);
        let log_cluster = u32_at(sb, 0x1C);
        if log > 6 || log_cluster > 16 + log {
            return Err(format!("implausible block size (log {log})"));
        }
        let block = 1024u64 << log;
        let compat = u32_at(sb, 0x5C) as u32;
        let incompat = u32_at(sb, 0x60) as u32;
        let ro_compat = u32_at(sb, 0x64) as u32;
        let mut blocks = u32_at(sb, 0x04);
        if incompat & INCOMPAT_64BIT != 0 {
            blocks |= u32_at(sb, 0x150) << 32;
        }
        let bigalloc = ro_compat & RO_COMPAT_BIGALLOC != 0;
        let cluster_ratio = if bigalloc {
            1u64 << (log_cluster.saturating_sub(log)).min(30)
        } else {
            1
        };
        let first_data_block = u32_at(sb, 0x14);
        let blocks_per_group = u32_at(sb, 0x20);
        let clusters_per_group = if bigalloc {
            u32_at(sb, 0x24)
        } else {
            blocks_per_group
        };
        if blocks == 0 || blocks_per_group == 0 || clusters_per_group == 0 {
            return Err("superblock has zero blocks or blocks per group".into());
        }
        if clusters_per_group > block * 8 {
            return Err(format!(
                "{clusters_per_group} clusters per group do not fit one {block}-byte bitmap"
            ));
        }
        if first_data_block >= blocks {
            return Err("first data block lies past the end".into());
        }
        let groups = (blocks - first_data_block).div_ceil(blocks_per_group);
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            u16_at(sb, 0xFE)
        } else {
            32
        };
        if !(32..=block).contains(&desc_size) || !desc_size.is_power_of_two() {
            return Err(format!("group descriptor size {desc_size}"));
        }
        if groups.saturating_mul(desc_size) > MAX_GDT_BYTES {
            return Err(format!(
                "{groups} block groups is more than this tool accepts"
            ));
        }
        let inode_size = match u16_at(sb, 0x58) {
            0 => 128,
            n => n,
        };
        Ok(Geometry {
            block,
            blocks,
            first_data_block,
            blocks_per_group,
            clusters_per_group,
            cluster_ratio,
            groups,
            desc_size,
            inodes_per_group: u32_at(sb, 0x28),
            inode_size,
            reserved_gdt: if compat & COMPAT_RESIZE_INODE != 0 {
                u16_at(sb, 0xCE)
            } else {
                0
            },
            first_meta_bg: u32_at(sb, 0x104),
            compat,
            incompat,
            ro_compat,
            backup_bgs: [u32_at(sb, 0x24C), u32_at(sb, 0x250)],
        })
    }

    fn group_start(&self, g: u64) -> u64 {
        self.first_data_block + g * self.blocks_per_group
    }

    fn group_blocks(&self, g: u64) -> u64 {
        (self.blocks - self.group_start(g)).min(self.blocks_per_group)
    }

    fn has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return self.backup_bgs.contains(&g);
        }
        if self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        if g == 1 {
            return true;
        }
        [3u64, 5, 7].iter().any(|&b| {
            let mut p = b;
            while p < g {
                p = p.saturating_mul(b);
            }
            p == g
        })
    }

    fn descs_per_block(&self) -> u64 {
        self.block / self.desc_size
    }

    fn gdt_blocks(&self) -> u64 {
        self.groups.div_ceil(self.descs_per_block())
    }

    fn meta_bg(&self) -> bool {
        self.incompat & INCOMPAT_META_BG != 0
    }

    /// Block holding descriptor block `i` (the primary copy).
    fn desc_block(&self, i: u64) -> u64 {
        if !self.meta_bg() || i < self.first_meta_bg {
            self.first_data_block + 1 + i
        } else {
            let g0 = i * self.descs_per_block();
            self.group_start(g0) + u64::from(self.has_super(g0))
        }
    }

    fn csum(&self) -> bool {
        self.ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0
    }

    fn itable_blocks(&self) -> u64 {
        (self.inodes_per_group * self.inode_size).div_ceil(self.block)
    }
}

pub(super) struct Desc {
    pub(super) block_bitmap: u64,
    pub(super) inode_bitmap: u64,
    pub(super) inode_table: u64,
    pub(super) flags: u16,
}

fn parse_desc(b: &[u8], is64: bool) -> Desc {
    let hi = |o: usize| if is64 { u32_at(b, o) << 32 } else { 0 };
    Desc {
        block_bitmap: u32_at(b, 0x0) | hi(0x20),
        inode_bitmap: u32_at(b, 0x4) | hi(0x24),
        inode_table: u32_at(b, 0x8) | hi(0x28),
        flags: u16_at(b, 0x12) as u16,
    }
}

/// The geometry and group descriptors of the ext filesystem at the start of `r`.
pub(super) fn open(r: &dyn ReadAt) -> Result<(Geometry, Vec<Desc>), String> {
    let mut sb = vec![0u8; 1024];
    r.read_exact_at(&mut sb, SB_OFF)
        .map_err(|e| format!("superblock unreadable: {e}"))?;
    let g = Geometry::parse(&sb)?;
    let bs = g.block;
    let is64 = g.incompat & INCOMPAT_64BIT != 0;
    let mut descs = Vec::with_capacity(usize::try_from(g.groups).unwrap_or(0));
    let dpb = g.descs_per_block();
    let mut blockbuf = vec![0u8; usize::try_from(bs).map_err(|e| e.to_string())?];
    for i in 0..g.gdt_blocks() {
        let blk = g.desc_block(i);
        r.read_exact_at(&mut blockbuf, blk * bs)
            .map_err(|e| format!("group descriptors at block {blk} unreadable: {e}"))?;
        for k in 0..dpb {
            if descs.len() as u64 >= g.groups {
                break;
            }
            let o = usize::try_from(k * g.desc_size).unwrap_or(usize::MAX);
            let d = blockbuf
                .get(o..o.saturating_add(g.desc_size as usize))
                .ok_or("descriptor outside its block")?;
            descs.push(parse_desc(d, is64));
        }
    }
    Ok((g, descs))
}

/// Read the allocation of the ext filesystem at the start of `r` (a partition window).
pub fn read(r: &dyn ReadAt) -> Result<ExtAllocation, String> {
    let (g, descs) = open(r)?;
    let bs = g.block;
    let dpb = g.descs_per_block();
    let blockbuf_len = usize::try_from(bs).map_err(|e| e.to_string())?;
    let mut used: Vec<Extent> = Vec::new();
    let mut notes = Vec::new();
    let blk = |b: u64, n: u64| Extent::new(b.saturating_mul(bs), n.saturating_mul(bs));
    // Everything before the first data block (the boot block on 1 KiB filesystems), the
    // primary superblock and descriptor table with its reserved growth blocks.
    used.push(blk(0, g.first_data_block + 1));
    used.push(blk(g.first_data_block + 1, g.gdt_blocks() + g.reserved_gdt));
    let itb = g.itable_blocks();
    let in_fs = |b: u64, n: u64| b >= g.first_data_block && b.saturating_add(n) <= g.blocks;
    for d in &descs {
        for (b, n) in [
            (d.block_bitmap, 1),
            (d.inode_bitmap, 1),
            (d.inode_table, itb),
        ] {
            if in_fs(b, n) {
                used.push(blk(b, n));
            }
        }
    }
    if g.meta_bg() {
        for i in g.first_meta_bg..g.gdt_blocks() {
            let g0 = i * dpb;
            for gg in [g0, g0 + 1, g0 + dpb - 1] {
                if gg < g.groups {
                    used.push(blk(g.group_start(gg) + u64::from(g.has_super(gg)), 1));
                }
            }
        }
    }
    let ratio = g.cluster_ratio;
    let mut bitmap = vec![0u8; blockbuf_len];
    for (gi, d) in descs.iter().enumerate() {
        let gi = gi as u64;
        let start = g.group_start(gi);
        let nblocks = g.group_blocks(gi);
        let whole = |why: String, used: &mut Vec<Extent>, notes: &mut Vec<String>| {
            notes.push(format!("block group {gi}: {why}; counted as used"));
            used.push(blk(start, nblocks));
        };
        if g.csum() && d.flags & BG_BLOCK_UNINIT != 0 {
            if g.meta_bg() {
                whole(
                    "uninitialised group on a meta_bg filesystem".into(),
                    &mut used,
                    &mut notes,
                );
                continue;
            }
            if g.has_super(gi) {
                used.push(blk(start, 1 + g.gdt_blocks() + g.reserved_gdt));
            }
            continue;
        }
        if !in_fs(d.block_bitmap, 1) {
            whole(
                format!(
                    "block bitmap at block {} is outside the filesystem",
                    d.block_bitmap
                ),
                &mut used,
                &mut notes,
            );
            continue;
        }
        if let Err(e) = r.read_exact_at(&mut bitmap, d.block_bitmap * bs) {
            whole(
                format!("block bitmap at block {} unreadable ({e})", d.block_bitmap),
                &mut used,
                &mut notes,
            );
            continue;
        }
        let nclusters = nblocks.div_ceil(ratio).min(g.clusters_per_group);
        let mut run: Option<u64> = None;
        for c in 0..=nclusters {
            let set = c < nclusters
                && bitmap
                    .get((c / 8) as usize)
                    .is_some_and(|byte| byte & (1 << (c % 8)) != 0);
            match (set, run) {
                (true, None) => run = Some(c),
                (false, Some(s)) => {
                    let b = start + s * ratio;
                    let n = ((c - s) * ratio).min(g.blocks - b);
                    used.push(blk(b, n));
                    run = None;
                }
                _ => {}
            }
        }
    }
    let fs_bytes = g.blocks.saturating_mul(bs);
    let used = normalize(
        used.into_iter()
            .map(|e| Extent::new(e.start, e.len.min(fs_bytes.saturating_sub(e.start))))
            .collect(),
    );
    Ok(ExtAllocation {
        fs_bytes,
        block_size: bs,
        used,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let mut sb = vec![0u8; 1024];
        sb[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[0x18] = 2;
        sb[0x04..0x08].copy_from_slice(&(32768u32 * 30).to_le_bytes());
        sb[0x20..0x24].copy_from_slice(&32768u32.to_le_bytes());
        sb[0x64] = RO_COMPAT_SPARSE_SUPER as u8;
        let g = Geometry::parse(&sb).unwrap();
        let with: Vec<u64> = (0..30).filter(|&i| g.has_super(i)).collect();
        assert_eq!(with, [0, 1, 3, 5, 7, 9, 25, 27]);
        assert_eq!(g.groups, 30);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(read(&vec![0u8; 4096]).is_err());
        let mut img = vec![0u8; 4096];
        img[1024 + 0x38..1024 + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        img[1024 + 0x18] = 9;
        assert!(read(&img).is_err());
        img[1024 + 0x18] = 2;
        img[1024 + 0x04] = 100; // 100 blocks, 0 per group
        assert!(read(&img).is_err());
        img[1024 + 0x20] = 8; // 8 per group, GDT past the end
        assert!(read(&img).is_err());
    }
}

//! ext2/3/4 probe: reads the superblock at byte 1024 of a partition (magic 0xEF53) for
//! block size, block counts (64-bit when INCOMPAT_64BIT), free blocks, UUID, label, the
//! ext2/3/4 generation implied by the feature flags, and feature bits this tool does not
//! know. Pure and panic-free on any input.

use super::{FsInfo, FsKind};

/// Byte offset of the superblock inside the partition.
pub const SUPERBLOCK_OFFSET: usize = 1024;
/// `s_magic`.
pub const MAGIC: u16 = 0xEF53;
/// Largest `s_log_block_size` accepted (block size 1 KiB << 6 = 64 KiB, the kernel's limit).
pub const MAX_LOG_BLOCK_SIZE: u32 = 6;

// Superblock field offsets (relative to the superblock).
const S_BLOCKS_COUNT_LO: usize = 0x04;
const S_FREE_BLOCKS_COUNT_LO: usize = 0x0C;
const S_LOG_BLOCK_SIZE: usize = 0x18;
const S_MAGIC: usize = 0x38;
const S_FEATURE_COMPAT: usize = 0x5C;
const S_FEATURE_INCOMPAT: usize = 0x60;
const S_FEATURE_RO_COMPAT: usize = 0x64;
const S_UUID: usize = 0x68;
const S_VOLUME_NAME: usize = 0x78;
const S_BLOCKS_COUNT_HI: usize = 0x150;
const S_FREE_BLOCKS_COUNT_HI: usize = 0x158;

/// compat: has a journal (ext3 and later).
pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;

// incompat flags.
pub const INCOMPAT_COMPRESSION: u32 = 0x0001;
pub const INCOMPAT_FILETYPE: u32 = 0x0002;
pub const INCOMPAT_RECOVER: u32 = 0x0004;
pub const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
pub const INCOMPAT_META_BG: u32 = 0x0010;
pub const INCOMPAT_EXTENTS: u32 = 0x0040;
pub const INCOMPAT_64BIT: u32 = 0x0080;
pub const INCOMPAT_MMP: u32 = 0x0100;
pub const INCOMPAT_FLEX_BG: u32 = 0x0200;
pub const INCOMPAT_EA_INODE: u32 = 0x0400;
pub const INCOMPAT_DIRDATA: u32 = 0x1000;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
pub const INCOMPAT_LARGEDIR: u32 = 0x4000;
pub const INCOMPAT_INLINE_DATA: u32 = 0x8000;
pub const INCOMPAT_ENCRYPT: u32 = 0x1_0000;
pub const INCOMPAT_CASEFOLD: u32 = 0x2_0000;
/// Every incompat bit this module knows by name.
pub const INCOMPAT_KNOWN: u32 = INCOMPAT_COMPRESSION
    | INCOMPAT_FILETYPE
    | INCOMPAT_RECOVER
    | INCOMPAT_JOURNAL_DEV
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_DIRDATA
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT
    | INCOMPAT_CASEFOLD;
/// incompat bits an ext3 driver understands; anything else makes it ext4.
const INCOMPAT_EXT3: u32 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;

// ro_compat flags.
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
pub const RO_COMPAT_BTREE_DIR: u32 = 0x0004;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x0008;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x0020;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
pub const RO_COMPAT_HAS_SNAPSHOT: u32 = 0x0080;
pub const RO_COMPAT_QUOTA: u32 = 0x0100;
pub const RO_COMPAT_BIGALLOC: u32 = 0x0200;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
pub const RO_COMPAT_REPLICA: u32 = 0x0800;
pub const RO_COMPAT_READONLY: u32 = 0x1000;
pub const RO_COMPAT_PROJECT: u32 = 0x2000;
pub const RO_COMPAT_SHARED_BLOCKS: u32 = 0x4000;
pub const RO_COMPAT_VERITY: u32 = 0x8000;
pub const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x1_0000;
/// Every ro_compat bit this module knows by name.
pub const RO_COMPAT_KNOWN: u32 = 0x1_FFFF;
/// ro_compat bits an ext3 driver understands; anything else makes it ext4.
const RO_COMPAT_EXT3: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let a: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(a))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let a: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(a))
}

/// Format 16 bytes as a lower-case dashed UUID (byte order as stored).
pub(crate) fn uuid_string(b: &[u8]) -> Option<String> {
    if b.len() != 16 || b.iter().all(|&x| x == 0) {
        return None;
    }
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    Some(s)
}

/// A fixed-size, NUL-padded label: bytes up to the first NUL, lossy UTF-8, trimmed;
/// `None` when empty.
pub(crate) fn label_string(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(b.get(..end)?).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// ext generation from the feature words: 4 if anything beyond ext3's incompat/ro_compat
/// set is on, else 3 with a journal, else 2.
pub fn version_from_features(compat: u32, incompat: u32, ro_compat: u32) -> u8 {
    if incompat & !INCOMPAT_EXT3 != 0 || ro_compat & !RO_COMPAT_EXT3 != 0 {
        4
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        3
    } else {
        2
    }
}

/// Unknown incompat/ro_compat bits as `incompat:0x…`/`ro_compat:0x…`, one per bit.
pub fn unknown_features(incompat: u32, ro_compat: u32) -> Vec<String> {
    let mut out = Vec::new();
    for bit in 0..32 {
        let m = 1u32 << bit;
        if incompat & m != 0 && INCOMPAT_KNOWN & m == 0 {
            out.push(format!("incompat:{m:#010x}"));
        }
    }
    for bit in 0..32 {
        let m = 1u32 << bit;
        if ro_compat & m != 0 && RO_COMPAT_KNOWN & m == 0 {
            out.push(format!("ro_compat:{m:#010x}"));
        }
    }
    out
}

/// Probe the first bytes of a partition for ext2/3/4. `head` needs at least the first
/// 1024 + 0x15C bytes (2048 is plenty). External journal devices (INCOMPAT_JOURNAL_DEV)
/// are not filesystems and give `None`.
pub fn probe(head: &[u8]) -> Option<FsInfo> {
    let sb = head.get(SUPERBLOCK_OFFSET..)?;
    if u16_at(sb, S_MAGIC)? != MAGIC {
        return None;
    }
    let log = u32_at(sb, S_LOG_BLOCK_SIZE)?;
    if log > MAX_LOG_BLOCK_SIZE {
        return None;
    }
    let block_size = 1024u32 << log;
    let compat = u32_at(sb, S_FEATURE_COMPAT)?;
    let incompat = u32_at(sb, S_FEATURE_INCOMPAT)?;
    let ro_compat = u32_at(sb, S_FEATURE_RO_COMPAT)?;
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return None;
    }
    let mut blocks = u64::from(u32_at(sb, S_BLOCKS_COUNT_LO)?);
    let mut free = u64::from(u32_at(sb, S_FREE_BLOCKS_COUNT_LO)?);
    if incompat & INCOMPAT_64BIT != 0 {
        blocks |= u64::from(u32_at(sb, S_BLOCKS_COUNT_HI)?) << 32;
        free |= u64::from(u32_at(sb, S_FREE_BLOCKS_COUNT_HI)?) << 32;
    }
    if blocks == 0 {
        return None;
    }
    let bs = u64::from(block_size);
    Some(FsInfo {
        kind: FsKind::Ext {
            version: version_from_features(compat, incompat, ro_compat),
            block_size,
            blocks,
            free_blocks: free,
            unknown_features: unknown_features(incompat, ro_compat),
        },
        label: label_string(sb.get(S_VOLUME_NAME..S_VOLUME_NAME + 16)?),
        uuid: uuid_string(sb.get(S_UUID..S_UUID + 16)?),
        size_bytes: blocks.saturating_mul(bs),
        used_bytes: Some(blocks.saturating_sub(free).saturating_mul(bs)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fix {
        log: u32,
        blocks: u64,
        free: u64,
        compat: u32,
        incompat: u32,
        ro_compat: u32,
        label: &'static [u8],
    }

    fn build(f: &Fix) -> Vec<u8> {
        let mut h = vec![0u8; 2048];
        let sb = 1024;
        let put32 = |h: &mut Vec<u8>, o: usize, v: u32| {
            h[sb + o..sb + o + 4].copy_from_slice(&v.to_le_bytes())
        };
        put32(&mut h, S_BLOCKS_COUNT_LO, f.blocks as u32);
        put32(&mut h, S_FREE_BLOCKS_COUNT_LO, f.free as u32);
        put32(&mut h, S_BLOCKS_COUNT_HI, (f.blocks >> 32) as u32);
        put32(&mut h, S_FREE_BLOCKS_COUNT_HI, (f.free >> 32) as u32);
        put32(&mut h, S_LOG_BLOCK_SIZE, f.log);
        put32(&mut h, S_FEATURE_COMPAT, f.compat);
        put32(&mut h, S_FEATURE_INCOMPAT, f.incompat);
        put32(&mut h, S_FEATURE_RO_COMPAT, f.ro_compat);
        h[sb + S_MAGIC..sb + S_MAGIC + 2].copy_from_slice(&MAGIC.to_le_bytes());
        for (i, b) in (0u8..16).enumerate() {
            h[sb + S_UUID + i] = 0xa0 + b;
        }
        h[sb + S_VOLUME_NAME..sb + S_VOLUME_NAME + f.label.len()].copy_from_slice(f.label);
        h
    }

    fn ext4() -> Fix {
        Fix {
            log: 2,
            blocks: 24576,
            free: 20000,
            compat: COMPAT_HAS_JOURNAL,
            incompat: INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG,
            ro_compat: RO_COMPAT_SPARSE_SUPER | RO_COMPAT_METADATA_CSUM,
            label: b"hassos-overlay",
        }
    }

    #[test]
    fn ext4_overlay() {
        let fs = probe(&build(&ext4())).unwrap();
        assert_eq!(fs.label.as_deref(), Some("hassos-overlay"));
        assert_eq!(
            fs.uuid.as_deref(),
            Some("a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf")
        );
        assert_eq!(fs.size_bytes, 24576 * 4096);
        assert_eq!(fs.used_bytes, Some(4576 * 4096));
        match fs.kind {
            FsKind::Ext {
                version,
                block_size,
                blocks,
                free_blocks,
                unknown_features,
            } => {
                assert_eq!(
                    (version, block_size, blocks, free_blocks),
                    (4, 4096, 24576, 20000)
                );
                assert!(unknown_features.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            super::super::fs_name(&probe(&build(&ext4())).unwrap().kind),
            "ext4"
        );
    }

    #[test]
    fn generations() {
        let mut f = ext4();
        f.incompat = INCOMPAT_FILETYPE;
        f.ro_compat = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE;
        let v = |f: &Fix| match probe(&build(f)).unwrap().kind {
            FsKind::Ext { version, .. } => version,
            _ => 0,
        };
        assert_eq!(v(&f), 3);
        f.compat = 0;
        assert_eq!(v(&f), 2);
        f.ro_compat |= RO_COMPAT_HUGE_FILE;
        assert_eq!(v(&f), 4);
    }

    #[test]
    fn sixty_four_bit_counts() {
        let mut f = ext4();
        f.blocks = 0x1_0000_0010;
        f.free = 0x1_0000_0000;
        let fs = probe(&build(&f)).unwrap();
        // Without INCOMPAT_64BIT the high words are ignored.
        assert_eq!(fs.size_bytes, 0x10 * 4096);
        f.incompat |= INCOMPAT_64BIT;
        let fs = probe(&build(&f)).unwrap();
        assert_eq!(fs.size_bytes, 0x1_0000_0010 * 4096);
        assert_eq!(fs.used_bytes, Some(0x10 * 4096));
    }

    #[test]
    fn unknown_bits_listed() {
        let mut f = ext4();
        f.incompat |= 0x0100_0000;
        f.ro_compat |= 0x0004_0000;
        match probe(&build(&f)).unwrap().kind {
            FsKind::Ext {
                unknown_features, ..
            } => assert_eq!(
                unknown_features,
                ["incompat:0x01000000", "ro_compat:0x00040000"]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_and_edge_values() {
        let mut f = ext4();
        f.log = 7;
        assert!(probe(&build(&f)).is_none());
        f.log = u32::MAX;
        assert!(probe(&build(&f)).is_none());
        let mut f = ext4();
        f.blocks = 0;
        assert!(probe(&build(&f)).is_none());
        let mut f = ext4();
        f.incompat |= INCOMPAT_JOURNAL_DEV;
        assert!(probe(&build(&f)).is_none());
        let mut f = ext4();
        f.free = 99_999; // more free than total: used saturates at 0
        assert_eq!(probe(&build(&f)).unwrap().used_bytes, Some(0));
        let mut f = ext4();
        f.label = b"";
        assert_eq!(probe(&build(&f)).unwrap().label, None);
        let mut h = build(&ext4());
        h[1024 + S_MAGIC] = 0;
        assert!(probe(&h).is_none());
    }

    #[test]
    fn truncated_never_panics() {
        let mut f = ext4();
        f.incompat |= INCOMPAT_64BIT;
        let h = build(&f);
        for n in 0..h.len() {
            let _ = probe(&h[..n]);
        }
        assert!(probe(&h[..1024 + 0x100]).is_none()); // 64-bit fields missing
        assert!(probe(&h[..1024 + 0x15C]).is_some());
    }
}

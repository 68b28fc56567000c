//! EROFS probe: the superblock at byte 1024 of a partition (magic 0xE0F5E1E2) for block
//! size, block count (48-bit when INCOMPAT_48BIT), UUID and volume name. HAOS rootfs
//! slots hold EROFS since 13.0. Field offsets follow the kernel's `erofs_fs.h`
//! (`struct erofs_super_block`). The superblock checksum (crc32c) is not verified.
//! Pure and panic-free on any input.

use super::ext::{label_string, uuid_string};
use super::{FsInfo, FsKind};

/// Byte offset of the superblock inside the partition.
pub const SUPERBLOCK_OFFSET: usize = 1024;
/// `magic`, little-endian.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// incompat: block count has 16 more bits in the `blocks_hi` field at offset 14.
pub const INCOMPAT_48BIT: u32 = 0x0000_0080;
/// Smallest and largest `blkszbits` accepted (512 B to 64 KiB blocks).
pub const BLKSZBITS: std::ops::RangeInclusive<u8> = 9..=16;

// Offsets relative to the superblock.
const OFF_BLKSZBITS: usize = 12;
const OFF_BLOCKS_HI: usize = 14;
const OFF_BLOCKS_LO: usize = 36;
const OFF_UUID: usize = 48;
const OFF_VOLUME_NAME: usize = 64;
const OFF_FEATURE_INCOMPAT: usize = 80;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let a: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(a))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let a: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(a))
}

/// Probe the first bytes of a partition for EROFS (needs the first 1024 + 84 bytes).
pub fn probe(head: &[u8]) -> Option<FsInfo> {
    let sb = head.get(SUPERBLOCK_OFFSET..)?;
    if u32_at(sb, 0)? != MAGIC {
        return None;
    }
    let bits = *sb.get(OFF_BLKSZBITS)?;
    if !BLKSZBITS.contains(&bits) {
        return None;
    }
    let block_size = 1u32 << bits;
    let incompat = u32_at(sb, OFF_FEATURE_INCOMPAT)?;
    let mut blocks = u64::from(u32_at(sb, OFF_BLOCKS_LO)?);
    if incompat & INCOMPAT_48BIT != 0 {
        blocks |= u64::from(u16_at(sb, OFF_BLOCKS_HI)?) << 32;
    }
    if blocks == 0 {
        return None;
    }
    // At most 2^48 blocks of 2^16 bytes: fits in u64.
    let size = blocks.checked_shl(u32::from(bits))?;
    Some(FsInfo {
        kind: FsKind::Erofs { block_size },
        label: label_string(sb.get(OFF_VOLUME_NAME..OFF_VOLUME_NAME + 16)?),
        uuid: uuid_string(sb.get(OFF_UUID..OFF_UUID + 16)?),
        size_bytes: size,
        used_bytes: Some(size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(bits: u8, blocks: u32, label: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        let sb = 1024;
        h[sb..sb + 4].copy_from_slice(&MAGIC.to_le_bytes());
        h[sb + OFF_BLKSZBITS] = bits;
        h[sb + OFF_BLOCKS_LO..sb + OFF_BLOCKS_LO + 4].copy_from_slice(&blocks.to_le_bytes());
        for i in 0..16 {
            h[sb + OFF_UUID + i] = 0x10 + i as u8;
        }
        h[sb + OFF_VOLUME_NAME..sb + OFF_VOLUME_NAME + label.len()].copy_from_slice(label);
        h
    }

    #[test]
    fn rootfs_like() {
        let fs = probe(&build(12, 50_000, b"rootfs")).unwrap();
        assert_eq!(fs.kind, FsKind::Erofs { block_size: 4096 });
        assert_eq!(fs.size_bytes, 50_000 * 4096);
        assert_eq!(fs.used_bytes, Some(50_000 * 4096));
        assert_eq!(fs.label.as_deref(), Some("rootfs"));
        assert_eq!(
            fs.uuid.as_deref(),
            Some("10111213-1415-1617-1819-1a1b1c1d1e1f")
        );
        assert_eq!(super::super::fs_name(&fs.kind), "erofs");
        // 16-byte name with no NUL.
        let fs = probe(&build(12, 1, b"0123456789abcdef")).unwrap();
        assert_eq!(fs.label.as_deref(), Some("0123456789abcdef"));
        assert_eq!(probe(&build(12, 1, b"")).unwrap().label, None);
    }

    #[test]
    fn blocks_48bit() {
        let mut h = build(12, 7, b"");
        h[1024 + OFF_BLOCKS_HI] = 1;
        assert_eq!(probe(&h).unwrap().size_bytes, 7 * 4096);
        h[1024 + OFF_FEATURE_INCOMPAT] = INCOMPAT_48BIT as u8;
        assert_eq!(probe(&h).unwrap().size_bytes, ((1u64 << 32) + 7) * 4096);
        h[1024 + OFF_BLOCKS_HI..1024 + OFF_BLOCKS_HI + 2].fill(0xFF);
        h[1024 + OFF_BLKSZBITS] = 16;
        assert!(probe(&h).is_some());
    }

    #[test]
    fn rejects() {
        assert!(probe(&build(8, 10, b"")).is_none());
        assert!(probe(&build(17, 10, b"")).is_none());
        assert!(probe(&build(255, 10, b"")).is_none());
        assert!(probe(&build(12, 0, b"")).is_none());
        let mut h = build(12, 10, b"");
        h[1024] ^= 1;
        assert!(probe(&h).is_none());
    }

    #[test]
    fn truncated_never_panics() {
        let h = build(12, 10, b"x");
        for n in 0..h.len() {
            let _ = probe(&h[..n]);
        }
        assert!(probe(&h[..1024 + 83]).is_none());
        assert!(probe(&h[..1024 + 84]).is_some());
    }
}

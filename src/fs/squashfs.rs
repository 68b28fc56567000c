//! squashfs 4.0 probe: the superblock at byte 0 of a partition (magic `hsqs`, version 4.0)
//! for compression, block size and `bytes_used`. HAOS kernel slots hold squashfs (LZO) and
//! rootfs slots up to 12.x held squashfs (LZ4). Pure and panic-free on any input.

use super::{FsInfo, FsKind};

/// Little-endian magic `hsqs` at offset 0.
pub const MAGIC: &[u8; 4] = b"hsqs";
/// Size of the squashfs 4.0 superblock.
pub const SUPERBLOCK_LEN: usize = 96;

const OFF_BLOCK_SIZE: usize = 12;
const OFF_COMPRESSION: usize = 20;
const OFF_BLOCK_LOG: usize = 22;
const OFF_VERSION_MAJOR: usize = 28;
const OFF_VERSION_MINOR: usize = 30;
const OFF_BYTES_USED: usize = 40;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let a: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(a))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let a: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(a))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let a: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(a))
}

/// Name of a squashfs compression id (`unknown(N)` for ids this tool does not know).
pub fn compression_name(id: u16) -> String {
    match id {
        1 => "gzip".into(),
        2 => "lzma".into(),
        3 => "lzo".into(),
        4 => "xz".into(),
        5 => "lz4".into(),
        6 => "zstd".into(),
        other => format!("unknown({other})"),
    }
}

/// Probe the first bytes of a partition for squashfs 4.0 (needs the first 96 bytes).
/// The block size must be a power of two in 4 KiB..=1 MiB that matches `block_log`.
pub fn probe(head: &[u8]) -> Option<FsInfo> {
    if head.get(..4)? != MAGIC {
        return None;
    }
    if (
        u16_at(head, OFF_VERSION_MAJOR)?,
        u16_at(head, OFF_VERSION_MINOR)?,
    ) != (4, 0)
    {
        return None;
    }
    let block_size = u32_at(head, OFF_BLOCK_SIZE)?;
    let block_log = u16_at(head, OFF_BLOCK_LOG)?;
    if !(4096..=1 << 20).contains(&block_size)
        || !block_size.is_power_of_two()
        || u32::from(block_log) != block_size.trailing_zeros()
    {
        return None;
    }
    let bytes_used = u64_at(head, OFF_BYTES_USED)?;
    if bytes_used < SUPERBLOCK_LEN as u64 {
        return None;
    }
    Some(FsInfo {
        kind: FsKind::Squashfs {
            compression: compression_name(u16_at(head, OFF_COMPRESSION)?),
            block_size,
        },
        label: None,
        uuid: None,
        size_bytes: bytes_used,
        used_bytes: Some(bytes_used),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(comp: u16, block_size: u32, bytes_used: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[12..16].copy_from_slice(&block_size.to_le_bytes());
        h[20..22].copy_from_slice(&comp.to_le_bytes());
        h[22..24].copy_from_slice(&(block_size.trailing_zeros() as u16).to_le_bytes());
        h[28..30].copy_from_slice(&4u16.to_le_bytes());
        h[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        h
    }

    #[test]
    fn kernel_slot_lzo_128k() {
        let fs = probe(&build(3, 128 * 1024, 12_345_678)).unwrap();
        assert_eq!(
            fs.kind,
            FsKind::Squashfs {
                compression: "lzo".into(),
                block_size: 131_072
            }
        );
        assert_eq!(fs.size_bytes, 12_345_678);
        assert_eq!(fs.used_bytes, Some(12_345_678));
        assert_eq!(super::super::fs_name(&fs.kind), "squashfs");
    }

    #[test]
    fn compression_names() {
        let names: Vec<String> = (0..=7).map(compression_name).collect();
        assert_eq!(
            names,
            [
                "unknown(0)",
                "gzip",
                "lzma",
                "lzo",
                "xz",
                "lz4",
                "zstd",
                "unknown(7)"
            ]
        );
    }

    #[test]
    fn rejects() {
        let mut h = build(5, 4096, 1000);
        h[28] = 3; // squashfs 3.x
        assert!(probe(&h).is_none());
        assert!(probe(&build(5, 4095, 1000)).is_none());
        assert!(probe(&build(5, 2 << 20, 1000)).is_none());
        let mut h = build(5, 65536, 1000);
        h[22] = 15; // block_log mismatch
        assert!(probe(&h).is_none());
        assert!(probe(&build(5, 65536, 10)).is_none());
        let mut h = build(5, 65536, 1000);
        h[0] = b'x';
        assert!(probe(&h).is_none());
    }

    #[test]
    fn truncated_never_panics() {
        let h = build(6, 131_072, 1 << 40);
        for n in 0..=600 {
            let _ = probe(&h[..n]);
        }
        assert!(probe(&h[..47]).is_none());
        assert!(probe(&h[..48]).is_some());
    }
}

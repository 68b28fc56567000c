//! Shared pieces of the lifeboat fuzz targets: the sparse-image input format that lets a
//! few KiB of fuzz input describe a disk image of hundreds of MiB (metadata scattered over
//! the disk, zeros everywhere else), its encoder for the seed tool, and a bounded walk of
//! the FAT reader.
//!
//! # Sparse image format
//!
//! ```text
//! u32 LE  length of the image in 512-byte sectors (bit 31 set: 4096-byte logical sectors)
//! then, repeated until the input ends:
//!   u32 LE  first sector of an extent
//!   u16 LE  extent length in sectors
//!   bytes   the extent's data (sectors * 512 bytes, or fewer if the input ends first)
//! ```
//!
//! Bytes not covered by an extent read as zeros; later extents win where they overlap.
//! Extents past the image length are cut off by the length, as on a truncated disk.

use lifeboat::fs::fat::FatFs;
use lifeboat::io::ReadAt;
use std::io;

/// Sector unit of the sparse format.
pub const SECTOR: u64 = 512;

/// One extent of a [`SparseImage`].
#[derive(Debug, Clone)]
struct Extent {
    start: u64,
    data: Vec<u8>,
}

/// A disk image described by a few extents of data over zeros.
#[derive(Debug, Clone)]
pub struct SparseImage {
    len: u64,
    sector_size: u32,
    extents: Vec<Extent>,
}

impl SparseImage {
    /// Decode the sparse format; any byte string is a valid (if odd) image.
    pub fn decode(input: &[u8]) -> Self {
        let (head, mut rest) = input.split_at(input.len().min(4));
        let mut raw = [0u8; 4];
        raw[..head.len()].copy_from_slice(head);
        let word = u32::from_le_bytes(raw);
        let sector_size = if word & 0x8000_0000 != 0 { 4096 } else { 512 };
        let len = u64::from(word & 0x7fff_ffff) * SECTOR;
        let mut extents = Vec::new();
        while rest.len() >= 6 {
            let start = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
            let sectors = u64::from(u16::from_le_bytes([rest[4], rest[5]]));
            rest = &rest[6..];
            let take = rest.len().min((sectors * SECTOR) as usize);
            extents.push(Extent {
                start: start * SECTOR,
                data: rest[..take].to_vec(),
            });
            rest = &rest[take..];
        }
        Self {
            len,
            sector_size,
            extents,
        }
    }

    /// Encode an image of `len` bytes from `(byte offset, data)` extents. Offsets must be
    /// sector-aligned; data is padded to whole sectors and split into extents of at most
    /// 65535 sectors.
    pub fn encode(len: u64, sector_size: u32, extents: &[(u64, Vec<u8>)]) -> Vec<u8> {
        assert!(len.div_ceil(SECTOR) <= 0x7fff_ffff, "image too large");
        let mut word = len.div_ceil(SECTOR) as u32;
        if sector_size == 4096 {
            word |= 0x8000_0000;
        }
        let mut out = word.to_le_bytes().to_vec();
        for (start, data) in extents {
            assert_eq!(start % SECTOR, 0, "extent start not sector-aligned");
            let mut data = data.clone();
            data.resize(data.len().div_ceil(SECTOR as usize) * SECTOR as usize, 0);
            for (i, chunk) in data.chunks(0xffff * SECTOR as usize).enumerate() {
                let sector = (start + i as u64 * 0xffff * SECTOR) / SECTOR;
                out.extend_from_slice(&(sector as u32).to_le_bytes());
                out.extend_from_slice(&((chunk.len() as u64 / SECTOR) as u16).to_le_bytes());
                out.extend_from_slice(chunk);
            }
        }
        out
    }

    /// Logical sector size the image asks for (512 or 4096).
    pub fn sector_size(&self) -> u32 {
        self.sector_size
    }
}

impl ReadAt for SparseImage {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"))?;
        buf.fill(0);
        for x in &self.extents {
            let x_end = x.start + x.data.len() as u64;
            let (lo, hi) = (offset.max(x.start), end.min(x_end));
            if lo < hi {
                let n = (hi - lo) as usize;
                let (b, s) = ((lo - offset) as usize, (lo - x.start) as usize);
                buf[b..b + n].copy_from_slice(&x.data[s..s + n]);
            }
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// Walk a FAT volume the way a curious user would: list directories (depth and count
/// bounded) and stat and read the first files they list, up to `max_file` bytes each.
/// Every path lookup lists each directory on the way (a directory may hold 65536 entries),
/// so lookups are capped to keep one run in milliseconds. Errors are fine; only panics matter.
pub fn walk_fat(fs: &FatFs<'_>, max_file: u64) {
    let _ = fs.info();
    let _ = fs.volume_label();
    let mut stack = vec![(String::from("/"), 0u32)];
    let (mut dirs, mut lookups) = (0usize, 0usize);
    while let Some((dir, depth)) = stack.pop() {
        dirs += 1;
        if dirs > 16 {
            return;
        }
        let Ok(entries) = fs.read_dir(&dir) else {
            continue;
        };
        for e in entries.iter().take(64) {
            let path = if dir == "/" {
                format!("/{}", e.name)
            } else {
                format!("{dir}/{}", e.name)
            };
            if e.is_dir {
                if depth < 8 && e.name != "." && e.name != ".." {
                    stack.push((path, depth + 1));
                }
            } else if lookups < 12 {
                lookups += 1;
                let _ = fs.metadata(&path);
                let _ = fs.read_file(&path, max_file);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_round_trip() {
        let enc = SparseImage::encode(1 << 20, 512, &[(1024, vec![1, 2, 3]), (4096, vec![9; 600])]);
        let img = SparseImage::decode(&enc);
        assert_eq!(img.len(), 1 << 20);
        let mut b = [0xAAu8; 8];
        img.read_exact_at(&mut b, 1022).unwrap();
        assert_eq!(b, [0, 0, 1, 2, 3, 0, 0, 0]);
        let mut b = [0u8; 4];
        img.read_exact_at(&mut b, 4096 + 598).unwrap();
        assert_eq!(b, [9, 9, 0, 0]);
        assert!(img.read_exact_at(&mut b, (1 << 20) - 2).is_err());
        assert!(img.read_exact_at(&mut b, u64::MAX - 1).is_err());
    }
}

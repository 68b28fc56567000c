//! Read one file by path from a squashfs 4.0 image, offline and without mounting.
//!
//! HAOS up to 12.x keeps each slot's root filesystem in squashfs (LZ4). [`read_file`]
//! resolves an absolute path component by component (following symlinks, at most
//! [`MAX_SYMLINKS`](super::erofs_read::MAX_SYMLINKS)) and returns the file's bytes, refusing
//! files larger than the caller's limit.
//!
//! A minimal reader of our own: superblock, metadata blocks, inodes (basic and extended
//! directories, files and symlinks), the directory table, the fragment table and data blocks
//! (including sparse blocks). Decompression: gzip (zlib), LZMA, XZ, LZ4 and Zstandard through
//! pure-Rust crates; LZO is reported as unsupported. Every read is bounded by the image and
//! by the format's own limits (8 KiB metadata blocks, at most 1 MiB data blocks).

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::io::Read;

pub use super::erofs_read::ReadError;
use super::erofs_read::{MAX_LINK_LEN, WalkError, check_regular, walk, work_budget};
use crate::io::ReadAt;

/// Read the regular file at `path` (absolute; a relative path is taken from the root) from
/// the squashfs filesystem in `r`, following symbolic links, including in the last
/// component. Files larger than `max_len` bytes are refused with [`ReadError::TooLarge`].
pub fn read_file(r: &dyn ReadAt, path: &str, max_len: usize) -> Result<Vec<u8>, ReadError> {
    let with_path = |f: Fail| f.into_read_error(path);
    let sq = Sq::open(r).map_err(with_path)?;
    let root = sq.inode(sq.root_ref).map_err(with_path)?;
    let node = walk(
        path,
        root,
        |n: &Inode| matches!(n.kind, Kind::Dir { .. }),
        |n: &Inode| matches!(n.kind, Kind::Symlink { .. }),
        |dir: &Inode, name: &[u8]| match sq.lookup(dir, name)? {
            Some(iref) => sq.inode(iref).map(Some),
            None => Ok(None),
        },
        |link: &Inode| sq.readlink(link),
    )
    .map_err(|e: WalkError<Fail>| e.into_read_error(path, with_path))?;
    let Kind::File(file) = &node.kind else {
        return Err(ReadError::NotAFile { path: path.into() });
    };
    check_regular(path, true, file.size, max_len)?;
    sq.read_data(file).map_err(with_path)
}

// ------------------------------------------------------------------------------------------
// Internal errors and helpers.

#[derive(Debug)]
enum Fail {
    NotFs,
    Unsupported(String),
    Corrupt(String),
    Io(std::io::Error),
}

impl Fail {
    fn into_read_error(self, path: &str) -> ReadError {
        let path = path.to_string();
        match self {
            Fail::NotFs => ReadError::NotFs {
                path,
                what: "a squashfs filesystem (no superblock magic at byte 0)",
            },
            Fail::Unsupported(what) => ReadError::Unsupported {
                path,
                fs: "squashfs",
                what,
            },
            Fail::Corrupt(what) => ReadError::Corrupt { path, what },
            Fail::Io(source) => ReadError::Io { path, source },
        }
    }
}

type R<T> = Result<T, Fail>;

fn corrupt(what: impl Into<String>) -> Fail {
    Fail::Corrupt(what.into())
}

fn ck<T>(v: Option<T>, what: &str) -> R<T> {
    v.ok_or_else(|| corrupt(format!("{what} out of range")))
}

fn le16(b: &[u8], at: usize) -> R<u16> {
    let s = ck(at.checked_add(2).and_then(|e| b.get(at..e)), "field offset")?;
    let a: [u8; 2] = s.try_into().map_err(|_| corrupt("field offset"))?;
    Ok(u16::from_le_bytes(a))
}

fn le32(b: &[u8], at: usize) -> R<u32> {
    let s = ck(at.checked_add(4).and_then(|e| b.get(at..e)), "field offset")?;
    let a: [u8; 4] = s.try_into().map_err(|_| corrupt("field offset"))?;
    Ok(u32::from_le_bytes(a))
}

fn le64(b: &[u8], at: usize) -> R<u64> {
    let s = ck(at.checked_add(8).and_then(|e| b.get(at..e)), "field offset")?;
    let a: [u8; 8] = s.try_into().map_err(|_| corrupt("field offset"))?;
    Ok(u64::from_le_bytes(a))
}

fn to_usize(v: u64, what: &str) -> R<usize> {
    usize::try_from(v).map_err(|_| corrupt(format!("{what} out of range")))
}

// ------------------------------------------------------------------------------------------
// Format constants.

const MAGIC: u32 = 0x7371_7368; // "hsqs"
const SB_SIZE: usize = 96;
const METADATA_SIZE: usize = 8192;
const META_UNCOMPRESSED: u16 = 0x8000;
const DATA_UNCOMPRESSED: u32 = 1 << 24;
const NO_FRAGMENT: u32 = 0xFFFF_FFFF;
const FLAG_COMPRESSOR_OPTIONS: u16 = 0x0400;

const COMP_GZIP: u16 = 1;
const COMP_LZMA: u16 = 2;
const COMP_LZO: u16 = 3;
const COMP_XZ: u16 = 4;
const COMP_LZ4: u16 = 5;
const COMP_ZSTD: u16 = 6;

const T_DIR: u16 = 1;
const T_FILE: u16 = 2;
const T_SYMLINK: u16 = 3;
const T_LDIR: u16 = 8;
const T_LFILE: u16 = 9;
const T_LSYMLINK: u16 = 10;

/// Largest directory listing this reader walks (a HAOS directory is a few KiB).
const MAX_DIR_SIZE: u64 = 16 * 1024 * 1024;
/// Memory allowed to an LZMA/XZ decoder, in KiB.
const LZMA_MEM_KB: u32 = 64 * 1024;

// ------------------------------------------------------------------------------------------
// Superblock, metadata and inodes.

struct Sq<'a> {
    r: &'a dyn ReadAt,
    comp: u16,
    block_size: u32,
    frag_count: u32,
    root_ref: u64,
    inode_table: u64,
    dir_table: u64,
    frag_table: u64,
    /// What is left of the work budget (bytes read or decoded).
    budget: std::cell::Cell<u64>,
}

#[derive(Clone, Debug)]
struct FileInfo {
    size: u64,
    blocks_start: u64,
    frag_index: u32,
    frag_offset: u32,
    /// Where the block-size list starts: metadata block position and offset in it.
    list_at: (u64, usize),
}

#[derive(Clone, Debug)]
enum Kind {
    Dir {
        /// Position of the listing's first metadata block (relative to the dir table).
        block: u32,
        offset: u16,
        /// Listing size, without the 3 bytes squashfs adds for `.` and `..`.
        size: u64,
    },
    File(FileInfo),
    Symlink {
        target: Vec<u8>,
    },
    Other,
}

#[derive(Clone, Debug)]
struct Inode {
    kind: Kind,
}

/// Sequential reader over a chain of metadata blocks.
struct Cursor<'s, 'a> {
    sq: &'s Sq<'a>,
    /// Disk position of the loaded block, and of the next one.
    cur: u64,
    next: u64,
    buf: Vec<u8>,
    off: usize,
}

impl<'s, 'a> Cursor<'s, 'a> {
    fn new(sq: &'s Sq<'a>, pos: u64, off: usize) -> R<Self> {
        let (buf, next) = sq.meta_block(pos)?;
        if off > buf.len() {
            return Err(corrupt(format!(
                "metadata offset {off} past its block at {pos}"
            )));
        }
        Ok(Cursor {
            sq,
            cur: pos,
            next,
            buf,
            off,
        })
    }

    /// Where the next byte comes from, as (block position, offset).
    fn at(&self) -> (u64, usize) {
        (self.cur, self.off)
    }

    fn take(&mut self, n: usize) -> R<Vec<u8>> {
        let mut out = Vec::with_capacity(n.min(METADATA_SIZE));
        while out.len() < n {
            if self.off >= self.buf.len() {
                // Positions strictly increase, so this loop ends at the image's end.
                let (buf, next) = self.sq.meta_block(self.next)?;
                self.cur = self.next;
                self.next = next;
                self.buf = buf;
                self.off = 0;
            }
            let want = n.saturating_sub(out.len());
            let rest = self.buf.get(self.off..).unwrap_or_default();
            let k = want.min(rest.len());
            out.extend_from_slice(rest.get(..k).unwrap_or_default());
            self.off = self.off.saturating_add(k);
        }
        Ok(out)
    }
}

impl<'a> Sq<'a> {
    fn open(r: &'a dyn ReadAt) -> R<Self> {
        let sb = read_bytes(r, 0, SB_SIZE, "superblock")?;
        if le32(&sb, 0)? != MAGIC {
            return Err(Fail::NotFs);
        }
        let (major, minor) = (le16(&sb, 28)?, le16(&sb, 30)?);
        if (major, minor) != (4, 0) {
            return Err(Fail::Unsupported(format!("version {major}.{minor}")));
        }
        let block_size = le32(&sb, 12)?;
        let block_log = le16(&sb, 22)?;
        if !(4096..=1 << 20).contains(&block_size)
            || !block_size.is_power_of_two()
            || 1u32.checked_shl(u32::from(block_log)) != Some(block_size)
        {
            return Err(corrupt(format!(
                "block size {block_size} (log {block_log})"
            )));
        }
        let comp = le16(&sb, 20)?;
        match comp {
            COMP_GZIP | COMP_LZMA | COMP_XZ | COMP_LZ4 | COMP_ZSTD => {}
            COMP_LZO => return Err(Fail::Unsupported("LZO compression".into())),
            other => return Err(Fail::Unsupported(format!("compressor id {other}"))),
        }
        let flags = le16(&sb, 24)?;
        let _ = flags & FLAG_COMPRESSOR_OPTIONS; // options only tune the compressor
        Ok(Sq {
            r,
            comp,
            block_size,
            frag_count: le32(&sb, 16)?,
            root_ref: le64(&sb, 32)?,
            inode_table: le64(&sb, 64)?,
            dir_table: le64(&sb, 72)?,
            frag_table: le64(&sb, 80)?,
            budget: std::cell::Cell::new(work_budget(r.len())),
        })
    }

    /// The metadata block at `pos`: its decoded bytes and the position of the next block.
    fn meta_block(&self, pos: u64) -> R<(Vec<u8>, u64)> {
        let h = read_bytes(self.r, pos, 2, "metadata block header")?;
        let h = le16(&h, 0)?;
        let size = usize::from(h & !META_UNCOMPRESSED);
        if size == 0 || size > METADATA_SIZE {
            return Err(corrupt(format!("metadata block of {size} bytes at {pos}")));
        }
        let start = ck(pos.checked_add(2), "metadata position")?;
        self.charge(size)?;
        let raw = read_bytes(self.r, start, size, "metadata block")?;
        let next = ck(start.checked_add(size as u64), "metadata position")?;
        let data = if h & META_UNCOMPRESSED != 0 {
            raw
        } else {
            self.decompress(&raw, METADATA_SIZE)?
        };
        if data.is_empty() {
            return Err(corrupt(format!("empty metadata block at {pos}")));
        }
        Ok((data, next))
    }

    /// Account for `n` bytes of work.
    fn charge(&self, n: usize) -> R<()> {
        let left = self.budget.get().checked_sub(n as u64).ok_or_else(|| {
            corrupt("the image makes the reader do far more work than its size warrants")
        })?;
        self.budget.set(left);
        Ok(())
    }

    fn decompress(&self, input: &[u8], limit: usize) -> R<Vec<u8>> {
        self.charge(limit.saturating_add(input.len()))?;
        let bad = |e: String| corrupt(format!("compressed block does not decode: {e}"));
        let over = || {
            corrupt(format!(
                "compressed block decodes to more than {limit} bytes"
            ))
        };
        match self.comp {
            COMP_LZ4 => {
                let mut out = vec![0u8; limit];
                let n = lz4_flex::block::decompress_into(input, &mut out)
                    .map_err(|e| bad(e.to_string()))?;
                out.truncate(n);
                Ok(out)
            }
            COMP_GZIP => read_capped(flate2::read::ZlibDecoder::new(input), limit)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(over),
            COMP_XZ => {
                let rd = lzma_rust2::XzReader::new_mem_limit(input, false, LZMA_MEM_KB);
                read_capped(rd, limit)
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(over)
            }
            COMP_LZMA => {
                let rd = lzma_rust2::LzmaReader::new_mem_limit(input, LZMA_MEM_KB, None)
                    .map_err(|e| bad(e.to_string()))?;
                read_capped(rd, limit)
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(over)
            }
            COMP_ZSTD => {
                let rd =
                    ruzstd::decoding::StreamingDecoder::new_with_max_window_size(input, 16 << 20)
                        .map_err(|e| bad(e.to_string()))?;
                read_capped(rd, limit)
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(over)
            }
            other => Err(Fail::Unsupported(format!("compressor id {other}"))),
        }
    }

    fn inode(&self, iref: u64) -> R<Inode> {
        let block = iref >> 16;
        let off = (iref & 0xFFFF) as usize;
        let pos = ck(self.inode_table.checked_add(block), "inode reference")?;
        let mut c = Cursor::new(self, pos, off)?;
        let head = c.take(16)?;
        let typ = le16(&head, 0)?;
        let kind = match typ {
            T_DIR => {
                let b = c.take(16)?;
                Kind::Dir {
                    block: le32(&b, 0)?,
                    size: dir_size(u64::from(le16(&b, 8)?))?,
                    offset: le16(&b, 10)?,
                }
            }
            T_LDIR => {
                let b = c.take(24)?;
                Kind::Dir {
                    size: dir_size(u64::from(le32(&b, 4)?))?,
                    block: le32(&b, 8)?,
                    offset: le16(&b, 18)?,
                }
            }
            T_FILE => {
                let b = c.take(16)?;
                Kind::File(FileInfo {
                    blocks_start: u64::from(le32(&b, 0)?),
                    frag_index: le32(&b, 4)?,
                    frag_offset: le32(&b, 8)?,
                    size: u64::from(le32(&b, 12)?),
                    list_at: c.at(),
                })
            }
            T_LFILE => {
                let b = c.take(40)?;
                Kind::File(FileInfo {
                    blocks_start: le64(&b, 0)?,
                    size: le64(&b, 8)?,
                    frag_index: le32(&b, 28)?,
                    frag_offset: le32(&b, 32)?,
                    list_at: c.at(),
                })
            }
            T_SYMLINK | T_LSYMLINK => {
                let b = c.take(8)?;
                let len = u64::from(le32(&b, 4)?);
                if len > MAX_LINK_LEN {
                    return Err(corrupt(format!("symlink target of {len} bytes")));
                }
                Kind::Symlink {
                    target: c.take(to_usize(len, "symlink")?)?,
                }
            }
            4..=7 | 11..=14 => Kind::Other,
            other => return Err(corrupt(format!("inode type {other}"))),
        };
        Ok(Inode { kind })
    }

    fn readlink(&self, link: &Inode) -> R<Vec<u8>> {
        match &link.kind {
            Kind::Symlink { target } => Ok(target.clone()),
            _ => Err(corrupt("readlink on a non-symlink")),
        }
    }

    /// Find `name` in directory `dir`; returns the child's inode reference.
    fn lookup(&self, dir: &Inode, name: &[u8]) -> R<Option<u64>> {
        let Kind::Dir {
            block,
            offset,
            size,
        } = dir.kind
        else {
            return Err(corrupt("lookup in a non-directory"));
        };
        if size == 0 {
            return Ok(None);
        }
        let pos = ck(
            self.dir_table.checked_add(u64::from(block)),
            "directory position",
        )?;
        let mut c = Cursor::new(self, pos, usize::from(offset))?;
        let mut left = size;
        let bad = || corrupt("directory listing overruns its size");
        while left > 0 {
            let h = c.take(12)?;
            left = left.checked_sub(12).ok_or_else(bad)?;
            let count = u64::from(le32(&h, 0)?).saturating_add(1);
            let start = u64::from(le32(&h, 4)?);
            if count > 256 {
                return Err(corrupt(format!("directory header with {count} entries")));
            }
            for _ in 0..count {
                let e = c.take(8)?;
                let ioff = u64::from(le16(&e, 0)?);
                let nlen = usize::from(le16(&e, 6)?).saturating_add(1);
                if nlen > 256 {
                    return Err(corrupt(format!("directory entry name of {nlen} bytes")));
                }
                let n = c.take(nlen)?;
                left = left
                    .checked_sub(8u64.saturating_add(nlen as u64))
                    .ok_or_else(bad)?;
                if n.as_slice() == name {
                    return Ok(Some((start << 16) | ioff));
                }
            }
        }
        Ok(None)
    }

    fn read_data(&self, f: &FileInfo) -> R<Vec<u8>> {
        let bs = u64::from(self.block_size);
        let has_frag = f.frag_index != NO_FRAGMENT;
        let nblocks = if has_frag {
            f.size.checked_div(bs).unwrap_or(0)
        } else {
            f.size.div_ceil(bs)
        };
        let total = to_usize(f.size, "file size")?;
        let mut out = Vec::with_capacity(total);
        let list_len = to_usize(nblocks.saturating_mul(4), "block list")?;
        let list = Cursor::new(self, f.list_at.0, f.list_at.1)?.take(list_len)?;
        let mut pos = f.blocks_start;
        for (i, entry) in list.chunks_exact(4).enumerate() {
            let entry = le32(entry, 0)?;
            let done = (i as u64).saturating_mul(bs);
            let want = to_usize(f.size.saturating_sub(done).min(bs), "block")?;
            let size = entry & !DATA_UNCOMPRESSED;
            if size == 0 {
                out.resize(out.len().saturating_add(want), 0); // sparse block
                continue;
            }
            if size > self.block_size {
                return Err(corrupt(format!("data block of {size} bytes")));
            }
            self.charge(size as usize)?;
            let raw = read_bytes(self.r, pos, size as usize, "data block")?;
            pos = ck(pos.checked_add(u64::from(size)), "data position")?;
            let data = if entry & DATA_UNCOMPRESSED != 0 {
                raw
            } else {
                self.decompress(&raw, self.block_size as usize)?
            };
            out.extend_from_slice(ck(data.get(..want), "data block shorter than the file")?);
        }
        if has_frag {
            let tail = to_usize(f.size.checked_rem(bs).unwrap_or(0), "fragment")?;
            let frag = self.fragment(f.frag_index)?;
            let from = f.frag_offset as usize;
            let piece = from
                .checked_add(tail)
                .and_then(|to| frag.get(from..to))
                .ok_or_else(|| corrupt("file tail lies outside its fragment block"))?;
            out.extend_from_slice(piece);
        }
        if out.len() != total {
            return Err(corrupt("file data does not add up to its size"));
        }
        Ok(out)
    }

    /// The decoded fragment block number `index`.
    fn fragment(&self, index: u32) -> R<Vec<u8>> {
        if index >= self.frag_count {
            return Err(corrupt(format!("fragment {index} of {}", self.frag_count)));
        }
        // The fragment table is indexed by an array of metadata block positions, 512
        // 16-byte entries per block.
        let slot = u64::from(index / 512).saturating_mul(8);
        let ptr_at = ck(self.frag_table.checked_add(slot), "fragment table")?;
        let ptr = le64(&read_bytes(self.r, ptr_at, 8, "fragment table")?, 0)?;
        let entry =
            Cursor::new(self, ptr, ((index % 512) as usize).saturating_mul(16))?.take(16)?;
        let start = le64(&entry, 0)?;
        let size = le32(&entry, 8)?;
        let len = size & !DATA_UNCOMPRESSED;
        if len == 0 || len > self.block_size {
            return Err(corrupt(format!("fragment block of {len} bytes")));
        }
        let raw = read_bytes(self.r, start, len as usize, "fragment block")?;
        if size & DATA_UNCOMPRESSED != 0 {
            Ok(raw)
        } else {
            self.decompress(&raw, self.block_size as usize)
        }
    }
}

/// Directory listing size from the inode's `file_size` (which counts 3 extra bytes).
fn dir_size(file_size: u64) -> R<u64> {
    if file_size > MAX_DIR_SIZE {
        return Err(corrupt(format!("directory of {file_size} bytes")));
    }
    Ok(file_size.saturating_sub(3))
}

/// Read `len` bytes at `offset`, turning a read past the end into a corruption error.
fn read_bytes(r: &dyn ReadAt, offset: u64, len: usize, what: &str) -> R<Vec<u8>> {
    let end = ck(offset.checked_add(len as u64), what)?;
    if end > r.len() {
        return Err(corrupt(format!(
            "{what} at byte {offset} (+{len}) lies beyond the end of the image ({} bytes)",
            r.len()
        )));
    }
    let mut v = vec![0u8; len];
    r.read_exact_at(&mut v, offset).map_err(Fail::Io)?;
    Ok(v)
}

/// Everything `rd` yields, or `None` when that is more than `limit` bytes.
pub(crate) fn read_capped(rd: impl Read, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    rd.take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)?;
    Ok((out.len() <= limit).then_some(out))
}

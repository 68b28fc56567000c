//! Read one file by path from an EROFS image, offline and without mounting.
//!
//! HAOS 13.0 and later keep the root filesystem of each slot in EROFS (mkfs.erofs with lz4hc,
//! dedupe, fragments, ztailpacking and 256 KiB physical clusters). [`read_file`] resolves an
//! absolute path component by component (following symlinks, relative or absolute, at most
//! [`MAX_SYMLINKS`] of them) and returns the file's bytes, refusing files larger than the
//! caller's limit.
//!
//! Supported: the superblock at byte 1024 (block sizes 512 B–64 KiB), compact (32 B) and
//! extended (64 B) inodes, directories, the data layouts FLAT_PLAIN (including holes),
//! FLAT_INLINE, CHUNK_BASED (block maps and chunk indexes on the primary device) and the
//! compressed layouts COMPRESSED_FULL and COMPRESSED_COMPACT (2-byte and 4-byte compact
//! indexes): LZ4 (our own decoder, with zero padding and partial decoding), MicroLZMA,
//! DEFLATE and Zstandard, big physical clusters, uncompressed (shifted or interlaced)
//! clusters, ztailpacking (inline tail cluster), fragments (tail or whole file in the packed
//! inode), deduplicated (partially referenced) clusters, two algorithms per file (HEAD2), and
//! the 48-bit layout's inode and root-nid fields.
//! Reported as unsupported: compressed extent records (48-bit layout), the metabox, extra
//! devices, directory blocks other than the block size, unknown incompat features.
//!
//! The format was learnt from the Linux kernel's `fs/erofs/erofs_fs.h` and `zmap.c` and
//! erofs-utils; the code here is our own. Every offset, length and loop is checked against
//! the image: bad input gives an error, never a panic.

// The reader parses untrusted bytes: keep the no-panic rules machine-checked.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use crate::io::ReadAt;

/// Symbolic links followed while resolving one path (Linux's limit is 40 as well).
pub const MAX_SYMLINKS: usize = 40;

/// Why a file could not be read from an EROFS or squashfs image (the squashfs reader shares
/// this type). Every message names the requested path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The partition does not hold this filesystem's superblock.
    #[error("{path}: not {what}")]
    NotFs { path: String, what: &'static str },
    /// A path component does not exist.
    #[error("{path}: not found ({detail})")]
    NotFound { path: String, detail: String },
    /// A path component that must be a directory is not one.
    #[error("{path}: not a directory ({detail})")]
    NotADirectory { path: String, detail: String },
    /// The path names a directory, device or other non-regular file.
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    /// Too many symbolic links while resolving the path.
    #[error("{path}: too many levels of symbolic links (more than {MAX_SYMLINKS})")]
    SymlinkLoop { path: String },
    /// The file is larger than the caller allows.
    #[error("{path}: file is {size} bytes, more than the {max} allowed")]
    TooLarge { path: String, size: u64, max: usize },
    /// The image uses a feature this reader does not implement.
    #[error("{path}: unsupported {fs} feature: {what}")]
    Unsupported {
        path: String,
        fs: &'static str,
        what: String,
    },
    /// The on-disk structures are inconsistent.
    #[error("{path}: corrupt: {what}")]
    Corrupt { path: String, what: String },
    /// The underlying reader failed.
    #[error("{path}: read error: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The file `walk` found must be a regular file of at most `max` bytes (shared with the
/// squashfs reader).
pub(crate) fn check_regular(
    path: &str,
    regular: bool,
    size: u64,
    max: usize,
) -> Result<(), ReadError> {
    if !regular {
        return Err(ReadError::NotAFile { path: path.into() });
    }
    if size > max as u64 {
        return Err(ReadError::TooLarge {
            path: path.into(),
            size,
            max,
        });
    }
    Ok(())
}

/// Read the regular file at `path` (absolute; a relative path is taken from the root) from
/// the EROFS filesystem in `r`, following symbolic links, including in the last component.
/// Files larger than `max_len` bytes are refused with [`ReadError::TooLarge`].
pub fn read_file(r: &dyn ReadAt, path: &str, max_len: usize) -> Result<Vec<u8>, ReadError> {
    let with_path = |f: Fail| f.into_read_error(path);
    let fs = Fs::open(r).map_err(with_path)?;
    let root = fs.inode(fs.root_nid).map_err(with_path)?;
    let node = walk(
        path,
        root,
        |n: &Inode| n.is_dir(),
        |n: &Inode| n.is_symlink(),
        |dir: &Inode, name: &[u8]| match fs.lookup(dir, name)? {
            Some(nid) => fs.inode(nid).map(Some),
            None => Ok(None),
        },
        |link: &Inode| fs.readlink(link),
    )
    .map_err(|e| e.into_read_error(path, with_path))?;
    check_regular(path, node.is_reg(), node.size, max_len)?;
    let len = usize::try_from(node.size).map_err(|_| with_path(corrupt("file size")))?;
    fs.read_range(&node, 0, len, 0).map_err(with_path)
}

// ------------------------------------------------------------------------------------------
// Internal errors (no path yet) and arithmetic helpers.

/// What went wrong below [`read_file`]; it adds the path.
#[derive(Debug)]
pub(crate) enum Fail {
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
                what: "an EROFS filesystem (no superblock magic at byte 1024)",
            },
            Fail::Unsupported(what) => ReadError::Unsupported {
                path,
                fs: "EROFS",
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

fn unsupported(what: impl Into<String>) -> Fail {
    Fail::Unsupported(what.into())
}

/// `Option` from checked arithmetic to a corruption error naming the quantity.
trait Ck<T> {
    fn ck(self, what: &str) -> R<T>;
}

impl<T> Ck<T> for Option<T> {
    fn ck(self, what: &str) -> R<T> {
        self.ok_or_else(|| corrupt(format!("{what} out of range")))
    }
}

fn le16(b: &[u8], at: usize) -> R<u16> {
    let s = at
        .checked_add(2)
        .and_then(|e| b.get(at..e))
        .ck("field offset")?;
    Ok(u16::from_le_bytes([
        s.first().copied().ck("byte")?,
        s.get(1).copied().ck("byte")?,
    ]))
}

fn le32(b: &[u8], at: usize) -> R<u32> {
    let s = at
        .checked_add(4)
        .and_then(|e| b.get(at..e))
        .ck("field offset")?;
    let a: [u8; 4] = s.try_into().map_err(|_| corrupt("field offset"))?;
    Ok(u32::from_le_bytes(a))
}

fn le64(b: &[u8], at: usize) -> R<u64> {
    let s = at
        .checked_add(8)
        .and_then(|e| b.get(at..e))
        .ck("field offset")?;
    let a: [u8; 8] = s.try_into().map_err(|_| corrupt("field offset"))?;
    Ok(u64::from_le_bytes(a))
}

fn round_up(v: u64, align: u64) -> R<u64> {
    // `align` is a power of two here.
    let mask = align.checked_sub(1).ck("alignment")?;
    Ok(v.checked_add(mask).ck("offset")? & !mask)
}

fn to_usize(v: u64, what: &str) -> R<usize> {
    usize::try_from(v).map_err(|_| corrupt(format!("{what} out of range")))
}

/// Read `len` bytes at `offset`, turning a read past the end into a corruption error.
fn read_bytes(r: &dyn ReadAt, offset: u64, len: usize, what: &str) -> R<Vec<u8>> {
    let end = offset.checked_add(len as u64).ck(what)?;
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

// ------------------------------------------------------------------------------------------
// Path walking, shared with the squashfs reader.

/// Why [`walk`] stopped.
pub(crate) enum WalkError<E> {
    Fs(E),
    NotFound(String),
    NotADirectory(String),
    Loop,
}

impl<E> From<E> for WalkError<E> {
    fn from(e: E) -> Self {
        WalkError::Fs(e)
    }
}

impl<E> WalkError<E> {
    /// The caller-facing error, naming `path`; `fs_err` maps the filesystem's own failures.
    pub(crate) fn into_read_error(self, path: &str, fs_err: impl Fn(E) -> ReadError) -> ReadError {
        match self {
            WalkError::Fs(f) => fs_err(f),
            WalkError::NotFound(detail) => ReadError::NotFound {
                path: path.into(),
                detail,
            },
            WalkError::NotADirectory(detail) => ReadError::NotADirectory {
                path: path.into(),
                detail,
            },
            WalkError::Loop => ReadError::SymlinkLoop { path: path.into() },
        }
    }
}

/// Path components [`walk`] resolves in all, symlink targets included.
pub(crate) const MAX_WALK_STEPS: usize = 4096;

/// Bytes one [`read_file`] call may read or decode in all: four times the image plus
/// 256 MiB. Corrupt images can point many lookups at the same large or highly compressed
/// directory; this keeps the work proportional to the image.
pub(crate) fn work_budget(image_len: u64) -> u64 {
    image_len.saturating_mul(4).saturating_add(256 << 20)
}

/// Longest symlink target accepted (Linux's PATH_MAX).
pub(crate) const MAX_LINK_LEN: u64 = 4096;

/// Resolve `path` from `root`, component by component. `.` is skipped, `..` goes up (and
/// stays at the root), symlinks are followed (absolute targets restart from the root,
/// relative ones from the link's directory), at most [`MAX_SYMLINKS`] times in all.
pub(crate) fn walk<N: Clone, E>(
    path: &str,
    root: N,
    is_dir: impl Fn(&N) -> bool,
    is_symlink: impl Fn(&N) -> bool,
    mut lookup: impl FnMut(&N, &[u8]) -> Result<Option<N>, E>,
    mut readlink: impl FnMut(&N) -> Result<Vec<u8>, E>,
) -> Result<N, WalkError<E>> {
    // Components still to resolve, last one at the end of the vector (popped first).
    let mut pending: Vec<Vec<u8>> = split_rev(path.as_bytes());
    // The chain of directories from the root to the current one (never empty).
    let mut chain: Vec<(N, Vec<u8>)> = Vec::new();
    let mut current = root.clone();
    let mut links = 0usize;
    let shown = |chain: &[(N, Vec<u8>)], name: &[u8]| {
        let mut s = String::new();
        for (_, n) in chain {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(n));
        }
        s.push('/');
        s.push_str(&String::from_utf8_lossy(name));
        s
    };
    let mut steps = 0usize;
    while let Some(comp) = pending.pop() {
        // Symlinks can multiply components (40 links of 4 KiB targets); cap the work.
        steps = steps.saturating_add(1);
        if steps > MAX_WALK_STEPS {
            return Err(WalkError::Loop);
        }
        if comp.as_slice() == b"." {
            continue;
        }
        if comp.as_slice() == b".." {
            if let Some((parent, _)) = chain.pop() {
                current = parent;
            }
            continue;
        }
        if !is_dir(&current) {
            let at = match chain.last() {
                Some((_, n)) => String::from_utf8_lossy(n).into_owned(),
                None => "/".into(),
            };
            return Err(WalkError::NotADirectory(format!("{at} is not a directory")));
        }
        let Some(child) = lookup(&current, &comp)? else {
            return Err(WalkError::NotFound(format!(
                "no {} in the image",
                shown(&chain, &comp)
            )));
        };
        if is_symlink(&child) {
            links = links.saturating_add(1);
            if links > MAX_SYMLINKS {
                return Err(WalkError::Loop);
            }
            let target = readlink(&child)?;
            if target.is_empty() {
                return Err(WalkError::NotFound(format!(
                    "{} is an empty symlink",
                    shown(&chain, &comp)
                )));
            }
            if target.first() == Some(&b'/') {
                chain.clear();
                current = root.clone();
            }
            pending.extend(split_rev(&target));
            continue;
        }
        let parent = std::mem::replace(&mut current, child);
        chain.push((parent, comp));
    }
    Ok(current)
}

/// Path components, non-empty, in reverse order.
fn split_rev(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

// ------------------------------------------------------------------------------------------
// On-disk format constants.

const SB_OFFSET: u64 = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;

const INCOMPAT_ZERO_PADDING: u32 = 0x01;
const INCOMPAT_BIG_PCLUSTER: u32 = 0x02; // also COMPR_CFGS
const INCOMPAT_CHUNKED_FILE: u32 = 0x04;
const INCOMPAT_DEVICE_TABLE: u32 = 0x08; // also COMPR_HEAD2
const INCOMPAT_ZTAILPACKING: u32 = 0x10;
const INCOMPAT_FRAGMENTS: u32 = 0x20; // also DEDUPE
const INCOMPAT_XATTR_PREFIXES: u32 = 0x40;
const INCOMPAT_48BIT: u32 = 0x80;
const INCOMPAT_METABOX: u32 = 0x100;
const INCOMPAT_KNOWN: u32 = INCOMPAT_ZERO_PADDING
    | INCOMPAT_BIG_PCLUSTER
    | INCOMPAT_CHUNKED_FILE
    | INCOMPAT_DEVICE_TABLE
    | INCOMPAT_ZTAILPACKING
    | INCOMPAT_FRAGMENTS
    | INCOMPAT_XATTR_PREFIXES
    | INCOMPAT_48BIT;

const LAYOUT_FLAT_PLAIN: u8 = 0;
const LAYOUT_COMPRESSED_FULL: u8 = 1;
const LAYOUT_FLAT_INLINE: u8 = 2;
const LAYOUT_COMPRESSED_COMPACT: u8 = 3;
const LAYOUT_CHUNK_BASED: u8 = 4;

const I_NLINK_1_BIT: u16 = 1 << 4;
const I_FORMAT_KNOWN: u16 = 0x1F;

const S_IFMT: u16 = 0o170_000;
const S_IFDIR: u16 = 0o040_000;
const S_IFREG: u16 = 0o100_000;
const S_IFLNK: u16 = 0o120_000;

const NULL_ADDR_32: u64 = 0xFFFF_FFFF;

const CHUNK_FORMAT_BLKBITS_MASK: u16 = 0x1F;
const CHUNK_FORMAT_INDEXES: u16 = 0x20;
const CHUNK_FORMAT_48BIT: u16 = 0x40;

const ADVISE_COMPACTED_2B: u16 = 0x0001; // compact layout
const ADVISE_EXTENTS: u16 = 0x0001; // full layout
const ADVISE_BIG_PCLUSTER_1: u16 = 0x0002;
const ADVISE_BIG_PCLUSTER_2: u16 = 0x0004;
const ADVISE_INLINE_PCLUSTER: u16 = 0x0008;
const ADVISE_INTERLACED_PCLUSTER: u16 = 0x0010;
const ADVISE_FRAGMENT_PCLUSTER: u16 = 0x0020;

const ALG_LZ4: u8 = 0;
const ALG_LZMA: u8 = 1;
const ALG_DEFLATE: u8 = 2;
const ALG_ZSTD: u8 = 3;

const LCLUSTER_PLAIN: u8 = 0;
const LCLUSTER_HEAD1: u8 = 1;
const LCLUSTER_NONHEAD: u8 = 2;
const LCLUSTER_HEAD2: u8 = 3;

const LI_PARTIAL_REF: u16 = 1 << 15;
const LI_D0_CBLKCNT: u64 = 1 << 11;

/// Largest encoded physical cluster (Z_EROFS_PCLUSTER_MAX_SIZE).
const PCLUSTER_MAX_SIZE: u64 = 1024 * 1024;
/// Largest decoded extent (Z_EROFS_PCLUSTER_MAX_DSIZE).
const PCLUSTER_MAX_DSIZE: u64 = 12 * 1024 * 1024;
/// Largest directory this reader walks (a HAOS directory is a few KiB).
const MAX_DIR_SIZE: u64 = 16 * 1024 * 1024;
/// Nesting of packed-inode reads (a fragment read must not need another fragment).
const MAX_DEPTH: u8 = 1;

// ------------------------------------------------------------------------------------------
// Superblock and inodes.

struct Fs<'a> {
    r: &'a dyn ReadAt,
    blkbits: u32,
    blksz: u64,
    meta_base: u64,
    root_nid: u64,
    incompat: u32,
    packed_nid: u64,
    /// What is left of [`work_budget`].
    budget: std::cell::Cell<u64>,
}

#[derive(Clone, Debug)]
struct Inode {
    nid: u64,
    /// Byte offset of the on-disk inode.
    iloc: u64,
    /// 32 or 64.
    isize: u64,
    xattr_isize: u64,
    layout: u8,
    mode: u16,
    size: u64,
    /// Start block for flat layouts (`None` for a FLAT_PLAIN hole), raw `i_u` otherwise.
    blkaddr: Option<u64>,
    i_u: u32,
}

impl Inode {
    fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    fn is_reg(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
    /// Byte offset just past the inode and its inline xattrs.
    fn body_end(&self) -> R<u64> {
        self.iloc
            .checked_add(self.isize)
            .and_then(|v| v.checked_add(self.xattr_isize))
            .ck("inode body offset")
    }
}

impl<'a> Fs<'a> {
    fn open(r: &'a dyn ReadAt) -> R<Self> {
        if r.len() < SB_OFFSET.saturating_add(128) {
            return Err(corrupt("image too small for an EROFS superblock"));
        }
        let sb = read_bytes(r, SB_OFFSET, 128, "superblock")?;
        if le32(&sb, 0)? != MAGIC {
            return Err(Fail::NotFs);
        }
        let blkbits = u32::from(*sb.get(12).ck("superblock")?);
        if !(9..=16).contains(&blkbits) {
            return Err(unsupported(format!("block size 2^{blkbits}")));
        }
        let blksz = 1u64.checked_shl(blkbits).ck("block size")?;
        let incompat = le32(&sb, 80)?;
        let unknown = incompat & !INCOMPAT_KNOWN;
        if incompat & INCOMPAT_METABOX != 0 {
            return Err(unsupported("metabox (metadata in a separate inode)"));
        }
        if unknown != 0 {
            return Err(unsupported(format!(
                "incompatible feature bits {unknown:#x}"
            )));
        }
        let extra_devices = le16(&sb, 86)?;
        if extra_devices != 0 {
            return Err(unsupported(format!("{extra_devices} extra devices")));
        }
        let dirblkbits = *sb.get(90).ck("superblock")?;
        if dirblkbits != 0 {
            return Err(unsupported(format!("directory block bits {dirblkbits}")));
        }
        let meta_blkaddr = u64::from(le32(&sb, 40)?);
        let meta_base = meta_blkaddr.checked_mul(blksz).ck("meta_blkaddr")?;
        // With 48-bit layouts a root nid that does not fit 16 bits sits in rootnid_8b (at
        // 112 of the superblock); zero there means the 16-bit field holds it.
        let rootnid_8b = if incompat & INCOMPAT_48BIT != 0 {
            le64(&sb, 112)?
        } else {
            0
        };
        let root_nid = if rootnid_8b != 0 {
            rootnid_8b
        } else {
            u64::from(le16(&sb, 14)?)
        };
        let packed_nid = le64(&sb, 96)?;
        Ok(Fs {
            r,
            blkbits,
            blksz,
            meta_base,
            root_nid,
            incompat,
            packed_nid,
            budget: std::cell::Cell::new(work_budget(r.len())),
        })
    }

    fn has(&self, feature: u32) -> bool {
        self.incompat & feature != 0
    }

    fn blk_pos(&self, blk: u64) -> R<u64> {
        blk.checked_mul(self.blksz).ck("block address")
    }

    fn blkoff(&self, pos: u64) -> u64 {
        pos & self.blksz.wrapping_sub(1)
    }

    fn read(&self, offset: u64, len: usize, what: &str) -> R<Vec<u8>> {
        read_bytes(self.r, offset, len, what)
    }

    fn inode(&self, nid: u64) -> R<Inode> {
        let iloc = nid
            .checked_mul(32)
            .and_then(|o| o.checked_add(self.meta_base))
            .ck("inode number")?;
        let avail = self.r.len().saturating_sub(iloc).min(64);
        if avail < 32 {
            return Err(corrupt(format!(
                "inode {nid} lies beyond the end of the image"
            )));
        }
        let raw = self.read(iloc, avail as usize, "inode")?;
        let ifmt = le16(&raw, 0)?;
        if ifmt & !I_FORMAT_KNOWN != 0 {
            return Err(unsupported(format!("inode format {ifmt:#x} (nid {nid})")));
        }
        let extended = ifmt & 1 != 0;
        let layout = ((ifmt >> 1) & 7) as u8;
        if layout > LAYOUT_CHUNK_BASED {
            return Err(unsupported(format!("data layout {layout} (nid {nid})")));
        }
        let xattr_icount = le16(&raw, 2)?;
        let mode = le16(&raw, 4)?;
        let i_nb = le16(&raw, 6)?;
        let is_48bit = self.has(INCOMPAT_48BIT);
        let (isize, size, startblk_hi) = if extended {
            if raw.len() < 64 {
                return Err(corrupt(format!(
                    "inode {nid} lies beyond the end of the image"
                )));
            }
            (64, le64(&raw, 8)?, if is_48bit { i_nb } else { 0 })
        } else {
            let nlink1 = ifmt & I_NLINK_1_BIT != 0 && mode & S_IFMT != S_IFDIR;
            let hi = if is_48bit && nlink1 { i_nb } else { 0 };
            (32, u64::from(le32(&raw, 8)?), hi)
        };
        let xattr_isize = if xattr_icount == 0 {
            0
        } else {
            12u64.saturating_add(u64::from(xattr_icount).saturating_sub(1).saturating_mul(4))
        };
        let i_u = le32(&raw, 16)?;
        let mut blkaddr = Some(u64::from(i_u) | (u64::from(startblk_hi) << 32));
        if layout == LAYOUT_FLAT_PLAIN {
            // All address bits set (32 or, with 48-bit addresses, 48 of them): a hole.
            let wide = is_48bit && (extended || ifmt & I_NLINK_1_BIT != 0);
            let mask = if wide { (1u64 << 48) - 1 } else { NULL_ADDR_32 };
            if blkaddr.is_some_and(|b| b & mask == mask) {
                blkaddr = None;
            }
        }
        Ok(Inode {
            nid,
            iloc,
            isize,
            xattr_isize,
            layout,
            mode,
            size,
            blkaddr,
            i_u,
        })
    }

    // --------------------------------------------------------------------------------------
    // Directories and symlinks.

    /// Find `name` in directory `dir`; returns its nid.
    fn lookup(&self, dir: &Inode, name: &[u8]) -> R<Option<u64>> {
        if dir.size > MAX_DIR_SIZE {
            return Err(corrupt(format!(
                "directory (nid {}) of {} bytes is implausibly large",
                dir.nid, dir.size
            )));
        }
        let mut off = 0u64;
        while off < dir.size {
            let maxsize = dir.size.saturating_sub(off).min(self.blksz);
            let msz = to_usize(maxsize, "directory block")?;
            let blk = self.read_range(dir, off, msz, 0)?;
            if let Some(nid) = find_dirent(&blk, name, self.blksz, dir.nid)? {
                return Ok(Some(nid));
            }
            off = off.saturating_add(maxsize);
        }
        Ok(None)
    }

    fn readlink(&self, link: &Inode) -> R<Vec<u8>> {
        if link.size > MAX_LINK_LEN {
            return Err(corrupt(format!(
                "symlink (nid {}) target of {} bytes",
                link.nid, link.size
            )));
        }
        self.read_range(link, 0, to_usize(link.size, "symlink")?, 0)
    }

    // --------------------------------------------------------------------------------------
    // File data.

    /// Bytes `[off, off+len)` of `ino`'s data; `depth` counts nested packed-inode reads.
    fn read_range(&self, ino: &Inode, off: u64, len: usize, depth: u8) -> R<Vec<u8>> {
        let left = self.budget.get().checked_sub(len as u64).ok_or_else(|| {
            corrupt("the image makes the reader do far more work than its size warrants")
        })?;
        self.budget.set(left);
        let end = off.checked_add(len as u64).ck("read range")?;
        if end > ino.size {
            return Err(corrupt(format!(
                "read of {len} bytes at {off} past the end of nid {} ({} bytes)",
                ino.nid, ino.size
            )));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        match ino.layout {
            LAYOUT_FLAT_PLAIN | LAYOUT_FLAT_INLINE => self.read_flat(ino, off, len),
            LAYOUT_CHUNK_BASED => self.read_chunked(ino, off, len),
            LAYOUT_COMPRESSED_FULL | LAYOUT_COMPRESSED_COMPACT => {
                self.read_compressed(ino, off, len, depth)
            }
            other => Err(unsupported(format!("data layout {other}"))),
        }
    }

    fn read_flat(&self, ino: &Inode, off: u64, len: usize) -> R<Vec<u8>> {
        let inline = ino.layout == LAYOUT_FLAT_INLINE;
        let Some(blkaddr) = ino.blkaddr else {
            // A FLAT_PLAIN inode without blocks reads as zeros.
            return Ok(vec![0u8; len]);
        };
        let nblocks = ino.size.div_ceil(self.blksz);
        let flat_end = self.blk_pos(nblocks.saturating_sub(u64::from(inline)))?;
        let end = off.saturating_add(len as u64);
        let mut out = Vec::with_capacity(len);
        let mut pos = off;
        if pos < flat_end {
            let stop = end.min(flat_end);
            let pa = self.blk_pos(blkaddr)?.checked_add(pos).ck("data address")?;
            let n = to_usize(stop.saturating_sub(pos), "extent")?;
            out.extend_from_slice(&self.read(pa, n, "file data")?);
            pos = stop;
        }
        if pos < end {
            if !inline {
                return Err(corrupt("flat file data ends early"));
            }
            let tail_start = ino.body_end()?;
            let tail_len = ino.size.saturating_sub(flat_end);
            if self.blkoff(tail_start).saturating_add(tail_len) > self.blksz {
                return Err(corrupt(format!(
                    "inline data of nid {} crosses a block boundary",
                    ino.nid
                )));
            }
            let pa = tail_start
                .checked_add(pos.saturating_sub(flat_end))
                .ck("inline data")?;
            let n = to_usize(end.saturating_sub(pos), "inline data")?;
            out.extend_from_slice(&self.read(pa, n, "inline data")?);
        }
        Ok(out)
    }

    fn read_chunked(&self, ino: &Inode, off: u64, len: usize) -> R<Vec<u8>> {
        let format = (ino.i_u & 0xFFFF) as u16;
        if format & !(CHUNK_FORMAT_BLKBITS_MASK | CHUNK_FORMAT_INDEXES | CHUNK_FORMAT_48BIT) != 0 {
            return Err(unsupported(format!("chunk format {format:#x}")));
        }
        let chunkbits = self
            .blkbits
            .saturating_add(u32::from(format & CHUNK_FORMAT_BLKBITS_MASK));
        if chunkbits > 47 {
            return Err(corrupt(format!("chunk size 2^{chunkbits}")));
        }
        let chunksz = 1u64 << chunkbits;
        let indexes = format & CHUNK_FORMAT_INDEXES != 0;
        let unit: u64 = if indexes { 8 } else { 4 };
        let base = round_up(ino.body_end()?, unit)?;
        let end = off.saturating_add(len as u64);
        let mut out = Vec::with_capacity(len);
        let mut pos = off;
        while pos < end {
            let chunknr = pos >> chunkbits;
            let chunk_start = chunknr << chunkbits;
            let stop = end.min(chunk_start.saturating_add(chunksz));
            let n = to_usize(stop.saturating_sub(pos), "chunk")?;
            let at = chunknr
                .checked_mul(unit)
                .and_then(|o| o.checked_add(base))
                .ck("chunk index")?;
            let entry = self.read(at, unit as usize, "chunk index")?;
            let startblk = if indexes {
                let mask = if format & CHUNK_FORMAT_48BIT != 0 {
                    (1u64 << 48) - 1
                } else {
                    NULL_ADDR_32
                };
                let blk =
                    ((u64::from(le16(&entry, 0)?) << 32) | u64::from(le32(&entry, 4)?)) & mask;
                (blk != mask).then_some(blk)
            } else {
                let blk = u64::from(le32(&entry, 0)?);
                (blk != NULL_ADDR_32).then_some(blk)
            };
            match startblk {
                None => out.resize(out.len().saturating_add(n), 0),
                Some(blk) => {
                    let pa = self
                        .blk_pos(blk)?
                        .checked_add(pos.saturating_sub(chunk_start))
                        .ck("chunk address")?;
                    out.extend_from_slice(&self.read(pa, n, "chunk data")?);
                }
            }
            pos = stop;
        }
        Ok(out)
    }

    // --------------------------------------------------------------------------------------
    // Compressed files.

    fn read_compressed(&self, ino: &Inode, off: u64, len: usize, depth: u8) -> R<Vec<u8>> {
        let z = self.z_info(ino)?;
        let mut out = vec![0u8; len];
        let mut end = off.saturating_add(len as u64);
        // Walk the extents backwards from the end, as each lookup finds an extent's start.
        while end > off {
            let m = self.z_map(ino, &z, end.saturating_sub(1))?;
            if m.la >= end || m.la.saturating_add(m.llen) < end {
                return Err(corrupt(format!(
                    "bogus extent at {} of nid {}",
                    m.la, ino.nid
                )));
            }
            let length = end.saturating_sub(m.la);
            let (skip, new_end) = if m.la < off {
                (off.saturating_sub(m.la), off)
            } else {
                (0, m.la)
            };
            let data = self.z_decode(ino, &z, &m, skip, length, depth)?;
            let from = to_usize(new_end.saturating_sub(off), "extent")?;
            let to = to_usize(end.saturating_sub(off), "extent")?;
            let dst = out.get_mut(from..to).ck("extent")?;
            if dst.len() != data.len() {
                return Err(corrupt("decoded extent has the wrong length"));
            }
            dst.copy_from_slice(&data);
            end = new_end;
        }
        Ok(out)
    }

    /// Parse the map header and, for ztailpacking/fragments, locate the tail extent.
    fn z_info(&self, ino: &Inode) -> R<ZInfo> {
        let hpos = round_up(ino.body_end()?, 8)?;
        let h = self.read(hpos, 8, "compression map header")?;
        let clusterbits = *h.get(7).ck("map header")?;
        if clusterbits & 0x80 != 0 {
            // The whole file lives in the packed inode; the other 63 bits are its offset.
            let fragmentoff = le64(&h, 0)? & !(1u64 << 63);
            return Ok(ZInfo {
                advise: ADVISE_FRAGMENT_PCLUSTER,
                lclusterbits: self.blkbits,
                algs: [0, 0],
                fragmentoff,
                idata_size: 0,
                idataoff: 0,
                tail_headlcn: 0,
                hpos,
            });
        }
        let advise = le16(&h, 4)?;
        let lclusterbits = self.blkbits.saturating_add(u32::from(clusterbits & 15));
        if ino.layout == LAYOUT_COMPRESSED_FULL && advise & ADVISE_EXTENTS != 0 {
            return Err(unsupported("compressed extent records (48-bit layout)"));
        }
        if lclusterbits > 30 {
            return Err(corrupt(format!("logical cluster size 2^{lclusterbits}")));
        }
        let algtype = *h.get(6).ck("map header")?;
        let mut z = ZInfo {
            advise,
            lclusterbits,
            algs: [algtype & 15, algtype >> 4],
            fragmentoff: 0,
            idata_size: 0,
            idataoff: 0,
            tail_headlcn: 0,
            hpos,
        };
        if advise & ADVISE_FRAGMENT_PCLUSTER != 0 {
            z.fragmentoff = u64::from(le32(&h, 0)?);
        } else if advise & ADVISE_INLINE_PCLUSTER != 0 {
            z.idata_size = le16(&h, 2)?;
        }
        if ino.layout == LAYOUT_COMPRESSED_COMPACT
            && (advise & ADVISE_BIG_PCLUSTER_1 == 0) != (advise & ADVISE_BIG_PCLUSTER_2 == 0)
        {
            return Err(corrupt(
                "inconsistent big pcluster flags for compact indexes",
            ));
        }
        if (z.idata_size != 0 || advise & ADVISE_FRAGMENT_PCLUSTER != 0) && ino.size > 0 {
            // Find the tail extent: where its head is and where the inline data starts.
            let ofs = ino.size.saturating_sub(1);
            let loc = self.z_locate(ino, &z, ofs)?;
            z.idataoff = loc.initial_nextpackoff;
            z.tail_headlcn = loc.rec.lcn;
            if advise & ADVISE_FRAGMENT_PCLUSTER != 0 && ino.layout == LAYOUT_COMPRESSED_FULL {
                z.fragmentoff |= loc.rec.pblk << 32;
            }
        }
        Ok(z)
    }

    /// Load the index of logical cluster `lcn` into `m`.
    fn z_load(&self, ino: &Inode, z: &ZInfo, m: &mut Rec, lcn: u64) -> R<()> {
        if ino.layout == LAYOUT_COMPRESSED_COMPACT {
            self.z_load_compact(ino, z, m, lcn)?;
        } else {
            self.z_load_full(z, m, lcn)?;
        }
        if m.typ != LCLUSTER_NONHEAD && m.clusterofs >= (1u64 << z.lclusterbits) {
            return Err(corrupt(format!(
                "cluster offset {} at lcn {lcn}",
                m.clusterofs
            )));
        }
        Ok(())
    }

    fn z_load_full(&self, z: &ZInfo, m: &mut Rec, lcn: u64) -> R<()> {
        // Full indexes start 8 bytes after the map header.
        let pos = lcn
            .checked_mul(8)
            .and_then(|o| o.checked_add(z.hpos))
            .and_then(|o| o.checked_add(16))
            .ck("lcluster index")?;
        let di = self.read(pos, 8, "lcluster index")?;
        m.lcn = lcn;
        m.nextpackoff = pos.saturating_add(8);
        let advise = le16(&di, 0)?;
        m.typ = (advise & 3) as u8;
        if m.typ == LCLUSTER_NONHEAD {
            m.clusterofs = 1u64 << z.lclusterbits;
            let mut d0 = u64::from(le16(&di, 4)?);
            if d0 & LI_D0_CBLKCNT != 0 {
                if z.advise & (ADVISE_BIG_PCLUSTER_1 | ADVISE_BIG_PCLUSTER_2) == 0 {
                    return Err(corrupt("compressed block count without big pclusters"));
                }
                m.compressedblks = d0 & !LI_D0_CBLKCNT;
                d0 = 1;
            }
            m.delta = [d0, u64::from(le16(&di, 6)?)];
        } else {
            // A partial reference (deduplicated extent) decodes a prefix of its pcluster,
            // which every read here does anyway.
            let _ = advise & LI_PARTIAL_REF;
            m.clusterofs = u64::from(le16(&di, 2)?);
            m.pblk = u64::from(le32(&di, 4)?);
        }
        Ok(())
    }

    fn z_load_compact(&self, ino: &Inode, z: &ZInfo, m: &mut Rec, lcn: u64) -> R<()> {
        let lclusterbits = z.lclusterbits;
        let ebase = z.hpos.checked_add(8).ck("compact index")?;
        let totalidx = ino.size.div_ceil(self.blksz);
        if lcn >= totalidx || lclusterbits > 14 {
            return Err(corrupt(format!(
                "lcluster {lcn} out of range (nid {})",
                ino.nid
            )));
        }
        m.lcn = lcn;
        // Up to seven 4-byte entries align the 2-byte packs to 32 bytes.
        let initial_4b = ((32u64.saturating_sub(ebase % 32)) / 4) & 7;
        let mut compacted_2b = 0u64;
        if z.advise & ADVISE_COMPACTED_2B != 0 && initial_4b < totalidx {
            compacted_2b = (totalidx.saturating_sub(initial_4b) / 16).saturating_mul(16);
        }
        let mut pos = ebase;
        let mut idx = lcn;
        let mut shift = 2u32; // 4-byte entries
        if idx >= initial_4b {
            pos = pos.saturating_add(initial_4b.saturating_mul(4));
            idx = idx.saturating_sub(initial_4b);
            if idx < compacted_2b {
                shift = 1;
            } else {
                pos = pos.saturating_add(compacted_2b.saturating_mul(2));
                idx = idx.saturating_sub(compacted_2b);
            }
        }
        pos = pos.checked_add(idx << shift).ck("compact index")?;
        let vcnt: u32 = if shift == 2 {
            2
        } else if lclusterbits <= 12 {
            16
        } else {
            return Err(unsupported("2-byte compact indexes with large lclusters"));
        };
        let packsize = u64::from(vcnt << shift);
        let bytes = pos.checked_rem(packsize).ck("compact index")?;
        let pack = self.read(
            pos.saturating_sub(bytes),
            packsize as usize,
            "compact index",
        )?;
        m.nextpackoff = pos.saturating_sub(bytes).saturating_add(packsize);
        let lobits = lclusterbits.max(12);
        let encodebits = ((vcnt << shift).saturating_sub(4).saturating_mul(8))
            .checked_div(vcnt)
            .ck("compact index")?;
        let mut i = (bytes >> shift) as i64;
        let big_pcluster = z.advise & ADVISE_BIG_PCLUSTER_1 != 0;

        let (lo, typ) = decode_compacted(lobits, &pack, encodebits, i)?;
        m.typ = typ;
        if typ == LCLUSTER_NONHEAD {
            m.clusterofs = 1u64 << lclusterbits;
            if lo & LI_D0_CBLKCNT != 0 {
                if !big_pcluster {
                    return Err(corrupt("compressed block count without big pclusters"));
                }
                m.compressedblks = lo & !LI_D0_CBLKCNT;
                m.delta[0] = 1;
                return Ok(());
            } else if i.saturating_add(1) != i64::from(vcnt) {
                m.delta[0] = lo;
                return Ok(());
            }
            // The last entry of a pack stores delta[1]; derive delta[0] from the previous one.
            let (lo, typ) = decode_compacted(lobits, &pack, encodebits, i.saturating_sub(1))?;
            let lo = if typ != LCLUSTER_NONHEAD {
                0
            } else if lo & LI_D0_CBLKCNT != 0 {
                1
            } else {
                lo
            };
            m.delta[0] = lo.saturating_add(1);
            return Ok(());
        }
        m.clusterofs = lo;
        m.delta[0] = 0;
        // The pack stores the block address of its first pcluster; count the ones before.
        let mut nblk: u64;
        if !big_pcluster {
            nblk = 1;
            while i > 0 {
                i = i.saturating_sub(1);
                let (lo, typ) = decode_compacted(lobits, &pack, encodebits, i)?;
                if typ == LCLUSTER_NONHEAD {
                    i = i.saturating_sub(i64::try_from(lo).ok().ck("delta")?);
                }
                if i >= 0 {
                    nblk = nblk.saturating_add(1);
                }
            }
        } else {
            nblk = 0;
            while i > 0 {
                i = i.saturating_sub(1);
                let (lo, typ) = decode_compacted(lobits, &pack, encodebits, i)?;
                if typ == LCLUSTER_NONHEAD {
                    if lo & LI_D0_CBLKCNT != 0 {
                        i = i.saturating_sub(1);
                        nblk = nblk.saturating_add(lo & !LI_D0_CBLKCNT);
                        continue;
                    }
                    if lo <= 1 {
                        return Err(corrupt("bogus delta in a big pcluster"));
                    }
                    i = i.saturating_sub(i64::try_from(lo.saturating_sub(2)).ok().ck("delta")?);
                    continue;
                }
                nblk = nblk.saturating_add(1);
            }
        }
        let base_blk = u64::from(le32(&pack, (packsize as usize).saturating_sub(4))?);
        m.pblk = base_blk.checked_add(nblk).ck("block address")?;
        Ok(())
    }

    /// Go back `dist` lclusters (and further along delta[0]) to the extent's head.
    fn z_lookback(&self, ino: &Inode, z: &ZInfo, m: &mut Rec, mut dist: u64) -> R<u64> {
        loop {
            // Each step moves at least one lcluster back, so this ends.
            let Some(lcn) = m.lcn.checked_sub(dist) else {
                return Err(corrupt(format!(
                    "bogus lookback distance {dist} (nid {})",
                    ino.nid
                )));
            };
            self.z_load(ino, z, m, lcn)?;
            if m.typ == LCLUSTER_NONHEAD {
                dist = m.delta[0];
                if dist == 0 {
                    return Err(corrupt(format!("zero lookback distance (nid {})", ino.nid)));
                }
                continue;
            }
            m.headtype = m.typ;
            return (lcn << z.lclusterbits)
                .checked_add(m.clusterofs)
                .ck("extent start");
        }
    }

    /// Find the head of the extent that holds byte `ofs`: the recorder at the head, the
    /// extent's logical start and the end of what is known to belong to it.
    fn z_locate(&self, ino: &Inode, z: &ZInfo, ofs: u64) -> R<Located> {
        let bits = z.lclusterbits;
        let initial_lcn = ofs >> bits;
        let endoff = ofs & ((1u64 << bits).saturating_sub(1));
        let mut m = Rec::default();
        self.z_load(ino, z, &mut m, initial_lcn)?;
        let initial_nextpackoff = m.nextpackoff;
        let mut end = m
            .lcn
            .checked_add(1)
            .and_then(|l| l.checked_mul(1u64 << bits))
            .ck("extent end")?;
        let la;
        if m.typ != LCLUSTER_NONHEAD && endoff >= m.clusterofs {
            m.headtype = m.typ;
            la = (m.lcn << bits).saturating_add(m.clusterofs);
            // A ztailpacking EOF lcluster may end inside itself.
            if z.idata_size != 0 && end > ino.size {
                end = ino.size;
            }
        } else {
            let dist = if m.typ != LCLUSTER_NONHEAD {
                if m.lcn == 0 {
                    return Err(corrupt(format!(
                        "invalid logical cluster 0 (nid {})",
                        ino.nid
                    )));
                }
                end = (m.lcn << bits).saturating_add(m.clusterofs);
                1
            } else {
                m.delta[0]
            };
            la = self.z_lookback(ino, z, &mut m, dist)?;
        }
        Ok(Located {
            rec: m,
            la,
            end,
            initial_nextpackoff,
        })
    }

    /// Map byte `ofs` of a compressed file to its extent.
    fn z_map(&self, ino: &Inode, z: &ZInfo, ofs: u64) -> R<ZMap> {
        let fragment = z.advise & ADVISE_FRAGMENT_PCLUSTER != 0;
        if fragment && z.tail_headlcn == 0 {
            return Ok(ZMap {
                la: 0,
                llen: ino.size,
                kind: ZKind::Fragment,
                fmt: Fmt::Shifted,
            });
        }
        let loc = self.z_locate(ino, z, ofs)?;
        let mut m = loc.rec;
        let la = loc.la;
        let llen = loc.end.checked_sub(la).ck("extent length")?;
        let ztail = z.idata_size != 0;
        let inline_tail = ztail && m.lcn == z.tail_headlcn;
        let kind = if inline_tail {
            let plen = u64::from(z.idata_size);
            if self.blkoff(z.idataoff).saturating_add(plen) > self.blksz {
                return Err(corrupt(format!("tail-packing pcluster of {plen} bytes")));
            }
            ZKind::Stored {
                pa: z.idataoff,
                plen,
            }
        } else if fragment && m.lcn == z.tail_headlcn {
            ZKind::Fragment
        } else {
            let pa = self.blk_pos(m.pblk)?;
            let blks = self.z_compressed_blocks(ino, z, &mut m)?;
            ZKind::Stored {
                pa,
                plen: self.blk_pos(blks)?,
            }
        };
        let fmt = match m.headtype {
            LCLUSTER_PLAIN => {
                if let ZKind::Stored { plen, .. } = kind
                    && llen > plen
                {
                    return Err(corrupt("uncompressed extent longer than its pcluster"));
                }
                // mkfs.erofs writes an uncompressed inline tail unrotated even when the
                // inode's other uncompressed pclusters are interlaced.
                if z.advise & ADVISE_INTERLACED_PCLUSTER != 0 && !inline_tail {
                    Fmt::Interlaced
                } else {
                    Fmt::Shifted
                }
            }
            LCLUSTER_HEAD2 => Fmt::Alg(z.algs[1]),
            _ => Fmt::Alg(z.algs[0]),
        };
        if let ZKind::Stored { plen, .. } = kind
            && plen > PCLUSTER_MAX_SIZE
        {
            return Err(corrupt(format!("pcluster of {plen} bytes")));
        }
        if llen > PCLUSTER_MAX_DSIZE && !matches!(kind, ZKind::Fragment) {
            return Err(corrupt(format!("extent of {llen} bytes")));
        }
        Ok(ZMap {
            la,
            llen,
            kind,
            fmt,
        })
    }

    /// Encoded size, in blocks, of the pcluster whose head `m` holds.
    fn z_compressed_blocks(&self, ino: &Inode, z: &ZInfo, m: &mut Rec) -> R<u64> {
        let bigpcl1 = z.advise & ADVISE_BIG_PCLUSTER_1 != 0;
        let bigpcl2 = z.advise & ADVISE_BIG_PCLUSTER_2 != 0;
        let lcn = m.lcn.saturating_add(1);
        let beyond = lcn
            .checked_mul(1u64 << z.lclusterbits)
            .is_none_or(|p| p >= ino.size);
        if (m.headtype == LCLUSTER_HEAD1 && !bigpcl1)
            || ((m.headtype == LCLUSTER_PLAIN || m.headtype == LCLUSTER_HEAD2) && !bigpcl2)
            || beyond
        {
            m.compressedblks = 1;
        }
        if m.compressedblks != 0 {
            return Ok(m.compressedblks);
        }
        self.z_load(ino, z, m, lcn)?;
        if m.typ == LCLUSTER_NONHEAD {
            if m.delta[0] != 1 || m.compressedblks == 0 {
                return Err(corrupt(format!(
                    "bogus compressed block count at lcn {lcn}"
                )));
            }
            return Ok(m.compressedblks);
        }
        // The next lcluster is a head: a one-block pcluster.
        Ok(1)
    }

    /// Decode bytes `[skip, length)` of extent `m`.
    fn z_decode(
        &self,
        ino: &Inode,
        z: &ZInfo,
        m: &ZMap,
        skip: u64,
        length: u64,
        depth: u8,
    ) -> R<Vec<u8>> {
        let count = to_usize(length.checked_sub(skip).ck("extent skip")?, "extent")?;
        let (pa, plen) = match m.kind {
            ZKind::Fragment => return self.read_fragment(ino, z, skip, count, depth),
            ZKind::Stored { pa, plen } => (pa, plen),
        };
        let raw = self.read(pa, to_usize(plen, "pcluster")?, "pcluster")?;
        let skip_u = to_usize(skip, "extent skip")?;
        let length_u = to_usize(length, "extent")?;
        match m.fmt {
            Fmt::Shifted => {
                if length > plen {
                    return Err(corrupt("uncompressed extent longer than its pcluster"));
                }
                Ok(raw
                    .get(skip_u..length_u)
                    .ck("uncompressed extent")?
                    .to_vec())
            }
            Fmt::Interlaced => {
                if length > plen || plen > self.blksz {
                    return Err(corrupt("interlaced pcluster size"));
                }
                let bs = to_usize(self.blksz, "block size")?;
                let start = to_usize(
                    self.blkoff(self.blkoff(m.la).saturating_add(skip)),
                    "interlace",
                )?;
                let right = bs.saturating_sub(start).min(count);
                let mut out = Vec::with_capacity(count);
                out.extend_from_slice(
                    raw.get(start..start.saturating_add(right))
                        .ck("interlaced pcluster")?,
                );
                out.extend_from_slice(
                    raw.get(..count.saturating_sub(right))
                        .ck("interlaced pcluster")?,
                );
                Ok(out)
            }
            Fmt::Alg(alg) => {
                let decoded = decompress(alg, &raw, length_u)?;
                Ok(decoded.get(skip_u..).ck("decoded extent")?.to_vec())
            }
        }
    }

    fn read_fragment(
        &self,
        ino: &Inode,
        z: &ZInfo,
        skip: u64,
        count: usize,
        depth: u8,
    ) -> R<Vec<u8>> {
        if depth >= MAX_DEPTH || ino.nid == self.packed_nid || self.packed_nid == 0 {
            return Err(corrupt(format!(
                "fragment of nid {} without a usable packed inode",
                ino.nid
            )));
        }
        if !self.has(INCOMPAT_FRAGMENTS) {
            return Err(corrupt("fragment without the fragments feature"));
        }
        let packed = self.inode(self.packed_nid)?;
        let at = z.fragmentoff.checked_add(skip).ck("fragment offset")?;
        self.read_range(&packed, at, count, depth.saturating_add(1))
    }
}

/// What the map header of a compressed inode says.
struct ZInfo {
    advise: u16,
    lclusterbits: u32,
    algs: [u8; 2],
    fragmentoff: u64,
    idata_size: u16,
    idataoff: u64,
    tail_headlcn: u64,
    /// Byte offset of the map header.
    hpos: u64,
}

/// The map recorder: the last lcluster index loaded, plus what a walk gathered.
#[derive(Default, Clone, Debug)]
struct Rec {
    lcn: u64,
    typ: u8,
    headtype: u8,
    clusterofs: u64,
    delta: [u64; 2],
    pblk: u64,
    compressedblks: u64,
    nextpackoff: u64,
}

struct Located {
    rec: Rec,
    la: u64,
    end: u64,
    initial_nextpackoff: u64,
}

#[derive(Debug)]
enum ZKind {
    /// Encoded bytes at `pa` (absolute), `plen` long.
    Stored { pa: u64, plen: u64 },
    /// In the packed inode at the file's fragment offset.
    Fragment,
}

#[derive(Debug, Clone, Copy)]
enum Fmt {
    Shifted,
    Interlaced,
    Alg(u8),
}

#[derive(Debug)]
struct ZMap {
    la: u64,
    llen: u64,
    kind: ZKind,
    fmt: Fmt,
}

/// Entry `i` of a compact index pack: (low bits, lcluster type).
fn decode_compacted(lobits: u32, pack: &[u8], encodebits: u32, i: i64) -> R<(u64, u8)> {
    let i = u64::try_from(i).map_err(|_| corrupt("compact index entry"))?;
    let bitpos = i
        .checked_mul(u64::from(encodebits))
        .ck("compact index entry")?;
    let byte = to_usize(bitpos / 8, "compact index entry")?;
    // The last 32-bit word may run past a short pack; pad with zeros like a block would.
    let mut w = [0u8; 4];
    for (k, b) in w.iter_mut().enumerate() {
        *b = pack.get(byte.saturating_add(k)).copied().unwrap_or(0);
    }
    let v = u32::from_le_bytes(w) >> (bitpos % 8);
    let lo = u64::from(v & ((1u32 << lobits).saturating_sub(1)));
    let typ = ((v >> lobits) & 3) as u8;
    Ok((lo, typ))
}

/// Find `name` in one directory block; `blk` holds the block's valid bytes.
fn find_dirent(blk: &[u8], name: &[u8], blksz: u64, dir_nid: u64) -> R<Option<u64>> {
    let bad = || corrupt(format!("bogus directory entry in nid {dir_nid}"));
    let maxsize = blk.len();
    let nameoff0 = usize::from(le16(blk, 8)?);
    if nameoff0 < 12 || nameoff0 as u64 >= blksz || nameoff0 > maxsize {
        return Err(corrupt(format!(
            "invalid first name offset {nameoff0} in directory nid {dir_nid}"
        )));
    }
    let count = nameoff0 / 12;
    for i in 0..count {
        let de = i.checked_mul(12).ok_or_else(bad)?;
        let nameoff = usize::from(le16(blk, de.saturating_add(8))?);
        let namelen = if i.saturating_add(1) >= count {
            let rest = blk.get(nameoff..).ok_or_else(bad)?;
            rest.iter().position(|&b| b == 0).unwrap_or(rest.len())
        } else {
            let next = usize::from(le16(blk, de.saturating_add(20))?);
            next.checked_sub(nameoff).ok_or_else(bad)?
        };
        if nameoff.saturating_add(namelen) > maxsize || namelen > 255 {
            return Err(bad());
        }
        let de_name = blk
            .get(nameoff..nameoff.saturating_add(namelen))
            .ok_or_else(bad)?;
        if de_name == name {
            let nid = le64(blk, de)?;
            return Ok(Some(nid));
        }
    }
    Ok(None)
}

/// Decode one compressed pcluster to exactly `want` bytes (a prefix of its data).
fn decompress(alg: u8, raw: &[u8], want: usize) -> R<Vec<u8>> {
    // With zero padding the encoded stream ends at the pcluster's end and zeros pad its
    // start. No stream starts with a zero byte (LZ4 would begin with a match into nothing;
    // MicroLZMA starts with the inverted properties, Zstandard with its magic; erofs-utils
    // skips zeros for DEFLATE too), so skipping them is always safe.
    let margin = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    let input = raw.get(margin..).unwrap_or_default();
    if input.is_empty() {
        return Err(corrupt("empty compressed pcluster"));
    }
    let short = |name: &str, e: std::io::Error| {
        corrupt(format!("{name} data does not decode to {want} bytes: {e}"))
    };
    match alg {
        ALG_LZ4 => lz4_decode_prefix(input, want)
            .ok_or_else(|| corrupt(format!("LZ4 data does not decode to {want} bytes"))),
        ALG_LZMA => {
            // MicroLZMA: a raw LZMA stream whose first range-coder byte (always zero) is
            // replaced by the bitwise NOT of the lc/lp/pb properties byte.
            let (first, rest) = input.split_first().ck("LZMA pcluster")?;
            let props = !*first;
            if props >= 9 * 5 * 5 {
                return Err(corrupt(format!("MicroLZMA properties byte {props:#x}")));
            }
            // The window never needs to exceed what is decoded; the floor keeps the
            // decoder's minimum.
            let dict = u32::try_from(want.max(4096)).map_err(|_| corrupt("LZMA extent"))?;
            let stream = std::io::Read::chain(&[0u8][..], rest);
            // No end marker and possibly a prefix only: declare the size unknown and stop
            // reading at `want` (a known size would reject a match running past it).
            let rd = lzma_rust2::LzmaReader::new_with_props(stream, u64::MAX, props, dict, None)
                .map_err(|e| short("LZMA", e))?;
            read_exactly(rd, want).map_err(|e| short("LZMA", e))
        }
        ALG_DEFLATE => read_exactly(flate2::read::DeflateDecoder::new(input), want)
            .map_err(|e| short("DEFLATE", e)),
        ALG_ZSTD => {
            let rd = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                input,
                PCLUSTER_MAX_DSIZE.saturating_mul(2),
            )
            .map_err(|e| corrupt(format!("Zstandard frame: {e}")))?;
            read_exactly(rd, want).map_err(|e| short("Zstandard", e))
        }
        other => Err(unsupported(format!("compression algorithm {other}"))),
    }
}

/// The first `want` bytes a decoder yields (a prefix of its whole output).
fn read_exactly(mut rd: impl std::io::Read, want: usize) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; want];
    rd.read_exact(&mut out)?;
    Ok(out)
}

/// Decode the first `want` bytes of an LZ4 block. EROFS needs this "partial decoding": an
/// extent may use only a prefix of what its pcluster decodes to (deduplicated extents, or
/// an extent whose end is cut by the read), which `lz4_flex` cannot do (it decodes whole
/// blocks and fails when the output buffer is short). `None` when the input is malformed
/// or ends before `want` bytes.
pub(crate) fn lz4_decode_prefix(src: &[u8], want: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(want);
    let mut i = 0usize;
    let read_len = |i: &mut usize, mut n: usize| -> Option<usize> {
        loop {
            let b = *src.get(*i)?;
            *i = i.checked_add(1)?;
            n = n.checked_add(usize::from(b))?;
            if b != 255 {
                return Some(n);
            }
        }
    };
    while out.len() < want {
        let token = *src.get(i)?;
        i = i.checked_add(1)?;
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit = read_len(&mut i, lit)?;
        }
        let room = want.checked_sub(out.len())?;
        let take = lit.min(room);
        out.extend_from_slice(src.get(i..i.checked_add(take)?)?);
        if take < lit || out.len() == want {
            break;
        }
        i = i.checked_add(lit)?;
        let off = usize::from(u16::from_le_bytes([
            *src.get(i)?,
            *src.get(i.checked_add(1)?)?,
        ]));
        i = i.checked_add(2)?;
        let mut ml = usize::from(token & 15);
        if ml == 15 {
            ml = read_len(&mut i, ml)?;
        }
        let ml = ml.checked_add(4)?.min(want.checked_sub(out.len())?);
        if off == 0 || off > out.len() {
            return None;
        }
        let start = out.len().checked_sub(off)?;
        if off >= ml {
            out.extend_from_within(start..start.checked_add(ml)?);
        } else {
            // Overlapping copy: repeat the last `off` bytes.
            for k in 0..ml {
                let b = *out.get(start.checked_add(k)?)?;
                out.push(b);
            }
        }
    }
    (out.len() == want).then_some(out)
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn lz4_prefix_matches_lz4_flex() {
        let mut data = b"NAME=\"Home Assistant OS\"\nVERSION=\"17.1\"\n".repeat(50);
        data.extend(pseudo_random(3000, 7));
        data.extend(std::iter::repeat_n(b'z', 500));
        let enc = lz4_flex::block::compress(&data);
        for want in [0, 1, 17, 100, 1000, 2040, 3500, data.len()] {
            assert_eq!(lz4_decode_prefix(&enc, want).unwrap(), data[..want]);
        }
        assert!(lz4_decode_prefix(&enc, data.len() + 1).is_none());
        for cut in 0..enc.len() {
            let _ = lz4_decode_prefix(&enc[..cut], data.len());
        }
    }

    #[test]
    fn walk_follows_links() {
        // A toy tree: nodes are indices; 0 root, 1 etc, 2 usr, 3 lib, 4 os-release, 5 link.
        let is_dir = |n: &usize| matches!(*n, 0..=3);
        let is_link = |n: &usize| *n == 5;
        let lookup = |d: &usize, name: &[u8]| -> Result<Option<usize>, ()> {
            Ok(match (*d, name) {
                (0, b"etc") => Some(1),
                (0, b"usr") => Some(2),
                (2, b"lib") => Some(3),
                (3, b"os-release") => Some(4),
                (1, b"os-release") => Some(5),
                _ => None,
            })
        };
        let readlink = |_: &usize| -> Result<Vec<u8>, ()> { Ok(b"../usr/lib/os-release".to_vec()) };
        let r = walk("/etc/os-release", 0, is_dir, is_link, lookup, readlink);
        assert!(matches!(r, Ok(4)));
        let r = walk(
            "/usr/lib/os-release/x",
            0,
            is_dir,
            is_link,
            lookup,
            readlink,
        );
        assert!(matches!(r, Err(WalkError::NotADirectory(_))));
        let r = walk("/usr/nope", 0, is_dir, is_link, lookup, readlink);
        assert!(matches!(r, Err(WalkError::NotFound(_))));
        let self_link = |_: &usize| -> Result<Vec<u8>, ()> { Ok(b"/etc/os-release".to_vec()) };
        let r = walk("/etc/os-release", 0, is_dir, is_link, lookup, self_link);
        assert!(matches!(r, Err(WalkError::Loop)));
    }
}

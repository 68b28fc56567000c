//! FAT12/16/32: the boot-sector probe ([`probe`]) and a small read-only file reader
//! ([`FatFs`]) used to read the HAOS boot partition (`rauc.db`, `EFI/BOOT/grubenv`,
//! `cmdline.txt`, `config.txt`, …) without mounting.
//!
//! Probe: BPB validation (jump byte, bytes per sector 512..4096 and sectors per cluster
//! powers of two, reserved sectors and FAT count non-zero, media byte, sizes that add up);
//! the FAT type comes from the cluster count as in Microsoft's FAT specification (<4085:
//! FAT12, <65525: FAT16), except that a BPB whose 16-bit FAT size is zero is FAT32 whatever
//! its cluster count (as Linux mounts it; mkfs.fat makes such volumes with `-F 32` on small
//! media). The label and volume id (`XXXX-XXXX`) come from the extended BPB; the reader's
//! [`FatFs::volume_label`] reads the root-directory label entry, which is what `blkid`
//! reports and wins in [`FatFs::info`].
//!
//! Reader: long file names (UTF-16, checksum-checked) else 8.3 names with the NT lower-case
//! flags, case-insensitive lookup on either name, cluster chains followed with loop
//! detection and every cluster number bounds-checked, FAT12 packed entries, the FAT32 root
//! cluster and active-FAT selection. It never writes and never panics on any input: every
//! byte of the image is untrusted. Errors name the path, prefixed by an optional context
//! ([`FatFs::with_context`]), e.g. `boot partition: /EFI/BOOT/grubenv: cluster chain loops
//! at cluster 17`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::sync::LazyLock;

use super::{FsInfo, FsKind};
use crate::io::ReadAt;

/// The FAT specification caps a directory at 65536 entries of 32 bytes.
const MAX_DIR_BYTES: u64 = 65536 * 32;
/// Size of the blocks of the FAT kept in the one-block cache.
const FAT_CACHE_BLOCK: u64 = 4096;
/// Highest cluster count FAT32 can address (entries are 28 bits, top values reserved).
const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF5;

/// Errors of the FAT reader. `path` fields already carry the context prefix.
#[derive(Debug, thiserror::Error)]
pub enum FatError {
    #[error("not a FAT filesystem: {0}")]
    NotFat(String),
    #[error("{path}: read of {len} bytes at offset {offset} failed: {cause}")]
    Io {
        path: String,
        offset: u64,
        len: u64,
        cause: io::Error,
    },
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    #[error("{path}: is a directory")]
    IsADirectory { path: String },
    #[error("{path}: file is {size} bytes, more than the {max}-byte limit")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("{path}: {detail}")]
    Corrupt { path: String, detail: String },
}

/// Last-write time of a directory entry (local time as stored; FAT has no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FatTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl FatTime {
    fn from_raw(date: u16, time: u16) -> Option<FatTime> {
        if date == 0 {
            return None;
        }
        Some(FatTime {
            year: 1980 + (date >> 9),
            month: ((date >> 5) & 0x0F) as u8,
            day: (date & 0x1F) as u8,
            hour: (time >> 11) as u8,
            minute: ((time >> 5) & 0x3F) as u8,
            second: ((time & 0x1F) * 2) as u8,
        })
    }
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirEntry {
    /// The long name when a valid one precedes the entry, else the 8.3 name with the NT
    /// lower-case flags applied (`config.txt`).
    pub name: String,
    /// The 8.3 name as stored (`CONFIG.TXT`, `KERNEL~1.IMG`).
    pub short_name: String,
    pub is_dir: bool,
    /// File size in bytes (0 for directories).
    pub size: u64,
    pub first_cluster: u32,
    /// Attribute byte (0x01 read-only, 0x02 hidden, 0x04 system, 0x10 dir, 0x20 archive).
    pub attributes: u8,
    pub modified: Option<FatTime>,
}

/// Parsed and validated boot sector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bpb {
    bits: u8,
    bytes_per_sector: u64,
    sectors_per_cluster: u64,
    reserved_sectors: u64,
    num_fats: u64,
    root_entries: u64,
    total_sectors: u64,
    fat_sectors: u64,
    /// Data clusters, numbered 2..clusters+2 (clamped to what the FAT can hold).
    clusters: u64,
    root_cluster: u32,
    active_fat: u64,
    volume_id: Option<u32>,
    label: Option<String>,
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    match b.get(off..off.checked_add(2)?)? {
        &[x, y] => Some(u16::from_le_bytes([x, y])),
        _ => None,
    }
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    match b.get(off..off.checked_add(4)?)? {
        &[a, c, d, e] => Some(u32::from_le_bytes([a, c, d, e])),
        _ => None,
    }
}

fn byte(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

/// Upper half of code page 437, the default OEM code page for 8.3 names (as Linux uses).
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐\
└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

fn oem_char(b: u8) -> char {
    // Decoded once: a garbage directory of 65536 entries must not cost a scan of the
    // table per byte.
    static HIGH: LazyLock<Vec<char>> = LazyLock::new(|| CP437_HIGH.chars().collect());
    if b < 0x80 {
        char::from(b)
    } else {
        HIGH.get(usize::from(b - 0x80))
            .copied()
            .unwrap_or('\u{fffd}')
    }
}

fn oem_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| oem_char(b)).collect()
}

/// An 11-byte label field: trailing spaces/NULs trimmed, `NO NAME` and empty → None.
fn label_from(field: &[u8]) -> Option<String> {
    let s = oem_string(field);
    let s = s.trim_end_matches([' ', '\0']);
    if s.is_empty() || s == "NO NAME" {
        None
    } else {
        Some(s.to_string())
    }
}

fn parse_bpb(b: &[u8]) -> Result<Bpb, String> {
    let need = |what: &str| format!("boot sector truncated before the {what}");
    let jump = byte(b, 0).ok_or_else(|| need("jump instruction"))?;
    if jump != 0xEB && jump != 0xE9 {
        return Err(format!("jump byte 0x{jump:02x} is not 0xEB or 0xE9"));
    }
    let bps = le16(b, 11).ok_or_else(|| need("BPB"))?;
    if !matches!(bps, 512 | 1024 | 2048 | 4096) {
        return Err(format!("{bps} bytes per sector"));
    }
    let spc = byte(b, 13).ok_or_else(|| need("BPB"))?;
    if spc == 0 || !spc.is_power_of_two() {
        return Err(format!("{spc} sectors per cluster"));
    }
    let reserved = le16(b, 14).ok_or_else(|| need("BPB"))?;
    if reserved == 0 {
        return Err("no reserved sectors".into());
    }
    let fats = byte(b, 16).ok_or_else(|| need("BPB"))?;
    if fats == 0 {
        return Err("zero FATs".into());
    }
    let root_entries = le16(b, 17).ok_or_else(|| need("BPB"))?;
    let tot16 = le16(b, 19).ok_or_else(|| need("BPB"))?;
    let media = byte(b, 21).ok_or_else(|| need("BPB"))?;
    if media != 0xF0 && media < 0xF8 {
        return Err(format!("media byte 0x{media:02x}"));
    }
    let fat16 = le16(b, 22).ok_or_else(|| need("BPB"))?;
    let tot32 = le32(b, 32).ok_or_else(|| need("BPB"))?;
    let is32 = fat16 == 0;
    let fat_sectors = if is32 {
        u64::from(le32(b, 36).ok_or_else(|| need("FAT32 BPB"))?)
    } else {
        u64::from(fat16)
    };
    if fat_sectors == 0 {
        return Err("FAT size is zero".into());
    }
    let total_sectors = if tot16 != 0 {
        u64::from(tot16)
    } else {
        u64::from(tot32)
    };
    if total_sectors == 0 {
        return Err("total sector count is zero".into());
    }
    let bps = u64::from(bps);
    let spc = u64::from(spc);
    let root_sectors = (u64::from(root_entries) * 32).div_ceil(bps);
    let meta = u64::from(reserved) + u64::from(fats) * fat_sectors + root_sectors;
    let data_sectors = total_sectors
        .checked_sub(meta)
        .filter(|&d| d > 0)
        .ok_or_else(|| format!("{total_sectors} sectors leave no room for data after {meta}"))?;
    let mut clusters = data_sectors / spc;
    if clusters == 0 {
        return Err("no data clusters".into());
    }
    let bits: u8 = if is32 {
        32
    } else if clusters < 4085 {
        12
    } else if clusters < 65525 {
        16
    } else {
        return Err(format!(
            "{clusters} clusters need FAT32, but the BPB has a 16-bit FAT size"
        ));
    };
    if is32 && root_entries != 0 {
        return Err(format!("FAT32 BPB with {root_entries} fixed root entries"));
    }
    // Clamp to what the FAT can describe (as Linux does); entries 0 and 1 are reserved.
    let fat_entries = fat_sectors * bps * 8 / u64::from(bits);
    clusters = clusters.min(fat_entries.saturating_sub(2));
    if bits == 32 {
        clusters = clusters.min(FAT32_MAX_CLUSTERS);
    }
    if clusters == 0 {
        return Err("the FAT is too small to describe any cluster".into());
    }
    let (sig_off, id_off, label_off) = if is32 { (66, 67, 71) } else { (38, 39, 43) };
    let mut root_cluster = 0;
    let mut active_fat = 0;
    if is32 {
        let flags = le16(b, 40).ok_or_else(|| need("FAT32 BPB"))?;
        if flags & 0x80 != 0 {
            active_fat = u64::from(flags & 0x0F);
            if active_fat >= u64::from(fats) {
                return Err(format!(
                    "active FAT {active_fat} of only {fats} (mirroring disabled)"
                ));
            }
        }
        root_cluster = le32(b, 44).ok_or_else(|| need("FAT32 BPB"))?;
        if u64::from(root_cluster) < 2 || u64::from(root_cluster) > clusters + 1 {
            return Err(format!(
                "FAT32 root cluster {root_cluster} outside 2..={}",
                clusters + 1
            ));
        }
    }
    let sig = byte(b, sig_off);
    let volume_id = match sig {
        Some(0x28 | 0x29) => le32(b, id_off),
        _ => None,
    };
    let label = match sig {
        Some(0x29) => b.get(label_off..label_off + 11).and_then(label_from),
        _ => None,
    };
    Ok(Bpb {
        bits,
        bytes_per_sector: bps,
        sectors_per_cluster: spc,
        reserved_sectors: u64::from(reserved),
        num_fats: u64::from(fats),
        root_entries: u64::from(root_entries),
        total_sectors,
        fat_sectors,
        clusters,
        root_cluster,
        active_fat,
        volume_id,
        label,
    })
}

impl Bpb {
    fn cluster_size(&self) -> u64 {
        self.bytes_per_sector * self.sectors_per_cluster
    }

    fn info(&self) -> FsInfo {
        FsInfo {
            kind: FsKind::Fat {
                bits: self.bits,
                cluster_size: u32::try_from(self.cluster_size()).unwrap_or(u32::MAX),
                clusters: u32::try_from(self.clusters).unwrap_or(u32::MAX),
            },
            label: self.label.clone(),
            uuid: self
                .volume_id
                .map(|id| format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF)),
            size_bytes: self.total_sectors * self.bytes_per_sector,
            used_bytes: None,
        }
    }
}

/// Recognise a FAT boot sector in the first bytes of a partition (up to 4096). Label and
/// UUID come from the extended BPB (see [`FatFs::info`] for the root-directory label).
/// Returns `None` when the BPB does not validate; never panics.
pub fn probe(head: &[u8]) -> Option<FsInfo> {
    parse_bpb(head).ok().map(|b| b.info())
}

/// Where a directory's entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirLoc {
    /// FAT12/16 fixed root region.
    FixedRoot,
    /// A cluster chain (FAT32 root, every subdirectory).
    Chain(u32),
}

/// What a FAT entry says about the next cluster.
enum Link {
    Next(u32),
    End,
    Free,
    Bad,
    Invalid(u32),
}

/// A read-only FAT filesystem over a partition window.
pub struct FatFs<'a> {
    r: &'a dyn ReadAt,
    bpb: Bpb,
    fat_offset: u64,
    fat_len: u64,
    root_offset: u64,
    root_len: u64,
    data_offset: u64,
    context: String,
    /// (block index, bytes) of the last FAT block read.
    cache: RefCell<Option<(u64, Vec<u8>)>>,
}

impl std::fmt::Debug for FatFs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatFs")
            .field("bits", &self.bpb.bits)
            .field("clusters", &self.bpb.clusters)
            .field("cluster_size", &self.bpb.cluster_size())
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// Split a path into components: `/` or `\` separated, `.` and empty ones dropped, `..`
/// going up (never above the root).
fn components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split(['/', '\\']) {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn display_path(comps: &[&str]) -> String {
    if comps.is_empty() {
        "/".to_string()
    } else {
        let mut s = String::new();
        for c in comps {
            s.push('/');
            s.push_str(c);
        }
        s
    }
}

fn lfn_checksum(name: &[u8]) -> u8 {
    name.iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// Long-name pieces being collected for the next short entry.
struct LfnState {
    units: Vec<u16>,
    checksum: u8,
    /// Next expected sequence number; 0 when complete.
    expect: u8,
}

/// The 13 UTF-16 units of one LFN entry.
fn lfn_units(e: &[u8]) -> Vec<u16> {
    [1usize, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
        .iter()
        .map(|&o| le16(e, o).unwrap_or(0xFFFF))
        .collect()
}

fn short_display(name: &[u8], nt_flags: u8) -> (String, String) {
    let mut base: Vec<u8> = name.get(..8).unwrap_or(&[]).to_vec();
    if base.first() == Some(&0x05)
        && let Some(b) = base.first_mut()
    {
        *b = 0xE5;
    }
    let ext = name.get(8..11).unwrap_or(&[]);
    let base_s = oem_string(&base).trim_end_matches(' ').to_string();
    let ext_s = oem_string(ext).trim_end_matches(' ').to_string();
    let join = |b: &str, e: &str| {
        if e.is_empty() {
            b.to_string()
        } else {
            format!("{b}.{e}")
        }
    };
    let stored = join(&base_s, &ext_s);
    let b = if nt_flags & 0x08 != 0 {
        base_s.to_ascii_lowercase()
    } else {
        base_s
    };
    let e = if nt_flags & 0x10 != 0 {
        ext_s.to_ascii_lowercase()
    } else {
        ext_s
    };
    (join(&b, &e), stored)
}

/// Parse raw directory bytes into entries (without `.`/`..`, deleted entries and labels)
/// and the volume-label entry, if any.
fn parse_dir(bytes: &[u8], fat32: bool) -> (Vec<DirEntry>, Option<String>) {
    let mut out = Vec::new();
    let mut label = None;
    let mut lfn: Option<LfnState> = None;
    for e in bytes.chunks_exact(32) {
        let first = byte(e, 0).unwrap_or(0);
        let attr = byte(e, 11).unwrap_or(0);
        if first == 0x00 {
            break;
        }
        if first == 0xE5 {
            lfn = None;
            continue;
        }
        if attr & 0x3F == 0x0F {
            let ord = first & 0x3F;
            let csum = byte(e, 13).unwrap_or(0);
            if first & 0x40 != 0 {
                lfn = if (1..=20).contains(&ord) {
                    let mut units = vec![0xFFFFu16; usize::from(ord) * 13];
                    let start = usize::from(ord - 1) * 13;
                    if let Some(slot) = units.get_mut(start..start + 13) {
                        slot.copy_from_slice(&lfn_units(e));
                    }
                    Some(LfnState {
                        units,
                        checksum: csum,
                        expect: ord - 1,
                    })
                } else {
                    None
                };
            } else {
                lfn = match lfn.take() {
                    Some(mut st) if st.expect == ord && ord > 0 && st.checksum == csum => {
                        let start = usize::from(ord - 1) * 13;
                        if let Some(slot) = st.units.get_mut(start..start + 13) {
                            slot.copy_from_slice(&lfn_units(e));
                        }
                        st.expect = ord - 1;
                        Some(st)
                    }
                    _ => None,
                };
            }
            continue;
        }
        let pending = lfn.take();
        let name_raw = e.get(..11).unwrap_or(&[]);
        if attr & 0x08 != 0 {
            // Volume label (only meaningful in the root directory; the caller decides).
            if label.is_none() {
                label = label_from(name_raw);
            }
            continue;
        }
        if name_raw.first() == Some(&b'.') {
            let dots = oem_string(name_raw);
            if matches!(dots.trim_end(), "." | "..") {
                continue;
            }
        }
        if name_raw.iter().any(|&b| b < 0x20 && b != 0x05) {
            continue; // not a plausible name: garbage, skip it
        }
        let (short_name_disp, stored) = short_display(name_raw, byte(e, 12).unwrap_or(0));
        let long = pending
            .filter(|st| st.expect == 0 && st.checksum == lfn_checksum(name_raw))
            .map(|st| {
                let end = st
                    .units
                    .iter()
                    .position(|&u| u == 0)
                    .unwrap_or(st.units.len());
                let units = st.units.get(..end).unwrap_or(&[]);
                char::decode_utf16(units.iter().copied())
                    .map(|r| r.unwrap_or('\u{fffd}'))
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty());
        let hi = if fat32 {
            u32::from(le16(e, 20).unwrap_or(0))
        } else {
            0
        };
        let first_cluster = (hi << 16) | u32::from(le16(e, 26).unwrap_or(0));
        let is_dir = attr & 0x10 != 0;
        out.push(DirEntry {
            name: long.unwrap_or(short_name_disp),
            short_name: stored,
            is_dir,
            size: if is_dir {
                0
            } else {
                u64::from(le32(e, 28).unwrap_or(0))
            },
            first_cluster,
            attributes: attr,
            modified: FatTime::from_raw(le16(e, 24).unwrap_or(0), le16(e, 22).unwrap_or(0)),
        });
    }
    (out, label)
}

fn name_matches(e: &DirEntry, want: &str) -> bool {
    let w = want.to_lowercase();
    e.name.to_lowercase() == w || e.short_name.to_lowercase() == w
}

impl<'a> FatFs<'a> {
    /// Open the FAT filesystem at the start of `r` (a partition window).
    pub fn open(r: &'a dyn ReadAt) -> Result<Self, FatError> {
        let n = r.len().min(4096);
        let mut head = vec![0u8; usize::try_from(n).unwrap_or(4096)];
        r.read_exact_at(&mut head, 0).map_err(|e| FatError::Io {
            path: "boot sector".into(),
            offset: 0,
            len: n,
            cause: e,
        })?;
        let bpb = parse_bpb(&head).map_err(FatError::NotFat)?;
        let bps = bpb.bytes_per_sector;
        let fat_len = bpb.fat_sectors * bps;
        let fat_offset = bpb.reserved_sectors * bps + bpb.active_fat * fat_len;
        let root_offset = (bpb.reserved_sectors + bpb.num_fats * bpb.fat_sectors) * bps;
        let root_len = bpb.root_entries * 32;
        let data_offset = root_offset + root_len.div_ceil(bps) * bps;
        Ok(FatFs {
            r,
            bpb,
            fat_offset,
            fat_len,
            root_offset,
            root_len,
            data_offset,
            context: String::new(),
            cache: RefCell::new(None),
        })
    }

    /// Prefix every error path with `context` (e.g. `boot partition`).
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// 12, 16 or 32.
    pub fn bits(&self) -> u8 {
        self.bpb.bits
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        self.bpb.cluster_size()
    }

    /// Number of data clusters (valid cluster numbers are `2..=cluster_count()+1`).
    pub fn cluster_count(&self) -> u64 {
        self.bpb.clusters
    }

    /// The label of the root-directory volume-label entry (what `blkid` reports), if any.
    pub fn volume_label(&self) -> Option<String> {
        let bytes = self.dir_bytes(self.root_loc(), "/").ok()?;
        parse_dir(&bytes, self.bpb.bits == 32).1
    }

    /// Probe facts, with the root-directory label preferred over the BPB one.
    pub fn info(&self) -> FsInfo {
        let mut info = self.bpb.info();
        if let Some(l) = self.volume_label() {
            info.label = Some(l);
        }
        info
    }

    fn at(&self, path: &str) -> String {
        if self.context.is_empty() {
            path.to_string()
        } else {
            format!("{}: {path}", self.context)
        }
    }

    fn corrupt(&self, path: &str, detail: impl Into<String>) -> FatError {
        FatError::Corrupt {
            path: self.at(path),
            detail: detail.into(),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, path: &str) -> Result<(), FatError> {
        self.r.read_exact_at(buf, offset).map_err(|e| FatError::Io {
            path: self.at(path),
            offset,
            len: buf.len() as u64,
            cause: e,
        })
    }

    fn root_loc(&self) -> DirLoc {
        if self.bpb.bits == 32 {
            DirLoc::Chain(self.bpb.root_cluster)
        } else {
            DirLoc::FixedRoot
        }
    }

    /// Read `buf.len()` bytes at `off` within the active FAT, through the block cache.
    fn fat_bytes(&self, off: u64, buf: &mut [u8], path: &str) -> Result<(), FatError> {
        let len = buf.len() as u64;
        if len == 0 {
            return Ok(());
        }
        if off.checked_add(len).is_none_or(|end| end > self.fat_len) {
            return Err(self.corrupt(
                path,
                format!(
                    "FAT entry at byte {off} lies beyond the FAT ({} bytes)",
                    self.fat_len
                ),
            ));
        }
        let block = off / FAT_CACHE_BLOCK;
        if (off + len - 1) / FAT_CACHE_BLOCK != block {
            return self.read_at(buf, self.fat_offset + off, path);
        }
        let mut cache = self.cache.borrow_mut();
        let hit = matches!(&*cache, Some((b, _)) if *b == block);
        if !hit {
            let start = block * FAT_CACHE_BLOCK;
            let n = FAT_CACHE_BLOCK.min(self.fat_len - start);
            let mut data = vec![0u8; usize::try_from(n).unwrap_or(0)];
            self.read_at(&mut data, self.fat_offset + start, path)?;
            *cache = Some((block, data));
        }
        let rel = usize::try_from(off % FAT_CACHE_BLOCK).unwrap_or(usize::MAX);
        let src = cache
            .as_ref()
            .and_then(|(_, d)| d.get(rel..rel.checked_add(buf.len())?));
        match src {
            Some(s) => {
                buf.copy_from_slice(s);
                Ok(())
            }
            None => Err(self.corrupt(path, "FAT cache inconsistency")),
        }
    }

    fn last_cluster(&self) -> u64 {
        self.bpb.clusters + 1
    }

    fn link(&self, cluster: u32, path: &str) -> Result<Link, FatError> {
        let c = u64::from(cluster);
        let v = match self.bpb.bits {
            12 => {
                let mut b = [0u8; 2];
                self.fat_bytes(c + c / 2, &mut b, path)?;
                let v = u16::from_le_bytes(b);
                u32::from(if c % 2 == 1 { v >> 4 } else { v & 0x0FFF })
            }
            16 => {
                let mut b = [0u8; 2];
                self.fat_bytes(c * 2, &mut b, path)?;
                u32::from(u16::from_le_bytes(b))
            }
            _ => {
                let mut b = [0u8; 4];
                self.fat_bytes(c * 4, &mut b, path)?;
                u32::from_le_bytes(b) & 0x0FFF_FFFF
            }
        };
        let eoc: u32 = match self.bpb.bits {
            12 => 0x0FF8,
            16 => 0xFFF8,
            _ => 0x0FFF_FFF8,
        };
        Ok(if v >= eoc {
            Link::End
        } else if v == eoc - 1 {
            Link::Bad
        } else if v == 0 {
            Link::Free
        } else if v >= 2 && u64::from(v) <= self.last_cluster() {
            Link::Next(v)
        } else {
            Link::Invalid(v)
        })
    }

    /// Follow a chain from `start`, collecting at most `limit` clusters. Stops early at the
    /// end-of-chain mark; every link is bounds-checked and a revisited cluster is an error.
    fn chain(&self, start: u32, limit: u64, path: &str) -> Result<Vec<u32>, FatError> {
        let last = self.last_cluster();
        if start < 2 || u64::from(start) > last {
            return Err(self.corrupt(
                path,
                format!("first cluster {start} is outside the valid range 2..={last}"),
            ));
        }
        let mut out = vec![start];
        let mut seen = HashSet::from([start]);
        let mut cur = start;
        while (out.len() as u64) < limit {
            match self.link(cur, path)? {
                Link::End => break,
                Link::Next(n) => {
                    if !seen.insert(n) {
                        return Err(
                            self.corrupt(path, format!("cluster chain loops at cluster {n}"))
                        );
                    }
                    out.push(n);
                    cur = n;
                }
                Link::Free => {
                    return Err(self.corrupt(
                        path,
                        format!("cluster chain runs into free cluster after cluster {cur}"),
                    ));
                }
                Link::Bad => {
                    return Err(self.corrupt(
                        path,
                        format!("cluster chain runs into a cluster marked bad after cluster {cur}"),
                    ));
                }
                Link::Invalid(v) => {
                    return Err(self.corrupt(
                        path,
                        format!(
                            "cluster {cur} links to cluster {v}, outside the valid range 2..={last}"
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset + (u64::from(c).saturating_sub(2)) * self.cluster_size()
    }

    /// Read `len` bytes of the clusters `chain` (in order) into a new buffer.
    fn read_chain(&self, chain: &[u32], len: u64, path: &str) -> Result<Vec<u8>, FatError> {
        let cs = self.cluster_size();
        let mut out = vec![0u8; usize::try_from(len).map_err(|_| self.corrupt(path, "too large"))?];
        let mut pos: usize = 0;
        let mut i = 0;
        while i < chain.len() && pos < out.len() {
            // Merge a run of consecutive clusters into one read.
            let first = chain.get(i).copied().unwrap_or(0);
            let mut run = 1usize;
            while chain
                .get(i + run)
                .is_some_and(|&n| u64::from(n) == u64::from(first) + run as u64)
            {
                run += 1;
            }
            let want = (run as u64 * cs).min((out.len() - pos) as u64) as usize;
            let dst = out
                .get_mut(pos..pos + want)
                .ok_or_else(|| self.corrupt(path, "read past buffer"))?;
            self.read_at(dst, self.cluster_offset(first), path)?;
            pos += want;
            i += run;
        }
        Ok(out)
    }

    fn dir_bytes(&self, loc: DirLoc, path: &str) -> Result<Vec<u8>, FatError> {
        match loc {
            DirLoc::FixedRoot => {
                let mut v = vec![0u8; usize::try_from(self.root_len).unwrap_or(0)];
                self.read_at(&mut v, self.root_offset, path)?;
                Ok(v)
            }
            DirLoc::Chain(start) => {
                let cs = self.cluster_size();
                let max_clusters = (MAX_DIR_BYTES / cs).max(1);
                let chain = self.chain(start, max_clusters + 1, path)?;
                if chain.len() as u64 > max_clusters {
                    return Err(self.corrupt(
                        path,
                        format!(
                            "directory chain is longer than {max_clusters} clusters (the 2 MiB directory limit)"
                        ),
                    ));
                }
                self.read_chain(&chain, chain.len() as u64 * cs, path)
            }
        }
    }

    fn list(&self, loc: DirLoc, path: &str) -> Result<Vec<DirEntry>, FatError> {
        let bytes = self.dir_bytes(loc, path)?;
        Ok(parse_dir(&bytes, self.bpb.bits == 32).0)
    }

    fn dir_loc_of(&self, e: &DirEntry, path: &str) -> Result<DirLoc, FatError> {
        if e.first_cluster == 0 {
            return Err(self.corrupt(path, "directory entry has no first cluster"));
        }
        Ok(DirLoc::Chain(e.first_cluster))
    }

    /// Resolve `path`: `None` for the root directory, else its entry.
    fn resolve(&self, path: &str) -> Result<Option<DirEntry>, FatError> {
        let comps = components(path);
        let mut loc = self.root_loc();
        let mut found: Option<DirEntry> = None;
        for (i, comp) in comps.iter().enumerate() {
            let here = display_path(comps.get(..i).unwrap_or(&[]));
            if let Some(prev) = &found {
                if !prev.is_dir {
                    return Err(FatError::NotADirectory {
                        path: self.at(&here),
                    });
                }
                loc = self.dir_loc_of(prev, &here)?;
            }
            let entries = self.list(loc, &here)?;
            let full = display_path(comps.get(..=i).unwrap_or(&[]));
            let e = entries
                .into_iter()
                .find(|e| name_matches(e, comp))
                .ok_or_else(|| FatError::NotFound {
                    path: self.at(&full),
                })?;
            found = Some(e);
        }
        Ok(found)
    }

    /// The entries of directory `path` (without `.` and `..`).
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, FatError> {
        let shown = display_path(&components(path));
        match self.resolve(path)? {
            None => self.list(self.root_loc(), &shown),
            Some(e) if e.is_dir => {
                let loc = self.dir_loc_of(&e, &shown)?;
                self.list(loc, &shown)
            }
            Some(_) => Err(FatError::NotADirectory {
                path: self.at(&shown),
            }),
        }
    }

    /// The directory entry of `path` (`Ok(None)` for the root directory itself).
    pub fn metadata(&self, path: &str) -> Result<Option<DirEntry>, FatError> {
        self.resolve(path)
    }

    /// Whether `path` exists; `Err` only when the filesystem could not be read far enough
    /// to tell (corruption, I/O).
    pub fn try_exists(&self, path: &str) -> Result<bool, FatError> {
        match self.resolve(path) {
            Ok(_) => Ok(true),
            Err(FatError::NotFound { .. } | FatError::NotADirectory { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `path` exists (false also when it cannot be read; see [`Self::try_exists`]).
    pub fn exists(&self, path: &str) -> bool {
        self.try_exists(path).unwrap_or(false)
    }

    /// Byte ranges of the partition in use, for used-blocks-only imaging: everything before
    /// the data area (boot sector, reserved sectors, every FAT copy, the fixed root directory)
    /// and each cluster whose entry in the active FAT is not free (bad-cluster marks count as
    /// used). Ranges are `(start, len)`, sorted and merged. Fails if the FAT cannot be read.
    pub fn used_ranges(&self) -> Result<Vec<(u64, u64)>, FatError> {
        let mut out: Vec<(u64, u64)> = vec![(0, self.data_offset)];
        let cs = self.cluster_size();
        let mut run: Option<u64> = None;
        let last = self.last_cluster();
        let mut c = 2u64;
        while c <= last + 1 {
            // `link` reads the FAT through its 4 KiB block cache: sequential here.
            let free = if c > last {
                true
            } else {
                matches!(self.link(c as u32, "FAT")?, Link::Free)
            };
            match (free, run) {
                (false, None) => run = Some(c),
                (true, Some(s)) => {
                    let start = self.cluster_offset(s as u32);
                    let len = (c - s) * cs;
                    match out.last_mut() {
                        Some(l) if l.0 + l.1 == start => l.1 += len,
                        _ => out.push((start, len)),
                    }
                    run = None;
                }
                _ => {}
            }
            c += 1;
        }
        Ok(out)
    }

    /// Read a whole file, refusing files larger than `max_len` bytes.
    pub fn read_file(&self, path: &str, max_len: u64) -> Result<Vec<u8>, FatError> {
        let shown = display_path(&components(path));
        let e = match self.resolve(path)? {
            None => {
                return Err(FatError::IsADirectory {
                    path: self.at(&shown),
                });
            }
            Some(e) if e.is_dir => {
                return Err(FatError::IsADirectory {
                    path: self.at(&shown),
                });
            }
            Some(e) => e,
        };
        if e.size > max_len {
            return Err(FatError::TooLarge {
                path: self.at(&shown),
                size: e.size,
                max: max_len,
            });
        }
        if e.size == 0 {
            return Ok(Vec::new());
        }
        if e.first_cluster == 0 {
            return Err(self.corrupt(
                &shown,
                format!("file of {} bytes has no first cluster", e.size),
            ));
        }
        let cs = self.cluster_size();
        let need = e.size.div_ceil(cs);
        if need > self.bpb.clusters {
            return Err(self.corrupt(
                &shown,
                format!(
                    "file size {} needs {need} clusters, more than the volume has ({})",
                    e.size, self.bpb.clusters
                ),
            ));
        }
        let chain = self.chain(e.first_cluster, need, &shown)?;
        if (chain.len() as u64) < need {
            return Err(self.corrupt(
                &shown,
                format!(
                    "cluster chain ends after {} clusters, but the file size {} needs {need}",
                    chain.len(),
                    e.size
                ),
            ));
        }
        self.read_chain(&chain, e.size, &shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny FAT12 volume built by hand: 512-byte sectors, 1 sector per cluster, 1
    /// reserved, 2 FATs of 1 sector, 16 root entries, 128 sectors (124 clusters).
    /// Root: label `MYLABEL`, `HELLO.TXT` (LFN "Hello World.txt", clusters 2-3-4, 1200 B),
    /// dir `SUB` (cluster 5) holding `a.bin` (NT lower-case flags, cluster 6, 10 B), and a
    /// deleted entry. Data byte i of HELLO is `i % 251`.
    struct Mini {
        img: Vec<u8>,
    }

    const MINI_DATA: u64 = (1 + 2 + 1) * 512;

    fn short_entry(name: &[u8; 11], attr: u8, nt: u8, cluster: u16, size: u32) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[12] = nt;
        e[22..24].copy_from_slice(&0x6000u16.to_le_bytes()); // 12:00:00
        e[24..26].copy_from_slice(&((46u16 << 9) | (3 << 5) | 14).to_le_bytes()); // 2026-03-14
        e[26..28].copy_from_slice(&cluster.to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    }

    fn lfn_entries(long: &str, short: &[u8; 11]) -> Vec<[u8; 32]> {
        let mut units: Vec<u16> = long.encode_utf16().collect();
        if !units.len().is_multiple_of(13) {
            units.push(0);
        }
        while !units.len().is_multiple_of(13) {
            units.push(0xFFFF);
        }
        let n = units.len() / 13;
        let csum = lfn_checksum(short);
        let mut out = Vec::new();
        for seq in (1..=n).rev() {
            let mut e = [0u8; 32];
            e[0] = seq as u8 | if seq == n { 0x40 } else { 0 };
            e[11] = 0x0F;
            e[13] = csum;
            let chunk = &units[(seq - 1) * 13..seq * 13];
            for (k, &o) in [1usize, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
                .iter()
                .enumerate()
            {
                e[o..o + 2].copy_from_slice(&chunk[k].to_le_bytes());
            }
            out.push(e);
        }
        out
    }

    impl Mini {
        fn new() -> Mini {
            let mut img = vec![0u8; 128 * 512];
            let bs = &mut img[..512];
            bs[0] = 0xEB;
            bs[1] = 0x3C;
            bs[2] = 0x90;
            bs[3..11].copy_from_slice(b"mkfs.fat");
            bs[11..13].copy_from_slice(&512u16.to_le_bytes());
            bs[13] = 1;
            bs[14..16].copy_from_slice(&1u16.to_le_bytes());
            bs[16] = 2;
            bs[17..19].copy_from_slice(&16u16.to_le_bytes());
            bs[19..21].copy_from_slice(&128u16.to_le_bytes());
            bs[21] = 0xF8;
            bs[22..24].copy_from_slice(&1u16.to_le_bytes());
            bs[38] = 0x29;
            bs[39..43].copy_from_slice(&0x1234_ABCDu32.to_le_bytes());
            bs[43..54].copy_from_slice(b"BPBLABEL   ");
            bs[54..62].copy_from_slice(b"FAT12   ");
            bs[510] = 0x55;
            bs[511] = 0xAA;
            let mut m = Mini { img };
            m.set_fat(0, 0xFF8);
            m.set_fat(1, 0xFFF);
            m.set_fat(2, 3);
            m.set_fat(3, 4);
            m.set_fat(4, 0xFFF);
            m.set_fat(5, 0xFFF);
            m.set_fat(6, 0xFFF);
            let mut root: Vec<[u8; 32]> = vec![short_entry(b"MYLABEL    ", 0x08, 0, 0, 0)];
            root.extend(lfn_entries("Hello World.txt", b"HELLOW~1TXT"));
            root.push(short_entry(b"HELLOW~1TXT", 0x20, 0, 2, 1200));
            let mut deleted = short_entry(b"GONE    TXT", 0x20, 0, 7, 5);
            deleted[0] = 0xE5;
            root.push(deleted);
            root.push(short_entry(b"SUB        ", 0x10, 0, 5, 0));
            m.put_entries(2 * 512 + 512, &root);
            let sub = vec![
                short_entry(b".          ", 0x10, 0, 5, 0),
                short_entry(b"..         ", 0x10, 0, 0, 0),
                short_entry(b"A       BIN", 0x20, 0x18, 6, 10),
            ];
            m.put_entries(m.cluster_off(5), &sub);
            for i in 0..1200u64 {
                let off = m.cluster_off(2) + i;
                m.img[off as usize] = (i % 251) as u8;
            }
            let off = m.cluster_off(6) as usize;
            m.img[off..off + 10].copy_from_slice(b"0123456789");
            m
        }

        fn cluster_off(&self, c: u64) -> u64 {
            MINI_DATA + (c - 2) * 512
        }

        fn put_entries(&mut self, off: u64, es: &[[u8; 32]]) {
            for (i, e) in es.iter().enumerate() {
                let o = off as usize + i * 32;
                self.img[o..o + 32].copy_from_slice(e);
            }
        }

        fn set_fat(&mut self, n: usize, v: u16) {
            for fat in 0..2 {
                let base = 512 + fat * 512 + n + n / 2;
                let old = u16::from_le_bytes([self.img[base], self.img[base + 1]]);
                let new = if n % 2 == 1 {
                    (old & 0x000F) | (v << 4)
                } else {
                    (old & 0xF000) | (v & 0x0FFF)
                };
                self.img[base..base + 2].copy_from_slice(&new.to_le_bytes());
            }
        }

        fn hello(&self) -> Vec<u8> {
            (0..1200u64).map(|i| (i % 251) as u8).collect()
        }
    }

    #[test]
    fn probe_mini() {
        let m = Mini::new();
        let info = probe(&m.img[..4096]).unwrap();
        assert_eq!(
            info.kind,
            FsKind::Fat {
                bits: 12,
                cluster_size: 512,
                clusters: 124
            }
        );
        assert_eq!(info.label.as_deref(), Some("BPBLABEL"));
        assert_eq!(info.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(info.size_bytes, 128 * 512);
    }

    #[test]
    fn probe_rejects() {
        let m = Mini::new();
        let mutate = |off: usize, v: u8| {
            let mut b = m.img[..512].to_vec();
            b[off] = v;
            probe(&b)
        };
        assert!(mutate(0, 0x00).is_none(), "jump");
        assert!(mutate(12, 0x03).is_none(), "bytes/sector 768");
        assert!(mutate(13, 3).is_none(), "sectors/cluster 3");
        assert!(mutate(13, 0).is_none(), "sectors/cluster 0");
        assert!(mutate(14, 0).is_none(), "reserved 0");
        assert!(mutate(16, 0).is_none(), "fats 0");
        assert!(mutate(21, 0x12).is_none(), "media");
        assert!(mutate(22, 0).is_none(), "FAT32 BPB without FAT32 fields");
        assert!(probe(&[0u8; 512]).is_none());
        assert!(probe(&[]).is_none());
        // No extended BPB: no label or id.
        let info = mutate(38, 0).unwrap();
        assert_eq!(info.label, None);
        assert_eq!(info.uuid, None);
        // NO NAME label.
        let mut b = m.img[..512].to_vec();
        b[43..54].copy_from_slice(b"NO NAME    ");
        assert_eq!(probe(&b).unwrap().label, None);
    }

    #[test]
    fn probe_never_panics_on_truncation() {
        let m = Mini::new();
        for n in 0..=4096 {
            let _ = probe(&m.img[..n]);
        }
        // Every prefix shorter than the BPB fields is rejected, not misread.
        assert!(probe(&m.img[..20]).is_none());
    }

    #[test]
    fn mini_reader() {
        let m = Mini::new();
        let fs = FatFs::open(&m.img).unwrap();
        assert_eq!(fs.bits(), 12);
        assert_eq!(fs.volume_label().as_deref(), Some("MYLABEL"));
        assert_eq!(fs.info().label.as_deref(), Some("MYLABEL"));
        let root = fs.read_dir("/").unwrap();
        let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Hello World.txt", "SUB"]);
        assert_eq!(root[0].short_name, "HELLOW~1.TXT");
        assert_eq!(root[0].size, 1200);
        assert_eq!(
            root[0].modified,
            Some(FatTime {
                year: 2026,
                month: 3,
                day: 14,
                hour: 12,
                minute: 0,
                second: 0
            })
        );
        assert!(root[1].is_dir);
        assert_eq!(fs.read_file("/Hello World.txt", 4096).unwrap(), m.hello());
        // Case-insensitive, short alias, backslashes, dot segments.
        assert_eq!(fs.read_file("hello world.TXT", 4096).unwrap(), m.hello());
        assert_eq!(fs.read_file("/HELLOW~1.TXT", 4096).unwrap(), m.hello());
        assert_eq!(
            fs.read_file("\\sub\\..\\SUB\\.\\A.BIN", 100).unwrap(),
            b"0123456789"
        );
        let sub = fs.read_dir("/sub").unwrap();
        assert_eq!(sub.len(), 1);
        assert_eq!(sub[0].name, "a.bin");
        assert_eq!(sub[0].short_name, "A.BIN");
        assert!(fs.exists("/SUB/a.bin"));
        assert!(!fs.exists("/SUB/b.bin"));
        assert!(!fs.exists("/GONE.TXT"));
        assert!(!fs.exists("/Hello World.txt/x"));
        assert!(fs.exists("/"));
        assert!(fs.metadata("/").unwrap().is_none());
    }

    #[test]
    fn mini_errors_name_paths() {
        let m = Mini::new();
        let fs = FatFs::open(&m.img).unwrap().with_context("boot partition");
        let e = fs.read_file("/Hello World.txt", 1000).unwrap_err();
        assert!(matches!(
            e,
            FatError::TooLarge {
                size: 1200,
                max: 1000,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "boot partition: /Hello World.txt: file is 1200 bytes, more than the 1000-byte limit"
        );
        let e = fs.read_file("/sub/nope", 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "boot partition: /sub/nope: no such file or directory"
        );
        let e = fs.read_file("/SUB", 10).unwrap_err();
        assert!(matches!(e, FatError::IsADirectory { .. }), "{e}");
        let e = fs.read_dir("/Hello World.txt").unwrap_err();
        assert!(matches!(e, FatError::NotADirectory { .. }), "{e}");
        let e = fs.read_file("/Hello World.txt/x", 10).unwrap_err();
        assert!(matches!(e, FatError::NotADirectory { .. }), "{e}");
        assert!(matches!(
            FatFs::open(&vec![0u8; 1024]),
            Err(FatError::NotFat(_))
        ));
    }

    #[test]
    fn mini_loop_and_range_errors() {
        let mut m = Mini::new();
        m.set_fat(3, 2); // 2 -> 3 -> 2
        let fs = FatFs::open(&m.img).unwrap().with_context("boot partition");
        let e = fs.read_file("/Hello World.txt", 1 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "boot partition: /Hello World.txt: cluster chain loops at cluster 2"
        );
        // A loop after the clusters the size needs is not followed (nothing to read there).
        let mut m = Mini::new();
        m.set_fat(4, 3);
        let fs = FatFs::open(&m.img).unwrap();
        assert_eq!(fs.read_file("/Hello World.txt", 4096).unwrap(), m.hello());

        let mut m = Mini::new();
        m.set_fat(5, 5); // directory SUB links to itself
        let fs = FatFs::open(&m.img).unwrap();
        let e = fs.read_dir("/SUB").unwrap_err();
        assert_eq!(e.to_string(), "/SUB: cluster chain loops at cluster 5");

        let mut m = Mini::new();
        m.set_fat(3, 0xF00); // beyond cluster 125
        let fs = FatFs::open(&m.img).unwrap();
        let e = fs.read_file("/Hello World.txt", 1 << 20).unwrap_err();
        assert!(
            e.to_string().contains("cluster 3 links to cluster 3840"),
            "{e}"
        );

        let mut m = Mini::new();
        m.set_fat(3, 0); // free in the middle
        let fs = FatFs::open(&m.img).unwrap();
        let e = fs.read_file("/Hello World.txt", 1 << 20).unwrap_err();
        assert!(
            e.to_string().contains("free cluster after cluster 3"),
            "{e}"
        );

        let mut m = Mini::new();
        m.set_fat(3, 0xFF7); // bad
        let fs = FatFs::open(&m.img).unwrap();
        assert!(fs.read_file("/Hello World.txt", 1 << 20).is_err());

        let mut m = Mini::new();
        m.set_fat(3, 0xFFF); // chain too short for the size
        let fs = FatFs::open(&m.img).unwrap();
        let e = fs.read_file("/Hello World.txt", 1 << 20).unwrap_err();
        assert!(e.to_string().contains("ends after 2 clusters"), "{e}");

        // First cluster out of range.
        let mut m = Mini::new();
        let off = (2 * 512 + 512 + 32 * 3 + 26) as usize; // HELLO short entry cluster field
        m.img[off..off + 2].copy_from_slice(&999u16.to_le_bytes());
        let fs = FatFs::open(&m.img).unwrap();
        let e = fs.read_file("/Hello World.txt", 1 << 20).unwrap_err();
        assert!(e.to_string().contains("first cluster 999"), "{e}");
    }

    #[test]
    fn lfn_checksum_mismatch_falls_back_to_short_name() {
        let mut m = Mini::new();
        // Corrupt the checksum in the LFN entries (root entries 1 and 2).
        for i in 1..=2usize {
            m.img[2 * 512 + 512 + i * 32 + 13] ^= 0xFF;
        }
        let fs = FatFs::open(&m.img).unwrap();
        let names: Vec<String> = fs
            .read_dir("/")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["HELLOW~1.TXT", "SUB"]);
    }

    #[test]
    fn truncated_images_never_panic() {
        let m = Mini::new();
        let mut n = 0;
        while n <= m.img.len() {
            let v = m.img[..n].to_vec();
            if let Ok(fs) = FatFs::open(&v) {
                let _ = fs.info();
                let _ = fs.read_dir("/");
                let _ = fs.read_dir("/SUB");
                let _ = fs.read_file("/Hello World.txt", 1 << 20);
                let _ = fs.read_file("/SUB/a.bin", 1 << 20);
            }
            n += 17;
        }
    }

    fn walk(fs: &FatFs<'_>, path: &str, depth: u32) {
        if depth > 6 {
            return;
        }
        if let Ok(entries) = fs.read_dir(path) {
            for e in entries {
                let p = format!("{}/{}", path.trim_end_matches('/'), e.name);
                if e.is_dir {
                    walk(fs, &p, depth + 1);
                } else {
                    let _ = fs.read_file(&p, 1 << 20);
                }
            }
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        let base = Mini::new().img;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..3000 {
            let mut img = base.clone();
            let flips = 1 + next() % 8;
            for _ in 0..flips {
                // Aim mostly at the metadata (boot sector, FATs, root, SUB).
                let span = if round % 2 == 0 {
                    4096
                } else {
                    img.len() as u64
                };
                let off = (next() % span) as usize;
                img[off] = next() as u8;
            }
            let _ = probe(&img[..4096]);
            if let Ok(fs) = FatFs::open(&img) {
                let _ = fs.info();
                walk(&fs, "/", 0);
            }
        }
    }

    #[test]
    fn cp437_table_is_complete() {
        assert_eq!(CP437_HIGH.chars().count(), 128);
        assert_eq!(oem_char(0x80), 'Ç');
        assert_eq!(oem_char(0xE1), 'ß');
        assert_eq!(oem_char(0xFF), '\u{a0}');
    }

    #[test]
    fn fat16_and_fat32_synthetic_geometry() {
        // FAT16: 16 MiB, 4 sectors per cluster → 8 K clusters.
        let mut b = Mini::new().img[..512].to_vec();
        b[13] = 4;
        b[14..16].copy_from_slice(&4u16.to_le_bytes());
        b[17..19].copy_from_slice(&512u16.to_le_bytes());
        b[19..21].copy_from_slice(&0u16.to_le_bytes());
        b[22..24].copy_from_slice(&32u16.to_le_bytes());
        b[32..36].copy_from_slice(&32768u32.to_le_bytes());
        let info = probe(&b).unwrap();
        assert!(
            matches!(info.kind, FsKind::Fat { bits: 16, .. }),
            "{info:?}"
        );
        // Same sizes with a 16-bit FAT field but > 65524 clusters is rejected.
        b[13] = 1;
        b[32..36].copy_from_slice(&200_000u32.to_le_bytes());
        b[22..24].copy_from_slice(&400u16.to_le_bytes());
        assert!(probe(&b).is_none());

        // FAT32 BPB.
        let mut b = vec![0u8; 512];
        b[0] = 0xEB;
        b[2] = 0x90;
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 1;
        b[14..16].copy_from_slice(&32u16.to_le_bytes());
        b[16] = 2;
        b[21] = 0xF8;
        b[32..36].copy_from_slice(&131072u32.to_le_bytes());
        b[36..40].copy_from_slice(&1009u32.to_le_bytes());
        b[44..48].copy_from_slice(&2u32.to_le_bytes());
        b[66] = 0x29;
        b[67..71].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        b[71..82].copy_from_slice(b"hassos-boot");
        let info = probe(&b).unwrap();
        assert!(
            matches!(info.kind, FsKind::Fat { bits: 32, .. }),
            "{info:?}"
        );
        assert_eq!(info.label.as_deref(), Some("hassos-boot"));
        assert_eq!(info.uuid.as_deref(), Some("DEAD-BEEF"));
        // Root cluster out of range.
        b[44..48].copy_from_slice(&0u32.to_le_bytes());
        assert!(probe(&b).is_none());
        b[44..48].copy_from_slice(&2u32.to_le_bytes());
        // Active FAT beyond the FAT count.
        b[40..42].copy_from_slice(&0x0083u16.to_le_bytes());
        assert!(probe(&b).is_none());
        // Truncated FAT32 BPB.
        assert!(probe(&b[..40]).is_none());
    }
}

/// Tests against images made by the real tools (mkfs.vfat, mtools); skipped with a message
/// when those are not installed.
#[cfg(test)]
mod mtools_tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn find_tool(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/sbin", "/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    struct Tools {
        mkfs: PathBuf,
        mcopy: PathBuf,
        mmd: PathBuf,
    }

    fn tools() -> Option<Tools> {
        let t = Tools {
            mkfs: find_tool("mkfs.vfat").or_else(|| find_tool("mkfs.fat"))?,
            mcopy: find_tool("mcopy")?,
            mmd: find_tool("mmd")?,
        };
        Some(t)
    }

    fn run(cmd: &mut Command) {
        let out = cmd
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .expect("tool runs");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    struct Made {
        _dir: tempfile::TempDir,
        img: Vec<u8>,
        files: Vec<(&'static str, Vec<u8>)>,
    }

    /// Make an image of `mib` MiB (or KiB when `kib`), format it with `-F bits`, and fill
    /// it with the test tree through mtools.
    fn make(t: &Tools, size_bytes: u64, bits: u8) -> Made {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("boot.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(size_bytes)
            .unwrap();
        run(Command::new(&t.mkfs)
            .arg("-F")
            .arg(bits.to_string())
            .arg("-n")
            .arg("hassos-boot")
            .arg("-i")
            .arg("a1b2c3d4")
            .arg(&img));
        let grubenv = {
            let mut v = b"# GRUB Environment Block\nORDER=A B\nA_OK=1\n".to_vec();
            v.resize(1024, b'#');
            v
        };
        let files: Vec<(&'static str, Vec<u8>)> = vec![
            ("EFI/BOOT/grubenv", grubenv),
            ("config.txt", b"os_prefix=slot-A/\n".to_vec()),
            (
                "A Rather Long File Name, With Spaces.txt",
                b"long name\n".to_vec(),
            ),
            ("big.bin", pseudo_random(200 * 1024, u64::from(bits))),
            ("empty", Vec::new()),
            ("slot-A/.good", Vec::new()),
            ("Ünïcödé name.TXT", b"utf16\n".to_vec()),
        ];
        let mut dirs = vec!["EFI", "EFI/BOOT", "slot-A", "many"];
        dirs.dedup();
        for d in dirs {
            run(Command::new(&t.mmd)
                .arg("-i")
                .arg(&img)
                .arg(format!("::{d}")));
        }
        let src = dir.path().join("src");
        for (name, data) in &files {
            std::fs::write(&src, data).unwrap();
            run(Command::new(&t.mcopy)
                .arg("-i")
                .arg(&img)
                .arg(&src)
                .arg(format!("::{name}")));
        }
        // Enough long-named files to make /many span several clusters.
        for i in 0..40 {
            std::fs::write(&src, format!("file {i}\n")).unwrap();
            run(Command::new(&t.mcopy)
                .arg("-i")
                .arg(&img)
                .arg(&src)
                .arg(format!("::many/a fairly long file name number {i:03}.text")));
        }
        let bytes = std::fs::read(&img).unwrap();
        Made {
            _dir: dir,
            img: bytes,
            files,
        }
    }

    fn check(made: &Made, bits: u8) {
        let info = probe(&made.img[..4096]).expect("probe");
        let FsKind::Fat { bits: b, .. } = info.kind else {
            panic!("not FAT: {info:?}");
        };
        assert_eq!(b, bits);
        assert_eq!(info.uuid.as_deref(), Some("A1B2-C3D4"));
        assert_eq!(info.size_bytes, made.img.len() as u64);
        let fs = FatFs::open(&made.img)
            .unwrap()
            .with_context("boot partition");
        assert_eq!(fs.bits(), bits);
        let label = fs.volume_label().expect("root-dir label");
        assert!(label.eq_ignore_ascii_case("hassos-boot"), "{label}");
        assert_eq!(fs.info().label.as_deref(), Some(label.as_str()));

        for (name, data) in &made.files {
            let got = fs
                .read_file(&format!("/{name}"), 1 << 20)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(got == *data, "{name}: content differs");
        }
        // Case-insensitive lookups.
        assert_eq!(
            fs.read_file("/efi/boot/GRUBENV", 4096).unwrap(),
            made.files[0].1
        );
        assert!(fs.exists("/SLOT-a/.GOOD"));
        assert!(fs.exists("/a rather long file name, with spaces.TXT"));
        assert!(!fs.exists("/EFI/BOOT/grub.cfg"));
        let root: Vec<String> = fs
            .read_dir("/")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        for want in [
            "EFI",
            "config.txt",
            "A Rather Long File Name, With Spaces.txt",
            "big.bin",
        ] {
            assert!(root.iter().any(|n| n == want), "{want} not in {root:?}");
        }
        let many = fs.read_dir("/many").unwrap();
        assert_eq!(many.len(), 40);
        for i in 0..40 {
            let name = format!("a fairly long file name number {i:03}.text");
            assert!(many.iter().any(|e| e.name == name), "{name}");
            assert_eq!(
                fs.read_file(&format!("/many/{name}"), 100).unwrap(),
                format!("file {i}\n").as_bytes()
            );
        }
        let e = fs.read_file("/big.bin", 1000).unwrap_err();
        assert!(matches!(e, FatError::TooLarge { size: 204800, .. }), "{e}");
        assert!(e.to_string().starts_with("boot partition: /big.bin: "));
    }

    /// Patch the FAT entry of `cluster` in every FAT copy.
    fn patch_fat(img: &mut [u8], cluster: u32, value: u32) {
        let bpb = parse_bpb(&img[..4096]).unwrap();
        let bps = bpb.bytes_per_sector as usize;
        for f in 0..bpb.num_fats as usize {
            let base = (bpb.reserved_sectors as usize + f * bpb.fat_sectors as usize) * bps;
            let c = cluster as usize;
            match bpb.bits {
                12 => {
                    let o = base + c + c / 2;
                    let old = u16::from_le_bytes([img[o], img[o + 1]]);
                    let v = value as u16;
                    let new = if c % 2 == 1 {
                        (old & 0x000F) | (v << 4)
                    } else {
                        (old & 0xF000) | (v & 0x0FFF)
                    };
                    img[o..o + 2].copy_from_slice(&new.to_le_bytes());
                }
                16 => img[base + c * 2..base + c * 2 + 2]
                    .copy_from_slice(&(value as u16).to_le_bytes()),
                _ => img[base + c * 4..base + c * 4 + 4].copy_from_slice(&value.to_le_bytes()),
            }
        }
    }

    fn check_corruption(made: &Made) {
        let fs = FatFs::open(&made.img).unwrap();
        let big = fs.metadata("/big.bin").unwrap().unwrap();
        let first = big.first_cluster;
        drop(fs);

        // Loop: second cluster links back to the first.
        let mut img = made.img.clone();
        let second = {
            let fs = FatFs::open(&made.img).unwrap();
            fs.chain(first, 2, "/big.bin").unwrap()[1]
        };
        patch_fat(&mut img, second, first);
        let fs = FatFs::open(&img).unwrap().with_context("boot partition");
        let e = fs.read_file("/big.bin", 1 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("boot partition: /big.bin: cluster chain loops at cluster {first}")
        );

        // Out of range.
        let mut img = made.img.clone();
        let fs = FatFs::open(&made.img).unwrap();
        let bad = u32::try_from(fs.cluster_count() + 2).unwrap();
        drop(fs);
        patch_fat(&mut img, first, bad);
        let fs = FatFs::open(&img).unwrap();
        let e = fs.read_file("/big.bin", 1 << 20).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("cluster {first} links to cluster {bad}, outside")),
            "{e}"
        );
    }

    fn image_test(size: u64, bits: u8) {
        let Some(t) = tools() else {
            eprintln!("skipping FAT{bits} mtools test: mkfs.vfat/mcopy/mmd not installed");
            return;
        };
        let made = make(&t, size, bits);
        check(&made, bits);
        check_corruption(&made);
        // Truncations of the real image head never panic, and neither do reads through
        // a truncated image.
        for n in 0..=4096 {
            let head = made.img[..n].to_vec();
            let _ = probe(&head);
            if let Ok(fs) = FatFs::open(&head) {
                let _ = fs.read_dir("/");
                let _ = fs.info();
            }
        }
        for frac in [3u64, 5, 8, 13] {
            let cut = made.img[..(made.img.len() as u64 * frac / 16) as usize].to_vec();
            if let Ok(fs) = FatFs::open(&cut) {
                for (name, _) in &made.files {
                    let _ = fs.read_file(&format!("/{name}"), 1 << 20);
                }
                let _ = fs.read_dir("/many");
            }
        }
    }

    #[test]
    fn fat12_2mib() {
        image_test(2 << 20, 12);
    }

    #[test]
    fn fat16_16mib() {
        image_test(16 << 20, 16);
    }

    #[test]
    fn fat16_40mib() {
        image_test(40 << 20, 16);
    }

    #[test]
    fn fat32_64mib() {
        image_test(64 << 20, 32);
    }

    /// FAT12 with one sector per cluster: the FAT is ~6 KiB, so the entry of cluster 2730
    /// straddles the reader's 4 KiB FAT-cache blocks; a file filling the volume crosses it.
    #[test]
    fn fat12_entry_straddling_cache_blocks() {
        let Some(t) = tools() else {
            eprintln!("skipping FAT12 straddle test: mkfs.vfat/mcopy not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("f12.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(2 << 20)
            .unwrap();
        run(Command::new(&t.mkfs)
            .args(["-F", "12", "-s", "1", "-n", "F12"])
            .arg(&img));
        let data = pseudo_random(1900 * 1024, 99);
        let src = dir.path().join("src");
        std::fs::write(&src, &data).unwrap();
        run(Command::new(&t.mcopy)
            .arg("-i")
            .arg(&img)
            .arg(&src)
            .arg("::fill.bin"));
        let bytes = std::fs::read(&img).unwrap();
        let fs = FatFs::open(&bytes).unwrap();
        assert_eq!(fs.bits(), 12);
        assert!(fs.cluster_count() > 2731, "{}", fs.cluster_count());
        let e = fs.metadata("/fill.bin").unwrap().unwrap();
        let chain = fs.chain(e.first_cluster, u64::MAX, "/fill.bin").unwrap();
        assert!(chain.contains(&2730) && chain.contains(&2731));
        assert_eq!(fs.read_file("/fill.bin", 2 << 20).unwrap(), data);
    }

    #[test]
    fn file_backed_reader() {
        let Some(t) = tools() else {
            eprintln!("skipping file-backed FAT test: mkfs.vfat/mcopy/mmd not installed");
            return;
        };
        let made = make(&t, 16 << 20, 16);
        let dir = tempfile::tempdir().unwrap();
        let p: &Path = &dir.path().join("disk");
        // The image sits 1 MiB into a "disk", followed by unrelated bytes.
        let mut disk = vec![0u8; 1 << 20];
        disk.extend_from_slice(&made.img);
        disk.extend_from_slice(&[0xA5; 4096]);
        std::fs::write(p, &disk).unwrap();
        let f = std::fs::File::open(p).unwrap();
        let r = crate::io::FileReader::new(f, disk.len() as u64);
        let w = crate::io::Window::new(&r, 1 << 20, made.img.len() as u64);
        let fs = FatFs::open(&w).unwrap();
        assert_eq!(fs.read_file("/big.bin", 1 << 20).unwrap(), made.files[3].1);
    }
}

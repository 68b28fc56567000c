//! Which files of an ext2/3/4 partition lie on unreadable sectors, for the manifest's
//! `bad[].files`. Read from the finished image (the card is not touched again).
//!
//! Every in-use inode's block map is checked against the bad blocks: extent trees (leaf and
//! index nodes, uninitialised extents included) and classic block maps (direct, indirect,
//! double and triple indirect). Then the directory tree is walked from the root (linear scan
//! of each directory block, which also covers htree directories: their index nodes look like
//! empty entries) to name the inodes found. A bad block that holds an inode table or a
//! directory makes the inodes in it, or the directory, count too. Bounded: at most
//! [`MAX_FILES`] paths per bad range; hostile metadata only shortens the answer.

use super::extalloc;
use super::ranges::Extent;
use crate::io::ReadAt;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most paths reported per bad range.
pub const MAX_FILES: usize = 64;
const EXTENTS_FL: u32 = 0x80000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const MAX_DEPTH: u32 = 5;

fn le16(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 2)
        .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
        .unwrap_or(0)
}
fn le32(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 4)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
        .unwrap_or(0)
}

struct Fs<'a> {
    r: &'a dyn ReadAt,
    bs: u64,
    blocks: u64,
}

impl Fs<'_> {
    fn block(&self, b: u64) -> Option<Vec<u8>> {
        if b == 0 || b >= self.blocks {
            return None;
        }
        let mut v = vec![0u8; self.bs as usize];
        self.r.read_exact_at(&mut v, b * self.bs).ok()?;
        Some(v)
    }

    /// Physical block runs (start, count) of an inode's data, from its 60-byte `i_block`.
    fn runs(&self, flags: u32, iblock: &[u8], out: &mut Vec<(u64, u64)>) {
        if flags & INLINE_DATA_FL != 0 {
            return;
        }
        if flags & EXTENTS_FL != 0 {
            self.extent_node(iblock, 0, out);
        } else {
            for i in 0..12 {
                let b = le32(iblock, i * 4);
                if b != 0 {
                    out.push((b, 1));
                }
            }
            for (i, level) in [(12usize, 1u32), (13, 2), (14, 3)] {
                self.indirect(le32(iblock, i * 4), level, out);
            }
        }
    }

    fn extent_node(&self, node: &[u8], depth_seen: u32, out: &mut Vec<(u64, u64)>) {
        if le16(node, 0) != 0xF30A || depth_seen > MAX_DEPTH || out.len() > 1_000_000 {
            return;
        }
        let entries = le16(node, 2) as usize;
        let depth = le16(node, 6);
        for i in 0..entries {
            let e = 12 + i * 12;
            if e + 12 > node.len() {
                break;
            }
            if depth == 0 {
                let mut len = le16(node, e + 4);
                if len > 32768 {
                    len -= 32768;
                }
                let start = (le16(node, e + 6) << 32) | le32(node, e + 8);
                out.push((start, len));
            } else {
                let leaf = (le16(node, e + 8) << 32) | le32(node, e + 4);
                out.push((leaf, 1));
                if let Some(b) = self.block(leaf) {
                    self.extent_node(&b, depth_seen + 1, out);
                }
            }
        }
    }

    fn indirect(&self, b: u64, level: u32, out: &mut Vec<(u64, u64)>) {
        if b == 0 || out.len() > 1_000_000 {
            return;
        }
        out.push((b, 1));
        let Some(blk) = self.block(b) else { return };
        for i in 0..(self.bs as usize / 4) {
            let p = le32(&blk, i * 4);
            if p == 0 {
                continue;
            }
            if level == 1 {
                out.push((p, 1));
            } else {
                self.indirect(p, level - 1, out);
            }
        }
    }
}

/// For each of `bad` (ranges relative to the partition start), the paths it touches, keyed
/// by index into `bad`.
pub fn files_hit(r: &dyn ReadAt, bad: &[Extent]) -> Result<BTreeMap<usize, Vec<String>>, String> {
    let (g, descs) = extalloc::open(r)?;
    let fs = Fs {
        r,
        bs: g.block,
        blocks: g.blocks,
    };
    let bs = g.block;
    let hits = |start: u64, count: u64| -> Vec<usize> {
        let e = Extent::new(start.saturating_mul(bs), count.saturating_mul(bs));
        bad.iter()
            .enumerate()
            .filter(|(_, b)| b.overlaps(&e))
            .map(|(i, _)| i)
            .collect()
    };
    // Inodes whose blocks (or inode table slot) are bad, and every directory's runs.
    let mut inode_hits: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    let mut dirs: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    let isz = g.inode_size;
    let per_block = (bs / isz).max(1);
    for (gi, d) in descs.iter().enumerate() {
        let itable_blocks = (g.inodes_per_group * isz).div_ceil(bs);
        let ibm = fs.block(d.inode_bitmap);
        for tb in 0..itable_blocks {
            let first = tb * per_block;
            if first >= g.inodes_per_group {
                break;
            }
            // Skip table blocks whose inodes are all free.
            if let Some(bm) = &ibm {
                let any = (first..(first + per_block).min(g.inodes_per_group)).any(|i| {
                    bm.get((i / 8) as usize)
                        .is_some_and(|b| b & (1 << (i % 8)) != 0)
                });
                if !any {
                    continue;
                }
            }
            let table_hit = hits(d.inode_table + tb, 1);
            let Some(blk) = fs.block(d.inode_table + tb) else {
                continue;
            };
            for k in 0..per_block {
                let idx = first + k;
                if idx >= g.inodes_per_group {
                    break;
                }
                let ino = gi as u64 * g.inodes_per_group + idx + 1;
                let o = (k * isz) as usize;
                let Some(raw) = blk.get(o..o + isz as usize) else {
                    break;
                };
                let mode = le16(raw, 0);
                let links = le16(raw, 0x1A);
                if mode == 0 || (links == 0 && ino > 11) {
                    continue;
                }
                let flags = le32(raw, 0x20) as u32;
                let mut runs = Vec::new();
                let is_symlink_fast = mode & 0xF000 == 0xA000 && le32(raw, 0x4) < 60;
                if !is_symlink_fast {
                    fs.runs(flags, &raw[0x28..0x28 + 60], &mut runs);
                }
                let mut h: BTreeSet<usize> = table_hit.iter().copied().collect();
                for &(s, n) in &runs {
                    h.extend(hits(s, n));
                }
                if !h.is_empty() {
                    inode_hits.entry(ino).or_default().extend(h);
                }
                if mode & 0xF000 == 0x4000 {
                    dirs.insert(ino, runs);
                }
            }
        }
    }
    if inode_hits.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Name them: walk the tree from the root (inode 2).
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let name = |ino: u64, path: &str, out: &mut BTreeMap<usize, Vec<String>>| {
        if let Some(h) = inode_hits.get(&ino) {
            for &i in h {
                let v = out.entry(i).or_default();
                if v.len() < MAX_FILES && !v.iter().any(|p| p == path) {
                    v.push(path.to_string());
                }
            }
        }
    };
    name(2, "/", &mut out);
    let mut seen = BTreeSet::from([2u64]);
    let mut stack = vec![(2u64, String::new())];
    while let Some((dino, dpath)) = stack.pop() {
        let Some(runs) = dirs.get(&dino) else {
            continue;
        };
        for &(s, n) in runs {
            for b in s..s.saturating_add(n.min(1 << 16)) {
                let Some(blk) = fs.block(b) else { continue };
                let mut o = 0usize;
                while o + 8 <= blk.len() {
                    let ino = le32(&blk, o);
                    let rec = le16(&blk, o + 4) as usize;
                    let nlen = blk.get(o + 6).copied().unwrap_or(0) as usize;
                    if rec < 8 || o + rec > blk.len() {
                        break;
                    }
                    if ino != 0
                        && nlen > 0
                        && let Some(nm) = blk.get(o + 8..o + 8 + nlen)
                    {
                        let nm = String::from_utf8_lossy(nm);
                        if nm != "." && nm != ".." {
                            let p = format!("{dpath}/{nm}");
                            name(ino, &p, &mut out);
                            if dirs.contains_key(&ino) && seen.insert(ino) {
                                stack.push((ino, p));
                            }
                        }
                    }
                    o += rec;
                }
            }
        }
    }
    Ok(out)
}

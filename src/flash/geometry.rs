//! Fitting an image's partition tables to a disk of another size: the writes that move the
//! backup GPT to the end of the target (primary header's AlternateLBA and LastUsableLBA, both
//! CRCs, the protective MBR's size), optionally grow the HAOS data partition to the end, or —
//! for `lifeboat shrink` — end it at a chosen LBA (GPT entry, hybrid MBR entries that overrun,
//! DOS primary entry or extended container + last EBR).
//!
//! Pure logic over a [`ReadAt`]: it reads sector 0, the primary GPT (or the EBR chain) and the
//! first bytes of partitions (to find the data partition by label), and returns the bytes to
//! write; it never writes anything itself.
//!
//! Alignment choice: a grown (or shrunk) data partition ends on a 1 MiB boundary at or before
//! the last usable sector (HAOS's own partitions are 1 MiB aligned; `hassos-expand` only acts
//! when more than 16384 sectors are free, so it leaves the result alone). A hybrid MBR is kept
//! byte for byte (RPi firmware needs its 0x0C entry); only a pure protective 0xEE entry is
//! resized to cover the disk.

use crate::haos::layout::{DATA_LABELS, MBR_SIGNATURE, Role};
use crate::io::{ReadAt, Window, read_vec};
use crate::table::MbrEntry;
use crate::table::gpt::{self, GptEntry, GptHeader};
use crate::table::mbr::{self, MbrClass};
use anyhow::{Result, bail};

/// What `fit_to_disk` may change beyond the tables' own places.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitOptions {
    /// Also grow the HAOS data partition (which must be the last one) to the end of the disk.
    pub grow: bool,
}

/// The writes that fit the tables to the target, and what they do in plain words.
#[derive(Debug, Clone, Default)]
pub struct Fit {
    /// `(byte offset on the target, bytes)`, to be written after the image.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// One sentence per change ("backup GPT moved from LBA X to LBA Y", …).
    pub notes: Vec<String>,
}

/// A data partition grows or shrinks to end on a multiple of this many bytes.
pub const ALIGN_BYTES: u64 = 1 << 20;
/// Largest exclusive end LBA an MBR entry can describe (32-bit start and size).
pub const MBR_MAX_END: u64 = 0xFFFF_FFFF;

/// Fit the tables of an image of `image_size` bytes to a target of `target_size` bytes.
///
/// `disk` reads the logical content of the whole target as it will be after the flash (the
/// image's bytes at their offsets; beyond the image, whatever). Only bytes inside the image are
/// read. Equal sizes (and nothing to grow) give no writes. A smaller target is accepted only
/// when every partition ends before the target's new backup GPT (or its end, on MBR);
/// otherwise the error gives the sizes and points to `lifeboat shrink`.
pub fn fit_to_disk(
    disk: &dyn ReadAt,
    image_size: u64,
    target_size: u64,
    sector_size: u32,
    opts: &FitOptions,
) -> Result<Fit> {
    let layout = Layout::read(disk, image_size, sector_size)?;
    let plan = if opts.grow {
        DataPlan::Grow
    } else {
        DataPlan::Keep
    };
    layout.plan(target_size, plan)
}

/// What happens to the data partition's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPlan {
    /// Leave every partition as it is.
    Keep,
    /// Grow the data partition to [`Layout::max_data_end`] (never shrink it).
    Grow,
    /// End the data partition at this exclusive LBA (its filesystem must already fit).
    EndAt(u64),
}

/// The HAOS data partition of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPart {
    /// Kernel partition number.
    pub number: u32,
    pub start_lba: u64,
    /// Exclusive end LBA.
    pub end_lba: u64,
    /// No other partition ends after it.
    pub is_last: bool,
}

/// The partition tables of an image, with the raw sectors needed to rewrite them.
#[derive(Debug, Clone)]
pub struct Layout {
    pub sector_size: u32,
    pub image_size: u64,
    /// The data partition, when one was found (GPT name, fixed PARTUUID, MBR signature, or
    /// filesystem label).
    pub data: Option<DataPart>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Gpt(GptLayout),
    Dos(DosLayout),
}

#[derive(Debug, Clone)]
struct GptLayout {
    mbr0: Vec<u8>,
    class: MbrClass,
    primary: Vec<u8>,
    hdr: GptHeader,
    entries: Vec<u8>,
    parts: Vec<GptEntry>,
}

#[derive(Debug, Clone)]
struct Ebr {
    lba: u64,
    raw: Vec<u8>,
    /// Slot, absolute start, size and kernel number of the logical partition in this EBR.
    logical: Option<(u8, u64, u64, u32)>,
    /// Slot of the link to the next EBR.
    link: Option<u8>,
}

#[derive(Debug, Clone)]
struct DosLayout {
    mbr0: Vec<u8>,
    primaries: Vec<MbrEntry>,
    /// Slot, start and size of the extended container.
    ext: Option<(u8, u64, u64)>,
    ebrs: Vec<Ebr>,
}

/// A partition reduced to what fitting needs.
struct Span {
    number: u32,
    start: u64,
    /// Exclusive end LBA.
    end: u64,
    label: String,
}

fn le32(b: &[u8], off: usize) -> u32 {
    b.get(off..off.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off.saturating_add(4)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    if let Some(s) = b.get_mut(off..off.saturating_add(8)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Cylinder/head/sector bytes for an LBA with the usual 255-head, 63-sector geometry,
/// clamped to 1023/254/63 past what CHS can address.
pub fn lba_to_chs(lba: u64) -> [u8; 3] {
    const SPT: u64 = 63;
    const HEADS: u64 = 255;
    if lba >= 1024 * HEADS * SPT {
        return [0xFE, 0xFF, 0xFF];
    }
    let c = lba / (HEADS * SPT);
    let h = (lba / SPT) % HEADS;
    let s = lba % SPT + 1;
    [
        h as u8,
        (s as u8) | (((c >> 2) & 0xC0) as u8),
        (c & 0xFF) as u8,
    ]
}

/// Set size (and end CHS) of the MBR/EBR entry in `slot` of a 512-byte sector.
fn set_mbr_entry_size(sector: &mut [u8], slot: u8, start_abs: u64, size: u32) {
    let o = mbr::OFF_ENTRIES + usize::from(slot) * 16;
    put32(sector, o + 12, size);
    let end = start_abs.saturating_add(u64::from(size)).saturating_sub(1);
    if let Some(chs) = sector.get_mut(o + 5..o + 8) {
        chs.copy_from_slice(&lba_to_chs(end));
    }
}

/// Recompute the CRC of a GPT header sector in place.
fn fix_header_crc(sector: &mut [u8], header_size: u32) {
    put32(sector, 16, 0);
    if let Some(crc) = gpt::header_crc(sector, header_size) {
        put32(sector, 16, crc);
    }
}

fn align_down(v: u64, a: u64) -> u64 {
    if a <= 1 { v } else { v - v % a }
}

fn bytes(lba: u64, ss: u32) -> u64 {
    lba.saturating_mul(u64::from(ss))
}

impl Layout {
    /// Read the tables of an image of `image_size` bytes through `disk`.
    pub fn read(disk: &dyn ReadAt, image_size: u64, sector_size: u32) -> Result<Layout> {
        if !sector_size.is_power_of_two() || !(512..=65536).contains(&sector_size) {
            bail!("unsupported sector size {sector_size} (need a power of two, 512..=65536)");
        }
        let ss = u64::from(sector_size);
        if image_size < 2 * ss || disk.len() < mbr::MBR_LEN as u64 {
            bail!("the image is only {image_size} bytes, too short for a partition table");
        }
        let image = Window::new(disk, 0, image_size);
        let mbr0 = read_vec(&image, 0, mbr::MBR_LEN)?;
        let m = mbr::parse_mbr(&mbr0)
            .map_err(|e| anyhow::anyhow!("sector 0 of the image is not an MBR: {e}"))?;
        let kind = match m.class() {
            MbrClass::Protective | MbrClass::Hybrid => {
                Kind::Gpt(read_gpt(&image, mbr0, m.class(), sector_size)?)
            }
            MbrClass::Dos => Kind::Dos(read_dos(&image, mbr0, &m, sector_size)?),
            MbrClass::Empty => bail!("the image's MBR has no partition entries"),
        };
        let mut l = Layout {
            sector_size,
            image_size,
            data: None,
            kind,
        };
        l.data = l.find_data(&image, m.disk_signature);
        Ok(l)
    }

    /// True for GPT (protective or hybrid MBR), false for DOS.
    pub fn is_gpt(&self) -> bool {
        matches!(self.kind, Kind::Gpt(_))
    }

    fn spans(&self) -> Vec<Span> {
        match &self.kind {
            Kind::Gpt(g) => g
                .parts
                .iter()
                .map(|e| Span {
                    number: e.number(),
                    start: e.first_lba,
                    end: e.last_lba.saturating_add(1),
                    label: if e.name.is_empty() {
                        format!("p{}", e.number())
                    } else {
                        format!("p{} ({})", e.number(), e.name)
                    },
                })
                .collect(),
            Kind::Dos(d) => {
                let mut v: Vec<Span> = d
                    .primaries
                    .iter()
                    .filter(|e| !mbr::is_extended(e.type_byte) && e.size_lba > 0)
                    .map(|e| Span {
                        number: u32::from(e.slot) + 1,
                        start: u64::from(e.start_lba),
                        end: u64::from(e.start_lba) + u64::from(e.size_lba),
                        label: format!("p{}", u32::from(e.slot) + 1),
                    })
                    .collect();
                for e in &d.ebrs {
                    if let Some((_, start, size, n)) = e.logical {
                        v.push(Span {
                            number: n,
                            start,
                            end: start.saturating_add(size),
                            label: format!("p{n}"),
                        });
                    }
                }
                v
            }
        }
    }

    fn find_data(&self, image: &dyn ReadAt, disk_signature: u32) -> Option<DataPart> {
        let spans = self.spans();
        let last_end = spans.iter().map(|s| s.end).max().unwrap_or(0);
        let mk = |s: &Span| DataPart {
            number: s.number,
            start_lba: s.start,
            end_lba: s.end,
            is_last: s.end == last_end && spans.iter().filter(|t| t.end == last_end).count() == 1,
        };
        let by_table = match &self.kind {
            Kind::Gpt(g) => g
                .parts
                .iter()
                .find(|e| {
                    e.name == Role::Data.gpt_name()
                        || e.name == Role::DataExternal.gpt_name()
                        || Some(e.unique_guid.as_str()) == Role::Data.gpt_partuuid()
                })
                .map(GptEntry::number),
            Kind::Dos(_) => (format!("{disk_signature:08x}") == MBR_SIGNATURE).then_some(4),
        };
        if let Some(n) = by_table
            && let Some(s) = spans.iter().find(|s| s.number == n)
        {
            return Some(mk(s));
        }
        // By filesystem label.
        spans.iter().find_map(|s| {
            let w = Window::new(
                image,
                bytes(s.start, self.sector_size),
                bytes(s.end.saturating_sub(s.start), self.sector_size),
            );
            let info = crate::fs::probe(&w).ok()??;
            let label = info.label?;
            (matches!(info.kind, crate::fs::FsKind::Ext { .. })
                && DATA_LABELS.iter().any(|(d, _)| *d == label))
            .then(|| mk(s))
        })
    }

    /// Exclusive end LBA the data partition may reach on a target of `target_size` bytes:
    /// the last usable sector + 1 (before the backup GPT; on MBR the disk end, at most
    /// [`MBR_MAX_END`]), aligned down to [`ALIGN_BYTES`]. Also says whether the MBR limit cut it.
    pub fn max_data_end(&self, target_size: u64) -> Result<(u64, bool)> {
        let ss = u64::from(self.sector_size);
        let sectors = target_size / ss;
        let align = (ALIGN_BYTES / ss).max(1);
        match &self.kind {
            Kind::Gpt(g) => {
                let (_, _, last_usable) = gpt_places(g, sectors, self.sector_size)?;
                Ok((align_down(last_usable + 1, align), false))
            }
            Kind::Dos(_) => {
                let clamped = sectors > MBR_MAX_END;
                Ok((align_down(sectors.min(MBR_MAX_END), align), clamped))
            }
        }
    }

    /// Smallest target size (bytes) on which the data partition can end at `end_lba`
    /// (exclusive): the end plus the backup GPT on GPT, the end itself on MBR.
    pub fn target_size_for_end(&self, end_lba: u64) -> u64 {
        let ss = u64::from(self.sector_size);
        let tail = match &self.kind {
            Kind::Gpt(g) => g.hdr.entry_array_len().div_ceil(ss) + 1,
            Kind::Dos(_) => 0,
        };
        bytes(end_lba.saturating_add(tail), self.sector_size)
    }

    /// The writes that fit this layout to a target of `target_size` bytes with `plan`.
    pub fn plan(&self, target_size: u64, plan: DataPlan) -> Result<Fit> {
        let new_end = match plan {
            DataPlan::Keep => None,
            DataPlan::Grow | DataPlan::EndAt(_) => {
                let Some(d) = &self.data else {
                    bail!(
                        "no Home Assistant OS data partition found (GPT name hassos-data, or an \
                         ext4 filesystem labelled hassos-data*); cannot resize it"
                    );
                };
                if !d.is_last {
                    bail!(
                        "the data partition p{} is not the last partition on the image; \
                         it cannot be resized",
                        d.number
                    );
                }
                let (max_end, _) = self.max_data_end(target_size)?;
                match plan {
                    DataPlan::Grow => (max_end > d.end_lba).then_some(max_end),
                    DataPlan::EndAt(e) => {
                        if e <= d.start_lba {
                            bail!(
                                "the data partition p{} starts at byte {}; a target of {} bytes \
                                 leaves no room for it",
                                d.number,
                                bytes(d.start_lba, self.sector_size),
                                target_size
                            );
                        }
                        if e > max_end {
                            bail!(
                                "the data partition cannot end at byte {}: a target of {} bytes \
                                 allows at most byte {}",
                                bytes(e, self.sector_size),
                                target_size,
                                bytes(max_end, self.sector_size)
                            );
                        }
                        (e != d.end_lba).then_some(e)
                    }
                    DataPlan::Keep => None,
                }
            }
        };
        let mut fit = Fit::default();
        if matches!(plan, DataPlan::Grow)
            && new_end.is_none()
            && let Some(d) = &self.data
        {
            fit.notes.push(format!(
                "data partition p{} already reaches the end of the usable space; not grown",
                d.number
            ));
        }
        if matches!(plan, DataPlan::Grow) && !self.is_gpt() && self.max_data_end(target_size)?.1 {
            fit.notes.push(format!(
                "the target has {} sectors but an MBR addresses only the first {MBR_MAX_END} \
                 (2 TiB at 512-byte sectors); the data partition stops there",
                target_size / u64::from(self.sector_size)
            ));
        }
        match &self.kind {
            Kind::Gpt(g) => self.plan_gpt(g, target_size, new_end, &mut fit)?,
            Kind::Dos(d) => self.plan_dos(d, target_size, new_end, &mut fit)?,
        }
        Ok(fit)
    }

    fn too_small(
        &self,
        target_size: u64,
        span: &Span,
        usable_end: u64,
        why: &str,
    ) -> anyhow::Error {
        let end_b = bytes(span.end, self.sector_size);
        let usable_b = bytes(usable_end, self.sector_size);
        anyhow::anyhow!(
            "the target ({target_size} bytes) is too small for this image ({} bytes): {} ends \
             at byte {end_b}, but on the target the partitions must end by byte {usable_b} \
             ({why}); {} bytes short. Shrink the data partition first: \
             `lifeboat shrink IMAGE -o SMALLER.img --size {target_size}`",
            self.image_size,
            span.label,
            end_b - usable_b.min(end_b)
        )
    }

    fn plan_gpt(
        &self,
        g: &GptLayout,
        target_size: u64,
        new_end: Option<u64>,
        fit: &mut Fit,
    ) -> Result<()> {
        let ssz = self.sector_size;
        let ss = u64::from(ssz);
        let sectors = target_size / ss;
        let (belba, blba, last_usable) = gpt_places(g, sectors, ssz)?;
        let h = &g.hdr;
        let esize = usize::try_from(h.entry_size).unwrap_or(128);

        // Entries after the data change.
        let mut entries = g.entries.clone();
        let mut spans = self.spans();
        if let (Some(e), Some(d)) = (new_end, &self.data) {
            if let Some(p) = g.parts.iter().find(|p| p.number() == d.number) {
                let off = usize::try_from(p.index)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(esize);
                put64(&mut entries, off.saturating_add(40), e - 1);
            }
            if let Some(s) = spans.iter_mut().find(|s| s.number == d.number) {
                s.end = e;
            }
            fit.notes.push(format!(
                "data partition p{} {} from {} to {} bytes (ends at LBA {})",
                d.number,
                if e > d.end_lba { "grown" } else { "shrunk" },
                bytes(d.end_lba - d.start_lba, ssz),
                bytes(e - d.start_lba, ssz),
                e - 1
            ));
        }
        for s in &spans {
            if s.end > last_usable + 1 {
                return Err(self.too_small(
                    target_size,
                    s,
                    last_usable + 1,
                    "the backup GPT takes the disk's last sectors",
                ));
            }
        }
        let entries_changed = entries != g.entries;
        let places_same = blba == h.alternate_lba && last_usable == h.last_usable_lba;

        // The MBR in sector 0.
        let mut mbr0 = g.mbr0.clone();
        for slot in 0..4u8 {
            let o = mbr::OFF_ENTRIES + usize::from(slot) * 16;
            let t = mbr0.get(o + 4).copied().unwrap_or(0);
            if t == 0 {
                continue;
            }
            let start = u64::from(le32(&mbr0, o + 8));
            let size = u64::from(le32(&mbr0, o + 12));
            if g.class == MbrClass::Protective && t == mbr::TYPE_PROTECTIVE {
                let want = (sectors.saturating_sub(1)).min(u64::from(u32::MAX)) as u32;
                if u64::from(want) != size {
                    put32(&mut mbr0, o + 12, want);
                    fit.notes.push(format!(
                        "protective MBR entry resized to cover LBA 1..{} (was {} sectors)",
                        u64::from(want),
                        size
                    ));
                }
                continue;
            }
            // Hybrid entries: kept as they are unless they mirrored the data partition and it
            // shrank, or they run past the end of the target.
            let mut new_size = size;
            if let (Some(e), Some(d)) = (new_end, &self.data)
                && start == d.start_lba
                && start + size == d.end_lba
                && e < d.end_lba
            {
                new_size = e - start;
            }
            if start + new_size > sectors {
                new_size = sectors.saturating_sub(start);
            }
            if new_size != size {
                let n = u32::try_from(new_size).unwrap_or(u32::MAX);
                if t == mbr::TYPE_PROTECTIVE {
                    put32(&mut mbr0, o + 12, n);
                } else {
                    set_mbr_entry_size(&mut mbr0, slot, start, n);
                }
                fit.notes.push(format!(
                    "hybrid MBR entry {} (type {t:#04x}) cut from {size} to {new_size} sectors to \
                     fit the target",
                    slot + 1
                ));
            }
        }
        let mbr_changed = mbr0 != g.mbr0;
        if places_same && !entries_changed && !mbr_changed {
            return Ok(());
        }
        if g.class == MbrClass::Hybrid && !mbr_changed {
            fit.notes
                .push("hybrid MBR kept exactly as it is (board firmware finds the boot partition through it)".into());
        }

        let crc = gpt::entries_crc(&entries);
        let mut primary = g.primary.clone();
        put64(&mut primary, 32, blba);
        put64(&mut primary, 48, last_usable);
        put32(&mut primary, 88, crc);
        fix_header_crc(&mut primary, h.header_size);
        let mut backup = primary.clone();
        put64(&mut backup, 24, blba);
        put64(&mut backup, 32, 1);
        put64(&mut backup, 72, belba);
        fix_header_crc(&mut backup, h.header_size);

        let esectors = (blba - belba) as usize;
        let mut padded = entries.clone();
        padded.resize(esectors * ssz as usize, 0);
        fit.writes.push((bytes(belba, ssz), padded));
        fit.writes.push((bytes(blba, ssz), backup));
        // The stale backup header left where the image ended.
        let old = h.alternate_lba;
        if old != blba
            && old < sectors
            && bytes(old + 1, ssz) <= self.image_size
            && !(belba..=blba).contains(&old)
            && !spans.iter().any(|s| (s.start..s.end).contains(&old))
            && old > 1
        {
            fit.writes.push((bytes(old, ssz), vec![0u8; ssz as usize]));
            fit.notes
                .push(format!("stale backup GPT header at LBA {old} zeroed"));
        }
        if entries_changed {
            fit.writes.push((bytes(h.entries_lba, ssz), entries));
        }
        fit.writes.push((ss, primary));
        if mbr_changed {
            fit.writes.push((0, mbr0));
        }
        if !places_same {
            fit.notes.push(format!(
                "backup GPT moved from LBA {old} to LBA {blba} (last usable LBA {} -> {last_usable})",
                h.last_usable_lba
            ));
        }
        Ok(())
    }

    fn plan_dos(
        &self,
        d: &DosLayout,
        target_size: u64,
        new_end: Option<u64>,
        fit: &mut Fit,
    ) -> Result<()> {
        let ssz = self.sector_size;
        let sectors = target_size / u64::from(ssz);
        let mut spans = self.spans();
        let mut mbr0 = d.mbr0.clone();
        let mut ebrs: Vec<Vec<u8>> = d.ebrs.iter().map(|e| e.raw.clone()).collect();
        let mut ext = d.ext;
        if let (Some(e), Some(dp)) = (new_end, &self.data) {
            let size = u32::try_from(e - dp.start_lba).map_err(|_| {
                anyhow::anyhow!("the data partition would exceed the MBR's 32-bit size")
            })?;
            if let Some(p) = d
                .primaries
                .iter()
                .find(|p| u32::from(p.slot) + 1 == dp.number)
            {
                set_mbr_entry_size(&mut mbr0, p.slot, dp.start_lba, size);
            } else if let Some(i) = d
                .ebrs
                .iter()
                .position(|b| b.logical.is_some_and(|l| l.3 == dp.number))
            {
                let b = &d.ebrs[i];
                if let (Some((slot, _, _, _)), Some(raw)) = (b.logical, ebrs.get_mut(i)) {
                    set_mbr_entry_size(raw, slot, dp.start_lba, size);
                }
                // The previous EBR's link describes this EBR's box up to the logical's end.
                if i > 0
                    && let (Some(link), Some(raw)) = (d.ebrs[i - 1].link, ebrs.get_mut(i - 1))
                {
                    let o = mbr::OFF_ENTRIES + usize::from(link) * 16;
                    let rel_start = u64::from(le32(raw, o + 8));
                    let ext_start = d.ext.map_or(0, |x| x.1);
                    let box_start = ext_start + rel_start;
                    let box_size = u32::try_from(e.saturating_sub(box_start)).unwrap_or(u32::MAX);
                    set_mbr_entry_size(raw, link, box_start, box_size);
                }
                if let Some((slot, start, old_size)) = d.ext {
                    let new_size = e.saturating_sub(start);
                    let n = u32::try_from(new_size).unwrap_or(u32::MAX);
                    set_mbr_entry_size(&mut mbr0, slot, start, n);
                    ext = Some((slot, start, new_size));
                    fit.notes.push(format!(
                        "extended partition p{} resized from {} to {} bytes",
                        u32::from(slot) + 1,
                        bytes(old_size, ssz),
                        bytes(new_size, ssz)
                    ));
                }
            }
            if let Some(s) = spans.iter_mut().find(|s| s.number == dp.number) {
                s.end = e;
            }
            fit.notes.push(format!(
                "data partition p{} {} from {} to {} bytes (ends at LBA {})",
                dp.number,
                if e > dp.end_lba { "grown" } else { "shrunk" },
                bytes(dp.end_lba - dp.start_lba, ssz),
                bytes(e - dp.start_lba, ssz),
                e - 1
            ));
        }
        if let Some((slot, start, size)) = ext {
            spans.push(Span {
                number: u32::from(slot) + 1,
                start,
                end: start + size,
                label: format!("extended partition p{}", u32::from(slot) + 1),
            });
        }
        for s in &spans {
            if s.end > sectors {
                return Err(self.too_small(target_size, s, sectors, "the end of the target"));
            }
        }
        if mbr0 != d.mbr0 {
            fit.writes.push((0, mbr0));
        }
        for (b, raw) in d.ebrs.iter().zip(ebrs) {
            if raw != b.raw {
                fit.writes.push((bytes(b.lba, ssz), raw));
            }
        }
        Ok(())
    }
}

/// Backup entries LBA, backup header LBA and last usable LBA on a target of `sectors`.
fn gpt_places(g: &GptLayout, sectors: u64, ss: u32) -> Result<(u64, u64, u64)> {
    let esectors = g.hdr.entry_array_len().div_ceil(u64::from(ss));
    let need = g.hdr.first_usable_lba + 1 + esectors + 1;
    if sectors < need {
        bail!(
            "the target ({} bytes) is too small to hold even the GPT of this image",
            bytes(sectors, ss)
        );
    }
    let blba = sectors - 1;
    let belba = blba - esectors;
    Ok((belba, blba, belba - 1))
}

fn read_gpt(image: &dyn ReadAt, mbr0: Vec<u8>, class: MbrClass, ss: u32) -> Result<GptLayout> {
    let primary = read_vec(image, u64::from(ss), ss as usize).map_err(|e| {
        anyhow::anyhow!("cannot read the primary GPT header at LBA 1 ({ss}-byte sectors): {e}")
    })?;
    let hdr = gpt::parse_header(&primary).map_err(|e| {
        anyhow::anyhow!(
            "the primary GPT header at LBA 1 ({ss}-byte sectors) is not usable: {e}; \
             repair the image's table first (e.g. `sgdisk -v`, then `gdisk`)"
        )
    })?;
    if hdr.my_lba != 1 {
        bail!(
            "the primary GPT header claims to be at LBA {}, not 1; not touching this table",
            hdr.my_lba
        );
    }
    let len = usize::try_from(hdr.entry_array_len())?;
    let entries = read_vec(image, bytes(hdr.entries_lba, ss), len).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the GPT entry array at LBA {}: {e}",
            hdr.entries_lba
        )
    })?;
    if !gpt::check_entries_crc(&entries, &hdr) {
        bail!(
            "the primary GPT entry array at LBA {} fails its CRC; repair the image's table first",
            hdr.entries_lba
        );
    }
    let parts = gpt::parse_entries(&entries, hdr.entry_count, hdr.entry_size);
    for p in &parts {
        gpt::check_entry(p, hdr.first_usable_lba, hdr.last_usable_lba)
            .map_err(|e| anyhow::anyhow!("{e}; not touching this table"))?;
    }
    Ok(GptLayout {
        mbr0,
        class,
        primary,
        hdr,
        entries,
        parts,
    })
}

fn read_dos(image: &dyn ReadAt, mbr0: Vec<u8>, m: &mbr::Mbr, ss: u32) -> Result<DosLayout> {
    let primaries = m.entries.clone();
    let exts: Vec<&MbrEntry> = primaries
        .iter()
        .filter(|e| mbr::is_extended(e.type_byte) && e.size_lba > 0)
        .collect();
    if exts.len() > 1 {
        bail!("the MBR has more than one extended partition; not touching this table");
    }
    let ext = exts
        .first()
        .map(|e| (e.slot, u64::from(e.start_lba), u64::from(e.size_lba)));
    let mut ebrs = Vec::new();
    if let Some((_, ext_start, ext_size)) = ext {
        let ext_end = ext_start + ext_size;
        let mut cur = ext_start;
        let mut number = 5u32;
        loop {
            if ebrs.len() >= 256 || ebrs.iter().any(|b: &Ebr| b.lba == cur) {
                bail!("the EBR chain loops or is too long (at LBA {cur}); not touching this table");
            }
            let raw = read_vec(image, bytes(cur, ss), mbr::MBR_LEN)
                .map_err(|e| anyhow::anyhow!("cannot read the EBR at LBA {cur}: {e}"))?;
            mbr::parse_ebr(&raw).map_err(|e| anyhow::anyhow!("EBR at LBA {cur}: {e}"))?;
            let mut logical = None;
            let mut link = None;
            let mut next = None;
            for slot in 0..2u8 {
                let o = mbr::OFF_ENTRIES + usize::from(slot) * 16;
                let t = raw.get(o + 4).copied().unwrap_or(0);
                let start = u64::from(le32(&raw, o + 8));
                let size = u64::from(le32(&raw, o + 12));
                if t == 0 || size == 0 {
                    continue;
                }
                if mbr::is_extended(t) {
                    if link.is_none() {
                        link = Some(slot);
                        next = Some(ext_start + start);
                    }
                } else if logical.is_none() {
                    logical = Some((slot, cur + start, size, number));
                    number += 1;
                }
            }
            ebrs.push(Ebr {
                lba: cur,
                raw,
                logical,
                link,
            });
            match next {
                Some(n) if n < ext_end => cur = n,
                Some(n) => bail!(
                    "EBR at LBA {cur} links outside its extended partition (to LBA {n}); \
                     not touching this table"
                ),
                None => break,
            }
        }
    }
    Ok(DosLayout {
        mbr0,
        primaries,
        ext,
        ebrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::gpt::tests::{FixHeader, LINUX, build_entries, build_header};
    use crate::table::mbr::tests::build_mbr;

    const MIB: u64 = 1 << 20;

    /// Write `writes` into a copy of `img` extended to `size` bytes.
    fn apply(img: &[u8], size: u64, fit: &Fit) -> Vec<u8> {
        let mut d = img.to_vec();
        d.resize(size as usize, 0);
        for (off, b) in &fit.writes {
            d[*off as usize..*off as usize + b.len()].copy_from_slice(b);
        }
        d.truncate(size as usize);
        d
    }

    /// A GPT image of `mib` MiB: p1 1..2 MiB, p8-like data "hassos-data" 2 MiB..(end-1 MiB).
    fn gpt_image(mib: u64, hybrid: bool) -> Vec<u8> {
        let sectors = mib * 2048;
        let data_end = sectors - 2048; // exclusive
        let entries = build_entries(
            &[
                (
                    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                    "b3dd0952-733c-4c88-8cba-cab9b8b4377f",
                    2048,
                    4095,
                    0,
                    "hassos-boot",
                ),
                (
                    LINUX,
                    "a52a4597-fa3a-4851-aefd-2fbe9f849079",
                    4096,
                    data_end - 1,
                    0,
                    "hassos-data",
                ),
            ],
            128,
            128,
        );
        let mut img = vec![0u8; (sectors * 512) as usize];
        let mbr = if hybrid {
            build_mbr(0, &[(false, 0x0C, 2048, 2048), (false, 0xEE, 1, 33)])
        } else {
            build_mbr(0, &[(false, 0xEE, 1, (sectors - 1) as u32)])
        };
        img[..512].copy_from_slice(&mbr);
        let h = FixHeader {
            my_lba: 1,
            alternate_lba: sectors - 1,
            first_usable: 34,
            last_usable: sectors - 34,
            disk_guid: "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
            entries_lba: 2,
            entry_count: 128,
            entry_size: 128,
        };
        img[512..1024].copy_from_slice(&build_header(&h, &entries, 512));
        img[1024..1024 + entries.len()].copy_from_slice(&entries);
        let bh = FixHeader {
            my_lba: sectors - 1,
            alternate_lba: 1,
            entries_lba: sectors - 33,
            ..h
        };
        let off = ((sectors - 33) * 512) as usize;
        img[off..off + entries.len()].copy_from_slice(&entries);
        let off = ((sectors - 1) * 512) as usize;
        img[off..off + 512].copy_from_slice(&build_header(&bh, &entries, 512));
        img
    }

    fn table(d: &[u8]) -> crate::table::PartitionTable {
        crate::table::read_table(&d.to_vec(), 512).unwrap()
    }

    #[test]
    fn same_size_no_writes() {
        let img = gpt_image(8, false);
        let n = img.len() as u64;
        let f = fit_to_disk(&img, n, n, 512, &FitOptions::default()).unwrap();
        assert!(f.writes.is_empty(), "{:?}", f.notes);
    }

    #[test]
    fn bigger_moves_backup_and_fixes_protective() {
        let img = gpt_image(8, false);
        let n = img.len() as u64;
        let target = 16 * MIB + 3 * 512;
        let f = fit_to_disk(&img, n, target, 512, &FitOptions::default()).unwrap();
        let d = apply(&img, target, &f);
        let t = table(&d);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let g = t.gpt.clone().unwrap();
        let sectors = target / 512;
        assert_eq!(g.backup_lba, sectors - 1);
        assert_eq!(g.last_usable_lba, sectors - 34);
        assert!(g.primary_ok && g.backup_ok);
        assert_eq!(t.mbr_entries[0].size_lba as u64, sectors - 1);
        // Stale header zeroed.
        let old = (n - 512) as usize;
        assert!(d[old..old + 512].iter().all(|&b| b == 0));
        // Data untouched.
        assert_eq!(t.partition(2).unwrap().size_lba, 8 * 2048 - 2048 - 4096);
        assert!(f.notes.iter().any(|s| s.contains("backup GPT moved")));
    }

    #[test]
    fn grow_hybrid_keeps_mbr() {
        let img = gpt_image(8, true);
        let n = img.len() as u64;
        let target = 20 * MIB + 7 * 512;
        let f = fit_to_disk(&img, n, target, 512, &FitOptions { grow: true }).unwrap();
        let d = apply(&img, target, &f);
        assert_eq!(d[..512], img[..512]);
        let t = table(&d);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let p = t.partition(2).unwrap();
        assert_eq!(p.start_lba + p.size_lba, 20 * 2048 - 2048);
        assert!(f.notes.iter().any(|s| s.contains("grown")));
        // A second grow onto the same size has nothing to do.
        let again = fit_to_disk(&d, target, target, 512, &FitOptions { grow: true }).unwrap();
        assert!(again.writes.is_empty());
    }

    #[test]
    fn smaller_refused_or_accepted() {
        let img = gpt_image(8, false);
        let n = img.len() as u64;
        // Data ends 1 MiB before the image end: 512 KiB less is fine.
        let ok = fit_to_disk(&img, n, n - 512 * 1024, 512, &FitOptions::default()).unwrap();
        let d = apply(&img, n - 512 * 1024, &ok);
        let t = table(&d);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        // 2 MiB less is not.
        let e = fit_to_disk(&img, n, n - 2 * MIB, 512, &FitOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("({} bytes)", n - 2 * MIB)), "{e}");
        assert!(e.contains("lifeboat shrink"), "{e}");
        assert!(e.contains("hassos-data"), "{e}");
    }

    #[test]
    fn shrink_plan_ends_data() {
        let img = gpt_image(8, false);
        let n = img.len() as u64;
        let l = Layout::read(&img, n, 512).unwrap();
        let target = 6 * MIB;
        let (end, _) = l.max_data_end(target).unwrap();
        assert_eq!(end, 5 * 2048);
        assert_eq!(l.target_size_for_end(end), 5 * MIB + 33 * 512);
        let f = l.plan(target, DataPlan::EndAt(end)).unwrap();
        let d = apply(&img, target, &f);
        let t = table(&d);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.partition(2).unwrap().size_lba, end - 4096);
    }

    #[test]
    fn hybrid_entry_mirroring_data_follows_a_shrink() {
        let mut img = gpt_image(8, true);
        let sectors = 8 * 2048u64;
        // A third hybrid entry mirroring the data partition (LBA 4096 .. end-2048).
        let mbr = build_mbr(
            0,
            &[
                (false, 0x0C, 2048, 2048),
                (false, 0xEE, 1, 33),
                (false, 0x83, 4096, (sectors - 2048 - 4096) as u32),
            ],
        );
        img[..512].copy_from_slice(&mbr);
        let n = img.len() as u64;
        let l = Layout::read(&img, n, 512).unwrap();
        let target = 6 * MIB;
        let (end, _) = l.max_data_end(target).unwrap();
        let f = l.plan(target, DataPlan::EndAt(end)).unwrap();
        let d = apply(&img, target, &f);
        let t = table(&d);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let e = t.mbr_entries.iter().find(|e| e.type_byte == 0x83).unwrap();
        assert_eq!(u64::from(e.start_lba + e.size_lba), end);
        // The 0x0C and 0xEE entries are untouched.
        assert_eq!(d[446..478], img[446..478]);
        // Growing keeps the hybrid MBR byte for byte.
        let g = l.plan(32 * MIB, DataPlan::Grow).unwrap();
        assert!(g.writes.iter().all(|(off, _)| *off != 0));
    }

    #[test]
    fn four_k_sectors() {
        // 16 MiB image in 4096-byte sectors: entries take 4 sectors, data 2 MiB..15 MiB.
        let ss = 4096u64;
        let sectors = 16 * MIB / ss;
        let entries = build_entries(
            &[(
                LINUX,
                "a52a4597-fa3a-4851-aefd-2fbe9f849079",
                512,
                15 * MIB / ss - 1,
                0,
                "hassos-data",
            )],
            128,
            128,
        );
        let mut img = vec![0u8; (sectors * ss) as usize];
        img[..512].copy_from_slice(&build_mbr(0, &[(false, 0xEE, 1, (sectors - 1) as u32)]));
        let h = FixHeader {
            my_lba: 1,
            alternate_lba: sectors - 1,
            first_usable: 6,
            last_usable: sectors - 6,
            disk_guid: "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
            entries_lba: 2,
            entry_count: 128,
            entry_size: 128,
        };
        img[4096..8192].copy_from_slice(&build_header(&h, &entries, 4096));
        img[8192..8192 + entries.len()].copy_from_slice(&entries);
        let n = img.len() as u64;
        let target = 40 * MIB;
        let f = fit_to_disk(&img, n, target, 4096, &FitOptions { grow: true }).unwrap();
        let d = apply(&img, target, &f);
        let t = crate::table::read_table(&d, 4096).unwrap();
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let g = t.gpt.clone().unwrap();
        assert_eq!(g.backup_lba, target / ss - 1);
        assert_eq!(g.last_usable_lba, target / ss - 6);
        let p = t.partition(1).unwrap();
        assert_eq!((p.start_lba + p.size_lba) * ss, 39 * MIB);
    }

    /// A DOS image like ODROID: p1 boot, p2 extended with logicals p5, p6; p3 primary;
    /// p4 data primary last. `data_logical` puts data in the last logical instead.
    fn dos_image(mib: u64, data_logical: bool) -> Vec<u8> {
        let sectors = mib * 2048;
        let mut img = vec![0u8; (sectors * 512) as usize];
        let end = (sectors - 2048) as u32;
        let mbr = if data_logical {
            build_mbr(
                0x1234_5678,
                &[(true, 0x0C, 2048, 2048), (false, 0x0F, 4096, end - 4096)],
            )
        } else {
            build_mbr(
                0x4861_7373,
                &[
                    (true, 0x0C, 2048, 2048),
                    (false, 0x0F, 4096, 8192),
                    (false, 0x83, 12288, 2048),
                    (false, 0x83, 14336, end - 14336),
                ],
            )
        };
        img[..512].copy_from_slice(&mbr);
        // EBR1 at 4096: logical at +2048 size 2048, link to EBR2 at ext+4096.
        let (l2_size, link_size) = if data_logical {
            (end - 10240, end - 8192)
        } else {
            (2048, 4096)
        };
        let e1 = build_mbr(
            0,
            &[(false, 0x83, 2048, 2048), (false, 0x05, 4096, link_size)],
        );
        img[4096 * 512..4097 * 512].copy_from_slice(&e1);
        let e2 = build_mbr(0, &[(false, 0x83, 2048, l2_size)]);
        img[8192 * 512..8193 * 512].copy_from_slice(&e2);
        if data_logical {
            // No p4: the data partition is found by its ext4 label.
            let sb = 10240 * 512 + 1024;
            img[sb + 4] = 1; // blocks count
            img[sb + 56..sb + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
            img[sb + 120..sb + 131].copy_from_slice(b"hassos-data");
        }
        img
    }

    #[test]
    fn dos_grow_primary_and_logical() {
        for logical in [false, true] {
            let img = dos_image(16, logical);
            let n = img.len() as u64;
            let t0 = table(&img);
            assert!(t0.problems.is_empty(), "{:?}", t0.problems);
            let target = 40 * MIB + 512;
            let plain = fit_to_disk(&img, n, target, 512, &FitOptions::default()).unwrap();
            assert!(plain.writes.is_empty());
            let f = fit_to_disk(&img, n, target, 512, &FitOptions { grow: true }).unwrap();
            let d = apply(&img, target, &f);
            let t = table(&d);
            assert!(t.problems.is_empty(), "{:?}", t.problems);
            let want = if logical { 6 } else { 4 };
            let p = t.partition(want).unwrap();
            assert_eq!(p.start_lba + p.size_lba, 40 * 2048, "logical={logical}");
            if logical {
                let x = t.partition(2).unwrap();
                assert_eq!(x.start_lba + x.size_lba, 40 * 2048);
                // The link in EBR1 now spans EBR2 to the end.
                let l =
                    u32::from_le_bytes(d[4096 * 512 + 474..4096 * 512 + 478].try_into().unwrap());
                assert_eq!(u64::from(l), 40 * 2048 - 8192);
            }
            // Smaller than the data end: refused.
            let e = fit_to_disk(&img, n, 10 * MIB, 512, &FitOptions::default()).unwrap_err();
            assert!(e.to_string().contains("lifeboat shrink"), "{e}");
        }
    }

    #[test]
    fn mbr_two_tib_clamp() {
        let img = dos_image(16, false);
        let n = img.len() as u64;
        let l = Layout::read(&img, n, 512).unwrap();
        let (end, clamped) = l.max_data_end(3 << 40).unwrap();
        assert!(clamped);
        assert!(end <= MBR_MAX_END && end % 2048 == 0);
        let f = l.plan(3 << 40, DataPlan::Grow).unwrap();
        assert!(f.notes.iter().any(|s| s.contains("2 TiB")), "{:?}", f.notes);
    }

    #[test]
    fn garbage_never_panics() {
        let img = gpt_image(4, true);
        let n = img.len() as u64;
        for i in (0..2048).step_by(7) {
            let mut m = img.clone();
            m[i] ^= 0x5A;
            let _ = fit_to_disk(&m, n, n * 2, 512, &FitOptions { grow: true });
            let _ = fit_to_disk(&m, n, n / 2, 512, &FitOptions::default());
        }
        let _ = fit_to_disk(
            &img[..100].to_vec(),
            100,
            1 << 30,
            512,
            &FitOptions::default(),
        );
        let _ = fit_to_disk(&img, n, 0, 512, &FitOptions::default());
        for logical in [false, true] {
            let dos = dos_image(8, logical);
            let n = dos.len() as u64;
            let ebrs = [0usize, 4096 * 512, 8192 * 512];
            for (k, i) in ebrs
                .iter()
                .flat_map(|b| (440..512).map(move |o| b + o))
                .enumerate()
            {
                let mut m = dos.clone();
                m[i] ^= 0x81u8.wrapping_mul(k as u8 | 1);
                let _ = fit_to_disk(&m, n, 3 << 40, 512, &FitOptions { grow: true });
                let _ = fit_to_disk(&m, n, n / 3, 512, &FitOptions { grow: true });
                if let Ok(l) = Layout::read(&m, n, 512) {
                    let _ = l.plan(n / 2, DataPlan::EndAt(u64::MAX));
                    let _ = l.plan(n / 2, DataPlan::EndAt(0));
                }
            }
        }
        let _ = fit_to_disk(&img, n, n, 4096, &FitOptions::default());
    }

    #[test]
    fn chs() {
        assert_eq!(lba_to_chs(0), [0, 1, 0]);
        assert_eq!(lba_to_chs(63), [1, 1, 0]);
        assert_eq!(lba_to_chs(u64::MAX), [0xFE, 0xFF, 0xFF]);
    }
}

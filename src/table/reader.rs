//! [`read_table`]: find and parse the partition table of a disk or image through a
//! [`ReadAt`] source, driving the pure parsers in [`gpt`](super::gpt) and
//! [`mbr`](super::mbr).
//!
//! Policy: GPT is tried when sector 0 carries a 0xEE entry (or has no usable MBR at all);
//! the primary and backup copies are both checked and compared; damage that still leaves a
//! usable table goes into [`PartitionTable::problems`]. DOS tables have their EBR chains
//! followed with loop and bound protection. Nothing here panics on hostile input.

use std::collections::HashSet;

use super::gpt::{self, GptEntry, GptHeader};
use super::mbr::{self, Mbr, MbrClass, MbrError};
use super::{EntryKind, GptInfo, Partition, PartitionTable, TableError, TableKind};
use crate::io::{ReadAt, read_vec};

/// Most logical partitions followed in one extended partition.
const MAX_LOGICALS: usize = 128;
/// Most EBRs visited in one chain (allows some empty EBRs between logicals).
const MAX_EBRS: usize = 2 * MAX_LOGICALS;

/// Find and parse the partition table of a disk or image.
///
/// `sector_size` is the logical sector size of the source (512 for images; from
/// BLKSSZGET for devices). When it is 512 and no GPT is found, 4096 is also tried; the
/// size actually used is in [`PartitionTable::sector_size`].
pub fn read_table(r: &dyn ReadAt, sector_size: u32) -> Result<PartitionTable, TableError> {
    if !sector_size.is_power_of_two() || !(512..=65536).contains(&sector_size) {
        return Err(TableError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("unsupported sector size {sector_size} (need a power of two, 512..=65536)"),
        )));
    }
    let len = r.len();
    if len < mbr::MBR_LEN as u64 {
        return Err(TableError::NotFound(format!(
            "source is only {len} bytes, too short for a partition table"
        )));
    }
    let s0 = read_vec(r, 0, mbr::MBR_LEN)?;
    let parsed = mbr::parse_mbr(&s0);

    if let Ok(m) = &parsed {
        if m.has_protective() {
            return match find_gpt(r, sector_size) {
                Ok(found) => Ok(gpt_table(r, found, Some(m))),
                Err(why) => Err(TableError::Damaged(format!(
                    "sector 0 has a GPT protective (0xEE) entry but no valid GPT was found: {why}"
                ))),
            };
        }
        if m.class() == MbrClass::Dos {
            let mut table = dos_table(r, sector_size, m);
            if let Ok(found) = find_gpt(r, sector_size) {
                table.problems.push(format!(
                    "a GPT (disk GUID {}) is also present but sector 0 has no 0xEE entry; \
                     it was ignored (stale GPT left behind by repartitioning?)",
                    found.header.disk_guid
                ));
            }
            return Ok(table);
        }
    }

    // No usable MBR (missing, empty, or a filesystem boot sector): a GPT may still be
    // there with its protective MBR wiped.
    if let Ok(found) = find_gpt(r, sector_size) {
        let mut table = gpt_table(r, found, parsed.as_ref().ok());
        table.problems.insert(
            0,
            "no protective MBR in sector 0 (wiped or overwritten?); the GPT was used anyway".into(),
        );
        return Ok(table);
    }
    Err(TableError::NotFound(match parsed {
        Err(MbrError::NoSignature) => "no MBR signature 0x55AA at LBA 0".into(),
        Err(MbrError::BadBootIndicator { slot, value }) => format!(
            "sector 0 has the 0x55AA signature but entry {} has boot indicator {value:#04x}: \
             a filesystem boot sector (card formatted without a partition table?), not an MBR",
            u32::from(slot) + 1
        ),
        Err(e) => e.to_string(),
        Ok(_) => "MBR at LBA 0 has no partition entries and there is no GPT".into(),
    }))
}

// ---------------------------------------------------------------------------------------
// GPT

/// One copy (primary or backup) of the GPT as found on the source.
struct Copy {
    lba: u64,
    header: GptHeader,
    entries: Vec<u8>,
    /// Why the entry array is unusable (unreadable or CRC mismatch), if it is.
    entries_err: Option<String>,
}

impl Copy {
    fn ok(&self) -> bool {
        self.entries_err.is_none()
    }
}

/// A GPT that can be used, with the facts `read_table` reports.
struct FoundGpt {
    sector_size: u32,
    header: GptHeader,
    entries: Vec<GptEntry>,
    info: GptInfo,
    problems: Vec<String>,
}

fn read_sector(r: &dyn ReadAt, lba: u64, ss: u32) -> Result<Vec<u8>, String> {
    let off = lba
        .checked_mul(u64::from(ss))
        .ok_or_else(|| format!("LBA {lba} is out of range"))?;
    let n = usize::try_from(ss).map_err(|e| e.to_string())?;
    read_vec(r, off, n).map_err(|e| e.to_string())
}

/// Why a GPT header copy could not be used.
#[derive(Debug)]
enum CopyErr {
    /// The sector could not be read (past the end of the source, I/O error).
    Unreadable(String),
    /// The sector was read but holds no valid header.
    Header(gpt::GptError),
    /// The backup would sit where the primary is.
    SelfReference,
}

impl CopyErr {
    /// Nothing header-like there at all (as opposed to a damaged header).
    fn is_missing(&self) -> bool {
        matches!(
            self,
            CopyErr::Unreadable(_) | CopyErr::Header(gpt::GptError::NoSignature)
        )
    }
}

impl std::fmt::Display for CopyErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyErr::Unreadable(e) => write!(f, "unreadable ({e})"),
            CopyErr::Header(e) => e.fmt(f),
            CopyErr::SelfReference => f.write_str("points to LBA 1, the primary's own place"),
        }
    }
}

fn read_copy(r: &dyn ReadAt, ss: u32, lba: u64) -> Result<Copy, CopyErr> {
    let sector = read_sector(r, lba, ss).map_err(CopyErr::Unreadable)?;
    let header = gpt::parse_header(&sector).map_err(CopyErr::Header)?;
    let mut entries = Vec::new();
    let entries_err = match header.entries_lba.checked_mul(u64::from(ss)) {
        None => Some(format!(
            "entry array LBA {} is out of range",
            header.entries_lba
        )),
        Some(off) => match usize::try_from(header.entry_array_len())
            .map_err(|e| e.to_string())
            .and_then(|n| read_vec(r, off, n).map_err(|e| e.to_string()))
        {
            Err(e) => Some(format!(
                "entry array at LBA {} unreadable: {e}",
                header.entries_lba
            )),
            Ok(bytes) => {
                entries = bytes;
                if gpt::check_entries_crc(&entries, &header) {
                    None
                } else {
                    Some(format!(
                        "entry array at LBA {} CRC mismatch (stored {:#010x}, computed {:#010x})",
                        header.entries_lba,
                        header.entries_crc,
                        gpt::entries_crc(&entries)
                    ))
                }
            }
        },
    };
    Ok(Copy {
        lba,
        header,
        entries,
        entries_err,
    })
}

/// Look for a GPT with `ss`, and with 4096-byte sectors when `ss` is 512.
fn find_gpt(r: &dyn ReadAt, ss: u32) -> Result<FoundGpt, String> {
    match gpt_at(r, ss) {
        Ok(g) => Ok(g),
        Err(e512) if ss == 512 => match gpt_at(r, 4096) {
            Ok(mut g) => {
                g.problems.insert(
                    0,
                    "GPT found with 4096-byte sectors, not the 512 bytes asked for \
                     (image of a 4Kn disk?)"
                        .into(),
                );
                Ok(g)
            }
            Err(_) => Err(e512),
        },
        Err(e) => Err(e),
    }
}

fn gpt_at(r: &dyn ReadAt, ss: u32) -> Result<FoundGpt, String> {
    let sectors = r.len() / u64::from(ss);
    if sectors < 2 {
        return Err(format!(
            "source holds {sectors} sector(s) of {ss} bytes, too few for a GPT"
        ));
    }
    let last_lba = sectors - 1;
    let mut problems = Vec::new();

    let primary = read_copy(r, ss, 1);
    let backup_lba = match &primary {
        Ok(p) => p.header.alternate_lba,
        Err(_) => last_lba,
    };
    let backup = if backup_lba == 1 {
        Err(CopyErr::SelfReference)
    } else {
        read_copy(r, ss, backup_lba)
    };

    // Report on the primary copy.
    match &primary {
        Err(e) => problems.push(format!("primary GPT header at LBA 1: {e}")),
        Ok(p) => {
            if p.header.my_lba != 1 {
                problems.push(format!(
                    "primary GPT header at LBA 1 claims to be at LBA {}",
                    p.header.my_lba
                ));
            }
            if let Some(e) = &p.entries_err {
                problems.push(format!("primary GPT {e}"));
            }
        }
    }
    // Report on the backup copy.
    match &backup {
        Err(_) if backup_lba > last_lba => problems.push(format!(
            "backup GPT header missing at LBA {backup_lba}: the source ends at LBA {last_lba} \
             (image truncated or disk resized?)"
        )),
        Err(e) if e.is_missing() => problems.push(format!(
            "backup GPT header missing at LBA {backup_lba} (image truncated or disk resized?)"
        )),
        Err(e) => problems.push(format!("backup GPT header at LBA {backup_lba}: {e}")),
        Ok(b) => {
            if b.header.my_lba != b.lba {
                problems.push(format!(
                    "backup GPT header at LBA {} claims to be at LBA {}",
                    b.lba, b.header.my_lba
                ));
            }
            if b.header.alternate_lba != 1 {
                problems.push(format!(
                    "backup GPT header points to a primary at LBA {}, not 1",
                    b.header.alternate_lba
                ));
            }
            if let Some(e) = &b.entries_err {
                problems.push(format!("backup GPT {e}"));
            }
        }
    }
    if backup_lba < last_lba {
        problems.push(format!(
            "backup GPT not at end of disk: it is at LBA {backup_lba}, the source ends at LBA \
             {last_lba} (normal for an image written to a larger disk; HAOS moves it at first boot)"
        ));
    }

    let p_ok = primary.as_ref().is_ok_and(Copy::ok);
    let b_ok = backup.as_ref().is_ok_and(Copy::ok);
    if let (Ok(p), Ok(b)) = (&primary, &backup)
        && p_ok
        && b_ok
    {
        compare_copies(p, b, &mut problems);
    }

    let chosen: &Copy = match (&primary, &backup) {
        (Ok(p), _) if p_ok => p,
        (_, Ok(b)) if b_ok => {
            problems.push(format!(
                "primary GPT {}; using backup at LBA {}",
                match &primary {
                    Err(CopyErr::Header(gpt::GptError::HeaderCrc { .. })) => {
                        "header CRC mismatch".to_string()
                    }
                    Err(e) => format!("header unusable ({e})"),
                    Ok(_) => "entry array damaged".to_string(),
                },
                b.lba
            ));
            b
        }
        (Ok(p), _) => {
            problems.push(
                "no GPT copy has a valid entry array; using the primary entries anyway \
                 (they may be wrong)"
                    .into(),
            );
            p
        }
        (Err(_), Ok(b)) => {
            problems.push(
                "no GPT copy has a valid entry array; using the backup entries anyway \
                 (they may be wrong)"
                    .into(),
            );
            b
        }
        (Err(pe), Err(be)) => {
            return Err(format!(
                "with {ss}-byte sectors: primary GPT at LBA 1: {pe}; backup GPT at LBA {backup_lba}: {be}"
            ));
        }
    };

    let h = &chosen.header;
    let all = gpt::parse_entries(&chosen.entries, h.entry_count, h.entry_size);
    let mut entries = Vec::with_capacity(all.len());
    for e in all {
        match gpt::check_entry(&e, h.first_usable_lba, h.last_usable_lba) {
            Ok(()) => entries.push(e),
            Err(why) => problems.push(why),
        }
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for e in &entries {
        if !seen.insert(e.unique_guid.as_str()) {
            problems.push(format!(
                "GPT entry {} repeats PARTUUID {} of an earlier entry",
                e.number(),
                e.unique_guid
            ));
        }
    }

    let p_hdr = primary.as_ref().ok().map(|p| &p.header);
    let info = GptInfo {
        disk_guid: h.disk_guid.clone(),
        first_usable_lba: h.first_usable_lba,
        last_usable_lba: h.last_usable_lba,
        primary_lba: p_hdr.map_or(h.alternate_lba, |p| p.my_lba),
        backup_lba: p_hdr.map_or(chosen.lba, |p| p.alternate_lba),
        primary_ok: p_ok,
        backup_ok: b_ok,
        entry_count: h.entry_count,
        entry_size: h.entry_size,
        // Without a primary header, assume the standard place right after it.
        entries_lba: p_hdr.map_or(h.alternate_lba.saturating_add(1), |p| p.entries_lba),
    };
    Ok(FoundGpt {
        sector_size: ss,
        header: h.clone(),
        entries,
        info,
        problems,
    })
}

fn compare_copies(p: &Copy, b: &Copy, problems: &mut Vec<String>) {
    let (ph, bh) = (&p.header, &b.header);
    let mut differ = |what: &str, a: String, c: String| {
        if a != c {
            problems.push(format!(
                "primary and backup GPT headers disagree on {what} ({a} vs {c}); using primary"
            ));
        }
    };
    differ("disk GUID", ph.disk_guid.clone(), bh.disk_guid.clone());
    differ(
        "first usable LBA",
        ph.first_usable_lba.to_string(),
        bh.first_usable_lba.to_string(),
    );
    differ(
        "last usable LBA",
        ph.last_usable_lba.to_string(),
        bh.last_usable_lba.to_string(),
    );
    differ(
        "entry count",
        ph.entry_count.to_string(),
        bh.entry_count.to_string(),
    );
    differ(
        "entry size",
        ph.entry_size.to_string(),
        bh.entry_size.to_string(),
    );
    if p.entries != b.entries {
        problems.push("primary and backup GPT entry arrays differ; using primary".into());
    }
}

fn gpt_table(r: &dyn ReadAt, found: FoundGpt, m: Option<&Mbr>) -> PartitionTable {
    let FoundGpt {
        sector_size,
        header: _,
        entries,
        info,
        mut problems,
    } = found;
    let partitions: Vec<Partition> = entries
        .iter()
        .filter_map(|e| {
            Some(Partition {
                number: e.number(),
                kind: EntryKind::Gpt,
                start_lba: e.first_lba,
                size_lba: e.size_lba()?,
                name: Some(e.name.clone()),
                type_id: e.type_guid.clone(),
                partuuid: e.unique_guid.clone(),
                bootable: e.attributes & gpt::ATTR_LEGACY_BIOS_BOOTABLE != 0,
                attributes: e.attributes,
            })
        })
        .collect();
    let mbr_entries = m.map(|m| m.entries.clone()).unwrap_or_default();
    let kind = match m.map(Mbr::class) {
        Some(MbrClass::Hybrid) => TableKind::GptHybrid,
        _ => TableKind::Gpt,
    };
    for e in &mbr_entries {
        if e.type_byte == mbr::TYPE_PROTECTIVE {
            if e.start_lba != 1 {
                problems.push(format!(
                    "protective MBR entry {} starts at LBA {}, not 1",
                    u32::from(e.slot) + 1,
                    e.start_lba
                ));
            }
        } else if kind == TableKind::GptHybrid
            && !partitions.iter().any(|p| {
                p.start_lba == u64::from(e.start_lba) && p.size_lba == u64::from(e.size_lba)
            })
        {
            problems.push(format!(
                "hybrid MBR entry {} (type {:#04x}, LBA {}+{}) matches no GPT partition",
                u32::from(e.slot) + 1,
                e.type_byte,
                e.start_lba,
                e.size_lba
            ));
        }
    }
    check_overlaps(&partitions, &mut problems);
    check_end(r, sector_size, &partitions, &mut problems);
    PartitionTable {
        kind,
        sector_size,
        disk_id: info.disk_guid.clone(),
        partitions,
        mbr_entries,
        gpt: Some(info),
        problems,
    }
}

// ---------------------------------------------------------------------------------------
// DOS MBR

fn mbr_partuuid(sig: u32, n: u32) -> String {
    format!("{sig:08x}-{n:02x}")
}

fn dos_table(r: &dyn ReadAt, ss: u32, m: &Mbr) -> PartitionTable {
    let mut problems = Vec::new();
    let mut partitions = Vec::new();
    for e in &m.entries {
        let number = u32::from(e.slot) + 1;
        if e.size_lba == 0 {
            problems.push(format!(
                "MBR entry {number} has type {:#04x} but zero size; ignored",
                e.type_byte
            ));
            continue;
        }
        let extended = mbr::is_extended(e.type_byte);
        partitions.push(Partition {
            number,
            kind: if extended {
                EntryKind::Extended
            } else {
                EntryKind::Primary
            },
            start_lba: u64::from(e.start_lba),
            size_lba: u64::from(e.size_lba),
            name: None,
            type_id: format!("0x{:02x}", e.type_byte),
            partuuid: mbr_partuuid(m.disk_signature, number),
            bootable: e.bootable,
            attributes: 0,
        });
    }
    let mut next_number = 5u32;
    let containers: Vec<(u64, u64)> = partitions
        .iter()
        .filter(|p| p.kind == EntryKind::Extended)
        .map(|p| (p.start_lba, p.size_lba))
        .collect();
    for (start, size) in containers {
        walk_ebr_chain(
            r,
            ss,
            m.disk_signature,
            (start, size),
            &mut next_number,
            &mut partitions,
            &mut problems,
        );
    }
    partitions.sort_by_key(|p| p.number);
    check_overlaps(&partitions, &mut problems);
    check_end(r, ss, &partitions, &mut problems);
    PartitionTable {
        kind: TableKind::Mbr,
        sector_size: ss,
        disk_id: format!("{:08x}", m.disk_signature),
        partitions,
        mbr_entries: m.entries.clone(),
        gpt: None,
        problems,
    }
}

/// Follow one extended partition's EBR chain, appending logical partitions.
fn walk_ebr_chain(
    r: &dyn ReadAt,
    ss: u32,
    sig: u32,
    (ext_start, ext_size): (u64, u64),
    next_number: &mut u32,
    partitions: &mut Vec<Partition>,
    problems: &mut Vec<String>,
) {
    let ext_end = ext_start.saturating_add(ext_size);
    let mut visited: HashSet<u64> = HashSet::new();
    let mut logicals = 0usize;
    let mut cur = ext_start;
    loop {
        if !visited.insert(cur) {
            problems.push(format!(
                "EBR chain loops back to LBA {cur}; stopped after {logicals} logical partition(s)"
            ));
            return;
        }
        if visited.len() > MAX_EBRS {
            problems.push(format!(
                "EBR chain longer than {MAX_EBRS} links; stopped at LBA {cur}"
            ));
            return;
        }
        let sector = match cur
            .checked_mul(u64::from(ss))
            .ok_or_else(|| "offset out of range".to_string())
            .and_then(|off| read_vec(r, off, mbr::MBR_LEN).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!(
                    "EBR at LBA {cur} unreadable ({e}); logical partitions after it are lost"
                ));
                return;
            }
        };
        let ebr = match mbr::parse_ebr(&sector) {
            Ok(ebr) => ebr,
            Err(e) => {
                problems.push(format!(
                    "EBR at LBA {cur}: {e}; logical partitions after it are lost"
                ));
                return;
            }
        };
        if ebr.extra_entries {
            problems.push(format!(
                "EBR at LBA {cur} has entries in slots 3–4; they were ignored"
            ));
        }
        if let Some(l) = ebr.logical {
            if logicals >= MAX_LOGICALS {
                problems.push(format!(
                    "more than {MAX_LOGICALS} logical partitions; stopped at the EBR at LBA {cur}"
                ));
                return;
            }
            let number = *next_number;
            let start = cur.saturating_add(u64::from(l.start_lba));
            let size = u64::from(l.size_lba);
            if start < ext_start || start.saturating_add(size) > ext_end {
                problems.push(format!(
                    "logical partition {number} (LBA {start}+{size}) extends outside its extended \
                     partition (LBA {ext_start}..{ext_end})"
                ));
            }
            partitions.push(Partition {
                number,
                kind: EntryKind::Logical,
                start_lba: start,
                size_lba: size,
                name: None,
                type_id: format!("0x{:02x}", l.type_byte),
                partuuid: mbr_partuuid(sig, number),
                bootable: l.bootable,
                attributes: 0,
            });
            logicals += 1;
            *next_number = next_number.saturating_add(1);
        }
        match ebr.next {
            None => return,
            Some(rel) => {
                let next = ext_start.saturating_add(u64::from(rel));
                if next >= ext_end {
                    problems.push(format!(
                        "EBR at LBA {cur} links to LBA {next}, outside its extended partition \
                         (LBA {ext_start}..{ext_end}); chain stopped"
                    ));
                    return;
                }
                cur = next;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared checks

fn describe(p: &Partition) -> String {
    match &p.name {
        Some(n) if !n.is_empty() => format!("partition {} ({n:?})", p.number),
        _ => format!("partition {}", p.number),
    }
}

/// Report overlapping partitions: primaries/extended/GPT among themselves, logicals among
/// themselves (a logical inside its extended container is not an overlap).
fn check_overlaps(parts: &[Partition], problems: &mut Vec<String>) {
    for logical in [false, true] {
        let mut set: Vec<&Partition> = parts
            .iter()
            .filter(|p| (p.kind == EntryKind::Logical) == logical && p.size_lba > 0)
            .collect();
        set.sort_by_key(|p| (p.start_lba, p.number));
        let mut reach: Option<(&Partition, u64)> = None;
        for p in set {
            let end = p.start_lba.saturating_add(p.size_lba);
            if let Some((q, q_end)) = reach {
                if p.start_lba < q_end {
                    problems.push(format!("{} overlaps {}", describe(p), describe(q)));
                }
                if end > q_end {
                    reach = Some((p, end));
                }
            } else {
                reach = Some((p, end));
            }
        }
    }
}

/// Report partitions that run past the end of the source.
fn check_end(r: &dyn ReadAt, ss: u32, parts: &[Partition], problems: &mut Vec<String>) {
    let sectors = r.len() / u64::from(ss);
    for p in parts {
        let end = p.start_lba.saturating_add(p.size_lba);
        if end > sectors {
            problems.push(format!(
                "{} ends at LBA {}, beyond the end of the source ({sectors} sectors): image truncated?",
                describe(p),
                end - 1
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gpt::tests::{ESP, FixEntry, FixHeader, LINUX, build_entries, build_header};
    use super::super::mbr::tests::build_mbr;
    use super::*;

    const DISK_GUID: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";

    /// A scaled-down HAOS-like GPT layout for a disk of `sectors` sectors of `ss` bytes,
    /// with the backup at the end; sector 0 is `mbr0`.
    fn build_gpt_disk(ss: usize, sectors: u64, mbr0: Vec<u8>) -> Vec<u8> {
        let list: [FixEntry; 4] = [
            (
                ESP,
                "b3dd0952-733c-4c88-8cba-cab9b8b4377f",
                64,
                127,
                0,
                "hassos-boot",
            ),
            (
                LINUX,
                "26700fc6-b0bc-4ccf-9837-ea1a4cba3e65",
                128,
                191,
                0,
                "hassos-kernel0",
            ),
            (
                LINUX,
                "f1326040-5236-40eb-b683-aaa100a9afcf",
                192,
                255,
                0,
                "hassos-overlay",
            ),
            (
                LINUX,
                "a52a4597-fa3a-4851-aefd-2fbe9f849079",
                256,
                sectors - 40,
                0,
                "hassos-data",
            ),
        ];
        let entries = build_entries(&list, 128, 128);
        let entry_sectors = (entries.len() / ss) as u64;
        let last = sectors - 1;
        let mut h = FixHeader {
            my_lba: 1,
            alternate_lba: last,
            first_usable: 2 + entry_sectors,
            last_usable: last - 1 - entry_sectors,
            disk_guid: DISK_GUID,
            entries_lba: 2,
            entry_count: 128,
            entry_size: 128,
        };
        let primary = build_header(&h, &entries, ss);
        h.my_lba = last;
        h.alternate_lba = 1;
        h.entries_lba = last - entry_sectors;
        let backup = build_header(&h, &entries, ss);
        let mut disk = vec![0u8; sectors as usize * ss];
        disk[..512].copy_from_slice(&mbr0);
        disk[ss..2 * ss].copy_from_slice(&primary);
        disk[2 * ss..2 * ss + entries.len()].copy_from_slice(&entries);
        let be = (last - entry_sectors) as usize * ss;
        disk[be..be + entries.len()].copy_from_slice(&entries);
        disk[last as usize * ss..].copy_from_slice(&backup);
        disk
    }

    fn pmbr(sectors: u64) -> Vec<u8> {
        build_mbr(0, &[(false, 0xEE, 1, (sectors - 1) as u32)])
    }

    #[test]
    fn valid_gpt() {
        let disk = build_gpt_disk(512, 400, pmbr(400));
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.kind, TableKind::Gpt);
        assert_eq!(t.sector_size, 512);
        assert_eq!(t.disk_id, DISK_GUID);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.partitions.len(), 4);
        let boot = t.by_name("hassos-boot").unwrap();
        assert_eq!((boot.number, boot.start_lba, boot.size_lba), (1, 64, 64));
        assert_eq!(boot.type_id, ESP);
        assert_eq!(boot.partuuid, "b3dd0952-733c-4c88-8cba-cab9b8b4377f");
        assert_eq!(t.partition(4).unwrap().name.as_deref(), Some("hassos-data"));
        let g = t.gpt.unwrap();
        assert!(g.primary_ok && g.backup_ok);
        assert_eq!((g.primary_lba, g.backup_lba, g.entries_lba), (1, 399, 2));
        assert_eq!((g.first_usable_lba, g.last_usable_lba), (34, 366));
        assert_eq!(t.mbr_entries.len(), 1);
    }

    #[test]
    fn hybrid_like_genimage() {
        let mbr0 = build_mbr(0, &[(false, 0x0C, 64, 64), (false, 0xEE, 1, 33)]);
        let t = read_table(&build_gpt_disk(512, 400, mbr0), 512).unwrap();
        assert_eq!(t.kind, TableKind::GptHybrid);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(t.partitions.len(), 4);
        assert_eq!(t.mbr_entries.len(), 2);
        assert_eq!(t.mbr_entries[0].type_byte, 0x0C);
        assert_eq!(t.mbr_entries[1].type_byte, 0xEE);
        // A hybrid entry that matches nothing is reported.
        let mbr0 = build_mbr(0, &[(true, 0x0C, 2048, 65536), (false, 0xEE, 1, 2047)]);
        let t = read_table(&build_gpt_disk(512, 400, mbr0), 512).unwrap();
        assert!(t.problems.iter().any(|p| p.contains("matches no GPT")));
    }

    #[test]
    fn primary_header_crc_uses_backup() {
        let mut disk = build_gpt_disk(512, 400, pmbr(400));
        disk[512 + 60] ^= 0xFF; // inside the disk GUID, under the header CRC
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.partitions.len(), 4);
        let g = t.gpt.as_ref().unwrap();
        assert!(!g.primary_ok && g.backup_ok);
        assert_eq!(g.backup_lba, 399);
        assert!(
            t.problems
                .iter()
                .any(|p| p == "primary GPT header CRC mismatch; using backup at LBA 399"),
            "{:?}",
            t.problems
        );
    }

    #[test]
    fn primary_entries_crc_uses_backup() {
        let mut disk = build_gpt_disk(512, 400, pmbr(400));
        disk[1024 + 56] ^= 1; // first entry's name
        let t = read_table(&disk, 512).unwrap();
        let g = t.gpt.as_ref().unwrap();
        assert!(!g.primary_ok && g.backup_ok);
        assert_eq!(t.by_name("hassos-boot").unwrap().number, 1);
        assert!(t.problems.iter().any(|p| p.contains("CRC mismatch")));
        assert!(t.problems.iter().any(|p| p.contains("using backup")));
    }

    #[test]
    fn both_entry_arrays_bad_still_reports() {
        let mut disk = build_gpt_disk(512, 400, pmbr(400));
        disk[1024 + 56] ^= 1;
        let be = (400 - 1 - 32) * 512;
        disk[be + 56] ^= 1;
        let t = read_table(&disk, 512).unwrap();
        let g = t.gpt.as_ref().unwrap();
        assert!(!g.primary_ok && !g.backup_ok);
        assert!(t.problems.iter().any(|p| p.contains("anyway")));
    }

    #[test]
    fn missing_backup_on_truncated_image() {
        let disk = build_gpt_disk(512, 400, pmbr(400));
        let cut = &disk[..300 * 512];
        let t = read_table(&cut.to_vec(), 512).unwrap();
        let g = t.gpt.as_ref().unwrap();
        assert!(g.primary_ok && !g.backup_ok);
        assert!(
            t.problems
                .iter()
                .any(|p| p.starts_with("backup GPT header missing at LBA 399")),
            "{:?}",
            t.problems
        );
        assert!(t.problems.iter().any(|p| p.contains("beyond the end")));
    }

    #[test]
    fn backup_not_at_end_is_information() {
        let mut disk = build_gpt_disk(512, 400, pmbr(400));
        disk.resize(800 * 512, 0);
        let t = read_table(&disk, 512).unwrap();
        let g = t.gpt.as_ref().unwrap();
        assert!(g.primary_ok && g.backup_ok);
        assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
        assert!(t.problems[0].starts_with("backup GPT not at end of disk"));
    }

    #[test]
    fn primary_gone_backup_at_end() {
        let mut disk = build_gpt_disk(512, 400, pmbr(400));
        disk[512..1024].fill(0);
        let t = read_table(&disk, 512).unwrap();
        let g = t.gpt.as_ref().unwrap();
        assert!(!g.primary_ok && g.backup_ok);
        assert_eq!((g.primary_lba, g.backup_lba, g.entries_lba), (1, 399, 2));
        assert_eq!(t.partitions.len(), 4);
        // Both gone: a clear error, not a panic.
        disk[399 * 512..].fill(0);
        assert!(matches!(
            read_table(&disk, 512),
            Err(TableError::Damaged(_))
        ));
    }

    #[test]
    fn gpt_with_4096_sectors_found_from_512() {
        let disk = build_gpt_disk(4096, 400, pmbr(400));
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.sector_size, 4096);
        assert_eq!(t.partitions.len(), 4);
        assert!(t.problems.iter().any(|p| p.contains("4096-byte sectors")));
        let t = read_table(&disk, 4096).unwrap();
        assert!(t.problems.is_empty(), "{:?}", t.problems);
    }

    #[test]
    fn gpt_primary_backup_disagree() {
        // Backup entries differ (valid CRC of their own).
        let mut disk = build_gpt_disk(512, 400, pmbr(400));
        let a = build_entries(&[(LINUX, DISK_GUID, 40, 50, 0, "other")], 128, 128);
        let h = FixHeader {
            my_lba: 399,
            alternate_lba: 1,
            first_usable: 34,
            last_usable: 366,
            disk_guid: "11111111-2222-3333-4444-555555555555",
            entries_lba: 367,
            entry_count: 128,
            entry_size: 128,
        };
        disk[367 * 512..367 * 512 + a.len()].copy_from_slice(&a);
        disk[399 * 512..].copy_from_slice(&build_header(&h, &a, 512));
        let t = read_table(&disk, 512).unwrap();
        assert!(t.problems.iter().any(|p| p.contains("disk GUID")));
        assert!(t.problems.iter().any(|p| p.contains("entry arrays differ")));
        assert_eq!(t.disk_id, DISK_GUID);
    }

    #[test]
    fn bad_entries_reported_not_fatal() {
        let mut disk = build_gpt_disk(512, 400, pmbr(400));
        let list: [FixEntry; 3] = [
            (
                LINUX,
                "00000000-0000-0000-0000-000000000001",
                100,
                90,
                0,
                "rev",
            ),
            (
                LINUX,
                "00000000-0000-0000-0000-000000000002",
                10,
                50,
                0,
                "low",
            ),
            (
                LINUX,
                "00000000-0000-0000-0000-000000000003",
                40,
                60,
                0,
                "ok",
            ),
        ];
        let entries = build_entries(&list, 128, 128);
        let h = FixHeader {
            my_lba: 1,
            alternate_lba: 399,
            first_usable: 34,
            last_usable: 366,
            disk_guid: DISK_GUID,
            entries_lba: 2,
            entry_count: 128,
            entry_size: 128,
        };
        disk[512..1024].copy_from_slice(&build_header(&h, &entries, 512));
        disk[1024..1024 + entries.len()].copy_from_slice(&entries);
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.partitions[0].number, 3);
        assert!(
            t.problems
                .iter()
                .any(|p| p.contains("ends before it starts"))
        );
        assert!(
            t.problems
                .iter()
                .any(|p| p.contains("outside the usable range"))
        );
    }

    /// ODROID layout of haos-layout.md §2.3, divided by 256 (1 MiB → 8 sectors).
    fn odroid_disk() -> Vec<u8> {
        let sectors = 8000u64;
        let mut disk = vec![0u8; sectors as usize * 512];
        let ext = (65536 / 256, 1_173_504 / 256); // 256 + 4584
        disk[..512].copy_from_slice(&build_mbr(
            0x4861_7373,
            &[
                (true, 0x0C, 16384 / 256, 49152 / 256),
                (false, 0x0F, ext.0, ext.1),
                (false, 0x83, 1_239_040 / 256, 196_608 / 256),
                (false, 0x83, 1_435_648 / 256, 2000),
            ],
        ));
        // Logicals: kernel0, system0, kernel1, system1, bootstate; EBR 8 sectors before each.
        let logicals: [(u32, u32); 5] = [
            (67584 / 256, 49152 / 256),
            (118_784 / 256, 524_288 / 256),
            (645_120 / 256, 49152 / 256),
            (696_320 / 256, 524_288 / 256),
            (1_222_656 / 256, 16384 / 256),
        ];
        for (i, (start, size)) in logicals.iter().enumerate() {
            let ebr = start - 8;
            let mut list = vec![(false, 0x83, 8, *size)];
            if let Some((nstart, nsize)) = logicals.get(i + 1) {
                let nebr = nstart - 8;
                list.push((false, 0x05, nebr - ext.0, nsize + 8));
            }
            let o = ebr as usize * 512;
            disk[o..o + 512].copy_from_slice(&build_mbr(0, &list));
        }
        disk
    }

    #[test]
    fn odroid_dos_with_logicals() {
        let t = read_table(&odroid_disk(), 512).unwrap();
        assert_eq!(t.kind, TableKind::Mbr);
        assert_eq!(t.disk_id, "48617373");
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let nums: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
        assert_eq!(nums, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let p1 = t.partition(1).unwrap();
        assert!(p1.bootable);
        assert_eq!(p1.type_id, "0x0c");
        assert_eq!(p1.partuuid, "48617373-01");
        assert_eq!(t.partition(2).unwrap().kind, EntryKind::Extended);
        let p5 = t.partition(5).unwrap();
        assert_eq!(p5.kind, EntryKind::Logical);
        assert_eq!((p5.start_lba, p5.size_lba), (264, 192));
        assert_eq!(p5.partuuid, "48617373-05");
        let p9 = t.partition(9).unwrap();
        assert_eq!((p9.start_lba, p9.size_lba), (4776, 64));
        assert_eq!(p9.partuuid, "48617373-09");
        assert!(t.gpt.is_none());
        assert_eq!(t.mbr_entries.len(), 4);
    }

    #[test]
    fn ebr_loop_detected() {
        let mut disk = odroid_disk();
        // Make the third EBR (before p7 at LBA 2520) link back to the first (LBA 256).
        let ebr3 = (645_120 / 256 - 8) * 512;
        disk[ebr3..ebr3 + 512].copy_from_slice(&build_mbr(
            0,
            &[(false, 0x83, 8, 192), (false, 0x05, 0, 200)],
        ));
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.partitions.len(), 7); // p1-p4 + three logicals
        assert!(t.problems.iter().any(|p| p.contains("loops back")));
    }

    #[test]
    fn ebr_link_outside_container() {
        let mut disk = odroid_disk();
        let ebr1 = (67584 / 256 - 8) * 512;
        disk[ebr1..ebr1 + 512].copy_from_slice(&build_mbr(
            0,
            &[(false, 0x83, 8, 192), (false, 0x05, 6000, 10)],
        ));
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.partitions.len(), 5);
        assert!(
            t.problems
                .iter()
                .any(|p| p.contains("outside its extended"))
        );
    }

    #[test]
    fn ebr_self_loop_and_bad_signature() {
        let mut disk = odroid_disk();
        let ebr1 = (67584 / 256 - 8) * 512;
        disk[ebr1 + 510] = 0;
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.partitions.len(), 4);
        assert!(t.problems.iter().any(|p| p.contains("EBR at LBA 256")));
    }

    #[test]
    fn not_found_cases() {
        let zeros = vec![0u8; 4096];
        match read_table(&zeros, 512) {
            Err(TableError::NotFound(m)) => assert_eq!(m, "no MBR signature 0x55AA at LBA 0"),
            other => panic!("{other:?}"),
        }
        let empty = build_mbr(0, &[]);
        assert!(matches!(
            read_table(&empty, 512),
            Err(TableError::NotFound(_))
        ));
        // FAT boot sector: jump + junk in the entry area.
        let mut fat = build_mbr(0, &[]);
        fat[446] = 0x29;
        match read_table(&fat, 512) {
            Err(TableError::NotFound(m)) => assert!(m.contains("boot indicator")),
            other => panic!("{other:?}"),
        }
        assert!(read_table(&zeros, 1000).is_err());
        assert!(read_table(&zeros[..10].to_vec(), 512).is_err());
    }

    #[test]
    fn gpt_without_protective_mbr() {
        let disk = build_gpt_disk(512, 400, vec![0u8; 512]);
        let t = read_table(&disk, 512).unwrap();
        assert_eq!(t.kind, TableKind::Gpt);
        assert!(t.problems[0].contains("no protective MBR"));
        assert!(t.mbr_entries.is_empty());
    }

    #[test]
    fn stale_gpt_behind_dos() {
        let mbr0 = build_mbr(0x1234, &[(false, 0x83, 64, 100)]);
        let t = read_table(&build_gpt_disk(512, 400, mbr0), 512).unwrap();
        assert_eq!(t.kind, TableKind::Mbr);
        assert!(t.problems.iter().any(|p| p.contains("stale GPT")));
    }

    #[test]
    fn truncated_inputs_never_panic() {
        let gpt = build_gpt_disk(512, 400, pmbr(400));
        let hyb = build_gpt_disk(
            512,
            400,
            build_mbr(0, &[(false, 0x0C, 64, 64), (false, 0xEE, 1, 33)]),
        );
        let dos = odroid_disk();
        for n in 0..=600 {
            let _ = read_table(&gpt[..n].to_vec(), 512);
            let _ = read_table(&hyb[..n].to_vec(), 512);
            let _ = read_table(&dos[..n].to_vec(), 512);
            let _ = read_table(&gpt[..n].to_vec(), 4096);
        }
        // Longer cuts through the entry array, the EBR chain and the backup.
        for n in (600..gpt.len()).step_by(509) {
            let _ = read_table(&gpt[..n].to_vec(), 512);
        }
        for n in (600..dos.len()).step_by(509) {
            let _ = read_table(&dos[..n].to_vec(), 512);
        }
    }

    /// Cheap deterministic mutation fuzzing: random byte flips in the table areas.
    #[test]
    fn mutated_tables_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let gpt = build_gpt_disk(512, 400, pmbr(400));
        let dos = odroid_disk();
        for round in 0..1500 {
            let (base, hot): (&Vec<u8>, &[usize]) = if round % 2 == 0 {
                (&gpt, &[0, 512, 1024, 367 * 512, 399 * 512])
            } else {
                (&dos, &[0, 256 * 512, 456 * 512, 2512 * 512, 2712 * 512])
            };
            let mut d = base.clone();
            for _ in 0..(1 + rnd() % 6) {
                let area = hot[(rnd() % hot.len() as u64) as usize];
                let i = area + (rnd() % 512) as usize;
                d[i] = rnd() as u8;
            }
            let _ = read_table(&d, 512);
        }
    }

    #[test]
    fn hostile_header_values() {
        // Valid CRCs but absurd LBAs everywhere.
        let entries = build_entries(
            &[(LINUX, DISK_GUID, u64::MAX - 1, u64::MAX, 0, "x")],
            4,
            128,
        );
        let h = FixHeader {
            my_lba: 1,
            alternate_lba: u64::MAX,
            first_usable: 0,
            last_usable: u64::MAX,
            disk_guid: DISK_GUID,
            entries_lba: u64::MAX / 2,
            entry_count: 4,
            entry_size: 128,
        };
        let mut disk = vec![0u8; 8192];
        disk[..512].copy_from_slice(&pmbr(16));
        disk[512..1024].copy_from_slice(&build_header(&h, &entries, 512));
        let t = read_table(&disk, 512).unwrap();
        assert!(t.partitions.is_empty());
        assert!(
            t.problems.iter().any(|p| p.contains("out of range")),
            "{:?}",
            t.problems
        );
        let h = FixHeader {
            entries_lba: 2,
            ..h
        };
        disk[512..1024].copy_from_slice(&build_header(&h, &entries, 512));
        disk[1024..1024 + entries.len()].copy_from_slice(&entries);
        let t = read_table(&disk, 512).unwrap();
        assert!(!t.problems.is_empty());
        // The giant partition is reported as running past the end.
        assert!(t.problems.iter().any(|p| p.contains("beyond the end")));
    }
}

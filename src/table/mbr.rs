//! MBR byte-level parsing: sector 0 (0x55AA signature, disk signature, the four entries
//! and their boot flags), its classification as protective, hybrid or plain DOS, and
//! single EBRs (extended boot records) of a logical-partition chain.
//!
//! Everything here is pure and never panics on malformed input. Following an EBR chain
//! across the disk (with loop and bound protection) is done by
//! [`read_table`](super::read_table).

use super::MbrEntry;

/// MBR type of the GPT protective entry.
pub const TYPE_PROTECTIVE: u8 = 0xEE;
/// Offset of the 32-bit disk signature (NT serial) in sector 0.
pub const OFF_DISK_SIGNATURE: usize = 440;
/// Offset of the first of four 16-byte partition entries.
pub const OFF_ENTRIES: usize = 446;
/// Offset of the 0x55 0xAA boot signature.
pub const OFF_BOOT_SIGNATURE: usize = 510;
/// Bytes an MBR or EBR occupies (regardless of the logical sector size).
pub const MBR_LEN: usize = 512;

/// True for the extended-container types: 0x05 (CHS), 0x0F (LBA), 0x85 (Linux).
pub fn is_extended(type_byte: u8) -> bool {
    matches!(type_byte, 0x05 | 0x0F | 0x85)
}

/// Why a sector is not an MBR/EBR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbrError {
    #[error("sector is {0} bytes, too short for an MBR")]
    TooShort(usize),
    #[error("no MBR signature 0x55AA")]
    NoSignature,
    #[error("entry {slot} has boot indicator {value:#04x} (only 0x00/0x80 are valid)")]
    BadBootIndicator { slot: u8, value: u8 },
}

/// What sector 0's entries say about the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MbrClass {
    /// Signature present, all four entries unused.
    Empty,
    /// A single 0xEE entry: the disk is GPT.
    Protective,
    /// 0xEE plus other entries: GPT with a hybrid MBR.
    Hybrid,
    /// No 0xEE entry: a DOS partition table.
    Dos,
}

/// A parsed sector 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    /// 32-bit disk signature at byte 440 (little-endian).
    pub disk_signature: u32,
    /// Used entries (type byte not 0), in slot order.
    pub entries: Vec<MbrEntry>,
}

impl Mbr {
    /// Classify by the 0xEE entry: see [`MbrClass`].
    pub fn class(&self) -> MbrClass {
        let ee = self
            .entries
            .iter()
            .filter(|e| e.type_byte == TYPE_PROTECTIVE)
            .count();
        match (ee, self.entries.len()) {
            (_, 0) => MbrClass::Empty,
            (0, _) => MbrClass::Dos,
            (1, 1) => MbrClass::Protective,
            _ => MbrClass::Hybrid,
        }
    }
    /// True when any entry is of type 0xEE.
    pub fn has_protective(&self) -> bool {
        self.entries.iter().any(|e| e.type_byte == TYPE_PROTECTIVE)
    }
}

/// One EBR of a logical-partition chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ebr {
    /// The logical partition; `start_lba` is relative to this EBR's own LBA.
    pub logical: Option<MbrEntry>,
    /// Next EBR, relative to the start of the outermost extended partition.
    pub next: Option<u32>,
    /// Entries 3 and 4 (normally unused) hold something; it is ignored.
    pub extra_entries: bool,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let arr: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(arr))
}

fn raw_entry(sector: &[u8], slot: u8) -> Option<(u8, MbrEntry)> {
    let o = OFF_ENTRIES + usize::from(slot) * 16;
    let status = *sector.get(o)?;
    let type_byte = *sector.get(o + 4)?;
    Some((
        status,
        MbrEntry {
            slot,
            bootable: status == 0x80,
            type_byte,
            start_lba: u32_at(sector, o + 8)?,
            size_lba: u32_at(sector, o + 12)?,
        },
    ))
}

fn check_signature(sector: &[u8]) -> Result<(), MbrError> {
    match sector.get(OFF_BOOT_SIGNATURE..MBR_LEN) {
        None => Err(MbrError::TooShort(sector.len())),
        Some([0x55, 0xAA]) => Ok(()),
        Some(_) => Err(MbrError::NoSignature),
    }
}

/// Parse sector 0 (at least 512 bytes). Rejects a missing 0x55AA signature and boot
/// indicators other than 0x00/0x80 (like Linux, so a FAT boot sector of a card formatted
/// without a table is not mistaken for one).
pub fn parse_mbr(sector: &[u8]) -> Result<Mbr, MbrError> {
    check_signature(sector)?;
    let disk_signature =
        u32_at(sector, OFF_DISK_SIGNATURE).ok_or(MbrError::TooShort(sector.len()))?;
    let mut entries = Vec::with_capacity(4);
    for slot in 0..4u8 {
        let (status, e) = raw_entry(sector, slot).ok_or(MbrError::TooShort(sector.len()))?;
        if status != 0 && status != 0x80 {
            return Err(MbrError::BadBootIndicator {
                slot,
                value: status,
            });
        }
        if e.type_byte != 0 {
            entries.push(e);
        }
    }
    Ok(Mbr {
        disk_signature,
        entries,
    })
}

/// Parse one EBR: the logical partition is the first of entries 1–2 that is used and not
/// an extended type; the link is the first of entries 1–2 with an extended type and a
/// non-zero size. Boot indicators are not checked.
pub fn parse_ebr(sector: &[u8]) -> Result<Ebr, MbrError> {
    check_signature(sector)?;
    let mut logical = None;
    let mut next = None;
    for slot in 0..2u8 {
        let (_, e) = raw_entry(sector, slot).ok_or(MbrError::TooShort(sector.len()))?;
        if e.type_byte == 0 || e.size_lba == 0 {
            continue;
        }
        if is_extended(e.type_byte) {
            if next.is_none() {
                next = Some(e.start_lba);
            }
        } else if logical.is_none() {
            logical = Some(e);
        }
    }
    let mut extra_entries = false;
    for slot in 2..4u8 {
        let (_, e) = raw_entry(sector, slot).ok_or(MbrError::TooShort(sector.len()))?;
        if e.type_byte != 0 && e.size_lba != 0 {
            extra_entries = true;
        }
    }
    Ok(Ebr {
        logical,
        next,
        extra_entries,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fixture entry: (bootable, type, start, size).
    pub type FixEntry = (bool, u8, u32, u32);

    /// Build a 512-byte MBR/EBR sector.
    pub fn build_mbr(disk_sig: u32, entries: &[FixEntry]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[440..444].copy_from_slice(&disk_sig.to_le_bytes());
        for (i, (boot, t, start, size)) in entries.iter().enumerate() {
            let o = 446 + 16 * i;
            s[o] = if *boot { 0x80 } else { 0 };
            s[o + 4] = *t;
            s[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
            s[o + 12..o + 16].copy_from_slice(&size.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn classify() {
        let prot = parse_mbr(&build_mbr(0, &[(false, 0xEE, 1, 4095)])).unwrap();
        assert_eq!(prot.class(), MbrClass::Protective);
        // genimage hybrid: 0x0C over hassos-boot, 0xEE over LBA 1..33.
        let hyb = parse_mbr(&build_mbr(
            0,
            &[(false, 0x0C, 2048, 65536), (false, 0xEE, 1, 33)],
        ))
        .unwrap();
        assert_eq!(hyb.class(), MbrClass::Hybrid);
        assert!(hyb.has_protective());
        let dos = parse_mbr(&build_mbr(
            0x4861_7373,
            &[(true, 0x0C, 16384, 49152), (false, 0x0F, 65536, 100)],
        ))
        .unwrap();
        assert_eq!(dos.class(), MbrClass::Dos);
        assert_eq!(dos.disk_signature, 0x4861_7373);
        assert!(dos.entries[0].bootable);
        assert!(!dos.entries[1].bootable);
        assert_eq!(dos.entries[1].slot, 1);
        let empty = parse_mbr(&build_mbr(0, &[])).unwrap();
        assert_eq!(empty.class(), MbrClass::Empty);
        // Two 0xEE entries alone still count as GPT with a non-standard (hybrid-like) MBR.
        let two = parse_mbr(&build_mbr(
            0,
            &[(false, 0xEE, 1, 10), (false, 0xEE, 11, 10)],
        ))
        .unwrap();
        assert_eq!(two.class(), MbrClass::Hybrid);
    }

    #[test]
    fn rejects() {
        let mut s = build_mbr(0, &[(false, 0x83, 1, 10)]);
        s[511] = 0;
        assert_eq!(parse_mbr(&s), Err(MbrError::NoSignature));
        let mut s = build_mbr(0, &[(false, 0x83, 1, 10)]);
        s[446 + 16] = 0x12;
        assert_eq!(
            parse_mbr(&s),
            Err(MbrError::BadBootIndicator {
                slot: 1,
                value: 0x12
            })
        );
        assert_eq!(parse_mbr(&s[..300]), Err(MbrError::TooShort(300)));
    }

    #[test]
    fn ebr() {
        let e = parse_ebr(&build_mbr(
            0,
            &[(false, 0x83, 2048, 49152), (false, 0x05, 51200, 1000)],
        ))
        .unwrap();
        let l = e.logical.unwrap();
        assert_eq!((l.type_byte, l.start_lba, l.size_lba), (0x83, 2048, 49152));
        assert_eq!(e.next, Some(51200));
        assert!(!e.extra_entries);
        let last = parse_ebr(&build_mbr(0, &[(false, 0x83, 2048, 10)])).unwrap();
        assert_eq!(last.next, None);
        // DRDOS style: link first, empty logical.
        let dr = parse_ebr(&build_mbr(0, &[(false, 0x05, 100, 10)])).unwrap();
        assert_eq!((dr.logical, dr.next), (None, Some(100)));
        let extra = parse_ebr(&build_mbr(
            0,
            &[(false, 0x83, 1, 1), (false, 0, 0, 0), (false, 0x83, 5, 5)],
        ))
        .unwrap();
        assert!(extra.extra_entries);
        let mut bad = build_mbr(0, &[]);
        bad[510] = 0;
        assert!(parse_ebr(&bad).is_err());
    }

    #[test]
    fn truncated_never_panics() {
        let s = build_mbr(0x4861_7373, &[(true, 0x0C, 1, 2), (false, 0x05, 3, 4)]);
        for n in 0..=600 {
            let mut v = s.clone();
            v.resize(n, 0x55);
            let _ = parse_mbr(&v);
            let _ = parse_ebr(&v);
        }
    }
}

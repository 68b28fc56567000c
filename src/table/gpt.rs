//! GPT byte-level parsing: the header (signature, revision, size bounds, CRC32), the
//! partition entry array (GUIDs, LBAs, attributes, UTF-16LE names) and its CRC32, plus the
//! mixed-endian GUID text helpers.
//!
//! Everything here is pure: bytes in, values or [`GptError`] out. It never panics on
//! malformed input. Deciding which copy (primary or backup) to trust is the job of
//! [`read_table`](super::read_table).

/// The 8-byte signature at the start of every GPT header.
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Smallest header size the UEFI spec allows (the fields defined by revision 1.0).
pub const MIN_HEADER_SIZE: u32 = 92;
/// Smallest entry size the UEFI spec allows.
pub const MIN_ENTRY_SIZE: u32 = 128;
/// Largest entry size accepted (the spec allows 128·2ⁿ; nothing real uses more than 128).
pub const MAX_ENTRY_SIZE: u32 = 4096;
/// Largest entry array accepted, in bytes (the usual array is 128 × 128 = 16 KiB).
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 4 * 1024 * 1024;

/// Offsets inside the header.
const OFF_REVISION: usize = 8;
const OFF_HEADER_SIZE: usize = 12;
const OFF_HEADER_CRC: usize = 16;
const OFF_MY_LBA: usize = 24;
const OFF_ALTERNATE_LBA: usize = 32;
const OFF_FIRST_USABLE: usize = 40;
const OFF_LAST_USABLE: usize = 48;
const OFF_DISK_GUID: usize = 56;
const OFF_ENTRIES_LBA: usize = 72;
const OFF_ENTRY_COUNT: usize = 80;
const OFF_ENTRY_SIZE: usize = 84;
const OFF_ENTRIES_CRC: usize = 88;

/// Offsets inside one partition entry.
const E_TYPE: usize = 0;
const E_UNIQUE: usize = 16;
const E_FIRST: usize = 32;
const E_LAST: usize = 40;
const E_ATTRS: usize = 48;
const E_NAME: usize = 56;
const E_NAME_LEN: usize = 72;

/// GPT attribute bit 2: legacy BIOS bootable.
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// Why a GPT header could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GptError {
    #[error("sector is {0} bytes, too short for a GPT header")]
    TooShort(usize),
    #[error("no \"EFI PART\" signature")]
    NoSignature,
    #[error("unsupported GPT revision {0:#010x}")]
    Revision(u32),
    #[error("header size {size} outside {min}..={max}")]
    HeaderSize { size: u32, min: u32, max: usize },
    #[error("header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    HeaderCrc { stored: u32, computed: u32 },
    #[error("entry size {0} is not a multiple of 8 in 128..={max}", max = MAX_ENTRY_SIZE)]
    EntrySize(u32),
    #[error("entry array of {count} × {size} bytes is implausibly large")]
    EntryArray { count: u32, size: u32 },
    #[error("usable range {first}..={last} is empty or reversed")]
    UsableRange { first: u64, last: u64 },
}

/// The fields of a GPT header (primary or backup), after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeader {
    pub revision: u32,
    pub header_size: u32,
    /// Stored header CRC32 (already verified by [`parse_header`]).
    pub header_crc: u32,
    /// Where this header says it lives (1 for the primary).
    pub my_lba: u64,
    /// Where the other copy should be.
    pub alternate_lba: u64,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// Raw on-disk GUID bytes (mixed-endian); see [`guid_to_string`].
    pub disk_guid_raw: [u8; 16],
    /// Disk GUID, lower-case dashed.
    pub disk_guid: String,
    /// First LBA of this copy's entry array.
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    /// Stored CRC32 of the entry array (`entry_count * entry_size` bytes).
    pub entries_crc: u32,
}

impl GptHeader {
    /// Bytes in the entry array (`entry_count * entry_size`, bounded by [`parse_header`]).
    pub fn entry_array_len(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }
}

/// One used GPT partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptEntry {
    /// Slot index in the array, 0-based (kernel partition number is `index + 1`).
    pub index: u32,
    /// Partition type GUID, upper-case dashed.
    pub type_guid: String,
    /// Unique partition GUID (PARTUUID), lower-case dashed.
    pub unique_guid: String,
    pub first_lba: u64,
    /// Inclusive last LBA.
    pub last_lba: u64,
    pub attributes: u64,
    /// Name decoded from UTF-16LE up to the first NUL (invalid code units become U+FFFD).
    pub name: String,
}

impl GptEntry {
    /// Kernel partition number (`index + 1`).
    pub fn number(&self) -> u32 {
        self.index.saturating_add(1)
    }
    /// Length in sectors, `None` when `last_lba < first_lba`.
    pub fn size_lba(&self) -> Option<u64> {
        self.last_lba
            .checked_sub(self.first_lba)
            .and_then(|d| d.checked_add(1))
    }
}

fn bytes_at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    bytes_at::<4>(b, off).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    bytes_at::<8>(b, off).map(u64::from_le_bytes)
}

/// CRC32 of a header of `header_size` bytes with its CRC field taken as zero.
/// `None` when `sector` is shorter than `header_size` or the size is below 20 bytes.
pub fn header_crc(sector: &[u8], header_size: u32) -> Option<u32> {
    let len = usize::try_from(header_size).ok()?;
    let head = sector.get(..len)?;
    let before = head.get(..OFF_HEADER_CRC)?;
    let after = head.get(OFF_HEADER_CRC + 4..)?;
    let mut h = crc32fast::Hasher::new();
    h.update(before);
    h.update(&[0u8; 4]);
    h.update(after);
    Some(h.finalize())
}

/// CRC32 of an entry array (pass exactly `entry_count * entry_size` bytes).
pub fn entries_crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// True when the first `header.entry_array_len()` bytes of `bytes` match `header.entries_crc`.
/// False when `bytes` is shorter than the array.
pub fn check_entries_crc(bytes: &[u8], header: &GptHeader) -> bool {
    usize::try_from(header.entry_array_len())
        .ok()
        .and_then(|n| bytes.get(..n))
        .is_some_and(|arr| entries_crc(arr) == header.entries_crc)
}

/// Parse and validate a GPT header from the start of `sector` (one logical sector; the
/// header size may not exceed its length). Checks signature, revision 1.x, header size,
/// header CRC32, entry size/count bounds and the usable range.
pub fn parse_header(sector: &[u8]) -> Result<GptHeader, GptError> {
    let short = || GptError::TooShort(sector.len());
    let sig = bytes_at::<8>(sector, 0).ok_or_else(short)?;
    if &sig != SIGNATURE {
        return Err(GptError::NoSignature);
    }
    if sector.len() < MIN_HEADER_SIZE as usize {
        return Err(short());
    }
    let revision = u32_at(sector, OFF_REVISION).ok_or_else(short)?;
    if revision >> 16 != 1 {
        return Err(GptError::Revision(revision));
    }
    let header_size = u32_at(sector, OFF_HEADER_SIZE).ok_or_else(short)?;
    if header_size < MIN_HEADER_SIZE
        || usize::try_from(header_size).map_or(true, |s| s > sector.len())
    {
        return Err(GptError::HeaderSize {
            size: header_size,
            min: MIN_HEADER_SIZE,
            max: sector.len(),
        });
    }
    let stored = u32_at(sector, OFF_HEADER_CRC).ok_or_else(short)?;
    let computed = header_crc(sector, header_size).ok_or_else(short)?;
    if stored != computed {
        return Err(GptError::HeaderCrc { stored, computed });
    }
    let entry_count = u32_at(sector, OFF_ENTRY_COUNT).ok_or_else(short)?;
    let entry_size = u32_at(sector, OFF_ENTRY_SIZE).ok_or_else(short)?;
    if !(MIN_ENTRY_SIZE..=MAX_ENTRY_SIZE).contains(&entry_size) || entry_size % 8 != 0 {
        return Err(GptError::EntrySize(entry_size));
    }
    if u64::from(entry_count) * u64::from(entry_size) > MAX_ENTRY_ARRAY_BYTES {
        return Err(GptError::EntryArray {
            count: entry_count,
            size: entry_size,
        });
    }
    let first = u64_at(sector, OFF_FIRST_USABLE).ok_or_else(short)?;
    let last = u64_at(sector, OFF_LAST_USABLE).ok_or_else(short)?;
    if last < first {
        return Err(GptError::UsableRange { first, last });
    }
    let disk_guid_raw = bytes_at::<16>(sector, OFF_DISK_GUID).ok_or_else(short)?;
    Ok(GptHeader {
        revision,
        header_size,
        header_crc: stored,
        my_lba: u64_at(sector, OFF_MY_LBA).ok_or_else(short)?,
        alternate_lba: u64_at(sector, OFF_ALTERNATE_LBA).ok_or_else(short)?,
        first_usable_lba: first,
        last_usable_lba: last,
        disk_guid: guid_to_string(&disk_guid_raw, false),
        disk_guid_raw,
        entries_lba: u64_at(sector, OFF_ENTRIES_LBA).ok_or_else(short)?,
        entry_count,
        entry_size,
        entries_crc: u32_at(sector, OFF_ENTRIES_CRC).ok_or_else(short)?,
    })
}

/// Parse the used entries of an entry array: up to `count` entries of `size` bytes each
/// (fewer if `bytes` runs out). Entries with an all-zero type GUID are unused and skipped.
/// A `size` below 128 yields nothing. No range checks here (see [`check_entry`]).
pub fn parse_entries(bytes: &[u8], count: u32, size: u32) -> Vec<GptEntry> {
    let mut out = Vec::new();
    let Ok(size) = usize::try_from(size) else {
        return out;
    };
    if size < MIN_ENTRY_SIZE as usize {
        return out;
    }
    for (index, raw) in (0..count).zip(bytes.chunks_exact(size)) {
        if let Some(e) = parse_entry(raw, index) {
            out.push(e);
        }
    }
    out
}

fn parse_entry(raw: &[u8], index: u32) -> Option<GptEntry> {
    let type_raw = bytes_at::<16>(raw, E_TYPE)?;
    if type_raw == [0u8; 16] {
        return None;
    }
    let unique_raw = bytes_at::<16>(raw, E_UNIQUE)?;
    let name_raw = raw.get(E_NAME..E_NAME + E_NAME_LEN)?;
    Some(GptEntry {
        index,
        type_guid: guid_to_string(&type_raw, true),
        unique_guid: guid_to_string(&unique_raw, false),
        first_lba: u64_at(raw, E_FIRST)?,
        last_lba: u64_at(raw, E_LAST)?,
        attributes: u64_at(raw, E_ATTRS)?,
        name: decode_name(name_raw),
    })
}

/// Decode a UTF-16LE name up to the first NUL code unit.
pub fn decode_name(raw: &[u8]) -> String {
    let units = raw
        .chunks_exact(2)
        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
        .map(u16::from_le_bytes)
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Check an entry against the usable range of its header. `Err` carries a plain-words
/// reason; such an entry should be reported and left out.
pub fn check_entry(e: &GptEntry, first_usable: u64, last_usable: u64) -> Result<(), String> {
    let label = if e.name.is_empty() {
        format!("GPT entry {}", e.number())
    } else {
        format!("GPT entry {} ({:?})", e.number(), e.name)
    };
    if e.last_lba < e.first_lba {
        return Err(format!(
            "{label} ends before it starts (first LBA {}, last LBA {}); ignored",
            e.first_lba, e.last_lba
        ));
    }
    if e.first_lba < first_usable || e.last_lba > last_usable {
        return Err(format!(
            "{label} spans LBA {}..={}, outside the usable range {first_usable}..={last_usable}; ignored",
            e.first_lba, e.last_lba
        ));
    }
    Ok(())
}

/// Format 16 on-disk GUID bytes (first three fields little-endian, the rest big-endian)
/// as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, upper- or lower-case.
pub fn guid_to_string(b: &[u8; 16], upper: bool) -> String {
    let [
        a0,
        a1,
        a2,
        a3,
        b0,
        b1,
        c0,
        c1,
        d0,
        d1,
        e0,
        e1,
        e2,
        e3,
        e4,
        e5,
    ] = *b;
    let ordered = [
        a3, a2, a1, a0, b1, b0, c1, c0, d0, d1, e0, e1, e2, e3, e4, e5,
    ];
    let mut s = String::with_capacity(36);
    for (i, byte) in ordered.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        if upper {
            s.push_str(&format!("{byte:02X}"));
        } else {
            s.push_str(&format!("{byte:02x}"));
        }
    }
    s
}

/// Parse a dashed GUID string (either case) into its 16 on-disk (mixed-endian) bytes.
pub fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let parts: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = parts.concat();
    let mut ordered = [0u8; 16];
    for (i, slot) in ordered.iter_mut().enumerate() {
        let pair = hex.get(i * 2..i * 2 + 2)?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    let [
        a3,
        a2,
        a1,
        a0,
        b1,
        b0,
        c1,
        c0,
        d0,
        d1,
        e0,
        e1,
        e2,
        e3,
        e4,
        e5,
    ] = ordered;
    Some([
        a0, a1, a2, a3, b0, b1, c0, c1, d0, d1, e0, e1, e2, e3, e4, e5,
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    pub const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

    /// Fixture entry: (type, unique, first, last, attributes, name).
    pub type FixEntry<'a> = (&'a str, &'a str, u64, u64, u64, &'a str);

    /// Build an entry array of `count` × `size` bytes.
    pub fn build_entries(entries: &[FixEntry], count: u32, size: u32) -> Vec<u8> {
        let mut arr = vec![0u8; (count * size) as usize];
        for (i, (t, u, first, last, attrs, name)) in entries.iter().enumerate() {
            let o = i * size as usize;
            arr[o..o + 16].copy_from_slice(&parse_guid(t).unwrap());
            arr[o + 16..o + 32].copy_from_slice(&parse_guid(u).unwrap());
            arr[o + 32..o + 40].copy_from_slice(&first.to_le_bytes());
            arr[o + 40..o + 48].copy_from_slice(&last.to_le_bytes());
            arr[o + 48..o + 56].copy_from_slice(&attrs.to_le_bytes());
            for (j, unit) in name.encode_utf16().enumerate() {
                arr[o + 56 + 2 * j..o + 58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
            }
        }
        arr
    }

    /// Header fields for a fixture.
    pub struct FixHeader {
        pub my_lba: u64,
        pub alternate_lba: u64,
        pub first_usable: u64,
        pub last_usable: u64,
        pub disk_guid: &'static str,
        pub entries_lba: u64,
        pub entry_count: u32,
        pub entry_size: u32,
    }

    /// Build a header sector of `sector_size` bytes with valid CRCs for `entries`.
    pub fn build_header(h: &FixHeader, entries: &[u8], sector_size: usize) -> Vec<u8> {
        let mut s = vec![0u8; sector_size];
        s[0..8].copy_from_slice(SIGNATURE);
        s[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        s[12..16].copy_from_slice(&92u32.to_le_bytes());
        s[24..32].copy_from_slice(&h.my_lba.to_le_bytes());
        s[32..40].copy_from_slice(&h.alternate_lba.to_le_bytes());
        s[40..48].copy_from_slice(&h.first_usable.to_le_bytes());
        s[48..56].copy_from_slice(&h.last_usable.to_le_bytes());
        s[56..72].copy_from_slice(&parse_guid(h.disk_guid).unwrap());
        s[72..80].copy_from_slice(&h.entries_lba.to_le_bytes());
        s[80..84].copy_from_slice(&h.entry_count.to_le_bytes());
        s[84..88].copy_from_slice(&h.entry_size.to_le_bytes());
        let n = (h.entry_count * h.entry_size) as usize;
        s[88..92].copy_from_slice(&entries_crc(&entries[..n]).to_le_bytes());
        let crc = header_crc(&s, 92).unwrap();
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        s
    }

    fn sample() -> (Vec<u8>, Vec<u8>) {
        let entries = build_entries(
            &[
                (
                    ESP,
                    "b3dd0952-733c-4c88-8cba-cab9b8b4377f",
                    2048,
                    67583,
                    0,
                    "hassos-boot",
                ),
                (
                    LINUX,
                    "26700fc6-b0bc-4ccf-9837-ea1a4cba3e65",
                    67584,
                    116735,
                    ATTR_LEGACY_BIOS_BOOTABLE,
                    "hassos-kernel0",
                ),
            ],
            128,
            128,
        );
        let h = FixHeader {
            my_lba: 1,
            alternate_lba: 4095,
            first_usable: 34,
            last_usable: 4062,
            disk_guid: "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
            entries_lba: 2,
            entry_count: 128,
            entry_size: 128,
        };
        (build_header(&h, &entries, 512), entries)
    }

    #[test]
    fn guid_round_trip_and_mixed_endian() {
        let raw = parse_guid(ESP).unwrap();
        assert_eq!(
            raw,
            [
                0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
                0xC9, 0x3B
            ]
        );
        assert_eq!(guid_to_string(&raw, true), ESP);
        assert_eq!(guid_to_string(&raw, false), ESP.to_lowercase());
        assert!(parse_guid("not-a-guid").is_none());
        assert!(parse_guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93").is_none());
        assert!(parse_guid("G12A7328-F81F-11D2-BA4B-00A0C93EC93B").is_none());
    }

    #[test]
    fn valid_header_and_entries() {
        let (hdr, arr) = sample();
        let h = parse_header(&hdr).unwrap();
        assert_eq!(h.my_lba, 1);
        assert_eq!(h.alternate_lba, 4095);
        assert_eq!(h.first_usable_lba, 34);
        assert_eq!(h.last_usable_lba, 4062);
        assert_eq!(h.disk_guid, "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9");
        assert_eq!(h.entry_array_len(), 16384);
        assert!(check_entries_crc(&arr, &h));
        assert!(!check_entries_crc(&arr[..100], &h));
        let e = parse_entries(&arr, h.entry_count, h.entry_size);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].number(), 1);
        assert_eq!(e[0].type_guid, ESP);
        assert_eq!(e[0].unique_guid, "b3dd0952-733c-4c88-8cba-cab9b8b4377f");
        assert_eq!(e[0].name, "hassos-boot");
        assert_eq!(e[0].size_lba(), Some(65536));
        assert_eq!(e[1].attributes, ATTR_LEGACY_BIOS_BOOTABLE);
        assert_eq!(e[1].name, "hassos-kernel0");
        assert!(check_entry(&e[0], 34, 4062).is_err()); // 67583 > 4062
        assert!(check_entry(&e[0], 34, 200_000).is_ok());
    }

    #[test]
    fn header_errors() {
        let (hdr, _) = sample();
        let mut bad = hdr.clone();
        bad[60] ^= 1;
        assert!(matches!(
            parse_header(&bad),
            Err(GptError::HeaderCrc { .. })
        ));
        let mut nosig = hdr.clone();
        nosig[0] = b'X';
        assert_eq!(parse_header(&nosig), Err(GptError::NoSignature));
        // Header size larger than the sector.
        let mut big = hdr.clone();
        big[12..16].copy_from_slice(&600u32.to_le_bytes());
        assert!(matches!(
            parse_header(&big),
            Err(GptError::HeaderSize { .. })
        ));
        // Revision 2.0 refused.
        let mut rev = hdr.clone();
        rev[8..12].copy_from_slice(&0x0002_0000u32.to_le_bytes());
        assert!(matches!(parse_header(&rev), Err(GptError::Revision(_))));
        // Entry size 100 refused (fix up the CRC so that is the only fault).
        for (sz, cnt) in [(100u32, 128u32), (132, 128), (8192, 1), (4096, 4096)] {
            let mut es = hdr.clone();
            es[84..88].copy_from_slice(&sz.to_le_bytes());
            es[80..84].copy_from_slice(&cnt.to_le_bytes());
            let crc = header_crc(&es, 92).unwrap();
            es[16..20].copy_from_slice(&crc.to_le_bytes());
            assert!(parse_header(&es).is_err(), "size {sz} count {cnt}");
        }
        assert_eq!(parse_header(&hdr[..40]), Err(GptError::TooShort(40)));
    }

    #[test]
    fn reversed_and_short_entries() {
        let arr = build_entries(&[(LINUX, LINUX, 100, 50, 0, "x")], 4, 128);
        let e = parse_entries(&arr, 4, 128);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].size_lba(), None);
        assert!(
            check_entry(&e[0], 34, 1000)
                .unwrap_err()
                .contains("ends before")
        );
        assert!(parse_entries(&arr[..127], 4, 128).is_empty());
        assert!(parse_entries(&arr, 4, 0).is_empty());
        assert!(parse_entries(&arr, 0, 128).is_empty());
    }

    #[test]
    fn names_stop_at_nul_and_survive_bad_utf16() {
        assert_eq!(decode_name(&[b'a', 0, b'b', 0, 0, 0, b'c', 0]), "ab");
        assert_eq!(decode_name(&[0x00, 0xD8, b'a', 0]), "\u{FFFD}a");
        assert_eq!(decode_name(b"a"), "");
    }

    #[test]
    fn truncated_never_panics() {
        let (hdr, arr) = sample();
        for n in 0..=600.min(hdr.len()) {
            let _ = parse_header(&hdr[..n]);
        }
        for n in 0..600 {
            let _ = parse_entries(&arr[..n], 128, 128);
            let _ = parse_entries(&arr[..n], u32::MAX, 128);
        }
        let _ = header_crc(&hdr, u32::MAX);
    }
}

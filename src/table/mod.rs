//! Partition tables: GPT (primary and backup, CRC-checked), protective and hybrid MBR,
//! DOS MBR with extended partitions and EBR chains.
//!
//! The byte-level parsers in [`gpt`] and [`mbr`] are pure (`&[u8] -> Result<T>`); [`read_table`]
//! drives them over a [`ReadAt`](crate::io::ReadAt) source. Damage (bad CRC, a missing
//! backup header, an EBR loop) is collected in [`PartitionTable::problems`] rather than
//! failing, so a damaged card can still be inspected and rescued.

pub mod gpt;
pub mod mbr;

use serde::Serialize;

/// Which kind of table was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// GPT with a protective MBR (one 0xEE entry spanning the disk, or as near as it fits).
    Gpt,
    /// GPT with a hybrid MBR (0xEE plus other entries, e.g. RPi's 0x0C FAT entry).
    GptHybrid,
    /// DOS/MBR table, possibly with an extended partition and logical partitions.
    Mbr,
}

/// What kind of slot an MBR entry is; GPT partitions are all `Gpt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Gpt,
    Primary,
    Extended,
    Logical,
}

/// One partition as the kernel would number it (GPT entry index + 1; MBR 1–4 primary, 5+ logical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Kernel partition number (`p1`, `p2`, …).
    pub number: u32,
    pub kind: EntryKind,
    /// First sector (in units of the table's sector size).
    pub start_lba: u64,
    /// Length in sectors.
    pub size_lba: u64,
    /// GPT partition name (UTF-16LE decoded), `None` on MBR.
    pub name: Option<String>,
    /// GPT type GUID (upper-case, dashed) or MBR type as `0x0c`.
    pub type_id: String,
    /// PARTUUID as the kernel shows it: GPT unique GUID (lower-case) or `xxxxxxxx-NN` on MBR.
    pub partuuid: String,
    /// MBR boot flag (0x80) or GPT legacy-BIOS-bootable attribute (bit 2).
    pub bootable: bool,
    /// GPT attribute bits (0 on MBR).
    pub attributes: u64,
}

impl Partition {
    /// Byte offset of the partition for the given sector size.
    pub fn start_bytes(&self, sector_size: u32) -> u64 {
        self.start_lba.saturating_mul(sector_size as u64)
    }
    /// Length in bytes for the given sector size.
    pub fn size_bytes(&self, sector_size: u32) -> u64 {
        self.size_lba.saturating_mul(sector_size as u64)
    }
}

/// GPT header facts worth reporting (and that flash/resize will need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GptInfo {
    /// Disk GUID, lower-case dashed.
    pub disk_guid: String,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// LBA of the primary header (normally 1).
    pub primary_lba: u64,
    /// AlternateLBA from the primary header (where the backup header should be).
    pub backup_lba: u64,
    /// Primary header and entry array CRCs valid.
    pub primary_ok: bool,
    /// Backup header found at `backup_lba` and valid.
    pub backup_ok: bool,
    /// Number of entries and entry size as declared.
    pub entry_count: u32,
    pub entry_size: u32,
    /// LBA of the primary entry array.
    pub entries_lba: u64,
}

/// A raw MBR entry as stored in sector 0 (for hybrid/protective analysis and preservation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MbrEntry {
    /// Slot index 0..=3.
    pub slot: u8,
    pub bootable: bool,
    pub type_byte: u8,
    pub start_lba: u32,
    pub size_lba: u32,
}

/// A parsed partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// Sector size the table was found with (512 or 4096).
    pub sector_size: u32,
    /// GPT disk GUID, or the MBR disk signature as 8 lower-case hex digits.
    pub disk_id: String,
    /// Partitions in kernel numbering order.
    pub partitions: Vec<Partition>,
    /// The non-empty entries of sector 0's MBR (protective, hybrid or DOS).
    pub mbr_entries: Vec<MbrEntry>,
    /// GPT header details, when a GPT was found.
    pub gpt: Option<GptInfo>,
    /// Damage found while parsing, in plain words ("backup GPT header CRC mismatch at LBA …").
    pub problems: Vec<String>,
}

impl PartitionTable {
    /// The partition with kernel number `n`.
    pub fn partition(&self, n: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == n)
    }
    /// The first partition whose GPT name is `name`.
    pub fn by_name(&self, name: &str) -> Option<&Partition> {
        self.partitions
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
    }
}

/// Errors that stop table parsing altogether (damage that still lets us report is in `problems`).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("no partition table: {0}")]
    NotFound(String),
    #[error("partition table is damaged: {0}")]
    Damaged(String),
    #[error("reading the partition table: {0}")]
    Io(#[from] std::io::Error),
}

pub use self::reader::read_table;
mod reader;

//! The image manifest (`FILE.manifest.json`, documented in docs/manifest.md): what was imaged,
//! from which disk, how, with which hashes, and what could not be read. `image` writes it;
//! `verify` and `flash` read it back with [`Manifest::load`].

use crate::imaging::usage::PartUsage;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the manifest format. Fields are only added within a version.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;
/// The `kind` field, so a stray JSON file is not mistaken for a manifest.
pub const MANIFEST_KIND: &str = "lifeboat-image-manifest";

/// Which disk or file was imaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceIdentity {
    pub path: String,
    /// `block_device` or `image_file`.
    pub kind: String,
    pub size: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: Option<u32>,
    /// Kernel name of the whole disk (`mmcblk0`, `sdb`), when a device.
    pub disk: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// `sd`, `emmc`, `usb`, `nvme`, `loop`…, as `list` shows it.
    pub transport: Option<String>,
    /// SD/eMMC card identification register (sysfs `device/cid`), hex.
    pub cid: Option<String>,
    pub removable: Option<bool>,
    /// Read-write mounts found on the source when imaging started (imaged with --force).
    #[serde(default)]
    pub mounted_rw: Vec<String>,
}

/// The image file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// File name as written (no directory), or `-` for stdout.
    pub file: String,
    /// `raw`, `zstd`, `gzip` or `xz`.
    pub format: String,
    /// Bytes of the logical (uncompressed) image: always the source size.
    pub size: u64,
    /// SHA-256 of the logical image, hex.
    pub sha256: String,
    /// Block size of the mapped ranges and of the bmap.
    pub block_size: u64,
    /// Bytes of the file as stored (compressed size), when written to a file.
    pub file_bytes: Option<u64>,
    /// SHA-256 of the stored file (equals `sha256` for raw), when written to a file.
    pub file_sha256: Option<String>,
    /// Bmap file name, when one was written.
    pub bmap: Option<String>,
}

/// A range that was read (or tried), with the SHA-256 of its bytes in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedRange {
    pub start: u64,
    pub length: u64,
    pub sha256: String,
}

/// Sectors that could not be read (zero in the image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRange {
    pub start: u64,
    pub length: u64,
    /// Partition holding it, if any.
    pub partition: Option<u32>,
    /// Its role on an HAOS disk (`data`, `boot`…).
    pub role: Option<String>,
    /// Offset inside the partition.
    pub partition_offset: Option<u64>,
    /// Files of an ext4 partition whose blocks lie in the range, when known.
    #[serde(default)]
    pub files: Vec<String>,
}

/// Wall time and bytes of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// `map`, `copy`, `copy-skipped`, `trim`, `scrape`, `retry`, `hash`, `finish`.
    pub name: String,
    pub seconds: f64,
    pub bytes: u64,
    /// Bytes per second over the phase (null when it took no measurable time).
    pub bytes_per_second: Option<f64>,
}

/// Read statistics of one region of the source (for the read-speed picture).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileBin {
    pub start: u64,
    pub length: u64,
    /// Bytes read successfully in this region.
    pub bytes_read: u64,
    /// Seconds spent in reads (successful or not).
    pub seconds: f64,
    pub errors: u64,
    pub retries: u64,
    pub timeouts: u64,
}

/// How the rescue went.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RescueSummary {
    /// The GNU ddrescue mapfile, when one was kept.
    pub mapfile: Option<String>,
    /// The run was continued from a mapfile (`--resume`).
    pub resumed: bool,
    pub read_errors: u64,
    pub retries: u64,
    pub timeouts: u64,
    pub reopens: u64,
    /// Device paths the source was found under after dropping off the bus (a reader that
    /// re-enumerated under another name), in order; empty when it never moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub came_back_as: Vec<String>,
    /// Bytes that stayed unreadable.
    pub bad_bytes: u64,
    /// Passes that ran (`copy`, `copy-skipped`, `trim`, `scrape`, `retry N`).
    pub passes: Vec<String>,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub kind: String,
    /// `lifeboat X.Y.Z`.
    pub tool: String,
    /// RFC 3339 UTC times.
    pub started: String,
    pub finished: String,
    /// The command line.
    pub command: String,
    pub source: SourceIdentity,
    pub image: ImageInfo,
    /// `used` (filesystem allocation) or `all` (every sector).
    pub mode: String,
    /// How each partition's share of the map was decided.
    pub partitions: Vec<PartUsage>,
    /// The `inspect` report of the source (table, HAOS facts), or null when it failed.
    pub inspect: Option<serde_json::Value>,
    /// Why `inspect` failed, when it did.
    pub inspect_error: Option<String>,
    pub mapped_bytes: u64,
    pub mapped: Vec<MappedRange>,
    pub bad: Vec<BadRange>,
    pub rescue: RescueSummary,
    pub phases: Vec<PhaseTiming>,
    pub read_profile: Vec<ProfileBin>,
}

impl Manifest {
    /// Read and check a manifest file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the manifest", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}: not a lifeboat manifest", path.display()))
    }

    /// Parse manifest JSON and check its kind, version and ranges.
    pub fn parse(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        if v.get("kind").and_then(|k| k.as_str()) != Some(MANIFEST_KIND) {
            bail!("`kind` is not {MANIFEST_KIND:?}");
        }
        match v.get("schema_version").and_then(|s| s.as_u64()) {
            Some(n) if n == u64::from(MANIFEST_SCHEMA_VERSION) => {}
            Some(n) => bail!(
                "manifest schema_version {n}; this lifeboat reads version {MANIFEST_SCHEMA_VERSION}"
            ),
            None => bail!("no schema_version"),
        }
        let m: Manifest = serde_json::from_value(v)?;
        let mut prev = 0u64;
        for r in &m.mapped {
            if r.start < prev || r.start.saturating_add(r.length) > m.image.size {
                bail!(
                    "mapped range at {} is out of order or past the image end",
                    r.start
                );
            }
            prev = r.start + r.length;
        }
        Ok(m)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

//! SD card registers and vendor health, pure: CID (manufacturer, OEM, name, revision,
//! serial, date), CSD (capacity), SCR (spec version, bus widths), SSR / SD Status (speed,
//! UHS, video and application classes, AU size), the SD manufacturer table, fake-card
//! indicators, and the CMD56 (GEN_CMD) vendor health methods: which card may be asked
//! (identity gate), with which argument, and how each vendor's 512-byte answer decodes.
//! Layouts: SD Physical Layer spec as Linux `sd.c` reads it, sdmon for CMD56
//! (`docs/storage-health.md` §2). Registers come as sysfs hex text or bytes.

use anyhow::{Result, bail};
use serde::Serialize;

/// Bytes of a hex string (whitespace ignored), e.g. sysfs `cid`.
pub fn hex_bytes(s: &str) -> Result<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("not a hex string: {s:?}");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(Into::into))
        .collect()
}

/// Bits [hi:lo] of a big-endian register (bit 0 = least significant bit of the last byte).
fn bits(reg: &[u8], hi: usize, lo: usize) -> u64 {
    let total = reg.len() * 8;
    let mut v = 0u64;
    for bit in (lo..=hi).rev() {
        let idx = total - 1 - bit;
        let byte = reg[idx / 8];
        let b = (byte >> (7 - (idx % 8))) & 1;
        v = (v << 1) | u64::from(b);
    }
    v
}

fn ascii(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// The SD card's CID register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cid {
    pub manufacturer_id: u8,
    /// Manufacturer name from the compiled table, when known.
    pub manufacturer: Option<&'static str>,
    /// OEM/application id as two characters, and as the 16-bit value sysfs shows.
    pub oem: String,
    pub oem_id: u16,
    pub name: String,
    /// Product revision n.m (high nibble, low nibble).
    pub revision: String,
    pub serial: u32,
    pub year: u16,
    pub month: u8,
}

/// Decode an SD CID (16 bytes).
pub fn parse_cid(b: &[u8]) -> Result<Cid> {
    if b.len() != 16 {
        bail!("SD CID: {} bytes, expected 16", b.len());
    }
    let year = 2000 + ((u16::from(b[13] & 0x0F) << 4) | u16::from(b[14] >> 4));
    Ok(Cid {
        manufacturer_id: b[0],
        manufacturer: sd_manufacturer(b[0]),
        oem: ascii(&b[1..3]),
        oem_id: u16::from_be_bytes([b[1], b[2]]),
        name: ascii(&b[3..8]),
        revision: format!("{}.{}", b[8] >> 4, b[8] & 0x0F),
        serial: u32::from_be_bytes([b[9], b[10], b[11], b[12]]),
        year,
        month: b[14] & 0x0F,
    })
}

/// SD manufacturer ids (compiled from mmc-utils, Linux `card.h` and community lists; the SD
/// Association publishes none, so treat names as hints).
pub fn sd_manufacturer(mid: u8) -> Option<&'static str> {
    Some(match mid {
        0x01 => "Panasonic",
        0x02 => "Toshiba/Kingston/Viking",
        0x03 => "SanDisk",
        0x08 => "Silicon Power",
        0x09 => "ATP",
        0x12 => "Gigastone",
        0x18 => "Infineon",
        0x1B => "Samsung/Transcend",
        0x1C | 0x1E => "Transcend",
        0x1D => "ADATA/Corsair",
        0x1F => "Kingston",
        0x27 => "Phison (PNY, Verbatim, Apacer, Kingston, Delkin)",
        0x28 => "Lexar",
        0x30 => "SanDisk",
        0x31 => "Silicon Power",
        0x33 | 0x6F => "STMicroelectronics",
        0x41 => "Kingston",
        0x5D => "Swissbit",
        0x74 => "Transcend",
        0x76 => "Patriot",
        0x82 => "Gobe/Sony",
        0x9F => "Kingston",
        _ => return None,
    })
}

/// Heuristic signs of a counterfeit or no-name card (none proves anything; only a full
/// write/verify test such as f3probe does).
pub fn fake_indicators(cid: &Cid, this_year: u16) -> Vec<String> {
    let mut v = Vec::new();
    if matches!(cid.manufacturer_id, 0x00 | 0xFF) {
        v.push(format!(
            "manufacturer id 0x{:02x} is not a real vendor",
            cid.manufacturer_id
        ));
    }
    if matches!(cid.oem_id, 0x0000 | 0xFFFF) {
        v.push(format!("OEM id 0x{:04x} is blank", cid.oem_id));
    }
    if cid.name.contains('?') {
        v.push("product name is not printable text".into());
    }
    if cid.serial == 0 {
        v.push("serial number is 0".into());
    }
    if cid.month == 0 || cid.month > 12 || cid.year > this_year {
        v.push(format!(
            "manufacture date {:02}/{} is impossible",
            cid.month, cid.year
        ));
    }
    v
}

/// The SD card's CSD register: structure version and capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Csd {
    /// 1 = SDSC, 2 = SDHC/SDXC, 3 = SDUC.
    pub version: u8,
    pub capacity_bytes: u64,
    /// "SDSC", "SDHC", "SDXC" or "SDUC".
    pub capacity_class: &'static str,
    /// TRAN_SPEED in Hz.
    pub max_transfer_hz: u64,
    /// Command classes supported (bit n = class n).
    pub command_classes: u16,
}

/// Decode an SD CSD (16 bytes).
pub fn parse_csd(b: &[u8]) -> Result<Csd> {
    if b.len() != 16 {
        bail!("SD CSD: {} bytes, expected 16", b.len());
    }
    let structure = b[0] >> 6;
    let (version, capacity_bytes, class) = match structure {
        0 => {
            let c_size = bits(b, 73, 62);
            let mult = bits(b, 49, 47);
            let bl_len = bits(b, 83, 80);
            if !(9..=11).contains(&bl_len) {
                bail!("SD CSD v1: READ_BL_LEN {bl_len} is invalid");
            }
            ((1), (c_size + 1) << (mult + 2 + bl_len), "SDSC")
        }
        1 => {
            let c_size = bits(b, 69, 48);
            let class = if c_size >= 0xFFFF { "SDXC" } else { "SDHC" };
            (2, (c_size + 1) * 512 * 1024, class)
        }
        2 => (3, (bits(b, 75, 48) + 1) * 512 * 1024, "SDUC"),
        _ => bail!("SD CSD: reserved structure version 3"),
    };
    let ts = b[3];
    let unit = [100_000u64, 1_000_000, 10_000_000, 100_000_000];
    let mult10 = [
        0u64, 10, 12, 13, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 70, 80,
    ];
    let max_transfer_hz = unit
        .get(usize::from(ts & 7))
        .map_or(0, |u| u * mult10[usize::from((ts >> 3) & 0xF)] / 10);
    Ok(Csd {
        version,
        capacity_bytes,
        capacity_class: class,
        max_transfer_hz,
        command_classes: bits(b, 95, 84) as u16,
    })
}

/// The SD Configuration Register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scr {
    /// Physical layer version, e.g. "3.0x", "5.x-9.x".
    pub spec_version: String,
    /// 1-bit and 4-bit bus support.
    pub bus_widths: Vec<u8>,
    /// CMD_SUPPORT bits: CMD20, CMD23, CMD48/49, CMD58/59.
    pub cmd_support: u8,
}

/// Decode an SD SCR (8 bytes).
pub fn parse_scr(b: &[u8]) -> Result<Scr> {
    if b.len() != 8 {
        bail!("SD SCR: {} bytes, expected 8", b.len());
    }
    let spec = bits(b, 59, 56);
    let spec3 = bits(b, 47, 47);
    let spec4 = bits(b, 42, 42);
    let specx = bits(b, 41, 38);
    let spec_version = match (spec, spec3, spec4, specx) {
        (0, _, _, _) => "1.0".into(),
        (1, _, _, _) => "1.10".into(),
        (2, 0, _, _) => "2.00".into(),
        (2, 1, 0, 0) => "3.0x".into(),
        (2, 1, 1, 0) => "4.xx".into(),
        (2, 1, _, x) if x >= 1 => format!("{}.xx", 4 + x),
        _ => format!("unknown ({spec}/{spec3}/{spec4}/{specx})"),
    };
    let widths = bits(b, 51, 48);
    let mut bus_widths = Vec::new();
    if widths & 1 != 0 {
        bus_widths.push(1);
    }
    if widths & 4 != 0 {
        bus_widths.push(4);
    }
    Ok(Scr {
        spec_version,
        bus_widths,
        cmd_support: bits(b, 35, 32) as u8,
    })
}

/// AU size coding of the SSR (1 = 16 KiB … 0xF = 64 MiB), in bytes.
pub fn au_bytes(code: u8) -> Option<u64> {
    const K: u64 = 1024;
    Some(match code {
        1 => 16 * K,
        2 => 32 * K,
        3 => 64 * K,
        4 => 128 * K,
        5 => 256 * K,
        6 => 512 * K,
        7 => K * K,
        8 => 2 * K * K,
        9 => 4 * K * K,
        0xA => 8 * K * K,
        0xB => 12 * K * K,
        0xC => 16 * K * K,
        0xD => 24 * K * K,
        0xE => 32 * K * K,
        0xF => 64 * K * K,
        _ => return None,
    })
}

/// The SD Status register (64 bytes): speed, UHS, video and application classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ssr {
    pub bus_width: u8,
    /// "Class 0", "Class 2", "Class 4", "Class 6", "Class 10".
    pub speed_class: String,
    /// "U0", "U1", "U3".
    pub uhs_grade: String,
    /// 0 or 6/10/30/60/90 (V6…V90).
    pub video_class: u8,
    /// 0 = none, 1 = A1, 2 = A2.
    pub app_class: u8,
    pub au_size_bytes: Option<u64>,
    pub erase_size_aus: u16,
    pub discard_support: bool,
    /// The register is all zeros apart from the bus width (QEMU, or a kernel that did not
    /// read it): the classes then say nothing.
    pub empty: bool,
}

/// Decode the SD Status register (64 bytes, from sysfs `ssr` or ACMD13).
pub fn parse_ssr(b: &[u8]) -> Result<Ssr> {
    if b.len() != 64 {
        bail!("SD Status: {} bytes, expected 64", b.len());
    }
    let speed_class = match b[8] {
        0 => "Class 0".into(),
        1 => "Class 2".into(),
        2 => "Class 4".into(),
        3 => "Class 6".into(),
        4 => "Class 10".into(),
        x => format!("reserved ({x})"),
    };
    let bus_width = match b[0] >> 6 {
        0 => 1,
        2 => 4,
        _ => 0,
    };
    Ok(Ssr {
        bus_width,
        speed_class,
        uhs_grade: format!("U{}", b[14] >> 4),
        video_class: b[15],
        app_class: b[21] & 0x0F,
        au_size_bytes: au_bytes(b[10] >> 4),
        erase_size_aus: u16::from_be_bytes([b[11], b[12]]),
        discard_support: b[24] & 0x02 != 0,
        empty: b[0] & 0x3F == 0 && b[1..].iter().all(|&x| x == 0),
    })
}

// ------------------------------------------------------------------------------------------
// CMD56 vendor health

/// A CMD56 vendor health method (sdmon's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Cmd56Method {
    /// SanDisk/WD industrial (and Longsys under the same argument): read arg 0x00000001.
    Sandisk,
    /// Innodisk: read arg 0x110005FD.
    Innodisk,
    /// ADATA / SMI controllers: read arg 0x110005F1.
    Adata,
    /// Transcend industrial: read arg 0x110005F9.
    Transcend,
    /// Micron industrial: read arg 0x110005FB.
    Micron,
    /// Swissbit: read arg 0x53420001.
    Swissbit,
    /// Apacer/Phison/Kingston industrial: WRITE arg 0x10 (zero block) then read arg 0x21.
    TwoStep,
}

impl Cmd56Method {
    /// The read argument.
    pub fn read_arg(self) -> u32 {
        match self {
            Cmd56Method::Sandisk => 0x0000_0001,
            Cmd56Method::Innodisk => 0x1100_05FD,
            Cmd56Method::Adata => 0x1100_05F1,
            Cmd56Method::Transcend => 0x1100_05F9,
            Cmd56Method::Micron => 0x1100_05FB,
            Cmd56Method::Swissbit => 0x5342_0001,
            Cmd56Method::TwoStep => 0x0000_0021,
        }
    }
    /// The write step's argument, for the methods that write first.
    pub fn write_arg(self) -> Option<u32> {
        matches!(self, Cmd56Method::TwoStep).then_some(0x0000_0010)
    }
    pub fn name(self) -> &'static str {
        match self {
            Cmd56Method::Sandisk => "sandisk",
            Cmd56Method::Innodisk => "innodisk",
            Cmd56Method::Adata => "adata",
            Cmd56Method::Transcend => "transcend",
            Cmd56Method::Micron => "micron",
            Cmd56Method::Swissbit => "swissbit",
            Cmd56Method::TwoStep => "two-step",
        }
    }
}

/// The identity gate: the method a card's CID allows without the user naming one. Only
/// manufacturers whose cards are documented to answer are asked; everything else gets no
/// CMD56 at all (blind probing has made cards disappear from the bus).
pub fn method_for(cid: &Cid) -> Option<Cmd56Method> {
    match cid.manufacturer_id {
        0x03 => Some(Cmd56Method::Sandisk),
        0x1D => Some(Cmd56Method::Adata),
        0x74 => Some(Cmd56Method::Transcend),
        0x5D => Some(Cmd56Method::Swissbit),
        0x27 => Some(Cmd56Method::TwoStep),
        _ => None,
    }
}

/// A decoded vendor health block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VendorHealth {
    /// The layout that matched (may differ from the method: Longsys answers SanDisk's
    /// argument).
    pub layout: &'static str,
    /// Percent of rated life used (SanDisk, Micron: may exceed 100).
    pub life_used_percent: Option<u16>,
    /// Percent of rated life remaining.
    pub life_remaining_percent: Option<u16>,
    /// Other fields, named as sdmon names them, values as text.
    pub fields: Vec<(String, String)>,
}

fn be16(b: &[u8], o: usize) -> u32 {
    u32::from(u16::from_be_bytes([b[o], b[o + 1]]))
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes([
        b[o],
        b[o + 1],
        b[o + 2],
        b[o + 3],
        b[o + 4],
        b[o + 5],
        b[o + 6],
        b[o + 7],
    ])
}
fn pct(v: u32, max: u32) -> Option<u16> {
    (v <= max).then_some(v as u16)
}
fn field(v: &mut Vec<(String, String)>, k: &str, val: impl ToString) {
    v.push((k.to_string(), val.to_string()));
}

/// Decode the 512-byte answer to a CMD56 read with `method`. Errors say why the block is
/// not health data (all zeros, all 0xFF, wrong signature, out-of-range percentages).
pub fn decode_cmd56(method: Cmd56Method, b: &[u8]) -> Result<VendorHealth> {
    if b.len() != 512 {
        bail!("CMD56 answer: {} bytes, expected 512", b.len());
    }
    if b.iter().all(|&x| x == 0) {
        bail!("CMD56 answer is all zeros: the card has no health data for this command");
    }
    if b.iter().all(|&x| x == 0xFF) {
        bail!("CMD56 answer is all 0xFF: the card has no health data for this command");
    }
    let mut f = Vec::new();
    let sig = [b[0], b[1]];
    let h = match method {
        Cmd56Method::Sandisk if sig == *b"DS" || sig == *b"DW" => {
            field(&mut f, "manufacture_date", ascii(&b[2..8]));
            field(&mut f, "feature_revision", b[11]);
            field(&mut f, "generation", b[14]);
            field(
                &mut f,
                "power_on_count",
                (u32::from(b[24]) << 16) | (u32::from(b[25]) << 8) | u32::from(b[26]),
            );
            field(&mut f, "product", ascii(&b[49..81]).trim());
            VendorHealth {
                layout: "sandisk",
                life_used_percent: Some(u16::from(b[8])),
                life_remaining_percent: None,
                fields: f,
            }
        }
        Cmd56Method::Sandisk if sig == *b"pX" => {
            field(&mut f, "smart_version", le32(b, 4));
            field(&mut f, "original_bad_blocks", le32(b, 16));
            field(&mut f, "increased_bad_blocks", le32(b, 20));
            field(&mut f, "sectors_written", le64(b, 24));
            field(&mut f, "replacement_blocks_left", le32(b, 32));
            field(&mut f, "wear_cycles", le32(b, 36) / 1000);
            field(&mut f, "remaining_writable_gb", le32(b, 48));
            field(&mut f, "rated_cycles", le32(b, 52));
            field(&mut f, "physical_gb_written", le32(b, 56));
            VendorHealth {
                layout: "longsys",
                life_used_percent: None,
                life_remaining_percent: Some(pct(le32(b, 44), 100).ok_or_else(|| {
                    anyhow::anyhow!("Longsys remaining life {}% is out of range", le32(b, 44))
                })?),
                fields: f,
            }
        }
        Cmd56Method::Sandisk => bail!(
            "CMD56 answer has signature {:02x} {:02x}, not SanDisk (\"DS\"/\"DW\") or Longsys (\"pX\")",
            b[0],
            b[1]
        ),
        Cmd56Method::Innodisk => {
            if sig != *b"LX" {
                bail!("CMD56 answer has no Innodisk signature \"LX\"");
            }
            field(&mut f, "total_spare_blocks", b[24]);
            field(&mut f, "factory_bad_blocks", b[25]);
            field(&mut f, "runtime_bad_blocks", b[26]);
            field(&mut f, "spor_failures", be32(b, 28));
            field(&mut f, "min_erase", be32(b, 32));
            field(&mut f, "max_erase", be32(b, 36));
            field(&mut f, "total_erase", be32(b, 40));
            field(&mut f, "avg_erase", be32(b, 44));
            field(&mut f, "firmware", ascii(&b[53..69]).trim());
            let used = u32::from(b[27]);
            VendorHealth {
                layout: "innodisk",
                life_used_percent: None,
                life_remaining_percent: Some(100u16.saturating_sub(pct(used, 100).ok_or_else(
                    || anyhow::anyhow!("Innodisk spare utilization {used}% is out of range"),
                )?)),
                fields: f,
            }
        }
        Cmd56Method::Adata => {
            if sig != [0x09, 0x41] {
                bail!("CMD56 answer has no ADATA/SMI signature 09 41");
            }
            field(&mut f, "factory_bad_blocks", be16(b, 24));
            field(&mut f, "grown_bad_blocks", b[26]);
            field(&mut f, "spare_blocks", be16(b, 30));
            field(&mut f, "min_erase", be32(b, 32));
            field(&mut f, "max_erase", be32(b, 36));
            field(&mut f, "total_erase", be32(b, 40));
            field(&mut f, "avg_erase", be32(b, 44));
            field(&mut f, "raw_capacity_mb", be32(b, 64));
            field(&mut f, "rated_pe_cycles", be16(b, 68));
            field(&mut f, "power_cycles", be32(b, 76));
            field(&mut f, "controller", ascii(&b[88..94]).trim());
            field(&mut f, "firmware", ascii(&b[128..134]).trim());
            VendorHealth {
                layout: "adata",
                life_used_percent: None,
                life_remaining_percent: Some(pct(u32::from(b[70]), 100).ok_or_else(|| {
                    anyhow::anyhow!("ADATA remaining life {}% is out of range", b[70])
                })?),
                fields: f,
            }
        }
        Cmd56Method::Transcend => {
            if sig != *b"Tr" {
                bail!("CMD56 answer has no Transcend signature \"Tr\"");
            }
            field(&mut f, "new_bad_blocks", b[26]);
            field(&mut f, "runtime_spare_blocks", b[27]);
            field(&mut f, "abnormal_power_loss", le32(b, 28));
            field(&mut f, "min_erase", le32(b, 32));
            field(&mut f, "max_erase", le32(b, 36));
            field(&mut f, "total_erase", le32(b, 40));
            field(&mut f, "avg_erase", le32(b, 44));
            field(&mut f, "write_crc_errors", be32(b, 72));
            field(&mut f, "power_cycles", be16(b, 76));
            field(&mut f, "firmware", ascii(&b[128..134]).trim());
            VendorHealth {
                layout: "transcend",
                life_used_percent: None,
                life_remaining_percent: Some(pct(u32::from(b[70]), 100).ok_or_else(|| {
                    anyhow::anyhow!("Transcend remaining life {}% is out of range", b[70])
                })?),
                fields: f,
            }
        }
        Cmd56Method::Micron => {
            if sig != *b"ME" {
                bail!("CMD56 answer has no Micron signature \"ME\"");
            }
            field(&mut f, "percentage_step_utilization", b[7]);
            field(&mut f, "tlc_area_utilization", b[8]);
            field(&mut f, "slc_area_utilization", b[9]);
            VendorHealth {
                layout: "micron",
                life_used_percent: Some(u16::from(b[8].max(b[9]))),
                life_remaining_percent: None,
                fields: f,
            }
        }
        Cmd56Method::Swissbit => {
            if sig != *b"Sw" {
                bail!("CMD56 answer has no Swissbit signature \"Sw\"");
            }
            field(&mut f, "firmware", ascii(&b[32..48]).trim());
            field(&mut f, "rated_pe_cycles", be32(b, 48));
            field(&mut f, "user_max_cycles", be32(b, 52));
            field(&mut f, "user_total_cycles", be32(b, 56));
            field(&mut f, "user_avg_cycles", be32(b, 60));
            field(&mut f, "user_spare_blocks", be32(b, 88));
            field(&mut f, "user_runtime_bad_blocks", be32(b, 96));
            field(&mut f, "interface_crc_errors", be32(b, 112));
            field(&mut f, "power_cycles", be32(b, 116));
            VendorHealth {
                layout: "swissbit",
                life_used_percent: None,
                life_remaining_percent: Some(pct(u32::from(b[80]), 100).ok_or_else(|| {
                    anyhow::anyhow!("Swissbit remaining life {}% is out of range", b[80])
                })?),
                fields: f,
            }
        }
        Cmd56Method::TwoStep => {
            let life = be16(b, 96);
            if life > 10_000 {
                bail!(
                    "two-step answer: remaining life {}.{:02}% is out of range (not health data)",
                    life / 100,
                    life % 100
                );
            }
            let initial_bad: u32 = (0..16).map(|i| be16(b, 32 + 2 * i)).sum();
            let later_bad: u32 = (0..16).map(|i| be16(b, 184 + 2 * i)).sum();
            field(&mut f, "flash_id", hex(&b[0..9]));
            field(&mut f, "ic_version", hex(&b[9..11]));
            field(&mut f, "firmware", format!("{}.{}", b[11], b[12]));
            field(&mut f, "spare_blocks", be16(b, 16));
            field(&mut f, "initial_bad_blocks", initial_bad);
            field(&mut f, "later_bad_blocks", later_bad);
            field(&mut f, "total_erase", be32(b, 80));
            field(&mut f, "avg_erase", (be16(b, 104) << 16) | be16(b, 98));
            field(&mut f, "power_up_count", be32(b, 112));
            field(&mut f, "abnormal_power_offs", be16(b, 128));
            field(&mut f, "refresh_count", be16(b, 160));
            VendorHealth {
                layout: "two_step",
                life_used_percent: None,
                life_remaining_percent: Some((life / 100) as u16),
                fields: f,
            }
        }
    };
    if let Some(u) = h.life_used_percent
        && u > 255
    {
        bail!("life used {u}% is out of range");
    }
    Ok(h)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // QEMU sd-card registers as the 6.1 guest showed them (qemu-oracle/run3).
    const QEMU_CID: &str = "aa585951454d552101deadbeef006200";
    const QEMU_CSD_1G: &str = "002600325f59e3ffffffdfff92600000";
    const QEMU_CSD_256M: &str = "002600325f59e0ffffffdfff92600000";

    #[test]
    fn qemu_cid() {
        let c = parse_cid(&hex_bytes(QEMU_CID).unwrap()).unwrap();
        assert_eq!(c.manufacturer_id, 0xAA);
        assert_eq!(c.manufacturer, None);
        assert_eq!(c.oem, "XY");
        assert_eq!(c.oem_id, 0x5859); // sysfs oemid
        assert_eq!(c.name, "QEMU!");
        assert_eq!(c.revision, "0.1"); // sysfs hwrev 0x0, fwrev 0x1
        assert_eq!(c.serial, 0xDEAD_BEEF);
        assert_eq!((c.month, c.year), (2, 2006)); // sysfs date 02/2006
        assert!(fake_indicators(&c, 2026).is_empty());
        assert_eq!(method_for(&c), None);
    }

    #[test]
    fn real_card_registers() {
        // A SanDisk 16 GB card as Linux printed it in a published pfSense test report
        // (sysfs cid/csd/scr, with "Name: SC16G, HW Rev: 0x8, FW Rev: 0x0").
        let c = parse_cid(&hex_bytes("0353445343313647806cb1100a011a00").unwrap()).unwrap();
        assert_eq!(c.manufacturer, Some("SanDisk"));
        assert_eq!((c.oem.as_str(), c.oem_id), ("SD", 0x5344));
        assert_eq!(c.name, "SC16G");
        assert_eq!(c.revision, "8.0");
        assert_eq!(c.serial, 0x6cb1_100a);
        assert_eq!((c.month, c.year), (10, 2017));
        assert_eq!(method_for(&c), Some(Cmd56Method::Sandisk));
        assert!(fake_indicators(&c, 2026).is_empty());
        let d = parse_csd(&hex_bytes("400e00325b59000076b27f800a404000").unwrap()).unwrap();
        assert_eq!((d.version, d.capacity_class), (2, "SDHC"));
        assert_eq!(d.capacity_bytes, (0x76b2 + 1) * 512 * 1024);
        assert_eq!(d.max_transfer_hz, 25_000_000);
        let s = parse_scr(&hex_bytes("0235844300000000").unwrap()).unwrap();
        assert_eq!(s.spec_version, "5.xx");
        assert_eq!(s.bus_widths, [1, 4]);
        // A SanDisk Ultra 32 GB (sysfs cid quoted in a public repository's notes).
        let c = parse_cid(&hex_bytes("035344534c333247805d45110f011900").unwrap()).unwrap();
        assert_eq!(c.name, "SL32G");
        assert_eq!((c.month, c.year), (9, 2017));
        // Blank/fake style CID: every indicator fires.
        let f = parse_cid(&hex_bytes("00000000000000000000000000000000").unwrap()).unwrap();
        assert_eq!(fake_indicators(&f, 2026).len(), 5);
    }

    #[test]
    fn qemu_csd_capacity() {
        let c = parse_csd(&hex_bytes(QEMU_CSD_1G).unwrap()).unwrap();
        assert_eq!((c.version, c.capacity_bytes), (1, 1 << 30));
        assert_eq!(c.capacity_class, "SDSC");
        assert_eq!(c.max_transfer_hz, 25_000_000);
        assert!(c.command_classes & (1 << 8) != 0);
        let c = parse_csd(&hex_bytes(QEMU_CSD_256M).unwrap()).unwrap();
        assert_eq!(c.capacity_bytes, 256 << 20);
        // Synthetic CSD v2 (SDHC 32 GB): C_SIZE 0xED3F → (0xED3F+1)·512 KiB.
        let c = parse_csd(&hex_bytes("400e00325b590000ed3f7f800a404000").unwrap()).unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(c.capacity_bytes, 0xED40u64 * 512 * 1024);
        assert_eq!(c.capacity_class, "SDHC");
        assert!(parse_csd(&[0xC0; 16]).is_err());
        assert!(parse_csd(&[0; 15]).is_err());
    }

    #[test]
    fn scr_and_ssr() {
        let s = parse_scr(&hex_bytes("0225800000000000").unwrap()).unwrap();
        assert_eq!(s.spec_version, "3.0x");
        assert_eq!(s.bus_widths, [1, 4]);
        let zeros = vec![0u8; 64];
        let r = parse_ssr(&zeros).unwrap();
        assert!(r.empty);
        let mut b = vec![0u8; 64];
        b[0] = 0x80; // 4-bit
        b[8] = 4; // Class 10
        b[10] = 0x90; // AU 4 MiB
        b[14] = 0x39; // U3, UHS AU 4 MiB
        b[15] = 30; // V30
        b[21] = 0x02; // A2
        b[24] = 0x02;
        let r = parse_ssr(&b).unwrap();
        assert!(!r.empty);
        assert_eq!(r.bus_width, 4);
        assert_eq!(r.speed_class, "Class 10");
        assert_eq!(r.uhs_grade, "U3");
        assert_eq!((r.video_class, r.app_class), (30, 2));
        assert_eq!(r.au_size_bytes, Some(4 << 20));
        assert!(r.discard_support);
        assert!(parse_ssr(&b[..63]).is_err());
        assert!(parse_scr(&[0; 7]).is_err());
        assert!(hex_bytes("abc").is_err());
        assert!(hex_bytes("zz").is_err());
    }

    #[test]
    fn cmd56_sandisk_and_validation() {
        let mut b = vec![0u8; 512];
        assert!(
            decode_cmd56(Cmd56Method::Sandisk, &b)
                .unwrap_err()
                .to_string()
                .contains("all zeros")
        );
        b[0] = b'D';
        b[1] = b'S';
        b[2..8].copy_from_slice(b"210315");
        b[8] = 0x05;
        let h = decode_cmd56(Cmd56Method::Sandisk, &b).unwrap();
        assert_eq!(h.layout, "sandisk");
        assert_eq!(h.life_used_percent, Some(5));
        // An MBR-looking answer (no signature) is refused.
        let mut mbr = vec![0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        assert!(decode_cmd56(Cmd56Method::Sandisk, &mbr).is_err());
        assert!(decode_cmd56(Cmd56Method::Sandisk, &[0xFF; 512]).is_err());
        assert!(decode_cmd56(Cmd56Method::Sandisk, &[1; 100]).is_err());
    }

    #[test]
    fn cmd56_other_layouts() {
        let mut b = vec![0u8; 512];
        b[0] = 0x09;
        b[1] = 0x41;
        b[70] = 93;
        b[88..94].copy_from_slice(b"SM2706");
        let h = decode_cmd56(Cmd56Method::Adata, &b).unwrap();
        assert_eq!(h.life_remaining_percent, Some(93));
        assert!(h.fields.contains(&("controller".into(), "SM2706".into())));
        b[70] = 101;
        assert!(decode_cmd56(Cmd56Method::Adata, &b).is_err());

        let mut t = vec![0u8; 512];
        t[0..9].copy_from_slice(&[0x98, 0x3e, 0xa8, 0x03, 0x7a, 0xe4, 0x08, 0x16, 0x00]);
        t[96..98].copy_from_slice(&9850u16.to_be_bytes());
        t[32..34].copy_from_slice(&3u16.to_be_bytes());
        t[34..36].copy_from_slice(&4u16.to_be_bytes());
        let h = decode_cmd56(Cmd56Method::TwoStep, &t).unwrap();
        assert_eq!(h.life_remaining_percent, Some(98));
        assert!(
            h.fields
                .contains(&("initial_bad_blocks".into(), "7".into()))
        );
        t[96..98].copy_from_slice(&20000u16.to_be_bytes());
        assert!(decode_cmd56(Cmd56Method::TwoStep, &t).is_err());

        let mut l = vec![0u8; 512];
        l[0] = b'p';
        l[1] = b'X';
        l[44] = 87;
        let h = decode_cmd56(Cmd56Method::Sandisk, &l).unwrap();
        assert_eq!((h.layout, h.life_remaining_percent), ("longsys", Some(87)));
        for m in [
            Cmd56Method::Innodisk,
            Cmd56Method::Transcend,
            Cmd56Method::Micron,
            Cmd56Method::Swissbit,
        ] {
            assert!(decode_cmd56(m, &l).is_err(), "{m:?}");
        }
        let mut s = vec![0u8; 512];
        s[0] = b'S';
        s[1] = b'w';
        s[80] = 99;
        assert_eq!(
            decode_cmd56(Cmd56Method::Swissbit, &s)
                .unwrap()
                .life_remaining_percent,
            Some(99)
        );
    }

    #[test]
    fn every_method_survives_random_blocks() {
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200 {
            let mut b = vec![0u8; 512];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *v = x as u8;
            }
            for sig in [*b"DS", *b"pX", *b"LX", [9, 0x41], *b"Tr", *b"ME", *b"Sw"] {
                b[0] = sig[0];
                b[1] = sig[1];
                for m in [
                    Cmd56Method::Sandisk,
                    Cmd56Method::Innodisk,
                    Cmd56Method::Adata,
                    Cmd56Method::Transcend,
                    Cmd56Method::Micron,
                    Cmd56Method::Swissbit,
                    Cmd56Method::TwoStep,
                ] {
                    let _ = decode_cmd56(m, &b);
                }
            }
        }
    }
}

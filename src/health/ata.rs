//! ATA health pages, pure decoders: IDENTIFY DEVICE, SMART READ DATA, SMART READ
//! THRESHOLDS (512 bytes each), the attribute table merged from the last two, libatasmart's
//! `skdump --save` blob format (`IDFY`/`SMST`/`SMDT`/`SMTH` sections), the bad-sector count
//! and libatasmart's overall classes ([`Overall`]), plus smartmontools' per-attribute
//! failure rules. Layouts: ATA/ACS and smartmontools `atacmds.h` (see
//! `docs/storage-health.md` §5). Every decoder takes bytes and returns a value or an error;
//! none panics on any input.

use anyhow::{Result, bail};
use serde::Serialize;

/// Size of every ATA data page handled here.
pub const PAGE: usize = 512;

fn need(b: &[u8], what: &str) -> Result<()> {
    if b.len() < PAGE {
        bail!("{what}: {} bytes, expected {PAGE}", b.len());
    }
    Ok(())
}

fn word(b: &[u8], w: usize) -> u16 {
    u16::from_le_bytes([b[2 * w], b[2 * w + 1]])
}

/// ATA strings: words of two ASCII characters, high byte first, space padded. A NUL ends
/// the string early (some firmware pads with NULs, as libatasmart's C strings show).
fn ata_string(b: &[u8], first_word: usize, words: usize) -> String {
    let mut s = String::with_capacity(words * 2);
    'outer: for w in first_word..first_word + words {
        for c in [b[2 * w + 1], b[2 * w]] {
            if c == 0 {
                break 'outer;
            }
            s.push(if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            });
        }
    }
    s.trim().to_string()
}

/// What IDENTIFY DEVICE says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identify {
    pub model: String,
    pub serial: String,
    pub firmware: String,
    /// Word 82 bit 0 (and word 82 not 0/0xFFFF).
    pub smart_supported: bool,
    /// Word 85 bit 0.
    pub smart_enabled: bool,
    /// Addressable sectors: LBA48 count (words 100–103) when supported, else LBA28.
    pub sectors: u64,
    /// Logical sector size in bytes (word 106/117–118), 512 unless the drive says otherwise.
    pub logical_sector_size: u32,
    /// Word 217: 1 = solid state, >1 = rotation rate in rpm, 0 = not reported.
    pub rotation_rate: u16,
    /// Word 169 bit 0: TRIM supported.
    pub trim: bool,
    /// Words 84 and 87 bit 5: the General Purpose Logging feature set (READ LOG EXT).
    pub gp_logging: bool,
    /// Byte 510 = 0xA5 and all 512 bytes sum to 0; `None` when no signature is present.
    pub checksum_ok: Option<bool>,
}

impl Identify {
    /// Solid state (word 217 = 1).
    pub fn is_ssd(&self) -> bool {
        self.rotation_rate == 1
    }
}

/// Decode IDENTIFY DEVICE (512 bytes).
pub fn parse_identify(b: &[u8]) -> Result<Identify> {
    need(b, "ATA IDENTIFY")?;
    let b = &b[..PAGE];
    if b.iter().all(|&x| x == 0) {
        bail!("ATA IDENTIFY: all zeros (the device returned no identify data)");
    }
    let w82 = word(b, 82);
    let w83 = word(b, 83);
    let w85 = word(b, 85);
    let valid = |w: u16| w != 0 && w != 0xFFFF;
    let lba28 = u64::from(word(b, 60)) | (u64::from(word(b, 61)) << 16);
    let lba48 = u64::from(word(b, 100))
        | (u64::from(word(b, 101)) << 16)
        | (u64::from(word(b, 102)) << 32)
        | (u64::from(word(b, 103)) << 48);
    let sectors = if valid(w83) && w83 & (1 << 10) != 0 && lba48 != 0 {
        lba48
    } else {
        lba28
    };
    let w106 = word(b, 106);
    let logical_sector_size = if w106 & 0xC000 == 0x4000 && w106 & (1 << 12) != 0 {
        let words = u32::from(word(b, 117)) | (u32::from(word(b, 118)) << 16);
        words.saturating_mul(2).max(512)
    } else {
        512
    };
    let checksum_ok = (b[510] == 0xA5).then(|| b.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0);
    Ok(Identify {
        model: ata_string(b, 27, 20),
        serial: ata_string(b, 10, 10),
        firmware: ata_string(b, 23, 4),
        smart_supported: valid(w82) && w82 & 1 != 0,
        smart_enabled: valid(w85) && w85 & 1 != 0,
        sectors,
        logical_sector_size,
        rotation_rate: word(b, 217),
        trim: word(b, 169) & 1 != 0,
        gp_logging: [84, 87]
            .iter()
            .any(|&w| word(b, w) & 0xC000 == 0x4000 && word(b, w) & (1 << 5) != 0),
        checksum_ok,
    })
}

/// One attribute as SMART READ DATA stores it, with its threshold when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribute {
    pub id: u8,
    /// Flags word: bit 0 pre-failure, 1 updated online, 2 performance, 3 error rate,
    /// 4 event count, 5 self-preserving.
    pub flags: u16,
    /// Normalized current value (1–253 valid).
    pub value: u8,
    /// Worst normalized value seen.
    pub worst: u8,
    /// The six raw bytes as stored (little-endian "raw48").
    pub raw: [u8; 6],
    /// The threshold from SMART READ THRESHOLDS, matched by id; `None` when unknown.
    pub threshold: Option<u8>,
}

impl Attribute {
    pub fn prefailure(&self) -> bool {
        self.flags & 0x01 != 0
    }
    pub fn online(&self) -> bool {
        self.flags & 0x02 != 0
    }
    /// The raw bytes as one little-endian 48-bit integer (smartctl's `raw.value`).
    pub fn raw48(&self) -> u64 {
        self.raw
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }
    /// Current value usable (libatasmart: 1..=0xFD).
    pub fn value_valid(&self) -> bool {
        (1..=0xFD).contains(&self.value)
    }
    pub fn worst_valid(&self) -> bool {
        (1..=0xFD).contains(&self.worst)
    }
    /// Threshold known and not the "invalid" marker 0xFE.
    pub fn threshold_valid(&self) -> bool {
        self.threshold.is_some_and(|t| t != 0xFE)
    }
    /// A threshold that can fail (1..=0xFD); 0 is "always passing", 0xFE/0xFF "always
    /// failing"/invalid and are ignored as libatasmart does.
    fn live_threshold(&self) -> Option<u8> {
        self.threshold.filter(|t| (1..=0xFD).contains(t))
    }
    /// Value above threshold now: `None` when no threshold applies (skdump's "n/a").
    pub fn good_now(&self) -> Option<bool> {
        let t = self.live_threshold()?;
        self.value_valid().then_some(self.value > t)
    }
    /// Worst above threshold: `None` when no threshold applies.
    pub fn good_in_the_past(&self) -> Option<bool> {
        let t = self.live_threshold()?;
        self.worst_valid().then_some(self.worst > t)
    }
    /// smartmontools' "when failed" state: `now`, `past` or empty.
    pub fn when_failed(&self) -> &'static str {
        match (self.good_now(), self.good_in_the_past()) {
            (Some(false), _) => "now",
            (_, Some(false)) => "past",
            _ => "",
        }
    }
    /// smartmontools-style default name for the id.
    pub fn name(&self) -> &'static str {
        default_name(self.id)
    }
}

/// SMART READ DATA, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmartData {
    pub revision: u16,
    /// Non-empty attribute slots, in slot order (thresholds not yet merged).
    pub attributes: Vec<Attribute>,
    pub offline_status: u8,
    /// Self-test execution status: high nibble result, low nibble percent remaining / 10.
    pub self_test_status: u8,
    pub offline_seconds: u16,
    pub offline_capability: u8,
    pub smart_capability: u16,
    pub error_logging: bool,
    pub short_test_minutes: u8,
    pub extended_test_minutes: u16,
    pub conveyance_test_minutes: u8,
    /// All 512 bytes sum to 0 modulo 256.
    pub checksum_ok: bool,
}

impl SmartData {
    /// Offline data collection capability bit 4: the drive runs self-tests (and keeps the
    /// SMART self-test log, address 0x06).
    pub fn self_test_supported(&self) -> bool {
        self.offline_capability & (1 << 4) != 0
    }
}

fn checksum_ok(b: &[u8]) -> bool {
    b[..PAGE].iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
}

/// Decode SMART READ DATA (512 bytes). A bad checksum is recorded, not an error (many
/// drives get it wrong; smartctl warns and goes on).
pub fn parse_smart_data(b: &[u8]) -> Result<SmartData> {
    need(b, "SMART READ DATA")?;
    let mut attributes = Vec::new();
    for slot in 0..30 {
        let e = &b[2 + slot * 12..2 + slot * 12 + 12];
        if e[0] == 0 {
            continue;
        }
        let mut raw = [0u8; 6];
        raw.copy_from_slice(&e[5..11]);
        attributes.push(Attribute {
            id: e[0],
            flags: u16::from_le_bytes([e[1], e[2]]),
            value: e[3],
            worst: e[4],
            raw,
            threshold: None,
        });
    }
    let ext = if b[373] == 0xFF {
        u16::from_le_bytes([b[375], b[376]])
    } else {
        u16::from(b[373])
    };
    Ok(SmartData {
        revision: u16::from_le_bytes([b[0], b[1]]),
        attributes,
        offline_status: b[362],
        self_test_status: b[363],
        offline_seconds: u16::from_le_bytes([b[364], b[365]]),
        offline_capability: b[367],
        smart_capability: u16::from_le_bytes([b[368], b[369]]),
        error_logging: b[370] & 1 != 0,
        short_test_minutes: b[372],
        extended_test_minutes: ext,
        conveyance_test_minutes: b[374],
        checksum_ok: checksum_ok(b),
    })
}

/// SMART READ THRESHOLDS, decoded: (id, threshold) in slot order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    pub revision: u16,
    pub entries: Vec<(u8, u8)>,
    pub checksum_ok: bool,
}

/// Decode SMART READ THRESHOLDS (512 bytes).
pub fn parse_thresholds(b: &[u8]) -> Result<Thresholds> {
    need(b, "SMART READ THRESHOLDS")?;
    let entries = (0..30)
        .map(|slot| (b[2 + slot * 12], b[3 + slot * 12]))
        .filter(|(id, _)| *id != 0)
        .collect();
    Ok(Thresholds {
        revision: u16::from_le_bytes([b[0], b[1]]),
        entries,
        checksum_ok: checksum_ok(b),
    })
}

/// Attach thresholds to attributes, matched by id (not by slot: smartmontools does the same
/// when slots disagree).
pub fn merge(data: &SmartData, thresholds: Option<&Thresholds>) -> Vec<Attribute> {
    data.attributes
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.threshold = thresholds.and_then(|t| {
                t.entries
                    .iter()
                    .find(|(id, _)| *id == a.id)
                    .map(|(_, thr)| *thr)
            });
            a
        })
        .collect()
}

/// Model-specific deviations that change how an attribute is read (a small subset of
/// libatasmart's quirk database: the entries that change a count or a unit lifeboat uses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quirks {
    /// Attribute 9 counts minutes, not hours.
    pub poweron_minutes: bool,
    /// Attribute 5 is not the reallocated-sector count.
    pub attr5_unknown: bool,
    /// Attribute 197 is not the pending-sector count.
    pub attr197_unknown: bool,
}

/// Quirks for a model and firmware (from libatasmart 0.19's database).
pub fn quirks(model: &str, firmware: &str) -> Quirks {
    let mut q = Quirks::default();
    if (model == "FUJITSU MHY2120BH" || model == "FUJITSU MHY2250BH") && firmware == "0085000B" {
        q.poweron_minutes = true;
        q.attr197_unknown = true;
    }
    if model == "MCCOE64GEMPP"
        && firmware.len() == 6
        && firmware.starts_with("2.9.0")
        && matches!(firmware.as_bytes()[5], b'3'..=b'9')
    {
        q.attr5_unknown = true;
    }
    if model.starts_with("Maxtor ")
        && [
            "96147H8", "2B0", "4G1", "4D0", "6B", "6L", "6Y", "6E0", "7Y250", "7L",
        ]
        .iter()
        .any(|p| model["Maxtor ".len()..].starts_with(p))
    {
        q.poweron_minutes = true;
    }
    q
}

/// Reallocated plus pending sectors, as libatasmart counts them (attributes 5 and 197, low
/// 32 bits of the raw value). `None` when neither attribute is there.
pub fn bad_sectors(attrs: &[Attribute], q: Quirks) -> Option<u64> {
    let get = |id: u8| {
        attrs
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.raw48() & 0xFFFF_FFFF)
    };
    let realloc = if q.attr5_unknown { None } else { get(5) };
    let pending = if q.attr197_unknown { None } else { get(197) };
    match (realloc, pending) {
        (None, None) => None,
        (r, p) => Some(r.unwrap_or(0) + p.unwrap_or(0)),
    }
}

/// Power-on hours from attribute 9 (low 32 bits), honouring the minutes quirk.
pub fn power_on_hours(attrs: &[Attribute], q: Quirks) -> Option<u64> {
    let a = attrs.iter().find(|a| a.id == 9)?;
    let v = a.raw48() & 0xFFFF_FFFF;
    Some(if q.poweron_minutes { v / 60 } else { v })
}

/// Current temperature in °C from attribute 194 or 190 (low byte of the raw value).
pub fn temperature_c(attrs: &[Attribute]) -> Option<u8> {
    [194u8, 190]
        .iter()
        .find_map(|id| attrs.iter().find(|a| a.id == *id))
        .map(|a| a.raw[0])
        .filter(|t| (1..=120).contains(t))
}

/// libatasmart's overall assessment classes, worst first in severity order below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Overall {
    Good,
    BadAttributeInThePast,
    BadSector,
    BadAttributeNow,
    BadSectorMany,
    BadStatus,
}

impl Overall {
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Good => "GOOD",
            Overall::BadAttributeInThePast => "BAD_ATTRIBUTE_IN_THE_PAST",
            Overall::BadSector => "BAD_SECTOR",
            Overall::BadAttributeNow => "BAD_ATTRIBUTE_NOW",
            Overall::BadSectorMany => "BAD_SECTOR_MANY",
            Overall::BadStatus => "BAD_STATUS",
        }
    }
}

/// The overall class in libatasmart's order: RETURN STATUS, many bad sectors (needs the
/// disk size), a pre-fail attribute failing now, any bad sector, a pre-fail attribute that
/// failed in the past, else good. `None` when the RETURN STATUS is unknown (skdump then
/// gives no overall status either).
pub fn overall(
    attrs: &[Attribute],
    status_good: Option<bool>,
    size_bytes: Option<u64>,
    q: Quirks,
) -> Option<Overall> {
    if !status_good? {
        return Some(Overall::BadStatus);
    }
    let sectors = bad_sectors(attrs, q).unwrap_or(0);
    if let Some(size) = size_bytes.filter(|s| *s >= 512) {
        let threshold = u64::from((size / 512).ilog2()) * 1024;
        if sectors > threshold {
            return Some(Overall::BadSectorMany);
        }
    }
    if attrs
        .iter()
        .any(|a| a.prefailure() && a.good_now() == Some(false))
    {
        return Some(Overall::BadAttributeNow);
    }
    if sectors > 0 {
        return Some(Overall::BadSector);
    }
    if attrs
        .iter()
        .any(|a| a.prefailure() && a.good_in_the_past() == Some(false))
    {
        return Some(Overall::BadAttributeInThePast);
    }
    Some(Overall::Good)
}

/// A libatasmart `skdump --save` blob: its sections, each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob {
    pub identify: Option<Vec<u8>>,
    /// `SMST`: SMART RETURN STATUS good (nonzero) or not.
    pub status_good: Option<bool>,
    pub smart_data: Option<Vec<u8>>,
    pub thresholds: Option<Vec<u8>>,
}

/// Parse a blob: sections of a 4-byte tag, a big-endian u32 length and the payload.
/// Unknown tags are skipped; a truncated section is an error.
pub fn parse_blob(b: &[u8]) -> Result<Blob> {
    let mut out = Blob::default();
    let mut p = 0usize;
    if b.len() < 8 {
        bail!("SMART blob: {} bytes, too short for one section", b.len());
    }
    while p < b.len() {
        let Some(hdr) = b.get(p..p + 8) else {
            bail!("SMART blob: truncated section header at byte {p}");
        };
        let tag = &hdr[..4];
        let len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        let Some(payload) = p.checked_add(8 + len).and_then(|end| b.get(p + 8..end)) else {
            bail!(
                "SMART blob: section {:?} at byte {p} claims {len} bytes, only {} left",
                String::from_utf8_lossy(tag),
                b.len() - p - 8
            );
        };
        match tag {
            b"IDFY" => out.identify = Some(payload.to_vec()),
            b"SMDT" => out.smart_data = Some(payload.to_vec()),
            b"SMTH" => out.thresholds = Some(payload.to_vec()),
            b"SMST" => {
                if len != 4 {
                    bail!("SMART blob: SMST section of {len} bytes, expected 4");
                }
                out.status_good = Some(payload.iter().any(|&x| x != 0));
            }
            _ => {}
        }
        p += 8 + len;
    }
    Ok(out)
}

/// smartmontools' default attribute names (drivedb "DEFAULT" presets); vendor-specific
/// meanings of SSD attributes are described in [`wear_indicator`].
pub fn default_name(id: u8) -> &'static str {
    match id {
        1 => "Raw_Read_Error_Rate",
        2 => "Throughput_Performance",
        3 => "Spin_Up_Time",
        4 => "Start_Stop_Count",
        5 => "Reallocated_Sector_Ct",
        6 => "Read_Channel_Margin",
        7 => "Seek_Error_Rate",
        8 => "Seek_Time_Performance",
        9 => "Power_On_Hours",
        10 => "Spin_Retry_Count",
        11 => "Calibration_Retry_Count",
        12 => "Power_Cycle_Count",
        13 => "Read_Soft_Error_Rate",
        175 => "Program_Fail_Count_Chip",
        176 => "Erase_Fail_Count_Chip",
        177 => "Wear_Leveling_Count",
        178 => "Used_Rsvd_Blk_Cnt_Chip",
        179 => "Used_Rsvd_Blk_Cnt_Tot",
        180 => "Unused_Rsvd_Blk_Cnt_Tot",
        181 => "Program_Fail_Cnt_Total",
        182 => "Erase_Fail_Count_Total",
        183 => "Runtime_Bad_Block",
        184 => "End-to-End_Error",
        187 => "Reported_Uncorrect",
        188 => "Command_Timeout",
        189 => "High_Fly_Writes",
        190 => "Airflow_Temperature_Cel",
        191 => "G-Sense_Error_Rate",
        192 => "Power-Off_Retract_Count",
        193 => "Load_Cycle_Count",
        194 => "Temperature_Celsius",
        195 => "Hardware_ECC_Recovered",
        196 => "Reallocated_Event_Count",
        197 => "Current_Pending_Sector",
        198 => "Offline_Uncorrectable",
        199 => "UDMA_CRC_Error_Count",
        200 => "Multi_Zone_Error_Rate",
        201 => "Soft_Read_Error_Rate",
        202 => "Data_Address_Mark_Errs",
        203 => "Run_Out_Cancel",
        204 => "Soft_ECC_Correction",
        205 => "Thermal_Asperity_Rate",
        206 => "Flying_Height",
        207 => "Spin_High_Current",
        208 => "Spin_Buzz",
        209 => "Offline_Seek_Performnce",
        220 => "Disk_Shift",
        221 => "G-Sense_Error_Rate",
        222 => "Loaded_Hours",
        223 => "Load_Retry_Count",
        224 => "Load_Friction",
        225 => "Load_Cycle_Count",
        226 => "Load-in_Time",
        227 => "Torq-amp_Count",
        228 => "Power-off_Retract_Count",
        230 => "Head_Amplitude",
        231 => "Temperature_Celsius",
        232 => "Available_Reservd_Space",
        233 => "Media_Wearout_Indicator",
        240 => "Head_Flying_Hours",
        241 => "Total_LBAs_Written",
        242 => "Total_LBAs_Read",
        250 => "Read_Error_Retry_Rate",
        254 => "Free_Fall_Sensor",
        _ => "Unknown_Attribute",
    }
}

/// An SSD wear figure found among the attributes: percent of rated life remaining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WearIndicator {
    pub attribute: u8,
    /// What the attribute is for this drive family.
    pub meaning: &'static str,
    /// Percent of rated life remaining (0–100).
    pub remaining_percent: u8,
}

/// The SSD wear indicator for this model, if its family has one lifeboat knows (reference
/// §5.4). Meanings differ by vendor, so the model decides; unknown families give `None`
/// and the thresholds alone judge the drive.
pub fn wear_indicator(model: &str, attrs: &[Attribute]) -> Option<WearIndicator> {
    let m = model.to_ascii_lowercase();
    let get = |id: u8| attrs.iter().find(|a| a.id == id && a.value_valid());
    let norm = |id: u8, meaning: &'static str| {
        get(id).map(|a| WearIndicator {
            attribute: id,
            meaning,
            remaining_percent: a.value.min(100),
        })
    };
    if m.starts_with("intel") {
        return norm(233, "Intel Media_Wearout_Indicator (normalized, 100 = new)");
    }
    if m.starts_with("samsung") {
        return norm(
            177,
            "Samsung Wear_Leveling_Count (normalized = % life left)",
        );
    }
    if m.starts_with("crucial") || m.starts_with("micron") || m.starts_with("ct") {
        return get(202).map(|a| WearIndicator {
            attribute: 202,
            meaning: "Crucial/Micron Percent_Lifetime_Remain (raw = % used)",
            remaining_percent: 100u64.saturating_sub(a.raw48() & 0xFF) as u8,
        });
    }
    if m.starts_with("kingston") || m.contains("sandforce") {
        return norm(231, "SSD_Life_Left (normalized %)");
    }
    None
}

/// Bytes written by the host from attribute 241 (Total_LBAs_Written), whose unit depends on
/// the vendor (reference §5.4): 512-byte LBAs (Samsung, Crucial/Micron), 32 MiB (Intel
/// Host_Writes_32MiB), GiB (Kingston/Phison). `(raw, None)` when the unit is not known.
pub fn host_writes(model: &str, attrs: &[Attribute]) -> Option<(u64, Option<u128>)> {
    let a = attrs.iter().find(|a| a.id == 241)?;
    let raw = a.raw48();
    let m = model.to_ascii_lowercase();
    let unit: Option<u128> = if m.starts_with("intel") {
        Some(32 << 20)
    } else if m.starts_with("samsung")
        || m.starts_with("crucial")
        || m.starts_with("micron")
        || m.starts_with("ct")
    {
        Some(512)
    } else if m.starts_with("kingston") {
        Some(1 << 30)
    } else {
        None
    };
    Some((raw, unit.map(|u| u128::from(raw) * u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which SMART logs lifeboat asks for: QEMU's disk says error logging (byte 370 bit 0)
    /// and self-tests (byte 367 bit 4); a page without those bits gets neither.
    #[test]
    fn log_capabilities() {
        let d = parse_smart_data(&qemu_smart_data()).unwrap();
        assert!(d.error_logging && d.self_test_supported());
        let mut b = qemu_smart_data();
        b[367] &= !(1 << 4);
        b[370] = 0;
        let d = parse_smart_data(&b).unwrap();
        assert!(!d.error_logging && !d.self_test_supported());
    }

    #[test]
    fn gp_logging_from_words_84_and_87() {
        let mut b = vec![0u8; 512];
        b[54] = b'X'; // a model, so the page is not all zeros
        assert!(!parse_identify(&b).unwrap().gp_logging);
        // Word 84 = 0x4020: valid (bits 15:14 = 01) with bit 5 set.
        b[168..170].copy_from_slice(&0x4020u16.to_le_bytes());
        assert!(parse_identify(&b).unwrap().gp_logging);
        // Bit 5 without the validity pattern does not count.
        b[168..170].copy_from_slice(&0x0020u16.to_le_bytes());
        assert!(!parse_identify(&b).unwrap().gp_logging);
        b[174..176].copy_from_slice(&0x4020u16.to_le_bytes());
        assert!(parse_identify(&b).unwrap().gp_logging);
    }

    /// SMART READ DATA from the QEMU AHCI disk (shared/fixtures/qemu-oracle/run4).
    pub(crate) fn qemu_smart_data() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        let head: [u8; 92] = [
            0x01, 0x00, 0x01, 0x03, 0x00, 0x64, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x03, 0x03, 0x00, 0x64, 0x64, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x02,
            0x00, 0x64, 0x64, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x03, 0x00, 0x64,
            0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x03, 0x00, 0x64, 0x64, 0x01,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x03, 0x00, 0x64, 0x64, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0xbe, 0x03, 0x00, 0x45, 0x45, 0x1f, 0x00, 0x1f, 0x1f, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        b[..92].copy_from_slice(&head);
        b[0x16a..0x172].copy_from_slice(&[0x82, 0x00, 0x20, 0x01, 0x00, 0x19, 0x03, 0x00]);
        b[0x172..0x176].copy_from_slice(&[0x01, 0x00, 0x02, 0x36]);
        b[0x176] = 0x01;
        b[511] = 0x06;
        b
    }

    #[test]
    fn qemu_ahci_smart_page_matches_smartctl() {
        let d = parse_smart_data(&qemu_smart_data()).unwrap();
        assert!(d.checksum_ok);
        assert_eq!(d.revision, 1);
        let ids: Vec<u8> = d.attributes.iter().map(|a| a.id).collect();
        assert_eq!(ids, [1, 3, 4, 5, 9, 12, 190]);
        let a190 = &d.attributes[6];
        assert_eq!((a190.value, a190.worst, a190.flags), (69, 69, 3));
        assert_eq!(a190.raw48(), 522_125_343); // smartctl raw.value
        assert_eq!(a190.name(), "Airflow_Temperature_Cel");
        assert_eq!(d.offline_status, 0x82);
        assert_eq!(d.offline_seconds, 288);
        assert_eq!((d.short_test_minutes, d.extended_test_minutes), (2, 54));
        let mut th = vec![0u8; 512];
        th[0] = 1;
        for (slot, (id, t)) in [(1, 6), (3, 0), (4, 20), (5, 36), (9, 0), (12, 0), (190, 50)]
            .iter()
            .enumerate()
        {
            th[2 + slot * 12] = *id;
            th[3 + slot * 12] = *t;
        }
        let t = parse_thresholds(&th).unwrap();
        let attrs = merge(&d, Some(&t));
        assert_eq!(attrs[3].threshold, Some(36));
        assert_eq!(attrs[6].good_now(), Some(true));
        assert_eq!(attrs[1].good_now(), None); // threshold 0: always passing
        assert_eq!(power_on_hours(&attrs, Quirks::default()), Some(1));
        assert_eq!(temperature_c(&attrs), Some(31));
        assert_eq!(
            overall(&attrs, Some(true), Some(64 << 20), Quirks::default()),
            Some(Overall::Good)
        );
    }

    #[test]
    fn failing_rules() {
        let mut a = Attribute {
            id: 5,
            flags: 0x33,
            value: 36,
            worst: 30,
            raw: [0; 6],
            threshold: Some(36),
        };
        assert_eq!(a.good_now(), Some(false));
        assert_eq!(a.when_failed(), "now");
        a.value = 37;
        assert_eq!(a.when_failed(), "past");
        a.threshold = Some(0xFE);
        assert!(!a.threshold_valid());
        assert_eq!(a.good_now(), None);
        a.threshold = Some(10);
        a.value = 0xFE;
        assert_eq!(a.good_now(), None);
        assert!(!a.value_valid());
    }

    #[test]
    fn truncated_and_garbage_pages_are_errors_not_panics() {
        for n in [0, 1, 100, 511] {
            let b = vec![0xFFu8; n];
            assert!(parse_identify(&b).is_err());
            assert!(parse_smart_data(&b).is_err());
            assert!(parse_thresholds(&b).is_err());
        }
        assert!(parse_identify(&[0u8; 512]).is_err());
        let id = parse_identify(&[0xFFu8; 512]).unwrap();
        assert!(!id.smart_supported);
        let d = parse_smart_data(&[0xFFu8; 600]).unwrap();
        assert_eq!(d.attributes.len(), 30);
        assert!(d.attributes.iter().all(|a| !a.value_valid()));
    }

    #[test]
    fn blob_sections_and_damage() {
        let mut b = Vec::new();
        b.extend_from_slice(b"SMST");
        b.extend_from_slice(&4u32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 1]);
        b.extend_from_slice(b"XTRA");
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&[9, 9]);
        let blob = parse_blob(&b).unwrap();
        assert_eq!(blob.status_good, Some(true));
        assert!(blob.identify.is_none());
        // Every truncation is an error, never a panic.
        for n in 0..b.len() {
            if n == 12 {
                continue; // the SMST section alone is complete
            }
            assert!(parse_blob(&b[..n]).is_err(), "len {n}");
        }
        let mut huge = b"SMDT".to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_blob(&huge).is_err());
    }

    #[test]
    fn quirks_from_libatasmart() {
        assert!(quirks("FUJITSU MHY2120BH", "0085000B").attr197_unknown);
        assert!(!quirks("FUJITSU MHY2120BH", "0084000D").attr197_unknown);
        assert!(quirks("MCCOE64GEMPP", "2.9.09").attr5_unknown);
        assert!(quirks("Maxtor 96147H8", "BAC51KJ0").poweron_minutes);
        assert_eq!(quirks("Maxtor", ""), Quirks::default());
    }
}

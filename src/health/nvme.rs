//! NVMe health pages, pure decoders: Identify Controller (CNS 1, 4096 bytes) and the
//! SMART / Health Information log (LID 0x02, 512 bytes), little-endian, with the 128-bit
//! counters kept exact as `u128` (and written to JSON as decimal strings). Also the admin command words lifeboat sends. Offsets:
//! NVMe base spec via libnvme `types.h` (`docs/storage-health.md` §4).

use anyhow::{Result, bail};
use serde::Serialize;

/// Size of the SMART / Health log page.
pub const SMART_LOG_LEN: usize = 512;
/// Size of the Identify Controller data structure.
pub const IDENTIFY_LEN: usize = 4096;

/// Get Log Page (opcode 0x02) of the SMART log, controller-wide: nsid 0xFFFFFFFF (QEMU
/// rejects 0), cdw10 = LID 2 | NUMDL 127 << 16.
pub const GET_LOG_PAGE: u8 = 0x02;
pub const SMART_LOG_NSID: u32 = 0xFFFF_FFFF;
pub const SMART_LOG_CDW10: u32 = 0x007F_0002;
/// Identify (opcode 0x06) Controller: nsid 0, cdw10 = CNS 1.
pub const IDENTIFY: u8 = 0x06;
pub const IDENTIFY_CTRL_CDW10: u32 = 0x0000_0001;

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u128le(b: &[u8], o: usize) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[o..o + 16]);
    u128::from_le_bytes(a)
}
fn text(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                ' '
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Identify Controller, the fields lifeboat reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentifyController {
    pub vendor_id: u16,
    pub subsystem_vendor_id: u16,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    pub ieee_oui: u32,
    pub controller_id: u16,
    /// Version as major.minor(.tertiary), e.g. "1.4".
    pub version: String,
    /// Optional Admin Command Support (bit 4: Device Self-test).
    pub oacs: u16,
    /// LPA bit 0: SMART log per namespace.
    pub log_page_attributes: u8,
    /// Error log entries supported (ELPE + 1).
    pub error_log_entries: u16,
    /// Warning and critical composite temperature thresholds, Kelvin (0 = not reported).
    pub warning_temp_k: u16,
    pub critical_temp_k: u16,
    /// Total NVM capacity in bytes (0 when not reported).
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub total_capacity: u128,
    pub namespaces: u32,
}

/// Decode Identify Controller (4096 bytes).
pub fn parse_identify_controller(b: &[u8]) -> Result<IdentifyController> {
    if b.len() < IDENTIFY_LEN {
        bail!(
            "NVMe Identify Controller: {} bytes, expected {IDENTIFY_LEN}",
            b.len()
        );
    }
    if b[..IDENTIFY_LEN].iter().all(|&x| x == 0) {
        bail!("NVMe Identify Controller: all zeros");
    }
    let ver = u32le(b, 80);
    let (maj, min, ter) = (ver >> 16, (ver >> 8) & 0xFF, ver & 0xFF);
    let version = match (ver, ter) {
        (0, _) => "unknown (before 1.2)".to_string(),
        (_, 0) => format!("{maj}.{min}"),
        _ => format!("{maj}.{min}.{ter}"),
    };
    Ok(IdentifyController {
        vendor_id: u16le(b, 0),
        subsystem_vendor_id: u16le(b, 2),
        serial: text(&b[4..24]),
        model: text(&b[24..64]),
        firmware: text(&b[64..72]),
        ieee_oui: u32::from(b[73]) | (u32::from(b[74]) << 8) | (u32::from(b[75]) << 16),
        controller_id: u16le(b, 78),
        version,
        oacs: u16le(b, 256),
        log_page_attributes: b[261],
        error_log_entries: u16::from(b[262]) + 1,
        warning_temp_k: u16le(b, 266),
        critical_temp_k: u16le(b, 268),
        total_capacity: u128le(b, 280),
        namespaces: u32le(b, 516),
    })
}

/// Critical-warning bits, in plain words (bit 0 first).
pub const CRITICAL_WARNING_BITS: [&str; 6] = [
    "available spare below threshold",
    "temperature above or below a threshold",
    "NVM subsystem reliability degraded (media or internal errors)",
    "media placed in read-only mode",
    "volatile memory backup device failed",
    "persistent memory region read-only or unreliable",
];

/// The SMART / Health Information log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmartLog {
    pub critical_warning: u8,
    /// Composite temperature in Kelvin.
    pub temperature_k: u16,
    pub available_spare: u8,
    pub available_spare_threshold: u8,
    /// Vendor estimate of endurance used; may exceed 100.
    pub percentage_used: u8,
    pub endurance_group_critical_warning: u8,
    /// In units of 1000 × 512 bytes.
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub data_units_read: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub data_units_written: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub host_read_commands: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub host_write_commands: u128,
    /// Minutes.
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub controller_busy_time: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub power_cycles: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub power_on_hours: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub unsafe_shutdowns: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub media_errors: u128,
    #[serde(serialize_with = "crate::health::u128_as_string")]
    pub error_log_entries: u128,
    /// Minutes above the warning / critical composite temperature.
    pub warning_temp_time: u32,
    pub critical_temp_time: u32,
    /// Temperature sensors 1–8 in Kelvin (0 = not implemented).
    pub temperature_sensors: [u16; 8],
}

impl SmartLog {
    /// Composite temperature in °C as smartctl and nvme-cli print it (K − 273).
    pub fn temperature_c(&self) -> i32 {
        i32::from(self.temperature_k) - 273
    }
    /// The critical-warning bits that are set, in plain words (reserved bits by number).
    pub fn warnings(&self) -> Vec<String> {
        (0..8)
            .filter(|i| self.critical_warning & (1 << i) != 0)
            .map(|i| {
                CRITICAL_WARNING_BITS
                    .get(i)
                    .map_or_else(|| format!("reserved warning bit {i}"), |s| s.to_string())
            })
            .collect()
    }
    /// Bytes written by the host: data units × 512 000 (exact, saturating at u128::MAX).
    pub fn bytes_written(&self) -> u128 {
        self.data_units_written.saturating_mul(512_000)
    }
    pub fn bytes_read(&self) -> u128 {
        self.data_units_read.saturating_mul(512_000)
    }
}

/// Decode the SMART / Health Information log (512 bytes).
pub fn parse_smart_log(b: &[u8]) -> Result<SmartLog> {
    if b.len() < SMART_LOG_LEN {
        bail!(
            "NVMe SMART log: {} bytes, expected {SMART_LOG_LEN}",
            b.len()
        );
    }
    let mut sensors = [0u16; 8];
    for (i, s) in sensors.iter_mut().enumerate() {
        *s = u16le(b, 200 + 2 * i);
    }
    Ok(SmartLog {
        critical_warning: b[0],
        temperature_k: u16le(b, 1),
        available_spare: b[3],
        available_spare_threshold: b[4],
        percentage_used: b[5],
        endurance_group_critical_warning: b[6],
        data_units_read: u128le(b, 32),
        data_units_written: u128le(b, 48),
        host_read_commands: u128le(b, 64),
        host_write_commands: u128le(b, 80),
        controller_busy_time: u128le(b, 96),
        power_cycles: u128le(b, 112),
        power_on_hours: u128le(b, 128),
        unsafe_shutdowns: u128le(b, 144),
        media_errors: u128le(b, 160),
        error_log_entries: u128le(b, 176),
        warning_temp_time: u32le(b, 192),
        critical_temp_time: u32le(b, 196),
        temperature_sensors: sensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SMART log QEMU's NVMe returned (shared/fixtures/qemu-oracle/run4).
    fn qemu_log() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[1] = 0x43;
        b[2] = 0x01;
        b[0x20] = 0x01;
        b[0x40] = 0x04;
        b
    }

    #[test]
    fn qemu_smart_log_matches_nvme_cli() {
        let l = parse_smart_log(&qemu_log()).unwrap();
        assert_eq!(l.critical_warning, 0);
        assert_eq!(l.temperature_k, 323);
        assert_eq!(l.temperature_c(), 50);
        assert_eq!((l.available_spare, l.available_spare_threshold), (0, 0));
        assert_eq!(l.data_units_read, 1);
        assert_eq!(l.host_read_commands, 4);
        assert_eq!(l.bytes_read(), 512_000);
        assert!(l.warnings().is_empty());
    }

    #[test]
    fn u128_counters_are_exact() {
        let mut b = qemu_log();
        b[48..64].copy_from_slice(&u128::MAX.to_le_bytes());
        b[160..176].copy_from_slice(&((1u128 << 64) + 5).to_le_bytes());
        b[0] = 0x04 | 0x80;
        let l = parse_smart_log(&b).unwrap();
        assert_eq!(l.data_units_written, u128::MAX);
        assert_eq!(l.bytes_written(), u128::MAX);
        assert_eq!(l.media_errors, 18_446_744_073_709_551_621);
        assert_eq!(
            l.warnings(),
            [
                "NVM subsystem reliability degraded (media or internal errors)",
                "reserved warning bit 7"
            ]
        );
    }

    #[test]
    fn identify_controller_qemu_fields() {
        let mut b = vec![0u8; 4096];
        b[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        b[2..4].copy_from_slice(&0x1af4u16.to_le_bytes());
        b[4..24].copy_from_slice(b"NVME0001            ");
        let mut mn = [b' '; 40];
        mn[..14].copy_from_slice(b"QEMU NVMe Ctrl");
        b[24..64].copy_from_slice(&mn);
        b[64..72].copy_from_slice(b"10.0.2  ");
        b[73..76].copy_from_slice(&[0x00, 0x54, 0x52]);
        b[80..84].copy_from_slice(&0x0001_0400u32.to_le_bytes());
        b[261] = 0x07;
        b[266..268].copy_from_slice(&343u16.to_le_bytes());
        b[268..270].copy_from_slice(&373u16.to_le_bytes());
        b[516..520].copy_from_slice(&256u32.to_le_bytes());
        let id = parse_identify_controller(&b).unwrap();
        assert_eq!(id.model, "QEMU NVMe Ctrl");
        assert_eq!(id.serial, "NVME0001");
        assert_eq!(id.firmware, "10.0.2");
        assert_eq!(id.vendor_id, 6966); // smartctl nvme_pci_vendor.id
        assert_eq!(id.subsystem_vendor_id, 6900);
        assert_eq!(id.ieee_oui, 5_395_456); // smartctl nvme_ieee_oui_identifier
        assert_eq!(id.version, "1.4");
        assert_eq!(id.namespaces, 256);
        assert_eq!((id.warning_temp_k, id.critical_temp_k), (343, 373));
    }

    #[test]
    fn short_or_empty_pages_are_errors() {
        for n in [0, 1, 200, 511] {
            assert!(parse_smart_log(&vec![0xAB; n]).is_err());
        }
        assert!(parse_identify_controller(&[0u8; 4095]).is_err());
        assert!(parse_identify_controller(&[0u8; 4096]).is_err());
        assert!(parse_identify_controller(&[0xFFu8; 4096]).is_ok());
        let l = parse_smart_log(&[0xFF; 512]).unwrap();
        assert_eq!(l.warnings().len(), 8);
    }
}

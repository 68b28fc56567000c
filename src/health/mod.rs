//! Storage health (`lifeboat health`): wear and health of SD cards, eMMC, NVMe and SATA
//! or USB-SATA disks, with one verdict per device.
//!
//! - Pure decoders, `&[u8] -> Result<T>` per page kind: [`ata`] (IDENTIFY, SMART data and
//!   thresholds, libatasmart blobs), [`atalog`] (SMART error and self-test logs), [`sat`] (ATA PASS-THROUGH CDBs and sense data, NVMe
//!   USB tunnels), [`nvme`] (Identify Controller, SMART/Health log), [`nvmelog`] (error
//!   and self-test logs), [`sd`] (CID, CSD, SCR,
//!   SSR, CMD56 vendor health), [`mmc`] (eMMC EXT_CSD, life time, CID).
//! - [`usb_bridges`]: the USB bridge table; [`kernel`]: kernel signals every disk has;
//!   [`verdict`]: findings in plain words and the verdict.
//! - [`probe`]: reads one disk (sysfs under a `SysRoot`, pass-through through
//!   [`crate::sys`]'s safe wrappers) into a [`DeviceReport`]; [`raw`] decodes saved pages
//!   offline (`--from-raw`).
//!
//! The report types below are what `--json` prints (docs/json.md): large integers
//! (u128 NVMe counters) as decimal strings.

pub mod ata;
pub mod atalog;
pub mod kernel;
pub mod mmc;
pub mod nvme;
pub mod nvmelog;
pub mod probe;
pub mod raw;
pub mod sat;
pub mod sd;
pub mod usb_bridges;
pub mod verdict;

use crate::device::Transport;
use serde::{Serialize, Serializer};
use verdict::{Finding, Verdict};

/// serde helper: a u128 as a decimal string (JSON numbers lose precision above 2^53).
pub fn u128_as_string<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// What kind of health source to use for a disk, as `--type` names them (smartctl `-d`
/// style), or a page kind for `--from-raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// ATA PASS-THROUGH(16), falling back to (12).
    Sat,
    /// ATA PASS-THROUGH(12) only.
    Sat12,
    /// NVMe admin commands on the NVMe device.
    Nvme,
    /// NVMe behind a JMicron JMS583 bridge.
    SntJmicron,
    /// NVMe behind an ASMedia ASM236x bridge.
    SntAsmedia,
    /// NVMe behind a Realtek RTL9210/9211 bridge.
    SntRealtek,
    /// SD card registers (sysfs) and CMD56 vendor health.
    Sd,
    /// eMMC EXT_CSD (sysfs and CMD8).
    Emmc,
    /// No pass-through: kernel signals only.
    None,
}

impl Source {
    /// Parse a `--type` value: `sat`, `sat,12`/`sat12`, `nvme`, `sntjmicron`, `sntasmedia`,
    /// `sntrealtek`, `sd`, `emmc`, `none`.
    pub fn parse(s: &str) -> Option<Source> {
        Some(match s {
            "sat" | "sat,16" | "sat16" | "ata" => Source::Sat,
            "sat,12" | "sat12" => Source::Sat12,
            "nvme" => Source::Nvme,
            "sntjmicron" => Source::SntJmicron,
            "sntasmedia" => Source::SntAsmedia,
            "sntrealtek" => Source::SntRealtek,
            "sd" => Source::Sd,
            "emmc" | "mmc" => Source::Emmc,
            "none" | "kernel" => Source::None,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Source::Sat => "sat",
            Source::Sat12 => "sat,12",
            Source::Nvme => "nvme",
            Source::SntJmicron => "sntjmicron",
            Source::SntAsmedia => "sntasmedia",
            Source::SntRealtek => "sntrealtek",
            Source::Sd => "sd",
            Source::Emmc => "emmc",
            Source::None => "none",
        }
    }
}

/// One attribute as the report shows it (smartctl-like names and fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeReport {
    pub id: u8,
    pub name: &'static str,
    pub value: u8,
    pub worst: u8,
    /// `null` when the drive gave no threshold for this attribute.
    pub thresh: Option<u8>,
    pub flags: u16,
    pub prefailure: bool,
    pub updated_online: bool,
    /// `now`, `past` or empty, as smartctl.
    pub when_failed: &'static str,
    /// The raw bytes as one little-endian 48-bit integer (smartctl `raw.value`).
    pub raw_value: u64,
    /// The six raw bytes as stored, hex.
    pub raw_bytes: String,
}

impl From<&ata::Attribute> for AttributeReport {
    fn from(a: &ata::Attribute) -> Self {
        AttributeReport {
            id: a.id,
            name: a.name(),
            value: a.value,
            worst: a.worst,
            thresh: a.threshold,
            flags: a.flags,
            prefailure: a.prefailure(),
            updated_online: a.online(),
            when_failed: a.when_failed(),
            raw_value: a.raw48(),
            raw_bytes: a.raw.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// ATA/SATA health.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AtaReport {
    /// How the pages were read: `sat16`, `sat12`, `blob` or `file`.
    pub via: String,
    pub identify: Option<ata::Identify>,
    pub smart_supported: Option<bool>,
    pub smart_enabled: Option<bool>,
    /// SMART RETURN STATUS: `good`, `failing`, or `null` when it could not be read.
    pub smart_status: Option<sat::SmartStatus>,
    pub smart_data_revision: Option<u16>,
    pub smart_data_checksum_ok: Option<bool>,
    pub thresholds_checksum_ok: Option<bool>,
    pub offline_status: Option<u8>,
    pub self_test_status: Option<u8>,
    pub attributes: Vec<AttributeReport>,
    pub bad_sectors: Option<u64>,
    pub power_on_hours: Option<u64>,
    pub temperature_c: Option<u8>,
    pub wear: Option<ata::WearIndicator>,
    /// SMART error log (summary, log 0x01), when the drive keeps one.
    pub error_log: Option<atalog::ErrorLog>,
    /// SMART self-test log (log 0x06), when the drive supports self-tests.
    pub self_test_log: Option<atalog::SelfTestLog>,
    /// Extended comprehensive error log (GP log 0x03, READ LOG EXT), when the drive has
    /// the General Purpose Logging feature set and lists the log in its directory.
    pub ext_error_log: Option<atalog::ErrorLog>,
    /// Extended self-test log (GP log 0x07).
    pub ext_self_test_log: Option<atalog::SelfTestLog>,
    /// libatasmart's overall class for the same data (as `skdump` prints it).
    pub libatasmart_overall: Option<ata::Overall>,
    pub quirks: ata::Quirks,
}

/// NVMe health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NvmeReport {
    /// `ioctl`, `sntjmicron`, `sntasmedia`, `sntrealtek`, `file`, or `hwmon` (only the
    /// kernel's temperature sensor was read).
    pub via: String,
    pub identify: Option<nvme::IdentifyController>,
    pub smart_log: Option<nvme::SmartLog>,
    pub temperature_c: Option<i32>,
    /// Data written and read by the host, bytes (decimal strings).
    pub bytes_written: Option<String>,
    pub bytes_read: Option<String>,
    /// `smart_status.passed` as smartctl computes it: no critical-warning bit set.
    pub passed: Option<bool>,
    /// Error Information log (LID 0x01), summarised.
    pub error_log: Option<nvmelog::ErrorLog>,
    /// Device Self-test log (LID 0x06), when the controller supports self-tests.
    pub self_test_log: Option<nvmelog::SelfTestLog>,
    /// Composite temperature from the kernel's hwmon sensor (`temp1_input`, millidegrees
    /// Celsius), read without privileges; `null` when there is none.
    pub hwmon_temp_millicelsius: Option<i64>,
    /// Where `temperature_c` came from: `smart_log` or `hwmon`.
    pub temperature_source: Option<String>,
}

/// SD card registers and vendor health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SdReport {
    pub cid: Option<sd::Cid>,
    pub csd: Option<sd::Csd>,
    /// The CSD capacity equals the disk size the kernel reports.
    pub csd_matches_size: Option<bool>,
    pub scr: Option<sd::Scr>,
    pub ssr: Option<sd::Ssr>,
    /// `sysfs` (snapshot at card init) or `acmd13` (read now).
    pub ssr_source: Option<String>,
    pub fake_indicators: Vec<String>,
    /// The CMD56 method tried, if any, and what came of it.
    pub cmd56_method: Option<sd::Cmd56Method>,
    pub cmd56_result: Option<String>,
    pub vendor_health: Option<sd::VendorHealth>,
}

/// eMMC wear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmmcReport {
    pub cid: Option<mmc::EmmcCid>,
    /// `ext_csd` (read now with CMD8) or `sysfs` (cached at boot).
    pub source: Option<String>,
    pub ext_csd_revision: Option<u8>,
    pub life_time_a: Option<u8>,
    pub life_time_b: Option<u8>,
    pub pre_eol: Option<u8>,
    pub life_time_a_text: Option<String>,
    pub life_time_b_text: Option<String>,
    pub pre_eol_text: Option<String>,
    pub ext_csd: Option<mmc::ExtCsd>,
}

/// The health report of one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// `/dev/sda`, or the file given to `--from-raw`.
    pub device: String,
    pub name: String,
    pub transport: Option<Transport>,
    pub size: Option<u64>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub system_disk: bool,
    /// The health source used (`sat`, `nvme`, `sd`, …).
    pub source: Source,
    /// USB bridge description, when behind one.
    pub bridge: Option<String>,
    pub verdict: Verdict,
    /// Every finding, worst first: what made the verdict, and facts worth knowing.
    pub reasons: Vec<Finding>,
    /// What could not be read, and why (permissions, unsupported commands).
    pub problems: Vec<String>,
    /// Some health data could not be read because lifeboat lacks privileges.
    pub needs_privileges: bool,
    pub ata: Option<AtaReport>,
    pub nvme: Option<NvmeReport>,
    pub sd: Option<SdReport>,
    pub emmc: Option<EmmcReport>,
    pub kernel: Option<kernel::KernelSignals>,
    /// Raw pages read (kind, bytes), for `--raw-out`.
    #[serde(skip)]
    pub raw_pages: Vec<(String, Vec<u8>)>,
    /// Whether any source gave wear or health data.
    #[serde(skip)]
    pub has_health_data: bool,
}

impl DeviceReport {
    /// An empty report for `device`.
    pub fn new(device: String, name: String, source: Source) -> Self {
        DeviceReport {
            device,
            name,
            transport: None,
            size: None,
            model: None,
            serial: None,
            firmware: None,
            system_disk: false,
            source,
            bridge: None,
            verdict: Verdict::Unknown,
            reasons: Vec::new(),
            problems: Vec::new(),
            needs_privileges: false,
            ata: None,
            nvme: None,
            sd: None,
            emmc: None,
            kernel: None,
            raw_pages: Vec::new(),
            has_health_data: false,
        }
    }

    /// Decide the verdict from the findings and sort them worst first.
    pub fn finish(&mut self) {
        self.verdict = verdict::decide(&self.reasons, self.has_health_data);
        if self.verdict == Verdict::Unknown
            && !self
                .reasons
                .iter()
                .any(|f| f.text.starts_with("no wear data"))
        {
            self.reasons.push(Finding::info(
                "no wear data: this device gave lifeboat no wear or health information",
            ));
        }
        self.reasons.sort_by_key(|f| std::cmp::Reverse(f.severity));
    }

    /// Kernel signals carry a warning or failure.
    pub fn kernel_errors(&self) -> bool {
        self.kernel.as_ref().is_some_and(|k| {
            verdict::kernel_findings(k)
                .iter()
                .any(|f| f.severity > verdict::Severity::Info)
        })
    }
}

/// Exit-status bits of `health` (docs/exit-codes.md).
pub mod exit_bits {
    /// Some health data could not be read (permissions, a command failed, bad checksum).
    pub const READ_PROBLEM: u8 = 1 << 2;
    /// At least one device's verdict is `fail`.
    pub const FAIL: u8 = 1 << 3;
    /// At least one device's verdict is `warn`.
    pub const WARN: u8 = 1 << 4;
    /// At least one device's verdict is `unknown` (no wear data).
    pub const UNKNOWN: u8 = 1 << 5;
    /// The kernel's error signals (I/O errors, read-only, filesystem errors) are not clean.
    pub const KERNEL_ERRORS: u8 = 1 << 6;
}

/// The exit-status bit mask for a set of reports.
pub fn exit_mask(reports: &[DeviceReport]) -> u8 {
    let mut m = 0;
    for r in reports {
        if !r.problems.is_empty() {
            m |= exit_bits::READ_PROBLEM;
        }
        m |= match r.verdict {
            Verdict::Fail => exit_bits::FAIL,
            Verdict::Warn => exit_bits::WARN,
            Verdict::Unknown => exit_bits::UNKNOWN,
            Verdict::Pass => 0,
        };
        if r.kernel_errors() {
            m |= exit_bits::KERNEL_ERRORS;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for s in [
            "sat",
            "sat,12",
            "nvme",
            "sntjmicron",
            "sntasmedia",
            "sntrealtek",
            "sd",
            "emmc",
            "none",
        ] {
            assert_eq!(Source::parse(s).unwrap().name(), s);
        }
        assert_eq!(Source::parse("sat12"), Some(Source::Sat12));
        assert_eq!(Source::parse("scsi"), None);
    }

    #[test]
    fn exit_mask_bits() {
        let mut a = DeviceReport::new("/dev/a".into(), "a".into(), Source::None);
        a.finish();
        assert_eq!(exit_mask(std::slice::from_ref(&a)), exit_bits::UNKNOWN);
        let mut b = DeviceReport::new("/dev/b".into(), "b".into(), Source::Nvme);
        b.has_health_data = true;
        b.reasons.push(Finding::fail("x"));
        b.problems.push("y".into());
        b.finish();
        assert_eq!(b.verdict, Verdict::Fail);
        assert_eq!(
            exit_mask(&[a, b]),
            exit_bits::UNKNOWN | exit_bits::FAIL | exit_bits::READ_PROBLEM
        );
    }

    /// Every decoder on random bytes of every length up to a bit past its page: errors or
    /// values, never a panic.
    #[test]
    fn decoders_never_panic_on_random_input() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        for len in (0..600).chain([4095, 4096, 4100]) {
            let b = rnd(len);
            let _ = ata::parse_identify(&b);
            let _ = ata::parse_smart_data(&b);
            let _ = ata::parse_thresholds(&b);
            let _ = ata::parse_blob(&b);
            let _ = atalog::parse_self_test_log(&b);
            let _ = atalog::parse_summary_error_log(&b);
            let _ = nvme::parse_smart_log(&b);
            let _ = nvme::parse_identify_controller(&b);
            let _ = nvmelog::parse_error_log(&b);
            let _ = nvmelog::parse_self_test_log(&b);
            let _ = mmc::parse_ext_csd(&b);
            let _ = mmc::parse_emmc_cid(&b, Some(8));
            let _ = sd::parse_cid(&b);
            let _ = sd::parse_csd(&b);
            let _ = sd::parse_scr(&b);
            let _ = sd::parse_ssr(&b);
            let _ = sat::parse_sense(&b);
            let _ = sat::jmicron_response(&b);
            let _ = kernel::parse_stat(&String::from_utf8_lossy(&b));
            let _ = kernel::parse_err_stats(&String::from_utf8_lossy(&b));
            let _ = kernel::error_line_device(&String::from_utf8_lossy(&b));
            let _ = mmc::parse_sysfs_life_time(&String::from_utf8_lossy(&b));
        }
        // Register-sized inputs through every CSD structure and SSR/SCR value.
        for _ in 0..2000 {
            let _ = sd::parse_csd(&rnd(16));
            let _ = sd::parse_scr(&rnd(8));
            let _ = sd::parse_ssr(&rnd(64));
            let _ = mmc::parse_ext_csd(&rnd(512));
        }
    }

    #[test]
    fn u128_json_is_a_string() {
        #[derive(Serialize)]
        struct T {
            #[serde(serialize_with = "u128_as_string")]
            v: u128,
        }
        let j = serde_json::to_string(&T { v: u128::MAX }).unwrap();
        assert_eq!(j, format!("{{\"v\":\"{}\"}}", u128::MAX));
    }
}

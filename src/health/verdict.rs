//! The verdict: `pass`, `warn`, `fail` or `unknown` per device, from findings in plain
//! words. Each `*_findings` function turns one decoded source (NVMe SMART log, ATA
//! attributes and status, eMMC life time, SD vendor health, kernel signals) into
//! [`Finding`]s; [`decide`] combines them. Pure: no I/O.
//!
//! Rules: any `fail` finding → fail; else any `warn` → warn; else pass when some source
//! gave real wear or health data, unknown when none did (an SD card in a USB reader, a
//! virtio disk). Kernel signals can raise an unknown device to warn or fail.

use super::ata::{self, Attribute, Overall, Quirks};
use super::atalog::{ErrorLog, SelfTestLog};
use super::kernel::KernelSignals;
use super::mmc::{LifeTime, PreEol};
use super::nvme::{IdentifyController, SmartLog};
use super::nvmelog;
use super::sat::SmartStatus;
use super::sd::VendorHealth;
use serde::Serialize;

/// A device's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Unknown,
    Warn,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Unknown => "unknown",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// How much one finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A fact worth showing (e.g. "18% of rated life used").
    Info,
    Warn,
    Fail,
}

/// One reason, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub text: String,
}

impl Finding {
    pub fn info(t: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Info,
            text: t.into(),
        }
    }
    pub fn warn(t: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warn,
            text: t.into(),
        }
    }
    pub fn fail(t: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Fail,
            text: t.into(),
        }
    }
}

/// Combine findings. `has_health_data`: some source gave wear or health data.
pub fn decide(findings: &[Finding], has_health_data: bool) -> Verdict {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Fail) => Verdict::Fail,
        Some(Severity::Warn) => Verdict::Warn,
        _ if has_health_data => Verdict::Pass,
        _ => Verdict::Unknown,
    }
}

/// Percentage-used level above which a drive is "worn" (rated endurance nearly consumed).
pub const WEAR_WARN_PERCENT: u8 = 90;

/// NVMe: critical warnings, spare vs threshold, percentage used, media errors.
pub fn nvme_findings(log: &SmartLog, id: Option<&IdentifyController>) -> Vec<Finding> {
    let mut v = Vec::new();
    for w in log.warnings() {
        v.push(Finding::fail(format!(
            "the drive reports a critical warning: {w}"
        )));
    }
    // Spare below threshold (only meaningful when the drive reports a threshold).
    if log.available_spare_threshold > 0 && log.available_spare < log.available_spare_threshold {
        v.push(Finding::fail(format!(
            "spare {}% below threshold {}%",
            log.available_spare, log.available_spare_threshold
        )));
    }
    match log.percentage_used {
        p if p >= 100 => v.push(Finding::fail(format!(
            "{p}% of rated endurance used: the drive is past its rated life"
        ))),
        p if p >= WEAR_WARN_PERCENT => v.push(Finding::warn(format!(
            "{p}% of rated endurance used: plan a replacement"
        ))),
        p => v.push(Finding::info(format!("{p}% of rated endurance used"))),
    }
    if log.media_errors > 0 {
        v.push(Finding::warn(format!(
            "{} media and data integrity errors (unrecovered reads or writes)",
            log.media_errors
        )));
    }
    let t = log.temperature_c();
    if let Some(id) = id
        && id.critical_temp_k > 0
        && log.temperature_k >= id.critical_temp_k
    {
        v.push(Finding::warn(format!(
            "temperature {t} °C at or above the critical limit {} °C",
            i32::from(id.critical_temp_k) - 273
        )));
    } else if let Some(id) = id
        && id.warning_temp_k > 0
        && log.temperature_k >= id.warning_temp_k
    {
        v.push(Finding::warn(format!(
            "temperature {t} °C at or above the warning limit {} °C",
            i32::from(id.warning_temp_k) - 273
        )));
    }
    if log.critical_temp_time > 0 {
        v.push(Finding::warn(format!(
            "{} minutes spent above the critical temperature",
            log.critical_temp_time
        )));
    }
    v
}

/// How findings from the SMART data's self-test execution status begin (the self-test log,
/// when read, replaces them).
pub const SELF_TEST_STATUS_PREFIX: &str = "self-test execution status: ";

/// ATA SMART data byte 363 (high nibble result, low nibble tenths left), for drives whose
/// self-test log was not read: the last self-test failed → fail; one running → info.
pub fn self_test_status_finding(status: u8) -> Option<Finding> {
    let result = status >> 4;
    let text = super::atalog::result_text(result);
    match result {
        3..=8 => Some(Finding::fail(format!(
            "{SELF_TEST_STATUS_PREFIX}the last self-test failed ({text})"
        ))),
        15 => Some(Finding::info(format!(
            "{SELF_TEST_STATUS_PREFIX}a self-test is running, {}% left",
            (status & 0x0F).saturating_mul(10)
        ))),
        _ => None,
    }
}

/// ATA logs: the newest completed self-test failed → fail; an older failure a later test
/// passed after → info; errors in the error log → warn with the count and the latest.
pub fn ata_log_findings(err: Option<&ErrorLog>, st: Option<&SelfTestLog>) -> Vec<Finding> {
    let mut v = Vec::new();
    if let Some(st) = st {
        if let Some(running) = st.entries.first().filter(|e| e.result == 15) {
            v.push(Finding::info(format!(
                "a self-test ({}) is running, {}% left",
                running.test_type_text, running.remaining_percent
            )));
        }
        match st.last_completed_failure() {
            Some(f) => v.push(Finding::fail(format!(
                "the last self-test ({}) failed: {}{} at power-on hour {}",
                f.test_type_text.to_ascii_lowercase(),
                f.result_text,
                f.failing_lba
                    .map(|l| format!(" at LBA {l}"))
                    .unwrap_or_default(),
                f.lifetime_hours
            ))),
            None => {
                if let Some(p) = st.entries.iter().find(|e| e.passed == Some(true)) {
                    v.push(Finding::info(format!(
                        "the last self-test ({}) passed at power-on hour {}",
                        p.test_type_text.to_ascii_lowercase(),
                        p.lifetime_hours
                    )));
                }
                let n = st.earlier_failures();
                if n > 0 {
                    v.push(Finding::info(format!(
                        "{n} earlier self-test(s) failed; a later one passed"
                    )));
                }
            }
        }
    }
    if let Some(e) = err {
        let n = e.count.max(e.entries.len() as u32);
        if n > 0 {
            let latest = e
                .entries
                .first()
                .map(|x| format!("; the latest: {}", x.describe()))
                .unwrap_or_default();
            v.push(Finding::warn(format!(
                "the drive logged {n} ATA error(s){latest}"
            )));
        }
    }
    v
}

/// NVMe logs: error-log entries → info (warn when any is a media error: SCT 2); the newest
/// finished self-test failed → fail.
pub fn nvme_log_findings(
    err: Option<&nvmelog::ErrorLog>,
    st: Option<&nvmelog::SelfTestLog>,
) -> Vec<Finding> {
    let mut v = Vec::new();
    if let Some(e) = err
        && let Some(latest) = &e.latest
    {
        let media = e.entries.iter().filter(|x| x.sct == 2).count();
        let text = format!(
            "{} entr{} in the NVMe error log{}; the latest (#{}): {}",
            e.non_zero,
            if e.non_zero == 1 { "y" } else { "ies" },
            if media > 0 {
                format!(", {media} of them media errors")
            } else {
                String::new()
            },
            latest.error_count,
            latest.describe()
        );
        v.push(if media > 0 {
            Finding::warn(text)
        } else {
            Finding::info(text)
        });
    }
    if let Some(st) = st {
        if st.current_operation != 0 {
            v.push(Finding::info(format!(
                "a device self-test is running ({}% done)",
                st.current_completion
            )));
        }
        match st.results.iter().find(|x| x.passed.is_some()) {
            Some(t) if t.passed == Some(false) => v.push(Finding::fail(format!(
                "the last self-test ({}) failed: {}{} at power-on hour {}",
                t.code_text,
                t.result_text,
                t.failing_lba
                    .map(|l| format!(" at LBA {l}"))
                    .unwrap_or_default(),
                t.power_on_hours
            ))),
            Some(t) => v.push(Finding::info(format!(
                "the last self-test ({}) passed at power-on hour {}",
                t.code_text, t.power_on_hours
            ))),
            None => {}
        }
    }
    v
}

/// ATA: RETURN STATUS, attributes at or below threshold, bad sectors, SSD wear, CRC errors.
pub fn ata_findings(
    model: &str,
    attrs: &[Attribute],
    status: Option<SmartStatus>,
    q: Quirks,
) -> Vec<Finding> {
    let mut v = Vec::new();
    if status == Some(SmartStatus::Failing) {
        v.push(Finding::fail(
            "the drive's own SMART self-assessment says it is FAILING (threshold exceeded)",
        ));
    }
    for a in attrs {
        let name = a.name();
        let thr = a.threshold.unwrap_or(0);
        match (a.good_now(), a.good_in_the_past()) {
            (Some(false), _) if a.prefailure() => v.push(Finding::fail(format!(
                "pre-failure attribute {} {name} is at or below its threshold now ({} ≤ {thr}): failure predicted",
                a.id, a.value
            ))),
            (Some(false), _) => v.push(Finding::warn(format!(
                "attribute {} {name} is at or below its threshold now ({} ≤ {thr}): worn out",
                a.id, a.value
            ))),
            (_, Some(false)) if a.prefailure() => v.push(Finding::warn(format!(
                "pre-failure attribute {} {name} was at or below its threshold in the past (worst {} ≤ {thr})",
                a.id, a.worst
            ))),
            // An old-age attribute that once crossed its threshold (e.g. a temperature)
            // is history, not wear: worth knowing, not a warning (libatasmart agrees).
            (_, Some(false)) => v.push(Finding::info(format!(
                "old-age attribute {} {name} was at or below its threshold in the past (worst {} ≤ {thr})",
                a.id, a.worst
            ))),
            _ => {}
        }
    }
    if let Some(n) = ata::bad_sectors(attrs, q).filter(|n| *n > 0) {
        v.push(Finding::warn(format!(
            "{n} reallocated or pending sectors: the surface is wearing"
        )));
    }
    if let Some(w) = ata::wear_indicator(model, attrs) {
        let r = w.remaining_percent;
        let text = format!("{r}% of rated life left ({})", w.meaning);
        v.push(if r == 0 {
            Finding::fail(text)
        } else if r <= 100 - WEAR_WARN_PERCENT {
            Finding::warn(text)
        } else {
            Finding::info(text)
        });
    }
    match ata::host_writes(model, attrs) {
        Some((_, Some(bytes))) => v.push(Finding::info(format!(
            "{} written by the host over the drive's life (attribute 241)",
            super::raw::human_u128(bytes)
        ))),
        Some((raw, None)) => v.push(Finding::info(format!(
            "attribute 241 Total_LBAs_Written raw {raw} (its unit depends on the vendor)"
        ))),
        None => {}
    }
    if let Some(a) = attrs.iter().find(|a| a.id == 173 && a.raw48() > 0)
        && (model.to_ascii_lowercase().starts_with("crucial")
            || model.to_ascii_lowercase().starts_with("micron")
            || model.to_ascii_lowercase().starts_with("ct")
            || model.starts_with("WDC"))
    {
        v.push(Finding::info(format!(
            "average block erase count {} (attribute 173)",
            a.raw48() & 0xFFFF_FFFF
        )));
    }
    if let Some(a) = attrs.iter().find(|a| a.id == 199)
        && a.raw48() > 0
    {
        v.push(Finding::info(format!(
            "{} link CRC errors (attribute 199): often a bad cable or USB bridge",
            a.raw48()
        )));
    }
    v
}

/// The libatasmart class for the same data, used to cross-check against `skdump`.
pub fn ata_overall(
    attrs: &[Attribute],
    status: Option<SmartStatus>,
    size: Option<u64>,
    q: Quirks,
) -> Option<Overall> {
    ata::overall(attrs, status.map(|s| s == SmartStatus::Good), size, q)
}

/// eMMC: life time A/B and pre-EOL, mapped as the reference suggests.
pub fn emmc_findings(
    a: Option<LifeTime>,
    b: Option<LifeTime>,
    eol: Option<PreEol>,
) -> Vec<Finding> {
    let mut v = Vec::new();
    for (name, lt) in [("A (SLC/boot area)", a), ("B (main area)", b)] {
        let Some(lt) = lt else { continue };
        let text = format!("life time estimate {name}: {}", lt.describe());
        v.push(match lt.0 {
            0x0B => Finding::fail(text),
            0x09 | 0x0A => Finding::warn(text),
            _ => Finding::info(text),
        });
    }
    if let Some(e) = eol {
        let text = format!("pre-EOL information: {}", e.describe());
        v.push(match e.0 {
            3 => Finding::fail(text),
            2 => Finding::warn(text),
            _ => Finding::info(text),
        });
    }
    v
}

/// True when the eMMC values carry real data (not "not defined").
pub fn emmc_has_data(a: Option<LifeTime>, b: Option<LifeTime>, eol: Option<PreEol>) -> bool {
    a.is_some_and(|x| (1..=11).contains(&x.0))
        || b.is_some_and(|x| (1..=11).contains(&x.0))
        || eol.is_some_and(|x| (1..=3).contains(&x.0))
}

/// SD vendor health (CMD56).
pub fn sd_vendor_findings(h: &VendorHealth) -> Vec<Finding> {
    let mut v = Vec::new();
    let remaining = h
        .life_remaining_percent
        .or_else(|| h.life_used_percent.map(|u| 100u16.saturating_sub(u)));
    if let Some(r) = remaining {
        let text = format!(
            "{r}% of rated life left (card's own health report, {})",
            h.layout
        );
        v.push(if r == 0 {
            Finding::fail(text)
        } else if r <= u16::from(100 - WEAR_WARN_PERCENT) {
            Finding::warn(text)
        } else {
            Finding::info(text)
        });
    }
    v
}

/// Kernel signals: I/O errors, read-only state, filesystem errors.
pub fn kernel_findings(k: &KernelSignals) -> Vec<Finding> {
    let mut v = Vec::new();
    // ioerr_cnt also counts SMART pass-through commands that end with CHECK CONDITION by
    // design (smartctl's and lifeboat's own), so it is a fact, not a verdict.
    if let Some(n) = k.ioerr_cnt.filter(|n| *n > 0) {
        v.push(Finding::info(format!(
            "the SCSI layer counted {n} commands that did not end cleanly since boot (this \
             includes SMART pass-through status queries, so it is not an error count)"
        )));
    }
    if let Some(lines) = k.log_errors.as_ref().filter(|l| !l.is_empty()) {
        v.push(Finding::warn(format!(
            "the kernel logged {} I/O or filesystem error lines for this disk since boot, \
             e.g. \"{}\"",
            lines.len(),
            lines[0]
        )));
    }
    if let Some(n) = k.iotmo_cnt.filter(|n| *n > 0) {
        v.push(Finding::warn(format!(
            "the kernel counted {n} timed-out I/O requests on this disk since boot"
        )));
    }
    if k.read_only {
        v.push(Finding::warn(
            "the disk is read-only (write-protect switch, or a card that locked itself at end of life)",
        ));
    }
    for m in &k.read_only_mounts {
        v.push(Finding::warn(format!(
            "{} ({}) is mounted read-only on {}: if it was writable, the kernel remounted it after errors",
            m.device, m.fs_type, m.mount_point
        )));
    }
    for e in &k.ext4 {
        if let Some(n) = e.errors_count.filter(|n| *n > 0) {
            v.push(Finding::warn(format!(
                "the ext4 filesystem on {} has recorded {n} errors",
                e.partition
            )));
        }
        if let Some(kb) = e.lifetime_write_kbytes {
            v.push(Finding::info(format!(
                "{} has received {} of writes over its life",
                e.partition,
                crate::report::human_bytes(kb.saturating_mul(1024))
            )));
        }
    }
    for (name, n) in &k.mmc_errors {
        v.push(Finding::warn(format!(
            "the card's host controller counted {n} × \"{name}\""
        )));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::nvme::parse_smart_log;

    fn log(f: impl FnOnce(&mut [u8])) -> SmartLog {
        let mut b = vec![0u8; 512];
        b[1..3].copy_from_slice(&323u16.to_le_bytes());
        f(&mut b);
        parse_smart_log(&b).unwrap()
    }

    #[test]
    fn nvme_logs_weigh_in() {
        use crate::health::nvmelog::{fixtures, parse_error_log};
        let el = parse_error_log(&fixtures::error_log(4, &[(3, 0, 0x1003, 0, 0x02, 0)])).unwrap();
        let f = nvme_log_findings(Some(&el), None);
        assert_eq!(decide(&f, true), Verdict::Pass);
        assert_eq!(
            f[0].text,
            "1 entry in the NVMe error log; the latest (#3): invalid field in command (SCT 0h, \
             SC 02h) on queue 0, command 0x1003"
        );
        let el = parse_error_log(&fixtures::error_log(
            4,
            &[(3, 0, 0x1003, 0, 0x02, 0), (4, 1, 7, 2, 0x81, 1234)],
        ))
        .unwrap();
        let f = nvme_log_findings(Some(&el), None);
        assert_eq!(decide(&f, true), Verdict::Warn);
        assert!(f[0].text.starts_with("2 entries in the NVMe error log, 1 of them media errors; the latest (#4): unrecovered read error"), "{}", f[0].text);
        assert!(nvme_log_findings(Some(&parse_error_log(&[0u8; 64]).unwrap()), None).is_empty());
    }

    #[test]
    fn self_test_status_byte() {
        let f = self_test_status_finding(0x72).unwrap();
        assert_eq!(f.severity, Severity::Fail);
        assert_eq!(
            f.text,
            "self-test execution status: the last self-test failed (Completed: read failure)"
        );
        assert_eq!(
            self_test_status_finding(0xF7).unwrap().text,
            "self-test execution status: a self-test is running, 70% left"
        );
        for ok in [0x00, 0x17, 0x20, 0x11] {
            assert!(self_test_status_finding(ok).is_none(), "{ok:#x}");
        }
    }

    #[test]
    fn ata_logs_weigh_in() {
        use crate::health::atalog::{fixtures, parse_self_test_log, parse_summary_error_log};
        let st =
            |t: &[(u8, u8, u16, u32)]| parse_self_test_log(&fixtures::self_test_log(t)).unwrap();
        // Last extended test failed reading LBA 5000: fail.
        let f = ata_log_findings(None, Some(&st(&[(1, 0, 10, 0), (2, 0x72, 20, 5000)])));
        assert_eq!(decide(&f, true), Verdict::Fail);
        assert_eq!(
            f[0].text,
            "the last self-test (extended offline) failed: Completed: read failure at LBA 5000 \
             at power-on hour 20"
        );
        // An aborted test after the failure does not hide it; a pass after it does.
        let f = ata_log_findings(None, Some(&st(&[(2, 0x72, 20, 5000), (1, 0x10, 21, 0)])));
        assert_eq!(decide(&f, true), Verdict::Fail);
        let f = ata_log_findings(None, Some(&st(&[(2, 0x72, 20, 5000), (1, 0x00, 22, 0)])));
        assert_eq!(decide(&f, true), Verdict::Pass);
        assert!(
            f.iter()
                .any(|x| x.text == "1 earlier self-test(s) failed; a later one passed")
        );
        assert!(
            f.iter()
                .any(|x| x.text.contains("short offline) passed at power-on hour 22"))
        );
        // A test still running.
        let f = ata_log_findings(None, Some(&st(&[(2, 0xF3, 30, 0)])));
        assert_eq!(
            f[0].text,
            "a self-test (Extended offline) is running, 30% left"
        );
        // Errors logged: warn, with the count and the newest.
        let el = parse_summary_error_log(&fixtures::summary_error_log(&[(0x40, 99, 7, 0xC8)], 12))
            .unwrap();
        let f = ata_log_findings(Some(&el), None);
        assert_eq!(decide(&f, true), Verdict::Warn);
        assert_eq!(
            f[0].text,
            "the drive logged 12 ATA error(s); the latest: UNC at LBA 99 during READ DMA (0xc8), \
             power-on hour 7"
        );
        let el = parse_summary_error_log(&fixtures::summary_error_log(&[], 0)).unwrap();
        assert!(ata_log_findings(Some(&el), None).is_empty());
    }

    #[test]
    fn nvme_rules() {
        let ok = nvme_findings(&log(|_| {}), None);
        assert_eq!(decide(&ok, true), Verdict::Pass);
        let low_spare = nvme_findings(
            &log(|b| {
                b[3] = 8;
                b[4] = 10;
            }),
            None,
        );
        assert!(
            low_spare
                .iter()
                .any(|f| f.text == "spare 8% below threshold 10%")
        );
        assert_eq!(decide(&low_spare, true), Verdict::Fail);
        let crit = nvme_findings(&log(|b| b[0] = 0x04), None);
        assert_eq!(decide(&crit, true), Verdict::Fail);
        assert!(crit[0].text.contains("reliability degraded"));
        let worn = nvme_findings(&log(|b| b[5] = 93), None);
        assert_eq!(decide(&worn, true), Verdict::Warn);
        let dead = nvme_findings(&log(|b| b[5] = 120), None);
        assert_eq!(decide(&dead, true), Verdict::Fail);
        let media = nvme_findings(&log(|b| b[160] = 3), None);
        assert_eq!(decide(&media, true), Verdict::Warn);
    }

    #[test]
    fn unknown_without_data_but_kernel_signals_count() {
        assert_eq!(decide(&[], false), Verdict::Unknown);
        assert_eq!(decide(&[Finding::info("x")], false), Verdict::Unknown);
        let k = KernelSignals {
            ioerr_cnt: Some(5),
            iotmo_cnt: Some(7),
            ..Default::default()
        };
        let f = kernel_findings(&k);
        assert_eq!(f.len(), 2);
        assert_eq!(decide(&f, false), Verdict::Warn);
        // ioerr_cnt alone (pass-through status queries count there) is only a fact.
        let k = KernelSignals {
            ioerr_cnt: Some(5),
            log_errors: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(decide(&kernel_findings(&k), true), Verdict::Pass);
        let k = KernelSignals {
            log_errors: Some(vec!["I/O error, dev sda, sector 8192".into()]),
            ..Default::default()
        };
        let f = kernel_findings(&k);
        assert_eq!(decide(&f, true), Verdict::Warn);
        assert!(
            f[0].text.contains("1 I/O or filesystem error lines"),
            "{f:?}"
        );
    }

    #[test]
    fn emmc_rules() {
        let f = emmc_findings(Some(LifeTime(1)), Some(LifeTime(2)), Some(PreEol(1)));
        assert_eq!(decide(&f, true), Verdict::Pass);
        let f = emmc_findings(Some(LifeTime(1)), Some(LifeTime(0x0A)), Some(PreEol(1)));
        assert_eq!(decide(&f, true), Verdict::Warn);
        let f = emmc_findings(Some(LifeTime(1)), Some(LifeTime(0x0B)), Some(PreEol(1)));
        assert_eq!(decide(&f, true), Verdict::Fail);
        let f = emmc_findings(None, None, Some(PreEol(3)));
        assert_eq!(decide(&f, true), Verdict::Fail);
        assert!(!emmc_has_data(
            Some(LifeTime(0)),
            Some(LifeTime(0)),
            Some(PreEol(0))
        ));
        assert!(emmc_has_data(Some(LifeTime(1)), None, None));
    }

    #[test]
    fn sd_vendor_rules() {
        let h = |used: Option<u16>, rem: Option<u16>| VendorHealth {
            layout: "x",
            life_used_percent: used,
            life_remaining_percent: rem,
            fields: vec![],
        };
        assert_eq!(
            decide(&sd_vendor_findings(&h(Some(5), None)), true),
            Verdict::Pass
        );
        assert_eq!(
            decide(&sd_vendor_findings(&h(Some(95), None)), true),
            Verdict::Warn
        );
        assert_eq!(
            decide(&sd_vendor_findings(&h(Some(130), None)), true),
            Verdict::Fail
        );
        assert_eq!(
            decide(&sd_vendor_findings(&h(None, Some(0))), true),
            Verdict::Fail
        );
    }
}

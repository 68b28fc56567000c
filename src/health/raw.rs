//! Raw pages → report sections: the step shared by live reads ([`super::probe`]) and
//! offline decoding of saved pages (`lifeboat health --from-raw FILE --type KIND`). Each
//! `apply_*` function decodes pages with the pure decoders and adds the section, the
//! findings and any decoding problem to a [`DeviceReport`]. [`RawKind`] names the page
//! kinds `--raw-out` writes (`<disk>.<kind>.bin`) and `--from-raw` reads.

use super::verdict::{self, Finding};
use super::{
    AtaReport, AttributeReport, DeviceReport, EmmcReport, NvmeReport, SdReport, Source, ata,
    atalog, mmc, nvme, nvmelog, sat, sd,
};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Page kinds, as file suffixes and `--type` values for `--from-raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKind {
    AtaIdentify,
    AtaSmart,
    AtaThresholds,
    /// SMART summary error log (log address 0x01).
    AtaErrorLog,
    /// SMART self-test log (log address 0x06).
    AtaSelfTestLog,
    /// Extended comprehensive error log (GP log 0x03), whole pages.
    AtaExtErrorLog,
    /// Extended self-test log (GP log 0x07), whole pages.
    AtaExtSelfTestLog,
    /// libatasmart `skdump --save` blob (IDENTIFY, status, data, thresholds together).
    AtaBlob,
    NvmeIdentify,
    NvmeSmart,
    /// NVMe Error Information log (LID 0x01), any number of 64-byte entries.
    NvmeErrorLog,
    /// NVMe Device Self-test log (LID 0x06).
    NvmeSelfTestLog,
    ExtCsd,
    SdCid,
    SdCsd,
    SdScr,
    SdSsr,
    Cmd56(sd::Cmd56Method),
}

/// Every kind name `--from-raw` accepts.
pub const KIND_NAMES: &[&str] = &[
    "ata-identify",
    "ata-smart",
    "ata-thresholds",
    "ata-error-log",
    "ata-selftest-log",
    "ata-ext-error-log",
    "ata-ext-selftest-log",
    "ata-blob",
    "nvme-identify",
    "nvme-smart",
    "nvme-error-log",
    "nvme-selftest-log",
    "ext-csd",
    "sd-cid",
    "sd-csd",
    "sd-scr",
    "sd-ssr",
    "cmd56-sandisk",
    "cmd56-innodisk",
    "cmd56-adata",
    "cmd56-transcend",
    "cmd56-micron",
    "cmd56-swissbit",
    "cmd56-two-step",
];

impl RawKind {
    pub fn parse(s: &str) -> Option<RawKind> {
        use sd::Cmd56Method as M;
        Some(match s {
            "ata-identify" => RawKind::AtaIdentify,
            "ata-smart" => RawKind::AtaSmart,
            "ata-thresholds" => RawKind::AtaThresholds,
            "ata-error-log" => RawKind::AtaErrorLog,
            "ata-selftest-log" => RawKind::AtaSelfTestLog,
            "ata-ext-error-log" => RawKind::AtaExtErrorLog,
            "ata-ext-selftest-log" => RawKind::AtaExtSelfTestLog,
            "ata-blob" => RawKind::AtaBlob,
            "nvme-identify" => RawKind::NvmeIdentify,
            "nvme-smart" => RawKind::NvmeSmart,
            "nvme-error-log" => RawKind::NvmeErrorLog,
            "nvme-selftest-log" => RawKind::NvmeSelfTestLog,
            "ext-csd" => RawKind::ExtCsd,
            "sd-cid" => RawKind::SdCid,
            "sd-csd" => RawKind::SdCsd,
            "sd-scr" => RawKind::SdScr,
            "sd-ssr" => RawKind::SdSsr,
            "cmd56-sandisk" => RawKind::Cmd56(M::Sandisk),
            "cmd56-innodisk" => RawKind::Cmd56(M::Innodisk),
            "cmd56-adata" => RawKind::Cmd56(M::Adata),
            "cmd56-transcend" => RawKind::Cmd56(M::Transcend),
            "cmd56-micron" => RawKind::Cmd56(M::Micron),
            "cmd56-swissbit" => RawKind::Cmd56(M::Swissbit),
            "cmd56-two-step" => RawKind::Cmd56(M::TwoStep),
            _ => return None,
        })
    }
    pub fn name(self) -> String {
        match self {
            RawKind::AtaIdentify => "ata-identify".into(),
            RawKind::AtaSmart => "ata-smart".into(),
            RawKind::AtaThresholds => "ata-thresholds".into(),
            RawKind::AtaErrorLog => "ata-error-log".into(),
            RawKind::AtaSelfTestLog => "ata-selftest-log".into(),
            RawKind::AtaExtErrorLog => "ata-ext-error-log".into(),
            RawKind::AtaExtSelfTestLog => "ata-ext-selftest-log".into(),
            RawKind::AtaBlob => "ata-blob".into(),
            RawKind::NvmeIdentify => "nvme-identify".into(),
            RawKind::NvmeSmart => "nvme-smart".into(),
            RawKind::NvmeErrorLog => "nvme-error-log".into(),
            RawKind::NvmeSelfTestLog => "nvme-selftest-log".into(),
            RawKind::ExtCsd => "ext-csd".into(),
            RawKind::SdCid => "sd-cid".into(),
            RawKind::SdCsd => "sd-csd".into(),
            RawKind::SdScr => "sd-scr".into(),
            RawKind::SdSsr => "sd-ssr".into(),
            RawKind::Cmd56(m) => format!("cmd56-{}", m.name()),
        }
    }
}

/// Register files may be saved as bytes or as sysfs hex text: accept both.
fn register_bytes(b: &[u8], len: usize) -> Result<Vec<u8>> {
    if b.len() == len {
        return Ok(b.to_vec());
    }
    let text = std::str::from_utf8(b).context("neither the register bytes nor hex text")?;
    let v = sd::hex_bytes(text)?;
    if v.len() != len {
        bail!("{} bytes of hex, expected {len}", v.len());
    }
    Ok(v)
}

/// Decode ATA pages into the report: any of IDENTIFY, SMART data, thresholds, status.
pub fn apply_ata(
    r: &mut DeviceReport,
    identify: Option<&[u8]>,
    data: Option<&[u8]>,
    thresholds: Option<&[u8]>,
    status: Option<sat::SmartStatus>,
    via: &str,
) {
    let mut a = AtaReport {
        via: via.to_string(),
        smart_status: status,
        ..Default::default()
    };
    let mut model = r.model.clone().unwrap_or_default();
    let mut firmware = String::new();
    if let Some(b) = identify {
        match ata::parse_identify(b) {
            Ok(id) => {
                model = id.model.clone();
                firmware = id.firmware.clone();
                r.model = Some(id.model.clone());
                r.serial = Some(id.serial.clone());
                r.firmware = Some(id.firmware.clone());
                a.smart_supported = Some(id.smart_supported);
                a.smart_enabled = Some(id.smart_enabled);
                a.identify = Some(id);
            }
            Err(e) => r.problems.push(format!("{}: {e:#}", r.device)),
        }
    }
    let q = ata::quirks(&model, &firmware);
    a.quirks = q;
    let th = thresholds.and_then(|b| match ata::parse_thresholds(b) {
        Ok(t) => Some(t),
        Err(e) => {
            r.problems.push(format!("{}: {e:#}", r.device));
            None
        }
    });
    a.thresholds_checksum_ok = th.as_ref().map(|t| t.checksum_ok);
    let attrs = match data.map(ata::parse_smart_data) {
        Some(Ok(d)) => {
            if !d.checksum_ok {
                r.problems.push(format!(
                    "{}: SMART data checksum is wrong (values shown as read)",
                    r.device
                ));
            }
            r.reasons
                .extend(verdict::self_test_status_finding(d.self_test_status));
            a.smart_data_revision = Some(d.revision);
            a.smart_data_checksum_ok = Some(d.checksum_ok);
            a.offline_status = Some(d.offline_status);
            a.self_test_status = Some(d.self_test_status);
            ata::merge(&d, th.as_ref())
        }
        Some(Err(e)) => {
            r.problems.push(format!("{}: {e:#}", r.device));
            Vec::new()
        }
        None => Vec::new(),
    };
    a.attributes = attrs.iter().map(AttributeReport::from).collect();
    a.bad_sectors = ata::bad_sectors(&attrs, q);
    a.power_on_hours = ata::power_on_hours(&attrs, q);
    a.temperature_c = ata::temperature_c(&attrs);
    a.wear = ata::wear_indicator(&model, &attrs);
    a.libatasmart_overall = verdict::ata_overall(&attrs, status, r.size, q);
    if !attrs.is_empty() || status.is_some() {
        r.has_health_data = true;
    }
    r.reasons
        .extend(verdict::ata_findings(&model, &attrs, status, q));
    if status.is_none() && !attrs.is_empty() {
        r.reasons.push(Finding::info(
            "SMART RETURN STATUS not available: the verdict comes from the attributes alone",
        ));
    }
    if let Some(h) = a.power_on_hours {
        r.reasons
            .push(Finding::info(format!("powered on for {h} hours")));
    }
    r.ata = Some(a);
}

/// The ATA log pages read from one drive (any may be missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct AtaLogs<'a> {
    /// SMART summary error log (0x01).
    pub error_log: Option<&'a [u8]>,
    /// SMART self-test log (0x06).
    pub self_test: Option<&'a [u8]>,
    /// Extended comprehensive error log (GP 0x03), whole pages.
    pub ext_error_log: Option<&'a [u8]>,
    /// Extended self-test log (GP 0x07), whole pages.
    pub ext_self_test: Option<&'a [u8]>,
}

/// Decode the ATA error and self-test logs into the ATA section, with their findings
/// (from the extended log of each kind when there is one: it has 48-bit LBAs and more
/// entries; else from the SMART log).
pub fn apply_ata_logs(r: &mut DeviceReport, logs: AtaLogs) {
    let dev = r.device.clone();
    let mut problems = Vec::new();
    let mut decode = |b: Option<&[u8]>, f: fn(&[u8]) -> Result<atalog::ErrorLog>| {
        b.and_then(|b| match f(b) {
            Ok(l) => Some(l),
            Err(e) => {
                problems.push(format!("{dev}: {e:#}"));
                None
            }
        })
    };
    let el = decode(logs.error_log, atalog::parse_summary_error_log);
    let xel = decode(logs.ext_error_log, atalog::parse_ext_error_log);
    let mut decode_st = |b: Option<&[u8]>, f: fn(&[u8]) -> Result<atalog::SelfTestLog>| {
        b.and_then(|b| match f(b) {
            Ok(l) => Some(l),
            Err(e) => {
                problems.push(format!("{dev}: {e:#}"));
                None
            }
        })
    };
    let st = decode_st(logs.self_test, atalog::parse_self_test_log);
    let xst = decode_st(logs.ext_self_test, atalog::parse_ext_self_test_log);
    for (what, ok) in [
        ("SMART error log", el.as_ref().and_then(|l| l.checksum_ok)),
        (
            "SMART self-test log",
            st.as_ref().and_then(|l| l.checksum_ok),
        ),
        (
            "extended comprehensive error log",
            xel.as_ref().and_then(|l| l.checksum_ok),
        ),
    ] {
        if ok == Some(false) {
            problems.push(format!(
                "{dev}: {what} checksum is wrong (entries shown as read)"
            ));
        }
    }
    if el.is_some() || st.is_some() || xel.is_some() || xst.is_some() {
        r.has_health_data = true;
    }
    if st.is_some() || xst.is_some() {
        // The log says more (which test, when, where) than the SMART data's status byte.
        r.reasons
            .retain(|f| !f.text.starts_with(verdict::SELF_TEST_STATUS_PREFIX));
    }
    r.reasons.extend(verdict::ata_log_findings(
        xel.as_ref().or(el.as_ref()),
        xst.as_ref().or(st.as_ref()),
    ));
    r.problems.extend(problems);
    let a = r.ata.get_or_insert_with(|| AtaReport {
        via: "file".into(),
        ..Default::default()
    });
    for (slot, v) in [(&mut a.error_log, el), (&mut a.ext_error_log, xel)] {
        if v.is_some() {
            *slot = v;
        }
    }
    for (slot, v) in [(&mut a.self_test_log, st), (&mut a.ext_self_test_log, xst)] {
        if v.is_some() {
            *slot = v;
        }
    }
}

/// Decode NVMe pages into the report.
pub fn apply_nvme(r: &mut DeviceReport, identify: Option<&[u8]>, log: Option<&[u8]>, via: &str) {
    let mut n = NvmeReport {
        via: via.to_string(),
        ..Default::default()
    };
    if let Some(b) = identify {
        match nvme::parse_identify_controller(b) {
            Ok(id) => {
                r.model = Some(id.model.clone());
                r.serial = Some(id.serial.clone());
                r.firmware = Some(id.firmware.clone());
                n.identify = Some(id);
            }
            Err(e) => r.problems.push(format!("{}: {e:#}", r.device)),
        }
    }
    if let Some(b) = log {
        match nvme::parse_smart_log(b) {
            Ok(l) => {
                r.has_health_data = true;
                n.temperature_c = Some(l.temperature_c());
                n.bytes_written = Some(l.bytes_written().to_string());
                n.bytes_read = Some(l.bytes_read().to_string());
                n.passed = Some(l.critical_warning == 0);
                r.reasons
                    .extend(verdict::nvme_findings(&l, n.identify.as_ref()));
                r.reasons.push(Finding::info(format!(
                    "{} written by the host, powered on for {} hours, {} unsafe shutdowns",
                    human_u128(l.bytes_written()),
                    l.power_on_hours,
                    l.unsafe_shutdowns
                )));
                n.smart_log = Some(l);
            }
            Err(e) => r.problems.push(format!("{}: {e:#}", r.device)),
        }
    }
    r.nvme = Some(n);
}

/// Decode the NVMe error information log and self-test log into the NVMe section, with
/// their findings.
pub fn apply_nvme_logs(r: &mut DeviceReport, error_log: Option<&[u8]>, self_test: Option<&[u8]>) {
    let dev = r.device.clone();
    let el = error_log.and_then(|b| match nvmelog::parse_error_log(b) {
        Ok(l) => Some(l),
        Err(e) => {
            r.problems.push(format!("{dev}: {e:#}"));
            None
        }
    });
    let st = self_test.and_then(|b| match nvmelog::parse_self_test_log(b) {
        Ok(l) => Some(l),
        Err(e) => {
            r.problems.push(format!("{dev}: {e:#}"));
            None
        }
    });
    if st.as_ref().is_some_and(|s| !s.results.is_empty()) {
        r.has_health_data = true;
    }
    r.reasons
        .extend(verdict::nvme_log_findings(el.as_ref(), st.as_ref()));
    let n = r.nvme.get_or_insert_with(|| NvmeReport {
        via: "file".into(),
        ..Default::default()
    });
    if el.is_some() {
        n.error_log = el;
    }
    if st.is_some() {
        n.self_test_log = st;
    }
}

/// An NVMe controller's hwmon composite-temperature sensor, millidegrees Celsius.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hwmon {
    pub millicelsius: i64,
    /// `temp1_max` (the drive's warning threshold) and `temp1_crit` (critical).
    pub max_millicelsius: Option<i64>,
    pub crit_millicelsius: Option<i64>,
}

/// Whole degrees Celsius, rounded half up (49850 → 50, as 323 K − 273).
fn whole_c(m: i64) -> i64 {
    (m + 500).div_euclid(1000)
}

/// Add the hwmon temperature to the NVMe section. When the SMART log gave none (no
/// privileges, sysfs only), it becomes the reported temperature, with the same warning
/// limits the SMART findings use.
pub fn apply_nvme_hwmon(r: &mut DeviceReport, hw: Option<Hwmon>) {
    let Some(hw) = hw else {
        if let Some(n) = r.nvme.as_mut()
            && n.temperature_c.is_some()
        {
            n.temperature_source = Some("smart_log".into());
        }
        return;
    };
    let n = r.nvme.get_or_insert_with(|| NvmeReport {
        via: "hwmon".into(),
        ..Default::default()
    });
    n.hwmon_temp_millicelsius = Some(hw.millicelsius);
    if n.temperature_c.is_some() {
        n.temperature_source = Some("smart_log".into());
        return;
    }
    let t = whole_c(hw.millicelsius);
    n.temperature_c = i32::try_from(t).ok();
    n.temperature_source = Some("hwmon".into());
    let limit = |m: Option<i64>| m.filter(|x| *x > 0 && hw.millicelsius >= *x).map(whole_c);
    if let Some(c) = limit(hw.crit_millicelsius) {
        r.reasons.push(Finding::warn(format!(
            "temperature {t} °C at or above the critical limit {c} °C (kernel hwmon sensor)"
        )));
    } else if let Some(w) = limit(hw.max_millicelsius) {
        r.reasons.push(Finding::warn(format!(
            "temperature {t} °C at or above the warning limit {w} °C (kernel hwmon sensor)"
        )));
    } else {
        r.reasons.push(Finding::info(format!(
            "temperature {t} °C from the kernel's hwmon sensor (the SMART log was not read)"
        )));
    }
}

/// A u128 byte count in binary units.
pub fn human_u128(n: u128) -> String {
    match u64::try_from(n) {
        Ok(v) => crate::report::human_bytes(v),
        Err(_) => format!("{n} B"),
    }
}

/// Decode EXT_CSD into the eMMC section (fresh values, preferred over sysfs).
pub fn apply_ext_csd(r: &mut DeviceReport, b: &[u8]) {
    match mmc::parse_ext_csd(b) {
        Ok(e) => {
            let em = r.emmc.get_or_insert_with(EmmcReport::default);
            em.source = Some("ext_csd".into());
            em.ext_csd_revision = Some(e.revision);
            em.life_time_a = e.life_a.map(|x| x.0);
            em.life_time_b = e.life_b.map(|x| x.0);
            em.pre_eol = e.pre_eol.map(|x| x.0);
            em.ext_csd = Some(e);
        }
        Err(e) => r.problems.push(format!("{}: {e:#}", r.device)),
    }
}

/// Findings and texts of the eMMC section, once its values are final.
pub fn finish_emmc(r: &mut DeviceReport) {
    let Some(em) = r.emmc.as_mut() else { return };
    let (a, b, e) = (
        em.life_time_a.map(mmc::LifeTime),
        em.life_time_b.map(mmc::LifeTime),
        em.pre_eol.map(mmc::PreEol),
    );
    em.life_time_a_text = a.map(|x| x.describe());
    em.life_time_b_text = b.map(|x| x.describe());
    em.pre_eol_text = e.map(|x| x.describe().to_string());
    if verdict::emmc_has_data(a, b, e) {
        r.has_health_data = true;
    }
    r.reasons.extend(verdict::emmc_findings(a, b, e));
}

/// Decode a CMD56 answer into the SD section.
pub fn apply_cmd56(r: &mut DeviceReport, m: sd::Cmd56Method, b: &[u8]) {
    let s = r.sd.get_or_insert_with(SdReport::default);
    s.cmd56_method = Some(m);
    match sd::decode_cmd56(m, b) {
        Ok(h) => {
            s.cmd56_result = Some(format!("health data ({} layout)", h.layout));
            r.has_health_data = true;
            r.reasons.extend(verdict::sd_vendor_findings(&h));
            s.vendor_health = Some(h);
        }
        Err(e) => {
            s.cmd56_result = Some(format!("{e:#}"));
            r.reasons.push(Finding::info(format!(
                "CMD56 {} health read: {e:#}",
                m.name()
            )));
        }
    }
}

/// Decode SD registers (any of CID, CSD, SCR, SSR) into the SD section.
pub fn apply_sd_registers(
    r: &mut DeviceReport,
    cid: Option<&[u8]>,
    csd: Option<&[u8]>,
    scr: Option<&[u8]>,
    ssr: Option<(&[u8], &str)>,
    this_year: u16,
) {
    let dev = r.device.clone();
    let size = r.size;
    let mut problems = Vec::new();
    let s = r.sd.get_or_insert_with(SdReport::default);
    if let Some(b) = cid {
        match sd::parse_cid(b) {
            Ok(c) => {
                s.fake_indicators = sd::fake_indicators(&c, this_year);
                s.cid = Some(c);
            }
            Err(e) => problems.push(format!("{dev}: {e:#}")),
        }
    }
    if let Some(b) = csd {
        match sd::parse_csd(b) {
            Ok(c) => {
                s.csd_matches_size = size.map(|z| z == c.capacity_bytes);
                s.csd = Some(c);
            }
            Err(e) => problems.push(format!("{dev}: {e:#}")),
        }
    }
    if let Some(b) = scr {
        match sd::parse_scr(b) {
            Ok(c) => s.scr = Some(c),
            Err(e) => problems.push(format!("{dev}: {e:#}")),
        }
    }
    if let Some((b, from)) = ssr {
        match sd::parse_ssr(b) {
            Ok(c) => {
                s.ssr = Some(c);
                s.ssr_source = Some(from.to_string());
            }
            Err(e) => problems.push(format!("{dev}: {e:#}")),
        }
    }
    let mut findings = Vec::new();
    for f in &s.fake_indicators {
        findings.push(Finding::warn(format!(
            "possible counterfeit or no-name card: {f} (only a full write test such as f3probe can tell)"
        )));
    }
    if s.csd_matches_size == Some(false)
        && let (Some(c), Some(z)) = (&s.csd, size)
    {
        findings.push(Finding::warn(format!(
            "the card's CSD says {} bytes but the kernel sees {z}",
            c.capacity_bytes
        )));
    }
    r.problems.extend(problems);
    r.reasons.extend(findings);
}

/// Decode one saved page (`--from-raw FILE --type KIND`) into a report.
pub fn from_raw(path: &Path, kind_name: &str, this_year: u16) -> Result<DeviceReport> {
    let Some(kind) = RawKind::parse(kind_name) else {
        bail!(
            "--type {kind_name:?} is not a page kind; with --from-raw use one of: {}",
            KIND_NAMES.join(", ")
        );
    };
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let source = match kind {
        RawKind::AtaIdentify
        | RawKind::AtaSmart
        | RawKind::AtaThresholds
        | RawKind::AtaErrorLog
        | RawKind::AtaSelfTestLog
        | RawKind::AtaExtErrorLog
        | RawKind::AtaExtSelfTestLog
        | RawKind::AtaBlob => Source::Sat,
        RawKind::NvmeIdentify
        | RawKind::NvmeSmart
        | RawKind::NvmeErrorLog
        | RawKind::NvmeSelfTestLog => Source::Nvme,
        RawKind::ExtCsd => Source::Emmc,
        _ => Source::Sd,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut r = DeviceReport::new(path.display().to_string(), name, source);
    let strict = |what: &str, len: usize| -> Result<()> {
        if b.len() != len {
            bail!(
                "{}: {} bytes, but a {what} page is {len} bytes",
                path.display(),
                b.len()
            );
        }
        Ok(())
    };
    match kind {
        RawKind::AtaIdentify => {
            strict("ATA IDENTIFY", 512)?;
            apply_ata(&mut r, Some(&b), None, None, None, "file")
        }
        RawKind::AtaSmart => {
            strict("SMART READ DATA", 512)?;
            apply_ata(&mut r, None, Some(&b), None, None, "file")
        }
        RawKind::AtaThresholds => {
            strict("SMART READ THRESHOLDS", 512)?;
            let t = ata::parse_thresholds(&b)?;
            r.reasons.push(Finding::info(format!(
                "{} thresholds: {}",
                t.entries.len(),
                t.entries
                    .iter()
                    .map(|(id, th)| format!("{id}={th}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        RawKind::AtaErrorLog => {
            strict("SMART error log", 512)?;
            apply_ata_logs(
                &mut r,
                AtaLogs {
                    error_log: Some(&b),
                    ..Default::default()
                },
            )
        }
        RawKind::AtaSelfTestLog => {
            strict("SMART self-test log", 512)?;
            apply_ata_logs(
                &mut r,
                AtaLogs {
                    self_test: Some(&b),
                    ..Default::default()
                },
            )
        }
        RawKind::AtaExtErrorLog | RawKind::AtaExtSelfTestLog => {
            if b.is_empty() || b.len() % 512 != 0 {
                bail!(
                    "{}: {} bytes, but an extended log is whole 512-byte pages",
                    path.display(),
                    b.len()
                );
            }
            let logs = if kind == RawKind::AtaExtErrorLog {
                AtaLogs {
                    ext_error_log: Some(&b),
                    ..Default::default()
                }
            } else {
                AtaLogs {
                    ext_self_test: Some(&b),
                    ..Default::default()
                }
            };
            apply_ata_logs(&mut r, logs)
        }
        RawKind::AtaBlob => {
            let blob = ata::parse_blob(&b).with_context(|| path.display().to_string())?;
            let status = blob.status_good.map(|g| {
                if g {
                    sat::SmartStatus::Good
                } else {
                    sat::SmartStatus::Failing
                }
            });
            apply_ata(
                &mut r,
                blob.identify.as_deref(),
                blob.smart_data.as_deref(),
                blob.thresholds.as_deref(),
                status,
                "blob",
            );
        }
        RawKind::NvmeIdentify => {
            strict("NVMe Identify Controller", nvme::IDENTIFY_LEN)?;
            apply_nvme(&mut r, Some(&b), None, "file")
        }
        RawKind::NvmeSmart => {
            strict("NVMe SMART log", nvme::SMART_LOG_LEN)?;
            apply_nvme(&mut r, None, Some(&b), "file")
        }
        RawKind::NvmeErrorLog => {
            if b.is_empty() || b.len() % nvmelog::ERROR_ENTRY_LEN != 0 {
                bail!(
                    "{}: {} bytes, but an NVMe error log is whole 64-byte entries",
                    path.display(),
                    b.len()
                );
            }
            apply_nvme_logs(&mut r, Some(&b), None)
        }
        RawKind::NvmeSelfTestLog => {
            strict("NVMe device self-test log", nvmelog::SELF_TEST_LOG_LEN)?;
            apply_nvme_logs(&mut r, None, Some(&b))
        }
        RawKind::ExtCsd => {
            let e = if b.len() == mmc::EXT_CSD_LEN {
                b.clone()
            } else {
                let t = std::str::from_utf8(&b)
                    .with_context(|| format!("{}: not EXT_CSD bytes or hex", path.display()))?;
                mmc::parse_ext_csd_hex(t).with_context(|| path.display().to_string())?
            };
            apply_ext_csd(&mut r, &e);
            finish_emmc(&mut r);
        }
        RawKind::SdCid => {
            let v = register_bytes(&b, 16).with_context(|| path.display().to_string())?;
            apply_sd_registers(&mut r, Some(&v), None, None, None, this_year)
        }
        RawKind::SdCsd => {
            let v = register_bytes(&b, 16).with_context(|| path.display().to_string())?;
            apply_sd_registers(&mut r, None, Some(&v), None, None, this_year)
        }
        RawKind::SdScr => {
            let v = register_bytes(&b, 8).with_context(|| path.display().to_string())?;
            apply_sd_registers(&mut r, None, None, Some(&v), None, this_year)
        }
        RawKind::SdSsr => {
            let v = register_bytes(&b, 64).with_context(|| path.display().to_string())?;
            apply_sd_registers(&mut r, None, None, None, Some((&v, "file")), this_year)
        }
        RawKind::Cmd56(m) => {
            strict("CMD56", 512)?;
            apply_cmd56(&mut r, m, &b)
        }
    }
    r.finish();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in KIND_NAMES {
            assert_eq!(RawKind::parse(k).unwrap().name(), *k);
        }
        assert!(RawKind::parse("sat").is_none());
    }

    #[test]
    fn from_raw_refuses_wrong_sizes_and_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        std::fs::write(&p, [0u8; 100]).unwrap();
        let e = from_raw(&p, "nvme-smart", 2026).unwrap_err();
        assert!(e.to_string().contains("512 bytes"), "{e}");
        let e = from_raw(&p, "sat", 2026).unwrap_err();
        assert!(e.to_string().contains("not a page kind"), "{e}");
        let e = from_raw(&dir.path().join("missing"), "nvme-smart", 2026).unwrap_err();
        assert!(format!("{e:#}").contains("missing"), "{e:#}");
    }

    #[test]
    fn sd_registers_as_sysfs_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cid");
        std::fs::write(&p, "aa585951454d552101deadbeef006200\n").unwrap();
        let r = from_raw(&p, "sd-cid", 2026).unwrap();
        assert_eq!(r.sd.unwrap().cid.unwrap().name, "QEMU!");
        assert_eq!(r.verdict, verdict::Verdict::Unknown);
    }
}

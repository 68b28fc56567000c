//! Reading one disk's health: picks the source from the transport (or `--type`), reads
//! sysfs under the [`SysRoot`], sends the read-only pass-through commands through
//! [`crate::sys`]'s safe wrappers (`SG_IO`, `NVME_IOCTL_ADMIN_CMD`, `MMC_IOC_CMD`), and
//! builds a [`DeviceReport`] with [`super::raw`]'s decoders.
//!
//! Safety rules kept here: the device is opened read-only; before any MMC command the
//! card type is read again (CMD8 only to an eMMC, never to an SD card, where it means
//! SEND_IF_COND); CMD56 goes only to cards whose CID passes the identity gate or whose
//! method the user named, and the write-then-read variant only with `--cmd56-write`;
//! unknown USB bridges get no pass-through at all. Every command is sent at most once.

use super::raw::{self, RawKind};
use super::usb_bridges::{self, Bridge};
use super::verdict::{self, Finding};
use super::{DeviceReport, EmmcReport, Source, kernel, mmc, nvme, nvmelog, sat, sd};
use crate::device::{Disk, SysRoot, Transport};
use crate::sys::mmc as mmcio;
use crate::sys::nvme as nvmeio;
use crate::sys::sg::{self, DataDir};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// SG_IO timeout for ATA commands.
const SG_TIMEOUT_MS: u32 = 20_000;

/// What the user allowed and asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--type`: force a source, as smartctl `-d` does.
    pub source: Option<Source>,
    /// Open devices and send pass-through commands (false: sysfs only, as for a fixture
    /// root or `--sysfs-only`).
    pub ioctls: bool,
    /// `--cmd56 METHOD`: ask an SD card with this vendor method even if its CID is not
    /// one lifeboat knows.
    pub cmd56: Option<sd::Cmd56Method>,
    /// `--cmd56-write`: allow the two-step method's write half.
    pub cmd56_write: bool,
    /// Keep raw pages in the report (`--raw-out`).
    pub keep_raw: bool,
    /// The current year, for impossible-date checks on SD cards.
    pub this_year: u16,
}

fn read_attr(p: &Path) -> Option<String> {
    fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The source a transport implies, with a note for the ones without one.
fn source_for(disk: &Disk) -> (Source, Option<Bridge>, Option<String>) {
    match &disk.transport {
        Transport::Sd => (Source::Sd, None, None),
        Transport::Emmc => (Source::Emmc, None, None),
        Transport::Nvme => (Source::Nvme, None, None),
        Transport::Sata => (Source::Sat, None, None),
        Transport::Usb {
            vendor_id,
            product_id,
            ..
        } => match usb_bridges::lookup(*vendor_id, *product_id) {
            Some((b, desc)) => {
                let s = match b {
                    Bridge::Sat | Bridge::SatNoStatus => Source::Sat,
                    Bridge::Sat12 => Source::Sat12,
                    Bridge::SntJmicron => Source::SntJmicron,
                    Bridge::SntAsmedia => Source::SntAsmedia,
                    Bridge::SntRealtek => Source::SntRealtek,
                    Bridge::Unsupported(_) | Bridge::Risky(_) => Source::None,
                };
                (s, Some(b), Some(desc.to_string()))
            }
            None => (Source::None, None, None),
        },
        _ => (Source::None, None, None),
    }
}

/// Words for a device without a health source.
fn no_source_reason(disk: &Disk, bridge: Option<Bridge>) -> String {
    match (&disk.transport, bridge) {
        (_, Some(Bridge::Unsupported(why))) | (_, Some(Bridge::Risky(why))) => {
            format!("no wear data: the USB bridge {why}; lifeboat sends it nothing")
        }
        (
            Transport::Usb {
                vendor_id,
                product_id,
                product,
                ..
            },
            None,
        ) => {
            let text = format!(
                "{} {}",
                disk.model.as_deref().unwrap_or(""),
                product.as_deref().unwrap_or("")
            )
            .to_ascii_lowercase();
            if ["sd", "mmc", "card", "reader", "multi"]
                .iter()
                .any(|w| text.contains(w))
            {
                "no wear data: SD card in a USB reader (card commands cannot pass through \
                 it) — run `lifeboat image` now if it holds your only copy"
                    .into()
            } else {
                format!(
                    "no wear data: unknown USB bridge {vendor_id:04x}:{product_id:04x}; \
                     lifeboat sends no pass-through to bridges it does not know \
                     (try --type sat if you know it is a SATA bridge)"
                )
            }
        }
        (Transport::Virtio, _) => {
            "no wear data: virtio disk of a virtual machine (the host's storage wears, not this)"
                .into()
        }
        (Transport::Loop, _) => {
            "no wear data: loop device over a file (check the disk that holds the file)".into()
        }
        (Transport::Scsi, _) => {
            "no wear data: SCSI disk (lifeboat reads ATA, NVMe and MMC health only)".into()
        }
        (Transport::MmcUnknown { card_type }, _) => format!(
            "no wear data: MMC card of type {} has no health registers lifeboat knows",
            card_type.as_deref().unwrap_or("unknown")
        ),
        _ => "no wear data: lifeboat does not know how to ask this device".into(),
    }
}

/// Probe one disk.
pub fn probe(root: &SysRoot, disk: &Disk, o: &Options) -> DeviceReport {
    let (auto, bridge, bridge_desc) = source_for(disk);
    let source = o.source.unwrap_or(auto);
    let mut r = DeviceReport::new(disk.path.display().to_string(), disk.name.clone(), source);
    r.transport = Some(disk.transport.clone());
    r.size = Some(disk.size);
    r.model = disk.model.clone();
    r.serial = disk.serial.clone();
    r.system_disk = disk.system_disk;
    r.bridge = bridge_desc.map(|d| match bridge {
        Some(b) => format!("{d} ({})", b.name()),
        None => d,
    });
    let k = kernel::gather(root, disk);
    r.reasons.extend(verdict::kernel_findings(&k));
    r.kernel = Some(k);

    match source {
        Source::None => {
            let why = if o.source == Some(Source::None) {
                "no wear data: --type none (kernel signals only)".to_string()
            } else {
                no_source_reason(disk, bridge)
            };
            r.reasons.push(Finding::info(why));
        }
        Source::Sd => probe_sd(root, disk, o, &mut r),
        Source::Emmc => probe_emmc(root, disk, o, &mut r),
        Source::Nvme => probe_nvme(root, disk, o, &mut r),
        Source::Sat | Source::Sat12 => probe_sat(
            root,
            disk,
            o,
            &mut r,
            source,
            bridge == Some(Bridge::SatNoStatus),
        ),
        Source::SntJmicron | Source::SntAsmedia | Source::SntRealtek => {
            probe_snt(root, disk, o, &mut r, source)
        }
    }
    if !o.keep_raw {
        r.raw_pages.clear();
    }
    r.finish();
    r
}

/// Open the disk read-only for pass-through, after checking that the node is the disk
/// sysfs described. Problems are recorded on the report.
fn open_disk(root: &SysRoot, disk: &Disk, o: &Options, r: &mut DeviceReport) -> Option<File> {
    if !o.ioctls {
        r.reasons.push(Finding::info(
            "device not opened (sysfs only): pass-through data not read",
        ));
        return None;
    }
    let path = &disk.path;
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            r.needs_privileges = true;
            r.problems.push(format!(
                "{}: opening the device needs root (run `sudo lifeboat health`): {e}",
                path.display()
            ));
            return None;
        }
        Err(e) => {
            r.problems
                .push(format!("{}: cannot open the device: {e}", path.display()));
            return None;
        }
    };
    if root.is_host()
        && let (Ok(want), Ok(got)) = (
            crate::device::discover::disk_devnum(root, &disk.name),
            crate::sys::file_device_number(&f),
        )
        && want != got
    {
        r.problems.push(format!(
            "{}: the device node is {got}, but sysfs says {} is {want}; not sending commands",
            path.display(),
            disk.name
        ));
        return None;
    }
    Some(f)
}

/// Record an ioctl failure on the report, flagging missing privileges.
fn ioctl_problem(r: &mut DeviceReport, what: &str, e: &io::Error) {
    if e.kind() == io::ErrorKind::PermissionDenied {
        r.needs_privileges = true;
    }
    r.problems.push(format!("{}: {what}: {e}", r.device));
}

// ------------------------------------------------------------------------------------------
// SATA / USB-SATA

/// Send one ATA command, trying PT(16) then PT(12) unless the mode is already settled.
fn ata_cmd(
    f: &File,
    cmd: &sat::AtaCommand,
    buf: Option<&mut [u8]>,
    use12: &mut bool,
) -> io::Result<sat::PtResult> {
    let mut local = buf;
    loop {
        let dir = match local.as_deref_mut() {
            Some(b) => DataDir::FromDevice(b),
            None => DataDir::None,
        };
        let out = if *use12 {
            sg::sg_io(f, &cmd.cdb12(), dir, SG_TIMEOUT_MS)?
        } else {
            sg::sg_io(f, &cmd.cdb16(), dir, SG_TIMEOUT_MS)?
        };
        let res = sat::judge(&out);
        if matches!(res, sat::PtResult::Unsupported(_)) && !*use12 {
            *use12 = true;
            continue;
        }
        return Ok(res);
    }
}

fn probe_sat(
    root: &SysRoot,
    disk: &Disk,
    o: &Options,
    r: &mut DeviceReport,
    source: Source,
    no_status: bool,
) {
    let Some(f) = open_disk(root, disk, o, r) else {
        return;
    };
    let mut use12 = source == Source::Sat12;
    let mut id = vec![0u8; 512];
    match ata_cmd(&f, &sat::AtaCommand::IDENTIFY, Some(&mut id), &mut use12) {
        Ok(sat::PtResult::Ok(_)) => {}
        Ok(sat::PtResult::Unsupported(s)) => {
            r.problems.push(format!(
                "{}: the device does not take ATA PASS-THROUGH (16 or 12): {}",
                r.device,
                s.describe()
            ));
            r.reasons.push(Finding::info(
                "no wear data: the disk or its USB bridge does not pass ATA commands",
            ));
            return;
        }
        Ok(other) => {
            r.problems
                .push(format!("{}: ATA IDENTIFY failed: {other:?}", r.device));
            return;
        }
        Err(e) => {
            ioctl_problem(r, "ATA IDENTIFY", &e);
            return;
        }
    }
    let via = if use12 { "sat12" } else { "sat16" };
    r.raw_pages.push((RawKind::AtaIdentify.name(), id.clone()));
    let parsed = super::ata::parse_identify(&id).ok();
    if let Some(p) = &parsed
        && !p.smart_supported
    {
        raw::apply_ata(r, Some(&id), None, None, None, via);
        r.reasons.push(Finding::info(
            "no wear data: the drive does not support SMART",
        ));
        return;
    }
    if let Some(p) = &parsed
        && !p.smart_enabled
    {
        raw::apply_ata(r, Some(&id), None, None, None, via);
        r.problems.push(format!(
            "{}: SMART is disabled on the drive (lifeboat does not enable it: that changes a \
             drive setting; `smartctl -s on` does)",
            r.device
        ));
        return;
    }
    let mut read_page = |cmd: &sat::AtaCommand, what: &str, kind: RawKind, r: &mut DeviceReport| {
        let mut b = vec![0u8; 512];
        match ata_cmd(&f, cmd, Some(&mut b), &mut use12) {
            Ok(sat::PtResult::Ok(_)) => {
                r.raw_pages.push((kind.name(), b.clone()));
                Some(b)
            }
            Ok(other) => {
                r.problems
                    .push(format!("{}: {what} failed: {other:?}", r.device));
                None
            }
            Err(e) => {
                ioctl_problem(r, what, &e);
                None
            }
        }
    };
    let data = read_page(
        &sat::AtaCommand::SMART_READ_DATA,
        "SMART READ DATA",
        RawKind::AtaSmart,
        r,
    );
    let thr = read_page(
        &sat::AtaCommand::SMART_READ_THRESHOLDS,
        "SMART READ THRESHOLDS",
        RawKind::AtaThresholds,
        r,
    );
    // The logs the SMART data says the drive keeps: error logging (byte 370 bit 0) and
    // self-tests (offline capability bit 4).
    let caps = data
        .as_deref()
        .and_then(|d| super::ata::parse_smart_data(d).ok());
    let error_log = caps.as_ref().filter(|c| c.error_logging).and_then(|_| {
        read_page(
            &sat::AtaCommand::smart_read_log(super::atalog::SUMMARY_ERROR_LOG),
            "SMART READ LOG (error log)",
            RawKind::AtaErrorLog,
            r,
        )
    });
    let self_tests = caps
        .as_ref()
        .filter(|c| c.self_test_supported())
        .and_then(|_| {
            read_page(
                &sat::AtaCommand::smart_read_log(super::atalog::SELF_TEST_LOG),
                "SMART READ LOG (self-test log)",
                RawKind::AtaSelfTestLog,
                r,
            )
        });
    let status = if no_status {
        r.reasons.push(Finding::info(
            "this USB bridge cannot return SMART RETURN STATUS",
        ));
        None
    } else {
        match ata_cmd(&f, &sat::AtaCommand::SMART_RETURN_STATUS, None, &mut use12) {
            Ok(sat::PtResult::Ok(Some(regs))) => {
                let s = sat::smart_status(&regs);
                if s.is_none() {
                    r.problems.push(format!(
                        "{}: SMART RETURN STATUS gave registers {:02x}/{:02x} (the bridge may not \
                         return them)",
                        r.device, regs.lba_mid, regs.lba_high
                    ));
                }
                s
            }
            Ok(other) => {
                r.problems.push(format!(
                    "{}: SMART RETURN STATUS not available: {other:?}",
                    r.device
                ));
                None
            }
            Err(e) => {
                ioctl_problem(r, "SMART RETURN STATUS", &e);
                None
            }
        }
    };
    let via = if use12 { "sat12" } else { "sat16" };
    // General Purpose logs (READ LOG EXT is 48-bit: PT(16) only), when IDENTIFY says the
    // drive has them and its log directory lists them. A failure here is noted, not a
    // problem: the SMART logs above carry the same history.
    let (mut ext_error, mut ext_self_test) = (None, None);
    if !use12 && parsed.as_ref().is_some_and(|p| p.gp_logging) {
        use super::atalog::{EXT_COMPREHENSIVE_ERROR_LOG, EXT_SELF_TEST_LOG, GP_LOG_DIRECTORY};
        match read_log_ext(&f, GP_LOG_DIRECTORY, 1) {
            Ok(dir) => {
                for (addr, max, kind, slot) in [
                    (
                        EXT_COMPREHENSIVE_ERROR_LOG,
                        16,
                        RawKind::AtaExtErrorLog,
                        &mut ext_error,
                    ),
                    (
                        EXT_SELF_TEST_LOG,
                        4,
                        RawKind::AtaExtSelfTestLog,
                        &mut ext_self_test,
                    ),
                ] {
                    let n = super::atalog::gp_log_pages(&dir, addr).min(max);
                    if n == 0 {
                        continue;
                    }
                    match read_log_ext(&f, addr, n) {
                        Ok(b) => {
                            r.raw_pages.push((kind.name(), b.clone()));
                            *slot = Some(b);
                        }
                        Err(why) => r.reasons.push(Finding::info(format!(
                            "READ LOG EXT of log 0x{addr:02x} failed ({why}); the SMART log is used"
                        ))),
                    }
                }
            }
            Err(why) => r.reasons.push(Finding::info(format!(
                "the drive has General Purpose logs, but READ LOG EXT of the log directory \
                 failed ({why}); the SMART logs are used"
            ))),
        }
    }
    raw::apply_ata(r, Some(&id), data.as_deref(), thr.as_deref(), status, via);
    let logs = raw::AtaLogs {
        error_log: error_log.as_deref(),
        self_test: self_tests.as_deref(),
        ext_error_log: ext_error.as_deref(),
        ext_self_test: ext_self_test.as_deref(),
    };
    if logs.error_log.is_some()
        || logs.self_test.is_some()
        || logs.ext_error_log.is_some()
        || logs.ext_self_test.is_some()
    {
        raw::apply_ata_logs(r, logs);
    }
}

/// READ LOG EXT of `pages` pages of General Purpose log `addr` from page 0, through
/// ATA PASS-THROUGH (16).
fn read_log_ext(f: &File, addr: u8, pages: u16) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; 512 * usize::from(pages)];
    let cdb = sat::AtaCommand::read_log_ext_cdb16(addr, 0, pages);
    let out = sg::sg_io(f, &cdb, DataDir::FromDevice(&mut b), SG_TIMEOUT_MS)
        .map_err(|e| e.to_string())?;
    match sat::judge(&out) {
        sat::PtResult::Ok(_) => Ok(b),
        other => Err(format!("{other:?}")),
    }
}

// ------------------------------------------------------------------------------------------
// NVMe

fn probe_nvme(root: &SysRoot, disk: &Disk, o: &Options, r: &mut DeviceReport) {
    probe_nvme_ioctls(root, disk, o, r);
    // The kernel's hwmon sensor needs no privileges: always read, and the temperature
    // when the SMART log could not be.
    let hw = nvme_hwmon(root, &disk.name);
    raw::apply_nvme_hwmon(r, hw);
}

/// The composite-temperature sensor of an NVMe namespace's controller, from sysfs:
/// `temp1_input` (and `temp1_max`, `temp1_crit`) in millidegrees Celsius, found in the
/// controller directory's `hwmon*/`. The controller is the disk's `device` (no
/// multipath), a controller listed in its subsystem (`nvme-subsysN/nvmeM`), the `device`
/// of a hidden path (`nvmeXcYnZ`), or `/sys/class/nvme/nvmeX`.
fn nvme_hwmon(root: &SysRoot, name: &str) -> Option<raw::Hwmon> {
    let mut dirs = Vec::new();
    let dev = root.sys_block(name).join("device");
    dirs.push(dev.clone());
    let is_ctrl = |n: &str| {
        n.strip_prefix("nvme")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let sorted = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for n in sorted(&dev) {
        if is_ctrl(&n) {
            dirs.push(dev.join(n));
        }
    }
    for n in sorted(&root.sys_block("")) {
        if n != name && kernel::name_belongs(&n, name, &[]) && n.contains('c') {
            dirs.push(root.sys_block(&n).join("device"));
        }
    }
    if let Some(rest) = name.strip_prefix("nvme")
        && let Some(x) = rest.split('n').next()
    {
        dirs.push(root.join(&format!("sys/class/nvme/nvme{x}")));
    }
    for d in dirs {
        for h in sorted(&d) {
            if !h.starts_with("hwmon") {
                continue;
            }
            let hd = d.join(&h);
            let milli = |f: &str| -> Option<i64> { read_attr(&hd.join(f))?.parse().ok() };
            if let Some(t) = milli("temp1_input") {
                return Some(raw::Hwmon {
                    millicelsius: t,
                    max_millicelsius: milli("temp1_max"),
                    crit_millicelsius: milli("temp1_crit"),
                });
            }
        }
    }
    None
}

fn probe_nvme_ioctls(root: &SysRoot, disk: &Disk, o: &Options, r: &mut DeviceReport) {
    let Some(f) = open_disk(root, disk, o, r) else {
        return;
    };
    let mut id = vec![0u8; nvme::IDENTIFY_LEN];
    let idc = nvmeio::AdminCmd {
        opcode: nvme::IDENTIFY,
        nsid: 0,
        cdw10: nvme::IDENTIFY_CTRL_CDW10,
        ..Default::default()
    };
    let id_ok = match nvmeio::admin(&f, &idc, &mut id) {
        Ok(nvmeio::AdminOutcome::Done { .. }) => {
            r.raw_pages.push((RawKind::NvmeIdentify.name(), id.clone()));
            true
        }
        Ok(nvmeio::AdminOutcome::Status(s)) => {
            r.problems.push(format!(
                "{}: Identify Controller refused by the drive (NVMe status 0x{s:04x})",
                r.device
            ));
            false
        }
        Err(e) => {
            ioctl_problem(r, "Identify Controller", &e);
            false
        }
    };
    let mut log = vec![0u8; nvme::SMART_LOG_LEN];
    let lc = nvmeio::AdminCmd {
        opcode: nvme::GET_LOG_PAGE,
        nsid: nvme::SMART_LOG_NSID,
        cdw10: nvme::SMART_LOG_CDW10,
        ..Default::default()
    };
    let log_ok = match nvmeio::admin(&f, &lc, &mut log) {
        Ok(nvmeio::AdminOutcome::Done { .. }) => {
            r.raw_pages.push((RawKind::NvmeSmart.name(), log.clone()));
            true
        }
        Ok(nvmeio::AdminOutcome::Status(s)) => {
            r.problems.push(format!(
                "{}: Get Log Page (SMART) refused by the drive (NVMe status 0x{s:04x})",
                r.device
            ));
            false
        }
        Err(e) => {
            ioctl_problem(r, "Get Log Page (SMART/Health)", &e);
            false
        }
    };
    raw::apply_nvme(
        r,
        id_ok.then_some(id.as_slice()),
        log_ok.then_some(log.as_slice()),
        "ioctl",
    );
    // The error and self-test logs, only when the SMART log came (same privileges).
    if !log_ok {
        return;
    }
    let idp = id_ok
        .then(|| nvme::parse_identify_controller(&id).ok())
        .flatten();
    let get_log = |lid: u8, len: usize, what: &str, kind: RawKind, r: &mut DeviceReport| {
        let mut b = vec![0u8; len];
        let c = nvmeio::AdminCmd {
            opcode: nvme::GET_LOG_PAGE,
            nsid: nvme::SMART_LOG_NSID,
            cdw10: nvmelog::get_log_cdw10(lid, len),
            ..Default::default()
        };
        match nvmeio::admin(&f, &c, &mut b) {
            Ok(nvmeio::AdminOutcome::Done { .. }) => {
                r.raw_pages.push((kind.name(), b.clone()));
                Some(b)
            }
            Ok(nvmeio::AdminOutcome::Status(s)) => {
                r.problems.push(format!(
                    "{}: Get Log Page ({what}) refused by the drive (NVMe status 0x{s:04x})",
                    r.device
                ));
                None
            }
            Err(e) => {
                ioctl_problem(r, &format!("Get Log Page ({what})"), &e);
                None
            }
        }
    };
    let entries = idp.as_ref().map_or(1, |i| i.error_log_entries);
    let el = get_log(
        nvmelog::ERROR_LOG_LID,
        nvmelog::error_log_len(entries),
        "error information",
        RawKind::NvmeErrorLog,
        r,
    );
    let st = idp
        .as_ref()
        .filter(|i| i.oacs & nvmelog::OACS_SELF_TEST != 0)
        .and_then(|_| {
            get_log(
                nvmelog::SELF_TEST_LOG_LID,
                nvmelog::SELF_TEST_LOG_LEN,
                "device self-test",
                RawKind::NvmeSelfTestLog,
                r,
            )
        });
    raw::apply_nvme_logs(r, el.as_deref(), st.as_deref());
}

/// One NVMe admin command through a USB bridge tunnel. Data-in only.
fn snt_admin(
    f: &File,
    source: Source,
    opcode: u8,
    nsid: u32,
    cdw10: u32,
    buf: &mut [u8],
) -> Result<(), String> {
    let check = |o: &sg::SgOutcome| -> Result<(), String> {
        if o.status == 0 && o.host_status == 0 {
            Ok(())
        } else {
            Err(sat::parse_sense(&o.sense).map_or_else(
                || format!("SCSI status 0x{:02x}, host 0x{:x}", o.status, o.host_status),
                |s| s.describe(),
            ))
        }
    };
    let io = |e: io::Error| e.to_string();
    match source {
        Source::SntAsmedia => {
            let o = sg::sg_io(
                f,
                &sat::asmedia_nvme_cdb(opcode, cdw10),
                DataDir::FromDevice(buf),
                SG_TIMEOUT_MS,
            )
            .map_err(io)?;
            check(&o)
        }
        Source::SntRealtek => {
            let len = u16::try_from(buf.len()).map_err(|_| "buffer too large".to_string())?;
            let o = sg::sg_io(
                f,
                &sat::realtek_nvme_cdb(opcode, cdw10, len),
                DataDir::FromDevice(buf),
                SG_TIMEOUT_MS,
            )
            .map_err(io)?;
            check(&o)
        }
        _ => {
            let block = sat::jmicron_command_block(opcode, nsid, [cdw10, 0, 0, 0, 0, 0]);
            let o = sg::sg_io(
                f,
                &sat::jmicron_cdb(0, 512),
                DataDir::ToDevice(&block),
                SG_TIMEOUT_MS,
            )
            .map_err(io)?;
            check(&o)?;
            let len = buf.len() as u32;
            let o = sg::sg_io(
                f,
                &sat::jmicron_cdb(2, len),
                DataDir::FromDevice(buf),
                SG_TIMEOUT_MS,
            )
            .map_err(io)?;
            check(&o)?;
            let mut resp = [0u8; 512];
            let o = sg::sg_io(
                f,
                &sat::jmicron_cdb(0xF, 512),
                DataDir::FromDevice(&mut resp),
                SG_TIMEOUT_MS,
            )
            .map_err(io)?;
            check(&o)?;
            sat::jmicron_response(&resp).map(|_| ())
        }
    }
}

fn probe_snt(root: &SysRoot, disk: &Disk, o: &Options, r: &mut DeviceReport, source: Source) {
    let Some(f) = open_disk(root, disk, o, r) else {
        return;
    };
    let mut id = vec![0u8; nvme::IDENTIFY_LEN];
    let id_ok = match snt_admin(
        &f,
        source,
        nvme::IDENTIFY,
        0,
        nvme::IDENTIFY_CTRL_CDW10,
        &mut id,
    ) {
        Ok(()) => {
            r.raw_pages.push((RawKind::NvmeIdentify.name(), id.clone()));
            true
        }
        Err(e) => {
            r.problems.push(format!(
                "{}: NVMe Identify through the {} bridge failed: {e}",
                r.device,
                source.name()
            ));
            false
        }
    };
    let mut log = vec![0u8; nvme::SMART_LOG_LEN];
    let log_ok = match snt_admin(
        &f,
        source,
        nvme::GET_LOG_PAGE,
        nvme::SMART_LOG_NSID,
        nvme::SMART_LOG_CDW10,
        &mut log,
    ) {
        Ok(()) => {
            r.raw_pages.push((RawKind::NvmeSmart.name(), log.clone()));
            true
        }
        Err(e) => {
            r.problems.push(format!(
                "{}: NVMe SMART log through the {} bridge failed: {e}",
                r.device,
                source.name()
            ));
            false
        }
    };
    raw::apply_nvme(
        r,
        id_ok.then_some(id.as_slice()),
        log_ok.then_some(log.as_slice()),
        source.name(),
    );
}

// ------------------------------------------------------------------------------------------
// SD and eMMC

/// The card directory (`sys/block/<name>/device`) and its `type`, read now.
fn card_type(root: &SysRoot, disk: &Disk) -> Option<String> {
    read_attr(&root.sys_block(&disk.name).join("device/type"))
}

fn hex_attr(dir: &Path, name: &str, r: &mut DeviceReport) -> Option<Vec<u8>> {
    let text = read_attr(&dir.join(name))?;
    match sd::hex_bytes(&text) {
        Ok(b) => Some(b),
        Err(e) => {
            r.problems
                .push(format!("{}: sysfs {name}: {e:#}", r.device));
            None
        }
    }
}

fn probe_sd(root: &SysRoot, disk: &Disk, o: &Options, r: &mut DeviceReport) {
    let dir = root.sys_block(&disk.name).join("device");
    let ctype = card_type(root, disk);
    if !matches!(ctype.as_deref(), Some("SD") | Some("SDcombo")) {
        r.problems.push(format!(
            "{}: --type sd needs an SD card on a native MMC host (mmcblk); this device's card \
             type is {}",
            r.device,
            ctype.as_deref().unwrap_or("not an MMC card")
        ));
        return;
    }
    let cid = hex_attr(&dir, "cid", r);
    let csd = hex_attr(&dir, "csd", r);
    let scr = hex_attr(&dir, "scr", r);
    let ssr = hex_attr(&dir, "ssr", r);
    for (k, v) in [
        (RawKind::SdCid, &cid),
        (RawKind::SdCsd, &csd),
        (RawKind::SdScr, &scr),
        (RawKind::SdSsr, &ssr),
    ] {
        if let Some(b) = v {
            r.raw_pages.push((k.name(), b.clone()));
        }
    }
    raw::apply_sd_registers(
        r,
        cid.as_deref(),
        csd.as_deref(),
        scr.as_deref(),
        ssr.as_deref().map(|b| (b, "sysfs")),
        o.this_year,
    );
    let parsed_cid = cid.as_deref().and_then(|b| sd::parse_cid(b).ok());
    let gated = parsed_cid.as_ref().and_then(sd::method_for);
    // On the card the system runs from, even a known manufacturer's command is only sent
    // when asked: a card of that brand without the health command stalls about a second
    // while the host recovers it (sdmon reports; one Transcend card vanished).
    let method = match (o.cmd56, gated) {
        (Some(m), _) => Some(m),
        (None, Some(m)) if disk.system_disk => {
            if let Some(s) = r.sd.as_mut() {
                s.cmd56_result = Some(format!(
                    "not sent: this card holds the running system, and a card without its \
                     vendor's health command stalls while the host recovers it; ask with \
                     --cmd56 {}",
                    m.name()
                ));
            }
            None
        }
        (None, g) => g,
    };
    let not_known = "not sent: the card's manufacturer is not one whose health command is \
                     known (use --cmd56 METHOD to ask anyway)";
    if let Some(f) = open_disk(root, disk, o, r) {
        // Check the card type again right before talking to the card.
        if !matches!(
            card_type(root, disk).as_deref(),
            Some("SD") | Some("SDcombo")
        ) {
            r.problems
                .push(format!("{}: the card changed; no commands sent", r.device));
        } else {
            sd_status_now(&f, r, o.this_year);
            match method {
                Some(m) => sd_cmd56(&f, m, o, r),
                None => {
                    if let Some(s) = r.sd.as_mut()
                        && s.cmd56_result.is_none()
                    {
                        s.cmd56_result = Some(not_known.into());
                    }
                }
            }
        }
    }
    if !r.has_health_data {
        r.reasons.push(Finding::info(
            "no wear data: SD cards report no wear unless they are industrial cards with a \
             vendor health command; keep a current image (`lifeboat image`) and watch the \
             kernel signals",
        ));
    }
}

/// ACMD13 SD_STATUS, read now (sysfs `ssr` is a snapshot from card init).
fn sd_status_now(f: &File, r: &mut DeviceReport, this_year: u16) {
    let cmd = mmcio::MmcCmd {
        opcode: 13,
        arg: 0,
        flags: mmcio::flags::ADTC_R1,
        is_acmd: true,
        write: false,
        blksz: 64,
        blocks: 1,
        postsleep_us: 0,
    };
    let mut b = vec![0u8; 64];
    match mmcio::mmc_cmd(f, &cmd, &mut b) {
        Ok(_) => {
            r.raw_pages.push((RawKind::SdSsr.name(), b.clone()));
            raw::apply_sd_registers(r, None, None, None, Some((&b, "acmd13")), this_year);
        }
        Err(e) => ioctl_problem(r, "ACMD13 (SD Status)", &e),
    }
}

fn sd_cmd56(f: &File, m: sd::Cmd56Method, o: &Options, r: &mut DeviceReport) {
    let mut b = vec![0u8; 512];
    let read = mmcio::MmcCmd {
        opcode: 56,
        arg: m.read_arg(),
        flags: mmcio::flags::ADTC_R1,
        is_acmd: false,
        write: false,
        blksz: 512,
        blocks: 1,
        postsleep_us: 0,
    };
    let res = match m.write_arg() {
        Some(warg) => {
            if !o.cmd56_write {
                if let Some(s) = r.sd.as_mut() {
                    s.cmd56_method = Some(m);
                    s.cmd56_result = Some(
                        "not sent: this card's health command writes a block to the card \
                         first; allow it with --cmd56-write"
                            .into(),
                    );
                }
                r.reasons.push(Finding::info(
                    "the card has a vendor health report behind a write-then-read command; \
                     run with --cmd56-write to read it",
                ));
                return;
            }
            let mut zero = vec![0u8; 512];
            let write = mmcio::MmcCmd {
                arg: warg,
                flags: mmcio::flags::R1 | mmcio::flags::CMD_ADTC,
                write: true,
                postsleep_us: 10_000,
                ..read
            };
            mmcio::mmc_multi_cmd(f, &mut [(write, &mut zero[..]), (read, &mut b[..])]).map(|_| ())
        }
        None => mmcio::mmc_cmd(f, &read, &mut b).map(|_| ()),
    };
    match res {
        Ok(()) => {
            r.raw_pages.push((RawKind::Cmd56(m).name(), b.clone()));
            raw::apply_cmd56(r, m, &b);
        }
        Err(e) => {
            if let Some(s) = r.sd.as_mut() {
                s.cmd56_method = Some(m);
                s.cmd56_result = Some(e.to_string());
            }
            if e.raw_os_error() == Some(nix::libc::ETIMEDOUT)
                || e.get_ref()
                    .and_then(|x| x.downcast_ref::<mmcio::MmcIoctlError>())
                    .is_some_and(|x| x.errno == nix::errno::Errno::ETIMEDOUT)
            {
                r.reasons.push(Finding::info(format!(
                    "the card did not answer the {} health command (not supported)",
                    m.name()
                )));
            } else {
                ioctl_problem(r, &format!("CMD56 ({})", m.name()), &e);
            }
        }
    }
}

fn probe_emmc(root: &SysRoot, disk: &Disk, o: &Options, r: &mut DeviceReport) {
    let dir = root.sys_block(&disk.name).join("device");
    if card_type(root, disk).as_deref() != Some("MMC") {
        r.problems.push(format!(
            "{}: --type emmc needs an eMMC (card type MMC); this device is not one",
            r.device
        ));
        return;
    }
    let rev = read_attr(&dir.join("rev"))
        .and_then(|s| u8::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    let mut em = EmmcReport {
        ext_csd_revision: rev,
        ..Default::default()
    };
    if let Some(b) = hex_attr(&dir, "cid", r) {
        match mmc::parse_emmc_cid(&b, rev) {
            Ok(c) => em.cid = Some(c),
            Err(e) => r.problems.push(format!("{}: {e:#}", r.device)),
        }
    }
    if let Some(t) = read_attr(&dir.join("life_time")) {
        match mmc::parse_sysfs_life_time(&t) {
            Ok((a, b)) => {
                em.life_time_a = Some(a.0);
                em.life_time_b = Some(b.0);
                em.source = Some("sysfs".into());
            }
            Err(e) => r
                .problems
                .push(format!("{}: sysfs life_time: {e:#}", r.device)),
        }
    }
    if let Some(t) = read_attr(&dir.join("pre_eol_info")) {
        match mmc::parse_sysfs_pre_eol(&t) {
            Ok(p) => em.pre_eol = Some(p.0),
            Err(e) => r
                .problems
                .push(format!("{}: sysfs pre_eol_info: {e:#}", r.device)),
        }
    }
    r.emmc = Some(em);
    if let Some(f) = open_disk(root, disk, o, r) {
        // CMD8 means SEND_EXT_CSD only on eMMC: check the type again right before.
        if card_type(root, disk).as_deref() == Some("MMC") {
            let cmd = mmcio::MmcCmd {
                opcode: mmc::SEND_EXT_CSD,
                arg: 0,
                flags: mmcio::flags::ADTC_R1,
                is_acmd: false,
                write: false,
                blksz: 512,
                blocks: 1,
                postsleep_us: 0,
            };
            let mut b = vec![0u8; 512];
            match mmcio::mmc_cmd(&f, &cmd, &mut b) {
                Ok(_) => {
                    r.raw_pages.push((RawKind::ExtCsd.name(), b.clone()));
                    raw::apply_ext_csd(r, &b);
                }
                Err(e) => ioctl_problem(r, "CMD8 (EXT_CSD)", &e),
            }
        }
    } else if r.emmc.as_ref().is_some_and(|e| e.source.is_some()) {
        r.reasons.push(Finding::info(
            "eMMC life time from sysfs, cached when the card was initialised (at boot)",
        ));
    }
    raw::finish_emmc(r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Ownership;

    fn usb_disk(vid: u16, pid: u16, model: &str, product: &str) -> Disk {
        Disk {
            name: "sdb".into(),
            path: "/dev/sdb".into(),
            size: 32 << 30,
            logical_sector_size: 512,
            physical_sector_size: 512,
            removable: true,
            read_only: false,
            model: Some(model.into()),
            serial: None,
            transport: Transport::Usb {
                vendor_id: vid,
                product_id: pid,
                manufacturer: None,
                product: Some(product.into()),
                driver: Some("usb-storage".into()),
            },
            backing_file: None,
            mountpoints: vec![],
            swap: false,
            holders: vec![],
            partitions: vec![],
            system_disk: false,
            ownership: Ownership::Unused,
            udev: Default::default(),
        }
    }

    #[test]
    fn sd_card_in_a_usb_reader_says_so() {
        // A Realtek card reader (0bda:0158) is not in the bridge table.
        let d = usb_disk(0x0bda, 0x0158, "SD/MMC", "USB2.0-CRW");
        let (src, bridge, _) = source_for(&d);
        assert_eq!((src, bridge), (Source::None, None));
        assert_eq!(
            no_source_reason(&d, None),
            "no wear data: SD card in a USB reader (card commands cannot pass through it) — \
             run `lifeboat image` now if it holds your only copy"
        );
        let d = usb_disk(0x46f4, 0x0001, "QEMU HARDDISK", "QEMU USB HARDDRIVE");
        assert!(no_source_reason(&d, None).contains("unknown USB bridge 46f4:0001"));
    }

    #[test]
    fn bridges_pick_the_source() {
        let d = usb_disk(0x152d, 0x0583, "", "");
        assert_eq!(source_for(&d).0, Source::SntJmicron);
        let d = usb_disk(0x174c, 0x2362, "", "");
        assert_eq!(source_for(&d).0, Source::SntAsmedia);
        let d = usb_disk(0x2e8a, 0x0030, "", "");
        assert_eq!(
            source_for(&d),
            (
                Source::Sat,
                Some(Bridge::SatNoStatus),
                Some("Raspberry Pi USB Flash Drive".into())
            )
        );
        let d = usb_disk(0x152d, 0x0539, "", "");
        let (s, b, _) = source_for(&d);
        assert_eq!(s, Source::None);
        assert!(no_source_reason(&d, b).contains("may disconnect"));
    }

    #[test]
    fn sysfs_only_probe_opens_nothing() {
        let d = usb_disk(0x152d, 0x0578, "SSD", "");
        let o = Options {
            source: None,
            ioctls: false,
            cmd56: None,
            cmd56_write: false,
            keep_raw: true,
            this_year: 2026,
        };
        let r = probe(&SysRoot(std::env::temp_dir().join("no-such-root")), &d, &o);
        assert_eq!(r.source, Source::Sat);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.raw_pages.is_empty());
        assert!(
            r.reasons
                .iter()
                .any(|f| f.text.contains("device not opened"))
        );
    }
}

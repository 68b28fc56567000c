//! `lifeboat health [DEVICE…]`: wear and health of every disk (the system disk first) or
//! the ones named, with a verdict per device and an exit-status bit mask
//! (docs/exit-codes.md). Owns its clap arguments ([`HealthArgs`]), device selection, the
//! text rendering, `--raw-out` and `--from-raw`. The work is in [`crate::health`].

use crate::device::{self, SysRoot, Transport};
use crate::error::Outcome;
use crate::health::probe::{self, Options};
use crate::health::raw::{self, KIND_NAMES};
use crate::health::sd::Cmd56Method;
use crate::health::verdict::{Severity, Verdict};
use crate::health::{DeviceReport, Source, exit_mask};
use crate::report::{Output, SCHEMA_VERSION, human_bytes};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Disks to check (e.g. /dev/sda, mmcblk0); default: every disk, system disk first
    pub devices: Vec<PathBuf>,
    /// Health source, like smartctl -d: sat, sat,12, nvme, sntjmicron, sntasmedia,
    /// sntrealtek, sd, emmc, none. With --from-raw: the page kind (ata-smart,
    /// nvme-smart, ext-csd, sd-cid, cmd56-sandisk, ata-blob, …)
    #[arg(long = "type", short = 'd', value_name = "TYPE")]
    pub kind: Option<String>,
    /// Save the raw pages read into DIR, as <disk>.<kind>.bin
    #[arg(long, value_name = "DIR")]
    pub raw_out: Option<PathBuf>,
    /// Decode a saved page instead of reading a device (needs --type KIND)
    #[arg(long, value_name = "FILE", conflicts_with = "devices")]
    pub from_raw: Option<PathBuf>,
    /// Ask an SD card for its vendor health report with this method even when its
    /// manufacturer is not one lifeboat knows (read-only unless --cmd56-write)
    #[arg(long, value_enum, value_name = "METHOD")]
    pub cmd56: Option<Cmd56Method>,
    /// Allow the two-step CMD56 method, which first writes one block of zeros to the
    /// card's controller (not to its storage)
    #[arg(long)]
    pub cmd56_write: bool,
    /// Read sysfs only: open no device and send no command
    #[arg(long)]
    pub sysfs_only: bool,
    /// Read sysfs, /proc and /dev under this root instead of / (for tests)
    #[arg(long, hide = true, default_value = "/")]
    pub sysfs_root: PathBuf,
}

/// The JSON document of `health`.
#[derive(Debug, Serialize)]
pub struct HealthDoc<'a> {
    pub schema_version: u32,
    pub devices: &'a [DeviceReport],
    /// The exit status lifeboat returns (a bit mask, docs/exit-codes.md).
    pub exit_status: u8,
}

fn this_year() -> u16 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (1970 + secs / 31_556_952).min(u64::from(u16::MAX)) as u16
}

/// Run `health`.
pub fn run(args: &HealthArgs, out: &Output) -> Result<Outcome> {
    let year = this_year();
    let reports = if let Some(file) = &args.from_raw {
        let Some(kind) = &args.kind else {
            bail!(
                "--from-raw {} needs --type KIND, one of: {}",
                file.display(),
                KIND_NAMES.join(", ")
            );
        };
        vec![raw::from_raw(file, kind, year)?]
    } else {
        probe_devices(args, year)?
    };
    if let Some(dir) = &args.raw_out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for r in &reports {
            for (kind, bytes) in &r.raw_pages {
                let p = dir.join(format!("{}.{kind}.bin", r.name));
                std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
            }
        }
    }
    let mask = exit_mask(&reports);
    if out.json {
        out.json_doc(&HealthDoc {
            schema_version: SCHEMA_VERSION,
            devices: &reports,
            exit_status: mask,
        });
    } else {
        out.text(&render(&reports));
    }
    if !out.quiet && reports.iter().any(|r| r.needs_privileges) {
        eprintln!(
            "lifeboat: some health data needs root: run `sudo lifeboat health` (NVMe log \
             pages need CAP_SYS_ADMIN; ATA pass-through and SD/eMMC card commands need \
             CAP_SYS_RAWIO)"
        );
    }
    Ok(Outcome::Health(mask))
}

fn probe_devices(args: &HealthArgs, year: u16) -> Result<Vec<DeviceReport>> {
    let root = SysRoot(args.sysfs_root.clone());
    let source = match &args.kind {
        None => None,
        Some(k) => Some(Source::parse(k).with_context(|| {
            format!(
                "--type {k:?} is not known; use sat, sat,12, nvme, sntjmicron, sntasmedia, \
                 sntrealtek, sd, emmc or none (page kinds only go with --from-raw)"
            )
        })?),
    };
    let mut disks = device::discover(&root)
        .with_context(|| format!("listing disks under {}", args.sysfs_root.display()))?;
    // A disk by path or kernel name; an NVMe controller (`/dev/nvme0`, as smartctl and
    // nvme-cli take it) stands for its namespaces (`nvme0n1`, …).
    let matches = |d: &device::Disk, w: &PathBuf| {
        let s = w.to_string_lossy();
        let n = s.strip_prefix("/dev/").unwrap_or(&s);
        let controller = n
            .strip_prefix("nvme")
            .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
        *w == d.path || n == d.name || (controller && d.name.starts_with(&format!("{n}n")))
    };
    for w in &args.devices {
        if !disks.iter().any(|d| matches(d, w)) {
            let hint = disks
                .iter()
                .find(|d| {
                    d.partitions
                        .iter()
                        .any(|p| *w == p.path || w.as_os_str() == p.name.as_str())
                })
                .map(|d| {
                    format!(
                        " (it is a partition: use the whole disk {})",
                        d.path.display()
                    )
                })
                .unwrap_or_default();
            bail!(
                "{}: not a whole disk known to the kernel{hint}; see `lifeboat list`",
                w.display()
            );
        }
    }
    if args.devices.is_empty() {
        disks.retain(|d| d.transport != Transport::Loop);
        disks.sort_by(|a, b| b.system_disk.cmp(&a.system_disk).then(a.name.cmp(&b.name)));
    } else {
        disks.retain(|d| args.devices.iter().any(|w| matches(d, w)));
        disks.sort_by_key(|d| args.devices.iter().position(|w| matches(d, w)));
    }
    let opts = Options {
        source,
        ioctls: root.is_host() && !args.sysfs_only,
        cmd56: args.cmd56,
        cmd56_write: args.cmd56_write,
        keep_raw: args.raw_out.is_some(),
        this_year: year,
    };
    Ok(disks
        .iter()
        .map(|d| probe::probe(&root, d, &opts))
        .collect())
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |x| x.to_string())
}

/// The text report.
pub fn render(reports: &[DeviceReport]) -> String {
    let mut s = String::new();
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let mut head = vec![r.device.clone()];
        if let Some(t) = &r.transport {
            head.push(t.to_string());
        }
        if let Some(m) = &r.model {
            head.push(m.clone());
        }
        if let Some(z) = r.size {
            head.push(human_bytes(z));
        }
        if r.system_disk {
            head.push("(system disk)".into());
        }
        let _ = writeln!(s, "{}", head.join("  "));
        let mut ids = Vec::new();
        if let Some(x) = &r.serial {
            ids.push(format!("serial {x}"));
        }
        if let Some(x) = &r.firmware {
            ids.push(format!("firmware {x}"));
        }
        if let Some(b) = &r.bridge {
            ids.push(format!("bridge {b}"));
        }
        ids.push(format!("source {}", r.source.name()));
        let _ = writeln!(s, "  {}", ids.join(", "));
        let v = match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        };
        let _ = writeln!(s, "  verdict: {v}");
        for f in &r.reasons {
            let tag = match f.severity {
                Severity::Fail => "fail",
                Severity::Warn => "warn",
                Severity::Info => "info",
            };
            let _ = writeln!(s, "    {tag}: {}", f.text);
        }
        if let Some(n) = &r.nvme
            && let Some(l) = &n.smart_log
        {
            let _ = writeln!(
                s,
                "  NVMe: temperature {} °C, spare {}% (threshold {}%), used {}%, critical warning 0x{:02x}",
                l.temperature_c(),
                l.available_spare,
                l.available_spare_threshold,
                l.percentage_used,
                l.critical_warning
            );
            let _ = writeln!(
                s,
                "        data units read {} written {}, host reads {} writes {}, power cycles {}, \
                 power-on hours {}, unsafe shutdowns {}, media errors {}, error log entries {}",
                l.data_units_read,
                l.data_units_written,
                l.host_read_commands,
                l.host_write_commands,
                l.power_cycles,
                l.power_on_hours,
                l.unsafe_shutdowns,
                l.media_errors,
                l.error_log_entries
            );
        }
        if let Some(n) = &r.nvme {
            if n.smart_log.is_none()
                && let Some(t) = n.temperature_c
            {
                let _ = writeln!(
                    s,
                    "  NVMe: temperature {t} °C (kernel hwmon sensor; SMART log not read)"
                );
            }
            if let Some(e) = &n.error_log {
                match &e.latest {
                    None => {
                        let _ = writeln!(
                            s,
                            "  NVMe error log: no errors logged ({} entr{} read)",
                            e.entries_read,
                            if e.entries_read == 1 { "y" } else { "ies" }
                        );
                    }
                    Some(l) => {
                        let _ = writeln!(
                            s,
                            "  NVMe error log: {} of {} entries hold errors; the latest, #{}: {}",
                            e.non_zero,
                            e.entries_read,
                            l.error_count,
                            l.describe()
                        );
                    }
                }
            }
            if let Some(t) = &n.self_test_log {
                if t.results.is_empty() {
                    let _ = writeln!(s, "  NVMe self-test log: no self-tests logged");
                } else {
                    let _ = writeln!(s, "  NVMe self-test log, newest first:");
                    for x in &t.results {
                        let _ = writeln!(
                            s,
                            "    {:<9} {:<45} hour {:>6}  LBA {}",
                            x.code_text,
                            x.result_text,
                            x.power_on_hours,
                            opt(&x.failing_lba)
                        );
                    }
                }
            }
        }
        if let Some(a) = &r.ata {
            let status = match a.smart_status {
                Some(crate::health::sat::SmartStatus::Good) => "passed",
                Some(crate::health::sat::SmartStatus::Failing) => "FAILING",
                None => "not available",
            };
            let _ = writeln!(
                s,
                "  ATA ({}): SMART status {status}, bad sectors {}, power-on hours {}, temperature {} °C",
                a.via,
                opt(&a.bad_sectors),
                opt(&a.power_on_hours),
                opt(&a.temperature_c)
            );
            if !a.attributes.is_empty() {
                let _ = writeln!(
                    s,
                    "     ID NAME                     VALUE WORST THRESH  TYPE    FAILED RAW"
                );
                for at in &a.attributes {
                    let _ = writeln!(
                        s,
                        "    {:>3} {:<24} {:>5} {:>5} {:>6}  {:<7} {:<6} {}",
                        at.id,
                        at.name,
                        at.value,
                        at.worst,
                        opt(&at.thresh),
                        if at.prefailure { "prefail" } else { "old-age" },
                        if at.when_failed.is_empty() {
                            "-"
                        } else {
                            at.when_failed
                        },
                        at.raw_value
                    );
                }
            }
            for l in [&a.self_test_log, &a.ext_self_test_log]
                .into_iter()
                .flatten()
            {
                if l.entries.is_empty() {
                    let _ = writeln!(
                        s,
                        "  self-test log ({}, revision {}): no self-tests logged",
                        l.kind, l.revision
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "  self-test log ({}, revision {}), newest first:",
                        l.kind, l.revision
                    );
                    let _ = writeln!(
                        s,
                        "     # TYPE                 STATUS                         LEFT  HOURS  FAILING LBA"
                    );
                    for (i, e) in l.entries.iter().enumerate() {
                        let _ = writeln!(
                            s,
                            "    {:>2} {:<20} {:<30} {:>3}% {:>6}  {}",
                            i + 1,
                            e.test_type_text,
                            e.result_text,
                            e.remaining_percent,
                            e.lifetime_hours,
                            opt(&e.failing_lba)
                        );
                    }
                }
            }
            for l in [&a.error_log, &a.ext_error_log].into_iter().flatten() {
                if l.count == 0 && l.entries.is_empty() {
                    let _ = writeln!(
                        s,
                        "  error log ({}, revision {}): no errors logged",
                        l.kind, l.revision
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "  error log ({}, revision {}): {} error(s) over the drive's life, {} held, newest first:",
                        l.kind,
                        l.revision,
                        l.count,
                        l.entries.len()
                    );
                    for e in &l.entries {
                        let _ = writeln!(
                            s,
                            "    error {}: {} (device {})",
                            e.error_number,
                            e.describe(),
                            e.state_text
                        );
                    }
                }
            }
        }
        if let Some(e) = &r.emmc {
            let _ = writeln!(
                s,
                "  eMMC ({}): life time A {}, B {}, pre-EOL {}",
                opt(&e.source),
                opt(&e.life_time_a_text),
                opt(&e.life_time_b_text),
                opt(&e.pre_eol_text)
            );
        }
        if let Some(d) = &r.sd {
            if let Some(c) = &d.cid {
                let _ = writeln!(
                    s,
                    "  SD card: manufacturer 0x{:02x} ({}), OEM {}, name {}, revision {}, serial 0x{:08x}, made {:02}/{}",
                    c.manufacturer_id,
                    c.manufacturer.unwrap_or("unknown"),
                    c.oem,
                    c.name,
                    c.revision,
                    c.serial,
                    c.month,
                    c.year
                );
            }
            if let Some(c) = &d.csd {
                let _ = writeln!(
                    s,
                    "    capacity {} ({}, CSD v{}){}",
                    human_bytes(c.capacity_bytes),
                    c.capacity_class,
                    c.version,
                    match d.csd_matches_size {
                        Some(true) => ", matches the device size",
                        Some(false) => ", DIFFERS from the device size",
                        None => "",
                    }
                );
            }
            if let Some(c) = &d.scr {
                let _ = writeln!(s, "    SD spec {}", c.spec_version);
            }
            if let Some(c) = &d.ssr {
                if c.empty {
                    let _ = writeln!(
                        s,
                        "    SD Status ({}): empty (no speed class reported)",
                        opt(&d.ssr_source)
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "    SD Status ({}): {}, {}, V{}, A{}, AU {}",
                        opt(&d.ssr_source),
                        c.speed_class,
                        c.uhs_grade,
                        c.video_class,
                        c.app_class,
                        c.au_size_bytes.map_or("-".into(), human_bytes)
                    );
                }
            }
            if let Some(x) = &d.cmd56_result {
                let _ = writeln!(s, "    vendor health (CMD56): {x}");
            }
        }
        if let Some(k) = &r.kernel {
            let mut parts = Vec::new();
            if let Some(st) = &k.stat {
                parts.push(format!(
                    "read {} in {} requests, wrote {} in {} requests since boot",
                    human_bytes(st.read_sectors.saturating_mul(512)),
                    st.read_ios,
                    human_bytes(st.write_sectors.saturating_mul(512)),
                    st.write_ios
                ));
            }
            if let Some(n) = k.ioerr_cnt {
                parts.push(format!("SCSI commands not ended cleanly {n}"));
            }
            if let Some(n) = k.iotmo_cnt {
                parts.push(format!("timeouts {n}"));
            }
            if !parts.is_empty() {
                let _ = writeln!(s, "  kernel: {}", parts.join(", "));
            }
        }
        for p in &r.problems {
            let _ = writeln!(s, "  could not read: {p}");
        }
    }
    if reports.is_empty() {
        s.push_str("no disks found\n");
    }
    s
}

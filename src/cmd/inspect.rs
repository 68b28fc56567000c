//! `lifeboat inspect <device|image>`: what is on a disk or image — partition table, board,
//! OS version per slot and the active slot, data partition use, Core and Supervisor versions,
//! add-ons and backups — as text or JSON.

use crate::cli::InspectArgs;
use crate::device::{self, SysRoot, discover};
use crate::error::Outcome;
use crate::haos::layout::Verdict;
use crate::haos::{self, InspectReport};
use crate::report::{Output, Table, human_bytes};
use anyhow::Result;
use std::fmt::Write;

/// Run `inspect`.
pub fn run(args: &InspectArgs, out: &Output) -> Result<Outcome> {
    let src = crate::io::source::open(&args.source)?;
    let mut rep = haos::inspect(&src, haos::Depth::Full)?;
    if src.kind == crate::io::source::SourceKind::BlockDevice {
        rep.device_in_use = in_use_reasons(&src.path);
    }
    if out.json {
        out.json_doc(&rep);
    } else {
        out.text(&render(&rep));
    }
    Ok(match rep.verdict {
        Verdict::NotHaos => Outcome::NotHaos,
        _ => Outcome::Ok,
    })
}

/// Why the disk holding `path` is in use, from sysfs and /proc (never opens another disk).
pub fn in_use_reasons(path: &std::path::Path) -> Vec<String> {
    let root = SysRoot::host();
    let Ok(dev) = crate::sys::block_device_number(path) else {
        return vec![format!("{}: cannot read its device number", path.display())];
    };
    let Some(name) = discover::disk_name_of(&root, dev) else {
        return vec![format!("{}: not found in sysfs", path.display())];
    };
    match device::discover(&root) {
        Ok(disks) => disks
            .into_iter()
            .find(|d| d.name == name)
            .map(|d| d.ownership.reasons().to_vec())
            .unwrap_or_else(|| vec![format!("/dev/{name}: not listed by discovery")]),
        Err(e) => vec![format!("cannot list disks: {e:#}")],
    }
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("unknown")
}

/// The human rendering of an inspect report.
pub fn render(r: &InspectReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} ({}, {}-byte sectors)",
        r.source.path,
        human_bytes(r.source.size),
        match r.source.kind {
            crate::io::source::SourceKind::ImageFile => "image file",
            crate::io::source::SourceKind::BlockDevice => "block device",
        },
        r.source.sector_size
    );
    match r.verdict {
        Verdict::Haos => {
            let _ = writeln!(
                s,
                "Home Assistant OS: yes — {} ({})",
                r.board
                    .as_ref()
                    .map(|b| b.name.as_str())
                    .unwrap_or("board unknown"),
                r.board.as_ref().map(|b| b.id.as_str()).unwrap_or("?"),
            );
        }
        Verdict::ExternalDataDisk => {
            let _ = writeln!(
                s,
                "Home Assistant OS: external data disk (holds /mnt/data, not a boot disk)"
            );
        }
        Verdict::NotHaos => {
            let _ = writeln!(s, "Home Assistant OS: no");
            for why in &r.reasons {
                let _ = writeln!(s, "  because: {why}");
            }
        }
    }
    if let Some(t) = &r.table {
        let _ = writeln!(
            s,
            "Partition table: {} (disk id {}){}",
            match t.kind {
                crate::table::TableKind::Gpt => "GPT",
                crate::table::TableKind::GptHybrid => "GPT with hybrid MBR",
                crate::table::TableKind::Mbr => "DOS MBR",
            },
            t.disk_id,
            r.family
                .map(|f| format!(
                    ", layout {}",
                    serde_json::to_value(f)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ))
                .unwrap_or_default()
        );
        let mut tab = Table::new(&["#", "START", "SIZE", "NAME/TYPE", "ROLE", "FILESYSTEM"]);
        for p in &r.partitions {
            let fs =
                p.fs.as_ref()
                    .map(|f| {
                        let mut d = f.fs_type.to_string();
                        if let Some(l) = &f.info.label {
                            let _ = write!(d, " '{l}'");
                        }
                        if let Some(u) = f.info.used_bytes {
                            let _ = write!(d, " {} used", human_bytes(u));
                        }
                        d
                    })
                    .unwrap_or_else(|| "-".into());
            tab.row(vec![
                format!("p{}", p.part.number),
                p.start_bytes.to_string(),
                human_bytes(p.size_bytes),
                p.part
                    .name
                    .clone()
                    .unwrap_or_else(|| p.part.type_id.clone()),
                p.role
                    .and_then(|r| serde_json::to_value(r).ok())
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "-".into()),
                fs,
            ]);
        }
        for line in tab.render().lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    if r.verdict != Verdict::NotHaos {
        for why in &r.reasons {
            let _ = writeln!(s, "Note: {why}");
        }
    }
    if let Some(a) = &r.active_slot {
        let _ = writeln!(
            s,
            "Active slot: {} (from {}: {}){}",
            a.slot,
            a.source,
            a.reason,
            if a.fallback { " [fallback]" } else { "" }
        );
    }
    for sl in &r.slots {
        let _ = writeln!(
            s,
            "Slot {}: OS {} (from {}), system {}{}",
            sl.slot,
            opt(&sl.version),
            sl.version_source.as_deref().unwrap_or("-"),
            sl.system_fs.as_deref().unwrap_or("-"),
            sl.rauc_status
                .as_deref()
                .map(|st| format!(", install status {st}"))
                .unwrap_or_default()
        );
    }
    if let Some(b) = &r.boot {
        let _ = writeln!(s, "Boot: p{}, {} boot loader", b.partition, b.bootloader);
        if b.tryboot_pending {
            let _ = writeln!(s, "  an OS update awaits its trial boot (tryboot.txt)");
        }
    }
    if let Some(m) = &r.machine_id {
        let _ = writeln!(s, "Machine id: {m}");
    }
    if let Some(d) = &r.data {
        let _ = writeln!(
            s,
            "Data: p{} '{}', {} of {} used{}",
            d.partition,
            opt(&d.label),
            d.used_bytes.map(human_bytes).unwrap_or_else(|| "?".into()),
            human_bytes(d.size_bytes),
            d.use_percent
                .map(|p| format!(" ({p}%)"))
                .unwrap_or_default()
        );
        if let Some(c) = &d.contents {
            let _ = writeln!(s, "Home Assistant Core: {}", opt(&c.core_version));
            let _ = writeln!(s, "Supervisor: {}", opt(&c.supervisor_version));
            if c.addons.is_empty() {
                let _ = writeln!(s, "Add-ons: none found");
            } else {
                let _ = writeln!(
                    s,
                    "Add-ons ({}, from {}):",
                    c.addons.len(),
                    opt(&c.addons_file)
                );
                for a in &c.addons {
                    let _ = writeln!(
                        s,
                        "  {} {}{}",
                        a.slug,
                        opt(&a.version),
                        a.name
                            .as_deref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default()
                    );
                }
            }
            if let Some(cd) = &c.config_dir {
                let _ = writeln!(
                    s,
                    "Config: {} (configuration.yaml {}, {} files in .storage{})",
                    cd.path,
                    if cd.configuration_yaml {
                        "present"
                    } else {
                        "MISSING"
                    },
                    cd.storage_files,
                    cd.database_bytes
                        .map(|b| format!(", database {}", human_bytes(b)))
                        .unwrap_or_default()
                );
            }
            if c.backups.is_empty() {
                let _ = writeln!(s, "Backups: none found");
            } else {
                let _ = writeln!(s, "Backups ({}):", c.backups.len());
                for b in &c.backups {
                    match &b.backup {
                        Some(m) => {
                            let _ = writeln!(
                                s,
                                "  {}  {}  {}  {}  {}{}",
                                b.path,
                                opt(&m.name),
                                opt(&m.date),
                                human_bytes(b.file_size),
                                m.kind.as_deref().unwrap_or("?"),
                                if m.protected {
                                    ", password-protected"
                                } else {
                                    ""
                                }
                            );
                        }
                        None => {
                            let _ = writeln!(
                                s,
                                "  {}  unreadable: {}",
                                b.path,
                                b.error.as_deref().unwrap_or("?")
                            );
                        }
                    }
                }
            }
            for p in &c.problems {
                let _ = writeln!(s, "Problem: {p}");
            }
        }
    }
    for p in &r.problems {
        let _ = writeln!(s, "Problem: {p}");
    }
    for u in &r.device_in_use {
        let _ = writeln!(
            s,
            "Warning: the disk is in use ({u}); what is mounted can change while it is read"
        );
    }
    s
}

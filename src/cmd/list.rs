//! `lifeboat list`: every disk with size, transport, model, removable, in use, and whether it
//! holds Home Assistant OS (and for which board).

use crate::cli::ListArgs;
use crate::device::{self, Disk, SysRoot};
use crate::error::Outcome;
use crate::haos;
use crate::report::{Output, SCHEMA_VERSION, Table, human_bytes};
use anyhow::{Context, Result};
use serde::Serialize;

/// HAOS facts for one disk in the listing.
#[derive(Debug, Clone, Serialize)]
pub struct HaosBrief {
    /// `haos`, `external_data_disk`, `not_haos`, or `unknown` when the disk could not be read.
    pub verdict: String,
    pub board: Option<String>,
    pub os_version: Option<String>,
    /// Why the disk could not be read, or why it is not HAOS.
    pub note: Option<String>,
}

/// One row of the listing.
#[derive(Debug, Clone, Serialize)]
pub struct ListedDisk {
    #[serde(flatten)]
    pub disk: Disk,
    pub in_use: bool,
    pub haos: Option<HaosBrief>,
    /// lifeboat's udev rules (`lifeboat udev install`) marked the disk or one of its
    /// partitions `LIFEBOAT_HAOS=1`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub udev_haos: bool,
}

/// The JSON document of `list`.
#[derive(Debug, Serialize)]
pub struct ListDoc {
    pub schema_version: u32,
    pub disks: Vec<ListedDisk>,
}

fn brief(disk: &Disk, root: &SysRoot) -> HaosBrief {
    // Disks are opened through the injected root's dev/ so tests can point elsewhere.
    let path = root
        .0
        .join(disk.path.strip_prefix("/").unwrap_or(&disk.path));
    match crate::io::source::open(&path).and_then(|s| haos::inspect(&s, haos::Depth::Quick)) {
        Ok(r) => HaosBrief {
            verdict: r.verdict_name().to_string(),
            board: r.board.as_ref().map(|b| b.id.clone()),
            os_version: r.os_version.clone(),
            note: if r.is_haos() {
                None
            } else {
                r.reasons.first().cloned()
            },
        },
        Err(e) => HaosBrief {
            verdict: "unknown".into(),
            board: None,
            os_version: None,
            note: Some(format!("{e:#}")),
        },
    }
}

/// True when the udev database marks the disk, or one of its partitions, `LIFEBOAT_HAOS=1`
/// (set by `udev/61-lifeboat.rules`). Unreadable records count as unmarked: informative only.
fn udev_marks_haos(disk: &Disk, root: &SysRoot) -> bool {
    let marked = |props: &std::collections::BTreeMap<String, String>| {
        props.get("LIFEBOAT_HAOS").is_some_and(|v| v == "1")
    };
    marked(&disk.udev)
        || disk.partitions.iter().any(|p| {
            std::fs::read_to_string(root.sys_block(&disk.name).join(&p.name).join("dev"))
                .ok()
                .and_then(|dev| {
                    std::fs::read_to_string(root.join(&format!("run/udev/data/b{}", dev.trim())))
                        .ok()
                })
                .is_some_and(|t| marked(&crate::sys::udev::parse_properties(&t)))
        })
}

/// Run `list`.
pub fn run(args: &ListArgs, out: &Output) -> Result<Outcome> {
    let root = SysRoot(args.sysfs_root.clone());
    let disks = device::discover(&root)
        .with_context(|| format!("listing disks under {}", args.sysfs_root.display()))?;
    let wanted = |d: &Disk| {
        args.devices.is_empty()
            || args
                .devices
                .iter()
                .any(|w| *w == d.path || w.as_os_str() == d.name.as_str())
    };
    for w in &args.devices {
        if !disks
            .iter()
            .any(|d| *w == d.path || w.as_os_str() == d.name.as_str())
        {
            anyhow::bail!(
                "{}: not a whole disk known to the kernel (see `lifeboat list`; partitions are listed with --partitions)",
                w.display()
            );
        }
    }
    let listed: Vec<ListedDisk> = disks
        .into_iter()
        .filter(|d| wanted(d))
        .map(|d| {
            let haos = (!args.no_probe).then(|| brief(&d, &root));
            ListedDisk {
                in_use: d.in_use(),
                haos,
                udev_haos: udev_marks_haos(&d, &root),
                disk: d,
            }
        })
        .collect();
    if out.json {
        out.json_doc(&ListDoc {
            schema_version: SCHEMA_VERSION,
            disks: listed,
        });
        return Ok(Outcome::Ok);
    }
    let mut t = Table::new(&[
        "DEVICE",
        "SIZE",
        "TRANSPORT",
        "MODEL",
        "REMOVABLE",
        "IN USE",
        "HAOS",
    ]);
    for l in &listed {
        let d = &l.disk;
        let mut haos = match &l.haos {
            None if l.udev_haos => "yes (udev)".to_string(),
            None => "-".to_string(),
            Some(h) => match h.verdict.as_str() {
                "haos" => format!(
                    "yes: {}{}",
                    h.board.as_deref().unwrap_or("board unknown"),
                    h.os_version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default()
                ),
                "external_data_disk" => "data disk".into(),
                "not_haos" => "no".into(),
                _ => "? (cannot read)".into(),
            },
        };
        if l.udev_haos && l.haos.as_ref().is_some_and(|h| h.verdict != "haos") {
            haos.push_str(" (udev: HAOS)");
        }
        let in_use = if d.system_disk {
            "yes (system)".to_string()
        } else if l.in_use {
            "yes".to_string()
        } else {
            "no".to_string()
        };
        t.row(vec![
            d.path.display().to_string(),
            human_bytes(d.size),
            d.transport.to_string(),
            d.model.clone().unwrap_or_else(|| "-".into()),
            if d.removable { "yes" } else { "no" }.into(),
            in_use,
            haos,
        ]);
        if args.partitions {
            for p in &d.partitions {
                let mut what = p.mountpoints.join(",");
                if p.swap {
                    what = "swap".into();
                }
                t.row(vec![
                    format!("  {}", p.path.display()),
                    human_bytes(p.size),
                    String::new(),
                    String::new(),
                    String::new(),
                    what,
                    String::new(),
                ]);
            }
        }
    }
    out.text(&t.render());
    if !out.quiet && !out.json {
        for l in &listed {
            if let crate::device::Ownership::InUse(reasons) = &l.disk.ownership {
                for r in reasons {
                    eprintln!("{}: in use: {r}", l.disk.path.display());
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

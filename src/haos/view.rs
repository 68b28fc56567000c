//! The offline view of a disk or image that `inspect` and `list` report: partition table,
//! filesystems, HAOS recognition, board, OS version per slot and the slot that boots next,
//! the U-Boot/GRUB/tryboot state, and (at full depth) the data partition's contents.
//! Everything is read through bounded windows; nothing is mounted or written.

use super::board::{self, Board};
use super::bootenv::{self, Slot, SlotChoice};
use super::data::{self, DataContents};
use super::layout::{self, Family, Recognition, Role, Verdict};
use super::{osrelease, rauc, rpiboot};
use crate::fs::{self, FsInfo, FsKind, fat::FatFs};
use crate::io::source::{OwnedWindow, Source, SourceKind};
use crate::io::{ReadAt, Window};
use crate::report::SCHEMA_VERSION;
use crate::table::{self, GptInfo, MbrEntry, Partition, TableError, TableKind};
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How much to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Table, filesystems, boot partition and bootstate (for `list`).
    Quick,
    /// Also the data partition: Supervisor state, add-ons, config, backups (for `inspect`).
    Full,
}

/// Limit for small files read from the boot partition.
const MAX_BOOT_FILE: u64 = 1 << 20;

/// What was opened.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub path: String,
    pub kind: SourceKind,
    pub size: u64,
    pub sector_size: u32,
}

/// Table facts without the partitions (those are listed with their roles).
#[derive(Debug, Clone, Serialize)]
pub struct TableView {
    pub kind: TableKind,
    pub sector_size: u32,
    pub disk_id: String,
    pub gpt: Option<GptInfo>,
    pub mbr_entries: Vec<MbrEntry>,
    pub problems: Vec<String>,
}

/// One partition with its role on an HAOS disk and the filesystem found in it.
#[derive(Debug, Clone, Serialize)]
pub struct PartView {
    #[serde(flatten)]
    pub part: Partition,
    pub start_bytes: u64,
    pub size_bytes: u64,
    pub role: Option<Role>,
    pub fs: Option<FsView>,
}

/// A probed filesystem with its short type name (`vfat`, `ext4`, `squashfs`, `erofs`).
#[derive(Debug, Clone, Serialize)]
pub struct FsView {
    #[serde(rename = "type")]
    pub fs_type: &'static str,
    #[serde(flatten)]
    pub info: FsInfo,
}

/// One A/B slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    pub slot: Slot,
    /// OS version installed in the slot, when known.
    pub version: Option<String>,
    /// Where the version came from: `rauc.db`, `rauc.db (data partition)`, `os-release`.
    pub version_source: Option<String>,
    pub kernel_partition: Option<u32>,
    pub system_partition: Option<u32>,
    /// Filesystem of the system partition (`erofs`, `squashfs`), or `empty`.
    pub system_fs: Option<String>,
    /// RAUC's install status for the rootfs slot (`ok`, or the failure), and when.
    pub rauc_status: Option<String>,
    pub installed: Option<String>,
    pub activated: Option<String>,
}

/// The slot that boots next.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveSlot {
    pub slot: Slot,
    /// `u-boot env`, `grubenv`, `cmdline.txt`, `config.txt`, `default`.
    pub source: String,
    pub reason: String,
    /// A fallback choice (tries exhausted, defaults after a bad env).
    pub fallback: bool,
}

/// The boot partition.
#[derive(Debug, Clone, Serialize)]
pub struct BootView {
    pub partition: u32,
    /// `u-boot`, `grub`, `rpi-tryboot`, or `unknown`.
    pub bootloader: String,
    /// Files and directories at the top level (and in EFI/BOOT, slot-A, slot-B).
    pub files: Vec<String>,
    pub rauc_db: bool,
    /// RPi5: an update awaits its trial boot (`tryboot.txt` present).
    pub tryboot_pending: bool,
}

/// The U-Boot environment in `hassos-bootstate`.
#[derive(Debug, Clone, Serialize)]
pub struct BootstateView {
    pub partition: u32,
    /// `valid`, `blank` (never written: defaults apply), `bad_crc`, `unreadable`.
    pub state: String,
    pub env_size: Option<usize>,
    pub boot_order: Option<String>,
    pub a_left: Option<u32>,
    pub b_left: Option<u32>,
}

/// The data partition.
#[derive(Debug, Clone, Serialize)]
pub struct DataView {
    pub partition: u32,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub size_bytes: u64,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// Percentage used, one decimal.
    pub use_percent: Option<f64>,
    #[serde(flatten)]
    pub contents: Option<DataContents>,
}

/// Everything `inspect` reports (docs/json.md).
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub schema_version: u32,
    pub source: SourceView,
    pub table: Option<TableView>,
    pub partitions: Vec<PartView>,
    pub verdict: Verdict,
    /// Why not HAOS, or notes on an HAOS disk (odd labels, PARTUUIDs…).
    pub reasons: Vec<String>,
    pub family: Option<Family>,
    pub board: Option<Board>,
    /// OS version of the slot that boots next.
    pub os_version: Option<String>,
    pub active_slot: Option<ActiveSlot>,
    pub slots: Vec<SlotView>,
    pub machine_id: Option<String>,
    pub spl_region_bytes: Option<u64>,
    pub boot: Option<BootView>,
    pub bootstate: Option<BootstateView>,
    pub data: Option<DataView>,
    /// Damage and things that could not be read, in plain words.
    pub problems: Vec<String>,
    /// For a block device: why the disk is in use (mounted, swap, held); empty when free.
    /// A mounted filesystem can change while it is read.
    pub device_in_use: Vec<String>,
}

impl InspectReport {
    /// True for HAOS boot disks.
    pub fn is_haos(&self) -> bool {
        self.verdict == Verdict::Haos
    }
    /// `haos`, `external_data_disk` or `not_haos`.
    pub fn verdict_name(&self) -> &'static str {
        match self.verdict {
            Verdict::Haos => "haos",
            Verdict::ExternalDataDisk => "external_data_disk",
            Verdict::NotHaos => "not_haos",
        }
    }
}

/// The boot partition's useful files.
#[derive(Default)]
struct BootFiles {
    files: Vec<String>,
    rauc_db: Option<Vec<u8>>,
    config_txt: Option<String>,
    cmdline_txt: Option<String>,
    grubenv: Option<Vec<u8>>,
    tryboot: bool,
}

fn read_boot(r: &dyn ReadAt, n: u32, problems: &mut Vec<String>) -> BootFiles {
    let mut b = BootFiles::default();
    let fat = match FatFs::open(r) {
        Ok(f) => f,
        Err(e) => {
            problems.push(format!("boot partition p{n}: cannot read FAT: {e}"));
            return b;
        }
    };
    for dir in ["/", "/EFI/BOOT", "/slot-A", "/slot-B"] {
        match fat.read_dir(dir) {
            Ok(entries) => {
                let prefix = dir.trim_start_matches('/');
                for e in entries {
                    let name = if prefix.is_empty() {
                        e.name.clone()
                    } else {
                        format!("{prefix}/{}", e.name)
                    };
                    b.files
                        .push(if e.is_dir { format!("{name}/") } else { name });
                }
            }
            Err(e) if dir == "/" => {
                problems.push(format!("boot partition p{n}: cannot list /: {e}"));
            }
            Err(_) => {}
        }
    }
    b.files.sort();
    let mut file = |path: &str| -> Option<Vec<u8>> {
        if !fat.exists(path) {
            return None;
        }
        match fat.read_file(path, MAX_BOOT_FILE) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("boot partition p{n}: {path}: {e}"));
                None
            }
        }
    };
    b.rauc_db = file("/rauc.db");
    b.config_txt = file("/config.txt").map(|v| String::from_utf8_lossy(&v).into_owned());
    b.cmdline_txt = file("/cmdline.txt").map(|v| String::from_utf8_lossy(&v).into_owned());
    b.grubenv = file("/EFI/BOOT/grubenv");
    b.tryboot = fat.exists("/tryboot.txt");
    b
}

fn slot_fs_name(f: Option<&FsInfo>, window: &dyn ReadAt) -> String {
    match f {
        Some(f) => fs::fs_name(&f.kind).to_string(),
        None => {
            let mut head = [0u8; 4096];
            let n = window.len().min(4096) as usize;
            if window.read_exact_at(&mut head[..n], 0).is_ok() && head[..n].iter().all(|&b| b == 0)
            {
                "empty".into()
            } else {
                "unknown".into()
            }
        }
    }
}

/// Read `/usr/lib/os-release` from a system slot, when its filesystem can be read.
fn read_os_release(f: Option<&FsInfo>, r: &dyn ReadAt) -> Result<osrelease::OsRelease> {
    let bytes: Vec<u8> = match f.map(|f| &f.kind) {
        Some(FsKind::Erofs { .. }) => {
            fs::erofs_read::read_file(r, "/usr/lib/os-release", 64 << 10)?
        }
        Some(FsKind::Squashfs { .. }) => {
            fs::squashfs_read::read_file(r, "/usr/lib/os-release", 64 << 10)?
        }
        Some(k) => bail!("holds {}, not a root filesystem", fs::fs_name(k)),
        None => bail!("holds no filesystem (never written?)"),
    };
    Ok(osrelease::parse_os_release_bytes(&bytes)?)
}

/// Inspect an opened disk or image.
pub fn inspect(src: &Source, depth: Depth) -> Result<InspectReport> {
    if let Some(c) = src.container {
        let p = src.path.display().to_string();
        bail!(
            "{p}: is a {} file, not a raw disk image; decompress it first ({}) and inspect the result",
            c.name(),
            c.how_to_unpack(&p)
        );
    }
    let view = SourceView {
        path: src.path.display().to_string(),
        kind: src.kind,
        size: src.size,
        sector_size: src.sector_size,
    };
    inspect_reader(src.reader(), view, depth)
}

/// Inspect any reader (an image in memory, for tests and fuzzing); `view` describes it.
pub fn inspect_reader(
    reader: Arc<dyn ReadAt + Send + Sync>,
    view: SourceView,
    depth: Depth,
) -> Result<InspectReport> {
    let src = &view;
    let r: &dyn ReadAt = &*reader;
    let mut rep = InspectReport {
        schema_version: SCHEMA_VERSION,
        source: view.clone(),
        table: None,
        partitions: Vec::new(),
        verdict: Verdict::NotHaos,
        reasons: Vec::new(),
        family: None,
        board: None,
        os_version: None,
        active_slot: None,
        slots: Vec::new(),
        machine_id: None,
        spl_region_bytes: None,
        boot: None,
        bootstate: None,
        data: None,
        problems: Vec::new(),
        device_in_use: Vec::new(),
    };
    if src.size < 512 {
        bail!(
            "{}: only {} bytes: too small to hold a partition table (truncated?)",
            rep.source.path,
            src.size
        );
    }
    let t = match table::read_table(r, src.sector_size) {
        Ok(t) => t,
        Err(TableError::NotFound(why)) => {
            rep.reasons.push(format!("no partition table: {why}"));
            if let Ok(Some(f)) = fs::probe(r) {
                let haos_label = f
                    .label
                    .as_deref()
                    .is_some_and(|l| l.to_ascii_lowercase().starts_with("hassos-"));
                rep.reasons.push(format!(
                    "it holds a {} filesystem{} without a partition table{}",
                    fs::fs_name(&f.kind),
                    f.label
                        .as_deref()
                        .map(|l| format!(" labelled '{l}'"))
                        .unwrap_or_default(),
                    if haos_label {
                        ": this is one partition of an HAOS disk, not the disk; inspect the \
                         whole disk (e.g. /dev/sdb, not /dev/sdb8)"
                    } else {
                        ""
                    }
                ));
            }
            return Ok(rep);
        }
        Err(TableError::Damaged(why)) => {
            rep.reasons
                .push(format!("partition table damaged beyond use: {why}"));
            rep.problems.push(why);
            return Ok(rep);
        }
        Err(TableError::Io(e)) => {
            return Err(anyhow::Error::new(e)
                .context(format!("{}: reading the partition table", rep.source.path)));
        }
    };
    let ss = t.sector_size;
    // Filesystems in every partition.
    let mut fsmap = BTreeMap::new();
    for p in &t.partitions {
        if p.kind == table::EntryKind::Extended {
            continue;
        }
        let (start, size) = (p.start_bytes(ss), p.size_bytes(ss));
        if start.saturating_add(size) > src.size {
            rep.problems.push(format!(
                "p{} ends at byte {} but the {} ends at {}: truncated image or smaller disk",
                p.number,
                start.saturating_add(size),
                if src.kind == SourceKind::ImageFile {
                    "image"
                } else {
                    "disk"
                },
                src.size
            ));
        }
        let w = Window::new(r, start, size);
        match fs::probe(&w) {
            Ok(Some(f)) => {
                fsmap.insert(p.number, f);
            }
            Ok(None) => {}
            Err(e) => rep
                .problems
                .push(format!("p{}: cannot read its first bytes: {e}", p.number)),
        }
    }
    let rec: Recognition = layout::recognise(&t, &fsmap);
    rep.verdict = rec.verdict;
    rep.family = rec.family;
    rep.reasons = rec.reasons.clone();
    rep.spl_region_bytes = rec.spl_region_bytes;
    rep.partitions = t
        .partitions
        .iter()
        .map(|p| PartView {
            part: p.clone(),
            start_bytes: p.start_bytes(ss),
            size_bytes: p.size_bytes(ss),
            role: rec
                .roles
                .iter()
                .find(|rp| rp.number == p.number)
                .map(|rp| rp.role),
            fs: fsmap.get(&p.number).map(|f| FsView {
                fs_type: fs::fs_name(&f.kind),
                info: f.clone(),
            }),
        })
        .collect();
    rep.problems.extend(t.problems.iter().cloned());
    rep.table = Some(TableView {
        kind: t.kind,
        sector_size: ss,
        disk_id: t.disk_id.clone(),
        gpt: t.gpt.clone(),
        mbr_entries: t.mbr_entries.clone(),
        problems: t.problems.clone(),
    });
    let part_window = |n: u32| {
        t.partition(n)
            .map(|p| Window::new(r, p.start_bytes(ss), p.size_bytes(ss)))
    };
    let owned_window = |n: u32| {
        t.partition(n)
            .map(|p| OwnedWindow::new(Arc::clone(&reader), p.start_bytes(ss), p.size_bytes(ss)))
    };

    if rec.verdict == Verdict::NotHaos {
        return Ok(rep);
    }

    // Boot partition.
    let mut boot_files = BootFiles::default();
    if let (Some(n), Some(w)) = (
        rec.part(Role::Boot),
        rec.part(Role::Boot).and_then(part_window),
    ) {
        boot_files = read_boot(&w, n, &mut rep.problems);
    }
    let rauc_status = boot_files.rauc_db.as_deref().and_then(|b| {
        rauc::parse_rauc_status_bytes(b)
            .map_err(|e| {
                rep.problems
                    .push(format!("rauc.db on the boot partition: {e}"))
            })
            .ok()
    });
    let rpi5 = boot_files
        .files
        .iter()
        .any(|f| f.starts_with("slot-A/") || f.starts_with("slot-B/"))
        || boot_files
            .config_txt
            .as_deref()
            .is_some_and(|c| rpiboot::parse_config_txt(c).os_prefix.is_some());
    let bootloader = if boot_files.grubenv.is_some()
        || boot_files
            .files
            .iter()
            .any(|f| f.eq_ignore_ascii_case("EFI/BOOT/grub.cfg"))
    {
        "grub"
    } else if rpi5 {
        "rpi-tryboot"
    } else if rec.part(Role::Bootstate).is_some() && rec.family != Some(Family::ExternalData) {
        "u-boot"
    } else {
        "unknown"
    };
    if let Some(n) = rec.part(Role::Boot) {
        rep.boot = Some(BootView {
            partition: n,
            bootloader: bootloader.into(),
            files: boot_files.files.clone(),
            rauc_db: boot_files.rauc_db.is_some(),
            tryboot_pending: boot_files.tryboot,
        });
    }

    // Which slot boots next.
    let mut choice: Option<(SlotChoice, &str)> = None;
    match bootloader {
        "grub" => match boot_files.grubenv.as_deref().map(bootenv::parse_grubenv) {
            Some(Ok(g)) => {
                rep.machine_id = g.machine_id.clone();
                choice = Some((g.active_slot(), "grubenv"));
            }
            Some(Err(e)) => rep.problems.push(format!("EFI/BOOT/grubenv: {e}")),
            None => rep.problems.push("EFI/BOOT/grubenv is missing".into()),
        },
        "rpi-tryboot" => {
            let cl = boot_files
                .cmdline_txt
                .as_deref()
                .map(rpiboot::parse_cmdline_txt);
            if let Some(cl) = &cl {
                rep.machine_id = cl.machine_id.clone();
            }
            let prefix = boot_files
                .config_txt
                .as_deref()
                .and_then(|c| rpiboot::parse_config_txt(c).os_prefix_slot());
            if let Some(s) = cl.as_ref().and_then(|c| c.rauc_slot) {
                choice = Some((
                    SlotChoice {
                        slot: s,
                        reason: format!("cmdline.txt has rauc.slot={s}"),
                        fallback: false,
                    },
                    "cmdline.txt",
                ));
            } else if let Some(s) = prefix {
                choice = Some((
                    SlotChoice {
                        slot: s,
                        reason: format!("config.txt has os_prefix=slot-{s}/"),
                        fallback: false,
                    },
                    "config.txt",
                ));
            }
        }
        "u-boot" => {
            if let (Some(n), Some(w)) = (
                rec.part(Role::Bootstate),
                rec.part(Role::Bootstate).and_then(part_window),
            ) {
                let len = w.len().min(0x8000) as usize;
                let mut view = BootstateView {
                    partition: n,
                    state: "unreadable".into(),
                    env_size: None,
                    boot_order: None,
                    a_left: None,
                    b_left: None,
                };
                match crate::io::read_vec(&w, 0, len) {
                    Ok(block) => match bootenv::parse_uboot_env(&block) {
                        Ok(env) => {
                            view.state = if env.is_blank() { "blank" } else { "valid" }.into();
                            view.env_size = env.env_size;
                            view.boot_order = env.boot_order.clone();
                            view.a_left = env.a_left;
                            view.b_left = env.b_left;
                            rep.machine_id = env.machine_id.clone();
                            choice = Some((env.active_slot(), "u-boot env"));
                        }
                        Err(e) => {
                            view.state = "bad_crc".into();
                            rep.problems.push(format!("bootstate p{n}: {e}"));
                            choice = Some((bootenv::uboot_default_choice(), "default"));
                        }
                    },
                    Err(e) => rep.problems.push(format!("bootstate p{n}: {e}")),
                }
                rep.bootstate = Some(view);
            }
        }
        _ => {}
    }
    rep.active_slot = choice.map(|(c, src)| ActiveSlot {
        slot: c.slot,
        source: src.into(),
        reason: c.reason,
        fallback: c.fallback,
    });

    // Data partition (full depth), which may hold the pre-15.0 rauc.db.
    let mut legacy_rauc = None;
    let data_role = if rec.family == Some(Family::ExternalData) {
        Role::DataExternal
    } else {
        Role::Data
    };
    if let Some(n) = rec.part(data_role) {
        let f = fsmap.get(&n);
        let (size_bytes, used) = match f {
            Some(f) => (f.size_bytes, f.used_bytes),
            None => (t.partition(n).map(|p| p.size_bytes(ss)).unwrap_or(0), None),
        };
        let mut dv = DataView {
            partition: n,
            label: f.and_then(|f| f.label.clone()),
            uuid: f.and_then(|f| f.uuid.clone()),
            size_bytes,
            used_bytes: used,
            free_bytes: used.map(|u| size_bytes.saturating_sub(u)),
            use_percent: used
                .filter(|_| size_bytes > 0)
                .map(|u| (u as f64 * 1000.0 / size_bytes as f64).round() / 10.0),
            contents: None,
        };
        if depth == Depth::Full
            && matches!(f.map(|f| &f.kind), Some(FsKind::Ext { .. }))
            && let Some(w) = owned_window(n)
        {
            match data::open(w, &format!("data partition p{n}")) {
                Ok(ext) => {
                    let c = data::read_contents(&ext);
                    legacy_rauc = c.legacy_rauc_db.clone();
                    dv.contents = Some(c);
                }
                Err(e) => rep.problems.push(format!("{e:#}")),
            }
        }
        rep.data = Some(dv);
    }

    // Versions per slot.
    let legacy_status = if rauc_status.is_none() {
        legacy_rauc.as_deref().and_then(|b| {
            rauc::parse_rauc_status_bytes(b)
                .map_err(|e| {
                    rep.problems
                        .push(format!("rauc.db on the data partition: {e}"))
                })
                .ok()
        })
    } else {
        None
    };
    let mut os_rel_board = None;
    if rec.family != Some(Family::ExternalData) {
        for slot in [Slot::A, Slot::B] {
            let (kr, sr) = match slot {
                Slot::A => (Role::Kernel0, Role::System0),
                Slot::B => (Role::Kernel1, Role::System1),
            };
            let sys_n = rec.part(sr);
            let sys_w = sys_n.and_then(part_window);
            let sys_fs = sys_n.and_then(|n| fsmap.get(&n));
            let mut sv = SlotView {
                slot,
                version: None,
                version_source: None,
                kernel_partition: rec.part(kr),
                system_partition: sys_n,
                system_fs: sys_w.as_ref().map(|w| slot_fs_name(sys_fs, w)),
                rauc_status: None,
                installed: None,
                activated: None,
            };
            for (st, label) in [
                (&rauc_status, "rauc.db"),
                (&legacy_status, "rauc.db (data partition)"),
            ] {
                if let Some(st) = st
                    && let Some(s) = st.slot("rootfs", slot.index())
                {
                    if sv.version.is_none() && s.bundle_version.is_some() {
                        sv.version = s.bundle_version.clone();
                        sv.version_source = Some(label.into());
                    }
                    sv.rauc_status = sv.rauc_status.take().or(s.status.clone());
                    sv.installed = sv.installed.take().or(s.installed_timestamp.clone());
                    sv.activated = sv.activated.take().or(s.activated_timestamp.clone());
                }
            }
            let is_active = rep.active_slot.as_ref().is_some_and(|a| a.slot == slot);
            let want_os_release = sv.version.is_none() && (depth == Depth::Full || is_active);
            if want_os_release
                && let Some(w) = &sys_w
                && sv.system_fs.as_deref() != Some("empty")
            {
                match read_os_release(sys_fs, w) {
                    Ok(osr) => {
                        if sv.version.is_none() && osr.version_id().is_some() {
                            sv.version = osr.version_id().map(String::from);
                            sv.version_source = Some("os-release".into());
                        }
                        if is_active || os_rel_board.is_none() {
                            os_rel_board = osr.variant_id().map(String::from);
                        }
                    }
                    Err(e) => rep.problems.push(format!(
                        "slot {slot} (p{}): cannot read /usr/lib/os-release: {e:#}",
                        sys_n.unwrap_or(0)
                    )),
                }
            }
            rep.slots.push(sv);
        }
    }
    rep.os_version = rep.active_slot.as_ref().and_then(|a| {
        rep.slots
            .iter()
            .find(|s| s.slot == a.slot)
            .and_then(|s| s.version.clone())
    });

    // Board: os-release, then RAUC's compatible, then boot files.
    rep.board = os_rel_board
        .map(|id| board::from_id(&id, "os-release"))
        .or_else(|| {
            rauc_status
                .as_ref()
                .or(legacy_status.as_ref())
                .and_then(|s| {
                    s.compatibles()
                        .into_iter()
                        .find_map(|c| board::from_compatible(c, "rauc.db"))
                })
        })
        .or_else(|| board::from_boot_files(&boot_files.files, boot_files.config_txt.as_deref()));
    if rep.board.is_none() && rec.verdict == Verdict::Haos {
        rep.problems.push(
            "board not identified: no rauc.db, readable os-release or known boot files".into(),
        );
    }
    Ok(rep)
}

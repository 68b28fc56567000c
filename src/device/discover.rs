//! Discovery of whole disks from sysfs and procfs under an injectable root ([`SysRoot`]):
//! `/` on a real system, `tests/fixtures/sysfs/<case>/` in tests.
//!
//! What is read, per `sys/block/<name>`:
//! - `dev` (`major:minor`), `size` (always 512-byte units), `ro`, `removable`,
//!   `queue/{logical,physical}_block_size`, `holders/`, `slaves/`, `hidden`;
//! - partitions: subdirectories holding a `partition` file (`partition`, `start`, `size`,
//!   `dev`, `holders/`);
//! - `device` → [`super::transport`]; `device/model` (or `device/name` for MMC);
//!   serial from `device/serial`, the block-level `serial` (virtio), `device/vpd_pg80`
//!   (SCSI/ATA unit serial) or udev's `ID_SERIAL_SHORT`;
//! - `loop/backing_file` for loop devices;
//! - `proc/self/mountinfo`, matched to disks and partitions by `major:minor`; the source
//!   string is only a second signal (a FUSE block filesystem such as ntfs-3g has an anonymous
//!   `0:N` there and `/dev/sdb1` as source);
//! - `proc/swaps`, resolved to a device number (`stat` on the host, names in a fixture);
//! - `run/udev/data/b<major>:<minor>` when present (keys `ID_*` and `LIFEBOAT_*`).
//!
//! Listed: every `sys/block` entry except RAM disks (`ram*`, `zram*`), device-mapper and md
//! (`dm-*`, `md*`: virtual, never a target; they are still followed through `holders/` and
//! `slaves/`), eMMC hardware boot areas (`mmcblkNbootM`), hidden NVMe multipath paths
//! (`nvmeXcYnZ`, `hidden` = 1), and unbound loop/nbd devices (no backing file, size 0).
//!
//! The disk holding the running system: the device of `/` (and `/boot`, `/boot/efi`, `/efi`,
//! `/boot/firmware`, `/usr`, `/var`) → its partition → the parent disk; through dm/md via
//! `slaves/`, recursively, to the physical disks.
//!
//! Ownership is decided fail-closed by [`super::ownership::decide`]: every attribute that
//! could not be read becomes a reason, and so does a `/` that cannot be traced to a disk.
//!
//! ## The `blockdev` crate
//! `blockdev` 0.6 walks `/sys` and `/proc` like `lsblk` and takes an alternate root
//! (`get_devices_at`), so it can run on the fixture trees. It is not the primary walk here:
//! it lacks partition start and number, sector sizes, the `device` link, loop backing files
//! and `holders/` names, and it is fail-open by design (a device whose `dev` is unreadable is
//! silently dropped, unreadable attributes read as 0/false, malformed mountinfo lines are
//! skipped). It is used as an independent second opinion: whatever it reports mounted, swap,
//! or holding `/` on a disk's tree is added to that disk's facts (which can only make a disk
//! *more* in use, never less), and if it fails, every disk is assumed in use.

use super::ownership::{Fact, decide};
use super::transport;
use super::{DevPartition, Disk};
use crate::sys::mountinfo::{self, MountInfo};
use crate::sys::stat::DevNum;
use crate::sys::swaps::{self, SwapEntry};
use crate::sys::udev;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Root under which `sys/`, `proc/` and `run/udev` are read: `/` normally.
#[derive(Debug, Clone)]
pub struct SysRoot(pub PathBuf);

impl SysRoot {
    /// The running system's root, `/`.
    pub fn host() -> Self {
        SysRoot(PathBuf::from("/"))
    }

    /// `rel` (e.g. `sys/block`, `/proc/swaps`) under the root.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel.trim_start_matches('/'))
    }

    /// `sys/block/<name>`.
    pub fn sys_block(&self, name: &str) -> PathBuf {
        self.join("sys/block").join(name)
    }

    /// True when this is the running system's own root (so `/dev` nodes can be `stat`ed).
    pub fn is_host(&self) -> bool {
        self.0 == Path::new("/")
    }
}

/// Mount points whose device marks a disk as the system disk.
const SYSTEM_MOUNTS: &[&str] = &[
    "/",
    "/boot",
    "/boot/efi",
    "/efi",
    "/boot/firmware",
    "/usr",
    "/var",
];

/// Filesystem types a `/` can have without living on any disk.
const RAM_ROOT_TYPES: &[&str] = &["rootfs", "tmpfs", "ramfs"];

/// Cap on dm/md stacking when following `slaves/`.
const MAX_STACK_DEPTH: usize = 16;

/// udev property prefixes kept in [`Disk::udev`].
const UDEV_PREFIXES: &[&str] = &["ID_", "LIFEBOAT_"];

/// Discover whole disks under `root`, with partitions, mounts, swap, holders, transport, the
/// system disk, and a fail-closed [`super::Ownership`] for each. Errors only when
/// `sys/block` itself cannot be listed; everything else unreadable becomes a reason on the
/// disks it concerns (or on all of them).
pub fn discover(root: &SysRoot) -> Result<Vec<Disk>> {
    let block_dir = root.join("sys/block");
    let mut names: Vec<String> = Vec::new();
    for e in fs::read_dir(&block_dir)
        .with_context(|| format!("listing block devices in {}", block_dir.display()))?
    {
        let e = e.with_context(|| format!("listing block devices in {}", block_dir.display()))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();

    let mut global: Vec<Fact> = Vec::new();
    let mounts = read_mounts(root, &mut global);
    let swaps = read_swaps(root, mounts.is_some(), &mut global);
    let mounts = mounts.unwrap_or_default();

    let index = Index::build(root, &names);

    // The running system's disks: disk name → facts.
    let mut system: BTreeMap<String, Vec<Fact>> = BTreeMap::new();
    find_system_disks(root, &index, &mounts, &mut system, &mut global);

    // Swap areas resolved to device names; unresolvable ones make everything uncertain.
    let mut swap_names: BTreeSet<String> = BTreeSet::new();
    for s in swaps.iter().filter(|s| s.is_partition()) {
        match index.resolve_dev_path(root, &s.filename) {
            Some(n) => {
                swap_names.insert(n);
            }
            None => global.push(Fact::Uncertain(format!(
                "active swap {} could not be matched to a block device",
                s.filename
            ))),
        }
    }

    let mut disks = Vec::new();
    for name in &names {
        let Some(node) = index.nodes.get(name) else {
            continue;
        };
        let mut facts = node.problems.clone();
        if !should_list(root, name, node, &mut facts) {
            continue;
        }
        let mut disk = probe_disk(root, &index, node, &mounts, &swap_names, facts);
        if let Some(sys) = system.get(name) {
            disk.disk.system_disk = true;
            disk.facts.extend(sys.iter().cloned());
        }
        disk.facts.extend(global.iter().cloned());
        disks.push(disk);
    }

    cross_check_with_blockdev(root, &index, &mut disks);

    Ok(disks
        .into_iter()
        .map(|mut p| {
            p.disk.ownership = decide(&p.facts);
            p.disk
        })
        .collect())
}

/// The device number of `sys/block/<name>`, for checking that an opened `/dev` node is the
/// disk discovery described (compare with [`crate::sys::file_device_number`]).
pub fn disk_devnum(root: &SysRoot, name: &str) -> Result<DevNum> {
    let p = root.sys_block(name).join("dev");
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    text.parse()
        .with_context(|| format!("parsing {}", p.display()))
}

// ------------------------------------------------------------------------------------------
// Reading attributes

/// `what` for a sysfs path, shown as the path under the root.
fn attr_name(p: &Path) -> String {
    format!("sysfs attribute {}", p.display())
}

/// Read a required attribute; on failure record a fact and return `None`.
fn attr(p: &Path, facts: &mut Vec<Fact>) -> Option<String> {
    match fs::read_to_string(p) {
        Ok(s) => Some(s.trim().to_string()),
        Err(e) => {
            facts.push(Fact::Unreadable {
                what: attr_name(p),
                error: e.to_string(),
            });
            None
        }
    }
}

/// Read an optional attribute: absent is `None` quietly; any other failure is a fact.
fn opt_attr(p: &Path, facts: &mut Vec<Fact>) -> Option<String> {
    match fs::read_to_string(p) {
        Ok(s) => Some(s.trim().to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            facts.push(Fact::Unreadable {
                what: attr_name(p),
                error: e.to_string(),
            });
            None
        }
    }
}

/// Parse a required attribute with `parse`; unreadable or unparsable is a fact.
fn parsed<T>(p: &Path, facts: &mut Vec<Fact>, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    let s = attr(p, facts)?;
    let v = parse(&s);
    if v.is_none() {
        facts.push(Fact::Unreadable {
            what: attr_name(p),
            error: format!("unexpected content {s:?}"),
        });
    }
    v
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Entries of a sysfs directory listing (`holders/`, `slaves/`), sorted; dot-files are not
/// kernel names (fixture trees keep empty directories in git with a `.keep`).
fn list_names(dir: &Path, facts: &mut Vec<Fact>) -> Vec<String> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            facts.push(Fact::Unreadable {
                what: format!("sysfs directory {}", dir.display()),
                error: e.to_string(),
            });
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for e in rd {
        match e {
            Ok(e) => {
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with('.') {
                    out.push(n);
                }
            }
            Err(e) => facts.push(Fact::Unreadable {
                what: format!("sysfs directory {}", dir.display()),
                error: e.to_string(),
            }),
        }
    }
    out.sort();
    out
}

fn read_mounts(root: &SysRoot, global: &mut Vec<Fact>) -> Option<Vec<MountInfo>> {
    let p = root.join("proc/self/mountinfo");
    match fs::read_to_string(&p) {
        Ok(text) => match mountinfo::parse(&text) {
            Ok(m) => Some(m),
            Err(e) => {
                global.push(Fact::Unreadable {
                    what: format!("the mount table {}", p.display()),
                    error: e.to_string(),
                });
                None
            }
        },
        Err(e) => {
            global.push(Fact::Unreadable {
                what: format!("the mount table {}", p.display()),
                error: e.to_string(),
            });
            None
        }
    }
}

/// `/proc/swaps` exists whenever the kernel supports swap. When it is absent but the mount
/// table was readable (so procfs is there), the kernel has no swap support: no swap.
fn read_swaps(root: &SysRoot, proc_ok: bool, global: &mut Vec<Fact>) -> Vec<SwapEntry> {
    let p = root.join("proc/swaps");
    let what = || format!("the swap table {}", p.display());
    match fs::read_to_string(&p) {
        Ok(text) => match swaps::parse(&text) {
            Ok(s) => s,
            Err(e) => {
                global.push(Fact::Unreadable {
                    what: what(),
                    error: e.to_string(),
                });
                Vec::new()
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound && proc_ok => Vec::new(),
        Err(e) => {
            global.push(Fact::Unreadable {
                what: what(),
                error: e.to_string(),
            });
            Vec::new()
        }
    }
}

// ------------------------------------------------------------------------------------------
// The index of every block device (listed or not) and its partitions

#[derive(Debug, Clone)]
struct PartNode {
    name: String,
    dir: PathBuf,
    devnum: Option<DevNum>,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    dir: PathBuf,
    devnum: Option<DevNum>,
    partitions: Vec<PartNode>,
    /// Problems met while indexing (unreadable `dev`, unlistable directory).
    problems: Vec<Fact>,
}

#[derive(Debug, Default)]
struct Index {
    nodes: BTreeMap<String, Node>,
    /// Partition name → disk name.
    parent: HashMap<String, String>,
    /// Device number → kernel name (disk or partition).
    by_devnum: HashMap<DevNum, String>,
    /// dm name (`vg0-root`) → kernel name (`dm-1`).
    dm_names: HashMap<String, String>,
}

impl Index {
    fn build(root: &SysRoot, names: &[String]) -> Index {
        let mut ix = Index::default();
        for name in names {
            let dir = root.sys_block(name);
            let mut problems = Vec::new();
            let devnum = parsed(&dir.join("dev"), &mut problems, |s| s.parse().ok());
            let mut partitions = Vec::new();
            match fs::read_dir(&dir) {
                Ok(rd) => {
                    for e in rd {
                        let e = match e {
                            Ok(e) => e,
                            Err(err) => {
                                problems.push(Fact::Unreadable {
                                    what: format!("sysfs directory {}", dir.display()),
                                    error: err.to_string(),
                                });
                                continue;
                            }
                        };
                        let pdir = e.path();
                        if !pdir.join("partition").exists() {
                            continue;
                        }
                        let pname = e.file_name().to_string_lossy().into_owned();
                        let pdev = parsed(&pdir.join("dev"), &mut problems, |s| s.parse().ok());
                        partitions.push(PartNode {
                            name: pname,
                            dir: pdir,
                            devnum: pdev,
                        });
                    }
                }
                Err(e) => problems.push(Fact::Unreadable {
                    what: format!("sysfs directory {}", dir.display()),
                    error: e.to_string(),
                }),
            }
            partitions.sort_by(|a, b| a.name.cmp(&b.name));
            if name.starts_with("dm-")
                && let Ok(n) = fs::read_to_string(dir.join("dm/name"))
            {
                ix.dm_names.insert(n.trim().to_string(), name.clone());
            }
            if let Some(d) = devnum {
                ix.by_devnum.insert(d, name.clone());
            }
            for p in &partitions {
                ix.parent.insert(p.name.clone(), name.clone());
                if let Some(d) = p.devnum {
                    ix.by_devnum.insert(d, p.name.clone());
                }
            }
            ix.nodes.insert(
                name.clone(),
                Node {
                    name: name.clone(),
                    dir,
                    devnum,
                    partitions,
                    problems,
                },
            );
        }
        ix
    }

    /// `/dev/<name>`, or `/dev/mapper/<dm name>` for a device-mapper device.
    fn dev_display(&self, name: &str) -> String {
        match self.dm_names.iter().find(|(_, k)| *k == name) {
            Some((dm, _)) => format!("/dev/mapper/{dm}"),
            None => format!("/dev/{name}"),
        }
    }

    fn known(&self, name: &str) -> bool {
        self.nodes.contains_key(name) || self.parent.contains_key(name)
    }

    /// A `/dev/…` path as the kernel prints it (mountinfo source, `/proc/swaps`) → kernel
    /// name. On the host the node is `stat`ed for its device number; in a fixture (or when
    /// that fails) the name is taken from the path: `/dev/X` or `/dev/mapper/<dm name>`.
    fn resolve_dev_path(&self, root: &SysRoot, path: &str) -> Option<String> {
        if root.is_host()
            && let Ok(d) = crate::sys::stat::block_device_number(Path::new(path))
            && let Some(n) = self.by_devnum.get(&d)
        {
            return Some(n.clone());
        }
        if let Some(m) = path.strip_prefix("/dev/mapper/") {
            return self.dm_names.get(m).cloned();
        }
        let n = path.strip_prefix("/dev/")?;
        self.known(n).then(|| n.to_string())
    }

    /// The mount's device: by number, else by its source path.
    fn resolve_mount(&self, root: &SysRoot, m: &MountInfo) -> Option<String> {
        if let Some(n) = self.by_devnum.get(&m.dev) {
            return Some(n.clone());
        }
        self.resolve_dev_path(root, &m.source)
    }

    /// The physical disks under a device: a partition's disk, a disk itself, or for a disk
    /// with `slaves/` (dm, md) the disks under each slave, recursively.
    fn physical_disks(
        &self,
        name: &str,
        depth: usize,
        out: &mut BTreeSet<String>,
        problems: &mut Vec<Fact>,
    ) {
        if depth > MAX_STACK_DEPTH {
            problems.push(Fact::Uncertain(format!(
                "block devices are stacked deeper than {MAX_STACK_DEPTH} levels at {name}"
            )));
            return;
        }
        if let Some(disk) = self.parent.get(name) {
            out.insert(disk.clone());
            return;
        }
        let Some(node) = self.nodes.get(name) else {
            problems.push(Fact::Uncertain(format!(
                "{name} is not a known block device"
            )));
            return;
        };
        let slaves_dir = node.dir.join("slaves");
        let slaves = if slaves_dir.exists() {
            list_names(&slaves_dir, problems)
        } else {
            Vec::new()
        };
        if slaves.is_empty() {
            out.insert(name.to_string());
        } else {
            for s in slaves {
                self.physical_disks(&s, depth + 1, out, problems);
            }
        }
    }
}

fn find_system_disks(
    root: &SysRoot,
    index: &Index,
    mounts: &[MountInfo],
    system: &mut BTreeMap<String, Vec<Fact>>,
    global: &mut Vec<Fact>,
) {
    let mut saw_root = false;
    for m in mounts
        .iter()
        .filter(|m| SYSTEM_MOUNTS.contains(&m.mount_point.as_str()))
    {
        let is_root = m.mount_point == "/";
        saw_root |= is_root;
        let Some(dev) = index.resolve_mount(root, m) else {
            if is_root && !RAM_ROOT_TYPES.contains(&m.fs_type.as_str()) {
                global.push(Fact::Uncertain(format!(
                    "could not tell which disk holds the running system (/ is {} from {} on {})",
                    m.fs_type, m.source, m.dev
                )));
            }
            continue;
        };
        let mut disks = BTreeSet::new();
        index.physical_disks(&dev, 0, &mut disks, global);
        for d in disks {
            system.entry(d).or_default().push(Fact::System {
                mount_point: m.mount_point.clone(),
                device: index.dev_display(&dev),
            });
        }
    }
    if !saw_root && !mounts.is_empty() {
        global.push(Fact::Uncertain(
            "the mount table has no / (cannot tell which disk holds the running system)".into(),
        ));
    }
}

// ------------------------------------------------------------------------------------------
// One disk

/// Whether `sys/block/<name>` is a disk to list (see the module docs for what is skipped).
fn should_list(root: &SysRoot, name: &str, node: &Node, facts: &mut Vec<Fact>) -> bool {
    let virtual_prefixes = ["ram", "zram", "dm-", "md"];
    if virtual_prefixes.iter().any(|p| name.starts_with(p)) || is_mmc_hw_area(name) {
        return false;
    }
    let dir = &node.dir;
    if opt_attr(&dir.join("hidden"), facts).as_deref() == Some("1") {
        return false;
    }
    if name.starts_with("loop") || name.starts_with("nbd") {
        let bound = root.sys_block(name).join("loop/backing_file").exists()
            || name.starts_with("nbd") && root.sys_block(name).join("pid").exists();
        let size = opt_attr(&dir.join("size"), facts)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        return bound || size > 0;
    }
    true
}

/// `mmcblk0boot0`, `mmcblk0boot1`, `mmcblk0rpmb`: eMMC hardware areas, not user media.
fn is_mmc_hw_area(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("mmcblk") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let tail = &rest[digits..];
    digits > 0
        && (tail == "rpmb"
            || tail
                .strip_prefix("boot")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// A disk being assembled, with the facts that will decide its ownership.
struct Probed {
    disk: Disk,
    facts: Vec<Fact>,
}

fn mount_points_of(
    root: &SysRoot,
    index: &Index,
    name: &str,
    devnum: Option<DevNum>,
    mounts: &[MountInfo],
) -> Vec<String> {
    let dev_path = format!("/dev/{name}");
    let mut out: Vec<String> = Vec::new();
    for m in mounts {
        let by_num = devnum == Some(m.dev);
        // Second signal: an anonymous device number (FUSE) but our node as the source.
        let by_source = m.dev.major == 0
            && (m.source == dev_path
                || (m.source.starts_with("/dev/")
                    && index.resolve_dev_path(root, &m.source).as_deref() == Some(name)));
        if (by_num || by_source) && !out.contains(&m.mount_point) {
            out.push(m.mount_point.clone());
        }
    }
    out
}

/// Serial from a SCSI VPD page 0x80 (Unit Serial Number): 4-byte header, then ASCII.
fn vpd80_serial(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 4 || bytes[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let body = bytes.get(4..4 + len)?;
    if !body
        .iter()
        .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == 0)
    {
        return None;
    }
    let s = String::from_utf8_lossy(body)
        .trim_matches(|c: char| c == ' ' || c == '\0')
        .to_string();
    (!s.is_empty()).then_some(s)
}

fn probe_disk(
    root: &SysRoot,
    index: &Index,
    node: &Node,
    mounts: &[MountInfo],
    swap_names: &BTreeSet<String>,
    mut facts: Vec<Fact>,
) -> Probed {
    let name = node.name.as_str();
    let dir = &node.dir;
    let dev_path = format!("/dev/{name}");

    let size = parsed(&dir.join("size"), &mut facts, |s| {
        s.parse::<u64>().ok()?.checked_mul(512)
    })
    .unwrap_or(0);
    let logical = parsed(&dir.join("queue/logical_block_size"), &mut facts, |s| {
        s.parse::<u32>().ok().filter(|n| n.is_power_of_two())
    })
    .unwrap_or(512);
    let physical = parsed(&dir.join("queue/physical_block_size"), &mut facts, |s| {
        s.parse::<u32>().ok().filter(|n| n.is_power_of_two())
    })
    .unwrap_or(logical);
    let removable = parsed(&dir.join("removable"), &mut facts, parse_bool).unwrap_or(false);
    let read_only = parsed(&dir.join("ro"), &mut facts, parse_bool).unwrap_or(false);

    let transport = transport::probe(root, name);
    let is_mmc = matches!(
        transport,
        super::Transport::Sd | super::Transport::Emmc | super::Transport::MmcUnknown { .. }
    );
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let model = nonempty(opt_attr(&dir.join("device/model"), &mut facts)).or_else(|| {
        if is_mmc {
            nonempty(opt_attr(&dir.join("device/name"), &mut facts))
        } else {
            None
        }
    });

    let devnum = node.devnum;
    let udev_props = devnum
        .and_then(|d| {
            fs::read_to_string(root.join(&format!("run/udev/data/b{}:{}", d.major, d.minor))).ok()
        })
        .map(|t| udev::parse_properties(&t))
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| UDEV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect::<BTreeMap<_, _>>();

    let serial = nonempty(opt_attr(&dir.join("device/serial"), &mut facts))
        .or_else(|| nonempty(opt_attr(&dir.join("serial"), &mut facts)))
        // Binary page; optional and informative only, so a failed read is not a fact.
        .or_else(|| {
            fs::read(dir.join("device/vpd_pg80"))
                .ok()
                .and_then(|b| vpd80_serial(&b))
        })
        .or_else(|| udev_props.get("ID_SERIAL_SHORT").cloned());

    let backing_file = if dir.join("loop").is_dir() {
        opt_attr(&dir.join("loop/backing_file"), &mut facts)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    } else {
        None
    };

    let holders = list_names(&dir.join("holders"), &mut facts);
    for h in &holders {
        facts.push(Fact::HeldBy {
            device: dev_path.clone(),
            holder: h.clone(),
        });
    }
    let mountpoints = mount_points_of(root, index, name, devnum, mounts);
    for mp in &mountpoints {
        facts.push(Fact::Mounted {
            device: dev_path.clone(),
            mount_point: mp.clone(),
        });
    }
    let swap = swap_names.contains(name);
    if swap {
        facts.push(Fact::Swap {
            device: dev_path.clone(),
        });
    }

    let mut partitions = Vec::new();
    for p in &node.partitions {
        partitions.push(probe_partition(
            root, index, p, mounts, swap_names, &mut facts,
        ));
    }
    partitions.sort_by_key(|p| (p.number, p.name.clone()));

    Probed {
        disk: Disk {
            name: name.to_string(),
            path: PathBuf::from(&dev_path),
            size,
            logical_sector_size: logical,
            physical_sector_size: physical,
            removable,
            read_only,
            model,
            serial,
            transport,
            backing_file,
            mountpoints,
            swap,
            holders,
            partitions,
            system_disk: false,
            ownership: super::Ownership::InUse(vec!["not decided yet".into()]),
            udev: udev_props,
        },
        facts,
    }
}

fn probe_partition(
    root: &SysRoot,
    index: &Index,
    p: &PartNode,
    mounts: &[MountInfo],
    swap_names: &BTreeSet<String>,
    facts: &mut Vec<Fact>,
) -> DevPartition {
    let dev_path = format!("/dev/{}", p.name);
    let sectors = |f: &str, facts: &mut Vec<Fact>| {
        parsed(&p.dir.join(f), facts, |s| {
            s.parse::<u64>().ok()?.checked_mul(512)
        })
        .unwrap_or(0)
    };
    let number = parsed(&p.dir.join("partition"), facts, |s| s.parse::<u32>().ok()).unwrap_or(0);
    let start = sectors("start", facts);
    let size = sectors("size", facts);
    let holders = list_names(&p.dir.join("holders"), facts);
    for h in &holders {
        facts.push(Fact::HeldBy {
            device: dev_path.clone(),
            holder: h.clone(),
        });
    }
    let mountpoints = mount_points_of(root, index, &p.name, p.devnum, mounts);
    for mp in &mountpoints {
        facts.push(Fact::Mounted {
            device: dev_path.clone(),
            mount_point: mp.clone(),
        });
    }
    let swap = swap_names.contains(&p.name);
    if swap {
        facts.push(Fact::Swap {
            device: dev_path.clone(),
        });
    }
    DevPartition {
        name: p.name.clone(),
        path: PathBuf::from(dev_path),
        number,
        start,
        size,
        mountpoints,
        swap,
        holders,
    }
}

// ------------------------------------------------------------------------------------------
// Second opinion

fn cross_check_with_blockdev(root: &SysRoot, index: &Index, disks: &mut [Probed]) {
    let tree = match blockdev::get_devices_at(&root.0) {
        Ok(t) => t,
        Err(e) => {
            for d in disks.iter_mut() {
                d.facts.push(Fact::Uncertain(format!(
                    "the cross-check with the blockdev crate failed: {e}"
                )));
            }
            return;
        }
    };
    for d in disks.iter_mut() {
        // blockdev shows `!` in kernel names as `/` (cciss!c0d0 → cciss/c0d0).
        let Some(bd) = tree.find_by_name(&d.disk.name.replace('!', "/")) else {
            d.facts.push(Fact::Uncertain(
                "the blockdev crate does not list this disk, so its view could not be cross-checked"
                    .into(),
            ));
            continue;
        };
        for x in bd.descendants() {
            // blockdev names dm devices by their mapper name.
            let dev = if index.dm_names.contains_key(&x.name) {
                format!("/dev/mapper/{}", x.name)
            } else {
                format!("/dev/{}", x.name)
            };
            for mp in &x.mountpoints {
                d.facts.push(if mp == "[SWAP]" {
                    Fact::Swap {
                        device: dev.clone(),
                    }
                } else {
                    Fact::Mounted {
                        device: dev.clone(),
                        mount_point: mp.clone(),
                    }
                });
            }
        }
        if bd.is_system() && !d.disk.system_disk {
            d.disk.system_disk = true;
            d.facts.push(Fact::Uncertain(
                "the blockdev crate finds / on this disk, lifeboat's own walk did not".into(),
            ));
        }
    }
}

/// The whole disk that device number `dev` belongs to (itself, or the parent of a partition),
/// from the `sys/dev/block/<major>:<minor>` link. `None` when sysfs does not know it.
pub fn disk_name_of(root: &SysRoot, dev: DevNum) -> Option<String> {
    let link = root.join(&format!("sys/dev/block/{dev}"));
    let target = fs::read_link(&link).ok()?;
    let last = target.file_name()?.to_str()?.to_string();
    let is_partition = root
        .join(&format!("sys/dev/block/{dev}/partition"))
        .exists();
    if is_partition {
        target.parent()?.file_name()?.to_str().map(String::from)
    } else {
        Some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmc_hw_areas() {
        assert!(is_mmc_hw_area("mmcblk0boot0"));
        assert!(is_mmc_hw_area("mmcblk1boot1"));
        assert!(is_mmc_hw_area("mmcblk0rpmb"));
        assert!(!is_mmc_hw_area("mmcblk0"));
        assert!(!is_mmc_hw_area("mmcblk0p1"));
        assert!(!is_mmc_hw_area("mmcblkboot0"));
        assert!(!is_mmc_hw_area("mmcblk0boot"));
    }

    #[test]
    fn vpd80() {
        let mut page = vec![0x00, 0x80, 0x00, 0x14];
        page.extend_from_slice(b"AHCI0001            ");
        assert_eq!(vpd80_serial(&page).as_deref(), Some("AHCI0001"));
        assert_eq!(vpd80_serial(&[0, 0x83, 0, 0]), None);
        assert_eq!(vpd80_serial(&[0, 0x80, 0, 8, b'a']), None);
        assert_eq!(vpd80_serial(&[0, 0x80, 0, 2, b' ', b' ']), None);
        assert_eq!(vpd80_serial(&[0, 0x80, 0, 2, 0xff, b'a']), None);
    }

    #[test]
    fn missing_root_is_an_error_naming_the_path() {
        let e = discover(&SysRoot(PathBuf::from("/nonexistent/lifeboat-root"))).unwrap_err();
        assert!(
            format!("{e:#}").contains("/nonexistent/lifeboat-root/sys/block"),
            "{e:#}"
        );
    }
}

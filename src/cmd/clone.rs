//! `lifeboat clone <src-device> <dst-device>`: the two-card-reader move (old SD card in one
//! reader, new card or SSD in the other) in one run. The checks of `image` on the source
//! (a whole disk, not mounted read-write unless `--force`, opened read-only) and of `flash` on
//! the target (not in use, big enough, same sector size, `O_EXCL`, device number checked,
//! confirmation or `--yes`), then [`crate::flash::clone::clone`]; bad sectors are listed by
//! partition and ext4 file and give exit status 6. The clap arguments live here.

use crate::cmd::flash::{describe_disk, other_haos, progress_thread, resolve_disk};
use crate::device::{self, Disk, SysRoot};
use crate::error::Outcome;
use crate::flash::clone::{self, CloneJob, CloneReport};
use crate::flash::preflight::{self, ImageNeeds};
use crate::flash::write;
use crate::imaging::ranges::{self, Extent};
use crate::imaging::reader::ReadOptions;
use crate::imaging::rescue::Progress;
use crate::imaging::usage::{self, UsageMap};
use crate::io::source::{self, SourceKind};
use crate::report::{Output, SCHEMA_VERSION, human_bytes};
use crate::table::PartitionTable;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Arguments of `clone`.
#[derive(Debug, Args)]
#[command(after_help = "\
Copies the used blocks of the source disk (from its filesystems' allocation,
like `image`) straight onto the target and reads every written byte back
(O_DIRECT), like `flash`. The source is only read; unreadable sectors are
retried, then zero-filled on the target and listed by partition and file
(exit status 6). On a larger target the backup GPT moves to the end; --grow
also grows the data partition. Both disks then carry the same partition
UUIDs and labels: remove the old one before booting from the new one.")]
pub struct CloneArgs {
    /// Source disk to copy (e.g. the old SD card, /dev/sdb); only read
    pub source: PathBuf,
    /// Target disk to overwrite (e.g. /dev/sdc): everything on it is lost
    pub target: PathBuf,
    /// Copy every sector of the source, not only the used blocks
    #[arg(long)]
    pub all: bool,
    /// Also grow the data partition to fill a larger target (HAOS grows its filesystem)
    #[arg(long)]
    pub grow: bool,
    /// Rewrites of a range that reads back wrong on the target before giving up
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    /// Re-reads of each unreadable source sector before it is zero-filled
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub read_retries: u32,
    /// Give up on a source read after this long (0: wait for the kernel)
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Also write a GNU ddrescue mapfile of the source read to FILE
    #[arg(long, value_name = "FILE")]
    pub mapfile: Option<PathBuf>,
    /// Clone a source mounted read-write, and overwrite an existing --mapfile
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation (for scripts; check the device names first)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// An unreadable area of the source, located.
#[derive(Debug, Clone, Serialize)]
pub struct CloneBadRange {
    pub start: u64,
    pub length: u64,
    pub partition: Option<u32>,
    /// GPT name of the partition when it has one.
    pub partition_name: Option<String>,
    pub partition_offset: Option<u64>,
    /// Files of an ext4 partition whose blocks lie in the range, when known.
    pub files: Vec<String>,
}

/// One disk in the JSON document.
#[derive(Serialize)]
struct DiskDoc {
    path: String,
    model: Option<String>,
    serial: Option<String>,
    transport: String,
    size: u64,
}

impl DiskDoc {
    fn of(d: &Disk) -> Self {
        DiskDoc {
            path: d.path.display().to_string(),
            model: d.model.clone(),
            serial: d.serial.clone(),
            transport: d.transport.to_string(),
            size: d.size,
        }
    }
}

/// The JSON document of `clone`.
#[derive(Serialize)]
struct CloneDoc<'a> {
    schema_version: u32,
    source: DiskDoc,
    target: DiskDoc,
    all: bool,
    /// Used ranges copied and their bytes.
    ranges: usize,
    mapped_bytes: u64,
    mapfile: Option<String>,
    read: &'a clone::ReadReport,
    bad: &'a [CloneBadRange],
    warnings: &'a [String],
    flash: &'a write::FlashReport,
    seconds: f64,
    /// Source bytes copied per second of the whole run.
    bytes_per_second: u64,
}

/// The source: a whole disk (or the refusal saying what it is instead).
fn resolve_source(path: &Path, root: &SysRoot, disks: &[Disk]) -> Result<Disk> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        bail!(
            "{} is an image file, not a disk: to write an image to a disk use `lifeboat flash {} \
             <device>`",
            path.display(),
            path.display()
        );
    }
    // flash's words are about a target; say them about a source.
    resolve_disk(path, root, disks).map_err(|e| {
        let msg = format!("{e:#}")
            .replace("flash writes", "clone copies")
            .replace(" (everything on it is replaced)", "")
            .replace("lifeboat can write", "lifeboat can clone")
            .replace("are not flash targets", "cannot be cloned");
        anyhow::anyhow!("source: {msg}")
    })
}

/// The target: a whole disk (or the refusal saying what it is instead).
fn resolve_target(path: &Path, root: &SysRoot, disks: &[Disk]) -> Result<Disk> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        bail!(
            "{} is a regular file, not a disk: clone writes block devices only (to copy a disk \
             into an image file use `lifeboat image <device> -o {}`)",
            path.display(),
            path.display()
        );
    }
    resolve_disk(path, root, disks).map_err(|e| {
        let msg = format!("{e:#}")
            .replace("flash writes", "clone writes")
            .replace("are not flash targets", "are not clone targets");
        anyhow::anyhow!("{msg}")
    })
}

/// Read-write mounts of `d` or any of its partitions (the rule of `image`).
fn mounted_rw(root: &SysRoot, d: &Disk) -> Vec<String> {
    let mut devs = Vec::new();
    if let Ok(n) = device::discover::disk_devnum(root, &d.name) {
        devs.push(n);
    }
    for p in &d.partitions {
        if let Some(n) = std::fs::read_to_string(root.sys_block(&d.name).join(&p.name).join("dev"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            devs.push(n);
        }
    }
    let mut v = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo")
        && let Ok(mounts) = crate::sys::mountinfo::parse(&text)
    {
        for m in mounts {
            if m.options.split(',').any(|o| o == "rw") && devs.contains(&m.dev) {
                v.push(format!(
                    "{} mounted read-write on {}",
                    m.source, m.mount_point
                ));
            }
        }
    }
    v
}

/// One past the last byte the target must hold: the end of the last partition plus, on GPT,
/// room for the backup GPT that is rewritten at the target's end (entries and header); the
/// end of the used data without a table.
fn last_used_byte(table: Option<&PartitionTable>, map: &UsageMap) -> u64 {
    let data_end = map.used.last().map(|e| e.end()).unwrap_or(0);
    match table {
        Some(t) if !t.partitions.is_empty() => {
            let ss = u64::from(t.sector_size);
            let backup = t.gpt.as_ref().map_or(0, |g| {
                let entries = u64::from(g.entry_count) * u64::from(g.entry_size);
                (entries.div_ceil(ss) + 1) * ss
            });
            t.partitions
                .iter()
                .map(|p| p.start_bytes(t.sector_size) + p.size_bytes(t.sector_size))
                .max()
                .unwrap_or(0)
                .saturating_add(backup)
                .max(write::HEAD.min(map.size))
        }
        _ => data_end,
    }
}

/// Ask on the terminal; only `yes` goes ahead.
fn confirm(src: &Disk, dst: &Disk) -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        bail!(
            "{}: refusing to overwrite without confirmation: there is no terminal to ask on; \
             check the devices and add --yes",
            dst.path.display()
        );
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "Copy from:\n{}Everything on this disk will be replaced:\n{}Type yes to clone: ",
        describe_disk(src),
        describe_disk(dst)
    );
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the confirmation")?;
    if line.trim() != "yes" {
        bail!("{}: not confirmed; nothing written", dst.path.display());
    }
    Ok(())
}

/// Bad ranges by partition, and by ext4 file (read from the target, which now holds the same
/// filesystems with the bad sectors zeroed).
fn locate_bad(
    bad: &[Extent],
    table: Option<&PartitionTable>,
    map: &UsageMap,
    target: &Path,
    target_size: u64,
) -> Vec<CloneBadRange> {
    let name_of = |n: u32| {
        table.and_then(|t| {
            t.partitions
                .iter()
                .find(|p| p.number == n)
                .and_then(|p| p.name.clone())
        })
    };
    let mut out: Vec<CloneBadRange> = bad
        .iter()
        .map(|e| {
            let p = map
                .partitions
                .iter()
                .find(|p| e.start >= p.start && e.start < p.start + p.size);
            CloneBadRange {
                start: e.start,
                length: e.len,
                partition: p.map(|p| p.number),
                partition_name: p.and_then(|p| name_of(p.number)),
                partition_offset: p.map(|p| e.start - p.start),
                files: vec![],
            }
        })
        .collect();
    let Ok(f) = std::fs::File::open(target) else {
        return out;
    };
    let r = crate::io::FileReader::new(f, target_size);
    for p in map
        .partitions
        .iter()
        .filter(|p| p.fs.as_deref().is_some_and(|f| f.starts_with("ext")))
    {
        let idx: Vec<usize> = (0..out.len())
            .filter(|&i| out[i].partition == Some(p.number))
            .collect();
        if idx.is_empty() || p.start + p.size > target_size {
            continue;
        }
        let exts: Vec<Extent> = idx
            .iter()
            .map(|&i| Extent::new(out[i].start - p.start, out[i].length))
            .collect();
        let w = crate::io::Window::new(&r, p.start, p.size);
        if let Ok(hits) = crate::imaging::badfiles::files_hit(&w, &exts) {
            for (k, files) in hits {
                if let Some(&i) = idx.get(k) {
                    out[i].files = files;
                }
            }
        }
    }
    out
}

fn render(doc: &CloneDoc<'_>) -> String {
    let r = doc.flash;
    let mut s = String::new();
    let _ = writeln!(s, "cloned {} to {}", doc.source.path, doc.target.path);
    let _ = writeln!(
        s,
        "  {} in {} used ranges read{}, {} written and {} read back and verified{}",
        human_bytes(doc.mapped_bytes),
        doc.ranges,
        if doc.all { " (--all)" } else { "" },
        human_bytes(r.bytes_written),
        human_bytes(r.bytes_verified),
        if r.direct_io { " (O_DIRECT)" } else { "" }
    );
    crate::cmd::flash::render_fit_and_mismatches(&mut s, r);
    if doc.bad.is_empty() {
        let _ = writeln!(s, "  every used sector of the source was read");
    } else {
        let _ = writeln!(
            s,
            "  {} unreadable on the source ({} read errors), zero-filled on the target:",
            human_bytes(doc.read.bad_bytes),
            doc.read.read_errors
        );
        for b in doc.bad {
            let part = match (b.partition, &b.partition_name) {
                (Some(n), Some(name)) => format!("partition {n} ({name})"),
                (Some(n), None) => format!("partition {n}"),
                _ => "outside the partitions".into(),
            };
            let _ = writeln!(
                s,
                "    bytes {}..{} ({} bytes) in {part}{}",
                b.start,
                b.start + b.length,
                b.length,
                if b.files.is_empty() {
                    String::new()
                } else {
                    format!(": {}", b.files.join(", "))
                }
            );
        }
    }
    if let Some(m) = &doc.mapfile {
        let _ = writeln!(s, "  mapfile {m}");
    }
    if !r.partitions.is_empty() {
        crate::cmd::flash::render_partitions(&mut s, r);
    }
    let _ = writeln!(
        s,
        "  {:.1} s ({}/s): read+write {:.1} s, read-back {:.1} s",
        doc.seconds,
        human_bytes(doc.bytes_per_second),
        r.timings.write_s,
        r.timings.readback_s
    );
    let _ = writeln!(
        s,
        "  remove the old disk ({}) before booting from the new one: both carry the same \
         partition UUIDs and labels",
        doc.source.path
    );
    s
}

/// Run `clone`.
pub fn run(args: &CloneArgs, out: &Output) -> Result<Outcome> {
    let t0 = Instant::now();
    let root = SysRoot::host();
    let disks = device::discover(&root).context("listing disks")?;
    let src_disk = resolve_source(&args.source, &root, &disks)?;
    let dst_disk = resolve_target(&args.target, &root, &disks)?;
    if src_disk.name == dst_disk.name {
        bail!(
            "{} and {} are the same disk ({}): clone copies one disk onto another",
            args.source.display(),
            args.target.display(),
            src_disk.path.display()
        );
    }
    if let Some(m) = &args.mapfile
        && m.exists()
        && !args.force
    {
        bail!("{}: already exists; pass --force to overwrite", m.display());
    }
    let mut warnings: Vec<String> = Vec::new();
    let rw = mounted_rw(&root, &src_disk);
    if !rw.is_empty() {
        if args.force {
            warnings.push(format!(
                "{}: cloning while mounted read-write (--force): {}; the copy may be inconsistent",
                src_disk.path.display(),
                rw.join("; ")
            ));
        } else {
            bail!(
                "{}: refusing to clone a disk mounted read-write ({}): the filesystem changes \
                 while it is read, so the copy would not be consistent. Unmount it (or shut \
                 Home Assistant down) first, or pass --force",
                src_disk.path.display(),
                rw.join("; ")
            );
        }
    }

    // The source, read-only: table and used-range map.
    let src = source::open(&src_disk.path)?;
    if src.kind != SourceKind::BlockDevice {
        bail!("{}: not a block device", src.path.display());
    }
    let table = crate::table::read_table(src.read_at(), src.sector_size).ok();
    let map = usage::build(src.read_at(), src.sector_size, args.all);
    let needs = ImageNeeds {
        size: src.size,
        last_used_byte: last_used_byte(table.as_ref(), &map),
        sector_size: table
            .as_ref()
            .map(|t| t.sector_size)
            .unwrap_or(src.sector_size),
    };
    let refusals = preflight::refusals(&dst_disk, &needs);
    if !refusals.is_empty() {
        let mut msg = format!(
            "refusing to clone {} to {}:\n  {}",
            src_disk.path.display(),
            dst_disk.path.display(),
            refusals.join("\n  ")
        );
        if dst_disk.size < needs.last_used_byte {
            let _ = write!(
                msg,
                "\n  the source's partitions end at byte {} ({}), the target has {} bytes ({}): \
                 image the source, shrink the image and flash it: `lifeboat image {} -o card.img` \
                 then `lifeboat shrink card.img -o smaller.img --to {}` then `lifeboat flash \
                 smaller.img {}`",
                needs.last_used_byte,
                human_bytes(needs.last_used_byte),
                dst_disk.size,
                human_bytes(dst_disk.size),
                src_disk.path.display(),
                dst_disk.path.display(),
                dst_disk.path.display()
            );
        }
        bail!("{msg}");
    }
    warnings.push(format!(
        "{} and {} will carry the same partition UUIDs and labels: remove the old disk ({}) \
         before booting from the new one (HAOS would otherwise pick either, and renames a \
         second data partition to hassos-data-dis)",
        src_disk.path.display(),
        dst_disk.path.display(),
        src_disk.path.display()
    ));
    // Other HAOS disks besides the source (which is not read again for this).
    let rest: Vec<Disk> = disks
        .iter()
        .filter(|d| d.name != src_disk.name)
        .cloned()
        .collect();
    let others = other_haos(&rest, &dst_disk);
    if !others.is_empty() {
        warnings.push(format!(
            "another disk with Home Assistant OS is attached besides the source: {}",
            others.join(", ")
        ));
    }
    let emit = |w: &str| out.warning(w);
    for w in &warnings {
        emit(w);
    }
    if !args.yes {
        confirm(&src_disk, &dst_disk)?;
    }

    let target = super::flash::open_checked(&root, &dst_disk, needs.last_used_byte, "the source")?;
    // Used ranges that fit the target (past its end lies only the source's backup GPT, which
    // the fit rewrites at the target's end).
    let mut used = ranges::intersect(&map.used, &[Extent::new(0, target.size)]);
    // On a larger target the fit zeroes the source's backup GPT header where the source
    // ended: leave that sector out, so no written piece has to be patched (the flash engine
    // cannot rewrite a patched piece from the source after a read-back mismatch).
    if target.size > src.size
        && let Some(t) = &table
        && let Some(g) = &t.gpt
    {
        let ss = u64::from(t.sector_size);
        let hdr = Extent::new(g.backup_lba.saturating_mul(ss), ss);
        if hdr.end() <= src.size && g.backup_lba > 1 {
            used = ranges::subtract(&used, &[hdr], target.size);
        }
    }
    let mapped_bytes = ranges::total(&used);

    // The first SIGINT/SIGTERM/SIGHUP asks the work to stop (and clean up); a second ends
    // the process at once.
    let stop = super::stop_on_signals();
    let read_progress = Progress::default();
    let write_progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let handle = progress_thread(Arc::clone(&write_progress), Arc::clone(&done), *out);
    let mut late: Vec<String> = Vec::new();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let res: Result<CloneReport> = {
        let mut warn = |w: &str| {
            emit(w);
            late.push(w.to_string());
        };
        clone::clone(
            CloneJob {
                source: src_disk.path.clone(),
                source_size: src.size,
                sector: src.sector_size,
                is_device: true,
                used: used.clone(),
                read: ReadOptions {
                    direct: true,
                    timeout: (args.timeout > 0.0)
                        .then(|| Duration::from_secs_f64(args.timeout.min(86_400.0))),
                    max_rate: None,
                    reopen_wait: Duration::from_secs(30),
                },
                read_retries: args.read_retries,
                retries: args.retries,
                grow: args.grow,
                mapfile: args.mapfile.clone(),
                command,
                stop: &stop,
                read_progress: &read_progress,
                write_progress: &write_progress,
                warn: &mut warn,
            },
            &target,
        )
    };
    done.store(true, Ordering::Relaxed);
    if let Some(h) = handle {
        let _ = h.join();
    }
    let report = res?;
    warnings.extend(late);
    let bad = locate_bad(
        &report.read.bad_ranges,
        table.as_ref(),
        &map,
        &dst_disk.path,
        target.size,
    );
    let seconds = t0.elapsed().as_secs_f64();
    let doc = CloneDoc {
        schema_version: SCHEMA_VERSION,
        source: DiskDoc::of(&src_disk),
        target: DiskDoc {
            size: target.size,
            ..DiskDoc::of(&dst_disk)
        },
        all: args.all,
        ranges: used.len(),
        mapped_bytes,
        mapfile: args.mapfile.as_ref().map(|p| p.display().to_string()),
        read: &report.read,
        bad: &bad,
        warnings: &warnings,
        flash: &report.flash,
        seconds: (seconds * 1000.0).round() / 1000.0,
        bytes_per_second: if seconds > 0.0 {
            (mapped_bytes as f64 / seconds).round() as u64
        } else {
            0
        },
    };
    if out.json {
        out.json_doc(&doc);
    } else {
        out.text(&render(&doc));
    }
    if bad.is_empty() {
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::ImageIncomplete)
    }
}

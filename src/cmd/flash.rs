//! `lifeboat flash <image> <device>`: the checks before a single byte is written (a whole
//! block device, not in use, big enough, right sector size, the user's confirmation), then
//! [`crate::flash::write::flash`], progress on stderr and the summary. The clap arguments
//! live here.

use crate::device::{self, Disk, SysRoot};
use crate::error::Outcome;
use crate::flash::preflight::{self, ImageNeeds};
use crate::flash::write::{self, FlashReport, HEAD, Job, Target};
use crate::imaging::ranges::Extent;
use crate::imaging::rescue::Progress;
use crate::report::{Output, SCHEMA_VERSION, human_bytes};
use crate::table::PartitionTable;
use crate::verify::bmap::Bmap;
use crate::verify::input::ImageInput;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Arguments of `flash`.
#[derive(Debug, Args)]
#[command(after_help = "\
The image may be raw, .zst, .gz, .xz, .bz2 or a .zip holding one image
(recognised by content). With a bmap (IMAGE.bmap, or x.img.bmap beside
x.img.xz; lifeboat's or bmaptool's; or --bmap) only mapped ranges are
written, each range's SHA-256 checked while streaming. Everything written is
read back (O_DIRECT) and compared; a range that reads back wrong is rewritten
up to --retries times. The first MiB (partition tables) is written last; on
any failure the tables are wiped, so the disk is blank, never half-written.
On a larger disk the backup GPT is moved to the end; --grow also grows the
data partition. Asks for confirmation unless --yes.")]
pub struct FlashArgs {
    /// Image file: raw, .img.zst, .img.gz, .img.xz, .img.bz2 or a .zip with one image
    pub image: PathBuf,
    /// Whole disk to overwrite (e.g. /dev/sdb, /dev/mmcblk0): everything on it is lost
    pub device: PathBuf,
    /// bmap file (lifeboat's or bmaptool's) giving the ranges to write (default:
    /// IMAGE.bmap beside the image)
    #[arg(long, value_name = "FILE", conflicts_with = "no_bmap")]
    pub bmap: Option<PathBuf>,
    /// Write every byte of the image, even when a bmap is beside it
    #[arg(long)]
    pub no_bmap: bool,
    /// Also grow the data partition to fill a larger disk (HAOS grows its filesystem)
    #[arg(long)]
    pub grow: bool,
    /// Rewrites of a range that reads back wrong before giving up
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    /// Do not ask for confirmation (for scripts; check the device name first)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The JSON document of `flash`.
#[derive(Serialize)]
struct FlashDoc<'a> {
    schema_version: u32,
    image: String,
    format: &'a str,
    /// The image's name inside a zip archive.
    inner_name: Option<String>,
    bmap: Option<String>,
    /// Mapped ranges in the bmap (None: every byte written).
    bmap_ranges: Option<usize>,
    device: String,
    model: Option<String>,
    serial: Option<String>,
    transport: String,
    device_size: u64,
    warnings: &'a [String],
    #[serde(flatten)]
    report: &'a FlashReport,
}

/// `IMAGE.bmap`, or for a compressed `x.img.xz` also `x.img.bmap` (bmaptool's habit).
fn find_bmap(image: &Path) -> Option<PathBuf> {
    if let Some(p) = crate::verify::check::sidecar(image, ".bmap") {
        return Some(p);
    }
    let name = image.file_name()?.to_str()?;
    for ext in [".xz", ".gz", ".zst", ".bz2", ".zip"] {
        if let Some(stem) = name.strip_suffix(ext) {
            let p = image.with_file_name(format!("{stem}.bmap"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The whole disk `path` names, or a refusal saying what it is instead.
pub(crate) fn resolve_disk(path: &Path, root: &SysRoot, disks: &[Disk]) -> Result<Disk> {
    let name = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("{name}: cannot access"))?;
    if meta.is_file() {
        bail!(
            "{name} is a regular file, not a disk: flash writes block devices only (to copy an \
             image to a file use `cp`, or `xz -dc` for a compressed one)"
        );
    }
    let dev = crate::sys::block_device_number(path).with_context(|| {
        format!("{name}: not a block device (give a whole disk, e.g. /dev/sdb)")
    })?;
    for d in disks {
        if device::discover::disk_devnum(root, &d.name).ok() == Some(dev) {
            return Ok(d.clone());
        }
    }
    match device::discover::disk_name_of(root, dev) {
        Some(parent)
            if root
                .join(&format!("sys/dev/block/{dev}/partition"))
                .exists() =>
        {
            bail!(
                "{name} is a partition of /dev/{parent}: flash writes a whole disk; give /dev/{parent} \
             (everything on it is replaced)"
            )
        }
        _ => bail!(
            "{name} ({dev}) is not a whole disk lifeboat can write (see `lifeboat list`; \
             optical drives, zram and device-mapper volumes are not flash targets)"
        ),
    }
}

/// One past the last byte that must reach the disk: the end of the last partition (the
/// backup GPT after it is rewritten for the disk), or the whole image without a table.
fn last_used_byte(table: Option<&PartitionTable>, image_size: u64) -> u64 {
    match table {
        Some(t) if !t.partitions.is_empty() => t
            .partitions
            .iter()
            .map(|p| p.start_bytes(t.sector_size) + p.size_bytes(t.sector_size))
            .max()
            .unwrap_or(0)
            .max(HEAD.min(image_size)),
        _ => image_size,
    }
}

/// Other attached disks holding Home Assistant OS.
pub(crate) fn other_haos(disks: &[Disk], target: &Disk) -> Vec<String> {
    let mut v = Vec::new();
    for d in disks.iter().filter(|d| d.name != target.name) {
        let Ok(src) = crate::io::source::open(&d.path) else {
            continue;
        };
        if let Ok(r) = crate::haos::inspect(&src, crate::haos::Depth::Quick)
            && r.is_haos()
        {
            v.push(format!(
                "{} ({}{})",
                d.path.display(),
                human_bytes(d.size),
                d.model
                    .as_deref()
                    .map(|m| format!(", {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    v
}

/// Open the target disk exclusively and make sure it is the disk that was checked and
/// described (same device number) and still holds `needs` bytes (of `what`: the image, the
/// source).
pub(crate) fn open_checked(
    root: &device::SysRoot,
    disk: &device::Disk,
    needs: u64,
    what: &str,
) -> Result<Target> {
    let target = Target::open(&disk.path, Some(disk.name.clone()))?;
    let want = device::discover::disk_devnum(root, &disk.name)?;
    let got = target
        .device_number()
        .with_context(|| format!("{}: cannot stat the opened device", disk.path.display()))?;
    if got != want {
        bail!(
            "{}: the device opened ({got}) is not the disk checked ({want}): the /dev node \
             changed; nothing written",
            disk.path.display()
        );
    }
    if target.size < needs {
        bail!(
            "{}: the device now reports {} bytes, less than {what} needs ({needs}); nothing \
             written",
            disk.path.display(),
            target.size,
        );
    }
    Ok(target)
}

pub(crate) fn describe_disk(d: &Disk) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {}: {} ({} bytes), {}, model {}, serial {}",
        d.path.display(),
        human_bytes(d.size),
        d.size,
        d.transport,
        d.model.as_deref().unwrap_or("unknown"),
        d.serial.as_deref().unwrap_or("unknown")
    );
    if d.partitions.is_empty() {
        let _ = writeln!(s, "  partitions now: none");
    } else {
        let _ = writeln!(s, "  partitions now:");
        for p in &d.partitions {
            let _ = writeln!(
                s,
                "    {:<14} {:>10}{}",
                p.name,
                human_bytes(p.size),
                if p.mountpoints.is_empty() {
                    String::new()
                } else {
                    format!("  mounted on {}", p.mountpoints.join(", "))
                }
            );
        }
    }
    s
}

/// Ask on the terminal; only `yes` goes ahead.
fn confirm(image: &Path, d: &Disk) -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        bail!(
            "{}: refusing to overwrite without confirmation: there is no terminal to ask on; \
             check the device and add --yes",
            d.path.display()
        );
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "Everything on this disk will be replaced by {}:\n{}Type yes to write: ",
        image.display(),
        describe_disk(d)
    );
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the confirmation")?;
    if line.trim() != "yes" {
        bail!("{}: not confirmed; nothing written", d.path.display());
    }
    Ok(())
}

/// Progress on stderr until `done`: indicatif bars (write, verify) with rates on a terminal,
/// JSON lines with --json, nothing with --quiet.
pub(crate) fn progress_thread(
    p: Arc<Progress>,
    done: Arc<AtomicBool>,
    out: Output,
) -> Option<std::thread::JoinHandle<()>> {
    if out.quiet || (!out.json && !std::io::stderr().is_terminal()) {
        return None;
    }
    let json = out.json;
    std::thread::Builder::new()
        .name("lifeboat-progress".into())
        .spawn(move || {
            let start = Instant::now();
            let mut bar: Option<indicatif::ProgressBar> = None;
            let mut last_phase = String::new();
            let mut last_json = Instant::now() - Duration::from_secs(10);
            while !done.load(Ordering::Relaxed) {
                let phase = p.phase_name();
                let (d, t) = (
                    p.done.load(Ordering::Relaxed),
                    p.total.load(Ordering::Relaxed),
                );
                if json {
                    if last_json.elapsed() >= Duration::from_secs(1) || phase != last_phase {
                        last_json = Instant::now();
                        let line = serde_json::json!({
                            "event": "progress",
                            "phase": phase,
                            "done": d,
                            "total": t,
                            "elapsed_s": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                        });
                        let _ = writeln!(std::io::stderr().lock(), "{line}");
                    }
                } else {
                    if phase != last_phase {
                        if let Some(b) = bar.take() {
                            b.finish();
                        }
                        if phase == "write" || phase == "verify" {
                            let b = indicatif::ProgressBar::with_draw_target(
                                Some(t),
                                indicatif::ProgressDrawTarget::stderr_with_hz(4),
                            );
                            if let Ok(st) = indicatif::ProgressStyle::with_template(
                                "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                            ) {
                                b.set_style(st.progress_chars("=> "));
                            }
                            b.set_prefix(if phase == "write" {
                                "writing"
                            } else {
                                "verifying"
                            });
                            bar = Some(b);
                        }
                    }
                    if let Some(b) = &bar {
                        b.set_length(t);
                        b.set_position(d);
                    }
                }
                last_phase = phase;
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Some(b) = bar {
                b.finish();
            }
        })
        .ok()
}

fn render(doc: &FlashDoc<'_>) -> String {
    let r = doc.report;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "flashed {} ({}{}) to {}",
        doc.image,
        doc.format,
        doc.inner_name
            .as_deref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default(),
        doc.device
    );
    let _ = writeln!(
        s,
        "  {} written in {} pieces{}, {} read back and verified{}",
        human_bytes(r.bytes_written),
        r.pieces,
        match doc.bmap_ranges {
            Some(n) => format!(" ({n} bmap ranges, {} checked)", r.bmap_ranges_checked),
            None => String::new(),
        },
        human_bytes(r.bytes_verified),
        if r.direct_io { " (O_DIRECT)" } else { "" }
    );
    if let Some(h) = &r.image_sha256 {
        let _ = writeln!(s, "  image sha256 {h}");
    }
    render_fit_and_mismatches(&mut s, r);
    if r.partitions.is_empty() {
        let _ = writeln!(
            s,
            "  the kernel shows no partitions ({})",
            r.partitions_from
        );
    } else {
        render_partitions(&mut s, r);
    }
    let t = &r.timings;
    let _ = writeln!(
        s,
        "  {:.1} s: write {:.1} s, read-back {:.1} s",
        t.total_s, t.write_s, t.readback_s
    );
    s
}

/// The geometry fit's notes and every read-back mismatch, one line each (shared with
/// `clone`).
pub(crate) fn render_fit_and_mismatches(s: &mut String, r: &write::FlashReport) {
    for n in &r.fit_notes {
        let _ = writeln!(s, "  {n}");
    }
    for m in &r.mismatches {
        let _ = writeln!(
            s,
            "  read-back mismatch at {}: {}",
            write::describe(m),
            if m.fixed {
                format!("fixed by rewrite {}", m.rewrites)
            } else {
                "NOT fixed".into()
            }
        );
    }
}

/// The partitions the kernel shows after the flash (shared with `clone`).
pub(crate) fn render_partitions(s: &mut String, r: &write::FlashReport) {
    let _ = writeln!(
        s,
        "  partitions the kernel now shows ({}):",
        r.partitions_from
    );
    for p in &r.partitions {
        let _ = writeln!(s, "    {:<14} {:>10}", p.name, human_bytes(p.size));
    }
}

/// Run `flash`.
pub fn run(args: &FlashArgs, out: &Output) -> Result<Outcome> {
    let root = SysRoot::host();
    let disks = device::discover(&root).context("listing disks")?;
    let disk = resolve_disk(&args.device, &root, &disks)?;

    // The image: format, bmap, first MiB, table.
    let mut input = ImageInput::open(&args.image)?;
    let bmap_path = if args.no_bmap {
        None
    } else {
        args.bmap.clone().or_else(|| find_bmap(&args.image))
    };
    let bmap = match &bmap_path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the bmap", p.display()))?;
            Some(
                Bmap::parse(&text)
                    .map_err(|e| anyhow::anyhow!("{}: not a usable bmap: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let mut warnings: Vec<String> = Vec::new();
    let map = bmap.as_ref().map(|b| {
        let sha = b
            .checksum_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("sha256"));
        b.ranges
            .iter()
            .map(|r| (b.extent(r), r.checksum.clone().filter(|_| sha)))
            .collect::<Vec<(Extent, Option<String>)>>()
    });
    if let (Some(m), Some(b)) = (&map, &bmap)
        && m.iter().any(|(_, c)| c.is_none())
    {
        warnings.push(format!(
            "the bmap (version {}) has no SHA-256 for some ranges: those are not checked against \
             it (the read-back still is)",
            b.version
        ));
    }
    let mut head = vec![0u8; HEAD as usize];
    let n = input.fill(&mut head)?;
    head.truncate(n);
    let table = crate::table::read_table(&head, 512).ok();
    let image_size = match (&bmap, input.format) {
        (Some(b), _) => Some(b.image_size),
        (None, "raw") => Some(input.file_bytes),
        _ => None,
    };
    if let (Some(b), "raw") = (&bmap, input.format)
        && b.image_size != input.file_bytes
    {
        bail!(
            "{}: the image is {} bytes but its bmap {} says {}: not the bmap of this image",
            args.image.display(),
            input.file_bytes,
            bmap_path.as_deref().unwrap_or(Path::new("")).display(),
            b.image_size
        );
    }
    // Without a known size (a compressed image without a bmap), the GPT says where it ends.
    let size_guess = image_size.unwrap_or_else(|| {
        table
            .as_ref()
            .and_then(|t| t.gpt.as_ref())
            .map(|g| (g.backup_lba + 1) * 512)
            .unwrap_or(n as u64)
    });
    let needs = ImageNeeds {
        size: size_guess,
        last_used_byte: last_used_byte(table.as_ref(), size_guess),
        sector_size: table.as_ref().map(|t| t.sector_size).unwrap_or(512),
    };
    let refusals = preflight::refusals(&disk, &needs);
    if !refusals.is_empty() {
        let mut msg = format!(
            "refusing to flash {} to {}:\n  {}",
            args.image.display(),
            disk.path.display(),
            refusals.join("\n  ")
        );
        if disk.size < needs.last_used_byte {
            let _ = write!(
                msg,
                "\n  the image's partitions end at byte {} ({}), the disk has {} bytes ({}): \
                 shrink the image's data partition first: `lifeboat shrink {} -o smaller.img \
                 --to {}`",
                needs.last_used_byte,
                human_bytes(needs.last_used_byte),
                disk.size,
                human_bytes(disk.size),
                args.image.display(),
                disk.path.display()
            );
        }
        bail!("{msg}");
    }
    let others = other_haos(&disks, &disk);
    if !others.is_empty() {
        warnings.push(format!(
            "{} with Home Assistant OS {} attached: {}. After the flash {} the same partition \
             UUIDs and labels as the new disk; remove the old card or disk before booting from \
             the new one (HAOS would otherwise pick either, and renames a second data \
             partition to hassos-data-dis)",
            if others.len() == 1 {
                "another disk"
            } else {
                "other disks"
            },
            if others.len() == 1 { "is" } else { "are" },
            others.join(", "),
            if others.len() == 1 {
                "it carries"
            } else {
                "they carry"
            }
        ));
    }
    let emit = |w: &str| out.warning(w);
    for w in &warnings {
        emit(w);
    }
    if !args.yes {
        confirm(&args.image, &disk)?;
    } else if !out.quiet && !out.json {
        eprint!(
            "writing {} over this disk (--yes):\n{}",
            args.image.display(),
            describe_disk(&disk)
        );
    }

    let target = open_checked(&root, &disk, needs.last_used_byte, "the image")?;

    // The first SIGINT/SIGTERM/SIGHUP asks the work to stop (and clean up); a second ends
    // the process at once.
    let stop = super::stop_on_signals();
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let handle = progress_thread(Arc::clone(&progress), Arc::clone(&done), *out);
    let mut late: Vec<String> = Vec::new();
    let format = input.format;
    let inner_name = input.inner_name.clone();
    let res = {
        let mut warn = |w: &str| {
            emit(w);
            late.push(w.to_string());
        };
        write::flash(
            Job {
                input,
                head,
                map: map.clone(),
                image_size,
                grow: args.grow,
                retries: args.retries,
                stop: &stop,
                progress: &progress,
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
    let doc = FlashDoc {
        schema_version: SCHEMA_VERSION,
        image: args.image.display().to_string(),
        format,
        inner_name,
        bmap: bmap_path.map(|p| p.display().to_string()),
        bmap_ranges: map.as_ref().map(Vec::len),
        device: disk.path.display().to_string(),
        model: disk.model.clone(),
        serial: disk.serial.clone(),
        transport: disk.transport.to_string(),
        device_size: target.size,
        warnings: &warnings,
        report: &report,
    };
    if out.json {
        out.json_doc(&doc);
    } else {
        out.text(&render(&doc));
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmap_beside_compressed_image() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("x.img.xz");
        std::fs::write(&img, b"x").unwrap();
        assert_eq!(find_bmap(&img), None);
        std::fs::write(d.path().join("x.img.bmap"), b"b").unwrap();
        assert_eq!(find_bmap(&img), Some(d.path().join("x.img.bmap")));
        std::fs::write(d.path().join("x.img.xz.bmap"), b"b").unwrap();
        assert_eq!(find_bmap(&img), Some(d.path().join("x.img.xz.bmap")));
    }

    #[test]
    fn files_are_refused_with_a_pointer_to_cp() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("disk.img");
        std::fs::write(&f, b"x").unwrap();
        let e = resolve_disk(&f, &SysRoot::host(), &[]).unwrap_err();
        assert!(e.to_string().contains("cp"), "{e}");
    }
}

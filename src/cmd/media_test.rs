//! `lifeboat media-test <device>`: the destructive check of a new card or SSD before trusting
//! it (fake capacity, bad areas, speed). This module owns the arguments, the fail-closed
//! safety checks (whole disks only, not in use, not the system disk, not read-only, opened
//! `O_EXCL` and matched to discovery by device number, confirmed by typing `yes` or `--yes`),
//! the progress display, the report and the exit status; the pattern, classification and I/O
//! loop are [`crate::flash::mediatest`].

use crate::device::discover::{SysRoot, disk_devnum, disk_name_of};
use crate::device::{Disk, discover};
use crate::error::Outcome;
use crate::flash::mediatest::io::{self as mtio, Interrupted, Progress};
use crate::flash::mediatest::{
    Area, Counts, Kind, Pattern, Plan, RegionSpeed, Speed, Verdict, verdict,
};
use crate::flash::preflight::{ImageNeeds, refusals};
use crate::report::{Output, SCHEMA_VERSION, human_bytes};
use crate::sys;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bad areas listed in the text report (all of them are in the JSON document).
const TEXT_AREAS: usize = 12;

/// Arguments of `media-test`.
#[derive(Debug, Args)]
#[command(after_help = "\
DESTRUCTIVE: everything on DEVICE is overwritten. Writes position-tagged test
data over the whole disk (with --quick: a few hundred samples), reads it back
with O_DIRECT and reports the real usable capacity (fake cards wrap around past
it), bad areas by offset, and write/read speeds. Afterwards the first and last
MiB are zeroed, so the disk is blank. Exit status: 0 pass, 7 fail (fake
capacity or bad areas), 1 when the test could not run or was interrupted.")]
pub struct MediaTestArgs {
    /// Whole disk to test, e.g. /dev/sdb or /dev/mmcblk0 (ALL DATA ON IT IS LOST)
    pub device: PathBuf,
    /// Sample a few hundred places instead of every byte (finds fake capacity in seconds)
    #[arg(long)]
    pub quick: bool,
    /// Do not ask for confirmation (needed without a terminal)
    #[arg(long)]
    pub yes: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct MediaTestDoc {
    pub schema_version: u32,
    pub device: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub transport: String,
    /// Advertised size in bytes.
    pub size: u64,
    pub logical_sector_size: u32,
    /// `full` or `quick`.
    pub mode: &'static str,
    /// The run's random nonce (hex), written into every record.
    pub nonce: String,
    pub tested_bytes: u64,
    /// Extents tested (1 for a full test).
    pub samples: usize,
    /// Precision of `usable_bytes` (512 for a full test, the sample spacing for --quick).
    pub granularity: u64,
    /// Real usable capacity in bytes.
    pub usable_bytes: u64,
    pub verdict: Verdict,
    /// One sentence: the verdict in words.
    pub summary: String,
    pub counts: Counts,
    pub areas: Vec<Area>,
    pub areas_omitted: u64,
    pub write: Speed,
    pub read: Speed,
    pub profile: Vec<RegionSpeed>,
    /// `fdatasync` after writing failed with this error.
    pub sync_error: Option<String>,
    /// Bytes zeroed at the start and end after the test.
    pub wiped_bytes: u64,
    /// Always true: the device's previous content is gone.
    pub data_erased: bool,
    pub warnings: Vec<String>,
}

fn find_disk(path: &Path, root: &SysRoot) -> Result<Disk> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("{shown}: cannot open"))?;
    if !std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
        bail!(
            "{shown} is not a block device; media-test only tests whole disks (e.g. /dev/sdb, \
             /dev/mmcblk0)"
        );
    }
    let dev = sys::block_device_number(path).with_context(|| format!("{shown}: stat"))?;
    let Some(name) = disk_name_of(root, dev) else {
        bail!(
            "{shown} (device {dev}) is not known to sysfs; give a disk listed by `lifeboat list`"
        );
    };
    if root
        .join(&format!("sys/dev/block/{dev}/partition"))
        .exists()
    {
        bail!(
            "{shown} is a partition of /dev/{name}; media-test tests whole disks only (give \
             /dev/{name}, and everything on all of its partitions will be erased)"
        );
    }
    let disks = discover(root)?;
    disks.into_iter().find(|d| d.name == name).with_context(|| {
        format!("{shown} (/dev/{name}) is not a disk lifeboat can test (see `lifeboat list`)")
    })
}

fn describe(d: &Disk) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} ({} bytes), {}, model {}, serial {}",
        d.path.display(),
        human_bytes(d.size),
        d.size,
        d.transport,
        d.model.as_deref().unwrap_or("-"),
        d.serial.as_deref().unwrap_or("-")
    );
    if let Some(b) = &d.backing_file {
        let _ = writeln!(s, "  loop device over {}", b.display());
    }
    if d.partitions.is_empty() {
        let _ = writeln!(s, "  no partitions");
    }
    for p in &d.partitions {
        let _ = writeln!(
            s,
            "  partition {}: {} at {}",
            p.path.display(),
            human_bytes(p.size),
            p.start
        );
    }
    s
}

fn confirm(d: &Disk, yes: bool) -> Result<()> {
    let shown = d.path.display();
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{shown}: refusing to erase without confirmation: no terminal to ask on; pass --yes \
             to erase it from a script"
        );
    }
    eprint!(
        "{}ALL DATA ON {shown} WILL BE DESTROYED. Type yes to test it: ",
        describe(d)
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the confirmation")?;
    if line.trim() != "yes" {
        bail!(
            "{shown}: not confirmed (typed {:?}); nothing was written",
            line.trim()
        );
    }
    Ok(())
}

/// Open read-write, exclusively, with O_DIRECT (buffered when the device refuses it).
fn open_device(path: &Path) -> Result<(File, bool)> {
    let shown = path.display();
    let open = |direct: bool| {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        let mut flags = nix::libc::O_EXCL;
        if direct {
            flags |= nix::libc::O_DIRECT;
        }
        o.custom_flags(flags).open(path)
    };
    let e = match open(true) {
        Ok(f) => return Ok((f, true)),
        Err(e) => e,
    };
    match e.raw_os_error() {
        Some(nix::libc::EINVAL) => {
            let f = open(false)
                .with_context(|| format!("{shown}: cannot open for writing (exclusive)"))?;
            Ok((f, false))
        }
        Some(nix::libc::EBUSY) => bail!(
            "{shown} is in use (mounted, or held open by another program or device); unmount it \
             and close what uses it first"
        ),
        Some(nix::libc::EROFS) | Some(nix::libc::EACCES) | Some(nix::libc::EPERM) => bail!(
            "{shown}: cannot open for writing ({e}); it may be read-only (write-protect switch), \
             or this needs root"
        ),
        _ => Err(anyhow::Error::new(e).context(format!("{shown}: cannot open for writing"))),
    }
}

/// Show progress on stderr until `done`: indicatif bars on a terminal, JSON lines with --json.
fn progress_thread(
    p: Arc<Progress>,
    done: Arc<AtomicBool>,
    out: Output,
) -> Option<std::thread::JoinHandle<()>> {
    if out.quiet {
        return None;
    }
    let json = out.json;
    std::thread::Builder::new()
        .name("lifeboat-progress".into())
        .spawn(move || {
            let start = Instant::now();
            let mut phase_start = Instant::now();
            let new_bar = |phase: &str, total: u64| {
                let b = indicatif::ProgressBar::with_draw_target(
                    Some(total),
                    indicatif::ProgressDrawTarget::stderr_with_hz(4),
                );
                if let Ok(st) = indicatif::ProgressStyle::with_template(
                    "{prefix:>6} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                ) {
                    b.set_style(st.progress_chars("=> "));
                }
                b.set_prefix(phase.to_string());
                b
            };
            let mut bar: Option<indicatif::ProgressBar> = None;
            let mut last_phase = "";
            let mut last_json = Instant::now() - Duration::from_secs(10);
            loop {
                let finished = done.load(Ordering::Relaxed);
                let phase = p.phase().name();
                let (d, t, bad) = (
                    p.done.load(Ordering::Relaxed),
                    p.total.load(Ordering::Relaxed),
                    p.bad.load(Ordering::Relaxed),
                );
                if phase != last_phase {
                    phase_start = Instant::now();
                }
                if !json {
                    if phase != last_phase {
                        // Keep the finished phase's bar (and its rate) on screen.
                        if let Some(b) = bar.take() {
                            if let Some(len) = b.length() {
                                b.set_position(len);
                            }
                            b.finish();
                            if !b.is_hidden() {
                                eprintln!();
                            }
                        }
                        if matches!(phase, "write" | "read") {
                            bar = Some(new_bar(phase, t));
                        }
                    }
                    if let Some(b) = &bar {
                        b.set_length(t);
                        b.set_position(d);
                        b.set_message(if bad > 0 {
                            format!("{} bad", human_bytes(bad))
                        } else {
                            String::new()
                        });
                    }
                } else if !finished
                    && (last_json.elapsed() >= Duration::from_secs(1) || phase != last_phase)
                {
                    last_json = Instant::now();
                    let secs = phase_start.elapsed().as_secs_f64();
                    let line = serde_json::json!({
                        "event": "progress",
                        "phase": phase,
                        "done": d,
                        "total": t,
                        "bad_bytes": bad,
                        "bytes_per_second": if secs > 0.0 { (d as f64 / secs).round() } else { 0.0 },
                        "elapsed_s": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                    });
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
                last_phase = phase;
                if finished {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        })
        .ok()
}

fn mb_s(s: &Speed) -> String {
    s.mb_s()
        .map(|v| format!("{v:.1} MB/s"))
        .unwrap_or_else(|| "-".into())
}

fn summary(v: Verdict, usable: u64, size: u64, c: &Counts) -> String {
    match v {
        Verdict::Pass => format!("pass: all {} usable", human_bytes(size)),
        Verdict::FakeCapacity => format!(
            "fail: fake capacity: only {} of {} usable ({usable} of {size} bytes)",
            human_bytes(usable),
            human_bytes(size)
        ),
        Verdict::BadAreas => format!(
            "fail: bad areas: {} unreadable, {} corrupted, {} failed to write{}",
            human_bytes(c.unreadable),
            human_bytes(c.corrupt),
            human_bytes(c.write_failed),
            if usable < size {
                format!("; intact below {} ({usable} bytes)", human_bytes(usable))
            } else {
                String::new()
            }
        ),
    }
}

fn render(doc: &MediaTestDoc) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} test, {} of {} written and read back{}",
        doc.device,
        doc.mode,
        human_bytes(doc.tested_bytes),
        human_bytes(doc.size),
        if doc.mode == "quick" {
            format!(" ({} samples)", doc.samples)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "Write: {} in {:.1} s ({})",
        human_bytes(doc.write.bytes),
        doc.write.seconds,
        mb_s(&doc.write)
    );
    let _ = writeln!(
        s,
        "Read:  {} in {:.1} s ({})",
        human_bytes(doc.read.bytes),
        doc.read.seconds,
        mb_s(&doc.read)
    );
    let speeds = |read: bool| {
        let v: Vec<f64> = doc
            .profile
            .iter()
            .filter_map(|r| if read { r.read.mb_s() } else { r.write.mb_s() })
            .collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        (!v.is_empty()).then(|| format!("{lo:.1}–{hi:.1} MB/s"))
    };
    if let (Some(w), Some(r)) = (speeds(false), speeds(true)) {
        let _ = writeln!(
            s,
            "Speed across {} regions: write {w}, read {r}",
            doc.profile.len()
        );
    }
    let _ = writeln!(
        s,
        "Real capacity: {} ({} bytes) of {} ({} bytes) advertised{}",
        human_bytes(doc.usable_bytes),
        doc.usable_bytes,
        human_bytes(doc.size),
        doc.size,
        if doc.granularity > 512 {
            format!(", to within {}", human_bytes(doc.granularity))
        } else {
            String::new()
        }
    );
    if !doc.areas.is_empty() {
        let _ = writeln!(s, "Bad areas (offset+length in bytes):");
        for a in doc.areas.iter().take(TEXT_AREAS) {
            let what = match (a.kind, a.holds_data_of) {
                (Kind::Aliased, Some(h)) => format!(
                    "holds the data written at {h} ({}): the same storage twice",
                    human_bytes(h)
                ),
                (k, _) => k.describe().to_string(),
            };
            let _ = writeln!(
                s,
                "  {}+{} ({} at {}): {what}",
                a.start,
                a.length,
                human_bytes(a.length),
                human_bytes(a.start),
            );
        }
        let more = doc.areas.len().saturating_sub(TEXT_AREAS) as u64 + doc.areas_omitted;
        if more > 0 {
            let _ = writeln!(s, "  … {more} more (see --json)");
        }
    }
    if let Some(e) = &doc.sync_error {
        let _ = writeln!(s, "Sync after writing failed: {e}");
    }
    for w in &doc.warnings {
        let _ = writeln!(s, "Warning: {w}");
    }
    let _ = writeln!(
        s,
        "Verdict: {}",
        doc.summary
            .replacen("pass:", "PASS:", 1)
            .replacen("fail:", "FAIL:", 1)
    );
    let _ = writeln!(
        s,
        "The data that was on {} is gone{}.",
        doc.device,
        if doc.wiped_bytes > 0 {
            "; its first and last MiB are zeroed (no partition table)"
        } else {
            ""
        }
    );
    s
}

/// Run `media-test`.
pub fn run(args: &MediaTestArgs, out: &Output) -> Result<Outcome> {
    let root = SysRoot::host();
    let disk = find_disk(&args.device, &root)?;
    let shown = disk.path.display().to_string();
    let needs = ImageNeeds {
        size: 0,
        last_used_byte: 0,
        sector_size: disk.logical_sector_size,
    };
    let refused = refusals(&disk, &needs);
    if !refused.is_empty() {
        bail!(
            "refusing to test {shown}: {}; nothing was written",
            refused.join("; ")
        );
    }
    confirm(&disk, args.yes)?;
    if !out.quiet && !out.json && args.yes {
        eprint!("{}", describe(&disk));
    }

    let (file, direct) = open_device(&disk.path)?;
    let want = disk_devnum(&root, &disk.name)?;
    let got = sys::file_device_number(&file).with_context(|| format!("{shown}: fstat"))?;
    if want != got {
        bail!(
            "{shown}: the opened node is device {got} but sysfs says {} is {want}; the device \
             changed under us, nothing was written",
            disk.name
        );
    }
    if sys::is_read_only(&file).with_context(|| format!("{shown}: BLKROGET"))? {
        bail!(
            "refusing to test {shown}: it is read-only (write-protect switch?); nothing was written"
        );
    }
    let size = sys::size_bytes(&file).with_context(|| format!("{shown}: size"))?;
    let sector =
        sys::logical_sector_size(&file).with_context(|| format!("{shown}: sector size"))?;
    if size < u64::from(sector) {
        bail!("{shown}: the device is empty ({size} bytes); is a card inserted?");
    }
    let mut warnings = Vec::new();
    if !direct {
        warnings.push(
            "the device refused O_DIRECT; buffered I/O was used and the cache dropped before reading"
                .to_string(),
        );
    }

    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    let nonce = u64::from_le_bytes(seed);
    let plan = if args.quick {
        Plan::quick(size, u64::from(sector), nonce)
    } else {
        Plan::full(size)
    };

    // The first SIGINT/SIGTERM/SIGHUP asks the work to stop (and clean up); a second ends
    // the process at once.
    let stop = super::stop_on_signals();
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let handle = progress_thread(Arc::clone(&progress), Arc::clone(&done), *out);
    let target = mtio::Target {
        file: &file,
        name: &shown,
        size,
        sector,
    };
    let result = mtio::run(target, &plan, Pattern::new(nonce), &progress, &stop);
    let wiped = match &result {
        Ok(_) => match mtio::wipe(&file, &shown, size, &progress) {
            Ok(n) => n,
            Err(e) => {
                warnings.push(format!("{e:#}"));
                0
            }
        },
        Err(_) => 0,
    };
    done.store(true, Ordering::Relaxed);
    if let Some(h) = handle {
        let _ = h.join();
    }
    let m = match result {
        Ok(m) => m,
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
        Err(e) => {
            return Err(e.context(format!(
                "{shown}: media-test stopped; the device's content is now undefined"
            )));
        }
    };

    let usable = m.tally.usable(size);
    if m.tally.alias_incomplete() {
        warnings.push(
            "too many aliased areas to analyse all of them; the real capacity is an upper bound"
                .into(),
        );
    }
    let v = verdict(&m.tally, size, usable);
    let doc = MediaTestDoc {
        schema_version: SCHEMA_VERSION,
        device: shown,
        model: disk.model.clone(),
        serial: disk.serial.clone(),
        transport: disk.transport.to_string(),
        size,
        logical_sector_size: sector,
        mode: if plan.quick { "quick" } else { "full" },
        nonce: format!("{nonce:016x}"),
        tested_bytes: plan.bytes(),
        samples: plan.extents.len(),
        granularity: plan.granularity,
        usable_bytes: usable,
        verdict: v,
        summary: summary(v, usable, size, &m.tally.counts),
        counts: m.tally.counts,
        areas: m.tally.areas.clone(),
        areas_omitted: m.tally.areas_omitted,
        write: m.write,
        read: m.read,
        profile: m.profile.regions(),
        sync_error: m.sync_error.clone(),
        wiped_bytes: wiped,
        data_erased: true,
        warnings,
    };
    if out.json {
        out.json_doc(&doc);
    } else {
        out.text(&render(&doc));
    }
    Ok(if v == Verdict::Pass {
        Outcome::Ok
    } else {
        Outcome::VerifyFailed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_what_failed() {
        let c = Counts::default();
        let mib = 1u64 << 20;
        assert!(summary(Verdict::Pass, 64 * mib, 64 * mib, &c).starts_with("pass"));
        let s = summary(Verdict::FakeCapacity, 64 * mib, 256 * mib, &c);
        assert!(s.contains("only 64.0 MiB of 256 MiB usable"), "{s}");
        let c = Counts {
            unreadable: 4096,
            ..Counts::default()
        };
        let s = summary(Verdict::BadAreas, 12 * mib, 64 * mib, &c);
        assert!(
            s.contains("4.0 KiB unreadable") && s.contains("12582912"),
            "{s}"
        );
    }

    #[test]
    fn regular_files_are_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = find_disk(f.path(), &SysRoot::host()).unwrap_err();
        assert!(format!("{e:#}").contains("not a block device"), "{e:#}");
        let e = find_disk(Path::new("/nonexistent/dev"), &SysRoot::host()).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/dev"), "{e:#}");
    }
}

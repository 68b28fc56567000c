//! `lifeboat image <device|image> -o FILE`: copy a disk (or raw image) into a raw, zstd, gzip
//! or xz image of its used blocks, with SHA-256 hashes, a bmap, a manifest and a GNU ddrescue
//! mapfile, surviving read errors like ddrescue does. The clap arguments live here; the work
//! is [`crate::imaging::job`].

use crate::error::Outcome;
use crate::imaging::compress::Format;
use crate::imaging::job::{self, ImageOptions, ImageOutcome};
use crate::imaging::rescue::Progress;
use crate::report::{Output, SCHEMA_VERSION, human_bytes};
use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Arguments of `image`.
#[derive(Debug, Args)]
#[command(after_help = "\
Formats (from the output name, or --format): FILE.img raw and sparse; FILE.img.zst
zstd on every core; FILE.img.gz gzip (parallel members, any gunzip reads it);
FILE.img.xz works but is slow (xz compresses about 3 MB/s per core). `-o -` writes
a raw stream to stdout (e.g. `| rclone rcat remote:card.img`).

Beside FILE it writes FILE.bmap (for `bmaptool copy`), FILE.manifest.json (see
docs/manifest.md) and FILE.map, a GNU ddrescue mapfile saved at least every 30 s;
after Ctrl-C, a crash or an unplugged reader, run the same command with --resume.
Unreadable sectors are zero-filled and listed per partition; the exit status is
then 6.")]
pub struct ImageArgs {
    /// Disk (e.g. /dev/mmcblk0, /dev/sdb) or raw image file to copy
    pub source: PathBuf,
    /// Image file to write (.img, .img.zst, .img.gz, .img.xz), or - for stdout
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output format (default: from the output name; raw for stdout)
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Compression level (zstd 1-19, default 3; gzip 1-9, default 6; xz 0-9, default 3)
    #[arg(long)]
    pub level: Option<i32>,
    /// Read every sector, not only the blocks the filesystems use
    #[arg(long)]
    pub all: bool,
    /// Overwrite existing outputs; image a disk that is mounted read-write
    #[arg(long)]
    pub force: bool,
    /// Continue an interrupted run from FILE.map into FILE.part (raw .img only)
    #[arg(long)]
    pub resume: bool,
    /// Passes over bad sectors after scraping
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub retries: u32,
    /// Do not trim failed blocks (read them sector by sector from both edges)
    #[arg(long)]
    pub no_trim: bool,
    /// Do not scrape failed blocks sector by sector
    #[arg(long)]
    pub no_scrape: bool,
    /// Give up on one read after this many seconds (0: wait for the kernel)
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Read at most this many bytes per second (suffixes K, M, G), for cards that fail
    /// when read fast
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    pub max_rate: Option<u64>,
    /// Wait this long for a device that dropped off the bus to come back
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub reopen_wait: u64,
    /// Compression threads (default: every core)
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Bytes per read in the copy passes (suffixes K, M)
    #[arg(long, default_value = "4M", value_parser = parse_size, value_name = "BYTES")]
    pub chunk: u64,
    /// Read block devices through the page cache instead of O_DIRECT
    #[arg(long)]
    pub buffered: bool,
    /// Write the bmap here instead of FILE.bmap
    #[arg(long, value_name = "FILE")]
    pub bmap: Option<PathBuf>,
    /// Write the manifest here instead of FILE.manifest.json
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Keep the ddrescue mapfile here instead of FILE.map
    #[arg(long, value_name = "FILE")]
    pub mapfile: Option<PathBuf>,
    /// Draw read speed and bad areas across the disk into this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub report: Option<PathBuf>,
    /// Seconds between mapfile saves
    #[arg(long, default_value_t = 30, hide = true)]
    pub mapfile_interval: u64,
}

/// Parse `123`, `64K`, `1M`, `2G` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(format!("unknown unit in {s:?} (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size"))?;
    if n.is_nan() || n < 0.0 || n * mul as f64 > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok((n * mul as f64) as u64)
}

/// The JSON document of `image`.
#[derive(Debug, Serialize)]
struct ImageDoc<'a> {
    schema_version: u32,
    output: Option<String>,
    manifest_file: Option<String>,
    bmap_file: Option<String>,
    mapfile: Option<String>,
    report_file: Option<String>,
    warnings: &'a [String],
    manifest: &'a crate::verify::manifest::Manifest,
}

fn options(a: &ImageArgs) -> Result<ImageOptions> {
    if a.chunk == 0 || a.chunk > 64 << 20 {
        bail!("--chunk must be between 1 byte and 64M");
    }
    if a.timeout.is_nan() || a.timeout < 0.0 {
        bail!("--timeout must be 0 or more seconds");
    }
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    Ok(ImageOptions {
        source: a.source.clone(),
        output: a.output.clone(),
        format: a.format,
        level: a.level,
        all: a.all,
        force: a.force,
        resume: a.resume,
        retries: a.retries,
        trim: !a.no_trim,
        scrape: !a.no_scrape,
        timeout: (a.timeout > 0.0).then(|| Duration::from_secs_f64(a.timeout)),
        max_rate: a.max_rate,
        reopen_wait: Duration::from_secs(a.reopen_wait),
        threads,
        chunk: a.chunk as usize,
        direct: !a.buffered,
        map_interval: Duration::from_secs(a.mapfile_interval.max(1)),
        bmap: a.bmap.clone(),
        manifest: a.manifest.clone(),
        mapfile: a.mapfile.clone(),
        report_svg: a.report.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

/// Show progress on stderr until `done`: an indicatif bar on a terminal, JSON lines with
/// --json, nothing with --quiet.
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
            let bar = (!json).then(|| {
                let b = indicatif::ProgressBar::with_draw_target(
                    Some(0),
                    indicatif::ProgressDrawTarget::stderr_with_hz(4),
                );
                if let Ok(st) = indicatif::ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                ) {
                    b.set_style(st.progress_chars("=> "));
                }
                b
            });
            let mut last_phase = String::new();
            let mut last_json = Instant::now() - Duration::from_secs(10);
            while !done.load(Ordering::Relaxed) {
                let phase = p.phase_name();
                let (d, t) = (
                    p.done.load(Ordering::Relaxed),
                    p.total.load(Ordering::Relaxed),
                );
                let (bad, errs) = (
                    p.bad.load(Ordering::Relaxed),
                    p.errors.load(Ordering::Relaxed),
                );
                if let Some(b) = &bar {
                    if phase != last_phase {
                        b.reset();
                        b.set_prefix(phase.clone());
                    }
                    b.set_length(t);
                    b.set_position(d);
                    b.set_message(if errs > 0 {
                        format!("{errs} read errors, {} bad", human_bytes(bad))
                    } else {
                        String::new()
                    });
                } else if last_json.elapsed() >= Duration::from_secs(1) || phase != last_phase {
                    last_json = Instant::now();
                    let line = serde_json::json!({
                        "event": "progress",
                        "phase": phase,
                        "done": d,
                        "total": t,
                        "bad_bytes": bad,
                        "read_errors": errs,
                        "elapsed_s": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                    });
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
                last_phase = phase;
                std::thread::sleep(Duration::from_millis(200));
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        })
        .ok()
}

fn render(o: &ImageOutcome) -> String {
    let m = &o.manifest;
    let mut s = String::new();
    let out = o
        .output
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdout".into());
    s += &format!(
        "{}: {} image of {} ({} of {} read, mode {})\n",
        out,
        m.image.format,
        m.source.path,
        human_bytes(m.mapped_bytes),
        human_bytes(m.image.size),
        m.mode
    );
    s += &format!("SHA-256: {}\n", m.image.sha256);
    if let Some(n) = m.image.file_bytes
        && m.image.format != "raw"
    {
        s += &format!(
            "Stored: {} ({})\n",
            human_bytes(n),
            m.image.file_sha256.as_deref().unwrap_or("-")
        );
    }
    for (what, p) in [
        ("bmap", &o.bmap_path),
        ("manifest", &o.manifest_path),
        ("mapfile", &o.mapfile_path),
        ("report", &o.svg_path),
    ] {
        if let Some(p) = p {
            s += &format!("{what}: {}\n", p.display());
        }
    }
    let copy: Vec<&crate::verify::manifest::PhaseTiming> =
        m.phases.iter().filter(|p| p.name == "copy").collect();
    if let Some(c) = copy.first()
        && let Some(r) = c.bytes_per_second
    {
        s += &format!(
            "Read: {} in {:.1} s ({}/s)\n",
            human_bytes(c.bytes),
            c.seconds,
            human_bytes(r as u64)
        );
    }
    if m.bad.is_empty() {
        s += "Every sector read.\n";
    } else {
        s += &format!(
            "UNREADABLE: {} in {} ranges ({} read errors), zero-filled in the image:\n",
            human_bytes(m.rescue.bad_bytes),
            m.bad.len(),
            m.rescue.read_errors
        );
        for b in m.bad.iter().take(20) {
            s += &format!(
                "  {}+{}{}\n",
                b.start,
                b.length,
                match (b.partition, &b.role) {
                    (Some(n), Some(r)) =>
                        format!("  p{n} ({r}) at +{}", b.partition_offset.unwrap_or(0)),
                    (Some(n), None) => format!("  p{n} at +{}", b.partition_offset.unwrap_or(0)),
                    _ => "  outside any partition".into(),
                }
            );
            for f in b.files.iter().take(5) {
                s += &format!("      hits {f}\n");
            }
        }
        if m.bad.len() > 20 {
            s += &format!("  … {} more in the manifest\n", m.bad.len() - 20);
        }
    }
    s
}

/// Run `image`.
pub fn run(args: &ImageArgs, out: &Output) -> Result<Outcome> {
    let opts = options(args)?;
    if opts.output.as_os_str() == "-" && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!(
            "-o -: stdout is a terminal; pipe the image somewhere (e.g. `| rclone rcat remote:card.img`) or give a file"
        );
    }
    // The first SIGINT/SIGTERM/SIGHUP asks the work to stop (and clean up); a second ends
    // the process at once.
    let stop = super::stop_on_signals();
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let handle = progress_thread(Arc::clone(&progress), Arc::clone(&done), *out);
    let mut warn = |s: &str| out.warning(s);
    let res = job::run(&opts, &progress, &stop, &mut warn);
    done.store(true, Ordering::Relaxed);
    if let Some(h) = handle {
        let _ = h.join();
    }
    let o = res?;
    let to_stdout = opts.output.as_os_str() == "-";
    if out.json && !to_stdout {
        out.json_doc(&ImageDoc {
            schema_version: SCHEMA_VERSION,
            output: o.output.as_ref().map(|p| p.display().to_string()),
            manifest_file: o.manifest_path.as_ref().map(|p| p.display().to_string()),
            bmap_file: o.bmap_path.as_ref().map(|p| p.display().to_string()),
            mapfile: o.mapfile_path.as_ref().map(|p| p.display().to_string()),
            report_file: o.svg_path.as_ref().map(|p| p.display().to_string()),
            warnings: &o.warnings,
            manifest: &o.manifest,
        });
    } else if !out.quiet {
        // With the image on stdout, the summary goes to stderr.
        let text = render(&o);
        if to_stdout {
            eprint!("{text}");
        } else {
            out.text(&text);
        }
    }
    Ok(if o.manifest.bad.is_empty() {
        Outcome::Ok
    } else {
        Outcome::ImageIncomplete
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1.5M"), Ok(1_572_864));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
        assert!(parse_size("-1").is_err());
    }
}

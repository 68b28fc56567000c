//! `lifeboat shrink <image> -o OUT.img (--size BYTES | --to DEVICE) [--force]`: an image made
//! to fit a slightly smaller card or SSD. The clap arguments and the report live here; the
//! work is [`crate::flash::shrink`].

use crate::error::Outcome;
use crate::flash::shrink::{self, ShrinkOptions, ShrinkReport};
use crate::report::{Output, SCHEMA_VERSION, human_bytes};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `shrink`.
#[derive(Debug, Args)]
#[command(after_help = "\
The data partition (ext4, the last partition) is checked with e2fsck and shrunk
offline with resize2fs on a sparse temp copy next to OUT (attached as a loop
device: needs root); the partition tables (GPT with its backup at the new end,
hybrid or DOS MBR) are rewritten to match and OUT is cut to the target size.
The input is never changed. Refused, with the sizes, when the data does not fit.")]
pub struct ShrinkArgs {
    /// Image file: raw, .zst, .gz, .xz, .bz2 or .zip with one image (by content)
    pub image: PathBuf,
    /// Where to write the shrunk raw image
    #[arg(short, long, value_name = "OUT.img")]
    pub output: PathBuf,
    /// Size of the target in bytes (K, M, G suffixes: binary units)
    #[arg(long, value_name = "BYTES", value_parser = crate::cmd::image::parse_size,
          required_unless_present = "to", conflicts_with = "to")]
    pub size: Option<u64>,
    /// Take the size from this disk (only read: opened read-only for its size)
    #[arg(long, value_name = "DEVICE")]
    pub to: Option<PathBuf>,
    /// Replace OUT if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Serialize)]
struct ShrinkDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a ShrinkReport,
}

/// Size of a block device, opened read-only; refuses anything else.
fn device_size(dev: &Path) -> Result<u64> {
    let meta = std::fs::metadata(dev)
        .with_context(|| format!("{}: cannot access (does it exist?)", dev.display()))?;
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_block_device() {
        bail!(
            "{}: is not a block device; give the target disk (e.g. /dev/sdb) or use --size",
            dev.display()
        );
    }
    let f = std::fs::File::open(dev).with_context(|| {
        format!(
            "{}: cannot open read-only for its size (try sudo, or use --size)",
            dev.display()
        )
    })?;
    let ss = crate::sys::ioctl::logical_sector_size(&f)
        .with_context(|| format!("{}: reading the logical sector size", dev.display()))?;
    if ss != 512 {
        bail!(
            "{}: has {ss}-byte logical sectors; Home Assistant OS images use 512-byte sectors \
             and would not boot from it",
            dev.display()
        );
    }
    crate::sys::ioctl::size_bytes(&f)
        .with_context(|| format!("{}: reading its size", dev.display()))
}

fn render(r: &ShrinkReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} bytes ({}) for a target of {} bytes ({})",
        r.output,
        r.output_size,
        human_bytes(r.output_size),
        r.target_size,
        r.target
    );
    let _ = writeln!(
        s,
        "  from {} ({}, {} bytes), {} table",
        r.input, r.format, r.image_size, r.table
    );
    let _ = writeln!(
        s,
        "  data partition p{}: {} -> {} bytes ({} -> {})",
        r.data_partition,
        r.data_old_bytes,
        r.data_new_bytes,
        human_bytes(r.data_old_bytes),
        human_bytes(r.data_new_bytes)
    );
    if let Some(m) = r.fs_min_bytes {
        let _ = writeln!(
            s,
            "  filesystem: {} -> {} bytes (smallest possible about {})",
            r.fs_old_bytes,
            r.fs_new_bytes,
            human_bytes(m)
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "  - {n}");
    }
    s
}

/// Run `shrink`.
pub fn run(a: &ShrinkArgs, out: &Output) -> Result<Outcome> {
    let (target_size, target_desc) = match (&a.to, a.size) {
        (Some(dev), _) => (device_size(dev)?, format!("the size of {}", dev.display())),
        (None, Some(n)) => (n, "--size".to_string()),
        (None, None) => bail!("give the target size with --size BYTES or --to DEVICE"),
    };
    // The first SIGINT/SIGTERM/SIGHUP asks the work to stop (and clean up); a second ends
    // the process at once.
    let stop = super::stop_on_signals();
    let rep = shrink::shrink(
        &a.image,
        &a.output,
        &ShrinkOptions {
            target_size,
            target_desc,
            force: a.force,
            stop: Some(stop),
        },
    )?;
    if out.json {
        out.json_doc(&ShrinkDoc {
            schema_version: SCHEMA_VERSION,
            report: &rep,
        });
    } else {
        out.text(&render(&rep));
    }
    Ok(Outcome::Ok)
}

//! `lifeboat report-image FILE.manifest.json -o FILE.svg`: draw the read profile of a finished
//! (or interrupted-then-finished) `image` run from its saved manifest — read speed per region,
//! bad areas and partition boundaries — the same picture `image --report` draws
//! ([`crate::imaging::svg`]). Written through a temporary name and renamed; an existing file
//! is replaced only with `--force`.

use crate::error::Outcome;
use crate::imaging::mapfile::write_atomic;
use crate::report::{Output, SCHEMA_VERSION};
use crate::verify::manifest::Manifest;
use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Arguments of `report-image`.
#[derive(Debug, Args)]
#[command(after_help = "\
The picture shows read speed per region across the disk (blue), regions with
read errors (red) or retries and timeouts (orange), bad ranges as red marks,
unused regions that were not read (grey) and the partition boundaries. It is
the same drawing as `lifeboat image --report FILE.svg`.")]
pub struct ReportImageArgs {
    /// Manifest written by `lifeboat image` (FILE.manifest.json)
    pub manifest: PathBuf,
    /// SVG file to write
    #[arg(short, long, value_name = "FILE.svg")]
    pub output: PathBuf,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
}

/// The JSON document of `report-image`.
#[derive(Debug, Serialize)]
struct ReportImageDoc {
    schema_version: u32,
    manifest_file: String,
    report_file: String,
    source: String,
    image_size: u64,
    bad_ranges: usize,
    bad_bytes: u64,
    read_errors: u64,
    profile_regions: usize,
}

/// Whether `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Run `report-image`.
pub fn run(a: &ReportImageArgs, out: &Output) -> Result<Outcome> {
    let m = Manifest::load(&a.manifest)?;
    let dst = &a.output;
    if dst.as_os_str() == "-" {
        bail!("-o -: give an SVG file name (e.g. -o card.svg)");
    }
    if same_file(&a.manifest, dst) {
        bail!(
            "{}: is the manifest itself; give another name for the SVG (e.g. card.svg)",
            dst.display()
        );
    }
    if let Some(parent) = dst.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        bail!("{}: no such directory for the output", parent.display());
    }
    if dst.is_dir() {
        bail!("{}: is a directory; give an SVG file name", dst.display());
    }
    if dst.exists() && !a.force {
        bail!(
            "{}: already exists; pass --force to overwrite",
            dst.display()
        );
    }
    let svg = crate::imaging::svg::render(&m);
    write_atomic(dst, svg.as_bytes())?;
    if out.json {
        out.json_doc(&ReportImageDoc {
            schema_version: SCHEMA_VERSION,
            manifest_file: a.manifest.display().to_string(),
            report_file: dst.display().to_string(),
            source: m.source.path.clone(),
            image_size: m.image.size,
            bad_ranges: m.bad.len(),
            bad_bytes: m.rescue.bad_bytes,
            read_errors: m.rescue.read_errors,
            profile_regions: m.read_profile.len(),
        });
    } else {
        let mut s = format!(
            "{}: read profile of {} ({} regions",
            dst.display(),
            m.source.path,
            m.read_profile.len()
        );
        if m.bad.is_empty() {
            s += ", every sector read)\n";
        } else {
            s += &format!(
                ", {} bad ranges, {} bad bytes)\n",
                m.bad.len(),
                m.rescue.bad_bytes
            );
        }
        if m.read_profile.is_empty() {
            s += "note: the manifest has no read profile; only the partitions and mapped ranges are drawn\n";
        }
        out.text(&s);
    }
    Ok(Outcome::Ok)
}

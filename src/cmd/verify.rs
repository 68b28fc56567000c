//! `lifeboat verify <image>`: check an image (raw, .zst, .gz, .xz, .bz2, a .zip holding one
//! image) against its manifest, a bmap, a published SHA-256, and/or a device that should hold
//! it. The clap arguments live here; the work is [`crate::verify::check`].

use crate::error::Outcome;
use crate::report::{Output, SCHEMA_VERSION, human_bytes};
use crate::verify::check::{self, VerifyOptions, VerifyReport};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
Without --manifest or --bmap, IMAGE.manifest.json and IMAGE.bmap beside the image are
used when they exist. --sha256 matches either the decompressed image or the file as
stored (a release's .img.xz checksum). --against compares a device (or another raw
image) with the image, over the mapped ranges when a manifest or bmap gives them,
reading the device with O_DIRECT. Exit status 7 when anything differs.")]
pub struct VerifyArgs {
    /// Image file: raw, .img.zst, .img.gz, .img.xz, .img.bz2 or a .zip with one image
    pub image: PathBuf,
    /// lifeboat manifest to check against (default: IMAGE.manifest.json if present)
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// bmap file (lifeboat's or bmaptool's) to check against (default: IMAGE.bmap if present)
    #[arg(long, value_name = "FILE")]
    pub bmap: Option<PathBuf>,
    /// Expected SHA-256 of the image or of the file as stored, in hex
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Device (or raw image file) that should hold the image; compared byte for byte
    #[arg(long, value_name = "DEVICE")]
    pub against: Option<PathBuf>,
    /// Do not pick up IMAGE.manifest.json / IMAGE.bmap automatically
    #[arg(long)]
    pub no_sidecars: bool,
}

#[derive(Serialize)]
struct VerifyDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a VerifyReport,
}

fn render(r: &VerifyReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}, {} image, {} stored)",
        r.image,
        r.format,
        human_bytes(r.size),
        human_bytes(r.file_bytes)
    );
    let _ = writeln!(s, "  sha256 {}", r.sha256);
    if r.format != "raw" {
        let _ = writeln!(s, "  file sha256 {}", r.file_sha256);
    }
    for c in &r.checks {
        let _ = writeln!(
            s,
            "  {:<16} {}  {}",
            c.name,
            if c.ok { "ok" } else { "MISMATCH" },
            c.detail
        );
    }
    if let Some(first) = r.mismatches.first() {
        let _ = writeln!(
            s,
            "first mismatch: {} bytes at {}",
            first.length, first.start
        );
        let _ = writeln!(s, "mismatching ranges:");
        for m in &r.mismatches {
            let part = match (m.partition, &m.partition_name, m.partition_offset) {
                (Some(n), name, Some(o)) => format!(
                    "partition {n}{} +{o}",
                    name.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
                ),
                _ => "outside partitions".into(),
            };
            let _ = writeln!(
                s,
                "  {:<8} offset {:>14}  length {:>12}  {}",
                m.check, m.start, m.length, part
            );
        }
    }
    let _ = writeln!(
        s,
        "{}",
        if r.ok {
            "verified: everything matches"
        } else {
            "VERIFY FAILED"
        }
    );
    s
}

/// Run `verify`.
pub fn run(args: &VerifyArgs, out: &Output) -> Result<Outcome> {
    let side = |given: &Option<PathBuf>, suffix: &str| {
        given.clone().or_else(|| {
            if args.no_sidecars {
                None
            } else {
                check::sidecar(&args.image, suffix)
            }
        })
    };
    let o = VerifyOptions {
        manifest: side(&args.manifest, ".manifest.json"),
        bmap: side(&args.bmap, ".bmap"),
        sha256: args.sha256.clone(),
        against: args.against.clone(),
    };
    let show = !out.quiet && !out.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let t0 = Instant::now();
    let mut last = Instant::now();
    let mut progress = |n: u64| {
        if show && last.elapsed().as_millis() >= 500 {
            last = Instant::now();
            let secs = t0.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\rverifying: {} read, {}/s   ",
                human_bytes(n),
                human_bytes((n as f64 / secs) as u64)
            );
        }
    };
    let r = check::verify(&args.image, &o, &mut progress)?;
    if show {
        eprint!("\r\x1b[K");
    }
    if out.json {
        out.json_doc(&VerifyDoc {
            schema_version: SCHEMA_VERSION,
            report: &r,
        });
    } else {
        out.text(&render(&r));
    }
    Ok(if r.ok {
        Outcome::Ok
    } else {
        Outcome::VerifyFailed
    })
}

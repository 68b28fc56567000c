//! The command-line interface as clap types. Kept in the library so man pages and shell
//! completions can be generated from the same definitions. Help text fits 80 columns.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Keep a Home Assistant OS installation alive when its storage ages.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about, long_about = None, help_expected = true, max_term_width = 80)]
pub struct Cli {
    /// Print machine-readable JSON on stdout instead of text (see docs/json.md)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors (the exit status still tells the result)
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List disks: size, transport, model, in use, Home Assistant OS or not
    List(ListArgs),
    /// Show what is on a disk or image: table, board, OS slots, data, backups
    Inspect(InspectArgs),
    /// Home Assistant backups: list, check, extract, decrypt (SecureTar v1/v2/v3)
    Backup(crate::cmd::backup::BackupArgs),
    /// Wear and health of SD cards, eMMC, NVMe and SATA/USB disks, with a verdict
    Health(crate::cmd::health::HealthArgs),
    /// Copy a disk into a hashed, compressed image of its used blocks, rescuing bad sectors
    Image(crate::cmd::image::ImageArgs),
    /// Check an image against its manifest, bmap or SHA-256, or a disk against an image
    Verify(crate::cmd::verify::VerifyArgs),
    /// Draw read speed and bad areas of an image manifest as an SVG picture
    ReportImage(crate::cmd::report_image::ReportImageArgs),
    /// Destructive test of a new card or SSD: real capacity (fake cards), bad areas, speed
    MediaTest(crate::cmd::media_test::MediaTestArgs),
    /// Write an image to a disk: only mapped blocks, every byte read back and compared
    Flash(crate::cmd::flash::FlashArgs),
    /// Copy one disk onto another (old card to new card or SSD): used blocks, read back
    Clone(crate::cmd::clone::CloneArgs),
    /// Shrink an image's data partition and tables to fit a slightly smaller disk
    Shrink(crate::cmd::shrink::ShrinkArgs),
    /// udev rules: keep desktops from mounting HAOS media, stable /dev names
    Udev(crate::cmd::udev::UdevArgs),
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these disks (e.g. /dev/sdb, mmcblk0); default: every disk
    pub devices: Vec<PathBuf>,
    /// Also list partitions under each disk
    #[arg(long, short)]
    pub partitions: bool,
    /// Do not open disks to recognise Home Assistant OS (sysfs facts only)
    #[arg(long)]
    pub no_probe: bool,
    /// Read sysfs, /proc and /dev under this root instead of / (for tests)
    #[arg(long, hide = true, default_value = "/")]
    pub sysfs_root: PathBuf,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Disk (e.g. /dev/mmcblk0, /dev/sdb) or raw image file to inspect
    pub source: PathBuf,
}

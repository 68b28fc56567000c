//! `lifeboat backup list|check|extract|decrypt|create|rescue|report`: Home Assistant backups
//! found on an HAOS disk or image, in a directory or given as files; the offline restore
//! drill; safe extraction; an unencrypted copy; a new backup made from a card that no longer
//! boots; the backups a card holds, copied off and checked; what a restore will not bring
//! back. The clap types live here; the work is in [`crate::backup`].

use crate::backup::archive::Backup;
use crate::backup::check::{self, CheckReport, Verdict};
use crate::backup::meta::BackupSummary;
use crate::backup::password::{self, Password, PasswordSource};
use crate::backup::securetar::{EncryptionKey, Version};
use crate::backup::validate::Level;
use crate::backup::{card, create, decrypt, extract, onimage, report, rescue};
use crate::error::Outcome;
use crate::report::{Output, SCHEMA_VERSION, Table, human_bytes};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// The `backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List backups on an HAOS disk or image, in a directory, or given as files
    List(ListArgs),
    /// Restore drill: read every part of a backup as Home Assistant would
    Check(CheckArgs),
    /// Decrypt and unpack a backup into a directory, safely
    Extract(ExtractArgs),
    /// Write the same backup without encryption (still restorable)
    Decrypt(DecryptArgs),
    /// Make a restorable backup from a card or image that no longer boots
    Create(CreateArgs),
    /// Copy the backups a card or image holds off it, each checked, newest first
    Rescue(RescueArgs),
    /// What a restore will not bring back by itself: sign-ins, hardware, mounts
    Report(ReportArgs),
}

/// Where the password comes from (never the command line).
#[derive(Debug, Args, Clone, Default)]
pub struct PasswordArgs {
    /// Read the password from the first line of FILE ('-' = standard input)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Take the key from a Home Assistant backup emergency-kit file
    #[arg(long, value_name = "FILE", conflicts_with = "password_file")]
    pub emergency_kit: Option<PathBuf>,
    /// Never prompt for a password on the terminal
    #[arg(long)]
    pub no_prompt: bool,
}

impl PasswordArgs {
    fn source(&self) -> PasswordSource {
        PasswordSource {
            file: self.password_file.clone(),
            emergency_kit: self.emergency_kit.clone(),
            prompt: !self.no_prompt,
        }
    }
}

/// Arguments of `backup list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// HAOS disk or image, directory, or backup .tar files
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
}

/// Arguments of `backup check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The backup .tar file, or an HAOS disk, image or device (with --slug)
    pub backup: PathBuf,
    /// BACKUP is an HAOS disk, image, device or data partition: use its backup with this
    /// slug, file name or path (as `backup list` shows them), read in place
    #[arg(long, value_name = "SLUG")]
    pub slug: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Stop reading an inner archive past this many uncompressed bytes (e.g. 20G)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
}

/// Arguments of `backup extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The backup .tar file, or an HAOS disk, image or device (with --slug)
    pub backup: PathBuf,
    /// BACKUP is an HAOS disk, image, device or data partition: use its backup with this
    /// slug, file name or path (as `backup list` shows them), read in place
    #[arg(long, value_name = "SLUG")]
    pub slug: Option<String>,
    /// Directory to extract into (created if missing)
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Only these archives: homeassistant, an add-on slug, share, ssl, media…
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Replace what an earlier extraction left in DIR
    #[arg(long)]
    pub force: bool,
    /// Write at most this many bytes (default: the free space), e.g. 20G
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Do not give files the owners in the backup (the default unless run as root)
    #[arg(long)]
    pub no_same_owner: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Arguments of `backup decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The backup .tar file, or an HAOS disk, image or device (with --slug)
    pub backup: PathBuf,
    /// BACKUP is an HAOS disk, image, device or data partition: use its backup with this
    /// slug, file name or path (as `backup list` shows them), read in place
    #[arg(long, value_name = "SLUG")]
    pub slug: Option<String>,
    /// The unencrypted backup to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Arguments of `backup create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// HAOS disk (e.g. /dev/sdb), image file, or its data partition
    pub source: PathBuf,
    /// The backup to write (a .tar Home Assistant restores)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
    /// Name of the backup (default: "Recovered by lifeboat <date>")
    #[arg(long)]
    pub name: Option<String>,
    /// Only these parts: homeassistant, addons, folders, share, ssl, media,
    /// addons/local, or add-on slugs
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub partial: Vec<String>,
    /// Leave these parts out (the same words, and `database`)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Leave the recorder database (history, statistics) out
    #[arg(long)]
    pub exclude_database: bool,
    /// Do not run SQLite's integrity check on the database
    #[arg(long)]
    pub no_database_check: bool,
    /// Do not read the new backup back when it is written
    #[arg(long)]
    pub no_verify: bool,
    /// Encrypt (SecureTar), with the key from the emergency kit
    #[arg(long)]
    pub encrypt: bool,
    /// SecureTar version: 2 (any HA since 2025.1) or 3 (HA 2026.3 and later)
    #[arg(long, value_name = "2|3", default_value_t = 2, requires = "encrypt",
          value_parser = clap::value_parser!(u8).range(2..=3))]
    pub securetar: u8,
    /// Encrypt with the backup key Home Assistant stored on the card
    /// (.storage/backup); saying so is your consent to read it
    #[arg(long, requires = "encrypt", conflicts_with_all = ["password_file", "emergency_kit"])]
    pub key_from_card: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Arguments of `backup rescue`.
#[derive(Debug, Args)]
pub struct RescueArgs {
    /// HAOS disk (e.g. /dev/sdb), image file, or its data partition
    pub source: PathBuf,
    /// Directory to copy the backups into (created if missing)
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Replace backups an earlier rescue copied into DIR
    #[arg(long)]
    pub force: bool,
    /// Copy only; do not check the copies
    #[arg(long)]
    pub no_check: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Arguments of `backup report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A backup .tar, or an HAOS disk, image or data partition
    pub source: PathBuf,
    /// Print a Markdown checklist to tick off during the migration
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// `20G`, `512M`, `1024` (bytes), binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let m: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("unknown unit in '{s}' (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size"))?;
    n.checked_mul(mul)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Run `backup`.
pub fn run(args: &BackupArgs, out: &Output) -> Result<Outcome> {
    match &args.command {
        BackupCommand::List(a) => list(a, out),
        BackupCommand::Check(a) => run_check(a, out),
        BackupCommand::Extract(a) => run_extract(a, out),
        BackupCommand::Decrypt(a) => run_decrypt(a, out),
        BackupCommand::Create(a) => run_create(a, out),
        BackupCommand::Rescue(a) => run_rescue(a, out),
        BackupCommand::Report(a) => run_report(a, out),
    }
}

fn get_password(p: &PasswordArgs, what: &Path, needed: bool) -> Result<Option<Password>> {
    if !needed {
        return Ok(None);
    }
    password::obtain(&p.source(), &what.display().to_string())
}

/// Open the backup a command names: a backup file, or with `--slug` one on an HAOS disk,
/// image or device. A disk or image without `--slug` is refused with the slugs it holds.
fn open_backup(path: &Path, slug: Option<&str>, out: &Output) -> Result<Backup> {
    if let Some(s) = slug {
        return open_on_image(path, s, out);
    }
    refuse_image_without_slug(path)?;
    Backup::open(path)
}

/// A backup read in place on a disk or image; warns when the device is in use.
fn open_on_image(path: &Path, slug: &str, out: &Output) -> Result<Backup> {
    let (b, in_use) = onimage::open(path, slug)?;
    if !out.quiet && !in_use.is_empty() {
        eprintln!(
            "lifeboat: warning: {} is in use ({}): the backup may change while it is read",
            path.display(),
            in_use.join("; ")
        );
    }
    Ok(b)
}

fn refuse_image_without_slug(path: &Path) -> Result<()> {
    if path.is_file() && is_tar(path) {
        return Ok(());
    }
    match onimage::needs_slug(path) {
        Some(msg) => anyhow::bail!("{msg}"),
        None => Ok(()),
    }
}

fn needs_password(b: &Backup) -> bool {
    let protected = b.protected();
    b.inner_archives().iter().any(|m| {
        crate::backup::inner::layers_of(b.reader(), m, protected)
            .map(|(_, e)| e.is_some())
            .unwrap_or(false)
    })
}

// ---------------------------------------------------------------- list

/// One backup in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The source argument it was found under.
    pub source: String,
    /// The file: a path on this machine, or the path inside the image's data partition.
    pub path: String,
    /// `file`, `directory` or `haos_image`.
    pub found_in: &'static str,
    pub file_size: u64,
    pub backup: Option<BackupSummary>,
    pub error: Option<String>,
}

#[derive(Serialize)]
struct ListDoc<'a> {
    schema_version: u32,
    backups: &'a [Listed],
    problems: &'a [String],
}

fn is_tar(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 262];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head[257..262] == b"ustar")
        .unwrap_or(false)
}

fn list_file(source: &str, path: &Path, found_in: &'static str) -> Listed {
    let mut l = Listed {
        source: source.to_string(),
        path: path.display().to_string(),
        found_in,
        file_size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        backup: None,
        error: None,
    };
    match Backup::open(path) {
        Ok(b) => match b.summary() {
            Some(s) => l.backup = Some(s),
            None => {
                l.error = Some(match b.require_meta() {
                    Err(e) => format!("{e:#}"),
                    Ok(_) => "backup.json unreadable".into(),
                })
            }
        },
        Err(e) => l.error = Some(format!("{e:#}")),
    }
    l
}

fn list_dir(source: &str, dir: &Path, out: &mut Vec<Listed>, problems: &mut Vec<String>) {
    let mut dirs = vec![dir.to_path_buf()];
    for sub in [
        "backups",
        "backup",
        "core/backup",
        "supervisor/backup",
        "supervisor/core/backup",
    ] {
        let p = dir.join(sub);
        if p.is_dir() {
            dirs.push(p);
        }
    }
    for d in dirs {
        let mut names: Vec<PathBuf> = match std::fs::read_dir(&d) {
            Ok(it) => it.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(e) => {
                problems.push(format!("{}: cannot list: {e}", d.display()));
                continue;
            }
        };
        names.retain(|p| p.extension().is_some_and(|e| e == "tar") && p.is_file());
        names.sort();
        for p in names {
            out.push(list_file(source, &p, "directory"));
        }
    }
}

fn list_image(
    source: &str,
    path: &Path,
    out: &mut Vec<Listed>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let src = crate::io::source::open(path)?;
    let rep = crate::haos::inspect(&src, crate::haos::Depth::Full)?;
    if rep.verdict == crate::haos::layout::Verdict::NotHaos {
        anyhow::bail!(
            "{source}: neither a backup, a directory nor a Home Assistant OS disk or image"
        );
    }
    match rep.data.and_then(|d| d.contents) {
        Some(c) => {
            for b in c.backups {
                out.push(Listed {
                    source: source.to_string(),
                    path: b.path,
                    found_in: "haos_image",
                    file_size: b.file_size,
                    backup: b.backup,
                    error: b.error,
                });
            }
            problems.extend(c.problems.into_iter().map(|p| format!("{source}: {p}")));
        }
        None => problems.push(format!("{source}: the data partition could not be read")),
    }
    Ok(())
}

fn list(a: &ListArgs, out: &Output) -> Result<Outcome> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for s in &a.sources {
        let name = s.display().to_string();
        let md = std::fs::metadata(s).with_context(|| format!("{name}: cannot open"))?;
        if md.is_dir() {
            list_dir(&name, s, &mut found, &mut problems);
        } else if md.is_file() && is_tar(s) {
            found.push(list_file(&name, s, "file"));
        } else {
            list_image(&name, s, &mut found, &mut problems)?;
        }
    }
    if out.json {
        out.json_doc(&ListDoc {
            schema_version: SCHEMA_VERSION,
            backups: &found,
            problems: &problems,
        });
    } else {
        out.text(&render_list(&found, &problems));
    }
    Ok(Outcome::Ok)
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// Text rendering of a listing.
pub fn render_list(found: &[Listed], problems: &[String]) -> String {
    let mut s = String::new();
    if found.is_empty() {
        s.push_str("No backups found.\n");
    }
    let mut t = Table::new(&[
        "PATH",
        "NAME",
        "SLUG",
        "DATE",
        "TYPE",
        "SIZE",
        "HA",
        "ENCRYPTION",
    ]);
    for l in found {
        match &l.backup {
            Some(b) => t.row(vec![
                l.path.clone(),
                opt(&b.name).to_string(),
                opt(&b.slug).to_string(),
                opt(&b.date).to_string(),
                opt(&b.kind).to_string(),
                human_bytes(l.file_size),
                opt(&b.homeassistant_version).to_string(),
                match (b.encryption, b.protected) {
                    (Some(v), _) => format!("SecureTar {v}"),
                    (None, true) => "protected".into(),
                    (None, false) => "none".into(),
                },
            ]),
            None => t.row(vec![
                l.path.clone(),
                format!("unreadable: {}", opt(&l.error)),
            ]),
        }
    }
    if !found.is_empty() {
        s.push_str(&t.render());
    }
    for l in found {
        if let Some(b) = &l.backup {
            let addons: Vec<String> = b
                .addons
                .iter()
                .map(|a| format!("{} {}", a.slug, a.version.as_deref().unwrap_or("?")))
                .collect();
            if !addons.is_empty() || !b.folders.is_empty() {
                let _ = writeln!(
                    s,
                    "  {}: add-ons: {}; folders: {}",
                    opt(&b.slug),
                    if addons.is_empty() {
                        "none".into()
                    } else {
                        addons.join(", ")
                    },
                    if b.folders.is_empty() {
                        "none".into()
                    } else {
                        b.folders.join(", ")
                    }
                );
            }
            for p in &b.problems {
                let _ = writeln!(s, "  {}: problem: {p}", opt(&b.slug));
            }
        }
    }
    for p in problems {
        let _ = writeln!(s, "Problem: {p}");
    }
    s
}

// ---------------------------------------------------------------- check

#[derive(Serialize)]
struct CheckDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a CheckReport,
}

fn run_check(a: &CheckArgs, out: &Output) -> Result<Outcome> {
    let mut limits = check::Limits::default();
    if let Some(m) = a.max_size {
        limits.max_bytes = m;
    }
    let rep = if let Some(slug) = &a.slug {
        let b = open_on_image(&a.backup, slug, out)?;
        let pw = get_password(&a.password, &a.backup, needs_password(&b))?;
        check::check(&b, pw, limits)
    } else {
        refuse_image_without_slug(&a.backup)?;
        // Open once to know whether a password is needed (only then ask for one).
        let pw = match Backup::open(&a.backup) {
            Ok(b) => get_password(&a.password, &a.backup, needs_password(&b))?,
            Err(_) => None,
        };
        check::check_file(&a.backup, pw, limits)?
    };
    if out.json {
        out.json_doc(&CheckDoc {
            schema_version: SCHEMA_VERSION,
            report: &rep,
        });
    } else {
        out.text(&render_check(&rep));
    }
    Ok(match rep.verdict {
        Verdict::Ok | Verdict::Warnings => Outcome::Ok,
        Verdict::Incomplete => Outcome::CheckIncomplete,
        Verdict::Failed => Outcome::CheckFailed,
    })
}

/// Text rendering of a check: one line per finding, then the verdict.
pub fn render_check(r: &CheckReport) -> String {
    let mut s = String::new();
    if let Some(b) = &r.backup {
        let _ = writeln!(
            s,
            "{}: '{}' ({}), {} backup of {}, {}",
            r.path,
            opt(&b.name),
            opt(&b.slug),
            opt(&b.kind),
            opt(&b.date),
            match b.encryption {
                Some(v) => format!("encrypted with SecureTar {v}"),
                None => "not encrypted".into(),
            }
        );
    } else {
        let _ = writeln!(s, "{}:", r.path);
    }
    for a in &r.archives {
        let state = if a.ok {
            format!(
                "ok, {} members, {} of files",
                a.entries.unwrap_or(0),
                human_bytes(a.file_bytes.unwrap_or(0))
            )
        } else {
            "not read to the end".to_string()
        };
        let _ = writeln!(
            s,
            "  {}  {}{}  {}",
            a.name,
            human_bytes(a.stored_bytes),
            a.encryption
                .map(|v| format!(", SecureTar {v}"))
                .unwrap_or_default(),
            state
        );
    }
    for f in &r.findings {
        let lvl = match f.level {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "note",
        };
        match &f.archive {
            Some(a) => {
                let _ = writeln!(s, "{lvl}: {a}: {}", f.message);
            }
            None => {
                let _ = writeln!(s, "{lvl}: {}", f.message);
            }
        }
    }
    let mut needs = Vec::new();
    if let Some(v) = &r.requires.supervisor {
        needs.push(format!("Supervisor ≥ {v}"));
    }
    if let Some(v) = &r.requires.core {
        needs.push(format!(
            "Home Assistant Core ≥ {v} (Container/Core installs)"
        ));
    }
    if !needs.is_empty() {
        let _ = writeln!(s, "Restoring needs: {}", needs.join(", "));
    }
    let _ = writeln!(
        s,
        "Verdict: {}",
        match r.verdict {
            Verdict::Ok => "OK: every part reads, Home Assistant should restore it",
            Verdict::Warnings => "OK with warnings: every part reads",
            Verdict::Incomplete => "INCOMPLETE: encrypted contents not checked (no password)",
            Verdict::Failed => "FAILED: this backup will not restore as it is",
        }
    );
    s
}

// ---------------------------------------------------------------- extract

#[derive(Serialize)]
struct ExtractDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a extract::ExtractReport,
}

fn run_extract(a: &ExtractArgs, out: &Output) -> Result<Outcome> {
    let b = open_backup(&a.backup, a.slug.as_deref(), out)?;
    let pw = get_password(&a.password, &a.backup, needs_password(&b))?;
    let opts = extract::Options {
        only: a.only.clone(),
        force: a.force,
        max_bytes: a.max_size,
        max_entries: None,
        same_owner: !a.no_same_owner && extract::default_same_owner(),
    };
    let rep = extract::extract(&b, &a.output, pw, &opts)?;
    if out.json {
        out.json_doc(&ExtractDoc {
            schema_version: SCHEMA_VERSION,
            report: &rep,
        });
    } else {
        let mut s = String::new();
        for x in &rep.archives {
            let _ = writeln!(
                s,
                "{} → {}: {} files ({}), {} directories, {} symlinks{}",
                x.archive,
                x.dir,
                x.files,
                human_bytes(x.bytes),
                x.dirs,
                x.symlinks,
                if x.hard_links > 0 {
                    format!(", {} hard links", x.hard_links)
                } else {
                    String::new()
                }
            );
            for k in &x.skipped {
                let _ = writeln!(s, "  skipped {k}");
            }
            for k in &x.owner_failures {
                let _ = writeln!(s, "  owner not set: {k}");
            }
        }
        let _ = writeln!(s, "backup.json → {}", rep.backup_json);
        out.text(&s);
    }
    Ok(Outcome::Ok)
}

// ---------------------------------------------------------------- decrypt

#[derive(Serialize)]
struct DecryptDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a decrypt::DecryptReport,
}

fn run_decrypt(a: &DecryptArgs, out: &Output) -> Result<Outcome> {
    let b = open_backup(&a.backup, a.slug.as_deref(), out)?;
    let pw = get_password(&a.password, &a.backup, needs_password(&b))?;
    let rep = decrypt::decrypt(&b, &a.output, pw, a.force)?;
    if out.json {
        out.json_doc(&DecryptDoc {
            schema_version: SCHEMA_VERSION,
            report: &rep,
        });
    } else {
        let mut s = String::new();
        if !rep.was_protected {
            let _ = writeln!(s, "{}: was not encrypted; wrote a plain copy", rep.path);
        }
        for x in &rep.archives {
            let _ = writeln!(
                s,
                "{}: {} → {}",
                x.name,
                x.encryption
                    .map(|v| format!("SecureTar {v}"))
                    .unwrap_or_else(|| "plain".into()),
                human_bytes(x.output_bytes)
            );
        }
        let _ = writeln!(s, "Wrote {} (unencrypted; keep it private)", rep.output);
        out.text(&s);
    }
    Ok(Outcome::Ok)
}

// ---------------------------------------------------------------- create

#[derive(Serialize)]
struct CreateDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a create::CreateReport,
}

/// The backup key Home Assistant keeps in `.storage/backup` on the card, if any.
fn key_on_card(c: &card::Card) -> Option<Password> {
    let b = card::read_small(
        &c.fs,
        b"/supervisor/homeassistant/.storage/backup",
        card::MAX_SMALL_FILE,
    )
    .ok()
    .flatten()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    let pw = v
        .pointer("/data/config/create_backup/password")?
        .as_str()
        .filter(|s| !s.is_empty())?;
    Some(Password::new(pw))
}

/// Ask a yes/no question on the terminal; false without one.
fn ask_yes(question: &str) -> bool {
    use std::io::{BufRead, Write as _};
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return false;
    };
    let mut w = &tty;
    if write!(w, "{question} [y/N] ")
        .and_then(|_| w.flush())
        .is_err()
    {
        return false;
    }
    let mut line = String::new();
    if std::io::BufReader::new(&tty).read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
}

fn has_tty() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// The encryption key for `create`: the card's (with consent), a file, a kit, the
/// environment, or typed twice on the terminal.
fn encryption_password(
    a: &CreateArgs,
    c: &card::Card,
    notes: &mut Vec<String>,
) -> Result<Password> {
    let on_card = key_on_card(c);
    if a.key_from_card {
        return on_card.with_context(|| {
            format!(
                "{}: no backup key on the card (.storage/backup has no \
                 create_backup.password); give the emergency kit with --emergency-kit FILE",
                c.what
            )
        });
    }
    let p = &a.password;
    let explicit = p.password_file.is_some()
        || p.emergency_kit.is_some()
        || std::env::var_os(password::PASSWORD_ENV).is_some();
    let pw = if explicit {
        password::obtain(
            &PasswordSource {
                prompt: false,
                ..p.source()
            },
            "the new backup",
        )?
    } else if !p.no_prompt && has_tty() {
        if on_card.is_some()
            && ask_yes(
                "The card holds the backup key Home Assistant used for its own backups \
                 (.storage/backup). Encrypt with that key?",
            )
        {
            return on_card.context("the key on the card went away");
        }
        let first = rpassword::prompt_password("Encryption key for the new backup: ")
            .context("reading the key from the terminal")?;
        let second = rpassword::prompt_password("The same key again: ")
            .context("reading the key from the terminal")?;
        if first != second {
            anyhow::bail!("the two keys differ; nothing was written");
        }
        Some(Password::new(first))
    } else {
        None
    };
    let pw = pw.with_context(|| {
        format!(
            "--encrypt needs a key: --emergency-kit FILE, --password-file FILE, \
             {} or a terminal to type it on; or --key-from-card to use the one on the card",
            password::PASSWORD_ENV
        )
    })?;
    if pw.is_empty() {
        anyhow::bail!("the encryption key is empty");
    }
    if let Some(k) = on_card
        && k.as_bytes() != pw.as_bytes()
    {
        notes.push(
            "the key given is not the one Home Assistant on this card used for its own \
             backups: restoring this backup needs the key given"
                .into(),
        );
    }
    Ok(pw)
}

fn run_create(a: &CreateArgs, out: &Output) -> Result<Outcome> {
    let p = &a.password;
    if !a.encrypt && (p.password_file.is_some() || p.emergency_kit.is_some()) {
        anyhow::bail!("a key was given without --encrypt: add --encrypt to encrypt the backup");
    }
    let c = card::open(&a.source)?;
    let show = !out.quiet && !out.json;
    if show && !c.in_use.is_empty() {
        eprintln!(
            "lifeboat: warning: {} is in use ({}): files may change while they are read",
            c.what,
            c.in_use.join("; ")
        );
    }
    let mut notes = Vec::new();
    let enc = if a.encrypt {
        let pw = encryption_password(a, &c, &mut notes)?;
        let version = if a.securetar == 3 {
            Version::V3
        } else {
            Version::V2
        };
        let key = EncryptionKey::new(&pw, version)
            .map_err(|e| anyhow::anyhow!("deriving the encryption key: {e}"))?;
        Some(create::Encryption { key, password: pw })
    } else {
        None
    };
    let opts = create::Options {
        output: a.output.clone(),
        force: a.force,
        name: a.name.clone(),
        partial: a.partial.clone(),
        exclude: a.exclude.clone(),
        exclude_database: a.exclude_database,
        check_database: !a.no_database_check,
        verify: !a.no_verify,
        date: None,
    };
    let mut progress = |m: &str| {
        if show {
            eprintln!("lifeboat: {m}");
        }
    };
    let mut rep = create::create(&c, &opts, enc.as_ref(), &mut progress)?;
    rep.notes.extend(notes);
    if out.json {
        out.json_doc(&CreateDoc {
            schema_version: SCHEMA_VERSION,
            report: &rep,
        });
    } else {
        out.text(&render_create(&rep));
    }
    Ok(match rep.verification.as_ref().map(|v| v.verdict) {
        Some(Verdict::Failed) => Outcome::CheckFailed,
        _ => Outcome::Ok,
    })
}

/// Text rendering of what `create` did.
pub fn render_create(r: &create::CreateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Wrote {} ({}): {} backup '{}' (slug {}), {}",
        r.output,
        human_bytes(r.output_bytes),
        r.kind,
        r.name,
        r.slug,
        match r.encryption {
            Some(v) => format!("encrypted with SecureTar {v}"),
            None => "not encrypted".into(),
        }
    );
    let _ = writeln!(
        s,
        "From {}{}: Home Assistant Core {}, Supervisor {}",
        r.source,
        r.partition
            .map(|n| format!(" (data partition p{n})"))
            .unwrap_or_default(),
        opt(&r.homeassistant_version),
        opt(&r.supervisor_version)
    );
    let mut t = Table::new(&["ARCHIVE", "FILES", "DIRS", "SYMLINKS", "DATA", "STORED"]);
    for x in &r.archives {
        t.row(vec![
            x.name.clone(),
            x.files.to_string(),
            x.dirs.to_string(),
            x.symlinks.to_string(),
            human_bytes(x.file_bytes),
            human_bytes(x.stored_bytes),
        ]);
    }
    s.push_str(&t.render());
    if let Some(d) = &r.database {
        let size = human_bytes(d.bytes)
            + &d.wal_bytes
                .map(|w| format!(" + {} -wal", human_bytes(w)))
                .unwrap_or_default();
        let verdict = match &d.check {
            Some(c) => match c.integrity {
                crate::backup::sqlite::Integrity::Ok => "SQLite integrity check: ok".to_string(),
                crate::backup::sqlite::Integrity::Damaged => format!(
                    "DAMAGED: {}",
                    c.messages.first().map(String::as_str).unwrap_or("?")
                ),
                crate::backup::sqlite::Integrity::Unreadable => format!(
                    "does not open in SQLite: {}",
                    c.messages.first().map(String::as_str).unwrap_or("?")
                ),
            },
            None => "not checked".into(),
        };
        let _ = writeln!(
            s,
            "Recorder database {} ({size}): {verdict}; {}",
            d.path,
            if d.included { "included" } else { "left out" }
        );
    }
    if !r.excluded.is_empty() {
        let names: Vec<&str> = r.excluded.iter().map(|e| e.path.as_str()).take(8).collect();
        let _ = writeln!(
            s,
            "Left out by Home Assistant's own backup rules ({}): {}{}",
            r.excluded.len(),
            names.join(", "),
            if r.excluded.len() > 8 {
                ", … (all in --json)"
            } else {
                ""
            }
        );
    }
    if !r.left_out.is_empty() {
        let _ = writeln!(s, "Not in this backup:");
        for l in &r.left_out {
            let _ = writeln!(s, "  - {}: {}", l.item, l.reason);
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "Note: {n}");
    }
    if let Some(v) = &r.verification {
        for f in &v.findings {
            let _ = writeln!(s, "Check: {f}");
        }
        let _ = writeln!(
            s,
            "Read back: {}",
            match v.verdict {
                Verdict::Ok => "OK, every archive reads to the end",
                Verdict::Warnings => "OK with warnings",
                Verdict::Incomplete => "incomplete (encrypted, not checked)",
                Verdict::Failed => "FAILED: do not rely on this backup",
            }
        );
    }
    let _ = writeln!(
        s,
        "Restore it on a fresh Home Assistant OS with \"Restore from backup\" at onboarding{}. \
         `lifeboat backup report {}` lists what to redo afterwards.",
        if r.protected {
            ", giving the same key"
        } else {
            ""
        },
        r.output
    );
    s
}

// ---------------------------------------------------------------- rescue

#[derive(Serialize)]
struct RescueDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a rescue::RescueReport,
}

fn run_rescue(a: &RescueArgs, out: &Output) -> Result<Outcome> {
    let c = card::open(&a.source)?;
    let show = !out.quiet && !out.json;
    let encrypted = c
        .contents
        .backups
        .iter()
        .any(|b| b.backup.as_ref().is_some_and(|s| s.protected));
    let pw = if encrypted && !a.no_check {
        password::obtain(&a.password.source(), "the encrypted backups")?
    } else {
        None
    };
    let opts = rescue::Options {
        out_dir: a.output.clone(),
        force: a.force,
        check: !a.no_check,
    };
    let mut progress = |m: &str| {
        if show {
            eprintln!("lifeboat: {m}");
        }
    };
    let rep = rescue::rescue(&c, &opts, pw, &mut progress)?;
    if out.json {
        out.json_doc(&RescueDoc {
            schema_version: SCHEMA_VERSION,
            report: &rep,
        });
    } else {
        out.text(&render_rescue(&rep));
    }
    use rescue::Status;
    Ok(
        if rep
            .backups
            .iter()
            .any(|b| matches!(b.status, Status::Failed | Status::NotCopied))
        {
            Outcome::CheckFailed
        } else if rep.backups.iter().any(|b| b.status == Status::Unverified) {
            Outcome::CheckIncomplete
        } else {
            Outcome::Ok
        },
    )
}

/// Text rendering of a rescue.
pub fn render_rescue(r: &rescue::RescueReport) -> String {
    use rescue::Status;
    let mut s = String::new();
    if r.backups.is_empty() {
        let _ = writeln!(
            s,
            "{}: no backups on the data partition ({}).",
            r.source,
            rescue::BACKUP_DIRS.join(", ")
        );
    } else {
        let _ = writeln!(
            s,
            "{} backup(s) from {} into {}, newest first:",
            r.backups.len(),
            r.source,
            r.output_dir
        );
        let mut t = Table::new(&[
            "",
            "DATE",
            "NAME",
            "TYPE",
            "SIZE",
            "ENCRYPTION",
            "STATUS",
            "COPY",
        ]);
        for b in &r.backups {
            let m = b.backup.as_ref();
            let status = match b.status {
                Status::Ok => "ok",
                Status::Warnings => "ok (warnings)",
                Status::Unverified => "not verified (encrypted)",
                Status::Failed => "FAILED check",
                Status::NotChecked => "copied, not checked",
                Status::NotCopied => "NOT COPIED",
            };
            t.row(vec![
                if r.best.as_deref() == Some(b.path.as_str()) {
                    "*".into()
                } else {
                    String::new()
                },
                m.and_then(|m| m.date.clone()).unwrap_or_else(|| "-".into()),
                m.and_then(|m| m.name.clone()).unwrap_or_else(|| "-".into()),
                m.and_then(|m| m.kind.clone()).unwrap_or_else(|| "-".into()),
                human_bytes(b.file_size),
                match m.map(|m| (m.encryption, m.protected)) {
                    Some((Some(v), _)) => format!("SecureTar {v}"),
                    Some((None, true)) => "protected".into(),
                    _ => "none".into(),
                },
                status.into(),
                b.output.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        s.push_str(&t.render());
        for b in &r.backups {
            if let Some(e) = &b.error {
                let _ = writeln!(s, "  {}: {e}", b.path);
            }
            for f in &b.findings {
                let _ = writeln!(s, "  {}: {f}", b.path);
            }
        }
        match (&r.best, &r.best_reason) {
            (Some(best), Some(why)) => {
                let out = r
                    .backups
                    .iter()
                    .find(|b| &b.path == best)
                    .and_then(|b| b.output.clone())
                    .unwrap_or_else(|| best.clone());
                let _ = writeln!(s, "Best to restore (*): {out}: {why}.");
            }
            _ => {
                let _ = writeln!(
                    s,
                    "None of them is fit to restore as it is; `lifeboat backup create` makes a \
                     new backup from the card."
                );
            }
        }
    }
    for p in &r.problems {
        let _ = writeln!(s, "Problem: {p}");
    }
    s
}

// ---------------------------------------------------------------- report

#[derive(Serialize)]
struct ReportDoc<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a report::Report,
}

fn run_report(a: &ReportArgs, out: &Output) -> Result<Outcome> {
    let md = std::fs::metadata(&a.source)
        .with_context(|| format!("{}: cannot open", a.source.display()))?;
    let what = a.source.display().to_string();
    let rep = if md.is_file() && is_tar(&a.source) {
        let b = Backup::open(&a.source)?;
        let pw = get_password(&a.password, &a.source, needs_password(&b))?;
        report::report(&what, "backup", report::from_backup(&b, pw)?)
    } else {
        let c = card::open(&a.source)?;
        report::report(&what, "disk", report::from_card(&c))
    };
    if out.json {
        out.json_doc(&ReportDoc {
            schema_version: SCHEMA_VERSION,
            report: &rep,
        });
    } else if a.markdown {
        if !out.quiet {
            use std::io::Write as _;
            let _ = std::io::stdout()
                .lock()
                .write_all(report::markdown(&rep).as_bytes());
        }
    } else {
        out.text(&render_report(&rep));
    }
    Ok(Outcome::Ok)
}

/// Text rendering of a migration report: a table, then what to do for each item.
pub fn render_report(r: &report::Report) -> String {
    let mut s = String::new();
    if r.items.is_empty() {
        let _ = writeln!(
            s,
            "{}: nothing found that a restore would not bring back by itself.",
            r.source
        );
    } else {
        let _ = writeln!(
            s,
            "{}: {} thing(s) a restore will not bring back by itself:",
            r.source,
            r.items.len()
        );
        let mut t = Table::new(&["#", "WHAT", "ITEM", "DETAIL"]);
        for (n, i) in r.items.iter().enumerate() {
            t.row(vec![
                (n + 1).to_string(),
                i.category.label().into(),
                if i.title != i.subject {
                    format!("{} ({})", i.title, i.subject)
                } else {
                    i.title.clone()
                } + if i.disabled { ", disabled" } else { "" },
                i.detail.clone(),
            ]);
        }
        s.push_str(&t.render());
        let _ = writeln!(s, "\nWhat to do:");
        for (n, i) in r.items.iter().enumerate() {
            let _ = writeln!(s, "{:>3}. {}", n + 1, i.action);
        }
        let _ = writeln!(
            s,
            "\n`--markdown` prints this as a checklist to tick off; `--json` for programs."
        );
    }
    for p in &r.problems {
        let _ = writeln!(s, "Not read: {p}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("3k"), Ok(3 << 10));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("abc").is_err());
    }
}

//! `lifeboat backup list|check|extract|decrypt`: Home Assistant backups found on an HAOS disk
//! or image, in a directory or given as files; the offline restore drill; safe extraction; an
//! unencrypted copy. The clap types live here; the work is in [`crate::backup`].

use crate::backup::archive::Backup;
use crate::backup::check::{self, CheckReport, Verdict};
use crate::backup::meta::BackupSummary;
use crate::backup::password::{self, Password, PasswordSource};
use crate::backup::validate::Level;
use crate::backup::{decrypt, extract};
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
    /// The backup .tar file
    pub backup: PathBuf,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Stop reading an inner archive past this many uncompressed bytes (e.g. 20G)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
}

/// Arguments of `backup extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The backup .tar file
    pub backup: PathBuf,
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
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Arguments of `backup decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The backup .tar file
    pub backup: PathBuf,
    /// The unencrypted backup to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
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
    }
}

fn get_password(p: &PasswordArgs, what: &Path, needed: bool) -> Result<Option<Password>> {
    if !needed {
        return Ok(None);
    }
    password::obtain(&p.source(), &what.display().to_string())
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
    // Open once to know whether a password is needed (only then ask for one).
    let pw = match Backup::open(&a.backup) {
        Ok(b) => get_password(&a.password, &a.backup, needs_password(&b))?,
        Err(_) => None,
    };
    let rep = check::check_file(&a.backup, pw, limits)?;
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
    let b = Backup::open(&a.backup)?;
    let pw = get_password(&a.password, &a.backup, needs_password(&b))?;
    let opts = extract::Options {
        only: a.only.clone(),
        force: a.force,
        max_bytes: a.max_size,
        max_entries: None,
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
    let b = Backup::open(&a.backup)?;
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

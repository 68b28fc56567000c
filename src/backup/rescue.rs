//! `backup rescue`: copy every backup a card or image holds (`/supervisor/backup`,
//! `/supervisor/core/backup`) off its data partition, newest first, check each copy with the
//! `backup check` drill, and say which one is the best to restore: the newest that passes
//! and holds Home Assistant itself.
//!
//! Each copy goes to a temporary name in the output directory (0600: backups hold secrets)
//! and is renamed into place when complete; an earlier copy is only replaced with `force`.
//! A backup that cannot be read to its end (a bad sector) is reported and not kept, and the
//! others are still copied. Checking reads the copy, not the card, so the card is read once.

use super::card::{self, Card, Ext4Reader};
use super::check::{self, PasswordState, Verdict};
use super::meta::BackupSummary;
use super::password::Password;
use super::validate::Level;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where Supervisor and Home Assistant Core keep backups on the data partition.
pub const BACKUP_DIRS: [&str; 2] = ["/supervisor/backup", "/supervisor/core/backup"];

/// How one backup came off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Copied, and the check passed.
    Ok,
    /// Copied, the check passed with warnings.
    Warnings,
    /// Copied, but its encrypted contents were not checked (no password, or not this one).
    Unverified,
    /// Copied, and the check found damage or something Home Assistant refuses.
    Failed,
    /// Copied, not checked (asked not to).
    NotChecked,
    /// Could not be copied (unreadable on the card, or already in the output directory).
    NotCopied,
}

/// One backup found on the card.
#[derive(Debug, Clone, Serialize)]
pub struct Rescued {
    /// Path on the data partition.
    pub path: String,
    pub file_size: u64,
    /// Where the copy is, when there is one.
    pub output: Option<String>,
    pub status: Status,
    /// backup.json, as read from the card (or the copy).
    pub backup: Option<BackupSummary>,
    /// The check's verdict and errors/warnings, when checked.
    pub verdict: Option<Verdict>,
    pub findings: Vec<String>,
    /// Why it was not copied, or the error reading it.
    pub error: Option<String>,
}

/// The whole rescue.
#[derive(Debug, Clone, Serialize)]
pub struct RescueReport {
    pub source: String,
    pub output_dir: String,
    /// Newest first.
    pub backups: Vec<Rescued>,
    /// Path (on the card) of the best one to restore, if any is fit.
    pub best: Option<String>,
    /// Why that one, in words.
    pub best_reason: Option<String>,
    pub problems: Vec<String>,
}

impl RescueReport {
    /// Every backup copied and passing its check.
    pub fn all_good(&self) -> bool {
        self.backups
            .iter()
            .all(|b| matches!(b.status, Status::Ok | Status::Warnings))
    }
}

/// Options of a rescue.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub out_dir: PathBuf,
    pub force: bool,
    pub check: bool,
}

/// The `.tar` files in the backup directories of the card.
fn found(c: &Card, problems: &mut Vec<String>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for dir in BACKUP_DIRS {
        if !card::is_dir(&c.fs, dir.as_bytes()) {
            continue;
        }
        match card::list_dir(&c.fs, dir.as_bytes()) {
            Ok(items) => {
                for it in items {
                    let name = String::from_utf8_lossy(&it.name).into_owned();
                    if !name.ends_with(".tar") || !it.kind.is_regular_file() {
                        continue;
                    }
                    let path = format!("{dir}/{name}");
                    let size = card::lstat(&c.fs, path.as_bytes())
                        .ok()
                        .flatten()
                        .map_or(0, |m| m.len());
                    out.push((path, size));
                }
            }
            Err(e) => problems.push(format!("{}: cannot list: {e}", c.name(dir.as_bytes()))),
        }
    }
    out
}

/// The instant a backup was made, for sorting (unknown dates sort last).
fn when(b: &Option<BackupSummary>) -> Option<i64> {
    b.as_ref()
        .and_then(|s| s.date.as_deref())
        .and_then(super::isotime::parse_micros)
}

/// Copy `path` off the card to `dest` through a temporary name.
fn copy_out(c: &Card, path: &str, dest: &Path, force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if dest.symlink_metadata().is_ok() && !force {
        anyhow::bail!("{}: exists; add --force to replace it", dest.display());
    }
    let tmp = super::extract::tmp_name(dest, "tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("{}: cannot create", tmp.display()))?;
    let result = (|| -> Result<()> {
        let mut r = Ext4Reader::open(&c.fs, path.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", c.name(path.as_bytes())))?;
        let mut w = io::BufWriter::with_capacity(1 << 20, &mut f);
        io::copy(&mut r, &mut w)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", c.name(path.as_bytes())))?;
        w.flush()
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        drop(w);
        f.sync_all()
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        super::extract::replace(&tmp, dest, force)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Judge a check: the status, and its errors and warnings in words.
fn judge(r: &check::CheckReport) -> (Status, Vec<String>) {
    let findings: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.level != Level::Info)
        .map(|f| match &f.archive {
            Some(a) => format!("{a}: {}", f.message),
            None => f.message.clone(),
        })
        .collect();
    let status = match r.verdict {
        Verdict::Ok => Status::Ok,
        Verdict::Warnings => Status::Warnings,
        Verdict::Incomplete => Status::Unverified,
        // A wrong password is not damage: another key may open it.
        Verdict::Failed
            if r.password == PasswordState::Wrong
                && r.findings
                    .iter()
                    .filter(|f| f.level == Level::Error)
                    .all(|f| f.message.contains("password")) =>
        {
            Status::Unverified
        }
        Verdict::Failed => Status::Failed,
    };
    (status, findings)
}

/// Pick the best backup to restore (index into `backups`, newest first) and say why.
pub fn best(backups: &[Rescued]) -> Option<(usize, String)> {
    let has_ha = |b: &Rescued| {
        b.backup
            .as_ref()
            .is_some_and(|s| s.homeassistant_version.is_some())
    };
    let passed = |b: &Rescued| matches!(b.status, Status::Ok | Status::Warnings);
    if let Some(i) = backups.iter().position(|b| passed(b) && has_ha(b)) {
        let newer = backups[..i].len();
        return Some((
            i,
            if newer == 0 {
                "the newest backup, it passed its check and holds Home Assistant".into()
            } else {
                format!(
                    "the newest backup that passed its check and holds Home Assistant ({newer} \
                     newer one(s) did not)"
                )
            },
        ));
    }
    if let Some(i) = backups.iter().position(passed) {
        return Some((
            i,
            "it passed its check, but it holds no Home Assistant config (add-ons or folders \
             only)"
                .into(),
        ));
    }
    if let Some(i) = backups
        .iter()
        .position(|b| b.status == Status::Unverified && has_ha(b))
    {
        return Some((
            i,
            "the newest one with Home Assistant; its encrypted contents were NOT checked: run \
             the rescue again with the backup's key"
                .into(),
        ));
    }
    backups
        .iter()
        .position(|b| b.status == Status::NotChecked && has_ha(b))
        .map(|i| (i, "the newest one with Home Assistant (not checked)".into()))
}

/// Copy every backup off the card into `opts.out_dir`, newest first, checking each copy.
pub fn rescue(
    c: &Card,
    opts: &Options,
    password: Option<Password>,
    progress: &mut dyn FnMut(&str),
) -> Result<RescueReport> {
    let mut problems = c.contents.problems.clone();
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("{}: cannot create", opts.out_dir.display()))?;
    let mut list: Vec<Rescued> = found(c, &mut problems)
        .into_iter()
        .map(|(path, file_size)| {
            let (backup, error) = match c.contents.backups.iter().find(|b| b.path == path) {
                Some(fb) => (fb.backup.clone(), fb.error.clone()),
                None => (None, None),
            };
            Rescued {
                path,
                file_size,
                output: None,
                status: Status::NotCopied,
                backup,
                verdict: None,
                findings: Vec::new(),
                error,
            }
        })
        .collect();
    // Newest first; unknown dates last, then by path.
    list.sort_by(|a, b| {
        when(&b.backup)
            .cmp(&when(&a.backup))
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut names = BTreeSet::new();
    for b in &mut list {
        let base = b
            .path
            .rsplit('/')
            .next()
            .unwrap_or("backup.tar")
            .to_string();
        let mut name = base.clone();
        if !names.insert(name.clone()) {
            // The same file name in both directories.
            name = format!("core_backup-{base}");
            names.insert(name.clone());
        }
        let dest = opts.out_dir.join(&name);
        progress(&format!(
            "copying {} ({})",
            b.path,
            crate::report::human_bytes(b.file_size)
        ));
        match copy_out(c, &b.path, &dest, opts.force) {
            Ok(()) => {
                b.output = Some(dest.display().to_string());
                b.error = None;
            }
            Err(e) => {
                b.status = Status::NotCopied;
                b.error = Some(format!("{e:#}"));
                continue;
            }
        }
        if !opts.check {
            b.status = Status::NotChecked;
            continue;
        }
        progress(&format!("checking {}", dest.display()));
        match check::check_file(&dest, password.clone(), check::Limits::default()) {
            Ok(r) => {
                let (status, findings) = judge(&r);
                b.status = status;
                b.findings = findings;
                b.verdict = Some(r.verdict);
                if b.backup.is_none() {
                    b.backup = r.backup.clone();
                }
            }
            Err(e) => {
                b.status = Status::Failed;
                b.findings = vec![format!("{e:#}")];
            }
        }
    }
    let pick = best(&list);
    Ok(RescueReport {
        source: c.what.clone(),
        output_dir: opts.out_dir.display().to_string(),
        best: pick.as_ref().map(|(i, _)| list[*i].path.clone()),
        best_reason: pick.map(|(_, r)| r),
        backups: list,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(path: &str, status: Status, ha: bool) -> Rescued {
        let mut s = super::super::meta::summarise(
            br#"{"slug":"x","name":"n","date":"2026-01-01","type":"full"}"#,
        )
        .unwrap();
        if ha {
            s.homeassistant_version = Some("2026.8.3".into());
        }
        Rescued {
            path: path.into(),
            file_size: 1,
            output: None,
            status,
            backup: Some(s),
            verdict: None,
            findings: vec![],
            error: None,
        }
    }

    #[test]
    fn best_is_newest_passing_with_home_assistant() {
        let l = vec![
            r("a", Status::Failed, true),
            r("b", Status::Ok, false),
            r("c", Status::Warnings, true),
            r("d", Status::Ok, true),
        ];
        let (i, why) = best(&l).unwrap();
        assert_eq!(i, 2);
        assert!(why.contains("2 newer"), "{why}");
        let l = vec![
            r("a", Status::Unverified, true),
            r("b", Status::Failed, true),
        ];
        let (i, why) = best(&l).unwrap();
        assert_eq!(i, 0);
        assert!(why.contains("NOT checked"), "{why}");
        assert!(
            best(&[
                r("a", Status::Failed, true),
                r("b", Status::NotCopied, true)
            ])
            .is_none()
        );
        let l = vec![r("a", Status::NotCopied, true), r("b", Status::Ok, false)];
        assert_eq!(best(&l).unwrap().0, 1);
    }

    #[test]
    fn newest_first_across_offsets() {
        let a = super::super::meta::summarise(
            br#"{"slug":"a","name":"a","date":"2026-08-13T04:51:03.918274+02:00","type":"partial"}"#,
        )
        .ok();
        let b = super::super::meta::summarise(
            br#"{"slug":"b","name":"b","date":"2026-08-13T03:00:00+00:00","type":"partial"}"#,
        )
        .ok();
        assert!(when(&b) > when(&a), "03:00Z is after 02:51Z");
        assert!(when(&None).is_none());
    }
}

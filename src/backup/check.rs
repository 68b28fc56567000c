//! `backup check`: the restore drill, offline. The outer tar, `./backup.json` by Home
//! Assistant's rules, the member set it promises, the password (checked up front), and every
//! inner archive decrypted, decompressed and read to its last byte; unsafe names, hard links
//! and symlink tricks reported. The result is a list of [`Finding`]s and a [`Verdict`].

use super::archive::{self, Backup, MetaName};
use super::inner::{self, EntryKind, Unsafe};
use super::password::Password;
use super::securetar::{self, KeyRing, Kind, SecureTarError, Version};
use super::tarscan;
use super::validate::{self, Finding, Level, Requires};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;

/// Limits of a check (decompression bombs cost time even when nothing is written).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Uncompressed bytes per inner archive.
    pub max_bytes: u64,
    /// Members per inner archive.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 40,
            max_entries: 10_000_000,
        }
    }
}

/// The overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything read and nothing Home Assistant would object to.
    Ok,
    /// Restorable, with warnings.
    Warnings,
    /// Encrypted contents could not be checked: no password.
    Incomplete,
    /// Home Assistant would refuse or fail to restore it, or the data is damaged, or the
    /// password is wrong.
    Failed,
}

/// Whether the password was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordState {
    /// The backup is not encrypted.
    NotNeeded,
    /// Encrypted, and no password was given.
    Missing,
    /// Right (v3: key check; v1/v2: the first block decrypts to gzip/tar).
    Correct,
    Wrong,
}

/// What was found in one inner archive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveReport {
    /// Member name without `./`, e.g. `homeassistant.tar.gz`.
    pub name: String,
    /// SecureTar version (1, 2, 3) or null.
    pub encryption: Option<Version>,
    /// `gzip`, `tar`, `secure_tar` or `unknown` as the first bytes say.
    pub stored_as: Kind,
    pub gzip: Option<bool>,
    /// Bytes in the outer tar.
    pub stored_bytes: u64,
    /// Decrypted bytes (the `.tar.gz`), when read.
    pub plaintext_bytes: Option<u64>,
    /// Uncompressed tar bytes, when read.
    pub tar_bytes: Option<u64>,
    pub entries: Option<u64>,
    /// Regular-file bytes inside.
    pub file_bytes: Option<u64>,
    /// Read to the end without an error.
    pub ok: bool,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub path: String,
    pub verdict: Verdict,
    pub password: PasswordState,
    pub findings: Vec<Finding>,
    pub archives: Vec<ArchiveReport>,
    pub requires: Requires,
    pub backup: Option<super::meta::BackupSummary>,
}

impl CheckReport {
    fn add(&mut self, level: Level, archive: Option<&str>, msg: impl Into<String>) {
        self.findings.push(Finding::new(level, archive, msg));
    }
}

/// Check the backup at `path`. Errors only when the file cannot be opened at all; everything
/// else — even an unreadable tar — is a finding.
pub fn check_file(
    path: &Path,
    password: Option<Password>,
    limits: Limits,
) -> anyhow::Result<CheckReport> {
    let what = path.display().to_string();
    if let Err(e) = std::fs::File::open(path) {
        anyhow::bail!("{what}: cannot open: {e}");
    }
    match Backup::open(path) {
        Ok(b) => Ok(check(&b, password, limits)),
        Err(e) => {
            let mut r = CheckReport {
                path: what,
                verdict: Verdict::Failed,
                password: PasswordState::NotNeeded,
                findings: Vec::new(),
                archives: Vec::new(),
                requires: Requires::default(),
                backup: None,
            };
            // The error already names the file; keep only the reason.
            let msg = format!("{e:#}");
            let msg = msg
                .strip_prefix(&format!("{}: ", r.path))
                .unwrap_or(&msg)
                .to_string();
            r.add(Level::Error, None, msg);
            Ok(r)
        }
    }
}

/// Check an opened backup.
pub fn check(b: &Backup, password: Option<Password>, limits: Limits) -> CheckReport {
    let mut r = CheckReport {
        path: b.what.clone(),
        verdict: Verdict::Ok,
        password: PasswordState::NotNeeded,
        findings: Vec::new(),
        archives: Vec::new(),
        requires: Requires::default(),
        backup: b.summary(),
    };
    outer_and_meta(b, &mut r);
    let archives = b.inner_archives();
    let protected = b.protected();

    // How each inner archive is stored.
    let mut layers = Vec::new();
    for m in &archives {
        let name = tarscan::normalise(&m.name).to_string();
        match inner::layers_of(b.reader(), m, protected) {
            Ok((kind, enc)) => layers.push((name, kind, enc)),
            Err(e) => {
                r.add(Level::Error, Some(&name), format!("cannot read: {e}"));
                layers.push((name, Kind::Unknown, None));
            }
        }
    }
    let versions: BTreeSet<Version> = layers.iter().filter_map(|(_, _, v)| *v).collect();
    let encryption = versions.iter().next_back().copied();
    for (name, kind, enc) in &layers {
        match (protected, kind, enc) {
            (false, Kind::SecureTar(v), _) => r.add(
                Level::Error,
                Some(name),
                format!("is encrypted (SecureTar {v}) but backup.json says the backup is not protected: Home Assistant will not decrypt it"),
            ),
            (false, Kind::Unknown, _) => r.add(
                Level::Error,
                Some(name),
                "is neither gzip nor tar (damaged, or encrypted while backup.json says it is not protected)",
            ),
            (true, Kind::Gzip | Kind::Tar, _) => r.add(
                Level::Error,
                Some(name),
                "is not encrypted but backup.json says the backup is protected: Home Assistant will try to decrypt it and fail",
            ),
            _ => {}
        }
    }
    if versions.len() > 1 {
        let list: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        r.add(
            Level::Error,
            None,
            format!("mixes SecureTar versions ({}): Home Assistant Core's key context refuses to switch", list.join(", ")),
        );
    }
    if let Some(v) = &b.meta {
        r.requires = validate::requires(v, encryption);
        if encryption == Some(Version::V1) {
            r.add(
                Level::Info,
                None,
                "SecureTar v1 (securetar ≤ 2024.11, with its padding bug): every Home Assistant version reads it",
            );
        }
    }

    // The password, up front.
    let mut keys = None;
    if encryption.is_some() {
        match password {
            None => {
                r.password = PasswordState::Missing;
                r.add(
                    Level::Warning,
                    None,
                    format!(
                        "the backup is encrypted and no password was given: the contents of {} archive(s) were not checked",
                        layers.iter().filter(|l| l.2.is_some()).count()
                    ),
                );
            }
            Some(pw) => {
                let mut ring = KeyRing::new(pw);
                let first = archives.iter().zip(&layers).find(|(_, l)| l.2.is_some());
                if let Some((m, (name, _, _))) = first {
                    match password_check(b, m, &mut ring) {
                        Ok(()) => {
                            r.password = PasswordState::Correct;
                            keys = Some(ring);
                        }
                        Err(e) => {
                            r.password = PasswordState::Wrong;
                            r.add(Level::Error, Some(name), e);
                        }
                    }
                }
            }
        }
    }

    // Every inner archive to its end.
    let mut root_salts = BTreeSet::new();
    for (m, (name, kind, enc)) in archives.iter().zip(&layers) {
        let mut a = ArchiveReport {
            name: name.clone(),
            encryption: *enc,
            stored_as: *kind,
            gzip: None,
            stored_bytes: m.size,
            plaintext_bytes: None,
            tar_bytes: None,
            entries: None,
            file_bytes: None,
            ok: false,
        };
        let readable = enc.is_none() && matches!(kind, Kind::Gzip | Kind::Tar)
            || enc.is_some() && keys.is_some();
        if readable {
            read_archive(
                b,
                m,
                protected,
                keys.as_mut(),
                limits,
                &mut a,
                &mut r,
                &mut root_salts,
            );
        }
        r.archives.push(a);
    }
    if root_salts.len() > 1 {
        r.add(
            Level::Error,
            None,
            "the SecureTar v3 archives use different root salts: Home Assistant Core derives the key once per backup and fails on the others",
        );
    }
    r.verdict = if r.findings.iter().any(|f| f.level == Level::Error) {
        Verdict::Failed
    } else if r.password == PasswordState::Missing {
        Verdict::Incomplete
    } else if r.findings.iter().any(|f| f.level == Level::Warning) {
        Verdict::Warnings
    } else {
        Verdict::Ok
    };
    r
}

fn outer_and_meta(b: &Backup, r: &mut CheckReport) {
    match &b.meta_member {
        None => r.add(
            Level::Error,
            None,
            "no ./backup.json inside: not a Home Assistant backup (Home Assistant reports \"filename './backup.json' not found\")",
        ),
        Some((_, MetaName::Exact)) => {}
        Some((_, MetaName::LegacySnapshot)) => r.add(
            Level::Warning,
            None,
            "metadata is the legacy ./snapshot.json: Supervisor reads it, Home Assistant Core does not",
        ),
        Some((m, MetaName::Misspelled(n))) => {
            let _ = m;
            r.add(
                Level::Error,
                None,
                format!("metadata member is named '{n}': Home Assistant looks for exactly './backup.json' and will not find it (repacked by another tool?)"),
            )
        }
    }
    if let Some(e) = &b.meta_error {
        r.add(Level::Error, Some("backup.json"), e.clone());
    }
    let mut seen = BTreeMap::new();
    for m in &b.members {
        let n = tarscan::normalise(&m.name);
        if n.is_empty() {
            continue;
        }
        *seen.entry(n.to_string()).or_insert(0) += 1;
        match m.kind {
            tarscan::MemberKind::File => {
                if n.contains('/') {
                    r.add(
                        Level::Warning,
                        None,
                        format!("unexpected member '{}' in a subdirectory", m.name),
                    );
                } else if !archive::is_inner_archive(m)
                    && !matches!(n, "backup.json" | "snapshot.json")
                {
                    r.add(
                        Level::Warning,
                        None,
                        format!("unexpected member '{}' (not an archive)", m.name),
                    );
                }
            }
            tarscan::MemberKind::Dir => {}
            _ => r.add(
                Level::Warning,
                None,
                format!("unexpected member '{}' (not a regular file)", m.name),
            ),
        }
    }
    for (n, c) in seen {
        if c > 1 {
            r.add(
                Level::Warning,
                None,
                format!("'{n}' is stored {c} times; Home Assistant uses the last copy"),
            );
        }
    }
    let Some(v) = &b.meta else { return };
    r.findings.extend(validate::check_json(v));
    let present: BTreeSet<String> = b
        .inner_archives()
        .iter()
        .map(|m| tarscan::normalise(&m.name).to_string())
        .collect();
    let expected = validate::expected_members(v);
    for e in &expected {
        if !present.contains(e) {
            r.add(
                Level::Error,
                Some(e),
                "is listed in backup.json but missing from the archive: restoring it fails",
            );
        }
    }
    for p in &present {
        if !expected.contains(p) && p != "supervisor.tar.gz" && p != "supervisor.tar" {
            r.add(
                Level::Warning,
                Some(p),
                "is in the archive but not listed in backup.json: Home Assistant ignores it",
            );
        }
    }
    if v.get("type").and_then(|t| t.as_str()) == Some("partial") {
        r.add(
            Level::Info,
            None,
            "a partial backup: a full restore (CLI `ha backups restore`) refuses it; a partial restore or onboarding restore accepts it",
        );
    }
}

/// Check the password against the first encrypted archive: v3 by its key check, v1/v2 by
/// decrypting the first block (what Supervisor does).
fn password_check(b: &Backup, m: &tarscan::Member, ring: &mut KeyRing) -> Result<(), String> {
    let mut sec = inner::Section::member(b.reader(), m);
    let mut r = securetar::Reader::new(&mut sec, m.size, ring).map_err(|e| e.to_string())?;
    let mut first = [0u8; 16];
    match r.read(&mut first).map(|_| ()) {
        Ok(()) => Ok(()),
        Err(e) => match securetar::as_securetar(&e) {
            Some(SecureTarError::NotGzipOrTar(_)) => Err(e.to_string()),
            // Damage after the first block is for the full read to report.
            _ => Ok(()),
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn read_archive(
    b: &Backup,
    m: &tarscan::Member,
    protected: bool,
    keys: Option<&mut KeyRing>,
    limits: Limits,
    a: &mut ArchiveReport,
    r: &mut CheckReport,
    root_salts: &mut BTreeSet<[u8; 16]>,
) {
    let name = a.name.clone();
    let (plain, layers) = match inner::open_decrypted(b.reader(), m, protected, keys) {
        Ok(x) => x,
        Err(e) => {
            r.add(Level::Error, Some(&name), e.to_string());
            return;
        }
    };
    a.gzip = Some(layers.gzip);
    if let Some(h) = &layers.header {
        if let securetar::CipherInit::V3 { root_salt, .. } = &h.init {
            root_salts.insert(*root_salt);
        }
        if h.version == Version::V3 {
            let expect = securetar::encrypted_len(Version::V3, h.plaintext_size.unwrap_or(0));
            if m.size > expect {
                r.add(
                    Level::Warning,
                    Some(&name),
                    format!(
                        "{} bytes after the end of the SecureTar data (ignored)",
                        m.size - expect
                    ),
                );
            }
        }
    }
    if protected && !layers.gzip && b.compressed() || !protected && layers.gzip != b.compressed() {
        r.add(
            Level::Warning,
            Some(&name),
            format!(
                "is {} but backup.json says compressed={}",
                if layers.gzip {
                    "gzip"
                } else {
                    "an uncompressed tar"
                },
                b.compressed()
            ),
        );
    }
    let stem = archive::archive_stem(m).to_string();
    let mut facts = Facts::default();
    let result = std::thread::scope(|s| -> io::Result<(u64, u64, u64)> {
        let (counted_plain, plain_count) = inner::Counted::new(plain);
        let piped = super::pipe::spawn(s, counted_plain);
        let (stream, tar_count) = inner::Counted::new(inner::tar_stream_buffered(piped, &layers));
        let bounded = Bounded {
            inner: stream,
            left: limits.max_bytes,
        };
        let n = inner::walk(Box::new(bounded), limits.max_entries, |e, _body| {
            facts.see(e);
            Ok(())
        })?;
        Ok((
            n,
            plain_count.load(std::sync::atomic::Ordering::Relaxed),
            tar_count.load(std::sync::atomic::Ordering::Relaxed),
        ))
    });
    match result {
        Ok((n, plain, tar)) => {
            a.entries = Some(n);
            a.plaintext_bytes = Some(plain);
            a.tar_bytes = Some(tar);
            a.file_bytes = Some(facts.file_bytes);
            a.ok = true;
            if let Some(h) = &layers.header
                && h.version == Version::V2
                && let Some(sz) = h.plaintext_size
                && sz != plain
            {
                r.add(
                    Level::Info,
                    Some(&name),
                    format!("the SecureTar v2 header says {sz} plaintext bytes, there are {plain} (securetar ignores it)"),
                );
            }
        }
        Err(e) => {
            r.add(Level::Error, Some(&name), describe_read_error(&e));
        }
    }
    facts.report(&stem, &name, r);
}

/// Turn a read error into a finding text.
pub fn describe_read_error(e: &io::Error) -> String {
    if let Some(s) = securetar::as_securetar(e) {
        return s.to_string();
    }
    let t = e.to_string();
    if t.is_empty() {
        format!("{:?}", e.kind())
    } else {
        t
    }
}

/// Caps the bytes a stream may produce (a decompression bomb stops here).
pub struct Bounded<R> {
    pub inner: R,
    pub left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Anything more is over the limit; a finished stream returns 0 here too.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(
                    "expands past the size limit: a decompression bomb, or raise --max-size",
                )),
            };
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let got = self.inner.read(&mut buf[..n])?;
        self.left -= got as u64;
        Ok(got)
    }
}

/// What the entry walk noticed.
#[derive(Default)]
struct Facts {
    file_bytes: u64,
    unsafe_names: Vec<(String, Unsafe)>,
    hard_links: Vec<String>,
    specials: Vec<String>,
    others: Vec<String>,
    /// Symlink path → (target, escapes the archive root).
    symlinks: BTreeMap<Vec<String>, (String, bool)>,
    through_symlink: Vec<(String, String, bool)>,
    has_data_dir: bool,
    has_addon_json: bool,
}

fn limit_list(v: &[String]) -> String {
    let mut s = v
        .iter()
        .take(5)
        .map(|x| format!("'{x}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if v.len() > 5 {
        s.push_str(&format!(" and {} more", v.len() - 5));
    }
    s
}

/// Does a symlink at `at` (components) with `target` point outside the archive root?
pub fn symlink_escapes(at: &[String], target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth = at.len().saturating_sub(1) as i64;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

impl Facts {
    fn see(&mut self, e: &inner::Entry) {
        let parts = match inner::safe_path(&e.raw_name) {
            Ok(p) => p,
            Err(u) => {
                self.unsafe_names.push((e.raw_name.clone(), u));
                return;
            }
        };
        if parts.first().is_some_and(|p| p == "data") {
            self.has_data_dir = true;
        }
        if parts.len() == 1 && parts[0] == "addon.json" {
            self.has_addon_json = true;
        }
        for i in 1..parts.len() {
            if let Some((t, esc)) = self.symlinks.get(&parts[..i]) {
                self.through_symlink
                    .push((e.raw_name.clone(), t.clone(), *esc));
                break;
            }
        }
        match e.kind {
            EntryKind::File => self.file_bytes += e.size,
            EntryKind::Dir => {}
            EntryKind::Symlink => {
                let t = e.link.clone().unwrap_or_default();
                let esc = symlink_escapes(&parts, &t);
                self.symlinks.insert(parts, (t, esc));
            }
            EntryKind::HardLink => self.hard_links.push(e.raw_name.clone()),
            EntryKind::Special => self.specials.push(e.raw_name.clone()),
            EntryKind::Other(t) => self
                .others
                .push(format!("{} (type {})", e.raw_name, t as char)),
        }
    }

    fn report(&self, stem: &str, name: &str, r: &mut CheckReport) {
        let n = Some(name);
        for (raw, u) in &self.unsafe_names {
            r.add(
                Level::Error,
                n,
                format!("member '{raw}': {u}: Home Assistant's extraction refuses it"),
            );
        }
        for (raw, t, esc) in &self.through_symlink {
            if *esc {
                r.add(Level::Error, n, format!("member '{raw}' lies under a symlink to '{t}' outside the archive: Home Assistant's extraction refuses it"));
            } else {
                r.add(Level::Warning, n, format!("member '{raw}' lies under a symlink to '{t}': lifeboat extract refuses to write through symlinks"));
            }
        }
        if !self.hard_links.is_empty() {
            r.add(
                Level::Error,
                n,
                format!(
                    "{} hard link(s) ({}): restoring encrypted backups with hard links fails in Home Assistant (supervisor #5891, #6283)",
                    self.hard_links.len(),
                    limit_list(&self.hard_links)
                ),
            );
        }
        if !self.specials.is_empty() {
            r.add(
                Level::Warning,
                n,
                format!("device or FIFO member(s): {}", limit_list(&self.specials)),
            );
        }
        if !self.others.is_empty() {
            r.add(
                Level::Warning,
                n,
                format!("member(s) of unusual type: {}", limit_list(&self.others)),
            );
        }
        if stem == "homeassistant" && !self.has_data_dir {
            r.add(
                Level::Warning,
                n,
                "has no data/ directory: a Home Assistant Core (Container) restore refuses it; Supervisor falls back to the archive root",
            );
        }
        if stem != "homeassistant"
            && !validate::FOLDERS
                .iter()
                .any(|f| f.replace('/', "_") == stem)
            && stem != "supervisor"
            && !self.has_addon_json
        {
            r.add(
                Level::Error,
                n,
                "add-on archive without addon.json: Supervisor cannot restore this add-on",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_escape_rules() {
        let at = |s: &str| inner::safe_path(s).unwrap();
        assert!(symlink_escapes(&at("data/l"), "/etc"));
        assert!(symlink_escapes(&at("data/l"), "../../x"));
        assert!(!symlink_escapes(&at("data/l"), "../x"));
        assert!(!symlink_escapes(&at("data/l"), "sub/file"));
        assert!(symlink_escapes(&at("l"), ".."));
    }

    #[test]
    fn bounded_stops_bombs() {
        let data = vec![0u8; 1000];
        let mut b = Bounded {
            inner: &data[..],
            left: 1000,
        };
        assert_eq!(io::copy(&mut b, &mut io::sink()).unwrap(), 1000);
        let mut b = Bounded {
            inner: &data[..],
            left: 999,
        };
        assert!(io::copy(&mut b, &mut io::sink()).is_err());
    }
}

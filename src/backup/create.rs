//! `backup create`: a Supervisor-format backup made from the data partition of a card or
//! image that no longer boots — the format a fresh Home Assistant OS accepts at onboarding
//! ("Restore from backup"), ha-backup-format.md §1–3 and the §11 checklist.
//!
//! - `homeassistant.tar.gz`: the config dir under `data/`, by Home Assistant's own exclusion
//!   rules ([`super::rules`]); the recorder database and its `-wal` unless left out, checked
//!   with SQLite first ([`super::sqlite`]). No `homeassistant.json` (it carries Supervisor's
//!   token for the Core API; a restore keeps the new system's).
//! - One archive per add-on whose Supervisor metadata (`apps.json`/`addons.json` `user` and
//!   `system` entries) is complete enough for Supervisor's `SCHEMA_APP_BACKUP`: `addon.json`,
//!   its AppArmor profile as `apparmor.txt` when the card has one, `data/` (the add-on's data
//!   dir, by its `backup_exclude`) and `config/` (its public config dir). Add-on images are
//!   never included: Supervisor pulls them again.
//! - `share`, `ssl`, `media` and (when not empty) `addons/local` folder archives.
//! - Hard links are written as regular files (Home Assistant fails on hard links in encrypted
//!   backups); symlinks are kept as symlinks, with their targets as stored; devices, FIFOs and
//!   sockets are left out. Names are kept byte for byte (GNU long names past 100 bytes).
//! - Encryption: SecureTar v2 or v3 with one [`EncryptionKey`] for the whole backup (one root
//!   salt for v3, as Home Assistant requires). Each archive is spooled to a temporary file next
//!   to the output first, since SecureTar needs the size up front; unencrypted archives stream
//!   straight into the output.
//! - `./backup.json` last, spelled with its `./`, with `compressed` always present.
//!
//! Every file is read whole (or spooled) before its tar header is written, so a read error on
//! a failing card leaves that file out — and says so — instead of corrupting the archive. The
//! output is written to a temporary name (0600: it holds secrets) and renamed into place; an
//! existing file is only replaced with `force`. Afterwards the new backup is read back with
//! `backup check`'s drill ([`super::check`]).

use super::card::{self, Card, Ext4Reader};
use super::password::Password;
use super::rules;
use super::securetar::{EncryptionKey, Version};
use super::sqlite::{self, DbCheck, Integrity};
use super::validate;
use super::writer::BackupWriter;
use anyhow::{Context, Result, bail};
use ext4_view::Metadata;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Files up to this size are read into memory before they are archived; larger ones are
/// spooled to a temporary file first.
const MEM_LIMIT: u64 = 32 << 20;
/// Directory depth at which a walk stops (a damaged filesystem could loop).
const MAX_DEPTH: usize = 256;
/// Entries per archive at which a walk stops.
const MAX_ENTRIES: u64 = 5_000_000;
/// gzip level (what Python's gzip and securetar use by default is 9; 6 is far faster for
/// almost the same size on a database).
const GZIP_LEVEL: u32 = 6;

/// What to make.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The backup file to write.
    pub output: PathBuf,
    /// Replace `output` if it exists.
    pub force: bool,
    /// `name` in backup.json (default: "Recovered by lifeboat <date>").
    pub name: Option<String>,
    /// Only these parts (empty: everything): `homeassistant`, `addons`, `folders`, `share`,
    /// `ssl`, `media`, `addons/local`, or an add-on slug.
    pub partial: Vec<String>,
    /// Leave these parts out (same words, plus `database`).
    pub exclude: Vec<String>,
    /// Leave the recorder database (and its `-wal`) out.
    pub exclude_database: bool,
    /// Run SQLite's integrity check on the database before including it.
    pub check_database: bool,
    /// Read the new backup back (the `backup check` drill) after writing it.
    pub verify: bool,
    /// `date` in backup.json (default: now, UTC).
    pub date: Option<String>,
}

/// The key (and the password, to read the result back) for an encrypted backup.
pub struct Encryption {
    pub key: EncryptionKey,
    pub password: Password,
}

/// One archive written.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveStats {
    /// Member name, e.g. `homeassistant.tar.gz`.
    pub name: String,
    /// `homeassistant`, `addon` or `folder`.
    pub kind: &'static str,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of regular files inside.
    pub file_bytes: u64,
    /// Bytes stored in the backup (compressed, and encrypted when it is).
    pub stored_bytes: u64,
}

/// Something a restore of this backup will not bring back, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// The part or path: `core_zwave_js`, `addons/local`, `homeassistant: data/x.db`.
    pub item: String,
    pub reason: String,
}

/// A path Home Assistant's (or an add-on's) backup rules leave out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    pub archive: String,
    /// Path inside the archive, e.g. `data/home-assistant.log`.
    pub path: String,
    /// The pattern that matched.
    pub rule: String,
}

/// The recorder database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseReport {
    pub path: String,
    pub bytes: u64,
    /// Size of the write-ahead log copied with it, when there is one.
    pub wal_bytes: Option<u64>,
    pub included: bool,
    /// SQLite's verdict (null when not checked).
    pub check: Option<DbCheck>,
}

/// The check of the new backup.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub verdict: super::check::Verdict,
    /// Errors and warnings the check found, in words.
    pub findings: Vec<String>,
}

/// What `create` did.
#[derive(Debug, Clone, Serialize)]
pub struct CreateReport {
    pub source: String,
    /// Data partition number (null when the source is the partition itself).
    pub partition: Option<u32>,
    pub output: String,
    pub output_bytes: u64,
    pub slug: String,
    pub name: String,
    pub date: String,
    /// `full` or `partial`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub protected: bool,
    /// SecureTar version (2 or 3), null when not encrypted.
    pub encryption: Option<Version>,
    pub homeassistant_version: Option<String>,
    pub supervisor_version: Option<String>,
    pub archives: Vec<ArchiveStats>,
    /// Add-ons in the backup: slug, name, version.
    pub addons: Vec<Value>,
    pub folders: Vec<String>,
    pub database: Option<DatabaseReport>,
    /// Left out by Home Assistant's rules (logs, caches…), as a backup made by Home
    /// Assistant would.
    pub excluded: Vec<Excluded>,
    /// Left out for another reason: the user's choice, unreadable, incomplete metadata.
    pub left_out: Vec<LeftOut>,
    /// Worth knowing before restoring.
    pub notes: Vec<String>,
    pub verification: Option<Verification>,
}

// ------------------------------------------------------------------ the plan

/// Where the Supervisor keeps add-ons on this card (`apps/…` since 2026.06, `addons/…` before).
#[derive(Debug, Clone)]
struct Layout {
    apps_dir: &'static str,
    configs_dir: &'static str,
}

#[derive(Debug, Clone)]
struct AddonPlan {
    slug: String,
    name: String,
    version: String,
    addon_json: Value,
    excludes: Vec<String>,
}

#[derive(Debug, Clone)]
enum Part {
    HomeAssistant,
    Addon(Box<AddonPlan>),
    /// (`share`, `/supervisor/share`)
    Folder(&'static str, Vec<u8>),
}

impl Part {
    fn key(&self) -> String {
        match self {
            Part::HomeAssistant => "homeassistant".into(),
            Part::Addon(a) => a.slug.clone(),
            Part::Folder(f, _) => (*f).into(),
        }
    }
    fn member(&self) -> String {
        format!("{}.tar.gz", self.key().replace('/', "_"))
    }
}

const FOLDERS: [&str; 4] = ["share", "ssl", "media", "addons/local"];

fn layout(card: &Card) -> Layout {
    let modern = match card.contents.addons_file.as_deref() {
        Some("apps.json") => true,
        Some(_) => false,
        None => card::is_dir(&card.fs, b"/supervisor/apps"),
    };
    if modern {
        Layout {
            apps_dir: "apps",
            configs_dir: "app_configs",
        }
    } else {
        Layout {
            apps_dir: "addons",
            configs_dir: "addon_configs",
        }
    }
}

/// Why Supervisor would refuse `addon.json` built from these entries (empty: complete).
pub fn addon_metadata_gaps(user: Option<&Value>, system: Option<&Value>) -> Vec<String> {
    let mut gaps = Vec::new();
    let version_ok = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(validate::version_key)
            .is_some()
    };
    match user {
        Some(u) if u.is_object() => {
            if !version_ok(u.get("version")) {
                gaps.push("user.version".to_string());
            }
        }
        _ => gaps.push("the user entry".to_string()),
    }
    match system {
        Some(s) if s.is_object() => {
            for k in ["name", "slug", "description", "repository"] {
                if !s.get(k).is_some_and(Value::is_string) {
                    gaps.push(format!("system.{k}"));
                }
            }
            if !version_ok(s.get("version")) {
                gaps.push("system.version".to_string());
            }
            if !s
                .get("arch")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
            {
                gaps.push("system.arch".to_string());
            }
        }
        _ => gaps.push("the system entry (the add-on's manifest)".to_string()),
    }
    gaps
}

/// The `addon.json` Supervisor writes: user, system, version, state.
pub fn addon_json(user: &Value, system: &Value) -> Value {
    let version = user.get("version").cloned().unwrap_or(Value::Null);
    let boot = user
        .get("boot")
        .or_else(|| system.get("boot"))
        .and_then(Value::as_str)
        .unwrap_or("auto");
    json!({
        "user": user,
        "system": system,
        "version": version,
        "state": if boot == "auto" { "started" } else { "stopped" },
    })
}

/// The words `--partial` and `--exclude` take.
fn vocabulary(addons: &[String]) -> String {
    let mut v = vec![
        "homeassistant".to_string(),
        "addons".into(),
        "folders".into(),
        "share".into(),
        "ssl".into(),
        "media".into(),
        "addons/local".into(),
    ];
    v.extend(addons.iter().cloned());
    v.join(", ")
}

fn canon(word: &str) -> String {
    let w = word.trim().to_ascii_lowercase();
    if w == "addons_local" {
        "addons/local".into()
    } else {
        w
    }
}

/// Does a selection word name this part?
fn names(word: &str, part: &Part) -> bool {
    match (word, part) {
        ("homeassistant", Part::HomeAssistant) => true,
        ("addons", Part::Addon(_)) => true,
        ("folders", Part::Folder(..)) => true,
        (w, p) => w == p.key(),
    }
}

// ------------------------------------------------------------------ temporary files

/// A private directory next to the output for spooled archives and database copies,
/// removed when dropped.
struct Spool {
    dir: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Spool {
    fn new(output: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = super::extract::tmp_name(output, "spool");
        if dir.symlink_metadata().is_ok() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("{}: stale, cannot remove", dir.display()))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Self {
            dir,
            n: std::cell::Cell::new(0),
        })
    }
    fn path(&self, what: &str) -> PathBuf {
        let n = self.n.get() + 1;
        self.n.set(n);
        self.dir.join(format!("{n}-{what}"))
    }
    fn create(&self, what: &str) -> Result<(File, PathBuf)> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.path(what);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .with_context(|| format!("{}: cannot create", p.display()))?;
        Ok((f, p))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copy a file off the card into the spool; returns the copy and its length.
fn spool_copy(card: &Card, spool: &Spool, path: &[u8]) -> Result<(PathBuf, u64)> {
    let name = card.name(path);
    let mut r = Ext4Reader::open(&card.fs, path).with_context(|| format!("{name}: cannot open"))?;
    let (mut f, p) = spool.create("file")?;
    let n = io::copy(&mut r, &mut f).with_context(|| format!("{name}: cannot read"))?;
    f.sync_all()
        .with_context(|| format!("{}: cannot write", p.display()))?;
    Ok((p, n))
}

// ------------------------------------------------------------------ archive writing

fn os(path: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(path))
}

fn header(kind: tar::EntryType, m: &Metadata, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(u32::from(m.mode()));
    h.set_uid(u64::from(m.uid()));
    h.set_gid(u64::from(m.gid()));
    h.set_mtime(m.modified().seconds().max(0) as u64);
    h
}

/// What a walk may consult and where it records what it left out.
struct Walk<'a, W: Write> {
    card: &'a Card,
    spool: &'a Spool,
    tar: tar::Builder<W>,
    stats: ArchiveStats,
    /// Archive-relative path → a copy to take its content from (the checked database).
    overrides: &'a BTreeMap<Vec<u8>, PathBuf>,
    excluded: &'a mut Vec<Excluded>,
    left_out: &'a mut Vec<LeftOut>,
    entries: u64,
}

/// Decides whether a path (relative to the tree's root) is left out, and by which rule.
type Filter<'f> = &'f dyn Fn(&[u8]) -> Option<String>;

impl<W: Write> Walk<'_, W> {
    fn leave(&mut self, arc: &[u8], reason: impl Into<String>) {
        self.left_out.push(LeftOut {
            item: format!("{}: {}", self.stats.name, String::from_utf8_lossy(arc)),
            reason: reason.into(),
        });
    }

    fn count(&mut self) -> Result<()> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            bail!(
                "{}: more than {MAX_ENTRIES} entries: stopping (a damaged filesystem?)",
                self.stats.name
            );
        }
        Ok(())
    }

    fn dir(&mut self, arc: &[u8], m: &Metadata) -> Result<()> {
        self.count()?;
        let mut h = header(tar::EntryType::Directory, m, 0);
        self.tar
            .append_data(&mut h, os(arc), io::empty())
            .with_context(|| format!("{}: writing", self.stats.name))?;
        self.stats.dirs += 1;
        Ok(())
    }

    fn bytes(&mut self, arc: &[u8], m: &Metadata, data: &[u8]) -> Result<()> {
        self.count()?;
        let mut h = header(tar::EntryType::Regular, m, data.len() as u64);
        self.tar
            .append_data(&mut h, os(arc), data)
            .with_context(|| format!("{}: writing", self.stats.name))?;
        self.stats.files += 1;
        self.stats.file_bytes += data.len() as u64;
        Ok(())
    }

    fn copied(&mut self, arc: &[u8], m: &Metadata, copy: &Path) -> Result<()> {
        self.count()?;
        let f = File::open(copy).with_context(|| format!("{}: cannot open", copy.display()))?;
        let len = f
            .metadata()
            .with_context(|| format!("{}: cannot read", copy.display()))?
            .len();
        let mut h = header(tar::EntryType::Regular, m, len);
        // Exactly `len` bytes: the tar crate writes whatever the reader gives.
        let body = Exact {
            inner: f.take(len),
            left: len,
        };
        self.tar
            .append_data(&mut h, os(arc), body)
            .with_context(|| format!("{}: writing", self.stats.name))?;
        self.stats.files += 1;
        self.stats.file_bytes += len;
        Ok(())
    }

    fn file(&mut self, src: &[u8], arc: &[u8], rel: &[u8], m: &Metadata) -> Result<()> {
        if let Some(copy) = self.overrides.get(rel) {
            let copy = copy.clone();
            return self.copied(arc, m, &copy);
        }
        if m.len() <= MEM_LIMIT {
            let read = Ext4Reader::open(&self.card.fs, src)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .and_then(|mut r| {
                    let mut v = Vec::with_capacity(m.len() as usize);
                    r.read_to_end(&mut v)?;
                    Ok(v)
                });
            return match read {
                Ok(v) => self.bytes(arc, m, &v),
                Err(e) => {
                    self.leave(arc, format!("unreadable on the card: {e:#}"));
                    Ok(())
                }
            };
        }
        match spool_copy(self.card, self.spool, src) {
            Ok((p, _)) => {
                let r = self.copied(arc, m, &p);
                let _ = std::fs::remove_file(&p);
                r
            }
            Err(e) => {
                self.leave(arc, format!("unreadable on the card: {e:#}"));
                Ok(())
            }
        }
    }

    fn symlink(&mut self, src: &[u8], arc: &[u8], m: &Metadata) -> Result<()> {
        let target = match self.card.fs.read_link(src) {
            Ok(t) => t,
            Err(e) => {
                self.leave(arc, format!("symlink unreadable on the card: {e}"));
                return Ok(());
            }
        };
        self.count()?;
        let mut h = header(tar::EntryType::Symlink, m, 0);
        self.tar
            .append_link(&mut h, os(arc), os(target.as_ref()))
            .with_context(|| format!("{}: writing", self.stats.name))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// Add everything under `src` (a directory on the card) as `arc/…`; `rel` is the path
    /// below the tree's root that `filter` judges.
    fn tree(
        &mut self,
        src: &[u8],
        arc: &[u8],
        rel: &[u8],
        filter: Filter<'_>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            self.leave(
                arc,
                format!("deeper than {MAX_DEPTH} directories: not read"),
            );
            return Ok(());
        }
        let items = match card::list_dir(&self.card.fs, src) {
            Ok(i) => i,
            Err(e) => {
                self.leave(arc, format!("directory unreadable on the card: {e}"));
                return Ok(());
            }
        };
        for it in items {
            let s = card::join(src, &it.name);
            let a = card::join(arc, &it.name);
            let r = if rel.is_empty() {
                it.name.clone()
            } else {
                card::join(rel, &it.name)
            };
            if let Some(rule) = filter(&r) {
                self.excluded.push(Excluded {
                    archive: self.stats.name.clone(),
                    path: String::from_utf8_lossy(&a).into_owned(),
                    rule,
                });
                continue;
            }
            let m = match card::lstat(&self.card.fs, &s) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    self.leave(&a, format!("unreadable on the card: {e}"));
                    continue;
                }
            };
            let t = m.file_type();
            if t.is_dir() {
                self.dir(&a, &m)?;
                self.tree(&s, &a, &r, filter, depth + 1)?;
            } else if t.is_regular_file() {
                self.file(&s, &a, &r, &m)?;
            } else if t.is_symlink() {
                self.symlink(&s, &a, &m)?;
            } else {
                let what = if t.is_fifo() {
                    "a FIFO"
                } else if t.is_socket() {
                    "a socket"
                } else {
                    "a device node"
                };
                self.leave(&a, format!("{what}: backups hold files, not {what}s"));
            }
        }
        Ok(())
    }
}

/// A reader that must deliver exactly `left` bytes.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spooled copy is shorter than it was",
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// Everything one archive needs besides the card.
struct ArchiveJob<'a> {
    part: &'a Part,
    layout: &'a Layout,
    exclude_database: bool,
    overrides: &'a BTreeMap<Vec<u8>, PathBuf>,
}

/// Write the `.tar.gz` of one part into `out`.
fn write_archive(
    card: &Card,
    spool: &Spool,
    job: &ArchiveJob<'_>,
    out: &mut dyn Write,
    excluded: &mut Vec<Excluded>,
    left_out: &mut Vec<LeftOut>,
) -> Result<ArchiveStats> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
    let (kind, name) = match job.part {
        Part::HomeAssistant => ("homeassistant", job.part.member()),
        Part::Addon(_) => ("addon", job.part.member()),
        Part::Folder(..) => ("folder", job.part.member()),
    };
    let mut w = Walk {
        card,
        spool,
        tar: tar::Builder::new(gz),
        stats: ArchiveStats {
            name,
            kind,
            files: 0,
            dirs: 0,
            symlinks: 0,
            file_bytes: 0,
            stored_bytes: 0,
        },
        overrides: job.overrides,
        excluded,
        left_out,
        entries: 0,
    };
    let root_meta = |p: &[u8]| -> Result<Metadata> {
        card::lstat(&card.fs, p)
            .map_err(|e| anyhow::anyhow!("{}: {e}", card.name(p)))?
            .with_context(|| format!("{}: missing", card.name(p)))
    };
    match job.part {
        Part::HomeAssistant => {
            let src = b"/supervisor/homeassistant";
            let m = root_meta(src)?;
            w.dir(b"data", &m)?;
            let exclude_db = job.exclude_database;
            let filter =
                move |rel: &[u8]| rules::homeassistant_excluded(rel, exclude_db).map(String::from);
            w.tree(src, b"data", b"", &filter, 0)?;
        }
        Part::Addon(a) => {
            let json = serde_json::to_vec(&a.addon_json).context("encoding addon.json")?;
            let m = root_meta(b"/supervisor")?;
            w.bytes(b"addon.json", &m, &json)?;
            // Its AppArmor profile, which Supervisor's restore loads (when the card has one).
            let profile = format!("/supervisor/apparmor/{}", a.slug);
            if let Ok(Some(p)) = card::read_small(&card.fs, profile.as_bytes(), 1 << 20)
                && let Ok(Some(pm)) = card::lstat(&card.fs, profile.as_bytes())
            {
                w.bytes(b"apparmor.txt", &pm, &p)?;
            }
            let data = format!("/supervisor/{}/data/{}", job.layout.apps_dir, a.slug);
            let config = format!("/supervisor/{}/{}", job.layout.configs_dir, a.slug);
            for (src, arc, seen_as) in [
                (
                    data,
                    &b"data"[..],
                    format!("/data/{}/data/{}", job.layout.apps_dir, a.slug),
                ),
                (
                    config,
                    &b"config"[..],
                    format!("/data/{}/{}", job.layout.configs_dir, a.slug),
                ),
            ] {
                let src = src.into_bytes();
                if !card::is_dir(&card.fs, &src) {
                    if arc == b"data" {
                        // Supervisor's restore makes an empty data dir either way.
                        w.dir(b"data", &m)?;
                    }
                    continue;
                }
                let rm = root_meta(&src)?;
                w.dir(arc, &rm)?;
                let excludes = a.excludes.clone();
                let filter = move |rel: &[u8]| {
                    let full = card::join(seen_as.as_bytes(), rel);
                    rules::addon_excluded(&excludes, &full).map(|p| format!("{p} (add-on)"))
                };
                w.tree(&src, arc, b"", &filter, 0)?;
            }
        }
        Part::Folder(_, dir) => {
            let none = |_: &[u8]| None;
            w.tree(dir, b"", b"", &none, 0)?;
        }
    }
    let stats = w.stats.clone();
    let gz = w
        .tar
        .into_inner()
        .with_context(|| format!("{}: writing", stats.name))?;
    gz.finish()
        .with_context(|| format!("{}: writing", stats.name))?;
    Ok(stats)
}

// ------------------------------------------------------------------ the whole backup

/// `sha1(lower("<date> - <name>"))[:8]`, as Supervisor and Core make slugs.
pub fn slug(date: &str, name: &str) -> String {
    use sha1::Digest;
    let d = sha1::Sha1::digest(format!("{date} - {name}").to_lowercase().as_bytes());
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Core's rule for a backup name (no `/`, `\`, drive letter, and not empty, `.` or `..`).
pub fn check_name(n: &str) -> Result<()> {
    let b = n.as_bytes();
    if n.trim().is_empty()
        || n == "."
        || n == ".."
        || n.contains('/')
        || n.contains('\\')
        || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic())
    {
        bail!(
            "backup name '{n}': Home Assistant refuses names that are empty, '.', '..', or \
             contain '/', '\\' or a drive letter"
        );
    }
    Ok(())
}

fn jstr(v: Option<&Value>, k: &str) -> Option<String> {
    v.and_then(|v| v.get(k))
        .and_then(Value::as_str)
        .map(String::from)
}

/// Home Assistant Core's version on the card: Supervisor's record, else `.HA_VERSION`.
fn core_version(card: &Card) -> Option<String> {
    card.contents
        .core_version
        .clone()
        .filter(|v| validate::version_key(v).is_some())
        .or_else(|| {
            card::read_small(&card.fs, b"/supervisor/homeassistant/.HA_VERSION", 4096)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .filter(|v| validate::version_key(v).is_some())
        })
}

/// What goes into the backup, decided before anything is written.
struct Plan {
    layout: Layout,
    parts: Vec<Part>,
    /// `full` or `partial`.
    kind: &'static str,
    with_ha: bool,
    exclude_database: bool,
    ha_version: Option<String>,
    supervisor_version: Option<String>,
    /// Supervisor's config.json (custom repositories).
    config: Option<Value>,
    left_out: Vec<LeftOut>,
    notes: Vec<String>,
    problems: Vec<String>,
}

/// Read the Supervisor state, list every part there is, and apply the user's choice.
fn plan(card: &Card, opts: &Options) -> Result<Plan> {
    let mut notes = Vec::new();
    let mut left_out = Vec::new();
    let mut problems = Vec::new();
    let layout = layout(card);

    // ---- Supervisor state
    let addons_file = card.contents.addons_file.clone();
    let apps = addons_file.as_deref().and_then(|f| {
        card::read_json(
            &card.fs,
            format!("/supervisor/{f}").as_bytes(),
            &mut problems,
        )
    });
    let config = card::read_json(&card.fs, b"/supervisor/config.json", &mut problems);
    let ha_version = core_version(card);
    let supervisor_version = card
        .contents
        .supervisor_version
        .clone()
        .filter(|v| validate::version_key(v).is_some());

    // ---- every part there is
    let mut parts: Vec<Part> = Vec::new();
    let has_config = card::is_dir(&card.fs, b"/supervisor/homeassistant");
    if has_config {
        parts.push(Part::HomeAssistant);
    } else {
        left_out.push(LeftOut {
            item: "homeassistant".into(),
            reason: "the card has no /supervisor/homeassistant config directory".into(),
        });
    }
    let user = apps
        .as_ref()
        .and_then(|a| a.get("user"))
        .and_then(Value::as_object);
    let system = apps
        .as_ref()
        .and_then(|a| a.get("system"))
        .and_then(Value::as_object);
    let mut all_slugs = Vec::new();
    let mut incomplete_addon = false;
    if let Some(user) = user {
        for (slug, u) in user {
            all_slugs.push(slug.clone());
            let s = system.and_then(|s| s.get(slug));
            let gaps = addon_metadata_gaps(Some(u), s);
            if !gaps.is_empty() {
                incomplete_addon = true;
                left_out.push(LeftOut {
                    item: slug.clone(),
                    reason: format!(
                        "its Supervisor metadata in {} is incomplete (missing {}): Supervisor \
                         would refuse the archive; its data stays on the card",
                        addons_file.as_deref().unwrap_or("apps.json"),
                        gaps.join(", ")
                    ),
                });
                continue;
            }
            let (Some(s), Some(version)) = (s, jstr(Some(u), "version")) else {
                continue;
            };
            let excludes = s
                .get("backup_exclude")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            parts.push(Part::Addon(Box::new(AddonPlan {
                slug: slug.clone(),
                name: jstr(Some(s), "name").unwrap_or_else(|| slug.clone()),
                version,
                addon_json: addon_json(u, s),
                excludes,
            })));
        }
    }
    for f in FOLDERS {
        let dir = if f == "addons/local" {
            format!("/supervisor/{}/local", layout.apps_dir)
        } else {
            format!("/supervisor/{f}")
        }
        .into_bytes();
        if !card::is_dir(&card.fs, &dir) {
            continue;
        }
        if f == "addons/local" {
            let items = card::list_dir(&card.fs, &dir).unwrap_or_default();
            if items.iter().all(|i| i.name == b".keep") {
                left_out.push(LeftOut {
                    item: f.into(),
                    reason: "empty (no local add-ons)".into(),
                });
                continue;
            }
            if layout.apps_dir == "apps" {
                notes.push(
                    "addons/local comes from apps/local: Supervisor ≥ 2026.06 may restore it to \
                     the old addons/local path (ha-backup-format.md §12); check local add-ons \
                     after restoring"
                        .into(),
                );
            }
        }
        parts.push(Part::Folder(f, dir));
    }

    // ---- the user's choice
    let partial: Vec<String> = opts.partial.iter().map(|w| canon(w)).collect();
    let mut exclude: Vec<String> = opts.exclude.iter().map(|w| canon(w)).collect();
    let mut exclude_database = opts.exclude_database;
    if let Some(i) = exclude.iter().position(|w| w == "database") {
        exclude.remove(i);
        exclude_database = true;
    }
    for (flag, words) in [("--partial", &partial), ("--exclude", &exclude)] {
        for w in words {
            let known = matches!(
                w.as_str(),
                "homeassistant" | "addons" | "folders" | "share" | "ssl" | "media" | "addons/local"
            ) || all_slugs.contains(w);
            if !known {
                bail!(
                    "{flag} {w}: not a part of this backup (one of: {})",
                    vocabulary(&all_slugs)
                );
            }
        }
    }
    let mut chosen_out = false;
    parts.retain(|p| {
        let keep = (partial.is_empty() || partial.iter().any(|w| names(w, p)))
            && !exclude.iter().any(|w| names(w, p));
        if !keep {
            chosen_out = true;
            left_out.push(LeftOut {
                item: p.key(),
                reason: "left out as asked (--partial/--exclude)".into(),
            });
        }
        keep
    });
    if parts.is_empty() {
        bail!(
            "{}: nothing to back up (every part was left out)",
            card.what
        );
    }
    let with_ha = parts.iter().any(|p| matches!(p, Part::HomeAssistant));
    let kind = if with_ha && !chosen_out && !incomplete_addon {
        "full"
    } else {
        "partial"
    };
    if !with_ha {
        notes.push(
            "no Home Assistant config in this backup: restoring at onboarding needs one with \
             it; restore these parts from Settings → System → Backups afterwards"
                .into(),
        );
    }
    if with_ha && ha_version.is_none() {
        bail!(
            "{}: the Home Assistant Core version is recorded neither in \
             /supervisor/homeassistant.json nor in the config's .HA_VERSION: a restore needs it",
            card.what
        );
    }

    Ok(Plan {
        layout,
        parts,
        kind,
        with_ha,
        exclude_database,
        ha_version,
        supervisor_version,
        config,
        left_out,
        notes,
        problems,
    })
}

/// Archive-relative paths whose content comes from a copy in the spool, not the card.
type Overrides = BTreeMap<Vec<u8>, PathBuf>;

/// Copy the recorder database (with its `-wal`) off the card into the spool and check it with
/// SQLite. Returns its report and the copies the archive takes instead of the card's files.
fn prepare_database(
    card: &Card,
    spool: &Spool,
    plan: &mut Plan,
    check: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(Option<DatabaseReport>, Overrides)> {
    let mut overrides = BTreeMap::new();
    let mut database = None;
    let (left_out, notes) = (&mut plan.left_out, &mut plan.notes);
    let exclude_database = plan.exclude_database;
    let db_path = b"/supervisor/homeassistant/home-assistant_v2.db";
    let wal_path = b"/supervisor/homeassistant/home-assistant_v2.db-wal";
    if plan.with_ha && card::is_file(&card.fs, db_path) {
        let bytes = card::lstat(&card.fs, db_path)
            .ok()
            .flatten()
            .map_or(0, |m| m.len());
        let wal_bytes = card::lstat(&card.fs, wal_path)
            .ok()
            .flatten()
            .filter(|m| m.file_type().is_regular_file())
            .map(|m| m.len());
        let mut rep = DatabaseReport {
            path: "home-assistant_v2.db".into(),
            bytes,
            wal_bytes,
            included: !exclude_database,
            check: None,
        };
        if exclude_database {
            left_out.push(LeftOut {
                item: "homeassistant: data/home-assistant_v2.db".into(),
                reason: format!(
                    "the recorder database{} left out as asked (--exclude-database): history \
                     and statistics start afresh",
                    if wal_bytes.is_some() {
                        " and its -wal"
                    } else {
                        ""
                    }
                ),
            });
        } else if check {
            progress(&format!(
                "copying the recorder database ({}) off the card and checking it",
                crate::report::human_bytes(bytes + wal_bytes.unwrap_or(0))
            ));
            let dbdir = spool.path("db");
            std::fs::create_dir(&dbdir)
                .with_context(|| format!("{}: cannot create", dbdir.display()))?;
            let copy = |src: &[u8], name: &str| -> Result<PathBuf> {
                let (p, _) = spool_copy(card, spool, src)?;
                let to = dbdir.join(name);
                std::fs::rename(&p, &to)
                    .with_context(|| format!("{}: cannot rename", to.display()))?;
                Ok(to)
            };
            match copy(db_path, rules::DATABASE) {
                Ok(db) => {
                    overrides.insert(rules::DATABASE.as_bytes().to_vec(), db.clone());
                    let mut wal_ok = true;
                    if wal_bytes.is_some() {
                        match copy(wal_path, rules::DATABASE_WAL) {
                            Ok(w) => {
                                overrides.insert(rules::DATABASE_WAL.as_bytes().to_vec(), w);
                            }
                            Err(e) => {
                                wal_ok = false;
                                notes.push(format!(
                                    "{e:#}: the database's -wal could not be read; it is left \
                                     out, so the newest history is lost"
                                ));
                            }
                        }
                    }
                    let c = sqlite::check(&db);
                    match c.integrity {
                        Integrity::Ok => {}
                        Integrity::Damaged => notes.push(format!(
                            "the recorder database is DAMAGED ({}); it is included as it is: \
                             Home Assistant moves a damaged database aside and starts a new \
                             one. Leave it out with --exclude-database",
                            c.messages
                                .first()
                                .map(String::as_str)
                                .unwrap_or("integrity check failed")
                        )),
                        Integrity::Unreadable => notes.push(format!(
                            "the recorder database does not open in SQLite ({}); it is \
                             included as it is. Leave it out with --exclude-database",
                            c.messages.first().map(String::as_str).unwrap_or("?")
                        )),
                    }
                    if !wal_ok {
                        // The archive must not carry a -wal that was not read whole.
                        overrides.remove(rules::DATABASE_WAL.as_bytes());
                    }
                    rep.check = Some(c);
                }
                Err(e) => notes.push(format!(
                    "{e:#}: the recorder database could not be copied off the card for its \
                     check; the archive tries again"
                )),
            }
        }
        database = Some(rep);
    }

    Ok((database, overrides))
}

/// Everything writing one archive into the output needs.
struct Out<'a> {
    w: BackupWriter<io::BufWriter<File>>,
    tmp: &'a Path,
    mtime: u64,
    excluded: Vec<Excluded>,
    left_out: Vec<LeftOut>,
}

/// Write one part's archive into the backup: streamed when unencrypted, spooled and encrypted
/// otherwise.
fn write_part(
    card: &Card,
    spool: &Spool,
    plan: &Plan,
    overrides: &Overrides,
    part: &Part,
    enc: Option<&Encryption>,
    o: &mut Out<'_>,
) -> Result<ArchiveStats> {
    let (w, mtime, excluded, left_out) = (&mut o.w, o.mtime, &mut o.excluded, &mut o.left_out);
    let tmp = o.tmp;
    let job = ArchiveJob {
        part,
        layout: &plan.layout,
        exclude_database: plan.exclude_database,
        overrides,
    };
    let member = part.member();
    let wctx = || format!("{}: writing {member}", tmp.display());
    let stats = if enc.is_none() && member.len() <= 100 {
        // Unencrypted: stream into the output, the size is patched in afterwards.
        let mut res = None;
        let n = w.append_unsized(&member, mtime, |o| {
            match write_archive(card, spool, &job, o, excluded, left_out) {
                Ok(s) => {
                    res = Some(Ok(s));
                    Ok(())
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    res = Some(Err(e));
                    Err(io::Error::other(msg))
                }
            }
        });
        match (res, n) {
            (Some(Ok(mut s)), Ok(n)) => {
                s.stored_bytes = n;
                s
            }
            (Some(Err(e)), _) => return Err(e),
            (_, Err(e)) => return Err(anyhow::Error::new(e).context(wctx())),
            (None, Ok(_)) => bail!("{}: archive not written", wctx()),
        }
    } else {
        // Spooled first: SecureTar needs the size up front.
        let (mut f, p) = spool.create("archive")?;
        let mut s = {
            let mut bw = io::BufWriter::with_capacity(1 << 20, &mut f);
            let s = write_archive(card, spool, &job, &mut bw, excluded, left_out)?;
            bw.flush()
                .with_context(|| format!("{}: cannot write", p.display()))?;
            s
        };
        let len = f
            .stream_position()
            .with_context(|| format!("{}: cannot write", p.display()))?;
        f.rewind()
            .with_context(|| format!("{}: cannot read", p.display()))?;
        let start = w.position();
        let body = io::BufReader::with_capacity(1 << 20, f);
        match enc {
            Some(e) => w.append_encrypted(&member, len, body, &e.key, mtime),
            None => w.append_reader(&member, len, body, mtime),
        }
        .with_context(wctx)?;
        let _ = std::fs::remove_file(&p);
        s.stored_bytes = w.position() - start;
        s
    };
    Ok(stats)
}

/// What `backup.json` says besides the plan.
struct Head<'a> {
    slug: &'a str,
    name: &'a str,
    date: &'a str,
    addons: &'a [Value],
    folders: &'a [String],
    mounts: &'a [Value],
    ha_size: u64,
    protected: bool,
}

/// The `backup.json` of the new backup.
fn backup_json(card: &Card, plan: &Plan, h: &Head<'_>) -> Result<Value> {
    let Head {
        slug,
        name,
        date,
        addons,
        folders,
        mounts,
        ha_size,
        protected,
    } = *h;
    let (config, kind, with_ha) = (&plan.config, plan.kind, plan.with_ha);
    let (ha_version, supervisor_version) = (&plan.ha_version, &plan.supervisor_version);
    let exclude_database = plan.exclude_database;
    let mut repositories: BTreeSet<String> = ["core".to_string(), "local".to_string()].into();
    for key in ["apps_custom_list", "addons_custom_list", "repositories"] {
        if let Some(a) = config
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_array)
        {
            for r in a.iter().filter_map(Value::as_str) {
                if r.starts_with("https://") || r.starts_with("http://") {
                    repositories.insert(r.to_string());
                }
            }
        }
    }
    let instance_id = card
        .contents
        .config_dir
        .as_ref()
        .and_then(|c| c.instance_id.clone());
    let mut extra = Map::new();
    if let Some(i) = &instance_id {
        extra.insert("instance_id".into(), json!(i));
    }
    extra.insert("with_automatic_settings".into(), json!(false));
    extra.insert(
        "lifeboat".into(),
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "made_from": "data partition",
            "network_mounts": mounts,
        }),
    );
    let mut meta = Map::new();
    meta.insert("slug".into(), json!(slug));
    meta.insert("version".into(), json!(2));
    meta.insert("name".into(), json!(name));
    meta.insert("date".into(), json!(date));
    meta.insert("type".into(), json!(kind));
    if let Some(v) = &supervisor_version {
        meta.insert("supervisor_version".into(), json!(v));
    }
    meta.insert("extra".into(), Value::Object(extra));
    meta.insert(
        "homeassistant".into(),
        match (with_ha, &ha_version) {
            (true, Some(v)) => json!({
                "version": v,
                "exclude_database": exclude_database,
                "size": (ha_size as f64 / 1_048_576.0 * 100.0).round() / 100.0,
            }),
            _ => Value::Null,
        },
    );
    meta.insert("compressed".into(), json!(true));
    meta.insert("protected".into(), json!(protected));
    meta.insert(
        "repositories".into(),
        json!(repositories.into_iter().collect::<Vec<_>>()),
    );
    meta.insert("addons".into(), Value::Array(addons.to_vec()));
    meta.insert("folders".into(), json!(folders));
    let meta = Value::Object(meta);
    for f in validate::check_json(&meta) {
        if f.level == validate::Level::Error {
            bail!(
                "internal error: the backup.json made is refused by Home Assistant's rules: {}",
                f.message
            );
        }
    }
    Ok(meta)
}

/// Network mounts from Supervisor's mounts.json, without credentials.
fn network_mounts(card: &Card, problems: &mut Vec<String>) -> Vec<Value> {
    card::read_json(&card.fs, b"/supervisor/mounts.json", problems)
        .as_ref()
        .and_then(|m| m.get("mounts"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|m| {
                    let mut o = Map::new();
                    for k in [
                        "name",
                        "type",
                        "server",
                        "share",
                        "path",
                        "usage",
                        "read_only",
                    ] {
                        if let Some(v) = m.get(k) {
                            o.insert(k.into(), v.clone());
                        }
                    }
                    Value::Object(o)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Make the backup. `progress` gets a line per step, for a terminal.
pub fn create(
    card: &Card,
    opts: &Options,
    enc: Option<&Encryption>,
    progress: &mut dyn FnMut(&str),
) -> Result<CreateReport> {
    let out = &opts.output;
    if out.symlink_metadata().is_ok() && !opts.force {
        bail!("{}: exists; add --force to replace it", out.display());
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        bail!("{}: no such directory", parent.display());
    }
    let date = opts.date.clone().unwrap_or_else(super::isotime::now_utc);
    if !validate::is_iso_datetime(&date) {
        bail!("date '{date}' is not an ISO-8601 date-time");
    }
    let name = opts.name.clone().unwrap_or_else(|| {
        format!(
            "Recovered by lifeboat {}",
            date.get(..16).unwrap_or(&date).replace('T', " ")
        )
    });
    check_name(&name)?;
    let mut plan = plan(card, opts)?;
    let spool = Spool::new(out)?;
    let (database, overrides) =
        prepare_database(card, &spool, &mut plan, opts.check_database, progress)?;

    // ---- write
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = super::extract::tmp_name(out, "tmp");
    let _ = std::fs::remove_file(&tmp);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("{}: cannot create", tmp.display()))?;
    let guard = RemoveOnDrop(Some(tmp.clone()));
    let mut o = Out {
        w: BackupWriter::new(io::BufWriter::with_capacity(1 << 20, file)),
        tmp: &tmp,
        mtime: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        excluded: Vec::new(),
        left_out: Vec::new(),
    };
    let mut archives = Vec::new();
    let mut ha_size = 0u64;
    for part in &plan.parts {
        progress(&format!("writing {}", part.member()));
        let stats = write_part(card, &spool, &plan, &overrides, part, enc, &mut o)?;
        if matches!(part, Part::HomeAssistant) {
            ha_size = stats.stored_bytes;
        }
        archives.push(stats);
    }
    let slug = slug(&date, &name);
    let addons: Vec<Value> = plan
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Addon(a) => {
                Some(json!({"slug": a.slug, "name": a.name, "version": a.version, "size": 0.0}))
            }
            _ => None,
        })
        .collect();
    let folders: Vec<String> = plan
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Folder(f, _) => Some((*f).to_string()),
            _ => None,
        })
        .collect();
    // Network mounts are not in a backup made here: note them (without credentials) so
    // `backup report` on the backup can list them.
    let mounts = network_mounts(card, &mut plan.problems);
    let meta = backup_json(
        card,
        &plan,
        &Head {
            slug: &slug,
            name: &name,
            date: &date,
            addons: &addons,
            folders: &folders,
            mounts: &mounts,
            ha_size,
            protected: enc.is_some(),
        },
    )?;
    let Out {
        mut w,
        mut excluded,
        left_out: walk_left_out,
        mtime,
        ..
    } = o;
    let meta_bytes = serde_json::to_vec(&meta).context("encoding backup.json")?;
    w.append_bytes("./backup.json", &meta_bytes, mtime)
        .with_context(|| format!("{}: writing backup.json", tmp.display()))?;
    let buf = w
        .finish()
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    let file = buf
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", tmp.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    let output_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    super::extract::replace(&tmp, out, opts.force)?;
    std::mem::forget(guard);
    drop(spool);

    // ---- what a restore will not bring back
    let Plan {
        kind,
        with_ha,
        ha_version,
        supervisor_version,
        mut left_out,
        mut notes,
        problems,
        ..
    } = plan;
    left_out.extend(walk_left_out);
    excluded.sort_by(|a, b| (&a.archive, &a.path).cmp(&(&b.archive, &b.path)));
    notes.push(
        "add-on images are not in the backup: Supervisor downloads each add-on again while \
         restoring (this needs the internet)"
            .into(),
    );
    if !mounts.is_empty() {
        left_out.push(LeftOut {
            item: "network storage".into(),
            reason: format!(
                "Supervisor's network mounts ({}) are not restored with a backup: add them \
                 again (`lifeboat backup report` lists them)",
                mounts
                    .iter()
                    .filter_map(|m| m.get("name").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    if with_ha {
        left_out.push(LeftOut {
            item: "homeassistant: homeassistant.json".into(),
            reason: "Supervisor's Core settings (port, SSL, watchdog, audio) are not included: \
                     the new system keeps its own"
                .into(),
        });
    }
    if let Some(e) = enc
        && e.key.version() == Version::V3
    {
        notes.push("SecureTar v3: restoring needs Supervisor ≥ 2026.02.3 (HA OS) or Home Assistant Core ≥ 2026.3".into());
    }
    for p in problems {
        notes.push(p);
    }

    let mut report = CreateReport {
        source: card.what.clone(),
        partition: card.partition,
        output: out.display().to_string(),
        output_bytes,
        slug,
        name,
        date,
        kind,
        protected: enc.is_some(),
        encryption: enc.map(|e| e.key.version()),
        homeassistant_version: ha_version.filter(|_| with_ha),
        supervisor_version,
        archives,
        addons,
        folders,
        database,
        excluded,
        left_out,
        notes,
        verification: None,
    };

    // ---- read it back
    if opts.verify {
        progress("reading the new backup back (backup check)");
        let pw = enc.map(|e| e.password.clone());
        let c = super::check::check_file(out, pw, super::check::Limits::default())?;
        report.verification = Some(Verification {
            verdict: c.verdict,
            findings: c
                .findings
                .iter()
                .filter(|f| f.level != validate::Level::Info)
                .map(|f| match &f.archive {
                    Some(a) => format!("{a}: {}", f.message),
                    None => f.message.clone(),
                })
                .collect(),
        });
    }
    Ok(report)
}

struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_as_supervisor_makes_them() {
        // From the fixture builder (Python hashlib): sha1(lower("<date> - <name>"))[:8].
        assert_eq!(
            slug(
                "2026-02-14T21:03:07.512347+00:00",
                "Pre-upgrade full backup"
            ),
            "a519c354"
        );
    }

    #[test]
    fn names_home_assistant_refuses() {
        for bad in ["", " ", ".", "..", "a/b", "a\\b", "C:x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("Recovered by lifeboat 2026-11-20 04:45").unwrap();
    }

    #[test]
    fn addon_metadata_completeness() {
        let user = json!({"version": "6.5.1", "boot": "manual"});
        let system = json!({"name": "Mosquitto broker", "version": "6.5.1", "slug": "mosquitto",
            "description": "MQTT", "arch": ["aarch64"], "repository": "core"});
        assert!(addon_metadata_gaps(Some(&user), Some(&system)).is_empty());
        let j = addon_json(&user, &system);
        assert_eq!(j["state"], "stopped");
        assert_eq!(j["version"], "6.5.1");
        assert_eq!(j["system"]["slug"], "mosquitto");
        let gaps = addon_metadata_gaps(Some(&json!({"boot": "auto"})), None);
        assert_eq!(
            gaps,
            vec!["user.version", "the system entry (the add-on's manifest)"]
        );
        let mut s2 = system.clone();
        s2.as_object_mut().unwrap().remove("arch");
        s2["version"] = json!("not a version");
        assert_eq!(
            addon_metadata_gaps(Some(&user), Some(&s2)),
            vec!["system.version", "system.arch"]
        );
    }

    #[test]
    fn selection_words() {
        assert!(names(
            "addons",
            &Part::Addon(Box::new(AddonPlan {
                slug: "x".into(),
                name: "X".into(),
                version: "1".into(),
                addon_json: Value::Null,
                excludes: vec![],
            }))
        ));
        assert!(names(
            "folders",
            &Part::Folder("ssl", b"/supervisor/ssl".to_vec())
        ));
        assert!(names(
            &canon("addons_local"),
            &Part::Folder("addons/local", vec![])
        ));
        assert!(!names("share", &Part::HomeAssistant));
        assert_eq!(
            Part::Folder("addons/local", vec![]).member(),
            "addons_local.tar.gz"
        );
    }
}

//! An opened backup file: the outer tar's members, the metadata member Home Assistant would
//! find (exactly `./backup.json`, or the legacy `./snapshot.json`), its parsed JSON, and the
//! inner archives. `check`, `extract` and `decrypt` all start here.

use super::meta::{self, BackupSummary};
use super::tarscan::{self, Member, MemberKind};
use crate::io::{FileReader, ReadAt};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;

/// Outer tars with more members than this are not backups.
pub const MAX_MEMBERS: usize = 4096;

/// How the metadata member was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaName {
    /// `./backup.json`, what Supervisor and Core look for.
    Exact,
    /// `./snapshot.json`: pre-2021 Supervisor backups; Supervisor still reads it, Core does not.
    LegacySnapshot,
    /// Spelled differently (`backup.json` without `./`, …): Home Assistant will not find it.
    Misspelled(String),
}

/// An opened backup.
pub struct Backup {
    /// The path as given, for messages.
    pub what: String,
    pub src: Box<dyn ReadAt + Send + Sync>,
    pub members: Vec<Member>,
    /// The metadata member, how it was named, and its JSON (None: missing or unreadable).
    pub meta_member: Option<(Member, MetaName)>,
    pub meta: Option<Value>,
    /// Why the metadata could not be parsed, if it could not.
    pub meta_error: Option<String>,
}

fn meta_name(name: &str) -> Option<MetaName> {
    match name {
        "./backup.json" => Some(MetaName::Exact),
        "./snapshot.json" => Some(MetaName::LegacySnapshot),
        n if matches!(tarscan::normalise(n), "backup.json" | "snapshot.json") => {
            Some(MetaName::Misspelled(n.to_string()))
        }
        _ => None,
    }
}

/// Is this outer member an inner archive (a `.tar` or `.tar.gz` file)?
pub fn is_inner_archive(m: &Member) -> bool {
    let n = tarscan::normalise(&m.name);
    m.kind == MemberKind::File
        && !n.contains('/')
        && (n.ends_with(".tar.gz") || n.ends_with(".tar"))
}

/// The inner archive's name without `./` and extension: `homeassistant`, `core_mosquitto`,
/// `share`, `addons_local`.
pub fn archive_stem(m: &Member) -> &str {
    let n = tarscan::normalise(&m.name);
    n.strip_suffix(".tar.gz")
        .or_else(|| n.strip_suffix(".tar"))
        .unwrap_or(n)
}

impl Backup {
    /// Open a backup file. Errors only when the file cannot be read as a tar at all: an
    /// unreadable file, a compressed outer file, a damaged or truncated header walk.
    pub fn open(path: &Path) -> Result<Backup> {
        let what = path.display().to_string();
        let md = std::fs::metadata(path).with_context(|| format!("{what}: cannot open"))?;
        if md.is_dir() {
            anyhow::bail!("{what}: is a directory, not a backup file");
        }
        let f = std::fs::File::open(path).with_context(|| format!("{what}: cannot open"))?;
        let r = FileReader::new(f, md.len());
        Self::from_reader(Box::new(r), what)
    }

    /// Open a backup from any positional reader (an in-memory buffer, a file on an image).
    pub fn from_reader(src: Box<dyn ReadAt + Send + Sync>, what: String) -> Result<Backup> {
        let mut head = [0u8; 6];
        let n = src.len().min(6) as usize;
        src.read_exact_at(&mut head[..n], 0)
            .with_context(|| format!("{what}: cannot read"))?;
        if n == 0 {
            anyhow::bail!("{what}: empty file, not a backup");
        }
        if let Some(c) = crate::io::sniff::sniff(&head[..n]) {
            anyhow::bail!(
                "{what}: is {} compressed; Home Assistant backups are plain tar files (Home \
                 Assistant will not read this one either). Unpack it first",
                c.name()
            );
        }
        let members = tarscan::list(&*src, MAX_MEMBERS)
            .map_err(|e| anyhow::anyhow!("{what}: not a readable tar: {e}"))?;
        if members.is_empty() {
            anyhow::bail!("{what}: holds no tar members: not a Home Assistant backup");
        }
        // Python's getmember finds the last member of a name: do the same.
        let meta_member = members
            .iter()
            .rev()
            .filter_map(|m| meta_name(&m.name).map(|k| (m.clone(), k)))
            .min_by_key(|(_, k)| match k {
                MetaName::Exact => 0,
                MetaName::LegacySnapshot => 1,
                MetaName::Misspelled(_) => 2,
            });
        let mut b = Backup {
            what,
            src,
            members,
            meta_member,
            meta: None,
            meta_error: None,
        };
        if let Some((m, _)) = &b.meta_member {
            if m.size > meta::MAX_BACKUP_JSON {
                b.meta_error = Some(format!(
                    "{} is {} bytes: not a real backup.json",
                    m.name, m.size
                ));
            } else {
                match crate::io::read_vec(&*b.src, m.data_offset, m.size as usize) {
                    Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                        Ok(v) => b.meta = Some(v),
                        Err(e) => b.meta_error = Some(format!("{} is not valid JSON: {e}", m.name)),
                    },
                    Err(e) => b.meta_error = Some(format!("reading {}: {e}", m.name)),
                }
            }
        }
        Ok(b)
    }

    /// The backup.json summary, as `list` and `inspect` show it.
    pub fn summary(&self) -> Option<BackupSummary> {
        let v = self.meta.as_ref()?;
        let bytes = serde_json::to_vec(v).ok()?;
        let mut s = meta::summarise(&bytes).ok()?;
        s.size = self.src.len();
        let protected = self.protected();
        s.encryption = self
            .inner_archives()
            .first()
            .and_then(|m| super::inner::layers_of(self.reader(), m, protected).ok()?.1);
        s.members = self
            .members
            .iter()
            .filter(|m| m.kind == MemberKind::File && meta_name(&m.name).is_none())
            .map(|m| tarscan::normalise(&m.name).to_string())
            .collect();
        if let Some((m, MetaName::Misspelled(_))) = &self.meta_member {
            s.problems.push(format!(
                "metadata member is named '{}', Home Assistant looks for exactly './backup.json'",
                m.name
            ));
        }
        Some(s)
    }

    /// The metadata JSON, or an error saying why there is none.
    pub fn require_meta(&self) -> Result<&Value> {
        match (&self.meta, &self.meta_member) {
            (Some(v), _) => Ok(v),
            (None, None) => anyhow::bail!(
                "{}: no ./backup.json inside: not a Home Assistant backup",
                self.what
            ),
            (None, Some(_)) => anyhow::bail!(
                "{}: {}",
                self.what,
                self.meta_error
                    .as_deref()
                    .unwrap_or("backup.json unreadable")
            ),
        }
    }

    /// `protected` as Home Assistant reads it (a legacy non-bool value means true).
    pub fn protected(&self) -> bool {
        match self.meta.as_ref().and_then(|v| v.get("protected")) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Null) | None => false,
            Some(_) => true,
        }
    }

    /// `compressed` (default true).
    pub fn compressed(&self) -> bool {
        self.meta
            .as_ref()
            .and_then(|v| v.get("compressed"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The inner archives (members ending in `.tar.gz` or `.tar`), in archive order; for a
    /// name stored twice, the last copy (the one Python's tarfile would pick).
    pub fn inner_archives(&self) -> Vec<&Member> {
        let mut out: Vec<&Member> = Vec::new();
        for m in self.members.iter().filter(|m| is_inner_archive(m)) {
            let n = tarscan::normalise(&m.name);
            if let Some(i) = out.iter().position(|o| tarscan::normalise(&o.name) == n) {
                out[i] = m;
            } else {
                out.push(m);
            }
        }
        out
    }

    /// The reader, as the `Sync` trait object the stream pipeline takes.
    pub fn reader(&self) -> &(dyn ReadAt + Sync) {
        &*self.src
    }
}

//! The data partition of a Home Assistant OS card, disk or image, opened for the recovery
//! commands (`backup create`, `rescue`, `report`): found by its role (labels `hassos-data`,
//! `-dis`, `-old`, `-fail`, or an external data disk), or given on its own (an image of just
//! that partition, or `/dev/sdb8`), and read through ext4-view without mounting. Also the small
//! ext4 helpers those commands share: reading a file whole or as a stream, listing a
//! directory in name order, and the Supervisor's JSON state.

use crate::fs::FsKind;
use crate::haos::data::{self, DataContents};
use crate::haos::layout::{Role, Verdict};
use crate::io::source::OwnedWindow;
use anyhow::{Context, Result, bail};
use ext4_view::{Ext4, Ext4Error, FileType, Metadata};
use serde_json::Value;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// Supervisor's JSON state files and config files the report reads are small.
pub const MAX_SMALL_FILE: u64 = 64 << 20;

/// An opened data partition.
pub struct Card {
    /// The source as the user named it, for messages.
    pub what: String,
    pub fs: Ext4,
    /// Partition number on the disk (None: the source is the partition itself).
    pub partition: Option<u32>,
    /// Filesystem label (`hassos-data`, `hassos-data-old`, …).
    pub label: Option<String>,
    /// Supervisor state, config dir and backups, as `inspect` reads them.
    pub contents: DataContents,
    /// When the source is a block device: why it is in use (mounted…); empty otherwise.
    pub in_use: Vec<String>,
    /// The data partition's bytes (shareable across threads, unlike `fs`).
    pub window: OwnedWindow,
}

impl Card {
    /// `what: /path` for messages about a path on the data partition.
    pub fn name(&self, path: &[u8]) -> String {
        format!("{}: {}", self.what, String::from_utf8_lossy(path))
    }
}

/// Open the data partition of the disk or image at `path` (or the partition itself).
pub fn open(path: &Path) -> Result<Card> {
    let what = path.display().to_string();
    let src = crate::io::source::open(path)?;
    let rep = crate::haos::inspect(&src, crate::haos::Depth::Quick)?;
    let reader: Arc<dyn crate::io::ReadAt + Send + Sync> = src.reader();
    let (window, partition, label) = if rep.verdict == Verdict::NotHaos {
        // A single partition given on its own (an image of it, or /dev/sdb8).
        match crate::fs::probe(src.read_at()) {
            Ok(Some(f))
                if matches!(f.kind, FsKind::Ext { .. })
                    && f.label
                        .as_deref()
                        .is_some_and(|l| l.starts_with("hassos-data")) =>
            {
                (OwnedWindow::new(reader, 0, src.size), None, f.label)
            }
            _ => bail!(
                "{what}: not a Home Assistant OS disk, image or data partition{}",
                if rep.reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", rep.reasons.join("; "))
                }
            ),
        }
    } else {
        let p = rep
            .partitions
            .iter()
            .find(|p| matches!(p.role, Some(Role::Data) | Some(Role::DataExternal)))
            .with_context(|| format!("{what}: the disk has no data partition (hassos-data)"))?;
        if p.fs.as_ref().is_none_or(|f| f.fs_type != "ext4") {
            bail!(
                "{what}: the data partition p{} holds no ext4 filesystem (wiped or damaged?)",
                p.part.number
            );
        }
        (
            OwnedWindow::new(reader, p.start_bytes, p.size_bytes),
            Some(p.part.number),
            p.fs.as_ref().and_then(|f| f.info.label.clone()),
        )
    };
    let fs = data::open(
        window.clone(),
        &match partition {
            Some(n) => format!("{what}: data partition p{n}"),
            None => what.clone(),
        },
    )?;
    if !is_dir(&fs, b"/supervisor") {
        bail!(
            "{what}: the data partition has no /supervisor directory: Home Assistant has not \
             run from it yet, or it was wiped"
        );
    }
    let contents = data::read_contents(&fs);
    let in_use = if src.kind == crate::io::source::SourceKind::BlockDevice {
        crate::cmd::inspect::in_use_reasons(path)
    } else {
        Vec::new()
    };
    Ok(Card {
        what,
        fs,
        partition,
        label,
        contents,
        in_use,
        window,
    })
}

/// Metadata of `path` without following a final symlink; None when it does not exist.
pub fn lstat(fs: &Ext4, path: &[u8]) -> Result<Option<Metadata>, Ext4Error> {
    match fs.symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(Ext4Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// True when `path` is a directory (not a symlink to one).
pub fn is_dir(fs: &Ext4, path: &[u8]) -> bool {
    matches!(lstat(fs, path), Ok(Some(m)) if m.is_dir())
}

/// True when `path` is a regular file.
pub fn is_file(fs: &Ext4, path: &[u8]) -> bool {
    matches!(lstat(fs, path), Ok(Some(m)) if m.file_type().is_regular_file())
}

/// One directory entry, as [`list_dir`] returns them.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub name: Vec<u8>,
    pub kind: FileType,
}

/// The entries of a directory (without `.` and `..`) in byte order of their names. A damaged
/// entry is an error naming the directory.
pub fn list_dir(fs: &Ext4, path: &[u8]) -> Result<Vec<DirItem>, Ext4Error> {
    let mut out = Vec::new();
    for e in fs.read_dir(path)? {
        let e = e?;
        let name = e.file_name().as_ref().to_vec();
        if name == b"." || name == b".." {
            continue;
        }
        out.push(DirItem {
            name,
            kind: e.file_type()?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `dir/name` as bytes (`name` when `dir` is empty).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() && !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A small regular file whole: None when missing (or not a regular file); an error when it is
/// larger than `max` or unreadable.
pub fn read_small(fs: &Ext4, path: &[u8], max: u64) -> Result<Option<Vec<u8>>> {
    let p = String::from_utf8_lossy(path);
    match lstat(fs, path) {
        Ok(Some(m)) if m.file_type().is_regular_file() => {
            if m.len() > max {
                bail!("{p}: {} bytes, more than the {max} expected", m.len());
            }
            let mut r = Ext4Reader::open(fs, path).with_context(|| format!("{p}: cannot open"))?;
            let mut v = Vec::with_capacity(m.len() as usize);
            r.read_to_end(&mut v)
                .with_context(|| format!("{p}: cannot read"))?;
            Ok(Some(v))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{p}: {e}")),
    }
}

/// A Supervisor JSON state file; None when missing; problems are recorded, not raised.
pub fn read_json(fs: &Ext4, path: &[u8], problems: &mut Vec<String>) -> Option<Value> {
    match read_small(fs, path, MAX_SMALL_FILE) {
        Ok(Some(b)) => match serde_json::from_slice(&b) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!(
                    "{}: not valid JSON ({e})",
                    String::from_utf8_lossy(path)
                ));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    }
}

/// A file on the data partition as a sequential reader that checks it delivers exactly the
/// length its inode records.
pub struct Ext4Reader {
    file: ext4_view::File,
    len: u64,
    got: u64,
}

impl Ext4Reader {
    pub fn open(fs: &Ext4, path: &[u8]) -> Result<Self, Ext4Error> {
        let file = fs.open(path)?;
        let len = file.metadata().len();
        Ok(Self { file, len, got: 0 })
    }
    /// The length the inode records.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for Ext4Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .file
            .read_bytes(buf)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.got += n as u64;
        if n == 0 && !buf.is_empty() && self.got < self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("ended after {} of {} bytes", self.got, self.len),
            ));
        }
        Ok(n)
    }
}

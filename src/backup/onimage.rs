//! A backup still on an HAOS disk, image or data partition: `backup check|extract|decrypt
//! IMAGE --slug SLUG` read it in place through ext4-view, without copying it off first.
//! [`find`] picks the backup by slug, file name or path (what `backup list` shows);
//! [`open`] gives a [`Backup`] over it.
//!
//! ext4-view's filesystem handle is single-threaded (`Rc`), while extraction reads a backup
//! from several threads, so one thread opens the filesystem and the file and serves
//! positional reads for the others ([`Ext4Source`], a [`ReadAt`] any thread can use).

use super::archive::Backup;
use super::card::{self, Card};
use crate::haos::data::{self, FoundBackup};
use crate::io::ReadAt;
use crate::io::source::OwnedWindow;
use anyhow::{Context, Result, bail};
use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// One positional read for the filesystem thread.
struct Req {
    offset: u64,
    len: usize,
    reply: mpsc::SyncSender<io::Result<Vec<u8>>>,
}

/// A file on an ext4 data partition, readable at any offset from any thread.
pub struct Ext4Source {
    tx: Option<mpsc::Sender<Req>>,
    len: u64,
    worker: Option<JoinHandle<()>>,
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what.to_string())
}

/// Read `len` bytes at `offset` of `f` (whose inode records `size` bytes).
fn read_file_at(
    f: &mut ext4_view::File,
    size: u64,
    offset: u64,
    len: usize,
) -> io::Result<Vec<u8>> {
    if offset.checked_add(len as u64).is_none_or(|e| e > size) {
        return Err(eof("read past the end of the file"));
    }
    let io = |e: ext4_view::Ext4Error| io::Error::other(e.to_string());
    f.seek_to(offset).map_err(io)?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_bytes(&mut buf[got..]).map_err(io)?;
        if n == 0 {
            return Err(eof(
                "the file ends before the length its inode records (damaged filesystem)",
            ));
        }
        got += n;
    }
    Ok(buf)
}

impl Ext4Source {
    /// Open `path` on the ext4 filesystem in `window` (`what` names it in messages).
    pub fn open(window: OwnedWindow, what: &str, path: &str) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Req>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<u64, String>>(1);
        let (what_t, path_t) = (what.to_string(), path.to_string());
        let worker = std::thread::Builder::new()
            .name("ext4-read".into())
            .spawn(move || {
                let fs = match data::open(window, &what_t) {
                    Ok(fs) => fs,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                let mut f = match fs.open(path_t.as_str()) {
                    Ok(f) if f.metadata().file_type().is_regular_file() => f,
                    Ok(_) => {
                        let _ = ready_tx.send(Err(format!("{path_t}: not a regular file")));
                        return;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{path_t}: cannot open ({e})")));
                        return;
                    }
                };
                let size = f.metadata().len();
                if ready_tx.send(Ok(size)).is_err() {
                    return;
                }
                while let Ok(r) = rx.recv() {
                    let _ = r.reply.send(read_file_at(&mut f, size, r.offset, r.len));
                }
            })
            .context("cannot start a reader thread")?;
        let len = match ready_rx.recv() {
            Ok(Ok(len)) => len,
            Ok(Err(e)) => {
                let _ = worker.join();
                bail!("{what}: {e}");
            }
            Err(_) => {
                let _ = worker.join();
                bail!("{what}: the filesystem reader stopped unexpectedly");
            }
        };
        Ok(Self {
            tx: Some(tx),
            len,
            worker: Some(worker),
        })
    }
}

impl ReadAt for Ext4Source {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let gone = || io::Error::other("the filesystem reader thread stopped");
        let (reply, answer) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send(Req {
            offset,
            len: buf.len(),
            reply,
        })
        .map_err(|_| gone())?;
        let data = answer.recv().map_err(|_| gone())??;
        buf.copy_from_slice(&data);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

impl Drop for Ext4Source {
    fn drop(&mut self) {
        self.tx = None; // ends the thread's loop
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How the backups on the card are listed in messages: `slug (name, date)`.
fn describe(backups: &[FoundBackup]) -> String {
    backups
        .iter()
        .map(|b| {
            let slug = b
                .backup
                .as_ref()
                .and_then(|s| s.slug.clone())
                .unwrap_or_else(|| file_name(&b.path).trim_end_matches(".tar").to_string());
            match &b.backup {
                Some(s) => format!(
                    "{slug} ({}, {})",
                    s.name.as_deref().unwrap_or("no name"),
                    s.date.as_deref().unwrap_or("no date")
                ),
                None => format!("{slug} ({})", b.path),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The backup on the card that `wanted` names: its slug, its file name (with or without
/// `.tar`), its path on the data partition, or else its name in `backup.json` when only one
/// backup has that name.
pub fn find<'a>(c: &'a Card, wanted: &str) -> Result<&'a FoundBackup> {
    let backups = &c.contents.backups;
    if backups.is_empty() {
        bail!(
            "{}: the data partition holds no backups (looked in /supervisor/backup and \
             /supervisor/core/backup)",
            c.what
        );
    }
    let by_file: Vec<&FoundBackup> = backups
        .iter()
        .filter(|b| {
            let f = file_name(&b.path);
            b.path == wanted
                || b.path.trim_start_matches('/') == wanted.trim_start_matches('/')
                || f == wanted
                || f.strip_suffix(".tar") == Some(wanted)
        })
        .collect();
    let by_slug: Vec<&FoundBackup> = backups
        .iter()
        .filter(|b| b.backup.as_ref().and_then(|s| s.slug.as_deref()) == Some(wanted))
        .collect();
    let by_name: Vec<&FoundBackup> = backups
        .iter()
        .filter(|b| b.backup.as_ref().and_then(|s| s.name.as_deref()) == Some(wanted))
        .collect();
    for set in [by_file, by_slug, by_name] {
        match set.len() {
            0 => continue,
            1 => return Ok(set[0]),
            _ => bail!(
                "{}: '{wanted}' names {} backups ({}); give a path on the data partition, \
                 e.g. {}",
                c.what,
                set.len(),
                set.iter()
                    .map(|b| b.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                set[0].path
            ),
        }
    }
    bail!(
        "{}: no backup '{wanted}' on the data partition; it holds: {}",
        c.what,
        describe(backups)
    )
}

/// Open the backup `wanted` names on the HAOS disk, image, device or data partition at
/// `source`, read in place. The backup is named `SOURCE:PATH` in messages and reports.
/// Also returns why the source is in use (a mounted device: files may change while read).
pub fn open(source: &Path, wanted: &str) -> Result<(Backup, Vec<String>)> {
    let c = card::open(source)?;
    let fb = find(&c, wanted)?;
    let what = format!("{}:{}", c.what, fb.path);
    let src = Ext4Source::open(c.window.clone(), &c.what, &fb.path)?;
    Ok((Backup::from_reader(Box::new(src), what)?, c.in_use.clone()))
}

/// Why a source without `--slug` was refused, when it is a disk or image holding backups:
/// the sentence tells which slugs to pick from. None when `source` is not an HAOS disk,
/// image or data partition (then it is treated as a backup file).
pub fn needs_slug(source: &Path) -> Option<String> {
    let c = card::open(source).ok()?;
    Some(if c.contents.backups.is_empty() {
        format!(
            "{}: is a Home Assistant OS disk or image, and its data partition holds no backups",
            c.what
        )
    } else {
        format!(
            "{}: is a Home Assistant OS disk or image; name one of its backups with --slug \
             (it holds: {})",
            c.what,
            describe(&c.contents.backups)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_source_reports_open_errors() {
        let v: std::sync::Arc<dyn ReadAt + Send + Sync> = std::sync::Arc::new(vec![0u8; 8192]);
        let w = OwnedWindow::new(v, 0, 8192);
        let e = Ext4Source::open(w, "zeros.img", "/x").err().unwrap();
        assert!(format!("{e:#}").starts_with("zeros.img"), "{e:#}");
    }
}

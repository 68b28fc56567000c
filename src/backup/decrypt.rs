//! `backup decrypt`: the same backup without encryption, still restorable by Home Assistant.
//! Every outer member is copied in order under its exact name; encrypted inner archives are
//! replaced by their plaintext (`.tar.gz` bytes unchanged; SecureTar v1's broken gzip trailer
//! repaired), and `backup.json` gets `protected: false` (and `crypto: null`). The output holds
//! secrets in the clear, so it is created 0600, through a temporary name and a rename.

use super::archive::{self, Backup};
use super::gzip;
use super::inner::{self, Section};
use super::password::Password;
use super::securetar::{self, KeyRing, Kind, Version};
use super::tarscan::{self, MemberKind};
use super::writer::BackupWriter;
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::path::Path;

/// One inner archive in the output.
#[derive(Debug, Clone, Serialize)]
pub struct DecryptedArchive {
    pub name: String,
    /// SecureTar version it had (null: it was not encrypted).
    pub encryption: Option<Version>,
    /// Bytes stored in the input and in the output.
    pub stored_bytes: u64,
    pub output_bytes: u64,
}

/// The result of `decrypt`.
#[derive(Debug, Clone, Serialize)]
pub struct DecryptReport {
    pub path: String,
    pub output: String,
    /// False when the backup was not encrypted (the output is then a plain copy).
    pub was_protected: bool,
    pub archives: Vec<DecryptedArchive>,
}

/// backup.json with `protected: false` and no `crypto` marker.
pub fn unprotect_json(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("protected".into(), Value::Bool(false));
        if o.contains_key("crypto") {
            o.insert("crypto".into(), Value::Null);
        }
    }
    v
}

/// Write the decrypted copy of `b` to `out`.
pub fn decrypt(
    b: &Backup,
    out: &Path,
    password: Option<Password>,
    force: bool,
) -> Result<DecryptReport> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = b.require_meta()?;
    if out.symlink_metadata().is_ok() && !force {
        anyhow::bail!("{}: exists; add --force to replace it", out.display());
    }
    let protected = b.protected();
    let mut encrypted = Vec::new();
    for m in b.inner_archives() {
        let (kind, enc) = inner::layers_of(b.reader(), m, protected)
            .with_context(|| format!("{}: {}", b.what, m.name))?;
        if !protected && kind == Kind::Unknown {
            anyhow::bail!(
                "{}: {}: is neither gzip nor tar (damaged?)",
                b.what,
                tarscan::normalise(&m.name)
            );
        }
        encrypted.push((m.data_offset, enc));
    }
    let first_enc = encrypted.iter().find_map(|(_, e)| *e);
    let mut keys = None;
    if let Some(v) = first_enc {
        let Some(pw) = password else {
            anyhow::bail!(
                "{}: is password-protected (SecureTar {v}); give --password-file FILE or \
                 --emergency-kit FILE, set LIFEBOAT_BACKUP_PASSWORD, or run on a terminal to be asked",
                b.what
            );
        };
        keys = Some(KeyRing::new(pw));
    }
    let tmp = super::extract::tmp_name(out, "tmp");
    let _ = std::fs::remove_file(&tmp);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("{}: cannot create", tmp.display()))?;
    let guard = RemoveOnDrop(Some(tmp.clone()));
    let mut w = BackupWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let mut report = DecryptReport {
        path: b.what.clone(),
        output: out.display().to_string(),
        was_protected: protected,
        archives: Vec::new(),
    };
    let meta_bytes = serde_json::to_vec(&unprotect_json(meta)).context("encoding backup.json")?;
    for m in &b.members {
        let name = m.name.as_str();
        let ctx = || format!("{}: {}", b.what, tarscan::normalise(name));
        match m.kind {
            MemberKind::Dir => w.append_dir(name, m.mode, m.mtime).with_context(ctx)?,
            MemberKind::File => {
                let is_meta = b
                    .meta_member
                    .as_ref()
                    .is_some_and(|(mm, _)| mm.data_offset == m.data_offset);
                if is_meta {
                    w.append_bytes(name, &meta_bytes, m.mtime)
                        .with_context(ctx)?;
                    continue;
                }
                let enc = encrypted
                    .iter()
                    .find(|(off, _)| *off == m.data_offset)
                    .and_then(|(_, e)| *e)
                    .filter(|_| archive::is_inner_archive(m));
                let out_bytes = match (enc, keys.as_mut()) {
                    (Some(v), Some(ring)) => {
                        let sec = Section::member(b.reader(), m);
                        let mut r = securetar::Reader::new(sec, m.size, ring)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", ctx()))?;
                        let failed = |e: io::Error| {
                            anyhow::anyhow!("{}: {}", ctx(), super::check::describe_read_error(&e))
                        };
                        if v == Version::V1 {
                            // v1 has no size and a broken gzip trailer: peek, then repair.
                            let mut head = [0u8; 3];
                            r.read_exact(&mut head).map_err(failed)?;
                            let gz = head == [0x1f, 0x8b, 0x08];
                            let mut chained = io::Cursor::new(head).chain(r);
                            w.append_unsized(name, m.mtime, |o| {
                                if gz {
                                    gzip::repair_v1(&mut chained, &mut WriteRef(o)).map(|_| ())
                                } else {
                                    io::copy(&mut chained, &mut WriteRef(o)).map(|_| ())
                                }
                            })
                            .map_err(failed)?
                        } else {
                            w.append_unsized(name, m.mtime, |o| {
                                io::copy(&mut r, &mut WriteRef(o)).map(|_| ())
                            })
                            .map_err(failed)?
                        }
                    }
                    _ => {
                        w.append_reader(name, m.size, Section::member(b.reader(), m), m.mtime)
                            .with_context(ctx)?;
                        m.size
                    }
                };
                if archive::is_inner_archive(m) {
                    report.archives.push(DecryptedArchive {
                        name: tarscan::normalise(name).to_string(),
                        encryption: enc,
                        stored_bytes: m.size,
                        output_bytes: out_bytes,
                    });
                }
            }
            _ => {
                // Links and other types never occur in real outer tars; keep them verbatim.
                w.append_reader(name, 0, io::empty(), m.mtime)
                    .with_context(ctx)?;
            }
        }
    }
    let buf = w
        .finish()
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    let file = buf
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", tmp.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    drop(file);
    super::extract::replace(&tmp, out, force)?;
    std::mem::forget(guard);
    Ok(report)
}

struct WriteRef<'a>(&'a mut dyn Write);

impl Write for WriteRef<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

struct RemoveOnDrop(Option<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

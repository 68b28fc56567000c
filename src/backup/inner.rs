//! The inner archives of a backup as streams: a member's bytes ([`Section`]), decrypted when
//! it is SecureTar, un-gzipped, and walked as a tar ([`walk`]) — the one pipeline `check`,
//! `extract` and `decrypt` share. Also the path rules: what an inner member name means once
//! normalised, and which names are unsafe ([`safe_path`]).

use super::gzip::GzipReader;
use super::securetar::{self, Header, KeyRing, Kind, Version};
use super::tarscan::Member;
use crate::io::ReadAt;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A byte range of a [`ReadAt`] source as a sequential reader.
pub struct Section<'a> {
    src: &'a (dyn ReadAt + Sync),
    pos: u64,
    end: u64,
}

impl<'a> Section<'a> {
    pub fn new(src: &'a (dyn ReadAt + Sync), start: u64, len: u64) -> Self {
        Self {
            src,
            pos: start,
            end: start.saturating_add(len),
        }
    }
    /// The body of an outer-tar member.
    pub fn member(src: &'a (dyn ReadAt + Sync), m: &Member) -> Self {
        Self::new(src, m.data_offset, m.size)
    }
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.end - self.pos) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.src.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Counts the bytes passing through a reader (shared, so it can be read after the reader
/// moved into a pipeline).
pub struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Counted<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Self {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How an inner archive is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// SecureTar version, if encrypted.
    pub encryption: Option<Version>,
    /// SecureTar header, if encrypted.
    pub header: Option<Header>,
    /// Whether the (decrypted) data is gzip.
    pub gzip: bool,
}

/// Why an inner archive could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("is encrypted (SecureTar {0}) but no password was given")]
    NeedPassword(Version),
    #[error(
        "is not encrypted, not gzip and not a tar: damaged, or encrypted while backup.json says it is not protected"
    )]
    Unrecognised,
    #[error("{0}")]
    SecureTar(#[from] securetar::SecureTarError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Look at the first bytes of a member: how it is stored. `protected` says whether
/// backup.json marks the backup as protected (then bytes without magic are SecureTar v1).
pub fn layers_of(
    src: &(dyn ReadAt + Sync),
    m: &Member,
    protected: bool,
) -> io::Result<(Kind, Option<Version>)> {
    let n = m.size.min(512) as usize;
    let mut head = vec![0u8; n];
    src.read_exact_at(&mut head, m.data_offset)?;
    let kind = securetar::sniff(&head);
    let enc = match kind {
        Kind::SecureTar(v) => Some(v),
        Kind::Unknown if protected => Some(Version::V1),
        _ => None,
    };
    Ok((kind, enc))
}

/// The decrypted (but still compressed) bytes of an inner archive, and its layers.
pub fn open_decrypted<'a>(
    src: &'a (dyn ReadAt + Sync),
    m: &Member,
    protected: bool,
    keys: Option<&mut KeyRing>,
) -> Result<(Box<dyn Read + Send + 'a>, Layers), OpenError> {
    let (kind, enc) = layers_of(src, m, protected)?;
    let sec = Section::member(src, m);
    match enc {
        None => match kind {
            Kind::Gzip => Ok((
                Box::new(sec),
                Layers {
                    encryption: None,
                    header: None,
                    gzip: true,
                },
            )),
            Kind::Tar => Ok((
                Box::new(sec),
                Layers {
                    encryption: None,
                    header: None,
                    gzip: false,
                },
            )),
            _ => Err(OpenError::Unrecognised),
        },
        Some(v) => {
            let Some(keys) = keys else {
                return Err(OpenError::NeedPassword(v));
            };
            let mut r = securetar::Reader::new(sec, m.size, keys)?;
            // Peek at the first plaintext bytes to tell gzip from tar.
            let mut head = [0u8; 512];
            let mut got = 0;
            while got < head.len() {
                let n = r.read(&mut head[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let gzip = securetar::sniff(&head[..got]) == Kind::Gzip;
            let header = Some(r.header().clone());
            let chained = io::Cursor::new(head[..got].to_vec()).chain(r);
            Ok((
                Box::new(chained),
                Layers {
                    encryption: Some(v),
                    header,
                    gzip,
                },
            ))
        }
    }
}

/// The tar stream of an inner archive: un-gzipped (leniently for v1) if gzip.
pub fn tar_stream<'a>(
    plain: Box<dyn Read + Send + 'a>,
    layers: &Layers,
) -> Box<dyn Read + Send + 'a> {
    if !layers.gzip {
        return plain;
    }
    tar_stream_buffered(BufReader::with_capacity(256 << 10, plain), layers)
}

/// [`tar_stream`] over a source that is already buffered (e.g. a [`super::pipe::PipeReader`]).
pub fn tar_stream_buffered<'a, R: BufRead + Send + 'a>(
    src: R,
    layers: &Layers,
) -> Box<dyn Read + Send + 'a> {
    if !layers.gzip {
        Box::new(src)
    } else if layers.encryption == Some(Version::V1) {
        Box::new(GzipReader::lenient(src))
    } else {
        Box::new(GzipReader::strict(src))
    }
}

/// Member types of an inner tar, as far as extraction cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    /// Character/block device, FIFO.
    Special,
    /// Anything else (GNU sparse, volume labels…).
    Other(u8),
}

/// One inner-tar member, headers resolved (long names, pax).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name as stored.
    pub raw_name: String,
    pub kind: EntryKind,
    pub size: u64,
    pub mode: u32,
    pub mtime: u64,
    /// Numeric owner and group from the header (pax `uid`/`gid` when present).
    pub uid: u64,
    pub gid: u64,
    pub link: Option<String>,
}

/// What is wrong with a member name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    Absolute,
    Escapes,
    Empty,
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unsafe::Absolute => "absolute path",
            Unsafe::Escapes => "path climbs out of the archive with '..'",
            Unsafe::Empty => "empty name",
        })
    }
}

/// Normalise a member name to its components inside the archive root: `.` and empty parts
/// dropped, `..` folded. Absolute names and names that climb out are unsafe. The root itself
/// (`.`) is an empty list.
pub fn safe_path(name: &str) -> Result<Vec<String>, Unsafe> {
    if name.is_empty() {
        return Err(Unsafe::Empty);
    }
    if name.starts_with('/') {
        return Err(Unsafe::Absolute);
    }
    let mut parts: Vec<String> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Unsafe::Escapes);
                }
            }
            c => parts.push(c.to_string()),
        }
    }
    Ok(parts)
}

/// Walk every member of a tar stream to its end, calling `f` with each entry and its body
/// (which `f` may read or leave; what is left is skipped). After the end-of-archive marker
/// the rest of the stream is drained, so decryption and gzip checks cover every byte.
/// Returns the number of members.
pub fn walk(
    stream: Box<dyn Read + Send + '_>,
    max_entries: u64,
    mut f: impl FnMut(&Entry, &mut dyn Read) -> io::Result<()>,
) -> io::Result<u64> {
    let mut ar = tar::Archive::new(stream);
    let mut count = 0u64;
    {
        let entries = ar.entries()?;
        for e in entries {
            let mut e = e?;
            count += 1;
            if count > max_entries {
                return Err(io::Error::other(format!(
                    "more than {max_entries} members: refusing to go on (an archive bomb?)"
                )));
            }
            let h = e.header();
            let t = h.entry_type();
            let kind = match t {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink,
                tar::EntryType::Link => EntryKind::HardLink,
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    EntryKind::Special
                }
                other => EntryKind::Other(other.as_byte()),
            };
            let entry = Entry {
                raw_name: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                kind,
                size: e.size(),
                mode: h.mode().unwrap_or(0o644),
                mtime: h.mtime().unwrap_or(0),
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                link: e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned()),
            };
            let size = entry.size;
            let mut counted = (&mut e).take(size);
            f(&entry, &mut counted)?;
            // Skip what the visitor did not read, and make sure the body was all there.
            io::copy(&mut counted, &mut io::sink())?;
            if counted.limit() > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "member '{}' is cut short: {} of {} bytes (truncated archive)",
                        entry.raw_name,
                        size - counted.limit(),
                        size
                    ),
                ));
            }
        }
    }
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink())?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths() {
        assert_eq!(safe_path("./data/a").unwrap(), vec!["data", "a"]);
        assert_eq!(safe_path(".").unwrap(), Vec::<String>::new());
        assert_eq!(safe_path("data//x/./y/").unwrap(), vec!["data", "x", "y"]);
        assert_eq!(safe_path("data/../x").unwrap(), vec!["x"]);
        assert_eq!(safe_path("/etc/passwd"), Err(Unsafe::Absolute));
        assert_eq!(safe_path("../x"), Err(Unsafe::Escapes));
        assert_eq!(safe_path("data/../../x"), Err(Unsafe::Escapes));
        assert_eq!(safe_path(""), Err(Unsafe::Empty));
    }

    #[test]
    fn walk_reads_and_skips_bodies() {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in [("a", &b"hello"[..]), ("b/c", &b"world!"[..])] {
            let mut h = tar::Header::new_ustar();
            h.set_size(d.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, n, d).unwrap();
        }
        let t = b.into_inner().unwrap();
        let mut seen = Vec::new();
        let n = walk(Box::new(&t[..]), 10, |e, body| {
            if e.raw_name == "a" {
                let mut s = String::new();
                body.read_to_string(&mut s)?;
                seen.push(s);
            }
            seen.push(format!("{} {} {:o}", e.raw_name, e.size, e.mode));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(seen, vec!["hello", "a 5 600", "b/c 6 600"]);
        assert!(walk(Box::new(&t[..]), 1, |_, _| Ok(())).is_err());
    }
}

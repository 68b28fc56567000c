//! Opening an image for a sequential read: raw, zstd, gzip (one or many members) or xz,
//! recognised by magic bytes (never by name), decompressed on the fly. The bytes of the file as
//! stored are hashed while they are read, so a publisher's SHA-256 of the `.img.xz` can be
//! checked in the same pass as the image's own hash.

use crate::io::sniff::{self, Container};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Hash and byte count of the stored (possibly compressed) file, shared with the tee.
#[derive(Default)]
struct Stored {
    hash: Sha256,
    bytes: u64,
}

/// A reader that hashes everything it passes on.
struct Tee {
    inner: File,
    stored: Arc<Mutex<Stored>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut s) = self.stored.lock() {
            s.hash.update(&buf[..n]);
            s.bytes += n as u64;
        }
        Ok(n)
    }
}

/// An image opened for one sequential pass.
pub struct ImageInput {
    pub path: PathBuf,
    /// `raw`, `zstd`, `gzip` or `xz`.
    pub format: &'static str,
    /// Bytes of the file as stored.
    pub file_bytes: u64,
    reader: Box<dyn Read + Send>,
    stored: Arc<Mutex<Stored>>,
}

impl ImageInput {
    /// Open `path` and pick a decoder from its first bytes.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot access (does it exist?)", path.display()))?;
        if !meta.is_file() {
            bail!(
                "{}: is not a regular file (give an image file)",
                path.display()
            );
        }
        let mut f = File::open(path)
            .with_context(|| format!("{}: cannot open the image", path.display()))?;
        let mut head = [0u8; 512];
        let mut got = 0;
        while got < head.len() {
            let n = f
                .read(&mut head[got..])
                .with_context(|| format!("{}: cannot read", path.display()))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        f.seek(SeekFrom::Start(0))
            .with_context(|| format!("{}: cannot seek", path.display()))?;
        let stored = Arc::new(Mutex::new(Stored::default()));
        let tee = BufReader::with_capacity(
            1 << 20,
            Tee {
                inner: f,
                stored: Arc::clone(&stored),
            },
        );
        let (format, reader): (&'static str, Box<dyn Read + Send>) = match sniff::sniff(
            &head[..got],
        ) {
            None => ("raw", Box::new(tee)),
            Some(Container::Zstd) => (
                "zstd",
                Box::new(
                    zstd::stream::read::Decoder::with_buffer(tee)
                        .with_context(|| format!("{}: cannot start zstd", path.display()))?,
                ),
            ),
            Some(Container::Gzip) => ("gzip", Box::new(flate2::read::MultiGzDecoder::new(tee))),
            Some(Container::Xz) => ("xz", Box::new(lzma_rust2::XzReader::new(tee, true))),
            Some(c) => bail!(
                "{}: is a {}; lifeboat reads raw, .zst, .gz and .xz images (unpack it first: {})",
                path.display(),
                c.name(),
                c.how_to_unpack(&path.display().to_string())
            ),
        };
        Ok(ImageInput {
            path: path.to_path_buf(),
            format,
            file_bytes: meta.len(),
            reader,
            stored,
        })
    }

    /// Read until `buf` is full or the image ends; returns the bytes read.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{}: cannot read the {} image",
                            self.path.display(),
                            self.format
                        )
                    });
                }
            }
        }
        Ok(got)
    }

    /// SHA-256 (hex) of the whole stored file, after the image was read to its end: the
    /// bytes the decoder did not consume (padding after the last frame) are hashed too.
    pub fn stored_sha256(&self) -> Result<String> {
        let mut s = self
            .stored
            .lock()
            .map_err(|_| anyhow::anyhow!("{}: hash state lost", self.path.display()))?;
        let mut f = File::open(&self.path)
            .with_context(|| format!("{}: cannot reopen", self.path.display()))?;
        f.seek(SeekFrom::Start(s.bytes))
            .with_context(|| format!("{}: cannot seek", self.path.display()))?;
        let mut h = s.hash.clone();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("{}: cannot read", self.path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        s.bytes = self.file_bytes;
        Ok(super::bmap::hex(&h.finalize()))
    }
}

//! Opening an image for a sequential read: raw, zstd, gzip (one or many members), xz, bzip2
//! (one or many streams) or a zip archive holding exactly one file (stored or deflated),
//! recognised by magic bytes (never by name), decompressed on the fly (an `.xz` written in
//! blocks, as HAOS releases are, on one thread per core). The bytes of the file as stored are
//! hashed while they are read, so a publisher's SHA-256 of the download can be checked in the
//! same pass as the image's own hash (a block-parallel `.xz` reads its index first: its stored
//! hash takes a second pass over the compressed file). `flash` can turn that hashing off and
//! skip over unmapped ranges (a seek on raw images).

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
    /// Hashing turned off ([`ImageInput::set_hash_stored`]): `bytes` still counts.
    off: bool,
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
            if !s.off {
                s.hash.update(&buf[..n]);
            }
            s.bytes += n as u64;
        }
        Ok(n)
    }
}

impl Seek for Tee {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// An image opened for one sequential pass.
pub struct ImageInput {
    pub path: PathBuf,
    /// `raw`, `zstd`, `gzip`, `xz`, `bzip2` or `zip`.
    pub format: &'static str,
    /// Bytes of the file as stored.
    pub file_bytes: u64,
    /// For a zip archive: the name of the image inside it.
    pub inner_name: Option<String>,
    reader: Src,
    stored: Arc<Mutex<Stored>>,
    /// Bytes of the image skipped with a seek (raw only): the stored hash is then incomplete.
    seeked: bool,
}

/// The decoded byte stream: a raw file can seek forward, the others are read and dropped.
enum Src {
    Raw(BufReader<Tee>),
    Stream(Box<dyn Read + Send>),
}

impl Src {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Src::Raw(r) => r.read(buf),
            Src::Stream(r) => r.read(buf),
        }
    }
}

/// The decoder of an `.xz` file. One written in several blocks (`xz -T0`, as HAOS releases
/// are) is decoded by one thread per core, from its block index; its stored bytes then do not
/// pass through the tee (the decoder reads the index first, then the blocks), and
/// [`ImageInput::stored_sha256`] hashes the file in a pass of its own. Only a single stream
/// whose blocks each decode to at most [`XZ_MT_MAX_BLOCK`] is given to the parallel decoder
/// (it holds whole blocks in memory: a crafted block of zeros could be gigabytes); anything
/// else, or a damaged file (no readable index), is decoded as one stream through the tee,
/// which reports where it breaks.
fn xz_reader(path: &Path, tee: BufReader<Tee>) -> Box<dyn Read + Send> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8) as u32;
    if workers > 1
        && let Ok(mut f) = File::open(path)
        && let Some(blocks) = read_xz_index(&mut f)
        && blocks.len() > 1
        && blocks.iter().all(|&b| b <= XZ_MT_MAX_BLOCK)
        && f.seek(SeekFrom::Start(0)).is_ok()
        && let Ok(r) = lzma_rust2::XzReaderMt::new(BufReader::new(f), true, workers)
    {
        return Box::new(r);
    }
    Box::new(lzma_rust2::XzReader::new(tee, true))
}

/// Largest block (decoded bytes) the parallel `.xz` decoder is given: `xz -T0` writes blocks
/// of three times the dictionary (12 MiB at `-3`, 192 MiB at `-9e`).
const XZ_MT_MAX_BLOCK: u64 = 256 << 20;

/// The index of a single-stream `.xz` file: read its footer and index.
fn read_xz_index(f: &mut File) -> Option<Vec<u64>> {
    let len = f.metadata().ok()?.len();
    if len < 32 {
        return None;
    }
    let mut footer = [0u8; 12];
    f.seek(SeekFrom::Start(len - 12)).ok()?;
    f.read_exact(&mut footer).ok()?;
    let index_len = xz_backward_size(&footer)?;
    if index_len > (16 << 20) || index_len + 24 > len {
        return None;
    }
    let mut index = vec![0u8; index_len as usize];
    f.seek(SeekFrom::Start(len - 12 - index_len)).ok()?;
    f.read_exact(&mut index).ok()?;
    xz_index_blocks(&index, len)
}

/// The size of the index a stream footer (12 bytes) points back to.
fn xz_backward_size(footer: &[u8]) -> Option<u64> {
    if footer.len() != 12 || &footer[10..12] != b"YZ" {
        return None;
    }
    let v = u32::from_le_bytes(footer[4..8].try_into().ok()?);
    Some((u64::from(v) + 1) * 4)
}

/// Decoded sizes of the blocks an xz index lists, when the index is well formed (indicator,
/// record count, records, padding, CRC-32) and its blocks, with a 12-byte stream header and
/// footer, make up exactly `file_len` bytes (one stream, nothing else).
fn xz_index_blocks(index: &[u8], file_len: u64) -> Option<Vec<u64>> {
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..9 {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    if index.len() < 8 || index[0] != 0 {
        return None;
    }
    let body = index.len() - 4;
    let crc = u32::from_le_bytes(index[body..].try_into().ok()?);
    if crc32fast::hash(&index[..body]) != crc {
        return None;
    }
    let mut at = 1usize;
    let n = varint(&index[..body], &mut at)?;
    let mut sizes = Vec::new();
    let mut blocks_len = 0u64;
    for _ in 0..n {
        let unpadded = varint(&index[..body], &mut at)?;
        let decoded = varint(&index[..body], &mut at)?;
        blocks_len = blocks_len.checked_add(unpadded.checked_add(3)? / 4 * 4)?;
        sizes.push(decoded);
    }
    if index[at..body].iter().any(|&b| b != 0) || (body - at) > 3 {
        return None;
    }
    let total = blocks_len.checked_add(24 + index.len() as u64)?;
    (total == file_len).then_some(sizes)
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
        let mut inner_name = None;
        let (format, reader): (&'static str, Box<dyn Read + Send>) = match sniff::sniff(
            &head[..got],
        ) {
            None => {
                return Ok(ImageInput {
                    path: path.to_path_buf(),
                    format: "raw",
                    file_bytes: meta.len(),
                    inner_name,
                    reader: Src::Raw(tee),
                    stored,
                    seeked: false,
                });
            }
            Some(Container::Zstd) => (
                "zstd",
                Box::new(
                    zstd::stream::read::Decoder::with_buffer(tee)
                        .with_context(|| format!("{}: cannot start zstd", path.display()))?,
                ),
            ),
            Some(Container::Gzip) => ("gzip", Box::new(flate2::read::MultiGzDecoder::new(tee))),
            Some(Container::Xz) => ("xz", xz_reader(path, tee)),
            Some(Container::Bzip2) => ("bzip2", Box::new(bzip2::read::MultiBzDecoder::new(tee))),
            Some(Container::Zip) => {
                let entry = zip::single_entry(path)?;
                inner_name = Some(entry.name.clone());
                ("zip", zip::entry_reader(tee, &entry, path)?)
            }
            Some(c) => bail!(
                "{}: is a {}; lifeboat reads raw, .zst, .gz, .xz, .bz2 and .zip images (unpack it first: {})",
                path.display(),
                c.name(),
                c.how_to_unpack(&path.display().to_string())
            ),
        };
        Ok(ImageInput {
            path: path.to_path_buf(),
            format,
            file_bytes: meta.len(),
            inner_name,
            reader: Src::Stream(reader),
            stored,
            seeked: false,
        })
    }

    /// An image that is not a file: the bytes `reader` yields, read once in order (used by
    /// `clone`, whose "image" is the source disk streamed by the rescue reader). `path` names
    /// the source in messages; `size` is its length. The stored-file hash is off (there is no
    /// stored file) and `skip` reads and drops.
    pub fn from_reader(path: &Path, size: u64, reader: Box<dyn Read + Send>) -> Self {
        let stored = Arc::new(Mutex::new(Stored {
            off: true,
            ..Stored::default()
        }));
        ImageInput {
            path: path.to_path_buf(),
            format: "device",
            file_bytes: size,
            inner_name: None,
            reader: Src::Stream(reader),
            stored,
            seeked: false,
        }
    }

    /// Stop (or restart) hashing the file as stored; [`Self::stored_sha256`] then fails.
    /// Saves a SHA-256 pass when nobody asks for the stored file's hash.
    pub fn set_hash_stored(&mut self, on: bool) {
        if let Ok(mut s) = self.stored.lock() {
            s.off = !on;
        }
    }

    /// Skip the next `n` bytes of the image: a seek on a raw image, else read and dropped.
    pub fn skip(&mut self, mut n: u64) -> Result<()> {
        if let Src::Raw(r) = &mut self.reader
            && let Ok(k) = i64::try_from(n)
        {
            r.seek_relative(k)
                .with_context(|| format!("{}: cannot seek", self.path.display()))?;
            self.seeked = true;
            return Ok(());
        }
        let mut buf = vec![0u8; (1 << 20).min(n.max(1) as usize)];
        while n > 0 {
            let want = (buf.len() as u64).min(n) as usize;
            let got = self.fill(&mut buf[..want])?;
            if got == 0 {
                break;
            }
            n -= got as u64;
        }
        Ok(())
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
        if s.off || self.seeked {
            bail!(
                "{}: the stored file was not hashed in this pass",
                self.path.display()
            );
        }
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

/// A zip archive holding one image: the central directory (zip64 too) is read to find the one
/// file, its local header to find the data; stored and deflated data are read, the CRC-32 and
/// size are checked at the end. Written for this purpose (one entry, streamed) rather than
/// taken from a general zip library, whose entries borrow the archive.
mod zip {
    use anyhow::{Context, Result, bail};
    use std::fs::File;
    use std::io::{self, Read};
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// The one file inside.
    #[derive(Debug, Clone)]
    pub struct Entry {
        pub name: String,
        pub method: u16,
        pub crc: u32,
        pub compressed: u64,
        pub size: u64,
        pub data_start: u64,
    }

    fn u16le(b: &[u8], at: usize) -> u16 {
        b.get(at..at + 2)
            .map(|x| u16::from_le_bytes([x[0], x[1]]))
            .unwrap_or(0)
    }
    fn u32le(b: &[u8], at: usize) -> u32 {
        b.get(at..at + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .unwrap_or(0)
    }
    fn u64le(b: &[u8], at: usize) -> u64 {
        let mut v = [0u8; 8];
        if let Some(x) = b.get(at..at + 8) {
            v.copy_from_slice(x);
        }
        u64::from_le_bytes(v)
    }

    fn read_at(f: &File, off: u64, len: usize, path: &Path) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, off)
            .with_context(|| format!("{}: cannot read the zip archive at {off}", path.display()))?;
        Ok(b)
    }

    /// Find the single file of the archive; refuse several (naming them), none, encryption,
    /// and compression methods other than stored and deflate.
    pub fn single_entry(path: &Path) -> Result<Entry> {
        let bad =
            |why: &str| anyhow::anyhow!("{}: not a usable zip archive: {why}", path.display());
        let f = File::open(path)
            .with_context(|| format!("{}: cannot open the zip archive", path.display()))?;
        let len = f
            .metadata()
            .with_context(|| format!("{}: cannot stat", path.display()))?
            .len();
        let tail_len = len.min(22 + 65535) as usize;
        let tail_off = len - tail_len as u64;
        let tail = read_at(&f, tail_off, tail_len, path)?;
        let eocd = (0..tail_len.saturating_sub(21))
            .rev()
            .find(|&i| u32le(&tail, i) == 0x0605_4b50)
            .ok_or_else(|| bad("no end of central directory record"))?;
        let mut count = u64::from(u16le(&tail, eocd + 10));
        let mut cd_size = u64::from(u32le(&tail, eocd + 12));
        let mut cd_off = u64::from(u32le(&tail, eocd + 16));
        if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_off == 0xFFFF_FFFF {
            // zip64: the locator sits just before the EOCD record.
            let loc_at = tail_off + eocd as u64;
            if loc_at < 20 {
                return Err(bad("zip64 locator missing"));
            }
            let loc = read_at(&f, loc_at - 20, 20, path)?;
            if u32le(&loc, 0) != 0x0706_4b50 {
                return Err(bad("zip64 locator missing"));
            }
            let z_off = u64le(&loc, 8);
            if z_off.saturating_add(56) > len {
                return Err(bad("zip64 end record outside the file"));
            }
            let z = read_at(&f, z_off, 56, path)?;
            if u32le(&z, 0) != 0x0606_4b50 {
                return Err(bad("zip64 end record has a bad signature"));
            }
            count = u64le(&z, 32);
            cd_size = u64le(&z, 40);
            cd_off = u64le(&z, 48);
        }
        if cd_off.saturating_add(cd_size) > len || cd_size > 64 << 20 {
            return Err(bad("central directory outside the file or too large"));
        }
        let cd = read_at(&f, cd_off, cd_size as usize, path)?;
        let mut files: Vec<Entry> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut at = 0usize;
        for _ in 0..count {
            if u32le(&cd, at) != 0x0201_4b50 {
                return Err(bad("central directory entry has a bad signature"));
            }
            let flags = u16le(&cd, at + 8);
            let method = u16le(&cd, at + 10);
            let crc = u32le(&cd, at + 16);
            let mut compressed = u64::from(u32le(&cd, at + 20));
            let mut size = u64::from(u32le(&cd, at + 24));
            let n = usize::from(u16le(&cd, at + 28));
            let e = usize::from(u16le(&cd, at + 30));
            let c = usize::from(u16le(&cd, at + 32));
            let mut local = u64::from(u32le(&cd, at + 42));
            let name_b = cd
                .get(at + 46..at + 46 + n)
                .ok_or_else(|| bad("truncated central directory"))?;
            let name = String::from_utf8_lossy(name_b).into_owned();
            let extra = cd
                .get(at + 46 + n..at + 46 + n + e)
                .ok_or_else(|| bad("truncated central directory"))?;
            // zip64 extended information: the 0xFFFFFFFF fields, in this order.
            let mut x = 0usize;
            while x + 4 <= extra.len() {
                let id = u16le(extra, x);
                let l = usize::from(u16le(extra, x + 2));
                if id == 0x0001 {
                    let mut p = x + 4;
                    if size == 0xFFFF_FFFF {
                        size = u64le(extra, p);
                        p += 8;
                    }
                    if compressed == 0xFFFF_FFFF {
                        compressed = u64le(extra, p);
                        p += 8;
                    }
                    if local == 0xFFFF_FFFF {
                        local = u64le(extra, p);
                    }
                }
                x += 4 + l;
            }
            at += 46 + n + e + c;
            if name.ends_with('/') {
                continue;
            }
            names.push(name.clone());
            if flags & 1 != 0 {
                bail!(
                    "{}: {name} inside the zip archive is encrypted; unpack it with `unzip` first",
                    path.display()
                );
            }
            files.push(Entry {
                name,
                method,
                crc,
                compressed,
                size,
                data_start: local,
            });
        }
        if files.len() != 1 {
            bail!(
                "{}: the zip archive holds {} files ({}); flash needs exactly one image inside \
                 (unpack it and give the image)",
                path.display(),
                files.len(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
        }
        let mut entry = files.remove(0);
        if entry.method != 0 && entry.method != 8 {
            bail!(
                "{}: {} inside the zip archive uses compression method {} (lifeboat reads \
                 stored and deflate); unpack it with `unzip` first",
                path.display(),
                entry.name,
                entry.method
            );
        }
        let lh = read_at(&f, entry.data_start, 30, path)?;
        if u32le(&lh, 0) != 0x0403_4b50 {
            return Err(bad("local file header has a bad signature"));
        }
        entry.data_start += 30 + u64::from(u16le(&lh, 26)) + u64::from(u16le(&lh, 28));
        if entry.data_start.saturating_add(entry.compressed) > len {
            return Err(bad("file data runs past the end of the archive"));
        }
        Ok(entry)
    }

    /// Checks the CRC-32 and length of what passes through at the end.
    struct Checked<R> {
        inner: R,
        crc: crc32fast::Hasher,
        got: u64,
        entry: Entry,
    }

    impl<R: Read> Read for Checked<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            if n == 0 && !buf.is_empty() {
                let crc = self.crc.clone().finalize();
                if self.got != self.entry.size || crc != self.entry.crc {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} inside the zip archive is damaged: {} bytes with CRC-32 {crc:08x}, \
                             the archive says {} bytes with {:08x}",
                            self.entry.name, self.got, self.entry.size, self.entry.crc
                        ),
                    ));
                }
                return Ok(0);
            }
            self.crc.update(&buf[..n]);
            self.got += n as u64;
            Ok(n)
        }
    }

    /// The decoded entry, read through `r` (the archive from its first byte, hashed as
    /// stored): the bytes before the data are read and dropped.
    pub fn entry_reader<R: Read + Send + 'static>(
        mut r: R,
        entry: &Entry,
        path: &Path,
    ) -> Result<Box<dyn Read + Send>> {
        io::copy(&mut (&mut r).take(entry.data_start), &mut io::sink())
            .with_context(|| format!("{}: cannot read the zip archive", path.display()))?;
        let data = r.take(entry.compressed);
        Ok(match entry.method {
            0 => Box::new(Checked {
                inner: data,
                crc: crc32fast::Hasher::new(),
                got: 0,
                entry: entry.clone(),
            }),
            _ => Box::new(Checked {
                inner: flate2::read::DeflateDecoder::new(data),
                crc: crc32fast::Hasher::new(),
                got: 0,
                entry: entry.clone(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data() -> Vec<u8> {
        (0..300_000u32).map(|i| (i * 7 / 3) as u8).collect()
    }

    fn read_all(p: &Path) -> Result<(String, Vec<u8>)> {
        let mut i = ImageInput::open(p)?;
        let mut v = vec![0u8; 1 << 20];
        let n = i.fill(&mut v)?;
        v.truncate(n);
        Ok((i.format.to_string(), v))
    }

    /// A zip archive with the given (name, method, data) entries, written by hand.
    fn zip(files: &[(&str, u16, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, method, d) in files {
            let body = if *method == 8 {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
                e.write_all(d).unwrap();
                e.finish().unwrap()
            } else {
                d.to_vec()
            };
            let crc = crc32fast::hash(d);
            let off = out.len() as u32;
            let mut common = Vec::new();
            common.extend_from_slice(&20u16.to_le_bytes()); // version needed
            common.extend_from_slice(&0u16.to_le_bytes()); // flags
            common.extend_from_slice(&method.to_le_bytes());
            common.extend_from_slice(&[0; 4]); // time, date
            common.extend_from_slice(&crc.to_le_bytes());
            common.extend_from_slice(&(body.len() as u32).to_le_bytes());
            common.extend_from_slice(&(d.len() as u32).to_le_bytes());
            common.extend_from_slice(&(name.len() as u16).to_le_bytes());
            common.extend_from_slice(&0u16.to_le_bytes()); // extra
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&common);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);
            cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            cd.extend_from_slice(&20u16.to_le_bytes()); // made by
            cd.extend_from_slice(&common);
            cd.extend_from_slice(&[0; 6]); // comment len, disk, internal attrs
            cd.extend_from_slice(&[0; 4]); // external attrs
            cd.extend_from_slice(&off.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        let cd_off = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let n = files.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn bzip2_and_zip_inputs() {
        let d = tempfile::tempdir().unwrap();
        let want = data();
        let bz = d.path().join("x.bz2");
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&want).unwrap();
        let mut two = e.finish().unwrap();
        // Two streams back to back (pbzip2 writes those) read as one.
        let again = two.clone();
        two.extend_from_slice(&again);
        std::fs::write(&bz, &two).unwrap();
        let (f, got) = read_all(&bz).unwrap();
        assert_eq!(f, "bzip2");
        assert_eq!(got.len(), 2 * want.len());
        assert_eq!(&got[..want.len()], &want[..]);

        for method in [0u16, 8] {
            let z = d.path().join(format!("x{method}.zip"));
            std::fs::write(&z, zip(&[("dir/", 0, b""), ("card.img", method, &want)])).unwrap();
            let i = ImageInput::open(&z).unwrap();
            assert_eq!(i.inner_name.as_deref(), Some("card.img"));
            let (f, got) = read_all(&z).unwrap();
            assert_eq!(f, "zip");
            assert_eq!(got, want);
        }

        let z = d.path().join("two.zip");
        std::fs::write(&z, zip(&[("a.img", 0, b"aa"), ("b.txt", 0, b"bb")])).unwrap();
        let e = ImageInput::open(&z).err().unwrap().to_string();
        assert!(e.contains("2 files") && e.contains("a.img, b.txt"), "{e}");

        // A flipped byte in stored data: the CRC-32 catches it at the end.
        let mut bytes = zip(&[("card.img", 0, &want)]);
        bytes[30 + 8 + 1000] ^= 1;
        let z = d.path().join("bad.zip");
        std::fs::write(&z, bytes).unwrap();
        let e = format!("{:#}", read_all(&z).err().unwrap());
        assert!(e.contains("damaged"), "{e}");

        // Not a zip at all past its magic: an error, no panic.
        let z = d.path().join("junk.zip");
        std::fs::write(&z, b"PK\x03\x04junk").unwrap();
        assert!(ImageInput::open(&z).is_err());
    }

    #[test]
    fn skip_seeks_raw_images() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.img");
        let want = data();
        std::fs::write(&p, &want).unwrap();
        let mut i = ImageInput::open(&p).unwrap();
        i.set_hash_stored(false);
        let mut b = [0u8; 10];
        i.fill(&mut b).unwrap();
        i.skip(100_000).unwrap();
        i.fill(&mut b).unwrap();
        assert_eq!(&b[..], &want[100_010..100_020]);
        assert!(i.stored_sha256().is_err());
    }

    #[test]
    fn xz_in_blocks_decodes_on_several_threads_and_hashes_the_stored_file() {
        if std::process::Command::new("xz")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped xz_in_blocks: no xz command (apt-get install xz-utils)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        // 5 MiB of mixed bytes, compressed in 1 MiB blocks as `xz -T0` does in 12 MiB ones.
        let want: Vec<u8> = (0..5u32 << 20)
            .map(|i| {
                (i.wrapping_mul(2_654_435_761) >> 13) as u8 & if i % 3 == 0 { 0xff } else { 7 }
            })
            .collect();
        let raw = d.path().join("x.img");
        std::fs::write(&raw, &want).unwrap();
        let st = std::process::Command::new("xz")
            .args(["-3", "-T2", "--block-size=1MiB", "-k"])
            .arg(&raw)
            .status()
            .unwrap();
        assert!(st.success());
        let xz = d.path().join("x.img.xz");
        // Five blocks: on a machine with more than one core, xz_reader decodes them in parallel.
        let mt = lzma_rust2::XzReaderMt::new(File::open(&xz).unwrap(), true, 2).unwrap();
        assert_eq!(mt.block_count(), 5);
        drop(mt);
        let idx = read_xz_index(&mut File::open(&xz).unwrap()).unwrap();
        assert_eq!(idx, vec![1 << 20; 5], "five blocks of 1 MiB in the index");
        // Two streams back to back: not one stream, so the one-stream decoder takes it.
        let two = d.path().join("two.img.xz");
        let one = std::fs::read(&xz).unwrap();
        std::fs::write(&two, [one.as_slice(), one.as_slice()].concat()).unwrap();
        assert_eq!(read_xz_index(&mut File::open(&two).unwrap()), None);
        let mut i = ImageInput::open(&two).unwrap();
        let mut n2 = 0usize;
        let mut b2 = vec![0u8; 1 << 20];
        loop {
            let n = i.fill(&mut b2).unwrap();
            n2 += n;
            if n < b2.len() {
                break;
            }
        }
        assert_eq!(n2, 2 * want.len(), "both streams decoded");
        // A flipped index byte: its CRC-32 no longer matches.
        let mut bad = one.clone();
        let at = bad.len() - 12 - 6;
        bad[at] ^= 1;
        let badp = d.path().join("bad.img.xz");
        std::fs::write(&badp, &bad).unwrap();
        assert_eq!(read_xz_index(&mut File::open(&badp).unwrap()), None);
        let mut i = ImageInput::open(&xz).unwrap();
        assert_eq!(i.format, "xz");
        let mut got = Vec::new();
        let mut b = vec![0u8; 777_777];
        loop {
            let n = i.fill(&mut b).unwrap();
            got.extend_from_slice(&b[..n]);
            if n < b.len() {
                break;
            }
        }
        assert!(got == want, "decoded bytes differ");
        let stored = std::fs::read(&xz).unwrap();
        assert_eq!(
            i.stored_sha256().unwrap(),
            crate::verify::bmap::hex(&Sha256::digest(&stored))
        );
        // Cut short: the index is gone, the one-stream decoder says the data ends early.
        std::fs::write(&xz, &stored[..stored.len() / 2]).unwrap();
        let mut i = ImageInput::open(&xz).unwrap();
        let mut err = None;
        for _ in 0..100 {
            match i.fill(&mut b) {
                Ok(n) if n < b.len() => break,
                Ok(_) => {}
                Err(e) => {
                    err = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        assert!(err.is_some(), "a truncated .xz must fail");
    }

    #[test]
    fn xz_index_parser_takes_no_garbage() {
        assert_eq!(
            xz_backward_size(b"0123456789YZ"),
            Some((0x37363534u64 + 1) * 4)
        );
        assert_eq!(xz_backward_size(b"short"), None);
        assert_eq!(xz_index_blocks(&[], 100), None);
        assert_eq!(xz_index_blocks(&[1, 0, 0, 0, 0, 0, 0, 0], 100), None);
        // An index with one record (unpadded 100, decoded 4096), padding and CRC-32.
        let mut idx = vec![0u8, 1, 100, 0x80, 0x20];
        while idx.len() % 4 != 0 {
            idx.push(0);
        }
        let crc = crc32fast::hash(&idx);
        idx.extend_from_slice(&crc.to_le_bytes());
        let file_len = 12 + 100 + idx.len() as u64 + 12;
        assert_eq!(xz_index_blocks(&idx, file_len), Some(vec![4096]));
        assert_eq!(xz_index_blocks(&idx, file_len + 1), None, "trailing bytes");
        // Every cut and every single-byte change is refused or parsed, never a panic.
        for cut in 0..idx.len() {
            let _ = xz_index_blocks(&idx[..cut], file_len);
        }
        for i in 0..idx.len() {
            let mut m = idx.clone();
            m[i] ^= 0xff;
            let _ = xz_index_blocks(&m, file_len);
        }
    }
}

//! Writing the outer backup tar the way Home Assistant reads it: PAX/ustar headers whose name
//! bytes are written as given (so `./backup.json` keeps its `./`, which the `tar` crate would
//! strip), PAX `path`/`size` records for long names and sizes ≥ 8 GiB, two zero blocks and
//! padding to a 10240-byte record at the end. Inner archives can be copied, streamed with a
//! known size, encrypted on the way in ([`BackupWriter::append_encrypted`]), or — when the
//! output is seekable — written with the size patched afterwards ([`BackupWriter::append_unsized`]).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use lifeboat::backup::{password::Password, securetar::{EncryptionKey, Version}, writer::BackupWriter};
//! let key = EncryptionKey::new(&Password::new("ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01"), Version::V3)?;
//! let tar_gz = std::fs::File::open("homeassistant.tar.gz")?;   // gzip(tar) made beforehand
//! let len = tar_gz.metadata()?.len();
//! let mut w = BackupWriter::new(std::fs::File::create("backup.tar")?);
//! w.append_bytes("./backup.json", br#"{"slug":"a1b2c3d4","protected":true}"#, 1_700_000_000)?;
//! w.append_encrypted("homeassistant.tar.gz", len, tar_gz, &key, 1_700_000_000)?;
//! w.finish()?;
//! # Ok(()) }
//! ```

use super::securetar::{self, EncryptionKey};
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Python's tar record size; the archive is padded to a multiple of it.
pub const RECORD: u64 = 10240;
const USTAR_MAX_SIZE: u64 = 0o77777777777;

/// Writes an outer backup tar.
pub struct BackupWriter<W: Write> {
    w: W,
    pos: u64,
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    let b = s.as_bytes();
    // Callers keep values within the field; the least significant digits are kept otherwise.
    let start = b.len().saturating_sub(w);
    field[..w].copy_from_slice(&b[start..]);
    field[w] = 0;
}

/// One 512-byte ustar header (name ≤ 100 bytes, size < 8 GiB).
fn ustar(name: &[u8], size: u64, mode: u32, mtime: u64, typeflag: u8, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], mode as u64 & 0o7777);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size.min(USTAR_MAX_SIZE));
    octal(&mut h[136..148], mtime.min(0o77777777777));
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let cs = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(cs.as_bytes());
    h
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "LEN key=value\n" where LEN counts itself.
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() != base.to_string().len() {
        len = base + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

impl<W: Write> BackupWriter<W> {
    pub fn new(w: W) -> Self {
        Self { w, pos: 0 }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let r = (512 - self.pos % 512) % 512;
        self.put(&vec![0u8; r as usize])
    }

    /// The header(s) of a member: a PAX header first when the name, link or size needs it.
    fn headers(
        &mut self,
        name: &str,
        size: u64,
        mode: u32,
        mtime: u64,
        typeflag: u8,
        link: &str,
    ) -> io::Result<()> {
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax.extend(pax_record("path", name.as_bytes()));
        }
        if link.len() > 100 {
            pax.extend(pax_record("linkpath", link.as_bytes()));
        }
        if size > USTAR_MAX_SIZE {
            pax.extend(pax_record("size", size.to_string().as_bytes()));
        }
        if !pax.is_empty() {
            let short: String = name.chars().filter(|c| c.is_ascii()).take(80).collect();
            let h = ustar(
                format!("PaxHeader/{short}").as_bytes(),
                pax.len() as u64,
                0o644,
                mtime,
                b'x',
                b"",
            );
            self.put(&h)?;
            self.put(&pax)?;
            self.pad()?;
        }
        let h = ustar(
            name.as_bytes(),
            size,
            mode,
            mtime,
            typeflag,
            link.as_bytes(),
        );
        self.put(&h)
    }

    /// A regular file from memory (e.g. `./backup.json`).
    pub fn append_bytes(&mut self, name: &str, data: &[u8], mtime: u64) -> io::Result<()> {
        self.append_reader(name, data.len() as u64, data, mtime)
    }

    /// A regular file of exactly `size` bytes read from `r`.
    pub fn append_reader(
        &mut self,
        name: &str,
        size: u64,
        r: impl Read,
        mtime: u64,
    ) -> io::Result<()> {
        self.headers(name, size, 0o644, mtime, b'0', "")?;
        let copied = io::copy(&mut r.take(size), &mut CountingWrite(self))?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: source ended after {copied} of {size} bytes"),
            ));
        }
        self.pad()
    }

    /// A directory member (old Supervisors wrote a `.` entry).
    pub fn append_dir(&mut self, name: &str, mode: u32, mtime: u64) -> io::Result<()> {
        self.headers(name, 0, mode, mtime, b'5', "")
    }

    /// An inner archive encrypted on the way in: `plaintext_size` bytes of `.tar.gz` from
    /// `r`, stored as SecureTar (`key`'s version). The member size is
    /// [`securetar::encrypted_len`].
    pub fn append_encrypted(
        &mut self,
        name: &str,
        plaintext_size: u64,
        mut r: impl Read,
        key: &EncryptionKey,
        mtime: u64,
    ) -> io::Result<()> {
        let size = securetar::encrypted_len(key.version(), plaintext_size);
        self.headers(name, size, 0o644, mtime, b'0', "")?;
        let n = securetar::encrypt_stream(&mut r, CountingWrite(self), key, plaintext_size)?;
        debug_assert_eq!(n, size);
        self.pad()
    }

    /// End the archive: two zero blocks, padded to a whole record. Returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&[0u8; 1024])?;
        let r = (RECORD - self.pos % RECORD) % RECORD;
        self.put(&vec![0u8; r as usize])?;
        self.w.flush()?;
        Ok(self.w)
    }
}

impl<W: Write + Seek> BackupWriter<W> {
    /// A regular file whose size is known only once written: `f` writes the body, then the
    /// header is patched in place. Names ≤ 100 bytes; sizes < 8 GiB (a ustar header).
    pub fn append_unsized(
        &mut self,
        name: &str,
        mtime: u64,
        f: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        if name.len() > 100 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: name too long"),
            ));
        }
        let at = self.pos;
        self.put(&[0u8; 512])?;
        let start = self.pos;
        f(&mut CountingWrite(self))?;
        let size = self.pos - start;
        if size > USTAR_MAX_SIZE {
            return Err(io::Error::other(format!(
                "{name}: {size} bytes is too large for this writer"
            )));
        }
        let h = ustar(name.as_bytes(), size, 0o644, mtime, b'0', b"");
        self.w.seek(SeekFrom::Start(at))?;
        self.w.write_all(&h)?;
        self.w.seek(SeekFrom::Start(self.pos))?;
        self.pad()?;
        Ok(size)
    }
}

struct CountingWrite<'a, W: Write>(&'a mut BackupWriter<W>);

impl<W: Write> Write for CountingWrite<'_, W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.0.w.write(b)?;
        self.0.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tarscan;
    use super::*;

    #[test]
    fn names_are_kept_exactly_and_tarscan_reads_them() {
        let mut w = BackupWriter::new(io::Cursor::new(Vec::new()));
        w.append_dir(".", 0o755, 1).unwrap();
        w.append_bytes("./backup.json", b"{}", 1).unwrap();
        let long = "x".repeat(150) + ".tar.gz";
        w.append_bytes(&long, &[1u8; 700], 1).unwrap();
        let n = w
            .append_unsized("share.tar.gz", 1, |o| o.write_all(&[2u8; 1000]))
            .unwrap();
        assert_eq!(n, 1000);
        let v = w.finish().unwrap().into_inner();
        assert_eq!(v.len() as u64 % RECORD, 0);
        let m = tarscan::list(&v, 10).unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            vec![".", "./backup.json", long.as_str(), "share.tar.gz"]
        );
        assert_eq!(m[2].size, 700);
        assert_eq!(m[3].size, 1000);
        assert_eq!(v[m[3].data_offset as usize], 2);
        // The tar crate agrees (it normalises names, so compare sizes).
        let mut a = tar::Archive::new(&v[..]);
        let sizes: Vec<u64> = a.entries().unwrap().map(|e| e.unwrap().size()).collect();
        assert_eq!(sizes, vec![0, 2, 700, 1000]);
    }

    #[test]
    fn pax_record_lengths() {
        let r = pax_record("path", b"abc");
        assert_eq!(r, b"12 path=abc\n");
        let v = vec![b'a'; 95];
        let r = pax_record("path", &v);
        assert_eq!(r.len().to_string(), String::from_utf8_lossy(&r[..3]));
    }
}

//! Positional reading over image files, block devices and byte buffers.
//!
//! Everything that parses on-disk structures reads through [`ReadAt`], so the same code
//! works on an image file, a block device or an in-memory fixture. [`Window`] bounds a
//! reader to one partition so a filesystem reader can never stray outside it.

pub mod sniff;
pub mod source;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Random-access, read-only byte source of known length.
pub trait ReadAt {
    /// Fill `buf` from `offset`; fails with `UnexpectedEof` past the end.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// True when the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn eof(offset: u64, want: usize, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {want} bytes at offset {offset} runs past the end ({len} bytes)"),
    )
}

fn check_bounds(offset: u64, want: usize, len: u64) -> io::Result<()> {
    match offset.checked_add(want as u64) {
        Some(end) if end <= len => Ok(()),
        _ => Err(eof(offset, want, len)),
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len() as u64)?;
        let start = offset as usize;
        buf.copy_from_slice(&self[start..start + buf.len()]);
        Ok(())
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
}

/// A file or block device with its length fixed when opened.
#[derive(Debug)]
pub struct FileReader {
    file: File,
    len: u64,
}

impl FileReader {
    /// Wrap an open file whose length is `len` (for devices, from BLKGETSIZE64).
    pub fn new(file: File, len: u64) -> Self {
        Self { file, len }
    }
}

impl ReadAt for FileReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// A bounded view `[start, start+len)` of another reader, clamped to its end.
pub struct Window<'a> {
    inner: &'a dyn ReadAt,
    start: u64,
    len: u64,
}

impl<'a> Window<'a> {
    /// View `len` bytes from `start`; the window is cut short where `inner` ends
    /// (a truncated image), and [`Window::truncated`] says so.
    pub fn new(inner: &'a dyn ReadAt, start: u64, len: u64) -> Self {
        let avail = inner.len().saturating_sub(start);
        Self {
            inner,
            start,
            len: len.min(avail),
        }
    }
    /// Offset of the window in the underlying reader.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl ReadAt for Window<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        self.inner.read_exact_at(buf, self.start + offset)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// Read `len` bytes at `offset` into a new buffer.
pub fn read_vec(r: &dyn ReadAt, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    r.read_exact_at(&mut v, offset)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_and_clamps() {
        let data: Vec<u8> = (0..100u8).collect();
        let w = Window::new(&data, 90, 20);
        assert_eq!(w.len(), 10);
        let mut b = [0u8; 4];
        w.read_exact_at(&mut b, 2).unwrap();
        assert_eq!(b, [92, 93, 94, 95]);
        assert!(w.read_exact_at(&mut b, 8).is_err());
        assert!(w.read_exact_at(&mut b, u64::MAX).is_err());
    }
}

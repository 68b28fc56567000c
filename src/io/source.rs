//! Opening what the user named — an image file or a block device — read-only, with checks
//! that turn the usual mistakes (a directory, a character device, a compressed image, an
//! empty file) into one clear sentence.

use super::sniff::{self, Container};
use super::{FileReader, ReadAt};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What kind of thing a source path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    ImageFile,
    BlockDevice,
}

/// An opened, read-only disk or image.
pub struct Source {
    pub path: PathBuf,
    pub kind: SourceKind,
    /// Length in bytes.
    pub size: u64,
    /// Logical sector size: the device's, or 512 for image files (HAOS images are 512-byte).
    pub sector_size: u32,
    /// Set when the file is a compressed or virtual-disk container rather than a raw image.
    pub container: Option<Container>,
    reader: Arc<FileReader>,
}

impl Source {
    /// The reader, shareable with owned windows (ext4 needs `'static`).
    pub fn reader(&self) -> Arc<FileReader> {
        Arc::clone(&self.reader)
    }
    /// Borrowed reader.
    pub fn read_at(&self) -> &dyn ReadAt {
        &*self.reader
    }
}

/// Open `path` read-only as a disk image or block device.
pub fn open(path: &Path) -> Result<Source> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot access (does it exist?)", path.display()))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        bail!(
            "{}: is a directory; give a disk (e.g. /dev/sdb, /dev/mmcblk0) or an image file",
            path.display()
        );
    }
    if ft.is_char_device() {
        bail!(
            "{}: is a character device, not a block device; give the disk itself (e.g. /dev/sdb)",
            path.display()
        );
    }
    if !(ft.is_file() || ft.is_block_device()) {
        bail!(
            "{}: is neither a regular file nor a block device",
            path.display()
        );
    }
    let mut file = File::open(path).with_context(|| {
        if ft.is_block_device() {
            format!(
                "{}: cannot open the device read-only (reading disks usually needs root: try sudo)",
                path.display()
            )
        } else {
            format!("{}: cannot open the file", path.display())
        }
    })?;
    let (kind, size, sector_size) = if ft.is_block_device() {
        let size = file
            .seek(SeekFrom::End(0))
            .with_context(|| format!("{}: reading the device size", path.display()))?;
        let ss = crate::sys::logical_sector_size(&file)
            .with_context(|| format!("{}: reading the logical sector size", path.display()))?;
        (SourceKind::BlockDevice, size, ss)
    } else {
        (SourceKind::ImageFile, meta.size(), 512)
    };
    if size == 0 {
        bail!(
            "{}: is empty (0 bytes){}",
            path.display(),
            if kind == SourceKind::BlockDevice {
                "; is a card in the reader?"
            } else {
                ""
            }
        );
    }
    let mut head = [0u8; 96];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| {
            let mut got = 0;
            while got < head.len() {
                let n = file.read(&mut head[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            Ok(())
        })
        .with_context(|| format!("{}: reading the first bytes", path.display()))?;
    let container = sniff::sniff(&head);
    Ok(Source {
        path: path.to_path_buf(),
        kind,
        size,
        sector_size,
        container,
        reader: Arc::new(FileReader::new(file, size)),
    })
}

/// An owned window over a shared reader: what `ext4-view` needs (it takes `'static` readers).
#[derive(Clone)]
pub struct OwnedWindow {
    inner: Arc<dyn ReadAt + Send + Sync>,
    start: u64,
    len: u64,
}

impl OwnedWindow {
    /// View `len` bytes from `start`, cut short where `inner` ends.
    pub fn new(inner: Arc<dyn ReadAt + Send + Sync>, start: u64, len: u64) -> Self {
        let avail = inner.len().saturating_sub(start);
        Self {
            inner,
            start,
            len: len.min(avail),
        }
    }
}

impl ReadAt for OwnedWindow {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        super::check_bounds(offset, buf.len(), self.len)?;
        self.inner.read_exact_at(buf, self.start + offset)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

impl ext4_view::Ext4Read for OwnedWindow {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        ReadAt::read_exact_at(self, dst, start_byte).map_err(|e| Box::new(e) as _)
    }
}

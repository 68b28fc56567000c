//! Device numbers: the `major:minor` pair ([`DevNum`]) that ties a `/dev` node, a sysfs
//! `dev` attribute and a mountinfo line to the same kernel device, and `stat` helpers that
//! read it from a path or an open file.

use serde::Serialize;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::str::FromStr;

/// A device number, `major:minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    pub const fn new(major: u32, minor: u32) -> Self {
        DevNum { major, minor }
    }

    /// From a raw `dev_t` (`st_rdev`, `st_dev`).
    pub fn from_raw(dev: u64) -> Self {
        // glibc's encoding; Linux majors fit 12 bits and minors 20, so the casts are lossless.
        DevNum {
            major: nix::sys::stat::major(dev) as u32,
            minor: nix::sys::stat::minor(dev) as u32,
        }
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A `major:minor` string that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a device number (major:minor): {0:?}")]
pub struct BadDevNum(pub String);

impl FromStr for DevNum {
    type Err = BadDevNum;

    /// Parses `8:1` (surrounding whitespace, as in a sysfs `dev` file, is ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDevNum(s.to_string());
        let (ma, mi) = s.trim().split_once(':').ok_or_else(bad)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(ma) || !digits(mi) {
            return Err(bad());
        }
        Ok(DevNum {
            major: ma.parse().map_err(|_| bad())?,
            minor: mi.parse().map_err(|_| bad())?,
        })
    }
}

/// True when `path` (symlinks followed) is a block device node.
pub fn is_block_device(path: &Path) -> io::Result<bool> {
    Ok(std::fs::metadata(path)?.file_type().is_block_device())
}

/// The device number of the block device node at `path` (symlinks followed); an error of
/// kind `InvalidInput` when it is not a block device.
pub fn block_device_number(path: &Path) -> io::Result<DevNum> {
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a block device", path.display()),
        ));
    }
    Ok(DevNum::from_raw(meta.rdev()))
}

/// The device number of an open block device (`fstat` → `st_rdev`), to check that the file
/// opened is the device discovery described (a `/dev` node can be replaced between the two).
pub fn file_device_number(file: &File) -> io::Result<DevNum> {
    let meta = file.metadata()?;
    if !meta.file_type().is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the open file is not a block device",
        ));
    }
    Ok(DevNum::from_raw(meta.rdev()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        assert_eq!("8:1".parse::<DevNum>().unwrap(), DevNum::new(8, 1));
        assert_eq!("259:12\n".parse::<DevNum>().unwrap(), DevNum::new(259, 12));
        assert_eq!(DevNum::new(179, 0).to_string(), "179:0");
        for bad in ["", "8", "8:", ":1", "a:b", "8:1:2", "-1:0", "8 :1"] {
            assert!(bad.parse::<DevNum>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn raw_roundtrip() {
        let raw = nix::sys::stat::makedev(259, 1_000_000);
        assert_eq!(DevNum::from_raw(raw), DevNum::new(259, 1_000_000));
    }

    #[test]
    fn regular_file_is_not_a_block_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(!is_block_device(f.path()).unwrap());
        assert_eq!(
            block_device_number(f.path()).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(file_device_number(f.as_file()).is_err());
        assert!(is_block_device(Path::new("/nonexistent/x")).is_err());
    }
}

//! Block-device ioctls: the raw `nix` declarations (private module `raw`) and the safe
//! wrappers around them, whose `unsafe` blocks are the only ones of the project.
//!
//! Every wrapper takes an open `&File` and returns `io::Result`. On failure the error keeps
//! the errno's [`io::ErrorKind`] and carries an [`IoctlError`] that says which request failed
//! and what the errno means for *that* request (EBUSY from `BLKRRPART` means "device is in
//! use", from `BLKPG` delete it means "partition is in use"), so a caller can print it as it
//! is or downcast it with [`IoctlError::of`] to look at the errno.

use nix::errno::Errno;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

/// The raw requests, as in `<linux/fs.h>` and `<linux/blkpg.h>`.
mod raw {
    use nix::libc::{c_int, c_longlong, c_uint, c_void};

    /// `struct blkpg_ioctl_arg`.
    #[repr(C)]
    pub struct BlkpgIoctlArg {
        pub op: c_int,
        pub flags: c_int,
        pub datalen: c_int,
        pub data: *mut c_void,
    }

    /// `struct blkpg_partition`; `start` and `length` are in bytes.
    #[repr(C)]
    pub struct BlkpgPartition {
        pub start: c_longlong,
        pub length: c_longlong,
        pub pno: c_int,
        pub devname: [u8; 64],
        pub volname: [u8; 64],
    }

    pub const BLKPG_ADD_PARTITION: c_int = 1;
    pub const BLKPG_DEL_PARTITION: c_int = 2;

    // BLKGETSIZE64 is _IOR(0x12, 114, size_t) although the kernel writes a u64: the request
    // number encodes sizeof(size_t), which is 4 on 32-bit ARM boards, so spell it out.
    nix::ioctl_read_bad!(
        blkgetsize64,
        nix::request_code_read!(0x12, 114, std::mem::size_of::<usize>()),
        u64
    );
    nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), c_int);
    nix::ioctl_read_bad!(blkpbszget, nix::request_code_none!(0x12, 123), c_uint);
    nix::ioctl_read_bad!(blkroget, nix::request_code_none!(0x12, 94), c_int);
    nix::ioctl_none_bad!(blkrrpart, nix::request_code_none!(0x12, 95));
    nix::ioctl_none_bad!(blkflsbuf, nix::request_code_none!(0x12, 97));
    nix::ioctl_write_ptr_bad!(blkpg, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);
}

/// A failed block-device ioctl: which request, the errno, and what it means here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{request}: {meaning} ({errno})")]
pub struct IoctlError {
    /// The request name, e.g. `BLKRRPART`.
    pub request: &'static str,
    pub errno: Errno,
    /// Plain words for this errno on this request.
    pub meaning: String,
}

impl IoctlError {
    /// The [`IoctlError`] inside an error returned by this module, if it is one.
    pub fn of(err: &io::Error) -> Option<&IoctlError> {
        err.get_ref()?.downcast_ref::<IoctlError>()
    }
}

fn fail(request: &'static str, errno: Errno, meaning: impl Into<String>) -> io::Error {
    io::Error::new(
        io::Error::from(errno).kind(),
        IoctlError {
            request,
            errno,
            meaning: meaning.into(),
        },
    )
}

/// Meanings shared by every request on a file that may not be a block device.
fn common_meaning(errno: Errno) -> String {
    match errno {
        Errno::ENOTTY => "not a block device (the file does not understand this request)".into(),
        Errno::EBADF => "the file is not open (bad file descriptor)".into(),
        Errno::EACCES | Errno::EPERM => "permission denied (this needs root)".into(),
        Errno::ENXIO | Errno::ENODEV | Errno::ENOMEDIUM => "no device or no medium present".into(),
        Errno::EIO => "input/output error from the device".into(),
        other => other.desc().to_string(),
    }
}

/// Device size in bytes (`BLKGETSIZE64`).
pub fn size_bytes(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: the fd is open for the lifetime of `file`; the kernel writes one u64 to `size`.
    unsafe { raw::blkgetsize64(file.as_raw_fd(), &mut size) }
        .map_err(|e| fail("BLKGETSIZE64", e, common_meaning(e)))?;
    Ok(size)
}

/// Logical sector size in bytes (`BLKSSZGET`): the unit of addressing, 512 or 4096.
pub fn logical_sector_size(file: &File) -> io::Result<u32> {
    let mut v: nix::libc::c_int = 0;
    // SAFETY: the fd is open; the kernel writes one int to `v`.
    unsafe { raw::blksszget(file.as_raw_fd(), &mut v) }
        .map_err(|e| fail("BLKSSZGET", e, common_meaning(e)))?;
    positive_size("BLKSSZGET", i64::from(v))
}

/// Physical sector size in bytes (`BLKPBSZGET`): the device's write unit.
pub fn physical_sector_size(file: &File) -> io::Result<u32> {
    let mut v: nix::libc::c_uint = 0;
    // SAFETY: the fd is open; the kernel writes one unsigned int to `v`.
    unsafe { raw::blkpbszget(file.as_raw_fd(), &mut v) }
        .map_err(|e| fail("BLKPBSZGET", e, common_meaning(e)))?;
    positive_size("BLKPBSZGET", i64::from(v))
}

fn positive_size(request: &'static str, v: i64) -> io::Result<u32> {
    match u32::try_from(v) {
        Ok(n) if n > 0 && n.is_power_of_two() => Ok(n),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{request}: the kernel reported an impossible sector size {v}"),
        )),
    }
}

/// Whether the kernel marks the device read-only (`BLKROGET`), e.g. a locked SD card.
pub fn is_read_only(file: &File) -> io::Result<bool> {
    let mut v: nix::libc::c_int = 0;
    // SAFETY: the fd is open; the kernel writes one int to `v`.
    unsafe { raw::blkroget(file.as_raw_fd(), &mut v) }
        .map_err(|e| fail("BLKROGET", e, common_meaning(e)))?;
    Ok(v != 0)
}

/// Flush the kernel's buffer cache for the device (`BLKFLSBUF`), so later reads come from
/// the medium and not from pages cached before a write through another path.
pub fn flush_buffers(file: &File) -> io::Result<()> {
    // SAFETY: the fd is open; the request takes no argument.
    unsafe { raw::blkflsbuf(file.as_raw_fd()) }
        .map_err(|e| fail("BLKFLSBUF", e, common_meaning(e)))?;
    Ok(())
}

/// What an errno from `BLKRRPART` means (coreos-installer's reading of it).
pub fn rrpart_meaning(errno: Errno) -> String {
    match errno {
        Errno::EBUSY => "device is in use (a partition is mounted, active swap, or held by \
                         another device such as dm or md)"
            .into(),
        Errno::EINVAL => "the device may not support partitions (not a whole disk, or a loop \
                          device without partition scanning)"
            .into(),
        other => common_meaning(other),
    }
}

/// Ask the kernel to re-read the partition table (`BLKRRPART`), once.
///
/// EBUSY means some partition is in use: the kernel refuses to drop partitions that are open.
/// On a kernel without a partition parser for the table (as on the test rig, see
/// `docs/test-rig.md`) this succeeds and creates nothing; use [`add_partition`] there.
pub fn reread_partition_table(file: &File) -> io::Result<()> {
    // SAFETY: the fd is open; the request takes no argument.
    unsafe { raw::blkrrpart(file.as_raw_fd()) }
        .map_err(|e| fail("BLKRRPART", e, rrpart_meaning(e)))?;
    Ok(())
}

/// [`reread_partition_table`], retried while it fails with EBUSY (udev often holds a freshly
/// written disk open for a moment): up to `attempts` tries, `pause` apart. The last error is
/// returned when every try failed.
pub fn reread_partition_table_retrying(
    file: &File,
    attempts: u32,
    pause: Duration,
) -> io::Result<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        match reread_partition_table(file) {
            Err(e)
                if tries < attempts
                    && IoctlError::of(&e).is_some_and(|x| x.errno == Errno::EBUSY) =>
            {
                thread::sleep(pause)
            }
            other => return other,
        }
    }
}

fn blkpg(file: &File, op: nix::libc::c_int, part: &mut raw::BlkpgPartition) -> nix::Result<()> {
    let arg = raw::BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<raw::BlkpgPartition>() as nix::libc::c_int,
        data: (part as *mut raw::BlkpgPartition).cast(),
    };
    // SAFETY: the fd is open; `arg` and the partition it points to live until the call returns,
    // and the kernel only reads them.
    unsafe { raw::blkpg(file.as_raw_fd(), &arg) }.map(|_| ())
}

/// Tell the kernel about partition `number` of the whole disk `file` (`BLKPG_ADD_PARTITION`):
/// `start` and `length` in bytes, multiples of the logical sector size. This is what
/// `partx -a` does, and the way to get partition nodes on a kernel without a parser for the
/// table.
pub fn add_partition(file: &File, number: u32, start: u64, length: u64) -> io::Result<()> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("BLKPG add partition {number}: {what}"),
        )
    };
    let pno = i32::try_from(number).map_err(|_| bad("partition number out of range"))?;
    let start_i = i64::try_from(start).map_err(|_| bad("start out of range"))?;
    let length_i = i64::try_from(length).map_err(|_| bad("length out of range"))?;
    if pno < 1 || length == 0 {
        return Err(bad("partition number must be ≥ 1 and length > 0"));
    }
    let mut part = raw::BlkpgPartition {
        start: start_i,
        length: length_i,
        pno,
        devname: [0; 64],
        volname: [0; 64],
    };
    blkpg(file, raw::BLKPG_ADD_PARTITION, &mut part).map_err(|e| {
        let meaning = match e {
            Errno::EBUSY => {
                format!("partition {number} already exists or overlaps an existing partition")
            }
            Errno::EINVAL => format!(
                "partition {number} (start {start}, length {length} bytes) is not aligned to \
                 the logical sector size, or this is not a whole disk"
            ),
            Errno::ENXIO => {
                format!("partition {number} does not fit on the device, or the number is too high")
            }
            other => common_meaning(other),
        };
        fail("BLKPG add partition", e, meaning)
    })
}

/// Remove partition `number` from the kernel's view of the whole disk `file`
/// (`BLKPG_DEL_PARTITION`); the data on the disk is untouched.
pub fn delete_partition(file: &File, number: u32) -> io::Result<()> {
    let pno = i32::try_from(number).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("BLKPG delete partition {number}: partition number out of range"),
        )
    })?;
    let mut part = raw::BlkpgPartition {
        start: 0,
        length: 0,
        pno,
        devname: [0; 64],
        volname: [0; 64],
    };
    blkpg(file, raw::BLKPG_DEL_PARTITION, &mut part).map_err(|e| {
        let meaning = match e {
            Errno::EBUSY => format!(
                "partition {number} is in use (mounted, active swap, or held by another device)"
            ),
            Errno::ENXIO => format!("partition {number} does not exist"),
            Errno::EINVAL => "this is not a whole disk".to_string(),
            other => common_meaning(other),
        };
        fail("BLKPG delete partition", e, meaning)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_linux_headers() {
        // Values from <linux/fs.h> on x86_64 / aarch64.
        assert_eq!(nix::request_code_none!(0x12, 95), 0x125f); // BLKRRPART
        assert_eq!(nix::request_code_none!(0x12, 104), 0x1268); // BLKSSZGET
        assert_eq!(nix::request_code_none!(0x12, 105), 0x1269); // BLKPG
        assert_eq!(nix::request_code_none!(0x12, 123), 0x127b); // BLKPBSZGET
        assert_eq!(nix::request_code_none!(0x12, 94), 0x125e); // BLKROGET
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            nix::request_code_read!(0x12, 114, std::mem::size_of::<usize>()),
            0x8008_1272 // BLKGETSIZE64
        );
        assert_eq!(
            std::mem::size_of::<raw::BlkpgPartition>(),
            8 + 8 + 4 + 64 + 64 + 4
        );
    }

    #[test]
    fn ioctl_on_a_regular_file_says_not_a_block_device() {
        let f = tempfile::tempfile().unwrap();
        let e = size_bytes(&f).unwrap_err();
        let x = IoctlError::of(&e).unwrap();
        assert_eq!(x.errno, Errno::ENOTTY);
        assert!(e.to_string().contains("not a block device"), "{e}");
        let e = reread_partition_table(&f).unwrap_err();
        assert!(e.to_string().starts_with("BLKRRPART: "), "{e}");
    }

    #[test]
    fn rrpart_ebusy_means_in_use() {
        assert!(rrpart_meaning(Errno::EBUSY).starts_with("device is in use"));
        let e = fail("BLKRRPART", Errno::EBUSY, rrpart_meaning(Errno::EBUSY));
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
        assert_eq!(IoctlError::of(&e).unwrap().errno, Errno::EBUSY);
    }

    #[test]
    fn blkpg_rejects_bad_arguments_before_the_kernel() {
        let f = tempfile::tempfile().unwrap();
        let e = add_partition(&f, 0, 0, 512).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = add_partition(&f, 1, u64::MAX, 512).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}

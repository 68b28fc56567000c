//! SCSI generic pass-through (`SG_IO`) on an open disk (`/dev/sdX` or `/dev/sgN`): the raw
//! `struct sg_io_hdr`, and one safe call, [`sg_io`], that sends a CDB with an optional data
//! transfer and returns the status bytes and sense data for the caller to judge
//! (`health::sat` parses them). Used for ATA PASS-THROUGH to SATA disks behind libata and
//! USB bridges, and for the vendor NVMe-over-USB tunnels.
//!
//! The ioctl returns 0 even when the device answered CHECK CONDITION: the outcome is in the
//! status fields, so [`SgOutcome`] carries them all. ATA PASS-THROUGH is not on the kernel's
//! unprivileged list: it needs CAP_SYS_RAWIO, and EPERM then says so.

use nix::errno::Errno;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

mod raw {
    use nix::libc::{c_int, c_uint, c_ushort, c_void};

    /// `struct sg_io_hdr` from `<scsi/sg.h>`: 88 bytes on 64-bit, 64 on 32-bit ARM.
    #[repr(C)]
    pub struct SgIoHdr {
        pub interface_id: c_int,
        pub dxfer_direction: c_int,
        pub cmd_len: u8,
        pub mx_sb_len: u8,
        pub iovec_count: c_ushort,
        pub dxfer_len: c_uint,
        pub dxferp: *mut c_void,
        pub cmdp: *const u8,
        pub sbp: *mut u8,
        pub timeout: c_uint,
        pub flags: c_uint,
        pub pack_id: c_int,
        pub usr_ptr: *mut c_void,
        pub status: u8,
        pub masked_status: u8,
        pub msg_status: u8,
        pub sb_len_wr: u8,
        pub host_status: c_ushort,
        pub driver_status: c_ushort,
        pub resid: c_int,
        pub duration: c_uint,
        pub info: c_uint,
    }

    #[cfg(target_pointer_width = "64")]
    const _: () = assert!(std::mem::size_of::<SgIoHdr>() == 88);
    #[cfg(target_pointer_width = "32")]
    const _: () = assert!(std::mem::size_of::<SgIoHdr>() == 64);

    pub const SG_DXFER_NONE: c_int = -1;
    pub const SG_DXFER_TO_DEV: c_int = -2;
    pub const SG_DXFER_FROM_DEV: c_int = -3;

    // SG_IO is an old-style request number, not _IOC-encoded.
    nix::ioctl_readwrite_bad!(sg_io, 0x2285, SgIoHdr);
}

/// The data phase of a SCSI command.
#[derive(Debug)]
pub enum DataDir<'a> {
    /// No data (e.g. SMART RETURN STATUS).
    None,
    /// Data from the device into the buffer.
    FromDevice(&'a mut [u8]),
    /// Data from the buffer to the device (only the JMicron NVMe tunnel's command block).
    ToDevice(&'a [u8]),
}

/// What came back from one `SG_IO`, whatever the device said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SgOutcome {
    /// SCSI status: 0 GOOD, 0x02 CHECK CONDITION.
    pub status: u8,
    /// Transport problem when nonzero (DID_* codes).
    pub host_status: u16,
    /// 0x08 DRIVER_SENSE when sense data was returned.
    pub driver_status: u16,
    /// The sense bytes the device wrote.
    pub sense: Vec<u8>,
    /// Bytes of the data phase not transferred.
    pub resid: i32,
    /// `info`: bit 0 set means something other than GOOD happened.
    pub info: u32,
}

/// A failed `SG_IO` call (the ioctl itself, not a device error): errno in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SG_IO: {meaning} ({errno})")]
pub struct SgError {
    pub errno: Errno,
    pub meaning: String,
}

/// What an errno from `SG_IO` means.
pub fn sg_errno_meaning(errno: Errno) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES => {
            "permission denied: ATA pass-through needs root (CAP_SYS_RAWIO)".into()
        }
        Errno::EINVAL | Errno::ENOTTY | Errno::EOPNOTSUPP => {
            "not a SCSI or ATA device (the device does not take SCSI commands)".into()
        }
        Errno::ENODEV | Errno::ENXIO => "the device is gone".into(),
        Errno::EIO => "input/output error".into(),
        other => other.desc().to_string(),
    }
}

/// Send `cdb` (6 to 16 bytes) with the data phase `dir`, waiting at most `timeout_ms`.
/// Returns the raw outcome; errors only when the ioctl itself fails (not a SCSI device,
/// no permission), with an [`SgError`] inside the `io::Error`.
pub fn sg_io(file: &File, cdb: &[u8], dir: DataDir<'_>, timeout_ms: u32) -> io::Result<SgOutcome> {
    if cdb.is_empty() || cdb.len() > 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("SG_IO: a CDB of {} bytes is not valid", cdb.len()),
        ));
    }
    let mut sense = [0u8; 64];
    let (direction, ptr, len): (i32, *mut nix::libc::c_void, usize) = match dir {
        DataDir::None => (raw::SG_DXFER_NONE, std::ptr::null_mut(), 0),
        DataDir::FromDevice(b) => (raw::SG_DXFER_FROM_DEV, b.as_mut_ptr().cast(), b.len()),
        // The kernel only reads a TO_DEV buffer; the field is not const in the C struct.
        DataDir::ToDevice(b) => (raw::SG_DXFER_TO_DEV, b.as_ptr() as *mut _, b.len()),
    };
    let dxfer_len = u32::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "SG_IO: data buffer too large"))?;
    let mut hdr = raw::SgIoHdr {
        interface_id: 'S' as i32,
        dxfer_direction: direction,
        cmd_len: cdb.len() as u8,
        mx_sb_len: sense.len() as u8,
        iovec_count: 0,
        dxfer_len,
        dxferp: ptr,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: the fd is open; `hdr` points at `cdb`, `sense` and the data buffer, which all
    // outlive the call, with their true lengths; the kernel writes at most `mx_sb_len` sense
    // bytes and `dxfer_len` data bytes.
    unsafe { raw::sg_io(file.as_raw_fd(), &mut hdr) }.map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            SgError {
                errno: e,
                meaning: sg_errno_meaning(e),
            },
        )
    })?;
    let n = usize::from(hdr.sb_len_wr).min(sense.len());
    Ok(SgOutcome {
        status: hdr.status,
        host_status: hdr.host_status,
        driver_status: hdr.driver_status,
        sense: sense[..n].to_vec(),
        resid: hdr.resid,
        info: hdr.info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sg_io_on_a_regular_file_is_not_a_scsi_device() {
        let f = tempfile::tempfile().unwrap();
        let mut buf = [0u8; 512];
        let e = sg_io(
            &f,
            &[0x12, 0, 0, 0, 36, 0],
            DataDir::FromDevice(&mut buf),
            1000,
        )
        .unwrap_err();
        let x = e.get_ref().unwrap().downcast_ref::<SgError>().unwrap();
        assert!(matches!(x.errno, Errno::ENOTTY | Errno::EINVAL), "{e}");
        assert!(e.to_string().contains("not a SCSI"), "{e}");
    }

    #[test]
    fn bad_cdb_lengths_are_refused_before_the_kernel() {
        let f = tempfile::tempfile().unwrap();
        assert_eq!(
            sg_io(&f, &[], DataDir::None, 1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            sg_io(&f, &[0u8; 17], DataDir::None, 1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn permission_meaning_names_the_capability() {
        assert!(sg_errno_meaning(Errno::EPERM).contains("CAP_SYS_RAWIO"));
    }
}

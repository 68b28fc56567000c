//! NVMe admin commands (`NVME_IOCTL_ADMIN_CMD`) on an open NVMe controller (`/dev/nvme0`)
//! or namespace (`/dev/nvme0n1`): the raw `struct nvme_passthru_cmd` and one safe call,
//! [`admin`], used for Identify Controller and Get Log Page (SMART/Health).
//!
//! Return semantics (kernel `nvme_execute_rq`): 0 = success, a negative errno = Linux error,
//! a **positive** value = the NVMe status field (SCT<<8 | SC) of a command the drive
//! completed with an error. nix maps every ret ≥ 0 to `Ok`, so the positive case is checked
//! here and reported as [`AdminOutcome::Status`]. Get Log Page needs CAP_SYS_ADMIN.

use nix::errno::Errno;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

mod raw {
    /// `struct nvme_passthru_cmd` (= `nvme_admin_cmd`) from `<linux/nvme_ioctl.h>`: 72 bytes.
    #[repr(C)]
    pub struct NvmePassthruCmd {
        pub opcode: u8,
        pub flags: u8,
        pub rsvd1: u16,
        pub nsid: u32,
        pub cdw2: u32,
        pub cdw3: u32,
        pub metadata: u64,
        pub addr: u64,
        pub metadata_len: u32,
        pub data_len: u32,
        pub cdw10: u32,
        pub cdw11: u32,
        pub cdw12: u32,
        pub cdw13: u32,
        pub cdw14: u32,
        pub cdw15: u32,
        pub timeout_ms: u32,
        pub result: u32,
    }

    const _: () = assert!(std::mem::size_of::<NvmePassthruCmd>() == 72);

    nix::ioctl_readwrite!(nvme_admin_cmd, b'N', 0x41, NvmePassthruCmd);
}

/// One admin command: the fields lifeboat sets. The data buffer is passed separately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdminCmd {
    pub opcode: u8,
    pub nsid: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
}

/// How the drive completed a command the kernel delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    /// Success; `result` is completion-queue DW0.
    Done { result: u32 },
    /// The drive answered with this NVMe status (SCT<<8 | SC), e.g. 0x0002 invalid field,
    /// 0x0109 invalid log page.
    Status(u16),
}

/// A failed `NVME_IOCTL_ADMIN_CMD` (a Linux error, not an NVMe status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NVME_IOCTL_ADMIN_CMD: {meaning} ({errno})")]
pub struct NvmeIoctlError {
    pub errno: Errno,
    pub meaning: String,
}

/// What an errno from the admin ioctl means.
pub fn nvme_errno_meaning(errno: Errno) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES => {
            "permission denied: NVMe log pages need root (CAP_SYS_ADMIN)".into()
        }
        Errno::ENOTTY | Errno::EINVAL => "not an NVMe device".into(),
        Errno::ENODEV | Errno::ENXIO => "the controller is gone or not live".into(),
        Errno::EINTR => "interrupted".into(),
        other => other.desc().to_string(),
    }
}

/// Send one admin command with `buf` as its data-in buffer (empty for none).
pub fn admin(file: &File, cmd: &AdminCmd, buf: &mut [u8]) -> io::Result<AdminOutcome> {
    let data_len = u32::try_from(buf.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NVMe admin: buffer too large"))?;
    let mut c = raw::NvmePassthruCmd {
        opcode: cmd.opcode,
        flags: 0,
        rsvd1: 0,
        nsid: cmd.nsid,
        cdw2: 0,
        cdw3: 0,
        metadata: 0,
        addr: if buf.is_empty() {
            0
        } else {
            buf.as_mut_ptr() as usize as u64
        },
        metadata_len: 0,
        data_len,
        cdw10: cmd.cdw10,
        cdw11: cmd.cdw11,
        cdw12: cmd.cdw12,
        cdw13: cmd.cdw13,
        cdw14: cmd.cdw14,
        cdw15: cmd.cdw15,
        timeout_ms: 0,
        result: 0,
    };
    // SAFETY: the fd is open; `c.addr` points at `buf`, which outlives the call, and
    // `data_len` is its true length, so the kernel writes inside it.
    let ret = unsafe { raw::nvme_admin_cmd(file.as_raw_fd(), &mut c) }.map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            NvmeIoctlError {
                errno: e,
                meaning: nvme_errno_meaning(e),
            },
        )
    })?;
    if ret > 0 {
        return Ok(AdminOutcome::Status((ret & 0x7fff) as u16));
    }
    Ok(AdminOutcome::Done { result: c.result })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_number_matches_the_header() {
        assert_eq!(
            nix::request_code_readwrite!(b'N', 0x41, std::mem::size_of::<raw::NvmePassthruCmd>()),
            0xC048_4E41
        );
    }

    #[test]
    fn admin_on_a_regular_file_is_not_nvme() {
        let f = tempfile::tempfile().unwrap();
        let mut buf = [0u8; 512];
        let e = admin(&f, &AdminCmd::default(), &mut buf).unwrap_err();
        assert!(e.to_string().contains("not an NVMe device"), "{e}");
    }
}

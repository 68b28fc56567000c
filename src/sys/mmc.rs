//! MMC/SD card commands (`MMC_IOC_CMD`, `MMC_IOC_MULTI_CMD`) on an open whole MMC block
//! device (`/dev/mmcblk0`; a partition gives EPERM): the raw `struct mmc_ioc_cmd` and two
//! safe calls, [`mmc_cmd`] and [`mmc_multi_cmd`]. Used for CMD8 SEND_EXT_CSD (eMMC only),
//! ACMD13 SD_STATUS and CMD56 GEN_CMD vendor health (`health::sd`, `health::mmc` decide
//! what may be sent to which card; this module only moves bytes). Needs CAP_SYS_RAWIO.

use nix::errno::Errno;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

mod raw {
    /// `struct mmc_ioc_cmd` from `<linux/mmc/ioctl.h>`: 72 bytes on 32- and 64-bit.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct MmcIocCmd {
        pub write_flag: i32,
        pub is_acmd: i32,
        pub opcode: u32,
        pub arg: u32,
        pub response: [u32; 4],
        pub flags: u32,
        pub blksz: u32,
        pub blocks: u32,
        pub postsleep_min_us: u32,
        pub postsleep_max_us: u32,
        pub data_timeout_ns: u32,
        pub cmd_timeout_ms: u32,
        pub pad: u32,
        pub data_ptr: u64,
    }

    const _: () = assert!(std::mem::size_of::<MmcIocCmd>() == 72);

    nix::ioctl_readwrite!(mmc_ioc_cmd, 0xB3, 0, MmcIocCmd);
    // MMC_IOC_MULTI_CMD encodes the 8-byte header; the argument is header + n commands.
    nix::ioctl_readwrite!(mmc_ioc_multi_cmd, 0xB3, 1, u64);
}

/// Response and command-type flags (kernel `linux/mmc/core.h`, not in uapi).
pub mod flags {
    pub const RSP_PRESENT: u32 = 1 << 0;
    pub const RSP_CRC: u32 = 1 << 2;
    pub const RSP_OPCODE: u32 = 1 << 4;
    pub const CMD_AC: u32 = 0;
    pub const CMD_ADTC: u32 = 1 << 5;
    pub const RSP_SPI_S1: u32 = 1 << 7;
    /// R1 response.
    pub const R1: u32 = RSP_PRESENT | RSP_CRC | RSP_OPCODE;
    /// A data command with an R1 response (CMD8 EXT_CSD, CMD56, ACMD13): 0xB5.
    pub const ADTC_R1: u32 = RSP_SPI_S1 | R1 | CMD_ADTC;
    /// A command without data with an R1 response (CMD55, CMD13): 0x95.
    pub const AC_R1: u32 = RSP_SPI_S1 | R1 | CMD_AC;
}

/// Kernel limit on commands in one `MMC_IOC_MULTI_CMD`.
pub const MAX_MULTI_CMDS: usize = 255;

/// One MMC command as lifeboat sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmcCmd {
    pub opcode: u32,
    pub arg: u32,
    pub flags: u32,
    /// The kernel sends CMD55 first (application command).
    pub is_acmd: bool,
    /// Data goes host → card (the write half of a two-step CMD56). Default: card → host.
    pub write: bool,
    /// Block size of the data phase (0 = no data).
    pub blksz: u32,
    pub blocks: u32,
    /// Pause after the command, in microseconds.
    pub postsleep_us: u32,
}

/// A failed MMC ioctl.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{request}: {meaning} ({errno})")]
pub struct MmcIoctlError {
    pub request: &'static str,
    pub errno: Errno,
    pub meaning: String,
}

/// What an errno from an MMC ioctl means.
pub fn mmc_errno_meaning(errno: Errno) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES => "permission denied: card commands need root \
                                         (CAP_SYS_RAWIO) and the whole device, not a partition"
            .into(),
        Errno::ETIMEDOUT => "the card did not answer (command not supported)".into(),
        Errno::EILSEQ => "CRC error on the card bus".into(),
        Errno::ENOTTY | Errno::EINVAL => "not an MMC/SD block device".into(),
        Errno::ENOMEDIUM | Errno::ENODEV | Errno::ENXIO => "no card present".into(),
        other => other.desc().to_string(),
    }
}

fn fail(request: &'static str, e: Errno) -> io::Error {
    io::Error::new(
        io::Error::from(e).kind(),
        MmcIoctlError {
            request,
            errno: e,
            meaning: mmc_errno_meaning(e),
        },
    )
}

fn to_raw(cmd: &MmcCmd, buf: &mut [u8]) -> io::Result<raw::MmcIocCmd> {
    let need = u64::from(cmd.blksz) * u64::from(cmd.blocks);
    if need != buf.len() as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "MMC CMD{}: buffer of {} bytes for {} × {} bytes of data",
                cmd.opcode,
                buf.len(),
                cmd.blocks,
                cmd.blksz
            ),
        ));
    }
    Ok(raw::MmcIocCmd {
        write_flag: i32::from(cmd.write),
        is_acmd: i32::from(cmd.is_acmd),
        opcode: cmd.opcode,
        arg: cmd.arg,
        flags: cmd.flags,
        blksz: cmd.blksz,
        blocks: cmd.blocks,
        postsleep_min_us: cmd.postsleep_us,
        postsleep_max_us: cmd.postsleep_us,
        data_ptr: if buf.is_empty() {
            0
        } else {
            buf.as_mut_ptr() as usize as u64
        },
        ..Default::default()
    })
}

/// Send one command; `buf` is its data buffer (read into, or written from when
/// `cmd.write`), exactly `blksz × blocks` bytes. Returns the card's response words.
pub fn mmc_cmd(file: &File, cmd: &MmcCmd, buf: &mut [u8]) -> io::Result<[u32; 4]> {
    let mut c = to_raw(cmd, buf)?;
    // SAFETY: the fd is open; `c.data_ptr` points at `buf`, which outlives the call and holds
    // exactly blksz × blocks bytes (checked in `to_raw`).
    unsafe { raw::mmc_ioc_cmd(file.as_raw_fd(), &mut c) }.map_err(|e| fail("MMC_IOC_CMD", e))?;
    Ok(c.response)
}

/// Send several commands back to back with no other I/O in between (`MMC_IOC_MULTI_CMD`),
/// e.g. CMD55+CMD13 or the write-then-read halves of a two-step CMD56. Returns each
/// command's response words.
pub fn mmc_multi_cmd(file: &File, cmds: &mut [(MmcCmd, &mut [u8])]) -> io::Result<Vec<[u32; 4]>> {
    if cmds.is_empty() || cmds.len() > MAX_MULTI_CMDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "MMC_IOC_MULTI_CMD: {} commands (1 to 255 allowed)",
                cmds.len()
            ),
        ));
    }
    let mut raws = Vec::with_capacity(cmds.len());
    for (c, b) in cmds.iter_mut() {
        raws.push(to_raw(c, b)?);
    }
    // The argument is `struct mmc_ioc_multi_cmd`: a u64 count followed by the commands.
    // Build it in u64 words so the header and the 8-byte-aligned commands line up.
    let words = 1 + raws.len() * 9;
    let mut arg: Vec<u64> = vec![0; words];
    arg[0] = raws.len() as u64;
    // SAFETY: `arg` has room for the header and `raws.len()` commands of 72 bytes (9 u64s
    // each); MmcIocCmd is plain data with alignment 8, so copying bytes is sound.
    unsafe {
        std::ptr::copy_nonoverlapping(
            raws.as_ptr().cast::<u8>(),
            arg.as_mut_ptr().add(1).cast::<u8>(),
            raws.len() * std::mem::size_of::<raw::MmcIocCmd>(),
        );
    }
    // SAFETY: the fd is open; `arg` is a valid mmc_ioc_multi_cmd whose data pointers point at
    // the caller's buffers, which outlive the call with the sizes checked above.
    unsafe { raw::mmc_ioc_multi_cmd(file.as_raw_fd(), arg.as_mut_ptr()) }
        .map_err(|e| fail("MMC_IOC_MULTI_CMD", e))?;
    let mut out = Vec::with_capacity(raws.len());
    for i in 0..raws.len() {
        let mut c = raw::MmcIocCmd::default();
        // SAFETY: reading back command i from the same layout written above.
        unsafe {
            std::ptr::copy_nonoverlapping(
                arg.as_ptr().add(1 + i * 9).cast::<u8>(),
                (&mut c as *mut raw::MmcIocCmd).cast::<u8>(),
                std::mem::size_of::<raw::MmcIocCmd>(),
            );
        }
        out.push(c.response);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_and_flags_match_the_reference() {
        assert_eq!(
            nix::request_code_readwrite!(0xB3, 0, std::mem::size_of::<raw::MmcIocCmd>()),
            0xC048_B300
        );
        assert_eq!(nix::request_code_readwrite!(0xB3, 1, 8), 0xC008_B301);
        assert_eq!(flags::ADTC_R1, 0xB5);
        assert_eq!(flags::R1, 0x15);
    }

    #[test]
    fn buffer_size_must_match_the_data_phase() {
        let f = tempfile::tempfile().unwrap();
        let cmd = MmcCmd {
            opcode: 56,
            arg: 1,
            flags: flags::ADTC_R1,
            is_acmd: false,
            write: false,
            blksz: 512,
            blocks: 1,
            postsleep_us: 0,
        };
        let mut small = [0u8; 64];
        let e = mmc_cmd(&f, &cmd, &mut small).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let mut ok = [0u8; 512];
        let e = mmc_cmd(&f, &cmd, &mut ok).unwrap_err();
        assert!(e.to_string().contains("not an MMC/SD"), "{e}");
        let e = mmc_multi_cmd(&f, &mut []).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}

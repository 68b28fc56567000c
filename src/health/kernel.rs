//! Kernel-level health signals that every disk has, whatever its vendor: I/O statistics
//! (`/sys/block/X/stat`), SCSI error counters (`device/ioerr_cnt`, `iotmo_cnt`, hex), the
//! read-only flag, read-only mounts of writable filesystems, ext4's persistent error count
//! and lifetime writes (`/sys/fs/ext4/<part>/`), and MMC host error counters (debugfs
//! `err_stats`, root only), and the kernel log's I/O error lines for the disk (`/dev/kmsg`,
//! on the running system only). Pure parsers for each text format, plus [`gather`], which
//! reads them under a [`SysRoot`] (so tests run on fixture trees). See
//! `docs/storage-health.md` §7.
//!
//! `ioerr_cnt` is reported but not judged: it counts every SCSI command that did not end
//! GOOD, and SMART pass-through (smartctl's and lifeboat's own RETURN STATUS) ends with
//! CHECK CONDITION by design. The kernel log names real I/O errors.

use crate::device::{Disk, SysRoot};
use crate::sys::mountinfo;
use serde::Serialize;
use std::fs;
use std::path::Path;

/// `/sys/block/X/stat`: the fields lifeboat reports (sectors are always 512 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlockStat {
    pub read_ios: u64,
    pub read_sectors: u64,
    pub read_ticks_ms: u64,
    pub write_ios: u64,
    pub write_sectors: u64,
    pub write_ticks_ms: u64,
    pub in_flight: u64,
    pub io_ticks_ms: u64,
}

impl BlockStat {
    /// Average read latency in milliseconds, when there were reads.
    pub fn avg_read_ms(&self) -> Option<f64> {
        (self.read_ios > 0).then(|| self.read_ticks_ms as f64 / self.read_ios as f64)
    }
    pub fn is_zero(&self) -> bool {
        *self == BlockStat::default()
    }
}

/// Parse `stat` (11, 15 or 17 fields depending on the kernel).
pub fn parse_stat(s: &str) -> Option<BlockStat> {
    let f: Vec<u64> = s
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if f.len() < 11 {
        return None;
    }
    Some(BlockStat {
        read_ios: f[0],
        read_sectors: f[2],
        read_ticks_ms: f[3],
        write_ios: f[4],
        write_sectors: f[6],
        write_ticks_ms: f[7],
        in_flight: f[8],
        io_ticks_ms: f[9],
    })
}

/// A SCSI counter such as `ioerr_cnt`: "0x5".
pub fn parse_hex_counter(s: &str) -> Option<u64> {
    let t = s.trim();
    u64::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).ok()
}

/// MMC host debugfs `err_stats`: "# Command Timeout Occurred:\t 1" lines → (name, count).
pub fn parse_err_stats(s: &str) -> Vec<(String, u64)> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(':')?;
            let n = v.trim().parse().ok()?;
            let k = k.trim_start_matches('#').trim();
            Some((k.trim_end_matches(" Occurred").to_string(), n))
        })
        .collect()
}

/// ext4 facts of one mounted partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ext4Info {
    pub partition: String,
    /// Errors recorded in the superblock over the filesystem's life.
    pub errors_count: Option<u64>,
    /// Seconds since the epoch of the first and last recorded error (0/None = none).
    pub first_error_time: Option<u64>,
    pub last_error_time: Option<u64>,
    /// Kilobytes written over the filesystem's life.
    pub lifetime_write_kbytes: Option<u64>,
}

/// A writable filesystem mounted read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadOnlyMount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// Everything the kernel says about one disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KernelSignals {
    pub stat: Option<BlockStat>,
    /// For NVMe under native multipath, the hidden path device whose `stat` holds the I/O.
    pub stat_from: Option<String>,
    pub ioerr_cnt: Option<u64>,
    pub iotmo_cnt: Option<u64>,
    pub iorequest_cnt: Option<u64>,
    /// The block device is read-only (write-protect switch, or a card in end-of-life mode).
    pub read_only: bool,
    pub read_only_mounts: Vec<ReadOnlyMount>,
    pub ext4: Vec<Ext4Info>,
    /// MMC host error counters (nonzero ones), when debugfs is readable.
    pub mmc_errors: Vec<(String, u64)>,
    /// Kernel log lines since boot that report I/O or filesystem errors on this disk, its
    /// partitions or (NVMe) its paths; `None` when the log could not be read.
    pub log_errors: Option<Vec<String>>,
}

/// Does a device name from the kernel log belong to `disk`: the disk, one of `parts`, or
/// for NVMe a multipath path (`nvme0c0n1` for `nvme0n1`) or its partitions.
pub fn name_belongs(name: &str, disk: &str, parts: &[String]) -> bool {
    if name == disk || parts.iter().any(|p| p == name) {
        return true;
    }
    // nvme<C>n<N> ↔ nvme<C>c<K>n<N>[p<P>]
    if let Some(rest) = disk.strip_prefix("nvme")
        && let Some((ctrl, ns)) = rest.split_once('n')
        && let Some(r) = name.strip_prefix(&format!("nvme{ctrl}c"))
        && let Some((k, tail)) = r.split_once('n')
        && !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_digit())
    {
        let ns_part = tail.split_once('p').map_or(tail, |(n, _)| n);
        return ns_part == ns;
    }
    false
}

/// The device a kernel log message is about, for the error messages lifeboat counts
/// (block layer, buffer cache, ext4, MMC): `None` for every other message.
pub fn error_line_device(msg: &str) -> Option<&str> {
    let after = |pat: &str| -> Option<&str> {
        let i = msg.find(pat)?;
        let rest = &msg[i + pat.len()..];
        let end = rest
            .find(|c: char| c == ',' || c == ')' || c == ':' || c.is_whitespace())
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|s| !s.is_empty())
    };
    for pat in [
        "I/O error, dev ",
        "critical medium error, dev ",
        "timeout error, dev ",
        "Buffer I/O error on dev ",
        "EXT4-fs error (device ",
        "EXT4-fs (",
    ] {
        if let Some(d) = after(pat) {
            if pat == "EXT4-fs (" && !msg.contains("read-only") {
                continue;
            }
            return Some(d);
        }
    }
    // "mmcblk0: recovery failed!", "mmcblk0: error -110 …"
    let (head, tail) = msg.split_once(": ")?;
    (head.starts_with("mmcblk")
        && (tail.contains("recovery failed") || tail.starts_with("error -")))
    .then_some(head)
}

/// The message text of `/dev/kmsg` records (`prio,seq,usec,flags;text`).
pub fn kmsg_text(record: &str) -> &str {
    record
        .split_once(';')
        .map_or(record, |(_, t)| t)
        .lines()
        .next()
        .unwrap_or("")
}

/// Read every record of the kernel log ring buffer (needs CAP_SYSLOG where
/// `dmesg_restrict` is set). `None` when it cannot be opened.
pub fn read_kmsg() -> Option<Vec<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    // Each read returns one record; EAGAIN at the end; EPIPE when a record was overwritten.
    for _ in 0..200_000 {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    Some(out)
}

fn read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok()
}

fn num(p: &Path) -> Option<u64> {
    read(p)?.trim().parse().ok()
}

/// Filesystems that are normally mounted writable: a read-only mount of one is worth a
/// word (the kernel remounts ext4 read-only after errors).
const WRITABLE_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "vfat", "exfat", "f2fs", "btrfs", "xfs",
];

/// The MMC host (`mmc0`) from a card's device path (`…/mmc_host/mmc0/mmc0:0001`).
pub fn mmc_host(device_path: &str) -> Option<String> {
    let mut it = device_path.split('/');
    while let Some(c) = it.next() {
        if c == "mmc_host" {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// Read the kernel signals for `disk` under `root`. Missing files leave fields empty.
pub fn gather(root: &SysRoot, disk: &Disk) -> KernelSignals {
    let block = root.sys_block(&disk.name);
    let mut k = KernelSignals {
        stat: read(&block.join("stat")).and_then(|s| parse_stat(&s)),
        read_only: read(&block.join("ro")).is_some_and(|s| s.trim() == "1"),
        ..Default::default()
    };
    // NVMe native multipath: the head's stat stays zero; the hidden path has the I/O.
    if disk.name.starts_with("nvme")
        && k.stat.is_none_or(|s| s.is_zero())
        && let Some((ctrl, ns)) = disk
            .name
            .strip_prefix("nvme")
            .and_then(|rest| rest.split_once('n'))
            .map(|(c, n)| (c.to_string(), n.to_string()))
        && let Ok(rd) = fs::read_dir(root.join("sys/block"))
    {
        let prefix = format!("nvme{ctrl}c");
        let suffix = format!("n{ns}");
        let mut paths: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
            .collect();
        paths.sort();
        if let Some(p) = paths.first()
            && let Some(s) = read(&root.sys_block(p).join("stat")).and_then(|s| parse_stat(&s))
        {
            k.stat = Some(s);
            k.stat_from = Some(p.clone());
        }
    }
    let dev = block.join("device");
    k.ioerr_cnt = read(&dev.join("ioerr_cnt")).and_then(|s| parse_hex_counter(&s));
    k.iotmo_cnt = read(&dev.join("iotmo_cnt")).and_then(|s| parse_hex_counter(&s));
    k.iorequest_cnt = read(&dev.join("iorequest_cnt")).and_then(|s| parse_hex_counter(&s));

    // Mounts of this disk's partitions (and the disk itself), by device number.
    let mut devnums: Vec<(String, String)> = Vec::new();
    if let Some(d) = read(&block.join("dev")) {
        devnums.push((disk.name.clone(), d.trim().to_string()));
    }
    for p in &disk.partitions {
        if let Some(d) = read(&block.join(&p.name).join("dev")) {
            devnums.push((p.name.clone(), d.trim().to_string()));
        }
    }
    let mounts = read(&root.join("proc/self/mountinfo"))
        .and_then(|t| mountinfo::parse(&t).ok())
        .unwrap_or_default();
    for m in &mounts {
        let Some((name, _)) = devnums.iter().find(|(_, d)| *d == m.dev.to_string()) else {
            continue;
        };
        let ro = |opts: &str| opts.split(',').any(|o| o == "ro");
        if WRITABLE_FS.contains(&m.fs_type.as_str())
            && (ro(&m.options) || ro(&m.super_options))
            && !k
                .read_only_mounts
                .iter()
                .any(|r| r.device == format!("/dev/{name}"))
        {
            k.read_only_mounts.push(ReadOnlyMount {
                device: format!("/dev/{name}"),
                mount_point: m.mount_point.clone(),
                fs_type: m.fs_type.clone(),
            });
        }
        if m.fs_type.starts_with("ext") && !k.ext4.iter().any(|e| e.partition == *name) {
            let dir = root.join("sys/fs/ext4").join(name);
            if dir.is_dir() {
                k.ext4.push(Ext4Info {
                    partition: name.clone(),
                    errors_count: num(&dir.join("errors_count")),
                    first_error_time: num(&dir.join("first_error_time")).filter(|t| *t != 0),
                    last_error_time: num(&dir.join("last_error_time")).filter(|t| *t != 0),
                    lifetime_write_kbytes: num(&dir.join("lifetime_write_kbytes")),
                });
            }
        }
    }
    // The kernel log, on the running system only.
    if root.is_host() {
        let parts: Vec<String> = disk.partitions.iter().map(|p| p.name.clone()).collect();
        k.log_errors = read_kmsg().map(|recs| {
            recs.iter()
                .map(|r| kmsg_text(r))
                .filter(|m| {
                    error_line_device(m).is_some_and(|d| name_belongs(d, &disk.name, &parts))
                })
                .map(str::to_string)
                .collect()
        });
    }
    // MMC host error counters (debugfs, root only; absent otherwise).
    if let Ok(target) = fs::canonicalize(&dev)
        && let Some(host) = mmc_host(&target.to_string_lossy())
        && let Some(text) = read(&root.join("sys/kernel/debug").join(&host).join("err_stats"))
    {
        k.mmc_errors = parse_err_stats(&text)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_from_the_qemu_guest() {
        // sda after one injected read error (qemu-oracle/run5).
        let s = parse_stat(
            "       5        0       40      429        0        0        0        0        0      428      429        0        0        0        0        0        0",
        )
        .unwrap();
        assert_eq!((s.read_ios, s.read_sectors, s.read_ticks_ms), (5, 40, 429));
        assert!((s.avg_read_ms().unwrap() - 85.8).abs() < 1e-9);
        // 11-field kernels.
        assert!(parse_stat("1 2 3 4 5 6 7 8 9 10 11").is_some());
        assert!(parse_stat("1 2 3").is_none());
        assert!(parse_stat("1 2 x 4 5 6 7 8 9 10 11").is_none());
        assert!(parse_stat("").is_none());
        assert!(BlockStat::default().is_zero());
    }

    #[test]
    fn counters_and_err_stats() {
        assert_eq!(parse_hex_counter("0x5\n"), Some(5));
        assert_eq!(parse_hex_counter("0xad"), Some(0xad));
        assert_eq!(parse_hex_counter("zz"), None);
        let e = parse_err_stats(
            "# Command Timeout Occurred:\t 1\n# Command CRC Errors Occurred:\t 0\ngarbage\n",
        );
        assert_eq!(
            e,
            [
                ("Command Timeout".to_string(), 1),
                ("Command CRC Errors".into(), 0)
            ]
        );
        assert_eq!(
            mmc_host("/sys/devices/pci0000:00/0000:00:06.0/mmc_host/mmc0/mmc0:cb1e").as_deref(),
            Some("mmc0")
        );
        assert_eq!(mmc_host("/sys/devices/virtio1"), None);
    }

    #[test]
    fn kernel_log_error_lines() {
        // Lines the QEMU guest logged under injected errors (qemu-oracle/run5).
        let lines = [
            "critical medium error, dev nvme0c0n1, sector 8192 op 0x0:(READ) flags 0x4000800 phys_seg 1 prio class 2",
            "I/O error, dev sda, sector 8192 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2",
            "Buffer I/O error on dev sda, logical block 1024, async page read",
            "blk_update_request: I/O error, dev mmcblk0, sector 64 op 0x0:(READ)",
            "EXT4-fs error (device mmcblk0p2): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0",
            "EXT4-fs (mmcblk0p2): Remounting filesystem read-only",
            "mmcblk0: recovery failed!",
        ];
        let devs: Vec<_> = lines.iter().map(|l| error_line_device(l)).collect();
        assert_eq!(
            devs,
            [
                Some("nvme0c0n1"),
                Some("sda"),
                Some("sda"),
                Some("mmcblk0"),
                Some("mmcblk0p2"),
                Some("mmcblk0p2"),
                Some("mmcblk0"),
            ]
        );
        for quiet in [
            "EXT4-fs (sda1): mounted filesystem with ordered data mode",
            "sd 0:0:0:0: [sda] Attached SCSI disk",
            "mmcblk0: mmc0:ddd2 QEMU! 1.00 GiB",
            "",
        ] {
            assert_eq!(error_line_device(quiet), None, "{quiet}");
        }
        let parts = vec!["mmcblk0p1".to_string(), "mmcblk0p2".to_string()];
        assert!(name_belongs("mmcblk0p2", "mmcblk0", &parts));
        assert!(!name_belongs("mmcblk1", "mmcblk0", &parts));
        assert!(name_belongs("nvme0c0n1", "nvme0n1", &[]));
        assert!(name_belongs("nvme0c3n1p2", "nvme0n1", &[]));
        assert!(!name_belongs("nvme0c0n2", "nvme0n1", &[]));
        assert!(!name_belongs("nvme1c0n1", "nvme0n1", &[]));
        assert_eq!(
            kmsg_text("3,1234,5678,-;I/O error, dev sda, sector 1\n SUBSYSTEM=block\n"),
            "I/O error, dev sda, sector 1"
        );
        assert_eq!(kmsg_text("no header"), "no header");
    }
}

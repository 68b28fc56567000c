//! Kernel-level health signals that every disk has, whatever its vendor: I/O statistics
//! (`/sys/block/X/stat`), SCSI error counters (`device/ioerr_cnt`, `iotmo_cnt`, hex), the
//! read-only flag, read-only mounts of writable filesystems, ext4's persistent error count
//! and lifetime writes (`/sys/fs/ext4/<part>/`), and MMC host error counters (debugfs
//! `err_stats`, root only). Pure parsers for each text format, plus [`gather`], which reads
//! them under a [`SysRoot`] (so tests run on fixture trees). See
//! `docs/storage-health.md` §7.

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
        && let Some((ctrl, ns)) = disk.name.split_once('n').and_then(|(_, rest)| {
            let (c, n) = rest.split_once('n')?;
            Some((c.to_string(), n.to_string()))
        })
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
}

//! The fail-closed decision whether an image may be written to a disk: the disk must not be in
//! use (mounted, swap, held by dm/md/LVM, the running system's disk — see
//! [`crate::device::ownership`]), must not be read-only, must hold the image's last used byte,
//! and must not have 4096-byte logical sectors when the image's tables are in 512-byte sectors
//! (HAOS would not boot: every LBA in the GPT and MBR would point 8× too far).

use crate::device::Disk;

/// What the image needs of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageNeeds {
    /// Bytes of the whole image.
    pub size: u64,
    /// One past the last byte that must reach the disk (the end of the last mapped range,
    /// or of the last partition, whichever is later).
    pub last_used_byte: u64,
    /// Logical sector size the image's partition tables are written in (512 for HAOS).
    pub sector_size: u32,
}

/// Every reason to refuse writing the image to `disk`, each naming the disk; empty when the
/// write may go ahead.
pub fn refusals(disk: &Disk, needs: &ImageNeeds) -> Vec<String> {
    let name = disk.path.display();
    let mut r = Vec::new();
    for why in disk.ownership.reasons() {
        r.push(format!("{name} is in use: {why}"));
    }
    if disk.in_use() && disk.ownership.reasons().is_empty() {
        r.push(format!("{name} is in use"));
    }
    if disk.system_disk && !r.iter().any(|s| s.contains("running system")) {
        r.push(format!("{name} holds the running system"));
    }
    if disk.read_only {
        r.push(format!(
            "{name} is read-only (write-protect switch on the SD card or adapter?)"
        ));
    }
    if disk.size < needs.last_used_byte {
        r.push(format!(
            "{name} is too small: {} bytes, the image needs at least {} bytes (its last used byte)",
            disk.size, needs.last_used_byte
        ));
    }
    if disk.logical_sector_size != needs.sector_size {
        r.push(format!(
            "{name} has {}-byte logical sectors but the image's partition tables use {}-byte \
             sectors; the disk would not boot",
            disk.logical_sector_size, needs.sector_size
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ownership::Ownership;
    use crate::device::transport::Transport;
    use std::path::PathBuf;

    fn disk() -> Disk {
        Disk {
            name: "sdx".into(),
            path: PathBuf::from("/dev/sdx"),
            size: 32 << 30,
            logical_sector_size: 512,
            physical_sector_size: 512,
            removable: true,
            read_only: false,
            model: Some("Card".into()),
            serial: Some("123".into()),
            transport: Transport::Sd,
            backing_file: None,
            mountpoints: vec![],
            swap: false,
            holders: vec![],
            partitions: vec![],
            system_disk: false,
            ownership: Ownership::Unused,
            udev: Default::default(),
        }
    }

    const NEEDS: ImageNeeds = ImageNeeds {
        size: 32 << 30,
        last_used_byte: 8 << 30,
        sector_size: 512,
    };

    #[test]
    fn a_free_big_enough_disk_passes() {
        assert!(refusals(&disk(), &NEEDS).is_empty());
        // Smaller than the image but holding its last used byte: fine.
        let mut d = disk();
        d.size = 16 << 30;
        assert!(refusals(&d, &NEEDS).is_empty());
        d.size = NEEDS.last_used_byte;
        assert!(refusals(&d, &NEEDS).is_empty());
    }

    #[test]
    fn each_reason_refuses_and_names_the_disk() {
        let mut d = disk();
        d.ownership = Ownership::InUse(vec!["/dev/sdx1 is mounted on /media/x".into()]);
        let r = refusals(&d, &NEEDS);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].contains("/dev/sdx") && r[0].contains("mounted"),
            "{r:?}"
        );

        let mut d = disk();
        d.system_disk = true;
        d.ownership = Ownership::InUse(vec![]);
        let r = refusals(&d, &NEEDS);
        assert!(r.iter().any(|s| s.contains("running system")), "{r:?}");

        let mut d = disk();
        d.size = NEEDS.last_used_byte - 512;
        let r = refusals(&d, &NEEDS);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].contains("too small") && r[0].contains(&(8u64 << 30).to_string()),
            "{r:?}"
        );

        let mut d = disk();
        d.logical_sector_size = 4096;
        d.physical_sector_size = 4096;
        let r = refusals(&d, &NEEDS);
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("4096-byte logical sectors"), "{r:?}");

        let mut d = disk();
        d.read_only = true;
        assert!(refusals(&d, &NEEDS)[0].contains("read-only"));
    }
}

//! `device::discover` over the fixture trees in `tests/fixtures/sysfs/<case>/` (made by
//! `make-fixtures.sh` there): every field of every listed disk is checked.

use lifeboat::device::{DevPartition, Disk, Ownership, SysRoot, Transport, discover};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn root(case: &str) -> SysRoot {
    SysRoot(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sysfs")
            .join(case),
    )
}

fn disks(case: &str) -> Vec<Disk> {
    discover(&root(case)).unwrap_or_else(|e| panic!("{case}: {e:#}"))
}

fn names(d: &[Disk]) -> Vec<&str> {
    d.iter().map(|d| d.name.as_str()).collect()
}

fn get<'a>(d: &'a [Disk], name: &str) -> &'a Disk {
    d.iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} not listed: {:?}", names(d)))
}

const S: u64 = 512;

fn part(name: &str, number: u32, start: u64, size: u64) -> DevPartition {
    DevPartition {
        name: name.into(),
        path: PathBuf::from(format!("/dev/{name}")),
        number,
        start: start * S,
        size: size * S,
        mountpoints: vec![],
        swap: false,
        holders: vec![],
    }
}

/// A disk with the fixture defaults (512/512 sectors, not removable, writable, unused).
fn disk(name: &str, sectors: u64, transport: Transport) -> Disk {
    Disk {
        name: name.into(),
        path: PathBuf::from(format!("/dev/{name}")),
        size: sectors * S,
        logical_sector_size: 512,
        physical_sector_size: 512,
        removable: false,
        read_only: false,
        model: None,
        serial: None,
        transport,
        backing_file: None,
        mountpoints: vec![],
        swap: false,
        holders: vec![],
        partitions: vec![],
        system_disk: false,
        ownership: Ownership::Unused,
        udev: BTreeMap::new(),
    }
}

fn in_use(reasons: &[&str]) -> Ownership {
    Ownership::InUse(reasons.iter().map(|s| s.to_string()).collect())
}

/// The root disk every case but the system-* ones shares (this machine's kind: virtio vda).
fn vda() -> Disk {
    Disk {
        physical_sector_size: 4096,
        serial: Some("overlayblk".into()),
        mountpoints: vec!["/".into()],
        system_disk: true,
        ownership: in_use(&[
            "holds the running system (/ on /dev/vda)",
            "/dev/vda mounted on /",
        ]),
        ..disk("vda", 536870912, Transport::Virtio)
    }
}

#[test]
fn sd_card_on_mmc_host() {
    let d = disks("sd-card");
    assert_eq!(names(&d), ["mmcblk0", "vda"]);
    assert_eq!(
        *get(&d, "mmcblk0"),
        Disk {
            model: Some("QEMU!".into()),
            serial: Some("0xdeadbeef".into()),
            partitions: vec![
                part("mmcblk0p1", 1, 8192, 524288),
                part("mmcblk0p2", 2, 532480, 1564672)
            ],
            ..disk("mmcblk0", 2097152, Transport::Sd)
        }
    );
    assert_eq!(*get(&d, "vda"), vda());
}

#[test]
fn emmc_without_its_boot_areas() {
    let d = disks("emmc");
    // mmcblk0boot0/boot1 are in sys/block but are hardware areas, not media.
    assert_eq!(names(&d), ["mmcblk0", "vda"]);
    assert_eq!(
        *get(&d, "mmcblk0"),
        Disk {
            model: Some("DG4016".into()),
            serial: Some("0x1a2b3c4d".into()),
            partitions: vec![
                part("mmcblk0p1", 1, 2048, 65536),
                part("mmcblk0p2", 2, 67584, 30466048)
            ],
            ..disk("mmcblk0", 30535680, Transport::Emmc)
        }
    );
}

#[test]
fn nvme_multipath_head_listed_hidden_path_not() {
    let d = disks("nvme");
    assert_eq!(names(&d), ["nvme0n1", "vda"]);
    assert_eq!(
        *get(&d, "nvme0n1"),
        Disk {
            // Space-padded in sysfs, trimmed here.
            model: Some("QEMU NVMe Ctrl".into()),
            serial: Some("NVME0001".into()),
            partitions: vec![part("nvme0n1p1", 1, 2048, 126976)],
            ..disk("nvme0n1", 131072, Transport::Nvme)
        }
    );
}

#[test]
fn sata_serial_from_vpd_page_80() {
    let d = disks("sata");
    assert_eq!(names(&d), ["sda", "vda"]);
    assert_eq!(
        *get(&d, "sda"),
        Disk {
            model: Some("TESTDISK".into()),
            serial: Some("AHCI0001".into()),
            partitions: vec![part("sda1", 1, 2048, 126976)],
            ..disk("sda", 131072, Transport::Sata)
        }
    );
}

#[test]
fn usb_sata_bridge_with_mounted_partition_and_udev() {
    let d = disks("usb-sata");
    assert_eq!(names(&d), ["sdb", "vda"]);
    let udev: BTreeMap<String, String> = [
        ("ID_BUS", "usb"),
        ("ID_MODEL", "SSD_860_EVO_500G"),
        ("ID_MODEL_ID", "0578"),
        ("ID_PART_TABLE_TYPE", "gpt"),
        ("ID_SERIAL", "Samsung_SSD_860_EVO_500G_0123456789ABCDEF-0:0"),
        ("ID_SERIAL_SHORT", "0123456789ABCDEF"),
        ("ID_USB_DRIVER", "uas"),
        ("ID_VENDOR_ID", "152d"),
        ("LIFEBOAT_CANDIDATE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        *get(&d, "sdb"),
        Disk {
            physical_sector_size: 4096,
            model: Some("SSD 860 EVO 500G".into()),
            // No serial in sysfs for this bridge: udev's ID_SERIAL_SHORT.
            serial: Some("0123456789ABCDEF".into()),
            partitions: vec![DevPartition {
                // Octal escape \040 decoded.
                mountpoints: vec!["/media/user/MY DISK".into()],
                ..part("sdb1", 1, 2048, 976771087)
            }],
            ownership: in_use(&["/dev/sdb1 mounted on /media/user/MY DISK"]),
            udev,
            ..disk(
                "sdb",
                976773168,
                Transport::Usb {
                    vendor_id: 0x152d,
                    product_id: 0x0578,
                    manufacturer: Some("JMicron".into()),
                    product: Some("USB to ATA/ATAPI Bridge".into()),
                    driver: Some("uas".into()),
                }
            )
        }
    );
    let d = &get(&d, "sdb");
    assert!(d.in_use());
    let j = serde_json::to_value(d).unwrap();
    assert_eq!(j["transport"]["kind"], "usb");
    assert_eq!(j["ownership"]["state"], "in_use");
}

#[test]
fn loop_with_eight_partitions() {
    let d = disks("loop");
    // loop0/loop1 are unbound (size 0, no backing file); zram0 is a RAM disk.
    assert_eq!(names(&d), ["loop3", "vda"]);
    let parts = [
        (2048, 65536),
        (67584, 49152),
        (116736, 524288),
        (641024, 49152),
        (690176, 524288),
        (1214464, 16384),
        (1230848, 196608),
        (1427456, 2766815),
    ]
    .iter()
    .enumerate()
    .map(|(i, (start, size))| part(&format!("loop3p{}", i + 1), i as u32 + 1, *start, *size))
    .collect();
    assert_eq!(
        *get(&d, "loop3"),
        Disk {
            backing_file: Some("/var/lib/lifeboat/haos_generic-x86-64-16.0.img".into()),
            partitions: parts,
            ..disk("loop3", 4194304, Transport::Loop)
        }
    );
    // Swap on zram0 resolves to a known (unlisted) device: nobody is blamed for it.
    assert_eq!(get(&d, "vda").ownership, vda().ownership);
}

#[test]
fn system_disk_with_root_on_a_partition() {
    let d = disks("system-partition");
    assert_eq!(names(&d), ["mmcblk0", "sda"]);
    assert_eq!(
        *get(&d, "sda"),
        Disk {
            model: Some("TESTDISK".into()),
            serial: Some("AHCI0001".into()),
            partitions: vec![
                DevPartition {
                    mountpoints: vec!["/boot/efi".into()],
                    ..part("sda1", 1, 2048, 1048576)
                },
                DevPartition {
                    // Matched by 8:2 although mountinfo names the source /dev/root.
                    mountpoints: vec!["/".into(), "/var/lib/docker".into()],
                    ..part("sda2", 2, 1050624, 57669632)
                },
                DevPartition {
                    swap: true,
                    ..part("sda3", 3, 58720256, 4192256)
                },
            ],
            system_disk: true,
            ownership: in_use(&[
                "holds the running system (/ on /dev/sda2)",
                "holds the running system (/boot/efi on /dev/sda1)",
                "/dev/sda1 mounted on /boot/efi",
                "/dev/sda2 mounted on /",
                "/dev/sda2 mounted on /var/lib/docker",
                "/dev/sda3 is active swap",
            ]),
            ..disk("sda", 62914560, Transport::Sata)
        }
    );
    assert_eq!(
        *get(&d, "mmcblk0"),
        Disk {
            model: Some("QEMU!".into()),
            serial: Some("0xdeadbeef".into()),
            ..disk("mmcblk0", 2097152, Transport::Sd)
        }
    );
}

#[test]
fn system_disk_under_luks_and_lvm() {
    let d = disks("system-lvm");
    // dm-0..2 are virtual: followed, not listed.
    assert_eq!(names(&d), ["nvme0n1", "sdb"]);
    assert_eq!(
        *get(&d, "nvme0n1"),
        Disk {
            model: Some("Samsung SSD 980 PRO 1TB".into()),
            serial: Some("S5GXNX0T123456A".into()),
            partitions: vec![
                DevPartition {
                    mountpoints: vec!["/boot/efi".into()],
                    ..part("nvme0n1p1", 1, 2048, 1048576)
                },
                DevPartition {
                    mountpoints: vec!["/boot".into()],
                    ..part("nvme0n1p2", 2, 1050624, 2097152)
                },
                DevPartition {
                    holders: vec!["dm-0".into()],
                    ..part("nvme0n1p3", 3, 3147776, 1950375936)
                },
            ],
            system_disk: true,
            ownership: in_use(&[
                // / on dm-1 → slaves dm-0 → nvme0n1p3 → nvme0n1.
                "holds the running system (/ on /dev/mapper/vg0-root)",
                "holds the running system (/boot on /dev/nvme0n1p2)",
                "holds the running system (/boot/efi on /dev/nvme0n1p1)",
                "/dev/nvme0n1p1 mounted on /boot/efi",
                "/dev/nvme0n1p2 mounted on /boot",
                "/dev/nvme0n1p3 held by dm-0",
                // From the blockdev cross-check, which follows holders to their mounts.
                "/dev/mapper/vg0-root mounted on /",
                "/dev/mapper/vg0-swap is active swap",
            ]),
            ..disk("nvme0n1", 1953525168, Transport::Nvme)
        }
    );
    assert_eq!(
        *get(&d, "sdb"),
        Disk {
            removable: true,
            model: Some("Ultra Fit".into()),
            partitions: vec![part("sdb1", 1, 32, 60063712)],
            ..disk(
                "sdb",
                60063744,
                Transport::Usb {
                    vendor_id: 0x0781,
                    product_id: 0x5583,
                    manufacturer: Some("SanDisk".into()),
                    product: Some("Ultra Fit".into()),
                    driver: Some("usb-storage".into()),
                }
            )
        }
    );
}

#[test]
fn unreadable_attributes_fail_closed_for_that_disk_only() {
    let d = disks("broken");
    assert_eq!(names(&d), ["sdc", "sdd", "vda"]);
    let sdc = get(&d, "sdc");
    let r = sdc.ownership.reasons();
    let has = |needle: &str| {
        assert!(
            r.iter()
                .any(|x| x.contains(needle) && x.ends_with("(assuming in use)")),
            "no reason with {needle:?} in {r:#?}"
        )
    };
    has("sys/block/sdc/size: unexpected content \"garbage\"");
    has("sys/block/sdc/ro: ");
    has("sys/block/sdc/holders: ");
    has("sys/block/sdc/sdc1/start: ");
    assert_eq!(r.len(), 4, "{r:#?}");
    assert!(sdc.in_use());
    assert_eq!(sdc.size, 0);
    assert_eq!(
        *get(&d, "sdd"),
        Disk {
            model: Some("TESTDISK".into()),
            ..disk("sdd", 131072, Transport::Sata)
        }
    );
}

#[test]
fn root_not_on_any_disk_makes_every_disk_in_use() {
    let d = disks("container");
    assert_eq!(names(&d), ["sda"]);
    assert_eq!(
        d[0].ownership,
        in_use(&[
            "could not tell which disk holds the running system (/ is overlay from overlay on 0:45) (assuming in use)"
        ])
    );
    assert!(!d[0].system_disk);
}

#[test]
fn missing_mount_table_makes_every_disk_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(root("sata").0.join("sys"))
        .arg(r)
        .status()
        .unwrap();
    assert!(copy.success());
    let d = discover(&SysRoot(r.to_path_buf())).unwrap();
    assert_eq!(names(&d), ["sda", "vda"]);
    for x in &d {
        assert!(
            x.ownership
                .reasons()
                .iter()
                .any(|s| s.starts_with("could not read the mount table")),
            "{:?}",
            x.ownership
        );
        assert!(
            x.ownership
                .reasons()
                .iter()
                .any(|s| s.starts_with("could not read the swap table")),
            "{:?}",
            x.ownership
        );
    }
}

#[test]
fn the_running_system_is_found_on_this_machine() {
    // Unprivileged: sysfs and /proc are world-readable.
    let Ok(d) = discover(&SysRoot::host()) else {
        println!("skipped: no readable /sys/block here");
        return;
    };
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts = lifeboat::sys::mountinfo::parse(&mi).unwrap();
    let root_dev = mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == "/")
        .unwrap()
        .dev;
    if root_dev.major == 0 {
        // Not on a disk (container, live system): everything must be refused.
        assert!(d.iter().all(|x| x.in_use()), "{d:#?}");
    } else {
        let sys: Vec<&Disk> = d.iter().filter(|x| x.system_disk).collect();
        assert!(
            !sys.is_empty(),
            "no system disk found for / on {root_dev}: {d:#?}"
        );
        for x in sys {
            assert!(
                x.ownership
                    .reasons()
                    .iter()
                    .any(|r| r.starts_with("holds the running system (/ on ")),
                "{:?}",
                x.ownership
            );
        }
    }
}

//! How a disk is attached ([`Transport`]), decided from sysfs rather than from the kernel
//! name: the target of `/sys/block/<name>/device` names the bus on its way down
//! (`…/mmc_host/mmc0/mmc0:ddd2`, `…/nvme/nvme0`, `…/ata1/host0/…`, `…/usb2/2-1/2-1:1.0/…`,
//! `…/virtio1`), the MMC card's `type` file tells SD from eMMC, and a USB disk's vendor and
//! product ids sit in the USB device directory above the interface.
//!
//! [`classify`] is the pure decision over those strings; [`probe`] reads them from a
//! [`SysRoot`]. The transport is descriptive (it picks a health source and labels the disk);
//! whether a disk may be written is decided in [`super::ownership`], never here.

use super::discover::SysRoot;
use serde::Serialize;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// How a disk is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transport {
    /// SD card (MMC bus, card `type` "SD" or "SDcombo").
    Sd,
    /// eMMC (MMC bus, card `type` "MMC").
    Emmc,
    /// On an MMC host, but the card type is missing or unexpected (e.g. "SDIO").
    MmcUnknown { card_type: Option<String> },
    /// NVMe namespace (PCIe or fabrics).
    Nvme,
    /// libata: SATA (or PATA) through an AHCI or other ATA host.
    Sata,
    /// USB mass storage (usb-storage or UAS), with the ids of the USB device (the bridge).
    Usb {
        vendor_id: u16,
        product_id: u16,
        /// USB `manufacturer` string of the bridge, if it has one.
        manufacturer: Option<String>,
        /// USB `product` string of the bridge, if it has one.
        product: Option<String>,
        /// Driver bound to the interface: `uas` or `usb-storage`.
        driver: Option<String>,
    },
    /// virtio-blk.
    Virtio,
    /// Loop device over a file.
    Loop,
    /// Some other SCSI host (SAS, virtio-scsi, iSCSI, …).
    Scsi,
    /// Nothing above matched.
    Unknown,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Sd => f.write_str("SD"),
            Transport::Emmc => f.write_str("eMMC"),
            Transport::MmcUnknown { card_type: Some(t) } => write!(f, "MMC ({t})"),
            Transport::MmcUnknown { card_type: None } => f.write_str("MMC"),
            Transport::Nvme => f.write_str("NVMe"),
            Transport::Sata => f.write_str("SATA"),
            Transport::Usb {
                vendor_id,
                product_id,
                ..
            } => write!(f, "USB {vendor_id:04x}:{product_id:04x}"),
            Transport::Virtio => f.write_str("virtio"),
            Transport::Loop => f.write_str("loop"),
            Transport::Scsi => f.write_str("SCSI"),
            Transport::Unknown => f.write_str("unknown"),
        }
    }
}

/// What the USB device directory above a disk says about itself (raw sysfs text, trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsbAttrs {
    /// `idVendor`, four hex digits.
    pub id_vendor: String,
    /// `idProduct`, four hex digits.
    pub id_product: String,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    /// Interface driver name (`uas`, `usb-storage`).
    pub driver: Option<String>,
}

/// Everything [`classify`] looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportFacts {
    /// Kernel name (`sda`, `mmcblk0`, `loop3`). Only a last resort when sysfs says nothing.
    pub name: String,
    /// `sys/block/<name>/loop` exists.
    pub has_loop_dir: bool,
    /// Resolved target of `sys/block/<name>/device`, as an absolute sysfs path
    /// (`/sys/devices/pci0000:00/…`); `None` when there is no `device` link (loop, zram).
    pub device_path: Option<String>,
    /// The MMC card's `type` file (`SD`, `MMC`, `SDIO`), when under an MMC host.
    pub mmc_type: Option<String>,
    /// Attributes of the USB device above the disk, when under USB and readable.
    pub usb: Option<UsbAttrs>,
}

fn is_num(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `2-1`, `2-1.4`, `1-1.2.3`: a USB device (not the `usbN` root hub, not an `2-1:1.0` interface).
fn is_usb_device_name(c: &str) -> bool {
    match c.split_once('-') {
        Some((bus, port)) => is_num(bus) && !port.is_empty() && port.split('.').all(is_num),
        None => false,
    }
}

/// The directory of the USB device a disk hangs off: the deepest path component that is a
/// USB device name. `None` when the path does not go through USB.
pub fn usb_device_dir(device_path: &str) -> Option<String> {
    let comps: Vec<&str> = device_path.split('/').collect();
    if !comps
        .iter()
        .any(|c| c.strip_prefix("usb").is_some_and(is_num))
    {
        return None;
    }
    let last = comps.iter().rposition(|c| is_usb_device_name(c))?;
    Some(comps[..=last].join("/"))
}

/// The USB interface directory (`2-1:1.0`) below the USB device, whose `driver` link names
/// `uas` or `usb-storage`.
pub fn usb_interface_dir(device_path: &str) -> Option<String> {
    let comps: Vec<&str> = device_path.split('/').collect();
    let dev = comps.iter().rposition(|c| is_usb_device_name(c))?;
    let next = comps.get(dev + 1)?;
    next.split_once(':')
        .filter(|(d, _)| *d == comps[dev])
        .map(|_| comps[..=dev + 1].join("/"))
}

/// True when the path goes through an MMC host (`…/mmc_host/mmcN/mmcN:RCA`).
pub fn is_mmc_path(device_path: &str) -> bool {
    device_path.split('/').any(|c| c == "mmc_host")
}

/// Decide the transport. Order matters: USB first (a USB-NVMe or USB-SATA bridge is USB, not
/// NVMe or SATA), then the buses whose names appear in the path, then name-based fallbacks
/// for devices without a `device` link.
pub fn classify(f: &TransportFacts) -> Transport {
    if f.has_loop_dir {
        return Transport::Loop;
    }
    if let Some(path) = f.device_path.as_deref() {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if is_mmc_path(path) {
            return match f.mmc_type.as_deref() {
                Some("SD") | Some("SDcombo") => Transport::Sd,
                Some("MMC") => Transport::Emmc,
                other => Transport::MmcUnknown {
                    card_type: other.map(str::to_string),
                },
            };
        }
        if usb_device_dir(path).is_some() {
            return f
                .usb
                .as_ref()
                .and_then(|u| {
                    Some(Transport::Usb {
                        vendor_id: u16::from_str_radix(&u.id_vendor, 16).ok()?,
                        product_id: u16::from_str_radix(&u.id_product, 16).ok()?,
                        manufacturer: u.manufacturer.clone(),
                        product: u.product.clone(),
                        driver: u.driver.clone(),
                    })
                })
                .unwrap_or(Transport::Unknown);
        }
        if comps
            .iter()
            .any(|c| *c == "nvme" || c.starts_with("nvme-subsys") || c.starts_with("nvme-fabrics"))
        {
            return Transport::Nvme;
        }
        if comps
            .iter()
            .any(|c| c.strip_prefix("ata").is_some_and(is_num))
        {
            return Transport::Sata;
        }
        let scsi_target = comps
            .iter()
            .any(|c| c.starts_with("target") && c.contains(':'));
        if scsi_target {
            return Transport::Scsi;
        }
        if comps
            .iter()
            .any(|c| c.strip_prefix("virtio").is_some_and(is_num))
        {
            return Transport::Virtio;
        }
    }
    // No device link, or a path we do not know: the name is all that is left.
    let n = f.name.as_str();
    if n.starts_with("loop") {
        Transport::Loop
    } else if n.starts_with("nvme") {
        Transport::Nvme
    } else if n.starts_with("mmcblk") {
        Transport::MmcUnknown {
            card_type: f.mmc_type.clone(),
        }
    } else if n.starts_with("vd") {
        Transport::Virtio
    } else {
        Transport::Unknown
    }
}

/// Canonical path of `p` shown relative to the root (`/sys/devices/…`), or as it is when the
/// link leaves the root.
fn under_root(root: &SysRoot, p: &Path) -> Option<String> {
    let real = fs::canonicalize(p).ok()?;
    let base = fs::canonicalize(&root.0).unwrap_or_else(|_| root.0.clone());
    Some(match real.strip_prefix(&base) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => real.display().to_string(),
    })
}

fn read_trimmed(p: &Path) -> Option<String> {
    fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Gather [`TransportFacts`] for `sys/block/<name>` under `root`. Unreadable pieces are left
/// out (the result is then less specific, down to [`Transport::Unknown`]).
pub fn facts(root: &SysRoot, name: &str) -> TransportFacts {
    let block = root.sys_block(name);
    let device_path = under_root(root, &block.join("device"));
    let mut f = TransportFacts {
        name: name.to_string(),
        has_loop_dir: block.join("loop").is_dir(),
        device_path: device_path.clone(),
        ..Default::default()
    };
    if let Some(dp) = device_path.as_deref() {
        let abs = |rel: &str| -> PathBuf { root.0.join(rel.trim_start_matches('/')) };
        if is_mmc_path(dp) {
            f.mmc_type = read_trimmed(&abs(dp).join("type"));
        }
        if let Some(usb) = usb_device_dir(dp) {
            let dir = abs(&usb);
            if let (Some(id_vendor), Some(id_product)) = (
                read_trimmed(&dir.join("idVendor")),
                read_trimmed(&dir.join("idProduct")),
            ) {
                let driver = usb_interface_dir(dp).and_then(|i| {
                    fs::read_link(abs(&i).join("driver"))
                        .ok()
                        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
                });
                f.usb = Some(UsbAttrs {
                    id_vendor,
                    id_product,
                    manufacturer: read_trimmed(&dir.join("manufacturer")),
                    product: read_trimmed(&dir.join("product")),
                    driver,
                });
            }
        }
    }
    f
}

/// The transport of `sys/block/<name>` under `root`.
pub fn probe(root: &SysRoot, name: &str) -> Transport {
    classify(&facts(root, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(name: &str, path: &str) -> TransportFacts {
        TransportFacts {
            name: name.into(),
            device_path: Some(path.into()),
            ..Default::default()
        }
    }

    // Paths as the QEMU oracle guest showed them (shared/fixtures/qemu-oracle/run6-sysfs.txt).
    const SATA: &str = "/sys/devices/pci0000:00/0000:00:05.0/ata1/host0/target0:0:0/0:0:0:0";
    const USB: &str =
        "/sys/devices/pci0000:00/0000:00:07.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0";
    const SD: &str = "/sys/devices/pci0000:00/0000:00:06.0/mmc_host/mmc0/mmc0:cb1e";

    #[test]
    fn sata_and_scsi() {
        assert_eq!(classify(&at("sda", SATA)), Transport::Sata);
        assert_eq!(
            classify(&at(
                "sda",
                "/sys/devices/pci0000:00/0000:00:03.0/virtio0/host0/target0:0:0/0:0:0:0"
            )),
            Transport::Scsi
        );
        assert_eq!(
            classify(&at(
                "sdc",
                "/sys/devices/pci0000:00/0000:00:10.0/host2/port-2:0/end_device-2:0/target2:0:0/2:0:0:0"
            )),
            Transport::Scsi
        );
    }

    #[test]
    fn usb_takes_ids_from_the_device_not_the_root_hub() {
        assert_eq!(
            usb_device_dir(USB).as_deref(),
            Some("/sys/devices/pci0000:00/0000:00:07.0/usb2/2-1")
        );
        assert_eq!(
            usb_interface_dir(USB).as_deref(),
            Some("/sys/devices/pci0000:00/0000:00:07.0/usb2/2-1/2-1:1.0")
        );
        assert_eq!(
            usb_device_dir("/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-2/2-2.1/2-2.1:1.0/host0/target0:0:0/0:0:0:0").as_deref(),
            Some("/sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-2/2-2.1")
        );
        assert_eq!(usb_device_dir(SATA), None);
        let mut f = at("sdb", USB);
        f.usb = Some(UsbAttrs {
            id_vendor: "46f4".into(),
            id_product: "0001".into(),
            manufacturer: Some("QEMU".into()),
            product: Some("QEMU USB HARDDRIVE".into()),
            driver: Some("usb-storage".into()),
        });
        let t = classify(&f);
        assert_eq!(
            t,
            Transport::Usb {
                vendor_id: 0x46f4,
                product_id: 0x0001,
                manufacturer: Some("QEMU".into()),
                product: Some("QEMU USB HARDDRIVE".into()),
                driver: Some("usb-storage".into()),
            }
        );
        assert_eq!(t.to_string(), "USB 46f4:0001");
        // Under USB but ids unreadable or garbage: not guessed.
        assert_eq!(classify(&at("sdb", USB)), Transport::Unknown);
        f.usb.as_mut().unwrap().id_vendor = "zz".into();
        assert_eq!(classify(&f), Transport::Unknown);
    }

    #[test]
    fn usb_nvme_bridge_is_usb() {
        let mut f = at(
            "sda",
            "/sys/devices/pci0000:00/0000:00:14.0/usb4/4-1/4-1:1.0/host0/target0:0:0/0:0:0:0",
        );
        f.usb = Some(UsbAttrs {
            id_vendor: "152d".into(),
            id_product: "0583".into(),
            ..Default::default()
        });
        assert!(matches!(
            classify(&f),
            Transport::Usb {
                vendor_id: 0x152d,
                ..
            }
        ));
    }

    #[test]
    fn mmc_by_card_type() {
        let mut f = at("mmcblk0", SD);
        f.mmc_type = Some("SD".into());
        assert_eq!(classify(&f), Transport::Sd);
        f.mmc_type = Some("MMC".into());
        assert_eq!(classify(&f), Transport::Emmc);
        f.mmc_type = Some("SDIO".into());
        assert_eq!(
            classify(&f),
            Transport::MmcUnknown {
                card_type: Some("SDIO".into())
            }
        );
        f.mmc_type = None;
        assert_eq!(classify(&f), Transport::MmcUnknown { card_type: None });
        assert_eq!(classify(&f).to_string(), "MMC");
    }

    #[test]
    fn nvme_direct_and_multipath_head() {
        assert_eq!(
            classify(&at(
                "nvme0n1",
                "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0"
            )),
            Transport::Nvme
        );
        assert_eq!(
            classify(&at(
                "nvme0n1",
                "/sys/devices/virtual/nvme-subsystem/nvme-subsys0"
            )),
            Transport::Nvme
        );
    }

    #[test]
    fn virtio_loop_and_fallbacks() {
        assert_eq!(
            classify(&at("vda", "/sys/devices/pci0000:00/0000:00:02.0/virtio1")),
            Transport::Virtio
        );
        let lp = TransportFacts {
            name: "loop3".into(),
            has_loop_dir: true,
            ..Default::default()
        };
        assert_eq!(classify(&lp), Transport::Loop);
        let none = |n: &str| TransportFacts {
            name: n.into(),
            ..Default::default()
        };
        assert_eq!(classify(&none("loop0")), Transport::Loop);
        assert_eq!(classify(&none("nvme1n1")), Transport::Nvme);
        assert_eq!(classify(&none("vdb")), Transport::Virtio);
        assert_eq!(classify(&none("sdz")), Transport::Unknown);
        assert_eq!(
            classify(&at("xvda", "/sys/devices/vbd-51712")),
            Transport::Unknown
        );
    }

    #[test]
    fn serializes_with_kind_tag() {
        let j = serde_json::to_value(Transport::Sd).unwrap();
        assert_eq!(j, serde_json::json!({"kind": "sd"}));
        let j = serde_json::to_value(Transport::MmcUnknown { card_type: None }).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind": "mmc_unknown", "card_type": null})
        );
        let j = serde_json::to_value(Transport::Usb {
            vendor_id: 0x152d,
            product_id: 0x0578,
            manufacturer: None,
            product: Some("JMS578".into()),
            driver: Some("uas".into()),
        })
        .unwrap();
        assert_eq!(j["kind"], "usb");
        assert_eq!(j["vendor_id"], 0x152d);
        assert_eq!(j["product"], "JMS578");
    }
}

//! What identifies a whole disk apart from its kernel name: size, model, serial, SD/eMMC CID,
//! WWID, read from sysfs. Used to find a source disk again when it drops off the bus and
//! re-enumerates under another name (a USB card reader that resets while lifeboat still holds
//! `/dev/sdb` open comes back as `/dev/sdc`). Names only: callers confirm a candidate by its
//! content before trusting it.

use super::discover::SysRoot;
use std::fs;

/// The sysfs facts of a whole disk that survive re-enumeration. Two disks with equal
/// identities are candidates for being the same medium; attributes a disk lacks (a loop
/// device has none of model, serial, CID, WWID) compare equal as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIdentity {
    /// Size in bytes.
    pub size: u64,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// SD/eMMC card identification register (hex), when the disk is an MMC device.
    pub cid: Option<String>,
    pub wwid: Option<String>,
}

fn text(root: &SysRoot, rel: &str) -> Option<String> {
    let s = fs::read_to_string(root.join(rel)).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The identity of whole disk `name` (as listed in `sys/block`), None when sysfs does not
/// list it or gives no size.
pub fn disk_identity(root: &SysRoot, name: &str) -> Option<DiskIdentity> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return None;
    }
    let base = format!("sys/block/{name}");
    let size = text(root, &format!("{base}/size"))?
        .parse::<u64>()
        .ok()?
        .checked_mul(512)?;
    Some(DiskIdentity {
        size,
        model: text(root, &format!("{base}/device/model"))
            .or_else(|| text(root, &format!("{base}/device/name"))),
        serial: text(root, &format!("{base}/device/serial"))
            .or_else(|| text(root, &format!("{base}/serial"))),
        cid: text(root, &format!("{base}/device/cid")),
        wwid: text(root, &format!("{base}/device/wwid"))
            .or_else(|| text(root, &format!("{base}/wwid"))),
    })
}

/// Whole disks in `sys/block` whose identity equals `id`, sorted by name.
pub fn disks_like(root: &SysRoot, id: &DiskIdentity) -> Vec<String> {
    let Ok(rd) = fs::read_dir(root.join("sys/block")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| disk_identity(root, n).as_ref() == Some(id))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(root: &std::path::Path, name: &str, attrs: &[(&str, &str)]) {
        for (k, v) in attrs {
            let p = root.join("sys/block").join(name).join(k);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("{v}\n")).unwrap();
        }
    }

    #[test]
    fn finds_the_same_card_under_another_name_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let card = [
            ("size", "31116288"),
            ("device/model", "SD/MMC CRW"),
            ("device/serial", "058F63666485"),
        ];
        disk(r, "sdb", &card);
        disk(r, "sdc", &card);
        // Same reader model and size but another serial; same serial, other size; no attrs.
        disk(
            r,
            "sdd",
            &[
                ("size", "31116288"),
                ("device/model", "SD/MMC CRW"),
                ("device/serial", "OTHER"),
            ],
        );
        disk(
            r,
            "sde",
            &[
                ("size", "62232576"),
                ("device/model", "SD/MMC CRW"),
                ("device/serial", "058F63666485"),
            ],
        );
        disk(r, "loop0", &[("size", "31116288")]);
        let root = SysRoot(r.to_path_buf());
        let id = disk_identity(&root, "sdb").unwrap();
        assert_eq!(id.size, 31116288 * 512);
        assert_eq!(id.serial.as_deref(), Some("058F63666485"));
        assert_eq!(disks_like(&root, &id), vec!["sdb", "sdc"]);
        // An MMC card: its CID tells cards apart in the same slot.
        disk(
            r,
            "mmcblk0",
            &[
                ("size", "1000"),
                ("device/name", "SD32G"),
                ("device/cid", "aa"),
            ],
        );
        disk(
            r,
            "mmcblk1",
            &[
                ("size", "1000"),
                ("device/name", "SD32G"),
                ("device/cid", "bb"),
            ],
        );
        let m = disk_identity(&root, "mmcblk0").unwrap();
        assert_eq!(m.model.as_deref(), Some("SD32G"));
        assert_eq!(disks_like(&root, &m), vec!["mmcblk0"]);
        // Loop devices have only a size: every loop of that size is a candidate.
        let l = disk_identity(&root, "loop0").unwrap();
        assert_eq!(disks_like(&root, &l), vec!["loop0"]);
        assert!(disk_identity(&root, "nope").is_none());
        assert!(disk_identity(&root, "../x").is_none());
    }
}

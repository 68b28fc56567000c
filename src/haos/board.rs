//! Which board an HAOS disk was built for: the `VARIANT_ID`s HAOS uses, their display names,
//! and the evidence that names one offline — RAUC's `haos-<board>` compatible, os-release,
//! or the files on the boot partition (device trees, EFI loaders, RPi5 slot directories).
//! Pure: takes names and texts, returns a [`Board`].

use serde::Serialize;

/// A board and how we know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Board {
    /// HAOS board id (`VARIANT_ID`), e.g. `rpi4-64`, `green`, `generic-x86-64`.
    pub id: String,
    /// Display name, e.g. "Raspberry Pi 4 (64-bit)".
    pub name: String,
    /// Where the id came from: `os-release`, `rauc.db`, or `boot files (…)`.
    pub source: String,
}

/// Known HAOS board ids and names (board/*/meta of the OS build).
pub const BOARDS: &[(&str, &str)] = &[
    ("rpi2", "Raspberry Pi 2"),
    ("rpi3", "Raspberry Pi 3 (32-bit)"),
    ("rpi3-64", "Raspberry Pi 3 (64-bit)"),
    ("rpi4", "Raspberry Pi 4 (32-bit)"),
    ("rpi4-64", "Raspberry Pi 4 (64-bit)"),
    ("rpi5-64", "Raspberry Pi 5"),
    ("yellow", "Home Assistant Yellow"),
    ("green", "Home Assistant Green"),
    ("generic-x86-64", "Generic x86-64"),
    ("ova", "Virtual machine (OVA)"),
    ("generic-aarch64", "Generic AArch64"),
    ("odroid-c2", "ODROID-C2"),
    ("odroid-c4", "ODROID-C4"),
    ("odroid-n2", "ODROID-N2/N2+"),
    ("odroid-m1", "ODROID-M1"),
    ("odroid-m1s", "ODROID-M1S"),
    ("odroid-xu4", "ODROID-XU4"),
    ("khadas-vim3", "Khadas VIM3"),
    ("tinker", "ASUS Tinker Board"),
];

/// Display name for a board id (the id itself when unknown).
pub fn board_name(id: &str) -> String {
    BOARDS
        .iter()
        .find(|(b, _)| *b == id)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("unknown board '{id}'"))
}

/// A board from an explicit id and its source.
pub fn from_id(id: &str, source: &str) -> Board {
    Board {
        id: id.to_string(),
        name: board_name(id),
        source: source.to_string(),
    }
}

/// A board from RAUC's compatible string `haos-<board>` (older: `hassos-<board>`).
pub fn from_compatible(compatible: &str, source: &str) -> Option<Board> {
    let id = compatible
        .strip_prefix("haos-")
        .or_else(|| compatible.strip_prefix("hassos-"))?;
    (!id.is_empty()).then(|| from_id(id, source))
}

/// Device-tree name fragments that identify a board (checked in order; first match wins).
const DTB_HINTS: &[(&str, &str)] = &[
    ("ha-yellow", "yellow"),
    ("bcm2712", "rpi5-64"),
    ("bcm2711-rpi-4", "rpi4-64"),
    ("bcm2711-rpi-400", "rpi4-64"),
    ("bcm2710-rpi-3", "rpi3-64"),
    ("bcm2837-rpi-3", "rpi3-64"),
    ("rk3566-ha-green", "green"),
    ("rk3566-odroid-m1s", "odroid-m1s"),
    ("rk3568-odroid-m1", "odroid-m1"),
    ("meson-g12b-odroid-n2", "odroid-n2"),
    ("meson-sm1-odroid-c4", "odroid-c4"),
    ("meson-gxbb-odroidc2", "odroid-c2"),
    ("khadas-vim3", "khadas-vim3"),
];

/// Guess the board from the boot partition's file names (paths relative to its root, any
/// case) and `config.txt`. A guess: RPi 3/4 images carry several device trees, so a Pi 4
/// image might be reported as such even when it runs a CM4 — os-release or rauc.db win.
pub fn from_boot_files(paths: &[String], config_txt: Option<&str>) -> Option<Board> {
    let lower: Vec<String> = paths.iter().map(|p| p.to_ascii_lowercase()).collect();
    let has = |s: &str| lower.iter().any(|p| p.contains(s));
    let rpi5_slots = lower
        .iter()
        .any(|p| p.starts_with("slot-a/") || p.starts_with("slot-b/"))
        || config_txt.is_some_and(|c| c.lines().any(|l| l.trim_start().starts_with("os_prefix=")));
    if rpi5_slots {
        return Some(from_id(
            "rpi5-64",
            "boot files (slot-A/slot-B directories, os_prefix)",
        ));
    }
    if has("efi/boot/bootx64.efi") {
        return Some(from_id(
            "generic-x86-64",
            "boot files (EFI/BOOT/bootx64.efi; could also be OVA)",
        ));
    }
    if has("efi/boot/bootaa64.efi") {
        return Some(from_id(
            "generic-aarch64",
            "boot files (EFI/BOOT/bootaa64.efi)",
        ));
    }
    for (frag, id) in DTB_HINTS {
        if let Some(p) = lower
            .iter()
            .find(|p| p.contains(frag) && p.ends_with(".dtb"))
        {
            return Some(from_id(id, &format!("boot files ({p})")));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn compatible_and_files() {
        assert_eq!(
            from_compatible("haos-rpi4-64", "rauc.db").unwrap().id,
            "rpi4-64"
        );
        assert_eq!(
            from_compatible("hassos-ova", "x").unwrap().name,
            "Virtual machine (OVA)"
        );
        assert!(from_compatible("other", "x").is_none());
        assert_eq!(
            from_boot_files(
                &v(&["u-boot.bin", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-cm4.dtb"]),
                None
            )
            .unwrap()
            .id,
            "rpi4-64"
        );
        assert_eq!(
            from_boot_files(&v(&["bcm2711-rpi-cm4-ha-yellow.dtb"]), None)
                .unwrap()
                .id,
            "yellow"
        );
        assert_eq!(
            from_boot_files(&v(&["slot-A/kernel_2712.img"]), None)
                .unwrap()
                .id,
            "rpi5-64"
        );
        assert_eq!(
            from_boot_files(&v(&["EFI/BOOT/bootx64.efi"]), None)
                .unwrap()
                .id,
            "generic-x86-64"
        );
        assert_eq!(
            from_boot_files(&v(&["rk3568-odroid-m1.dtb"]), None)
                .unwrap()
                .id,
            "odroid-m1"
        );
        assert!(from_boot_files(&v(&["readme.txt"]), None).is_none());
    }
}

//! USB storage bridges: which pass-through a USB disk's bridge speaks, chosen from its
//! vendor/product ids like smartmontools' `drivedb.h` USB section (`docs/storage-health.md`
//! §4.4, §5.5). Data only, plus [`lookup`]. Unknown bridges get no pass-through at all
//! unless the user forces one with `--type` (some bridges hang or drop the disk on
//! commands they do not know).

use serde::Serialize;

/// How to reach the health data behind a USB bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bridge {
    /// SAT: ATA PASS-THROUGH(16), falling back to (12).
    Sat,
    /// SAT, but only the 12-byte CDB works.
    Sat12,
    /// SAT for the data pages, but the bridge cannot return ATA output registers, so SMART
    /// RETURN STATUS cannot be read: the verdict comes from the attributes alone.
    SatNoStatus,
    /// JMicron JMS583 NVMe tunnel.
    SntJmicron,
    /// ASMedia ASM2362/2364 NVMe tunnel.
    SntAsmedia,
    /// Realtek RTL9210/9211 NVMe tunnel.
    SntRealtek,
    /// Needs a vendor protocol lifeboat does not speak (old JMicron, Cypress).
    Unsupported(&'static str),
    /// Known to misbehave on pass-through; nothing is sent.
    Risky(&'static str),
}

impl Bridge {
    pub fn name(self) -> &'static str {
        match self {
            Bridge::Sat => "sat",
            Bridge::Sat12 => "sat,12",
            Bridge::SatNoStatus => "sat (no RETURN STATUS)",
            Bridge::SntJmicron => "sntjmicron",
            Bridge::SntAsmedia => "sntasmedia",
            Bridge::SntRealtek => "sntrealtek",
            Bridge::Unsupported(_) => "unsupported",
            Bridge::Risky(_) => "risky",
        }
    }
}

/// One table row: vendor id, product id (`None` = any product of the vendor), bridge,
/// description.
pub type Row = (u16, Option<u16>, Bridge, &'static str);

/// The table. More specific rows (with a product id) come before vendor-wide ones.
pub const TABLE: &[Row] = &[
    // NVMe tunnels.
    (0x174c, Some(0x2362), Bridge::SntAsmedia, "ASMedia ASM2362"),
    (0x174c, Some(0x2364), Bridge::SntAsmedia, "ASMedia ASM2364"),
    (
        0x04e8,
        Some(0x4001),
        Bridge::SntAsmedia,
        "Samsung Portable SSD T7",
    ),
    (
        0x04e8,
        Some(0x61fb),
        Bridge::SntAsmedia,
        "Samsung Portable SSD T7 Shield",
    ),
    (0x0bda, Some(0x9210), Bridge::SntRealtek, "Realtek RTL9210"),
    (0x0bda, Some(0x9211), Bridge::SntRealtek, "Realtek RTL9211"),
    (0x2eb9, Some(0x9211), Bridge::SntRealtek, "Realtek RTL9211"),
    (0x152d, Some(0x0583), Bridge::SntJmicron, "JMicron JMS583"),
    // JMicron SATA bridges.
    (0x152d, Some(0x0561), Bridge::Sat, "JMicron JMS561"),
    (0x152d, Some(0x0562), Bridge::Sat, "JMicron JMS562"),
    (0x152d, Some(0x0565), Bridge::Sat, "JMicron JMS56x"),
    (0x152d, Some(0x0567), Bridge::Sat, "JMicron JMS567"),
    (0x152d, Some(0x0578), Bridge::Sat, "JMicron JMS578"),
    (0x152d, Some(0x0579), Bridge::Sat, "JMicron JMS579"),
    (0x152d, Some(0x1561), Bridge::Sat, "JMicron JMS561"),
    (0x152d, Some(0x2567), Bridge::Sat, "JMicron JMS567"),
    (0x152d, Some(0x2590), Bridge::Sat, "JMicron JMS567"),
    (0x152d, Some(0x3562), Bridge::Sat, "JMicron JMS562"),
    (0x152d, Some(0x3569), Bridge::Sat, "JMicron JMS566"),
    (0x152d, Some(0x578e), Bridge::Sat, "JMicron JMS578"),
    (
        0x152d,
        Some(0x2329),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20329",
    ),
    (
        0x152d,
        Some(0x2336),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20336",
    ),
    (
        0x152d,
        Some(0x2337),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20337",
    ),
    (
        0x152d,
        Some(0x2338),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20338",
    ),
    (
        0x152d,
        Some(0x2339),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20339",
    ),
    (
        0x152d,
        Some(0x2352),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20352",
    ),
    (
        0x152d,
        Some(0x2509),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JMS539",
    ),
    (
        0x152d,
        Some(0x2566),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20566",
    ),
    (
        0x152d,
        Some(0x0551),
        Bridge::Unsupported("needs the old JMicron protocol (smartctl -d usbjmicron)"),
        "JMicron JM20551",
    ),
    (
        0x152d,
        Some(0x0602),
        Bridge::Unsupported("no pass-through known"),
        "JMicron",
    ),
    (
        0x152d,
        Some(0x0539),
        Bridge::Risky("may disconnect the drive on pass-through"),
        "JMicron JMS539",
    ),
    // VIA/VLI.
    (
        0x2109,
        Some(0x0700),
        Bridge::Unsupported("VIA VL700 needs sat,12 and cannot return the status registers"),
        "VIA VL700",
    ),
    (0x2109, Some(0x0701), Bridge::SatNoStatus, "VIA VL701"),
    (0x2109, Some(0x0711), Bridge::Sat, "VIA VL711"),
    (0x2109, Some(0x0715), Bridge::Sat, "VIA VL715"),
    (0x2109, Some(0x0716), Bridge::Sat, "VIA VL716"),
    (0x2109, Some(0x0717), Bridge::Sat, "VIA VL717"),
    // WD and Seagate: vendor-wide SAT, with the Cypress exceptions.
    (
        0x1058,
        Some(0x0701),
        Bridge::Unsupported("needs the Cypress protocol (smartctl -d usbcypress)"),
        "WD Passport (Cypress)",
    ),
    (
        0x0bc2,
        Some(0x0503),
        Bridge::Unsupported("needs the Cypress protocol (smartctl -d usbcypress)"),
        "Seagate (Cypress)",
    ),
    (0x1058, None, Bridge::Sat, "Western Digital"),
    (0x0bc2, None, Bridge::Sat, "Seagate"),
    // Raspberry Pi USB Flash Drive: SMART READ DATA works, RETURN STATUS does not.
    (
        0x2e8a,
        Some(0x0030),
        Bridge::SatNoStatus,
        "Raspberry Pi USB Flash Drive",
    ),
    // ASMedia SATA bridges (everything but the NVMe ones above).
    (0x174c, None, Bridge::Sat, "ASMedia"),
];

/// The bridge for a USB vendor/product id, with its description; `None` when unknown.
pub fn lookup(vendor: u16, product: u16) -> Option<(Bridge, &'static str)> {
    TABLE
        .iter()
        .find(|(v, p, _, _)| *v == vendor && p.is_none_or(|p| p == product))
        .map(|(_, _, b, d)| (*b, *d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_rows_win_over_vendor_rows() {
        assert_eq!(lookup(0x174c, 0x2362).unwrap().0, Bridge::SntAsmedia);
        assert_eq!(lookup(0x174c, 0x55aa).unwrap().0, Bridge::Sat);
        assert_eq!(lookup(0x1058, 0x0701).unwrap().0.name(), "unsupported");
        assert_eq!(lookup(0x1058, 0x25a3).unwrap().0, Bridge::Sat);
        assert_eq!(
            lookup(0x152d, 0x0578).unwrap(),
            (Bridge::Sat, "JMicron JMS578")
        );
        assert_eq!(lookup(0x152d, 0x0583).unwrap().0, Bridge::SntJmicron);
        assert!(matches!(
            lookup(0x152d, 0x0539).unwrap().0,
            Bridge::Risky(_)
        ));
        assert_eq!(lookup(0x2e8a, 0x0030).unwrap().0, Bridge::SatNoStatus);
        assert_eq!(lookup(0x0bda, 0x9210).unwrap().0, Bridge::SntRealtek);
    }

    #[test]
    fn unknown_bridges_get_nothing() {
        // QEMU usb-storage: smartctl says "Unknown USB bridge [0x46f4:0x0001]".
        assert_eq!(lookup(0x46f4, 0x0001), None);
        assert_eq!(lookup(0x152d, 0xffff), None);
    }

    #[test]
    fn no_vendor_row_shadows_a_later_specific_row() {
        for (i, (v, p, _, _)) in TABLE.iter().enumerate() {
            if p.is_none() {
                assert!(
                    !TABLE[i + 1..]
                        .iter()
                        .any(|(v2, p2, _, _)| v2 == v && p2.is_some()),
                    "vendor row {v:04x} before a specific one"
                );
            }
        }
    }
}

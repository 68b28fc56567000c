//! Recognising a Home Assistant OS disk from its parsed partition table and the filesystems
//! probed in each partition — every layout family of `haos-layout.md` §2: GPT (x86, OVA,
//! generic-aarch64, RPi5), hybrid GPT (RPi3/4, Yellow, Green), hybrid GPT with a `uboot`
//! entry that shifts data to p9 (ODROID-M1/M1S), DOS MBR with logical p5–p9 (ODROID-C2/C4/N2,
//! VIM3), and external data disks. Pure: no I/O. Offsets are never assumed; roles come from
//! GPT names, MBR PARTUUIDs, and filesystem labels.

use crate::fs::{FsInfo, FsKind};
use crate::table::{EntryKind, PartitionTable, TableKind};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a partition is for on an HAOS disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Uboot,
    Boot,
    Kernel0,
    System0,
    Kernel1,
    System1,
    Bootstate,
    Overlay,
    Data,
    DataExternal,
    /// The MBR extended container holding the logical partitions (MBR boards).
    Extended,
}

impl Role {
    /// GPT partition name HAOS gives this role.
    pub fn gpt_name(self) -> &'static str {
        match self {
            Role::Uboot => "uboot",
            Role::Boot => "hassos-boot",
            Role::Kernel0 => "hassos-kernel0",
            Role::System0 => "hassos-system0",
            Role::Kernel1 => "hassos-kernel1",
            Role::System1 => "hassos-system1",
            Role::Bootstate => "hassos-bootstate",
            Role::Overlay => "hassos-overlay",
            Role::Data => "hassos-data",
            Role::DataExternal => "hassos-data-external",
            Role::Extended => "extended",
        }
    }
    /// The fixed GPT PARTUUID of this role (haos-layout.md §1), where there is one.
    pub fn gpt_partuuid(self) -> Option<&'static str> {
        Some(match self {
            Role::Boot => "b3dd0952-733c-4c88-8cba-cab9b8b4377f",
            Role::Kernel0 => "26700fc6-b0bc-4ccf-9837-ea1a4cba3e65",
            Role::System0 => "8d3d53e3-6d49-4c38-8349-aff6859e82fd",
            Role::Kernel1 => "fc02a4f0-5350-406f-93a2-56cbed636b5f",
            Role::System1 => "a3ec664e-32ce-4665-95ea-7ae90ce9aa20",
            Role::Bootstate => "33236519-7f32-4dff-8002-3390b62c309d",
            Role::Overlay => "f1326040-5236-40eb-b683-aaa100a9afcf",
            Role::Data => "a52a4597-fa3a-4851-aefd-2fbe9f849079",
            _ => return None,
        })
    }
}

/// The eight roles every HAOS boot disk has.
pub const BOOT_DISK_ROLES: [Role; 8] = [
    Role::Boot,
    Role::Kernel0,
    Role::System0,
    Role::Kernel1,
    Role::System1,
    Role::Bootstate,
    Role::Overlay,
    Role::Data,
];

/// MBR boards: role by partition number (PARTUUID `48617373-0N`), haos-layout.md §2.3.
const MBR_ROLES: [(u32, Role); 8] = [
    (1, Role::Boot),
    (3, Role::Overlay),
    (4, Role::Data),
    (5, Role::Kernel0),
    (6, Role::System0),
    (7, Role::Kernel1),
    (8, Role::System1),
    (9, Role::Bootstate),
];

/// The HAOS MBR disk signature, ASCII "Hass".
pub const MBR_SIGNATURE: &str = "48617373";

/// Labels the data filesystem can carry, and what each means.
pub const DATA_LABELS: [(&str, &str); 4] = [
    ("hassos-data", "in use"),
    (
        "hassos-data-old",
        "moved away: the data was moved to an external data disk",
    ),
    (
        "hassos-data-dis",
        "disabled: relabelled at a first boot because another HAOS disk was attached",
    ),
    ("hassos-data-fail", "a data-disk move to this disk failed"),
];

/// Which layout family a disk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Plain GPT with protective MBR: generic-x86-64, OVA, generic-aarch64, RPi5.
    Gpt,
    /// GPT with hybrid MBR (0x0C entry over boot): RPi3/4, Yellow, Green.
    GptHybrid,
    /// Hybrid GPT whose p1 is `uboot`, shifting boot to p2 and data to p9: ODROID-M1/M1S.
    GptHybridUboot,
    /// DOS MBR with logical p5–p9: ODROID-C2/C4/N2, Khadas VIM3.
    Mbr,
    /// A lone `hassos-data-external` partition: the data disk of a data-disk move.
    ExternalData,
}

/// The verdict on a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Haos,
    ExternalDataDisk,
    NotHaos,
}

/// One role mapped to a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolePart {
    pub role: Role,
    pub number: u32,
}

/// Result of recognition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recognition {
    pub verdict: Verdict,
    pub family: Option<Family>,
    pub roles: Vec<RolePart>,
    /// For `not_haos`: why. Otherwise: notes about oddities (wrong PARTUUID, labels…).
    pub reasons: Vec<String>,
    /// Label of the data filesystem, when one was found.
    pub data_label: Option<String>,
    /// Bytes before the first partition that firmware uses (SPL/U-Boot), when larger than 1 MiB.
    pub spl_region_bytes: Option<u64>,
}

impl Recognition {
    /// Partition number holding `role`.
    pub fn part(&self, role: Role) -> Option<u32> {
        self.roles.iter().find(|r| r.role == role).map(|r| r.number)
    }
}

fn label_of(fs: Option<&FsInfo>) -> Option<&str> {
    fs.and_then(|f| f.label.as_deref())
}

fn is_fat(fs: Option<&FsInfo>) -> bool {
    matches!(fs.map(|f| &f.kind), Some(FsKind::Fat { .. }))
}

fn is_ext(fs: Option<&FsInfo>) -> bool {
    matches!(fs.map(|f| &f.kind), Some(FsKind::Ext { .. }))
}

fn data_label(fs: Option<&FsInfo>) -> Option<String> {
    let l = label_of(fs)?;
    if is_ext(fs) && DATA_LABELS.iter().any(|(d, _)| *d == l) {
        Some(l.to_string())
    } else {
        None
    }
}

fn not_haos(reason: String) -> Recognition {
    Recognition {
        verdict: Verdict::NotHaos,
        family: None,
        roles: Vec::new(),
        reasons: vec![reason],
        data_label: None,
        spl_region_bytes: None,
    }
}

/// Recognise an HAOS disk. `fs` maps partition numbers to what the probe found there.
pub fn recognise(table: &PartitionTable, fs: &BTreeMap<u32, FsInfo>) -> Recognition {
    match table.kind {
        TableKind::Gpt | TableKind::GptHybrid => recognise_gpt(table, fs),
        TableKind::Mbr => recognise_mbr(table, fs),
    }
}

fn recognise_gpt(table: &PartitionTable, fs: &BTreeMap<u32, FsInfo>) -> Recognition {
    let named = |n: &str| table.by_name(n).map(|p| p.number);
    // External data disk: a partition named hassos-data-external(-old).
    if BOOT_DISK_ROLES
        .iter()
        .all(|r| named(r.gpt_name()).is_none())
    {
        for ext_name in ["hassos-data-external", "hassos-data-external-old"] {
            if let Some(n) = named(ext_name) {
                let f = fs.get(&n);
                let mut rec = Recognition {
                    verdict: Verdict::ExternalDataDisk,
                    family: Some(Family::ExternalData),
                    roles: vec![RolePart {
                        role: Role::DataExternal,
                        number: n,
                    }],
                    reasons: Vec::new(),
                    data_label: data_label(f),
                    spl_region_bytes: None,
                };
                if rec.data_label.is_none() {
                    rec.reasons.push(format!(
                        "p{n} is named {ext_name} but holds no ext4 filesystem labelled hassos-data*{}",
                        describe_fs(f)
                    ));
                }
                if ext_name.ends_with("-old") {
                    rec.reasons.push(
                        "partition named hassos-data-external-old: a previous data disk, replaced by a newer one"
                            .into(),
                    );
                }
                return rec;
            }
        }
    }
    let mut roles = Vec::new();
    let mut missing = Vec::new();
    for r in BOOT_DISK_ROLES {
        match named(r.gpt_name()) {
            Some(n) => roles.push(RolePart { role: r, number: n }),
            None => missing.push(r.gpt_name()),
        }
    }
    if roles.is_empty() {
        return by_labels(table, fs, "no partition carries a hassos-* GPT name");
    }
    if !missing.is_empty() {
        let mut rec = not_haos(format!(
            "has some HAOS partitions but not {}: not a complete HAOS boot disk (damaged table?)",
            missing.join(", ")
        ));
        rec.roles = roles;
        return rec;
    }
    let uboot = named("uboot");
    if let Some(n) = uboot {
        roles.insert(
            0,
            RolePart {
                role: Role::Uboot,
                number: n,
            },
        );
    }
    let family = match (table.kind, uboot) {
        (TableKind::Gpt, _) => Family::Gpt,
        (_, Some(_)) => Family::GptHybridUboot,
        _ => Family::GptHybrid,
    };
    let mut rec = Recognition {
        verdict: Verdict::Haos,
        family: Some(family),
        roles,
        reasons: Vec::new(),
        data_label: None,
        spl_region_bytes: None,
    };
    for rp in &rec.roles {
        if let (Some(want), Some(p)) = (rp.role.gpt_partuuid(), table.partition(rp.number))
            && p.partuuid != want
        {
            rec.reasons.push(format!(
                "p{} ({}) has PARTUUID {} instead of HAOS's fixed {want}: the kernel command line \
                 or boot loader may not find it",
                rp.number,
                rp.role.gpt_name(),
                p.partuuid
            ));
        }
    }
    confirm_labels(&mut rec, table, fs);
    rec
}

fn recognise_mbr(table: &PartitionTable, fs: &BTreeMap<u32, FsInfo>) -> Recognition {
    if table.disk_id != MBR_SIGNATURE {
        return by_labels(
            table,
            fs,
            &format!(
                "DOS partition table with disk signature 0x{} (HAOS MBR boards use 0x{MBR_SIGNATURE}, \"Hass\")",
                table.disk_id
            ),
        );
    }
    let mut roles = Vec::new();
    let mut missing = Vec::new();
    for (n, r) in MBR_ROLES {
        let want_kind = if n >= 5 {
            EntryKind::Logical
        } else {
            EntryKind::Primary
        };
        match table.partition(n) {
            Some(p) if p.kind == want_kind => roles.push(RolePart { role: r, number: n }),
            _ => missing.push(format!("p{n} ({})", r.gpt_name())),
        }
    }
    if !missing.is_empty() {
        let mut rec = not_haos(format!(
            "disk signature is HAOS's 0x{MBR_SIGNATURE} but {} missing: damaged or not an HAOS table",
            missing.join(", ")
        ));
        rec.roles = roles;
        return rec;
    }
    if let Some(p) = table
        .partitions
        .iter()
        .find(|p| p.kind == EntryKind::Extended)
    {
        roles.push(RolePart {
            role: Role::Extended,
            number: p.number,
        });
    }
    roles.sort_by_key(|r| r.role);
    let mut rec = Recognition {
        verdict: Verdict::Haos,
        family: Some(Family::Mbr),
        roles,
        reasons: Vec::new(),
        data_label: None,
        spl_region_bytes: None,
    };
    confirm_labels(&mut rec, table, fs);
    rec
}

/// Without HAOS partition names or signature, accept a disk whose filesystems carry the HAOS
/// labels (boot FAT, overlay and data ext4); roles other than those stay unknown.
fn by_labels(table: &PartitionTable, fs: &BTreeMap<u32, FsInfo>, why: &str) -> Recognition {
    let find = |pred: &dyn Fn(Option<&FsInfo>) -> bool| {
        table
            .partitions
            .iter()
            .map(|p| p.number)
            .find(|n| pred(fs.get(n)))
    };
    let boot =
        find(&|f| is_fat(f) && label_of(f).is_some_and(|l| l.eq_ignore_ascii_case("hassos-boot")));
    let overlay = find(&|f| is_ext(f) && label_of(f) == Some("hassos-overlay"));
    let data = find(&|f| data_label(f).is_some());
    match (boot, overlay, data) {
        (Some(b), Some(o), Some(d)) => {
            let mut rec = Recognition {
                verdict: Verdict::Haos,
                family: Some(if table.kind == TableKind::Mbr {
                    Family::Mbr
                } else if table.kind == TableKind::Gpt {
                    Family::Gpt
                } else {
                    Family::GptHybrid
                }),
                roles: vec![
                    RolePart {
                        role: Role::Boot,
                        number: b,
                    },
                    RolePart {
                        role: Role::Overlay,
                        number: o,
                    },
                    RolePart {
                        role: Role::Data,
                        number: d,
                    },
                ],
                reasons: vec![format!(
                    "{why}; recognised by filesystem labels only (kernel, system and bootstate partitions unknown)"
                )],
                data_label: None,
                spl_region_bytes: None,
            };
            confirm_labels(&mut rec, table, fs);
            rec
        }
        _ if table.kind == TableKind::Mbr || why.starts_with("no partition") => {
            let mut r = not_haos(format!(
                "{why}, and no filesystems labelled hassos-boot, hassos-overlay and hassos-data"
            ));
            if data.is_some() {
                r.reasons.push("a filesystem labelled hassos-data* is present: maybe a data disk with a damaged table".into());
            }
            r
        }
        _ => not_haos(why.to_string()),
    }
}

fn describe_fs(f: Option<&FsInfo>) -> String {
    match f {
        None => " (no filesystem recognised)".into(),
        Some(f) => format!(
            " (found {}{})",
            crate::fs::fs_name(&f.kind),
            f.label
                .as_deref()
                .map(|l| format!(" labelled '{l}'"))
                .unwrap_or_default()
        ),
    }
}

fn confirm_labels(rec: &mut Recognition, table: &PartitionTable, fs: &BTreeMap<u32, FsInfo>) {
    let sector = table.sector_size as u64;
    if let Some(n) = rec.part(Role::Boot) {
        let f = fs.get(&n);
        if !(is_fat(f) && label_of(f).is_some_and(|l| l.eq_ignore_ascii_case("hassos-boot"))) {
            rec.reasons.push(format!(
                "boot partition p{n} holds no FAT filesystem labelled hassos-boot{}",
                describe_fs(f)
            ));
        }
        if let Some(p) = table.partition(n) {
            let start = p.start_lba.saturating_mul(sector);
            let first = table
                .partitions
                .iter()
                .map(|p| p.start_lba.saturating_mul(sector))
                .min()
                .unwrap_or(start);
            if first > (1 << 20) {
                rec.spl_region_bytes = Some(first);
            }
        }
    }
    if let Some(n) = rec.part(Role::Overlay) {
        let f = fs.get(&n);
        if !(is_ext(f) && label_of(f) == Some("hassos-overlay")) {
            rec.reasons.push(format!(
                "overlay partition p{n} holds no ext4 filesystem labelled hassos-overlay{}",
                describe_fs(f)
            ));
        }
    }
    if let Some(n) = rec.part(Role::Data) {
        let f = fs.get(&n);
        rec.data_label = data_label(f);
        match rec.data_label.as_deref() {
            None => rec.reasons.push(format!(
                "data partition p{n} holds no ext4 filesystem labelled hassos-data*{}: wiped or damaged?",
                describe_fs(f)
            )),
            Some("hassos-data") => {}
            Some(l) => {
                if let Some((_, why)) = DATA_LABELS.iter().find(|(d, _)| *d == l) {
                    rec.reasons.push(format!("data filesystem is labelled {l}: {why}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Partition;

    fn gpt_part(n: u32, name: &str, uuid: &str, start: u64) -> Partition {
        Partition {
            number: n,
            kind: EntryKind::Gpt,
            start_lba: start,
            size_lba: 2048,
            name: Some(name.into()),
            type_id: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".into(),
            partuuid: uuid.into(),
            bootable: false,
            attributes: 0,
        }
    }

    fn table(kind: TableKind, parts: Vec<Partition>, disk_id: &str) -> PartitionTable {
        PartitionTable {
            kind,
            sector_size: 512,
            disk_id: disk_id.into(),
            partitions: parts,
            mbr_entries: vec![],
            gpt: None,
            problems: vec![],
        }
    }

    fn fat(label: &str) -> FsInfo {
        FsInfo {
            kind: FsKind::Fat {
                bits: 16,
                cluster_size: 2048,
                clusters: 16000,
            },
            label: Some(label.into()),
            uuid: None,
            size_bytes: 0,
            used_bytes: None,
        }
    }

    fn ext(label: &str) -> FsInfo {
        FsInfo {
            kind: FsKind::Ext {
                version: 4,
                block_size: 4096,
                blocks: 100,
                free_blocks: 50,
                unknown_features: vec![],
            },
            label: Some(label.into()),
            uuid: None,
            size_bytes: 0,
            used_bytes: None,
        }
    }

    fn haos_gpt(with_uboot: bool, data_lbl: &str) -> (PartitionTable, BTreeMap<u32, FsInfo>) {
        let mut parts = Vec::new();
        let mut n = 1;
        if with_uboot {
            parts.push(gpt_part(
                n,
                "uboot",
                "00000000-0000-0000-0000-000000000001",
                16384,
            ));
            n += 1;
        }
        let mut fs = BTreeMap::new();
        for (i, r) in BOOT_DISK_ROLES.iter().enumerate() {
            parts.push(gpt_part(
                n,
                r.gpt_name(),
                r.gpt_partuuid().unwrap(),
                32768 + i as u64 * 4096,
            ));
            match r {
                Role::Boot => {
                    fs.insert(n, fat("hassos-boot"));
                }
                Role::Overlay => {
                    fs.insert(n, ext("hassos-overlay"));
                }
                Role::Data => {
                    fs.insert(n, ext(data_lbl));
                }
                _ => {}
            }
            n += 1;
        }
        (table(TableKind::GptHybrid, parts, "abc"), fs)
    }

    #[test]
    fn hybrid_and_m1_shift() {
        let (t, fs) = haos_gpt(false, "hassos-data");
        let r = recognise(&t, &fs);
        assert_eq!(r.verdict, Verdict::Haos);
        assert_eq!(r.family, Some(Family::GptHybrid));
        assert_eq!(r.part(Role::Data), Some(8));
        assert!(r.reasons.is_empty(), "{:?}", r.reasons);
        assert_eq!(r.spl_region_bytes, Some(32768 * 512));

        let (t, fs) = haos_gpt(true, "hassos-data");
        let r = recognise(&t, &fs);
        assert_eq!(r.family, Some(Family::GptHybridUboot));
        assert_eq!(r.part(Role::Data), Some(9));
        assert_eq!(r.part(Role::Boot), Some(2));
        assert_eq!(r.part(Role::Uboot), Some(1));
    }

    #[test]
    fn data_label_variants_and_wrong_partuuid() {
        for (l, _) in DATA_LABELS {
            let (t, fs) = haos_gpt(false, l);
            let r = recognise(&t, &fs);
            assert_eq!(r.verdict, Verdict::Haos);
            assert_eq!(r.data_label.as_deref(), Some(l));
            assert_eq!(r.reasons.len(), usize::from(l != "hassos-data"));
        }
        let (mut t, fs) = haos_gpt(false, "hassos-data");
        t.partitions[2].partuuid = "11111111-1111-1111-1111-111111111111".into();
        let r = recognise(&t, &fs);
        assert!(r.reasons[0].contains("PARTUUID"), "{:?}", r.reasons);
    }

    #[test]
    fn missing_partition_is_not_haos() {
        let (mut t, fs) = haos_gpt(false, "hassos-data");
        t.partitions.remove(5);
        let r = recognise(&t, &fs);
        assert_eq!(r.verdict, Verdict::NotHaos);
        assert!(r.reasons[0].contains("hassos-bootstate"));
    }

    #[test]
    fn external_data_disk() {
        let t = table(
            TableKind::Gpt,
            vec![gpt_part(1, "hassos-data-external", "x", 2048)],
            "d",
        );
        let mut fs = BTreeMap::new();
        fs.insert(1, ext("hassos-data"));
        let r = recognise(&t, &fs);
        assert_eq!(r.verdict, Verdict::ExternalDataDisk);
        assert_eq!(r.part(Role::DataExternal), Some(1));
    }

    fn mbr_part(n: u32, kind: EntryKind) -> Partition {
        Partition {
            number: n,
            kind,
            start_lba: 16384 * n as u64,
            size_lba: 2048,
            name: None,
            type_id: "0x83".into(),
            partuuid: format!("48617373-{n:02x}"),
            bootable: n == 1,
            attributes: 0,
        }
    }

    #[test]
    fn mbr_board_and_plain_linux() {
        let mut parts = vec![
            mbr_part(1, EntryKind::Primary),
            mbr_part(2, EntryKind::Extended),
            mbr_part(3, EntryKind::Primary),
            mbr_part(4, EntryKind::Primary),
        ];
        for n in 5..=9 {
            parts.push(mbr_part(n, EntryKind::Logical));
        }
        let mut fs = BTreeMap::new();
        fs.insert(1, fat("HASSOS-BOOT"));
        fs.insert(3, ext("hassos-overlay"));
        fs.insert(4, ext("hassos-data"));
        let t = table(TableKind::Mbr, parts.clone(), MBR_SIGNATURE);
        let r = recognise(&t, &fs);
        assert_eq!(r.verdict, Verdict::Haos);
        assert_eq!(r.family, Some(Family::Mbr));
        assert_eq!(r.part(Role::Bootstate), Some(9));
        assert_eq!(r.part(Role::Data), Some(4));
        assert!(r.reasons.is_empty(), "{:?}", r.reasons);

        let t = table(TableKind::Mbr, parts[..2].to_vec(), "deadbeef");
        let r = recognise(&t, &BTreeMap::new());
        assert_eq!(r.verdict, Verdict::NotHaos);
        assert!(r.reasons[0].contains("0xdeadbeef"));
    }
}

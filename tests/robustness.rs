//! Robustness of the whole offline pipeline on damaged disks: for every fixture family image
//! (tests/fixtures/haos/mkhaos.sh), a seeded mutation loop corrupts the metadata that matters
//! (sector 0, the primary and backup GPT, the EBR chain, the boot partition's boot sector,
//! FAT and root directory, the bootstate, the data partition's ext4 superblock, group
//! descriptors and inode table, system0's EROFS metadata) or truncates the image, and
//! `inspect_reader` at full depth must return — Ok or Err — without panicking.
//!
//! Deterministic: iteration `i` of family `f` always makes the same damage (xorshift seeded
//! from [`SEED`], the family name and `i`), and a failure names them. Replay one case with
//! `LIFEBOAT_ROBUST_ONLY=<family>:<iteration>`; scale the loop with
//! `LIFEBOAT_ROBUST_ITERS=<n>` (per family, default [`ITERS`]).

mod common;

use lifeboat::haos::layout::{Role, Verdict};
use lifeboat::haos::view::{Depth, InspectReport, SourceView, inspect_reader};
use lifeboat::io::source::SourceKind;
use lifeboat::io::{FileReader, ReadAt, read_vec};
use lifeboat::table::{self, EntryKind, PartitionTable, mbr};
use std::io;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Fixed seed of the mutation loop.
const SEED: u64 = 0x6c69_6665_626f_6174; // "lifeboat"
/// Mutated inspections per family image. Measured in a debug build on a 2-core machine:
/// 9 families x 300 take about 8 s of CPU (3 ms per inspection), 13 s wall-clock while two
/// fuzzers held both cores.
const ITERS: u64 = 300;

/// xorshift64*: small, fast and good enough to pick offsets.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 once, so nearby seeds do not give nearby streams; never zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn in_range(&mut self, r: &Range<u64>) -> u64 {
        r.start + self.below((r.end - r.start).max(1))
    }
}

/// The clean image with byte patches on top and, possibly, cut short.
struct Mutated {
    base: Arc<FileReader>,
    len: u64,
    patches: Vec<(u64, u8)>,
}

impl ReadAt for Mutated {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"))?;
        self.base.read_exact_at(buf, offset)?;
        for &(at, byte) in &self.patches {
            if (offset..end).contains(&at) {
                buf[(at - offset) as usize] = byte;
            }
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// A named byte range of the image worth corrupting.
struct Region {
    name: String,
    bytes: Range<u64>,
}

fn inspect(r: Arc<dyn ReadAt + Send + Sync>, path: &str) -> anyhow::Result<InspectReport> {
    let view = SourceView {
        path: path.to_string(),
        kind: SourceKind::ImageFile,
        size: r.len(),
        sector_size: 512,
    };
    inspect_reader(r, view, Depth::Full)
}

fn u32_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[off..off + 4].try_into().unwrap()))
}

/// The regions of `img` to corrupt, from its clean table and the clean report's roles.
fn regions(img: &FileReader, t: &PartitionTable, rep: &InspectReport) -> Vec<Region> {
    let ss = u64::from(t.sector_size);
    let len = img.len();
    let mut out = vec![Region {
        name: "sector 0".into(),
        bytes: 0..ss,
    }];
    let mut add = |name: String, start: u64, n: u64| {
        let end = start.saturating_add(n).min(len);
        if start < end {
            out.push(Region {
                name,
                bytes: start..end,
            });
        }
    };
    if let Some(g) = &t.gpt {
        let entries = u64::from(g.entry_count) * u64::from(g.entry_size);
        add("GPT header".into(), g.primary_lba * ss, ss);
        add("GPT entries".into(), g.entries_lba * ss, entries);
        // The backup entry array sits right before the backup header.
        let backup_entries = (g.backup_lba * ss).saturating_sub(entries);
        add("backup GPT".into(), backup_entries, entries + ss);
    }
    // The EBR chain: one at the start of the extended partition, each linking the next.
    if let Some(ext) = t.partitions.iter().find(|p| p.kind == EntryKind::Extended) {
        let mut lba = Some(ext.start_lba);
        for i in 0..16 {
            let Some(at) = lba else { break };
            add(format!("EBR {i}"), at * ss, ss);
            lba = read_vec(img, at * ss, 512)
                .ok()
                .and_then(|s| mbr::parse_ebr(&s).ok())
                .and_then(|e| e.next)
                .map(|next| ext.start_lba + u64::from(next));
        }
    }
    let part_of = |role: Role| {
        rep.partitions
            .iter()
            .find(|p| p.role == Some(role))
            .and_then(|p| t.partition(p.part.number))
            .map(|p| (p.start_bytes(t.sector_size), p.size_bytes(t.sector_size)))
    };
    if let Some((start, _)) = part_of(Role::Boot) {
        add("boot: boot sector, FAT, root dir".into(), start, 64 << 10);
    }
    if let Some((start, _)) = part_of(Role::Bootstate) {
        add("bootstate".into(), start, 32 << 10);
    }
    if let Some((start, _)) = part_of(Role::System0) {
        add(
            "system0: EROFS superblock and metadata".into(),
            start,
            32 << 10,
        );
    }
    for role in [Role::Data, Role::DataExternal] {
        let Some((start, size)) = part_of(role) else {
            continue;
        };
        add("data: ext4 superblock".into(), start + 1024, 1024);
        let Ok(sb) = read_vec(img, start + 1024, 1024) else {
            continue;
        };
        let block = 1024u64 << u32_at(&sb, 0x18).min(6);
        let gdt = (u32_at(&sb, 0x14) + 1) * block;
        add("data: ext4 group descriptors".into(), start + gdt, block);
        let Ok(gd) = read_vec(img, start + gdt, 64) else {
            continue;
        };
        let desc64 = u32_at(&sb, 0x60) & 0x80 != 0;
        let hi = if desc64 { u32_at(&gd, 0x28) << 32 } else { 0 };
        let itable = (u32_at(&gd, 8) | hi) * block;
        if itable < size {
            add(
                "data: ext4 inode table start".into(),
                start + itable,
                32 << 10,
            );
        }
    }
    out
}

/// Damage one copy of the image the way iteration `iter` says; returns the damage's name.
fn mutate(rng: &mut Rng, regions: &[Region], full_len: u64) -> (String, u64, Vec<(u64, u8)>) {
    let mut patches = Vec::new();
    let pick = rng.below(regions.len() as u64 + 1) as usize;
    let Some(region) = regions.get(pick) else {
        // Truncation: anywhere, or just inside the first 4 MiB where the tables live.
        let cut = if rng.below(2) == 0 {
            rng.below(full_len)
        } else {
            rng.below(full_len.min(4 << 20))
        };
        return (format!("truncated at {cut}"), cut, patches);
    };
    let n = 1 + rng.below(8);
    for _ in 0..n {
        let at = rng.in_range(&region.bytes);
        match rng.below(6) {
            0 => patches.push((at, rng.next() as u8)),
            1 => patches.push((at, 0)),
            2 => patches.push((at, 0xff)),
            3 => {
                // An extreme little-endian u32 at an aligned offset.
                let v: u32 = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff][rng.below(5) as usize];
                let at = at & !3;
                for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                    patches.push((at + i as u64, b));
                }
            }
            4 => {
                // A run of random bytes (a torn write).
                for i in 0..1 + rng.below(64) {
                    patches.push((at + i, rng.next() as u8));
                }
            }
            _ => {
                // A zeroed stretch (an erased flash page).
                for i in 0..1 + rng.below(512) {
                    patches.push((at + i, 0));
                }
            }
        }
    }
    patches.retain(|(at, _)| *at < full_len);
    // Sometimes truncate as well.
    let len = if rng.below(8) == 0 {
        region.bytes.start + rng.below(full_len - region.bytes.start)
    } else {
        full_len
    };
    (format!("{} ({} patches)", region.name, n), len, patches)
}

fn family_seed(family: &str, iter: u64) -> u64 {
    let mut h = SEED;
    for b in family.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h ^ iter.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn run_family(family: &str, want: Verdict) {
    let Some(dir) = common::fixtures_or_skip(&format!("robustness {family}")) else {
        return;
    };
    let path = dir.join(format!("{family}.img"));
    let file = std::fs::File::open(&path).unwrap();
    let full_len = file.metadata().unwrap().len();
    let base = Arc::new(FileReader::new(file, full_len));

    // The clean image: the verdict the builder promises, and the regions to corrupt.
    let clean = inspect(base.clone(), &path.display().to_string()).unwrap();
    assert_eq!(
        clean.verdict, want,
        "{family}: clean image: {:?}",
        clean.reasons
    );
    let t = table::read_table(&*base, 512).unwrap();
    let regions = regions(&base, &t, &clean);
    if want == Verdict::Haos {
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        for must in [
            "GPT header",
            "boot: ",
            "bootstate",
            "system0",
            "data: ext4 inode table",
        ] {
            if t.gpt.is_none() && must == "GPT header" {
                continue;
            }
            assert!(
                names.iter().any(|n| n.starts_with(must)),
                "{family}: no region {must:?} in {names:?}"
            );
        }
    }

    let (iters, only) = match std::env::var("LIFEBOAT_ROBUST_ONLY") {
        Ok(v) => match v.split_once(':') {
            Some((f, i)) if f == family => (0..1, i.parse::<u64>().ok()),
            _ => return,
        },
        Err(_) => {
            let n = std::env::var("LIFEBOAT_ROBUST_ITERS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(ITERS);
            (0..n, None)
        }
    };
    let mut failures = Vec::new();
    for i in iters {
        let iter = only.unwrap_or(i);
        let mut rng = Rng::new(family_seed(family, iter));
        let (what, len, patches) = mutate(&mut rng, &regions, full_len);
        let img = Arc::new(Mutated {
            base: base.clone(),
            len,
            patches,
        });
        let out = catch_unwind(AssertUnwindSafe(|| {
            let _ = inspect(img, family);
        }));
        if let Err(p) = out {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!(
                "seed {SEED:#x} {family}:{iter} ({what}): panicked: {msg}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "inspect panicked on damaged {family} images (replay with LIFEBOAT_ROBUST_ONLY=<family>:<iteration>):\n{}",
        failures.join("\n")
    );
}

macro_rules! families {
    ($($test:ident => $family:literal, $verdict:ident;)*) => {$(
        #[test]
        fn $test() {
            run_family($family, Verdict::$verdict);
        }
    )*};
}

// The variants rpi4-data-dis/-fail differ from rpi4-data-old only in the data label.
families! {
    damaged_rpi4 => "rpi4", Haos;
    damaged_rpi5 => "rpi5", Haos;
    damaged_x86 => "x86", Haos;
    damaged_green => "green", Haos;
    damaged_odroid_m1 => "odroid-m1", Haos;
    damaged_odroid_n2 => "odroid-n2", Haos;
    damaged_rpi4_data_old => "rpi4-data-old", Haos;
    damaged_external_data => "external-data", ExternalDataDisk;
    damaged_not_haos => "not-haos", NotHaos;
}

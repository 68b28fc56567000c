//! Cross-checks `lifeboat::table::read_table` against util-linux `sfdisk` (and `sgdisk`
//! for a hybrid MBR): each test writes a table into a sparse temp file with the real tool,
//! then compares our parse with `sfdisk --json`. Skipped, with a printed reason, when the
//! tool is not installed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lifeboat::io::FileReader;
use lifeboat::table::{EntryKind, PartitionTable, TableKind, read_table};
use serde_json::Value;

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn sparse_file(dir: &Path, name: &str, len: u64) -> PathBuf {
    let p = dir.join(name);
    let f = File::create(&p).unwrap();
    f.set_len(len).unwrap();
    p
}

fn run_sfdisk(sfdisk: &Path, args: &[&str], file: &Path, script: &str) {
    feed(
        Command::new(sfdisk)
            .args(args)
            .args(["--no-reread", "--no-tell-kernel", "-q"])
            .arg(file),
        script,
    );
}

/// Run `cmd` with `input` on stdin; assert success.
fn feed(cmd: &mut Command, input: &str) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that exits early closes the pipe; its exit status tells why.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sfdisk_json(sfdisk: &Path, file: &Path, extra: &[&str]) -> Value {
    let out = Command::new(sfdisk)
        .args(extra)
        .arg("--json")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["partitiontable"].clone()
}

fn read(file: &Path, ss: u32) -> PartitionTable {
    let f = File::open(file).unwrap();
    let len = f.metadata().unwrap().len();
    read_table(&FileReader::new(f, len), ss).unwrap()
}

/// Partition number from an sfdisk node name like `/tmp/x/disk.img12`.
fn node_number(node: &str) -> u32 {
    let digits: String = node
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap()
}

/// Compare partitions (number, start, size, type, uuid, name, bootable) with sfdisk's JSON.
fn compare(t: &PartitionTable, j: &Value) {
    let parts = j["partitions"].as_array().unwrap();
    let ours: Vec<_> = t
        .partitions
        .iter()
        .filter(|p| p.kind != EntryKind::Extended || j["label"] == "dos")
        .collect();
    assert_eq!(ours.len(), parts.len(), "ours {t:#?}\nsfdisk {j:#}");
    for jp in parts {
        let n = node_number(jp["node"].as_str().unwrap());
        let p = t.partition(n).unwrap_or_else(|| panic!("p{n} missing"));
        assert_eq!(p.start_lba, jp["start"].as_u64().unwrap(), "p{n} start");
        assert_eq!(p.size_lba, jp["size"].as_u64().unwrap(), "p{n} size");
        let ty = jp["type"].as_str().unwrap();
        if j["label"] == "gpt" {
            assert_eq!(p.type_id, ty, "p{n} type");
            assert_eq!(p.partuuid, jp["uuid"].as_str().unwrap().to_lowercase());
            assert_eq!(
                p.name.as_deref().unwrap_or(""),
                jp["name"].as_str().unwrap_or("")
            );
            let legacy = jp["attrs"]
                .as_str()
                .is_some_and(|a| a.contains("LegacyBIOSBootable"));
            assert_eq!(p.bootable, legacy, "p{n} bootable");
        } else {
            let want = u8::from_str_radix(ty, 16).unwrap();
            assert_eq!(p.type_id, format!("0x{want:02x}"), "p{n} type");
            assert_eq!(p.bootable, jp["bootable"].as_bool().unwrap_or(false));
        }
    }
}

const GPT_SCRIPT: &str = "label: gpt
label-id: 0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9
first-lba: 34
start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=B3DD0952-733C-4C88-8CBA-CAB9B8B4377F, name=\"hassos-boot\"
start=10240, size=6144, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=26700FC6-B0BC-4CCF-9837-EA1A4CBA3E65, name=\"hassos-kernel0\", attrs=\"LegacyBIOSBootable\"
start=16384, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=8D3D53E3-6D49-4C38-8349-AFF6859E82FD, name=\"hassos-system0\"
start=49152, size=6144, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=FC02A4F0-5350-406F-93A2-56CBED636B5F, name=\"hassos-kernel1\"
start=55296, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=A3EC664E-32CE-4665-95EA-7AE90CE9AA20, name=\"hassos-system1\"
start=88064, size=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=33236519-7F32-4DFF-8002-3390B62C309D, name=\"hassos-bootstate\"
start=90112, size=12288, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=F1326040-5236-40EB-B683-AAA100A9AFCF, name=\"hassos-overlay\"
start=102400, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=A52A4597-FA3A-4851-AEFD-2FBE9F849079, name=\"hassos-data\"
";

#[test]
fn gpt_matches_sfdisk() {
    let Some(sfdisk) = find_tool("sfdisk") else {
        eprintln!("skipped: sfdisk not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "gpt.img", 64 << 20);
    run_sfdisk(&sfdisk, &[], &img, GPT_SCRIPT);
    let j = sfdisk_json(&sfdisk, &img, &[]);
    let t = read(&img, 512);
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.sector_size, 512);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.disk_id, j["id"].as_str().unwrap().to_lowercase());
    let g = t.gpt.as_ref().unwrap();
    assert!(g.primary_ok && g.backup_ok);
    assert_eq!(g.first_usable_lba, j["firstlba"].as_u64().unwrap());
    assert_eq!(g.last_usable_lba, j["lastlba"].as_u64().unwrap());
    assert_eq!(g.backup_lba, (64 << 20) / 512 - 1);
    compare(&t, &j);
    assert_eq!(t.by_name("hassos-data").unwrap().number, 8);
    assert_eq!(t.mbr_entries.len(), 1);
    assert_eq!(t.mbr_entries[0].type_byte, 0xEE);

    // Grown "disk": backup no longer at the end (information, table intact).
    let f = OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(128 << 20).unwrap();
    let t = read(&img, 512);
    assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
    assert!(t.problems[0].starts_with("backup GPT not at end of disk"));
    compare(&t, &j);

    // Truncated image: backup missing, data partition runs past the end.
    f.set_len(40 << 20).unwrap();
    let t = read(&img, 512);
    assert!(t.gpt.as_ref().unwrap().primary_ok);
    assert!(!t.gpt.as_ref().unwrap().backup_ok);
    assert!(
        t.problems
            .iter()
            .any(|p| p.starts_with("backup GPT header missing at LBA 131071")),
        "{:?}",
        t.problems
    );
}

#[test]
fn gpt_primary_damaged_falls_back_to_backup() {
    let Some(sfdisk) = find_tool("sfdisk") else {
        eprintln!("skipped: sfdisk not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "gpt.img", 64 << 20);
    run_sfdisk(&sfdisk, &[], &img, GPT_SCRIPT);
    let j = sfdisk_json(&sfdisk, &img, &[]);
    // Flip a byte inside the primary header's disk GUID.
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[512 + 60] ^= 0x5A;
    std::fs::write(&img, &bytes).unwrap();
    let t = read(&img, 512);
    let g = t.gpt.as_ref().unwrap();
    assert!(!g.primary_ok && g.backup_ok);
    assert!(
        t.problems
            .iter()
            .any(|p| p.starts_with("primary GPT header CRC mismatch; using backup"))
    );
    compare(&t, &j);
}

/// Compare with `fdisk -l` output (used where sfdisk lacks `--sector-size`, < 2.39).
fn compare_fdisk_list(t: &PartitionTable, fdisk: &Path, img: &Path) {
    let out = Command::new(fdisk)
        .args([
            "-b",
            "4096",
            "-l",
            "-o",
            "Device,Start,Sectors,Type-UUID,UUID",
        ])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("Disk identifier:"))
        .unwrap()
        .trim()
        .to_lowercase();
    assert_eq!(t.disk_id, id);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("Device"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .filter(|r: &Vec<&str>| r.len() == 5)
        .collect();
    assert_eq!(rows.len(), t.partitions.len(), "{text}");
    for r in rows {
        let p = t.partition(node_number(r[0])).unwrap();
        assert_eq!(p.start_lba.to_string(), r[1]);
        assert_eq!(p.size_lba.to_string(), r[2]);
        assert_eq!(p.type_id, r[3]);
        assert_eq!(p.partuuid, r[4].to_lowercase());
    }
}

#[test]
fn gpt_4096_byte_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "gpt4k.img", 64 << 20);
    let sfdisk = find_tool("sfdisk");
    let sfdisk_has_ss = sfdisk.as_ref().is_some_and(|s| {
        Command::new(s)
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--sector-size"))
    });
    let check: Box<dyn Fn(&PartitionTable)> = match (sfdisk, find_tool("fdisk")) {
        (Some(sfdisk), _) if sfdisk_has_ss => {
            let script = "label: gpt
start=256, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"hassos-boot\"
start=2304, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"hassos-data\"
";
            run_sfdisk(&sfdisk, &["--sector-size", "4096"], &img, script);
            let j = sfdisk_json(&sfdisk, &img, &["--sector-size", "4096"]);
            Box::new(move |t| compare(t, &j))
        }
        (_, Some(fdisk)) => {
            // g: new GPT; two partitions at 4 KiB LBAs 256+2048 and 2304..end.
            feed(
                Command::new(&fdisk).args(["-b", "4096"]).arg(&img),
                "g\nn\n1\n256\n+2047\nn\n2\n2304\n\nw\n",
            );
            let img2 = img.clone();
            Box::new(move |t| compare_fdisk_list(t, &fdisk, &img2))
        }
        _ => {
            eprintln!("skipped: neither sfdisk with --sector-size nor fdisk is installed");
            return;
        }
    };
    // Asked for 512, found with 4096.
    let t = read(&img, 512);
    assert_eq!(t.sector_size, 4096);
    assert!(t.problems.iter().any(|p| p.contains("4096-byte sectors")));
    assert_eq!(t.partition(1).unwrap().start_lba, 256);
    check(&t);
    let t = read(&img, 4096);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    check(&t);
}

#[test]
fn hybrid_from_sgdisk() {
    let (Some(sfdisk), Some(sgdisk)) = (find_tool("sfdisk"), find_tool("sgdisk")) else {
        eprintln!("skipped: sfdisk or sgdisk not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "hyb.img", 64 << 20);
    run_sfdisk(&sfdisk, &[], &img, GPT_SCRIPT);
    let out = Command::new(sgdisk)
        .arg("-h")
        .arg("1:EE")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = sfdisk_json(&sfdisk, &img, &[]);
    let t = read(&img, 512);
    assert_eq!(t.kind, TableKind::GptHybrid);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    compare(&t, &j);
    let data: Vec<_> = t
        .mbr_entries
        .iter()
        .filter(|e| e.type_byte != 0xEE)
        .collect();
    assert_eq!(data.len(), 1);
    assert_eq!((data[0].start_lba, data[0].size_lba), (2048, 8192));
    assert!(
        t.mbr_entries
            .iter()
            .any(|e| e.type_byte == 0xEE && e.start_lba == 1)
    );
}

#[test]
fn dos_with_logicals_matches_sfdisk() {
    let Some(sfdisk) = find_tool("sfdisk") else {
        eprintln!("skipped: sfdisk not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "dos.img", 64 << 20);
    // ODROID shape (haos-layout.md §2.3), scaled to 64 MiB.
    let script = "label: dos
label-id: 0x48617373
start=2048, size=4096, type=c, bootable
start=8192, size=65536, type=f
start=73728, size=16384, type=83
start=90112, type=83
start=10240, size=4096, type=83
start=16384, size=8192, type=83
start=26624, size=4096, type=83
start=32768, size=8192, type=83
start=43008, size=2048, type=83
";
    run_sfdisk(&sfdisk, &[], &img, script);
    let j = sfdisk_json(&sfdisk, &img, &[]);
    let t = read(&img, 512);
    assert_eq!(t.kind, TableKind::Mbr);
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.disk_id, "48617373");
    assert_eq!(
        format!("0x{}", t.disk_id),
        j["id"].as_str().unwrap().to_lowercase()
    );
    compare(&t, &j);
    let nums: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    assert_eq!(nums, (1..=9).collect::<Vec<_>>());
    assert_eq!(t.partition(2).unwrap().kind, EntryKind::Extended);
    for n in 5..=9 {
        let p = t.partition(n).unwrap();
        assert_eq!(p.kind, EntryKind::Logical);
        assert_eq!(p.partuuid, format!("48617373-{n:02x}"));
    }
    assert_eq!(t.partition(1).unwrap().partuuid, "48617373-01");
}

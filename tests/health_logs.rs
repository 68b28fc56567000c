//! `lifeboat health` and the drive logs, without hardware: ATA SMART error and self-test
//! logs and NVMe error and self-test logs decoded from saved pages (`--from-raw`, pages
//! built field by field from the ATA/ACS and NVMe layouts) with their verdicts and exit
//! bits; and the NVMe temperature from the kernel's hwmon sensor, found through a copy of
//! the NVMe sysfs fixture tree (native multipath: through the hidden path `nvme0c0n1` or
//! the subsystem's controller link).

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

const FAIL: i32 = 8;
const WARN: i32 = 16;
const UNKNOWN: i32 = 32;

fn health(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("lifeboat")
        .unwrap()
        .arg("health")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = health(&a);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

fn seal(p: &mut [u8]) {
    let s = p[..511].iter().fold(0u8, |s, &x| s.wrapping_add(x));
    p[511] = 0u8.wrapping_sub(s);
}

fn write(dir: &Path, name: &str, b: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p
}

/// SMART self-test log (0x06) with (type, status, hours, LBA) entries, oldest first.
fn self_test_log(tests: &[(u8, u8, u16, u32)]) -> Vec<u8> {
    let mut p = vec![0u8; 512];
    p[0] = 1;
    for (i, (t, s, h, lba)) in tests.iter().enumerate() {
        let e = &mut p[2 + i * 24..2 + i * 24 + 24];
        e[0] = *t;
        e[1] = *s;
        e[2..4].copy_from_slice(&h.to_le_bytes());
        e[5..9].copy_from_slice(&lba.to_le_bytes());
    }
    p[508] = tests.len() as u8;
    seal(&mut p);
    p
}

#[test]
fn ata_self_test_log_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    // Short test passed at hour 100, then an extended test failed reading LBA 123456 with
    // 60% left at hour 150: fail, exit bit 3.
    let p = write(
        dir.path(),
        "sda.ata-selftest-log.bin",
        &self_test_log(&[(1, 0x00, 100, 0), (2, 0x76, 150, 123_456)]),
    );
    let (code, doc) = json(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-selftest-log",
    ]);
    assert_eq!(code, FAIL, "{doc:#}");
    let d = &doc["devices"][0];
    assert_eq!(d["verdict"], "fail");
    let st = &d["ata"]["self_test_log"];
    assert_eq!(st["entries"][0]["test_type_text"], "Extended offline");
    assert_eq!(st["entries"][0]["result_text"], "Completed: read failure");
    assert_eq!(st["entries"][0]["remaining_percent"], 60);
    assert_eq!(st["entries"][0]["failing_lba"], 123_456);
    assert_eq!(st["entries"][1]["passed"], true);
    assert!(st["entries"][1]["failing_lba"].is_null());
    assert_eq!(
        d["reasons"][0]["text"],
        "the last self-test (extended offline) failed: Completed: read failure at LBA 123456 at \
         power-on hour 150"
    );
    // The text report lists the log.
    let (_, text, _) = health(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-selftest-log",
    ]);
    assert!(
        text.contains("self-test log (standard, revision 1), newest first:"),
        "{text}"
    );
    assert!(
        text.contains("Extended offline     Completed: read failure         60%    150  123456"),
        "{text}"
    );
    // A later passing extended test: pass, the old failure noted.
    let p = write(
        dir.path(),
        "b.bin",
        &self_test_log(&[(2, 0x76, 150, 123_456), (2, 0x00, 170, 0)]),
    );
    let (code, doc) = json(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-selftest-log",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(
        doc["devices"][0]["reasons"]
            .to_string()
            .contains("1 earlier self-test(s) failed; a later one passed")
    );
    // A bad checksum is a read problem (bit 2), the entries still shown.
    let mut b = self_test_log(&[(1, 0x00, 100, 0)]);
    b[511] ^= 0xFF;
    let p = write(dir.path(), "c.bin", &b);
    let (code, doc) = json(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-selftest-log",
    ]);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(
        doc["devices"][0]["ata"]["self_test_log"]["checksum_ok"],
        false
    );
    // Wrong sizes are refused with the reason.
    let p = write(dir.path(), "d.bin", &[0u8; 100]);
    let (code, _, err) = health(&["--from-raw", p.to_str().unwrap(), "--type", "ata-error-log"]);
    assert_eq!(code, 1);
    assert!(err.contains("a SMART error log page is 512 bytes"), "{err}");
}

/// Without a self-test log (a bridge that refuses READ LOG, a saved SMART page), the SMART
/// data's self-test execution status byte still tells a failed last test.
#[test]
fn smart_data_self_test_status_without_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = vec![0u8; 512];
    b[0] = 1;
    b[363] = 0x72; // read failure, 20% left
    seal(&mut b);
    let p = write(dir.path(), "sda.ata-smart.bin", &b);
    let (code, doc) = json(&["--from-raw", p.to_str().unwrap(), "--type", "ata-smart"]);
    assert_eq!(code, FAIL, "{doc:#}");
    assert_eq!(doc["devices"][0]["ata"]["self_test_status"], 0x72);
    assert_eq!(
        doc["devices"][0]["reasons"][0]["text"],
        "self-test execution status: the last self-test failed (Completed: read failure)"
    );
    b[363] = 0x00;
    seal(&mut b);
    let p = write(dir.path(), "sda.ata-smart.bin", &b);
    let (_, doc) = json(&["--from-raw", p.to_str().unwrap(), "--type", "ata-smart"]);
    assert!(
        !doc["devices"][0]["reasons"]
            .to_string()
            .contains("self-test"),
        "{doc:#}"
    );
}

#[test]
fn ata_extended_logs_from_pages() {
    let dir = tempfile::tempdir().unwrap();
    // Extended self-test log, two pages: the newest descriptor (index 20: page 2, first
    // slot) an extended test with a read failure at 48-bit LBA 0x1_0000_0010.
    let mut b = vec![0u8; 1024];
    b[0] = 1;
    b[2] = 20;
    let d = &mut b[512 + 4..512 + 30];
    d[0] = 2;
    d[1] = 0x70;
    d[2..4].copy_from_slice(&3000u16.to_le_bytes());
    d[5..11].copy_from_slice(&0x1_0000_0010u64.to_le_bytes()[..6]);
    let p = write(dir.path(), "sda.ata-ext-selftest-log.bin", &b);
    let (code, doc) = json(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-ext-selftest-log",
    ]);
    assert_eq!(code, FAIL, "{doc:#}");
    let l = &doc["devices"][0]["ata"]["ext_self_test_log"];
    assert_eq!(l["kind"], "extended");
    assert_eq!(l["entries"][0]["failing_lba"], 0x1_0000_0010u64);
    assert!(doc["devices"][0]["ata"]["self_test_log"].is_null());
    let (_, text, _) = health(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-ext-selftest-log",
    ]);
    assert!(
        text.contains("self-test log (extended, revision 1), newest first:"),
        "{text}"
    );
    // Extended comprehensive error log, one page, no errors: nothing to say.
    let mut b = vec![0u8; 512];
    b[0] = 1;
    seal(&mut b);
    let p = write(dir.path(), "sda.ata-ext-error-log.bin", &b);
    let (code, doc) = json(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-ext-error-log",
    ]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["devices"][0]["ata"]["ext_error_log"]["count"], 0);
    // Not whole pages: refused.
    let p = write(dir.path(), "x.bin", &b[..500]);
    let (code, _, err) = health(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "ata-ext-error-log",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("whole 512-byte pages"), "{err}");
}

#[test]
fn ata_error_log_warns_with_count_and_latest() {
    // Summary error log: two entries (slots 1 and 2, newest index 2) of 14 errors over the
    // drive's life; the newest an uncorrectable read (UNC) at LBA 0x0123456 during READ DMA
    // at hour 2000, the drive active.
    let mut p = vec![0u8; 512];
    p[0] = 1;
    p[1] = 2;
    for (slot, lba, hours) in [(0usize, 0x0100_0000u32, 1990u16), (1, 0x0012_3456, 2000)] {
        let e = &mut p[2 + slot * 90..2 + slot * 90 + 90];
        let c = &mut e[48..60];
        c[2] = 1;
        c[3..6].copy_from_slice(&lba.to_le_bytes()[..3]);
        c[6] = 0xE0 | (lba >> 24) as u8;
        c[7] = 0xC8;
        let d = &mut e[60..90];
        d[1] = 0x40;
        d[3..6].copy_from_slice(&lba.to_le_bytes()[..3]);
        d[6] = 0xE0 | (lba >> 24) as u8;
        d[7] = 0x51;
        d[27] = 3;
        d[28..30].copy_from_slice(&hours.to_le_bytes());
    }
    p[452] = 14;
    seal(&mut p);
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "sda.ata-error-log.bin", &p);
    let (code, doc) = json(&["--from-raw", f.to_str().unwrap(), "--type", "ata-error-log"]);
    assert_eq!(code, WARN, "{doc:#}");
    let d = &doc["devices"][0];
    let el = &d["ata"]["error_log"];
    assert_eq!(el["count"], 14);
    assert_eq!(el["entries"].as_array().unwrap().len(), 2);
    assert_eq!(el["entries"][0]["error_number"], 14);
    assert_eq!(el["entries"][0]["lba"], 0x0012_3456);
    assert_eq!(el["entries"][0]["error_bits"][0], "UNC");
    assert_eq!(el["entries"][0]["commands"][0]["command_name"], "READ DMA");
    assert_eq!(el["entries"][1]["error_number"], 13);
    assert_eq!(el["entries"][1]["lba"], 0x0100_0000);
    assert_eq!(
        d["reasons"][0]["text"],
        "the drive logged 14 ATA error(s); the latest: UNC at LBA 1193046 during READ DMA \
         (0xc8), power-on hour 2000"
    );
    let (_, text, _) = health(&["--from-raw", f.to_str().unwrap(), "--type", "ata-error-log"]);
    assert!(
        text.contains("error log (summary, revision 1): 14 error(s) over the drive's life, 2 held"),
        "{text}"
    );
    assert!(text.contains("    error 14: UNC at LBA 1193046"), "{text}");
}

#[test]
fn nvme_error_and_self_test_logs() {
    let dir = tempfile::tempdir().unwrap();
    // Four entries: #5 an unrecovered read (SCT 2, SC 0x81) at LBA 4096, #6 an invalid
    // field (a tool's unsupported command); two empty.
    let mut b = vec![0u8; 256];
    for (i, (count, sct, sc, lba)) in [(5u64, 2u16, 0x81u16, 4096u64), (6, 0, 0x02, 0)]
        .iter()
        .enumerate()
    {
        let e = &mut b[i * 64..i * 64 + 64];
        e[0..8].copy_from_slice(&count.to_le_bytes());
        e[8..10].copy_from_slice(&1u16.to_le_bytes());
        e[10..12].copy_from_slice(&(0x40 + i as u16).to_le_bytes());
        e[12..14].copy_from_slice(&(((sct << 8 | sc) << 1) | 1).to_le_bytes());
        e[16..24].copy_from_slice(&lba.to_le_bytes());
    }
    let p = write(dir.path(), "nvme0n1.nvme-error-log.bin", &b);
    let (code, doc) = json(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "nvme-error-log",
    ]);
    assert_eq!(code, WARN, "{doc:#}");
    let el = &doc["devices"][0]["nvme"]["error_log"];
    assert_eq!(
        (el["entries_read"].as_u64(), el["non_zero"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(el["latest"]["error_count"], 6);
    assert_eq!(el["entries"][1]["status_text"], "unrecovered read error");
    assert_eq!(el["entries"][1]["status_field"], 0x281);
    assert_eq!(
        doc["devices"][0]["reasons"][0]["text"],
        "2 entries in the NVMe error log, 1 of them media errors; the latest (#6): invalid \
         field in command (SCT 0h, SC 02h) on queue 1, command 0x0041"
    );
    let (code, _, err) = health(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "nvme-error-log",
    ]);
    assert_eq!(code, WARN, "{err}");
    // Not whole entries: refused.
    let p = write(dir.path(), "bad.bin", &b[..100]);
    let (code, _, err) = health(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "nvme-error-log",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("whole 64-byte entries"), "{err}");

    // Device self-test log: the newest (short) test failed a segment; fail.
    let mut b = vec![0u8; 564];
    for i in 0..20 {
        b[4 + i * 28] = 0x0F;
    }
    b[4] = 0x17;
    b[5] = 2;
    b[6] = 0x02;
    b[8..16].copy_from_slice(&777u64.to_le_bytes());
    b[20..28].copy_from_slice(&8192u64.to_le_bytes());
    let p = write(dir.path(), "nvme0n1.nvme-selftest-log.bin", &b);
    let (code, doc) = json(&[
        "--from-raw",
        p.to_str().unwrap(),
        "--type",
        "nvme-selftest-log",
    ]);
    assert_eq!(code, FAIL, "{doc:#}");
    let r = &doc["devices"][0]["nvme"]["self_test_log"]["results"][0];
    assert_eq!(r["code_text"], "short");
    assert_eq!(r["failing_lba"], 8192);
    assert_eq!(
        doc["devices"][0]["reasons"][0]["text"],
        "the last self-test (short) failed: completed with one or more failed segments at LBA \
         8192 at power-on hour 777"
    );
}

/// Copy the NVMe fixture tree (symlinks kept) so a test can add an hwmon sensor.
fn nvme_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs/nvme");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

const CTRL: &str = "sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0";

/// The sensor the Linux 6.1 guest showed for QEMU's NVMe (qemu-oracle run6), with
/// `input` millidegrees.
fn add_hwmon(root: &Path, input: i64) {
    let h = root.join(CTRL).join("hwmon3");
    std::fs::create_dir_all(&h).unwrap();
    for (f, v) in [
        ("name", "nvme".to_string()),
        ("temp1_label", "Composite".into()),
        ("temp1_input", input.to_string()),
        ("temp1_max", "69850".into()),
        ("temp1_crit", "99850".into()),
    ] {
        std::fs::write(h.join(f), format!("{v}\n")).unwrap();
    }
}

#[test]
fn nvme_temperature_from_hwmon_without_privileges() {
    let t = nvme_tree();
    let root = t.path();
    let r = root.to_str().unwrap();
    // Without a sensor: no temperature, nothing made up.
    let (_, doc) = json(&["--sysfs-root", r, "nvme0n1"]);
    assert!(doc["devices"][0]["nvme"].is_null(), "{doc:#}");

    // Found through the hidden path's controller (nvme0c0n1/device).
    add_hwmon(root, 49850);
    let (code, doc) = json(&["--sysfs-root", r, "nvme0n1"]);
    let d = &doc["devices"][0];
    assert_eq!(d["nvme"]["temperature_c"], 50, "{d:#}");
    assert_eq!(d["nvme"]["hwmon_temp_millicelsius"], 49850);
    assert_eq!(d["nvme"]["temperature_source"], "hwmon");
    assert_eq!(d["nvme"]["via"], "hwmon");
    // A temperature is not wear data: still unknown.
    assert_eq!(d["verdict"], "unknown");
    assert_eq!(code, UNKNOWN);
    assert!(
        d["reasons"]
            .to_string()
            .contains("temperature 50 °C from the kernel's hwmon sensor"),
        "{d:#}"
    );
    let (_, text, _) = health(&["--sysfs-root", r, "nvme0n1"]);
    assert!(
        text.contains("NVMe: temperature 50 °C (kernel hwmon sensor; SMART log not read)"),
        "{text}"
    );

    // Hot: at or above temp1_max (the drive's warning threshold, 70 °C) → warn.
    add_hwmon(root, 71000);
    let (code, doc) = json(&["--sysfs-root", r, "nvme0n1"]);
    assert_eq!(code, WARN, "{doc:#}");
    assert_eq!(
        doc["devices"][0]["reasons"][0]["text"],
        "temperature 71 °C at or above the warning limit 70 °C (kernel hwmon sensor)"
    );
    add_hwmon(root, 100_000);
    let (_, doc) = json(&["--sysfs-root", r, "nvme0n1"]);
    assert!(
        doc["devices"][0]["reasons"][0]["text"]
            .as_str()
            .unwrap()
            .contains("at or above the critical limit 100 °C"),
        "{doc:#}"
    );

    // Without the hidden path, through the subsystem's link to its controller.
    add_hwmon(root, 45000);
    std::fs::remove_file(root.join("sys/block/nvme0c0n1")).unwrap();
    std::fs::remove_file(root.join("sys/class/block/nvme0c0n1")).unwrap();
    let (_, doc) = json(&["--sysfs-root", r, "nvme0n1"]);
    assert!(doc["devices"][0]["nvme"].is_null(), "{doc:#}");
    let subsys = root.join("sys/devices/virtual/nvme-subsystem/nvme-subsys0");
    std::os::unix::fs::symlink(
        "../../../pci0000:00/0000:00:04.0/nvme/nvme0",
        subsys.join("nvme0"),
    )
    .unwrap();
    let (_, doc) = json(&["--sysfs-root", r, "nvme0n1"]);
    assert_eq!(doc["devices"][0]["nvme"]["temperature_c"], 45, "{doc:#}");
    // Garbage in the sensor file is ignored, not a crash.
    std::fs::write(root.join(CTRL).join("hwmon3/temp1_input"), "hot\n").unwrap();
    let (code, doc) = json(&["--sysfs-root", r, "nvme0n1"]);
    assert!(doc["devices"][0]["nvme"].is_null(), "{doc:#}");
    assert_eq!(code, UNKNOWN);
}

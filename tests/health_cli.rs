//! `lifeboat health` end to end without hardware: the sysfs fixture trees
//! (tests/fixtures/sysfs/, sysfs only: no device is opened under a fixture root), saved
//! pages through `--from-raw`, the JSON shape (u128 counters as strings), the exit-status
//! bit mask, and bad input.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sysfs")
        .join(case)
}

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

fn device<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc:#}"))
}

const UNKNOWN: i32 = 32;
const WARN: i32 = 16;
const FAIL: i32 = 8;

#[test]
fn emmc_life_time_from_sysfs_passes() {
    let root = fixture("emmc");
    let (code, doc) = json(&["--sysfs-root", root.to_str().unwrap(), "mmcblk0"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["exit_status"], 0);
    let d = device(&doc, "mmcblk0");
    assert_eq!(d["verdict"], "pass");
    assert_eq!(d["source"], "emmc");
    let e = &d["emmc"];
    assert_eq!(e["source"], "sysfs");
    assert_eq!(e["life_time_a"], 1);
    assert_eq!(e["life_time_b"], 1);
    assert_eq!(e["pre_eol"], 1);
    assert_eq!(e["cid"]["name"], "DG4016");
    assert_eq!(e["cid"]["year"], 2021);
    assert_eq!(e["life_time_b_text"], "0–10% of rated life used");
}

#[test]
fn every_disk_system_disk_first() {
    // In the fixture the root filesystem is on vda (virtio): listed first, unknown.
    let root = fixture("emmc");
    let (code, doc) = json(&["--sysfs-root", root.to_str().unwrap()]);
    let names: Vec<&str> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vda", "mmcblk0"]);
    assert_eq!(device(&doc, "vda")["system_disk"], true);
    assert_eq!(device(&doc, "vda")["verdict"], "unknown");
    assert!(
        device(&doc, "vda")["reasons"][0]["text"]
            .as_str()
            .unwrap()
            .contains("virtio")
    );
    assert_eq!(code, UNKNOWN);
}

#[test]
fn sd_card_registers_and_no_wear_data() {
    let root = fixture("sd-card");
    let (code, doc) = json(&["--sysfs-root", root.to_str().unwrap(), "/dev/mmcblk0"]);
    assert_eq!(code, UNKNOWN);
    let d = device(&doc, "mmcblk0");
    assert_eq!(d["verdict"], "unknown");
    let sd = &d["sd"];
    assert_eq!(sd["cid"]["name"], "QEMU!");
    assert_eq!(sd["cid"]["manufacturer_id"], 0xAA);
    assert_eq!(sd["csd"]["capacity_bytes"], 1u64 << 30);
    assert_eq!(sd["csd_matches_size"], true);
    assert_eq!(sd["scr"]["spec_version"], "3.0x");
    assert_eq!(sd["ssr"]["empty"], true);
    assert_eq!(sd["ssr_source"], "sysfs");
    let reasons: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("no wear data: SD cards")),
        "{reasons:?}"
    );
    // Text mode says the same.
    let (_, text, _) = health(&["--sysfs-root", root.to_str().unwrap(), "mmcblk0"]);
    assert!(text.contains("verdict: UNKNOWN"), "{text}");
    assert!(text.contains("name QEMU!"), "{text}");
}

#[test]
fn usb_bridge_from_the_table_and_sysfs_only_devices() {
    let root = fixture("usb-sata");
    let (code, doc) = json(&["--sysfs-root", root.to_str().unwrap(), "sdb"]);
    let d = device(&doc, "sdb");
    assert_eq!(d["bridge"], "JMicron JMS578 (sat)");
    assert_eq!(d["source"], "sat");
    assert_eq!(d["transport"]["vendor_id"], 0x152d);
    assert_eq!(d["verdict"], "unknown");
    assert_eq!(code, UNKNOWN);
    for (case, name, source) in [("nvme", "nvme0n1", "nvme"), ("sata", "sda", "sat")] {
        let root = fixture(case);
        let (code, doc) = json(&["--sysfs-root", root.to_str().unwrap(), name]);
        let d = device(&doc, name);
        assert_eq!(d["source"], source, "{case}");
        assert_eq!(d["verdict"], "unknown", "{case}");
        assert!(
            d["problems"].as_array().unwrap().is_empty(),
            "{case}: {d:#}"
        );
        assert_eq!(code, UNKNOWN, "{case}");
    }
}

/// The SMART log QEMU's NVMe returned (qemu-oracle run4), with an optional change.
fn nvme_log(dir: &Path, f: impl FnOnce(&mut [u8])) -> PathBuf {
    let mut b = vec![0u8; 512];
    b[1] = 0x43;
    b[2] = 0x01;
    b[0x20] = 0x01;
    b[0x40] = 0x04;
    f(&mut b);
    let p = dir.join("nvme0.nvme-smart.bin");
    std::fs::write(&p, &b).unwrap();
    p
}

#[test]
fn from_raw_nvme_json_and_exit_bits() {
    let dir = tempfile::tempdir().unwrap();
    let p = nvme_log(dir.path(), |b| {
        b[48..64].copy_from_slice(&(u128::from(u64::MAX) + 10).to_le_bytes());
    });
    let (code, doc) = json(&["--from-raw", p.to_str().unwrap(), "--type", "nvme-smart"]);
    assert_eq!(code, 0, "{doc:#}");
    let d = &doc["devices"][0];
    assert_eq!(d["verdict"], "pass");
    let l = &d["nvme"]["smart_log"];
    assert_eq!(l["temperature_k"], 323);
    assert_eq!(l["data_units_read"], "1");
    assert_eq!(l["host_read_commands"], "4");
    assert_eq!(l["data_units_written"], "18446744073709551625");
    assert_eq!(d["nvme"]["temperature_c"], 50);
    assert_eq!(d["nvme"]["passed"], true);
    // Critical warning 0x04 (what qom-set smart_critical_warning 4 gives): fail, bit 3.
    let p = nvme_log(dir.path(), |b| b[0] = 0x04);
    let (code, doc) = json(&["--from-raw", p.to_str().unwrap(), "--type", "nvme-smart"]);
    assert_eq!(code, FAIL);
    assert_eq!(doc["devices"][0]["verdict"], "fail");
    assert_eq!(doc["devices"][0]["nvme"]["passed"], false);
    // Spare below threshold, in the words.
    let p = nvme_log(dir.path(), |b| {
        b[3] = 8;
        b[4] = 10;
    });
    let (code, out, _) = health(&["--from-raw", p.to_str().unwrap(), "--type", "nvme-smart"]);
    assert_eq!(code, FAIL);
    assert!(out.contains("spare 8% below threshold 10%"), "{out}");
    // Worn: 93% used → warn, bit 4.
    let p = nvme_log(dir.path(), |b| b[5] = 93);
    let (code, _, _) = health(&["--from-raw", p.to_str().unwrap(), "--type", "nvme-smart"]);
    assert_eq!(code, WARN);
}

#[test]
fn from_raw_ext_csd_hex_and_cmd56() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = vec![0u8; 512];
    e[192] = 8;
    e[267] = 2;
    e[268] = 1;
    e[269] = 9;
    let hex: String = e.iter().map(|x| format!("{x:02x}")).collect();
    let p = dir.path().join("ext_csd");
    std::fs::write(&p, hex).unwrap();
    let (code, doc) = json(&["--from-raw", p.to_str().unwrap(), "--type", "ext-csd"]);
    assert_eq!(code, WARN, "{doc:#}");
    assert_eq!(doc["devices"][0]["emmc"]["life_time_b"], 9);
    assert_eq!(doc["devices"][0]["emmc"]["source"], "ext_csd");
    let mut c = vec![0u8; 512];
    c[0] = b'D';
    c[1] = b'W';
    c[8] = 0x03;
    let p = dir.path().join("cmd56.bin");
    std::fs::write(&p, &c).unwrap();
    let (code, doc) = json(&["--from-raw", p.to_str().unwrap(), "--type", "cmd56-sandisk"]);
    assert_eq!(code, 0);
    assert_eq!(
        doc["devices"][0]["sd"]["vendor_health"]["life_used_percent"],
        3
    );
}

#[test]
fn bad_input_names_the_problem() {
    let root = fixture("sd-card");
    let r = root.to_str().unwrap();
    let (code, _, err) = health(&["--sysfs-root", r, "mmcblk0p1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("mmcblk0p1") && err.contains("whole disk /dev/mmcblk0"),
        "{err}"
    );
    let (code, _, err) = health(&["--sysfs-root", r, "--type", "scsi", "mmcblk0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--type \"scsi\""), "{err}");
    let (code, _, err) = health(&["--from-raw", "/nonexistent"]);
    assert_eq!(code, 1);
    assert!(err.contains("needs --type"), "{err}");
    let (code, _, err) = health(&["--from-raw", "/nonexistent", "--type", "nvme-smart"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent"), "{err}");
    let (code, out, _) = health(&["--json", "--from-raw", "/nonexistent", "--type", "x"]);
    assert_eq!(code, 1);
    assert!(out.contains("\"error\""), "{out}");
    // --type sd on a disk that is not an SD card: a read problem, bit 2.
    let (code, doc) = json(&["--sysfs-root", r, "--type", "sd", "vda"]);
    assert_eq!(code, 4 | UNKNOWN, "{doc:#}");
}

#[test]
fn raw_out_needs_a_writable_dir() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    let root = fixture("emmc");
    let (code, _, err) = health(&[
        "--sysfs-root",
        root.to_str().unwrap(),
        "--raw-out",
        f.join("sub").to_str().unwrap(),
        "mmcblk0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("creating"), "{err}");
}

/// Copy a fixture tree (symlinks kept) into a temp dir so a test can add files to it.
fn copy_tree(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture(case).display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

#[test]
fn kernel_signals_read_only_remount_ext4_errors_and_stats() {
    let t = copy_tree("sata");
    let root = t.path();
    let sda = root.join("sys/block/sda");
    std::fs::write(
        sda.join("stat"),
        "    5        0       40      429        0        0        0        0        0      428      429        0        0        0        0        0        0\n",
    )
    .unwrap();
    std::fs::write(sda.join("device/ioerr_cnt"), "0x5\n").unwrap();
    std::fs::write(sda.join("device/iotmo_cnt"), "0x0\n").unwrap();
    let ext4 = root.join("sys/fs/ext4/sda1");
    std::fs::create_dir_all(&ext4).unwrap();
    std::fs::write(ext4.join("errors_count"), "3\n").unwrap();
    std::fs::write(ext4.join("first_error_time"), "1700000000\n").unwrap();
    std::fs::write(ext4.join("last_error_time"), "1700000100\n").unwrap();
    std::fs::write(ext4.join("lifetime_write_kbytes"), "1048576\n").unwrap();
    // ext4 remounted read-only after errors (superblock options say ro).
    let mut mi = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap();
    mi.push_str("40 27 8:1 / /mnt/data ro,relatime - ext4 /dev/sda1 ro,errors=remount-ro\n");
    std::fs::write(root.join("proc/self/mountinfo"), mi).unwrap();

    let (code, doc) = json(&["--sysfs-root", root.to_str().unwrap(), "sda"]);
    let d = device(&doc, "sda");
    let k = &d["kernel"];
    assert_eq!(k["stat"]["read_ios"], 5);
    assert_eq!(k["stat"]["read_ticks_ms"], 429);
    assert_eq!(k["ioerr_cnt"], 5);
    assert_eq!(k["read_only_mounts"][0]["device"], "/dev/sda1");
    assert_eq!(k["read_only_mounts"][0]["mount_point"], "/mnt/data");
    assert_eq!(k["ext4"][0]["errors_count"], 3);
    assert_eq!(k["ext4"][0]["lifetime_write_kbytes"], 1_048_576);
    // A fixture root: the kernel log is not read.
    assert!(k["log_errors"].is_null());
    assert_eq!(d["verdict"], "warn", "{d:#}");
    let text = d["reasons"].to_string();
    assert!(text.contains("mounted read-only on /mnt/data"), "{text}");
    assert!(text.contains("has recorded 3 errors"), "{text}");
    assert!(text.contains("1.0 GiB of writes over its life"), "{text}");
    assert_eq!(code, 16 | 64);
}

#[test]
fn nvme_controller_names_stand_for_their_namespaces() {
    let root = fixture("nvme");
    for arg in ["/dev/nvme0", "nvme0", "nvme0n1"] {
        let (_, doc) = json(&["--sysfs-root", root.to_str().unwrap(), arg]);
        assert_eq!(doc["devices"][0]["name"], "nvme0n1", "{arg}");
        assert_eq!(doc["devices"].as_array().unwrap().len(), 1, "{arg}");
    }
    let (code, _, err) = health(&["--sysfs-root", root.to_str().unwrap(), "/dev/nvme1"]);
    assert_eq!(code, 1);
    assert!(err.contains("/dev/nvme1"), "{err}");
}

#[test]
fn no_vendor_command_to_the_system_card_unless_asked() {
    // The SD card holds / and its CID says SanDisk (the pfSense report's card).
    let t = copy_tree("sd-card");
    let root = t.path();
    std::fs::write(
        root.join("sys/block/mmcblk0/device/cid"),
        "0353445343313647806cb1100a011a00\n",
    )
    .unwrap();
    let mi = std::fs::read_to_string(root.join("proc/self/mountinfo"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains(" / / "))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "27 1 179:2 / / rw,relatime - ext4 /dev/mmcblk0p2 rw\n";
    std::fs::write(root.join("proc/self/mountinfo"), mi).unwrap();
    let (_, doc) = json(&["--sysfs-root", root.to_str().unwrap()]);
    let d = &doc["devices"][0];
    assert_eq!(d["name"], "mmcblk0", "system disk first: {doc:#}");
    assert_eq!(d["system_disk"], true);
    assert_eq!(d["sd"]["cid"]["manufacturer"], "SanDisk");
    let why = d["sd"]["cmd56_result"].as_str().unwrap();
    assert!(
        why.starts_with("not sent: this card holds the running system")
            && why.ends_with("--cmd56 sandisk"),
        "{why}"
    );
}

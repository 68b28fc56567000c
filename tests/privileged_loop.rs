//! Privileged tests on real loop devices made from the fixture images: `inspect` on a block
//! device gives the same answers as on the image file; `list` shows the loop disk with its
//! partitions and HAOS board, marks a disk with a mounted partition as in use, and marks the
//! disk holding the running system. Runs as root with /dev/loop-control (CI); elsewhere it
//! prints why it is skipped. Only loop devices created here are opened.

mod common;

use common::LoopDev;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn setup(test: &str) -> Option<PathBuf> {
    if let Err(why) = common::can_loop() {
        eprintln!("skipped {test}: {why} (privileged test: run as root with loop devices)");
        return None;
    }
    common::fixtures_or_skip(test)
}

fn sparse_copy(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn list_json(dev: &LoopDev) -> Value {
    let (code, out, err) = common::run(&["list", "--json", dev.dev.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let disks = v["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 1, "{v:#}");
    disks[0].clone()
}

/// Unmounts on drop, so a failed assertion leaves nothing mounted.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn inspect_and_list_on_loop_devices() {
    let Some(dir) = setup("inspect_and_list_on_loop_devices") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for fam in ["rpi4", "odroid-n2", "odroid-m1", "rpi5", "x86"] {
        let img = tmp.path().join(format!("{fam}.img"));
        sparse_copy(&dir.join(format!("{fam}.img")), &img);
        let exp: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{fam}.expect.json"))).unwrap())
                .unwrap();
        let lo = LoopDev::attach(&img, true).expect("losetup");

        // inspect on the block device.
        let (code, v) = common::inspect_json(&lo.dev);
        assert_eq!(code, 0, "{fam}: {v:#}");
        assert_eq!(v["source"]["kind"], "block_device");
        assert_eq!(v["device_in_use"], serde_json::json!([]), "{fam}");
        assert_eq!(v["verdict"], "haos", "{fam}");
        assert_eq!(v["board"]["id"], exp["board"], "{fam}");
        assert_eq!(v["active_slot"]["slot"], exp["active_slot"], "{fam}");
        assert_eq!(v["os_version"], exp["os_version"], "{fam}");
        assert_eq!(v["data"]["core_version"], exp["core_version"], "{fam}");
        assert_eq!(
            v["data"]["backups"].as_array().unwrap().len(),
            exp["backups"].as_array().unwrap().len(),
            "{fam}"
        );

        // list on the same device: transport, partitions, backing file, HAOS board, not in use.
        let d = list_json(&lo);
        assert_eq!(d["transport"]["kind"], "loop", "{d:#}");
        assert_eq!(d["backing_file"], img.to_str().unwrap(), "{d:#}");
        assert_eq!(
            d["partitions"].as_array().unwrap().len(),
            exp["partitions"].as_array().unwrap().len(),
            "{fam}: {d:#}"
        );
        assert_eq!(d["haos"]["verdict"], "haos", "{d:#}");
        assert_eq!(d["haos"]["board"], exp["board"], "{d:#}");
        assert_eq!(d["in_use"], false, "{d:#}");
        assert_eq!(d["system_disk"], false, "{d:#}");
    }
}

#[test]
fn mounted_partition_marks_disk_in_use() {
    let Some(dir) = setup("mounted_partition_marks_disk_in_use") else {
        return;
    };
    if !common::have("mount") {
        eprintln!("skipped: mount missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("n2.img");
    sparse_copy(&dir.join("odroid-n2.img"), &img);
    let lo = LoopDev::attach(&img, false).expect("losetup");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // p4 is the data partition on MBR boards. Read-only, no journal replay.
    let st = Command::new("mount")
        .args(["-t", "ext4", "-o", "ro,noload"])
        .arg(lo.part(4))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount failed");
    let guard = Mounted(mnt.clone());

    let d = list_json(&lo);
    assert_eq!(d["in_use"], true, "{d:#}");
    let reasons = d["ownership"]["reasons"].to_string();
    assert!(
        reasons.contains("mounted on") && reasons.contains(mnt.to_str().unwrap()),
        "{reasons}"
    );
    // inspect on the disk warns that it is in use, naming the mount.
    let (code, v) = common::inspect_json(&lo.dev);
    assert_eq!(code, 0);
    assert!(
        v["device_in_use"].to_string().contains("mounted on"),
        "{}",
        v["device_in_use"]
    );
    // The text listing says so too.
    let (_, out, _) = common::run(&["list", lo.dev.to_str().unwrap()]);
    assert!(out.contains("yes"), "{out}");

    drop(guard);
    let d = list_json(&lo);
    assert_eq!(d["in_use"], false, "after umount: {d:#}");
}

#[test]
fn running_system_disk_is_in_use() {
    if let Err(why) = common::can_loop() {
        eprintln!("skipped running_system_disk_is_in_use: {why}");
        return;
    }
    // --no-probe: sysfs and /proc only; no disk we did not create is opened.
    let (code, out, err) = common::run(&["list", "--json", "--no-probe"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let sys: Vec<&Value> = v["disks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["system_disk"] == true)
        .collect();
    // A container whose root is an overlay on no block device has none; otherwise every
    // system disk must be in use with a reason naming the running system.
    let root_on_block = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(4) == Some(&"/") && !f.get(2).is_some_and(|d| d.starts_with("0:"))
        });
    if root_on_block {
        assert!(!sys.is_empty(), "no system disk found: {v:#}");
    }
    for d in sys {
        assert_eq!(d["in_use"], true, "{d:#}");
        assert!(
            d["ownership"]["reasons"]
                .to_string()
                .contains("running system"),
            "{d:#}"
        );
    }
}

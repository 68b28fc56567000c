//! Bad input never panics: a directory, a character device, a missing path, an empty or tiny
//! file, zeros, garbage, a compressed image, a truncated image, a damaged GPT and an ext4 with
//! an unknown feature each give a clear answer and the documented exit status.

mod common;

use std::io::Write;
use std::path::Path;

fn no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

#[test]
fn paths_that_are_not_disks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let (code, _, err) = common::run(&["inspect", d]);
    assert_eq!(code, 1);
    assert!(err.contains("is a directory"), "{err}");

    let (code, _, err) = common::run(&["inspect", "/dev/null"]);
    assert_eq!(code, 1);
    assert!(err.contains("character device"), "{err}");

    let missing = tmp.path().join("nope.img");
    let (code, out, err) = common::run(&["inspect", "--json", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("nope.img"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("error as JSON");
    assert!(v["error"].as_str().unwrap().contains("nope.img"));

    let empty = tmp.path().join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = common::run(&["inspect", empty.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("is empty"), "{err}");

    let tiny = tmp.path().join("tiny.img");
    std::fs::write(&tiny, [1u8; 100]).unwrap();
    let (code, _, err) = common::run(&["inspect", tiny.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("too small"), "{err}");
}

#[test]
fn zeros_garbage_and_compressed() {
    let tmp = tempfile::tempdir().unwrap();
    let zeros = tmp.path().join("zeros.img");
    std::fs::write(&zeros, vec![0u8; 1 << 20]).unwrap();
    let (code, out, err) = common::run(&["inspect", zeros.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("no partition table"), "{out}");

    // Deterministic pseudo-random garbage, with and without an MBR signature.
    let mut x: u32 = 12345;
    let mut g: Vec<u8> = (0..(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let garbage = tmp.path().join("garbage.img");
    std::fs::write(&garbage, &g).unwrap();
    let (code, _, err) = common::run(&["inspect", garbage.to_str().unwrap()]);
    no_panic(&err);
    assert!(code == 3 || code == 1, "{err}");
    g[510] = 0x55;
    g[511] = 0xAA;
    g[450] = 0xEE;
    std::fs::write(&garbage, &g).unwrap();
    let (code, _, err) = common::run(&["inspect", "--json", garbage.to_str().unwrap()]);
    no_panic(&err);
    assert!(code == 3 || code == 1, "{err}");

    let xz = tmp.path().join("haos_rpi4-64-17.1.img.xz");
    let mut f = std::fs::File::create(&xz).unwrap();
    f.write_all(b"\xFD7zXZ\0\0\x04\xE6\xD6\xB4\x46").unwrap();
    f.write_all(&[0u8; 600]).unwrap();
    drop(f);
    let (code, _, err) = common::run(&["inspect", xz.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("xz-compressed") && err.contains("xz -dk"),
        "{err}"
    );
}

fn copy_fixture(dir: &Path, fam: &str, to: &Path) {
    std::fs::copy(dir.join(format!("{fam}.img")), to).unwrap();
}

#[test]
fn truncated_image_is_still_recognised_with_problems() {
    let Some(dir) = common::fixtures_or_skip("truncated_image") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("cut.img");
    copy_fixture(&dir, "rpi4", &img);
    // Cut inside the data partition: the backup GPT and most of the data are gone.
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(80 << 20).unwrap();
    drop(f);
    let (code, v) = common::inspect_json(&img);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verdict"], "haos");
    let problems = v["problems"].to_string();
    assert!(problems.contains("backup GPT"), "{problems}");
    assert!(problems.contains("truncated"), "{problems}");
}

#[test]
fn damaged_primary_gpt_falls_back_to_backup() {
    let Some(dir) = common::fixtures_or_skip("damaged_gpt") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("bad-gpt.img");
    copy_fixture(&dir, "x86", &img);
    let mut b = std::fs::read(&img).unwrap();
    b[512 + 60] ^= 0xFF; // the disk GUID of the primary header: its CRC no longer matches
    std::fs::write(&img, &b).unwrap();
    let (code, v) = common::inspect_json(&img);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verdict"], "haos");
    assert_eq!(v["table"]["gpt"]["primary_ok"], false);
    assert!(v["problems"].to_string().contains("backup"), "{v:#}");
    assert_eq!(v["board"]["id"], "generic-x86-64");
}

#[test]
fn ext4_with_unknown_feature_is_reported_not_fatal() {
    let Some(dir) = common::fixtures_or_skip("ext4_unknown_feature") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("feature.img");
    copy_fixture(&dir, "rpi4", &img);
    let (_, v) = common::inspect_json(&img);
    let data_start = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "data")
        .unwrap()["start_bytes"]
        .as_u64()
        .unwrap();
    // Set an incompat feature bit nobody defines (0x80000000) in the data superblock.
    let mut b = std::fs::read(&img).unwrap();
    let off = (data_start + 1024 + 0x60) as usize;
    b[off + 3] |= 0x80;
    std::fs::write(&img, &b).unwrap();
    let (code, v) = common::inspect_json(&img);
    assert_eq!(code, 0, "{v:#}");
    let data = &v["partitions"].as_array().unwrap()[7]["fs"];
    assert!(
        data["unknown_features"]
            .to_string()
            .contains("incompat:0x80000000"),
        "{v:#}"
    );
    let problems = v["problems"].to_string();
    assert!(problems.contains("feature"), "{problems}");
    assert!(v["data"]["core_version"].is_null());
}

#[test]
fn a_partition_instead_of_a_disk_is_explained() {
    if !common::have("mke2fs") {
        eprintln!("skipped a_partition_instead_of_a_disk_is_explained: mke2fs missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join("data-partition.img");
    let st = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "hassos-data"])
        .arg(&part)
        .arg("8M")
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out, _) = common::run(&["inspect", part.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("labelled 'hassos-data'"), "{out}");
    assert!(out.contains("inspect the whole disk"), "{out}");
}

//! `lifeboat verify`: images made by `lifeboat image` in every format pass against their
//! manifest and bmap; a flipped byte is caught and reported by offset and partition; a
//! published SHA-256 matches the decompressed image or the stored file; `--against` a copy
//! (file, and a loop device when root) finds the exact differing sector.

mod common;
use common::{LoopDev, can_loop, fixtures_or_skip, run};
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;
use std::path::Path;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-verify-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn hexsha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn verify_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut a = vec!["--json", "verify"];
    a.extend_from_slice(args);
    let (code, out, err) = run(&a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"));
    (code, v, err)
}

fn make_image(src: &Path, out: &Path) {
    let (code, _o, e) = run(&[
        "image",
        "-q",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "image {}: {e}", out.display());
}

/// A byte in the middle of the first mapped range inside partition `part` (the data
/// partition holds live files).
fn mapped_offset_in(manifest: &serde_json::Value, after: u64) -> u64 {
    let r = manifest["mapped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["start"].as_u64().unwrap() >= after && r["length"].as_u64().unwrap() >= 4096)
        .expect("a mapped range past the offset");
    r["start"].as_u64().unwrap() + 1000
}

#[test]
fn every_format_verifies_and_a_flipped_byte_is_found() {
    let Some(fx) = fixtures_or_skip("every_format_verifies_and_a_flipped_byte_is_found") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("rpi4.img");
    let src = std::fs::read(&srcp).unwrap();
    for ext in ["img", "img.zst", "img.gz", "img.xz"] {
        let out = d.path().join(format!("rpi4.{ext}"));
        make_image(&srcp, &out);
        // Sidecars picked up automatically.
        let (code, v, e) = verify_json(&[out.to_str().unwrap()]);
        assert_eq!(code, 0, "{ext}: {v}\n{e}");
        assert_eq!(v["ok"], true);
        assert_eq!(v["sha256"], hexsha(&src), "{ext}");
        assert_eq!(v["size"], src.len() as u64);
        let names: Vec<&str> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for n in [
            "manifest-size",
            "manifest-sha256",
            "manifest-ranges",
            "bmap-ranges",
        ] {
            assert!(names.contains(&n), "{ext}: {names:?}");
        }
        // The publisher's checksum of the stored file matches too.
        let stored = std::fs::read(&out).unwrap();
        let (code, v, _) = verify_json(&[
            out.to_str().unwrap(),
            "--no-sidecars",
            "--sha256",
            &hexsha(&stored).to_uppercase(),
        ]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["file_sha256"], hexsha(&stored));
        let (code, v, _) = verify_json(&[
            out.to_str().unwrap(),
            "--no-sidecars",
            "--sha256",
            &"0".repeat(64),
        ]);
        assert_eq!(code, 7, "{v}");
        assert_eq!(v["ok"], false);
    }

    // Flip one byte of a mapped range inside the data partition of the raw image.
    let raw = d.path().join("rpi4.img");
    let mtext = std::fs::read_to_string(d.path().join("rpi4.img.manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&mtext).unwrap();
    let (_, insp) = common::inspect_json(&srcp);
    let data = insp["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hassos-data")
        .expect("data partition")
        .clone();
    let dstart = data["start_lba"].as_u64().unwrap() * 512;
    let off = mapped_offset_in(&m, dstart);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&raw)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], off).unwrap();
    drop(f);
    let (code, v, e) = verify_json(&[raw.to_str().unwrap()]);
    assert_eq!(code, 7, "{v}\n{e}");
    let mis = v["mismatches"].as_array().unwrap();
    assert_eq!(mis.len(), 2, "one manifest range and one bmap range: {v}");
    for x in mis {
        let s = x["start"].as_u64().unwrap();
        let l = x["length"].as_u64().unwrap();
        assert!(s <= off && off < s + l, "{x}");
        assert_eq!(x["partition_name"], "hassos-data", "{x}");
        assert_eq!(x["partition_offset"].as_u64().unwrap(), s - dstart);
    }
    // Text mode names the offset and the partition.
    let (code, text, _) = run(&["verify", raw.to_str().unwrap()]);
    assert_eq!(code, 7);
    assert!(
        text.contains("VERIFY FAILED") && text.contains("(hassos-data)"),
        "{text}"
    );

    // --against: the compressed image against the flipped raw copy, mapped ranges only.
    let zst = d.path().join("rpi4.img.zst");
    let (code, v, e) = verify_json(&[
        zst.to_str().unwrap(),
        "--no-sidecars",
        "--manifest",
        d.path()
            .join("rpi4.img.zst.manifest.json")
            .to_str()
            .unwrap(),
        "--against",
        raw.to_str().unwrap(),
    ]);
    assert_eq!(code, 7, "{v}\n{e}");
    let mis: Vec<&serde_json::Value> = v["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["check"] == "against")
        .collect();
    assert_eq!(mis.len(), 1, "{v}");
    assert_eq!(mis[0]["start"].as_u64().unwrap(), off / 512 * 512);
    assert_eq!(mis[0]["length"].as_u64().unwrap(), 512);
    assert_eq!(v["bytes_compared"], m["mapped_bytes"]);
    // And against the pristine source: equal.
    let (code, v, _) = verify_json(&[zst.to_str().unwrap(), "--against", srcp.to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn refusals() {
    let d = tmp();
    let img = d.path().join("x.img");
    std::fs::write(&img, vec![0u8; 4096]).unwrap();
    let (code, _o, e) = run(&["verify", img.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(e.contains("nothing to check against"), "{e}");
    let (code, _o, e) = run(&["verify", img.to_str().unwrap(), "--sha256", "abc"]);
    assert_eq!(code, 1);
    assert!(e.contains("not a SHA-256"), "{e}");
    let (code, _o, e) = run(&[
        "verify",
        d.path().join("missing.img").to_str().unwrap(),
        "--sha256",
        &"0".repeat(64),
    ]);
    assert_eq!(code, 1);
    assert!(e.contains("missing.img"), "{e}");
    // A device shorter than the image.
    let short = d.path().join("short.img");
    std::fs::write(&short, vec![0u8; 1024]).unwrap();
    let (code, _o, e) = run(&[
        "verify",
        img.to_str().unwrap(),
        "--against",
        short.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{e}");
    assert!(
        e.contains("short.img") && e.contains("ends at byte 1024"),
        "{e}"
    );
}

#[test]
fn against_a_loop_device_with_o_direct() {
    if let Err(why) = can_loop() {
        eprintln!("skipping against_a_loop_device_with_o_direct: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip("against_a_loop_device_with_o_direct") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("x86.img");
    let img = d.path().join("x86.img.gz");
    make_image(&srcp, &img);
    // The "device": a copy a little larger than the image, one sector changed in a mapped range.
    let disk = d.path().join("disk.img");
    std::fs::copy(&srcp, &disk).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + (8 << 20)).unwrap();
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("x86.img.gz.manifest.json")).unwrap(),
    )
    .unwrap();
    let off = mapped_offset_in(&m, 64 << 20);
    f.write_all_at(&[0xA5; 512], off / 512 * 512).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let lo = LoopDev::attach(&disk, true).unwrap();
    let (code, v, e) = verify_json(&[img.to_str().unwrap(), "--against", lo.dev.to_str().unwrap()]);
    assert_eq!(code, 7, "{v}\n{e}");
    let mis: Vec<&serde_json::Value> = v["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["check"] == "against")
        .collect();
    assert_eq!(mis.len(), 1, "{v}");
    assert_eq!(mis[0]["start"].as_u64().unwrap(), off / 512 * 512);
    assert!(mis[0]["partition"].as_u64().is_some(), "{v}");
    // The manifest and bmap checks of the image itself still pass.
    for c in v["checks"].as_array().unwrap() {
        if c["name"] != "against" {
            assert_eq!(c["ok"], true, "{c}");
        }
    }
}

#[test]
fn a_bmaptool_bmap_is_checked() {
    if !common::have("bmaptool") {
        eprintln!("skipping a_bmaptool_bmap_is_checked: bmaptool missing (bmap-tools)");
        return;
    }
    let Some(fx) = fixtures_or_skip("a_bmaptool_bmap_is_checked") else {
        return;
    };
    let d = tmp();
    let raw = d.path().join("odroid-n2.img");
    make_image(&fx.join("odroid-n2.img"), &raw); // sparse: free space is holes
    let bmap = d.path().join("tool.bmap");
    let out = std::process::Command::new("bmaptool")
        .args([
            "create",
            "-o",
            bmap.to_str().unwrap(),
            raw.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, v, e) = verify_json(&[
        raw.to_str().unwrap(),
        "--no-sidecars",
        "--bmap",
        bmap.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v}\n{e}");
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bmap-ranges")
        .unwrap()
        .clone();
    assert_eq!(c["ok"], true);
    assert!(c["detail"].as_str().unwrap().starts_with("0 of "), "{c}");
    assert_ne!(c["detail"].as_str().unwrap(), "0 of 0 ranges differ");
    // Damage the first byte of the last mapped range bmaptool recorded.
    let text = std::fs::read_to_string(&bmap).unwrap();
    let bs: u64 = text
        .split("<BlockSize>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let last = text.rsplit("<Range").next().unwrap();
    let body = last
        .split('>')
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .trim();
    let first_block: u64 = body.split('-').next().unwrap().trim().parse().unwrap();
    let off = first_block * bs;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&raw)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).unwrap();
    f.write_all_at(&[!b[0]], off).unwrap();
    drop(f);
    let (code, v, _) = verify_json(&[
        raw.to_str().unwrap(),
        "--no-sidecars",
        "--bmap",
        bmap.to_str().unwrap(),
    ]);
    assert_eq!(code, 7, "{v}");
    let mis = v["mismatches"].as_array().unwrap();
    assert_eq!(mis.len(), 1, "{v}");
    assert_eq!(mis[0]["check"], "bmap");
    assert_eq!(mis[0]["start"].as_u64().unwrap(), off);
}

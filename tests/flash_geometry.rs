//! `flash::geometry::fit_to_disk` on the HAOS fixture images of every table family (GPT,
//! hybrid, hybrid with a `uboot` entry, DOS MBR with logicals): the image is copied into a
//! bigger sparse file, the writes applied, and the result checked with `sfdisk --verify`,
//! `sgdisk -v` (GPT) or `sfdisk -d` (MBR), and `lifeboat inspect --json` (same install, backup
//! GPT at the end, data grown to the end with `grow`). Also: an equal size gives no writes, a
//! smaller target is refused with the sizes.

mod common;

use lifeboat::flash::geometry::{Fit, FitOptions, fit_to_disk};
use lifeboat::io::FileReader;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tmp(name: &str) -> Tmp {
    Tmp(Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("flash-geometry-{}-{name}.img", std::process::id())))
}

/// Copy `src` sparsely to `dst` and size it to `size` bytes.
fn copy_to(src: &Path, dst: &Path, size: u64) {
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(src)
        .arg(dst)
        .status()
        .expect("cp");
    assert!(st.success());
    OpenOptions::new()
        .write(true)
        .open(dst)
        .unwrap()
        .set_len(size)
        .unwrap();
}

fn fit(path: &Path, image_size: u64, target: u64, grow: bool) -> anyhow::Result<Fit> {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let r = FileReader::new(f, len);
    fit_to_disk(&r, image_size, target, 512, &FitOptions { grow })
}

fn apply(path: &Path, fit: &Fit) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    for (off, b) in &fit.writes {
        f.write_all_at(b, *off).unwrap();
    }
    f.sync_all().unwrap();
}

fn out(c: &mut Command) -> String {
    let o = c.output().expect("running a tool");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check_tools(path: &Path, gpt: bool) {
    let v = out(Command::new("sfdisk").arg("--verify").arg(path));
    assert!(
        v.contains("No errors detected") && !v.contains("error detected"),
        "sfdisk --verify {}: {v}",
        path.display()
    );
    if gpt && common::have("sgdisk") {
        let v = out(Command::new("sgdisk").arg("-v").arg(path));
        assert!(
            v.contains("No problems found"),
            "sgdisk -v {}: {v}",
            path.display()
        );
    }
}

/// The parts of `inspect --json` that describe the install (not the table's geometry).
fn install(v: &Value) -> Value {
    let parts: Vec<Value> = v["partitions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    serde_json::json!({
                        "number": p["number"], "start": p["start_lba"], "role": p["role"],
                        "partuuid": p["partuuid"], "fs": p["fs"]
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "verdict": v["verdict"], "family": v["family"], "board": v["board"],
        "os_version": v["os_version"], "active_slot": v["active_slot"], "slots": v["slots"],
        "machine_id": v["machine_id"], "boot": v["boot"], "bootstate": v["bootstate"],
        "data": v["data"], "kind": v["table"]["kind"], "parts": parts,
    })
}

fn data_part(v: &Value) -> Value {
    let n = &v["data"]["partition"];
    v["partitions"]
        .as_array()
        .and_then(|a| a.iter().find(|p| &p["number"] == n).cloned())
        .unwrap_or(Value::Null)
}

fn family(dir: &Path, fam: &str, grow: bool) {
    let img = dir.join(format!("{fam}.img"));
    let size = std::fs::metadata(&img).unwrap().len();
    let (_, before) = common::inspect_json(&img);
    let gpt = before["table"]["gpt"].is_object();
    // An odd target: 64 MiB and three sectors more.
    let target = size + 64 * MIB + 3 * 512;
    let t = tmp(&format!("{fam}-{grow}"));
    copy_to(&img, &t.0, target);
    let f = fit(&t.0, size, target, grow).unwrap_or_else(|e| panic!("{fam}: {e:#}"));
    eprintln!("{fam} grow={grow}: {:?}", f.notes);
    if gpt {
        assert!(!f.writes.is_empty(), "{fam}: GPT needs writes");
    }
    apply(&t.0, &f);
    check_tools(&t.0, gpt);
    let (code, after) = common::inspect_json(&t.0);
    assert_eq!(code, 0, "{fam}: {after}");
    assert_eq!(install(&after), install(&before), "{fam} grow={grow}");
    let problems = after["problems"].as_array().cloned().unwrap_or_default();
    assert!(problems.is_empty(), "{fam}: {problems:?}");
    let sectors = target / 512;
    if gpt {
        assert_eq!(after["table"]["gpt"]["backup_lba"], sectors - 1, "{fam}");
        assert_eq!(
            after["table"]["gpt"]["last_usable_lba"],
            sectors - 34,
            "{fam}"
        );
        let mbr_before = std::fs::read(&img).unwrap()[..512].to_vec();
        let mbr_after = std::fs::read(&t.0).unwrap()[..512].to_vec();
        if before["table"]["kind"] == "gpt_hybrid" {
            assert_eq!(mbr_after, mbr_before, "{fam}: hybrid MBR changed");
        } else {
            let ee = after["table"]["mbr_entries"][0]["size_lba"].clone();
            assert_eq!(ee, sectors - 1, "{fam}: protective entry");
        }
    }
    let (db, da) = (data_part(&before), data_part(&after));
    let start = da["start_lba"].as_u64().unwrap();
    let end = start + da["size_lba"].as_u64().unwrap();
    if grow {
        let limit = if gpt { sectors - 33 } else { sectors };
        assert_eq!(end, limit - limit % 2048, "{fam}: data end {da}");
        if !gpt {
            // sfdisk's own view of the grown MBR partition.
            let d = out(Command::new("sfdisk").arg("-d").arg(&t.0));
            let n = da["number"].as_u64().unwrap();
            let line = d
                .lines()
                .find(|l| l.contains(&format!(".img{n} :")))
                .unwrap_or_else(|| panic!("{fam}: no p{n} in {d}"));
            assert!(
                line.contains(&format!("size={:>12}", end - start)),
                "{fam}: {line}"
            );
        }
    } else {
        assert_eq!(da, db, "{fam}: data partition changed without grow");
    }
}

fn families() -> Vec<&'static str> {
    vec!["rpi4", "rpi5", "x86", "green", "odroid-m1", "odroid-n2"]
}

#[test]
fn bigger_target_every_family() {
    let Some(dir) = common::fixtures_or_skip("bigger_target_every_family") else {
        return;
    };
    if !common::missing(&["sfdisk", "cp"]).is_empty() {
        eprintln!("skipped: sfdisk missing");
        return;
    }
    for fam in families() {
        family(&dir, fam, false);
    }
}

#[test]
fn grow_every_family() {
    let Some(dir) = common::fixtures_or_skip("grow_every_family") else {
        return;
    };
    if !common::missing(&["sfdisk", "cp"]).is_empty() {
        eprintln!("skipped: sfdisk missing");
        return;
    }
    for fam in families() {
        family(&dir, fam, true);
    }
}

#[test]
fn same_size_and_smaller() {
    let Some(dir) = common::fixtures_or_skip("same_size_and_smaller") else {
        return;
    };
    for fam in ["rpi4", "odroid-n2", "x86"] {
        let img = dir.join(format!("{fam}.img"));
        let size = std::fs::metadata(&img).unwrap().len();
        let f = fit(&img, size, size, false).unwrap();
        assert!(f.writes.is_empty(), "{fam}: {:?}", f.notes);
        let e = fit(&img, size, size - 8 * MIB, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("({} bytes)", size - 8 * MIB))
                && e.contains(&format!("({size} bytes)"))
                && e.contains("lifeboat shrink"),
            "{fam}: {e}"
        );
    }
    // rpi4's data ends 2015 sectors before its backup GPT: 512 KiB less still fits.
    let img = dir.join("rpi4.img");
    let size = std::fs::metadata(&img).unwrap().len();
    let target = size - 512 * 1024;
    let t = tmp("rpi4-smaller");
    copy_to(&img, &t.0, target);
    let f = fit(&t.0, size, target, false).unwrap();
    apply(&t.0, &f);
    check_tools(&t.0, true);
    let (code, after) = common::inspect_json(&t.0);
    assert_eq!(code, 0);
    assert_eq!(after["table"]["gpt"]["backup_lba"], target / 512 - 1);
}

// ---------------------------------------------------------------------------------------
// lifeboat shrink (privileged: loop devices over our own files)

/// A directory of our own under the target tmpdir, removed on drop.
struct TmpDir(PathBuf);
impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(name: &str) -> TmpDir {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("flash-shrink-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

fn shrink_ready(test: &str) -> Option<PathBuf> {
    let dir = common::fixtures_or_skip(test)?;
    if let Err(why) = common::can_loop() {
        eprintln!("skipped {test}: {why}");
        return None;
    }
    let miss = common::missing(&["e2fsck", "resize2fs", "sfdisk", "losetup", "gzip", "dd"]);
    if !miss.is_empty() {
        eprintln!("skipped {test}: missing {}", miss.join(", "));
        return None;
    }
    Some(dir)
}

/// The install as `inspect` shows it, without the sizes a shrink changes.
fn install_sans_sizes(v: &Value) -> Value {
    let mut i = install(v);
    if let Some(d) = i["data"].as_object_mut() {
        for k in ["size_bytes", "used_bytes", "free_bytes", "use_percent"] {
            d.remove(k);
        }
    }
    if let Some(parts) = i["parts"].as_array_mut() {
        for p in parts {
            if p["role"] == "data" {
                p["fs"] = Value::Null;
            }
        }
    }
    i
}

fn dir_entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn shrink_family(dir: &Path, fam: &str, compress: bool) {
    let src = dir.join(format!("{fam}.img"));
    let size = std::fs::metadata(&src).unwrap().len();
    let work = tmpdir(fam);
    let input = if compress {
        let gz = work.0.join(format!("{fam}.img.gz"));
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "gzip -1 -c '{}' > '{}'",
                src.display(),
                gz.display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
        gz
    } else {
        src.clone()
    };
    let (_, before) = common::inspect_json(&src);
    let gpt = before["table"]["gpt"].is_object();
    // A "same size" card a few MiB smaller, and not a whole number of MiB.
    let target = size - 5 * MIB - 7 * 512;
    let out = work.0.join("small.img");
    let (code, stdout, stderr) = common::run(&[
        "--json",
        "shrink",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--size",
        &target.to_string(),
    ]);
    assert_eq!(code, 0, "{fam}: {stdout}{stderr}");
    let rep: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rep["target_size"], target);
    assert_eq!(rep["output_size"], target / 512 * 512);
    assert_eq!(rep["resized"], true, "{rep}");
    assert!(rep["data_new_bytes"].as_u64() < rep["data_old_bytes"].as_u64());
    assert_eq!(std::fs::metadata(&out).unwrap().len(), target / 512 * 512);
    // No temp file left beside the output.
    let left: Vec<String> = dir_entries(&work.0)
        .into_iter()
        .filter(|n| n.contains(".shrink-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    check_tools(&out, gpt);
    let (code, after) = common::inspect_json(&out);
    assert_eq!(code, 0, "{fam}: {after}");
    assert_eq!(
        install_sans_sizes(&after),
        install_sans_sizes(&before),
        "{fam}"
    );
    assert!(
        after["problems"].as_array().unwrap().is_empty(),
        "{fam}: {}",
        after["problems"]
    );
    let data_n = after["data"]["partition"].as_u64().unwrap() as u32;
    assert_eq!(
        after["data"]["size_bytes"], rep["data_new_bytes"],
        "{fam}: filesystem fills the partition"
    );
    if gpt {
        assert_eq!(after["table"]["gpt"]["backup_lba"], target / 512 - 1);
    }

    // The data partition passes e2fsck -fn through the kernel's own view of the table.
    {
        let lo = common::LoopDev::attach(&out, true).unwrap();
        let o = Command::new("e2fsck")
            .arg("-fn")
            .arg(lo.part(data_n))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{fam}: e2fsck -fn: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Onto a smaller "card": a loop device of exactly the target size.
    let card = work.0.join("card.img");
    File::create(&card).unwrap().set_len(target).unwrap();
    let lo = common::LoopDev::attach(&card, false).unwrap();
    let st = Command::new("dd")
        .arg(format!("if={}", out.display()))
        .arg(format!("of={}", lo.dev.display()))
        .args(["bs=1M", "conv=fsync", "status=none"])
        .status()
        .unwrap();
    assert!(st.success());
    // The kernel's view of the card's new table, and e2fsck -f on its data partition.
    let _ = Command::new("partx").arg("-a").arg(&lo.dev).output();
    let _ = Command::new("partx").arg("-u").arg(&lo.dev).output();
    let o = Command::new("e2fsck")
        .arg("-fn")
        .arg(lo.part(data_n))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{fam}: e2fsck -fn on the card's p{data_n}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let (code, on_card) = common::inspect_json(&lo.dev);
    assert_eq!(code, 0, "{fam}: {on_card}");
    assert_eq!(
        install_sans_sizes(&on_card),
        install_sans_sizes(&before),
        "{fam} on the card"
    );
    if gpt {
        // The card is 7 sectors past a MiB boundary minus 5 MiB; the kernel sees whole sectors.
        assert_eq!(on_card["table"]["gpt"]["backup_lba"], target / 512 - 1);
    }
    let probs: Vec<String> = on_card["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str().map(String::from))
        .filter(|p| p.contains("GPT") || p.contains("ends"))
        .collect();
    assert!(probs.is_empty(), "{fam}: {probs:?}");
}

#[test]
fn shrink_gpt_hybrid_mbr_and_compressed() {
    let Some(dir) = shrink_ready("shrink_gpt_hybrid_mbr_and_compressed") else {
        return;
    };
    let t = std::time::Instant::now();
    shrink_family(&dir, "rpi4", false);
    shrink_family(&dir, "x86", true);
    shrink_family(&dir, "odroid-n2", false);
    eprintln!("three shrinks in {:.1?}", t.elapsed());
}

#[test]
fn shrink_refusals() {
    let Some(dir) = shrink_ready("shrink_refusals") else {
        return;
    };
    let src = dir.join("rpi4.img");
    let work = tmpdir("refusals");
    let out = work.0.join("out.img");
    // Data starts at 73 MiB and holds ~7 MiB: 76 MiB leaves 3 MiB for it.
    let small = 76 * MIB;
    let (code, stdout, stderr) = common::run(&[
        "shrink",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--size",
        &small.to_string(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("does not fit")
            && stderr.contains(&format!("target of {small} bytes"))
            && stderr.contains("smallest target that fits is"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert!(
        dir_entries(&work.0).is_empty(),
        "{:?}",
        dir_entries(&work.0)
    );

    // Bigger than the image: nothing to shrink.
    let size = std::fs::metadata(&src).unwrap().len();
    let (code, _, stderr) = common::run(&[
        "shrink",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--size",
        &(size + MIB).to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not smaller"), "{stderr}");
    assert!(dir_entries(&work.0).is_empty());

    // An existing output is kept without --force, replaced with it.
    std::fs::write(&out, b"keep me").unwrap();
    let target = (size - 3 * MIB).to_string();
    let args = [
        "shrink",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--size",
        &target,
    ];
    let (code, _, stderr) = common::run(&args);
    assert_eq!(code, 1);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let mut forced = args.to_vec();
    forced.push("--force");
    let (code, stdout, stderr) = common::run(&forced);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size - 3 * MIB);

    // --to takes the size from a device (a loop device of our own, only read).
    let card = work.0.join("card.img");
    File::create(&card)
        .unwrap()
        .set_len(size - 2 * MIB)
        .unwrap();
    let lo = common::LoopDev::attach(&card, true).unwrap();
    let out2 = work.0.join("to.img");
    let (code, stdout, stderr) = common::run(&[
        "--json",
        "shrink",
        src.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--to",
        lo.dev.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let rep: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rep["target_size"], size - 2 * MIB);
    // A regular file is not a device.
    let (code, _, stderr) = common::run(&[
        "shrink",
        src.to_str().unwrap(),
        "-o",
        work.0.join("x.img").to_str().unwrap(),
        "--to",
        card.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a block device"), "{stderr}");
}

#[test]
fn shrink_reports_fsck_fixes() {
    let Some(dir) = shrink_ready("shrink_reports_fsck_fixes") else {
        return;
    };
    if !common::have("debugfs") {
        eprintln!("skipped shrink_reports_fsck_fixes: debugfs missing");
        return;
    }
    let work = tmpdir("fsck");
    let img = work.0.join("damaged.img");
    let size = std::fs::metadata(dir.join("rpi4.img")).unwrap().len();
    copy_to(&dir.join("rpi4.img"), &img, size);
    // Wrong free counts in the data superblock (p8 at LBA 149504, 131072 sectors).
    let part = work.0.join("p8.img");
    let dd = |args: &[String]| {
        let st = Command::new("dd").args(args).status().unwrap();
        assert!(st.success());
    };
    dd(&[
        format!("if={}", img.display()),
        format!("of={}", part.display()),
        "bs=512".into(),
        "skip=149504".into(),
        "count=131072".into(),
        "status=none".into(),
    ]);
    let o = Command::new("debugfs")
        .args(["-w", "-R", "ssv free_blocks_count 12345"])
        .arg(&part)
        .output()
        .unwrap();
    assert!(o.status.success());
    dd(&[
        format!("if={}", part.display()),
        format!("of={}", img.display()),
        "bs=512".into(),
        "seek=149504".into(),
        "conv=notrunc".into(),
        "status=none".into(),
    ]);
    std::fs::remove_file(&part).unwrap();
    let out = work.0.join("fixed.img");
    let (code, stdout, stderr) = common::run(&[
        "--json",
        "shrink",
        img.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--size",
        &(size - 4 * MIB).to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let rep: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rep["fsck_fixed"], true, "{rep}");
    assert!(
        rep["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("e2fsck -f -y fixed")),
        "{rep}"
    );
    // The input was not touched: its superblock still carries the wrong count.
    let (_, v) = common::inspect_json(&img);
    assert_eq!(v["data"]["free_bytes"], 12345u64 * 4096, "{}", v["data"]);
}

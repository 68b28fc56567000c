//! `lifeboat clone` between loop devices made from the HAOS fixture images (root and loop
//! devices needed; skipped with the reason otherwise): rpi4 (hybrid GPT) and odroid-n2 (DOS
//! MBR with logical partitions) onto a bigger target, with and without `--grow`: the target
//! holds the source's bytes on every used range, `lifeboat inspect` shows the same install,
//! the tables check clean with `sgdisk -v` / `sfdisk --verify`. A source with unreadable
//! sectors (nbdkit fault rig) gives exit 6, the bad sectors listed by partition and file, the
//! rest identical. `--all`, and a target slightly smaller than the source. A target sector
//! that needs a rewrite (nbdkit `sh` plugin) is found by the read-back and rewritten from the
//! source; Ctrl-C mid-clone leaves the target blank. Refusals: files and partitions, the same
//! disk twice, a target too small, a mounted target, a source mounted read-write, no `--yes`
//! without a terminal.

mod common;
mod faultdev;

use common::{LoopDev, can_loop, fixtures_or_skip, have, run};
use lifeboat::imaging::ranges::{self, Extent};
use lifeboat::io::FileReader;
use serde_json::Value;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const MIB: u64 = 1 << 20;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-clone-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn skip(test: &str) -> Option<PathBuf> {
    if let Err(why) = can_loop() {
        eprintln!("skipped {test}: {why}");
        return None;
    }
    fixtures_or_skip(test)
}

/// A sparse copy of `src` at `dst`, `size` bytes long.
fn sparse_copy(src: &Path, dst: &Path, size: u64) {
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::OpenOptions::new()
        .write(true)
        .open(dst)
        .unwrap()
        .set_len(size)
        .unwrap();
}

/// An empty (sparse) target file of `size` bytes filled with a marker in its first MiBs.
fn blank(dst: &Path, size: u64) {
    let f = File::create(dst).unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(&vec![0xA5u8; 4 * MIB as usize], 0).unwrap();
}

/// The used ranges lifeboat computes for an image file.
fn used_of(path: &Path) -> Vec<Extent> {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let r = FileReader::new(f, len);
    lifeboat::imaging::usage::build(&r, 512, false).used
}

fn read_range(f: &File, e: &Extent) -> Vec<u8> {
    let mut b = vec![0u8; e.len as usize];
    f.read_exact_at(&mut b, e.start).unwrap();
    b
}

/// The target holds the source's bytes on `used`, except in `skip` (the tables the fit
/// rewrites) and where `zero` says the source was unreadable (zeros there).
fn assert_same(src: &Path, dst: &Path, used: &[Extent], skip: &[Extent], zero: &[Extent]) {
    let (a, b) = (File::open(src).unwrap(), File::open(dst).unwrap());
    let size = std::fs::metadata(src).unwrap().len();
    let cmp = ranges::subtract(used, &ranges::normalize(skip.to_vec()), size);
    for e in &cmp {
        let mut want = read_range(&a, e);
        for z in ranges::intersect(zero, &[*e]) {
            want[(z.start - e.start) as usize..(z.end() - e.start) as usize].fill(0);
        }
        let got = read_range(&b, e);
        if got != want {
            let i = got.iter().zip(&want).position(|(x, y)| x != y).unwrap();
            panic!(
                "{}: byte {} differs from the source ({} vs {})",
                dst.display(),
                e.start + i as u64,
                got[i],
                want[i]
            );
        }
    }
}

/// What the fit may rewrite: sector 0 to the end of the primary GPT entries, and the
/// source's backup GPT (its last 33 sectors).
fn table_areas(size: u64) -> Vec<Extent> {
    vec![
        Extent::new(0, 34 * 512),
        Extent::new(size - 33 * 512, 33 * 512),
    ]
}

fn inspect(dev: &Path) -> Value {
    let (code, out, err) = run(&["inspect", "--json", s(dev)]);
    assert_eq!(code, 0, "inspect {}: {err}", dev.display());
    serde_json::from_str(&out).unwrap()
}

/// (number, role, start) of every partition, and the fields that make "the same install".
type Install = (Vec<(u64, String, u64)>, Value, Value, Value, Value);

fn install(v: &Value) -> Install {
    let parts = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().unwrap(),
                p["role"].as_str().unwrap_or("").to_string(),
                p["start_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    (
        parts,
        v["board"].clone(),
        v["family"].clone(),
        v["machine_id"].clone(),
        v["slots"].clone(),
    )
}

fn data_size(v: &Value) -> u64 {
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "data")
        .and_then(|p| p["size_bytes"].as_u64())
        .unwrap()
}

fn tool(c: &mut Command) -> String {
    let o = c.output().expect("running a tool");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check_tables(dev: &Path, gpt: bool) {
    let v = tool(Command::new("sfdisk").arg("--verify").arg(dev));
    assert!(
        !v.to_lowercase().contains("error") || v.contains("No errors detected"),
        "sfdisk --verify {}: {v}",
        dev.display()
    );
    if gpt && have("sgdisk") {
        let v = tool(Command::new("sgdisk").arg("-v").arg(dev));
        assert!(v.contains("No problems found"), "sgdisk -v: {v}");
    }
}

/// Clone `family` onto a target 64 MiB bigger, then check bytes, install and tables.
fn clone_family(fx: &Path, family: &str, gpt: bool, grow: bool) {
    let d = tmp();
    let img = fx.join(format!("{family}.img"));
    let size = std::fs::metadata(&img).unwrap().len();
    let src = d.path().join("src.img");
    let dst = d.path().join("dst.img");
    sparse_copy(&img, &src, size);
    blank(&dst, size + 64 * MIB);
    let sl = LoopDev::attach(&src, true).unwrap();
    let tl = LoopDev::attach(&dst, false).unwrap();
    let mut args = vec!["--json", "clone", s(&sl.dev), s(&tl.dev), "--yes"];
    if grow {
        args.push("--grow");
    }
    let t = Instant::now();
    let (code, out, err) = run(&args);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "clone {family}: {err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let mapped = doc["mapped_bytes"].as_u64().unwrap();
    eprintln!(
        "clone {family}{}: {mapped} bytes used of {size} in {secs:.2} s ({:.1} MB/s), {} bytes verified",
        if grow { " --grow" } else { "" },
        mapped as f64 / secs / 1e6,
        doc["flash"]["bytes_verified"]
    );
    assert_eq!(doc["bad"].as_array().unwrap().len(), 0);
    assert!(doc["flash"]["mismatches"].as_array().unwrap().is_empty());
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("same partition UUIDs")),
        "{doc}"
    );
    // Progress and warnings went to stderr as JSON lines.
    for l in err.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(v["event"].is_string(), "{l}");
    }
    let used = used_of(&img);
    assert_same(&img, &dst, &used, &table_areas(size), &[]);
    let (a, b) = (inspect(&sl.dev), inspect(&tl.dev));
    assert_eq!(install(&a), install(&b), "same install on the target");
    if grow {
        assert!(data_size(&b) > data_size(&a), "data grown");
        assert!(data_size(&b) >= data_size(&a) + 60 * MIB);
    } else {
        assert_eq!(data_size(&b), data_size(&a));
    }
    check_tables(&tl.dev, gpt);
    if gpt {
        // Backup GPT header in the target's last sector.
        let f = File::open(&dst).unwrap();
        let mut h = [0u8; 8];
        f.read_exact_at(&mut h, size + 64 * MIB - 512).unwrap();
        assert_eq!(&h, b"EFI PART");
    }
}

#[test]
fn clone_rpi4_hybrid_gpt_onto_a_bigger_disk() {
    let Some(fx) = skip("clone_rpi4_hybrid_gpt_onto_a_bigger_disk") else {
        return;
    };
    clone_family(&fx, "rpi4", true, false);
    clone_family(&fx, "rpi4", true, true);
}

#[test]
fn clone_odroid_dos_mbr_onto_a_bigger_disk() {
    let Some(fx) = skip("clone_odroid_dos_mbr_onto_a_bigger_disk") else {
        return;
    };
    clone_family(&fx, "odroid-n2", false, false);
    clone_family(&fx, "odroid-n2", false, true);
}

/// `--all` copies every sector; a target a little smaller than the source but holding every
/// partition and the backup GPT is accepted (the backup GPT moves in from the source's end).
#[test]
fn clone_all_sectors_and_onto_a_slightly_smaller_disk() {
    let Some(fx) = skip("clone_all_sectors_and_onto_a_slightly_smaller_disk") else {
        return;
    };
    let d = tmp();
    let img = fx.join("rpi4.img");
    let size = std::fs::metadata(&img).unwrap().len();
    let src = d.path().join("src.img");
    sparse_copy(&img, &src, size);
    let sl = LoopDev::attach(&src, true).unwrap();

    let dst = d.path().join("all.img");
    blank(&dst, size + 8 * MIB);
    let tl = LoopDev::attach(&dst, false).unwrap();
    let (code, out, err) = run(&["--json", "clone", s(&sl.dev), s(&tl.dev), "--yes", "--all"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    // Every sector but the source's backup GPT header, which the fit zeroes on a bigger disk.
    assert_eq!(doc["mapped_bytes"], size - 512);
    assert_same(&img, &dst, &[Extent::new(0, size)], &table_areas(size), &[]);
    check_tables(&tl.dev, true);

    // The partitions end 1 MiB before the source's end: 512 KiB less still holds them and
    // the backup GPT.
    let small = size - 512 * 1024;
    let dst = d.path().join("smaller.img");
    blank(&dst, small);
    let tl = LoopDev::attach(&dst, false).unwrap();
    let (code, _, err) = run(&["clone", s(&sl.dev), s(&tl.dev), "--yes"]);
    assert_eq!(code, 0, "{err}");
    let used = ranges::intersect(&used_of(&img), &[Extent::new(0, small)]);
    let mut tables = table_areas(size);
    tables.push(Extent::new(small - 33 * 512, 33 * 512));
    assert_same(&img, &dst, &used, &tables, &[]);
    check_tables(&tl.dev, true);
    assert_eq!(install(&inspect(&sl.dev)), install(&inspect(&tl.dev)));
}

#[test]
fn unreadable_source_sectors_give_exit_6_and_are_listed() {
    let test = "unreadable_source_sectors_give_exit_6_and_are_listed";
    if let Some(why) = faultdev::unavailable() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip(test) else {
        return;
    };
    let d = tmp();
    let img = fx.join("rpi4.img");
    let size = std::fs::metadata(&img).unwrap().len();
    let back = d.path().join("src.img");
    sparse_copy(&img, &back, size);
    // The data partition (8) and a used sector in it: the recorder database's first block
    // (debugfs), else the middle of the largest used range there.
    let info = inspect(&img);
    let p8 = info["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["number"] == 8)
        .unwrap()
        .clone();
    let (dstart, dsize) = (
        p8["start_bytes"].as_u64().unwrap(),
        p8["size_bytes"].as_u64().unwrap(),
    );
    let used = used_of(&img);
    const DB: &str = "/supervisor/homeassistant/home-assistant_v2.db";
    let part = d.path().join("data.ext4");
    let whole = std::fs::read(&img).unwrap();
    std::fs::write(&part, &whole[dstart as usize..(dstart + dsize) as usize]).unwrap();
    let db_block = if have("debugfs") {
        Command::new("debugfs")
            .args(["-R", &format!("bmap {DB} 0")])
            .arg(&part)
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    } else {
        None
    };
    let bad_at = match db_block {
        Some(b) => dstart + b * 4096 + 1024,
        None => {
            let big = used
                .iter()
                .filter(|e| e.start >= dstart && e.start < dstart + dsize)
                .max_by_key(|e| e.len)
                .unwrap();
            (big.start + big.len / 2) / 512 * 512
        }
    };
    // A bad area in the bootstate partition too (no filesystem: read whole).
    let p6 = info["partitions"][5]["start_bytes"].as_u64().unwrap();
    let bad = [(p6 + 8192, 1024u64), (bad_at, 512u64)];
    let work = d.path().join("rig");
    std::fs::create_dir_all(&work).unwrap();
    let fd = faultdev::FaultDev::new(&back, &bad, &work).expect("fault device");
    let dst = d.path().join("dst.img");
    blank(&dst, size + 16 * MIB);
    let tl = LoopDev::attach(&dst, false).unwrap();
    let map = d.path().join("clone.map");
    let (code, out, err) = run(&[
        "--json",
        "clone",
        s(&fd.dev),
        s(&tl.dev),
        "--yes",
        "--mapfile",
        s(&map),
    ]);
    assert_eq!(code, 6, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let got: Vec<(u64, u64, Option<u64>)> = doc["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_u64().unwrap(),
                b["length"].as_u64().unwrap(),
                b["partition"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(bad[0].0, bad[0].1, Some(6)), (bad[1].0, bad[1].1, Some(8))],
        "{doc}"
    );
    if db_block.is_some() {
        assert_eq!(doc["bad"][1]["files"][0], DB, "{doc}");
    }
    assert_eq!(doc["read"]["bad_bytes"], 1536);
    let m = lifeboat::imaging::mapfile::Mapfile::load(&map).unwrap();
    assert_eq!(
        m.ranges(lifeboat::imaging::mapfile::Status::BadSector),
        bad.iter()
            .map(|&(o, l)| Extent::new(o, l))
            .collect::<Vec<_>>()
    );
    let zero: Vec<Extent> = bad.iter().map(|&(o, l)| Extent::new(o, l)).collect();
    assert_same(&img, &dst, &used, &table_areas(size), &zero);
    check_tables(&tl.dev, true);
    // Text mode names the partition.
    let dst2 = d.path().join("dst2.img");
    blank(&dst2, size);
    let tl2 = LoopDev::attach(&dst2, false).unwrap();
    let (code, out, err) = run(&["clone", s(&fd.dev), s(&tl2.dev), "--yes"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        out.contains("unreadable on the source") && out.contains("partition 8"),
        "{out}"
    );
}

#[test]
fn refusals() {
    let Some(fx) = skip("clone refusals") else {
        return;
    };
    let d = tmp();
    let img = fx.join("rpi4.img");
    let size = std::fs::metadata(&img).unwrap().len();
    let src = d.path().join("src.img");
    sparse_copy(&img, &src, size);
    let sl = LoopDev::attach(&src, false).unwrap();

    // Files are not disks: pointers to flash and image.
    let (code, _, err) = run(&["clone", s(&src), s(&sl.dev), "--yes"]);
    assert_eq!(code, 1);
    assert!(err.contains("lifeboat flash"), "{err}");
    let (code, _, err) = run(&["clone", s(&sl.dev), s(&src), "--yes"]);
    assert_eq!(code, 1);
    assert!(err.contains("lifeboat image"), "{err}");

    // The same disk twice.
    let (code, _, err) = run(&["clone", s(&sl.dev), s(&sl.dev), "--yes"]);
    assert_eq!(code, 1);
    assert!(err.contains("same disk"), "{err}");

    // A target smaller than the end of the last partition: exact sizes and the way out.
    let small = d.path().join("small.img");
    blank(&small, size - 4 * MIB);
    let smalll = LoopDev::attach(&small, false).unwrap();
    let (code, _, err) = run(&["clone", s(&sl.dev), s(&smalll.dev), "--yes"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("too small")
            && err.contains(&(size - 4 * MIB).to_string())
            && err.contains("lifeboat shrink"),
        "{err}"
    );
    let head = std::fs::read(&small).unwrap();
    assert!(
        head[..4 * MIB as usize].iter().all(|&b| b == 0xA5),
        "untouched"
    );

    // No --yes and no terminal.
    let big = d.path().join("big.img");
    blank(&big, size + 8 * MIB);
    let bigl = LoopDev::attach(&big, false).unwrap();
    let o = common::lifeboat()
        .args(["clone", s(&sl.dev), s(&bigl.dev)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("--yes") && err.contains("terminal"), "{err}");

    // A mounted target; then a source mounted read-write (allowed with --force).
    if !have("mount") {
        eprintln!("skipped the mount refusals: no mount");
        return;
    }
    let tgt = d.path().join("tgt.img");
    sparse_copy(&img, &tgt, size + 8 * MIB);
    let tl = LoopDev::attach(&tgt, false).unwrap();
    let mnt = d.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let ok = Command::new("mount")
        .args(["-o", "ro"])
        .arg(tl.part(8))
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let guard = Umount(mnt.clone());
        let (code, _, err) = run(&["clone", s(&sl.dev), s(&tl.dev), "--yes"]);
        assert_eq!(code, 1);
        assert!(err.contains("in use") || err.contains("mounted"), "{err}");
        drop(guard);
    } else {
        eprintln!(
            "could not mount {} (skipped that refusal)",
            tl.part(8).display()
        );
    }
    let ok = Command::new("mount")
        .arg(sl.part(8))
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _guard = Umount(mnt.clone());
        let (code, _, err) = run(&["clone", s(&sl.dev), s(&bigl.dev), "--yes"]);
        assert_eq!(code, 1);
        assert!(
            err.contains("mounted read-write") && err.contains("--force"),
            "{err}"
        );
    } else {
        eprintln!(
            "could not mount {} (skipped that refusal)",
            sl.part(8).display()
        );
    }
}

/// Ctrl-C in the middle of a clone (a slow source: nbdkit's delay filter) leaves the target
/// blank: no partition table at its start or end, and the error says so.
#[test]
fn an_interrupted_clone_leaves_a_blank_target() {
    let test = "an_interrupted_clone_leaves_a_blank_target";
    if let Some(why) = faultdev::unavailable() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip(test) else {
        return;
    };
    let d = tmp();
    let img = fx.join("rpi4.img");
    let size = std::fs::metadata(&img).unwrap().len();
    let back = d.path().join("src.img");
    sparse_copy(&img, &back, size);
    let work = d.path().join("rig");
    std::fs::create_dir_all(&work).unwrap();
    let fd =
        faultdev::FaultDev::with_filters(&back, &[], &work, &[("--filter=delay", "rdelay=200ms")])
            .expect("slow device");
    let dst = d.path().join("dst.img");
    // A target that held an HAOS install before: its old tables must not survive.
    sparse_copy(&img, &dst, size + 8 * MIB);
    let tl = LoopDev::attach(&dst, false).unwrap();
    let mut child = common::lifeboat()
        .args(["--json", "clone", s(&fd.dev), s(&tl.dev), "--yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the write phase (reading the source, writing the target) has begun.
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let mut err = String::new();
    let mut sent = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        if !sent && line.contains("\"phase\":\"write\"") && line.contains("\"done\":") {
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["done"].as_u64().unwrap_or(0) > 0 {
                let _ = Command::new("kill").args(["-INT", &pid]).status();
                sent = true;
            }
        }
        err.push_str(&line);
        err.push('\n');
    }
    assert!(sent, "never saw the write phase: {err}");
    let mut stdout = child.stdout.take().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1), "{out}");
    assert!(out.contains("\"error\""), "{out}");
    assert!(
        out.contains("interrupted") && out.contains("blank"),
        "{out}\n{err}"
    );
    let f = File::open(&dst).unwrap();
    let head = read_range(&f, &Extent::new(0, MIB));
    assert!(head.iter().all(|&b| b == 0), "first MiB wiped");
    let tail = read_range(&f, &Extent::new(size + 7 * MIB, MIB));
    assert!(tail.iter().all(|&b| b == 0), "last MiB wiped");
    let old_backup = read_range(&f, &Extent::new(size - 512, 512));
    assert_ne!(&old_backup[..8], b"EFI PART", "the old backup GPT is gone");
}

/// nbdkit `sh` plugin: a file-backed disk where the first write covering byte `$FLIP` does
/// not take: reads return that byte inverted until a second write covers it (`$MARK` keeps
/// the state). A card sector that needed a rewrite.
const FLIP_ONCE_PLUGIN: &str = r#"#!/bin/bash
hit() { (( $2 <= FLIP && FLIP < $2 + $1 )); }
case "$1" in
  get_size) stat -L -c %s "$IMG" ;;
  can_write|can_flush) exit 0 ;;
  thread_model) echo serialize_all_requests ;;
  pread)
    if hit "$3" "$4" && [ "$(cat "$MARK" 2>/dev/null)" = bad ]; then
      dd if="$IMG" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none |
        perl -e 'local $/; my $d = <STDIN>; my $i = $ARGV[0];
                 substr($d, $i, 1) = chr(ord(substr($d, $i, 1)) ^ 0xff); print $d' $((FLIP - $4))
    else
      dd if="$IMG" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none
    fi ;;
  pwrite)
    if hit "$3" "$4"; then
      if [ -e "$MARK" ]; then echo good > "$MARK"; else echo bad > "$MARK"; fi
    fi
    dd of="$IMG" seek="$4" oflag=seek_bytes conv=notrunc iflag=fullblock status=none ;;
  flush) sync "$IMG" ;;
  *) exit 2 ;;
esac
"#;

/// The target behind nbdkit's `sh` plugin through nbdfuse, as a read-write `O_DIRECT` loop
/// device; torn down on drop.
struct LyingDisk {
    dev: PathBuf,
    mnt: PathBuf,
    child: Option<std::process::Child>,
}

impl LyingDisk {
    fn new(work: &Path, back: &Path, flip: u64) -> LyingDisk {
        let plugin = work.join("flip.sh");
        std::fs::write(&plugin, FLIP_ONCE_PLUGIN).unwrap();
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mnt = work.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let pid = work.join("nbdfuse.pid");
        let child = Command::new("nbdfuse")
            .arg("-P")
            .arg(&pid)
            .arg(mnt.join("disk.img"))
            .args(["[", "nbdkit", "sh", s(&plugin), "]"])
            .env("IMG", back)
            .env("FLIP", flip.to_string())
            .env("MARK", work.join("flipped"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(work.join("nbdfuse.log")).unwrap())
            .spawn()
            .unwrap();
        let mut me = LyingDisk {
            dev: PathBuf::new(),
            mnt: mnt.clone(),
            child: Some(child),
        };
        let t = Instant::now();
        while std::fs::metadata(&pid).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(t.elapsed().as_secs() < 20, "nbdfuse did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = Command::new("losetup")
            .args(["-f", "--show", "--direct-io=on"])
            .arg(mnt.join("disk.img"))
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup failed");
        me.dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        me
    }
}

impl Drop for LyingDisk {
    fn drop(&mut self) {
        if !self.dev.as_os_str().is_empty() {
            let _ = Command::new("partx").arg("-d").arg(&self.dev).output();
            let _ = Command::new("losetup").arg("-d").arg(&self.dev).output();
        }
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .output();
        if let Some(mut c) = self.child.take() {
            let t = Instant::now();
            while !matches!(c.try_wait(), Ok(Some(_))) {
                if t.elapsed().as_secs() > 10 {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// A target sector that does not take the first write: the clone finds it by the read-back,
/// rewrites it from the source disk (read again, read-only) and succeeds, reporting the
/// fixed mismatch.
#[test]
fn a_readback_mismatch_is_rewritten_from_the_source() {
    let test = "a_readback_mismatch_is_rewritten_from_the_source";
    if let Some(why) = faultdev::unavailable() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    if !have("perl") {
        eprintln!("skipped {test}: no perl");
        return;
    }
    let Some(fx) = fixtures_or_skip(test) else {
        return;
    };
    let d = tmp();
    let img = fx.join("rpi4.img");
    let size = std::fs::metadata(&img).unwrap().len();
    let src = d.path().join("src.img");
    sparse_copy(&img, &src, size);
    let sl = LoopDev::attach(&src, true).unwrap();
    // A used byte of the data partition, past its first MiB (not read by the table fit).
    let info = inspect(&img);
    let p8 = info["partitions"][7]["start_bytes"].as_u64().unwrap();
    let p8_end = p8 + info["partitions"][7]["size_bytes"].as_u64().unwrap();
    let e = ranges::intersect(&used_of(&img), &[Extent::new(p8 + MIB, p8_end - p8 - MIB)])
        .into_iter()
        .find(|e| e.len >= 4096)
        .expect("a used range in the data partition");
    let flip = e.start + 100;
    let back = d.path().join("target.bin");
    File::create(&back)
        .unwrap()
        .set_len(size + 8 * MIB)
        .unwrap();
    let work = d.path().join("nbd");
    std::fs::create_dir_all(&work).unwrap();
    let t = LyingDisk::new(&work, &back, flip);
    let (code, out, err) = run(&["--json", "clone", s(&sl.dev), s(&t.dev), "--yes"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let m = &doc["flash"]["mismatches"];
    assert_eq!(m.as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(m[0]["offset"], flip / 512 * 512, "{m}");
    assert_eq!(m[0]["length"], 512, "{m}");
    assert_eq!(m[0]["partition"], 8);
    assert_eq!(m[0]["fixed"], true);
    assert!(err.contains("fixed by rewrite 1"), "{err}");
    assert_same(&img, &back, &used_of(&img), &table_areas(size), &[]);
}

//! `lifeboat flash` on loop devices this test creates over sparse files (root only; skipped
//! with a printed reason otherwise): every input format (raw, zstd, gzip, xz, bzip2, zip) of
//! an HAOS fixture and of an odd-size image, compared with the image and checked with
//! `inspect`; our bmap and bmaptool's; a corrupt image refused before the tables are written;
//! refusals (mounted, too small, read-only, a partition, no --yes without a terminal); a
//! device that corrupts reads (nbdkit `sh` plugin behind nbdfuse) caught, retried, reported
//! by offset and partition, and the disk left blank; a flash killed mid-way (SIGKILL, on a
//! rate-limited device) leaves no partition table.

mod common;

use common::{LoopDev, can_loop, fixtures_or_skip, inspect_json, missing, run};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why these tests cannot run here.
fn skip_reason(extra_tools: &[&str]) -> Option<String> {
    if let Err(e) = can_loop() {
        return Some(e);
    }
    let miss = missing(extra_tools);
    if !miss.is_empty() {
        return Some(format!("missing {}", miss.join(", ")));
    }
    None
}

macro_rules! skip_unless {
    ($name:expr, $tools:expr) => {
        if let Some(why) = skip_reason($tools) {
            eprintln!("skipped {}: {why}", $name);
            return;
        }
    };
}

/// A blank sparse file of `size` bytes attached as a loop device.
fn blank_target(dir: &Path, name: &str, size: u64) -> (PathBuf, LoopDev) {
    let f = dir.join(name);
    let h = File::create(&f).unwrap();
    h.set_len(size).unwrap();
    drop(h);
    let l = LoopDev::attach(&f, false).unwrap();
    (f, l)
}

fn flash(image: &Path, dev: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut a = vec![
        "flash",
        "--yes",
        image.to_str().unwrap(),
        dev.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    run(&a)
}

fn flash_json(image: &Path, dev: &Path, extra: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(extra);
    let (code, out, err) = flash(image, dev, &a);
    assert_eq!(code, 0, "flash {}: {err}\n{out}", image.display());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn read_range(p: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact(&mut b).unwrap();
    b
}

/// The image's partitions (start, end) in bytes, from `sfdisk --json`.
fn partitions(img: &Path) -> Vec<(u64, u64)> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(img)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ss = v["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = p["start"].as_u64().unwrap() * ss;
            (s, s + p["size"].as_u64().unwrap() * ss)
        })
        .collect()
}

/// The disk holds the HAOS image: sector 0 (the MBR, hybrid or protective, kept as it is
/// unless it must be resized), every partition byte for byte, a valid table and the same
/// install for `inspect`.
fn assert_holds_haos(img: &Path, dev: &Path) {
    for (s, e) in partitions(img) {
        let a = read_range(img, s, (e - s) as usize);
        let b = read_range(dev, s, (e - s) as usize);
        assert!(a == b, "partition at {s} differs on {}", dev.display());
    }
    let v = Command::new("sfdisk")
        .arg("--verify")
        .arg(dev)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "sfdisk --verify: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    let (_, want) = inspect_json(img);
    let (code, got) = inspect_json(dev);
    assert_eq!(code, 0, "inspect on {}: {got}", dev.display());
    assert_eq!(got["verdict"], "haos");
    assert_eq!(got["board"], want["board"]);
    assert_eq!(got["os_version"], want["os_version"]);
    let gpt = &got["table"]["gpt"];
    if gpt.is_object() {
        assert_eq!(gpt["backup_ok"], true, "{gpt}");
    }
}

/// Compress `raw` into `dir` with each tool; returns (format, path).
fn compressed_copies(raw: &Path, dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let name = raw.file_name().unwrap().to_str().unwrap().to_string();
    let mut v = vec![("raw", raw.to_path_buf())];
    let sh = |cmd: String| {
        let st = Command::new("bash").arg("-c").arg(&cmd).status().unwrap();
        assert!(st.success(), "{cmd}");
    };
    let r = raw.display();
    let d = dir.display();
    sh(format!("zstd -q -T2 -c '{r}' > '{d}/{name}.zst'"));
    v.push(("zstd", dir.join(format!("{name}.zst"))));
    sh(format!("gzip -1 -c '{r}' > '{d}/{name}.gz'"));
    v.push(("gzip", dir.join(format!("{name}.gz"))));
    sh(format!("xz -0 -T2 -c '{r}' > '{d}/{name}.xz'"));
    v.push(("xz", dir.join(format!("{name}.xz"))));
    sh(format!("bzip2 -1 -c '{r}' > '{d}/{name}.bz2'"));
    v.push(("bzip2", dir.join(format!("{name}.bz2"))));
    sh(format!(
        "cd '{}' && zip -q -1 '{d}/{name}.zip' '{name}'",
        raw.parent().unwrap().display()
    ));
    v.push(("zip", dir.join(format!("{name}.zip"))));
    v
}

#[test]
fn every_input_format_haos_and_odd_size() {
    skip_unless!(
        "every_input_format_haos_and_odd_size",
        &["zstd", "gzip", "xz", "bzip2", "zip", "sfdisk"]
    );
    let Some(fx) = fixtures_or_skip("every_input_format_haos_and_odd_size") else {
        return;
    };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let haos = dir.path().join("rpi4.img");
    std::fs::copy(fx.join("rpi4.img"), &haos).unwrap();
    // Odd size: not a multiple of 512, 4096 or the 4 MiB chunk; no partition table.
    let odd = dir.path().join("odd.img");
    let odd_len = (5 << 20) + 12_345;
    let data: Vec<u8> = (0..odd_len)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&odd, &data).unwrap();

    let (tfile, t) = blank_target(dir.path(), "target.bin", 256 << 20);
    for (fmt, p) in compressed_copies(&haos, dir.path()) {
        let v = flash_json(&p, &t.dev, &[]);
        assert_eq!(v["format"], fmt, "{v}");
        assert!(v["mismatches"].as_array().unwrap().is_empty(), "{v}");
        assert_holds_haos(&haos, &t.dev);
        // The backup GPT moved to the end of the 256 MiB disk.
        let (_, got) = inspect_json(&t.dev);
        assert_eq!(
            got["table"]["gpt"]["backup_lba"],
            (256u64 << 20) / 512 - 1,
            "{fmt}"
        );
        if fmt == "zip" {
            assert_eq!(v["inner_name"], "rpi4.img");
        }
    }
    for (fmt, p) in compressed_copies(&odd, dir.path()) {
        // Fill the target so the padding of the last sector must come from the disk.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&tfile)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &vec![0xA5u8; 8 << 20], 0).unwrap();
        f.sync_all().unwrap();
        let v = flash_json(&p, &t.dev, &[]);
        assert_eq!(v["format"], fmt);
        assert_eq!(v["image_size"], odd_len as u64);
        let got = read_range(&t.dev, 0, odd_len + 100);
        assert!(got[..odd_len] == data[..], "{fmt}: bytes differ");
        assert!(
            got[odd_len..].iter().all(|&b| b == 0xA5),
            "{fmt}: the bytes after the image's end changed"
        );
    }
    eprintln!("every_input_format: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn zip_with_two_files_is_refused_naming_them() {
    skip_unless!("zip_with_two_files_is_refused_naming_them", &["zip"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.img"), vec![1u8; 4096]).unwrap();
    std::fs::write(dir.path().join("b.txt"), b"readme").unwrap();
    let st = Command::new("zip")
        .current_dir(dir.path())
        .args(["-q", "two.zip", "a.img", "b.txt"])
        .status()
        .unwrap();
    assert!(st.success());
    let (_, t) = blank_target(dir.path(), "t.bin", 16 << 20);
    let (code, _, err) = flash(&dir.path().join("two.zip"), &t.dev, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("a.img") && err.contains("b.txt") && err.contains("2 files"),
        "{err}"
    );
}

/// `lifeboat image` output (x.img, x.img.bmap) of the rpi4 fixture.
fn our_image(fx: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("x.img");
    let (code, _, err) = run(&[
        "image",
        "-q",
        fx.join("rpi4.img").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "image: {err}");
    assert!(dir.join("x.img.bmap").is_file());
    out
}

#[test]
fn bmaps_ours_and_bmaptools_and_a_corrupt_image() {
    skip_unless!(
        "bmaps_ours_and_bmaptools_and_a_corrupt_image",
        &["sfdisk", "bmaptool"]
    );
    let Some(fx) = fixtures_or_skip("bmaps_ours_and_bmaptools_and_a_corrupt_image") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = our_image(&fx, dir.path());
    let size = std::fs::metadata(&img).unwrap().len();
    let (_, t) = blank_target(dir.path(), "t.bin", 200 << 20);

    // Our bmap, picked up beside the image: only mapped ranges written.
    let v = flash_json(&img, &t.dev, &[]);
    assert!(v["bmap"].as_str().unwrap().ends_with("x.img.bmap"), "{v}");
    assert!(v["bmap_ranges"].as_u64().unwrap() > 0);
    assert!(v["bmap_ranges_checked"].as_u64().unwrap() > 0);
    assert!(v["bytes_written"].as_u64().unwrap() < size / 2, "{v}");
    assert_holds_haos(&img, &t.dev);

    // bmaptool's bmap of the same image.
    let bm = dir.path().join("tool.bmap");
    let st = Command::new("bmaptool")
        .args(["create", "-o"])
        .arg(&bm)
        .arg(&img)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let v = flash_json(&img, &t.dev, &["--bmap", bm.to_str().unwrap()]);
    assert!(v["bmap_ranges_checked"].as_u64().unwrap() > 0, "{v}");
    assert_holds_haos(&img, &t.dev);

    // lifeboat's compressed image with its bmap beside it (x.img.zst + x.img.zst.bmap).
    let zst = dir.path().join("y.img.zst");
    let (code, _, err) = run(&[
        "image",
        "-q",
        fx.join("rpi4.img").to_str().unwrap(),
        "-o",
        zst.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "image: {err}");
    let v = flash_json(&zst, &t.dev, &[]);
    assert_eq!(v["format"], "zstd");
    assert!(
        v["bmap"].as_str().unwrap().ends_with("y.img.zst.bmap"),
        "{v}"
    );
    assert!(v["bytes_written"].as_u64().unwrap() < size / 2, "{v}");
    assert_holds_haos(&img, &t.dev);

    // Without a bmap: every byte.
    let v = flash_json(&img, &t.dev, &["--no-bmap"]);
    assert!(v["bmap"].is_null());
    assert!(v["bytes_written"].as_u64().unwrap() >= size);
    assert!(v["image_sha256"].is_string());

    // A corrupt image (one byte in the data partition's superblock, a mapped range): refused
    // by the bmap checksum before the first MiB is written; the disk is left blank.
    let bad = dir.path().join("bad.img");
    std::fs::copy(&img, &bad).unwrap();
    std::fs::copy(
        dir.path().join("x.img.bmap"),
        dir.path().join("bad.img.bmap"),
    )
    .unwrap();
    let (s8, _) = partitions(&img)[7];
    let mut b = read_range(&bad, s8 + 1024, 1);
    b[0] ^= 0x40;
    let f = std::fs::OpenOptions::new().write(true).open(&bad).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &b, s8 + 1024).unwrap();
    drop(f);
    let (code, _, err) = flash(&bad, &t.dev, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("corrupt") && err.contains("blank"), "{err}");
    let sf = Command::new("sfdisk")
        .arg("-d")
        .arg(&t.dev)
        .output()
        .unwrap();
    assert!(
        !sf.status.success(),
        "a partition table survived: {}",
        String::from_utf8_lossy(&sf.stdout)
    );
    let (code, v) = inspect_json(&t.dev);
    assert_ne!(code, 0, "{v}");
}

#[test]
fn refusals() {
    skip_unless!("refusals", &["sfdisk", "mount", "umount"]);
    let Some(fx) = fixtures_or_skip("refusals") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = fx.join("rpi4.img");

    // Too small: the sizes and the shrink command.
    let (_, small) = blank_target(dir.path(), "small.bin", 64 << 20);
    let (code, _, err) = flash(&img, &small.dev, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("too small")
            && err.contains("lifeboat shrink")
            && err.contains(&(64u64 << 20).to_string()),
        "{err}"
    );

    // Read-only loop device.
    let rof = dir.path().join("ro.bin");
    File::create(&rof).unwrap().set_len(256 << 20).unwrap();
    let ro = LoopDev::attach(&rof, true).unwrap();
    let (code, _, err) = flash(&img, &ro.dev, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("read-only"), "{err}");

    // 4096-byte logical sectors for an image in 512-byte sectors.
    struct Detach(PathBuf);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
        }
    }
    let k4 = dir.path().join("4k.bin");
    File::create(&k4).unwrap().set_len(256 << 20).unwrap();
    let out = Command::new("losetup")
        .args(["-f", "--show", "-b", "4096"])
        .arg(&k4)
        .output()
        .unwrap();
    assert!(out.status.success(), "losetup -b 4096");
    let k4dev = Detach(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let (code, _, err) = flash(&img, &k4dev.0, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("4096-byte logical sectors"), "{err}");
    drop(k4dev);

    // No --yes and no terminal.
    let (_, t) = blank_target(dir.path(), "t.bin", 256 << 20);
    let (code, _, err) = run(&["flash", img.to_str().unwrap(), t.dev.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("--yes") && err.contains("terminal"), "{err}");

    // A regular file.
    let (code, _, err) = flash(&img, &rof, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("regular file") && err.contains("cp"), "{err}");

    // Flash for real, then: a partition is refused, a mounted one too.
    let (code, _, err) = flash(&img, &t.dev, &[]);
    assert_eq!(code, 0, "{err}");
    let p1 = t.part(1);
    for _ in 0..40 {
        if p1.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, err) = flash(&img, &p1, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is a partition of") && err.contains(&t.name()),
        "{err}"
    );

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-o", "ro"])
        .arg(t.part(7))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mounting the overlay partition");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let (code, _, err) = flash(&img, &t.dev, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("in use") && err.contains("mounted"), "{err}");
    // Still the flashed disk: nothing was written.
    assert_holds_haos(&img, &t.dev);
}

/// A loop device over nbdkit through nbdfuse, detached and unmounted on drop.
struct NbdDev {
    dev: PathBuf,
    mnt: PathBuf,
    child: Option<Child>,
}

impl NbdDev {
    fn new(work: &Path, env: &[(&str, String)], nbdkit: &[&str]) -> Result<NbdDev, String> {
        let mnt = work.join("mnt");
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let pid = work.join("nbdfuse.pid");
        let log = File::create(work.join("nbdfuse.log")).map_err(|e| e.to_string())?;
        let mut c = Command::new("nbdfuse");
        c.arg("-P")
            .arg(&pid)
            .arg(mnt.join("disk.img"))
            .args(["[", "nbdkit"]);
        c.args(nbdkit).arg("]");
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("nbdfuse: {e}"))?;
        let mut me = NbdDev {
            dev: PathBuf::new(),
            mnt: mnt.clone(),
            child: Some(child),
        };
        let t = Instant::now();
        while std::fs::metadata(&pid).map(|m| m.len()).unwrap_or(0) == 0 {
            if t.elapsed() > Duration::from_secs(20) {
                return Err("nbdfuse did not come up in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = Command::new("losetup")
            .args(["-f", "--show", "--direct-io=on"])
            .arg(mnt.join("disk.img"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("losetup: {}", String::from_utf8_lossy(&out.stderr)));
        }
        me.dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(me)
    }
}

impl Drop for NbdDev {
    fn drop(&mut self) {
        if !self.dev.as_os_str().is_empty() {
            let _ = Command::new("partx").arg("-d").arg(&self.dev).output();
            let _ = Command::new("losetup").arg("-d").arg(&self.dev).output();
        }
        // The loop device lets go of the FUSE file a moment after `losetup -d` when udev
        // still has it open (it probes the partitions a successful flash made): retry.
        for _ in 0..50 {
            let ok = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(mut c) = self.child.take() {
            let t = Instant::now();
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if t.elapsed() > Duration::from_secs(10) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

/// nbdkit `sh` plugin: a file-backed disk whose reads return the byte at `$CORRUPT`
/// inverted (writes land intact): a card that does not keep what it is given; with `$BADW`,
/// writes covering that byte fail with EIO.
const CORRUPT_PLUGIN: &str = r#"#!/bin/bash
case "$1" in
  get_size) stat -L -c %s "$IMG" ;;
  can_write|can_flush) exit 0 ;;
  can_fua) echo native ;;
  thread_model) echo parallel ;;
  pread)
    if (( $4 <= CORRUPT && CORRUPT < $4 + $3 )); then
      dd if="$IMG" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none |
        perl -e 'local $/; my $d = <STDIN>; my $i = $ARGV[0];
                 substr($d, $i, 1) = chr(ord(substr($d, $i, 1)) ^ 0xff); print $d' $((CORRUPT - $4))
    else
      dd if="$IMG" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none
    fi ;;
  pwrite)
    if [ -n "$BADW" ] && (( $4 <= BADW && BADW < $4 + $3 )); then
      cat >/dev/null; echo "EIO injected write error at $4+$3" >&2; exit 1
    fi
    dd of="$IMG" seek="$4" oflag=seek_bytes conv=notrunc iflag=fullblock status=none ;;
  flush) sync "$IMG" ;;
  *) exit 2 ;;
esac
"#;

/// A blank `size`-byte disk `back<tag>.bin` behind the [`CORRUPT_PLUGIN`] (reads of byte
/// `corrupt` come back inverted; writes covering `bad_write` fail), as a loop device.
fn lying_disk(
    dir: &Path,
    tag: &str,
    size: u64,
    corrupt: Option<u64>,
    bad_write: Option<u64>,
) -> (NbdDev, PathBuf) {
    let plugin = dir.join("corrupt.sh");
    if !plugin.exists() {
        std::fs::write(&plugin, CORRUPT_PLUGIN).unwrap();
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let back = dir.join(format!("back{tag}.bin"));
    File::create(&back).unwrap().set_len(size).unwrap();
    let work = dir.join(format!("nbd{tag}"));
    std::fs::create_dir(&work).unwrap();
    let mut env = vec![
        ("IMG", back.display().to_string()),
        (
            "CORRUPT",
            corrupt.map_or("-1".to_string(), |b| b.to_string()),
        ),
    ];
    if let Some(b) = bad_write {
        env.push(("BADW", b.to_string()));
    }
    let d = NbdDev::new(&work, &env, &["sh", plugin.to_str().unwrap()]).unwrap();
    (d, back)
}

/// The old card: the rpi4 fixture on a 160 MiB disk that takes about 5 MB/s (nbdkit's rate
/// filter counts bits), so a flash onto it lasts half a minute.
fn slow_old_card(dir: &Path, fx: &Path) -> NbdDev {
    let back = dir.join("back.bin");
    std::fs::copy(fx.join("rpi4.img"), &back).unwrap();
    File::options()
        .write(true)
        .open(&back)
        .unwrap()
        .set_len(160 << 20)
        .unwrap();
    let work = dir.join("nbd");
    std::fs::create_dir(&work).unwrap();
    NbdDev::new(
        &work,
        &[],
        &["--filter=rate", "file", back.to_str().unwrap(), "rate=40M"],
    )
    .unwrap()
}

fn nbd_unavailable() -> Option<String> {
    if let Some(r) = skip_reason(&["nbdkit", "nbdfuse", "fusermount3", "perl", "sfdisk"]) {
        return Some(r);
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    None
}

#[test]
fn readback_mismatch_is_retried_reported_and_the_disk_left_blank() {
    if let Some(why) = nbd_unavailable() {
        eprintln!("skipped readback_mismatch: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip("readback_mismatch") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = our_image(&fx, dir.path());
    let (s8, _) = partitions(&img)[7];
    let bad_byte = s8 + 1024 + 5; // the data partition's ext4 superblock: mapped
    let (d, back) = lying_disk(dir.path(), "", 200 << 20, Some(bad_byte), None);
    let (code, _, err) = flash(&img, &d.dev, &["--retries", "2"]);
    assert_eq!(code, 1, "{err}");
    let sector = bad_byte / 512 * 512;
    assert!(
        err.contains(&format!(
            "offset {sector} (512 bytes) in partition 8 (hassos-data)"
        )),
        "{err}"
    );
    assert!(err.contains("still wrong after 2 rewrites"), "{err}");
    assert!(err.contains("blank"), "{err}");
    let sf = Command::new("sfdisk")
        .arg("-d")
        .arg(&d.dev)
        .output()
        .unwrap();
    assert!(
        !sf.status.success(),
        "{}",
        String::from_utf8_lossy(&sf.stdout)
    );
    // The written bytes did land (the backing file is right): only reads lie.
    assert_eq!(
        read_range(&back, bad_byte, 1),
        read_range(&img, bad_byte, 1)
    );

    // A compressed image with its bmap: the read-back checks each range's SHA-256 (read
    // ahead on a helper thread) instead of comparing with the image, and finds the same sector.
    let zst = dir.path().join("x.img.zst");
    let st = Command::new("zstd")
        .args(["-q", "-T2", "-o"])
        .arg(&zst)
        .arg(&img)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(
        dir.path().join("x.img.bmap"),
        dir.path().join("x.img.zst.bmap"),
    )
    .unwrap();
    let (d2, _) = lying_disk(dir.path(), "z", 200 << 20, Some(bad_byte), None);
    let (code, _, err) = flash(&zst, &d2.dev, &["--retries", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "offset {sector} (512 bytes) in partition 8 (hassos-data)"
        )) && err.contains("still wrong after 1 rewrites"),
        "{err}"
    );
    // And onto an honest disk the same .zst flashes and verifies.
    let (d3, back3) = lying_disk(dir.path(), "ok", 200 << 20, None, None);
    let (code, _, err) = flash(&zst, &d3.dev, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read_range(&back3, s8, 1 << 20),
        read_range(&img, s8, 1 << 20)
    );
}

/// The geometry fit patches what was written (the image's old backup GPT header is zeroed on
/// a larger disk) and writes past the image (the new backup GPT at the disk's end): a sector
/// of either that reads back wrong is rewritten with those patched bytes, not the image's,
/// and reported by offset like any other.
#[test]
fn readback_mismatch_in_what_the_fit_wrote_is_rewritten_with_the_fit_bytes() {
    if let Some(why) = nbd_unavailable() {
        eprintln!("skipped readback_mismatch_fit: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip("readback_mismatch_fit") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = our_image(&fx, dir.path());
    let image_size = std::fs::metadata(&img).unwrap().len();
    let disk_size: u64 = 200 << 20;
    assert!(disk_size > image_size + (1 << 20));
    // The image's old backup GPT header (zeroed by the fit) and the new one at the disk's end.
    for (n, what, bad_byte) in [
        (0, "old backup header", image_size - 512 + 5),
        (1, "new backup header", disk_size - 512 + 5),
    ] {
        let (d, _) = lying_disk(dir.path(), &n.to_string(), disk_size, Some(bad_byte), None);
        let (code, _, err) = flash(&img, &d.dev, &["--retries", "2"]);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(!err.contains("image changed"), "{what}: {err}");
        let sector = bad_byte / 512 * 512;
        assert!(
            err.contains(&format!(
                "offset {sector} (512 bytes) outside the partitions"
            )),
            "{what}: {err}"
        );
        assert!(
            err.contains("still wrong after 2 rewrites"),
            "{what}: {err}"
        );
        assert!(err.contains("blank"), "{what}: {err}");
    }
}

#[test]
fn a_killed_flash_leaves_no_partition_table() {
    if let Some(why) = nbd_unavailable() {
        eprintln!("skipped a_killed_flash: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip("a_killed_flash") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = fx.join("rpi4.img");
    // The disk starts with a valid HAOS install (the old card).
    let d = slow_old_card(dir.path(), &fx);
    let sf = Command::new("sfdisk")
        .arg("-d")
        .arg(&d.dev)
        .output()
        .unwrap();
    assert!(
        sf.status.success(),
        "the old table should be readable first"
    );
    let mut child = common::lifeboat()
        .args(["--json", "flash", "--yes", "--no-bmap"])
        .arg(&img)
        .arg(&d.dev)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the write phase to be under way, then kill without warning.
    let rx = stderr_so_far(&mut child);
    let t = Instant::now();
    let mut seen = String::new();
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(s) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = s;
        }
        // The last progress line: writing with bytes done, or already reading back.
        let last: serde_json::Value = seen
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        let phase = last["phase"].as_str().unwrap_or("");
        if (phase == "write" && last["done"].as_u64().unwrap_or(0) > 0) || phase == "verify" {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("flash ended before it could be killed ({st}): {seen}");
        }
    }
    assert!(
        seen.contains("\"phase\":\"write\"") && !seen.contains("\"phase\":\"finish\""),
        "not killed between the first write and the first MiB: {seen}"
    );
    child.kill().unwrap();
    let _ = child.wait();
    let sf = Command::new("sfdisk")
        .arg("-d")
        .arg(&d.dev)
        .output()
        .unwrap();
    assert!(
        !sf.status.success(),
        "a partition table survived the kill: {}",
        String::from_utf8_lossy(&sf.stdout)
    );
    let (code, v) = inspect_json(&d.dev);
    assert_ne!(code, 0);
    assert_ne!(v["verdict"], "haos", "{v}");
}

#[test]
fn ctrl_c_stops_and_wipes_the_tables() {
    if let Some(why) = nbd_unavailable() {
        eprintln!("skipped ctrl_c_stops_and_wipes_the_tables: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip("ctrl_c_stops_and_wipes_the_tables") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = fx.join("rpi4.img");
    let d = slow_old_card(dir.path(), &fx);
    let mut child = common::lifeboat()
        .args(["--json", "flash", "--yes", "--no-bmap"])
        .arg(&img)
        .arg(&d.dev)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_so_far(&mut child);
    let t = Instant::now();
    let mut seen = String::new();
    while t.elapsed() < Duration::from_secs(60) && !seen.contains("\"phase\":\"write\"") {
        if let Ok(s) = rx.recv_timeout(Duration::from_millis(100)) {
            seen = s;
        }
    }
    assert!(
        seen.contains("\"phase\":\"write\""),
        "no write phase: {seen}"
    );
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    // Everything it printed: the reader thread ends at EOF.
    while let Ok(s) = rx.recv_timeout(Duration::from_secs(10)) {
        seen = s;
    }
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(
        seen.contains("interrupted") && seen.contains("blank"),
        "{seen}"
    );
    let sf = Command::new("sfdisk")
        .arg("-d")
        .arg(&d.dev)
        .output()
        .unwrap();
    assert!(
        !sf.status.success(),
        "a partition table survived Ctrl-C: {}",
        String::from_utf8_lossy(&sf.stdout)
    );
}

#[test]
fn a_write_error_is_named_and_the_disk_left_blank() {
    if let Some(why) = nbd_unavailable() {
        eprintln!("skipped a_write_error: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip("a_write_error") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let img = our_image(&fx, dir.path());
    let (s8, _) = partitions(&img)[7];
    let (d, _) = lying_disk(dir.path(), "", 200 << 20, None, Some(s8 + 1024));
    let (code, _, err) = flash(&img, &d.dev, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("write error at byte") && err.contains("blank"),
        "{err}"
    );
    let sf = Command::new("sfdisk")
        .arg("-d")
        .arg(&d.dev)
        .output()
        .unwrap();
    assert!(
        !sf.status.success(),
        "{}",
        String::from_utf8_lossy(&sf.stdout)
    );
}

/// The child's stderr as it grows: each message is everything read so far.
fn stderr_so_far(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut acc = String::new();
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            acc.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(acc.clone());
        }
    });
    rx
}

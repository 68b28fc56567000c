//! `lifeboat media-test` on real block devices (root and loop devices; skipped with the reason
//! otherwise): a genuine loop device passes (full and `--quick`) and is left blank; a fake card
//! that advertises 256 MiB but keeps offset X at X mod 64 MiB fails with a real capacity of
//! 64 MiB (full and `--quick`); bad sectors (reads failing, writes failing) are reported at
//! their offsets; partitions, mounted disks, read-only disks, regular files and a missing
//! `--yes` without a terminal are refused without writing a byte.
//!
//! Fake and faulty devices: this kernel has no device-mapper and nbdkit 1.32's split plugin
//! writes to the wrong offset of every file but the first, so the wrap-around device is a
//! small FUSE file system (`python3-fusepy`, written below) whose one file maps offset X to X
//! mod the backing file's size and fails chosen ranges with EIO, attached with `losetup
//! --direct-io=on` so errors are sector-exact (test-rig.md §2 (d)). A second, smaller fake
//! is served by nbdkit's `sh` plugin doing the modulo with dd (slow: one process a request).
//! Every device is torn down by a drop guard, also when a test fails.

mod common;

use common::{LoopDev, can_loop, have, lifeboat};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// The FUSE file system: `wrapfs.py BACKING MNT SIZE [r:OFF:LEN | w:OFF:LEN ...]` serves
/// `MNT/disk.img` of SIZE bytes, offset X stored at X mod len(BACKING); reads (r) or writes
/// (w) touching a listed range fail with EIO.
const WRAPFS: &str = r#"
import errno, os, stat, sys, time
from fusepy import FUSE, FuseOSError, Operations
back, mnt, virt = sys.argv[1], sys.argv[2], int(sys.argv[3], 0)
bad = {'r': [], 'w': []}
for a in sys.argv[4:]:
    k, o, l = a.split(':')
    bad[k].append((int(o, 0), int(l, 0)))
real = os.path.getsize(back)

class Wrap(Operations):
    def __init__(self):
        self.fd = os.open(back, os.O_RDWR)

    def getattr(self, path, fh=None):
        t = time.time()
        if path == '/':
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_ctime=t, st_mtime=t, st_atime=t)
        if path == '/disk.img':
            return dict(st_mode=stat.S_IFREG | 0o644, st_nlink=1, st_size=virt,
                        st_ctime=t, st_mtime=t, st_atime=t)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return ['.', '..', 'disk.img']

    def open(self, path, fi):
        fi.direct_io = True
        return 0

    def pieces(self, kind, off, n):
        for b, l in bad[kind]:
            if off < b + l and b < off + n:
                raise FuseOSError(errno.EIO)
        while n > 0:
            r = off % real
            k = min(n, real - r)
            yield r, k
            off += k
            n -= k

    def read(self, path, size, off, fi):
        size = max(0, min(size, virt - off))
        return b''.join(os.pread(self.fd, k, r) for r, k in self.pieces('r', off, size))

    def write(self, path, data, off, fi):
        done = 0
        for r, k in self.pieces('w', off, len(data)):
            os.pwrite(self.fd, data[done:done + k], r)
            done += k
        return done

    def truncate(self, path, length, fh=None):
        pass

    def fsync(self, path, datasync, fi):
        os.fdatasync(self.fd)
        return 0

    def flush(self, path, fi):
        return 0

FUSE(Wrap(), mnt, foreground=True, raw_fi=True, nothreads=True)
"#;

/// nbdkit `sh` plugin script: a device of $VIRT bytes keeping offset X at X mod the size of
/// $BACK.
const WRAP_SH: &str = r#"#!/bin/bash
real=$(stat -c %s "$BACK")
case "$1" in
  get_size) echo "$VIRT" ;;
  can_write|can_flush) exit 0 ;;
  can_fua) echo native ;;
  flush) sync "$BACK" ;;
  pread)
    n=$3; off=$4
    while [ "$n" -gt 0 ]; do
      r=$((off % real)); k=$((real - r)); [ "$k" -gt "$n" ] && k=$n
      dd if="$BACK" iflag=skip_bytes,count_bytes skip=$r count=$k status=none
      off=$((off + k)); n=$((n - k))
    done ;;
  pwrite)
    n=$3; off=$4
    while [ "$n" -gt 0 ]; do
      r=$((off % real)); k=$((real - r)); [ "$k" -gt "$n" ] && k=$n
      head -c "$k" | dd of="$BACK" oflag=seek_bytes conv=notrunc seek=$r status=none
      off=$((off + k)); n=$((n - k))
    done ;;
  *) exit 2 ;;
esac
"#;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-mediatest-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn skip_unless_loop(test: &str) -> bool {
    if let Err(why) = can_loop() {
        eprintln!("skipped {test}: {why}");
        return false;
    }
    true
}

/// Why a FUSE-backed fake device cannot be made here, or None.
fn fuse_unavailable() -> Option<String> {
    if let Err(e) = can_loop() {
        return Some(e);
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import fusepy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Some("/usr/bin/python3 has no fusepy (apt-get install python3-fusepy)".into());
    }
    None
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Wait for `child` up to 10 s, then kill it.
fn reap(mut c: Child) {
    let t = Instant::now();
    loop {
        match c.try_wait() {
            Ok(Some(_)) => return,
            _ if t.elapsed() > Duration::from_secs(10) => {
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn unmount(mnt: &Path) {
    for tool in ["fusermount3", "fusermount", "umount"] {
        if have(tool)
            && Command::new(tool)
                .arg(if tool == "umount" { "-l" } else { "-u" })
                .arg(mnt)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|st| st.success())
        {
            return;
        }
    }
}

fn losetup_dio(file: &Path) -> Result<PathBuf, String> {
    let out = Command::new("losetup")
        .args(["-f", "--show", "--direct-io=on"])
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("losetup: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A loop device over a FUSE (or nbdfuse) file; detached, unmounted and reaped on drop.
struct FakeDev {
    dev: Option<PathBuf>,
    mnt: PathBuf,
    child: Option<Child>,
}

impl FakeDev {
    fn wait_for(mnt: &Path, size: u64, child: &mut Child) -> Result<(), String> {
        let t = Instant::now();
        let f = mnt.join("disk.img");
        while std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0) != size {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("the FUSE server exited: {st}"));
            }
            if t.elapsed() > Duration::from_secs(20) {
                return Err("the FUSE file did not appear in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn attach(mut self) -> Result<FakeDev, String> {
        self.dev = Some(losetup_dio(&self.mnt.join("disk.img"))?);
        Ok(self)
    }

    /// `size` bytes over `backing` (wrapping at its size), `bad` as wrapfs arguments.
    fn fuse(backing: &Path, size: u64, bad: &[String], work: &Path) -> Result<FakeDev, String> {
        let script = work.join("wrapfs.py");
        std::fs::write(&script, WRAPFS).map_err(|e| e.to_string())?;
        let mnt = work.join("mnt");
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(work.join("wrapfs.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(backing)
            .arg(&mnt)
            .arg(size.to_string())
            .args(bad)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("python3 wrapfs.py: {e}"))?;
        let ready = Self::wait_for(&mnt, size, &mut child);
        let me = FakeDev {
            dev: None,
            mnt,
            child: Some(child),
        };
        ready?;
        me.attach()
    }

    /// The same wrap-around device served by nbdkit's sh plugin through nbdfuse.
    fn nbdkit(backing: &Path, size: u64, work: &Path) -> Result<FakeDev, String> {
        let script = work.join("wrap.sh");
        std::fs::write(&script, WRAP_SH).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let mnt = work.join("nbdmnt");
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let pid = work.join("nbdfuse.pid");
        let log = std::fs::File::create(work.join("nbdfuse.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new("nbdfuse")
            .arg("-P")
            .arg(&pid)
            .arg(mnt.join("disk.img"))
            .args(["[", "nbdkit", "sh"])
            .arg(&script)
            .arg("]")
            .env("BACK", backing)
            .env("VIRT", size.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("nbdfuse: {e}"))?;
        let ready = Self::wait_for(&mnt, size, &mut child);
        let me = FakeDev {
            dev: None,
            mnt,
            child: Some(child),
        };
        ready?;
        me.attach()
    }

    fn dev(&self) -> &str {
        self.dev.as_deref().map(s).unwrap_or("")
    }
}

impl Drop for FakeDev {
    fn drop(&mut self) {
        if let Some(d) = &self.dev {
            let _ = Command::new("losetup").arg("-d").arg(d).output();
        }
        unmount(&self.mnt);
        if let Some(c) = self.child.take() {
            reap(c);
        }
    }
}

/// Run media-test; (exit code, parsed JSON from stdout, stderr).
fn media_test(dev: &str, extra: &[&str]) -> (i32, Value, String) {
    let out = lifeboat()
        .args(["media-test", "--json", "--yes"])
        .args(extra)
        .arg(dev)
        .stdin(Stdio::null())
        .output()
        .expect("running lifeboat");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (out.status.code().unwrap_or(-1), v, stderr)
}

fn mb_s(v: &Value, phase: &str) -> f64 {
    v[phase]["bytes_per_second"].as_f64().unwrap_or(0.0) / 1e6
}

fn sparse(path: &Path, size: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
}

fn blank(path: &Path, off: u64, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut b = vec![0u8; len as usize];
    f.read_exact_at(&mut b, off).unwrap();
    b.iter().all(|&x| x == 0)
}

#[test]
fn genuine_device_passes_full_and_quick_and_is_left_blank() {
    if !skip_unless_loop("genuine_device_passes_full_and_quick_and_is_left_blank") {
        return;
    }
    let d = tmp();
    let img = d.path().join("genuine.img");
    let size = 64 * MIB;
    sparse(&img, size);
    let lo = LoopDev::attach(&img, false).unwrap();
    let dev = s(&lo.dev).to_string();

    let t = Instant::now();
    let (code, v, err) = media_test(&dev, &[]);
    let full_s = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["mode"], "full");
    assert_eq!(v["size"], size);
    assert_eq!(v["usable_bytes"], size);
    assert_eq!(v["tested_bytes"], size);
    assert_eq!(v["counts"]["ok"], size);
    assert_eq!(v["areas"].as_array().unwrap().len(), 0);
    assert_eq!(v["data_erased"], true);
    assert_eq!(v["wiped_bytes"], 2 * MIB);
    assert_eq!(v["profile"].as_array().unwrap().len(), 64);
    // JSON-lines progress on stderr, write then read.
    let phases: Vec<String> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "progress")
        .map(|e| e["phase"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        phases.iter().any(|p| p == "write") && phases.iter().any(|p| p == "read"),
        "{err}"
    );
    // The pattern is gone from the first and last MiB; the middle holds it.
    assert!(blank(&img, 0, MIB) && blank(&img, size - MIB, MIB));
    assert!(!blank(&img, 32 * MIB, 512));

    let t = Instant::now();
    let (code, v, err) = media_test(&dev, &["--quick"]);
    let quick_s = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{v:#}\n{err}");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["mode"], "quick");
    assert_eq!(v["usable_bytes"], size);
    assert!(v["tested_bytes"].as_u64().unwrap() < size / 2, "{v:#}");
    assert!(blank(&img, 0, MIB) && blank(&img, size - MIB, MIB));
    eprintln!(
        "genuine 64 MiB loop: full {full_s:.1} s, quick {quick_s:.1} s ({} samples)",
        v["samples"]
    );

    // The text report says pass and that the data is gone.
    let out = lifeboat()
        .args(["media-test", "--yes", "--quick", &dev])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Verdict: PASS"), "{text}");
    assert!(text.contains("is gone"), "{text}");
}

#[test]
fn fake_card_that_wraps_around_fails_with_its_real_capacity() {
    let test = "fake_card_that_wraps_around_fails_with_its_real_capacity";
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let d = tmp();
    let back = d.path().join("real.img");
    sparse(&back, 64 * MIB);
    let size = 256 * MIB;
    let fake = FakeDev::fuse(&back, size, &[], d.path()).unwrap();
    let dev = fake.dev().to_string();

    let t = Instant::now();
    let (code, v, err) = media_test(&dev, &[]);
    let full_s = t.elapsed().as_secs_f64();
    assert_eq!(code, 7, "{v:#}\n{err}");
    assert_eq!(v["verdict"], "fake_capacity", "{v:#}");
    assert_eq!(v["size"], size);
    assert_eq!(v["usable_bytes"], 64 * MIB, "{v:#}");
    assert_eq!(v["counts"]["aliased"], 192 * MIB);
    assert_eq!(v["counts"]["ok"], 64 * MIB);
    let areas = v["areas"].as_array().unwrap();
    assert_eq!(areas.len(), 3, "{areas:#?}");
    assert_eq!(areas[0]["start"], 0);
    assert_eq!(areas[0]["kind"], "aliased");
    assert_eq!(areas[0]["holds_data_of"], 192 * MIB);
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .contains("only 64.0 MiB of 256 MiB usable"),
        "{v:#}"
    );
    let (fw, fr) = (mb_s(&v, "write"), mb_s(&v, "read"));

    let t = Instant::now();
    let (code, v, err) = media_test(&dev, &["--quick"]);
    let quick_s = t.elapsed().as_secs_f64();
    assert_eq!(code, 7, "{v:#}\n{err}");
    assert_eq!(v["verdict"], "fake_capacity", "{v:#}");
    assert_eq!(v["usable_bytes"], 64 * MIB, "{v:#}");
    assert_eq!(v["granularity"], MIB);
    eprintln!(
        "fake 256 MiB card (64 MiB real, FUSE): full {full_s:.1} s (write {fw:.1} MB/s, read \
         {fr:.1} MB/s), quick {quick_s:.1} s ({} MiB in {} samples, write {:.1} MB/s, read {:.1} MB/s)",
        v["tested_bytes"].as_u64().unwrap() / MIB,
        v["samples"],
        mb_s(&v, "write"),
        mb_s(&v, "read")
    );
    drop(fake);
    // The wipe reached the real storage: its first MiB is blank (the device's last MiB
    // wraps onto the real one's last MiB).
    assert!(blank(&back, 0, MIB) && blank(&back, 63 * MIB, MIB));
}

#[test]
fn nbdkit_fake_card_fails_too() {
    let test = "nbdkit_fake_card_fails_too";
    if !skip_unless_loop(test) {
        return;
    }
    let miss = common::missing(&["nbdkit", "nbdfuse", "fusermount3"]);
    if !miss.is_empty() || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped {test}: missing {miss:?} or /dev/fuse");
        return;
    }
    let d = tmp();
    let back = d.path().join("real.img");
    sparse(&back, 4 * MIB);
    let size = 16 * MIB;
    let fake = FakeDev::nbdkit(&back, size, d.path()).unwrap();
    let t = Instant::now();
    let (code, v, err) = media_test(fake.dev(), &[]);
    assert_eq!(code, 7, "{v:#}\n{err}");
    assert_eq!(v["verdict"], "fake_capacity", "{v:#}");
    assert_eq!(v["usable_bytes"], 4 * MIB, "{v:#}");
    let (code, v, err) = media_test(fake.dev(), &["--quick"]);
    assert_eq!(code, 7, "{v:#}\n{err}");
    assert_eq!(v["usable_bytes"], 4 * MIB, "{v:#}");
    eprintln!(
        "nbdkit sh fake (16 MiB over 4 MiB): full + quick {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn bad_sectors_are_reported_by_offset() {
    let test = "bad_sectors_are_reported_by_offset";
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let d = tmp();
    let back = d.path().join("real.img");
    let size = 32 * MIB;
    sparse(&back, size);
    // Reads fail: one sector at 12 MiB and 4 KiB at 20 MiB + 1 KiB; writes fail: 2 KiB at 5 MiB.
    let bad_read = [(12 * MIB, 512u64), (20 * MIB + 1024, 4096)];
    let bad_write = (5 * MIB, 2048u64);
    let mut args: Vec<String> = bad_read.iter().map(|(o, l)| format!("r:{o}:{l}")).collect();
    args.push(format!("w:{}:{}", bad_write.0, bad_write.1));
    let fake = FakeDev::fuse(&back, size, &args, d.path()).unwrap();

    let (code, v, err) = media_test(fake.dev(), &[]);
    assert_eq!(code, 7, "{v:#}\n{err}");
    assert_eq!(v["verdict"], "bad_areas", "{v:#}");
    let areas: Vec<(u64, u64, String)> = v["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["start"].as_u64().unwrap(),
                a["length"].as_u64().unwrap(),
                a["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        areas,
        vec![
            (bad_write.0, bad_write.1, "write_failed".to_string()),
            (bad_read[0].0, bad_read[0].1, "unreadable".to_string()),
            (bad_read[1].0, bad_read[1].1, "unreadable".to_string()),
        ],
        "{v:#}"
    );
    assert_eq!(v["usable_bytes"], bad_write.0);
    assert_eq!(v["counts"]["unreadable"], 512 + 4096);
    assert_eq!(v["counts"]["write_failed"], 2048);
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .starts_with("fail: bad areas")
    );
}

/// Fill `path` with a recognisable pattern and return its bytes.
fn marked(path: &Path, size: u64) -> Vec<u8> {
    let b: Vec<u8> = (0..size).map(|i| (i % 251) as u8 | 1).collect();
    std::fs::write(path, &b).unwrap();
    b
}

fn refused(dev: &str, args: &[&str], stdin_null: bool) -> String {
    let mut c = lifeboat();
    c.arg("media-test").args(args).arg(dev);
    if stdin_null {
        c.stdin(Stdio::null());
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "not refused: {err}");
    err
}

#[test]
fn refusals_write_nothing() {
    if !skip_unless_loop("refusals_write_nothing") {
        return;
    }
    let d = tmp();

    // A regular file.
    let file = d.path().join("plain.img");
    let want = marked(&file, 4 * MIB);
    let err = refused(s(&file), &["--yes"], true);
    assert!(err.contains("not a block device"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), want);

    // No --yes and no terminal.
    let img = d.path().join("disk.img");
    let want = marked(&img, 16 * MIB);
    let lo = LoopDev::attach(&img, false).unwrap();
    let err = refused(s(&lo.dev), &[], true);
    assert!(
        err.contains("no terminal") && err.contains("--yes"),
        "{err}"
    );
    drop(lo);
    assert_eq!(std::fs::read(&img).unwrap(), want);

    // A read-only loop device.
    let lo = LoopDev::attach(&img, true).unwrap();
    let err = refused(s(&lo.dev), &["--yes"], true);
    assert!(err.contains("read-only"), "{err}");
    drop(lo);
    assert_eq!(std::fs::read(&img).unwrap(), want);

    // A partition.
    if have("sfdisk") && have("partx") {
        let pimg = d.path().join("parted.img");
        sparse(&pimg, 16 * MIB);
        let mut c = Command::new("sfdisk")
            .args(["--quiet", s(&pimg)])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin
            .take()
            .unwrap()
            .write_all(b"label: gpt\nsize=8MiB, type=linux\n")
            .unwrap();
        assert!(c.wait().unwrap().success());
        let before = std::fs::read(&pimg).unwrap();
        let lo = LoopDev::attach(&pimg, false).unwrap();
        let p1 = lo.part(1);
        if p1.exists() {
            let err = refused(s(&p1), &["--yes"], true);
            assert!(err.contains("is a partition of"), "{err}");
            assert!(err.contains(s(&lo.dev)), "{err}");
        } else {
            eprintln!("partition case skipped: no {} node", p1.display());
        }
        drop(lo);
        assert_eq!(std::fs::read(&pimg).unwrap(), before);
    } else {
        eprintln!("partition case skipped: sfdisk or partx missing");
    }

    // A mounted disk (ext4 on the whole loop device).
    if have("mkfs.ext4") {
        let fimg = d.path().join("fs.img");
        sparse(&fimg, 16 * MIB);
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F", s(&fimg)])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let lo = LoopDev::attach(&fimg, false).unwrap();
        let mnt = d.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mounted = Command::new("mount")
            .args([s(&lo.dev), s(&mnt)])
            .status()
            .is_ok_and(|st| st.success());
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
        if mounted {
            let guard = Unmount(mnt.clone());
            let err = refused(s(&lo.dev), &["--yes"], true);
            assert!(err.contains("in use") && err.contains("mounted"), "{err}");
            drop(guard);
            // Still a clean ext4 file system: nothing was written.
            let fsck = Command::new("e2fsck")
                .args(["-fn", s(&lo.dev)])
                .output()
                .unwrap();
            assert!(
                fsck.status.success(),
                "{}",
                String::from_utf8_lossy(&fsck.stdout)
            );
        } else {
            eprintln!("mounted case skipped: mount failed");
        }
    }
}

#[test]
fn confirmation_on_a_terminal() {
    let test = "confirmation_on_a_terminal";
    if !skip_unless_loop(test) {
        return;
    }
    if !have("script") {
        eprintln!("skipped {test}: script (util-linux) missing");
        return;
    }
    let d = tmp();
    let img = d.path().join("tty.img");
    let want = marked(&img, 16 * MIB);
    let lo = LoopDev::attach(&img, false).unwrap();
    let bin = env!("CARGO_BIN_EXE_lifeboat");
    let typed = |answer: &str| {
        let mut c = Command::new("script")
            .args(["-qec"])
            .arg(format!("{bin} media-test --quick {}", lo.dev.display()))
            .arg("/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        drop(stdin);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = typed("no\n");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("WILL BE DESTROYED") && text.contains("not confirmed"),
        "{text}"
    );
    assert!(text.contains("loop device over"), "{text}");
    assert_eq!(std::fs::read(&img).unwrap(), want);
    let (code, text) = typed("yes\n");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Verdict: PASS"), "{text}");
    drop(lo);
    assert!(blank(&img, 0, MIB) && blank(&img, 15 * MIB, MIB));
}

#[test]
fn ctrl_c_stops_and_says_the_content_is_undefined() {
    let test = "ctrl_c_stops_and_says_the_content_is_undefined";
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let d = tmp();
    let back = d.path().join("real.img");
    let size = 256 * MIB;
    sparse(&back, size);
    // Through the FUSE file a full test of 256 MiB takes several seconds.
    let dev = FakeDev::fuse(&back, size, &[], d.path()).unwrap();
    let child = lifeboat()
        .args(["media-test", "--yes", dev.dev()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("undefined"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "slow to stop");
}

/// A loop device with 4096-byte logical sectors, detached on drop.
struct Loop4k(PathBuf);

impl Drop for Loop4k {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
    }
}

#[test]
fn four_k_sector_device_passes() {
    if !skip_unless_loop("four_k_sector_device_passes") {
        return;
    }
    let d = tmp();
    let img = d.path().join("4k.img");
    sparse(&img, 24 * MIB);
    let out = Command::new("losetup")
        .args(["-f", "--show", "-b", "4096"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lo = Loop4k(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    for extra in [&[][..], &["--quick"][..]] {
        let (code, v, err) = media_test(s(&lo.0), extra);
        assert_eq!(code, 0, "{v:#}\n{err}");
        assert_eq!(v["logical_sector_size"], 4096);
        assert_eq!(v["usable_bytes"], 24 * MIB);
    }
}

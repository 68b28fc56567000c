//! A real block device with read errors at chosen sectors, for the rescue tests: nbdkit's
//! `ddrescue` filter over a backing file (bad areas given as a ddrescue mapfile), exported
//! through `nbdfuse` as a FUSE file, attached read-only with `losetup --direct-io=on` so
//! O_DIRECT reads fail on exactly the bad 512-byte sectors (see shared test-rig.md §2 and
//! `tests/fixtures/faults/faulty-loop.sh`, the same recipe by hand).
//!
//! [`FaultDev`] is a drop guard: it detaches the loop device, unmounts the FUSE file and
//! waits for nbdfuse (its own child), even when a test fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the fault rig cannot run here, or None when it can.
pub fn unavailable() -> Option<String> {
    if let Err(e) = super::common::can_loop() {
        return Some(e);
    }
    let miss = super::common::missing(&["nbdkit", "nbdfuse", "fusermount3"]);
    if !miss.is_empty() {
        return Some(format!(
            "missing {} (apt-get install nbdkit libnbd-bin fuse3)",
            miss.join(", ")
        ));
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    None
}

/// A faulty loop device.
pub struct FaultDev {
    pub dev: PathBuf,
    mnt: PathBuf,
    child: Option<Child>,
    attached: bool,
}

/// Write a ddrescue mapfile marking `bad` (offset, length) areas of a `size`-byte disk.
pub fn bad_mapfile(path: &Path, size: u64, bad: &[(u64, u64)]) {
    let mut bad = bad.to_vec();
    bad.sort();
    let mut s = String::from("# bad areas for nbdkit's ddrescue filter\n0x0 + 1\n");
    let mut pos = 0;
    for (o, l) in bad {
        if o > pos {
            s += &format!("{pos:#x} {:#x} +\n", o - pos);
        }
        s += &format!("{o:#x} {l:#x} -\n");
        pos = o + l;
    }
    if pos < size {
        s += &format!("{pos:#x} {:#x} +\n", size - pos);
    }
    std::fs::write(path, s).unwrap();
}

impl FaultDev {
    /// Export `backing` with the `bad` areas failing, as a loop device. `work` holds the
    /// mapfile and the FUSE mount point.
    pub fn new(backing: &Path, bad: &[(u64, u64)], work: &Path) -> Result<FaultDev, String> {
        Self::with_filters(backing, bad, work, &[])
    }

    /// Like [`FaultDev::new`], with more nbdkit arguments before the plugin (e.g.
    /// `--filter=delay`) and after it (`rdelay=2`): `extra` is (before, after).
    pub fn with_filters(
        backing: &Path,
        bad: &[(u64, u64)],
        work: &Path,
        extra: &[(&str, &str)],
    ) -> Result<FaultDev, String> {
        let size = std::fs::metadata(backing).map_err(|e| e.to_string())?.len();
        let map = work.join("bad.map");
        bad_mapfile(&map, size, bad);
        let mnt = work.join("mnt");
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let pid = work.join("nbdfuse.pid");
        let _ = std::fs::remove_file(&pid);
        let log = std::fs::File::create(work.join("nbdfuse.log")).map_err(|e| e.to_string())?;
        let child = Command::new("nbdfuse")
            .arg("-P")
            .arg(&pid)
            .arg(mnt.join("disk.img"))
            .args(["[", "nbdkit"])
            .args(extra.iter().map(|e| e.0))
            .args(["--filter=ddrescue", "file"])
            .arg(backing)
            .arg(format!("ddrescue-mapfile={}", map.display()))
            .args(extra.iter().map(|e| e.1))
            .arg("]")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("nbdfuse: {e}"))?;
        let mut me = FaultDev {
            dev: PathBuf::new(),
            mnt: mnt.clone(),
            child: Some(child),
            attached: false,
        };
        let t = Instant::now();
        while !pid.exists() || std::fs::metadata(&pid).map(|m| m.len()).unwrap_or(0) == 0 {
            if t.elapsed() > Duration::from_secs(20) {
                return Err("nbdfuse did not come up in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = Command::new("losetup")
            .args(["-f", "--show", "-r", "--direct-io=on"])
            .arg(mnt.join("disk.img"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("losetup: {}", String::from_utf8_lossy(&out.stderr)));
        }
        me.dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        me.attached = true;
        Ok(me)
    }
}

impl Drop for FaultDev {
    fn drop(&mut self) {
        if self.attached {
            let _ = Command::new("losetup").arg("-d").arg(&self.dev).output();
        }
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .output();
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

//! A device that drops out mid-run and comes back, as an SD card reader does when it resets
//! (root, loop devices, nbdkit + nbdfuse; skipped with the reason otherwise). nbdkit's `error`
//! filter fails every read while a trigger file exists; the test creates it during the run and
//! removes it a few seconds later. lifeboat must notice that even sectors it read before fail,
//! wait and reopen the device instead of marking the outage as bad areas, and finish with an
//! image identical to the source, no bad ranges and a clean mapfile; with the outage longer
//! than `--reopen-wait` it stops, keeps the mapfile and the `--resume` run completes the image.

mod common;
mod faultdev;

use common::{lifeboat, run};
use faultdev::FaultDev;
use lifeboat::imaging::mapfile::{Mapfile, Status};
use lifeboat::verify::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-dropout-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic pseudo-random bytes (no zero 4 KiB blocks).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 1
        })
        .collect()
}

/// Run `image --all` at 8 MiB/s on `dev`; make the device fail every read from `at` for
/// `outage`. Returns (exit code, stderr).
fn image_with_outage(
    dev: &str,
    out: &Path,
    trigger: &Path,
    at: Duration,
    outage: Duration,
    reopen_wait: &str,
) -> (Option<i32>, String) {
    let _ = std::fs::remove_file(trigger);
    let child = lifeboat()
        .args([
            "image",
            "-q",
            "--all",
            "--max-rate",
            "8M",
            "--chunk",
            "1M",
            "--timeout",
            "5",
            "--reopen-wait",
            reopen_wait,
            "--mapfile-interval",
            "1",
            dev,
            "-o",
        ])
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(at);
    std::fs::write(trigger, b"").unwrap();
    std::thread::sleep(outage);
    std::fs::remove_file(trigger).unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A card of `size` noise bytes (`seed`) in `dir`, as a loop device that fails every read
/// while the returned trigger file exists: (card bytes, card file, trigger, device).
fn card_that_unplugs(dir: &Path, size: usize, seed: u64) -> (Vec<u8>, PathBuf, PathBuf, FaultDev) {
    let src = noise(size, seed);
    let back = dir.join("card.raw");
    std::fs::write(&back, &src).unwrap();
    let work = dir.join("rig");
    std::fs::create_dir_all(&work).unwrap();
    let trigger = dir.join("unplugged");
    let filter_arg = format!("error-file={}", s(&trigger));
    let fd = FaultDev::with_filters(
        &back,
        &[],
        &work,
        &[
            ("--filter=error", "error-rate=100%"),
            ("--exit-with-parent", filter_arg.as_str()),
        ],
    )
    .expect("fault device");
    (src, back, trigger, fd)
}

#[test]
fn device_drop_and_return_gives_a_complete_identical_image() {
    if let Some(why) = faultdev::unavailable() {
        eprintln!("skipped device_drop_and_return_gives_a_complete_identical_image: {why}");
        return;
    }
    let d = tmp();
    let size = 32usize << 20;
    let (src, _, trigger, fd) = card_that_unplugs(d.path(), size, 11);
    let dev = fd.dev.to_str().unwrap().to_string();

    // 1. A 3 s outage a second into a 4 s read: waited out, nothing marked bad.
    let out = d.path().join("card.img");
    let t = Instant::now();
    let (code, err) = image_with_outage(
        &dev,
        &out,
        &trigger,
        Duration::from_millis(1000),
        Duration::from_millis(3000),
        "30",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert!(std::fs::read(&out).unwrap() == src, "image differs");
    let m = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&out)))).unwrap();
    assert!(m.bad.is_empty(), "{:?}", m.bad);
    assert!(m.rescue.reopens >= 1, "{:?}", m.rescue);
    assert_eq!(
        m.rescue.passes,
        vec!["copy".to_string()],
        "no rescue passes"
    );
    let map = Mapfile::load(&PathBuf::from(format!("{}.map", s(&out)))).unwrap();
    assert_eq!(map.bytes(Status::Finished), size as u64);

    // 2. An outage longer than --reopen-wait: the run stops saying so, keeps its mapfile
    //    and .part; once the device is back, --resume completes the same image.
    let out2 = d.path().join("card2.img");
    let (code, err) = image_with_outage(
        &dev,
        &out2,
        &trigger,
        Duration::from_millis(1000),
        Duration::from_millis(4000),
        "1",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("stopped answering") && err.contains("--resume"),
        "{err}"
    );
    assert!(PathBuf::from(format!("{}.part", s(&out2))).exists());
    assert!(!out2.exists());
    let (code, _, e) = run(&["image", "-q", "--all", "--resume", &dev, "-o", s(&out2)]);
    assert_eq!(code, 0, "{e}");
    assert!(
        std::fs::read(&out2).unwrap() == src,
        "resumed image differs"
    );
    let m2 = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&out2)))).unwrap();
    assert!(m2.bad.is_empty());
    assert_eq!(m2.image.sha256, m.image.sha256);
    drop(fd);
}

/// A loop device attached by the test, detached on drop.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

#[test]
fn device_returning_under_another_name_is_followed() {
    if let Some(why) = faultdev::unavailable() {
        eprintln!("skipped device_returning_under_another_name_is_followed: {why}");
        return;
    }
    // What a USB card reader does when it resets while lifeboat holds /dev/sdb open: the old
    // node stays and fails every read, the card comes back as /dev/sdc. Here the old node is
    // the nbdkit-backed loop device with its error trigger set for good, and the "new" node is
    // a second loop device over the same card file.
    let d = tmp();
    let size = (28usize << 20) + (12 << 10); // an odd size no other loop device here has
    let (src, back, trigger, fd) = card_that_unplugs(d.path(), size, 23);
    let dev = fd.dev.to_str().unwrap().to_string();
    let out = d.path().join("card.img");
    let child = lifeboat()
        .args([
            "image",
            "--json",
            "--all",
            "--max-rate",
            "8M",
            "--chunk",
            "1M",
            "--timeout",
            "5",
            "--reopen-wait",
            "30",
            &dev,
            "-o",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(&trigger, b"").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let o = std::process::Command::new("losetup")
        .args(["-f", "--show", "-r", "--direct-io=on"])
        .arg(&back)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let new_dev = Loop(String::from_utf8_lossy(&o.stdout).trim().to_string());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("came back as") && err.contains(&new_dev.0),
        "{err}"
    );
    assert!(std::fs::read(&out).unwrap() == src, "image differs");
    let m = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&out)))).unwrap();
    assert!(m.bad.is_empty(), "{:?}", m.bad);
    assert_eq!(m.rescue.came_back_as, vec![new_dev.0.clone()]);
    assert!(m.rescue.reopens >= 1, "{:?}", m.rescue);
    let _ = std::fs::remove_file(&trigger);
    drop(new_dev);
    drop(fd);
}

//! `lifeboat image` on real block devices (root and loop devices; skipped with the reason
//! otherwise): a plain loop device read with O_DIRECT, a read-write mount refused, and
//! devices with read errors at chosen sectors (nbdkit + nbdfuse + `losetup --direct-io=on`):
//! exactly the bad sectors end up in the mapfile — the same list GNU ddrescue records on the
//! same device —, every readable sector is recovered, bad ones are zero and reported by
//! partition, and a run killed mid-way (SIGKILL, or Ctrl-C) and resumed gives a
//! byte-identical image, hash and bmap.

mod common;
mod faultdev;

use common::{LoopDev, can_loop, fixtures_or_skip, have, lifeboat, run};
use faultdev::FaultDev;
use lifeboat::imaging::mapfile::{Mapfile, Status};
use lifeboat::imaging::ranges::Extent;
use lifeboat::verify::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-faults-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn skip_unless_faults(test: &str) -> bool {
    if let Some(why) = faultdev::unavailable() {
        eprintln!("skipped {test}: {why}");
        return false;
    }
    true
}

/// Deterministic pseudo-random bytes (no zero 4 KiB blocks by accident).
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

fn bad_of(map: &Path) -> Vec<Extent> {
    Mapfile::load(map).unwrap().ranges(Status::BadSector)
}

fn zeroed(src: &[u8], bad: &[(u64, u64)]) -> Vec<u8> {
    let mut v = src.to_vec();
    for &(o, l) in bad {
        v[o as usize..(o + l) as usize].fill(0);
    }
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn rescue_matches_ddrescue_and_resumes_identically() {
    if !skip_unless_faults("rescue_matches_ddrescue_and_resumes_identically") {
        return;
    }
    let d = tmp();
    let size = 48u64 << 20;
    let src = noise(size as usize, 7);
    let back = d.path().join("back.img");
    std::fs::write(&back, &src).unwrap();
    // 4 KiB at 1 MiB, one sector at 12 MiB, three unaligned sectors, the last sector.
    let bad = [
        (0x10_0000u64, 0x1000u64),
        (0xC0_0000, 0x200),
        (0x140_0200, 0x600),
        (size - 512, 512),
    ];
    let work = d.path().join("rig");
    std::fs::create_dir_all(&work).unwrap();
    let fd = FaultDev::new(&back, &bad, &work).expect("fault device");
    let dev = fd.dev.to_str().unwrap().to_string();
    let want_bad: Vec<Extent> = bad.iter().map(|&(o, l)| Extent::new(o, l)).collect();
    let want_img = zeroed(&src, &bad);

    // 1. Uninterrupted run, raw output.
    let out = d.path().join("full.img");
    let (code, _, e) = run(&["image", "-q", "--all", &dev, "-o", s(&out)]);
    assert_eq!(code, 6, "exit 6 with unreadable sectors: {e}");
    assert_eq!(bad_of(&PathBuf::from(format!("{}.map", s(&out)))), want_bad);
    assert!(
        std::fs::read(&out).unwrap() == want_img,
        "image differs from the readable source"
    );
    let m = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&out)))).unwrap();
    let got: Vec<(u64, u64)> = m.bad.iter().map(|b| (b.start, b.length)).collect();
    assert_eq!(got, bad.to_vec());
    assert_eq!(m.rescue.bad_bytes, 0x1000 + 0x200 + 0x600 + 512);

    // 2. GNU ddrescue on the same device records the same bad sectors and bytes.
    if have("ddrescue") {
        let ddimg = d.path().join("dd.img");
        let ddmap = d.path().join("dd.map");
        let o = Command::new("ddrescue")
            .args(["-d", "-b512", "-r1", "-q", &dev])
            .arg(&ddimg)
            .arg(&ddmap)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ddrescue: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(bad_of(&ddmap), want_bad, "GNU ddrescue's bad sectors");
        // ddrescue does not extend its output over a bad tail: pad to compare.
        let mut ddi = std::fs::read(&ddimg).unwrap();
        ddi.resize(size as usize, 0);
        assert!(ddi == want_img, "ddrescue's image differs from ours");
    } else {
        eprintln!("ddrescue comparison skipped: ddrescue missing (apt-get install gddrescue)");
    }

    // 3. Stream output rescues in place: same bytes, same bad list.
    let z = d.path().join("s.img.zst");
    let (code, _, e) = run(&["image", "-q", "--all", &dev, "-o", s(&z)]);
    assert_eq!(code, 6, "{e}");
    let dz = zstd::stream::decode_all(&std::fs::read(&z).unwrap()[..]).unwrap();
    assert!(dz == want_img, "zstd image differs");
    assert_eq!(bad_of(&PathBuf::from(format!("{}.map", s(&z)))), want_bad);

    // 4. SIGKILL mid-run (slowed to 8 MiB/s, mapfile saved every second), then --resume.
    let k = d.path().join("k.img");
    let mut child = lifeboat()
        .args([
            "image",
            "-q",
            "--all",
            "--max-rate",
            "8M",
            "--mapfile-interval",
            "1",
            &dev,
            "-o",
        ])
        .arg(&k)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap();
    let _ = child.wait();
    let kmap = PathBuf::from(format!("{}.map", s(&k)));
    let partial = Mapfile::load(&kmap).unwrap();
    let done = partial.bytes(Status::Finished);
    assert!(
        done > 0 && done < size,
        "the kill should land mid-run ({done} bytes done)"
    );
    assert!(PathBuf::from(format!("{}.part", s(&k))).exists());
    assert!(!k.exists(), "no final image before completion");
    let (code, _, e) = run(&["image", "-q", "--all", "--resume", &dev, "-o", s(&k)]);
    assert_eq!(code, 6, "{e}");
    assert!(
        std::fs::read(&k).unwrap() == want_img,
        "resumed image differs"
    );
    let mk = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&k)))).unwrap();
    assert_eq!(mk.image.sha256, m.image.sha256);
    assert_eq!(mk.mapped, m.mapped);
    assert!(mk.rescue.resumed);
    let strip = |p: String| -> String {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("<!--") && !l.trim_start().starts_with("BmapFileChecksum"))
            .collect()
    };
    assert_eq!(
        strip(format!("{}.bmap", s(&k))),
        strip(format!("{}.bmap", s(&out)))
    );
    assert_eq!(
        std::fs::read(format!("{}.bmap", s(&k))).unwrap(),
        std::fs::read(format!("{}.bmap", s(&out))).unwrap(),
        "bmap files identical"
    );

    // 5. Ctrl-C: exits 1 naming --resume, keeps the mapfile; the resume is identical too.
    let c = d.path().join("c.img");
    let child = lifeboat()
        .args(["image", "-q", "--all", "--max-rate", "8M", &dev, "-o"])
        .arg(&c)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("--resume"),
        "{err}"
    );
    let (code, _, e) = run(&["image", "-q", "--all", "--resume", &dev, "-o", s(&c)]);
    assert_eq!(code, 6, "{e}");
    assert!(std::fs::read(&c).unwrap() == want_img);
    drop(fd);
}

#[test]
fn used_only_rescue_reports_partitions_and_skips_free_space() {
    if !skip_unless_faults("used_only_rescue_reports_partitions_and_skips_free_space") {
        return;
    }
    let Some(fx) = fixtures_or_skip("used_only_rescue_reports_partitions_and_skips_free_space")
    else {
        return;
    };
    let d = tmp();
    let back = d.path().join("rpi4.img");
    std::fs::copy(fx.join("rpi4.img"), &back).unwrap();
    let src = std::fs::read(&back).unwrap();
    // Where things are: image the file once.
    let clean = d.path().join("clean.img");
    let (code, _, e) = run(&["image", "-q", s(&back), "-o", s(&clean)]);
    assert_eq!(code, 0, "{e}");
    let m = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&clean)))).unwrap();
    let p = |n: u32| m.partitions.iter().find(|p| p.number == n).unwrap().clone();
    let (data, bootstate) = (p(8), p(6));
    // A used sector in the data partition (the recorder database's first block, found with
    // debugfs; else the middle of the largest mapped range), one in the bootstate, and one
    // in the free space of the data partition (never read).
    let part = d.path().join("data.ext4");
    std::fs::write(
        &part,
        &src[data.start as usize..(data.start + data.size) as usize],
    )
    .unwrap();
    let debugfs = |cmd: String| -> Option<String> {
        let o = Command::new("debugfs")
            .args(["-R", &cmd])
            .arg(&part)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    const DB: &str = "/supervisor/homeassistant/home-assistant_v2.db";
    let db_block = have("debugfs")
        .then(|| debugfs(format!("bmap {DB} 0")))
        .flatten()
        .and_then(|o| o.trim().parse::<u64>().ok());
    let used = match db_block {
        Some(b) => data.start + b * 4096 + 1024,
        None => {
            let biggest = m
                .mapped
                .iter()
                .filter(|r| r.start >= data.start && r.start < data.start + data.size)
                .max_by_key(|r| r.length)
                .expect("a mapped range in the data partition");
            (biggest.start + biggest.length / 2) / 512 * 512
        }
    };
    let free = (data.start..data.start + data.size)
        .step_by(1 << 20)
        .map(|o| o + 3 * 4096)
        .find(|&o| {
            !m.mapped
                .iter()
                .any(|r| o >= r.start && o < r.start + r.length)
        })
        .expect("a free MiB in the data partition");
    let bad = [(used, 512u64), (bootstate.start + 8192, 1024), (free, 512)];
    let work = d.path().join("rig");
    std::fs::create_dir_all(&work).unwrap();
    let fd = FaultDev::new(&back, &bad, &work).expect("fault device");
    let out = d.path().join("f.img.gz");
    let (code, _, e) = run(&["image", "-q", fd.dev.to_str().unwrap(), "-o", s(&out)]);
    assert_eq!(code, 6, "{e}");
    let mf = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&out)))).unwrap();
    let got: Vec<(u64, u64, Option<u32>, Option<String>)> = mf
        .bad
        .iter()
        .map(|b| (b.start, b.length, b.partition, b.role.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                bootstate.start + 8192,
                1024,
                Some(6),
                Some("bootstate".into())
            ),
            (used, 512, Some(8), Some("data".into())),
        ]
    );
    assert_eq!(mf.bad[1].partition_offset, Some(used - data.start));
    // The same ranges were read (their hashes differ where the bad sectors are zero).
    let starts = |m: &Manifest| {
        m.mapped
            .iter()
            .map(|r| (r.start, r.length))
            .collect::<Vec<_>>()
    };
    assert_eq!(starts(&mf), starts(&m));
    // Image = source on the mapped ranges with the two bad areas zeroed.
    let mut img = Vec::new();
    use std::io::Read;
    flate2::read::MultiGzDecoder::new(&std::fs::read(&out).unwrap()[..])
        .read_to_end(&mut img)
        .unwrap();
    let want = zeroed(&src, &bad[..2]);
    for r in &mf.mapped {
        let (a, b) = (r.start as usize, (r.start + r.length) as usize);
        assert!(img[a..b] == want[a..b], "range {a} differs");
    }
    assert_eq!(mf.source.kind, "block_device");
    // A raw image also names the ext4 file on the bad sector, as debugfs finds it.
    let raw = d.path().join("f.img");
    let (code, _, e) = run(&["image", "-q", fd.dev.to_str().unwrap(), "-o", s(&raw)]);
    assert_eq!(code, 6, "{e}");
    let mr = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&raw)))).unwrap();
    assert!(mr.bad[0].files.is_empty(), "bootstate has no files");
    if db_block.is_some() {
        assert_eq!(mr.bad[1].files, vec![DB.to_string()]);
        // So does the gzip image (the file is found from the source's ext4 metadata).
        assert_eq!(mf.bad[1].files, vec![DB.to_string()], "gzip output");
        assert!(mf.bad[0].files.is_empty());
    } else {
        eprintln!("file attribution not checked: debugfs missing");
    }
    assert!(mf.source.disk.as_deref().unwrap_or("").starts_with("loop"));
    drop(fd);
}

#[test]
fn loop_device_with_direct_io_and_mount_refusal() {
    if let Err(why) = can_loop() {
        eprintln!("skipped loop_device_with_direct_io_and_mount_refusal: {why}");
        return;
    }
    let Some(fx) = fixtures_or_skip("loop_device_with_direct_io_and_mount_refusal") else {
        return;
    };
    let d = tmp();
    let back = d.path().join("rpi4.img");
    std::fs::copy(fx.join("rpi4.img"), &back).unwrap();
    let file_img = d.path().join("file.img.zst");
    assert_eq!(run(&["image", "-q", s(&back), "-o", s(&file_img)]).0, 0);
    let mfile = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&file_img)))).unwrap();
    let lo = LoopDev::attach(&back, false).expect("losetup");
    let dev = lo.dev.to_str().unwrap().to_string();
    let out = d.path().join("dev.img");
    let (code, _, e) = run(&["image", "-q", &dev, "-o", s(&out)]);
    assert_eq!(code, 0, "{e}");
    let mdev = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&out)))).unwrap();
    assert_eq!(
        mdev.image.sha256, mfile.image.sha256,
        "device and file images agree"
    );
    assert_eq!(mdev.mapped, mfile.mapped);
    // A read-write mount of the data partition is refused, --force images anyway.
    if !have("mount") || !lo.part(8).exists() {
        eprintln!("mount part skipped: no mount or no partition nodes");
        return;
    }
    let mnt = d.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .arg(lo.part(8))
        .arg(&mnt)
        .status()
        .unwrap();
    if !st.success() {
        eprintln!("mount part skipped: cannot mount ext4 here");
        return;
    }
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _g = Umount(mnt.clone());
    let o2 = d.path().join("m.img");
    let (code, _, e) = run(&["image", "-q", &dev, "-o", s(&o2)]);
    assert_eq!(code, 1, "{e}");
    assert!(
        e.contains("mounted read-write") && e.contains("--force"),
        "{e}"
    );
    assert!(!o2.exists() && !PathBuf::from(format!("{}.part", s(&o2))).exists());
    let (code, _, e) = run(&["image", "--force", &dev, "-o", s(&o2)]);
    assert_eq!(code, 0, "{e}");
    assert!(e.contains("read-write"), "a warning names the mount: {e}");
    let mm = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&o2)))).unwrap();
    assert_eq!(mm.source.mounted_rw.len(), 1);
}

#[test]
fn per_read_timeout_gives_up_on_a_hanging_device() {
    if !skip_unless_faults("per_read_timeout_gives_up_on_a_hanging_device") {
        return;
    }
    let d = tmp();
    let src = noise(256 << 10, 3);
    let back = d.path().join("slow.img");
    std::fs::write(&back, &src).unwrap();
    let work = d.path().join("rig");
    std::fs::create_dir_all(&work).unwrap();
    // Every read takes 1.5 s.
    let fd = FaultDev::with_filters(&back, &[], &work, &[("--filter=delay", "rdelay=1500ms")])
        .expect("slow device");
    let dev = fd.dev.to_str().unwrap().to_string();
    // A 0.3 s timeout gives up on every read, reopens the device, and still finishes.
    let out = d.path().join("t.img");
    let t = std::time::Instant::now();
    let (code, _, e) = run(&[
        "image",
        "-q",
        "--all",
        "--chunk",
        "256K",
        "--timeout",
        "0.3",
        "--no-trim",
        "--no-scrape",
        "--retries",
        "0",
        &dev,
        "-o",
        s(&out),
    ]);
    assert_eq!(code, 6, "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    let m = Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(&out)))).unwrap();
    assert!(
        m.rescue.timeouts >= 1 && m.rescue.reopens >= 1,
        "{:?}",
        m.rescue
    );
    assert_eq!(m.rescue.bad_bytes, src.len() as u64);
    assert!(m.read_profile.iter().any(|b| b.timeouts > 0));
    // A slow but working device within the timeout reads fine.
    let ok = d.path().join("ok.img");
    let (code, _, e) = run(&[
        "image",
        "-q",
        "--all",
        "--chunk",
        "256K",
        "--timeout",
        "10",
        &dev,
        "-o",
        s(&ok),
    ]);
    assert_eq!(code, 0, "{e}");
    assert!(std::fs::read(&ok).unwrap() == src);
    drop(fd);
}

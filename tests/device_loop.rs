//! Privileged: discovery, ownership and the block ioctls on a real loop device this test
//! creates (and only on that one). Skipped with a printed reason unless running as root with
//! `/dev/loop-control` and the tools (`sfdisk`, `losetup`, `partx`, `mkfs.ext4`, `mount`).
//!
//! On the test rig's kernel there is no partition parser: `losetup -P` makes no `loopNp*`
//! nodes, so `partx -a` (BLKPG) adds them (see `docs/test-rig.md` §1).

use lifeboat::device::{Disk, Ownership, SysRoot, Transport, discover};
use lifeboat::sys;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Detaches the loop device (and unmounts first) however the test ends.
struct LoopGuard {
    dev: String,
    mounted: Option<PathBuf>,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            let _ = Command::new("umount").arg(&m).status();
        }
        match Command::new("losetup").args(["-d", &self.dev]).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("could not detach {}: {other:?}", self.dev),
        }
    }
}

fn find<'a>(disks: &'a [Disk], name: &str) -> &'a Disk {
    disks
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} not discovered"))
}

fn wait_for(path: &Path, timeout: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    path.exists()
}

#[test]
fn loop_device_discovery_ownership_and_ioctls() {
    let tools = ["sfdisk", "losetup", "partx", "mkfs.ext4", "mount", "umount"];
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root || !Path::new("/dev/loop-control").exists() || !tools.iter().all(|t| have(t)) {
        println!("skipped: needs root and loop devices (and {tools:?})");
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("disk.img");
    File::create(&img).unwrap().set_len(64 * MIB).unwrap();
    let img = img.canonicalize().unwrap();
    let mut sf = Command::new("sfdisk")
        .args(["--quiet", img.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sf.stdin
        .take()
        .unwrap()
        .write_all(
            b"label: gpt\nsize=8MiB, type=linux, name=\"one\"\n\
              size=16MiB, type=linux, name=\"two\"\nsize=32MiB, type=linux, name=\"three\"\n",
        )
        .unwrap();
    assert!(sf.wait().unwrap().success(), "sfdisk failed");

    // losetup -f can race with another process taking the same free device: retry.
    let mut dev = None;
    for _ in 0..5 {
        let out = Command::new("losetup")
            .args(["-f", "-P", "--show", img.to_str().unwrap()])
            .output()
            .unwrap();
        if out.status.success() {
            dev = Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let dev = dev.expect("losetup -f failed five times");
    let mut guard = LoopGuard {
        dev: dev.clone(),
        mounted: None,
    };
    let name = dev.trim_start_matches("/dev/").to_string();
    let p = |n: u32| format!("{dev}p{n}");
    // A stock kernel (or udev) makes the nodes itself; this rig's kernel needs partx.
    if !wait_for(Path::new(&p(1)), Duration::from_millis(500)) {
        run("partx", &["-a", &dev]);
    }
    assert!(
        wait_for(Path::new(&p(3)), Duration::from_secs(2)),
        "no {}",
        p(3)
    );

    // --- Discovery of the fresh, unused disk.
    let root = SysRoot::host();
    let disks = discover(&root).unwrap();
    let d = find(&disks, &name);
    assert_eq!(d.path, PathBuf::from(&dev));
    assert_eq!(d.transport, Transport::Loop);
    assert_eq!(d.backing_file.as_deref(), Some(img.as_path()));
    assert_eq!(d.size, 64 * MIB);
    assert_eq!(d.logical_sector_size, 512);
    assert!(!d.read_only);
    assert!(!d.system_disk);
    let layout: Vec<(u32, u64, u64)> = d
        .partitions
        .iter()
        .map(|x| (x.number, x.start, x.size))
        .collect();
    assert_eq!(
        layout,
        [
            (1, MIB, 8 * MIB),
            (2, 9 * MIB, 16 * MIB),
            (3, 25 * MIB, 32 * MIB)
        ]
    );
    assert_eq!(d.partitions[2].path, PathBuf::from(p(3)));
    assert_eq!(d.ownership, Ownership::Unused, "{d:#?}");

    // --- The ioctls on the real device.
    let f = File::open(&dev).unwrap();
    assert_eq!(sys::size_bytes(&f).unwrap(), 64 * MIB);
    assert_eq!(sys::logical_sector_size(&f).unwrap(), 512);
    assert_eq!(sys::physical_sector_size(&f).unwrap(), 512);
    assert!(!sys::is_read_only(&f).unwrap());
    let devnum = lifeboat::device::discover::disk_devnum(&root, &name).unwrap();
    assert_eq!(sys::file_device_number(&f).unwrap(), devnum);
    assert_eq!(sys::block_device_number(Path::new(&dev)).unwrap(), devnum);
    assert!(sys::is_block_device(Path::new(&dev)).unwrap());
    // BLKPG: drop partition 2 from the kernel's view and put it back (the table is untouched).
    sys::delete_partition(&f, 2).unwrap();
    let d2 = discover(&root).unwrap();
    let nums: Vec<u32> = find(&d2, &name)
        .partitions
        .iter()
        .map(|x| x.number)
        .collect();
    assert_eq!(nums, [1, 3]);
    sys::add_partition(&f, 2, 9 * MIB, 16 * MIB).unwrap();
    let e = sys::add_partition(&f, 2, 9 * MIB, 16 * MIB).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let d2 = discover(&root).unwrap();
    assert_eq!(find(&d2, &name).partitions, d.partitions);

    // --- Mount partition 3: the disk is now in use, and the kernel says busy too.
    run("mkfs.ext4", &["-q", "-F", &p(3)]);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &[&p(3), mnt.to_str().unwrap()]);
    guard.mounted = Some(mnt.clone());
    let mnt_s = mnt.to_str().unwrap().to_string();

    let disks = discover(&root).unwrap();
    let d = find(&disks, &name);
    assert_eq!(d.partitions[2].mountpoints, std::slice::from_ref(&mnt_s));
    let want = format!("{} mounted on {mnt_s}", p(3));
    assert!(
        d.ownership.reasons().contains(&want),
        "{want:?} not in {:?}",
        d.ownership
    );
    assert!(d.in_use());

    let e = sys::reread_partition_table(&f).unwrap_err();
    assert!(e.to_string().contains("device is in use"), "{e}");
    let e = sys::delete_partition(&f, 3).unwrap_err();
    assert!(e.to_string().contains("partition 3 is in use"), "{e}");

    // --- The disk holding / is marked and refused.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts = sys::mountinfo::parse(&mi).unwrap();
    let root_mount = mounts.iter().rev().find(|m| m.mount_point == "/").unwrap();
    if root_mount.dev.major != 0 {
        let sys_disks: Vec<&Disk> = disks.iter().filter(|d| d.system_disk).collect();
        assert!(!sys_disks.is_empty(), "no system disk: {disks:#?}");
        for s in sys_disks {
            assert!(s.in_use());
            assert!(
                s.ownership
                    .reasons()
                    .iter()
                    .any(|r| r.starts_with("holds the running system")),
                "{:?}",
                s.ownership
            );
        }
    } else {
        assert!(disks.iter().all(|d| d.in_use()));
    }

    drop(f);
    drop(guard);
}

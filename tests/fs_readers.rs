//! Read files back from EROFS and squashfs images built by the real tools (mkfs.erofs,
//! mksquashfs) and compare them with the source tree; then flip bytes all over small images
//! and check that the readers return errors instead of panicking.
//!
//! A test whose tool is missing, or whose mkfs.erofs does not know an option, prints why and
//! returns. `MKFS_EROFS=/path/to/mkfs.erofs` selects another mkfs.erofs (a newer erofs-utils
//! knows fragments, dedupe, 48-bit layouts and more compressors).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::cell::RefCell;

use lifeboat::fs::{erofs_read, squashfs_read};
use lifeboat::io::ReadAt;

const OS_RELEASE: &str = "NAME=\"Home Assistant OS\"
VERSION=\"17.1 (Raspberry Pi 4)\"
ID=haos
VERSION_ID=17.1
PRETTY_NAME=\"Home Assistant OS 17.1\"
CPE_NAME=cpe:2.3:o:home-assistant:haos:17.1:*:production:*:*:*:rpi4-64:*
HOME_URL=https://hass.io/
VARIANT=\"Raspberry Pi 4 (64-bit)\"
VARIANT_ID=rpi4-64
SUPERVISOR_MACHINE=raspberrypi4-64
SUPERVISOR_ARCH=aarch64
";

const SYSTEM_CONF: &str = "[system]
compatible=haos-rpi4-64
mountprefix=/run/rauc
statusfile=/mnt/boot/rauc.db
bootloader=uboot
bundle-formats=-plain

[keyring]
path=/etc/rauc/keyring.pem

[slot.boot.0]
device=/dev/disk/by-partlabel/hassos-boot
type=vfat

[slot.kernel.0]
device=/dev/disk/by-partlabel/hassos-kernel0
type=raw
bootname=A

[slot.rootfs.0]
device=/dev/disk/by-partlabel/hassos-system0
type=raw
parent=kernel.0
";

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn compressible(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut i = seed;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "line {i:08} of a compressible file: the quick brown fox {}\n",
                i % 7
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// A HAOS-like tree. `big` adds the multi-MiB files, duplicated files and the 300-entry
/// directory; without it the tree is small enough to corrupt thousands of times.
fn make_tree(root: &Path, big: bool) {
    write(root, "usr/lib/os-release", OS_RELEASE.as_bytes());
    symlink(root, "etc/os-release", "../usr/lib/os-release");
    symlink(root, "etc/abs-os-release", "/usr/lib/os-release");
    symlink(root, "usr/lib64", "lib");
    symlink(root, "loop1", "loop2");
    symlink(root, "loop2", "/loop1");
    symlink(root, "dangling", "/nowhere/at/all");
    write(root, "etc/rauc/system.conf", SYSTEM_CONF.as_bytes());
    write(root, "etc/hostname", b"homeassistant\n");
    write(root, "empty", b"");
    // A file of several compressed clusters, with an incompressible stretch inside.
    let mut mixed = compressible(30_000, 7);
    mixed.extend(pseudo_random(9_000, 3));
    mixed.extend(compressible(20_000, 9));
    write(root, "usr/share/mixed", &mixed);
    let entries = if big { 300 } else { 40 };
    for i in 0..entries {
        let name = format!("deep/a/b/c/many/entry-with-a-longer-name-{i:04}.conf");
        write(root, &name, format!("entry {i}\n").as_bytes());
    }
    if big {
        for (i, n) in [1usize, 511, 4095, 4096, 4097, 8191, 12289, 65537]
            .iter()
            .enumerate()
        {
            write(
                root,
                &format!("sizes/rand-{n}"),
                &pseudo_random(*n, i as u64 + 11),
            );
            write(
                root,
                &format!("sizes/text-{n}"),
                &compressible(*n, i as u64 * 1000),
            );
        }
        // Same content twice, for dedupe.
        let dup = compressible(200_000, 42);
        write(root, "dup/a", &dup);
        write(root, "dup/b", &dup);
        let mut both = dup.clone();
        both.extend(pseudo_random(50_000, 3));
        both.extend(&dup[..70_000]);
        write(root, "dup/both", &both);
        write(root, "big/random.bin", &pseudo_random(3 << 20, 99));
        write(root, "big/compressible.txt", &compressible(5 << 20, 0));
        write(
            root,
            "usr/share/firmware/blob.bin",
            &pseudo_random(300_000, 5),
        );
    }
}

/// Every regular file under `root`, as image paths ("/usr/lib/os-release").
fn regular_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((format!("/{rel}"), p));
            }
        }
    }
    out.sort();
    out
}

/// What kind of error a reader returned, common to both modules.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Ok(Vec<u8>),
    NotFound,
    NotADirectory,
    NotAFile,
    Loop,
    TooLarge,
    Unsupported(String),
    Other(String),
}

fn erofs(img: &dyn ReadAt, path: &str, max: usize) -> Got {
    use erofs_read::ReadError as E;
    match erofs_read::read_file(img, path, max) {
        Ok(v) => Got::Ok(v),
        Err(E::NotFound { .. }) => Got::NotFound,
        Err(E::NotADirectory { .. }) => Got::NotADirectory,
        Err(E::NotAFile { .. }) => Got::NotAFile,
        Err(E::SymlinkLoop { .. }) => Got::Loop,
        Err(E::TooLarge { .. }) => Got::TooLarge,
        Err(e @ E::Unsupported { .. }) => Got::Unsupported(e.to_string()),
        Err(e) => Got::Other(e.to_string()),
    }
}

fn squashfs(img: &dyn ReadAt, path: &str, max: usize) -> Got {
    use squashfs_read::ReadError as E;
    match squashfs_read::read_file(img, path, max) {
        Ok(v) => Got::Ok(v),
        Err(E::NotFound { .. }) => Got::NotFound,
        Err(E::NotADirectory { .. }) => Got::NotADirectory,
        Err(E::NotAFile { .. }) => Got::NotAFile,
        Err(E::SymlinkLoop { .. }) => Got::Loop,
        Err(E::TooLarge { .. }) => Got::TooLarge,
        Err(e @ E::Unsupported { .. }) => Got::Unsupported(e.to_string()),
        Err(e) => Got::Other(e.to_string()),
    }
}

type Reader = fn(&dyn ReadAt, &str, usize) -> Got;

/// Read every file of `src` back from `img` and check the path-walking errors.
fn check_image(label: &str, img: &dyn ReadAt, src: &Path, read: Reader) {
    const MAX: usize = 64 << 20;
    let files = regular_files(src);
    assert!(files.len() > 20, "{label}: tree too small");
    for (path, real) in &files {
        let want = fs::read(real).unwrap();
        match read(img, path, MAX) {
            Got::Ok(got) => assert!(
                got == want,
                "{label}: {path}: {} bytes read, {} expected, first difference at {:?}",
                got.len(),
                want.len(),
                got.iter().zip(&want).position(|(a, b)| a != b)
            ),
            other => panic!("{label}: {path}: {other:?}"),
        }
    }
    let os = Got::Ok(OS_RELEASE.as_bytes().to_vec());
    for p in [
        "/usr/lib/os-release",
        "/etc/os-release",
        "/etc/abs-os-release",
        "/usr/lib64/os-release",
        "usr/lib/os-release",
        "//usr/./lib/../lib//os-release",
        "/../../etc/os-release",
        "/etc/rauc/../os-release",
    ] {
        assert_eq!(read(img, p, MAX), os, "{label}: {p}");
    }
    assert_eq!(
        read(img, "/etc/rauc/system.conf", MAX),
        Got::Ok(SYSTEM_CONF.as_bytes().to_vec()),
        "{label}"
    );
    let mixed = fs::read(src.join("usr/share/mixed")).unwrap();
    assert_eq!(
        read(img, "/usr/share/mixed", mixed.len()),
        Got::Ok(mixed.clone())
    );
    assert_eq!(
        read(img, "/usr/share/mixed", mixed.len() - 1),
        Got::TooLarge,
        "{label}"
    );
    assert_eq!(read(img, "/nope", MAX), Got::NotFound, "{label}");
    assert_eq!(read(img, "/usr/lib/nope", MAX), Got::NotFound, "{label}");
    assert_eq!(read(img, "/dangling", MAX), Got::NotFound, "{label}");
    assert_eq!(read(img, "/usr/lib", MAX), Got::NotAFile, "{label}");
    assert_eq!(read(img, "/", MAX), Got::NotAFile, "{label}");
    assert_eq!(
        read(img, "/usr/lib/os-release/x", MAX),
        Got::NotADirectory,
        "{label}"
    );
    assert_eq!(read(img, "/loop1", MAX), Got::Loop, "{label}");
    assert_eq!(read(img, "/etc/os-release", 10), Got::TooLarge, "{label}");
    assert_eq!(read(img, "/empty", 0), Got::Ok(Vec::new()), "{label}");
    assert_eq!(
        read(
            img,
            "/deep/a/b/c/many/entry-with-a-longer-name-0017.conf",
            MAX
        ),
        Got::Ok(b"entry 17\n".to_vec()),
        "{label}"
    );
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--help").output().is_ok()
}

fn mkfs_erofs() -> String {
    std::env::var("MKFS_EROFS").unwrap_or_else(|_| "mkfs.erofs".into())
}

/// Run mkfs.erofs; `Err(reason)` when this mkfs.erofs refuses the options.
fn build_erofs(args: &[&str], src: &Path, out: &Path) -> Result<Vec<u8>, String> {
    let o = Command::new(mkfs_erofs())
        .args(args)
        .arg(out)
        .arg(src)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "mkfs.erofs {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(fs::read(out).unwrap())
}

fn build_squashfs(args: &[&str], src: &Path, out: &Path) -> Result<Vec<u8>, String> {
    let o = Command::new("mksquashfs")
        .arg(src)
        .arg(out)
        .args(["-noappend", "-no-progress", "-no-xattrs"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "mksquashfs {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(fs::read(out).unwrap())
}

fn erofs_variant(label: &str, args: &[&str]) {
    if !have(&mkfs_erofs()) {
        println!("skipping {label}: mkfs.erofs not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tree");
    make_tree(&src, true);
    let img = match build_erofs(args, &src, &dir.path().join("img")) {
        Ok(img) => img,
        Err(why) => {
            println!("skipping {label}: {why}");
            return;
        }
    };
    check_image(label, &img, &src, erofs);
}

#[test]
fn erofs_uncompressed() {
    erofs_variant("erofs plain", &[]);
}

#[test]
fn erofs_uncompressed_noinline() {
    erofs_variant("erofs noinline", &["-Enoinline_data"]);
}

#[test]
fn erofs_extended_inodes() {
    erofs_variant("erofs extended", &["-Eforce-inode-extended"]);
    erofs_variant(
        "erofs extended lz4hc",
        &["-zlz4hc,12", "-Eforce-inode-extended"],
    );
}

#[test]
fn erofs_compact_inodes() {
    erofs_variant("erofs compact", &["-Eforce-inode-compact", "-zlz4hc,12"]);
}

#[test]
fn erofs_chunked() {
    erofs_variant("erofs chunked", &["--chunksize=8192"]);
}

#[test]
fn erofs_lz4() {
    erofs_variant("erofs lz4", &["-zlz4"]);
}

#[test]
fn erofs_lz4hc() {
    erofs_variant("erofs lz4hc", &["-zlz4hc,12"]);
}

#[test]
fn erofs_lz4hc_full_indexes() {
    erofs_variant(
        "erofs legacy-compress",
        &["-zlz4hc,12", "-Elegacy-compress"],
    );
}

#[test]
fn erofs_lz4hc_bigpcluster_ztailpacking() {
    erofs_variant(
        "erofs lz4hc ztailpacking 256K",
        &["-zlz4hc,12", "-Eztailpacking", "-C262144"],
    );
}

#[test]
fn erofs_haos_options() {
    // What HAOS's buildroot passes (fragments and dedupe need erofs-utils 1.6+).
    erofs_variant(
        "erofs HAOS options",
        &["-zlz4hc,12", "-Efragments,dedupe,ztailpacking", "-C262144"],
    );
    erofs_variant(
        "erofs HAOS options, full indexes",
        &[
            "-zlz4hc,12",
            "-Efragments,dedupe,ztailpacking,legacy-compress",
            "-C262144",
        ],
    );
    // 48-bit layout: flat files only (compressed files there use extent records, which
    // the reader reports as unsupported).
    erofs_variant("erofs 48bit", &["-E48bit"]);
}

#[test]
fn erofs_other_compressors() {
    // Only a newer mkfs.erofs has these; the reader decodes them too.
    erofs_variant("erofs deflate", &["-zdeflate", "-C65536"]);
    erofs_variant("erofs zstd", &["-zzstd", "-C65536"]);
    erofs_variant(
        "erofs lzma",
        &["-zlzma", "-C65536", "-Eztailpacking,fragments"],
    );
}

fn squashfs_variant(label: &str, args: &[&str]) {
    if !have("mksquashfs") {
        println!("skipping {label}: mksquashfs not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tree");
    make_tree(&src, true);
    let img = match build_squashfs(args, &src, &dir.path().join("img")) {
        Ok(img) => img,
        Err(why) => {
            println!("skipping {label}: {why}");
            return;
        }
    };
    check_image(label, &img, &src, squashfs);
}

#[test]
fn squashfs_lz4() {
    squashfs_variant("squashfs lz4", &["-comp", "lz4"]);
    squashfs_variant("squashfs lz4hc 4K", &["-comp", "lz4", "-Xhc", "-b", "4096"]);
}

#[test]
fn squashfs_gzip() {
    squashfs_variant("squashfs gzip", &["-comp", "gzip"]);
    squashfs_variant(
        "squashfs gzip no fragments",
        &["-comp", "gzip", "-no-fragments", "-b", "1048576"],
    );
}

#[test]
fn squashfs_xz() {
    squashfs_variant("squashfs xz", &["-comp", "xz"]);
}

#[test]
fn squashfs_zstd() {
    squashfs_variant("squashfs zstd", &["-comp", "zstd"]);
}

#[test]
fn squashfs_lzma_and_uncompressed() {
    squashfs_variant("squashfs lzma", &["-comp", "lzma"]);
    squashfs_variant(
        "squashfs uncompressed",
        &["-noI", "-noD", "-noF", "-always-use-fragments"],
    );
}

/// A reader over a byte buffer that records which bytes were read.
struct Traced<'a> {
    inner: &'a [u8],
    seen: RefCell<Vec<(u64, usize)>>,
}

impl ReadAt for Traced<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.seen.borrow_mut().push((offset, buf.len()));
        self.inner.read_exact_at(buf, offset)
    }
    fn len(&self) -> u64 {
        self.inner.len() as u64
    }
}

const FUZZ_PATHS: [&str; 5] = [
    "/etc/os-release",
    "/usr/lib/os-release",
    "/etc/rauc/system.conf",
    "/usr/share/mixed",
    "/deep/a/b/c/many/entry-with-a-longer-name-0031.conf",
];

/// Flip bytes of a small image and read a few paths: every outcome but a panic is fine.
/// Most flips hit bytes that a clean read of the same path touches (superblock, inodes,
/// directories, indexes, compressed data), the rest land anywhere.
fn fuzz_image(label: &str, img: &[u8], read: Reader) {
    let touched: Vec<Vec<u64>> = FUZZ_PATHS
        .iter()
        .map(|p| {
            let t = Traced {
                inner: img,
                seen: RefCell::new(Vec::new()),
            };
            assert!(matches!(read(&t, p, 1 << 20), Got::Ok(_)), "{label}: {p}");
            let mut v: Vec<u64> = t
                .seen
                .into_inner()
                .into_iter()
                .flat_map(|(o, n)| o..o + n as u64)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut bad = img.to_vec();
    let (mut ok, mut failed) = (0usize, 0usize);
    let rounds = 3000;
    for round in 0..rounds {
        let which = round % FUZZ_PATHS.len();
        let flips = if round % 8 == 0 {
            1 + (next() % 6) as usize
        } else {
            1
        };
        let mut undo = Vec::with_capacity(flips);
        for _ in 0..flips {
            let pos = if next() % 5 == 0 {
                (next() % img.len() as u64) as usize
            } else {
                let t = &touched[which];
                t[(next() % t.len() as u64) as usize] as usize
            };
            let val = match next() % 4 {
                0 => 0x00,
                1 => 0xFF,
                2 => bad[pos] ^ (1 << (next() % 8)),
                _ => next() as u8,
            };
            undo.push((pos, bad[pos]));
            bad[pos] = val;
        }
        match read(&bad, FUZZ_PATHS[which], 1 << 20) {
            Got::Ok(_) => ok += 1,
            _ => failed += 1,
        }
        for (pos, old) in undo.into_iter().rev() {
            bad[pos] = old;
        }
    }
    // Truncated images.
    for cut in (0..img.len()).step_by((img.len() / 300).max(1)) {
        let _ = read(&img[..cut].to_vec(), "/usr/share/mixed", 1 << 20);
    }
    println!("{label}: of {rounds} corrupted reads {ok} succeeded, {failed} failed cleanly");
}

#[test]
fn erofs_corruption_never_panics() {
    if !have(&mkfs_erofs()) {
        println!("skipping: mkfs.erofs not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tree");
    make_tree(&src, false);
    for (label, args) in [
        (
            "lz4hc ztailpacking",
            &["-zlz4hc,12", "-Eztailpacking", "-C16384"][..],
        ),
        (
            "lz4hc full indexes",
            &["-zlz4hc,12", "-Elegacy-compress"][..],
        ),
        ("plain", &[][..]),
        (
            "HAOS options",
            &["-zlz4hc,12", "-Efragments,dedupe,ztailpacking", "-C262144"][..],
        ),
        (
            "HAOS options, full indexes",
            &[
                "-zlz4hc,12",
                "-Efragments,dedupe,ztailpacking,legacy-compress",
            ][..],
        ),
    ] {
        match build_erofs(args, &src, &dir.path().join("img")) {
            Ok(img) => fuzz_image(&format!("erofs {label}"), &img, erofs),
            Err(why) => println!("skipping {label}: {why}"),
        }
    }
}

#[test]
fn squashfs_corruption_never_panics() {
    if !have("mksquashfs") {
        println!("skipping: mksquashfs not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tree");
    make_tree(&src, false);
    for comp in ["lz4", "gzip", "xz", "zstd"] {
        match build_squashfs(&["-comp", comp], &src, &dir.path().join("img")) {
            Ok(img) => fuzz_image(&format!("squashfs {comp}"), &img, squashfs),
            Err(why) => println!("skipping squashfs {comp}: {why}"),
        }
    }
}

#[test]
fn garbage_is_not_a_filesystem() {
    for len in [0usize, 100, 1100, 4096, 70_000] {
        let img = pseudo_random(len, len as u64);
        let e = erofs_read::read_file(&img, "/etc/os-release", 1 << 20).unwrap_err();
        assert!(
            matches!(
                e,
                erofs_read::ReadError::NotFs { .. } | erofs_read::ReadError::Corrupt { .. }
            ),
            "{e}"
        );
        let e = squashfs_read::read_file(&img, "/etc/os-release", 1 << 20).unwrap_err();
        assert!(
            matches!(
                e,
                squashfs_read::ReadError::NotFs { .. } | squashfs_read::ReadError::Corrupt { .. }
            ),
            "{e}"
        );
    }
    let zeros = vec![0u8; 8192];
    let e = erofs_read::read_file(&zeros, "/usr/lib/os-release", 100).unwrap_err();
    assert!(matches!(e, erofs_read::ReadError::NotFs { .. }), "{e}");
    assert!(e.to_string().starts_with("/usr/lib/os-release: "), "{e}");
    let e = squashfs_read::read_file(&zeros, "/usr/lib/os-release", 100).unwrap_err();
    assert!(matches!(e, squashfs_read::ReadError::NotFs { .. }), "{e}");
}

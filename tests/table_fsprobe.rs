//! Cross-checks the ext/squashfs/EROFS probes (`lifeboat::fs::{ext, squashfs, erofs}`)
//! against filesystems made by the real tools (`mke2fs`, `mksquashfs`, `mkfs.erofs`) and
//! their dump tools (`dumpe2fs -h`, `unsquashfs -s`, `dump.erofs -s`). Each test is skipped,
//! with a printed reason, when its tool is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat::fs::{FsKind, PROBE_LEN, erofs, ext, probe_bytes, squashfs};

const UUID: &str = "0123abcd-4567-89ef-0123-456789abcdef";

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn head(p: &Path) -> Vec<u8> {
    let mut b = std::fs::read(p).unwrap();
    b.truncate(PROBE_LEN);
    b
}

/// Value after `key` on the line that starts with it (`key:   value`).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim())
}

fn num(text: &str, key: &str) -> u64 {
    field(text, key)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} not in:\n{text}"))
}

fn content_dir(root: &Path) -> PathBuf {
    let d = root.join("content");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    // Some incompressible-ish data so the image spans several blocks.
    let mut x: u32 = 12345;
    let data: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(d.join("Image"), &data).unwrap();
    std::fs::write(d.join("sub/hello"), b"hello\n").unwrap();
    d
}

#[test]
fn ext_generations_match_dumpe2fs() {
    let (Some(mke2fs), Some(dumpe2fs)) = (find_tool("mke2fs"), find_tool("dumpe2fs")) else {
        eprintln!("skipped: mke2fs or dumpe2fs not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (fstype, extra, want) in [
        ("ext4", &[][..], 4u8),
        ("ext4", &["-O", "64bit", "-I", "256", "-b", "4096"][..], 4),
        ("ext3", &[][..], 3),
        ("ext2", &[][..], 2),
    ] {
        let img = dir.path().join(format!("{fstype}.img"));
        let _ = std::fs::remove_file(&img);
        run(Command::new(&mke2fs)
            .args(["-q", "-F", "-t", fstype, "-L", "lbl", "-U", UUID])
            .args(extra)
            .arg(&img)
            .arg("8M"));
        let dump = run(Command::new(&dumpe2fs).arg("-h").arg(&img));
        let fs = ext::probe(&head(&img)).unwrap_or_else(|| panic!("{fstype} not recognised"));
        assert_eq!(probe_bytes(&head(&img)).as_ref(), Some(&fs));
        assert_eq!(fs.label.as_deref(), field(&dump, "Filesystem volume name"));
        assert_eq!(fs.uuid.as_deref(), field(&dump, "Filesystem UUID"));
        assert_eq!(fs.uuid.as_deref(), Some(UUID));
        let FsKind::Ext {
            version,
            block_size,
            blocks,
            free_blocks,
            unknown_features,
        } = &fs.kind
        else {
            panic!("{:?}", fs.kind)
        };
        assert_eq!(*version, want, "{fstype} {extra:?}");
        assert_eq!(u64::from(*block_size), num(&dump, "Block size"));
        assert_eq!(*blocks, num(&dump, "Block count"));
        assert_eq!(*free_blocks, num(&dump, "Free blocks"));
        assert!(unknown_features.is_empty(), "{unknown_features:?}");
        assert_eq!(fs.size_bytes, 8 << 20);
        assert_eq!(
            fs.used_bytes,
            Some((blocks - free_blocks) * u64::from(*block_size))
        );
    }
}

#[test]
fn squashfs_matches_unsquashfs() {
    let (Some(mksquashfs), Some(unsquashfs)) = (find_tool("mksquashfs"), find_tool("unsquashfs"))
    else {
        eprintln!("skipped: mksquashfs or unsquashfs not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = content_dir(dir.path());
    for (comp, block) in [("lzo", 131_072u32), ("gzip", 4096), ("xz", 1 << 20)] {
        let img = dir.path().join(format!("{comp}.sqfs"));
        let out = Command::new(&mksquashfs)
            .arg(&src)
            .arg(&img)
            .args(["-noappend", "-quiet", "-no-progress", "-comp", comp, "-b"])
            .arg(block.to_string())
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipped {comp}: mksquashfs refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        }
        let s = run(Command::new(&unsquashfs).arg("-s").arg(&img));
        let fs = squashfs::probe(&head(&img)).unwrap();
        assert_eq!(probe_bytes(&head(&img)).as_ref(), Some(&fs));
        assert_eq!(
            fs.kind,
            FsKind::Squashfs {
                compression: field(&s, "Compression ").unwrap().to_string(),
                block_size: num(&s, "Block size ") as u32,
            }
        );
        assert_eq!(
            fs.kind,
            FsKind::Squashfs {
                compression: comp.into(),
                block_size: block
            }
        );
        assert_eq!(fs.size_bytes, num(&s, "Filesystem size "));
        assert_eq!(fs.used_bytes, Some(fs.size_bytes));
        // mksquashfs pads the file to 4 KiB.
        let len = std::fs::metadata(&img).unwrap().len();
        assert!(fs.size_bytes <= len && len - fs.size_bytes < 4096);
        assert_eq!(fs.label, None);
    }
}

#[test]
fn erofs_matches_dump_erofs() {
    let Some(mkfs) = find_tool("mkfs.erofs") else {
        eprintln!("skipped: mkfs.erofs not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = content_dir(dir.path());
    let img = dir.path().join("rootfs.erofs");
    // `-L` (volume label) arrived after erofs-utils 1.5; try it, fall back without.
    let with_label = Command::new(&mkfs)
        .args(["-Lrootfs", &format!("-U{UUID}"), "-zlz4hc", "--quiet"])
        .arg(&img)
        .arg(&src)
        .output()
        .unwrap()
        .status
        .success();
    if !with_label {
        let _ = std::fs::remove_file(&img);
        run(Command::new(&mkfs)
            .args([&format!("-U{UUID}"), "-zlz4hc", "--quiet"])
            .arg(&img)
            .arg(&src));
    }
    let fs = erofs::probe(&head(&img)).unwrap();
    assert_eq!(probe_bytes(&head(&img)).as_ref(), Some(&fs));
    assert_eq!(fs.kind, FsKind::Erofs { block_size: 4096 });
    assert_eq!(fs.uuid.as_deref(), Some(UUID));
    assert_eq!(fs.label.as_deref(), with_label.then_some("rootfs"));
    let len = std::fs::metadata(&img).unwrap().len();
    assert_eq!(fs.size_bytes, len);
    assert_eq!(fs.used_bytes, Some(len));
    if let Some(dump) = find_tool("dump.erofs") {
        let s = run(Command::new(dump).arg("-s").arg(&img));
        assert_eq!(fs.size_bytes, num(&s, "Filesystem blocks") * 4096);
        assert_eq!(fs.uuid.as_deref(), field(&s, "Filesystem UUID"));
    } else {
        eprintln!("dump.erofs not installed: compared with the image length only");
    }
}

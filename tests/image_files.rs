//! `lifeboat image` on image files (no privileges): every output format round-trips, the used
//! ranges equal the source and everything else is zero, the filesystems in the image check
//! clean, hashes, bmap and manifest agree, odd sizes, refusals.

mod common;

use common::{fixtures_or_skip, have, run};
use lifeboat::verify::bmap::{Bmap, hex};
use lifeboat::verify::manifest::Manifest;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Decompress (or read) an output image.
fn logical(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap();
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".zst") {
        out = zstd::stream::decode_all(&raw[..]).unwrap();
    } else if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
    } else if name.ends_with(".xz") {
        lzma_rust2::XzReader::new(&raw[..], true)
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = raw;
    }
    out
}

/// Check an image against its source and its sidecars; returns the manifest.
pub fn check_image(src: &[u8], out: &Path) -> Manifest {
    let img = logical(out);
    assert_eq!(img.len(), src.len(), "{}: logical size", out.display());
    let m = Manifest::load(&PathBuf::from(format!("{}.manifest.json", out.display()))).unwrap();
    assert_eq!(m.image.size, src.len() as u64);
    assert_eq!(
        m.image.sha256,
        hex(&Sha256::digest(&img)),
        "whole-image hash"
    );
    // Mapped ranges equal the source; everything else is zero.
    let mut pos = 0usize;
    for r in &m.mapped {
        let (s, e) = (r.start as usize, (r.start + r.length) as usize);
        assert!(
            img[pos..s].iter().all(|&b| b == 0),
            "unmapped bytes {pos}..{s} not zero"
        );
        assert!(
            img[s..e] == src[s..e],
            "mapped range {s}..{e} differs from the source"
        );
        assert_eq!(r.sha256, hex(&Sha256::digest(&img[s..e])), "range hash {s}");
        pos = e;
    }
    assert!(img[pos..].iter().all(|&b| b == 0));
    // The bmap describes the same ranges.
    let b =
        Bmap::parse(&std::fs::read_to_string(format!("{}.bmap", out.display())).unwrap()).unwrap();
    assert_eq!(b.image_size, src.len() as u64);
    assert_eq!(b.ranges.len(), m.mapped.len());
    for (br, mr) in b.ranges.iter().zip(&m.mapped) {
        let e = b.extent(br);
        assert_eq!((e.start, e.len), (mr.start, mr.length));
        assert_eq!(br.checksum.as_deref(), Some(mr.sha256.as_str()));
    }
    if let Some(fsum) = &m.image.file_sha256 {
        assert_eq!(*fsum, hex(&Sha256::digest(std::fs::read(out).unwrap())));
    }
    m
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-image-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

#[test]
fn every_format_round_trips_a_haos_image() {
    let Some(fx) = fixtures_or_skip("every_format_round_trips_a_haos_image") else {
        return;
    };
    let d = tmp();
    for family in ["rpi4", "odroid-n2", "x86"] {
        let srcp = fx.join(format!("{family}.img"));
        let src = std::fs::read(&srcp).unwrap();
        for ext in ["img", "img.zst", "img.gz", "img.xz"] {
            let out = d.path().join(format!("{family}.{ext}"));
            let (code, _o, e) = run(&[
                "image",
                "-q",
                srcp.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ]);
            assert_eq!(code, 0, "{family}.{ext}: {e}");
            let m = check_image(&src, &out);
            // Used-only: far less than the whole disk, but every partition listed.
            assert!(
                m.mapped_bytes < src.len() as u64 / 3,
                "{family}: {} mapped",
                m.mapped_bytes
            );
            assert!(m.bad.is_empty());
            assert_eq!(m.inspect.as_ref().unwrap()["verdict"], "haos");
        }
        // The raw image is sparse: far fewer blocks than its length.
        let meta = std::fs::metadata(d.path().join(format!("{family}.img"))).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < meta.len() / 2,
            "{family}.img is not sparse"
        );
    }
}

#[test]
fn used_map_follows_the_filesystems() {
    let Some(fx) = fixtures_or_skip("used_map_follows_the_filesystems") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("rpi4.img");
    let out = d.path().join("rpi4.img");
    let (code, _, e) = run(&[
        "image",
        "-q",
        srcp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{e}");
    let m = Manifest::load(&d.path().join("rpi4.img.manifest.json")).unwrap();
    let by = |n: u32| m.partitions.iter().find(|p| p.number == n).unwrap();
    assert_eq!(by(1).method, "FAT");
    assert_eq!(by(2).method, "squashfs bytes_used");
    assert_eq!(by(3).method, "EROFS size");
    assert_eq!(by(6).method, "read whole"); // bootstate: no filesystem
    assert_eq!(by(6).mapped_bytes, by(6).size);
    assert_eq!(by(8).method, "ext block bitmaps");
    // ext4: the mapped bytes cover at least what the superblock counts as used.
    let sb_used = m.inspect.as_ref().unwrap()["data"]["used_bytes"]
        .as_u64()
        .unwrap();
    assert!(by(8).mapped_bytes >= sb_used && by(8).mapped_bytes < by(8).size / 4);
    // The filesystems in the image check clean with the real tools.
    if have("e2fsck") {
        for n in [7u32, 8] {
            let p = by(n);
            let img = std::fs::read(&out).unwrap();
            let part = d.path().join(format!("p{n}.ext4"));
            std::fs::write(&part, &img[p.start as usize..(p.start + p.size) as usize]).unwrap();
            let o = Command::new("e2fsck")
                .arg("-fn")
                .arg(&part)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "e2fsck p{n}: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }
}

#[test]
fn odd_sizes_and_blobs_with_all() {
    let d = tmp();
    // Not a multiple of 512, 4096 or the chunk size; no partition table.
    for size in [1usize, 4095, 4097, 1_000_001, (1 << 20) + 513] {
        let src: Vec<u8> = (0..size).map(|i| (i * 31 % 255) as u8 + 1).collect();
        let srcp = d.path().join(format!("blob{size}.bin"));
        std::fs::write(&srcp, &src).unwrap();
        for ext in ["img", "img.zst", "img.gz"] {
            let out = d.path().join(format!("blob{size}.{ext}"));
            let (code, _, e) = run(&[
                "image",
                "-q",
                "--all",
                "--chunk",
                "64K",
                srcp.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ]);
            assert_eq!(code, 0, "{size} {ext}: {e}");
            let m = check_image(&src, &out);
            assert_eq!(m.mapped_bytes, size as u64);
            assert_eq!(m.mode, "all");
        }
    }
}

#[test]
fn all_reads_everything_of_a_haos_image() {
    let Some(fx) = fixtures_or_skip("all_reads_everything_of_a_haos_image") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("x86.img");
    let src = std::fs::read(&srcp).unwrap();
    let out = d.path().join("x86.img.zst");
    let (code, _, e) = run(&[
        "image",
        "-q",
        "--all",
        srcp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{e}");
    let m = check_image(&src, &out);
    assert_eq!(m.mapped_bytes, src.len() as u64);
    assert_eq!(logical(&out), src);
}

#[test]
fn stdout_stream_equals_the_file() {
    let Some(fx) = fixtures_or_skip("stdout_stream_equals_the_file") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("rpi4.img");
    let man = d.path().join("s.manifest.json");
    let out = common::lifeboat()
        .args([
            "image",
            "-q",
            srcp.to_str().unwrap(),
            "-o",
            "-",
            "--format",
            "zstd",
            "--manifest",
        ])
        .arg(&man)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = zstd::stream::decode_all(&out.stdout[..]).unwrap();
    let m = Manifest::load(&man).unwrap();
    assert_eq!(m.image.file, "-");
    assert_eq!(m.image.sha256, hex(&Sha256::digest(&img)));
    assert_eq!(
        m.image.file_sha256.as_deref(),
        Some(hex(&Sha256::digest(&out.stdout)).as_str())
    );
}

#[test]
fn refuses_to_overwrite_and_bad_requests() {
    let d = tmp();
    let srcp = d.path().join("src.bin");
    std::fs::write(&srcp, vec![1u8; 8192]).unwrap();
    let out = d.path().join("o.img");
    let s = srcp.to_str().unwrap();
    let o = out.to_str().unwrap();
    assert_eq!(run(&["image", "-q", s, "-o", o]).0, 0);
    let before = std::fs::read(format!("{o}.manifest.json")).unwrap();
    let (code, _, e) = run(&["image", "-q", s, "-o", o]);
    assert_eq!(code, 1);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(format!("{o}.manifest.json")).unwrap(), before);
    assert_eq!(run(&["image", "-q", "--force", s, "-o", o]).0, 0);
    // --resume on a compressed output is refused with the way out.
    let (code, _, e) = run(&["image", "-q", "--resume", s, "-o", &format!("{o}.zst")]);
    assert_eq!(code, 1);
    assert!(e.contains("--resume needs a raw .img"), "{e}");
    // A compressed source is refused.
    let z = d.path().join("c.img.zst");
    std::fs::write(&z, zstd::stream::encode_all(&[0u8; 4096][..], 3).unwrap()).unwrap();
    let (code, _, e) = run(&[
        "image",
        "-q",
        z.to_str().unwrap(),
        "-o",
        d.path().join("x.img").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        e.contains("zstd-compressed") && e.contains("zstd -d"),
        "{e}"
    );
    // Missing output directory names it.
    let (code, _, e) = run(&["image", "-q", s, "-o", "/nonexistent-dir/x.img"]);
    assert_eq!(code, 1);
    assert!(e.contains("/nonexistent-dir"), "{e}");
    // Nothing left behind but what was asked for.
    assert!(!d.path().join("o.img.part").exists());
}

#[test]
fn json_output_and_bmaptool() {
    let Some(fx) = fixtures_or_skip("json_output_and_bmaptool") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("rpi4.img");
    let out = d.path().join("r.img.zst");
    let (code, stdout, stderr) = run(&[
        "image",
        "--json",
        srcp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["report_file"].is_null());
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["manifest"]["kind"], "lifeboat-image-manifest");
    assert_eq!(v["manifest"]["image"]["format"], "zstd");
    // Progress comes as JSON lines on stderr.
    for l in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let e: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(e["event"].is_string());
    }
    if !have("bmaptool") {
        eprintln!("skipped the bmaptool part: bmaptool missing (apt-get install bmap-tools)");
        return;
    }
    let copy = d.path().join("copy.img");
    let o = Command::new("bmaptool")
        .arg("copy")
        .arg(&out)
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bmaptool: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&copy).unwrap(), logical(&out));
}

#[test]
fn svg_report_shows_partitions_and_speed() {
    let Some(fx) = fixtures_or_skip("svg_report_shows_partitions_and_speed") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("rpi4.img");
    let out = d.path().join("r.img");
    let svg = d.path().join("r.svg");
    let (code, _, e) = run(&[
        "image",
        "-q",
        srcp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--report",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{e}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg ") && text.trim_end().ends_with("</svg>"));
    for label in ["p1 boot", "p6 bootstate", "p8 data"] {
        assert!(text.contains(label), "{label} missing");
    }
    // One speed bar per region that was read, none for the unused ones.
    let bars = text.matches("MB/s, 0 errors").count();
    let m = Manifest::load(&d.path().join("r.img.manifest.json")).unwrap();
    let read_bins = m.read_profile.iter().filter(|b| b.seconds > 0.0).count();
    assert_eq!(bars, read_bins);
    assert!(
        read_bins < m.read_profile.len() / 2,
        "used-only reads few regions"
    );
}

//! `--resume` and compressed outputs (no privileges: an image file source slowed with
//! `--max-rate`). A compressed stream cannot be continued where it stopped, so lifeboat refuses
//! `--resume` for it and says how to get a resumable run instead; following that advice — a
//! raw `.img` interrupted with Ctrl-C and resumed, then compressed — gives the same image and
//! hash as one uninterrupted compressed run.

mod common;

use common::{fixtures_or_skip, lifeboat, run};
use lifeboat::verify::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-resume-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn manifest(out: &Path) -> Manifest {
    Manifest::load(&PathBuf::from(format!("{}.manifest.json", s(out)))).unwrap()
}

/// Start `image --all` slowed to 8 MiB/s, interrupt it with SIGINT after 1.5 s; returns
/// (exit code, stderr).
fn interrupted(src: &Path, out: &Path) -> (Option<i32>, String) {
    let child = lifeboat()
        .args([
            "image",
            "-q",
            "--all",
            "--max-rate",
            "8M",
            "--mapfile-interval",
            "1",
        ])
        .arg(src)
        .arg("-o")
        .arg(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn compressed_runs_point_to_the_resumable_route() {
    let Some(fx) = fixtures_or_skip("compressed_runs_point_to_the_resumable_route") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("rpi4.img");
    let size = std::fs::metadata(&srcp).unwrap().len();
    assert!(
        size > 32 << 20,
        "the fixture must take over 1.5 s at 8 MiB/s"
    );

    // The reference: one uninterrupted compressed run.
    let reference = d.path().join("ref.img.zst");
    let (code, _, e) = run(&["image", "-q", "--all", s(&srcp), "-o", s(&reference)]);
    assert_eq!(code, 0, "{e}");
    let want = manifest(&reference);

    // An interrupted compressed run: no image left (not even the .part), and the message
    // says how to get a resumable run.
    let z = d.path().join("card.img.zst");
    let (code, err) = interrupted(&srcp, &z);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("cannot be resumed"),
        "{err}"
    );
    let raw = d.path().join("card.img");
    assert!(
        err.contains(&format!("-o {}", s(&raw))) && err.contains(&format!("-o {}.zst", s(&raw))),
        "names the raw file and the compress step: {err}"
    );
    assert!(!z.exists() && !PathBuf::from(format!("{}.part", s(&z))).exists());
    // Running it again without --force: the left-over mapfile is explained, without
    // sending the user to --resume (which cannot work here).
    let (code, _, e) = run(&["image", "-q", "--all", s(&srcp), "-o", s(&z)]);
    assert_eq!(code, 1);
    assert!(
        e.contains("interrupted") && e.contains("--force") && e.contains("cannot be continued"),
        "{e}"
    );
    // --resume is refused with the same way out.
    let (code, _, e) = run(&["image", "-q", "--all", "--resume", s(&srcp), "-o", s(&z)]);
    assert_eq!(code, 1);
    assert!(
        e.contains("--resume needs a raw .img") && e.contains(&format!("-o {}", s(&raw))),
        "{e}"
    );
    // So is stdout.
    let (code, _, e) = run(&["image", "-q", "--resume", s(&srcp), "-o", "-"]);
    assert_eq!(code, 1);
    assert!(e.contains("--resume needs a raw .img"), "{e}");

    // The advice works: raw, interrupted, resumed, then compressed.
    let (code, err) = interrupted(&srcp, &raw);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(PathBuf::from(format!("{}.part", s(&raw))).exists());
    let (code, _, e) = run(&["image", "-q", "--all", "--resume", s(&srcp), "-o", s(&raw)]);
    assert_eq!(code, 0, "{e}");
    let mr = manifest(&raw);
    assert!(mr.rescue.resumed);
    assert_eq!(mr.image.sha256, want.image.sha256, "resumed raw image");
    assert_eq!(std::fs::read(&raw).unwrap(), std::fs::read(&srcp).unwrap());
    // (--force: the interrupted compressed run left its mapfile there.)
    let (code, _, e) = run(&[
        "image",
        "-q",
        "--force",
        "--all",
        s(&raw),
        "-o",
        &format!("{}.zst", s(&raw)),
    ]);
    assert_eq!(code, 0, "{e}");
    let mz = manifest(&z);
    assert_eq!(mz.image.sha256, want.image.sha256);
    assert_eq!(mz.image.format, "zstd");
    let back = zstd::stream::decode_all(&std::fs::read(&z).unwrap()[..]).unwrap();
    assert!(
        back == std::fs::read(&srcp).unwrap(),
        "compressed image differs"
    );
}

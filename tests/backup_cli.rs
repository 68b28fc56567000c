//! `lifeboat backup` against backups made by other programs: the Supervisor's own fixtures,
//! backups made here by Python securetar from PyPI (v2/v3 with 2026.10.0, v1 with 2024.2.1 in
//! its own venv), and the reverse (archives lifeboat's writer encrypts, decrypted by
//! securetar). Plus malicious and broken backups. The venvs live in the target dir; they are
//! made on first use (CI has PyPI). Without python3/venv/PyPI the Python parts are skipped with
//! a printed reason, except under CI=true, where that is a failure.

mod common;

use common::run;
use lifeboat::backup::password::Password;
use lifeboat::backup::securetar::{EncryptionKey, Version};
use lifeboat::backup::writer::BackupWriter;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const FIXTURES: &str = "../shared/fixtures/ha-backups";
const TOOL: &str = "tests/backup/securetar_tool.py";

fn fixtures() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURES);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: {} not present", p.display());
        None
    }
}

fn venv(name: &str, spec: &str) -> Result<PathBuf, String> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let py = base.join("bin/python");
    let done = base.join(".complete");
    std::fs::create_dir_all(Path::new(env!("CARGO_TARGET_TMPDIR"))).map_err(|e| e.to_string())?;
    let lock =
        std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(".{name}.lock")))
            .map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if done.exists() {
        return Ok(py);
    }
    let _ = std::fs::remove_dir_all(&base);
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&base)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 -m venv: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let out = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            spec,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "pip install {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(&done, b"").map_err(|e| e.to_string())?;
    Ok(py)
}

static NEW: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static OLD: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn py_or_skip(old: bool, test: &str) -> Option<PathBuf> {
    let r = if old {
        OLD.get_or_init(|| venv("securetar-v1-venv", "securetar==2024.2.1"))
    } else {
        NEW.get_or_init(|| venv("securetar-venv", "securetar==2026.10.0"))
    };
    match r {
        Ok(p) => Some(p.clone()),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{test}: {e}"),
        Err(e) => {
            eprintln!("skipped {test}: {e}");
            None
        }
    }
}

fn tool(py: &Path, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(TOOL))
        .args(args)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "securetar_tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn pwfile(dir: &Path, pw: &str) -> PathBuf {
    let p = dir.join("pw.txt");
    std::fs::write(&p, format!("{pw}\n")).unwrap();
    p
}

fn json(args: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = run(&a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"));
    (code, v, err)
}

/// A config tree with the edge cases: > 1 MiB, exactly 1 MiB, empty, secrets, a symlink.
fn make_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join(".storage")).unwrap();
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big: Vec<u8> = (0..1_200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::write(src.join("exact.bin"), &big[..1 << 20]).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join(".storage/auth"), b"{\"users\":[]}\n").unwrap();
    std::fs::write(src.join("secrets.yaml"), b"api: 1\n").unwrap();
    std::fs::write(src.join("configuration.yaml"), b"default_config:\n").unwrap();
    std::os::unix::fs::symlink("../big.bin", src.join("sub/link")).unwrap();
    src
}

/// Manifest {path: [kind, mode, hash]} with modes dropped (lifeboat tightens secrets).
fn manifest_nomode(py: &Path, dir: &Path) -> Value {
    let mut v: Value = serde_json::from_str(&tool(py, &["manifest", s(dir)])).unwrap();
    for (_, e) in v.as_object_mut().unwrap() {
        e[1] = Value::from(0);
    }
    v
}

#[test]
fn supervisor_fixtures_list_check_extract_decrypt() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("backup_example.tar", None, None),
        ("backup_example_enc.tar", Some("test"), Some(2)),
        ("backup_example_sec_v3.tar", Some("supervisor"), Some(3)),
    ];
    let (code, v, _) = json(&["backup", "list", s(&fx)]);
    assert_eq!(code, 0);
    assert_eq!(v["backups"].as_array().unwrap().len(), 3);
    for (file, pw, enc) in cases {
        let path = fx.join(file);
        let (_, l, _) = json(&["backup", "list", s(&path)]);
        let b = &l["backups"][0]["backup"];
        assert_eq!(
            b["encryption"],
            enc.map(Value::from).unwrap_or(Value::Null),
            "{file}"
        );
        assert_eq!(b["protected"], Value::from(pw.is_some()));
        let mut args = vec!["backup", "check", s(&path), "--no-prompt"];
        let pf;
        if let Some(p) = pw {
            pf = pwfile(tmp.path(), p);
            args.extend(["--password-file", s(&pf)]);
        }
        let (code, c, _) = json(&args);
        assert_eq!(code, 0, "{file}: {c:#}");
        assert_eq!(c["verdict"], "ok", "{file}: {c:#}");
        assert!(
            c["archives"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["ok"] == true)
        );
        // Extract and decrypt.
        let out = tmp.path().join(format!("x-{file}"));
        let mut ex = vec!["backup", "extract", s(&path), "-o", s(&out), "--no-prompt"];
        ex.extend(args[4..].iter().copied());
        let (code, _, err) = run(&ex);
        assert_eq!(code, 0, "{file}: {err}");
        assert!(out.join("backup.json").is_file());
        if file != "backup_example_enc.tar" {
            let addon_json = out.join("a0d7b954_example/addon.json");
            let mode = std::fs::metadata(&addon_json).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "addon.json holds tokens");
        } else {
            assert!(out.join("ssl").is_dir());
        }
        // A second extraction refuses without --force, and works with it.
        let (code, _, err) = run(&ex);
        assert_eq!(code, 1);
        assert!(err.contains("--force"), "{err}");
        ex.push("--force");
        assert_eq!(run(&ex).0, 0);
        let dec = tmp.path().join(format!("d-{file}"));
        let mut d = vec!["backup", "decrypt", s(&path), "-o", s(&dec), "--no-prompt"];
        d.extend(args[4..].iter().copied());
        let (code, _, err) = run(&d);
        assert_eq!(code, 0, "{file}: {err}");
        let (code, c, _) = json(&["backup", "check", s(&dec), "--no-prompt"]);
        assert_eq!(code, 0, "{c:#}");
        assert_eq!(c["backup"]["protected"], false);
        assert_eq!(c["backup"]["encryption"], Value::Null);
        assert_eq!(
            std::fs::metadata(&dec).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // The wrong password: a clear verdict, exit 4, the file and archive named.
    let bad = pwfile(tmp.path(), "nope");
    let v3 = fx.join("backup_example_sec_v3.tar");
    let (code, out, _) = run(&["backup", "check", s(&v3), "--password-file", s(&bad)]);
    assert_eq!(code, 4);
    assert!(
        out.contains("error: a0d7b954_example.tar.gz: wrong password (v3 key check failed)"),
        "{out}"
    );
    let (code, _, err) = run(&[
        "backup",
        "extract",
        s(&v3),
        "-o",
        s(&tmp.path().join("w")),
        "--password-file",
        s(&bad),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("backup_example_sec_v3.tar: a0d7b954_example.tar.gz: wrong password (v3 key check failed)"), "{err}");
    // No password, no terminal: check is incomplete (5); extract says how to give one.
    let (code, c, _) = json(&["backup", "check", s(&v3), "--no-prompt"]);
    assert_eq!((code, c["verdict"].as_str()), (5, Some("incomplete")));
    let (code, _, err) = run(&[
        "backup",
        "decrypt",
        s(&v3),
        "-o",
        s(&tmp.path().join("n.tar")),
        "--no-prompt",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--password-file"), "{err}");
}

#[test]
fn password_sources_env_and_emergency_kit() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let v3 = fx.join("backup_example_sec_v3.tar");
    let out = common::lifeboat()
        .args(["--json", "backup", "check", s(&v3), "--no-prompt"])
        .env("LIFEBOAT_BACKUP_PASSWORD", "supervisor")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["password"], "correct");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"supervisor\"\n"));
    // An emergency kit whose key is not this backup's: found, and reported wrong.
    let kit = tmp.path().join("home_assistant_backup_emergency_kit.txt");
    std::fs::write(&kit, "Home Assistant Backup Emergency Kit\n\nEncryption key:\nABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01\n").unwrap();
    let (code, v, _) = json(&["backup", "check", s(&v3), "--emergency-kit", s(&kit)]);
    assert_eq!(code, 4);
    assert_eq!(v["password"], "wrong");
    assert!(
        !v.to_string().contains("ABCD-EFGH"),
        "the key must never be printed"
    );
}

fn make_python_backup(py: &Path, dir: &Path, version: u8) -> PathBuf {
    let src = make_tree(dir);
    let out = dir.join(format!("py-v{version}.tar"));
    tool(
        py,
        &["make", s(&src), s(&out), &version.to_string(), "hunter2"],
    );
    out
}

fn python_roundtrip(version: u8) {
    let test = format!("python_securetar_v{version}");
    let Some(py) = py_or_skip(version == 1, &test) else {
        return;
    };
    let Some(newpy) = py_or_skip(false, &test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let backup = make_python_backup(&py, tmp.path(), version);
    let pf = pwfile(tmp.path(), "hunter2");
    let (code, c, err) = json(&["backup", "check", s(&backup), "--password-file", s(&pf)]);
    assert_eq!(code, 0, "{c:#}");
    assert!(
        !c.to_string().contains("hunter2") && !err.contains("hunter2"),
        "password printed"
    );
    assert_eq!(c["verdict"], "ok", "{c:#}");
    let expect_enc = if version == 0 {
        Value::Null
    } else {
        Value::from(version)
    };
    assert_eq!(c["archives"][0]["encryption"], expect_enc);
    let x = tmp.path().join("x");
    let (code, _, err) = run(&[
        "backup",
        "extract",
        s(&backup),
        "-o",
        s(&x),
        "--password-file",
        s(&pf),
    ]);
    assert_eq!(code, 0, "{err}");
    // Same tree as what went in (hashes, kinds, symlink targets).
    assert_eq!(
        manifest_nomode(&newpy, &x.join("homeassistant/data")),
        manifest_nomode(&newpy, &tmp.path().join("src"))
    );
    let mode = |p: &str| {
        std::fs::symlink_metadata(x.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("homeassistant/data/.storage/auth"), 0o600);
    assert_eq!(mode("homeassistant/data/.storage"), 0o700);
    assert_eq!(mode("homeassistant/data/secrets.yaml"), 0o600);
    assert_eq!(mode("homeassistant"), 0o700);
    assert_eq!(
        std::fs::read_link(x.join("homeassistant/data/sub/link")).unwrap(),
        Path::new("../big.bin")
    );
    // Decrypted copy: plain, with strict gzip (v1's trailer repaired), read by Python tarfile.
    let d = tmp.path().join("d.tar");
    let (code, _, err) = run(&[
        "backup",
        "decrypt",
        s(&backup),
        "-o",
        s(&d),
        "--password-file",
        s(&pf),
    ]);
    assert_eq!(code, 0, "{err}");
    let names = tool(&newpy, &["checkgz", s(&d)]);
    assert!(names.contains("\"./backup.json\""), "{names}");
    let (code, c, _) = json(&["backup", "check", s(&d)]);
    assert_eq!((code, c["verdict"].as_str()), (0, Some("ok")), "{c:#}");
}

#[test]
fn python_securetar_v0_unencrypted() {
    python_roundtrip(0);
}
#[test]
fn python_securetar_v1_padding_bug() {
    python_roundtrip(1);
}
#[test]
fn python_securetar_v2() {
    python_roundtrip(2);
}
#[test]
fn python_securetar_v3() {
    python_roundtrip(3);
}

/// gzip(tar) of the tree at `src` under `data/`, made with the tar crate.
fn tar_gz_of(src: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    b.follow_symlinks(false);
    b.append_dir_all("data", src).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn lifeboat_writer_output_is_read_by_python_securetar() {
    let Some(py) = py_or_skip(false, "lifeboat_writer_output_is_read_by_python_securetar") else {
        return;
    };
    for version in [Version::V2, Version::V3] {
        let tmp = tempfile::tempdir().unwrap();
        let src = make_tree(tmp.path());
        let inner = tar_gz_of(&src);
        let key = EncryptionKey::new(&Password::new("hunter2"), version).unwrap();
        let out = tmp.path().join("rust.tar");
        let mut w = BackupWriter::new(std::fs::File::create(&out).unwrap());
        let meta = serde_json::json!({"slug":"0badcafe","name":"from rust","date":"2026-11-20T04:45:12+00:00",
            "type":"partial","version":2,"compressed":true,"protected":true,
            "homeassistant":{"version":"2026.8.3","exclude_database":false},"folders":[],"addons":[]});
        w.append_bytes("./backup.json", meta.to_string().as_bytes(), 1_763_000_000)
            .unwrap();
        w.append_encrypted(
            "homeassistant.tar.gz",
            inner.len() as u64,
            &inner[..],
            &key,
            1_763_000_000,
        )
        .unwrap();
        w.finish().unwrap().flush().unwrap();
        let pyout = tmp.path().join("py");
        assert_eq!(
            tool(&py, &["decrypt", s(&out), "hunter2", s(&pyout)]).trim(),
            "ok"
        );
        let a = manifest_nomode(&py, &pyout.join("homeassistant/data"));
        let b = manifest_nomode(&py, &src);
        assert_eq!(a, b, "{version}");
        // And lifeboat's own check agrees.
        let pf = pwfile(tmp.path(), "hunter2");
        let (code, c, _) = json(&["backup", "check", s(&out), "--password-file", s(&pf)]);
        assert_eq!((code, c["verdict"].as_str()), (0, Some("ok")), "{c:#}");
    }
}

// ------------------------------------------------------------ malicious and broken

/// A ustar header with the name bytes as given (the tar crate refuses `..` and `/`).
fn raw_header(name: &str, size: u64, kind: u8, link: &str) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_763_000_000);
    h.set_entry_type(tar::EntryType::new(kind));
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    h
}

fn inner_gz(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, kind, link, data) in entries {
        let h = raw_header(name, data.len() as u64, *kind, link);
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn outer(path: &Path, meta_name: &str, inner: &[u8]) {
    let meta = serde_json::json!({"slug":"0badcafe","name":"evil","date":"2026-11-20T04:45:12+00:00",
        "type":"partial","version":2,"compressed":true,"protected":false,
        "homeassistant":{"version":"2026.8.3"},"folders":[],"addons":[]});
    let mut w = BackupWriter::new(std::fs::File::create(path).unwrap());
    w.append_bytes(meta_name, meta.to_string().as_bytes(), 1)
        .unwrap();
    w.append_bytes("homeassistant.tar.gz", inner, 1).unwrap();
    w.finish().unwrap();
}

fn nothing_outside(tmp: &Path) {
    assert!(!tmp.join("evil").exists());
    assert!(!tmp.join("outside/pwned").exists());
    assert!(!Path::new("/tmp/lifeboat-evil-abs").exists());
}

#[test]
fn malicious_backups_are_refused_and_write_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
    let outside = tmp.path().join("outside");
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "traversal",
            inner_gz(&[
                ("data/x", b'0', "", b"ok"),
                ("data/../../evil", b'0', "", b"x"),
            ]),
            "climbs out",
            "climbs out",
        ),
        (
            "absolute",
            inner_gz(&[("/tmp/lifeboat-evil-abs", b'0', "", b"x")]),
            "absolute path",
            "absolute path",
        ),
        (
            "symlink",
            inner_gz(&[
                ("data/link", b'2', s(&outside), b""),
                ("data/link/pwned", b'0', "", b"x"),
            ]),
            "symlink to",
            "does not write through it",
        ),
        (
            "hardlink",
            inner_gz(&[("data/a", b'0', "", b"x"), ("data/b", b'1', "data/a", b"")]),
            "hard link",
            "",
        ),
    ];
    for (name, gz, check_msg, extract_msg) in cases {
        let b = tmp.path().join(format!("{name}.tar"));
        outer(&b, "./backup.json", &gz);
        let (code, out, _) = run(&["backup", "check", s(&b)]);
        assert_eq!(code, 4, "{name}: {out}");
        assert!(out.contains(check_msg), "{name}: {out}");
        let x = tmp.path().join(format!("x-{name}"));
        let (code, _, err) = run(&["backup", "extract", s(&b), "-o", s(&x)]);
        if extract_msg.is_empty() {
            // Hard links inside the archive are safe to make; check still flags them.
            assert_eq!(code, 0, "{name}: {err}");
            let ino = |p: &str| {
                std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(x.join(p)).unwrap())
            };
            assert_eq!(ino("homeassistant/data/a"), ino("homeassistant/data/b"));
        } else {
            assert_eq!(code, 1, "{name}: {err}");
            assert!(err.contains(extract_msg), "{name}: {err}");
            assert!(
                err.contains(&format!("{name}.tar: homeassistant.tar.gz: member")),
                "{name}: {err}"
            );
            assert!(
                !x.join("homeassistant").exists(),
                "{name}: partial result left behind"
            );
            let leftovers: Vec<_> = std::fs::read_dir(&x).unwrap().collect();
            assert!(
                leftovers.is_empty(),
                "{name}: temp dirs left: {leftovers:?}"
            );
        }
        nothing_outside(tmp.path());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}

#[test]
fn broken_backups_get_clear_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let good = inner_gz(&[("data", b'5', "", b""), ("data/f", b'0', "", &[7u8; 5000])]);
    // Missing ./backup.json (repacked without the ./).
    let b = tmp.path().join("noname.tar");
    outer(&b, "backup.json", &good);
    let (code, out, _) = run(&["backup", "check", s(&b)]);
    assert_eq!(code, 4);
    assert!(out.contains("looks for exactly './backup.json'"), "{out}");
    // Truncated inner archive (stored whole in the outer tar, but cut).
    let b = tmp.path().join("trunc.tar");
    outer(&b, "./backup.json", &good[..good.len() / 2]);
    let (code, out, _) = run(&["backup", "check", s(&b)]);
    assert_eq!(code, 4);
    assert!(
        out.contains("homeassistant.tar.gz: gzip data is truncated"),
        "{out}"
    );
    let (code, _, err) = run(&["backup", "extract", s(&b), "-o", s(&tmp.path().join("t"))]);
    assert_eq!(code, 1);
    assert!(
        err.contains("trunc.tar: homeassistant.tar.gz: gzip data is truncated"),
        "{err}"
    );
    // Truncated outer file.
    let full = std::fs::read(tmp.path().join("noname.tar")).unwrap();
    let b = tmp.path().join("cut.tar");
    std::fs::write(&b, &full[..1500]).unwrap();
    let (code, out, _) = run(&["backup", "check", s(&b)]);
    assert_eq!(code, 4);
    assert!(out.contains("truncated"), "{out}");
    // A decompression bomb: 64 MiB of zeros in 64 KiB of gzip.
    let zeros = vec![0u8; 64 << 20];
    let bomb = inner_gz(&[("data/zeros", b'0', "", &zeros)]);
    assert!(bomb.len() < 1 << 20);
    let b = tmp.path().join("bomb.tar");
    outer(&b, "./backup.json", &bomb);
    let x = tmp.path().join("bx");
    let (code, _, err) = run(&["backup", "extract", s(&b), "-o", s(&x), "--max-size", "8M"]);
    assert_eq!(code, 1);
    assert!(err.contains("decompression bomb"), "{err}");
    assert!(!x.join("homeassistant").exists());
    let (code, out, _) = run(&["backup", "check", s(&b), "--max-size", "8M"]);
    assert_eq!(code, 4);
    assert!(out.contains("decompression bomb"), "{out}");
    // A gzipped outer file.
    let b = tmp.path().join("outer.tar.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&full).unwrap();
    std::fs::write(&b, e.finish().unwrap()).unwrap();
    let (code, out, _) = run(&["backup", "check", s(&b)]);
    assert_eq!(code, 4);
    assert!(out.contains("gzip-compressed"), "{out}");
}

#[test]
fn lists_backups_on_an_haos_image() {
    let Some(dir) = common::fixtures_or_skip("lists_backups_on_an_haos_image") else {
        return;
    };
    let img = dir.join("rpi4.img");
    let (code, v, _) = json(&["backup", "list", s(&img)]);
    assert_eq!(code, 0);
    let list = v["backups"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{v:#}");
    let p = list
        .iter()
        .find(|b| b["path"] == "/supervisor/backup/a519c354.tar")
        .expect("the protected backup");
    assert_eq!(p["found_in"], "haos_image");
    assert_eq!(p["backup"]["protected"], true);
    assert_eq!(p["backup"]["encryption"], 2);
    let (code, out, _) = run(&["backup", "list", s(&img)]);
    assert_eq!(code, 0);
    assert!(out.contains("SecureTar v2"), "{out}");
}

/// Copy a file out of the data partition of a fixture image with debugfs (e2fsprogs).
fn dump_from_image(img: &Path, inner: &str, out: &Path) -> Result<(), String> {
    let (code, v, _) = json(&["inspect", s(img)]);
    if code != 0 {
        return Err(format!("inspect exit {code}"));
    }
    let data = v["partitions"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["role"] == "data"))
        .ok_or("no data partition")?;
    let (start, size) = (
        data["start_bytes"].as_u64().unwrap(),
        data["size_bytes"].as_u64().unwrap(),
    );
    let bytes = std::fs::read(img).map_err(|e| e.to_string())?;
    let part = out.with_extension("part");
    std::fs::write(&part, &bytes[start as usize..(start + size) as usize])
        .map_err(|e| e.to_string())?;
    let st = Command::new("debugfs")
        .arg("-R")
        .arg(format!("dump {inner} {}", s(out)))
        .arg(&part)
        .output()
        .map_err(|e| format!("debugfs: {e}"))?;
    if !out.is_file() {
        return Err(format!("debugfs: {}", String::from_utf8_lossy(&st.stderr)));
    }
    Ok(())
}

#[test]
fn haos_fixture_v2_backup_checks_extracts_and_decrypts() {
    let Some(dir) = common::fixtures_or_skip("haos_fixture_v2_backup") else {
        return;
    };
    if !common::have("debugfs") {
        eprintln!("skipped haos_fixture_v2_backup: debugfs missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("a519c354.tar");
    dump_from_image(&dir.join("rpi4.img"), "/supervisor/backup/a519c354.tar", &b).unwrap();
    let pf = pwfile(tmp.path(), "lifeboat-fixture-pw");
    let (code, c, _) = json(&["backup", "check", s(&b), "--password-file", s(&pf)]);
    assert_eq!(code, 0, "{c:#}");
    assert_eq!(c["password"], "correct");
    assert!(
        c["archives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["ok"] == true && a["encryption"] == 2),
        "{c:#}"
    );
    let x = tmp.path().join("x");
    let (code, _, err) = run(&[
        "backup",
        "extract",
        s(&b),
        "-o",
        s(&x),
        "--password-file",
        s(&pf),
        "--only",
        "homeassistant",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(x.join("homeassistant/data/configuration.yaml").is_file());
    assert!(!x.join("share").exists(), "--only limits the archives");
    let d = tmp.path().join("d.tar");
    let (code, _, err) = run(&[
        "backup",
        "decrypt",
        s(&b),
        "-o",
        s(&d),
        "--password-file",
        s(&pf),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, c, _) = json(&["backup", "check", s(&d)]);
    assert_eq!(
        (code, c["password"].as_str()),
        (0, Some("not_needed")),
        "{c:#}"
    );
}

#[test]
fn backup_on_an_haos_image_is_read_in_place() {
    let Some(dir) = common::fixtures_or_skip("backup_on_an_haos_image_is_read_in_place") else {
        return;
    };
    let img = dir.join("rpi4.img");
    let tmp = tempfile::tempdir().unwrap();
    let pf = pwfile(tmp.path(), "lifeboat-fixture-pw");
    // Without --slug: refused, naming the slugs to choose from.
    let (code, _, err) = run(&["backup", "check", s(&img), "--no-prompt"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--slug") && err.contains("a519c354") && err.contains("ee61b670"),
        "{err}"
    );
    let (code, _, err) = run(&["backup", "check", s(&img), "--slug", "nope"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no backup 'nope'") && err.contains("a519c354"),
        "{err}"
    );
    // By slug, by file name and by path: the same backup.
    for wanted in [
        "a519c354",
        "a519c354.tar",
        "/supervisor/backup/a519c354.tar",
    ] {
        let (code, c, _) = json(&[
            "backup",
            "check",
            s(&img),
            "--slug",
            wanted,
            "--password-file",
            s(&pf),
        ]);
        assert_eq!(code, 0, "{wanted}: {c:#}");
        assert_eq!(c["password"], "correct");
        assert!(
            c["path"]
                .as_str()
                .unwrap()
                .ends_with(":/supervisor/backup/a519c354.tar"),
            "{c:#}"
        );
        assert!(
            c["archives"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["ok"] == true && a["encryption"] == 2),
            "{c:#}"
        );
    }
    // A wrong password is found without copying anything.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let badpf = pwfile(&bad, "not-the-password");
    let (code, c, _) = json(&[
        "backup",
        "check",
        s(&img),
        "--slug",
        "a519c354",
        "--password-file",
        s(&badpf),
    ]);
    assert_ne!(code, 0);
    assert_eq!(c["password"], "wrong", "{c:#}");
    // Extract in place = extract of a copy taken off the image by debugfs.
    let x = tmp.path().join("x");
    let (code, _, err) = run(&[
        "backup",
        "extract",
        s(&img),
        "--slug",
        "a519c354",
        "-o",
        s(&x),
        "--password-file",
        s(&pf),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(x.join("homeassistant/data/configuration.yaml").is_file());
    if common::have("debugfs") {
        let copy = tmp.path().join("copy.tar");
        dump_from_image(&img, "/supervisor/backup/a519c354.tar", &copy).unwrap();
        let y = tmp.path().join("y");
        let (code, _, err) = run(&[
            "backup",
            "extract",
            s(&copy),
            "-o",
            s(&y),
            "--password-file",
            s(&pf),
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(tree(&x), tree(&y));
    } else {
        eprintln!("debugfs missing: the comparison with a copied-off backup is skipped");
    }
    // Decrypt in place: a plain backup that checks.
    let d = tmp.path().join("d.tar");
    let (code, _, err) = run(&[
        "backup",
        "decrypt",
        s(&img),
        "--slug",
        "a519c354",
        "-o",
        s(&d),
        "--password-file",
        s(&pf),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, c, _) = json(&["backup", "check", s(&d)]);
    assert_eq!(
        (code, c["password"].as_str()),
        (0, Some("not_needed")),
        "{c:#}"
    );
    // The same on a (read-only) loop device of the image.
    match common::can_loop() {
        Err(why) => eprintln!("loop device part skipped: {why}"),
        Ok(()) => {
            let dev = common::LoopDev::attach(&img, true).unwrap();
            let (code, c, _) = json(&["backup", "check", s(&dev.dev), "--slug", "ee61b670"]);
            assert_eq!(code, 0, "{c:#}");
            assert_eq!(c["verdict"], "ok", "{c:#}");
            // Mounted (read-only, no journal replay): still read, with a warning.
            let (_, v) = common::inspect_json(&img);
            let n = v["partitions"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["role"] == "data"))
                .and_then(|p| p["number"].as_u64())
                .expect("data partition number") as u32;
            let mnt = tmp.path().join("mnt");
            std::fs::create_dir(&mnt).unwrap();
            let part = dev.part(n);
            let m = Command::new("mount")
                .args(["-o", "ro,noload"])
                .arg(&part)
                .arg(&mnt)
                .output()
                .unwrap();
            if !m.status.success() {
                eprintln!(
                    "mounted-device part skipped: mount failed: {}",
                    String::from_utf8_lossy(&m.stderr)
                );
                return;
            }
            let (code, _, err) = run(&["backup", "check", s(&dev.dev), "--slug", "ee61b670"]);
            let _ = Command::new("umount").arg(&mnt).output();
            assert_eq!(code, 0, "{err}");
            assert!(err.contains("is in use"), "{err}");
        }
    }
}

/// Every file and symlink under `dir`: relative path → content or link target.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let md = p.symlink_metadata().unwrap();
            if md.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((rel, t.as_os_str().as_encoded_bytes().to_vec()));
            } else if md.is_dir() {
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn extract_as_root_restores_owners_unless_no_same_owner() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!("skipped extract_as_root_restores_owners: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut add = |name: &str,
                   kind: tar::EntryType,
                   uid: u64,
                   gid: u64,
                   mode: u32,
                   data: &[u8],
                   link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_763_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, name, data).unwrap();
    };
    add(
        "data",
        tar::EntryType::Directory,
        2222,
        3333,
        0o755,
        b"",
        None,
    );
    add(
        "data/owned.txt",
        tar::EntryType::Regular,
        1234,
        5678,
        0o640,
        b"mine\n",
        None,
    );
    add(
        "data/link",
        tar::EntryType::Symlink,
        4321,
        8765,
        0o777,
        b"",
        Some("owned.txt"),
    );
    add(
        "data/root.txt",
        tar::EntryType::Regular,
        0,
        0,
        0o644,
        b"root\n",
        None,
    );
    let inner = b.into_inner().unwrap().finish().unwrap();
    let backup = tmp.path().join("owners.tar");
    outer(&backup, "./backup.json", &inner);
    let ids = |p: &Path| {
        let m = p.symlink_metadata().unwrap();
        (m.uid(), m.gid())
    };
    let x = tmp.path().join("x");
    let (code, v, err) = json(&["backup", "extract", s(&backup), "-o", s(&x)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["archives"][0]["same_owner"], true, "{v:#}");
    assert_eq!(
        v["archives"][0]["owner_failures"],
        serde_json::json!([]),
        "{v:#}"
    );
    let h = x.join("homeassistant/data");
    assert_eq!(ids(&h), (2222, 3333));
    assert_eq!(ids(&h.join("owned.txt")), (1234, 5678));
    assert_eq!(ids(&h.join("link")), (4321, 8765), "the symlink itself");
    assert_eq!(ids(&h.join("root.txt")), (0, 0));
    assert_eq!(
        h.join("owned.txt").metadata().unwrap().mode() & 0o777,
        0o640,
        "chown before chmod keeps the mode"
    );
    // --no-same-owner: everything belongs to the user running lifeboat (root here).
    let y = tmp.path().join("y");
    let (code, v, err) = json(&[
        "backup",
        "extract",
        s(&backup),
        "-o",
        s(&y),
        "--no-same-owner",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["archives"][0]["same_owner"], false, "{v:#}");
    let h = y.join("homeassistant/data");
    for p in [h.clone(), h.join("owned.txt"), h.join("link")] {
        assert_eq!(ids(&p), (0, 0), "{}", p.display());
    }
}

/// The password prompt on a terminal (a pty driven by tests/backup/pty_prompt.py): the answer
/// is taken without echo, a wrong one is a "wrong password" verdict, and neither is shown.
#[test]
fn password_prompt_on_a_terminal_does_not_echo() {
    let Some(dir) = common::fixtures_or_skip("password_prompt_on_a_terminal") else {
        return;
    };
    if !common::have("python3") {
        eprintln!("skipped password_prompt_on_a_terminal: python3 missing");
        return;
    }
    let img = dir.join("rpi4.img");
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/backup/pty_prompt.py");
    let prompt = |pw: &str| {
        let out = Command::new("python3")
            .arg(&driver)
            .arg(pw)
            .arg(env!("CARGO_BIN_EXE_lifeboat"))
            .args(["backup", "check", s(&img), "--slug", "a519c354"])
            .env_remove("LIFEBOAT_BACKUP_PASSWORD")
            .output()
            .expect("running pty_prompt.py");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, screen) = prompt("lifeboat-fixture-pw");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Password for"), "{screen}");
    assert!(screen.contains("Verdict: OK"), "{screen}");
    assert!(!screen.contains("lifeboat-fixture-pw"), "echoed: {screen}");
    let (code, screen) = prompt("guessed-wrong");
    assert_ne!(code, 0, "{screen}");
    assert!(screen.to_lowercase().contains("wrong password"), "{screen}");
    assert!(!screen.contains("guessed-wrong"), "echoed: {screen}");
}

/// Archives are extracted two at a time; the --max-size budget is shared by all of them.
#[test]
fn max_size_covers_all_archives_together() {
    let Some(dir) = common::fixtures_or_skip("max_size_covers_all_archives_together") else {
        return;
    };
    let img = dir.join("rpi4.img");
    let tmp = tempfile::tempdir().unwrap();
    // ee61b670: homeassistant 15.8 KiB, share 16.0 KiB, core_mosquitto 2.1 KiB, ssl 130 B.
    let x = tmp.path().join("x");
    let (code, _, err) = run(&[
        "backup",
        "extract",
        s(&img),
        "--slug",
        "ee61b670",
        "-o",
        s(&x),
        "--max-size",
        "20K",
    ]);
    assert_ne!(code, 0, "each archive fits in 20K, all together do not");
    assert!(err.contains("passes 20480 bytes"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&x)
        .map(|it| {
            it.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("lifeboat-tmp"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "temporary directories left: {left:?}");
    let y = tmp.path().join("y");
    let (code, v, err) = json(&[
        "backup",
        "extract",
        s(&img),
        "--slug",
        "ee61b670",
        "-o",
        s(&y),
        "--max-size",
        "40K",
    ]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = v["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["archive"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "homeassistant.tar.gz",
            "core_mosquitto.tar.gz",
            "share.tar.gz",
            "ssl.tar.gz"
        ],
        "reported in backup order"
    );
    for d in ["homeassistant", "core_mosquitto", "share", "ssl"] {
        assert!(y.join(d).is_dir(), "{d}");
    }
}

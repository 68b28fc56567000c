//! Issue 7, bare-metal recovery, on the fixture images (tests/fixtures/haos, `recovery` in
//! expect.json): `backup create` makes a backup that Home Assistant's own restore code
//! (`homeassistant.backup_restore.restore_backup`, driven by a `.HA_RESTORE` file) restores to
//! the same config, unencrypted and with SecureTar v2 and v3; Python `securetar` decrypts and
//! lists it; `backup check` passes it. `backup rescue` copies the card's backups off; `backup
//! report` lists every integration the fixture planted.
//!
//! The source tree is read independently with debugfs (e2fsprogs). Home Assistant's code runs
//! in the venv `../shared/rig/ha-python/setup-ha-venv.sh` builds (.ci/run calls it): at
//! `$LIFEBOAT_HA_VENV`, default `/tmp/lifeboat-ha-venv`. Without it the tests that need it are
//! skipped with a printed reason, except under CI=true, where that is a failure.

mod common;

use common::run;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOL: &str = "tests/backup/securetar_tool.py";
const HA: &str = "tests/backup/ha_restore.py";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn json(args: &[&str]) -> (i32, Value, String, String) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = run(&a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"));
    (code, v, out, err)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The Python of the Home Assistant venv, or None (skip) with the reason printed.
fn ha_python(test: &str) -> Option<PathBuf> {
    let base = std::env::var_os("LIFEBOAT_HA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/lifeboat-ha-venv"));
    let py = base.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import homeassistant.backup_restore, securetar"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    let why = format!(
        "no Home Assistant venv at {} (build it with ../shared/rig/ha-python/setup-ha-venv.sh, \
         as .ci/run does)",
        base.display()
    );
    if in_ci() {
        panic!("{test}: {why}");
    }
    eprintln!("skipped {test}: {why}");
    None
}

/// The fixture images and debugfs, or None (skip).
fn fixtures(test: &str) -> Option<PathBuf> {
    let dir = common::fixtures_or_skip(test)?;
    if !common::have("debugfs") {
        eprintln!("skipped {test}: debugfs missing (e2fsprogs)");
        return None;
    }
    Some(dir)
}

fn expect(dir: &Path, fam: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{fam}.expect.json"))).unwrap()).unwrap()
}

/// `debugfs` on the data partition of a fixture image.
fn debugfs(dir: &Path, fam: &str, cmd: &str) -> std::process::Output {
    let e = expect(dir, fam);
    let off = e["roles"]["data"]["start_lba"].as_u64().unwrap() * 512;
    let img = format!("{}?offset={off}", s(&dir.join(format!("{fam}.img"))));
    let out = Command::new("debugfs")
        .args(["-R", cmd, &img])
        .output()
        .expect("debugfs");
    assert!(out.status.success(), "debugfs {cmd}: {out:?}");
    out
}

/// The live config dir, dumped with debugfs into `dest/homeassistant`.
fn dump_config(dir: &Path, fam: &str, dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    debugfs(
        dir,
        fam,
        &format!("rdump /supervisor/homeassistant {}", s(dest)),
    );
    dest.join("homeassistant")
}

fn tool(py: &Path, script: &str, args: &[&str], cwd: Option<&Path>) -> String {
    let mut c = Command::new(py);
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().expect("running python");
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// {relative path: [kind, mode, sha256 or link target]}.
fn manifest(py: &Path, d: &Path) -> Map<String, Value> {
    serde_json::from_str::<Value>(&tool(py, TOOL, &["manifest", s(d)], None))
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

/// Drop `paths` and everything under them.
fn without(m: &Map<String, Value>, paths: &[String]) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| {
            !paths
                .iter()
                .any(|p| *k == p || k.starts_with(&format!("{p}/")))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn pwfile(dir: &Path, pw: &str) -> PathBuf {
    let p = dir.join("pw.txt");
    std::fs::write(&p, format!("{pw}\n")).unwrap();
    p
}

/// The 16-byte root salt of each v3 inner archive of a backup.
fn root_salts(backup: &Path) -> BTreeSet<Vec<u8>> {
    let bytes = std::fs::read(backup).unwrap();
    let members = lifeboat::backup::tarscan::list(&bytes, 100).unwrap();
    members
        .iter()
        .filter(|m| m.name.ends_with(".tar.gz"))
        .map(|m| {
            let o = m.data_offset as usize;
            assert_eq!(&bytes[o..o + 10], b"SecureTar\x03", "{}", m.name);
            bytes[o + 32..o + 48].to_vec()
        })
        .collect()
}

#[test]
fn created_backup_is_restored_by_home_assistant() {
    let test = "created_backup_is_restored_by_home_assistant";
    let Some(dir) = fixtures(test) else { return };
    let Some(py) = ha_python(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = dir.join("rpi4.img");
    let exp = expect(&dir, "rpi4");
    let r = &exp["recovery"];
    let excluded = strs(&r["excluded"]);
    let key = r["backup_key"].as_str().unwrap();

    // The source, read independently of lifeboat; minus what HA's rules leave out.
    let src = dump_config(&dir, "rpi4", &tmp.path().join("src"));
    let want = without(&manifest(&py, &src), &excluded);
    for (link, target) in r["symlinks"].as_object().unwrap() {
        assert_eq!(want[link.as_str()][0], "link", "{link}");
        assert_eq!(want[link.as_str()][2], *target, "{link}");
    }
    let hl = strs(&r["hard_links"][0]);
    assert_eq!(want[hl[0].as_str()][2], want[hl[1].as_str()][2]);
    // Home Assistant Core's restore copies with shutil.copytree(symlinks=False,
    // ignore_dangling_symlinks=True): a relative link is tested against the working
    // directory (empty here), so it is dropped, as is a dangling absolute one; and it keeps
    // the target's own backups/ (any entry named backups is skipped).
    let want_core: Map<String, Value> = without(&want, &["backups".into()])
        .into_iter()
        .filter(|(_, v)| v[0] != "link")
        .collect();

    let kit = tmp.path().join("home_assistant_backup_emergency_kit.txt");
    std::fs::write(
        &kit,
        format!("Home Assistant Backup Emergency Kit\n\nEncryption key:\n{key}\n"),
    )
    .unwrap();
    let cases: [(&str, Option<u8>, &[&str]); 3] = [
        ("plain", None, &[]),
        ("v2", Some(2), &["--encrypt", "--emergency-kit", s(&kit)]),
        (
            "v3",
            Some(3),
            &["--encrypt", "--securetar", "3", "--key-from-card"],
        ),
    ];
    for (name, version, extra) in cases {
        let out = tmp.path().join(format!("{name}.tar"));
        let mut args = vec!["backup", "create", s(&img), "-o", s(&out), "--no-prompt"];
        args.extend_from_slice(extra);
        let (code, c, stdout, stderr) = json(&args);
        assert_eq!(code, 0, "{name}: {c:#}\n{stderr}");
        assert!(
            !stdout.contains(key) && !stderr.contains(key),
            "{name}: the key was printed"
        );
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(c["verification"]["verdict"], "ok", "{name}: {c:#}");
        assert_eq!(c["type"], "full");
        assert_eq!(c["protected"], version.is_some());
        assert_eq!(
            c["encryption"],
            version.map(Value::from).unwrap_or(Value::Null)
        );
        assert_eq!(c["homeassistant_version"], exp["core_version"]);
        assert_eq!(c["supervisor_version"], exp["supervisor_version"]);
        let names: Vec<&str> = c["archives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        let mut want_names = vec!["homeassistant.tar.gz".to_string()];
        want_names.extend(
            strs(&r["addon_archives"])
                .iter()
                .map(|a| format!("{a}.tar.gz")),
        );
        want_names.extend(strs(&r["folders"]).iter().map(|f| format!("{f}.tar.gz")));
        assert_eq!(names, want_names, "{name}");
        // Exactly what HA's rules leave out, and the add-on's own rule.
        let got_ex: BTreeSet<String> = c["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["archive"].as_str().unwrap(),
                    e["path"].as_str().unwrap()
                )
            })
            .collect();
        let mut want_ex: BTreeSet<String> = excluded
            .iter()
            .map(|p| format!("homeassistant.tar.gz:data/{p}"))
            .collect();
        for (slug, paths) in r["addon_excluded"].as_object().unwrap() {
            for p in strs(paths) {
                want_ex.insert(format!("{slug}.tar.gz:{p}"));
            }
        }
        assert_eq!(got_ex, want_ex, "{name}");
        let db = &c["database"];
        assert_eq!(db["included"], true);
        assert_eq!(db["check"]["integrity"], r["database"]["integrity"]);
        assert_eq!(
            db["check"]["states"], r["database"]["states"],
            "rows in the -wal too"
        );
        assert!(db["wal_bytes"].as_u64().unwrap() > 0);
        let left: Vec<&str> = c["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["item"].as_str().unwrap())
            .collect();
        for f in r["left_out_folders"].as_object().unwrap().keys() {
            assert!(left.contains(&f.as_str()), "{name}: {left:?}");
        }
        assert!(left.contains(&"network storage"), "{left:?}");

        // The traps: ./backup.json with its "./", inner archives without one, `compressed`.
        let bytes = std::fs::read(&out).unwrap();
        let members: Vec<String> = lifeboat::backup::tarscan::list(&bytes, 100)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(members.last().map(String::as_str), Some("./backup.json"));
        assert_eq!(members[..members.len() - 1], want_names[..], "{name}");
        let (_, l, _, _) = json(&["backup", "list", s(&out)]);
        assert_eq!(l["backups"][0]["backup"]["compressed"], true);
        assert_eq!(l["backups"][0]["backup"]["protected"], version.is_some());

        // lifeboat's own check, with the key.
        let pw = version.map(|_| pwfile(tmp.path(), key));
        let mut ca = vec!["backup", "check", s(&out), "--no-prompt"];
        if let Some(p) = &pw {
            ca.extend(["--password-file", s(p)]);
        }
        let (code, chk, _, _) = json(&ca);
        assert_eq!((code, chk["verdict"].as_str()), (0, Some("ok")), "{chk:#}");
        if version == Some(3) {
            assert_eq!(
                root_salts(&out).len(),
                1,
                "one root salt for the whole backup"
            );
        }

        // Python securetar decrypts every archive with one key context (SecureTarArchive),
        // and tarfile ("tar" filter) lists and extracts them.
        let pyout = tmp.path().join(format!("py-{name}"));
        let pyargs = [
            s(&out),
            if version.is_some() { key } else { "-" },
            s(&pyout),
        ];
        assert_eq!(
            tool(
                &py,
                TOOL,
                &["decrypt", pyargs[0], pyargs[1], pyargs[2]],
                None
            )
            .trim(),
            "ok"
        );
        let got = manifest(&py, &pyout.join("homeassistant/data"));
        assert_eq!(
            got, want,
            "{name}: the backup's data/ differs from the card"
        );
        let mosq = pyout.join("core_mosquitto");
        let aj: Value =
            serde_json::from_slice(&std::fs::read(mosq.join("addon.json")).unwrap()).unwrap();
        assert_eq!(aj["user"]["version"], "6.5.1");
        assert_eq!(aj["system"]["name"], "Mosquitto broker");
        assert!(matches!(aj["state"].as_str(), Some("started" | "stopped")));
        assert!(mosq.join("data/options.json").is_file());
        assert!(mosq.join("data/mosquitto.db").is_file());
        assert!(!mosq.join("data/mosquitto.log").exists(), "backup_exclude");
        for slug in strs(&r["addon_apparmor"]) {
            assert!(pyout.join(&slug).join("apparmor.txt").is_file(), "{slug}");
        }
        assert!(!pyout.join("core_zwave_js/apparmor.txt").exists());
        assert_eq!(
            std::fs::read_link(pyout.join("share/acl_link")).unwrap(),
            Path::new("mosquitto/acl.conf")
        );
        assert!(pyout.join("a0d7b954_nodered/config/flows.json").is_file());

        // Home Assistant's own restore, as at startup: .HA_RESTORE in a config dir that holds
        // something else (it must go) and a backups/ dir (it must stay).
        let cfg = tmp.path().join(format!("cfg-{name}"));
        std::fs::create_dir_all(cfg.join("backups")).unwrap();
        std::fs::write(cfg.join("backups/keep.tar"), b"kept").unwrap();
        std::fs::write(cfg.join("old.yaml"), b"gone").unwrap();
        let cwd = tmp.path().join(format!("cwd-{name}"));
        std::fs::create_dir_all(&cwd).unwrap();
        let res: Value = serde_json::from_str(
            tool(
                &py,
                HA,
                &[
                    "restore",
                    s(&out),
                    if version.is_some() { key } else { "-" },
                    s(&cfg),
                ],
                Some(&cwd),
            )
            .lines()
            .last()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(res["restored"], true, "{name}: {res}");
        assert_eq!(res["result"]["success"], true, "{name}: {res}");
        assert!(!cfg.join("old.yaml").exists());
        assert_eq!(
            std::fs::read(cfg.join("backups/keep.tar")).unwrap(),
            b"kept"
        );
        let restored = without(&manifest(&py, &cfg), &["backups".into()]);
        assert_eq!(
            restored, want_core,
            "{name}: Home Assistant restored a different config"
        );
    }
}

#[test]
fn create_choices_refusals_and_layouts() {
    let test = "create_choices_refusals_and_layouts";
    let Some(dir) = fixtures(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = dir.join("rpi4.img");
    let out = tmp.path().join("part.tar");
    let (code, c, _, err) = json(&[
        "backup",
        "create",
        s(&img),
        "-o",
        s(&out),
        "--partial",
        "homeassistant,share",
        "--exclude-database",
        "--name",
        "Only config",
    ]);
    assert_eq!(code, 0, "{c:#}\n{err}");
    assert_eq!(c["type"], "partial");
    assert_eq!(c["name"], "Only config");
    let names: Vec<&str> = c["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["homeassistant.tar.gz", "share.tar.gz"]);
    assert_eq!(c["database"]["included"], false);
    let ex: Vec<&str> = c["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        ex.contains(&"data/home-assistant_v2.db") && ex.contains(&"data/home-assistant_v2.db-wal")
    );
    let (code, l, _, _) = json(&["backup", "list", s(&out)]);
    assert_eq!(code, 0);
    let b = &l["backups"][0]["backup"];
    assert_eq!(b["folders"], serde_json::json!(["share"]));
    assert_eq!(b["addons"], serde_json::json!([]));
    let x = tmp.path().join("x");
    assert_eq!(run(&["backup", "extract", s(&out), "-o", s(&x)]).0, 0);
    assert!(x.join("homeassistant/data/configuration.yaml").is_file());
    assert!(!x.join("homeassistant/data/home-assistant_v2.db").exists());
    assert!(x.join("share/mosquitto/acl.conf").is_file());
    let bj: Value = serde_json::from_slice(&std::fs::read(x.join("backup.json")).unwrap()).unwrap();
    assert_eq!(bj["homeassistant"]["exclude_database"], true);
    assert_eq!(bj["compressed"], true);
    assert_eq!(
        bj["extra"]["lifeboat"]["network_mounts"][0]["name"],
        "nas_media"
    );
    assert!(
        bj["extra"]["lifeboat"]["network_mounts"][0]
            .get("password")
            .is_none()
    );

    // Never overwrite without --force.
    let (code, _, err) = run(&["backup", "create", s(&img), "-o", s(&out)]);
    assert_eq!(code, 1);
    assert!(err.contains("exists; add --force"), "{err}");
    assert_eq!(
        run(&[
            "--quiet",
            "backup",
            "create",
            s(&img),
            "-o",
            s(&out),
            "--force"
        ])
        .0,
        0
    );
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Refusals.
    let o2 = tmp.path().join("o2.tar");
    let (code, _, err) = run(&[
        "backup",
        "create",
        s(&img),
        "-o",
        s(&o2),
        "--partial",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--partial nope") && err.contains("core_mosquitto"),
        "{err}"
    );
    let pf = pwfile(tmp.path(), "x");
    let (code, _, err) = run(&[
        "backup",
        "create",
        s(&img),
        "-o",
        s(&o2),
        "--password-file",
        s(&pf),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("without --encrypt"), "{err}");
    let (code, _, err) = run(&[
        "backup",
        "create",
        s(&img),
        "-o",
        s(&o2),
        "--encrypt",
        "--no-prompt",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--emergency-kit"), "{err}");
    let (code, _, err) = run(&["backup", "create", s(&img), "-o", s(&o2), "--key-from-card"]);
    assert_eq!(code, 2, "clap: --key-from-card needs --encrypt: {err}");
    let (code, _, err) = run(&[
        "backup",
        "create",
        s(&dir.join("not-haos.img")),
        "-o",
        s(&o2),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not a Home Assistant OS disk"), "{err}");
    assert!(!o2.exists());

    // Every data-partition label and the external data disk.
    for fam in [
        "rpi4-data-old",
        "rpi4-data-dis",
        "rpi4-data-fail",
        "external-data",
        "rpi5",
    ] {
        let o = tmp.path().join(format!("{fam}.tar"));
        let (code, c, _, err) = json(&[
            "backup",
            "create",
            s(&dir.join(format!("{fam}.img"))),
            "-o",
            s(&o),
        ]);
        assert_eq!(code, 0, "{fam}: {err}");
        assert_eq!(c["verification"]["verdict"], "ok", "{fam}: {c:#}");
        assert_eq!(c["type"], "full", "{fam}");
    }

    // The pre-2026.06 layout (addons.json, addons/data/<slug>) and a data partition on its own.
    let n2 = tmp.path().join("n2.tar");
    let (code, c, _, err) = json(&[
        "backup",
        "create",
        s(&dir.join("odroid-n2.img")),
        "-o",
        s(&n2),
    ]);
    assert_eq!(code, 0, "{c:#}\n{err}");
    assert_eq!(c["verification"]["verdict"], "ok", "{c:#}");
    let slugs: BTreeSet<&str> = c["addons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    let exp = expect(&dir, "odroid-n2");
    let want: BTreeSet<&str> = exp["addons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, want);
    let e4 = expect(&dir, "rpi4");
    let (start, size) = (
        e4["roles"]["data"]["start_lba"].as_u64().unwrap() as usize * 512,
        e4["roles"]["data"]["size_lba"].as_u64().unwrap() as usize * 512,
    );
    let part = tmp.path().join("data.img");
    let mut buf = vec![0u8; size];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&img).unwrap(),
        &mut buf,
        start as u64,
    )
    .unwrap();
    std::fs::write(&part, &buf).unwrap();
    let p = tmp.path().join("from-part.tar");
    let (code, c, _, err) = json(&["backup", "create", s(&part), "-o", s(&p), "--no-verify"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(c["partition"], Value::Null);
    assert_eq!(c["verification"], Value::Null);
    assert_eq!(c["archives"].as_array().unwrap().len(), 7);
}

#[test]
fn damaged_database_is_reported() {
    let test = "damaged_database_is_reported";
    let Some(dir) = fixtures(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exp = expect(&dir, "rpi4");
    // Page 2 of the database (schema_changes): the -wal only holds a newer page 3.
    let bmap = debugfs(
        &dir,
        "rpi4",
        "bmap /supervisor/homeassistant/home-assistant_v2.db 1",
    );
    let block: usize = String::from_utf8_lossy(&bmap.stdout)
        .trim()
        .parse()
        .unwrap();
    let off = exp["roles"]["data"]["start_lba"].as_u64().unwrap() as usize * 512 + block * 4096;
    let img = tmp.path().join("damaged.img");
    let st = Command::new("cp")
        .args(["--sparse=always", s(&dir.join("rpi4.img")), s(&img)])
        .status()
        .unwrap();
    assert!(st.success());
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x5a; 3992], (off + 8) as u64).unwrap();
    drop(f);
    let out = tmp.path().join("d.tar");
    let (code, c, _, err) = json(&["backup", "create", s(&img), "-o", s(&out)]);
    assert_eq!(code, 0, "{err}");
    let db = &c["database"];
    assert_ne!(db["check"]["integrity"], "ok", "{db:#}");
    assert_eq!(db["included"], true);
    assert!(
        c["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("--exclude-database")),
        "{c:#}"
    );
    let (code, out_text, _) = run(&["backup", "create", s(&img), "-o", s(&out), "--force"]);
    assert_eq!(code, 0);
    assert!(
        out_text.contains("DAMAGED") || out_text.contains("does not open"),
        "{out_text}"
    );
    let (code, c, _, _) = json(&[
        "backup",
        "create",
        s(&img),
        "-o",
        s(&out),
        "--force",
        "--exclude-database",
    ]);
    assert_eq!(code, 0);
    assert_eq!(c["database"]["included"], false);
    assert_eq!(c["database"]["check"], Value::Null);
}

#[test]
fn rescue_copies_checks_and_names_the_best() {
    let test = "rescue_copies_checks_and_names_the_best";
    let Some(dir) = fixtures(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exp = expect(&dir, "rpi4");
    let backups = exp["backups"].as_array().unwrap();
    let pw = backups.iter().find_map(|b| b["password"].as_str()).unwrap();
    let pf = pwfile(tmp.path(), pw);
    let out = tmp.path().join("rescued");
    let img = dir.join("rpi4.img");
    let (code, r, _, err) = json(&[
        "backup",
        "rescue",
        s(&img),
        "-o",
        s(&out),
        "--password-file",
        s(&pf),
    ]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    let got = r["backups"].as_array().unwrap();
    assert_eq!(got.len(), backups.len());
    // Newest first.
    let dates: Vec<i64> = got
        .iter()
        .map(|b| {
            lifeboat::backup::isotime::parse_micros(b["backup"]["date"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");
    for b in got {
        assert_eq!(b["status"], "ok", "{b:#}");
        let e = backups
            .iter()
            .find(|e| format!("/{}", e["path"].as_str().unwrap()) == b["path"].as_str().unwrap())
            .unwrap();
        let copy = PathBuf::from(b["output"].as_str().unwrap());
        let md = std::fs::metadata(&copy).unwrap();
        assert_eq!(md.len(), e["size"].as_u64().unwrap());
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
    }
    // The copies are the card's bytes.
    let first = &got[0];
    let dumped = tmp.path().join("dumped.tar");
    debugfs(
        &dir,
        "rpi4",
        &format!("dump {} {}", first["path"].as_str().unwrap(), s(&dumped)),
    );
    assert_eq!(
        std::fs::read(&dumped).unwrap(),
        std::fs::read(first["output"].as_str().unwrap()).unwrap()
    );
    // The best: the newest that passed and holds Home Assistant.
    let newest_ha = got
        .iter()
        .find(|b| !b["backup"]["homeassistant_version"].is_null())
        .unwrap();
    assert_eq!(r["best"], newest_ha["path"]);
    // Again, without --force: nothing replaced (exit 4), and says how.
    let (code, text, _) = run(&["backup", "rescue", s(&img), "-o", s(&out), "--no-prompt"]);
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("--force"), "{text}");
    // No password: the encrypted one is copied but not verified (exit 5).
    let out2 = tmp.path().join("r2");
    let (code, r, _, _) = json(&["backup", "rescue", s(&img), "-o", s(&out2), "--no-prompt"]);
    assert_eq!(code, 5, "{r:#}");
    let prot = r["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backup"]["protected"] == true)
        .unwrap();
    assert_eq!(prot["status"], "unverified");
    assert!(Path::new(prot["output"].as_str().unwrap()).is_file());
    // The 2025 layout with a pre-2024.02 backup (a "." member).
    let (code, r, _, _) = json(&[
        "backup",
        "rescue",
        s(&dir.join("odroid-n2.img")),
        "-o",
        s(&tmp.path().join("n2")),
    ]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["backups"].as_array().unwrap().len(), 2);
}

fn attention(v: &Value) -> BTreeSet<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["category"].as_str().unwrap().to_string(),
                i["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn report_lists_every_integration_needing_attention() {
    let test = "report_lists_every_integration_needing_attention";
    let Some(dir) = fixtures(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    for fam in ["rpi4", "odroid-n2"] {
        let exp = expect(&dir, fam);
        let want_items = &exp["recovery"]["attention"];
        let img = dir.join(format!("{fam}.img"));
        let (code, r, _, err) = json(&["backup", "report", s(&img)]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            attention(&r["items"]),
            attention(want_items),
            "{fam}: {r:#}"
        );
        for w in want_items.as_array().unwrap() {
            let g = r["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["category"] == w["category"] && i["subject"] == w["subject"])
                .unwrap();
            if let Some(p) = w.get("path") {
                assert!(g["paths"].as_array().unwrap().contains(p), "{fam}: {g:#}");
            }
            if let Some(c) = w.get("needs_cloud") {
                assert_eq!(&g["needs_cloud"], c, "{fam}: {g:#}");
            }
        }
        let (code, md, _) = run(&["backup", "report", "--markdown", s(&img)]);
        assert_eq!(code, 0);
        assert_eq!(
            md.matches("\n- [ ] ").count(),
            want_items.as_array().unwrap().len(),
            "{md}"
        );
        let (code, text, _) = run(&["backup", "report", s(&img)]);
        assert_eq!(code, 0);
        assert!(
            text.contains("WHAT") && text.contains("What to do:"),
            "{text}"
        );
    }
    // From a backup made by `create` (encrypted): the same list, network mounts included.
    let exp = expect(&dir, "rpi4");
    let key = exp["recovery"]["backup_key"].as_str().unwrap();
    let b = tmp.path().join("b.tar");
    let (code, _, err) = run(&[
        "--quiet",
        "backup",
        "create",
        s(&dir.join("rpi4.img")),
        "-o",
        s(&b),
        "--encrypt",
        "--key-from-card",
        "--no-verify",
    ]);
    assert_eq!(code, 0, "{err}");
    let pf = pwfile(tmp.path(), key);
    let (code, r, out, _) = json(&["backup", "report", s(&b), "--password-file", s(&pf)]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["kind"], "backup");
    assert_eq!(
        attention(&r["items"]),
        attention(&exp["recovery"]["attention"]),
        "{r:#}"
    );
    assert!(!out.contains(key));
    // Without the key: it says how to give one.
    let (code, _, err) = run(&["backup", "report", s(&b), "--no-prompt"]);
    assert_eq!(code, 1);
    assert!(err.contains("--password-file"), "{err}");
}

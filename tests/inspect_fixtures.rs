//! `lifeboat inspect --json` on fixture images of every HAOS layout family (built by
//! tests/fixtures/haos/mkhaos.sh with real tools), checked field by field against the values
//! the builder used (`<family>.expect.json`).

mod common;

use serde_json::Value;
use std::path::Path;

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

/// Every image the builder made.
fn families(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".expect.json"))
                .map(String::from)
        })
        .collect();
    v.sort();
    v
}

fn check_family(dir: &Path, fam: &str) {
    let exp: Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{fam}.expect.json"))).unwrap())
            .unwrap();
    let img = dir.join(format!("{fam}.img"));
    let (code, got) = common::inspect_json(&img);
    let ctx = format!("{fam}: {}", serde_json::to_string_pretty(&got).unwrap());

    // Verdict and exit status.
    let (verdict, want_code) = match s(&exp["kind"]) {
        Some("haos_boot_disk") => ("haos", 0),
        Some("haos_external_data_disk") => ("external_data_disk", 0),
        Some("not_haos") => ("not_haos", 3),
        k => panic!("{fam}: unknown kind {k:?}"),
    };
    assert_eq!(got["verdict"], verdict, "{ctx}");
    assert_eq!(code, want_code, "{ctx}");
    assert_eq!(got["schema_version"], 1);
    assert_eq!(got["source"]["size"], exp["image_bytes"], "{ctx}");

    // Table kind and every partition's place, name, PARTUUID and filesystem.
    assert_eq!(got["table"]["kind"], exp["table"], "{ctx}");
    let parts = got["partitions"].as_array().unwrap();
    for ep in exp["partitions"].as_array().unwrap() {
        let n = &ep["number"];
        let gp = parts
            .iter()
            .find(|p| &p["number"] == n)
            .unwrap_or_else(|| panic!("{fam}: partition {n} missing: {ctx}"));
        assert_eq!(gp["start_lba"], ep["start_lba"], "{fam} p{n}");
        assert_eq!(gp["size_lba"], ep["size_lba"], "{fam} p{n}");
        if let Some(name) = s(&ep["name"]) {
            assert_eq!(gp["name"], name, "{fam} p{n}");
        }
        if let Some(u) = s(&ep["uuid"]) {
            assert_eq!(
                s(&gp["partuuid"]).map(str::to_lowercase),
                Some(u.to_lowercase()),
                "{fam} p{n}"
            );
        }
        if let Some(role) = s(&ep["role"])
            && verdict != "not_haos"
        {
            // The builder calls the external disk's partition "data"; we name it apart.
            let role = if verdict == "external_data_disk" && role == "data" {
                "data_external"
            } else {
                role
            };
            assert_eq!(gp["role"], role, "{fam} p{n} role");
        }
        match s(&ep["fs"]) {
            Some(fs) => {
                assert_eq!(gp["fs"]["type"], fs, "{fam} p{n} fs");
                if let Some(l) = s(&ep["fs_label"]) {
                    let gl = s(&gp["fs"]["label"]).unwrap_or("");
                    assert!(gl.eq_ignore_ascii_case(l), "{fam} p{n} label {gl} != {l}");
                }
                if let Some(u) = s(&ep["fs_uuid"]) {
                    assert_eq!(
                        s(&gp["fs"]["uuid"]).map(str::to_lowercase),
                        Some(u.to_lowercase()),
                        "{fam} p{n} fs uuid"
                    );
                }
            }
            None => assert!(gp["fs"].is_null(), "{fam} p{n}: expected no fs"),
        }
    }
    if verdict == "not_haos" {
        assert!(!got["reasons"].as_array().unwrap().is_empty(), "{ctx}");
        return;
    }
    if let Some(mbr) = exp.get("mbr")
        && let Some(entries) = mbr["entries"].as_array()
    {
        let got_e = got["table"]["mbr_entries"].as_array().unwrap();
        assert_eq!(got_e.len(), entries.len(), "{fam} mbr entries");
        for (g, e) in got_e.iter().zip(entries) {
            assert_eq!(
                format!("0x{:02x}", g["type_byte"].as_u64().unwrap()),
                e["type"].as_str().unwrap(),
                "{fam}"
            );
            assert_eq!(g["start_lba"], e["start_lba"], "{fam}");
            assert_eq!(g["size_lba"], e["size_lba"], "{fam}");
        }
    }

    // Board, boot loader, slots.
    if let Some(b) = s(&exp["board"]) {
        assert_eq!(got["board"]["id"], b, "{ctx}");
    }
    if let Some(bl) = s(&exp["bootloader"]) {
        let want = match bl {
            "uboot" => "u-boot",
            "tryboot" => "rpi-tryboot",
            o => o,
        };
        assert_eq!(got["boot"]["bootloader"], want, "{ctx}");
    }
    if let Some(a) = s(&exp["active_slot"]) {
        assert_eq!(got["active_slot"]["slot"], a, "{ctx}");
    }
    if let Some(vers) = exp["os_versions"].as_object() {
        for (slot, v) in vers {
            let gs = got["slots"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["slot"] == slot.as_str())
                .unwrap_or_else(|| panic!("{fam}: slot {slot} missing"));
            assert_eq!(&gs["version"], v, "{fam} slot {slot}: {ctx}");
            if !v.is_null()
                && let Some(src) = s(&exp["os_version_source"])
            {
                assert!(
                    s(&gs["version_source"]).is_some_and(|g| g.starts_with(src)),
                    "{fam} slot {slot} version source: {ctx}"
                );
            }
        }
    }
    if !exp["os_version"].is_null() {
        assert_eq!(got["os_version"], exp["os_version"], "{ctx}");
    }
    if !exp["machine_id"].is_null() {
        assert_eq!(got["machine_id"], exp["machine_id"], "{ctx}");
    }

    // Data partition contents.
    let data = &got["data"];
    if let Some(l) = s(&exp["data_fs_label"]) {
        assert_eq!(data["label"], l, "{ctx}");
    }
    if !exp["core_version"].is_null() {
        assert_eq!(data["core_version"], exp["core_version"], "{ctx}");
        assert_eq!(
            data["supervisor_version"], exp["supervisor_version"],
            "{ctx}"
        );
        let want_file = s(&exp["addons_file"]).and_then(|p| p.rsplit('/').next());
        assert_eq!(s(&data["addons_file"]), want_file, "{ctx}");
        let mut want: Vec<(String, String)> = exp["addons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["slug"].as_str().unwrap().into(),
                    a["version"].as_str().unwrap().into(),
                )
            })
            .collect();
        want.sort();
        let gotv: Vec<(String, String)> = data["addons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["slug"].as_str().unwrap().into(),
                    a["version"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(gotv, want, "{fam} add-ons");
    }
    if let Some(backups) = exp["backups"].as_array() {
        let gb = data["backups"].as_array().expect("backups listed");
        assert_eq!(gb.len(), backups.len(), "{fam} backups: {ctx}");
        for eb in backups {
            let path = format!("/{}", eb["path"].as_str().unwrap());
            let g = gb
                .iter()
                .find(|b| b["path"] == path.as_str())
                .unwrap_or_else(|| panic!("{fam}: backup {path} not listed"));
            assert_eq!(g["file_size"], eb["size"], "{fam} {path}");
            let m = &g["backup"];
            for k in ["name", "slug", "date", "type", "protected"] {
                assert_eq!(m[k], eb[k], "{fam} {path} {k}");
            }
            assert_eq!(
                m["homeassistant_version"], eb["homeassistant_version"],
                "{fam} {path}"
            );
        }
    }
}

#[test]
fn inspect_every_layout_family() {
    let Some(dir) = common::fixtures_or_skip("inspect_every_layout_family") else {
        return;
    };
    let fams = families(&dir);
    for want in [
        "rpi4",
        "rpi5",
        "x86",
        "green",
        "odroid-m1",
        "odroid-n2",
        "external-data",
        "not-haos",
    ] {
        assert!(
            fams.iter().any(|f| f == want),
            "fixture family {want} not built"
        );
    }
    for fam in &fams {
        check_family(&dir, fam);
    }
}

#[test]
fn inspect_text_names_board_versions_and_backups() {
    let Some(dir) = common::fixtures_or_skip("inspect_text") else {
        return;
    };
    let (code, out, err) = common::run(&["inspect", dir.join("rpi4.img").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "Home Assistant OS: yes",
        "rpi4-64",
        "Active slot: B",
        "Slot A: OS 16.3",
        "Slot B: OS 17.1",
        "Home Assistant Core: 2026.8.3",
        "Supervisor: 2026.08.1",
        "core_mosquitto 6.5.1",
        "password-protected",
    ] {
        assert!(out.contains(want), "missing '{want}' in:\n{out}");
    }
    let (code, out, _) = common::run(&["inspect", dir.join("not-haos.img").to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(out.contains("Home Assistant OS: no"), "{out}");
    assert!(out.contains("because:"), "{out}");
}

//! `lifeboat health --from-raw FILE --type ext-csd` on an EXT_CSD dumped from a real eMMC 5.1
//! device (tests/fixtures/emmc/README.md says where it comes from), and on worn variants made
//! from it by changing only the health bytes (267 PRE_EOL_INFO, 268/269 life time estimates):
//! the decoded fields, the reasons in words, the verdict and the exit bit mask.

mod common;

use std::path::{Path, PathBuf};

const REAL: &str = "tests/fixtures/emmc/ext_csd-rev8-64gb.hex";

fn health_json(file: &Path) -> (i32, serde_json::Value) {
    let (code, out, err) = common::run(&[
        "health",
        "--json",
        "--from-raw",
        &file.to_string_lossy(),
        "--type",
        "ext-csd",
    ]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

/// The real dump with bytes `at` replaced by `val`, written to a temp file.
fn variant(dir: &Path, name: &str, edits: &[(usize, u8)]) -> PathBuf {
    let hex = std::fs::read_to_string(REAL).unwrap();
    let mut b: Vec<u8> = (0..hex.trim().len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    for &(at, val) in edits {
        b[at] = val;
    }
    let text: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let p = dir.join(name);
    std::fs::write(&p, text + "\n").unwrap();
    p
}

#[test]
fn a_real_emmc_ext_csd_decodes() {
    let (code, v) = health_json(Path::new(REAL));
    assert_eq!(code, 0, "{v}");
    let d = &v["devices"][0];
    assert_eq!(d["verdict"], "pass", "{d}");
    let e = &d["emmc"];
    assert_eq!(e["ext_csd_revision"], 8);
    assert_eq!(e["ext_csd"]["emmc_version"], "5.1");
    // SEC_COUNT 0x0747c000 sectors.
    assert_eq!(e["ext_csd"]["capacity_bytes"], 122_142_720u64 * 512);
    assert_eq!(e["pre_eol"], 1);
    assert_eq!(e["life_time_a"], 1);
    assert_eq!(e["life_time_b"], 0);
    assert_eq!(e["life_time_a_text"], "0–10% of rated life used");
    assert_eq!(e["life_time_b_text"], "not defined");
    assert!(e["ext_csd"]["vendor_report"].is_null());
    let reasons = d["reasons"].to_string();
    assert!(reasons.contains("pre-EOL information: normal"), "{reasons}");
}

#[test]
fn worn_variants_of_the_real_dump_warn_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    // Main area 80–90 % used, reserved blocks 80 % consumed: a warning each.
    let warn = variant(dir.path(), "warn.hex", &[(267, 2), (269, 0x09)]);
    let (code, v) = health_json(&warn);
    let d = &v["devices"][0];
    assert_eq!(d["verdict"], "warn", "{d}");
    assert_eq!(d["emmc"]["life_time_b"], 9);
    assert_ne!(code & 16, 0, "warn bit: {code}");
    assert_eq!(code & 8, 0, "no fail bit: {code}");

    // Past its rated life (0x0B) and pre-EOL urgent (3): fail.
    let fail = variant(dir.path(), "fail.hex", &[(267, 3), (268, 0x0B)]);
    let (code, v) = health_json(&fail);
    let d = &v["devices"][0];
    assert_eq!(d["verdict"], "fail", "{d}");
    assert_ne!(code & 8, 0, "fail bit: {code}");
    let reasons = d["reasons"].to_string();
    assert!(reasons.contains("urgent"), "{reasons}");

    // A revision without the health fields (eMMC 4.5): no estimates, verdict unknown.
    let old = variant(dir.path(), "rev6.hex", &[(192, 6)]);
    let (_, v) = health_json(&old);
    let d = &v["devices"][0];
    assert!(d["emmc"]["life_time_a"].is_null(), "{d}");
    assert_eq!(d["emmc"]["ext_csd"]["emmc_version"], "4.5");
    assert_eq!(d["verdict"], "unknown", "{d}");
}

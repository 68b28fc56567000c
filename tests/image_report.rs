//! `lifeboat report-image FILE.manifest.json -o FILE.svg`: the read-profile picture drawn from a
//! saved manifest is well-formed XML (checked with Python's XML parser) with the partitions and
//! the bad ranges in it, equals what `image --report` drew, is written through a temporary
//! name, refuses to overwrite without `--force`, and explains a bad manifest. With root and
//! the fault rig, a real device with unreadable sectors is imaged and its bad ranges drawn.

mod common;
mod faultdev;

use common::{fixtures_or_skip, have, run};
use lifeboat::verify::manifest::Manifest;
use std::path::Path;
use std::process::Command;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lifeboat-report-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Parse `svg` with Python's XML parser: the root must be an SVG element. Returns the number
/// of elements, or None when python3 is missing.
fn xml_elements(svg: &Path) -> Option<usize> {
    if !have("python3") {
        eprintln!("python3 missing: XML well-formedness not checked");
        return None;
    }
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as ET\n\
             r = ET.parse(sys.argv[1]).getroot()\n\
             assert r.tag == '{http://www.w3.org/2000/svg}svg', r.tag\n\
             print(sum(1 for _ in r.iter()))",
        ])
        .arg(svg)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}: not well-formed SVG: {}",
        svg.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8_lossy(&o.stdout).trim().parse().unwrap())
}

#[test]
fn report_image_draws_a_saved_manifest() {
    let Some(fx) = fixtures_or_skip("report_image_draws_a_saved_manifest") else {
        return;
    };
    let d = tmp();
    let srcp = fx.join("rpi4.img");
    let out = d.path().join("r.img");
    let direct_svg = d.path().join("direct.svg");
    let (code, _, e) = run(&[
        "image",
        "-q",
        s(&srcp),
        "-o",
        s(&out),
        "--report",
        s(&direct_svg),
    ]);
    assert_eq!(code, 0, "{e}");
    let manifest = d.path().join("r.img.manifest.json");

    // The same picture as `image --report`.
    let svg = d.path().join("r.svg");
    let (code, o, e) = run(&["report-image", s(&manifest), "-o", s(&svg)]);
    assert_eq!(code, 0, "{e}");
    assert!(
        o.contains("r.svg") && o.contains("every sector read"),
        "{o}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(text, std::fs::read_to_string(&direct_svg).unwrap());
    for label in ["p1 boot", "p6 bootstate", "p8 data"] {
        assert!(text.contains(label), "{label} missing");
    }
    assert!(xml_elements(&svg).is_none_or(|n| n > 20));
    assert!(!d.path().join("r.svg.tmp").exists(), "temporary file left");

    // No overwrite without --force; with it, the file is replaced.
    std::fs::write(&svg, "keep me").unwrap();
    let (code, _, e) = run(&["report-image", s(&manifest), "-o", s(&svg)]);
    assert_ne!(code, 0);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(&svg).unwrap(), "keep me");
    let (code, _, e) = run(&["report-image", s(&manifest), "-o", s(&svg), "--force"]);
    assert_eq!(code, 0, "{e}");
    assert_eq!(std::fs::read_to_string(&svg).unwrap(), text);
    // Never over the manifest itself, even with --force.
    let (code, _, e) = run(&["report-image", s(&manifest), "-o", s(&manifest), "--force"]);
    assert_ne!(code, 0);
    assert!(e.contains("manifest itself"), "{e}");
    assert!(Manifest::load(&manifest).is_ok());

    // A manifest with bad ranges (as a rescue of a failing card writes it): the bad ranges
    // appear as red marks with their offsets, and regions with errors are shaded.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let p8 = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["number"] == 8)
        .unwrap()
        .clone();
    let bad_at = p8["start"].as_u64().unwrap() + 4096 * 10;
    v["bad"] = serde_json::json!([
        {"start": 1_048_576u64 + 512, "length": 1024, "partition": 1, "role": "boot",
         "partition_offset": 512, "files": []},
        {"start": bad_at, "length": 4096, "partition": 8, "role": "data",
         "partition_offset": 40960, "files": ["/supervisor/homeassistant/home-assistant_v2.db"]}
    ]);
    v["rescue"]["bad_bytes"] = 5120.into();
    v["rescue"]["read_errors"] = 7.into();
    let bins = v["read_profile"].as_array_mut().unwrap();
    let bin = bins
        .iter_mut()
        .find(|b| {
            let (st, len) = (b["start"].as_u64().unwrap(), b["length"].as_u64().unwrap());
            bad_at >= st && bad_at < st + len
        })
        .unwrap();
    bin["errors"] = 3.into();
    bin["seconds"] = 0.5.into();
    let badm = d.path().join("bad.manifest.json");
    std::fs::write(&badm, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let bsvg = d.path().join("bad.svg");
    let (code, o, e) = run(&["report-image", s(&badm), "-o", s(&bsvg)]);
    assert_eq!(code, 0, "{e}");
    assert!(o.contains("2 bad ranges, 5120 bad bytes"), "{o}");
    let btext = std::fs::read_to_string(&bsvg).unwrap();
    assert!(
        btext.contains("bad: 1024 bytes at 1049088"),
        "boot bad range missing"
    );
    assert!(
        btext.contains(&format!("bad: 4096 bytes at {bad_at}")),
        "data bad range missing"
    );
    assert!(btext.contains("5120 bad bytes, 7 read errors"));
    assert!(
        btext.contains("fill-opacity=\"0.18\""),
        "error region not shaded"
    );
    assert!(btext.contains("p8 data"));
    xml_elements(&bsvg);

    // JSON output.
    let jsvg = d.path().join("j.svg");
    let (code, o, e) = run(&["--json", "report-image", s(&badm), "-o", s(&jsvg)]);
    assert_eq!(code, 0, "{e}");
    let j: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(j["bad_ranges"], 2);
    assert_eq!(j["report_file"], s(&jsvg));
    assert!(jsvg.exists());

    // Bad manifests: clear errors naming the file, nothing written.
    let none = d.path().join("none.svg");
    let cases: [(&str, &str, &str); 4] = [
        (
            "garbage.json",
            "this is not json",
            "not a lifeboat manifest",
        ),
        ("other.json", r#"{"kind": "something-else"}"#, "kind"),
        (
            "future.json",
            r#"{"kind": "lifeboat-image-manifest", "schema_version": 99}"#,
            "schema_version 99",
        ),
        (
            "truncated.json",
            &std::fs::read_to_string(&manifest).unwrap()[..400],
            "not a lifeboat manifest",
        ),
    ];
    for (name, body, want) in cases {
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        let (code, _, e) = run(&["report-image", s(&p), "-o", s(&none)]);
        assert_ne!(code, 0, "{name}");
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
        assert!(!none.exists(), "{name}: output written");
    }
    let (code, _, e) = run(&[
        "report-image",
        s(&d.path().join("missing.json")),
        "-o",
        s(&none),
    ]);
    assert_ne!(code, 0);
    assert!(
        e.contains("missing.json") && e.contains("cannot read"),
        "{e}"
    );
    let (code, _, e) = run(&[
        "report-image",
        s(&manifest),
        "-o",
        s(&d.path().join("no/such/dir/x.svg")),
    ]);
    assert_ne!(code, 0);
    assert!(e.contains("no such directory"), "{e}");
}

#[test]
fn report_image_of_a_device_with_bad_sectors() {
    if let Some(why) = faultdev::unavailable() {
        eprintln!("skipped report_image_of_a_device_with_bad_sectors: {why}");
        return;
    }
    let d = tmp();
    let size = 24u64 << 20;
    let backing = d.path().join("disk.raw");
    let data: Vec<u8> = (0..size as usize)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    std::fs::write(&backing, &data).unwrap();
    let bad = [(5u64 << 20, 4096u64), ((17 << 20) + 512, 512)];
    let dev = faultdev::FaultDev::new(&backing, &bad, d.path()).unwrap();
    let out = d.path().join("card.img");
    let (code, _, e) = run(&[
        "image",
        "-q",
        "--all",
        "--retries",
        "0",
        s(&dev.dev),
        "-o",
        s(&out),
    ]);
    assert_eq!(code, 6, "unreadable sectors give exit 6: {e}");
    drop(dev);
    let manifest = d.path().join("card.img.manifest.json");
    let m = Manifest::load(&manifest).unwrap();
    assert_eq!(m.rescue.bad_bytes, 4096 + 512);
    let svg = d.path().join("card.svg");
    let (code, _, e) = run(&["report-image", s(&manifest), "-o", s(&svg)]);
    assert_eq!(code, 0, "{e}");
    let text = std::fs::read_to_string(&svg).unwrap();
    for b in &m.bad {
        assert!(
            text.contains(&format!("bad: {} bytes at {}", b.length, b.start)),
            "bad range {}+{} missing",
            b.start,
            b.length
        );
    }
    assert!(text.contains("fill=\"#d62728\""));
    xml_elements(&svg);
}

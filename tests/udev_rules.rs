//! Privileged: `udev/61-lifeboat.rules` under `udevadm test` on loop devices over the HAOS
//! fixture images (a hybrid-GPT RPi 4 card, an MBR ODROID-N2 card, and a disk that is not
//! HAOS): the properties and `/dev/disk/by-lifeboat/` links udev reports, links unique with two
//! HAOS disks attached, and `lifeboat list` flagging the disks from the udev records
//! `udevadm test` leaves. Skipped with a printed reason without root, loop devices, udevadm
//! or the fixture tools.
//!
//! With `LIFEBOAT_UDEV_INSTALLED=1` (set by `.ci/run` after installing the Debian package)
//! the rules the package installed are tested in place instead.
//!
//! Otherwise the rules are copied to `/run/udev/rules.d/61-lifeboat-test-<pid>.rules`; that file and
//! the udev database records of the test's loop devices are removed afterwards.

mod common;

use common::LoopDev;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Where the Debian package installs the rules.
const INSTALLED_RULES: &str = "/usr/lib/udev/rules.d/61-lifeboat.rules";

/// Removes the test's rules file and the udev records of its devices however the test ends.
struct Cleanup {
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// `udevadm test` on `/sys/class/block/<name>`: the properties it reports.
fn udev_test(name: &str, cleanup: &mut Cleanup) -> BTreeMap<String, String> {
    let dev = std::fs::read_to_string(format!("/sys/class/block/{name}/dev"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let record = PathBuf::from(format!("/run/udev/data/b{}", dev.trim()));
    if !record.exists() {
        cleanup.files.push(record);
    }
    let out = Command::new("udevadm")
        .args(["test", "--action=add", &format!("/sys/class/block/{name}")])
        .output()
        .expect("running udevadm test");
    assert!(
        out.status.success(),
        "udevadm test {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn links(props: &BTreeMap<String, String>) -> Vec<String> {
    props
        .get("DEVLINKS")
        .map(|l| {
            l.split_whitespace()
                .filter(|l| l.starts_with("/dev/disk/by-lifeboat/"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Partition numbers of `/dev/loopN` that the kernel knows.
fn partitions(l: &LoopDev) -> Vec<u32> {
    (1..=16).filter(|n| l.part(*n).exists()).collect()
}

#[test]
fn udev_rules_mark_haos_partitions_and_make_unique_links() {
    if let Err(why) = common::can_loop() {
        eprintln!("skipped udev rules test: {why}");
        return;
    }
    if !common::have("udevadm") {
        eprintln!("skipped udev rules test: udevadm missing (apt-get install udev)");
        return;
    }
    let Some(fx) = common::fixtures_or_skip("udev rules test") else {
        return;
    };
    // LIFEBOAT_UDEV_INSTALLED=1 (.ci/run, after installing the Debian package): test the rules
    // the package put in /usr/lib/udev/rules.d, unchanged, instead of a private copy.
    let mut cleanup = Cleanup { files: vec![] };
    if std::env::var_os("LIFEBOAT_UDEV_INSTALLED").is_some_and(|v| v == "1") {
        let installed = std::fs::read_to_string(INSTALLED_RULES)
            .unwrap_or_else(|e| panic!("{INSTALLED_RULES}: {e} (is the package installed?)"));
        assert_eq!(
            installed,
            lifeboat::cmd::udev::RULES,
            "{INSTALLED_RULES} differs from udev/61-lifeboat.rules"
        );
        eprintln!("testing the installed rules {INSTALLED_RULES}");
    } else {
        let rules = PathBuf::from(format!(
            "/run/udev/rules.d/61-lifeboat-test-{}.rules",
            std::process::id()
        ));
        std::fs::create_dir_all("/run/udev/rules.d").expect("creating /run/udev/rules.d");
        std::fs::write(&rules, lifeboat::cmd::udev::RULES).expect("writing the test rules");
        cleanup.files.push(rules);
    }

    let rpi4 = LoopDev::attach(&fx.join("rpi4.img"), true).expect("attaching rpi4");
    let n2 = LoopDev::attach(&fx.join("odroid-n2.img"), true).expect("attaching odroid-n2");
    let plain = LoopDev::attach(&fx.join("not-haos.img"), true).expect("attaching not-haos");

    let rpi4_roles: BTreeMap<u32, &str> = [
        (1, "boot"),
        (2, "kernel0"),
        (3, "system0"),
        (4, "kernel1"),
        (5, "system1"),
        (6, "bootstate"),
        (7, "overlay"),
        (8, "data"),
    ]
    .into();
    let n2_roles: BTreeMap<u32, &str> = [
        (1, "boot"),
        (3, "overlay"),
        (4, "data"),
        (5, "kernel0"),
        (6, "system0"),
        (7, "kernel1"),
        (8, "system1"),
        (9, "bootstate"),
    ]
    .into();

    let mut all_links = Vec::new();
    for (l, roles, mbr) in [(&rpi4, &rpi4_roles, false), (&n2, &n2_roles, true)] {
        let name = l.name();
        let disk = udev_test(&name, &mut cleanup);
        assert_eq!(
            disk.get("LIFEBOAT_ID").map(String::as_str),
            Some(name.as_str())
        );
        assert_eq!(
            disk.get("LIFEBOAT_HAOS").map(String::as_str),
            mbr.then_some("1"),
            "{name}: disk-level mark only from the MBR signature 48617373"
        );
        let parts = partitions(l);
        assert!(parts.len() >= roles.len(), "{name}: partitions {parts:?}");
        for n in parts {
            let p = udev_test(&format!("{name}p{n}"), &mut cleanup);
            let got = |k: &str| p.get(k).map(String::as_str);
            match roles.get(&n) {
                Some(role) => {
                    assert_eq!(got("LIFEBOAT_ROLE"), Some(*role), "{name}p{n}: {p:?}");
                    assert_eq!(got("LIFEBOAT_HAOS"), Some("1"), "{name}p{n}");
                    assert_eq!(got("UDISKS_IGNORE"), Some("1"), "{name}p{n}");
                    assert_eq!(got("UDISKS_AUTO"), Some("0"), "{name}p{n}");
                    assert_eq!(
                        links(&p),
                        vec![format!("/dev/disk/by-lifeboat/{name}-{role}")],
                        "{name}p{n}"
                    );
                    all_links.extend(links(&p));
                }
                None => {
                    // The MBR extended container has no role and stays untouched.
                    assert_eq!(got("LIFEBOAT_HAOS"), None, "{name}p{n}: {p:?}");
                    assert_eq!(got("UDISKS_IGNORE"), None, "{name}p{n}");
                    assert!(links(&p).is_empty(), "{name}p{n}");
                }
            }
        }
    }
    // Both cards have a boot, data… partition with the same PARTUUIDs (n2's are 48617373-0N,
    // and two RPi cards would share GPT ones); the links still differ.
    let mut dedup = all_links.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), all_links.len(), "links collide: {all_links:?}");
    assert_eq!(all_links.len(), 16);

    let name = plain.name();
    let disk = udev_test(&name, &mut cleanup);
    assert_eq!(disk.get("LIFEBOAT_HAOS"), None);
    for n in partitions(&plain) {
        let p = udev_test(&format!("{name}p{n}"), &mut cleanup);
        assert_eq!(p.get("LIFEBOAT_HAOS"), None, "{name}p{n}: {p:?}");
        assert_eq!(p.get("UDISKS_IGNORE"), None, "{name}p{n}");
        assert!(links(&p).is_empty());
    }

    // `udevadm test` wrote the records; `list` reads them (sysfs only, then probing too).
    for (l, haos) in [(&rpi4, true), (&n2, true), (&plain, false)] {
        let dev = l.dev.to_string_lossy().into_owned();
        let (code, out, err) = common::run(&["list", "--json", "--no-probe", &dev]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("list --json");
        let d = &v["disks"][0];
        assert_eq!(
            d["udev_haos"].as_bool().unwrap_or(false),
            haos,
            "{dev}: {d}"
        );
        let (code, out, err) = common::run(&["list", "--no-probe", &dev]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.contains("yes (udev)"), haos, "{dev}: {out}");
    }
    drop(plain);
    drop(n2);
    drop(rpi4);
    drop(cleanup);
}

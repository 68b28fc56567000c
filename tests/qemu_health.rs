//! `lifeboat health` on real Linux drivers: a QEMU guest (Debian kernel, busybox initramfs
//! from tests/qemu/) with an emulated NVMe drive, an AHCI disk, a USB mass-storage disk and
//! an SD card. The guest runs lifeboat next to `smartctl --json` and `nvme smart-log -o
//! json` (tests/qemu/guest.sh); this test compares them field by field, then sets the NVMe
//! critical warning from the QEMU monitor (`qom-set … smart_critical_warning 4`) and checks
//! that lifeboat fails the drive with the bit-3 exit status. Also the logs: the ATA SMART
//! error and self-test logs before and after `smartctl -t short` against smartctl's, the
//! NVMe error information log against `nvme error-log`, and the NVMe temperature an
//! unprivileged user gets from hwmon.
//!
//! Needs `tests/qemu/setup.sh` to have run (QEMU, smartmontools, nvme-cli, and the kernel
//! and busybox cached in /var/cache/lifeboat-qemu). Without them the test prints why and
//! passes on a contributor machine; in CI (`CI=true`) a missing rig is a failure.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

fn cache() -> PathBuf {
    std::env::var_os("LIFEBOAT_QEMU_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/lifeboat-qemu"))
}

fn which(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the rig cannot run here, if it cannot.
fn missing() -> Option<String> {
    let mut why = Vec::new();
    for t in ["qemu-system-x86_64", "smartctl", "nvme", "modprobe", "cpio"] {
        if !which(t) && !Path::new("/usr/sbin").join(t).exists() {
            why.push(format!("{t} not installed"));
        }
    }
    for f in ["vmlinux", "kernel-version", "bbroot/bin/busybox"] {
        if !cache().join(f).exists() {
            why.push(format!("{} missing", cache().join(f).display()));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

fn read_json(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))
}

fn read_rc(dir: &Path, name: &str) -> i64 {
    std::fs::read_to_string(dir.join(format!("{name}.rc")))
        .unwrap_or_else(|e| panic!("{name}.rc: {e}"))
        .trim()
        .parse()
        .unwrap()
}

fn dev(doc: &Value, i: usize) -> &Value {
    &doc["devices"][i]
}

/// A JSON number or a decimal string, as a u128.
fn n(v: &Value) -> u128 {
    match v {
        Value::Number(x) => x.as_u64().unwrap().into(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn sparse_image(path: &Path, size: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
}

/// Boot the VM; `on_line` sees every console line and may return a monitor command.
fn boot(work: &Path, share: &Path) -> (String, Duration) {
    let sock = work.join("mon.sock");
    let accel = if Path::new("/dev/kvm").exists()
        && std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/kvm")
            .is_ok()
        && !Path::new("/sys/module/kvm_pvm").exists()
    {
        "kvm"
    } else {
        // Nested PVM-based KVM is slower than TCG (docs/testing.md).
        "tcg"
    };
    let c = cache();
    let img = |n: &str| work.join(n).display().to_string();
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine", "q35", "-accel", accel, "-cpu", "max", "-m", "512", "-smp", "1",
        ])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .args(["-bios", "/usr/share/qemu/qboot.rom"])
        .arg("-kernel")
        .arg(c.join("vmlinux"))
        .arg("-initrd")
        .arg(work.join("initramfs.cpio"))
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=3 panic=-1 lb.wait=nvme0n1,sda,sdb,mmcblk0",
        ])
        .args([
            "-monitor",
            &format!("unix:{},server=on,wait=off", sock.display()),
        ])
        .args([
            "-drive",
            &format!(
                "if=none,id=nvm,file={},format=raw,werror=report,rerror=report",
                img("nvme.img")
            ),
        ])
        .args(["-device", "nvme,id=nvm0,drive=nvm,serial=LBNVME0001"])
        .args([
            "-drive",
            &format!(
                "if=none,id=sata,driver=raw,werror=report,rerror=report,file.driver=blkdebug,\
                 file.config={},file.image.driver=file,file.image.filename={}",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/qemu/blkdebug.conf")
                    .display(),
                img("sata.img")
            ),
        ])
        .args([
            "-device",
            "ide-hd,drive=sata,bus=ide.0,serial=LBSATA0001,model=LifeboatDisk",
        ])
        .args([
            "-drive",
            &format!("if=none,id=sd,file={},format=raw", img("sd.img")),
        ])
        .args(["-device", "sdhci-pci", "-device", "sd-card,drive=sd"])
        .args(["-device", "qemu-xhci"])
        .args([
            "-drive",
            &format!("if=none,id=usb,file={},format=raw", img("usb.img")),
        ])
        .args([
            "-device",
            "usb-storage,drive=usb,removable=on,serial=LBUSB01",
        ])
        .args([
            "-virtfs",
            &format!(
                "local,path={},mount_tag=share,security_model=none",
                share.display()
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut console = String::new();
    loop {
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the VM did not finish in {BOOT_TIMEOUT:?}; console:\n{console}");
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                console.push_str(&line);
                console.push('\n');
                if line.contains("LB: READY_FOR_QOM") {
                    let mut m = std::os::unix::net::UnixStream::connect(&sock)
                        .expect("connecting to the QEMU monitor");
                    m.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    m.write_all(b"qom-set /machine/peripheral/nvm0 smart_critical_warning 4\n")
                        .unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    let until = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < until {
                        match m.read(&mut buf) {
                            Ok(0) => break,
                            Ok(k) => {
                                got.extend_from_slice(&buf[..k]);
                                if got.windows(7).filter(|w| w == b"(qemu) ").count() >= 2 {
                                    break;
                                }
                            }
                            Err(_) => {}
                        }
                    }
                    console.push_str(&format!("[monitor] {}\n", String::from_utf8_lossy(&got)));
                    std::fs::write(share.join("qom-done"), b"").unwrap();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(_)) = child.try_wait() {
                    while let Ok(line) = rx.try_recv() {
                        console.push_str(&line);
                        console.push('\n');
                    }
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                break;
            }
        }
    }
    (console, started.elapsed())
}

#[test]
fn health_in_a_qemu_guest_matches_smartctl_and_nvme_cli() {
    if let Some(why) = missing() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the QEMU rig must run in CI but is missing: {why} (tests/qemu/setup.sh)");
        }
        eprintln!(
            "skipped: QEMU health test needs the rig ({why}); run `sudo tests/qemu/setup.sh`"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // LIFEBOAT_QEMU_KEEP=1 keeps the work directory (images, initramfs, share/) to look at.
    let kept;
    let w = if std::env::var_os("LIFEBOAT_QEMU_KEEP").is_some() {
        kept = work.keep();
        eprintln!("keeping {}", kept.display());
        kept.as_path()
    } else {
        work.path()
    };
    let share = w.join("share");
    std::fs::create_dir(&share).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qemu/build-initramfs.sh");
    let st = Command::new("bash")
        .arg(&script)
        .arg(w)
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .status()
        .unwrap();
    assert!(st.success(), "building the initramfs failed");
    sparse_image(&w.join("nvme.img"), 64 << 20);
    sparse_image(&w.join("sata.img"), 64 << 20);
    sparse_image(&w.join("usb.img"), 16 << 20);
    sparse_image(&w.join("sd.img"), 32 << 20); // QEMU wants a power of two
    let (console, took) = boot(w, &share);
    eprintln!("QEMU guest ran in {:.1} s", took.as_secs_f64());
    let guest_log = std::fs::read_to_string(share.join("guest.log")).unwrap_or_default();
    assert!(
        guest_log.contains("guest done"),
        "guest script did not finish:\n{console}\n{guest_log}"
    );
    let s = &share;
    let ctx = |what: &str| format!("{what}\nconsole:\n{console}\nguest:\n{guest_log}");

    // ---- NVMe: lifeboat vs nvme-cli vs smartctl, same moment.
    let lb = read_json(s, "nvme.lifeboat.json");
    let cli = read_json(s, "nvme.nvmecli.json");
    let sc = read_json(s, "nvme.smartctl.json");
    assert_eq!(
        read_rc(s, "nvme.lifeboat.json"),
        0,
        "{}",
        ctx(&lb.to_string())
    );
    // Native multipath: the head's stat is all zeros, the hidden path holds the I/O.
    assert_eq!(dev(&lb, 0)["kernel"]["stat_from"], "nvme0c0n1");
    assert!(n(&dev(&lb, 0)["kernel"]["stat"]["read_ios"]) > 0);
    let d = dev(&lb, 0);
    assert_eq!(d["verdict"], "pass", "{d:#}");
    assert_eq!(d["source"], "nvme");
    assert_eq!(d["model"], sc["model_name"]);
    assert_eq!(d["serial"], sc["serial_number"]);
    assert_eq!(d["serial"], "LBNVME0001");
    assert_eq!(d["firmware"], sc["firmware_version"]);
    let id = &d["nvme"]["identify"];
    assert_eq!(id["vendor_id"], sc["nvme_pci_vendor"]["id"]);
    assert_eq!(
        id["subsystem_vendor_id"],
        sc["nvme_pci_vendor"]["subsystem_id"]
    );
    assert_eq!(id["ieee_oui"], sc["nvme_ieee_oui_identifier"]);
    assert_eq!(id["version"], sc["nvme_version"]["string"]);
    assert_eq!(id["namespaces"], sc["nvme_number_of_namespaces"]);
    let l = &d["nvme"]["smart_log"];
    for (ours, theirs) in [
        ("critical_warning", "critical_warning"),
        ("temperature_k", "temperature"),
        ("available_spare", "avail_spare"),
        ("available_spare_threshold", "spare_thresh"),
        ("percentage_used", "percent_used"),
        (
            "endurance_group_critical_warning",
            "endurance_grp_critical_warning_summary",
        ),
        ("data_units_read", "data_units_read"),
        ("data_units_written", "data_units_written"),
        ("host_read_commands", "host_read_commands"),
        ("host_write_commands", "host_write_commands"),
        ("controller_busy_time", "controller_busy_time"),
        ("power_cycles", "power_cycles"),
        ("power_on_hours", "power_on_hours"),
        ("unsafe_shutdowns", "unsafe_shutdowns"),
        ("media_errors", "media_errors"),
        ("error_log_entries", "num_err_log_entries"),
        ("warning_temp_time", "warning_temp_time"),
        ("critical_temp_time", "critical_comp_time"),
    ] {
        assert_eq!(
            n(&l[ours]),
            n(&cli[theirs]),
            "nvme {ours} vs nvme-cli {theirs}"
        );
    }
    // u128 counters are strings in both.
    assert!(l["data_units_read"].is_string() && cli["data_units_read"].is_string());
    let sh = &sc["nvme_smart_health_information_log"];
    assert_eq!(d["nvme"]["temperature_c"], sh["temperature"]);
    assert_eq!(n(&l["percentage_used"]), n(&sh["percentage_used"]));
    assert_eq!(n(&l["media_errors"]), n(&sh["media_errors"]));
    assert_eq!(d["nvme"]["passed"], sc["smart_status"]["passed"]);
    // The saved pages decode offline to the same values.
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["health", "--json", "--type", "nvme-smart", "--from-raw"])
        .arg(s.join("raw/nvme0n1.nvme-smart.bin"))
        .output()
        .unwrap();
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["devices"][0]["nvme"]["smart_log"], *l);
    // Error Information log (LID 1): ELPE + 1 entries, as nvme-cli reads them; QEMU
    // records no errors. No self-test log: QEMU's OACS lacks bit 4, and nvme-cli's request
    // is refused (so lifeboat does not send one).
    let idc = read_json(s, "nvme.idctrl.json");
    let errlog = read_json(s, "nvme.errlog.json");
    assert_eq!(id["oacs"], idc["oacs"]);
    assert_eq!(n(&id["error_log_entries"]), n(&idc["elpe"]) + 1);
    let el = &d["nvme"]["error_log"];
    let theirs = errlog["errors"].as_array().unwrap();
    assert_eq!(n(&el["entries_read"]), theirs.len() as u128);
    assert_eq!(
        n(&el["non_zero"]),
        theirs.iter().filter(|e| n(&e["error_count"]) != 0).count() as u128
    );
    assert_eq!(el["non_zero"], 0);
    assert!(el["latest"].is_null());
    assert_eq!(n(&id["oacs"]) & 0x10, 0);
    assert!(d["nvme"]["self_test_log"].is_null(), "{d:#}");
    assert_ne!(read_rc(s, "nvme.selftest.json"), 0);
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["health", "--json", "--type", "nvme-error-log", "--from-raw"])
        .arg(s.join("raw/nvme0n1.nvme-error-log.bin"))
        .output()
        .unwrap();
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["devices"][0]["nvme"]["error_log"], *el);
    // hwmon: 323 K as the kernel converts it (273.15), next to the SMART log's value.
    assert_eq!(d["nvme"]["hwmon_temp_millicelsius"], 49850);
    assert_eq!(d["nvme"]["temperature_source"], "smart_log");

    // ---- AHCI disk: lifeboat vs smartctl, attribute by attribute.
    let lb = read_json(s, "sda.lifeboat.json");
    let sc = read_json(s, "sda.smartctl.json");
    let d = dev(&lb, 0);
    assert_eq!(read_rc(s, "sda.lifeboat.json"), 0, "{d:#}");
    assert_eq!(d["verdict"], "pass");
    assert_eq!(d["model"], sc["model_name"]);
    assert_eq!(d["model"], "LifeboatDisk");
    assert_eq!(d["serial"], sc["serial_number"]);
    assert_eq!(d["firmware"], sc["firmware_version"]);
    let a = &d["ata"];
    assert_eq!(a["via"], "sat16");
    assert_eq!(
        a["smart_status"] == "good",
        sc["smart_status"]["passed"] == true
    );
    assert_eq!(a["smart_status"], "good");
    assert_eq!(a["smart_supported"], sc["smart_support"]["available"]);
    assert_eq!(a["smart_enabled"], sc["smart_support"]["enabled"]);
    assert_eq!(
        a["smart_data_revision"],
        sc["ata_smart_attributes"]["revision"]
    );
    assert_eq!(
        a["offline_status"],
        sc["ata_smart_data"]["offline_data_collection"]["status"]["value"]
    );
    let ours = a["attributes"].as_array().unwrap();
    let theirs = sc["ata_smart_attributes"]["table"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours.len(), 7);
    for (o, t) in ours.iter().zip(theirs) {
        let id = &t["id"];
        assert_eq!(o["id"], *id);
        assert_eq!(o["name"], t["name"], "attribute {id}");
        assert_eq!(o["value"], t["value"], "attribute {id}");
        assert_eq!(o["worst"], t["worst"], "attribute {id}");
        assert_eq!(o["thresh"], t["thresh"], "attribute {id}");
        assert_eq!(o["flags"], t["flags"]["value"], "attribute {id}");
        assert_eq!(o["prefailure"], t["flags"]["prefailure"], "attribute {id}");
        assert_eq!(
            o["updated_online"], t["flags"]["updated_online"],
            "attribute {id}"
        );
        assert_eq!(o["when_failed"], t["when_failed"], "attribute {id}");
        assert_eq!(o["raw_value"], t["raw"]["value"], "attribute {id}");
    }
    assert_eq!(a["power_on_hours"], sc["power_on_time"]["hours"]);
    // SMART READ LOG: the summary error log and the self-test log, empty before any test.
    let el = &a["error_log"];
    let sel = &sc["ata_smart_error_log"]["summary"];
    assert_eq!(el["kind"], "summary");
    assert_eq!(el["revision"], sel["revision"]);
    assert_eq!(el["count"], sel["count"]);
    assert_eq!(el["count"], 0);
    assert_eq!(el["entries"].as_array().unwrap().len(), 0);
    assert_eq!(el["checksum_ok"], true);
    let st = &a["self_test_log"];
    let sst = &sc["ata_smart_self_test_log"]["standard"];
    assert_eq!(st["revision"], sst["revision"]);
    assert_eq!(
        st["entries"].as_array().unwrap().len() as u64,
        sst["count"].as_u64().unwrap()
    );
    assert_eq!(st["entries"].as_array().unwrap().len(), 0);
    assert_eq!(st["checksum_ok"], true);
    // No General Purpose Logging on QEMU's disk (smartctl agrees): no READ LOG EXT sent.
    assert_eq!(
        a["identify"]["gp_logging"],
        sc["ata_smart_data"]["capabilities"]["gp_logging_supported"]
    );
    assert_eq!(a["identify"]["gp_logging"], false);
    assert!(a["ext_error_log"].is_null() && a["ext_self_test_log"].is_null());
    assert_eq!(a["temperature_c"], sc["temperature"]["current"]);
    // PT(12) gives the same pages.
    let lb12 = read_json(s, "sda.lifeboat12.json");
    assert_eq!(dev(&lb12, 0)["ata"]["via"], "sat12");
    assert_eq!(dev(&lb12, 0)["ata"]["attributes"], a["attributes"]);
    assert_eq!(dev(&lb12, 0)["ata"]["smart_status"], "good");
    // Offline decode of the saved SMART page.
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["health", "--json", "--type", "ata-smart", "--from-raw"])
        .arg(s.join("raw/sda.ata-smart.bin"))
        .output()
        .unwrap();
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    let off_attrs = offline["devices"][0]["ata"]["attributes"]
        .as_array()
        .unwrap();
    assert_eq!(off_attrs.len(), 7);
    assert_eq!(off_attrs[6]["raw_value"], ours[6]["raw_value"]);

    // ---- USB stick without SAT: unknown bridge, nothing sent; forced SAT is refused.
    let lb = read_json(s, "sdb.lifeboat.json");
    let d = dev(&lb, 0);
    assert_eq!(d["verdict"], "unknown");
    assert_eq!(d["transport"]["vendor_id"], 0x46f4);
    assert!(
        d["reasons"]
            .to_string()
            .contains("unknown USB bridge 46f4:0001"),
        "{d:#}"
    );
    assert_eq!(read_rc(s, "sdb.lifeboat.json"), 32);
    let smartctl_usb = std::fs::read_to_string(s.join("sdb.smartctl.txt")).unwrap();
    assert!(
        smartctl_usb.contains("Unknown USB bridge [0x46f4:0x0001"),
        "{smartctl_usb}"
    );
    let forced = read_json(s, "sdb.lifeboat-sat.json");
    let d = dev(&forced, 0);
    assert_eq!(d["verdict"], "unknown");
    assert!(
        d["problems"]
            .to_string()
            .contains("does not take ATA PASS-THROUGH"),
        "{d:#}"
    );
    assert_eq!(read_rc(s, "sdb.lifeboat-sat.json"), 4 | 32);

    // ---- SD card: registers as sysfs shows them, SD Status read now over MMC_IOC_CMD.
    let sysfs = std::fs::read_to_string(s.join("mmc.sysfs")).unwrap();
    let attr = |k: &str| {
        sysfs
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    let lb = read_json(s, "mmc.lifeboat.json");
    let d = dev(&lb, 0);
    assert_eq!(d["verdict"], "unknown", "{d:#}");
    assert_eq!(read_rc(s, "mmc.lifeboat.json"), 32);
    let sd = &d["sd"];
    assert_eq!(sd["cid"]["name"], attr("name"));
    assert_eq!(
        format!("0x{:06x}", sd["cid"]["manufacturer_id"].as_u64().unwrap()),
        attr("manfid")
    );
    assert_eq!(
        format!("0x{:04x}", sd["cid"]["oem_id"].as_u64().unwrap()),
        attr("oemid")
    );
    assert_eq!(
        format!("0x{:08x}", sd["cid"]["serial"].as_u64().unwrap()),
        attr("serial")
    );
    assert_eq!(
        format!(
            "{:02}/{}",
            sd["cid"]["month"].as_u64().unwrap(),
            sd["cid"]["year"]
        ),
        attr("date")
    );
    assert_eq!(sd["csd"]["capacity_bytes"], 32 << 20);
    assert_eq!(sd["csd_matches_size"], true);
    assert_eq!(sd["ssr_source"], "acmd13", "{d:#}");
    assert_eq!(sd["ssr"]["bus_width"], 4);
    assert!(
        sd["cmd56_result"].as_str().unwrap().starts_with("not sent"),
        "{d:#}"
    );
    assert!(d["problems"].as_array().unwrap().is_empty(), "{d:#}");
    // CMD56 when asked: QEMU answers 512 zero bytes ("read as zero").
    let d = dev(&read_json(s, "mmc.cmd56.json"), 0).clone();
    assert_eq!(d["sd"]["cmd56_method"], "sandisk");
    assert!(
        d["sd"]["cmd56_result"]
            .as_str()
            .unwrap()
            .contains("all zeros"),
        "{d:#}"
    );
    // Two-step only with --cmd56-write; then the write and the read go in one MULTI_CMD.
    let d = dev(&read_json(s, "mmc.cmd56-twostep-refused.json"), 0).clone();
    assert!(
        d["sd"]["cmd56_result"]
            .as_str()
            .unwrap()
            .contains("--cmd56-write"),
        "{d:#}"
    );
    let d = dev(&read_json(s, "mmc.cmd56-twostep.json"), 0).clone();
    assert_eq!(d["sd"]["cmd56_method"], "two_step");
    assert!(
        d["sd"]["cmd56_result"]
            .as_str()
            .unwrap()
            .contains("all zeros"),
        "{d:#}"
    );
    // Never CMD8 to an SD card: --type emmc is refused before any command.
    let d = dev(&read_json(s, "mmc.emmc-refused.json"), 0).clone();
    assert!(d["problems"].to_string().contains("needs an eMMC"), "{d:#}");
    // CMD8 to an SD card times out (it means SEND_IF_COND there): no command timed out on
    // the card in the whole run, so none was sent. The host's debugfs counters must exist.
    let err_stats = std::fs::read_to_string(s.join("mmc.err_stats")).unwrap_or_default();
    assert!(
        err_stats.contains("Command Timeout Occurred:\t 0"),
        "a card command timed out (or no debugfs err_stats): {err_stats:?}"
    );

    // ---- Every disk: the verdicts together and the bit mask (unknown from sdb/mmcblk0).
    let all = read_json(s, "all.lifeboat.json");
    let names: Vec<&str> = all["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for want in ["mmcblk0", "nvme0n1", "sda", "sdb"] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert_eq!(read_rc(s, "all.lifeboat.json"), 32, "{all:#}");
    assert_eq!(all["exit_status"], 32);
    let text = std::fs::read_to_string(s.join("all.lifeboat.txt")).unwrap();
    assert!(
        text.contains("verdict: PASS") && text.contains("verdict: UNKNOWN"),
        "{text}"
    );
    assert!(
        text.contains("NVMe error log: no errors logged (1 entry read)")
            && text.contains("self-test log (standard, revision 1): no self-tests logged")
            && text.contains("error log (summary, revision 1): no errors logged"),
        "{text}"
    );

    // ---- Permissions.
    let err = std::fs::read_to_string(s.join("nonroot.txt.err")).unwrap();
    assert!(err.contains("needs root"), "{err}");
    assert_eq!(read_rc(s, "nonroot.txt") & 4, 4);
    let nr = read_json(s, "nonroot-readable.json");
    let nv = dev(&nr, 0);
    assert!(
        nv["problems"].to_string().contains("CAP_SYS_ADMIN"),
        "{nv:#}"
    );
    assert_eq!(nv["needs_privileges"], true);
    // Without CAP_SYS_ADMIN the temperature still comes, from the kernel's hwmon sensor.
    assert_eq!(nv["nvme"]["temperature_c"], 50, "{nv:#}");
    assert_eq!(nv["nvme"]["temperature_source"], "hwmon");
    assert_eq!(nv["nvme"]["hwmon_temp_millicelsius"], 49850);
    assert!(nv["nvme"]["smart_log"].is_null());
    assert_eq!(nv["verdict"], "unknown");
    let text = std::fs::read_to_string(s.join("nonroot.txt")).unwrap();
    assert!(
        text.contains("NVMe: temperature 50 °C (kernel hwmon sensor; SMART log not read)"),
        "{text}"
    );
    let sa = dev(&nr, 1);
    assert!(
        sa["problems"].to_string().contains("CAP_SYS_RAWIO"),
        "{sa:#}"
    );

    // ---- An injected read error on the AHCI disk: the kernel log names it.
    let lb = read_json(s, "sda-ioerr.lifeboat.json");
    let d = dev(&lb, 0);
    let dd = std::fs::read_to_string(s.join("sda-ioerr.dd")).unwrap_or_default();
    assert!(
        dd.contains("Input/output error"),
        "the injected error did not fire: {dd}"
    );
    assert_eq!(d["verdict"], "warn", "{d:#}");
    let logged = d["kernel"]["log_errors"].as_array().unwrap();
    assert!(
        logged
            .iter()
            .any(|l| l.as_str().unwrap().contains("I/O error, dev sda")),
        "{d:#}"
    );
    assert_eq!(read_rc(s, "sda-ioerr.lifeboat.json"), 16 | 64);

    // ---- After `smartctl -t short`: QEMU logs a pass at once (type 1, status 0, hour
    // 0x1234); lifeboat's self-test log matches smartctl's entry by entry.
    let lb = read_json(s, "sda-selftest.lifeboat.json");
    let sc = read_json(s, "sda-selftest.smartctl.json");
    let d = dev(&lb, 0);
    let st = &d["ata"]["self_test_log"];
    let ours = st["entries"].as_array().unwrap();
    let theirs = sc["ata_smart_self_test_log"]["standard"]["table"]
        .as_array()
        .unwrap();
    assert_eq!(ours.len(), theirs.len(), "{d:#}");
    assert_eq!(ours.len(), 1);
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o["test_type"], t["type"]["value"]);
        assert_eq!(o["test_type_text"], t["type"]["string"]);
        assert_eq!(o["status"], t["status"]["value"]);
        assert_eq!(o["result_text"], t["status"]["string"]);
        assert_eq!(o["passed"], t["status"]["passed"]);
        assert_eq!(o["lifetime_hours"], t["lifetime_hours"]);
    }
    assert_eq!(
        (
            &ours[0]["test_type"],
            &ours[0]["status"],
            &ours[0]["lifetime_hours"]
        ),
        (&Value::from(1), &Value::from(0), &Value::from(4660))
    );
    assert_eq!(st["checksum_ok"], true);
    assert_eq!(
        d["ata"]["error_log"]["count"],
        sc["ata_smart_error_log"]["summary"]["count"]
    );
    assert!(
        d["reasons"]
            .to_string()
            .contains("the last self-test (short offline) passed at power-on hour 4660"),
        "{d:#}"
    );
    // A passed test adds no warning: still only the kernel's (the injected read error).
    assert_eq!(d["verdict"], "warn");
    assert_eq!(read_rc(s, "sda-selftest.lifeboat.json"), 16 | 64);
    let text = std::fs::read_to_string(s.join("sda-selftest.lifeboat.txt")).unwrap();
    assert!(
        text.contains("Short offline        Completed without error")
            && text.contains("error log (summary, revision 1): no errors logged"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args([
            "health",
            "--json",
            "--type",
            "ata-selftest-log",
            "--from-raw",
        ])
        .arg(s.join("raw-selftest/sda.ata-selftest-log.bin"))
        .output()
        .unwrap();
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["devices"][0]["ata"]["self_test_log"], *st);
    assert_eq!(offline["devices"][0]["verdict"], "pass");

    // ---- Critical warning set from the QEMU monitor.
    let lb = read_json(s, "nvme-crit.lifeboat.json");
    let cli = read_json(s, "nvme-crit.nvmecli.json");
    let sc = read_json(s, "nvme-crit.smartctl.json");
    assert_eq!(
        cli["critical_warning"],
        4,
        "{}",
        ctx("qom-set did not take")
    );
    let d = dev(&lb, 0);
    assert_eq!(
        d["nvme"]["smart_log"]["critical_warning"],
        cli["critical_warning"]
    );
    assert_eq!(sc["smart_status"]["passed"], false);
    assert_eq!(d["nvme"]["passed"], sc["smart_status"]["passed"]);
    assert_eq!(d["verdict"], "fail");
    assert!(
        d["reasons"][0]["text"]
            .as_str()
            .unwrap()
            .contains("reliability degraded"),
        "{d:#}"
    );
    assert_eq!(read_rc(s, "nvme-crit.lifeboat.json"), 8);
}

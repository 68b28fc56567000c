//! Shared helpers of the integration tests: building the HAOS fixture images once per cache
//! key (the fixture scripts' contents), running the binary, and skipping with a printed reason
//! when a tool or privilege is missing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Tools the fixture builder needs.
const FIXTURE_TOOLS: &[&str] = &[
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mmd",
    "mke2fs",
    "debugfs",
    "mksquashfs",
    "mkfs.erofs",
    "python3",
];

/// True when `tool` is on PATH (or in /sbin, /usr/sbin).
pub fn have(tool: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default() + ":/sbin:/usr/sbin";
    path.split(':')
        .any(|d| !d.is_empty() && Path::new(d).join(tool).is_file())
}

/// Tools from `tools` that are missing.
pub fn missing(tools: &[&str]) -> Vec<String> {
    tools
        .iter()
        .filter(|t| !have(t))
        .map(|t| t.to_string())
        .collect()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/haos")
}

fn cache_key() -> String {
    // FNV-1a over the builder's files: a changed script rebuilds the images.
    let mut h: u64 = 0xcbf29ce484222325;
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for n in names {
        if let Ok(b) = std::fs::read(&n) {
            for byte in b {
                h ^= byte as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
        }
    }
    format!("{h:016x}")
}

static FIXTURES: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Directory holding `<family>.img` and `<family>.expect.json` for every layout family,
/// built by `tests/fixtures/haos/mkhaos.sh` into the cargo target tmpdir (cached), or the
/// reason they cannot be built here.
pub fn haos_fixtures() -> Result<PathBuf, String> {
    FIXTURES
        .get_or_init(|| {
            let miss = missing(FIXTURE_TOOLS);
            if !miss.is_empty() {
                return Err(format!(
                    "fixture tools missing: {} (install fdisk dosfstools mtools e2fsprogs squashfs-tools erofs-utils python3)",
                    miss.join(", ")
                ));
            }
            let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("haos-fixtures");
            let dir = base.join(cache_key());
            std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
            // Serialise builders across test processes.
            let lock = std::fs::File::create(base.join(".lock")).map_err(|e| e.to_string())?;
            lock.lock().map_err(|e| e.to_string())?;
            if dir.join(".complete").exists() {
                return Ok(dir);
            }
            let tmp = base.join(format!("building-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let out = Command::new("bash")
                .arg(fixture_dir().join("mkhaos.sh"))
                .arg(&tmp)
                .output()
                .map_err(|e| format!("running mkhaos.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "mkhaos.sh failed: {}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::fs::write(tmp.join(".complete"), b"").map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir).map_err(|e| e.to_string())?;
            Ok(dir)
        })
        .clone()
}

/// Like [`haos_fixtures`], but a missing tool means "skip": prints why and returns None.
/// A builder that fails with its tools present is a test failure.
pub fn fixtures_or_skip(test: &str) -> Option<PathBuf> {
    match haos_fixtures() {
        Ok(d) => Some(d),
        Err(e) if e.starts_with("fixture tools missing") => {
            eprintln!("skipped {test}: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// The lifeboat binary under test.
pub fn lifeboat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
}

/// Run lifeboat with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = lifeboat().args(args).output().expect("running lifeboat");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `inspect --json` and parse stdout.
pub fn inspect_json(path: &Path) -> (i32, serde_json::Value) {
    let (code, out, err) = run(&["inspect", "--json", path.to_str().expect("utf-8 path")]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("inspect --json output is not JSON ({e}): {out}\nstderr: {err}")
    });
    (code, v)
}

/// True when the tests may create loop devices (root and /dev/loop-control).
pub fn can_loop() -> Result<(), String> {
    if !nix_is_root() {
        return Err("needs root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err("no /dev/loop-control".into());
    }
    if !have("losetup") {
        return Err("losetup missing".into());
    }
    Ok(())
}

fn nix_is_root() -> bool {
    // /proc/self/status "Uid:" real uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A loop device over an image file, detached (and its partitions removed) on drop.
pub struct LoopDev {
    pub dev: PathBuf,
}

impl LoopDev {
    /// Attach `image` read-only or read-write, and make partition nodes (`partx -a` when the
    /// kernel did not scan the table itself).
    pub fn attach(image: &Path, read_only: bool) -> Result<Self, String> {
        let mut c = Command::new("losetup");
        c.args(["-f", "--show", "-P"]);
        if read_only {
            c.arg("-r");
        }
        let out = c.arg(image).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("losetup: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        let me = LoopDev { dev };
        let p1 = PathBuf::from(format!("{}p1", me.dev.display()));
        for _ in 0..20 {
            if p1.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if !p1.exists() {
            let _ = Command::new("partx").arg("-a").arg(&me.dev).output();
        }
        Ok(me)
    }

    /// `/dev/loopNpM`.
    pub fn part(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}p{n}", self.dev.display()))
    }

    /// Kernel name, e.g. `loop3`.
    pub fn name(&self) -> String {
        self.dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("partx").arg("-d").arg(&self.dev).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).output();
    }
}

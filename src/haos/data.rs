//! The HAOS data partition (`hassos-data`, ext4) read without mounting, through `ext4-view`
//! over a window of the disk: Supervisor state (versions, add-ons), the Home Assistant
//! config dir, and the backups it holds. Mounting would replay the journal and change the
//! card; this never writes.

use crate::backup::{self, meta::BackupSummary};
use crate::io::ReadAt;
use crate::io::source::OwnedWindow;
use anyhow::{Context, Result};
use ext4_view::{Ext4, Ext4Error};
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;

/// Supervisor state files are small; refuse to load anything larger than this.
const MAX_STATE_FILE: u64 = 64 << 20;

/// An installed add-on (app) from the Supervisor's `apps.json`/`addons.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addon {
    pub slug: String,
    pub version: Option<String>,
    /// Display name from the `system` manifest, when present.
    pub name: Option<String>,
}

/// The Home Assistant configuration directory (`supervisor/homeassistant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigDir {
    pub path: String,
    pub configuration_yaml: bool,
    pub secrets_yaml: bool,
    /// Number of files in `.storage/`.
    pub storage_files: usize,
    /// Instance id from `.storage/core.uuid`.
    pub instance_id: Option<String>,
    /// Size of `home-assistant_v2.db`, when present.
    pub database_bytes: Option<u64>,
}

/// A backup file found on the data partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundBackup {
    /// Path inside the data partition, e.g. `/supervisor/backup/a1b2c3d4.tar`.
    pub path: String,
    pub file_size: u64,
    /// Its backup.json summary, when readable.
    pub backup: Option<BackupSummary>,
    /// Why it could not be read, otherwise.
    pub error: Option<String>,
}

/// Everything `inspect` reports about a data partition's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DataContents {
    pub supervisor_version: Option<String>,
    pub core_version: Option<String>,
    /// `apps.json` (Supervisor ≥ 2026.06) or `addons.json` (older).
    pub addons_file: Option<String>,
    pub addons: Vec<Addon>,
    pub config_dir: Option<ConfigDir>,
    pub backups: Vec<FoundBackup>,
    /// The legacy `/rauc.db` (before OS 15.0 it lived here), verbatim.
    #[serde(skip)]
    pub legacy_rauc_db: Option<Vec<u8>>,
    /// What could not be read, in plain words.
    pub problems: Vec<String>,
}

/// Open the ext4 filesystem in `window`.
pub fn open(window: OwnedWindow, what: &str) -> Result<Ext4> {
    Ext4::load(Box::new(window)).map_err(|e| match e {
        Ext4Error::Incompatible(i) => anyhow::anyhow!(
            "{what}: the ext4 filesystem uses a feature this reader does not support ({i}); \
             nothing was changed. Image the disk with `lifeboat image` and inspect the copy with \
             a newer lifeboat, or mount the copy read-only"
        ),
        other => anyhow::anyhow!("{what}: cannot read the ext4 filesystem: {other}"),
    })
}

fn read_small(fs: &Ext4, path: &str) -> Result<Option<Vec<u8>>> {
    match fs.metadata(path) {
        Ok(m) if m.len() > MAX_STATE_FILE => {
            anyhow::bail!("{path} is {} bytes, larger than expected", m.len())
        }
        Ok(m) if m.is_dir() => Ok(None),
        Ok(_) => Ok(Some(
            fs.read(path).with_context(|| format!("reading {path}"))?,
        )),
        Err(Ext4Error::NotFound) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{path}: {e}")),
    }
}

fn read_json(fs: &Ext4, path: &str, problems: &mut Vec<String>) -> Option<Value> {
    match read_small(fs, path) {
        Ok(Some(b)) => match serde_json::from_slice(&b) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("{path}: not valid JSON ({e})"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    }
}

fn jstr(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(String::from)
}

/// A file inside the ext4 filesystem, readable at any offset (for walking backup tars).
struct Ext4FileReader {
    file: RefCell<ext4_view::File>,
    len: u64,
}

impl ReadAt for Ext4FileReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let io = |e: Ext4Error| std::io::Error::other(e.to_string());
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            ));
        }
        let mut f = self.file.borrow_mut();
        f.seek_to(offset).map_err(io)?;
        let mut got = 0;
        while got < buf.len() {
            let n = f.read_bytes(&mut buf[got..]).map_err(io)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file ended early",
                ));
            }
            got += n;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

fn list_backups(fs: &Ext4, dir: &str, out: &mut Vec<FoundBackup>, problems: &mut Vec<String>) {
    let entries = match fs.read_dir(dir) {
        Ok(e) => e,
        Err(Ext4Error::NotFound) => return,
        Err(e) => {
            problems.push(format!("{dir}: cannot list ({e})"));
            return;
        }
    };
    let mut names = Vec::new();
    for e in entries {
        match e {
            Ok(e) => {
                if let Ok(n) = e.file_name().as_str()
                    && n.ends_with(".tar")
                {
                    names.push(n.to_string());
                }
            }
            Err(e) => problems.push(format!("{dir}: damaged directory entry ({e})")),
        }
    }
    names.sort();
    for n in names {
        let path = format!("{dir}/{n}");
        let mut fb = FoundBackup {
            path: path.clone(),
            file_size: 0,
            backup: None,
            error: None,
        };
        match fs.open(path.as_str()) {
            Ok(f) => {
                fb.file_size = f.metadata().len();
                let r = Ext4FileReader {
                    len: fb.file_size,
                    file: RefCell::new(f),
                };
                match backup::read_summary(&r, &path) {
                    Ok(s) => fb.backup = Some(s),
                    Err(e) => fb.error = Some(format!("{e:#}")),
                }
            }
            Err(e) => fb.error = Some(format!("{path}: cannot open ({e})")),
        }
        out.push(fb);
    }
}

fn config_dir(fs: &Ext4, path: &str) -> Option<ConfigDir> {
    if !fs.metadata(path).map(|m| m.is_dir()).unwrap_or(false) {
        return None;
    }
    let exists = |p: &str| fs.exists(format!("{path}/{p}").as_str()).unwrap_or(false);
    let storage_files = fs
        .read_dir(format!("{path}/.storage").as_str())
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_regular_file()).unwrap_or(false))
                .count()
        })
        .unwrap_or(0);
    let instance_id = read_small(fs, &format!("{path}/.storage/core.uuid"))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("data").and_then(|d| jstr(d, "uuid")));
    let database_bytes = fs
        .metadata(format!("{path}/home-assistant_v2.db").as_str())
        .ok()
        .map(|m| m.len());
    Some(ConfigDir {
        path: path.to_string(),
        configuration_yaml: exists("configuration.yaml"),
        secrets_yaml: exists("secrets.yaml"),
        storage_files,
        instance_id,
        database_bytes,
    })
}

/// Read the Supervisor state, config dir and backups from an opened data filesystem.
pub fn read_contents(fs: &Ext4) -> DataContents {
    let mut d = DataContents::default();
    let p = &mut d.problems;
    if let Some(v) = read_json(fs, "/supervisor/config.json", p) {
        d.supervisor_version = jstr(&v, "version");
    }
    if let Some(v) = read_json(fs, "/supervisor/homeassistant.json", p) {
        d.core_version = jstr(&v, "version");
    }
    for file in ["apps.json", "addons.json"] {
        let path = format!("/supervisor/{file}");
        if let Some(v) = read_json(fs, &path, p) {
            d.addons_file = Some(file.to_string());
            if let Some(user) = v.get("user").and_then(Value::as_object) {
                for (slug, cfg) in user {
                    let name = v
                        .get("system")
                        .and_then(|s| s.get(slug))
                        .and_then(|m| jstr(m, "name"));
                    d.addons.push(Addon {
                        slug: slug.clone(),
                        version: jstr(cfg, "version"),
                        name,
                    });
                }
            }
            break;
        }
    }
    d.addons.sort_by(|a, b| a.slug.cmp(&b.slug));
    d.config_dir = config_dir(fs, "/supervisor/homeassistant");
    for dir in ["/supervisor/backup", "/supervisor/core/backup"] {
        list_backups(fs, dir, &mut d.backups, &mut d.problems);
    }
    match read_small(fs, "/rauc.db") {
        Ok(v) => d.legacy_rauc_db = v,
        Err(e) => d.problems.push(format!("{e:#}")),
    }
    d
}

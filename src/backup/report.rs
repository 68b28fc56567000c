//! `backup report`: what a restore will not bring back by itself, so a migration can be
//! ticked off item by item (ha-backup-format.md §9). Read from a backup (decrypted when
//! needed) or straight from a card or image:
//!
//! - OAuth integrations (`auth_implementation`/`token` in `.storage/core.config_entries`):
//!   the sign-in may have to be redone, and those through Home Assistant Cloud need the
//!   Cloud login first; application credentials are looked up by id;
//! - integrations bound to hardware: ZHA, Z-Wave JS, other serial devices, anything whose
//!   entry names a `/dev/…`, `COM…`, `socket://` or `esphome://` path;
//! - add-ons that map devices (options naming `/dev/…`, `devices`, `usb`, `uart`, `gpio`);
//! - network storage (Supervisor's `mounts.json`, `supervisor.tar.gz` in a backup, or what
//!   `backup create` noted in `extra.lifeboat.network_mounts`);
//! - remote access: Home Assistant Cloud and tunnel/VPN/proxy add-ons;
//! - `!secret` references that `secrets.yaml` does not define.
//!
//! Gathering ([`from_card`], [`from_backup`]) is separate from judging ([`analyse`], pure).

use super::archive::{self, Backup};
use super::card::{self, Card};
use super::inner::{self, EntryKind};
use super::password::Password;
use super::securetar::KeyRing;
use super::tarscan;
use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// YAML files larger than this are not scanned for `!secret`.
const MAX_YAML: u64 = 1 << 20;
/// At most this many YAML files are scanned.
const MAX_YAML_FILES: usize = 4000;
/// Directories of the config dir that hold no configuration YAML of the user's.
const SKIP_DIRS: &[&str] = &[
    ".storage",
    ".cloud",
    ".cache",
    "custom_components",
    "deps",
    "tts",
    "backups",
    "tmp_backups",
    "www",
    "node_modules",
    "__pycache__",
    ".git",
];

/// What the report is read from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `.storage/core.config_entries`.
    pub config_entries: Option<Value>,
    /// `.storage/application_credentials`.
    pub application_credentials: Option<Value>,
    /// A Home Assistant Cloud login is stored (`.cloud/*auth*.json`, or `cloud_user` in
    /// `.storage/cloud`).
    pub cloud_login: bool,
    /// (path in the config dir, text) of the YAML files.
    pub yaml: Vec<(String, String)>,
    /// Add-ons: (slug, user options, system manifest).
    pub addons: Vec<(String, Value, Value)>,
    /// Supervisor's `mounts.json` (or the list `backup create` noted).
    pub mounts: Option<Value>,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// The kinds of things to redo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Oauth,
    Hardware,
    AddonDevice,
    NetworkStorage,
    RemoteAccess,
    MissingSecret,
}

impl Category {
    /// Heading for people.
    pub fn title(self) -> &'static str {
        match self {
            Category::Oauth => "Sign-ins (OAuth)",
            Category::Hardware => "Hardware-bound integrations",
            Category::AddonDevice => "Add-ons that use devices",
            Category::NetworkStorage => "Network storage",
            Category::RemoteAccess => "Remote access",
            Category::MissingSecret => "Missing secrets",
        }
    }
    /// Short label for a table.
    pub fn label(self) -> &'static str {
        match self {
            Category::Oauth => "sign-in",
            Category::Hardware => "hardware",
            Category::AddonDevice => "add-on device",
            Category::NetworkStorage => "network storage",
            Category::RemoteAccess => "remote access",
            Category::MissingSecret => "missing secret",
        }
    }
}

/// One thing to do after restoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub category: Category,
    /// Integration domain, add-on slug, mount name or secret name.
    pub subject: String,
    /// For people: the integration's title, the add-on's name…
    pub title: String,
    /// Config entry id, when it is one.
    pub entry_id: Option<String>,
    /// What was found.
    pub detail: String,
    /// What to do.
    pub action: String,
    /// Device paths involved.
    pub paths: Vec<String>,
    /// Sign-in goes through Home Assistant Cloud (log in there first).
    pub needs_cloud: bool,
    /// The entry is disabled (it will not complain until enabled).
    pub disabled: bool,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    /// `backup` or `disk`.
    pub kind: &'static str,
    pub items: Vec<Item>,
    /// Items per category.
    pub counts: BTreeMap<Category, usize>,
    pub problems: Vec<String>,
}

// ------------------------------------------------------------------ judging

/// Integrations tied to a radio, stick or the machine itself.
const HARDWARE_DOMAINS: &[&str] = &[
    "zha",
    "zwave_js",
    "zwave_me",
    "rfxtrx",
    "rflink",
    "velbus",
    "dsmr",
    "enocean",
    "insteon",
    "homeassistant_sky_connect",
    "homeassistant_connect_zbt2",
    "homeassistant_yellow",
    "homeassistant_green",
    "otbr",
    "bluetooth",
    "modbus",
    "serial",
    "firmata",
    "crownstone",
    "landisgyr_heat_meter",
    "edl21",
    "elkm1",
    "nut",
];

/// Add-ons that give remote access (tunnels, VPNs, proxies, dynamic DNS), by slug words.
const REMOTE_ADDON_WORDS: &[&str] = &[
    "cloudflared",
    "tailscale",
    "zerotier",
    "wireguard",
    "openvpn",
    "ngrok",
    "duckdns",
    "dynu",
    "nginx",
    "nginxproxymanager",
    "letsencrypt",
    "frp",
    "remote_ui",
    "tunnel",
];

fn is_device_string(s: &str) -> bool {
    let com = match (s.get(..3), s.get(3..)) {
        (Some(p), Some(n)) => {
            p.eq_ignore_ascii_case("com") && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    s.starts_with("/dev/") || s.starts_with("socket://") || s.starts_with("esphome://") || com
}

/// Every device-like string in a JSON value.
fn device_strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if is_device_string(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| device_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| device_strings(x, out)),
        _ => {}
    }
}

fn hardware_action(paths: &[String], domain: &str) -> String {
    let mut a = Vec::new();
    if paths.iter().any(|p| p.starts_with("/dev/serial/by-id/")) {
        a.push(
            "Plug the same stick into the new machine before Home Assistant starts: its \
             /dev/serial/by-id name stays the same on the same stick (a different stick, even \
             of the same model, has another name: reconfigure the integration to it)",
        );
    }
    if paths.iter().any(|p| {
        p.starts_with("/dev/")
            && !p.starts_with("/dev/serial/by-id/")
            && !p.starts_with("/dev/serial/by-path/")
    }) {
        a.push(
            "A /dev/ttyUSB0-style name depends on plug order and the machine: plug the stick \
             in, look it up under /dev/serial/by-id (Settings → System → Hardware → All \
             hardware) and reconfigure the integration to that name",
        );
    }
    if paths
        .iter()
        .any(|p| p.starts_with("socket://") || p.starts_with("esphome://"))
    {
        a.push("A network coordinator: make sure the new machine reaches it at that address");
    }
    if paths.is_empty() {
        a.push(
            "Bound to this machine's own hardware: on other hardware it shows up as new or \
             fails; set it up again there",
        );
    }
    if domain == "zwave_js" || domain == "zha" {
        a.push("The network itself (keys, paired devices) comes back with the backup");
    }
    a.join(". ") + "."
}

fn entry_title(e: &Value, domain: &str) -> String {
    e.get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or(domain)
        .to_string()
}

/// What needs attention, from what was read.
pub fn analyse(inp: &Inputs) -> Vec<Item> {
    let mut items = Vec::new();
    let creds: BTreeMap<String, String> = inp
        .application_credentials
        .as_ref()
        .and_then(|v| v.pointer("/data/items"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let id = c.get("id")?.as_str()?.to_string();
                    let name = c
                        .get("name")
                        .and_then(Value::as_str)
                        .or_else(|| c.get("domain").and_then(Value::as_str))
                        .unwrap_or("?")
                        .to_string();
                    Some((id, name))
                })
                .collect()
        })
        .unwrap_or_default();
    let entries = inp
        .config_entries
        .as_ref()
        .and_then(|v| v.pointer("/data/entries"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut zwave_via_addon = false;
    for e in &entries {
        let Some(domain) = e.get("domain").and_then(Value::as_str) else {
            continue;
        };
        if e.get("source").and_then(Value::as_str) == Some("ignore") {
            continue;
        }
        let title = entry_title(e, domain);
        let entry_id = e.get("entry_id").and_then(Value::as_str).map(String::from);
        let disabled = e.get("disabled_by").is_some_and(|d| !d.is_null());
        let data = e.get("data").cloned().unwrap_or(Value::Null);
        let options = e.get("options").cloned().unwrap_or(Value::Null);
        // OAuth.
        let implementation = data.get("auth_implementation").and_then(Value::as_str);
        let token = data
            .get("token")
            .is_some_and(|t| t.get("refresh_token").is_some() || t.get("access_token").is_some());
        if implementation.is_some() || token {
            let needs_cloud = implementation == Some("cloud");
            let detail = match implementation {
                Some("cloud") => {
                    "signs in through Home Assistant Cloud (Nabu Casa account linking)".to_string()
                }
                Some(i) if creds.contains_key(i) => {
                    format!("signs in with application credentials '{}'", creds[i])
                }
                Some(i) if i.contains('.') => format!(
                    "signs in with application credentials '{i}', which are NOT in this \
                     configuration: add them again first"
                ),
                Some(i) => format!("signs in through '{i}'"),
                None => "holds an OAuth token".to_string(),
            };
            items.push(Item {
                category: Category::Oauth,
                subject: domain.to_string(),
                title: title.clone(),
                entry_id: entry_id.clone(),
                detail,
                action: if needs_cloud {
                    "Log in to Home Assistant Cloud first (Settings → Home Assistant Cloud); if \
                     the integration then asks to re-authenticate, use Reconfigure and sign in \
                     again"
                        .into()
                } else {
                    "The sign-in comes back with the backup; if Home Assistant asks to \
                     re-authenticate (a new address, or the provider revoked the token), use \
                     Reconfigure and sign in again"
                        .into()
                },
                paths: vec![],
                needs_cloud,
                disabled,
            });
        }
        // Hardware.
        let mut paths = BTreeSet::new();
        device_strings(&data, &mut paths);
        device_strings(&options, &mut paths);
        let paths: Vec<String> = paths.into_iter().collect();
        if domain == "zwave_js"
            && data
                .get("use_addon")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        {
            zwave_via_addon = true;
        }
        if HARDWARE_DOMAINS.contains(&domain) || !paths.is_empty() {
            let mut detail = if paths.is_empty() {
                format!("{domain} is tied to this machine's hardware")
            } else {
                format!("uses {}", paths.join(", "))
            };
            if domain == "zwave_js"
                && let Some(url) = data.get("url").and_then(Value::as_str)
            {
                detail.push_str(&format!(" (server {url})"));
            }
            let server = data
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| u.starts_with("ws://") || u.starts_with("wss://"));
            let action = match server {
                Some(_) if paths.is_empty() => "The stick is set in the Z-Wave JS server (the \
                    add-on's device option): plug the same stick in and check that option. The \
                    network itself (keys, paired devices) comes back with the backup."
                    .to_string(),
                _ => hardware_action(&paths, domain),
            };
            items.push(Item {
                category: Category::Hardware,
                subject: domain.to_string(),
                title,
                entry_id,
                detail,
                action,
                paths,
                needs_cloud: false,
                disabled,
            });
        }
    }
    // Add-ons: devices and remote access.
    for (slug, options, system) in &inp.addons {
        let name = system
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(slug)
            .to_string();
        let mut paths = BTreeSet::new();
        device_strings(options, &mut paths);
        if let Some(devs) = system.get("devices").and_then(Value::as_array) {
            for d in devs.iter().filter_map(Value::as_str) {
                paths.insert(d.split(':').next().unwrap_or(d).to_string());
            }
        }
        let flags: Vec<&str> = ["usb", "uart", "gpio", "video", "udev"]
            .into_iter()
            .filter(|f| system.get(*f).and_then(Value::as_bool) == Some(true))
            .collect();
        if !paths.is_empty() || !flags.is_empty() {
            let paths: Vec<String> = paths.into_iter().collect();
            let mut detail = Vec::new();
            if !paths.is_empty() {
                detail.push(format!("uses {}", paths.join(", ")));
            }
            if !flags.is_empty() {
                detail.push(format!("has {} access", flags.join(", ")));
            }
            let mut action = hardware_action(&paths, slug);
            if slug.ends_with("zwave_js") && zwave_via_addon {
                action
                    .push_str(" The Z-Wave JS integration talks to the stick through this add-on.");
            }
            items.push(Item {
                category: Category::AddonDevice,
                subject: slug.clone(),
                title: name.clone(),
                entry_id: None,
                detail: detail.join("; "),
                action: action.replace(
                    "reconfigure the integration",
                    "change the add-on's device option",
                ),
                paths,
                needs_cloud: false,
                disabled: false,
            });
        }
        let lower = slug.to_ascii_lowercase();
        if let Some(w) = REMOTE_ADDON_WORDS.iter().find(|w| lower.contains(*w)) {
            let action = match *w {
                "tailscale" | "zerotier" => {
                    "The node identity is tied to this machine: sign in \
                    again on the new one and approve the new node (remove the old one)"
                }
                "cloudflared" => {
                    "The tunnel comes back with the add-on's options; check that it \
                    connects, and remove the old connector in Cloudflare"
                }
                "duckdns" | "dynu" => {
                    "The add-on updates the DNS name to the new machine's \
                    address once it runs; check the router still forwards the port to it"
                }
                _ => {
                    "Check that it connects from the new machine; port forwards on the router \
                    must point to the new machine's address"
                }
            };
            items.push(Item {
                category: Category::RemoteAccess,
                subject: slug.clone(),
                title: name,
                entry_id: None,
                detail: format!("{w} add-on"),
                action: action.into(),
                paths: vec![],
                needs_cloud: false,
                disabled: false,
            });
        }
    }
    if inp.cloud_login {
        items.push(Item {
            category: Category::RemoteAccess,
            subject: "cloud".into(),
            title: "Home Assistant Cloud".into(),
            entry_id: None,
            detail: "logged in to Home Assistant Cloud (remote UI, Alexa/Google, cloud webhooks)"
                .into(),
            action: "Log in to Home Assistant Cloud again if it asks (Settings → Home Assistant \
                     Cloud); the remote address stays with the account"
                .into(),
            paths: vec![],
            needs_cloud: true,
            disabled: false,
        });
    }
    // Network storage.
    if let Some(m) = inp
        .mounts
        .as_ref()
        .and_then(|m| m.get("mounts"))
        .and_then(Value::as_array)
    {
        for mount in m {
            let name = mount
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let kind = mount.get("type").and_then(Value::as_str).unwrap_or("?");
            let server = mount.get("server").and_then(Value::as_str).unwrap_or("?");
            let place = match (
                mount.get("share").and_then(Value::as_str),
                mount.get("path").and_then(Value::as_str),
            ) {
                (Some(s), _) => format!("//{server}/{s}"),
                (None, Some(p)) => format!("{server}:{p}"),
                _ => server.to_string(),
            };
            let usage = mount.get("usage").and_then(Value::as_str).unwrap_or("?");
            items.push(Item {
                category: Category::NetworkStorage,
                subject: name.clone(),
                title: name,
                entry_id: None,
                detail: format!("{kind} {place}, used for {usage}"),
                action: "Add it again in Settings → System → Storage (with its password): \
                         network mounts are not restored with the configuration"
                    .into(),
                paths: vec![],
                needs_cloud: false,
                disabled: false,
            });
        }
    }
    // Secrets.
    items.extend(missing_secrets(&inp.yaml));
    items.sort_by(|a, b| a.category.cmp(&b.category).then(a.subject.cmp(&b.subject)));
    items
}

/// Strip a YAML comment (a `#` at the start or after white space).
fn uncomment(line: &str) -> &str {
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') {
            return &line[..i];
        }
    }
    line
}

/// Top-level keys of a secrets.yaml.
fn secret_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(uncomment)
        .filter(|l| !l.starts_with([' ', '\t', '-']) && !l.trim().is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim()))
        .map(|k| k.trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect()
}

/// `!secret NAME` references, with the files they are in, and the secrets.yaml keys; the
/// references no secrets.yaml defines.
fn missing_secrets(yaml: &[(String, String)]) -> Vec<Item> {
    let mut defined = BTreeSet::new();
    let mut have_secrets = false;
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in yaml {
        if path == "secrets.yaml" || path.ends_with("/secrets.yaml") {
            have_secrets = true;
            defined.extend(secret_keys(text));
            continue;
        }
        for line in text.lines() {
            let line = uncomment(line);
            let mut rest = line;
            while let Some(i) = rest.find("!secret") {
                rest = &rest[i + 7..];
                let name: String = rest
                    .trim_start()
                    .trim_start_matches(['"', '\''])
                    .chars()
                    .take_while(|c| {
                        !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | '}' | ']')
                    })
                    .collect();
                if !name.is_empty() {
                    used.entry(name).or_default().insert(path.clone());
                }
            }
        }
    }
    used.into_iter()
        .filter(|(n, _)| !defined.contains(n))
        .map(|(name, files)| Item {
            category: Category::MissingSecret,
            subject: name.clone(),
            title: name.clone(),
            entry_id: None,
            detail: format!(
                "used in {}, {}",
                files.into_iter().collect::<Vec<_>>().join(", "),
                if have_secrets {
                    "not defined in secrets.yaml"
                } else {
                    "and there is no secrets.yaml"
                }
            ),
            action: format!(
                "Add `{name}: …` to secrets.yaml, or Home Assistant leaves out the \
                 configuration that uses it"
            ),
            paths: vec![],
            needs_cloud: false,
            disabled: false,
        })
        .collect()
}

/// Build the report from inputs.
pub fn report(source: &str, kind: &'static str, inp: Inputs) -> Report {
    let items = analyse(&inp);
    let mut counts = BTreeMap::new();
    for i in &items {
        *counts.entry(i.category).or_insert(0) += 1;
    }
    Report {
        source: source.to_string(),
        kind,
        items,
        counts,
        problems: inp.problems,
    }
}

// ------------------------------------------------------------------ gathering

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn skipped_dir(rel: &str) -> bool {
    SKIP_DIRS.contains(&rel)
}

/// Read what the report needs from a card's data partition.
pub fn from_card(c: &Card) -> Inputs {
    let mut inp = Inputs::default();
    let p = &mut inp.problems;
    let cfg = "/supervisor/homeassistant";
    inp.config_entries = card::read_json(
        &c.fs,
        format!("{cfg}/.storage/core.config_entries").as_bytes(),
        p,
    );
    inp.application_credentials = card::read_json(
        &c.fs,
        format!("{cfg}/.storage/application_credentials").as_bytes(),
        p,
    );
    let cloud = card::read_json(&c.fs, format!("{cfg}/.storage/cloud").as_bytes(), p);
    inp.cloud_login = cloud
        .as_ref()
        .and_then(|v| v.pointer("/data/cloud_user"))
        .is_some_and(|u| !u.is_null())
        || card::list_dir(&c.fs, format!("{cfg}/.cloud").as_bytes())
            .unwrap_or_default()
            .iter()
            .any(|i| String::from_utf8_lossy(&i.name).contains("auth"));
    // YAML, breadth-first, bounded.
    let mut dirs = vec![(cfg.as_bytes().to_vec(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = dirs.pop() {
        let Ok(items) = card::list_dir(&c.fs, &dir) else {
            continue;
        };
        for it in items {
            let name = String::from_utf8_lossy(&it.name).into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let path = card::join(&dir, &it.name);
            if it.kind.is_dir() {
                if depth < 12 && !skipped_dir(&r) {
                    dirs.push((path, r, depth + 1));
                }
            } else if it.kind.is_regular_file() && is_yaml(&name) && inp.yaml.len() < MAX_YAML_FILES
            {
                match card::read_small(&c.fs, &path, MAX_YAML) {
                    Ok(Some(b)) => inp.yaml.push((r, String::from_utf8_lossy(&b).into_owned())),
                    Ok(None) => {}
                    Err(_) => {} // larger than a config file: not scanned
                }
            }
        }
    }
    inp.yaml.sort();
    // Add-ons.
    if let Some(f) = c.contents.addons_file.as_deref()
        && let Some(apps) = card::read_json(
            &c.fs,
            format!("/supervisor/{f}").as_bytes(),
            &mut inp.problems,
        )
        && let Some(user) = apps.get("user").and_then(Value::as_object)
    {
        for (slug, u) in user {
            let system = apps
                .get("system")
                .and_then(|s| s.get(slug))
                .cloned()
                .unwrap_or(Value::Null);
            let options = u.get("options").cloned().unwrap_or(Value::Null);
            inp.addons.push((slug.clone(), options, system));
        }
    }
    inp.mounts = card::read_json(&c.fs, b"/supervisor/mounts.json", &mut inp.problems);
    inp
}

/// Read what the report needs from a backup (`password` for encrypted ones).
pub fn from_backup(b: &Backup, password: Option<Password>) -> Result<Inputs> {
    let mut inp = Inputs::default();
    let meta = b.require_meta()?;
    if let Some(m) = meta.pointer("/extra/lifeboat/network_mounts") {
        inp.mounts = Some(serde_json::json!({ "mounts": m }));
    }
    let protected = b.protected();
    let mut keys = password.map(KeyRing::new);
    for m in b.inner_archives() {
        let stem = archive::archive_stem(m).to_string();
        let name = tarscan::normalise(&m.name).to_string();
        let (plain, layers) = match inner::open_decrypted(b.reader(), m, protected, keys.as_mut()) {
            Ok(x) => x,
            Err(inner::OpenError::NeedPassword(v)) => anyhow::bail!(
                "{}: {name} is encrypted (SecureTar {v}): give --password-file FILE or \
                 --emergency-kit FILE, set {}, or run on a terminal to be asked",
                b.what,
                super::password::PASSWORD_ENV
            ),
            Err(e) => anyhow::bail!("{}: {name}: {e}", b.what),
        };
        let stream = inner::tar_stream(plain, &layers);
        let mut addon_json = None;
        let mut cloud_files = false;
        let res = inner::walk(stream, 10_000_000, |e, body| {
            if e.kind != EntryKind::File {
                return Ok(());
            }
            let Ok(parts) = inner::safe_path(&e.raw_name) else {
                return Ok(());
            };
            let p = parts.join("/");
            let mut read = |limit: u64| -> std::io::Result<Option<Vec<u8>>> {
                if e.size > limit {
                    return Ok(None);
                }
                let mut v = Vec::with_capacity(e.size as usize);
                (&mut *body).take(limit).read_to_end(&mut v)?;
                Ok(Some(v))
            };
            match stem.as_str() {
                "homeassistant" => {
                    let Some(rel) = p.strip_prefix("data/") else {
                        return Ok(());
                    };
                    let json = |v: Option<Vec<u8>>| v.and_then(|b| serde_json::from_slice(&b).ok());
                    if rel == ".storage/core.config_entries" {
                        inp.config_entries = json(read(card::MAX_SMALL_FILE)?);
                    } else if rel == ".storage/application_credentials" {
                        inp.application_credentials = json(read(card::MAX_SMALL_FILE)?);
                    } else if rel == ".storage/cloud" {
                        let v: Option<Value> = json(read(card::MAX_SMALL_FILE)?);
                        if v.as_ref()
                            .and_then(|v| v.pointer("/data/cloud_user"))
                            .is_some_and(|u| !u.is_null())
                        {
                            cloud_files = true;
                        }
                    } else if rel.starts_with(".cloud/") && rel.contains("auth") {
                        cloud_files = true;
                    } else if is_yaml(rel)
                        && !rel.split('/').next().is_some_and(skipped_dir)
                        && inp.yaml.len() < MAX_YAML_FILES
                        && let Some(t) = read(MAX_YAML)?
                    {
                        inp.yaml
                            .push((rel.to_string(), String::from_utf8_lossy(&t).into_owned()));
                    }
                }
                "supervisor" => {
                    if p == "mounts.json" {
                        inp.mounts = read(card::MAX_SMALL_FILE)?
                            .and_then(|b| serde_json::from_slice(&b).ok());
                    }
                }
                _ => {
                    if p == "addon.json" {
                        addon_json = read(card::MAX_SMALL_FILE)?
                            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = res {
            inp.problems.push(format!(
                "{}: {name}: {}",
                b.what,
                super::check::describe_read_error(&e)
            ));
        }
        if cloud_files {
            inp.cloud_login = true;
        }
        if let Some(a) = addon_json {
            let options = a.pointer("/user/options").cloned().unwrap_or(Value::Null);
            let system = a.get("system").cloned().unwrap_or(Value::Null);
            inp.addons.push((stem.clone(), options, system));
        }
    }
    if inp.config_entries.is_none() {
        inp.problems.push(format!(
            "{}: no .storage/core.config_entries in the backup (no Home Assistant config in \
             it?): integrations not checked",
            b.what
        ));
    }
    inp.yaml.sort();
    Ok(inp)
}

/// The checklist as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "# Migration checklist\n\nFrom `{}`. Things a restore will not bring back by itself; \
         tick them off as you go.\n",
        r.source
    );
    if r.items.is_empty() {
        s.push_str("\nNothing found that needs attention.\n");
    }
    let mut last = None;
    for i in &r.items {
        if last != Some(i.category) {
            s.push_str(&format!("\n## {}\n\n", i.category.title()));
            last = Some(i.category);
        }
        let who = if i.title != i.subject {
            format!("**{}** (`{}`)", i.title, i.subject)
        } else {
            format!("**{}**", i.title)
        };
        s.push_str(&format!(
            "- [ ] {who}{}: {}. {}\n",
            if i.disabled { " (disabled)" } else { "" },
            i.detail,
            i.action
        ));
    }
    for p in &r.problems {
        s.push_str(&format!("\n> Not read: {p}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(domain: &str, data: Value, source: &str) -> Value {
        json!({"entry_id": format!("id-{domain}"), "domain": domain, "title": domain.to_uppercase(),
               "data": data, "options": {}, "source": source, "disabled_by": null})
    }

    fn inputs() -> Inputs {
        Inputs {
            config_entries: Some(json!({"data": {"entries": [
                entry("spotify", json!({"auth_implementation": "spotify.abc", "token": {"refresh_token": "x"}}), "user"),
                entry("netatmo", json!({"auth_implementation": "cloud", "token": {"access_token": "x"}}), "user"),
                entry("google", json!({"auth_implementation": "google.gone", "token": {"access_token": "x"}}), "user"),
                entry("zha", json!({"device": {"path": "/dev/serial/by-id/usb-x"}, "radio_type": "ezsp"}), "usb"),
                entry("rfxtrx", json!({"device": "/dev/ttyUSB0"}), "user"),
                entry("homeassistant_yellow", json!({}), "system"),
                entry("esphome", json!({"host": "10.0.0.2", "port": 6053}), "zeroconf"),
                entry("zwave_js", json!({"url": "ws://core-zwave-js:3000", "use_addon": true}), "hassio"),
                entry("homekit_controller", json!({"device": "/dev/ttyS9"}), "ignore"),
                entry("custom_thing", json!({"port": "COM3"}), "user"),
            ]}})),
            application_credentials: Some(json!({"data": {"items": [
                {"id": "spotify.abc", "domain": "spotify", "name": "My Spotify app", "client_secret": "s"}]}})),
            cloud_login: true,
            yaml: vec![
                ("configuration.yaml".into(), "http:\n  api_password: !secret api_pw\n# x: !secret commented\nfoo: \"!secret quoted_name\"\n".into()),
                ("packages/a.yaml".into(), "code: !secret alarm_code # trailing\nother: !secret api_pw\n".into()),
                ("secrets.yaml".into(), "api_pw: hunter2\n'quoted_name': x\n  nested: no\n# alarm_code: commented\n".into()),
            ],
            addons: vec![
                ("core_zwave_js".into(), json!({"device": "/dev/serial/by-id/usb-0658"}), json!({"name": "Z-Wave JS", "uart": true})),
                ("a0d7b954_tailscale".into(), json!({}), json!({"name": "Tailscale"})),
                ("core_mosquitto".into(), json!({"logins": []}), json!({"name": "Mosquitto"})),
                ("local_gpio".into(), json!({}), json!({"name": "GPIO", "devices": ["/dev/gpiochip0:/dev/gpiochip0:rwm"], "gpio": true})),
            ],
            mounts: Some(json!({"mounts": [{"name": "nas", "type": "nfs", "server": "nas.lan", "path": "/export/media", "usage": "media"}]})),
            problems: vec![],
        }
    }

    #[test]
    fn finds_what_needs_attention() {
        let items = analyse(&inputs());
        let got: Vec<(Category, &str)> = items
            .iter()
            .map(|i| (i.category, i.subject.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Category::Oauth, "google"),
                (Category::Oauth, "netatmo"),
                (Category::Oauth, "spotify"),
                (Category::Hardware, "custom_thing"),
                (Category::Hardware, "homeassistant_yellow"),
                (Category::Hardware, "rfxtrx"),
                (Category::Hardware, "zha"),
                (Category::Hardware, "zwave_js"),
                (Category::AddonDevice, "core_zwave_js"),
                (Category::AddonDevice, "local_gpio"),
                (Category::NetworkStorage, "nas"),
                (Category::RemoteAccess, "a0d7b954_tailscale"),
                (Category::RemoteAccess, "cloud"),
                (Category::MissingSecret, "alarm_code"),
            ]
        );
        let by = |c: Category, s: &str| {
            items
                .iter()
                .find(|i| i.category == c && i.subject == s)
                .unwrap()
        };
        assert!(by(Category::Oauth, "netatmo").needs_cloud);
        assert!(!by(Category::Oauth, "spotify").needs_cloud);
        assert!(
            by(Category::Oauth, "spotify")
                .detail
                .contains("My Spotify app")
        );
        assert!(
            by(Category::Oauth, "google")
                .detail
                .contains("NOT in this configuration")
        );
        assert!(
            by(Category::Hardware, "rfxtrx")
                .action
                .contains("/dev/serial/by-id")
        );
        assert!(by(Category::Hardware, "zha").action.contains("same stick"));
        assert_eq!(
            by(Category::AddonDevice, "local_gpio").paths,
            vec!["/dev/gpiochip0"]
        );
        assert!(
            by(Category::AddonDevice, "core_zwave_js")
                .action
                .contains("through this add-on")
        );
        assert_eq!(
            by(Category::NetworkStorage, "nas").detail,
            "nfs nas.lan:/export/media, used for media"
        );
        assert!(
            by(Category::MissingSecret, "alarm_code")
                .detail
                .contains("packages/a.yaml")
        );
        assert!(
            by(Category::RemoteAccess, "a0d7b954_tailscale")
                .action
                .contains("approve")
        );
        // Nothing printed carries a secret.
        let all = serde_json::to_string(&items).unwrap();
        assert!(!all.contains("hunter2") && !all.contains("\"s\""));
    }

    #[test]
    fn markdown_is_a_checklist() {
        let r = report("card.img", "disk", inputs());
        let md = markdown(&r);
        assert!(md.starts_with("# Migration checklist"));
        assert_eq!(md.matches("- [ ] ").count(), r.items.len());
        assert!(md.contains("## Sign-ins (OAuth)"));
        assert!(
            md.contains("- [ ] **NETATMO** (`netatmo`): signs in through Home Assistant Cloud")
        );
        assert_eq!(r.counts[&Category::Oauth], 3);
        let empty = report("x", "disk", Inputs::default());
        assert!(markdown(&empty).contains("Nothing found"));
    }

    #[test]
    fn secrets_parsing() {
        assert_eq!(
            secret_keys("a: 1\n  b: 2\n\"c\": 3\n# d: 4\n- e: 5\nf:\n"),
            ["a", "c", "f"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(uncomment("a: b # c"), "a: b ");
        assert_eq!(uncomment("url: http://x/#frag"), "url: http://x/#frag");
        assert!(
            is_device_string("COM3") && !is_device_string("COMMAND") && !is_device_string("/dave")
        );
    }
}

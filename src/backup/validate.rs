//! The rules Home Assistant applies to a backup before restoring it, as findings: Supervisor's
//! `SCHEMA_BACKUP` and Core's `read_backup` checks on `backup.json` (ha-backup-format.md §2,
//! §7), the member set `backup.json` promises, and the Supervisor/Core versions a target
//! needs to accept the backup.

use super::securetar::Version;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Home Assistant will refuse or fail to restore (or the data is damaged).
    Error,
    /// Restores, but something is off, or only some restore paths accept it.
    Warning,
    /// Worth knowing.
    Info,
}

/// One line of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    /// The inner archive or member it is about; None for the backup as a whole.
    pub archive: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn new(level: Level, archive: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            level,
            archive: archive.map(String::from),
            message: message.into(),
        }
    }
}

/// Allowed `folders` entries.
pub const FOLDERS: &[&str] = &["share", "addons/local", "ssl", "media"];

fn err(out: &mut Vec<Finding>, m: impl Into<String>) {
    out.push(Finding::new(Level::Error, Some("backup.json"), m));
}
fn warn(out: &mut Vec<Finding>, m: impl Into<String>) {
    out.push(Finding::new(Level::Warning, Some("backup.json"), m));
}

/// A version string as Home Assistant writes them (`2026.8.3`, `2026.02.3.dev2301`,
/// `2025.1.0b3`): its leading numbers, for comparisons. None if it does not start with one.
pub fn version_key(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split('.') {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            break;
        }
        out.push(digits.parse().ok()?);
        if digits.len() != part.len() {
            break;
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

fn cmp_versions(a: &str, b: &str) -> std::cmp::Ordering {
    version_key(a).cmp(&version_key(b))
}

/// Is `s` an ISO-8601 date-time Python's `fromisoformat` reads (`YYYY-MM-DD[THH:MM[:SS[.f]]][±HH:MM|Z]`)?
pub fn is_iso_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|x| x.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 10
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    let (m, d) = (&s[5..7], &s[8..10]);
    if !("01"..="12").contains(&m) || !("01"..="31").contains(&d) {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    if !matches!(b[10], b'T' | b' ')
        || !digits(11..13)
        || b.get(13) != Some(&b':')
        || !digits(14..16)
    {
        return false;
    }
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        if !digits(i + 1..i + 3) {
            return false;
        }
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let st = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == st {
                return false;
            }
        }
    }
    match b.get(i) {
        None => true,
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            digits(i + 1..i + 3)
                && b.get(i + 3) == Some(&b':')
                && digits(i + 4..i + 6)
                && i + 6 == b.len()
        }
        _ => false,
    }
}

/// Core's `InvalidBackupFilename` rule for `name`.
fn unsafe_name(n: &str) -> bool {
    let b = n.as_bytes();
    n.is_empty()
        || n == "."
        || n == ".."
        || n.contains('/')
        || n.contains('\\')
        || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic())
}

fn is_repo(s: &str) -> bool {
    if s == "local" || s == "core" {
        return true;
    }
    let url = s.split('#').next().unwrap_or("");
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        !host.is_empty() && !host.contains(' ') && !r.contains(' ')
    })
}

/// Findings about a backup.json value by Supervisor's schema and Core's reader.
pub fn check_json(v: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(o) = v.as_object() else {
        err(&mut out, "is not a JSON object");
        return out;
    };
    for k in ["slug", "name", "date", "type"] {
        match o.get(k) {
            None => err(&mut out, format!("required key '{k}' is missing")),
            Some(Value::String(_)) => {}
            Some(_) => err(&mut out, format!("'{k}' is not a string")),
        }
    }
    if let Some(Value::String(n)) = o.get("name")
        && unsafe_name(n)
    {
        err(
            &mut out,
            format!(
                "name '{n}' is refused by Home Assistant Core (no '/', '\\', drive letters, '', '.' or '..')"
            ),
        );
    }
    if let Some(Value::String(d)) = o.get("date")
        && !is_iso_datetime(d)
    {
        err(&mut out, format!("date '{d}' is not an ISO-8601 date-time"));
    }
    if let Some(Value::String(t)) = o.get("type")
        && t != "full"
        && t != "partial"
    {
        err(
            &mut out,
            format!("type '{t}' is neither 'full' nor 'partial'"),
        );
    }
    match o.get("version") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(1) || n.as_u64() == Some(2) => {}
        Some(x) => err(&mut out, format!("version {x} is not 1 or 2")),
    }
    if let Some(sv) = o.get("supervisor_version") {
        match sv.as_str() {
            Some(s) if version_key(s).is_some() => {}
            _ => err(
                &mut out,
                format!("supervisor_version {sv} is not a version"),
            ),
        }
    }
    match o.get("compressed") {
        Some(Value::Bool(_)) => {}
        None => warn(
            &mut out,
            "has no 'compressed' key: Home Assistant Core (Container) restore needs it",
        ),
        Some(x) => err(&mut out, format!("compressed {x} is not true or false")),
    }
    match o.get("protected") {
        None | Some(Value::Bool(_)) | Some(Value::Null) => {}
        Some(Value::String(_)) => out.push(Finding::new(
            Level::Info,
            Some("backup.json"),
            "protected is a legacy string (read as true)",
        )),
        Some(x) => err(&mut out, format!("protected {x} is not a boolean")),
    }
    match o.get("crypto") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "aes128" => {}
        Some(x) => err(&mut out, format!("crypto {x} is not null or \"aes128\"")),
    }
    match o.get("homeassistant") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => match h.get("version") {
            Some(Value::String(s)) if version_key(s).is_some() => {}
            Some(Value::Null) | None => warn(
                &mut out,
                "homeassistant has no version: Supervisor treats it as no Home Assistant data",
            ),
            Some(x) => err(
                &mut out,
                format!("homeassistant.version {x} is not a version"),
            ),
        },
        Some(x) => err(
            &mut out,
            format!("homeassistant {x} is not an object or null"),
        ),
    }
    match o.get("folders") {
        None => {}
        Some(Value::Array(a)) => {
            let mut seen = BTreeSet::new();
            for f in a {
                match f.as_str() {
                    Some("homeassistant") => out.push(Finding::new(
                        Level::Info,
                        Some("backup.json"),
                        "folders lists 'homeassistant' (backup format 1); Supervisor drops it",
                    )),
                    Some(s) if FOLDERS.contains(&s) => {
                        if !seen.insert(s) {
                            err(&mut out, format!("folder '{s}' is listed twice"));
                        }
                    }
                    _ => err(
                        &mut out,
                        format!("folder {f} is not one of share, addons/local, ssl, media"),
                    ),
                }
            }
        }
        Some(x) => err(&mut out, format!("folders {x} is not a list")),
    }
    match o.get("addons") {
        None => {}
        Some(Value::Array(a)) => {
            let mut seen = BTreeSet::new();
            for x in a {
                let slug = x.get("slug").and_then(Value::as_str);
                let ok = slug.is_some()
                    && x.get("name").is_some_and(Value::is_string)
                    && x.get("version")
                        .and_then(Value::as_str)
                        .and_then(version_key)
                        .is_some();
                if !ok {
                    err(
                        &mut out,
                        format!("add-on entry {x} needs slug, name and version strings"),
                    );
                }
                if let Some(s) = slug
                    && !seen.insert(s.to_string())
                {
                    err(&mut out, format!("add-on '{s}' is listed twice"));
                }
            }
        }
        Some(x) => err(&mut out, format!("addons {x} is not a list")),
    }
    match o.get("repositories") {
        None => {}
        Some(Value::Array(a)) => {
            let mut seen = BTreeSet::new();
            for r in a {
                match r.as_str() {
                    Some(s) if is_repo(s) => {
                        if !seen.insert(s) {
                            err(&mut out, format!("repository '{s}' is listed twice"));
                        }
                    }
                    _ => err(
                        &mut out,
                        format!("repository {r} is not 'local', 'core' or a URL"),
                    ),
                }
            }
        }
        Some(x) => err(&mut out, format!("repositories {x} is not a list")),
    }
    if let Some(x) = o.get("extra")
        && !x.is_object()
    {
        err(&mut out, format!("extra {x} is not an object"));
    }
    out
}

/// The inner archives backup.json promises (names without `./`), e.g. `homeassistant.tar.gz`.
pub fn expected_members(v: &Value) -> Vec<String> {
    let ext = if v.get("compressed").and_then(Value::as_bool).unwrap_or(true) {
        ".tar.gz"
    } else {
        ".tar"
    };
    let mut out = Vec::new();
    if v.get("homeassistant").is_some_and(Value::is_object) {
        out.push(format!("homeassistant{ext}"));
    }
    if let Some(a) = v.get("addons").and_then(Value::as_array) {
        for x in a {
            if let Some(s) = x.get("slug").and_then(Value::as_str) {
                out.push(format!("{s}{ext}"));
            }
        }
    }
    if let Some(a) = v.get("folders").and_then(Value::as_array) {
        for f in a.iter().filter_map(Value::as_str) {
            if f != "homeassistant" {
                out.push(format!("{}{ext}", f.replace('/', "_")));
            }
        }
    }
    out
}

/// The versions a restoring system must have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requires {
    /// Minimum Supervisor (HA OS, Supervised).
    pub supervisor: Option<String>,
    /// Minimum Home Assistant Core for a Core/Container restore. HA OS installs the backup's
    /// Core version instead.
    pub core: Option<String>,
    /// Why, one line per reason.
    pub reasons: Vec<String>,
}

fn raise(slot: &mut Option<String>, v: &str) {
    if slot
        .as_deref()
        .is_none_or(|cur| cmp_versions(v, cur).is_gt())
    {
        *slot = Some(v.to_string());
    }
}

/// What a target must run to accept this backup.
pub fn requires(v: &Value, encryption: Option<Version>) -> Requires {
    let mut r = Requires::default();
    if let Some(s) = v.get("supervisor_version").and_then(Value::as_str) {
        raise(&mut r.supervisor, s);
        r.reasons.push(format!(
            "Supervisor refuses backups made by a newer Supervisor (this one: {s})"
        ));
    }
    if let Some(c) = v
        .get("homeassistant")
        .and_then(|h| h.get("version"))
        .and_then(Value::as_str)
    {
        raise(&mut r.core, c);
        r.reasons.push(format!(
            "Home Assistant Core {c} is in the backup: a Container restore needs Core ≥ {c}; HA OS installs {c}"
        ));
    }
    match encryption {
        Some(Version::V3) => {
            raise(&mut r.supervisor, "2026.02.3");
            raise(&mut r.core, "2026.3.0");
            r.reasons.push(
                "SecureTar v3 is read by Supervisor ≥ 2026.02.3 and Home Assistant Core ≥ 2026.3.0"
                    .into(),
            );
        }
        Some(Version::V2) => {
            raise(&mut r.supervisor, "2025.01.0");
            raise(&mut r.core, "2025.2.0");
            r.reasons.push(
                "SecureTar v2 is read by Supervisor ≥ 2025.01.0 and Home Assistant Core ≥ about 2025.2".into(),
            );
        }
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"slug":"7fed74c8","version":2,"name":"Example","date":"2024-11-21T17:58:38.135597+00:00",
               "type":"partial","supervisor_version":"2024.11.5.dev2102","protected":false,"crypto":null,
               "compressed":true,"folders":["share","addons/local"],
               "addons":[{"slug":"a0d7b954_example","name":"Example","version":"9.0.1","size":0.0}],
               "homeassistant":{"version":"2024.11.3","exclude_database":false},
               "repositories":["local","https://github.com/hassio-addons/repository#main","core"]})
    }

    #[test]
    fn accepts_a_supervisor_backup_json() {
        assert_eq!(check_json(&good()), vec![]);
        assert_eq!(
            expected_members(&good()),
            vec![
                "homeassistant.tar.gz",
                "a0d7b954_example.tar.gz",
                "share.tar.gz",
                "addons_local.tar.gz"
            ]
        );
    }

    #[test]
    fn reports_what_home_assistant_rejects() {
        let mut v = good();
        v["name"] = json!("a/b");
        v["date"] = json!("yesterday");
        v["type"] = json!("most");
        v["version"] = json!(3);
        v["folders"] = json!(["share", "share", "config"]);
        v["addons"] = json!([{"slug":"x","name":"X","version":"1.0"},{"slug":"x","name":"X","version":"1.0"}]);
        v["repositories"] = json!(["not a url"]);
        v.as_object_mut().unwrap().remove("compressed");
        v.as_object_mut().unwrap().remove("slug");
        let f = check_json(&v);
        let text: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        for want in [
            "required key 'slug' is missing",
            "name 'a/b' is refused",
            "date 'yesterday'",
            "type 'most'",
            "version 3 is not 1 or 2",
            "folder 'share' is listed twice",
            "folder \"config\"",
            "add-on 'x' is listed twice",
            "repository \"not a url\"",
            "no 'compressed' key",
        ] {
            assert!(
                text.iter().any(|t| t.contains(want)),
                "missing {want:?} in {text:#?}"
            );
        }
    }

    #[test]
    fn dates_and_versions() {
        for ok in [
            "2026-08-21T09:55:28.123456+00:00",
            "2026-11-20T04:45:12+01:00",
            "2026-11-20",
            "2026-11-20T04:45Z",
        ] {
            assert!(is_iso_datetime(ok), "{ok}");
        }
        for bad in [
            "2026-13-01",
            "20261120",
            "2026-11-20T4:45",
            "2026-11-20T04:45:12+0100",
        ] {
            assert!(!is_iso_datetime(bad), "{bad}");
        }
        assert_eq!(version_key("2026.02.3.dev2301"), Some(vec![2026, 2, 3]));
        assert_eq!(version_key("2025.1.0b3"), Some(vec![2025, 1, 0]));
        assert!(cmp_versions("2026.3.0", "2026.02.3").is_gt());
        let r = requires(&good(), Some(Version::V3));
        assert_eq!(r.supervisor.as_deref(), Some("2026.02.3"));
        assert_eq!(r.core.as_deref(), Some("2026.3.0"));
        let r = requires(&good(), None);
        assert_eq!(r.supervisor.as_deref(), Some("2024.11.5.dev2102"));
        assert_eq!(r.core.as_deref(), Some("2024.11.3"));
    }
}

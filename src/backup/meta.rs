//! `backup.json`: the metadata every Home Assistant backup carries. Parsed leniently (unknown
//! keys ignored, legacy spellings accepted) into a [`BackupSummary`] for listings.

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

/// A real backup.json is a few KiB; refuse anything absurd before reading it into memory.
pub const MAX_BACKUP_JSON: u64 = 16 << 20;

/// An add-on (app) recorded in a backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupAddon {
    pub slug: String,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// What a listing shows about one backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupSummary {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub date: Option<String>,
    /// `full` or `partial`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Size of the backup file in bytes.
    pub size: u64,
    pub protected: bool,
    /// `crypto` marker of older Supervisors (`aes128`), when present.
    pub crypto: Option<String>,
    /// SecureTar version of the inner archives (1, 2, 3), from the first one; null when
    /// they are not encrypted.
    pub encryption: Option<super::securetar::Version>,
    pub compressed: Option<bool>,
    /// Home Assistant Core version in the backup, if Core is included.
    pub homeassistant_version: Option<String>,
    pub supervisor_version: Option<String>,
    pub addons: Vec<BackupAddon>,
    pub folders: Vec<String>,
    /// Member files of the outer tar (normalised names), besides backup.json.
    pub members: Vec<String>,
    /// Things Home Assistant would object to, in plain words.
    pub problems: Vec<String>,
}

fn s(v: &Value, k: &str) -> Option<String> {
    match v.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Summarise the bytes of a backup.json.
pub fn summarise(bytes: &[u8]) -> Result<BackupSummary> {
    let v: Value = serde_json::from_slice(bytes).context("not valid JSON")?;
    if !v.is_object() {
        anyhow::bail!("not a JSON object");
    }
    let mut problems = Vec::new();
    for k in ["slug", "name", "date", "type"] {
        if v.get(k).is_none() {
            problems.push(format!("required key '{k}' is missing"));
        }
    }
    let protected = match v.get("protected") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Null) | None => false,
        // Legacy Supervisors stored a one-character string; it means "protected".
        Some(_) => true,
    };
    let addons = v
        .get("addons")
        .or_else(|| v.get("apps"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    Some(BackupAddon {
                        slug: s(x, "slug")?,
                        name: s(x, "name"),
                        version: s(x, "version"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let folders = v
        .get("folders")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(BackupSummary {
        slug: s(&v, "slug"),
        name: s(&v, "name"),
        date: s(&v, "date"),
        kind: s(&v, "type"),
        size: 0,
        protected,
        crypto: s(&v, "crypto"),
        encryption: None,
        compressed: v.get("compressed").and_then(Value::as_bool),
        homeassistant_version: v.get("homeassistant").and_then(|h| s(h, "version")),
        supervisor_version: s(&v, "supervisor_version"),
        addons,
        folders,
        members: Vec::new(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_supervisor_json() {
        let j = br#"{"slug":"a1b2c3d4","name":"Nightly","date":"2026-11-20T04:45:12+00:00",
            "type":"full","protected":"x","compressed":true,"homeassistant":{"version":"2026.8.3"},
            "addons":[{"slug":"core_mosquitto","name":"Mosquitto","version":"6.5.1","size":0}],
            "folders":["share","ssl"],"supervisor_version":"2026.08.1"}"#;
        let s = summarise(j).unwrap();
        assert_eq!(s.slug.as_deref(), Some("a1b2c3d4"));
        assert!(s.protected);
        assert_eq!(s.homeassistant_version.as_deref(), Some("2026.8.3"));
        assert_eq!(s.addons[0].version.as_deref(), Some("6.5.1"));
        assert_eq!(s.folders, vec!["share", "ssl"]);
        assert!(s.problems.is_empty());
    }

    #[test]
    fn rejects_non_objects_and_reports_missing_keys() {
        assert!(summarise(b"[]").is_err());
        assert!(summarise(b"{").is_err());
        let s = summarise(b"{}").unwrap();
        assert_eq!(s.problems.len(), 4);
    }
}

//! The RAUC central status file (`rauc.db` on the boot FAT since HAOS 15.0, on the data
//! partition before; layout notes §6a), as a pure parser.
//!
//! The file is a GLib key file written by RAUC (and appended to by HAOS's
//! `raucdb-update`): sections `[slot.<class>.<index>]` (`boot.0`, `kernel.0|1`,
//! `rootfs.0|1`) carrying `bundle.compatible` (`haos-<board>`), `bundle.version`, and after
//! real installs `status`, `sha256`, `size`, `installed.timestamp|count`,
//! `activated.timestamp|count`; plus an optional `[system]` section (RAUC's own boot
//! tracking, e.g. `boot-id`). Slot index 0 is boot name A, 1 is B.
//!
//! Tolerated: `#`/`;` comments, blank lines, CRLF, leading/trailing whitespace around keys
//! and values, unknown keys and sections. Lines that are neither are collected as
//! warnings rather than failing the whole file, because a half-readable status file is
//! still useful to a rescue tool. A file with NUL bytes (a torn write on FAT) is an error.

use std::collections::BTreeMap;

use super::bootenv::Slot;

/// Errors of the RAUC status parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaucError {
    #[error(
        "RAUC status file contains {nul} NUL bytes out of {len} (torn write or zeroed sectors?)"
    )]
    Binary { nul: usize, len: usize },
    #[error("RAUC status file is not UTF-8 text (first bad byte at offset {0})")]
    NotText(usize),
    #[error("not a RAUC status file: no [section] header in {0} bytes of text")]
    NoSections(usize),
}

/// The status of one slot (`[slot.<class>.<index>]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct SlotStatus {
    /// Slot class: `rootfs`, `kernel`, `boot`, …
    pub class: String,
    /// Slot index: 0 = A, 1 = B.
    pub index: u32,
    pub bundle_compatible: Option<String>,
    pub bundle_version: Option<String>,
    /// `ok` after a successful install, otherwise RAUC's failure text.
    pub status: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// ISO 8601, e.g. `2025-02-10T18:03:51Z`, as stored.
    pub installed_timestamp: Option<String>,
    pub installed_count: Option<u64>,
    pub activated_timestamp: Option<String>,
    pub activated_count: Option<u64>,
    /// Every key of the section as stored (unknown keys included, values unescaped).
    pub keys: BTreeMap<String, String>,
}

impl SlotStatus {
    /// The A/B boot name of this slot, when its index is 0 or 1.
    pub fn slot(&self) -> Option<Slot> {
        Slot::from_index(self.index)
    }

    /// The board id from `bundle.compatible` = `haos-<board>` (older images: `hassos-<board>`).
    pub fn board(&self) -> Option<&str> {
        board_from_compatible(self.bundle_compatible.as_deref()?)
    }
}

/// Board id from a RAUC compatible string (`haos-rpi4-64` → `rpi4-64`).
pub fn board_from_compatible(compatible: &str) -> Option<&str> {
    let c = compatible.trim();
    c.strip_prefix("haos-")
        .or_else(|| c.strip_prefix("hassos-"))
        .filter(|b| !b.is_empty())
}

/// A parsed RAUC status file.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RaucStatus {
    /// Slot sections, sorted by (class, index).
    pub slots: Vec<SlotStatus>,
    /// The `[system]` section, when present (e.g. `boot-id`).
    pub system: BTreeMap<String, String>,
    /// Any other section, by name, for completeness.
    pub other_sections: BTreeMap<String, BTreeMap<String, String>>,
    /// Lines that could not be understood (1-based line number and text).
    pub warnings: Vec<String>,
}

impl RaucStatus {
    /// The slot `[slot.<class>.<index>]`, if the file has it.
    pub fn slot(&self, class: &str, index: u32) -> Option<&SlotStatus> {
        self.slots
            .iter()
            .find(|s| s.class == class && s.index == index)
    }

    /// `bundle.version` of the rootfs of `slot` (`rootfs.0` = A, `rootfs.1` = B).
    pub fn version_of(&self, slot: Slot) -> Option<&str> {
        self.slot("rootfs", slot.index())?.bundle_version.as_deref()
    }

    /// The board id from `bundle.compatible` = `haos-<board>`: taken from the rootfs slots
    /// first (A, then B), then from any other slot.
    pub fn board(&self) -> Option<&str> {
        let preferred = [("rootfs", 0), ("rootfs", 1), ("boot", 0)];
        preferred
            .iter()
            .filter_map(|(c, i)| self.slot(c, *i))
            .chain(self.slots.iter())
            .find_map(SlotStatus::board)
    }

    /// Every distinct `bundle.compatible` in the file (more than one is suspicious: a disk
    /// moved between boards, or a mixed-up clone).
    pub fn compatibles(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .slots
            .iter()
            .filter_map(|s| s.bundle_compatible.as_deref())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// A key of the `[system]` section.
    pub fn system_value(&self, key: &str) -> Option<&str> {
        self.system.get(key).map(String::as_str)
    }
}

/// Parse raw bytes of a RAUC status file (rejects binary content; see [`parse_rauc_status`]).
pub fn parse_rauc_status_bytes(bytes: &[u8]) -> Result<RaucStatus, RaucError> {
    let nul = bytes.iter().filter(|&&b| b == 0).count();
    if nul > 0 {
        return Err(RaucError::Binary {
            nul,
            len: bytes.len(),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| RaucError::NotText(e.valid_up_to()))?;
    parse_rauc_status(text)
}

/// GLib key-file string unescaping (`\s \n \t \r \\`); unknown escapes are kept verbatim.
fn unescape_keyfile(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parse the text of a RAUC status file. Empty text (or only comments) yields an empty
/// status; text without any `[section]` is an error.
pub fn parse_rauc_status(text: &str) -> Result<RaucStatus, RaucError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut current: Option<usize> = None;
    let mut warnings = Vec::new();
    let mut meaningful = false;
    for (no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        meaningful = true;
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            // A repeated section continues the earlier one (GLib merges them).
            current = Some(match sections.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    sections.push((name.to_string(), BTreeMap::new()));
                    sections.len() - 1
                }
            });
            continue;
        }
        let map = current.and_then(|i| sections.get_mut(i)).map(|(_, m)| m);
        match (line.split_once('='), map) {
            (Some((k, v)), Some(map)) if !k.trim().is_empty() => {
                map.insert(k.trim().to_string(), unescape_keyfile(v.trim()));
            }
            (Some(_), None) => warnings.push(format!("line {}: key before any section", no + 1)),
            _ => warnings.push(format!("line {}: not key=value: {line:?}", no + 1)),
        }
    }
    if meaningful && sections.is_empty() {
        return Err(RaucError::NoSections(text.len()));
    }

    let mut status = RaucStatus {
        warnings,
        ..RaucStatus::default()
    };
    for (name, keys) in sections {
        if name == "system" {
            status.system.extend(keys);
            continue;
        }
        let slot = name
            .strip_prefix("slot.")
            .and_then(|rest| rest.rsplit_once('.'))
            .and_then(|(class, idx)| Some((class, idx.parse::<u32>().ok()?)))
            .filter(|(class, _)| !class.is_empty());
        let Some((class, index)) = slot else {
            status.other_sections.entry(name).or_default().extend(keys);
            continue;
        };
        let get = |k: &str| keys.get(k).cloned();
        let num = |k: &str| keys.get(k).and_then(|v| v.trim().parse::<u64>().ok());
        status.slots.push(SlotStatus {
            class: class.to_string(),
            index,
            bundle_compatible: get("bundle.compatible"),
            bundle_version: get("bundle.version"),
            status: get("status"),
            sha256: get("sha256"),
            size: num("size"),
            installed_timestamp: get("installed.timestamp"),
            installed_count: num("installed.count"),
            activated_timestamp: get("activated.timestamp"),
            activated_count: num("activated.count"),
            keys,
        });
    }
    status
        .slots
        .sort_by(|a, b| (a.class.as_str(), a.index).cmp(&(b.class.as_str(), b.index)));
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like a status file of an RPi4 that updated 16.3 → 17.1 into slot B.
    const SAMPLE: &str = "\
[system]
boot-id=5a1c9ed7-0a0b-4b5c-9d1e-2f3a4b5c6d7e

[slot.boot.0]
bundle.compatible=haos-rpi4-64
bundle.version=17.1
status=ok
sha256=1f0e3dad99908345f7439f8ffabdffc4ad1e8f8e1f0e3dad99908345f7439f8f
size=33554432
installed.timestamp=2026-02-20T10:11:12Z
installed.count=4

[slot.kernel.1]
bundle.compatible=haos-rpi4-64
bundle.version=17.1
status=ok
size=11534336
installed.timestamp=2026-02-20T10:11:20Z
installed.count=2

[slot.rootfs.1]
bundle.compatible=haos-rpi4-64
bundle.version=17.1
bundle.description=Home\\sAssistant\\sOS
status=ok
sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
size=268435456
installed.timestamp=2026-02-20T10:12:01Z
installed.count=2
activated.timestamp=2026-02-20T10:12:02Z
activated.count=2

[slot.rootfs.0]
bundle.compatible=haos-rpi4-64
bundle.version=16.3
";

    #[test]
    fn parses_sample() {
        let s = parse_rauc_status(SAMPLE).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.slots.len(), 4);
        // Sorted by class then index.
        let names: Vec<String> = s
            .slots
            .iter()
            .map(|x| format!("{}.{}", x.class, x.index))
            .collect();
        assert_eq!(names, ["boot.0", "kernel.1", "rootfs.0", "rootfs.1"]);
        assert_eq!(s.version_of(Slot::A), Some("16.3"));
        assert_eq!(s.version_of(Slot::B), Some("17.1"));
        assert_eq!(s.board(), Some("rpi4-64"));
        assert_eq!(s.compatibles(), ["haos-rpi4-64"]);
        assert_eq!(
            s.system_value("boot-id"),
            Some("5a1c9ed7-0a0b-4b5c-9d1e-2f3a4b5c6d7e")
        );
        let b = s.slot("rootfs", 1).unwrap();
        assert_eq!(b.slot(), Some(Slot::B));
        assert_eq!(b.status.as_deref(), Some("ok"));
        assert_eq!(b.size, Some(268435456));
        assert_eq!(b.installed_count, Some(2));
        assert_eq!(b.activated_count, Some(2));
        assert_eq!(
            b.activated_timestamp.as_deref(),
            Some("2026-02-20T10:12:02Z")
        );
        assert_eq!(
            b.keys.get("bundle.description").map(String::as_str),
            Some("Home Assistant OS")
        );
        assert_eq!(s.slot("rootfs", 0).unwrap().status, None);
    }

    #[test]
    fn tolerates_crlf_comments_and_junk() {
        let text = "\u{feff}# written by raucdb-update\r\n; another comment\r\n\r\n[slot.rootfs.0]\r\n  bundle.version = 15.2 \r\nbundle.compatible=hassos-ova\r\nweird line\r\nfuture.key=1\r\n[slot.rootfs.x]\r\na=b\r\n[artifacts.foo]\r\nc=d\r\n";
        let s = parse_rauc_status(text).unwrap();
        assert_eq!(s.version_of(Slot::A), Some("15.2"));
        assert_eq!(s.version_of(Slot::B), None);
        assert_eq!(s.board(), Some("ova"));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].starts_with("line 7"));
        assert_eq!(
            s.slot("rootfs", 0)
                .unwrap()
                .keys
                .get("future.key")
                .map(String::as_str),
            Some("1")
        );
        assert!(s.other_sections.contains_key("slot.rootfs.x"));
        assert!(s.other_sections.contains_key("artifacts.foo"));
    }

    #[test]
    fn repeated_section_merges() {
        let s = parse_rauc_status(
            "[slot.rootfs.0]\nbundle.version=1\n[slot.boot.0]\nx=1\n[slot.rootfs.0]\nstatus=ok\n",
        )
        .unwrap();
        let a = s.slot("rootfs", 0).unwrap();
        assert_eq!(a.bundle_version.as_deref(), Some("1"));
        assert_eq!(a.status.as_deref(), Some("ok"));
        assert_eq!(s.slots.len(), 2);
    }

    #[test]
    fn errors() {
        assert!(parse_rauc_status("").unwrap().slots.is_empty());
        assert!(
            parse_rauc_status("# only a comment\n")
                .unwrap()
                .slots
                .is_empty()
        );
        assert_eq!(
            parse_rauc_status("bundle.version=1\n"),
            Err(RaucError::NoSections(17))
        );
        assert_eq!(
            parse_rauc_status_bytes(&[b'[', 0, 0]),
            Err(RaucError::Binary { nul: 2, len: 3 })
        );
        assert_eq!(
            parse_rauc_status_bytes(b"[s]\n\xff"),
            Err(RaucError::NotText(4))
        );
        assert!(parse_rauc_status_bytes(SAMPLE.as_bytes()).is_ok());
    }

    #[test]
    fn compatible_helpers() {
        assert_eq!(board_from_compatible("haos-green"), Some("green"));
        assert_eq!(board_from_compatible("haos-"), None);
        assert_eq!(board_from_compatible("FooCorp"), None);
        assert_eq!(unescape_keyfile(r"a\sb\\c\q\"), "a b\\c\\q\\");
    }
}

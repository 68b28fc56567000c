//! `os-release` files (`/usr/lib/os-release` in a HAOS rootfs slot; layout notes §6c), as a
//! pure parser following os-release(5): `KEY=value` lines, `#` comments and blank lines
//! ignored, values optionally in double or single quotes with shell-style backslash escapes.
//!
//! HAOS writes `NAME`, `ID=haos`, `VERSION_ID` (e.g. `17.1`, `18.0.rc1`), `VERSION`,
//! `PRETTY_NAME`, `CPE_NAME`, `VARIANT`, `VARIANT_ID` (the board id, e.g. `rpi4-64`),
//! `SUPERVISOR_MACHINE` and `SUPERVISOR_ARCH`; accessors cover the ones the tool reports.

use std::collections::BTreeMap;

/// Errors of the os-release parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsReleaseError {
    #[error("os-release contains NUL bytes (zeroed or binary data, not a text file)")]
    Binary,
    #[error("os-release has no valid KEY=value line ({0} lines ignored)")]
    NoAssignments(usize),
}

/// A parsed os-release file.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct OsRelease {
    /// Every assignment, unquoted and unescaped (a repeated key: the last one wins).
    pub vars: BTreeMap<String, String>,
    /// Lines that were ignored, with their 1-based number and reason.
    pub ignored: Vec<String>,
}

impl OsRelease {
    /// Any key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
    /// `ID` (`haos`; the spec's default when absent is `linux`, not applied here).
    pub fn id(&self) -> Option<&str> {
        self.get("ID")
    }
    /// `NAME`, e.g. `Home Assistant OS`.
    pub fn name(&self) -> Option<&str> {
        self.get("NAME")
    }
    /// `VERSION_ID`, e.g. `17.1`.
    pub fn version_id(&self) -> Option<&str> {
        self.get("VERSION_ID")
    }
    /// `VERSION`, e.g. `17.1 (Raspberry Pi 4 64-bit)`.
    pub fn version(&self) -> Option<&str> {
        self.get("VERSION")
    }
    /// `VARIANT_ID`: the HAOS board id, e.g. `rpi4-64`, `generic-x86-64`.
    pub fn variant_id(&self) -> Option<&str> {
        self.get("VARIANT_ID")
    }
    /// `PRETTY_NAME`, e.g. `Home Assistant OS 17.1`.
    pub fn pretty_name(&self) -> Option<&str> {
        self.get("PRETTY_NAME")
    }
    /// True for Home Assistant OS (`ID=haos`, or `hassos` in old releases).
    pub fn is_haos(&self) -> bool {
        matches!(self.id(), Some("haos" | "hassos"))
    }
}

fn valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Unquote a value the way a POSIX shell would for the subset os-release allows.
fn unquote(v: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars().peekable();
    let mut trailing_ws_start: Option<usize> = None;
    while let Some(c) = it.next() {
        match c {
            '"' => {
                trailing_ws_start = None;
                loop {
                    match it.next() {
                        None => return Err("unterminated double quote"),
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(e @ ('"' | '\\' | '`' | '$')) => out.push(e),
                            Some(o) => {
                                out.push('\\');
                                out.push(o);
                            }
                            None => return Err("unterminated double quote"),
                        },
                        Some(o) => out.push(o),
                    }
                }
            }
            '\'' => {
                trailing_ws_start = None;
                loop {
                    match it.next() {
                        None => return Err("unterminated single quote"),
                        Some('\'') => break,
                        Some(o) => out.push(o),
                    }
                }
            }
            '\\' => {
                trailing_ws_start = None;
                if let Some(e) = it.next() {
                    out.push(e);
                }
            }
            c if c.is_whitespace() => {
                if trailing_ws_start.is_none() {
                    trailing_ws_start = Some(out.len());
                }
                out.push(c);
            }
            c => {
                trailing_ws_start = None;
                out.push(c);
            }
        }
    }
    if let Some(n) = trailing_ws_start {
        out.truncate(n);
    }
    Ok(out)
}

/// Parse os-release bytes (lossy UTF-8; NUL bytes are an error).
pub fn parse_os_release_bytes(bytes: &[u8]) -> Result<OsRelease, OsReleaseError> {
    if bytes.contains(&0) {
        return Err(OsReleaseError::Binary);
    }
    parse_os_release(&String::from_utf8_lossy(bytes))
}

/// Parse os-release text. Bad lines are listed in [`OsRelease::ignored`]; text with no
/// valid assignment at all (but some content) is an error. Empty text is an empty result.
pub fn parse_os_release(text: &str) -> Result<OsRelease, OsReleaseError> {
    let mut rel = OsRelease::default();
    for (no, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            rel.ignored
                .push(format!("line {}: no '=': {line:?}", no + 1));
            continue;
        };
        let k = k.trim_end();
        if !valid_key(k) {
            rel.ignored
                .push(format!("line {}: invalid key {k:?}", no + 1));
            continue;
        }
        match unquote(v.trim_start()) {
            Ok(val) => {
                rel.vars.insert(k.to_string(), val);
            }
            Err(why) => rel.ignored.push(format!("line {}: {k}: {why}", no + 1)),
        }
    }
    if rel.vars.is_empty() && !rel.ignored.is_empty() {
        return Err(OsReleaseError::NoAssignments(rel.ignored.len()));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAOS: &str = r#"NAME="Home Assistant OS"
VERSION="17.1 (Raspberry Pi 4 64-bit)"
ID=haos
VERSION_ID=17.1
PRETTY_NAME="Home Assistant OS 17.1"
CPE_NAME=cpe:2.3:o:home-assistant:haos:17.1:*:production:*:*:*:rpi4-64:*
HOME_URL=https://hass.io/
VARIANT="Home Assistant OS Raspberry Pi 4 64-bit"
VARIANT_ID=rpi4-64
SUPERVISOR_MACHINE=raspberrypi4-64
SUPERVISOR_ARCH=aarch64
"#;

    #[test]
    fn parses_haos() {
        let r = parse_os_release(HAOS).unwrap();
        assert!(r.ignored.is_empty());
        assert_eq!(r.id(), Some("haos"));
        assert!(r.is_haos());
        assert_eq!(r.version_id(), Some("17.1"));
        assert_eq!(r.variant_id(), Some("rpi4-64"));
        assert_eq!(r.pretty_name(), Some("Home Assistant OS 17.1"));
        assert_eq!(r.name(), Some("Home Assistant OS"));
        assert_eq!(r.version(), Some("17.1 (Raspberry Pi 4 64-bit)"));
        assert_eq!(
            r.get("CPE_NAME"),
            Some("cpe:2.3:o:home-assistant:haos:17.1:*:production:*:*:*:rpi4-64:*")
        );
        assert_eq!(r.vars.len(), 11);
    }

    #[test]
    fn quoting_and_escapes() {
        let text = "# comment\n\n  A=\"x \\\"y\\\" \\$z \\\\ \\n\"\r\nB='single $x \\n'\nC=plain\\ word   \nD=\"a\"'b'c\nE=\nF=\"\"\nG=\"ok\" # trailing\n";
        let r = parse_os_release(text).unwrap();
        assert_eq!(r.get("A"), Some("x \"y\" $z \\ \\n"));
        assert_eq!(r.get("B"), Some("single $x \\n"));
        assert_eq!(r.get("C"), Some("plain word"));
        assert_eq!(r.get("D"), Some("abc"));
        assert_eq!(r.get("E"), Some(""));
        assert_eq!(r.get("F"), Some(""));
        // Not valid os-release; a shell would take `# trailing` as a comment, we keep it.
        assert!(r.get("G").is_some_and(|g| g.starts_with("ok")));
    }

    #[test]
    fn bad_lines() {
        let r = parse_os_release("ID=haos\nno equals\n1BAD=x\nQ=\"open\nVERSION_ID=1\n").unwrap();
        assert_eq!(r.ignored.len(), 3, "{:?}", r.ignored);
        assert_eq!(r.version_id(), Some("1"));
        assert_eq!(
            parse_os_release("garbage\nmore garbage\n"),
            Err(OsReleaseError::NoAssignments(2))
        );
        assert!(parse_os_release("").unwrap().vars.is_empty());
        assert_eq!(
            parse_os_release_bytes(b"ID=haos\0"),
            Err(OsReleaseError::Binary)
        );
        assert_eq!(
            parse_os_release_bytes(b"ID=h\xffos\n").unwrap().id(),
            Some("h\u{fffd}os")
        );
    }
}

//! What Home Assistant leaves out of a backup, by its own rules, so a backup made from a card
//! holds what one made by the running system would have held.
//!
//! - The config dir: Supervisor's `HOMEASSISTANT_BACKUP_EXCLUDE` (ha-backup-format.md §3.1),
//!   matched as Python's `PurePath.full_match("data/" + pattern)`: `*` stays inside one path
//!   segment (and matches dot-files), `**` spans any number of segments, including none. A
//!   directory that matches is left out with everything under it. With `exclude_database`,
//!   also `home-assistant_v?.db` and its `-wal`. `.HA_RESTORE` is left out too (Home Assistant
//!   Core's own rule: a stale one would start a restore on the new system's first boot).
//! - Add-on data: the add-on's `backup_exclude` patterns, matched as Supervisor does, with
//!   `PurePath.match` against the full path as Supervisor sees it (`/data/apps/data/<slug>/…`):
//!   relative patterns match from the right and `**` acts like `*`.
//!
//! Pure functions; the cases in the tests were checked against Python 3.14's pathlib.

/// Supervisor's exclusions for the Home Assistant config dir (`data/` in the archive).
pub const HOMEASSISTANT_EXCLUDE: &[&str] = &[
    "**/__pycache__/*",
    "**/.DS_Store",
    "*.db-shm",
    "*.corrupt.*",
    "*.log.*",
    "*.log",
    ".storage/*.corrupt.*",
    "OZW_Log.txt",
    "backups/*.tar",
    "tmp_backups/*.tar",
    "tts/*",
    ".cache/*",
    // Home Assistant Core's list has this one too; Supervisor's restore never sees one.
    ".HA_RESTORE",
];

/// Added when the database is left out.
pub const DATABASE_EXCLUDE: &[&str] = &["home-assistant_v?.db", "home-assistant_v?.db-wal"];

/// The recorder database and its write-ahead log, as Home Assistant names them.
pub const DATABASE: &str = "home-assistant_v2.db";
/// The recorder's write-ahead log.
pub const DATABASE_WAL: &str = "home-assistant_v2.db-wal";

/// `fnmatch` of one segment: `*`, `?`, `[...]` / `[!...]`; everything else literal.
fn segment_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(&pat[p..], name[n]) {
                        if matched {
                            p += next;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == b'[' {
                        // An unclosed '[' is a literal.
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `pat`: whether `c` is in it, and the class length.
/// None when the class is not closed.
fn class_match(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if pat[i] <= c && c <= pat[i + 2] {
                found = true;
            }
            i += 3;
        } else {
            if pat[i] == c {
                found = true;
            }
            i += 1;
        }
    }
    None
}

fn segments(s: &[u8]) -> Vec<&[u8]> {
    s.split(|&b| b == b'/')
        .filter(|x| !x.is_empty() && *x != b".")
        .collect()
}

fn match_from(pat: &[&[u8]], path: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        // A final `**` needs at least one segment (Python: `data` is no full match of `data/**`).
        Some((first, rest)) if *first == b"**" && rest.is_empty() => !path.is_empty(),
        Some((first, rest)) if *first == b"**" => {
            (0..=path.len()).any(|skip| match_from(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((seg, prest)) => segment_match(first, seg) && match_from(rest, prest),
            None => false,
        },
    }
}

/// Python's `PurePosixPath(path).full_match(pattern)` (Python ≥ 3.13).
pub fn full_match(pattern: &str, path: &[u8]) -> bool {
    let pat = segments(pattern.as_bytes());
    let p = segments(path);
    // Bound the backtracking of many `**` (patterns here are short and fixed).
    if pat.iter().filter(|s| **s == b"**").count() > 4 {
        return false;
    }
    match_from(&pat, &p)
}

/// Python's `PurePosixPath(path).match(pattern)`: relative patterns match from the right,
/// absolute ones the whole path; `**` acts like `*`.
pub fn path_match(pattern: &str, path: &[u8]) -> bool {
    let absolute = pattern.starts_with('/');
    let pat = segments(pattern.as_bytes());
    let p = segments(path);
    if pat.is_empty() || pat.len() > p.len() || (absolute && pat.len() != p.len()) {
        return false;
    }
    if absolute && !path.starts_with(b"/") {
        return false;
    }
    let tail = &p[p.len() - pat.len()..];
    pat.iter().zip(tail).all(|(a, b)| {
        let a: &[u8] = if *a == b"**" { b"*" } else { a };
        segment_match(a, b)
    })
}

/// Which of Home Assistant's rules leaves `rel` (a path inside the config dir) out, if any.
pub fn homeassistant_excluded(rel: &[u8], exclude_database: bool) -> Option<&'static str> {
    let mut arc = b"data/".to_vec();
    arc.extend_from_slice(rel);
    let extra: &[&'static str] = if exclude_database {
        DATABASE_EXCLUDE
    } else {
        &[]
    };
    HOMEASSISTANT_EXCLUDE
        .iter()
        .chain(extra)
        .find(|p| full_match(&format!("data/{p}"), &arc))
        .copied()
}

/// Does one of an add-on's `backup_exclude` patterns leave out `full_path` (as Supervisor
/// sees it, e.g. `/data/apps/data/core_mosquitto/mosquitto.log`)?
pub fn addon_excluded<'a>(patterns: &'a [String], full_path: &[u8]) -> Option<&'a str> {
    patterns
        .iter()
        .find(|p| path_match(p, full_path))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path inside the archive, the pattern that leaves it out), from Python 3.14.
    #[test]
    fn home_assistant_rules_as_python_reads_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            (".log", Some("*.log")),
            ("x.log", Some("*.log")),
            ("sub/x.log", None),
            ("__pycache__", None),
            ("__pycache__/a.pyc", Some("**/__pycache__/*")),
            ("a/b/__pycache__/c.pyc", Some("**/__pycache__/*")),
            (".DS_Store", Some("**/.DS_Store")),
            ("a/.DS_Store", Some("**/.DS_Store")),
            ("tts", None),
            ("tts/a", Some("tts/*")),
            ("tts/a/b", None),
            (".cache", None),
            (".cache/brands", Some(".cache/*")),
            ("backups/a.tar", Some("backups/*.tar")),
            ("backups/sub/a.tar", None),
            ("home-assistant_v2.db", None),
            ("x.corrupt.y", Some("*.corrupt.*")),
            (".storage/x.corrupt.y", Some(".storage/*.corrupt.*")),
            ("home-assistant.log.1", Some("*.log.*")),
            ("Home-assistant.LOG", None),
            ("a.db-shm", Some("*.db-shm")),
            ("OZW_Log.txt", Some("OZW_Log.txt")),
            (".HA_RESTORE", Some(".HA_RESTORE")),
        ];
        for (p, want) in cases {
            assert_eq!(homeassistant_excluded(p.as_bytes(), false), *want, "{p}");
        }
        assert_eq!(
            homeassistant_excluded(b"home-assistant_v2.db", true),
            Some("home-assistant_v?.db")
        );
        assert_eq!(
            homeassistant_excluded(b"home-assistant_v2.db-wal", true),
            Some("home-assistant_v?.db-wal")
        );
        assert_eq!(homeassistant_excluded(b"home-assistant_v10.db", true), None);
    }

    #[test]
    fn globs() {
        assert!(full_match("data/**", b"data/x"));
        assert!(!full_match("data/**", b"data"));
        assert!(full_match("data/[ab].x", b"data/a.x"));
        assert!(!full_match("data/[ab].x", b"data/[ab].x"));
        assert!(full_match("data/[!ab].x", b"data/c.x"));
        assert!(full_match("data/a*b*c", b"data/aXbYbZc"));
        assert!(!full_match("data/a*b*c", b"data/aXbYbZ"));
        assert!(full_match("data/[a", b"data/[a"));
        assert!(full_match("data/**/x/**", b"data/a/x/b/c"));
    }

    /// Supervisor's add-on rule (`PurePath.match`), from Python 3.14.
    #[test]
    fn addon_rules_match_from_the_right() {
        let p = "/data/apps/data/core_mosquitto/mosquitto.log".as_bytes();
        assert!(path_match("*.log", p));
        assert!(path_match("core_mosquitto/*.log", p));
        assert!(!path_match("data/*.log", p));
        assert!(path_match("**/*.log", b"/data/apps/data/x/a/b.log"));
        assert!(path_match("x/**/b.log", b"/data/apps/data/x/a/b.log"));
        assert!(!path_match("/x/*.log", p));
        assert!(path_match("/data/*/*/*/*.log", p));
        let pats = vec!["*.db".to_string(), "*.log".to_string()];
        assert_eq!(addon_excluded(&pats, p), Some("*.log"));
    }

    #[test]
    fn no_panics_on_odd_patterns() {
        for pat in ["", "[", "[]", "[!]", "[a-", "**/**/**", "*[", "?*?"] {
            for path in [&b""[..], b"a", b"[", b"data/a/b", b"/"] {
                let _ = full_match(pat, path);
                let _ = path_match(pat, path);
            }
        }
    }
}

//! Pure parser for `/proc/swaps`: the active swap areas, one [`SwapEntry`] per line after
//! the header. The kernel escapes the file name like mountinfo does (`\040` for a space)
//! and may append ` (deleted)` to a swap file that was removed while active.

use super::mountinfo::unescape;
use std::fmt;

/// One active swap area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapEntry {
    /// The path the kernel shows, e.g. `/dev/sda2`, `/dev/dm-1`, `/swapfile`.
    pub filename: String,
    /// `partition` (a block device) or `file`.
    pub kind: String,
    pub size_kib: u64,
    pub used_kib: u64,
    pub priority: i32,
}

impl SwapEntry {
    /// True for a swap area on a block device rather than in a file.
    pub fn is_partition(&self) -> bool {
        self.kind == "partition"
    }
}

/// A `/proc/swaps` line that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Parse the whole text of `/proc/swaps`. The first line must be the header; any malformed
/// line fails the whole parse.
pub fn parse(text: &str) -> Result<Vec<SwapEntry>, ParseError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        None => return Ok(Vec::new()),
        Some((_, h)) if h.split_whitespace().next() == Some("Filename") => {}
        Some((i, h)) => {
            return Err(ParseError {
                line: i + 1,
                reason: format!(
                    "expected the \"Filename Type Size Used Priority\" header, got {h:?}"
                ),
            });
        }
    }
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|reason| ParseError {
                line: i + 1,
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<SwapEntry, String> {
    // The name is escaped, so it holds no raw whitespace except a " (deleted)" suffix;
    // take the four numeric columns from the right.
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 5 {
        return Err(format!("expected 5 columns in {line:?}"));
    }
    let n = fields.len();
    let num = |i: usize, what: &str| {
        fields[i]
            .parse::<u64>()
            .map_err(|_| format!("bad {what} {:?} in {line:?}", fields[i]))
    };
    Ok(SwapEntry {
        filename: unescape(&fields[..n - 4].join(" ")),
        kind: fields[n - 4].to_string(),
        size_kib: num(n - 3, "size")?,
        used_kib: num(n - 2, "used")?,
        priority: fields[n - 1]
            .parse()
            .map_err(|_| format!("bad priority {:?} in {line:?}", fields[n - 1]))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partitions_and_files() {
        let t = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                 /dev/sda3                               partition\t8388604\t\t0\t\t-2\n\
                 /swap\\040file                           file\t\t2097148\t\t1024\t\t-3\n\
                 /old (deleted)                          file\t\t1024\t\t0\t\t5\n";
        let s = parse(t).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].filename, "/dev/sda3");
        assert!(s[0].is_partition());
        assert_eq!(s[0].size_kib, 8388604);
        assert_eq!(s[0].priority, -2);
        assert_eq!(s[1].filename, "/swap file");
        assert_eq!(s[1].kind, "file");
        assert_eq!(s[1].used_kib, 1024);
        assert_eq!(s[2].filename, "/old (deleted)");
        assert_eq!(s[2].priority, 5);
    }

    #[test]
    fn header_only_and_empty() {
        assert!(
            parse("Filename\tType\tSize\tUsed\tPriority\n")
                .unwrap()
                .is_empty()
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse("garbage\n").unwrap_err().line, 1);
        let e =
            parse("Filename Type Size Used Priority\n/dev/sda3 partition x 0 -2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("Filename Type Size Used Priority\n/dev/sda3 partition\n").is_err());
    }
}

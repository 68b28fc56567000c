//! Pure parser for `/proc/self/mountinfo` (see proc(5)): one [`MountInfo`] per line.
//!
//! A line reads
//! `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
//! mount id, parent id, `major:minor`, root within the filesystem, mount point, mount
//! options, zero or more optional fields, a lone `-`, filesystem type, source, and super
//! options. The kernel escapes space, tab, newline, backslash (and `#` in the source) as
//! three-digit octal (`\040`); they are decoded here. Disks are matched to mounts by
//! `major:minor`, never by the source string, which can be `/dev/root` or a symlink.

use super::stat::DevNum;
use std::fmt;

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_id: u32,
    pub parent_id: u32,
    /// The `st_dev` of files on this mount: the block device for disk filesystems, an
    /// anonymous `0:N` for tmpfs, btrfs subvolumes, FUSE and the like.
    pub dev: DevNum,
    /// Root of the mount within its filesystem (`/` unless a bind mount of a subtree).
    pub root: String,
    pub mount_point: String,
    pub options: String,
    /// Optional fields such as `shared:1`, `master:2`.
    pub optional: Vec<String>,
    pub fs_type: String,
    /// Filesystem-specific source, e.g. `/dev/sda1`, `tmpfs`, `none`.
    pub source: String,
    pub super_options: String,
}

/// A mountinfo line that did not parse.
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

/// Parse the whole text of a mountinfo file. Any malformed line fails the whole parse:
/// callers decide disk ownership from this, so a half-understood table is not good enough.
pub fn parse(text: &str) -> Result<Vec<MountInfo>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|reason| ParseError {
                line: i + 1,
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<MountInfo, String> {
    // Fields are separated by single spaces; splitting on ' ' keeps an (old-kernel) empty
    // source as an empty field instead of shifting the rest.
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or_else(|| format!("no \" - \" separator in {line:?}"))?;
    if sep < 6 {
        return Err(format!("too few fields before the separator in {line:?}"));
    }
    if fields.len() < sep + 4 {
        return Err(format!("too few fields after the separator in {line:?}"));
    }
    let num = |i: usize, what: &str| {
        fields[i]
            .parse::<u32>()
            .map_err(|_| format!("bad {what} {:?} in {line:?}", fields[i]))
    };
    Ok(MountInfo {
        mount_id: num(0, "mount id")?,
        parent_id: num(1, "parent id")?,
        dev: fields[2].parse().map_err(|e| format!("{e} in {line:?}"))?,
        root: unescape(fields[3]),
        mount_point: unescape(fields[4]),
        options: fields[5].to_string(),
        optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
        fs_type: unescape(fields[sep + 1]),
        source: unescape(fields[sep + 2]),
        // Super options never contain a raw space; join defensively all the same.
        super_options: fields[sep + 3..].join(" "),
    })
}

/// Decode the kernel's `\ooo` octal escapes (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash). Anything that is not a valid three-digit escape is kept as it is.
/// Bytes that are not UTF-8 after decoding become U+FFFD.
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && b[i + 1] <= b'3'
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
90 27 8:17 / /media/user/MY\\040DISK rw,nosuid,nodev shared:45 master:3 - exfat /dev/sdb1 rw,fmask=0022
91 27 0:50 / /media/x\\011y\\012z\\134w rw - fuseblk /dev/sdc1 rw,user_id=0
";

    #[test]
    fn parses_fields() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[1].dev, DevNum::new(254, 0));
        assert_eq!(m[1].mount_point, "/");
        assert_eq!(m[1].fs_type, "ext4");
        assert_eq!(m[1].source, "/dev/vda");
        assert!(m[1].optional.is_empty());
        assert_eq!(m[2].root, "/mnt1");
        assert_eq!(m[2].optional, vec!["master:1"]);
        assert_eq!(m[2].super_options, "rw,errors=continue");
        assert_eq!(m[3].mount_point, "/media/user/MY DISK");
        assert_eq!(m[3].optional, vec!["shared:45", "master:3"]);
        assert_eq!(m[3].dev, DevNum::new(8, 17));
        assert_eq!(m[4].mount_point, "/media/x\ty\nz\\w");
        assert_eq!(m[4].mount_id, 91);
        assert_eq!(m[4].parent_id, 27);
        assert_eq!(m[4].options, "rw");
    }

    #[test]
    fn empty_source_field_is_kept() {
        let m = parse("40 27 0:40 / /x rw - tmpfs  rw\n").unwrap();
        assert_eq!(m[0].source, "");
        assert_eq!(m[0].super_options, "rw");
    }

    #[test]
    fn bad_lines_fail_with_line_number() {
        let e = parse(
            "22 27 0:21 / /proc rw,relatime - proc proc rw\n27 1 254 / / rw - ext4 /dev/vda rw\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        for bad in [
            "1 2 3:4 / /x rw ext4 /dev/a rw",
            "1 2 3:4 / - ext4 /dev/a rw",
            "1 2 3:4 / /x rw - ext4",
            "x 2 3:4 / /x rw - ext4 /dev/a rw",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("\n\n").unwrap().is_empty());
    }

    #[test]
    fn unescape_edges() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        assert_eq!(unescape("\\999"), "\\999");
        assert_eq!(unescape("\\"), "\\");
        assert_eq!(unescape("\\303\\251"), "é");
    }

    #[test]
    fn parses_this_machines_table() {
        // Whatever the host has must parse (a privileged-tier style check, harmless here).
        if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
            let m = parse(&text).unwrap();
            assert!(m.iter().any(|x| x.mount_point == "/"));
        }
    }
}

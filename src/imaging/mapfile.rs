//! GNU ddrescue mapfiles: parse, update and write the format of ddrescue 1.27's manual
//! ("Mapfile structure"), so a lifeboat rescue can be read by `ddrescuelog`, continued by
//! `ddrescue` and resumed by lifeboat.
//!
//! A mapfile is comment lines (`#`), a status line `current_pos current_status current_pass`,
//! then contiguous, non-overlapping blocks `pos size status` covering the whole source.
//! Block statuses: `?` non-tried, `*` failed non-trimmed, `/` failed non-scraped, `-` bad
//! sector(s), `+` finished. Numbers may be decimal, `0x` hex or `0` octal; we write hex.
//! Saving is atomic (temporary file, fsync, rename).

use super::ranges::Extent;
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

/// Status of a block of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    NonTried,
    NonTrimmed,
    NonScraped,
    BadSector,
    Finished,
}

impl Status {
    /// The mapfile character.
    pub fn ch(self) -> char {
        match self {
            Status::NonTried => '?',
            Status::NonTrimmed => '*',
            Status::NonScraped => '/',
            Status::BadSector => '-',
            Status::Finished => '+',
        }
    }
    fn from_ch(c: char) -> Option<Self> {
        Some(match c {
            '?' => Status::NonTried,
            '*' => Status::NonTrimmed,
            '/' => Status::NonScraped,
            '-' => Status::BadSector,
            '+' => Status::Finished,
            _ => return None,
        })
    }
}

/// The phase recorded in the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Copying,
    Trimming,
    Scraping,
    Retrying,
    Finished,
}

impl Phase {
    fn ch(self) -> char {
        match self {
            Phase::Copying => '?',
            Phase::Trimming => '*',
            Phase::Scraping => '/',
            Phase::Retrying => '-',
            Phase::Finished => '+',
        }
    }
    fn from_ch(c: char) -> Option<Self> {
        Some(match c {
            '?' => Phase::Copying,
            '*' => Phase::Trimming,
            '/' => Phase::Scraping,
            '-' => Phase::Retrying,
            '+' | 'F' | 'G' => Phase::Finished,
            _ => return None,
        })
    }
    fn describe(self) -> &'static str {
        match self {
            Phase::Copying => "Copying non-tried blocks...",
            Phase::Trimming => "Trimming failed blocks...",
            Phase::Scraping => "Scraping failed blocks...",
            Phase::Retrying => "Retrying bad sectors...",
            Phase::Finished => "Finished",
        }
    }
}

/// One block line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub pos: u64,
    pub size: u64,
    pub status: Status,
}

impl Block {
    pub fn end(&self) -> u64 {
        self.pos + self.size
    }
}

/// A whole mapfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapfile {
    pub current_pos: u64,
    pub phase: Phase,
    pub pass: u32,
    blocks: Vec<Block>,
    /// Extra `# key: value` comment lines written after the header (lifeboat's own facts).
    pub notes: Vec<String>,
}

/// Parse an integer the way ddrescue does (C++ `strtoll` base 0).
fn parse_num(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

impl Mapfile {
    /// A new map of `size` bytes, all non-tried.
    pub fn new(size: u64) -> Self {
        Mapfile {
            current_pos: 0,
            phase: Phase::Copying,
            pass: 1,
            blocks: if size > 0 {
                vec![Block {
                    pos: 0,
                    size,
                    status: Status::NonTried,
                }]
            } else {
                vec![]
            },
            notes: vec![],
        }
    }

    /// Bytes covered.
    pub fn size(&self) -> u64 {
        self.blocks.last().map(|b| b.end()).unwrap_or(0)
    }

    /// The block lines.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Parse mapfile text. Blocks must start at 0 and be contiguous.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut status_line: Option<(u64, Phase, u32)> = None;
        let mut blocks: Vec<Block> = Vec::new();
        let mut notes = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            if let Some(c) = raw.trim_start().strip_prefix("# lifeboat ") {
                notes.push(c.to_string());
            }
            let line = match raw.find('#') {
                Some(p) => &raw[..p],
                None => raw,
            };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            if status_line.is_none() {
                let pos = parse_num(f[0]).ok_or(format!("line {n}: bad current_pos"))?;
                let ph = f
                    .get(1)
                    .and_then(|s| s.chars().next())
                    .and_then(Phase::from_ch)
                    .ok_or(format!("line {n}: bad current_status"))?;
                let pass = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
                status_line = Some((pos, ph, pass));
                continue;
            }
            if f.len() < 3 {
                return Err(format!("line {n}: expected `pos size status`"));
            }
            let pos = parse_num(f[0]).ok_or(format!("line {n}: bad pos {:?}", f[0]))?;
            let size = parse_num(f[1]).ok_or(format!("line {n}: bad size {:?}", f[1]))?;
            let st = f[2]
                .chars()
                .next()
                .and_then(Status::from_ch)
                .ok_or(format!("line {n}: bad status {:?}", f[2]))?;
            let expect = blocks.last().map(|b| b.end()).unwrap_or(0);
            if pos != expect {
                return Err(format!(
                    "line {n}: block at {pos:#x} does not follow the previous one (expected {expect:#x})"
                ));
            }
            if size == 0 {
                continue;
            }
            pos.checked_add(size)
                .ok_or(format!("line {n}: block runs past 2^64"))?;
            blocks.push(Block {
                pos,
                size,
                status: st,
            });
        }
        let (current_pos, phase, pass) = status_line.ok_or("no status line")?;
        let mut m = Mapfile {
            current_pos,
            phase,
            pass,
            blocks,
            notes,
        };
        m.merge_all();
        Ok(m)
    }

    /// Load from a file, naming it in errors.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the mapfile", path.display()))?;
        Mapfile::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a ddrescue mapfile: {e}", path.display()))
    }

    fn merge_all(&mut self) {
        let mut out: Vec<Block> = Vec::with_capacity(self.blocks.len());
        for b in self.blocks.drain(..) {
            match out.last_mut() {
                Some(l) if l.status == b.status && l.end() == b.pos => l.size += b.size,
                _ => out.push(b),
            }
        }
        self.blocks = out;
    }

    /// Index of the block containing `pos`.
    fn find(&self, pos: u64) -> Option<usize> {
        let i = self.blocks.partition_point(|b| b.end() <= pos);
        (i < self.blocks.len() && self.blocks[i].pos <= pos).then_some(i)
    }

    /// Set `[pos, pos+len)` (clamped to the map) to `status`.
    pub fn set(&mut self, pos: u64, len: u64, status: Status) {
        let end = pos.saturating_add(len).min(self.size());
        if pos >= end {
            return;
        }
        let (Some(first), Some(last)) = (self.find(pos), self.find(end - 1)) else {
            return;
        };
        let mut repl: Vec<Block> = Vec::with_capacity(3);
        let fb = self.blocks[first];
        let lb = self.blocks[last];
        if fb.pos < pos {
            repl.push(Block {
                pos: fb.pos,
                size: pos - fb.pos,
                status: fb.status,
            });
        }
        repl.push(Block {
            pos,
            size: end - pos,
            status,
        });
        if lb.end() > end {
            repl.push(Block {
                pos: end,
                size: lb.end() - end,
                status: lb.status,
            });
        }
        // Merge with neighbours of the same status.
        let lo = first.saturating_sub(1);
        let hi = (last + 2).min(self.blocks.len());
        let mut seg: Vec<Block> = Vec::new();
        seg.extend_from_slice(&self.blocks[lo..first]);
        seg.extend(repl);
        seg.extend_from_slice(&self.blocks[last + 1..hi]);
        let mut merged: Vec<Block> = Vec::with_capacity(seg.len());
        for b in seg {
            match merged.last_mut() {
                Some(l) if l.status == b.status && l.end() == b.pos => l.size += b.size,
                _ => merged.push(b),
            }
        }
        self.blocks.splice(lo..hi, merged);
    }

    /// The ranges with `status`, in order.
    pub fn ranges(&self, status: Status) -> Vec<Extent> {
        self.blocks
            .iter()
            .filter(|b| b.status == status)
            .map(|b| Extent::new(b.pos, b.size))
            .collect()
    }

    /// The ranges with `status` inside `domain` (normalized).
    pub fn ranges_in(&self, status: Status, domain: &[Extent]) -> Vec<Extent> {
        super::ranges::intersect(&self.ranges(status), domain)
    }

    /// Bytes with `status`.
    pub fn bytes(&self, status: Status) -> u64 {
        self.blocks
            .iter()
            .filter(|b| b.status == status)
            .map(|b| b.size)
            .sum()
    }

    /// The mapfile text. `command` goes into the header comment.
    pub fn render(&self, command: &str, start: SystemTime) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Mapfile. Created by lifeboat version {} (GNU ddrescue format)",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(s, "# Command line: {command}");
        let _ = writeln!(s, "# Start time:   {}", utc_time(start));
        let _ = writeln!(s, "# Current time: {}", utc_time(SystemTime::now()));
        for n in &self.notes {
            let _ = writeln!(s, "# lifeboat {n}");
        }
        let _ = writeln!(s, "# {}", self.phase.describe());
        let _ = writeln!(s, "# current_pos  current_status  current_pass");
        let _ = writeln!(
            s,
            "0x{:08X}     {}               {}",
            self.current_pos,
            self.phase.ch(),
            self.pass
        );
        let _ = writeln!(s, "#      pos        size  status");
        for b in &self.blocks {
            let _ = writeln!(s, "0x{:08X}  0x{:08X}  {}", b.pos, b.size, b.status.ch());
        }
        s
    }

    /// Write atomically to `path` (temporary file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path, command: &str, start: SystemTime) -> Result<()> {
        write_atomic(path, self.render(command, start).as_bytes())
    }
}

/// Write `data` to `path` through `path.tmp`, fsync and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot rename to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d) = civil_from_days((secs / 86400) as i64);
    let r = secs % 86400;
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

/// RFC 3339 UTC time, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(t: SystemTime) -> String {
    utc_time(t).replacen(' ', "T", 1) + "Z"
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Check a loaded map against the source it is meant for.
pub fn check_size(m: &Mapfile, size: u64, path: &Path) -> Result<()> {
    if m.size() != size {
        bail!(
            "{}: the mapfile covers {} bytes but the source has {size}: not the same disk?",
            path.display(),
            m.size()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANUAL: &str = "# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue -d -c18 /dev/fd0 fdimage mapfile
# Start time:   2015-07-21 09:37:44
# Current time: 2015-07-21 09:38:19
# Copying non-tried blocks... Pass 1 (forwards)
# current_pos  current_status  current_pass
0x00120000     ?               1
#      pos        size  status
0x00000000  0x00117000  +
0x00117000  0x00000200  -
0x00117200  0x00001000  /
0x00118200  0x00007E00  *
0x00120000  0x00048000  ?
";

    #[test]
    fn parses_the_manual_example() {
        let m = Mapfile::parse(MANUAL).unwrap();
        assert_eq!(m.current_pos, 0x120000);
        assert_eq!(m.phase, Phase::Copying);
        assert_eq!(m.pass, 1);
        assert_eq!(m.size(), 0x168000);
        assert_eq!(m.blocks().len(), 5);
        assert_eq!(
            m.ranges(Status::BadSector),
            vec![Extent::new(0x117000, 0x200)]
        );
        // Round trip through our writer.
        let again = Mapfile::parse(&m.render("x", SystemTime::UNIX_EPOCH)).unwrap();
        assert_eq!(again.blocks(), m.blocks());
    }

    #[test]
    fn old_two_column_status_and_decimal_octal() {
        let m = Mapfile::parse("0 +\n0 10 +\n10 012 -  # comment\n").unwrap();
        assert_eq!(m.pass, 1);
        assert_eq!(m.size(), 20);
        assert_eq!(m.bytes(Status::BadSector), 10);
    }

    #[test]
    fn rejects_gaps_and_garbage() {
        assert!(Mapfile::parse("0 ? 1\n0 10 +\n20 10 +\n").is_err());
        assert!(Mapfile::parse("0 ? 1\n0 10 x\n").is_err());
        assert!(Mapfile::parse("# only comments\n").is_err());
        assert!(Mapfile::parse("0 ? 1\n0xffffffffffffffff 0x10 +\n").is_err());
    }

    #[test]
    fn set_splits_and_merges() {
        let mut m = Mapfile::new(100);
        m.set(10, 10, Status::Finished);
        m.set(20, 5, Status::Finished);
        m.set(50, 10, Status::BadSector);
        assert_eq!(m.blocks().len(), 5);
        assert_eq!(m.ranges(Status::Finished), vec![Extent::new(10, 15)]);
        m.set(0, 100, Status::Finished);
        assert_eq!(m.blocks().len(), 1);
        m.set(99, 50, Status::NonTried);
        assert_eq!(m.ranges(Status::NonTried), vec![Extent::new(99, 1)]);
        m.set(0, 1, Status::BadSector);
        assert_eq!(
            m.blocks()[0],
            Block {
                pos: 0,
                size: 1,
                status: Status::BadSector
            }
        );
        assert_eq!(m.size(), 100);
    }

    #[test]
    fn times() {
        assert_eq!(utc_time(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_787_227_200);
        assert_eq!(rfc3339(t), "2026-08-20T12:00:00Z");
    }
}

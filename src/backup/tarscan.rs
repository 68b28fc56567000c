//! Walking a tar archive's headers without reading member bodies: names, sizes, types and
//! where each body starts. ustar prefixes, GNU long names (`L`) and pax `path`/`size`
//! records are understood. Pure header parsing ([`parse_header`]) is separate from the walk.

use crate::io::ReadAt;
use thiserror::Error;

/// Member type (only what we need to tell apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Dir,
    Symlink,
    HardLink,
    Other(u8),
}

/// One member of a tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub size: u64,
    pub kind: MemberKind,
    /// Byte offset of the member's body in the archive.
    pub data_offset: u64,
    /// Permission bits and modification time from the header.
    pub mode: u32,
    pub mtime: u64,
    /// Link target of symlinks and hard links.
    pub link: String,
}

/// Why a tar could not be walked.
#[derive(Debug, Error)]
pub enum TarError {
    #[error("tar header at offset {0} has a bad checksum (not a tar, or damaged)")]
    Checksum(u64),
    #[error("tar header at offset {0} has an unreadable size field")]
    Size(u64),
    #[error(
        "tar member '{name}' at offset {offset} claims {size} bytes, past the end of the file ({len} bytes): truncated?"
    )]
    Truncated {
        name: String,
        offset: u64,
        size: u64,
        len: u64,
    },
    #[error("tar has more than {0} members; giving up")]
    TooMany(usize),
    #[error("reading the tar: {0}")]
    Io(#[from] std::io::Error),
}

/// Raw fields of one 512-byte header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub size: u64,
    pub typeflag: u8,
    pub mode: u32,
    pub mtime: u64,
    pub link: String,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn octal(b: &[u8]) -> Option<u64> {
    // GNU base-256 for large sizes.
    if let Some(&first) = b.first()
        && first & 0x80 != 0
    {
        let mut v: u64 = (first & 0x7f) as u64;
        for &c in &b[1..] {
            v = v.checked_mul(256)?.checked_add(c as u64)?;
        }
        return Some(v);
    }
    let s: String = b
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Parse one header block. `Ok(None)` for an all-zero block (end of archive).
pub fn parse_header(block: &[u8; 512], offset: u64) -> Result<Option<Header>, TarError> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let stored = octal(&block[148..156]).ok_or(TarError::Checksum(offset))?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    if stored != sum {
        return Err(TarError::Checksum(offset));
    }
    let mut name = cstr(&block[0..100]);
    if &block[257..262] == b"ustar" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
    }
    let size = octal(&block[124..136]).ok_or(TarError::Size(offset))?;
    Ok(Some(Header {
        name,
        size,
        typeflag: block[156],
        mode: octal(&block[100..108]).unwrap_or(0o644) as u32 & 0o7777,
        mtime: octal(&block[136..148]).unwrap_or(0),
        link: cstr(&block[157..257]),
    }))
}

/// Parse pax extended records ("LEN key=value\n"...) for `path` and `size`.
fn pax_records(data: &[u8]) -> (Option<String>, Option<u64>) {
    let (mut path, mut size) = (None, None);
    let mut rest = data;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|&c| c == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= sp + 1 || len > rest.len() {
            break;
        }
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        if let Some(v) = rec.strip_prefix(b"path=") {
            path = Some(String::from_utf8_lossy(v).into_owned());
        } else if let Some(v) = rec.strip_prefix(b"size=") {
            size = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
        }
        rest = &rest[len..];
    }
    (path, size)
}

const MAX_META: u64 = 1 << 20;

/// List the members of a tar, at most `max_members`.
pub fn list(r: &dyn ReadAt, max_members: usize) -> Result<Vec<Member>, TarError> {
    let len = r.len();
    let mut off = 0u64;
    let mut out = Vec::new();
    let mut long_name: Option<String> = None;
    let mut pax: (Option<String>, Option<u64>) = (None, None);
    while off + 512 <= len {
        let mut block = [0u8; 512];
        r.read_exact_at(&mut block, off)?;
        let Some(h) = parse_header(&block, off)? else {
            break;
        };
        let data_offset = off + 512;
        let size = match h.typeflag {
            b'x' | b'L' | b'g' => h.size,
            _ => pax.1.take().unwrap_or(h.size),
        };
        let padded = size
            .div_ceil(512)
            .checked_mul(512)
            .ok_or(TarError::Size(off))?;
        if data_offset.checked_add(size).is_none_or(|end| end > len) {
            return Err(TarError::Truncated {
                name: h.name,
                offset: off,
                size,
                len,
            });
        }
        match h.typeflag {
            b'L' | b'x' if size <= MAX_META => {
                let mut v = vec![0u8; size as usize];
                r.read_exact_at(&mut v, data_offset)?;
                if h.typeflag == b'L' {
                    long_name = Some(cstr(&v));
                } else {
                    pax = pax_records(&v);
                }
            }
            b'L' | b'x' | b'g' => {}
            t => {
                let name = long_name.take().or_else(|| pax.0.take()).unwrap_or(h.name);
                let kind = match t {
                    b'0' | 0 | b'7' => MemberKind::File,
                    b'5' => MemberKind::Dir,
                    b'2' => MemberKind::Symlink,
                    b'1' => MemberKind::HardLink,
                    o => MemberKind::Other(o),
                };
                if out.len() >= max_members {
                    return Err(TarError::TooMany(max_members));
                }
                out.push(Member {
                    name,
                    size,
                    kind,
                    data_offset,
                    mode: h.mode,
                    mtime: h.mtime,
                    link: h.link,
                });
            }
        }
        off = data_offset + padded;
    }
    // Fewer than 512 bytes left where a header should be: the end marker is short (fine if
    // it is zeros), or a header was cut off.
    if off < len && off + 512 > len {
        let mut rest = vec![0u8; (len - off) as usize];
        r.read_exact_at(&mut rest, off)?;
        if rest.iter().any(|&b| b != 0) {
            return Err(TarError::Truncated {
                name: "(next header)".into(),
                offset: off,
                size: 512,
                len,
            });
        }
    }
    Ok(out)
}

/// Strip leading `./` (and `/`) the way Home Assistant's readers normalise member names.
pub fn normalise(name: &str) -> &str {
    let mut n = name;
    loop {
        if let Some(r) = n.strip_prefix("./") {
            n = r;
        } else if let Some(r) = n.strip_prefix('/') {
            n = r;
        } else {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: u64, t: u8) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[100..108].copy_from_slice(b"0000644\0");
        let s = format!("{size:011o}\0");
        b[124..136].copy_from_slice(s.as_bytes());
        b[156] = t;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        b[148..156].copy_from_slice(b"        ");
        let sum: u64 = b.iter().map(|&c| c as u64).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (n, d) in members {
            v.extend_from_slice(&header(n, d.len() as u64, b'0'));
            v.extend_from_slice(d);
            v.resize(v.len().div_ceil(512) * 512, 0);
        }
        v.extend_from_slice(&[0u8; 1024]);
        v
    }

    #[test]
    fn lists_members_with_offsets() {
        let t = tar(&[
            ("./backup.json", b"{}"),
            ("homeassistant.tar.gz", &[1u8; 700]),
        ]);
        let m = list(&t, 10).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "./backup.json");
        assert_eq!(m[0].data_offset, 512);
        assert_eq!(m[1].size, 700);
        assert_eq!(m[1].data_offset, 1536);
        assert_eq!(normalise(&m[0].name), "backup.json");
    }

    #[test]
    fn truncated_and_garbage() {
        let t = tar(&[("a", &[1u8; 2000])]);
        let cut = &t[..1024];
        assert!(matches!(
            list(&cut.to_vec(), 10),
            Err(TarError::Truncated { .. })
        ));
        let mut bad = t.clone();
        bad[0] ^= 1;
        assert!(matches!(list(&bad, 10), Err(TarError::Checksum(0))));
        for n in 0..600 {
            let _ = list(&t[..n.min(t.len())].to_vec(), 10);
        }
    }

    #[test]
    fn pax_path_and_gnu_long_name() {
        let long = "d/".repeat(80) + "file";
        let mut v = Vec::new();
        let mut rec = format!(" path={long}\n");
        let l = rec.len() + 3;
        rec = format!("{l}{rec}");
        v.extend_from_slice(&header("PaxHeader", rec.len() as u64, b'x'));
        v.extend_from_slice(rec.as_bytes());
        v.resize(v.len().div_ceil(512) * 512, 0);
        v.extend_from_slice(&header("short", 3, b'0'));
        v.extend_from_slice(b"abc");
        v.resize(v.len().div_ceil(512) * 512, 0);
        let mut ln = long.clone().into_bytes();
        ln.push(0);
        v.extend_from_slice(&header("././@LongLink", ln.len() as u64, b'L'));
        v.extend_from_slice(&ln);
        v.resize(v.len().div_ceil(512) * 512, 0);
        v.extend_from_slice(&header("short2", 0, b'0'));
        v.extend_from_slice(&[0u8; 1024]);
        let m = list(&v, 10).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, long);
        assert_eq!(m[0].size, 3);
        assert_eq!(m[1].name, long);
    }
}

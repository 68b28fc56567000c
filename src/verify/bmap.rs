//! bmap files (bmaptool's block map, format 2.0): write them for `image`, read them for
//! `flash` and `verify`.
//!
//! Layout (bmaptool `BmapCreate.py`): `<bmap version="2.0">` with `ImageSize` (bytes),
//! `BlockSize`, `BlocksCount` (= ceil(ImageSize / BlockSize)), `MappedBlocksCount`,
//! `ChecksumType` (`sha256`), `BmapFileChecksum` (SHA-256 of the whole file with this value
//! replaced by as many ASCII `0`s) and a `BlockMap` of inclusive block ranges
//! `<Range chksum="…"> a-b </Range>` (a single block is written `a`), each checksum taken over
//! the range's bytes with the last block cut at ImageSize. The reader accepts 1.x (no or SHA-1
//! checksums: `sha1=` attributes, `BmapFileSHA1`) and 2.x, rejects a major version above 2,
//! and checks the file checksum when there is one.

use crate::imaging::ranges::Extent;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// One mapped range, in blocks (inclusive), with its checksum as hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmapRange {
    pub first: u64,
    pub last: u64,
    pub checksum: Option<String>,
}

/// A parsed or to-be-written bmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    /// `major.minor` as written.
    pub version: String,
    pub image_size: u64,
    pub block_size: u64,
    pub blocks_count: u64,
    pub mapped_blocks_count: u64,
    /// `sha256`, `sha1`, or None (1.0, or checksums omitted).
    pub checksum_type: Option<String>,
    pub ranges: Vec<BmapRange>,
}

impl Bmap {
    /// Build a bmap from byte ranges (block-aligned starts; the last may end at
    /// `image_size`) and their SHA-256 checksums (hex).
    pub fn from_extents(image_size: u64, block_size: u64, ranges: &[(Extent, String)]) -> Self {
        let bs = block_size.max(1);
        let mut out = Vec::with_capacity(ranges.len());
        let mut mapped = 0;
        for (e, sum) in ranges {
            if e.len == 0 {
                continue;
            }
            let first = e.start / bs;
            let last = (e.end() - 1) / bs;
            mapped += last - first + 1;
            out.push(BmapRange {
                first,
                last,
                checksum: Some(sum.clone()),
            });
        }
        Bmap {
            version: "2.0".into(),
            image_size,
            block_size: bs,
            blocks_count: image_size.div_ceil(bs),
            mapped_blocks_count: mapped,
            checksum_type: Some("sha256".into()),
            ranges: out,
        }
    }

    /// Byte range of a block range, cut at the image size.
    pub fn extent(&self, r: &BmapRange) -> Extent {
        let start = r.first.saturating_mul(self.block_size);
        let end = (r.last.saturating_add(1))
            .saturating_mul(self.block_size)
            .min(self.image_size);
        Extent::new(start, end.saturating_sub(start))
    }

    /// The XML text, with `BmapFileChecksum` filled in.
    pub fn render(&self) -> String {
        let zeros = "0".repeat(64);
        let text = self.render_with(&zeros);
        let sum = hex(&Sha256::digest(text.as_bytes()));
        text.replacen(&zeros, &sum, 1)
    }

    fn render_with(&self, file_sum: &str) -> String {
        let mut s = String::new();
        let pct = if self.blocks_count > 0 {
            self.mapped_blocks_count as f64 * 100.0 / self.blocks_count as f64
        } else {
            0.0
        };
        let _ = writeln!(s, "<?xml version=\"1.0\" ?>");
        let _ = writeln!(
            s,
            "<!-- Block map of a disk image made by lifeboat {}: the blocks listed in\n     \
             BlockMap hold data (partition tables, filesystem metadata, files, and\n     \
             everything lifeboat could not prove unused); the others were unused and\n     \
             are zero in the image. Flash it with `bmaptool copy IMAGE DEVICE`. -->",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "<bmap version=\"2.0\">");
        let _ = writeln!(s, "    <!-- Image size in bytes -->");
        let _ = writeln!(s, "    <ImageSize> {} </ImageSize>", self.image_size);
        let _ = writeln!(s);
        let _ = writeln!(s, "    <!-- Size of a block in bytes -->");
        let _ = writeln!(s, "    <BlockSize> {} </BlockSize>", self.block_size);
        let _ = writeln!(s);
        let _ = writeln!(s, "    <!-- Count of blocks in the image file -->");
        let _ = writeln!(s, "    <BlocksCount> {} </BlocksCount>", self.blocks_count);
        let _ = writeln!(s);
        let _ = writeln!(s, "    <!-- Count of mapped blocks: {pct:.1}% -->");
        let _ = writeln!(
            s,
            "    <MappedBlocksCount> {} </MappedBlocksCount>",
            self.mapped_blocks_count
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "    <!-- Type of checksum used in this file -->");
        let _ = writeln!(s, "    <ChecksumType> sha256 </ChecksumType>");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "    <!-- The checksum of this bmap file. When it is calculated, the value of\n         \
             the checksum has be zero (all ASCII \"0\" symbols). -->"
        );
        let _ = writeln!(s, "    <BmapFileChecksum> {file_sum} </BmapFileChecksum>");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "    <!-- The block map: ranges of blocks (first-last, inclusive) with the\n         \
             sha256 of their bytes. -->"
        );
        let _ = writeln!(s, "    <BlockMap>");
        for r in &self.ranges {
            let attr = r
                .checksum
                .as_deref()
                .map(|c| format!(" chksum=\"{c}\""))
                .unwrap_or_default();
            if r.first == r.last {
                let _ = writeln!(s, "        <Range{attr}> {} </Range>", r.first);
            } else {
                let _ = writeln!(s, "        <Range{attr}> {}-{} </Range>", r.first, r.last);
            }
        }
        let _ = writeln!(s, "    </BlockMap>");
        let _ = writeln!(s, "</bmap>");
        s
    }

    /// Parse bmap XML. Checks the version, the counts and, when present, the file checksum.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = strip_comments(text);
        let open = find_tag_open(&body, "bmap").ok_or("no <bmap> element")?;
        let version = attr(open, "version").ok_or("<bmap> has no version")?;
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.trim().parse().ok())
            .ok_or(format!("bad bmap version {version:?}"))?;
        if major > 2 {
            return Err(format!(
                "bmap version {version} is newer than this tool (2.x)"
            ));
        }
        let num = |tag: &str| -> Result<u64, String> {
            element(&body, tag)
                .ok_or(format!("<{tag}> missing"))?
                .trim()
                .parse()
                .map_err(|_| format!("<{tag}> is not a number"))
        };
        let image_size = num("ImageSize")?;
        let block_size = num("BlockSize")?;
        if block_size == 0 {
            return Err("<BlockSize> is zero".into());
        }
        let blocks_count = num("BlocksCount")?;
        if blocks_count != image_size.div_ceil(block_size) {
            return Err(format!(
                "<BlocksCount> {blocks_count} does not match ImageSize/BlockSize"
            ));
        }
        let mapped_blocks_count = num("MappedBlocksCount")?;
        let mut checksum_type = element(&body, "ChecksumType").map(|s| s.trim().to_string());
        if checksum_type.is_none() && major == 1 && text.contains("sha1=") {
            checksum_type = Some("sha1".into());
        }
        // File checksum.
        let file_sum = element(&body, "BmapFileChecksum")
            .or_else(|| element(&body, "BmapFileSHA1"))
            .map(|s| s.trim().to_string());
        if let Some(sum) = &file_sum {
            let zeros = "0".repeat(sum.len());
            let zeroed = text.replacen(sum.as_str(), &zeros, 1);
            let got = match sum.len() {
                64 => hex(&Sha256::digest(zeroed.as_bytes())),
                _ => String::new(),
            };
            if sum.len() == 64 && !got.eq_ignore_ascii_case(sum) {
                return Err(format!(
                    "bmap file checksum mismatch (file says {sum}, content hashes to {got}): edited or damaged"
                ));
            }
        }
        let map = element(&body, "BlockMap").ok_or("<BlockMap> missing")?;
        let mut ranges = Vec::new();
        let mut rest = map;
        let mut mapped = 0u64;
        while let Some(i) = rest.find("<Range") {
            let after = &rest[i + 6..];
            let gt = after.find('>').ok_or("unterminated <Range>")?;
            let attrs = &after[..gt];
            let close = after.find("</Range>").ok_or("<Range> without </Range>")?;
            if close < gt {
                return Err("malformed <Range>".into());
            }
            let val = after[gt + 1..close].trim();
            let (a, b) = match val.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (val, val),
            };
            let first: u64 = a.parse().map_err(|_| format!("bad range {val:?}"))?;
            let last: u64 = b.parse().map_err(|_| format!("bad range {val:?}"))?;
            if last < first || last >= blocks_count {
                return Err(format!("range {val} outside the {blocks_count} blocks"));
            }
            if let Some(prev) = ranges.last().map(|r: &BmapRange| r.last)
                && first <= prev
            {
                return Err(format!("range {val} overlaps or precedes the one before"));
            }
            mapped += last - first + 1;
            let checksum = attr(attrs, "chksum").or_else(|| attr(attrs, "sha1"));
            ranges.push(BmapRange {
                first,
                last,
                checksum,
            });
            rest = &after[close + 8..];
        }
        if mapped != mapped_blocks_count {
            return Err(format!(
                "<MappedBlocksCount> {mapped_blocks_count} but the ranges hold {mapped} blocks"
            ));
        }
        Ok(Bmap {
            version,
            image_size,
            block_size,
            blocks_count,
            mapped_blocks_count,
            checksum_type,
            ranges,
        })
    }
}

fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("<!--") {
        out.push_str(&rest[..i]);
        match rest[i..].find("-->") {
            Some(j) => rest = &rest[i + j + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

fn find_tag_open<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
    let pat = format!("<{tag}");
    let mut from = 0;
    while let Some(i) = s[from..].find(&pat) {
        let start = from + i + pat.len();
        let next = s[start..].chars().next()?;
        if next == '>' || next.is_whitespace() {
            let end = s[start..].find('>')?;
            return Some(&s[start..start + end]);
        }
        from = start;
    }
    None
}

fn element<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let i = s.find(&open)? + open.len();
    let j = s[i..].find(&close)?;
    Some(&s[i..i + j])
}

fn attr(attrs: &str, name: &str) -> Option<String> {
    let pat = format!("{name}=");
    let mut from = 0;
    while let Some(i) = attrs[from..].find(&pat) {
        let at = from + i;
        let ok = at == 0
            || attrs[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace());
        let rest = &attrs[at + pat.len()..];
        if ok {
            let q = rest.chars().next()?;
            if q == '"' || q == '\'' {
                let end = rest[1..].find(q)?;
                return Some(rest[1..1 + end].to_string());
            }
        }
        from = at + pat.len();
    }
    None
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bmap {
        Bmap::from_extents(
            821_752,
            4096,
            &[
                (Extent::new(0, 8192), "a".repeat(64)),
                (Extent::new(12 * 4096, 4096), "b".repeat(64)),
                (
                    Extent::new(200 * 4096, 821_752 - 200 * 4096),
                    "c".repeat(64),
                ),
            ],
        )
    }

    #[test]
    fn round_trip_and_counts() {
        let b = sample();
        assert_eq!(b.blocks_count, 201);
        assert_eq!(b.mapped_blocks_count, 4);
        let text = b.render();
        assert!(text.contains("<Range chksum=\"") && text.contains("> 0-1 </Range>"));
        assert!(text.contains("> 12 </Range>"));
        let p = Bmap::parse(&text).unwrap();
        assert_eq!(p, b);
        assert_eq!(p.extent(&p.ranges[2]), Extent::new(819_200, 2552));
    }

    #[test]
    fn file_checksum_is_checked() {
        let text = sample().render();
        let bad = text.replacen("<ImageSize> 821752", "<ImageSize> 821753", 1);
        let e = Bmap::parse(&bad).unwrap_err();
        assert!(e.contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn bmaptool_1_x_and_versions() {
        let v13 = r#"<?xml version="1.0" ?>
<bmap version="1.3">
  <ImageSize> 8192 </ImageSize> <BlockSize> 4096 </BlockSize> <BlocksCount> 2 </BlocksCount>
  <MappedBlocksCount> 1 </MappedBlocksCount>
  <BlockMap> <Range sha1="abc"> 1 </Range> </BlockMap>
</bmap>"#;
        let b = Bmap::parse(v13).unwrap();
        assert_eq!(b.checksum_type.as_deref(), Some("sha1"));
        assert_eq!(b.ranges[0].checksum.as_deref(), Some("abc"));
        let v3 = v13.replace("1.3", "3.0");
        assert!(Bmap::parse(&v3).unwrap_err().contains("newer"));
        assert!(Bmap::parse(&v13.replace("> 1 </Range>", "> 2 </Range>")).is_err());
        assert!(Bmap::parse("<bmap>").is_err());
        assert!(Bmap::parse("").is_err());
    }
}
